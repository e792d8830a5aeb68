"""Helpers for the team tests: reviewers as real processes, bare remotes, the CLI as a script reads it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import run

ALICE = "Alice <alice@example.org>"
BOB = "Bob <bob@example.org>"
CAROL = "Carol <carol@example.org>"

# One reviewer in its own process: runs the decisions it is given (a JSON list), prints each
# recorded event's hash as it becomes durable, then checkpoints.
DECIDER = textwrap.dedent("""
    import json, sys, time
    from labelreview.review import ReviewSession
    from labelreview.store import Store

    root, author, ops = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    with Store.open(root, author=author) as store:
        s = ReviewSession(store)
        print("ready", flush=True)
        for op, *args in ops:
            if op == "sleep":
                time.sleep(args[0])
                continue
            ev = {"accept": lambda i: s.accept(i), "reject": lambda i: s.reject(i),
                  "relabel": lambda i, c: s.relabel(i, c), "flag": lambda i, r: s.flag(i, r)}[op](*args)
            print(ev["hash"] if ev else "none", flush=True)
        s.finish()
    print("done", flush=True)
""")


def decider(root: Path, author: str, ops: list) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DECIDER, str(root), author, json.dumps(ops)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> list[str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "locked" not in err, err
    return [ln for ln in out.splitlines() if len(ln) == 64]


def cli(*argv, author: str | None = None) -> tuple[int, str, str]:
    return run(*argv, env={"LABELREVIEW_AUTHOR": author} if author else None)


def js(*argv, author: str | None = None):
    rc, out, err = cli(*argv, "--json", author=author)
    assert rc == 0, err
    return json.loads(out)


def bare_remote(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def states(root: Path) -> dict[int, tuple]:
    """Every annotation's reviewed state as the index holds it (what `ls` and exports show)."""
    import sqlite3

    conn = sqlite3.connect(root / ".labelreview" / "index.sqlite")
    try:
        return {r[0]: tuple(r[1:]) for r in conn.execute(
            "SELECT id, category, status, last_event, updated_by, reason FROM annotations ORDER BY id")}
    finally:
        conn.close()


def open_conflicts(root: Path) -> dict[int, list[dict]]:
    rows = js("ls", "--conflicts", "--store", root)
    return {r["id"]: r["decisions"] for r in rows}


def verify_ok(root: Path) -> dict:
    """The real `labelreview verify` in its own process."""
    proc = subprocess.run(["labelreview", "verify", "--no-images", "--json", "--store", str(root)],
                          capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], report["problems"]
    return report
