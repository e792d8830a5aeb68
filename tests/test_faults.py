"""Faults: kill -9 in the middle of a review, crashes between the two steps of a decision, torn
lines, and several processes deciding on one store at once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import _sample, empty_store, run, sample_images, sample_store, set_config, templates  # noqa: F401
from labelreview.store import Store, eventlog
from labelreview.store.verify import verify

# A reviewer in a loop: every decision it prints has been acknowledged (durable) by the store.
REVIEWER = textwrap.dedent("""
    import random, sys
    from labelreview.model import ConflictError, LabelreviewError
    from labelreview.review import ReviewSession
    from labelreview.store import Store

    root, author, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = Store.open(root, author=author)
    session = ReviewSession(store)
    ids = [a.id for a in store.annotations()]
    rng = random.Random(seed)
    print("ready", flush=True)
    n = 0
    while count < 0 or n < count:
        n += 1
        ann = store.annotation(rng.choice(ids))
        kind = rng.randrange(6)
        try:
            if kind == 0:
                ev = session.accept(ann.id, base=ann.last_event)
            elif kind == 1:
                ev = session.reject(ann.id, reason="duplicate", base=ann.last_event)
            elif kind == 2:
                ev = session.flag(ann.id, rng.choice(["loose-box", "occluded"]), base=ann.last_event)
            elif kind == 3:
                ev = session.relabel(ann.id, rng.choice(["cat", "dog", "cup"]), base=ann.last_event)
            elif kind == 4:
                ev = session.undo()
            else:
                ev = session.accept(ann.id)
        except ConflictError:
            print("conflict", flush=True)
            continue
        except LabelreviewError as e:
            if "already" in str(e) or "cannot undo" in str(e):
                continue
            raise
        if ev is not None:
            print(ev["hash"], flush=True)
    session.finish()
    store.close()
    print("done", flush=True)
""")


def spawn(root: Path, author: str, seed: int, count: int = -1, *, setup: str = "") -> subprocess.Popen:
    code = setup + REVIEWER
    return subprocess.Popen([sys.executable, "-c", code, str(root), author, str(seed), str(count)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def acknowledged(stdout: str) -> list[str]:
    """Hashes printed on complete lines (a line cut by the kill was not acknowledged)."""
    lines = stdout.split("\n")[:-1]
    return [ln for ln in lines if len(ln) == 64]


def indexed_hashes(store: Store) -> set[str]:
    return {r[0] for r in store.conn.execute("SELECT hash FROM events")}


def test_kill_9_mid_review_loses_no_acknowledged_decision(sample_store):
    """SIGKILL the whole process group (the reviewer and any git it runs) at random moments; after
    each restart every acknowledged decision is in the index and the history verifies."""
    set_config(sample_store, checkpoint_every=2)  # so some kills land inside a git checkpoint
    rng = random.Random(7)
    acked: list[str] = []
    rounds = 6
    for r in range(rounds):
        proc = spawn(sample_store, "Kim <kim@example.org>", r)
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        first = ""
        if r % 2:  # every other round, let it get going first (a slow machine must not starve it)
            first = proc.stdout.readline()
        time.sleep(rng.uniform(0.02, 0.2))
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        assert "Traceback" not in err, err
        got = acknowledged(first + out)
        acked += got
        with Store.open(sample_store) as store:  # recovery runs here
            missing = [h for h in acked if h not in indexed_hashes(store)]
            assert not missing, f"round {r}: {len(missing)} acknowledged decisions lost"
            report = verify(store, images=False)
            assert report.ok, (r, report.as_dict())
    assert len(acked) >= rounds // 2  # the reviewer did get work done between kills
    # git still works after all of that: a checkpoint commits everything, nothing left over
    with Store.open(sample_store) as store:
        store.checkpoint()
        assert store.uncommitted() == 0
    rc, out, err = run("verify", "--store", sample_store)
    assert rc == 0, out + err
    status = subprocess.run(["git", "status", "--porcelain"], cwd=sample_store, capture_output=True, text=True)
    assert status.stdout == ""


def test_stale_git_lock_of_a_killed_checkpoint_is_cleared(sample_store, monkeypatch):
    """A checkpoint killed inside `git add`/`git commit` leaves .git/index.lock behind; the next
    checkpoint must not fail forever on it."""
    from labelreview.store import gitrepo

    monkeypatch.setattr(gitrepo, "STALE_GRACE", 0.2)
    lock = sample_store / ".labelreview" / "git.lock"
    lock.parent.mkdir(exist_ok=True)
    lock.write_text("12345\n")  # the mark of a holder that died while committing
    (sample_store / ".git" / "index.lock").write_bytes(b"")
    rc, out, err = run("accept", "1", "--store", sample_store)
    assert rc == 0, err
    assert not (sample_store / ".git" / "index.lock").exists()
    with Store.open(sample_store) as store:
        assert store.uncommitted() == 0
    assert "index.lock" in (sample_store / ".labelreview" / "recovery.log").read_text()


def test_git_lock_of_someone_else_is_a_clear_error_not_a_traceback(sample_store, monkeypatch):
    """A live git (say, the user's own) holding index.lock: no traceback, the decision is kept."""
    from labelreview.store import gitrepo

    monkeypatch.setattr(gitrepo, "LOCK_WAIT", 0.3)
    (sample_store / ".git" / "index.lock").write_bytes(b"")
    rc, out, err = run("accept", "1", "--store", sample_store)
    assert rc == 1 and "index.lock" in err, (out, err)
    (sample_store / ".git" / "index.lock").unlink()
    with Store.open(sample_store) as store:
        assert store.annotation(1).status == "accepted"  # durable before git was asked
        assert store.uncommitted() == 1
    assert run("commit", "--store", sample_store)[0] == 0


CRASH_AFTER_FSYNC = textwrap.dedent("""
    import os
    from labelreview.store import store as _store_mod
    _real_apply = _store_mod.Store._apply
    def _apply(self, conn, ev, rel, end, line=None):
        if ev["annotation"] == 7:  # the log line is fsync'd; the index transaction never commits
            os._exit(9)
        return _real_apply(self, conn, ev, rel, end, line)
    _store_mod.Store._apply = _apply
""")

TORN_WRITE = textwrap.dedent("""
    import os
    from labelreview.store import eventlog as _ev, store as _store_mod
    _real = _ev.append_durably
    def append_durably(path, line):
        if b'"annotation":7,' in line:  # the power goes out half-way through the write
            with open(path, "ab") as f:
                f.write(line[: len(line) // 2])
                f.flush()
                os.fsync(f.fileno())
            os._exit(9)
        return _real(path, line)
    _store_mod.eventlog.append_durably = append_durably
""")


def _decide_until_crash(root: Path, setup: str) -> list[str]:
    code = setup + textwrap.dedent("""
        import sys
        from labelreview.review import ReviewSession
        from labelreview.store import Store
        store = Store.open(sys.argv[1])
        s = ReviewSession(store)
        for i in (5, 6, 7, 8):
            print(s.accept(i)["hash"], flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    return acknowledged(proc.stdout)


def test_crash_between_fsync_and_index_commit_is_replayed(sample_store):
    acked = _decide_until_crash(sample_store, CRASH_AFTER_FSYNC)
    assert len(acked) == 2
    with Store.open(sample_store) as store:
        assert store.annotation(7).status == "accepted"  # the durable line was replayed
        assert store.annotation(8).status == "pending"
        assert indexed_hashes(store) >= set(acked)
        assert verify(store, images=False).ok
        assert store.counts()["events"] == 3


def test_torn_line_is_dropped_noted_and_the_chain_goes_on(sample_store):
    acked = _decide_until_crash(sample_store, TORN_WRITE)
    assert len(acked) == 2
    log = sample_store / eventlog.list_files(sample_store)[0]
    assert not log.read_bytes().endswith(b"\n")
    rc, out, err = run("accept", "8", "--store", sample_store)  # a new process, same writer
    assert rc == 0, err
    assert log.read_bytes().endswith(b"\n")
    notes = [json.loads(x) for x in (sample_store / ".labelreview" / "recovery.log").read_text().splitlines()]
    assert notes[-1]["file"] == log.relative_to(sample_store).as_posix() and notes[-1]["dropped_bytes"] > 0
    assert '"annotation":7' in notes[-1]["text"]
    with Store.open(sample_store) as store:
        assert store.annotation(7).status == "pending"  # never acknowledged, so never happened
        assert store.annotation(8).status == "accepted"
        seqs = [e["seq"] for e in store.events()]
        assert seqs == [1, 2, 3]
    assert run("verify", "--store", sample_store)[0] == 0


@pytest.mark.parametrize("authors", [
    ["Ann <ann@example.org>", "Bob <bob@example.org>", "Cy <cy@example.org>"],
    ["Ann <ann@example.org>", "Ann <ann@example.org>", "Ann <ann@example.org>"],
], ids=["different-authors", "same-author"])
def test_writers_at_once_lose_nothing(sample_store, authors):
    set_config(sample_store, checkpoint_every=5)
    procs = [spawn(sample_store, a, seed, count=30) for seed, a in enumerate(authors)]
    results = [p.communicate(timeout=180) for p in procs]
    acked: list[str] = []
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err, err
        assert out.rstrip().endswith("done")
        acked += acknowledged(out)
    assert len(acked) == len(set(acked)) >= 30
    with Store.open(sample_store) as store:
        have = indexed_hashes(store)
        assert set(acked) <= have
        assert store.uncommitted() == 0  # each finished with a checkpoint
        report = verify(store, images=False)
        assert report.ok, report.as_dict()
        assert report.writers == len(set(authors))
        # each writer's chain is one unbroken sequence, even when one author wrote from 3 processes
        for w in {e["writer"] for e in store.events()}:
            seqs = [e["seq"] for e in store.events() if e["writer"] == w]
            assert sorted(seqs) == list(range(1, len(seqs) + 1))


def test_fresh_clone_opened_by_several_processes_at_once(sample_store, tmp_path):
    """No index yet (a fresh clone): several reviewers start together; each gets a whole index."""
    with Store.open(sample_store) as store:
        for i in (1, 2, 3):
            store.record(i, "accept", {"category": store.annotation(i).category, "status": "accepted"})
        store.checkpoint()
    clone = sample_store.parent / "clone"
    subprocess.run(["git", "clone", "-q", str(sample_store), str(clone)], check=True)
    code = textwrap.dedent("""
        import sys, time
        from labelreview.store import Store, store as _store_mod
        _real = _store_mod._rebuild_into
        def _slow_rebuild(*a, **k):  # widen the window between "no index yet" and building one
            time.sleep(0.5)
            return _real(*a, **k)
        _store_mod._rebuild_into = _slow_rebuild
        with Store.open(sys.argv[1]) as s:
            c = s.counts()
            print(c["total"], c["accepted"], c["events"])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(clone)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.split() == ["25", "3", "3"]
    rc, out, err = run("verify", "--no-images", "--store", clone)
    assert rc == 0, out + err


KILLED_IMPORT = textwrap.dedent("""
    import os, sys
    from labelreview.formats import coco
    from labelreview.store import store as sm
    stage = sys.argv[2]
    if stage == "writing":  # killed while the import's files are being written
        real = sm._write_jsonl
        def _write_jsonl(path, rows):
            real(path, rows)
            if path.name == "images.jsonl":
                os._exit(9)
        sm._write_jsonl = _write_jsonl
    else:  # killed after the folder is in place, before the index knows it
        def _load(conn, folder):
            os._exit(9)
        sm._load_import_folder = _load
    with sm.Store.open(sys.argv[1]) as s:
        s.ingest(coco.read(sys.argv[3]), source="m", image_root=sys.argv[4])
""")


@pytest.mark.parametrize("stage", ["writing", "renamed"])
def test_import_killed_half_way(empty_store, sample_images, stage):
    from conftest import SAMPLE

    proc = subprocess.run([sys.executable, "-c", KILLED_IMPORT, str(empty_store), stage,
                           str(SAMPLE / "proposals.json"), str(sample_images)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 9, proc.stderr
    rc, out, err = run("status", "--json", "--store", empty_store)  # recovery runs
    assert rc == 0, err
    expected = 0 if stage == "writing" else 25  # a whole import folder is loaded on the next start
    assert json.loads(out)["total"] == expected
    assert run("commit", "--store", empty_store)[0] == 0
    tracked = subprocess.run(["git", "ls-files", "imports"], cwd=empty_store, capture_output=True, text=True).stdout
    assert ".tmp" not in tracked and "import-" not in tracked
    assert subprocess.run(["git", "status", "--porcelain"], cwd=empty_store, capture_output=True,
                          text=True).stdout == ""
    if stage == "writing":  # and the import can simply be run again
        assert list((empty_store / ".labelreview").glob("import-*"))  # what the killed import wrote
        rc, out, err = run("import", "coco", SAMPLE / "proposals.json", "--images", sample_images,
                           "--store", empty_store)
        assert rc == 0, err
        # ... which removes that leftover: a killed import of a large file leaves as much behind
        assert not list((empty_store / ".labelreview").glob("import-*"))
    assert run("verify", "--store", empty_store)[0] == 0


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_index_is_set_aside_and_rebuilt_with_every_decision(sample_store, damage):
    with Store.open(sample_store) as store:
        store.record(7, "accept", {"category": store.annotation(7).category, "status": "accepted"})
        assert store.uncommitted() == 1  # in the log only, not in git
    index = sample_store / ".labelreview" / "index.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    if damage == "garbage":
        index.write_bytes(b"not a database at all\n" * 100)
    else:
        with open(index, "r+b") as f:
            f.truncate(5000)
    rc, out, err = run("status", "--store", sample_store)
    assert rc == 0 and "Traceback" not in err, err
    with Store.open(sample_store) as store:
        assert store.annotation(7).status == "accepted"
    assert list(index.parent.glob("index.sqlite.broken-*"))  # kept, for whoever wants to look
    assert "index_unreadable" in (index.parent / "recovery.log").read_text()
    assert run("verify", "--store", sample_store)[0] == 0


def test_index_sqlite_cannot_open_is_a_clear_error(sample_store, monkeypatch):
    import sqlite3

    from labelreview.store import schema

    def refuse(path, timeout=30.0):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(schema, "connect", refuse)
    rc, out, err = run("status", "--store", sample_store)
    assert rc == 1 and "Traceback" not in err
    assert "index.sqlite: the index cannot be used (unable to open database file)" in err


def test_decision_on_a_log_cut_short_outside_is_refused_not_glued_to_a_torn_line(sample_store):
    assert run("accept", "7", "--store", sample_store)[0] == 0
    assert run("accept", "8", "--store", sample_store)[0] == 0
    rel = eventlog.list_files(sample_store)[0]
    log = sample_store / rel
    whole = log.read_bytes()
    log.write_bytes(whole[:-30])  # the last line loses its end: a disk fault, a bad copy
    rc, out, err = run("accept", "9", "--store", sample_store)
    assert rc == 1 and "Traceback" not in err
    assert rel in err and "cut short" in err and "nothing was written" in err
    assert log.read_bytes() == whole[:-30]  # no line glued to the torn one
    log.write_bytes(whole)  # restored (git checkout)
    assert run("accept", "9", "--store", sample_store)[0] == 0
    assert run("verify", "--store", sample_store)[0] == 0


def test_full_disk_at_the_log_append_makes_no_decision_and_leaves_no_bytes(sample_store, monkeypatch):
    import errno

    assert run("accept", "7", "--store", sample_store)[0] == 0
    log = sample_store / eventlog.list_files(sample_store)[0]
    before = log.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(eventlog.os, "fsync", full)
    rc, out, err = run("accept", "8", "--store", sample_store)
    monkeypatch.undo()
    assert rc == 1 and "Traceback" not in err
    assert "No space left on device" in err and "accept 8 was not made" in err
    assert log.read_bytes() == before  # the line that never became durable is not left to be replayed
    with Store.open(sample_store) as store:
        assert store.annotation(8).status == "pending"
    assert run("verify", "--store", sample_store)[0] == 0


def test_full_disk_at_the_index_commit_says_the_decision_is_in_the_log(sample_store, monkeypatch):
    import sqlite3

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "_apply", full)
    rc, out, err = run("accept", "8", "--store", sample_store)
    monkeypatch.undo()
    assert rc == 1 and "Traceback" not in err
    assert "accept 8 is recorded in" in err and "database or disk is full" in err
    with Store.open(sample_store) as store:  # the next command replays it: the decision stands
        assert store.annotation(8).status == "accepted"
    assert run("verify", "--store", sample_store)[0] == 0


def test_reindex_on_a_full_disk_keeps_the_index_and_says_so(sample_store, monkeypatch):
    import sqlite3

    from labelreview.store import store as store_mod

    assert run("accept", "8", "--store", sample_store)[0] == 0

    def full(root, index, strict=True):
        Path(index).write_bytes(b"half")
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store_mod, "_rebuild_into", full)
    rc, out, err = run("reindex", "--store", sample_store)
    monkeypatch.undo()
    assert rc == 1 and "Traceback" not in err
    assert "database or disk is full" in err and "the index is left as it was" in err
    assert not (sample_store / ".labelreview" / "index.rebuild").exists()
    with Store.open(sample_store) as store:
        assert store.annotation(8).status == "accepted"
    assert run("verify", "--store", sample_store)[0] == 0


def test_index_of_another_store_is_set_aside_at_open_and_verify_passes(sample_store, empty_store):
    import shutil

    index = ".labelreview/index.sqlite"
    assert run("accept", "7", "--store", sample_store)[0] == 0
    for suffix in ("-wal", "-shm"):
        Path(str(empty_store / index) + suffix).unlink(missing_ok=True)
    shutil.copyfile(sample_store / index, empty_store / index)  # a bad restore, a copy over the wrong store
    rc, out, err = run("verify", "--store", empty_store)
    assert rc == 0, out + err
    assert f"was built for the store at {sample_store}" in err and "index.sqlite.foreign-" in err
    assert run("verify", "--store", empty_store)[0] == 0


def test_commit_of_a_killed_reviewers_decisions_says_committed(sample_store):
    # Ann's session was killed before its checkpoint; Bob's `commit` commits her decision for her.
    with Store.open(sample_store, author="Ann <ann@example.org>") as store:
        store.record(7, "accept", {"category": store.annotation(7).category, "status": "accepted"})
    rc, out, err = run("commit", "--store", sample_store, "--author", "Bob <bob@example.org>")
    assert rc == 0, err
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=sample_store, capture_output=True,
                          text=True).stdout.strip()
    assert out.strip() == f"committed {head}"  # not "nothing to commit"
    with Store.open(sample_store) as store:
        assert store.uncommitted() == 0
    assert run("verify", "--store", sample_store)[0] == 0


def test_full_disk_during_import_leaves_the_store_as_it_was(empty_store, sample_images, monkeypatch):
    import errno

    from conftest import SAMPLE
    from labelreview.store import store as store_mod

    def full(path, rows):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store_mod, "_write_jsonl", full)
    rc, out, err = run("import", "coco", SAMPLE / "proposals.json", "--images", sample_images,
                       "--store", empty_store)
    monkeypatch.undo()
    assert rc == 1 and "Traceback" not in err
    assert "cannot write the import (No space left on device)" in err and "the store is as it was" in err
    assert not [p for p in (empty_store / "imports").iterdir() if not p.name.startswith(".")]
    assert not list((empty_store / ".labelreview").glob("import-*"))
    rc, out, err = run("import", "coco", SAMPLE / "proposals.json", "--images", sample_images,
                       "--store", empty_store)
    assert rc == 0, err
    assert run("verify", "--store", empty_store)[0] == 0


def test_import_whose_checkpoint_hits_a_full_disk_says_it_is_imported(empty_store, sample_images, monkeypatch):
    import errno

    from conftest import SAMPLE
    from labelreview.store import gitrepo

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gitrepo.os, "pwrite", full)
    rc, out, err = run("import", "coco", SAMPLE / "proposals.json", "--images", sample_images,
                       "--store", empty_store)
    monkeypatch.undo()
    assert rc == 1 and "Traceback" not in err
    assert "imported 25 annotations as" in err and "not in git yet" in err and "git.lock" in err
    rc, out, err = run("commit", "--store", empty_store)
    assert rc == 0 and out.startswith("committed "), err
    assert run("verify", "--store", empty_store)[0] == 0


def test_verify_when_git_cannot_run_is_a_clear_error(sample_store, monkeypatch):
    import git

    from labelreview.store import verify as verify_mod

    def cannot(store, report):
        raise git.GitCommandError(["git", "diff"], 128, stderr="fatal: sha1 file '.git/index.lock' write error. "
                                  "Out of diskspace")

    monkeypatch.setattr(verify_mod, "_check_git", cannot)
    rc, out, err = run("verify", "--store", sample_store)
    assert rc == 1 and "Traceback" not in err
    assert "verify cannot read the store's git history (fatal: sha1 file" in err and "Out of diskspace" in err


def test_index_folder_gone_is_rebuilt_and_a_file_in_its_place_is_a_clear_error(sample_store):
    import shutil

    shutil.rmtree(sample_store / ".labelreview")
    assert run("status", "--store", sample_store)[0] == 0  # rebuilt from the files
    assert run("verify", "--store", sample_store)[0] == 0
    shutil.rmtree(sample_store / ".labelreview")
    (sample_store / ".labelreview").write_text("junk\n")
    rc, out, err = run("status", "--store", sample_store)
    assert rc == 1 and "Traceback" not in err
    assert ".labelreview: cannot make the folder of the index here (a file is in its place; move it away)" in err


# ---------------------------------------------------------------------- the index's own faults, through
# the real command line in a process of its own (real git, real SQLite, real file permissions)


def cli(*args, reader: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m labelreview ARGS` in a new process, running this checkout's code. ``reader``: as a
    user who may read the store but not write it (see ``as_reader``)."""
    import labelreview

    env = dict(os.environ, PYTHONPATH=str(Path(labelreview.__file__).resolve().parents[1]))
    cmd = [sys.executable, "-m", "labelreview", *map(str, args)]
    return subprocess.run(as_reader(cmd) if reader else cmd, capture_output=True, text=True, env=env,
                          timeout=timeout)


def as_reader(cmd: list[str]) -> list[str]:
    """A command run by someone the store's file modes do not let write. A user who is not root is
    that user already. Root writes whatever the modes say (the capabilities CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH); these tests run as root in CI, so the command runs without them
    (util-linux's setpriv), and the kernel then applies the modes to it as to anyone else."""
    if os.geteuid() != 0:
        return cmd
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot run a command that the file modes bind")
    drop = "-dac_override,-dac_read_search,-fowner"
    return [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", *cmd]


def read_only(root: Path) -> None:
    """``chmod -R a-w``: nobody may write the store (the modes say so; root aside)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, ""]:
            p = os.path.join(dirpath, name) if name else dirpath
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode & ~0o222)


@pytest.fixture
def writable_again():
    """Give the write bits back at the end (a user who is not root could not remove the tmp folder)."""
    roots: list[Path] = []
    yield roots.append
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames, ""]:
                p = os.path.join(dirpath, name) if name else dirpath
                if not os.path.islink(p):
                    os.chmod(p, os.stat(p).st_mode | 0o200)


def every_file(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root`` with its mode and bytes (the index included): what a read changed."""
    return {p.relative_to(root).as_posix(): (p.stat().st_mode, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_read_only_store_answers_every_reading_command_and_changes_nothing(sample_store, tmp_path,
                                                                          writable_again):
    for args in (["accept", "7"], ["relabel", "8", "dog", "--reason", "ears"], ["flag", "9", "--reason", "loose-box"]):
        assert cli(*args, "--store", sample_store).returncode == 0
    # What a reviewer who may write sees, to compare with what the auditor is shown.
    want = {name: cli(*args, "--json", "--store", sample_store).stdout for name, args in {
        "status": ["status"], "ls": ["ls"], "suspicion": ["ls", "--order", "suspicion"], "log": ["log"],
        "blame": ["blame", "8"], "diff": ["diff", "HEAD~2", "HEAD"]}.items()}
    assert cli("export", "coco", tmp_path / "writer.json", "--store", sample_store).returncode == 0
    read_only(sample_store)
    writable_again(sample_store)
    before = every_file(sample_store)
    got = {name: cli(*args, "--json", "--store", sample_store, reader=True) for name, args in {
        "status": ["status"], "ls": ["ls"], "suspicion": ["ls", "--order", "suspicion"], "log": ["log"],
        "blame": ["blame", "8"], "diff": ["diff", "HEAD~2", "HEAD"]}.items()}
    for name, proc in got.items():
        assert proc.returncode == 0 and proc.stderr == "", (name, proc.stderr)
        assert proc.stdout == want[name], name
    assert json.loads(got["status"].stdout)["relabeled"] == 1
    proc = cli("verify", "--store", sample_store, reader=True)
    assert proc.returncode == 0 and "verify OK: 3 events" in proc.stdout, proc.stdout + proc.stderr
    proc = cli("export", "coco", tmp_path / "auditor.json", "--store", sample_store, reader=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "auditor.json").read_bytes() == (tmp_path / "writer.json").read_bytes()
    proc = cli("export", "coco", tmp_path / "then.json", "--rev", "HEAD~2", "--store", sample_store, reader=True)
    assert proc.returncode == 0 and "wrote 1 annotations" in proc.stdout, proc.stderr
    assert every_file(sample_store) == before  # not a byte written, not a mode changed
    assert not (Path(os.environ["HOME"]) / ".cache" / "labelreview").exists()  # its own index was enough


def test_read_only_store_refuses_every_change_clearly_and_writes_nothing(sample_store, writable_again):
    from conftest import SAMPLE

    assert cli("accept", "7", "--store", sample_store).returncode == 0
    read_only(sample_store)
    writable_again(sample_store)
    before = every_file(sample_store)
    for args, what in ((["accept", "8"], "accept 8"), (["undo"], "undo 7"), (["commit"], "commit"),
                       (["reindex"], "reindex"), (["import", "coco", SAMPLE / "proposals.json"], "import"),
                       (["sync"], "sync"), (["release", "v9"], "release"), (["remote", "add", "o", "/x"], "remote add"),
                       (["review"], "the review records decisions")):
        proc = cli(*args, "--store", sample_store, reader=True)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert "this store is read-only for you" in proc.stderr and what in proc.stderr, (args, proc.stderr)
        assert f"you may not write to {sample_store / '.labelreview'}" in proc.stderr
    assert every_file(sample_store) == before


def test_read_only_store_whose_index_is_behind_or_gone_reads_from_one_built_from_its_files(
        sample_store, writable_again):
    import shutil

    acked = _decide_until_crash(sample_store, CRASH_AFTER_FSYNC)  # 5, 6 indexed; 7 in the log only
    assert len(acked) == 2
    read_only(sample_store)
    writable_again(sample_store)
    before = every_file(sample_store)
    proc = cli("ls", "--status", "accepted", "--json", "--store", sample_store, reader=True)
    assert proc.returncode == 0, proc.stderr
    assert [a["id"] for a in json.loads(proc.stdout)] == [5, 6, 7]  # the line the index missed counts
    assert "read-only for you" in proc.stderr and "its index is behind its files" in proc.stderr
    assert "(building it now)" in proc.stderr and "`labelreview status`" in proc.stderr
    proc = cli("verify", "--store", sample_store, reader=True)
    assert proc.returncode == 0 and "verify OK: 3 events" in proc.stdout, proc.stdout + proc.stderr
    assert "(building it now)" not in proc.stderr  # the copy in the user's cache was kept
    assert every_file(sample_store) == before
    # Anyone who may write the store brings its own index up to date; then it is read directly.
    writable = cli("status", "--store", sample_store)  # (root: the modes do not bind it)
    assert writable.returncode == 0
    before = every_file(sample_store)
    proc = cli("status", "--json", "--store", sample_store, reader=True)
    assert proc.returncode == 0 and proc.stderr == "" and json.loads(proc.stdout)["accepted"] == 3
    # No index at all (a read-only copy of a clone): built from the files too.
    for p in (sample_store, sample_store / ".labelreview"):
        p.chmod(0o755)
    shutil.rmtree(sample_store / ".labelreview")
    shutil.rmtree(Path(os.environ["HOME"]) / ".cache")
    read_only(sample_store)
    proc = cli("blame", "7", "--json", "--store", sample_store, reader=True)
    assert proc.returncode == 0 and "has no index" in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)[0]["status"] == "accepted"
    assert not (sample_store / ".labelreview").exists()


def test_two_reindex_at_once_both_finish_and_leave_a_whole_index(sample_store):
    for args in (["accept", "7"], ["reject", "8"], ["relabel", "9", "dog"]):
        assert cli(*args, "--store", sample_store).returncode == 0
    import labelreview

    env = dict(os.environ, PYTHONPATH=str(Path(labelreview.__file__).resolve().parents[1]))
    for _ in range(6):
        procs = [subprocess.Popen([sys.executable, "-m", "labelreview", "reindex", "--store", str(sample_store)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and "Traceback" not in err, err
            assert out == "index rebuilt: 25 annotations, 5 images, 3 events\n"
    assert not list((sample_store / ".labelreview").glob("*.rebuild*"))  # no scratch file left
    status = json.loads(cli("status", "--json", "--store", sample_store).stdout)
    assert (status["accepted"], status["rejected"], status["relabeled"], status["events"]) == (1, 1, 1, 3)
    proc = cli("verify", "--store", sample_store)
    assert proc.returncode == 0, proc.stdout


def test_copies_of_unreadable_indexes_are_kept_to_the_newest_three_and_removals_are_said(sample_store):
    index = sample_store / ".labelreview" / "index.sqlite"
    for n in range(1, 6):
        for suffix in ("-wal", "-shm"):
            Path(str(index) + suffix).unlink(missing_ok=True)
        index.write_bytes(b"not a database %d\n" % n * 100)
        proc = cli("status", "--store", sample_store)
        assert proc.returncode == 0, proc.stderr
        assert "SQLite cannot read this index" in proc.stderr
        assert "moved it aside as index.sqlite.broken-" in proc.stderr
        copies = sorted(index.parent.glob("index.sqlite.broken-*"), key=lambda p: p.stat().st_mtime)
        assert len(copies) == min(n, 3)
        assert copies[-1].read_bytes() == b"not a database %d\n" % n * 100  # the newest is kept
        if n > 3:
            assert "removed 1 older copy set aside before" in proc.stderr
            assert "the newest 3 are kept" in proc.stderr
        else:
            assert "removed" not in proc.stderr
        time.sleep(1.1)  # (the copies are named by the second)
    notes = [json.loads(x) for x in (index.parent / "recovery.log").read_text().splitlines()]
    assert sum(len(n.get("removed_set_aside_indexes", [])) for n in notes) == 2


def test_what_dead_imports_and_rebuilds_left_beside_the_index_is_removed_and_said(sample_store, sample_images):
    from conftest import SAMPLE

    folder = sample_store / ".labelreview"
    old = time.time() - 2 * 86400

    def leftover(name: str, age: float | None) -> Path:
        d = folder / name
        d.mkdir()
        (d / "annotations-0000.jsonl").write_text("{}\n")
        if age is not None:
            for p in (d / "annotations-0000.jsonl", d):
                os.utime(p, (age, age))
        return d

    before_pids = leftover("import-k2j4h_x1", old)  # made before import folders carried their pid
    reused_pid = leftover(f"import-{os.getpid()}-q8z0a1b2", old)  # its pid is another process's now
    running = leftover(f"import-{os.getpid()}-live0000", None)  # an import writing right now
    dead_rebuild = folder / "index.sqlite.999999999.rebuild"
    dead_rebuild.write_bytes(b"half a rebuild")
    old_rebuild = folder / "index.rebuild"  # a killed reindex of versions before the pid
    old_rebuild.write_bytes(b"half a rebuild")
    os.utime(old_rebuild, (old, old))
    proc = cli("reindex", "--store", sample_store)
    assert proc.returncode == 0, proc.stderr
    for gone in (before_pids, reused_pid, dead_rebuild, old_rebuild):
        assert not gone.exists(), gone
        assert gone.name in proc.stderr
    assert running.exists() and running.name not in proc.stderr
    # An import removes them too.
    again = leftover("import-a1b2c3d4", old)
    proc = cli("import", "coco", SAMPLE / "proposals.json", "--images", sample_images, "--source", "again",
               "--store", sample_store)
    assert proc.returncode == 0, proc.stderr
    assert not again.exists() and again.name in proc.stderr
    notes = (folder / "recovery.log").read_text()
    assert "import-k2j4h_x1" in notes and "import-a1b2c3d4" in notes and "index.rebuild" in notes


def test_index_copied_from_another_store_is_not_used_but_set_aside_and_rebuilt(sample_store, empty_store,
                                                                              tmp_path):
    index = ".labelreview/index.sqlite"
    assert cli("accept", "7", "--store", sample_store).returncode == 0
    for suffix in ("", "-wal", "-shm"):
        Path(str(empty_store / index) + suffix).unlink(missing_ok=True)
    (empty_store / index).write_bytes((sample_store / index).read_bytes())  # a copy over the wrong store
    proc = cli("status", "--json", "--store", empty_store)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert (status["total"], status["images"], status["events"], status["imports"]) == (0, 0, 0, 0)
    assert f"this index was built for the store at {sample_store}" in proc.stderr
    aside = list((empty_store / ".labelreview").glob("index.sqlite.foreign-*"))
    assert len(aside) == 1 and aside[0].name in proc.stderr
    for args in (["ls", "--json"], ["log", "--json"]):
        proc = cli(*args, "--store", empty_store)
        assert proc.returncode == 0 and proc.stdout == "[]\n" and proc.stderr == "", proc.stderr
    proc = cli("export", "coco", tmp_path / "out.json", "--store", empty_store)
    assert proc.returncode == 0 and "wrote 0 annotations on 0 images" in proc.stdout, proc.stderr
    assert cli("verify", "--store", empty_store).returncode == 0
    # The store it came from still has its own.
    assert json.loads(cli("status", "--json", "--store", sample_store).stdout)["accepted"] == 1


def test_index_of_a_whole_store_copy_is_its_own_and_kept(sample_store, tmp_path):
    import shutil

    assert cli("accept", "7", "--store", sample_store).returncode == 0
    copy = tmp_path / "copy-of-store"
    shutil.copytree(sample_store, copy, symlinks=True)  # cp -r: its index describes its files
    index = copy / ".labelreview" / "index.sqlite"
    inode = index.stat().st_ino
    proc = cli("status", "--json", "--store", copy)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert json.loads(proc.stdout)["accepted"] == 1
    assert index.stat().st_ino == inode and not list(index.parent.glob("index.sqlite.*-*"))  # not rebuilt


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the store to another user needs root")
def test_a_store_another_user_owns_says_how_to_trust_it_instead_of_checking_nothing(sample_store):
    # An auditor reads a team's store. git refuses a repository another user owns ("dubious
    # ownership"): `verify` then said OK without checking any history (HEAD read as invalid), and
    # `diff HEAD~1 HEAD` said HEAD~1 "is not a revision of the store".
    import pwd

    assert run("accept", "1", "--store", sample_store)[0] == 0
    nobody = pwd.getpwnam("nobody").pw_uid
    for path in [sample_store, *sample_store.rglob("*")]:
        os.lchown(path, nobody, -1)
    for argv in (["verify", "--no-images"], ["diff", "HEAD~1", "HEAD"], ["export", "coco", str(sample_store.parent / "o.json"),
                                                                       "--rev", "HEAD"]):
        rc, out, err = run(*argv, "--store", sample_store)
        assert rc == 1 and "the store belongs to nobody" in err and "git config --global --add safe.directory " \
            f"{sample_store}" in err, (argv, out, err)
    assert run("status", "--store", sample_store)[0] == 0  # (no git needed)
    subprocess.run(["git", "config", "--global", "--add", "safe.directory", str(sample_store)], check=True)
    rc, out, err = run("verify", "--no-images", "--store", sample_store)
    assert rc == 0 and "verify OK" in out, err
    assert run("diff", "HEAD~1", "HEAD", "--store", sample_store)[0] == 0
