"""Segment Anything masks: SA-1B's JSON, one file per image (``{"image": {...}, "annotations":
[...]}``), and ``SamAutomaticMaskGenerator`` output saved as JSON (a list of mask records in a file
named after its image, as segment-anything's ``scripts/amg.py --convert-to-rle`` writes it). A file,
or a folder of them (not its subfolders), with the images beside them or under ``--images``.

SAM's masks have no class: each becomes a proposal of class "object" (kind "rle"; relabel gives it
one). Its score is SAM's ``predicted_iou``; ``stability_score``, ``crop_box`` and ``point_coords``
are kept with it (exported as COCO keys). Each file is read by the COCO reader as a one-image COCO
document, so masks are checked as COCO's are (an RLE whose runs do not cover its size, a box past
the image...), and every warning and error names the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..model import Category, ImportBatch, ImportWarning, InputError
from . import images as imgs
from .coco import load_json

#: The class every SAM mask is proposed as.
CLASS = "object"
_SAM_KEYS = ("segmentation", "predicted_iou")


def is_sam(doc: Any) -> bool:
    """Whether a parsed JSON document is a Segment Anything file (either layout)."""
    if isinstance(doc, dict):
        return isinstance(doc.get("image"), dict) and "annotations" in doc and "images" not in doc
    return (isinstance(doc, list) and bool(doc) and isinstance(doc[0], dict)
            and all(k in doc[0] for k in _SAM_KEYS) and "image_id" not in doc[0])


def _files(p: Path) -> list[Path]:
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise InputError(p.name, "", "no such file or folder")
    found = sorted(q for q in p.iterdir() if q.suffix.lower() == ".json" and q.is_file()
                   and not imgs.is_hidden(q.name))
    if not found:
        raise InputError(p.name, "", "no .json files in this folder (Segment Anything writes one per image)")
    return found


def _image_beside(stem: str, root: Path) -> str | None:
    """The image an amg.py file is named after: ``<stem>.<an image extension>`` under the root."""
    if root.is_dir():
        for q in sorted(root.glob(f"{_glob_escape(stem)}.*")):
            if imgs.is_image_name(q.name) and q.is_file():
                return q.name
    return None


def _glob_escape(s: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in s)


def _coco_doc(f: Path, doc: Any, next_id: int, root: Path, warns: list[ImportWarning]) -> dict | None:
    """The one-image COCO document of a SAM file (None: its image cannot be found, said in ``warns``)."""
    shown = f.name
    if isinstance(doc, dict):
        im = doc["image"]
        masks = doc["annotations"]
        if not isinstance(masks, list):
            raise InputError(shown, "annotations", "must be a list")
        image = {"id": im.get("image_id"), "file_name": im.get("file_name"),
                 "width": im.get("width"), "height": im.get("height")}
        image.update({k: v for k, v in im.items() if k not in ("image_id", "file_name", "width", "height")})
    else:
        masks = doc
        name = _image_beside(f.stem, root)
        if name is None:
            warns.append(ImportWarning(shown, f"no image named {f.stem}.* under {root} for its {len(masks)} "
                                       "mask(s); skipped", "skipped"))
            return None
        size = masks[0].get("segmentation", {}).get("size") if isinstance(masks[0].get("segmentation"), dict) else None
        h, w = size if isinstance(size, list) and len(size) == 2 else (None, None)
        image = {"id": next_id, "file_name": name, "width": w, "height": h}
    anns = []
    for i, m in enumerate(masks):
        if not isinstance(m, dict):
            raise InputError(shown, f"annotations[{i}]", "a mask must be a JSON object")
        a = {k: v for k, v in m.items() if k != "predicted_iou"}
        a.update(image_id=image["id"], category_id=1, score=m.get("predicted_iou"))
        anns.append(a)
    return {"images": [image], "annotations": anns, "categories": [{"id": 1, "name": CLASS}]}


def read(path: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[ImportBatch, Path]:
    from .coco import _read_dataset

    p = Path(path)
    root = Path(images) if images else (p.parent if p.is_file() else p)
    warns: list[ImportWarning] = []
    images_out, proposals = [], []
    cats = [Category(name=CLASS, source_id=1)]
    seen_keys: dict[str, str] = {}
    for n, f in enumerate(_files(p), start=1):
        doc = load_json(f)
        if not is_sam(doc):
            if p.is_dir():
                warns.append(ImportWarning(f.name, "not a Segment Anything file; skipped", "skipped"))
                continue
            raise InputError(f.name, "top level", 'not a Segment Anything file: expected SA-1B\'s {"image": ..., '
                             '"annotations": [...]} or a list of masks with "segmentation" and "predicted_iou"')
        coco = _coco_doc(f, doc, n, root, warns)
        if coco is None:
            continue
        batch = _read_dataset(f.name, coco, None, root)
        got = list(batch.proposals)
        for im in batch.images:
            if im.key in seen_keys:
                raise InputError(f.name, "image", f"image id {im.source_id!r} is also the image of "
                                 f"{seen_keys[im.key]}: one picture per file, each with its own id")
            seen_keys[im.key] = f.name
        images_out += batch.images
        proposals += got
        warns += [ImportWarning(f"{f.name}: {w.where}", w.problem, w.action) for w in batch.warnings]
    return ImportBatch(format="sam", source_file=str(p), images=images_out, categories=cats,
                       proposals=proposals, warnings=warns, info={}), root


__all__ = ["read", "is_sam", "CLASS"]
