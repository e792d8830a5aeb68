"""DOTA oriented boxes (labelTxt/ beside images/, as DOTA ships them and Roboflow exports its "YOLOv5
Oriented Bounding Boxes"). Before, `import auto` took such a dataset for YOLO (it has a data.yaml)
and "imported 0 annotations" with a warning per image: every box was left behind."""

from __future__ import annotations

import json

import pytest
from PIL import Image as PILImage

from conftest import CORPUS
from helpers import run
from labelreview.formats import dota
from labelreview.model import InputError
from labelreview.store import Store

RF = CORPUS / "datumaro_openvino/tests/assets/roboflow_dataset/yolo_obb"
needs_corpus = pytest.mark.skipif(not RF.is_dir(), reason="format corpus not present")


@needs_corpus
def test_roboflow_dota_export_imports_with_its_classes_and_exports_as_yolo_obb(empty_store, tmp_path):
    rc, err = run("import", "yolo", RF, "--store", empty_store)[::2]
    assert rc == 1 and "labelTxt/ folders: DOTA oriented boxes" in err and "labelreview import dota" in err
    rc, out, err = run("import", "auto", RF, "--store", empty_store, "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert (result["format"], result["images"], result["annotations"]) == ("dota", 3, 4)
    with Store.open(empty_store) as st:
        assert st.class_names()[:2] == ["label_0", "label_1"]
        by_file = {}
        for a in st.annotations():
            by_file.setdefault(st.image(a.image_id).file_name, []).append(a)
        (a,) = by_file["train/images/train_002.jpg"]  # "1 1 1 5 5 5 5 1 label_1 0", a 10x5 picture
        assert a.kind == "polygon" and a.category == "label_1" and a.extra["obb"] is True
        assert a.segmentation == [[1, 1, 1, 5, 5, 5, 5, 1]] and a.bbox == [1, 1, 4, 4]
        assert [x.category for x in by_file["val/images/val_001.jpg"]] == ["label_0", "label_1"]
    assert run("accept", "1", "2", "3", "4", "--store", empty_store)[0] == 0
    rc, _, err = run("export", "yolo-obb", tmp_path / "out", "--store", empty_store)
    assert rc == 0, err
    assert (tmp_path / "out/train/labels/train_002.txt").read_text().split() == \
        "1 0.1 0.2 0.1 1 0.5 1 0.5 0.2".split()  # normalized corners, class index from data.yaml


def _dataset(tmp_path, files: dict[str, str], images: dict[str, tuple[int, int]]):
    for name, size in images.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        PILImage.new("RGB", size).save(tmp_path / name)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_dota_v1_files_headers_difficult_quads_and_shapes_past_the_image(tmp_path):
    ds = _dataset(tmp_path, {
        "labelTxt/P0001.txt": "imagesource:GoogleEarth\ngsd:0.146343590398\n"
                              "10 10 50 10 50 30 10 30 plane 0\n"        # a rectangle: an oriented box
                              "60 20 90 25 85 60 55 50 large-vehicle 1\n"  # a quadrilateral, difficult
                              "-20 5 30 5 30 15 -20 15 plane 0\n"      # past the left edge: box clipped
                              "300 300 310 300 310 310 300 310 ship 0\n",  # wholly outside: skipped
        "labelTxt/P0002.txt": "1 1 2 1 2 2 1 2 plane\n",  # no image of that name
    }, {"images/P0001.png": (100, 80), "images/P0003.jpg": (20, 20)})
    b, root = dota.read(ds)
    assert root == ds
    assert [(im.file_name, im.width, im.height) for im in b.images] == [("images/P0001.png", 100, 80),
                                                                         ("images/P0003.jpg", 20, 20)]
    assert b.images[0].extra == {"dota_imagesource": "GoogleEarth", "dota_gsd": "0.146343590398"}
    rect, quad, clipped = b.proposals
    assert rect.extra == {"obb": True, "angle": 0.0} and rect.bbox == [10, 10, 40, 20]
    assert quad.extra == {"difficult": 1} and quad.bbox == [55, 20, 35, 40] and quad.category == "large-vehicle"
    assert clipped.bbox == [0, 5, 30, 10] and clipped.segmentation == [[-20, 5, 30, 5, 30, 15, -20, 15]]
    assert [c.name for c in b.categories] == ["plane", "large-vehicle", "ship"]
    assert [(w.where, w.action) for w in b.warnings] == [
        ("labelTxt/P0001.txt line 5", "repaired"), ("labelTxt/P0001.txt line 6", "skipped"),
        ("labelTxt/P0002.txt", "skipped"), ("images/P0003.jpg", "kept")]


@pytest.mark.parametrize("line,message", [
    ("1 2 3 4 5 6 7 plane", "line 1: expected 'x1 y1 x2 y2 x3 y3 x4 y4 class [difficult]', got 8 values"),
    ("1 2 3 4 5 6 7 x plane 0", "line 1: 'x' is not a number"),
    ("1 2 3 4 5 6 7 nan plane 0", "line 1: 'nan' is not a number"),
    ("1 2 3 4 5 6 7 8 plane 2", "line 1: difficult '2' is not 0 or 1"),
])
def test_bad_dota_lines_are_clear_errors_naming_file_and_line(tmp_path, line, message):
    ds = _dataset(tmp_path, {"labelTxt/a.txt": line + "\n"}, {"images/a.png": (10, 10)})
    with pytest.raises(InputError) as e:
        dota.read(ds)
    assert str(e.value).startswith("labelTxt/a.txt: ") and message in str(e.value)


def test_a_folder_without_labeltxt_or_images_is_refused_saying_what_was_looked_for(tmp_path):
    from labelreview.model import LabelreviewError

    with pytest.raises(LabelreviewError, match="no labelTxt/ folder with .txt files"):
        dota.read(tmp_path)
    ds = _dataset(tmp_path, {"labelTxt/a.txt": "1 1 2 1 2 2 1 2 plane\n"}, {})
    with pytest.raises(LabelreviewError, match="no images found for its label files"):
        dota.read(ds)
