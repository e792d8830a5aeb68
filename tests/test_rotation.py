"""A writer's log of one day is continued in parts (``<day>.jsonl``, ``<day>_0001.jsonl`` ...) once it
reaches ``eventlog.PART_BYTES``: the hash chain runs on across the parts, verify reads them in order
and finds tampering in any of them, recovery repairs the newest, sync merges them, and stores written
before parts existed (one file per day) read, verify and grow the same."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import _sample, git, run, sample_images, sample_store, templates  # noqa: F401
from teams import ALICE, BOB, bare_remote, cli, decider, finish, js, states, verify_ok
from labelreview.review import ReviewSession
from labelreview.store import Store, canonical, eventlog
from labelreview.store.verify import verify

SMALL = 1500  # bytes: two or three events per part


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setattr(eventlog, "PART_BYTES", SMALL)
    monkeypatch.setenv("LABELREVIEW_LOG_PART_BYTES", str(SMALL))  # for the processes a test starts


def decide(root: Path, ids, author: str | None = None, checkpoint: bool = True) -> list[dict]:
    with Store.open(root, author=author) as store:
        s = ReviewSession(store, auto_checkpoint=False)
        out = [s.accept(i) if i % 3 else s.reject(i, reason="duplicate") for i in ids]
        if checkpoint:
            store.checkpoint()
    return out


def chain(root: Path) -> list[tuple[str, dict]]:
    """Every event line, file by file in the order list_files gives."""
    return [(rel, json.loads(line)) for rel in eventlog.list_files(root)
            for line in (root / rel).read_bytes().splitlines()]


def test_names_sort_in_writing_order():
    w = "alice-example.org/host"
    names = [eventlog.day_file(w, "2026-11-28T10:00:00Z", p) for p in range(3)]
    names.append(eventlog.day_file(w, "2026-11-29T00:00:00Z"))
    assert names == [f"events/{w}/2026-11-28.jsonl", f"events/{w}/2026-11-28_0001.jsonl",
                     f"events/{w}/2026-11-28_0002.jsonl", f"events/{w}/2026-11-29.jsonl"]
    assert sorted(names) == names == sorted(reversed(names), key=eventlog.file_key)  # bytes and key agree
    assert eventlog.day_and_part(names[2]) == ("2026-11-28", 2) and eventlog.day_and_part(names[0]) == ("2026-11-28", 0)
    assert eventlog.writer_of(names[1]) == w
    # the next file: same part while small, the next part once full, a new day's file on a new day
    ts = "2026-11-28T11:00:00Z"
    assert eventlog.next_file(w, ts, names[1], 10) == names[1]
    assert eventlog.next_file(w, ts, names[1], eventlog.PART_BYTES) == names[2]
    assert eventlog.next_file(w, "2026-11-29T00:00:01Z", names[2], 10) == names[3]
    assert eventlog.next_file(w, ts, None, 0) == names[0]


def test_the_chain_runs_across_parts_and_everything_reads_them(sample_store, small_parts):
    events = decide(sample_store, range(1, 13))
    files = eventlog.list_files(sample_store)
    assert len(files) >= 4 and files[0].endswith(events[0]["ts"][:10] + ".jsonl")
    assert all(f.rsplit("/", 1)[-1].startswith(events[0]["ts"][:10] + "_") for f in files[1:])
    assert all((sample_store / f).stat().st_size < SMALL + 1000 for f in files)  # each closed once full
    lines = chain(sample_store)
    assert [ev["seq"] for _, ev in lines] == list(range(1, 13))
    assert [ev["prev"] for _, ev in lines] == [None] + [ev["hash"] for _, ev in lines[:-1]]
    assert [ev["hash"] for _, ev in lines] == [e["hash"] for e in events]
    with Store.open(sample_store) as store:
        assert store.uncommitted() == 0
        assert verify(store, images=False).ok
        by_file = {(e["file"], e["line"]) for e in store.events()}
        before = states(sample_store)
    # each event is indexed at its own file and line
    expect = set()
    for rel in files:
        expect |= {(rel, n) for n in range(1, len((sample_store / rel).read_bytes().splitlines()) + 1)}
    assert by_file == expect
    # a rebuild from the files alone gives the same index, commits attributed per part
    rc, _, err = run("reindex", "--store", sample_store)
    assert rc == 0, err
    assert states(sample_store) == before
    with Store.open(sample_store) as store:
        assert store.uncommitted() == 0 and {(e["file"], e["line"]) for e in store.events()} == expect
    assert git(sample_store, "status", "--porcelain") == ""
    verify_ok(sample_store)


def test_a_checkpoint_stages_only_the_parts_that_grew(sample_store, small_parts, monkeypatch):
    from labelreview.store import gitrepo

    decide(sample_store, range(1, 9))
    staged: list[list[str] | None] = []
    real = gitrepo.add
    monkeypatch.setattr(gitrepo, "add", lambda repo, exclude=(), logs=None: (staged.append(logs), real(repo, exclude, logs))[1])
    decide(sample_store, [9])
    newest = eventlog.list_files(sample_store)[-1]
    assert staged == [[newest]]
    shown = git(sample_store, "show", "--name-only", "--format=", "HEAD").split()
    assert shown == [newest]
    assert git(sample_store, "status", "--porcelain") == ""


def _edit(line: bytes) -> bytes:
    ev = json.loads(line)
    ev["new"]["status"] = "rejected" if ev["new"]["status"] != "rejected" else "accepted"
    return canonical.dumps(ev) + b"\n"


def test_verify_finds_an_edit_in_a_middle_part(sample_store, small_parts):
    decide(sample_store, range(1, 13))
    files = eventlog.list_files(sample_store)
    middle = sample_store / files[1]
    lines = middle.read_bytes().splitlines(keepends=True)
    lines[1] = _edit(lines[1])
    middle.write_bytes(b"".join(lines))
    rc, out, _ = run("verify", "--no-images", "--json", "--store", sample_store)
    doc = json.loads(out)
    assert rc == 1 and not doc["ok"]
    where = {(p["kind"], p["where"]) for p in doc["problems"]}
    assert ("hash", f"{files[1]}:2") in where  # the line does not hash to itself
    assert any(k == "git" and w.startswith(files[1]) for k, w in where)  # and differs from git's copy


def test_verify_finds_a_part_removed_from_the_middle(sample_store, small_parts):
    decide(sample_store, range(1, 13))
    files = eventlog.list_files(sample_store)
    (sample_store / files[1]).unlink()
    rc, out, _ = run("verify", "--no-images", "--json", "--store", sample_store)
    doc = json.loads(out)
    assert rc == 1
    where = {(p["kind"], p["where"]) for p in doc["problems"]}
    assert ("chain", f"{files[2]}:1") in where  # the next part no longer follows the one before
    assert ("git", files[1]) in where  # and git holds a part that is gone


def test_verify_finds_lines_moved_into_another_part(sample_store, small_parts):
    """Reordering across files: the last line of part 1 moved to the head of part 2."""
    decide(sample_store, range(1, 13))
    files = eventlog.list_files(sample_store)
    a, b = sample_store / files[1], sample_store / files[2]
    la = a.read_bytes().splitlines(keepends=True)
    a.write_bytes(b"".join(la[:-1]))
    b.write_bytes(la[-1] + b.read_bytes())
    rc, out, _ = run("verify", "--no-images", "--json", "--store", sample_store)
    assert rc == 1
    assert any(p["kind"] == "git" for p in json.loads(out)["problems"])


CRASH = textwrap.dedent("""
    import os, sys
    from labelreview.review import ReviewSession
    from labelreview.store import Store, eventlog
    from labelreview.store import store as _store_mod
    mode, root, ids = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3].split(",")]
    _real_apply = _store_mod.Store._apply
    _real_append = eventlog.append_durably
    def _apply(self, conn, ev, rel, end, line=None):
        if mode == "after-fsync" and line == 1:
            os._exit(9)  # the first line of a new part is durable; the index never hears of it
        return _real_apply(self, conn, ev, rel, end, line)
    def append_durably(path, line):
        if mode == "torn" and not os.path.exists(path):  # the power goes out in a new part's first line
            with open(path, "ab") as f:
                f.write(line[: len(line) // 2])
                os.fsync(f.fileno())
            os._exit(9)
        return _real_append(path, line)
    _store_mod.Store._apply = _apply
    _store_mod.eventlog.append_durably = append_durably
    store = Store.open(root)
    s = ReviewSession(store, auto_checkpoint=False)
    for i in ids:
        print(s.accept(i)["hash"], flush=True)
""")


def _crash(root: Path, mode: str, ids: list[int]) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", CRASH, mode, str(root), ",".join(map(str, ids))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    return [ln for ln in proc.stdout.splitlines() if len(ln) == 64]


@pytest.mark.parametrize("mode", ["after-fsync", "torn"])
def test_a_crash_in_the_newest_part_is_repaired_and_the_chain_goes_on(sample_store, small_parts, mode):
    decide(sample_store, range(1, 13))
    parts_before = eventlog.list_files(sample_store)
    acked = _crash(sample_store, mode, list(range(13, 20)))  # it dies on the first line of a new part
    crashed_on = 13 + len(acked)
    parts = eventlog.list_files(sample_store)
    crashed_in = parts[-1]
    assert crashed_in not in parts_before, "the crash should hit the first line of a new part"
    # The same writer decides again in a new process: it must first repair the newest part.
    rc, _, err = run("accept", "20", "--store", sample_store)
    assert rc == 0, err
    lines = chain(sample_store)
    assert [ev["seq"] for _, ev in lines] == list(range(1, len(lines) + 1))
    assert [ev["prev"] for _, ev in lines[1:]] == [ev["hash"] for _, ev in lines[:-1]]
    with Store.open(sample_store) as store:
        indexed = {r[0] for r in store.conn.execute("SELECT hash FROM events")}
        assert set(acked) <= indexed
        assert store.annotation(crashed_on).status == ("accepted" if mode == "after-fsync" else "pending")
        assert store.annotation(20).status == "accepted"
        assert verify(store, images=False).ok
        assert store.uncommitted() == 0
    if mode == "torn":
        notes = (sample_store / ".labelreview" / "recovery.log").read_text().splitlines()
        assert json.loads(notes[-1])["file"] == crashed_in
    verify_ok(sample_store)


def test_a_crash_that_started_a_new_part_is_found_by_the_next_decision_not_only_at_open(
        sample_store, small_parts):
    """A store kept open while another process of the same writer crashed after starting a new part:
    the open store's next decision must not write a second line with the same sequence number."""
    decide(sample_store, range(1, 13))
    with Store.open(sample_store) as store:  # opened before the crash
        s = ReviewSession(store, auto_checkpoint=False)
        acked = _crash(sample_store, "after-fsync", list(range(13, 20)))
        ev = s.accept(21)
        lines = chain(sample_store)
        assert lines[-1][1]["hash"] == ev["hash"] and lines[-2][1]["seq"] == ev["seq"] - 1
        assert {r[0] for r in store.conn.execute("SELECT hash FROM events")} >= set(acked)
        assert verify(store, images=False).ok
        store.checkpoint()


def test_sync_merges_rotated_logs(sample_store, small_parts, tmp_path):
    remote = bare_remote(tmp_path / "remote.git")
    a = sample_store
    assert cli("remote", "add", "origin", remote, "--store", a, author=ALICE)[0] == 0
    assert js("sync", "--store", a, author=ALICE)["pushed"]
    b = a.parent / "bob"
    assert cli("clone", remote, b, author=BOB)[0] == 0
    pa = decider(a, ALICE, [["accept", i] for i in range(1, 11)] + [["relabel", 24, "cat"]])
    pb = decider(b, BOB, [["reject", i] for i in range(11, 21)] + [["relabel", 24, "dog"]])
    finish(pa), finish(pb)
    for root, who in ((a, "alice"), (b, "bob")):
        mine = [f for f in eventlog.list_files(root) if f.startswith(f"events/{who}")]
        assert len(mine) >= 3, mine  # each wrote several parts
    js("sync", "--store", b, author=BOB)
    got = js("sync", "--store", a, author=ALICE)
    assert got["events_received"] == 11 and got["new_conflicts"] == [24]
    js("sync", "--store", b, author=BOB)
    assert states(a) == states(b)
    assert eventlog.list_files(a) == eventlog.list_files(b)
    verify_ok(a), verify_ok(b)
    # and they go on: more parts on both sides after the merge, synced again
    finish(decider(a, ALICE, [["accept", i] for i in range(21, 24)]))
    js("sync", "--store", a, author=ALICE)
    js("sync", "--store", b, author=BOB)
    assert states(a) == states(b)
    verify_ok(b)


def _old_style(root: Path, n: int, author: str = "Old Writer <old@example.org>") -> list[str]:
    """Decisions written as a store made before parts existed: one file per day, however large."""
    import labelreview.store.eventlog as ev

    saved = ev.PART_BYTES
    ev.PART_BYTES = 1 << 40
    try:
        out = decide(root, range(1, n + 1), author=author)
    finally:
        ev.PART_BYTES = saved
    return [e["hash"] for e in out]


def test_an_old_store_with_plain_day_files_reads_verifies_and_goes_on_in_parts(sample_store, small_parts):
    hashes = _old_style(sample_store, 8)
    files = eventlog.list_files(sample_store)
    assert len(files) == 1 and files[0].endswith(".jsonl") and "_" not in files[0].rsplit("/", 1)[-1]
    assert (sample_store / files[0]).stat().st_size > SMALL  # bigger than a part may be now
    # it reads and verifies as it is, index or no index
    (sample_store / ".labelreview" / "index.sqlite").unlink()
    with Store.open(sample_store, author="Old Writer <old@example.org>") as store:
        assert [e["hash"] for e in store.events()] == hashes
        assert verify(store, images=False).ok
    # the same writer goes on: its next event starts part 1 of that day, chained to the day file
    ev = decide(sample_store, [9], author="Old Writer <old@example.org>")[0]
    files2 = eventlog.list_files(sample_store)
    assert files2[0] == files[0] and files2[1] == files[0][:-len(".jsonl")] + "_0001.jsonl"
    assert ev["prev"] == hashes[-1] and ev["seq"] == 9
    rc, _, err = run("reindex", "--store", sample_store)
    assert rc == 0, err
    verify_ok(sample_store)
