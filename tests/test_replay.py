"""The bulk rebuild (fold in memory, rows written once) gives the index the per-event path gives:
table by table, row by row, on a store with undo, relabel, stale decisions (conflicts and aliases),
blind decisions (agreeing, disagreeing, waiting, taken back), resolves, events on no annotation, and
committed and uncommitted events. ``verify``'s in-memory comparison accepts it and finds an edit."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from helpers import build_sample, run, set_config, templates  # noqa: F401
from labelreview.review import ReviewSession
from labelreview.store import Store, canonical, eventlog, schema
from labelreview.store.config import Config
from labelreview.store.identity import resolve_identity
from labelreview.store.store import (
    IMPORTS_DIR,
    _INSERT_EVENT,
    _attribute_commits,
    _event_values,
    _load_import_folder,
)


def reference_rebuild(root: Path, index: Path) -> None:
    """The per-event path the bulk rebuild replaced (imports through ``_load_import_folder``, events
    recorded then folded by ``refold``, commits attributed by ``_attribute_commits``)."""
    conn = schema.connect(index)
    try:
        schema.create(conn)
        conn.execute("BEGIN IMMEDIATE")
        folders = []
        for p in (root / IMPORTS_DIR).iterdir():
            if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").is_file():
                m = canonical.loads((p / "manifest.json").read_bytes())
                folders.append((m["seq"], m["ts"], p))
        for _, _, p in sorted(folders):
            _load_import_folder(conn, p)
        events = []
        for rel in eventlog.list_files(root):
            for ll in eventlog.read_lines(root, rel):
                events.append((ll.event["ts"], ll.event["writer"], ll.event["seq"], rel, ll.end, ll.number, ll.event))
        events.sort(key=lambda t: t[:3])
        conn.executemany(_INSERT_EVENT, (_event_values(ev, rel, n, end) for *_, rel, end, n, ev in events))
        heads, files = {}, {}
        for *_, rel, end, number, ev in events:
            if ev["seq"] >= heads.get(ev["writer"], (0, ""))[0]:
                heads[ev["writer"]] = (ev["seq"], ev["hash"])
            if number >= files.get(rel, ("", 0, 0))[2]:
                files[rel] = (ev["writer"], end, number)
        conn.executemany("INSERT INTO writers(writer, seq, hash) VALUES(?,?,?)",
                         ((w, s, h) for w, (s, h) in heads.items()))
        conn.executemany("INSERT INTO event_files(path, writer, size, lines) VALUES(?,?,?,?)",
                         ((rel, w, end, n) for rel, (w, end, n) in files.items()))
        Store(root, resolve_identity("rebuild"), conn, Config()).refold({ev["annotation"] for *_, ev in events}, conn)
        conn.execute("COMMIT")
        _attribute_commits(root, conn)
    finally:
        conn.close()


TABLES = {"meta": "key", "imports": "id", "categories": "name", "images": "id", "annotations": "id",
          "events": "ord", "event_files": "path", "writers": "writer", "conflicts": "event",
          "fold_alias": "event", "blind_pending": "annotation, author", "leases": "image_id",
          "sqlite_sequence": "name"}


def dump(index: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(index)
    try:
        out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY {k}").fetchall() for t, k in TABLES.items()}
        out["schema"] = sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall())
        return out
    finally:
        conn.close()


class Writer:
    """Sealed events written straight to a log, as another machine's would arrive by sync."""

    def __init__(self, root: Path, name: str):
        self.root, self.writer, self.author = root, f"{name}-example.org/far", f"{name.title()} <{name}@example.org>"
        self.seq, self.prev = 0, None

    def emit(self, ts: str, action: str, ann: int, category: str, status: str, base, **extra) -> str:
        self.seq += 1
        ev = {"v": 1, "writer": self.writer, "seq": self.seq, "ts": ts, "author": self.author, "login": "x",
              "host": "far", "action": action, "annotation": ann, "image": 1, "old": None,
              "new": {"category": category, "status": status}, "reason": None, "comment": None, "base": base,
              "undoes": None, "prev": self.prev, **extra}
        ev, line = eventlog.seal(ev)
        eventlog.append_durably(self.root / eventlog.day_file(self.writer, ts), line)
        self.prev = ev["hash"]
        return ev["hash"]


def build_mixed(root: Path, images: Path) -> None:
    build_sample(root, images)
    with Store.open(root, author="Alice <alice@example.org>") as st:
        s = ReviewSession(st, auto_checkpoint=False)
        s.accept(1)
        s.relabel(2, "saucer", reason="wrong-class")
        s.flag(3, "loose-box", comment="edge cut")
        s.reject(4, reason="duplicate")
        s.accept(5)
        s.undo()
        st.checkpoint()
        s.relabel(6, "cup")
        base7 = None
    # Another machine's decisions, some made on states that changed since.
    far = Writer(root, "zed")
    far.emit("2001-01-01T00:00:00.000001Z", "accept", 1, "dog", "accepted", base7)  # before Alice's: applies
    far.emit("2001-01-01T00:00:00.000002Z", "reject", 7, "cup", "rejected", None)
    far.emit("2001-01-01T00:00:00.000003Z", "accept", 99999, "cup", "accepted", None)  # no such annotation
    far.emit("2099-01-01T00:00:00.000001Z", "reject", 2, "cup", "rejected", None)  # stale: a conflict
    far.emit("2099-01-01T00:00:00.000002Z", "flag", 3, "saucer", "flagged", None)  # stale, same state: alias?
    with Store.open(root, author="Bob <bob@example.org>") as st:
        st.checkpoint()
    set_config(root, review={"double": True})
    for who, ops in (("Carol <carol@example.org>", [("accept", 8), ("accept", 9), ("reject", 10), ("accept", 11)]),
                     ("Dan <dan@example.org>", [("accept", 8), ("reject", 9)])):
        with Store.open(root, author=who) as st:
            s = ReviewSession(st, auto_checkpoint=False)
            for op, i in ops:
                getattr(s, op)(i)
            if who.startswith("Carol"):
                s.undo()  # the blind accept of 11 taken back before a second reviewer
    set_config(root, review={"double": False})
    with Store.open(root, author="Erin <erin@example.org>") as st:
        s = ReviewSession(st, auto_checkpoint=False)
        for ann in sorted({c["annotation"] for c in st.open_conflicts()}):
            s.resolve(ann, category="cup", status="relabeled", reason="wrong-class")
        s.accept(12)


@pytest.fixture
def mixed(templates, tmp_path) -> Path:
    return templates.copy("mixed", build_mixed, tmp_path / "mixed")[0]


def test_bulk_rebuild_equals_the_per_event_path(mixed, tmp_path):
    from labelreview.store.store import _rebuild_into

    old, new = tmp_path / "old.sqlite", tmp_path / "new.sqlite"
    reference_rebuild(mixed, old)
    _rebuild_into(mixed, new)
    a, b = dump(old), dump(new)
    # The store holds what the test means it to: otherwise equality proves little.
    assert len(a["conflicts"]) >= 3 and any(r[4] for r in a["conflicts"]), a["conflicts"]
    assert a["blind_pending"] and a["fold_alias"], (a["blind_pending"], a["fold_alias"])
    assert any(r[-1] is None for r in a["events"]) and any(r[-1] for r in a["events"])  # git_commit
    for table in a:
        assert a[table] == b[table], table
    # And the live index, kept event by event, is what both say: verify's one problem is the
    # hand-written event on annotation 99999, which no import holds.
    with Store.open(mixed) as st:
        st.checkpoint()
    rc, out, _ = run("verify", "--json", "--store", mixed)
    problems = json.loads(out)["problems"]
    assert rc == 1 and len(problems) == 1 and problems[0]["kind"] == "event", problems
    assert problems[0]["message"].startswith("decides on annotation 99999, which no import holds: "), problems


def test_verify_compares_without_a_second_index(mixed):
    with Store.open(mixed) as st:
        assert st.counts()["conflicts"] == 0 or True
    conn = sqlite3.connect(mixed / ".labelreview" / "index.sqlite")
    conn.execute("UPDATE conflicts SET resolved=NULL WHERE resolved IS NOT NULL")
    conn.execute("UPDATE blind_pending SET new='{}'")
    conn.commit()
    conn.close()
    rc, out, _ = run("verify", "--json", "--store", mixed)
    doc = json.loads(out)
    assert rc == 1
    tables = {p["where"].split(":")[1] for p in doc["problems"] if p["where"].startswith("index:")}
    assert {"conflicts", "blind_pending"} <= tables, doc["problems"]


def test_verify_in_two_processes_reports_what_one_does(mixed, monkeypatch):
    """Big logs are checked in a second process: the same problems, in the same order."""
    from labelreview.store import verify as v

    path = mixed / eventlog.list_files(mixed)[0]
    lines = path.read_bytes().splitlines(keepends=True)
    ev = json.loads(lines[1])
    ev["author"] = "Mallory"
    lines[1] = canonical.dumps(ev) + b"\n"
    path.write_bytes(b"".join(lines))
    conn = sqlite3.connect(mixed / ".labelreview" / "index.sqlite")
    conn.execute("UPDATE annotations SET category='dog' WHERE id=3")
    conn.execute("UPDATE events SET comment='x' WHERE annotation=4")
    conn.commit()
    conn.close()
    with Store.open(mixed, recover=False) as st:
        one = v.verify(st, images=False).as_dict()
        monkeypatch.setattr(v, "PARALLEL_BYTES", 0)
        two = v.verify(st, images=False).as_dict()
    assert not one["ok"] and {"hash", "git", "index"} <= {p["kind"] for p in one["problems"]}, one
    assert one == two


def test_a_repeated_event_line_names_the_first(mixed):
    path = mixed / eventlog.list_files(mixed)[0]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines) + lines[0])
    rel = path.relative_to(mixed).as_posix()
    rc, _, err = run("reindex", "--store", mixed)
    assert rc == 1 and f"{rel}:{len(lines) + 1}: unreadable event line (the same event as {rel}:1)" in err, err


def test_rebuild_in_two_processes_equals_the_per_event_path(mixed, tmp_path, monkeypatch):
    from labelreview.store import replay
    from labelreview.store.store import _rebuild_into

    # An event on an annotation no import holds, with a conflict of its own: left out by both paths.
    far = Writer(mixed, "yan")
    far.emit("2099-02-01T00:00:00.000001Z", "accept", 4242, "cup", "accepted", None)
    far.emit("2099-02-01T00:00:00.000002Z", "reject", 4242, "cup", "rejected", None)
    far.emit("2099-02-01T00:00:00.000003Z", "flag", 4242, "cup", "flagged", "not-the-last")
    monkeypatch.setattr(replay, "PARALLEL_BYTES", 0)
    old, new = tmp_path / "old.sqlite", tmp_path / "new.sqlite"
    reference_rebuild(mixed, old)
    _rebuild_into(mixed, new)
    a, b = dump(old), dump(new)
    assert a["conflicts"] and a["blind_pending"] and a["fold_alias"]
    for table in a:
        assert a[table] == b[table], table


def test_the_second_process_works_from_a_script_without_a_main_guard(mixed, tmp_path):
    """A user's script calling the store at top level: the helper process must not run it again."""
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(
        "import sys\n"
        "from labelreview.store import Store, replay, verify\n"
        "replay.PARALLEL_BYTES = verify.PARALLEL_BYTES = 0\n"
        "with Store.open(sys.argv[1]) as st:\n"
        "    st.reindex()\n"
        "    print(sorted(p.kind for p in verify.verify(st, images=False).problems))\n")
    proc = subprocess.run([sys.executable, str(script), str(mixed)], capture_output=True, text=True, timeout=120)
    # (the one problem: the fixture's hand-written event on annotation 99999, which no import holds)
    assert proc.returncode == 0 and proc.stdout.strip() == "['event']", proc.stdout + proc.stderr


def test_a_bad_line_stops_a_rebuild_in_two_processes(mixed, tmp_path):
    """The second process waits for the fold's states; a line that stops the fold before they are
    sent must end it too (no hang), with the line named."""
    import subprocess
    import sys

    path = mixed / eventlog.list_files(mixed)[0]
    with open(path, "ab") as f:
        f.write(b'{"not": "an event"}\n')
    rel = path.relative_to(mixed).as_posix()
    n = len(path.read_bytes().splitlines())
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "from labelreview.store import replay\n"
        "replay.PARALLEL_BYTES = 0\n"
        "try:\n"
        "    replay.rebuild(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "except Exception as e:\n"
        "    print(e)\n")
    proc = subprocess.run([sys.executable, str(script), str(mixed), str(tmp_path / "new.sqlite")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and f"{rel}:{n}: unreadable event line" in proc.stdout, (proc.stdout, proc.stderr)


OLD_EVENTS_TABLE = schema.SCHEMA.replace("hash TEXT NOT NULL, writer", "hash TEXT UNIQUE NOT NULL, writer").replace(
    schema._EVENTS_HASH, "")


@pytest.mark.parametrize("made_by", ["this version", "an older version"])
def test_an_event_hash_is_unique_in_indexes_of_either_schema(tmp_path, made_by):
    """An index made before the hash's uniqueness moved from the table to an index of its own keeps
    its constraint and gets no second index; a new one gets the index. Either refuses a repeat."""
    conn = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    try:
        if made_by == "an older version":
            assert "UNIQUE NOT NULL" in OLD_EVENTS_TABLE and "events_hash" not in OLD_EVENTS_TABLE
            conn.executescript(OLD_EVENTS_TABLE)
        schema.create(conn)
        schema.create(conn)  # (every open does)
        unique = [r[1] for r in conn.execute("PRAGMA index_list(events)") if r[2]]
        assert unique == (["events_hash"] if made_by == "this version" else ["sqlite_autoindex_events_1"])
        insert = "INSERT INTO events(hash, writer, seq) VALUES(?,?,?)"
        conn.execute(insert, ("h1", "w", 1))
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed: events.hash"):
            conn.execute(insert, ("h1", "w", 2))
    finally:
        conn.close()


def test_an_interrupted_rebuild_stops_its_helper_process_at_once(mixed, tmp_path):
    """Ctrl-C while the second process is busy: the command ended only once the helper had finished
    writing tables nobody would use (~13 s at 1M annotations). It is stopped instead."""
    import subprocess
    import sys

    (tmp_path / "slowhelper.py").write_text(
        "import os, time\n"
        "def work(root, index):\n"
        "    open(os.path.join(os.path.dirname(index), 'helper.pid'), 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n")
    script = tmp_path / "script.py"
    script.write_text(
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "import slowhelper\n"
        "from labelreview.store import replay\n"
        "replay.PARALLEL_BYTES = 0\n"
        "replay._write_imports = slowhelper.work\n"
        "pid_file = Path(sys.argv[2]).parent / 'helper.pid'\n"
        "def interrupted(*a, **k):\n"
        "    while not pid_file.exists():\n"
        "        time.sleep(0.05)\n"
        "    raise KeyboardInterrupt\n"
        "replay.read_events = interrupted\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    replay.rebuild(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "except KeyboardInterrupt:\n"
        "    print(round(time.monotonic() - t, 1), pid_file.read_text())\n")
    proc = subprocess.run([sys.executable, str(script), str(mixed), str(tmp_path / "new.sqlite"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seconds, pid = proc.stdout.split()
    assert float(seconds) < 10, seconds
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(int(pid), 0)
