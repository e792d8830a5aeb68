"""The inspect view (key i, --graphics sixel|kitty): from the key to the picture written, 4000x3000 JPEGs.

Generates 4000x3000 JPEGs with 30 boxes each (as bench_keypress.py does), imports them, and runs the
real `labelreview review --graphics ...` in a pseudo-terminal whose far end answers the graphics
questions as xterm -ti vt340 (sixel) or kitty would, with a window of COLS x ROWS cells of CELL
pixels. Each press: `i`, then the time until the picture's last byte has arrived at the terminal
(sixel: every cell row's picture; kitty: the last chunk); `x` closes it; `j` moves to the next box.
The terminal's own drawing of the picture is not included (no terminal draws here). Then the same
steps in this process, without the app, for the breakdown: decode + crop + outlines, and encoding.

    python benchmarks/bench_inspect.py                      # 160x48 cells of 10x20 px, 8 presses each
    python benchmarks/bench_inspect.py --cols 120 --rows 40 --presses 4
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_keypress import H, W, coco_for, make_image, run_store  # noqa: E402

DA1 = "\x1b[c"
KITTY_QUERY = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"
ANSWERS = {
    "sixel": {DA1: "\x1b[?63;1;2;4;6;9;15;16;22;28c", "\x1b[?1;1;0S": "\x1b[?1;0;1024S",
              "\x1b[?2;1;0S": "\x1b[?2;0;4096;4096S"},
    "kitty": {KITTY_QUERY: "\x1b_Gi=31;OK\x1b\\", DA1: "\x1b[?62;c"},
}


class Pty:
    """The far end of a pseudo-terminal: answers the graphics questions, timestamps what arrives."""

    def __init__(self, cols: int, rows: int, cell: tuple[int, int], answers: dict[str, str]) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, cols * cell[0], rows * cell[1]))
        self.answers = answers
        self.pattern = re.compile("|".join(re.escape(q) for q in answers).encode("latin-1"))
        self.longest = max(len(q) for q in answers)
        self.data = bytearray()
        self.arrivals: list[tuple[int, float]] = []  # (length of data after a read, when)
        self.lock = threading.Lock()
        self.seen = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 1 << 20)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter()
            with self.lock:
                self.data += chunk
                self.arrivals.append((len(self.data), now))
                replies = []
                tail = bytes(self.data[self.seen:])  # (only what came since: pictures are megabytes)
                offset = self.seen
                for m in self.pattern.finditer(tail):
                    replies.append(self.answers[m.group(0).decode("latin-1")])
                    self.seen = offset + m.end()
                # A question cut in two by a read is found whole the next time.
                self.seen = max(self.seen, len(self.data) - self.longest)
            for reply in replies:
                os.write(self.master, reply.encode("latin-1"))

    def type(self, keys: str) -> float:
        t = time.perf_counter()
        os.write(self.master, keys.encode())
        return t

    def mark(self) -> int:
        with self.lock:
            return len(self.data)

    def wait(self, pattern: bytes, start: int, count: int = 1, timeout: float = 60.0) -> tuple[int, float]:
        """Until ``pattern`` occurred ``count`` times after ``start``: (end offset of the last one,
        when the read that brought its last byte arrived)."""
        regex = re.compile(pattern, re.S)
        deadline = time.perf_counter() + timeout
        pos, found = start, 0
        while time.perf_counter() < deadline:
            with self.lock:
                tail = bytes(self.data[pos:])  # scanned once: a match found is not looked at again
            for m in regex.finditer(tail):
                found += 1
                end = pos + m.end()
                if found == count:
                    with self.lock:
                        return end, next(t for length, t in self.arrivals if length >= end)
            if found:
                pos = end
            time.sleep(0.005)  # polled gently: this process shares the 2 cores with the app
        raise RuntimeError(f"{pattern!r} x{count} never came")


def bench_app(store: Path, protocol: str, cols: int, rows: int, cell: tuple[int, int], presses: int) -> dict:
    pty = Pty(cols, rows, cell, ANSWERS[protocol])
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor", LABELREVIEW_AUTHOR="bench <b@x>")
    # Not TMUX (the probe would add its tmux advice), and not COLUMNS/LINES: pytest-xdist's
    # workers have COLUMNS=80 LINES=24, which Textual would take over the window's real size.
    for name in ("TMUX", "COLUMNS", "LINES"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "labelreview.cli", "review", "--no-leases", "--store", str(store),
                             "--graphics", protocol], stdin=pty.slave, stdout=pty.slave, stderr=pty.slave,
                            env=env, start_new_session=True)
    picture = (rb"\x1bP[0-9;]*q.*?\x1b\\", rows - 1) if protocol == "sixel" else (rb"\x1b_G[^\x1b]*m=0[^\x1b]*\x1b\\", 1)
    times, sizes = [], []
    try:
        pty.wait(b"Accept", 0)
        time.sleep(1.0)  # the first picture and its neighbours
        for _ in range(presses):
            start = pty.mark()
            t0 = pty.type("i")
            end, when = pty.wait(picture[0], start, picture[1])
            times.append((when - t0) * 1000)
            sizes.append(end - start)
            time.sleep(0.3)
            start = pty.mark()
            pty.type("x")
            pty.wait(b"Accept", start)
            pty.type("j")  # the next box: another crop
            time.sleep(0.8)
        pty.type("q")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(pty.master)
        os.close(pty.slave)
    return {"ms": times, "bytes": sizes}


def bench_parts(store: Path, protocol: str, size: tuple[int, int], cell_height: int, repeat: int = 5) -> dict:
    """The same work in this process: decode + crop + outlines, then the protocol's encoding."""
    from labelreview.review import ReviewSession
    from labelreview.store import Store
    from labelreview.tui.pixels import kitty_png, kitty_show, sixel_rows
    from labelreview.tui.render import inspect_picture, overlays_for

    picture_ms, encode_ms = [], []
    with Store.open(store) as st:
        image = st.image(1)
        anns = ReviewSession(st, auto_checkpoint=False).image_annotations(1)
        for k in range(repeat):
            overlays = overlays_for(anns, anns[k].id, {})
            t0 = time.perf_counter()
            inspected = inspect_picture(image.path, overlays, size, (image.width, image.height))
            t1 = time.perf_counter()
            if protocol == "sixel":
                sixel_rows(inspected.image, cell_height)
            else:
                kitty_show(kitty_png(inspected.image), 1, size[0] // 10, size[1] // cell_height)
            t2 = time.perf_counter()
            picture_ms.append((t1 - t0) * 1000)
            encode_ms.append((t2 - t1) * 1000)
    return {"picture_ms": picture_ms, "encode_ms": encode_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--cols", type=int, default=160)
    ap.add_argument("--rows", type=int, default=48)
    ap.add_argument("--cell", default="10x20", help="cell size in pixels, WxH")
    ap.add_argument("--presses", type=int, default=8)
    ap.add_argument("--protocols", default="sixel,kitty")
    args = ap.parse_args()
    cell = tuple(int(v) for v in args.cell.split("x"))
    size = (args.cols * cell[0], (args.rows - 1) * cell[1])
    print(f"view {args.cols}x{args.rows - 1} cells of {cell[0]}x{cell[1]} px = {size[0]}x{size[1]} px; "
          f"{W}x{H} JPEGs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images = tmp / "images"
        images.mkdir()
        names = [f"photo_{i + 1:03d}.jpg" for i in range(args.images)]
        for i, name in enumerate(names):
            make_image(images / name, i)
        store = run_store(tmp, coco_for(names), images)
        for protocol in args.protocols.split(","):
            parts = bench_parts(store, protocol, size, cell[1])
            app = bench_app(store, protocol, args.cols, args.rows, cell, args.presses)
            ms = app["ms"]
            print(f"{protocol}: i -> picture written p50 {statistics.median(ms):.0f} ms, "
                  f"max {max(ms):.0f} ms over {len(ms)} presses ({', '.join(f'{v:.0f}' for v in ms)}); "
                  f"{statistics.median(app['bytes']) / 1e6:.2f} MB per picture")
            print(f"  in-process: decode+crop+outlines p50 {statistics.median(parts['picture_ms']):.0f} ms, "
                  f"encode p50 {statistics.median(parts['encode_ms']):.0f} ms")


if __name__ == "__main__":
    main()
