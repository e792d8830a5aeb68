"""Inputs a mutation fuzzer found that took an import down with a traceback, made an export segfault
or eat gigabytes, or imported into a store that `verify` then rejected. Each now imports as the
rules say (repaired, skipped or kept, with a warning) or fails clearly with the store unchanged."""

from __future__ import annotations

import json
import os
import time

import orjson
import pytest
from PIL import Image as PILImage
from pycocotools import mask as maskutils

from helpers import run
from test_formats_dota import _dataset
from labelreview.formats.coco import to_rle
from labelreview.formats.common import clip_polygon, decode_segmentation, ellipse_polygon


def _store(tmp_path):
    store = tmp_path / "store"
    assert run("init", store)[0] == 0
    return store


def _verify_ok(store) -> None:
    rc, out, err = run("verify", "--store", store, "--json")
    assert rc == 0 and json.loads(out)["ok"], out + err


def _count(store) -> int:
    return json.loads(run("status", "--store", store, "--json")[1])["total"]


def _ls_task(image: str, value: dict, tid=1, kind="ellipselabels") -> list:
    return [{"id": tid, "data": {"image": image}, "annotations": [{"id": 1, "result": [
        {"type": kind, "original_width": 8, "original_height": 8, "value": value}]}]}]


def test_a_polygon_far_past_the_picture_rasterizes_fast_and_right(tmp_path):
    """pycocotools traces a polygon's whole outline at 5x in C ints: a DOTA corner at 2e9 px made
    `export coco` segfault or take gigabytes (1.6 GB at 1e7 px). It is clipped first: the mask over
    the picture is the same as the exact clip's, in no time."""
    h, w = 80, 100
    for far in (1e7, 2e9, 1e20, 1e308):
        poly = [[-3000.0, 10, 150, 20, 60, far, 5, 60]]
        t0 = time.perf_counter()
        got = decode_segmentation(poly, h, w)
        area = maskutils.area(to_rle(poly, h, w))
        assert time.perf_counter() - t0 < 1
        exact, _ = clip_polygon(poly[0], (h, w))
        want = maskutils.decode(maskutils.merge(maskutils.frPyObjects([exact], h, w)))
        assert (got == want).all() and area == want.sum() > 0
    near = [[-30.0, 10, 150, 20, 60, 95, 5, 60]]  # past the edge a little: handed over as it is
    assert (decode_segmentation(near, h, w) == maskutils.decode(maskutils.merge(
        maskutils.frPyObjects(near, h, w)))).all()
    # Through the command line: a DOTA box with a corner at 2e9, imported and exported.
    ds = _dataset(tmp_path / "dota", {"labelTxt/a.txt": "0 0 2e9 0 2e9 2 0 2 c\n"}, {"images/a.jpg": (8, 8)})
    store = _store(tmp_path)
    assert run("import", "dota", ds, "--store", store)[0] == 0
    rc, _, err = run("export", "coco", tmp_path / "out.json", "--include", "pending", "--store", store)
    assert rc == 0, err
    (a,) = json.loads((tmp_path / "out.json").read_text())["annotations"]
    assert a["area"] == 16  # rows 0-1 of the 8x8 picture
    # What a consumer of the export does with it (annToMask traced the 2e9 px outline: a segfault or
    # gigabytes): the polygon is written clipped to the picture, its mask the same.
    assert all(-1 <= v <= 9 for v in a["segmentation"][0])
    from pycocotools.coco import COCO

    coco = COCO(str(tmp_path / "out.json"))
    assert coco.annToMask(coco.loadAnns(coco.getAnnIds())[0]).sum() == 16


def test_an_ellipse_of_any_radius_is_traced_or_said(tmp_path):
    """A radius past ~2.3e15 px made `ellipse_polygon` divide by zero (CVAT, Label Studio)."""
    for r in (1e16, 1e20, 1e308):
        assert len(ellipse_polygon(4, 4, r, 1, 0)) == 720
    store = _store(tmp_path)
    PILImage.new("RGB", (8, 8)).save(tmp_path / "img0.jpg")
    (tmp_path / "a.xml").write_text('<annotations><image id="0" name="img0.jpg" width="8" height="8">'
                                    '<ellipse label="a" cx="4" cy="4" rx="1e16" ry="1"/></image></annotations>')
    rc, out, err = run("import", "cvat", tmp_path / "a.xml", "--store", store)
    assert rc == 0 and "imported 1 annotations" in out, err
    assert run("export", "coco", tmp_path / "out.json", "--include", "pending", "--store", store)[0] == 0
    _verify_ok(store)


def test_a_label_studio_coordinate_that_overflows_once_scaled_is_refused_not_stored_as_null(tmp_path):
    """x = -1e308 percent is a finite number, -inf once scaled to pixels: it was written as null, the
    import said it worked, and `verify` rejected the store. It is refused, nothing imported."""
    store = _store(tmp_path)
    (tmp_path / "t.json").write_bytes(orjson.dumps(_ls_task("img0.jpg", {
        "x": -1e308, "y": 50, "radiusX": 25, "radiusY": 12.5, "ellipselabels": ["a"]})))
    rc, _, err = run("import", "labelstudio", tmp_path / "t.json", "--store", store)
    assert rc == 1 and "t.json: label '1/annotation/1/0' on 'img0.jpg': a coordinate is not a finite number" in err
    assert _count(store) == 0
    _verify_ok(store)


@pytest.mark.parametrize("tid", [0.5, True, [1, 2], {"a": 1}, 2**63])
def test_a_label_studio_task_id_that_is_no_id_is_replaced_by_its_place(tmp_path, tid):
    """A task id of 0.5, true, a list or 2**63 was stored as the image's source id: the import
    worked, then `verify` found an images.jsonl line the store cannot hold."""
    store = _store(tmp_path)
    (tmp_path / "t.json").write_bytes(orjson.dumps(_ls_task("img0.jpg", {
        "x": 50, "y": 50, "radiusX": 10, "radiusY": 10, "ellipselabels": ["a"]}, tid=tid)))
    rc, out, err = run("import", "labelstudio", tmp_path / "t.json", "--store", store, "--json")
    assert rc == 0, err
    assert any("is not an id" in w["problem"] and w["action"] == "repaired" for w in json.loads(out)["warnings"])
    _verify_ok(store)


def test_coco_ids_past_64_bits_and_a_width_of_true_are_said(tmp_path):
    """An image id or an annotation id of 2**63, and a width of true, imported (through COCO or
    Segment Anything) into a store `verify` then rejected."""
    PILImage.new("RGB", (10, 5)).save(tmp_path / "a.jpg")
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": True, "height": 5}],
           "categories": [{"id": 1, "name": "x"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}]}
    raw = orjson.dumps(doc).replace(b'"annotations":[{"id":1', b'"annotations":[{"id":9223372036854775808')
    (tmp_path / "c.json").write_bytes(raw)
    store = _store(tmp_path)
    rc, out, err = run("import", "coco", tmp_path / "c.json", "--store", store, "--json")
    assert rc == 0, err
    said = {w["problem"] for w in json.loads(out)["warnings"]}
    assert "width/height Truex5 invalid; read from the file" in said
    assert "annotation id 9223372036854775808 is larger than 64 bits can hold; exported with a new id" in said
    _verify_ok(store)
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc).replace(b'"images":[{"id":1', b'"images":[{"id":9223372036854775808'))
    rc, _, err = run("import", "coco", tmp_path / "c.json", "--store", store, "--source", "again")
    assert rc == 1 and "image id 9223372036854775808 is larger than 64 bits can hold" in err


def test_an_image_name_too_long_for_the_file_system_is_missing_not_a_traceback(tmp_path):
    """A 300-byte name: `Path.exists` raised ENAMETOOLONG in the middle of the import."""
    store = _store(tmp_path)
    (tmp_path / "t.json").write_bytes(orjson.dumps(_ls_task("a" * 300 + ".jpg", {
        "x": 50, "y": 50, "radiusX": 10, "radiusY": 10, "ellipselabels": ["a"]})))
    rc, out, err = run("import", "labelstudio", tmp_path / "t.json", "--store", store, "--json")
    assert rc == 0, err
    assert any(w["problem"].startswith("image file missing: aaaa") for w in json.loads(out)["warnings"])
    _verify_ok(store)


def test_an_image_name_through_a_folder_that_is_not_there_is_missing_at_import_as_everywhere(tmp_path):
    """'images/../img0.jpg' where images/images does not exist: found (through its resolved text)
    and hashed at import, then missing to verify, the review and the exports, which open the name
    as written. It is missing at import too."""
    (tmp_path / "images").mkdir()
    PILImage.new("RGB", (8, 8)).save(tmp_path / "images/img0.jpg")
    (tmp_path / "images/a.xml").write_text('<annotations><image id="0" name="images/../img0.jpg" width="8" '
                                           'height="8"><box label="a" xtl="1" ytl="1" xbr="3" ybr="3"/></image>'
                                           '</annotations>')
    store = _store(tmp_path)
    rc, out, err = run("import", "cvat", tmp_path / "images/a.xml", "--store", store, "--json")
    assert rc == 0, err
    assert [w["problem"] for w in json.loads(out)["warnings"]] == ["image file missing: images/../img0.jpg"]
    _verify_ok(store)


@pytest.mark.skipif(os.uname().sysname == "Darwin", reason="macOS refuses file names that are not UTF-8")
def test_file_names_in_another_encoding_are_refused_before_anything_is_written(tmp_path):
    """A folder format takes image and class names from the file system: a name in Latin-1 bytes
    reached the JSON writer and the import died with a traceback."""
    ds = tmp_path / "dota"
    (ds / "labelTxt").mkdir(parents=True)
    (ds / "images").mkdir()
    with open(os.path.join(os.fsencode(ds), b"labelTxt", b"caf\xe9.txt"), "w") as f:
        f.write("0 0 2 0 2 2 0 2 c\n")
    PILImage.new("RGB", (8, 8)).save(os.path.join(os.fsencode(ds), b"images", b"caf\xe9.jpg"), "JPEG")
    store = _store(tmp_path)
    rc, _, err = run("import", "dota", ds, "--store", store)
    assert rc == 1 and "1 image name(s) are not valid UTF-8 (e.g. b'images/caf\\xe9.jpg'" in err
    assert "nothing was imported" in err and _count(store) == 0


def test_dota_given_its_labeltxt_folder_or_a_file_in_it_reads_the_dataset_and_names_the_source(tmp_path):
    """The labelTxt folder itself (or a file in it) raised ValueError; `import dota .` gave the
    import an empty source name."""
    ds = _dataset(tmp_path / "ds", {"labelTxt/a.txt": "0 0 2 0 2 2 0 2 c\n"}, {"images/a.jpg": (8, 8)})
    store = _store(tmp_path)
    for i, given in enumerate((ds / "labelTxt", ds / "labelTxt/a.txt")):
        rc, out, err = run("import", "dota", given, "--store", store, "--source", f"s{i}")
        assert rc == 0 and "imported 1 annotations on 1 images" in out, err
    rc, out, err = run("import", "dota", ".", "--store", store, "--json", cwd=ds)
    assert rc == 0 and json.loads(out)["source"] == "ds", err


@pytest.mark.parametrize("fmt,header,row", [("csv", "image_name,label_name", "car"),
                                            ("csv-boxes", "image_name,label_name,x1,y1,x2,y2", "car,1,2,3,4")])
def test_a_csv_naming_an_image_too_long_for_the_file_system_imports_it_as_missing(tmp_path, fmt, header, row):
    """The CSV readers' image lookup raised ENAMETOOLONG for a 300-character name."""
    (tmp_path / "b.csv").write_text(f"{header}\n{'a' * 300}.jpg,{row}\n")
    store = _store(tmp_path)
    rc, out, err = run("import", fmt, tmp_path / "b.csv", "--store", store, "--json")
    assert rc == 0, err
    assert any("not found under" in w["problem"] for w in json.loads(out)["warnings"])
    _verify_ok(store)


def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_a_value_nested_deeper_than_the_store_can_write_is_dropped_and_said(tmp_path):
    """JSON parsers take 1024 levels, the store's writer 255: a key of an annotation, a class, an
    image or the file itself nested 300 deep took the import down with a traceback after it had
    read everything. The key is dropped with a warning naming it; the rest imports."""
    PILImage.new("RGB", (8, 8)).save(tmp_path / "a.png")
    deep, fine = _nested(300), _nested(150)
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8, "meta": deep}],
           "categories": [{"id": 1, "name": "cat", "attrs": deep, "kept": fine}],
           "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "note": deep,
                            "kept": fine},
                           {"id": 8, "image_id": 1, "category_id": 1, "bbox": [2, 2, 2, 2],
                            "scores": {"cat": 0.9, "dog": deep}}],
           "licenses": deep}
    (tmp_path / "p.json").write_text(json.dumps(doc))  # (orjson itself cannot write it)
    store = _store(tmp_path)
    rc, out, err = run("import", "coco", tmp_path / "p.json", "--images", tmp_path, "--store", store)
    assert rc == 0 and "Traceback" not in err, out + err
    for where, key in (("categories[0]", "attrs"), ("images[0] (id 1)", "meta"), ("annotations[0] (id 7)", "note"),
                       ("annotations[1] (id 8)", "scores"), ("top level", "licenses")):
        assert f"{where}: key '{key}' nests more than 200 levels deep; dropped (repaired)" in out, (where, out)
    assert _count(store) == 2
    _verify_ok(store)
    rc, out, err = run("export", "coco", tmp_path / "out.json", "--include", "pending", "--store", store)
    assert rc == 0, err
    back = json.loads((tmp_path / "out.json").read_text())
    assert back["annotations"][0]["kept"] == fine and "note" not in back["annotations"][0]
    assert back["categories"][0]["kept"] == fine and "attrs" not in back["categories"][0]


def test_another_readers_value_nested_too_deep_is_refused_before_anything_is_written(tmp_path):
    # (LabelMe's flags come through as they are: the store refuses what it cannot write, clearly.)
    PILImage.new("RGB", (64, 48)).save(tmp_path / "a.png")
    (tmp_path / "a.json").write_text(json.dumps({
        "version": "5.0.1", "flags": {}, "imagePath": "a.png", "imageData": None, "imageHeight": 48,
        "imageWidth": 64, "shapes": [{"label": "cat", "points": [[1, 1], [10, 10]], "shape_type": "rectangle",
                                      "flags": {"y": _nested(400)}}]}))
    store = _store(tmp_path)
    rc, out, err = run("import", "labelme", tmp_path / "a.json", "--images", tmp_path, "--store", store)
    assert rc == 1 and "Traceback" not in err
    assert "a.json: label 'a.json:0' on 'a.png': a value nests more than 200 levels deep, more than the store " \
           "can write; nothing was imported" in err
    assert _count(store) == 0 and [p.name for p in (store / "imports").iterdir()] == [".keep"]
