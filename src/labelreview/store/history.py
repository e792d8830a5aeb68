"""Questions about the past: who last changed a label, what changed between two revisions."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..model import LabelreviewError
from . import canonical, eventlog
from .store import Store


def blame(store: Store, *, annotation: int | None = None, image: int | None = None) -> list[dict[str, Any]]:
    """Per annotation: its state now and the event that made it so (who, when, from what, why, commit)."""
    if annotation is not None:
        anns = [store.annotation(annotation)]
    elif image is not None:
        from ..model import AnnotationFilter

        store.image(image)
        anns = store.annotations(AnnotationFilter(image_ids=[image]), order="id")
    else:
        raise LabelreviewError("blame needs an annotation id or --image")
    out = []
    for a in anns:
        last = store.events(annotation=a.id, newest_first=True, limit=1)
        ev = last[0] if last else None
        out.append({
            "annotation": a.id, "image": a.image_id, "category": a.category, "status": a.status,
            "proposed_category": a.proposed_category, "source": a.source, "import": a.import_id,
            "author": ev["author"] if ev else None, "login": ev["login"] if ev else None,
            "ts": ev["ts"] if ev else None, "action": ev["action"] if ev else "imported",
            "old": ev["old"] if ev else None, "new": ev["new"] if ev else None,
            "reason": ev["reason"] if ev else None, "comment": ev["comment"] if ev else None,
            "commit": ev["commit"] if ev else None, "event": ev["hash"] if ev else None,
        })
    return out


def _git(store: Store, *args: str, binary: bool = False) -> Any:
    proc = subprocess.run(["git", *args], cwd=store.root, capture_output=True, text=not binary)
    if proc.returncode != 0:
        err = proc.stderr if not binary else proc.stderr.decode("utf-8", "replace")
        raise LabelreviewError(f"git {' '.join(args)}: {err.strip()}")
    return proc.stdout


def resolve_rev(store: Store, rev: str) -> str:
    try:
        return _git(store, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except LabelreviewError:
        raise LabelreviewError(f"{rev!r} is not a revision of the store at {store.root}") from None


def diff(store: Store, rev_a: str, rev_b: str) -> dict[str, Any]:
    """The label changes between two revisions: the events B holds that A did not, per annotation."""
    a, b = resolve_rev(store, rev_a), resolve_rev(store, rev_b)
    names = _git(store, "diff", "--name-only", "-z", a, b, "--", eventlog.EVENTS_DIR, "imports").split("\0")
    events: list[dict[str, Any]] = []
    imports: list[str] = []
    for path in filter(None, names):
        if path.startswith("imports/"):
            if path.endswith("manifest.json"):
                imports.append(path.split("/")[1])
            continue
        new = _show(store, b, path)
        old = _show(store, a, path)
        if not new.startswith(old):
            raise LabelreviewError(f"{path}: {rev_b} does not extend {rev_a} (history rewritten?)")
        for line in new[len(old):].splitlines():
            if line.strip():
                events.append(canonical.loads(line))
    events.sort(key=lambda e: (e["ts"], e["writer"], e["seq"]))
    per_ann: dict[int, dict[str, Any]] = {}
    for ev in events:
        entry = per_ann.setdefault(ev["annotation"], {"annotation": ev["annotation"], "image": ev.get("image"),
                                                       "old": ev["old"], "events": 0, "authors": []})
        entry["new"] = ev["new"]
        entry["events"] += 1
        entry["last_action"] = ev["action"]
        entry["reason"] = ev.get("reason")
        if ev["author"] not in entry["authors"]:
            entry["authors"].append(ev["author"])
    changes = [c for c in per_ann.values() if c["old"] != c["new"]]
    return {"from": a, "to": b, "events": len(events), "imports": imports, "changes": changes,
            "unchanged_after_events": len(per_ann) - len(changes)}


def _show(store: Store, rev: str, path: str) -> bytes:
    proc = subprocess.run(["git", "cat-file", "-p", f"{rev}:{path}"], cwd=store.root, capture_output=True)
    return proc.stdout if proc.returncode == 0 else b""


@contextmanager
def at_revision(store: Store, rev: str) -> Iterator[Store]:
    """The store as it was at ``rev``, rebuilt in a temporary clone (the live store is untouched)."""
    sha = resolve_rev(store, rev)
    tmp = Path(tempfile.mkdtemp(prefix="labelreview-rev-"))
    try:
        subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(store.root), str(tmp / "s")],
                       check=True, capture_output=True)
        subprocess.run(["git", "checkout", "-q", "--detach", sha], cwd=tmp / "s", check=True, capture_output=True)
        # Image roots recorded relative to the store must still resolve from the live store's place.
        old = Store.open(tmp / "s", author=store.identity.author)
        old.root_for_images = store.root
        try:
            yield old
        finally:
            old.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
