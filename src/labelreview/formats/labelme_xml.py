"""MIT LabelMe XML (the LabelMe web tool's, as Datumaro writes it; not wkentaro's LabelMe JSON):
``Annotations/<folder>/<image>.xml`` beside ``Images/<folder>/`` and ``Masks/<folder>/``, or a
folder of such XML files, or one file.

Store kinds: an object's ``<polygon>`` -> "polygon", or "bbox" when its ``<type>`` is
``bounding_box``; its ``<segm>`` mask PNG (the picture's size, any channel set) -> "rle". A deleted
object (``<deleted>1``) is skipped with a warning. Extra keeps the object's LabelMe ``id``,
``occluded``, ``attributes`` (as written), ``verified``, ``username``, ``date`` and its parts
(``hasparts``, ``ispartof``). Classes in order of appearance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..model import Category, ImageRecord, ImportBatch, ImportWarning, InputError, LabelreviewError, Proposal
from . import images as imgs
from .common import clip_shape_box, mask_proposal, parse_float, parse_xml, polygon_bbox

_MASK_PIXELS = 1 << 28


def is_labelme_xml(head: bytes) -> bool:
    """Whether the start of an XML file is LabelMe's (an ``<annotation>`` whose objects are polygons or masks)."""
    return b"<annotation" in head and (b"<polygon>" in head or b"<segm>" in head) and b"<bndbox>" not in head


def _files(p: Path) -> tuple[Path, list[Path]]:
    """(The dataset's folder, its XML files.)"""
    if p.is_file():
        base = p.parent.parent.parent if p.parent.parent.name == "Annotations" else p.parent
        return base, [p]
    if not p.is_dir():
        raise LabelreviewError(f"{p}: no such file or folder")
    where = p / "Annotations" if (p / "Annotations").is_dir() else p
    found = sorted(where / r for r in imgs.walk_files(where) if r.lower().endswith(".xml"))
    if not found:
        raise LabelreviewError(f"{p}: no .xml files here (LabelMe keeps them in Annotations/<folder>/)")
    return p, found


def _text(el, tag: str) -> str:
    return (el.findtext(tag) or "").strip()


def _points(poly, shown: str, place: str) -> list[float]:
    pts: list[float] = []
    for pt in poly.iter("pt"):
        x, y = parse_float(_text(pt, "x")), parse_float(_text(pt, "y"))
        if x is None or y is None:
            raise InputError(shown, place, f"point ({_text(pt, 'x')!r}, {_text(pt, 'y')!r}) is not x, y numbers")
        pts += [x, y]
    return pts


def _mask(base: Path, folder: str, name: str, w: int, h: int, shown: str, place: str) -> np.ndarray:
    from PIL import Image as PILImage

    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise InputError(shown, place, f"mask {name!r} is not a file name in Masks/")
    masks = os.path.realpath(base / "Masks")
    path = Path(os.path.realpath(os.path.join(masks, folder, name)))
    if not str(path).startswith(masks + os.sep):
        raise InputError(shown, place, f"mask {folder}/{name} lies outside Masks/")
    try:
        with PILImage.open(path) as im:
            if im.width * im.height > _MASK_PIXELS:
                raise InputError(shown, place, f"mask of {im.width}x{im.height} pixels is larger than a picture")
            if (im.width, im.height) != (w, h):
                raise InputError(shown, place, f"mask {name} is {im.width}x{im.height}, the picture {w}x{h}")
            a = np.asarray(im.convert("RGBA"))
    except (OSError, ValueError, PILImage.DecompressionBombError) as e:
        raise InputError(shown, place, f"mask {name} cannot be read ({e})") from None
    return a.any(axis=2)


def _object(obj, i: int, base: Path, folder: str, rel: str, w: int | None, h: int | None, shown: str,
            warns: list[ImportWarning]) -> Proposal | None:
    oid = _text(obj, "id")
    place = f"object {i}" + (f" (id {oid})" if oid else "")
    where = f"{shown} {place}"
    name = _text(obj, "name")
    if not name:
        raise InputError(shown, place, "an object needs a name (its class)")
    if _text(obj, "deleted") == "1":
        warns.append(ImportWarning(where, "deleted in LabelMe", "skipped"))
        return None
    extra: dict[str, Any] = {"labelme_id": oid} if oid else {}
    occluded = _text(obj, "occluded")
    if occluded:
        extra["occluded"] = occluded == "yes"
    for tag in ("attributes", "verified", "date"):
        if _text(obj, tag):
            extra[tag] = _text(obj, tag)
    parts = obj.find("parts")
    if parts is not None:
        for tag in ("hasparts", "ispartof"):
            if _text(parts, tag):
                extra[tag] = _text(parts, tag)
    poly, segm = obj.find("polygon"), obj.find("segm")
    shape = poly if poly is not None else segm
    if shape is not None and _text(shape, "username"):
        extra["username"] = _text(shape, "username")

    def box(bbox: list[float], what: str) -> list[float] | None:
        return clip_shape_box(bbox, (h, w), what, where, warns) if w and h else bbox

    if poly is not None:
        pts = _points(poly, shown, place)
        if _text(obj, "type") == "bounding_box":
            if len(pts) < 4:
                raise InputError(shown, place, "a bounding box needs its corners")
            bbox = box(polygon_bbox(pts), "box")
            return None if bbox is None else Proposal(image_key=rel, category=name, kind="bbox", bbox=bbox,
                                                      extra=extra)
        if len(pts) < 6:
            raise InputError(shown, place, f"a polygon needs at least 3 points, not {len(pts) // 2}")
        bbox = box(polygon_bbox(pts), "polygon")
        return None if bbox is None else Proposal(image_key=rel, category=name, kind="polygon", bbox=bbox,
                                                  segmentation=[pts], extra=extra)
    if segm is not None:
        if not w or not h:
            warns.append(ImportWarning(where, "a mask needs the picture's size; skipped", "skipped"))
            return None
        return mask_proposal(rel, name, _mask(base, folder, _text(segm, "mask"), w, h, shown, place), extra,
                             where, warns)
    warns.append(ImportWarning(where, "object with neither a polygon nor a mask", "skipped"))
    return None


def read(path: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[ImportBatch, Path]:
    p = Path(path)
    base, files = _files(p)
    root = Path(images) if images else (base / "Images" if (base / "Images").is_dir() else base)
    warns: list[ImportWarning] = []
    images_out: list[ImageRecord] = []
    proposals: list[Proposal] = []
    classes: dict[str, None] = {}
    seen: dict[str, str] = {}
    for f in files:
        shown = f.relative_to(base).as_posix() if f.is_relative_to(base) else f.name
        doc = parse_xml(f, shown)
        if doc.tag != "annotation":
            raise InputError(shown, "top level", f"<{doc.tag}> is not a LabelMe <annotation>")
        filename, folder = _text(doc, "filename"), _text(doc, "folder")
        if not filename:
            raise InputError(shown, "filename", "names no image")
        rel = f"{folder}/{filename}" if folder else filename
        if rel in seen:
            raise InputError(shown, "filename", f"{rel!r} is also the image of {seen[rel]}: one file per picture")
        seen[rel] = shown
        w = h = None
        size = doc.find("imagesize")
        if size is not None:
            rows, cols = _text(size, "nrows"), _text(size, "ncols")
            if rows or cols:
                if not (rows.isdigit() and cols.isdigit() and 0 < int(rows) < 1 << 31 and 0 < int(cols) < 1 << 31):
                    raise InputError(shown, "imagesize", f"{cols!r}x{rows!r} is not a picture's size")
                w, h = int(cols), int(rows)
        if w is None and not imgs.escapes_root(os.path.realpath(root), rel):
            try:
                w, h = imgs.image_size(root / rel)
            except imgs.ImageProblem:
                pass
        images_out.append(ImageRecord(key=rel, file_name=rel, width=w, height=h, source_id=shown,
                                      extra={"split": folder} if folder else {}))
        for i, obj in enumerate(doc.iter("object")):
            prop = _object(obj, i, base, folder, rel, w, h, shown, warns)
            if prop is not None:
                prop.source_id = f"{shown}:{i}"
                classes.setdefault(prop.category)
                proposals.append(prop)
    return ImportBatch(format="labelme-xml", source_file=str(p), images=images_out,
                       categories=[Category(name=c) for c in classes], proposals=proposals, warnings=warns,
                       info={}), root


__all__ = ["read", "is_labelme_xml"]
