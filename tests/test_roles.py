"""Roles by OS login, as labelreview.toml names them: a refused action says who may do it and writes
nothing. And the files a store is made of: shared with its group, never writable by anybody else."""

from __future__ import annotations

import getpass
import os
import stat

import pytest

from helpers import _sample, files_of, git, run, sample_images, sample_store, set_config, templates  # noqa: F401
from teams import ALICE, BOB, cli
from labelreview.model import PermissionRefused
from labelreview.review import ReviewSession
from labelreview.store import Store

ME = getpass.getuser()


def snapshot(root):
    """Everything a refused command could have changed."""
    return (files_of(root), git(root, "rev-parse", "HEAD"), git(root, "tag"), git(root, "remote", "-v"),
            git(root, "status", "--porcelain"))


def conflict_on_1(root):
    """An open conflict (a blind double review disagreement) to adjudicate."""
    set_config(root, review={"double": True, "lease_seconds": 120})
    for who, op in ((ALICE, ("accept", "1")), (BOB, ("relabel", "1", "cat"))):
        assert cli(*op, "--store", root, author=who)[0] == 0
    set_config(root, review={"double": False, "lease_seconds": 120})


@pytest.mark.parametrize("role,argv,verb", [
    ("reviewers", ["accept", "2"], "review"),
    ("adjudicators", ["resolve", "1", "--category", "dog", "--status", "accepted"], "adjudicate"),
    ("importers", ["import", "coco", "{sample}", "--images", "{images}", "--source", "again"], "import"),
    ("exporters", ["export", "coco", "{tmp}/out.json"], "export"),
    ("exporters", ["release", "v1.0"], "export"),
    ("admins", ["remote", "add", "origin", "{tmp}/remote.git"], "change the config"),
], ids=["review", "adjudicate", "import", "export", "release", "remote-add"])
def test_a_refused_action_names_who_may_and_writes_nothing(sample_store, sample_images, tmp_path, role, argv, verb):
    from conftest import SAMPLE

    conflict_on_1(sample_store)
    roles = {"reviewers": [], "adjudicators": [], "admins": ["boss"], "importers": [], "exporters": []}
    roles[role] = ["carol", "dan"] if role != "admins" else ["boss"]
    set_config(sample_store, roles=roles)
    git(sample_store, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qam", "roles")
    before = snapshot(sample_store)
    argv = [a.format(sample=SAMPLE / "proposals.json", images=sample_images, tmp=tmp_path) for a in argv]
    rc, out, err = run(*argv, "--store", sample_store, env={"LOGNAME": "boss", "USER": "boss"})  # not a way in
    who = "boss" if role == "admins" else "boss, carol, dan"
    assert rc == 1, out
    assert f"{ME} may not {verb}: labelreview.toml allows {who}; nothing was written" in err
    assert snapshot(sample_store) == before
    assert not (tmp_path / "out.json").exists()


def test_roles_grant_what_they_name(sample_store, tmp_path):
    conflict_on_1(sample_store)
    set_config(sample_store, roles={"reviewers": ["carol"], "adjudicators": [ME], "admins": ["boss"],
                                    "exporters": [ME]})
    with Store.open(sample_store) as store:
        s = ReviewSession(store)
        with pytest.raises(PermissionRefused, match="may not review"):
            s.accept(2)
        assert s.resolve(1, category="dog", status="accepted")["action"] == "resolve"  # an adjudicator
    assert run("export", "coco", tmp_path / "out.json", "--store", sample_store)[0] == 0
    rc, _, err = run("import", "coco", tmp_path / "out.json", "--store", sample_store)  # importers: absent
    assert rc == 1 and "may not import: labelreview.toml allows boss" in err
    set_config(sample_store, roles={"reviewers": ["carol"], "adjudicators": [], "admins": [ME]})
    assert run("accept", "2", "--store", sample_store)[0] == 0  # admins may do everything


def test_only_a_config_role_commits_labelreview_toml(sample_store):
    set_config(sample_store, roles={"reviewers": [], "adjudicators": [], "admins": ["boss"]})
    assert run("accept", "1", "--store", sample_store)[0] == 0
    assert git(sample_store, "status", "--porcelain") == " M labelreview.toml\n"  # the decision went in, not it
    assert "boss" not in git(sample_store, "show", "HEAD:labelreview.toml")
    set_config(sample_store, roles={"reviewers": [], "adjudicators": [], "admins": [ME]})
    assert run("accept", "2", "--store", sample_store)[0] == 0
    assert git(sample_store, "status", "--porcelain") == ""


def test_store_files_are_shared_with_the_group_and_nobody_else(tmp_path, monkeypatch):
    from conftest import SAMPLE

    old = os.umask(0o022)  # a usual server umask: the store still gives its group write access
    try:
        root = tmp_path / "s"
        assert run("init", root)[0] == 0
        assert run("import", "coco", SAMPLE / "proposals.json", "--images", SAMPLE / "images", "--store", root)[0] == 0
        assert run("accept", "1", "--store", root)[0] == 0
    finally:
        os.umask(old)
    assert git(root, "config", "core.sharedRepository").strip() in ("1", "group")
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            mode = os.lstat(p).st_mode
            assert not mode & stat.S_IWOTH, f"{p} is world-writable"
            if "/.git" in p:
                continue
            seen += 1
            if stat.S_ISDIR(mode):
                assert mode & 0o7777 == 0o2775, f"{p}: {oct(mode)}"
            elif not name.endswith(("-wal", "-shm")):
                assert mode & 0o777 == 0o664, f"{p}: {oct(mode)}"
    assert seen > 10
    assert stat.S_IMODE(os.stat(root / ".git" / "objects").st_mode) & 0o2070 == 0o2070


def test_a_login_that_may_not_review_is_told_before_the_review_opens(sample_store):
    # It opened, took leases on the images it was shown (so the reviewers skipped them), and was
    # refused only at its first key. It is now told at once; an adjudicator may open the conflicts.
    conflict_on_1(sample_store)
    set_config(sample_store, roles={"reviewers": ["carol"], "adjudicators": [ME], "admins": ["boss"],
                                    "importers": [], "exporters": []})
    rc, out, err = run("review", "--store", sample_store)
    assert rc == 1 and f"{ME} may not review: labelreview.toml allows boss, carol" in err
    with Store.open(sample_store) as store:
        assert store.conn.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
    rc, out, err = run("review", "--queue", "conflicts", "--store", sample_store)
    assert "may not" not in err  # (it goes on to want a terminal, which a test has not)
    assert "needs a terminal" in err
