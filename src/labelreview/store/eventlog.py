"""The append-only event logs: JSONL files per writer per UTC day, hash-chained per writer.

A writer's log of one day is ``events/<author>/<host>/<YYYY-MM-DD>.jsonl``; once that file reaches
``PART_BYTES`` the day goes on in ``<YYYY-MM-DD>_0001.jsonl``, ``_0002`` ... (a checkpoint's ``git add``
re-hashes only the part being written, so its cost stays flat however long the day). The names sort
in writing order byte for byte (``.`` < ``_``), and the hash chain runs on from one file into the next.
Stores written before parts existed have only day files; they read the same.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..model import INT64
from . import canonical, perms

EVENTS_DIR = "events"
EVENT_VERSION = 1


#: A writer's log file of the day is continued in a new part once it holds this many bytes (256 KiB:
#: ~500 decisions; ``LABELREVIEW_LOG_PART_BYTES`` changes it, for tests of the rotation).
PART_BYTES = int(os.environ.get("LABELREVIEW_LOG_PART_BYTES") or 256 * 1024)
#: Part numbers have four digits so that names sort in order; the last part then just grows.
MAX_PART = 9999

_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:_(\d{4}))?\.jsonl")


def day_file(writer: str, ts: str, part: int = 0) -> str:
    """Relative path of part ``part`` of the log a writer's event at ``ts`` goes into (0: the day file)."""
    if part:
        return f"{EVENTS_DIR}/{writer}/{ts[:10]}_{part:04d}.jsonl"
    return f"{EVENTS_DIR}/{writer}/{ts[:10]}.jsonl"


def day_and_part(rel: str) -> tuple[str, int] | None:
    """``.../2026-11-28_0003.jsonl`` -> ("2026-11-28", 3); a day file is part 0; None for other names."""
    m = _NAME.fullmatch(rel.rsplit("/", 1)[-1])
    if m is None:
        return None
    return m.group(1), int(m.group(2) or 0)


def next_file(writer: str, ts: str, current: str | None, size: int) -> str:
    """The file a writer's next event at ``ts`` goes into, given its latest file and that file's size:
    the same file, the next part of the same day once it holds ``PART_BYTES``, or the new day's file.
    (Not the new line's length: any process deciding for this writer picks the same file.)"""
    dp = day_and_part(current) if current else None
    if dp is None or dp[0] != ts[:10]:
        return day_file(writer, ts)
    if size >= PART_BYTES and dp[1] < MAX_PART:
        return day_file(writer, ts, dp[1] + 1)
    return current


def file_key(rel: str) -> tuple[str, str, int, str]:
    """Writing order of the logs: writer, then day, then part."""
    dp = day_and_part(rel)
    name = rel.rsplit("/", 1)[-1]
    return (writer_of(rel), *(dp or (name, 0)), name)


def seal(event: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Add the event's own hash; return it with the exact line to append."""
    event = dict(event)
    event.pop("hash", None)
    event["hash"] = canonical.event_hash(event)
    return event, canonical.dumps(event) + b"\n"


def append_durably(path: str | os.PathLike, line: bytes) -> int:
    """Append one whole line and fsync it; return the file's size afterwards (the line's end)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:  # a new log (a new writer, day or part)
        parent = Path(path).parent
        if not parent.is_dir():
            perms.shared_dir(parent)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, perms.FILE_MODE)
        try:  # the umask may have taken the group's write bit: the store's group shares the logs
            os.fchmod(fd, perms.FILE_MODE)
        except OSError:
            pass
    try:
        before = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):  # a short write on a full disk: undo it, report it
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes); disk full?")
            os.fsync(fd)
        except OSError:  # not durable, so never acknowledged: leave no part of it for a replay to find
            try:
                os.ftruncate(fd, before)
            except OSError:
                pass
            raise
        return os.lseek(fd, 0, os.SEEK_CUR)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class LogLine:
    path: str  # relative to the store root
    number: int  # 1-based line number
    start: int  # byte offset of the line
    end: int  # byte offset after its newline
    raw: bytes
    event: dict[str, Any] | None  # None when the line is not valid JSON
    error: str | None = None


def read_lines(root: Path, rel: str, start: int = 0, first_line: int = 1) -> Iterator[LogLine]:
    """Every complete line of a log from byte ``start``; an unterminated tail is not yielded."""
    with open(root / rel, "rb") as f:
        f.seek(start)
        data = f.read()
    pos, number = 0, first_line
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return
        raw = data[pos:nl]
        try:
            ev = canonical.loads(raw)
            err = None if isinstance(ev, dict) else "not a JSON object"
            if err:
                ev = None
        except ValueError as e:
            ev, err = None, f"not valid JSON ({e})"
        yield LogLine(rel, number, start + pos, start + nl + 1, raw, ev, err)
        pos, number = nl + 1, number + 1


def lines_of(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, offset just past its newline, bytes) of each complete line of a log: what
    follows the last newline (nothing, or a tail cut short by a crash: ``torn_tail``) is not a line.
    The bulk reader of whole logs (replay, verify): bytes only, parsing is the caller's."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    lines.pop()
    end = 0
    for number, raw in enumerate(lines, 1):
        end += len(raw) + 1
        yield number, end, raw


_REQUIRED = {"hash": str, "writer": str, "seq": int, "ts": str, "author": str, "action": str,
             "annotation": int, "new": dict}
#: Fields an event may leave out (or set to null), else text: the hash links, the note, who and where.
_OPTIONAL_TEXT = ("base", "prev", "undoes", "reason", "comment", "login", "host")
_TEXT = (str, type(None))


def problem_of(event: dict[str, Any], _text=frozenset(_TEXT), _lo=-INT64, _hi=INT64 - 1,
               _str=str, _int=int, _dict=dict) -> str | None:
    """Why a parsed line cannot be applied as an event (a missing or mistyped field), else None.

    Every field the index stores is checked: the tool never writes another type, so a line that
    has one was written by hand, and it took the rebuild and the start-up down with a traceback."""
    try:  # the common case, fast (verify and rebuild call this for every line; the defaults: locals)
        get = event.get
        new, old, image, a, seq = event["new"], get("old"), get("image"), event["annotation"], event["seq"]
        if (type(event["hash"]) is _str and type(event["writer"]) is _str and type(seq) is _int
                and type(event["ts"]) is _str and type(event["author"]) is _str and type(event["action"]) is _str
                and type(a) is _int and type(new["category"]) is _str and type(new["status"]) is _str
                and _lo <= a <= _hi and _lo <= seq <= _hi
                and (old is None or (type(old) is _dict and type(old.get("category")) is _str
                                     and type(old.get("status")) is _str))
                and (image is None or (type(image) is _int and _lo <= image <= _hi))
                and type(get("prev")) in _text and type(get("base")) in _text and type(get("undoes")) in _text
                and type(get("reason")) in _text and type(get("comment")) in _text
                and type(get("login")) in _text and type(get("host")) in _text):
            return None
    except (KeyError, TypeError, AttributeError):
        pass
    for key, kind in _REQUIRED.items():
        value = event.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field {key!r} is missing or not a {kind.__name__}"
    new = event["new"]
    if not isinstance(new.get("category"), str) or not isinstance(new.get("status"), str):
        return "field 'new' needs a category and a status"
    old = event.get("old")
    if old is not None and (not isinstance(old, dict) or not isinstance(old.get("category"), str)
                            or not isinstance(old.get("status"), str)):
        return "field 'old' is neither null nor an object with a category and a status"
    for key in ("annotation", "seq", "image"):
        value = event.get(key)
        if value is not None and (type(value) is not int or not -INT64 <= value < INT64):
            return f"field {key!r} is not an integer SQLite can hold"
    for key in _OPTIONAL_TEXT:
        if type(event.get(key)) not in _TEXT:
            return f"field {key!r} is neither null nor text"
    return None


def log_sizes(root: Path, writer: str | None = None) -> dict[str, int]:
    """Every event log (or one writer's) with its size in bytes, by relative path (unordered).

    One ``os.scandir`` walk: a store opens with this (to see whether a log grew behind the index's
    back), and a writer's day goes on in parts, so there may be thousands of files."""
    base = f"{EVENTS_DIR}/{writer}" if writer is not None else EVENTS_DIR
    out: dict[str, int] = {}
    stack = [base]
    while stack:
        rel_dir = stack.pop()
        try:
            it = os.scandir(os.path.join(root, rel_dir))
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                rel = f"{rel_dir}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    if writer is None:
                        stack.append(rel)
                elif entry.name.endswith(".jsonl") and entry.is_file():
                    out[rel] = entry.stat().st_size
    return out


def list_files(root: Path, writer: str | None = None) -> list[str]:
    """All event logs (or one writer's), relative paths, in writing order (writer, day, part)."""
    return sorted(log_sizes(root, writer), key=file_key)


def writer_of(rel: str) -> str:
    """``events/<author>/<host>/<day>.jsonl`` -> ``<author>/<host>``."""
    parts = rel.split("/")
    return "/".join(parts[1:-1])


def torn_tail(root: Path, rel: str) -> int:
    """Bytes after the last newline: a line cut short by a crash before it was acknowledged."""
    path = root / rel
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb") as f:
        back = min(size, 1 << 16)
        f.seek(size - back)
        tail = f.read()
    nl = tail.rfind(b"\n")
    if nl < 0:
        return size if back == size else 0
    return len(tail) - nl - 1
