"""Git checkpoint time as history grows: a checkpoint every 50 decisions, from 0 to 10k events.

Aim (DESIGN.md): a checkpoint commit takes <= 50 ms and stays flat as history grows. One reviewer
accepts random annotations of an imported store (1M boxes at scale 1) and calls `store.checkpoint()`
every 50 events, as `checkpoint_every = 50` does; every checkpoint is timed, split into its steps
(git add, diff, commit, ls-tree, index update). Compared in the same run: a bare `git add + commit`
of one small new file in a scratch repository (what git itself costs here). At the end, `verify`
of that history is timed (its git check re-hashes every committed version of the log).

    python benchmarks/bench_checkpoint.py                # 10k events on a 1M-annotation store
    python benchmarks/bench_checkpoint.py --scale 0.1    # 1k events, 100k annotations
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import _common as c

AIM_MS = 50.0


def git_floor(tmp: Path, n: int = 20) -> list[float]:
    """`git add` + `git commit` of one new 2 KB file per commit, in a scratch repository."""
    repo = tmp / "floor"
    repo.mkdir()
    env = c.bench_env()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    out = []
    for i in range(n):
        (repo / f"f{i}.txt").write_bytes(b"x" * 2048)
        t0 = time.perf_counter()
        subprocess.run(["git", "add", "--", "."], cwd=repo, check=True, env=env)
        subprocess.run(["git", "commit", "-q", "-m", f"c{i}"], cwd=repo, check=True, env=env)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="scales the store (1M annotations) and the history (10k events); default 1")
    ap.add_argument("--every", type=int, default=50, help="events per checkpoint (default 50)")
    ap.add_argument("--no-verify", action="store_true", help="skip timing verify of the history")
    ap.add_argument("--regen", action="store_true")
    args = ap.parse_args()

    n_ann = int(1_000_000 * args.scale)
    n_events = int(10_000 * args.scale)
    c.header(f"bench_checkpoint: checkpoint every {args.every} events up to {n_events:,} events "
             f"({n_ann:,} annotations)")
    from labelreview.review import ReviewSession
    from labelreview.store import Store, gitrepo

    with tempfile.TemporaryDirectory(prefix="lr-bench-ckpt-", dir=c.DATA) as tmp:
        tmp = Path(tmp)
        root, imp = c.boxes_store(tmp / "store", n_ann, args.regen)
        print(f"   built the store: import of {n_ann:,} boxes took {imp.wall:.1f} s")
        floor = git_floor(tmp)

        # Time each step of a checkpoint by wrapping the gitrepo functions it calls (no change to src/).
        steps: dict[str, float] = defaultdict(float)

        def timed(name, fn):
            def wrapper(*a, **k):
                t0 = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    steps[name] += (time.perf_counter() - t0) * 1000
            return wrapper

        for fn, label in (("add", "git add (gitrepo.add)"), ("staged", "git diff --cached (gitrepo.staged)"),
                          ("stage", "git add + diff --cached (gitrepo.stage)"),
                          ("commit_staged", "git commit (gitrepo.commit_staged)"),
                          ("blob_sizes", "git ls-tree (gitrepo.blob_sizes)")):
            if hasattr(gitrepo, fn):  # the steps as the checkpoint code of the day names them
                setattr(gitrepo, fn, timed(label, getattr(gitrepo, fn)))

        store = Store.open(root, author=c.AUTHOR)
        store.config.checkpoint_every = 10**9  # checkpoints are called by this loop
        session = ReviewSession(store)
        pending = [r[0] for r in store.conn.execute("SELECT id FROM annotations WHERE status='pending'")]
        ids = random.Random(7).sample(pending, n_events)
        rows = []  # (events so far, total ms, step ms..., log bytes)
        store.checkpoint()  # settle the repository (nothing to commit)
        decide_ms = []
        for i, ann in enumerate(ids, start=1):
            t0 = time.perf_counter()
            session.accept(ann)
            decide_ms.append((time.perf_counter() - t0) * 1000)
            if i % args.every == 0:
                steps.clear()
                t0 = time.perf_counter()
                sha = store.checkpoint()
                total = (time.perf_counter() - t0) * 1000
                assert sha
                log = max((root / "events").rglob("*.jsonl"), key=lambda p: p.stat().st_mtime)
                rows.append((i, total, dict(steps), log.stat().st_size))
        store.close()
        git_mb = c.du_mb(root / ".git")
        objects = subprocess.run(["git", "count-objects", "-v"], cwd=root, capture_output=True, text=True).stdout

        verify_run = None
        if not args.no_verify:
            verify_run = c.check(c.run_measured(c.labelreview_cmd("verify", "--no-images", "--store", str(root))),
                                 "verify")

    def dist(sel) -> str:
        ms = [r[1] for r in sel]
        p = c.percentiles(ms)
        return f"median {p[50]:6.1f}  p95 {p[95]:6.1f}  max {max(ms):6.1f} ms  (n={len(ms)})"

    first_k = [r for r in rows if r[0] <= max(args.every, n_events // 10)]
    last_k = [r for r in rows if r[0] > n_events - max(args.every, n_events // 10)]
    print()
    print(f"  RESULT (checkpoint wall time; one every {args.every} events)")
    print(f"  {'events 1..' + str(first_k[-1][0]):<26} {dist(first_k)}")
    print(f"  {'events ' + str(last_k[0][0] - args.every + 1) + '..' + str(last_k[-1][0]):<26} {dist(last_k)}")
    fp = c.percentiles(floor)
    print(f"  {'floor: bare git add+commit':<26} median {fp[50]:6.1f}  p95 {fp[95]:6.1f}  max {max(floor):6.1f} ms"
          f"  (n={len(floor)}, scratch repo, one 2 KB file)")
    print("\n  by step (median ms) at the start vs the end, and the log file git re-hashes each time:")
    names = list(dict.fromkeys(k for r in rows for k in r[2]))
    for name in names:
        a = c.median([r[2].get(name, 0.0) for r in first_k])
        b = c.median([r[2].get(name, 0.0) for r in last_k])
        print(f"    {name:<40} {a:7.1f} -> {b:7.1f}")
    rest_a = c.median([r[1] - sum(r[2].values()) for r in first_k])
    rest_b = c.median([r[1] - sum(r[2].values()) for r in last_k])
    print(f"    {'the rest (SQL, lock, rev-parse, python)':<40} {rest_a:7.1f} -> {rest_b:7.1f}")
    print(f"    {'log file written (the day log, or its part)':<40} {first_k[0][3] / 1e6:7.2f} -> {last_k[-1][3] / 1e6:7.2f} MB")
    print(f"    .git after {len(rows)} checkpoints: {git_mb:.0f} MB "
          f"({' '.join(l for l in objects.split(chr(10)) if l.startswith(('count', 'size:', 'in-pack')))})")
    print(f"    decisions between checkpoints: p50 {c.percentiles(decide_ms)[50]:.2f} ms")
    at = {r[0]: r[1] for r in rows}
    k1 = min(at, key=lambda e: abs(e - 1000))
    k10 = max(at)
    print()
    print(c.fmt_row(f"checkpoint after {k1:,} events", f"{at[k1]:.1f} ms", f"<= {AIM_MS:g} ms",
                    f"{c.verdict(at[k1], AIM_MS)}; bare git add+commit {fp[50]:.1f} ms"))
    print(c.fmt_row(f"checkpoint after {k10:,} events", f"{at[k10]:.1f} ms", f"<= {AIM_MS:g} ms",
                    f"{c.verdict(at[k10], AIM_MS)}"))
    growth = c.median([r[1] for r in last_k]) / c.median([r[1] for r in first_k])
    print(c.fmt_row("flat? last/first median", f"{growth:.2f}x", "~1x", "FLAT" if growth < 1.25 else "GROWS"))
    if verify_run:
        print(c.fmt_row(f"verify of this history", f"{verify_run.wall:.1f} s", "(info)",
                        f"{len(rows)} versions of the log; {verify_run.stdout.strip().splitlines()[-1]}"))


if __name__ == "__main__":
    main()
