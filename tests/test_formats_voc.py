"""Pascal VOC and semantic masks: corpus files import with the expected counts, round trips keep every
box (0.5 px: VOC corners are whole pixels) and every mask pixel, corrupt files fail clearly."""

from __future__ import annotations

import shutil

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image as PILImage

from conftest import CORPUS
from labelreview.formats import semantic, voc
from labelreview.formats.common import decode_segmentation
from labelreview.model import InputError, LabelreviewError
from test_formats_util import assert_same_labels, snapshot_of, store_round_trip

A = CORPUS / "datumaro_openvino/tests/assets"
SEM = A / "common_semantic_segmentation_dataset"
pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus absent")

VOC_CASES = [  # path, images, labels (objects + parts + masks), warnings
    (A / "voc_dataset/voc_dataset1", 2, 4, 1),
    (A / "voc_dataset/voc_dataset2", 5, 4, 0),
    (A / "voc_dataset/voc_dataset3", 1, 1, 0),
    (A / "voc_dataset/voc_dataset3/Annotations/2007_000001.xml", 1, 1, 0),
    (A / "roboflow_dataset/voc", 3, 4, 3),
]


@pytest.mark.parametrize("path,n_images,n_labels,n_warn", VOC_CASES, ids=lambda v: str(v)[-30:])
def test_voc_corpus_counts(path, n_images, n_labels, n_warn):
    b, _ = voc.read(path)
    assert (len(b.images), len(b.proposals), len(b.warnings)) == (n_images, n_labels, n_warn)


def test_voc_values():
    b, root = voc.read(A / "voc_dataset/voc_dataset1")
    cat, person, head, mask = b.proposals
    assert cat.category == "cat" and cat.bbox == [0, 1, 3, 3]  # xmin 1..xmax 3 -> x 0, w 3
    assert cat.extra == {"pose": "Unspecified", "truncated": 1, "difficult": 0}
    assert cat.kind == "rle"  # SegmentationObject instance 1 is the first object
    assert person.extra["actions"]["phoning"] == 1
    assert head.category == "head" and head.bbox == [4.5, 5, 3, 3] and head.extra["voc_part_of"] == person.source_id
    assert mask.kind == "mask" and mask.category == "bicycle" and mask.area == 200  # RGB class PNG
    rb, _ = voc.read(A / "roboflow_dataset/voc")
    assert rb.proposals[0].bbox == [1, 0, 4, 2]  # xmin 2, xmax 5, ymin 1, ymax 2 in Roboflow's child order


@pytest.mark.parametrize("path,n_images,n_labels,n_warn", VOC_CASES, ids=lambda v: str(v)[-30:])
def test_voc_round_trip(tmp_path, path, n_images, n_labels, n_warn):
    b, root = voc.read(path)
    voc.write(snapshot_of(b, root), tmp_path / "out")
    again, _ = voc.read(tmp_path / "out", images=root)
    assert_same_labels(b, again, tol=0.5)
    for p, q in zip(b.proposals, again.proposals):
        assert p.extra == q.extra
        if p.segmentation is not None:  # every mask pixel
            h, w = p.segmentation["size"]
            assert (decode_segmentation(p.segmentation, h, w) == decode_segmentation(q.segmentation, h, w)).all()


def test_voc_round_trip_through_store_with_decisions(tmp_path):
    first, again, result = store_round_trip(tmp_path, "voc", A / "voc_dataset/voc_dataset1")
    assert result["annotations"] == 4
    assert_same_labels(first, again, tol=0.5)


def test_voc_export_conventions(tmp_path):
    b, root = voc.read(A / "voc_dataset/voc_dataset1")
    voc.write(snapshot_of(b, root), tmp_path / "out")
    xml = (tmp_path / "out/Annotations/2007_000001.xml").read_text()
    assert "<xmin>1</xmin>" in xml and "<xmax>3</xmax>" in xml and "<part>" in xml
    png = PILImage.open(tmp_path / "out/SegmentationClass/2007_000001.png")
    assert png.mode == "P" and set(np.unique(np.asarray(png))) == {2}
    obj = PILImage.open(tmp_path / "out/SegmentationObject/2007_000001.png")
    assert set(np.unique(np.asarray(obj))) == {1}


@pytest.mark.parametrize("xml,message", [
    ("<annotation><object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bndbox></object>"
     "</annotation>", "object[0] (a): <bndbox> has no <ymax>"),
    ("<annotation><object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>nan</xmax><ymax>3</ymax>"
     "</bndbox></object></annotation>", "<xmax> 'nan' is not a number"),
    ("<annotation><object><name>a</name><bndbox><xmin>5</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax>"
     "</bndbox></object></annotation>", "corners reversed"),
    ("<annotation><object><bndbox/></object></annotation>", "object[0]: no <name>"),
    ("<annotation><object><name>a</name>", "not well-formed XML"),
    ("<html></html>", "not a Pascal VOC annotation"),
    ("", "not well-formed XML"),
    # an encoding expat cannot read: a LookupError / ValueError traceback (found by a mutation run)
    ('<?xml version="1.0" encoding="inf"?><annotation/>', "line 1: the XML declaration's encoding cannot be read"),
    ('<?xml version="1.0" encoding="UTF-32"?><annotation/>', "the XML declaration's encoding cannot be read"),
])
def test_voc_clear_errors(tmp_path, xml, message):
    (tmp_path / "x.xml").write_text(xml)
    with pytest.raises(InputError) as e:
        voc.read(tmp_path)
    assert str(e.value).startswith("x.xml: ") and message in str(e.value)


def test_voc_box_outside_the_image_is_clipped_or_skipped_with_or_without_size(tmp_path):
    # Without <size> (LabelImg leaves it out) nothing was clipped: a box reaching 450 px past a 100 px
    # wide image, or lying wholly outside it, was stored as it was. With <size>, a box wholly outside
    # became a box of zero width at the border, reported as "clipped" instead of skipped.
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations").mkdir()
    PILImage.new("RGB", (100, 80)).save(tmp_path / "JPEGImages/a.jpg")
    PILImage.new("RGB", (100, 80)).save(tmp_path / "JPEGImages/b.jpg")
    mask = np.zeros((80, 100), np.uint8)
    mask[10:20, 10:20] = 3  # the third object's pixels
    mask[0:2, 0:2] = 2  # the second's (outside the image: skipped, so this is dropped)
    (tmp_path / "SegmentationObject").mkdir()
    PILImage.fromarray(mask).save(tmp_path / "SegmentationObject/b.png")

    def obj(name, x0, y0, x1, y1):
        return (f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                f"<ymax>{y1}</ymax></bndbox></object>")

    boxes = obj("reaching", 51, 11, 550, 30) + obj("outside", 201, 11, 250, 30) + obj("inside", 11, 11, 20, 20)
    size = "<size><width>100</width><height>80</height><depth>3</depth></size>"
    (tmp_path / "Annotations/a.xml").write_text(f"<annotation><filename>a.jpg</filename>{boxes}</annotation>")
    (tmp_path / "Annotations/b.xml").write_text(f"<annotation><filename>b.jpg</filename>{size}{boxes}</annotation>")
    b, _ = voc.read(tmp_path)
    got = sorted((p.image_key, p.category, tuple(p.bbox), p.kind) for p in b.proposals)
    assert got == [("JPEGImages/a.jpg", "inside", (10, 10, 10, 10), "bbox"),
                   ("JPEGImages/a.jpg", "reaching", (50, 10, 50, 20), "bbox"),
                   ("JPEGImages/b.jpg", "inside", (10, 10, 10, 10), "rle"),  # instance 3 is still "inside"
                   ("JPEGImages/b.jpg", "reaching", (50, 10, 50, 20), "bbox")]
    for f in ("a", "b"):
        assert [w.action for w in b.warnings if w.where.startswith(f"Annotations/{f}.xml")] == ["repaired", "skipped"]
    assert all((im.width, im.height) == (100, 80) for im in b.images)


def test_voc_billion_laughs_is_refused(tmp_path):
    bomb = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefgh", "bcdefghi"))
            + ']><annotation><filename>&i;</filename></annotation>')
    (tmp_path / "x.xml").write_text(bomb)
    with pytest.raises(InputError, match="x.xml"):
        voc.read(tmp_path)


# ---------------------------------------------------------------------- semantic masks


@pytest.mark.parametrize("name,n_images,n_masks", [("dataset", 2, 4), ("non_standard_dataset", 2, 5)])
def test_semantic_corpus(tmp_path, name, n_images, n_masks):
    b, root = semantic.read(SEM / name)
    assert (len(b.images), len(b.proposals)) == (n_images, n_masks)
    assert all(p.kind == "mask" for p in b.proposals)
    semantic.write(snapshot_of(b, root), tmp_path / "out")
    again, _ = semantic.read(tmp_path / "out", images=root)
    assert [(p.image_key, p.category, p.segmentation) for p in b.proposals] == \
           [(p.image_key, p.category, p.segmentation) for p in again.proposals]


def test_semantic_through_store(tmp_path):
    first, again, result = store_round_trip(tmp_path, "semantic", SEM / "dataset")
    assert result["annotations"] == 4
    assert [p.segmentation for p in first.proposals] == [p.segmentation for p in again.proposals]


def test_semantic_unknown_colour_is_a_clear_error(tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(SEM / "dataset", d)
    PILImage.new("RGB", (5, 1), (1, 2, 3)).save(d / "masks/0001.png")
    with pytest.raises(InputError, match=r"masks/0001.png: pixel \(0, 0\): colour \(1, 2, 3\) is not a class colour"):
        semantic.read(d)
    (d / "dataset_meta.json").write_text("{")
    with pytest.raises(InputError, match="dataset_meta.json"):
        semantic.read(d)


def test_class_map_files_not_utf8_or_with_a_bom(tmp_path):
    # labelmap.txt that was not UTF-8 ended the import in a UnicodeDecodeError traceback; one with a
    # BOM named its first class "\ufeffbackground", so value 0 was no longer the background; a
    # dataset_meta.json with a BOM was refused as invalid JSON.
    from conftest import run_cli

    d = tmp_path / "voc"
    shutil.copytree(A / "voc_dataset/voc_dataset1", d)
    store = tmp_path / "st"
    assert run_cli("init", str(store)).returncode == 0
    (d / "labelmap.txt").write_bytes(b"background:0,0,0::\ncat\xff:1,2,3::\n")
    r = run_cli("import", "voc", str(d), "--store", str(store))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "labelmap.txt: line 2: not UTF-8 text" in r.stderr
    (d / "labelmap.txt").write_bytes(b"\xef\xbb\xbfbackground:0,0,0::\r\nwall:128,0,0::\r\n")
    cmap = voc.read_labelmap(d / "labelmap.txt")
    assert cmap.names == {0: "background", 1: "wall"} and cmap.background == 0
    s = tmp_path / "sem"
    shutil.copytree(SEM / "dataset", s)
    meta = (s / "dataset_meta.json").read_bytes()
    (s / "dataset_meta.json").write_bytes(b"\xef\xbb\xbf" + meta)
    b, _ = semantic.read(s)
    assert len(b.proposals) == 4


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 40), w=st.integers(1, 40), ncls=st.integers(1, 6), seed=st.integers(0, 2**31),
       palette=st.booleans())
def test_semantic_generated_round_trip(tmp_path, h, w, ncls, seed, palette):
    rnd = np.random.default_rng(seed)
    values = rnd.integers(0, ncls + 1, size=(h, w)).astype(np.uint8)
    d = tmp_path / "gen"
    shutil.rmtree(d, ignore_errors=True)
    (d / "images").mkdir(parents=True)
    (d / "masks").mkdir()
    cmap = semantic.ClassMap(names={i: f"c{i}" for i in range(ncls + 1)},
                             colors={i: c for i, c in enumerate(semantic.voc_colormap(ncls + 1))}, background=0)
    PILImage.new("RGB", (w, h)).save(d / "images/a.jpg")
    if palette:
        (d / "masks/a.png").write_bytes(semantic.png_bytes(values, cmap))
    else:
        rgb = np.array([cmap.colors[int(v)] for v in values.ravel()], np.uint8).reshape(h, w, 3)
        PILImage.fromarray(rgb).save(d / "masks/a.png")
    import orjson

    (d / "dataset_meta.json").write_bytes(orjson.dumps({"label_map": {str(i): n for i, n in cmap.names.items()},
                                                        "segmentation_colors": [list(cmap.colors[i]) for i in
                                                                                sorted(cmap.names)],
                                                        "background_label": "0"}))
    b, root = semantic.read(d)
    assert {p.category for p in b.proposals} == {f"c{v}" for v in np.unique(values) if v}
    out = tmp_path / "out"
    shutil.rmtree(out, ignore_errors=True)
    semantic.write(snapshot_of(b, root), out)
    back = np.asarray(PILImage.open(out / "masks/a.png"))
    assert (back == values).all()  # every pixel


def _road_car_sky(d):
    """A class map with no background: value 0 is the class road (b4)."""
    import orjson

    (d / "images").mkdir(parents=True)
    (d / "masks").mkdir()
    PILImage.new("RGB", (8, 6)).save(d / "images/0001.jpg")
    v = np.zeros((6, 8), np.uint8)
    v[:, 4:] = 1
    v[0:2, 0:2] = 2
    PILImage.fromarray(v, mode="L").save(d / "masks/0001.png")
    (d / "dataset_meta.json").write_bytes(orjson.dumps({"label_map": {"0": "road", "1": "car", "2": "sky"}}))
    return v


def test_semantic_export_without_background_class_keeps_value_0_a_class(tmp_path):
    import orjson

    v = _road_car_sky(tmp_path / "sem")
    b, root = semantic.read(tmp_path / "sem")
    assert sorted(p.category for p in b.proposals) == ["car", "road", "sky"]
    snap = snapshot_of(b, root)
    snap.annotations = [a for a in snap.annotations if a.category != "sky"]  # sky rejected: not exported
    semantic.write(snap, tmp_path / "out")
    meta = orjson.loads((tmp_path / "out/dataset_meta.json").read_bytes())
    bg = int(meta["background_label"])
    assert bg == 255 and meta["label_map"]["0"] == "road" and meta["label_map"]["255"] == "background"
    back = np.asarray(PILImage.open(tmp_path / "out/masks/0001.png"))
    assert (back[v == 2] == bg).all()  # rejected sky is background, not road
    assert (back[v != 2] == v[v != 2]).all()
    again, _ = semantic.read(tmp_path / "out", images=root)
    got = {p.category: decode_segmentation(p.segmentation, 6, 8).astype(bool) for p in again.proposals}
    assert sorted(got) == ["car", "road"]
    assert (got["road"] == (v == 0)).all() and (got["car"] == (v == 1)).all()


def test_voc_export_without_background_class_keeps_value_0_a_class(tmp_path):
    v = _road_car_sky(tmp_path / "sem")
    b, root = semantic.read(tmp_path / "sem")
    snap = snapshot_of(b, root)
    snap.annotations = [a for a in snap.annotations if a.category != "sky"]
    voc.write(snap, tmp_path / "out")
    back = np.asarray(PILImage.open(tmp_path / "out/SegmentationClass/0001.png"))
    bg = int(back[0, 0])
    assert bg not in (0, 1, 2, 255)  # 255 is VOC's void border
    again, _ = voc.read(tmp_path / "out", images=root)
    got = {p.category: decode_segmentation(p.segmentation, 6, 8).astype(bool) for p in again.proposals
           if p.kind == "mask"}
    assert sorted(got) == ["car", "road"]
    assert (got["road"] == (v == 0)).all()


def test_voc_export_of_boxes_under_a_pixel_is_valid_and_reimports(tmp_path):
    """Corners are whole pixels: a box under one pixel (or of zero size, kept at import with a warning)
    becomes the one pixel its centre is in, never reversed corners its own importer refuses (b6)."""
    import re

    from labelreview.formats import yolo

    d = tmp_path / "ds"
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    PILImage.new("RGB", (640, 480)).save(d / "images/a.jpg")
    (d / "labels/a.txt").write_text("0 0.5 0.5 0.2 0.4\n"  # a normal box
                                    "0 0.1 0.1 0.001 0.001\n"  # 0.64 x 0.48 px, centred on (64, 48)
                                    "0 0.5 0.5 0 0\n"  # zero size
                                    "0 1 1 0 0\n")  # zero size, on the bottom-right corner
    (d / "classes.txt").write_text("cat\n")
    b = yolo.read(d)
    assert len(b.proposals) == 4 and sum("zero width" in w.problem for w in b.warnings) == 2
    voc.write(snapshot_of(b, d), tmp_path / "out")
    xml = (tmp_path / "out/Annotations/a.xml").read_text()
    corners = [tuple(int(v) for v in m) for m in re.findall(
        r"<xmin>(\d+)</xmin>\s*<ymin>(\d+)</ymin>\s*<xmax>(\d+)</xmax>\s*<ymax>(\d+)</ymax>", xml)]
    assert corners == [(257, 145, 384, 336), (65, 49, 65, 49), (321, 241, 321, 241), (640, 480, 640, 480)]
    again, _ = voc.read(tmp_path / "out", images=d)
    assert [p.bbox for p in again.proposals] == [[256, 144, 128, 192], [64, 48, 1, 1], [320, 240, 1, 1],
                                                 [639, 479, 1, 1]]


def _two_imports_of_one_image():
    """voc_dataset1 imported twice (two models, the same image): its objects' source ids repeat."""
    b, root = voc.read(A / "voc_dataset/voc_dataset1")
    snap = snapshot_of(b, root)
    n = len(snap.annotations)
    again = snapshot_of(b, root).annotations
    for a in snap.annotations:
        a.import_id, a.source = "m1", "m1"
    for a in again:
        a.import_id, a.source, a.id = "m2", "m2", a.id + n
    snap.annotations += again
    return snap, root


def test_voc_parts_stay_with_their_own_object_when_two_imports_share_an_image(tmp_path):
    """A part names its object by the object's id in the imported file; two imports of one image reuse
    those ids, so grouping by the id alone gave every person both heads, and a head whose person was
    rejected went to the other import's person."""
    import re

    snap, root = _two_imports_of_one_image()
    voc.write(snap, tmp_path / "out1")
    xml = (tmp_path / "out1/Annotations/2007_000001.xml").read_text()
    assert xml.count("<part>") == 2 and xml.count("<name>head</name>") == 2
    prov = [orjson.loads(line) for line in (tmp_path / "out1/labelreview.provenance.jsonl").read_bytes().splitlines()]
    parts = {p["exported_id"]: p["import"] for p in prov if ".part[" in p["exported_id"]}
    objs = {p["exported_id"]: p["import"] for p in prov if re.search(r"object\[\d+\]$", p["exported_id"])}
    assert len(parts) == 2 and all(imp == objs[eid.split(".part[")[0]] for eid, imp in parts.items())
    assert len(prov) == len({p["annotation"] for p in prov})  # no label exported twice

    # m1's person rejected, m2's head rejected: m1's head has no object to go to
    by = {(a.import_id, a.category): a for a in snap.annotations}
    snap.annotations = [a for a in snap.annotations if a is not by["m1", "person"] and a is not by["m2", "head"]]
    res = voc.write(snap, tmp_path / "out2")
    xml = (tmp_path / "out2/Annotations/2007_000001.xml").read_text()
    assert "<part>" not in xml and "head" not in xml
    assert res["skipped"] == {"part of an object not exported": 1}


def _datumaro_labelmap(path):
    """labelmap.txt read by Datumaro's rules: 'name:r,g,b:parts:actions' lines (exactly 4 fields), label
    ids in line order, then the parts column's classes; a class declared twice is refused."""
    lines, parts, colours = {}, [], []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] == "#":
            continue
        fields = line.split(":")
        assert len(fields) == 4, line
        name, col, ps, acts = fields
        assert name not in lines, name
        lines[name] = ([p.strip() for p in ps.split(",")] if ps else [], [a.strip() for a in acts.split(",")] if acts else [])
        colours.append(tuple(int(v) for v in col.split(",")))
        parts += [p for p in lines[name][0] if p not in parts]
    assert not set(parts) & set(lines), "a part class declared twice"
    assert len(set(colours)) == len(colours), "two classes with one colour"
    return lines, parts


@pytest.mark.parametrize("masks", [True, False])
def test_voc_labelmap_declares_every_class_the_export_uses(tmp_path, masks):
    """labelmap.txt listed only the mask classes: an object relabeled to a class of the config
    ('tiger') and the part 'head' were declared nowhere, and Datumaro's VOC reader raises
    UndeclaredLabelError for them (an export with no masks wrote no labelmap at all, so Datumaro read
    it with VOC's 20 classes). Now every exported object's class has a line with a colour of its own,
    and parts are in the parts column of their object's class."""
    import re

    b, root = voc.read(A / "voc_dataset/voc_dataset1")
    snap = snapshot_of(b, root)
    snap.annotations[0].category = "tiger"  # the cat relabeled
    if not masks:
        snap.annotations = [a for a in snap.annotations if a.kind != "mask"]
        for a in snap.annotations:
            a.segmentation, a.kind = None, "bbox"
    voc.write(snap, tmp_path / "out")
    lines, parts = _datumaro_labelmap(tmp_path / "out/labelmap.txt")
    declared = set(lines) | set(parts)
    xml = (tmp_path / "out/Annotations/2007_000001.xml").read_text()
    assert {"tiger", "person", "head"} <= set(re.findall(r"<name>([^<]*)</name>", xml)) <= declared
    assert "tiger" in lines and parts == ["head"] and lines["person"][0] == ["head"]
    assert "phoning" in lines["person"][1]  # the actions written for person
    if masks:  # the mask classes keep their line, i.e. their value
        assert list(lines).index("bicycle") == 2 and list(lines).index("tiger") == 21
    again, _ = voc.read(tmp_path / "out", images=root)
    assert [p.category for p in again.proposals][:3] == ["tiger", "person", "head"]


def test_voc_labelmap_part_class_that_is_also_an_object_class_is_declared_once(tmp_path):
    b, root = voc.read(A / "voc_dataset/voc_dataset1")
    snap = snapshot_of(b, root)
    snap.annotations[0].category = "head"  # an object of the part's class
    voc.write(snap, tmp_path / "out")
    lines, parts = _datumaro_labelmap(tmp_path / "out/labelmap.txt")
    assert "head" in lines and parts == [] and lines["person"][0] == []


@pytest.mark.parametrize("name", ["a:b", "#x", " x", ""])
def test_voc_export_refuses_a_class_labelmap_cannot_hold(tmp_path, name):
    b, root = voc.read(A / "voc_dataset/voc_dataset1")
    snap = snapshot_of(b, root)
    snap.annotations[0].category = name
    with pytest.raises(LabelreviewError, match="labelmap.txt"):
        voc.write(snap, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["class", "part", "file name", "attribute"])
def test_voc_export_refuses_text_xml_cannot_hold(tmp_path, where):
    # A control character (a class "ca\x01t", a file name with \x1b) was written into the XML as it
    # was: the export "succeeded", and neither labelreview nor any other VOC reader could read it back.
    b, root = voc.read(A / "voc_dataset/voc_dataset1")
    snap = snapshot_of(b, root)
    obj = next(a for a in snap.annotations if not a.extra.get("voc_part_of") and a.kind != "mask")
    part = next(a for a in snap.annotations if a.extra.get("voc_part_of"))
    if where == "class":
        obj.category = "ca\x01t"
    elif where == "part":
        part.category = "ha\x02nd"
    elif where == "file name":
        snap.image_by_id[obj.image_id].file_name = "JPEGImages/a\x1b.jpg"
    else:
        obj.extra["attributes"] = {"note": "a\x00b"}
    with pytest.raises(LabelreviewError, match="control character"):
        voc.write(snap, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
    obj.category, part.category = "cat", "hand"
    snap.image_by_id[obj.image_id].file_name = "JPEGImages/a b.jpg"
    obj.extra["attributes"] = {"note": "tab\there & <there>"}
    voc.write(snap, tmp_path / "out")
    again, _ = voc.read(tmp_path / "out")
    assert {p.category for p in again.proposals} >= {"cat", "hand"}


def test_voc_export_gives_back_the_boxes_it_was_given_and_whole_pixels_for_the_rest(tmp_path):
    """A VOC file with a corner between pixels (voc_dataset1's head part: xmin 5.5, xmax 7.5; Datumaro
    and CVAT write such floats) came back from export and import moved: the export rounded 5.5 to 6.
    Its own numbers are now written back, and a re-import gives the very same boxes. A box from
    another format with corners between pixels is still written in whole pixels, which every VOC
    reader takes (the VOC evaluation's parse_rec reads each corner with int()), and counted."""
    import json
    import re

    from helpers import run

    def boxes(store):
        rc, out, err = run("ls", "--json", "--store", str(store))
        assert rc == 0, err
        return sorted((a["category"], a["bbox"]) for a in json.loads(out))

    src = tmp_path / "src"
    shutil.copytree(A / "voc_dataset/voc_dataset1", src)
    xml = src / "Annotations/2007_000001.xml"  # a corner with more digits than 6, as str(float) writes
    xml.write_text(xml.read_text().replace("<xmin>4</xmin>", "<xmin>4.123456789012345</xmin>"))
    first, again = tmp_path / "s1", tmp_path / "s2"
    for store in (first, again):
        assert run("init", str(store))[0] == 0
    assert run("import", "voc", str(src), "--store", str(first))[0] == 0
    rc, out, err = run("export", "voc", str(tmp_path / "out"), "--include", "pending", "--store", str(first),
                       "--json")
    assert rc == 0, err
    assert "rounded" not in json.loads(out)
    written = (tmp_path / "out/Annotations/2007_000001.xml").read_text()
    assert "<xmin>5.5</xmin>" in written and "<xmax>7.5</xmax>" in written
    assert "<xmin>4.123456789012345</xmin>" in written and "<xmax>6</xmax>" in written
    assert run("import", "voc", str(tmp_path / "out"), "--images", str(src), "--store", str(again))[0] == 0
    assert boxes(again) == boxes(first)
    assert ("head", [4.5, 5, 3, 3]) in boxes(again)

    # boxes from COCO, between pixels: whole pixels, and the export says how many it rounded
    coco_doc = {"images": [{"id": 1, "file_name": "2007_000001.jpg", "width": 20, "height": 10}],
                "categories": [{"id": 1, "name": "cat"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2.3, 1.6, 5.2, 4.1],
                                 "area": 21.3, "iscrowd": 0},
                                {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16,
                                 "iscrowd": 0}]}
    (tmp_path / "c.json").write_text(json.dumps(coco_doc))
    third = tmp_path / "s3"
    assert run("init", str(third))[0] == 0
    assert run("import", "coco", str(tmp_path / "c.json"), "--images", str(src / "JPEGImages"),
               "--store", str(third))[0] == 0
    rc, out, err = run("export", "voc", str(tmp_path / "out3"), "--include", "pending", "--store", str(third))
    assert rc == 0, err
    assert "1 box with corners between pixels, written in whole pixels" in out
    written = (tmp_path / "out3/Annotations/2007_000001.xml").read_text()
    corners = re.findall(r"<(?:xmin|ymin|xmax|ymax)>([^<]*)<", written)
    assert [int(c) for c in corners] == [3, 3, 8, 6, 2, 2, 5, 5]  # int() takes every one of them


def test_voc_numbers_beyond_64_bits_are_kept_as_written_and_import(tmp_path):
    """A <size> of 1e300, or a flag, <segmented>, action or attribute of 20 digits, ended the import in
    a TypeError traceback ('Integer exceeds 64-bit range'); an attribute of 20 digits came back
    rounded through a float (12345678901234567891 -> 12345678901234567168)."""
    from conftest import run_cli
    from labelreview.store import Store

    PILImage.new("RGB", (20, 10)).save(tmp_path / "a.jpg")
    big = "12345678901234567891"
    (tmp_path / "a.xml").write_text(
        f"<annotation><filename>a.jpg</filename><segmented>{big}</segmented>"
        "<size><width>1e300</width><height>10</height></size>"
        f"<object><name>cat</name><difficult>{big}</difficult><actions><jump>{big}</jump></actions>"
        f"<attributes><attribute><name>id</name><value>{big}</value></attribute></attributes>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>30</xmax><ymax>5</ymax></bndbox></object></annotation>")
    b, _ = voc.read(tmp_path / "a.xml")
    (p,) = b.proposals
    assert p.bbox == [0, 0, 20, 5]  # clipped to the image's own size
    assert p.extra["difficult"] == big and p.extra["actions"] == {"jump": big}
    assert p.extra["attributes"] == {"id": big} and b.images[0].extra["segmented"] == big
    assert any("<size> 1e+300x10 is not a size; read from the image" in w.problem for w in b.warnings)
    store = Store.init(tmp_path / "store", name="t")
    r = run_cli("import", "voc", str(tmp_path / "a.xml"), "--store", str(store))
    assert r.returncode == 0 and "Traceback" not in r.stderr


def test_voc_export_of_a_mask_on_an_image_of_unknown_height_is_left_out_not_a_traceback(tmp_path):
    """An image whose file is missing and whose height the COCO file does not give: its masks
    cannot be drawn (the export died on np.zeros((None, w)))."""
    import json

    from helpers import run

    coco = {"images": [{"id": 1, "file_name": "gone.jpg", "width": 40}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0,
                             "bbox": [2, 2, 10, 10], "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]]}]}
    (tmp_path / "p.json").write_text(json.dumps(coco))
    store = tmp_path / "s"
    assert run("init", str(store))[0] == 0
    rc, _, err = run("import", "coco", str(tmp_path / "p.json"), "--images", str(tmp_path), "--store", store)
    assert rc == 0, err
    assert run("accept", "1", "--store", store)[0] == 0
    rc, out, err = run("export", "voc", str(tmp_path / "out"), "--store", store)
    assert rc == 0 and "Traceback" not in err, err
    assert (tmp_path / "out" / "Annotations" / "gone.xml").is_file()
    assert not (tmp_path / "out" / "SegmentationObject").exists()


def test_a_stored_mask_that_does_not_decode_is_named_and_short_polygons_draw_nothing():
    assert not decode_segmentation([[1, 2, 3, 4]], 5, 6).any()  # (one polygon of 2 points: pycocotools failed)
    assert decode_segmentation([[1, 2, 3, 4], [0, 0, 4, 0, 4, 4]], 5, 6).any()
    with pytest.raises(LabelreviewError, match=r"annotation 7: its stored mask cannot be decoded .* `labelreview verify`"):
        decode_segmentation({"counts": "x", "size": [1, 2]}, 1, 2, 7)
