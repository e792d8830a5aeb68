"""Wall time of `labelreview status` on a 1M-annotation store, and what the command line imports.

Aim (DESIGN.md): `labelreview status` <= 0.5 s on the 1M store; the CLI never imports textual.
Compared in the same run: `python -c pass` and `python -c "import labelreview.cli"` (interpreter
and import floor). Each is run `--repeat` times after one warm-up; median and best are shown.
The author is not set in the environment, as for a real user (so git config is asked, as it is then).

    python benchmarks/bench_startup.py --store DIR      # e.g. the store bench_verify.py --keep DIR made
    python benchmarks/bench_startup.py                  # builds 1M annotations + 100k events first
    python benchmarks/bench_startup.py --scale 0.1      # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import _common as c

AIM_S = 0.5

CHECK_MODULES = r"""
import sys
from labelreview.cli import main
rc = main(["status", "--store", sys.argv[1]])
heavy = ["textual", "rich", "PIL", "numpy", "pycocotools", "git", "concurrent.futures", "sqlite_utils"]
print("MODULES " + " ".join(f"{m}={'yes' if m in sys.modules else 'no'}" for m in heavy))
sys.exit(rc)
"""

PHASES = r"""
import sys, time
t0 = time.perf_counter()
def mark(what):
    global t0
    t = time.perf_counter(); print(f"    {what:<40} {(t - t0) * 1000:7.1f} ms"); t0 = t
import labelreview.cli as cli
mark("import labelreview.cli")
from labelreview.store import Store, find_store
mark("import labelreview.store (PIL, git, ...)")
from labelreview.store.identity import resolve_identity
resolve_identity(None, cwd=sys.argv[1])
mark("resolve_identity (git config x2)")
s = Store.open(find_store(explicit=sys.argv[1]), recover=False)
mark("Store.open without recover")
s.recover()
mark("recover() (list + stat logs)")
counts = s.counts()
mark("counts() (6 queries)")
s.close()
"""


def env_without_author() -> dict[str, str]:
    env = c.bench_env()
    env.pop("LABELREVIEW_AUTHOR", None)
    return env


def series(cmd: list[str], repeat: int, env: dict[str, str]) -> list[c.Run]:
    c.check(c.run_measured(cmd, env=env), " ".join(cmd[-3:]))  # warm-up
    return [c.check(c.run_measured(cmd, env=env), " ".join(cmd[-3:])) for _ in range(repeat)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="an existing store (default: build 1M annotations + 100k events)")
    ap.add_argument("--scale", type=float, default=1.0, help="when building: fraction of 1M annotations")
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()

    c.header("bench_startup: `labelreview status` wall time")
    tmp_ctx = tempfile.TemporaryDirectory(prefix="lr-bench-startup-", dir=c.DATA)
    try:
        if args.store:
            root = Path(args.store).resolve()
        else:
            n_ann = int(1_000_000 * args.scale)
            root, imp = c.boxes_store(Path(tmp_ctx.name) / "store", n_ann)
            n_ev = n_ann // 10
            c.write_sealed_events(root, n_ev, writers=4, per_day=max(1, n_ev // 100))
            c.check(c.run_measured(c.labelreview_cmd("reindex", "--store", str(root))), "reindex")
            c.check(c.run_measured(c.labelreview_cmd("commit", "--store", str(root))), "commit")
        env = env_without_author()
        run = c.check(c.run_measured(c.labelreview_cmd("status", "--json", "--store", str(root)), env=env), "status")
        import orjson

        counts = orjson.loads(run.stdout)
        print(f"   store {root}: {counts['total']:,} annotations, {counts['images']:,} images, "
              f"{counts['events']:,} events")

        status = series(c.labelreview_cmd("status", "--store", str(root)), args.repeat, env)
        bare = series([sys.executable, "-c", "pass"], args.repeat, env)
        imp_cli = series([sys.executable, "-c", "import labelreview.cli"], args.repeat, env)
        # The installed entry point, as a user types it (its wrapper script included).
        entry = None
        exe = Path(sys.executable).with_name("labelreview")
        if exe.exists():
            entry = series([str(exe), "status", "--store", str(root)], args.repeat, env)

        mods = c.check(c.run_measured([sys.executable, "-c", CHECK_MODULES, str(root)], env=env), "modules")
        mod_line = next(l for l in mods.stdout.splitlines() if l.startswith("MODULES"))[8:]
        print("\n  where `status` goes (one run, in-process):")
        ph = c.check(c.run_measured([sys.executable, "-c", PHASES, str(root)], env=env), "phases")
        print(ph.stdout.rstrip())
        it = c.run_measured([sys.executable, "-X", "importtime", "-c", "import sys; from labelreview.cli import main; "
                             "main(['status', '--store', sys.argv[1]])", str(root)], env=env)
        rows = []
        for line in it.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                parts = [p.strip() for p in line[len("import time:"):].split("|")]
                if parts[1].isdigit():
                    rows.append((int(parts[1]), parts[2]))
        top = [r for r in sorted(rows, reverse=True) if not r[1].startswith(" " * 6)][:12]
        print("\n  slowest imports of `status` (cumulative, -X importtime):")
        for us, name in top:
            print(f"    {us / 1000:7.1f} ms  {name.strip()}")
    finally:
        tmp_ctx.cleanup()

    def fig(runs: list[c.Run]) -> str:
        w = [r.wall for r in runs]
        return f"median {c.median(w) * 1000:6.0f} ms  best {min(w) * 1000:6.0f} ms  cpu median {c.median([r.cpu for r in runs]) * 1000:5.0f} ms"

    med = c.median([r.wall for r in status])
    print()
    print(f"  RESULT ({args.repeat} runs each after a warm-up)")
    print(f"  {'labelreview status (python -c main)':<38} {fig(status)}")
    if entry:
        print(f"  {'labelreview status (entry point)':<38} {fig(entry)}")
    print(f"  {'python -c pass':<38} {fig(bare)}")
    label = 'python -c "import labelreview.cli"'
    print(f"  {label:<38} {fig(imp_cli)}")
    print()
    shown = entry or status
    print(c.fmt_row("labelreview status on the store", f"{c.median([r.wall for r in shown]):.2f} s",
                    f"<= {AIM_S:g} s", f"{c.verdict(c.median([r.wall for r in shown]), AIM_S)} (median); "
                    f"bare interpreter {c.median([r.wall for r in bare]):.2f} s"))
    textual = "textual=no" in mod_line
    print(c.fmt_row("textual imported by the CLI?", "no" if textual else "YES", "no",
                    ("OK" if textual else "FAILS") + f"; after `status`: {mod_line}"))


if __name__ == "__main__":
    main()
