"""The suspicion scores in the index: their table, the columns they are computed from, and reads."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import orjson

from ..model import AnnotationFilter

TABLES = """
CREATE TABLE IF NOT EXISTS suspicion (
    annotation INTEGER PRIMARY KEY, score REAL NOT NULL, why TEXT, computed_at TEXT);
CREATE TABLE IF NOT EXISTS suspicion_state (key TEXT PRIMARY KEY, value TEXT);
"""

#: Annotation ids per round trip while loading columns (bounds the Python objects alive at once).
CHUNK = 200_000


def ensure_tables(conn: sqlite3.Connection) -> None:
    conn.executescript(TABLES)


@dataclass
class Columns:
    """One row per annotation (in id order) as numpy arrays; strings as codes into the name lists."""

    id: np.ndarray  # int64
    image: np.ndarray  # int64
    source: np.ndarray  # int32 code into sources
    category: np.ndarray  # int32 code into categories
    rejected: np.ndarray  # bool: a reviewer rejected it, so it is no longer a label
    is_label: np.ndarray  # bool: an image-level label (kind "label"), no geometry
    crowd: np.ndarray  # bool
    score: np.ndarray  # float64, nan when the proposal has none
    box: np.ndarray  # (n, 4) float64 x, y, w, h; nan when there is no box
    image_w: np.ndarray  # float64, nan when unknown
    image_h: np.ndarray
    #: From the proposal's {class: probability}: of its current class (0 if absent), and the top one.
    self_p: np.ndarray  # float64, nan when the proposal has no class probabilities
    top_class: np.ndarray  # int32 code into categories, -1 when none
    top_p: np.ndarray  # float64
    sources: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.id)


def fingerprint(conn: sqlite3.Connection) -> dict[str, int]:
    """What the scores were computed from: a new import or a new decision changes it."""
    n, top = conn.execute("SELECT count(*), ifnull(max(id), 0) FROM annotations").fetchone()
    n_ev, last = conn.execute("SELECT count(*), ifnull(max(ord), 0) FROM events").fetchone()
    return {"annotations": n, "max_annotation": top, "event_count": n_ev, "events": last}


def load_state(conn: sqlite3.Connection) -> dict[str, Any] | None:
    try:  # (not created here: an index opened without writing cannot take a table)
        row = conn.execute("SELECT value FROM suspicion_state WHERE key='state'").fetchone()
    except sqlite3.OperationalError as e:
        if "no such table" not in str(e):
            raise
        return None
    return orjson.loads(row[0]) if row else None


def touched_images(conn: sqlite3.Connection, since_event: int) -> list[int]:
    """Images whose annotations a decision changed after event ``since_event`` (by ord)."""
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT a.image_id FROM events e JOIN annotations a ON a.id = e.annotation"
        " WHERE e.ord > ?", (since_event,))]


def load_columns(conn: sqlite3.Connection, *, sources: list[str] | None = None,
                 image_ids: list[int] | None = None) -> Columns:
    """Every annotation (or those of some sources / images) as arrays, without decoding row by row.

    At 1M annotations the cost is Python objects, one per value fetched. So SQLite hands over a
    chunk of rows as three texts (``group_concat``): the numbers, parsed by one ``orjson.loads``,
    and the class and source names, split once and turned into codes. One read transaction.
    """
    clauses, params = ["1=1"], []
    if sources is not None:
        clauses.append(f"a.source IN ({','.join('?' * len(sources))})")
        params += sources
    cur = conn.cursor()
    cur.row_factory = None
    cur.execute("BEGIN")
    try:
        if image_ids is not None:
            _temp_ids(cur, "lr_images", image_ids)
            clauses.append("a.image_id IN (SELECT id FROM temp.lr_images)")
        where = " AND ".join(clauses)
        lo, hi = cur.execute(f"SELECT ifnull(min(a.id), 0), ifnull(max(a.id), -1) FROM annotations a"
                             f" WHERE {where}", params).fetchone()
        chunks = [_chunk(cur, where, [*params, start, start + CHUNK]) for start in range(lo - 1, hi, CHUNK)]
        prob_rows = cur.execute(
            "SELECT a.id,"
            " ifnull((SELECT j.value FROM json_each(a.scores) j WHERE j.key = a.category), 0),"
            " (SELECT j.key FROM json_each(a.scores) j ORDER BY j.value DESC LIMIT 1),"
            " (SELECT max(j.value) FROM json_each(a.scores) j)"
            f" FROM annotations a WHERE {where} AND a.scores IS NOT NULL AND json_valid(a.scores)"
            " AND json_type(a.scores) = 'object'", params).fetchall()
        image_rows = cur.execute("SELECT id, ifnull(width, -1), ifnull(height, -1) FROM images ORDER BY id"
                                 ).fetchall()
    finally:
        cur.execute("COMMIT")
    num = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros((0, 8))
    n = len(num)
    src_codes: dict[str, int] = {}
    cat_codes: dict[str, int] = {}
    source = np.fromiter((src_codes.setdefault(v, len(src_codes)) for c in chunks for v in c[2]), np.int32, n)
    category = np.fromiter((cat_codes.setdefault(v, len(cat_codes)) for c in chunks for v in c[1]), np.int32, n)
    ids = num[:, 0].astype(np.int64)
    image = num[:, 1].astype(np.int64)
    flags = num[:, 2].astype(np.int64)
    # Image sizes: one lookup per distinct image, by sorted search.
    img = np.array(image_rows, dtype=np.float64).reshape(-1, 3)
    w = np.full(n, np.nan)
    h = np.full(n, np.nan)
    if len(img) and n:
        pos = np.clip(np.searchsorted(img[:, 0], image), 0, len(img) - 1)
        found = img[pos, 0] == image
        w[found], h[found] = img[pos[found], 1], img[pos[found], 2]
        w[w <= 0], h[h <= 0] = np.nan, np.nan
    # Class probabilities: SQLite's json_each did the per-row work.
    self_p = np.full(n, np.nan)
    top_p = np.full(n, np.nan)
    top_class = np.full(n, -1, dtype=np.int32)
    if prob_rows:
        pid, pself, ptop, pmax = zip(*prob_rows)
        at = np.searchsorted(ids, np.array(pid, dtype=np.int64))
        self_p[at] = [v if isinstance(v, (int, float)) else np.nan for v in pself]
        top_p[at] = [v if isinstance(v, (int, float)) else np.nan for v in pmax]
        top_class[at] = [cat_codes.setdefault(c, len(cat_codes)) if isinstance(c, str) else -1 for c in ptop]
    return Columns(
        id=ids, image=image, source=source, category=category, rejected=(flags & 1) != 0,
        is_label=(flags & 2) != 0, crowd=(flags & 4) != 0, score=num[:, 3], box=num[:, 4:8],
        image_w=w, image_h=h, self_p=self_p, top_p=top_p, top_class=top_class,
        sources=list(src_codes), categories=list(cat_codes))


_NONE = "1e308"  # stands for "none" in the numbers' text: no score, no box
_END = "-7e307"  # ends each row's numbers: a box of another length shows as a misplaced end
_SEP = "\x1f"  # between names (a unit separator inside a name is read as a space)
_ROW = (
    "a.id || ',' || a.image_id || ',' ||"
    " ((a.status = 'rejected') + 2 * (a.kind = 'label') + 4 * (ifnull(a.iscrowd, 0) != 0)) || ',' ||"
    f" ifnull(a.score, '{_NONE}') || ',' || ifnull(a.bbox, '[{','.join([_NONE] * 4)}]') || ',{_END}'"
)
_NO_BRACKETS = str.maketrans("[]", "  ")


def _chunk(cur: sqlite3.Cursor, where: str, params: list) -> tuple[np.ndarray, list[str], list[str]]:
    """One chunk of rows in id order: (n, 8) numbers (id, image, flags, score, x, y, w, h; nan for
    none), the class names, the source names."""
    numbers, cats, srcs, n = cur.execute(
        "SELECT group_concat(n, ','), group_concat(c, char(31)), group_concat(s, char(31)), count(*) FROM"
        f" (SELECT {_ROW} AS n, replace(a.category, char(31), ' ') AS c, replace(a.source, char(31), ' ') AS s"
        f" FROM annotations a WHERE {where} AND a.id > ? AND a.id <= ? ORDER BY a.id)", params).fetchone()
    if not n:
        return np.zeros((0, 8)), [], []
    try:
        flat = np.array(orjson.loads("[" + numbers.translate(_NO_BRACKETS) + "]"), dtype=np.float64)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        flat = np.zeros(0)
    if flat.size == 9 * n and (flat[8::9] == float(_END)).all():
        flat = flat.reshape(n, 9)[:, :8]
    else:  # a box that is not 4 numbers (never in a valid import): row by row
        rows = cur.execute("SELECT a.id, a.image_id, (a.status = 'rejected') + 2 * (a.kind = 'label') +"
                           " 4 * (ifnull(a.iscrowd, 0) != 0), a.score, a.bbox FROM annotations a"
                           f" WHERE {where} AND a.id > ? AND a.id <= ? ORDER BY a.id", params).fetchall()
        flat = np.concatenate([np.array([r[:4] for r in rows], dtype=np.float64).reshape(-1, 4),
                               _parse_boxes([r[4] for r in rows])], axis=1)
    num = np.where(flat >= 1e308, np.nan, flat)
    return num, cats.split(_SEP), srcs.split(_SEP)


def _temp_ids(conn: sqlite3.Connection | sqlite3.Cursor, name: str, ids: Iterable[int]) -> None:
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} (id INTEGER PRIMARY KEY)")
    conn.execute(f"DELETE FROM temp.{name}")
    conn.executemany(f"INSERT OR IGNORE INTO temp.{name}(id) VALUES(?)", ((int(i),) for i in ids))


def _parse_boxes(boxes: list[str | None]) -> np.ndarray:
    """JSON ``[x,y,w,h]`` texts to an (n, 4) array; anything that is not 4 numbers -> nan."""
    out = np.full((len(boxes), 4), np.nan)
    for i, b in enumerate(boxes):
        try:
            v = orjson.loads(b) if b else None
        except orjson.JSONDecodeError:
            v = None
        if isinstance(v, list) and len(v) == 4 and all(isinstance(x, (int, float)) for x in v):
            out[i] = v
    return out


def save(store, ids: np.ndarray, score: np.ndarray, why: list[str | None], *, state: dict[str, Any],
         replace_ids: np.ndarray | None = None, computed_at: str) -> None:
    """Write the scores in one transaction; ``replace_ids`` None replaces the whole table.

    Only annotations with a reason are stored: a missing row reads as score 0, no reasons.
    """
    keep = np.flatnonzero(score > 0)
    rows = zip(ids[keep].tolist(), np.round(score[keep], 6).tolist(), [why[i] for i in keep.tolist()],
               [computed_at] * len(keep))
    if not getattr(store, "writes_index", True):
        # A read-only store's own index: the scores go to this connection's temporary tables,
        # which its queries read in place of the stored ones (SQLite looks in temp first).
        conn = store.conn
        conn.executescript(TABLES.replace("CREATE TABLE", "CREATE TEMP TABLE"))
        conn.execute("BEGIN")
        conn.execute("DELETE FROM temp.suspicion")
        conn.executemany("INSERT INTO temp.suspicion(annotation, score, why, computed_at) VALUES(?,?,?,?)", rows)
        conn.execute("INSERT OR REPLACE INTO temp.suspicion_state(key, value) VALUES('state', ?)",
                     (orjson.dumps(state).decode(),))
        conn.execute("COMMIT")
        return
    ensure_tables(store.conn)  # executescript commits: never inside the write transaction
    with store._write() as conn:
        if replace_ids is None:
            conn.execute("DELETE FROM suspicion")
        else:
            _temp_ids(conn, "lr_replace", replace_ids.tolist())
            conn.execute("DELETE FROM suspicion WHERE annotation IN (SELECT id FROM temp.lr_replace)")
        conn.executemany("INSERT OR REPLACE INTO suspicion(annotation, score, why, computed_at) VALUES(?,?,?,?)",
                         rows)
        conn.execute("INSERT OR REPLACE INTO suspicion_state(key, value) VALUES('state', ?)",
                     (orjson.dumps(state).decode(),))


def ranked_keys(store, flt: AnnotationFilter, also: int | None = None) -> list[tuple[int, int]]:
    """(annotation, image) of the filter's annotations, most suspicious first (ties in file order);
    ``also``: that annotation too, matching or not."""
    where, params = store._where(flt, also)
    cur = store.conn.cursor()
    cur.row_factory = None
    return cur.execute(
        f"SELECT a.id, a.image_id FROM annotations a LEFT JOIN suspicion s ON s.annotation = a.id"
        f" WHERE {where} ORDER BY ifnull(s.score, 0) DESC, a.image_id, a.id", params).fetchall()


def ranked_rows(store, flt: AnnotationFilter, limit: int | None = None) -> list[tuple[sqlite3.Row, float, list]]:
    """Full annotation rows with their score and reasons, most suspicious first."""
    where, params = store._where(flt)
    sql = (f"SELECT a.*, ifnull(s.score, 0) AS suspicion_score, s.why AS suspicion_why FROM annotations a"
           f" LEFT JOIN suspicion s ON s.annotation = a.id WHERE {where}"
           f" ORDER BY ifnull(s.score, 0) DESC, a.image_id, a.id")
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [(r, r["suspicion_score"], orjson.loads(r["suspicion_why"]) if r["suspicion_why"] else [])
            for r in store.conn.execute(sql, params)]


def why_of(conn: sqlite3.Connection, ann_ids: Iterable[int]) -> dict[int, tuple[float, list]]:
    ids = list(ann_ids)
    out: dict[int, tuple[float, list]] = {}
    if load_state(conn) is None:  # never scored (no table yet): nothing is suspicious
        return out
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for r in conn.execute(f"SELECT annotation, score, why FROM suspicion WHERE annotation IN"
                              f" ({','.join('?' * len(chunk))})", chunk):
            out[r[0]] = (r[1], orjson.loads(r[2]) if r[2] else [])
    return out
