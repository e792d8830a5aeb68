"""Image classification: CSV files (single-label ``image,label`` rows, several rows per image for
multi-label, or one-hot ``image,class1,class2,...`` columns) and ImageFolder trees (``class/image.jpg``,
optionally under ``train/``, ``val/``, ``test/``). Every label is a reviewable annotation of kind
"label" (no geometry)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Iterable

from ..model import Category, ImageRecord, ImportBatch, ImportWarning, InputError, LabelreviewError, Proposal
from . import images as imgs
from .common import PROVENANCE_NAME, CsvRows, FolderExport, folder_name, free_name, provenance_bytes, read_text

_IMAGE_COLS = ("image_name", "image", "filename", "file_name", "file", "path", "image_path", "img", "id",
               "image_id", "name")
_LABEL_COLS = ("label_name", "label", "class", "class_name", "category", "category_name", "labels", "tag")
_SCORE_COLS = ("score", "confidence", "conf", "probability", "prob")
_BOX_COLS = {"x1", "y1", "x2", "y2", "xmin", "ymin", "xmax", "ymax", "bbox", "w", "h", "width", "height"}
_SPLITS = {"train", "val", "valid", "validation", "test", "training", "testing"}
#: The import format of a one-hot CSV: multi-label data, whatever number of classes its rows set.
ONE_HOT_FORMAT = "csv-onehot"
_ONE = {"1", "1.0", "true", "yes", "y", "t"}
_ZERO = {"0", "0.0", "false", "no", "n", "f", "", "-1"}


def image_column(low: list[str]) -> int | None:
    """The column of a header (lower-case names) that names the images: the first of
    ``_IMAGE_COLS`` it has, in that order (``id,image_name,...`` is read by image_name, not by id)."""
    for name in _IMAGE_COLS:
        if name in low:
            return low.index(name)
    return None


def _resolver(root: Path):
    """name -> (path relative to ``root`` or None, a note on how it was read or None).

    The name as written first (exact, else by stem for names without an extension, else by file
    name), then, if it has a backslash, as a Windows path (``train\\cat\\1.jpg`` -> ``train/cat/1.jpg``):
    on Linux a backslash is a character of a file name like any other, so ``a\\b.jpg`` may be a file
    of that name, and reading it as ``a/b.jpg`` put its labels on another picture without a word.
    When both are files, the one named exactly so is taken, and the note says so.

    Also returns the images under ``root`` and the hidden ones (names starting with '.'): a hidden
    image is found when a row names it (by any of those rules), as any other."""
    hidden: list[str] = []
    files = [r for r in imgs.walk_files(root, hidden) if imgs.is_image_name(r)] if root.is_dir() else []
    hidden = [r for r in hidden if imgs.is_image_name(r)]
    exact = set(files)
    by_stem: dict[str, list[str]] = {}
    by_base: dict[str, list[str]] = {}
    for r in files + [r for r in hidden if not imgs.is_appledouble(r.rsplit("/", 1)[-1])]:
        by_stem.setdefault(r.rsplit(".", 1)[0], []).append(r)
        by_base.setdefault(r.rsplit("/", 1)[-1], []).append(r)

    def unprefixed(n: str) -> str:
        while n.startswith("./"):  # not lstrip("./"), which made ".a.jpg" "a.jpg"
            n = n[2:]
        return n

    root_real = os.path.realpath(root)

    def find(n: str) -> str | None:
        if n in exact:
            return n
        if imgs.is_image_name(n) and not imgs.escapes_root(root_real, n) and imgs.is_file(root / n):
            return n  # a file the folder walk leaves out (hidden, or in a hidden folder), named as it is
        for index in (by_stem, by_base):
            hit = index.get(n)
            if hit and len(hit) == 1:
                return hit[0]
        return None

    def resolve(name: str) -> tuple[str | None, str | None]:
        as_written = unprefixed(name)
        got = find(as_written)
        if "\\" not in name:
            return got, None
        windows = find(unprefixed(name.replace("\\", "/")))
        if got is None:
            return windows, None
        if windows is not None and windows != got:
            return got, (f"{name!r} names the file {got!r}; {windows!r} (the name read as a Windows path) "
                         "is also an image here, not taken")
        return got, None

    return resolve, files, hidden


def _zero_one(rows: list[list[str]], cols: list[int], width: int) -> bool:
    """Whether every value of these columns (in rows of the header's ``width``) is a one-hot 0 or 1."""
    return all(r[i].strip().lower() in _ONE | _ZERO for r in rows[1:] if len(r) == width for i in cols)


def _columns(header: list[str], rows: list[list[str]], img_col: int, layout: str | None, known: set[str],
             shown: str, warns: list[ImportWarning]) -> tuple[int | None, int | None]:
    """(label column, score column) of a CSV; no label column: one-hot class columns.

    ``layout`` "labels" or "one-hot" says which (``import csv-labels`` / ``csv-onehot``); else it is
    told from the header: a column named like a label column (label_name, label, class, category...)
    holds labels, unless every column but the image's holds 0/1 (one-hot classes, one of them called
    "label"); without one, the other columns are classes. In a file of two columns, the second holds
    labels unless its values are all 0/1: then it is one one-hot class (``image,cat`` with 0/1 is "a
    cat or not", not the classes "0" and "1"), unless it is named as a label column (``id,label``
    with 0/1: a binary task's labels). The store's classes (imported and configured: ``known``)
    overrule the name: the column's name known, one-hot; "0" or "1" known, labels; both, the import
    fails asking which (an import cannot be taken back). One-hot from the name alone is said."""
    low = [h.lower() for h in header]
    n = len(header)
    label_col = next((i for i, h in enumerate(low) if h in _LABEL_COLS and i != img_col), None)
    score_col = next((i for i, h in enumerate(low) if h in _SCORE_COLS and i != img_col), None)
    others = [i for i in range(n) if i != img_col]
    if layout == "one-hot":
        return None, (None if _zero_one(rows, others, n) else score_col)
    if layout == "labels":
        if label_col is None and n == 2:
            label_col = others[0]
        if label_col is None:
            raise InputError(shown, "line 1", f"no label column among {', '.join(header)}: name it label_name "
                             "(or label, class, category), or import the file as csv-onehot")
        return label_col, (score_col if score_col != label_col else None)
    if n > 2:
        if (label_col is not None or score_col is not None) and _zero_one(rows, others, n):
            # Every column but the image's holds 0/1: one-hot columns, one of whose classes happens to be
            # called "label" or "score" (read as the label or score column, the classes were lost).
            return None, None
        return label_col, score_col
    col = others[0]
    values = {r[col].strip() for r in rows[1:] if len(r) == n} - {""}
    if not values or not _zero_one(rows, [col], n):
        return col, None  # labels, as ever
    name = header[col]
    as_class, as_labels = name in known, bool(values & known)
    if as_class and as_labels:
        raise InputError(shown, "line 1", f"column {name!r} holds only 0 and 1, and the store has a class {name!r} and "
                         f"a class {sorted(values & known)[0]!r}: import the file as csv-onehot (one class "
                         f"{name!r}, set where the value is 1) or as csv-labels (its values are the classes)")
    if as_class or (not as_labels and low[col] not in _LABEL_COLS):
        if not as_class:
            warns.append(ImportWarning(f"{shown} line 1", f"column {name!r} holds only 0 and 1: read as one one-hot "
                                       f"class, {name!r}, set on the images whose value is 1; if 0 and 1 are "
                                       "class names, import the file as csv-labels", "kept"))
        return None, None
    return col, None


def csv_rows(path: str | os.PathLike) -> tuple[Path, str, list[list[str]], list[int]]:
    """A CSV (or, by its suffix, TSV) file read whole, or the one CSV of a folder: (its path, its
    shown name, the rows with the header first and the blank rows at its end dropped, the file line
    each row starts on). A file that is no CSV, or has no row, is a clear error naming the line."""
    p = Path(path)
    if p.is_dir():
        csvs = sorted(q for q in p.iterdir() if q.suffix.lower() in (".csv", ".tsv") and not imgs.is_hidden(q.name))
        if len(csvs) != 1:
            raise LabelreviewError(f"{p}: give the CSV file itself ({len(csvs)} CSV files here)")
        p = csvs[0]
    shown = p.name
    text = read_text(p, shown)
    delim = "\t" if p.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, skipinitialspace=True)
    rows: list[list[str]] = []
    starts: list[int] = []  # the file line each row starts on (a quoted field may hold line breaks)
    prev_end = 0
    try:
        for row in reader:
            starts.append(prev_end + 1)
            rows.append(row)
            prev_end = reader.line_num
    except csv.Error as e:  # a field past the csv module's limit (131072 characters), a stray NUL...
        raise InputError(shown, f"line {reader.line_num}", f"not a valid CSV row ({e})") from None
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    if not rows:
        raise InputError(shown, "", "empty file (a header row is needed)")
    return p, shown, rows, starts


def csv_image_root(p: Path, images: str | os.PathLike | None, rows: list[list[str]], img_col: int):
    """(The image root of a CSV's image names, its ``_resolver``.) ``--images``, else the CSV's
    folder, or the ``images/`` folder beside it when the names are relative to that (Kaggle's layout)."""
    resolved = None
    if images:
        root = Path(images)
    else:
        root = p.parent
        first = next((r[img_col].strip() for r in rows[1:] if len(r) > img_col and r[img_col].strip()), None)
        if first and (p.parent / "images").is_dir():
            # Names relative to images/ beside the CSV (the Kaggle layout: labels.csv, images/1.jpg
            # named "1.jpg") make images/ the root. Found from the CSV's folder only by its file name
            # (as "images/1.jpg"), the image was imported as "images/1.jpg": the export then wrote
            # that name, which neither the dataset's loader nor an import with --images images/ finds.
            beside = _resolver(p.parent)[0](first)[0]
            found = _resolver(p.parent / "images")
            inside = found[0](first)[0]
            if beside is None or (inside is not None and beside == f"images/{inside}"
                                  and beside != first.replace("\\", "/").removeprefix("./")):
                root = p.parent / "images"
                resolved = found
    resolve, files, hidden = resolved if resolved is not None else _resolver(root)
    return root, (resolve, files, hidden)


class CsvImages:
    """The images a CSV's rows name, each once and in order of first mention: found under the root
    (``resolve``: see ``_resolver``), else kept by the name as written, with a warning."""

    def __init__(self, shown: str, header: list[str], img_col: int, root: Path, resolve):
        self.shown, self.header, self.img_col, self.root, self.resolve = shown, header, img_col, root, resolve
        self.by_rel: dict[str, ImageRecord] = {}
        self.images: list[ImageRecord] = []

    def of_row(self, n: int, row: list[str], warns: list[ImportWarning]) -> tuple[ImageRecord, bool]:
        """(The image of the row on file line ``n``, whether it is a file found and named first
        here); a row of the wrong width or with no image name is a clear error."""
        shown, header = self.shown, self.header
        if len(row) != len(header):
            raise InputError(shown, f"line {n}", f"{len(row)} columns, the header has {len(header)}")
        name = row[self.img_col].strip()
        if not name:
            raise InputError(shown, f"line {n}", f"empty {header[self.img_col]!r}")
        rel, note = self.resolve(name)
        found = rel is not None
        if rel is None:
            rel = name.replace("\\", "/")
            if rel not in self.by_rel:
                warns.append(ImportWarning(f"{shown} line {n}", f"image {name!r} not found under {self.root}; "
                                           "labels kept", "kept"))
        elif note and rel not in self.by_rel:
            warns.append(ImportWarning(f"{shown} line {n}", note, "kept"))
        im = self.by_rel.get(rel)
        if im is not None:
            return im, False
        im = self.by_rel[rel] = ImageRecord(key=rel, file_name=rel, source_id=name)
        self.images.append(im)
        return im, found


def read_csv(path: str | os.PathLike, *, images: str | os.PathLike | None = None, layout: str | None = None,
             known_classes: Iterable[str] = ()) -> tuple[ImportBatch, Path]:
    """A classification CSV: (batch, image root). ``layout`` "one-hot" or "labels" says how its columns
    are to be read (else told from the file, ``_columns``); ``known_classes`` are the store's classes."""
    p, shown, rows, starts = csv_rows(path)
    header = [h.strip() for h in rows[0]]
    low = [h.lower() for h in header]
    if len(header) < 2 or any(not h for h in header):
        raise InputError(shown, "line 1", "the header needs an image column and a label column (or class columns)")
    if len(set(header)) != len(header):  # "Cat" and "cat" are two classes (a one-hot export writes both)
        raise InputError(shown, "line 1", "two columns have the same name")
    if _BOX_COLS & set(low) and any(c in low for c in _LABEL_COLS):
        from .boxcsv import box_columns

        way = ("import it with `labelreview import csv-boxes`" if box_columns(low) else
               "import CSVs of image classes only (a detection CSV names its boxes x1,y1,x2,y2, x,y,w,h or bbox)")
        raise InputError(shown, "line 1", f"columns {', '.join(h for h in header if h.lower() in _BOX_COLS)} "
                         f"look like a detection CSV (boxes): {way}")
    warns: list[ImportWarning] = []
    img_col = image_column(low)
    img_col = 0 if img_col is None else img_col
    label_col, score_col = _columns(header, rows, img_col, layout, set(known_classes), shown, warns)
    one_hot = label_col is None
    # A column named "tags" holds an image's classes separated by spaces (Kaggle's Planet layout,
    # fast.ai's label_delim=" "): multi-label. Any other label column holds one class per row.
    tags = not one_hot and low[label_col] == "tags"
    class_cols = [i for i in range(len(header)) if i not in (img_col, score_col)] if one_hot else []
    root, (resolve, files, hidden) = csv_image_root(p, images, rows, img_col)
    rows_images = CsvImages(shown, header, img_col, root, resolve)
    proposals: list[Proposal] = []
    classes: dict[str, None] = {}
    if one_hot:
        for i in class_cols:
            classes.setdefault(header[i])
    seen: set[tuple[str, str]] = set()
    for n, row in zip(starts[1:], rows[1:]):
        if not any(c.strip() for c in row):
            continue
        rel = rows_images.of_row(n, row, warns)[0].key
        score = None
        if score_col is not None and row[score_col].strip():
            try:
                score = float(row[score_col])
            except ValueError:
                score = None
            if score is None or score != score or score in (float("inf"), float("-inf")):
                raise InputError(shown, f"line {n}", f"{header[score_col]} {row[score_col]!r} is not a number")
        if one_hot:
            for i in class_cols:
                v = row[i].strip().lower()
                if v in _ONE:
                    cls = header[i]
                elif v in _ZERO:
                    continue
                else:
                    raise InputError(shown, f"line {n}", f"column {header[i]!r}: {row[i]!r} is not 0 or 1")
                _add(proposals, seen, warns, rel, cls, score, f"{shown}:{n}:{header[i]}", f"{shown} line {n}")
        else:
            cls = row[label_col].strip()
            if not cls:
                warns.append(ImportWarning(f"{shown} line {n}", "empty label; image kept without it", "kept"))
                continue
            if tags:  # "haze primary": two classes of the image, not one class with a space in its name
                for tag in cls.split():
                    classes.setdefault(tag)
                    _add(proposals, seen, warns, rel, tag, score, f"{shown}:{n}:{tag}", f"{shown} line {n}")
                continue
            classes.setdefault(cls)
            _add(proposals, seen, warns, rel, cls, score, f"{shown}:{n}", f"{shown} line {n}")
    listed = set(rows_images.by_rel)
    for r in files:
        if r not in listed and not r.startswith("masks/"):
            warns.append(ImportWarning(r, f"image not in {shown}; not imported", "skipped"))
    warns += imgs.hidden_warnings([(r, f"; not in {shown} (a row naming it imports it)") for r in hidden
                                   if r not in listed and not r.startswith("masks/")], shown)
    cats = [Category(name=c, source_id=i) for i, c in enumerate(classes)]
    return ImportBatch(format=ONE_HOT_FORMAT if one_hot else "csv", source_file=str(p), images=rows_images.images,
                       categories=cats, proposals=proposals, warnings=warns, info={}), root


def _add(proposals, seen, warns, rel, cls, score, sid, where) -> None:
    if (rel, cls) in seen:
        warns.append(ImportWarning(where, f"{rel} is labelled {cls!r} twice; once kept", "skipped"))
        return
    seen.add((rel, cls))
    proposals.append(Proposal(image_key=rel, category=cls, kind="label", score=score, source_id=sid))


def read_imagefolder(path: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[ImportBatch, Path]:
    if images and os.path.realpath(images) != os.path.realpath(path):
        # its class folders are its labels: another folder's images would bring that folder's labels
        raise LabelreviewError(f"{path}: an ImageFolder's class folders are its labels; import the folder "
                               f"itself, without --images {images}")
    root = Path(images) if images else Path(path)
    if not root.is_dir():
        raise LabelreviewError(f"{root}: an ImageFolder is a folder of class folders")
    hidden: list[str] = []
    files = [r for r in imgs.walk_files(root, hidden) if imgs.is_image_name(r)]
    hidden = [r for r in hidden if imgs.is_image_name(r)]
    if not files:
        raise LabelreviewError(f"{root}: no images found" + (f" ({len(hidden)} hidden image file(s) skipped: "
                                                             "names starting with '.')" if hidden else ""))
    tops = {r.split("/", 1)[0] for r in files if "/" in r}
    split_layout = bool(tops) and all(t.lower() in _SPLITS for t in tops) and all(
        r.count("/") >= 2 for r in files if "/" in r)
    # torchvision's ImageFolder does read a hidden image (and fails on an AppleDouble file): said, so
    # that it can be renamed to be reviewed, or deleted.
    warns: list[ImportWarning] = imgs.hidden_warnings(
        [(r, "; rename it to import it (torchvision's ImageFolder does read it)") for r in hidden], root.name)
    images_out, proposals = [], []
    classes: dict[str, None] = {}
    nested = 0
    for r in files:
        parts = r.split("/")
        split = None
        if split_layout and len(parts) >= 2:
            split, parts = parts[0], parts[1:]
        extra = {"split": split} if split else {}
        images_out.append(ImageRecord(key=r, file_name=r, source_id=r, extra=extra))
        if len(parts) == 1:
            warns.append(ImportWarning(r, "not in a class folder; imported with no label", "kept"))
            continue
        if len(parts) > 2:
            nested += 1
            warns.append(ImportWarning(r, f"in a nested folder; class taken from {parts[0]!r}", "repaired"))
        cls = parts[0]
        classes.setdefault(cls)
        proposals.append(Proposal(image_key=r, category=cls, kind="label", source_id=r))
    cats = [Category(name=c, source_id=i) for i, c in enumerate(sorted(classes))]
    return ImportBatch(format="imagefolder", source_file=str(root), images=images_out, categories=cats,
                       proposals=proposals, warnings=warns, info={}), root


# ---------------------------------------------------------------------- write


def _labels(snapshot) -> tuple[dict[int, list], int]:
    by_image: dict[int, list] = {}
    skipped = 0
    for a in snapshot.annotations:
        if a.kind != "label":
            skipped += 1
            continue
        by_image.setdefault(a.image_id, []).append(a)
    return by_image, skipped


def write_csv(snapshot, out: str | os.PathLike) -> dict[str, Any]:
    """One-hot class columns for multi-label data, else ``image_name,label_name`` rows.

    The layout follows the store's data, not the labels this export happens to hold: an imported
    file that gave an image two classes, or any one-hot CSV (whose all-zero rows are images checked and
    found to have no class, which image_name,label_name rows cannot say), makes the store multi-label
    (``Snapshot.multi_label``). Chosen
    from the exported labels alone, an export of a multi-label store in which no image had two
    labels accepted yet came out single-label: an image with a label still undecided was written
    with its other class only, an image whose labels were all rejected was dropped instead of being a
    row of zeros. A one-hot export has a column for every class of the store, exported or not (a
    class with no exported label is a checked absence, and the columns stay the same from export to
    export)."""
    from .snapshot import write_bytes_atomic, write_provenance

    by_image, skipped = _labels(snapshot)
    used = {a.category for v in by_image.values() for a in v}
    multi = any(len({a.category for a in v}) > 1 for v in by_image.values()) or bool(
        snapshot.multi_label and snapshot.multi_label())
    if multi:
        classes = list(dict.fromkeys([c.name for c in snapshot.categories] + sorted(used)))
    else:
        classes = [c.name for c in snapshot.categories if c.name in used]
    buf = io.StringIO()
    w = CsvRows(buf)
    provenance = []
    unlabelled = undecided = 0
    if multi:
        # A one-hot row says 0 for "checked, absent". An image with a label still undecided (pending or
        # flagged, and not exported) has not been checked: its row would turn that label, and every
        # class not marked, into a reviewed negative. Such an image is left out, and counted.
        # (An image whose labels are all decided, rejected ones included, is written: a rejected
        # label is a class checked absent; so is an image with no label at all.)
        held = snapshot.held_back_labels() if snapshot.held_back_labels else {}
        if "image_name" in classes:  # (two columns of one name: no reader can tell them apart)
            raise LabelreviewError(f"{out}: a class is named 'image_name', the name of the image column of a "
                                   "one-hot CSV; relabel it, or export another format (nothing was written)")
        w.writerow(["image_name", *classes])
        n = 1
        for im in snapshot.images:
            if held.get(im.id):
                undecided += 1
                continue
            n += 1
            anns = by_image.get(im.id, [])
            have = {a.category for a in anns}
            w.writerow([im.file_name, *[1 if c in have else 0 for c in classes]])
            provenance += [snapshot.provenance(a, f"line {n}:{a.category}") for a in anns]
    else:
        w.writerow(["image_name", "label_name"])
        n = 1
        for im in snapshot.images:
            anns = by_image.get(im.id, [])
            if not anns:
                unlabelled += 1
                continue
            n += 1
            w.writerow([im.file_name, anns[0].category])
            provenance += [snapshot.provenance(a, f"line {n}") for a in anns]
    out = Path(out)
    write_bytes_atomic(out, buf.getvalue().encode("utf-8"))
    side = write_provenance(out, provenance)
    res = {"file": str(out), "images": len(snapshot.images) - unlabelled - undecided,
           "annotations": len(provenance), "categories": len(classes),
           "layout": "one-hot" if multi else "single-label", "provenance": str(side)}
    if skipped or unlabelled or undecided:
        res["skipped"] = {k: v for k, v in (("not an image label", skipped), ("image with no label", unlabelled),
                                            ("image with a label not decided", undecided)) if v}
    return res


def _place_image(src: str, dst: str) -> bool:
    """The image at ``dst``: a hard link when it is on the same file system (no space used), else a
    copy. Never a symbolic link: a link out of the folder would be refused on import (image paths may
    not leave the image root), so the export could not be read back. False if the image is missing."""
    try:
        os.link(src, dst)
        return True
    except FileNotFoundError:
        return False
    except FileExistsError:  # never copied onto: a hard link there is another picture's own file
        raise LabelreviewError(f"{dst}: exists already; nothing was written") from None
    except OSError:  # another file system, or hard links not allowed here
        pass
    import shutil

    try:
        with open(src, "rb") as f, open(dst, "xb") as g:  # (x: never onto a file, let alone through a link)
            shutil.copyfileobj(f, g)
        shutil.copystat(src, dst)  # with the original's mode: a copy is readable by no one more
    except FileNotFoundError:
        return False
    return True


def write_imagefolder(snapshot, out: str | os.PathLike) -> dict[str, Any]:
    """``class/<image>``: each image hard-linked (or, across file systems, copied) into its class folder,
    so the export is a self-contained ImageFolder that imports back as it is."""
    by_image, skipped = _labels(snapshot)
    provenance = []
    unlabelled = 0
    missing = 0
    used: set[str] = set()
    splits = all((im.extra or {}).get("split") for im in snapshot.images if im.id in by_image)
    for a in (a for v in by_image.values() for a in v):  # every name checked before anything is written
        folder_name(a.category, "class")
    if splits:
        for im in snapshot.images:
            if im.id in by_image:
                folder_name(str(im.extra["split"]), "split")
    with FolderExport(out) as fx:
        for im in snapshot.images:
            anns = by_image.get(im.id, [])
            if not anns:
                unlabelled += 1
                continue
            base = im.file_name.rsplit("/", 1)[-1]
            # One file per (image, class): two labels of one image with the same class (two sources,
            # or one relabeled to the other's class) are one training sample, not two copies of it.
            # The file's provenance lists every label it stands for.
            of_class: dict[str, list] = {}
            for a in anns:
                of_class.setdefault(a.category, []).append(a)
            for cls, group in of_class.items():
                rel = f"{cls}/{base}"
                if splits:
                    rel = f"{im.extra['split']}/{rel}"
                # (another image with the same file name in this class folder: the image's id before it)
                rel = free_name(rel, used, lambda n, rel=rel: rel[: -len(base)] + (
                    f"{im.id}-{base}" if n == 1 else f"{im.id}-{n}-{base}"))
                target = fx.path(rel)
                if not _place_image(os.path.abspath(im.path), target):
                    missing += len(group)
                    continue
                provenance += [snapshot.provenance(a, rel) for a in group]
        fx.write(PROVENANCE_NAME, provenance_bytes(provenance))
        fx.commit()
    res = {"file": str(out), "images": len(snapshot.images) - unlabelled, "annotations": len(provenance),
           "categories": len({a.category for v in by_image.values() for a in v}),
           "provenance": str(Path(out) / PROVENANCE_NAME)}
    if skipped or unlabelled or missing:
        res["skipped"] = {k: v for k, v in (("not an image label", skipped), ("image with no label", unlabelled),
                                            ("image file missing", missing)) if v}
    if splits:
        # torchvision's ImageFolder numbers the classes by the folders it finds: a split without a
        # class (no val image of it) numbers every class after it differently from the others, and
        # a model trained on one split is scored on the other with shifted labels, silently.
        in_split: dict[str, set[str]] = {}
        for rel in used:
            split, cls = rel.split("/", 2)[:2]
            in_split.setdefault(split, set()).add(cls)
        every = set().union(*in_split.values())
        short = {sp: sorted(every - have) for sp, have in sorted(in_split.items()) if every - have}
        if short:
            res["splits_without_a_class"] = short
            res["warnings"] = [
                f"split {sp} has no image of {', '.join(cls[:5])}{' …' if len(cls) > 5 else ''}: torchvision's "
                "ImageFolder numbers classes by the folders it finds, so this split would number them unlike "
                "the others (give each split the same class list, e.g. a find_classes override)"
                for sp, cls in short.items()]
    return res


__all__ = ["read_csv", "read_imagefolder", "write_csv", "write_imagefolder"]
