"""Segment Anything masks (SA-1B files, and amg.py's lists): imported as class-agnostic mask proposals.

Before, an SA-1B file imported as COCO "succeeded" with 0 annotations and a warning per mask, and
`import auto` could not tell the format: SAM's masks, model proposals with scores made to be
reviewed, could not be reviewed at all."""

from __future__ import annotations

import json
import shutil

import numpy as np
import orjson
import pytest
from PIL import Image as PILImage
from pycocotools import mask as maskutils

from conftest import CORPUS
from helpers import run
from labelreview.formats import sam
from labelreview.formats.common import decode_segmentation
from labelreview.model import InputError
from labelreview.store import Store

SA = CORPUS / "datumaro_openvino/tests/assets/segment_anything_dataset"
needs_corpus = pytest.mark.skipif(not SA.is_dir(), reason="format corpus not present")


def _rle(mask: np.ndarray) -> dict:
    r = maskutils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


@needs_corpus
def test_sa1b_folder_imports_as_masks_with_sam_scores_and_exports_to_coco(empty_store, tmp_path):
    rc, out, err = run("import", "auto", SA, "--store", empty_store, "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert (result["images"], result["annotations"]) == (2, 2)
    assert result["format"] == "sam"
    with Store.open(empty_store) as st:
        anns = st.annotations()
        assert {(a.kind, a.category, a.status) for a in anns} == {("rle", "object", "pending")}
        src = orjson.loads((SA / "a.json").read_bytes())["annotations"][0]
        a = next(x for x in anns if st.image(x.image_id).file_name == "a.jpg")
        assert a.score == src["predicted_iou"] and a.source_id == src["id"]
        assert a.extra["stability_score"] == src["stability_score"] and a.extra["point_coords"] == [[3, 4]]
        m = decode_segmentation(a.segmentation, 5, 10)
        assert (m == maskutils.decode({"size": [5, 10], "counts": src["segmentation"]["counts"].encode()})).all()
    # Reviewed, then exported: a COCO file pycocotools reads, SAM's own keys kept on each label.
    assert run("accept", "1", "2", "--store", empty_store)[0] == 0
    rc, _, err = run("export", "coco", tmp_path / "out.json", "--store", empty_store)
    assert rc == 0, err
    from pycocotools.coco import COCO

    doc = COCO(str(tmp_path / "out.json"))
    exported = doc.loadAnns(doc.getAnnIds())
    assert len(exported) == 2 and {c["name"] for c in doc.loadCats(doc.getCatIds())} == {"object"}
    first = next(x for x in exported if x["point_coords"] == [[3, 4]])
    assert first["score"] == src["predicted_iou"] and first["crop_box"] == src["crop_box"]


def test_amg_lists_are_read_with_the_image_they_are_named_after(tmp_path):
    # scripts/amg.py --convert-to-rle writes <image stem>.json: a bare list of mask records, no ids.
    PILImage.new("RGB", (20, 10)).save(tmp_path / "street.png")
    m1, m2 = np.zeros((10, 20), bool), np.zeros((10, 20), bool)
    m1[2:5, 3:9] = True
    m2[6:9, 10:18] = True
    recs = [{"segmentation": _rle(m), "area": int(m.sum()), "bbox": [3, 2, 6, 3] if i == 0 else [10, 6, 8, 3],
             "predicted_iou": 0.9 - i / 10, "stability_score": 0.95, "crop_box": [0, 0, 20, 10],
             "point_coords": [[5.0, 3.0]]} for i, m in enumerate((m1, m2))]
    (tmp_path / "street.json").write_bytes(orjson.dumps(recs))
    (tmp_path / "gone.json").write_bytes(orjson.dumps(recs[:1]))  # its image is not there
    (tmp_path / "notes.json").write_bytes(b'{"hello": 1}')  # some other JSON file in the folder
    b, root = sam.read(tmp_path)
    assert root == tmp_path
    assert [(im.file_name, im.width, im.height) for im in b.images] == [("street.png", 20, 10)]
    assert [p.score for p in b.proposals] == [0.9, 0.8] and all(p.kind == "rle" for p in b.proposals)
    assert (decode_segmentation(b.proposals[1].segmentation, 10, 20) == m2).all()
    assert [(w.where, w.action) for w in b.warnings] == [("gone.json", "skipped"), ("notes.json", "skipped")]
    assert "no image named gone.* under" in b.warnings[0].problem
    # The file alone, through the command line: `auto` knows it, and `coco` says what it is.
    store = tmp_path / "st"
    assert run("init", store)[0] == 0
    rc, _, err = run("import", "coco", tmp_path / "street.json", "--store", store)
    assert rc == 1 and "Segment Anything masks" in err and "labelreview import sam" in err
    rc, out, err = run("import", "auto", tmp_path / "street.json", "--store", store)
    assert rc == 0 and "imported 2 annotations on 1 images" in out, out + err


@needs_corpus
def test_sa1b_file_given_as_coco_is_a_clear_error_not_an_empty_import(empty_store):
    rc, _, err = run("import", "coco", SA / "a.json", "--store", empty_store)
    assert rc == 1 and "a.json: top level: a Segment Anything (SA-1B) file, not COCO" in err
    assert "labelreview import sam" in err
    with Store.open(empty_store) as st:
        assert st.annotations() == []


@needs_corpus
def test_bad_masks_and_files_are_named_by_file(tmp_path):
    for name in ("a.json", "a.jpg", "b.json", "b.jpg"):
        shutil.copy(SA / name, tmp_path / name)
    doc = orjson.loads((tmp_path / "a.json").read_bytes())
    doc["annotations"][0]["segmentation"]["counts"] = "`04"  # runs that do not cover 5 x 10
    (tmp_path / "a.json").write_bytes(orjson.dumps(doc))
    b, _ = sam.read(tmp_path)
    bad = [w for w in b.warnings if w.where.startswith("a.json: annotations[0]")]
    assert [(w.problem, w.action) for w in bad] == [
        ("compressed RLE counts sum to 20, not height*width = 50; mask dropped", "repaired")]
    assert [p.kind for p in b.proposals] == ["bbox", "rle"]  # as COCO's: its box is still reviewed
    # Two files of one picture id: refused, naming both.
    doc = orjson.loads((tmp_path / "b.json").read_bytes())
    doc["image"]["image_id"] = orjson.loads((SA / "a.json").read_bytes())["image"]["image_id"]
    (tmp_path / "b.json").write_bytes(orjson.dumps(doc))
    with pytest.raises(InputError, match=r"b.json: image: image id 1 is also the image of a.json"):
        sam.read(tmp_path)
    (tmp_path / "c.json").write_text('{"image": {"image_id": 3}, "annotations": 7}')
    with pytest.raises(InputError, match=r"c.json: annotations: must be a list"):
        sam.read(tmp_path / "c.json")
    (tmp_path / "d.json").write_text('{"images": []}')
    with pytest.raises(InputError, match=r"d.json: top level: not a Segment Anything file"):
        sam.read(tmp_path / "d.json")
