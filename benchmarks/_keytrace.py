"""Run `labelreview` with two timestamps taken inside the app, for bench_keypress.py's breakdown.

    python _keytrace.py TRACE_FILE review --store DIR

Appends one JSON line to TRACE_FILE per event: {"key": t} when Textual's input parser is fed the
bytes of a key, {"frame": [t_start, t_end, chars]} when Textual's writer thread writes a large
update (a new picture) and has flushed it into the terminal. ``t`` is ``time.perf_counter()``,
the system's monotonic clock, so the harness can place them between its own send and poll.

The patches go in when the app imports those two Textual modules (an import hook, removed once
both are in), so the start-up order stays what the console script has. Each costs a clock read
per call.
"""

from __future__ import annotations

import builtins
import os
import json
import sys
import time

FRAME_CHARS = int(os.environ.get("KEYTRACE_FRAME_CHARS", "50000"))  # a picture; smaller: cursor, progress...


def _install(trace_path: str) -> None:
    out = open(trace_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    clock = time.perf_counter

    def note(record: dict) -> None:
        out.write(json.dumps(record) + "\n")

    def patch_parser(module) -> None:
        feed = module.XTermParser.feed

        def timed_feed(self, data):
            if data:
                note({"key": clock()})
            return feed(self, data)

        module.XTermParser.feed = timed_feed

    def patch_writer(module) -> None:
        def run(self) -> None:  # WriterThread.run (Textual 8), with the big writes timed
            write, flush, get, qsize = self._file.write, self._file.flush, self._queue.get, self._queue.qsize
            while True:
                text = get()
                if text is None:
                    break
                t0 = clock()
                write(text)
                if qsize() == 0:
                    flush()
                if len(text) >= FRAME_CHARS:
                    flush()
                    note({"frame": [t0, clock(), len(text)]})
            flush()

        module.WriterThread.run = run

    wanted = {"textual._xterm_parser": ("XTermParser", patch_parser),
              "textual.drivers._writer_thread": ("WriterThread", patch_writer)}
    real_import = builtins.__import__

    def hook(*args, **kwargs):
        module = real_import(*args, **kwargs)
        for name, (cls, patch) in list(wanted.items()):
            if hasattr(sys.modules.get(name), cls):  # in, and no longer half-way through its import
                del wanted[name]
                patch(sys.modules[name])
        if not wanted:
            builtins.__import__ = real_import
        return module

    builtins.__import__ = hook


def main() -> None:
    _install(sys.argv[1])
    from labelreview.cli import main as cli_main

    sys.exit(cli_main(sys.argv[2:]))


if __name__ == "__main__":
    main()
