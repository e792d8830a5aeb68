"""COCO instances files and detection results: read into an ImportBatch, write reviewed labels."""

from __future__ import annotations

import gc
import hashlib
import math
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np
import orjson
from pycocotools import mask as maskutils

from ..model import INT64, Category, ImageRecord, ImportBatch, ImportWarning, InputError, Proposal
from .common import MAX_NESTING, clip_bbox, drop_too_deep, far_clipped, rasterizable, too_deep

if TYPE_CHECKING:
    from .snapshot import Snapshot

_TRUE = {"1", "true", "yes", "t", "y"}
_FALSE = {"0", "false", "no", "f", "n", ""}
_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "segmentation", "keypoints", "num_keypoints",
             "score", "iscrowd", "area", "scores"}
_IMG_KEYS = {"id", "file_name", "width", "height"}
#: An annotation's extra key (kept in the store, never exported): the source had no "segmentation" key,
#: so the export writes none either (see ``build``).
NO_SEGMENTATION = "_labelreview_no_segmentation"
#: Extra keys starting with this are labelreview's own notes, never written to an export.
_OWN = "_labelreview_"
_CAT_KEYS = {"id", "name", "supercategory", "keypoints", "skeleton"}


def _read_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise InputError(str(path), "", f"cannot read ({e.strerror or e})") from None


_BOM = b"\xef\xbb\xbf"


def _parse(path: str | os.PathLike, data: bytes) -> Any:
    """orjson with the cyclic GC paused, and an error that names the place."""
    if data[:3] == _BOM:  # written by Windows tools; orjson refuses it, the text formats drop it
        data = data[3:]
    enabled = gc.isenabled()
    gc.disable()  # the GC's scans of millions of new containers cost more than the parse itself
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        line = data.count(b"\n", 0, e.pos) + 1
        raise InputError(str(path), f"line {line}, byte {e.pos}", f"not valid JSON: {e.msg}") from None
    finally:
        if enabled:
            gc.enable()


def load_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file fast (orjson, cyclic GC paused) with an error that names the place."""
    return _parse(path, _read_bytes(path))


# ---------------------------------------------------------------------- the annotations, piece by piece
#
# A COCO-train-sized file is 90 % one array, "annotations". Parsed whole, it costs the file's bytes,
# orjson's own parse tree and every Python object at once (3.7 GB for 365 MB). So the array is cut
# into pieces of a few MB at the separators between two objects (``}`` ``,`` ``{``) and each piece
# parsed on its own, when it is needed; the rest of the document (images, categories...) is parsed
# with the array replaced by a marker. Nothing is taken on trust: the document without the array
# must parse with the marker as its top-level "annotations" (so the key found is that key, and the
# end found is the array's end, whatever strings hold), and each piece must parse as a list of
# whole elements; a separator inside an element makes its piece fail, and the piece grows to the
# next one. JSON values are prefix-free, so pieces that parse are exactly the array's elements.
# Anything else (the key not found, a piece that never parses) falls back to parsing the whole file,
# which also gives every error its usual message.

_WS = rb"[ \t\n\r]*"  # JSON's whitespace (``\s`` would also take \f and \v)
_ANNS_KEY = re.compile(rb'"annotations"' + _WS + rb":" + _WS + rb"\[" + _WS)
_BETWEEN = re.compile(rb"\}" + _WS + rb"," + _WS + rb"\{")
_LAST = re.compile(rb"\}" + _WS + rb"\]")
PIECE = 2 << 20  # bytes of the array parsed at once
_TRIES = 4


class _Pieces:
    """The annotations array of ``data[start:end]`` (its content, without the brackets), parsed a
    piece at a time. Iterating yields lists of elements; ``first`` is the first element (parsed
    at once, for the checks on the file's kind)."""

    def __init__(self, path: str, data: bytes, start: int, end: int):
        self.path, self.data, self.start, self.end = path, data, start, end
        self._next = start
        self._head = self._piece() if start < end else []
        self.first = self._head[0] if self._head else None

    def _parse(self, start: int, stop: int) -> list | None:
        buf = bytearray(b"[")
        buf += memoryview(self.data)[start:stop]
        buf += b"]"
        try:
            got = orjson.loads(buf)
        except orjson.JSONDecodeError:
            return None
        return got if type(got) is list else None

    def _piece(self) -> list:
        data, start, end = self.data, self._next, self.end
        stop = start + PIECE
        for _ in range(16):
            m = _BETWEEN.search(data, stop, end) if stop < end else None
            if m is None:
                break
            got = self._parse(start, m.start() + 1)
            if got is not None:
                self._next = m.end() - 1
                return got
            stop = m.start() + 1  # that separator was inside an element: take the next one too
        got = self._parse(start, end)
        if got is None:
            raise _Unsplittable()
        self._next = end
        return got

    def __iter__(self) -> Iterator[list]:
        head, self._head = self._head, None
        if head:
            yield head
        del head
        while self._next < self.end:
            yield self._piece()
        self.data = None


class _Unsplittable(Exception):
    """A piece of the annotations array did not parse: the file is read whole (and the error told)."""


def _split_annotations(path: str, data: bytes) -> tuple[dict, _Pieces] | None:
    """The document without its annotations array, and the array in pieces; None when the file is
    not shaped for it (the caller then parses it whole)."""
    if not data[:1] == b"{":
        return None
    marker = "labelreview-annotations-" + os.urandom(8).hex()
    at = 0
    for _ in range(_TRIES):
        p = data.find(b'"annotations"', at)
        if p < 0:
            return None
        at = p + 1
        m = _ANNS_KEY.match(data, p)
        if m is None or data[p - 1:p] == b"\\":
            continue
        start = m.end()
        if data[start:start + 1] == b"]":
            ends = [(start, start)]
        else:
            ends = []
            e_at = start
            for _ in range(_TRIES):
                e = _LAST.search(data, e_at)
                if e is None:
                    break
                ends.append((e.start() + 1, e.end() - 1))
                e_at = e.start() + 1
        for end, close in ends:
            rest = data[:p] + b'"annotations":"' + marker.encode() + b'"' + data[close + 1:]
            try:
                doc = orjson.loads(rest)
            except orjson.JSONDecodeError:
                continue
            del rest
            if type(doc) is dict and doc.get("annotations") == marker:
                try:
                    return doc, _Pieces(path, data, start, end)
                except _Unsplittable:
                    return None
    return None


def _is_id(x: Any) -> bool:
    """COCO ids are integers (or, in the wild, strings); anything else can name nothing."""
    return isinstance(x, (int, str)) and not isinstance(x, bool)


def _fits(x: Any) -> bool:
    """Not an integer beyond 64 bits (SQLite's, and every COCO tool's): text, or an int that fits."""
    return not isinstance(x, int) or -INT64 <= x < INT64


def _finite(x: Any) -> bool:
    """A number the store can hold: finite, and an integer within 64 bits (SQLite's)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and _fits(x)


def _all_finite(values: list) -> bool:
    """Every item a finite number, checked in C (sum) rather than per number in Python.

    A string or None makes sum() raise; NaN or an infinity makes the sum non-finite (inf - inf is
    NaN). Per-number checks were a third of the import of a COCO-train-sized file."""
    try:
        return math.isfinite(sum(values)) and not any(v is True or v is False for v in values[:1])
    except (TypeError, OverflowError):
        return False


def _iscrowd(value: Any) -> tuple[int, bool]:
    """(value, repaired)."""
    if value is None:
        return 0, False
    if isinstance(value, bool):
        return int(value), True
    if isinstance(value, int) and value in (0, 1):
        return value, False
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return (1 if value.strip().lower() in _TRUE else 0), True
    if isinstance(value, (int, float)):
        return (1 if value else 0), True
    raise ValueError(f"iscrowd {value!r} is not 0/1")


def _valid_polygons(seg: list, where: str, warns: list[ImportWarning]) -> list[list[float]]:
    good = []
    for k, poly in enumerate(seg):
        if not isinstance(poly, list):
            warns.append(ImportWarning(where, f"segmentation[{k}] is not a list of numbers", "repaired"))
            continue
        if len(poly) < 6 or len(poly) % 2:
            warns.append(ImportWarning(where, f"polygon segmentation[{k}] has {len(poly)} numbers "
                                       "(needs an even count, at least 3 points); dropped", "repaired"))
            continue
        if not _all_finite(poly):
            warns.append(ImportWarning(where, f"polygon segmentation[{k}] has a non-number or NaN; dropped",
                                       "repaired"))
            continue
        good.append(poly)
    return good


_RLE_MAX = 2**32 - 1


def _check_rle(seg: dict, hw: tuple[int, int] | None, where: str) -> tuple[dict | None, str | None]:
    """An RLE as stored (compressed counts as str), or the problem that makes it unusable."""
    size, counts = seg.get("size"), seg.get("counts")
    if (not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v >= 0 for v in size)):
        return None, f"RLE size {size!r} is not [height, width]"
    h, w = size
    if h * w > _RLE_MAX:  # pycocotools keeps sizes, areas and runs in 32 bits
        return None, f"RLE size {size!r} is larger than a mask can be"
    if isinstance(counts, list):
        if not all(isinstance(c, int) and 0 <= c <= _RLE_MAX for c in counts):
            return None, "uncompressed RLE counts must be non-negative integers below 2**32"
        if sum(counts) != h * w:
            return None, f"uncompressed RLE counts sum to {sum(counts)}, not height*width = {h * w}"
        return {"size": [h, w], "counts": counts}, None
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if not isinstance(counts, str):
        return None, "RLE counts must be a list or a string"
    runs = _rle_string_runs(counts)
    if runs is None:
        return None, "compressed RLE counts are not a valid COCO RLE string"
    if (runs < 0).any():
        return None, "compressed RLE has a negative run length"
    total = int(runs.sum())
    if total != h * w:
        return None, f"compressed RLE counts sum to {total}, not height*width = {h * w}"
    return {"size": [h, w], "counts": counts}, None


def _rle_string_runs(counts: str) -> np.ndarray | None:
    """The run lengths of a compressed RLE string (pycocotools' ``rleFrString``), or None if malformed.

    pycocotools itself never checks the runs against the mask size (``area`` happily sums garbage,
    ``decode`` fails later), so an importer has to.
    """
    try:
        raw = counts.encode("ascii")
    except UnicodeEncodeError:
        return None
    c = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, np.int64)
    if (c < 0).any() or (c > 63).any():
        return None
    more = (c & 0x20) != 0
    if more[-1]:
        return None  # the last number is cut short
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 12:  # more than 60 bits: not a run length
        return None
    k = np.arange(c.size) - np.repeat(starts, lengths)
    vals = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    neg = (c[ends] & 0x10) != 0
    vals[neg] -= np.left_shift(1, 5 * lengths[neg])
    # from the third number on, each is stored as the difference to the one two places before
    vals[1::2] = np.cumsum(vals[1::2])
    vals[2::2] = np.cumsum(vals[2::2])
    return vals


def read(path: str | os.PathLike, *, gt_images: list[ImageRecord] | None = None,
         lazy: bool = False, image_root: str | os.PathLike | None = None) -> ImportBatch:
    """Read a COCO instances/keypoints/labels file, or a bare results list (needs ``gt_images``).

    ``image_root``: where the images are; an image the file gives no width/height for is measured
    there, so that its boxes are clipped to it (or skipped) as with a size in the file.

    ``lazy``: the batch's proposals are an iterator, read from the file while the store consumes
    them (a large file is never held whole); its warnings grow meanwhile, and an error in an
    annotation is raised from the iteration. Otherwise they are a list, read here."""
    path = str(path)
    data = _read_bytes(path)
    sha256 = _sha256_in_background(data) if lazy else None  # of the file as it is, BOM and all
    if data[:3] == _BOM:
        data = data[3:]
    enabled = gc.isenabled()
    gc.disable()
    try:
        split = _split_annotations(path, data)
        if split is not None:
            doc, pieces = split
            del data
            batch = _read_dataset(path, doc, pieces, image_root)
        else:
            doc = _parse(path, data)
            del data
            if isinstance(doc, list):
                batch = _read_results(path, doc, gt_images)
            elif not isinstance(doc, dict):
                raise InputError(path, "top level", f"expected a JSON object or a results list, not {type(doc).__name__}")
            else:
                batch = _read_dataset(path, doc, None, image_root)
        if not lazy:
            batch.proposals = list(batch.proposals)
        batch.source_sha256 = sha256
        return batch
    finally:
        if enabled:
            gc.enable()


def _sha256_in_background(data: bytes) -> Callable[[], str]:
    """The hash of ``data``, computed on another core while the file is parsed (hashlib lets go of
    the GIL on large inputs): the store needs it, and reading the file again cost ~1 s at 380 MB."""
    out: list[str] = []
    worker = threading.Thread(target=lambda: out.append(hashlib.sha256(data).hexdigest()), daemon=True)
    worker.start()

    def result() -> str:
        worker.join()
        return out[0]

    return result


def _error_of(path: str) -> InputError | None:
    """The error the file gives when read whole, the plain way (what a piecewise read must say)."""
    doc = _parse(path, _read_bytes(path))
    try:
        if isinstance(doc, list):
            return None
        if not isinstance(doc, dict):
            raise InputError(path, "top level", f"expected a JSON object or a results list, not {type(doc).__name__}")
        for _ in _read_dataset(path, doc, None).proposals:
            pass
    except InputError as e:
        return e
    return None


def _read_categories(path: str, cats: Any, warns: list[ImportWarning]) -> tuple[list[Category], dict[Any, str]]:
    if cats is None:
        cats = []
    if not isinstance(cats, list):
        raise InputError(path, "categories", "must be a list")
    out, by_id, names = [], {}, set()
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or "id" not in c:
            raise InputError(path, f"categories[{i}]", "a category needs an id")
        if not _is_id(c["id"]):
            raise InputError(path, f"categories[{i}]", f"category id {c['id']!r} must be an integer or a string")
        if not _fits(c["id"]):
            raise InputError(path, f"categories[{i}]", f"category id {c['id']} is larger than 64 bits can hold")
        name = str(c.get("name") if c.get("name") not in (None, "") else f"category-{c['id']}")
        if not name.strip():  # (blank: every other format reads a name stripped, so none could export it)
            warns.append(ImportWarning(f"categories[{i}] (id {c['id']})", f"blank name {name!r}; named "
                                       f"'category-{c['id']}'", "repaired"))
            name = f"category-{c['id']}"
        if name in names:
            name = f"{name}-{c['id']}"
            warns.append(ImportWarning(f"categories[{i}] (id {c['id']})", f"duplicate name; renamed {name!r}",
                                       "repaired"))
        if c["id"] in by_id:
            warns.append(ImportWarning(f"categories[{i}] (id {c['id']})", "duplicate category id; ignored",
                                       "skipped"))
            continue
        names.add(name)
        by_id[c["id"]] = name
        kps = c.get("keypoints")
        extra = drop_too_deep({k: v for k, v in c.items() if k not in _CAT_KEYS}, f"categories[{i}]", warns)
        sup = c.get("supercategory")
        if sup is not None and not isinstance(sup, str):
            # the index keeps a supercategory as text: anything else rides in extra, written back as it was
            extra["supercategory"], sup = sup, None
        out.append(Category(name=name, source_id=c["id"], supercategory=sup,
                            keypoints=kps if isinstance(kps, list) else None,
                            skeleton=c.get("skeleton") if isinstance(c.get("skeleton"), list) else None,
                            extra=extra))
    return out, by_id


#: An image's extra key (kept in the store, never exported) listing the other ids the same picture had
#: in its file: a results list made against that file may name it by any of them.
MERGED_IDS = "_labelreview_merged_ids"


def _read_images(path: str, imgs: Any, warns: list[ImportWarning],
                 image_root: str | os.PathLike | None = None) -> tuple[list[ImageRecord], dict[Any, ImageRecord]]:
    if imgs is None:
        imgs = []
    if not isinstance(imgs, list):
        raise InputError(path, "images", "must be a list")
    out, by_id = [], {}
    by_name: dict[str, tuple[int, ImageRecord]] = {}
    root_real = os.path.realpath(Path(image_root).expanduser()) if image_root is not None else None
    for i, im in enumerate(imgs):
        if not isinstance(im, dict) or "id" not in im:
            raise InputError(path, f"images[{i}]", "an image needs an id")
        iid = im["id"]
        where = f"images[{i}] (id {iid})"
        if not isinstance(iid, (int, str)) or isinstance(iid, bool):
            raise InputError(path, where, f"image id {iid!r} must be an integer or a string")
        if not _fits(iid):
            raise InputError(path, where, f"image id {iid} is larger than 64 bits can hold")
        if iid in by_id:
            warns.append(ImportWarning(where, "duplicate image id; this entry ignored", "skipped"))
            continue
        fn = im.get("file_name")
        if not isinstance(fn, str) or not fn:
            raise InputError(path, where, "an image needs a file_name")
        w, h = im.get("width"), im.get("height")
        # (pycocotools keeps sizes in 32 bits; a bigger one is no picture's, and SQLite held none past 64)
        if (w is not None and (type(w) is not int or not 0 < w < 1 << 31)
                or h is not None and (type(h) is not int or not 0 < h < 1 << 31)):
            warns.append(ImportWarning(where, f"width/height {w!r}x{h!r} invalid; read from the file", "repaired"))
            w = h = None
        first = by_name.get(fn)
        if first is not None:
            # The same picture under a second id: two images in the store, the picture twice in the
            # review. Merged into the first, as a second entry of the same id is, and as the store
            # makes a picture imported again one image; the annotations keep their ids.
            j, rec = first
            size = ""
            if rec.width is None or rec.height is None:
                rec.width, rec.height = (w, h) if w is not None and h is not None else (rec.width, rec.height)
            elif w is not None and h is not None and (w, h) != (rec.width, rec.height):
                size = f"; its size {w}x{h} differs, {rec.width}x{rec.height} kept"
            rec.extra.setdefault(MERGED_IDS, []).append(iid)  # a results list may name it by this id
            warns.append(ImportWarning(where, f"file_name {fn!r} is also image id {rec.source_id!r} (images[{j}]): "
                                       f"the same picture; merged into it, its annotations exported with image id "
                                       f"{rec.source_id!r}{size}", "repaired"))
            by_id[iid] = rec
            continue
        if (w is None or h is None) and root_real is not None:
            w, h = _size_on_disk(root_real, fn, w, h)
        rec = ImageRecord(key=str(iid) if not isinstance(iid, str) else "s:" + iid, file_name=fn, width=w, height=h,
                          source_id=iid, extra=drop_too_deep({k: v for k, v in im.items() if k not in _IMG_KEYS},
                                                             where, warns))
        by_id[iid] = rec
        by_name[fn] = (i, rec)
        out.append(rec)
    return out, by_id


def _size_on_disk(root_real: str, fn: str, w: int | None, h: int | None) -> tuple[int | None, int | None]:
    """The image's own size (as the store will record it), for an image the file gives none; the
    size as it was when the image cannot be read (the store reports its problem) or lies outside
    the image root (never read; the store drops it)."""
    from . import images as imgs

    if imgs.escapes_root(root_real, fn):
        return w, h
    try:
        return imgs.image_size(os.path.join(root_real, fn))
    except imgs.ImageProblem:
        return w, h


def _read_dataset(path: str, data: dict, pieces: _Pieces | None,
                  image_root: str | os.PathLike | None = None) -> ImportBatch:
    """``pieces``: the annotations array when it was cut out of ``data`` (see _split_annotations)."""
    warns: list[ImportWarning] = []
    if isinstance(data.get("image"), dict) and "images" not in data and "annotations" in data:
        raise InputError(path, "top level", "a Segment Anything (SA-1B) file, not COCO: import it with "
                         "`labelreview import sam`")
    if not any(k in data for k in ("images", "annotations", "categories")):
        keys = ", ".join(list(data)[:5]) or "none"
        raise InputError(path, "top level", f"not a COCO file: no images, annotations or categories "
                         f"(keys: {keys})")
    if pieces is None:
        if "annotations" in data and not isinstance(data["annotations"], list):
            raise InputError(path, "annotations", "must be a list")
        anns = data.get("annotations") or []
        first = anns[0] if anns else None
    else:
        anns, first = [], pieces.first
    if isinstance(first, dict):
        if "segments_info" in first:
            raise InputError(path, "annotations[0]", "COCO panoptic files are not supported; "
                             "import the instances file instead")
        if "caption" in first and not any(k in first for k in ("bbox", "segmentation", "keypoints")):
            raise InputError(path, "annotations[0]", "COCO captions are not labels labelreview reviews "
                             "(supported: instances, keypoints, image labels, detection results)")
    cats, cat_names = _read_categories(path, data.get("categories"), warns)
    images, img_by_id = _read_images(path, data.get("images"), warns, image_root)
    info = drop_too_deep({k: v for k, v in data.items() if k not in ("images", "annotations", "categories")},
                         "top level", warns)
    if pieces is None:
        proposals = _read_annotations(path, _free_as_read(anns), img_by_id, cat_names, cats, warns)
    else:
        proposals = _checked(path, _read_annotations(path, _elements(pieces), img_by_id, cat_names, cats, warns))
    return ImportBatch(format="coco", source_file=path, images=images, categories=cats,
                       proposals=proposals, warnings=warns, info=info)


def _free_as_read(items: list) -> Iterator[Any]:
    """The items of a parsed list, each let go once read (a lazy import then shrinks as it goes)."""
    for i in range(len(items)):
        item = items[i]
        items[i] = None
        yield item
    items.clear()


def _elements(pieces: _Pieces) -> Iterator[Any]:
    for piece in pieces:
        yield from _free_as_read(piece)


def _checked(path: str, proposals: Iterator[Proposal]) -> Iterator[Proposal]:
    """Proposals from a piecewise read; any error is the one reading the file whole gives."""
    try:
        yield from proposals
    except (InputError, _Unsplittable) as e:
        whole = _error_of(path)
        if whole is not None:
            raise whole from None
        if isinstance(e, InputError):
            raise
        raise InputError(path, "annotations", "the list could not be read") from None


def _read_results(path: str, data: list, gt_images: list[ImageRecord] | None) -> ImportBatch:
    warns: list[ImportWarning] = []
    if data and isinstance(data[0], dict) and "caption" in data[0]:
        raise InputError(path, "[0]", "caption results are not labels labelreview reviews")
    if gt_images is None:
        raise InputError(path, "", "a results list names images only by id: give the ground-truth "
                         "file with --gt, or import it into the store first")
    img_by_id = {im.source_id: im for im in gt_images}
    for im in gt_images:  # the ids a merged duplicate had name the same picture
        for other in (im.extra or {}).get(MERGED_IDS, ()):
            img_by_id.setdefault(other, im)
    used = {}
    for i, r in enumerate(data):
        if not isinstance(r, dict):
            raise InputError(path, f"[{i}]", "a result must be a JSON object")
        im = img_by_id.get(r.get("image_id")) if _is_id(r.get("image_id")) else None
        if im is not None:
            used[im.source_id] = im
    cat_ids = sorted({r.get("category_id") for r in data if isinstance(r.get("category_id"), int)})
    cats = [Category(name=f"category-{c}", source_id=c) for c in cat_ids]
    names = {c.source_id: c.name for c in cats}
    gt_cats = getattr(gt_images, "categories", None)
    if gt_cats:
        names = {c.source_id: c.name for c in gt_cats}
        cats = list(gt_cats)
    proposals = list(_read_annotations(path, data, img_by_id, names, cats, warns, results=True))
    return ImportBatch(format="coco-results", source_file=path, images=list(used.values()),
                       categories=cats, proposals=proposals, warnings=warns, info={})


class GroundTruthImages(list):
    """Images (and categories) from a ground-truth file, for resolving a results list."""

    categories: list[Category] = []


def gt_images_from(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> GroundTruthImages:
    batch = read(path, image_root=image_root)
    out = GroundTruthImages(batch.images)
    out.categories = batch.categories
    return out


#: Keys of a plain annotation (COCO train's own), which ``_read_annotations`` reads on a fast path.
_PLAIN_KEYS = frozenset({"id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd", "score"})


def _read_annotations(path: str, anns: Iterable, img_by_id: dict[Any, ImageRecord], cat_names: dict[Any, str],
                      cats: list[Category], warns: list[ImportWarning], results: bool = False) -> Iterator[Proposal]:
    """The proposals, one per annotation that is kept, as they are read.

    A plain annotation that needs no repair and no warning (all of COCO train but its crowd RLEs) is
    read on a fast path; anything else, or anything the fast path is unsure of, goes through
    ``_annotation``, which reads every case. The fast path only ever accepts what ``_annotation``
    would return unchanged and without a warning."""
    seen_ids: set = set()
    label = "" if results else "annotations"
    plain = _PLAIN_KEYS
    isfinite = math.isfinite
    for i, a in enumerate(anns):
        if type(a) is dict and a.keys() <= plain:
            aid, iid, cid = a.get("id"), a.get("image_id"), a.get("category_id")
            ta, ti, tc = type(aid), type(iid), type(cid)
            crowd = a.get("iscrowd")
            if crowd is None:
                crowd = 0
            score = a.get("score")
            if (((ta is int and -INT64 <= aid < INT64) or ta is str or aid is None) and aid not in seen_ids
                    and (ti is int or ti is str) and (tc is int or tc is str)
                    and (crowd == 0 or crowd == 1) and type(crowd) is int
                    and (score is None or (type(score) is float and isfinite(score))
                         or (type(score) is int and -INT64 <= score < INT64))):
                im = img_by_id.get(iid)
                name = cat_names.get(cid)
                fast = im is not None and name is not None
            else:
                fast = False
            if fast:
                seg = a.get("segmentation")
                if seg is None:
                    polys = None
                elif type(seg) is list:
                    polys = seg or None
                    for q in seg:
                        if type(q) is not list or len(q) < 6 or len(q) & 1 or type(q[0]) is bool:
                            fast = False
                            break
                        try:
                            if not isfinite(sum(q)):
                                fast = False
                                break
                        except (TypeError, OverflowError):
                            fast = False
                            break
                else:
                    fast = False
            if fast:
                h, w = im.height, im.width
                bbox = a.get("bbox")
                if bbox is None:
                    if polys is not None:
                        bbox = _bbox_of(polys, None)
                elif type(bbox) is not list or len(bbox) != 4 or type(bbox[0]) is bool:
                    fast = False
            if fast and bbox is not None:
                try:  # four finite numbers (as _all_finite: a sum; a string or a list raises) ...
                    x, y, bw, bh = bbox
                    fast = (isfinite(x + y + bw + bh) and bw >= 0 and bh >= 0
                            and (not h or not w or (x >= 0 and y >= 0 and x + bw <= w and y + bh <= h)))
                except (TypeError, OverflowError):  # ... inside the image, so that clip_bbox keeps it
                    fast = False
            if fast:
                if aid is not None:
                    seen_ids.add(aid)
                area = a.get("area")
                if area is not None and not ((type(area) is float and isfinite(area))
                                             or (type(area) is int and -INT64 <= area < INT64)):
                    area = None
                yield Proposal(im.key, name, "polygon" if polys else ("bbox" if bbox is not None else "label"),
                               bbox, polys, None, score, crowd, area, aid,
                               {NO_SEGMENTATION: True} if seg is None and bbox is not None else {}, None)
                continue
        p = _annotation(path, i, a, label, seen_ids, img_by_id, cat_names, cats, warns)
        if p is not None:
            yield p


def _annotation(path: str, i: int, a: Any, label: str, seen_ids: set, img_by_id: dict[Any, ImageRecord],
                cat_names: dict[Any, str], cats: list[Category], warns: list[ImportWarning]) -> Proposal | None:
    """One annotation, whatever it holds: a Proposal (maybe repaired, with warnings) or None (skipped)."""
    if not isinstance(a, dict):
        raise InputError(path, f"{label}[{i}]", "an annotation must be a JSON object")
    aid = a.get("id")
    where = f"{label}[{i}]" + (f" (id {aid})" if aid is not None else "")
    if aid is not None and not (_is_id(aid) and _fits(aid)):
        what = "is larger than 64 bits can hold" if _is_id(aid) else "is not an integer"
        warns.append(ImportWarning(where, f"annotation id {aid!r} {what}; exported with a new id", "repaired"))
        aid = None
    if aid is not None:
        if aid in seen_ids:
            warns.append(ImportWarning(where, f"duplicate annotation id {aid}; kept, exported with a new id",
                                       "repaired"))
        seen_ids.add(aid)
    im = img_by_id.get(a.get("image_id")) if _is_id(a.get("image_id")) else None
    if im is None:
        warns.append(ImportWarning(where, f"image_id {a.get('image_id')!r} is not in images", "skipped"))
        return None
    cid = a.get("category_id")
    if cid is not None and not _is_id(cid):
        warns.append(ImportWarning(where, f"category_id {cid!r} is not an id", "skipped"))
        return None
    name = cat_names.get(cid)
    if name is None:
        if cid is None:
            warns.append(ImportWarning(where, "no category_id", "skipped"))
            return None
        name = f"undefined-{cid}"
        cat_names[cid] = name
        cats.append(Category(name=name, source_id=cid if isinstance(cid, int) and _fits(cid) else None))
        warns.append(ImportWarning(where, f"category_id {cid!r} is not defined; class {name!r} added",
                                   "repaired"))
    try:
        iscrowd, fixed = _iscrowd(a.get("iscrowd"))
    except ValueError as e:
        warns.append(ImportWarning(where, str(e), "skipped"))
        return None
    if fixed:
        warns.append(ImportWarning(where, f"iscrowd {a.get('iscrowd')!r} read as {iscrowd}", "repaired"))
    score = a.get("score")
    if score is not None and not _finite(score):
        warns.append(ImportWarning(where, f"score {score!r} is not a number; dropped", "repaired"))
        score = None
    hw = (im.height, im.width) if im.height and im.width else None
    seg = a.get("segmentation")
    kind, segmentation = "bbox", None
    if isinstance(seg, dict):
        rle, problem = _check_rle(seg, hw, where)
        if problem:
            warns.append(ImportWarning(where, problem + "; mask dropped", "repaired"))
        else:
            kind, segmentation = "rle", rle
            if hw and tuple(rle["size"]) != hw:
                warns.append(ImportWarning(where, f"RLE size {rle['size']} differs from the image's "
                                           f"{list(hw)}", "kept"))
    elif isinstance(seg, list):
        if seg and not isinstance(seg[0], list) and _all_finite(seg):
            seg = [seg]  # a single flat polygon without the outer list
            warns.append(ImportWarning(where, "polygon not wrapped in a list; wrapped", "repaired"))
        polys = _valid_polygons(seg, where, warns)
        if polys:
            kind, segmentation = "polygon", polys
        elif not seg:
            pass  # box-only annotation written with an empty segmentation: common, harmless
    elif seg is not None:
        warns.append(ImportWarning(where, f"segmentation of type {type(seg).__name__} not understood; dropped",
                                   "repaired"))
    kps = a.get("keypoints")
    if kps is not None:
        if isinstance(kps, list) and len(kps) % 3 == 0 and _all_finite(kps):
            if kind == "bbox" and any(kps[2::3]):
                kind = "keypoints"
        else:
            warns.append(ImportWarning(where, "keypoints must be x,y,v triples of numbers; dropped", "repaired"))
            kps = None
    bbox = a.get("bbox")
    if bbox is not None:
        if (not isinstance(bbox, list) or len(bbox) != 4 or not _all_finite(bbox)):
            warns.append(ImportWarning(where, f"bbox {bbox!r} is not 4 numbers", "skipped"))
            return None
        if bbox[2] < 0 or bbox[3] < 0:
            warns.append(ImportWarning(where, f"bbox {bbox} has a negative width or height", "skipped"))
            return None
    elif segmentation is not None:
        bbox = _bbox_of(segmentation, hw)
    elif kps:
        xs, ys = kps[0::3], kps[1::3]
        vis = [k for k, v in enumerate(kps[2::3]) if v]
        if vis:
            x0, y0 = min(xs[k] for k in vis), min(ys[k] for k in vis)
            bbox = [x0, y0, max(xs[k] for k in vis) - x0, max(ys[k] for k in vis) - y0]
    if bbox is not None and hw:
        clipped = clip_bbox(bbox, hw)
        if clipped is None:
            warns.append(ImportWarning(where, f"bbox {bbox} lies outside the {hw[1]}x{hw[0]} image", "skipped"))
            return None
        if clipped != bbox:
            warns.append(ImportWarning(where, f"bbox {bbox} reaches outside the {hw[1]}x{hw[0]} image; "
                                       f"clipped to {clipped}", "repaired"))
            bbox = clipped
    if bbox is None and segmentation is None and not kps:
        kind = "label"
    area = a.get("area")
    if area is not None and not _finite(area):
        area = None
    extra = {k: v for k, v in a.items() if k not in _ANN_KEYS} or {}
    if "num_keypoints" in a:
        extra["num_keypoints"] = a["num_keypoints"]
    if seg is None and kind != "label":
        extra[NO_SEGMENTATION] = True
    scores = a.get("scores") if isinstance(a.get("scores"), dict) else None
    if scores is None and a.get("scores") is not None:
        extra["scores"] = a["scores"]  # not the {class: score} labelreview reads: kept as it was
    if scores is not None and too_deep(scores, MAX_NESTING - 1):
        extra["scores"], scores = scores, None  # (dropped below, and said)
    drop_too_deep(extra, where, warns)
    return Proposal(image_key=im.key, category=name, kind=kind, bbox=bbox, segmentation=segmentation,
                    keypoints=kps, score=score, iscrowd=iscrowd, area=area, source_id=aid,
                    extra=extra, scores=scores)


def _bbox_of(seg: Any, hw: tuple[int, int] | None) -> list[float] | None:
    if isinstance(seg, dict):
        rle = seg if isinstance(seg["counts"], list) is False else maskutils.frPyObjects(seg, *seg["size"])
        if isinstance(rle["counts"], str):
            rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        return [float(v) for v in maskutils.toBbox(rle)]
    xs = [v for p in seg for v in p[0::2]]
    ys = [v for p in seg for v in p[1::2]]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


# ---------------------------------------------------------------------- export


def to_rle(segmentation: Any, h: int, w: int) -> dict:
    """Any stored segmentation as a compressed RLE with bytes counts (pycocotools' own form)."""
    if isinstance(segmentation, list):
        polygons = rasterizable(segmentation, h, w)
        if not polygons:  # (no area: an empty mask, as pycocotools makes of no polygon)
            return maskutils.encode(np.zeros((h, w), np.uint8, order="F"))
        return maskutils.merge(maskutils.frPyObjects(polygons, h, w))
    if isinstance(segmentation["counts"], list):
        return maskutils.frPyObjects(segmentation, *segmentation["size"])
    return {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}


def build(snapshot: Snapshot) -> tuple[dict, list[dict]]:
    """The COCO document and a provenance row per exported annotation."""
    from .snapshot import export_ids

    images, anns, cats = snapshot.images, snapshot.annotations, snapshot.categories
    img_ids = export_ids([im.source_id for im in images])
    image_out = []
    id_of_image = {}
    for im, eid in zip(images, img_ids):
        id_of_image[im.id] = eid
        rec = {"id": eid, "file_name": im.file_name, "width": im.width, "height": im.height}
        rec.update({k: v for k, v in (im.extra or {}).items() if k not in rec and k != MERGED_IDS})
        image_out.append(rec)
    cat_ids = {}
    cat_out = []
    used_ids = {c.source_id for c in cats if isinstance(c.source_id, int)}
    next_cat = max(used_ids, default=0) + 1
    taken: set[int] = set()
    for c in cats:
        cid = c.source_id if isinstance(c.source_id, int) and not isinstance(c.source_id, bool) else None
        if cid is None or cid in taken:  # two imports may both have had a category 1: one keeps it
            cid, next_cat = next_cat, next_cat + 1
        taken.add(cid)
        cat_ids[c.name] = cid
        rec = {"id": cid, "name": c.name, "supercategory": c.supercategory or ""}
        if c.keypoints is not None:
            rec["keypoints"] = c.keypoints
        if c.skeleton is not None:
            rec["skeleton"] = c.skeleton
        rec.update(c.extra or {})
        cat_out.append(rec)
    ann_ids = export_ids([a.source_id for a in anns])
    ann_out, provenance = [], []
    for a, eid in zip(anns, ann_ids):
        rec: dict[str, Any] = {"id": eid, "image_id": id_of_image[a.image_id], "category_id": cat_ids[a.category]}
        im = snapshot.image_by_id[a.image_id]
        extra = a.extra or {}
        if a.segmentation is not None:
            seg = a.segmentation
            # (a polygon reaching far past the picture: clipped to it, its mask the same, so that
            # pycocotools' annToMask on the export neither segfaults nor takes gigabytes)
            rec["segmentation"] = far_clipped(seg, im.height, im.width) if isinstance(seg, list) else seg
        elif a.kind != "label" and not extra.get(NO_SEGMENTATION):
            # A box (or keypoints) without a mask: "segmentation": [], as CVAT, Datumaro and Roboflow
            # write it (Datumaro's COCO reader requires the key), unless the imported annotation had no
            # "segmentation" at all (a detection results list, most often): then none, as it was.
            # pycocotools evaluates either for bbox; neither can be ground truth for segm, but a box
            # without the key loaded as a result (loadRes) becomes its box's polygon, and [] fails.
            rec["segmentation"] = []
        if a.bbox is not None:
            rec["bbox"] = a.bbox
        if a.kind != "label":
            rec["area"] = a.area if a.area is not None else _area(a, im.height, im.width)
            rec["iscrowd"] = a.iscrowd
        if a.keypoints is not None:
            rec["keypoints"] = a.keypoints
            rec["num_keypoints"] = a.extra.get("num_keypoints", sum(1 for v in a.keypoints[2::3] if v))
        if a.score is not None:
            rec["score"] = a.score
        if a.scores is not None:
            rec["scores"] = a.scores
        for k, v in extra.items():
            if not k.startswith(_OWN):
                rec.setdefault(k, v)
        ann_out.append(rec)
        provenance.append(snapshot.provenance(a, eid))
    doc = {k: v for k, v in (snapshot.info or {}).items() if k not in ("images", "annotations", "categories")}
    if doc.get("info") is None:
        doc["info"] = {"description": "exported by labelreview"}
    doc.setdefault("licenses", [])
    doc.update(images=image_out, annotations=ann_out, categories=cat_out)
    return doc, provenance


def _area(a, h: int | None, w: int | None) -> float:
    if a.segmentation is not None and h and w:
        try:
            return float(maskutils.area(to_rle(a.segmentation, h, w)))
        except Exception:
            pass
    if a.bbox:
        return float(a.bbox[2] * a.bbox[3])
    return 0.0


def write(snapshot, out: str | os.PathLike) -> dict[str, Any]:
    doc, provenance = build(snapshot)
    from .snapshot import write_provenance, write_bytes_atomic

    write_bytes_atomic(Path(out), orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))
    side = write_provenance(Path(out), provenance)
    return {"file": str(out), "images": len(doc["images"]), "annotations": len(doc["annotations"]),
            "categories": len(doc["categories"]), "provenance": str(side)}


__all__ = ["read", "write", "build", "gt_images_from", "load_json", "to_rle"]
