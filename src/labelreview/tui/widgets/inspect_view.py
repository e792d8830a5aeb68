"""InspectView: one picture at the terminal's real pixels, through sixel or the kitty protocol.

Made in a thread worker (decode, crop, outlines, encode: tenths of a second for a large view), with
"loading…" shown meanwhile. Each line of the view carries its own escape codes as one control
segment (no cells for Textual to count): spaces to clear the line, then the pixels of that cell row.
A repaint of any line thus draws that line's pixels again. The view must be as wide as the screen
and nothing may be drawn over it (the inspect screen hides toasts): the compositor writes a line's
pieces one after another without moving the cursor, and a piece after this one would be misplaced.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.color import ColorSystem
from rich.control import Control
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.worker import get_current_worker

from ..pixels import kitty_delete, kitty_png, kitty_show, sixel_rows
from ..render import BACKGROUND, ImageUnavailable, Inspected, Overlay, inspect_picture
from ..termgraphics import Graphics

_MARGIN = Style(bgcolor="#%02x%02x%02x" % BACKGROUND)

#: Longest the view waits for its last paint before it closes anyway.
CLOSE_WAIT_S = 0.5

class _Codes:
    """A segment's ``control`` marking it as escape codes, not text: Textual counts it as no cells
    and never splits it. Not Rich's usual tuple of control codes: Rich's repr of such a segment
    raises (it reads a tuple as name and value), and an error whose traceback showed one of these
    lines ended the app with that TypeError instead of its own."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "codes"


_CONTROL = _Codes()

#: The kitty protocol's image ids live as long as the terminal window: one run of the app uses its
#: own (a new view replaces the last one's picture, and removes it as it closes).
_KITTY_IDS = itertools.count(random.randint(1, 2**30))


@dataclass(frozen=True, slots=True)
class Picture:
    """What the worker made: the picture, and its codes cell row by cell row."""

    inspected: Inspected
    cells: tuple[int, int]  # the picture's columns and rows
    offset: tuple[int, int]  # its top-left cell in the view
    rows: tuple[str, ...]  # codes for each of its cell rows ("" where none are needed)
    seconds: float  # how long making it took


class InspectView(Widget):
    DEFAULT_CSS = """
    InspectView { width: 100%; height: 1fr; content-align: center middle; color: $text-muted; }
    """

    def __init__(self, graphics: Graphics, path: str | None, overlays: Sequence[Overlay],
                 orig_size: tuple[int, int] | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graphics = graphics
        self.path = path
        self.overlays = tuple(overlays)
        self.orig_size = orig_size
        self.message = "loading…"
        self.picture: Picture | None = None
        self.closing = False
        self._then: Callable[[], object] | None = None
        self.kitty_id = next(_KITTY_IDS) if graphics.protocol == "kitty" else 0
        self._made_for: tuple[int, int] | None = None

    # ------------------------------------------------------------------ making the picture

    def on_resize(self, event: events.Resize) -> None:
        cols, rows = self.size
        if cols <= 0 or rows <= 0 or (cols, rows) == self._made_for:
            return
        self._made_for = (cols, rows)
        self.picture = None
        self.message = "loading…"
        self.refresh()
        self._make(cols, rows)

    def layout_for(self, cols: int, rows: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """The picture's cells and their offset in a view of ``cols`` x ``rows``: all of it, or
        what the terminal's largest sixel picture allows, centred."""
        cw, ch = self.graphics.cell
        pc, pr = cols, rows
        if self.graphics.protocol == "sixel" and self.graphics.max_pixels:
            pc, pr = min(cols, self.graphics.max_pixels[0] // cw), min(rows, self.graphics.max_pixels[1] // ch)
        return (pc, pr), ((cols - pc) // 2, (rows - pr) // 2)

    @work(thread=True, exclusive=True, group="inspect", exit_on_error=False)
    def _make(self, cols: int, rows: int) -> None:
        start = time.perf_counter()
        worker = get_current_worker()
        (pc, pr), offset = self.layout_for(cols, rows)
        cw, ch = self.graphics.cell
        try:
            if self.path is None:
                raise ImageUnavailable("no image file for this item")
            if pc <= 0 or pr <= 0:
                raise ImageUnavailable("the terminal is too small for a picture")
            inspected = inspect_picture(self.path, self.overlays, (pc * cw, pr * ch), self.orig_size)
            if self.graphics.protocol == "sixel":
                codes = tuple(sixel_rows(inspected.image, ch, self.graphics.colors))
            else:
                first = kitty_show(kitty_png(inspected.image), self.kitty_id, pc, pr)
                codes = (first,) + ("",) * (pr - 1)
        except ImageUnavailable as exc:
            self._deliver(worker, None, exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - a picture that cannot be made is said, never a crash
            self._deliver(worker, None, f"could not make the picture: {type(exc).__name__}: {exc}")
            return
        picture = Picture(inspected, (pc, pr), offset, codes, time.perf_counter() - start)
        self._deliver(worker, picture, None)

    def _deliver(self, worker, picture: Picture | None, message: str | None) -> None:
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, picture, message)

    def _show(self, picture: Picture | None, message: str | None) -> None:
        self.picture = picture
        self.message = message or ""
        self.refresh()

    # ------------------------------------------------------------------ lines

    def close(self, then: Callable[[], object]) -> None:
        """Paint the view once more, cleared (for kitty: the picture removed from the terminal),
        and call ``then`` once that paint is written."""
        self.closing = True
        self._then = then
        self.refresh()
        # Should no paint come (the view hidden), close all the same.
        self.set_timer(CLOSE_WAIT_S, self._after_last_paint)

    def _after_last_paint(self) -> None:
        then, self._then = self._then, None
        if then is not None:
            then()

    def render(self) -> Text:
        return Text(self.message, justify="center")

    def render_lines(self, crop: Region) -> list[Strip]:
        if self.picture is None and not self.closing:
            return super().render_lines(crop)  # "loading…" or why there is no picture
        lines = [self.line(y) for y in crop.line_range]
        if self.closing and self._then is not None:
            # The compositor writes these lines as soon as it has them all: after that, close.
            # (call_after_refresh came before the paint: the kitty picture stayed on screen.)
            self.call_later(self._after_last_paint)
        return lines

    def line(self, y: int) -> Strip:
        """Line ``y`` of the view: spaces, then its pixels (or, closing, kitty's delete)."""
        width = self.size.width
        x0, y0 = self.region.x, self.region.y + y
        codes = Control.move_to(x0, y0).segment.text + self._blank(width)
        picture = self.picture
        if self.closing:
            if y == 0 and self.kitty_id:
                codes += kitty_delete(self.kitty_id)
        elif picture is not None:
            ox, row = picture.offset[0], y - picture.offset[1]
            if 0 <= row < len(picture.rows) and picture.rows[row]:
                codes += Control.move_to(x0 + ox, y0).segment.text + picture.rows[row]
        codes += Control.move_to(x0 + width, y0).segment.text
        return Strip([Segment(codes, None, _CONTROL)], width)

    def _blank(self, width: int) -> str:
        color_system = getattr(self.app.console, "_color_system", None) or ColorSystem.TRUECOLOR
        # Black as the picture's own margins (render.BACKGROUND), not the terminal's default
        # background, which may be white (xterm's is).
        return "\x1b[0m" + _MARGIN.render(" " * width, color_system=color_system)
