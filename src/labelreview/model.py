"""The plain data that flows between formats, the store and the review layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

#: Every status an annotation can be in. ``pending`` until a reviewer decides.
STATUSES = ("pending", "accepted", "relabeled", "flagged", "rejected")

#: Actions a reviewer (or a script) can record. ``undo`` is an action too: history only grows.
#: ``resolve`` is an adjudicator's decision on a conflict; it names the events it resolves.
DECISIONS = ("accept", "relabel", "flag", "reject")
ACTIONS = (*DECISIONS, "undo", "resolve")

#: The status each decision leaves an annotation in.
STATUS_AFTER = {"accept": "accepted", "relabel": "relabeled", "flag": "flagged", "reject": "rejected"}

#: Annotation kinds the store understands.
KINDS = ("bbox", "polygon", "rle", "keypoints", "label", "mask")

#: Integers the store keeps lie in [-INT64, INT64): SQLite's (a bigger one fails to bind).
INT64 = 1 << 63


def shape_of(kind: str, extra: dict[str, Any] | None) -> str:
    """What the source drew, where the store's kind says less: a CVAT or Label Studio polyline and
    CVAT points are kept as keypoints, an oriented box as a 4-corner polygon."""
    extra = extra or {}
    if extra.get("cvat_shape") in ("polyline", "points"):
        return extra["cvat_shape"]
    if extra.get("ls_shape") == "polyline":
        return "polyline"
    if extra.get("obb") is True:
        return "rotated box"
    return kind


@dataclass(slots=True)
class Category:
    """A label class. ``name`` is what reviewers and the store use; ``source_id`` is the file's id."""

    name: str
    source_id: int | None = None
    supercategory: str | None = None
    keypoints: list[str] | None = None
    skeleton: list[list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ImageRecord:
    """An image as a source file describes it. ``key`` is unique within one import."""

    key: str
    file_name: str
    width: int | None = None
    height: int | None = None
    source_id: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Proposal:
    """One proposed label as imported: geometry in image pixels, COCO conventions (x, y, w, h)."""

    image_key: str
    category: str
    kind: str
    bbox: list[float] | None = None
    segmentation: Any = None  # list of flat polygons, or RLE {"size": [h, w], "counts": str}
    keypoints: list[float] | None = None
    score: float | None = None
    iscrowd: int = 0
    area: float | None = None
    source_id: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Other class scores from the model, for the relabel picker ({class: score}).
    scores: dict[str, float] | None = None


@dataclass(slots=True)
class ImportWarning:
    """Something odd in the source that was repaired or skipped, and where it was."""

    where: str  # e.g. "annotations[12] (id 7)"
    problem: str
    action: str  # "repaired" | "skipped"

    def as_dict(self) -> dict[str, str]:
        return {"where": self.where, "problem": self.problem, "action": self.action}


@dataclass(slots=True)
class ImportBatch:
    """Everything one source file brings, validated, ready for the store to ingest atomically."""

    format: str
    source_file: str
    images: list[ImageRecord]
    categories: list[Category]
    #: A list, or an iterator the store consumes once (a large file read as it is stored); then
    #: ``warnings`` and ``categories`` grow while it is consumed.
    proposals: list[Proposal] | Iterable[Proposal]
    warnings: list[ImportWarning] = field(default_factory=list)
    #: Dataset-level keys kept for round trips (COCO ``info``, ``licenses``...).
    info: dict[str, Any] = field(default_factory=dict)
    #: The sha256 (hex) of the bytes the reader read, or a callable that gives it (hashed in the
    #: background); None: the store hashes the source file itself.
    source_sha256: Any = None
    #: Image key -> the store's image id, for images that are the store's own (a results list
    #: resolved against an earlier import): the labels go on those images, not on new ones.
    store_images: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Annotation:
    """An annotation as the store holds it now: the proposal plus its current reviewed state."""

    id: int
    image_id: int
    category: str
    status: str
    kind: str
    bbox: list[float] | None
    segmentation: Any
    keypoints: list[float] | None
    score: float | None
    iscrowd: int
    area: float | None
    source: str
    source_id: Any
    import_id: str
    extra: dict[str, Any]
    scores: dict[str, float] | None
    #: Hash of the last event applied to this annotation, or None while untouched.
    last_event: str | None = None
    updated_at: str | None = None
    updated_by: str | None = None
    reason: str | None = None
    comment: str | None = None
    proposed_category: str | None = None

    def state(self) -> dict[str, Any]:
        """The reviewable part of the annotation: what an event's old/new values describe."""
        return {"category": self.category, "status": self.status}


@dataclass(slots=True)
class Image:
    """An image as the store holds it: where it is and what its pixels hashed to at import."""

    id: int
    import_id: str
    file_name: str
    path: str  # absolute path resolved from the import's image root (may not exist)
    width: int | None
    height: int | None
    sha256: str | None
    source_id: Any
    extra: dict[str, Any]


class LabelreviewError(Exception):
    """An error a user should see as a clear message (never a traceback)."""


class DamagedFileError(LabelreviewError):
    """A committed file of a store (an event log, an import folder) that cannot be read as written:
    names the file and line. ``verify`` reports these; other commands stop on them."""


class InputError(LabelreviewError):
    """A malformed input file: names the file, the item and the problem."""

    def __init__(self, file: str, where: str, problem: str):
        self.file, self.where, self.problem = file, where, problem
        super().__init__(f"{file}: {where}: {problem}" if where else f"{file}: {problem}")

    def __reduce__(self):  # (pickled as it was made: a forked import's reader raises it across a pipe)
        return type(self), (self.file, self.where, self.problem), self.__dict__


class ConflictError(LabelreviewError):
    """A decision was made on a state that has changed since."""


class PermissionRefused(LabelreviewError):
    """The user's role does not allow the action."""


@dataclass(slots=True)
class AnnotationFilter:
    """Which annotations a listing or a review queue covers. Empty fields do not filter."""

    statuses: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    score_min: float | None = None
    score_max: float | None = None
    authors: list[str] = field(default_factory=list)  # who made the latest decision
    reasons: list[str] = field(default_factory=list)  # flag / reject reason of the latest decision
    image_ids: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    conflicts: bool = False

    def check(self) -> AnnotationFilter:
        """Refuse a status no label can have (``pendng`` matched nothing, silently)."""
        bad = [s for s in self.statuses if s not in STATUSES]
        if bad:
            raise LabelreviewError(f"unknown status {', '.join(bad)}; use {', '.join(STATUSES)}")
        # A score range no score can be in (0.9:0.1, nan) matched nothing, and said only that.
        lo, hi = self.score_min, self.score_max
        if any(v is not None and v != v for v in (lo, hi)):
            raise LabelreviewError("a score range takes numbers, MIN:MAX (either may be empty), not nan")
        if lo is not None and hi is not None and lo > hi:
            raise LabelreviewError(f"the score range {lo:g}:{hi:g} is empty: MIN comes first ({hi:g}:{lo:g})")
        return self


def split_list(value: str) -> list[str]:
    """A comma list as filters take it (``dog,cat``, or ``dog, cat`` as lists are written); an item
    in double quotes may hold commas or spaces (``"traffic light",car``), and "" is a quote inside
    one. (Without skipping the space after a comma, ``--status "accepted, flagged"`` was refused as
    an unknown status " flagged" and ``--class "cup, saucer"`` matched no saucer.)"""
    import csv

    return next(csv.reader([value], skipinitialspace=True), []) if value else []
