"""The sharp inspect view (key i, --graphics sixel|kitty): what it shows, the bytes it sends, and
that the review goes on around it. The terminal's answers are injected (the Pilot has no terminal);
tests/test_termgraphics.py asks a real pseudo-terminal, and runs the real command in one."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from labelreview.review import Queue
from labelreview.store import Store
from labelreview.tui.app import LabelReviewApp
from labelreview.tui.render import _usable, _zoom_region, overlays_for
from labelreview.tui.screens.inspect import InspectScreen
from labelreview.tui.screens.review import ReviewScreen
from labelreview.tui.termgraphics import Graphics

from helpers import set_config
from sixel import decode_sixel

CELL = (10, 20)
SIZE = (120, 36)
# sample_data: annotation 5 is a small box (a spoon, 74x32 px) on coffee.jpg (600x400), the 5th item.
SPOON = 5


def make_app(store_dir, graphics: Graphics | None = None) -> tuple[LabelReviewApp, Store]:
    store = Store.open(store_dir)
    return LabelReviewApp(store, Queue(store), graphics=graphics), store


async def settle(pilot, app) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def rendered(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def notices(app) -> str:
    return " ".join(str(n.message) for n in app._notifications)


def written(app) -> str:
    """What the screen as it is now writes to the terminal on a full repaint (the Pilot's headless
    driver writes nothing: the same update, rendered as the real driver would be handed it)."""
    return app.screen._compositor.render_update(full=True).render_segments(app.console)


async def open_inspect(pilot, app, item: int = SPOON) -> InspectScreen:
    await settle(pilot, app)
    while app.queue.current != item:
        await pilot.press("j")
    await settle(pilot, app)
    await pilot.press("i")
    await settle(pilot, app)
    assert isinstance(app.screen, InspectScreen)
    return app.screen


def source_crop(path, region, size) -> np.ndarray:
    """The region of the original picture at ``size``, straight from the file (no overlays)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize(size, Image.Resampling.LANCZOS, box=region), dtype=np.int32)


# --------------------------------------------------------------------------- without graphics


async def test_i_without_graphics_says_how_to_get_it_and_decides_nothing(sample_store):
    app, store = make_app(sample_store)
    events_before = len(store.events())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("i")
        await settle(pilot, app)
        assert isinstance(app.screen, ReviewScreen)
        assert "--graphics sixel" in notices(app) and "z zooms in half-blocks" in notices(app)
        await pilot.press("a")  # the next key is the review's
        await settle(pilot, app)
    assert len(store.events()) == events_before + 1
    assert store.annotation(1).status == "accepted"
    store.close()


async def test_a_refused_protocol_is_said_at_start_and_by_i(sample_store):
    why = "--graphics sixel: the terminal does not list sixel among its attributes (1;2)"
    app, store = make_app(sample_store, Graphics(asked="sixel", why=why))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert "does not list sixel" in notices(app)
        await pilot.press("i")
        await settle(pilot, app)
        assert isinstance(app.screen, ReviewScreen)
        said = str(list(app._notifications)[-1].message)
        assert "does not list sixel" in said and "z zooms in half-blocks" in said
    store.close()


# --------------------------------------------------------------------------- the view


@pytest.mark.parametrize("protocol", ["sixel", "kitty"])
async def test_inspect_shows_the_zoom_crop_and_any_key_gives_the_review_back(sample_store, protocol):
    app, store = make_app(sample_store, Graphics(asked=protocol, protocol=protocol, cell=CELL))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inspect(pilot, app)
        view = screen.view
        picture = view.picture
        assert picture is not None, view.message
        cols, rows = view.size
        assert (cols, rows) == (SIZE[0], SIZE[1] - 1)  # the whole screen but the caption line
        assert picture.cells == (cols, rows) and picture.offset == (0, 0)
        inspected = picture.inspected
        w, h = cols * CELL[0], rows * CELL[1]
        assert inspected.image.size == (w, h)  # the terminal's real pixels
        image = store.image(2)
        overlays = overlays_for(app.review_screen.image_anns, SPOON, {})
        region = _zoom_region([_usable(ov) for ov in overlays], (image.width, image.height), w / h)
        assert inspected.region == pytest.approx(region)  # the crop z zooms to, at this view's shape
        x0, y0, x1, y1 = region
        assert x0 <= 498 and y0 <= 316 and x1 >= 572 and y1 >= 348 and x1 - x0 < 200  # around the spoon
        # The pixels are that part of the full-resolution file (inside the box: no outline there).
        want = source_crop(image.path, region, (w, h))
        got = np.asarray(inspected.image, dtype=np.int32)
        inner = (slice(h // 2 - 60, h // 2 + 60), slice(w // 2 - 150, w // 2 + 150))
        assert np.abs(got[inner] - want[inner]).mean() < 2
        assert "coffee.jpg" in rendered(app) and f"#{SPOON} spoon" in rendered(app)

        await pilot.press("x")  # closes the view; rejects nothing
        await settle(pilot, app)
        assert isinstance(app.screen, ReviewScreen)
        assert store.annotation(SPOON).status == "pending"
        await pilot.press("a")  # and the next key is the review's again
        await settle(pilot, app)
    assert store.annotation(SPOON).status == "accepted"
    store.close()


@pytest.mark.parametrize("key", ["escape", "i", "q", "space"])
async def test_the_usual_keys_close_it_too_without_acting(sample_store, key):
    app, store = make_app(sample_store, Graphics(asked="sixel", protocol="sixel", cell=CELL))
    async with app.run_test(size=SIZE) as pilot:
        await open_inspect(pilot, app, item=1)
        await pilot.press(key)
        await settle(pilot, app)
        assert isinstance(app.screen, ReviewScreen) and not app.quitting
        assert app.queue.current == 1
    assert store.annotation(1).status == "pending"
    store.close()


@pytest.mark.parametrize("protocol", ["sixel", "kitty"])
async def test_a_key_right_after_the_closing_one_acts_on_the_review(sample_store, protocol):
    # "Look, close, accept": the a typed while the view was taking its picture off the terminal
    # was dropped (it is the review's once the view is gone).
    app, store = make_app(sample_store, Graphics(asked=protocol, protocol=protocol, cell=CELL))
    async with app.run_test(size=SIZE) as pilot:
        await open_inspect(pilot, app, item=1)
        from textual import events

        # Both keys queued at once, as a quick typist's are (the Pilot's press waits between keys).
        app.post_message(events.Key("escape", None))
        app.post_message(events.Key("a", None))
        await settle(pilot, app)
        await pilot.pause(0.6)  # (the view's last paint, at most CLOSE_WAIT_S)
        await settle(pilot, app)
        assert isinstance(app.screen, ReviewScreen)
    assert store.annotation(1).status == "accepted"
    store.close()


async def test_no_toast_is_drawn_over_the_picture(sample_store):
    # A notification (the 256-colour advice at start, a background save) drew its toast over the
    # sixel picture: the view's screen has no toast rack; the notice waits for the review screen.
    from textual.widgets._toast import ToastRack

    app, store = make_app(sample_store, Graphics(asked="sixel", protocol="sixel", cell=CELL))
    async with app.run_test(size=SIZE, notifications=True) as pilot:  # (the Pilot has none by default)
        screen = await open_inspect(pilot, app, item=1)
        app.notify("a notice while inspecting", timeout=30)
        await settle(pilot, app)
        assert not screen.query(ToastRack)
        assert "a notice while inspecting" not in rendered(app)
        await pilot.press("escape")
        await settle(pilot, app)
        assert "a notice while inspecting" in notices(app)
    store.close()


def live_line_caches() -> int:
    """How many widgets' rendered-line caches are alive (each holds its widget's drawn lines)."""
    import gc

    from textual._styles_cache import StylesCache

    gc.unfreeze()  # (the review freezes the GC between frames: frozen objects are neither collected
    gc.collect()  # nor listed by get_objects, so the count depended on when it last collected)
    return sum(1 for o in gc.get_objects() if isinstance(o, StylesCache))


@pytest.mark.parametrize("look", ["i", "?"])
async def test_looking_again_and_again_keeps_nothing_behind(sample_store, look):
    # Each look through i kept ~0.9 MB: every closed view's drawn lines stayed alive in Textual's
    # cache of colours (keyed by the widget's line cache itself; textual_fixes). A reviewer who
    # inspects a few hundred labels carried hundreds of MB. The help screen alike.
    app, store = make_app(sample_store, Graphics(asked="sixel", protocol="sixel", cell=CELL))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        counts = []
        for _ in range(6):
            await pilot.press(look)
            await settle(pilot, app)
            assert not isinstance(app.screen, ReviewScreen)
            await pilot.press("escape")
            for _wait in range(40):  # (the view closes after its last paint: later on a busy machine)
                await settle(pilot, app)
                if isinstance(app.screen, ReviewScreen):
                    break
                await pilot.pause(0.05)
            assert isinstance(app.screen, ReviewScreen)
            counts.append(live_line_caches())
        assert counts[-1] <= counts[1], counts  # flat after the first look, not one more per look
    store.close()


async def test_a_missing_image_gives_its_message_not_a_crash(sample_store, sample_images):
    (sample_images / "coffee.jpg").unlink()
    app, store = make_app(sample_store, Graphics(asked="sixel", protocol="sixel", cell=CELL))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inspect(pilot, app)
        assert screen.view.picture is None
        assert "missing" in screen.view.message and "missing" in rendered(app)
        await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("a")
        await settle(pilot, app)
    assert store.annotation(SPOON).status == "accepted"
    store.close()


async def test_loading_is_shown_until_the_picture_is_made(sample_store):
    app, store = make_app(sample_store, Graphics(asked="sixel", protocol="sixel", cell=CELL))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("i")
        await pilot.pause()
        if app.screen.view.picture is None:  # (a fast machine may have it already)
            assert "loading…" in rendered(app)
        await settle(pilot, app)
        assert app.screen.view.picture is not None
    store.close()


async def test_the_inspect_key_is_remappable_and_listed_in_help(sample_store):
    set_config(sample_store, keys={"inspect": "v"})
    app, store = make_app(sample_store, Graphics(asked="kitty", protocol="kitty", cell=CELL))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await settle(pilot, app)
        assert re.search(r"\bv\b.*Inspect in real pixels", rendered(app))
        await pilot.press("escape")
        await settle(pilot, app)
        await pilot.press("v")
        await settle(pilot, app)
        assert isinstance(app.screen, InspectScreen)
    store.close()


async def test_a_terminal_with_a_smaller_largest_picture_gets_it_centred_on_black(sample_store):
    # xterm's largest sixel picture is 1000x1000 px by default (XTSMGRAPHICS tells it).
    app, store = make_app(sample_store, Graphics(asked="sixel", protocol="sixel", cell=CELL, max_pixels=(600, 500)))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inspect(pilot, app)
        picture = screen.view.picture
        assert picture.cells == (60, 25) and picture.offset == ((120 - 60) // 2, (35 - 25) // 2)
        assert picture.inspected.image.size == (600, 500)
        out = written(app)
    pieces = re.findall(r"\x1b\[(\d+);(\d+)H(\x1bP[0-9;]*q.*?\x1b\\)", out, flags=re.S)
    assert [(int(r), int(c)) for r, c, _ in pieces] == [(y + 1 + 5, 31) for y in range(25)]
    # The margins black like the picture's own (in the console's colours), not the terminal's default.
    assert re.search(r"\x1b\[(40|48;5;16|48;2;0;0;0)m {30}", out) and "\x1b[49m " not in out
    store.close()


# --------------------------------------------------------------------------- the bytes


async def test_sixel_bytes_decode_back_to_the_picture_in_place(sample_store):
    app, store = make_app(sample_store, Graphics(asked="sixel", protocol="sixel", cell=CELL))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inspect(pilot, app)
        picture = screen.view.picture
        out = written(app)
    # Each cell row's sixel picture, after the cursor was put at that row's first cell.
    pieces = re.findall(r"\x1b\[(\d+);(\d+)H(\x1bP[0-9;]*q.*?\x1b\\)", out, flags=re.S)
    cols, rows = picture.cells
    assert [(int(r), int(c)) for r, c, _ in pieces] == [(y + 1, 1) for y in range(rows)]
    decoded = np.concatenate([decode_sixel(data) for _, _, data in pieces])
    want = np.asarray(picture.inspected.image, dtype=np.int32)
    assert decoded.shape == want.shape == (rows * CELL[1], cols * CELL[0], 3)
    assert (decoded >= 0).all()  # every pixel painted
    assert np.abs(decoded - want).mean() < 4  # 256 colours, one palette for the whole picture
    # Every row defines all its colours before its first pixel (xterm drew colours defined among
    # the pixels wrongly), and a register is the same colour in every row (terminals that share
    # registers between pictures recolour what they drew when one is defined anew).
    definitions: dict[str, str] = {}
    for _, _, data in pieces:
        body = data[re.search(r'"[\d;]+', data).end():]
        head = re.match(r"(?:#\d+;2;\d+;\d+;\d+)*", body).group(0)
        assert head and not re.search(r"#\d+;2;", body[len(head):])
        for reg, rgb in re.findall(r"#(\d+);2;(\d+;\d+;\d+)", head):
            assert definitions.setdefault(reg, rgb) == rgb
    store.close()


async def test_kitty_bytes_are_the_picture_as_png_over_the_whole_view(sample_store):
    app, store = make_app(sample_store, Graphics(asked="kitty", protocol="kitty", cell=CELL))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inspect(pilot, app)
        view, picture = screen.view, screen.view.picture
        out = written(app)
        commands = re.findall(r"\x1b_G([^;\x1b]*)(?:;([^\x1b]*))?\x1b\\", out)
        keys = dict(kv.split("=") for kv in commands[0][0].split(","))
        assert keys["a"] == "T" and keys["f"] == "100" and keys["q"] == "2" and keys["C"] == "1"
        assert (int(keys["c"]), int(keys["r"])) == picture.cells
        assert out.index("\x1b_G") > out.index("\x1b[1;1H")  # placed at the view's first cell
        assert all(c[0].startswith("m=") for c in commands[1:]) and commands[-1][0].startswith("m=0")
        png = base64.standard_b64decode("".join(payload for _, payload in commands))
        decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert (decoded == np.asarray(picture.inspected.image)).all()  # lossless
        # Closing paints the view once more: the picture is taken off the terminal (a kitty picture
        # stays over any text drawn under it), and its data freed.
        closed = []
        view.close(then=lambda: closed.append(True))
        assert f"\x1b_Ga=d,d=I,i={view.kitty_id},q=2\x1b\\" in written(app)
        await settle(pilot, app)
        assert closed == [True]  # once, after that paint
    store.close()
