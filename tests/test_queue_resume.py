"""Quitting and coming back: the review queue resumes where the reviewer left it."""

from __future__ import annotations

import pytest

from labelreview.model import AnnotationFilter
from labelreview.review import Queue, ReviewSession
from labelreview.review import queue as queue_mod
from labelreview.store import Store

from test_tui import rendered, settle



def pending() -> AnnotationFilter:
    return AnnotationFilter(statuses=["pending"])


def open_app(root, **kwargs):
    from labelreview.tui.app import LabelReviewApp

    store = Store.open(root)
    # As `labelreview review --status pending` opens it.
    return LabelReviewApp(store, Queue(store, pending(), lazy=True, **kwargs)), store


async def test_a_pending_queue_resumes_after_the_label_decided_last(sample_store):
    """a (accept, stay) then q on image 3: the next review of the pending labels opened on image 1,
    the start of the queue, rather than on image 3 where the reviewer was."""
    app, store = open_app(sample_store)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot, app)
            await pilot.press("n", "n")  # image 3 (astronaut.jpg): annotations 6-10
            await settle(pilot, app)
            assert app.queue.current == 6
            await pilot.press("a")
            await settle(pilot, app)
            await pilot.press("q")
            await pilot.pause()
        assert store.annotation(6).status == "accepted"
    finally:
        store.close()
    app, store = open_app(sample_store)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot, app)
            assert app.queue.current == 7 and app.queue.current_image == 3
            assert "astronaut.jpg" in rendered(app)
    finally:
        store.close()


@pytest.mark.parametrize("order", ["file", "score", "score-desc", "random", "suspicion"])
@pytest.mark.parametrize("lazy", [False, True])
def test_every_order_resumes_on_the_item_after_one_that_left_the_queue(sample_store, order, lazy, monkeypatch):
    if lazy:  # a window of a few items: the resumed queue starts part-way, the rest loads after
        monkeypatch.setattr(queue_mod, "WINDOW", 6)
    with Store.open(sample_store) as store:
        q = Queue(store, pending(), order=order, seed=3, leases="off", resume=False, lazy=lazy)
        q.move_image(1)
        q.move_image(1)
        left_on, following = q.current, q.flat[q.position + 1]
        ReviewSession(store).accept(left_on)
        q.close()
        again = Queue(store, pending(), order=order, seed=3, leases="off", lazy=lazy)
        assert left_on not in again.flat
        assert again.current == following
        again.wait_complete()
        assert again.current == following and again.progress() == (0, 24)
        # k goes back to what came before it, as before the quit.
        assert again.move(-1) == q.flat[q.position - 1]
        again.close()


def test_a_class_queue_resumes_after_a_label_relabeled_out_of_it(sample_store):
    with Store.open(sample_store) as store:
        q = Queue(store, AnnotationFilter(categories=["coin"]), leases="off", resume=False)
        coins = list(q.flat)
        q.go_to(coins[3])
        ReviewSession(store).relabel(coins[3], "person")
        q.close()
        again = Queue(store, AnnotationFilter(categories=["coin"]), leases="off")
        assert again.current == coins[4]
        again.close()


def test_nothing_left_after_it_resumes_at_the_start(sample_store):
    with Store.open(sample_store) as store:
        q = Queue(store, pending(), leases="off", resume=False)
        q.move(+10**6)  # the last label of the queue
        last = q.current
        ReviewSession(store).accept(last)
        q.close()
        for lazy in (False, True):
            again = Queue(store, pending(), leases="off", lazy=lazy)
            assert again.current == q.flat[0] and not again.partial
            again.close()


def test_a_random_queue_keeps_its_order_as_images_leave_it_or_arrive(sample_store, sample_images):
    """`--status pending --order random --seed N`: once every label of an image was decided, the
    queue opened next drew another order for the images left, and images not reviewed yet ended up
    before the place the reviewer resumed at (so `n` never reached them)."""
    import json

    import PIL.Image

    from labelreview.formats import coco

    with Store.open(sample_store) as store:
        session = ReviewSession(store)
        for seed in range(8):
            before = Queue(store, pending(), order="random", seed=seed, leases="off", resume=False).image_order
            done = session.accept_all(Queue(store, pending(), leases="off", resume=False).image_items(before[1]))[0]
            after = Queue(store, pending(), order="random", seed=seed, leases="off", resume=False).image_order
            assert after == [i for i in before if i != before[1]], seed
            for _ in done:
                session.undo()
        # A new import (images 6-7) takes places among them; the others keep their order.
        before = {seed: Queue(store, order="random", seed=seed, leases="off", resume=False).image_order
                  for seed in range(8)}
        data = {"images": [{"id": i, "file_name": f"new-{i}.png", "width": 64, "height": 48} for i in (1, 2)],
                "categories": [{"id": 1, "name": "cat"}],
                "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [4, 4, 20, 20], "score": 0.5}
                                for i in (1, 2)]}
        for i in (1, 2):
            PIL.Image.new("RGB", (64, 48), (40 * i, 0, 0)).save(sample_images / f"new-{i}.png")
        new = sample_images.parent / "new.json"
        new.write_text(json.dumps(data))
        store.ingest(coco.read(new), source="model-v2", image_root=sample_images)
        for seed in range(8):
            order = Queue(store, order="random", seed=seed, leases="off", resume=False).image_order
            assert len(order) == 7 and [i for i in order if i in before[seed]] == before[seed], seed


async def test_progress_counts_this_reviewers_decisions_from_another_terminal(sample_store, open_app):
    """`labelreview accept 20` run by the same reviewer in a second terminal (or a second review
    window) while the review is open: the progress line counted other reviewers' decisions made
    meanwhile, but not this one (same writer as the screen's own), until the queue was reopened."""
    from helpers import run

    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("a")  # this screen's own decision
        await settle(pilot, app)
        assert "1/25 reviewed" in rendered(app)
        assert run("accept", "20", "--store", str(sample_store))[0] == 0  # the same reviewer
        assert run("accept", "21", "--store", str(sample_store), "--author", "Bob <b@example.org>")[0] == 0
        app.screen._tick()  # (every few seconds)
        await settle(pilot, app)
        assert "3/25 reviewed" in rendered(app)
        await pilot.press("u")  # undo this screen's accept: counted once, taken back once
        await settle(pilot, app)
        assert "2/25 reviewed" in rendered(app)
        app.screen._tick()
        await settle(pilot, app)
        assert "2/25 reviewed" in rendered(app)


async def test_a_reversed_score_range_is_refused_and_the_queue_stays(sample_store, open_app):
    """`score:0.9:0.1` in the / prompt emptied the queue ("Nothing matches this filter"), and
    `ls --score 0.9:0.1` printed nothing, as if no label had a score in 0.1..0.9."""
    from helpers import run
    from test_tui import filter_queue

    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("n")
        await settle(pilot, app)
        for text in ("score:0.9:0.1", "score:nan:"):
            await filter_queue(pilot, app, text)
            said = [str(n.message) for n in app._notifications]
            assert not any("Nothing matches" in m for m in said)
            assert app.queue.current_image == 2 and len(app.queue) == 25  # the queue as it was
        assert "the score range 0.9:0.1 is empty: MIN comes first (0.1:0.9)" in said
        await filter_queue(pilot, app, "score:0.1:0.9")
        assert len(app.queue) == 13  # (the 13 scores in 0.1..0.9)
    rc, out, err = run("ls", "--score", "0.9:0.1", "--store", str(sample_store))
    assert rc != 0 and "MIN comes first" in err


@pytest.mark.parametrize("text", ["status:pending seed:3", "score:0.123456789:", "score::0.9000001 order:score"])
def test_the_queue_remembered_is_the_queue_with_the_place(sample_store, text):
    """A queue chosen with / (or on the command line) is remembered as text, and `labelreview review`
    with no filter reopens it at the place left. A seed given with an order other than random, or a
    score bound of more than 6 digits, made the text read back as another queue: the review opened
    at the start, or on other labels."""
    from labelreview.review.queue import last_queue, parse_query, remember_queue

    with Store.open(sample_store) as store:
        flt, order, seed = parse_query(text)
        q = Queue(store, flt, order=order, seed=seed, leases="off", lazy=True)
        remember_queue(q)
        q.move_image(1)
        q.move(1)
        q.close()
        _text, flt, order, seed = last_queue(store)
        again = Queue(store, flt, order=order, seed=seed, leases="off", lazy=True)
        again.wait_complete()
        assert again.flat == q.flat and again.current == q.current
        again.close()


async def test_an_undo_under_blind_double_review_takes_the_decision_back_from_the_pace(sample_store, open_app):
    """Under blind double review an undo of a decision no second reviewer matched yet counted as one
    more decision: a, u showed 2 decisions' pace and a shorter time left, not none."""
    from helpers import set_config

    set_config(sample_store, review={"double": True})
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("a")
        await settle(pilot, app)
        assert app.session.decisions == 1 and "0.0/min" not in rendered(app)
        await pilot.press("u")
        await settle(pilot, app)
        assert app.session.decisions == 0
        assert "· 0.0/min · — ·" in rendered(app)
    assert [e["action"] for e in store.events(annotation=1)] == ["accept", "undo"]
