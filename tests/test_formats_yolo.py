"""YOLO: the real files of other projects import with the expected counts, round trips keep every
coordinate, generated datasets round-trip, and corrupt ones fail with a clear error."""

from __future__ import annotations

import math
import os
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image as PILImage

from conftest import CORPUS, run_cli
from labelreview.formats import yolo
from labelreview.model import InputError, LabelreviewError
from test_formats_util import apple_double, assert_same_labels, snapshot_of, store_round_trip

Y = CORPUS / "datumaro_cvat/tests/assets/yolo_dataset"
RF = CORPUS / "datumaro_openvino/tests/assets/roboflow_dataset/yolo"
LS = CORPUS / "label_studio_converter/tests/data/test_import_yolo_data"

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus absent")

# (path, format read, images, labels, classes)
CASES = [
    (Y / "yolo", "yolo", 1, 2, 10),
    (Y / "yolo/obj.data", "yolo", 1, 2, 10),
    (Y / "yolov8_detection", "yolo", 1, 2, 10),
    (Y / "yolov8_detection/data.yaml", "yolo", 1, 2, 10),
    (Y / "yolov8_detection_with_list_of_imgs", "yolo", 1, 2, 10),
    (Y / "yolov8_detection_with_list_of_names", "yolo", 1, 2, 10),
    (Y / "yolov8_detection_with_subset_txt", "yolo", 1, 2, 10),
    (Y / "yolov8_oriented_boxes", "yolo-obb", 1, 2, 10),
    (Y / "yolov8_segmentation", "yolo-seg", 1, 2, 10),
    (Y / "yolov8_pose", "yolo-pose", 1, 1, 1),
    (Y / "yolov8_pose_two_values_per_point", "yolo-pose", 1, 1, 1),
    (RF, "yolo", 3, 4, 2),
    (LS, "yolo", 7, 25, 4),
]


@pytest.mark.parametrize("path,fmt,n_images,n_labels,n_classes", CASES, ids=lambda v: str(v)[-40:])
def test_corpus_counts(path, fmt, n_images, n_labels, n_classes):
    batch = yolo.read(path)
    assert batch.format == fmt
    assert (len(batch.images), len(batch.proposals), len(batch.categories)) == (n_images, n_labels, n_classes)
    for im in batch.images:
        assert im.width and im.height


def test_corpus_values():
    b = yolo.read(Y / "yolov8_detection")
    assert [p.category for p in b.proposals] == ["label_2", "label_4"]
    # "4 0.266667 0.450000 0.133333 0.300000" on a 15x10 image
    assert all(math.isclose(u, v, abs_tol=1e-4) for u, v in zip(b.proposals[1].bbox, [3, 3, 2, 3]))
    seg = yolo.read(Y / "yolov8_segmentation").proposals
    assert [len(p.segmentation[0]) for p in seg] == [6, 10] and seg[0].kind == "polygon"
    assert seg[0].segmentation[0] == pytest.approx([1.5, 1, 6, 1, 6, 5])
    obb = yolo.read(Y / "yolov8_oriented_boxes").proposals
    assert all(p.extra["obb"] for p in obb)
    assert obb[0].extra["angle"] == pytest.approx(30, abs=1e-3)
    assert obb[1].segmentation[0][7] == pytest.approx(-0.09808)  # the corner outside is kept
    pose = yolo.read(Y / "yolov8_pose").proposals[0]
    assert pose.kind == "keypoints" and pose.keypoints == pytest.approx([1.5, 2, 2, 4.5, 4, 2, 7.5, 6, 2])
    pose2 = yolo.read(Y / "yolov8_pose_two_values_per_point").proposals[0]
    assert pose2.keypoints == pytest.approx([1.5, 2, 2, 4.5, 4, 2, 7.5, 6, 2])


def test_crlf_labels_and_classes_real_photos():
    b = yolo.read(LS)
    assert [c.name for c in b.categories] == ["closed_door", "opened_door", "bus", "number"]
    sizes = {im.file_name: (im.width, im.height) for im in b.images}
    assert sizes["images/img_3.png"] == (1280, 720) and sizes["images/img_1.jpg"] == (640, 329)
    first = [p for p in b.proposals if p.image_key == "images/img_1.jpg"][0]
    # "2 0.49765625 0.46200607902735563 0.9640625 0.8693009118541033" on 640x329
    assert first.category == "bus"
    assert first.bbox == pytest.approx([(0.49765625 - 0.9640625 / 2) * 640, (0.46200607902735563 - 0.8693009118541033 / 2)
                                        * 329, 0.9640625 * 640, 0.8693009118541033 * 329])


def test_roboflow_paths_are_repaired_and_said():
    b = yolo.read(RF)
    probs = " ".join(w.problem for w in b.warnings)
    assert "'../train/images' read as train/images" in probs and "'../valid/images' read as val/images" in probs
    assert {im.extra["split"] for im in b.images} == {"train", "val"}


def test_darknet_data_prefix():
    b = yolo.read(Y / "yolo")
    assert [im.file_name for im in b.images] == ["obj_train_data/1.jpg"]
    assert any("data/" in w.problem for w in b.warnings)


@pytest.mark.parametrize("path,fmt,n_images,n_labels,n_classes", CASES[2::2] + CASES[-2:],
                         ids=lambda v: str(v)[-40:])
def test_corpus_round_trip_through_store(tmp_path, path, fmt, n_images, n_labels, n_classes):
    first, again, result = store_round_trip(tmp_path, "yolo", path)
    assert result["annotations"] == n_labels
    assert again.format == fmt
    assert_same_labels(first, again)
    assert (tmp_path / "out" / "labelreview.provenance.jsonl").read_text().count("\n") == n_labels


def test_export_is_ultralytics_layout(tmp_path):
    first, again, result = store_round_trip(tmp_path, "yolo", Y / "yolov8_pose")
    out = tmp_path / "out"
    assert (out / "labels/train/1.txt").is_file()
    text = (out / "data.yaml").read_text()
    assert "kpt_shape: [3, 3]" in text and "0: skeleton_label" in text and "train: images/train" in text
    import yaml

    cfg = yaml.safe_load(text)
    assert cfg["names"] == {0: "skeleton_label"} and cfg["kpt_shape"] == [3, 3]


def test_class_names_yaml_would_read_as_other_values_are_quoted_in_data_yaml(tmp_path):
    # Class names were written unquoted when they looked plain: YAML reads yes/no/on/True as booleans,
    # null as nothing, 007 and 0x1F as numbers, so the export's names came back (in Ultralytics and on
    # re-import) as True, False, 7, 31, 1.5, or failed as "empty class name".
    import yaml

    from labelreview.model import Category, ImageRecord, ImportBatch, Proposal

    PILImage.new("RGB", (40, 20)).save(tmp_path / "a.jpg")
    names = ["yes", "no", "on", "True", "null", "007", "0x1F", "1.50", "2024", "person", "traffic_light"]
    b = ImportBatch(format="yolo", source_file="x", images=[ImageRecord(key="a.jpg", file_name="a.jpg", width=40,
                                                                        height=20)],
                    categories=[Category(name=n, source_id=i) for i, n in enumerate(names)],
                    proposals=[Proposal(image_key="a.jpg", category=n, kind="bbox", bbox=[i, 1, 2, 3])
                               for i, n in enumerate(names)])
    yolo.write(snapshot_of(b, tmp_path), tmp_path / "out")
    text = (tmp_path / "out/data.yaml").read_text()
    assert yaml.safe_load(text)["names"] == dict(enumerate(names))
    assert "  9: person\n" in text  # plain names stay plain
    again = yolo.read(tmp_path / "out", images=tmp_path)
    assert [c.name for c in again.categories] == names
    assert sorted((p.category, round(p.bbox[0])) for p in again.proposals) == sorted((n, i) for i, n in enumerate(names))


def test_label_without_image_and_image_without_label_are_reported(tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(LS, d)
    (d / "labels/img_1.txt").unlink()
    (d / "labels/ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    b = yolo.read(d)
    found = {(w.where, w.action) for w in b.warnings}
    assert ("images/img_1.jpg", "kept") in found
    assert ("labels/ghost.txt", "skipped") in found
    assert len(b.images) == 7


def test_unreadable_image_skips_its_labels_and_says_so(tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(LS, d)
    (d / "images/img_1.jpg").write_bytes(b"garbage")
    b = yolo.read(d)
    assert len(b.images) == 6 and len(b.proposals) == 21
    w = [w for w in b.warnings if w.where == "images/img_1.jpg"][0]
    assert "4 label(s) skipped" in w.problem and w.action == "skipped"


def test_exif_rotated_image_normalizes_against_the_displayed_size(tmp_path):
    d = tmp_path / "ds"
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    ex = PILImage.Exif()
    ex[0x0112] = 6  # stored 40x20, shown 20x40
    PILImage.new("RGB", (40, 20)).save(d / "images/a.jpg", exif=ex.tobytes())
    (d / "labels/a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    b = yolo.read(d)
    assert (b.images[0].width, b.images[0].height) == (20, 40)
    assert b.proposals[0].bbox == pytest.approx([5, 10, 10, 20])


def test_predictions_with_confidence_and_labels_elsewhere(tmp_path):
    preds = tmp_path / "runs/predict/labels"
    preds.mkdir(parents=True)
    (preds / "img_1.txt").write_text("2 0.5 0.5 0.2 0.2 0.91\n0 0.1 0.1 0.05 0.05 0.33\n")
    (tmp_path / "runs/predict/classes.txt").write_text("closed_door\nopened_door\nbus\nnumber\n")
    b, root = yolo.load(preds, images=LS / "images")
    assert root == LS / "images"
    assert [(p.category, p.score) for p in b.proposals] == [("bus", 0.91), ("closed_door", 0.33)]
    assert len(b.images) == 7  # the other six images are there, reported as having no labels


def test_zero_width_box_at_the_border_is_kept_not_outside(tmp_path):
    """A zero-width box on the image's left edge, clipped by rounding in y, still lies on the image."""
    d = tmp_path / "ds"
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    PILImage.new("RGB", (10, 10)).save(d / "images/a.png")
    (d / "labels/a.txt").write_text("0 0 0.25 0 0.5000004\n0 1.2 0.5 0 0.2\n")
    b = yolo.read(d)
    assert [p.bbox for p in b.proposals] == [pytest.approx([0, 0, 0, 5.000002], abs=1e-6)]
    assert [(w.problem, w.action) for w in b.warnings if "line 2" in w.where] == \
        [("box lies outside the 10x10 image", "skipped")]
    assert any("zero width" in w.problem for w in b.warnings if "line 1" in w.where)


def test_pose_with_two_values_per_keypoint_keeps_visibility(tmp_path):
    """(0, 0) means a missing keypoint: a labelled one never rounds to it, a missing one is written so."""
    d = tmp_path / "ds"
    (d / "images/train").mkdir(parents=True)
    (d / "labels/train").mkdir(parents=True)
    PILImage.new("RGB", (100, 50)).save(d / "images/train/a.png")
    (d / "data.yaml").write_text("train: images/train\nkpt_shape: [3, 2]\nnames:\n  0: p\n")
    (d / "labels/train/a.txt").write_text("0 0.5 0.5 0.4 0.4 0 0.0000001 0.5 0.5 0.6 0.6\n")
    b = yolo.read(d)
    assert b.proposals[0].keypoints[2::3] == [2, 2, 2]
    snap = snapshot_of(b, d)
    snap.annotations[0].keypoints[8] = 0  # the third keypoint: not labelled
    yolo.write(snap, tmp_path / "out")
    shutil.copytree(d / "images", tmp_path / "out/images")
    again = yolo.read(tmp_path / "out")
    kp = again.proposals[0].keypoints
    assert kp[2::3] == [2, 2, 0]
    assert kp[0:2] == pytest.approx([0, 0], abs=0.005) and kp[6:8] == [0, 0]


def test_pose_keypoint_at_0_0_is_not_labelled_whatever_its_visibility(tmp_path):
    """Ultralytics' "not labelled" keypoint is 0 0 ("0 0", "0 0 0", and converters' "0 0 2"): it is
    not imported as a point at the image's corner, and a labelled keypoint at the corner is not
    exported as 0 0 (which would read back as not labelled)."""
    d = tmp_path / "ds"
    (d / "images/train").mkdir(parents=True)
    (d / "labels/train").mkdir(parents=True)
    PILImage.new("RGB", (100, 50)).save(d / "images/train/a.png")
    (d / "data.yaml").write_text("train: images/train\nkpt_shape: [3, 3]\nnames:\n  0: p\n")
    (d / "labels/train/a.txt").write_text("0 0.5 0.5 0.4 0.4 0.5 0.5 2 0 0 2 0.0 0.0 1\n")
    b = yolo.read(d)
    assert b.proposals[0].keypoints[2::3] == [2, 0, 0]
    assert [w.action for w in b.warnings if "a.txt line 1" in w.where and "keypoint(s) 1, 2 at 0 0" in w.problem] \
        == ["repaired"]
    snap = snapshot_of(b, d)
    snap.annotations[0].keypoints[3:9] = [0.0, 0.0, 2, 0.0001, 0.0, 2]  # labelled ones at the corner
    yolo.write(snap, tmp_path / "out")
    line = (tmp_path / "out/labels/train/a.txt").read_text().split()
    assert line[8:11] != ["0", "0", "2"] and line[11:14] != ["0", "0", "2"]
    shutil.copytree(d / "images", tmp_path / "out/images")
    kp = yolo.read(tmp_path / "out").proposals[0].keypoints
    assert kp[2::3] == [2, 2, 2] and kp[3:5] == pytest.approx([0, 0], abs=0.005)


def test_reimport_of_an_export_with_images_reads_the_exported_labels(tmp_path):
    """``import yolo OUT --images DATASET``: labels from OUT, never the dataset's own label files (b5)."""
    d = tmp_path / "ds"
    (d / "images/train").mkdir(parents=True)
    (d / "labels/train").mkdir(parents=True)
    PILImage.new("RGB", (100, 50)).save(d / "images/train/a.jpg")
    PILImage.new("RGB", (100, 50)).save(d / "images/train/b.jpg")
    (d / "data.yaml").write_text("train: images/train\nnames:\n  0: cat\n  1: dog\n")
    (d / "labels/train/a.txt").write_text("0 0.5 0.5 0.2 0.4 0.87\n1 0.25 0.25 0.1 0.1\n")
    (d / "labels/train/b.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    b = yolo.read(d)
    snap = snapshot_of(b, d)
    snap.annotations = [a for a in snap.annotations if a.score is None]  # the first box rejected
    for a in snap.annotations:
        a.category = "cat"  # relabeled
    out = tmp_path / "out"
    yolo.write(snap, out)
    again = yolo.read(out, images=d)
    assert sorted((p.image_key, p.category, p.score) for p in again.proposals) == \
        [("images/train/a.jpg", "cat", None), ("images/train/b.jpg", "cat", None)]
    # an image the export has no label file for gets none, not the dataset's own
    (out / "labels/train/b.txt").unlink()
    again = yolo.read(out, images=d)
    assert [(p.image_key, p.category) for p in again.proposals] == [("images/train/a.jpg", "cat")]
    assert any(w.where == "images/train/b.jpg" and "no label file" in w.problem for w in again.warnings)
    # without --images, a dataset's own labels beside its images are still read
    assert len(yolo.read(d).proposals) == 3


# ---------------------------------------------------------------------- errors


def _one_label_dataset(tmp_path, text: bytes | str, names="a\nb\n", size=(20, 10)) -> Path:
    d = tmp_path / "ds"
    (d / "images").mkdir(parents=True, exist_ok=True)
    (d / "labels").mkdir(exist_ok=True)
    PILImage.new("RGB", size).save(d / "images/x.png")
    (d / "labels/x.txt").write_bytes(text if isinstance(text, bytes) else text.encode())
    if names is not None:
        (d / "classes.txt").write_text(names)
    return d


@pytest.mark.parametrize("text,message", [
    ("0 0.5 0.5 0.1\n", "line 1: 3 value(s) after the class"),
    ("0 0.5 0.5 0.1 0.1\n1 0.5 nan 0.1 0.1\n", "line 2: NaN or infinite"),
    ("0 0.5 0.5 -0.1 0.2\n", "line 1: negative box width"),
    ("x 0.5 0.5 0.1 0.1\n", "line 1: class 'x' is not a class index"),
    ("0 0.5 0.5 0.1 abc\n", "line 1: 'abc' is not a number"),
    # float() and int() take these (as 0.15, 10, 1 and 0.1): they are no decimal numbers
    ("0 0.5 0.5 0.1 0.1_5\n", "line 1: '0.1_5' is not a number"),
    ("0 0.5 0.5 0.1 0.1\n1_0 0.5 0.5 0.1 0.1\n", "line 2: '1_0' is not a number"),
    ("\u0661 0.5 0.5 0.1 0.1\n", "line 1: '\u0661' is not a number"),
    ("0 0.5 0.5 0.1 \uff10.1\n", "line 1: '\uff10.1' is not a number"),
    ("0 120 40 30 20\n", "line 1: value 120 is not normalized"),
    ("-1 0.5 0.5 0.1 0.1\n", "line 1: class -1 is negative"),
    (b"0 0.5 0.5 0.1 0.1\n\xff\xfe\n", "line 2: not UTF-8"),
    # a class beyond what the store holds was a TypeError traceback at the store's write
    ("0 0.5 0.5 0.1 0.1\n99999999999999999999999 0.5 0.5 0.1 0.1\n", "line 2: class '99999999999999999999999' is too large"),
    ("1e30 0.5 0.5 0.1 0.1\n", "line 1: class '1e30' is too large"),
])
def test_clear_errors(tmp_path, text, message):
    d = _one_label_dataset(tmp_path, text)
    with pytest.raises(InputError) as e:
        yolo.read(d)
    assert message in str(e.value)
    assert str(e.value).startswith("labels/x.txt: ")


def test_data_yaml_class_index_too_large_or_given_twice_is_refused(tmp_path, empty_store):
    """A names index beyond what the store holds was a traceback; one given twice (0 and "0") lost a
    class name without a word."""
    d = _one_label_dataset(tmp_path, "0 0.5 0.5 0.1 0.1\n", names=None)
    (d / "data.yaml").write_text("train: images\nnames:\n  0: a\n  99999999999999999999: b\n")
    r = run_cli("import", "yolo", str(d), "--store", str(empty_store))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "data.yaml: names: 99999999999999999999: class index is too large" in r.stderr
    assert [p.name for p in (empty_store / "imports").iterdir()] == [".keep"]
    (d / "data.yaml").write_text("train: images\nnames:\n  0: a\n  '0': b\n")
    with pytest.raises(InputError, match="names: '0': class index 0 is given twice \\('a' and 'b'\\)"):
        yolo.read(d)


def test_bad_data_yaml(tmp_path):
    d = _one_label_dataset(tmp_path, "0 0.5 0.5 0.1 0.1\n", names=None)
    (d / "data.yaml").write_text("train: images\nnames: [a, b\n")
    with pytest.raises(InputError, match=r"data.yaml: line \d+: not valid YAML"):
        yolo.read(d)
    (d / "data.yaml").write_text("train: images\nnc: 3\nnames: [a, b]\n")
    with pytest.raises(InputError, match="nc is 3 but names has 2"):
        yolo.read(d)
    (d / "data.yaml").write_text("train: images\nkpt_shape: [3]\nnames: [a, b]\n")
    with pytest.raises(InputError, match="kpt_shape"):
        yolo.read(d)
    (d / "data.yaml").write_text("train: images\nkpt_shape: [2, 3]\nnames: [a, b]\n")
    with pytest.raises(InputError, match=r"kpt_shape \[2, 3\] needs 4 \+ 6 = 10"):
        yolo.read(d)


def test_cli_error_is_a_message_and_nothing_is_imported(tmp_path):
    d = _one_label_dataset(tmp_path, "0 0.5 0.5 0.1 0.1\n1 0.5 0.5\n")
    store = tmp_path / "store"
    assert run_cli("init", str(store)).returncode == 0
    r = run_cli("import", "auto", str(d), "--store", str(store))
    assert r.returncode == 1
    assert r.stderr.strip() == ("labelreview: error: labels/x.txt: line 2: 2 value(s) after the class; "
                                "a box needs 4 (cx cy w h), a polygon at least 6")
    assert "Traceback" not in r.stderr
    assert [p for p in (store / "imports").iterdir() if not p.name.startswith(".")] == []
    r = run_cli("status", "--store", str(store), "--json")
    assert '"total": 0' in r.stdout


def test_cli_auto_import_and_export(tmp_path):
    store = tmp_path / "store"
    run_cli("init", str(store))
    r = run_cli("import", "auto", str(Y / "yolov8_oriented_boxes"), "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert "detected format: yolo-obb (an Ultralytics dataset (data.yaml))" in r.stdout
    assert "imported 2 annotations on 1 images" in r.stdout
    r = run_cli("export", "yolo", str(tmp_path / "out"), "--include", "pending", "--store", str(store))
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "out/labels/train/1.txt").read_text().splitlines()
    src = (Y / "yolov8_oriented_boxes/labels/train/1.txt").read_text().splitlines()
    for a, b in zip(lines, src):
        assert [float(v) for v in a.split()] == pytest.approx([float(v) for v in b.split()], abs=1e-6)
    r = run_cli("export", "yolo", str(Y / "yolov8_oriented_boxes"), "--store", str(store))
    assert r.returncode == 1 and "not written by a labelreview export" in r.stderr


# ---------------------------------------------------------------------- generated datasets

_IMG_CACHE: dict[tuple[int, int], bytes] = {}


def _png(w: int, h: int) -> bytes:
    if (w, h) not in _IMG_CACHE:
        import io

        buf = io.BytesIO()
        PILImage.new("1", (w, h)).save(buf, "PNG")
        _IMG_CACHE[(w, h)] = buf.getvalue()
    return _IMG_CACHE[(w, h)]


unit = st.floats(0.0, 1.0, allow_nan=False, width=32)


@st.composite
def datasets(draw):
    task = draw(st.sampled_from(["detect", "segment", "pose", "obb"]))
    ncls = draw(st.integers(1, 5))
    kshape = (draw(st.integers(1, 4)), draw(st.sampled_from([2, 3]))) if task == "pose" else None
    images = []
    for i in range(draw(st.integers(1, 3))):
        lo = 20 if task == "obb" else 1
        w, h = draw(st.integers(lo, 3000)), draw(st.integers(lo, 3000))
        lines = []
        for _ in range(draw(st.integers(0, 4))):
            c = draw(st.integers(0, ncls - 1))
            if task in ("detect", "pose"):
                bw, bh = draw(unit), draw(unit)
                cx = draw(st.floats(bw / 2, 1 - bw / 2)) if bw < 1 else 0.5
                cy = draw(st.floats(bh / 2, 1 - bh / 2)) if bh < 1 else 0.5
                vals = [cx, cy, bw, bh]
                if task == "pose":
                    for _ in range(kshape[0]):
                        vals += [draw(unit), draw(unit)]
                        if kshape[1] == 3:
                            vals.append(draw(st.sampled_from([0, 1, 2])))
                elif draw(st.booleans()):
                    vals.append(round(draw(unit), 4))  # a prediction's confidence
            elif task == "segment":
                vals = [draw(unit) for _ in range(2 * draw(st.integers(3, 8)))]
            else:
                cx, cy = draw(st.floats(0.2, 0.8)), draw(st.floats(0.2, 0.8))
                rw, rh = draw(st.floats(2, 0.3 * min(w, h))), draw(st.floats(2, 0.3 * min(w, h)))
                ang = draw(st.floats(-89, 89))
                from labelreview.formats.common import rotated_corners

                pts = rotated_corners(cx * w, cy * h, rw, rh, ang)
                vals = [v / (w if k % 2 == 0 else h) for k, v in enumerate(pts)]
            lines.append((c, vals))
        images.append((f"im{i}", w, h, lines))
    return task, ncls, kshape, images


def _write_dataset(d: Path, task, ncls, kshape, images, crlf=False) -> None:
    if d.exists():
        shutil.rmtree(d)
    (d / "images/train").mkdir(parents=True)
    (d / "labels/train").mkdir(parents=True)
    y = ["path: .", "train: images/train", "names:"] + [f"  {i}: c{i}" for i in range(ncls)]
    if kshape:
        y.append(f"kpt_shape: [{kshape[0]}, {kshape[1]}]")
    (d / "data.yaml").write_text("\n".join(y) + "\n")
    nl = "\r\n" if crlf else "\n"
    for name, w, h, lines in images:
        (d / f"images/train/{name}.png").write_bytes(_png(w, h))
        (d / f"labels/train/{name}.txt").write_text(
            "".join(" ".join([str(c)] + [repr(v) for v in vals]) + nl for c, vals in lines), newline="")


def _expected_pixels(vals, w, h, kind):
    if kind == "box":
        cx, cy, bw, bh = vals[:4]
        return [cx * w - bw * w / 2, cy * h - bh * h / 2, bw * w, bh * h]
    return [v * (w if k % 2 == 0 else h) for k, v in enumerate(vals)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=datasets())
def test_generated_datasets_read_and_round_trip(tmp_path, data):
    task, ncls, kshape, images = data
    d = tmp_path / "gen"
    _write_dataset(d, task, ncls, kshape, images)
    b = yolo.read(d, task=None if task != "obb" else "obb")
    n = sum(len(lines) for *_, lines in images)
    assert len(b.proposals) == n and len(b.images) == len(images)
    props = iter(b.proposals)
    for name, w, h, lines in images:
        for c, vals in lines:
            p = next(props)
            assert p.category == f"c{c}"
            if task in ("detect", "pose"):
                exp = _expected_pixels(vals, w, h, "box")
                # boxes may be clipped by float rounding at the image border, never by more
                assert all(math.isclose(a, e, abs_tol=0.01) for a, e in zip(p.bbox, exp)), (p.bbox, exp)
                if len(vals) == 5:
                    assert p.score == vals[4]
            else:
                assert p.segmentation[0] == pytest.approx(_expected_pixels(vals, w, h, "poly"), abs=1e-6)
    out = tmp_path / "out"
    if out.exists():
        shutil.rmtree(out)
    res = yolo.write(snapshot_of(b, d), out)
    assert res["annotations"] == n
    again = yolo.read(out, images=d, task=None if task != "obb" else "obb")
    assert_same_labels(b, again)
    # CRLF line endings read the same
    _write_dataset(d, task, ncls, kshape, images, crlf=True)
    crlf = yolo.read(d, task=None if task != "obb" else "obb")
    assert_same_labels(b, crlf, tol=0)


CORRUPTIONS = ["truncate", "drop_token", "add_token", "nan", "inf", "negative", "unknown_class", "garbage",
               "crlf", "empty_line", "bad_class", "huge", "binary"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=datasets(), how=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 10**6))
def test_corrupt_files_give_a_clear_error_never_a_traceback(tmp_path, data, how, seed):
    task, ncls, kshape, images = data
    if not any(lines for *_, lines in images):
        return
    d = tmp_path / "gen"
    _write_dataset(d, task, ncls, kshape, images)
    rnd = random.Random(seed)
    files = sorted(p for p in (d / "labels/train").iterdir() if p.stat().st_size)
    f = rnd.choice(files)
    text = f.read_bytes()
    lines = text.decode().splitlines()
    i = rnd.randrange(len(lines))
    toks = lines[i].split()
    j = rnd.randrange(1, len(toks))
    if how == "truncate":
        text = text[: rnd.randrange(1, len(text))]
    elif how == "crlf":
        text = text.replace(b"\n", b"\r\n")
    elif how == "empty_line":
        text = text.replace(b"\n", b"\n\n \n", 1)
    elif how == "garbage":
        text += b"#!@ garbage line\n"
    elif how == "binary":
        text = text[:5] + bytes(rnd.randrange(256) for _ in range(20)) + text[5:]
    else:
        if how == "drop_token":
            del toks[j]
        elif how == "add_token":
            toks.insert(j, "0.5")
        elif how == "nan":
            toks[j] = "nan"
        elif how == "inf":
            toks[j] = "-inf"
        elif how == "negative":
            toks[j] = "-" + toks[j].lstrip("-")
        elif how == "unknown_class":
            toks[0] = str(ncls + rnd.randrange(5))
        elif how == "bad_class":
            toks[0] = rnd.choice(["1.5", "one", "-2", "0x1"])
        elif how == "huge":
            toks[j] = "1e300"
        lines[i] = " ".join(toks)
        text = ("\n".join(lines) + "\n").encode()
    f.write_bytes(text)
    try:
        b = yolo.read(d, task=None if task != "obb" else "obb")
    except InputError as e:
        msg = str(e)
        assert msg.startswith(f"labels/train/{f.name}: "), msg
        assert "line " in msg or "UTF-8" in msg
        return
    except LabelreviewError:
        return
    if how in ("crlf", "empty_line"):
        assert len(b.proposals) == sum(len(lines) for *_, lines in images)


def _images_without_folders(tmp_path):
    """The usual COCO case: file names with no folder ("a.jpg"), the images in one root."""
    from labelreview.model import Category, ImageRecord, ImportBatch, Proposal

    root = tmp_path / "imgs"
    root.mkdir()
    for name in ("a.jpg", "b.jpg"):
        PILImage.new("RGB", (100, 50)).save(root / name)
    batch = ImportBatch(format="coco", source_file="t", categories=[Category(name="cat"), Category(name="dog")],
                        images=[ImageRecord(key=n, file_name=n, width=100, height=50) for n in ("a.jpg", "b.jpg")],
                        proposals=[Proposal(image_key="a.jpg", category="cat", kind="bbox", bbox=[10, 10, 20, 10]),
                                   Proposal(image_key="b.jpg", category="dog", kind="bbox", bbox=[0, 0, 50, 25])])
    return batch, root


def test_export_of_images_without_folders_reimports_with_images_and_suits_ultralytics(tmp_path):
    """The export wrote `path: .` and `train: "."`, and `import yolo OUT --images ROOT` resolved "." to
    the export folder (labels only): 0 images, 0 labels, exit 0. Now the split folder is looked for
    in the image root first, and data.yaml names where Ultralytics finds the images inside the export
    (images/, beside labels/), with no `path` (Ultralytics reads a relative one against the current
    folder)."""
    import yaml

    batch, root = _images_without_folders(tmp_path)
    out = tmp_path / "out"
    yolo.write(snapshot_of(batch, root), out)
    cfg = yaml.safe_load((out / "data.yaml").read_text())
    assert "path" not in cfg and cfg["train"] == "images"
    again = yolo.read(out, images=root)
    assert_same_labels(batch, again)
    assert not [w for w in again.warnings if w.action != "kept"], again.warnings
    # Ultralytics: the images linked in where data.yaml says; each image's label file is its path with
    # the last /images/ replaced by /labels/ and the extension by .txt
    (out / "images").symlink_to(root, target_is_directory=True)
    train = out / cfg["train"]
    found = sorted(str(p) for p in train.rglob("*.jpg"))
    assert len(found) == 2
    for p in found:
        lab = "/labels/".join(p.rsplit("/images/", 1)).rsplit(".", 1)[0] + ".txt"
        assert os.path.isfile(lab) and open(lab).read().strip(), lab
    # an export written before this change (path: ., train: ".") reads back the same way
    (out / "images").unlink()
    (out / "data.yaml").write_text("path: .\ntrain: \".\"\nnames:\n  0: cat\n  1: dog\n")
    assert_same_labels(batch, yolo.read(out, images=root))


def test_yolo_import_that_matches_no_image_fails_clearly(tmp_path):
    """Labels but no image (a labels-only export without --images), or no label file matching any image
    (--images naming the wrong folder): an error naming what was looked for, not "imported 0"."""
    batch, root = _images_without_folders(tmp_path)
    out = tmp_path / "out"
    yolo.write(snapshot_of(batch, root), out)
    with pytest.raises(LabelreviewError, match=r"no images found for its 2 label file\(s\).*give --images"):
        yolo.read(out)
    other = tmp_path / "other"
    other.mkdir()
    PILImage.new("RGB", (100, 50)).save(other / "zzz.jpg")
    with pytest.raises(LabelreviewError, match=r"none of its 2 label file\(s\) \(e\.g\. labels/a\.txt\) matches"):
        yolo.read(out, images=other)
    store = tmp_path / "st"
    assert run_cli("init", str(store)).returncode == 0
    r = run_cli("import", "yolo", str(out), "--store", str(store))
    assert r.returncode == 1 and "no images found" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_cli("import", "yolo", str(out), "--images", str(root), "--store", str(store))
    assert r.returncode == 0 and "imported 2 annotations on 2 images" in r.stdout, r.stdout + r.stderr


def test_image_of_unknown_size_is_left_out_of_the_export_not_written_as_background(tmp_path):
    """An image whose size is unknown (file missing or unreadable) had its labels skipped but an empty
    labels/<name>.txt written, in a split folder data.yaml names: Ultralytics trained it as an image
    with no objects. Now it is left out (no label file, not in the split) and the result says so."""
    import yaml

    from labelreview.model import ImageRecord, Proposal

    batch, root = _images_without_folders(tmp_path)
    PILImage.new("RGB", (100, 50)).save(root / "c.jpg")  # labelled, size known: written
    batch.images.append(ImageRecord(key="gone.jpg", file_name="gone.jpg"))  # no size, no file
    batch.images.append(ImageRecord(key="c.jpg", file_name="c.jpg", width=100, height=50))
    batch.proposals += [Proposal(image_key="gone.jpg", category="cat", kind="bbox", bbox=[1, 1, 5, 5]),
                        Proposal(image_key="gone.jpg", category="dog", kind="bbox", bbox=[2, 2, 5, 5]),
                        Proposal(image_key="c.jpg", category="dog", kind="bbox", bbox=[2, 2, 5, 5])]
    out = tmp_path / "out"
    res = yolo.write(snapshot_of(batch, root), out)
    assert not (out / "labels/gone.txt").exists()
    assert res["images_left_out"] == {"image size unknown (image file missing or unreadable)": ["gone.jpg"]}
    assert res["skipped"] == {"image size unknown": 2} and res["images"] == 3 and res["annotations"] == 3
    # the split lists the images it holds (Ultralytics: "./" is the list file's folder), not a folder
    cfg = yaml.safe_load((out / "data.yaml").read_text())
    assert cfg["train"] == "train.txt"
    listed = (out / "train.txt").read_text().splitlines()
    assert listed == ["./images/a.jpg", "./images/b.jpg", "./images/c.jpg"]
    # the file appears later in the image root: Ultralytics still does not see it
    PILImage.new("RGB", (100, 50)).save(root / "gone.jpg")
    (out / "images").symlink_to(root, target_is_directory=True)
    for entry in listed:
        p = entry.replace("./", str(out) + "/")
        lab = "/labels/".join(p.rsplit("/images/", 1)).rsplit(".", 1)[0] + ".txt"
        assert os.path.isfile(p) and open(lab).read().strip(), lab
    (out / "images").unlink()
    # and the export reads back (with --images) as the images it holds
    again = yolo.read(out, images=root)
    assert sorted(im.file_name for im in again.images) == ["a.jpg", "b.jpg", "c.jpg"]
    assert len(again.proposals) == 3
    assert not [w for w in again.warnings if w.action != "kept"], again.warnings
    # an image of unknown size with no labels is still written: it has no objects, and no size is needed
    batch.proposals = [p for p in batch.proposals if p.image_key != "gone.jpg"]
    (root / "gone.jpg").unlink()
    res = yolo.write(snapshot_of(batch, root), out)
    assert "images_left_out" not in res and (out / "labels/gone.txt").read_text() == ""
    assert yaml.safe_load((out / "data.yaml").read_text())["train"] == "images"


def test_class_index_missing_from_the_names_is_kept_under_a_class_of_its_own(tmp_path):
    """A class index the names file does not have failed the whole import; COCO repairs an undefined
    category id (class "undefined-<id>", a warning). YOLO now does the same: the labels are kept for
    review under "undefined-7", with a warning naming the file and the line, once per index."""
    d = _one_label_dataset(tmp_path, "0 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.2 0.2\n7 0.25 0.25 0.1 0.1\n")
    b = yolo.read(d)
    assert [c.name for c in b.categories] == ["a", "b", "undefined-7"]
    assert [c.source_id for c in b.categories] == [0, 1, 7]
    assert [p.category for p in b.proposals] == ["a", "undefined-7", "undefined-7"]
    assert [(w.where, w.problem, w.action) for w in b.warnings] == [
        ("labels/x.txt line 2", "class 7 is not in the class names (0..1, classes.txt); class 'undefined-7' "
         "added", "repaired")]
    # the same from a data.yaml, and through the store; an export writes every class
    (d / "classes.txt").unlink()
    (d / "data.yaml").write_text("train: images\nnames: [a, b]\n")
    first, again, result = store_round_trip(tmp_path, "yolo", d)
    assert any(w.where == "labels/x.txt line 2" and "data.yaml" in w.problem for w in first.warnings)
    assert result["annotations"] == 3 and "undefined-7" in [c.name for c in again.categories]
    assert_same_labels(first, again)
    # a malformed line is still an error
    (d / "labels/x.txt").write_text("7 0.5 0.5 0.1\n")
    with pytest.raises(InputError, match=r"labels/x.txt: line 1: 3 value\(s\) after the class"):
        yolo.read(d)


@pytest.mark.parametrize("layout", ["data.yaml", "folder"])
def test_hidden_image_files_are_skipped_and_said(tmp_path, layout):
    """An image whose name starts with '.' was skipped without a word (only its label file was
    reported, as "label file with no image"). Ultralytics reads a split folder with Python's glob,
    which passes over such names, so it is still skipped (what is reviewed is what is trained on),
    but each is said; macOS AppleDouble files ('._x.jpg', metadata, not images) are counted at once.
    An image a split's list file names is read, hidden or not, as Ultralytics reads it."""
    import json

    from helpers import run

    d = tmp_path / "ds"
    if layout == "data.yaml":
        img_dir, lab_dir = d / "images/train", d / "labels/train"
        (d / "data.yaml").parent.mkdir(parents=True)
        (d / "data.yaml").write_text("train: images/train\nval: images/train\nnames:\n  0: car\n")
    else:
        img_dir = lab_dir = d
        d.mkdir()
        (d / "classes.txt").write_text("car\n")
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    for n in ("a", ".hidden"):
        PILImage.new("RGB", (20, 10)).save(img_dir / f"{n}.jpg")
        (lab_dir / f"{n}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    for n in ("._a.jpg", "._.hidden.jpg"):
        (img_dir / n).write_bytes(apple_double())
    (lab_dir / "._a.txt").write_bytes(apple_double())
    store = tmp_path / "st"
    assert run("init", str(store))[0] == 0
    rc, out, err = run("import", "yolo", str(d), "--store", str(store))
    assert rc == 0, err
    assert "imported 1 annotations on 1 images" in out
    prefix = "images/train/" if layout == "data.yaml" else ""
    assert (f"  {prefix}.hidden.jpg: hidden file (its name starts with '.'): skipped, as Ultralytics skips it "
            "when it reads an image folder; rename it, or list it in a split's .txt file, to import it (skipped)"
            in out.splitlines()), out
    assert (f"  {d.name}: 3 macOS AppleDouble file(s) ('._' + a file's name: Finder metadata, not images or "
            f"labels) skipped, e.g. {prefix}._.hidden.jpg (skipped)" in out.splitlines()), out
    assert "label file with no image" not in out
    imported = json.loads(run("status", "--json", "--store", str(store))[1])
    assert imported["images"] == 1
    if layout == "data.yaml":  # named in a split's list: read, with its label, and not said skipped
        (d / "train.txt").write_text("./images/train/a.jpg\n./images/train/.hidden.jpg\n")
        (d / "data.yaml").write_text("train: train.txt\nnames:\n  0: car\n")
        other = tmp_path / "st2"
        assert run("init", str(other))[0] == 0
        rc, out, err = run("import", "yolo", str(d), "--store", str(other))
        assert rc == 0, err
        assert "imported 2 annotations on 2 images" in out and "hidden file" not in out, out


def test_polygon_outside_the_image_is_skipped_and_one_past_it_has_its_box_clipped(tmp_path):
    """A YOLO polygon wholly outside its image was kept with a box of zero width on (or past) the
    image's edge and "a point lies outside the image; kept as is", and one reaching past the edge by a
    rounding of its normalized values was said the same way. As COCO, Label Studio and CVAT shapes
    are: the points kept as drawn, the box clipped to the image with a warning beyond rounding, and a
    polygon with nothing inside the image skipped with a warning."""
    import json

    from helpers import run

    d = tmp_path / "ds"
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    PILImage.new("RGB", (100, 50)).save(d / "images/a.jpg")
    (d / "classes.txt").write_text("blob\n")
    (d / "labels/a.txt").write_text(
        "0 1.1 0.1 1.3 0.1 1.2 0.4\n"  # wholly right of the image
        "0 1.0 0.1 1.3 0.1 1.2 0.4\n"  # touches the right edge from outside: nothing inside
        "0 -0.3 -0.4 -0.1 -0.4 -0.2 -0.1\n"  # above and left of it
        "0 0.9 0.1 1.2 0.1 1.1 0.4\n"  # reaches past the right edge
        "0 0.1 0.1 0.3 0.1 1.0000004 0.4\n"  # past the edge by rounding only: no word
        "0 0.1 0.1 0.3 0.1 0.2 0.4\n")  # inside
    store = tmp_path / "st"
    assert run("init", str(store))[0] == 0
    rc, out, err = run("import", "yolo", str(d), "--store", str(store), "--json")
    assert rc == 0, err
    warns = [(w["where"], w["problem"], w["action"]) for w in json.loads(out)["warnings"]]
    assert warns == [
        ("labels/a.txt line 1", "polygon lies outside the 100x50 image", "skipped"),
        ("labels/a.txt line 2", "polygon lies outside the 100x50 image", "skipped"),
        ("labels/a.txt line 3", "polygon lies outside the 100x50 image", "skipped"),
        ("labels/a.txt line 4", "polygon reaches outside the 100x50 image; kept as drawn, its box clipped",
         "repaired"),
    ]
    rc, out, err = run("ls", "--json", "--store", str(store))
    got = sorted((a["source_id"], a["bbox"]) for a in json.loads(out))
    assert [sid for sid, _ in got] == ["labels/a.txt:4", "labels/a.txt:5", "labels/a.txt:6"]
    assert got[0][1] == pytest.approx([90, 5, 10, 15])  # clipped at the right edge
    assert got[1][1] == pytest.approx([10, 5, 90, 15])
    assert got[2][1] == pytest.approx([10, 5, 20, 15])
    # the polygon past the edge is kept as drawn
    rc, _, err = run("export", "coco", str(tmp_path / "out.json"), "--include", "pending", "--store", str(store))
    assert rc == 0, err
    doc = json.loads((tmp_path / "out.json").read_text())
    assert sorted(a["segmentation"][0] for a in doc["annotations"])[-1] == pytest.approx([90, 5, 120, 5, 110, 20])
