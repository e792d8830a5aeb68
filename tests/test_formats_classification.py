"""Classification CSV and ImageFolder: corpus counts, round trips of every class, clear errors."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

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
    # a field past the csv module's limit was a _csv.Error traceback
    # a quoted class name with a line break in it: the rows below it were named a line too early
    ('image_name,label_name,score\n1.jpg,"dog\nbreed",0.5\n2.jpg,cat,abc\n', "line 4: score 'abc' is not a number"),
    pytest.param("image_name,label_name\n1.jpg,dog\n2.jpg," + "x" * 200_000 + "\n",
                 "line 3: not a valid CSV row (field larger", id="field-past-the-csv-limit"),
])
def test_csv_clear_errors(tmp_path, text, message):
    (tmp_path / "a.csv").write_text(text)
    with pytest.raises(InputError) as e:
        cl.read_csv(tmp_path / "a.csv")
    assert str(e.value).startswith("a.csv: ") and message in str(e.value)


def test_one_hot_csv_with_a_class_named_like_a_column_round_trips(tmp_path):
    # A one-hot class called "label" (or "score") was taken for the label column: every other class
    # was silently dropped and the image labels became "0" and "1". Classes differing only in case
    # ("Cat", "cat"), which the one-hot export writes as two columns, were refused as "two columns
    # have the same name", so the export could not be read back.
    (tmp_path / "a.csv").write_text("image_name,Cat,cat,label,score\nx.jpg,1,0,1,0\ny.jpg,0,1,0,1\nz.jpg,0,0,0,0\n")
    b, _ = cl.read_csv(tmp_path / "a.csv")
    assert [c.name for c in b.categories] == ["Cat", "cat", "label", "score"]
    assert sorted((p.image_key, p.category, p.score) for p in b.proposals) == [
        ("x.jpg", "Cat", None), ("x.jpg", "label", None), ("y.jpg", "cat", None), ("y.jpg", "score", None)]
    assert [im.key for im in b.images] == ["x.jpg", "y.jpg", "z.jpg"]
    # a single-label file with a score column is read as it was
    (tmp_path / "b.csv").write_text("image_name,label,score\nx.jpg,dog,0.5\ny.jpg,1,1\n")
    b, _ = cl.read_csv(tmp_path / "b.csv")
    assert sorted((p.image_key, p.category, p.score) for p in b.proposals) == [("x.jpg", "dog", 0.5), ("y.jpg", "1", 1.0)]


def test_csv_crlf_and_missing_images(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"image_name,label_name\r\nx.jpg,dog\r\ny.jpg,cat\r\n")
    b, _ = cl.read_csv(tmp_path / "a.csv")
    assert [(p.image_key, p.category) for p in b.proposals] == [("x.jpg", "dog"), ("y.jpg", "cat")]
    assert sum("not found" in w.problem for w in b.warnings) == 2


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=st.lists(st.sets(st.sampled_from(["dog", "cat", "a b", "x,y", 'q"t', "Cat", "label", "score"]),
                              max_size=3), min_size=1,
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
    assert _contents(b, root) == _contents(again, root2)  # same pictures, same classes
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_symlink()]  # the images themselves


def _contents(batch, root):
    import hashlib

    return sorted((hashlib.sha256((root / p.image_key).read_bytes()).hexdigest(), p.category)
                  for p in batch.proposals)


def _two_class_folder(d):
    from PIL import Image

    for cls, name, colour in (("cat", "1.jpg", "red"), ("dog", "2.jpg", "blue")):
        (d / cls).mkdir(parents=True)
        Image.new("RGB", (20, 20), colour).save(d / cls / name)


def test_imagefolder_export_imports_back_with_its_decisions(tmp_path):
    """The export holds the images (hard links, or copies), not symbolic links out of the folder that the
    import refuses: accepted and relabeled labels come back, the pictures are the same files (b8)."""
    from labelreview.formats import registry
    from labelreview.formats.snapshot import snapshot_from_store
    from labelreview.store import Store

    _two_class_folder(tmp_path / "if")
    sroot = Store.init(tmp_path / "store", name="t")
    args = SimpleNamespace(images=None, gt=None)
    with Store.open(sroot) as store:
        _, batch = registry.read("imagefolder", tmp_path / "if", args, store)
        store.ingest(batch, source="first", image_root=tmp_path / "if")
        snap = snapshot_from_store(store, ("pending",))
        snap.annotations[1].category = "cat"  # dog/2.jpg relabeled cat
        res = registry.write("imagefolder", snap, tmp_path / "out", args)
        assert res["annotations"] == 2
        _, again = registry.read("imagefolder", tmp_path / "out", args, store)
        got = store.ingest(again, source="second", image_root=tmp_path / "out")
    assert got["annotations"] == 2 and got["images"] == 2, got
    assert sorted((p.image_key, p.category) for p in again.proposals) == [("cat/1.jpg", "cat"), ("cat/2.jpg", "cat")]
    assert (tmp_path / "out/cat/2.jpg").read_bytes() == (tmp_path / "if/dog/2.jpg").read_bytes()
    assert not (tmp_path / "out/cat/2.jpg").is_symlink()


def test_imagefolder_export_copies_when_a_hard_link_is_impossible(tmp_path, monkeypatch):
    import errno

    _two_class_folder(tmp_path / "if")
    b, root = cl.read_imagefolder(tmp_path / "if")
    (tmp_path / "if/dog/2.jpg").chmod(0o600)

    def no_link(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    snap = snapshot_of(b, root)
    os.remove(root / "cat/1.jpg")  # and a missing image is skipped, said so
    res = cl.write_imagefolder(snap, tmp_path / "out")
    assert res["annotations"] == 1 and res["skipped"] == {"image file missing": 1}
    out = tmp_path / "out/dog/2.jpg"
    assert out.read_bytes() == (tmp_path / "if/dog/2.jpg").read_bytes() and not out.is_symlink()
    assert os.stat(out).st_ino != os.stat(tmp_path / "if/dog/2.jpg").st_ino
    assert out.stat().st_mode & 0o777 == 0o600  # a copy is readable by no one more than the original


def test_import_where_every_image_leaves_the_root_fails_clearly(tmp_path):
    """A folder whose images are all symbolic links out of it (an ImageFolder export by an earlier
    labelreview) imported nothing and said it succeeded: now it fails, the store unchanged (b8)."""
    from conftest import run_cli

    _two_class_folder(tmp_path / "if")
    old = tmp_path / "old-export"
    (old / "cat").mkdir(parents=True)
    os.symlink(tmp_path / "if/cat/1.jpg", old / "cat/1.jpg")
    os.symlink(tmp_path / "if/dog/2.jpg", old / "cat/2.jpg")
    (old / ".labelreview-export").write_text("written by labelreview export\n")
    store = tmp_path / "st"
    assert run_cli("init", str(store)).returncode == 0
    r = run_cli("import", "imagefolder", str(old), "--store", str(store))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "all 2 images (e.g. 'cat/1.jpg') lie outside the image root" in r.stderr
    assert "an ImageFolder export by an earlier labelreview" in r.stderr and "cp -rL" in r.stderr
    (old / ".labelreview-export").unlink()
    r = run_cli("import", "imagefolder", str(old), "--store", str(store))
    assert r.returncode == 1 and "lie outside the image root" in r.stderr and "cp -rL" in r.stderr
    r = run_cli("status", "--store", str(store), "--json")
    assert '"imports": 0' in r.stdout, r.stdout
    # one link out among real images: imported, the link dropped with a warning (as before)
    shutil.copy(tmp_path / "if/dog/2.jpg", tmp_path / "elsewhere.jpg")
    os.symlink(tmp_path / "elsewhere.jpg", tmp_path / "if/cat/3.jpg")
    r = run_cli("import", "imagefolder", str(tmp_path / "if"), "--store", str(store))
    assert r.returncode == 0 and "imported 2 annotations on 2 images" in r.stdout, r.stdout + r.stderr
    assert "escapes the image root" in r.stdout


def test_imagefolder_with_images_naming_another_folder_is_refused(tmp_path):
    """--images would read another folder's class folders, i.e. its labels, not this one's."""
    from labelreview.model import LabelreviewError

    _two_class_folder(tmp_path / "a")
    _two_class_folder(tmp_path / "b")
    with pytest.raises(LabelreviewError, match="class folders are its labels"):
        cl.read_imagefolder(tmp_path / "a", images=tmp_path / "b")
    assert len(cl.read_imagefolder(tmp_path / "a", images=tmp_path / "a")[0].proposals) == 2


def test_imagefolder_export_writes_an_image_once_per_class(tmp_path):
    """Two exported labels of one image with the same class (one accepted, one relabeled to it) wrote
    the image twice into the class folder (dog/4.jpg and dog/4-4.jpg): a duplicated training sample,
    read back as two images. One file per (image, class); its provenance names both labels."""
    import orjson

    b, root = cl.read_csv(A / "kaggle_dataset/image_csv_multi_label/ann.csv")
    snap = snapshot_of(b, root)
    four = [a for a in snap.annotations if snap.image_by_id[a.image_id].file_name.endswith("4.jpg")]
    assert sorted(a.category for a in four) == ["cat", "dog"]
    snap.annotations = four
    next(a for a in four if a.category == "cat").category = "dog"  # relabeled
    res = cl.write_imagefolder(snap, tmp_path / "out")
    files = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.jpg"))
    assert files == ["dog/4.jpg"]
    prov = [orjson.loads(x) for x in (tmp_path / "out/labelreview.provenance.jsonl").read_bytes().splitlines()]
    assert sorted(p["annotation"] for p in prov) == sorted(a.id for a in four)
    assert {p["exported_id"] for p in prov} == {"dog/4.jpg"} and res["annotations"] == 2
    again, _ = cl.read_imagefolder(tmp_path / "out")
    assert [(im.file_name, p.category) for im, p in zip(again.images, again.proposals)] == [("dog/4.jpg", "dog")]
    # the image's two different classes still give one file in each class folder
    four[1].category = "cat" if four[0].category == "dog" else "dog"
    cl.write_imagefolder(snap, tmp_path / "out")
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.jpg")) == [
        "cat/4.jpg", "dog/4.jpg"]


def test_one_hot_csv_claims_no_negative_for_an_image_not_fully_decided(tmp_path):
    """A one-hot row's 0 says "checked, absent": pending and flagged labels that are not exported were
    written as 0, and images never reviewed got an all-zero row. An image with a label not decided is
    now left out (counted); a rejected label is a decided absence (0); --include writes them as 1."""
    import json

    from helpers import run

    store = tmp_path / "st"
    assert run("init", str(store))[0] == 0
    rc, _, err = run("import", "csv", str(A / "kaggle_dataset/image_csv_multi_label/ann.csv"), "--store", str(store))
    assert rc == 0, err

    def do(*argv):
        rc, out, err = run(*argv, "--store", str(store))
        assert rc == 0, err
        return out

    do("accept", "4", "5", "8", "9")  # 4.jpg (dog, cat) and 6.jpg (cat, person)
    do("flag", "6", "--reason", "other")  # 5.jpg: dog flagged ...
    do("accept", "7")  # ... person accepted
    do("reject", "1")  # 1.jpg: its only label (dog) rejected: checked, no class
    out = tmp_path / "out.csv"
    res = json.loads(do("export", "csv", str(out), "--json"))
    assert out.read_text().splitlines() == ["image_name,dog,cat,person", "1.jpg,0,0,0",
                                            "4.jpg,1,1,0", "6.jpg,0,1,1"]
    assert res["layout"] == "one-hot" and res["images"] == 3
    assert res["skipped"] == {"image with a label not decided": 3}  # 2.jpg and 3.jpg pending, 5.jpg flagged
    prov = [json.loads(x) for x in (tmp_path / "out.csv.provenance.jsonl").read_text().splitlines()]
    assert sorted(p["annotation"] for p in prov) == [4, 5, 8, 9]
    # what the export says is what the import reads
    back, _ = cl.read_csv(out, images=A / "kaggle_dataset/image_csv_multi_label/images")
    assert sorted((p.image_key, p.category) for p in back.proposals) == [
        ("4.jpg", "cat"), ("4.jpg", "dog"), ("6.jpg", "cat"), ("6.jpg", "person")]
    assert len(back.images) == 3
    res = json.loads(do("export", "csv", str(out), "--json", "--include", "pending,flagged"))
    assert "skipped" not in res and out.read_text().splitlines()[1:] == [
        "1.jpg,0,0,0", "2.jpg,0,1,0", "3.jpg,0,0,1", "4.jpg,1,1,0",
        "5.jpg,1,0,1", "6.jpg,0,1,1"]


def _cli_store(tmp_path, csv_path):
    """A store with ``csv_path`` imported through the command line; (store, do)."""
    from helpers import run

    store = tmp_path / "st"
    assert run("init", str(store))[0] == 0
    rc, _, err = run("import", "csv", str(csv_path), "--store", str(store))
    assert rc == 0, err

    def do(*argv):
        rc, out, err = run(*argv, "--store", str(store))
        assert rc == 0, err
        return out

    return store, do


def test_multi_label_store_exports_one_hot_when_no_image_has_two_labels_exported(tmp_path):
    """The layout was chosen from the labels being exported: with no image holding two exported
    labels, a multi-label store's CSV came out single-label, writing an image whose other label was
    flagged as "dog only", dropping an image whose labels were all rejected, counting pending images
    as "with no label", and leaving out the columns of classes with no exported label."""
    import json

    _, do = _cli_store(tmp_path, A / "kaggle_dataset/image_csv_multi_label/ann.csv")
    # 1: 1.jpg dog, 2: 2.jpg cat, 3: 3.jpg person, 4/5: 4.jpg dog/cat, 6/7: 5.jpg dog/person, 8/9: 6.jpg cat/person
    do("accept", "1", "4", "6")
    do("reject", "2", "7")  # 2.jpg: all its labels rejected; 5.jpg: person checked absent
    do("flag", "5", "--reason", "other")  # 4.jpg: cat not decided
    out = tmp_path / "m.csv"
    res = json.loads(do("export", "csv", str(out), "--json"))
    assert out.read_text().splitlines() == ["image_name,dog,cat,person", "1.jpg,1,0,0",
                                            "2.jpg,0,0,0", "5.jpg,1,0,0"]
    assert res["layout"] == "one-hot" and res["images"] == 3 and res["categories"] == 3
    assert res["skipped"] == {"image with a label not decided": 3}  # 3.jpg, 6.jpg pending; 4.jpg flagged
    back, _ = cl.read_csv(out, images=A / "kaggle_dataset/image_csv_multi_label/images")
    assert sorted((p.image_key, p.category) for p in back.proposals) == [("1.jpg", "dog"),
                                                                          ("5.jpg", "dog")]
    assert sorted(im.key for im in back.images) == ["1.jpg", "2.jpg", "5.jpg"]
    # --include flagged: 4.jpg's flagged cat is a 1; the person column is there though no person is exported
    res = json.loads(do("export", "csv", str(out), "--json", "--include", "flagged"))
    assert out.read_text().splitlines() == ["image_name,dog,cat,person", "1.jpg,1,0,0",
                                            "2.jpg,0,0,0", "4.jpg,1,1,0", "5.jpg,1,0,0"]
    assert res["skipped"] == {"image with a label not decided": 2}
    # nothing decided yet: a header with every class, every image skipped, no row claiming an absence
    other, do2 = _cli_store(tmp_path / "b", A / "kaggle_dataset/image_csv_multi_label/ann.csv")
    res = json.loads(do2("export", "csv", str(out), "--json"))
    assert out.read_text().splitlines() == ["image_name,dog,cat,person"]
    assert res["layout"] == "one-hot" and res["skipped"] == {"image with a label not decided": 6}


def test_single_label_store_still_exports_single_label_rows(tmp_path):
    """Only data that is multi-label goes one-hot: a single-label store, even with a second source
    whose class differs on an image, writes image_name,label_name as before."""
    import json

    store, do = _cli_store(tmp_path, A / "kaggle_dataset/image_csv/ann.csv")
    first = json.loads(do("ls", "--json"))
    # a second opinion on the first image, of another class
    im, cls = first[0]["file_name"], first[0]["category"]
    other = next(a["category"] for a in first if a["category"] != cls)
    (tmp_path / "pred.csv").write_text(f"image_name,label_name\n{im},{other}\n")
    do("import", "csv", str(tmp_path / "pred.csv"), "--images", str(A / "kaggle_dataset/image_csv/images"),
       "--source", "model")
    do("accept", str(first[0]["id"]), str(first[1]["id"]))
    do("reject", str(first[2]["id"]))
    out = tmp_path / "s.csv"
    res = json.loads(do("export", "csv", str(out), "--json"))
    assert res["layout"] == "single-label"
    assert out.read_text().splitlines() == ["image_name,label_name", f"{im},{cls}",
                                            f"{first[1]['file_name']},{first[1]['category']}"]
    assert res["skipped"] == {"image with no label": 3}


def test_csv_backslash_is_a_windows_separator_only_when_no_file_has_the_name_as_written(tmp_path):
    """Every backslash of a CSV's image name was read as '/': right for a CSV written on Windows
    (train\\cat\\1.jpg), silently wrong on Linux, where a\\b.jpg can be a file of its own: its label
    went to the other picture a/b.jpg, and the real file was reported "not in the CSV". The name as
    written is looked for first; a name that also reads as another image says which was taken."""
    import json

    from PIL import Image as PILImage

    from helpers import run

    imgs = tmp_path / "imgs"
    (imgs / "a").mkdir(parents=True)
    (imgs / "train" / "cat").mkdir(parents=True)
    for name, colour in (("a\\b.jpg", (255, 0, 0)), ("a/b.jpg", (0, 255, 0)), ("c\\d.jpg", (0, 0, 255)),
                         ("train/cat/1.jpg", (9, 9, 9)), (".e.jpg", (1, 2, 3)), ("e.jpg", (3, 2, 1))):
        PILImage.new("RGB", (8, 8), colour).save(imgs / name)
    csv = tmp_path / "labels.csv"
    csv.write_text("image_name,label_name\n"
                   "a\\b.jpg,cat\n"  # a Linux file named a\b.jpg (and a/b.jpg is another picture)
                   "c\\d.jpg,dog\n"  # only the file named so
                   "train\\cat\\1.jpg,cat\n"  # written on Windows
                   "a/b.jpg,bird\n"
                   "./.e.jpg,fish\n")  # a hidden file, named with ./ in front: not e.jpg
    store = tmp_path / "st"
    assert run("init", str(store))[0] == 0
    rc, out, err = run("import", "csv", str(csv), "--images", str(imgs), "--store", str(store), "--json")
    assert rc == 0, err
    result = json.loads(out)
    rc, out, err = run("ls", "--json", "--store", str(store))
    got = sorted((a["file_name"], a["category"]) for a in json.loads(out))
    assert got == [(".e.jpg", "fish"), ("a/b.jpg", "bird"), ("a\\b.jpg", "cat"), ("c\\d.jpg", "dog"),
                   ("train/cat/1.jpg", "cat")]
    problems = [(w["where"], w["problem"]) for w in result["warnings"]]
    assert ("labels.csv line 2", "'a\\\\b.jpg' names the file 'a\\\\b.jpg'; 'a/b.jpg' (the name read as a "
            "Windows path) is also an image here, not taken") in problems
    assert not [(where, p) for where, p in problems
                if "not found" in p or "missing" in p or ("not in labels.csv" in p and where != "e.jpg")], problems


def test_one_hot_csv_with_at_most_one_class_per_row_exports_one_hot_with_its_empty_rows(tmp_path):
    """A one-hot CSV whose rows each set at most one class was taken for single-label data: the export
    wrote image_name,label_name rows, and an image whose row was all zeros (checked: none of these
    classes, a negative sample) was left out ("image with no label"): imported again, it was gone.
    A one-hot CSV is multi-label data: it exports one-hot, its empty rows with it."""
    import json

    from PIL import Image as PILImage

    d = tmp_path / "ds"
    d.mkdir()
    for n in "abc":
        PILImage.new("RGB", (8, 8)).save(d / f"{n}.jpg")
    (d / "labels.csv").write_text("image_name,cat,dog\na.jpg,1,0\nb.jpg,0,1\nc.jpg,0,0\n")
    _, do = _cli_store(tmp_path, d / "labels.csv")
    do("accept", "1", "2")
    out = tmp_path / "out.csv"
    res = json.loads(do("export", "csv", str(out), "--json"))
    assert out.read_text().splitlines() == ["image_name,cat,dog", "a.jpg,1,0", "b.jpg,0,1", "c.jpg,0,0"]
    assert res["layout"] == "one-hot" and res["images"] == 3 and "skipped" not in res
    back, _ = cl.read_csv(out, images=d)
    assert sorted(im.key for im in back.images) == ["a.jpg", "b.jpg", "c.jpg"]
    assert sorted((p.image_key, p.category) for p in back.proposals) == [("a.jpg", "cat"), ("b.jpg", "dog")]


def _one_class_csv(tmp_path):
    from PIL import Image as PILImage

    d = tmp_path / "ds"
    d.mkdir()
    for n in "abc":
        PILImage.new("RGB", (8, 8)).save(d / f"{n}.jpg")
    (d / "labels.csv").write_text("image,cat\na.jpg,1\nb.jpg,0\nc.jpg,1\n")
    return d


def _import(store, *argv):
    import json

    from helpers import run

    rc, out, err = run("import", *map(str, argv), "--store", str(store), "--json")
    return rc, (json.loads(out) if rc == 0 else err)


def _labels(store):
    import json

    from helpers import run

    rc, out, err = run("ls", "--json", "--store", str(store))
    assert rc == 0, err
    return sorted((a["file_name"], a["category"]) for a in json.loads(out))


def test_one_hot_csv_of_one_class_is_read_as_that_class_not_as_labels_0_and_1(tmp_path):
    """`image,cat` with 0/1 values (a one-hot CSV of one class, as the one-hot export of a store of one
    class writes it) was read as a column of labels: every image labelled "0" or "1", no class "cat".
    It is the class "cat", set where the value is 1, and a multi-label (one-hot) import whose rows of
    zeros are kept as checked negatives; the guess is said, with how to read it the other way."""
    import json

    from helpers import run

    d = _one_class_csv(tmp_path)
    store = tmp_path / "st"
    assert run("init", str(store))[0] == 0
    rc, res = _import(store, "csv", d / "labels.csv")
    assert rc == 0, res
    assert _labels(store) == [("a.jpg", "cat"), ("c.jpg", "cat")] and res["images"] == 3
    assert [(w["where"], w["problem"]) for w in res["warnings"]] == [
        ("labels.csv line 1", "column 'cat' holds only 0 and 1: read as one one-hot class, 'cat', set on the "
         "images whose value is 1; if 0 and 1 are class names, import the file as csv-labels")]
    rc, out, err = run("accept", "1", "2", "--store", str(store))
    assert rc == 0, err
    rc, out, err = run("export", "csv", str(tmp_path / "out.csv"), "--store", str(store), "--json")
    assert rc == 0, err
    assert json.loads(out)["layout"] == "one-hot"
    assert (tmp_path / "out.csv").read_text().splitlines() == ["image_name,cat", "a.jpg,1", "b.jpg,0", "c.jpg,1"]
    # read back as written, into the same store (which knows the class: no word) ...
    rc, res = _import(store, "csv", tmp_path / "out.csv", "--images", d, "--source", "again")
    assert rc == 0, res
    assert res["warnings"] == [] and res["annotations"] == 2
    # ... or another
    other = tmp_path / "st2"
    assert run("init", str(other))[0] == 0
    rc, res = _import(other, "csv", tmp_path / "out.csv", "--images", d)
    assert rc == 0, res
    assert _labels(other) == [("a.jpg", "cat"), ("c.jpg", "cat")]
    # said the other way, the values are the labels
    third = tmp_path / "st3"
    assert run("init", str(third))[0] == 0
    rc, res = _import(third, "csv-labels", d / "labels.csv")
    assert rc == 0, res
    assert _labels(third) == [("a.jpg", "1"), ("b.jpg", "0"), ("c.jpg", "1")] and res["warnings"] == []


@pytest.mark.parametrize("classes,header,fmt,expected", [
    # the store's classes say which, without a word
    (["cat"], "image,cat", "csv", [("a.jpg", "cat"), ("c.jpg", "cat")]),
    (["0", "1"], "image,cat", "csv", [("a.jpg", "1"), ("b.jpg", "0"), ("c.jpg", "1")]),
    # a column named as a label column holds labels, as ever (a Kaggle binary task's id,label) ...
    ([], "image,label", "csv", [("a.jpg", "1"), ("b.jpg", "0"), ("c.jpg", "1")]),
    # ... unless the store has that class and not the labels (the one-hot export of a class "label")
    (["label"], "image_name,label", "csv", [("a.jpg", "label"), ("c.jpg", "label")]),
    # both: the import fails, asking which; said, it is read so
    (["cat", "0", "1"], "image,cat", "csv", "column 'cat' holds only 0 and 1, and the store has a class 'cat' "
     "and a class '0': import the file as csv-onehot (one class 'cat', set where the value is 1) or as "
     "csv-labels (its values are the classes)"),
    (["cat", "0", "1"], "image,cat", "csv-onehot", [("a.jpg", "cat"), ("c.jpg", "cat")]),
    (["cat", "0", "1"], "image,label", "csv-onehot", [("a.jpg", "label"), ("c.jpg", "label")]),
    (["cat", "0", "1"], "image,cat", "csv-labels", [("a.jpg", "1"), ("b.jpg", "0"), ("c.jpg", "1")]),
])
def test_one_column_of_0_and_1_is_told_by_the_store_classes_or_said(tmp_path, classes, header, fmt, expected):
    from helpers import run

    d = _one_class_csv(tmp_path)
    (d / "labels.csv").write_text(header + "\na.jpg,1\nb.jpg,0\nc.jpg,1\n")
    store = tmp_path / "st"
    assert run("init", str(store))[0] == 0
    toml = store / "labelreview.toml"
    toml.write_text(toml.read_text().replace("classes = []", f"classes = {classes!r}".replace("'", '"')))
    rc, res = _import(store, fmt, d / "labels.csv")
    if isinstance(expected, str):
        assert rc != 0 and f"labels.csv: line 1: {expected}" in res
        assert _labels(store) == []
        return
    assert rc == 0, res
    assert _labels(store) == expected and res["warnings"] == []


def test_csv_labels_needs_a_label_column_it_can_find(tmp_path):
    (tmp_path / "a.csv").write_text("image_name,dog,cat\n1.jpg,1,0\n")
    with pytest.raises(InputError, match="a.csv: line 1: no label column among image_name, dog, cat: name it "
                                         "label_name"):
        cl.read_csv(tmp_path / "a.csv", layout="labels")
    b, _ = cl.read_csv(tmp_path / "a.csv", layout="one-hot")
    assert [(p.image_key, p.category) for p in b.proposals] == [("1.jpg", "dog")]


def test_a_tags_column_of_space_separated_classes_is_multi_label(tmp_path):
    """Kaggle's Planet layout (image_name,tags with "haze primary"): the tags were one class named
    "haze primary". Each tag is now a label of the image, and the data is multi-label."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    for n in ("train_0", "train_1"):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / f"{n}.jpg")
    (tmp_path / "train.csv").write_text("image_name,tags\ntrain_0,haze primary\ntrain_1,clear  primary water\n")
    batch, _root = cl.read_csv(tmp_path / "train.csv")
    got = sorted((p.image_key, p.category) for p in batch.proposals)
    assert got == [("train_0.jpg", "haze"), ("train_0.jpg", "primary"), ("train_1.jpg", "clear"),
                   ("train_1.jpg", "primary"), ("train_1.jpg", "water")]
    assert sorted(c.name for c in batch.categories) == ["clear", "haze", "primary", "water"]
    assert len({p.source_id for p in batch.proposals}) == 5 and not batch.warnings
    # A label column of another name keeps a class with a space whole ("traffic light").
    (tmp_path / "one.csv").write_text("image_name,label\ntrain_0,traffic light\n")
    assert [p.category for p in cl.read_csv(tmp_path / "one.csv")[0].proposals] == ["traffic light"]
