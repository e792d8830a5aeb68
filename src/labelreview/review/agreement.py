"""Inter-reviewer agreement: per pair of reviewers and per class, on the items both reviewed.

Each reviewer's decision on an annotation is their latest one (accept, relabel, flag, reject; an
undo takes it back; an adjudicator's resolve is not a review). Over the annotations both reviewed:

- class kappa: Cohen's kappa of the classes both chose, on the items neither rejected (a rejected
  box has no class to agree on); ``class_agreement`` is the raw share of those items.
- per class: one-vs-rest Cohen's kappa (chose this class or not) on the same items, how many items
  either reviewer put in the class, and the share of those both did.
- accept/reject agreement: the share of items where both kept the label (accepted or relabeled)
  or both rejected it, over items both accepted-or-rejected (a flag is neither).

Kappa is None when it is undefined (both reviewers used a single class throughout).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from ..store import Store, canonical

KEEP = ("accepted", "relabeled")


def latest_decisions(store: Store) -> dict[str, dict[int, dict[str, str]]]:
    """reviewer -> annotation -> their latest decision's new state (undone ones left out)."""
    rows = store.conn.execute(
        "SELECT author, annotation, action, new, undoes, hash FROM events"
        " WHERE action IN ('accept', 'relabel', 'flag', 'reject', 'undo') ORDER BY ts, writer, seq")
    out: dict[str, dict[int, dict[str, str]]] = {}
    for author, ann, action, new, undoes, h in rows:
        mine = out.setdefault(author, {})
        if action == "undo":
            if ann in mine and mine[ann].get("event") == undoes:
                del mine[ann]
            continue
        state = canonical.loads(new)
        mine[ann] = {"category": state["category"], "status": state["status"], "event": h}
    return {a: d for a, d in out.items() if d}


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items (None when undefined)."""
    if not a:
        return None
    labels = sorted(set(a) | set(b))
    index = {x: i for i, x in enumerate(labels)}
    ia = np.fromiter((index[x] for x in a), dtype=np.int64, count=len(a))
    ib = np.fromiter((index[x] for x in b), dtype=np.int64, count=len(b))
    m = np.zeros((len(labels), len(labels)), dtype=np.float64)
    np.add.at(m, (ia, ib), 1.0)
    n = m.sum()
    po = np.trace(m) / n
    pe = float((m.sum(axis=1) / n) @ (m.sum(axis=0) / n))
    if pe >= 1.0 - 1e-12:
        return None
    return float((po - pe) / (1.0 - pe))


def _pair(name_a: str, da: dict[int, dict], name_b: str, db: dict[int, dict]) -> dict[str, Any] | None:
    common = sorted(set(da) & set(db))
    if not common:
        return None
    kept = [i for i in common if da[i]["status"] != "rejected" and db[i]["status"] != "rejected"]
    ca = [da[i]["category"] for i in kept]
    cb = [db[i]["category"] for i in kept]
    classes = []
    for c in sorted(set(ca) | set(cb)):
        ya = ["y" if x == c else "n" for x in ca]
        yb = ["y" if x == c else "n" for x in cb]
        either = sum(1 for x, y in zip(ca, cb) if x == c or y == c)
        both = sum(1 for x, y in zip(ca, cb) if x == c and y == c)
        classes.append({"class": c, "items": either, "kappa": cohen_kappa(ya, yb),
                        "agreement": both / either if either else None})

    def verdict(state: dict) -> str | None:
        return "keep" if state["status"] in KEEP else ("reject" if state["status"] == "rejected" else None)

    ar = [(verdict(da[i]), verdict(db[i])) for i in common]
    ar = [(x, y) for x, y in ar if x and y]
    return {
        "a": name_a, "b": name_b, "items": len(common), "class_items": len(kept),
        "kappa": cohen_kappa(ca, cb),
        "class_agreement": (sum(x == y for x, y in zip(ca, cb)) / len(kept)) if kept else 0.0,
        "accept_reject_items": len(ar),
        "accept_reject_agreement": (sum(x == y for x, y in ar) / len(ar)) if ar else None,
        "accept_reject_kappa": cohen_kappa([x for x, _ in ar], [y for _, y in ar]),
        "classes": classes,
    }


def agreement(store: Store) -> dict[str, Any]:
    decisions = latest_decisions(store)
    reviewers = sorted(decisions)
    pairs = []
    for a, b in combinations(reviewers, 2):
        p = _pair(a, decisions[a], b, decisions[b])
        if p is not None:
            pairs.append(p)
    return {"reviewers": reviewers, "pairs": pairs}
