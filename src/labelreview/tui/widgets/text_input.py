"""A one-line text box that takes no control character: a reviewer's paste can hold an escape code
or a bidi override (copied from a terminal or a web page), which the box would draw raw, and a
comment saved with it would carry it into the log."""

from __future__ import annotations

from textual.widgets import Input

from ...display import UNSAFE


class TextInput(Input):
    """``Input`` that leaves out control characters and bidi overrides, whether typed or pasted."""

    def replace(self, text: str, start: int, end: int) -> None:  # (every insert and paste goes through it)
        super().replace(UNSAFE.sub("", text).replace("\t", " "), start, end)
