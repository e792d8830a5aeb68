"""Several reviewers on one server, one store: real processes at once. No decision lost, no lock
error reaching anyone, and the queue's leases keep two reviewers off the same image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

from helpers import _sample, git, sample_images, sample_store, set_config, templates  # noqa: F401
from teams import ALICE, BOB, CAROL, states, verify_ok
from labelreview.model import AnnotationFilter
from labelreview.review import Queue
from labelreview.store import Store

DAVE = "Dave <dave@example.org>"


def test_reviewers_deciding_at_once_through_the_real_command_lose_nothing(sample_store):
    """Four `labelreview` commands at the same moment, each ending with a git checkpoint."""
    work = {ALICE: ["accept", "1", "2", "3", "4", "5"], BOB: ["reject", "6", "7", "8", "9", "10"],
            CAROL: ["accept", "11", "12", "13", "14", "15"], DAVE: ["flag", "16", "17", "18", "--reason", "occluded"]}
    procs = {who: subprocess.Popen(["labelreview", *argv, "--json", "--store", str(sample_store)],
                                   env={**os.environ, "LABELREVIEW_AUTHOR": who},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who, argv in work.items()}
    for who, p in procs.items():
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and err == "", (who, err)  # no "database is locked", no git lock error
        assert len(json.loads(out)) == len([a for a in work[who][1:] if a.isdigit()])
    s = states(sample_store)
    assert [s[i][1] for i in range(1, 19)] == ["accepted"] * 5 + ["rejected"] * 5 + ["accepted"] * 5 + ["flagged"] * 3
    assert {s[i][3] for i in range(1, 19)} == {ALICE, BOB, CAROL, DAVE}
    assert git(sample_store, "status", "--porcelain") == ""  # every checkpoint got its turn
    report = verify_ok(sample_store)
    assert report["writers"] == 4 and report["events"] == 18


WALKER = textwrap.dedent("""
    import json, sys, time
    from labelreview.model import AnnotationFilter
    from labelreview.review import Queue, ReviewSession
    from labelreview.store import Store

    root, author, dwell = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with Store.open(root, author=author) as store:
        s = ReviewSession(store)
        q = Queue(store, AnnotationFilter(statuses=["pending"]), resume=False)
        while True:
            image, t0 = q.current_image, time.time()
            mine = q.shared_with is None
            if mine:
                for a in q.image_items():
                    if store.annotation(a).status == "pending":
                        s.accept(a)
                        q.renew()
            time.sleep(dwell)
            print(json.dumps([image, t0, time.time(), mine]), flush=True)
            before = q.position
            q.move_image(1)
            if q.position == before:
                break
        q.close()
        s.finish()
""")


def test_leases_keep_reviewers_off_each_others_images(sample_store):
    """Three reviewers walk the same queue at once: while one is on an image, nobody else is."""
    procs = [subprocess.Popen([sys.executable, "-c", WALKER, str(sample_store), who, "0.25"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who in (ALICE, BOB, CAROL)]
    visits = []
    for n, p in enumerate(procs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "Traceback" not in err and "locked" not in err, err
        visits += [(n, *json.loads(line)) for line in out.splitlines()]
    held = [v for v in visits if v[4]]
    for i, (who, image, t0, t1, _) in enumerate(held):
        for other, image2, u0, u1, _ in held[i + 1:]:
            if image == image2 and who != other:
                assert t1 <= u0 or u1 <= t0, f"image {image} shown to reviewers {who} and {other} at once"
    assert {v[1] for v in held} == {1, 2, 3, 4, 5}  # and every image got reviewed
    assert len({v[0] for v in held}) >= 2  # by more than one reviewer: the work was shared
    s = states(sample_store)
    assert all(st[1] == "accepted" for st in s.values())
    with Store.open(sample_store) as store:
        assert store.conn.execute("SELECT count(*) FROM leases").fetchone()[0] == 0  # all given back
        assert store.counts()["events"] == 25  # each decided once: nobody re-decided another's image
    verify_ok(sample_store)


def test_expired_or_dead_leases_return_the_image_and_take_leased_shows_it(sample_store):
    set_config(sample_store, checkpoint_every=50)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Store.open(sample_store, author=ALICE) as store:
            def lease(image, pid, expires_in):
                with store._write() as c:
                    c.execute("INSERT OR REPLACE INTO leases VALUES(?,?,?,?,?,?)",
                              (image, BOB, "bob", store.identity.host, pid, time.time() + expires_in))

            lease(1, sleeper.pid, 120)  # Bob is on image 1 (a live process)
            q = Queue(store, AnnotationFilter(), resume=False)
            assert q.current_image == 2 and q.skipped == [(1, "Bob is on it")]
            q.move_image(-1)  # going back over it skips it too: stays on the first free image
            assert q.current_image == 2
            q.go_to_image(1)  # asked for explicitly: shown, with whose it is
            assert q.current_image == 1 and q.shared_with["holder"] == BOB
            q.close()

            lease(1, sleeper.pid, -1)  # Bob's lease expired
            q = Queue(store, AnnotationFilter(), resume=False)
            assert q.current_image == 1 and q.held == 1 and q.shared_with is None
            q.close()

            lease(1, sleeper.pid, 120)
            q = Queue(store, AnnotationFilter(), resume=False, leases="take")
            assert q.current_image == 1 and q.shared_with["holder"] == BOB
            q.close()
        sleeper.kill()
        sleeper.wait()
        with Store.open(sample_store, author=ALICE) as store:  # his process died: his lease with it
            q = Queue(store, AnnotationFilter(), resume=False)
            assert q.current_image == 1 and q.held == 1
            q.close()
    finally:
        sleeper.kill()


def test_a_killed_reviewers_decisions_are_committed_in_their_own_name(sample_store):
    """Alice's session dies before its checkpoint; Bob's next checkpoint commits her decisions. They
    went into Bob's commit, authored by Bob ("2 accepted by Alice, Bob"): `git log --author=Alice`
    missed her work and Bob's signature covered it. Now: a commit of hers first, then his."""
    from labelreview.review import ReviewSession

    with Store.open(sample_store, author=ALICE) as store:  # (closed with no checkpoint: as if killed)
        s = ReviewSession(store, auto_checkpoint=False)
        s.accept(1)
        s.reject(2)
    with Store.open(sample_store, author=BOB) as store:
        ReviewSession(store, auto_checkpoint=False).accept(3)
        store.checkpoint()
        commits = {e["annotation"]: e["commit"] for e in store.events()}
    log = git(sample_store, "log", "--format=%H|%an|%s", "-2").splitlines()
    assert [line.split("|")[1:] for line in log] == [["Bob", "1 accepted by Bob"],
                                                       ["Alice", "1 accepted, 1 rejected by Alice"]]
    assert commits[1] == commits[2] == log[1].split("|")[0] and commits[3] == log[0].split("|")[0]
    assert git(sample_store, "status", "--porcelain") == ""
    verify_ok(sample_store)


def test_a_decision_made_while_a_checkpoint_runs_goes_in_its_authors_commit(sample_store, monkeypatch):
    """Carol decides just after Bob's checkpoint has committed the other reviewers' pending
    decisions in their names, before it stages his own logs. Her line went into Bob's commit ("1
    accepted, 1 rejected by Bob, Carol", authored by Bob); now it waits for a commit of her own."""
    from labelreview.review import ReviewSession

    real = Store._commit_other_writers

    def then_carol_decides(self, repo):
        sha = real(self, repo)
        with Store.open(sample_store, author=CAROL) as other:
            ReviewSession(other, auto_checkpoint=False).reject(2)
        return sha

    with Store.open(sample_store, author=BOB) as store:
        ReviewSession(store, auto_checkpoint=False).accept(1)
        monkeypatch.setattr(Store, "_commit_other_writers", then_carol_decides)
        store.checkpoint()
        monkeypatch.undo()
    log = git(sample_store, "log", "--format=%an|%s", "-1").strip()
    assert log == "Bob|1 accepted by Bob"
    assert "events/carol-" not in git(sample_store, "show", "--name-only", "--format=", "HEAD")
    with Store.open(sample_store, author=CAROL) as store:  # her next checkpoint (or anyone's) takes it
        assert store.uncommitted() == 1
        store.checkpoint()
    assert git(sample_store, "log", "--format=%an|%s", "-1").strip() == "Carol|1 rejected by Carol"
    assert git(sample_store, "status", "--porcelain") == ""
    verify_ok(sample_store)
