"""CVAT for images 1.1 XML (task or project export): boxes (rotation about the centre), polygons,
ellipses, polylines, points, skeletons, masks (CVAT's row-major RLE inside a box), tags and attributes.

Store kinds: box -> "bbox" (a rotated box -> 4-corner "polygon" with extra {"obb": true, "angle"});
polygon -> "polygon"; ellipse -> "polygon" traced along the curve (extra "cvat_shape": "ellipse" and
"ellipse": its centre, radii and rotation as drawn); polyline and points -> "keypoints" (x, y, 2 per
point; extra "cvat_shape" says which); skeleton -> "keypoints" in the order of its sub-labels
(outside -> v=0, occluded -> v=1); mask -> "rle"; tag -> "label". CVAT for video (``<track>``) is
refused with a clear message.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ..model import Category, ImageRecord, ImportBatch, ImportWarning, InputError, LabelreviewError, Proposal
from . import images as imgs
from .common import (clip_bbox, clip_shape_box, ellipse_polygon, mask_proposal, obb_angle, parse_float, parse_xml,
                     polygon_bbox, rotated_corners)

#: The largest side a picture may have (an SQLite integer holds it; no image file is anywhere near).
_MAX_SIDE = 2**31 - 1
_SHAPES = ("box", "polygon", "polyline", "points", "mask", "tag", "skeleton", "ellipse", "cuboid")


def _f(el: ET.Element, attr: str, shown: str, where: str) -> float:
    t = el.get(attr)
    if t is None:
        raise InputError(shown, where, f"no {attr}")
    v = parse_float(t)
    if v is None:
        raise InputError(shown, where, f"{attr}={t!r} is not a number")
    return v


def _points(el: ET.Element, shown: str, where: str) -> list[float]:
    t = el.get("points")
    if t is None:
        raise InputError(shown, where, "no points")
    out = []
    for pair in t.strip().split(";"):
        xy = pair.split(",")
        if len(xy) != 2:
            raise InputError(shown, where, f"point {pair!r} is not x,y")
        try:
            x, y = float(xy[0]), float(xy[1])
        except ValueError:
            raise InputError(shown, where, f"point {pair!r} is not x,y") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InputError(shown, where, f"point {pair!r} is not a number")
        out += [x, y]
    return out


def _meta_labels(root: ET.Element) -> tuple[list[dict], dict[str, list[str]], dict[str, list[list[int]]]]:
    """Labels (name, type, parent), skeleton sub-labels in order, skeleton edges (1-based indices)."""
    labels = []
    for lab in root.iter("label"):
        name = lab.findtext("name")
        if name is None:
            continue
        labels.append({"name": name, "type": lab.findtext("type") or "", "parent": lab.findtext("parent"),
                       "svg": lab.findtext("svg") or ""})
    subs: dict[str, list[str]] = {}
    for lab in labels:
        if lab["parent"]:
            subs.setdefault(lab["parent"], []).append(lab["name"])
    edges: dict[str, list[list[int]]] = {}
    for lab in labels:
        if lab["type"] == "skeleton" and lab["svg"]:
            ids = {m.group(2): m.group(1) for m in re.finditer(
                r'data-node-id="(\d+)"[^>]*data-label-name="([^"]*)"', lab["svg"])}
            order = subs.get(lab["name"], [])
            node_to_index = {}
            for nm, nid in ids.items():
                if nm in order:
                    node_to_index[nid] = order.index(nm) + 1
            es = []
            for m in re.finditer(r'data-node-from="(\d+)"[^>]*data-node-to="(\d+)"', lab["svg"]):
                a, b = node_to_index.get(m.group(1)), node_to_index.get(m.group(2))
                if a and b:
                    es.append([a, b])
            edges[lab["name"]] = es
    return labels, subs, edges


def read(path: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[ImportBatch, Path]:
    p = Path(path)
    if p.is_dir():
        xs = sorted(q for q in p.glob("*.xml") if not imgs.is_hidden(q.name))  # not '._annotations.xml'
        if len(xs) != 1:
            raise LabelreviewError(f"{p}: give the CVAT XML file itself ({len(xs)} XML files here)")
        p = xs[0]
    shown = p.name
    root = parse_xml(p, shown)
    if root.tag != "annotations":
        raise InputError(shown, f"<{root.tag}>", "not a CVAT XML file (the root must be <annotations>)")
    if root.find("track") is not None:
        raise InputError(shown, "<track>", "CVAT for video (tracks) is not supported; export the task as "
                         "'CVAT for images 1.1'")
    version = root.findtext("version")
    warns: list[ImportWarning] = []
    if version and version.strip() != "1.1":
        warns.append(ImportWarning(shown, f"version {version.strip()}; read as 1.1", "kept"))
    labels, subs, edges = _meta_labels(root)
    cats: dict[str, Category] = {}
    for lab in labels:
        if lab["parent"]:
            continue
        if lab["name"] in cats:
            continue
        kp = subs.get(lab["name"])
        cats[lab["name"]] = Category(name=lab["name"], keypoints=kp, skeleton=edges.get(lab["name"]) if kp else None,
                                     extra={"cvat_type": lab["type"]} if lab["type"] else {})
    if images:
        img_root = Path(images)
    else:
        img_root = p.parent / "images" if (p.parent / "images").is_dir() else p.parent
    images_out: list[ImageRecord] = []
    proposals: list[Proposal] = []
    seen: set[str] = set()
    for im_el in root.findall("image"):
        name = im_el.get("name")
        iid = im_el.get("id")
        where_img = f"image {name!r}" if name else f"image id {iid}"
        if not name:
            raise InputError(shown, where_img, "an image needs a name")
        subset = im_el.get("subset")
        rel = name.replace("\\", "/")
        if subset and ((img_root / subset / rel).is_file() or not (img_root / rel).is_file()):
            rel = f"{subset}/{rel}"
        if rel in seen:
            warns.append(ImportWarning(where_img, f"{rel} appears twice; the second skipped", "skipped"))
            continue
        seen.add(rel)
        try:
            w, h = int(im_el.get("width", "")), int(im_el.get("height", ""))
            if not (0 < w <= _MAX_SIDE and 0 < h <= _MAX_SIDE):
                raise ValueError
        except ValueError:
            # the image's own size, so that shapes past it are clipped (or skipped) and masks decoded
            try:
                w, h = imgs.image_size(img_root / rel)
                warns.append(ImportWarning(where_img, f"no valid width/height; read from the image ({w}x{h})",
                                           "repaired"))
            except imgs.ImageProblem as e:
                w = h = None
                warns.append(ImportWarning(where_img, f"no valid width/height, and the image gives none ({e}); "
                                           "shapes kept as drawn", "kept"))
        extra = {"subset": subset} if subset else {}
        images_out.append(ImageRecord(key=rel, file_name=rel, width=w, height=h, source_id=iid, extra=extra))
        for k, el in enumerate(im_el):
            where = f"{where_img} <{el.tag}> #{k}"
            if el.tag not in _SHAPES:
                warns.append(ImportWarning(where, f"<{el.tag}> is not a CVAT shape; skipped", "skipped"))
                continue
            label = el.get("label")
            if not label:
                label = "unlabeled"
                warns.append(ImportWarning(where, "shape with an empty label; class 'unlabeled'", "repaired"))
            if label not in cats:
                cats[label] = Category(name=label)
                if label != "unlabeled" and labels:
                    warns.append(ImportWarning(where, f"label {label!r} is not in <meta>; class added", "repaired"))
            extra = _extra(el)
            prop = _shape(el, rel, label, w, h, shown, where, subs, warns, extra, img_root)
            if prop is not None:
                prop.source_id = f"{iid}:{k}"
                proposals.append(prop)
    return ImportBatch(format="cvat", source_file=str(p), images=images_out, categories=list(cats.values()),
                       proposals=proposals, warnings=warns, info={}), img_root


def _extra(el: ET.Element) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for k in ("occluded", "z_order", "group_id", "source"):
        v = el.get(k)
        if v is not None:
            # a number the store can hold as one (an SQLite integer); any other value kept as its text
            extra[k] = int(v) if re.fullmatch(r"-?[0-9]{1,18}", v) else v
    attrs = {a.get("name"): (a.text or "") for a in el.findall("attribute") if a.get("name")}
    if attrs:
        extra["attributes"] = attrs
    return extra


def _mask_pixel_limit() -> int:
    from PIL import Image as PILImage

    return PILImage.MAX_IMAGE_PIXELS or 1 << 62


def _refuse_mask_bomb(w: int, h: int, mw: int, mh: int, img_root: Path, rel: str, shown: str, where: str) -> None:
    """A mask is decoded at the size the XML claims for its image: a claim beyond what an image may
    have (Pillow's decompression-bomb limit, as for the images themselves) is refused before anything
    is allocated, and so is a mask box that large."""
    limit = _mask_pixel_limit()
    if w * h > limit:
        try:
            rw, rh = imgs.image_size(img_root / rel)
            real = f"; the image file is {rw}x{rh}"
        except imgs.ImageProblem:
            real = ""
        raise InputError(shown, where, f"the image claims {w}x{h} pixels{real}: more than {limit} pixels, "
                         "refused (a decompression bomb?)")
    if mw * mh > limit:
        raise InputError(shown, where, f"mask box {mw}x{mh} is more than {limit} pixels, refused "
                         "(a decompression bomb?)")


def _shape_box(bbox: list[float], w, h, what: str, where: str, warns) -> list[float] | None:
    """A shape's box clipped to the image (its points kept as drawn); None when nothing of it is inside."""
    return clip_shape_box(bbox, (h, w), what, where, warns) if w and h else bbox


def _shape(el, rel, label, w, h, shown, where, subs, warns, extra, img_root: Path) -> Proposal | None:
    tag = el.tag
    if tag == "tag":
        return Proposal(image_key=rel, category=label, kind="label", extra=extra)
    if tag == "box":
        x0, y0, x1, y1 = (_f(el, a, shown, where) for a in ("xtl", "ytl", "xbr", "ybr"))
        if x1 < x0 or y1 < y0:
            raise InputError(shown, where, "xbr/ybr lie before xtl/ytl")
        rot = _f(el, "rotation", shown, where) if el.get("rotation") else 0.0
        if rot % 360 == 0:
            bbox = [x0, y0, x1 - x0, y1 - y0]
            if w and h and (x0 < 0 or y0 < 0 or x1 > w or y1 > h):
                bbox = clip_bbox(bbox, (h, w))
                if bbox is None:
                    warns.append(ImportWarning(where, f"box lies outside the {w}x{h} image", "skipped"))
                    return None
                warns.append(ImportWarning(where, f"box reaches outside the {w}x{h} image; clipped", "repaired"))
            return Proposal(image_key=rel, category=label, kind="bbox", bbox=bbox, extra=extra)
        pts = rotated_corners((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rot)  # about the centre
        bbox = _shape_box(polygon_bbox(pts), w, h, "rotated box", where, warns)
        if bbox is None:
            return None
        extra.update(obb=True, angle=round(obb_angle(pts), 6), cvat_rotation=rot)
        return Proposal(image_key=rel, category=label, kind="polygon", bbox=bbox, segmentation=[pts], extra=extra)
    if tag == "polygon":
        pts = _points(el, shown, where)
        if len(pts) < 6:
            raise InputError(shown, where, f"a polygon needs at least 3 points, not {len(pts) // 2}")
        bbox = _shape_box(polygon_bbox(pts), w, h, "polygon", where, warns)
        if bbox is None:
            return None
        return Proposal(image_key=rel, category=label, kind="polygon", bbox=bbox, segmentation=[pts], extra=extra)
    if tag == "ellipse":
        cx, cy, rx, ry = (_f(el, a, shown, where) for a in ("cx", "cy", "rx", "ry"))
        rot = _f(el, "rotation", shown, where) if el.get("rotation") else 0.0
        if rx <= 0 or ry <= 0:
            warns.append(ImportWarning(where, f"ellipse with radii {rx:g}, {ry:g} has no area", "skipped"))
            return None
        pts = ellipse_polygon(cx, cy, rx, ry, rot)
        bbox = _shape_box(polygon_bbox(pts), w, h, "ellipse", where, warns)
        if bbox is None:
            return None
        extra.update(cvat_shape="ellipse", ellipse={"cx": cx, "cy": cy, "rx": rx, "ry": ry, "rotation": rot})
        return Proposal(image_key=rel, category=label, kind="polygon", bbox=bbox, segmentation=[pts], extra=extra)
    if tag in ("polyline", "points"):
        pts = _points(el, shown, where)
        bbox = _shape_box(polygon_bbox(pts), w, h, "polyline" if tag == "polyline" else "points shape", where,
                          warns)
        if bbox is None:
            return None
        kps = [v for i in range(0, len(pts), 2) for v in (pts[i], pts[i + 1], 2)]
        extra["cvat_shape"] = tag
        return Proposal(image_key=rel, category=label, kind="keypoints", bbox=bbox, keypoints=kps, extra=extra)
    if tag == "skeleton":
        order = subs.get(label, [])
        got: dict[str, list[float]] = {}
        for sp in el.findall("points"):
            pts = _points(sp, shown, where + f" point {sp.get('label')!r}")
            v = 0 if sp.get("outside") == "1" else (1 if sp.get("occluded") == "1" else 2)
            got[sp.get("label") or ""] = [pts[0], pts[1], v]
        names = order or list(got)
        kps = []
        for n in names:
            kps += got.get(n, [0.0, 0.0, 0])
        vis = [(kps[i], kps[i + 1]) for i in range(0, len(kps), 3) if kps[i + 2]]
        bbox = polygon_bbox([c for xy in vis for c in xy]) if vis else None
        if bbox is not None:  # the points it marks in the image (not those marked outside it)
            bbox = _shape_box(bbox, w, h, "skeleton", where, warns)
            if bbox is None:
                return None
        return Proposal(image_key=rel, category=label, kind="keypoints", bbox=bbox, keypoints=kps, extra=extra)
    if tag == "mask":
        if not w or not h:
            warns.append(ImportWarning(where, "a mask needs the image size; skipped", "skipped"))
            return None
        left, top, mw, mh = (int(_f(el, a, shown, where)) for a in ("left", "top", "width", "height"))
        if mw <= 0 or mh <= 0:
            raise InputError(shown, where, f"mask box {mw}x{mh} has no pixels")
        _refuse_mask_bomb(w, h, mw, mh, img_root, rel, shown, where)
        rle = el.get("rle") or ""
        try:
            counts = [int(c) for c in rle.replace(" ", "").split(",") if c != ""]
        except ValueError:
            raise InputError(shown, where, "rle is not a comma-separated list of integers") from None
        if any(c < 0 for c in counts) or sum(counts) != mw * mh:
            raise InputError(shown, where, f"rle covers {sum(counts)} pixels, the {mw}x{mh} box has {mw * mh}")
        flat = np.zeros(mw * mh, np.uint8)
        pos, val = 0, 0
        for c in counts:  # row-major runs, starting with background
            if val:
                flat[pos:pos + c] = 1
            pos += c
            val ^= 1
        full = np.zeros((h, w), np.uint8)
        sub = flat.reshape(mh, mw)
        y1, x1 = min(h, top + mh), min(w, left + mw)
        if top < 0 or left < 0 or y1 <= top or x1 <= left:
            raise InputError(shown, where, "mask box lies outside the image")
        full[top:y1, left:x1] = sub[: y1 - top, : x1 - left]
        return mask_proposal(rel, label, full.astype(bool), extra, where, warns)  # (no pixel set: skipped)
    warns.append(ImportWarning(where, f"<{tag}> shapes are not supported; skipped", "skipped"))
    return None


__all__ = ["read"]
