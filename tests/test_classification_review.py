"""Classification and semantic datasets end to end, as an ML engineer uses them: a small dataset made
with Pillow in its usual layout, imported, decided, exported, and read back."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from helpers import run


def _picture(path: Path, color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), color).save(path)


def _cli(store: Path):
    def do(*argv):
        rc, out, err = run(*argv, "--store", str(store))
        assert rc == 0, err
        return out, err

    assert run("init", str(store))[0] == 0
    return do


def test_csv_beside_an_images_folder_exports_the_names_it_was_given(tmp_path):
    """The Kaggle layout: labels.csv naming "im0.jpg", the pictures in images/ beside it. The images
    were imported as "images/im0.jpg" (found by file name from the CSV's folder), so the export wrote
    "images/im0.jpg": not the dataset's names, which its loader (images/ + name) cannot open, and an
    import of the export with --images naming the image folder found none of its pictures. The
    export now writes the names the CSV gave, and reads back onto the same pictures."""
    data = tmp_path / "data"
    for i in range(3):
        _picture(data / "images" / f"im{i}.jpg", (40 * i, 90, 160))
    (data / "labels.csv").write_text("image_name,label_name\nim0.jpg,cat\nim1.jpg,dog\nim2.jpg,bird\n")
    do = _cli(tmp_path / "st")
    do("import", "csv", str(data / "labels.csv"))
    do("accept", "1")
    do("relabel", "2", "cat", "--reason", "whiskers")
    do("reject", "3")
    out = tmp_path / "out.csv"
    do("export", "csv", str(out))
    assert out.read_text().splitlines() == ["image_name,label_name", "im0.jpg,cat", "im1.jpg,cat"]

    back = _cli(tmp_path / "back")
    _, err = back("import", "csv", str(out), "--images", str(data / "images"))
    assert "not found" not in err and "missing" not in err
    rows = json.loads(back("ls", "--json")[0])
    assert sorted((r["file_name"], r["category"]) for r in rows) == [("im0.jpg", "cat"), ("im1.jpg", "cat")]


def test_one_hot_csv_beside_an_images_folder_keeps_its_image_names(tmp_path):
    data = tmp_path / "data"
    for i in range(3):
        _picture(data / "images" / f"m{i}.jpg", (90, 40 * i, 160))
    (data / "labels.csv").write_text("image_name,cat,dog\nm0.jpg,1,1\nm1.jpg,0,1\nm2.jpg,0,0\n")
    do = _cli(tmp_path / "st")
    do("import", "csv", str(data / "labels.csv"))
    do("accept", "1", "3")
    do("reject", "2")
    out = tmp_path / "out.csv"
    do("export", "csv", str(out))
    assert out.read_text().splitlines() == ["image_name,cat,dog", "m0.jpg,1,0", "m1.jpg,0,1", "m2.jpg,0,0"]


def test_csv_naming_images_by_their_path_from_the_csv_keeps_that_path(tmp_path):
    # (a CSV that says images/im0.jpg itself is read as written, as before)
    data = tmp_path / "data"
    _picture(data / "images" / "im0.jpg", (10, 90, 160))
    (data / "labels.csv").write_text("image_name,label_name\nimages/im0.jpg,cat\n")
    do = _cli(tmp_path / "st")
    do("import", "csv", str(data / "labels.csv"))
    do("accept", "1")
    do("export", "csv", str(tmp_path / "out.csv"))
    assert (tmp_path / "out.csv").read_text().splitlines() == ["image_name,label_name", "images/im0.jpg,cat"]


async def test_relabel_picker_says_why_it_offers_no_class(tmp_path, open_app):
    """An ImageFolder of one class, or a class typed that the store does not know: the picker listed
    nothing, and enter did nothing, without a word. It now says which classes it offers and where a
    new one is added; nothing is recorded."""
    from test_tui import rendered, settle

    data = tmp_path / "data"
    _picture(data / "cat" / "a.jpg", (200, 40, 40))
    _picture(data / "cat" / "b.jpg", (40, 200, 40))
    do = _cli(tmp_path / "st")
    do("import", "imagefolder", str(data))
    app, store = open_app(tmp_path / "st", resume=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        text = " ".join(rendered(app).split())
        assert "No other class to relabel as" in text and "labelreview.toml" in text
        await pilot.press("f", "i", "s", "h", "enter")
        await settle(pilot, app)
        text = " ".join(rendered(app).split())
        assert "labelreview.toml" in text and "Relabel cat as" in text  # still asking
        await pilot.press("escape")
        await settle(pilot, app)
    assert [a.status for a in store.annotations()] == ["pending", "pending"]


def _semantic_dataset(data: Path) -> None:
    """Two pictures with a grey mask each: 0 background, 1 road (the bottom), 2 car (a block)."""
    import numpy as np

    (data / "masks").mkdir(parents=True)
    (data / "dataset_meta.json").write_text(json.dumps(
        {"label_map": {"0": "background", "1": "road", "2": "car"}, "background_label": "0"}))
    for name in ("a", "b"):
        _picture(data / "images" / f"{name}.png", (90, 90, 90))
        m = np.zeros((48, 64), np.uint8)
        m[30:, :] = 1
        m[10:25, 20:40] = 2
        Image.fromarray(m).save(data / "masks" / f"{name}.png")


def _semantic_half_decided(data: Path, store: Path):
    """The semantic dataset imported into ``store``: a.png decided (road accepted, car rejected: its car
    is background now), b.png's car accepted and its road not decided. Returns the store's CLI."""
    _semantic_dataset(data)
    do = _cli(store)
    do("import", "semantic", str(data))
    rows = json.loads(do("ls", "--json")[0])
    ids = {(r["file_name"], r["category"]): str(r["id"]) for r in rows}
    do("accept", ids["a.png", "road"])
    do("reject", ids["a.png", "car"])
    do("accept", ids["b.png", "car"])
    return do


def test_semantic_export_claims_no_background_where_a_mask_is_not_decided(tmp_path):
    """A mask PNG paints what no exported mask covers as background. An image of which nothing was
    decided yet came out all background, and a pending road as background under an accepted car:
    reviewed negatives that no one reviewed, without a word. Such an image is now left out and
    counted; a rejected mask is a decided absence (background); --include pending writes it."""
    import numpy as np

    data = tmp_path / "data"
    do = _semantic_half_decided(data, tmp_path / "st")
    out = tmp_path / "out"
    res = json.loads(do("export", "semantic", str(out), "--json")[0])
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["a.png"]
    assert res["images"] == 1 and res["skipped"] == {"image with a mask not decided": 1}
    a = np.asarray(Image.open(out / "masks" / "a.png"))
    assert (a[30:, :] == 1).all() and (a[:30, :] == 0).all()  # road kept, the rejected car gone

    res = json.loads(do("export", "semantic", str(out), "--json", "--include", "pending")[0])
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["a.png", "b.png"] and "skipped" not in res
    b = np.asarray(Image.open(out / "masks" / "b.png"))
    assert np.array_equal(b, np.asarray(Image.open(data / "masks" / "b.png")))  # as imported, both classes


def test_voc_export_writes_no_class_mask_where_a_mask_is_not_decided(tmp_path):
    """The VOC export paints SegmentationClass the same way: a pending road under an accepted car
    came out as background. That image's class mask is now left out and counted (its XML is
    written: boxes are decided one by one); --include pending writes it."""
    data = tmp_path / "data"
    do = _semantic_half_decided(data, tmp_path / "st")
    out = tmp_path / "out"
    res = json.loads(do("export", "voc", str(out), "--json")[0])
    assert sorted(p.name for p in (out / "SegmentationClass").iterdir()) == ["a.png"]
    assert res["skipped"]["class mask of an image with a mask not decided"] == 1
    assert "<segmented>0</segmented>" in (out / "Annotations" / "b.xml").read_text()
    text = do("export", "voc", str(out))[0]
    assert "left out of the export: class mask of an image with a mask not decided: 1" in text, text
    res = json.loads(do("export", "voc", str(out), "--json", "--include", "pending")[0])
    assert sorted(p.name for p in (out / "SegmentationClass").iterdir()) == ["a.png", "b.png"]


def test_imagefolder_export_warns_when_a_split_lacks_a_class(tmp_path):
    """torchvision's ImageFolder numbers classes by the folders it finds: with the only val dog
    rejected, val/ had no dog folder and numbered every class after it otherwise than train/ did (a
    model scored against shifted labels, silently). The export now says which split lacks which class."""
    data = tmp_path / "ds"
    for split, cls, name in (("train", "cat", "a"), ("train", "dog", "b"), ("train", "emu", "c"),
                             ("val", "cat", "d"), ("val", "dog", "e"), ("val", "emu", "f")):
        _picture(data / split / cls / f"{name}.jpg", (10, 200, 30))
    do = _cli(tmp_path / "st")
    do("import", "imagefolder", str(data))
    rows = json.loads(do("ls", "--json")[0])
    ids = {r["file_name"]: str(r["id"]) for r in rows}
    do("accept", *[i for f, i in ids.items() if not f.endswith("e.jpg")])
    do("reject", ids["val/dog/e.jpg"])
    out = tmp_path / "out"
    res = json.loads(do("export", "imagefolder", str(out), "--json")[0])
    assert res["splits_without_a_class"] == {"val": ["dog"]}
    assert sorted(p.name for p in (out / "val").iterdir()) == ["cat", "emu"]
    text = do("export", "imagefolder", str(out))[0]
    assert "warning: split val has no image of dog: torchvision's ImageFolder numbers classes" in text, text
    do("undo")  # the val dog back to pending, then accepted: every split has every class again
    do("accept", ids["val/dog/e.jpg"])
    assert "splits_without_a_class" not in json.loads(do("export", "imagefolder", str(out), "--json")[0])


def test_relabeling_to_a_class_the_image_already_has_is_refused_with_the_way_out(tmp_path):
    """An image labelled cat and dog, its cat relabeled dog: two dog labels, which every export merged
    into one without a word (and a semantic mask relabeled as a class the image has a mask of: two
    masks of one class, painted as one). It is refused, naming the other label and what to do."""
    data = tmp_path / "data"
    _picture(data / "images" / "a.jpg", (200, 40, 40))
    (data / "labels.csv").write_text("image_name,label_name\na.jpg,cat\na.jpg,dog\n")
    store = tmp_path / "st"
    do = _cli(store)
    do("import", "csv", str(data / "labels.csv"))
    ids = {r["category"]: r["id"] for r in json.loads(do("ls", "--json")[0])}
    rc, _, err = run("relabel", str(ids["cat"]), "dog", "--store", str(store))
    assert rc == 1 and f"image 1 already has a 'dog' label ({ids['dog']}, pending)" in err
    assert f"reject {ids['cat']} instead" in err
    assert {r["category"]: r["status"] for r in json.loads(do("ls", "--json")[0])} == {"cat": "pending",
                                                                                         "dog": "pending"}
    # Once the other is rejected (not there), the relabel goes through.
    do("reject", str(ids["dog"]))
    do("relabel", str(ids["cat"]), "dog", "--reason", "wrong-class")
    out = tmp_path / "out.csv"
    do("export", "csv", str(out))
    assert out.read_text().splitlines() == ["image_name,cat,dog", "a.jpg,0,1"]  # multi-label: cat absent

    # A semantic mask: one per class per image.
    sem = tmp_path / "sem"
    _semantic_dataset(sem)
    do = _cli(tmp_path / "st2")
    do("import", "semantic", str(sem))
    rows = json.loads(do("ls", "--json")[0])
    ids = {(r["file_name"], r["category"]): r["id"] for r in rows}
    rc, _, err = run("relabel", str(ids["a.png", "car"]), "road", "--store", str(tmp_path / "st2"))
    assert rc == 1 and "already has a 'road' class mask" in err


async def test_the_review_screen_says_why_a_relabel_to_a_class_the_image_has_is_refused(tmp_path, open_app):
    from test_tui import settle

    data = tmp_path / "data"
    _picture(data / "images" / "a.jpg", (200, 40, 40))
    (data / "labels.csv").write_text("image_name,label_name\na.jpg,cat\na.jpg,dog\n")
    do = _cli(tmp_path / "st")
    do("import", "csv", str(data / "labels.csv"))
    app, store = open_app(tmp_path / "st", resume=False)
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot, app)
        assert app.screen.current.category == "cat"
        await pilot.press("r")
        await settle(pilot, app)
        await pilot.press("d", "o", "g", "enter")
        await settle(pilot, app)
        said = " ".join(str(n.message) for n in app._notifications)
        assert "already has a 'dog' label" in said and "reject 1 instead" in said
    assert sorted((a.category, a.status) for a in store.annotations()) == [("cat", "pending"), ("dog", "pending")]
