"""LabelMe JSON (one file per image, wkentaro/labelme): every shape type, through the command line to
a COCO export pycocotools reads. Before, `import auto` could not tell the format and no reader took it."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import orjson
import pytest
from PIL import Image as PILImage

from helpers import run
from labelreview.formats import labelme
from labelreview.formats.common import decode_segmentation
from labelreview.model import InputError
from labelreview.store import Store


def _png_b64(mask: np.ndarray) -> str:
    buf = io.BytesIO()
    PILImage.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _doc(image_path: str, shapes: list, w=100, h=80) -> bytes:
    return orjson.dumps({"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path,
                         "imageData": None, "imageHeight": h, "imageWidth": w})


def _shape(label, kind, points, **more):
    return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": kind,
            "flags": {}, **more}


def test_every_shape_type_imports_and_exports_as_coco(tmp_path):
    ds = tmp_path / "ds"
    (ds / "pics").mkdir(parents=True)
    (ds / "json").mkdir()
    for name in ("a.png", "b.png"):
        PILImage.new("RGB", (100, 80), (90, 90, 90)).save(ds / "pics" / name)
    sub = np.zeros((5, 10), bool)
    sub[1:4, 2:8] = True
    (ds / "json/a.json").write_bytes(_doc("..\\pics\\a.png", [  # written on Windows
        _shape("car", "polygon", [[10, 10], [40, 10], [40, 30]], group_id=3),
        _shape("car", "rectangle", [[60, 50], [20, 40]]),  # corners in any order
        _shape("wheel", "circle", [[50, 40], [50, 50]]),
        _shape("lane", "linestrip", [[0, 70], [50, 60], [99, 70]]),
        _shape("lamp", "point", [[5, 5]], flags={"lit": True}),
        _shape("stain", "mask", [[30, 20], [39, 24]], mask=_png_b64(sub)),
        _shape("x", "cubic_bezier", [[1, 1], [2, 2]]),
    ]))
    (ds / "json/b.json").write_bytes(_doc("../pics/b.png", [_shape("car", "line", [[1, 1], [20, 20]])]))
    store = tmp_path / "st"
    assert run("init", store)[0] == 0
    rc, out, err = run("import", ds, "--store", store, "--json")  # (auto: the files are in a subfolder)
    assert rc == 0, err
    res = json.loads(out)
    assert res["format"] == "labelme"
    assert (res["images"], res["annotations"]) == (2, 7)
    assert [(w["where"], w["action"]) for w in res["warnings"]] == [("json/a.json shapes[6]", "skipped")]
    with Store.open(store) as st:
        got = {(a.category, a.kind): a for a in st.annotations()}
        assert sorted(st.image(i).file_name for i in {a.image_id for a in got.values()}) == ["pics/a.png",
                                                                                             "pics/b.png"]
        assert got["car", "bbox"].bbox == [20, 40, 40, 10]
        assert got["car", "polygon"].extra == {"group_id": 3}
        wheel = got["wheel", "polygon"]
        assert wheel.extra["labelme_shape"] == "circle" and wheel.bbox == pytest.approx([40, 30, 20, 20], abs=0.3)
        assert got["lane", "keypoints"].keypoints == [0, 70, 2, 50, 60, 2, 99, 70, 2]
        assert got["lamp", "keypoints"].extra == {"flags": {"lit": True}, "labelme_shape": "point"}
        stain = got["stain", "rle"]
        m = decode_segmentation(stain.segmentation, 80, 100).astype(bool)
        want = np.zeros((80, 100), bool)
        want[21:24, 32:38] = True  # the PNG placed at the box's corner (30, 20)
        assert (m == want).all() and stain.bbox == [32, 21, 6, 3]
    assert run("accept", *[str(i) for i in range(1, 8)], "--store", store)[0] == 0
    rc, _, err = run("export", "coco", tmp_path / "out.json", "--store", store)
    assert rc == 0, err
    from pycocotools.coco import COCO

    coco = COCO(str(tmp_path / "out.json"))
    assert len(coco.getAnnIds()) == 7
    # One file: its picture lies outside the file's folder (the default image root), so --images names it.
    rc, _, err = run("import", "auto", ds / "json/b.json", "--store", store, "--source", "again")
    assert rc == 1 and "lie outside the image root" in err and "--images" in err
    rc, out, err = run("import", "auto", ds / "json/b.json", "--images", ds, "--store", store, "--source", "again",
                       "--json")
    assert rc == 0 and json.loads(out)["format"] == "labelme", err


@pytest.mark.parametrize("shape,message", [
    (_shape("car", "polygon", [[1, 1], [2, 2]]), "shapes[0]: a polygon needs at least 3 points, not 2"),
    (_shape("car", "rectangle", [[1, 1]]), "shapes[0]: a rectangle needs 2 points (its corners), not 1"),
    (_shape("car", "polygon", [[1, "a"], [2, 2], [3, 3]]), "shapes[0]: points must be a list of [x, y] numbers"),
    (_shape("", "polygon", [[1, 1], [2, 2], [3, 1]]), "shapes[0]: label '' is not a class name"),
    (_shape("m", "mask", [[1, 1], [5, 5]], mask="not base64!"), "shapes[0]: mask is not a base64 PNG"),
])
def test_bad_shapes_are_clear_errors_naming_file_and_shape(tmp_path, shape, message):
    PILImage.new("RGB", (100, 80)).save(tmp_path / "a.png")
    (tmp_path / "a.json").write_bytes(_doc("a.png", [shape]))
    with pytest.raises(InputError) as e:
        labelme.read(tmp_path / "a.json")
    assert str(e.value).startswith("a.json: ") and message in str(e.value)


def test_a_folder_skips_other_json_and_refuses_two_files_of_one_picture(tmp_path):
    PILImage.new("RGB", (100, 80)).save(tmp_path / "a.png")
    (tmp_path / "a.json").write_bytes(_doc("a.png", [_shape("car", "point", [[1, 1]])]))
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    b, root = labelme.read(tmp_path)
    assert root == tmp_path and [im.file_name for im in b.images] == ["a.png"]
    assert [(w.where, w.action) for w in b.warnings] == [("notes.json", "skipped")]
    (tmp_path / "copy.json").write_bytes(_doc("./a.png", []))
    with pytest.raises(InputError, match=r"imagePath: './a.png' is also the image of a.json"):
        labelme.read(tmp_path)


def test_an_image_path_from_another_machine_finds_the_picture_beside_the_file(tmp_path):
    """LabelMe writes the path it was given, often absolute on the annotator's machine
    (C:\\Users\\me\\data\\a.png): the picture of that name beside the JSON file is the one meant."""
    (tmp_path / "data").mkdir()
    PILImage.new("RGB", (100, 80)).save(tmp_path / "data/a.png")
    (tmp_path / "data/a.json").write_bytes(_doc("C:\\Users\\me\\data\\a.png", [_shape("car", "point", [[1, 1]])]))
    b, root = labelme.read(tmp_path)
    assert root == tmp_path and [im.file_name for im in b.images] == ["data/a.png"]
    assert b.images[0].extra == {"labelme_image_path": "C:\\Users\\me\\data\\a.png"}
    (tmp_path / "data/a.png").unlink()  # not there at all: kept as written (the store says it is missing)
    b, _ = labelme.read(tmp_path)
    assert [im.file_name for im in b.images] == ["data/C:/Users/me/data/a.png"]
