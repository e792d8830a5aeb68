"""A reviewer's decisions: accept, relabel, flag, reject, undo. The CLI and the TUI both call this."""

from __future__ import annotations

import difflib
import time
from typing import Any

from ..model import STATUS_AFTER, LabelreviewError
from ..store import CURRENT, Store
from .roles import require


class ReviewSession:
    """Decisions by one reviewer on one store; every decision is durable when the call returns."""

    def __init__(self, store: Store, auto_checkpoint: bool = True):
        self.store = store
        #: The command line checkpoints every N decisions itself; the TUI does it in a worker.
        self.auto_checkpoint = auto_checkpoint
        self.started = time.monotonic()
        self.decisions = 0

    # -------------------------------------------------------------- decisions

    def accept(self, ann_id: int, *, base: Any = CURRENT, comment: str | None = None) -> dict | None:
        return self._decide(ann_id, "accept", base=base, comment=comment)

    def relabel(self, ann_id: int, category: str, *, reason: str | None = None,
                comment: str | None = None, base: Any = CURRENT) -> dict | None:
        classes = self.store.class_names()
        if category not in classes:
            close = difflib.get_close_matches(category, classes, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; classes: {', '.join(classes[:20])}"
            raise LabelreviewError(f"unknown class {category!r}{hint}")
        current = self.store.annotation(ann_id)
        if current.category == category and current.status == "relabeled":
            return None
        if current.category == category:
            raise LabelreviewError(f"annotation {ann_id} is already {category!r}; use accept")
        return self._decide(ann_id, "relabel", category=category, reason=reason, comment=comment, base=base)

    def flag(self, ann_id: int, reason: str, *, comment: str | None = None, base: Any = CURRENT) -> dict | None:
        self._check_reason(reason, self.store.config.flag_reasons, "flag", required=True)
        return self._decide(ann_id, "flag", reason=reason, comment=comment, base=base)

    def reject(self, ann_id: int, *, reason: str | None = None, comment: str | None = None,
               base: Any = CURRENT) -> dict | None:
        self._check_reason(reason, self.store.config.reject_reasons, "reject", required=False)
        return self._decide(ann_id, "reject", reason=reason, comment=comment, base=base)

    def accept_all(self, ann_ids: list[int], bases: dict[int, Any] | None = None) -> list[dict]:
        """Accept each still-pending annotation of the list (e.g. the rest of an image)."""
        done = []
        for ann_id in ann_ids:
            if self.store.annotation(ann_id).status != "pending":
                continue
            ev = self.accept(ann_id, base=(bases or {}).get(ann_id, CURRENT))
            if ev:
                done.append(ev)
        return done

    def undo(self) -> dict | None:
        """Take back this reviewer's latest decision that is not undone yet (a new event)."""
        require(self.store, "review")
        target = self.store.last_undoable()
        if target is None:
            return None
        current = self.store.annotation(target["annotation"])
        if current.last_event != target["hash"]:
            raise LabelreviewError(
                f"cannot undo your {target['action']} of annotation {target['annotation']}: "
                f"{current.updated_by} changed it since ({current.status}, {current.category})")
        old = target["old"]
        ev = self.store.record(target["annotation"], "undo", {"category": old["category"], "status": old["status"]},
                               base=target["hash"], undoes=target["hash"],
                               reason=f"undo {target['action']}")
        self._after()
        return ev

    # -------------------------------------------------------------- internals

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
        current = self.store.annotation(ann_id)
        new = {"category": category or current.category, "status": STATUS_AFTER[action]}
        if (new == current.state() and reason == current.reason and comment in (None, current.comment)
                and (base is CURRENT or base == current.last_event)):
            return None  # the same decision again: nothing new to record
        ev = self.store.record(ann_id, action, new, reason=reason, comment=comment, base=base)
        self._after()
        return ev

    def _after(self) -> None:
        self.decisions += 1
        if self.auto_checkpoint:
            self.store.maybe_checkpoint()

    def finish(self) -> str | None:
        """End of a command or a review: commit what is not in git yet."""
        return self.store.checkpoint()

    def rate_per_minute(self) -> float:
        minutes = max((time.monotonic() - self.started) / 60.0, 1e-9)
        return self.decisions / minutes
