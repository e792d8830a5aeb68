"""Helpers shared by the readers and writers: text decoding, masks, atomic folder exports."""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import orjson
from pycocotools import mask as maskutils

from ..model import ImportWarning, InputError, LabelreviewError

#: A file in every folder labelreview exports; an existing folder is replaced only if it has one.
EXPORT_MARKER = ".labelreview-export"


# ---------------------------------------------------------------------- reading


def read_text(path: str | os.PathLike, shown: str | None = None) -> str:
    """A text file as str: UTF-8 (a BOM is dropped), any line ending; errors name the file."""
    shown = shown or os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(shown, "", f"cannot read ({e.strerror or e})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(shown, f"line {line}", "not UTF-8 text") from None


def parse_xml(path: Path, shown: str):
    """An XML file's root element, or an InputError naming the file, line and column."""
    import xml.etree.ElementTree as ET

    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(shown, "", f"cannot read ({e.strerror or e})") from None
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        line, col = getattr(e, "position", (0, 0))
        raise InputError(shown, f"line {line}, column {col}", f"not well-formed XML ({e})") from None
    except (LookupError, ValueError) as e:  # its declaration names an encoding expat cannot read
        raise InputError(shown, "line 1", f"the XML declaration's encoding cannot be read ({e})") from None


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


#: A decimal number as text formats write them: not ``float``'s "1_0", other scripts' digits, or nan/inf.
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


#: How deep a value a reader passes through (an unknown key's) may nest. The store writes it inside
#: its own lines (an annotation's, the manifest's categories) and its JSON writer stops at 255 levels,
#: where a parser takes 1024: deeper, the import died with a traceback after reading everything.
MAX_NESTING = 200


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` levels (no recursion)."""
    if type(value) is not dict and type(value) is not list:
        return False
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        items = v.values() if type(v) is dict else v
        stack.extend((x, depth + 1) for x in items if type(x) is dict or type(x) is list)
    return False


def drop_too_deep(extra: dict[str, Any], where: str, warns: list[ImportWarning]) -> dict[str, Any]:
    """``extra`` without the keys whose values nest deeper than the store can write, each said."""
    for k in [k for k, v in extra.items() if too_deep(v, MAX_NESTING - 1)]:
        del extra[k]
        warns.append(ImportWarning(where, f"key {k!r} nests more than {MAX_NESTING} levels deep; dropped",
                                   "repaired"))
    return extra


def parse_float(tok: str) -> float | None:
    """A finite decimal number, or None (NaN, inf, what overflows and non-numbers are all None)."""
    if not _DECIMAL.fullmatch(tok.strip()):
        return None
    v = float(tok)
    return v if math.isfinite(v) else None


# ---------------------------------------------------------------------- masks


def encode_mask(mask: np.ndarray) -> dict:
    """A boolean (h, w) mask as the store's compressed RLE {"size": [h, w], "counts": str}."""
    rle = maskutils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def far_clipped(polygons: list, h: int | None, w: int | None) -> list:
    """The polygons, each that reaches far past its h x w picture clipped to it (with a pixel's
    margin); the list itself when none does (the common case: two passes in C per polygon).

    pycocotools traces a polygon's whole outline at 5x in C ints before it clips: a point 10^7 px
    off the picture cost 1.6 GB and 1.5 s, one past ~4e8 px overflowed (a wrong mask, or a
    segfault), in this tool and in whatever reads its COCO export (``annToMask``). Readers keep
    shapes as drawn, so such a point can be in the store. Clipped, the part over the picture, all a
    mask holds, stays exactly as it was. A polygon with a value that is no finite number is left as
    it is here (``rasterizable`` leaves it out)."""
    if not h or not w:
        return polygons
    reach = 4 * max(h, w) + 64
    out = None
    for i, p in enumerate(polygons):
        try:
            far = len(p) >= 6 and (max(p) > reach or min(p) < -reach)
        except TypeError:
            far = False
        if far and all(map(math.isfinite, p)):
            if out is None:
                out = list(polygons)
            with np.errstate(over="ignore", invalid="ignore"):  # (edges that cross no side: unused)
                clipped, _ = clip_polygon([v + 1.0 for v in p], (h + 2.0, w + 2.0))
            out[i] = [v - 1.0 for v in clipped]
    return polygons if out is None else [p for p in out if p]


def rasterizable(polygons: list, h: int, w: int) -> list:
    """Polygons as pycocotools can rasterize them into an h x w mask, the mask unchanged: each one
    far past the picture clipped (``far_clipped``); one with fewer than 3 points, or with a value
    that is no finite number, has no mask and is left out."""
    out = []
    for p in far_clipped(polygons, h, w):
        if len(p) < 6:
            continue
        try:
            if not math.isfinite(sum(p)):
                continue
        except TypeError:
            continue
        out.append(p)
    return out


def decode_segmentation(seg: Any, h: int, w: int, annotation: int | None = None) -> np.ndarray:
    """Any stored segmentation (polygons, compressed or uncompressed RLE) as a (h, w) uint8 mask.

    The importer stores only masks that decode; one that does not was edited by hand since (an
    error naming ``annotation``, not pycocotools' traceback)."""
    try:
        if isinstance(seg, list):
            polygons = rasterizable(seg, h, w)  # (fewer than 3 points: no area)
            if not polygons:
                return np.zeros((h, w), np.uint8)
            return maskutils.decode(maskutils.merge(maskutils.frPyObjects(polygons, h, w)))
        if isinstance(seg.get("counts"), list):
            return maskutils.decode(maskutils.frPyObjects(seg, *seg["size"]))
        counts = seg["counts"]
        return maskutils.decode({"size": seg["size"], "counts": counts.encode("ascii") if isinstance(counts, str)
                                 else counts})
    except (ValueError, IndexError, TypeError, KeyError, UnicodeEncodeError) as e:
        raise LabelreviewError(f"annotation {annotation}: its stored mask cannot be decoded ({e}): the import "
                               "folder was edited since it was written; `labelreview verify` shows where") from None


def mask_proposal(image_key: str, category: str, mask: np.ndarray, extra: dict, where: str,
                  warns: list[ImportWarning]):
    """The "rle" proposal of a whole-picture boolean mask; None, with a warning, when no pixel is set."""
    from ..model import Proposal

    bbox = mask_bbox(mask)
    if bbox is None:
        warns.append(ImportWarning(where, "mask has no pixel set on the picture", "skipped"))
        return None
    return Proposal(image_key=image_key, category=category, kind="rle", bbox=bbox, segmentation=encode_mask(mask),
                    area=float(mask.sum()), extra=extra)


def mask_bbox(mask: np.ndarray) -> list[float] | None:
    ys = np.flatnonzero(mask.any(axis=1))
    if not len(ys):
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return [float(xs[0]), float(ys[0]), float(xs[-1] - xs[0] + 1), float(ys[-1] - ys[0] + 1)]


def polygon_bbox(points: Iterable[float]) -> list[float]:
    pts = list(points)
    xs, ys = pts[0::2], pts[1::2]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def clip_bbox(bbox: list[float], hw: tuple[float, float]) -> list[float] | None:
    """A box [x, y, w, h] clipped to an image of ``hw`` (height, width): ``bbox`` itself when it is
    inside, a new list when it reaches outside, None when nothing of it is inside (a box of zero width
    or height on the image's edge is inside; one that only touches the edge from outside is not)."""
    x, y, w, h = bbox
    H, W = hw
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(W), x + w), min(float(H), y + h)
    if x1 < x0 or y1 < y0 or (x1 == x0 and w > 0) or (y1 == y0 and h > 0):
        return None
    if (x0, y0, x1, y1) == (x, y, x + w, y + h):
        return bbox
    return [x0, y0, x1 - x0, y1 - y0]


def clip_shape_box(bbox: list[float], hw: tuple[float, float], what: str, where: str,
                   warns: list[ImportWarning], tol: float = 0.01) -> list[float] | None:
    """The box of a shape whose points are kept as drawn (a polygon, a rotated box, points or a
    polyline), clipped to the image, as a COCO polygon's: a warning when the shape reaches outside the
    image by more than ``tol`` pixels (less is rounding of percent or normalized coordinates); None,
    and a warning, when nothing of it is inside (skip it).

    The points themselves are not moved: clipped to the image, a rotated box is no rectangle any more
    and a keypoint sits where nothing was marked; a polygon's mask is clipped to the image whenever
    it is made (pycocotools' frPyObjects does), and a YOLO export, whose values Ultralytics wants in
    0..1, clips the shapes themselves (``clip_polygon``, ``clip_rotated_box``, ``clip_keypoint``)."""
    H, W = hw
    clipped = clip_bbox(bbox, hw)
    if clipped is None:
        warns.append(ImportWarning(where, f"{what} lies outside the {W:g}x{H:g} image", "skipped"))
        return None
    if clipped is not bbox and max(abs(a - b) for a, b in zip(clipped, bbox)) > tol:
        warns.append(ImportWarning(where, f"{what} reaches outside the {W:g}x{H:g} image; kept as drawn, "
                                   f"its box clipped", "repaired"))
    return clipped


def _outside_by(pts: list[float], W: float, H: float) -> float:
    """How far (pixels) the farthest point of ``pts`` [x0, y0, ...] lies outside [0, W] x [0, H]; 0 inside."""
    xs, ys = pts[0::2], pts[1::2]
    return max(0.0, -min(xs), max(xs) - W, -min(ys), max(ys) - H)


def clip_polygon(pts: list[float], hw: tuple[float, float], tol: float = 0.01) -> tuple[list[float], bool]:
    """A polygon [x0, y0, x1, y1, ...] clipped exactly to the image rectangle [0, W] x [0, H] of ``hw``
    (height, width), and whether that changed it by more than ``tol`` pixels.

    Sutherland-Hodgman against the four sides: the part of the polygon inside the image, one polygon
    (the window is convex), its area inside unchanged. A polygon inside is returned as it is; one past
    the edge by ``tol`` or less (the rounding of normalized or percent coordinates) has its points
    moved onto the edge rather than cut (no near-duplicate points). [] when nothing of it with an area
    is inside (outside, or only touching the edge)."""
    H, W = float(hw[0]), float(hw[1])
    out = _outside_by(pts, W, H)
    if out == 0:
        return pts, False
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    if out <= tol:
        p[:, 0] = p[:, 0].clip(0.0, W)
        p[:, 1] = p[:, 1].clip(0.0, H)
        return [float(v) for v in p.ravel()], False
    for axis, bound, low in ((0, 0.0, True), (0, W, False), (1, 0.0, True), (1, H, False)):
        if len(p) < 3:
            return [], True
        v = p[:, axis]
        inside = v >= bound if low else v <= bound
        if inside.all():
            continue
        q = np.roll(p, -1, axis=0)  # each edge p[i] -> q[i]
        cross = inside != np.roll(inside, -1)
        t = (bound - v) / np.where(cross, q[:, axis] - v, 1.0)  # used where the edge crosses: never 0 there
        at = p + t[:, None] * (q - p)
        at[:, axis] = bound  # exactly on the side, not a rounding off it
        # per edge: its start when inside, then the point where it crosses the side
        p = np.stack([p, at], axis=1).reshape(-1, 2)[np.stack([inside, cross], axis=1).ravel()]
    if len(p):
        p = p[np.any(np.abs(p - np.roll(p, 1, axis=0)) > 1e-9, axis=1)]  # repeated points (a vertex on a side)
    if len(p) < 3:
        return [], True
    x, y = p[:, 0], p[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    if area <= 1e-9 * max(W * H, 1.0):
        return [], True
    return [float(c) for c in p.ravel()], True


def clip_rotated_box(corners: list[float], hw: tuple[float, float],
                     tol: float = 0.01) -> tuple[list[float] | None, str]:
    """An oriented box (4 corners x0, y0, ..., x3, y3) made to fit its image the way Ultralytics fits
    one that an augmentation pushed past the image's edge (``Instances.clip(preserve_obb=True)``,
    8.4): the rectangle, in the box's own orientation, around its part inside the image (the box
    clipped as a polygon is). It stays a rectangle at the same angle, corner order kept; a tilted box
    cut by an edge can keep corners a little past it, which Ultralytics takes (its label check is on
    the box around the corners). Returns (corners, how), ``how`` being:

    - "" inside (or past the edge by ``tol`` or less: its corners moved onto the edge);
    - "fitted": fitted to its visible part as above;
    - "kept": past the edge, but the rectangle around its visible part is the box itself (a corner
      cut off by the edge leaves the others where they were): written as drawn;
    - "boxed": its fitted rectangle would still span more than the image, which Ultralytics refuses
      (a big box turned so it covers most of the image), so the upright box around its visible part;
    - "outside": nothing of it with an area inside (None)."""
    H, W = float(hw[0]), float(hw[1])
    out = _outside_by(corners, W, H)
    if out == 0:
        return corners, ""
    if out <= tol:
        return clip_polygon(corners, hw, tol)[0], ""
    visible, _ = clip_polygon(corners, hw, tol)
    if not visible:
        return None, "outside"
    c = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    vis = np.asarray(visible, dtype=np.float64).reshape(-1, 2)
    u = c[1] - c[0]
    n = math.hypot(*u)
    if n > 0:
        u = u / n
        w = np.array([-u[1], u[0]])
        if np.dot(w, c[3] - c[0]) < 0:
            w = -w
        a, b = (vis - c[0]) @ u, (vis - c[0]) @ w
        a0, a1, b0, b1 = a.min(), a.max(), b.min(), b.max()
        fit = np.array([c[0] + a0 * u + b0 * w, c[0] + a1 * u + b0 * w, c[0] + a1 * u + b1 * w, c[0] + a0 * u + b1 * w])
        # Ultralytics' label check (verify_image_label) on the box around the corners, normalized: its
        # centre within the image and its size at most the image's (older releases allow no margin)
        x0, y0 = fit.min(axis=0)
        x1, y1 = fit.max(axis=0)
        if (x1 - x0 <= W * (1 + 1e-9) and y1 - y0 <= H * (1 + 1e-9)
                and 0 <= (x0 + x1) / 2 <= W and 0 <= (y0 + y1) / 2 <= H):
            rect = [float(v) for v in fit.ravel()]
            if max(abs(p - q) for p, q in zip(rect, corners)) <= tol:
                return corners, "kept"
            if _outside_by(rect, W, H) <= tol:  # the fit is inside: no corner a rounding past the edge
                rect = clip_polygon(rect, hw, tol)[0]
            return rect, "fitted"
    x0, y0 = vis.min(axis=0)
    x1, y1 = vis.max(axis=0)
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)], "boxed"


def clip_keypoint(x: float, y: float, hw: tuple[float, float], tol: float = 0.01) -> tuple[float, float] | None:
    """A keypoint inside its image (one past the edge by ``tol`` pixels or less moved onto it), or None
    when it lies outside (Ultralytics sets such a keypoint's visibility to 0; COCO writes one not
    labelled as x=y=0, v=0)."""
    H, W = float(hw[0]), float(hw[1])
    if 0 <= x <= W and 0 <= y <= H:
        return x, y
    if -tol <= x <= W + tol and -tol <= y <= H + tol:
        return min(max(x, 0.0), W), min(max(y, 0.0), H)
    return None


def rotated_corners(cx: float, cy: float, w: float, h: float, angle_deg: float) -> list[float]:
    """The corners of a w x h box centred on (cx, cy), turned by ``angle_deg`` (clockwise on screen,
    y pointing down), starting top-left and going clockwise: x0, y0, ..., x3, y3."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    out = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        out += [cx + dx * c - dy * s, cy + dx * s + dy * c]
    return out


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float, angle_deg: float, tol: float = 0.25) -> list[float]:
    """An ellipse as a polygon (x0, y0, x1, y1, ...): radii ``rx``, ``ry`` along its own axes, turned
    by ``angle_deg`` about its centre (clockwise on screen, as ``rotated_corners``). Enough points
    that no edge strays more than ``tol`` pixels inside the curve (16 at least, 360 at most), so
    the polygon's mask and area are the ellipse's to within a pixel's fraction along its outline."""
    r = max(rx, ry)
    step = math.acos(1 - tol / r) if r > tol else math.pi / 16  # (0 for a radius past float precision)
    n = min(360, max(16, math.ceil(math.pi / step))) if step > 0 else 360
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    out = []
    for k in range(n):
        t = 2 * math.pi * k / n
        dx, dy = rx * math.cos(t), ry * math.sin(t)
        out += [cx + dx * c - dy * s, cy + dx * s + dy * c]
    return out


def obb_angle(poly: list[float]) -> float:
    """The angle in degrees of a 4-corner box's first edge (p0 -> p1), in (-180, 180]."""
    return math.degrees(math.atan2(poly[3] - poly[1], poly[2] - poly[0]))


def is_rectangle(poly: list[float], tol: float = 0.02) -> bool:
    """Whether 4 points form a rectangle (opposite sides equal, diagonals equal) within ``tol`` relative."""
    if len(poly) != 8:
        return False
    p = [(poly[i], poly[i + 1]) for i in range(0, 8, 2)]

    def d(a, b):
        return math.hypot(a[0] - b[0], a[1] - b[1])

    s0, s1, s2, s3 = d(p[0], p[1]), d(p[1], p[2]), d(p[2], p[3]), d(p[3], p[0])
    d0, d1 = d(p[0], p[2]), d(p[1], p[3])
    scale = max(d0, d1)
    if scale <= 0:
        return False
    return abs(s0 - s2) <= tol * scale and abs(s1 - s3) <= tol * scale and abs(d0 - d1) <= tol * scale


# ---------------------------------------------------------------------- writing


class CsvRows:
    """``csv.writer`` rows ending in "\n", with a field holding a carriage return quoted.

    The csv module quotes a field holding the delimiter, the quote or a character of the line
    ending: with "\n" endings, a bare "\r" in an image or class name was written unquoted, and
    every reader (this tool's too) then cut the row there. Such a row is written all quoted."""

    def __init__(self, buf):
        self._plain = csv.writer(buf, lineterminator="\n")
        self._quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, row) -> None:
        if any(isinstance(v, str) and "\r" in v for v in row):
            self._quoted.writerow(row)
        else:
            self._plain.writerow(row)


def folder_name(name: str, what: str) -> str:
    """``name`` as one folder name of an export, or a clear error: a class called "person/rider" or
    "../x" cannot be a folder of its own without nesting or escaping."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise LabelreviewError(f"{what} {name!r} cannot be a folder name (empty, '.', '..' or with a slash); "
                               "relabel it, or export csv instead (nothing was written)")
    if name == PROVENANCE_NAME:  # (the export's own file beside the class folders)
        raise LabelreviewError(f"{what} {name!r} cannot be a folder name: it is the name of the export's "
                               "provenance file; relabel it, or export csv instead (nothing was written)")
    if name.startswith(".") or not name.strip():
        # (a hidden folder: torchvision's ImageFolder and labelreview's import pass it by)
        raise LabelreviewError(f"{what} {name!r} cannot be a folder name (a hidden folder, or blank, is one "
                               "ImageFolder readers pass by); relabel it, or export csv instead (nothing was written)")
    return name


def _new_name(parent: Path, prefix: str, make) -> Path:
    """``make(path)`` on a fresh hidden name in ``parent``, retried on the rare name already taken."""
    import secrets

    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        try:
            make(path)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{parent}: no free temporary name {prefix}*")


def new_export_file(parent: Path, prefix: str) -> tuple[int, Path]:
    """A new file (fd open for writing, path) to write an export into before it is renamed in place.

    Created as any file is (mode 0o666 less the umask, and a default ACL of the folder applies), not
    by ``tempfile.mkstemp``, which makes it 0o600: the rename kept that, and an export nobody else
    could read landed beside group-shared stores."""
    fd = -1

    def make(path: Path) -> None:
        nonlocal fd
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)

    path = _new_name(parent, prefix, make)
    return fd, path


def free_name(wanted: str, taken: set[str], other: Callable[[int], str]) -> str:
    """``wanted``, or when it is taken, the first of ``other(1)``, ``other(2)``, ... that is not; the
    name is then taken. (An export names a file after its image; a second image of the same name is
    given another, which may itself be a third image's own name: a.png renamed 3-a.png met a real
    3-a.png, and an ImageFolder export copied one picture over the other.)"""
    name, n = wanted, 0
    while name in taken:
        n += 1
        name = other(n)
    taken.add(name)
    return name


def export_name_fits(out: Path, longest_suffix: int) -> None:
    """Refuse, before anything is written, an output name whose temporary or sidecar names (the name
    and ``longest_suffix`` more bytes) the file system cannot hold: the export was written, then its
    provenance file could not be, and the command failed with half an export in place."""
    parent = out.parent if str(out.parent) else Path(".")
    try:
        limit = os.pathconf(parent if parent.exists() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    need = len(os.fsencode(out.name)) + longest_suffix
    if need > limit:
        raise LabelreviewError(f"{out}: the name is too long: {len(os.fsencode(out.name))} bytes, and the export also "
                               f"writes names {longest_suffix} bytes longer beside it (this file system holds "
                               f"{limit}); give a shorter name (nothing was written)")


def new_export_dir(parent: Path, prefix: str) -> Path:
    """A new folder (0o777 less the umask, as ``mkdir`` makes it) to build a folder export in; not
    ``tempfile.mkdtemp``, whose 0o700 the export folder kept once renamed in place."""
    return _new_name(parent, prefix, lambda path: os.mkdir(path, 0o777))


class FolderExport:
    """Write an export into a hidden temporary folder beside ``out``, then swap it in.

    A crash leaves either the old folder or the new one, never half of either. An existing folder is
    replaced only if labelreview wrote it (it holds ``.labelreview-export``): an export never deletes
    a user's dataset folder by accident.
    """

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        if self.out.exists():
            if not self.out.is_dir():
                raise LabelreviewError(f"{self.out}: exists and is not a folder; this format writes a folder")
            if any(self.out.iterdir()) and not (self.out / EXPORT_MARKER).is_file():
                raise LabelreviewError(f"{self.out}: folder exists, is not empty and was not written by a "
                                       "labelreview export; choose a new folder (nothing was written)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = new_export_dir(self.out.parent, f".{self.out.name}.tmp-")
        self._dirs: set[Path] = {self.tmp}

    def path(self, rel: str) -> Path:
        # Names come from the store (class names, split names, image file names): none may take a
        # file outside the export, whatever a label says (a class "../../x" would have).
        parts = rel.split("/")
        if os.path.isabs(rel) or any(part in ("", ".", "..") or "\0" in part for part in parts):
            raise LabelreviewError(f"{self.out}: refusing to write {rel!r}: it would not be a file inside "
                                   "the export folder (nothing was written)")
        p = self.tmp / rel
        if p.parent not in self._dirs:
            p.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(p.parent)
        return p

    def write(self, rel: str, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        with open(self.path(rel), "wb") as f:
            f.write(data)

    def open(self, rel: str):
        """A binary file handle inside the new folder (for writing a big file in pieces)."""
        return open(self.path(rel), "wb")

    def commit(self) -> None:
        (self.tmp / EXPORT_MARKER).write_text("written by labelreview export; safe to replace by the next one\n")
        _syncfs(self.tmp)  # every file of the new folder on disk before it takes the old one's place
        old = None
        if self.out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            os.replace(self.out, old / "x")
        os.replace(self.tmp, self.out)
        fd = os.open(self.out.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "FolderExport":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` (Linux syncfs: one call for thousands of files)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()


def provenance_bytes(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS) + b"\n" for r in rows)


PROVENANCE_NAME = "labelreview.provenance.jsonl"


def fmt_num(v: float, digits: int = 6) -> str:
    """A coordinate as text: up to ``digits`` decimals, trailing zeros dropped ('0.5', '12', '-0.25')."""
    s = f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s
