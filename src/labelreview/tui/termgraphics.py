"""Ask the terminal, before Textual owns it, whether it shows sixel or kitty pictures, and its cell size.

Only ever for an explicit ``--graphics sixel|kitty``: nothing here guesses. The terminal must say
so itself (sixel: attribute 4 in its primary device attributes; kitty: ``OK`` to a graphics query),
or the review stays in half-blocks and says why. The questions end with a primary device
attributes request (DA1), which every VT100-like terminal answers, and answers after the ones
before it: its reply marks the end of the terminal's answers, so nothing is waited for longer than
needed, and nothing arrives after Textual has started reading keys (a terminal that answers slowly
is given up to ``SLOW_CAP`` times ``TIMEOUT_S``; a reply later still reaches Textual as input, which
may read parts of it as keys). Keys typed while the terminal is asked come on the same input: they
are kept apart from its answers (``Graphics.typed``) and the app replays them.

No Textual import: this runs while Textual is not imported yet, or not started.
"""

from __future__ import annotations

import dataclasses
import os
import re
import select
import struct
import sys
import time
from dataclasses import dataclass

#: Longest wait for the terminal's answers (each round of questions); over SSH each is a round trip.
TIMEOUT_S = 1.0
#: A terminal that answers, but slowly (each answer a round trip late), is waited for this many
#: times longer: its last answer must not reach Textual, which reads the rest of a late reply as keys.
SLOW_CAP = 3

PROTOCOLS = ("sixel", "kitty")

#: The kitty graphics query of the protocol's docs: a 1x1 RGB image, only asked about (a=q), never kept.
KITTY_QUERY = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"
DA1 = "\x1b[c"
CELL_SIZE_QUERY = "\x1b[16t"  # reply: ESC [ 6 ; height ; width t
#: XTSMGRAPHICS reads: number of colour registers, and largest sixel picture (xterm, mlterm, foot...).
SIXEL_COLORS_QUERY = "\x1b[?1;1;0S"
SIXEL_SIZE_QUERY = "\x1b[?2;1;0S"

_DA1_REPLY = re.compile(r"\x1b\[\?([0-9;]*)c")
_KITTY_REPLY = re.compile(r"\x1b_Gi=31;([^\x1b]*)\x1b\\")
_CELL_REPLY = re.compile(r"\x1b\[6;(\d+);(\d+)t")
_XTSM_REPLY = re.compile(r"\x1b\[\?(\d+);(\d+)(?:;([0-9;]*))?S")
_REPLIES = (_DA1_REPLY, _KITTY_REPLY, _CELL_REPLY, _XTSM_REPLY)

MUX_HINT = ("Inside tmux: tmux 3.3 passes neither protocol; tmux 3.4 or later built with sixel support "
            "shows sixel. GNU screen passes neither.")


@dataclass(frozen=True, slots=True)
class Graphics:
    """What the sharp inspect view may use: ``protocol`` None means half-blocks only."""

    asked: str = "halfblock"
    protocol: str | None = None
    cell: tuple[int, int] | None = None  # one cell in pixels (w, h)
    colors: int = 256  # sixel colour registers to use
    max_pixels: tuple[int, int] | None = None  # the largest sixel picture the terminal shows (w, h)
    why: str | None = None  # asked for a protocol but not given it: why
    typed: str = ""  # keys the reviewer typed while the terminal was being asked (the app replays them)

    @property
    def enabled(self) -> bool:
        return self.protocol is not None and self.cell is not None


def encoder_installed() -> bool:
    """Whether textual-image (the sixel encoder) is there, without importing it."""
    import importlib.util

    return importlib.util.find_spec("textual_image") is not None


def window_pixels(fd: int) -> tuple[int, int, int, int] | None:
    """(columns, rows, width px, height px) from TIOCGWINSZ, or None."""
    try:
        import fcntl
        import termios

        rows, cols, xpix, ypix = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except (ImportError, OSError):
        return None
    return cols, rows, xpix, ypix


def cell_from_window(window: tuple[int, int, int, int] | None) -> tuple[int, int] | None:
    if window is None:
        return None
    cols, rows, xpix, ypix = window
    if cols <= 0 or rows <= 0 or xpix <= 0 or ypix <= 0:
        return None
    cell = (xpix // cols, ypix // rows)
    return cell if cell[0] > 0 and cell[1] > 0 else None


def ask(fd_in: int, fd_out: int, questions: str, timeout: float = TIMEOUT_S) -> str:
    """Write ``questions`` (ending with DA1) and read the answers until DA1's reply, or ``timeout``.

    The terminal is put in non-canonical mode without echo for the while (answers are not lines and
    must not be shown), then set back as it was."""
    import termios

    saved = termios.tcgetattr(fd_in)
    raw = termios.tcgetattr(fd_in)
    raw[3] &= ~(termios.ICANON | termios.ECHO)
    raw[6][termios.VMIN], raw[6][termios.VTIME] = 0, 0
    answers = b""
    try:
        termios.tcsetattr(fd_in, termios.TCSANOW, raw)
        os.write(fd_out, questions.encode("ascii"))
        start = time.monotonic()
        deadline, last = start + timeout, start + SLOW_CAP * timeout
        while not _DA1_REPLY.search(answers.decode("latin-1")):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd_in], [], [], left)
            if ready:
                chunk = os.read(fd_in, 4096)
                if not chunk:
                    break
                answers += chunk
                if b"\x1b" in chunk:  # the terminal is answering, slowly: give it the time it takes
                    deadline = min(last, max(deadline, time.monotonic() + timeout))
    finally:
        termios.tcsetattr(fd_in, termios.TCSANOW, saved)
    return answers.decode("latin-1")


def _terminal_fds() -> tuple[int, int] | None:
    """The terminal Textual will use: it reads stdin and draws on stderr (else stdout)."""
    try:
        fd_in = sys.__stdin__.fileno()
    except (AttributeError, ValueError, OSError):
        return None
    if not os.isatty(fd_in):
        return None
    for stream in (sys.__stderr__, sys.__stdout__):
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):
            continue
        if os.isatty(fd):
            return fd_in, fd
    return None


def _refused(asked: str, why: str) -> Graphics:
    if os.environ.get("TMUX") or os.environ.get("STY"):
        why = f"{why} {MUX_HINT}"
    return Graphics(asked=asked, why=why)


def probe(asked: str, fds: tuple[int, int] | None = None, timeout: float = TIMEOUT_S) -> Graphics:
    """Ask the terminal about ``asked`` ("sixel" or "kitty"; anything else asks nothing)."""
    if asked not in PROTOCOLS:
        return Graphics(asked=asked)
    if asked == "sixel" and not encoder_installed():
        return Graphics(asked=asked, why="--graphics sixel needs the sixel encoder: pip install "
                                         "'labelreview[graphics]' (textual-image). Pictures stay in half-blocks.")
    fds = fds or _terminal_fds()
    if fds is None:
        return _refused(asked, f"--graphics {asked}: not a terminal, so pictures stay in half-blocks.")
    fd_in, fd_out = fds
    cell = cell_from_window(window_pixels(fd_out)) or cell_from_window(window_pixels(fd_in))
    questions = (KITTY_QUERY if asked == "kitty" else "") + ("" if cell else CELL_SIZE_QUERY) + DA1
    heard: list[str] = []

    def asking(more: str) -> str:
        heard.append(ask(fd_in, fd_out, more, timeout))
        return heard[-1]

    try:
        answers = asking(questions)
    except (ImportError, OSError) as exc:
        return _refused(asked, f"--graphics {asked}: could not ask the terminal ({exc}); half-blocks.")
    graphics = understand(asked, answers, cell, lambda more: asking(more + DA1))
    typed = typed_among("".join(heard))
    return dataclasses.replace(graphics, typed=typed) if typed else graphics


def typed_among(answers: str) -> str:
    """What was read while asking that is not an answer of the terminal: keys typed meanwhile
    (the terminal's input is one stream; the answers were read from it, and so were they)."""
    for reply in _REPLIES:
        answers = reply.sub("", answers)
    return answers


def understand(asked: str, answers: str, cell: tuple[int, int] | None, ask_more=None) -> Graphics:
    """The terminal's ``answers`` to the questions of ``probe`` as a ``Graphics``; ``ask_more`` asks
    a sixel terminal the size and colours of its pictures (XTSMGRAPHICS) in a second round."""
    da1 = _DA1_REPLY.search(answers)
    if da1 is None:
        return _refused(asked, f"--graphics {asked}: the terminal did not answer within {TIMEOUT_S:g} s "
                               "that it shows such pictures, so they stay in half-blocks.")
    if cell is None and (m := _CELL_REPLY.search(answers)):
        height, width = int(m.group(1)), int(m.group(2))
        cell = (width, height) if width > 0 and height > 0 else None
    attributes = da1.group(1)
    if asked == "sixel":
        if "4" not in attributes.split(";"):
            return _refused(asked, f"--graphics sixel: the terminal does not list sixel among its attributes "
                                   f"({attributes or 'none'}), so pictures stay in half-blocks.")
    else:
        reply = _KITTY_REPLY.search(answers)
        if reply is None or reply.group(1) != "OK":
            said = "no answer" if reply is None else reply.group(1)
            return _refused(asked, f"--graphics kitty: the terminal did not accept a kitty graphics query "
                                   f"({said}), so pictures stay in half-blocks.")
    if cell is None:
        return _refused(asked, f"--graphics {asked}: the terminal did not tell its cell size in pixels, "
                               "so pictures stay in half-blocks.")
    colors, max_pixels = 256, None
    if asked == "sixel" and ask_more is not None:
        more = ask_more(SIXEL_COLORS_QUERY + SIXEL_SIZE_QUERY)
        for m in _XTSM_REPLY.finditer(more):
            item, status, values = int(m.group(1)), int(m.group(2)), [int(v) for v in (m.group(3) or "").split(";") if v]
            if status != 0 or not values:
                continue
            if item == 1:
                colors = max(2, min(256, values[0]))
            elif item == 2 and len(values) >= 2 and values[0] > 0 and values[1] > 0:
                max_pixels = (values[0], values[1])
    return Graphics(asked=asked, protocol=asked, cell=cell, colors=colors, max_pixels=max_pixels)
