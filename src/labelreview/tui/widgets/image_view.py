"""ImageView: one image with its annotation overlays as half-block text, rendered off the UI thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.geometry import Region
from textual.cache import LRUCache
from textual.message import Message
from rich.color import ColorSystem
from rich.console import Console
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget
from textual.worker import get_current_worker

from labelreview.tui.widgets.finished import FinishedLines
from labelreview.tui.render import (
    Decoded,
    Frame,
    ImageUnavailable,
    Overlay,
    RenderOptions,
    compose,
    decode,
    finish_lines,
    pixels_of,
    placeholder,
)

if TYPE_CHECKING:
    from labelreview.tui.early import EarlyFrame

LOADING_DELAY = 0.15  # seconds before "loading…" replaces the previous frame
PREFETCH_YIELD_TIMEOUT = 1.0  # longest a prefetch waits for a foreground render to finish

Cells = tuple[int, int]
CacheKey = tuple[Any, ...]
_DecodeKey = tuple[str, "tuple[int, int] | None"]
PrefetchRequest = tuple[Hashable, "str | PathLike[str] | None", Sequence[Overlay], RenderOptions]


@dataclass(frozen=True, slots=True)
class _Request:
    key: Hashable
    path: str | None
    overlays: tuple[Overlay, ...]
    options: RenderOptions

    @classmethod
    def make(
        cls, key: Hashable, path: str | PathLike[str] | None, overlays: Sequence[Overlay], options: RenderOptions
    ) -> _Request:
        return cls(key, None if path is None else str(path), tuple(overlays), options)

    def cache_key(self, cells: Cells) -> CacheKey:
        return (self.key, self.path, self.overlays, self.options, cells)

    def decode_target(self, cells: Cells) -> tuple[int, int] | None:
        # Zoom crops from the full-resolution picture; otherwise decode just big enough for the cells.
        if self.options.zoom and any(ov.selected for ov in self.overlays):
            return None
        return pixels_of(cells)


class _DecodeCache:
    """Small LRUs of decoded pictures shared by the render threads; each key is decoded once at a time."""

    def __init__(self, maxsize: int, full_size_max: int = 2) -> None:
        self._small: LRUCache[_DecodeKey, Decoded] = LRUCache(maxsize)
        # Full-resolution pictures (zoom) are ~36 MB each at 12 MP: keep only a couple.
        self._full: LRUCache[_DecodeKey, Decoded] = LRUCache(full_size_max)
        self._lock = threading.Lock()  # LRUCache itself is not thread-safe
        self._key_locks: dict[_DecodeKey, threading.Lock] = {}

    def _cache(self, key: _DecodeKey) -> LRUCache[_DecodeKey, Decoded]:
        return self._full if key[1] is None else self._small

    def _near(self, path: str, target: tuple[int, int]) -> Decoded | None:
        """A picture of ``path`` decoded for another size that serves ``target`` as well: at least as
        big, at most ~2.5x (the warm-up decode at launch guesses the size before the layout)."""
        for other in list(self._small.keys()):
            if other[0] == path and other[1] is not None:
                decoded = self._small.get(other)
                if decoded is not None:
                    w, h = decoded.image.size
                    smallest = w * 8 <= decoded.orig_size[0] + 8  # a JPEG's draft goes no lower than 1/8
                    if target[0] <= w and target[1] <= h and (
                            smallest or (w <= 2.5 * target[0] + 8 and h <= 2.5 * target[1] + 8)):
                        return decoded
        return None

    def put(self, decoded: Decoded, target: tuple[int, int] | None) -> None:
        key = (decoded.path, target)
        with self._lock:
            self._cache(key).set(key, decoded)

    def get(self, path: str, target: tuple[int, int] | None) -> Decoded:
        key = (path, target)
        cache = self._cache(key)
        with self._lock:
            hit = cache.get(key)
            if hit is None and target is not None:
                hit = self._near(path, target)
            if hit is not None:
                return hit
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        # A prefetch may be decoding this very file: wait for it rather than decode it twice.
        with key_lock:
            with self._lock:
                hit = cache.get(key)
            if hit is not None:
                return hit
            try:
                decoded = decode(path, target)
                with self._lock:
                    cache.set(key, decoded)
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)
            return decoded


class ImageView(FinishedLines, Widget):
    """Shows a rendered `Frame` through the Line API; frames are built in thread workers and cached."""

    DEFAULT_CSS = """
    ImageView {
        width: 1fr;
        height: 1fr;
    }
    """

    class FrameShown(Message):
        """The frame for `key` is on screen; `message` is set when it is a placeholder (e.g. missing image)."""

        def __init__(self, key: Hashable, message: str | None = None) -> None:
            super().__init__()
            self.key = key
            self.message = message

    def __init__(
        self,
        *,
        frame_cache_size: int = 32,
        ahead_cache_size: int = 6,
        decode_cache_size: int = 6,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._frames: LRUCache[CacheKey, Frame] = LRUCache(frame_cache_size)  # main thread only
        # Frames of the picture on screen drawn ahead (another selection, a decision's outcome):
        # a few (j, space, a, k, and a reason's decision), apart, so that they never push other
        # images' frames out of ``_frames``.
        self._ahead: LRUCache[CacheKey, Frame] = LRUCache(ahead_cache_size)  # main thread only
        self._decoded = _DecodeCache(decode_cache_size)
        self._request: _Request | None = None
        self._message: str | None = None  # shown instead of a picture (show_message)
        self._frame: Frame | None = None
        self._shown: CacheKey | None = None  # cache key of the frame on screen (None while loading)
        self._loading_timer: Timer | None = None
        # Foreground renders in flight; prefetch waits while there are any.
        self._foreground_lock = threading.Lock()
        self._foreground_count = 0
        self._foreground_idle = threading.Event()
        self._foreground_idle.set()
        self._prefetch_lock = threading.Lock()
        self._prefetch_queue: list[tuple[_Request, Cells, CacheKey, bool]] = []
        self._prefetch_running = False
        self._early: EarlyFrame | None = None

    # ------------------------------------------------------------------ public API

    @property
    def frame(self) -> Frame | None:
        """The frame on screen (possibly a placeholder)."""
        return self._frame

    @property
    def shown_key(self) -> Hashable | None:
        """The key whose frame is on screen, or None while loading."""
        return self._shown[0] if self._shown is not None else None

    @property
    def _console(self) -> Console | None:
        try:
            return self.app.console
        except Exception:  # no app (tests of the widget alone)
            return None

    @property
    def _color_system(self) -> ColorSystem | None:
        console = self._console
        return console._color_system if console is not None else None

    def show(
        self,
        key: Hashable,
        path: str | PathLike[str] | None,
        overlays: Sequence[Overlay],
        options: RenderOptions = RenderOptions(),
    ) -> None:
        """Show `path` with `overlays`: at once if cached, else after a background render."""
        self._request = _Request.make(key, path, overlays, options)
        self._message = None
        self._update()

    def show_message(self, message: str) -> None:
        """No picture: ``message`` in its place (an empty queue), until the next ``show``."""
        self._request, self._message = None, message
        self._stop_loading_timer()
        self._update()

    def warm(self, path: str | PathLike[str] | None, cells: Cells) -> None:
        """Start decoding ``path`` for about ``cells`` now, before this widget has its size: at
        launch the first picture decodes while the app mounts and lays out (a 12 MP JPEG is
        30-80 ms here); the render worker takes it from the decode cache."""
        if path is not None and cells[0] > 0 and cells[1] > 0:
            self._warm_decode(str(path), pixels_of(cells))

    def take_early(self, early: EarlyFrame) -> None:
        """The first picture, being made since before the app started (``tui.early``): the first
        render takes its frame if it fits, or at least its decoded picture."""
        self._early = early

    def _from_early(self, request: _Request, cells: Cells) -> Frame | None:
        """The first picture (``take_early``) if it was made for exactly this request and these
        cells, else None; its decoded picture goes to the decode cache either way. Taken once;
        waits for it if it is not done yet."""
        early, self._early = self._early, None
        frame = early.frame_for(request.path, request.overlays, request.options, cells, self._color_system)
        if early.decoded is not None:
            self._decoded.put(early.decoded, early.decode_target)
        return frame

    @work(thread=True, group="warm", exit_on_error=False)
    def _warm_decode(self, path: str, target: tuple[int, int]) -> None:
        try:
            self._decoded.get(path, target)
        except ImageUnavailable:
            pass  # the render worker meets it again and shows why

    def prefetch(self, requests: Sequence[PrefetchRequest], ahead: Sequence[PrefetchRequest] = ()) -> None:
        """Render (key, path, overlays, options) requests into the cache in the background:
        ``ahead`` first (the picture on screen as the next keys may show it: kept apart, a few),
        then ``requests`` (other pictures).

        A later call replaces the requests still waiting; the current frame always goes first.
        """
        cells = self._cells()
        if cells is None:
            return
        wanted = self._wanted()
        jobs = []
        for is_ahead, batch in ((True, ahead), (False, requests)):
            for key, path, overlays, options in batch:
                if path is None:
                    continue
                request = _Request.make(key, path, overlays, options)
                cache_key = request.cache_key(cells)
                if cache_key != wanted and cache_key not in self._frames and cache_key not in self._ahead:
                    jobs.append((request, cells, cache_key, is_ahead))
        with self._prefetch_lock:
            self._prefetch_queue = jobs
            start = bool(jobs) and not self._prefetch_running
            if start:
                self._prefetch_running = True
        if start:
            self._prefetch_worker()

    # ------------------------------------------------------------------ Line API

    def lines_finished(self) -> bool:
        """Picture strips are complete and were rendered to escape codes in the worker
        (``render.finish_lines``). Placeholders (plain text on the widget's background) and a frame of
        another size take Textual's path."""
        return self._fits(self._frame)

    def _fits(self, frame: Frame | None) -> bool:
        """A picture (not a placeholder) with a line for every row of this widget, at its width."""
        width, height = self.size
        return not (frame is None or frame.message is not None or frame.width != width
                    or len(frame.strips) < height)

    def finished_lines(self, ys: range) -> list[Strip]:
        strips, height = self._frame.strips, self.size.height
        return [strips[y] for y in ys if 0 <= y < height]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        frame = self._frame
        if frame is None or y >= len(frame.strips):
            return Strip.blank(width, self.rich_style)
        strip = frame.strips[y]
        if strip.cell_length != width:  # an older frame while the new size renders
            strip = strip.crop_extend(0, width, self.rich_style)
        return strip

    def on_resize(self, event: events.Resize) -> None:
        self._update()

    # ------------------------------------------------------------------ internals

    def _cells(self) -> Cells | None:
        width, height = self.size
        return (width, height) if width > 0 and height > 0 else None

    def _wanted(self) -> CacheKey | None:
        cells = self._cells()
        if self._request is None or cells is None:
            return None
        return self._request.cache_key(cells)

    def _update(self) -> None:
        request, cells = self._request, self._cells()
        if request is None and self._message is not None and cells is not None:
            self._display(("message", self._message, cells), placeholder(cells, self._message))
            return
        if request is None or cells is None:
            return  # rendered on the first resize
        cache_key = request.cache_key(cells)
        if request.path is None:
            self._display(cache_key, placeholder(cells, "no image"))
            return
        frame = self._frames.get(cache_key)
        if frame is None:
            frame = self._ahead.get(cache_key)
            if frame is None and self._early is not None and self._early.wait(0):
                frame = self._from_early(request, cells)  # done already: no worker needed
            if frame is not None:  # shown now: kept with the other shown frames
                self._frames.set(cache_key, frame)
        if frame is not None:
            self._display(cache_key, frame)
            return
        # Counted from the latest request: while keys repeat quickly the previous image stays up.
        self._stop_loading_timer()
        self._loading_timer = self.set_timer(LOADING_DELAY, self._show_loading)
        self._render(request, cells, cache_key)

    def _display(self, cache_key: CacheKey, frame: Frame) -> None:
        self._stop_loading_timer()
        before, self._frame = self._frame, frame
        self._shown = cache_key
        changed = self._changed_lines(before, frame)
        if changed is None:
            self.refresh()
        elif changed:
            self.refresh(*changed)
        self.call_after_refresh(self.post_message, self.FrameShown(cache_key[0], frame.message))

    def _changed_lines(self, before: Frame | None, after: Frame) -> list[Region] | None:
        """The runs of lines where ``after`` differs from ``before`` on screen, or None for all.

        Moving to another annotation of the same image changes the lines of two boxes (and their
        labels and masks): only those go to the terminal, not the whole picture again (~170 KB in
        true colour at 160x50, which tmux takes ~20 ms to read and a slow SSH link far longer).
        Lines are compared by their finished escape codes; anything else (a placeholder, another
        size, Textual's own rendering path) repaints everything."""
        if not (self._fits(before) and self._fits(after)):
            return None
        width, height = self.size
        runs: list[Region] = []
        start = None
        for y in range(height + 1):
            same = y == height or before.strips[y] is after.strips[y] or (
                before.strips[y]._render_cache is not None
                and before.strips[y]._render_cache == after.strips[y]._render_cache)
            if not same and start is None:
                start = y
            elif same and start is not None:
                runs.append(Region(0, start, width, y - start))
                start = None
        return runs

    def _show_loading(self) -> None:
        self._loading_timer = None
        cells = self._cells()
        if cells is not None and self._shown != self._wanted():
            self._frame = placeholder(cells, "loading…")
            self._shown = None
            self.refresh()

    def _stop_loading_timer(self) -> None:
        if self._loading_timer is not None:
            self._loading_timer.stop()
            self._loading_timer = None

    def _deliver(self, cache_key: CacheKey, frame: Frame, cacheable: bool, ahead: bool = False) -> None:
        """Main thread: keep a finished frame, and show it if it is still the one wanted."""
        if cacheable:
            (self._ahead if ahead else self._frames).set(cache_key, frame)
        if cache_key == self._wanted() and cache_key != self._shown:
            self._display(cache_key, frame)

    def _call_main(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            self.app.call_from_thread(callback, *args)
        except RuntimeError:
            pass  # the app is shutting down; nobody is waiting for this frame

    @contextmanager
    def _foreground(self) -> Iterator[None]:
        with self._foreground_lock:
            self._foreground_count += 1
            self._foreground_idle.clear()
        try:
            yield
        finally:
            with self._foreground_lock:
                self._foreground_count -= 1
                if self._foreground_count == 0:
                    self._foreground_idle.set()

    def _build(self, request: _Request, cells: Cells, background: bool) -> tuple[Frame | None, bool]:
        """Worker thread: (frame, cacheable); frame is None if the work was abandoned."""
        worker = get_current_worker()
        assert request.path is not None
        try:
            if background:
                self._foreground_idle.wait(PREFETCH_YIELD_TIMEOUT)
            elif self._early is not None:
                frame = self._from_early(request, cells)  # (waits for it: it is on its way)
                if frame is not None:
                    return frame, True
            if worker.is_cancelled:  # superseded while queued for a pool thread
                return None, False
            decoded = self._decoded.get(request.path, request.decode_target(cells))
            if worker.is_cancelled:
                return None, False
            if background:
                self._foreground_idle.wait(PREFETCH_YIELD_TIMEOUT)
            frame = compose(decoded, request.overlays, cells, request.options)
            finish_lines(frame, self._color_system, self._console)
            return frame, True
        except ImageUnavailable as exc:
            # Not cached: the file may appear or be repaired before the reviewer comes back.
            return placeholder(cells, exc.message), False
        except Exception as exc:  # noqa: BLE001 - a bad annotation must not take the review down
            return placeholder(cells, f"cannot render {request.path}: {exc!r}"), False

    @work(thread=True, exclusive=True, group="render", exit_on_error=False)
    def _render(self, request: _Request, cells: Cells, cache_key: CacheKey) -> None:
        with self._foreground():
            frame, cacheable = self._build(request, cells, background=False)
        if frame is not None:
            self._call_main(self._deliver, cache_key, frame, cacheable)

    @work(thread=True, group="prefetch", exit_on_error=False)
    def _prefetch_worker(self) -> None:
        worker = get_current_worker()
        try:
            while not worker.is_cancelled:
                with self._prefetch_lock:
                    if not self._prefetch_queue:
                        self._prefetch_running = False
                        return
                    request, cells, cache_key, ahead = self._prefetch_queue.pop(0)
                frame, cacheable = self._build(request, cells, background=True)
                if frame is not None and cacheable:
                    self._call_main(self._deliver, cache_key, frame, True, ahead)
        finally:
            with self._prefetch_lock:
                self._prefetch_running = False
