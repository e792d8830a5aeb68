"""Suspects first: how early the suspicion order finds injected label errors, and how fast it scores.

Builds a detection data set with known errors, imports it into a real store (the vendor's labels
and a model's predictions as two sources of the same images), and measures for the suspicion order,
file order and random order the share of injected errors found after reviewing 10 %, 20 % and 50 %
of the queue, and the average precision of the ranking. Then times scoring a ~1M-annotation store.

    python benchmarks/bench_suspicion.py                 # 5,000 images, then the 1M timing
    python benchmarks/bench_suspicion.py --no-scale      # quality only
    python benchmarks/bench_suspicion.py --scale-images 20000

The injected errors (in the vendor's labels; the clean labels are never imported):

- relabeled: 8 % of the boxes get another class (drawn by class frequency);
- moved: 5 % are shifted by 20-50 % of their size or scaled by 1.4-2x up or down (IoU 0.25-0.67);
- spurious: boxes amounting to 3 % are added (random class, a plausible size for it, anywhere);
- removed: 3 % of the boxes are dropped.

The model's predictions come from the clean labels: each box detected with a probability that falls
for small boxes (about 88 % recall overall), edges jittered by 5 % of the size, 4 % of detections
given a wrong class with a middling score, 2 % detected twice, and about 0.8 false positives per
image with low scores. Correct detections score Beta(6, 1.5), false positives Beta(1.5, 6).

The queue is every annotation of both sources (what `labelreview review --order suspicion` shows
with no filter). A relabeled, moved or spurious box counts as found when its annotation is reviewed.
A removed box has no annotation to review: it counts as found when a model prediction made from it
is reviewed (the reviewer accepts that prediction as the missing label); if the model did not
detect it either, no order can find it, and it stays in the denominator as never found.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

os.environ.setdefault("LABELREVIEW_AUTHOR", "Bench Reviewer <bench@example.org>")
os.environ.setdefault("GIT_AUTHOR_NAME", "Bench Reviewer")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@example.org")
os.environ.setdefault("GIT_COMMITTER_NAME", "Bench Reviewer")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@example.org")

from labelreview.formats import coco  # noqa: E402
from labelreview.model import AnnotationFilter  # noqa: E402
from labelreview.review import Queue, suspicion  # noqa: E402
from labelreview.store import Store, scores  # noqa: E402

CLASSES = ["person", "car", "chair", "bottle", "cup", "dog", "cat", "bicycle", "truck", "bird", "bench",
           "umbrella", "handbag", "book", "clock", "vase", "boat", "horse", "kite", "laptop"]
SIZES = [(640, 480), (480, 640), (640, 427), (500, 375), (612, 612), (1280, 720)]
KINDS = ("relabeled", "moved", "spurious", "removed")


# ---------------------------------------------------------------------- the data set


def class_model(rng: np.random.Generator):
    k = len(CLASSES)
    freq = 1.0 / np.arange(1, k + 1) ** 0.8
    freq /= freq.sum()
    mu_area = rng.uniform(-2.8, -0.8, k)  # log10 share of the image
    mu_aspect = rng.uniform(-0.7, 0.7, k)  # log w/h
    return freq, mu_area, mu_aspect


def sample_boxes(rng, n, cls, W, H, mu_area, mu_aspect):
    share = 10 ** np.clip(rng.normal(mu_area[cls], 0.35), -4, -0.15)
    aspect = np.exp(rng.normal(mu_aspect[cls], 0.2))
    w = np.minimum(np.sqrt(share * W * H * aspect), W - 1)
    h = np.minimum(np.sqrt(share * W * H / aspect), H - 1)
    x = rng.uniform(0, 1, n) * (W - w)
    y = rng.uniform(0, 1, n) * (H - h)
    return np.stack([x, y, w, h], axis=1)


def clip_boxes(b, W, H):
    x0 = np.clip(b[:, 0], 0, W - 1)
    y0 = np.clip(b[:, 1], 0, H - 1)
    x1 = np.clip(b[:, 0] + b[:, 2], x0 + 1, W)
    y1 = np.clip(b[:, 1] + b[:, 3], y0 + 1, H)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def make_dataset(n_images: int, seed: int, rates=(0.08, 0.05, 0.03, 0.03)):
    """Clean boxes, the vendor's copy with injected errors, and model predictions (arrays)."""
    rng = np.random.default_rng(seed)
    freq, mu_area, mu_aspect = class_model(rng)
    k = len(CLASSES)
    size_idx = rng.integers(0, len(SIZES), n_images)
    W = np.array([SIZES[i][0] for i in size_idx], float)
    H = np.array([SIZES[i][1] for i in size_idx], float)
    per_image = 1 + rng.poisson(6, n_images)
    img = np.repeat(np.arange(n_images), per_image)
    n = len(img)
    cls = rng.choice(k, n, p=freq)
    clean = clip_boxes(sample_boxes(rng, n, cls, W[img], H[img], mu_area, mu_aspect), W[img], H[img])

    # --- the vendor's labels: the clean ones with injected errors
    r_rel, r_mov, r_spur, r_rem = rates
    perm = rng.permutation(n)
    n_rel, n_mov, n_rem = int(r_rel * n), int(r_mov * n), int(r_rem * n)
    rel_idx = perm[:n_rel]
    mov_idx = perm[n_rel:n_rel + n_mov]
    rem_idx = perm[n_rel + n_mov:n_rel + n_mov + n_rem]
    v_cls = cls.copy()
    wrong = rng.choice(k, n_rel, p=freq)
    clash = wrong == cls[rel_idx]
    wrong[clash] = (wrong[clash] + 1 + rng.integers(0, k - 1, clash.sum())) % k
    v_cls[rel_idx] = wrong
    v_box = clean.copy()
    b = clean[mov_idx]
    shift = rng.random(n_mov) < 0.5
    f = rng.uniform(0.2, 0.5, n_mov)
    theta = rng.uniform(0, 2 * np.pi, n_mov)
    scale = rng.uniform(1.4, 2.0, n_mov) ** np.where(rng.random(n_mov) < 0.5, 1, -1)
    cx, cy = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    nw = np.where(shift, b[:, 2], b[:, 2] * np.sqrt(scale))
    nh = np.where(shift, b[:, 3], b[:, 3] * np.sqrt(scale))
    cx = cx + np.where(shift, f * b[:, 2] * np.cos(theta), 0)
    cy = cy + np.where(shift, f * b[:, 3] * np.sin(theta), 0)
    mi = img[mov_idx]
    v_box[mov_idx] = clip_boxes(np.stack([cx - nw / 2, cy - nh / 2, nw, nh], 1), W[mi], H[mi])
    keep = np.ones(n, bool)
    keep[rem_idx] = False
    kind = np.full(n, "", dtype=object)
    kind[rel_idx], kind[mov_idx] = "relabeled", "moved"
    n_spur = int(r_spur * n)
    s_img = rng.integers(0, n_images, n_spur)
    s_cls = rng.choice(k, n_spur, p=freq)
    s_box = clip_boxes(sample_boxes(rng, n_spur, s_cls, W[s_img], H[s_img], mu_area, mu_aspect), W[s_img], H[s_img])
    vendor = {
        "img": np.r_[img[keep], s_img], "cls": np.r_[v_cls[keep], s_cls], "box": np.r_[v_box[keep], s_box],
        "kind": np.r_[kind[keep], np.full(n_spur, "spurious", dtype=object)],
    }

    # --- the model's predictions, made from the clean labels
    share = clean[:, 2] * clean[:, 3] / (W[img] * H[img])
    p_det = np.where(share > 1e-2, 0.95, np.where(share > 1e-3, 0.88, 0.7))
    det = np.flatnonzero(rng.random(n) < p_det)
    twice = det[rng.random(len(det)) < 0.02]
    src = np.r_[det, twice]
    m_img = img[src]
    jit = rng.normal(0, 0.05, (len(src), 4)) * np.repeat(clean[src, 2:4], 2, axis=1)
    x0 = clean[src, 0] + jit[:, 0]
    x1 = clean[src, 0] + clean[src, 2] + jit[:, 1]
    y0 = clean[src, 1] + jit[:, 2]
    y1 = clean[src, 1] + clean[src, 3] + jit[:, 3]
    m_box = clip_boxes(np.stack([x0, y0, np.maximum(x1 - x0, 1), np.maximum(y1 - y0, 1)], 1), W[m_img], H[m_img])
    m_cls = cls[src].copy()
    confused = rng.random(len(src)) < 0.04
    other = (m_cls[confused] + 1 + rng.integers(0, k - 1, confused.sum())) % k
    m_cls[confused] = other
    m_score = np.where(confused, rng.beta(3, 3, len(src)), rng.beta(6, 1.5, len(src)))
    m_score[len(det):] *= 0.6  # the second detection of an object scores lower
    n_fp = rng.poisson(0.8 * n_images)
    f_img = rng.integers(0, n_images, n_fp)
    f_cls = rng.choice(k, n_fp, p=freq)
    f_box = clip_boxes(sample_boxes(rng, n_fp, f_cls, W[f_img], H[f_img], mu_area, mu_aspect), W[f_img], H[f_img])
    model = {
        "img": np.r_[m_img, f_img], "cls": np.r_[m_cls, f_cls], "box": np.r_[m_box, f_box],
        "score": np.round(np.r_[m_score, rng.beta(1.5, 6, n_fp)], 4),
        "clean": np.r_[src, np.full(n_fp, -1)],  # which clean box a prediction was made from
    }
    removed = np.zeros(n, bool)
    removed[rem_idx] = True
    return {"W": W, "H": H, "vendor": vendor, "model": model, "removed": removed, "n_clean": n}


def write_coco(path: Path, data: dict, part: dict, scored: bool) -> None:
    images = [{"id": i + 1, "file_name": f"{i + 1:07d}.jpg", "width": int(data["W"][i]), "height": int(data["H"][i])}
              for i in range(len(data["W"]))]
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]
    box = np.round(part["box"], 2)
    anns = []
    for i in range(len(part["img"])):
        a = {"id": i + 1, "image_id": int(part["img"][i]) + 1, "category_id": int(part["cls"][i]) + 1,
             "bbox": box[i].tolist(), "area": round(float(box[i, 2] * box[i, 3]), 2), "iscrowd": 0}
        if scored:
            a["score"] = float(part["score"][i])
        anns.append(a)
    path.write_bytes(orjson.dumps({"images": images, "categories": cats, "annotations": anns}))


def build_store(root: Path, data: dict, sources=("vendor", "model")) -> float:
    """Import the vendor's labels and the model's predictions (the real import path); seconds."""
    Store.init(root, name="suspicion-bench")
    files = root.parent / (root.name + "-files")
    files.mkdir(exist_ok=True)
    (files / "images").mkdir(exist_ok=True)
    write_coco(files / "vendor.json", data, data["vendor"], scored=False)
    write_coco(files / "model.json", data, data["model"], scored=True)
    t0 = time.perf_counter()
    with Store.open(root) as store:
        for name in sources:
            store.ingest(coco.read(files / f"{name}.json"), source=name, image_root=files / "images",
                         check_images=False)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------- measuring


def error_items(store: Store, data: dict) -> tuple[list[list[int]], list[str]]:
    """For every injected error, the annotation ids whose review finds it, and its kind."""
    by_src: dict[str, dict[int, int]] = {"vendor": {}, "model": {}}
    for ann_id, source, sid in store.conn.execute("SELECT id, source, source_id FROM annotations"):
        by_src[source][orjson.loads(sid)] = ann_id
    items, kinds = [], []
    for i, kind in enumerate(data["vendor"]["kind"]):
        if kind:
            items.append([by_src["vendor"][i + 1]])
            kinds.append(kind)
    made_from: dict[int, list[int]] = {}
    for i, c in enumerate(data["model"]["clean"].tolist()):
        if c >= 0 and data["removed"][c]:
            made_from.setdefault(c, []).append(by_src["model"][i + 1])
    for c in np.flatnonzero(data["removed"]).tolist():
        items.append(made_from.get(c, []))  # [] = the model missed it too: nobody can find it
        kinds.append("removed")
    return items, kinds


def evaluate(order: list[int], items: list[list[int]], kinds: list[str]) -> dict:
    pos = {a: i for i, a in enumerate(order)}
    n = len(order)
    first = np.array([min((pos[a] for a in it), default=n + 1) for it in items], dtype=np.int64)
    out = {f"found@{k}%": float(np.mean(first < k * n / 100)) for k in (10, 20, 50)}
    # AP over errors: each error is retrieved at the first of its items; never-found ones add 0.
    found = np.sort(first[first < n])
    precision = (np.arange(len(found)) + 1) / (found + 1)
    out["AP"] = float(precision.sum() / len(items))
    kinds_a = np.array(kinds)
    out["by_kind@20%"] = {k: float(np.mean(first[kinds_a == k] < 0.2 * n)) for k in KINDS}
    return out


def grouped(keys: list[tuple[int, int]]) -> list[int]:
    """The ranking grouped by image, in rank order of each image's most suspicious item (the
    alternative the queue does not use: see the README for why)."""
    by_image: dict[int, list[int]] = {}
    for a, img in keys:
        by_image.setdefault(img, []).append(a)
    return [a for items in by_image.values() for a in items]


def image_switches(store: Store, order: list[int], share: float) -> float:
    """Items reviewed per change of image in the first ``share`` of the queue."""
    image_of = dict(store.conn.execute("SELECT id, image_id FROM annotations").fetchall())
    head = [image_of[a] for a in order[: int(share * len(order))]]
    runs = 1 + sum(1 for x, y in zip(head, head[1:]) if x != y)
    return len(head) / runs


def queue_order(store: Store, order: str, seed: int = 0) -> list[int]:
    return list(Queue(store, AnnotationFilter(), order=order, seed=seed, resume=False).flat)


def quality(args) -> dict:
    print(f"== Suspicion ordering: {args.images} images, seed {args.seed}")
    data = make_dataset(args.images, args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-suspicion-"))
    try:
        root = work / "store"
        t_import = build_store(root, data)
        with Store.open(root) as store:
            t0 = time.perf_counter()
            info = suspicion.refresh(store, force=True)
            t_score = time.perf_counter() - t0
            items, kinds = error_items(store, data)
            vendor_ids = {r[0] for r in store.conn.execute("SELECT id FROM annotations WHERE source='vendor'")}
            n_ann = store.conn.execute("SELECT count(*) FROM annotations").fetchone()[0]
            counts = {k: kinds.count(k) for k in KINDS}
            unfindable = sum(1 for it in items if not it)
            print(f"   {data['n_clean']} clean boxes -> vendor {len(data['vendor']['img'])}, "
                  f"model {len(data['model']['img'])}; queue {n_ann} annotations; imported in {t_import:.1f} s,"
                  f" scored in {t_score:.2f} s ({info['mode']})")
            print(f"   injected errors: {sum(counts.values())} ({', '.join(f'{v} {k}' for k, v in counts.items())});"
                  f" {unfindable} removed boxes the model did not detect either (never findable)")
            ranked = scores.ranked_keys(store, AnnotationFilter())
            queue = queue_order(store, "suspicion")
            assert queue == [a for a, _ in ranked]
            results = {
                "suspicion (the queue)": evaluate(queue, items, kinds),
                "suspicion grouped by image": evaluate(grouped(ranked), items, kinds),
                "score ascending (queue)": evaluate(queue_order(store, "score"), items, kinds),
                "file (queue)": evaluate(queue_order(store, "file"), items, kinds),
                "random (queue)": evaluate(queue_order(store, "random", seed=args.seed), items, kinds),
            }
        # The same labels with no second source: only the signals of one source (geometry, duplicates).
        alone = work / "alone"
        build_store(alone, data, sources=("vendor",))
        with Store.open(alone) as store:
            suspicion.refresh(store, force=True)
            items_alone = [[a for a in it if a in vendor_ids] for it in items]
            results["suspicion, vendor labels alone"] = evaluate(queue_order(store, "suspicion"), items_alone, kinds)
        with Store.open(root) as store:
            image_switches_q = image_switches(store, queue, 0.2)
            image_switches_g = image_switches(store, grouped(ranked), 0.2)
            image_switches_f = image_switches(store, queue_order(store, "file"), 0.2)
        print()
        print(f"   {'order':<32} {'found@10%':>9} {'found@20%':>9} {'found@50%':>9} {'AP':>6}   "
              f"@20% by kind: " + " ".join(f"{k:>9}" for k in KINDS))
        for name, r in results.items():
            print(f"   {name:<32} {r['found@10%']:>9.1%} {r['found@20%']:>9.1%} {r['found@50%']:>9.1%} "
                  f"{r['AP']:>6.3f}   {'':14}" + " ".join(f"{r['by_kind@20%'][k]:>9.1%}" for k in KINDS))
        print(f"\n   items per image change in the first 20 %: suspicion queue "
              f"{image_switches_q:.2f}, grouped by image {image_switches_g:.2f}, file order {image_switches_f:.2f}")
        aim = results["suspicion (the queue)"]["found@20%"]
        print(f"\n   aim: >= 80 % of injected errors within the first 20 % of the queue: "
              f"{aim:.1%} {'MEETS' if aim >= 0.8 else 'MISSES'}")
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def timed(fn):
    """(wall seconds, CPU seconds of this process, result)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def scale(args) -> None:
    print(f"\n== Scoring time: {args.scale_images} images (~1M annotations)")
    data = make_dataset(args.scale_images, args.seed + 1)
    work = Path(tempfile.mkdtemp(prefix="bench-suspicion-scale-"))
    try:
        root = work / "store"
        t_import = build_store(root, data)
        with Store.open(root) as store:
            conn = store.conn
            n_ann = conn.execute("SELECT count(*) FROM annotations").fetchone()[0]
            print(f"   {n_ann} annotations on {args.scale_images} images (imported in {t_import:.0f} s)")
            w1, c1, cols = timed(lambda: scores.load_columns(conn))
            w2, c2, res = timed(lambda: suspicion.compute(cols))
            w3, c3, why = timed(lambda: suspicion.why_texts(cols, res))
            w4, c4, _ = timed(lambda: scores.save(store, cols.id, res.score, why, state={}, computed_at="bench"))
            print(f"   {'step':<34} {'wall s':>7} {'CPU s':>7}")
            for name, w, c in (("load columns (SQLite -> numpy)", w1, c1), ("compute (numpy)", w2, c2),
                               ("why texts (JSON)", w3, c3), ("write the scores", w4, c4)):
                print(f"   {name:<34} {w:>7.2f} {c:>7.2f}")
            print(f"   ({int((res.score > 0).sum())} annotations with a reason)")
            runs = [timed(lambda: suspicion.refresh(store, force=True))[:2] for _ in range(args.repeat)]
            walls, cpus = zip(*runs)
            print(f"   full refresh, {args.repeat} runs: wall median {np.median(walls):.1f} s (min {min(walls):.1f}),"
                  f" CPU median {np.median(cpus):.1f} s")
            from labelreview.review import ReviewSession

            session = ReviewSession(store, auto_checkpoint=False)
            ids = [r[0] for r in conn.execute("SELECT id FROM annotations WHERE source='vendor' LIMIT 100")]
            for a in ids:
                session.accept(a)
            w, c, info = timed(lambda: suspicion.refresh(store))
            print(f"   after 100 decisions: {info['mode']} refresh of {info['annotations']} annotations: "
                  f"wall {w:.2f} s, CPU {c:.2f} s")
            w, c, q = timed(lambda: Queue(store, AnnotationFilter(), order="suspicion", resume=False))
            print(f"   open the suspicion queue (scores fresh, {len(q)} items): wall {w:.2f} s, CPU {c:.2f} s")
            w, c, top = timed(lambda: suspicion.ranked(store, AnnotationFilter(statuses=["pending"]), limit=50))
            print(f"   ls --order suspicion --limit 50: wall {w:.2f} s, CPU {c:.2f} s")
        print(f"   load avg now {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale-images", type=int, default=68_000, help="images for the timing (~14.7 annotations each)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-scale", action="store_true")
    p.add_argument("--no-quality", action="store_true")
    args = p.parse_args(argv)
    print(f"   {os.cpu_count()} cores, load avg {' '.join(f'{v:.2f}' for v in os.getloadavg())}, "
          f"Python {sys.version.split()[0]}, numpy {np.__version__}")
    if not args.no_quality:
        quality(args)
    if not args.no_scale:
        scale(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
