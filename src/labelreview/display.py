"""Text from the store made safe to print: a name, a reason or a comment may hold control
characters (a newline, an escape code) that would forge a row of a table or drive the terminal."""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: Any) -> str:
    """``value`` as one line of text, control characters written as escapes (``\\n``, ``\\x1b``)."""
    return "" if value is None else _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (what ``printable`` would escape)."""
    return _CONTROL.search(text) is not None


def why_line(reason: str | None, comment: str | None) -> str:
    """A decision's reason and comment as one line: ``loose-box — tail cut off``."""
    return " — ".join(v for v in (reason, comment) if v)


def score_text(score: float, decimals: int = 2) -> str:
    """A score as the screen shows it: fixed decimals for the usual 0-1 (and anything of a sane size),
    three significant digits past that (a score of 1e300 was a 300-digit name on the picture)."""
    if abs(score) < 1e6:
        return f"{score:.{decimals}f}"
    return f"{score:.3g}"
