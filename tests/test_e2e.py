"""End to end: the real `labelreview` command in tmux, keys typed, the screen read, the store checked."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from conftest import SAMPLE

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


class Tmux:
    """One private tmux server (-L, no user config) running one command at a fixed size."""

    def __init__(self, cwd, command: list[str], env: dict[str, str], width=120, height=36):
        self.socket = f"lr-{uuid.uuid4().hex[:8]}"
        self.base = ["tmux", "-L", self.socket, "-f", "/dev/null"]
        env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        subprocess.run([*self.base, "new-session", "-d", "-x", str(width), "-y", str(height), *env_args,
                        "-c", str(cwd), " ".join(command) + "; sleep 30"], check=True)

    def keys(self, *keys: str) -> None:
        for k in keys:
            subprocess.run([*self.base, "send-keys", k], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p"], capture_output=True, text=True).stdout

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.screen()}")

    def wait_gone(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text not in self.screen():
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} is still on the screen:\n{self.screen()}")

    def app_pid(self) -> int:
        """The labelreview process in the pane (the pane runs `sh -c 'labelreview ...; sleep 30'`)."""
        pane = subprocess.run([*self.base, "display", "-p", "#{pane_pid}"], capture_output=True,
                              text=True, check=True).stdout.strip()
        kids = subprocess.run(["pgrep", "-P", pane], capture_output=True, text=True).stdout.split()
        for pid in kids:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")
            if b"labelreview" in cmd:
                return int(pid)
        raise AssertionError(f"no labelreview process under pane {pane}")

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.fixture
def workdir(tmp_path):
    """A copy of the repository's sample data, run from as if it were the repository root."""
    shutil.copytree(SAMPLE, tmp_path / "sample_data")
    return tmp_path


def env_for(author: str) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "GIT_CONFIG_NOSYSTEM") if k in os.environ}
    return {**keep, "COLORTERM": "truecolor", "TERM": "xterm-256color", "LABELREVIEW_AUTHOR": author}


def test_bare_labelreview_opens_the_demo_and_keys_reach_the_store(workdir):
    tmux = Tmux(workdir, ["labelreview"], env_for("Erin <erin@example.org>"))
    try:
        tmux.wait_for("chelsea.jpg")
        tmux.wait_for("0/25 reviewed")
        tmux.keys("r")
        tmux.wait_for("Relabel")
        tmux.keys("c", "a", "t", "Enter")
        tmux.wait_for("relabeled")
        tmux.keys("j")                       # next: the coffee image
        tmux.wait_for("coffee.jpg")
        tmux.keys("a")
        tmux.wait_for("2/25 reviewed")
        tmux.keys("j", "f", "1")
        tmux.wait_for("comment")
        tmux.keys("t", "o", "o", " ", "b", "i", "g", "Enter")
        tmux.wait_for("3/25 reviewed")
        tmux.keys("u")                        # undo the flag
        tmux.wait_for("2/25 reviewed")
        tmux.keys("q")
        tmux.wait_gone("reviewed")
    finally:
        tmux.close()
    store = workdir / "store" / "demo"
    log = subprocess.run(["labelreview", "log", "--json", "--store", str(store)], capture_output=True,
                         text=True, check=True).stdout
    import json

    events = json.loads(log)
    assert [e["action"] for e in reversed(events)] == ["relabel", "accept", "flag", "undo"]
    assert all(e["author"] == "Erin <erin@example.org>" for e in events)
    assert all(e["commit"] for e in events), "quitting must checkpoint every decision to git"
    flag = next(e for e in events if e["action"] == "flag")
    assert flag["comment"] == "too big" and flag["reason"] == "loose-box"
    verify = subprocess.run(["labelreview", "verify", "--store", str(store)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout


def test_killed_review_loses_no_decision_shown(workdir):
    tmux = Tmux(workdir, ["labelreview"], env_for("Finn <finn@example.org>"))
    try:
        tmux.wait_for("0/25 reviewed")
        tmux.keys("space", "space", "space")
        tmux.wait_for("3/25 reviewed")
        os.kill(tmux.app_pid(), 9)
    finally:
        tmux.close()
    store = workdir / "store" / "demo"
    out = subprocess.run(["labelreview", "status", "--json", "--store", str(store)], capture_output=True,
                         text=True, check=True).stdout
    import json

    counts = json.loads(out)
    assert counts["accepted"] == 3
    verify = subprocess.run(["labelreview", "verify", "--store", str(store)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout


def test_256_colour_terminal_gets_a_hint(workdir):
    env = env_for("Gus <gus@example.org>")
    env.pop("COLORTERM")
    tmux = Tmux(workdir, ["labelreview"], env)
    try:
        tmux.wait_for("chelsea.jpg")
        tmux.wait_for("COLORTERM=truecolor")
    finally:
        tmux.close()


def test_a_terminal_that_hangs_up_while_the_screen_is_drawing_ends_the_review(workdir):
    """The terminal goes away while a toast is still being drawn: Textual's writer thread dies on
    the closed terminal, and its shutdown then waited for ever to write the goodbye (mouse off,
    screen given back): the review lived on, its image leased, every time about one in two. It now
    saves as q does and ends. Three hang-ups, each within a second of the toast appearing."""
    env = env_for("Gus <gus@example.org>")
    env.pop("COLORTERM")  # (a toast: the colour advice)
    for _ in range(3):
        tmux = Tmux(workdir, ["labelreview"], env)
        try:
            tmux.wait_for("COLORTERM=truecolor")
            pid = tmux.app_pid()
        finally:
            tmux.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.1)
        alive = os.path.exists(f"/proc/{pid}")
        if alive:
            os.kill(pid, signal.SIGKILL)
        assert not alive, "the review outlived its terminal"


def test_a_16_colour_terminal_is_told_so_not_256(workdir):
    # Plain xterm (TERM=xterm, as the sixel advice starts it) has 16 colours; it was told "256".
    env = env_for("Ida <ida@example.org>")
    env.pop("COLORTERM")
    tmux = Tmux(workdir, ["env", "TERM=xterm", "labelreview"], env)  # (tmux sets the pane's own TERM)
    try:
        tmux.wait_for("chelsea.jpg")
        tmux.wait_for("16 colours")
        assert "reports 256 colours" not in tmux.screen()
    finally:
        tmux.close()


def test_review_of_an_empty_filter_says_so(workdir):
    tmux = Tmux(workdir, ["labelreview", "review", "--demo", "--status", "rejected"], env_for("H <h@x.org>"))
    try:
        tmux.wait_for("Nothing to review")
    finally:
        tmux.close()



def test_a_reviewer_whose_terminal_hangs_up_is_saved_to_git_in_their_name(workdir):
    """Two reviewers on one store; one's terminal goes away (SSH dropped: SIGHUP). That review ends
    as q ends it: its decisions committed in its reviewer's name, its image given back, while the
    other reviewer goes on. (Python's default for SIGHUP ended it on the spot, out of git.)"""
    import json
    import sys

    store = workdir / "S"
    lr = [sys.executable, "-m", "labelreview"]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "GIT_CONFIG_NOSYSTEM", "PYTHONPATH")}
    subprocess.run([*lr, "init", str(store)], check=True, capture_output=True, env=env)
    subprocess.run([*lr, "import", "coco", "sample_data/proposals.json", "--images", "sample_data/images",
                    "--store", str(store)], check=True, capture_output=True, cwd=workdir, env=env)
    review = [*lr, "review", "--store", str(store)]
    keep = {k: env[k] for k in ("PYTHONPATH",) if k in env}
    ann = Tmux(workdir, review, {**env_for("Ann <ann@example.org>"), **keep})
    ben = None
    try:
        ann.wait_for("chelsea.jpg")
        ben = Tmux(workdir, review, {**env_for("Ben <ben@example.org>"), **keep})
        ben.wait_for("coffee.jpg")  # Ann is on chelsea: Ben is given the next image
        ben.keys("space", "space")
        ben.wait_for("2/25 reviewed")
        ben.close()  # the terminal is gone
        deadline = time.monotonic() + 20
        authors = ""
        while time.monotonic() < deadline and "Ben" not in authors:
            time.sleep(0.2)
            authors = subprocess.run(["git", "log", "--format=%an"], cwd=store, capture_output=True,
                                     text=True).stdout
        assert authors.splitlines()[0] == "Ben", authors
        ann.keys("a")  # Ann goes on, and sees Ben's two decisions with hers
        ann.wait_for("3/25 reviewed")
        ann.keys("n")
        shown = ann.wait_for("coffee.jpg")  # Ben's image is free again
        assert "Skipped" not in shown
    finally:
        ann.close()
        if ben is not None:
            ben.close()
    events = json.loads(subprocess.run([*lr, "log", "--json", "--by", "Ben", "--store", str(store)],
                                       capture_output=True, text=True, check=True, env=env).stdout)
    assert len(events) == 2 and all(e["commit"] for e in events)
