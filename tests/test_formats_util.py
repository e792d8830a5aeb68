"""Helpers for the format tests (snapshots made straight from a batch, geometry comparison), and the
tests of the shared pieces: image header sizes, atomic folder exports, format detection."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image as PILImage, ImageOps

from conftest import CORPUS, SAMPLE
from labelreview.formats.snapshot import Snapshot
from labelreview.model import Annotation, Image, LabelreviewError

TOL = 0.01  # px: round trips keep every coordinate within this


def snapshot_of(batch, root, status: str = "accepted") -> Snapshot:
    """What an export of a store holding just ``batch`` (every label accepted) would be handed."""
    images, id_of = [], {}
    for i, r in enumerate(batch.images, 1):
        images.append(Image(id=i, import_id="t", file_name=r.file_name, path=str(Path(root) / r.file_name),
                            width=r.width, height=r.height, sha256=None, source_id=r.source_id,
                            extra=dict(r.extra or {})))
        id_of[r.key] = i
    anns = []
    for j, p in enumerate(batch.proposals, 1):
        anns.append(Annotation(id=j, image_id=id_of[p.image_key], category=p.category, status=status, kind=p.kind,
                               bbox=p.bbox, segmentation=p.segmentation, keypoints=p.keypoints, score=p.score,
                               iscrowd=p.iscrowd, area=p.area, source="t", source_id=p.source_id, import_id="t",
                               extra=dict(p.extra or {}), scores=p.scores))
    return Snapshot(images=images, annotations=anns, categories=list(batch.categories), info=dict(batch.info or {}),
                    image_by_id={im.id: im for im in images})


def by_image(batch) -> dict[str, list]:
    names = {im.key: im.file_name for im in batch.images}
    out: dict[str, list] = {im.file_name: [] for im in batch.images}
    for p in batch.proposals:
        out[names[p.image_key]].append(p)
    return out


def close(a, b, tol: float = TOL) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return len(a) == len(b) and all(math.isclose(x, y, abs_tol=tol) for x, y in zip(a, b))


def assert_same_labels(before, after, tol: float = TOL, kinds: bool = True) -> None:
    """Same images, and per image the same labels in the same order: class, kind and geometry."""
    a, b = by_image(before), by_image(after)
    assert sorted(a) == sorted(b)
    for name in a:
        pa, pb = a[name], b[name]
        assert len(pa) == len(pb), (name, len(pa), len(pb))
        for x, y in zip(pa, pb):
            assert x.category == y.category, (name, x, y)
            if kinds:
                assert x.kind == y.kind, (name, x.kind, y.kind)
            assert close(x.bbox, y.bbox, tol), (name, x.bbox, y.bbox)
            if isinstance(x.segmentation, list):
                assert len(x.segmentation) == len(y.segmentation)
                for s, t in zip(x.segmentation, y.segmentation):
                    assert close(s, t, tol), (name, s, t)
            if x.keypoints is not None:
                assert close(x.keypoints, y.keypoints, tol), (name, x.keypoints, y.keypoints)


# ---------------------------------------------------------------------- image sizes


def test_image_size_matches_pillow_exif_transpose(tmp_path):
    from labelreview.formats.images import image_size

    files = [p for p in CORPUS.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    files += list((SAMPLE / "images").iterdir())
    for o in range(1, 9):
        for fmt in ("JPEG", "PNG"):
            ex = PILImage.Exif()
            ex[0x0112] = o
            p = tmp_path / f"o{o}.{fmt.lower()}"
            PILImage.new("RGB", (7, 3)).save(p, fmt, exif=ex.tobytes())
            files.append(p)
    p = tmp_path / "x.bmp"
    PILImage.new("RGB", (9, 4)).save(p)
    files.append(p)
    assert len(files) > (40 if CORPUS.exists() else 20)  # without the shared corpus: sample + generated
    for f in files:
        with PILImage.open(f) as im:
            assert image_size(f) == ImageOps.exif_transpose(im).size, f


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n\0\0", b"not an image at all"])
def test_image_size_of_broken_files_is_a_problem_not_a_crash(tmp_path, data):
    from labelreview.formats.images import ImageProblem, image_size

    p = tmp_path / "bad.jpg"
    p.write_bytes(data)
    with pytest.raises(ImageProblem):
        image_size(p)
    with pytest.raises(ImageProblem, match="missing"):
        image_size(tmp_path / "nope.jpg")


# ---------------------------------------------------------------------- folder exports


def test_folder_export_never_replaces_a_folder_it_did_not_write(tmp_path):
    from labelreview.formats.common import FolderExport

    user = tmp_path / "dataset"
    user.mkdir()
    (user / "precious.jpg").write_bytes(b"x")
    with pytest.raises(LabelreviewError, match="not written by a labelreview export"):
        FolderExport(user)
    assert (user / "precious.jpg").exists()
    out = tmp_path / "out"
    with FolderExport(out) as fx:
        fx.write("a/b.txt", "1")
        fx.commit()
    with FolderExport(out) as fx:  # a previous export is replaced whole
        fx.write("c.txt", "2")
        fx.commit()
    assert (out / "c.txt").read_text() == "2" and not (out / "a").exists()
    with pytest.raises(RuntimeError):  # a failure half-way leaves the last export as it was
        with FolderExport(out) as fx:
            fx.write("d.txt", "3")
            raise RuntimeError("disk full")
    assert (out / "c.txt").exists() and not (out / "d.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("fmt,name", [("coco", "out.json"), ("csv", "out.csv"), ("yolo", "out"), ("voc", "out"),
                                      ("semantic", "out"), ("imagefolder", "out")])
def test_an_export_gets_the_modes_a_new_file_gets_under_the_umask(tmp_path, fmt, name):
    """Exports were written to a mkstemp file / mkdtemp folder and renamed: 0600 and 0700 whatever the
    umask, so the group a store is shared with could not read an export of it. Written atomically
    still (no temporary name left), an export now has 0666 / 0777 less the umask, a replacing
    export too."""
    import os
    import stat

    from helpers import run

    store = tmp_path / "s"
    old = os.umask(0o027)  # neither 022 nor 077: the modes must come from the umask, not be fixed
    try:
        assert run("init", store)[0] == 0
        assert run("import", "coco", SAMPLE / "proposals.json", "--images", SAMPLE / "images", "--store", store)[0] == 0
        assert run("accept", "1", "2", "3", "--store", store)[0] == 0
        exp = tmp_path / "exp"
        exp.mkdir()
        for _ in range(2):  # a first export, then one replacing it
            rc, _, err = run("export", fmt, exp / name, "--store", store)
            assert rc == 0, err
    finally:
        os.umask(old)
    modes = {}
    for dirpath, dirnames, filenames in os.walk(exp):
        for n in dirnames + filenames:
            path = Path(dirpath, n)
            modes[str(path.relative_to(exp))] = oct(stat.S_IMODE(path.lstat().st_mode))
    assert name in modes and (f"{name}.provenance.jsonl" in modes if name.endswith(("json", "csv"))
                              else f"{name}/labelreview.provenance.jsonl" in modes)
    want = {k: oct(0o750 if (exp / k).is_dir() else 0o640) for k in modes}
    assert modes == want
    assert not [k for k in modes if k.startswith(".")]  # no temporary file or folder left beside it


# ---------------------------------------------------------------------- detection


DETECT = [
    ("datumaro_cvat/tests/assets/yolo_dataset/yolo", "yolo"),
    ("datumaro_cvat/tests/assets/yolo_dataset/yolov8_detection", "yolo"),
    ("datumaro_cvat/tests/assets/yolo_dataset/yolov8_pose/data.yaml", "yolo"),
    ("label_studio_converter/tests/data/test_import_yolo_data", "yolo"),
    ("datumaro_openvino/tests/assets/roboflow_dataset/yolo", "yolo"),
    ("datumaro_openvino/tests/assets/coco_dataset/coco/annotations/instances_val.json", "coco"),
    ("cocoapi/results/instances_val2014_fakebbox100_results.json", "coco"),
]


@pytest.mark.parametrize("rel,fmt", DETECT)
def test_detect(rel, fmt):
    from labelreview.formats.registry import detect

    p = CORPUS / rel
    if not p.exists():
        pytest.skip("corpus absent")
    assert detect(p) == fmt


def test_detect_refuses_what_it_cannot_tell(tmp_path):
    from labelreview.formats.registry import detect

    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LabelreviewError, match="cannot tell the format"):
        detect(tmp_path)
    with pytest.raises(LabelreviewError, match="no such file"):
        detect(tmp_path / "missing")


# ---------------------------------------------------------------------- through a real store


def store_round_trip(tmp_path, fmt: str, path, images=None, out_fmt: str | None = None, out_name: str = "out",
                     reread_images=None):
    """import -> store -> export (pending included) -> import the export: (first batch, second batch)."""
    from types import SimpleNamespace

    from labelreview.formats import registry
    from labelreview.formats.snapshot import snapshot_from_store
    from labelreview.store import Store

    root = Store.init(tmp_path / "store", name="t")
    args = SimpleNamespace(images=str(images) if images else None, gt=None)
    with Store.open(root) as store:
        got, batch = registry.read(fmt, path, args, store)
        image_root = args.images or registry.default_image_root(got, path)
        store.ingest(batch, source="first", image_root=image_root)
        snap = snapshot_from_store(store, ("pending",))
        out = tmp_path / out_name
        result = registry.write(out_fmt or fmt, snap, out, args)
        args2 = SimpleNamespace(images=str(reread_images or image_root), gt=None)
        _, again = registry.read(out_fmt or fmt, out, args2, store)
    return batch, again, result


@pytest.mark.parametrize("name", ["../../escaped", "person/rider", "..", ""])
def test_a_class_that_is_not_a_folder_name_is_refused_by_the_folder_export(tmp_path, name):
    # A class name is a folder of the ImageFolder export: "../../x" wrote links outside it, and
    # "person/rider" nested a folder the importer reads back as another class.
    from PIL import Image as PILImage

    from labelreview.formats import classification as cl
    from labelreview.model import ImageRecord, ImportBatch, LabelreviewError, Proposal

    images = tmp_path / "imgs"
    images.mkdir()
    PILImage.new("RGB", (8, 8)).save(images / "a.jpg")
    batch = ImportBatch(format="t", source_file="t",
                        images=[ImageRecord(key=1, file_name="a.jpg", width=8, height=8)],
                        proposals=[Proposal(image_key=1, category=name, kind="label")], categories=[])
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(LabelreviewError, match="cannot be a folder name"):
        cl.write_imagefolder(snapshot_of(batch, images), work / "out")
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "work"]


@pytest.mark.parametrize("rel", ["../x.txt", "a/../../x.txt", "/tmp/x.txt", "a//b.txt", "./x.txt"])
def test_a_folder_export_never_writes_outside_itself(tmp_path, rel):
    from labelreview.formats.common import FolderExport
    from labelreview.model import LabelreviewError

    with pytest.raises(LabelreviewError, match="inside the export folder"):
        with FolderExport(tmp_path / "out") as fx:
            fx.write(rel, "x")
    assert list(tmp_path.iterdir()) == []  # neither the export nor its scratch folder is left


def apple_double() -> bytes:
    """What macOS writes as '._name' beside a file copied from its disks (AppleDouble: magic 0x00051607)."""
    import struct

    return struct.pack(">II", 0x00051607, 0x00020000) + b"Mac OS X        " + b"\0" * 60


_VOC_XML = ("<annotation><filename>{}</filename><size><width>20</width><height>10</height><depth>3</depth></size>"
            "<object><name>car</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>8</xmax><ymax>8</ymax></bndbox>"
            "</object></annotation>")
_HIDDEN = "hidden file (its name starts with '.'): skipped"
_APPLE = "macOS AppleDouble file(s) ('._' + a file's name: Finder metadata, not images or labels) skipped"


def _hidden_dataset(fmt: str, d: Path) -> tuple[Path, list[tuple[str, str]]]:
    """A dataset of ``fmt`` in ``d`` with one image (and its labels) to import, a hidden one beside it,
    and macOS AppleDouble files: (what to import, the warnings expected)."""
    import shutil

    if fmt == "voc":
        for sub in ("Annotations", "JPEGImages"):
            (d / sub).mkdir(parents=True)
        for n in ("a", ".h"):
            PILImage.new("RGB", (20, 10)).save(d / f"JPEGImages/{n}.jpg")
            (d / f"Annotations/{n}.xml").write_text(_VOC_XML.format(f"{n}.jpg"))
        (d / "Annotations/._a.xml").write_bytes(apple_double())  # not XML: it failed the whole import
        (d / "JPEGImages/._a.jpg").write_bytes(apple_double())
        how = "; rename it to import it"
        return d, [("Annotations/.h.xml", _HIDDEN + how), ("JPEGImages/.h.jpg", _HIDDEN + how),
                   (d.name, f"2 {_APPLE}, e.g. Annotations/._a.xml")]
    if fmt == "voc-folder":  # a folder of XML files beside their images (LabelImg)
        d.mkdir(parents=True)
        for n in ("a", ".h"):
            PILImage.new("RGB", (20, 10)).save(d / f"{n}.jpg")
            (d / f"{n}.xml").write_text(_VOC_XML.format(f"{n}.jpg"))
        (d / "._a.xml").write_bytes(apple_double())
        how = "; rename it to import it"
        return d, [(".h.xml", _HIDDEN + how), (".h.jpg", _HIDDEN + how), (d.name, f"1 {_APPLE}, e.g. ._a.xml")]
    if fmt in ("csv", "imagefolder"):
        (d / "cat").mkdir(parents=True)
        for n in ("a", ".h"):
            PILImage.new("RGB", (8, 8)).save(d / f"cat/{n}.jpg")
        (d / "cat/._a.jpg").write_bytes(apple_double())
        if fmt == "csv":
            (d / "labels.csv").write_text("image_name,label_name\ncat/a.jpg,cat\n")
            return d / "labels.csv", [("cat/.h.jpg", _HIDDEN + "; not in labels.csv (a row naming it imports it)"),
                                      ("labels.csv", f"1 {_APPLE}, e.g. cat/._a.jpg")]
        return d, [("cat/.h.jpg", _HIDDEN + "; rename it to import it (torchvision's ImageFolder does read it)"),
                   (d.name, f"1 {_APPLE}, e.g. cat/._a.jpg")]
    assert fmt == "semantic"
    src = CORPUS / "datumaro_openvino/tests/assets/common_semantic_segmentation_dataset/dataset"
    shutil.copytree(src, d)
    for sub in ("images", "masks"):
        (d / sub / "0002.png").rename(d / sub / ".h.png")
        (d / sub / "._0001.png").write_bytes(apple_double())
    how = "; rename it to import it"
    return d, [(".h.png", _HIDDEN + how), ("masks/.h.png", _HIDDEN + how),
               (d.name, f"2 {_APPLE}, e.g. ._0001.png")]


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus absent")
@pytest.mark.parametrize("fmt", ["voc", "voc-folder", "csv", "imagefolder", "semantic"])
def test_hidden_files_are_skipped_and_said_by_every_reader_that_walks_a_folder(tmp_path, fmt):
    """Files whose names start with '.' were passed over without a word by the VOC, CSV, ImageFolder
    and semantic readers (VOC's Annotations/ even read them: a macOS AppleDouble '._a.xml' failed the
    whole import as "not well-formed XML"). As the YOLO reader does: a warning per hidden file, and
    one counting the AppleDouble files (Finder metadata beside every file copied from a Mac)."""
    import json

    from helpers import run

    path, expected = _hidden_dataset(fmt, tmp_path / "ds")
    store = tmp_path / "st"
    assert run("init", str(store))[0] == 0
    rc, out, err = run("import", fmt.split("-")[0], str(path), "--store", str(store), "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert [(w["where"], w["problem"]) for w in result["warnings"] if "hidden" in w["problem"]
            or "AppleDouble" in w["problem"]] == expected
    assert all(w["action"] == "skipped" for w in result["warnings"] if "hidden" in w["problem"])
    rc, out, err = run("ls", "--json", "--store", str(store))
    assert not [a for a in json.loads(out) if "/." in "/" + a["file_name"]]  # nothing hidden imported
    assert json.loads(out), "the visible image's labels are imported"


@pytest.mark.parametrize("fmt", ["csv", "voc", "cvat"])
def test_a_folder_copied_from_a_mac_is_detected_and_read_as_without_its_appledouble_files(tmp_path, fmt):
    """A folder holding labels.csv and the '._labels.csv' macOS writes beside it had "2 CSV files"
    (`import csv FOLDER`, `import auto FOLDER`: "cannot tell the format"); a folder of VOC XML files
    with '._a.xml' (not XML) was not recognised either, nor a CVAT export folder with its
    '._annotations.xml'. Hidden files are no part of a dataset, as for the files a reader walks."""
    import json

    from helpers import run

    d = tmp_path / "ds"
    d.mkdir()
    PILImage.new("RGB", (20, 10)).save(d / "a.jpg")
    name = {"csv": "labels.csv", "voc": "a.xml", "cvat": "annotations.xml"}[fmt]
    (d / name).write_text({
        "csv": "image_name,label_name\na.jpg,cat\n",
        "voc": _VOC_XML.format("a.jpg"),
        "cvat": '<annotations><version>1.1</version><image id="0" name="a.jpg" width="20" height="10">'
                '<box label="cat" xtl="2" ytl="2" xbr="8" ybr="8"/></image></annotations>'}[fmt])
    (d / f"._{name}").write_bytes(apple_double())
    (d / "._a.jpg").write_bytes(apple_double())
    store = tmp_path / "st"
    assert run("init", str(store))[0] == 0
    for how in ([fmt, "auto"] if fmt != "cvat" else [fmt]):
        rc, out, err = run("import", how, str(d), "--store", str(store), "--json", "--source", how)
        assert rc == 0, err
        assert json.loads(out)["annotations"] == 1
