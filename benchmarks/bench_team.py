"""Teams: several reviewers deciding at once on one store, and sync of many new events.

1. ``--procs`` reviewer processes (default 4) decide as fast as they can on one store for
   ``--seconds`` (default 30): each its own author, each on its own slice of the images (as the
   queue's leases would hand them out), each decision made on the state it read (``base``), with
   the store's own checkpoints every 50 decisions (git commits serialized between processes).
   Reported: decisions per second (all processes), latency of one decision p50/p99/max (the call
   that makes it durable), the checkpoints' time (made between decisions, as the review screen's
   worker makes them), errors (any exception other
   than a stale-decision refusal: must be 0), stale refusals, and whether every acknowledged
   decision is in the index and `verify` is green afterwards.
2. Sync of ``--events`` new events (default 10,000): two clones of one store and a bare remote;
   Bob records the events in his clone and syncs (push); then Alice, who decided on other
   annotations meanwhile, syncs: fetch, merge, replay, re-fold of the touched annotations, push.
   Reported: each sync's wall time, and `verify` on Alice's side after.

    python benchmarks/bench_team.py                       # 4 x 30 s, 10k events, 20k annotations
    python benchmarks/bench_team.py --seconds 5 --events 1000 --annotations 2000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CLASSES = ["person", "car", "dog", "cat", "bicycle", "bus", "truck", "bird"]

REVIEWER = textwrap.dedent("""
    import json, random, sys, time
    from labelreview.model import ConflictError
    from labelreview.review import ReviewSession
    from labelreview.store import Store

    root, author, lo, hi, start, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \\
        float(sys.argv[5]), float(sys.argv[6])
    classes = json.loads(sys.argv[7])
    store = Store.open(root, author=author)
    s = ReviewSession(store, auto_checkpoint=False)  # as the review screen: checkpoints apart
    rng = random.Random(author)
    lat, ckpt, acked, stale, errors = [], [], [], 0, []
    while time.time() < start:
        time.sleep(0.001)
    end = start + seconds
    while time.time() < end:
        ann = store.annotation(rng.randrange(lo, hi))
        k = rng.randrange(4)
        t0 = time.perf_counter()
        try:
            if k == 0:
                ev = s.accept(ann.id, base=ann.last_event)
            elif k == 1:
                ev = s.reject(ann.id, base=ann.last_event)
            elif k == 2:
                ev = s.flag(ann.id, "occluded", base=ann.last_event)
            else:
                ev = s.relabel(ann.id, rng.choice([c for c in classes if c != ann.category]), base=ann.last_event)
        except ConflictError:
            stale += 1
            continue
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")
            continue
        if ev:  # (the same decision again records nothing: not counted)
            lat.append(time.perf_counter() - t0)
            acked.append(ev["hash"])
        if store.checkpoint_due():  # every 50 decisions (the review screen does this in a worker thread)
            t0 = time.perf_counter()
            try:
                store.checkpoint()
            except Exception as e:
                errors.append(f"checkpoint: {type(e).__name__}: {e}")
            ckpt.append(time.perf_counter() - t0)
    try:
        s.finish()
    except Exception as e:
        errors.append(f"final checkpoint: {type(e).__name__}: {e}")
    store.close()
    print(json.dumps({"lat": lat, "ckpt": ckpt, "acked": acked, "stale": stale, "errors": errors}))
""")


def make_coco(path: Path, n_ann: int, per_image: int = 10) -> None:
    rng = random.Random(1)
    n_img = max(1, n_ann // per_image)
    images = [{"id": i + 1, "file_name": f"img{i:06d}.jpg", "width": 640, "height": 480} for i in range(n_img)]
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]
    anns = []
    for k in range(n_ann):
        x, y = rng.uniform(0, 500), rng.uniform(0, 350)
        anns.append({"id": k + 1, "image_id": k // per_image + 1, "category_id": rng.randrange(len(CLASSES)) + 1,
                     "bbox": [x, y, rng.uniform(10, 130), rng.uniform(10, 120)], "score": rng.random(),
                     "area": 1.0, "iscrowd": 0})
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


def cli(*argv: str, author: str = "Bench <bench@example.org>", check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, LABELREVIEW_AUTHOR=author)
    proc = subprocess.run(["labelreview", *argv], capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise SystemExit(f"labelreview {' '.join(argv)} failed: {proc.stderr}")
    return proc


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def bench_reviewers(base: Path, n_ann: int, procs: int, seconds: float) -> None:
    root = base / "one-server"
    coco = base / "proposals.json"
    cli("init", str(root))
    cli("import", "coco", str(coco), "--images", str(base), "--no-image-check", "--store", str(root))
    start = time.time() + 3.0  # every process opened and waiting by then
    slice_ = n_ann // procs
    kids = [subprocess.Popen([sys.executable, "-c", REVIEWER, str(root), f"R{i} <r{i}@example.org>",
                              str(1 + i * slice_), str(1 + (i + 1) * slice_), str(start), str(seconds),
                              json.dumps(CLASSES)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(procs)]
    results = []
    for k in kids:
        out, err = k.communicate()
        if k.returncode != 0:
            raise SystemExit(f"a reviewer process failed: {err}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    lat = [x for r in results for x in r["lat"]]
    ckpt = [x for r in results for x in r["ckpt"]]
    acked = [h for r in results for h in r["acked"]]
    errors = [e for r in results for e in r["errors"]]
    stale = sum(r["stale"] for r in results)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from labelreview.store import Store

    with Store.open(root) as store:
        have = {r[0] for r in store.conn.execute("SELECT hash FROM events")}
        uncommitted = store.uncommitted()
    lost = len([h for h in acked if h not in have])
    t0 = time.perf_counter()
    verify = cli("verify", "--no-images", "--json", "--store", str(root), check=False)
    t_verify = time.perf_counter() - t0
    ok = json.loads(verify.stdout)["ok"] if verify.stdout else False
    commits = int(subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=root, capture_output=True,
                                 text=True).stdout)
    print(f"\n{procs} reviewer processes, {seconds:.0f} s, one store of {n_ann:,} annotations")
    print(f"  decisions          {len(lat):,} ({len(lat) / seconds:,.0f} per second, all processes)")
    per = [len(r["lat"]) / seconds for r in results]
    print(f"  per process        {', '.join(f'{p:,.0f}' for p in per)} per second")
    print(f"  decision latency   p50 {pct(lat, .5) * 1000:.1f} ms, p99 {pct(lat, .99) * 1000:.1f} ms, "
          f"max {max(lat) * 1000:.0f} ms (durable: log fsync'd, index updated)")
    print(f"  checkpoints        {len(ckpt)}: p50 {pct(ckpt, .5) * 1000:.0f} ms, max {max(ckpt) * 1000:.0f} ms "
          "(each process, every 50 decisions; git commits take turns)")
    print(f"  errors             {len(errors)}" + (f": {errors[:3]}" if errors else ""))
    print(f"  stale refusals     {stale}")
    print(f"  lost decisions     {lost} of {len(acked):,} acknowledged; {uncommitted} left uncommitted")
    print(f"  git commits        {commits}")
    print(f"  verify             {'OK' if ok else 'FAILED'} in {t_verify:.1f} s")


SEAL = textwrap.dedent("""
    import random, sys, time
    from labelreview.store import Store
    root, author, n, lo, hi, classes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \\
        int(sys.argv[5]), sys.argv[6].split(",")
    rng = random.Random(author)
    t0 = time.perf_counter()
    with Store.open(root, author=author) as store:
        for k in range(n):
            ann = store.annotation(rng.randrange(lo, hi))
            store.record(ann.id, "relabel", {"category": rng.choice([c for c in classes if c != ann.category]),
                                             "status": "relabeled"}, base=ann.last_event)
            if k % 1000 == 999:
                store.checkpoint()
        store.checkpoint()
    print(f"{time.perf_counter() - t0:.1f}")
""")


def bench_sync(base: Path, n_ann: int, n_events: int) -> None:
    remote = base / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    alice, bob = base / "alice", base / "bob"
    cli("init", str(alice))
    cli("import", "coco", str(base / "proposals.json"), "--images", str(base), "--no-image-check",
        "--store", str(alice))
    cli("remote", "add", "origin", str(remote), "--store", str(alice))
    cli("sync", "--store", str(alice), author="Alice <alice@example.org>")
    cli("clone", str(remote), str(bob), author="Bob <bob@example.org>")
    half = n_ann // 2
    # Bob: n_events decisions on the first half; Alice meanwhile: 1,000 on the second half.
    t_bob = subprocess.run([sys.executable, "-c", SEAL, str(bob), "Bob <bob@example.org>", str(n_events), "1",
                            str(half), ",".join(CLASSES)], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-c", SEAL, str(alice), "Alice <alice@example.org>", "1000", str(half),
                    str(n_ann), ",".join(CLASSES)], capture_output=True, text=True, check=True)
    t0 = time.perf_counter()
    push = json.loads(cli("sync", "--json", "--store", str(bob), author="Bob <bob@example.org>").stdout)
    t_push = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = json.loads(cli("sync", "--json", "--store", str(alice), author="Alice <alice@example.org>").stdout)
    t_get = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = json.loads(cli("sync", "--json", "--store", str(bob), author="Bob <bob@example.org>").stdout)
    t_back = time.perf_counter() - t0
    t0 = time.perf_counter()
    v = cli("verify", "--no-images", "--json", "--store", str(alice), check=False)
    t_verify = time.perf_counter() - t0
    ok = json.loads(v.stdout)["ok"] if v.stdout else False
    print(f"\nsync of {n_events:,} new events ({n_ann:,} annotations; Bob recorded them in {t_bob} s)")
    print(f"  Bob pushes         {t_push:.1f} s ({push['merge']})")
    print(f"  Alice syncs        {t_get:.1f} s: {got['events_received']:,} events received, "
          f"{got['annotations_refolded']:,} annotations re-folded, {got['merge']}, conflicts {got['conflicts']}")
    print(f"  Bob syncs back     {t_back:.1f} s: {back['events_received']:,} events received ({back['merge']})")
    print(f"  verify (Alice)     {'OK' if ok else 'FAILED'} in {t_verify:.1f} s "
          "(each sync is one CLI process: start-up included)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--annotations", type=int, default=20_000)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--skip", choices=["reviewers", "sync"], action="append", default=[])
    ap.add_argument("--keep", help="keep the stores in this folder")
    args = ap.parse_args()
    base = Path(args.keep or tempfile.mkdtemp(prefix="lr-bench-team-")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    try:
        make_coco(base / "proposals.json", args.annotations)
        if "reviewers" not in args.skip:
            bench_reviewers(base, args.annotations, args.procs, args.seconds)
        if "sync" not in args.skip:
            bench_sync(base, args.annotations, args.events)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
