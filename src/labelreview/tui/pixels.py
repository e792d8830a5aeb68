"""A picture as terminal graphics escape codes: sixel (one piece per cell row) or the kitty protocol.

Sixel data comes from textual-image's encoder (``textual_image._sixel``), imported here and only
here, and only when a sixel picture is wanted. Not its ``renderable`` or ``widget`` packages: importing
them asks the terminal which protocol it speaks (its auto-detection, 0.1 s timeouts, unreliable
over a slow link), and ``widget`` asks its cell size, both from whatever thread imports them, while
Textual reads the terminal. Which protocol to use is asked once, before Textual starts
(``termgraphics``), and only for an explicit ``--graphics``.

No Textual import: the view (``widgets/inspect_view``) puts these codes into its lines.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

from PIL import Image

KITTY_CHUNK = 4096  # base64 bytes per APC, the protocol's limit


def sixel_rows(picture: Image.Image, cell_height: int, colors: int = 256) -> list[str]:
    """One sixel picture per cell row of ``picture`` (its height a multiple of ``cell_height``).

    A row is its own picture so that a repaint of any line of the view draws that line's pixels
    again, whatever else Textual repaints. All rows share one palette, chosen for the whole picture,
    with the same colour in the same register in every row (a terminal whose pictures share their
    colour registers recolours what it drew with a register when a later picture defines it anew).

    The rows' pixels are encoded by textual-image's band encoder; what is done here instead of its
    own steps: the palette (it numbers the registers anew for every picture), and where the colours
    are defined. It defines each one where it is first used, in the middle of the pixel data; xterm
    (379, -ti vt340) then drew the picture's first band with specks of wrong colours, and one
    picture per cell row made that streaks across the whole view. Here a row's colours are all
    defined before its first pixel (as ImageMagick writes them, which xterm draws cleanly).
    Its introducer says P2=0 (pixels not set painted in the background colour); ours says P2=1
    (left as they are): a cell is rarely a multiple of 6 pixels tall, so a row's last band is part
    empty, and those pixel rows belong to the next cell row.
    """
    import numpy as np
    from textual_image._sixel import _iter_bands_np, _make_header

    colors = max(2, min(256, int(colors)))
    paletted = picture.convert("RGB").quantize(colors, method=Image.Quantize.FASTOCTREE)
    palette = (paletted.getpalette() or []) + [0] * 768
    defines = [f"#{i};2;{_percent(palette[3 * i])};{_percent(palette[3 * i + 1])};{_percent(palette[3 * i + 2])}"
               .encode("ascii") for i in range(256)]
    # Every colour is defined up front: the band encoder only selects them.
    selects = tuple(f"#{i}".encode("ascii") for i in range(256))
    width = picture.width
    rows = []
    for top in range(0, picture.height - cell_height + 1, cell_height):
        data = paletted.crop((0, top, width, top + cell_height)).tobytes()
        header = _make_header(width, cell_height)
        if not header.startswith(_DCS_FROM):  # pragma: no cover - a textual-image other than 0.12
            raise RuntimeError(f"unexpected sixel introducer {header[:12]!r}")
        used = np.unique(np.frombuffer(data, dtype=np.uint8)).tolist()
        body = b"".join(_iter_bands_np(data, width, cell_height, selects))
        rows.append((_DCS_TO + header[len(_DCS_FROM):] + b"".join(defines[i] for i in used) + body
                     + b"\x1b\\").decode("ascii"))
    return rows


def _percent(value: int) -> int:
    """0-255 as sixel's 0-100."""
    return (value * 100 + 127) // 255


#: The DCS introducer textual-image writes, and ours (see ``sixel_rows``).
_DCS_FROM = b"\x1bP0;0;0q"
_DCS_TO = b"\x1bP0;1;0q"


def kitty_png(picture: Image.Image) -> bytes:
    """The picture as PNG (the kitty protocol's f=100), quick to compress: sent once per view."""
    out = io.BytesIO()
    picture.convert("RGB").save(out, format="PNG", compress_level=1)
    return out.getvalue()


def kitty_show(png: bytes, image_id: int, columns: int, rows: int) -> str:
    """Transmit and show ``png`` at the cursor over ``columns`` x ``rows`` cells, the cursor left
    where it is (C=1), no replies (q=2). Sending the same id again replaces the picture."""
    return "".join(_kitty_chunks(png, f"a=T,f=100,i={image_id},p=1,c={columns},r={rows},C=1,q=2"))


def kitty_delete(image_id: int) -> str:
    """Remove the picture and free its data in the terminal."""
    return f"\x1b_Ga=d,d=I,i={image_id},q=2\x1b\\"


def _kitty_chunks(data: bytes, keys: str) -> Iterator[str]:
    payload = base64.standard_b64encode(data).decode("ascii")
    chunks = [payload[i:i + KITTY_CHUNK] for i in range(0, len(payload), KITTY_CHUNK)] or [""]
    for n, chunk in enumerate(chunks):
        more = int(n < len(chunks) - 1)
        # The first chunk carries the keys; the others only whether more follow (and: no replies).
        head = f"{keys},m={more}" if n == 0 else f"m={more},q=2"
        yield f"\x1b_G{head};{chunk}\x1b\\"
