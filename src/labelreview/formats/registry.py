"""Which module reads or writes which format, and format detection for ``import auto``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..model import ImageRecord, ImportBatch, LabelreviewError

YOLO_FORMATS = ("yolo", "yolo-detect", "yolo-seg", "yolo-segment", "yolo-pose", "yolo-obb")
#: A classification CSV's columns: told from the file ("csv"), or said: one-hot class columns, or a
#: column of labels (``image,label`` rows).
CSV_LAYOUTS = {"csv": None, "csv-onehot": "one-hot", "csv-labels": "labels"}
READERS = ("coco", *YOLO_FORMATS, "voc", *CSV_LAYOUTS, "imagefolder", "semantic", "cvat", "labelstudio", "sam", "dota",
           "csv-boxes", "labelme", "labelme-xml")
WRITERS = ("coco", *YOLO_FORMATS, "voc", "csv", "csv-boxes", "imagefolder", "semantic")

#: The image root each reader settled on for a path, for ``default_image_root`` right after.
_ROOTS: dict[str, Path] = {}


def _head(p: Path, n: int = 4096) -> bytes:
    try:
        with open(p, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _detect_file(p: Path) -> tuple[str, str] | None:
    suffix = p.suffix.lower()
    head = _head(p).lstrip(b"\xef\xbb\xbf").lstrip()
    if suffix == ".json":
        if head.startswith(b"["):
            # Label Studio exports a list of tasks ({"data": ..., "annotations": ...}); COCO results
            # are a list of {"image_id", "category_id", ...}.
            head = _head(p, 65536)
            if (b'"data"' in head or b'"result"' in head) and (b'"annotations"' in head or b'"predictions"' in head):
                return "labelstudio", "a list of Label Studio tasks"
            if b'"image_id"' in head:
                return "coco", "a COCO results list"
            if b'"predicted_iou"' in head and b'"segmentation"' in head:
                return "sam", "Segment Anything masks (a list, as amg.py writes)"
            if head.startswith(b"[]") or not head[1:].strip():
                return None
            return None
        if b'"data"' in head and (b'"annotations"' in head or b'"predictions"' in head):
            return "labelstudio", "a Label Studio task"
        if b'"image"' in head and b'"annotations"' in head and b'"images"' not in head:
            return "sam", "a Segment Anything (SA-1B) file"
        if b'"images"' in head or b'"annotations"' in head or b'"categories"' in head:
            return "coco", "a COCO file"
        if b'"shapes"' in head:
            return "labelme", "a LabelMe file"
        return None
    if suffix in (".yaml", ".yml"):
        return "yolo", "an Ultralytics data.yaml"
    if p.name == "obj.data":
        return "yolo", "a Darknet obj.data"
    if suffix == ".xml":
        from .labelme_xml import is_labelme_xml

        if is_labelme_xml(head):
            return "labelme-xml", "a LabelMe XML file"
        if b"<annotations" in head and (b"<version>1.1" in head or b"<meta" in head):
            return "cvat", "a CVAT for images XML"
        if b"<annotation" in head:
            return "voc", "a Pascal VOC XML"
        return None
    if suffix in (".csv", ".tsv"):
        import csv

        from .boxcsv import box_columns
        from .classification import _IMAGE_COLS, _LABEL_COLS

        first = head.decode("utf-8", "replace").splitlines()[:1]
        low = [h.strip().lower() for h in next(csv.reader(first, delimiter="\t" if suffix == ".tsv" else ","), [])]
        if box_columns(low) and any(h in _IMAGE_COLS for h in low) and any(h in _LABEL_COLS for h in low):
            return "csv-boxes", "a detection CSV (one row per box)"
        return "csv", "a classification CSV"
    return None


def _detect_dir(p: Path) -> tuple[str, str] | None:
    from .images import is_hidden

    # Hidden files are no part of a dataset: a macOS AppleDouble '._labels.csv' beside labels.csv made
    # two CSV files, and '._a.xml' (no XML) hid a folder of VOC files.
    visible = [q for q in p.iterdir() if not is_hidden(q.name)]
    names = {q.name for q in visible}
    lower = {n.lower() for n in names}
    from .dota import label_dirs

    dota = label_dirs(p, depth=2)
    if dota and not any((d.parent / "labels").is_dir() for d in dota):
        return "dota", "DOTA oriented boxes (labelTxt/ beside images/)"
    if names & {"data.yaml", "data.yml", "dataset.yaml"}:
        return "yolo", "an Ultralytics dataset (data.yaml)"
    if "obj.data" in names:
        return "yolo", "a Darknet dataset (obj.data)"
    if "Annotations" in names and (p / "Annotations").is_dir():
        from .images import walk_files as _walk

        xml = [p / "Annotations" / r for r in _walk(p / "Annotations") if r.lower().endswith(".xml")][:5]
        if xml and all((_detect_file(q) or ("",))[0] == "labelme-xml" for q in xml):
            return "labelme-xml", "a LabelMe XML dataset (Annotations/, Images/)"
    if "Annotations" in names and any(not is_hidden(q.name) for q in (p / "Annotations").glob("*.xml")):
        if "SegmentationClass" in names:
            return "voc", "a Pascal VOC dataset (Annotations/, SegmentationClass/)"
        return "voc", "a Pascal VOC dataset (Annotations/)"
    if "SegmentationClass" in names and "JPEGImages" in names:
        return "voc", "a Pascal VOC segmentation dataset (SegmentationClass/)"
    if "dataset_meta.json" in lower and ("masks" in lower or "images" in lower):
        return "semantic", "a semantic segmentation dataset (masks/ + dataset_meta.json)"
    if "labels" in lower and ("images" in lower or "classes.txt" in lower):
        return "yolo", "a YOLO folder (labels/ + images/)"
    jsons = [q for q in visible if q.suffix.lower() == ".json" and q.is_file()]
    kinds = {(_detect_file(q) or ("",))[0] for q in jsons[:5]}
    if kinds == {"sam"}:
        return "sam", f"a folder of Segment Anything files ({len(jsons)} .json)"
    if kinds == {"labelme"}:
        return "labelme", f"a folder of LabelMe files ({len(jsons)} .json)"
    csvs = [q for q in visible if q.suffix.lower() == ".csv"]
    xmls = [q for q in visible if q.suffix.lower() == ".xml"]
    if xmls and all(_detect_file(q) == ("voc", "a Pascal VOC XML") for q in xmls[:5]):
        return "voc", "a folder of Pascal VOC XML files"
    if len(csvs) == 1 and not xmls:
        fmt, what = _detect_file(csvs[0]) or ("csv", "a classification CSV")
        return fmt, f"{what} ({csvs[0].name})"
    from .images import is_image_name, walk_files  # (walk_files passes over hidden files)

    files = walk_files(p)
    if files and all(is_image_name(f) or f.endswith(".provenance.jsonl") for f in files) and any("/" in f for f in files):
        return "imagefolder", "an ImageFolder (class/image)"
    deep = [p / f for f in files if f.lower().endswith(".json")]
    if not jsons and deep and {(_detect_file(q) or ("",))[0] for q in deep[:5]} == {"labelme"}:
        return "labelme", f"a folder of LabelMe files ({len(deep)} .json, in its subfolders)"
    return None


def detect(path: str | os.PathLike) -> str:
    """The format of a file or folder when it is unambiguous; otherwise a clear error."""
    return detect_why(path)[0]


def detect_why(path: str | os.PathLike) -> tuple[str, str]:
    """(format, what was recognised) or a clear error."""
    p = Path(path)
    if not p.exists():
        raise LabelreviewError(f"{path}: no such file or folder")
    got = _detect_file(p) if p.is_file() else _detect_dir(p)
    if got is None:
        raise LabelreviewError(f"{path}: cannot tell the format; name it (one of {', '.join(READERS)})")
    return got


def default_image_root(fmt: str, path: str | os.PathLike) -> Path:
    """Where a format's image paths start when --images is not given."""
    got = _ROOTS.get(os.fspath(path))
    if got is not None:
        return got
    p = Path(path)
    return p.parent if p.is_file() else p


def _store_images(store):
    """A results file names images and classes by source id only: resolve them against the store's
    images and categories (as a ground-truth file given with --gt would be)."""
    from .coco import MERGED_IDS, GroundTruthImages

    out = GroundTruthImages(ImageRecord(key=f"store:{im.id}", file_name=im.file_name, width=im.width,
                                        height=im.height, source_id=im.source_id,
                                        extra={k: v for k, v in im.extra.items() if k == MERGED_IDS})
                            for im in store.images())
    out.categories = store.categories()
    return out


def _folder_reader(fmt: str, store=None):
    """The reader of a format whose images live beside its labels: (path, images=) -> (batch, root).

    Imported only when asked for, so a command never pays for formats it does not use."""
    if fmt in YOLO_FORMATS:
        from . import yolo

        return lambda path, images: yolo.load(path, images=images, task=yolo.FORMATS[fmt], fmt=fmt)
    if fmt == "csv-boxes":
        from . import boxcsv

        return boxcsv.read
    if fmt in CSV_LAYOUTS or fmt == "imagefolder":
        from . import classification

        if fmt == "imagefolder":
            return classification.read_imagefolder
        # the store's classes tell a one-hot column from a column of labels where the file cannot
        known = store.class_names() if store is not None else ()
        return lambda path, images: classification.read_csv(path, images=images, layout=CSV_LAYOUTS[fmt],
                                                            known_classes=known)
    modules = {"voc": "voc", "semantic": "semantic", "cvat": "cvat", "labelstudio": "labelstudio", "sam": "sam",
               "dota": "dota", "labelme": "labelme",
               "labelme-xml": "labelme_xml"}
    if fmt in modules:
        import importlib

        return importlib.import_module(f".{modules[fmt]}", __package__).read
    return None


def read(fmt: str, path: str | os.PathLike, args: Any, store, *, lazy: bool = False) -> tuple[str, ImportBatch]:
    """(the format read, the batch). After ``auto`` the format says what was recognised, e.g.
    "yolo-obb (an Ultralytics data.yaml)", which the command line prints. ``lazy``: the batch's
    proposals may be an iterator read while the store consumes it (``Store.ingest`` does)."""
    why = None
    if fmt == "auto":
        fmt, why = detect_why(path)

    def said(name: str) -> str:
        return f"{name} ({why})" if why else name

    images = getattr(args, "images", None)
    if fmt == "coco":
        from . import coco

        gt = None
        if getattr(args, "gt", None):
            gt = coco.gt_images_from(args.gt, image_root=images or default_image_root(fmt, path))
        else:
            head = _head(Path(path), 64).lstrip(b"\xef\xbb\xbf").lstrip() if Path(path).is_file() else b""
            if head.startswith(b"["):
                if (_detect_file(Path(path)) or ("",))[0] == "sam":
                    raise LabelreviewError(f"{path}: Segment Anything masks (a list, as amg.py writes), not a "
                                           "COCO results list: import them with `labelreview import sam`")
                gt = _store_images(store)
                if not gt:
                    raise LabelreviewError(f"{path}: a results list names images only by id; give the "
                                           "ground-truth file with --gt or import it first")
        batch = coco.read(path, gt_images=gt, lazy=lazy, image_root=images or default_image_root(fmt, path))
        if gt is not None and not getattr(args, "gt", None):  # the store's own images: labelled in place
            batch.store_images = {im.key: int(im.key.split(":", 1)[1]) for im in batch.images}
        if gt is None:
            refuse_if_every_image_escapes(batch, images or default_image_root(fmt, path), path)
        return said(fmt), batch
    reader = _folder_reader(fmt, store)
    if reader is not None:
        batch, root = reader(path, images=images)
        _ROOTS[os.fspath(path)] = root  # the image folder the reader chose, for ingest
        refuse_if_every_image_escapes(batch, root, path)
        # a CSV read as the user said is said so (its batch's format is "csv" for a column of labels)
        return said(fmt if CSV_LAYOUTS.get(fmt) else batch.format), batch
    raise LabelreviewError(f"unknown import format {fmt!r}; use one of {', '.join(READERS)} or auto")


def refuse_if_every_image_escapes(batch: ImportBatch, root: str | os.PathLike, path: str | os.PathLike) -> None:
    """The store drops an image whose path leaves the image root, with a warning. When that is every
    image, the import would "succeed" with nothing in it: refuse it here, before the store is touched,
    saying why. Stops at the first image inside the root, so a normal import pays one check."""
    ims = batch.images
    if not isinstance(ims, list) or not ims:
        return
    from . import images as imgs
    from .common import EXPORT_MARKER

    root_real = os.path.realpath(Path(root).expanduser())
    if not all(imgs.escapes_root(root_real, im.file_name) for im in ims):
        return
    msg = (f"{path}: all {len(ims)} images (e.g. {ims[0].file_name!r}) lie outside the image root {root} "
           "(an absolute path, '..' or a symbolic link out of it), where image paths may not go; nothing "
           "imported. ")
    if batch.format == "imagefolder" and any((Path(p) / EXPORT_MARKER).is_file() for p in (path, root)):
        msg += ("This looks like an ImageFolder export by an earlier labelreview, which linked to the images: "
                "export it again (an export now holds the images), or copy it with the links followed "
                "(cp -rL) and import the copy")
    else:
        msg += ("Copy the images into it (cp -rL follows symbolic links), or name the folder they are in "
                "with --images")
    raise LabelreviewError(msg)


#: What a store is made of (its first path component): an export may never write there.
_STORE_PARTS = (".git", ".gitignore", ".labelreview", "events", "imports", "labelreview.toml")


def refuse_store_files(out: str | os.PathLike, store_root: str | os.PathLike) -> None:
    """An export never writes over the store it exports: a file export onto ``labelreview.toml`` or an
    event log replaced it (and its uncommitted decisions) with the export, and a folder export that
    holds the store would replace the store with itself. A new file elsewhere in the store's folder
    (``cd store && labelreview export coco out.json``) is fine: git never stages it."""
    real, root = Path(os.path.realpath(out)), Path(os.path.realpath(store_root))
    if real == root or real in root.parents:
        raise LabelreviewError(f"{out}: is the store {store_root} or a folder holding it; export somewhere "
                               "else (nothing was written)")
    if root in real.parents and real.relative_to(root).parts[0] in _STORE_PARTS:
        raise LabelreviewError(f"{out}: would write over the store's own files ({real.relative_to(root).parts[0]}); "
                               "export somewhere else (nothing was written)")


def write(fmt: str, snapshot, out: str | os.PathLike, args: Any) -> dict[str, Any]:
    from .common import export_name_fits

    # The longest name an export writes beside OUT: a file's provenance sidecar, written through a
    # temporary ".OUT.provenance.jsonl.<12 hex>"; a folder's temporary ".OUT.tmp-<12 hex>".
    export_name_fits(Path(out), len(".") + len(".provenance.jsonl.") + 12 if fmt in ("coco", "csv", "csv-boxes")
                     else len(".") + len(".tmp-") + 12)
    if fmt == "coco":
        from . import coco

        return coco.write(snapshot, out)
    if fmt in YOLO_FORMATS:
        from . import yolo

        return yolo.write(snapshot, out, task=yolo.FORMATS[fmt])
    if fmt == "voc":
        from . import voc

        return voc.write(snapshot, out)
    if fmt == "csv":
        from . import classification

        return classification.write_csv(snapshot, out)
    if fmt == "csv-boxes":
        from . import boxcsv

        return boxcsv.write(snapshot, out)
    if fmt == "imagefolder":
        from . import classification

        return classification.write_imagefolder(snapshot, out)
    if fmt == "semantic":
        from . import semantic

        return semantic.write(snapshot, out)
    if fmt in ("cvat", "labelstudio", "sam", "dota", "labelme", "labelme-xml"):
        raise LabelreviewError(f"{fmt} is an import format only; export to coco, yolo, voc, csv, csv-boxes, "
                               "imagefolder or semantic")
    raise LabelreviewError(f"unknown export format {fmt!r}; use one of {', '.join(WRITERS)}")
