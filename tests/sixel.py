"""A small sixel decoder, to check that the bytes the inspect view sends are the picture it made."""

from __future__ import annotations

import re

import numpy as np


def decode_sixel(data: str) -> np.ndarray:
    """One sixel picture (DCS ... ST) as an RGB array (height x width x 3); pixels never set are -1.
    Handles what a sixel encoder writes: raster attributes, RGB colour definitions (#n;2;r;g;b, in
    percent), colour selection, repeats (!n), graphics carriage return ($) and new line (-)."""
    m = re.match(r"\x1bP([0-9;]*)q", data)
    assert m, data[:20]
    body = data[m.end():]
    assert body.endswith("\x1b\\")
    body = body[:-2]
    raster = re.match(r'"(\d+);(\d+);(\d+);(\d+)', body)
    width, height = int(raster.group(3)), int(raster.group(4))
    pixels = np.full((height + 6, width, 3), -1, dtype=np.int32)
    registers: dict[int, tuple[int, int, int]] = {}
    color = x = y = 0
    i = raster.end()
    colour_re, repeat_re = re.compile(r"#(\d+)(?:;(\d+);(\d+);(\d+);(\d+))?"), re.compile(r"!(\d+)(.)")
    while i < len(body):
        c = body[i]
        if c == "#":
            r = colour_re.match(body, i)
            color = int(r.group(1))
            if r.group(2) is not None:
                assert r.group(2) == "2", "RGB colours only"
                registers[color] = tuple(round(int(v) * 255 / 100) for v in r.group(3, 4, 5))
            i = r.end()
            continue
        if c in "$-":
            x = 0
            y += 6 if c == "-" else 0
            i += 1
            continue
        if c == "!":
            r = repeat_re.match(body, i)
            count, char, i = int(r.group(1)), r.group(2), r.end()
        else:
            count, char, i = 1, c, i + 1
        bits = ord(char) - 63
        assert 0 <= bits < 64, repr(char)
        for b in range(6):
            if bits >> b & 1:
                pixels[y + b, x:x + count] = registers[color]
        x += count
    return pixels[:height]
