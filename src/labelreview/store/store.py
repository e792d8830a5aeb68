"""The Store: the one place that opens SQLite, writes event logs and import folders, and commits."""

from __future__ import annotations

import gc
import hashlib
import math
import os
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..model import (
    Annotation,
    AnnotationFilter,
    Category,
    ConflictError,
    DamagedFileError,
    Image,
    ImportBatch,
    ImportWarning,
    LabelreviewError,
    Proposal,
)
from . import canonical, eventlog, forked, gitrepo, perms, schema
from .config import CONFIG_NAME, Config, load_config, write_template
from .identity import Identity, resolve_identity, slug

INDEX_DIR = ".labelreview"
INDEX_NAME = "index.sqlite"
#: Written (in the index folder, git-ignored) before a sync merges, removed once the merged events
#: are in the index and credited to their commits: still there, that sync was killed.
SYNC_JOURNAL = "sync-merge.json"
IMPORTS_DIR = "imports"
SHARD_SIZE = 100_000
STORE_ENV = "LABELREVIEW_STORE"

#: Sentinel: "decide on whatever the state is now" (the command line), as opposed to a named base.
CURRENT = object()


def utc_now() -> str:
    """UTC now, with microseconds: ``2026-11-28T03:04:05.123456Z`` (without strftime: it is slow)."""
    t = datetime.now(timezone.utc)
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
            f".{t.microsecond:06d}Z")


def find_store(start: str | os.PathLike | None = None, explicit: str | os.PathLike | None = None) -> Path:
    """--store, else LABELREVIEW_STORE, else the nearest folder upward holding labelreview.toml."""
    given = explicit or os.environ.get(STORE_ENV)
    if given:
        root = Path(given).expanduser().resolve()
        if root.exists() and not root.is_dir():  # (`init` there would fail too: say what it is)
            raise LabelreviewError(f"{root}: a file, not a labelreview store (a store is a folder)")
        if not (root / CONFIG_NAME).is_file():
            raise LabelreviewError(f"{root}: not a labelreview store (no {CONFIG_NAME}); "
                                   f"create one with `labelreview init {given}`")
        return root
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / CONFIG_NAME).is_file() and (d / ".git").exists():
            return d
    raise LabelreviewError("no labelreview store here or above; pass --store DIR, set "
                           f"{STORE_ENV}, or create one with `labelreview init DIR`")


#: The columns Store.annotations reads, in the order it unpacks them.
_ANNOTATION_COLUMNS = ("a.id, a.image_id, a.category, a.status, a.kind, a.bbox, a.segmentation, a.keypoints, "
                       "a.score, a.iscrowd, a.area, a.source, a.source_id, a.import_id, a.extra, a.scores, "
                       "a.last_event, a.updated_at, a.updated_by, a.reason, a.comment, a.proposed_category")


def _j(value: Any) -> str | None:
    return None if value is None else canonical.dumps(value).decode()


def _uj(text: str | None) -> Any:
    return None if text is None else canonical.loads(text)


def _sid(value: Any) -> str | None:
    """Source ids are kept as JSON so an int stays an int and a string stays a string."""
    return None if value is None else canonical.dumps(value).decode()




def like_pattern(text: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') matching ``text`` anywhere, its % and _ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _shuffled_by_image(items: list, seed: int, image_of) -> list:
    """The seeded random order: whole images shuffled (file-ordered ``items``), so a reviewer still
    sees an image's labels together; ``ls --order random --seed N`` and the review queue agree.

    Each image's place comes from the seed and its own id alone, never from which other images the
    queue holds: a ``--status pending`` queue that lost the images reviewed, or a store with a new
    import, keeps the images it still has in the same order (shuffling the list of images put them
    in another order each time that list changed, and images not reviewed yet ended up behind the
    place a reviewer resumed at)."""
    by_image: dict[int, list] = {}
    for item in items:
        by_image.setdefault(image_of(item), []).append(item)
    draw = {image: hashlib.blake2b(f"{seed}:{image}".encode(), digest_size=8).digest() for image in by_image}
    return [item for image in sorted(by_image, key=draw.__getitem__) for item in by_image[image]]


class Store:
    """A label store: a git repository of imports and event logs, with a live SQLite index."""

    def __init__(self, root: Path, identity: Identity, conn: sqlite3.Connection, config: Config):
        self.root = root
        self.identity = identity
        self.conn = conn
        self.config = config
        self._config_stamp = _config_stamp(root)
        self._repo = None
        self._since_checkpoint = 0
        #: Log sizes the checkpoint in progress staged: what its commit holds of each log.
        self._staged_logs: dict[str, int] | None = None
        #: Annotations the last catch-up (recovery, sync) re-folded.
        self.last_caught_up: set[int] = set()
        #: Where relative image roots start from (differs only for a store rebuilt at a revision).
        self.root_for_images = root
        #: A WAL checkpoint running after a large import (``close`` and ``reindex`` wait for it).
        self._wal_checkpoint = None
        #: A scratch index opened by ``open(damaged_ok=True)``, removed at ``close``.
        self._scratch: Path | None = None
        #: Why this process may not write the store (None: it may). Reads still work; decisions,
        #: imports, checkpoints and a reindex are refused before anything is written.
        self.read_only: str | None = None
        #: The index file in use: the store's own, or (read-only store whose index cannot be used
        #: as it is) a copy built from the files in this user's cache.
        self.index_path = root / INDEX_DIR / INDEX_NAME
        #: The store's own index opened without writing (read-only store): (uri, stat when opened).
        self._live_read_only: tuple[str, tuple] | None = None
        #: What opening the store did that the user should know (an index set aside, rebuilt...).
        self.notices: list[str] = []
        self._notify: Callable[[str], None] | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def init(cls, path: str | os.PathLike, name: str | None = None) -> Path:
        root = Path(path).expanduser().resolve()
        if (root / CONFIG_NAME).exists():
            raise LabelreviewError(f"{root}: already a labelreview store")
        if root.exists() and not root.is_dir():
            raise LabelreviewError(f"{root}: exists and is not a folder; give a new folder for the store")
        try:
            perms.shared_dir(root)  # a folder made here is the group's; one the user made is left as is
        except OSError as e:
            raise LabelreviewError(f"{root}: cannot create the store here ({e.strerror or e})") from None
        repo = gitrepo.init_repo(root)
        write_template(root, name or root.name)
        perms.shared_file(root / CONFIG_NAME)
        for keep in (eventlog.EVENTS_DIR, IMPORTS_DIR, INDEX_DIR):
            perms.shared_dir(root / keep)
        for keep in (eventlog.EVENTS_DIR, IMPORTS_DIR):
            (root / keep / ".keep").touch()
            perms.shared_file(root / keep / ".keep")
        store = cls.open(root, author=None)
        try:
            store.checkpoint(f"labelreview init: new store {name or root.name}", force=True)
        finally:
            store.close()
        del repo
        return root

    @classmethod
    def open(cls, path: str | os.PathLike, author: str | None = None, *, recover: bool = True,
             notify: Callable[[str], None] | None = None, damaged_ok: bool = False) -> "Store":
        """Open a store. ``notify`` is told, as it happens, what opening did that a user should know
        (an unreadable or foreign index set aside and rebuilt, a read-only store's index built
        elsewhere); ``store.notices`` keeps the same messages.

        ``damaged_ok`` (verify): a store with no index whose files are too damaged to build one
        (``DamagedFileError``) is opened on a scratch index built from what is readable, removed
        again at ``close()``; every other command stops on the damage instead."""
        root = Path(path).expanduser().resolve()
        journal = root / INDEX_DIR / SYNC_JOURNAL
        if journal.is_file() and (root / ".git" / "MERGE_HEAD").is_file() and os.access(journal.parent, os.W_OK):
            # A sync killed when git had stopped its merge on a conflict in labelreview.toml: the
            # config holds conflict markers and cannot be read before that merge is undone.
            from . import sync

            with gitrepo.file_lock(root / INDEX_DIR / "git.lock"):
                if sync.undo_conflicted_merge(root, journal):
                    _note_recovery(journal.parent, {"interrupted_sync": "conflicted merge undone"})
        config = load_config(root)
        identity = resolve_identity(author, cwd=str(root))
        index = root / INDEX_DIR / INDEX_NAME
        notices: list[str] = []

        def say(message: str) -> None:
            notices.append(message)
            if notify is not None:
                notify(message)

        read_only = read_only_reason(root)
        live = scratch = None
        if read_only is not None:
            conn, index, live = _open_read_only(root, read_only, say)
        else:
            try:
                perms.shared_dir(index.parent)
            except OSError as e:  # a file in its place
                why = "a file is in its place; move it away" if index.parent.exists() else (e.strerror or str(e))
                raise LabelreviewError(f"{index.parent}: cannot make the folder of the index here ({why})") from None
            try:
                conn = _open_index(root, index, say)
            except DamagedFileError as e:
                if not damaged_ok:
                    raise
                # (named as a rebuild's scratch file: if verify is killed, the next reindex removes it)
                index = scratch = index.with_name(f"{index.name}.{os.getpid()}.rebuild-verify")
                say(f"the store has no index and one cannot be built from its files ({str(e).split('; ')[0]}): checking "
                    "against a scratch index built from what is readable, not kept")
                _rebuild_into(root, index, strict=False)
                conn = _connect_index(root, index, say)
        store = cls(root, identity, conn, config)
        store.read_only, store.index_path, store._live_read_only = read_only, index, live
        store._scratch = scratch
        store.notices, store._notify = notices, notify
        if recover:
            if not store._finish_killed_sync():
                store.recover()
        return store

    def _finish_killed_sync(self) -> bool:
        """A sync killed in the middle of its merge (its journal is still there): finish it before
        anything replays the files git was writing. Waits for a sync that is merging right now.
        True when this replayed the logs (``recover``) itself."""
        journal = self.root / INDEX_DIR / SYNC_JOURNAL
        if not journal.exists() or not os.access(journal.parent, os.W_OK):
            return False
        with gitrepo.file_lock(self.root / INDEX_DIR / "git.lock"):
            if not journal.exists():  # the sync finished while we waited, or another process did it
                return False
            self._finish_killed_sync_locked(gitrepo.clear_stale_git_locks(self.root))
        return True

    def _finish_killed_sync_locked(self, removed_locks: list[str]) -> None:
        from . import sync  # (sync builds on the store)

        journal = self.root / INDEX_DIR / SYNC_JOURNAL
        note = sync.finish_killed_merge(self, journal)
        self.reload_config()
        self.recover()
        _attribute_commits(self.root, self.conn)
        journal.unlink()
        self._note_recovery({**note, **({"removed_stale_git_locks": removed_locks} if removed_locks else {})})
        failed = str(note.get("merge") or "")
        if failed.startswith("failed: "):  # (the store is as it was before that sync: say what stops the merge)
            self._say(f"a sync was interrupted in its merge; the store is back as it was before it, nothing "
                      f"lost, but the merge cannot be made again: {failed.removeprefix('failed: ')}")

    def reload_config(self) -> None:
        """Read labelreview.toml again (a sync may have brought a new one)."""
        stamp = _config_stamp(self.root)
        self.config = load_config(self.root)
        self._config_stamp = stamp

    def refresh_config(self) -> None:
        """Read labelreview.toml again if it changed since it was read: roles an admin changes while
        a review is open apply to its next decision (a reviewer taken off the list went on deciding
        until they quit). One stat when it did not change."""
        if _config_stamp(self.root) != self._config_stamp:
            self.reload_config()

    def _wait_wal_checkpoint(self) -> None:
        if self._wal_checkpoint is not None:
            self._wal_checkpoint.join()
            self._wal_checkpoint = None

    def close(self) -> None:
        try:
            self._wait_wal_checkpoint()
            self.conn.close()
        finally:
            if self._repo is not None:
                self._repo.close()
                self._repo = None
            if self._scratch is not None:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(str(self._scratch) + suffix).unlink(missing_ok=True)
        self.check_unchanged()

    def check_unchanged(self) -> None:
        """A read-only store's index read without locks (nobody had it open when it was opened):
        had a writer changed the file since, what was read may mix two states. Say so."""
        if self._live_read_only is None or self._live_read_only[1] is None:
            return
        if _file_state(self.index_path) != self._live_read_only[1]:
            raise LabelreviewError(f"{self.index_path}: someone wrote to the store's index while this command "
                                   "read it (the store is read-only for you, so it was read without a lock); "
                                   "what it read may mix two states: run the command again")

    @property
    def index_uri(self) -> str:
        """The index in use as a read-only SQLite URI (for another connection or process)."""
        if self._live_read_only is not None:
            return self._live_read_only[0]
        return f"file:{_uri_path(self.index_path)}?mode=ro"

    @property
    def writes_index(self) -> bool:
        """False when the index in use is a read-only store's own, opened without writing: derived
        data (suspicion scores) is then kept in this connection's temporary tables."""
        return self._live_read_only is None

    def _say(self, message: str) -> None:
        self.notices.append(message)
        if self._notify is not None:
            self._notify(message)

    def refuse_if_read_only(self, what: str) -> None:
        """A change to a store this process may not write (read-only for it, or its .git is gone):
        refused, with nothing written."""
        if self.read_only is not None:
            raise LabelreviewError(
                f"{self.root}: this store is read-only for you ({self.read_only}): {what} refused, nothing "
                "was written. Reading works: status, ls, log, blame, diff, verify, export")
        if not (self.root / ".git").exists():  # (the decision was written, then its checkpoint failed)
            raise LabelreviewError(
                f"{self.root}: .git is missing, so the store has no history to add to: {what} refused, "
                "nothing was written. Restore .git (or clone the store again from its remote)")

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def repo(self):
        if self._repo is None:
            self._repo = gitrepo.open_repo(self.root)
        return self._repo

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE so a read-then-write never fails half-way."""
        if self._live_read_only is not None:  # (never a write to a read-only store's own index)
            self.refuse_if_read_only("a change to the index")
        conn = self.conn
        for attempt in range(200):
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                time.sleep(0.005 * (attempt + 1))
        else:
            raise LabelreviewError(f"{self.root}: the index stayed locked by another process; try again")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as e:
            if conn.in_transaction:  # (a failed COMMIT may have ended it already)
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(e, sqlite3.OperationalError):  # a full disk, a read-only store
                raise LabelreviewError(index_trouble(self.index_path, e)) from None
            raise

    # ------------------------------------------------------------------ reading

    def image_root(self, import_id: str) -> Path:
        override = self.config.image_roots.get(import_id)
        if override:
            return Path(override).expanduser()
        row = self.conn.execute("SELECT image_root FROM imports WHERE id=?", (import_id,)).fetchone()
        root = row["image_root"] if row else "."
        return (self.root_for_images / root) if not os.path.isabs(root) else Path(root)

    def _image(self, row: sqlite3.Row) -> Image:
        return Image(
            id=row["id"], import_id=row["import_id"], file_name=row["file_name"],
            path=str(self.image_root(row["import_id"]) / row["file_name"]),
            width=row["width"], height=row["height"], sha256=row["sha256"],
            source_id=_uj(row["source_id"]), extra=_uj(row["extra"]) or {},
        )

    def image(self, image_id: int) -> Image:
        row = self.conn.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
        if row is None:
            raise LabelreviewError(f"no image with id {image_id}")
        return self._image(row)

    def images(self, ids: list[int] | None = None) -> list[Image]:
        if ids is None:
            rows = self.conn.execute("SELECT * FROM images ORDER BY id").fetchall()
        else:
            marks = ",".join("?" * len(ids))
            rows = self.conn.execute(f"SELECT * FROM images WHERE id IN ({marks}) ORDER BY id", ids).fetchall()
        return [self._image(r) for r in rows]

    @staticmethod
    def _annotation(row: sqlite3.Row) -> Annotation:
        return Annotation(
            id=row["id"], image_id=row["image_id"], category=row["category"], status=row["status"],
            kind=row["kind"], bbox=_uj(row["bbox"]), segmentation=_uj(row["segmentation"]),
            keypoints=_uj(row["keypoints"]), score=row["score"], iscrowd=row["iscrowd"],
            area=row["area"], source=row["source"], source_id=_uj(row["source_id"]),
            import_id=row["import_id"], extra=_uj(row["extra"]) or {}, scores=_uj(row["scores"]),
            last_event=row["last_event"], updated_at=row["updated_at"], updated_by=row["updated_by"],
            reason=row["reason"], comment=row["comment"], proposed_category=row["proposed_category"],
        )

    def annotation(self, ann_id: int) -> Annotation:
        row = self.conn.execute("SELECT * FROM annotations WHERE id=?", (ann_id,)).fetchone()
        if row is None:
            raise LabelreviewError(f"no annotation with id {ann_id}")
        return self._annotation(row)

    def annotation_state(self, ann_id: int) -> Annotation:
        """An annotation's reviewed state (class, status, last decision), without its geometry (which
        is left None): what a decision needs, read without decoding polygons and masks."""
        row = self.conn.execute(
            "SELECT id, image_id, category, status, kind, source, import_id, last_event, updated_at, updated_by,"
            " reason, comment, proposed_category FROM annotations WHERE id=?", (ann_id,)).fetchone()
        if row is None:
            raise LabelreviewError(f"no annotation with id {ann_id}")
        return Annotation(id=row[0], image_id=row[1], category=row[2], status=row[3], kind=row[4], bbox=None,
                          segmentation=None, keypoints=None, score=None, iscrowd=0, area=None, source=row[5],
                          source_id=None, import_id=row[6], extra={}, scores=None, last_event=row[7],
                          updated_at=row[8], updated_by=row[9], reason=row[10], comment=row[11],
                          proposed_category=row[12])

    def annotations(self, flt: AnnotationFilter | None = None, order: str = "file",
                    seed: int = 0) -> list[Annotation]:
        where, params = self._where(flt or AnnotationFilter())
        cur = self.conn.cursor()
        cur.row_factory = None  # plain tuples, read by position: the review screen reads an image's
        # annotations at every key press, and sqlite3.Row looks each column up by name
        rows = cur.execute(
            f"SELECT {_ANNOTATION_COLUMNS} FROM annotations a WHERE {where} ORDER BY {self._order(order)}",
            params,
        ).fetchall()
        loads = canonical.loads
        anns = [Annotation(
            id=r[0], image_id=r[1], category=r[2], status=r[3], kind=r[4],
            bbox=None if r[5] is None else loads(r[5]),
            segmentation=None if r[6] is None else loads(r[6]),
            keypoints=None if r[7] is None else loads(r[7]),
            score=r[8], iscrowd=r[9], area=r[10], source=r[11],
            source_id=None if r[12] is None else loads(r[12]),
            import_id=r[13], extra=(None if r[14] is None else loads(r[14])) or {},
            scores=None if r[15] is None else loads(r[15]),
            last_event=r[16], updated_at=r[17], updated_by=r[18], reason=r[19], comment=r[20],
            proposed_category=r[21]) for r in rows]
        return _shuffled_by_image(anns, seed, attrgetter("image_id")) if order == "random" else anns

    def annotation_keys(self, flt: AnnotationFilter | None = None, order: str = "file",
                        seed: int = 0, *, limit: int | None = None, from_image: int | None = None,
                        by_image: bool = False, conn: sqlite3.Connection | None = None,
                        also: int | None = None) -> list[tuple[int, int]]:
        """(annotation id, image id) pairs of a queue, in order, without decoding geometry.

        ``limit`` and ``from_image`` (file order only: start at that image) read a window of a big
        queue; ``by_image`` walks the image index (file order), which stops after ``limit`` rows
        when the filter matches most annotations, where SQLite would otherwise sort every match
        (measured at 1M: 3 ms instead of 885 ms); ``conn`` reads through another connection;
        ``also`` adds that annotation, matching or not, at its place in the order."""
        where, params = self._where(flt or AnnotationFilter(), also)
        if from_image is not None:
            if order != "file":
                raise ValueError("from_image needs the file order")
            where += " AND a.image_id >= ?"
            params.append(from_image)
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        cur = (conn or self.conn).cursor()
        cur.row_factory = None  # plain tuples: a sqlite3.Row per item doubles the time at 1M items
        keys = cur.execute(
            f"SELECT a.id, a.image_id FROM annotations a{' INDEXED BY annotations_image' if by_image else ''} "
            f"WHERE {where} ORDER BY {self._order(order)}{tail}",
            params,
        ).fetchall()
        return _shuffled_by_image(keys, seed, itemgetter(1)) if order == "random" else keys

    @staticmethod
    def _order(order: str) -> str:
        return {
            "file": "a.image_id, a.id",
            "random": "a.image_id, a.id",
            "score": "a.score IS NULL, a.score ASC, a.id",
            "score-desc": "a.score IS NULL, a.score DESC, a.id",
            "id": "a.id",
        }.get(order) or _bad_order(order)

    @staticmethod
    def _where(flt: AnnotationFilter, also: int | None = None) -> tuple[str, list[Any]]:
        """The filter as a WHERE clause; ``also``: that annotation too, whether it matches or not."""
        clauses, params = ["1=1"], []

        def among(column: str, values: list[Any]) -> None:
            if values:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)

        among("a.status", flt.statuses)
        among("a.category", flt.categories)
        among("a.source", flt.sources)
        if flt.authors:  # as `log --by`: the whole name, or any part of it ("alice", her email)
            clauses.append("(" + " OR ".join(["a.updated_by LIKE ? ESCAPE '\\'"] * len(flt.authors)) + ")")
            params.extend(like_pattern(a) for a in flt.authors)
        among("a.reason", flt.reasons)
        among("a.image_id", flt.image_ids)
        among("a.id", flt.ids)
        if flt.score_min is not None:
            clauses.append("a.score >= ?")
            params.append(flt.score_min)
        if flt.score_max is not None:
            clauses.append("a.score <= ?")
            params.append(flt.score_max)
        if flt.conflicts:
            clauses.append("a.id IN (SELECT annotation FROM conflicts WHERE resolved IS NULL)")
        if also is not None:
            return f"(({' AND '.join(clauses)}) OR a.id = ?)", [*params, also]
        return " AND ".join(clauses), params

    def count_matching(self, flt: AnnotationFilter, status_not: str | None = None,
                       conn: sqlite3.Connection | None = None) -> int:
        where, params = self._where(flt)
        if status_not is not None:
            where += " AND a.status != ?"
            params.append(status_not)
        return (conn or self.conn).execute(f"SELECT count(*) FROM annotations a WHERE {where}",
                                           params).fetchone()[0]

    def matches_at_least(self, flt: AnnotationFilter, n: int) -> bool:
        """Whether ``n`` or more annotations match (stops counting at ``n``)."""
        where, params = self._where(flt)
        return self.conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM annotations a WHERE {where} LIMIT ?)",
                                 [*params, n]).fetchone()[0] >= n

    def reader(self) -> sqlite3.Connection:
        """A second connection to the index, for reading in another thread."""
        if self._live_read_only is not None:
            return schema.connect_read_only(self._live_read_only[0])
        return schema.connect(self.index_path)

    def checkpoint_due(self) -> bool:
        return self._since_checkpoint >= self.config.checkpoint_every

    def checkpoint_started(self) -> None:
        """Another connection is checkpointing for this one: start counting afresh."""
        self._since_checkpoint = 0

    def annotation_ids_with_status(self, ids: list[int], status: str) -> list[int]:
        out: list[int] = []
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            out += [r[0] for r in self.conn.execute(
                f"SELECT id FROM annotations WHERE status=? AND id IN ({','.join('?' * len(chunk))})",
                [status, *chunk])]
        return out

    def categories(self) -> list[Category]:
        rows = self.conn.execute("SELECT * FROM categories ORDER BY source_id IS NULL, source_id, name")
        return [Category(name=r["name"], source_id=r["source_id"], supercategory=r["supercategory"],
                         keypoints=_uj(r["keypoints"]), skeleton=_uj(r["skeleton"]),
                         extra=_uj(r["extra"]) or {}) for r in rows]

    def class_names(self) -> list[str]:
        names = [c.name for c in self.categories()]
        return names + [c for c in self.config.classes if c not in names]

    def counts(self) -> dict[str, Any]:
        # A count(*) of a whole table walks pages, not rows; a count per decided status walks only its
        # entries of the status index (GROUP BY status took 0.2 s at 1M annotations; this, 0.04 s).
        q = self.conn.execute
        decided = {s: q("SELECT count(*) FROM annotations WHERE status=?", (s,)).fetchone()[0]
                   for s in ("accepted", "relabeled", "flagged", "rejected")}
        total = q("SELECT count(*) FROM annotations").fetchone()[0]
        out: dict[str, Any] = {"pending": total - sum(decided.values()), **decided, "total": total}
        out["images"] = self.conn.execute("SELECT count(*) FROM images").fetchone()[0]
        out["events"] = self.conn.execute("SELECT count(*) FROM events").fetchone()[0]
        out["uncommitted"] = self.uncommitted()
        # Annotations waiting for adjudication (a blind disagreement is two conflicting decisions, one item).
        out["conflicts"] = self.conn.execute(
            "SELECT count(DISTINCT annotation) FROM conflicts WHERE resolved IS NULL").fetchone()[0]
        out["imports"] = self.conn.execute("SELECT count(*) FROM imports").fetchone()[0]
        return out

    def imports(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM imports ORDER BY seq")]

    def uncommitted(self) -> int:
        return self.conn.execute("SELECT count(*) FROM events WHERE git_commit IS NULL").fetchone()[0]

    def events(self, *, annotation: int | None = None, image: int | None = None,
               author: str | None = None, action: str | None = None, since: str | None = None,
               limit: int | None = None, newest_first: bool = False) -> list[dict[str, Any]]:
        clauses, params = ["1=1"], []
        for column, value in (("annotation", annotation), ("image", image), ("action", action)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if author is not None:
            clauses.append("(author = ? OR login = ? OR author LIKE ? ESCAPE '\\')")
            params += [author, author, like_pattern(author)]
        if since is not None:
            clauses.append("ts >= ?")
            params.append(since)
        # In the order the decisions were made (time, then writer and sequence, as the fold takes
        # them), not the order they reached this index: after a sync, another machine's older events
        # arrive last.
        way = "DESC" if newest_first else "ASC"
        sql = (f"SELECT * FROM events WHERE {' AND '.join(clauses)} "
               f"ORDER BY ts {way}, writer {way}, seq {way}")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._event_row(r) for r in self.conn.execute(sql, params)]

    @staticmethod
    def _event_row(r: sqlite3.Row) -> dict[str, Any]:
        return {
            "hash": r["hash"], "writer": r["writer"], "seq": r["seq"], "ts": r["ts"],
            "author": r["author"], "login": r["login"], "host": r["host"], "action": r["action"],
            "annotation": r["annotation"], "image": r["image"], "old": _uj(r["old"]),
            "new": _uj(r["new"]), "reason": r["reason"], "comment": r["comment"], "base": r["base"],
            "undoes": r["undoes"], "commit": r["git_commit"], "file": r["file"], "line": r["line"],
            "blind": r["blind"] == 1, "resolves": _uj(r["resolves"]),
        }

    def event(self, ref: str, annotation: int | None = None) -> dict[str, Any]:
        """One event by its hash or a unique prefix of it (at least 4 characters, as git allows)."""
        ref = (ref or "").strip().lower()
        if len(ref) < 4 or any(c not in "0123456789abcdef" for c in ref):
            raise LabelreviewError(f"{ref!r}: give an event hash or at least its first 4 hex digits")
        sql, params = "SELECT * FROM events WHERE hash >= ? AND hash < ?", [ref, ref + "g"]
        if annotation is not None:
            sql += " AND annotation = ?"
            params.append(annotation)
        rows = self.conn.execute(sql + " LIMIT 2", params).fetchall()
        if not rows:
            where = f" on annotation {annotation}" if annotation is not None else ""
            raise LabelreviewError(f"no event {ref}{where}")
        if len(rows) > 1:
            raise LabelreviewError(f"event prefix {ref} is ambiguous; give more of the hash")
        return self._event_row(rows[0])

    # ------------------------------------------------------------------ conflicts

    def open_conflict_events(self, ann_id: int) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT event FROM conflicts WHERE annotation=? AND resolved IS NULL ORDER BY event", (ann_id,))]

    def open_conflicts(self, ann_ids: list[int] | None = None) -> list[dict[str, Any]]:
        """Per annotation waiting for adjudication: its state now and the competing decisions (the one
        the state holds, marked ``current``, then each conflicting one, oldest first)."""
        sql = "SELECT DISTINCT annotation FROM conflicts WHERE resolved IS NULL"
        if ann_ids is None:
            ids = [r[0] for r in self.conn.execute(sql + " ORDER BY annotation")]
        else:  # (the review screen asks for one annotation per key press: never scan them all)
            ids = []
            for start in range(0, len(ann_ids), 900):
                chunk = list(ann_ids[start:start + 900])
                ids += [r[0] for r in self.conn.execute(
                    f"{sql} AND annotation IN ({','.join('?' * len(chunk))})", chunk)]
            ids.sort()
        out = []
        for ann_id in ids:
            a = self.annotation(ann_id)
            rows = self.conn.execute(
                "SELECT e.*, coalesce(f.target, c.base) AS made_on FROM conflicts c JOIN events e ON e.hash = c.event"
                " LEFT JOIN fold_alias f ON f.event = c.base WHERE c.annotation=? AND c.resolved IS NULL"
                " ORDER BY e.ts, e.writer, e.seq", (ann_id,)).fetchall()
            decisions = []
            cur = self._holding_decision(a.last_event)
            # The decision the state holds competes when the conflicting ones were made on an older
            # state (a sync); blind decisions that disagree were made on the state itself, which is
            # then no one's choice among them.
            if cur is not None and cur["hash"] not in {r["made_on"] for r in rows}:
                decisions.append({**cur, "current": True})
            decisions += [{**self._event_row(r), "current": False} for r in rows]
            out.append({"annotation": a.id, "image": a.image_id, "category": a.category, "status": a.status,
                        "proposed_category": a.proposed_category, "last_event": a.last_event,
                        "decisions": decisions})
        return out

    def _holding_decision(self, last_event: str | None) -> dict[str, Any] | None:
        """The decision whose state the annotation is in: its last event, or, when that is an undo,
        the decision whose state the undo brought back (an undo is nobody's choice to compete)."""
        seen: set[str] = set()
        h = last_event
        while h is not None and h not in seen:
            seen.add(h)
            row = self.conn.execute("SELECT * FROM events WHERE hash=?", (h,)).fetchone()
            if row is None:
                return None
            if row["action"] != "undo":
                return self._event_row(row)
            target = self.conn.execute("SELECT base FROM events WHERE hash=?", (row["undoes"],)).fetchone()
            if target is None:
                return None
            alias = self.conn.execute("SELECT target FROM fold_alias WHERE event=?", (target[0],)).fetchone()
            h = alias[0] if alias is not None else target[0]
        return None

    def agreed_with(self, event: str) -> str | None:
        """The decision ``event`` was merged into as identical (another reviewer's same decision,
        met in a sync), or None."""
        row = self.conn.execute("SELECT target FROM fold_alias WHERE event=?", (event,)).fetchone()
        return row[0] if row is not None else None

    def agreeing(self, event: str) -> bool:
        """Whether another decision, not taken back, was merged into ``event`` as identical."""
        return self.conn.execute(
            "SELECT 1 FROM fold_alias f JOIN events e ON e.hash = f.event WHERE f.target=? AND e.action != 'undo'"
            " AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.hash)", (event,)).fetchone() is not None

    # ------------------------------------------------------------------ blind double review

    def blind_decisions(self, author: str, ann_ids: list[int]) -> dict[int, dict[str, Any]]:
        """This author's blind decisions still waiting for a second reviewer: annotation -> new state."""
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ann_ids), 900):
            chunk = ann_ids[start:start + 900]
            for r in self.conn.execute(
                    f"SELECT annotation, new, event FROM blind_pending WHERE author=? AND annotation IN"
                    f" ({','.join('?' * len(chunk))})", [author, *chunk]):
                out[r[0]] = {**_uj(r[1]), "event": r[2]}
        return out

    def own_blind_pending(self, author: str, ann_ids: list[int] | None = None) -> list[int]:
        """Annotations still pending in the store on which ``author``'s blind decision is in effect:
        waiting for a second reviewer, or gone to adjudication and not taken back. (All of them, or
        those among ``ann_ids``.) Small tables: blind decisions waiting, and open conflicts."""
        sql = ("SELECT b.annotation FROM blind_pending b JOIN annotations a ON a.id = b.annotation"
               " WHERE b.author = ? AND a.status = 'pending' {0}"
               " UNION SELECT c.annotation FROM conflicts c JOIN events e ON e.hash = c.event"
               " JOIN annotations a ON a.id = c.annotation WHERE c.resolved IS NULL AND e.author = ?"
               " AND e.blind = 1 AND a.status = 'pending' {1}"
               " AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.hash)")
        if ann_ids is None:
            return [r[0] for r in self.conn.execute(sql.format("", ""), (author, author))]
        out: list[int] = []
        for start in range(0, len(ann_ids), 400):
            chunk = ann_ids[start:start + 400]
            marks = ",".join("?" * len(chunk))
            out += [r[0] for r in self.conn.execute(
                sql.format(f"AND b.annotation IN ({marks})", f"AND c.annotation IN ({marks})"),
                (author, *chunk, author, *chunk))]
        return out

    def blind_waiting(self, ann_id: int) -> dict[str, str]:
        """Blind decisions on this annotation waiting for a second reviewer: author -> event hash."""
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT author, event FROM blind_pending WHERE annotation=?", (ann_id,))}

    def blind_reviewers(self, ann_ids: list[int]) -> dict[int, set[str]]:
        """Who made a blind decision on each of these annotations that is in effect: not taken back,
        and still waiting for a second reviewer, gone to adjudication (open or settled), or one of
        two that agreed while their agreement stands. A decision the fold has let go (the other
        half of an agreement taken back) counts no more: the label needs two reviewers again."""
        out: dict[int, set[str]] = {}
        for start in range(0, len(ann_ids), 900):
            chunk = ann_ids[start:start + 900]
            for r in self.conn.execute(
                    f"SELECT DISTINCT annotation, author FROM events e WHERE blind=1 AND action != 'undo' AND"
                    f" annotation IN ({','.join('?' * len(chunk))}) AND NOT EXISTS"
                    f" (SELECT 1 FROM events u WHERE u.undoes = e.hash) AND ("
                    f" EXISTS (SELECT 1 FROM blind_pending b WHERE b.annotation = e.annotation AND b.event = e.hash)"
                    f" OR EXISTS (SELECT 1 FROM conflicts c WHERE c.event = e.hash)"
                    f" OR EXISTS (SELECT 1 FROM fold_alias f WHERE f.annotation = e.annotation AND f.target = e.hash)"
                    f" OR EXISTS (SELECT 1 FROM fold_alias f WHERE f.event = e.hash AND NOT EXISTS"
                    f" (SELECT 1 FROM events u WHERE u.undoes = f.target)))", chunk):
                out.setdefault(r[0], set()).add(r[1])
        return out

    # ------------------------------------------------------------------ leases (one server, several reviewers)

    def _lease_mine(self, row) -> bool:
        return row["host"] == self.identity.host and row["pid"] == os.getpid()

    def _lease_live(self, row, now: float) -> bool:
        if row["expires"] <= now:
            return False
        if row["host"] == self.identity.host:  # its process died: the image is free again
            try:
                os.kill(row["pid"], 0)
            except ProcessLookupError:
                return False
            except OSError:
                pass
        return True

    def acquire_lease(self, image_id: int, ttl: float | None = None) -> dict[str, Any] | None:
        """Reserve an image for this process for ``ttl`` seconds (renewing our own lease). If another
        live session holds it, nothing changes and its lease is returned."""
        ttl = self.config.lease_seconds if ttl is None else ttl
        now = time.time()
        ident = self.identity
        with self._write() as conn:
            row = conn.execute("SELECT * FROM leases WHERE image_id=?", (image_id,)).fetchone()
            if row is not None and not self._lease_mine(row) and self._lease_live(row, now):
                return dict(row)
            conn.execute("INSERT OR REPLACE INTO leases(image_id, holder, login, host, pid, expires)"
                         " VALUES(?,?,?,?,?,?)", (image_id, ident.author, ident.login, ident.host,
                                                  os.getpid(), now + ttl))
        return None

    def release_leases(self, image_id: int | None = None) -> None:
        sql, params = "DELETE FROM leases WHERE host=? AND pid=?", [self.identity.host, os.getpid()]
        if image_id is not None:
            sql += " AND image_id=?"
            params.append(image_id)
        with self._write() as conn:
            conn.execute(sql, params)

    def leased_by_others(self) -> dict[int, dict[str, Any]]:
        """Images other live sessions hold now: image id -> their lease."""
        now = time.time()
        rows = self.conn.execute("SELECT * FROM leases WHERE expires > ?", (now,)).fetchall()
        return {r["image_id"]: dict(r) for r in rows if not self._lease_mine(r) and self._lease_live(r, now)}

    # ------------------------------------------------------------------ the write path

    def record(self, ann_id: int, action: str, new: dict[str, Any], *, reason: str | None = None,
               comment: str | None = None, base: Any = CURRENT, undoes: str | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Make one change durable: fsync the log line, then update the index in one transaction.

        ``base`` is the event hash (or None for an untouched proposal) the decision was made on;
        if the annotation changed since, nothing is written and ConflictError says who changed it.
        """
        self.refuse_if_read_only(f"{action} {ann_id}")
        ident = self.identity
        writer = ident.writer
        durable = None
        try:
            with self._write() as conn:
                while True:
                    log = self._own_log(conn, writer)
                    row = conn.execute("SELECT image_id, category, status, last_event, updated_at, updated_by"
                                       " FROM annotations WHERE id=?", (ann_id,)).fetchone()
                    if row is None:
                        raise LabelreviewError(f"no annotation with id {ann_id}")
                    if base is not CURRENT and base != row["last_event"] and not (base and conn.execute(
                            "SELECT 1 FROM fold_alias WHERE event=? AND target IS ?", (base, row["last_event"])).fetchone()):
                        raise ConflictError(
                            f"annotation {ann_id} was changed by {row['updated_by']} at {row['updated_at']} "
                            f"({row['status']}, {row['category']}) after you saw it; nothing was written")
                    head = conn.execute("SELECT seq, hash FROM writers WHERE writer=?", (writer,)).fetchone()
                    # Never earlier than what it follows (this writer's last event, the state it was made on,
                    # the events it resolves), whatever the clock says: the canonical fold order keeps cause
                    # before effect even across machines whose clocks disagree.
                    after = [head["hash"] if head else None, row["last_event"], *((extra or {}).get("resolves") or ())]
                    ts = _not_before(utc_now(), conn, [h for h in after if h])
                    rel = eventlog.next_file(writer, ts, log[0] if log else None, log[1] if log else 0)
                    # A new file (a new day, or the next part): a process of this writer that crashed
                    # after its fsync may have started it already. Replay that first, then decide again.
                    if (log is None or rel != log[0]) and self._catch_up(conn, writer):
                        continue
                    break
                event = {
                    "v": eventlog.EVENT_VERSION, "writer": writer,
                    "seq": (head["seq"] + 1) if head else 1, "ts": ts,
                    "author": ident.author, "login": ident.login, "host": ident.host,
                    "action": action, "annotation": ann_id, "image": row["image_id"],
                    "old": {"category": row["category"], "status": row["status"]}, "new": new,
                    "reason": reason, "comment": comment, "base": row["last_event"],
                    "undoes": undoes, "prev": head["hash"] if head else None,
                }
                if extra:
                    event.update(extra)
                event, line = eventlog.seal(event)
                try:
                    end = eventlog.append_durably(os.path.join(self.root, rel), line)
                except OSError as e:
                    raise LabelreviewError(f"{self.root / rel}: cannot write the decision to the event log "
                                           f"({e.strerror or e}); {action} {ann_id} was not made") from None
                durable = rel
                self._apply(conn, event, rel, end, (log[2] + 1) if log and rel == log[0] else 1)
        except LabelreviewError as e:
            if durable is None:
                raise
            # The line is on disk (fsync'd): the decision is made, only the index missed it.
            raise LabelreviewError(
                f"{action} {ann_id} is recorded in {self.root / durable}, but the index could not take it: {e}; "
                "the next command (or `labelreview reindex`) brings the index up to date") from None
        self._since_checkpoint += 1
        return event

    def _own_log(self, conn: sqlite3.Connection, writer: str) -> tuple[str, int, int] | None:
        """This writer's latest log file as the index knows it: (path, size, lines), after replaying
        what a crashed process of this writer appended to it (one stat, not a listing of the logs)."""
        lo = f"{eventlog.EVENTS_DIR}/{writer}/"
        query = ("SELECT path, size, lines FROM event_files WHERE path >= ? AND path < ? "
                 "ORDER BY path DESC LIMIT 1")
        r = conn.execute(query, (lo, lo[:-1] + "0")).fetchone()
        if r is None:
            return None
        try:
            size = os.stat(os.path.join(self.root, r[0])).st_size
        except FileNotFoundError:
            size = -1
        if size < r[1]:
            # Cut short or removed behind the tool's back (a disk fault, an edit, a bad restore): a line
            # appended now would be glued to a torn one, and events the index holds would be gone.
            have = "is gone" if size < 0 else f"holds {size} bytes"
            raise LabelreviewError(
                f"{self.root / r[0]}: the event log {have}, the index knows {r[1]}: it was cut short or "
                f"removed outside labelreview; nothing was written. Restore it (from git: `git checkout -- "
                f"{r[0]}` in the store), then run `labelreview verify`")
        if size != r[1] and self._catch_up(conn, writer):
            r = conn.execute(query, (lo, lo[:-1] + "0")).fetchone()
        return (r[0], r[1], r[2])

    def last_undoable(self) -> dict[str, Any] | None:
        """This reviewer's latest decision made on this machine that no undo has taken back yet.

        This writer's (author and host; its events arrive in the index in the order it wrote them), not
        the latest of the author's to arrive, which after a sync can be one made earlier on another
        machine."""
        ident = self.identity
        row = self.conn.execute(
            "SELECT * FROM events e WHERE author=? AND writer=? AND action != 'undo' AND NOT EXISTS "
            "(SELECT 1 FROM events u WHERE u.undoes = e.hash) ORDER BY ord DESC LIMIT 1",
            (ident.author, ident.writer),
        ).fetchone()
        return self._event_row(row) if row else None

    def _apply(self, conn: sqlite3.Connection, ev: dict[str, Any], rel: str, end: int,
               line: int | None = None, *, fold: bool = True) -> None:
        """Apply one sealed event to the index: record it, then fold it into its annotation's state.

        ``fold=False`` records the event only (the caller re-folds the annotations it touched)."""
        if line is None:
            file_row = conn.execute("SELECT lines FROM event_files WHERE path=?", (rel,)).fetchone()
            line = (file_row["lines"] if file_row else 0) + 1
        conn.execute(_INSERT_EVENT, _event_values(ev, rel, line, end))
        if fold:
            st = _load_fold(conn, ev["annotation"])
            if st is not None:
                if _fold_step(st, ev):
                    _save_fold(conn, st)
                else:  # made on an older state: the whole history of the annotation decides
                    self.refold([ev["annotation"]], conn)
        conn.execute(
            "INSERT INTO writers(writer, seq, hash) VALUES(?,?,?) ON CONFLICT(writer) DO UPDATE SET"
            " seq=excluded.seq, hash=excluded.hash", (ev["writer"], ev["seq"], ev["hash"]),
        )
        conn.execute(
            "INSERT INTO event_files(path, writer, size, lines) VALUES(?,?,?,?) ON CONFLICT(path) DO"
            " UPDATE SET size=excluded.size, lines=excluded.lines",
            (rel, ev["writer"], end, line),
        )

    def refold(self, annotation_ids: list[int] | set[int], conn: sqlite3.Connection | None = None) -> int:
        """Recompute the state of these annotations from their events in canonical order.

        Each annotation goes back to its proposal, loses its conflicts and fold bookkeeping, and its
        events (the rows stay) are folded again in (ts, writer, seq) order, the order a rebuild uses:
        after a sync brought events older than some already applied, both machines agree again."""
        ids = sorted(set(annotation_ids))
        if not ids:
            return 0
        if conn is None:
            with self._write() as c:
                return self.refold(ids, c)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            conn.execute(f"UPDATE annotations SET category=proposed_category, status='pending', last_event=NULL,"
                         f" updated_at=NULL, updated_by=NULL, reason=NULL, comment=NULL WHERE id IN ({marks})", chunk)
            for table in ("conflicts", "fold_alias", "blind_pending"):
                conn.execute(f"DELETE FROM {table} WHERE annotation IN ({marks})", chunk)
            states = {r[0]: _fresh_fold(r[0], r[1]) for r in conn.execute(
                f"SELECT id, proposed_category FROM annotations WHERE id IN ({marks})", chunk)}
            rows = conn.execute(
                f"SELECT annotation, {FOLD_COLUMNS} FROM events WHERE annotation IN ({marks})"
                f" ORDER BY ts, writer, seq", chunk)
            settled: dict[str, Any] = {}
            for r in rows:
                st = states.get(r["annotation"])
                if st is not None:
                    _fold_step(st, fold_event(r, settled))
            folded = [st for st in states.values() if st is not None]
            conn.executemany(_UPDATE_STATE, [(*(st[k] for k in _STATE), st["id"]) for st in folded])
            for st in folded:
                _save_fold(conn, st, state=False)
        return len(ids)

    def _catch_up(self, conn: sqlite3.Connection, writer: str | None = None) -> int:
        """Replay log lines the index has not seen (a crash between fsync and commit); in a write tx."""
        known = {r["path"]: (r["size"], r["lines"])
                 for r in conn.execute("SELECT path, size, lines FROM event_files")}
        sizes = eventlog.log_sizes(self.root, writer)
        todo: list[tuple[str, int, int]] = []
        for rel in sorted(sizes, key=eventlog.file_key):
            size = sizes[rel]
            start, lines = known.get(rel, (0, 0))
            if size > start:
                todo.append((rel, start, lines))
        replayed = 0
        touched: set[int] = set()
        for rel, start, lines in todo:
            torn = eventlog.torn_tail(self.root, rel)
            if start and (sizes[rel] - torn < start or not _line_ends_at(self.root / rel, start)):
                # What the index knows of this log no longer ends on a line: the known part was edited
                # (or the index was). Nothing here is a crash's tail: dropping the unterminated end
                # would cut an acknowledged line, and reading on from there would read half a line.
                raise DamagedFileError(
                    f"{rel}: the index knows its first {lines} line(s) ({start} bytes), but byte {start} "
                    "is not the end of a line any more: the log (or the index) was edited outside "
                    "labelreview; nothing was changed. Run `labelreview verify`")
            if torn:
                self._drop_torn_tail(rel, torn)
            for ll in eventlog.read_lines(self.root, rel, start, first_line=lines + 1):
                problem = ll.error if ll.event is None else eventlog.problem_of(ll.event)
                if problem:
                    raise DamagedFileError(f"{rel}:{ll.number}: unreadable event line ({problem}); "
                                           "run `labelreview verify`")
                if conn.execute("SELECT 1 FROM events WHERE hash=?", (ll.event["hash"],)).fetchone():
                    continue
                # Lines that arrive late (a crash's tail, or another machine's, by sync) may be older than
                # events already folded: record them, then fold their annotations again in canonical order.
                self._apply(conn, ll.event, rel, ll.end, ll.number, fold=False)
                touched.add(ll.event["annotation"])
                replayed += 1
        self.refold(touched, conn)
        self.last_caught_up = touched
        return replayed

    def _drop_torn_tail(self, rel: str, torn: int) -> None:
        """A line cut short by a crash was never acknowledged: remove it, and say so in a local log.
        (Not in a store this process may not write: the line is then only left unread.)"""
        if self.read_only is not None:
            return
        path = self.root / rel
        size = path.stat().st_size
        with open(path, "rb+") as f:
            f.seek(size - torn)
            cut = f.read()
            f.truncate(size - torn)
            os.fsync(f.fileno())
        self._note_recovery({"file": rel, "dropped_bytes": torn, "text": cut[:400].decode("utf-8", "replace")})

    def _note_recovery(self, note: dict[str, Any]) -> None:
        _note_recovery(self.index_path.parent, note)

    def recover(self) -> int:
        """On start: replay any log tail the index has not seen, and any import it has not loaded."""
        self.last_caught_up = set()
        if self._live_read_only is not None:
            return 0  # (opened so only because nothing was left to replay: see _open_read_only)
        if not _behind(self.conn, self.root):
            return 0
        with self._write() as conn:
            for folder in self._unloaded_imports():
                _load_import_folder(conn, self.root / IMPORTS_DIR / folder)
            return self._catch_up(conn)

    def _unloaded_imports(self) -> list[str]:
        return _unloaded_imports(self.conn, self.root)

    # ------------------------------------------------------------------ git checkpoints

    def maybe_checkpoint(self) -> str | None:
        if self._since_checkpoint >= self.config.checkpoint_every:
            return self.checkpoint()
        return None

    def checkpoint(self, message: str | None = None, force: bool = False) -> str | None:
        """Commit the event logs and imports to git; None when there was nothing to commit."""
        self.refuse_if_read_only("commit")
        self._since_checkpoint = 0
        try:
            repo = self.repo
        except LabelreviewError as e:  # (git cannot read the repository: a damaged HEAD)
            raise self._with_decisions_safe(e) from None
        with gitrepo.file_lock(self.root / INDEX_DIR / "git.lock") as holder_died:
            if holder_died:  # a checkpoint was killed inside git: its lock files would block us forever
                removed = gitrepo.clear_stale_git_locks(self.root)
                if (self.root / INDEX_DIR / SYNC_JOURNAL).exists():  # ... or a sync, in its merge
                    self._finish_killed_sync_locked(removed)
                elif removed:
                    self._note_recovery({"removed_stale_git_locks": removed})
                # ... and maybe after its commit, before it marked the events that commit holds:
                # they are that commit's, not the one this checkpoint is about to make. Not HEAD's
                # as such: a sync killed after its merge brought events that older commits hold.
                _attribute_commits(self.root, self.conn)
            try:
                damaged = gitrepo.damaged_head(self.root)
                if damaged:  # (a commit now would start a new history, cut off from the old one)
                    raise LabelreviewError(f"{damaged}; nothing was committed")
                others_sha = self._commit_other_writers(repo)
                # Only those allowed to change the config commit labelreview.toml (roles live there).
                keep_out = () if self.config.allows("config", self.identity.login) else (CONFIG_NAME,)
                with self._write() as conn:  # nobody appends while git reads the logs (and only then)
                    # The logs holding events git has not got yet, and how far the index knows them:
                    # only these of events/ are staged (git add re-hashes each file it is given). A log
                    # gone from the disk is not staged as deleted (verify reports it).
                    pending = conn.execute(
                        "SELECT action, author, file, writer FROM events WHERE git_commit IS NULL").fetchall()
                    # This writer's logs only: another's lines still pending were appended after its
                    # commit above, and go in that reviewer's next commit, in their own name.
                    files = sorted({r["file"] for r in pending if r["writer"] == self.identity.writer})
                    logs = {r[0]: r[1] for r in conn.execute(
                        f"SELECT path, size FROM event_files WHERE path IN ({','.join('?' * len(files))})",
                        files) if os.path.isfile(os.path.join(self.root, r[0]))} if files else {}
                    gitrepo.add(repo, exclude=keep_out, logs=None if force else sorted(logs))
                changed = None
                others = {r["file"] for r in pending if r["writer"] != self.identity.writer}
                if others:
                    # Another writer's events not marked committed: a local reviewer's, which this
                    # commit takes, or ones a sync brought that git holds already (a sync killed before
                    # it marked them): those belong to their own commits, not to this one.
                    changed = gitrepo.staged(repo)
                    held = others.difference(changed)
                    if held:
                        _attribute_commits(self.root, conn)
                        pending = [r for r in pending if r["file"] not in held]
                        logs = {p: n for p, n in logs.items() if p not in held}
                if force or not pending:  # an import, the config, or nothing at all?
                    changed = gitrepo.staged(repo)
                    if not changed:
                        # Events a killed checkpoint committed but did not get to mark as committed.
                        self._mark_committed(repo, "HEAD")
                        if not force:
                            return others_sha  # (another reviewer's decisions may have been committed)
                if changed is not None:
                    config_in = CONFIG_NAME in changed
                else:  # (without asking git: the file's blob id against HEAD's)
                    config_in = CONFIG_NAME not in keep_out and _differs_from_head(repo, self.root, CONFIG_NAME)
                msg = message or self._checkpoint_message(pending, changed or [], config_in)
                try:
                    sha = gitrepo.commit_staged(repo, self.identity, msg)
                except LabelreviewError:
                    if changed is None and not gitrepo.staged(repo):
                        # Nothing to commit: a killed checkpoint committed these events, unmarked.
                        self._mark_committed(repo, "HEAD")
                        return others_sha
                    raise
            except LabelreviewError as e:
                raise self._with_decisions_safe(e) from None
            self._staged_logs = logs
            self._mark_committed(repo, sha)
            return sha

    def _with_decisions_safe(self, e: LabelreviewError) -> LabelreviewError:
        """A checkpoint's failure, saying that the decisions it could not commit are not lost."""
        n = self.uncommitted()
        return LabelreviewError(f"{e} ({n} decision(s) not in git yet are safe in the event log; the "
                                "next checkpoint commits them)" if n else str(e))

    def _commit_other_writers(self, repo) -> str | None:
        """Decisions of another reviewer of this store that are not in git yet (their session was
        killed before its checkpoint): each reviewer's go in a commit of their own, authored by
        them, before this writer's commit. They went into this writer's commit, in its name (git log
        --author missed them, and this reviewer's signature covered them). Logs git holds already
        (a sync killed before it marked its events) are left to the checkpoint, which attributes them."""
        me = self.identity.writer
        sha = None
        rows = self.conn.execute("SELECT DISTINCT author, login, host, file FROM events "
                                 "WHERE git_commit IS NULL AND writer != ?", (me,)).fetchall()
        by_author: dict[str, tuple[Identity, set[str]]] = {}
        for r in rows:
            ident = Identity(r["author"], r["login"] or "", r["host"] or "")
            by_author.setdefault(r["author"], (ident, set()))[1].add(r["file"])
        for author, (ident, files) in sorted(by_author.items()):
            with self._write() as conn:  # nobody appends to the logs while git commits them as they are
                files = {f for f in files if os.path.isfile(os.path.join(self.root, f))}
                if not files:
                    continue
                marks = ",".join("?" * len(files))
                sizes = {r[0]: r[1] for r in conn.execute(
                    f"SELECT path, size FROM event_files WHERE path IN ({marks})", sorted(files))}
                gitrepo.add_paths(repo, sorted(files))
                files = set(gitrepo.staged(repo, sorted(files)))  # git holds the others already
                if not files:
                    continue
                pending = conn.execute(f"SELECT action, author FROM events WHERE git_commit IS NULL AND file IN "
                                       f"({','.join('?' * len(files))})", sorted(files)).fetchall()
                sha = gitrepo.commit_paths(repo, ident, self.identity, self._checkpoint_message(pending, []),
                                           sorted(files))
            self._staged_logs = {f: sizes[f] for f in files if f in sizes}
            self._mark_committed(repo, sha)
        return sha

    def _mark_committed(self, repo, rev: str) -> None:
        """Record which events commit ``rev`` holds (by how much of each log its blob holds). After
        a checkpoint of this process, that is how much of each log it staged: no need to ask git."""
        sizes, self._staged_logs = self._staged_logs, None
        if sizes is None or rev == "HEAD":
            files = [r[0] for r in self.conn.execute("SELECT DISTINCT file FROM events WHERE git_commit IS NULL")]
            if not files or not repo.head.is_valid():
                return
            rev = repo.git.rev_parse(rev)
            sizes = gitrepo.blob_sizes(repo, rev, files)
        if not sizes:
            return
        with self._write() as conn:
            conn.executemany("UPDATE events SET git_commit=? WHERE git_commit IS NULL AND file=? "
                             "AND end_offset <= ?", [(rev, path, size) for path, size in sizes.items()])

    def _checkpoint_message(self, pending: list[sqlite3.Row], changed: list[str], config_in: bool = False) -> str:
        """What the commit holds, in words: the decisions by whom, an import, and the project config
        when an edit of it goes in too (someone allowed to change it edited it, not through a command)."""
        config = f"{CONFIG_NAME} changed"
        if not pending:
            imports = sorted({p.split("/")[1] for p in changed if p.startswith(IMPORTS_DIR + "/")})
            if imports:
                return "import " + ", ".join(imports) + (f"; {config}" if config_in else "")
            return f"{config} by {self.identity.name}" if config_in else "labelreview checkpoint"
        words = {"accept": "accepted", "relabel": "relabeled", "flag": "flagged",
                 "reject": "rejected", "undo": "undone", "resolve": "resolved"}
        actions = Counter(r["action"] for r in pending)
        authors = sorted({r["author"] for r in pending})
        parts = [f"{n} {words.get(a, a)}" for a, n in actions.most_common()]
        who = ", ".join(a.split(" <")[0] for a in authors)
        return f"{', '.join(parts)} by {who}" + (f"; {config}" if config_in else "")

    # ------------------------------------------------------------------ imports

    def ingest(self, batch: ImportBatch, *, source: str, image_root: str | os.PathLike,
               check_images: bool = True) -> dict[str, Any]:
        """Add an import atomically: its folder is written completely, then indexed in one tx."""
        self.refuse_if_read_only("import")
        _refuse_unwritable(batch)
        src_path = Path(batch.source_file)
        # A folder format (YOLO, VOC, ImageFolder...) has no one file to hash: hash what it brings,
        # so a changed folder is a new import and the same folder again is refused.
        if src_path.is_file():
            sha = batch.source_sha256() if callable(batch.source_sha256) else batch.source_sha256
            sha = sha or canonical.file_sha256(src_path)
        else:
            if not isinstance(batch.proposals, list):  # read lazily: hashing needs them all
                batch.proposals = list(batch.proposals)
            sha = canonical.sha256_hex(
                canonical.dumps([batch.format, batch.images, batch.categories, batch.proposals]))
        dup = self.conn.execute("SELECT id FROM imports WHERE sha256=? AND source=?", (sha, source)).fetchone()
        if dup:
            raise LabelreviewError(f"{batch.source_file}: already imported as {dup['id']} (source {source!r})")
        root_abs = Path(image_root).expanduser().resolve()
        try:
            root_rec = os.path.relpath(root_abs, self.root)
        except ValueError:
            root_rec = str(root_abs)
        if root_rec.startswith(".." + os.sep + ".." + os.sep + ".."):
            root_rec = str(root_abs)
        # The images' own problems; the reader's (batch.warnings) come first in the manifest.
        warnings: list[ImportWarning] = []
        image_info = _check_images(batch, root_abs, warnings, check_images)
        ts = utc_now()
        import_id = f"{ts[:19].replace('-', '').replace(':', '')}-{slug(source, 32)}-{sha[:8]}"
        folder = self.root / IMPORTS_DIR / import_id
        # Written beside the index (git-ignored), then renamed into imports/ whole: an import killed
        # half-way leaves nothing a checkpoint could commit.
        removed = _remove_dead_imports(self.root / INDEX_DIR)
        if removed:
            self._say(f"removed what imports killed half-way left in {self.root / INDEX_DIR}: {', '.join(removed)}")
        tmp = Path(tempfile.mkdtemp(prefix=f"import-{os.getpid()}-", dir=self.root / INDEX_DIR))
        prehash = _GitPrehash(self.root, f"{IMPORTS_DIR}/{import_id}")
        auto = None
        try:
            with self._write() as conn, _gc_paused():
                result = _write_import(conn, tmp, batch, import_id=import_id, source=source, sha=sha,
                                       ts=ts, identity=self.identity, image_root=root_rec,
                                       image_info=image_info, warnings=warnings, prehash=prehash)
                perms.shared_tree(tmp)  # written privately; the store's group reads it
                os.replace(tmp, folder)
                eventlog.fsync_dir(folder.parent)
                _load_import_folder(conn, folder)
                if result["annotations"] >= BACKGROUND_CHECKPOINT_ROWS:
                    # The commit would copy the WAL's pages into the index file while we wait.
                    auto = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
                    conn.execute("PRAGMA wal_autocheckpoint=0")
            if auto is not None:
                self._wait_wal_checkpoint()  # (a previous import's, if it is still copying)
                self._wal_checkpoint = _checkpoint_in_background(self.root / INDEX_DIR / INDEX_NAME)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if folder.exists() and not self.conn.execute(
                    "SELECT 1 FROM imports WHERE id=?", (import_id,)).fetchone():
                shutil.rmtree(folder, ignore_errors=True)
            if isinstance(e, OSError):  # a full disk, a read-only store: the store is as it was
                where = e.filename or self.root / INDEX_DIR
                raise LabelreviewError(f"{where}: cannot write the import ({e.strerror or e}); nothing was "
                                       "imported, the store is as it was") from None
            if isinstance(e, LabelreviewError) and "index cannot be used" in str(e):
                raise LabelreviewError(f"{e}; nothing was imported, the store is as it was") from None
            raise
        finally:
            if auto is not None:
                self.conn.execute(f"PRAGMA wal_autocheckpoint={int(auto)}")
            prehash.wait()
        return result

    # ------------------------------------------------------------------ rebuild

    def reindex(self) -> dict[str, int]:
        """Rebuild the index from the committed files and swap it in; returns what it holds.

        Under the rebuild lock, into a scratch file named with this process's pid: two at once
        rebuild one after the other, each whole, and neither trips over the other's file. Then
        what dead processes left beside the index is removed, and older copies set aside beyond
        the newest few (each said)."""
        self.refuse_if_read_only("reindex")
        index = self.index_path
        self._wait_wal_checkpoint()
        self.conn.close()
        try:
            with _rebuild_lock(index.parent, self._say):
                new = index.with_name(f"{index.name}.{os.getpid()}.rebuild")
                try:
                    _rebuild_into(self.root, new)
                except BaseException as e:
                    for suffix in ("", "-wal", "-shm", "-journal"):
                        Path(str(new) + suffix).unlink(missing_ok=True)
                    if isinstance(e, (sqlite3.OperationalError, OSError)):  # a full disk: the index as it was stays
                        raise LabelreviewError(index_trouble(new, e, "cannot write the new index") +
                                               "; the index is left as it was") from None
                    raise
                _stamp_file(new, root=self.root)
                perms.shared_file(new)
                for suffix in ("-wal", "-shm"):
                    Path(str(index) + suffix).unlink(missing_ok=True)
                os.replace(new, index)
                removed = _tidy_index_folder(index.parent, index)
                pruned = _prune_set_aside(index)
        finally:
            self.conn = schema.connect(index)
        if removed:
            self._say(f"removed what dead processes left in {index.parent}: {', '.join(removed)}")
        if pruned:
            self._say(f"{index.parent}: {_pruned_text(pruned)[2:]}")
        c = self.counts()
        return {"annotations": c["total"], "images": c["images"], "events": c["events"]}


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while an import streams: it makes millions of short-lived containers and no
    cycles, and the collector's scans of them cost more than reading them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: An import of at least this many annotations leaves copying its WAL into the index to a thread.
BACKGROUND_CHECKPOINT_ROWS = 20_000


def _checkpoint_in_background(index: Path):
    """Copy the WAL's pages into the index file from another thread, on a connection of its own.

    A large import's commit would otherwise do it (~3 s at 860k annotations) while the importer
    waits; SQLite runs it without the GIL, next to the git checkpoint that follows an import. A
    passive checkpoint: it never blocks a writer, and whatever it leaves, the next one copies."""
    import threading

    def run() -> None:
        try:
            c = sqlite3.connect(str(index), timeout=30.0)
            try:
                c.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                c.close()
        except sqlite3.Error:
            pass  # an optimisation only: the next checkpoint copies what this one left

    worker = threading.Thread(target=run, name="wal-checkpoint", daemon=True)
    worker.start()
    return worker


#: How many copies of an index set aside (unreadable, or another store's) are kept: the newest.
KEEP_SET_ASIDE = 3
#: How long a process waits for another one's rebuild of the index (a 1M-annotation store: ~1 min).
REBUILD_WAIT = 3600.0
#: A temporary import folder nothing has written to for this long is a dead import's: one named
#: without its importer's pid (made before imports carried it) after an hour, one whose pid is
#: alive again (another process's now) after a day. An import writes its folder continuously.
DEAD_IMPORT_AGE = 3600.0
REUSED_PID_IMPORT_AGE = 86400.0


def _open_index(root: Path, index: Path, say: Callable[[str], None]) -> sqlite3.Connection:
    """Open (building it if missing) an index this process may write, and make sure it is this
    store's: one SQLite cannot read, or one built for another store, is moved aside and rebuilt."""
    if not index.exists():
        _build_index_once(root, index)
    conn = _connect_index(root, index, say)
    foreign = _foreign(conn, root)
    if foreign is None:
        return conn
    conn.close()

    def still_foreign() -> bool:
        c = schema.connect(index)
        try:
            return _foreign(c, root, stamp=False) is not None
        finally:
            c.close()

    _set_aside_index(root, index, "foreign", {"index_of_another_store": foreign}, still_foreign,
                     f"{index}: this index {foreign}", say)
    return _connect_index(root, index, say)


def _connect_index(root: Path, index: Path, say: Callable[[str], None] | None = None) -> sqlite3.Connection:
    """Open the index; one that is not a database any more (truncated, overwritten) is moved aside and
    rebuilt from the files, which hold everything it held. A store SQLite cannot write to (a full
    disk) is a clear error naming the store, not a traceback."""
    for attempt in (1, 2):
        conn = None
        try:
            conn = schema.connect(index)
            schema.create(conn)
            return conn
        except sqlite3.OperationalError as e:
            if conn is not None:
                conn.close()
            raise LabelreviewError(index_trouble(index, e)) from None
        except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed"
            if conn is not None:
                conn.close()
            if attempt == 2:
                raise LabelreviewError(f"{index}: the rebuilt index is unreadable too ({e})") from None
            _set_aside_index(root, index, "broken", {"index_unreadable": str(e)}, lambda: _unreadable(index),
                             f"{index}: SQLite cannot read this index ({e})", say)
    raise AssertionError("unreachable")


def _unreadable(index: Path) -> bool:
    try:
        c = sqlite3.connect(str(index))
        try:
            c.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return False
        finally:
            c.close()
    except sqlite3.OperationalError as e:
        raise LabelreviewError(index_trouble(index, e)) from None
    except sqlite3.DatabaseError:
        return True


def index_trouble(index: Path, e: Exception, what: str = "the index cannot be used") -> str:
    """What to tell the user when SQLite cannot use the index: the likely cause, where."""
    folder = index.parent
    why = ""
    try:
        st = os.statvfs(folder)
        if st.f_flag & os.ST_RDONLY:
            why = "; the file system of the store is mounted read-only"
        elif st.f_bavail == 0 or "full" in str(e):
            why = "; the disk of the store is full: free some space and run the command again"
        elif not os.access(folder, os.W_OK) or (index.exists() and not os.access(index, os.W_OK)):
            why = "; you may not write to it (check the permissions of the store folder and its files)"
    except OSError:
        pass
    return f"{index}: {what} ({e}){why}"


def _set_aside_index(root: Path, index: Path, kind: str, note: dict[str, Any], still_bad: Callable[[], bool],
                     why: str, say: Callable[[str], None] | None) -> None:
    """Move an index that cannot serve (and its journals) aside as ``index.sqlite.<kind>-<time>-<pid>``,
    then build it again from the files. Under the rebuild lock, and only if it is still bad: another
    process may have rebuilt it. The newest KEEP_SET_ASIDE copies set aside are kept."""
    with gitrepo.file_lock(index.parent / "rebuild.lock", timeout=REBUILD_WAIT):
        if not still_bad():
            return  # another process rebuilt it while we waited
        aside = index.with_name(f"{index.name}.{kind}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{os.getpid()}")
        try:
            os.replace(index, aside)
            for suffix in ("-wal", "-shm"):
                Path(str(index) + suffix).unlink(missing_ok=True)
        except OSError as e:
            raise LabelreviewError(f"{why}, and it cannot be moved aside ({e.strerror or e})") from None
        _note_recovery(index.parent, {**note, "moved_to": aside.name})
        removed = _prune_set_aside(index)
        if say is not None:
            say(f"{why}; moved it aside as {aside.name} and rebuilding it from the store's files"
                + _pruned_text(removed))
    _build_index_once(root, index)


def _set_aside_copies(index: Path) -> list[Path]:
    """Copies of the index set aside, oldest first."""
    found = [p for kind in ("broken", "foreign") for p in index.parent.glob(f"{index.name}.{kind}-*")
             if not p.name.endswith(("-wal", "-shm", "-journal"))]

    def when(p: Path) -> tuple[float, str]:
        try:
            return (p.stat().st_mtime, p.name)
        except OSError:
            return (0.0, p.name)

    return sorted(found, key=when)


def _prune_set_aside(index: Path, keep: int = KEEP_SET_ASIDE) -> list[str]:
    """Remove all but the newest ``keep`` copies set aside (each as big as the index was): they
    are kept only for whoever wants to look at what went wrong; the files hold everything."""
    copies = _set_aside_copies(index)
    removed = []
    for p in copies[:max(0, len(copies) - keep)]:
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        except OSError:
            continue
        removed.append(p.name)
    if removed:
        _note_recovery(index.parent, {"removed_set_aside_indexes": removed})
    return removed


def _pruned_text(removed: list[str]) -> str:
    if not removed:
        return ""
    return (f"; removed {len(removed)} older cop{'y' if len(removed) == 1 else 'ies'} set aside before "
            f"({', '.join(removed)}): the newest {KEEP_SET_ASIDE} are kept")


def _note_recovery(folder: Path, note: dict[str, Any]) -> None:
    """What recovery changed, for whoever wonders later (a local, git-ignored log beside the index)."""
    path = folder / "recovery.log"
    new = not path.exists()
    with open(path, "ab") as f:
        f.write(canonical.dumps({"ts": utc_now(), **note}) + b"\n")
    if new:
        perms.shared_file(path)


def _build_index_once(root: Path, index: Path) -> None:
    """Build a missing index (a fresh clone) privately, then move it into place whole, once: several
    processes may start on the same fresh store at the same moment."""
    with gitrepo.file_lock(index.parent / "rebuild.lock", timeout=REBUILD_WAIT):
        if index.exists():  # another process built it while we waited
            return
        tmp = index.with_name(f"{index.name}.{os.getpid()}.rebuild")
        try:
            _rebuild_into(root, tmp)
            _stamp_file(tmp, root)
            perms.shared_file(tmp)  # every reviewer of the group writes this index
            for suffix in ("-wal", "-shm"):  # a stale journal must never be applied to the new file
                Path(str(index) + suffix).unlink(missing_ok=True)
            os.replace(tmp, index)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(tmp) + suffix).unlink(missing_ok=True)


@contextmanager
def _rebuild_lock(folder: Path, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """The lock every build of the index takes; says so when it has to wait for another one."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        try:
            stack.enter_context(gitrepo.file_lock(folder / "rebuild.lock", timeout=0.0))
        except LabelreviewError as e:
            if "still locked" not in str(e):
                raise
            if say is not None:
                say("another process is rebuilding this store's index: waiting for it to finish")
            stack.enter_context(gitrepo.file_lock(folder / "rebuild.lock", timeout=REBUILD_WAIT))
        yield


def _tidy_index_folder(folder: Path, index: Path) -> list[str]:
    """What dead processes left beside the index: scratch files of a killed rebuild (named with its
    pid, or ``index.rebuild`` of versions before that), and import folders never renamed into
    imports/ (see ``_dead_imports``). Returns the names removed (each noted in recovery.log)."""
    removed = []
    for p in folder.iterdir():
        name = p.name
        if name.endswith(".rebuild") or ".rebuild-" in name:
            base = name.split(".rebuild")[0]
            pid = base.rsplit(".", 1)[-1] if base.startswith(index.name + ".") else None
            if pid is not None and pid.isdigit():
                if _pid_alive(int(pid)):
                    continue
            elif _idle_for(p) < DEAD_IMPORT_AGE:  # a scratch name without a pid: an older version's
                continue
            try:
                p.unlink()
            except OSError:
                continue
            removed.append(name)
    removed += _remove_dead_imports(folder)
    scratch = [n for n in removed if not n.startswith("import-")]
    if scratch:
        _note_recovery(folder, {"removed_dead_rebuild_files": scratch})
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


def _idle_for(path: Path) -> float:
    """Seconds since anything in ``path`` (a file, or a folder and what it holds) was written."""
    try:
        newest = path.lstat().st_mtime
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                for n in dirnames + filenames:
                    try:
                        newest = max(newest, os.lstat(os.path.join(dirpath, n)).st_mtime)
                    except OSError:
                        pass
    except OSError:
        return 0.0
    return time.time() - newest


def _remove_dead_imports(folder: Path) -> list[str]:
    """The folders of imports killed half-way (``import-<pid>-*`` beside the index, never renamed
    into imports/): nothing refers to them, and a large one holds as much as its source file.
    Removed when their process is gone; when their pid is alive but nothing wrote to them for a
    day (the pid is another process's now); and, for ``import-*`` folders made before imports
    carried their pid, when nothing wrote to them for an hour."""
    removed = []
    for tmp in folder.glob("import-*"):
        if not tmp.is_dir():
            continue
        parts = tmp.name.split("-")
        if len(parts) >= 3 and parts[1].isdigit():
            if _pid_alive(int(parts[1])) and _idle_for(tmp) < REUSED_PID_IMPORT_AGE:
                continue  # its import is still running
        elif _idle_for(tmp) < DEAD_IMPORT_AGE:
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp.exists():
            continue
        removed.append(tmp.name)
        _note_recovery(folder, {"removed_unfinished_import": tmp.name})
    return removed


# ---------------------------------------------------------------------- which store an index is of


#: The store's identity: a random id in its git folder, made when a process that may write the
#: store first opens it. A copy of the whole store (``cp -r``, a backup restored) keeps it, as its
#: index still describes its files; a clone, or a store made anew at the same place, has another.
STORE_ID_FILE = "labelreview-store-id"


def store_id(root: Path, create: bool = True) -> str | None:
    """This store's identity (see STORE_ID_FILE); None where it has none and none can be made."""
    git_dir = root / ".git"
    path = git_dir / STORE_ID_FILE
    try:  # (bytes that are not UTF-8 are a damaged id: another store's, as far as an index can tell)
        return path.read_bytes().decode("utf-8", "replace").strip() or None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    if not create or not git_dir.is_dir():
        return None
    import secrets

    tmp = git_dir / f"{STORE_ID_FILE}.{os.getpid()}.tmp"
    try:
        tmp.write_text(secrets.token_hex(16) + "\n")
        perms.shared_file(tmp)
        try:
            os.link(tmp, path)  # whole or not at all; another process may have made it first
        except FileExistsError:
            pass
    except OSError:
        return None
    finally:
        tmp.unlink(missing_ok=True)
    try:
        return path.read_bytes().decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def _stamp(conn: sqlite3.Connection, root: Path, sid: str | None) -> None:
    """Record in the index the store it is of."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
                         [("store_id", sid), ("store_path", str(root))])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _stamp_file(index: Path, root: Path) -> None:
    conn = sqlite3.connect(str(index), isolation_level=None)
    try:
        _stamp(conn, root, store_id(root))
    finally:
        conn.close()


def _foreign(conn: sqlite3.Connection, root: Path, stamp: bool = True) -> str | None:
    """None when the index is this store's, else why it is not (a phrase: "was built for ...").

    O(1) when the index records this store's id (one row, one small file). Otherwise (an index made
    before ids, a store of an older version, another store's index) it is this store's if it
    describes these files, maybe behind them: every import it holds is here, every log it knows is
    here and at least as long, and each writer's last event it knows is the line of that log where
    it says. Then the id is recorded in it (``stamp``)."""
    have = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('store_id', 'store_path')").fetchall())
    sid = store_id(root, create=stamp)
    if sid is not None and have.get("store_id") == sid:
        if stamp and have.get("store_path") != str(root):  # (moved or copied whole: named where it is now)
            _stamp(conn, root, sid)
        return None
    problem = _not_of_these_files(conn, root)
    if problem is None:
        if stamp and sid is not None:
            _stamp(conn, root, sid)
        return None
    where = have.get("store_path")
    built = f"was built for the store at {where}" if where and where != str(root) else \
        "was built for another store" if have.get("store_id") else "does not describe this store's files"
    return f"{built} ({problem})"


def _not_of_these_files(conn: sqlite3.Connection, root: Path) -> str | None:
    for (imp,) in conn.execute("SELECT id FROM imports"):
        if not (root / IMPORTS_DIR / imp / "manifest.json").is_file():
            return f"it holds import {imp}, which this store has not"
    for rel, size in conn.execute("SELECT path, size FROM event_files"):
        try:
            here = os.stat(root / rel).st_size
        except OSError:
            return f"it knows the event log {rel}, which this store has not"
        if here < size:
            return f"it knows {size} bytes of {rel}, this store's holds {here}"
    for writer, head, rel, end in conn.execute(
            "SELECT w.writer, w.hash, e.file, e.end_offset FROM writers w LEFT JOIN events e ON e.hash = w.hash"):
        if rel is None or not _line_ends_with_event(root / rel, end, head):
            return f"the last event of {writer} it knows is not in this store's log"
    return None


def _line_ends_with_event(path: Path, end: int, event_hash: str) -> bool:
    """Whether the line of a log that ends at byte ``end`` is the event ``event_hash``."""
    try:
        with open(path, "rb") as f:
            back = min(end, 1 << 16)
            f.seek(end - back)
            data = f.read(back)
    except OSError:
        return False
    if len(data) != back or not data.endswith(b"\n"):
        return False
    line = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
    return f'"hash":"{event_hash}"'.encode() in line


def _unloaded_imports(conn: sqlite3.Connection, root: Path) -> list[str]:
    base = root / IMPORTS_DIR
    if not base.is_dir():
        return []
    have = {r[0] for r in conn.execute("SELECT id FROM imports")}
    return sorted(p.name for p in base.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name not in have
                  and (p / "manifest.json").is_file())


def _line_ends_at(path: Path, offset: int) -> bool:
    """Whether byte ``offset - 1`` of a log is a newline (where a line the index took ended)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset - 1)
            return f.read(1) == b"\n"
    except OSError:
        return False


def _behind(conn: sqlite3.Connection, root: Path) -> bool:
    """Whether the files hold something the index has not taken yet (a log tail, an import)."""
    known = {r[0]: r[1] for r in conn.execute("SELECT path, size FROM event_files")}
    if any(size != known.get(rel, 0) for rel, size in eventlog.log_sizes(root).items()):
        return True
    return bool(_unloaded_imports(conn, root))


# ---------------------------------------------------------------------- a store this process may not write


def read_only_reason(root: Path) -> str | None:
    """Why this process may not write the store's index (None: it may): its file system is mounted
    read-only, or the permissions of the index, or of its folder, do not let this user write."""
    folder = root / INDEX_DIR
    probe = folder if folder.is_dir() else root
    try:
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            return "its file system is mounted read-only"
    except OSError:
        pass
    eff = os.access in os.supports_effective_ids
    if not os.access(probe, os.W_OK | os.X_OK, effective_ids=eff):
        return f"you may not write to {probe}"
    index = folder / INDEX_NAME
    for p in (index, Path(str(index) + "-wal"), Path(str(index) + "-shm")):
        if p.exists() and not os.access(p, os.W_OK, effective_ids=eff):
            return f"you may not write to {p}"
    return None


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path), safe="/")


def _file_state(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def index_cache_dir(root: Path) -> Path:
    """Where a read-only store's index is built when its own cannot be used: this user's cache."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labelreview" / "indexes"
    return base / f"{slug(root.name, 40)}-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"


def _open_read_only(root: Path, reason: str, say: Callable[[str], None]
                    ) -> tuple[sqlite3.Connection, Path, tuple[str, tuple | None] | None]:
    """A store this process may not write: its own index, read without writing a byte, when it is
    this store's, complete and up to date with the files; else an index built from the files in
    this user's cache (kept for the next command, brought up to date as any index is). Returns the
    connection, the index file, and (uri, file state) when it is the store's own."""
    index = root / INDEX_DIR / INDEX_NAME
    why = "has no index"
    if index.is_file():
        wal = Path(str(index) + "-wal").exists() and Path(str(index) + "-shm").exists()
        # A process that has the index open keeps its -wal and -shm: SQLite then reads it with
        # their locks. Without them nobody has it open, and SQLite can read it only as immutable:
        # without locks, so ``close`` checks that the file did not change meanwhile.
        uri = f"file:{_uri_path(index)}?{'mode=ro' if wal else 'immutable=1'}"
        state = None if wal else _file_state(index)
        conn = None
        try:
            conn = schema.connect_read_only(uri)
            why = _unusable(conn, root)
        except sqlite3.DatabaseError as e:
            why = f"SQLite cannot read its index ({e})"
        if why is None:
            return conn, index, (uri, state)
        if conn is not None:
            conn.close()
    cache = index_cache_dir(root)
    cached = cache / INDEX_NAME
    say(f"{root}: this store is read-only for you ({reason}) and {why}: reading it through an index built "
        f"from its files in {cache}{'' if cached.exists() else ' (building it now)'}, kept there for the next "
        "command (delete the folder when done). Anyone who may write the store brings its own index up to "
        "date with any labelreview command (`labelreview status`)")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabelreviewError(f"{cache}: cannot build an index of the read-only store {root} there "
                               f"({e.strerror or e}); set XDG_CACHE_HOME to a folder you may write") from None
    return _open_index(root, cached, say), cached, None


def _unusable(conn: sqlite3.Connection, root: Path) -> str | None:
    """Why a read-only store's own index cannot answer as it is (None: it can)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    version = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone() if "meta" in tables else None
    complete = version is not None and version[0] == str(schema.SCHEMA_VERSION) and all(
        table in tables and column in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for table, column, _ in schema.ADDED_COLUMNS)
    if not complete:
        return "its index was made by another version of labelreview"
    foreign = _foreign(conn, root, stamp=False)
    if foreign is not None:
        return f"its index {foreign}"
    if _behind(conn, root):
        return "its index is behind its files (a process stopped before indexing what it wrote, or files came in)"
    return None


# ---------------------------------------------------------------------- the fold
#
# An annotation's state is the fold of ITS events in (ts, writer, seq) order. An event applies when it
# was made on the current state: its ``base`` is the last applied event, or an alias of it. An event
# made on an older state is no conflict when the state has since passed through what it chose (the
# same decision made on two machines, even if one went on to decide again on top of it): it becomes
# an alias of that event, and what was decided on top of it still applies. Otherwise it is a
# conflict, kept for adjudication. A ``resolve`` that applies closes the conflicts it names. A blind
# decision (double review) changes nothing until a second reviewer's blind decision on the same
# state: the same choice stands, different choices become two conflicts. Live writes, catch-up,
# refold, rebuild and release diffs all go through ``_fold_step``, so every machine folds the same way.
#
# Undo. An undo that applies brings back the state its decision was made on (it "restores" that
# state). Three rules make a decision its author took back count for nothing, in whatever order the
# clocks put the events: (1) the undo of a decision that never applied (it is in a conflict) withdraws
# it from adjudication (closed, resolved by the undo) and changes nothing else; under blind review,
# the decision it disagreed with waits again for a second reviewer. (2) An event made on a state
# that an undo has since brought back (and that no state since already holds) is made on the state
# now: it applies. (3) When an undo brings back a state, the first decision in conflict that was
# made on that state (not a blind one: those wait for the adjudicator) applies after all. (4) The undo of
# one of two identical decisions (the same decision made on two machines: one an alias of the other)
# takes back that reviewer's agreement only: the label keeps the state, held by the other decision
# (its author, time and reason), a decision someone made on the withdrawn one was made on that
# state, and a state its author undid is never a match for an identical decision arriving later. These need the annotation's whole history in memory (``chain``): on a state
# loaded from the index they ask for a refold, so the live fold and a replay always take the same steps.

_STATE = ("category", "status", "last_event", "updated_at", "updated_by", "reason", "comment")


#: The events-table columns ``fold_event`` reads.
FOLD_COLUMNS = "hash, ts, author, action, new, base, reason, comment, blind, resolves, undoes"


def _config_stamp(root: Path) -> tuple[int, int, int] | None:
    try:
        st = (root / CONFIG_NAME).stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def fold_event(r: sqlite3.Row, settled: dict[str, Any]) -> dict[str, Any]:
    """An events-table row (``FOLD_COLUMNS``, rows in fold order) as ``_fold_step`` takes it.
    ``settled`` maps each resolve seen so far to the conflicts it settled: the table keeps no
    'reopens', and an undo of a resolve reopens what that resolve settled, as its log line says."""
    resolves = _uj(r["resolves"])
    if r["action"] == "resolve":
        settled[r["hash"]] = resolves
    reopens = settled.get(r["undoes"]) if r["action"] == "undo" and r["undoes"] else None
    return {"hash": r["hash"], "ts": r["ts"], "author": r["author"], "action": r["action"], "new": _uj(r["new"]),
            "base": r["base"], "reason": r["reason"], "comment": r["comment"], "blind": r["blind"] == 1,
            "resolves": resolves, "reopens": reopens, "undoes": r["undoes"]}


def _hashes(ev: dict[str, Any], key: str) -> list[str] | None:
    """The event hashes an event lists under ``key`` (``resolves``, ``reopens``), if it lists any."""
    r = ev.get(key)
    return [h for h in r if isinstance(h, str)] if isinstance(r, list) else None


def _resolves_of(ev: dict[str, Any]) -> list[str] | None:
    return _hashes(ev, "resolves")


def _fresh_fold(ann_id: int, proposed: str) -> dict[str, Any]:
    """The fold state of an untouched proposal, with the chain of applied events kept in memory."""
    return {"id": ann_id, "category": proposed, "status": "pending", "last_event": None, "updated_at": None,
            "updated_by": None, "reason": None, "comment": None, "aliases": {}, "blind": {}, "open": set(),
            "chain": [], "new_conflicts": [], "resolved": {}, "reopened": set(), "aux": False,
            # (in memory only, with the chain: the state each event was made on, the state each undo
            # that applied brought back, and the events in conflict)
            "made_on": {}, "restores": {}, "evs": {}, "undone": set(), "agreed": {}}


def _load_fold(conn: sqlite3.Connection, ann_id: int) -> dict[str, Any] | None:
    """The fold state as the index holds it (no chain: an event made on an older state re-folds)."""
    row = conn.execute("SELECT category, status, last_event, updated_at, updated_by, reason, comment"
                       " FROM annotations WHERE id=?", (ann_id,)).fetchone()
    if row is None:
        return None
    st: dict[str, Any] = {k: row[k] for k in _STATE}
    st["id"] = ann_id
    st["aliases"] = {r[0]: r[1] for r in conn.execute(
        "SELECT event, target FROM fold_alias WHERE annotation=?", (ann_id,))}
    st["blind"] = {r[0]: (r[1], _uj(r[2])) for r in conn.execute(
        "SELECT author, event, new FROM blind_pending WHERE annotation=?", (ann_id,))}
    st["open"] = {r[0] for r in conn.execute(
        "SELECT event FROM conflicts WHERE annotation=? AND resolved IS NULL", (ann_id,))}
    st["chain"], st["new_conflicts"], st["resolved"], st["reopened"], st["aux"] = None, [], {}, set(), False
    return st


def _same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """The same decision: the same class and status, and for a flag the same reason (two flags for
    different reasons say different things are wrong: the adjudicator sees both)."""
    return (bool(a and b) and a.get("category") == b.get("category") and a.get("status") == b.get("status")
            and (a.get("status") != "flagged" or a.get("reason") == b.get("reason")))


def _chosen(ev: dict[str, Any]) -> dict[str, Any]:
    """What a decision chose, as ``_same`` compares it (and as the chain keeps each state)."""
    new = ev["new"]
    out = {"category": new["category"], "status": new["status"]}
    if new["status"] == "flagged":
        out["reason"] = note_of(ev)[0]
    return out


def note_of(ev: dict[str, Any]) -> tuple[str | None, str | None]:
    """The reason and comment an event leaves on its annotation: its own, but for an undo that
    names the state it brings back, or a resolve that picked a competing decision (``new`` holds
    that state's or that decision's reason and comment)."""
    new = ev["new"]
    if ev["action"] in ("undo", "resolve") and "reason" in new:
        return new.get("reason"), new.get("comment")
    return ev.get("reason"), ev.get("comment")


def _set_state(st: dict[str, Any], ev: dict[str, Any]) -> None:
    new = ev["new"]
    if st["chain"] is not None and ev["action"] == "undo":
        undone = st["made_on"].get(ev.get("undoes") or "", _UNKNOWN)
        if undone is not _UNKNOWN:
            st["restores"][ev["hash"]] = undone
        st["undone"].add(ev.get("undoes"))
    reason, comment = note_of(ev)
    st.update(category=new["category"], status=new["status"], last_event=ev["hash"], updated_at=ev["ts"],
              updated_by=ev["author"], reason=reason, comment=comment)
    if st["chain"] is not None:
        st["chain"].append((ev["hash"], _chosen(ev)))
    if st["blind"]:
        st["blind"], st["aux"] = {}, True


def _conflict(st: dict[str, Any], event: str, base: str | None, ev: dict[str, Any]) -> None:
    st["new_conflicts"].append((event, base, st["last_event"]))
    st["open"].add(event)
    if st["chain"] is not None:
        st["evs"][event] = ev


_UNKNOWN = object()


def _holds(st: dict[str, Any], made_on: str | None) -> bool:
    """Is the state now the one ``made_on`` left, brought back by undos since? (needs the chain)"""
    h, seen = st["last_event"], set()
    while h is not None and h not in seen:
        seen.add(h)
        h = st["restores"].get(h, _UNKNOWN)
        if h is _UNKNOWN:
            return False
        if h == made_on:
            return True
    return False


def _unconflict(st: dict[str, Any], event: str) -> None:
    """(With the chain: every conflict is in ``new_conflicts``.) As if ``event`` never conflicted."""
    st["open"].discard(event)
    st["reopened"].discard(event)
    st["resolved"].pop(event, None)
    st["new_conflicts"] = [c for c in st["new_conflicts"] if c[0] != event]


def _withdraw(st: dict[str, Any], ev: dict[str, Any], event: str) -> bool:
    """Rule (1): an undo of ``event``, a decision in conflict that never applied."""
    if st["chain"] is None:
        return False
    st["open"].discard(event)
    st["reopened"].discard(event)
    st["resolved"][event] = ev["hash"]  # closed: withdrawn by its author
    withdrawn = st["evs"].get(event) or {}
    if withdrawn.get("blind") is True:
        # Blind: the decision it disagreed with (made on the same state, which has not moved since)
        # waits again for a second reviewer, unseen; it is no conflict any more.
        made_on = st["made_on"].get(event, _UNKNOWN)
        for other in sorted(st["open"]):
            o = st["evs"].get(other) or {}
            if (o.get("blind") is True and st["made_on"].get(other, _UNKNOWN) == made_on == st["last_event"]
                    and o["author"] not in st["blind"]):
                _unconflict(st, other)
                st["blind"][o["author"]] = (other, o["new"])
                st["aux"] = True
    return True


def _withdraw_agreement(st: dict[str, Any], ev: dict[str, Any], event: str) -> bool:
    """Rule (4): an undo of ``event``, one of two identical decisions. False when it is not one."""
    aliases, agreed, undone = st["aliases"], st["agreed"], st["undone"]
    if event in agreed and event in aliases:  # it was merged into the decision that holds the state
        pass  # (and stays its alias: what others decided on it was decided on the state that holds)
    else:  # it holds the state: an identical decision merged into it holds it now
        holder = next((h for h, t in aliases.items() if t == event and h in agreed and h not in undone), None)
        if holder is None:
            return False
        del aliases[holder]
        for h, t in list(aliases.items()):  # what was made on it is made on the holder's (same) state
            if t == event:
                aliases[h] = holder
        aliases[event] = holder
        if st["last_event"] == event:
            held = agreed[holder]
            reason, comment = note_of(held)
            st.update(last_event=holder, updated_at=held["ts"], updated_by=held["author"], reason=reason,
                      comment=comment)
            st["chain"].append((holder, _chosen(held)))
    undone.add(event)
    # What its author decides next was made on the state before the undone decision.
    aliases[ev["hash"]] = st["made_on"].get(event)
    st["aux"] = True
    return True


def _reinstate(st: dict[str, Any]) -> None:
    """Rule (3): an undo brought a state back; the first decision in conflict made on it applies."""
    for event, _base, _current in list(st["new_conflicts"]):
        ev = st["evs"].get(event)
        if (event in st["open"] and ev is not None and ev.get("blind") is not True
                and ev["action"] not in ("undo", "resolve") and _holds(st, st["made_on"].get(event, _UNKNOWN))):
            _unconflict(st, event)
            _set_state(st, ev)
            return


def _fold_step(st: dict[str, Any], ev: dict[str, Any]) -> bool:
    """Fold one event into one annotation's state (``st``); pure Python. False (nothing changed)
    when the event was made on an older state and ``st`` has no chain: fold the annotation again."""
    base, new = ev.get("base"), ev["new"]
    blind = ev.get("blind") is True
    made_on = st["aliases"].get(base, base) if base is not None else None
    undoes = ev.get("undoes") if ev["action"] == "undo" else None
    chain = st["chain"]
    if chain is not None:
        st["made_on"][ev["hash"]] = made_on
    if undoes is not None and undoes in st["open"]:
        return _withdraw(st, ev, undoes)
    if undoes is not None and not blind and (undoes in st["aliases"] or undoes in st["aliases"].values()):
        if chain is None:
            return False  # rule (4) may apply: it needs the whole history
        if _withdraw_agreement(st, ev, undoes):
            return True
    if made_on != st["last_event"]:
        if chain is None:
            return False
        # Made on an older state: which states has the annotation been in since?
        hashes = [h for h, _ in chain]
        if made_on is None:
            since = chain
        elif made_on in hashes:
            since = chain[hashes.index(made_on) + 1:]
        else:  # made on a decision that never applied: compare with the state now
            since = chain[-1:]
        if ev["action"] != "resolve" and not (blind and ev["action"] == "undo"):
            chosen = _chosen(ev)
            match = next((h for h, state in since if _same(state, chosen) and h not in st["undone"]), None)
            if match is not None:
                st["aliases"][ev["hash"]] = match
                st["agreed"][ev["hash"]] = ev
                st["aux"] = True
                return True
        if not _holds(st, made_on):
            _conflict(st, ev["hash"], base, ev)
            return True
        # rule (2): made on the state an undo has brought back, so made on the state now
    if blind:
        author = ev["author"]
        if ev["action"] == "undo":  # a blind decision taken back before the second reviewer's
            st["aux"] |= st["blind"].pop(author, None) is not None
            return True
        other = next(((a, v) for a, v in st["blind"].items() if a != author), None)
        st["aux"] = True
        if other is None:  # the first of two: it waits, unseen (a flag with its reason, to compare)
            st["blind"][author] = (ev["hash"], {**new, "reason": ev.get("reason")}
                                   if new["status"] == "flagged" and "reason" not in new else new)
            return True
        st["blind"] = {}
        other_author, (other_hash, other_new) = other
        if _same(other_new, _chosen(ev)):  # two reviewers agree: that state stands
            _set_state(st, ev)
            st["aliases"][other_hash] = ev["hash"]
        else:  # they disagree: both go to adjudication
            _conflict(st, other_hash, base, {"hash": other_hash, "author": other_author, "new": other_new,
                                             "blind": True, "action": None})
            _conflict(st, ev["hash"], base, ev)
        return True
    if undoes is not None and chain is None and (st["open"] or _hashes(ev, "reopens")):
        return False  # rule (3) may apply: it needs the whole history
    _set_state(st, ev)
    if ev["action"] == "resolve":
        for h in _resolves_of(ev) or ():
            if h in st["open"]:
                st["open"].discard(h)
                st["reopened"].discard(h)
                st["resolved"][h] = ev["hash"]
    elif ev["action"] == "undo":
        # An adjudication taken back: the decisions it settled compete again.
        for h in _hashes(ev, "reopens") or ():
            if h not in st["open"]:
                st["open"].add(h)
                st["resolved"].pop(h, None)
                st["reopened"].add(h)
        if st["open"]:
            _reinstate(st)
    return True


_UPDATE_STATE = ("UPDATE annotations SET category=?, status=?, last_event=?, updated_at=?, updated_by=?,"
                 " reason=?, comment=? WHERE id=?")


def _save_fold(conn: sqlite3.Connection, st: dict[str, Any], state: bool = True) -> None:
    """Write a fold state back; ``state=False`` when the caller wrote the annotation rows in bulk."""
    if state:
        conn.execute(_UPDATE_STATE, (*(st[k] for k in _STATE), st["id"]))
    ann = st["id"]
    if st["aux"]:
        conn.execute("DELETE FROM fold_alias WHERE annotation=?", (ann,))
        conn.executemany("INSERT OR IGNORE INTO fold_alias(event, annotation, target) VALUES(?,?,?)",
                         [(h, ann, t) for h, t in sorted(st["aliases"].items())])
        conn.execute("DELETE FROM blind_pending WHERE annotation=?", (ann,))
        conn.executemany("INSERT INTO blind_pending(annotation, author, event, new) VALUES(?,?,?,?)",
                         [(ann, a, h, _j(n)) for a, (h, n) in st["blind"].items()])
        st["aux"] = False
    resolved = st["resolved"]
    for event, base, current in st["new_conflicts"]:
        conn.execute("INSERT OR IGNORE INTO conflicts(event, annotation, base, current, resolved) VALUES(?,?,?,?,?)",
                     (event, ann, base, current, resolved.pop(event, None)))
    for event in st["reopened"]:
        conn.execute("UPDATE conflicts SET resolved=NULL WHERE event=?", (event,))
    for event, by in resolved.items():
        conn.execute("UPDATE conflicts SET resolved=? WHERE event=? AND resolved IS NULL", (by, event))
    st["new_conflicts"], st["resolved"], st["reopened"] = [], {}, set()


def _not_before(ts: str, conn: sqlite3.Connection, hashes: list[str]) -> str:
    """``ts``, or just after the latest of these events' times if the clock is behind them."""
    if not hashes:
        return ts
    marks = ",".join("?" * len(hashes))
    latest = conn.execute(f"SELECT max(ts) FROM events WHERE hash IN ({marks})", hashes).fetchone()[0]
    if latest is None or latest < ts:
        return ts
    try:
        t = datetime.strptime(latest, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(microseconds=1)
    except ValueError:  # not a time the tool writes: a line written by hand (verify names it)
        return ts
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _bad_order(order: str) -> str:
    raise LabelreviewError(f"unknown order {order!r}; use file, score, score-desc, random or suspicion")


# ---------------------------------------------------------------------- import helpers


def _safe_image_path(root: Path, file_name: str) -> Path | None:
    """The image's path if it stays inside the root (no absolute paths, ``..`` or symlinks out)."""
    if not file_name or "\0" in file_name or os.path.isabs(file_name) or file_name.startswith("\\"):
        return None
    candidate = (root / file_name).resolve()
    try:
        candidate.relative_to(root)
    except ValueError:
        return None
    return candidate


class _ImagePaths:
    """``_safe_image_path`` for many names under one root: each folder is resolved once, and a
    name is resolved in full only when it is a symlink (or is ``.``/``..``). Strings, not Paths:
    at 100k images the Path objects alone cost a second."""

    def __init__(self, root: Path):
        self.root = root
        root_s = str(root)
        self.inside = root_s if root_s.endswith(os.sep) else root_s + os.sep
        self.root_s = root_s
        self.dirs: dict[str, tuple[str, frozenset[str]]] = {}

    def _folder(self, d: str) -> tuple[str, frozenset[str]]:
        got = self.dirs.get(d)
        if got is None:
            real = os.path.realpath(d)
            try:
                with os.scandir(real) as it:
                    links = frozenset(e.name for e in it if e.is_symlink())
            except OSError:
                links = frozenset()
            got = self.dirs[d] = (real, links)
        return got

    def __call__(self, file_name: str) -> str | None:
        """The path the image is read from (root/file_name as written), or None if it leaves the root.

        As written, not resolved: ``a/../b.jpg`` where a/ does not exist resolves (as text) to b.jpg,
        but the system opens no such path; found and hashed at import through its resolved form, it
        was then "missing" to verify, the review and the exports, which open the name as written."""
        if not file_name or "\0" in file_name or os.path.isabs(file_name) or file_name.startswith("\\"):
            return None
        literal = os.path.join(self.root_s, file_name)
        folder, name = os.path.split(literal)
        real, links = self._folder(folder)
        if name in ("", ".", "..") or name in links:
            return None if _safe_image_path(self.root, file_name) is None else literal
        candidate = os.path.join(real, name)
        return literal if candidate.startswith(self.inside) or candidate == self.root_s else None


def _refuse_unwritable(batch: ImportBatch) -> None:
    """What a reader can hand over but the store cannot hold, refused before anything is written.

    A file or folder name in bytes of another encoding than UTF-8 (a folder format's images and
    classes come from the file system) cannot go into a JSON line: the import died in the middle
    with a traceback. A coordinate that is not a finite number (a percent or a normalized value so
    large that it overflows once scaled to pixels) was written as null: the import "succeeded" and
    verify then rejected the store. (A lazily read COCO file checks its own numbers: JSON holds no
    infinities, and the reader refuses what overflows.)"""
    def undecodable(text: Any) -> bool:
        if not isinstance(text, str) or text.isascii():
            return False
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False

    shown = os.path.basename(os.path.abspath(batch.source_file))
    for what, names in (("image", [im.file_name for im in batch.images]), ("class", [c.name for c in batch.categories])):
        bad = [n for n in names if undecodable(n)]
        if bad:
            raise LabelreviewError(
                f"{shown}: {len(bad)} {what} name(s) are not valid UTF-8 (e.g. "
                f"{bad[0].encode('utf-8', 'surrogateescape')!r}: a file or folder named in another encoding); "
                "rename them (e.g. with convmv) and import again; nothing was imported")
    if not isinstance(batch.proposals, list):
        return  # (read lazily: COCO, whose reader checks all of it)
    from ..formats.common import MAX_NESTING, too_deep

    deep = f"a value nests more than {MAX_NESTING} levels deep, more than the store can write; nothing was imported"
    isfinite = math.isfinite

    def finite(values) -> bool:
        try:
            if isfinite(sum(values)):  # (one pass in C; a sum can overflow where no value does)
                return True
        except (TypeError, OverflowError):
            pass
        return all(type(v) is int or (type(v) is float and isfinite(v)) for v in values)

    for p in batch.proposals:
        if undecodable(p.category):
            raise LabelreviewError(f"{shown}: label {p.source_id!r}: its class name is not valid UTF-8 "
                                   f"({p.category.encode('utf-8', 'surrogateescape')!r}); nothing was imported")
        seg = p.segmentation
        if not (finite(p.bbox or ()) and finite(p.keypoints or ()) and (
                not isinstance(seg, list) or all(finite(poly) for poly in seg if isinstance(poly, list)))):
            raise LabelreviewError(f"{shown}: label {p.source_id!r} on {p.image_key!r}: a coordinate is not a "
                                   "finite number (past the largest number there is once scaled to pixels); "
                                   "nothing was imported")
        if (p.extra and too_deep(p.extra)) or (p.scores and too_deep(p.scores)):
            raise LabelreviewError(f"{shown}: label {p.source_id!r} on {p.image_key!r}: {deep}")
    for what, items in (("image", batch.images), ("class", batch.categories)):
        for item in items:
            if too_deep(item.extra):
                raise LabelreviewError(f"{shown}: {what} {item.file_name if what == 'image' else item.name!r}: {deep}")
    if too_deep(batch.info):
        raise LabelreviewError(f"{shown}: the file's own data (info): {deep}")


def _exists(path: Path) -> bool:
    """``path.exists()``, false for a name the system cannot even look up (longer than a file name
    may be: ENAMETOOLONG, which ``exists`` raises)."""
    try:
        return path.exists()
    except OSError:
        return False


def _probe_image(path: Path) -> tuple[str | None, tuple[int, int] | None, str | None]:
    """sha256, (width, height) after EXIF orientation, or a problem; the header only, never pixels."""
    # (here, not at the top: `status` and `ls` never need Pillow)
    from PIL import Image as PILImage

    from ..formats.images import NotAFile, open_image_file, shown_size

    try:
        with open_image_file(str(path)) as f, PILImage.open(f) as im:
            w, h = im.size
            if w * h > (PILImage.MAX_IMAGE_PIXELS or 1 << 62):
                return None, None, f"refused: {w}x{h} pixels looks like a decompression bomb"
            w, h = shown_size(im)
    except NotAFile as e:
        return None, None, str(e)
    except PILImage.DecompressionBombError as e:
        return None, None, f"refused: decompression bomb ({e})"
    except FileNotFoundError:
        return None, None, "image file missing"
    except Exception as e:  # corrupt or not an image: reviewable from the list, recorded as a warning
        return canonical.file_sha256(path) if path.is_file() else None, None, f"unreadable image ({e})"
    return canonical.file_sha256(path), (w, h), None


def _check_images(batch: ImportBatch, root: Path, warnings: list[ImportWarning],
                  check: bool) -> dict[str, tuple[str | None, int | None, int | None, bool]]:
    """Per image key: (sha256, width, height, keep). Escaping paths and bombs are dropped."""
    info: dict[str, tuple[str | None, int | None, int | None, bool]] = {}
    paths: dict[str, Any] = {}
    safe = _ImagePaths(root)
    for i, im in enumerate(batch.images):
        if im.key in batch.store_images:  # the store's own image, checked when it was imported
            info[im.key] = (None, None, None, True)
            continue
        p = safe(im.file_name)
        if p is None:
            warnings.append(ImportWarning(f"images[{i}] (id {im.source_id})",
                                          f"file name {im.file_name!r} escapes the image root", "skipped"))
            info[im.key] = (None, None, None, False)
        else:
            paths[im.key] = p
    if not check:
        unchecked = (None, None, None, True)
        for k in paths:
            info[k] = unchecked
        return info
    paths = {k: Path(p) for k, p in paths.items()}
    by_key = {im.key: (i, im) for i, im in enumerate(batch.images)}
    keys = list(paths)
    # (A named pipe or a folder where an image should be is there, but no image: _probe_image says so.)
    missing = [k for k in keys if not _exists(paths[k])]
    missing_set = set(missing)
    for k in missing:
        i, im = by_key[k]
        warnings.append(ImportWarning(f"images[{i}] (id {im.source_id})",
                                      f"image file missing: {im.file_name}", "kept"))
        info[k] = (None, None, None, True)
    present = [k for k in keys if k not in missing_set]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        for k, (sha, size, problem) in zip(present, pool.map(lambda k: _probe_image(paths[k]), present)):
            i, im = by_key[k]
            where = f"images[{i}] (id {im.source_id})"
            if problem and problem.startswith("refused"):
                warnings.append(ImportWarning(where, f"{im.file_name}: {problem}", "skipped"))
                info[k] = (None, None, None, False)
                continue
            if problem:
                warnings.append(ImportWarning(where, f"{im.file_name}: {problem}", "kept"))
            w, h = size if size else (None, None)
            if size and im.width and im.height and (im.width, im.height) != size:
                warnings.append(ImportWarning(
                    where, f"{im.file_name}: file says {im.width}x{im.height}, the image is {w}x{h}",
                    "kept"))
            info[k] = (sha, w, h, True)
    return info


_INSERT_IMAGE = ("INSERT OR IGNORE INTO images(id, import_id, file_name, width, height, sha256, source_id, extra)"
                 " VALUES(?,?,?,?,?,?,?,?)")
_INSERT_ANNOTATION = (
    "INSERT INTO annotations(id, image_id, import_id, source, source_id, kind, category,"
    " proposed_category, status, score, iscrowd, area, bbox, segmentation, keypoints, extra,"
    " scores) VALUES(?,?,?,?,?,?,?,?,'pending',?,?,?,?,?,?,?,?)")
#: Rows handed to SQLite at once while an import streams in (bounded memory, few calls).
_ROWS_PER_BATCH = 20_000


class _ShardWriter:
    """Writes the annotation lines into ``annotations-NNNN.jsonl`` shards of SHARD_SIZE lines each.

    A finished shard is fsync'd in a background thread while the next one is being written, so the
    disk works while the CPU does; ``close`` waits for every fsync (the import is durable after it).
    """

    def __init__(self, folder: Path, prehash: "_GitPrehash | None" = None):
        self.folder = folder
        self.prehash = prehash
        self.names: list[str] = []
        self.lines = 0
        from concurrent.futures import ThreadPoolExecutor  # imported when used: start-up time

        self._pool = ThreadPoolExecutor(max_workers=1)
        self._syncs: list = []
        self._buf: list[bytes] = []
        self._f = None
        self._open()

    def _open(self) -> None:
        name = f"annotations-{len(self.names):04d}.jsonl"
        self.names.append(name)
        self._f = open(self.folder / name, "wb")

    def _flush(self) -> None:
        if self._buf:
            self._f.write(b"".join(self._buf))
            self._buf.clear()

    def _finish(self) -> None:
        self._flush()
        f = self._f
        f.flush()
        if self.prehash is not None:
            self.prehash.start(self.names[-1], f.name)
        self._syncs.append(self._pool.submit(_fsync_close, f))

    def write(self, line: bytes) -> None:
        if self.lines and self.lines % SHARD_SIZE == 0:
            self._finish()
            self._open()
        self._buf.append(line)
        self.lines += 1
        if len(self._buf) >= 4096:
            self._flush()

    def close(self) -> None:
        try:
            if self._f is not None and not self._f.closed:
                self._finish()
            for fut in self._syncs:
                fut.result()
        finally:
            self._pool.shutdown(wait=True)
            if self._f is not None and not self._f.closed:
                self._f.close()


class _GitPrehash:
    """``git hash-object -w`` of each finished shard, in the background while the import goes on.

    The checkpoint that follows an import then finds the blobs in git already and only hashes the
    files (compressing them was most of its time). Purely an optimisation: if git cannot (a filter,
    a failure), ``git add`` does the work as before. The shard is given as stdin (an open file), so
    the folder may be renamed meanwhile; ``--path`` applies the attributes of its final place."""

    def __init__(self, root: Path, rel_dir: str):
        self.root, self.rel_dir = root, rel_dir
        self.procs: list = []

    def start(self, name: str, path: str) -> None:
        import subprocess

        try:
            with open(path, "rb") as src:
                self.procs.append(subprocess.Popen(
                    ["git", "hash-object", "-w", "--stdin", f"--path={self.rel_dir}/{name}"], cwd=self.root,
                    stdin=src, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        except OSError:
            pass

    def wait(self) -> None:
        for proc in self.procs:
            try:
                proc.wait()
            except Exception:
                pass
        self.procs = []


def _fsync_close(f) -> None:
    try:
        os.fsync(f.fileno())
    finally:
        f.close()


def _write_import(conn: sqlite3.Connection, folder: Path, batch: ImportBatch, *, import_id: str,
                  source: str, sha: str, ts: str, identity: Identity, image_root: str,
                  image_info: dict, warnings: list[ImportWarning],
                  prehash: _GitPrehash | None = None) -> dict[str, Any]:
    """Write the import's immutable folder (manifest, images, categories, proposals in shards) and
    index it in the same pass, inside the caller's transaction.

    The proposals are consumed once, as they come (a reader may produce them lazily): each becomes
    one canonical JSON line of a shard and one row of the index, and nothing of it is kept. The
    files are byte for byte what a rebuild or a recovery loads with ``_load_import_folder``, which
    reads them back into the same rows. ``warnings`` are the ones found before the proposals; the
    reader's (``batch.warnings``, which grows while the proposals are read) come first.
    """
    next_image = (conn.execute("SELECT max(id) FROM images").fetchone()[0] or 0) + 1
    next_ann = (conn.execute("SELECT max(id) FROM annotations").fetchone()[0] or 0) + 1
    seq = (conn.execute("SELECT max(seq) FROM imports").fetchone()[0] or 0) + 1
    # The same picture imported twice (a second source) is one image: match by path, then hash.
    existing_path = {}
    existing_sha = {}
    for r in conn.execute("SELECT id, import_id, file_name, sha256 FROM images"):
        existing_path[(r["import_id"], r["file_name"])] = r["id"]
        if r["sha256"]:
            existing_sha[r["sha256"]] = r["id"]
    roots = {r["id"]: r["image_root"] for r in conn.execute("SELECT id, image_root FROM imports")}
    by_root_name = {(roots.get(imp), fn): i for (imp, fn), i in existing_path.items()}

    image_ids: dict[str, int] = {}
    image_lines = []
    image_rows = []
    for im in batch.images:
        sha_i, w, h, keep = image_info.get(im.key, (None, None, None, True))
        if not keep:
            continue
        reuse = (batch.store_images.get(im.key) or by_root_name.get((image_root, im.file_name))
                 or (existing_sha.get(sha_i) if sha_i else None))
        if reuse:
            image_ids[im.key] = reuse
            image_lines.append({"id": reuse, "key": im.key, "reused": True, "file_name": im.file_name,
                                "source_id": im.source_id})
            continue
        image_ids[im.key] = next_image
        extra = im.extra or None
        image_lines.append({"id": next_image, "key": im.key, "file_name": im.file_name,
                            "width": im.width or w, "height": im.height or h, "sha256": sha_i,
                            "source_id": im.source_id, "extra": extra})
        image_rows.append((next_image, import_id, im.file_name, im.width or w, im.height or h, sha_i,
                           _sid(im.source_id), _j(extra)))
        next_image += 1
    conn.executemany(_INSERT_IMAGE, image_rows)
    del image_rows

    first_ann = next_ann
    # A large import goes in without the image index, made again (sorted, in one go) at the end of
    # the same transaction: inserting 860k rows (in file order, image ids in no order) into it cost
    # 20 s, without it 9 s.
    bulk_after = max(50_000, (first_ann - 1) // 2)
    index_sql = None
    tally = {"skipped": 0}
    proposals = batch.proposals

    def produce():
        return _serialised(proposals, image_ids, tally)

    def finished(state):  # what the child's reader left: the parent's copy never read a proposal
        tally.update(state[0])
        batch.warnings[:], batch.categories[:] = state[1], state[2]

    shards = _ShardWriter(folder, prehash)  # (its thread starts with the first finished shard)
    chunks = None
    try:
        if _encode_elsewhere(batch):
            try:
                chunks = forked.in_child(produce, lambda: (tally, batch.warnings, batch.categories), finished,
                                         f"{batch.source_file}: reading the annotations")
            except OSError:  # no process to spare (a process limit, no memory to copy from): here, then
                pass
        if chunks is None:
            chunks = produce()
        for chunk in chunks:
            lines, rows = _encoded(chunk, next_ann, import_id, source)
            next_ann += len(rows)
            for line in lines:
                shards.write(line)
            conn.executemany(_INSERT_ANNOTATION, rows)
            if index_sql is None and next_ann - first_ann >= bulk_after:
                index_sql = _drop_index(conn, "annotations_image")
        if index_sql:
            conn.execute(index_sql)
    finally:
        if chunks is not None:
            chunks.close()  # (a child still reading is stopped)
        shards.close()
    n_anns = next_ann - first_ann
    skipped = tally["skipped"]
    warnings = [*batch.warnings, *warnings]
    if skipped:
        warnings.append(ImportWarning("annotations", f"{skipped} annotation(s) on skipped images",
                                      "skipped"))

    _write_jsonl(folder / "images.jsonl", image_lines)
    _write_jsonl(folder / "warnings.jsonl", [w.as_dict() for w in warnings])
    manifest = {
        "id": import_id, "seq": seq, "ts": ts, "author": identity.author, "login": identity.login,
        "host": identity.host, "source": source, "format": batch.format,
        "file": os.path.basename(batch.source_file), "sha256": sha, "image_root": image_root,
        "counts": {"images": len(image_lines), "annotations": n_anns, "warnings": len(warnings)},
        "categories": [{"name": c.name, "source_id": c.source_id, "supercategory": c.supercategory,
                        "keypoints": c.keypoints, "skeleton": c.skeleton, "extra": c.extra or None}
                       for c in batch.categories],
        "info": batch.info or None, "shards": shards.names,
        "warnings_by_problem": dict(Counter(_problem_kind(w.problem) for w in warnings)),
    }
    (folder / "manifest.json").write_bytes(canonical.dumps(manifest) + b"\n")
    for name in ("images.jsonl", "warnings.jsonl", "manifest.json"):
        with open(folder / name, "rb") as fh:
            os.fsync(fh.fileno())
    _index_manifest(conn, manifest)
    return {"import": import_id, "images": len(image_lines), "annotations": n_anns,
            "warnings": [w.as_dict() for w in warnings], "source": source, "format": batch.format}


#: A file read lazily of at least this size has its annotations read in a forked child, beside the
#: index's inserts (``LABELREVIEW_IMPORT_WORKER``: 1 always, 0 never; for tests and comparisons).
ENCODE_ELSEWHERE_BYTES = 16 << 20


def _encode_elsewhere(batch: ImportBatch) -> bool:
    if isinstance(batch.proposals, list) or not forked.can_fork():
        return False
    wanted = os.environ.get("LABELREVIEW_IMPORT_WORKER", "")
    if wanted in ("0", "1"):
        return wanted == "1"
    try:
        return os.path.getsize(batch.source_file) >= ENCODE_ELSEWHERE_BYTES
    except OSError:
        return False


def _serialised(proposals: Iterable[Proposal], image_ids: dict[str, int],
                tally: dict[str, int]) -> Iterator[list[tuple]]:
    """The proposals on the import's images, in chunks, each as a tuple of plain values with its
    geometry, extra and scores as canonical JSON text (the part of an import's work that is
    per-annotation Python); those on images the import does not keep are counted in
    ``tally["skipped"]``. Pure (no file, no database): it may run in another process, and what it
    yields pickles cheaply (text, not lists of floats)."""
    dumps = canonical.dumps
    chunk: list[tuple] = []
    for p in proposals:
        img = image_ids.get(p.image_key)
        if img is None:
            tally["skipped"] += 1
            continue
        seg, bbox, kps, extra, scores = p.segmentation, p.bbox, p.keypoints, p.extra, p.scores
        chunk.append((img, p.category, p.kind, p.score, p.iscrowd, p.area, p.source_id,
                      None if bbox is None else dumps(bbox).decode(),
                      None if seg is None else dumps(seg).decode(),
                      None if kps is None else dumps(kps).decode(),
                      dumps(extra).decode() if extra else None,
                      None if scores is None else dumps(scores).decode()))
        if len(chunk) >= _ROWS_PER_BATCH:
            yield chunk
            chunk = []
    yield chunk


def _encoded(chunk: list[tuple], next_ann: int, import_id: str, source: str) -> tuple[list[bytes], list[tuple]]:
    """``_serialised`` proposals numbered from ``next_ann``: their shard lines and index rows. Each
    value was serialised once: the same text is the shard's and the index's."""
    line_of, fragment = canonical.dumps_line, canonical.Fragment
    lines: list[bytes] = []
    rows: list[tuple] = []
    for img, category, kind, score, iscrowd, area, sid, bbox, seg, kps, extra, scores in chunk:
        lines.append(line_of({
            "id": next_ann, "image": img, "category": category, "kind": kind,
            "bbox": None if bbox is None else fragment(bbox),
            "segmentation": None if seg is None else fragment(seg),
            "keypoints": None if kps is None else fragment(kps), "score": score,
            "iscrowd": iscrowd, "area": area, "source_id": sid,
            "extra": None if extra is None else fragment(extra),
            "scores": None if scores is None else fragment(scores),
        }))
        # (an int's JSON is its str(): the common case without orjson)
        rows.append((next_ann, img, import_id, source, str(sid) if type(sid) is int else _sid(sid),
                     kind, category, category, score, iscrowd or 0, area, bbox, seg, kps, extra, scores))
        next_ann += 1
    return lines, rows


def _drop_index(conn: sqlite3.Connection, name: str) -> str:
    """Drop an index (inside the caller's transaction); its definition, to make it again."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type='index' AND name=?", (name,)).fetchone()
    if row is None or not row[0]:
        return ""
    conn.execute(f"DROP INDEX {name}")
    return row[0]


def _problem_kind(problem: str) -> str:
    return problem.split(":")[0].split("(")[0].strip()[:60]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    dumps = canonical.dumps
    with open(path, "wb") as f:
        f.write(b"".join(dumps(r) + b"\n" for r in rows))


def _index_manifest(conn: sqlite3.Connection, m: dict[str, Any]) -> None:
    """The import's own row and its categories (the rest of the index comes from the shards)."""
    from . import replay

    conn.execute("INSERT INTO imports(id, seq, ts, author, login, host, source, format, file, sha256,"
                 " image_root, images, annotations, warnings) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                 replay.import_row(m))
    conn.executemany("INSERT OR IGNORE INTO categories(name, source_id, supercategory, keypoints, skeleton, extra)"
                     " VALUES(?,?,?,?,?,?)", replay.category_rows(m))


def _load_import_folder(conn: sqlite3.Connection, folder: Path) -> None:
    """Index one import folder (at import, at recovery and at rebuild: the same code).

    At import the rows were already indexed in this transaction while the folder was written
    (``_write_import``): then there is nothing left to do. A file of the folder that is not as the
    import wrote it (edited since, or a remote's) stops this with its place (``ImportFileError``)."""
    from . import replay

    root = folder.parent.parent
    m = replay.read_manifest(folder / "manifest.json", root, None)
    if conn.execute("SELECT 1 FROM imports WHERE id=?", (m["id"],)).fetchone():
        return
    _index_manifest(conn, m)
    conn.executemany("INSERT OR IGNORE INTO images(id, import_id, file_name, width, height, sha256, source_id, extra)"
                     " VALUES(?,?,?,?,?,?,?,?)", replay.image_rows(folder, m["id"], root))
    place: list[tuple[Path, int, int]] = []
    images = {r[0] for r in conn.execute("SELECT id FROM images")}

    def rows():
        for a, path, number, row in replay.annotation_proposals(folder, m, root, images=images):
            place[:] = [(path, number, a)]
            yield row

    try:
        conn.executemany(
            "INSERT INTO annotations(id, image_id, import_id, source, source_id, kind, category,"
            " proposed_category, status, score, iscrowd, area, bbox, segmentation, keypoints, extra,"
            " scores) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows())
    except sqlite3.IntegrityError:
        if not place:
            raise
        path, number, a = place[0]
        replay.import_problem(None, root, path, number, f"annotation id {a} is already used by "
                              f"{replay.first_place(root, a) or 'another import'}", replay.FOREIGN_IDS)


_INSERT_EVENT = (
    "INSERT INTO events(hash, writer, seq, ts, author, login, host, action, annotation, image,"
    " old, new, reason, comment, base, undoes, prev, file, line, end_offset, blind, resolves)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def _event_values(ev: dict[str, Any], rel: str, line: int, end: int) -> tuple:
    """One row of the events table: the same for a live write, a catch-up and a rebuild."""
    return (ev["hash"], ev["writer"], ev["seq"], ev["ts"], ev["author"], ev.get("login"),
            ev.get("host"), ev["action"], ev["annotation"], ev.get("image"), _j(ev.get("old")),
            _j(ev.get("new")), ev.get("reason"), ev.get("comment"), ev.get("base"),
            ev.get("undoes"), ev.get("prev"), rel, line, end, 1 if ev.get("blind") is True else None,
            _j(_resolves_of(ev)))


def _rebuild_into(root: Path, index: Path, strict: bool = True) -> None:
    """Build an index from the committed files alone: imports in order, then every event.

    ``strict``: an unreadable or repeated event line is an error naming its place; otherwise it is
    left out (``verify`` reports it through the hash chains and compares the rest).

    The replay is folded in memory and written in bulk (``replay.py``); the rows are those the
    per-event path (``_load_import_folder``, ``_apply``, ``refold``, ``_attribute_commits``) writes.
    """
    from . import replay

    replay.rebuild(root, index, strict)


def _differs_from_head(repo, root: Path, rel: str) -> bool:
    """Whether the file ``rel`` differs from HEAD's version (or HEAD has none), by its blob id."""
    try:
        data = (root / rel).read_bytes()
    except OSError:
        return False
    try:
        head = repo.head.commit.tree[rel].hexsha
    except (KeyError, ValueError):
        return True
    return gitrepo.blob_id(data) != head


def _attribute_commits(root: Path, conn: sqlite3.Connection) -> None:
    """After a rebuild: which git commit first held each event (by the log's blob size per commit)."""
    try:
        repo = gitrepo.open_repo(root)
        if not repo.head.is_valid():
            return
        out = _log_history(repo)
    except Exception:
        return
    blobs = _log_blobs(out)
    shas = sorted({b for _, _, b in blobs if set(b) != {"0"}})
    sizes = _batch_check(repo, shas) if shas else {}
    conn.execute("BEGIN IMMEDIATE")
    for commit, path, blob in blobs:
        size = sizes.get(blob)
        if size is not None:
            conn.execute("UPDATE events SET git_commit=? WHERE git_commit IS NULL AND file=? AND end_offset<=?",
                         (commit, path, size))
    conn.execute("COMMIT")


def _log_history(repo) -> str:
    """``git log --raw`` of the event logs, oldest commit first: every commit after its parents
    (``--topo-order``; git's default order is by commit date, and lists a parent before its child
    when they have the same date, to the second, and another branch reaches the parent first)."""
    # Log paths are slugs ([A-Za-z0-9._-/]), so git never quotes them in --raw output.
    return repo.git.log("--reverse", "--topo-order", "--format=C %H", "--raw", "--no-abbrev", "--",
                        eventlog.EVENTS_DIR)


def _log_blobs(out: str) -> list[tuple[str, str, str]]:
    """(commit, log path, blob id) of each log version in ``_log_history``'s output, in order."""
    commit = None
    blobs: list[tuple[str, str, str]] = []
    for line in out.splitlines():
        if line.startswith("C "):
            commit = line[2:].strip()
        elif line.startswith(":") and commit:
            meta, path = line.split("\t", 1)
            blobs.append((commit, path, meta.split()[3]))
    return blobs


def _batch_check(repo, shas: list[str]) -> dict[str, int]:
    import subprocess

    proc = subprocess.run(["git", "cat-file", "--batch-check"], cwd=repo.working_tree_dir,
                          input="\n".join(shas) + "\n", capture_output=True, text=True, check=True)
    sizes = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            sizes[parts[0]] = int(parts[2])
    return sizes
