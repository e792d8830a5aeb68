"""The review screen: the image with its proposals, the list, the detail, progress, and the keys."""

from __future__ import annotations

import gc

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from ...model import Annotation, AnnotationFilter, ConflictError, Image, LabelreviewError
from ...display import printable
from ...review import Queue, ReviewSession
from ...review.queue import parse_query, remember_queue
from ...review.session import PartialUndo
from ...store import Store
from ..render import RenderOptions, overlays_for, skeletons_of
from ..widgets.annotation_list import AnnotationList
from ..widgets.detail import Detail
from ..widgets.image_view import ImageView
from ..widgets.keys import KeyHints
from ..widgets.progress import ProgressLine
from .confirm import Confirm
from .flag import ReasonDialog
from .help import HelpScreen
from .inspect import InspectScreen
from .picker import ClassPicker
from .prompt import Prompt

#: (binding id, default keys, action, footer text, shown in the footer)
KEYS = [
    ("accept", "a", "accept", "Accept", True),
    ("accept_next", "space", "accept_next", "Accept+next", True),
    ("relabel", "r", "relabel", "Relabel", True),
    ("flag", "f", "flag", "Flag", True),
    ("reject", "x", "reject", "Reject", True),
    ("undo", "u", "undo", "Undo", True),
    ("next_annotation", "j,down", "move(1)", "Next", True),
    ("previous_annotation", "k,up", "move(-1)", "Previous", False),
    ("next_image", "n,right", "move_image(1)", "Next image", True),
    ("previous_image", "p,left", "move_image(-1)", "Previous image", False),
    ("accept_all", "A", "accept_all", "Accept rest of image", False),
    ("zoom", "z", "toggle('zoom')", "Zoom", True),
    ("inspect", "i", "inspect", "Inspect in real pixels (--graphics sixel|kitty)", False),
    ("masks", "m", "toggle('show_masks')", "Masks on/off", False),
    ("names", "l", "toggle('show_names')", "Names on/off", False),
    ("go_to_image", "g", "go_to_image", "Go to image", False),
    ("filter", "slash", "filter", "Filter / order", False),
    ("help", "question_mark", "help", "Help", True),
    *[(f"pick_{n}", str(n), f"pick({n})", f"Pick decision {n} (conflicts)", False) for n in range(1, 10)],
    ("quit", "q", "quit_review", "Quit", True),
]

#: The dialogs' binding ids: remappable in [keys] too (their own screens, so no clash with the above).
DIALOG_KEY_IDS = ("confirm_yes", "confirm_no", "reason_cancel", "picker_cancel", "prompt_cancel", "help_close",
                  "inspect_close")


#: What people write for a key, as Textual names the key press.
_KEY_SPELLINGS = {"esc": "escape", "return": "enter", "del": "delete", "ins": "insert", "pgup": "pageup",
                  "page_up": "pageup", "pgdn": "pagedown", "pgdown": "pagedown", "page_down": "pagedown",
                  "spacebar": "space", "bs": "backspace"}
_MODIFIERS = ("ctrl", "alt", "shift", "meta", "super", "hyper")

#: What a [keys] value may be, for the message about one that names no key.
KEY_NAMES_HINT = ("a letter or digit (A is shift+a), a character such as / or ?, or a key's name: space, enter, "
                  "escape, tab, backspace, up, down, left, right, home, end, pageup, pagedown, f1-f12, each "
                  "also after ctrl+ or alt+")


def key_name(written: str) -> str | None:
    """A key as labelreview.toml's [keys] writes it, as Textual names the key press: "?" is
    question_mark, "Space" space, "F1" f1, "shift+y" Y, "Ctrl+Y" ctrl+y, "Esc" escape; None when no
    key press has that name ("foo"). (Each was bound as written, and the key did nothing.)"""
    from textual.keys import Keys, _character_to_key, key_to_character

    w = written.strip() or written  # (" " is space)
    if len(w) == 1:
        return _character_to_key(w)
    *mods, base = w.split("+") if not w.endswith("++") else [*w[:-2].split("+"), "+"]
    mods = [m.strip().lower() for m in mods]
    base = base.strip()
    if not base or any(m not in _MODIFIERS for m in mods) or len(set(mods)) != len(mods):
        return None
    if len(base) == 1:
        if mods == ["shift"] and base.isalpha():
            return base.upper()  # (a terminal sends shift+y as Y)
        base = base.lower() if mods else base
        base = _character_to_key(base) if not base.isalnum() else base
    else:
        base = base.lower()
        base = _KEY_SPELLINGS.get(base, base)
        if not (base in {k.value for k in Keys} or base in {_character_to_key(chr(c)) for c in range(33, 127)}
                or key_to_character(base) is not None):
            return None
    return "+".join([*mods, base])


def effective_keys(overrides: dict[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    """Each review key's keys once labelreview.toml's [keys] is applied, as Textual applies it (a
    key an override takes is taken from the binding that had it by default; a key given to two
    does the first's action), and what is wrong with the overrides: an id that names no binding
    (ignored), a key name no key press has, a key given to two, an action left with no key. (``reject
    = "a"`` took a from accept without a word, and help listed a twice.)"""
    return keymap_of(overrides)[1:]


def keymap_of(overrides: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]], list[str]]:
    """(the keymap to hand Textual, each review binding's keys, what is wrong), for [keys]."""
    import difflib

    problems = []
    known = [bid for bid, *_ in KEYS] + list(DIALOG_KEY_IDS)
    keymap: dict[str, str] = {}
    for bid, written in overrides.items():
        if bid not in known:
            close = difflib.get_close_matches(bid, known, n=1)
            problems.append(f"[keys] {bid!r} names no key binding, so it is ignored"
                            + (f" (did you mean {close[0]!r}?)" if close else ""))
            continue
        default = next((k for b, k, *_ in KEYS if b == bid), None)
        keep = f"; {bid} keeps {default.replace(',', ', ')}" if default else ""
        names = []
        for k in ([written] if written == " " else [k for k in written.split(",") if k.strip()]):
            name = key_name(k)
            if name is None:
                problems.append(f"[keys] {bid} = {written!r}: {k.strip()!r} is no key's name; give {KEY_NAMES_HINT}")
            elif name not in names:
                names.append(name)
        if names:
            keymap[bid] = ",".join(names)
        elif not written.strip(", "):
            # (Textual leaves a binding given no key as it was: help said "(no key)" while a accepted)
            problems.append(f"[keys] {bid} is given no key, which leaves it as it was{keep}")
        elif keep:
            problems.append(f"[keys] {bid} is given no key that can be pressed{keep}")
    keys: dict[str, list[str]] = {}
    claimed: dict[str, list[str]] = {}
    for bid, *_ in KEYS:
        if bid in keymap:
            keys[bid] = keymap[bid].split(",")
            for k in keys[bid]:
                claimed.setdefault(k, []).append(bid)
    for k, bids in claimed.items():
        if len(bids) > 1:
            problems.append(f"[keys] {k!r} is given to both {' and '.join(bids)}: it does {bids[0]}")
            for bid in bids[1:]:  # (Textual runs the binding declared first)
                keys[bid].remove(k)
                if not keys[bid]:
                    text = next(t for b, _k, _a, t, _s in KEYS if b == bid)
                    problems.append(f"[keys] {text} ({bid}) has no key left: {k!r} is {bids[0]}'s")
    for bid, default, _action, text, _show in KEYS:
        if bid not in keymap:
            keys[bid] = [k for k in default.split(",") if k not in claimed]
            lost = [k for k in default.split(",") if k in claimed]
            if lost and not keys[bid]:
                problems.append(f"[keys] {text} ({bid}) has no key left: {lost[0]!r} is "
                                f"{claimed[lost[0]][0]}'s now")
    return keymap, keys, problems


def shown_key(key: str) -> str:
    """A key as the help screen and messages name it."""
    return {"slash": "/", "question_mark": "?"}.get(key, key)


FILTER_HINT = ("e.g.  status:pending class:dog,cat source:model score:0:0.5 by:alice reason:loose-box "
               "image:3,7 order:score|score-desc|random|suspicion|file seed:7")


#: A full garbage collection runs after this many seconds without a new frame, once this many
#: frames have been shown since the last one (frames freeze the GC's generations, see below).
IDLE_COLLECT_AFTER = 2.0
IDLE_COLLECT_FRAMES = 20

#: Seconds between a new picture handed to the terminal and its neighbours' rendering. A local
#: terminal (tmux here) takes ~20-30 ms to read and parse a new picture's ~170 KB; neighbours
#: decoded meanwhile took a core from it (measured through tmux, 160x50, 23 presses, alternating
#: runs: key press to picture on screen p50 51.3 -> 44.9 ms, tmux's part 28.5 -> 24.6 ms). A key
#: pressed sooner than this after a picture finds its neighbour unrendered, as it would anyway.
PREFETCH_AFTER = 0.04

#: Seconds after a new picture before the same picture is drawn ahead as the next keys may show it
#: (j: the next item; space: the next item, the current one accepted; a: the current one accepted).
#: Later than the neighbours: flipping through images without stopping, each press came before
#: these composes (~25 ms each) were done, and they slowed the next one (back through seen images,
#: p50 41 -> 55 ms); a reviewer who stops to look at the picture has them well before the next key.
AHEAD_AFTER = 0.12

#: What the launch notice and the help screen say when the terminal reports 256 colours only.
TRUECOLOR_ADVICE = ("Your terminal reports 256 colours (COLORTERM is unset, common over SSH). For true colour: "
                    "export COLORTERM=truecolor, or `ssh -o SendEnv=COLORTERM` with AcceptEnv on the server.")
#: ... and 16 colours only (TERM=xterm, as plain xterm sets it: the picture in 16 colours).
SIXTEEN_COLOUR_ADVICE = ("Your terminal reports 16 colours (TERM={term}). For 256 colours: export "
                         "TERM=xterm-256color (or your terminal's -256color entry); for true colour also "
                         "export COLORTERM=truecolor.")


def colour_advice(color_system: str | None, term: str | None) -> tuple[str, str]:
    """(status-line hint, launch notice) for a terminal without true colour. Plain xterm (TERM=xterm,
    as the sixel advice has it started) has 16, and was told "256 colours"."""
    if color_system == "256":
        return "256 colours: export COLORTERM=truecolor for true colour", TRUECOLOR_ADVICE
    return "16 colours: export TERM=xterm-256color", SIXTEEN_COLOUR_ADVICE.format(term=term or "unset")

#: What i says when there is no sharp view: how to get one, and what there is meanwhile.
INSPECT_ADVICE = ("The sharp inspect view needs `labelreview review --graphics sixel` (xterm -ti vt340, foot, "
                  "WezTerm, mlterm, Konsole) or `--graphics kitty` (kitty). Meanwhile z zooms in half-blocks.")

#: Seconds between redraws of the progress line while no key is pressed (others' decisions, git).
PROGRESS_EVERY = 5.0

#: Image records the screen keeps (cleared whole when full; one is a few hundred bytes).
IMAGE_RECORDS_KEPT = 4096


def _typed(fn, args: tuple, kwargs: dict) -> str | None:
    """A refused decision as the reviewer gave it, when they chose or typed more than a key: the
    class of a relabel, the reason and comment of a flag or reject (None for an accept)."""
    action = getattr(fn, "__name__", "")
    if action == "relabel" and args:
        return f"relabel to {printable(str(args[0]))}"
    if action in ("flag", "reject"):
        reason = args[0] if args else kwargs.get("reason")
        comment = kwargs.get("comment")
        if reason or comment:
            return (f"{action}" + (f" {printable(reason)}" if reason else "")
                    + (f' "{printable(comment)}"' if comment else ""))
    return None


class ReviewScreen(Screen):
    BINDINGS = [Binding(keys, action, text, show=show, id=bid) for bid, keys, action, text, show in KEYS]

    def __init__(self, store: Store, queue: Queue, session: ReviewSession):
        super().__init__()
        self.store, self.queue, self.session = store, queue, session
        self.options = RenderOptions()
        self.skeletons = skeletons_of(store.categories())
        self.image_anns: list[Annotation] = []
        self.color_hint: str | None = None
        self.color_advice: str | None = None  # (what help repeats of the launch notice)
        self.refused = False  # the last decision was refused (changed by someone else since)
        self._frames_since_collect = 0
        self._idle_timer = None
        self._prefetch_timer = None
        self._ahead_timer = None
        self._neighbours: list | None = None  # the neighbouring images' requests, for this picture
        self._why: dict[int, list] = {}
        self._images: dict[int, Image] = {}
        self._pending_go_to: str | None = None  # "go to image" asked while the queue still loads

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        with Horizontal(id="main"):
            yield ImageView(id="image")
            with Vertical(id="side"):
                yield AnnotationList(id="list")
                yield Detail(id="detail")
        yield ProgressLine(id="progress")
        yield KeyHints()

    def on_mount(self) -> None:
        keys = self.keys
        picks = [keys[f"pick_{n}"] for n in range(1, 10)]
        self.query_one(Detail).conflict_keys = (
            ("1-9 picks one" if picks == [[str(n)] for n in range(1, 10)] else
             " ".join(shown_key(k[0]) if k else "-" for k in picks) + " pick 1 to 9")
            + f"; {self._decide_anew_keys()} decide anew")
        image_id = self.queue.current_image
        early = getattr(self.app, "early", None)
        if early is not None:  # the first picture, made while the UI was imported
            self.query_one(ImageView).take_early(early)
            self.app.early = None
        elif image_id is not None:  # decode the first picture while the screen lays out
            width, height = self.app.size
            self.query_one(ImageView).warm(self._image(image_id).path, (width, height))
        if self.queue.resumed_query:
            self.notify(f"Your last queue: {self.queue.resumed_query}. Press {self.key_for('filter')} to change it.",
                        timeout=6)
        # Progress moves with other reviewers' decisions too, between this reviewer's keys.
        self.set_interval(PROGRESS_EVERY, self._tick)
        if self.queue.empty:
            self.notify(f"{self._nothing_to_review()}, {self.key_for('quit')} to quit.", severity="warning", timeout=10)
        self.refresh_view()

    # ------------------------------------------------------------ drawing

    @property
    def current(self) -> Annotation | None:
        ann_id = self.queue.current
        return next((a for a in self.image_anns if a.id == ann_id), None)

    def _nothing_to_review(self) -> str:
        """Why the queue is empty: a filter, or a store with no labels yet (the filter is not to blame)."""
        if self.queue.filter == AnnotationFilter() and not self.store.counts()["total"]:
            return ("This store holds no labels yet: `labelreview import` brings proposals in "
                    "(images with no labels are not reviewed here)")
        return f"Nothing to review with this filter. Press {self.key_for('filter')} to change it"

    def _load_image_anns(self, image_id: int) -> list[Annotation]:
        # As this reviewer may see them (under blind double review: the proposal or their own decision).
        return self.session.image_annotations(image_id)

    def _image(self, image_id: int) -> Image:
        """An image's record (file, size, path): fixed once imported, so read once per image (the
        current image and its two neighbours were three queries per key press)."""
        image = self._images.get(image_id)
        if image is None:
            if len(self._images) >= IMAGE_RECORDS_KEPT:
                self._images.clear()
            image = self._images[image_id] = self.store.image(image_id)
        return image

    def _request(self, image_id: int, anns: list[Annotation], selected: int | None):
        overlays = overlays_for(anns, selected, self.skeletons)
        image = self._image(image_id)
        key = (image_id, selected, overlays, self.options)
        return key, image.path, overlays, self.options

    def refresh_view(self) -> None:
        image_id = self.queue.current_image
        view = self.query_one(ImageView)
        if image_id is None:
            self.image_anns = []
            view.show_message(f"{self._nothing_to_review()}.")
            self.query_one("#title", Static).update(Text(" labelreview — nothing to review", style="bold"),
                                                    layout=False)
            self.query_one(AnnotationList).show([], None, set())
            self.query_one(Detail).show(None, [])
            self.show_progress()
            return
        self.image_anns = self._load_image_anns(image_id)
        ann = self.current
        view.show(*self._request(image_id, self.image_anns, ann.id if ann else None))
        image = self._image(image_id)
        size = f"{image.width}×{image.height}" if image.width else "size unknown"
        self.query_one("#title", Static).update(Text.assemble(
            (" labelreview ", "bold reverse"), f" {printable(self.store.config.name)} · ",
            (printable(image.file_name), "bold"), f" ({size}, image id {image.id}) · ",
            (f"queue: {'conflicts · ' if self.queue.filter.conflicts else ''}{self.queue.order}", "dim")),
            layout=False)  # one line: no layout pass per key
        in_queue = set(self.queue.image_items(image_id))
        self.query_one(AnnotationList).show(self.image_anns, ann.id if ann else None, in_queue)
        history = self.session.history(ann.id) if ann else []
        self.competing = self.session.conflicts(ann.id) if ann else []
        self.query_one(Detail).show(ann, history, self.queue.why(ann.id) if ann else None, self.competing)
        self.show_progress()
        self._tell_about_others()

    def _tell_about_others(self) -> None:
        """Say when images were skipped because someone else is on them, or when this one is shared."""
        skipped, self.queue.skipped = self.queue.skipped, []
        if skipped:
            shown = ", ".join(f"#{image} ({why})" for image, why in skipped[:3])
            more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
            self.notify(f"Skipped {shown}{more}.", timeout=4)
        other = self.queue.shared_with
        if other and other.get("image_id") != getattr(self, "_warned_shared", None):
            self._warned_shared = other.get("image_id")
            self.notify(f"{other['holder'].split(' <')[0]} is also on this image.", severity="warning", timeout=5)

    def on_key(self, event: events.Key) -> None:
        # Any key is the reviewer at work on this image: its lease does not run out under someone
        # studying it (zooming, going box by box) for longer than lease_seconds without deciding.
        self.queue.keep_alive()

    def on_image_view_frame_shown(self, event: ImageView.FrameShown) -> None:
        # Neighbours render, and the rest of a big queue loads, only once this frame is on screen:
        # they never compete with it. The neighbours wait a little more, while the terminal takes
        # the new picture in (see PREFETCH_AFTER).
        if self.queue.partial:
            self.queue.load_rest(done=self._rest_loaded)
        for timer in (self._prefetch_timer, self._ahead_timer):
            if timer is not None:
                timer.stop()
        self._neighbours = None
        self._prefetch_timer = self.set_timer(PREFETCH_AFTER, self._prefetch)
        self._ahead_timer = self.set_timer(AHEAD_AFTER, lambda: self._prefetch(ahead=True))
        # What is on screen and in the caches now lives long: out of the cyclic GC's way. Left in
        # it, a full collection walks every cached frame's ~5,000 segments and styles (tens of ms
        # landing on a random key press); frozen objects are still freed when their count drops.
        # Garbage cycles frozen with them are collected once the reviewer pauses (_collect_idle).
        gc.freeze()
        self._frames_since_collect += 1
        if self._idle_timer is not None:
            self._idle_timer.stop()
        self._idle_timer = self.set_timer(IDLE_COLLECT_AFTER, self._collect_idle)

    def _collect_idle(self) -> None:
        """No frame for a while: a full collection now costs the reviewer nothing."""
        self._idle_timer = None
        if self._frames_since_collect >= IDLE_COLLECT_FRAMES:
            self._frames_since_collect = 0
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    class RestLoaded(Message):
        """The queue's loader thread has the rest of a big queue."""

    def _rest_loaded(self) -> None:  # in the loader's thread
        # A message, not call_from_thread: that would hold the loader until the UI thread runs it,
        # and a move at the window's edge holds the UI thread until the loader ends (a deadlock).
        self.post_message(self.RestLoaded())

    def on_review_screen_rest_loaded(self, message: RestLoaded) -> None:
        self._adopt_rest()

    def _adopt_rest(self) -> None:
        try:
            self.queue.adopt()
        except LabelreviewError as e:
            self.notify(str(e), severity="error", timeout=10)
        pending, self._pending_go_to = self._pending_go_to, None
        if pending is not None and not self.queue.partial:
            self._go_to_image(pending)
            self.refresh_view()
            return
        self.show_progress()
        self._neighbours = None  # the rest of the queue may bring other neighbours
        self._prefetch()

    def _prefetch(self, ahead: bool = False) -> None:
        """The neighbouring images' frames; with ``ahead``, first this picture's as the next keys
        may show it."""
        same = []
        ann, following = self.current, self.queue.following
        if ahead and ann is not None:
            # Most keys stay on the image: the next item as it is (j), then as it will be after
            # the most common decision, accept and go on (space), or accept and stay (a), and the
            # item before (k: back to the one just decided). Each is a compose (~20-35 ms in a
            # worker, the picture is decoded already); the neighbouring images come after.
            image_id = self.queue.current_image
            accepted = self.session.after("accept", self.image_anns, ann.id)
            if accepted == self.image_anns:
                accepted = None  # accepted already: a and space change nothing on the picture
            for anns, selected in ((self.image_anns, following), (accepted, following), (accepted, ann.id),
                                   (self.image_anns, self.queue.preceding)):
                if anns is not None and selected is not None:
                    same.append(self._request(image_id, anns, selected))
        requests = self._neighbour_requests()
        if same or requests:  # (the neighbours again with ``ahead``: done ones are skipped, not redone)
            self.query_one(ImageView).prefetch(requests, ahead=same)

    def _neighbour_requests(self) -> list:
        """The neighbouring images' requests for the picture on screen, read from the store once per
        picture (each prefetch call replaces the one before, so every call names them again)."""
        if self._neighbours is None:
            self._neighbours = []
            for image_id in self.queue.neighbours(1):
                anns = self._load_image_anns(image_id)
                items = self.queue.image_items(image_id)
                self._neighbours.append(self._request(image_id, anns, items[0] if items else None))
        return self._neighbours

    def _draw_ahead(self, action: str) -> None:
        """While the reviewer picks a reason: the picture as it will be once ``action`` is taken on
        the current annotation (it stays selected), so it is on screen as the dialog closes."""
        ann = self.current
        if ann is not None:
            anns = self.session.after(action, self.image_anns, ann.id)
            self.query_one(ImageView).prefetch(self._neighbour_requests(),
                                               ahead=[self._request(self.queue.current_image, anns, ann.id)])

    def _tick(self) -> None:
        """Every few seconds: the progress line, and the labels of this image as they are now when
        another reviewer decided on one of them meanwhile (else the list and the picture showed the
        old state until this reviewer's next key)."""
        self.show_progress()
        image_id = self.queue.current_image
        if image_id is None or not self.image_anns or self.app.screen is not self:
            return  # (under a dialog: the next tick, once it is closed)
        now = self._load_image_anns(image_id)
        if [(a.id, a.last_event) for a in now] != [(a.id, a.last_event) for a in self.image_anns]:
            self.refresh_view()

    def show_progress(self) -> None:
        if self.queue.empty:
            pos = "0/0"
        else:
            index, count = self.queue.image_index, self.queue.image_count
            pos = f"{'?' if index is None else index + 1}/{'…' if count is None else count}"
        decided, total = self.queue.progress()
        self.query_one(ProgressLine).show(
            decided=decided, total=total, per_minute=self.session.rate_per_minute(),
            unsaved=self.store.uncommitted(), image_pos=pos, zoom=self.options.zoom, color_hint=self.color_hint)

    # ------------------------------------------------------------ decisions

    def _base(self, ann: Annotation):
        return ann.last_event  # the state on screen: a decision made on it must still hold

    def _decided(self, event: dict | None) -> None:
        if event is None:
            return
        self.queue.renew()
        self.app.schedule_checkpoint()

    def _do(self, fn, *args, **kwargs) -> dict | None:
        ann = self.current
        if ann is None:
            self.notify("No annotation selected.", severity="warning")
            return None
        self.refused = False
        try:
            ev = fn(ann.id, *args, base=self._base(ann), **kwargs)
        except LabelreviewError as e:
            self.refused = True  # (the screen now shows the annotation as it is)
            typed = _typed(fn, args, kwargs) if isinstance(e, ConflictError) else None
            # What the reviewer picked and typed in a dialog is said back, to decide again from.
            self.notify(f"{e}. Not recorded: your {typed}" if typed else str(e), severity="error",
                        timeout=15 if typed else 8)
            self.refresh_view()
            return None
        self._decided(ev)
        return ev

    def action_pick(self, n: int) -> None:
        """Adjudicate: keep competing decision ``n`` (as the detail panel numbers them)."""
        ann = self.current
        competing = getattr(self, "competing", [])
        if ann is None or not competing:
            self.notify("No conflict here to resolve.", timeout=3)
            return
        if n > len(competing):
            self.notify(f"There are {len(competing)} competing decisions.", severity="warning", timeout=3)
            return
        pick = competing[n - 1]
        ev = self._do(self.session.resolve, pick=pick["hash"])
        if ev is not None:
            self.notify(f"Resolved #{ann.id}: kept {pick['author'].split(' <')[0]}'s "
                        f"{pick['new']['category']}/{pick['new']['status']}.", timeout=3)
        self.refresh_view()

    def action_accept(self) -> None:
        self._do(self.session.accept)
        self.refresh_view()

    def action_accept_next(self) -> None:
        ann = self.current
        self._do(self.session.accept)
        if self.refused:  # someone changed it since: stay, showing what they made of it (as a does)
            return
        if ann is not None and self.queue.at_end:
            self.notify("End of the queue.", timeout=3)
        self.queue.move(+1)
        self.refresh_view()

    def action_reject(self) -> None:
        reasons = self.session.choices("reject")
        if not reasons:
            self._do(self.session.reject)
            self.refresh_view()
            return

        def done(result) -> None:
            if result is not None:
                reason, comment = result
                self._do(self.session.reject, reason=reason or None, comment=comment)
            self.refresh_view()

        if self.current is not None:
            self._draw_ahead("reject")
            self.app.push_screen(ReasonDialog(f"Reject #{self.current.id} {self.current.category}", reasons,
                                              optional=True), done)

    def action_flag(self) -> None:
        ann = self.current
        if ann is None:
            return

        def done(result) -> None:
            if result is not None:
                reason, comment = result
                self._do(self.session.flag, reason, comment=comment)
            self.refresh_view()

        reasons = self.session.choices("flag")
        self._draw_ahead("flag")
        self.app.push_screen(ReasonDialog(f"Flag #{ann.id} {ann.category}", reasons), done)

    def action_relabel(self) -> None:
        ann = self.current
        if ann is None:
            return
        suggested = sorted((ann.scores or {}).items(), key=lambda kv: -kv[1])

        def done(category: str | None) -> None:
            if category:
                self._do(self.session.relabel, category)
            self.refresh_view()

        self.app.push_screen(ClassPicker(self.session.choices("relabel"), ann.category, suggested), done)

    def action_accept_all(self) -> None:
        pending = [a for a in self.image_anns if a.status == "pending" and a.id in set(self.queue.image_items())]
        if not pending:
            self.notify("Nothing pending on this image.", timeout=3)
            return

        def done(yes: bool | None) -> None:
            if yes:
                bases = {a.id: a.last_event for a in pending}
                try:
                    events, skipped = self.session.accept_all([a.id for a in pending], bases)
                except LabelreviewError as e:  # (refused whole: e.g. this reviewer's role)
                    events, skipped = [], []
                    self.notify(str(e), severity="error", timeout=8)
                for ev in events:
                    self._decided(ev)
                self.notify(f"Accepted {len(events)} on this image.", timeout=3)
                for ann_id, why in skipped:
                    self.notify(f"Not accepted: #{ann_id}: {why}", severity="warning", timeout=8)
            self.refresh_view()

        self.app.push_screen(Confirm(f"Accept all {len(pending)} pending annotations on this image?"), done)

    def action_undo(self) -> None:
        problem = None
        try:
            events = self.session.undo_action()
        except PartialUndo as e:
            events, problem = e.events, str(e)
        except LabelreviewError as e:
            # Refused (someone changed it since): show the annotation as it is now, as a refused
            # decision does; the screen kept the state the undo was asked on, contradicting the message.
            self.notify(str(e), severity="error", timeout=8)
            self.refresh_view()
            return
        if not events:
            self.notify("Nothing to undo.", timeout=3)
            return
        for ev in events:
            self._decided(ev)
        try:
            self.queue.go_to(events[-1]["annotation"])
        except LabelreviewError:
            pass  # undone outside this queue: stay where we are
        what = events[0]["reason"].split()[-1]
        if problem:
            self.notify(problem, severity="error", timeout=8)
        elif len(events) == 1:
            self.notify(f"Undid {what} of #{events[0]['annotation']}.", timeout=3)
        else:
            self.notify(f"Undid {what} of {len(events)} annotations.", timeout=3)
        self.refresh_view()

    # ------------------------------------------------------------ moving and viewing

    def action_move(self, delta: int) -> None:
        self.queue.move(delta)
        self.refresh_view()

    def action_move_image(self, delta: int) -> None:
        before = self.queue.position
        self.queue.move_image(delta)
        if self.queue.position == before and not self.queue.empty:
            self.notify("This is the last image of the queue." if delta > 0 else
                        "This is the first image of the queue.", timeout=3)
            return
        self.refresh_view()

    def action_toggle(self, name: str) -> None:
        from dataclasses import replace

        self.options = replace(self.options, **{name: not getattr(self.options, name)})
        ann = self.current
        if name == "zoom" and self.options.zoom and ann is not None and ann.kind == "label":
            # (the status line says ZOOM, and the picture stays whole: say why)
            self.notify("A label of the whole image: nothing to zoom to. Zoom stays on for the shapes "
                        f"after it; {self.key_for('zoom')} again turns it off.", title="zoom", timeout=5)
        self.refresh_view()

    def action_inspect(self) -> None:
        """The selected annotation's surroundings in real pixels (a pixel protocol), full screen."""
        graphics = getattr(self.app, "graphics", None)
        if graphics is None or not graphics.enabled:
            why = graphics.why if graphics is not None else None  # asked for, and not given: why
            self.notify(f"{why} Meanwhile z zooms in half-blocks." if why else INSPECT_ADVICE,
                        title="inspect", timeout=8)
            return
        image_id = self.queue.current_image
        if image_id is None:
            self.notify("Nothing to inspect.", timeout=3)
            return
        image = self._image(image_id)
        ann = self.current
        overlays = overlays_for(self.image_anns, ann.id if ann else None, self.skeletons)
        what = f"#{ann.id} {printable(ann.category)} ({ann.status})" if ann else "no annotation selected"
        caption = Text.assemble((f" {printable(image.file_name)} ", "bold"), f"· {what} · ",
                                (f"{graphics.protocol} · any key closes", "dim"))
        orig_size = (image.width, image.height) if image.width and image.height else None
        self.app.push_screen(InspectScreen(graphics, None if image.path is None else str(image.path),
                                           overlays, caption, orig_size))

    def action_go_to_image(self) -> None:
        def done(text: str | None) -> None:
            if text and self.queue.partial:
                # A number or a name is looked up in the whole queue, whose rest is still loading
                # (a big queue, just opened): go there when it is in, without holding the keys.
                self._pending_go_to = text
                self.queue.load_rest(done=self._rest_loaded)
                self.notify("The rest of the queue is still loading: going there as soon as it is in.",
                            timeout=4)
                return
            if text:
                self._go_to_image(text)
            self.refresh_view()

        self.app.push_screen(Prompt("Go to image", "number in the queue, #image-id, or part of a file name"), done)

    def _go_to_image(self, text: str) -> None:
        try:
            self.queue.go_to_image(self._find_image(text))
        except LabelreviewError as e:
            self.notify(str(e), severity="error")

    def _find_image(self, text: str) -> int:
        self.queue.wait_complete()  # a number or a name is looked up in the whole queue
        order = self.queue.image_order
        # isdecimal, not isdigit: "²" is a digit int() cannot read (g then ² ended the review).
        if text.startswith("#") and text[1:].isdecimal():
            return int(text[1:])
        if text.isdecimal() and not (len(text) > 1 and text[0] == "0") and 1 <= int(text) <= len(order):
            return order[int(text) - 1]  # (a position is never written 0002: that is a file's name)
        # A whole name (its last part, or that without its extension) before a part of one:
        # "cat.jpg" and "cat" are cat.jpg, not bobcat.jpg that comes first.
        wanted = text.lower()
        images = self.store.images(order)
        names = [(im.id, im.file_name.lower()) for im in images]
        for matches in (lambda n: n == wanted, lambda n: n.rsplit("/", 1)[-1] == wanted,
                        lambda n: n.endswith("/" + wanted),
                        lambda n: n.rsplit("/", 1)[-1].rsplit(".", 1)[0] == wanted, lambda n: wanted in n):
            for image_id, name in names:
                if matches(name):
                    return image_id
        raise LabelreviewError(f"no image matching {text!r} in this queue")

    def action_filter(self) -> None:
        def done(text: str | None) -> None:
            if text is None:
                return
            try:
                flt, order, seed = parse_query(text)
                mode = self.queue.leases
                self.queue.close()  # the new queue leases its own first image
                self.queue = Queue(self.store, flt, order=order, seed=seed, leases=mode, lazy=True)
                remember_queue(self.queue)  # quitting and coming back resumes this queue, here
            except LabelreviewError as e:
                self.notify(str(e), severity="error", timeout=8)
                return
            self.query_one(ImageView).prefetch([])
            self.refresh_view()
            if self.queue.empty:
                self.notify(f"Nothing matches this filter. Press {self.key_for('filter')} to change it.",
                            severity="warning", timeout=6)

        self.app.push_screen(Prompt("Filter and order the queue", "status:pending", self.queue.query_text(),
                                    FILTER_HINT), done)

    def action_help(self) -> None:
        rows = []
        keys = self.keys
        for bid, _keys, _action, text, _show in KEYS:
            if bid.startswith("pick_"):  # nine keys, one line
                if bid == "pick_1":
                    picks = [keys[f"pick_{n}"] for n in range(1, 10)]
                    shown = ("1-9" if picks == [[str(n)] for n in range(1, 10)] else
                             " ".join(shown_key(k[0]) if k else "-" for k in picks))
                    anew = self._decide_anew_keys()
                    rows.append((shown, f"Conflict: keep competing decision N, by the keys of 1 to 9 in turn "
                                        f"({anew} decide anew)" if shown != "1-9" else
                                 f"Conflict: keep competing decision N ({anew} decide anew)"))
                continue
            rows.append((",".join(shown_key(k) for k in keys[bid]) or "(no key)", text))
        self.app.push_screen(HelpScreen(rows, ",".join(keys["help"]), self.color_advice if self.color_hint else None))

    @property
    def keys(self) -> dict[str, list[str]]:
        """Each binding id's keys, as labelreview.toml's [keys] left them."""
        return effective_keys(getattr(self.app, "keymap_overrides", {}))[0]

    def _decide_anew_keys(self) -> str:
        keys = self.keys
        return ", ".join(shown_key(keys[b][0]) for b in ("accept", "relabel", "flag", "reject") if keys[b])

    def key_for(self, bid: str) -> str:
        """The key that does ``bid``, as messages name it (a remapped one, not the default)."""
        keys = self.keys[bid]
        return shown_key(keys[0]) if keys else f"(no key: {bid})"

    def action_quit_review(self) -> None:
        self.app.action_quit_review()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not getattr(self.app, "quitting", False)  # once q is pressed, no key decides anything
