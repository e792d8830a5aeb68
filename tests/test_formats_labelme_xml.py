"""MIT LabelMe XML (the corpus's labelme_dataset, as Datumaro writes it). Before, `import auto` could
not tell it ("cannot tell the format") and no reader took it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

from conftest import CORPUS
from helpers import run
from labelreview.formats import labelme_xml
from labelreview.formats.common import decode_segmentation
from labelreview.model import InputError
from labelreview.store import Store

LM = CORPUS / "datumaro_openvino/tests/assets/labelme_dataset"
needs_corpus = pytest.mark.skipif(not LM.is_dir(), reason="format corpus not present")


@needs_corpus
def test_the_corpus_dataset_imports_with_polygons_boxes_and_masks(empty_store, tmp_path):
    rc, out, err = run("import", LM, "--store", empty_store, "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert (res["format"], res["images"], res["annotations"], res["warnings"]) == ("labelme-xml", 1, 7, [])
    with Store.open(empty_store) as st:
        got = {a.category: a for a in st.annotations()}
        assert {c: a.kind for c, a in got.items()} == {
            "window": "polygon", "license plate": "rle", "o1": "polygon", "q1": "polygon", "b1": "bbox",
            "m1": "rle", "hg": "polygon"}
        assert st.image(got["window"].image_id).file_name == "subset1/img1.png"
        assert got["b1"].bbox == [13, 19, 10, 11]  # <type>bounding_box</type>: its corners' box
        assert got["o1"].extra == {"labelme_id": "2", "occluded": True, "attributes": "a1", "verified": "0",
                                   "date": "15-Nov-2019 14:38:51", "hasparts": "3,4", "username": "anonymous"}
        png = np.asarray(PILImage.open(LM / "Masks/subset1/img1_mask_1.png").convert("RGBA")).any(axis=2)
        assert (decode_segmentation(got["license plate"].segmentation, 77, 102).astype(bool) == png).all()
    rc, _, err = run("export", "coco", tmp_path / "out.json", "--include", "pending", "--store", empty_store)
    assert rc == 0, err
    from pycocotools.coco import COCO

    assert len(COCO(str(tmp_path / "out.json")).getAnnIds()) == 7


def _xml(tmp_path, objects: str) -> None:
    (tmp_path / "Annotations/s").mkdir(parents=True)
    (tmp_path / "Images/s").mkdir(parents=True)
    (tmp_path / "Masks/s").mkdir(parents=True)
    PILImage.new("RGB", (20, 10)).save(tmp_path / "Images/s/a.png")
    (tmp_path / "Annotations/s/a.xml").write_text(
        f"<annotation><filename>a.png</filename><folder>s</folder>{objects}"
        "<imagesize><nrows>10</nrows><ncols>20</ncols></imagesize></annotation>")


def _obj(name="car", body="<polygon><pt><x>1</x><y>1</y></pt><pt><x>5</x><y>1</y></pt><pt><x>5</x><y>4</y></pt>"
         "</polygon>", deleted="0") -> str:
    return f"<object><name>{name}</name><deleted>{deleted}</deleted><id>0</id>{body}</object>"


def test_deleted_objects_are_skipped_and_bad_ones_named(tmp_path):
    _xml(tmp_path, _obj() + _obj(deleted="1") + _obj(body="<date>x</date>"))
    b, root = labelme_xml.read(tmp_path)
    assert root == tmp_path / "Images" and len(b.proposals) == 1
    assert [(w.where, w.problem) for w in b.warnings] == [
        ("Annotations/s/a.xml object 1 (id 0)", "deleted in LabelMe"),
        ("Annotations/s/a.xml object 2 (id 0)", "object with neither a polygon nor a mask")]


@pytest.mark.parametrize("obj,message", [
    (_obj(name=""), "object 0 (id 0): an object needs a name"),
    (_obj(body="<polygon><pt><x>a</x><y>1</y></pt></polygon>"), "point ('a', '1') is not x, y numbers"),
    (_obj(body="<polygon><pt><x>1</x><y>1</y></pt><pt><x>2</x><y>2</y></pt></polygon>"), "at least 3 points, not 2"),
    (_obj(body="<segm><mask>../../../etc/x.png</mask></segm>"), "is not a file name in Masks/"),
    (_obj(body="<segm><mask>gone.png</mask></segm>"), "mask gone.png cannot be read"),
])
def test_bad_objects_are_clear_errors(tmp_path, obj, message):
    _xml(tmp_path, obj)
    with pytest.raises(InputError) as e:
        labelme_xml.read(tmp_path)
    assert str(e.value).startswith("Annotations/s/a.xml: ") and message in str(e.value)


def test_a_mask_folder_that_leaves_masks_is_refused(tmp_path):
    _xml(tmp_path, _obj(body="<segm><mask>a.png</mask></segm>"))
    xml = tmp_path / "Annotations/s/a.xml"
    xml.write_text(xml.read_text().replace("<folder>s</folder>", "<folder>../Images/s</folder>"))
    with pytest.raises(InputError, match="lies outside Masks/"):
        labelme_xml.read(tmp_path)
