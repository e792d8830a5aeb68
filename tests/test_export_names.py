"""Exports name their files after the images and classes they hold. Names that meet (a/x.png and
b/x.png, img.png and img.jpg), names a format cannot hold and names too long for the file system
were found by fuzzing: an ImageFolder export copied one picture over another (the user's own
file), VOC wrote one image's XML over another's, YOLO wrote label files nothing reads. Each now
exports every label under a name of its own, or leaves it out and says so, or refuses before
writing anything."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from helpers import run


def _images(root: Path, *names: str) -> None:
    for i, name in enumerate(names):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (40 * i, 255 - 40 * i, 7)).save(p)


def _store_of(tmp_path: Path, images: list[str], labels: list[tuple[str, str]], name: str = "store",
              boxes: bool = True) -> Path:
    """A store with one COCO import of a box (or an image label) per (image, class), every label accepted."""
    cats = list(dict.fromkeys(c for _, c in labels))
    doc = {"images": [{"id": i, "file_name": f, "width": 40, "height": 30} for i, f in enumerate(images, 1)],
           "categories": [{"id": i, "name": c} for i, c in enumerate(cats, 1)],
           "annotations": [{"id": k, "image_id": images.index(f) + 1, "category_id": cats.index(c) + 1,
                            **({"bbox": [1 + k, 2, 10, 8]} if boxes else {})}
                           for k, (f, c) in enumerate(labels, 1)]}
    (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    store = tmp_path / name
    assert run("init", store)[0] == 0
    rc, out, err = run("import", "coco", tmp_path / f"{name}.json", "--images", tmp_path / "imgs", "--store", store)
    assert rc == 0, out + err
    assert run("accept", *[str(k) for k in range(1, len(labels) + 1)], "--store", store)[0] == 0
    return store


def _reimport(tmp_path: Path, fmt: str, out: Path) -> list[dict]:
    back = tmp_path / f"back-{out.name}"
    assert run("init", back)[0] == 0
    images = [] if fmt == "imagefolder" else ["--images", tmp_path / "imgs"]  # (an ImageFolder holds its images)
    rc, o, err = run("import", fmt, out, *images, "--store", back)
    assert rc == 0, o + err
    return json.loads(run("ls", "--json", "--store", back)[1])


def _md5s(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_imagefolder_never_writes_over_a_picture_whose_name_a_renamed_one_takes(tmp_path):
    # b/x.png meets a/x.png in cat/ and was renamed 3-x.png, the name of a real picture placed there
    # already (a hard link to the user's own file): copied onto it, it replaced the original.
    names = ["3-x.png", "a/x.png", "b/x.png"]
    _images(tmp_path / "imgs", *names)
    store = _store_of(tmp_path, names, [(n, "cat") for n in names], boxes=False)
    before = _md5s(tmp_path / "imgs")
    rc, out, err = run("export", "imagefolder", tmp_path / "out", "--store", store)
    assert rc == 0, err
    assert _md5s(tmp_path / "imgs") == before  # the user's pictures are as they were
    files = sorted(p.name for p in (tmp_path / "out" / "cat").iterdir())
    assert len(files) == 3 and len({hashlib.md5((tmp_path / "out" / "cat" / f).read_bytes()).hexdigest()
                                    for f in files}) == 3  # three pictures, none twice
    assert len(_reimport(tmp_path, "imagefolder", tmp_path / "out")) == 3


def test_voc_gives_each_image_its_own_annotation_file(tmp_path):
    names = ["x-3.png", "a/x.png", "b/x.png"]
    _images(tmp_path / "imgs", *names)
    store = _store_of(tmp_path, names, [("x-3.png", "cat"), ("a/x.png", "dog"), ("b/x.png", "dog")])
    rc, out, err = run("export", "voc", tmp_path / "out", "--store", store)
    assert rc == 0, err
    assert len(list((tmp_path / "out" / "Annotations").glob("*.xml"))) == 3
    back = _reimport(tmp_path, "voc", tmp_path / "out")
    assert sorted((a["file_name"], a["category"]) for a in back) == [("a/x.png", "dog"), ("b/x.png", "dog"),
                                                                      ("x-3.png", "cat")]


def test_yolo_leaves_out_an_image_whose_label_file_another_has_and_says_so(tmp_path):
    # img.png and img.jpg both have labels/img.txt by Ultralytics' rule: the second went to a file
    # nothing reads, and Ultralytics (and the import) gave img.jpg the labels of img.png.
    _images(tmp_path / "imgs", "img.png", "img.jpg")
    store = _store_of(tmp_path, ["img.png", "img.jpg"], [("img.png", "cat"), ("img.jpg", "dog")])
    rc, out, err = run("export", "yolo", tmp_path / "out", "--store", store)
    assert rc == 0, err
    assert "label file shared with another image (YOLO finds one label file per image name): img.jpg" in out
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.txt")) == ["img.txt", "train.txt"]
    # the split lists the images it holds, so that Ultralytics does not read img.jpg with img.png's labels
    data = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert data["train"] == "train.txt"
    assert (tmp_path / "out" / "train.txt").read_text() == "./images/img.png\n"
    assert [(a["file_name"], a["category"]) for a in _reimport(tmp_path, "yolo", tmp_path / "out")] == [
        ("img.png", "cat")]


def test_yolo_class_names_outside_the_basic_plane_read_back_whole(tmp_path):
    # data.yaml had "cat\ud83d\ude00" (JSON's escapes), which YAML reads as two lone surrogates
    _images(tmp_path / "imgs", "a.png")
    names = ["cat\U0001F600", "née", "a\x1bb", "yes"]
    store = _store_of(tmp_path, ["a.png"], [("a.png", n) for n in names])
    assert run("export", "yolo", tmp_path / "out", "--store", store)[0] == 0
    assert list(yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())["names"].values()) == names
    assert sorted(a["category"] for a in _reimport(tmp_path, "yolo", tmp_path / "out")) == sorted(names)


@pytest.mark.parametrize("fmt, cls, message", [
    ("imagefolder", ".hidden", "class '.hidden' cannot be a folder name (a hidden folder"),
    ("imagefolder", "labelreview.provenance.jsonl", "it is the name of the export's provenance file"),
    ("csv", "image_name", "a class is named 'image_name', the name of the image column of a one-hot CSV"),
])
def test_a_class_the_format_cannot_hold_is_refused_before_anything_is_written(tmp_path, fmt, cls, message):
    _images(tmp_path / "imgs", "a.png")
    labels = [("a.png", cls), ("a.png", "cat")] if fmt == "csv" else [("a.png", cls)]  # (two: one-hot)
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
           "categories": [{"id": i, "name": c} for i, (_, c) in enumerate(labels, 1)],
           "annotations": [{"id": i, "image_id": 1, "category_id": i} for i in range(1, len(labels) + 1)]}
    (tmp_path / "in.json").write_text(json.dumps(doc))
    store = tmp_path / "store"
    run("init", store)
    assert run("import", "coco", tmp_path / "in.json", "--images", tmp_path / "imgs", "--store", store)[0] == 0
    run("accept", *[str(i) for i in range(1, len(labels) + 1)], "--store", store)
    out = tmp_path / ("out.csv" if fmt == "csv" else "out")
    rc, _, err = run("export", fmt, out, "--store", store)
    assert rc == 1 and message in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_a_blank_class_name_is_named_by_its_id_at_import(tmp_path):
    # (every other format reads names stripped: a class " " exported to YOLO or CSV could not come back)
    _images(tmp_path / "imgs", "a.png")
    store = _store_of(tmp_path, ["a.png"], [("a.png", " ")])
    assert [a["category"] for a in json.loads(run("ls", "--json", "--store", store)[1])] == ["category-1"]
    rc, out, err = run("export", "csv-boxes", tmp_path / "out.csv", "--store", store)
    assert rc == 0 and [a["category"] for a in _reimport(tmp_path, "csv-boxes", tmp_path / "out.csv")] == ["category-1"]


@pytest.mark.parametrize("fmt", ["coco", "csv-boxes"])
def test_an_output_name_too_long_for_what_is_written_beside_it_is_refused_first(tmp_path, fmt):
    # a 235-byte name: the export was written, then its provenance file's name was too long
    _images(tmp_path / "imgs", "a.png")
    store = _store_of(tmp_path, ["a.png"], [("a.png", "cat")])
    out = tmp_path / ("p" * 235)
    rc, _, err = run("export", fmt, out, "--store", store)
    assert rc == 1 and "the name is too long" in err and "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "store", "store.json"]


def test_yolo_leaves_out_images_no_yolo_reader_lists_and_says_so(tmp_path):
    # (no image extension, or hidden: their label files were written and never read)
    _images(tmp_path / "imgs", "a.png", ".hidden.png", "sub/.h/b.png")
    Image.new("RGB", (40, 30)).save(tmp_path / "imgs" / "noext", format="PNG")
    names = ["a.png", ".hidden.png", "sub/.h/b.png", "noext"]
    store = _store_of(tmp_path, names, [(n, "cat") for n in names])
    rc, out, err = run("export", "yolo", tmp_path / "out", "--store", store)
    assert rc == 0, err
    assert ("images left out of the export, image name a YOLO reader does not list (no image extension, or a "
            "hidden file or folder): .hidden.png, sub/.h/b.png, noext") in out
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.txt")) == [
        "labels/a.txt", "train.txt"]
    assert [a["file_name"] for a in _reimport(tmp_path, "yolo", tmp_path / "out")] == ["a.png"]
