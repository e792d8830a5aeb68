"""Tests for the ImageView widget: background rendering, caching, placeholders, stale results."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PIL import Image
from textual.app import App, ComposeResult

from labelreview.tui.render import Overlay, RenderOptions
from labelreview.tui.widgets.image_view import ImageView

TIMEOUT = 5.0


class ViewApp(App[None]):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shown: list[ImageView.FrameShown] = []
        self._arrived = asyncio.Event()

    def compose(self) -> ComposeResult:
        yield ImageView()

    def on_image_view_frame_shown(self, message: ImageView.FrameShown) -> None:
        self.shown.append(message)
        self._arrived.set()

    async def frame_for(self, key) -> ImageView.FrameShown:
        """Wait until a FrameShown for `key` has been posted."""

        async def wait() -> ImageView.FrameShown:
            while True:
                for message in self.shown:
                    if message.key == key:
                        return message
                self._arrived.clear()
                await self._arrived.wait()

        return await asyncio.wait_for(wait(), TIMEOUT)


def screen_text(view: ImageView) -> str:
    return "\n".join(view.render_line(y).text for y in range(view.size.height))


@pytest.fixture
def image(tmp_path):
    arr = np.full((120, 160, 3), 60, dtype=np.uint8)
    arr[40:80, 40:100] = (200, 30, 30)
    path = tmp_path / "img.jpg"
    Image.fromarray(arr).save(path, quality=90)
    return path


def boxes(label="zebra", selected=False):
    return [Overlay(ann_id=1, label=label, color=(0, 255, 0), bbox=(40, 40, 60, 40), selected=selected)]


async def test_show_renders_frame_with_label_text(image):
    app = ViewApp()
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.show("a", image, boxes(), RenderOptions())
        shown = await app.frame_for("a")
        assert shown.message is None
        assert view.shown_key == "a"
        assert "zebra" in screen_text(view)
        assert view.frame.width == view.size.width and view.frame.height == view.size.height
        assert "▀" in screen_text(view)


async def test_missing_image_shows_placeholder_instead_of_crashing(tmp_path):
    app = ViewApp()
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        missing = tmp_path / "gone.jpg"
        view.show("m", missing, boxes(), RenderOptions())
        shown = await app.frame_for("m")
        assert "image missing" in shown.message
        assert "image missing" in screen_text(view)
        assert "gone.jpg" in screen_text(view)
        assert app.is_running


async def test_corrupt_image_and_no_path_show_placeholders(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    app = ViewApp()
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.show("bad", bad, boxes(), RenderOptions())
        assert "bad.jpg" in (await app.frame_for("bad")).message
        view.show("none", None, [], RenderOptions())
        assert (await app.frame_for("none")).message == "no image"
        assert "no image" in screen_text(view)


async def test_cached_frame_is_shown_at_once(image):
    app = ViewApp()
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.show("a", image, boxes(), RenderOptions())
        await app.frame_for("a")
        view.show("b", image, boxes(label="okapi"), RenderOptions())
        await app.frame_for("b")
        view.show("a", image, boxes(), RenderOptions())
        assert view.shown_key == "a"  # synchronously, no worker
        assert "zebra" in screen_text(view)


async def test_stale_result_is_ignored(image):
    app = ViewApp()
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.show("old", image, boxes(label="old"), RenderOptions())
        view.show("new", image, boxes(label="new"), RenderOptions())
        await app.frame_for("new")
        await app.workers.wait_for_complete()
        await asyncio.sleep(0.05)
        assert view.shown_key == "new"
        assert "new" in screen_text(view) and "old" not in screen_text(view)
        assert all(m.key == "new" for m in app.shown)


async def test_prefetch_fills_the_cache(image):
    app = ViewApp()
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.show("a", image, boxes(), RenderOptions())
        await app.frame_for("a")
        view.prefetch([("next", image, boxes(label="okapi", selected=True), RenderOptions())])
        await app.workers.wait_for_complete()
        await asyncio.sleep(0.05)  # the worker hands the frame over via call_from_thread
        view.show("next", image, boxes(label="okapi", selected=True), RenderOptions())
        assert view.shown_key == "next"
        assert "okapi" in screen_text(view)


async def test_resize_rerenders_for_new_size(image):
    app = ViewApp()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(ImageView)
        view.show("a", image, boxes(), RenderOptions())
        await app.frame_for("a")
        app.shown.clear()
        await pilot.resize_terminal(100, 30)
        await app.frame_for("a")
        assert (view.frame.width, view.frame.height) == (100, 30)


async def test_zoom_re_renders_from_same_file(image):
    app = ViewApp()
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.show("a", image, boxes(selected=True), RenderOptions())
        await app.frame_for("a")
        whole = view.frame.region
        view.show("a-zoom", image, boxes(selected=True), RenderOptions(zoom=True))
        await app.frame_for("a-zoom")
        x0, y0, x1, y1 = view.frame.region
        assert (x1 - x0) < (whole[2] - whole[0])
        assert "zebra" in screen_text(view)


async def test_slow_render_shows_loading_then_frame(image, monkeypatch):
    import threading

    from labelreview.tui.widgets import image_view

    release = threading.Event()
    real_decode = image_view.decode

    def slow_decode(path, target):
        release.wait(TIMEOUT)
        return real_decode(path, target)

    monkeypatch.setattr(image_view, "decode", slow_decode)
    monkeypatch.setattr(image_view, "LOADING_DELAY", 0.01)
    app = ViewApp()
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.show("slow", image, boxes(), RenderOptions())
        for _ in range(100):
            if view.frame is not None and view.frame.message == "loading…":
                break
            await asyncio.sleep(0.01)
        assert "loading…" in screen_text(view)
        assert view.shown_key is None
        release.set()
        await app.frame_for("slow")
        assert "zebra" in screen_text(view)


async def test_warm_decode_at_launch_serves_the_first_frame(image, monkeypatch):
    # The review screen starts decoding the first picture for the terminal's size before the image
    # view has its own: the frame must come from that decode, not from a second one.
    from labelreview.tui.widgets import image_view as iv

    calls = []
    real = iv.decode
    monkeypatch.setattr(iv, "decode", lambda path, target: calls.append(target) or real(path, target))
    app = ViewApp()
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.warm(image, (100, 30))  # a guess at least as big as what the view will need
        await app.workers.wait_for_complete()
        view.show("a", image, boxes(), RenderOptions())
        await app.frame_for("a")
        assert calls == [(100, 60)]  # one decode, the warm one, though the view asked for (80, 48)
        assert "zebra" in screen_text(view)
        # A much smaller view would not use a picture decoded far bigger than it needs.
        calls.clear()
        assert view._decoded.get(str(image), (8, 8)) is not None and calls == [(8, 8)]


async def test_a_finished_picture_reaches_the_compositor_as_the_workers_strips(image):
    # The key-press path relies on this: no re-styling of ~5,000 cells on the UI thread, and the
    # escape codes the worker rendered (Strip.render's cache) are the ones written.
    from textual.geometry import Region

    app = ViewApp(ansi_color=True)  # as LabelReviewApp: no line filter on the colours
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.show("a", image, boxes(), RenderOptions())
        await app.frame_for("a")
        width, height = view.size
        lines = view.render_lines(Region(0, 0, width, height))
        assert all(a is b for a, b in zip(lines, view.frame.strips)) and len(lines) == height
        assert all(s._render_cache is not None for s in lines)
        part = view.render_lines(Region(5, 2, 10, 3))  # a partial update is cut like Textual's
        assert [s.text for s in part] == [s.text[5:15] for s in view.frame.strips[2:5]]
    app = ViewApp()  # a line filter (here ANSI -> truecolor; NO_COLOR is another) is applied by Textual
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.show("a", image, boxes(), RenderOptions())
        await app.frame_for("a")
        lines = view.render_lines(Region(0, 0, *view.size))
        assert not any(a is b for a, b in zip(lines, view.frame.strips))
        assert [s.text for s in lines] == [s.text for s in view.frame.strips]


async def test_another_selection_on_the_same_picture_repaints_only_the_lines_that_changed(image, tmp_path):
    # Moving to another annotation of the same image changes a few lines of the picture; only those
    # go to the terminal (a whole new picture is ~170 KB at 160x50). A new picture repaints all.
    app = ViewApp(ansi_color=True)
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        two = [Overlay(ann_id=1, label="zebra", color=(0, 255, 0), bbox=(40, 40, 60, 40), selected=True),
               Overlay(ann_id=2, label="okapi", color=(0, 0, 255), bbox=(10, 90, 30, 20), dimmed=True)]
        view.show("a", image, two, RenderOptions())
        await app.frame_for("a")
        before = view.frame
        painted: list[tuple] = []
        real_refresh = view.refresh
        view.refresh = lambda *regions, **kw: painted.append(regions) or real_refresh(*regions, **kw)
        other = [Overlay(ann_id=1, label="zebra", color=(0, 255, 0), bbox=(40, 40, 60, 40), dimmed=True),
                 Overlay(ann_id=2, label="okapi", color=(0, 0, 255), bbox=(10, 90, 30, 20), selected=True)]
        view.show("b", image, other, RenderOptions())
        await app.frame_for("b")
        after = view.frame
        width, height = view.size
        regions = [r for call in painted for r in call]
        assert regions and all(r.x == 0 and r.width == width for r in regions)
        repainted = {y for r in regions for y in range(r.y, r.y + r.height)}
        assert 0 < len(repainted) < height
        for y in range(height):  # every line left alone shows exactly what the new frame has there
            if y not in repainted:
                assert list(before.strips[y]) == list(after.strips[y]), y
        assert any(list(before.strips[y]) != list(after.strips[y]) for y in repainted)
        painted.clear()
        Image.fromarray(np.full((120, 160, 3), 140, dtype=np.uint8)).save(tmp_path / "other.jpg")
        view.show("c", tmp_path / "other.jpg", other, RenderOptions())  # another picture: every line
        await app.frame_for("c")
        assert {y for call in painted for r in call for y in range(r.y, r.y + r.height)} == set(range(height))


async def test_frames_drawn_ahead_do_not_push_other_pictures_out(image, tmp_path, monkeypatch):
    # The screen draws the picture on screen ahead (the next selection, an accept's outcome); with
    # every image bringing two such frames they pushed the last images' frames out, and going back
    # rendered them again. They are kept apart, a few.
    from labelreview.tui.widgets import image_view

    class SmallApp(ViewApp):
        def compose(self) -> ComposeResult:
            yield ImageView(frame_cache_size=2, ahead_cache_size=1)

    other = tmp_path / "other.jpg"
    Image.fromarray(np.full((120, 160, 3), 140, dtype=np.uint8)).save(other)
    app = SmallApp(ansi_color=True)
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ImageView)
        view.show("a", image, boxes(), RenderOptions())
        await app.frame_for("a")
        view.prefetch([("b", other, boxes(), RenderOptions())])
        await app.workers.wait_for_complete()
        view.prefetch([], ahead=[("a1", image, boxes(label="one"), RenderOptions()),
                                 ("a2", image, boxes(label="two"), RenderOptions())])
        await app.workers.wait_for_complete()
        composed = []
        real = image_view.compose
        monkeypatch.setattr(image_view, "compose", lambda *a, **k: composed.append(a) or real(*a, **k))
        for key, path, label in (("b", other, "zebra"), ("a", image, "zebra"), ("a2", image, "two")):
            view.show(key, path, boxes(label=label), RenderOptions())
            await app.frame_for(key)
            assert view.shown_key == key
        assert composed == []  # all three from the caches
        view.show("a1", image, boxes(label="one"), RenderOptions())  # the older one drawn ahead: gone
        await app.frame_for("a1")
        assert len(composed) == 1
