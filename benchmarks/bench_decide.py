"""Latency of one durable decision (ReviewSession.accept: log line fsync'd + index updated) at 1M annotations.

Aim (DESIGN.md): p50 <= 2 ms at 1M annotations. The store is made by importing a generated file of
1M box proposals with the real CLI; then ~2000 accepts of random pending annotations are timed one
by one. Compared in the same run:
  - the floor: append one line of the same size + fsync (what durability alone costs on this disk);
  - the same decisions on a 10k-annotation store (does size matter?);
  - the same store after a year of history (4 writers x 365 day files): the write path lists logs;
  - with the default automatic checkpoint every 50 decisions (the call that commits is slower).

    python benchmarks/bench_decide.py               # 1M annotations
    python benchmarks/bench_decide.py --scale 0.1   # 100k, quick
    python benchmarks/bench_decide.py --profile     # + cProfile of 500 decisions
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import _common as c

AIM_P50_MS = 2.0


def floor_fsync(dirpath: Path, n: int, line_len: int) -> list[float]:
    """Append + fsync of one line, the way eventlog.append_durably does it (open, write, fsync, close)."""
    from labelreview.store import eventlog

    path = dirpath / "floor.jsonl"
    line = b"x" * (line_len - 1) + b"\n"
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        eventlog.append_durably(path, line)
        out.append((time.perf_counter() - t0) * 1000)
    path.unlink()
    return out


def decide(root: Path, n: int, *, checkpoint_every: int | None, seed: int, warmup: int = 20,
           profile: bool = False, cpu: list[float] | None = None) -> tuple[list[float], list[float], int]:
    """Time ``n`` accepts of random pending annotations; returns (all ms, ms of calls that checkpointed, line length).

    ``cpu``, if given, receives each call's CPU time of this process (ms): what the wall time would
    be on an idle machine, less the waits (fsync, locks)."""
    from labelreview.review import ReviewSession
    from labelreview.store import Store

    store = Store.open(root, author=c.AUTHOR)
    try:
        if checkpoint_every is not None:
            store.config.checkpoint_every = checkpoint_every
        pending = [r[0] for r in store.conn.execute("SELECT id FROM annotations WHERE status='pending'")]
        ids = random.Random(seed).sample(pending, n + warmup)
        session = ReviewSession(store)
        checkpoints: list[int] = []
        real_checkpoint = store.checkpoint

        def counting_checkpoint(*a, **k):
            checkpoints.append(1)
            return real_checkpoint(*a, **k)

        store.checkpoint = counting_checkpoint  # only to know which calls committed
        for ann in ids[:warmup]:
            session.accept(ann)
        times, with_ckpt = [], []
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        for ann in ids[warmup:]:
            before = len(checkpoints)
            c0 = time.process_time()
            t0 = time.perf_counter()
            ev = session.accept(ann)
            dt = (time.perf_counter() - t0) * 1000
            if cpu is not None:
                cpu.append((time.process_time() - c0) * 1000)
            assert ev is not None
            times.append(dt)
            if len(checkpoints) != before:
                with_ckpt.append(dt)
        if prof:
            import pstats

            prof.disable()
            st = pstats.Stats(prof)
            print(f"    cProfile of {n} decisions: {st.total_tt * 1000 / n:.2f} ms each under the profiler")
            st.sort_stats("tottime").print_stats(15)
            st.sort_stats("cumulative").print_stats(25)
        # The mean line of the log written last (a writer's log is in parts: not all events are in it).
        size, lines = store.conn.execute(
            "SELECT f.size, f.lines FROM event_files f WHERE f.path ="
            " (SELECT file FROM events ORDER BY ord DESC LIMIT 1)").fetchone()
        line_len = size // max(1, lines)
        store.checkpoint = real_checkpoint
        store.checkpoint()
    finally:
        store.close()
    return times, with_ckpt, line_len


def summary(ms: list[float]) -> str:
    p = c.percentiles(ms)
    return f"p50 {p[50]:6.2f}  p95 {p[95]:6.2f}  p99 {p[99]:6.2f}  max {max(ms):7.2f} ms  (n={len(ms)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of 1M annotations (default 1)")
    ap.add_argument("-n", type=int, default=2000, help="decisions timed per series (default 2000)")
    ap.add_argument("--no-history", action="store_true", help="skip the year-of-history series")
    ap.add_argument("--profile", action="store_true", help="cProfile 500 decisions on the big store")
    ap.add_argument("--regen", action="store_true")
    args = ap.parse_args()

    n_ann = int(1_000_000 * args.scale)
    c.header(f"bench_decide: one durable decision at {n_ann:,} annotations")
    with tempfile.TemporaryDirectory(prefix="lr-bench-decide-", dir=c.DATA) as tmp:
        tmp = Path(tmp)
        root, imp = c.boxes_store(tmp / "big", n_ann, args.regen)
        print(f"   built the store: import of {n_ann:,} boxes took {imp.wall:.1f} s (peak {imp.maxrss_mb:.0f} MB)")
        small, _ = c.boxes_store(tmp / "small", 10_000, args.regen)

        big_cpu: list[float] = []
        big_ms, _, line_len = decide(root, args.n, checkpoint_every=10**9, seed=1, cpu=big_cpu)
        floor_ms = floor_fsync(tmp, args.n, line_len)
        small_ms, _, _ = decide(small, args.n, checkpoint_every=10**9, seed=2)
        auto_ms, ckpt_ms, _ = decide(root, args.n, checkpoint_every=None, seed=3)

        if args.profile:
            decide(root, 500, checkpoint_every=10**9, seed=5, profile=True)

        hist_ms = None
        if not args.no_history:
            t0 = time.perf_counter()
            info = c.write_sealed_events(root, 4 * 365 * 25, writers=4, per_day=25, git_commit_per_day=False)
            ri = c.check(c.run_measured(c.labelreview_cmd("reindex", "--store", str(root))), "reindex")
            cm = c.check(c.run_measured(c.labelreview_cmd("commit", "--store", str(root))), "commit")
            print(f"   (reindex {ri.wall:.0f} s, commit {cm.wall:.0f} s)")
            n_files = len(list((root / "events").rglob("*.jsonl")))
            print(f"   added a year of history: {info['events']:,} events in {n_files} day files "
                  f"({time.perf_counter() - t0:.0f} s to make)")
            hist_ms, _, _ = decide(root, args.n, checkpoint_every=10**9, seed=4)
            if args.profile:
                decide(root, 200, checkpoint_every=10**9, seed=6, profile=True)

    p = c.percentiles(big_ms)
    print()
    print(f"  RESULT (per decision, wall ms; {args.n} random accepts per series)")
    print(f"  {'1M store (' + format(n_ann, ',') + ' annotations)':<40} {summary(big_ms)}")
    print(f"  {'  CPU time of the same calls':<40} {summary(big_cpu)}")
    print(f"  {'  floor: append+fsync of a ' + str(line_len) + ' B line':<40} {summary(floor_ms)}")
    print(f"  {'  10k-annotation store':<40} {summary(small_ms)}")
    if hist_ms:
        print(f"  {'  1M store + a year of day logs':<40} {summary(hist_ms)}")
    print(f"  {'  1M store, checkpoint every 50 (default)':<40} {summary(auto_ms)}")
    if ckpt_ms:
        print(f"  {'    of which the calls that committed':<40} {summary(ckpt_ms)}")
    print()
    print(c.fmt_row("decision p50 at 1M", f"{p[50]:.2f} ms", f"<= {AIM_P50_MS:g} ms",
                    f"{c.verdict(p[50], AIM_P50_MS)}; CPU p50 {c.percentiles(big_cpu)[50]:.2f} ms, fsync floor p50 {c.percentiles(floor_ms)[50]:.2f} ms, "
                    f"10k store p50 {c.percentiles(small_ms)[50]:.2f} ms"
                    + (f", with a year of logs p50 {c.percentiles(hist_ms)[50]:.2f} ms" if hist_ms else "")))


if __name__ == "__main__":
    main()
