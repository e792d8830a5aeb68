"""`verify` proves the history is intact: every kind of tampering is reported with its place, and an
untouched store verifies OK."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli
from helpers import build_sample, empty_store, run, templates  # noqa: F401
from labelreview.review import ReviewSession
from labelreview.store import Store, canonical, eventlog


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def build_reviewed(store: Path, images: Path) -> None:
    """4 committed decisions (lines 1-4) then 3 uncommitted ones (lines 5-7)."""
    build_sample(store, images)
    with Store.open(store) as st:
        s = ReviewSession(st, auto_checkpoint=False)
        s.accept(1)
        s.relabel(2, "saucer", reason="wrong-class")
        s.flag(3, "loose-box", comment="edge cut")
        s.reject(4, reason="duplicate")
        st.checkpoint()
        s.accept(5)
        s.accept(6)
        s.undo()
        assert st.uncommitted() == 3


@pytest.fixture
def reviewed(templates, tmp_path) -> Path:
    return templates.copy("reviewed", build_reviewed, tmp_path / "reviewed")[0]


@pytest.fixture
def reviewed_images(reviewed) -> Path:
    return reviewed.parent / "images"


def log_of(root: Path) -> tuple[Path, list[bytes]]:
    files = eventlog.list_files(root)
    assert len(files) == 1  # one writer, one day
    path = root / files[0]
    return path, path.read_bytes().splitlines(keepends=True)


class Result:
    def __init__(self, rc, out, err):
        self.returncode, self.stdout, self.stderr = rc, out, err


def cli_verify(root: Path, *more: str) -> Result:
    return Result(*run("verify", "--store", root, *more))


def assert_reported(root: Path, where: str, *, kinds: set[str] | None = None) -> None:
    """`labelreview verify` exits non-zero and names the place (file:line, or table:row)."""
    r = cli_verify(root, "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    assert any(p["where"] == where for p in doc["problems"]), (where, doc["problems"])
    if kinds:
        assert kinds <= {p["kind"] for p in doc["problems"]}, doc["problems"]


def test_problems_are_listed_one_a_line_then_the_verdict(reviewed):
    path, lines = log_of(reviewed)
    lines[1] = _edit(lines[1], False)
    path.write_bytes(b"".join(lines))
    r = run_cli("verify", "--store", str(reviewed))  # the real console script
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert out[0].startswith(f"{path.relative_to(reviewed).as_posix()}:2: hash: ")
    assert out[-1].startswith("verify FAILED: ")


def test_untouched_store_verifies_ok(reviewed):
    r = run_cli("verify", "--store", str(reviewed))  # the real console script, once
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verify OK: 7 events from 1 writer, 3 not yet committed, 5 image hashes checked" in r.stdout
    doc = json.loads(cli_verify(reviewed, "--json").stdout)
    assert doc["ok"] is True and doc["problems"] == [] and doc["events"] == 7


def test_fresh_and_empty_stores_verify_ok(empty_store):
    assert cli_verify(empty_store).returncode == 0


def _edit(line: bytes, same_length: bool) -> bytes:
    ev = json.loads(line)
    if same_length:  # one digit of the time: the size stays, only the content gives it away
        ts = ev["ts"]
        ev["ts"] = ts[:-2] + str((int(ts[-2]) + 1) % 10) + "Z"
    else:
        ev["author"] = "Mallory <m@evil.example>"
    out = canonical.dumps(ev) + b"\n"
    assert (len(out) == len(line)) == same_length
    return out


@pytest.mark.parametrize("line_no", [2, 4, 6, 7], ids=["committed", "last-committed", "uncommitted", "last"])
@pytest.mark.parametrize("same_length", [True, False], ids=["same-size", "resized"])
def test_edited_line_is_reported(reviewed, line_no, same_length):
    path, lines = log_of(reviewed)
    lines[line_no - 1] = _edit(lines[line_no - 1], same_length)
    path.write_bytes(b"".join(lines))
    assert_reported(reviewed, f"{path.relative_to(reviewed).as_posix()}:{line_no}")


@pytest.mark.parametrize("line_no", [2, 4, 6, 7], ids=["committed", "last-committed", "uncommitted", "last"])
def test_edited_and_resealed_line_is_reported(reviewed, line_no):
    """A forger who recomputes the edited event's own hash is still caught."""
    path, lines = log_of(reviewed)
    ev = json.loads(lines[line_no - 1])
    ev["author"] = "Mallory <m@evil.example>"
    _, lines[line_no - 1] = eventlog.seal(ev)
    path.write_bytes(b"".join(lines))
    assert_reported(reviewed, f"{path.relative_to(reviewed).as_posix()}:{line_no}")


@pytest.mark.parametrize("line_no", [1, 3, 4, 5, 7], ids=["first", "committed", "last-committed", "uncommitted",
                                                          "last"])
def test_deleted_line_is_reported(reviewed, line_no):
    path, lines = log_of(reviewed)
    del lines[line_no - 1]
    path.write_bytes(b"".join(lines))
    assert_reported(reviewed, f"{path.relative_to(reviewed).as_posix()}:{line_no}")


@pytest.mark.parametrize("line_no", [1, 3, 4, 6], ids=["committed", "committed-2", "across-commit", "uncommitted"])
def test_reordered_lines_are_reported(reviewed, line_no):
    path, lines = log_of(reviewed)
    lines[line_no - 1], lines[line_no] = lines[line_no], lines[line_no - 1]
    path.write_bytes(b"".join(lines))
    assert_reported(reviewed, f"{path.relative_to(reviewed).as_posix()}:{line_no}", kinds={"chain"})


def test_garbage_line_is_reported(reviewed):
    path, lines = log_of(reviewed)
    lines.insert(5, b'{"not": "an event"\n')
    path.write_bytes(b"".join(lines))
    assert_reported(reviewed, f"{path.relative_to(reviewed).as_posix()}:6")


def test_event_missing_fields_is_reported_not_a_traceback(reviewed):
    path, lines = log_of(reviewed)
    ev = json.loads(lines[6])
    del ev["ts"], ev["new"]
    _, lines[6] = eventlog.seal(ev)
    path.write_bytes(b"".join(lines))
    assert_reported(reviewed, f"{path.relative_to(reviewed).as_posix()}:7")
    run("ls", "--store", reviewed)  # no traceback from other commands either
    assert run("reindex", "--store", reviewed)[2].startswith(
        f"labelreview: error: {path.relative_to(reviewed).as_posix()}:7: unreadable event line")


def test_deleted_log_file_is_reported(reviewed):
    path, _ = log_of(reviewed)
    rel = path.relative_to(reviewed).as_posix()
    path.unlink()
    r = cli_verify(reviewed)
    assert r.returncode == 1 and rel in r.stdout


def test_log_of_a_forged_writer_is_reported(reviewed):
    """Lines copied into another writer's folder do not pass as that writer's history."""
    path, lines = log_of(reviewed)
    forged = reviewed / "events" / "mallory" / "host" / path.name
    forged.parent.mkdir(parents=True)
    forged.write_bytes(lines[0])
    assert_reported(reviewed, f"{forged.relative_to(reviewed).as_posix()}:1")


@pytest.mark.parametrize("sql,where", [
    ("UPDATE annotations SET category='dog' WHERE id=3", "index:annotations:3"),
    ("UPDATE annotations SET status='accepted', last_event=NULL WHERE id=9", "index:annotations:9"),
    ("UPDATE annotations SET bbox='[0,0,1,1]' WHERE id=10", "index:annotations:10"),
    ("DELETE FROM annotations WHERE id=11", "index:annotations:11"),
    ("UPDATE images SET file_name='other.jpg' WHERE id=2", "index:images:2"),
    # the writer's head: the next decision would have continued the chain from it, breaking it
    ("UPDATE writers SET seq=1", "index:writers:{writer}"),
    # the commit log and blame print
    ("UPDATE events SET git_commit='deadbeefdeadbeefdeadbeefdeadbeefdeadbeef' WHERE seq=1", "{log}:1"),
])
def test_index_edited_behind_the_tools_back(reviewed, sql, where):
    path, _ = log_of(reviewed)
    where = where.format(writer=eventlog.writer_of(path.relative_to(reviewed).as_posix()),
                         log=path.relative_to(reviewed).as_posix())
    conn = sqlite3.connect(reviewed / ".labelreview" / "index.sqlite")
    conn.execute(sql)
    conn.commit()
    conn.close()
    assert_reported(reviewed, where, kinds={"index"})


def test_forged_author_in_the_index_is_reported(reviewed):
    """What `log` and `blame` show comes from the index: forging it there must not pass."""
    conn = sqlite3.connect(reviewed / ".labelreview" / "index.sqlite")
    h = conn.execute("SELECT hash FROM events WHERE annotation=2").fetchone()[0]
    conn.execute("UPDATE events SET author='Mallory', ts='2020-01-01T00:00:00.000000Z' WHERE hash=?", (h,))
    conn.execute("UPDATE annotations SET updated_by='Mallory' WHERE id=2")
    conn.commit()
    conn.close()
    path, _ = log_of(reviewed)
    assert_reported(reviewed, f"{path.relative_to(reviewed).as_posix()}:2", kinds={"index"})
    assert "Mallory" in run("blame", "2", "--store", reviewed)[1]  # the forgery is visible... and verify above said so


def test_changed_image_is_reported(reviewed, reviewed_images):
    with open(reviewed_images / "coffee.jpg", "r+b") as f:
        f.seek(2000)
        b = f.read(1)
        f.seek(2000)
        f.write(bytes([b[0] ^ 0xFF]))
    assert_reported(reviewed, "coffee.jpg", kinds={"image"})
    assert cli_verify(reviewed, "--no-images").returncode == 0


def test_missing_image_is_reported(reviewed, reviewed_images):
    (reviewed_images / "coins.png").unlink()
    assert_reported(reviewed, "coins.png", kinds={"image"})


def test_edited_import_is_reported(reviewed):
    """Imports are immutable: a proposal edited in its committed file is caught, even after a reindex."""
    imp = next(p for p in (reviewed / "imports").iterdir() if p.is_dir())
    shard = imp / "annotations-0000.jsonl"
    text = shard.read_text().replace('"category":"coin"', '"category":"cat"', 1)
    shard.write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if '"category":"cat"' in t)
    assert run("reindex", "--store", reviewed)[0] == 0
    assert_reported(reviewed, f"{shard.relative_to(reviewed).as_posix()}:{line}", kinds={"import"})


def test_torn_last_line_is_dropped_by_recovery_then_verifies(reviewed):
    """A line cut short by a crash was never acknowledged: recovery drops it and says so."""
    path, lines = log_of(reviewed)
    path.write_bytes(b"".join(lines) + lines[-1][:40])
    r = cli_verify(reviewed)
    assert r.returncode == 0, r.stdout
    assert path.read_bytes() == b"".join(lines)
    note = json.loads((reviewed / ".labelreview" / "recovery.log").read_text().splitlines()[-1])
    assert note["file"] == path.relative_to(reviewed).as_posix() and note["dropped_bytes"] == 40


def test_verify_does_not_change_a_tampered_store(reviewed):
    path, lines = log_of(reviewed)
    lines[1] = _edit(lines[1], False)
    path.write_bytes(b"".join(lines))
    before = path.read_bytes()
    assert cli_verify(reviewed).returncode == 1
    assert cli_verify(reviewed).returncode == 1
    assert path.read_bytes() == before
    assert git(reviewed, "status", "--porcelain") == f" M {path.relative_to(reviewed).as_posix()}\n"


@pytest.mark.parametrize("tamper", ["edit", "delete"])
def test_a_tampered_import_is_not_committed_by_the_next_decision(reviewed, tamper):
    """The next checkpoint (here an accept and `commit`) stages new imports only: an edit or deletion
    in a committed one stays in the working tree, where verify keeps reporting it."""
    imp = next(p for p in (reviewed / "imports").iterdir() if p.is_dir())
    changed = imp / ("annotations-0000.jsonl" if tamper == "edit" else "warnings.jsonl")
    rel = changed.relative_to(reviewed).as_posix()
    if tamper == "edit":
        changed.write_text(changed.read_text().replace('"category":"coin"', '"category":"cat"', 1))
    else:
        changed.unlink()
    assert run("accept", "7", "--store", reviewed)[0] == 0
    assert run("commit", "--store", reviewed)[0] == 0
    assert rel in git(reviewed, "status", "--porcelain")  # still a working-tree change, not committed
    assert cli_verify(reviewed).returncode == 1
    assert any(p["where"].startswith(rel) for p in json.loads(cli_verify(reviewed, "--json").stdout)["problems"])


def test_an_import_changed_by_a_later_commit_is_reported(reviewed):
    """Committing the edit with git itself does not launder it: history shows the change."""
    imp = next(p for p in (reviewed / "imports").iterdir() if p.is_dir())
    shard = imp / "annotations-0000.jsonl"
    shard.write_text(shard.read_text().replace('"category":"coin"', '"category":"cat"', 1))
    git(reviewed, "-c", "user.name=Someone", "-c", "user.email=someone@example.org", "commit", "-q", "-am", "tidy up")
    assert run("reindex", "--store", reviewed)[0] == 0
    doc = json.loads(cli_verify(reviewed, "--json").stdout)
    assert doc["ok"] is False
    assert any(p["where"] == shard.relative_to(reviewed).as_posix() and "by commit" in p["message"]
               for p in doc["problems"]), doc["problems"]


def _break_shard(root: Path, how: str) -> tuple[str, int]:
    """Damage line 2 of the first import's first shard: (its path, 2)."""
    imp = next(p for p in sorted((root / "imports").iterdir()) if p.is_dir())
    shard = imp / "annotations-0000.jsonl"
    lines = shard.read_bytes().splitlines(keepends=True)
    if how == "garbage":
        lines[1] = b'{"garbage\n'
    elif how == "repeated id":
        lines[1] = lines[0]
    elif how == "no category":
        row = json.loads(lines[1])
        del row["category"]
        lines[1] = canonical.dumps(row) + b"\n"
    elif "=" in how:  # a field set to a value of a type the importer never writes
        field, value = how.split("=", 1)
        row = json.loads(lines[1])
        row[field] = json.loads(value)
        lines[1] = canonical.dumps(row) + b"\n"
    shard.write_bytes(b"".join(lines))
    return shard.relative_to(root).as_posix(), 2


@pytest.mark.parametrize("how", ["garbage", "repeated id", "no category",
                                 # each stopped the rebuild (SQLite cannot bind a list) or an export
                                 'score=[1]', 'area={"a": 1}', 'iscrowd=[1]', 'bbox=[1]', 'bbox="abcd"',
                                 'segmentation=[[1, "a"]]', 'segmentation={"counts": 1}', 'keypoints=5',
                                 'extra=[1]', 'scores="x"', 'source_id={"a": 1}', 'kind="circle"'])
def test_a_damaged_import_line_is_reported_not_a_traceback(reviewed, how):
    """An import shard edited into something the replay cannot take: verify names the line (it
    crashed with a JSONDecodeError or IntegrityError traceback), and reindex stops with the place
    and keeps the index it had. A field of a type the importer never writes is such a line too."""
    rel, line = _break_shard(reviewed, how)
    r = cli_verify(reviewed, "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    problems = json.loads(r.stdout)["problems"]
    assert any(p["where"] == f"{rel}:{line}" and p["kind"] == "import" and p["message"] != "was edited since it "
               "was committed (imports are immutable)" for p in problems), problems
    rc, out, err = run("reindex", "--store", reviewed)
    assert rc == 1 and f"{rel}:{line}: " in err and "import folders never change" in err, err
    assert run("status", "--store", reviewed)[0] == 0  # the old index is still there


@pytest.mark.parametrize("damage", ["event line", "import line"])
def test_verify_runs_on_a_store_whose_damaged_files_stop_the_index_build(reviewed, damage):
    """No index (a fresh clone, or it was deleted) and files that cannot all be read: every command
    stops and says to run verify; verify itself then has to run (it said the same and stopped),
    reporting each damaged place, and leaves no index of its own behind."""
    if damage == "event line":
        path, lines = log_of(reviewed)
        lines[1] = b'{"garbage\n'
        path.write_bytes(b"".join(lines))
        rel, line = path.relative_to(reviewed).as_posix(), 2
    else:
        rel, line = _break_shard(reviewed, "garbage")
    index_dir = reviewed / ".labelreview"
    (index_dir / "index.sqlite").unlink()
    rc, _, err = run("status", "--store", reviewed)
    assert rc == 1 and f"{rel}:{line}: " in err and "labelreview verify" in err, err
    r = cli_verify(reviewed, "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "scratch index" in r.stderr
    assert any(p["where"] == f"{rel}:{line}" for p in json.loads(r.stdout)["problems"])
    assert not [p.name for p in index_dir.iterdir() if p.suffix.startswith(".sqlite") or "sqlite" in p.name]


def test_an_unreadable_manifest_is_reported_and_the_index_rows_it_leaves_are_counted(reviewed):
    """A manifest edited into bad JSON: verify names it, and the whole import then differing from the
    index is not a screenful per annotation (a line each for the first 20, then a count)."""
    imp = next(p for p in (reviewed / "imports").iterdir() if p.is_dir())
    (imp / "manifest.json").write_text('{"broken": \n')
    rel = (imp / "manifest.json").relative_to(reviewed).as_posix()
    r = cli_verify(reviewed)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    assert f"{rel}: import: unreadable manifest (unexpected end of data: line 2 column 1 (char 12))" in lines
    annotation_lines = [t for t in lines if t.startswith("index:annotations:")]
    assert len(annotation_lines) == 20
    with Store.open(reviewed) as st:
        n = st.conn.execute("SELECT count(*) FROM annotations").fetchone()[0]
    assert f"... and {n - 20} more 'index:' problems with annotations (`verify --json` lists all)" in lines
    assert len([p for p in json.loads(cli_verify(reviewed, "--json").stdout)["problems"]
                if p["where"].startswith("index:annotations:")]) == n


@pytest.mark.parametrize("damage", ["empty branch file", "garbage HEAD"])
def test_a_damaged_head_is_reported_and_no_new_history_is_started(reviewed, damage):
    """The branch file emptied (a crash on a disk that lost its last write) or HEAD overwritten: git
    then sees no commits. verify crashed in GitPython (AssertionError) or said "not a git
    repository"; a decision's checkpoint crashed too. Now verify names the file and how to put it
    back, a decision is kept in the log with the same message, and no commit starts a new history
    cut off from the old one. Put back as said, the store verifies again."""
    branch = git(reviewed, "symbolic-ref", "--short", "HEAD").strip()
    ref_file = reviewed / ".git" / "refs" / "heads" / branch
    last = ref_file.read_text().strip()
    if damage == "empty branch file":
        ref_file.write_text("")
        where = f".git/refs/heads/{branch}"
    else:
        (reviewed / ".git" / "HEAD").write_text("junk\n")
        where = ".git/HEAD"
    r = cli_verify(reviewed, "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    problems = json.loads(r.stdout)["problems"]
    assert [p["where"] for p in problems] == [where], problems  # (no index problem made up from it)
    assert "git cannot find the store's history" in problems[0]["message"]

    rc, out, err = run("accept", "7", "--store", reviewed)
    assert rc == 1 and "accept 7:" in out and "Traceback" not in err, err
    assert "git cannot find the store's history" in err and "safe in the event log" in err, err

    if damage == "empty branch file":
        ref_file.unlink()
        git(reviewed, "update-ref", f"refs/heads/{branch}", last)
    else:
        (reviewed / ".git" / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    assert git(reviewed, "rev-parse", "HEAD").strip() == last  # nothing was committed meanwhile
    assert run("commit", "--store", reviewed)[0] == 0
    assert cli_verify(reviewed).returncode == 0


@pytest.mark.parametrize("content", [b"", b"null\n", b'{"info": \n'])
def test_export_is_not_stopped_by_a_damaged_manifest(reviewed, tmp_path, content):
    """(It crashed reading the manifest for the COCO file's "info" block; the labels come from the
    index, and verify is what reports the damage.)"""
    imp = next(p for p in (reviewed / "imports").iterdir() if p.is_dir())
    (imp / "manifest.json").write_bytes(content)
    rc, out, err = run("export", "coco", str(tmp_path / "out.json"), "--store", reviewed)
    assert rc == 0 and "Traceback" not in err, err
    assert json.loads((tmp_path / "out.json").read_text())["annotations"]
    assert cli_verify(reviewed).returncode == 1


def test_labels_on_images_no_import_holds_are_named_not_exported_into_a_crash(reviewed, tmp_path):
    """An import's images.jsonl emptied: a rebuild took its labels anyway (no foreign keys), and the
    export then died on them (KeyError). Now the rebuild stops at the first such label with its
    place, and verify lists them (20, then a count)."""
    imp = next(p for p in (reviewed / "imports").iterdir() if p.is_dir())
    (imp / "images.jsonl").write_bytes(b"")
    (reviewed / ".labelreview" / "index.sqlite").unlink()
    shard = (imp / "annotations-0000.jsonl").relative_to(reviewed).as_posix()
    rc, _, err = run("export", "coco", str(tmp_path / "out.json"), "--store", reviewed)
    assert rc == 1 and "Traceback" not in err, err
    assert f"{shard}:1: annotation 1 is on image 1, which no import holds" in err
    r = cli_verify(reviewed)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    n = len((imp / "annotations-0000.jsonl").read_bytes().splitlines())
    assert len([t for t in r.stdout.splitlines() if "is on image" in t and "which no import holds" in t]) == 20
    # and the decisions on those labels: events on annotations no import holds now
    assert "decides on annotation 1, which no import holds" in r.stdout
    assert f"... and {n - 20} more 'import:' problems in {shard} (`verify --json` lists all)" in r.stdout


def test_a_shard_repeated_whole_names_each_ids_first_line(reviewed):
    """Every line of a shard appended again: each repeat names the line that first held its id
    (found in one pass over the folders, however many ids repeat)."""
    imp = next(p for p in (reviewed / "imports").iterdir() if p.is_dir())
    shard = imp / "annotations-0000.jsonl"
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(b"".join(lines + lines))
    rel = shard.relative_to(reviewed).as_posix()
    problems = json.loads(cli_verify(reviewed, "--json").stdout)["problems"]
    repeats = {p["where"]: p["message"] for p in problems if "is used twice" in p["message"]}
    n = len(lines)
    assert len(repeats) == n
    for k, line in enumerate(lines, 1):
        a = json.loads(line)["id"]
        assert repeats[f"{rel}:{n + k}"] == f"annotation id {a} is used twice (first at {rel}:{k})"


def test_a_cut_last_line_is_reported_not_dropped_as_a_crash_tail(reviewed):
    """The end of the last (acknowledged, indexed) line cut off and other bytes written after it: not
    a crash's tail, which only follows what the index knows. Verify says where and leaves the file."""
    path, lines = log_of(reviewed)
    rel = path.relative_to(reviewed).as_posix()
    tampered = b"".join(lines)[:-30] + b"x" * 60
    path.write_bytes(tampered)
    assert_reported(reviewed, f"{rel}:7")  # the event the index holds, gone from the log
    assert_reported(reviewed, f"{rel}:end", kinds={"json"})
    assert path.read_bytes() == tampered  # (it cut the line down to its first 40% and kept 400 bytes)
    rc, _, err = run("status", "--store", reviewed)
    assert rc == 1 and rel in err and "edited outside labelreview" in err


def test_the_index_record_of_how_far_it_read_a_log_is_verified(reviewed):
    """event_files (where the next command reads each log on from) and each event's end offset
    (what `diff` tells revisions apart by) are the index's too: edited, verify names them. Before,
    verify said OK while every other command stopped on 'line 8 unreadable' in a 7-line log."""
    path, _ = log_of(reviewed)
    rel = path.relative_to(reviewed).as_posix()
    conn = sqlite3.connect(reviewed / ".labelreview" / "index.sqlite")
    conn.execute("UPDATE event_files SET size=100")
    conn.execute("UPDATE events SET end_offset=5 WHERE seq=3")
    conn.commit()
    conn.close()
    assert_reported(reviewed, f"index:event_files:{rel}", kinds={"index"})
    assert_reported(reviewed, f"{rel}:3", kinds={"index"})
    rc, _, err = run("status", "--store", reviewed)
    assert rc == 1 and f"{rel}: the index knows its first 7 line(s) (100 bytes)" in err
    # The way out verify gives, `reindex`, rebuilds it (it stopped on the same catch-up before).
    rc, _, err = run("reindex", "--store", reviewed)
    assert rc == 0, err
    assert json.loads(cli_verify(reviewed, "--json").stdout)["ok"]


def test_a_release_still_holds_what_a_rewritten_history_dropped(reviewed):
    """A release's commit keeps its logs: dropping its commit from the branch (`git reset --hard`),
    then rebuilding the index, leaves no trace in HEAD's history, but the release still holds the
    three decisions it had: verify names where the log no longer has them."""
    assert run("release", "v1", "--store", reviewed)[0] == 0
    path, lines = log_of(reviewed)
    rel = path.relative_to(reviewed).as_posix()
    git(reviewed, "reset", "-q", "--hard", "HEAD~1")
    assert path.read_bytes() == b"".join(lines[:4])
    (reviewed / ".labelreview" / "index.sqlite").unlink()
    assert run("status", "--store", reviewed)[0] == 0  # (the index rebuilt from what is left)
    r = cli_verify(reviewed, "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1, doc
    p = next(p for p in doc["problems"] if p["where"] == f"{rel}:5")
    assert p["kind"] == "git" and "release v1" in p["message"]


def test_a_release_still_holds_an_import_a_rewritten_history_edited(reviewed):
    """An import line edited in every commit (`git filter-branch`) and the index rebuilt: HEAD's
    history agrees with the edit, the release does not."""
    imp = next(p for p in (reviewed / "imports").iterdir() if p.is_dir())
    shard = imp / "annotations-0000.jsonl"
    rel = shard.relative_to(reviewed).as_posix()
    assert run("release", "v1", "--store", reviewed)[0] == 0
    lines = shard.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"category":"', '"category":"forged-', 1)
    forged = reviewed.parent / "forged-shard"
    forged.write_text("".join(lines))
    subprocess.run(["git", "filter-branch", "-f", "--tree-filter", f"[ -f {rel} ] && cp {forged} {rel} || true",
                    "--", "HEAD"], cwd=reviewed, capture_output=True, check=True,
                   env={**os.environ, "FILTER_BRANCH_SQUELCH_WARNING": "1"})
    assert shard.read_text() == "".join(lines) and not git(reviewed, "status", "--porcelain")
    (reviewed / ".labelreview" / "index.sqlite").unlink()
    assert run("status", "--store", reviewed)[0] == 0
    assert_reported(reviewed, f"{rel}:3", kinds={"import"})


def test_a_copied_import_folder_is_reported_not_a_traceback(reviewed):
    imp = next(p for p in (reviewed / "imports").iterdir() if p.is_dir())
    copy = imp.with_name(imp.name + "-copy")
    import shutil

    shutil.copytree(imp, copy)
    assert_reported(reviewed, f"{copy.relative_to(reviewed).as_posix()}/manifest.json:1", kinds={"import"})


def test_a_forged_event_on_an_annotation_no_import_holds_is_reported(reviewed):
    """A line a forger chained in properly (its seq, its prev, its own hash) that decides on an
    annotation that does not exist: the tool refuses such a decision, so it was written by hand."""
    path, lines = log_of(reviewed)
    last = json.loads(lines[-1])
    forged = {**last, "annotation": 987654, "seq": last["seq"] + 1, "prev": last["hash"], "base": None,
              "action": "accept", "undoes": None}
    forged.pop("hash")
    first, line = eventlog.seal(forged)
    _, second = eventlog.seal({**forged, "annotation": 987655, "seq": forged["seq"] + 1, "prev": first["hash"]})
    path.write_bytes(b"".join(lines) + line + second)  # (one problem for the two: the log's first)
    rel = path.relative_to(reviewed).as_posix()
    r = cli_verify(reviewed, "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    found = [p for p in json.loads(r.stdout)["problems"] if p["kind"] == "event"]
    assert [p["where"] for p in found] == [f"{rel}:{len(lines) + 1}"], found
    assert "decides on annotation 987654, which no import holds" in found[0]["message"]
    assert "1 more such event in this log" in found[0]["message"]


@pytest.mark.parametrize("field,value", [
    ("base", ["a"]), ("prev", {"a": 1}), ("undoes", 1 << 63), ("reason", ["wrong-class"]), ("comment", {}),
    ("login", [1]), ("host", {"h": 1}), ("image", [1]), ("image", 1 << 63), ("annotation", (1 << 64) - 1),
    ("old", {"a": 1}),
], ids=lambda v: str(v)[:12])
def test_a_forged_event_with_a_field_of_another_type_is_named_not_a_traceback(reviewed, field, value):
    """The tool never writes these types; a line that has one (written by hand, its hash made
    again) stopped the start-up, verify and the rebuild with a traceback (SQLite cannot bind a list;
    the fold hashed a list)."""
    path, lines = log_of(reviewed)
    last = json.loads(lines[-1])
    forged = {**last, "seq": last["seq"] + 1, "prev": last["hash"], "base": None, field: value}
    forged.pop("hash")
    _, line = eventlog.seal(forged)
    path.write_bytes(b"".join(lines) + line)
    where = f"{path.relative_to(reviewed).as_posix()}:{len(lines) + 1}"
    assert_reported(reviewed, where, kinds={"json"})
    for command in (["status"], ["reindex"], ["log"]):
        rc, _, err = run(*command, "--store", reviewed)
        assert rc == 1 and "Traceback" not in err and f"{where}: unreadable event line" in err, (command, err)


@pytest.mark.parametrize("field,value", [("width", [1]), ("height", -1), ("sha256", 5), ("extra", "x"),
                                         ("source_id", {"a": 1})])
def test_an_image_line_of_another_type_is_named_not_a_traceback(reviewed, field, value):
    imp = next(p for p in sorted((reviewed / "imports").iterdir()) if p.is_dir())
    path = imp / "images.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    row = json.loads(lines[0])
    row[field] = value
    lines[0] = canonical.dumps(row) + b"\n"
    path.write_bytes(b"".join(lines))
    where = f"{path.relative_to(reviewed).as_posix()}:1"
    assert_reported(reviewed, where, kinds={"import"})
    rc, _, err = run("reindex", "--store", reviewed)
    assert rc == 1 and "Traceback" not in err and f"{where}: image 1: field {field!r}" in err, err


def test_undo_of_a_forged_event_whose_time_is_not_a_time_goes_on_and_verify_names_the_line(reviewed):
    path, lines = log_of(reviewed)
    last = json.loads(lines[-1])
    forged = {**last, "seq": last["seq"] + 1, "prev": last["hash"], "base": None, "annotation": 3,
              "ts": "yesterday", "undoes": None, "action": "reject",
              "new": {"category": "cup", "status": "rejected"}}
    forged.pop("hash")
    _, line = eventlog.seal(forged)
    path.write_bytes(b"".join(lines) + line)
    rc, out, err = run("undo", "--author", last["author"], "--store", reviewed)
    assert "Traceback" not in err, err  # (it died parsing the time to order the undo after it)
    assert_reported(reviewed, f"{path.relative_to(reviewed).as_posix()}:{len(lines) + 1}", kinds={"chain"})


def test_an_index_order_that_would_make_undo_take_back_another_decision_is_reported(reviewed):
    """`undo` takes back this writer's latest decision by the index's own order of arrival (`ord`,
    which no log holds). Edited, the next undo took back the first decision instead, and verify
    said OK. One writer's events always arrive in the order written: verify checks that."""
    path, _ = log_of(reviewed)
    rel = path.relative_to(reviewed).as_posix()
    conn = sqlite3.connect(reviewed / ".labelreview" / "index.sqlite")
    conn.execute("UPDATE events SET ord=(SELECT max(ord) + 1 FROM events) WHERE seq=1")  # accept 1: now "latest"
    conn.commit()
    conn.close()
    r = cli_verify(reviewed, "--json")
    problems = json.loads(r.stdout)["problems"]
    assert r.returncode == 1 and [(p["kind"], p["where"]) for p in problems] == [("index", f"{rel}:1")], problems
    assert "out of the order it wrote them (seq 1 after seq 7" in problems[0]["message"]
    assert "labelreview reindex" in problems[0]["message"]
    # The way out it gives: a rebuild puts the events in the order written again.
    rc, _, err = run("reindex", "--store", reviewed)
    assert rc == 0, err
    assert json.loads(cli_verify(reviewed, "--json").stdout)["ok"]
    rc, out, err = run("undo", "--store", reviewed)  # the latest decision (accept 5), not accept 1
    assert rc == 0 and "5" in out, out + err
    with Store.open(reviewed) as st:
        assert st.annotation(1).status == "accepted" and st.annotation(5).status == "pending"
