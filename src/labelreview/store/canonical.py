"""Canonical JSON and hashing: one serialisation for every hash the store computes."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_LINE_OPTS = _OPTS | orjson.OPT_APPEND_NEWLINE

#: Already-canonical JSON bytes to embed as they are in what ``dumps`` writes (serialised once).
Fragment = orjson.Fragment


def dumps(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same object always gives the same bytes."""
    return orjson.dumps(obj, option=_OPTS)


def dumps_line(obj: Any) -> bytes:
    """``dumps(obj) + b"\\n"`` without the copy: one line of a JSONL file."""
    return orjson.dumps(obj, option=_LINE_OPTS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def event_hash(event: dict[str, Any]) -> str:
    """The hash of an event over its canonical JSON without its own ``hash`` field."""
    body = {k: v for k, v in event.items() if k != "hash"}
    return sha256_hex(dumps(body))


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
