"""Tests for labelreview.tui.render: decoding, overlays and half-block frames."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from labelreview.tui.render import (
    Frame,
    ImageUnavailable,
    Overlay,
    RenderOptions,
    class_color,
    compose,
    decode,
    placeholder,
)

GREY = (50, 50, 50)
RED = (255, 0, 0)
GREEN = (0, 255, 0)


def cell_colors(frame: Frame, col: int, row: int) -> tuple[tuple[int, int, int] | None, tuple[int, int, int] | None, str]:
    """(top colour, bottom colour, character) of one cell."""
    x = 0
    for seg in frame.strips[row]:
        width = len(seg.text)
        if x <= col < x + width:
            style = seg.style
            fg = style.color.triplet if style and style.color else None
            bg = style.bgcolor.triplet if style and style.bgcolor else None
            return (tuple(fg) if fg else None, tuple(bg) if bg else None, seg.text[col - x])
        x += width
    raise IndexError(col)


@pytest.fixture
def red_square(tmp_path):
    """64x48 grey PNG with a red square at x 16..31, y 12..27."""
    arr = np.full((48, 64, 3), GREY, dtype=np.uint8)
    arr[12:28, 16:32] = RED
    path = tmp_path / "square.png"
    Image.fromarray(arr).save(path)
    return path


def box(label="cat", color=GREEN, **kw) -> Overlay:
    return Overlay(ann_id=1, label=label, color=color, bbox=(16, 12, 16, 16), **kw)


def test_compose_returns_rows_of_cols_cells(red_square):
    frame = compose(decode(red_square, (32, 24)), [box()], (32, 12), RenderOptions())
    assert (frame.width, frame.height) == (32, 12)
    assert len(frame.strips) == 12
    assert all(strip.cell_length == 32 for strip in frame.strips)


def test_picture_is_aspect_fitted_and_centred(red_square):
    # 64x48 into 40 columns x 24 pixel rows: 32x24 picture, 4 black columns each side.
    frame = compose(decode(red_square, (40, 24)), [], (40, 12), RenderOptions())
    assert frame.offset == (4, 0)
    assert cell_colors(frame, 0, 6)[:2] == ((0, 0, 0), (0, 0, 0))
    assert cell_colors(frame, 4, 1)[:2] == (GREY, GREY)


def test_class_name_is_real_text_above_the_box(red_square):
    frame = compose(decode(red_square, (32, 24)), [box(label="cat")], (32, 12), RenderOptions())
    # Box top at y=12 -> display pixel 6 -> cell row 3; the name goes on row 2 at the box's left edge.
    assert "cat" in frame.strips[2].text
    assert frame.strips[2].text.index("cat") == 8
    assert not any("cat" in strip.text for i, strip in enumerate(frame.strips) if i != 2)


def test_names_hidden_when_option_off(red_square):
    frame = compose(decode(red_square, (32, 24)), [box()], (32, 12), RenderOptions(show_names=False))
    assert not any("cat" in strip.text for strip in frame.strips)


def test_box_outline_and_picture_colours_at_expected_cells(red_square):
    frame = compose(decode(red_square, (32, 24)), [box(color=GREEN)], (32, 12), RenderOptions())
    assert frame.to_cell(16, 20) == (8, 5)
    top, bottom, char = cell_colors(frame, 8, 5)  # left edge of the box
    assert (top, bottom, char) == (GREEN, GREEN, "▀")
    assert cell_colors(frame, 12, 5)[:2] == (RED, RED)  # inside the box: the red square
    assert cell_colors(frame, 2, 9)[:2] == (GREY, GREY)  # outside


def test_selected_box_is_brighter_and_dimmed_darker(red_square):
    sel = compose(decode(red_square, (32, 24)), [box(color=(200, 0, 0), selected=True)], (32, 12))
    dim = compose(decode(red_square, (32, 24)), [box(color=(200, 0, 0), dimmed=True)], (32, 12))
    assert sum(cell_colors(sel, 8, 5)[0]) > 200
    assert sum(cell_colors(dim, 8, 5)[0]) < 200


def test_polygon_and_rle_masks_are_filled(red_square):
    decoded = decode(red_square, (64, 48))
    poly = Overlay(ann_id=2, label="p", color=(0, 0, 255), polygons=((40, 30, 60, 30, 60, 45, 40, 45),))
    m = np.zeros((48, 64), dtype=np.uint8, order="F")
    m[2:10, 2:12] = 1
    rle = mask_utils.encode(m)
    rle_str = Overlay(ann_id=3, label="r", color=(0, 0, 255), rle={"size": rle["size"], "counts": rle["counts"].decode()})
    # Uncompressed RLE (counts as a list), column-major runs starting with zeros.
    counts = [2 * 48 + 2, 8] + [40, 8] * 9 + [48 * 64 - (2 * 48 + 2) - 8 * 10 - 40 * 9]
    rle_list = Overlay(ann_id=4, label="u", color=(0, 0, 255), rle={"size": [48, 64], "counts": counts})
    for ov, (x, y) in ((poly, (50, 38)), (rle_str, (6, 6)), (rle_list, (6, 6))):
        frame = compose(decoded, [ov], (64, 24), RenderOptions(show_names=False))
        col, row = frame.to_cell(x, y)
        top = cell_colors(frame, col, row)[0]
        assert top[2] > GREY[2] and top[0] < GREY[0] + 5, (ov.ann_id, top)
        hidden = compose(decoded, [ov], (64, 24), RenderOptions(show_masks=False))
        assert cell_colors(hidden, col, row)[0] == GREY


def test_keypoints_and_skeleton_are_drawn(red_square):
    kp = Overlay(ann_id=5, label="k", color=GREEN, keypoints=(4, 40, 2, 60, 40, 2, 30, 4, 0), skeleton=((1, 2), (2, 3)))
    frame = compose(decode(red_square, (64, 48)), [kp], (64, 24), RenderOptions(show_names=False))
    assert cell_colors(frame, 4, 20)[0] == GREEN  # first keypoint (y 40 -> top half of row 20)
    assert cell_colors(frame, 30, 20)[0] != GREY  # skeleton line between the two visible points


@pytest.mark.parametrize("extra", [{"cvat_shape": "polyline"}, {"ls_shape": "polyline"}])
def test_a_polyline_is_drawn_as_a_line_through_its_points(red_square, extra):
    # CVAT polylines and Label Studio polylinelabels are stored as keypoints, in order: a reviewer
    # must see the line, not three loose dots (a lane marking drawn as dots cannot be judged).
    from labelreview.model import Annotation
    from labelreview.tui.render import overlays_for

    def ann(id, extra):
        return Annotation(id=id, image_id=1, category="lane", status="pending", kind="keypoints",
                          bbox=[4, 4, 56, 36], segmentation=None, keypoints=[4, 40, 2, 60, 40, 2, 60, 4, 2],
                          score=None, iscrowd=0, area=None, source="s", source_id=1, import_id="i",
                          extra=extra, scores=None)

    decoded = decode(red_square, (64, 48))
    (line,) = overlays_for([ann(1, extra)], 1, {})
    frame = compose(decoded, [line], (64, 24), RenderOptions(show_names=False, show_masks=False))
    assert cell_colors(frame, 30, 20)[0] != GREY  # between the first and the second point
    assert cell_colors(frame, 60, 11) != cell_colors(compose(decoded, [], (64, 24)), 60, 11)  # 2nd to 3rd
    # Points of a CVAT "points" shape are separate points: nothing is drawn between them.
    (points,) = overlays_for([ann(2, {"cvat_shape": "points"})], 2, {})
    frame = compose(decoded, [points], (64, 24), RenderOptions(show_names=False, show_masks=False))
    assert cell_colors(frame, 30, 20)[0] == GREY


def test_zoom_crops_around_the_selected_box(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (400, 300), GREY).save(path)
    target = Overlay(ann_id=1, label="t", color=GREEN, bbox=(300, 200, 40, 30), selected=True)
    other = Overlay(ann_id=2, label="o", color=RED, bbox=(10, 10, 20, 20))
    frame = compose(decode(path, None), [other, target], (80, 24), RenderOptions(zoom=True))
    x0, y0, x1, y1 = frame.region
    assert x0 <= 300 and y0 <= 200 and x1 >= 340 and y1 >= 230
    c0, r0 = frame.to_cell(300, 200)
    c1, r1 = frame.to_cell(339.9, 229.9)
    assert max((c1 - c0 + 1) / frame.width, (r1 - r0 + 1) / frame.height) > 0.7
    assert frame.to_cell(15, 15) is None  # the other box is out of the crop
    unzoomed = compose(decode(path, None), [other, target], (80, 24), RenderOptions())
    assert unzoomed.region == (0, 0, 400, 300)


def test_missing_file_is_unavailable_with_path(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageUnavailable, match="nope.jpg") as info:
        decode(path, (10, 10))
    assert str(path) in info.value.message


def test_truncated_jpeg_is_unavailable_with_path(tmp_path):
    path = tmp_path / "cut.jpg"
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for target in ((32, 32), None):
        with pytest.raises(ImageUnavailable, match="cut.jpg"):
            decode(path, target)


def test_not_an_image_is_unavailable(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    with pytest.raises(ImageUnavailable, match="notes.jpg"):
        decode(path, (10, 10))


@pytest.mark.parametrize("limit", [2000, 1000])  # 3072 px: above the warning, above the error threshold
def test_decompression_bomb_is_refused(red_square, monkeypatch, limit):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageUnavailable, match="decompression bomb"):
        decode(red_square, (32, 24))


def test_draft_decode_is_reduced_but_covers_target(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (1600, 1200), GREY).save(path, quality=90)
    decoded = decode(path, (160, 96))
    assert decoded.orig_size == (1600, 1200)
    assert 160 <= decoded.image.width < 400 and 96 <= decoded.image.height
    assert decoded.image.mode == "RGB"


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (80, 40), GREY).save(path, exif=exif)
    decoded = decode(path, (20, 20))
    assert decoded.orig_size == (40, 80)
    assert decoded.image.height > decoded.image.width


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_a_rotated_tiff_is_shown_the_right_way_round_with_its_boxes_in_place(tmp_path, orientation):
    """A TIFF whose EXIF orientation turns it (a scanner's, a camera's raw export): Pillow gives its
    size as shown already, and the size was swapped once more. A landscape picture came out as a
    squeezed portrait in the middle of the view, its boxes off the things they outline, and the
    import measured it 48x64."""
    from labelreview.formats.images import image_size

    shown = np.zeros((48, 64, 3), dtype=np.uint8)
    shown[:24, :32] = RED  # top-left quarter red, the rest green
    shown[:24, 32:] = GREEN
    shown[24:] = GREEN
    undo = {5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_270}[orientation]  # what the file stores, for the picture to show so
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "scan.tif"
    Image.fromarray(shown).transpose(undo).save(path, exif=exif)

    assert image_size(path) == (64, 48)
    decoded = decode(path, (64, 48))
    assert decoded.orig_size == (64, 48)
    red_box = Overlay(ann_id=1, label="", color=(0, 0, 255), bbox=(0, 0, 32, 24))
    frame = compose(decoded, [red_box], (64, 24), RenderOptions(show_names=False))
    # The picture fills the view (64x48 into 64x24 cells), the red quarter top-left inside its box.
    assert cell_colors(frame, 5, 5)[:2] == (RED, RED)
    assert cell_colors(frame, 60, 5)[:2] == (GREEN, GREEN)
    assert cell_colors(frame, 5, 20)[:2] == (GREEN, GREEN)
    assert cell_colors(frame, 0, 5)[0] == (0, 0, 255)  # the box's left edge on the picture's
    assert cell_colors(frame, 31, 5)[0] == (0, 0, 255)  # ... and its right edge where red ends


@pytest.mark.parametrize("suffix", ["png", "tif"])
@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_a_big_picture_is_shrunk_before_it_is_turned_and_comes_out_the_right_way_round(tmp_path, suffix,
                                                                                        orientation):
    """A file without JPEG's draft is shrunk before its EXIF turn, which copies the whole picture
    (a 9000x9000 PNG: 663 MB peak and 0.70-1.22 s a decode, against 354 MB and 0.67-0.93 s): the
    picture still comes out as shown, at least the size asked for, its corners where they were."""
    shown = np.zeros((480, 640, 3), dtype=np.uint8)
    shown[:240, :320] = RED  # top-left quarter red, the rest green
    shown[:240, 320:] = GREEN
    shown[240:] = GREEN
    undo = {1: None, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    stored = Image.fromarray(shown) if undo is None else Image.fromarray(shown).transpose(undo)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"big.{suffix}"
    stored.save(path, exif=exif)
    decoded = decode(path, (64, 48))
    assert decoded.orig_size == (640, 480)
    w, h = decoded.image.size
    assert 64 <= w < 128 and 48 <= h < 96 and w > h, decoded.image.size  # shrunk, landscape
    px = np.asarray(decoded.image)
    assert tuple(px[2, 2]) == RED and tuple(px[2, w - 3]) == GREEN and tuple(px[h - 3, 2]) == GREEN


def test_sixteen_bit_image_is_stretched_not_clipped(tmp_path):
    path = tmp_path / "depth.png"
    arr = np.linspace(0, 4000, 32 * 16, dtype=np.uint16).reshape(16, 32)
    Image.fromarray(arr).save(path)
    img = np.asarray(decode(path, (32, 16)).image)
    assert img.min() == 0 and img.max() == 255 and img[8, 16, 0] < 255


def test_placeholder_centres_message():
    frame = placeholder((40, 9), "image missing: /data/x.jpg")
    assert len(frame.strips) == 9 and all(s.cell_length == 40 for s in frame.strips)
    assert frame.strips[4].text.strip() == "image missing: /data/x.jpg"
    assert frame.message == "image missing: /data/x.jpg"


def test_placeholder_wraps_long_messages():
    frame = placeholder((10, 5), "a very long message that wraps")
    text = " ".join(s.text.strip() for s in frame.strips if s.text.strip())
    assert text == "a very long message that wraps"


def test_class_color_is_stable_and_varied():
    assert class_color("person") == class_color("person")
    assert len({class_color(n) for n in ("person", "car", "dog", "cat", "bus", "bike")}) >= 4


def test_overlay_with_rle_is_hashable():
    ov = Overlay(ann_id=1, label="x", color=RED, rle={"size": [2, 2], "counts": [0, 4]})
    assert hash(ov) == hash(Overlay(ann_id=1, label="x", color=RED, rle={"size": [2, 2], "counts": [0, 4]}))


def test_rle_sampling_matches_pycocotools(tmp_path):
    # 1:1 display so every display pixel is one mask pixel; blue fill shows where the mask is.
    path = tmp_path / "black.png"
    Image.new("RGB", (40, 30), (0, 0, 0)).save(path)
    rng = np.random.default_rng(1)
    m = np.asfortranarray((rng.random((30, 40)) > 0.6).astype(np.uint8))
    rle = mask_utils.encode(m)
    expected = mask_utils.decode(rle).astype(bool)
    for counts in (rle["counts"].decode(), rle["counts"]):
        ov = Overlay(ann_id=1, label="m", color=(0, 0, 200), rle={"size": rle["size"], "counts": counts})
        frame = compose(decode(path, (40, 30)), [ov], (40, 15), RenderOptions(show_names=False))
        got = np.zeros((30, 40), dtype=bool)
        for row in range(15):
            for col in range(40):
                top, bottom, _ = cell_colors(frame, col, row)
                got[2 * row, col], got[2 * row + 1, col] = top != (0, 0, 0), bottom != (0, 0, 0)
        assert (got == expected).all()


def test_rle_only_overlay_gets_a_label_at_its_bounds(red_square):
    m = np.zeros((48, 64), dtype=np.uint8, order="F")
    m[20:30, 40:50] = 1
    rle = mask_utils.encode(m)
    ov = Overlay(ann_id=1, label="blob", color=(0, 0, 255), rle={"size": rle["size"], "counts": rle["counts"].decode()})
    frame = compose(decode(red_square, (64, 48)), [ov], (64, 24), RenderOptions())
    # Mask top at y=20 -> cell row 10; the name goes on row 9 at column 40.
    assert frame.strips[9].text.index("blob") == 40


@pytest.mark.parametrize(
    "rle",
    [
        {"size": [48, 64], "counts": [10, 48 * 64]},  # sums past h*w: pycocotools would overrun
        {"size": [48, 64], "counts": [-5, 10]},
        {"size": [48, 64], "counts": "\x7f\x7f garbage"},
        {"size": [48, 64], "counts": "0"},  # truncated continuation
        {"size": [0, 0], "counts": []},
        {"counts": [1, 2]},
    ],
)
def test_malformed_rle_is_skipped_not_fatal(red_square, rle):
    ov = Overlay(ann_id=1, label="bad", color=(0, 0, 255), rle=rle)
    frame = compose(decode(red_square, (64, 48)), [ov], (64, 24), RenderOptions(zoom=True))
    assert len(frame.strips) == 24


def test_unusable_geometry_is_skipped_not_fatal(red_square):
    nan = float("nan")
    bad = [
        Overlay(ann_id=1, label="nan", color=RED, bbox=(nan, 1, 2, 3), polygons=((1, 2, nan, 4, 5, 6),)),
        Overlay(ann_id=2, label="huge", color=RED, bbox=(-1e30, -1e30, 1e31, 1e31), keypoints=(1e40, 2, 2), selected=True),
        Overlay(ann_id=3, label="short", color=RED, polygons=((1, 2, 3, 4),), skeleton=((1, 9),)),
        box(label="fine"),
    ]
    frame = compose(decode(red_square, (64, 48)), bad, (64, 24), RenderOptions(zoom=True))
    assert any("fine" in strip.text for strip in frame.strips)


def _screen_cells(line: str) -> list[tuple[str, tuple]]:
    """What a terminal shows for one line of escape codes: each character with the colours and
    boldness in force when it was written (SGR 0, 1, 22, 38/48 in 2;r;g;b or 5;n form, 39, 49)."""
    import re

    state = {"fg": None, "bg": None, "bold": False}
    cells = []
    for sgr, text in re.findall(r"\x1b\[([0-9;]*)m|([^\x1b]+)", line):
        if text:
            cells += [(ch, (state["fg"], state["bg"], state["bold"])) for ch in text]
            continue
        params = [int(p) for p in sgr.split(";") if p] or [0]
        i = 0
        while i < len(params):
            p = params[i]
            if p == 0:
                state = {"fg": None, "bg": None, "bold": False}
            elif p == 1:
                state["bold"] = True
            elif p == 22:
                state["bold"] = False
            elif p in (39, 49):
                state["fg" if p == 39 else "bg"] = None
            elif p in (38, 48):
                key = "fg" if p == 38 else "bg"
                if params[i + 1] == 2:
                    state[key], i = tuple(params[i + 2:i + 5]), i + 4
                else:
                    state[key], i = ("256", params[i + 2]), i + 2
            i += 1
    return cells


@pytest.mark.parametrize("system", ["truecolor", "256"])
def test_finished_lines_show_what_textual_would_write(tmp_path, system):
    # finish_lines writes picture cells' codes itself (no reset per cell, true colour directly):
    # on the terminal every character must come out as Textual's own rendering draws it.
    from rich.color import ColorSystem
    from rich.console import Console
    from rich.segment import Segment
    from rich.style import Style

    from labelreview.tui import render

    color_system = ColorSystem.TRUECOLOR if system == "truecolor" else ColorSystem.EIGHT_BIT
    photo = tmp_path / "noise.png"  # every cell a colour of its own, its channels all different
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(photo)
    render.forget_styles()  # styles keep the codes of the colour system they were first finished for
    frame = compose(decode(photo, (40, 40)), [box(label="cat 0.91", selected=True)], (40, 20), RenderOptions())
    assert sum(len(strip) for strip in frame.strips) > 700  # ~one segment per cell
    render.finish_lines(frame, color_system)
    console = Console(color_system=system, force_terminal=True, width=40)
    for strip in frame.strips:
        # Rich's own rendering of the same segments, through fresh styles (a style keeps its codes).
        fresh = [Segment(seg.text, Style(color=seg.style.color, bgcolor=seg.style.bgcolor, bold=seg.style.bold))
                 for seg in strip]
        theirs = console._render_buffer(fresh)
        assert _screen_cells(strip._render_cache) == _screen_cells(theirs)
    assert any("cat" in s.text for s in frame.strips)
    render.forget_styles()


def test_the_detail_panel_names_the_shape_the_source_drew():
    # A CVAT polyline said "kind keypoints", and a single Label Studio keypoint "box 12,7 0×0".
    from labelreview.model import Annotation
    from labelreview.tui.widgets.detail import Detail

    def said(kind, extra, bbox):
        d = Detail()
        d.show(Annotation(id=1, image_id=1, category="lane", status="pending", kind=kind, bbox=bbox,
                          segmentation=None, keypoints=[12, 7, 2], score=None, iscrowd=0, area=None, source="s",
                          source_id=1, import_id="i", extra=extra, scores=None), [])
        return d.text

    assert "kind     polyline" in said("keypoints", {"cvat_shape": "polyline"}, [4, 4, 56, 36])
    assert "kind     polyline" in said("keypoints", {"ls_shape": "polyline"}, [4, 4, 56, 36])
    assert "kind     points" in said("keypoints", {"cvat_shape": "points"}, [4, 4, 56, 36])
    assert "kind     rotated box" in said("polygon", {"obb": True, "angle": 30.0}, [4, 4, 56, 36])
    assert "kind     bbox" in said("bbox", {}, [4, 4, 56, 36]) and "box      4,4 56×36" in said("bbox", {}, [4, 4, 56, 36])
    one_point = said("keypoints", {}, [12, 7, 0, 0])
    assert "kind     keypoints" in one_point and "box" not in one_point.replace("kind", "")


def test_the_history_panel_gives_a_decision_its_comment_too():
    # "flag saucer/pending → saucer/flagged (loose-box)": the reviewer's comment was left out (log and
    # blame show "loose-box — edge").
    from labelreview.model import Annotation
    from labelreview.tui.widgets.detail import Detail

    d = Detail()
    state = {"category": "saucer", "status": "pending"}
    d.show(Annotation(id=1, image_id=1, category="saucer", status="flagged", kind="bbox", bbox=[1, 1, 5, 5],
                      segmentation=None, keypoints=None, score=None, iscrowd=0, area=None, source="s", source_id=1,
                      import_id="i", extra={}, scores=None, reason="loose-box", comment="edge"),
           [{"author": "Ann <a@x>", "ts": "2026-11-28T16:08:00.000000Z", "action": "flag", "old": state,
             "new": {**state, "status": "flagged"}, "reason": "loose-box", "comment": "edge"}])
    assert "saucer/flagged (loose-box — edge)" in d.text


def test_two_names_side_by_side_keep_a_space_between_them(red_square):
    """Names of neighbouring boxes were placed touching: "cat · 0.60" then "50% off · 0.71" read
    "cat · 0.6050% off · 0.71". A name that would touch another goes to its next spot."""
    left = Overlay(ann_id=1, label="cat · 0.60", color=GREEN, bbox=(0, 12, 16, 16))
    right = Overlay(ann_id=2, label="50% off · 0.71", color=RED, bbox=(10, 12, 30, 16))
    frame = compose(decode(red_square, (64, 48)), [left, right], (64, 24), RenderOptions())
    text = "\n".join(strip.text for strip in frame.strips)
    assert "cat · 0.60" in text and "50% off · 0.71" in text
    assert "0.6050%" not in text
    for strip in frame.strips:
        line = strip.text
        if "cat · 0.60" in line and "50% off" in line:
            assert line[line.index("cat · 0.60") + len("cat · 0.60")] not in "5"


def test_a_score_far_out_of_range_is_a_short_name_on_the_picture():
    # A score of -1e300 (a broken exporter's) was drawn as a 300-digit name over the picture.
    from labelreview.display import score_text
    from labelreview.model import Annotation
    from labelreview.tui.render import overlays_for

    assert score_text(0.914) == "0.91" and score_text(0.914, 3) == "0.914" and score_text(-1e300) == "-1e+300"
    ann = Annotation(id=1, image_id=1, category="cat", status="pending", kind="bbox", bbox=[1, 1, 5, 5],
                     segmentation=None, keypoints=None, score=-1e300, iscrowd=0, area=None, source="s",
                     source_id=1, import_id="i", extra={}, scores=None)
    (overlay,) = overlays_for([ann], 1, {})
    assert overlay.label == "cat · -1e+300"
