"""A big queue opens from a window and loads the rest in a thread: the reviewer must not notice,
except that the first frame comes sooner. Run on the sample store with a window of a few items."""

from __future__ import annotations

import pytest

from labelreview.model import AnnotationFilter
from labelreview.review import Queue, ReviewSession
from labelreview.review import queue as queue_mod
from labelreview.store import Store


@pytest.fixture
def store(sample_store, monkeypatch):
    monkeypatch.setattr(queue_mod, "WINDOW", 6)  # the sample's 25 items: a window of 2-3 images
    s = Store.open(sample_store)
    yield s
    s.close()


def walk(q: Queue, step) -> list[int]:
    seen = [q.current]
    while True:
        before = q.current, q.position
        step(q)
        if (q.current, q.position) == before:
            return seen
        seen.append(q.current)


def test_a_lazy_queue_opens_on_a_window_and_ends_up_the_same_queue(store):
    full = Queue(store, leases="off", resume=False)
    lazy = Queue(store, leases="off", resume=False, lazy=True)
    assert lazy.partial and len(lazy.flat) < len(full.flat)
    assert lazy.flat == full.flat[:len(lazy.flat)]  # a prefix, cut between images
    assert lazy.image_items() == full.image_items()
    assert lazy.progress() == (None, None) and lazy.image_count is None
    # Walking past the window waits for the rest: the reviewer sees every item, in order.
    assert walk(lazy, lambda q: q.move(+1)) == full.flat
    assert not lazy.partial and lazy.progress() == full.progress()
    assert lazy.image_count == len(full.image_order)


def test_next_image_across_the_window_edge(store):
    full = Queue(store, leases="off", resume=False)
    lazy = Queue(store, leases="off", resume=False, lazy=True)
    assert walk(lazy, lambda q: q.move_image(+1)) == walk(full, lambda q: q.move_image(+1))


def test_the_loader_thread_counts_progress_and_decisions_made_meanwhile_count_too(store):
    session = ReviewSession(store, auto_checkpoint=False)
    session.accept(1)
    q = Queue(store, leases="off", resume=False, lazy=True)
    q.load_rest()
    q._loader.join()
    # A decision after the loader's snapshot, before the rest is taken in: not lost from progress.
    session.accept(2)
    session.reject(3)
    assert q.adopt() and not q.partial
    assert q.progress() == (3, 25)
    session.undo()  # 3 back to pending
    assert q.progress() == (2, 25)


def test_resuming_far_into_a_big_queue_starts_there_and_can_go_back(store):
    order = Queue(store, leases="off", resume=False).flat
    q = Queue(store, leases="off", lazy=True)
    q.go_to(order[-3])  # past the window: loads the rest, remembers the place
    assert q.current == order[-3]
    again = Queue(store, leases="off", lazy=True)
    assert again.partial and again.current == order[-3]
    assert again.image_index is None  # where it is among all images: not known yet
    # Back over the start of the window: the earlier images come in first.
    assert walk(again, lambda q: q.move(-1)) == order[:len(order) - 2][::-1]
    assert not again.partial and again.image_index == 0


def test_a_filtered_lazy_queue_matches_the_full_one(store):
    session = ReviewSession(store, auto_checkpoint=False)
    for ann in (4, 9, 17):
        session.flag(ann, "loose-box")
    for flt in (AnnotationFilter(statuses=["pending"]), AnnotationFilter(statuses=["flagged"])):
        full = Queue(store, flt, leases="off", resume=False)
        lazy = Queue(store, flt, leases="off", resume=False, lazy=True)
        assert walk(lazy, lambda q: q.move(+1)) == full.flat


def test_go_to_image_and_next_pending_see_the_whole_queue(store):
    full = Queue(store, leases="off", resume=False)
    last_image = full.image_order[-1]
    q = Queue(store, leases="off", resume=False, lazy=True)
    assert last_image not in q.image_order
    q.go_to_image(last_image)
    assert q.current_image == last_image and not q.partial
    q2 = Queue(store, leases="off", resume=False, lazy=True)
    window = list(q2.flat)
    assert q2.partial
    ReviewSession(store, auto_checkpoint=False).accept_all(window)  # the whole window decided
    assert q2.next_pending() == full.flat[len(window)]


def test_a_loader_that_fails_falls_back_to_loading_on_the_owners_thread(store, monkeypatch):
    full = Queue(store, leases="off", resume=False)
    q = Queue(store, leases="off", resume=False, lazy=True)

    def broken():
        raise OSError("disk went away")

    monkeypatch.setattr(q.store, "reader", broken)
    q.load_rest()
    q._loader.join()
    assert walk(q, lambda q: q.move(+1)) == full.flat  # nothing lost, no error to the reviewer
    assert q.progress() == full.progress()


@pytest.mark.parametrize("lazy", [False, True])
def test_following_and_preceding_name_where_j_and_k_land_on_this_image(store, lazy):
    # The review screen draws these ahead: they must be exactly what the keys will show.
    q = Queue(store, leases="off", resume=False, lazy=lazy)
    checked = 0
    while True:
        here, image, pos = q.current, q.current_image, q.position
        following, preceding = q.following, q.preceding
        q.move(-1)
        assert preceding == (q.current if q.current_image == image and q.current != here else None)
        q.position = pos
        q.move(+1)
        landed = q.current if q.current_image == image and q.current != here else None
        assert following == landed
        checked += 1
        if q.current == here:
            break
    assert checked == len(q.flat) and not q.partial


@pytest.mark.parametrize("lazy", [False, True])
def test_next_image_on_the_last_image_stays_on_the_item(store, lazy):
    # n on the last image used to jump back to that image's first item.
    q = Queue(store, leases="off", resume=False, lazy=lazy)
    q.move(+10**6)  # the last item of the queue (a lazy queue loads the rest for it)
    last = q.current
    assert q._run_start(q.position) < q.position  # (not the first item of its image)
    assert q.move_image(+1) == last and q.current == last
    assert q.move_image(-1) != last  # and p still goes back


@pytest.mark.parametrize("lazy", [False, True])
def test_progress_moves_with_other_reviewers_decisions(store, lazy, sample_store):
    # It was counted once, then moved only with this reviewer's own decisions: two
    # screens on one store showed 5/25 while the store held 6 decided.
    from labelreview.review import ReviewSession

    q = Queue(store, leases="off", resume=False, lazy=lazy)
    while q.partial:
        q.move(+10**6)
    decided, total = q.progress()
    mine = ReviewSession(store)
    mine.accept(q.flat[0])
    assert q.progress() == (decided + 1, total)
    with Store.open(sample_store, author="Bob <bob@example.org>") as other:
        ReviewSession(other).reject(q.flat[1], reason="duplicate")
        ReviewSession(other).accept(q.flat[2])
        ReviewSession(other).undo()
    assert q.progress() == (decided + 2, total)  # Bob's reject counts; his accept and undo cancel out
    assert q.progress() == (decided + 2, total)  # (and nothing is counted twice)


def test_a_queue_reads_back_from_its_own_text(store):
    # The filter prompt shows query_text() for editing: what it shows must give the same queue
    # (an --image filter from the command line was dropped by the first edit; a class with a space
    # or a comma could not be written at all).
    from labelreview.model import AnnotationFilter
    from labelreview.review.queue import parse_query

    flt = AnnotationFilter(statuses=["pending"], categories=["dog", "cup", "traffic light", "x:y,z", 'say "hi"'],
                           image_ids=[1, 3], score_min=0.2, conflicts=True)
    q = Queue(store, flt, order="random", seed=7, leases="off", resume=False)
    assert parse_query(q.query_text()) == (flt, "random", 7)
