"""Snapshot of the review screen on tiny images: layout, overlays, list and detail as a user sees them."""

from __future__ import annotations

import json

from PIL import Image

from labelreview.formats import coco
from labelreview.review import Queue
from labelreview.store import Store
from labelreview.tui.app import LabelReviewApp


def tiny_store(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    im = Image.new("RGB", (32, 20), (40, 90, 160))
    for x in range(8, 20):
        for y in range(4, 14):
            im.putpixel((x, y), (230, 200, 40))
    im.save(images / "tiny.png")
    doc = {"images": [{"id": 1, "file_name": "tiny.png", "width": 32, "height": 20}],
           "categories": [{"id": 1, "name": "duck"}, {"id": 2, "name": "goose"}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 4, 12, 10], "score": 0.9, "iscrowd": 0, "area": 120},
               {"id": 2, "image_id": 1, "category_id": 2, "bbox": [1, 1, 30, 18], "score": 0.4, "iscrowd": 0, "area": 540}]}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    root = Store.init(tmp_path / "store", name="snapshot")
    with Store.open(root) as s:
        s.ingest(coco.read(tmp_path / "p.json"), source="model", image_root=images)
        s.checkpoint()
    return root


def test_review_screen(snap_compare, tmp_path, monkeypatch):
    monkeypatch.setenv("COLORTERM", "truecolor")
    store = Store.open(tiny_store(tmp_path))
    app = LabelReviewApp(store, Queue(store))

    async def settle(pilot):
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)

    try:
        assert snap_compare(app, terminal_size=(100, 24), run_before=settle)
    finally:
        store.close()
