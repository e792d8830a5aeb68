"""The first picture of a review, made while the rest of the screen is still being imported.

At launch the UI's imports take most of a second (Textual alone ~0.3-0.5 s here), and only then
does the image view learn its size, decode the picture, compose it and finish its escape codes
(~0.3-0.45 s more, measured on a 4000x3000 JPEG while the app lays out). This module starts that
work in a thread first: the screen's layout is simple enough to know the picture's cells from the
terminal's size (``picture_cells``, checked against the real layout by a test), and the colour
system from the environment as Textual will read it. The image view takes the frame if it was made
for exactly what it is about to show (same picture, overlays, options, cells and colour system),
and otherwise still takes the decoded picture. Nothing here is needed for correctness: any
failure leaves the screen to render as it always does.

Imports: ``render`` (numpy, Pillow, Rich, ``textual.strip``) is imported by the caller's thread
before the worker starts, so the worker never imports a module while the main thread imports
Textual's (two threads importing circularly dependent modules can deadlock).
"""

from __future__ import annotations

import io
import os
import sys
import threading
from dataclasses import dataclass

from rich.color import ColorSystem
from PIL import Image

from . import render
from .render import Decoded, Frame, Overlay, RenderOptions

#: Columns of the side panel (#side in app.tcss, border included) and rows of everything but the
#: picture (title, progress line, footer). ``tests/test_early.py`` checks them against the layout.
SIDE_COLUMNS = 44
OTHER_ROWS = 3

#: Longest the image view's render worker waits for the first picture before making its own.
WAIT_S = 10.0


def picture_cells(terminal: tuple[int, int]) -> tuple[int, int] | None:
    """The image view's size on a terminal of ``terminal`` (columns, rows), or None if none."""
    cols, rows = terminal[0] - SIDE_COLUMNS, terminal[1] - OTHER_ROWS
    return (cols, rows) if cols > 0 and rows > 0 else None


def terminal_size() -> tuple[int, int] | None:
    """The size Textual's driver will read (it draws on stderr)."""
    for stream in (sys.__stderr__, sys.__stdout__):
        try:
            size = os.get_terminal_size(stream.fileno())
            return size.columns, size.lines
        except (AttributeError, ValueError, OSError):
            continue
    return None


def color_system() -> ColorSystem | None:
    """The colour system Textual's console will have: Rich's detection on the environment
    without NO_COLOR, forced to a terminal, overridden by TEXTUAL_COLOR_SYSTEM (as textual.app)."""
    from rich.console import Console

    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    console = Console(color_system=os.environ.get("TEXTUAL_COLOR_SYSTEM", "auto"), file=io.StringIO(),
                      force_terminal=True, legacy_windows=False, _environ=env)
    return console._color_system


@dataclass(frozen=True, slots=True)
class _Made:
    path: str
    overlays: tuple[Overlay, ...]
    options: RenderOptions
    cells: tuple[int, int]
    color_system: ColorSystem | None


class EarlyFrame:
    """Decodes, composes and finishes one picture in a thread, for the image view to take."""

    def __init__(self, path: str, overlays: tuple[Overlay, ...], cells: tuple[int, int],
                 color_system: ColorSystem | None, options: RenderOptions = RenderOptions()) -> None:
        self.made = _Made(path, overlays, options, cells, color_system)
        self.decoded: Decoded | None = None
        self.frame: Frame | None = None
        self._done = threading.Event()
        Image.preinit()  # the common format plugins, imported here rather than in the thread
        threading.Thread(target=self._run, name="early-frame", daemon=True).start()

    @property
    def decode_target(self) -> tuple[int, int]:
        return render.pixels_of(self.made.cells)

    def _run(self) -> None:
        made = self.made
        try:
            self.decoded = render.decode(made.path, self.decode_target)
            frame = render.compose(self.decoded, made.overlays, made.cells, made.options)
            if made.color_system is not None:
                render.finish_lines(frame, made.color_system)
                self.frame = frame
        except Exception:  # noqa: BLE001 - the image view meets the problem again and shows it
            pass
        finally:
            self._done.set()

    def wait(self, timeout: float = WAIT_S) -> bool:
        return self._done.wait(timeout)

    def frame_for(self, path: str | None, overlays: tuple[Overlay, ...], options: RenderOptions,
                  cells: tuple[int, int], color_system: ColorSystem | None) -> Frame | None:
        """The frame, if it was made for exactly this (after waiting for it); else None.

        A frame finished for another colour system than the app's has left its escape codes on
        the shared styles: those are forgotten, so no later frame shows them."""
        if not self.wait():
            return None
        if self.frame is None:
            return None
        made = self.made
        if made.color_system != color_system:
            render.forget_styles()
            return None
        if (made.path, made.overlays, made.options, made.cells) != (path, tuple(overlays), options, cells):
            return None
        return self.frame


def start(store, queue, session) -> EarlyFrame | None:
    """Start the first picture of ``queue`` as ``session``'s reviewer will see it, if there is one
    and the terminal's size is known. Called before the UI is imported; returns at once. Whatever
    goes wrong here is left for the screen to meet (and show) as it always does."""
    try:
        image_id = queue.current_image
        cells = picture_cells(terminal_size() or (0, 0))
        if image_id is None or cells is None:
            return None
        image = store.image(image_id)
        if image.path is None:
            return None
        anns = session.image_annotations(image_id)
        selected = queue.current if any(a.id == queue.current for a in anns) else None
        overlays = render.overlays_for(anns, selected, render.skeletons_of(store.categories()))
        return EarlyFrame(str(image.path), overlays, cells, color_system())
    except Exception:  # noqa: BLE001 - an optimisation: never the reason a review does not open
        return None
