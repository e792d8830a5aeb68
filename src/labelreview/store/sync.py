"""Several machines, one history: git remotes carry the event logs; the fold finds the conflicts.

Each writer (reviewer and host) appends only to its own log files and imports are folders of their
own, so merging two copies of a store is a union of files and git merges it without conflicts.
What git cannot see, two reviewers changing the same annotation differently since a common state,
the fold finds once the new lines are replayed (``Store.recover`` re-folds the annotations they
touch, in the same (ts, writer, seq) order on every machine), and puts it in the adjudication queue.

``sync`` = checkpoint, fetch, merge, replay, push (fetch and merge again if the remote moved).

Two things git would merge but the store must not, are refused before the merge, with nothing
changed: imports made on both sides since the last sync (annotation and image ids are allocated
per machine, from the largest id it knows, so two such imports use the same ids), and the same
writer (author and host) appending from two clones (its hash chain would fork).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..model import LabelreviewError
from . import canonical, eventlog, gitrepo, perms
from .config import CONFIG_NAME
from .store import IMPORTS_DIR, INDEX_DIR, SYNC_JOURNAL, Store, _attribute_commits

_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NL = b"\n"
#: How many times a push rejected because the remote moved is retried (fetch, merge, push again).
PUSH_RETRIES = 5


def _git(root: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    full.setdefault("GIT_TERMINAL_PROMPT", "0")  # never hang on a password prompt
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env=full)
    if check and proc.returncode != 0:
        raise LabelreviewError(f"git {args[0]} failed: {_first_line(proc.stderr) or proc.stdout.strip()}")
    return proc


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[0].removeprefix("fatal:").strip() if lines else ""


# ---------------------------------------------------------------------- remotes and clones


def remotes(store: Store) -> list[str]:
    return [r for r in _git(store.root, "remote").stdout.split() if r]


def add_remote(store: Store, name: str, url: str) -> None:
    """``git remote add``: a bare repository on another path, or ``user@host:path`` over SSH."""
    from ..review.roles import require

    require(store, "config")
    if not _REMOTE_NAME.match(name):
        raise LabelreviewError(f"{name!r}: a remote name is letters, digits, '.', '_' or '-'")
    if name in remotes(store):
        url_now = _git(store.root, "remote", "get-url", name).stdout.strip()
        raise LabelreviewError(f"remote {name!r} already exists ({url_now}); "
                               f"change it with `git remote set-url {name} URL`")
    _git(store.root, "remote", "add", name, url)


def clone(url: str, dest: str | os.PathLike, author: str | None = None) -> Path:
    """``git clone``, then build the index of the copy (it is never in git)."""
    dest = Path(dest).expanduser().resolve()
    if dest.exists() and any(dest.iterdir()):
        raise LabelreviewError(f"{dest}: exists and is not empty")
    made = not dest.exists()
    proc = subprocess.run(["git", "clone", "-q", "-c", "core.sharedRepository=group", url, str(dest)],
                          capture_output=True, text=True, env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
    if proc.returncode != 0:
        raise LabelreviewError(f"git clone {url} failed: {_first_line(proc.stderr)}")
    if not (dest / CONFIG_NAME).is_file():
        if made:
            shutil.rmtree(dest, ignore_errors=True)
        raise LabelreviewError(f"{url}: not a labelreview store (no {CONFIG_NAME} in it)")
    for d in (dest, dest / eventlog.EVENTS_DIR, dest / IMPORTS_DIR):
        if d.is_dir() and (d != dest or made):
            perms._chmod(d, perms.DIR_MODE)
    perms.shared_dir(dest / INDEX_DIR)
    Store.open(dest, author=author).close()  # builds the index from the cloned files
    return dest


# ---------------------------------------------------------------------- sync


def _default_remote(store: Store, name: str | None) -> str:
    have = remotes(store)
    if name:
        if name not in have:
            raise LabelreviewError(f"no remote {name!r}; add one with `labelreview remote add {name} URL`"
                                   + (f" (remotes: {', '.join(have)})" if have else ""))
        return name
    if len(have) == 1:
        return have[0]
    if "origin" in have:
        return "origin"
    if not have:
        raise LabelreviewError("this store has no remote; add one with `labelreview remote add NAME URL`")
    raise LabelreviewError(f"several remotes ({', '.join(have)}): name one, e.g. `labelreview sync {have[0]}`")


def _branch(store: Store) -> str:
    proc = _git(store.root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if proc.returncode != 0:
        raise LabelreviewError(f"{store.root}: HEAD is detached (a past revision is checked out); "
                               "check out the store's branch before syncing")
    return proc.stdout.strip()


def _ref_exists(root: Path, ref: str) -> bool:
    return _git(root, "rev-parse", "--verify", "--quiet", ref, check=False).returncode == 0


def _check_own_logs(store: Store, ref: str) -> None:
    """The remote's copy of each of this writer's logs must be a prefix of ours (we are its only
    writer); otherwise another clone writes as the same author on the same host."""
    writer = store.identity.writer
    out = _git(store.root, "ls-tree", "-r", "-l", "-z", ref, "--", f"{eventlog.EVENTS_DIR}/{writer}/").stdout
    for entry in filter(None, out.split("\0")):
        meta, path = entry.split("\t", 1)
        _mode, _kind, blob, size = meta.split()
        local = store.root / path
        data = local.read_bytes()[: int(size)] if local.is_file() else b""
        if len(data) != int(size) or gitrepo.blob_id(data) != blob:
            raise LabelreviewError(
                f"not merged: the remote holds events of writer {writer} ({path}) that this store does "
                "not, so another clone is writing as the same author on the same host (or a copy of "
                "this store folder, made with cp -r instead of `labelreview clone`) and their hash "
                "chains would fork. Nothing was changed. Give each clone its own author (--author or "
                "LABELREVIEW_AUTHOR), or review from one clone. Decisions made here as this author "
                "since that other clone synced cannot be merged: clone the remote anew "
                "(`labelreview clone URL DIR`) and make them again there (`labelreview log --by "
                f"{store.identity.author_key!r} --store {store.root}` lists them).")


def _tree(root: Path, rev: str, paths: tuple[str, ...] = (eventlog.EVENTS_DIR, IMPORTS_DIR)) -> dict[str, tuple[str, int]]:
    """path -> (blob id, size) of the files at ``rev`` under ``paths`` (the event logs and import
    files; every file for ``()``)."""
    out = _git(root, "ls-tree", "-r", "-l", "-z", rev, "--", *paths).stdout
    tree: dict[str, tuple[str, int]] = {}
    for entry in filter(None, out.split("\0")):
        meta, path = entry.split("\t", 1)
        _mode, kind, blob, size = meta.split()
        if kind == "blob":
            tree[path] = (blob, int(size))
    return tree


def _blobs(root: Path, ids: list[str]) -> dict[str, bytes]:
    """The contents of these blobs (one ``git cat-file --batch``)."""
    if not ids:
        return {}
    proc = subprocess.run(["git", "cat-file", "--batch"], cwd=root, input="\n".join(ids).encode() + b"\n",
                          capture_output=True)
    data, pos, out = proc.stdout, 0, {}
    for blob in ids:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        head = data[pos:nl].split()
        if len(head) != 3:  # "<id> missing"
            pos = nl + 1
            continue
        size = int(head[2])
        out[blob] = data[nl + 1:nl + 1 + size]
        pos = nl + 1 + size + 1
    return out


def _bad_line(data: bytes, start: int) -> tuple[int, str] | None:
    """The first line of a log (from byte ``start``, a line boundary) that is not an event in canonical
    form hashing to itself: (its number, what is wrong), or None."""
    number = data.count(b"\n", 0, start)
    for raw in data[start:].split(b"\n")[:-1]:
        number += 1
        try:
            ev = canonical.loads(raw)
        except ValueError:
            return number, "is not valid JSON"
        if not isinstance(ev, dict) or eventlog.problem_of(ev):
            return number, "is not an event"
        # (A canonical line's hash body is the line without its "hash" member: keys are sorted.)
        i = raw.find(b',"hash":"')
        if (canonical.dumps(ev) != raw or i < 0 or raw[i + 9:i + 73] != ev["hash"].encode()
                or hashlib.sha256(raw[:i] + raw[i + 74:]).hexdigest() != ev["hash"]):
            return number, "does not match its hash (it was edited)"
    return None


def _first_difference(a: bytes, b: bytes) -> int:
    """The number of the first line where two logs differ."""
    for n, (x, y) in enumerate(zip(a.split(b"\n"), b.split(b"\n")), start=1):
        if x != y:
            return n
    return min(a.count(b"\n"), b.count(b"\n")) + 1


def _check_history(store: Store, ref: str, remote: str) -> None:
    """What the remote brings must extend this store's history: every event log it shares with this
    one holds this one's lines as they are (logs are append-only), no log or import file committed
    here was deleted or changed there, and every line it adds is an event hashing to itself. A
    remote whose history was rewritten (an event line edited, a log removed, then force-pushed) is
    refused before git merges it, which would take the edit or the deletion silently."""
    root = store.root
    base = _git(root, "merge-base", "HEAD", ref, check=False).stdout.strip()
    here, there = _tree(root, "HEAD"), _tree(root, ref)
    based = _tree(root, base) if base else {}
    logs = [p for p, (blob, _) in there.items() if p.startswith(eventlog.EVENTS_DIR + "/")
            and p.endswith(".jsonl") and here.get(p, ("",))[0] != blob]
    data = _blobs(root, sorted({there[p][0] for p in logs} | {here[p][0] for p in logs if p in here}
                               | {based[p][0] for p in logs if p in based}))
    problems = []
    # Per writer, a log where this store holds events the remote has not, and one where the remote
    # holds events this store has not: a writer's chain is one line of events, so both at once
    # means two copies of the store wrote as that writer (a fork), not a store behind another.
    more_here: dict[str, str] = {}
    more_there: dict[str, str] = {}
    for path in sorted(logs):
        writer = eventlog.writer_of(path)
        theirs = data.get(there[path][0], b"")
        ours = data.get(here[path][0], b"") if path in here else b""
        # The log at the commit both stores share: the remote's must go on from it (a log only
        # grows). A remote that cut lines of it was taken for one behind this store, or for a fork,
        # and git's merge then removed the lines from this store's own log too.
        shared = data.get(based[path][0], b"") if path in based else b""
        if theirs.startswith(ours):  # what they add to this log must be events as written
            bad = _bad_line(theirs, len(ours))
            if bad:
                problems.append(f"{path}:{bad[0]} {bad[1]}")
            else:
                more_there.setdefault(writer, f"{path}:{ours.count(_NL) + 1}")
        elif ours.startswith(theirs):
            if len(shared) > len(theirs):
                problems.append(f"{path}:{theirs.count(_NL) + 1} and the lines after it were removed there")
                continue
            more_here.setdefault(writer, f"{path}:{theirs.count(_NL) + 1}")
            continue  # this store holds more of the log than the remote: it goes there on push
        else:
            line = _first_difference(ours, theirs)
            bad = _bad_line(theirs, len(b"\n".join(theirs.split(b"\n")[:line - 1])) + (line > 1))
            if bad:
                problems.append(f"{path}:{bad[0]} {bad[1]}")
            elif not theirs.startswith(shared):  # (each line an event as written, but one was cut)
                problems.append(f"{path}:{_first_difference(shared, theirs)} differs from the line both stores "
                                "held (lines were removed or reordered there)")
            elif _bad_line(ours, len(b"\n".join(ours.split(b"\n")[:line - 1])) + (line > 1)) is None:
                # Both lines are events as written, each going on from the same one: a fork.
                more_here.setdefault(writer, f"{path}:{line}")
                more_there.setdefault(writer, f"{path}:{line}")
            elif writer != store.identity.writer:  # (this writer's own: _check_own_logs)
                problems.append(f"{path}:{line} differs from the line here (lines were edited, removed or "
                                "reordered there)")
    for path in sorted(here):
        if path.startswith(eventlog.EVENTS_DIR + "/") and path.endswith(".jsonl") and path not in there:
            more_here.setdefault(eventlog.writer_of(path), f"{path}:1")
    forked = sorted(w for w in more_here.keys() & more_there.keys() if w != store.identity.writer)
    if forked and not problems:
        w = forked[0]
        raise LabelreviewError(
            f"not merged: writer {w} (an author on a host) recorded decisions here ({more_here[w]}) that "
            f"{remote} has not, and {remote} holds decisions of {w} ({more_there[w]}) that this store has "
            f"not: that reviewer worked in two copies of this store (a store folder copied, with cp -r, "
            f"instead of cloned with `labelreview clone`, or two clones with the same author on one host), "
            f"and their hash chain would fork (`labelreview verify` would fail on every store that took "
            f"both). Nothing was changed here. The two copies cannot be merged: keep {remote}'s, clone it "
            f"(`labelreview clone URL DIR`), and make there again the decisions of this copy it lacks "
            f"(`labelreview log --store {store.root}` lists them); from then on, review in one copy only, "
            f"or give each copy its own author (--author or LABELREVIEW_AUTHOR).")
    for path, (blob, _) in sorted(here.items()):
        if path in based and path not in there:
            problems.append(f"{path} was deleted there")
        elif path.startswith(IMPORTS_DIR + "/") and path in there and there[path][0] != blob:
            problems.append(f"{path} was changed there (imports never change)")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise LabelreviewError(
            f"not merged: the history on {remote} does not extend this store's: {shown}. Committed events "
            "were edited or removed there. Nothing was changed here. "
            f"Find who did it (`git -C {root} log {ref}`), and restore {remote} from a clone whose "
            "`labelreview verify` passes; then sync again.")


def _import_ranges_here(store: Store, import_id: str) -> dict[str, tuple[int, int] | None]:
    conn = store.conn
    a = conn.execute("SELECT min(id), max(id) FROM annotations WHERE import_id=?", (import_id,)).fetchone()
    i = conn.execute("SELECT min(id), max(id) FROM images WHERE import_id=?", (import_id,)).fetchone()
    return {"annotations": (a[0], a[1]) if a[0] is not None else None,
            "images": (i[0], i[1]) if i[0] is not None else None}


def _import_ranges_there(store: Store, ref: str, import_id: str) -> dict[str, tuple[int, int] | None]:
    def show(name: str) -> bytes:
        proc = subprocess.run(["git", "cat-file", "-p", f"{ref}:{IMPORTS_DIR}/{import_id}/{name}"],
                              cwd=store.root, capture_output=True)
        return proc.stdout if proc.returncode == 0 else b""

    manifest = canonical.loads(show("manifest.json") or b"{}")
    ids: dict[str, list[int]] = {"annotations": [], "images": []}
    for line in show("images.jsonl").splitlines():
        if line.strip():
            r = canonical.loads(line)
            if not r.get("reused"):
                ids["images"].append(r["id"])
    for shard in manifest.get("shards") or []:
        for line in show(shard).splitlines():
            if line.strip():
                ids["annotations"].append(canonical.loads(line)["id"])
    return {k: (min(v), max(v)) if v else None for k, v in ids.items()}


def _check_imports(store: Store, ref: str, remote: str) -> None:
    """Imports added on both sides since the last sync must not share annotation or image ids."""
    def folders(rev: str) -> set[str]:
        out = _git(store.root, "ls-tree", "-d", "--name-only", f"{rev}:{IMPORTS_DIR}", check=False).stdout
        return {x for x in out.split() if x}

    here, there = folders("HEAD"), folders(ref)
    ours, theirs = sorted(here - there), sorted(there - here)
    if not ours or not theirs:
        return
    clashes = []
    for mine in ours:
        rm = _import_ranges_here(store, mine)
        for other in theirs:
            ro = _import_ranges_there(store, ref, other)
            for kind in ("annotations", "images"):
                a, b = rm[kind], ro[kind]
                if a and b and a[0] <= b[1] and b[0] <= a[1]:
                    clashes.append(f"{kind} {a[0]}-{a[1]} of import {mine} here and {b[0]}-{b[1]} of "
                                   f"import {other} on {remote}")
    if clashes:
        raise LabelreviewError(
            "not merged: imports were made here and on the remote since the last sync, and their ids "
            f"overlap ({'; '.join(clashes)}). Nothing was changed. Ids are numbered per machine, so "
            "import on one machine at a time and sync right after. To go on: keep the remote's import "
            f"(`labelreview clone` {remote}'s URL into a new folder) and import the file there again, "
            "then sync; decisions made here on the clashing import cannot be carried over.")


def _fetch(store: Store, remote: str) -> None:
    """``git fetch --tags``; a tag the remote holds at another commit than this store is named.

    (Not ``-q``: git then says nothing of a ref it refused to update, and the failure had no reason.)"""
    proc = _git(store.root, "fetch", "--tags", remote, check=False)
    if proc.returncode == 0:
        return
    clobbered = re.findall(r"\[rejected\]\s+(\S+)\s+->\s+\S+\s+\(would clobber existing tag\)", proc.stderr)
    if clobbered:
        here = {t: _git(store.root, "rev-parse", "--short=10", f"refs/tags/{t}^{{}}", check=False).stdout.strip()
                for t in clobbered}
        there = {}
        for line in _git(store.root, "ls-remote", "--tags", remote, check=False).stdout.splitlines():
            sha, _, ref = line.partition("\t")
            tag = ref.removeprefix("refs/tags/")
            if tag.endswith("^{}"):
                there[tag[:-3]] = sha[:10]  # the commit an annotated tag names
            else:
                there.setdefault(tag, sha[:10])
        tags = ", ".join(f"{t} (here {here[t] or '?'}, on {remote} {there.get(t, '?')})" for t in clobbered)
        raise LabelreviewError(
            f"not synced: release tag(s) {tags} name another commit on {remote} than here: a release of "
            f"that name was also made, or moved, there. Releases never move; nothing was changed here "
            f"and this store's tags are kept. Agree which one is the release: keep this one with "
            f"`git -C {store.root} push --force {remote} refs/tags/TAG`, or take {remote}'s with "
            f"`git -C {store.root} fetch --force {remote} refs/tags/TAG:refs/tags/TAG`; then sync again.")
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    why = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))), lines[-1] if lines else "")
    url = _git(store.root, "remote", "get-url", remote, check=False).stdout.strip() or remote
    raise LabelreviewError(
        f"git fetch failed: {why.removeprefix('fatal:').removeprefix('error:').strip()}. Nothing was merged or "
        f"sent; this store's decisions are safe here. Check that {remote} ({url}) can be reached; if it moved, "
        f"`git -C {store.root} remote set-url {remote} NEW-URL`; then sync again.")


def _merge(store: Store, ref: str, remote: str) -> str:
    """Merge the fetched branch; a merge git cannot make cleanly is undone and explained."""
    repo = store.repo
    if _git(store.root, "merge-base", "--is-ancestor", ref, "HEAD", check=False).returncode == 0:
        return "up to date"
    ff = _git(store.root, "merge-base", "--is-ancestor", "HEAD", ref, check=False).returncode == 0
    env = gitrepo.commit_env(store.identity, repo)
    proc = _git(store.root, "merge", "--no-edit", "-q", "-m", f"labelreview sync: merge {remote}", ref,
                env=env, check=False)
    if proc.returncode == 0:
        return "fast-forward" if ff else "merged"
    conflicted = [p for p in _git(store.root, "diff", "--name-only", "--diff-filter=U", check=False).stdout.split() if p]
    _git(store.root, "merge", "--abort", check=False)
    if conflicted:
        hint = ""
        if any(p.startswith(eventlog.EVENTS_DIR + "/") for p in conflicted):
            hint = (" An event log can only conflict when one author writes from two clones on the same "
                    "host: give each clone its own author.")
        elif CONFIG_NAME in conflicted:
            hint = (f" {CONFIG_NAME} was changed on both sides: take {remote}'s version (`git -C {store.root} "
                    f"checkout {ref} -- {CONFIG_NAME}`), `labelreview commit`, and sync again; then make your "
                    "change again on top of it, `labelreview commit`, and sync.")
        raise LabelreviewError(f"git could not merge {remote}: {', '.join(conflicted)} changed on both "
                               f"sides. The merge was undone; nothing was lost.{hint}")
    said = (proc.stderr or "") + (proc.stdout or "")
    if "local changes to the following files would be overwritten" in said:
        # Files changed here and not committed (labelreview.toml edited by someone who may not
        # commit it: a checkpoint leaves it out): git names them on the lines that follow.
        files = [ln.strip() for ln in said.splitlines() if ln.startswith(("\t", "    "))]
        hint = ""
        if CONFIG_NAME in files:
            hint = (f" {CONFIG_NAME} has changes made here that only an admin may commit (roles in "
                    f"{CONFIG_NAME}): ask an admin to make them, and drop yours with "
                    f"`git -C {store.root} checkout -- {CONFIG_NAME}`; then sync again.")
        raise LabelreviewError(f"git could not merge {remote}: {', '.join(files) or 'files'} changed here and not "
                               f"committed would be overwritten. Nothing was merged; nothing was lost.{hint}")
    raise LabelreviewError(f"git could not merge {remote}: {_first_line(proc.stderr) or _first_line(proc.stdout)}. "
                           "The merge was undone; nothing was lost.")


def _write_journal(store: Store, ref: str, remote: str) -> Path:
    """Note, durably, what this sync is about to merge (see ``finish_killed_merge``)."""
    path = store.root / INDEX_DIR / SYNC_JOURNAL
    head = _git(store.root, "rev-parse", "HEAD").stdout.strip()
    theirs = _git(store.root, "rev-parse", ref).stdout.strip()
    with open(path, "wb") as f:
        f.write(canonical.dumps({"head": head, "merging": theirs, "remote": remote}) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def undo_conflicted_merge(root: Path, journal: Path) -> bool:
    """git stopped the sync's merge on a conflict (labelreview.toml changed on both sides) and the
    sync was killed before it undid the merge: the config holds git's conflict markers, and no
    command could read it. Undo that merge, as the sync would have (``git merge --abort``), when it
    is the one the journal names. True when it did."""
    merge_head = root / ".git" / "MERGE_HEAD"
    try:
        theirs = json.loads(journal.read_text())["merging"]
        merging = merge_head.read_text().strip()
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if merging != theirs:
        return False  # someone's own merge: operation_in_progress names it with its way out
    _git(root, "update-index", "-q", "--refresh", check=False)
    if _git(root, "merge", "--abort", check=False).returncode == 0:
        return True
    # (git refuses when a file differs from what it staged.) The files it could not merge back as
    # HEAD has them, the merge's state dropped; finish_killed_merge puts back what else it wrote.
    unmerged = sorted({p for p in _git(root, "diff", "--name-only", "-z", "--diff-filter=U", check=False)
                      .stdout.split("\0") if p})
    _git(root, "reset", "-q", check=False)
    if unmerged:
        _git(root, "checkout", "HEAD", "--", *unmerged, check=False)
    return not merge_head.exists()


def finish_killed_merge(store: Store, journal: Path) -> dict[str, Any]:
    """A sync was killed while ``git merge`` wrote the remote's files into the store, before git
    moved HEAD: those files lie in the working tree, uncommitted. Left so, the next checkpoint
    committed them again as this store's (the other reviewers' decisions in commits of their own
    name that they never made, twice in the history). Called under the git lock, before anything
    replays the logs: put the files the merge was writing back as HEAD has them, then make the
    merge again (its commits are all here, fetched). Returns what was done, for the recovery log.

    Only a file that is exactly what the merge was writing (a part of the remote's version, or the
    file missing where git was replacing it) is touched; anything else stays, and git's merge then
    says what is in its way."""
    root = store.root
    try:
        plan = json.loads(journal.read_text())
        head, theirs, remote = plan["head"], plan["merging"], plan.get("remote") or "the remote"
    except (OSError, ValueError, KeyError, TypeError):
        return {"interrupted_sync": "journal unreadable; nothing to finish"}
    now = _git(root, "rev-parse", "HEAD", check=False).stdout.strip()
    if now != head:
        return {"interrupted_sync": "killed after its merge", "head": now}  # the replay follows
    if _git(root, "cat-file", "-e", f"{theirs}^{{commit}}", check=False).returncode != 0:
        return {"interrupted_sync": f"{theirs} is not in this store; nothing to finish"}
    aborted = undo_conflicted_merge(root, journal)
    _git(root, "reset", "-q")  # git had staged the merge's files: the index back to HEAD
    here, there = ({p: blob for p, (blob, _) in _tree(root, rev, ()).items()} for rev in (head, theirs))
    paths = sorted(p for p in here.keys() | there.keys() if here.get(p) != there.get(p))
    # A file changed on both sides (labelreview.toml) is merged by git, not copied: what git was
    # writing into it is its 3-way merge, which ``git merge-tree`` computes again without touching
    # the working tree (git 2.38+; with an older git such a file is left for the merge to name).
    merged = _merged_blobs(root, head, theirs, paths, here, there)
    data = _blobs(root, sorted({here[p] for p in paths if p in here} | {there[p] for p in paths if p in there}
                               | set(merged.values())))
    restored, removed = [], []
    for path in paths:
        full = root / path
        try:
            now_bytes = full.read_bytes() if full.is_file() else None
        except OSError:
            continue
        ours = data.get(here[path]) if path in here else None
        new = data.get(there[path], b"") if path in there else b""
        both = data.get(merged[path]) if path in merged else None
        if now_bytes == ours:
            continue  # git had not got to it (or left it as it was)
        if now_bytes is not None and not new.startswith(now_bytes) and not (both and both.startswith(now_bytes)):
            continue  # not what the merge was writing: git names it if it is in the way
        if ours is None:
            full.unlink()
            removed.append(path)
        else:
            tmp = full.with_name(f".{full.name}.{os.getpid()}.restore")
            tmp.write_bytes(ours)
            os.replace(tmp, full)
            restored.append(path)
    note: dict[str, Any] = {"interrupted_sync": "merge made again", "merging": theirs,
                            "put_back": restored, "removed_half_merged": removed}
    if aborted:
        note["aborted_conflicted_merge"] = True
    try:
        note["merge"] = _merge(store, theirs, remote)
    except LabelreviewError as e:  # (its files are put back: the store is as before that sync)
        note["merge"] = f"failed: {e}"
    return note


def _merged_blobs(root: Path, head: str, theirs: str, paths: list[str], here: dict[str, str],
                  there: dict[str, str]) -> dict[str, str]:
    """path -> blob of git's 3-way merge of ``head`` and ``theirs``, for those of ``paths`` that
    changed on both sides since their merge base (empty when git cannot say: no ``merge-tree
    --write-tree``)."""
    base = _git(root, "merge-base", head, theirs, check=False).stdout.strip()
    if not base:
        return {}
    at_base = {p: blob for p, (blob, _) in _tree(root, base, ()).items()}
    both = [p for p in paths if p in here and p in there and at_base.get(p) not in (here[p], there[p])]
    if not both:
        return {}
    proc = _git(root, "merge-tree", "--write-tree", head, theirs, check=False)
    tree = proc.stdout.split("\n", 1)[0].strip() if proc.returncode in (0, 1) else ""
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", tree):
        return {}
    result = {p: blob for p, (blob, _) in _tree(root, tree, ()).items()}
    return {p: result[p] for p in both if p in result}


def sync(store: Store, remote: str | None = None, *, push: bool = True) -> dict[str, Any]:
    """Checkpoint, fetch, merge, replay the new events, push. Returns what happened."""
    name = _default_remote(store, remote)
    branch = _branch(store)
    ref = f"refs/remotes/{name}/{branch}"
    busy = gitrepo.operation_in_progress(Path(store.repo.git_dir))
    if busy:
        raise LabelreviewError(f"not synced: {busy} Nothing was changed; the decisions are safe in the event logs.")
    store.checkpoint()
    events_before = store.counts()["events"]
    open_before = {c["annotation"] for c in store.open_conflicts()}
    merges: list[str] = []
    pushed = sent = False
    attempts = 0
    touched: set[int] = set()
    while True:
        attempts += 1
        # The network parts (fetch, push) run without the store's git lock: a slow remote must not
        # hold up the other reviewers' checkpoints. The merge and the replay hold it.
        _fetch(store, name)
        if _ref_exists(store.root, ref):
            with gitrepo.file_lock(store.root / INDEX_DIR / "git.lock"):
                _check_history(store, ref, name)
                _check_own_logs(store, ref)
                _check_imports(store, ref, name)
                journal = _write_journal(store, ref, name)
                try:
                    merges.append(_merge(store, ref, name))
                except LabelreviewError:  # git refused or the merge was undone: nothing to finish
                    journal.unlink(missing_ok=True)
                    raise
                # (Interrupted from here on, by Ctrl-C as by kill -9, the journal stays: the next
                # command finishes the merge, or only the replay and the commits, as the case is.)
                store.reload_config()
                store.recover()
                touched |= store.last_caught_up
                _attribute_commits(store.root, store.conn)
                journal.unlink(missing_ok=True)
        if not push:
            break
        proc = _git(store.root, "push", "--porcelain", "--follow-tags", name, f"HEAD:refs/heads/{branch}",
                    check=False)
        if proc.returncode == 0:
            pushed = True
            # Git's own word on the branch ("=" up to date), not the remote-tracking ref: that one is
            # stale when the remote was made again empty (a fetch does not prune it), and then the
            # sync said the remote was up to date while it pushed everything.
            sent = any(ln.split("\t")[1:2] == [f"HEAD:refs/heads/{branch}"] and not ln.startswith("=")
                       for ln in proc.stdout.splitlines())
            break
        err = proc.stderr + proc.stdout  # (with --porcelain, each refused ref's reason is on stdout)
        # Only a remote that moved is worth fetching, merging and pushing again; a hook or a policy
        # that refuses the push ("[remote rejected] ... hook declined") refuses it again.
        # ("cannot lock ref ... but expected": another push moved the branch while this one ran)
        moved = "fetch first" in err or "non-fast-forward" in err or "cannot lock ref" in err
        if "refusing to update checked out branch" in err or "branch is currently checked out" in err:
            url = _git(store.root, "remote", "get-url", name, check=False).stdout.strip() or name
            raise LabelreviewError(
                f"git push to {name} refused: {url} is a store someone reviews in (not a bare repository), "
                f"and git does not push into the branch it has checked out. Everything from {name} is merged "
                f"and safe here. Sync with it using `labelreview sync {name} --no-push`, and let that store take "
                f"this one's decisions the same way (`labelreview remote add NAME {store.root}` there, then "
                f"`labelreview sync NAME --no-push`); or share through a bare repository (`git init --bare "
                f"PATH`, then `labelreview remote add` it in both).")
        if not moved or attempts >= PUSH_RETRIES:
            raise LabelreviewError(f"git push to {name} failed: {_first_line(err)}. Everything is merged "
                                   "and safe here; run `labelreview sync` again to retry the push.")
    open_after = store.open_conflicts()
    return {
        "remote": name, "branch": branch, "merge": merges[-1] if merges else "remote is empty",
        "events_received": store.counts()["events"] - events_before, "annotations_refolded": len(touched),
        "new_conflicts": sorted({c["annotation"] for c in open_after} - open_before),
        "conflicts": len(open_after), "pushed": pushed, "sent": pushed and sent, "attempts": attempts,
        "commit": store.repo.head.commit.hexsha,
    }
