"""YOLO text labels: Ultralytics (data.yaml) and Darknet (obj.data / obj.names) layouts, or a plain
folder of label files; detection (+ a confidence column in prediction files), segmentation polygons,
pose keypoints and oriented boxes.

A label line is ``class x y ...`` with coordinates normalized to the image's size, so every image's
size is read from its header (EXIF orientation applied, as Ultralytics does). The store holds pixels:

- box ``cls cx cy w h [conf]`` -> kind "bbox", [x, y, w, h]
- polygon ``cls x1 y1 ... xn yn [conf]`` (n >= 3) -> kind "polygon"
- oriented box ``cls x1 y1 x2 y2 x3 y3 x4 y4 [conf]`` -> kind "polygon" with extra {"obb": true, "angle"}
- pose ``cls cx cy w h (px py [pv]) * k [conf]`` (data.yaml ``kpt_shape: [k, 2|3]``) -> kind "keypoints"

Which task a dataset is: ``kpt_shape`` means pose; lines of 8 coordinates that are all rectangles in
pixels mean oriented boxes; other long lines are polygons. ``yolo-detect|seg|pose|obb`` force it.
The image that a label file belongs to follows Ultralytics' rule (the last ``images`` folder of the
image's path becomes ``labels``, the extension ``.txt``), then Darknet's (beside the image). With
``images`` given (``--images``, e.g. re-importing an export, which holds labels only), images come
from there and labels only from the dataset imported, at the image's path relative to the image root
(``images/train/a.jpg`` -> ``labels/train/a.txt``); label files beside those images belong to another
dataset and are never read, and the data.yaml's split folders are looked for in the image root first.
An export's data.yaml names the folders where Ultralytics must find the images inside the export
(``image_rel_in_export``); it has no ``path``, so everything is relative to the data.yaml's folder.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..model import Category, ImageRecord, ImportBatch, ImportWarning, InputError, LabelreviewError, Proposal
from . import images as imgs
from .common import (PROVENANCE_NAME, FolderExport, clip_keypoint, clip_polygon, clip_rotated_box,
                     clip_shape_box, fmt_num, is_rectangle, obb_angle, parse_float, polygon_bbox, read_text)

TASKS = ("detect", "segment", "pose", "obb")
FORMATS = {"yolo": None, "yolo-detect": "detect", "yolo-seg": "segment", "yolo-segment": "segment",
           "yolo-pose": "pose", "yolo-obb": "obb"}
_FORMAT_OF_TASK = {"detect": "yolo", "segment": "yolo-seg", "pose": "yolo-pose", "obb": "yolo-obb"}
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
#: Text files at the top of a folder that are not label files.
_NOT_LABELS = {"classes.txt", "obj.names", "names.txt", "train.txt", "val.txt", "valid.txt", "test.txt",
               "trainval.txt", "labels.txt", "notes.txt", "license.txt", "licence.txt"}
_NAMES_FILES = ("classes.txt", "obj.names", "names.txt", "coco.names")
#: Normalized values beyond these are not a slightly-outside box but pixels or garbage.
_LO, _HI = -0.5, 1.5


@dataclass
class Layout:
    kind: str  # "ultralytics" | "darknet" | "folder"
    config: Path | None  # data.yaml / obj.data
    base: Path  # where the dataset's relative paths start
    label_root: Path  # where label files are looked for when they are not beside the images
    image_root: Path  # what image file names are relative to
    names: dict[int, str] | None = None
    names_from: str = ""
    kpt_shape: tuple[int, int] | None = None
    kpt_names: list[str] | None = None
    flip_idx: list[int] | None = None
    images: list[tuple[str, Path]] = field(default_factory=list)  # (split, image path)
    warnings: list[ImportWarning] = field(default_factory=list)
    #: The images come from elsewhere (``--images``): labels are read from this dataset only, never
    #: from beside the images (those belong to the dataset the images came from).
    images_elsewhere: bool = False
    #: Hidden image and label files met in the folders read, skipped (as Ultralytics skips them).
    hidden: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------------- layout


def _load_yaml(path: Path) -> dict:
    import yaml

    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise InputError(str(path), where, f"not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        raise InputError(str(path), "", "expected a YAML mapping (path, train, val, names ...)")
    return data


def _names_from_list(lines: list[str]) -> dict[int, str]:
    return {i: n for i, n in enumerate(x.strip() for x in lines) if n}


def _read_names_file(path: Path) -> dict[int, str]:
    text = read_text(path)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    out = {}
    for i, line in enumerate(lines):
        name = line.strip()
        if not name:
            raise InputError(str(path), f"line {i + 1}", "empty class name (a class's index is its line)")
        out[i] = name
    return out


def _yaml_names(cfg: dict, path: Path, base: Path) -> dict[int, str] | None:
    names = cfg.get("names")
    if names is None:
        return None
    if isinstance(names, list):
        out = {}
        for i, n in enumerate(names):
            if not isinstance(n, (str, int, float)) or isinstance(n, bool) or str(n).strip() == "":
                raise InputError(str(path), f"names[{i}]", f"class name {n!r} is not a name")
            out[i] = str(n).strip()
    elif isinstance(names, dict):
        out = {}
        for k, n in names.items():
            try:
                i = int(k)
            except (TypeError, ValueError):
                raise InputError(str(path), f"names: {k!r}", "class index must be an integer") from None
            if i < 0 or i != k and str(i) != str(k).strip():
                raise InputError(str(path), f"names: {k!r}", "class index must be a non-negative integer")
            if i > _MAX_CLASS:
                raise InputError(str(path), f"names: {k!r}", "class index is too large")
            if i in out:
                raise InputError(str(path), f"names: {k!r}", f"class index {i} is given twice "
                                 f"({out[i]!r} and {str(n).strip()!r})")
            if n is None or str(n).strip() == "":
                raise InputError(str(path), f"names: {k}", "empty class name")
            out[i] = str(n).strip()
    elif isinstance(names, str):
        f = _resolve(names, [path.parent, base])
        if f is None or not f.is_file():
            raise InputError(str(path), "names", f"names file {names!r} not found")
        return _read_names_file(f)
    else:
        raise InputError(str(path), "names", "must be a list or a mapping of index: name")
    nc = cfg.get("nc")
    if nc is not None:
        if not isinstance(nc, int) or isinstance(nc, bool) or nc < 0:
            raise InputError(str(path), "nc", f"nc {nc!r} is not a class count")
        if nc != len(out):
            raise InputError(str(path), "nc", f"nc is {nc} but names has {len(out)} classes")
    return out


def _resolve(entry: str, bases: list[Path]) -> Path | None:
    """The first existing path for ``entry`` against ``bases``; Darknet's 'data/' prefix and
    Roboflow's leading '../' are tried off as well."""
    entry = entry.strip().replace("\\", "/")
    if not entry:
        return None
    p = Path(entry)
    if p.is_absolute():
        return p if p.exists() else None
    variants = [entry]
    e = entry
    while e.startswith("./"):
        e = e[2:]
    if e.startswith("data/"):
        variants.append(e[5:])
    while e.startswith("../"):
        e = e[3:]
        variants.append(e)
    for v in variants:
        for b in bases:
            c = b / v
            if c.exists():
                return c
    return None


def _images_under(folder: Path, layout: Layout) -> list[Path]:
    hidden: list[str] = []
    found = [folder / r for r in imgs.walk_files(folder, hidden) if imgs.is_image_name(r)]
    layout.hidden += [folder / r for r in hidden if imgs.is_image_name(r)]
    return found


def _hidden_warnings(layout: Layout, image_root: str, label_root: str, path) -> list[ImportWarning]:
    """What the skipped hidden files were. Ultralytics finds a folder's images with Python's glob,
    which passes over names starting with '.': such an image is not trained on, so it is not
    reviewed either, but said, one by one (its label file with it); AppleDouble files are counted
    at once (``images.hidden_warnings``)."""
    if not layout.hidden:
        return []
    seen: set[Path] = {Path(os.path.realpath(im)) for _, im in layout.images}  # listed in a split's file: read
    listed = set(seen)
    said: list[tuple[str, str]] = []
    images: set[tuple[str, str]] = set()  # (folder, stem) of the hidden images said
    for q in layout.hidden:
        q = Path(os.path.realpath(q))
        if q in seen:
            continue
        seen.add(q)
        if imgs.is_image_name(q.name):
            if not imgs.is_appledouble(q.name):
                images.add((_labels_dir(os.fspath(q.parent)) or os.fspath(q.parent), q.name.rsplit(".", 1)[0]))
                images.add((os.fspath(q.parent), q.name.rsplit(".", 1)[0]))
            said.append((_rel(os.fspath(q), image_root), ", as Ultralytics skips it when it reads an image folder; "
                         "rename it, or list it in a split's .txt file, to import it"))
    for q in sorted(seen - listed):
        if imgs.is_image_name(q.name):
            continue
        if not imgs.is_appledouble(q.name) and (os.fspath(q.parent), q.name.rsplit(".", 1)[0]) in images:
            continue  # the label file of a hidden image said above
        said.append((_rel(os.fspath(q), label_root), ""))
    return imgs.hidden_warnings(said, Path(path).name)


def _in_export_names(entry: str) -> list[str]:
    """What a path of a labelreview export's data.yaml or split list may be in the image root: itself,
    or without its leading "images/" (where Ultralytics must find the images inside the export for
    images whose file names have no images folder, i.e. the image root's "...")."""
    e = entry.strip().replace("\\", "/")
    while e.startswith("./"):
        e = e[2:]
    cands = [e]
    if e == "images" or e.startswith("images/"):
        cands.append(e[len("images/"):] or ".")
    return cands


def _split_images(layout: Layout, split: str, entry: Any, shown: str) -> None:
    """Add the images a data.yaml / obj.data split names: a folder, a list file, an image, or a list."""
    entries = entry if isinstance(entry, list) else [entry]
    bases = [layout.base, layout.config.parent if layout.config else layout.base, layout.image_root]
    bases = list(dict.fromkeys(bases))
    for k, e in enumerate(entries):
        where = f"{split}" + (f"[{k}]" if isinstance(entry, list) else "")
        if not isinstance(e, str):
            raise InputError(shown, where, f"a split must name a folder, a list file or an image, not {e!r}")
        p = None
        in_root: set[Path] = set()
        if layout.images_elsewhere:
            # --images: the images are there, so a split folder is looked for in the image root first
            # (not in the dataset imported: "." or "images" would name the labels-only export itself).
            for c in _in_export_names(e):
                in_root.add((layout.image_root / c).resolve())
                if p is None and not Path(c).is_absolute():
                    p = _resolve(c, [layout.image_root])
        if p is None:
            p = _resolve(e, bases)
        if p is None and not isinstance(entry, list):
            for alias in _SPLIT_ALIASES.get(split, ()):
                for cand in (layout.base / alias / "images", layout.base / "images" / alias):
                    if cand.is_dir():
                        p = cand
                        break
                if p is not None:
                    break
        if p is None:
            layout.warnings.append(ImportWarning(f"{shown}: {where}", f"{e!r} not found; split not imported",
                                                 "skipped"))
            continue
        expected = {(layout.base / e).resolve()} | in_root  # --images: split folders are looked for there
        if not Path(e).is_absolute() and p.resolve() not in expected:
            layout.warnings.append(ImportWarning(f"{shown}: {where}", f"{e!r} read as {imgs.rel_posix(p, layout.base)}",
                                                 "repaired"))
        if p.is_dir():
            layout.images += [(split, q) for q in _images_under(p, layout)]
        elif p.suffix.lower() == ".txt":
            _list_file(layout, split, p)
        elif imgs.is_image_name(p.name):
            layout.images.append((split, p))
        else:
            raise InputError(shown, where, f"{e!r} is neither a folder, a .txt list nor an image")


def _list_file(layout: Layout, split: str, lst: Path) -> None:
    text = read_text(lst)
    bases = list(dict.fromkeys([lst.parent, layout.base, layout.image_root]))
    repaired = 0
    for n, line in enumerate(text.splitlines(), 1):
        e = line.strip()
        if not e or e.startswith("#"):
            continue
        p = None
        if layout.images_elsewhere and not Path(e).is_absolute():
            # --images: looked for in the image root first, as a split folder is (a labelreview
            # export lists "./images/a.jpg" for the image root's a.jpg)
            p = next((c for c in (layout.image_root / x for x in _in_export_names(e)) if c.is_file()), None)
        if p is None:
            p = _resolve(e, bases)
            if p is None or not p.is_file():
                layout.warnings.append(ImportWarning(f"{lst.name} line {n}", f"image {e!r} not found; skipped",
                                                     "skipped"))
                continue
            if not (lst.parent / e).is_file() and not Path(e).is_absolute():
                repaired += 1
        layout.images.append((split, p))
    if repaired:
        layout.warnings.append(ImportWarning(lst.name, f"{repaired} image path(s) read relative to the dataset "
                                             "folder (Darknet's 'data/' prefix or similar)", "repaired"))


def find_layout(path: str | os.PathLike, images: str | os.PathLike | None = None) -> Layout:
    p = Path(path)
    if not p.exists():
        raise LabelreviewError(f"{p}: no such file or folder")
    img_arg = Path(images) if images else None
    if p.is_dir():
        for name in ("data.yaml", "data.yml", "dataset.yaml"):
            if (p / name).is_file():
                return find_layout(p / name, images)
        if (p / "obj.data").is_file():
            return find_layout(p / "obj.data", images)
        yamls = [q for q in p.glob("*.y*ml") if q.suffix in (".yaml", ".yml")]
        if len(yamls) == 1:
            return find_layout(yamls[0], images)
        lay = Layout("folder", None, p, p, img_arg or p)
        for cand in [p / n for n in _NAMES_FILES] + [p.parent / n for n in _NAMES_FILES]:
            if cand.is_file():
                lay.names, lay.names_from = _read_names_file(cand), str(cand)
                break
        lay.images = [("", q) for q in _images_under(lay.image_root, lay)]
        return lay
    if p.suffix.lower() in (".yaml", ".yml"):
        cfg = _load_yaml(p)
        base = p.parent
        if isinstance(cfg.get("path"), str) and cfg["path"].strip():
            cand = Path(cfg["path"].strip())
            cand = cand if cand.is_absolute() else p.parent / cand
            if cand.is_dir():
                base = cand
        lay = Layout("ultralytics", p, base, p.parent, img_arg or base, images_elsewhere=img_arg is not None)
        lay.names, lay.names_from = _yaml_names(cfg, p, base), p.name
        ks = cfg.get("kpt_shape")
        if ks is not None:
            if (not isinstance(ks, list) or len(ks) != 2 or not all(isinstance(v, int) for v in ks)
                    or ks[0] < 1 or ks[1] not in (2, 3)):
                raise InputError(str(p), "kpt_shape", f"{ks!r} is not [number of keypoints, 2 or 3]")
            lay.kpt_shape = (ks[0], ks[1])
            kn = cfg.get("kpt_names")
            if isinstance(kn, list) and len(kn) == ks[0]:
                lay.kpt_names = [str(v) for v in kn]
            fi = cfg.get("flip_idx")
            if isinstance(fi, list):
                lay.flip_idx = fi
        found = False
        for split in SPLITS:
            if cfg.get(split) not in (None, ""):
                found = True
                _split_images(lay, split, cfg[split], p.name)
        if not found:
            raise InputError(str(p), "", "names no split (train, val or test) to import")
        return lay
    if p.name == "obj.data" or p.suffix.lower() == ".data":
        cfg = {}
        for n, line in enumerate(read_text(p).splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            k, sep, v = line.partition("=")
            if not sep:
                raise InputError(str(p), f"line {n}", "expected 'key = value'")
            cfg[k.strip()] = v.strip()
        lay = Layout("darknet", p, p.parent, p.parent, img_arg or p.parent, images_elsewhere=img_arg is not None)
        if cfg.get("names"):
            f = _resolve(cfg["names"], [p.parent])
            if f is None:
                raise InputError(str(p), "names", f"names file {cfg['names']!r} not found")
            lay.names, lay.names_from = _read_names_file(f), f.name
        found = False
        for split, key in (("train", "train"), ("val", "valid"), ("test", "test")):
            if cfg.get(key):
                found = True
                _split_images(lay, split, cfg[key], p.name)
        if not found:
            raise InputError(str(p), "", "names no train/valid list to import")
        if lay.names is not None and "classes" in cfg:
            try:
                nc = int(cfg["classes"])
            except ValueError:
                raise InputError(str(p), "classes", f"{cfg['classes']!r} is not a number") from None
            if nc != len(lay.names):
                raise InputError(str(p), "classes", f"classes = {nc} but {lay.names_from} has {len(lay.names)} names")
        return lay
    raise LabelreviewError(f"{p}: give a YOLO dataset folder, its data.yaml or its obj.data "
                           "(or a folder of label .txt files)")


# ---------------------------------------------------------------------- pairing


def _strip_component(rel: str, comp: str) -> str:
    parts = rel.split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == comp:
            del parts[i]
            break
    return "/".join(parts)


def image_rel_in_export(image_rel: str) -> str:
    """Where Ultralytics must find the image ``image_rel`` inside a labels-only export for its label
    file (``label_rel_for``) to be found by its rule (the last ``/images/`` of the image's path becomes
    ``/labels/``): the same path when it has an 'images' folder, else under 'images/'."""
    return image_rel if "images" in image_rel.split("/")[:-1] else "images/" + image_rel


def label_rel_for(image_rel: str) -> str:
    """Where a label file goes for an image at ``image_rel``: the last 'images' folder becomes
    'labels' (Ultralytics); with no 'images' folder, under 'labels/'."""
    stem = image_rel.rsplit(".", 1)[0] if "." in image_rel.rsplit("/", 1)[-1] else image_rel
    parts = stem.split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return "/".join(parts) + ".txt"
    return "labels/" + stem + ".txt"


def _rel(path: str, root: str) -> str:
    pre = root if root.endswith("/") else root + "/"
    if path.startswith(pre):
        return path[len(pre):]
    return imgs.rel_posix(path, root)


def _labels_dir(d: str) -> str | None:
    """The Ultralytics labels folder for an image folder: its last 'images' component -> 'labels'."""
    parts = d.split("/")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return "/".join(parts)
    return None


def _inside(layout: Layout):
    """A test: is a folder inside the dataset being imported (its label root or its base)?"""
    roots = {os.path.realpath(layout.label_root), os.path.realpath(layout.base)}

    def own(d: str) -> bool:
        r = os.path.realpath(d)
        return any(r == x or r.startswith(x.rstrip("/") + "/") for x in roots)
    return own


def _pair(layout: Layout) -> tuple[list[tuple[str, str, str | None]], list[str]]:
    """(split, image, label file or None) per image, and the label files no image claims (str paths)."""
    lroot, iroot, base = os.fspath(layout.label_root), os.fspath(layout.image_root), os.fspath(layout.base)
    label_files: set[str] = set()
    if layout.kind == "folder":
        hidden: list[str] = []
        for r in imgs.walk_files(lroot, hidden):
            if r.lower().endswith(".txt") and not ("/" not in r and (r.lower() in _NOT_LABELS
                                                                     or r.lower().startswith("readme"))):
                label_files.add(f"{lroot}/{r}")
        layout.hidden += [Path(lroot) / r for r in hidden if r.lower().endswith(".txt")]
    else:
        scanned: set[str] = set()
        own = _inside(layout) if layout.images_elsewhere else None
        lbases = list(dict.fromkeys([lroot, base]))
        for d in {os.path.dirname(os.fspath(im)) for _, im in layout.images}:
            cands = [d, _labels_dir(d)]
            if own is not None:
                # the image folder's place in the image root, mirrored in this dataset
                rd = _rel(d, iroot) if d != iroot.rstrip("/") else ""
                if not rd.startswith(".."):
                    for b in lbases:
                        cands += [f"{b}/{rd}".rstrip("/"), f"{b}/{_labels_dir(rd)}" if _labels_dir(rd) else None,
                                  f"{b}/labels/{rd}".rstrip("/")]
                cands = [c for c in cands if c is not None and own(c)]
            for cand in cands:
                if cand is None or cand in scanned:
                    continue
                scanned.add(cand)
                try:
                    with os.scandir(cand) as it:
                        for e in it:
                            if (e.name.endswith(".txt") and e.is_file()
                                    and not (cand == base and e.name.lower() in _NOT_LABELS)):
                                label_files.add(f"{cand}/{e.name}")
                except OSError:
                    continue
    claimed: set[str] = set()
    out = []
    by_key: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    ldirs: dict[str, str | None] = {}

    def index():
        for q in label_files:
            rel = _rel(q, lroot)
            by_key.setdefault(_strip_component(rel, "labels")[:-4], []).append(q)
            by_stem.setdefault(os.path.basename(q)[:-4], []).append(q)

    for split, im in layout.images:
        im = os.fspath(im)
        d, fname = os.path.split(im)
        stem = fname.rsplit(".", 1)[0] if "." in fname else fname
        if d not in ldirs:
            ldirs[d] = _labels_dir(d)
        ld = ldirs[d]
        lab = None
        if ld is not None and f"{ld}/{stem}.txt" in label_files:
            lab = f"{ld}/{stem}.txt"
        elif f"{d}/{stem}.txt" in label_files:
            lab = f"{d}/{stem}.txt"
        elif label_files:
            rel = _rel(im, iroot)
            if not rel.startswith(".."):
                for c in (f"{lr}/{x}" for lr in dict.fromkeys([lroot, base])
                          for x in (label_rel_for(rel), f"{rel.rsplit('.', 1)[0]}.txt")):
                    if c in label_files:
                        lab = c
                        break
            if lab is None:
                if not by_stem:
                    index()
                hit = by_key.get(_strip_component(rel, "images").rsplit(".", 1)[0])
                if hit and len(hit) == 1:
                    lab = hit[0]
                elif len(by_stem.get(stem, ())) == 1:
                    lab = by_stem[stem][0]
        if lab is not None:
            claimed.add(lab)
        out.append((split, im, lab))
    orphans = sorted(label_files - claimed)
    # A hidden label file no image claims (a hidden image's, an AppleDouble file...) is skipped as the
    # hidden images are, and said with them; one a listed hidden image claims is read.
    layout.hidden += [Path(o) for o in orphans if imgs.is_hidden(os.path.basename(o))]
    orphans = [o for o in orphans if not imgs.is_hidden(os.path.basename(o))]
    return out, orphans


# ---------------------------------------------------------------------- read


def read(path: str | os.PathLike, *, images: str | os.PathLike | None = None, task: str | None = None,
         fmt: str = "yolo") -> ImportBatch:
    """Read a YOLO dataset (folder, data.yaml or obj.data); ``images`` is the image root if elsewhere."""
    return load(path, images=images, task=task, fmt=fmt)[0]


def load(path: str | os.PathLike, *, images: str | os.PathLike | None = None, task: str | None = None,
         fmt: str = "yolo") -> tuple[ImportBatch, Path]:
    """The batch and the folder its image file names are relative to."""
    if task is not None and task not in TASKS:
        raise LabelreviewError(f"unknown YOLO task {task!r}; one of {', '.join(TASKS)}")
    layout = find_layout(path, images)
    warns = layout.warnings
    pairs, orphans = _pair(layout)
    if pairs and not orphans and all(lab is None for _, _, lab in pairs):
        from .dota import LABEL_DIR, label_dirs

        if label_dirs(layout.base):
            raise LabelreviewError(f"{path}: no YOLO label file for any of its {len(pairs)} image(s), but "
                                   f"{LABEL_DIR}/ folders: DOTA oriented boxes (corners in pixels, classes by "
                                   "name, as Roboflow exports 'YOLOv5 Oriented Bounding Boxes'); import it with "
                                   "`labelreview import dota` (nothing was imported)")
    _refuse_if_nothing_matches(path, layout, pairs, orphans)
    root = layout.image_root
    sroot, slabel_root = os.fspath(root), os.fspath(layout.label_root)
    if layout.kpt_shape is not None:
        if task not in (None, "pose"):
            raise LabelreviewError(f"{layout.config}: has kpt_shape (a pose dataset), but task {task} was asked")
        task = "pose"
    elif task == "pose":
        raise LabelreviewError(f"{path}: a pose dataset needs kpt_shape in its data.yaml")
    names = dict(layout.names) if layout.names is not None else None
    auto_names: dict[int, str] = {}
    images_out: list[ImageRecord] = []
    proposals: list[Proposal] = []
    seen_images: set[str] = set()
    kshape = layout.kpt_shape
    for o in orphans:
        warns.append(ImportWarning(_rel(o, slabel_root), "label file with no image; skipped", "skipped"))
    warns += _hidden_warnings(layout, sroot, slabel_root, path)
    for split, im, lab in pairs:
        rel = _rel(im, sroot)
        if rel in seen_images:
            continue
        seen_images.add(rel)
        if lab is None:
            warns.append(ImportWarning(rel, "no label file; image imported with no labels", "kept"))
            lines = None
        else:
            shown = _rel(lab, slabel_root)
            lines = _parse_file(lab, shown, kshape, task, names, auto_names, warns, layout.names_from)
        try:
            w, h = imgs.image_size(im)
        except imgs.ImageProblem as e:
            n = len(lines) if lines else 0
            warns.append(ImportWarning(rel, f"{e}; image and its {n} label(s) skipped", "skipped"))
            continue
        images_out.append(ImageRecord(key=rel, file_name=rel, width=w, height=h, source_id=rel,
                                      extra={"split": split} if split else {}))
        if lines:
            _to_proposals(lines, rel, shown, w, h, kshape, proposals, warns, task)
    # categories
    if names is None:
        names = {i: auto_names[i] for i in sorted(auto_names)}
        if names:
            warns.append(ImportWarning(str(path), "no class names (data.yaml, obj.names or classes.txt); "
                                       f"classes named {names[min(names)]!r} ...", "repaired"))
    cats: list[Category] = []
    used_names: set[str] = set()
    for i in sorted(names):
        n = names[i]
        if n in used_names:
            new = f"{n}-{i}"
            warns.append(ImportWarning(layout.names_from or "names", f"class {i}: duplicate name {n!r}; "
                                       f"renamed {new!r}", "repaired"))
            n = new
        used_names.add(n)
        extra: dict[str, Any] = {}
        kp = None
        if kshape:
            extra["yolo_kpt_shape"] = list(kshape)
            if layout.flip_idx is not None:
                extra["yolo_flip_idx"] = layout.flip_idx
            kp = layout.kpt_names or [str(k) for k in range(kshape[0])]
        cats.append(Category(name=n, source_id=i, keypoints=kp, extra=extra))
    cat_of = {i: c.name for i, c in zip(sorted(names), cats)}
    for p in proposals:
        p.category = cat_of[p.category]  # the class index, until now
    detected = _settle_task(proposals, task, warns, path)
    fmt_out = fmt if FORMATS.get(fmt) is not None else _FORMAT_OF_TASK[detected]
    return ImportBatch(format=fmt_out, source_file=str(layout.config or path), images=images_out,
                       categories=cats, proposals=proposals, warnings=warns, info={}), root


def _refuse_if_nothing_matches(path, layout: Layout, pairs, orphans: list[str]) -> None:
    """An import that would bring nothing because no image was found, or no label file matches an
    image, fails with what was looked for: "imported 0 annotations" with success hid a wrong --images
    (or a labels-only export re-imported without it)."""
    hint = ("; a labelreview export holds labels only: give --images the image root it was exported from"
            if not layout.images_elsewhere else f"; are the images under --images {layout.image_root}?")
    if not pairs:
        n = sum(1 for r in imgs.walk_files(layout.label_root) if r.lower().endswith(".txt")
                and r.rsplit("/", 1)[-1].lower() not in _NOT_LABELS) if layout.label_root.is_dir() else 0
        why = "; ".join([f"{w.where}: {w.problem}" for w in layout.warnings if w.action == "skipped"]
                        + [f"{len(layout.hidden)} hidden file(s) skipped (names starting with '.')"] * bool(layout.hidden))
        raise LabelreviewError(f"{path}: no images found" + (f" for its {n} label file(s)" if n else "")
                               + (f" ({why})" if why else "") + hint + " (nothing was imported)")
    if orphans and all(lab is None for _, _, lab in pairs):
        shown = _rel(orphans[0], os.fspath(layout.label_root))
        raise LabelreviewError(f"{path}: none of its {len(orphans)} label file(s) (e.g. {shown}) matches one of the "
                               f"{len(pairs)} image(s) found (e.g. {_rel(os.fspath(pairs[0][1]), os.fspath(layout.image_root))})"
                               + hint + " (nothing was imported)")


#: Class indices the store can hold (an SQLite integer); one beyond is garbage, not a class.
_MAX_CLASS = 2**63 - 1


def _class_index(tok: str, shown: str, n: int) -> int:
    try:
        i = int(tok)
    except ValueError:
        try:
            v = float(tok)
        except ValueError:
            raise InputError(shown, f"line {n}", f"class {tok!r} is not a class index") from None
        if not math.isfinite(v) or v != int(v):
            raise InputError(shown, f"line {n}", f"class {tok!r} is not a class index")
        i = int(v)
    if i > _MAX_CLASS:
        raise InputError(shown, f"line {n}", f"class {tok!r} is too large to be a class index")
    return i


def _parse_file(lab: str, shown: str, kshape, task, names, auto_names, warns: list[ImportWarning],
                names_from: str = "") -> list[tuple[int, int, list[float]]]:
    """(line number, class index, values) per label line; every structural problem is an InputError.

    A class index the class names do not have is a class of its own, "undefined-<index>", added with a
    warning at its first line (as the COCO reader does with an undefined category id): its labels are
    kept for review under that name."""
    text = read_text(lab, shown)
    out = []
    isfinite = math.isfinite
    for n, line in enumerate(text.splitlines(), 1):
        toks = line.split()
        if not toks:
            continue
        if "_" in line or not line.isascii():  # what float() and int() take but is no decimal number
            bad = next((t for t in toks if parse_float(t) is None), None)
            if bad is not None:
                raise InputError(shown, f"line {n}", f"{bad!r} is not a number")
        cls = _class_index(toks[0], shown, n)
        if cls < 0:
            raise InputError(shown, f"line {n}", f"class {cls} is negative")
        if names is not None:
            if cls not in names:
                rng = f"0..{max(names)}" if names else "none"
                names[cls] = f"undefined-{cls}"
                warns.append(ImportWarning(f"{shown} line {n}", f"class {cls} is not in the class names ({rng}"
                                           + (f", {os.path.basename(names_from)}" if names_from else "")
                                           + f"); class {names[cls]!r} added", "repaired"))
        elif cls not in auto_names:
            auto_names[cls] = f"class-{cls}"
        try:
            vals = [float(t) for t in toks[1:]]
        except ValueError:
            bad = next(t for t in toks[1:] if not _isnum(t))
            raise InputError(shown, f"line {n}", f"{bad!r} is not a number") from None
        if not all(map(isfinite, vals)):
            raise InputError(shown, f"line {n}", "NaN or infinite value")
        nv = len(vals)
        if kshape is not None:
            need = 4 + kshape[0] * kshape[1]
            if nv not in (need, need + 1):
                raise InputError(shown, f"line {n}", f"{nv} values after the class; kpt_shape {list(kshape)} "
                                 f"needs 4 + {kshape[0] * kshape[1]} = {need} (or {need + 1} with a confidence)")
        elif task == "obb":
            if nv not in (8, 9):
                raise InputError(shown, f"line {n}", f"{nv} values after the class; an oriented box needs "
                                 "8 corner coordinates (or 9 with a confidence)")
        elif nv < 4 or nv == 4 and task == "segment":
            raise InputError(shown, f"line {n}", f"{nv} value(s) after the class; a box needs 4 "
                             "(cx cy w h), a polygon at least 6")
        elif task == "detect" and nv not in (4, 5):
            raise InputError(shown, f"line {n}", f"{nv} values after the class; a detection box needs 4 "
                             "(or 5 with a confidence)")
        if kshape is not None:
            k, d = kshape
            coords = vals[:4] + [v for j in range(k) for v in vals[4 + j * d:6 + j * d]]
        elif nv % 2:
            coords = vals[:-1]
        else:
            coords = vals
        for v in coords:
            if v < _LO or v > _HI:
                raise InputError(shown, f"line {n}", f"value {v:g} is not normalized to 0..1 "
                                 "(YOLO coordinates are fractions of the image size)")
        out.append((n, cls, vals))
    return out


def _isnum(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def _clip_box(x0: float, y0: float, x1: float, y1: float, w: int, h: int):
    return max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)


def _to_proposals(lines, rel: str, shown: str, W: int, H: int, kshape, out: list[Proposal],
                  warns: list[ImportWarning], task: str | None = None) -> None:
    has_poly = has_box = False
    what = "oriented box" if task == "obb" else "polygon"
    seen: dict[tuple, int] = {}
    append = out.append
    for n, cls, vals in lines:
        nv = len(vals)
        where = f"{shown} line {n}"
        key = (cls, *vals)
        if key in seen:
            warns.append(ImportWarning(where, f"duplicate of line {seen[key]}", "kept"))
        else:
            seen[key] = n
        sid = f"{shown}:{n}"
        if kshape is not None or nv <= 5:
            score = vals[4] if nv == 5 else (vals[-1] if kshape is not None and nv == 4 + kshape[0] * kshape[1] + 1
                                               else None)
            cx, cy, bw, bh = vals[0] * W, vals[1] * H, vals[2] * W, vals[3] * H
            if bw < 0 or bh < 0:
                raise InputError(shown, f"line {n}", "negative box width or height")
            x0, y0, x1, y1 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
            c = _clip_box(x0, y0, x1, y1, W, H)
            if c != (x0, y0, x1, y1):
                # outside: nothing of it is left; a box of zero width or height is not outside for that
                if c[2] < c[0] or c[3] < c[1] or (c[2] == c[0] and x1 > x0) or (c[3] == c[1] and y1 > y0):
                    warns.append(ImportWarning(where, f"box lies outside the {W}x{H} image", "skipped"))
                    continue
                if max(c[0] - x0, c[1] - y0, x1 - c[2], y1 - c[3]) > 0.01:  # not just rounding
                    warns.append(ImportWarning(where, f"box reaches outside the {W}x{H} image; clipped",
                                               "repaired"))
                x0, y0, x1, y1 = c
            if bw == 0 or bh == 0:
                warns.append(ImportWarning(where, "box has zero width or height", "kept"))
            bbox = [x0, y0, x1 - x0, y1 - y0]
            if kshape is None:
                has_box = True
                append(Proposal(image_key=rel, category=cls, kind="bbox", bbox=bbox, score=score, source_id=sid))
                continue
            k, d = kshape
            kv = vals[4:4 + k * d]
            kps: list[float] = []
            unlabelled = []  # keypoints at 0 0 with a visibility other than 0
            for j in range(k):
                px, py = kv[j * d], kv[j * d + 1]
                v = kv[j * d + 2] if d == 3 else 2
                if px == 0 and py == 0:
                    # Ultralytics' and COCO's "not labelled": its plots skip a keypoint at 0 0 whatever
                    # its visibility, and converters write a missing one there ("0 0", "0 0 0")
                    if d == 3 and v:
                        unlabelled.append(j)
                    v = 0
                if isinstance(v, float) and v.is_integer():
                    v = int(v)
                kps += [px * W, py * H, v]
            if unlabelled:
                warns.append(ImportWarning(where, f"keypoint(s) {', '.join(str(j) for j in unlabelled)} at 0 0 "
                                           "with a visibility other than 0: read as not labelled "
                                           "(a point at the image's corner is not a keypoint)", "repaired"))
            append(Proposal(image_key=rel, category=cls, kind="keypoints", bbox=bbox, keypoints=kps, score=score,
                            source_id=sid, extra={"yolo_kpt_dims": d}))
            continue
        score = None
        coords = vals
        if nv % 2:
            score, coords = vals[-1], vals[:-1]
        pts = [v * (W if i % 2 == 0 else H) for i, v in enumerate(coords)]
        # As COCO, Label Studio and CVAT shapes: the points kept as drawn, the box clipped (said when
        # more than rounding), nothing inside the image: skipped (its box would have been a line on
        # the image's edge, or outside it, and Ultralytics drops every label of an image with one).
        bbox = clip_shape_box(polygon_bbox(pts), (H, W), what, where, warns)
        if bbox is None:
            continue
        has_poly = True
        append(Proposal(image_key=rel, category=cls, kind="polygon", bbox=bbox, segmentation=[pts], score=score,
                        source_id=sid))
    if has_poly and has_box:
        warns.append(ImportWarning(shown, "mixes boxes and polygons; each line read by its length "
                                   "(Ultralytics reads every line of such a file as a polygon)", "kept"))


def _settle_task(proposals: list[Proposal], task: str | None, warns, path) -> str:
    """The dataset's task; marks oriented boxes. Auto: all polygons 4-cornered rectangles -> obb."""
    polys = [p for p in proposals if p.kind == "polygon"]
    if task == "pose" or any(p.kind == "keypoints" for p in proposals):
        return "pose"
    if task is None:
        if polys and all(len(p.segmentation[0]) == 8 and is_rectangle(p.segmentation[0]) for p in polys):
            task = "obb"
        elif polys:
            task = "segment"
        else:
            task = "detect"
    if task == "obb":
        for p in polys:
            p.extra = {"obb": True, "angle": round(obb_angle(p.segmentation[0]), 6)}
    return task


# ---------------------------------------------------------------------- write

#: What the export did to shapes past their image (imports keep them as drawn), so that no coordinate
#: leaves 0..1 where Ultralytics refuses it: its label check drops every label of an image with one.
_PAST = {
    "poly": "polygon reaching past its image, clipped to it",
    "poly_out": "polygon with nothing inside its image, left out",
    "fitted": "oriented box reaching past its image, fitted to its part inside (as Ultralytics clips one)",
    "kept": "oriented box past its image by a corner only, written as drawn (Ultralytics takes it)",
    "boxed": "oriented box past its image that Ultralytics would refuse even fitted, written upright around "
             "its part inside",
    "outside": "oriented box with nothing inside its image, left out",
    "kpt": "pose with keypoints outside its image, those written as not labelled (x=y=0, v=0)",
}


def _digits(w: int, h: int) -> int:
    """Decimals so that a normalized value written back is within 0.005 px of the pixel value."""
    return max(6, math.ceil(math.log10(max(w, h, 1))) + 3)


def write(snapshot, out: str | os.PathLike, task: str | None = None) -> dict[str, Any]:
    """Write Ultralytics-style labels (``labels/...``) and a data.yaml into the folder ``out``."""
    anns = snapshot.annotations
    cats = snapshot.categories
    if task is None:  # the task that writes every label there is: pose only when all are keypoints
        geo = [a for a in anns if a.kind != "label"]
        polys = [a for a in geo if a.kind == "polygon"]
        if geo and all(a.kind == "keypoints" and a.bbox for a in geo) and any(a.keypoints for a in geo):
            task = "pose"
        elif polys:
            task = "obb" if all((a.extra or {}).get("obb") for a in polys) else "segment"
        else:
            task = "detect"
    # Class indices: the source's own when they are exactly 0..n-1 (a YOLO import), else 0..n-1 in order.
    sids = [c.source_id for c in cats]
    if sorted(s for s in sids if isinstance(s, int)) == list(range(len(cats))):
        index = {c.name: c.source_id for c in cats}
    else:
        index = {c.name: i for i, c in enumerate(cats)}
    kshape = None
    if task == "pose":
        k = max((len(a.keypoints) // 3 for a in anns if a.keypoints), default=0)
        dims = 3
        for c in cats:
            ks = (c.extra or {}).get("yolo_kpt_shape")
            if ks and ks[0] >= k:
                k, dims = ks[0], ks[1]
                break
        if any((a.extra or {}).get("yolo_kpt_dims") == 3 for a in anns):
            dims = 3
        kshape = (k, dims)
    by_image: dict[int, list] = {}
    for a in anns:
        by_image.setdefault(a.image_id, []).append(a)
    skipped: dict[str, int] = {}
    past: dict[str, int] = {}  # shapes past their image: what was done, and to how many
    n_written = 0
    split_dirs: dict[str, set[str]] = {}
    #: Per split, the images written, as data.yaml's paths inside the export; and the images left out,
    #: by why, with the splits they leave out of their folder (each lists the images it holds).
    split_images: dict[str, list[str]] = {}
    left_out: dict[str, list[str]] = {}
    listed: set[str] = set()

    def leave_out(im, split: str, labels, why: str, counted: str) -> None:
        if labels:
            skipped[counted] = skipped.get(counted, 0) + len(labels)
        left_out.setdefault(why, []).append(im.file_name)
        listed.add(split)

    names = {index[c.name]: c.name for c in cats}
    used_rel: set[str] = set()
    used_images: set[str] = set()
    dumps = orjson.dumps
    opts = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    with FolderExport(out) as fx:
        prov = fx.open(PROVENANCE_NAME)  # streamed: half a million rows need not sit in memory
        for im in snapshot.images:
            split = (im.extra or {}).get("split") or "train"
            split = split if split in SPLITS else "train"
            W, H = im.width, im.height
            if not W or not H:
                try:
                    W, H = imgs.image_size(im.path)
                except imgs.ImageProblem:
                    W = H = None
            mine = by_image.get(im.id, ())
            if W is None and mine:
                # Its labels cannot be normalized. An empty label file, or none, beside an image in
                # a split is "no objects" to Ultralytics (a background image): a wrong label, said
                # nowhere. So the image is left out, and its split lists the images it does hold.
                leave_out(im, split, mine, "image size unknown (image file missing or unreadable)",
                          "image size unknown")
                continue
            rel = label_rel_for(im.file_name)
            in_export = image_rel_in_export(im.file_name)
            if not imgs.is_image_name(im.file_name) or any(map(imgs.is_hidden, im.file_name.split("/"))):
                # (no image extension, or hidden: a YOLO reader never lists it, and its labels would
                # lie in the export unread)
                leave_out(im, split, mine, _UNLISTED, _UNLISTED)
                continue
            if rel in used_rel or in_export in used_images:
                # Another image has its label file (img.png and img.jpg; the same name from two
                # imports; x.jpg beside an images/ folder holding another x.jpg): Ultralytics finds
                # one label file per image name, so one of them would train on the other's labels.
                leave_out(im, split, mine, _SHARED, _SHARED)
                continue
            used_rel.add(rel)
            used_images.add(in_export)
            split_dirs.setdefault(split, set()).add(in_export.rsplit("/", 1)[0])
            split_images.setdefault(split, []).append(in_export)
            lines = []
            rows = []
            for a in mine:
                line = _line(a, index[a.category], task, W, H, kshape, past)
                if line is None:  # nothing of it inside the image: counted in ``past``
                    continue
                if line.startswith("!"):
                    skipped[line[1:]] = skipped.get(line[1:], 0) + 1
                    continue
                lines.append(line)
                rows.append(dumps(snapshot.provenance(a, f"{rel}:{len(lines)}"), option=opts))
            fx.write(rel, "".join(ln + "\n" for ln in lines))
            if rows:
                prov.write(b"\n".join(rows) + b"\n")
                n_written += len(rows)
        prov.close()
        # No `path:`: Ultralytics reads a relative one against the current folder (and an absolute
        # one would tie the export to where it was written); without it, the folders below are
        # relative to this file's folder, for Ultralytics and for labelreview's import alike.
        yaml_lines = ["# written by labelreview export: labels only; the images stay where they are.",
                      "# train/val/test name the folders inside this one where Ultralytics looks for the",
                      "# images (it finds labels/x.txt for images/x.jpg): link the image root there to",
                      "# train, e.g. ln -s /data/imgs images. labelreview import yolo THIS --images ROOT",
                      "# reads it back."]
        for split in SPLITS:
            dirs = sorted(split_dirs.get(split, ()))
            if split in listed and dirs:
                # A list of the split's images instead of its folders, which hold a left-out one too.
                # Ultralytics reads a "./" path in it relative to the list file's folder.
                fx.write(f"{split}.txt", "".join(f"./{r}\n" for r in split_images[split]))
                yaml_lines.append(f"{split}: {split}.txt")
            elif len(dirs) == 1:
                yaml_lines.append(f"{split}: {_yaml_str(dirs[0])}")
            elif dirs:
                yaml_lines.append(f"{split}:")
                yaml_lines += [f"  - {_yaml_str(d)}" for d in dirs]
        if kshape:
            yaml_lines.append(f"kpt_shape: [{kshape[0]}, {kshape[1]}]")
            for c in cats:
                fi = (c.extra or {}).get("yolo_flip_idx")
                if fi:
                    yaml_lines.append(f"flip_idx: {list(fi)}")
                    break
        yaml_lines.append(f"nc: {len(names)}")
        yaml_lines.append("names:")
        yaml_lines += [f"  {i}: {_yaml_str(names[i])}" for i in sorted(names)]
        fx.write("data.yaml", "\n".join(yaml_lines) + "\n")
        fx.commit()
    res = {"file": str(out), "images": len(snapshot.images) - sum(map(len, left_out.values())),
           "annotations": n_written, "categories": len(cats), "task": task, "provenance": str(Path(out) / PROVENANCE_NAME)}
    if skipped:
        res["skipped"] = skipped
    if past:
        res["past_image"] = {_PAST[k]: n for k, n in past.items()}
    if left_out:
        res["images_left_out"] = left_out
    return res


_SHARED = "label file shared with another image (YOLO finds one label file per image name)"
_UNLISTED = "image name a YOLO reader does not list (no image extension, or a hidden file or folder)"


def _yaml_str(s: str) -> str:
    """``s`` as a YAML scalar that reads back as this very string: plain when it does, else quoted.
    A plain ``yes``, ``null``, ``007`` or ``1.50`` is a bool, None, 7 or 1.5 to YAML (and so to
    Ultralytics and to labelreview's import)."""
    import yaml

    if s and all(ch.isalnum() or ch in "._-/" for ch in s) and not s[0] in "-.":
        try:
            if yaml.safe_load(s) == s:
                return s
        except yaml.YAMLError:
            pass
    # YAML's own double-quoted form: JSON's \ud83d\ude00 for an emoji reads back as two lone halves
    return yaml.safe_dump(s, default_style='"', allow_unicode=True, width=1 << 30).rstrip("\n")


def _line(a, cls: int, task: str, W: int, H: int, kshape, past: dict[str, int]) -> str | None:
    """``a`` as a label line; "!why" when the format cannot hold it; None when nothing of it is inside
    the image (counted in ``past``, as is every shape past the image changed to fit it)."""
    d = _digits(W, H)

    def nx(v):
        return fmt_num(v / W, d)

    def ny(v):
        return fmt_num(v / H, d)

    def count(what):
        past[what] = past.get(what, 0) + 1

    seg = a.segmentation
    polys = seg if isinstance(seg, list) and seg and isinstance(seg[0], list) else None
    if task == "pose":
        if not a.keypoints or not a.bbox:
            return "!not keypoints (pose export)"
        x, y, w, h = a.bbox
        k, dims = kshape
        kps = list(a.keypoints) + [0.0] * (3 * k - len(a.keypoints))
        parts = [str(cls), nx(x + w / 2), ny(y + h / 2), nx(w), ny(h)]
        outside = False
        for j in range(k):
            px, py, pv = kps[3 * j:3 * j + 3]
            inside = clip_keypoint(px, py, (H, W))
            if inside is None:
                # Outside the image: not labelled, as COCO writes one (x=y=0, v=0) and as Ultralytics
                # makes one it moves outside (visibility 0); written there, the whole image is dropped.
                outside = outside or bool(pv)
                px = py = pv = 0
            else:
                px, py = inside
            sx, sy = nx(px), ny(py)
            # (0, 0) is how a missing keypoint is written (and read back: "0 0 2" too), and nothing
            # else is: a labelled one at the corner is written off it by <= 0.001 px
            if pv and sx == "0" and sy == "0":
                sx = fmt_num(10.0 ** -d, d)
            elif dims == 2 and not pv:
                sx = sy = "0"
            parts += [sx, sy]
            if dims == 3:
                parts.append(fmt_num(pv, 6))
        if outside:
            count("kpt")
        return " ".join(parts)
    if task in ("segment", "obb") and a.kind in ("rle", "mask"):
        return "!a mask (YOLO polygons cannot hold it)"
    if task == "detect" or (task in ("segment", "obb") and polys is None):
        if a.bbox is None:
            return "!no box (an image-level label)" if a.kind == "label" else "!no box"
        x, y, w, h = a.bbox
        if task == "detect":
            return f"{cls} {nx(x + w / 2)} {ny(y + h / 2)} {nx(w)} {ny(h)}"
        pts = [x, y, x + w, y, x + w, y + h, x, y + h]  # a box in a polygon dataset: its 4 corners
    elif task == "obb":
        pts = polys[0]
        if len(polys) > 1 or len(pts) != 8:
            if not a.bbox:
                return "!not an oriented box"
            x, y, w, h = a.bbox
            pts = [x, y, x + w, y, x + w, y + h, x, y + h]
        else:
            pts, how = clip_rotated_box(pts, (H, W))
            if how:
                count(how)
            if pts is None:
                return None
    else:
        # Each part clipped to the image (Ultralytics reads a vertex past it as the polygon's box past
        # it, and drops the image's labels once that box's centre or size leaves 0..1), then the parts
        # joined into one outline, as Ultralytics does.
        parts, changed = [], False
        for p in polys:
            q, ch = clip_polygon(p, (H, W))
            changed = changed or ch
            if q:
                parts.append(q)
        if not parts:
            count("poly_out")
            return None
        if changed:
            count("poly")
        pts = [v for p in parts for v in p]
    out = [str(cls)]
    for i in range(0, len(pts), 2):
        out += [nx(pts[i]), ny(pts[i + 1])]
    return " ".join(out)


__all__ = ["read", "write", "find_layout", "label_rel_for", "FORMATS", "TASKS"]
