"""Detection CSV: one row per box, in pixels (Kaggle's and many vendors' deliveries, TensorFlow's
object-detection CSV). The header names the columns; which ones are read:

- the image: ``image_name``, ``filename``, ``file_name``, ``image``, ``path`` ... (as the classification CSV);
- the class: ``label_name``, ``class``, ``label``, ``category`` ...;
- the box, one of: corners ``x1 y1 x2 y2`` (or ``xmin ymin xmax ymax``, ``x_min ...``, ``left top right
  bottom``); a corner and a size ``x1 y1 w h`` (or ``x y w h``, ``x y width height``, ``xmin ymin width
  height``); or one ``bbox`` column of four numbers (``[0,1,1,2]``, ``0 1 1 2``...) read as corners,
  as Datumaro's Kaggle format writes it (the import says so, in a warning);
- optional: a score (``score``, ``confidence`` ...), and with corner columns the picture's
  ``width`` and ``height`` (TensorFlow's layout); any other column is kept with the label (extra).

A row whose class and box are empty is an image checked and found to hold nothing: imported with no
labels. Export (``csv-boxes``) writes ``image_name,label_name,x1,y1,x2,y2`` rows (and ``score``
when a label has one), one per exported label that has a box.
"""

from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path
from typing import Any

from ..model import Category, ImportBatch, ImportWarning, InputError, Proposal
from . import images as imgs
from .classification import _LABEL_COLS, _SCORE_COLS, CsvImages, csv_image_root, csv_rows, image_column
from .common import CsvRows, clip_bbox, fmt_num, parse_float

#: Corner column sets (x1, y1, x2, y2), then corner-and-size sets (x, y, w, h), by lower-case name.
_CORNERS = (("x1", "y1", "x2", "y2"), ("xmin", "ymin", "xmax", "ymax"), ("x_min", "y_min", "x_max", "y_max"),
            ("left", "top", "right", "bottom"))
_SIZES = (("x1", "y1", "w", "h"), ("x", "y", "w", "h"), ("x", "y", "width", "height"),
          ("xmin", "ymin", "width", "height"), ("x1", "y1", "width", "height"), ("x_min", "y_min", "width", "height"))
_BBOX_COLS = ("bbox", "box", "bounding_box")
_SPLIT = re.compile(r"[\s,;]+")


def box_columns(low: list[str]) -> tuple[str, tuple[int, ...]] | None:
    """How a header (lower-case names) gives a box: ("corners" | "size" | "bbox", column indices)."""
    for kind, sets in (("corners", _CORNERS), ("size", _SIZES)):
        for names in sets:
            if all(n in low for n in names):
                return kind, tuple(low.index(n) for n in names)
    for n in _BBOX_COLS:
        if n in low:
            return "bbox", (low.index(n),)
    return None


def _number(v: str, shown: str, where: str, what: str) -> float:
    x = parse_float(v)
    if x is None:
        raise InputError(shown, where, f"{what} {v!r} is not a number")
    return x


def read(path: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[ImportBatch, Path]:
    p, shown, rows, starts = csv_rows(path)
    header = [h.strip() for h in rows[0]]
    low = [h.lower() for h in header]
    if len(set(low)) != len(low):
        raise InputError(shown, "line 1", "two columns have the same name")
    box = box_columns(low)
    img_col = image_column(low)
    label_col = next((i for i, h in enumerate(low) if h in _LABEL_COLS), None)
    if box is None or img_col is None or label_col is None:
        missing = [what for what, got in (("an image", img_col), ("a class", label_col), ("a box", box))
                   if got is None]
        raise InputError(shown, "line 1", f"a detection CSV needs {', '.join(missing)} column: image_name "
                         "(or filename...), label_name (or class...), and x1,y1,x2,y2 (or xmin,ymin,xmax,ymax, "
                         "x,y,w,h, a bbox column)")
    kind, cols = box
    score_col = next((i for i, h in enumerate(low) if h in _SCORE_COLS), None)
    size_cols = None
    if kind != "size" and "width" in low and "height" in low:
        size_cols = (low.index("width"), low.index("height"))
    used = {img_col, label_col, *cols, *(size_cols or ()), *(() if score_col is None else (score_col,))}
    other = [i for i in range(len(header)) if i not in used]
    warns: list[ImportWarning] = []
    if kind == "bbox":
        warns.append(ImportWarning(f"{shown} line 1", f"column {header[cols[0]]!r} read as corners x1 y1 x2 y2 "
                                   "(Datumaro's Kaggle layout); name the columns x,y,w,h if they are a corner "
                                   "and a size", "kept"))
    root, (resolve, files, _) = csv_image_root(p, images, rows, img_col)
    rows_images = CsvImages(shown, header, img_col, root, resolve)
    proposals: list[Proposal] = []
    classes: dict[str, None] = {}
    for n, row in zip(starts[1:], rows[1:]):
        if not any(c.strip() for c in row):
            continue
        where = f"line {n}"
        im, found = rows_images.of_row(n, row, warns)
        rel = im.key
        if found:
            try:
                im.width, im.height = imgs.image_size(root / rel)
            except imgs.ImageProblem:
                pass
        if size_cols is not None and im.width is None:
            wv, hv = row[size_cols[0]].strip(), row[size_cols[1]].strip()
            if wv and hv:
                w, h = (_number(v, shown, where, header[c]) for v, c in zip((wv, hv), size_cols))
                if not (w >= 1 and h >= 1 and w.is_integer() and h.is_integer() and w * h < 2**62):
                    raise InputError(shown, where, f"picture size {wv}x{hv} is not a size")
                im.width, im.height = int(w), int(h)
        cls = row[label_col].strip()
        raw = [row[c].strip() for c in cols]
        if not cls and not any(raw):
            continue  # an image checked and found to hold nothing
        if not cls:
            raise InputError(shown, where, f"a box with an empty {header[label_col]!r}")
        if kind == "bbox":
            parts = [t for t in _SPLIT.split(raw[0].strip("[]() ")) if t]
            if len(parts) != 4:
                raise InputError(shown, where, f"{header[cols[0]]} {raw[0]!r} is not four numbers")
            vals = [_number(t, shown, where, header[cols[0]]) for t in parts]
        else:
            if not all(raw):
                raise InputError(shown, where, f"class {cls!r} with an empty box column")
            vals = [_number(v, shown, where, header[c]) for v, c in zip(raw, cols)]
        x, y = vals[0], vals[1]
        bw, bh = (vals[2], vals[3]) if kind == "size" else (vals[2] - x, vals[3] - y)
        if not (math.isfinite(x + bw) and math.isfinite(y + bh) and math.isfinite(bw) and math.isfinite(bh)):
            raise InputError(shown, where, "the box reaches past the largest number there is")
        if bw < 0 or bh < 0:
            raise InputError(shown, where, "the box's width or height is negative" if kind == "size"
                             else "the box's x2/y2 lie before its x1/y1")
        score = None
        if score_col is not None and row[score_col].strip():
            score = _number(row[score_col].strip(), shown, where, header[score_col])
        bbox = [x, y, bw, bh]
        if im.width and im.height and (x < 0 or y < 0 or x + bw > im.width or y + bh > im.height):
            bbox = clip_bbox(bbox, (im.height, im.width))
            if bbox is None:
                warns.append(ImportWarning(f"{shown} {where}", f"box lies outside the {im.width}x{im.height} image",
                                           "skipped"))
                continue
            warns.append(ImportWarning(f"{shown} {where}", f"box reaches outside the {im.width}x{im.height} image; "
                                       "clipped", "repaired"))
        classes.setdefault(cls)
        extra: dict[str, Any] = {header[i]: row[i] for i in other if row[i].strip()}
        proposals.append(Proposal(image_key=rel, category=cls, kind="bbox", bbox=bbox, score=score,
                                  source_id=f"{shown}:{n}", extra=extra))
    listed = set(rows_images.by_rel)
    for r in files:
        if r not in listed:
            warns.append(ImportWarning(r, f"image not in {shown}; not imported", "skipped"))
    cats = [Category(name=c, source_id=i) for i, c in enumerate(classes)]
    return ImportBatch(format="csv-boxes", source_file=str(p), images=rows_images.images, categories=cats,
                       proposals=proposals, warnings=warns, info={}), root


def write(snapshot, out: str | os.PathLike) -> dict[str, Any]:
    """``image_name,label_name,x1,y1,x2,y2[,score]`` rows, one per exported label with a box."""
    from .snapshot import write_bytes_atomic, write_provenance

    with_box = [a for a in snapshot.annotations if a.bbox is not None]
    scored = any(a.score is not None for a in with_box)
    buf = io.StringIO()
    w = CsvRows(buf)
    w.writerow(["image_name", "label_name", "x1", "y1", "x2", "y2", *(["score"] if scored else [])])
    provenance = []
    n = 1
    images = set()
    for a in sorted(with_box, key=lambda a: (snapshot.image_by_id[a.image_id].file_name, a.id)):
        x, y, bw, bh = a.bbox
        n += 1
        images.add(a.image_id)
        w.writerow([snapshot.image_by_id[a.image_id].file_name, a.category, fmt_num(x), fmt_num(y),
                    fmt_num(x + bw), fmt_num(y + bh), *([] if not scored else
                                                        ["" if a.score is None else repr(float(a.score))])])
        provenance.append(snapshot.provenance(a, f"line {n}"))
    out = Path(out)
    write_bytes_atomic(out, buf.getvalue().encode("utf-8"))
    side = write_provenance(out, provenance)
    res = {"file": str(out), "images": len(images), "annotations": len(provenance),
           "categories": len({a.category for a in with_box}), "provenance": str(side)}
    if len(with_box) != len(snapshot.annotations):
        res["skipped"] = {"no box (an image label)": len(snapshot.annotations) - len(with_box)}
    return res


__all__ = ["read", "write", "box_columns"]
