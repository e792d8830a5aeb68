"""Verify of 1M events (images skipped) and rebuild of the index (`reindex`), on a 1M-annotation store.

Aims (DESIGN.md): verify of 1M events <= 10 s; rebuild of the index <= 60 s.
The store: an import of 1M box proposals (real CLI), then 1M valid sealed events written straight
to the logs (4 writers, 25 days, labelreview.store.eventlog.seal with the real chain fields, each
deciding on the annotation's current state), committed to git once per day, then `reindex`.
Both commands run as the real CLI in child processes, `--repeat` times. Compared in the same run:
the floor of a chain check (read every log, parse every line, re-hash it) done in one loop here.

    python benchmarks/bench_verify.py                  # 1M annotations, 1M events
    python benchmarks/bench_verify.py --scale 0.1      # quick
    python benchmarks/bench_verify.py --keep DIR       # keep the store (bench_startup.py --store DIR)
    python benchmarks/bench_verify.py --keep DIR --reuse   # measure again on that store
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _common as c

AIM_VERIFY_S = 10.0
AIM_REINDEX_S = 60.0

PHASES = r"""
import sys, time
from labelreview.store import Store
from labelreview.store import verify as v
store = Store.open(sys.argv[1])
report = v.Report()
for name, fn in (("hash chains (_check_chains)", lambda: v._check_chains(store.root, report)),
                 ("git history (_check_git)", lambda: v._check_git(store, report)),
                 ("index = replay (_check_index: fold in memory + compare)", lambda: v._check_index(store, report))):
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    print(f"    {name:<56} {time.perf_counter() - t0:6.2f} s  cpu {time.process_time() - c0:6.2f} s", flush=True)
print("    (one process here; `verify` runs the chains and the events table in a second one)")
print(f"    problems: {len(report.problems)}")
"""

PROFILE = r"""
import cProfile, pstats, sys
from labelreview.cli import main
prof = cProfile.Profile()
prof.enable()
main(sys.argv[1:])
prof.disable()
st = pstats.Stats(prof)
st.sort_stats("tottime").print_stats(16)
st.sort_stats("cumulative").print_stats(22)
"""


def floor_chain_check(root: Path) -> tuple[float, int]:
    """The least a chain check must do: read each log, parse each line, sha256 its canonical body."""
    from labelreview.store import canonical

    t0 = time.perf_counter()
    n = 0
    for p in sorted((root / "events").rglob("*.jsonl")):
        for line in p.read_bytes().splitlines():
            ev = canonical.loads(line)
            h = ev.pop("hash")
            assert canonical.sha256_hex(canonical.dumps(ev)) == h
            n += 1
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of 1M annotations and 1M events")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each command (default 2)")
    ap.add_argument("--keep", help="build the store here and keep it")
    ap.add_argument("--reuse", action="store_true", help="with --keep: reuse the store built there before")
    ap.add_argument("--breakdown", action="store_true", help="also time verify's three checks one by one")
    ap.add_argument("--profile", action="store_true", help="also run verify under cProfile")
    ap.add_argument("--regen", action="store_true")
    args = ap.parse_args()

    n_ann = int(1_000_000 * args.scale)
    n_events = int(1_000_000 * args.scale)
    c.header(f"bench_verify: verify and reindex, {n_events:,} events on {n_ann:,} annotations")
    tmp_ctx = tempfile.TemporaryDirectory(prefix="lr-bench-verify-", dir=c.DATA)
    try:
        root = Path(args.keep).resolve() if args.keep else Path(tmp_ctx.name) / "store"
        t0 = time.perf_counter()
        marker = root / ".labelreview" / f"bench-verify-{n_ann}-{n_events}"
        if args.keep and args.reuse and marker.exists():
            print(f"   reusing the store in {root} ({marker.name})")
        else:
            root, imp = c.boxes_store(root, n_ann, args.regen)
            print(f"   import of {n_ann:,} boxes: {imp.wall:.1f} s")
            per_day = max(1, n_events // 100)  # 4 writers x 25 days
            info = c.write_sealed_events(root, n_events, writers=4, per_day=per_day)
            logs_mb = c.du_mb(root / "events")
            print(f"   wrote {info['events']:,} sealed events ({logs_mb:.0f} MB of logs, {info['writers']} writers, "
                  f"{info['days']} days, {info['commits']} git commits) in {info['seconds']:.0f} s")
            marker.touch()

        reindex, verify = [], []
        for r in range(args.repeat):
            run = c.check(c.run_measured(c.labelreview_cmd("reindex", "--store", str(root))), "reindex")
            reindex.append(run)
            print(f"   run {r + 1}: reindex  {run.wall:6.1f} s wall {run.cpu:6.1f} s cpu  peak {run.maxrss_mb:5.0f} MB"
                  f"   {run.stdout.strip()}")
            if r == 0:
                c.check(c.run_measured(c.labelreview_cmd("commit", "--store", str(root))), "commit")
        for r in range(args.repeat):
            run = c.run_measured(c.labelreview_cmd("verify", "--no-images", "--store", str(root)))
            verify.append(run)
            print(f"   run {r + 1}: verify   {run.wall:6.1f} s wall {run.cpu:6.1f} s cpu  peak {run.maxrss_mb:5.0f} MB"
                  f"   {run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-300:]}")
            if run.returncode != 0:
                print(run.stdout[-2000:])
        print(f"   store made in {time.perf_counter() - t0:.0f} s")

        floor_s, n = floor_chain_check(root)
        if args.breakdown:
            print("\n  where verify's time goes (one run, in-process):")
            run = c.check(c.run_measured([sys.executable, "-c", PHASES, str(root)]), "phases")
            print(run.stdout.rstrip())
        if args.profile:
            print("\n  cProfile of `labelreview verify --no-images`:")
            run = c.run_measured([sys.executable, "-c", PROFILE, "verify", "--no-images", "--store", str(root)])
            print(run.stdout.rstrip())
    finally:
        tmp_ctx.cleanup()

    bv = min(x.wall for x in verify)
    br = min(x.wall for x in reindex)
    print()
    print(f"  RESULT (best of {args.repeat}; median in brackets)")
    print(c.fmt_row(f"verify of {n_events:,} events", f"{bv:.1f} s", f"<= {AIM_VERIFY_S:g} s",
                    f"{c.verdict(bv, AIM_VERIFY_S)} [{c.median([x.wall for x in verify]):.1f}]; "
                    f"cpu {min(x.cpu for x in verify):.1f} s; "
                    f"floor (read+parse+re-hash every line, one loop) {floor_s:.1f} s for {n:,}"))
    print(c.fmt_row("reindex (rebuild of the index)", f"{br:.1f} s", f"<= {AIM_REINDEX_S:g} s",
                    f"{c.verdict(br, AIM_REINDEX_S)} [{c.median([x.wall for x in reindex]):.1f}]; "
                    f"cpu {min(x.cpu for x in reindex):.1f} s; "
                    f"{n_ann:,} annotations + {n_events:,} events"))


if __name__ == "__main__":
    main()
