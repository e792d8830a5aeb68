"""The SQLite index: the live store, git-ignored, rebuilt from the committed files on demand."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS imports (
    id TEXT PRIMARY KEY, seq INTEGER, ts TEXT, author TEXT, login TEXT, host TEXT,
    source TEXT, format TEXT, file TEXT, sha256 TEXT, image_root TEXT,
    images INTEGER, annotations INTEGER, warnings INTEGER);
CREATE TABLE IF NOT EXISTS categories (
    name TEXT PRIMARY KEY, source_id INTEGER, supercategory TEXT, keypoints TEXT, skeleton TEXT,
    extra TEXT);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, import_id TEXT, file_name TEXT, width INTEGER, height INTEGER,
    sha256 TEXT, source_id TEXT, extra TEXT);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY, image_id INTEGER, import_id TEXT, source TEXT, source_id TEXT,
    kind TEXT, category TEXT, proposed_category TEXT, status TEXT, score REAL, iscrowd INTEGER,
    area REAL, bbox TEXT, segmentation TEXT, keypoints TEXT, extra TEXT, scores TEXT,
    last_event TEXT, updated_at TEXT, updated_by TEXT, reason TEXT, comment TEXT);
CREATE INDEX IF NOT EXISTS annotations_image ON annotations(image_id);
CREATE INDEX IF NOT EXISTS annotations_status ON annotations(status);
CREATE TABLE IF NOT EXISTS events (
    ord INTEGER PRIMARY KEY AUTOINCREMENT, hash TEXT NOT NULL, writer TEXT, seq INTEGER,
    ts TEXT, author TEXT, login TEXT, host TEXT, action TEXT, annotation INTEGER, image INTEGER,
    old TEXT, new TEXT, reason TEXT, comment TEXT, base TEXT, undoes TEXT, prev TEXT,
    file TEXT, line INTEGER, end_offset INTEGER, blind INTEGER, resolves TEXT, git_commit TEXT);
-- An event's hash is unique by an index of its own, not a column constraint: a rebuild makes it
-- after the rows are in (1M events: 11.5 + 2.7 s, against 21.7 s kept up row by row). Indexes
-- built before this had the constraint in the table (``sqlite_autoindex_events_1``): the same rule.
CREATE UNIQUE INDEX IF NOT EXISTS events_hash ON events(hash);
CREATE INDEX IF NOT EXISTS events_annotation ON events(annotation);
CREATE INDEX IF NOT EXISTS events_author ON events(author);
CREATE INDEX IF NOT EXISTS events_undoes ON events(undoes) WHERE undoes IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_uncommitted ON events(git_commit) WHERE git_commit IS NULL;
CREATE TABLE IF NOT EXISTS event_files (
    path TEXT PRIMARY KEY, writer TEXT, size INTEGER, lines INTEGER);
CREATE TABLE IF NOT EXISTS writers (writer TEXT PRIMARY KEY, seq INTEGER, hash TEXT);
CREATE TABLE IF NOT EXISTS conflicts (
    event TEXT PRIMARY KEY, annotation INTEGER, base TEXT, current TEXT, resolved TEXT);
CREATE INDEX IF NOT EXISTS conflicts_annotation ON conflicts(annotation);
-- Fold bookkeeping (derived, like everything here): decisions made on an older state that did not
-- change it because it had already been what they chose (the event it was, ``target``) ...
CREATE TABLE IF NOT EXISTS fold_alias (event TEXT PRIMARY KEY, annotation INTEGER, target TEXT);
CREATE INDEX IF NOT EXISTS fold_alias_annotation ON fold_alias(annotation);
-- ... and blind decisions (double review) waiting for the second reviewer's.
CREATE TABLE IF NOT EXISTS blind_pending (
    annotation INTEGER, author TEXT, event TEXT, new TEXT, PRIMARY KEY(annotation, author));
-- Who is looking at which image now (one server, several reviewers): not history, never committed.
CREATE TABLE IF NOT EXISTS leases (
    image_id INTEGER PRIMARY KEY, holder TEXT, login TEXT, host TEXT, pid INTEGER, expires REAL);
"""


def connect(path, timeout: float = 30.0) -> sqlite3.Connection:
    """WAL, a busy timeout, and autocommit mode so every write names its own BEGIN IMMEDIATE."""
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.row_factory = sqlite3.Row
    return conn


def connect_read_only(uri: str, timeout: float = 30.0) -> sqlite3.Connection:
    """An index this process may not write, by a ``file:...?mode=ro`` or ``?immutable=1`` URI: no
    pragma that would write (the journal mode is the file's own)."""
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    conn.row_factory = sqlite3.Row
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # (an unreadable file fails here)
    return conn


#: Columns added since an index may have been built: (table, column, type). Older events never
#: carried these fields, so an added column's NULL is what a rebuild would give them too.
ADDED_COLUMNS = (("events", "blind", "INTEGER"), ("events", "resolves", "TEXT"), ("fold_alias", "target", "TEXT"))


_EVENTS_HASH = "CREATE UNIQUE INDEX IF NOT EXISTS events_hash ON events(hash);"


def create(conn: sqlite3.Connection) -> None:
    script = SCHEMA
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name='sqlite_autoindex_events_1'").fetchone():
        script = script.replace(_EVENTS_HASH, "")  # unique already (an index made by an older version)
    conn.executescript(script)
    for table, column, kind in ADDED_COLUMNS:
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            except sqlite3.OperationalError as e:  # another process added it first
                if "duplicate column" not in str(e):
                    raise
    have = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if have is None or have[0] != str(SCHEMA_VERSION):  # (not a write at every open: `status` reads only)
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('schema', ?)", (str(SCHEMA_VERSION),))
