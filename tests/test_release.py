"""Dataset releases: an annotated tag after a checkpoint; an export of a release is the same bytes
at any later time; `diff` between releases says per class what was added, removed and relabeled."""

from __future__ import annotations

import time

from helpers import _sample, git, run, sample_images, sample_store, templates  # noqa: F401
from teams import ALICE, BOB, bare_remote, cli, js


def test_release_tag_export_byte_for_byte_and_diff_per_class(sample_store, tmp_path):
    s = ["--store", sample_store]
    for argv in (["accept", "1", "2", "4"], ["relabel", "3", "cup"], ["reject", "5"], ["flag", "6", "--reason", "occluded"]):
        assert cli(*argv, *s, author=ALICE)[0] == 0
    rel = js("release", "v1.0", "-m", "first labels", *s, author=ALICE)
    assert rel["exported"] == 4 and git(sample_store, "cat-file", "-t", "v1.0").strip() == "tag"
    tag = git(sample_store, "cat-file", "-p", "v1.0")
    assert "tagger Alice <alice@example.org>" in tag and "first labels" in tag
    assert git(sample_store, "rev-parse", "v1.0^{commit}") == git(sample_store, "rev-parse", "HEAD")
    assert git(sample_store, "status", "--porcelain") == ""

    assert cli("export", "coco", tmp_path / "a.json", "--rev", "v1.0", *s)[0] == 0
    # Later: more decisions (the relabel of 1 to cat, 2 rejected, 7 accepted, 3 back to saucer), v1.1.
    for argv in (["relabel", "1", "cat"], ["reject", "2"], ["accept", "7"], ["relabel", "3", "saucer"]):
        assert cli(*argv, *s, author=BOB)[0] == 0
    time.sleep(1.1)  # a different second on the clock: nothing of the export time may leak in
    assert js("release", "v1.1", *s, author=BOB)["exported"] == 4
    assert cli("export", "coco", tmp_path / "b.json", "--rev", "v1.0", *s)[0] == 0
    for name in ("a.json", "a.json.provenance.jsonl"):
        assert (tmp_path / name).read_bytes() == (tmp_path / name.replace("a.", "b.", 1)).read_bytes(), name
    assert cli("export", "coco", tmp_path / "now.json", *s)[0] == 0
    assert (tmp_path / "now.json").read_bytes() != (tmp_path / "a.json").read_bytes()

    d = js("diff", "v1.0", "v1.1", *s)
    classes = {c["class"]: c for c in d["classes"]}
    assert classes["person"]["added"] == 1  # 7 accepted
    assert classes["cup"]["removed"] == 1  # 2 rejected
    assert classes["dog"]["relabeled_out"] == 1 and classes["cat"]["relabeled_in"] == 1
    assert classes["cup"]["relabeled_out"] == 1 and classes["saucer"]["relabeled_in"] == 1  # 3: cup -> saucer
    assert {(m["from"], m["to"], m["count"]) for m in d["relabeled"]} == {("dog", "cat", 1), ("cup", "saucer", 1)}
    rc, out, _ = cli("diff", "v1.0", "v1.1", "--summary", *s)
    assert rc == 0 and "relabeled dog -> cat: 1" in out and "labels changed:" not in out

    rc, _, err = cli("release", "v1.0", *s)
    assert rc == 1 and "release v1.0 already exists" in err
    rc, _, err = cli("release", "bad name", *s)
    assert rc == 1 and "not a valid release name" in err


def test_a_release_travels_with_sync_and_exports_the_same_on_another_machine(sample_store, tmp_path):
    remote = bare_remote(tmp_path / "remote.git")
    assert cli("accept", "1", "2", "--store", sample_store, author=ALICE)[0] == 0
    assert cli("remote", "add", "origin", remote, "--store", sample_store)[0] == 0
    js("release", "v1.0", "--store", sample_store, author=ALICE)
    js("sync", "--store", sample_store, author=ALICE)
    other = sample_store.parent / "bob"
    assert cli("clone", remote, other, author=BOB)[0] == 0
    assert "v1.0" in git(other, "tag")
    for root, out in ((sample_store, "a.json"), (other, "b.json")):
        assert cli("export", "coco", tmp_path / out, "--rev", "v1.0", "--store", root)[0] == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
