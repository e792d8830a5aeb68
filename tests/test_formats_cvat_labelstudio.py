"""CVAT for images 1.1 and Label Studio JSON: corpus counts, rotation conventions (CVAT about the
centre, Label Studio about the top-left corner), CVAT mask RLE, clear errors."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from conftest import CORPUS
from labelreview.formats import cvat, labelstudio
from labelreview.formats.common import decode_segmentation
from labelreview.model import InputError, LabelreviewError
from test_formats_util import store_round_trip

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus absent")
CV = CORPUS / "datumaro_cvat/tests/assets/cvat_dataset"
PROJ = CORPUS / "datumaro_openvino/tests/assets/cvat_dataset/for_images/export_project/annotations.xml"
LSD = CORPUS / "label_studio_converter/tests/data/test_export_yolo"


def test_cvat_task_corpus():
    b, root = cvat.read(CV / "for_images/train.xml")
    assert (len(b.images), len(b.proposals)) == (2, 6)
    kinds = [(p.image_key, p.kind, p.category) for p in b.proposals]
    assert kinds[0] == ("img0.jpg", "bbox", "label1")
    box = b.proposals[0]
    assert box.bbox == [0, 2, 4, 2] and box.extra["attributes"] == {"a1": "true", "a2": "v3", "a3": "0003", "a4": "2.4"}
    assert box.extra["occluded"] == 1
    skel = b.proposals[2]
    assert skel.kind == "keypoints" and skel.keypoints == [1, 1, 0, 2, 2, 2, 3, 3, 2, 4, 4, 2]  # outside -> v 0
    cat = [c for c in b.categories if c.name == "skeleton"][0]
    assert cat.keypoints == ["1", "2", "3", "4"] and cat.skeleton == [[3, 2], [1, 4]]
    assert sum("empty label" in w.problem for w in b.warnings) == 2


def test_cvat_project_export_keys_images_by_subset():
    b, root = cvat.read(PROJ)
    assert (len(b.images), len(b.proposals)) == (6, 12)
    assert {im.file_name for im in b.images} == {f"{s}/img{i}.jpg" for s in ("Test", "Train", "Validation")
                                                 for i in (0, 1)}
    assert all((root / im.file_name).is_file() for im in b.images)


def test_cvat_video_is_refused_clearly():
    with pytest.raises(InputError, match="CVAT for video .* not supported"):
        cvat.read(CV / "for_video/annotations.xml")


def test_cvat_through_store(tmp_path):
    first, again, _ = store_round_trip(tmp_path, "cvat", CV / "for_images/train.xml", out_fmt="coco",
                                       out_name="out.json")
    assert len(again.proposals) == len(first.proposals)


def _cvat(tmp_path, body: str) -> str:
    x = tmp_path / "a.xml"
    x.write_text(f'<annotations><version>1.1</version><image id="0" name="i.jpg" width="10" height="6">{body}'
                 "</image></annotations>")
    return x


def test_cvat_rotated_box_turns_about_its_centre_and_mask_rle_is_row_major(tmp_path):
    b, _ = cvat.read(_cvat(tmp_path, '<box label="a" xtl="2" ytl="1" xbr="6" ybr="3" rotation="90"/>'
                           '<mask label="m" rle="1, 2, 3, 2" left="1" top="2" width="4" height="2"/>'
                           '<tag label="sunny"/>'))
    box, mask, tag = b.proposals
    pts = box.segmentation[0]
    assert box.kind == "polygon" and box.extra["obb"] and box.extra["cvat_rotation"] == 90
    assert sum(pts[0::2]) / 4 == pytest.approx(4) and sum(pts[1::2]) / 4 == pytest.approx(2)  # same centre
    assert box.bbox == pytest.approx([3, 0, 2, 4])  # 4x2 turned a quarter: 2 wide, 4 high
    m = decode_segmentation(mask.segmentation, 6, 10)
    expect = np.zeros((6, 10), np.uint8)
    expect[2, 2:4] = 1  # runs 1 off, 2 on, 3 off, 2 on over the 4x2 box at (1, 2), row by row
    expect[3, 3:5] = 1
    assert (m == expect).all() and mask.kind == "rle"
    assert tag.kind == "label" and tag.category == "sunny"


@pytest.mark.parametrize("body,message", [
    ('<box label="a" xtl="2" ytl="1" xbr="nan" ybr="3"/>', "xbr='nan' is not a number"),
    ('<box label="a" xtl="2" ytl="1" xbr="1" ybr="3"/>', "xbr/ybr lie before"),
    ('<polygon label="a" points="1,2;3"/>', "point '3' is not x,y"),
    ('<polygon label="a" points="1,2;3,4"/>', "at least 3 points"),
    ('<mask label="m" rle="1, 2" left="0" top="0" width="4" height="2"/>', "rle covers 3 pixels"),
    ('<box label="a"', "not well-formed XML"),
    ('<box label="a" xtl="2" ytl="1" xbr="6" ybr="3" rotation="abc"/>', "<box> #0: rotation='abc' is not a number"),
    ('<box label="a" xtl="2" ytl="1" xbr="6" ybr="3" rotation="inf"/>', "rotation='inf' is not a number"),
    ('<mask label="m" rle="0, 4" left="0" top="0" width="-2" height="-2"/>', "mask box -2x-2 has no pixels"),
    ('<mask label="m" rle="0, 40000000000" left="0" top="0" width="200000" height="200000"/>',
     "<mask> #0: mask box 200000x200000 is more than"),
])
def test_cvat_clear_errors(tmp_path, body, message):
    with pytest.raises(InputError) as e:
        cvat.read(_cvat(tmp_path, body))
    assert str(e.value).startswith("a.xml: ") and message in str(e.value)


def test_cvat_mask_on_an_image_claiming_a_huge_size_is_refused_before_allocating(tmp_path):
    """A 2x2 mask on an image the XML says is 200000x200000: refused, naming the file, the image and the
    mask, instead of allocating 40 GB (b7)."""
    from PIL import Image as PILImage

    PILImage.new("RGB", (10, 6)).save(tmp_path / "i.jpg")
    x = tmp_path / "a.xml"
    x.write_text('<annotations><version>1.1</version><image id="0" name="i.jpg" width="200000" height="200000">'
                 '<mask label="m" rle="0, 4" left="0" top="0" width="2" height="2"/></image></annotations>')
    with pytest.raises(InputError) as e:
        cvat.read(x)
    assert str(e.value).startswith("a.xml: image 'i.jpg' <mask> #0: the image claims 200000x200000 pixels; "
                                   "the image file is 10x6: more than")
    # boxes on such an image allocate nothing: no reason to refuse them here
    x.write_text('<annotations><version>1.1</version><image id="0" name="i.jpg" width="200000" height="200000">'
                 '<box label="a" xtl="2" ytl="1" xbr="6" ybr="3"/></image></annotations>')
    assert len(cvat.read(x)[0].proposals) == 1


def test_cvat_odd_attribute_values_are_kept_as_text(tmp_path):
    b, _ = cvat.read(_cvat(tmp_path, '<box label="a" xtl="2" ytl="1" xbr="6" ybr="3" z_order="\u00b2" occluded="-1"/>'))
    assert b.proposals[0].extra["z_order"] == "\u00b2" and b.proposals[0].extra["occluded"] == -1


def test_malformed_rotation_and_mask_bomb_fail_clearly_with_the_store_unchanged(tmp_path):
    from PIL import Image as PILImage

    from conftest import run_cli

    store = tmp_path / "st"
    assert run_cli("init", str(store)).returncode == 0
    (tmp_path / "images").mkdir()
    PILImage.new("RGB", (100, 80)).save(tmp_path / "images/a.jpg")
    head = '<annotations><version>1.1</version><image id="0" name="a.jpg" width="{}" height="{}">'
    (tmp_path / "rot.xml").write_text(head.format(100, 80) + '<box label="car" xtl="10" ytl="10" xbr="50" ybr="30" '
                                      'rotation="abc"/></image></annotations>')
    (tmp_path / "big.xml").write_text(head.format(200000, 200000) + '<mask label="car" rle="0, 4" left="0" top="0" '
                                      'width="2" height="2"/></image></annotations>')
    ls = [{"id": 1, "data": {"image": "a.jpg"}, "annotations": [{"id": 1, "result": [
        {"id": "r1", "type": "rectanglelabels", "original_width": 100, "original_height": 80,
         "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": [15], "rectanglelabels": ["car"]}}]}]}]
    (tmp_path / "ls.json").write_bytes(orjson.dumps(ls))
    for fmt, f, msg in [("cvat", "rot.xml", "rot.xml: image 'a.jpg' <box> #0: rotation='abc' is not a number"),
                        ("cvat", "big.xml", "big.xml: image 'a.jpg' <mask> #0: the image claims 200000x200000"),
                        ("labelstudio", "ls.json",
                         "ls.json: [0] (task 1) annotations[0] result[0]: rotation [15] is not a number")]:
        r = run_cli("import", fmt, str(tmp_path / f), "--images", str(tmp_path / "images"), "--store", str(store))
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert msg in r.stderr
    r = run_cli("status", "--store", str(store), "--json")
    assert '"imports": 0' in r.stdout and '"total": 0' in r.stdout, r.stdout


@pytest.mark.parametrize("name,n_images,n_labels", [("data.json", 2, 6), ("data_obb.json", 3, 25),
                                                     ("data_polygons.json", 1, 1)])
def test_labelstudio_corpus(name, n_images, n_labels):
    b, _ = labelstudio.read(LSD / name)
    assert (len(b.images), len(b.proposals)) == (n_images, n_labels)


def test_labelstudio_percent_and_rotation_about_top_left():
    b, _ = labelstudio.read(LSD / "data.json")
    p = b.proposals[0]  # x 37.158 %, y 70.674 % of 2800 x 2800
    assert p.bbox == pytest.approx([37.15846994535519 * 28, 70.67395264116576 * 28, 4.189435336976321 * 28,
                                    4.735883424408015 * 28])
    ob, _ = labelstudio.read(LSD / "data_obb.json")
    r = ob.proposals[0]
    pts = r.segmentation[0]
    assert pts[:2] == pytest.approx([10.537066764905694 * 5.97, 79.55767690059092 * 7.68])  # corner stays put
    w = 19.045470024656687 * 5.97
    assert math.hypot(pts[2] - pts[0], pts[3] - pts[1]) == pytest.approx(w)
    assert r.extra["angle"] == pytest.approx(328.33240366032834 - 360)
    assert any("differ only in case" in w.problem for w in ob.warnings)


def test_labelstudio_predictions_and_errors(tmp_path):
    task = {"id": 7, "data": {"image": "/data/upload/3/deadbeef-x.jpg"},
            "predictions": [{"id": 1, "model_version": "m1", "score": 0.4, "result": [
                {"type": "rectanglelabels", "original_width": 100, "original_height": 50,
                 "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["car"]}, "score": 0.9},
                {"type": "choices", "value": {"choices": ["day"]}}]}],
            "annotations": [{"id": 2, "was_cancelled": True, "result": []}]}
    (tmp_path / "x.jpg").write_bytes(b"")
    (tmp_path / "a.json").write_bytes(orjson.dumps([task]))
    b, _ = labelstudio.read(tmp_path / "a.json")
    assert b.images[0].file_name == "x.jpg"  # the upload prefix is dropped to find the file
    box, label = b.proposals
    assert box.bbox == [10, 10, 30, 20] and box.score == 0.9 and box.extra["model_version"] == "m1"
    assert label.kind == "label" and label.score == 0.4
    task["predictions"][0]["result"][0]["value"]["width"] = None
    (tmp_path / "a.json").write_bytes(orjson.dumps([task]))
    with pytest.raises(InputError, match=r"a.json: \[0\] \(task 7\) predictions\[0\] result\[0\]: width None"):
        labelstudio.read(tmp_path / "a.json")
    task["predictions"][0]["result"][0]["value"].update(width=30, rotation=[15])
    (tmp_path / "a.json").write_bytes(orjson.dumps([task]))
    with pytest.raises(InputError, match=r"a.json: \[0\] \(task 7\) predictions\[0\] result\[0\]: rotation \[15\] "
                       "is not a number"):
        labelstudio.read(tmp_path / "a.json")
    (tmp_path / "a.json").write_text('[{"data": ')
    with pytest.raises(InputError, match="not valid JSON"):
        labelstudio.read(tmp_path / "a.json")


def test_import_only_formats_refuse_export(tmp_path):
    from types import SimpleNamespace

    from labelreview.formats import registry

    with pytest.raises(LabelreviewError, match="import format only"):
        registry.write("cvat", None, tmp_path / "x", SimpleNamespace())


def test_labelstudio_result_without_its_size_takes_the_image_found_under_images(tmp_path):
    # Results without original_width/height were skipped unless the task named the image by an
    # absolute path; an image found under the image root has its size on disk.
    from PIL import Image as PILImage

    (tmp_path / "imgs").mkdir()
    PILImage.new("RGB", (200, 100)).save(tmp_path / "imgs" / "a.jpg")
    box = {"type": "rectanglelabels",
           "value": {"x": 10, "y": 20, "width": 50, "height": 50, "rectanglelabels": ["car"]}}
    task = {"id": 1, "data": {"image": "/data/upload/1/a.jpg"}, "annotations": [{"id": 1, "result": [box]}]}
    (tmp_path / "ls.json").write_bytes(orjson.dumps([task]))
    b, _ = labelstudio.read(tmp_path / "ls.json", images=tmp_path / "imgs")
    assert [p.bbox for p in b.proposals] == [[20, 20, 100, 50]]
    assert not any("original_width" in w.problem for w in b.warnings)
    # a name that is not a file under the root is not opened: still skipped, with the warning
    task["data"]["image"] = "elsewhere/b.jpg"
    (tmp_path / "ls.json").write_bytes(orjson.dumps([task]))
    b, _ = labelstudio.read(tmp_path / "ls.json", images=tmp_path / "imgs")
    assert b.proposals == [] and any("original_width" in w.problem for w in b.warnings)


def test_labelstudio_taxonomy_of_non_names_is_a_clear_error(tmp_path):
    # A taxonomy path with a number in it ([["Animal", 3]]) ended the import in a TypeError traceback
    # from str.join; it is a malformed result like any other, named by task, annotation and result.
    from conftest import run_cli

    store = tmp_path / "st"
    assert run_cli("init", str(store)).returncode == 0
    task = {"id": 4, "data": {"image": "a.jpg"}, "annotations": [{"id": 1, "result": [
        {"type": "taxonomy", "value": {"taxonomy": [["Animal", "Cat"]]}},
        {"type": "taxonomy", "value": {"taxonomy": [["Animal", 3]]}}]}]}
    (tmp_path / "ls.json").write_bytes(orjson.dumps([task]))
    r = run_cli("import", "labelstudio", str(tmp_path / "ls.json"), "--store", str(store))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "ls.json: [0] (task 4) annotations[0] result[1]: labels must be a list of names" in r.stderr
    assert '"imports": 0' in run_cli("status", "--store", str(store), "--json").stdout
    task["annotations"][0]["result"].pop()
    (tmp_path / "ls.json").write_bytes(orjson.dumps([task]))
    b, _ = labelstudio.read(tmp_path / "ls.json")
    assert [p.category for p in b.proposals] == ["Animal/Cat"]


def test_cvat_box_outside_the_image_is_clipped_or_skipped(tmp_path):
    # Boxes were stored as the XML had them: one reaching 100 px past the image, or lying wholly
    # outside it, went on to a YOLO export with coordinates outside 0..1 (Ultralytics then drops
    # every label of the image). Clipped or skipped with a warning, as COCO, YOLO and VOC do.
    (tmp_path / "a.xml").write_text(
        '<annotations><version>1.1</version><image id="0" name="a.jpg" width="100" height="80">'
        '<box label="car" xtl="-20" ytl="10" xbr="50" ybr="180"/>'
        '<box label="car" xtl="120" ytl="10" xbr="150" ybr="30"/>'
        '<box label="car" xtl="10" ytl="10" xbr="20" ybr="20"/>'
        '<box label="car" xtl="100" ytl="10" xbr="100" ybr="20"/></image></annotations>')
    b, _ = cvat.read(tmp_path / "a.xml")
    assert [(p.bbox, p.source_id) for p in b.proposals] == [([0, 10, 50, 70], "0:0"), ([10, 10, 10, 10], "0:2"),
                                                            ([100, 10, 0, 10], "0:3")]
    assert [(w.where, w.action) for w in b.warnings] == [("image 'a.jpg' <box> #0", "repaired"),
                                                         ("image 'a.jpg' <box> #1", "skipped")]


def test_labelstudio_box_past_the_image_is_clipped_or_skipped(tmp_path):
    # Rectangles past 100 % (or below 0) were stored as they were, outside the image; the other
    # readers clip such a box, or skip it when nothing of it is inside, with a warning.
    def rect(x, y, w, h, rid):
        return {"id": rid, "type": "rectanglelabels", "original_width": 200, "original_height": 100,
                "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": ["car"]}}

    task = {"id": 3, "data": {"image": "a.jpg"}, "annotations": [{"id": 1, "result": [
        rect(-10, 20, 30, 100, "r0"),   # left of 0 and past the bottom: clipped
        rect(110, 10, 20, 20, "r1"),    # wholly right of the image: skipped
        rect(10, 10, 20, 20, "r2"),     # inside: as it was
        rect(-30, 10, 30, 20, "r3"),    # ends where the image starts: nothing inside, skipped
        rect(100, 10, 0, 20, "r4"),     # zero width on the right edge: inside, kept
        rect(100 / 3, 50, 200 / 3, 50.000000001, "r5"),  # past 100 % by rounding only: clipped, unsaid
    ]}]}
    (tmp_path / "a.json").write_bytes(orjson.dumps([task]))
    b, _ = labelstudio.read(tmp_path / "a.json")
    got = {p.source_id.rsplit("/", 1)[1]: p.bbox for p in b.proposals}
    assert got.keys() == {"r0", "r2", "r4", "r5"}
    assert got["r0"] == [0, 20, 40, 80] and got["r2"] == [20, 10, 40, 20] and got["r4"] == [200, 10, 0, 20]
    assert got["r5"][1] + got["r5"][3] <= 100 and math.isclose(got["r5"][0] + got["r5"][2], 200)
    base = "[0] (task 3) annotations[0] "
    assert [(w.where, w.problem, w.action) for w in b.warnings if "result" in w.where] == [
        (base + "result[0]", "box reaches outside the 200x100 image; clipped", "repaired"),
        (base + "result[1]", "box lies outside the 200x100 image", "skipped"),
        (base + "result[3]", "box lies outside the 200x100 image", "skipped"),
    ]


def _export_coco(tmp_path, fmt: str, src, images) -> tuple[dict, list[dict]]:
    """``src`` imported with the command line, exported as COCO: (the COCO document, the import's warnings)."""
    import json

    from helpers import run

    store = tmp_path / f"st-{fmt}"
    assert run("init", str(store))[0] == 0
    rc, out, err = run("import", fmt, str(src), "--images", str(images), "--store", str(store), "--json")
    assert rc == 0, err
    warns = json.loads(out)["warnings"]
    rc, _, err = run("export", "coco", str(tmp_path / f"{fmt}.json"), "--include", "pending", "--store", str(store))
    assert rc == 0, err
    return json.loads((tmp_path / f"{fmt}.json").read_text()), warns


def _inside(doc) -> bool:
    im = doc["images"][0]
    return all(a["bbox"][0] >= 0 and a["bbox"][1] >= 0 and a["bbox"][0] + a["bbox"][2] <= im["width"]
               and a["bbox"][1] + a["bbox"][3] <= im["height"] for a in doc["annotations"])


def test_rotated_boxes_polygons_and_points_past_the_image_are_handled_as_coco_polygons(tmp_path):
    """Label Studio and CVAT rotated boxes, polygons and points reaching past the image were stored
    with a box outside it, with no word, and those wholly outside were kept: exported, a box with a
    negative x or past the width (and normalized values outside 0..1, which make Ultralytics drop
    the image's labels). As COCO polygons are: the points are kept as drawn (a rotated box clipped
    is no rectangle), the box is clipped to the image with a warning, and a shape with nothing inside
    the image is skipped with a warning."""
    from PIL import Image as PILImage

    PILImage.new("RGB", (200, 100)).save(tmp_path / "a.jpg")

    def r(typ, value, rid):
        return {"id": rid, "type": typ, "original_width": 200, "original_height": 100, "value": value}

    res = [
        r("rectanglelabels", {"x": 90, "y": 10, "width": 20, "height": 20, "rotation": 30,
                              "rectanglelabels": ["car"]}, "r0"),  # past the right edge
        r("rectanglelabels", {"x": 120, "y": 10, "width": 10, "height": 10, "rotation": 30,
                              "rectanglelabels": ["car"]}, "r1"),  # wholly right of the image
        r("polygonlabels", {"points": [[90, 10], [110, 10], [110, 40]], "polygonlabels": ["car"]}, "r2"),
        r("polygonlabels", {"points": [[-30, -30], [-10, -30], [-10, -10]], "polygonlabels": ["car"]}, "r3"),
        r("keypointlabels", {"x": 150, "y": 50, "width": 1, "keypointlabels": ["nose"]}, "r4"),
        r("keypointlabels", {"x": 50, "y": 50, "width": 1, "keypointlabels": ["nose"]}, "r5"),
        r("rectanglelabels", {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 10,
                              "rectanglelabels": ["car"]}, "r6"),  # inside: as it was, no word
    ]
    (tmp_path / "ls.json").write_bytes(orjson.dumps([{"id": 1, "data": {"image": "a.jpg"},
                                                      "annotations": [{"id": 1, "result": res}]}]))
    doc, warns = _export_coco(tmp_path, "labelstudio", tmp_path / "ls.json", tmp_path)
    base = "[0] (task 1) annotations[0] "
    assert [(w["where"], w["problem"], w["action"]) for w in warns] == [
        (base + "result[0]", "rotated box reaches outside the 200x100 image; kept as drawn, its box clipped",
         "repaired"),
        (base + "result[1]", "rotated box lies outside the 200x100 image", "skipped"),
        (base + "result[2]", "polygon reaches outside the 200x100 image; kept as drawn, its box clipped",
         "repaired"),
        (base + "result[3]", "polygon lies outside the 200x100 image", "skipped"),
        (base + "result[4]", "keypoint lies outside the 200x100 image", "skipped"),
    ]
    assert len(doc["annotations"]) == 4 and _inside(doc)
    by_poly = {len(a["segmentation"][0]) if a.get("segmentation") else 0: a for a in doc["annotations"]}
    assert by_poly[6]["segmentation"] == [[180, 10, 220, 10, 220, 40]]  # the polygon as drawn
    assert by_poly[6]["bbox"] == [180, 10, 20, 30]
    rot = [a for a in doc["annotations"] if a.get("ls_rotation") == 30][0]
    assert rot["segmentation"][0][:2] == [180, 10] and max(rot["segmentation"][0][0::2]) > 200  # corner kept

    (tmp_path / "c.xml").write_text(
        '<annotations><version>1.1</version><image id="0" name="a.jpg" width="200" height="100">'
        '<box label="car" xtl="180" ytl="10" xbr="220" ybr="30" rotation="30"/>'
        '<box label="car" xtl="300" ytl="10" xbr="320" ybr="30" rotation="30"/>'
        '<polygon label="car" points="180,10;220,10;220,60"/>'
        '<points label="pt" points="250,50"/>'
        '<polyline label="line" points="150,50;250,50"/>'
        '<box label="car" xtl="10" ytl="10" xbr="30" ybr="30" rotation="10"/>'
        '</image></annotations>')
    doc, warns = _export_coco(tmp_path, "cvat", tmp_path / "c.xml", tmp_path)
    assert [(w["where"], w["problem"], w["action"]) for w in warns] == [
        ("image 'a.jpg' <box> #0", "rotated box reaches outside the 200x100 image; kept as drawn, its box clipped",
         "repaired"),
        ("image 'a.jpg' <box> #1", "rotated box lies outside the 200x100 image", "skipped"),
        ("image 'a.jpg' <polygon> #2", "polygon reaches outside the 200x100 image; kept as drawn, its box clipped",
         "repaired"),
        ("image 'a.jpg' <points> #3", "points shape lies outside the 200x100 image", "skipped"),
        ("image 'a.jpg' <polyline> #4", "polyline reaches outside the 200x100 image; kept as drawn, its box "
         "clipped", "repaired"),
    ]
    assert len(doc["annotations"]) == 4 and _inside(doc)
    line = [a for a in doc["annotations"] if a.get("cvat_shape") == "polyline"][0]
    assert line["keypoints"] == [150, 50, 2, 250, 50, 2] and line["bbox"] == [150, 50, 50, 0]


def test_cvat_skeleton_with_every_marked_point_outside_the_image_is_skipped(tmp_path):
    xml = tmp_path / "s.xml"
    xml.write_text(
        '<annotations><version>1.1</version><meta><task><labels>'
        '<label><name>sk</name><type>skeleton</type></label>'
        '<label><name>p1</name><type>points</type><parent>sk</parent></label>'
        '<label><name>p2</name><type>points</type><parent>sk</parent></label>'
        '</labels></task></meta>'
        '<image id="0" name="a.jpg" width="20" height="10">'
        '<skeleton label="sk"><points label="p1" points="30,5"/><points label="p2" points="35,5"/></skeleton>'
        '<skeleton label="sk"><points label="p1" points="5,5"/><points label="p2" points="-40,5" outside="1"/>'
        '</skeleton></image></annotations>')
    b, _ = cvat.read(xml)
    assert [(p.kind, p.bbox) for p in b.proposals] == [("keypoints", [5, 5, 0, 0])]  # the point marked outside: no matter
    assert [(w.where, w.problem, w.action) for w in b.warnings] == [
        ("image 'a.jpg' <skeleton> #0", "skeleton lies outside the 20x10 image", "skipped")]


def test_labelstudio_task_naming_a_hidden_image_reads_it(tmp_path):
    """A task whose image's name starts with '.' was "not found" (the image root's walk passes over
    hidden files) though it was there, and its results without original_width were lost ("no
    original_width/original_height"). A task names the image it was labelled on: it is read, hidden
    or not, as a CSV row's or a YOLO split list's."""
    import json

    from PIL import Image as PILImage

    from helpers import run

    for n in ("a", ".h"):
        PILImage.new("RGB", (200, 100)).save(tmp_path / f"{n}.jpg")

    def task(i, image):
        return {"id": i, "data": {"image": image}, "annotations": [{"id": i, "result": [
            {"id": "r", "type": "rectanglelabels", "value": {"x": 10, "y": 10, "width": 20, "height": 20,
                                                             "rectanglelabels": ["car"]}}]}]}

    (tmp_path / "ls.json").write_bytes(orjson.dumps([task(1, "/data/upload/1/abcd1234-a.jpg"),
                                                     task(2, "/data/upload/1/abcd1234-.h.jpg"),
                                                     task(3, "/data/local-files/?d=.h.jpg")]))
    store = tmp_path / "st"
    assert run("init", str(store))[0] == 0
    rc, out, err = run("import", "labelstudio", str(tmp_path / "ls.json"), "--store", str(store), "--json")
    assert rc == 0, err
    assert json.loads(out)["warnings"] == []
    rc, out, _ = run("ls", "--json", "--store", str(store))
    assert sorted((a["file_name"], a["bbox"]) for a in json.loads(out)) == [
        (".h.jpg", [20, 10, 40, 20]), (".h.jpg", [20, 10, 40, 20]), ("a.jpg", [20, 10, 40, 20])]


def test_labelstudio_percent_is_read_against_the_image_when_results_claim_another_size(tmp_path):
    """Two results on one 200x100 picture, one claiming original 400x200 (a resized copy, a stale
    export): its percent put the box at twice its place (x 40 px, not 20), with no word."""
    from PIL import Image as PILImage

    PILImage.new("RGB", (200, 100)).save(tmp_path / "a.jpg")

    def rect(W, H):
        return {"type": "rectanglelabels", "original_width": W, "original_height": H,
                "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["car"]}}

    task = {"id": 1, "data": {"image": "a.jpg"}, "annotations": [{"id": 1, "result": [rect(200, 100), rect(400, 200)]}]}
    (tmp_path / "ls.json").write_bytes(orjson.dumps([task]))
    b, _ = labelstudio.read(tmp_path / "ls.json")
    assert [p.bbox for p in b.proposals] == [[20, 10, 40, 20], [20, 10, 40, 20]]
    assert (b.images[0].width, b.images[0].height) == (200, 100)
    assert [(w.where, w.action) for w in b.warnings if "400x200 differ from the image's 200x100" in w.problem] \
        == [("[0] (task 1) annotations[0] result[1]", "repaired")]


@pytest.mark.parametrize("change,message", [
    # a size beyond what the store holds was an OverflowError traceback from SQLite
    ({"original_width": 1e300}, r"result\[0\]: original size 1e\+300x100 is not a size"),
    ({"original_width": 0.5, "original_height": 0.5}, r"result\[0\]: original size 0.5x0.5 is not a size"),
    # a class with no name was imported as the class ''
    ({"value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": [" "]}}, r"result\[0\]: label ' ' is not a name"),
])
def test_labelstudio_bad_size_or_empty_label_is_a_clear_error_and_the_store_unchanged(tmp_path, change, message):
    from conftest import run_cli
    from labelreview.store import Store

    r = {"type": "rectanglelabels", "original_width": 200, "original_height": 100,
         "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["car"]}, **change}
    (tmp_path / "ls.json").write_bytes(orjson.dumps([{"id": 1, "data": {"image": "a.jpg"},
                                                      "annotations": [{"id": 1, "result": [r]}]}]))
    with pytest.raises(InputError, match=message):
        labelstudio.read(tmp_path / "ls.json")
    store = Store.init(tmp_path / "store", name="t")
    res = run_cli("import", "labelstudio", str(tmp_path / "ls.json"), "--store", str(store), "--no-image-check")
    assert res.returncode == 1 and "Traceback" not in res.stderr and "ls.json: [0] (task 1)" in res.stderr
    assert [p.name for p in (store / "imports").iterdir()] == [".keep"]


def test_labelstudio_region_with_an_empty_list_of_labels_is_said(tmp_path):
    """A rectangle whose label list is empty was dropped without a word."""
    r = {"type": "rectanglelabels", "original_width": 200, "original_height": 100,
         "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": []}}
    (tmp_path / "ls.json").write_bytes(orjson.dumps([{"id": 1, "data": {"image": "a.jpg"},
                                                      "annotations": [{"id": 1, "result": [r]}]}]))
    b, _ = labelstudio.read(tmp_path / "ls.json")
    assert b.proposals == []
    assert [(w.where, w.action) for w in b.warnings if "empty list of labels" in w.problem] == \
        [("[0] (task 1) annotations[0] result[0]", "skipped")]


def test_cvat_numbers_beyond_64_bits_are_said_or_kept_as_text(tmp_path):
    """An image width of 20 digits, or an occluded / z_order / group_id that long, ended the import
    in a traceback (OverflowError from SQLite, TypeError from the JSON writer)."""
    from PIL import Image as PILImage

    from conftest import run_cli
    from labelreview.store import Store

    big = "99999999999999999999"
    PILImage.new("RGB", (10, 6)).save(tmp_path / "i.jpg")
    x = tmp_path / "a.xml"
    x.write_text(f'<annotations><version>1.1</version><image id="0" name="i.jpg" width="{big}" height="6">'
                 f'<box label="cat" xtl="1" ytl="1" xbr="5" ybr="5" occluded="{big}" z_order="-{big}" '
                 f'group_id="{big}"/></image></annotations>')
    b, _ = cvat.read(x)
    assert [(w.where, w.problem) for w in b.warnings] == [("image 'i.jpg'", "no valid width/height; read from the image (10x6)")]
    assert b.proposals[0].extra == {"occluded": big, "z_order": f"-{big}", "group_id": big}
    store = Store.init(tmp_path / "store", name="t")
    r = run_cli("import", "cvat", str(x), "--store", str(store))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_cvat_image_without_a_valid_size_takes_the_image_file_s_so_shapes_are_clipped(tmp_path):
    """width="20.0" said 'no valid width/height; read from the image' but nothing was read: a box past
    the image was kept 49 px wide on a 20 px image and every mask of it was skipped."""
    from PIL import Image as PILImage

    PILImage.new("RGB", (20, 10)).save(tmp_path / "i.jpg")
    x = tmp_path / "a.xml"
    x.write_text('<annotations><version>1.1</version><image id="0" name="i.jpg" width="20.0" height="10.0">'
                 '<box label="cat" xtl="1" ytl="1" xbr="50" ybr="5"/>'
                 '<mask label="cat" rle="0, 4" left="0" top="0" width="2" height="2"/></image></annotations>')
    b, _ = cvat.read(x)
    assert (b.images[0].width, b.images[0].height) == (20, 10)
    assert [p.bbox for p in b.proposals] == [[1, 1, 19, 4], [0, 0, 2, 2]]
    assert [w.problem for w in b.warnings][:2] == ["no valid width/height; read from the image (20x10)",
                                                   "box reaches outside the 20x10 image; clipped"]
    (tmp_path / "i.jpg").unlink()
    b, _ = cvat.read(x)
    assert [p.bbox for p in b.proposals] == [[1, 1, 49, 4]]
    assert "no valid width/height, and the image gives none" in b.warnings[0].problem


def _ellipse_mask(h, w, cx, cy, rx, ry, angle_deg):
    """The pixels whose centres lie inside the ellipse (turned clockwise on screen about its centre)."""
    y, x = np.mgrid[0:h, 0:w] + 0.5
    a = math.radians(angle_deg)
    u = (x - cx) * math.cos(a) + (y - cy) * math.sin(a)  # back into the ellipse's own axes
    v = -(x - cx) * math.sin(a) + (y - cy) * math.cos(a)
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1


def _iou(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_ellipses_are_imported_as_polygons_along_the_curve(tmp_path):
    # CVAT and Label Studio ellipses were skipped with a warning ("not supported"): a team that drew
    # cells or eyes as ellipses reviewed nothing of them. They are polygons traced along the curve,
    # close enough that the mask is the ellipse's, with the ellipse as drawn kept beside them.
    x = tmp_path / "a.xml"
    x.write_text('<annotations><version>1.1</version><image id="0" name="i.jpg" width="100" height="60">'
                 '<ellipse label="cell" cx="50" cy="30" rx="20" ry="10" rotation="30" occluded="0"/>'
                 '<ellipse label="cell" cx="10" cy="10" rx="0" ry="5"/>'
                 "</image></annotations>")
    b, _ = cvat.read(x)
    (e,) = b.proposals
    assert e.kind == "polygon" and e.category == "cell"
    assert e.extra["cvat_shape"] == "ellipse"
    assert e.extra["ellipse"] == {"cx": 50, "cy": 30, "rx": 20, "ry": 10, "rotation": 30}
    m = decode_segmentation(e.segmentation, 60, 100)
    assert _iou(m.astype(bool), _ellipse_mask(60, 100, 50, 30, 20, 10, 30)) > 0.97
    # The box of an ellipse turned by 30 degrees: half-widths sqrt(rx²cos² + ry²sin²), ...
    hw = math.sqrt(20**2 * math.cos(math.pi / 6) ** 2 + 10**2 * math.sin(math.pi / 6) ** 2)
    hh = math.sqrt(20**2 * math.sin(math.pi / 6) ** 2 + 10**2 * math.cos(math.pi / 6) ** 2)
    assert e.bbox == pytest.approx([50 - hw, 30 - hh, 2 * hw, 2 * hh], abs=0.3)
    assert [(w.problem, w.action) for w in b.warnings] == [("ellipse with radii 0, 5 has no area", "skipped")]

    task = {"id": 1, "data": {"image": "b.jpg"}, "annotations": [{"id": 1, "result": [
        {"id": "e1", "type": "ellipselabels", "original_width": 200, "original_height": 100,
         "value": {"x": 50, "y": 50, "radiusX": 10, "radiusY": 20, "rotation": 0, "ellipselabels": ["eye"]}},
        {"id": "e2", "type": "ellipselabels", "original_width": 200, "original_height": 100,
         "value": {"x": 150, "y": 50, "radiusX": 10, "radiusY": 20, "ellipselabels": ["eye"]}}]}]}
    (tmp_path / "a.json").write_bytes(orjson.dumps([task]))
    b, _ = labelstudio.read(tmp_path / "a.json")
    (c,) = b.proposals  # x, y are the centre; the radii in percent of the width and of the height
    assert c.kind == "polygon" and c.extra["ls_shape"] == "ellipse"
    assert c.bbox == pytest.approx([80, 30, 40, 40], abs=0.3)
    m = decode_segmentation(c.segmentation, 100, 200)
    assert _iou(m.astype(bool), _ellipse_mask(100, 200, 100, 50, 20, 20, 0)) > 0.97
    assert [(w.problem, w.action) for w in b.warnings if "result[1]" in w.where] == [
        ("ellipse lies outside the 200x100 image", "skipped")]


def test_ellipse_bad_numbers_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match=r"a.xml: .*<ellipse> #0: rx='wide' is not a number"):
        cvat.read(_cvat(tmp_path, '<ellipse label="a" cx="2" cy="1" rx="wide" ry="3"/>'))
    task = {"id": 1, "data": {"image": "b.jpg"}, "annotations": [{"id": 1, "result": [
        {"type": "ellipselabels", "original_width": 200, "original_height": 100,
         "value": {"x": 50, "y": 50, "radiusX": "10", "radiusY": 20, "ellipselabels": ["eye"]}}]}]}
    (tmp_path / "a.json").write_bytes(orjson.dumps([task]))
    with pytest.raises(InputError, match=r"a.json: .*result\[0\]: radiusX '10' is not a number"):
        labelstudio.read(tmp_path / "a.json")


def test_ellipse_polygon_follows_the_curve_at_every_size():
    from labelreview.formats.common import ellipse_polygon

    for r in (0.1, 3, 40, 900, 20000):
        pts = ellipse_polygon(0, 0, r, r / 2, 0)
        n = len(pts) // 2
        assert 16 <= n <= 360
        # every vertex on the curve; the middle of every edge at most a quarter pixel inside it
        # (up to the 360-point cap, for ellipses thousands of pixels wide)
        for i in range(n):
            x0, y0, x1, y1 = pts[2 * i], pts[2 * i + 1], pts[(2 * i + 2) % len(pts)], pts[(2 * i + 3) % len(pts)]
            assert (x0 / r) ** 2 + (y0 / (r / 2)) ** 2 == pytest.approx(1)
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            k = math.sqrt((mx / r) ** 2 + (my / (r / 2)) ** 2)  # the curve lies at 1/k of the way out
            assert math.hypot(mx, my) * (1 / k - 1) <= (0.25 if n < 360 else r * 1e-4) + 1e-9


def test_cvat_numbers_are_decimals_and_an_empty_mask_is_said(tmp_path):
    """float() read "1_0" as 10 and Arabic-Indic digits as numbers; a mask with no pixel set was
    imported as a label with no box that shows nothing. The first is an error naming the place,
    the second is skipped with a warning."""
    with pytest.raises(InputError, match=r"<box> #0: xbr='1_0' is not a number"):
        cvat.read(_cvat(tmp_path, '<box label="a" xtl="2" ytl="1" xbr="1_0" ybr="3"/>'))
    with pytest.raises(InputError, match=r"<box> #0: xtl='\u0661' is not a number"):
        cvat.read(_cvat(tmp_path, '<box label="a" xtl="\u0661" ytl="1" xbr="6" ybr="3"/>'))
    b, _ = cvat.read(_cvat(tmp_path, '<mask label="m" rle="8" left="1" top="2" width="4" height="2"/>'))
    assert b.proposals == [] and [(w.problem, w.action) for w in b.warnings] == [
        ("mask has no pixel set on the picture", "skipped")]
