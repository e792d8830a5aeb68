"""Blind double review and adjudication: two reviewers who do not see each other's decision, the
same decision stands, different ones wait for an adjudicator, who picks one or decides anew
(from the command line or the review screen's conflicts queue)."""

from __future__ import annotations

import pytest

from helpers import _sample, sample_images, sample_store, set_config, templates  # noqa: F401
from teams import ALICE, BOB, CAROL, cli, decider, finish, js, open_conflicts, states, verify_ok
from labelreview.model import AnnotationFilter, LabelreviewError
from labelreview.review import Queue, ReviewSession
from labelreview.store import Store


def double(root, on: bool = True) -> None:
    set_config(root, review={"double": on, "lease_seconds": 120})


@pytest.fixture
def reviewed_twice(sample_store):
    """Alice and Bob each review annotations 1-4 blind, in their own processes: they agree on 1
    and 3, disagree on 2 and 4."""
    double(sample_store)
    finish(decider(sample_store, ALICE, [["accept", 1], ["accept", 2], ["relabel", 3, "cup"], ["reject", 4]]))
    # Nothing of Alice's shows yet, to Bob or in the store's state.
    with Store.open(sample_store, author=BOB) as store:
        s = ReviewSession(store)
        assert [store.annotation(i).status for i in (1, 2, 3, 4)] == ["pending"] * 4
        assert s.seen(store.annotation(3)).category == "saucer" and s.history(3) == []
        assert js("status", "--store", sample_store)["conflicts"] == 0
    with Store.open(sample_store, author=ALICE) as store:  # Alice sees her own decisions
        seen = ReviewSession(store).seen(store.annotation(3))
        assert (seen.category, seen.status) == ("cup", "relabeled")
    finish(decider(sample_store, BOB, [["accept", 1], ["reject", 2], ["relabel", 3, "cup"], ["accept", 4]]))
    return sample_store


def test_blind_double_review_agreement_stands_disagreement_goes_to_adjudication(reviewed_twice):
    root = reviewed_twice
    s = states(root)
    assert s[1][:2] == ("dog", "accepted") and s[3][:2] == ("cup", "relabeled")
    assert s[2][:2] == ("cup", "pending") and s[4][:2] == ("spoon", "pending")  # undecided until adjudicated
    conflicts = open_conflicts(root)
    assert sorted(conflicts) == [2, 4]
    assert [(d["author"], d["new"]["status"], d["blind"], d["current"]) for d in conflicts[2]] == [
        (ALICE, "accepted", True, False), (BOB, "rejected", True, False)]
    assert js("status", "--store", root)["conflicts"] == 2
    # A third reviewer is not given what two have reviewed: image 1 (annotation 1 only) is skipped.
    with Store.open(root, author=CAROL) as store:
        q = Queue(store, AnnotationFilter(), resume=False)
        assert q.current_image == 2 and q.skipped == [(1, "reviewed twice (blind double review)")]
        q.close()
    # The adjudicator decides 2 anew and takes Bob's decision on 4.
    rc, out, err = cli("resolve", "2", "--category", "saucer", "--status", "relabeled", "--reason", "it is a saucer",
                       "--store", root, author=CAROL)
    assert rc == 0 and "decided anew" in out, err
    bobs = next(d for d in conflicts[4] if d["author"] == BOB)
    assert cli("resolve", "4", "--pick", bobs["event"], "--store", root, author=CAROL)[0] == 0
    s = states(root)
    assert s[2][:2] == ("saucer", "relabeled") and s[4][:2] == ("spoon", "accepted")
    assert open_conflicts(root) == {} and js("status", "--store", root)["conflicts"] == 0
    verify_ok(root)  # a fresh replay of the logs gives the same states and conflicts


def test_resolve_refuses_what_it_cannot_do_and_writes_nothing(reviewed_twice):
    root = reviewed_twice
    events = js("status", "--store", root)["events"]
    for argv, message in [
        (["resolve", "1", "--category", "dog", "--status", "accepted"], "annotation 1 has no open conflict"),
        (["resolve", "2", "--pick", "abcdef"], "no event abcdef on annotation 2"),
        (["resolve", "2", "--category", "unicorn"], "unknown class 'unicorn'"),
        (["resolve", "2", "--status", "maybe"], "unknown status 'maybe'"),
        (["resolve", "2"], "resolve needs --pick EVENT"),
    ]:
        rc, _, err = cli(*argv, "--store", root, author=CAROL)
        assert rc == 1 and message in err, (argv, err)
    assert js("status", "--store", root)["events"] == events


def test_accept_the_rest_leaves_labels_waiting_for_adjudication_and_accepts_the_others(reviewed_twice):
    # Image 2 holds 2-5: 2 and 4 wait for an adjudicator, 3 is decided, 5 is untouched. "Accept the
    # rest" stopped at 2 with "may not adjudicate ... nothing was written" after accepting what came
    # before it (or, for an adjudicator, settled the conflict as an accept without a word).
    root = reviewed_twice
    with Store.open(root, author=CAROL) as store:
        events, skipped = ReviewSession(store).accept_all([2, 3, 4, 5])
    assert [e["annotation"] for e in events] == [5]
    assert skipped == [(2, "waiting for adjudication"), (4, "waiting for adjudication")]
    assert sorted(open_conflicts(root)) == [2, 4]
    verify_ok(root)


def test_a_withdrawn_blind_decision_stays_hidden_from_the_next_reviewer(sample_store):
    # Alice relabels 4 as cup, Bob flags it (a conflict), Alice takes hers back: 4 waits for a second
    # reviewer beside Bob. Carol's history panel showed "alice: relabel spoon -> cup" and its undo.
    double(sample_store)
    assert cli("relabel", "4", "cup", "--store", sample_store, author=ALICE)[0] == 0
    assert cli("flag", "4", "--reason", "other", "--store", sample_store, author=BOB)[0] == 0
    assert cli("undo", "--store", sample_store, author=ALICE)[0] == 0
    with Store.open(sample_store, author=CAROL) as store:
        assert ReviewSession(store).history(4) == []
    with Store.open(sample_store, author=ALICE) as store:  # her own stay hers to see
        assert [e["action"] for e in ReviewSession(store).history(4)] == ["relabel", "undo"]


def test_a_blind_decision_can_be_taken_back_before_the_second_reviewer(sample_store):
    double(sample_store)
    with Store.open(sample_store, author=ALICE) as store:
        s = ReviewSession(store)
        s.reject(5)
        undo = s.undo()
        assert undo["blind"] and undo["undoes"] and s.seen(store.annotation(5)).status == "pending"
    with Store.open(sample_store, author=BOB) as store:
        ReviewSession(store).accept(5)  # the first (and only) blind decision now: it waits
        assert store.annotation(5).status == "pending" and store.counts()["conflicts"] == 0
    with Store.open(sample_store, author=CAROL) as store:
        ReviewSession(store).accept(5)  # the second reviewer agrees with Bob
        assert store.annotation(5).status == "accepted"
    verify_ok(sample_store)


def test_a_stale_decision_on_one_machine_is_refused_not_applied(sample_store):
    """Live on one store, a decision made on a state someone changed since is refused: nothing written."""
    with Store.open(sample_store, author=ALICE) as a, Store.open(sample_store, author=BOB) as b:
        seen = a.annotation(6).last_event
        ReviewSession(b).relabel(6, "cat")
        with pytest.raises(LabelreviewError, match="annotation 6 was changed by Bob .* nothing was written"):
            ReviewSession(a).accept(6, base=seen)
        assert a.counts()["events"] == 1 and a.counts()["conflicts"] == 0


# ---------------------------------------------------------------------- the review screen


async def test_conflicts_queue_shows_the_competing_decisions_and_keys_resolve(reviewed_twice):
    from test_tui import rendered, settle

    from labelreview.tui.app import LabelReviewApp

    double(reviewed_twice, False)
    store = Store.open(reviewed_twice, author=CAROL)
    try:
        app = LabelReviewApp(store, Queue(store, AnnotationFilter(conflicts=True), resume=False))
        async with app.run_test(size=(140, 44)) as pilot:
            await settle(pilot, app)
            assert app.review_screen.queue.current == 2
            text = rendered(app)
            assert "conflict: competing decisions" in text
            assert "queue: conflicts · file" in text.splitlines()[0]  # (it said "queue: file")
            assert "Alice" in text and "Bob" in text and "cup/accepted" in text and "cup/rejected" in text
            await pilot.press("2")  # keep Bob's decision
            await settle(pilot, app)
            await pilot.press("j")  # on to annotation 4
            await settle(pilot, app)
            assert app.review_screen.queue.current == 4
            await pilot.press("a")  # decide anew with the usual key: that adjudicates too
            await settle(pilot, app)
        two, four = store.events(annotation=2)[-1], store.events(annotation=4)[-1]
        assert two["action"] == four["action"] == "resolve" and two["author"] == CAROL
        assert len(two["resolves"]) == 2 and len(four["resolves"]) == 2
        assert (store.annotation(2).status, store.annotation(4).status) == ("rejected", "accepted")
        assert store.counts()["conflicts"] == 0
    finally:
        store.close()


def test_undoing_an_adjudication_reopens_the_conflict(reviewed_twice):
    # Carol settles 4 by taking Bob's decision, then undoes it: the two decisions compete again
    # (it used to close the conflict for good, with Alice's... nobody's decision waiting).
    root = reviewed_twice
    bobs = next(d for d in open_conflicts(root)[4] if d["author"] == BOB)
    assert cli("resolve", "4", "--pick", bobs["event"], "--store", root, author=CAROL)[0] == 0
    assert sorted(open_conflicts(root)) == [2]
    rc, out, err = cli("undo", "--store", root, author=CAROL)
    assert rc == 0 and "undid resolve" in out, err
    assert sorted(open_conflicts(root)) == [2, 4]
    assert states(root)[4][:2] == ("spoon", "pending")
    # and a rebuild agrees, and settling it again works
    assert cli("reindex", "--store", root)[0] == 0
    assert sorted(open_conflicts(root)) == [2, 4]
    verify_ok(root)
    assert cli("resolve", "4", "--pick", bobs["event"], "--store", root, author=CAROL)[0] == 0
    assert sorted(open_conflicts(root)) == [2]
    verify_ok(root)


def test_picking_a_competing_flag_keeps_its_reason_and_comment(sample_store):
    # Picking Bob's flag used to leave the label "flagged" with no reason (a flag always has one):
    # `ls --reason loose-box` did not find it, and the comment was gone.
    double(sample_store)
    assert cli("accept", "12", "--store", sample_store, author=ALICE)[0] == 0
    assert cli("flag", "12", "--reason", "loose-box", "--comment", "top cut off", "--store", sample_store,
               author=BOB)[0] == 0
    bobs = next(d for d in open_conflicts(sample_store)[12] if d["author"] == BOB)
    rc, out, err = cli("resolve", "12", "--pick", bobs["event"], "--reason", "checked the original",
                       "--store", sample_store, author=CAROL)
    assert rc == 0 and "picked Bob's flag" in out, err
    found = js("ls", "--reason", "loose-box", "--store", sample_store)
    assert [(a["id"], a["status"], a["reason"]) for a in found] == [(12, "flagged", "loose-box")]
    with Store.open(sample_store, author=CAROL) as store:
        assert store.annotation(12).comment == "top cut off"
    verify_ok(sample_store)


async def test_the_conflicts_queue_under_double_review_skips_nothing(reviewed_twice):
    # With blind double review on, the adjudication queue said every image was skipped as
    # "reviewed twice (blind double review)", the one it showed included: the rule that keeps a
    # third reviewer off a label two have reviewed was applied to the adjudicator.
    from test_tui import rendered, settle

    from labelreview.tui.app import LabelReviewApp

    notes = []
    store = Store.open(reviewed_twice, author=CAROL)
    try:
        queue = Queue(store, AnnotationFilter(conflicts=True), resume=False)
        assert queue.skipped == [] and queue.current == 2
        app = LabelReviewApp(store, queue)
        async with app.run_test(size=(140, 44)) as pilot:
            app.notify = lambda message, **kw: notes.append(message)
            await settle(pilot, app)
            assert "conflict: competing decisions" in rendered(app)
            await pilot.press("j")  # on to the other conflicted label
            await settle(pilot, app)
            assert app.review_screen.queue.current == 4
        assert not [n for n in notes if "Skipped" in n], notes
        assert not queue.skipped
    finally:
        store.close()


def test_progress_does_not_count_another_reviewers_blind_decisions(sample_store):
    # Bob's five blind accepts showed as 5/25 reviewed on Alice's open review while the store had
    # them all pending: an overcount, and it told a blind reviewer that someone else had decided.
    double(sample_store)
    with Store.open(sample_store, author=ALICE) as store:
        q = Queue(store, AnnotationFilter(), resume=False, leases="off")
        assert q.progress() == (0, 25)
        finish(decider(sample_store, BOB, [["accept", i] for i in (11, 12, 13, 16, 17)]))
        assert q.progress() == (0, 25) and store.counts()["accepted"] == 0
        # Carol agrees with Bob on two of them: those two now stand, and count.
        finish(decider(sample_store, CAROL, [["accept", 11], ["accept", 12], ["reject", 13]]))
        assert q.progress() == (2, 25)
        assert store.count_matching(AnnotationFilter(), status_not="pending") == 2
        q.close()


def test_after_an_agreement_is_taken_back_the_label_is_reviewed_blind_again(sample_store):
    # Alice and Bob agreed on 1, then Bob took his back. Alice's blind decision, which the fold had
    # folded into Bob's, still counted as a review: Dave's blind reject waited for ever (every other
    # reviewer was kept off the image as "reviewed twice"), and Alice's next decision was applied
    # openly over it, Dave's different decision silently gone.
    double(sample_store)
    for argv, who in ((["accept", "1"], ALICE), (["accept", "1"], BOB), (["undo"], BOB), (["reject", "1"], CAROL)):
        rc, _, err = cli(*argv, "--store", sample_store, author=who)
        assert rc == 0, err
    assert states(sample_store)[1][:2] == ("dog", "pending")
    with Store.open(sample_store, author="Erin <erin@example.org>") as store:
        assert store.blind_reviewers([1]) == {1: {CAROL}}
        q = Queue(store, AnnotationFilter(), resume=False)
        assert q.current_image == 1 and q.skipped == []  # a second reviewer is wanted
        q.close()
    assert cli("accept", "1", "--store", sample_store, author=ALICE)[0] == 0
    assert states(sample_store)[1][:2] == ("dog", "pending")  # no silent overwrite: adjudication
    assert [(d["author"], d["new"]["status"]) for d in open_conflicts(sample_store)[1] if d["blind"]] == [
        (CAROL, "rejected"), (ALICE, "accepted")]
    verify_ok(sample_store)


def test_after_an_adjudication_is_undone_only_the_competing_decisions_can_be_picked(reviewed_twice):
    # Undoing Carol's resolve listed the undo itself as competing decision 1 (the "current" one);
    # picking it "resolved" the label to pending, out of every queue, for good.
    root = reviewed_twice
    alices = next(d for d in open_conflicts(root)[4] if d["author"] == ALICE)
    assert cli("resolve", "4", "--pick", alices["event"], "--store", root, author=CAROL)[0] == 0
    assert cli("undo", "--store", root, author=CAROL)[0] == 0
    decisions = open_conflicts(root)[4]
    assert [(d["author"], d["action"], d["current"]) for d in decisions] == [
        (ALICE, "reject", False), (BOB, "accept", False)]
    undo, resolve = js("log", "--store", root)[:2]
    assert (undo["action"], resolve["action"]) == ("undo", "resolve")
    events = js("status", "--store", root)["events"]
    for other in (undo, resolve):  # neither is a reviewer's decision to keep
        rc, _, err = cli("resolve", "4", "--pick", other["hash"][:12], "--store", root, author=CAROL)
        assert rc == 1 and "is not one of the competing decisions on annotation 4" in err, err
    assert js("status", "--store", root)["events"] == events and sorted(open_conflicts(root)) == [2, 4]
    verify_ok(root)


def test_a_blind_decision_gone_to_adjudication_can_be_taken_back(sample_store):
    # Alice's blind accept of 3 went to adjudication (Bob relabeled it). Her undo failed with
    # "None changed it since", and so did every undo after it: her earlier decisions were stuck.
    double(sample_store)
    assert cli("accept", "2", "3", "--store", sample_store, author=ALICE)[0] == 0
    assert cli("relabel", "3", "cup", "--store", sample_store, author=BOB)[0] == 0
    assert sorted(open_conflicts(sample_store)) == [3]
    rc, out, err = cli("undo", "--store", sample_store, author=ALICE)
    assert rc == 0 and "undid accept of annotation 3: now saucer pending" in out, err
    # Withdrawn: no adjudication; Bob's relabel waits, unseen, for a second reviewer again.
    assert open_conflicts(sample_store) == {}
    with Store.open(sample_store, author=CAROL) as store:
        assert list(store.blind_waiting(3)) == [BOB] and store.annotation(3).status == "pending"
        assert ReviewSession(store).seen(store.annotation(3)).category == "saucer"
    rc, out, err = cli("undo", "--store", sample_store, author=ALICE)  # the one before goes back too
    assert rc == 0 and "undid accept of annotation 2" in out, err
    assert cli("relabel", "3", "cup", "--store", sample_store, author=CAROL)[0] == 0
    assert states(sample_store)[3][:2] == ("cup", "relabeled")  # Carol agrees with Bob
    verify_ok(sample_store)


def test_two_blind_flags_agree_only_for_the_same_reason(sample_store):
    # Under blind double review two flags for different reasons stood as agreement, the second
    # reviewer's reason lost from the label; now they go to the adjudicator like any disagreement.
    double(sample_store)
    finish(decider(sample_store, ALICE, [["flag", 4, "loose-box"], ["flag", 5, "occluded"]]))
    finish(decider(sample_store, BOB, [["flag", 4, "occluded"], ["flag", 5, "occluded"]]))
    s = states(sample_store)
    assert s[5][1] == "flagged"  # the same reason: it stands
    assert s[4][1] == "pending"  # undecided until adjudicated
    conflicts = open_conflicts(sample_store)
    assert list(conflicts) == [4]
    assert sorted((d["author"], d["reason"]) for d in conflicts[4]) == [(ALICE, "loose-box"), (BOB, "occluded")]
    verify_ok(sample_store)


def test_a_blind_reviewers_progress_counts_what_they_decided_the_same_live_and_reopened(sample_store):
    # Under double review, Alice's progress counted her blind accept while her review was open, but
    # not once she reopened it; an undo of a blind decision took one more off (to -1); and Bob's
    # agreeing decision counted the same label a second time.
    double(sample_store)

    def reopened():
        with Store.open(sample_store, author=ALICE) as s2:
            q2 = Queue(s2, AnnotationFilter(), resume=False, leases="off")
            try:
                return q2.progress()
            finally:
                q2.close()

    with Store.open(sample_store, author=ALICE) as store:
        session = ReviewSession(store, auto_checkpoint=False)
        q = Queue(store, AnnotationFilter(), resume=False, leases="off")

        assert q.progress() == (0, 25)
        session.accept(1)
        assert q.progress() == (1, 25) and reopened() == (1, 25)
        session.undo()
        assert q.progress() == (0, 25) and reopened() == (0, 25)
        session.accept(1)
        session.reject(2)
        assert q.progress() == (2, 25) and reopened() == (2, 25)
        # Bob agrees on 1 (it now stands) and disagrees on 2 (adjudication): each counts once.
        finish(decider(sample_store, BOB, [["accept", 1], ["accept", 2], ["accept", 3]]))
        assert states(sample_store)[1][:2] == ("dog", "accepted")
        assert q.progress() == (2, 25) and reopened() == (2, 25)  # Bob's blind 3 is not Alice's
        session.undo()  # Alice withdraws her reject of 2 from the conflict
        assert q.progress() == (1, 25) and reopened() == (1, 25)
        q.close()
