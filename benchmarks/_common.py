"""Shared helpers for the store benchmarks: data generators, child-process measurement, statistics.

Not a benchmark itself. Every generator is seeded, so a file made twice is the same file; generated
files are cached in ``benchmarks/_data/`` (git-ignored) and reused when present.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"

# The 80 COCO classes with their real (gappy) ids.
COCO_CATEGORIES = [
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"),
    (36, "snowboard", "sports"), (37, "sports ball", "sports"), (38, "kite", "sports"),
    (39, "baseball bat", "sports"), (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
    (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"), (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
    (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"),
    (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"),
    (65, "bed", "furniture"), (67, "dining table", "furniture"), (70, "toilet", "furniture"),
    (72, "tv", "electronic"), (73, "laptop", "electronic"), (74, "mouse", "electronic"),
    (75, "remote", "electronic"), (76, "keyboard", "electronic"), (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"), (79, "oven", "appliance"), (80, "toaster", "appliance"),
    (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"),
    (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"),
    (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
]
SIZES = [(640, 480), (480, 640), (640, 427), (427, 640), (500, 375), (640, 512), (612, 612), (640, 360)]

AUTHOR = "Bench Reviewer <bench@example.org>"


# ---------------------------------------------------------------------- environment


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: a fixed author, so no `git config` lookups differ."""
    env = dict(os.environ)
    env.setdefault("LABELREVIEW_AUTHOR", AUTHOR)
    env.setdefault("GIT_AUTHOR_NAME", "Bench Reviewer")
    env.setdefault("GIT_AUTHOR_EMAIL", "bench@example.org")
    env.setdefault("GIT_COMMITTER_NAME", "Bench Reviewer")
    env.setdefault("GIT_COMMITTER_EMAIL", "bench@example.org")
    env.update(extra)
    return env


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1e6:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = ""
    try:
        load = ", load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        pass
    return f"{os.cpu_count()} cores {cpu}{mem}{load}; Python {platform.python_version()}"


def code_version() -> str:
    """The commit measured, and whether src/ had uncommitted changes at the time."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=HERE.parent,
                               capture_output=True, text=True).stdout.strip()
        return f"labelreview at {sha}" + (f" + {len(dirty.splitlines())} uncommitted src changes" if dirty else "")
    except OSError:
        return "labelreview (version unknown)"


def header(title: str) -> None:
    print(f"== {title}")
    print(f"   {datetime.now().strftime('%Y-%m-%d %H:%M')}  {machine()}")
    print(f"   {code_version()}")


def labelreview_cmd(*args: str) -> list[str]:
    """The real command line, run by this interpreter (same as the `labelreview` entry point)."""
    return [sys.executable, "-c", "import sys; from labelreview.cli import main; sys.exit(main())", *args]


# ---------------------------------------------------------------------- measuring


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child and the children it waited for (e.g. git)
    maxrss_mb: float  # peak resident set (VmHWM) of the child itself, MB; nan if unknown
    returncode: int
    stdout: str
    stderr: str
    #: processes it forked (not exec'd): (VmHWM, private memory at exit) in MB, each
    forked_mb: list[tuple[float, float]] = field(default_factory=list)


# Runs a Python child and records its own VmHWM at exit. Not ru_maxrss: on Linux a forked child's
# ru_maxrss starts at the parent's RSS at fork time (kept across exec), which would charge this
# (large, data-generating) benchmark process to every child. VmHWM belongs to the exec'd image only.
#
# A child the command forks (a large import reads its annotations in one) ends with os._exit and
# writes nothing there: it appends its own figures to the file's ".forked" twin instead, its VmHWM
# (which counts the pages it shares with the parent since the fork) and its private memory at exit.
_HWM_WRAPPER = r"""
import os, sys
_out = os.environ.pop("LR_BENCH_HWM")
_me = os.getpid()
def _hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            with open(_out, "w") as f:
                f.write(line.split()[1])
def _forked_exit(code, _exit=os._exit):
    if os.getpid() != _me:
        try:
            hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
            private = sum(int(l.split()[1]) for l in open("/proc/self/smaps_rollup") if l.startswith("Private_"))
            with open(_out + ".forked", "a") as f:
                f.write(f"{hwm} {private}\n")
        except (OSError, StopIteration):
            pass
    _exit(code)
os._exit = _forked_exit
code = sys.argv[1]
sys.argv = ["-c", *sys.argv[2:]]
try:
    exec(compile(code, "<bench child>", "exec"), {"__name__": "__main__"})
finally:
    _hwm()
"""


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None) -> Run:
    """Run one child; its wall time and, for ``python -c CODE`` children, its own peak RSS."""
    import tempfile

    cmd = list(cmd)
    env = dict(env or bench_env())
    hwm_file = None
    if len(cmd) >= 3 and cmd[0] == sys.executable and cmd[1] == "-c":
        fd, hwm_file = tempfile.mkstemp(prefix="lr-hwm-")
        os.close(fd)
        env["LR_BENCH_HWM"] = hwm_file
        cmd = [sys.executable, "-c", _HWM_WRAPPER, *cmd[2:]]
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    rss = float("nan")
    forked_mb: list[tuple[float, float]] = []
    if hwm_file:
        try:
            rss = int(Path(hwm_file).read_text() or "0") / 1024.0 or float("nan")
        except (OSError, ValueError):
            pass
        forked = Path(hwm_file + ".forked")
        try:
            for line in forked.read_text().splitlines():
                hwm, private = line.split()
                forked_mb.append((int(hwm) / 1024.0, int(private) / 1024.0))
        except (OSError, ValueError):
            pass
        forked.unlink(missing_ok=True)
        Path(hwm_file).unlink(missing_ok=True)
    return Run(wall, cpu, rss, proc.returncode, proc.stdout.decode(errors="replace"),
               proc.stderr.decode(errors="replace"), forked_mb)


def check(run: Run, what: str) -> Run:
    if run.returncode != 0:
        raise SystemExit(f"{what} failed ({run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}")
    return run


def percentiles(values: Sequence[float], ps: Sequence[float] = (50, 95, 99)) -> dict[float, float]:
    a = np.asarray(values, dtype=float)
    return {p: float(np.percentile(a, p)) for p in ps}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def verdict(value: float, aim: float) -> str:
    return "MEETS" if value <= aim else "MISSES"


def fmt_row(name: str, value: str, aim: str, comparison: str = "") -> str:
    return f"  {name:<34} {value:>14}   aim {aim:<14} {comparison}"


def drop_file_cache_hint(path: Path) -> None:
    """Read a file once so every contender starts with it in the page cache (fair, repeatable)."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def time_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ---------------------------------------------------------------------- generators


def _cached(name: str, make: Callable[[Path], None], regen: bool = False) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / name
    if regen or not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        t0 = time.perf_counter()
        make(tmp)
        os.replace(tmp, path)
        print(f"   generated {path.relative_to(HERE.parent)} ({path.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t0:.1f} s")
    else:
        print(f"   reusing {path.relative_to(HERE.parent)} ({path.stat().st_size / 1e6:.0f} MB)")
    return path


def _images(rng: np.random.Generator, n: int) -> tuple[list[dict], np.ndarray, np.ndarray]:
    size_idx = rng.integers(0, len(SIZES), n)
    ws = np.array([SIZES[i][0] for i in size_idx])
    hs = np.array([SIZES[i][1] for i in size_idx])
    base = datetime(2013, 11, 14, 11, 18, 45)
    images = []
    for i in range(n):
        iid = 9 + i * 3  # sparse ids, like COCO's
        images.append({
            "license": int(1 + i % 8), "file_name": f"{iid:012d}.jpg",
            "coco_url": f"http://images.cocodataset.org/train2017/{iid:012d}.jpg",
            "height": int(hs[i]), "width": int(ws[i]),
            "date_captured": (base + timedelta(seconds=i * 97)).strftime("%Y-%m-%d %H:%M:%S"),
            "flickr_url": f"http://farm{1 + i % 9}.staticflickr.com/{1000 + i % 8000}/{iid}_{iid * 7 % 10**10:010x}_z.jpg",
            "id": iid,
        })
    return images, ws, hs


def _doc(images: list[dict], annotations: list[dict]) -> dict:
    return {
        "info": {"description": "labelreview benchmark data (synthetic, COCO-shaped)", "version": "1.0",
                 "year": 2017, "contributor": "bench", "date_created": "2017/09/01"},
        "licenses": [{"url": f"http://creativecommons.org/licenses/{i}/2.0/", "id": i, "name": f"License {i}"}
                     for i in range(1, 9)],
        "images": images,
        "annotations": annotations,
        "categories": [{"supercategory": s, "id": c, "name": n} for c, n, s in COCO_CATEGORIES],
    }


def make_coco_polygons(path: Path, scale: float = 1.0, seed: int = 0) -> None:
    """COCO-train-shaped instances file: 118k images, 860k annotations at scale 1 (~376 MB).

    Polygons of 10-27 points (20-54 numbers, 2 decimals), ~8 % in two parts; ~1 % iscrowd with an
    uncompressed RLE (as COCO's crowd annotations are) whose counts sum to height*width.
    """
    rng = np.random.default_rng(seed)
    n_img = max(10, int(round(118_287 * scale)))
    n_ann = max(50, int(round(860_001 * scale)))
    images, ws, hs = _images(rng, n_img)
    img_of = rng.integers(0, n_img, n_ann)
    cat_ids = np.array([c for c, _, _ in COCO_CATEGORIES])
    cats = cat_ids[np.minimum(rng.geometric(0.08, n_ann) - 1, 79)]  # skewed, person most common
    crowd = rng.random(n_ann) < 0.01
    two = (rng.random(n_ann) < 0.08) & ~crowd
    W, H = ws[img_of].astype(float), hs[img_of].astype(float)
    # Object size: log-uniform radius between 4 px and a third of the image.
    r = np.exp(rng.uniform(np.log(4.0), np.log(np.minimum(W, H) / 3.0)))
    cx = rng.uniform(r, W - r)
    cy = rng.uniform(r, H - r)
    # Parts: one per annotation, a second (smaller, offset) for `two`.
    part_ann = np.concatenate([np.arange(n_ann), np.nonzero(two)[0]])
    part_ann.sort(kind="stable")
    n_parts = len(part_ann)
    npts = rng.integers(10, 28, n_parts)
    second = np.zeros(n_parts, bool)
    second[1:] = part_ann[1:] == part_ann[:-1]
    pr = np.where(second, r[part_ann] * 0.4, r[part_ann])
    pcx = np.clip(cx[part_ann] + np.where(second, r[part_ann] * 0.6, 0.0), 0, W[part_ann])
    pcy = np.clip(cy[part_ann] + np.where(second, r[part_ann] * 0.5, 0.0), 0, H[part_ann])
    pt_part = np.repeat(np.arange(n_parts), npts)
    starts = np.concatenate([[0], np.cumsum(npts)[:-1]])
    k = np.arange(len(pt_part)) - starts[pt_part]
    theta = 2 * np.pi * (k + rng.uniform(-0.3, 0.3, len(pt_part))) / npts[pt_part]
    rad = pr[pt_part] * rng.uniform(0.55, 1.0, len(pt_part))
    xs = np.clip(pcx[pt_part] + rad * np.cos(theta), 0, W[part_ann][pt_part] - 0.01)
    ys = np.clip(pcy[pt_part] + rad * np.sin(theta), 0, H[part_ann][pt_part] - 0.01)
    xy = np.round(np.stack([xs, ys], axis=1), 2).ravel().tolist()
    # Box and area per annotation from its points.
    pt_ann = part_ann[pt_part]
    x0 = np.full(n_ann, np.inf)
    y0 = np.full(n_ann, np.inf)
    x1 = np.full(n_ann, -np.inf)
    y1 = np.full(n_ann, -np.inf)
    np.minimum.at(x0, pt_ann, xs)
    np.minimum.at(y0, pt_ann, ys)
    np.maximum.at(x1, pt_ann, xs)
    np.maximum.at(y1, pt_ann, ys)
    x0, y0 = np.round(x0, 2), np.round(y0, 2)
    bw, bh = np.round(x1 - x0, 2), np.round(y1 - y0, 2)
    area = np.round(bw * bh * rng.uniform(0.45, 0.8, n_ann), 4)
    bboxes = np.stack([x0, y0, bw, bh], axis=1).tolist()
    area_l, cats_l, img_l = area.tolist(), cats.tolist(), img_of.tolist()
    img_ids = [im["id"] for im in images]
    polys: list[list[list[float]]] = [[] for _ in range(n_ann)]
    pos = 0
    pa = part_ann.tolist()
    for p, n in enumerate(npts.tolist()):
        polys[pa[p]].append(xy[pos:pos + 2 * n])
        pos += 2 * n
    annotations = []
    crowd_l = crowd.tolist()
    for i in range(n_ann):
        if crowd_l[i]:
            h, w = int(H[i]), int(W[i])
            cuts = np.sort(rng.integers(0, h * w, int(rng.integers(60, 400))))
            counts = np.diff(np.concatenate([[0], cuts, [h * w]])).tolist()
            seg: Any = {"counts": counts, "size": [h, w]}
        else:
            seg = polys[i]
        annotations.append({"segmentation": seg, "area": area_l[i], "iscrowd": int(crowd_l[i]),
                            "image_id": img_ids[img_l[i]], "bbox": bboxes[i], "category_id": cats_l[i],
                            "id": 100_000 + i * 2})
    path.write_bytes(orjson.dumps(_doc(images, annotations)))


def make_coco_boxes(path: Path, n_ann: int, seed: int = 1) -> None:
    """Model proposals: ``n_ann`` boxes with scores on n_ann/10 images, 80 classes."""
    rng = np.random.default_rng(seed)
    n_img = max(1, n_ann // 10)
    images, ws, hs = _images(rng, n_img)
    img_of = np.sort(rng.integers(0, n_img, n_ann))
    W, H = ws[img_of].astype(float), hs[img_of].astype(float)
    bw = np.round(rng.uniform(4, W / 2), 2)
    bh = np.round(rng.uniform(4, H / 2), 2)
    x = np.round(rng.uniform(0, W - bw), 2)
    y = np.round(rng.uniform(0, H - bh), 2)
    cat_ids = np.array([c for c, _, _ in COCO_CATEGORIES])
    cats = cat_ids[np.minimum(rng.geometric(0.08, n_ann) - 1, 79)].tolist()
    score = np.round(rng.beta(2, 2, n_ann), 4).tolist()
    boxes = np.stack([x, y, bw, bh], axis=1).tolist()
    area = np.round(bw * bh, 2).tolist()
    img_ids = [im["id"] for im in images]
    il = img_of.tolist()
    annotations = [{"id": i + 1, "image_id": img_ids[il[i]], "category_id": cats[i], "bbox": boxes[i],
                    "area": area[i], "iscrowd": 0, "score": score[i], "segmentation": []}
                   for i in range(n_ann)]
    path.write_bytes(orjson.dumps(_doc(images, annotations)))


def coco_polygons_file(scale: float, regen: bool = False) -> Path:
    return _cached(f"coco-polygons-x{scale:g}.json", lambda p: make_coco_polygons(p, scale), regen)


def coco_boxes_file(n_ann: int, regen: bool = False) -> Path:
    return _cached(f"coco-boxes-{n_ann}.json", lambda p: make_coco_boxes(p, n_ann), regen)


# ---------------------------------------------------------------------- stores


def new_store(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    check(run_measured(labelreview_cmd("init", str(path))), "labelreview init")
    return path


def import_coco(store: Path, coco: Path) -> Run:
    return check(run_measured(labelreview_cmd("import", "coco", str(coco), "--no-image-check",
                                              "--source", "bench", "--store", str(store))),
                 "labelreview import")


def boxes_store(path: Path, n_ann: int, regen: bool = False) -> tuple[Path, Run]:
    """A fresh store holding one import of ``n_ann`` box proposals (made by the real CLI)."""
    coco = coco_boxes_file(n_ann, regen)
    new_store(path)
    run = import_coco(path, coco)
    return path, run


def write_sealed_events(store: Path, n_events: int, *, writers: int = 4, per_day: int = 10_000,
                        seed: int = 2, git_commit_per_day: bool = True) -> dict[str, Any]:
    """Append ``n_events`` valid, sealed, hash-chained events straight to the store's logs.

    The events decide on real annotations of the store (read from its index) with the right
    ``base``, so a rebuild applies every one of them. Writers take turns; each writer's events of
    one UTC day go to that day's file, exactly as ``Store.record`` would write them. With
    ``git_commit_per_day``, the logs are committed after each day (history as checkpoints leave it:
    every file's versions are prefixes of it), which is what verify's git check walks.
    """
    import sqlite3

    from labelreview.store import eventlog

    rng = np.random.default_rng(seed)
    conn = sqlite3.connect(store / ".labelreview" / "index.sqlite")
    rows = conn.execute("SELECT id, image_id, category, status, last_event FROM annotations ORDER BY id").fetchall()
    heads = {w: tuple(r) for w, *r in conn.execute("SELECT writer, seq, hash FROM writers")}
    conn.close()
    if not rows:
        raise SystemExit("the store has no annotations to decide on")
    ids = [r[0] for r in rows]
    state = {r[0]: [r[1], r[2], r[3], r[4]] for r in rows}  # image, category, status, last_event
    names = [n for _, n, _ in COCO_CATEGORIES]
    who = [(f"Reviewer {k} <r{k}@example.org>", f"r{k}", f"host{k % 2}") for k in range(writers)]
    wkey = [f"r{k}-example.org/host{k % 2}" for k in range(writers)]  # Identity.writer: slugs
    seqs = {w: heads.get(w, (0, None)) for w in wkey}
    actions = ["accept", "accept", "accept", "relabel", "flag", "reject"]
    day0 = datetime(2025, 3, 3, 8, 0, tzinfo=timezone.utc)
    pick = rng.integers(0, len(ids), n_events).tolist()
    act = rng.integers(0, len(actions), n_events).tolist()
    newcat = rng.integers(0, len(names), n_events).tolist()
    buffers: dict[str, list[bytes]] = {}
    commits = 0
    events_per_day_all = per_day * writers
    t_day_start = time.perf_counter()

    def flush(day_index: int) -> None:
        nonlocal commits
        for rel, lines in buffers.items():
            p = store / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "ab") as f:
                f.write(b"".join(lines))
        buffers.clear()
        if git_commit_per_day:
            subprocess.run(["git", "add", "--", "events"], cwd=store, check=True, env=bench_env())
            subprocess.run(["git", "commit", "-q", "-m", f"bench events, day {day_index + 1}"], cwd=store,
                           check=True, env=bench_env())
            commits += 1

    for i in range(n_events):
        day = i // events_per_day_all
        k = i % writers
        w = wkey[k]
        author, login, host = who[k]
        ann = ids[pick[i]]
        img, cat, status, last = state[ann]
        action = actions[act[i]]
        if action == "relabel":
            c2 = names[newcat[i]]
            if c2 == cat:
                c2 = names[(newcat[i] + 1) % len(names)]
            new = {"category": c2, "status": "relabeled"}
            reason = "wrong-class"
        elif action == "flag":
            new, reason = {"category": cat, "status": "flagged"}, "loose-box"
        elif action == "reject":
            new, reason = {"category": cat, "status": "rejected"}, "false-positive"
        else:
            new, reason = {"category": cat, "status": "accepted"}, None
        seq, prev = seqs[w]
        ts = (day0 + timedelta(days=day, microseconds=(i % events_per_day_all) * 1_000_000 // 3)
              ).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        ev = {"v": eventlog.EVENT_VERSION, "writer": w, "seq": seq + 1, "ts": ts, "author": author,
              "login": login, "host": host, "action": action, "annotation": ann, "image": img,
              "old": {"category": cat, "status": status}, "new": new, "reason": reason, "comment": None,
              "base": last, "undoes": None, "prev": prev}
        ev, line = eventlog.seal(ev)
        seqs[w] = (seq + 1, ev["hash"])
        state[ann] = [img, new["category"], new["status"], ev["hash"]]
        buffers.setdefault(eventlog.day_file(w, ts), []).append(line)
        if (i + 1) % events_per_day_all == 0 or i + 1 == n_events:
            flush(day)
    return {"events": n_events, "writers": writers, "days": (n_events - 1) // events_per_day_all + 1,
            "commits": commits, "seconds": time.perf_counter() - t_day_start}


def du_mb(path: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total / 1e6


def sha_short(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 24):
            h.update(b)
    return h.hexdigest()[:12]
