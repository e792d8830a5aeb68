"""Pure rendering: decode an image, draw annotation overlays, and turn it into half-block terminal strips."""

from __future__ import annotations

import gc
import math
import os
import struct
import textwrap
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageOps
from rich.cells import cell_len, set_cell_size
from rich.color import Color, ColorSystem, ColorType
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from ..formats.images import NotAFile, open_image_file, shown_size
from ..display import printable, score_text
from ..model import shape_of

if TYPE_CHECKING:
    from rich.console import Console

    from ..model import Annotation, Category

__all__ = [
    "Decoded",
    "Frame",
    "Inspected",
    "ImageUnavailable",
    "Overlay",
    "RenderOptions",
    "class_color",
    "compose",
    "decode",
    "inspect_picture",
    "placeholder",
]

HALF_BLOCK = "▀"
BACKGROUND = (0, 0, 0)
ZOOM_MARGIN = 0.15  # each side, so the crop is the box plus ~30 %
MIN_ZOOM_REGION = 16.0  # original pixels; a tiny box is not blown up beyond this

# Mask fill opacity by state.
_ALPHA_NORMAL = 0.35
_ALPHA_SELECTED = 0.5
_ALPHA_DIMMED = 0.15


class ImageUnavailable(Exception):
    """The image cannot be shown: missing, unreadable, corrupt or refused as a decompression bomb."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Overlay:
    """One annotation to draw, in ORIGINAL image pixel coordinates."""

    ann_id: int
    label: str
    color: tuple[int, int, int]
    bbox: tuple[float, float, float, float] | None = None  # COCO x, y, w, h
    polygons: tuple[tuple[float, ...], ...] = ()  # COCO polygons: flat x0, y0, x1, y1, ...
    # COCO RLE {"size": [h, w], "counts": str | list}; a dict is unhashable, so it stays out of the hash.
    rle: dict | None = field(default=None, hash=False)
    keypoints: tuple[float, ...] = ()  # x, y, v triples
    skeleton: tuple[tuple[int, int], ...] = ()  # 1-based pairs (COCO)
    selected: bool = False
    dimmed: bool = False


@dataclass(frozen=True, slots=True)
class RenderOptions:
    show_masks: bool = True
    show_names: bool = True
    zoom: bool = False  # crop around the selected overlay (its bbox + ~30 % margin)


#: The mark of each status, in the list and beside a class name on the picture.
STATUS_MARK = {"pending": "·", "accepted": "✓", "relabeled": "↻", "flagged": "⚑", "rejected": "✗"}


def skeletons_of(categories: Iterable[Category]) -> dict[str, Sequence[Sequence[int]]]:
    """Class name -> keypoint skeleton, for the classes that have one."""
    return {c.name: c.skeleton for c in categories if c.skeleton}


def overlays_for(anns: Sequence[Annotation], selected: int | None,
                 skeletons: dict[str, Sequence[Sequence[int]]]) -> tuple[Overlay, ...]:
    """What to draw for an image's annotations, ``selected`` highlighted and the others dimmed."""
    out = []
    for a in anns:
        seg = a.segmentation
        label = f"{a.category} {STATUS_MARK.get(a.status, '')}".strip()
        if a.score is not None:
            label += f" {score_text(a.score)}"
        out.append(Overlay(
            ann_id=a.id, label=label, color=class_color(a.category),
            bbox=tuple(a.bbox) if a.bbox else None,
            polygons=tuple(tuple(p) for p in seg) if isinstance(seg, list) else (),
            rle=seg if isinstance(seg, dict) else None,
            keypoints=tuple(a.keypoints or ()),
            skeleton=_polyline_edges(a) or tuple(tuple(p) for p in (skeletons.get(a.category) or ())),
            selected=a.id == selected, dimmed=a.id != selected or a.status == "rejected",
        ))
    return tuple(out)


def _polyline_edges(a: Annotation) -> tuple[tuple[int, int], ...]:
    """A polyline (CVAT ``polyline``, Label Studio ``polylinelabels``) is stored as its points, in
    order: drawn as a line through them, one point to the next, not as loose points."""
    if shape_of(a.kind, a.extra) != "polyline":
        return ()
    n = len(a.keypoints or ()) // 3
    return tuple((i, i + 1) for i in range(1, n))


@dataclass(frozen=True, slots=True, eq=False)
class Decoded:
    """An RGB picture plus what is needed to map original pixel coordinates onto it."""

    image: Image.Image
    orig_size: tuple[int, int]  # (w, h) at full resolution, after EXIF orientation
    path: str

    @property
    def scale(self) -> tuple[float, float]:
        """Decoded pixels per original pixel (x, y); reduced sizes round, so the axes differ slightly."""
        return (self.image.width / self.orig_size[0], self.image.height / self.orig_size[1])


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """Finished terminal lines, plus the mapping from original image pixels to cells."""

    strips: list[Strip]
    width: int  # cells
    height: int  # cells
    region: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # shown part, original px x0, y0, x1, y1
    scale: tuple[float, float] = (0.0, 0.0)  # display pixels per original pixel (x, y)
    offset: tuple[int, int] = (0, 0)  # picture's top-left in display pixels; 2 display pixels per cell row
    message: str | None = None  # set for placeholders

    def to_cell(self, x: float, y: float) -> tuple[int, int] | None:
        """The (column, row) showing original pixel (x, y), or None if it is not in the frame."""
        if self.message is not None:
            return None
        px = self.offset[0] + (x - self.region[0]) * self.scale[0]
        py = self.offset[1] + (y - self.region[1]) * self.scale[1]
        col, row = math.floor(px), math.floor(py) // 2
        if 0 <= col < self.width and 0 <= row < self.height:
            return col, row
        return None


# A palette that stays distinct and readable on dark photos (bright, saturated, no near-greys).
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 75, 75), (60, 200, 255), (255, 200, 40), (110, 230, 90), (220, 110, 255),
    (255, 140, 40), (40, 230, 200), (255, 110, 190), (160, 160, 255), (200, 255, 60),
    (255, 230, 150), (90, 150, 255), (255, 170, 130), (150, 255, 190), (240, 80, 140),
    (180, 220, 255), (230, 180, 255), (255, 255, 90), (100, 255, 255), (255, 120, 100),
)


def class_color(name: str) -> tuple[int, int, int]:
    """A stable colour for a class name (the same in every process, unlike hash())."""
    return _PALETTE[zlib.crc32(name.encode("utf-8")) % len(_PALETTE)]


# --------------------------------------------------------------------------- decode

_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings() swaps process-wide state


@contextmanager
def _open(path: str) -> Iterator[Image.Image]:
    """The picture at ``path``, its header read; closed (with its file) on leaving.

    The file is opened before the lock and without blocking (``open_image_file``): opened by
    Image.open under the lock, a named pipe held every other picture's decode (and the quit, which
    waits for the render threads) for good."""
    try:
        f = open_image_file(path)
    except NotAFile as e:
        raise ImageUnavailable(f"not an image ({e.kind}): {path}") from None
    with f:
        # Image.open only reads the header; the lock just keeps the warning filter swap from racing.
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(f)
        with im:
            yield im


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float images (medical, depth): stretch to 8 bits instead of clipping to white.
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")  # avoids Pillow's palette-transparency warning
    return im.convert("RGB")


#: Modes ``Image.reduce`` averages as they are (a palette's indices must not be averaged).
_REDUCIBLE = frozenset({"RGB", "RGBA", "L", "LA"})


def decode(path: str | os.PathLike[str], target: tuple[int, int] | None = None) -> Decoded:
    """Decode an image for display at about `target` (w, h) pixels; None means full resolution.

    JPEGs are decoded at a reduced DCT scale (Image.draft), so a 4000x3000 file costs a fraction of a
    full decode. The result is at least `target` in both directions, EXIF-rotated and RGB.
    """
    p = os.fspath(path)
    try:
        with _open(p) as im:
            # (A TIFF's size is given as shown already: swapping it again squeezed the picture.)
            orig_size = shown_size(im)
            swapped = orig_size != im.size
            if target is not None:
                tw, th = max(1, int(target[0])), max(1, int(target[1]))
                file_target = (th, tw) if swapped else (tw, th)
                im.draft("RGB", file_target)
            im.load()
            out = im
            if target is not None and im.mode in _REDUCIBLE:
                # Non-JPEG files (no draft): shrink cheaply, keeping at least the target size, before
                # the EXIF turn, which copies the picture (a 9000x9000 PNG: 243 MB and 0.2-0.4 s more).
                factor = min(im.width // file_target[0], im.height // file_target[1])
                if factor >= 2:
                    out = im.reduce(factor)
            out = ImageOps.exif_transpose(out)
            out = _to_rgb(out)
            if target is not None:
                # (Modes reduce does not take, or a palette: shrunk as RGB.)
                factor = min(out.width // tw, out.height // th)
                if factor >= 2:
                    out = out.reduce(factor)
    except FileNotFoundError:
        raise ImageUnavailable(f"image missing: {p}") from None
    except IsADirectoryError:
        raise ImageUnavailable(f"not an image (a directory): {p}") from None
    except PermissionError:
        raise ImageUnavailable(f"image not readable (permission denied): {p}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageUnavailable(f"image refused (decompression bomb?): {p}: {exc}") from None
    except Image.UnidentifiedImageError:
        raise ImageUnavailable(f"not a readable image: {p}") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, MemoryError) as exc:
        raise ImageUnavailable(f"image corrupt or unreadable: {p}: {exc}") from None
    return Decoded(image=out, orig_size=orig_size, path=p)


# --------------------------------------------------------------------------- styles

# Caches shared by all render threads. Plain dict operations are atomic under the GIL, and a lost
# entry only costs a rebuild, so no lock.
_STYLE_CACHE_MAX = 65536
_STYLES: dict[int, Style] = {}  # key: top pixel RGB << 24 | bottom pixel RGB
_COLORS: dict[int, Color] = {}
_HALVES = [HALF_BLOCK * n for n in range(1025)]
_TRUECOLOR = ColorType.TRUECOLOR
_new_tuple = tuple.__new__  # NamedTuple constructors are Python-level and cost ~1 us per cell here
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype="S1")


def forget_styles() -> None:
    """Drop the cached half-block styles (they keep the escape codes of the colour system they
    were first rendered for)."""
    _STYLES.clear()


def _add_colors(values: np.ndarray) -> None:
    """Create Rich colours for packed RGB values in one vectorised pass (names included)."""
    digits = np.stack([(values >> shift) & 15 for shift in (20, 16, 12, 8, 4, 0)], axis=1)
    chars = np.full((len(values), 7), b"#", dtype="S1")
    chars[:, 1:] = _HEX_DIGITS[digits]
    names = chars.view("S7").ravel().astype(str).tolist()
    rs, gs, bs = ((values >> 16) & 255).tolist(), ((values >> 8) & 255).tolist(), (values & 255).tolist()
    colors = _COLORS
    for rgb, name, r, g, b in zip(values.tolist(), names, rs, gs, bs):
        colors[rgb] = _new_tuple(Color, (name, _TRUECOLOR, None, _new_tuple(ColorTriplet, (r, g, b))))


def _color(rgb: int) -> Color:
    color = _COLORS.get(rgb)
    if color is None:
        triplet = _new_tuple(ColorTriplet, (rgb >> 16, (rgb >> 8) & 255, rgb & 255))
        color = _new_tuple(Color, (f"#{rgb:06x}", _TRUECOLOR, None, triplet))
        _COLORS[rgb] = color
    return color


def _unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-D array. (numpy 2's own imports ``numpy.ma`` on its first call: ~30 ms
    with the GIL held, in the middle of the first frame at launch.)"""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _add_styles(keys: set[int]) -> None:
    """Create the half-block styles a frame needs that are not cached yet, in one pass."""
    if len(_STYLES) + len(keys) > _STYLE_CACHE_MAX:
        # Drop the oldest entries (dicts keep insertion order) rather than everything at once.
        for old in list(islice(_STYLES, len(_STYLES) + len(keys) - _STYLE_CACHE_MAX // 2)):
            _STYLES.pop(old, None)
    if len(_COLORS) > 2 * _STYLE_CACHE_MAX:
        _COLORS.clear()
    key_list = list(keys)
    packed = np.array(key_list, dtype=np.int64)
    tops, bottoms = packed >> 24, packed & 0xFFFFFF
    wanted = _unique(np.concatenate([tops, bottoms]))
    new = [v for v in wanted.tolist() if v not in _COLORS]
    if new:
        _add_colors(np.array(new, dtype=np.int64))
    colors_get = _COLORS.get
    from_color = Style.from_color
    for key, top, bottom in zip(key_list, tops.tolist(), bottoms.tolist()):
        # .get with a fallback: another render thread may have cleared the colour cache meanwhile.
        _STYLES[key] = from_color(colors_get(top) or _color(top), colors_get(bottom) or _color(bottom))


def _cell_style(key: int) -> Style:
    style = _STYLES.get(key)
    if style is None:
        style = Style.from_color(_color(key >> 24), _color(key & 0xFFFFFF))
        _STYLES[key] = style
    return style


def _pack(rgb: tuple[int, int, int]) -> int:
    return (int(rgb[0]) << 16) | (int(rgb[1]) << 8) | int(rgb[2])


def _text_style(fg: tuple[int, int, int], bg: tuple[int, int, int], bold: bool) -> Style:
    return Style(color=_color(_pack(fg)), bgcolor=_color(_pack(bg)), bold=bold)


# --------------------------------------------------------------------------- geometry helpers


def _brighten(c: tuple[int, int, int], amount: float = 0.5) -> tuple[int, int, int]:
    return tuple(int(v + (255 - v) * amount) for v in c)  # type: ignore[return-value]


def _darken(c: tuple[int, int, int], amount: float = 0.5) -> tuple[int, int, int]:
    return tuple(int(v * (1.0 - amount)) for v in c)  # type: ignore[return-value]


@lru_cache(maxsize=4096)
def _string_counts(text: bytes) -> tuple[int, ...]:
    """Run lengths of a COCO compressed RLE string (pycocotools' rleFrString, in Python)."""
    counts: list[int] = []
    p, n = 0, len(text)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n:
                raise ValueError("truncated RLE string")
            c = text[p] - 48
            if not 0 <= c < 64:
                raise ValueError("invalid character in RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return tuple(counts)


def _rle_runs(rle: dict) -> tuple[int, int, np.ndarray]:
    """(h, w, cumulative run ends) of a COCO RLE; runs alternate 0, 1, 0, ... in column-major order.

    Checked here because pycocotools does not check counts against h x w (it writes past the
    buffer); a mask shorter than h x w is taken as zero-padded.
    """
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    if isinstance(counts, bytes):
        counts = _string_counts(counts)
    runs = np.asarray(counts, dtype=np.int64)
    if h <= 0 or w <= 0 or runs.ndim != 1 or len(runs) == 0 or (runs < 0).any():
        raise ValueError("malformed RLE")
    ends = np.cumsum(runs)
    if ends[-1] > h * w:
        raise ValueError(f"RLE counts sum to {ends[-1]}, more than {h}x{w}")
    return h, w, ends


def _rle_bounds(rle: dict, orig_size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    h, w, ends = _rle_runs(rle)
    starts = np.concatenate([[0], ends[:-1]])
    ones = (np.arange(len(ends)) % 2 == 1) & (ends > starts)
    first, last = starts[ones], ends[ones] - 1
    if not len(first):
        return None
    c0, c1 = first // h, last // h
    spans = c1 > c0  # a run over several columns covers whole columns in between
    y0 = np.where(spans, 0, first % h).min()
    y1 = np.where(spans, h - 1, last % h).max()
    fx, fy = orig_size[0] / w, orig_size[1] / h
    return (float(c0.min()) * fx, float(y0) * fy, float(c1.max() + 1) * fx, float(y1 + 1) * fy)


def _bounds(ov: Overlay, orig_size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """x0, y0, x1, y1 of an overlay in original pixels: its bbox, else its geometry."""
    if ov.bbox is not None:
        x, y, w, h = ov.bbox
        return (x, y, x + w, y + h)
    xs: list[float] = []
    ys: list[float] = []
    for poly in ov.polygons:
        xs.extend(poly[0::2])
        ys.extend(poly[1::2])
    if not xs and ov.rle is not None:
        try:
            bounds = _rle_bounds(ov.rle, orig_size)
        except (KeyError, TypeError, ValueError):
            bounds = None
        if bounds is not None:
            return bounds
    for i in range(0, len(ov.keypoints) - 2, 3):
        if ov.keypoints[i + 2] > 0:
            xs.append(ov.keypoints[i])
            ys.append(ov.keypoints[i + 1])
    if not xs:
        return None
    return (min(xs), min(ys), max(xs), max(ys))


def _zoom_region(
    overlays: Sequence[Overlay], orig_size: tuple[int, int], aspect: float
) -> tuple[float, float, float, float] | None:
    """The crop around the selected overlay, widened to the display aspect and kept inside the image."""
    selected = next((ov for ov in overlays if ov.selected), None)
    bounds = _bounds(selected, orig_size) if selected is not None else None
    if bounds is None:
        return None
    W, H = orig_size
    x0, y0, x1, y1 = bounds
    w = max(x1 - x0, 1.0) * (1 + 2 * ZOOM_MARGIN)
    h = max(y1 - y0, 1.0) * (1 + 2 * ZOOM_MARGIN)
    w, h = max(w, MIN_ZOOM_REGION), max(h, MIN_ZOOM_REGION)
    # Fill the widget instead of letterboxing the crop.
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    w, h = min(w, W), min(h, H)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx0 = min(max(cx - w / 2, 0.0), W - w)
    ry0 = min(max(cy - h / 2, 0.0), H - h)
    return (rx0, ry0, rx0 + w, ry0 + h)


class _Mapper:
    """Original pixel coordinates -> picture pixel coordinates."""

    __slots__ = ("x0", "y0", "sx", "sy")

    def __init__(self, region: tuple[float, float, float, float], size: tuple[int, int]) -> None:
        self.x0, self.y0 = region[0], region[1]
        self.sx = size[0] / (region[2] - region[0])
        self.sy = size[1] / (region[3] - region[1])

    def xy(self, x: float, y: float) -> tuple[float, float]:
        # Clamped: a wild coordinate far off the picture would overflow PIL's C ints.
        px = min(max((x - self.x0) * self.sx, -_COORD_LIMIT), _COORD_LIMIT)
        py = min(max((y - self.y0) * self.sy, -_COORD_LIMIT), _COORD_LIMIT)
        return (px, py)


_COORD_LIMIT = 1e5


def _finite(values: Sequence[float]) -> bool:
    try:
        return all(math.isfinite(v) for v in values)
    except TypeError:
        return False


def _usable(ov: Overlay) -> Overlay:
    """The overlay without geometry that cannot be drawn (NaN, infinities, non-numbers)."""
    bbox = ov.bbox if ov.bbox is None or (len(ov.bbox) == 4 and _finite(ov.bbox)) else None
    polygons = tuple(p for p in ov.polygons if _finite(p))
    keypoints = ov.keypoints if _finite(ov.keypoints) else ()
    if bbox == ov.bbox and polygons == ov.polygons and keypoints == ov.keypoints:
        return ov
    return replace(ov, bbox=bbox, polygons=polygons, keypoints=keypoints)


def _polygon_mask(polys: Sequence[Sequence[float]], m: _Mapper, size: tuple[int, int]) -> np.ndarray | None:
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    drawn = False
    for poly in polys:
        if len(poly) < 6 or len(poly) % 2:
            continue  # malformed polygons are skipped, not guessed at
        draw.polygon([m.xy(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)], fill=255)
        drawn = True
    return np.asarray(canvas, dtype=bool) if drawn else None


def _rle_mask(
    rle: dict, m: _Mapper, size: tuple[int, int], orig_size: tuple[int, int]
) -> np.ndarray | None:
    """The mask sampled at each display pixel's centre, straight from the runs.

    Never decodes the full mask: pycocotools takes ~60 ms to decode one 4000x3000 mask.
    """
    try:
        h, w, ends = _rle_runs(rle)
    except (KeyError, TypeError, ValueError):
        return None
    # A mask stored at another resolution than the image is stretched over it.
    fx, fy = w / orig_size[0], h / orig_size[1]
    cols = np.floor(((np.arange(size[0]) + 0.5) / m.sx + m.x0) * fx).astype(np.int64)
    rows = np.floor(((np.arange(size[1]) + 0.5) / m.sy + m.y0) * fy).astype(np.int64)
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    index = np.clip(cols, 0, w - 1)[None, :] * h + np.clip(rows, 0, h - 1)[:, None]
    run = np.searchsorted(ends, index, side="right")
    return inside & (run % 2 == 1) & (index < ends[-1])


def _edge(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _draw_order(overlays: Sequence[Overlay]) -> list[Overlay]:
    # Dimmed underneath, the selected one on top.
    return sorted(overlays, key=lambda ov: (not ov.dimmed, ov.selected))


def _shape_mask(ov: Overlay, m: _Mapper, size: tuple[int, int], orig_size: tuple[int, int]) -> np.ndarray | None:
    """The pixels an overlay's polygons (else its RLE) cover at ``size``; None if none."""
    if not ov.polygons and ov.rle is None:
        return None
    mask = _polygon_mask(ov.polygons, m, size) if ov.polygons else None
    if mask is None and ov.rle is not None:
        mask = _rle_mask(ov.rle, m, size, orig_size)
    return mask if mask is not None and mask.any() else None


def _paint_masks(arr: np.ndarray, overlays: Sequence[Overlay], m: _Mapper, orig_size: tuple[int, int]) -> None:
    size = (arr.shape[1], arr.shape[0])
    for ov in overlays:
        mask = _shape_mask(ov, m, size, orig_size)
        if mask is None:
            continue
        alpha = _ALPHA_SELECTED if ov.selected else _ALPHA_DIMMED if ov.dimmed else _ALPHA_NORMAL
        color = np.array(ov.color, dtype=np.float32)
        arr[mask] = (arr[mask] * (1.0 - alpha) + color * alpha).astype(np.uint8)
        edge_color = _brighten(ov.color) if ov.selected else _darken(ov.color) if ov.dimmed else ov.color
        arr[_edge(mask)] = edge_color


def _line_color(ov: Overlay) -> tuple[int, int, int]:
    if ov.selected:
        return _brighten(ov.color)
    if ov.dimmed:
        return _darken(ov.color, 0.55)
    return ov.color


def _paint_lines(img: Image.Image, overlays: Sequence[Overlay], m: _Mapper) -> None:
    draw = ImageDraw.Draw(img)
    for ov in overlays:
        color = _line_color(ov)
        if ov.bbox is not None:
            x, y, w, h = ov.bbox
            px0, py0 = m.xy(x, y)
            px1, py1 = m.xy(x + w, y + h)
            left, top = math.floor(px0), math.floor(py0)
            right, bottom = max(left, math.ceil(px1) - 1), max(top, math.ceil(py1) - 1)
            width = 2 if ov.selected and right - left >= 8 and bottom - top >= 8 else 1
            draw.rectangle((left, top, right, bottom), outline=color, width=width)
        if ov.keypoints:
            _paint_keypoints(draw, ov, color, m)


def _paint_keypoints(draw: ImageDraw.ImageDraw, ov: Overlay, color: tuple[int, int, int], m: _Mapper) -> None:
    kp = ov.keypoints
    n = len(kp) // 3
    points = [m.xy(kp[3 * i], kp[3 * i + 1]) if kp[3 * i + 2] > 0 else None for i in range(n)]
    for a, b in ov.skeleton:
        if 1 <= a <= n and 1 <= b <= n and points[a - 1] and points[b - 1]:
            draw.line((points[a - 1], points[b - 1]), fill=_darken(color, 0.3), width=1)
    for i, pt in enumerate(points):
        if pt is None:
            continue
        dot = color if kp[3 * i + 2] >= 2 else _darken(color)  # v=1: labelled but not visible
        x, y = int(pt[0]), int(pt[1])
        if ov.selected:
            draw.rectangle((x - 1, y - 1, x + 1, y + 1), fill=dot)
        else:
            draw.point((x, y), fill=dot)


def _clean_label(text: str) -> str:
    # Escaped as the list and the detail panel show it ("cat\\rdog", not "cat dog": two classes
    # that differ by a control character must not look alike on the picture); what else does not
    # print (a zero-width joiner) is a space, so that each character takes the cells it is measured at.
    return "".join(ch if ch.isprintable() else " " for ch in printable(text)).strip()


@dataclass(slots=True)
class _Label:
    row: int
    col: int
    width: int
    text: str
    style: Style


def _place_labels(
    overlays: Sequence[Overlay],
    cells: np.ndarray,
    picture: tuple[int, int, int, int],
    m: _Mapper,
    orig_size: tuple[int, int],
) -> list[_Label]:
    """Put each class name on the row above its box (or just inside it), never over another name."""
    rows, cols = cells.shape[:2]
    ox, oy, dw, dh = picture
    taken = np.zeros((rows, cols), dtype=bool)
    labels: list[_Label] = []
    caption_row = oy // 2  # image-level labels (classification): names down the picture's top-left
    # The selected name is placed first so it always gets its spot; dimmed ones last.
    for ov in sorted(overlays, key=lambda ov: (not ov.selected, ov.dimmed)):
        text = _clean_label(ov.label)
        bounds = _bounds(ov, orig_size)
        if text and bounds is None and ov.bbox is None and not ov.polygons and ov.rle is None \
                and not ov.keypoints and caption_row < rows:
            width = min(cell_len(text), cols)
            col = min(max(ox, 0), cols - width)
            row = caption_row
            caption_row += 1
            taken[row, col : col + width] = True
            under = cells[row, col : col + width].reshape(-1, 3).mean(axis=0)
            bg = _darken(tuple(int(v) for v in under), 0.75)  # type: ignore[arg-type]
            fg = _brighten(ov.color, 0.4) if ov.selected else _darken(ov.color, 0.4) if ov.dimmed else ov.color
            labels.append(_Label(row, col, width, set_cell_size(text, width), _text_style(fg, bg, ov.selected)))
            continue
        if not text or bounds is None:
            continue
        px0, py0 = m.xy(bounds[0], bounds[1])
        px1, py1 = m.xy(bounds[2], bounds[3])
        if px1 < 0 or py1 < 0 or px0 >= dw or py0 >= dh:
            continue  # off the picture (zoomed in elsewhere)
        width = min(cell_len(text), cols)
        text = set_cell_size(text, width)
        top_row = (oy + max(math.floor(py0), 0)) // 2
        bottom_row = (oy + min(math.ceil(py1), dh) - 1) // 2
        col = min(max(ox + math.floor(px0), 0), cols - width)
        for row in (top_row - 1, top_row + 1, top_row):
            # One free cell either side: two names touching read as one ("cat · 0.6050% off · 0.71").
            if 0 <= row < rows and row <= max(bottom_row, top_row) \
                    and not taken[row, max(col - 1, 0) : col + width + 1].any():
                break
        else:
            continue
        taken[row, col : col + width] = True
        # Dark backing tinted by the picture underneath keeps the name readable on any image.
        under = cells[row, col : col + width].reshape(-1, 3).mean(axis=0)
        bg = _darken(tuple(int(v) for v in under), 0.75)  # type: ignore[arg-type]
        fg = _brighten(ov.color, 0.4) if ov.selected else _darken(ov.color, 0.4) if ov.dimmed else ov.color
        labels.append(_Label(row, col, width, text, _text_style(fg, bg, ov.selected)))
    return labels


# --------------------------------------------------------------------------- compose


def pixels_of(cells: tuple[int, int]) -> tuple[int, int]:
    """The picture size (w, h) that fills ``cells`` (columns, rows) of half blocks: one cell is
    1 px wide and 2 px tall (square pixels). What a picture is decoded for, and composed at."""
    return (int(cells[0]), int(cells[1]) * 2)


def compose(
    decoded: Decoded,
    overlays: Sequence[Overlay],
    cells: tuple[int, int],
    options: RenderOptions = RenderOptions(),
) -> Frame:
    """Fit the picture into `cells` (columns, rows) of half blocks, with overlays and class names."""
    cols, rows = int(cells[0]), int(cells[1])
    overlays = [_usable(ov) for ov in overlays]
    if cols < 1 or rows < 1:
        return Frame(strips=[], width=max(cols, 0), height=max(rows, 0))
    pw, ph = pixels_of((cols, rows))
    W, H = decoded.orig_size
    region = None
    if options.zoom:
        region = _zoom_region(overlays, decoded.orig_size, pw / ph)
    if region is None:
        region = (0.0, 0.0, float(W), float(H))
    rw, rh = region[2] - region[0], region[3] - region[1]
    fit = min(pw / rw, ph / rh)
    dw = max(1, min(pw, round(rw * fit)))
    dh = max(1, min(ph, round(rh * fit)))
    ox, oy = (pw - dw) // 2, (ph - dh) // 2

    sx, sy = decoded.scale
    iw, ih = decoded.image.size
    box = (region[0] * sx, region[1] * sy, min(region[2] * sx, iw), min(region[3] * sy, ih))
    picture = decoded.image.resize((dw, dh), Image.Resampling.BILINEAR, box=box)
    m = _Mapper(region, (dw, dh))
    ordered = _draw_order(overlays)

    if options.show_masks and any(ov.polygons or ov.rle is not None for ov in ordered):
        arr = np.array(picture)
        _paint_masks(arr, ordered, m, decoded.orig_size)
        picture = Image.fromarray(arr, "RGB")
    _paint_lines(picture, ordered, m)

    canvas = np.empty((ph, pw, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    canvas[oy : oy + dh, ox : ox + dw] = np.asarray(picture)

    labels: list[_Label] = []
    cell_rgb = canvas.reshape(rows, 2, cols, 3)
    if options.show_names and overlays:
        labels = _place_labels(ordered, cell_rgb[:, 1], (ox, oy, dw, dh), m, decoded.orig_size)

    packed = canvas.astype(np.int64)
    packed = (packed[..., 0] << 16) | (packed[..., 1] << 8) | packed[..., 2]
    keys = (packed[0::2] << 24) | packed[1::2]  # (rows, cols): top pixel in the high 24 bits
    for i, label in enumerate(labels):
        keys[label.row, label.col : label.col + label.width] = -1 - i  # never equal to a pixel key

    strips = _build_strips(keys, labels)
    mapping_scale = (dw / rw, dh / rh)
    return Frame(strips, cols, rows, region=region, scale=mapping_scale, offset=(ox, oy))



# --------------------------------------------------------------------------- inspect (pixel protocols)


@dataclass(frozen=True, slots=True, eq=False)
class Inspected:
    """The inspect view's picture: exactly the pixels asked for, the crop's region of the original."""

    image: Image.Image  # RGB, the size asked for; the crop letterboxed on BACKGROUND if it is narrower
    region: tuple[float, float, float, float]  # original px x0, y0, x1, y1 shown
    placed: tuple[int, int, int, int]  # where the crop is in ``image``: x, y, w, h


def inspect_region(overlays: Sequence[Overlay], orig_size: tuple[int, int],
                   size: tuple[int, int]) -> tuple[float, float, float, float]:
    """What the inspect view shows at ``size`` (w, h) pixels: the crop the zoom key shows (around
    the selected annotation, widened to the view's shape), or the whole picture if none is selected."""
    overlays = [_usable(ov) for ov in overlays]
    region = _zoom_region(overlays, orig_size, size[0] / size[1])
    return region if region is not None else (0.0, 0.0, float(orig_size[0]), float(orig_size[1]))


def inspect_target(region: tuple[float, float, float, float], orig_size: tuple[int, int],
                   size: tuple[int, int]) -> tuple[int, int] | None:
    """The decode size that gives ``region`` at least ``size`` pixels (None: full resolution)."""
    rw, rh = region[2] - region[0], region[3] - region[1]
    scale = max(size[0] / rw, size[1] / rh)
    if scale >= 1:
        return None
    return (math.ceil(orig_size[0] * scale), math.ceil(orig_size[1] * scale))


def inspect_picture(path: str | os.PathLike[str], overlays: Sequence[Overlay], size: tuple[int, int],
                    orig_size: tuple[int, int] | None = None) -> Inspected:
    """The selected annotation's surroundings at ``size`` (w, h) real pixels, for a pixel protocol.

    Cut from the picture decoded at the resolution the crop needs (the full one for a small box), with
    every annotation's outline and the selected one's highlighted. Outlines only, no mask fill, and
    a box's line is drawn just outside it: the pixels at its edge are what the reviewer judges.
    ``orig_size`` (the stored size, if known) lets a JPEG decode at a reduced scale when the crop is
    large; without it the file's header is read first.
    """
    w, h = max(1, int(size[0])), max(1, int(size[1]))
    overlays = [_usable(ov) for ov in overlays]
    if orig_size is None:
        orig_size = decode_size(path)
    region = inspect_region(overlays, orig_size, (w, h))
    decoded = decode(path, inspect_target(region, orig_size, (w, h)))
    if decoded.orig_size != orig_size:  # the stored size was not the file's: crop what the file is
        region = inspect_region(overlays, decoded.orig_size, (w, h))
        decoded = decode(path, inspect_target(region, decoded.orig_size, (w, h)))
    rw, rh = region[2] - region[0], region[3] - region[1]
    fit = min(w / rw, h / rh)
    dw, dh = max(1, min(w, round(rw * fit))), max(1, min(h, round(rh * fit)))
    ox, oy = (w - dw) // 2, (h - dh) // 2
    sx, sy = decoded.scale
    iw, ih = decoded.image.size
    box = (region[0] * sx, region[1] * sy, min(region[2] * sx, iw), min(region[3] * sy, ih))
    # LANCZOS: the point of this view is a sharp picture (BILINEAR blurs a 4x reduction).
    picture = decoded.image.resize((dw, dh), Image.Resampling.LANCZOS, box=box)
    _paint_outlines(picture, _draw_order(overlays), _Mapper(region, (dw, dh)), decoded.orig_size)
    canvas = Image.new("RGB", (w, h), BACKGROUND)
    canvas.paste(picture, (ox, oy))
    return Inspected(canvas, region, (ox, oy, dw, dh))


def decode_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """A picture's size after EXIF orientation, from its header alone."""
    p = os.fspath(path)
    try:
        with _open(p) as im:
            return shown_size(im)
    except Exception:  # noqa: BLE001 - decode() meets it again and says what it is
        return decode(p).orig_size


def _grow(mask: np.ndarray) -> np.ndarray:
    """The mask and its 4-neighbours."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _paint_outlines(img: Image.Image, overlays: Sequence[Overlay], m: _Mapper, orig_size: tuple[int, int]) -> None:
    """Each overlay's outline just outside its shape (1 px, the selected one 2 px)."""
    size = img.size
    arr = None
    for ov in overlays:
        mask = _shape_mask(ov, m, size, orig_size)
        if mask is None:
            continue
        grown = _grow(mask)
        if ov.selected:
            grown = _grow(grown)
        if arr is None:
            arr = np.array(img)
        arr[grown & ~mask] = _line_color(ov)
    if arr is not None:
        img.paste(Image.fromarray(arr, "RGB"))
    draw = ImageDraw.Draw(img)
    for ov in overlays:
        color = _line_color(ov)
        width = 2 if ov.selected else 1
        if ov.bbox is not None:
            x, y, bw, bh = ov.bbox
            px0, py0 = m.xy(x, y)
            px1, py1 = m.xy(x + bw, y + bh)
            # The line's inner side touches the box from outside: the edge pixels stay visible.
            left, top = math.floor(px0) - width, math.floor(py0) - width
            right, bottom = math.ceil(px1) + width - 1, math.ceil(py1) + width - 1
            draw.rectangle((left, top, max(left, right), max(top, bottom)), outline=color, width=width)
        if ov.keypoints:
            _paint_keypoints(draw, ov, color, m)


_gc_lock = threading.Lock()
_gc_pausers = 0  # render threads currently holding the GC off
_gc_resume = False  # whether the GC was on when the first of them started


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic GC while a frame allocates its ~10^4 styles and segments.

    Those allocations otherwise trigger collections that scan the whole app's heap; measured at
    about half the cost of a frame with new colours. Counted, so overlapping render threads agree,
    and a GC someone else turned off stays off.
    """
    global _gc_pausers, _gc_resume
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_resume:
                gc.enable()


def _build_strips(keys: np.ndarray, labels: list[_Label]) -> list[Strip]:
    with _gc_paused():
        return _build_strips_unpaused(keys, labels)


def _build_strips_unpaused(keys: np.ndarray, labels: list[_Label]) -> list[Strip]:
    rows, cols = keys.shape
    # Runs of identical cells become one segment; boundaries are found for all rows at once.
    change = np.ones((rows, cols), dtype=bool)
    change[:, 1:] = keys[:, 1:] != keys[:, :-1]
    run_r, run_c = np.nonzero(change)
    ends = np.empty_like(run_c)
    ends[:-1] = run_c[1:]
    row_last = np.ones(len(run_c), dtype=bool)
    row_last[:-1] = run_r[1:] != run_r[:-1]
    ends[row_last] = cols
    run_keys = keys[run_r, run_c].tolist()
    lengths = (ends - run_c).tolist()
    row_last_list = row_last.tolist()

    missing = set(run_keys).difference(_STYLES)
    missing.difference_update(range(-len(labels), 0))
    if missing:
        _add_styles(missing)

    halves = _HALVES if cols < len(_HALVES) else [HALF_BLOCK * n for n in range(cols + 1)]
    styles = _STYLES
    strips: list[Strip] = []
    segments: list[Segment] = []
    append = segments.append
    for key, length, last in zip(run_keys, lengths, row_last_list):
        if key < 0:
            label = labels[-1 - key]
            append(_new_tuple(Segment, (label.text, label.style, None)))
        else:
            try:
                style = styles[key]
            except KeyError:  # evicted by a concurrent render since _add_styles
                style = _cell_style(key)
            append(_new_tuple(Segment, (halves[length], style, None)))
        if last:
            strips.append(Strip(segments, cols))
            segments = []
            append = segments.append
    return strips


# --------------------------------------------------------------------------- escape codes


def finish_lines(frame: Frame, color_system: ColorSystem | None, console: Console | None = None) -> None:
    """Worker thread: compute the frame's escape codes now, not on the UI thread.

    Textual renders a style once and keeps the codes on it (``Style._ansi``); for a new image that is
    ~5,000 fresh styles, measured at 100-270 ms of the key press when left to the UI thread. It also
    keeps a strip's whole rendered line (``Strip.render``): rendered here, and handed to the
    compositor unchanged (``ImageView.render_lines``), a picture line costs the UI thread nothing.
    Without a console (the first picture, made before the app exists: ``tui.early``) the lines are
    finished for ``color_system``; a line that would need the console (a link) is left to the
    compositor.
    """
    color_system = color_system or ColorSystem.TRUECOLOR
    for strip in frame.strips:
        line = compact_line(strip, color_system)
        if line is None:
            if console is not None:
                strip.render(console)
        else:
            strip._render_cache = line  # what Strip.render would return, in ~10 % fewer bytes


def compact_line(strip: Strip, color_system: ColorSystem = ColorSystem.TRUECOLOR) -> str | None:
    """A picture line as escape codes without a reset after every cell.

    Textual ends each segment with a reset (``ESC[0m``); a picture cell sets both its colours, so
    after a cell that had no other attributes the next cell's codes replace everything anyway. The
    line starts from a reset and ends with one, as Textual's own rendering does. Measured through
    tmux: a 160x50 frame is 190 -> 172 KB and tmux takes ~2 ms less to take it in. None for a
    line with links (Textual's rendering handles those).

    A style's codes are kept on it (``Style._ansi``, as Textual's ``Strip.render_ansi`` does); a
    picture cell's in true colour are written here directly, the same codes in a fifth of the
    time (a new picture brings ~5,000 new styles: ~25 ms of a frame).
    """
    out = []
    clean = False  # the terminal holds only colours set by the previous segment
    truecolor = color_system == ColorSystem.TRUECOLOR
    for text, style, _ in strip:
        if style is None:
            out.append(f"\x1b[0m{text}")
            clean = False
            continue
        if style._link:
            return None
        fg, bg = style._color, style._bgcolor
        colours_only = not style._set_attributes and fg is not None and bg is not None
        ansi = style._ansi
        if ansi is None:
            if truecolor and colours_only and fg.type is _TRUECOLOR and bg.type is _TRUECOLOR:
                (r, g, b), (r2, g2, b2) = fg.triplet, bg.triplet
                ansi = style._ansi = f"38;2;{r};{g};{b};48;2;{r2};{g2};{b2}"
            else:
                ansi = Strip.render_ansi(style, color_system)
        if clean and colours_only:
            out.append(f"\x1b[{ansi}m{text}")
        else:
            out.append(f"\x1b[0;{ansi}m{text}" if ansi else f"\x1b[0m{text}")
        clean = colours_only
    out.append("\x1b[0m")
    return "".join(out)


# --------------------------------------------------------------------------- placeholder

_MESSAGE_STYLE = Style(color="#b0b0b0", italic=True)


def placeholder(cells: tuple[int, int], message: str) -> Frame:
    """A frame showing `message` centred (wrapped if needed) on the widget's own background."""
    cols, rows = max(int(cells[0]), 0), max(int(cells[1]), 0)
    clean = " ".join(_clean_label(part) for part in message.splitlines())
    lines = textwrap.wrap(clean, max(cols, 1), break_long_words=True, break_on_hyphens=False) or [""]
    lines = lines[:rows]
    top = (rows - len(lines)) // 2
    strips = []
    for y in range(rows):
        i = y - top
        if 0 <= i < len(lines) and cols:
            text = lines[i]
            width = min(cell_len(text), cols)
            text = set_cell_size(text, width)
            left = (cols - width) // 2
            segs = [Segment(" " * left), Segment(text, _MESSAGE_STYLE), Segment(" " * (cols - left - width))]
            strips.append(Strip(segs, cols))
        else:
            strips.append(Strip.blank(cols))
    return Frame(strips, cols, rows, message=message)
