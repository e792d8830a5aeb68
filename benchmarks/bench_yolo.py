"""Import and export of many YOLO label files, against a plain Python reader/writer of the same files.

    python benchmarks/bench_yolo.py                 # 100k images, ~5 boxes each
    python benchmarks/bench_yolo.py --n 20000 --store   # also the full store ingest

Generates an Ultralytics dataset (data.yaml, images/train/*.png, labels/train/*.txt) in a temporary
folder, then times, each in a fresh child process (so peak memory is its own):

- plain:        open every label file, split lines, float() the values (what a 10-line script does)
- plain+size:   the same plus each image's size via Pillow (what normalized coordinates need)
- labelreview:  formats.yolo.read: pairing, header sizes (EXIF orientation), validation, pixels
- export plain: write the same boxes back as normalized text with f-strings
- labelreview export: formats.yolo.write of a snapshot of the batch (atomic folder, provenance)
- store ingest (--store): Store.ingest of the batch (hashes every image, writes the import folder)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent / "tests"))


def generate(root: Path, n: int, seed: int = 0) -> int:
    from PIL import Image

    rnd = random.Random(seed)
    sizes = [(640, 480), (1280, 720), (1920, 1080), (800, 600)]
    blobs = []
    for w, h in sizes:
        buf = io.BytesIO()
        Image.new("1", (w, h)).save(buf, "PNG")
        blobs.append(buf.getvalue())
    (root / "images/train").mkdir(parents=True)
    (root / "labels/train").mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames:\n" + "".join(f"  {i}: class{i}\n" for i in range(20)))
    boxes = 0
    for i in range(n):
        k = rnd.randrange(len(sizes))
        (root / f"images/train/{i:07d}.png").write_bytes(blobs[k])
        lines = []
        for _ in range(rnd.randint(1, 9)):
            bw, bh = rnd.uniform(0.01, 0.5), rnd.uniform(0.01, 0.5)
            cx, cy = rnd.uniform(bw / 2, 1 - bw / 2), rnd.uniform(bh / 2, 1 - bh / 2)
            lines.append(f"{rnd.randrange(20)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
        boxes += len(lines)
        (root / f"labels/train/{i:07d}.txt").write_text("".join(lines))
    return boxes


# ---------------------------------------------------------------------- the measured steps (child side)


def plain_read(root: Path, with_size: bool) -> int:
    n = 0
    out = {}
    labels = root / "labels/train"
    images = root / "images/train"
    for name in sorted(os.listdir(labels)):
        rows = []
        with open(labels / name) as f:
            for line in f:
                parts = line.split()
                if parts:
                    rows.append((int(parts[0]), [float(v) for v in parts[1:]]))
        if with_size:
            from PIL import Image

            with Image.open(images / (name[:-4] + ".png")) as im:
                size = im.size
            rows.append(size)
        out[name] = rows
        n += len(rows)
    return n


def lr_read(root: Path):
    from labelreview.formats import yolo

    return yolo.read(root)


def plain_write(root: Path, out: Path) -> int:
    batch = lr_read(root)  # not timed: only the writing is
    t = time.perf_counter()
    sizes = {im.key: (im.width, im.height) for im in batch.images}
    files: dict[str, list[str]] = {}
    for p in batch.proposals:
        w, h = sizes[p.image_key]
        x, y, bw, bh = p.bbox
        files.setdefault(p.image_key, []).append(f"0 {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}\n")
    (out / "labels").mkdir(parents=True)
    for key, lines in files.items():
        with open(out / "labels" / (Path(key).stem + ".txt"), "w") as f:
            f.write("".join(lines))
    return time.perf_counter() - t


def lr_write(root: Path, out: Path) -> float:
    from labelreview.formats import yolo
    from test_formats_util import snapshot_of

    batch = lr_read(root)
    snap = snapshot_of(batch, root)
    t = time.perf_counter()
    yolo.write(snap, out)
    return time.perf_counter() - t


def lr_ingest(root: Path, store_dir: Path) -> float:
    from labelreview.store import Store

    batch = lr_read(root)
    Store.init(store_dir, name="bench")
    t = time.perf_counter()
    with Store.open(store_dir) as store:
        store.ingest(batch, source="bench", image_root=root)
    return time.perf_counter() - t


def child(step: str, root: str, out: str) -> None:
    root_p, out_p = Path(root), Path(out)
    t = time.perf_counter()
    extra = {}
    if step == "plain":
        extra["rows"] = plain_read(root_p, False)
    elif step == "plain+size":
        extra["rows"] = plain_read(root_p, True)
    elif step == "labelreview":
        b = lr_read(root_p)
        extra["labels"] = len(b.proposals)
        extra["warnings"] = len(b.warnings)
    elif step == "export-plain":
        t = time.perf_counter() - plain_write(root_p, out_p)
    elif step == "export-labelreview":
        t = time.perf_counter() - lr_write(root_p, out_p)
    elif step == "ingest":
        t = time.perf_counter() - lr_ingest(root_p, out_p)
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step": step, "seconds": dt, "peak_rss_mb": rss, **extra}))


def run(step: str, root: Path, out: Path) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", step, str(root), str(out)], capture_output=True,
                       text=True, check=False)
    if r.returncode:
        raise SystemExit(f"{step} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000, help="label files (one image each)")
    ap.add_argument("--store", action="store_true", help="also time the store ingest")
    ap.add_argument("--dir", help="work folder (default: a temporary one, removed after)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-yolo-"))
    try:
        root = work / "ds"
        t = time.perf_counter()
        boxes = generate(root, args.n)
        print(f"generated {args.n} images / label files, {boxes} boxes in {time.perf_counter() - t:.1f} s")
        rows = []
        for step in ("plain", "plain+size", "labelreview"):
            rows.append(run(step, root, work / "unused"))
        for step in ("export-plain", "export-labelreview"):
            out = work / step
            rows.append(run(step, root, out))
        if args.store:
            rows.append(run("ingest", root, work / "store"))
        base = {r["step"]: r["seconds"] for r in rows}
        print(f"\n{'step':<20} {'seconds':>8} {'per file':>10} {'peak RSS':>9}  vs plain")
        for r in rows:
            ref = base["export-plain"] if r["step"].startswith("export") else base["plain"]
            print(f"{r['step']:<20} {r['seconds']:8.2f} {r['seconds'] / args.n * 1e6:8.1f}us "
                  f"{r['peak_rss_mb']:7.0f}MB  x{r['seconds'] / ref:.2f}")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
