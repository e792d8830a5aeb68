"""COCO instances files and detection results: read into an ImportBatch, write reviewed labels."""

from __future__ import annotations

import gc
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from pycocotools import mask as maskutils

from ..model import Category, ImageRecord, ImportBatch, ImportWarning, InputError, Proposal

if TYPE_CHECKING:
    from .snapshot import Snapshot

_TRUE = {"1", "true", "yes", "t", "y"}
_FALSE = {"0", "false", "no", "f", "n", ""}
_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "segmentation", "keypoints", "num_keypoints",
             "score", "iscrowd", "area", "scores"}
_IMG_KEYS = {"id", "file_name", "width", "height"}
_CAT_KEYS = {"id", "name", "supercategory", "keypoints", "skeleton"}


def load_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file fast (orjson, cyclic GC paused) with an error that names the place."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(str(path), "", f"cannot read ({e.strerror or e})") from None
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


def _is_id(x: Any) -> bool:
    """COCO ids are integers (or, in the wild, strings); anything else can name nothing."""
    return isinstance(x, (int, str)) and not isinstance(x, bool)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


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


def _check_rle(seg: dict, hw: tuple[int, int] | None, where: str) -> tuple[dict | None, str | None]:
    """An RLE as stored (compressed counts as str), or the problem that makes it unusable."""
    size, counts = seg.get("size"), seg.get("counts")
    if (not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v >= 0 for v in size)):
        return None, f"RLE size {size!r} is not [height, width]"
    h, w = size
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            return None, "uncompressed RLE counts must be non-negative integers"
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


def read(path: str | os.PathLike, *, gt_images: list[ImageRecord] | None = None) -> ImportBatch:
    """Read a COCO instances/keypoints/labels file, or a bare results list (needs ``gt_images``)."""
    path = str(path)
    data = load_json(path)
    enabled = gc.isenabled()
    gc.disable()
    try:
        if isinstance(data, list):
            return _read_results(path, data, gt_images)
        if not isinstance(data, dict):
            raise InputError(path, "top level", f"expected a JSON object or a results list, not {type(data).__name__}")
        return _read_dataset(path, data)
    finally:
        if enabled:
            gc.enable()


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
        name = str(c.get("name") if c.get("name") not in (None, "") else f"category-{c['id']}")
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
        out.append(Category(name=name, source_id=c["id"], supercategory=c.get("supercategory"),
                            keypoints=kps if isinstance(kps, list) else None,
                            skeleton=c.get("skeleton") if isinstance(c.get("skeleton"), list) else None,
                            extra={k: v for k, v in c.items() if k not in _CAT_KEYS}))
    return out, by_id


def _read_images(path: str, imgs: Any, warns: list[ImportWarning]) -> tuple[list[ImageRecord], dict[Any, ImageRecord]]:
    if imgs is None:
        imgs = []
    if not isinstance(imgs, list):
        raise InputError(path, "images", "must be a list")
    out, by_id = [], {}
    for i, im in enumerate(imgs):
        if not isinstance(im, dict) or "id" not in im:
            raise InputError(path, f"images[{i}]", "an image needs an id")
        iid = im["id"]
        where = f"images[{i}] (id {iid})"
        if not isinstance(iid, (int, str)) or isinstance(iid, bool):
            raise InputError(path, where, f"image id {iid!r} must be an integer or a string")
        if iid in by_id:
            warns.append(ImportWarning(where, "duplicate image id; this entry ignored", "skipped"))
            continue
        fn = im.get("file_name")
        if not isinstance(fn, str) or not fn:
            raise InputError(path, where, "an image needs a file_name")
        w, h = im.get("width"), im.get("height")
        if w is not None and (not isinstance(w, int) or w <= 0) or h is not None and (not isinstance(h, int) or h <= 0):
            warns.append(ImportWarning(where, f"width/height {w!r}x{h!r} invalid; read from the file", "repaired"))
            w = h = None
        rec = ImageRecord(key=str(iid) if not isinstance(iid, str) else "s:" + iid, file_name=fn, width=w, height=h,
                          source_id=iid, extra={k: v for k, v in im.items() if k not in _IMG_KEYS})
        by_id[iid] = rec
        out.append(rec)
    return out, by_id


def _read_dataset(path: str, data: dict) -> ImportBatch:
    warns: list[ImportWarning] = []
    if not any(k in data for k in ("images", "annotations", "categories")):
        keys = ", ".join(list(data)[:5]) or "none"
        raise InputError(path, "top level", f"not a COCO file: no images, annotations or categories "
                         f"(keys: {keys})")
    if "annotations" in data and not isinstance(data["annotations"], list):
        raise InputError(path, "annotations", "must be a list")
    anns = data.get("annotations") or []
    if anns and isinstance(anns[0], dict):
        if "segments_info" in anns[0]:
            raise InputError(path, "annotations[0]", "COCO panoptic files are not supported; "
                             "import the instances file instead")
        if "caption" in anns[0] and not any(k in anns[0] for k in ("bbox", "segmentation", "keypoints")):
            raise InputError(path, "annotations[0]", "COCO captions are not labels labelreview reviews "
                             "(supported: instances, keypoints, image labels, detection results)")
    cats, cat_names = _read_categories(path, data.get("categories"), warns)
    images, img_by_id = _read_images(path, data.get("images"), warns)
    proposals = _read_annotations(path, anns, img_by_id, cat_names, cats, warns)
    info = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    return ImportBatch(format="coco", source_file=path, images=images, categories=cats,
                       proposals=proposals, warnings=warns, info=info)


def _read_results(path: str, data: list, gt_images: list[ImageRecord] | None) -> ImportBatch:
    warns: list[ImportWarning] = []
    if data and isinstance(data[0], dict) and "caption" in data[0]:
        raise InputError(path, "[0]", "caption results are not labels labelreview reviews")
    if gt_images is None:
        raise InputError(path, "", "a results list names images only by id: give the ground-truth "
                         "file with --gt, or import it into the store first")
    img_by_id = {im.source_id: im for im in gt_images}
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
    proposals = _read_annotations(path, data, img_by_id, names, cats, warns, results=True)
    return ImportBatch(format="coco-results", source_file=path, images=list(used.values()),
                       categories=cats, proposals=proposals, warnings=warns, info={})


class GroundTruthImages(list):
    """Images (and categories) from a ground-truth file, for resolving a results list."""

    categories: list[Category] = []


def gt_images_from(path: str | os.PathLike) -> GroundTruthImages:
    batch = read(path)
    out = GroundTruthImages(batch.images)
    out.categories = batch.categories
    return out


def _read_annotations(path: str, anns: list, img_by_id: dict[Any, ImageRecord], cat_names: dict[Any, str],
                      cats: list[Category], warns: list[ImportWarning], results: bool = False) -> list[Proposal]:
    out: list[Proposal] = []
    seen_ids: set = set()
    label = "" if results else "annotations"
    append = out.append
    for i, a in enumerate(anns):
        if not isinstance(a, dict):
            raise InputError(path, f"{label}[{i}]", "an annotation must be a JSON object")
        aid = a.get("id")
        where = f"{label}[{i}]" + (f" (id {aid})" if aid is not None else "")
        if aid is not None and not _is_id(aid):
            warns.append(ImportWarning(where, f"annotation id {aid!r} is not an integer; exported with a new id",
                                       "repaired"))
            aid = None
        if aid is not None:
            if aid in seen_ids:
                warns.append(ImportWarning(where, f"duplicate annotation id {aid}; kept, exported with a new id",
                                           "repaired"))
            seen_ids.add(aid)
        im = img_by_id.get(a.get("image_id")) if _is_id(a.get("image_id")) else None
        if im is None:
            warns.append(ImportWarning(where, f"image_id {a.get('image_id')!r} is not in images", "skipped"))
            continue
        cid = a.get("category_id")
        if cid is not None and not _is_id(cid):
            warns.append(ImportWarning(where, f"category_id {cid!r} is not an id", "skipped"))
            continue
        name = cat_names.get(cid)
        if name is None:
            if cid is None:
                warns.append(ImportWarning(where, "no category_id", "skipped"))
                continue
            name = f"undefined-{cid}"
            cat_names[cid] = name
            cats.append(Category(name=name, source_id=cid if isinstance(cid, int) else None))
            warns.append(ImportWarning(where, f"category_id {cid!r} is not defined; class {name!r} added",
                                       "repaired"))
        try:
            iscrowd, fixed = _iscrowd(a.get("iscrowd"))
        except ValueError as e:
            warns.append(ImportWarning(where, str(e), "skipped"))
            continue
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
                continue
            if bbox[2] < 0 or bbox[3] < 0:
                warns.append(ImportWarning(where, f"bbox {bbox} has a negative width or height", "skipped"))
                continue
        elif segmentation is not None:
            bbox = _bbox_of(segmentation, hw)
        elif kps:
            xs, ys = kps[0::3], kps[1::3]
            vis = [k for k, v in enumerate(kps[2::3]) if v]
            if vis:
                x0, y0 = min(xs[k] for k in vis), min(ys[k] for k in vis)
                bbox = [x0, y0, max(xs[k] for k in vis) - x0, max(ys[k] for k in vis) - y0]
        if bbox is not None and hw:
            clipped = _clip(bbox, hw)
            if clipped is None:
                warns.append(ImportWarning(where, f"bbox {bbox} lies outside the {hw[1]}x{hw[0]} image", "skipped"))
                continue
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
        scores = a.get("scores") if isinstance(a.get("scores"), dict) else None
        append(Proposal(image_key=im.key, category=name, kind=kind, bbox=bbox, segmentation=segmentation,
                        keypoints=kps, score=score, iscrowd=iscrowd, area=area, source_id=aid,
                        extra=extra, scores=scores))
    return out


def _bbox_of(seg: Any, hw: tuple[int, int] | None) -> list[float] | None:
    if isinstance(seg, dict):
        rle = seg if isinstance(seg["counts"], list) is False else maskutils.frPyObjects(seg, *seg["size"])
        if isinstance(rle["counts"], str):
            rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        return [float(v) for v in maskutils.toBbox(rle)]
    xs = [v for p in seg for v in p[0::2]]
    ys = [v for p in seg for v in p[1::2]]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _clip(bbox: list[float], hw: tuple[int, int]) -> list[float] | None:
    x, y, w, h = bbox
    H, W = hw
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(W), x + w), min(float(H), y + h)
    if x1 < x0 or y1 < y0 or (x0 >= W and w > 0) or (y0 >= H and h > 0):
        return None
    if (x0, y0, x1, y1) == (x, y, x + w, y + h):
        return bbox
    return [x0, y0, x1 - x0, y1 - y0]


# ---------------------------------------------------------------------- export


def to_rle(segmentation: Any, h: int, w: int) -> dict:
    """Any stored segmentation as a compressed RLE with bytes counts (pycocotools' own form)."""
    if isinstance(segmentation, list):
        return maskutils.merge(maskutils.frPyObjects(segmentation, h, w))
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
        rec.update({k: v for k, v in (im.extra or {}).items() if k not in rec})
        image_out.append(rec)
    cat_ids = {}
    cat_out = []
    used_ids = {c.source_id for c in cats if isinstance(c.source_id, int)}
    next_cat = max(used_ids, default=0) + 1
    for c in cats:
        cid = c.source_id if isinstance(c.source_id, int) else None
        if cid is None:
            cid, next_cat = next_cat, next_cat + 1
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
        if a.segmentation is not None:
            rec["segmentation"] = a.segmentation
        elif a.kind != "label":
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
        for k, v in (a.extra or {}).items():
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
