"""Replay of the committed files in memory: what a freshly built index holds, table by table.

``reindex`` writes it into a new SQLite file in bulk (indexes made after the rows, no journal: the
file is private until it is renamed into place whole); ``verify`` compares it with the live index
without building a second SQLite file. The rows are the ones the per-event path writes (import
folders through ``_load_import_folder``, events through ``_event_values``, the fold through
``_fold_step`` and ``_save_fold``); ``tests/test_replay.py`` holds the two paths equal.
"""

from __future__ import annotations

import gc
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
from contextlib import contextmanager
from operator import itemgetter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Container, Iterable

import orjson

from ..model import INT64, KINDS, DamagedFileError, LabelreviewError
from . import canonical, eventlog, gitrepo, schema

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_dumps = orjson.dumps


def _j(value: Any) -> str | None:
    return None if value is None else _dumps(value, option=_OPTS).decode()


#: One event as the replay keeps it: (ts, writer, seq, file, end offset, line number, event).
Parsed = tuple


@dataclass(slots=True)
class Replay:
    imports: list[tuple] = field(default_factory=list)
    categories: dict[str, tuple] = field(default_factory=dict)
    images: dict[int, tuple] = field(default_factory=dict)
    #: annotation id -> its 17 proposal columns (id ... scores), state columns as imported
    proposals: dict[int, tuple] = field(default_factory=dict)
    #: the events in canonical order (ts, writer, seq)
    events: list[Parsed] = field(default_factory=list)
    #: annotation id -> its fold state (only annotations that have events)
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    conflicts: dict[str, list] = field(default_factory=dict)  # event -> [event, annotation, base, current, resolved]
    fold_alias: dict[str, tuple] = field(default_factory=dict)  # event -> (event, annotation, target)
    blind_pending: list[tuple] = field(default_factory=list)  # (annotation, author, event, new)
    writers: dict[str, tuple[int, str]] = field(default_factory=dict)
    files: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    #: (place, what) of each line of an import folder that is not as written (not strict: verify)
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: annotation id -> its events when each simply applied (its state is what the last one chose)
    simple: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


# ---------------------------------------------------------------------- imports


class ImportFileError(DamagedFileError):
    """A file of an import folder that is not what the import wrote: it was edited since."""


_EDITED = ("import folders never change once written, so it was edited since: run `labelreview verify` "
           "to see what changed, and restore it from git (`git checkout -- <file>`) or a clone")


def import_problem(problems: list | None, root: Path, path: Path, number: int | None, what: str,
                    advice: str = _EDITED) -> None:
    """Stop the load with the file, line and problem (``problems`` None), or note it there (verify)."""
    where = path.relative_to(root).as_posix() + (f":{number}" if number else "")
    if problems is None:
        raise ImportFileError(f"{where}: {what}; {advice}")
    problems.append((where, what))


#: A repeated annotation id in two import folders: not an edit, a folder from elsewhere.
FOREIGN_IDS = ("two imports hold the same annotation ids, so one came from another store (ids are each "
            "store's own): remove the import folder that does not belong here")


def read_manifest(path: Path, root: Path, problems: list | None) -> dict[str, Any] | None:
    try:
        m = canonical.loads(path.read_bytes())
        if not isinstance(m, dict):
            raise TypeError("not a JSON object")
        for key, kind in _MANIFEST.items():
            if not isinstance(m.get(key), kind) or isinstance(m.get(key), bool):
                raise TypeError(f"field {key!r} is missing or not a {kind.__name__}")
        if not all(isinstance(m["counts"].get(k), int) for k in ("images", "annotations", "warnings")):
            raise TypeError("field 'counts' lacks its numbers")
        if not all(isinstance(x, str) and "/" not in x and not x.startswith(".") for x in m["shards"]):
            raise TypeError("field 'shards' names something other than files of the folder")
    except (ValueError, TypeError) as e:
        import_problem(problems, root, path, None, f"unreadable manifest ({e})")
        return None
    return m


_MANIFEST = {"id": str, "seq": int, "ts": str, "source": str, "format": str, "counts": dict, "shards": list}


def import_folders(root: Path, problems: list | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Import folders in the order a rebuild loads them (manifest seq, ts, path), with their manifests."""
    from .store import IMPORTS_DIR

    base = root / IMPORTS_DIR
    folders = []
    if base.is_dir():
        for p in base.iterdir():
            if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").is_file():
                m = read_manifest(p / "manifest.json", root, problems)
                if m is not None:
                    folders.append((m["seq"], m["ts"], str(p), p, m))
    return [(p, m) for *_, p, m in sorted(folders)]


def _jsonl(path: Path, root: Path, problems: list | None) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, object) of each line of an import's JSONL file."""
    loads = orjson.loads
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        import_problem(problems, root, path, None, f"cannot be read ({e.strerror or e})")
        return
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.strip():
            try:
                r = loads(line)
            except ValueError as e:
                import_problem(problems, root, path, number, f"line is not valid JSON ({e})")
                continue
            if type(r) is not dict:
                import_problem(problems, root, path, number, "line is not a JSON object")
                continue
            yield number, r


def image_rows(folder: Path, import_id: str, root: Path, problems: list | None = None) -> Iterable[tuple]:
    """The images rows of an import folder (what ``INSERT OR IGNORE INTO images`` takes), checked."""
    path = folder / "images.jsonl"
    for number, r in _jsonl(path, root, problems):
        if r.get("reused"):
            continue
        get = r.get
        i, name = get("id"), get("file_name")
        if type(i) is not int or type(name) is not str:
            import_problem(problems, root, path, number, "an image needs an integer id and a file_name")
            continue
        problem = image_problem(r)
        if problem:
            import_problem(problems, root, path, number, f"image {i}: {problem}")
            continue
        yield (i, import_id, name, get("width"), get("height"), get("sha256"), _j(get("source_id")), _j(get("extra")))


def annotation_proposals(folder: Path, m: dict[str, Any], root: Path, problems: list | None = None,
                         images: Container[int] | None = None) -> Iterable[tuple[int, Path, int, tuple]]:
    """(id, shard, line, the 17 proposal columns) of each annotation of an import folder, checked;
    with ``images`` (the ids of the images loaded so far), each label's image too (SQLite would take
    a label on an image no import holds: no foreign keys, and export then failed on it)."""
    source, imp = m["source"], m["id"]
    for shard in m["shards"]:
        path = folder / shard
        for number, r in _jsonl(path, root, problems):
            get = r.get
            a, image, kind, category = get("id"), get("image"), get("kind"), get("category")
            if type(a) is not int or type(image) is not int or type(kind) is not str or type(category) is not str:
                import_problem(problems, root, path, number,
                               "an annotation needs an integer id and image, a kind and a category")
                continue
            bbox, seg, kp, extra, scores, sid = (get("bbox"), get("segmentation"), get("keypoints"),
                                                 get("extra"), get("scores"), get("source_id"))
            score, iscrowd, area = get("score"), get("iscrowd"), get("area")
            problem = proposal_problem(score, area, iscrowd, bbox, seg, kp, extra, scores, sid, kind)
            if problem:
                import_problem(problems, root, path, number, f"annotation {a}: {problem}")
                continue
            if images is not None and image not in images:
                import_problem(problems, root, path, number, f"annotation {a} is on image {image}, which no "
                               "import holds (its images.jsonl was edited or removed)")
                continue
            yield a, path, number, (
                a, image, imp, source, None if sid is None else _j(sid), kind, category, category, "pending",
                score, iscrowd or 0, area, None if bbox is None else _j(bbox),
                None if seg is None else _j(seg), None if kp is None else _j(kp),
                None if extra is None else _j(extra), None if scores is None else _j(scores))


def _number(v: Any) -> bool:
    t = type(v)
    return t is float or (t is int and -INT64 <= v < INT64)


def _numbers(values: Any) -> bool:
    """A list of numbers (``sum`` refuses text, lists, objects and null, in C)."""
    if type(values) is not list:
        return False
    try:
        sum(values)
    except TypeError:
        return False
    return True


_KINDS = frozenset(KINDS)


def _polygons(seg: list) -> bool:
    for poly in seg:
        if type(poly) is not list:
            return False
        sum(poly)  # (TypeError: not numbers)
    return True


def proposal_problem(score, area, iscrowd, bbox, seg, kp, extra, scores, sid, kind,
                     _float=float, _int=int, _list=list, _kinds=_KINDS) -> str | None:
    """Why an annotation line of an import folder (its fields) is not one the importer writes (a
    field of another type), else None. Such a line was edited by hand: it took the rebuild (SQLite
    cannot bind a list) and the exports (a bbox of one number) down with a traceback."""
    # The common line, at a glance (a rebuild reads a million of them); anything else in detail.
    try:  # (sum: a list of numbers, checked in C; text, a list or null in it raise TypeError)
        if ((score is None or type(score) is _float) and (area is None or type(area) is _float)
                and iscrowd == 0 and type(iscrowd) is _int and extra is None and scores is None and kp is None
                and (sid is None or (type(sid) is _int and -INT64 <= sid < INT64)) and kind in _kinds
                and (bbox is None or (type(bbox) is _list and len(bbox) == 4 and (sum(bbox) or True)))
                and (seg is None or (type(seg) is _list and _polygons(seg)))):
            return None
    except TypeError:
        pass
    if score is not None and not _number(score):
        return "field 'score' is not a number"
    if area is not None and not _number(area):
        return "field 'area' is not a number"
    if iscrowd is not None and not (type(iscrowd) in (int, bool) and iscrowd in (0, 1)):
        return "field 'iscrowd' is not 0 or 1"
    if bbox is not None and not (_numbers(bbox) and len(bbox) == 4 and all(map(_number, bbox))):
        return "field 'bbox' is not four numbers"
    if seg is not None:
        if type(seg) is list:
            if not all(map(_numbers, seg)):  # (any length: exports leave out what is not a polygon)
                return "field 'segmentation' is not a list of polygons (lists of x, y numbers)"
        elif type(seg) is dict:
            size, counts = seg.get("size"), seg.get("counts")
            if not (type(size) is list and len(size) == 2 and all(type(v) is int and 0 <= v < INT64 for v in size)
                    and (type(counts) is str or (type(counts) is list and all(
                        type(c) is int and 0 <= c < INT64 for c in counts)))):
                return "field 'segmentation' is not an RLE (size [height, width], counts)"
        else:
            return "field 'segmentation' is neither polygons nor an RLE"
    if kp is not None and not (_numbers(kp) and len(kp) % 3 == 0):
        return "field 'keypoints' is not a list of x, y, visibility numbers"
    if extra is not None and type(extra) is not dict:
        return "field 'extra' is not an object"
    if scores is not None and type(scores) is not dict:
        return "field 'scores' is not an object"
    if sid is not None and type(sid) is not str and not (type(sid) is int and -INT64 <= sid < INT64):
        return "field 'source_id' is neither text nor an integer"
    if kind not in KINDS:
        return f"field 'kind' is not one of {', '.join(KINDS)}"
    return None


def image_problem(r: dict[str, Any]) -> str | None:
    """Why an image line of an import folder is not one the importer writes, else None."""
    get = r.get
    for key in ("width", "height"):
        v = get(key)
        if v is not None and not (type(v) is int and 0 < v < INT64):
            return f"field {key!r} is not a positive integer"
    if get("sha256") is not None and type(get("sha256")) is not str:
        return "field 'sha256' is not text"
    sid = get("source_id")
    if sid is not None and type(sid) is not str and not (type(sid) is int and -INT64 <= sid < INT64):
        return "field 'source_id' is neither text nor an integer"
    if get("extra") is not None and type(get("extra")) is not dict:
        return "field 'extra' is not an object"
    return None


def import_row(m: dict[str, Any]) -> tuple:
    """The imports row of a manifest."""
    c = m["counts"]
    return (m["id"], m["seq"], m["ts"], m.get("author"), m.get("login"), m.get("host"), m["source"], m["format"],
            m.get("file"), m.get("sha256"), m.get("image_root"), c["images"], c["annotations"], c["warnings"])


def category_rows(m: dict[str, Any]) -> Iterable[tuple]:
    """The categories rows of a manifest (what ``INSERT OR IGNORE INTO categories`` takes)."""
    for c in m.get("categories") or []:
        if isinstance(c, dict) and isinstance(c.get("name"), str):
            yield (c["name"], c.get("source_id"), c.get("supercategory"), _j(c.get("keypoints")),
                   _j(c.get("skeleton")), _j(c.get("extra")))


def first_place(root: Path, annotation: int, places: dict[int, str] | None = None) -> str | None:
    """Where an annotation id first appears in the import folders (file:line): for messages only.
    ``places``: a dict to fill with every id's first place on the first call and read after (one
    pass over the folders for a load that meets a million repeated ids, not one per id)."""
    if places is not None and places:
        return places.get(annotation)
    found = {} if places is None else places
    for folder, m in import_folders(root, []):
        for a, path, number, _ in annotation_proposals(folder, m, root, []):
            if a not in found:
                found[a] = f"{path.relative_to(root).as_posix()}:{number}"
                if places is None and a == annotation:
                    return found[a]
    return found.get(annotation)


def load_imports(root: Path, rp: Replay, problems: list | None = None) -> None:
    """The rows ``_load_import_folder`` inserts, for every import folder in order. A file of an
    import folder that is not as written stops the load with its place (``problems`` None), or is
    noted in ``problems`` as (place, what) and its unreadable lines left out (verify)."""
    places: dict[int, str] = {}  # (filled by first_place at the first repeated id)
    ids: dict[Any, Path] = {}
    for folder, m in import_folders(root, problems):
        if m["id"] in ids:  # a copy of a folder (under another name): its rows are the other's again
            import_problem(problems, root, folder / "manifest.json", 1,
                           f"import id {m['id']!r} is also the id of {ids[m['id']].relative_to(root).as_posix()}",
                           FOREIGN_IDS)
            continue
        ids[m["id"]] = folder
        rp.imports.append(import_row(m))
        cats = rp.categories
        for row in category_rows(m):
            if row[0] not in cats:  # INSERT OR IGNORE
                cats[row[0]] = row
        images = rp.images
        for row in image_rows(folder, m["id"], root, problems):
            if row[0] not in images:  # INSERT OR IGNORE
                images[row[0]] = row
        props = rp.proposals
        for a, path, number, row in annotation_proposals(folder, m, root, problems, images):
            if a in props:  # a plain INSERT fails on a repeated id, as the per-row path does
                first = first_place(root, a, places) or "an earlier import"
                same_folder = first.startswith(path.parent.relative_to(root).as_posix() + "/")
                import_problem(problems, root, path, number, f"annotation id {a} is used twice (first at {first})",
                               _EDITED if same_folder else FOREIGN_IDS)
                continue
            props[a] = row


# ---------------------------------------------------------------------- events


def read_events(root: Path, strict: bool = True) -> list[Parsed]:
    """Every readable event line of every log, first occurrence of each hash (as a rebuild keeps them).

    ``strict``: an unreadable or repeated line is an error naming its place; otherwise it is left out
    (``verify`` reports it through the hash chains)."""
    out: list[Parsed] = []
    seen: dict[str, int] = {}  # hash -> its place in ``out``
    loads = orjson.loads
    problem_of = eventlog.problem_of
    for rel in eventlog.list_files(root):
        for number, end, raw in eventlog.lines_of(root / rel):
            try:
                ev = loads(raw)
            except ValueError as e:
                ev, problem = None, f"not valid JSON ({e})"
            else:
                problem = problem_of(ev) if type(ev) is dict else "not a JSON object"
            if problem is None:
                h = ev["hash"]
                if h in seen:
                    first = out[seen[h]]
                    problem = f"the same event as {first[3]}:{first[5]}"
            if problem:
                if strict:
                    raise DamagedFileError(f"{rel}:{number}: unreadable event line ({problem}); "
                                           "run `labelreview verify`")
                continue
            seen[h] = len(out)
            out.append((ev["ts"], ev["writer"], ev["seq"], rel, end, number, ev))
    return out


class _Everything(dict):
    """Proposals not read (yet): every annotation counts as imported, its proposed category unknown
    (None, which no event's category can be: the writer replaces it by the proposal's)."""

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key):
        return _UNKNOWN


_UNKNOWN = (None,) * 17


def add_events(rp: Replay, events: list[Parsed], proposals_known: bool = True) -> None:
    """Order the events canonically, fold them per annotation, note each writer's head and each log's size."""
    from .store import _fold_step, _fresh_fold

    events.sort(key=itemgetter(0, 1, 2))
    rp.events = events
    props, states = (rp.proposals if proposals_known else _Everything()), rp.states
    heads, files = rp.writers, rp.files
    # Most annotations' events are each made on the state the one before left (the first on the
    # untouched proposal), none blind: each simply applies, and the state is what the last chose.
    # Such an annotation keeps just its events (``simple``) until one that is not so comes; then
    # its events are folded by ``_fold_step`` from the proposal on, as every other annotation's are.
    simple: dict[int, list[dict[str, Any]]] = {}
    for ts, writer, seq, rel, end, number, ev in events:
        if seq >= heads.get(writer, (0, ""))[0]:
            heads[writer] = (seq, ev["hash"])
        if number >= files.get(rel, ("", 0, 0))[2]:
            files[rel] = (writer, end, number)
        a = ev["annotation"]
        st = states.get(a)
        if st is None:
            done = simple.get(a)
            if ev.get("blind") is not True and ev.get("base") == (done[-1]["hash"] if done else None):
                if done is not None:
                    done.append(ev)
                elif a in props:
                    simple[a] = [ev]
                # else: an event on an annotation no import holds: recorded, folded into nothing
                continue
            if done is None and a not in props:
                continue
            st = states[a] = _fresh_fold(a, props[a][7])
            for one in simple.pop(a, ()):
                _fold_step(st, one)
        _fold_step(st, ev)
    rp.simple = simple
    # What ``_save_fold`` writes after a refold, annotation by annotation in id order.
    conflicts, aliases, blind = rp.conflicts, rp.fold_alias, rp.blind_pending
    for a in sorted(states):
        st = states[a]
        for h, t in sorted(st["aliases"].items()):
            aliases.setdefault(h, (h, a, t))
        for author, (h, n) in st["blind"].items():
            blind.append((a, author, h, _j(n)))
        resolved = st["resolved"]
        for event, base, current in st["new_conflicts"]:
            if event not in conflicts:
                conflicts[event] = [event, a, base, current, resolved.pop(event, None)]
        for event in st["reopened"]:  # (as _save_fold: reopened first, then what resolved it since)
            row = conflicts.get(event)
            if row is not None:
                row[4] = None
        for event, by in resolved.items():
            row = conflicts.get(event)
            if row is not None and row[4] is None:
                row[4] = by


@contextmanager
def no_gc():
    """Python's cyclic GC walks every container at each collection: with millions of parsed events
    alive, that was most of a replay's time. Nothing made here is cyclic garbage."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def replay(root: Path, strict: bool = True, events: list[Parsed] | None = None) -> Replay:
    with no_gc():
        rp = Replay()
        load_imports(root, rp, None if strict else rp.problems)
        add_events(rp, read_events(root, strict) if events is None else events)
    return rp


# ---------------------------------------------------------------------- rows


def event_row(ev: dict[str, Any], rel: str, line: int, end: int) -> tuple:
    """``_event_values`` (one row of the events table), inlined for speed."""
    get = ev.get
    old, new, blind, resolves = get("old"), ev["new"], get("blind"), get("resolves")
    if resolves is not None:
        resolves = _j([h for h in resolves if isinstance(h, str)]) if isinstance(resolves, list) else None
    return (ev["hash"], ev["writer"], ev["seq"], ev["ts"], ev["author"], get("login"), get("host"), ev["action"],
            ev["annotation"], get("image"), None if old is None else _j(old), _j(new), get("reason"),
            get("comment"), get("base"), get("undoes"), get("prev"), rel, line, end,
            1 if blind is True else None, resolves)


_STATE_NONE = (None, None, None, None, None)


def annotation_rows(rp: Replay) -> Iterable[tuple]:
    """Every annotation row (the 22 columns of the table), in id order."""
    from .store import note_of

    states, simple = rp.states, rp.simple
    for a in sorted(rp.proposals):
        p = rp.proposals[a]
        st = states.get(a)
        if st is None:
            done = simple.get(a)
            if done is None:
                yield p + _STATE_NONE
            else:
                ev = done[-1]
                new = ev["new"]
                yield (*p[:6], new["category"], p[7], new["status"], *p[9:], ev["hash"], ev["ts"], ev["author"],
                       *note_of(ev))
        else:
            yield (*p[:6], st["category"], p[7], st["status"], *p[9:], st["last_event"], st["updated_at"],
                   st["updated_by"], st["reason"], st["comment"])


def commit_blobs(root: Path) -> list[tuple[str, str, int]]:
    """(commit, log path, size of the log in that commit), oldest commit first (as ``_attribute_commits``)."""
    from .store import _batch_check, _log_blobs, _log_history

    try:
        repo = gitrepo.open_repo(root)
        try:
            if not repo.head.is_valid():
                return []
            blobs = _log_blobs(_log_history(repo))
            shas = sorted({b for _, _, b in blobs if set(b) != {"0"}})
            sizes = _batch_check(repo, shas) if shas else {}
        finally:
            repo.close()
    except Exception:
        return []
    return [(c, p, sizes[b]) for c, p, b in blobs if b in sizes]


def attribute(events: list[Parsed], blobs: list[tuple[str, str, int]]) -> list[str | None]:
    """Per event: the first commit whose blob of its log holds it (``_attribute_commits``)."""
    by_file: dict[str, list[tuple[int, int]]] = {}
    for i, (*_, rel, end, _number, _ev) in enumerate(events):
        by_file.setdefault(rel, []).append((end, i))
    for v in by_file.values():
        v.sort()
    done: dict[str, int] = {}  # how far (by end offset) each log is attributed: always a prefix
    out: list[str | None] = [None] * len(events)
    for commit, path, size in blobs:
        lines = by_file.get(path)
        if not lines:
            continue
        i = done.get(path, 0)
        while i < len(lines) and lines[i][0] <= size:
            out[lines[i][1]] = commit
            i += 1
        done[path] = i
    return out


# ---------------------------------------------------------------------- a second process

_CHILD = """
import importlib, pickle, sys
paths, module, name, args = pickle.load(sys.stdin.buffer)
sys.path[:0] = [p for p in paths if p not in sys.path]
try:
    out = (True, getattr(importlib.import_module(module), name)(*args))
except BaseException as e:
    out = (False, e)
sys.stdout.buffer.write(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
"""


class Child:
    """``fn(*args)`` in a new interpreter running beside this one; ``result()`` waits for its value
    (or raises its exception). A fresh ``python -c``, not multiprocessing: a spawned process would
    import the caller's main script again (which breaks a script without a ``__main__`` guard), and
    a forked one would inherit this process's threads and SQLite handles.

    ``more=True``: ``fn`` takes one more value later, when it calls ``receive()``; this process
    hands it over with ``send()`` (or the child's ``receive()`` raises EOFError if it never does)."""

    def __init__(self, fn, *args, more: bool = False):
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self._sender: threading.Thread | None = None
        try:
            self.proc.stdin.write(pickle.dumps((sys.path, fn.__module__, fn.__name__, args)))
            if more:
                self.proc.stdin.flush()
            else:
                self.proc.stdin.close()
        except BaseException:
            self.close()
            raise
        self._out: bytes | None = None

    def send(self, value) -> None:
        """Hand ``value`` to the child's ``receive()``, written from a thread: the child may still be
        busy, and this process goes on meanwhile (a write to a full pipe would wait for it)."""
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        stdin = self.proc.stdin

        def write() -> None:
            try:
                stdin.write(data)
                stdin.close()
            except (BrokenPipeError, ValueError):  # the child has ended: result() says how
                pass

        self._sender = threading.Thread(target=write, name="labelreview-child-input", daemon=True)
        self._sender.start()

    def _input_done(self) -> None:
        if self._sender is not None:
            self._sender.join()
        try:
            self.proc.stdin.close()  # (a child waiting in receive() for what never came: EOFError)
        except (BrokenPipeError, OSError):
            pass

    def result(self):
        if self._out is None:
            self._input_done()
            self._out = self.proc.stdout.read()
            self.proc.wait()
        if self.proc.returncode != 0 or not self._out:
            raise LabelreviewError(f"a helper process failed (exit status {self.proc.returncode})")
        ok, value = pickle.loads(self._out)
        if not ok:
            raise value
        return value

    def kill(self) -> None:
        """Stop it now (the caller failed or was interrupted: its work is of no use); ``close`` waits."""
        if self._out is None and self.proc.poll() is None:
            self.proc.kill()

    def close(self) -> None:
        """Wait for it to end (it may be writing a file the caller will remove)."""
        if self._out is None and self.proc.poll() is None:
            self._input_done()
            self._out = self.proc.stdout.read()
        self.proc.wait()


def receive():
    """(In a child started with ``more=True``.) The value the parent ``send()``s."""
    return pickle.load(sys.stdin.buffer)


# ---------------------------------------------------------------------- rebuilding an index

#: Import shards and logs at least this big (together) are rebuilt by two processes.
PARALLEL_BYTES = 32 << 20


def _size_of(root: Path) -> int:
    from .store import IMPORTS_DIR

    total = sum((root / f).stat().st_size for f in eventlog.list_files(root))
    base = root / IMPORTS_DIR
    if base.is_dir():
        total += sum(p.stat().st_size for p in base.glob("*/*.jsonl"))
    return total


def rebuild(root: Path, index: Path, strict: bool = True) -> None:
    """Build a new index file from the committed files (the caller renames it into place)."""
    with no_gc():  # (until the replay is gone: else a full collection walks it when GC resumes)
        if (os.cpu_count() or 1) > 1 and _size_of(root) >= PARALLEL_BYTES:
            _rebuild_in_two(root, index, strict)
        else:
            rp = replay(root, strict)
            write_index(rp, index, attribute(rp.events, commit_blobs(root)))
            del rp


def _rebuild_in_two(root: Path, index: Path, strict: bool) -> None:
    """A second process reads the import folders and writes their tables while this one reads and
    folds the events; it writes the annotations once this one has sent the fold's states (each
    row as it ends up: no second pass over a million rows to set them); then this one adds the
    events and the fold's bookkeeping, in the same file."""
    from .store import note_of

    imports = Child(_write_imports, str(root), str(index), more=True)
    try:
        with no_gc():
            rp = Replay()
            add_events(rp, read_events(root, strict), proposals_known=False)
            # None for a category: nothing applied yet, the state is still the proposal's.
            states = {a: tuple(st[k] for k in _STATE) for a, st in rp.states.items()}
            for a, done in rp.simple.items():
                ev = done[-1]
                states[a] = (ev["new"]["category"], ev["new"]["status"], ev["hash"], ev["ts"], ev["author"],
                             *note_of(ev))
            imports.send(states)
            del states
            commits = attribute(rp.events, commit_blobs(root))
            event_rows = [(*event_row(ev, rel, number, end), commit)
                          for (*_, rel, end, number, ev), commit in zip(rp.events, commits)]
            imports.result()  # the import tables are written (or this raises what went wrong there)
            conn = _open_new(index, fresh=False)
            try:
                conn.execute("BEGIN")
                conn.executemany(_INSERT_EVENTS, event_rows)
                del event_rows
                conn.executemany("INSERT INTO writers(writer, seq, hash) VALUES(?,?,?)",
                                 ((w, seq, h) for w, (seq, h) in rp.writers.items()))
                conn.executemany("INSERT INTO event_files(path, writer, size, lines) VALUES(?,?,?,?)",
                                 ((rel, w, end, n) for rel, (w, end, n) in rp.files.items()))
                write_small_tables(conn, rp, imports=False)
                # The fold ran on every annotation named by an event: keep what concerns imported ones.
                for table in ("conflicts", "fold_alias", "blind_pending"):
                    conn.execute(f"DELETE FROM {table} WHERE annotation NOT IN (SELECT id FROM annotations)")
                conn.execute("COMMIT")
                _finish(conn)
            finally:
                conn.close()
    except BaseException:  # (Ctrl-C, a bad line: the helper's half-written tables are of no use)
        imports.kill()
        raise
    finally:
        imports.close()
    _fsync(index)


def _write_imports(root: str, index: str) -> None:
    """(The second process.) The import folders' tables; then, given the fold's states of the
    annotations that have events (``receive()``: id -> the ``_STATE`` columns), every annotation."""
    with no_gc():
        rp = Replay()
        load_imports(Path(root), rp)
        conn = _open_new(Path(index))
        try:
            conn.execute("BEGIN")
            write_small_tables(conn, rp, fold=False)
            states: dict[int, tuple] = receive()
            get = states.get

            def rows() -> Iterable[tuple]:
                for a, p in sorted(rp.proposals.items()):
                    st = get(a)
                    if st is None:
                        yield p + _STATE_NONE
                    else:
                        category, status, last, at, by, reason, comment = st
                        yield (*p[:6], p[7] if category is None else category, p[7], status, *p[9:],
                               last, at, by, reason, comment)

            conn.executemany("INSERT INTO annotations VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows())
            conn.execute("COMMIT")
        finally:
            conn.close()


_STATE = ("category", "status", "last_event", "updated_at", "updated_by", "reason", "comment")

_INSERT_EVENTS = (
    "INSERT INTO events(hash, writer, seq, ts, author, login, host, action, annotation, image,"
    " old, new, reason, comment, base, undoes, prev, file, line, end_offset, blind, resolves, git_commit)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def _open_new(index: Path, fresh: bool = True) -> sqlite3.Connection:
    """A connection to an index file being built: nobody else sees it until it is renamed into
    place, so no journal and no syncs meanwhile."""
    if fresh:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(index) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(str(index), isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    if fresh:
        conn.executescript(_TABLES)
    return conn


def _finish(conn: sqlite3.Connection) -> None:
    schema.create(conn)  # the indexes, now that the rows are in; and the schema version
    conn.execute("PRAGMA journal_mode=WAL")


def _fsync(index: Path) -> None:
    # Durable before the caller renames it into place: after a crash, the old index or this one whole.
    fd = os.open(index, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- writing an index


_TABLES = ";".join(s for s in schema.SCHEMA.split(";") if "CREATE TABLE" in s)


def write_index(rp: Replay, index: Path, commits: list[str | None] | None = None) -> None:
    """Write the replay into a new SQLite file in bulk: tables, rows, then the indexes."""
    conn = _open_new(index)
    try:
        conn.execute("BEGIN")
        write_small_tables(conn, rp)
        conn.executemany("INSERT INTO annotations VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         annotation_rows(rp))
        commits = commits or [None] * len(rp.events)
        conn.executemany(_INSERT_EVENTS, ((*event_row(ev, rel, number, end), commit)
                                          for (*_, rel, end, number, ev), commit in zip(rp.events, commits)))
        conn.executemany("INSERT INTO writers(writer, seq, hash) VALUES(?,?,?)",
                         ((w, seq, h) for w, (seq, h) in rp.writers.items()))
        conn.executemany("INSERT INTO event_files(path, writer, size, lines) VALUES(?,?,?,?)",
                         ((rel, w, end, n) for rel, (w, end, n) in rp.files.items()))
        conn.execute("COMMIT")
        _finish(conn)
    finally:
        conn.close()
    _fsync(index)


def write_small_tables(conn: sqlite3.Connection, rp: Replay, imports: bool = True, fold: bool = True) -> None:
    """imports, categories, images and the fold's bookkeeping (conflicts, aliases, blind decisions)."""
    if imports:
        _write_import_tables(conn, rp)
    if fold:
        _write_fold_tables(conn, rp)


def _write_import_tables(conn: sqlite3.Connection, rp: Replay) -> None:
    conn.executemany("INSERT INTO imports(id, seq, ts, author, login, host, source, format, file, sha256,"
                     " image_root, images, annotations, warnings) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rp.imports)
    conn.executemany("INSERT OR IGNORE INTO categories(name, source_id, supercategory, keypoints, skeleton, extra)"
                     " VALUES(?,?,?,?,?,?)", rp.categories.values())
    conn.executemany("INSERT OR IGNORE INTO images(id, import_id, file_name, width, height, sha256, source_id,"
                     " extra) VALUES(?,?,?,?,?,?,?,?)", rp.images.values())


def _write_fold_tables(conn: sqlite3.Connection, rp: Replay) -> None:
    conn.executemany("INSERT OR IGNORE INTO conflicts(event, annotation, base, current, resolved) VALUES(?,?,?,?,?)",
                     rp.conflicts.values())
    conn.executemany("INSERT OR IGNORE INTO fold_alias(event, annotation, target) VALUES(?,?,?)",
                     rp.fold_alias.values())
    conn.executemany("INSERT INTO blind_pending(annotation, author, event, new) VALUES(?,?,?,?)", rp.blind_pending)
