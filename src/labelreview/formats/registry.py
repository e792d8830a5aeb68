"""Which module reads or writes which format, and format detection for ``import auto``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..model import ImageRecord, ImportBatch, LabelreviewError

READERS = ("coco",)
WRITERS = ("coco",)


def detect(path: str | os.PathLike) -> str:
    """The format of a file or folder when it is unambiguous; otherwise a clear error."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".json":
        with open(p, "rb") as f:
            head = f.read(4096).lstrip()
        if head.startswith(b"[") or b'"images"' in head or b'"annotations"' in head or b'"categories"' in head:
            return "coco"
    raise LabelreviewError(f"{path}: cannot tell the format; name it (one of {', '.join(READERS)})")


def default_image_root(fmt: str, path: str | os.PathLike) -> Path:
    """Where a format's image paths start when --images is not given: beside the file."""
    p = Path(path)
    return p.parent if p.is_file() else p


def _store_images(store) -> list[ImageRecord]:
    """A results file names images by source id only: resolve them against the store's images."""
    return [ImageRecord(key=f"store:{im.id}", file_name=im.file_name, width=im.width, height=im.height,
                        source_id=im.source_id) for im in store.images()]


def read(fmt: str, path: str | os.PathLike, args: Any, store) -> tuple[str, ImportBatch]:
    if fmt == "auto":
        fmt = detect(path)
    if fmt == "coco":
        from . import coco

        gt = None
        if getattr(args, "gt", None):
            gt = coco.gt_images_from(args.gt)
        else:
            head = Path(path).read_bytes()[:64].lstrip() if Path(path).is_file() else b""
            if head.startswith(b"["):
                gt = _store_images(store)
                if not gt:
                    raise LabelreviewError(f"{path}: a results list names images only by id; give the "
                                           "ground-truth file with --gt or import it first")
        return fmt, coco.read(path, gt_images=gt)
    raise LabelreviewError(f"unknown import format {fmt!r}; use one of {', '.join(READERS)} or auto")


def write(fmt: str, snapshot, out: str | os.PathLike, args: Any) -> dict[str, Any]:
    if fmt == "coco":
        from . import coco

        return coco.write(snapshot, out)
    raise LabelreviewError(f"unknown export format {fmt!r}; use one of {', '.join(WRITERS)}")
