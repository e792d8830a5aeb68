"""A large COCO file's annotations are read in a forked child while the parent fills the index
(store/forked.py). What the store ends up with must be what one process writes, byte for byte;
an error in the child is the error one process gives; a child that dies, or a parent that stops,
leaves the store as it was and no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import run
from labelreview.model import InputError, LabelreviewError
from labelreview.store import Store, forked

# Imports in a process of their own (no thread of the test runner's, so the child is forked), with
# small pieces and chunks so that both cross many boundaries; the script says whether it forked.
IMPORT = textwrap.dedent("""
    import os, sys
    from labelreview.formats import coco
    from labelreview.store import forked, store as sm
    coco.PIECE = 4096
    sm._ROWS_PER_BATCH = 300
    real = forked.in_child
    def in_child(*a, **k):
        print("forked", file=sys.stderr, flush=True)
        return real(*a, **k)
    forked.in_child = in_child
    HOOK
    from labelreview.cli import main
    sys.exit(main(["import", "coco", sys.argv[2], "--no-image-check", "--source", "m", "--store", sys.argv[1]]))
""")


def _import(store: Path, src: Path, worker: str, hook: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "LABELREVIEW_IMPORT_WORKER": worker}
    code = IMPORT.replace("HOOK", textwrap.dedent(hook).strip() or "pass")
    return subprocess.run([sys.executable, "-c", code, str(store), str(src)], capture_output=True, text=True,
                          env=env, timeout=120)


def _coco_with_oddities(path: Path, n: int = 3000) -> Path:
    """Every kind of annotation the reader repairs or skips, spread over the file."""
    images = [{"id": i, "file_name": f"im{i}.jpg", "width": 640, "height": 480} for i in range(1, 201)]
    anns = []
    for k in range(1, n + 1):
        x, y = (k * 7) % 500, (k * 11) % 400
        a = {"id": k, "image_id": 1 + k % 200, "category_id": 1 + k % 3, "bbox": [x, y, 50.5, 40],
             "area": 2020.0, "iscrowd": 0, "segmentation": [[x, y, x + 50.5, y, x + 50.5, y + 40, x, y + 40]]}
        if k % 500 == 0:
            a["category_id"] = 90 + k // 1000  # undefined: a class is added (in order of first use)
        if k % 377 == 0:
            a["iscrowd"] = "0"  # repaired
        if k % 613 == 0:
            a["image_id"] = 99999  # skipped
        if k % 911 == 0:
            a["id"] = 5  # a duplicate id, far from its first use
        if k % 701 == 0:
            a["segmentation"] = {"size": [480, 640], "counts": [0, 100, 307100]}  # an RLE: the slow path
            a["iscrowd"] = 1
        if k % 1201 == 0:
            a["extra_key"] = {"kept": [k, "as it was"]}
        if k == 1500:
            deep: object = 1
            for _ in range(300):
                deep = [deep]
            a["deep"] = deep  # more than the store can write: dropped, and said
        anns.append(a)
    cats = [{"id": i, "name": n} for i, n in ((1, "cat"), (2, "dog"), (3, "bird"))]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def _store(tmp_path: Path, name: str) -> Path:
    return Store.init(tmp_path / name, name="t")


def _import_folder(store: Path) -> Path:
    (folder,) = (p for p in (store / "imports").iterdir() if not p.name.startswith("."))
    return folder


def _nothing_imported(store: Path) -> None:
    assert not [p for p in (store / "imports").iterdir() if not p.name.startswith(".")]
    assert not list((store / ".labelreview").glob("import-*"))  # no half-written folder left
    with Store.open(store) as s:
        assert s.counts()["total"] == 0
    assert run("verify", "--store", store)[0] == 0


def test_a_forked_import_stores_byte_for_byte_what_one_process_stores(tmp_path):
    src = _coco_with_oddities(tmp_path / "p.json")
    one, two = _store(tmp_path, "one"), _store(tmp_path, "two")
    serial, parallel = _import(one, src, "0"), _import(two, src, "1")
    assert serial.returncode == 0 and parallel.returncode == 0, serial.stderr + parallel.stderr
    assert "forked" in parallel.stderr and "forked" not in serial.stderr
    assert serial.stdout.replace(_import_folder(one).name, "ID") == parallel.stdout.replace(
        _import_folder(two).name, "ID")  # the same counts and warnings, in the same order
    a, b = _import_folder(one), _import_folder(two)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len([n for n in names if n.startswith("annotations-")]) >= 1
    for name in names:
        if name != "manifest.json":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (json.loads((f / "manifest.json").read_text()) for f in (a, b))
    for m in (ma, mb):
        del m["id"], m["ts"]
    assert ma == mb
    # what the child's reader found on the way reached the parent: warnings, new classes
    assert ma["counts"]["annotations"] == 3000 - 4 and ma["warnings_by_problem"]["image_id 99999 is not in images"] == 4
    assert [c["name"] for c in ma["categories"]][3:] == ["undefined-90", "undefined-91", "undefined-92", "undefined-93"]
    assert any(k.startswith("duplicate annotation id 5") for k in ma["warnings_by_problem"])
    assert ma["warnings_by_problem"]["key 'deep' nests more than 200 levels deep; dropped"] == 1
    rows = []
    for store in (one, two):
        with Store.open(store) as s:
            rows.append([tuple(r)[:2] + tuple(r)[3:] for r in s.conn.execute(
                "SELECT * FROM annotations ORDER BY id")])  # (the import's id, column 3, differs)
        assert run("verify", "--store", store)[0] == 0
    assert rows[0] == rows[1] and len(rows[0]) == 2996


def test_an_error_in_the_forked_reader_is_the_error_one_process_gives(tmp_path):
    src = _coco_with_oddities(tmp_path / "p.json")
    doc = json.loads(src.read_text())
    doc["annotations"][2222] = 7  # not an object: the import stops
    src.write_text(json.dumps(doc))
    one, two = _store(tmp_path, "one"), _store(tmp_path, "two")
    serial, parallel = _import(one, src, "0"), _import(two, src, "1")
    assert "forked" in parallel.stderr
    assert serial.returncode == parallel.returncode == 1
    assert "annotations[2222]: an annotation must be a JSON object" in parallel.stderr
    assert serial.stderr == parallel.stderr.replace("forked\n", "")
    assert "Traceback" not in parallel.stderr
    _nothing_imported(two)


def test_a_forked_reader_that_dies_is_said_and_nothing_is_imported(tmp_path):
    src = _coco_with_oddities(tmp_path / "p.json")
    store = _store(tmp_path, "s")
    hook = """
        parent = os.getpid()
        real_serialised = sm._serialised
        def _serialised(*a):
            for n, chunk in enumerate(real_serialised(*a)):
                if n == 3 and os.getpid() != parent:
                    os.kill(os.getpid(), 9)
                yield chunk
        sm._serialised = _serialised
    """
    got = _import(store, src, "1", hook)
    assert got.returncode == 1 and "Traceback" not in got.stderr, got.stderr
    assert "p.json: reading the annotations: the process doing it ended unexpectedly (killed by SIGKILL)" in got.stderr
    _nothing_imported(store)


def test_the_forked_reader_is_stopped_when_the_parent_cannot_go_on(tmp_path):
    # A full disk while the parent writes the index: its error, and the child does not read on.
    src = _coco_with_oddities(tmp_path / "p.json")
    store = _store(tmp_path, "s")
    hook = """
        import errno
        real_encoded = sm._encoded
        calls = []
        def _encoded(*a):
            calls.append(1)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_encoded(*a)
        sm._encoded = _encoded
        real_close = forked.ChildStream.close
        def close(self):
            pid = self.pid
            real_close(self)
            try:
                os.kill(pid, 0)
                print("child still there", file=sys.stderr)
            except ProcessLookupError:
                print("child gone", file=sys.stderr)
        forked.ChildStream.close = close
    """
    got = _import(store, src, "1", hook)
    assert got.returncode == 1, got.stderr
    assert "cannot write the import (No space left on device); nothing was imported" in got.stderr
    assert "child gone" in got.stderr
    _nothing_imported(store)


SLOW_IMPORT_HOOK = """
    import time
    real_serialised = sm._serialised
    def _serialised(*a):
        print("child", os.getpid(), file=sys.stderr, flush=True)
        for chunk in real_serialised(*a):
            time.sleep(0.2)
            yield chunk
    sm._serialised = _serialised
"""


@pytest.mark.slow
def test_kill_9_of_a_forked_import_leaves_no_reader_running_and_the_store_as_it_was(tmp_path):
    src = _coco_with_oddities(tmp_path / "p.json")
    store = _store(tmp_path, "s")
    code = IMPORT.replace("HOOK", textwrap.dedent(SLOW_IMPORT_HOOK).strip())
    proc = subprocess.Popen([sys.executable, "-c", code, str(store), str(src)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LABELREVIEW_IMPORT_WORKER": "1"})
    try:
        assert proc.stderr.readline() == "forked\n"
        child = int(proc.stderr.readline().split()[1])
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for _ in range(100):  # the child's next write finds the pipe broken, and it ends
            if not Path(f"/proc/{child}").exists() or "Z" in _state(child):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the forked reader {child} still runs after its parent was killed")
    finally:
        proc.kill()
        proc.stderr.close()
    rc, out, err = run("status", "--json", "--store", store)  # recovery: the half-written import goes
    assert rc == 0 and json.loads(out)["total"] == 0, err
    assert run("import", "coco", src, "--no-image-check", "--store", store)[0] == 0  # and it can be run again
    assert not list((store / ".labelreview").glob("import-*"))
    assert run("verify", "--store", store)[0] == 0


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_an_import_of_a_small_file_or_with_threads_running_stays_in_one_process(tmp_path, monkeypatch):
    from labelreview.formats import coco
    from labelreview.store import store as store_mod

    monkeypatch.delenv("LABELREVIEW_IMPORT_WORKER", raising=False)
    src = _coco_with_oddities(tmp_path / "p.json", n=50)
    batch = coco.read(src, lazy=True)
    assert not store_mod._encode_elsewhere(batch)  # far under ENCODE_ELSEWHERE_BYTES
    monkeypatch.setattr(store_mod, "ENCODE_ELSEWHERE_BYTES", 1)
    assert store_mod._encode_elsewhere(batch) == forked.can_fork()
    monkeypatch.setattr(forked.threading, "active_count", lambda: 2)  # a thread would hold its locks forever
    assert not store_mod._encode_elsewhere(batch)
    assert not store_mod._encode_elsewhere(coco.read(src))  # proposals already read: nothing to gain


# ---------------------------------------------------------------- the child itself

def _stream(produce, finish=lambda: None):
    got = []
    return forked.in_child(produce, finish, got.append, "the test's work"), got


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_chunks_and_the_childs_final_state_reach_the_parent():
    state = {"n": 0}

    def produce():
        for i in range(5):
            state["n"] += 1
            yield [i] * 100_000  # more than a pipe holds at once

    stream, got = _stream(produce, lambda: dict(state))
    try:
        assert [c[0] for c in stream] == [0, 1, 2, 3, 4]
    finally:
        stream.close()
    assert got == [{"n": 5}] and state["n"] == 0  # the parent's copy never ran


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
@pytest.mark.parametrize("error, expected", [
    (InputError("f.json", "annotations[3] (id 9)", "bbox is not 4 numbers"), "f.json: annotations[3] (id 9): bbox is not 4 numbers"),
    (ValueError("a bug"), "a bug"),
])
def test_what_the_child_raises_is_raised_in_the_parent(error, expected):
    def produce():
        yield 1
        raise error

    stream, _ = _stream(produce)
    try:
        with pytest.raises(type(error)) as info:
            list(stream)
    finally:
        stream.close()
    assert str(info.value) == expected
    if isinstance(error, InputError):
        assert (info.value.file, info.value.where, info.value.problem) == (error.file, error.where, error.problem)
    else:  # a bug keeps the child's traceback
        assert "in the forked child" in info.value.__notes__[0] and "raise error" in info.value.__notes__[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
@pytest.mark.parametrize("base, expected", [(Exception, r"^Odd: 1 and 2$"), (LabelreviewError, r"^1 and 2$")])
def test_an_error_that_cannot_be_pickled_arrives_as_its_text(base, expected):
    class Odd(base):
        def __init__(self, a, b):
            super().__init__(f"{a} and {b}")

    def produce():
        raise Odd(1, 2)
        yield

    stream, _ = _stream(produce)
    try:
        with pytest.raises(LabelreviewError, match=expected):  # (a message for the user stays as it was)
            list(stream)
    finally:
        stream.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_closing_early_stops_the_child_and_reaps_it():
    def produce():
        while True:
            yield b"x" * 65536

    stream, _ = _stream(produce)
    it = iter(stream)
    next(it)
    pid = stream.pid
    stream.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left


def test_a_child_that_dies_in_the_middle_of_a_message_is_said_not_a_traceback():
    # (The OOM killer does not wait for a message to be whole.)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        import pickle
        data = pickle.dumps(("chunk", b"y" * 200_000))
        os.write(w, data[: len(data) // 2])  # half a message, then killed
        os.kill(os.getpid(), signal.SIGKILL)
    os.close(w)
    stream = forked.ChildStream(pid, r, lambda _: None, "reading f.json")
    try:
        with pytest.raises(LabelreviewError, match=r"^reading f.json: the process doing it ended unexpectedly "
                                                   r"\(killed by SIGKILL\)$"):
            list(stream)
    finally:
        stream.close()


def test_when_no_process_can_be_forked_the_import_is_done_in_one(tmp_path, monkeypatch):
    from labelreview.formats import coco

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setenv("LABELREVIEW_IMPORT_WORKER", "1")
    monkeypatch.setattr(forked, "can_fork", lambda: True)
    monkeypatch.setattr(forked.os, "fork", no_fork)
    src = _coco_with_oddities(tmp_path / "p.json", n=400)
    store = _store(tmp_path, "s")
    with Store.open(store) as s:
        result = s.ingest(coco.read(src, lazy=True), source="m", image_root=tmp_path)
        assert result["annotations"] == 400 and s.counts()["total"] == 400
    assert run("verify", "--no-images", "--store", store)[0] == 0
