"""Semantic segmentation masks: one PNG per image (class indices in a palette/grey PNG, or class
colours in an RGB PNG) plus a class map (``dataset_meta.json``: label_map, segmentation_colors,
background_label). Each class present in an image becomes one reviewable annotation of kind "mask"
(its pixels as compressed RLE); the background class is what no mask covers.

Layout read: ``DIR/dataset_meta.json``, ``DIR/images/*``, ``DIR/masks/*.png`` (mask and image matched by
name; prefixes such as ``gt_`` / ``image_`` are tolerated). Export writes ``masks/<name>.png`` (palette
PNG, or 16-bit grey when there are more than 256 classes) and ``dataset_meta.json``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from PIL import Image as PILImage

from ..model import Category, ImageRecord, ImportBatch, ImportWarning, InputError, LabelreviewError, Proposal
from . import images as imgs
from .common import (PROVENANCE_NAME, FolderExport, decode_segmentation, encode_mask, free_name, mask_bbox,
                     provenance_bytes)

_BACKGROUND_NAMES = {"background", "_background_", "bg"}


def voc_colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """Pascal VOC's palette: index -> colour (bit-interleaved)."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


@dataclass
class ClassMap:
    """Mask value -> class name (and colour); which value is background and which, if any, is void."""

    names: dict[int, str]
    colors: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    background: int | None = 0
    void: int | None = None

    def color_lookup(self) -> dict[int, int]:
        """packed RGB -> index."""
        return {(r << 16) | (g << 8) | b: i for i, (r, g, b) in self.colors.items()}

    def categories(self) -> list[Category]:
        out = []
        for i in sorted(self.names):
            extra: dict[str, Any] = {"mask_value": i}
            if i in self.colors:
                extra["color"] = list(self.colors[i])
            if i == self.background:
                extra["background"] = True
            if i == self.void:
                extra["void"] = True
            out.append(Category(name=self.names[i], source_id=i, extra=extra))
        return out


def class_map_from_meta(path: Path) -> ClassMap:
    try:
        meta = orjson.loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))  # orjson refuses a BOM
    except orjson.JSONDecodeError as e:
        raise InputError(str(path), f"byte {e.pos}", f"not valid JSON: {e.msg}") from None
    except OSError as e:
        raise InputError(str(path), "", f"cannot read ({e.strerror or e})") from None
    lm = meta.get("label_map") if isinstance(meta, dict) else None
    if not isinstance(lm, dict) or not lm:
        raise InputError(str(path), "label_map", "needs a label_map of value: class name")
    names = {}
    for k, v in lm.items():
        try:
            i = int(k)
        except ValueError:
            raise InputError(str(path), f"label_map[{k!r}]", "mask value must be an integer") from None
        if not isinstance(v, str) or not v.strip():
            raise InputError(str(path), f"label_map[{k!r}]", "class name must be a non-empty string")
        if i < 0 or i > 65535:
            raise InputError(str(path), f"label_map[{k!r}]", "mask value must be 0..65535")
        names[i] = v.strip()
    if len(set(names.values())) != len(names):
        raise InputError(str(path), "label_map", "class names must be unique")
    colors = {}
    sc = meta.get("segmentation_colors")
    if sc is not None:
        if not isinstance(sc, list) or len(sc) != len(names):
            raise InputError(str(path), "segmentation_colors", f"needs one [r, g, b] per class ({len(names)})")
        for i, c in zip(sorted(names), sc):
            if (not isinstance(c, list) or len(c) != 3
                    or not all(isinstance(v, int) and 0 <= v <= 255 for v in c)):
                raise InputError(str(path), f"segmentation_colors[{i}]", f"{c!r} is not [r, g, b]")
            colors[i] = tuple(c)
        if len(set(colors.values())) != len(colors):
            raise InputError(str(path), "segmentation_colors", "two classes share a colour")
    bg = meta.get("background_label")
    background = None
    if bg is not None:
        try:
            background = int(bg)
        except (TypeError, ValueError):
            raise InputError(str(path), "background_label", f"{bg!r} is not a mask value") from None
    else:
        background = next((i for i, n in names.items() if n.lower() in _BACKGROUND_NAMES), None)
    return ClassMap(names=names, colors=colors, background=background)


def read_mask(path: str | os.PathLike, cmap: ClassMap, shown: str | None = None) -> np.ndarray:
    """A mask PNG as an (h, w) array of class values; colours and values are checked against ``cmap``."""
    shown = shown or os.fspath(path)
    try:
        with PILImage.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                arr = np.asarray(im)
                if not cmap.colors or _palette_is_index(im, cmap):
                    values = arr.astype(np.int32)
                else:
                    values = _from_rgb(np.asarray(im.convert("RGB")), cmap, shown)
            elif mode in ("L", "I;16", "I;16B", "I", "1"):
                values = np.asarray(im).astype(np.int32)
            elif mode in ("RGB", "RGBA"):
                values = _from_rgb(np.asarray(im.convert("RGB")), cmap, shown)
            else:
                raise InputError(shown, "", f"mask of PIL mode {mode} not understood (palette, grey or RGB)")
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(shown, "", "mask file missing") from None
    except Exception as e:
        raise InputError(shown, "", f"unreadable mask image ({e})") from None
    if mode != "RGB" and mode != "RGBA":
        known = np.zeros(max(int(values.max()) + 1, 1), bool)
        for i in cmap.names:
            if i < len(known):
                known[i] = True
        bad = ~known[values]
        if bad.any():
            y, x = (int(v[0]) for v in np.nonzero(bad))
            raise InputError(shown, f"pixel ({x}, {y})", f"value {int(values[y, x])} is not in the class map")
    return values


def _palette_is_index(im, cmap: ClassMap) -> bool:
    """A palette PNG whose palette is the class colours: its indices are the class values."""
    pal = im.getpalette() or []
    for i, c in cmap.colors.items():
        if i >= 256 or tuple(pal[3 * i:3 * i + 3]) != tuple(c):
            return False
    return True


def _from_rgb(rgb: np.ndarray, cmap: ClassMap, shown: str) -> np.ndarray:
    if not cmap.colors:
        raise InputError(shown, "", "an RGB mask needs class colours (segmentation_colors / labelmap)")
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    lut = cmap.color_lookup()
    uniq, inv = np.unique(packed, return_inverse=True)
    out = np.empty(len(uniq), np.int32)
    for k, u in enumerate(uniq):
        i = lut.get(int(u))
        if i is None:
            y, x = (int(v[0]) for v in np.nonzero(packed == u))
            raise InputError(shown, f"pixel ({x}, {y})", f"colour {(int(u) >> 16 & 255, int(u) >> 8 & 255, int(u) & 255)} "
                             "is not a class colour")
        out[k] = i
    return out[inv].reshape(packed.shape)


def proposals_from_values(values: np.ndarray, cmap: ClassMap, image_key: str, source: str) -> list[Proposal]:
    """One "mask" proposal per class present, background left out."""
    out = []
    for v in np.unique(values):
        v = int(v)
        if v == cmap.background:
            continue
        m = values == v
        out.append(Proposal(image_key=image_key, category=cmap.names[v], kind="mask", bbox=mask_bbox(m),
                            segmentation=encode_mask(m), area=float(m.sum()), source_id=f"{source}#{v}",
                            extra={"mask_value": v}))
    return out


# ---------------------------------------------------------------------- read


def _key(stem: str) -> str:
    return re.sub(r"^[A-Za-z]+_(?=\d)", "", stem)


def read(path: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[ImportBatch, Path]:
    """(batch, image root) for a folder with dataset_meta.json, images/ and masks/."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    meta = p / "dataset_meta.json"
    if not meta.is_file():
        raise LabelreviewError(f"{p}: no dataset_meta.json (the class map: label_map, segmentation_colors)")
    cmap = class_map_from_meta(meta)
    mask_dir = p / "masks" if (p / "masks").is_dir() else None
    if mask_dir is None:
        raise LabelreviewError(f"{p}: no masks/ folder")
    root = Path(images) if images else (p / "images" if (p / "images").is_dir() else p)
    root_s = os.fspath(root)
    hidden: list[str] = []
    image_files = [r for r in imgs.walk_files(root, hidden) if imgs.is_image_name(r)]
    hidden_masks: list[str] = []
    mask_files = [r for r in imgs.walk_files(mask_dir, hidden_masks) if r.lower().endswith(".png")]
    hidden = [r for r in hidden if imgs.is_image_name(r)]
    if root == p:
        image_files = [r for r in image_files if not r.startswith("masks/")]
        hidden = [r for r in hidden if not r.startswith("masks/")]
    # Hidden files (names starting with '.') are skipped, and said; AppleDouble ones counted.
    warns: list[ImportWarning] = imgs.hidden_warnings(
        [(r, "; rename it to import it") for r in hidden]
        + [(f"masks/{r}", "; rename it to import it") for r in hidden_masks if r.lower().endswith(".png")], p.name)
    by_stem: dict[str, list[str]] = {}
    by_key: dict[str, list[str]] = {}
    for r in image_files:
        stem = r.rsplit(".", 1)[0]
        by_stem.setdefault(stem, []).append(r)
        by_key.setdefault(_key(stem.rsplit("/", 1)[-1]), []).append(r)
    claimed: dict[str, str] = {}
    prefixed = 0
    for m in mask_files:
        stem = m.rsplit(".", 1)[0]
        hit = by_stem.get(stem)
        if not hit:
            hit = by_key.get(_key(stem.rsplit("/", 1)[-1]))
            if hit and len(hit) == 1:
                prefixed += 1
        if not hit:
            warns.append(ImportWarning(f"masks/{m}", "mask with no image; skipped", "skipped"))
            continue
        if len(hit) > 1:
            warns.append(ImportWarning(f"masks/{m}", f"matches {len(hit)} images ({', '.join(hit)}); skipped",
                                       "skipped"))
            continue
        claimed[hit[0]] = m
    if prefixed:
        warns.append(ImportWarning("masks/", f"{prefixed} mask(s) matched to images by name without a prefix "
                                   "(e.g. gt_0001.png -> image_0001.png)", "repaired"))
    images_out, proposals = [], []
    for r in image_files:
        m = claimed.get(r)
        if m is None:
            warns.append(ImportWarning(r, "no mask; image imported with no labels", "kept"))
            images_out.append(ImageRecord(key=r, file_name=r, source_id=r))
            continue
        shown = f"masks/{m}"
        values = read_mask(mask_dir / m, cmap, shown)
        h, w = values.shape
        try:
            iw, ih = imgs.image_size(os.path.join(root_s, r))
        except imgs.ImageProblem as e:
            iw = ih = None
            warns.append(ImportWarning(r, f"{e}; size taken from the mask", "kept"))
        if iw is not None and (iw, ih) != (w, h):
            warns.append(ImportWarning(shown, f"mask is {w}x{h} but the image is {iw}x{ih}; "
                                       "image and its masks skipped", "skipped"))
            continue
        images_out.append(ImageRecord(key=r, file_name=r, width=w, height=h, source_id=r,
                                      extra={"mask_file": shown}))
        proposals += proposals_from_values(values, cmap, r, shown)
    batch = ImportBatch(format="semantic", source_file=str(p), images=images_out, categories=cmap.categories(),
                        proposals=proposals, warnings=warns, info={})
    return batch, root


# ---------------------------------------------------------------------- write


def class_map_for_export(categories: list[Category], used: set[str], voc: bool = False) -> ClassMap:
    """Mask values for every category: each keeps its own value when it has one and it is free."""
    names: dict[int, str] = {}
    colors: dict[int, tuple[int, int, int]] = {}
    background = void = None
    pending = []
    for c in categories:
        ex = c.extra or {}
        v = ex.get("mask_value")
        if isinstance(v, int) and 0 <= v <= 65535 and v not in names:
            names[v] = c.name
            if isinstance(ex.get("color"), list):
                colors[v] = tuple(ex["color"])
            if ex.get("background"):
                background = v
            if ex.get("void"):
                void = v
        elif c.name in used or not voc:
            pending.append(c)
    if background is None:
        bg = next((i for i, n in names.items() if n.lower() in _BACKGROUND_NAMES), None)
        if bg is None:
            # What no exported mask covers (unlabelled, rejected) needs a value of its own: 0 when free,
            # else 255 (the usual "ignore" value) when free, else the first free value. Never a real
            # class's value, or rejected pixels would become that class and the class background.
            bg = _free_background(names, voc)
            names[bg] = "background"
        background = bg
    nxt = 0
    for c in pending:
        if c.name in names.values():
            continue
        while nxt in names or nxt == 255 and voc:
            nxt += 1
        names[nxt] = c.name
    palette = voc_colormap(256)
    taken = set(colors.values())
    for i in sorted(names):
        if i not in colors:
            col = palette[i % 256] if i < 256 else ((i * 97) % 256, (i * 57) % 256, (i * 17) % 256)
            while col in taken:
                col = ((col[0] + 37) % 256, (col[1] + 91) % 256, (col[2] + 53) % 256)
            colors[i] = col
            taken.add(col)
    return ClassMap(names=names, colors=colors, background=background, void=void)


def _free_background(names: dict[int, str], voc: bool) -> int:
    """A mask value for the background that no class has: 0, else 255 (not in VOC, where 255 is the
    void border), else the lowest free value."""
    if 0 not in names:
        return 0
    if not voc and 255 not in names:
        return 255
    v = 1
    while v in names or (voc and v == 255):
        v += 1
    return v


def paint(anns, h: int, w: int, value_of: dict[str, int], background: int) -> np.ndarray:
    """The class-value image of an image's mask annotations (later annotations paint over earlier)."""
    dtype = np.uint8 if max(value_of.values(), default=0) < 256 and background < 256 else np.uint16
    out = np.full((h, w), background, dtype)
    for a in anns:
        m = decode_segmentation(a.segmentation, h, w, a.id).astype(bool)
        if m.shape != (h, w):
            continue
        out[m] = value_of[a.category]
    return out


def png_bytes(values: np.ndarray, cmap: ClassMap) -> bytes:
    import io

    buf = io.BytesIO()
    if values.dtype == np.uint8:
        im = PILImage.fromarray(values, mode="P")
        pal = []
        for i in range(256):
            pal += list(cmap.colors.get(i, (0, 0, 0)))
        im.putpalette(pal)
    else:
        im = PILImage.fromarray(values.astype(np.uint16), mode="I;16")
    im.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def mask_images(snapshot, voc: bool = False):
    """(image, [mask annotations], h, w) for each image that has or had masks, and the class map."""
    masks = [a for a in snapshot.annotations if a.kind == "mask"]
    used = {a.category for a in masks}
    cmap = class_map_for_export(snapshot.categories, used, voc=voc)
    value_of = {n: i for i, n in cmap.names.items()}
    by_image: dict[int, list] = {}
    for a in masks:
        by_image.setdefault(a.image_id, []).append(a)
    out = []
    for im in snapshot.images:
        anns = by_image.get(im.id, [])
        if not anns and not (im.extra or {}).get("mask_file"):
            continue
        h, w = im.height, im.width
        if anns and isinstance(anns[0].segmentation, dict):
            h, w = anns[0].segmentation["size"]
        if not h or not w:
            continue
        out.append((im, anns, h, w))
    return out, cmap, value_of


def write(snapshot, out: str | os.PathLike) -> dict[str, Any]:
    items, cmap, value_of = mask_images(snapshot)
    # A mask PNG says what every pixel is: what no exported mask covers is background. An image with
    # a mask not decided (pending or flagged, and not --include'd) has not been checked: written, its
    # road or person would be background, a reviewed negative (an image of which nothing was decided
    # came out all background). Such an image is left out, and counted.
    held = snapshot.held_back_masks() if snapshot.held_back_masks else {}
    undecided = sum(1 for im, _anns, _h, _w in items if held.get(im.id))
    items = [it for it in items if not held.get(it[0].id)]
    provenance = []
    names_seen: set[str] = set()
    with FolderExport(out) as fx:
        for im, anns, h, w in items:
            stem = im.file_name.rsplit(".", 1)[0]
            name = free_name(stem + ".png", names_seen,
                             lambda n, stem=stem: f"{stem}-{im.id}.png" if n == 1 else f"{stem}-{im.id}-{n}.png")
            fx.write(f"masks/{name}", png_bytes(paint(anns, h, w, value_of, cmap.background), cmap))
            for a in anns:
                provenance.append(snapshot.provenance(a, f"masks/{name}#{value_of[a.category]}"))
        meta = {"label_map": {str(i): cmap.names[i] for i in sorted(cmap.names)},
                "segmentation_colors": [list(cmap.colors[i]) for i in sorted(cmap.names)],
                "background_label": str(cmap.background)}
        fx.write("dataset_meta.json", orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        fx.write(PROVENANCE_NAME, provenance_bytes(provenance))
        fx.commit()
    skipped = sum(1 for a in snapshot.annotations if a.kind != "mask")
    res = {"file": str(out), "images": len(items), "annotations": len(provenance), "categories": len(cmap.names),
           "provenance": str(Path(out) / PROVENANCE_NAME)}
    if skipped or undecided:
        res["skipped"] = {k: v for k, v in (("not a mask", skipped), ("image with a mask not decided", undecided))
                          if v}
    return res


__all__ = ["read", "write", "ClassMap", "read_mask", "proposals_from_values", "voc_colormap", "paint",
           "png_bytes", "class_map_for_export", "mask_images"]
