"""The review app: wires the store and the review layer to the screen; checkpoints off the UI thread."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import sys
import threading
import unicodedata
from concurrent.futures import Future, ThreadPoolExecutor

from textual import events, work
from textual.app import App

from ..review import Queue, ReviewSession
from ..store import Store
from .early import EarlyFrame
from .screens.review import ReviewScreen, colour_advice, keymap_of
from .termgraphics import Graphics
from . import textual_fixes

textual_fixes.apply()


class LabelReviewApp(App):
    CSS_PATH = "app.tcss"
    #: Under 72 columns the side panel (44 wide) would leave the picture a column or two: it takes
    #: half the width there instead (app.tcss, ``.-narrow``).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (72, "-normal")]
    TITLE = "labelreview"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, store: Store, queue: Queue, session: ReviewSession | None = None,
                 early: EarlyFrame | None = None, graphics: Graphics | None = None):
        # Named colours pass through as the terminal's own: no per-cell truecolor conversion
        # filter on the ~8,000 image cells of every frame (measured: ~12 ms of each frame).
        super().__init__(ansi_color=True)
        self.store = store
        self._queue = queue
        self.session = session or ReviewSession(store, auto_checkpoint=False)
        self.early = early  # the first picture, started before this module was imported
        # What the terminal said it shows (asked before Textual started: termgraphics.probe).
        self.graphics = graphics or Graphics()
        self.keymap_overrides = dict(store.config.keys)
        self.review_screen: ReviewScreen | None = None
        self.quitting = False
        self.typing: _Typing | None = None  # (set by run(): the terminal as it was before)

    def exit(self, *args, **kwargs) -> None:
        if self.typing is not None:
            self.typing.mute(self._driver)
        super().exit(*args, **kwargs)

    def notify(self, message: str, **kwargs) -> None:
        """Messages as text, never markup (a screen's notify passes markup=True): they quote class
        names, reasons and what the reviewer typed ("unknown order '[/b]'" crashed the app once its
        toast was drawn)."""
        kwargs["markup"] = False
        super().notify(message, **kwargs)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and event.key == "ctrl+j" and not event.is_forwarded:
            # Enter typed ahead while the review starts (before Textual has the terminal in raw
            # mode) comes as a line feed: the terminal's line mode turns CR into LF, which Textual
            # reads as ctrl+j. "x enter" typed at launch opened the reject dialog and left it
            # open, the enter lost. A line feed is Enter here, as in a shell.
            event = events.Key("enter", "\r")
        await super().on_event(event)

    @property
    def queue(self) -> Queue:
        """The queue under review: the review screen's, which `/` replaces."""
        return self.review_screen.queue if self.review_screen is not None else self._queue

    def get_default_screen(self) -> ReviewScreen:
        # The review is the app's base screen, not pushed over Textual's default one: a screen
        # underneath forwarded its own first paints to the top one, which repainted the whole
        # terminal again after the first frame (~170 KB more at 160x50).
        self.review_screen = ReviewScreen(self.store, self._queue, self.session)
        return self.review_screen

    def on_load(self) -> None:
        asyncio.get_running_loop().set_default_executor(DaemonThreads())

    def on_mount(self) -> None:
        # A reviewer's terminal closed (an SSH connection dropped, the window shut: SIGHUP) or the
        # process told to stop (SIGTERM) ends the review as q does: its leases given back and its
        # decisions committed in its name (run's finally). Python's default for both ended the
        # process on the spot, leaving them out of git until someone else's next checkpoint.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._ended_from_outside, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # (not the main thread: a test)
                pass
        if self.keymap_overrides:
            # As Textual names the keys ("Space" was bound as written, and space did nothing).
            keymap, _keys, problems = keymap_of(self.keymap_overrides)
            self.set_keymap(keymap)
            for problem in problems:
                self.notify(problem, title="labelreview.toml", severity="warning", timeout=15)
        if self.console.color_system not in ("truecolor", "windows") and not os.environ.get("COLORTERM"):
            hint, advice = colour_advice(self.console.color_system, os.environ.get("TERM"))
            self.review_screen.color_hint, self.review_screen.color_advice = hint, advice
            self.notify(advice, title="colours", timeout=12)
        if self.graphics.why:
            self.notify(self.graphics.why, title="graphics", severity="warning", timeout=15)
        if self.graphics.typed:  # read with the terminal's answers while it was asked: not lost
            self.call_after_refresh(self._replay_typed, self.graphics.typed)

    def _ended_from_outside(self, signum: int) -> None:
        self.quitting = True  # no key decides anything from here on
        if signum == signal.SIGHUP:
            # The terminal is gone. Textual's own shutdown writes to it (mouse off, screen given
            # back) through its writer thread, which dies on the closed terminal: once its queue is
            # full the shutdown waited for ever, and the process with its leases lived on. Save as
            # q does, here, and leave without a word (there is nobody to read it).
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            try:
                leave(self.store, self.queue)
            except BaseException:  # (nowhere to say it: the decisions are in the event log)
                pass
            finally:
                os._exit(128 + signum)
        self.exit(return_code=128 + signum)

    def _replay_typed(self, text: str) -> None:
        for key, char in keys_of(text):
            self.post_message(events.Key(key, char))

    def schedule_checkpoint(self) -> None:
        if self.store.checkpoint_due():
            self.store.checkpoint_started()
            self._checkpoint()

    @work(thread=True, exclusive=True, group="checkpoint")
    def _checkpoint(self) -> None:
        # Its own connection: git and SQLite work happen off the UI thread, never between key and frame.
        with Store.open(self.store.root, author=self.store.identity.author, recover=False) as other:
            other.checkpoint()
        if self.review_screen is not None:  # 'N not in git yet' is all in git now: say so
            self.call_from_thread(self.review_screen.show_progress)

    def action_quit_review(self) -> None:
        # Keys typed after q (they queue while git saves) decide nothing: the screen refuses every
        # action from here on (ReviewScreen.check_action); before, 'q a' recorded an accept never
        # shown, and 'q a r' opened the picker on a closing app.
        self.quitting = True
        self.notify("Saving to git…", timeout=2)
        self.store.checkpoint()
        self.exit(0)


class DaemonThreads(ThreadPoolExecutor):
    """The event loop's executor, which runs Textual's thread workers (decode and draw, prefetch,
    the background checkpoint). asyncio's default, a ThreadPoolExecutor, is waited for when the app
    ends, and Python joins its threads at exit: q waited for the decode in progress, which cannot be
    interrupted (with a 9000x9000 PNG being prefetched: 0.8-1.1 s after q against 0.3-0.4 s, the
    decode alone 0.86 s; longer for bigger files and slower machines). Here the threads
    are daemons, work still queued at the end is cancelled, and the end does not wait for work in
    progress. Nothing durable is left to a worker: a decision is on disk before the screen shows
    it, and q commits to git in the UI thread, under the store's git lock (so after a background
    checkpoint under way); a checkpoint cut short anyway is one a kill -9 leaves, which the next
    start cleans up. (A ThreadPoolExecutor only by name, which asyncio requires: none of its own
    machinery is used.)"""

    def __init__(self, max_workers: int | None = None):
        super().__init__(max_workers)
        self._max = self._max_workers
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            future: Future = Future()
            self._queue.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max:
                thread = threading.Thread(target=self._run, name=f"labelreview-worker-{len(self._threads)}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as e:  # (as ThreadPoolExecutor: the awaiting side gets it)
                    future.set_exception(e)
                else:
                    future.set_result(result)
            del future, fn, args, kwargs
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancel what has not started; never wait for what has."""
        with self._lock:
            self._closed = True
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
            for _ in self._threads:
                self._queue.put(None)


#: How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms). Render
#: workers compose the next pictures in Python and numpy while the UI thread answers a key; each
#: time the UI thread releases the GIL (a SQLite query, a write) it waited up to 5 ms to get it
#: back (measured: a 0.1 ms image lookup took 1.8 ms inside the app). A shorter slice lets it back
#: in sooner, at the cost of a little more switching in the workers.
SWITCH_INTERVAL = 0.0005


#: Escape sequences of the keys a reviewer may type ahead (normal and application cursor modes).
_SEQUENCES = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left",
              "\x1bOA": "up", "\x1bOB": "down", "\x1bOC": "right", "\x1bOD": "left"}


def keys_of(text: str) -> list[tuple[str, str | None]]:
    """Text read from the terminal as (Textual key name, character) pairs: printable characters,
    enter, tab, backspace, escape and the arrows; any other sequence is dropped."""
    try:
        from textual.keys import _character_to_key as name_of
    except ImportError:  # (a Textual without it: the same rule)
        def name_of(c: str) -> str:
            return unicodedata.name(c, "").lower().replace(" ", "_").replace("-", "_")
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(text):
        seq = next((q for q in _SEQUENCES if text.startswith(q, i)), None)
        if seq is not None:
            out.append((_SEQUENCES[seq], None))
            i += len(seq)
            continue
        c = text[i]
        i += 1
        if c == "\x1b":
            if i < len(text) and text[i] in "[O":  # another sequence: skip to its final byte
                i += 1
                while i < len(text) and not ("@" <= text[i] <= "~"):
                    i += 1
                i += 1
            else:
                out.append(("escape", None))
        elif c in "\r\n":
            out.append(("enter", "\r"))
        elif c == "\t":
            out.append(("tab", "\t"))
        elif c in "\x7f\x08":
            out.append(("backspace", None))
        elif c.isprintable():
            out.append((c if c.isalnum() else name_of(c), c))
    return out


def run(store: Store, queue: Queue, graphics: Graphics | None = None, session: ReviewSession | None = None,
        early: EarlyFrame | None = None) -> int:
    app = LabelReviewApp(store, queue, session, early, graphics)
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    app.typing = _Typing()
    try:
        app.run()
    finally:
        if app.quitting:  # (a terminal that hangs up while git saves: let it finish)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            leave(store, app.queue)  # also after a crash of the UI: what was decided goes to git
        finally:
            store.close()
            sys.setswitchinterval(before)
            app.typing.restore()
    return app.return_code or 0


class _Typing:
    """Keys typed while the review closes were meant for it, not for the shell. Textual gives the
    terminal back as it found it, echo on, and the review then saves to git: a reviewer's last j's
    showed up on the shell's line. So Textual gives it back with echo off (``mute``, as the app
    exits), and once the review has saved, ``restore`` gives back the terminal as it was before the
    review, dropping what was typed meanwhile (TCSAFLUSH)."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = self.saved = None
        try:
            import termios

            fd = sys.stdin.fileno() if fd is None else fd
            self.saved = termios.tcgetattr(fd)
            self.fd = fd
        except Exception:  # (not a terminal, or no termios: nothing to do)
            pass

    def mute(self, driver) -> None:
        attrs = getattr(driver, "attrs_before", None)  # (Textual's Linux driver restores these)
        if self.saved is not None and isinstance(attrs, list) and len(attrs) > 3:
            import termios

            attrs[3] &= ~termios.ECHO

    def restore(self) -> None:
        if self.saved is None:
            return
        import termios

        try:
            termios.tcsetattr(self.fd, termios.TCSAFLUSH, self.saved)
        except (termios.error, OSError):
            pass


def leave(store: Store, queue: Queue) -> None:
    """Leaving the review: give back the images this process holds (the place is saved), and
    commit what was decided to git."""
    queue.close()
    store.checkpoint()
