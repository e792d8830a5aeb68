"""Time decode and compose for a 4000x3000 JPEG with 30 boxes into 160x48 cells (budget: 35 ms / 25 ms)."""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from labelreview.tui import render
from labelreview.tui.render import Overlay, RenderOptions, class_color, compose, decode

SIZE = (4000, 3000)
CELLS = (160, 48)
DECODE_BUDGET_MS = 35.0
COMPOSE_BUDGET_MS = 25.0


def make_image(path: Path, size: tuple[int, int] = SIZE, seed: int = 0, noise: float = 12.0) -> None:
    """Gradients plus noise: photo-like structure, and noise so the JPEG is camera-sized (~4 MB)."""
    w, h = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    phase = float(seed)
    r = 255 * x * (1 - y)
    g = 255 * (0.5 + 0.5 * np.sin((6 + phase) * x + 4 * y + phase))
    b = 255 * y * np.ones_like(x)
    arr = np.stack(np.broadcast_arrays(r, g, b), axis=-1)
    arr += rng.normal(0.0, noise, size=(h, w, 3)).astype(np.float32)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").save(path, quality=90)


def make_overlays(n: int = 30, size: tuple[int, int] = SIZE, seed: int = 0) -> list[Overlay]:
    rnd = random.Random(seed)
    names = ["person", "car", "bicycle", "dog", "traffic light", "bus"]
    overlays = []
    for i in range(n):
        w, h = rnd.uniform(80, 900), rnd.uniform(80, 900)
        x, y = rnd.uniform(0, size[0] - w), rnd.uniform(0, size[1] - h)
        name = names[i % len(names)]
        overlays.append(
            Overlay(ann_id=i + 1, label=name, color=class_color(name), bbox=(x, y, w, h), selected=(i == 0), dimmed=(i % 7 == 3))
        )
    return overlays


def median_ms(fn, repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this thread, in ms.

    On a shared VM the wall figure includes time stolen by neighbours; the CPU figure does not.
    """
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def row(name: str, figures: tuple[float, float], note: str) -> str:
    return f"{name:<22} {figures[0]:6.1f} ms wall  {figures[1]:6.1f} ms cpu   {note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jpg"
        other = Path(tmp) / "other.jpg"
        light = Path(tmp) / "light.jpg"
        make_image(path)
        make_image(other, seed=1)
        make_image(light, noise=3.0)
        overlays = make_overlays()
        target = (CELLS[0], CELLS[1] * 2)
        options = RenderOptions()

        decode(path, target)  # warm up imports and the OS file cache
        decode_ms = median_ms(lambda: decode(path, target), args.repeat)
        decode(light, target)
        light_ms = median_ms(lambda: decode(light, target), args.repeat)
        full_ms = median_ms(lambda: decode(path, None), max(3, args.repeat // 4))
        decoded = decode(path, target)
        decoded_other = decode(other, target)

        def first_compose() -> None:
            render._STYLES.clear()  # nothing cached at all: the first image of a session
            render._COLORS.clear()
            compose(decoded, overlays, CELLS, options)

        def next_compose() -> None:
            # Stepping to another image: colours seen before are cached, the cell styles are new.
            render._STYLES.clear()
            render._COLORS.clear()
            compose(decoded_other, overlays, CELLS, options)
            render._STYLES.clear()
            t0, c0 = time.perf_counter(), time.thread_time()
            compose(decoded, overlays, CELLS, options)
            next_times.append(((time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000))

        first_ms = median_ms(first_compose, args.repeat)
        next_times: list[tuple[float, float]] = []
        for _ in range(args.repeat):
            next_compose()
        next_ms = (statistics.median(t[0] for t in next_times), statistics.median(t[1] for t in next_times))
        compose(decoded, overlays, CELLS, options)
        same_ms = median_ms(lambda: compose(decoded, overlays, CELLS, options), args.repeat)
        zoom = RenderOptions(zoom=True)
        full = decode(path, None)
        zoom_ms = median_ms(lambda: compose(full, overlays, CELLS, zoom), args.repeat)

        mb = path.stat().st_size / 1e6
        print(
            f"{SIZE[0]}x{SIZE[1]} JPEG q90 ({mb:.1f} MB), {len(overlays)} boxes -> "
            f"{CELLS[0]}x{CELLS[1]} cells, median of {args.repeat}"
        )
        print(row("decode (draft)", decode_ms, f"budget {DECODE_BUDGET_MS:.0f}; decoded to {decoded.image.size}"))
        print(row("decode (draft), light", light_ms, f"same size, less noise: {light.stat().st_size / 1e6:.1f} MB"))
        print(row("decode (full res)", full_ms, "zoom only"))
        print(row("compose, first image", first_ms, f"budget {COMPOSE_BUDGET_MS:.0f}; no style or colour cached"))
        print(row("compose, next image", next_ms, "colours of the previous image cached"))
        print(row("compose, same image", same_ms, "styles cached, e.g. a new selection"))
        print(row("compose, zoom", zoom_ms, "crop of the full-resolution decode"))


if __name__ == "__main__":
    main()
