"""The first picture of a review, made before the UI is imported (labelreview.tui.early)."""

from __future__ import annotations

import time

import pytest
from rich.color import ColorSystem

from labelreview.review import Queue, ReviewSession
from labelreview.store import Store
from labelreview.tui import early, render
from labelreview.tui.app import LabelReviewApp
from labelreview.tui.widgets import image_view
from labelreview.tui.widgets.image_view import ImageView


@pytest.fixture
def review(sample_store, monkeypatch):
    monkeypatch.setenv("COLORTERM", "truecolor")  # the app's console and early.color_system() agree
    store = Store.open(sample_store)
    queue = Queue(store)
    yield store, queue, ReviewSession(store, auto_checkpoint=False)
    store.close()


def counting(monkeypatch, name):
    calls = []
    real = getattr(image_view, name)
    monkeypatch.setattr(image_view, name, lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def made_for(store, queue, session, size, color_system=ColorSystem.TRUECOLOR):
    """An EarlyFrame as ``early.start`` makes it, for a terminal of ``size``: first in the process
    (the half-block styles other tests cached keep the escape codes they were rendered with)."""
    render.forget_styles()
    image_id = queue.current_image
    anns = session.image_annotations(image_id)
    overlays = render.overlays_for(anns, queue.current, render.skeletons_of(store.categories()))
    frame = early.EarlyFrame(str(store.image(image_id).path), overlays, early.picture_cells(size), color_system)
    assert frame.wait()
    return frame


async def shown(app, pilot):
    for _ in range(200):
        await pilot.pause(0.02)
        view = app.screen.query_one(ImageView)
        if view.frame is not None and view.shown_key is not None:
            return view
    raise AssertionError("no frame shown")


@pytest.mark.parametrize("size", [(160, 50), (80, 24), (121, 37)])
async def test_predicted_picture_size_is_the_layouts(review, size):
    # early.picture_cells repeats app.tcss's layout: if the CSS changes, this says so.
    store, queue, session = review
    app = LabelReviewApp(store, queue, session)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert tuple(app.screen.query_one(ImageView).size) == early.picture_cells(size)


async def test_first_frame_is_the_early_one_when_it_fits(review, monkeypatch):
    store, queue, session = review
    first = made_for(store, queue, session, (120, 36))
    assert first.frame is not None and early.color_system() == ColorSystem.TRUECOLOR
    composed, decoded = counting(monkeypatch, "compose"), counting(monkeypatch, "decode")
    app = LabelReviewApp(store, queue, session, early=first)
    async with app.run_test(size=(120, 36)) as pilot:
        view = await shown(app, pilot)
        assert view.frame is first.frame  # not composed again on the way
        # (Once it is shown the neighbours are prefetched: those are composed, image 1 is not.)
        assert not [c for c in composed if tuple(c[1]) == first.made.overlays]
        assert not [d for d in decoded if d[0] == first.made.path]
        assert all(s._render_cache is not None for s in view.frame.strips)  # escape codes finished
        assert "dog" in "\n".join(s.text for s in view.frame.strips)  # image 1's proposal, named
        await pilot.press("n")  # and the review goes on as always
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.queue.current_image == 2


async def test_an_early_frame_for_another_size_is_not_shown(review, monkeypatch):
    # E.g. the terminal was resized while the UI imported: the frame is made again for the real size.
    store, queue, session = review
    first = made_for(store, queue, session, (90, 30))
    composed = counting(monkeypatch, "compose")
    app = LabelReviewApp(store, queue, session, early=first)
    async with app.run_test(size=(120, 36)) as pilot:
        view = await shown(app, pilot)
        assert view.frame is not first.frame and view.frame.width == early.picture_cells((120, 36))[0]
        assert composed and composed[0][2] == early.picture_cells((120, 36))


async def test_an_early_frame_for_another_colour_system_is_dropped_with_its_styles(review):
    store, queue, session = review
    first = made_for(store, queue, session, (120, 36), color_system=ColorSystem.EIGHT_BIT)
    eight_bit = {id(seg.style) for strip in first.frame.strips for seg in strip if seg.style is not None}
    app = LabelReviewApp(store, queue, session, early=first)
    async with app.run_test(size=(120, 36)) as pilot:
        view = await shown(app, pilot)
        assert view.frame is not first.frame
        styles = [seg.style for strip in view.frame.strips for seg in strip if seg.style is not None]
        # None of the styles that carry 256-colour codes is reused; the frame is in true colour.
        assert not eight_bit & {id(s) for s in styles}
        assert "38;5;" in first.frame.strips[0]._render_cache
        lines = [s._render_cache for s in view.frame.strips]
        assert all("38;2;" in line and "38;5;" not in line for line in lines)


async def test_a_broken_first_image_still_shows_its_message(review, tmp_path):
    store, queue, session = review
    path = store.image(queue.current_image).path
    with open(path, "r+b") as f:  # the sample store's own copy of the picture
        f.truncate(100)
    first = made_for(store, queue, session, (120, 36))
    assert first.frame is None
    app = LabelReviewApp(store, queue, session, early=first)
    async with app.run_test(size=(120, 36)) as pilot:
        view = await shown(app, pilot)
        assert view.frame.message and "corrupt" in view.frame.message


def test_start_makes_the_first_picture_of_the_queue(review, monkeypatch):
    store, queue, session = review
    monkeypatch.setattr(early, "terminal_size", lambda: (120, 36))
    first = early.start(store, queue, session)
    assert first is not None and first.wait()
    assert first.made.path == str(store.image(queue.current_image).path)
    assert first.made.cells == (76, 33) and first.frame is not None
    assert [ov.selected for ov in first.made.overlays] == [a.id == queue.current for a in
                                                             session.image_annotations(queue.current_image)]
    monkeypatch.setattr(early, "terminal_size", lambda: None)  # not a terminal: nothing started
    assert early.start(store, queue, session) is None


async def test_neighbours_render_after_the_terminal_had_the_picture(review, monkeypatch):
    # The next image is prefetched, but only PREFETCH_AFTER after a picture went to the terminal:
    # decoding it at once took a core from the terminal reading that picture (tmux: ~6 ms a key).
    from labelreview.tui.screens import review as review_screen

    store, queue, session = review
    next_path = str(store.image(queue.neighbours(1)[0]).path)
    decoded: list[tuple[float, str]] = []
    real = image_view.decode
    monkeypatch.setattr(image_view, "decode",
                        lambda path, *a, **k: decoded.append((time.monotonic(), str(path))) or real(path, *a, **k))
    shown_at: list[float] = []
    real_shown = review_screen.ReviewScreen.on_image_view_frame_shown
    monkeypatch.setattr(review_screen.ReviewScreen, "on_image_view_frame_shown",
                        lambda self, event: shown_at.append(time.monotonic()) or real_shown(self, event))
    app = LabelReviewApp(store, queue, session)
    async with app.run_test(size=(120, 36)) as pilot:
        view = await shown(app, pilot)
        for _ in range(100):
            await pilot.pause(0.02)
            if any(p == next_path for _, p in decoded):
                break
        first_neighbour = min(t for t, p in decoded if p == next_path)
        assert review_screen.PREFETCH_AFTER >= 0.02
        assert first_neighbour - shown_at[0] >= 0.9 * review_screen.PREFETCH_AFTER
        await app.workers.wait_for_complete()
        before = len(decoded)
        await pilot.press("n")
        for _ in range(100):
            await pilot.pause(0.02)
            if view.shown_key is not None and view.shown_key[0] == 2:
                break
        assert app.queue.current_image == 2 and view.shown_key[0] == 2
        assert [p for _, p in decoded[before:]].count(next_path) == 0  # the prefetched frame, not a new one


async def test_the_next_item_on_the_image_is_ready_before_its_key(review, monkeypatch):
    # Most keys stay on the image: after a picture, the next item is drawn ahead as it is (j) and
    # as it will be once the current one is accepted (space), the current one accepted (a), and
    # the item before (k), so each of these keys finds its frame made.
    from labelreview.tui.screens import review as review_screen

    store, queue, session = review
    image_id = next(im.id for im in store.images() if len(queue.image_items(im.id)) >= 3)
    queue.go_to_image(image_id)
    composed: list[tuple] = []
    real = image_view.compose
    monkeypatch.setattr(image_view, "compose",
                        lambda d, overlays, *a, **k: composed.append(tuple(overlays)) or real(d, overlays, *a, **k))
    drawn_ahead: list[int] = []  # each time the screen drew its picture ahead
    real_prefetch = review_screen.ReviewScreen._prefetch
    monkeypatch.setattr(review_screen.ReviewScreen, "_prefetch",
                        lambda self, ahead=False: (drawn_ahead.append(1) if ahead else None)
                        or real_prefetch(self, ahead=ahead))
    app = LabelReviewApp(store, queue, session)
    async with app.run_test(size=(120, 36)) as pilot:
        view = await shown(app, pilot)

        pictures = [1]  # pictures shown so far: the screen draws ahead once after each

        async def settle():  # a reviewer looking at the picture before the next key
            for _ in range(250):  # (however slow the machine: until it has drawn this one ahead)
                if len(drawn_ahead) >= pictures[0]:
                    break
                await pilot.pause(0.02)
            assert len(drawn_ahead) >= pictures[0]
            await app.workers.wait_for_complete()
            await pilot.pause(0.05)

        async def press(key: str, image: int, item: int):
            await settle()
            pictures[0] += 1
            before = len(composed)
            await pilot.press(key)
            for _ in range(100):
                if view.shown_key is not None and view.shown_key[:2] == (image, item):
                    break
                await pilot.pause(0.01)
            assert view.shown_key[:2] == (image, item)  # (image, selected item, overlays, options)
            assert view.shown_key[2] not in composed[before:]  # shown from the cache: drawn ahead

        first, second, third = queue.image_items(image_id)[:3]
        await press("j", image_id, second)
        await press("space", image_id, third)  # accept #second, go on to #third
        assert store.annotation(second).status == "accepted"
        await press("a", image_id, third)  # accept #third, stay
        assert store.annotation(third).status == "accepted"
        await press("k", image_id, second)  # back to the one decided before


@pytest.mark.parametrize("key, status", [("x", "rejected"), ("f", "flagged")])
async def test_a_decision_with_a_reason_is_drawn_while_the_reason_is_picked(review, monkeypatch, key, status):
    # Reject and flag ask for a reason first: meanwhile the picture is drawn as the decision will
    # leave it, and it is on screen from the cache as the dialog closes.
    store, queue, session = review
    image_id = next(im.id for im in store.images() if len(queue.image_items(im.id)) >= 2)
    queue.go_to_image(image_id)
    target = queue.current
    composed: list[tuple] = []
    real = image_view.compose
    monkeypatch.setattr(image_view, "compose",
                        lambda d, overlays, *a, **k: composed.append(tuple(overlays)) or real(d, overlays, *a, **k))
    app = LabelReviewApp(store, queue, session)
    async with app.run_test(size=(120, 36)) as pilot:
        view = await shown(app, pilot)
        await pilot.press(key)  # the reason dialog opens; the decided picture is drawn meanwhile
        await pilot.pause(0.05)
        await app.workers.wait_for_complete()
        before = len(composed)
        await pilot.press("1", "enter")  # the first reason; no comment
        for _ in range(100):
            await pilot.pause(0.01)
            if store.annotation(target).status == status and view.shown_key is not None and \
                    any(o.ann_id == target and o.dimmed == (status == "rejected") for o in view.shown_key[2]):
                break
        assert store.annotation(target).status == status
        shown_overlays = view.shown_key[2]
        assert next(o for o in shown_overlays if o.ann_id == target).selected
        assert shown_overlays not in composed[before:]  # from the cache: drawn while the reason was picked
