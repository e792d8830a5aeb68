"""DOTA oriented boxes: ``labelTxt/`` folders of one ``.txt`` per image beside ``images/`` folders, at
the top of the dataset or one per split (``train/labelTxt`` + ``train/images``), as the DOTA dataset
ships them and Roboflow exports "YOLOv5 Oriented Bounding Boxes" (with a data.yaml naming the classes).

A label line is ``x1 y1 x2 y2 x3 y3 x4 y4 class [difficult]``: the four corners in pixels and the class
by name (not normalized, not an index: a YOLO reader finds no label file in such a dataset). DOTA
v1.0's header lines ``imagesource:...`` and ``gsd:...`` are kept with the image (extra).

Store kinds: each quadrilateral -> "polygon", with extra {"obb": true, "angle"} when it is a rectangle
(as YOLO oriented boxes: it exports as one); ``difficult`` 1 -> extra {"difficult": 1}. Classes: the
data.yaml's names in their order when there is one, then any other the files name, in order of
appearance. Shapes past the image are kept as drawn, their box clipped (or skipped if nothing of it is
inside), as other readers do.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..model import Category, ImageRecord, ImportBatch, ImportWarning, InputError, LabelreviewError, Proposal
from . import images as imgs
from .common import clip_shape_box, is_rectangle, obb_angle, parse_float, polygon_bbox, read_text

LABEL_DIR = "labelTxt"
_HEADER_KEYS = ("imagesource", "gsd")


def label_dirs(base: Path, depth: int = 3) -> list[Path]:
    """The ``labelTxt`` folders under ``base`` (itself, or up to ``depth`` levels down) holding a .txt file."""
    found = []
    for dirpath, dirnames, _ in os.walk(base):
        rel = Path(dirpath).relative_to(base)
        dirnames[:] = sorted(d for d in dirnames if not imgs.is_hidden(d) and len(rel.parts) < depth)
        if Path(dirpath).name == LABEL_DIR and any(
                n.lower().endswith(".txt") and not imgs.is_hidden(n) for n in os.listdir(dirpath)):
            found.append(Path(dirpath))
    return found


def _names(base: Path) -> tuple[list[str], str | None]:
    """The class names of the dataset's data.yaml, in order (none without one)."""
    from .yolo import _load_yaml, _yaml_names

    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (base / name).is_file():
            cfg = _load_yaml(base / name)
            got = _yaml_names(cfg, base / name, base) or {}
            return [got[i] for i in sorted(got)], name
    return [], None


def _number(tok: str, shown: str, where: str) -> float:
    v = parse_float(tok)
    if v is None:
        raise InputError(shown, where, f"{tok!r} is not a number")
    return v


def _parse(path: Path, shown: str) -> tuple[list[tuple[int, list[float], str, int]], dict[str, str]]:
    """(line number, 8 corner coordinates, class, difficult) per box, and the header's values."""
    boxes, header = [], {}
    for n, line in enumerate(read_text(path, shown).splitlines(), 1):
        toks = line.split()
        if not toks:
            continue
        if len(toks) == 1 and ":" in toks[0] and not boxes:
            key, _, value = toks[0].partition(":")
            if key in _HEADER_KEYS:
                header[f"dota_{key}"] = value
                continue
        if len(toks) not in (9, 10):
            raise InputError(shown, f"line {n}", f"expected 'x1 y1 x2 y2 x3 y3 x4 y4 class [difficult]', "
                             f"got {len(toks)} values")
        pts = [_number(t, shown, f"line {n}") for t in toks[:8]]
        difficult = 0
        if len(toks) == 10:
            if toks[9] not in ("0", "1"):
                raise InputError(shown, f"line {n}", f"difficult {toks[9]!r} is not 0 or 1")
            difficult = int(toks[9])
        boxes.append((n, pts, toks[8], difficult))
    return boxes, header


def _images_of(label_dir: Path, base: Path, image_root: Path) -> tuple[Path, dict[str, Path]]:
    """The image folder of a labelTxt folder (its sibling ``images``, else its parent), and its
    images by file stem."""
    rel = label_dir.parent.relative_to(base)
    for cand in (image_root / rel / "images", image_root / rel):
        if cand.is_dir():
            found = {}
            for q in sorted(cand.iterdir()):
                if q.is_file() and imgs.is_image_name(q.name) and not imgs.is_hidden(q.name):
                    found.setdefault(q.stem, q)
            if found:
                return cand, found
    return image_root / rel / "images", {}


def read(path: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[ImportBatch, Path]:
    p = Path(path)
    base = p.parent if p.is_file() else p
    if not base.is_dir():
        raise LabelreviewError(f"{p}: no such folder")
    if base.name == LABEL_DIR:  # the labelTxt folder itself, or a file in it: its dataset is the one above
        base = base.parent
    image_root = Path(images) if images else base
    dirs = label_dirs(base)
    if not dirs:
        raise LabelreviewError(f"{p}: no {LABEL_DIR}/ folder with .txt files in it (DOTA keeps one label file "
                               "per image there, beside images/)")
    names, names_from = _names(base)
    classes: dict[str, None] = dict.fromkeys(names)
    warns: list[ImportWarning] = []
    images_out: list[ImageRecord] = []
    proposals: list[Proposal] = []
    for ld in dirs:
        img_dir, by_stem = _images_of(ld, base, image_root)
        split = ld.parent.relative_to(base).as_posix()
        claimed = set()

        def add_image(im: Path, n_labels: int, header: dict) -> tuple[str, int, int] | None:
            """The image's record, with its size read from the file; None (said) when it cannot be read."""
            rel = im.relative_to(image_root).as_posix()
            try:
                w, h = imgs.image_size(im)
            except imgs.ImageProblem as e:
                what = f"image and its {n_labels} label(s) skipped" if n_labels else "skipped"
                warns.append(ImportWarning(rel, f"{e}; {what}", "skipped"))
                return None
            extra = {**header, **({"split": split} if split != "." else {})}
            images_out.append(ImageRecord(key=rel, file_name=rel, width=w, height=h, source_id=rel, extra=extra))
            return rel, w, h

        for lab in sorted(q for q in ld.iterdir() if q.suffix.lower() == ".txt" and not imgs.is_hidden(q.name)):
            shown = lab.relative_to(base).as_posix()
            im = by_stem.get(lab.stem)
            if im is None:
                warns.append(ImportWarning(shown, f"no image {lab.stem}.* in {img_dir}; its labels skipped",
                                           "skipped"))
                continue
            claimed.add(lab.stem)
            boxes, header = _parse(lab, shown)
            added = add_image(im, len(boxes), header)
            if added is None:
                continue
            rel, w, h = added
            for n, pts, cls, difficult in boxes:
                where = f"{shown} line {n}"
                if cls not in classes:
                    if names_from:
                        warns.append(ImportWarning(where, f"class {cls!r} is not in {names_from}'s names; added",
                                                   "repaired"))
                    classes[cls] = None
                bbox = clip_shape_box(polygon_bbox(pts), (h, w), "oriented box", where, warns)
                if bbox is None:
                    continue
                ex: dict = {"obb": True, "angle": round(obb_angle(pts), 6)} if is_rectangle(pts) else {}
                if difficult:
                    ex["difficult"] = 1
                proposals.append(Proposal(image_key=rel, category=cls, kind="polygon", bbox=bbox,
                                          segmentation=[pts], source_id=f"{shown}:{n}", extra=ex))
        for stem, im in by_stem.items():
            if stem not in claimed and add_image(im, 0, {}) is not None:
                warns.append(ImportWarning(im.relative_to(image_root).as_posix(),
                                           "no label file; image imported with no labels", "kept"))
    if not images_out:
        raise LabelreviewError(f"{p}: no images found for its label files (looked beside each {LABEL_DIR}/ "
                               f"in images/{', under --images ' + str(image_root) if images else ''}); "
                               "nothing was imported")
    cats = [Category(name=c, source_id=i if i < len(names) else None) for i, c in enumerate(classes)]
    return ImportBatch(format="dota", source_file=str(p), images=images_out, categories=cats,
                       proposals=proposals, warnings=warns, info={}), image_root


__all__ = ["read", "label_dirs"]
