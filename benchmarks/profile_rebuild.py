"""Where a rebuild of the index goes, statement by statement (a profiling aid, not a benchmark).

Rebuilds STORE's index into a scratch file with `store._rebuild_into` (the code `reindex` and
`verify` run), timing every SQL statement by its text; prints the total and the costliest kinds.
The store itself is not touched. E.g. on the store `bench_verify.py --keep DIR` leaves:

    python benchmarks/profile_rebuild.py benchmarks/_data/store-1m
    python benchmarks/profile_rebuild.py STORE --cprofile      # + cProfile (slower)
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

import _common as c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("--cprofile", action="store_true")
    args = ap.parse_args()

    from labelreview.store import schema
    from labelreview.store import store as S

    stats: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])

    class TimedConnection:
        def __init__(self, conn):
            self.conn = conn

        def _timed(self, key, fn, *a):
            t = time.perf_counter()
            try:
                return fn(*a)
            finally:
                s = stats[key]
                s[0] += 1
                s[1] += time.perf_counter() - t

        def execute(self, sql, *a):
            return self._timed(" ".join(sql.split())[:80], self.conn.execute, sql, *a)

        def executemany(self, sql, *a):
            return self._timed("MANY " + " ".join(sql.split())[:75], self.conn.executemany, sql, *a)

        def __getattr__(self, k):
            return getattr(self.conn, k)

    connect = schema.connect
    schema.connect = lambda p, *a, **k: TimedConnection(connect(p, *a, **k))
    c.header(f"profile_rebuild: {args.store}")
    root = Path(args.store).resolve()
    with tempfile.TemporaryDirectory(prefix="lr-rebuild-", dir=c.DATA) as tmp:
        index = Path(tmp) / "index.sqlite"
        prof = None
        if args.cprofile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        S._rebuild_into(root, index)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if prof:
            prof.disable()
    schema.connect = connect
    sql = sum(s for _, s in stats.values())
    print(f"  rebuild {wall:.1f} s wall, {cpu:.1f} s cpu; SQL statements {sql:.1f} s "
          f"({sql / wall:.0%}), the rest (reading logs, Python) {wall - sql:.1f} s")
    print(f"  {'seconds':>8} {'share':>6} {'calls':>9} {'per call':>10}  statement")
    for key, (n, s) in sorted(stats.items(), key=lambda kv: -kv[1][1])[:args.top]:
        print(f"  {s:8.2f} {s / wall:6.1%} {n:9d} {s / n * 1e6:8.1f}us  {key}")
    if prof:
        import pstats

        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
