"""Render `tmux capture-pane -e -p` output (ANSI) to a PNG, cell by cell, for screenshots.

Usage: tmux capture-pane -e -p -t S > screen.ans && python tools/ansi_to_png.py screen.ans out.png
Half blocks (▀ ▄ █) are drawn as exact colour halves, so the picture is what the terminal shows.
"""

from __future__ import annotations

import sys

from PIL import Image, ImageDraw, ImageFont
from rich.color import Color
from rich.text import Text

CELL_W, CELL_H = 9, 18
DEFAULT_FG, DEFAULT_BG = (220, 220, 220), (18, 18, 18)
FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", "DejaVuSansMono.ttf"]


def _rgb(color: Color | None, default):
    if color is None or color.is_default:
        return default
    t = color.get_truecolor()
    return (t.red, t.green, t.blue)


def _font(bold: bool = False):
    for path in FONTS:
        try:
            return ImageFont.truetype(path.replace(".ttf", "-Bold.ttf") if bold else path, 14)
        except OSError:
            continue
    return ImageFont.load_default()


def render(ansi: str) -> Image.Image:
    lines = ansi.rstrip("\n").split("\n")
    texts = [Text.from_ansi(line) for line in lines]
    cols = max((t.cell_len for t in texts), default=1)
    img = Image.new("RGB", (cols * CELL_W, len(texts) * CELL_H), DEFAULT_BG)
    draw = ImageDraw.Draw(img)
    font, bold = _font(), _font(True)
    for row, text in enumerate(texts):
        x = 0
        for seg in text.render(__import__("rich.console").console.Console()):
            style = seg.style
            fg = _rgb(style.color if style else None, DEFAULT_FG)
            bg = _rgb(style.bgcolor if style else None, DEFAULT_BG)
            if style and style.reverse:
                fg, bg = bg, fg
            for ch in seg.text:
                x0, y0 = x * CELL_W, row * CELL_H
                draw.rectangle([x0, y0, x0 + CELL_W - 1, y0 + CELL_H - 1], fill=bg)
                if ch == "▀":
                    draw.rectangle([x0, y0, x0 + CELL_W - 1, y0 + CELL_H // 2 - 1], fill=fg)
                elif ch == "▄":
                    draw.rectangle([x0, y0 + CELL_H // 2, x0 + CELL_W - 1, y0 + CELL_H - 1], fill=fg)
                elif ch == "█":
                    draw.rectangle([x0, y0, x0 + CELL_W - 1, y0 + CELL_H - 1], fill=fg)
                elif ch.strip():
                    draw.text((x0, y0 + 1), ch, fill=fg, font=bold if style and style.bold else font)
                x += 1
    return img


if __name__ == "__main__":
    src, out = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8", errors="replace") as f:
        render(f.read()).save(out)
