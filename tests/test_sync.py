"""Two machines and a bare remote: clones stand in for separate machines, real git carries the logs.

Concurrent decisions on both sides, sync both ways: conflicts exactly where two reviewers changed an
annotation differently since a common state, nowhere else; both machines end with the same states
and `verify` green. And the cases sync must refuse, with nothing changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import _sample, files_of, git, sample_images, sample_store, set_config, templates  # noqa: F401
from teams import ALICE, BOB, CAROL, bare_remote, cli, decider, finish, js, open_conflicts, states, verify_ok
from labelreview.store import sync as sync_mod


@pytest.fixture
def two_machines(sample_store, tmp_path):
    """Alice's store (the sample) pushed to a bare remote, and Bob's clone of it (a sibling folder,
    so the images recorded relative to the store resolve the same)."""
    remote = bare_remote(tmp_path / "remote.git")
    a = sample_store
    out = cli("remote", "add", "origin", remote, "--store", a, author=ALICE)
    assert out[0] == 0, out[2]
    assert js("sync", "--store", a, author=ALICE)["pushed"]
    b = a.parent / "bob"
    rc, out, err = cli("clone", remote, b, author=BOB)
    assert rc == 0 and "25 annotations" in out, err
    return a, b, remote


def test_concurrent_decisions_sync_both_ways_conflicts_exactly_where_they_should_be(two_machines):
    a, b, _ = two_machines
    # Both reviewers at work at the same time, each on their own machine (a real process each).
    pa = decider(a, ALICE, [["accept", 1], ["accept", 2], ["reject", 3], ["relabel", 6, "cat"],
                            ["relabel", 9, "rocket"], ["accept", 11]])
    pb = decider(b, BOB, [["relabel", 1, "cat"], ["accept", 2], ["flag", 4, "occluded"],
                          ["relabel", 6, "cat"], ["accept", 6], ["accept", 12]])
    finish(pa), finish(pb)

    first = js("sync", "--store", b, author=BOB)  # Bob first: the remote has nothing new for him
    assert first["pushed"] and first["new_conflicts"] == []
    second = js("sync", "--store", a, author=ALICE)  # Alice gets Bob's decisions
    assert second["merge"] == "merged" and second["pushed"] and second["events_received"] == 6
    assert second["new_conflicts"] == [1]
    third = js("sync", "--store", b, author=BOB)  # and Bob gets Alice's
    assert third["merge"] == "fast-forward" and third["new_conflicts"] == [1]

    # Both machines hold the same states: the fold does not depend on which side a decision came from.
    assert states(a) == states(b)
    sa = states(a)
    assert sa[2][:2] == ("cup", "accepted")  # both accepted: the same decision twice is no conflict
    assert sa[3][:2] == ("saucer", "rejected") and sa[4][:2] == ("spoon", "flagged")  # one side each
    assert sa[6][:2] == ("cat", "accepted")  # the same relabel on both sides, then Bob accepted his
    assert sa[9][:2] == ("rocket", "relabeled") and sa[11][1] == sa[12][1] == "accepted"

    # Only annotation 1 differs: Alice accepted the dog, Bob relabeled it a cat. Scripts can see it.
    for root in (a, b):
        assert js("status", "--store", root)["conflicts"] == 1
        conflicts = open_conflicts(root)
        assert list(conflicts) == [1]
        decisions = conflicts[1]
        assert sorted((d["author"], d["action"], d["new"]["category"]) for d in decisions) == [
            (ALICE, "accept", "dog"), (BOB, "relabel", "cat")]
        assert sum(d["current"] for d in decisions) == 1
        verify_ok(root)

    # Bob adjudicates on his machine: he keeps Alice's decision. Sync both ways: resolved everywhere.
    alices = next(d for d in open_conflicts(b)[1] if d["author"] == ALICE)
    rc, out, err = cli("resolve", "1", "--pick", alices["event"][:8], "--reason", "it is a dog", "--store", b,
                       author=BOB)
    assert rc == 0 and "resolved 1 (picked Alice's accept): now dog/accepted" in out, err
    js("sync", "--store", b, author=BOB)
    js("sync", "--store", a, author=ALICE)
    assert states(a) == states(b) and states(a)[1][:2] == ("dog", "accepted")
    for root in (a, b):
        assert js("status", "--store", root)["conflicts"] == 0 and open_conflicts(root) == {}
        assert verify_ok(root)["writers"] == 2  # Alice's chain and Bob's, on both machines
    resolve = js("log", "--annotation", "1", "--limit", "1", "--store", a)[0]
    assert resolve["action"] == "resolve" and resolve["author"] == BOB
    assert sorted(resolve["resolves"]) == sorted(d["event"] for d in decisions if not d["current"])


def test_verify_checks_the_chains_that_arrived(two_machines):
    """A log that came by sync is checked like one's own: an edited line of Bob's, on Alice's machine."""
    a, b, _ = two_machines
    assert cli("reject", "9", "--store", b, author=BOB)[0] == 0
    js("sync", "--store", b, author=BOB)
    js("sync", "--store", a, author=ALICE)
    bobs = next(p for p in (a / "events").rglob("*.jsonl") if "bob" in p.as_posix())
    bobs.write_text(bobs.read_text().replace('"rejected"', '"accepted"'))
    rc, out, _ = cli("verify", "--no-images", "--store", a)
    rel = bobs.relative_to(a).as_posix()
    assert rc == 1 and f"{rel}:1: hash: event content does not match its hash" in out, out


def test_a_decision_made_on_synced_state_is_no_conflict(two_machines):
    """Alice decides, syncs; Bob syncs, then changes it: that is a newer decision, not a conflict."""
    a, b, _ = two_machines
    assert cli("accept", "5", "--store", a, author=ALICE)[0] == 0
    js("sync", "--store", a, author=ALICE)
    js("sync", "--store", b, author=BOB)
    assert cli("reject", "5", "--reason", "duplicate", "--store", b, author=BOB)[0] == 0
    js("sync", "--store", b, author=BOB)
    result = js("sync", "--store", a, author=ALICE)
    assert result["new_conflicts"] == [] and result["conflicts"] == 0
    assert states(a)[5][:2] == ("spoon", "rejected") and states(a) == states(b)


def test_a_push_rejected_because_the_remote_moved_is_merged_and_retried(two_machines, monkeypatch):
    a, b, remote = two_machines
    assert cli("accept", "7", "--store", a, author=ALICE)[0] == 0
    assert cli("relabel", "8", "person", "--store", b, author=BOB)[0] == 0
    real = sync_mod._git
    raced = []

    def racing_git(root, *args, **kw):
        if args[0] == "push" and not raced and Path(root) == a:
            raced.append(1)  # Bob pushes between Alice's fetch and her push
            r = subprocess.run(["labelreview", "sync", "--store", str(b)], capture_output=True, text=True,
                               env={**__import__("os").environ, "LABELREVIEW_AUTHOR": BOB})
            assert r.returncode == 0, r.stderr
        return real(root, *args, **kw)

    monkeypatch.setattr(sync_mod, "_git", racing_git)
    result = js("sync", "--store", a, author=ALICE)
    assert raced and result["pushed"] and result["attempts"] == 2
    assert states(a)[8][:2] == ("person", "relabeled")  # Bob's decision arrived on the retry
    monkeypatch.setattr(sync_mod, "_git", real)
    js("sync", "--store", b, author=BOB)
    assert states(a) == states(b)
    assert git(remote, "rev-parse", "HEAD") == git(a, "rev-parse", "HEAD")


def test_imports_on_both_sides_with_the_same_ids_are_refused_and_nothing_changes(two_machines, tmp_path):
    a, b, _ = two_machines
    from conftest import SAMPLE

    src = tmp_path / "more.json"
    src.write_text((SAMPLE / "proposals.json").read_text())
    images = a.parent / "images"
    assert cli("import", "coco", src, "--images", images, "--source", "vendor", "--store", a, author=ALICE)[0] == 0
    rc, out, _ = cli("import", "coco", src, "--images", images, "--source", "other", "--store", b, author=BOB)
    assert rc == 0 and "run `labelreview sync` now" in out
    js("sync", "--store", b, author=BOB)  # Bob's import reaches the remote first
    before, head = files_of(a), git(a, "rev-parse", "HEAD")
    rc, out, err = cli("sync", "--store", a, author=ALICE)
    assert rc == 1
    assert "not merged: imports were made here and on the remote since the last sync" in err
    assert "annotations 26-50 of import" in err and "Nothing was changed" in err
    assert files_of(a) == before and git(a, "rev-parse", "HEAD") == head
    assert js("status", "--store", a)["total"] == 50
    verify_ok(a)


def test_one_author_writing_from_two_clones_is_refused(two_machines):
    a, b, remote = two_machines
    c = a.parent / "alice-again"
    assert cli("clone", remote, c, author=ALICE)[0] == 0
    assert cli("accept", "1", "--store", c, author=ALICE)[0] == 0
    js("sync", "--store", c, author=ALICE)
    assert cli("accept", "2", "--store", a, author=ALICE)[0] == 0
    head = git(a, "rev-parse", "HEAD")
    rc, _, err = cli("sync", "--store", a, author=ALICE)
    assert rc == 1 and "another clone is writing as the same author on the same host" in err, err
    assert git(a, "rev-parse", "HEAD") == head
    verify_ok(a)


def test_a_config_changed_on_both_sides_aborts_the_merge_and_loses_nothing(two_machines):
    a, b, _ = two_machines
    set_config(a, checkpoint_every=7)
    set_config(b, checkpoint_every=9)
    assert cli("accept", "3", "--store", a, author=ALICE)[0] == 0  # its checkpoint commits the config too
    assert cli("accept", "4", "--store", b, author=BOB)[0] == 0
    js("sync", "--store", b, author=BOB)
    rc, _, err = cli("sync", "--store", a, author=ALICE)
    assert rc == 1 and "labelreview.toml changed on both sides" in err and "nothing was lost" in err
    assert not (a / ".git" / "MERGE_HEAD").exists() and git(a, "status", "--porcelain") == ""
    assert states(a)[3][:2] == ("saucer", "accepted")
    verify_ok(a)


def test_clone_and_remote_mistakes_are_clear(tmp_path, sample_store):
    not_store = tmp_path / "plain.git"
    subprocess.run(["git", "init", "-q", str(tmp_path / "plain")], check=True)
    (tmp_path / "plain" / "x").write_text("x")
    git(tmp_path / "plain", "add", "x")
    git(tmp_path / "plain", "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "x")
    subprocess.run(["git", "clone", "-q", "--bare", str(tmp_path / "plain"), str(not_store)], check=True)
    rc, _, err = cli("clone", not_store, tmp_path / "c")
    assert rc == 1 and "not a labelreview store" in err and not (tmp_path / "c").exists()
    rc, _, err = cli("sync", "--store", sample_store)
    assert rc == 1 and "this store has no remote" in err
    rc, _, err = cli("remote", "add", "bad name", "x", "--store", sample_store)
    assert rc == 1 and "a remote name is letters" in err


def _interleavings(a: list, b: list):
    if not a or not b:
        yield a + b
        return
    for rest in _interleavings(a[1:], b):
        yield [a[0], *rest]
    for rest in _interleavings(a, b[1:]):
        yield [b[0], *rest]


def _fold(order: list[dict]) -> tuple[tuple, list[str]]:
    from labelreview.store.store import _fold_step, _fresh_fold

    st = _fresh_fold(6, "person")
    for ev in order:
        assert _fold_step(st, ev)
    return (st["category"], st["status"]), [c[0] for c in st["new_conflicts"]]


def _ev(h, author, base, category, status, action="relabel"):
    return {"hash": h, "ts": "", "author": author, "action": action, "base": base,
            "new": {"category": category, "status": status}}


@pytest.mark.parametrize("alice_goes_on", [False, True], ids=["agree", "diverge-after-agreeing"])
def test_the_fold_finds_the_same_conflicts_whatever_the_clocks_say(alice_goes_on):
    """Both relabel to cat on their own machine; Bob then accepts his. If Alice then rejects hers,
    the two disagree since the common state (cat): one conflict, in every order the clocks could
    put these events in; if she does not, none."""
    alice = [_ev("F", ALICE, None, "cat", "relabeled")]
    if alice_goes_on:
        alice.append(_ev("G", ALICE, "F", "cat", "rejected", "reject"))
    bob = [_ev("E1", BOB, None, "cat", "relabeled"), _ev("E2", BOB, "E1", "cat", "accepted", "accept")]
    outcomes = [_fold(order) for order in _interleavings(alice, bob)]
    assert len(outcomes) == (6 if alice_goes_on else 3)
    for state, conflicts in outcomes:
        assert len(conflicts) == (1 if alice_goes_on else 0), outcomes
        if not alice_goes_on:
            assert state == ("cat", "accepted")


def test_sync_while_another_reviewer_decides_on_the_same_machine(two_machines):
    """Carol keeps deciding on Alice's machine (her own process) while Alice syncs Bob's work in."""
    a, b, _ = two_machines
    assert cli("reject", "20", "21", "22", "--store", b, author=BOB)[0] == 0
    js("sync", "--store", b, author=BOB)
    ops = [op for i in range(10, 19) for op in (["accept", i], ["sleep", 0.05])]
    carol = decider(a, CAROL, ops)
    assert carol.stdout.readline() == "ready\n"
    got = js("sync", "--store", a, author=ALICE)
    acked = finish(carol)
    assert got["events_received"] >= 3 and len(acked) == 9
    js("sync", "--store", a, author=ALICE)  # what Carol decided after the first sync goes out too
    js("sync", "--store", b, author=BOB)
    assert states(a) == states(b)
    assert [states(b)[i][1] for i in range(10, 23)] == ["accepted"] * 9 + ["pending"] + ["rejected"] * 3
    for root in (a, b):
        assert verify_ok(root)["writers"] == 2  # Bob and Carol


def test_an_adjudication_undone_on_one_machine_reopens_the_conflict_on_both(two_machines):
    # The undo of a resolve reopens its conflict where it is made; the machine that receives it by
    # sync folds the annotation again from its events, and lost the reopening (verify then failed).
    a, b, _ = two_machines
    assert cli("reject", "1", "--store", a, author=ALICE)[0] == 0
    assert cli("accept", "1", "--store", b, author=BOB)[0] == 0
    for store, who in ((a, ALICE), (b, BOB), (a, ALICE)):
        assert cli("sync", "--store", store, author=who)[0] == 0
    decision = open_conflicts(b)[1][1]["event"]
    assert cli("resolve", "1", "--pick", decision, "--store", b, author=BOB)[0] == 0
    assert cli("undo", "--store", b, author=BOB)[0] == 0
    assert sorted(open_conflicts(b)) == [1]
    for store, who in ((b, BOB), (a, ALICE)):
        assert cli("sync", "--store", store, author=who)[0] == 0
    assert sorted(open_conflicts(a)) == [1] and sorted(open_conflicts(b)) == [1]
    verify_ok(a)
    verify_ok(b)


def test_events_a_killed_sync_brought_keep_their_own_commit(two_machines, monkeypatch):
    # A sync killed after its merge, before it marked which commits hold the events it brought:
    # the next checkpoint stamped them with its own commit (blame named it; verify failed).
    a, b, _ = two_machines
    assert cli("relabel", "1", "cat", "--store", a, author=ALICE)[0] == 0
    assert cli("sync", "--store", a, author=ALICE)[0] == 0
    first = git(a, "log", "-1", "--format=%H", "--", "events").strip()
    monkeypatch.setattr(sync_mod, "_attribute_commits", lambda *a, **k: None)  # killed right there
    assert cli("sync", "--store", b, author=BOB)[0] == 0
    monkeypatch.undo()
    assert cli("accept", "5", "--store", b, author=BOB)[0] == 0  # any checkpoint
    blame = js("blame", "1", "--store", b, author=BOB)
    assert blame[0]["commit"] == first
    verify_ok(b)


def test_log_lists_decisions_in_the_order_they_were_made_not_as_they_arrived(two_machines):
    a, b, _ = two_machines
    assert cli("accept", "4", "--store", b, author=BOB)[0] == 0  # Bob first...
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0  # ...then Alice
    assert cli("sync", "--store", b, author=BOB)[0] == 0
    assert cli("sync", "--store", a, author=ALICE)[0] == 0  # Bob's older event arrives at Alice's last
    log = js("log", "--store", a, author=ALICE)
    assert [e["annotation"] for e in log] == [1, 4]  # newest first, by when they were made


def test_a_local_config_edit_that_blocks_a_merge_is_named_with_the_way_out(two_machines):
    # Only admins commit labelreview.toml: a reviewer's local edit stays uncommitted, and once an
    # admin's change arrives the merge cannot proceed. The message named no file and no way out.
    a, b, _ = two_machines

    def admin_commit(message):  # an admin's change, committed with git (nobody here is an admin)
        git(a, "-c", "user.name=Admin", "-c", "user.email=admin@x", "commit", "-q", "-am", message)
        assert cli("sync", "--store", a, author=ALICE)[0] == 0

    set_config(a, roles={"admins": ["an-admin"], "reviewers": [], "adjudicators": []})
    admin_commit("roles")
    assert cli("sync", "--store", b, author=BOB)[0] == 0
    set_config(a, classes=["zebra"])
    admin_commit("a class")
    set_config(b, classes=["yak"])  # bob's own edit: his checkpoints leave it out
    rc, _, err = cli("sync", "--store", b, author=BOB)
    assert rc == 1 and "labelreview.toml" in err and "checkout -- labelreview.toml" in err, err
    assert "nothing was lost" in err


def test_after_an_adjudication_is_undone_the_decision_the_state_holds_competes_not_the_undo(two_machines):
    # After a sync conflict was resolved and the resolve undone, the "current" competing decision
    # was the undo (credited to the adjudicator); picking it said "picked Bob's undo".
    a, b, _ = two_machines
    assert cli("reject", "1", "--store", a, author=ALICE)[0] == 0
    assert cli("accept", "1", "--store", b, author=BOB)[0] == 0
    for store, who in ((a, ALICE), (b, BOB), (a, ALICE)):
        assert cli("sync", "--store", store, author=who)[0] == 0
    before = [(d["author"], d["action"], d["current"]) for d in open_conflicts(b)[1]]
    assert {d[:2] for d in before} == {(ALICE, "reject"), (BOB, "accept")} and before[0][2] and not before[1][2]
    other = next(d for d in open_conflicts(b)[1] if not d["current"])
    assert cli("resolve", "1", "--pick", other["event"], "--store", b, author=CAROL)[0] == 0
    assert cli("undo", "--store", b, author=CAROL)[0] == 0
    after = open_conflicts(b)[1]
    assert [(d["author"], d["action"], d["current"]) for d in after] == before
    holder = next(d for d in after if d["current"])
    rc, out, err = cli("resolve", "1", "--pick", holder["event"], "--store", b, author=CAROL)
    who = holder["author"].split(" <")[0]
    assert rc == 0 and f"picked {who}'s {holder['action']}" in out, err
    verify_ok(b)


def _fold_state(order: list[dict]) -> dict:
    from labelreview.store.store import _fold_step, _fresh_fold

    st = _fresh_fold(6, "person")
    for ev in order:
        assert _fold_step(st, ev)
    return st


def _undo(h, author, base, undoes):
    return {**_ev(h, author, base, "person", "pending", "undo"), "undoes": undoes}


_TAKEN_BACK = {
    # Bob rejects and takes it back before syncing; Alice accepts: Alice's decision stands, no conflict.
    "undone": ([_ev("E", ALICE, None, "person", "accepted", "accept")],
               [_ev("R", BOB, None, "person", "rejected", "reject"), _undo("U", BOB, "R", "R")]),
    # ... then Bob relabels: his relabel and Alice's accept compete.
    "undone-then-relabeled": ([_ev("E", ALICE, None, "person", "accepted", "accept")],
                              [_ev("R", BOB, None, "person", "rejected", "reject"), _undo("U", BOB, "R", "R"),
                               _ev("B2", BOB, "U", "cat", "relabeled")]),
    # ... after relabeling twice and undoing both, one by one.
    "undone-twice": ([_ev("E", ALICE, None, "person", "accepted", "accept")],
                     [_ev("R", BOB, None, "person", "rejected", "reject"), _ev("R2", BOB, "R", "cat", "relabeled"),
                      _undo("U2", BOB, "R2", "R2"), _undo("U", BOB, "U2", "R")]),
}


@pytest.mark.parametrize("case", sorted(_TAKEN_BACK))
def test_a_decision_taken_back_before_a_sync_competes_in_no_order_of_the_clocks(case):
    """The fold gives the same state and the same competing decisions in every order the clocks
    could put two machines' events in; a decision its author undid competes in none."""
    alice, bob = _TAKEN_BACK[case]
    outcomes = []
    for order in _interleavings(alice, bob):
        st = _fold_state(order)
        outcomes.append(((st["category"], st["status"]) if not st["open"] else None,
                         frozenset(st["open"] | {st["last_event"]}) if st["open"] else frozenset()))
    assert len(set(outcomes)) == 1, list(zip(map(lambda o: [e["hash"] for e in o], _interleavings(alice, bob)), outcomes))
    state, competing = outcomes[0]
    if case == "undone-then-relabeled":
        assert competing == {"E", "B2"}
    else:
        assert state == ("person", "accepted") and competing == frozenset()


_AGREED = {
    # Both accept on their own machine; Bob takes his back: Alice's accept stands, held by her.
    "one-undone": ([_ev("E", ALICE, None, "person", "accepted", "accept")],
                   [_ev("S", BOB, None, "person", "accepted", "accept"), _undo("U", BOB, "S", "S")]),
    # ... and Alice hers too: nobody's decision is left.
    "both-undone": ([_ev("E", ALICE, None, "person", "accepted", "accept"), _undo("V", ALICE, "E", "E")],
                    [_ev("S", BOB, None, "person", "accepted", "accept"), _undo("U", BOB, "S", "S")]),
    # ... Bob then relabels what he saw as pending: his relabel and Alice's accept compete.
    "undone-then-relabeled": ([_ev("E", ALICE, None, "person", "accepted", "accept")],
                              [_ev("S", BOB, None, "person", "accepted", "accept"), _undo("U", BOB, "S", "S"),
                               _ev("R", BOB, "U", "cat", "relabeled")]),
}


@pytest.mark.parametrize("case", sorted(_AGREED))
def test_one_of_two_identical_decisions_undone_leaves_the_other_standing(case):
    """The same accept made on two machines, one taken back by its author: the label stayed accepted
    on one server but went back to pending after a sync, in every order of the clocks (the undo
    restored the state before the decision it undid, wiping the other reviewer's)."""
    alice, bob = _AGREED[case]
    outcomes = set()
    keep = 4 if case == "one-undone" else 2  # (who undid last, in both-undone, is the clocks' to say)
    for order in _interleavings(alice, bob):
        st = _fold_state(order)
        outcomes.add(((st["category"], st["status"], st["last_event"], st["updated_by"])[:keep] if not st["open"]
                      else None, frozenset(st["open"] | {st["last_event"]}) if st["open"] else frozenset()))
    assert len(outcomes) == 1, outcomes
    state, competing = outcomes.pop()
    if case == "one-undone":
        assert state == ("person", "accepted", "E", ALICE) and not competing
    elif case == "both-undone":
        assert state == ("person", "pending") and not competing
    else:
        assert competing == {"E", "R"}


def test_an_accept_made_on_two_machines_and_undone_on_one_stays_accepted_after_sync(two_machines):
    a, b, _ = two_machines
    assert cli("accept", "3", "--store", a, author=ALICE)[0] == 0
    alice_accepted = git(a, "rev-parse", "HEAD").strip()
    assert cli("accept", "3", "--store", b, author=BOB)[0] == 0
    assert cli("undo", "--store", b, author=BOB)[0] == 0
    for store, who in ((a, ALICE), (b, BOB), (a, ALICE)):
        rc, out, err = cli("sync", "--store", store, author=who)
        assert rc == 0 and "conflict" not in out, (out, err)
    # diff folds each revision as the store does (it left out undos: label 3 "went back to pending")
    assert [c["annotation"] for c in js("diff", alice_accepted, "HEAD", "--store", a)["changes"]] == []
    for root in (a, b):
        assert open_conflicts(root) == {}
        assert states(root)[3][1] == "accepted" and states(root)[3][3] == ALICE
        row = next(r for r in js("ls", "--status", "accepted", "--store", root) if r["id"] == 3)
        assert row["status"] == "accepted"
        verify_ok(root)
    assert states(a) == states(b)
    rc, out, err = cli("reindex", "--store", b, author=BOB)
    assert rc == 0, err
    assert states(b) == states(a)


def test_a_decision_undone_before_a_sync_goes_to_no_adjudication(two_machines):
    # Bob rejected 3 and undid it on his machine; Alice accepted 3 on hers. After the syncs his
    # withdrawn reject, and his undo, were two of three "competing decisions".
    a, b, _ = two_machines
    assert cli("accept", "3", "--store", a, author=ALICE)[0] == 0
    assert cli("reject", "3", "--store", b, author=BOB)[0] == 0
    assert cli("undo", "--store", b, author=BOB)[0] == 0
    for store, who in ((a, ALICE), (b, BOB), (a, ALICE)):
        rc, out, err = cli("sync", "--store", store, author=who)
        assert rc == 0 and "conflict" not in out, (out, err)
    for root in (a, b):
        assert open_conflicts(root) == {}
        assert states(root)[3][:2] == ("saucer", "accepted") and states(root)[3][3] == ALICE
        verify_ok(root)
    assert states(a) == states(b)


def _synced_with_alices_accept_of_3_standing(a, b) -> None:
    """Bob's store synced, then Alice's: no conflict left, 3 is Alice's accept on both, verify passes."""
    for store, who in ((b, BOB), (a, ALICE)):
        assert cli("sync", "--store", store, author=who)[0] == 0
    for root in (a, b):
        assert open_conflicts(root) == {}
        assert states(root)[3][:2] == ("saucer", "accepted") and states(root)[3][3] == ALICE
        verify_ok(root)
    assert states(a) == states(b)


def test_a_decision_in_conflict_after_a_sync_can_be_taken_back_by_its_author(two_machines):
    # Its undo was refused ("Alice changed it since"), and blocked every undo of Bob's after it.
    a, b, _ = two_machines
    assert cli("accept", "3", "--store", a, author=ALICE)[0] == 0
    assert cli("reject", "3", "--store", b, author=BOB)[0] == 0
    for store, who in ((a, ALICE), (b, BOB), (a, ALICE)):
        assert cli("sync", "--store", store, author=who)[0] == 0
    assert sorted(open_conflicts(b)) == [3]
    mine = next(d for d in open_conflicts(b)[3] if d["author"] == BOB)
    rc, out, err = cli("undo", "--store", b, author=BOB)
    assert rc == 0 and f"undid {mine['action']} of annotation 3" in out, err
    _synced_with_alices_accept_of_3_standing(a, b)


@pytest.mark.parametrize("tamper", ["edit", "delete", "cut-last", "cut-first"])
def test_a_remote_whose_committed_events_were_edited_or_removed_is_refused(two_machines, tamper):
    # Bob edits (or deletes) Alice's log in his clone, commits and pushes it with plain git. Alice's
    # sync merged it without a word (a fast-forward): her log on disk was rewritten or removed under
    # her index, her own decision gone from her files, and she pushed the result on.
    a, b, remote = two_machines
    assert cli("accept", "1", "2", "--store", a, author=ALICE)[0] == 0
    js("sync", "--store", a, author=ALICE)
    js("sync", "--store", b, author=BOB)
    alices = next(p for p in (b / "events").rglob("*.jsonl") if "alice" in p.as_posix())
    rel = alices.relative_to(b).as_posix()
    if tamper == "edit":  # the same length: the size does not give it away
        alices.write_text(alices.read_text().replace('"status":"accepted"', '"status":"rejected"', 1))
    elif tamper == "delete":
        git(b, "rm", "-q", rel)
    else:  # a line cut: the last was taken for "origin is behind", the first for a fork; and the
        # last went through the merge, which cut it from Alice's own log too
        lines = alices.read_text().splitlines(keepends=True)
        alices.write_text("".join(lines[:-1] if tamper == "cut-last" else lines[1:]))
    git(b, "-c", "user.name=Bob", "-c", "user.email=bob@example.org", "commit", "-qam", "tidy")
    git(b, "push", "-q", "origin", "HEAD")
    before, head = files_of(a), git(a, "rev-parse", "HEAD")
    rc, _, err = cli("sync", "--store", a, author=ALICE)
    said = {"edit": f"{rel}:1 does not match its hash", "delete": f"{rel} was deleted there",
            "cut-last": f"{rel}:2 and the lines after it were removed there",
            "cut-first": f"{rel}:1 differs from the line both stores held"}[tamper]
    assert rc == 1 and "not merged: the history on origin does not extend this store's" in err, err
    assert said in err and "Nothing was changed here" in err, err
    assert files_of(a) == before and git(a, "rev-parse", "HEAD") == head
    assert git(remote, "rev-parse", "HEAD") == git(b, "rev-parse", "HEAD")  # nothing was pushed on
    verify_ok(a)


KILLED_AFTER_MERGE = """
import os, sys
from labelreview.store import Store, sync
real = sync._merge
def merge(*args, **kwargs):
    real(*args, **kwargs)
    os._exit(9)  # kill -9 right after git merged, before the replay and the commit attribution
sync._merge = merge
with Store.open(sys.argv[1], author=sys.argv[2]) as store:
    sync.sync(store)
"""


def test_a_sync_killed_after_its_merge_leaves_each_event_its_own_commit(two_machines):
    # The next checkpoint saw the killed holder of the git lock and marked every event not yet
    # attributed as HEAD's: Alice's decisions, which Bob's killed sync had merged, were credited to
    # the merge commit (log and blame named it) and verify failed on the healthy store.
    a, b, _ = two_machines
    assert cli("accept", "1", "2", "--store", a, author=ALICE)[0] == 0
    js("sync", "--store", a, author=ALICE)
    alices = git(a, "rev-parse", "HEAD").strip()
    assert cli("reject", "3", "--store", b, author=BOB)[0] == 0
    proc = subprocess.run([sys.executable, "-c", KILLED_AFTER_MERGE, str(b), BOB], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert git(b, "log", "-1", "--format=%s").startswith("labelreview sync: merge")
    rc, out, err = cli("sync", "--store", b, author=BOB)  # retried: it picks up where it was killed
    assert rc == 0, err
    assert [e["commit"] for e in js("log", "--by", "alice", "--store", b)] == [alices, alices]
    verify_ok(b)
    js("sync", "--store", a, author=ALICE)
    assert states(a) == states(b)


def test_a_release_name_used_on_two_machines_is_named_when_sync_stops(two_machines):
    # Alice and Bob each released "v1" on their own machine. Bob's every sync then failed with
    # "git fetch failed: " and no reason (git fetch -q says nothing of the tag it refused to clobber).
    a, b, _ = two_machines
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    assert cli("release", "v1", "-m", "alice's", "--store", a, author=ALICE)[0] == 0
    js("sync", "--store", a, author=ALICE)
    assert cli("accept", "2", "--store", b, author=BOB)[0] == 0
    assert cli("release", "v1", "-m", "bob's", "--store", b, author=BOB)[0] == 0
    bobs = git(b, "rev-parse", "v1^{}").strip()
    rc, _, err = cli("sync", "--store", b, author=BOB)
    assert rc == 1 and f"release tag(s) v1 (here {bobs[:10]}, on origin " in err, err
    assert "nothing was changed here" in err and "fetch --force origin refs/tags/TAG:refs/tags/TAG" in err, err
    assert git(b, "rev-parse", "v1^{}").strip() == bobs  # his own tag is kept
    git(b, "fetch", "-q", "--force", "origin", "refs/tags/v1:refs/tags/v1")  # the way out it names
    assert cli("sync", "--store", b, author=BOB)[0] == 0
    js("sync", "--store", a, author=ALICE)
    assert states(a) == states(b)


def test_a_fetch_that_fails_says_why(two_machines):
    a, _, remote = two_machines
    remote.rename(remote.with_name("moved.git"))  # the server's path went away
    rc, _, err = cli("sync", "--store", a, author=ALICE)
    assert rc == 1 and "git fetch failed: " in err and "does not appear to be a git repository" in err, err
    # ... and what to do about it: the decisions are safe, the remote's URL can be changed.
    assert "decisions are safe" in err and "remote set-url origin" in err, err


def test_a_git_merge_left_in_progress_in_the_store_is_named_with_the_way_out(two_machines):
    # Someone ran `git merge` (or `git pull`) in Bob's store and left it half-way. sync and every
    # decision's checkpoint failed with "git commit failed: 'fatal: cannot do a partial commit
    # during a merge." (a stray quote, and no word of what to do).
    a, b, _ = two_machines
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    js("sync", "--store", a, author=ALICE)
    git(b, "fetch", "-q", "origin")
    git(b, "-c", "user.name=Bob", "-c", "user.email=bob@example.org", "merge", "-q", "--no-ff", "--no-commit",
        "origin/HEAD")
    rc, _, err = cli("sync", "--store", b, author=BOB)
    assert rc == 1 and "not synced: a git merge is in progress in the store" in err, err
    assert f"`git -C {b} merge --abort`" in err and "Nothing was changed" in err, err
    rc, out, err = cli("accept", "5", "--store", b, author=BOB)
    assert rc == 1 and "accept 5: spoon pending -> spoon accepted" in out  # the decision stands
    assert "cannot do a partial commit during a merge" in err and "'fatal" not in err, err
    assert "a git merge is in progress" in err and "merge --abort" in err, err
    git(b, "merge", "--abort")  # the way out it names
    assert cli("sync", "--store", b, author=BOB)[0] == 0
    js("sync", "--store", a, author=ALICE)
    assert states(a) == states(b) and states(a)[5][1] == "accepted"
    verify_ok(a)
    verify_ok(b)


def test_log_and_blame_say_on_which_machine_each_decision_was_made(two_machines, monkeypatch):
    # One reviewer on two machines: log showed two identical "Alice" rows and blame (text and
    # --json) never named the host, so an auditor could not tell where a decision was made.
    from labelreview.store import identity

    a, _, remote = two_machines
    laptop = a.parent / "alice-laptop"
    monkeypatch.setattr(identity, "_hostname", lambda: "alice-laptop")
    assert cli("clone", remote, laptop, author=ALICE)[0] == 0
    assert cli("relabel", "2", "cat", "--store", laptop, author=ALICE)[0] == 0
    js("sync", "--store", laptop, author=ALICE)
    monkeypatch.undo()
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    js("sync", "--store", a, author=ALICE)
    here = js("log", "--annotation", "1", "--store", a)[0]["host"]
    assert here != "alice-laptop"
    [b] = js("blame", "2", "--store", a)
    assert b["host"] == "alice-laptop" and b["author"] == ALICE
    rc, out, _ = cli("blame", "2", "--store", a)
    assert rc == 0 and "alice-laptop" in out.splitlines()[1] and "host" in out.splitlines()[0]
    rc, out, _ = cli("log", "--store", a)
    rows = out.splitlines()
    assert "host" in rows[0] and here in rows[1] and "alice-laptop" in rows[2]


def test_each_event_keeps_its_own_commit_when_commits_share_a_second(two_machines, monkeypatch):
    # Commit dates count seconds: Bob's quick decisions and the merges between them often share
    # one. git log's default order then listed a commit of Bob's after its child (the other machine's
    # merge reached it first), so a rebuild credited his first decision to his second's commit:
    # log and blame named the wrong commit after `reindex` or on a fresh clone, and verify failed.
    a, b, _ = two_machines
    for var in ("GIT_COMMITTER_DATE", "GIT_AUTHOR_DATE"):
        monkeypatch.setenv(var, "2026-11-28T12:00:00Z")
    assert cli("accept", "1", "--store", b, author=BOB)[0] == 0
    first = git(b, "rev-parse", "HEAD").strip()
    js("sync", "--store", b, author=BOB)
    assert cli("accept", "2", "--store", a, author=ALICE)[0] == 0
    js("sync", "--store", a, author=ALICE)  # a merge with Bob's first commit as its parent
    for i in (3, 4, 5):  # three checkpoints of Bob's on top of his first
        assert cli("accept", str(i), "--store", b, author=BOB)[0] == 0
    js("sync", "--store", b, author=BOB)
    verify_ok(b)
    assert cli("reindex", "--store", b, author=BOB)[0] == 0
    assert js("log", "--annotation", "1", "--store", b)[0]["commit"] == first
    verify_ok(b)


def test_a_push_a_hook_refuses_is_said_at_once_not_retried(two_machines):
    # A server-side hook that refuses the push (a protected branch, a policy check) made sync fetch,
    # merge and push again five times before it gave up: only a remote that moved is worth a retry.
    a, _, remote = two_machines
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho run >> \"$(dirname \"$0\")/../runs\"\necho 'branch is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    rc, out, err = cli("sync", "--store", a, author=ALICE)
    assert rc != 0 and "push" in err and "branch is protected" in err, (out, err)
    assert (remote / "runs").read_text().count("run") == 1
    assert states(a)[1][1] == "accepted"  # and nothing here was lost
    verify_ok(a)


def test_a_sync_to_a_remote_made_again_empty_says_pushed_not_up_to_date(two_machines):
    # The remote's folder was removed and made again empty: the sync pushed the whole store but
    # said "origin was up to date" (its remote-tracking ref, which a fetch does not prune, was stale).
    import shutil

    a, _, remote = two_machines
    shutil.rmtree(remote)
    bare_remote(remote)
    result = js("sync", "--store", a, author=ALICE)
    assert result["pushed"] and result["sent"]
    assert git(remote, "rev-parse", "HEAD").strip() == result["commit"]
    assert not js("sync", "--store", a, author=ALICE)["sent"]


def test_a_sync_with_nothing_to_send_says_the_remote_was_up_to_date(two_machines):
    # It said "pushed" every time, with nothing sent: a reviewer could not tell whether the
    # decisions just made went out.
    a, _, remote = two_machines
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    first = js("sync", "--store", a, author=ALICE)
    assert first["pushed"] and first["sent"]
    assert git(remote, "rev-parse", "HEAD").strip() == first["commit"]
    again = js("sync", "--store", a, author=ALICE)
    assert again["pushed"] and not again["sent"]
    rc, out, err = cli("sync", "--store", a, author=ALICE)
    assert rc == 0 and "origin was up to date" in out and "pushed" not in out, (out, err)
    assert cli("accept", "2", "--store", a, author=ALICE)[0] == 0
    rc, out, err = cli("sync", "--store", a, author=ALICE)
    assert rc == 0 and out.rstrip().endswith(", pushed"), (out, err)


# Git hooks that kill -9 the sync (git's parent) and git itself at the moment git has written the
# merge into the working tree and the index, before it moves HEAD: a merge commit's last step, and a
# fast-forward's (the branch's ref update, announced to the reference-transaction hook).
KILL_SYNC_IN_MERGE = {
    "merged": ("pre-merge-commit", "#!/bin/sh\nkill -9 $(ps -o ppid= -p $PPID) $PPID\n"),
    "fast-forward": ("reference-transaction",
                     "#!/bin/sh\n[ \"$1\" = prepared ] || exit 0\n"
                     "grep -q ' refs/heads/' || exit 0\nkill -9 $(ps -o ppid= -p $PPID) $PPID\n"),
    # Ctrl-C: the sync gets SIGINT (KeyboardInterrupt, its clean-up code runs), git dies of it too.
    "ctrl-c": ("pre-merge-commit", "#!/bin/sh\nkill -INT $(ps -o ppid= -p $PPID)\nkill -9 $PPID\n"),
}


@pytest.mark.parametrize("how", sorted(KILL_SYNC_IN_MERGE))
def test_a_sync_killed_inside_git_merge_is_finished_not_committed_twice(two_machines, how):
    # Bob's sync was killed while git merge wrote Alice's log into his store, before git moved HEAD.
    # The next command replayed that log and its checkpoint committed it as new: a second "2 accepted
    # by Alice" commit in Bob's history, in Alice's name, that she never made (and pushed to her).
    a, b, _ = two_machines
    assert cli("accept", "1", "2", "--store", a, author=ALICE)[0] == 0
    js("sync", "--store", a, author=ALICE)
    alices = git(a, "rev-parse", "HEAD").strip()
    if how != "fast-forward":
        assert cli("reject", "3", "--store", b, author=BOB)[0] == 0  # Bob has a commit of his own
    bobs_head = git(b, "rev-parse", "HEAD").strip()
    name, script = KILL_SYNC_IN_MERGE[how]
    hook = b / ".git" / "hooks" / name
    hook.write_text(script)
    hook.chmod(0o755)
    proc = subprocess.run([sys.executable, "-m", "labelreview", "sync", "--store", str(b)], capture_output=True,
                          text=True, env=dict(os.environ, LABELREVIEW_AUTHOR=BOB), timeout=120)
    hook.unlink()
    assert proc.returncode == (-9 if how != "ctrl-c" else 130), proc.stderr
    log = next((b / "events").glob("alice-*/*/*.jsonl"))
    assert git(b, "rev-parse", "HEAD").strip() == bobs_head and log.is_file()  # written, not committed
    if how == "fast-forward":  # and git killed in the middle of writing it: half a line
        log.write_bytes(log.read_bytes()[:-40])

    rc, out, err = cli("status", "--store", b, author=BOB)  # the next command, any command
    assert rc == 0 and "Traceback" not in err, err
    assert "0 not yet in git" in out, out  # Alice's decisions are hers, in her commit: not new here
    authors = git(b, "log", "--format=%H %an %s").splitlines()
    assert [ln for ln in authors if " Alice " in ln] == [ln for ln in git(a, "log", "--format=%H %an %s")
                                                        .splitlines() if " Alice " in ln]
    assert [e["commit"] for e in js("log", "--by", "alice", "--store", b)] == [alices, alices]
    assert states(b)[1][1] == states(b)[2][1] == "accepted"
    assert "interrupted_sync" in (b / ".labelreview" / "recovery.log").read_text()
    verify_ok(b)
    assert js("sync", "--store", b, author=BOB)["pushed"]
    js("sync", "--store", a, author=ALICE)
    assert states(a) == states(b)
    assert git(a, "log", "--format=%an %s").count("2 accepted by Alice") == 1
    verify_ok(a)


def test_undo_takes_back_the_decision_made_here_not_one_a_sync_brought_from_the_authors_other_machine(
        two_machines, monkeypatch):
    # Alice reviews on the server and on her laptop. She accepted #5 on the laptop, then rejected
    # #7 on the server; the server's sync brought the laptop's accept, which arrived in the index
    # after the reject, and `undo` on the server took back the accept she had made elsewhere.
    from labelreview.store import identity

    server, laptop, _ = two_machines
    with monkeypatch.context() as m:
        m.setattr(identity, "_hostname", lambda: "laptop")
        assert cli("accept", "5", "--store", laptop, author=ALICE)[0] == 0
        assert js("sync", "--store", laptop, author=ALICE)["pushed"]
    assert cli("reject", "7", "--store", server, author=ALICE)[0] == 0
    assert js("sync", "--store", server, author=ALICE)["events_received"] == 1
    rc, out, err = cli("undo", "--store", server, author=ALICE)
    assert rc == 0 and "reject" in out and "#7" in out.replace("annotation ", "#"), (out, err)
    assert states(server)[7][1] == "pending" and states(server)[5][1] == "accepted"


def test_two_flags_for_different_reasons_go_to_adjudication_the_same_reason_agrees(two_machines):
    # Alice flagged #4 "loose-box", Bob on his machine "occluded": after a sync both machines showed
    # #4 flagged loose-box by Alice, no conflict, and Bob's reason was nowhere but `log`. Two flags
    # say different things are wrong: the adjudicator sees both. The same reason (whatever the
    # comments) agrees; two rejects agree whatever their reasons (the label is out either way).
    a, b, _ = two_machines
    for root, who, reason, comment in ((a, ALICE, "loose-box", "tail cut off"), (b, BOB, "occluded", None)):
        argv = ["flag", "4", "--reason", reason, *(["--comment", comment] if comment else []), "--store", root]
        assert cli(*argv, author=who)[0] == 0
    for root, who, reason, comment in ((a, ALICE, "occluded", "the cup's rim"), (b, BOB, "occluded", None)):
        assert cli("flag", "5", "--reason", reason, "--comment", comment or "-", "--store", root, author=who)[0] == 0
    assert cli("reject", "7", "--reason", "false-positive", "--store", a, author=ALICE)[0] == 0
    assert cli("reject", "7", "--reason", "duplicate", "--store", b, author=BOB)[0] == 0
    js("sync", "--store", a, author=ALICE)
    assert js("sync", "--store", b, author=BOB)["new_conflicts"] == [4]
    js("sync", "--store", a, author=ALICE)
    for root in (a, b):
        conflicts = open_conflicts(root)
        assert list(conflicts) == [4]
        assert sorted((d["author"], d["new"]["status"], d["reason"]) for d in conflicts[4]) == [
            (ALICE, "flagged", "loose-box"), (BOB, "flagged", "occluded")]
        assert states(root)[5][1] == "flagged" and states(root)[7][1] == "rejected"
        verify_ok(root)
    assert states(a) == states(b)


def test_a_decision_made_on_an_agreed_decision_its_author_then_withdrew_applies():
    """Three machines. Alice and Bob accept #6 each on their own; Carol, synced with Bob, rejects
    his accept; Bob takes his accept back. Wherever Alice's identical accept is folded before Bob's
    undo, the undo withdrew only Bob's agreement and Carol's reject was made on the state that
    still holds: it applies (it went to adjudication against Alice's accept when the clocks put
    Alice's accept first). Where Bob's undo comes first, his accept was taken back before Alice's
    was known: Carol's reject then competes (with Alice's accept, or with the undo)."""
    alice = [_ev("E", ALICE, None, "person", "accepted", "accept")]
    bob = [_ev("S", BOB, None, "person", "accepted", "accept"), _undo("U", BOB, "S", "S")]
    carol = [_ev("C", CAROL, "S", "person", "rejected", "reject")]
    seen = 0
    for rest in _interleavings(alice, bob):
        for i in range(rest.index(bob[0]) + 1, len(rest) + 1):  # Carol's after Bob's accept
            order = rest[:i] + carol + rest[i:]
            hashes = "".join(e["hash"] for e in order)
            st = _fold_state(order)
            if hashes.index("E") < hashes.index("U"):
                assert (st["category"], st["status"], st["open"]) == ("person", "rejected", set()), hashes
                seen += 1
            else:  # competing: the open decisions and the one the state holds
                assert st["open"] and "C" in st["open"] | {st["last_event"]}, hashes
    assert seen == 5


def test_diff_of_two_revisions_a_sync_merged_says_they_diverged_not_that_each_is_older(two_machines):
    """Alice's and Bob's commits before the sync that merged them: neither holds the other. diff
    said of each order that the second was older than the first, and suggested the other order."""
    a, b, _ = two_machines
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    assert cli("accept", "2", "--store", b, author=BOB)[0] == 0
    alice = git(a, "rev-parse", "HEAD").strip()
    bob = git(b, "rev-parse", "HEAD").strip()
    base = git(a, "merge-base", alice, "HEAD~1").strip()
    js("sync", "--store", b, author=BOB)
    js("sync", "--store", a, author=ALICE)  # merges Bob's commit into Alice's
    for x, y in ((alice, bob), (bob, alice)):
        rc, _, err = cli("diff", x, y, "--store", a, author=ALICE)
        assert rc == 1 and "older" not in err, err
        assert "diverged" in err and f"labelreview diff {base[:10]} {y}" in err
    # Each side from their common ancestor, and across the merge, still answer.
    d = js("diff", base, bob, "--store", a, author=ALICE)
    assert [c["annotation"] for c in d["changes"]] == [2]
    d = js("diff", alice, "HEAD", "--store", a, author=ALICE)
    assert [c["annotation"] for c in d["changes"]] == [2] and d["events"] == 1


def test_export_leaves_out_a_label_reviewers_disagree_on_and_says_so(two_machines, tmp_path):
    """Alice accepted label 1 and Bob relabeled it, each on their machine: after the sync it waits for
    adjudication, holding one side of the dispute (Alice's accept). Exported as accepted, with
    nothing said, that was a silent choice between two reviewers; it is left out and counted unless
    asked for (`--include conflicted`), and is exported once adjudicated."""
    import json as json_

    a, b, _ = two_machines
    assert cli("accept", "1", "2", "--store", a, author=ALICE)[0] == 0
    assert cli("relabel", "1", "cat", "--store", b, author=BOB)[0] == 0
    assert cli("accept", "2", "--store", b, author=BOB)[0] == 0
    js("sync", "--store", b, author=BOB)
    assert js("sync", "--store", a, author=ALICE)["new_conflicts"] == [1]

    out = tmp_path / "reviewed.json"
    rc, text, err = cli("export", "coco", out, "--store", a, author=ALICE)
    assert rc == 0, err
    ids = {x["id"] for x in json_.loads(out.read_text())["annotations"]}
    assert 1 not in ids and 2 in ids
    assert ("1 label left out: reviewers disagree on it and adjudication is open (`labelreview ls --conflicts`; "
            "`--include conflicted` exports them as they stand)") in text
    assert js("export", "coco", out, "--store", a, author=ALICE)["conflicted_left_out"] == 1

    rc, text, err = cli("export", "coco", out, "--include", "conflicted", "--store", a, author=ALICE)
    assert rc == 0 and "left out" not in text, err
    assert 1 in {x["id"] for x in json_.loads(out.read_text())["annotations"]}

    assert cli("resolve", "1", "--category", "cat", "--store", a, author=ALICE)[0] == 0, "adjudicated"
    rc, text, err = cli("export", "coco", out, "--store", a, author=ALICE)
    assert rc == 0 and "left out" not in text
    assert 1 in {x["id"] for x in json_.loads(out.read_text())["annotations"]}


def test_diff_describes_the_decision_a_label_holds_and_says_it_waits_for_adjudication(two_machines):
    """Alice accepted label 1, Bob flagged it on his machine (later): after the sync the label holds
    Alice's accept and waits for adjudication. `diff --json` took `last_action` and `reason` from the
    newest event (Bob's flag, "loose-box") while `new` said accepted, and nothing said the label was
    disputed; a diff from Alice's accept to the sync listed nothing at all."""
    a, b, _ = two_machines
    start = git(a, "rev-parse", "HEAD").strip()
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    accepted = git(a, "rev-parse", "HEAD").strip()
    assert cli("flag", "1", "--reason", "loose-box", "--store", b, author=BOB)[0] == 0
    js("sync", "--store", b, author=BOB)
    assert js("sync", "--store", a, author=ALICE)["new_conflicts"] == [1]
    [blame] = js("blame", "1", "--store", a)
    assert blame["action"] == "accept" and blame["author"] == ALICE

    [c] = js("diff", start, "HEAD", "--store", a)["changes"]
    assert c["new"] == {"category": "dog", "status": "accepted"}
    assert c["last_action"] == "accept" and c["reason"] is None and c["by"] == ALICE
    assert c["event"] == blame["event"] and c["conflict"] is True and c["conflict_before"] is False
    rc, out, _ = cli("diff", start, "HEAD", "--store", a)
    assert rc == 0 and "dog/pending -> dog/accepted  by Alice, Bob  (waiting for adjudication)" in out

    # From Alice's accept: the state did not move, but the label went to adjudication.
    d = js("diff", accepted, "HEAD", "--store", a)
    [c] = d["changes"]
    assert c["old"] == c["new"] == {"category": "dog", "status": "accepted"}
    assert c["conflict"] is True and c["conflict_before"] is False and c["last_action"] == "accept"
    # ... and left the labels a release holds (export leaves a disputed label out)
    assert d["classes"] == [{"class": "dog", "added": 0, "removed": 1, "relabeled_in": 0, "relabeled_out": 0}]

    # Adjudicated for Bob's flag: the resolve made the state (its reason, as blame gives it).
    before = git(a, "rev-parse", "HEAD").strip()
    flag = next(d for d in open_conflicts(a)[1] if d["action"] == "flag")["event"]
    assert cli("resolve", "1", "--pick", flag, "--reason", "checked", "--store", a, author=CAROL)[0] == 0
    assert cli("commit", "--store", a, author=CAROL)[0] == 0
    [c] = js("diff", before, "HEAD", "--store", a)["changes"]
    assert c["new"] == {"category": "dog", "status": "flagged"} and c["conflict"] is False
    assert c["conflict_before"] is True and c["last_action"] == "resolve" and c["reason"] == "checked"
    assert c["by"] == CAROL and c["event"] == js("blame", "1", "--store", a)[0]["event"]
    rc, out, _ = cli("diff", before, "HEAD", "--store", a)
    assert "dog/accepted -> dog/flagged  by Carol  (conflict settled)" in out


def config_changed_on_both_sides(a, b, **bobs) -> None:
    """Alice sets checkpoint_every = 7, accepts 1 and syncs; Bob changes ``bobs`` and rejects 3, not
    synced yet: his next sync merges labelreview.toml changed on both sides."""
    set_config(a, checkpoint_every=7)
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    js("sync", "--store", a, author=ALICE)
    set_config(b, **bobs)
    assert cli("reject", "3", "--store", b, author=BOB)[0] == 0


def test_a_sync_killed_while_git_merges_the_config_changed_on_both_sides_is_finished(two_machines):
    # Alice changed checkpoint_every, Bob lease_seconds: git merges labelreview.toml line by line.
    # A sync killed in that merge left Bob's config holding both changes, uncommitted: the merge
    # made again was refused ("local changes would be overwritten", said only in recovery.log), and
    # Bob's next checkpoint committed Alice's change as his own ("labelreview.toml changed").
    a, b, _ = two_machines
    config_changed_on_both_sides(a, b, lease_seconds=99)
    name, script = KILL_SYNC_IN_MERGE["merged"]
    hook = b / ".git" / "hooks" / name
    hook.write_text(script)
    hook.chmod(0o755)
    proc = subprocess.run([sys.executable, "-m", "labelreview", "sync", "--store", str(b)], capture_output=True,
                          text=True, env=dict(os.environ, LABELREVIEW_AUTHOR=BOB), timeout=120)
    hook.unlink()
    assert proc.returncode == -9, proc.stderr

    rc, out, err = cli("status", "--store", b, author=BOB)  # the next command finishes the merge
    assert rc == 0 and err == "", err
    assert git(b, "status", "--porcelain") == ""
    config = (b / "labelreview.toml").read_text()
    assert "checkpoint_every = 7" in config and "lease_seconds = 99" in config
    assert js("sync", "--store", b, author=BOB)["pushed"]
    js("sync", "--store", a, author=ALICE)
    assert (a / "labelreview.toml").read_text() == config and states(a) == states(b)
    # Each change of the config is in its author's commit only.
    changed_by = git(b, "log", "--no-merges", "--format=%an", "--", "labelreview.toml").split()
    assert changed_by.count("Alice") == 1 and changed_by.count("Bob") == 1, changed_by
    verify_ok(a), verify_ok(b)


def test_a_sync_killed_when_git_stopped_on_a_config_conflict_leaves_a_readable_config(two_machines):
    # git stopped the merge on a conflict in labelreview.toml and the sync was killed before it
    # undid it: the config held git's conflict markers and every command said only "invalid TOML".
    a, b, _ = two_machines
    config_changed_on_both_sides(a, b, checkpoint_every=9)
    git(b, "fetch", "-q", "origin")
    # What the sync had done when it was killed: its journal written, git's merge stopped.
    head, theirs = git(b, "rev-parse", "HEAD").strip(), git(b, "rev-parse", "origin/master").strip()
    (b / ".labelreview" / "sync-merge.json").write_text(
        f'{{"head":"{head}","merging":"{theirs}","remote":"origin"}}\n')
    git(b, "-c", "user.name=x", "-c", "user.email=x@y", "merge", "-q", "origin/master", check=False)
    assert "<<<<<<<" in (b / "labelreview.toml").read_text()

    rc, out, err = cli("status", "--store", b, author=BOB)
    assert rc == 0 and "labelreview.toml changed on both sides" in err, err
    assert git(b, "status", "--porcelain") == "" and not (b / ".git" / "MERGE_HEAD").exists()
    assert "checkpoint_every = 9" in (b / "labelreview.toml").read_text()
    assert git(b, "rev-parse", "HEAD").strip() == head and states(b)[3][1] == "rejected"
    verify_ok(b)


@pytest.mark.parametrize("day", ["same", "next"])
def test_a_store_folder_copied_and_reviewed_in_by_one_author_is_not_merged_into_another_reviewers_store(
        two_machines, monkeypatch, day):
    # Alice copied her store folder (cp -r, not `labelreview clone`) and went on reviewing in both;
    # Bob reviewed in the copy. Bob's sync took Alice's decisions of both copies: on another day's
    # log, git merged them without a word, `verify` then failed on Bob's store and on every store
    # that synced after it (two chains of Alice's from one event); on the same day's log, the sync
    # said the remote's history had been edited, and to restore it from a good clone.
    import shutil

    from labelreview.store import store as store_mod

    a, _, remote = two_machines
    copy = a.parent / "copy-of-alices"
    shutil.copytree(a, copy, symlinks=True)
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    assert js("sync", "--store", a, author=ALICE)["pushed"]
    with monkeypatch.context() as m:
        if day == "next":
            real = store_mod.utc_now
            m.setattr(store_mod, "utc_now", lambda: "2099-01-01" + real()[10:])
        assert cli("reject", "2", "--store", copy, author=ALICE)[0] == 0
    assert cli("accept", "5", "--store", copy, author=BOB)[0] == 0
    head = git(copy, "rev-parse", "HEAD")
    rc, _, err = cli("sync", "--store", copy, author=BOB)
    assert rc == 1 and "two copies of this store" in err and "Nothing was changed" in err, err
    assert "labelreview clone" in err and "edited" not in err, err
    assert git(copy, "rev-parse", "HEAD") == head and states(copy)[5][1] == "accepted"
    verify_ok(copy)
    # The remote kept one chain of Alice's: a clone of it verifies.
    fresh = a.parent / "fresh"
    assert cli("clone", remote, fresh, author=CAROL)[0] == 0
    verify_ok(fresh)


def test_a_sync_with_a_store_someone_reviews_in_says_how_to_sync_with_it(two_machines):
    # A copy of the store (or another clone) added as a remote: the fetch and merge worked, git
    # refused the push into its checked-out branch, and the sync said "run `labelreview sync` again
    # to retry the push", which fails the same way every time.
    a, b, _ = two_machines
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    assert cli("reject", "2", "--store", b, author=BOB)[0] == 0
    assert cli("remote", "add", "bobs", b, "--store", a, author=ALICE)[0] == 0
    rc, _, err = cli("sync", "bobs", "--store", a, author=ALICE)
    assert rc == 1 and "not a bare repository" in err and "--no-push" in err and "retry" not in err, err
    assert states(a)[2][1] == "rejected"  # Bob's decision was merged all the same
    assert js("sync", "bobs", "--no-push", "--store", a, author=ALICE)["merge"] == "up to date"
    assert cli("remote", "add", "alices", a, "--store", b, author=BOB)[0] == 0
    assert js("sync", "alices", "--no-push", "--store", b, author=BOB)["events_received"] == 1
    assert states(a) == states(b)
    verify_ok(a), verify_ok(b)


def test_a_push_that_lost_a_race_for_the_branch_is_tried_again(two_machines, monkeypatch):
    # Two syncs pushing at once: git refuses one with "cannot lock ref ... but expected ...", which
    # is the remote moving as "fetch first" is; the sync exited 1 instead of merging and pushing again.
    import subprocess

    from labelreview.store import sync as sync_mod

    a, b, remote = two_machines
    assert cli("accept", "1", "--store", a, author=ALICE)[0] == 0
    real, lost = sync_mod._git, []

    def git_losing_one_race(root, *args, **kwargs):
        if args[:1] == ("push",) and not lost:
            lost.append(args)
            return subprocess.CompletedProcess(["git", *args], 1, "", (
                "error: cannot lock ref 'refs/heads/master': is at 1111111 but expected 2222222\n"))
        return real(root, *args, **kwargs)

    monkeypatch.setattr(sync_mod, "_git", git_losing_one_race)
    rc, out, err = cli("sync", "--store", a, author=ALICE)
    assert rc == 0 and lost, err
    assert git(remote, "rev-parse", "HEAD") == git(a, "rev-parse", "HEAD")  # pushed the second time


@pytest.mark.parametrize("first", ["alice", "bob"])
def test_an_undo_of_one_of_two_identical_decisions_after_a_sync_takes_back_that_agreement_only(two_machines, first):
    # Alice and Bob both accept 3 and sync; Bob's undo was refused ("Alice changed it since") when
    # his accept came second, and recorded as going back to pending (while the label stayed
    # accepted) when it came first. The README: it takes back his agreement, the label keeps hers.
    a, b, _ = two_machines
    order = [(a, ALICE), (b, BOB)] if first == "alice" else [(b, BOB), (a, ALICE)]
    for store, who in order:
        assert cli("accept", "3", "--store", store, author=who)[0] == 0
    for store, who in ((a, ALICE), (b, BOB), (a, ALICE)):
        assert cli("sync", "--store", store, author=who)[0] == 0
    rc, out, err = cli("undo", "--store", b, author=BOB)
    assert rc == 0 and "undid accept of annotation 3: now saucer accepted" in out, (out, err)
    _synced_with_alices_accept_of_3_standing(a, b)
