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
