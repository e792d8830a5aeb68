"""Prove the history is intact: hash chains, git reachability, the index, the image files."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import canonical, eventlog, gitrepo, schema
from .store import INDEX_DIR, Store, _rebuild_into


@dataclass(slots=True)
class Problem:
    kind: str  # chain | hash | json | git | index | image
    where: str  # file:line, or table:row
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "message": self.message}


@dataclass(slots=True)
class Report:
    problems: list[Problem] = field(default_factory=list)
    events: int = 0
    writers: int = 0
    uncommitted: int = 0
    images_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "writers": self.writers,
                "uncommitted_events": self.uncommitted, "images_checked": self.images_checked,
                "problems": [p.as_dict() for p in self.problems]}


def verify(store: Store, *, images: bool = True, index: bool = True) -> Report:
    report = Report()
    _check_chains(store.root, report)
    _check_git(store, report)
    if index:
        _check_index(store, report)
    if images:
        _check_images(store, report)
    return report


def _check_chains(root: Path, report: Report) -> None:
    """Every line parses, hashes to itself, and links to the previous one of its writer."""
    heads: dict[str, tuple[int, str]] = {}
    seen: set[str] = set()
    for rel in eventlog.list_files(root):
        writer = eventlog.writer_of(rel)
        size = (root / rel).stat().st_size
        for ll in eventlog.read_lines(root, rel):
            where = f"{rel}:{ll.number}"
            ev = ll.event
            if ev is None:
                report.problems.append(Problem("json", where, f"line is {ll.error}"))
                continue
            report.events += 1
            problem = eventlog.problem_of(ev)
            if problem:
                report.problems.append(Problem("json", where, f"not a valid event: {problem}"))
            if canonical.event_hash(ev) != ev.get("hash"):
                report.problems.append(Problem("hash", where, "event content does not match its hash "
                                               "(the line was edited)"))
            if canonical.dumps(ev) != ll.raw:
                report.problems.append(Problem("hash", where, "line is not in canonical form (re-written)"))
            if ev.get("writer") != writer:
                report.problems.append(Problem("chain", where, f"event of writer {ev.get('writer')!r} "
                                               f"in {writer!r}'s log"))
            seq, prev = heads.get(writer, (0, None))
            if ev.get("seq") != seq + 1:
                report.problems.append(Problem("chain", where, f"sequence {ev.get('seq')} follows {seq}: "
                                               "an event before it was removed or the lines reordered"))
            if ev.get("prev") != prev:
                report.problems.append(Problem("chain", where, "previous-hash link broken: an earlier "
                                               "event was removed, edited or reordered"))
            h = ev.get("hash") if isinstance(ev.get("hash"), str) else None
            if h in seen:
                report.problems.append(Problem("chain", where, "duplicate event"))
            seen.add(h)
            seq_now = ev.get("seq")
            heads[writer] = (seq_now if isinstance(seq_now, int) else 0, ev.get("hash"))
            if str(ev.get("ts", ""))[:10] != rel.rsplit("/", 1)[-1][:10]:
                report.problems.append(Problem("chain", where, f"event time {ev.get('ts')} is not in this day's log"))
        if size and eventlog.torn_tail(root, rel):
            report.problems.append(Problem("json", f"{rel}:end", "unterminated last line"))
    report.writers = len(heads)


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _check_git(store: Store, report: Report) -> None:
    """Every committed version of every log is a prefix of the log now: history only grew."""
    repo = store.repo
    if not repo.head.is_valid():
        return
    root = store.root
    out = repo.git.log("--format=C %H", "--raw", "--no-abbrev", "--", eventlog.EVENTS_DIR)
    commit = None
    versions: dict[str, list[tuple[str, str]]] = {}
    for line in out.splitlines():
        if line.startswith("C "):
            commit = line[2:].strip()
        elif line.startswith(":") and commit:
            meta, path = line.split("\t", 1)
            parts = meta.split()
            versions.setdefault(path, []).append((commit, parts[3]))
    sizes = {}
    shas = sorted({b for v in versions.values() for _, b in v if set(b) != {"0"}})
    if shas:
        from .store import _batch_check

        sizes = _batch_check(repo, shas)
    for path, vers in versions.items():
        file = root / path
        data = file.read_bytes() if file.is_file() else b""
        for commit, blob in vers:
            if set(blob) == {"0"}:
                continue
            size = sizes.get(blob)
            if size is None or size > len(data) or _blob_id(data[:size]) != blob:
                shown = commit[:10]
                if not file.is_file():
                    where, what = path, "is gone"
                else:
                    bad = _first_difference(repo, commit, path, data)
                    where = f"{path}:{bad}" if bad else path
                    what = f"differs from what commit {shown} holds"
                report.problems.append(Problem("git", where, f"{what}: committed events were edited, "
                                               "removed or reordered"))
                break
    _check_imports(store, report)
    report.uncommitted = store.uncommitted()


def _check_imports(store: Store, report: Report) -> None:
    """An import folder never changes once committed: any difference from HEAD is tampering."""
    repo = store.repo
    out = repo.git.diff("HEAD", "--name-status", "--no-renames", "-z", "--", "imports")
    fields = [f for f in out.split("\0") if f]
    for status, path in zip(fields[0::2], fields[1::2]):
        what = {"D": "was deleted", "A": "was added outside an import"}.get(status[:1], "was edited")
        line = None
        if status.startswith("M"):
            line = _first_difference(repo, "HEAD", path, (store.root / path).read_bytes())
        report.problems.append(Problem("import", f"{path}:{line}" if line else path,
                                       f"{what} since it was committed (imports are immutable)"))


def _first_difference(repo, commit: str, path: str, data: bytes) -> int | None:
    try:
        old = repo.git.show(f"{commit}:{path}", stdout_as_string=False)
    except Exception:
        return None
    old_lines, new_lines = old.split(b"\n"), data.split(b"\n")
    for n, (a, b) in enumerate(zip(old_lines, new_lines), start=1):
        if a != b:
            return n
    if len(old_lines) != len(new_lines):
        return min(len(old_lines), len(new_lines))
    return None


def _check_index(store: Store, report: Report) -> None:
    """The live index equals a fresh replay of the committed files."""
    with tempfile.TemporaryDirectory(dir=store.root / INDEX_DIR) as tmp:
        fresh_path = Path(tmp) / "replay.sqlite"
        _rebuild_into(store.root, fresh_path, strict=False)
        fresh = schema.connect(fresh_path)
        try:
            _compare(store.conn, fresh, report)
        finally:
            fresh.close()


#: Every column a user can see through the tool (log, blame, ls, export); not the bookkeeping
#: (``git_commit``, offsets) that legitimately differs until a checkpoint is attributed.
_COMPARE = {
    "annotations": ("id", "image_id, import_id, source, source_id, kind, category, proposed_category, status, "
                    "score, iscrowd, area, bbox, segmentation, keypoints, extra, scores, last_event, "
                    "updated_at, updated_by, reason, comment"),
    "events": ("hash", "writer, seq, ts, author, login, host, action, annotation, image, old, new, reason, "
               "comment, base, undoes, prev, file, line, blind, resolves"),
    "images": ("id", "import_id, file_name, width, height, sha256, source_id, extra"),
    "imports": ("id", "seq, ts, author, login, host, source, format, file, sha256, image_root, images, "
                "annotations, warnings"),
    "categories": ("name", "source_id, supercategory, keypoints, skeleton, extra"),
    "conflicts": ("event", "annotation, base, current, resolved"),
    "fold_alias": ("event", "annotation, target"),
    "blind_pending": ("annotation || '/' || author", "event, new"),
}


def _compare(live: sqlite3.Connection, fresh: sqlite3.Connection, report: Report) -> None:
    for table, (key, cols) in _COMPARE.items():
        sql = f"SELECT {key}, {cols} FROM {table} ORDER BY {key}"
        names = [key, *[c.strip() for c in cols.split(",")]]
        a = {r[0]: tuple(r) for r in live.execute(sql)}
        b = {r[0]: tuple(r) for r in fresh.execute(sql)}

        def where(k, row) -> str:
            # An event is best found by its line in the log (from whichever side still has it).
            if table == "events":
                file, line = row[names.index("file")], row[names.index("line")]
                return f"{file}:{line}"
            return f"index:{table}:{k}"

        for k in sorted(set(a) | set(b), key=str):
            if k not in b:
                report.problems.append(Problem("index", where(k, a[k]),
                                               f"{table} {k} is in the index but not in the logs"))
            elif k not in a:
                report.problems.append(Problem("index", where(k, b[k]),
                                               f"{table} {k} is in the logs but missing from the index"))
            elif a[k] != b[k]:
                diffs = [f"{n}: index {x!r} vs logs {y!r}" for n, x, y in zip(names, a[k], b[k]) if x != y]
                report.problems.append(Problem("index", where(k, b[k]),
                                               "edited behind the tool's back: " + "; ".join(diffs)))


def _check_images(store: Store, report: Report) -> None:
    for im in store.images():
        if not im.sha256:
            continue
        path = Path(im.path)
        report.images_checked += 1
        if not path.is_file():
            report.problems.append(Problem("image", im.file_name, f"image file missing: {path}"))
        elif canonical.file_sha256(path) != im.sha256:
            report.problems.append(Problem("image", im.file_name, "pixels changed since import "
                                           "(sha256 differs): labels may no longer fit the image"))


__all__ = ["verify", "Report", "Problem", "gitrepo"]
