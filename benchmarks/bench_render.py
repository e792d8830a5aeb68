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


def make_image(path: Path, size: tuple[int, int] = SIZE, seed: int = 0) -> None:
    """Gradients plus noise: photo-like structure, and noise so the JPEG is not trivially small."""
    w, h = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    r = 255 * x * (1 - y)
    g = 255 * (0.5 + 0.5 * np.sin(6 * x + 4 * y))
    b = 255 * y * np.ones_like(x)
    arr = np.stack(np.broadcast_arrays(r, g, b), axis=-1)
    arr += rng.normal(0.0, 12.0, size=(h, w, 3)).astype(np.float32)
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


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jpg"
        make_image(path)
        overlays = make_overlays()
        target = (CELLS[0], CELLS[1] * 2)
        options = RenderOptions()

        decode(path, target)  # warm up imports and the OS file cache
        decode_ms = median_ms(lambda: decode(path, target), args.repeat)
        full_ms = median_ms(lambda: decode(path, None), max(3, args.repeat // 4))
        decoded = decode(path, target)

        def cold_compose() -> None:
            render._STYLES.clear()  # a new image: no cached Rich styles
            render._COLORS.clear()
            compose(decoded, overlays, CELLS, options)

        compose_cold_ms = median_ms(cold_compose, args.repeat)
        compose(decoded, overlays, CELLS, options)
        compose_warm_ms = median_ms(lambda: compose(decoded, overlays, CELLS, options), args.repeat)
        zoom = RenderOptions(zoom=True)
        full = decode(path, None)
        zoom_ms = median_ms(lambda: compose(full, overlays, CELLS, zoom), max(3, args.repeat // 4))

        size_mb = path.stat().st_size / 1e6
        print(f"image {SIZE[0]}x{SIZE[1]} JPEG q90 ({size_mb:.1f} MB), {len(overlays)} boxes -> {CELLS[0]}x{CELLS[1]} cells")
        print(f"decode (draft)        {decode_ms:6.1f} ms  (budget {DECODE_BUDGET_MS:.0f})  -> {decoded.image.size}")
        print(f"decode (full res)     {full_ms:6.1f} ms  (zoom only)")
        print(f"compose, cold styles  {compose_cold_ms:6.1f} ms  (budget {COMPOSE_BUDGET_MS:.0f})")
        print(f"compose, warm styles  {compose_warm_ms:6.1f} ms  (same image again, e.g. new selection)")
        print(f"compose, zoom         {zoom_ms:6.1f} ms  (from the full-resolution decode, cold-ish styles)")


if __name__ == "__main__":
    main()
