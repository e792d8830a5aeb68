"""LabelMe JSON (wkentaro/labelme): one file per image, ``{"shapes": [...], "imagePath", "imageHeight",
"imageWidth", "imageData"}``; a file, or a folder of them (subfolders too).

Store kinds: ``polygon`` -> "polygon"; ``rectangle`` (two corners) -> "bbox"; ``circle`` (the centre
and a point on it) -> "polygon" traced along the curve (as ellipses, ``ellipse_polygon``);
``line``, ``linestrip``, ``point`` and ``points`` -> "keypoints" (x, y, 2 per point); ``mask`` (a PNG
of the box between its two points, base64) -> "rle". Extra keeps ``labelme_shape`` where the kind
says less, and ``group_id``, ``description`` and ``flags`` when set. Classes in order of appearance.

The image is ``imagePath`` as LabelMe wrote it (a Windows path's backslashes read as separators),
relative to the JSON file's folder; file names are stored relative to ``--images``, else to the folder
imported (or the file's folder). The embedded ``imageData`` is not used: the picture is the file.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..model import Category, ImageRecord, ImportBatch, ImportWarning, InputError, LabelreviewError, Proposal
from . import images as imgs
from .coco import load_json
from .common import clip_shape_box, ellipse_polygon, finite, mask_proposal, polygon_bbox

_KEYPOINT_SHAPES = ("line", "linestrip", "point", "points")
#: The most pixels a shape's mask PNG may have (a decompression bomb is refused, as images are).
_MASK_PIXELS = 1 << 28


def is_labelme(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("shapes"), list) and "imagePath" in doc


def _files(p: Path) -> list[Path]:
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise LabelreviewError(f"{p}: no such file or folder")
    found = sorted(p / r for r in imgs.walk_files(p) if r.lower().endswith(".json"))
    if not found:
        raise LabelreviewError(f"{p}: no .json files here (LabelMe writes one beside each image)")
    return found


def _points(s: dict, shown: str, where: str) -> list[float]:
    pts = s.get("points")
    if not isinstance(pts, list) or not all(isinstance(q, list) and len(q) == 2 and all(map(finite, q)) for q in pts):
        raise InputError(shown, where, "points must be a list of [x, y] numbers")
    return [float(v) for q in pts for v in q]


def _mask(s: dict, pts: list[float], w: int, h: int, shown: str, where: str) -> np.ndarray:
    """The full-picture mask of a ``mask`` shape: its PNG placed at the box's top-left corner."""
    from PIL import Image as PILImage

    data = s.get("mask")
    if not isinstance(data, str):
        raise InputError(shown, where, "a mask shape needs its mask (a base64 PNG)")
    try:
        raw = base64.b64decode(data, validate=True)
        with PILImage.open(io.BytesIO(raw)) as im:
            if im.width * im.height > _MASK_PIXELS:
                raise InputError(shown, where, f"mask of {im.width}x{im.height} pixels is larger than a picture")
            sub = np.asarray(im.convert("L")) > 0
    except (binascii.Error, ValueError, OSError, PILImage.DecompressionBombError) as e:
        raise InputError(shown, where, f"mask is not a base64 PNG ({e})") from None
    full = np.zeros((h, w), bool)
    x0, y0 = int(round(min(pts[0::2]))), int(round(min(pts[1::2])))
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(h, y0 + sub.shape[0]), min(w, x0 + sub.shape[1])
    if ye > ys and xe > xs:
        full[ys:ye, xs:xe] = sub[ys - y0:ye - y0, xs - x0:xe - x0]
    return full


def _shape(s: Any, rel: str, w: int | None, h: int | None, shown: str, place: str,
           warns: list[ImportWarning]) -> Proposal | None:
    """A shape's proposal; None (with a warning) when it is skipped. Errors name ``place`` in the file."""
    where = f"{shown} {place}"  # (a warning's place; an error names the file apart)
    if not isinstance(s, dict):
        raise InputError(shown, place, "a shape must be an object")
    label = s.get("label")
    if not isinstance(label, str) or not label.strip():
        raise InputError(shown, place, f"label {label!r} is not a class name")
    kind = s.get("shape_type") or "polygon"
    if not isinstance(kind, str):
        raise InputError(shown, place, f"shape_type {kind!r} is not a shape")
    pts = _points(s, shown, place)
    extra: dict[str, Any] = {k: s[k] for k in ("group_id", "description", "flags") if s.get(k) not in (None, "", {})}

    def box_of(points: list[float], what: str) -> list[float] | None:
        return clip_shape_box(polygon_bbox(points), (h, w), what, where, warns) if w and h else polygon_bbox(points)

    if kind == "polygon":
        if len(pts) < 6:
            raise InputError(shown, place, f"a polygon needs at least 3 points, not {len(pts) // 2}")
        bbox = box_of(pts, "polygon")
        return None if bbox is None else Proposal(image_key=rel, category=label, kind="polygon", bbox=bbox,
                                                  segmentation=[pts], extra=extra)
    if kind == "rectangle":
        if len(pts) != 4:
            raise InputError(shown, place, f"a rectangle needs 2 points (its corners), not {len(pts) // 2}")
        bbox = box_of(pts, "rectangle")  # (any two opposite corners, in any order)
        return None if bbox is None else Proposal(image_key=rel, category=label, kind="bbox", bbox=bbox, extra=extra)
    if kind == "circle":
        if len(pts) != 4:
            raise InputError(shown, place, f"a circle needs 2 points (its centre and one on it), not {len(pts) // 2}")
        (cx, cy, px, py) = pts
        r = math.hypot(px - cx, py - cy)
        if not r > 0:
            warns.append(ImportWarning(where, "circle of radius 0 has no area", "skipped"))
            return None
        poly = ellipse_polygon(cx, cy, r, r, 0.0)
        bbox = box_of(poly, "circle")
        extra["labelme_shape"] = "circle"
        return None if bbox is None else Proposal(image_key=rel, category=label, kind="polygon", bbox=bbox,
                                                  segmentation=[poly], extra=extra)
    if kind in _KEYPOINT_SHAPES:
        if not pts:
            raise InputError(shown, place, f"a {kind} needs at least one point")
        bbox = box_of(pts, kind)
        if bbox is None:
            return None
        extra["labelme_shape"] = kind
        kps = [v for i in range(0, len(pts), 2) for v in (pts[i], pts[i + 1], 2)]
        return Proposal(image_key=rel, category=label, kind="keypoints", bbox=bbox, keypoints=kps, extra=extra)
    if kind == "mask":
        if not w or not h:
            warns.append(ImportWarning(where, "a mask needs the picture's size; skipped", "skipped"))
            return None
        if len(pts) != 4:
            raise InputError(shown, place, f"a mask needs 2 points (its box's corners), not {len(pts) // 2}")
        return mask_proposal(rel, label, _mask(s, pts, w, h, shown, place), extra, where, warns)
    warns.append(ImportWarning(where, f"{kind!r} shapes are not supported; skipped", "skipped"))
    return None


def _image_name(name: str, f: Path, root: Path, root_real: str) -> str:
    """The picture's file name under the image root: ``imagePath`` from the JSON file's folder; when
    no picture is there (a path from another machine, ``C:/data/a.jpg``, or a folder since moved), the
    picture of that name beside the JSON file or at the root, if there is one; else as written."""
    at = os.path.normpath(os.path.join(os.path.realpath(f.parent), name))
    rel = name if os.path.isabs(name) else os.path.relpath(at, root_real).replace(os.sep, "/")
    if not imgs.escapes_root(root_real, rel) and imgs.is_file(root / rel):
        return rel
    base = name.rsplit("/", 1)[-1]
    for cand in (os.path.relpath(os.path.join(os.path.realpath(f.parent), base), root_real).replace(os.sep, "/"),
                 base):
        if base and not imgs.escapes_root(root_real, cand) and imgs.is_file(root / cand):
            return cand
    return rel


def _size(doc: dict, shown: str) -> tuple[int | None, int | None]:
    w, h = doc.get("imageWidth"), doc.get("imageHeight")
    ok = all(v is None or (type(v) is int and 0 < v < 1 << 31) for v in (w, h))
    if not ok:
        raise InputError(shown, "imageWidth/imageHeight", f"{w!r}x{h!r} is not a picture's size")
    return w, h


def read(path: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[ImportBatch, Path]:
    p = Path(path)
    base = p.parent if p.is_file() else p
    root = Path(images) if images else base
    root_real = os.path.realpath(root)
    warns: list[ImportWarning] = []
    images_out: list[ImageRecord] = []
    proposals: list[Proposal] = []
    classes: dict[str, None] = {}
    seen: dict[str, str] = {}
    for f in _files(p):
        shown = f.relative_to(base).as_posix() if f != p else f.name
        doc = load_json(f)
        if not is_labelme(doc):
            if p.is_dir():
                warns.append(ImportWarning(shown, "not a LabelMe file (no shapes and imagePath); skipped", "skipped"))
                continue
            raise InputError(shown, "top level", 'not a LabelMe file: expected {"shapes": [...], "imagePath": ...}')
        written = doc["imagePath"]
        if not isinstance(written, str) or not written.strip():
            raise InputError(shown, "imagePath", f"{written!r} names no image")
        name = written.replace("\\", "/")
        rel = _image_name(name, f, root, root_real)
        if rel in seen:
            raise InputError(shown, "imagePath", f"{written!r} is also the image of {seen[rel]}: one file per picture")
        seen[rel] = shown
        w, h = _size(doc, shown)
        if (w is None or h is None) and not imgs.escapes_root(root_real, rel):
            try:
                w, h = imgs.image_size(root / rel)
            except imgs.ImageProblem:
                pass
        im = ImageRecord(key=rel, file_name=rel, width=w, height=h, source_id=shown,
                         extra={"labelme_image_path": written} if written != rel else {})
        images_out.append(im)
        for i, s in enumerate(doc["shapes"]):
            prop = _shape(s, rel, w, h, shown, f"shapes[{i}]", warns)
            if prop is not None:
                prop.source_id = f"{shown}:{i}"
                classes.setdefault(prop.category)
                proposals.append(prop)
    if not images_out:
        raise LabelreviewError(f"{p}: no LabelMe file here; nothing was imported")
    return ImportBatch(format="labelme", source_file=str(p), images=images_out,
                       categories=[Category(name=c) for c in classes], proposals=proposals, warnings=warns,
                       info={}), root


__all__ = ["read", "is_labelme"]
