"""The command line as a user (or a script reading --json) meets it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import SAMPLE, run_cli
from helpers import (AUTHOR, _sample, empty_store, git, run, sample_images, sample_store, set_config,  # noqa: F401
                     templates)

SHA = re.compile(r"^[0-9a-f]{40}$")


def ok(*argv) -> str:
    rc, out, err = run(*argv)
    assert rc == 0, err
    return out


def js(*argv):
    return json.loads(ok(*argv, "--json"))


def test_errors_of_the_real_console_script(sample_store):
    """(test_smoke.py runs the README's first steps through it; here: how a refusal looks.)"""
    r = run_cli("accept", "999", "--store", str(sample_store))
    assert r.returncode == 1 and r.stdout == "" and r.stderr == "labelreview: error: no annotation with id 999\n"


def test_decisions_print_what_changed(sample_store):
    s = ["--store", str(sample_store)]
    assert ok("accept", "1", "2", *s) == ("accept 1: dog pending -> dog accepted\n"
                                          "accept 2: cup pending -> cup accepted\n")
    assert ok("accept", "1", *s) == "nothing to change\n"
    assert ok("relabel", "1", "cat", "--reason", "wrong-class", *s) == "relabel 1: dog accepted -> cat relabeled\n"
    assert ok("flag", "3", "--reason", "loose-box", "--comment", "rim cut", *s) == \
        "flag 3: saucer pending -> saucer flagged\n"
    assert ok("reject", "4", "5", "--reason", "duplicate", *s).count("-> spoon rejected") == 2
    assert ok("undo", *s) == "undid reject of annotation 5: now spoon pending\n"
    rc, _, err = run("flag", "6", "--reason", "meh", *s)
    assert rc == 1 and "unknown flag reason 'meh'" in err
    rc, _, err = run("relabel", "6", "persn", *s)
    assert rc == 1 and "did you mean person" in err
    assert git(sample_store, "status", "--porcelain") == ""  # every command ends with a checkpoint


def test_log_json(sample_store):
    s = ["--store", str(sample_store)]
    ok("accept", "1", *s)
    ok("relabel", "2", "saucer", "--reason", "wrong-class", "--comment", "plate", *s)
    events = js("log", *s)
    assert [e["action"] for e in events] == ["relabel", "accept"]  # newest first
    e = events[0]
    assert e["author"] == AUTHOR and e["annotation"] == 2 and e["image"] == 2
    assert e["old"] == {"category": "cup", "status": "pending"}
    assert e["new"] == {"category": "saucer", "status": "relabeled"}
    assert e["reason"] == "wrong-class" and e["comment"] == "plate"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", e["ts"])
    assert SHA.match(e["commit"]) and e["commit"] == git(sample_store, "rev-parse", "HEAD").strip()
    assert SHA.match(events[1]["commit"]) and events[1]["commit"] != e["commit"]
    assert [e["annotation"] for e in js("log", "--annotation", "1", *s)] == [1]
    assert [e["action"] for e in js("log", "--action", "accept", *s)] == ["accept"]
    assert js("log", "--by", "nobody", *s) == []
    assert len(js("log", "--by", "reviewer@example.org", *s)) == 2
    assert len(js("log", "--limit", "1", *s)) == 1
    assert js("log", "--since", "2999-01-01", *s) == []
    text = ok("log", *s)
    assert "cup/pending -> saucer/relabeled" in text and e["commit"][:10] in text


def test_log_action_that_no_event_can_have_is_refused_not_an_empty_log(sample_store):
    """`log --action relabeled` (the status, as `ls --status` takes it) printed an empty log: as if
    nobody had relabeled anything."""
    s = ["--store", str(sample_store)]
    ok("relabel", "1", "cat", *s)
    rc, out, err = run("log", "--action", "relabeled", *s)
    assert rc == 1 and out == ""
    assert "--action takes accept, relabel, flag, reject, undo, resolve; not 'relabeled' (did you mean relabel?)" in err
    rc, _, err = run("log", "--action", "acept", *s)
    assert rc == 1 and "not 'acept'" in err and "did you mean" not in err
    assert [e["annotation"] for e in js("log", "--action", "relabel", *s)] == [1]
    assert [e["annotation"] for e in js("log", "--action", "Relabel", *s)] == [1]


def test_log_of_an_id_the_store_does_not_have_says_so(sample_store):
    """`log --annotation 999` printed an empty log, read as "nobody ever changed it"; blame said
    there is no such annotation."""
    s = ["--store", str(sample_store)]
    rc, out, err = run("log", "--annotation", "999", *s)
    assert rc == 1 and out == "" and "no annotation with id 999" in err
    rc, out, err = run("log", "--image", "99", *s)
    assert rc == 1 and out == "" and "no image with id 99" in err
    assert js("log", "--annotation", "1", *s) == [] and js("log", "--image", "1", *s) == []


def test_log_shows_uncommitted_until_a_checkpoint(sample_store):
    from labelreview.review import ReviewSession
    from labelreview.store import Store

    with Store.open(sample_store) as store:
        ReviewSession(store).accept(1)  # no finish(): not in git yet
    assert js("log", "--store", sample_store)[0]["commit"] is None
    assert ok("log", "--store", sample_store).splitlines()[1].endswith("(uncommitted)")
    assert ok("blame", "1", "--store", sample_store).splitlines()[1].endswith("(uncommitted)")
    assert js("status", "--store", sample_store)["uncommitted"] == 1
    sha = js("commit", "-m", "by hand", "--store", sample_store)["commit"]
    assert SHA.match(sha) and git(sample_store, "log", "-1", "--format=%s") == "by hand\n"
    assert js("log", "--store", sample_store)[0]["commit"] == sha


def test_ls_json(sample_store):
    s = ["--store", str(sample_store)]
    rows = js("ls", *s)
    assert len(rows) == 25
    r = next(r for r in rows if r["id"] == 3)
    assert {k: r[k] for k in ("id", "image", "category", "status", "score", "source", "source_id")} == \
        {"id": 3, "image": 2, "category": "saucer", "status": "pending", "score": r["score"], "source": "model-v1",
         "source_id": 3}
    assert isinstance(r["score"], float) and r["file_name"] == "coffee.jpg" and r["kind"] == "rle"
    ok("accept", "3", *s)
    ok("flag", "4", "--reason", "occluded", *s)
    assert [r["id"] for r in js("ls", "--status", "accepted,flagged", *s)] == [3, 4]
    assert {r["category"] for r in js("ls", "--class", "coin", *s)} == {"coin"}
    assert all(0.5 <= r["score"] <= 0.9 for r in js("ls", "--score", "0.5:0.9", *s))
    scores = [r["score"] for r in js("ls", "--order", "score", *s)]
    assert scores == sorted(scores)
    assert [r["id"] for r in js("ls", "--reason", "occluded", *s)] == [4]
    assert len(js("ls", "--image", "5", *s)) == 10
    assert len(js("ls", "--limit", "3", *s)) == 3
    rc, _, err = run("ls", "--score", "a:b", *s)
    assert rc == 1 and "--score takes MIN:MAX" in err
    rc, _, err = run("ls", "--order", "sideways", *s)
    assert rc == 1 and "unknown order 'sideways'" in err


def test_status_json(sample_store):
    s = ["--store", str(sample_store)]
    ok("accept", "1", "2", *s)
    ok("reject", "3", *s)
    st = js("status", *s)
    assert st == {"pending": 22, "accepted": 2, "relabeled": 0, "flagged": 0, "rejected": 1, "total": 25,
                  "images": 5, "events": 3, "uncommitted": 0, "conflicts": 0, "imports": 1,
                  "store": str(sample_store), "author": AUTHOR}
    assert "3 of 25 annotations reviewed" in ok("status", *s)


def test_blame(sample_store):
    s = ["--store", str(sample_store)]
    ok("relabel", "7", "dog", "--reason", "wrong-class", "--author", "Ann <ann@example.org>", *s)
    ok("accept", "7", "--author", "Bob <bob@example.org>", *s)
    [b] = js("blame", "7", *s)
    assert b["annotation"] == 7 and b["category"] == "dog" and b["status"] == "accepted"
    assert b["author"] == "Bob <bob@example.org>" and b["action"] == "accept"
    assert b["old"] == {"category": "dog", "status": "relabeled"} and b["proposed_category"] == "person"
    assert SHA.match(b["commit"])
    rows = js("blame", "--image", "3", *s)
    assert [r["annotation"] for r in rows] == [6, 7, 8, 9, 10]
    assert rows[0]["action"] == "imported" and rows[0]["author"] is None
    text = ok("blame", "--image", "3", *s)
    assert "proposed person" in text and "Bob <bob@example.org>" in text
    rc, _, err = run("blame", *s)
    assert rc == 1 and "blame needs an annotation id or --image" in err


def test_diff_between_revisions(sample_store):
    s = ["--store", str(sample_store)]
    ok("accept", "1", *s)
    ok("relabel", "2", "saucer", *s)
    ok("flag", "3", "--reason", "occluded", *s)
    ok("reject", "3", *s)
    d = js("diff", "HEAD~3", "HEAD", *s)
    assert d["events"] == 3 and d["imports"] == []
    changes = {c["annotation"]: c for c in d["changes"]}
    assert set(changes) == {2, 3}
    assert changes[3]["old"] == {"category": "saucer", "status": "pending"}
    assert changes[3]["new"] == {"category": "saucer", "status": "rejected"} and changes[3]["events"] == 2
    assert changes[2]["authors"] == [AUTHOR]
    whole = js("diff", "HEAD~5", *s)  # from the init to now: the import too
    assert len(whole["imports"]) == 1 and whole["events"] == 4
    text = ok("diff", "HEAD~1", "HEAD", *s)
    assert text.startswith("HEAD~1 (") and "3  saucer/flagged -> saucer/rejected  by Test Reviewer" in text
    rc, _, err = run("diff", "nope", *s)
    assert rc == 1 and "'nope' is not a revision" in err
    rc, _, err = run("diff", "HEAD", "HEAD~3", *s)  # the wrong way round: said so, not "rewritten"
    assert rc == 1 and "HEAD~3 is older than HEAD" in err and "rewritten" not in err


def test_diff_the_wrong_way_round_over_an_import_is_refused_not_an_import_added(sample_store):
    """Between the init and the import no decision was made: the logs could not tell the order,
    and `diff HEAD HEAD~1` (newer first) listed the import as added."""
    s = ["--store", str(sample_store)]
    assert len(js("diff", "HEAD~1", "HEAD", *s)["imports"]) == 1
    rc, out, err = run("diff", "HEAD", "HEAD~1", *s)
    assert rc == 1 and "+ import" not in out
    assert "HEAD~1 is older than HEAD: give the older revision first (labelreview diff HEAD~1 HEAD)" in err


def test_export_at_a_past_revision(sample_store, tmp_path):
    s = ["--store", str(sample_store)]
    ok("accept", "1", "2", *s)
    rev = git(sample_store, "rev-parse", "HEAD").strip()
    ok("relabel", "1", "cat", *s)
    ok("accept", "3", *s)
    ok("reject", "2", *s)
    then, now = tmp_path / "then.json", tmp_path / "now.json"
    ok("export", "coco", str(then), "--rev", rev, *s)
    ok("export", "coco", str(now), *s)

    def labels(p: Path):
        doc = json.loads(p.read_text())
        names = {c["id"]: c["name"] for c in doc["categories"]}
        return sorted((a["id"], names[a["category_id"]]) for a in doc["annotations"])

    assert labels(then) == [(1, "dog"), (2, "cup")]
    assert labels(now) == [(1, "cat"), (3, "saucer")]
    prov = [json.loads(x) for x in (tmp_path / "then.json.provenance.jsonl").read_text().splitlines()]
    assert {p["commit"] for p in prov} == {rev}
    rc, _, err = run("export", "coco", str(tmp_path / "x.json"), "--rev", "v9", *s)
    assert rc == 1 and "'v9' is not a revision" in err
    assert git(sample_store, "status", "--porcelain") == ""


def test_export_provenance_after_an_undo_names_the_decision_in_effect(sample_store, tmp_path):
    """An undo brings back the state the undone decision was made on. The provenance named the
    undo itself: a label flagged "loose-box" said its reason was "undo accept", and a label Ann
    accepted said Bob decided it (he relabeled it and took that back)."""
    ann, bob = "Ann <ann@example.org>", "Bob <bob@example.org>"
    s = ["--store", str(sample_store)]
    ok("flag", "4", "--reason", "loose-box", "--comment", "tail cut", "--author", ann, *s)
    ok("accept", "4", "--author", bob, *s)
    ok("undo", "--author", bob, *s)
    ok("accept", "1", "--author", ann, *s)
    ok("relabel", "1", "cat", "--reason", "wrong-class", "--author", bob, *s)
    ok("undo", "--author", bob, *s)
    ok("accept", "2", "--author", bob, *s)
    ok("undo", "--author", bob, *s)  # back to the proposal: nobody has decided it
    out = tmp_path / "out.json"
    ok("export", "coco", str(out), "--include", "flagged,pending", *s)
    prov = {p["annotation"]: p for p in map(json.loads, (tmp_path / "out.json.provenance.jsonl").read_text().splitlines())}
    log = {(e["annotation"], e["action"]): e for e in js("log", *s) if e["author"] == ann}
    for ann_id, action, status in ((4, "flag", "flagged"), (1, "accept", "accepted")):
        p, e = prov[ann_id], log[(ann_id, action)]
        assert p["status"] == status and p["action"] == action
        assert (p["decided_by"], p["decided_at"], p["reason"], p["comment"], p["event"], p["commit"]) == \
            (ann, e["ts"], e["reason"], e["comment"], e["hash"], e["commit"])
    assert prov[4]["reason"] == "loose-box" and prov[4]["comment"] == "tail cut"
    p = prov[2]
    assert p["status"] == "pending" and p["decided_by"] is None and p["action"] is None and p["event"] is None


def test_export_include_takes_a_list_written_with_spaces(sample_store, tmp_path):
    """`--include "flagged, pending"` was refused with "not  pending" (the space kept, unseen)."""
    s = ["--store", str(sample_store)]
    ok("flag", "4", "--reason", "loose-box", *s)
    ok("reject", "5", *s)
    out = tmp_path / "out.json"
    ok("export", "coco", str(out), "--include", "flagged, pending", *s)
    assert sorted(a["id"] for a in json.loads(out.read_text())["annotations"]) == [i for i in range(1, 26) if i != 5]


def test_export_never_writes_over_the_store_it_exports(sample_store, tmp_path):
    # `export coco labelreview.toml` (or onto an event log, the index...) replaced the store's own file
    # with the export: the store would not open, or verify failed and the decisions not yet in git
    # were gone. Refused now, with nothing written; a new file beside them stays fine.
    from helpers import files_of

    s = ["--store", str(sample_store)]
    ok("accept", "1", "2", *s)
    before = files_of(sample_store)
    log = next((sample_store / "events").rglob("*.jsonl")).relative_to(sample_store)
    for fmt, out in [("coco", "labelreview.toml"), ("coco", str(log)), ("csv", ".labelreview/index.sqlite"),
                     ("yolo", "imports/out"), ("coco", ".git/config"), ("yolo", "."), ("yolo", "..")]:
        for rev in ([], ["--rev", "HEAD"]):
            rc, _, err = run("export", fmt, out, *rev, cwd=sample_store)
            assert rc == 1 and "nothing was written" in err and "store" in err, (out, err)
    assert files_of(sample_store) == before
    assert run("verify", *s)[0] == 0
    assert run("export", "coco", "reviewed.json", cwd=sample_store)[0] == 0
    assert (sample_store / "reviewed.json").is_file()


def test_export_where_it_cannot_be_written_is_a_message_not_a_traceback(sample_store, tmp_path, monkeypatch):
    # An export path under a file ("reviewed.json/x.json"), a folder without permission or a full
    # disk raised the OSError as a traceback.
    s = ["--store", str(sample_store)]
    ok("accept", "1", *s)
    (tmp_path / "reviewed.json").write_text("{}")
    for fmt, out in [("coco", "reviewed.json/x.json"), ("yolo", "reviewed.json/a/y"), ("csv", "reviewed.json/c.csv")]:
        for rev in ([], ["--rev", "HEAD"]):
            rc, _, err = run("export", fmt, str(tmp_path / out), *rev, *s)
            assert rc == 1 and "Traceback" not in err, err
            assert f"{tmp_path / out}: cannot write the export: {tmp_path / 'reviewed.json'} is a file, not a folder" \
                in err, err
    from labelreview.formats import common

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(common, "_syncfs", full)
    rc, _, err = run("export", "yolo", str(tmp_path / "y"), *s)
    assert rc == 1 and f"{tmp_path / 'y'}: cannot write the export: No space left on device" in err, err
    assert not (tmp_path / "y").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".y")]


def test_commands_outside_a_store_fail_clearly(tmp_path):
    for argv in (["status"], ["ls"], ["log"], ["verify"], ["accept", "1"], ["export", "coco", "x.json"]):
        rc, out, err = run(*argv, cwd=tmp_path)
        assert rc == 1 and err.startswith("labelreview: error: no labelreview store here or above"), argv


def test_unknown_formats_are_named(sample_store, tmp_path):
    rc, _, err = run("export", "tiff", str(tmp_path / "x"), "--store", sample_store)
    assert rc == 1 and "unknown export format 'tiff'" in err
    p = tmp_path / "x.txt"
    p.write_text("hello")
    rc, _, err = run("import", "auto", str(p), "--store", sample_store)
    assert rc == 1 and "cannot tell the format" in err


@pytest.mark.parametrize("argv", [["--help"], ["accept", "--help"]])
def test_help(argv):
    with pytest.raises(SystemExit) as e:
        run(*argv)
    assert e.value.code == 0


def test_python_dash_m_runs_the_same_command(sample_store):
    # `python -m labelreview` said "No module named labelreview.__main__".
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "labelreview", "status", "--json", "--store", str(sample_store)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == js("status", "--store", sample_store)
    proc = subprocess.run([sys.executable, "-m", "labelreview", "accept", "999", "--store", str(sample_store)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "no annotation with id 999" in proc.stderr


def test_an_unknown_id_among_several_refuses_them_all(sample_store):
    head = git(sample_store, "rev-parse", "HEAD")
    rc, out, err = run("accept", "2", "999", "--store", sample_store)
    assert rc == 1 and err == "labelreview: error: no annotation with id 999\n" and out == ""
    assert js("status", "--store", sample_store)["events"] == 0
    assert git(sample_store, "rev-parse", "HEAD") == head


def test_a_refusal_half_way_says_what_was_done_and_commits_it(sample_store, monkeypatch):
    """A conflict on the second of three ids: the first stays decided, is printed and committed."""
    from labelreview.model import ConflictError
    from labelreview.review import ReviewSession

    real = ReviewSession.accept

    def accept(self, ann_id, **kw):
        if ann_id == 7:
            raise ConflictError("annotation 7 was changed by Other after you saw it; nothing was written")
        return real(self, ann_id, **kw)

    monkeypatch.setattr(ReviewSession, "accept", accept)
    rc, out, err = run("accept", "6", "7", "8", "--store", sample_store)
    assert rc == 1 and "annotation 7 was changed by Other" in err
    assert out == "accept 6: person pending -> person accepted\n"
    assert git(sample_store, "status", "--porcelain") == ""
    st = js("status", "--store", sample_store)
    assert st["accepted"] == 1 and st["uncommitted"] == 0


def test_accept_keeps_its_reason(sample_store):
    s = ["--store", str(sample_store)]
    ok("accept", "5", "--reason", "checked against the photo", "--comment", "fine", *s)
    e = js("log", *s)[0]
    assert (e["action"], e["reason"], e["comment"]) == ("accept", "checked against the photo", "fine")


def test_log_since_reads_dates_and_times_as_log_prints_them(sample_store):
    s = ["--store", str(sample_store)]
    ok("accept", "1", *s)
    ts = js("log", *s)[0]["ts"]  # e.g. 2026-11-28T10:05:08.123456Z
    day, clock = ts[:10], ts[11:19]
    assert len(js("log", "--since", day, *s)) == 1
    assert len(js("log", "--since", f"{day} {clock}", *s)) == 1  # the form `log` prints
    assert js("log", "--since", f"{day} 23:59:59.999999", *s) == []  # later that day: none (was: all)
    assert js("log", "--since", f"{day}T00:00:00+14:00", *s) != []  # an offset is converted to UTC
    rc, _, err = run("log", "--since", "yesterday", *s)
    assert rc == 1 and "--since takes a UTC date or time" in err


def test_control_characters_cannot_forge_rows_or_names(sample_store):
    s = ["--store", str(sample_store)]
    forged = "looks fine\n2026-11-28 10:00:00  bob     accept   21   coin/pending -> coin/accepted"
    ok("relabel", "21", "cat", "--reason", forged, *s)
    text = ok("log", *s)
    assert len(text.splitlines()) == 2 and "looks fine\\n2026" in text  # one row, the newline shown
    assert "\\n" in ok("blame", "21", *s) and "\x1b" not in ok("blame", "21", *s)
    assert js("log", *s)[0]["reason"] == forged  # kept exactly; only its display is escaped
    rc, _, err = run("accept", "1", "--author", "mallory\x1b[2K\rbob", *s)
    assert rc == 1 and "control characters" in err


def test_nothing_from_the_data_reaches_the_terminal_as_a_control_character(tmp_path):
    """Class names, file names, sources and paths that hold an escape code (set the title, clear the
    screen), a carriage return, backspaces or a bidi override were printed raw by the decisions'
    confirmations, the "did you mean" hints, diff, export and the import's warnings."""
    from labelreview.display import UNSAFE
    from PIL import Image

    nasty_cat, nasty_dog = "cat\x1b]0;pwned\x07\x1b[31m", "dog\rFAKE\x08\x08\u202eevil\u202c"
    Image.new("RGB", (64, 48)).save(tmp_path / "a.png")
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                      {"id": 2, "file_name": "gone\x1b[2J.png", "width": 64, "height": 48}],
           "categories": [{"id": 1, "name": nasty_cat}, {"id": 2, "name": nasty_dog}, {"id": 3, "name": "plain"}],
           "annotations": [{"id": i, "image_id": 1, "category_id": c, "bbox": [1, 2, 10, 10]}
                           for i, c in ((1, 1), (2, 2), (3, 3))]}
    (tmp_path / "p\x1b[2J.json").write_text(json.dumps(doc))
    store = tmp_path / "store\x1b]0;x\x07"
    s = ["--store", str(store)]
    outputs = [run("init", str(store)),
               run("import", "coco", str(tmp_path / "p\x1b[2J.json"), "--images", str(tmp_path),
                   "--source", "src\x1b[2J", *s),
               run("accept", "1", *s), run("relabel", "3", nasty_dog, *s), run("reject", "2", "--reason", "x", *s),
               run("undo", *s), run("ls", *s), run("ls", "--class", "cat", *s), run("ls", "--source", "sr", *s),
               run("ls", "--status", "x\x1b[2J", *s), run("log", *s), run("blame", "3", *s),
               run("diff", "HEAD~1", "HEAD", *s), run("status", *s),
               run("export", "coco", str(tmp_path / "out\x1b[2J.json"), "--include", "pending", *s),
               run("verify", *s)]
    assert outputs[1][0] == 0 and "image file missing" in outputs[1][1]  # (a warning that names the file)
    for rc, out, err in outputs:
        assert not UNSAFE.search(out + err), repr(out + err)
    assert "\\x1b]0;pwned\\x07" in outputs[2][1] + outputs[6][1]  # shown, escaped
    # --json keeps the names exactly (valid JSON, escapes and all)
    rc, out, _ = run("ls", "--json", *s)
    assert not UNSAFE.search(out) and {a["category"] for a in json.loads(out)} == {nasty_cat, nasty_dog, "plain"}


@pytest.mark.parametrize("argv", [["log", "--limit", "1180591620717411303424"],
                                  ["log", "--since", "0001-01-01T00:00+14:00"],
                                  ["log", "--since", "9999-12-31T23:59-14:00"]])
def test_counts_and_times_past_what_is_stored_list_without_a_traceback(sample_store, argv):
    rc, out, err = run(*argv, "--store", str(sample_store))
    assert rc == 0 and "Traceback" not in err, err


def test_an_export_onto_a_pipe_or_a_device_is_refused_and_leaves_it_as_it_was(sample_store, tmp_path):
    import os
    import stat

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    rc, _, err = run("export", "coco", str(fifo), "--store", str(sample_store))
    assert rc == 1 and "exists and is not a file (a device, a pipe or a socket)" in err
    assert stat.S_ISFIFO(fifo.stat().st_mode) and not (tmp_path / "fifo.provenance.jsonl").exists()


def test_a_store_named_with_control_characters_or_quotes_gets_a_config_it_can_read(tmp_path):
    store = tmp_path / 'a\x1b[2J"b\\c\x7f'
    assert run("init", str(store))[0] == 0
    rc, out, err = run("status", "--store", str(store))
    assert rc == 0, err
    import tomllib

    assert tomllib.loads((store / "labelreview.toml").read_text())["project"]["name"] == store.name


@pytest.mark.parametrize("argv, message", [
    (["accept", "\u0663"], "not an id"),  # int() reads Arabic-Indic digits, and 2_0 as 20
    (["accept", "2_0"], "not an id"),
    (["ls", "--limit", "1_0"], "not a number"),
    (["accept", "99999999999999999999"], "no such id"),
    (["blame", "99999999999999999999"], "no such id"),
    (["log", "--annotation", "99999999999999999999"], "no such id"),
    (["ls", "--image", "99999999999999999999"], "no such id"),
    (["ls", "--image", "abc"], "not an id"),
    (["ls", "--limit", "-1"], "must be 0 or more"),
])
def test_odd_numbers_are_refused_clearly(sample_store, argv, message):
    r = run_cli(*argv, "--store", str(sample_store))  # the real console script: argparse exits
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr


def test_odd_paths_and_settings_are_refused_clearly(sample_store, tmp_path):
    (tmp_path / "a-file").write_text("x")
    rc, _, err = run("init", str(tmp_path / "a-file"))
    assert rc == 1 and "exists and is not a folder" in err
    (tmp_path / "out").mkdir()
    rc, _, err = run("export", "coco", str(tmp_path / "out"), "--store", str(sample_store))
    assert rc == 1 and "is a folder" in err
    config = sample_store / "labelreview.toml"
    text = config.read_text()
    for bad, message in (('checkpoint_every = "x"', "checkpoint_every must be a whole number"),
                         ("flag_reasons = 5", "project.flag_reasons must be a list"),
                         ('reviewers = "root"', "roles.reviewers must be a list")):
        key = bad.split(" =")[0]
        config.write_text(re.sub(rf"(?m)^{key} = .*$", bad, text, count=1))
        rc, _, err = run("status", "--store", str(sample_store))
        assert rc == 1 and message in err, (bad, err)
    config.write_text(text)


def test_review_with_no_queue_named_resumes_the_last_one(sample_store, monkeypatch):
    # A filter chosen in the app (or on the command line) is the queue a bare `review` comes back
    # to, at its place; before, the saved place was for the unfiltered queue and the filter was gone.
    import labelreview.tui.app as app_module
    from labelreview import cli

    monkeypatch.setattr(cli, "terminal_missing", lambda: None)  # (run() captures the output)
    opened = []
    monkeypatch.setattr(app_module, "run", lambda store, queue, **k: opened.append(
        (queue.filter.statuses, queue.order, queue.resumed_query)) or 0)
    s = ["--store", str(sample_store)]
    assert run("review", "--status", "pending", "--order", "score", *s)[0] == 0
    assert run("review", *s)[0] == 0
    assert opened[1] == (["pending"], "score", "status:pending order:score")
    assert run("review", "--order", "score-desc", *s)[0] == 0  # a queue named is the one opened
    assert opened[2][:2] == ([], "score-desc")
    # `--order file` names a queue too: the whole store in file order (it opened the last queue,
    # "Your last queue: order:score-desc", and no command line led back to the whole store).
    assert run("review", "--order", "file", *s)[0] == 0
    assert opened[3] == ([], "file", None)
    assert run("review", *s)[0] == 0
    assert opened[4] == ([], "file", None)


def test_a_new_reason_for_the_same_class_is_recorded(sample_store):
    s = ["--store", str(sample_store)]
    ok("relabel", "2", "saucer", "--reason", "wrong-class", *s)
    assert ok("relabel", "2", "saucer", "--reason", "wrong-class", *s) == "nothing to change\n"
    ok("relabel", "2", "saucer", "--reason", "wrong-class", "--comment", "rim visible", *s)
    e = js("log", *s)[0]
    assert (e["action"], e["comment"]) == ("relabel", "rim visible")


def test_a_class_with_a_comma_or_a_space_can_be_named_in_a_filter():
    import argparse

    from labelreview.cli import parse_filter

    flt = parse_filter(argparse.Namespace(category=['"x:y,z",dog', "traffic light"], status=["pending,flagged"]))
    assert flt.categories == ["x:y,z", "dog", "traffic light"] and flt.statuses == ["pending", "flagged"]


def test_tables_align_on_screen_columns_with_wide_names(sample_store):
    """A CJK character takes two columns in a terminal: a table padded by characters ran its
    columns out of line for such a reviewer."""
    import unicodedata

    def columns(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    s = ["--store", str(sample_store)]
    ok("accept", "1", "--author", "田中太郎 <t@example.org>", *s)
    ok("accept", "2", "--author", "Bob <b@example.org>", *s)
    lines = ok("log", *s).splitlines()
    assert len(lines) == 3
    assert len({columns(line[:line.index("accept")]) for line in lines[1:]}) == 1
    assert columns(lines[0][:lines[0].index("action")]) == columns(lines[1][:lines[1].index("accept")])


def test_ls_random_order_is_the_review_queues_for_the_same_seed(sample_store):
    """`ls --order random --seed N` printed file order whatever the seed: a 'random sample' taken
    with `ls --json | head` was the first images."""
    from labelreview.review import Queue
    from labelreview.store import Store

    s = ["--store", str(sample_store), "--order", "random"]
    orders = {seed: [a["id"] for a in js("ls", *s, "--seed", str(seed))] for seed in (1, 2, 7)}
    assert len({tuple(o) for o in orders.values()}) == 3 and sorted(orders[7]) == list(range(1, 26))
    with Store.open(sample_store) as store:
        q = Queue(store, order="random", seed=7, resume=False, leases="off")
        assert orders[7] == q.flat
        q.close()


def test_ls_by_finds_a_reviewer_by_name_or_email_as_log_does(sample_store):
    s = ["--store", str(sample_store)]
    ok("accept", "1", "--author", "Alice Smith <alice@example.org>", *s)
    ok("accept", "2", "--author", "Bob <bob@example.org>", *s)
    for who in ("Alice Smith", "alice@example.org", "alice", "Alice Smith <alice@example.org>"):
        assert [a["id"] for a in js("ls", "--by", who, *s)] == [1], who
        assert [e["annotation"] for e in js("log", "--by", who, *s)] == [1], who
    assert js("ls", "--by", "al%", *s) == []  # (LIKE's wildcards are taken literally)
    assert [a["id"] for a in js("ls", "--by", "alice,bob", *s)] == [1, 2]


def test_filter_lists_written_with_a_space_after_each_comma(sample_store):
    """("accepted, flagged" was refused as the unknown status " flagged"; "cup, saucer" found no saucer.)"""
    s = ["--store", str(sample_store)]
    ok("accept", "1", *s)
    ok("flag", "2", "--reason", "loose-box", *s)
    assert [a["id"] for a in js("ls", "--status", "accepted, flagged", *s)] == [1, 2]
    both = {a["category"] for a in js("ls", "--class", "cup, saucer", *s)}
    assert both == {"cup", "saucer"}
    assert {a["category"] for a in js("ls", "--class", '"cup", "saucer"', *s)} == both


def test_a_mistyped_status_is_refused_not_an_empty_list(sample_store):
    rc, out, err = run("ls", "--status", "pendng", "--store", str(sample_store))
    assert rc == 1 and out == "" and "unknown status pendng; use pending, accepted" in err


def test_log_and_blame_show_the_comment_beside_the_reason(sample_store):
    """A flag's comment ("tail cut off") was only in `log --json`: the tables had no place for it."""
    s = ["--store", str(sample_store)]
    ok("flag", "20", "--reason", "loose-box", "--comment", "tail cut off", *s)
    assert "loose-box — tail cut off" in ok("log", *s)
    assert "loose-box — tail cut off" in ok("blame", "20", *s)


def test_diff_over_an_import_shows_its_labels_as_new_not_pending_before(sample_store):
    """Labels of an import made between the two revisions did not exist at the first: diff showed
    them as `pending` there, like a proposal left undecided, and counted nothing of the import."""
    s = ["--store", str(sample_store)]
    before = git(sample_store, "rev-parse", "HEAD").strip()
    ok("accept", "1", *s)
    ok("import", "coco", str(SAMPLE / "proposals.json"), "--images", str(sample_store.parent / "images"),
       "--source", "model-v2", *s)
    ok("accept", "30", *s)
    ok("relabel", "31", "cat", *s)
    d = js("diff", before, "HEAD", *s)
    changes = {c["annotation"]: c for c in d["changes"]}
    assert changes[1]["old"] == {"category": "dog", "status": "pending"}  # pending at A: it existed
    assert changes[30]["old"] is None and changes[30]["new"] == {"category": "spoon", "status": "accepted"}
    [imp] = d["imports"]
    assert d["imported"][imp] == {"source": "model-v2", "annotations": 25, "images": 5}
    assert changes[31]["old"] is None and changes[31]["proposed"] == "person"
    assert {c["class"]: c["added"] for c in d["classes"]} == {"cat": 1, "dog": 1, "spoon": 1}
    text = ok("diff", before, "HEAD", *s)
    assert f"+ import {imp} (source model-v2): 25 labels on 5 images" in text
    assert "30  new, proposed spoon -> spoon/accepted" in text and "1  dog/pending -> dog/accepted" in text
    assert "31  new, proposed person -> cat/relabeled" in text


def test_blame_of_an_annotation_on_an_image_checks_it_is_on_that_image(sample_store):
    """`blame 2 --image 3` answered for annotation 2 (on image 2) and said nothing of --image."""
    s = ["--store", str(sample_store)]
    rc, out, err = run("blame", "2", "--image", "3", *s)
    assert rc == 1 and out == ""
    assert "annotation 2 is on image 2, not on image 3" in err
    rc, _, err = run("blame", "2", "--image", "99", *s)
    assert rc == 1 and "99" in err
    [row] = js("blame", "7", "--image", "3", *s)  # it is on that image: its blame
    assert row["annotation"] == 7 and row["image"] == 3


def test_a_locale_that_cannot_write_a_reason_escapes_it_rather_than_crash(sample_store):
    """Under LANG=C/LC_ALL=C (no UTF-8), `log` of a reason in another script ended in a
    UnicodeEncodeError traceback after its header; `--json` did too. Now the text is escaped and
    the JSON, in ASCII, reads back as the very reason."""
    import os
    import subprocess
    import sys

    s = ["--store", str(sample_store)]
    ok("relabel", "2", "saucer", "--reason", "ünï 猫", *s)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "LANG", "LC_CTYPE")}
    env.update(LC_ALL="C", PYTHONUTF8="0")

    def lr(*argv):
        return subprocess.run([sys.executable, "-m", "labelreview", *argv, *s], env=env, capture_output=True,
                              timeout=120)

    text = lr("log")
    assert text.returncode == 0 and b"Traceback" not in text.stderr, text.stderr.decode(errors="replace")
    assert rb"\xfcn\xef \u732b" in text.stdout and b"cup/pending -> saucer/relabeled" in text.stdout
    as_json = lr("log", "--json")
    assert as_json.returncode == 0, as_json.stderr.decode(errors="replace")
    assert json.loads(as_json.stdout.decode("ascii"))[0]["reason"] == "ünï 猫"


def test_bytes_of_another_encoding_in_an_argument_are_refused_not_a_traceback(sample_store, tmp_path):
    """A byte the locale cannot decode (a Latin-1 `é` in a UTF-8 shell) reaches Python as a lone
    surrogate: `flag --comment`, `ls --by` and `init` with one ended in a UnicodeEncodeError
    traceback (`init` leaving a half-made store), and a store in a folder so named could not be
    opened by any command. Now each is one message, and nothing is written."""
    import shutil

    s = ["--store", str(sample_store)]
    before = git(sample_store, "rev-parse", "HEAD")
    for argv in (["flag", "3", "--reason", "loose-box", "--comment", "caf\udce9", *s],
                 ["relabel", "3", "caf\udce9", *s], ["ls", "--by", "caf\udce9", *s]):
        rc, out, err = run(*argv)
        assert rc == 1 and out == "" and err == (
            "labelreview: error: 'caf\\xe9' is not UTF-8 text (bytes of another encoding: check the terminal's or "
            "the script's encoding); labelreview records text in UTF-8\n"), argv
    assert js("log", *s) == [] and git(sample_store, "rev-parse", "HEAD") == before
    rc, _, err = run("init", str(tmp_path / "caf\udce9"))
    assert rc == 1 and "is not UTF-8 text" in err and not (tmp_path / "caf\udce9").exists()
    odd = tmp_path / "d\udcffir" / "store"
    shutil.copytree(sample_store, odd)
    rc, out, err = run("status", cwd=odd)  # (found upward from here; named with --store, refused as above)
    assert rc == 1 and err.startswith("labelreview: error: ") and "the store's path is not UTF-8 text" in err
    assert len(err.splitlines()) == 1


def test_review_with_its_output_piped_says_it_needs_a_terminal(sample_store):
    """`labelreview review | less`, or one started by a script, drew the screen's escape codes into
    the pipe and waited for keys nobody could type, until killed. Now it says what it needs."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "labelreview", "review", "--store", str(sample_store)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == ("labelreview: error: the review screen needs a terminal, and its input and output is not "
                        "one (piped or redirected): run it in a terminal; scripts decide with accept, relabel, "
                        "flag and reject\n")
    assert git(sample_store, "status", "--porcelain") == ""


def test_every_command_s_help_says_what_it_does_and_what_its_arguments_are():
    """`labelreview status --help` showed only a usage line and the common options: what the
    command does was in `labelreview --help` alone, most arguments (`ids`, `--reason`, `out`,
    `--limit`) had no word, and `review --help` said --order defaults to file where a bare
    `review` reopens the last queue."""
    import contextlib
    import io

    from labelreview import cli

    def help_of(*argv) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
            cli.main([*argv, "--help"])
        assert exit_.value.code == 0
        return out.getvalue()

    def flat(text: str) -> str:
        return " ".join(text.split())  # (argparse wraps lines at the terminal's width)

    listing = flat(help_of())
    for name in cli.COMMANDS:
        blocks = help_of(name).split("\n\n")  # usage, then the command's purpose, then the arguments
        purpose = flat(blocks[1])
        assert not purpose.startswith(("positional arguments:", "options:")), (name, blocks[1])
        assert f"{name} {purpose}" in listing, (name, purpose)  # the words of `labelreview --help`
    assert flat(help_of("status").split("\n\n")[1]) == "counts per status"
    assert "--limit LIMIT list at most N (0: all)" in flat(help_of("ls"))
    assert "--limit LIMIT the newest N events (0: all)" in flat(help_of("log"))
    assert "ids annotation id(s), as `ls` lists them" in flat(help_of("accept"))
    assert "--reason REASON one of labelreview.toml's flag_reasons (required)" in flat(help_of("flag"))
    assert "--order ORDER file, score, score-desc, random, suspicion (default: the queue you last worked in, " \
           "else file)" in flat(help_of("review"))
    assert "suspicion (default: file)" in flat(help_of("ls"))


def test_ls_with_a_class_or_source_the_store_does_not_know_says_so(sample_store):
    """`ls --class persn` (a typo) printed an empty table and exit 0, as if the store had no
    person; `--source model-v2` the same. Now it is refused with the names it might have meant; a
    class of labelreview.toml no label has yet is still a filter, of nothing."""
    s = ["--store", str(sample_store)]
    rc, out, err = run("ls", "--class", "dog,persn", *s)
    assert (rc, out, err) == (1, "", "labelreview: error: unknown class 'persn'; did you mean person?\n")
    rc, out, err = run("ls", "--source", "model-v2", "--json", *s)
    assert (rc, out, err) == (1, "", "labelreview: error: unknown source 'model-v2'; did you mean model-v1?\n")
    rc, _, err = run("ls", "--class", "zebra", *s)
    assert rc == 1 and err.startswith("labelreview: error: unknown class 'zebra'; classes: person, cat, dog")
    assert [a["id"] for a in js("ls", "--class", "dog", "--source", "model-v1", *s)] == [1]
    set_config(sample_store, classes=["zebra"])
    assert js("ls", "--class", "zebra", *s) == []


def test_store_author_and_json_may_come_before_the_command(sample_store):
    """`labelreview --store S status`, as git takes `-C DIR` before its command, was refused with
    "invalid choice: 'S' (choose from 'init', ...)", as if S were a misspelt command."""
    rc, out, err = run("--store", str(sample_store), "--author", "Ann <ann@example.org>", "accept", "1")
    assert (rc, out) == (0, "accept 1: dog pending -> dog accepted\n"), err
    assert json.loads(ok("--json", "--store", str(sample_store), "log"))[0]["author"] == "Ann <ann@example.org>"
    # Given on both sides, the one after the command wins (it is the command's own).
    assert js("--store", "/nonexistent", "status", "--store", str(sample_store))["accepted"] == 1


def test_a_misspelt_command_a_store_that_is_a_file_and_log_of_a_label_not_on_the_image_say_so(sample_store, tmp_path):
    # `acept` got the list of two dozen commands; `--store afile` advised `labelreview init afile`,
    # which fails too; `log --annotation 1 --image 2` printed an empty log (exit 0) where blame refuses.
    rc, out, err = run("acept", "1", "--store", sample_store)
    assert rc == 2 and "unknown command 'acept'; did you mean accept?" in err
    assert run("log", "--json", "--store", sample_store)[1].strip() == "[]"  # nothing was accepted
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc, out, err = run("status", "--store", afile)
    assert rc == 1 and "a file, not a labelreview store" in err and "init" not in err
    rc, out, err = run("log", "--annotation", "1", "--image", "2", "--store", sample_store)
    assert rc == 1 and "annotation 1 is on image 1, not on image 2" in err
    assert run("log", "--annotation", "1", "--image", "1", "--store", sample_store)[0] == 0


def test_import_with_one_word_detects_the_format_and_one_word_exports_say_what_is_missing(empty_store, sample_images):
    """`labelreview import proposals.json` said "the following arguments are required: path" (the
    file was taken for the format). It is `import auto proposals.json`; a format with no path, and an
    export with one word, say what to add."""
    s = ["--store", str(empty_store)]
    rc, out, err = run("import", str(SAMPLE / "proposals.json"), "--images", str(sample_images), *s)
    assert rc == 0, err
    assert out.splitlines()[0] == "detected format: coco (a COCO file)"
    assert "imported 25 annotations on 5 images" in out
    assert run("import", "coco", *s)[2] == ("labelreview import: error: give the file or folder to import after "
                                            "the format (`labelreview import coco PATH`)\n")
    rc, _, err = run("export", "out.json", *s)
    assert rc == 2 and err.startswith("labelreview export: error: name the format before 'out.json' "
                                      "(`labelreview export FORMAT out.json`; formats: coco, yolo")
    rc, _, err = run("export", "coco", *s)
    assert rc == 2 and "give the file or folder to write after the format (`labelreview export coco OUT`)" in err


def test_a_store_whose_git_is_gone_refuses_a_decision_before_writing_it(sample_store):
    # (it wrote the decision to the log, then its checkpoint failed: "safe in the event log", rc 1)
    import shutil

    shutil.rmtree(sample_store / ".git")
    logs = sorted((sample_store / "events").rglob("*.jsonl"))
    rc, out, err = run("accept", "3", "--store", str(sample_store))
    assert rc == 1 and out == "" and ".git is missing, so the store has no history to add to: accept 3 refused, " \
        "nothing was written" in err
    assert sorted((sample_store / "events").rglob("*.jsonl")) == logs and all(p.stat().st_size for p in logs)
    rc, out, err = run("ls", "--status", "accepted", "--store", str(sample_store), "--json")
    assert rc == 0 and json.loads(out) == []  # reading still works
