"""Classification CSV and ImageFolder: corpus counts, round trips of every class, clear errors."""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import CORPUS
from labelreview.formats import classification as cl
from labelreview.model import InputError
from test_formats_util import snapshot_of, store_round_trip

A = CORPUS / "datumaro_openvino/tests/assets"
pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus absent")

CSV_CASES = [  # file, images, labels, classes
    (A / "kaggle_dataset/image_csv/ann.csv", 5, 5, 2),
    (A / "kaggle_dataset/image_csv/ann_wo_ext.csv", 5, 5, 2),
    (A / "kaggle_dataset/image_csv_multi_label/ann.csv", 6, 9, 3),
    (A / "kaggle_dataset/image_csv_multi_label/ann_wo_ext.csv", 6, 9, 3),
    (A / "roboflow_dataset/multiclass/train/_classes.csv", 2, 2, 2),
    (A / "roboflow_dataset/multiclass/val/_classes.csv", 1, 2, 2),
]


def _pairs(batch, root):
    return sorted((os.path.realpath(root / p.image_key), p.category) for p in batch.proposals)


@pytest.mark.parametrize("path,n_images,n_labels,n_classes", CSV_CASES, ids=lambda v: str(v)[-40:])
def test_csv_corpus_and_round_trip(tmp_path, path, n_images, n_labels, n_classes):
    b, root = cl.read_csv(path)
    assert (len(b.images), len(b.proposals), len(b.categories)) == (n_images, n_labels, n_classes)
    assert not [w for w in b.warnings if w.action != "kept" or "not found" in w.problem]
    assert all(p.kind == "label" and p.bbox is None for p in b.proposals)
    res = cl.write_csv(snapshot_of(b, root), tmp_path / "out.csv")
    assert res["annotations"] == n_labels
    again, _ = cl.read_csv(tmp_path / "out.csv", images=root)
    assert _pairs(b, root) == _pairs(again, root)


def test_csv_detection_file_is_refused_clearly():
    with pytest.raises(InputError, match="ann.csv: line 1: columns x1, y1, x2, y2 look like a detection CSV"):
        cl.read_csv(A / "kaggle_dataset/image_csv_det/ann.csv")


def test_csv_through_store(tmp_path):
    first, again, res = store_round_trip(tmp_path, "csv", A / "kaggle_dataset/image_csv_multi_label/ann.csv",
                                         out_name="out.csv")
    assert res["layout"] == "one-hot" and res["annotations"] == 9
    assert sorted((p.image_key, p.category) for p in first.proposals) == \
           sorted((p.image_key, p.category) for p in again.proposals)


@pytest.mark.parametrize("text,message", [
    ("image_name,dog,cat\n1.jpg,1,0\n2.jpg,1\n", "line 3: 2 columns, the header has 3"),
    ("image_name,dog,cat\n1.jpg,1,maybe\n", "line 2: column 'cat': 'maybe' is not 0 or 1"),
    ("image_name,dog,cat\n1.jpg,nan,0\n", "'nan' is not 0 or 1"),
    ("", "empty file"),
    ("image_name\n1.jpg\n", "line 1: the header needs"),
    ("image_name,label_name,score\n1.jpg,dog,abc\n", "line 2: score 'abc' is not a number"),
    ("image_name,label_name\n,dog\n", "line 2: empty 'image_name'"),
])
def test_csv_clear_errors(tmp_path, text, message):
    (tmp_path / "a.csv").write_text(text)
    with pytest.raises(InputError) as e:
        cl.read_csv(tmp_path / "a.csv")
    assert str(e.value).startswith("a.csv: ") and message in str(e.value)


def test_csv_crlf_and_missing_images(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"image_name,label_name\r\nx.jpg,dog\r\ny.jpg,cat\r\n")
    b, _ = cl.read_csv(tmp_path / "a.csv")
    assert [(p.image_key, p.category) for p in b.proposals] == [("x.jpg", "dog"), ("y.jpg", "cat")]
    assert sum("not found" in w.problem for w in b.warnings) == 2


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=st.lists(st.sets(st.sampled_from(["dog", "cat", "a b", "x,y", 'q"t']), max_size=3), min_size=1,
                       max_size=6))
def test_csv_generated_round_trip(tmp_path, labels):
    from labelreview.model import Category, ImageRecord, ImportBatch, Proposal

    ims = [ImageRecord(key=f"i{i}.jpg", file_name=f"i{i}.jpg") for i in range(len(labels))]
    props = [Proposal(image_key=f"i{i}.jpg", category=c, kind="label") for i, s in enumerate(labels) for c in sorted(s)]
    cats = [Category(name=c) for c in sorted({c for s in labels for c in s})]
    b = ImportBatch(format="csv", source_file="x", images=ims, categories=cats, proposals=props)
    cl.write_csv(snapshot_of(b, tmp_path), tmp_path / "o.csv")
    again, _ = cl.read_csv(tmp_path / "o.csv", images=tmp_path)
    assert sorted((p.image_key, p.category) for p in props) == sorted((p.image_key, p.category) for p in again.proposals)


@pytest.mark.parametrize("path,n_images,n_labels,n_warn", [
    (A / "imagenet_dataset", 4, 3, 2),
    (CORPUS / "datumaro_cvat/tests/assets/yolo_dataset/yolov8_classification", 3, 3, 0),
])
def test_imagefolder_corpus_and_round_trip(tmp_path, path, n_images, n_labels, n_warn):
    b, root = cl.read_imagefolder(path)
    assert (len(b.images), len(b.proposals), len(b.warnings)) == (n_images, n_labels, n_warn)
    cl.write_imagefolder(snapshot_of(b, root), tmp_path / "out")
    again, root2 = cl.read_imagefolder(tmp_path / "out")
    assert _pairs(b, root) == _pairs(again, root2)  # same pictures (links followed), same classes
