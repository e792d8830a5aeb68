"""The review queue: which annotations, in what order, and where the reviewer is in it."""

from __future__ import annotations

import bisect
import functools
import hashlib
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import orjson

from ..model import AnnotationFilter, LabelreviewError, split_list
from ..store import Store, perms
from ..store.identity import key_slug

ORDERS = ("file", "score", "score-desc", "random", "suspicion")


def check_names(store: Store, flt: AnnotationFilter) -> None:
    """Refuse a class or a source the store has never heard of: `--class persn` (a typo) listed
    nothing and said only that, as if the store had no person. A name no label has but the store
    knows (a class of labelreview.toml) is a fine filter; so is one a label still has though the
    config dropped it."""
    import difflib

    for what, plural, names, known, flt_of in (
            ("class", "classes", flt.categories, store.class_names(), lambda n: AnnotationFilter(categories=[n])),
            ("source", "sources", flt.sources, list(dict.fromkeys(i["source"] for i in store.imports())),
             lambda n: AnnotationFilter(sources=[n]))):
        for name in names:
            if name in known or store.matches_at_least(flt_of(name), 1):
                continue
            close = difflib.get_close_matches(name, known, n=3)
            hint = (f"; did you mean {', '.join(close)}?" if close
                    else f"; {plural}: {', '.join(known[:20]) or '(none)'}")
            raise LabelreviewError(f"unknown {what} {name!r}{hint}")


#: Items a lazy queue loads before its first frame; the rest come from a thread.
WINDOW = 4000


class _Edge(Exception):
    """A move reached the edge of a partial queue's window: the rest must be in first."""


def _whole(method):
    """Run a move on the loaded window; at its edge, wait for the rest of the queue and run again."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self._loaded is not None:
            self.adopt()
        if not self.partial:
            return method(self, *args, **kwargs)
        position, skipped = self.position, list(self.skipped)
        try:
            return method(self, *args, **kwargs)
        except _Edge:
            self.position, self.skipped = position, skipped
            self._complete()
            return method(self, *args, **kwargs)

    return wrapper


class _Lists:
    """A queue's order in the shapes its moves need (built in the loader thread for a big queue)."""

    def __init__(self, items: list[tuple[int, int]], order: str):
        self.items = items
        # Image-grouped view: an image appears once, at its first item's place in the order.
        by_image: dict[int, list[int]] = {}
        for ann_id, image_id in items:
            group = by_image.get(image_id)
            if group is None:
                by_image[image_id] = [ann_id]
            else:
                group.append(ann_id)
        self.by_image = by_image
        self.image_order: list[int] = list(by_image)  # dicts keep first-seen order
        if order == "suspicion":
            # Per annotation, not grouped: at realistic error rates most images hold an error, and
            # grouping by image brings the ranking down to about file order (benchmarks/README.md,
            # "Suspicion ordering"). An image may come up again; the view still shows all its boxes.
            self.flat = [a for a, _ in items]
        else:
            self.flat = [a for img in self.image_order for a in by_image[img]]
        self.image_of = dict(items)
        self._rank: dict[int, int] | None = None

    @property
    def image_rank(self) -> dict[int, int]:
        if self._rank is None:
            self._rank = {img: i for i, img in enumerate(self.image_order)}
        return self._rank


#: How a queue treats other reviewers' leases: skip their images, show them anyway, or take none.
LEASES = ("on", "take", "off")


class Queue:
    """A fixed list of (annotation, image) in review order, grouped by image, with a position.

    The list is taken when the queue opens, so an item decided during the session stays where it
    is (a ``--status pending`` queue does not shrink under the reviewer's feet).

    Several reviewers on one store: landing on an image leases it to this session for
    ``[review] lease_seconds`` (renewed by ``renew``, after each decision); moving on skips images
    another live session holds, and, under blind double review, images whose items two reviewers
    have already decided. ``leases="take"`` shows leased images anyway; ``"off"`` neither leases nor
    skips. An explicit jump (``go_to``, ``go_to_image``) never skips: the reviewer asked for it.
    """

    def __init__(self, store: Store, flt: AnnotationFilter | None = None, order: str = "file",
                 seed: int = 0, resume: bool = True, leases: str = "on", lazy: bool = False):
        if leases not in LEASES:
            raise LabelreviewError(f"unknown lease mode {leases!r}; use one of {', '.join(LEASES)}")
        self.leases = leases
        #: The image this session holds a lease on, and until when (monotonic clock).
        self.held: int | None = None
        self._held_until = 0.0
        #: Images passed over by the last move, with why: (image id, "alice is on it" | "reviewed twice").
        self.skipped: list[tuple[int, str]] = []
        #: Set when the reviewer is on an image someone else holds (they asked for it): their lease.
        self.shared_with: dict | None = None
        if order not in ORDERS:
            raise LabelreviewError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
        if order != "random":
            seed = 0  # (orders no seed changes: the same queue, and the same remembered place)
        self.store, self.filter, self.order, self.seed = store, flt or AnnotationFilter(), order, seed
        self.position = 0
        #: Per annotation, why it is where it is in the order (filled by orders that rank, e.g. suspicion).
        self._why: dict[int, list] = {}
        self._decided: int | None = None  # items of this queue whose state is decided (not pending)
        self._counted_ord = 0  # the last event ``_decided`` takes into account
        #: Under blind double review, items still pending in the store on which this reviewer's own
        #: blind decision is in effect: reviewed, as they see it (see ``progress``).
        self._mine: set[int] | None = None
        self._save_gen = 0  # positions handed to the writer thread; only the latest is written
        # A lazy queue in file order starts from a window of WINDOW items (where the reviewer resumes,
        # else the start) and loads the rest in a thread once asked to (``load_rest``): the first
        # frame on a 1M-annotation store does not wait for a million ids. Until the rest is in,
        # ``partial`` is set and a move past the window waits for it (``_complete``).
        self.partial = False
        self._head_cut = False  # the window starts after the queue's first image
        self._loader: threading.Thread | None = None
        self._loaded: tuple | BaseException | None = None
        #: Set when this queue was reopened as the reviewer's last one (its query text), to say so.
        self.resumed_query: str | None = None
        saved = self._saved() if resume else None
        if order == "suspicion":
            from . import suspicion

            items = suspicion.queue_keys(store, self.filter)
            self._why = suspicion.WhyLookup(store)  # read per item when shown: cheap at 1M items
        elif lazy and order == "file":
            items = self._window(saved)
        else:
            items = store.annotation_keys(self.filter, order, seed)
        lists, resume_at = _Lists(items, order), None
        if saved is not None and items and saved not in lists.image_of:
            lists, resume_at = self._place_of_gone(saved, lists)
        self._adopt_lists(lists)
        if saved is not None and saved in self._image_of:
            self.position = self._index_of(saved)
        elif resume_at is not None:
            self.position = resume_at
        if self.flat:
            try:
                self._land(+1)
            except _Edge:  # every image of the window is someone else's: look further
                self._complete()
                self._land(+1)

    def _place_of_gone(self, saved: int, lists: "_Lists") -> tuple["_Lists", int | None]:
        """The annotation the reviewer left on is no longer in this queue (decided out of a
        ``status:pending`` queue, relabeled out of a ``class:`` one, decided meanwhile by someone
        else): their place is the item that came after it. Returns the queue's lists (in the order
        they had with it) and that item's index, or None when nothing came after it (the start)."""
        if self.order == "file":  # (image, id) order: no second query; also a lazy queue's window
            here = self.store.annotation_keys(AnnotationFilter(ids=[saved]), "file")
            if not here:
                return lists, None
            at = bisect.bisect_right(lists.flat, (here[0][1], saved), key=lambda a: (lists.image_of[a], a))
            return lists, (at if at < len(lists.flat) else None)
        if self.order == "suspicion":
            from . import suspicion

            with_it = suspicion.queue_keys(self.store, self.filter, also=saved)
        else:
            with_it = self.store.annotation_keys(self.filter, self.order, self.seed, also=saved)
        grouped = _Lists(with_it, self.order)
        if saved not in grouped.image_of:  # (no such annotation)
            return lists, None
        at = grouped.flat.index(saved)
        # The order as it was with it in: in a score order an image comes where its first item
        # does, and that may have been this one; the images after it stay after it.
        rest = [(a, grouped.image_of[a]) for a in grouped.flat if a != saved]
        return _Lists(rest, self.order), (at if at < len(rest) else None)

    def _adopt_lists(self, lists: "_Lists") -> None:
        self.items = lists.items
        self._by_image = lists.by_image
        self.image_order = lists.image_order
        self.flat = lists.flat
        self._image_of = lists.image_of
        self._lists = lists
        self._flat_index: dict[int, int] | None = None

    def _index_of(self, ann_id: int) -> int:
        if len(self.flat) < 2048:
            return self.flat.index(ann_id)
        if self._flat_index is None:
            self._flat_index = {a: i for i, a in enumerate(self.flat)}
        return self._flat_index[ann_id]

    # -------------------------------------------------------------- a big queue, lazily

    def _window(self, saved: int | None) -> list[tuple[int, int]]:
        store, flt = self.store, self.filter
        # Walk the image index when most annotations match (else SQLite sorts every match first).
        dense = not (flt.statuses or flt.image_ids or flt.ids) or store.matches_at_least(flt, 10 * WINDOW)
        start_image, keys = None, []
        if saved is not None:
            # Resume at the image the reviewer left, also when the annotation they were on is no
            # longer in this queue (``_place_of_gone`` then finds the item after it).
            here = store.annotation_keys(AnnotationFilter(ids=[saved]), "file")
            start_image = here[0][1] if here else None
        if start_image is not None:
            keys = store.annotation_keys(flt, "file", limit=WINDOW + 1, from_image=start_image, by_image=dense)
            if len(keys) <= WINDOW and (not keys or (keys[-1][1], keys[-1][0]) < (start_image, saved)):
                start_image = None  # nothing of the queue at or after that place: its start
            else:
                self._head_cut = store.annotation_keys(flt, "file", limit=1, by_image=dense)[0][1] != keys[0][1]
        if start_image is None:
            keys = store.annotation_keys(flt, "file", limit=WINDOW + 1, by_image=dense)
        if len(keys) <= WINDOW and not self._head_cut:
            return keys  # that is the whole queue
        if len(keys) > WINDOW:
            last = keys[-1][1]  # the window may end inside an image: leave that image to the full list
            cut = len(keys)
            while cut and keys[cut - 1][1] == last:
                cut -= 1
            if cut == 0:  # one image with more than WINDOW items: the window is that image
                keys = store.annotation_keys(replace(flt, image_ids=[last]), "file")
            else:
                keys = keys[:cut]
        self.partial = True
        return keys

    def load_rest(self, done: Callable[[], None] | None = None) -> None:
        """Start loading the rest of a partial queue in a thread; ``done`` is called from that
        thread when it is in (the owner then calls ``adopt``, or any move adopts it)."""
        if not self.partial or self._loader is not None:
            return
        self._loader = threading.Thread(target=self._load, args=(done,), name="queue-loader", daemon=True)
        self._loader.start()

    def _load(self, done: Callable[[], None] | None) -> None:
        conn = None
        try:
            conn = self.store.reader()
            conn.execute("BEGIN")  # one snapshot: the keys, the count and the last event agree
            keys = self.store.annotation_keys(self.filter, "file", by_image=True, conn=conn)
            decided = self.store.count_matching(self.filter, status_not="pending", conn=conn)
            seen = conn.execute("SELECT coalesce(max(ord), 0) FROM events").fetchone()[0]
            conn.execute("COMMIT")
            lists = _Lists(keys, "file")
            lists.image_rank  # build it here, not on the UI thread
            self._loaded = (lists, decided, seen)
        except BaseException as e:  # handed to the owner's thread, which raises it
            self._loaded = e
        finally:
            if conn is not None:
                conn.close()
        if done is not None:
            done()

    def adopt(self) -> bool:
        """Take in the rest of the queue if the loader is done; True if the queue changed."""
        loaded = self._loaded
        if loaded is None or not self.partial:
            return False
        if isinstance(loaded, BaseException):
            # The loader thread failed (its own connection, a busy disk...): load here instead;
            # progress is then counted the usual way on first use.
            keys = self.store.annotation_keys(self.filter, "file", by_image=True)
            loaded = (_Lists(keys, "file"), None, None)
        lists, decided, seen = loaded
        current = self.current
        self._adopt_lists(lists)
        self.partial = self._head_cut = False
        self._loaded = None
        if current is not None and current in self._image_of:
            self.position = self._index_of(current)
        self._decided, self._mine = decided, None
        if decided is not None:
            # Decisions since the loader's snapshot (this reviewer's and others') move the count on.
            self._counted_ord = seen
            self._take_moves()
        return True

    def _complete(self) -> None:
        """Wait for the rest of a partial queue and take it in."""
        if not self.partial:
            return
        self.load_rest()
        assert self._loader is not None
        self._loader.join()
        self.adopt()

    def wait_complete(self) -> None:
        self._complete()

    # -------------------------------------------------------------- where we are

    def __len__(self) -> int:
        return len(self.flat)

    @property
    def empty(self) -> bool:
        return not self.flat

    @property
    def current(self) -> int | None:
        return self.flat[self.position] if self.flat else None

    @property
    def current_image(self) -> int | None:
        return self._image_of[self.current] if self.flat else None

    def image_items(self, image_id: int | None = None) -> list[int]:
        image_id = self.current_image if image_id is None else image_id
        return list(self._by_image.get(image_id, []))

    @property
    def image_index(self) -> int | None:
        """The current image's place among the queue's images; None while a queue that started
        part-way (resumed) is still loading what comes before."""
        if not self.flat:
            return 0
        if self._loaded is not None:
            self.adopt()
        return None if self._head_cut else self._lists.image_rank[self.current_image]

    @property
    def image_count(self) -> int | None:
        """How many images the queue has; None while it is still loading."""
        if self._loaded is not None:
            self.adopt()
        return None if self.partial else len(self.image_order)

    @property
    def following(self) -> int | None:
        """The item ``move(+1)`` lands on if it is on the current image, else None."""
        pos = self.position + 1
        if not self.flat or pos >= len(self.flat):
            return None
        item = self.flat[pos]
        return item if self._image_of[item] == self.current_image else None

    @property
    def preceding(self) -> int | None:
        """The item ``move(-1)`` lands on if it is on the current image, else None."""
        pos = self.position - 1
        if not self.flat or pos < 0 or pos >= len(self.flat):
            return None
        item = self.flat[pos]
        return item if self._image_of[item] == self.current_image else None

    @property
    def at_end(self) -> bool:
        return not self.partial and self.position == len(self.flat) - 1

    # -------------------------------------------------------------- moving

    @_whole
    def move(self, delta: int) -> int | None:
        """Next/previous annotation; past the last one of an image is the next image's first."""
        if self.flat:
            if self.partial and (self.position + delta >= len(self.flat)
                                 or (self.position + delta < 0 and self._head_cut)):
                raise _Edge
            before = self.current_image
            self.position = max(0, min(len(self.flat) - 1, self.position + delta))
            if self.current_image != before:
                if delta < 0:  # coming back into an image: its last item, as before
                    self._land(-1, to_end=True)
                else:
                    self._land(+1)
            self._save()
        return self.current

    @_whole
    def move_image(self, delta: int) -> int | None:
        """First item of the next (previous) image in the order: the next run of items on one
        image. In image-grouped orders a run is the image; in the suspicion order an image can
        come up more than once, and this never jumps back to where it came up first."""
        if not self.flat:
            return None
        start = pos = self._run_start(self.position)
        for _ in range(abs(delta)):
            if delta > 0:
                end = self._run_end(pos)
                if end >= len(self.flat):
                    if self.partial:
                        raise _Edge
                    break
                pos = end
            elif pos > 0:
                pos = self._run_start(pos - 1)
            elif self._head_cut:
                raise _Edge
        if pos == start:  # the last (first) image already: stay on the item, do not jump to its first
            return self.current
        self.position = pos
        self._land(1 if delta >= 0 else -1)
        self._save()
        return self.current

    def _run_start(self, pos: int) -> int:
        image = self._image_of[self.flat[pos]]
        while pos > 0 and self._image_of[self.flat[pos - 1]] == image:
            pos -= 1
        return pos

    def _run_end(self, pos: int) -> int:
        image = self._image_of[self.flat[pos]]
        while pos < len(self.flat) and self._image_of[self.flat[pos]] == image:
            pos += 1
        if pos == len(self.flat) and self.partial:
            raise _Edge  # what comes next is not loaded yet
        return pos

    @_whole
    def go_to_image(self, image_id: int) -> int | None:
        if image_id not in self._by_image and self.partial:
            raise _Edge
        if image_id not in self._by_image:
            raise LabelreviewError(f"image {image_id} is not in this queue")
        self.position = self._index_of(self._by_image[image_id][0])
        self._take_here()
        self._save()
        return self.current

    @_whole
    def go_to(self, ann_id: int) -> int | None:
        if ann_id not in self._image_of and self.partial:
            raise _Edge
        if ann_id not in self._image_of:
            raise LabelreviewError(f"annotation {ann_id} is not in this queue")
        self.position = self._index_of(ann_id)
        self._take_here()
        self._save()
        return self.current

    def next_pending(self) -> int | None:
        """The next item still pending after the current one (wrapping), else stay."""
        self._complete()  # wraps around the whole queue
        if not self.flat:
            return None
        pending = set(self.store.annotation_ids_with_status([*self.flat], "pending"))
        n = len(self.flat)
        for step in range(1, n + 1):
            cand = self.flat[(self.position + step) % n]
            if cand in pending and self._free(self._image_of[cand]) is None:
                self.position = (self.position + step) % n
                self._take_here()
                self._save()
                return cand
        return self.move(+1)

    # -------------------------------------------------------------- sharing the store

    def _free(self, image_id: int, leased: dict | None = None) -> str | None:
        """Why this session should not be shown the image now, or None."""
        if self.leases == "on":
            leased = self.store.leased_by_others() if leased is None else leased
            if image_id in leased:
                return f"{leased[image_id]['holder'].split(' <')[0]} is on it"
        if self.store.config.double_review and not self.filter.conflicts:
            # (A third reviewer is not given what two reviewed; the adjudicator is given exactly that.)
            items = self._by_image.get(image_id, [])
            twice = self.store.blind_reviewers(items)
            me = self.store.identity.author
            if items and all(len(twice.get(a, ())) >= 2 and me not in twice.get(a, ()) for a in items):
                return "reviewed twice (blind double review)"
        return None

    def _land(self, direction: int, to_end: bool = False) -> None:
        """Arriving on the current item's image: if it is not free, go on in ``direction`` to the
        next free one (the other way at the end of the queue); then lease it."""
        self.skipped = []
        if not self.flat:
            return
        leased = self.store.leased_by_others() if self.leases == "on" else {}
        start = self._run_start(self.position)
        pos = start
        tried: set[int] = set()
        for d in (direction, -direction):
            pos = start
            while True:
                image = self._image_of[self.flat[pos]]
                if image not in tried:
                    tried.add(image)
                    why = self._free(image, leased)
                    if why is None:
                        here = self.position
                        if pos != start:
                            self.position = self._run_end(pos) - 1 if (to_end and d < 0) else pos
                        if self._take_here():
                            return
                        why = f"{self.shared_with['holder'].split(' <')[0]} is on it"  # took it just now
                        self.position = here
                    self.skipped.append((image, why))
                if d < 0 and pos == 0 and self._head_cut:
                    raise _Edge
                nxt = self._run_end(pos) if d > 0 else (self._run_start(pos - 1) if pos > 0 else -1)
                if nxt < 0 or nxt >= len(self.flat):
                    break
                pos = nxt
        self._take_here()  # nothing is free: stay, and say whose it is

    def _take_here(self) -> bool:
        """Lease the current image; False when another session holds it (``shared_with`` says who)."""
        image = self.current_image
        if self.leases == "off" or image is None:
            self.shared_with = None
            return True
        if self.held is not None and self.held != image:
            self.store.release_leases(self.held)
            self.held = None
        other = self.store.acquire_lease(image)
        self.shared_with = other
        if other is None:
            self.held = image
            self._held_until = time.monotonic() + self.store.config.lease_seconds
            return True
        return self.leases == "take"

    def renew(self) -> None:
        """After a decision: keep the lease on this image, or take it (leases on)."""
        if self.held is not None and self.held == self.current_image:
            self.keep_alive()
        elif self.leases != "off":
            self._take_here()

    def keep_alive(self) -> None:
        """The reviewer is at work on the image it holds (a decision, or any key: zooming, looking at
        each box): keep the lease, rewritten once half its time has passed (no write otherwise)."""
        if (self.held is not None and self.held == self.current_image
                and time.monotonic() > self._held_until - self.store.config.lease_seconds / 2):
            self._take_here()

    def close(self) -> None:
        """Leaving the review: give back this session's leases; the place is on disk."""
        flush_positions()
        if self.leases != "off":
            try:
                self.store.release_leases()
            except LabelreviewError:
                pass
        self.held = None

    def neighbours(self, radius: int = 1) -> list[int]:
        """Image ids of the runs just after and before the current one, nearest first (prefetch)."""
        if not self.flat:
            return []
        ahead, behind = [], []
        try:
            pos = self._run_end(self.position)
            while len(ahead) < radius and pos < len(self.flat):
                ahead.append(self._image_of[self.flat[pos]])
                pos = self._run_end(pos)
        except _Edge:  # the window ends here: nothing more to prefetch yet
            pass
        pos = self._run_start(self.position)
        while len(behind) < radius and pos > 0:
            pos = self._run_start(pos - 1)
            behind.append(self._image_of[self.flat[pos]])
        out = []
        for d in range(radius):
            out += [lst[d] for lst in (ahead, behind) if d < len(lst)]
        return out

    # -------------------------------------------------------------- progress

    def progress(self) -> tuple[int | None, int | None]:
        """(reviewed, total) over this queue; counted once, then kept up to date from the events since.
        (None, None) while a partial queue is still loading (its loader counts them).

        Reviewed is what this reviewer sees decided: an item whose state is not pending, and, under
        blind double review, one still pending in the store on which their own blind decision is in
        effect (waiting for a second reviewer, or gone to adjudication). Another reviewer's blind
        decision counts for nothing until it takes effect; it would tell this reviewer that someone
        else decided the item. Decisions made elsewhere count too: another reviewer's, and this
        reviewer's own in another process (`labelreview accept` in a second terminal), so the count
        on every screen of a shared store moves with them."""
        if self._loaded is not None:
            self.adopt()
        if self.partial:
            return None, None
        conn = self.store.conn
        if self._decided is None:
            own = not conn.in_transaction
            if own:
                conn.execute("BEGIN")  # the count and the last event it includes: one snapshot
            try:
                if self.order == "suspicion":  # may rank a subset of what the filter matches
                    pending = len(self.store.annotation_ids_with_status(self.flat, "pending"))
                    self._decided = len(self.flat) - pending
                else:
                    self._decided = self.store.count_matching(self.filter, status_not="pending")
                self._counted_ord = conn.execute("SELECT coalesce(max(ord), 0) FROM events").fetchone()[0]
                self._mine = None
                self._count_mine()
            finally:
                if own:
                    conn.execute("COMMIT")
        else:
            self._take_moves()
        return self._decided + len(self._count_mine()), len(self.flat)

    def _count_mine(self, touched: set[int] | None = None) -> set[int]:
        """``_mine``, counted whole on first use, then again for the ``touched`` items only."""
        author = self.store.identity.author
        if self._mine is None:
            self._mine = {a for a in self.store.own_blind_pending(author) if a in self._image_of}
        elif touched:
            self._mine -= touched
            self._mine |= set(self.store.own_blind_pending(author, sorted(touched)))
        return self._mine

    def _take_moves(self) -> None:
        """Count in the events after ``_counted_ord``."""
        touched: set[int] = set()
        for o, ann, moved in _moves(self.store.conn, self._counted_ord):
            self._counted_ord = o
            if ann in self._image_of:
                self._decided += moved
                touched.add(ann)
        if touched and self._mine is not None:
            self._count_mine(touched)

    def why(self, ann_id: int) -> list | None:
        return self._why.get(ann_id)

    def query_text(self) -> str:
        """This queue as the text ``parse_query`` reads (shown for editing in the filter prompt)."""
        f = self.filter
        parts = []
        for name, values in (("status", f.statuses), ("class", f.categories), ("source", f.sources),
                             ("by", f.authors), ("reason", f.reasons)):
            if values:
                parts.append(f"{name}:{','.join(_quoted(v) for v in values)}")
        if f.score_min is not None or f.score_max is not None:
            lo = "" if f.score_min is None else _number(f.score_min)
            hi = "" if f.score_max is None else _number(f.score_max)
            parts.append(f"score:{lo}:{hi}")
        if f.image_ids:
            parts.append(f"image:{','.join(map(str, f.image_ids))}")
        if f.conflicts:
            parts.append("conflicts:yes")
        parts.append(f"order:{self.order}")
        if self.order == "random":
            parts.append(f"seed:{self.seed}")
        return " ".join(parts)

    # -------------------------------------------------------------- resume

    def _state_file(self) -> Path:
        key = orjson.dumps({"f": asdict(self.filter), "o": self.order, "s": self.seed},
                           option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(key).hexdigest()[:12]
        return _reviewer_file(self.store, digest)

    def _save(self) -> None:
        """Remember the place, off the caller's thread: a rename took ~8 ms of each key press on a
        busy disk (measured in the review screen). Only the latest place is written."""
        global _LAST_SAVE
        self._save_gen = gen = self._save_gen + 1
        _LAST_SAVE = _position_writer().submit(self._write_position, gen, self.current)

    def _write_position(self, gen: int, ann: int | None) -> None:
        if gen != self._save_gen:
            return  # the reviewer has moved on: a later write is queued
        _write_whole(self._state_file(), {"annotation": ann})

    def _saved(self) -> int | None:
        """The annotation this reviewer was on when they last left this queue."""
        flush_positions()
        try:
            ann = orjson.loads(self._state_file().read_bytes()).get("annotation")
        except (OSError, ValueError, AttributeError):
            return None
        return ann if isinstance(ann, int) else None


def _moves(conn, after: int):
    """(ord, annotation, +1 / 0 / -1) per event after ``after``: how it moved its annotation's state
    into or out of "pending". A blind decision (double review) moves nothing until it takes effect:
    the second of two that agree carries the change (the first becomes its alias); one still waiting
    for a second reviewer, or gone to adjudication, changed no state and counts for nothing here.
    Taking such a decision back is recorded blind too, and changes no state either."""
    for o, ann, old, new, idle in conn.execute(
            "SELECT ord, annotation, json_extract(old, '$.status'), json_extract(new, '$.status'),"
            " blind = 1 AND (action = 'undo' OR NOT EXISTS (SELECT 1 FROM fold_alias f WHERE"
            " f.annotation = e.annotation AND f.target = e.hash)) FROM events e WHERE ord > ? ORDER BY ord",
            (after,)):
        yield o, ann, 0 if idle else ((old or "pending") == "pending") - (new == "pending")


_WRITER: ThreadPoolExecutor | None = None
_LAST_SAVE: Future | None = None


def _position_writer() -> ThreadPoolExecutor:
    global _WRITER
    if _WRITER is None:
        _WRITER = ThreadPoolExecutor(1, thread_name_prefix="queue-position")
    return _WRITER


def flush_positions() -> None:
    """Wait until every remembered place is on disk (errors writing it are not the caller's)."""
    if _LAST_SAVE is not None:
        try:
            _LAST_SAVE.result(timeout=10)
        except Exception:  # noqa: BLE001 - a place not remembered only costs a resume at the start
            pass


def _reviewer_file(store, name: str) -> Path:
    """A file of this reviewer's under ``.labelreview/positions`` (places in queues, the last queue)."""
    return store.root / ".labelreview" / "positions" / f"{key_slug(store.identity.author_key)}-{name}.json"


def _write_whole(path: Path, value) -> None:
    """``value`` as JSON at ``path``, whole or not at all (renamed into place)."""
    if not path.parent.is_dir():
        perms.shared_dir(path.parent)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(value))
    os.replace(tmp, path)


def remember_queue(queue: "Queue") -> None:
    """Note the queue this reviewer is working in (filter and order), so that a review opened with
    none named comes back to it, and to the place in it (each queue remembers its own place)."""
    try:
        _write_whole(_reviewer_file(queue.store, "last-queue"), {"query": queue.query_text()})
    except OSError:  # a queue not remembered only costs choosing it again
        pass


def last_queue(store) -> tuple[str, AnnotationFilter, str, int] | None:
    """(query text, filter, order, seed) of the queue this reviewer last worked in, if any."""
    try:
        text = orjson.loads(_reviewer_file(store, "last-queue").read_bytes())["query"]
        return (text, *parse_query(text))
    except (OSError, ValueError, KeyError, TypeError, LabelreviewError):
        return None


def _words(text: str) -> list[str]:
    """Split at spaces outside double quotes: ``class:"traffic light",car`` is one word."""
    words, cur, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch.isspace() and not quoted:
            if cur:
                words.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if quoted:
        raise LabelreviewError(f"a double quote is not closed in {text!r}")
    if cur:
        words.append("".join(cur))
    return words


def _number(value: float) -> str:
    """A score bound as ``parse_query`` reads back the very same number (``:g`` kept 6 digits:
    0.123456789 came back as 0.123457, another queue, without the reviewer's place in it)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _quoted(item: str) -> str:
    """An item as ``split_list`` reads it back."""
    if item and not any(c.isspace() or c in ',"' for c in item):
        return item
    return '"' + item.replace('"', '""') + '"'


def parse_query(text: str) -> tuple[AnnotationFilter, str, int]:
    """``status:pending class:dog,cat score:0:0.5 order:score seed:3`` -> (filter, order, seed)."""
    flt, order, seed = AnnotationFilter(), "file", 0
    lists = {"status": flt.statuses, "class": flt.categories, "category": flt.categories,
             "source": flt.sources, "by": flt.authors, "reason": flt.reasons}
    for word in _words(text):
        key, sep, value = word.partition(":")
        if not sep:
            raise LabelreviewError(f"{word!r}: write filters as name:value, e.g. status:pending")
        key = key.lower()
        if key in lists:
            lists[key].extend(v for v in split_list(value) if v)
        elif key == "score":
            lo, _, hi = value.partition(":")
            try:
                flt.score_min = float(lo) if lo else None
                flt.score_max = float(hi) if hi else None
            except ValueError:
                raise LabelreviewError(f"score takes MIN:MAX, not {value!r}") from None
        elif key == "order":
            if value not in ORDERS:
                raise LabelreviewError(f"unknown order {value!r}; use one of {', '.join(ORDERS)}")
            order = value
        elif key == "seed":
            # (int() alone: "²" passed isdigit() and took the review down; so did a seed past 64 bits.)
            try:
                seed = int(value)
            except ValueError:
                seed = None
            if seed is None or not -2**63 <= seed < 2**63:
                raise LabelreviewError(f"seed takes a whole number from -2**63 to 2**63-1, not {value!r}")
        elif key == "conflicts":
            flt.conflicts = value.lower() in ("1", "yes", "true", "y")
        elif key == "image":
            try:
                ids = [int(v) for v in value.split(",") if v]
            except ValueError:
                raise LabelreviewError(f"image takes image ids, e.g. image:3,7, not {value!r}") from None
            # (One past SQLite's integers took the review down: the queue could not even be named.)
            too_big = next((i for i in ids if not -2**63 <= i < 2**63), None)
            if too_big is not None:
                raise LabelreviewError(f"no such image id: {too_big} (ids are 0 to 2**63-1)")
            flt.image_ids.extend(ids)
        else:
            raise LabelreviewError(f"unknown filter {key!r}; use status, class, source, score, by, reason, "
                                   "image, conflicts, order, seed")
    return flt.check(), order, seed
