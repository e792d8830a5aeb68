"""A YOLO export of shapes that reach past their image (imports keep them as drawn, only their box
clipped) is what Ultralytics trains on: polygons clipped exactly to the image, keypoints outside it
written as not labelled, oriented boxes fitted to their part inside; the export says how many.

Ultralytics' ``verify_image_label`` (ultralytics/data/utils.py) marks an image corrupt and trains on
none of its labels when a keypoint, or the box around a polygon's or an oriented box's points
(``segments2boxes``: centre, width, height), leaves 0..1 by more than 0.01. ``_ultralytics_accepts``
below is that check, with no margin (releases before 8.1 had none)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from pycocotools import mask as maskutils

from helpers import run


def _rows(txt: str) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in txt.splitlines() if line.strip()]


def _ultralytics_accepts(txt: str, kpt_shape: tuple[int, int] | None = None) -> bool:
    """Ultralytics' coordinate check of one label file, as verify_image_label makes it."""
    rows = _rows(txt)
    if not rows:
        return True
    if kpt_shape:
        lb = np.array(rows, dtype=np.float32)
        points = lb[:, 5:].reshape(-1, kpt_shape[1])[:, :2]
    elif any(len(r) > 6 for r in rows):
        boxes = []
        for r in rows:
            s = np.array(r[1:], dtype=np.float32).reshape(-1, 2)
            x0, y0, x1, y1 = s[:, 0].min(), s[:, 1].min(), s[:, 0].max(), s[:, 1].max()
            boxes.append([r[0], (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])
        lb = np.array(boxes, dtype=np.float32)
        points = lb[:, 1:]
    else:
        lb = np.array(rows, dtype=np.float32)
        points = lb[:, 1:]
    return bool(points.max() <= 1 and lb.min() >= 0)


def _pixels(row: list[float], W: int, H: int) -> list[float]:
    return [v * (W if i % 2 == 0 else H) for i, v in enumerate(row)]


def _mask(poly: list[float], W: int, H: int) -> np.ndarray:
    """pycocotools' mask of a polygon (it clips to the image whatever the points)."""
    return maskutils.decode(maskutils.frPyObjects([poly], H, W))[:, :, 0].astype(bool)


def _distance_to_outline(xs, ys, poly: list[float]) -> np.ndarray:
    p = np.asarray(poly, dtype=float).reshape(-1, 2)
    q = np.roll(p, -1, axis=0)
    pts = np.stack([xs, ys], axis=1)[:, None, :]
    d = q - p
    length = (d ** 2).sum(axis=1)
    length[length == 0] = 1
    t = np.clip(((pts - p) * d).sum(axis=2) / length, 0, 1)
    return np.sqrt(((pts - (p + t[..., None] * d)) ** 2).sum(axis=2)).min(axis=1)


def _assert_same_area_inside(drawn: list[float], written: list[float], W: int, H: int) -> None:
    """The written polygon covers what the drawn one covers inside the image: pycocotools' masks of the
    two differ only in pixels the written outline passes through (its rasterizer rounds a vertex to a
    fifth of a pixel, so a new vertex on the edge moves a slanted edge's pixels), and agree in area."""
    a, b = _mask(drawn, W, H), _mask(written, W, H)
    ys, xs = np.nonzero(a != b)
    if len(xs):
        assert _distance_to_outline(xs + 0.5, ys + 0.5, written).max() <= 1.5
    assert abs(int(a.sum()) - int(b.sum())) <= 0.03 * a.sum() + 2


def _shoelace(poly: list[float]) -> float:
    x, y = np.asarray(poly[0::2]), np.asarray(poly[1::2])
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    assert run("init", str(store))[0] == 0
    return store


def _export(store: Path, out: Path) -> tuple[str, dict]:
    rc, text, err = run("export", "yolo", str(out), "--include", "pending", "--store", str(store))
    assert rc == 0, err
    rc, js, err = run("export", "yolo", str(out), "--include", "pending", "--store", str(store), "--json")
    assert rc == 0, err
    return text, json.loads(js)


# ---------------------------------------------------------------------- polygons (from COCO)

W, H = 100, 50
#: A rectangle past the right edge (a vertex at 1.3: the box around it is still centred in the image,
#: which Ultralytics takes, but a vertex outside 0..1 is no YOLO label).
PAST_RIGHT = [60, 10, 130, 10, 130, 40, 60, 40]
#: Wider than the image: the box around its points is 1.4 images wide, which Ultralytics refuses.
WIDER = [-20, 5, 120, 5, 50, 45]
#: A U whose two arms leave through the top edge: clipped, still one polygon (its arms joined along
#: the edge by a line of no area), its area inside kept.
U_SHAPE = [20, -10, 30, -10, 30, 30, 70, 30, 70, -10, 80, -10, 80, 40, 20, 40]
#: Its box meets the image, the triangle itself does not (it passes above the top-right corner).
NEAR_CORNER = [95, -20, 130, -20, 130, 15]
INSIDE = [10, 10, 30, 10, 30, 30, 10, 30]


def _coco_store(tmp_path: Path) -> Path:
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        PILImage.new("RGB", (W, H)).save(imgs / name)

    def ann(i, image, poly):
        xs, ys = poly[0::2], poly[1::2]
        return {"id": i, "image_id": image, "category_id": 1, "segmentation": [poly], "iscrowd": 0,
                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "area": _shoelace(poly)}

    doc = {"images": [{"id": i, "file_name": n, "width": W, "height": H} for i, n in
                      ((1, "a.jpg"), (2, "b.jpg"), (3, "c.jpg"))],
           "categories": [{"id": 1, "name": "blob"}],
           "annotations": [ann(1, 1, PAST_RIGHT), ann(2, 1, INSIDE), ann(3, 2, WIDER), ann(4, 3, U_SHAPE),
                           ann(5, 3, NEAR_CORNER)]}
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    store = _store(tmp_path)
    rc, out, err = run("import", "coco", str(tmp_path / "coco.json"), "--images", str(imgs), "--store", str(store))
    assert rc == 0, err
    return store


def test_coco_polygons_past_the_image_are_clipped_to_it_in_a_yolo_export(tmp_path):
    """Written as drawn, b.jpg's polygon (1.4 images wide) made Ultralytics drop b.jpg, and a.jpg's
    and c.jpg's had vertices at 1.3 and -0.2: every value is now within 0..1, each polygon covers
    what it covered inside the image, and the export says what it did."""
    store = _coco_store(tmp_path)
    text, res = _export(store, tmp_path / "out")
    labels = {n: (tmp_path / "out/labels" / f"{n}.txt").read_text() for n in "abc"}
    for name, txt in labels.items():
        assert all(0 <= v <= 1 for row in _rows(txt) for v in row[1:]), (name, txt)
        assert _ultralytics_accepts(txt), (name, txt)

    a, b, c = (_rows(labels[n]) for n in "abc")
    assert len(a) == 2 and len(b) == 1 and len(c) == 1  # NEAR_CORNER: nothing of it inside, left out
    assert _pixels(a[0][1:], W, H) == pytest.approx([60, 10, 100, 10, 100, 40, 60, 40], abs=1e-4)
    assert labels["a"].splitlines()[1] == "0 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6"  # inside: as it was
    for drawn, row in ((PAST_RIGHT, a[0]), (INSIDE, a[1]), (WIDER, b[0]), (U_SHAPE, c[0])):
        _assert_same_area_inside(drawn, _pixels(row[1:], W, H), W, H)
    # WIDER less its two tips outside: triangles 20 wide, their edge along x=0 (x=100) 40*20/70 high
    assert _shoelace(_pixels(b[0][1:], W, H)) == pytest.approx(_shoelace(WIDER) - 2 * 0.5 * 20 * (40 * 20 / 70),
                                                               rel=1e-5)
    assert _shoelace(_pixels(c[0][1:], W, H)) == pytest.approx(2 * 10 * 30 + 60 * 10, rel=1e-5)

    assert res["annotations"] == 4
    assert res["past_image"] == {"polygon reaching past its image, clipped to it": 3,
                                 "polygon with nothing inside its image, left out": 1}
    assert "3 polygon reaching past its image, clipped to it\n" in text
    assert "1 polygon with nothing inside its image, left out\n" in text


def test_polygon_export_reimports_inside_the_image(tmp_path):
    """The clipped polygons read back (with --images) without a word about the image's edge."""
    store = _coco_store(tmp_path)
    _export(store, tmp_path / "out")
    other = _store(tmp_path / "again")
    rc, out, err = run("import", "yolo", str(tmp_path / "out"), "--images", str(tmp_path / "imgs"),
                       "--store", str(other), "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["annotations"] == 4
    assert not [w for w in doc["warnings"] if "outside" in w["problem"]], doc["warnings"]


# ---------------------------------------------------------------------- keypoints and oriented boxes (from YOLO)


def _yolo_dataset(d: Path, text: str, yaml_extra: str, size=(200, 100)) -> Path:
    (d / "images/train").mkdir(parents=True)
    (d / "labels/train").mkdir(parents=True)
    PILImage.new("RGB", size).save(d / "images/train/a.jpg")
    (d / "labels/train/a.txt").write_text(text)
    (d / "data.yaml").write_text(f"train: images/train\n{yaml_extra}")
    return d


@pytest.mark.parametrize("dims", [3, 2])
def test_keypoints_outside_the_image_are_written_as_not_labelled(tmp_path, dims):
    """A keypoint at x=1.2 made Ultralytics drop the image (its check is on every keypoint); it is
    written as COCO and CVAT write a keypoint not labelled (x=y=0, v=0), as Ultralytics itself makes a
    keypoint moved outside (visibility 0). One past the edge by rounding is moved onto it, unsaid."""
    def kp(x, y, v):
        return f"{x} {y} {v}" if dims == 3 else f"{x} {y}"

    lines = [f"0 0.8 0.5 0.4 0.6 {kp(0.7, 0.4, 2)} {kp(0.95, 0.5, 2)} {kp(1.2, 0.6, 2)}",
             f"0 0.3 0.5 0.4 0.6 {kp(0.2, 0.4, 2)} {kp(-0.1, -0.05, 1)} {kp(1.0000004, 0.5, 2)}",
             f"0 0.5 0.5 0.2 0.2 {kp(0.5, 0.5, 2)} {kp(0.45, 0.5, 2)} {kp(0.55, 0.5, 2)}"]
    d = _yolo_dataset(tmp_path / "ds", "\n".join(lines) + "\n",
                      f"kpt_shape: [3, {dims}]\nnames:\n  0: person\n")
    store = _store(tmp_path)
    rc, out, err = run("import", "yolo", str(d), "--store", str(store))
    assert rc == 0, err
    text, res = _export(store, tmp_path / "out")
    txt = (tmp_path / "out/labels/train/a.txt").read_text()
    assert _ultralytics_accepts(txt, (3, dims)), txt
    rows = _rows(txt)
    kps = [np.array(r[5:]).reshape(3, dims) for r in rows]
    assert all(0 <= v <= 1 for r, k in zip(rows, kps) for v in [*r[1:5], *k[:, :2].ravel()])
    missing = [0, 0, 0][:dims]
    assert kps[0][2].tolist() == missing and kps[0][:2, :2].tolist() == [[0.7, 0.4], [0.95, 0.5]]
    assert kps[1][1].tolist() == missing and kps[1][2, :2].tolist() == [1, 0.5]
    assert kps[2][:, :2].tolist() == [[0.5, 0.5], [0.45, 0.5], [0.55, 0.5]]
    assert res["past_image"] == {"pose with keypoints outside its image, those written as not labelled "
                                 "(x=y=0, v=0)": 2}
    assert "2 pose with keypoints outside its image" in text


def _corners(cx, cy, w, h, deg):
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return [v for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))
            for v in (cx + dx * c - dy * s, cy + dx * s + dy * c)]


def _line(corners, W, H):
    return "0 " + " ".join(f"{v / (W if i % 2 == 0 else H):.7f}" for i, v in enumerate(corners))


def _angle(c):
    return math.degrees(math.atan2(c[3] - c[1], c[2] - c[0]))


def _side(c, i):
    return math.hypot(c[2 * ((i + 1) % 4)] - c[2 * i], c[2 * ((i + 1) % 4) + 1] - c[2 * i + 1])


def test_oriented_boxes_past_the_image_are_fitted_to_their_part_inside(tmp_path):
    """An oriented box past the edge is fitted, as Ultralytics fits one an augmentation pushes past
    the image (Instances.clip(preserve_obb=True), 8.4), to the rectangle in its own orientation around
    its part inside: still a rectangle at the same angle, covering all it covered inside the image.
    One turned and longer than the image is wide, which Ultralytics refused (the box around its
    corners is wider than the image), is written as the upright box around its part inside."""
    W2, H2 = 200, 100
    past = _corners(185, 50, 60, 30, 20)
    turned_long = _corners(100, 50, 260, 60, 30)
    inside = _corners(60, 50, 40, 20, 30)
    text = "\n".join(_line(c, W2, H2) for c in (past, turned_long, inside)) + "\n"
    d = _yolo_dataset(tmp_path / "ds", text, "names:\n  0: ship\n")
    store = _store(tmp_path)
    rc, out, err = run("import", "auto", str(d), "--store", str(store))
    assert rc == 0, err
    assert "yolo-obb" in out
    out_text, res = _export(store, tmp_path / "out")
    txt = (tmp_path / "out/labels/train/a.txt").read_text()
    assert _ultralytics_accepts(txt), txt
    fitted, boxed, kept = (_pixels(r[1:], W2, H2) for r in _rows(txt))

    # the box past the right edge: same angle, still a rectangle, no bigger, covering its part inside
    assert _angle(fitted) == pytest.approx(_angle(past), abs=1e-3)
    assert _side(fitted, 0) == pytest.approx(_side(fitted, 2), abs=1e-3)
    assert _side(fitted, 1) == pytest.approx(_side(fitted, 3), abs=1e-3)
    assert _side(fitted, 0) < _side(past, 0) and _side(fitted, 1) == pytest.approx(_side(past, 1), abs=1e-3)
    seen = _mask(past, W2, H2)
    assert (seen & ~_mask(fitted, W2, H2)).sum() <= 2 * (W2 + H2) * 0.01
    # the long turned one: the upright box around its part inside, within the image
    xs, ys = boxed[0::2], boxed[1::2]
    assert min(xs) >= 0 and max(xs) <= W2 and min(ys) >= 0 and max(ys) <= H2
    assert (_mask(turned_long, W2, H2) & ~_mask(boxed, W2, H2)).sum() <= 2 * (W2 + H2) * 0.01
    # inside: as it was
    assert kept == pytest.approx(inside, abs=0.01)

    assert res["past_image"] == {
        "oriented box reaching past its image, fitted to its part inside (as Ultralytics clips one)": 1,
        "oriented box past its image that Ultralytics would refuse even fitted, written upright around its "
        "part inside": 1}
    assert "1 oriented box reaching past its image, fitted" in out_text

    # and it reads back as oriented boxes (rectangles), not as polygons
    other = _store(tmp_path / "again")
    rc, out, err = run("import", "auto", str(tmp_path / "out"), "--images", str(d), "--store", str(other))
    assert rc == 0, err
    assert "yolo-obb" in out, out


# ---------------------------------------------------------------------- the clip itself


def test_clip_polygon_cases():
    from labelreview.formats.common import clip_polygon

    inside = [10.0, 10, 30, 10, 30, 30]
    assert clip_polygon(inside, (50, 100)) == (inside, False)
    assert clip_polygon(inside, (50, 100))[0] is inside
    assert clip_polygon([60, 10, 130, 10, 130, 40, 60, 40], (50, 100)) == \
        ([60, 10, 100, 10, 100, 40, 60, 40], True)
    assert clip_polygon([110, 10, 130, 10, 120, 40], (50, 100)) == ([], True)  # outside
    assert clip_polygon([100, 10, 130, 10, 120, 40], (50, 100)) == ([], True)  # touches the edge only
    assert clip_polygon([10, 10, 30, 10, 100.004, 40], (50, 100)) == ([10, 10, 30, 10, 100, 40], False)  # rounding


def test_clip_polygon_keeps_the_area_inside_the_image():
    """Random star-shaped polygons around centres in and out of the image: the clip lies within it
    and pycocotools rasterizes it as it rasterizes the polygon drawn (it clips to the image itself),
    but for pixels on the clip's outline."""
    import random

    from labelreview.formats.common import clip_polygon

    rng = random.Random(7)
    n = 0
    for _ in range(300):
        w, h = rng.randint(10, 200), rng.randint(10, 200)
        cx, cy = rng.uniform(-0.3 * w, 1.3 * w), rng.uniform(-0.3 * h, 1.3 * h)
        angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(rng.randint(3, 9)))
        radii = [rng.uniform(0.1, 1) * max(w, h) for _ in angles]
        poly = [v for a, r in zip(angles, radii) for v in (cx + r * math.cos(a), cy + r * math.sin(a))]
        clipped, _ = clip_polygon(poly, (h, w))
        if not clipped:
            assert _mask(poly, w, h).sum() <= 2 * (w + h)  # at most slivers along the edge
            continue
        xs, ys = clipped[0::2], clipped[1::2]
        assert min(xs) >= 0 and max(xs) <= w and min(ys) >= 0 and max(ys) <= h
        a, b = _mask(poly, w, h), _mask(clipped, w, h)
        yy, xx = np.nonzero(a != b)
        if len(xx):
            assert _distance_to_outline(xx + 0.5, yy + 0.5, clipped).max() <= 1.5
        n += 1
    assert n > 200
