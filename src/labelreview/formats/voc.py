"""Pascal VOC: Annotations/*.xml (boxes with pose, truncated, difficult, occluded, actions, parts),
SegmentationClass/*.png (semantic masks) and SegmentationObject/*.png (instance masks of the objects).

VOC boxes are 1-based inclusive pixel corners: xmin=1, xmax=W covers the whole width. In the store
(COCO pixels): x = xmin - 1, w = xmax - xmin + 1, so x + w = xmax. Export writes the reverse in whole
pixels, as the VOC devkit and its readers expect (the VOC evaluation code's ``parse_rec`` reads each
corner with ``int()``, which refuses "5.5"): a box from another format with corners between pixels is
rounded (one under a pixel, or of zero size, becomes the pixel its centre is in), and the export
counts them. A VOC file that itself gave a corner between pixels (Datumaro and CVAT write such
floats) is written back with the numbers it had, so that a VOC import, export and import again gives
the very same boxes. Child order inside ``<bndbox>`` does not matter (Roboflow writes
xmin, xmax, ymin, ymax). Parts are reviewable boxes of their own, tied to their object.
Also read: a folder of XML files with the images beside them (Roboflow, LabelImg), or one XML file.
The export's labelmap.txt (Datumaro's ``name:r,g,b:parts:actions``) declares every class it uses.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from ..model import Category, ImageRecord, ImportBatch, ImportWarning, InputError, LabelreviewError, Proposal
from . import images as imgs
from . import semantic
from .common import (PROVENANCE_NAME, FolderExport, decode_segmentation, encode_mask, fmt_num, free_name,
                     parse_xml, provenance_bytes, read_text)

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]
#: The largest side a picture may have (an SQLite integer holds it; no image file is anywhere near).
_MAX_SIDE = 2**31 - 1
_FLAGS = ("truncated", "difficult", "occluded")
#: An object's (or part's) extra key: the corners its <bndbox> gave [xmin, ymin, xmax, ymax], kept
#: (never exported elsewhere) when one is not a whole pixel, for the VOC export to write them back.
SUBPIXEL = "_labelreview_voc_bndbox"


def default_class_map() -> semantic.ClassMap:
    pal = semantic.voc_colormap(256)
    names = {i: n for i, n in enumerate(VOC_CLASSES)}
    names[255] = "void"
    return semantic.ClassMap(names=names, colors={i: pal[i] for i in names}, background=0, void=255)


def read_labelmap(path: Path) -> semantic.ClassMap:
    """Datumaro's labelmap.txt: ``name:r,g,b:parts:actions`` per line, value = line order."""
    names, colors = {}, {}
    idx = 0
    for n, line in enumerate(read_text(path, f"{path.parent.name}/{path.name}").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        name = name.strip()
        if not name:
            raise InputError(str(path), f"line {n}", "empty class name")
        col = rest.split(":", 1)[0].strip()
        if col:
            try:
                rgb = tuple(int(v) for v in col.split(","))
            except ValueError:
                raise InputError(str(path), f"line {n}", f"colour {col!r} is not r,g,b") from None
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise InputError(str(path), f"line {n}", f"colour {col!r} is not r,g,b")
            colors[idx] = rgb
        names[idx] = name
        idx += 1
    void = None
    for i, nm in list(names.items()):
        if nm.lower() in ("ignored", "void") and colors.get(i) == (224, 224, 192):
            # VOC's void border is value 255 in palette PNGs; datumaro lists it as a class
            void = i
    pal = semantic.voc_colormap(256)
    for i in names:
        colors.setdefault(i, pal[i])
    bg = next((i for i, nm in names.items() if nm.lower() in ("background", "_background_")), 0)
    return semantic.ClassMap(names=names, colors=colors, background=bg, void=void)


def _text(el: ET.Element | None, tag: str) -> str | None:
    if el is None:
        return None
    c = el.find(tag)
    if c is None or c.text is None:
        return None
    return c.text.strip()


def _num(s: str | None) -> float | None:
    if s is None:
        return None
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _flag(s: str | None) -> int | str | None:
    if s is None or s == "":
        return None
    low = s.lower()
    if low in ("1", "true", "yes"):
        return 1
    if low in ("0", "false", "no"):
        return 0
    i = _int(s)
    if i is not None:
        return i
    v = _num(s)
    return int(v) if v is not None and v == int(v) and abs(v) < 2**53 else s


def _int(s: str) -> int | None:
    """``s`` as an integer when it is written as one the store can hold (an SQLite integer): one
    beyond is kept as its text, never rounded through a float."""
    t = s.strip()
    if re.fullmatch(r"-?[0-9]+", t):
        i = int(t)
        if -2**63 <= i < 2**63:
            return i
    return None


def _value(s: str | None) -> Any:
    if s is None:
        return None
    i = _int(s)
    if i is not None:
        return i
    v = _num(s)
    if v is not None and re.fullmatch(r"-?[0-9]*\.[0-9]*", s.strip()) and s.strip().strip("-.") != "":
        return v
    return s


def _parse_xml(path: Path, shown: str) -> ET.Element:
    root = parse_xml(path, shown)
    if root.tag != "annotation":
        raise InputError(shown, f"<{root.tag}>", "not a Pascal VOC annotation (the root must be <annotation>)")
    return root


def _box(el: ET.Element, shown: str, where: str) -> tuple[list[float], list[float]]:
    """The box in COCO pixels, and the corners as the file gave them."""
    bb = el.find("bndbox")
    if bb is None:
        raise InputError(shown, where, "no <bndbox>")
    vals = {}
    for k in ("xmin", "ymin", "xmax", "ymax"):
        t = _text(bb, k)
        if t is None:
            raise InputError(shown, where, f"<bndbox> has no <{k}>")
        v = _num(t)
        if v is None:
            raise InputError(shown, where, f"<{k}> {t!r} is not a number")
        vals[k] = v
    if vals["xmax"] < vals["xmin"] or vals["ymax"] < vals["ymin"]:
        raise InputError(shown, where, f"corners reversed (xmin {vals['xmin']:g}, xmax {vals['xmax']:g}, "
                         f"ymin {vals['ymin']:g}, ymax {vals['ymax']:g})")
    corners = [vals["xmin"], vals["ymin"], vals["xmax"], vals["ymax"]]
    return _coco_box(corners), corners


def _coco_box(corners: list[float]) -> list[float]:
    """1-based inclusive corners -> COCO pixels [x, y, w, h]."""
    xmin, ymin, xmax, ymax = corners
    return [xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]


def _subpixel(corners: list[float]) -> dict[str, Any]:
    """The extra that keeps a box's corners when one lies between pixels (nothing when all are whole)."""
    return {} if all(float(c).is_integer() for c in corners) else {SUBPIXEL: corners}


def _find_image(xml: Path, root: Path, vocroot: Path | None, filename: str | None, rel_path: str | None,
                by_stem: dict[str, str]) -> str | None:
    """The image's path relative to ``root``, or None."""
    cands = []
    if rel_path and not os.path.isabs(rel_path) and not rel_path.startswith(".."):
        cands.append(root / rel_path)
    if filename:
        if vocroot is not None:
            cands.append(vocroot / "JPEGImages" / filename)
        cands += [xml.parent / filename, root / filename]
    for c in cands:
        if c.is_file():
            r = imgs.rel_posix(c, root)
            if not r.startswith(".."):
                return r
    return by_stem.get(xml.stem)


def read(path: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[ImportBatch, Path]:
    p = Path(path)
    if not p.exists():
        raise LabelreviewError(f"{p}: no such file or folder")
    vocroot = None
    # Hidden files (names starting with '.') in the folders walked are skipped and said: a macOS
    # AppleDouble '._a.xml' beside every annotation file copied from a Mac is no XML at all.
    hidden: list[str] = []  # as shown: relative to the dataset's folder
    if p.is_file():
        xmls = [p]
        base = p.parent
        if base.name == "Annotations":
            vocroot = base.parent
    elif (p / "Annotations").is_dir():
        vocroot = p
        base = p / "Annotations"
        xmls = []
        for q in sorted(base.glob("*.xml")):  # (pathlib's glob does match hidden names)
            if imgs.is_hidden(q.name):
                hidden.append(f"Annotations/{q.name}")
            else:
                xmls.append(q)
    else:
        base = p
        met: list[str] = []
        xmls = [p / r for r in imgs.walk_files(p, met) if r.lower().endswith(".xml")]
        hidden += [r for r in met if r.lower().endswith(".xml")]
    shown_root = vocroot if vocroot is not None else (p if p.is_dir() else p.parent)
    root = Path(images) if images else shown_root
    # images by stem, to find one whose <filename> is wrong
    image_dir = vocroot / "JPEGImages" if vocroot is not None and (vocroot / "JPEGImages").is_dir() else None
    by_stem: dict[str, str] = {}
    all_images: list[str] = []
    for d in [image_dir] if image_dir is not None else ([p] if p.is_dir() else []):
        met = []
        for r in imgs.walk_files(d, met):
            if imgs.is_image_name(r):
                rel = imgs.rel_posix(d / r, root)
                all_images.append(rel)
                by_stem.setdefault(r.rsplit(".", 1)[0].rsplit("/", 1)[-1], rel)
        hidden += [imgs.rel_posix(d / r, shown_root) for r in met if imgs.is_image_name(r)]
    cmap = None
    if vocroot is not None and (vocroot / "labelmap.txt").is_file():
        cmap = read_labelmap(vocroot / "labelmap.txt")
    warns: list[ImportWarning] = []
    images_out: list[ImageRecord] = []
    proposals: list[Proposal] = []
    cat_names: dict[str, None] = {}
    part_names: set[str] = set()
    objects_of: dict[str, list[Proposal]] = {}
    used_images: set[str] = set()
    for xml in xmls:
        shown = imgs.rel_posix(xml, p if p.is_dir() else p.parent)
        ann = _parse_xml(xml, shown)
        filename = _text(ann, "filename")
        path_el = _text(ann, "path")
        rel = _find_image(xml, root, vocroot, filename, path_el, by_stem)
        if rel is None:  # the image is not there: name it where it should be (the store reports it missing)
            fn = filename or xml.stem + ".jpg"
            if path_el and not os.path.isabs(path_el) and not path_el.startswith(".."):
                rel = path_el.replace("\\", "/")
            elif images:
                rel = fn
            else:
                rel = imgs.rel_posix((vocroot / "JPEGImages" if vocroot is not None else xml.parent) / fn, root)
        elif filename and os.path.basename(rel) != filename:
            warns.append(ImportWarning(shown, f"<filename> {filename!r} does not match the image; "
                                       f"read as {rel}", "repaired"))
        if rel in used_images:
            warns.append(ImportWarning(shown, f"a second annotation file for {rel}; skipped", "skipped"))
            continue
        used_images.add(rel)
        size = ann.find("size")
        w, h = _num(_text(size, "width")), _num(_text(size, "height"))
        if w is not None and h is not None and (w <= 0 or h <= 0 or w != int(w) or h != int(h)
                                                or w > _MAX_SIDE or h > _MAX_SIDE):
            warns.append(ImportWarning(shown, f"<size> {w:g}x{h:g} is not a size; read from the image", "repaired"))
            w = h = None
        w = int(w) if w is not None and h is not None else None
        h = int(h) if w is not None and h is not None else None
        if w is None and (root / rel).is_file():
            # no <size> (LabelImg leaves it out, so does Datumaro for an empty file): the image's own
            # size, so that a box reaching outside it is clipped, or skipped, as with one
            try:
                w, h = imgs.image_size(root / rel)
            except imgs.ImageProblem:
                pass  # the store reports the image's problem
        extra: dict[str, Any] = {}
        for k in ("folder", "segmented"):
            t = _text(ann, k)
            if t:
                extra[k] = _value(t)
        src = ann.find("source")
        if src is not None:
            extra["source"] = {c.tag: (c.text or "").strip() for c in src}
        images_out.append(ImageRecord(key=rel, file_name=rel, width=w, height=h, source_id=xml.stem, extra=extra))
        objs = objects_of.setdefault(rel, [])
        for i, obj in enumerate(ann.findall("object")):
            where = f"object[{i}]"
            name = _text(obj, "name")
            if not name:
                raise InputError(shown, where, "no <name>")
            where = f"object[{i}] ({name})"
            bbox, corners = _box(obj, shown, where)
            oextra: dict[str, Any] = _subpixel(corners)
            pose = _text(obj, "pose")
            if pose is not None:
                oextra["pose"] = pose
            for k in _FLAGS:
                v = _flag(_text(obj, k))
                if v is not None:
                    oextra[k] = v
            acts = obj.find("actions")
            if acts is not None:
                oextra["actions"] = {c.tag: _flag((c.text or "").strip()) for c in acts}
            attrs = obj.find("attributes")
            if attrs is not None:
                oextra["attributes"] = {(_text(a, "name") or ""): _value(_text(a, "value")) for a in attrs}
            sid = f"{xml.stem}#{i}"
            cat_names.setdefault(name)
            score = _num(_text(obj, "score"))
            prop = Proposal(image_key=rel, category=name, kind="bbox", bbox=bbox, source_id=sid, extra=oextra,
                            score=score)
            if w and h and not _clip(prop, w, h, shown, where, warns):
                objs.append(None)  # SegmentationObject value i + 1 is still object i
            else:
                proposals.append(prop)
                objs.append(prop)
            for j, part in enumerate(obj.findall("part")):
                pname = _text(part, "name")
                pwhere = f"{where} part[{j}]"
                if not pname:
                    raise InputError(shown, pwhere, "no <name>")
                pb, pcorners = _box(part, shown, pwhere)
                part_names.add(pname)
                cat_names.setdefault(pname)
                pp = Proposal(image_key=rel, category=pname, kind="bbox", bbox=pb, source_id=f"{sid}.{j}",
                              extra={"voc_part_of": sid, **_subpixel(pcorners)})
                if not (w and h) or _clip(pp, w, h, shown, pwhere, warns):
                    proposals.append(pp)
    # segmentation
    if vocroot is not None and ((vocroot / "SegmentationClass").is_dir() or (vocroot / "SegmentationObject").is_dir()):
        cmap = cmap or default_class_map()
        proposals += _read_segmentation(vocroot, root, cmap, images_out, objects_of, by_stem, warns, hidden)
        for n in cmap.names.values():
            cat_names.setdefault(n)
    if image_dir is not None:
        for rel in all_images:
            if rel not in used_images and not any(im.key == rel for im in images_out):
                warns.append(ImportWarning(rel, "image with no annotation file; imported with no labels", "kept"))
                images_out.append(ImageRecord(key=rel, file_name=rel, source_id=rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]))
    named = {os.path.realpath(root / im.file_name) for im in images_out}  # an image an XML names is read
    warns += imgs.hidden_warnings([(h, "; rename it to import it") for h in hidden
                                   if os.path.realpath(shown_root / h) not in named], p.name)
    cats = []
    if cmap is not None:
        cats = cmap.categories()
    have = {c.name for c in cats}
    for n in cat_names:
        if n not in have:
            cats.append(Category(name=n, extra={"voc_part": True} if n in part_names else {}))
    if not xmls and not proposals:
        raise LabelreviewError(f"{p}: no VOC annotation files (Annotations/*.xml) found")
    batch = ImportBatch(format="voc", source_file=str(p), images=images_out, categories=cats, proposals=proposals,
                        warnings=warns, info={})
    return batch, root


def _clip(prop: Proposal, w: int, h: int, shown: str, where: str, warns: list[ImportWarning]) -> bool:
    """Clip the box to the image; False (and a warning) when nothing of it is inside: skip it."""
    x, y, bw, bh = prop.bbox
    x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)
    if (x0, y0, x1, y1) != (x, y, x + bw, y + bh):
        if x1 <= x0 or y1 <= y0:  # a VOC box covers at least one pixel: none of them is in the image
            warns.append(ImportWarning(f"{shown} {where}", f"box lies outside the {w}x{h} image", "skipped"))
            return False
        warns.append(ImportWarning(f"{shown} {where}", f"box reaches outside the {w}x{h} image; clipped", "repaired"))
        prop.bbox = [x0, y0, x1 - x0, y1 - y0]
    return True


def _read_segmentation(vocroot: Path, root: Path, cmap: semantic.ClassMap, images_out: list[ImageRecord],
                       objects_of: dict[str, list[Proposal]], by_stem: dict[str, str],
                       warns: list[ImportWarning], hidden: list[str]) -> list[Proposal]:
    out: list[Proposal] = []
    rec_of = {im.key: im for im in images_out}
    rec_by_stem = {im.key.rsplit("/", 1)[-1].rsplit(".", 1)[0]: im for im in images_out}
    cls_dir, obj_dir = vocroot / "SegmentationClass", vocroot / "SegmentationObject"
    met: list[str] = []
    if cls_dir.is_dir():
        for r in imgs.walk_files(cls_dir, met):
            if not r.lower().endswith(".png"):
                continue
            stem = r.rsplit(".", 1)[0]
            shown = f"SegmentationClass/{r}"
            im = rec_by_stem.get(stem)
            if im is None:
                rel = by_stem.get(stem)
                if rel is None:
                    warns.append(ImportWarning(shown, "mask with no image; skipped", "skipped"))
                    continue
                im = ImageRecord(key=rel, file_name=rel, source_id=stem)
                images_out.append(im)
                rec_of[rel] = rec_by_stem[stem] = im
            values = semantic.read_mask(cls_dir / r, cmap, shown)
            if not _size_ok(im, values.shape, root, shown, warns):
                continue
            im.extra = {**(im.extra or {}), "mask_file": shown}
            props = semantic.proposals_from_values(values, cmap, im.key, shown)
            out += props
        hidden += [f"SegmentationClass/{r}" for r in met if r.lower().endswith(".png")]
    if obj_dir.is_dir():
        met = []
        for r in imgs.walk_files(obj_dir, met):
            if not r.lower().endswith(".png"):
                continue
            stem = r.rsplit(".", 1)[0]
            shown = f"SegmentationObject/{r}"
            im = rec_by_stem.get(stem)
            if im is None:
                warns.append(ImportWarning(shown, "instance mask with no annotation file; skipped", "skipped"))
                continue
            values = _instance_values(obj_dir / r, shown)
            if not _size_ok(im, values.shape, root, shown, warns):
                continue
            objs = objects_of.get(im.key, [])
            for v in np.unique(values):
                v = int(v)
                if v == 0 or v == 255:
                    continue
                if v > len(objs):
                    warns.append(ImportWarning(shown, f"instance {v} has no <object> (the file has {len(objs)}); "
                                               "dropped", "skipped"))
                    continue
                o = objs[v - 1]
                if o is None:
                    continue  # an object outside the image, skipped
                o.segmentation = encode_mask(values == v)
                o.kind = "rle"
                o.area = float((values == v).sum())
        hidden += [f"SegmentationObject/{r}" for r in met if r.lower().endswith(".png")]
    return out


def _instance_values(path: Path, shown: str) -> np.ndarray:
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            if im.mode in ("P", "L"):
                return np.asarray(im).astype(np.int32)
            rgb = np.asarray(im.convert("RGB")).astype(np.int32)
    except Exception as e:
        raise InputError(shown, "", f"unreadable mask image ({e})") from None
    pal = semantic.voc_colormap(256)
    lut = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(pal)}
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    uniq, inv = np.unique(packed, return_inverse=True)
    vals = []
    for u in uniq:
        i = lut.get(int(u))
        if i is None:
            raise InputError(shown, "", f"colour {(int(u) >> 16 & 255, int(u) >> 8 & 255, int(u) & 255)} is not a VOC palette colour")
        vals.append(i)
    return np.asarray(vals, np.int32)[inv].reshape(packed.shape)


def _size_ok(im: ImageRecord, shape, root: Path, shown: str, warns) -> bool:
    h, w = shape
    if im.width is None:
        try:
            im.width, im.height = imgs.image_size(root / im.file_name)
        except imgs.ImageProblem:
            im.width, im.height = w, h
    if (im.width, im.height) != (w, h):
        warns.append(ImportWarning(shown, f"mask is {w}x{h} but the image is {im.width}x{im.height}; skipped",
                                   "skipped"))
        return False
    return True


# ---------------------------------------------------------------------- write


def write(snapshot, out: str | os.PathLike) -> dict[str, Any]:
    anns = snapshot.annotations
    by_image: dict[int, list] = {}
    for a in anns:
        by_image.setdefault(a.image_id, []).append(a)
    mask_items, cmap, value_of = semantic.mask_images(snapshot, voc=True)
    masks_of = {im.id: (m, h, w) for im, m, h, w in mask_items}
    provenance = []
    skipped: dict[str, int] = {}
    # A class mask paints what no exported mask covers as background: with a mask of the image not
    # decided (pending or flagged, not --include'd) that would be a negative nobody reviewed, so the
    # image's class mask is left out (as the semantic export leaves the image out), and counted.
    held = snapshot.held_back_masks() if snapshot.held_back_masks else {}
    for im_id in [i for i in masks_of if held.get(i)]:
        del masks_of[im_id]
        skipped["class mask of an image with a mask not decided"] = \
            skipped.get("class mask of an image with a mask not decided", 0) + 1
    stems: set[str] = set()
    splits: dict[str, list[str]] = {}
    object_classes: dict[str, None] = {}  # classes of the exported <object>s, in the order met
    parts_of: dict[str, dict[str, None]] = {}  # object class -> classes of its exported <part>s
    actions_of: dict[str, dict[str, None]] = {}  # object class -> its exported <actions>
    rounded = [0]  # boxes from another format with corners between pixels, written in whole pixels
    with FolderExport(out) as fx:
        for im in snapshot.images:
            base = im.file_name.rsplit("/", 1)[-1]
            stem = base.rsplit(".", 1)[0]
            stem = free_name(stem, stems, lambda n, stem=stem: f"{stem}-{im.id}" if n == 1 else f"{stem}-{im.id}-{n}")
            objs = [a for a in by_image.get(im.id, ()) if a.kind != "mask" and a.kind != "label"
                    and a.bbox is not None and not (a.extra or {}).get("voc_part_of")]
            skipped_here = [a for a in by_image.get(im.id, ()) if a.kind == "label" or (a.bbox is None and a.kind != "mask")]
            for a in skipped_here:
                skipped["no box"] = skipped.get("no box", 0) + 1
            # A part names its object by the object's id in the imported file, which is unique only
            # within that import: two imports of the same image (two models) reuse the same ids.
            parts: dict[tuple[str, Any], list] = {}
            for a in by_image.get(im.id, ()):
                po = (a.extra or {}).get("voc_part_of")
                if po is not None and a.bbox is not None:
                    parts.setdefault((a.import_id, po), []).append(a)
            exported_sids = {(a.import_id, a.source_id) for a in objs}
            for po, plist in parts.items():
                if po not in exported_sids:
                    skipped["part of an object not exported"] = skipped.get("part of an object not exported", 0) + len(plist)
            ex = im.extra or {}
            lines = ["<annotation>", f"  <folder>{_esc(str(ex.get('folder', '')))}</folder>",
                     f"  <filename>{_esc(base)}</filename>", f"  <path>{_esc(im.file_name)}</path>"]
            if isinstance(ex.get("source"), dict):
                lines.append("  <source>")
                lines += [f"    <{k}>{_esc(str(v))}</{k}>" for k, v in ex["source"].items() if _tag_ok(k)]
                lines.append("  </source>")
            if im.width and im.height:
                lines += ["  <size>", f"    <width>{im.width}</width>", f"    <height>{im.height}</height>",
                          "    <depth>3</depth>", "  </size>"]
            has_mask = im.id in masks_of
            lines.append(f"  <segmented>{1 if has_mask else 0}</segmented>")
            inst = []
            for k, a in enumerate(objs):
                own = parts.get((a.import_id, a.source_id), [])
                lines += _object_xml(a, own, im.width, im.height, rounded)
                object_classes.setdefault(a.category)
                for pa in own:
                    parts_of.setdefault(a.category, {}).setdefault(pa.category)
                if isinstance((a.extra or {}).get("actions"), dict):
                    for act in a.extra["actions"]:
                        if _tag_ok(act):
                            actions_of.setdefault(a.category, {}).setdefault(act)
                provenance.append(snapshot.provenance(a, f"Annotations/{stem}.xml#object[{k}]"))
                for j, pa in enumerate(own):
                    provenance.append(snapshot.provenance(pa, f"Annotations/{stem}.xml#object[{k}].part[{j}]"))
                if isinstance(a.segmentation, (dict, list)) and a.kind in ("rle", "polygon") and im.width and im.height:
                    inst.append((k + 1, a))
            lines.append("</annotation>")
            fx.write(f"Annotations/{stem}.xml", "\n".join(lines) + "\n")
            splits.setdefault(str(ex.get("split") or "trainval"), []).append(stem)
            if has_mask:
                m, h, w = masks_of[im.id]
                values = semantic.paint(m, h, w, value_of, cmap.background)
                fx.write(f"SegmentationClass/{stem}.png", semantic.png_bytes(values, cmap))
                for a in m:
                    provenance.append(snapshot.provenance(a, f"SegmentationClass/{stem}.png#{value_of[a.category]}"))
            if inst:
                h, w = im.height, im.width
                values = np.zeros((h, w), np.uint8)
                for v, a in inst:
                    mm = decode_segmentation(a.segmentation, h, w, a.id).astype(bool)
                    if mm.shape == (h, w):
                        values[mm] = v
                pal = semantic.ClassMap(names={}, colors=dict(enumerate(semantic.voc_colormap(256))))
                fx.write(f"SegmentationObject/{stem}.png", semantic.png_bytes(values, pal))
        for split, stems_ in splits.items():
            fx.write(f"ImageSets/Main/{split}.txt", "".join(s + "\n" for s in stems_))
        order = {c.name: i for i, c in enumerate(snapshot.categories)}
        fx.write("labelmap.txt", _labelmap(cmap, sorted(object_classes, key=lambda n: (order.get(n, len(order)), n)),
                                           parts_of, actions_of))
        fx.write(PROVENANCE_NAME, provenance_bytes(provenance))
        fx.commit()
    res = {"file": str(out), "images": len(snapshot.images), "annotations": len(provenance),
           "categories": len(snapshot.categories), "provenance": str(Path(out) / PROVENANCE_NAME)}
    if skipped:
        res["skipped"] = skipped
    if rounded[0]:
        res["rounded"] = {"box with corners between pixels, written in whole pixels": rounded[0]}
    return res


def _labelmap(cmap: semantic.ClassMap, object_classes: list[str], parts_of: dict[str, dict[str, None]],
              actions_of: dict[str, dict[str, None]]) -> str:
    """labelmap.txt (Datumaro's ``name:r,g,b:parts:actions``) declaring every class the export uses.

    Line i is mask value i (the mask classes keep their values; gaps are filled with ``unused-i``).
    Datumaro's VOC reader knows only the classes of this file (an <object> or <part> of any other
    class is an UndeclaredLabelError), so each exported object's class has a line too, at a free
    value, with a colour no other line has. A part's class is listed in the parts column of the
    classes whose objects have it, as VOC lists head, hand and foot for person; Datumaro adds those
    as classes after the lines, so a class that has a line of its own (an object class too) is not
    repeated there: Datumaro refuses a class declared twice. The actions column lists the actions
    written for the class's objects.
    """
    rows: dict[int, list] = {i: [n, cmap.colors.get(i)] for i, n in cmap.names.items()}
    have = {n for n, _ in rows.values()}
    nxt = 0
    for n in object_classes:
        if n in have:
            continue
        while nxt in rows or nxt == 255:  # 255: VOC's void border, never a class of its own here
            nxt += 1
        rows[nxt] = [n, None]
        have.add(n)
    for i in range(max(rows, default=-1) + 1):
        rows.setdefault(i, [f"unused-{i}", None])
    palette = semantic.voc_colormap(256)
    taken = {tuple(c) for _, c in rows.values() if c is not None}
    for i in sorted(rows):
        if rows[i][1] is None:
            col = palette[i] if i < 256 else ((i * 97) % 256, (i * 57) % 256, (i * 17) % 256)
            while col in taken:
                col = ((col[0] + 37) % 256, (col[1] + 91) % 256, (col[2] + 53) % 256)
            rows[i][1] = col
            taken.add(col)
    lines = ["# label:color_rgb:parts:actions"]
    for i in sorted(rows):
        name, (r, g, b) = rows[i]
        parts = [p for p in parts_of.get(name, ()) if p not in have]
        actions = list(actions_of.get(name, ()))
        # ':' separates the fields and ',' the entries of a list; a line starting with '#' is a comment
        bad = [(what, v) for what, v, seps in [("class", name, ":\n\r")]
               + [("part class", p, ":,\n\r") for p in parts] + [("action", a, ":,\n\r") for a in actions]
               if not v or v != v.strip() or any(ch in seps for ch in v) or (what == "class" and v[0] == "#")]
        if bad:
            what, v = bad[0]
            raise LabelreviewError(f"{what} {v!r} cannot be written to the VOC labelmap.txt (empty, spaces "
                                   "around it, a leading '#', or a ':' or ','); relabel it, or export "
                                   "another format (nothing was written)")
        lines.append(f"{name}:{r},{g},{b}:{','.join(parts)}:{','.join(actions)}")
    return "\n".join(lines) + "\n"


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _esc(text: str) -> str:
    """``text`` escaped for XML, or a clear error: XML 1.0 cannot hold control characters at all (not
    even as &#1;), and a file holding one is refused by every reader, labelreview's own included."""
    if _NOT_XML.search(text):
        raise LabelreviewError(f"{text!r} holds a control character, which VOC XML cannot hold; relabel or "
                               "rename it, or export another format (nothing was written)")
    return escape(text)


def _tag_ok(k: str) -> bool:
    return bool(k) and (k[0].isalpha() or k[0] == "_") and all(c.isalnum() or c in "_-." for c in k)


def _span(lo: float, size: float, limit: int | None) -> tuple[int, int]:
    """COCO pixels [lo, lo + size) -> 1-based inclusive whole-pixel corners, at least one pixel: a box
    under a pixel (or of zero size) rounds to reversed corners, so it becomes the pixel its centre is in."""
    a, b = int(round(lo + 1)), int(round(lo + size))
    if b < a:
        p = math.floor(lo + size / 2)
        if limit:
            p = min(max(p, 0), limit - 1)
        a = b = p + 1
    return a, b


def _whole(v: float) -> bool:
    return abs(v - round(v)) <= 1e-6


def _number(v: float) -> str:
    """A corner as the shortest text that reads back as this very float ('6', '5.5')."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _bndbox(a, indent: str, W: int | None = None, H: int | None = None, rounded: list[int] | None = None) -> list[str]:
    x, y, w, h = a.bbox
    corners = (a.extra or {}).get(SUBPIXEL)
    if isinstance(corners, list) and len(corners) == 4 and _coco_box(corners) == list(a.bbox):
        # the VOC file's own corners, between pixels: written back as they were
        xmin, ymin, xmax, ymax = (_number(c) for c in corners)
    elif isinstance(corners, list):
        # such a box clipped to its image on import: the clipped edges whole, the others as they were
        xmin, ymin, xmax, ymax = (_number(round(c, 9)) for c in (x + 1, y + 1, x + w, y + h))
    else:
        # COCO pixels -> 1-based inclusive whole-pixel corners
        xmin, xmax = _span(x, w, W)
        ymin, ymax = _span(y, h, H)
        if rounded is not None and not all(_whole(c) for c in (x, y, x + w, y + h)):
            rounded[0] += 1
    return [f"{indent}<bndbox>", f"{indent}  <xmin>{xmin}</xmin>", f"{indent}  <ymin>{ymin}</ymin>",
            f"{indent}  <xmax>{xmax}</xmax>", f"{indent}  <ymax>{ymax}</ymax>", f"{indent}</bndbox>"]


def _object_xml(a, parts: list, W: int | None = None, H: int | None = None,
                rounded: list[int] | None = None) -> list[str]:
    ex = a.extra or {}
    out = ["  <object>", f"    <name>{_esc(a.category)}</name>"]
    if "pose" in ex:
        out.append(f"    <pose>{_esc(str(ex['pose']))}</pose>")
    for k in _FLAGS:
        if k in ex:
            out.append(f"    <{k}>{_esc(str(ex[k]))}</{k}>")
    out += _bndbox(a, "    ", W, H, rounded)
    for p in parts:
        out += (["    <part>", f"      <name>{_esc(p.category)}</name>"] + _bndbox(p, "      ", W, H, rounded)
                + ["    </part>"])
    if isinstance(ex.get("actions"), dict):
        out.append("    <actions>")
        out += [f"      <{k}>{_esc(str(v))}</{k}>" for k, v in ex["actions"].items() if _tag_ok(k)]
        out.append("    </actions>")
    if isinstance(ex.get("attributes"), dict):
        out.append("    <attributes>")
        for k, v in ex["attributes"].items():
            out.append(f"      <attribute><name>{_esc(str(k))}</name><value>{_esc(str(v))}</value></attribute>")
        out.append("    </attributes>")
    if a.score is not None:
        out.append(f"    <score>{fmt_num(a.score, 6)}</score>")
    out.append("  </object>")
    return out


__all__ = ["read", "write", "VOC_CLASSES", "default_class_map", "read_labelmap"]
