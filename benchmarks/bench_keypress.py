"""Key press to the next image on screen, in a real terminal (tmux), and time to the first frame.

Generates 4000x3000 JPEGs with 30 labelled boxes each, imports them into a store, runs the real
`labelreview review` in a 160x50 tmux pane with COLORTERM=truecolor, and talks to tmux in control
mode (`tmux -C`), so each poll of the screen is a command on an open pipe, not a new process.
The app runs through `_keytrace.py`, which notes when it reads each key and when it has written each
new picture into the terminal: each press is also split into tmux delivering the key, the app's own
work, tmux taking the picture in, and the harness noticing it.
A frame counts as shown when the selected box's class name (unique per image) and the progress line
below the picture ("image N/M", written after the picture's lines) are both on the screen.

    python benchmarks/bench_keypress.py                # 24 images, plus a 1M-annotation store
    python benchmarks/bench_keypress.py --no-big       # skip the 1M store (takes a few minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

W, H = 4000, 3000
# The console script beside this interpreter (what a venv's PATH finds), not a version manager's shim
# on PATH (pyenv's adds ~0.1-0.2 s of bash to every start).
_SCRIPT = Path(sys.executable).with_name("labelreview")
LABELREVIEW = str(_SCRIPT) if _SCRIPT.exists() else "labelreview"
BOXES = 30
KEYTRACE = Path(__file__).with_name("_keytrace.py")
#: Sleep between polls of the screen while waiting for a first frame (~1 s): polled flat out, tmux
#: and this harness take about a core from the app starting (2 cores here).
POLL_S = float(os.environ.get("BENCH_POLL_S", "0.005"))
#: The same while waiting for a key press's picture: flat out, each capture-pane is tmux time not
#: spent reading the app's picture (the terminal's part of a press: 23.9-25.3 -> 18.4-19.3 ms, the
#: floor; the press as a whole 43.7-46.1 -> 41.0-43.6 ms, alternating runs of 23 presses).
KEY_POLL_S = float(os.environ.get("BENCH_KEY_POLL_S", "0.002"))


def make_image(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H:4, 0:W:4]
    base = np.stack([(x * (0.05 + 0.02 * c) + y * 0.03 * (c + 1) + seed * 40) % 255 for c in range(3)], -1)
    small = Image.fromarray(base.astype(np.uint8)).resize((W, H), Image.BILINEAR)
    draw = ImageDraw.Draw(small)
    for _ in range(60):
        x0, y0 = rng.integers(0, W - 400), rng.integers(0, H - 400)
        draw.ellipse([x0, y0, x0 + rng.integers(50, 400), y0 + rng.integers(50, 400)],
                     fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    noise = rng.integers(-12, 12, (H, W, 3), dtype=np.int16)
    arr = np.clip(np.asarray(small, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, quality=90)


def coco_for(names: list[str], extra_images: int = 0, anns_per_extra: int = 0) -> dict:
    rng = np.random.default_rng(0)
    images, anns, cats = [], [], {}
    aid = 1
    for i, name in enumerate(names + [f"missing_{k:07d}.jpg" for k in range(extra_images)], start=1):
        images.append({"id": i, "file_name": name, "width": W, "height": H})
        n = BOXES if i <= len(names) else anns_per_extra
        for k in range(n):
            label = f"im{i:03d}b{k:02d}" if i <= len(names) else f"c{k % 80}"
            cats.setdefault(label, len(cats) + 1)
            x, y = float(rng.integers(0, W - 600)), float(rng.integers(0, H - 600))
            anns.append({"id": aid, "image_id": i, "category_id": cats[label], "iscrowd": 0,
                         "bbox": [x, y, float(rng.integers(80, 600)), float(rng.integers(80, 600))],
                         "area": 1.0, "score": round(float(rng.random()), 3)})
            aid += 1
    return {"images": images, "annotations": anns,
            "categories": [{"id": v, "name": k} for k, v in cats.items()]}


def shown(image: int) -> str:
    """A class name drawn on image ``image``'s picture: the label there is "im001b07 · 0.65" (class,
    status mark, score). The list beside it names the same classes ("im001b07   0.65 ..."), so the
    name alone is on screen before the picture is (at launch the list is painted first)."""
    return rf"im{image:03d}b\d\d · "


class Control:
    """A tmux server on a private socket, driven through one control-mode client."""

    def __init__(self, cwd: Path, command: str, env: dict[str, str], width=160, height=50):
        self.sock = f"lrbench-{uuid.uuid4().hex[:6]}"
        base = ["tmux", "-L", self.sock, "-f", "/dev/null"]
        env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        subprocess.run([*base, "new-session", "-d", "-x", str(width), "-y", str(height), *env_args,
                        "-c", str(cwd), command + "; sleep 600"], check=True)
        self.started = time.perf_counter()
        # no-output: a control client is otherwise sent every byte the pane gets (as escaped %output
        # lines, ~2.5x a frame's 170 KB), which tmux must encode and this reader wade through before
        # each poll's answer: that inflated every figure before (p50 35 -> 23 ms, tail 70 -> 32 ms).
        self.proc = subprocess.Popen([*base, "-C", "attach", "-f", "no-output"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     encoding="utf-8", errors="replace", bufsize=1)
        self.base = base

    def cmd(self, line: str) -> list[str]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out, inside = [], False
        while True:
            row = self.proc.stdout.readline()
            if not row:
                raise RuntimeError("tmux control client ended")
            if row.startswith("%begin"):
                inside = True
                continue
            if row.startswith("%end") or row.startswith("%error"):
                if inside:
                    return out
                continue
            if inside:
                out.append(row.rstrip("\n"))

    def screen(self) -> str:
        return "\n".join(self.cmd("capture-pane -p"))

    def wait_for(self, *patterns: str, timeout: float = 60.0, interval: float = 0.0) -> float:
        """Poll the pane until every regular expression matches it; the time it first did.
        ``interval``: seconds to sleep between polls (polling flat out keeps tmux and this process
        busy: a core taken from what is measured)."""
        deadline = time.perf_counter() + timeout
        compiled = [re.compile(p) for p in patterns]
        while time.perf_counter() < deadline:
            screen = self.screen()
            if all(c.search(screen) for c in compiled):
                return time.perf_counter()
            if interval:
                time.sleep(interval)
        raise RuntimeError(f"{patterns!r} never appeared:\n{self.screen()}")

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except Exception:
            pass
        self.proc.kill()
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def run_store(root: Path, coco: dict, images_dir: Path, check_images: bool = True) -> Path:
    from labelreview.formats import coco as coco_format
    from labelreview.store import Store

    (root / "p.json").write_text(json.dumps(coco))
    store_dir = Store.init(root / "store")
    with Store.open(store_dir) as store:
        store.ingest(coco_format.read(root / "p.json"), source="bench", image_root=images_dir,
                     check_images=check_images)
        store.checkpoint()
    return store_dir


def env() -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return {**keep, "COLORTERM": "truecolor", "TERM": "xterm-256color", "LABELREVIEW_AUTHOR": "bench <b@x>"}


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


def tmux_floor(tmp: Path, image: Path, repeat: int = 20) -> dict:
    """What tmux alone costs to take in one frame: the picture part of a next-image frame (the
    image view's 116x47 cells, written as the app writes them) cat'ed into a 160x50 pane, against
    the same round trip with no output."""
    from labelreview.tui import render
    from labelreview.tui.render import compact_line

    cols, rows = 160 - 44, 50 - 3  # the side panel and the title, progress and footer lines
    decoded = render.decode(image, (cols, rows * 2))
    overlays = [render.Overlay(ann_id=k, label=f"im001b{k:02d}", color=render.class_color(str(k)),
                               bbox=(100.0 + 120 * k, 100.0 + 80 * k, 400.0, 300.0), selected=k == 0)
                for k in range(BOXES)]
    frame = render.compose(decoded, overlays, (cols, rows))
    data = "".join(f"\x1b[{y + 2};1H{compact_line(strip)}" for y, strip in enumerate(frame.strips))
    (tmp / "frame.ansi").write_text(data)
    sock = f"lrfloor-{uuid.uuid4().hex[:6]}"
    base = ["tmux", "-L", sock, "-f", "/dev/null"]
    subprocess.run([*base, "new-session", "-d", "-x", "160", "-y", "50", "sh"], check=True)
    try:
        def timed(command: str) -> float:
            out = []
            for i in range(repeat):
                t0 = time.perf_counter()
                subprocess.run([*base, "send-keys", f"{command}; tmux -L {sock} wait-for -S d{i}", "Enter"])
                subprocess.run([*base, "wait-for", f"d{i}"])
                out.append((time.perf_counter() - t0) * 1000)
            return statistics.median(out)

        empty = timed("true")
        full = timed(f"cat {tmp / 'frame.ansi'} > /dev/tty")
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)
    return {"bytes": len(data.encode()), "empty_ms": empty, "frame_ms": full}


def bench_next_image(tmp: Path, n_images: int, pace: float) -> dict:
    images_dir = tmp / "images"
    images_dir.mkdir()
    names = []
    t = time.perf_counter()
    for i in range(n_images):
        name = f"photo_{i + 1:03d}.jpg"
        make_image(images_dir / name, i)
        names.append(name)
    print(f"generated {n_images} {W}x{H} JPEGs in {time.perf_counter() - t:.1f} s "
          f"({sum(f.stat().st_size for f in images_dir.iterdir()) / n_images / 1e6:.1f} MB each)")
    store_dir = run_store(tmp, coco_for(names), images_dir)
    # The same command through _keytrace.py: it notes when the app reads each key and when it has
    # written each picture into the terminal, for the breakdown below.
    trace = tmp / "keytrace.jsonl"
    ctl = Control(tmp, f"{sys.executable} {KEYTRACE} {trace} review --store {store_dir}", env())
    try:
        first = ctl.wait_for(shown(1), "image 1/", interval=POLL_S) - ctl.started
        time.sleep(pace)
        forward, burst, presses = [], [], []
        for i in range(2, n_images + 1):
            t0 = time.perf_counter()
            ctl.cmd("send-keys n")
            seen = ctl.wait_for(shown(i), f"image {i}/{n_images}", interval=KEY_POLL_S)
            forward.append(seen - t0)
            presses.append((t0, seen))
            time.sleep(pace)  # a reviewer's glance; prefetch of the next image runs meanwhile
        for i in range(n_images - 1, 0, -1):  # back again without waiting: cached frames
            t0 = time.perf_counter()
            ctl.cmd("send-keys p")
            burst.append(ctl.wait_for(shown(i), f"image {i}/{n_images}", interval=KEY_POLL_S) - t0)
        ctl.cmd("send-keys q")
        time.sleep(1.0)  # let it checkpoint and leave (its image lease too) before the next launch
    finally:
        ctl.close()
    return {"first_frame_s": first, "next_ms": [v * 1000 for v in forward], "back_ms": [v * 1000 for v in burst],
            "stages": stages(presses, trace), "store": store_dir}


def bench_same_image(tmp: Path, store_dir: Path, key: str, presses: int, pace: float) -> dict:
    """``key`` (j: next annotation; Space: accept it and go on) ``presses`` times on image 1 of
    the store, each as a reviewer's press (``pace`` apart). The picture changes only in the
    highlight and status marks, which the screen's text does not show, so each press is timed
    inside the app: from reading the key to the write of its picture into the terminal returning
    (the largest write between two presses; a write of the changed lines only)."""
    shutil.rmtree(store_dir / ".labelreview" / "positions", ignore_errors=True)  # image 1, first item
    trace = tmp / f"keytrace-{key}.jsonl"
    ctl = Control(tmp, f"{sys.executable} {KEYTRACE} {trace} review --no-leases --store {store_dir}",
                  {**env(), "KEYTRACE_FRAME_CHARS": "2000"})
    sent, seen = [], []
    try:
        ctl.wait_for(shown(1), "image 1/", interval=POLL_S)
        time.sleep(pace)
        for k in range(1, presses + 1):
            sent.append(time.perf_counter())
            ctl.cmd(f"send-keys {key}")
            seen.append(ctl.wait_for(rf"#\d+ im001b{k:02d} ", interval=KEY_POLL_S))  # the detail names it
            time.sleep(pace)
        sent.append(time.perf_counter())
        ctl.cmd("send-keys q")
        time.sleep(1.0)
    finally:
        ctl.close()
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    keys = [r["key"] for r in records if "key" in r]
    frames = [r["frame"] for r in records if "frame" in r]
    out, chars, screen, one_write = [], [], [], 0
    for t0, t1, t_seen in zip(sent, sent[1:], seen):
        read = next((k for k in keys if t0 <= k < t1), None)
        writes = [f for f in frames if read is not None and read <= f[0] < t1]
        if writes:
            picture = max(writes, key=lambda f: f[2])
            out.append((picture[1] - read) * 1000)
            chars.append(picture[2])
            screen.append((t_seen - t0) * 1000)
            one_write += len(writes) == 1
    # When the press brought one write, the list, the detail and the picture's changed lines went
    # to the terminal together: the harness's time to see the detail is the picture's too.
    return {"ms": out, "chars": chars, "screen_ms": screen, "one_write": one_write}


def stages(presses: list[tuple[float, float]], trace: Path) -> dict[str, list[float]]:
    """Each press split at the app's two timestamps (same monotonic clock as the harness): tmux
    delivering the key; the app, from reading it to handing the new picture to the terminal; the
    terminal (tmux) taking the picture in, until the app's write returns; the harness noticing."""
    keys, frames = [], []
    for line in trace.read_text().splitlines():
        rec = json.loads(line)
        (keys.append(rec["key"]) if "key" in rec else frames.append(rec["frame"]))
    out: dict[str, list[float]] = {"deliver": [], "app": [], "terminal": [], "notice": []}
    for sent, seen in presses:
        key = next((k for k in keys if sent <= k <= seen), None)
        frame = next((f for f in frames if key is not None and key <= f[0] <= seen), None)
        if key is None or frame is None:
            continue
        for name, (a, b) in (("deliver", (sent, key)), ("app", (key, frame[0])),
                             ("terminal", (frame[0], frame[1])), ("notice", (frame[1], seen))):
            out[name].append((b - a) * 1000)
    return out


def bench_big_first_frame(tmp: Path, annotations: int, keep: Path | None = None, repeat: int = 3) -> dict:
    """Launch on a store of ``annotations`` (built, or kept in/reused from ``keep``) ``repeat`` times."""
    if keep is not None and (keep / "store" / ".labelreview" / f"bench-keypress-{annotations}").exists():
        return _first_frames(tmp, keep / "store", annotations, 0.0, repeat)
    root = keep if keep is not None else tmp
    root.mkdir(parents=True, exist_ok=True)
    images_dir = root / "big_images"
    images_dir.mkdir()
    make_image(images_dir / "photo_001.jpg", 1)
    per = 10
    coco = coco_for(["photo_001.jpg"], extra_images=(annotations - BOXES) // per, anns_per_extra=per)
    t = time.perf_counter()
    store_dir = run_store(root, coco, images_dir, check_images=False)
    build = time.perf_counter() - t
    (store_dir / ".labelreview" / f"bench-keypress-{annotations}").touch()
    return _first_frames(tmp, store_dir, len(coco["annotations"]), build, repeat)


def _first_frames(tmp: Path, store_dir: Path, n: int, build: float, repeat: int) -> dict:
    firsts = []
    for _ in range(repeat):
        shutil.rmtree(store_dir / ".labelreview" / "positions", ignore_errors=True)  # start at the start
        ctl = Control(tmp, f"{LABELREVIEW} review --store {store_dir}", env())
        try:
            firsts.append(ctl.wait_for(shown(1), "image 1/", timeout=120, interval=POLL_S) - ctl.started)
            ctl.cmd("send-keys q")
            time.sleep(1.0)  # let it checkpoint and leave before the next launch
        finally:
            ctl.close()
    return {"annotations": n, "build_s": build, "first_frame_s": min(firsts), "all_s": firsts}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--pace", type=float, default=0.4, help="seconds between key presses")
    ap.add_argument("--big", type=int, default=1_000_000, help="annotations in the start-up store")
    ap.add_argument("--no-big", action="store_true")
    ap.add_argument("--big-keep", help="build the big store in this folder and keep it; reuse it if there")
    ap.add_argument("--big-only", action="store_true", help="only the big store's first frame")
    ap.add_argument("--repeat", type=int, default=3, help="launches on the big store (best is reported)")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed (apt-get install tmux)")
    # Start-up as after `pip install`: with bytecode caches. (An editable checkout whose caches are
    # stale, under PYTHONDONTWRITEBYTECODE, compiles every module of the package at each launch.)
    import compileall

    import labelreview

    compileall.compile_dir(Path(labelreview.__file__).parent, quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="lr-keypress-"))
    try:
        if args.big_only:
            b = bench_big_first_frame(tmp, args.big, Path(args.big_keep) if args.big_keep else None, args.repeat)
            print(f"first frame after launch on a store of {b['annotations']:,} annotations: median "
                  f"{statistics.median(b['all_s']):.2f} s, best {b['first_frame_s']:.2f} s, of "
                  f"{', '.join(f'{v:.2f}' for v in b['all_s'])}   (aim <= 1 s)")
            return
        r = bench_next_image(tmp, args.images, args.pace)
        nxt, back = r["next_ms"], r["back_ms"]
        print(f"\nkey press -> next image on screen (tmux 160x50, {W}x{H} JPEG, {BOXES} boxes, "
              f"prefetch, {args.pace:.1f} s between presses, n={len(nxt)}):")
        print(f"  p50 {pct(nxt, 50):6.1f} ms   (aim <= 25 ms)")
        print(f"  p95 {pct(nxt, 95):6.1f} ms   (aim <= 60 ms)")
        print(f"  max {max(nxt):6.1f} ms")
        print(f"back through already-seen images without pausing (n={len(back)}): p50 {pct(back, 50):.1f} ms, "
              f"p95 {pct(back, 95):.1f} ms")
        st = r["stages"]
        if st["app"]:
            print(f"the same presses split at two timestamps taken inside the app (n={len(st['app'])}), p50 / p95 ms:")
            for name, what in (("deliver", "tmux delivers the key to the app"),
                               ("app", "app: key read -> new picture handed to the terminal"),
                               ("terminal", "terminal: tmux takes the picture in (the app's write returns)"),
                               ("notice", "harness: notices it on its next capture-pane")):
                print(f"  {what:<64} {pct(st[name], 50):5.1f} / {pct(st[name], 95):5.1f}")
            app_side = [a + t for a, t in zip(st["app"], st["terminal"])]
            print(f"  key read -> picture written into the terminal: p50 {pct(app_side, 50):.1f} ms, "
                  f"p95 {pct(app_side, 95):.1f} ms")
        print(f"cold first image after launch (small store): {r['first_frame_s'] * 1000:.0f} ms")
        for key, what in (("j", "next annotation on the same image (j)"),
                          ("Space", "accept and go on to the next annotation (space)")):
            same = bench_same_image(tmp, r["store"], key, BOXES - 1, args.pace)
            print(f"{what}, n={len(same['ms'])}: key read -> picture written into the terminal p50 "
                  f"{pct(same['ms'], 50):.1f} ms, p95 {pct(same['ms'], 95):.1f} ms "
                  f"({statistics.median(same['chars']) / 1000:.0f} KB written: the changed lines); "
                  f"key sent -> on screen p50 {pct(same['screen_ms'], 50):.1f} ms, p95 "
                  f"{pct(same['screen_ms'], 95):.1f} ms ({same['one_write']} of {len(same['ms'])} presses "
                  f"brought one write: picture and side panel together)")
        f = tmux_floor(tmp, tmp / "images" / "photo_001.jpg")
        print(f"floor: tmux taking in one picture ({f['bytes'] / 1000:.0f} KB of escape codes): "
              f"{f['frame_ms'] - f['empty_ms']:.1f} ms (cat of it {f['frame_ms']:.1f} ms, "
              f"the same round trip with no output {f['empty_ms']:.1f} ms)")
        if not args.no_big:
            b = bench_big_first_frame(tmp, args.big, Path(args.big_keep) if args.big_keep else None, args.repeat)
            print(f"\nfirst frame after launch on a store of {b['annotations']:,} annotations: median "
                  f"{statistics.median(b['all_s']):.2f} s, best {b['first_frame_s']:.2f} s, of "
                  f"{', '.join(f'{v:.2f}' for v in b['all_s'])}   "
                  f"(aim <= 1 s; store built in {b['build_s']:.0f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
