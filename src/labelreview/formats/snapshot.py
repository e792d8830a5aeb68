"""What an export writes: the store's reviewed labels, with each label's provenance."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from ..model import Annotation, Category, Image, LabelreviewError

#: Statuses exported by default; ``--include`` adds flagged or pending. Rejected: never.
DEFAULT_STATUSES = ("accepted", "relabeled")
STATUS_INCLUDABLE = ("flagged", "pending")
#: ``--include conflicted``: labels waiting for adjudication, as they stand (else left out, and said).
CONFLICTED = "conflicted"
INCLUDABLE = (*STATUS_INCLUDABLE, CONFLICTED)


@dataclass(slots=True)
class Snapshot:
    images: list[Image]
    annotations: list[Annotation]
    categories: list[Category]
    info: dict[str, Any] = field(default_factory=dict)
    events: dict[int, dict[str, Any]] = field(default_factory=dict)  # annotation id -> last event
    image_by_id: dict[int, Image] = field(default_factory=dict)
    #: Image id -> how many of its image-level labels (kind "label") are neither exported nor
    #: rejected (pending or flagged, when not included): undecided. Asked for only by the writers that
    #: need it (a one-hot CSV row claims every class it does not mark absent); None: none are.
    held_back_labels: Callable[[], dict[int, int]] | None = None
    #: The same for semantic masks (kind "mask"): a mask PNG paints what no exported mask covers as
    #: background, so an image with a mask undecided would claim its pixels are background.
    held_back_masks: Callable[[], dict[int, int]] | None = None
    #: Whether the store's image labels are multi-label data: some imported file gave one image labels
    #: of two or more classes (whatever their status now). Asked for only by the CSV writer, which
    #: then writes one-hot columns whichever labels this export holds; None: not known (no store).
    multi_label: Callable[[], bool] | None = None
    #: Labels of the exported statuses left out because reviewers disagree on them (open conflicts
    #: waiting for adjudication): the state they hold is one side of a dispute, not a review.
    conflicted_left_out: int = 0

    def provenance(self, a: Annotation, exported_id: Any) -> dict[str, Any]:
        ev = self.events.get(a.id)
        return {
            "exported_id": exported_id, "annotation": a.id, "source": a.source, "source_id": a.source_id,
            "import": a.import_id, "status": a.status, "category": a.category,
            "proposed_category": a.proposed_category,
            "decided_by": ev["author"] if ev else None, "decided_at": ev["ts"] if ev else None,
            "action": ev["action"] if ev else None, "reason": ev["reason"] if ev else None,
            "comment": ev["comment"] if ev else None, "event": ev["hash"] if ev else None,
            "commit": ev["commit"] if ev else None,
        }


def snapshot_from_store(store, include: tuple[str, ...] = ()) -> Snapshot:
    """The reviewed labels of a store; ``include`` adds ``flagged`` and/or ``pending``, and
    ``conflicted`` the labels waiting for adjudication (else left out: counted in the snapshot)."""
    from ..model import AnnotationFilter

    bad = [s for s in include if s not in INCLUDABLE]
    if bad:
        raise LabelreviewError(f"--include takes {', '.join(INCLUDABLE)}; not {', '.join(bad)}"
                               + (" (rejected labels are never exported)" if "rejected" in bad else ""))
    statuses = list(DEFAULT_STATUSES) + [s for s in include if s != CONFLICTED]
    anns = store.annotations(AnnotationFilter(statuses=statuses), order="id")
    held_disputed: list[Annotation] = []  # labels of the exported statuses waiting for adjudication
    if CONFLICTED not in include:
        disputed = {r[0] for r in store.conn.execute(
            "SELECT DISTINCT annotation FROM conflicts WHERE resolved IS NULL")}
        if disputed:
            held_disputed = [a for a in anns if a.id in disputed]
            anns = [a for a in anns if a.id not in disputed]
    images = store.images()  # every image, so images left with no label stay in the dataset
    # The event each label's state comes from (not merely its newest: that may be a conflicting one).
    by_hash = {ev["hash"]: ev for ev in store.events()} if anns else {}
    last = {a.id: ev for a in anns if (ev := decision_in_effect(by_hash, a.last_event)) is not None}
    used = {a.category for a in anns}
    cats = export_categories(store.categories(), store.config.classes, used)
    info = {}
    for imp in store.imports():
        # (Only for the file's "info" block: a manifest damaged since the import does not stop an
        # export of the labels, which come from the index; verify reports the damage.)
        try:
            m = orjson.loads((store.root / "imports" / imp["id"] / "manifest.json").read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(m, dict) and isinstance(m.get("info"), dict) and m["info"]:
            info = m["info"]
            break
    held = [st for st in STATUS_INCLUDABLE if st not in statuses]

    def held_back(kind: str) -> dict[int, int]:
        out: dict[int, int] = {}
        back = store.annotations(AnnotationFilter(statuses=held), order="id") if held else []
        for a in [*back, *held_disputed]:
            if a.kind == kind:
                out[a.image_id] = out.get(a.image_id, 0) + 1
        return out

    def held_back_labels() -> dict[int, int]:
        return held_back("label")

    def held_back_masks() -> dict[int, int]:
        return held_back("mask")

    def multi_label() -> bool:
        # Per import, not per image: two sources of one image (ground truth and a model's guess)
        # are two opinions on a single-label image, not two labels of it. The classes as imported
        # (proposed_category), so relabeling does not change what the data is. A one-hot CSV is
        # multi-label data even when no row of it sets two classes: a row of zeros is an image checked
        # and found to have none, which single-label rows cannot say (the export dropped it).
        from .classification import ONE_HOT_FORMAT

        if store.conn.execute("SELECT 1 FROM imports WHERE format=? LIMIT 1", (ONE_HOT_FORMAT,)).fetchone():
            return True
        return store.conn.execute(
            "SELECT 1 FROM annotations WHERE kind='label' GROUP BY import_id, image_id"
            " HAVING COUNT(DISTINCT proposed_category) > 1 LIMIT 1").fetchone() is not None

    return Snapshot(images=images, annotations=anns, categories=cats, info=info, events=last,
                    image_by_id={im.id: im for im in images}, held_back_labels=held_back_labels,
                    held_back_masks=held_back_masks,
                    multi_label=multi_label, conflicted_left_out=len(held_disputed))


def decision_in_effect(by_hash: dict[str, dict[str, Any]], last_event: str | None) -> dict[str, Any] | None:
    """The decision a label's state comes from. An undo decides nothing: it brings back the state the
    undone decision was made on, so the decision is the one that made that state (undos of undos
    followed back), or none when the proposal is back. Named as the undo, a label flagged "loose-box"
    had "undo accept" for its reason, and one Ann accepted was decided by whoever took back a change."""
    ev, seen = by_hash.get(last_event or ""), set()
    while ev is not None and ev["action"] == "undo" and ev.get("undoes") and ev["hash"] not in seen:
        seen.add(ev["hash"])
        undone = by_hash.get(ev["undoes"])
        if undone is None:
            break
        if undone["base"] is None:
            return None
        restored = by_hash.get(undone["base"])
        if restored is None:
            break
        ev = restored
    return ev


def export_categories(imported: list[Category], config_classes: list[str], used: set[str]) -> list[Category]:
    """The classes of an export, in the order their ids (COCO) and indices (YOLO) are given.

    The imported categories first (as the store orders them: by their id in the imported file), then
    every class of labelreview.toml ``classes`` in the order of that list, used or not, then any other
    class a label uses (one since removed from the config), by name. Config classes are all listed,
    not only those in use: numbered by which happen to be used, a class's id changed from one export
    to the next as other classes came into use, and a model trained on one release read another
    class behind its outputs on the next. Appending to the list keeps every id; reordering or
    removing entries, or a new import that brings new categories, does not.
    """
    cats = list(imported)
    names = {c.name for c in cats}
    for n in config_classes:
        if n not in names:
            cats.append(Category(name=n))
            names.add(n)
    for extra in sorted(used - names):
        cats.append(Category(name=extra))
    return cats


def export_ids(source_ids: list[Any]) -> list[int]:
    """Keep each source id that is a positive, unique integer; number the rest after the largest.

    Id 0 is renumbered on purpose: COCOeval treats 0 as "unmatched" and miscounts.
    """
    seen: set[int] = set()
    keep: list[int | None] = []
    for sid in source_ids:
        if isinstance(sid, int) and not isinstance(sid, bool) and 0 < sid < 2**63 and sid not in seen:
            seen.add(sid)
            keep.append(sid)
        else:
            keep.append(None)
    nxt = max(seen, default=0) + 1
    out = []
    for k in keep:
        if k is None:
            k, nxt = nxt, nxt + 1
        out.append(k)
    return out


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file completely or not at all (a crash never leaves half an export), with the mode a
    new file gets (0o666 less the umask)."""
    if path.is_dir():
        raise LabelreviewError(f"{path}: is a folder; this format writes one file (give a file name, "
                               "e.g. reviewed.json; nothing was written)")
    if path.exists() and not path.is_file():  # (written over by a rename, /dev/full became a file)
        raise LabelreviewError(f"{path}: exists and is not a file (a device, a pipe or a socket); give the "
                               "name of a file to write (nothing was written)")
    path.parent.mkdir(parents=True, exist_ok=True)
    from .common import new_export_file

    fd, tmp = new_export_file(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def provenance_path(out: Path) -> Path:
    return out.with_name(out.name + ".provenance.jsonl")


def write_provenance(out: Path, rows: list[dict[str, Any]]) -> Path:
    side = provenance_path(out)
    write_bytes_atomic(side, b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n" for r in rows))
    return side
