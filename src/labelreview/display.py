"""Text from the store made safe to print: a name, a reason or a comment may hold control
characters (a newline, an escape code) that would forge a row of a table or drive the terminal."""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls, and the bidirectional overrides and isolates (U+202A-202E, U+2066-2069), which
# turn the rest of a line around on screen: "x\u202egpj.exe" shows as "xexe.jpg".
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: What a terminal must not be handed raw: the above, but for a line's own newline and tab.
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(value: Any) -> str:
    """``value`` as one line of text, control characters written as escapes (``\\n``, ``\\x1b``)."""
    return "" if value is None else _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))


def escaped(match: re.Match) -> str:
    """An ``UNSAFE`` character as an escape that reads the same in text and in a JSON string:
    ``\x1b`` for a C0 control (JSON writes those escaped already), ``\u009b`` / ``\u202e`` above."""
    c = ord(match.group())
    return f"\\x{c:02x}" if c < 0x20 else f"\\u{c:04x}"


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
