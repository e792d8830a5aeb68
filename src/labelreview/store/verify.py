"""Prove the history is intact: hash chains, git reachability, the index, the image files."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..model import LabelreviewError
from . import canonical, eventlog, gitrepo, replay
from .replay import event_row
from .store import Store


@dataclass(slots=True)
class Problem:
    kind: str  # chain | hash | json | git | index | image | import | event
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


#: Logs at least this big (all together) are checked in a second process while this one replays them.
PARALLEL_BYTES = 16 << 20


def verify(store: Store, *, images: bool = True, index: bool = True) -> Report:
    """Chains, git, index, images. With big logs (and two cores) the chains and the events table are
    checked in a second process while this one checks git and replays the rest of the index."""
    import git

    with replay.no_gc():  # (until the replay is gone: else a full collection walks it when GC resumes)
        try:
            report = _verify(store, images=images, index=index)
        except git.GitCommandError as e:  # git cannot run here (a full disk: it cannot even read)
            err = str(e.stderr or "").strip().removeprefix("stderr:").strip().strip("'").strip()
            raise LabelreviewError(f"{store.root}: verify cannot read the store's git history "
                                   f"({err or e}); nothing was checked") from None
    return report


def _verify(store: Store, *, images: bool, index: bool) -> Report:
    report = Report()
    root = store.root
    files = eventlog.list_files(root)
    index_path = store.index_uri if index else None
    chains = None
    if (os.cpu_count() or 1) > 1 and sum((root / f).stat().st_size for f in files) >= PARALLEL_BYTES:
        chains = replay.Child(_chains_and_events, str(root), files, index_path)
    try:
        if chains is None:
            result = _chains_and_events(str(root), files, index_path)
        later = Report()
        _check_git(store, later)
        tables = _check_index(store) if index else {}
        if chains is not None:
            result = chains.result()
    except BaseException:  # (Ctrl-C: the second process's check is of no use any more)
        if chains is not None:
            chains.kill()
        raise
    finally:
        if chains is not None:
            chains.close()
    chain_problems, report.events, report.writers, event_problems = result
    report.problems = chain_problems + later.problems
    report.uncommitted = later.uncommitted
    if index:
        tables["events"] = event_problems
        for table in (*_COMPARE, _ORPHANS):
            report.problems += tables.get(table, [])
    if images:
        _check_images(store, report)
    return report


def _check_chains(root: Path, report: Report) -> list:
    """Every line parses, hashes to itself, and links to the previous one of its writer.

    Returns the events a replay keeps: (file, line, end offset, event) of every line that is an
    event, the first time its hash appears."""
    with replay.no_gc():
        problems, events, writers, kept, _ = _scan_chains(root, eventlog.list_files(root))
    report.problems += problems
    report.events += events
    report.writers = writers
    return kept


def _chains_and_events(root: str, files: list[str], index_uri: str | None) -> tuple:
    """The chain check, then the events table of the live index against the lines (a second process)."""
    from .replay import no_gc

    with no_gc():
        problems, events, writers, kept, logs = _scan_chains(Path(root), files)
        event_problems: list[Problem] = []
        if index_uri is not None:
            # The commit that first holds each event (what log and blame print), as a rebuild finds it.
            if gitrepo.damaged_head(Path(root)):  # no history to attribute from (reported by _check_git)
                commits = [_UNKNOWN] * len(kept)
            else:
                commits = replay.attribute([(None, None, None, rel, end, number, ev) for rel, number, end, ev in kept],
                                           replay.commit_blobs(Path(root)))
            fresh: dict[Any, tuple] = {}
            for (rel, number, end, ev), commit in zip(kept, commits):
                r = event_row(ev, rel, number, end)
                fresh[r[0]] = r + (commit,)  # (hash, *the compared columns)
            del kept, commits
            conn = sqlite3.connect(index_uri, uri=True, timeout=30)  # (a read-only URI)
            try:
                key, cols = _COMPARE["events"]
                rows = conn.execute(f"SELECT {key}, {cols} FROM events")
                event_problems = _compare_rows("events", key, cols, rows, fresh)
                # How far the index has read each log: where the next command goes on reading it.
                key, cols = _COMPARE["event_files"]
                rows = [r for r in conn.execute(f"SELECT {key}, {cols} FROM event_files")
                        if r[2] or r[0] in logs]  # (a log with no whole line yet may have no row)
                event_problems += _compare_rows("event_files", key, cols, rows, logs)
                event_problems += _writer_order(conn)
            finally:
                conn.close()
    return problems, events, writers, event_problems


def _writer_order(conn: sqlite3.Connection) -> list[Problem]:
    """Each writer's events in the index in the order it wrote them (``ord`` follows ``seq``).

    ``ord`` is the index's own order of arrival, which no log holds (after a sync, another
    machine's events arrive late), so it is not compared with the replay's. But one writer's events
    always arrive in the order written, and ``undo`` takes back the latest by ``ord``: an ``ord``
    edited out of that order makes it take back another decision. One problem per writer."""
    last: dict[Any, int] = {}  # writer -> the highest seq of its events so far
    out: dict[Any, Problem] = {}
    for o, writer, seq in conn.execute("SELECT ord, writer, seq FROM events ORDER BY ord"):
        if type(seq) is not int:  # (a seq of another type: the events table comparison names it)
            continue
        before = last.get(writer)
        if before is not None and seq <= before and writer not in out:
            file, line = conn.execute("SELECT file, line FROM events WHERE ord=?", (o,)).fetchone()
            out[writer] = Problem("index", f"{file}:{line}", f"the index has writer {writer}'s events out of the "
                                  f"order it wrote them (seq {seq} after seq {before}, ord {o}): `undo` would "
                                  "take back another decision than the latest; `labelreview reindex` rebuilds "
                                  "the index")
        if before is None or seq > before:
            last[writer] = seq
    return list(out.values())


def _scan_chains(root: Path, files: list[str]) -> tuple[list[Problem], int, int, list, dict]:
    problems: list[Problem] = []
    add = problems.append
    heads: dict[str, tuple[int, str]] = {}
    seen: set[str] = set()
    kept_hashes: set[str] = set()
    kept: list[tuple[str, int, int, dict]] = []
    logs: dict[str, tuple] = {}  # each log with a whole line: (path, writer, bytes of whole lines, lines)
    n_events = 0
    loads, dumps, sha256 = orjson.loads, canonical.dumps, hashlib.sha256
    problem_of, event_hash = eventlog.problem_of, canonical.event_hash
    for rel in files:
        writer = eventlog.writer_of(rel)
        day = rel.rsplit("/", 1)[-1][:10]
        seq, prev = heads.get(writer, (0, None))
        number = end = 0
        for number, end, raw in eventlog.lines_of(root / rel):  # an unterminated tail: reported below
            try:
                ev = loads(raw)
            except ValueError as e:
                add(Problem("json", f"{rel}:{number}", f"line is not valid JSON ({e})"))
                continue
            if type(ev) is not dict:
                add(Problem("json", f"{rel}:{number}", "line is not a JSON object"))
                continue
            n_events += 1
            get = ev.get
            h = get("hash")
            problem = problem_of(ev)
            if problem:
                add(Problem("json", f"{rel}:{number}", f"not a valid event: {problem}"))
            elif h not in kept_hashes:  # what a replay keeps: the first line of each event
                kept_hashes.add(h)
                kept.append((rel, number, end, ev))
            canonical_form = dumps(ev) == raw
            # A canonical line's hash body is the line without its "hash" member (keys are sorted).
            hashed = False
            if canonical_form and type(h) is str and len(h) == 64:
                i = raw.find(b',"hash":"')
                if i > 0 and raw[i + 9:i + 73] == h.encode() and raw[i + 73:i + 74] == b'"':
                    hashed = sha256(raw[:i] + raw[i + 74:]).hexdigest() == h
            if not hashed and event_hash(ev) != h:
                add(Problem("hash", f"{rel}:{number}", "event content does not match its hash "
                            "(the line was edited)"))
            if not canonical_form:
                add(Problem("hash", f"{rel}:{number}", "line is not in canonical form (re-written)"))
            ev_writer, ev_seq = get("writer"), get("seq")
            if ev_writer != writer:
                add(Problem("chain", f"{rel}:{number}", f"event of writer {ev_writer!r} in {writer!r}'s log"))
            if ev_seq != seq + 1:
                add(Problem("chain", f"{rel}:{number}", f"sequence {ev_seq} follows {seq}: "
                            "an event before it was removed or the lines reordered"))
            if get("prev") != prev:
                add(Problem("chain", f"{rel}:{number}", "previous-hash link broken: an earlier "
                            "event was removed, edited or reordered"))
            hs = h if isinstance(h, str) else None
            if hs in seen:
                add(Problem("chain", f"{rel}:{number}", "duplicate event"))
            seen.add(hs)
            seq, prev = (ev_seq if isinstance(ev_seq, int) else 0), h
            heads[writer] = (seq, prev)
            ts = get("ts", "")
            if (ts[:10] if type(ts) is str else str(ts)[:10]) != day:
                add(Problem("chain", f"{rel}:{number}", f"event time {get('ts')} is not in this day's log"))
        if number:
            logs[rel] = (rel, writer, end, number)
        if eventlog.torn_tail(root, rel):
            add(Problem("json", f"{rel}:end", "unterminated last line"))
    return problems, n_events, len(heads), kept, logs


def _check_git(store: Store, report: Report) -> None:
    """Every committed version of every log is a prefix of the log now: history only grew."""
    damaged = gitrepo.damaged_head(store.root)
    if damaged:
        where, _, what = damaged.partition(": ")
        report.problems.append(Problem("git", Path(where).relative_to(store.root).as_posix(), what))
        report.uncommitted = store.uncommitted()
        return
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
    # A release (any tag) holds its commit's logs whatever became of the branch since: a history
    # rewritten to hide an edit (reset, rebase, filter-branch, then a rebuilt index) leaves them behind.
    releases = _releases(repo)
    for tag, tag_commit in releases:
        held = {path: {b for _, b in v} for path, v in versions.items()}
        listing = repo.git.ls_tree("-r", "-z", tag_commit, "--", eventlog.EVENTS_DIR)
        for entry in listing.split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            blob = meta.split()[2]
            if path.endswith(".jsonl") and blob not in held.get(path, ()):
                versions.setdefault(path, []).append((f"{tag_commit} (release {tag})", blob))
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
            if size is None or size > len(data) or gitrepo.blob_id(data[:size]) != blob:
                commit, _, release = commit.partition(" ")
                shown = commit[:10] + (f" {release}" if release else "")
                if not file.is_file():
                    where, what = path, "is gone" + (f" (release {release[9:-1]} holds it)" if release else "")
                else:
                    bad = _first_difference(repo, commit, path, data)
                    where = f"{path}:{bad}" if bad else path
                    what = f"differs from what commit {shown} holds"
                report.problems.append(Problem("git", where, f"{what}: committed events were edited, "
                                               "removed or reordered"))
                break
    _check_imports(store, report, releases)
    report.uncommitted = store.uncommitted()


def _releases(repo) -> list[tuple[str, str]]:
    """(tag name, the commit it names) of every tag: the store's releases."""
    out = repo.git.for_each_ref("--format=%(refname:short)%00%(objectname)%00%(*objectname)", "refs/tags")
    found = []
    for line in out.splitlines():
        name, obj, peeled = (line.split("\0") + ["", ""])[:3]
        found.append((name, peeled or obj))
    return found


def _check_imports(store: Store, report: Report, releases: list[tuple[str, str]] = ()) -> None:
    """An import folder never changes once committed: a commit that changed or deleted a file of one,
    or any difference from HEAD or from a release, is tampering."""
    repo = store.repo
    out = repo.git.log("--format=C %H", "--name-status", "--no-renames", "--diff-filter=MDT", "--", "imports")
    commit = None
    for line in out.splitlines():
        if line.startswith("C "):
            commit = line[2:].strip()
        elif line.strip() and commit:
            status, path = line.split("\t", 1)
            what = "was deleted" if status.startswith("D") else "was edited"
            report.problems.append(Problem("import", path, f"{what} by commit {commit[:10]} after it was "
                                           "committed (imports are immutable)"))
    out = repo.git.diff("HEAD", "--name-status", "--no-renames", "-z", "--", "imports")
    fields = [f for f in out.split("\0") if f]
    for status, path in zip(fields[0::2], fields[1::2]):
        what = {"D": "was deleted", "A": "was added outside an import"}.get(status[:1], "was edited")
        line = None
        if status.startswith("M"):
            line = _first_difference(repo, "HEAD", path, (store.root / path).read_bytes())
        report.problems.append(Problem("import", f"{path}:{line}" if line else path,
                                       f"{what} since it was committed (imports are immutable)"))
    reported = {p.where.split(":")[0] for p in report.problems if p.kind == "import"}
    for tag, commit in releases:
        out = repo.git.diff(commit, "--name-status", "--no-renames", "--diff-filter=MD", "-z", "--", "imports")
        fields = [f for f in out.split("\0") if f]
        for status, path in zip(fields[0::2], fields[1::2]):
            if path in reported:
                continue
            reported.add(path)
            line = None
            if status.startswith("M"):
                line = _first_difference(repo, commit, path, (store.root / path).read_bytes())
            what = "was deleted" if status.startswith("D") else "was edited"
            report.problems.append(Problem("import", f"{path}:{line}" if line else path,
                                           f"{what} since release {tag} (commit {commit[:10]}) held it "
                                           "(imports are immutable)"))


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


def _check_index(store: Store, report: Report | None = None) -> dict[str, list[Problem]]:
    """The live index equals a fresh replay of the committed files (the events table is compared by
    ``_chains_and_events``). The replay is folded in memory, not written to a second index: the big
    tables are compared row by row in Python, the small ones through an in-memory SQLite (so their
    values are what SQLite's column types make of them, as in the live index)."""
    rp = replay.replay(store.root, strict=False)
    out: dict[str, list[Problem]] = {}
    with replay.no_gc():
        live = store.conn.cursor()
        live.row_factory = None
        key, cols = _COMPARE["annotations"]
        out["annotations"] = _compare_sorted("annotations", key, cols,
                                             live.execute(f"SELECT {key}, {cols} FROM annotations ORDER BY {key}"),
                                             replay.annotation_rows(rp))
        key, cols = _COMPARE["writers"]
        out["writers"] = _compare_rows("writers", key, cols, live.execute(f"SELECT {key}, {cols} FROM writers"),
                                       {w: (w, seq, h) for w, (seq, h) in rp.writers.items()})
        mem = sqlite3.connect(":memory:", isolation_level=None)
        try:
            mem.executescript(replay._TABLES)
            replay.write_small_tables(mem, rp)
            for table, (key, cols) in _COMPARE.items():
                if table in ("annotations", "events", "writers", "event_files"):
                    continue
                sql = f"SELECT {key}, {cols} FROM {table}"
                fresh = {r[0]: r for r in mem.execute(sql)}
                out[table] = _compare_rows(table, key, cols, live.execute(sql), fresh)
        finally:
            mem.close()
    # A line of an import folder the replay could not take (the folder was edited since it was written).
    out["imports"] = [Problem("import", where, what) for where, what in rp.problems] + out.get("imports", [])
    out[_ORPHANS] = _events_without_annotation(rp)
    if report is not None:  # called alone (as the benchmark's breakdown does): the events too
        root = store.root
        out["events"] = _chains_and_events(str(root), eventlog.list_files(root), store.index_uri)[3]
        for table in (*_COMPARE, _ORPHANS):
            report.problems += out.get(table, [])
    return out


_ORPHANS = "events without annotation"


def _events_without_annotation(rp: replay.Replay) -> list[Problem]:
    """Events on an annotation no import holds, one problem per log (its first such line). The
    tool refuses such a decision, so the line was written by hand (hashes can be recomputed), or
    the annotation's import is gone or damaged (reported as such too); no label shows it."""
    props = rp.proposals
    found: dict[str, list] = {}  # log -> [first line, its annotation, how many]
    for *_, rel, _end, number, ev in rp.events:
        a = ev["annotation"]
        if a not in props:
            seen = found.get(rel)
            if seen is None:
                found[rel] = [number, a, 1]
            else:
                seen[2] += 1
    out = []
    for rel, (number, a, n) in found.items():
        more = f"; {n - 1} more such event{'s' if n > 2 else ''} in this log" if n > 1 else ""
        out.append(Problem("event", f"{rel}:{number}", f"decides on annotation {a}, which no import holds: the "
                           "tool refuses such a decision, so the line was written by hand, or the "
                           f"annotation's import is gone or damaged{more}"))
    return out


#: Every column a user can see through the tool (log, blame, ls, export), each writer's head
#: (the next decision's chain goes on from it), and the offsets (``diff`` tells which events a
#: revision holds by them; the next command reads each log on from where the index says it ends).
#: An event's ``git_commit`` may be unset (a checkpoint not yet attributed, after a kill): only a
#: commit it does name must be the one that first holds the event.
_COMPARE = {
    "annotations": ("id", "image_id, import_id, source, source_id, kind, category, proposed_category, status, "
                    "score, iscrowd, area, bbox, segmentation, keypoints, extra, scores, last_event, "
                    "updated_at, updated_by, reason, comment"),
    "events": ("hash", "writer, seq, ts, author, login, host, action, annotation, image, old, new, reason, "
               "comment, base, undoes, prev, file, line, end_offset, blind, resolves, git_commit"),
    # How far the index has taken each log (the next command reads on from there).
    "event_files": ("path", "writer, size, lines"),
    "writers": ("writer", "seq, hash"),
    "images": ("id", "import_id, file_name, width, height, sha256, source_id, extra"),
    "imports": ("id", "seq, ts, author, login, host, source, format, file, sha256, image_root, images, "
                "annotations, warnings"),
    "categories": ("name", "source_id, supercategory, keypoints, skeleton, extra"),
    "conflicts": ("event", "annotation, base, current, resolved"),
    "fold_alias": ("event", "annotation, target"),
    "blind_pending": ("annotation || '/' || author", "event, new"),
}


#: An event's commit when git's history cannot be read (a damaged HEAD): whatever the index says.
_UNKNOWN = object()


def _compare_sorted(table: str, key: str, cols: str, live_rows, fresh_rows) -> list[Problem]:
    """``_compare_rows`` for two row streams both in ascending key order (integer keys): a merge."""
    end = object()
    live_it, fresh_it = iter(live_rows), iter(fresh_rows)
    a, b = next(live_it, end), next(fresh_it, end)
    only_live: list[tuple] = []
    only_fresh: dict[Any, tuple] = {}
    differ: list[tuple[tuple, tuple]] = []
    while a is not end and b is not end:
        if a[0] == b[0]:
            if a != b:
                differ.append((a, b))
            a, b = next(live_it, end), next(fresh_it, end)
        elif a[0] < b[0]:
            only_live.append(a)
            a = next(live_it, end)
        else:
            only_fresh[b[0]] = b
            b = next(fresh_it, end)
    while a is not end:
        only_live.append(a)
        a = next(live_it, end)
    while b is not end:
        only_fresh[b[0]] = b
        b = next(fresh_it, end)
    # Whatever is on one side only, or differs, goes through the keyed comparison (same messages).
    fresh = {**{b[0]: b for _, b in differ}, **only_fresh}
    return _compare_rows(table, key, cols, [*only_live, *(a for a, _ in differ)], fresh)


def _compare_rows(table: str, key: str, cols: str, live_rows, fresh: dict[Any, tuple]) -> list[Problem]:
    """Rows (key, *cols) of the live index against the replay's, by key; ``fresh`` (key -> row) is consumed."""
    names = [key, *[c.strip() for c in cols.split(",")]]
    found: list[tuple[Any, Problem]] = []
    pop = fresh.pop
    missing = object()

    def where(k, row) -> str:
        # An event is best found by its line in the log (from whichever side still has it).
        if table == "events":
            return f"{row[names.index('file')]}:{row[names.index('line')]}"
        return f"index:{table}:{k}"

    for row in live_rows:
        k = row[0]
        f = pop(k, missing)
        if f is missing:
            found.append((k, Problem("index", where(k, row), f"{table} {k} is in the index but not in the logs")))
        elif f != row and not (table == "events" and (row[-1] is None or f[-1] is _UNKNOWN) and f[:-1] == row[:-1]):
            diffs = [f"{n}: index {x!r} vs logs {y!r}" for n, x, y in zip(names, row, f) if x != y]
            found.append((k, Problem("index", where(k, f), "edited behind the tool's back: " + "; ".join(diffs))))
    for k, f in fresh.items():
        found.append((k, Problem("index", where(k, f), f"{table} {k} is in the logs but missing from the index")))
    found.sort(key=lambda t: str(t[0]))
    return [p for _, p in found]


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
