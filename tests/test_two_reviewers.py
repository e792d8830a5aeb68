"""Two reviewers on one store at once: what each screen says when the other's decisions land on it.

The other reviewer is a second Store opened on the same directory in this process, deciding through
the review layer as their own session would (leases are per process, so the lease rules are tested
with real processes in test_e2e.py)."""

from __future__ import annotations

from labelreview.review import ReviewSession
from labelreview.store import Store

from test_tui import rendered, settle

BOB = "Bob <bob@example.org>"


def notes(app) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


async def test_accept_the_rest_says_which_label_another_reviewer_decided_meanwhile(sample_store, open_app):
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("n")  # image 2: annotations 2-5, all pending on this screen
        await pilot.press("A")  # "Accept all 4 pending annotations on this image?"
        await settle(pilot, app)
        # While the question is open, Bob (on the image anyway) rejects one of them.
        with Store.open(sample_store, author=BOB) as other:
            ReviewSession(other).reject(5, reason="false-positive")
        await pilot.press("y")
        await settle(pilot, app)
        said = notes(app)
        # It said "Accepted 3 on this image." and nothing about #5.
        assert "Accepted 3 on this image." in said
        assert "Not accepted: #5: Bob decided it since you saw it (rejected" in said
    assert [store.annotation(i).status for i in (2, 3, 4, 5)] == ["accepted"] * 3 + ["rejected"]
    assert [e["author"][:3] for e in store.events(annotation=5)] == ["Bob"]


async def test_a_refused_undo_shows_the_label_as_the_other_reviewer_left_it(sample_store, open_app):
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("a")  # annotation 1 accepted
        await settle(pilot, app)
        with Store.open(sample_store, author=BOB) as other:
            ReviewSession(other).relabel(1, "cat")
        await pilot.press("u")
        await settle(pilot, app)
        assert "cannot undo your accept of annotation 1: Bob changed it since (relabeled, cat)" in notes(app)
        # The screen showed "dog ✓ accepted" under that message, and only this reviewer's accept.
        shown = rendered(app)
        assert "relabeled" in shown and "Bob: relabel" in shown
    a = store.annotation(1)
    assert (a.status, a.category) == ("relabeled", "cat")


async def test_a_refused_flag_says_back_the_reason_and_comment_typed(sample_store, open_app):
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("f", "1", *"tail cut off")  # a reason, and a comment being typed...
        with Store.open(sample_store, author=BOB) as other:  # ...when Bob accepts the label
            ReviewSession(other).accept(1)
        await pilot.press("enter")
        await settle(pilot, app)
        said = notes(app)
        assert "after you saw it; nothing was written" in said
        # The words typed were gone with the refusal; they are said back to decide again from.
        assert 'Not recorded: your flag loose-box "tail cut off"' in said
    a = store.annotation(1)
    assert (a.status, a.updated_by) == ("accepted", BOB)


async def test_a_refused_relabel_names_the_class_picked(sample_store, open_app):
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("r", *"cat")
        with Store.open(sample_store, author=BOB) as other:
            ReviewSession(other).reject(1, reason="false-positive")
        await pilot.press("enter")
        await settle(pilot, app)
        assert "Not recorded: your relabel to cat" in notes(app)
    assert store.annotation(1).status == "rejected"


BOB_OPENS_THE_QUEUE = """
import sys
from labelreview.model import AnnotationFilter
from labelreview.review import Queue
from labelreview.store import Store
with Store.open(sys.argv[1], author="Bob <bob@example.org>") as store:
    q = Queue(store, AnnotationFilter(), resume=False)
    print(q.current_image, q.skipped)
    q.close()
"""


async def test_a_reviewer_studying_an_image_without_deciding_keeps_it(sample_store, open_app):
    # The lease was renewed only by a decision: a reviewer zooming and toggling masks on one image
    # for longer than lease_seconds lost it, and the next reviewer was given the same image.
    import subprocess
    import sys

    from helpers import set_config

    set_config(sample_store, review={"lease_seconds": 2})
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        assert app.queue.current_image == 1 and app.queue.held == 1
        for _ in range(8):  # 4 s of looking: masks off and on, no decision
            await pilot.press("m")
            await pilot.pause(0.5)
        bob = subprocess.run([sys.executable, "-c", BOB_OPENS_THE_QUEUE, str(sample_store)],
                             capture_output=True, text=True, timeout=60)
        assert bob.returncode == 0, bob.stderr
        image, skipped = bob.stdout.split(" ", 1)
        assert image != "1" and "(1, " in skipped, bob.stdout  # image 1 is still this reviewer's


async def test_a_label_another_reviewer_decides_on_this_image_shows_without_a_key(sample_store, monkeypatch, open_app):
    # Only the progress line followed others' decisions: the list, the detail and the picture kept
    # the old state until this reviewer pressed a key.
    from labelreview.tui.screens import review

    monkeypatch.setattr(review, "PROGRESS_EVERY", 0.2)
    app, store = open_app(sample_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("n")  # image 2: annotations 2-5
        await settle(pilot, app)
        row = next(ln for ln in rendered(app).splitlines() if "│3 " in ln)
        assert "pending" in row, row
        with Store.open(sample_store, author=BOB) as other:
            ReviewSession(other, auto_checkpoint=False).reject(3)
        await pilot.pause(0.6)
        await settle(pilot, app)
        row = next(ln for ln in rendered(app).splitlines() if "│3 " in ln)
        assert "rejected" in row, row
