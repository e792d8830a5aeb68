"""A reviewer's decisions: accept, relabel, flag, reject, undo, resolve. The CLI and the TUI both call this.

Two team rules are decided here, not in the UI. An annotation with open conflicts is decided by an
adjudicator, and any decision on it resolves them. Under blind double review (``[review] double``) a
decision is recorded blind until two reviewers have decided the annotation; a reviewer sees the
proposal or their own decision, never the other reviewer's.
"""

from __future__ import annotations

import difflib
import time
from typing import Any

from dataclasses import replace

from ..model import STATUS_AFTER, STATUSES, Annotation, AnnotationFilter, LabelreviewError
from ..store import CURRENT, Store
from ..store.store import note_of
from .roles import require


#: Kinds an image holds at most one of per class (an image label; a semantic mask is all of a class's
#: pixels): relabeling one to a class the image already has would make two, which exports merge.
_ONE_PER_CLASS = ("label", "mask")


class PartialUndo(LabelreviewError):
    """An undo of a batch stopped part way: ``events`` are the undos that were recorded."""

    def __init__(self, message: str, events: list[dict]):
        super().__init__(f"undid {len(events)} of the batch, then: {message}")
        self.events = events


class ReviewSession:
    """Decisions by one reviewer on one store; every decision is durable when the call returns."""

    def __init__(self, store: Store, auto_checkpoint: bool = True):
        self.store = store
        #: The command line checkpoints every N decisions itself; the TUI does it in a worker.
        self.auto_checkpoint = auto_checkpoint
        self.started = time.monotonic()
        self.decisions = 0
        self.blind = store.config.double_review
        #: Each decision of an "accept the rest" made in this session -> all of that batch's events:
        #: one undo takes the whole batch back, as it was one key press.
        self._batch_of: dict[str, tuple[str, ...]] = {}

    # -------------------------------------------------------------- decisions

    def accept(self, ann_id: int, *, base: Any = CURRENT, reason: str | None = None,
               comment: str | None = None) -> dict | None:
        return self._decide(ann_id, "accept", base=base, reason=reason, comment=comment)

    def relabel(self, ann_id: int, category: str, *, reason: str | None = None,
                comment: str | None = None, base: Any = CURRENT) -> dict | None:
        self._check_class(category)
        current = self.seen(self.store.annotation(ann_id))
        if (current.category == category and current.status == "relabeled"
                and reason in (None, current.reason) and comment in (None, current.comment)):
            return None  # (a new reason or comment for the same class is recorded)
        if current.category == category and current.status != "relabeled":
            raise LabelreviewError(f"annotation {ann_id} is already {category!r}; use accept")
        if current.kind in _ONE_PER_CLASS and current.category != category:
            twin = next((a for a in self.image_annotations(current.image_id) if a.id != ann_id
                         and a.kind == current.kind and a.category == category and a.status != "rejected"), None)
            if twin is not None:
                what = "label" if current.kind == "label" else "class mask"
                raise LabelreviewError(
                    f"image {current.image_id} already has a {category!r} {what} ({twin.id}, {twin.status}): "
                    f"relabeled, {ann_id} would be a second one, and exports would merge the two; reject "
                    f"{ann_id} instead (a {current.category!r} that is not there), or relabel it as another class")
        return self._decide(ann_id, "relabel", category=category, reason=reason, comment=comment, base=base)

    def flag(self, ann_id: int, reason: str, *, comment: str | None = None, base: Any = CURRENT) -> dict | None:
        self._check_reason(reason, self.store.config.flag_reasons, "flag", required=True)
        return self._decide(ann_id, "flag", reason=reason, comment=comment, base=base)

    def reject(self, ann_id: int, *, reason: str | None = None, comment: str | None = None,
               base: Any = CURRENT) -> dict | None:
        self._check_reason(reason, self.store.config.reject_reasons, "reject", required=False)
        return self._decide(ann_id, "reject", reason=reason, comment=comment, base=base)

    def accept_all(self, ann_ids: list[int], bases: dict[int, Any] | None = None
                   ) -> tuple[list[dict], list[tuple[int, str]]]:
        """Accept each still-pending annotation of the list (e.g. the rest of an image). One waiting
        for adjudication is left to the adjudicator (accepting it would settle its conflict), and one
        refused (changed by someone since) is skipped; the others are still accepted. Returns the
        events and the skipped (annotation, why)."""
        done, skipped = [], []
        for ann_id in ann_ids:
            if self.store.open_conflict_events(ann_id):
                skipped.append((ann_id, "waiting for adjudication"))
                continue
            base = (bases or {}).get(ann_id, CURRENT)
            current = self.seen(self.store.annotation(ann_id))
            if current.status != "pending":
                if base is not CURRENT and base != current.last_event:
                    # Decided by someone else since the caller saw it pending (another reviewer
                    # on the image while the confirmation was open): say so, as a refused decision
                    # does, rather than leave it out without a word.
                    who = current.updated_by.split(" <")[0] if current.updated_by else "someone"
                    skipped.append((ann_id, f"{who} decided it since you saw it "
                                            f"({current.status}, {current.category}); nothing was written"))
                continue
            try:
                ev = self.accept(ann_id, base=base)
            except LabelreviewError as e:
                skipped.append((ann_id, str(e)))
                continue
            if ev:
                done.append(ev)
        batch = tuple(ev["hash"] for ev in done)
        for h in batch:
            self._batch_of[h] = batch
        return done, skipped

    def undo_action(self) -> list[dict]:
        """Take back this reviewer's latest action: one decision, or every decision of an "accept
        the rest" made in this session (newest first). If one of the batch cannot be undone (someone
        changed it since), the ones before it stay undone and PartialUndo says which."""
        first = self.undo()
        if first is None:
            return []
        done = [first]
        batch = self._batch_of.get(first["undoes"], ())
        while batch:
            target = self.store.last_undoable()
            if target is None or target["hash"] not in batch:
                break
            try:
                ev = self.undo()
            except LabelreviewError as e:
                for h in batch:  # what is left of it is undone one decision at a time from here
                    self._batch_of.pop(h, None)
                raise PartialUndo(str(e), done) from e
            if ev is None:
                break
            done.append(ev)
        return done

    def undo(self) -> dict | None:
        """Take back this reviewer's latest decision that is not undone yet (a new event)."""
        require(self.store, "review")
        target = self.store.last_undoable()
        if target is None:
            return None
        current = self.store.annotation(target["annotation"])
        waiting = self.store.blind_waiting(current.id) if target.get("blind") else {}
        if waiting.get(self.store.identity.author) == target["hash"]:
            # A blind decision no second reviewer has matched yet: take it back, still blind.
            ev = self.store.record(current.id, "undo", current.state(), base=current.last_event,
                                   undoes=target["hash"], reason=f"undo {target['action']}",
                                   extra={"blind": True})
            self._after(-1)  # (taken back from the pace, as any undo: it counted as one more)
            return ev
        if target["hash"] in self.store.open_conflict_events(current.id):
            # It never applied: it waits for adjudication (after a sync, or a blind disagreement).
            # Taking it back withdraws it from the conflict; the state stays as it is (under blind
            # review the other reviewer's decision waits again for a second one, unseen).
            ev = self.store.record(current.id, "undo", self.seen(current).state(), base=current.last_event,
                                   undoes=target["hash"], reason=f"undo {target['action']}",
                                   extra={"blind": True} if target.get("blind") else None)
            self._after(-1)
            return ev
        partner = self.store.agreed_with(target["hash"])
        if not target.get("blind") and (
                (partner is not None and self._as_left_by(current.last_event, partner))
                or (self.store.agreeing(target["hash"]) and self._as_left_by(current.last_event, target["hash"]))):
            # One of two identical decisions (another reviewer's, met in a sync; this one merged into
            # it, or it into this one): taking it back withdraws this reviewer's agreement only, and
            # the label keeps the other's decision.
            ev = self.store.record(current.id, "undo", current.state(), base=current.last_event,
                                   undoes=target["hash"], reason=f"undo {target['action']}")
            self._after(-1)
            return ev
        if not self._as_left_by(current.last_event, target["hash"]):
            # (Nobody changed a label still as proposed: the decision no longer stands, e.g. it was
            # adjudicated and the adjudication taken back. Never "None changed it since".)
            who = f"{current.updated_by.split(' <')[0]} changed it since" if current.updated_by else "it no longer stands"
            raise LabelreviewError(f"cannot undo your {target['action']} of annotation {target['annotation']}: "
                                   f"{who} ({current.status}, {current.category})")
        old = target["old"]
        # The state the decision was made on comes back whole: its class and status, and the reason
        # and comment it had (a flag's "loose-box — tail cut"), not the undo's own words.
        reason, comment = self._note_before(target)
        new = {"category": old["category"], "status": old["status"], "reason": reason, "comment": comment}
        # Undoing an adjudication reopens the conflict it settled: the competing decisions wait again.
        reopens = target.get("resolves") if target["action"] == "resolve" else None
        ev = self.store.record(target["annotation"], "undo", new, base=current.last_event, undoes=target["hash"],
                               reason=f"undo {target['action']}", extra={"reopens": reopens} if reopens else None)
        self._after(-1)
        return ev

    def _as_left_by(self, last_event: str | None, target: str) -> bool:
        """Is the annotation in the state ``target`` left it? Either ``target`` is its last event, or
        undos since took back, one by one, every decision made on top of it (undo, undo again)."""
        seen: set[str] = set()
        h = last_event
        while h is not None and h not in seen:
            if h == target:
                return True
            seen.add(h)
            ev = self.store.event(h)
            if ev["action"] != "undo" or not ev.get("undoes"):
                return False
            h = self.store.event(ev["undoes"])["base"]  # the undone decision was made on this state
        return False

    def choices(self, action: str) -> list[str]:
        """What a reviewer picks from for ``action`` (relabel: the classes; flag, reject: the
        reasons), as labelreview.toml says now: a class or reason an admin adds while a review is
        open is offered at the next pick, not after a restart. One stat when it did not change."""
        self.store.refresh_config()
        if action == "relabel":
            return self.store.class_names()
        if action == "flag":
            return list(self.store.config.flag_reasons) or ["other"]
        if action == "reject":
            return list(self.store.config.reject_reasons)
        raise ValueError(f"no choices for {action!r}")

    def _note_before(self, target: dict) -> tuple[str | None, str | None]:
        """The reason and comment of the state ``target`` was decided on (none for a proposal)."""
        if not target.get("base"):
            return None, None
        return note_of(self.store.event(target["base"]))

    # -------------------------------------------------------------- internals

    def _check_class(self, category: str) -> None:
        classes = self.store.class_names()
        if category not in classes:
            close = difflib.get_close_matches(category, classes, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; classes: {', '.join(classes[:20])}"
            raise LabelreviewError(f"unknown class {category!r}{hint} (a new class goes in `classes` under "
                                   "[project] in labelreview.toml)")

    def _check_reason(self, reason: str | None, allowed: list[str], action: str, required: bool) -> None:
        if not reason:
            if required:
                raise LabelreviewError(f"{action} needs a reason" + (f": one of {', '.join(allowed)}" if allowed else ""))
            return
        if allowed and reason not in allowed:
            raise LabelreviewError(f"unknown {action} reason {reason!r}; labelreview.toml allows "
                                   f"{', '.join(allowed)}")

    def _decide(self, ann_id: int, action: str, *, category: str | None = None, reason: str | None = None,
                comment: str | None = None, base: Any = CURRENT) -> dict | None:
        require(self.store, "review")
        stored = self.store.annotation_state(ann_id)  # (no geometry: a decision needs none)
        conflicts = self.store.open_conflict_events(ann_id)
        current = self.seen(stored) if not conflicts else stored
        new = {"category": category or current.category, "status": STATUS_AFTER[action]}
        if conflicts:  # deciding a conflicted annotation anew is adjudicating it
            return self._resolve(stored, new, conflicts, reason=reason, comment=comment, base=base)
        if (new == current.state() and reason == current.reason and comment in (None, current.comment)
                and (base is CURRENT or base == current.last_event)):
            return None  # the same decision again: nothing new to record
        extra = {"blind": True} if self._blind_open(stored.id) else None
        ev = self.store.record(ann_id, action, new, reason=reason, comment=comment, base=base, extra=extra)
        self._after()
        return ev

    # -------------------------------------------------------------- adjudication

    def conflicts(self, ann_id: int) -> list[dict]:
        """The competing decisions on an annotation (empty when it has no open conflict)."""
        found = self.store.open_conflicts([ann_id])
        return found[0]["decisions"] if found else []

    def resolve(self, ann_id: int, *, pick: str | None = None, category: str | None = None,
                status: str | None = None, reason: str | None = None, comment: str | None = None,
                base: Any = CURRENT) -> dict:
        """Adjudicate: take one of the competing decisions (``pick``: an event hash or prefix), or
        decide anew (``category`` and/or ``status``). Recorded as a ``resolve`` event naming the
        conflicting events it resolves."""
        require(self.store, "adjudicate")
        ann = self.store.annotation(ann_id)
        conflicts = self.store.open_conflict_events(ann_id)
        if not conflicts:
            raise LabelreviewError(f"annotation {ann_id} has no open conflict")
        if pick:
            if category or status:
                raise LabelreviewError("pick one decision, or give a class and status; not both")
            ev = self.store.event(pick, annotation=ann_id)
            if ev["hash"] not in {d["hash"] for d in self.conflicts(ann_id)}:
                raise LabelreviewError(f"event {pick} is not one of the competing decisions on annotation {ann_id}")
            # The label takes the picked decision whole: a flag or reject with its reason and comment
            # (the adjudicator's own --reason stays on the resolve event, for the audit trail).
            reason_, comment_ = note_of(ev)
            new = {"category": ev["new"]["category"], "status": ev["new"]["status"],
                   "reason": reason_, "comment": comment_}
        else:
            if not category and not status:
                raise LabelreviewError("resolve needs --pick EVENT, or a --category and/or --status")
            new = {"category": category or ann.category, "status": status or ann.status}
            self._check_class(new["category"])
            if new["status"] not in STATUSES:
                raise LabelreviewError(f"unknown status {new['status']!r}; use {', '.join(STATUSES)}")
        return self._resolve(ann, new, conflicts, reason=reason, comment=comment, base=base)

    def _resolve(self, ann: Annotation, new: dict, conflicts: list[str], *, reason: str | None,
                 comment: str | None, base: Any) -> dict:
        require(self.store, "adjudicate")
        ev = self.store.record(ann.id, "resolve", new, reason=reason, comment=comment, base=base,
                               extra={"resolves": sorted(conflicts)})
        self._after()
        return ev

    # -------------------------------------------------------------- blind double review

    def _blind_open(self, ann_id: int) -> bool:
        """Still in its blind phase: double review is on and fewer than two reviewers decided it."""
        return self.blind and len(self.store.blind_reviewers([ann_id]).get(ann_id, ())) < 2

    def seen(self, ann: Annotation) -> Annotation:
        """The annotation as this reviewer may see it: with their own blind decision, if any."""
        return self.seen_all([ann])[0]

    def image_annotations(self, image_id: int) -> list[Annotation]:
        """An image's annotations in id order, as this reviewer may see them."""
        return self.seen_all(self.store.annotations(AnnotationFilter(image_ids=[image_id]), order="id"))

    def seen_all(self, anns: list[Annotation]) -> list[Annotation]:
        if not self.blind or not anns:
            return anns
        mine = self.store.blind_decisions(self.store.identity.author, [a.id for a in anns])
        return [replace(a, category=mine[a.id]["category"], status=mine[a.id]["status"]) if a.id in mine else a
                for a in anns]

    def after(self, action: str, anns: list[Annotation], ann_id: int) -> list[Annotation]:
        """``anns`` as this reviewer will see them once ``action`` (accept, flag, reject) is taken
        on ``ann_id``: what the screen draws ahead of a decision, so its picture is ready when the
        decision comes. Nothing is recorded."""
        status = STATUS_AFTER[action]
        return [replace(a, status=status) if a.id == ann_id else a for a in anns]

    def history(self, ann_id: int) -> list[dict]:
        """The annotation's events this reviewer may see. While it is in its blind phase: none of
        another reviewer's blind decisions, not even one taken back (a withdrawn "cup" still told
        the next reviewer what the first one thought), nor the undos of them."""
        events = self.store.events(annotation=ann_id)
        if not self.blind:
            return events
        me = self.store.identity.author
        hidden = {h for a, h in self.store.blind_waiting(ann_id).items() if a != me}
        if self._blind_open(ann_id):
            for e in events:  # (in the order they were made: an undo comes after what it undoes)
                if e["author"] != me and (e["blind"] or e.get("undoes") in hidden):
                    hidden.add(e["hash"])
        return [e for e in events if e["hash"] not in hidden]

    def _after(self, counted: int = 1) -> None:
        # An undo takes a decision back from the pace too (never below none).
        self.decisions = max(0, self.decisions + counted)
        if self.auto_checkpoint:
            self.store.maybe_checkpoint()

    def finish(self) -> str | None:
        """End of a command or a review: commit what is not in git yet."""
        return self.store.checkpoint()

    def rate_per_minute(self) -> float:
        minutes = max((time.monotonic() - self.started) / 60.0, 1e-9)
        return self.decisions / minutes
