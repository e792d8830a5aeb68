"""The store and the review session: what one decision records, undo, stale decisions, rules on
classes and reasons, roles, checkpoints, reindex, and how a store is found."""

from __future__ import annotations

import getpass
import json
import re
import shutil
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from helpers import AUTHOR, _sample, empty_store, files_of, git, run, sample_images, sample_store, set_config, templates  # noqa: F401
from labelreview.model import AnnotationFilter, ConflictError, LabelreviewError, PermissionRefused
from labelreview.review import ReviewSession
from labelreview.store import Store, canonical, eventlog, find_store

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def store(sample_store, open_store) -> Store:
    return open_store(sample_store)


def log_lines(root: Path) -> list[dict]:
    return [json.loads(line) for rel in eventlog.list_files(root) for line in (root / rel).read_bytes().splitlines()]


# ---------------------------------------------------------------------- one decision


def test_an_event_records_who_what_when_why(store):
    s = ReviewSession(store)
    first = s.accept(2)
    ev = s.relabel(3, "cup", reason="wrong-class", comment="it is a cup")
    assert ev == log_lines(store.root)[-1]  # what the call returns is what the log holds
    assert ev["author"] == AUTHOR
    assert ev["login"] == getpass.getuser() and ev["host"] == socket.gethostname()
    assert TS.match(ev["ts"]) and ev["ts"] >= first["ts"]
    assert ev["action"] == "relabel" and ev["annotation"] == 3 and ev["image"] == 2
    assert ev["old"] == {"category": "saucer", "status": "pending"}
    assert ev["new"] == {"category": "cup", "status": "relabeled"}
    assert ev["reason"] == "wrong-class" and ev["comment"] == "it is a cup"
    assert ev["base"] is None  # the untouched proposal
    assert ev["prev"] == first["hash"] and first["prev"] is None
    assert ev["seq"] == first["seq"] + 1 == 2
    assert ev["hash"] == canonical.event_hash(ev)
    assert ev["writer"] == "reviewer-example.org/" + ev["host"]
    rel = eventlog.list_files(store.root)[0]
    assert rel == f"events/{ev['writer']}/{ev['ts'][:10]}.jsonl"
    # and the index says the same
    a = store.annotation(3)
    assert (a.category, a.status, a.proposed_category, a.last_event) == ("cup", "relabeled", "saucer", ev["hash"])
    assert (a.updated_by, a.reason, a.comment) == (AUTHOR, "wrong-class", "it is a cup")
    # the next decision on it names the state it was made on
    again = s.accept(3)
    assert again["base"] == ev["hash"] and again["old"] == ev["new"]


def test_the_same_decision_twice_records_once(store):
    s = ReviewSession(store)
    assert s.accept(1) is not None
    assert s.accept(1) is None
    assert s.flag(1, "occluded") is not None
    assert s.flag(1, "occluded") is None
    assert store.counts()["events"] == 2


def test_undo_is_a_new_event_and_history_stays(store):
    s = ReviewSession(store)
    a = s.accept(4)
    r = s.reject(5, reason="duplicate")
    u = s.undo()
    assert u["action"] == "undo" and u["undoes"] == r["hash"] and u["base"] == r["hash"]
    assert u["old"] == {"category": "spoon", "status": "rejected"}
    assert u["new"] == {"category": "spoon", "status": "pending", "reason": None, "comment": None}
    assert store.annotation(5).status == "pending"
    u2 = s.undo()  # the next undo takes back the accept, not the undo
    assert u2["undoes"] == a["hash"] and store.annotation(4).status == "pending"
    assert s.undo() is None
    assert [e["action"] for e in log_lines(store.root)] == ["accept", "reject", "undo", "undo"]


def test_undo_again_steps_back_through_decisions_on_one_annotation(store):
    # accept, relabel, then undo twice: the relabel, then the accept (it used to stop at the accept
    # for good: "alice changed it since", naming the reviewer herself).
    s = ReviewSession(store)
    a = s.accept(1)
    s.relabel(1, "cat", reason="wrong-class")
    s.undo()
    assert (store.annotation(1).status, store.annotation(1).category) == ("accepted", "dog")
    u2 = s.undo()
    assert u2 is not None and u2["undoes"] == a["hash"]
    assert (store.annotation(1).status, store.annotation(1).category) == ("pending", "dog")
    assert s.undo() is None
    assert s.accept(2) and s.undo() and store.annotation(2).status == "pending"  # and undo still works after


def test_undo_brings_back_the_reason_and_comment_of_the_state_before(store):
    s = ReviewSession(store)
    s.flag(4, "loose-box", comment="tail cut")
    s.accept(4)
    s.undo()
    a = store.annotation(4)
    assert (a.status, a.reason, a.comment) == ("flagged", "loose-box", "tail cut")
    assert [x.id for x in store.annotations(AnnotationFilter(reasons=["loose-box"]))] == [4]
    s.undo()  # back to the proposal: no reason left over ("undo flag" is the event's, not the label's)
    a = store.annotation(4)
    assert (a.status, a.reason, a.comment) == ("pending", None, None)
    assert [e["reason"] for e in log_lines(store.root)][-2:] == ["undo accept", "undo flag"]


def test_an_undo_takes_a_decision_back_from_the_pace(store):
    s = ReviewSession(store)
    s.accept(1)
    s.accept(2)
    s.undo()
    assert s.decisions == 1


def test_undo_of_something_changed_since_is_refused(sample_store, open_store):
    mine, theirs = open_store(sample_store), open_store(sample_store, author="Other <o@example.org>")
    ReviewSession(mine).accept(1)
    ReviewSession(theirs).reject(1, reason="duplicate")
    before = files_of(sample_store)
    with pytest.raises(LabelreviewError, match="cannot undo your accept of annotation 1: Other"):
        ReviewSession(mine).undo()
    assert files_of(sample_store) == before


def test_undo_of_an_accept_the_rest_stops_where_someone_changed_one_since(sample_store, open_store):
    from labelreview.review.session import PartialUndo

    mine, theirs = open_store(sample_store), open_store(sample_store, author="Other <o@example.org>")
    s = ReviewSession(mine)
    s.accept_all([2, 3, 4, 5])
    ReviewSession(theirs).reject(3, reason="duplicate")  # the batch's second decision is theirs now
    with pytest.raises(PartialUndo, match="undid 2 of the batch, then: cannot undo your accept of annotation 3"
                                          ": Other") as e:
        s.undo_action()
    assert [ev["annotation"] for ev in e.value.events] == [5, 4]
    assert [mine.annotation(i).status for i in (2, 3, 4, 5)] == ["accepted", "rejected", "pending", "pending"]
    with pytest.raises(LabelreviewError, match="annotation 3"):  # still theirs: refused, nothing written
        s.undo_action()
    assert mine.annotation(2).status == "accepted"


def test_stale_base_is_refused_and_nothing_is_written(sample_store, open_store):
    """Two reviewers saw the same proposal; the second decision names a state that is gone."""
    alice = open_store(sample_store, author="Alice <alice@example.org>")
    bob = open_store(sample_store, author="Bob <bob@example.org>")
    seen_by_bob = bob.annotation(6).last_event
    ReviewSession(alice).relabel(6, "flag", reason="wrong-class")
    before = files_of(sample_store)
    events = bob.counts()["events"]
    with pytest.raises(ConflictError, match=r"annotation 6 was changed by Alice <alice@example.org> at .* "
                                            r"\(relabeled, flag\) after you saw it; nothing was written"):
        ReviewSession(bob).accept(6, base=seen_by_bob)
    assert files_of(sample_store) == before
    assert bob.counts()["events"] == events
    assert bob.annotation(6).category == "flag"
    # deciding on what is there now works
    assert ReviewSession(bob).accept(6, base=bob.annotation(6).last_event)["old"]["category"] == "flag"


def test_relabel_to_an_unknown_class_is_refused_with_suggestions(store):
    s = ReviewSession(store)
    before = files_of(store.root)
    with pytest.raises(LabelreviewError, match=r"unknown class 'caat'; did you mean cat"):
        s.relabel(1, "caat")
    with pytest.raises(LabelreviewError, match=r"unknown class 'zebra'; classes: person, cat, dog"):
        s.relabel(1, "zebra")
    assert files_of(store.root) == before
    set_config(store.root, classes=["zebra"])  # classes in the config are offered too
    with Store.open(store.root) as again:
        assert ReviewSession(again).relabel(1, "zebra")["new"]["category"] == "zebra"


def test_flag_and_reject_reasons_are_checked(store):
    s = ReviewSession(store)
    before = files_of(store.root)
    with pytest.raises(LabelreviewError, match="flag needs a reason: one of loose-box, wrong-class"):
        s.flag(1, "")
    with pytest.raises(LabelreviewError, match="unknown flag reason 'meh'; labelreview.toml allows loose-box"):
        s.flag(1, "meh")
    with pytest.raises(LabelreviewError, match="unknown reject reason 'meh'"):
        s.reject(1, reason="meh")
    assert files_of(store.root) == before
    assert s.reject(1)["reason"] is None  # a reject needs no reason
    assert s.flag(2, "occluded")["reason"] == "occluded"


def test_unknown_annotation_is_a_clear_error(store):
    with pytest.raises(LabelreviewError, match="no annotation with id 999"):
        ReviewSession(store).accept(999)


# ---------------------------------------------------------------------- roles


def test_a_login_not_among_the_reviewers_is_refused(sample_store):
    set_config(sample_store, roles={"reviewers": ["someone-else"], "adjudicators": [], "admins": []})
    before = files_of(sample_store)
    head = git(sample_store, "rev-parse", "HEAD")
    rc, out, err = run("accept", "1", "--store", sample_store)
    assert rc == 1
    assert f"{getpass.getuser()} may not review: labelreview.toml allows someone-else; nothing was written" in err
    assert files_of(sample_store) == before and git(sample_store, "rev-parse", "HEAD") == head
    with Store.open(sample_store) as s:
        with pytest.raises(PermissionRefused):
            ReviewSession(s).undo()
        assert s.counts()["events"] == 0


def test_admins_may_review_and_reviewers_may_not_import(sample_store, tmp_path):
    me = getpass.getuser()
    set_config(sample_store, roles={"reviewers": ["someone-else"], "adjudicators": [], "admins": [me]})
    assert run("accept", "1", "--store", sample_store)[0] == 0
    set_config(sample_store, roles={"reviewers": [me], "adjudicators": [], "admins": ["boss"]})
    assert run("accept", "2", "--store", sample_store)[0] == 0
    rc, _, err = run("import", "coco", tmp_path / "x.json", "--store", sample_store)
    assert rc == 1 and "may not import: labelreview.toml allows boss" in err
    rc, _, err = run("export", "coco", tmp_path / "out.json", "--store", sample_store)
    assert rc == 1 and not (tmp_path / "out.json").exists()


# ---------------------------------------------------------------------- checkpoints


def test_checkpoint_every_n_decisions_with_a_message_that_counts(sample_store):
    set_config(sample_store, checkpoint_every=3)
    with Store.open(sample_store) as store:
        s = ReviewSession(store)
        base = int(git(sample_store, "rev-list", "--count", "HEAD"))
        s.accept(1)
        s.accept(2)
        assert int(git(sample_store, "rev-list", "--count", "HEAD")) == base and store.uncommitted() == 2
        s.flag(3, "occluded")
        assert int(git(sample_store, "rev-list", "--count", "HEAD")) == base + 1 and store.uncommitted() == 0
        # (set_config's edit, not committed, goes in with them: the message says so)
        first = "2 accepted, 1 flagged by Test Reviewer; labelreview.toml changed\n"
        assert git(sample_store, "log", "-1", "--format=%s") == first
        s.relabel(4, "cup")
        s.reject(5)
        assert git(sample_store, "log", "-1", "--format=%s") == first
        s.undo()  # an undo is a decision too
        assert git(sample_store, "log", "-1", "--format=%s") == "1 relabeled, 1 rejected, 1 undone by Test Reviewer\n"
        s.accept(6)
        assert s.finish() is not None  # the end of a session commits the rest
        assert git(sample_store, "log", "-1", "--format=%s") == "1 accepted by Test Reviewer\n"
        assert s.finish() is None  # nothing left to commit
    assert git(sample_store, "status", "--porcelain") == ""


def test_commit_author_is_the_reviewer(sample_store):
    rc, _, err = run("accept", "1", "--author", "Dana Scully <dana@example.org>", "--store", sample_store)
    assert rc == 0, err
    assert git(sample_store, "log", "-1", "--format=%an <%ae>") == "Dana Scully <dana@example.org>\n"
    assert git(sample_store, "log", "-1", "--format=%s") == "1 accepted by Dana Scully\n"
    # a git user configured on the machine stays the committer; the reviewer is still the author
    git(sample_store, "config", "user.name", "Build Bot")
    git(sample_store, "config", "user.email", "bot@example.org")
    assert run("accept", "2", "--author", "Fox <fox@example.org>", "--store", sample_store)[0] == 0
    assert git(sample_store, "log", "-1", "--format=%an <%ae> / %cn") == "Fox <fox@example.org> / Build Bot\n"


def test_events_of_a_killed_checkpoint_are_marked_committed_later(sample_store, monkeypatch):
    """Killed between `git commit` and recording which events it holds: the next checkpoint sees
    the events are in git already instead of leaving them 'uncommitted' forever."""
    with Store.open(sample_store) as store:
        ReviewSession(store).accept(1)
        monkeypatch.setattr(Store, "_mark_committed", lambda self, repo, rev: None)
        sha = store.checkpoint()
        monkeypatch.undo()
        assert store.uncommitted() == 1
    rc, out, _ = run("commit", "--store", sample_store)
    assert rc == 0 and out == "nothing to commit\n"
    with Store.open(sample_store) as store:
        assert store.uncommitted() == 0
        assert store.events()[0]["commit"] == sha


@pytest.fixture
def gpg_key(tmp_path, monkeypatch):
    if not shutil.which("gpg"):
        pytest.skip("no gpg")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    r = subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
                        "Signer <signer@example.org>", "ed25519", "sign", "never"], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        pytest.skip(f"gpg cannot make a key here: {r.stderr.strip()[:200]}")
    yield "signer@example.org"
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], capture_output=True)


def test_commits_are_signed_when_git_says_so(sample_store, gpg_key):
    git(sample_store, "config", "user.signingkey", gpg_key)
    git(sample_store, "config", "commit.gpgsign", "true")
    rc, _, err = run("accept", "1", "--store", sample_store)
    assert rc == 0, err
    assert subprocess.run(["git", "verify-commit", "HEAD"], cwd=sample_store, capture_output=True).returncode == 0
    assert git(sample_store, "log", "-1", "--format=%G?").strip() in ("G", "U")


def test_a_failing_signature_is_a_clear_error_and_the_decision_stays(sample_store):
    git(sample_store, "config", "user.signingkey", "nobody-has-this-key@example.org")
    git(sample_store, "config", "commit.gpgsign", "true")
    git(sample_store, "config", "gpg.program", "false")
    rc, out, err = run("accept", "1", "--store", sample_store)
    assert rc == 1 and "git commit failed" in err and "1 decision(s) not in git yet are safe" in err
    assert out == "accept 1: dog pending -> dog accepted\n"  # the user is told what did happen
    with Store.open(sample_store) as store:
        assert store.annotation(1).status == "accepted" and store.uncommitted() == 1


# ---------------------------------------------------------------------- the index


def _dump(path: Path) -> dict[str, list]:
    conn = sqlite3.connect(path)
    out = {}
    for table in ("annotations", "images", "imports", "categories", "writers", "event_files", "conflicts"):
        out[table] = sorted(map(tuple, conn.execute(f"SELECT * FROM {table}")), key=repr)
    out["events"] = sorted((tuple(r[1:]) for r in conn.execute("SELECT * FROM events")), key=repr)  # not ord
    conn.close()
    return out


def test_reindex_gives_the_same_index(sample_store):
    with Store.open(sample_store, author="Other <o@example.org>") as other:
        ReviewSession(other).reject(9, reason="duplicate")
        other.checkpoint()
    with Store.open(sample_store) as store:
        s = ReviewSession(store)
        s.accept(1)
        s.relabel(2, "saucer", reason="wrong-class")
        store.checkpoint()
        s.flag(3, "occluded", comment="half hidden")
        s.undo()
        s.accept(9)
    index = sample_store / ".labelreview" / "index.sqlite"
    before = _dump(index)
    assert sum(1 for e in before["events"] if e[-1] is not None) == 3  # committed ones know their commit
    rc, out, err = run("reindex", "--store", sample_store)
    assert rc == 0 and out == "index rebuilt: 25 annotations, 5 images, 6 events\n", err
    assert _dump(index) == before
    # and an index deleted outright comes back the same on the next start
    for suffix in ("", "-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    Store.open(sample_store).close()
    assert _dump(index) == before


def test_index_catches_up_with_lines_another_process_wrote(sample_store, open_store):
    """The index is shared: what one process appended, another sees (and replays if it must)."""
    a, b = open_store(sample_store), open_store(sample_store, author="B <b@example.org>")
    ev = ReviewSession(a).accept(1)
    assert b.annotation(1).last_event == ev["hash"]


# ---------------------------------------------------------------------- finding the store


def test_store_is_found_upward_from_a_subdirectory(sample_store, tmp_path):
    sub = sample_store / "imports" / "deep" / "er"
    sub.mkdir(parents=True)
    assert find_store(sub) == sample_store
    rc, out, err = run("status", "--json", cwd=sub)
    assert rc == 0, err
    assert json.loads(out)["store"] == str(sample_store)
    rc, _, err = run("status", cwd=tmp_path)
    assert rc == 1 and "no labelreview store here or above" in err and "--store" in err


def test_store_is_found_through_the_environment(sample_store, tmp_path):
    rc, out, err = run("status", "--json", cwd=tmp_path, env={"LABELREVIEW_STORE": str(sample_store)})
    assert rc == 0 and json.loads(out)["store"] == str(sample_store), err
    # --store wins over the environment
    rc, _, err = run("status", "--store", tmp_path, env={"LABELREVIEW_STORE": str(sample_store)})
    assert rc == 1 and f"{tmp_path}: not a labelreview store" in err
    rc, _, err = run("status", cwd=tmp_path, env={"LABELREVIEW_STORE": str(tmp_path / "nope")})
    assert rc == 1 and "not a labelreview store" in err


def test_init_refuses_an_existing_store(sample_store):
    rc, _, err = run("init", sample_store)
    assert rc == 1 and "already a labelreview store" in err


def test_broken_config_is_a_clear_error(sample_store):
    (sample_store / "labelreview.toml").write_text("[project\nname = 1")
    rc, _, err = run("status", "--store", sample_store)
    assert rc == 1 and "labelreview.toml: invalid TOML" in err


def test_a_config_that_is_not_utf8_is_a_clear_error(sample_store):
    """(A UnicodeDecodeError traceback from every command.) E.g. saved in Latin-1 by an editor."""
    (sample_store / "labelreview.toml").write_bytes('[project]\nname = "caf\u00e9"\n'.encode("latin-1"))
    rc, _, err = run("status", "--store", sample_store)
    assert rc == 1 and "Traceback" not in err, err
    assert "labelreview.toml: invalid TOML: not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8" in err, err


def test_a_large_import_is_hashed_as_read_and_its_wal_copied_in_the_background(empty_store, sample_images,
                                                                                   monkeypatch):
    # Both only move work off the importer's path: the manifest must name the file's own sha256,
    # and the committed rows must be in the index file once the store is closed.
    from labelreview.formats import coco
    from labelreview.store import store as store_module

    src = Path(__file__).resolve().parents[1] / "sample_data" / "proposals.json"
    batch = coco.read(src, lazy=True)
    assert batch.source_sha256() == canonical.file_sha256(src)
    monkeypatch.setattr(store_module, "BACKGROUND_CHECKPOINT_ROWS", 1)
    with Store.open(empty_store) as store:
        result = store.ingest(batch, source="model-v1", image_root=sample_images)
        assert store._wal_checkpoint is not None  # running (or done) beside the caller
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # restored
        import_id = result["import"]
    manifest = json.loads((empty_store / "imports" / import_id / "manifest.json").read_text())
    assert manifest["sha256"] == canonical.file_sha256(src)
    with Store.open(empty_store) as store:  # what the import committed is there after close
        assert len(store.annotations()) == 25 and store._wal_checkpoint is None


def test_reviewers_whose_names_a_slug_drops_never_share_a_log():
    # 日本 and 中国 both wrote to events/unknown/<host>/ (and Zoë and Zoé to events/Zo/): one log,
    # one hash chain for two people, and every sync between their clones failed.
    from labelreview.store.identity import Identity

    def writer(author):
        return Identity(author=author, login="x", host="vm").writer

    keys = {writer(a) for a in ("日本", "中国", "Zoë", "Zoé")}
    assert len(keys) == 4 and all(k.endswith("/vm") for k in keys)
    # ASCII names and emails keep the keys their existing logs have
    assert writer("Ada Lovelace <ada@example.org>") == "ada-example.org/vm"
    assert writer("kim") == "kim/vm"


def test_an_edit_of_the_config_that_goes_into_a_checkpoint_is_named_in_its_message(sample_store):
    # With no roles set, anyone may change labelreview.toml; an edit made in the file (not through a
    # command) went into the next decision's commit as "1 accepted by Test Reviewer": git log never
    # said the project config changed there.
    from helpers import git, run, set_config

    set_config(sample_store, review={"lease_seconds": 30})
    assert run("accept", "1", "--store", sample_store)[0] == 0
    assert git(sample_store, "log", "-1", "--format=%s").strip() == "1 accepted by Test Reviewer; labelreview.toml changed"
    assert "labelreview.toml" in git(sample_store, "show", "--name-only", "--format=", "HEAD")
    assert run("accept", "2", "--store", sample_store)[0] == 0  # and only when it did change
    assert git(sample_store, "log", "-1", "--format=%s").strip() == "1 accepted by Test Reviewer"
    set_config(sample_store, review={"lease_seconds": 60})
    assert run("commit", "--store", sample_store)[0] == 0
    assert git(sample_store, "log", "-1", "--format=%s").strip() == "labelreview.toml changed by Test Reviewer"


@pytest.mark.parametrize("damage", ["garbage line", "ids already used"])
def test_an_import_folder_arriving_damaged_is_named_not_a_traceback(sample_store, empty_store, sample_images, damage):
    """An import folder that arrives in the files (a git pull, a copy) is indexed at the next start.
    One whose shard cannot be read, or whose ids another import already holds (an import copied in
    from another store), stopped every command with a JSONDecodeError or IntegrityError traceback;
    now with the file and line, and nothing of it indexed."""
    from helpers import SAMPLE

    rc, _, err = run("import", "coco", str(SAMPLE / "proposals.json"), "--images", str(sample_images),
                     "--source", "other", "--store", str(empty_store))
    assert rc == 0, err
    other = next(p for p in (empty_store / "imports").iterdir() if p.is_dir())
    arrived = sample_store / "imports" / other.name
    shutil.copytree(other, arrived)
    shard = arrived / "annotations-0000.jsonl"
    if damage == "garbage line":
        lines = shard.read_bytes().splitlines(keepends=True)
        shard.write_bytes(b"[1, 2\n" + b"".join(lines[1:]))
        expected = f"imports/{other.name}/annotations-0000.jsonl:1: line is not valid JSON"
    else:
        first = next(p for p in (sample_store / "imports").iterdir() if p.is_dir() and p.name != other.name)
        expected = (f"imports/{other.name}/annotations-0000.jsonl:1: annotation id 1 is already used by "
                    f"imports/{first.name}/annotations-0000.jsonl:1; two imports hold the same annotation ids, "
                    "so one came from another store")
    rc, out, err = run("status", "--store", str(sample_store))
    assert rc == 1 and expected in err and "Traceback" not in err, err
    with sqlite3.connect(sample_store / ".labelreview" / "index.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM imports WHERE id=?", (other.name,)).fetchone()[0] == 0


def test_a_git_config_gitpython_cannot_parse_is_a_clear_error_and_the_decision_stands(sample_store):
    """A .git/config whose first line is not a section (GitPython's parser raised a traceback after
    the decision was made, so it looked lost): the checkpoint's error names the file and says the
    decision is safe; it is in the log, waiting for a commit."""
    config = sample_store / ".git" / "config"
    good = config.read_bytes()
    config.write_bytes(b"\trepositoryformatversion = 0\n" + good)
    rc, out, err = run("accept", "2", "--store", sample_store)
    assert "Traceback" not in err, err
    assert rc == 1 and "accept 2:" in out
    assert f"git cannot read its config: File contains no section headers. file: '{config}', line: 1" in err, err
    assert "decision(s) not in git yet are safe in the event log" in err
    config.write_bytes(good)
    assert run("commit", "--store", sample_store)[0] == 0
    events = json.loads(run("log", "--json", "--annotation", "2", "--store", sample_store)[1])
    assert [e["action"] for e in events] == ["accept"] and events[0]["commit"] is not None  # committed now


def test_a_store_id_that_is_not_text_is_no_traceback(sample_store):
    (sample_store / ".git" / "labelreview-store-id").write_bytes(b"\x00\xff garbage {")
    for _ in range(2):
        rc, out, err = run("status", "--store", sample_store)
        assert rc == 0 and "Traceback" not in err, err
