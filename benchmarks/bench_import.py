"""Import of a COCO-train-sized file vs pycocotools.coco.COCO on the same file, same run.

Aim (DESIGN.md): `labelreview import coco FILE --no-image-check` into a fresh store is no slower
than `COCO(FILE)` and its peak memory is no higher. Each contender runs in its own child process
(clean ru_maxrss from os.wait4), alternating, `--repeat` times each; the file is read once first so
both start with it in the page cache.

    python benchmarks/bench_import.py                # 118k images, 860k polygons, ~380 MB
    python benchmarks/bench_import.py --scale 0.1    # quick check
    python benchmarks/bench_import.py --profile      # + where labelreview's time goes (cProfile)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _common as c

PYCOCO = ("import sys\nfrom pycocotools.coco import COCO\nCOCO(sys.argv[1])\n")

# Phases of `labelreview import`, timed in one child, exactly as cmd_import runs them.
PHASES = r"""
import sys, time
from pathlib import Path
t0 = time.perf_counter()
def mem(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024
def mark(what):
    global t0
    t = time.perf_counter()
    print(f"    {what:<48} {t - t0:7.2f} s   peak in phase {mem('VmHWM:'):6.0f} MB, after {mem('VmRSS:'):6.0f} MB",
          flush=True)
    try:  # reset the high-water mark, so the next line shows that phase's own peak
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    t0 = time.perf_counter()
import argparse
from labelreview.store import Store, store as store_mod
from labelreview.formats import coco, registry
mark("imports")
store = Store.open(sys.argv[2])
mark("Store.open")
data = coco.load_json(sys.argv[1])
mark("(for scale: the whole file parsed at once, orjson, GC off)")
del data
# As cmd_import: lazy, so the annotations are parsed piece by piece while ingest stores them.
fmt, batch = registry.read("coco", sys.argv[1], argparse.Namespace(images=None, gt=None), store, lazy=True)
mark("registry.read: all but the annotations")
real_write = store_mod._write_import
def timed_write(*a, **k):
    mark("ingest: sha256 of the file, image paths")
    r = real_write(*a, **k)
    mark("ingest: annotations parsed, shards + index rows")
    return r
store_mod._write_import = timed_write
result = store.ingest(batch, source="bench", image_root=Path(sys.argv[1]).parent, check_images=False)
mark("ingest: rename, commit, wait for git hash-object")
store.checkpoint()
mark("store.checkpoint (git add + commit)")
store.close()
"""

PROFILE = r"""
import cProfile, pstats, sys
from labelreview.cli import main
prof = cProfile.Profile()
prof.enable()
rc = main(["import", "coco", sys.argv[1], "--no-image-check", "--source", "bench", "--store", sys.argv[2]])
prof.disable()
st = pstats.Stats(prof)
total = st.total_tt
print(f"    total profiled {total:.2f} s")
st.sort_stats("tottime").print_stats(18)
st.sort_stats("cumulative").print_stats(30)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of COCO train size (default 1)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each contender (default 2)")
    ap.add_argument("--regen", action="store_true", help="regenerate the data file")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the per-phase timing child")
    ap.add_argument("--profile", action="store_true", help="also run labelreview import under cProfile")
    args = ap.parse_args()

    c.header(f"bench_import: COCO import vs pycocotools.coco.COCO (scale {args.scale:g})")
    path = c.coco_polygons_file(args.scale, args.regen)
    c.drop_file_cache_hint(path)
    print(f"   file {path.name}: {path.stat().st_size / 1e6:.0f} MB")

    coco_runs, lr_runs = [], []
    with tempfile.TemporaryDirectory(prefix="lr-bench-import-", dir=c.DATA) as tmp:
        for r in range(args.repeat):
            order = ("pycocotools", "labelreview") if r % 2 == 0 else ("labelreview", "pycocotools")
            for who in order:
                if who == "pycocotools":
                    run = c.check(c.run_measured([sys.executable, "-c", PYCOCO, str(path)]), "COCO()")
                    coco_runs.append(run)
                else:
                    store = c.new_store(Path(tmp) / f"store{r}")
                    run = c.import_coco(store, path)
                    lr_runs.append(run)
                    size = c.du_mb(store)
                    forked = "".join(f" + forked reader {hwm:.0f} MB peak, {private:.0f} MB its own"
                                     for hwm, private in run.forked_mb)
                    print(f"   run {r + 1}: labelreview import  {run.wall:6.2f} s wall {run.cpu:6.2f} s cpu  "
                          f"peak {run.maxrss_mb:6.0f} MB{forked}"
                          f"   (store on disk {size:.0f} MB; {run.stdout.strip().splitlines()[0]})")
                    c.shutil.rmtree(store)
                    continue
                print(f"   run {r + 1}: pycocotools COCO()  {run.wall:6.2f} s wall {run.cpu:6.2f} s cpu  "
                      f"peak {run.maxrss_mb:6.0f} MB")

        best_c = min(x.wall for x in coco_runs)
        best_l = min(x.wall for x in lr_runs)
        med_c = c.median([x.wall for x in coco_runs])
        med_l = c.median([x.wall for x in lr_runs])
        rss_c = min(x.maxrss_mb for x in coco_runs)
        # A forked reader's peak counts the pages it shares with the parent; what it adds is its own
        # (private) memory: the import's footprint is the parent's peak plus that.
        rss_l = min(x.maxrss_mb + sum(private for _, private in x.forked_mb) for x in lr_runs)
        print()
        print(f"  RESULT (best of {args.repeat}; median in brackets)")
        print(c.fmt_row("labelreview import, time", f"{best_l:.2f} s", f"<= {best_c:.2f} s",
                        f"pycocotools COCO() {best_c:.2f} s [{med_c:.2f}]; labelreview [{med_l:.2f}]; "
                        f"ratio {best_l / best_c:.2f}x  {c.verdict(best_l, best_c)}"))
        cpu_c = min(x.cpu for x in coco_runs)
        cpu_l = min(x.cpu for x in lr_runs)
        print(c.fmt_row("labelreview import, CPU time", f"{cpu_l:.2f} s", f"<= {cpu_c:.2f} s",
                        f"pycocotools COCO() {cpu_c:.2f} s; ratio {cpu_l / cpu_c:.2f}x (less sensitive to "
                        "other load than wall time)"))
        print(c.fmt_row("labelreview import, peak RSS" + (" (+ reader's own)" if lr_runs[0].forked_mb else ""),
                        f"{rss_l:.0f} MB", f"<= {rss_c:.0f} MB",
                        f"pycocotools COCO() {rss_c:.0f} MB; ratio {rss_l / rss_c:.2f}x  {c.verdict(rss_l, rss_c)}"))

        if not args.no_breakdown:
            print("\n  where labelreview's import goes (one run, phases as cmd_import runs them; "
                  "the file is parsed whole once extra here, for scale):")
            store = c.new_store(Path(tmp) / "phases")
            run = c.check(c.run_measured([sys.executable, "-c", PHASES, str(path), str(store)]), "phases")
            print(run.stdout.rstrip())
            c.shutil.rmtree(store)
        if args.profile:
            print("\n  cProfile of `labelreview import` (profiling overhead inflates Python-heavy parts):")
            store = c.new_store(Path(tmp) / "profile")
            run = c.check(c.run_measured([sys.executable, "-c", PROFILE, str(path), str(store)]), "profile")
            print(run.stdout.rstrip())
            c.shutil.rmtree(store)


if __name__ == "__main__":
    main()
