"""Label Studio JSON export (a list of tasks): annotations and predictions, coordinates in percent of
``original_width`` / ``original_height``, rectangles turned by ``rotation`` degrees about their
top-left corner.

Store kinds: rectangle -> "bbox", or a 4-corner "polygon" with extra {"obb": true, "angle"} when turned;
polygon -> "polygon"; ellipse -> "polygon" traced along the curve (extra "ls_shape": "ellipse" and
"ellipse": its centre, radii and rotation in pixels); keypoint -> "keypoints" (one point); choices ->
"label". Every label of a region is one reviewable annotation. Predictions keep their score; extra
"ls_origin" says which it was.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from ..model import INT64, Category, ImageRecord, ImportBatch, ImportWarning, InputError, Proposal
from . import images as imgs
from .coco import load_json
from .common import clip_bbox, clip_shape_box, ellipse_polygon, obb_angle, polygon_bbox

_LABEL_KEYS = ("rectanglelabels", "polygonlabels", "keypointlabels", "labels", "choices", "brushlabels",
               "ellipselabels", "polylinelabels", "taxonomy")
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")
#: The largest side a picture may have (an SQLite integer holds it; no image file is anywhere near).
_MAX_SIDE = 2**31 - 1


def _image_name(data: dict) -> str | None:
    for key in ("image", "img", "image_url", "url", "ocr"):
        v = data.get(key)
        if isinstance(v, str) and v:
            break
    else:
        v = next((x for x in data.values() if isinstance(x, str) and imgs.is_image_name(x.split("?")[0])), None)
        if v is None:
            return None
    u = urlparse(v)
    if "d" in parse_qs(u.query):  # /data/local-files/?d=folder/img.jpg
        return unquote(parse_qs(u.query)["d"][0]).lstrip("/")
    return unquote(u.path)


def _num(v: Any, shown: str, where: str, what: str) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise InputError(shown, where, f"{what} {v!r} is not a number")
    return float(v)


def read(path: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[ImportBatch, Path]:
    p = Path(path)
    shown = p.name
    data = load_json(p)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise InputError(shown, "top level", "expected a list of Label Studio tasks")
    root = Path(images) if images else p.parent
    # Hidden images (names starting with '.') too: a task names the image it was labelled on, and one
    # named so is read, as a CSV row's or a YOLO split list's (it was "not found", its labels lost).
    hidden: list[str] = []
    files = [r for r in imgs.walk_files(root, hidden) if imgs.is_image_name(r)] if root.is_dir() else []
    files += [r for r in hidden if imgs.is_image_name(r) and not imgs.is_appledouble(r.rsplit("/", 1)[-1])]
    exact = set(files)
    by_base: dict[str, list[str]] = {}
    for r in files:
        by_base.setdefault(r.rsplit("/", 1)[-1], []).append(r)
    warns: list[ImportWarning] = []
    image_of: dict[str, ImageRecord] = {}
    images_out: list[ImageRecord] = []
    proposals: list[Proposal] = []
    cats: dict[str, None] = {}
    for ti, task in enumerate(data):
        wt = f"[{ti}]"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise InputError(shown, wt, "a task must be an object with a 'data' object")
        tid = task.get("id", ti)
        if not (type(tid) is str or (type(tid) is int and -INT64 <= tid < INT64)):
            warns.append(ImportWarning(f"[{ti}]", f"task id {tid!r} is not an id (text or a 64-bit integer); the "
                                       f"task's place in the file, {ti}, names it instead", "repaired"))
            tid = ti
        wt = f"[{ti}] (task {tid})"
        name = _image_name(task["data"])
        if not name:
            warns.append(ImportWarning(wt, "task names no image; skipped", "skipped"))
            continue
        rel = _resolve(name, exact, by_base)
        if rel not in image_of:
            im = ImageRecord(key=rel, file_name=rel, source_id=tid, extra={"ls_image": name} if name != rel else {})
            if rel not in exact:
                warns.append(ImportWarning(wt, f"image {name!r} not found under {root}", "kept"))
            image_of[rel] = im
            images_out.append(im)
        im = image_of[rel]
        for origin in ("annotations", "predictions"):
            groups = task.get(origin) or []
            if not isinstance(groups, list):
                raise InputError(shown, f"{wt} {origin}", "must be a list")
            for gi, g in enumerate(groups):
                wg = f"{wt} {origin}[{gi}]"
                if not isinstance(g, dict):
                    raise InputError(shown, wg, "must be an object with a 'result' list")
                if g.get("was_cancelled"):
                    warns.append(ImportWarning(wg, "cancelled annotation; skipped", "skipped"))
                    continue
                results = g.get("result") or []
                if not isinstance(results, list):
                    raise InputError(shown, wg, "'result' must be a list")
                gscore = g.get("score") if isinstance(g.get("score"), (int, float)) else None
                # Where to read the picture's size when a result does not give it: a file found under
                # the image root (never a name that only claims to be there).
                on_disk = str(root / rel) if rel in exact else (rel if os.path.isabs(rel) else None)
                for ri, r in enumerate(results):
                    wr = f"{wg} result[{ri}]"
                    for prop in _result(r, im, shown, wr, warns, on_disk):
                        prop.extra["ls_origin"] = origin[:-1]
                        if origin == "predictions":
                            if prop.score is None and gscore is not None and math.isfinite(gscore):
                                prop.score = float(gscore)
                            if g.get("model_version"):
                                prop.extra["model_version"] = g["model_version"]
                        elif g.get("completed_by") is not None:
                            prop.extra["completed_by"] = g["completed_by"]
                        prop.source_id = f"{tid}/{origin[:-1]}/{g.get('id', gi)}/{r.get('id', ri)}"
                        cats.setdefault(prop.category)
                        proposals.append(prop)
    lower: dict[str, str] = {}
    for c in cats:
        if c.lower() in lower:
            warns.append(ImportWarning("labels", f"{lower[c.lower()]!r} and {c!r} differ only in case; kept as two "
                                       "classes (relabel to merge them)", "kept"))
        lower.setdefault(c.lower(), c)
    return ImportBatch(format="labelstudio", source_file=str(p), images=images_out,
                       categories=[Category(name=c) for c in cats], proposals=proposals, warnings=warns,
                       info={}), root


def _resolve(name: str, exact: set[str], by_base: dict[str, list[str]]) -> str:
    n = name.lstrip("/")
    for cand in (n, n.split("/data/", 1)[-1]):
        if cand in exact:
            return cand
    base = n.rsplit("/", 1)[-1]
    for b in (base, _UPLOAD_PREFIX.sub("", base)):  # Label Studio prefixes uploads with 8 hex digits
        hit = by_base.get(b)
        if hit and len(hit) == 1:
            return hit[0]
    return _UPLOAD_PREFIX.sub("", base) if n.startswith("data/upload/") else n


def _result(r: Any, im: ImageRecord, shown: str, where: str, warns: list[ImportWarning],
            on_disk: str | None = None) -> list[Proposal]:
    if not isinstance(r, dict):
        raise InputError(shown, where, "a result must be an object")
    typ = r.get("type")
    v = r.get("value")
    if typ in ("relation", None) and not isinstance(v, dict):
        return []
    if not isinstance(v, dict):
        raise InputError(shown, where, "no 'value' object")
    labels = None
    for k in _LABEL_KEYS:
        if k in v:
            labels = v[k]
            break
    if labels is None:
        warns.append(ImportWarning(where, f"{typ} result without labels; skipped", "skipped"))
        return []
    if not isinstance(labels, list) or not all(
            isinstance(x, str) or isinstance(x, list) and all(isinstance(y, str) for y in x) for x in labels):
        raise InputError(shown, where, "labels must be a list of names (a taxonomy's: lists of names)")
    labels = ["/".join(x) if isinstance(x, list) else x for x in labels]
    if not labels:
        warns.append(ImportWarning(where, f"{typ} result with an empty list of labels; skipped", "skipped"))
        return []
    if any(not lab.strip() for lab in labels):
        raise InputError(shown, where, f"label {next(lab for lab in labels if not lab.strip())!r} is not a name")
    score = r.get("score")
    score = float(score) if isinstance(score, (int, float)) and math.isfinite(score) else None
    if typ == "choices" or typ == "taxonomy":
        return [Proposal(image_key=im.key, category=lab, kind="label", score=score, extra={}) for lab in labels]
    W, H = r.get("original_width"), r.get("original_height")
    if im.width is None and on_disk:
        # Percent of the picture: the image file's own size is what they are of, when it is there.
        try:
            im.width, im.height = imgs.image_size(on_disk)
        except imgs.ImageProblem:
            pass
    if W is None or H is None:
        W, H = im.width, im.height
        if not W or not H:
            warns.append(ImportWarning(where, "no original_width/original_height to turn percent into pixels; "
                                       "skipped", "skipped"))
            return []
    W, H = _num(W, shown, where, "original_width"), _num(H, shown, where, "original_height")
    if not (1 <= W <= _MAX_SIDE and 1 <= H <= _MAX_SIDE and W.is_integer() and H.is_integer()):
        raise InputError(shown, where, f"original size {W:g}x{H:g} is not a size")
    if im.width is None:
        im.width, im.height = int(W), int(H)
    elif (W, H) != (im.width, im.height):
        # One picture, one size: percent of another size would put the shape elsewhere on it.
        warns.append(ImportWarning(where, f"original_width/original_height {W:g}x{H:g} differ from the "
                                   f"image's {im.width}x{im.height}; percent read against the image's size",
                                   "repaired"))
        W, H = float(im.width), float(im.height)
    rot_img = r.get("image_rotation") or 0
    if rot_img:
        warns.append(ImportWarning(where, f"image_rotation {rot_img} is not applied", "kept"))
    out = []
    if typ == "rectanglelabels":
        x, y = _num(v.get("x"), shown, where, "x") * W / 100, _num(v.get("y"), shown, where, "y") * H / 100
        w, h = _num(v.get("width"), shown, where, "width") * W / 100, _num(v.get("height"), shown, where, "height") * H / 100
        if w < 0 or h < 0:
            raise InputError(shown, where, "negative width or height")
        rot = _num(v.get("rotation") or 0, shown, where, "rotation")
        bbox = [x, y, w, h]
        pts = None
        if rot % 360:
            a = math.radians(rot)  # about the top-left corner, clockwise on screen
            c, s = math.cos(a), math.sin(a)
            pts = [x, y, x + w * c, y + w * s, x + w * c - h * s, y + w * s + h * c, x - h * s, y + h * c]
            bbox = clip_shape_box(polygon_bbox(pts), (H, W), "rotated box", where, warns)
            if bbox is None:
                return []
        else:
            # past 100 % (or below 0): clipped to the image, or skipped when nothing of it is inside
            bbox = clip_bbox(bbox, (H, W))
            if bbox is None:
                warns.append(ImportWarning(where, f"box lies outside the {W:g}x{H:g} image", "skipped"))
                return []
            if max(abs(a - b) for a, b in zip(bbox, [x, y, w, h])) > 0.01:  # not just rounding
                warns.append(ImportWarning(where, f"box reaches outside the {W:g}x{H:g} image; clipped",
                                           "repaired"))
        for lab in labels:
            if pts is None:
                out.append(Proposal(image_key=im.key, category=lab, kind="bbox", bbox=list(bbox), score=score,
                                    extra={}))
            else:
                out.append(Proposal(image_key=im.key, category=lab, kind="polygon", bbox=list(bbox),
                                    segmentation=[list(pts)], score=score,
                                    extra={"obb": True, "angle": round(obb_angle(pts), 6), "ls_rotation": rot}))
    elif typ in ("polygonlabels", "polylinelabels"):
        pts_in = v.get("points")
        if not isinstance(pts_in, list) or len(pts_in) < (3 if typ == "polygonlabels" else 2):
            raise InputError(shown, where, "a polygon needs a list of at least 3 [x, y] points")
        pts = []
        for pt in pts_in:
            if not isinstance(pt, list) or len(pt) != 2:
                raise InputError(shown, where, f"point {pt!r} is not [x, y]")
            pts += [_num(pt[0], shown, where, "x") * W / 100, _num(pt[1], shown, where, "y") * H / 100]
        bbox = clip_shape_box(polygon_bbox(pts), (H, W), "polygon" if typ == "polygonlabels" else "polyline",
                              where, warns)
        if bbox is None:
            return []
        for lab in labels:
            if typ == "polygonlabels":
                out.append(Proposal(image_key=im.key, category=lab, kind="polygon", bbox=list(bbox),
                                    segmentation=[list(pts)], score=score, extra={}))
            else:
                kps = [c for i in range(0, len(pts), 2) for c in (pts[i], pts[i + 1], 2)]
                out.append(Proposal(image_key=im.key, category=lab, kind="keypoints", bbox=list(bbox),
                                    keypoints=kps, score=score, extra={"ls_shape": "polyline"}))
    elif typ == "ellipselabels":
        # x, y: the centre; radiusX in percent of the width, radiusY of the height; rotation about the centre
        cx, cy = _num(v.get("x"), shown, where, "x") * W / 100, _num(v.get("y"), shown, where, "y") * H / 100
        rx = _num(v.get("radiusX"), shown, where, "radiusX") * W / 100
        ry = _num(v.get("radiusY"), shown, where, "radiusY") * H / 100
        rot = _num(v.get("rotation") or 0, shown, where, "rotation")
        if rx <= 0 or ry <= 0:
            warns.append(ImportWarning(where, f"ellipse with radii {rx:g}, {ry:g} px has no area", "skipped"))
            return []
        pts = ellipse_polygon(cx, cy, rx, ry, rot)
        bbox = clip_shape_box(polygon_bbox(pts), (H, W), "ellipse", where, warns)
        if bbox is None:
            return []
        for lab in labels:
            out.append(Proposal(image_key=im.key, category=lab, kind="polygon", bbox=list(bbox),
                                segmentation=[list(pts)], score=score,
                                extra={"ls_shape": "ellipse",
                                       "ellipse": {"cx": cx, "cy": cy, "rx": rx, "ry": ry, "rotation": rot}}))
    elif typ == "keypointlabels":
        x, y = _num(v.get("x"), shown, where, "x") * W / 100, _num(v.get("y"), shown, where, "y") * H / 100
        if clip_shape_box([x, y, 0.0, 0.0], (H, W), "keypoint", where, warns) is None:
            return []
        for lab in labels:
            out.append(Proposal(image_key=im.key, category=lab, kind="keypoints", bbox=[x, y, 0.0, 0.0],
                                keypoints=[x, y, 2], score=score, extra={}))
    else:
        warns.append(ImportWarning(where, f"{typ} results are not supported; skipped", "skipped"))
    return out


__all__ = ["read"]
