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
    ev = conn.execute("SELECT ifnull(max(ord), 0) FROM events").fetchone()[0]
    return {"annotations": n, "max_annotation": top, "events": ev}


def load_state(conn: sqlite3.Connection) -> dict[str, Any] | None:
    ensure_tables(conn)
    row = conn.execute("SELECT value FROM suspicion_state WHERE key='state'").fetchone()
    return orjson.loads(row[0]) if row else None


def touched_images(conn: sqlite3.Connection, since_event: int) -> list[int]:
    """Images whose annotations a decision changed after event ``since_event`` (by ord)."""
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT a.image_id FROM events e JOIN annotations a ON a.id = e.annotation"
        " WHERE e.ord > ?", (since_event,))]


def load_columns(conn: sqlite3.Connection, *, sources: list[str] | None = None,
                 image_ids: list[int] | None = None) -> Columns:
    """Every annotation (or those of some sources / images) as arrays, without decoding row by row.

    At 1M annotations the cost is Python objects: names are turned into codes by SQLite (a join
    with a temporary table) so only small ints cross over, and the boxes of a chunk come as one
    text (``group_concat``) parsed by one ``orjson.loads``. One read transaction: one snapshot.
    """
    clauses, params = ["1=1"], []
    if sources is not None:
        clauses.append(f"a.source IN ({','.join('?' * len(sources))})")
        params += sources
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples: a sqlite3.Row per row costs seconds at 1M
    cur.execute("BEGIN")
    try:
        if image_ids is not None:
            _temp_ids(conn, "lr_images", image_ids)
            clauses.append("a.image_id IN (SELECT id FROM temp.lr_images)")
        where = " AND ".join(clauses)
        names = {}
        for col in ("source", "category"):
            names[col] = [r[0] for r in conn.execute(f"SELECT DISTINCT a.{col} FROM annotations a WHERE {where}",
                                                     params)]
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS lr_{col} (name TEXT PRIMARY KEY, code INTEGER)")
            conn.execute(f"DELETE FROM temp.lr_{col}")
            conn.executemany(f"INSERT INTO temp.lr_{col}(name, code) VALUES(?,?)",
                             [(n, i) for i, n in enumerate(names[col])])
        lo, hi = conn.execute(f"SELECT ifnull(min(a.id), 0), ifnull(max(a.id), -1) FROM annotations a"
                              f" WHERE {where}", params).fetchone()
        numeric, boxes = [], []
        for start in range(lo - 1, hi, CHUNK):
            rng = [*params, start, start + CHUNK]
            rows = cur.execute(
                "SELECT a.id, a.image_id, s.code, c.code,"
                " (a.status = 'rejected') + 2 * (a.kind = 'label') + 4 * (ifnull(a.iscrowd, 0) != 0), a.score"
                " FROM annotations a"
                " JOIN temp.lr_source s ON s.name = a.source JOIN temp.lr_category c ON c.name = a.category"
                f" WHERE {where} AND a.id > ? AND a.id <= ? ORDER BY a.id", rng).fetchall()
            if not rows:
                continue
            numeric.append(np.array(rows, dtype=np.float64).reshape(-1, 6))
            boxes.append(_chunk_boxes(cur, where, rng, len(rows)))
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
    num = np.concatenate(numeric) if numeric else np.zeros((0, 6))
    box = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    n = len(num)
    ids = num[:, 0].astype(np.int64)
    image = num[:, 1].astype(np.int64)
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
    categories = names["category"]
    cat_codes = {c: i for i, c in enumerate(categories)}
    self_p = np.full(n, np.nan)
    top_p = np.full(n, np.nan)
    top_class = np.full(n, -1, dtype=np.int32)
    if prob_rows:
        pid, pself, ptop, pmax = zip(*prob_rows)
        at = np.searchsorted(ids, np.array(pid, dtype=np.int64))
        self_p[at] = [v if isinstance(v, (int, float)) else np.nan for v in pself]
        top_p[at] = [v if isinstance(v, (int, float)) else np.nan for v in pmax]
        top_class[at] = [cat_codes.setdefault(c, len(cat_codes)) if isinstance(c, str) else -1 for c in ptop]
    flags = num[:, 4].astype(np.int64)
    return Columns(
        id=ids, image=image, source=num[:, 2].astype(np.int32), category=num[:, 3].astype(np.int32),
        rejected=(flags & 1) != 0, is_label=(flags & 2) != 0, crowd=(flags & 4) != 0, score=num[:, 5], box=box,
        image_w=w, image_h=h, self_p=self_p, top_p=top_p, top_class=top_class,
        sources=names["source"], categories=list(cat_codes))


_NO_BOX = "1e308,1e308,1e308,1e308"


def _chunk_boxes(conn: sqlite3.Connection | sqlite3.Cursor, where: str, params: list, n: int) -> np.ndarray:
    """The boxes of one chunk of rows, in id order, as (n, 4); nan where there is none."""
    text = conn.execute(
        "SELECT group_concat(b, ',') FROM (SELECT CASE WHEN a.bbox LIKE '[%]'"
        " AND length(a.bbox) - length(replace(a.bbox, ',', '')) = 3"
        f" THEN substr(a.bbox, 2, length(a.bbox) - 2) ELSE '{_NO_BOX}' END AS b FROM annotations a"
        f" WHERE {where} AND a.id > ? AND a.id <= ? ORDER BY a.id)", params).fetchone()[0]
    try:
        flat = np.array(orjson.loads("[" + (text or "") + "]"), dtype=np.float64)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        flat = np.zeros(0)
    if flat.size != 4 * n:  # a box that is not 4 numbers (never in a valid import): row by row
        rows = conn.execute(f"SELECT a.bbox FROM annotations a WHERE {where} AND a.id > ? AND a.id <= ?"
                            " ORDER BY a.id", params).fetchall()
        return _parse_boxes([r[0] for r in rows])
    flat[flat >= 1e308] = np.nan
    return flat.reshape(n, 4)


def _temp_ids(conn: sqlite3.Connection, name: str, ids: Iterable[int]) -> None:
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


def ranked_keys(store, flt: AnnotationFilter) -> list[tuple[int, int]]:
    """(annotation, image) of the filter's annotations, most suspicious first (ties in file order)."""
    where, params = store._where(flt)
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
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for r in conn.execute(f"SELECT annotation, score, why FROM suspicion WHERE annotation IN"
                              f" ({','.join('?' * len(chunk))})", chunk):
            out[r[0]] = (r[1], orjson.loads(r[2]) if r[2] else [])
    return out
