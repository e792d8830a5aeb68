"""Detection CSVs (one row per box): import in the layouts teams deliver, export, and back.

Before, such a file was refused ("import CSVs of image classes only"): a vendor's boxes delivered
as a CSV could not be reviewed at all."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image as PILImage

from conftest import CORPUS
from helpers import run
from labelreview.formats import boxcsv
from labelreview.model import InputError
from labelreview.store import Store

KG = CORPUS / "datumaro_openvino/tests/assets/kaggle_dataset/image_csv_det"
needs_corpus = pytest.mark.skipif(not KG.is_dir(), reason="format corpus not present")


def _boxes(store) -> list[tuple]:
    with Store.open(store) as st:
        return sorted((st.image(a.image_id).file_name, a.category, tuple(a.bbox)) for a in st.annotations())


@needs_corpus
def test_the_three_kaggle_layouts_give_the_same_boxes(tmp_path):
    got = {}
    for name in ("ann", "ann2", "ann3"):  # corners; a corner and a size; one bbox column of corners
        store = tmp_path / name
        assert run("init", store)[0] == 0
        rc, out, err = run("import", "auto", KG / f"{name}.csv", "--store", store, "--json")
        assert rc == 0, err
        result = json.loads(out)
        assert (result["format"], result["images"], result["annotations"]) == ("csv-boxes", 3, 6)
        got[name] = _boxes(store)
        notes = [w["problem"] for w in result["warnings"]]
        assert notes == ([] if name != "ann3" else ["column 'bbox' read as corners x1 y1 x2 y2 (Datumaro's Kaggle "
                                                    "layout); name the columns x,y,w,h if they are a corner and a size"])
    assert got["ann"] == got["ann2"] == got["ann3"]
    assert ("1.jpg", "cat", (1, 2, 2, 1)) in got["ann"]  # "1.jpg,cat,1,2,3,3": corners, the images under images/
    rc, _, err = run("import", "csv", KG / "ann.csv", "--store", tmp_path / "ann")
    assert rc == 1 and "look like a detection CSV (boxes): import it with `labelreview import csv-boxes`" in err


def test_tensorflow_layout_scores_extra_columns_and_images_checked_empty(tmp_path):
    PILImage.new("RGB", (100, 50)).save(tmp_path / "a.jpg")
    (tmp_path / "boxes.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax,confidence,vendor_note\n"
        "a.jpg,100,50,car,10,5,40,25,0.9,ok\n"
        "a.jpg,100,50,car,90,40,130,60,0.4,\n"       # past the picture: clipped
        "gone.jpg,64,32,bike,60,0,80,10,,late\n"     # no file: its size from the row, the box clipped to it
        "empty.jpg,64,32,,,,,,,\n")                 # an image checked and found to hold nothing
    b, root = boxcsv.read(tmp_path / "boxes.csv")
    assert root == tmp_path
    assert [(im.file_name, im.width, im.height) for im in b.images] == [
        ("a.jpg", 100, 50), ("gone.jpg", 64, 32), ("empty.jpg", 64, 32)]
    first, clipped, bike = b.proposals
    assert first.bbox == [10, 5, 30, 20] and first.score == 0.9 and first.extra == {"vendor_note": "ok"}
    assert clipped.bbox == [90, 40, 10, 10] and clipped.score == 0.4 and clipped.extra == {}
    assert bike.bbox == [60, 0, 4, 10] and bike.score is None and bike.category == "bike"
    assert [(w.where, w.action) for w in b.warnings] == [
        ("boxes.csv line 3", "repaired"), ("boxes.csv line 4", "kept"), ("boxes.csv line 4", "repaired"),
        ("boxes.csv line 5", "kept")]


@pytest.mark.parametrize("header,row,message", [
    ("image,label,x1,y1,x2,y2", "a.jpg,car,1,2,x,4", "line 2: x2 'x' is not a number"),
    ("image,label,x1,y1,x2,y2", "a.jpg,car,5,2,1,4", "line 2: the box's x2/y2 lie before its x1/y1"),
    ("image,label,x,y,w,h", "a.jpg,car,1,2,-3,4", "line 2: the box's width or height is negative"),
    ("image,label,x1,y1,x2,y2", "a.jpg,,1,2,3,4", "line 2: a box with an empty 'label'"),
    ("image,label,x1,y1,x2,y2", "a.jpg,car,1,2,,4", "line 2: class 'car' with an empty box column"),
    ("image,label,bbox", 'a.jpg,car,"[1,2,3]"', "line 2: bbox '[1,2,3]' is not four numbers"),
    ("image,label,x1,y1,x2,y2", "a.jpg,car,1,2,3", "line 2: 5 columns, the header has 6"),
    ("image,label,x1,y1,x2,y2", "a.jpg,car,1,2,inf,4", "line 2: x2 'inf' is not a number"),
    ("image,x1,y1,x2,y2", "a.jpg,1,2,3,4", "line 1: a detection CSV needs a class column"),
    ("image,label,x1,y1", "a.jpg,car,1,2", "line 1: a detection CSV needs a box column"),
])
def test_bad_rows_are_clear_errors_naming_the_line(tmp_path, header, row, message):
    (tmp_path / "b.csv").write_text(f"{header}\n{row}\n")
    with pytest.raises(InputError) as e:
        boxcsv.read(tmp_path / "b.csv")
    assert str(e.value).startswith("b.csv: ") and message in str(e.value)


def test_reviewed_boxes_export_and_import_back_the_same(sample_store, tmp_path):
    """The sample store's boxes (COCO), reviewed, out as a detection CSV and in again: same boxes."""
    s = ["--store", str(sample_store)]
    assert run("accept", "1", "2", "3", *s)[0] == 0
    assert run("reject", "4", *s)[0] == 0
    rc, out, err = run("export", "csv-boxes", tmp_path / "out.csv", *s, "--json")
    assert rc == 0, err
    res = json.loads(out)
    rows = list(csv.reader((tmp_path / "out.csv").open()))
    assert rows[0][:6] == ["image_name", "label_name", "x1", "y1", "x2", "y2"]
    assert res["annotations"] == len(rows) - 1 == 3
    prov = [json.loads(line) for line in (tmp_path / "out.csv.provenance.jsonl").read_text().splitlines()]
    assert sorted(p["annotation"] for p in prov) == [1, 2, 3] and prov[0]["exported_id"] == "line 2"
    with Store.open(sample_store) as st:
        want = sorted((st.image(st.annotation(i).image_id).file_name, st.annotation(i).category,
                       tuple(round(v, 6) for v in st.annotation(i).bbox)) for i in (1, 2, 3))
        images = st.image(1).path.rsplit("/", 1)[0]
    back = tmp_path / "back"
    assert run("init", back)[0] == 0
    rc, _, err = run("import", "auto", tmp_path / "out.csv", "--images", images, "--store", back)
    assert rc == 0, err
    assert [(f, c, tuple(round(v, 6) for v in b)) for f, c, b in _boxes(back)] == want


def test_names_with_a_carriage_return_survive_export_and_import_back(tmp_path):
    """A bare "\\r" in an image or class name was written unquoted (the csv module quotes only the
    line ending's characters, "\\n"), and the export read back as a cut row: "1 columns, the header
    has 6". Such a row is written quoted, and reads back the same."""
    (tmp_path / "ann.csv").write_bytes(b'image_name,label_name,x1,y1,x2,y2\n"a\rb.jpg","c\rd",1,2,3,3\n'
                                       b"plain.jpg,car,0,0,1,1\n")
    first = tmp_path / "one"
    assert run("init", first)[0] == 0
    assert run("import", "csv-boxes", tmp_path / "ann.csv", "--store", first)[0] == 0
    rc, _, err = run("export", "csv-boxes", tmp_path / "out.csv", "--include", "pending", "--store", first)
    assert rc == 0, err
    assert b'"a\rb.jpg","c\rd","1","2","3","3"\n' in (tmp_path / "out.csv").read_bytes()
    back = tmp_path / "back"
    assert run("init", back)[0] == 0
    rc, _, err = run("import", "csv-boxes", tmp_path / "out.csv", "--images", tmp_path, "--store", back)
    assert rc == 0, err
    assert _boxes(back) == _boxes(first)


@pytest.mark.parametrize("row,message", [
    ("nope.jpg,cat,1e308,0,1e308,1", "line 2: the box reaches past the largest number there is"),
    ("nope.jpg,cat,1_0,0,1,1", "line 2: x '1_0' is not a number"),
    ("nope.jpg,cat,\u0661\u0662,0,1,1", "line 2: x '\u0661\u0662' is not a number"),
])
def test_numbers_that_overflow_or_are_no_csv_numbers_are_refused(tmp_path, row, message):
    """x + w past the largest float was stored, exported as "inf", and the export could not be read
    back; float() also read "1_0" as 10 and Arabic-Indic digits as numbers, without a word."""
    (tmp_path / "b.csv").write_text(f"image_name,label_name,x,y,w,h\n{row}\n")
    with pytest.raises(InputError) as e:
        boxcsv.read(tmp_path / "b.csv")
    assert message in str(e.value)


def test_the_image_column_is_chosen_by_its_name_not_its_place(tmp_path):
    """`id,image_name,...` took the id column for the images (the first column with a known name):
    the pictures became "0", "1"..., each "not found". image_name is read, as for a classification CSV."""
    PILImage.new("RGB", (10, 10)).save(tmp_path / "a.jpg")
    (tmp_path / "b.csv").write_text("id,image_name,label_name,x1,y1,x2,y2\n0,a.jpg,car,1,1,5,5\n")
    b, _ = boxcsv.read(tmp_path / "b.csv")
    assert [im.file_name for im in b.images] == ["a.jpg"] and b.warnings == []
    assert b.proposals[0].extra == {"id": "0"}
    from labelreview.formats import classification

    (tmp_path / "c.csv").write_text("id,image_name,label_name\n0,a.jpg,car\n")
    c, _ = classification.read_csv(tmp_path / "c.csv")
    assert [im.file_name for im in c.images] == ["a.jpg"]
