"""Questions about the past: who last changed a label, what changed between two revisions."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..model import LabelreviewError
from . import canonical, eventlog, gitrepo
from .store import Store


def blame(store: Store, *, annotation: int | None = None, image: int | None = None) -> list[dict[str, Any]]:
    """Per annotation: its state now and the event that made it so (who, when, from what, why, commit)."""
    if annotation is not None:
        anns = [store.annotation(annotation)]
        if image is not None:  # both: the annotation, on that image (as `log --annotation --image` filters)
            store.image(image)
            if anns[0].image_id != image:
                raise LabelreviewError(f"annotation {annotation} is on image {anns[0].image_id}, not on image "
                                       f"{image} (labelreview blame {annotation}, or blame --image {image} "
                                       f"for each of image {image}'s annotations)")
    elif image is not None:
        from ..model import AnnotationFilter

        store.image(image)
        anns = store.annotations(AnnotationFilter(image_ids=[image]), order="id")
    else:
        raise LabelreviewError("blame needs an annotation id or --image")
    out = []
    for a in anns:
        # The event the state holds (after a sync, the newest event may be a conflicting one).
        ev = store.event(a.last_event) if a.last_event else None
        out.append({
            "annotation": a.id, "image": a.image_id, "category": a.category, "status": a.status,
            "proposed_category": a.proposed_category, "source": a.source, "import": a.import_id,
            "author": ev["author"] if ev else None, "login": ev["login"] if ev else None,
            "host": ev["host"] if ev else None,
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
    gitrepo.check_ownership(store.root)  # (else "not a revision" for a store git will not read)
    try:
        return _git(store, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except LabelreviewError:
        raise LabelreviewError(f"{rev!r} is not a revision of the store at {store.root}") from None


def diff(store: Store, rev_a: str, rev_b: str) -> dict[str, Any]:
    """The label changes between two revisions: the events B holds that A did not, per annotation."""
    a, b = resolve_rev(store, rev_a), resolve_rev(store, rev_b)
    _check_order(store, rev_a, a, rev_b, b)
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
            if old.startswith(new):  # the two the wrong way round: B is older than A
                raise LabelreviewError(f"{rev_b} is older than {rev_a}: give the older revision first "
                                       f"(labelreview diff {rev_b} {rev_a})")
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
        # (the newest event: what the fold's states replace below, when this index holds them all)
        entry["last_action"], entry["reason"], entry["by"], entry["event"] = (
            ev["action"], ev.get("reason"), ev["author"], ev["hash"])
        entry["conflict"] = entry["conflict_before"] = None  # (unknown without the fold)
        if ev["author"] not in entry["authors"]:
            entry["authors"].append(ev["author"])
    states = _fold_states(store, a, b, sorted(per_ann))
    for ann, (old, new) in (states or {}).items():
        entry = per_ann[ann]
        entry["old"], entry["new"] = old.pop("state"), new.pop("state")
        # What the change says of how the label came to be so is the event its state at B holds,
        # not the newest event: after a sync the newest may be a competing decision, kept aside for
        # adjudication, while the state is still the other reviewer's.
        held = store.event(new["last_event"]) if new["last_event"] else None
        entry["last_action"] = held["action"] if held else None
        entry["reason"] = held["reason"] if held else None  # (the event's own, as blame and log give it)
        entry["by"] = held["author"] if held else None
        entry["event"] = held["hash"] if held else None
        entry["conflict"] = new["conflict"]
        entry["conflict_before"] = old["conflict"]
    # The labels of an import made between A and B did not exist at A: new, not "pending" there.
    at_a = _imports_at(store, a)
    for ann, (imp, proposed) in _import_of(store, sorted(per_ann)).items():
        per_ann[ann]["proposed"] = proposed
        if imp not in at_a:
            per_ann[ann]["old"] = None
            per_ann[ann]["conflict_before"] = None
    # A label whose class and status stayed but that went to adjudication (or came out of it) changed too.
    changes = [c for c in per_ann.values()
               if c["old"] != c["new"] or c.get("conflict") != c.get("conflict_before")]
    classes, relabeled = _per_class(changes)
    return {"from": a, "to": b, "events": len(events), "imports": imports,
            "imported": {i: _import_counts(store, b, i) for i in imports}, "changes": changes,
            "unchanged_after_events": len(per_ann) - len(changes), "classes": classes, "relabeled": relabeled}


def _imports_at(store: Store, rev: str) -> set[str]:
    """The imports a revision holds (those whose manifest it has)."""
    out = _git(store, "ls-tree", "-r", "--name-only", "-z", rev, "--", "imports")
    return {p.split("/")[1] for p in out.split("\0") if p.count("/") == 2 and p.endswith("/manifest.json")}


def _import_counts(store: Store, rev: str, import_id: str) -> dict[str, Any]:
    """An import's source and how many images and labels it brought, from its manifest at ``rev``."""
    try:
        m = canonical.loads(_show(store, rev, f"imports/{import_id}/manifest.json"))
        counts = m.get("counts") or {}
        return {"source": m.get("source"), "annotations": counts.get("annotations"), "images": counts.get("images")}
    except (ValueError, AttributeError):
        return {"source": None, "annotations": None, "images": None}


def _import_of(store: Store, ann_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Each annotation's import and proposed class."""
    out: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ann_ids), 500):
        chunk = ann_ids[start:start + 500]
        for r in store.conn.execute(f"SELECT id, import_id, proposed_category FROM annotations"
                                    f" WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            out[r[0]] = (r[1], r[2])
    return out


def _is_ancestor(store: Store, older: str, newer: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", older, newer], cwd=store.root,
                          capture_output=True).returncode == 0


def _check_order(store: Store, rev_a: str, a: str, rev_b: str, b: str) -> None:
    """A diff goes from a revision to one that holds it. By git's history, not by the logs' contents:
    two revisions on either side of a sync (each holding decisions the other has not) were both said
    to be "older" than the other, and a diff the wrong way round with only an import between listed
    the import as added."""
    if a == b or _is_ancestor(store, a, b):
        return
    if _is_ancestor(store, b, a):  # the two the wrong way round: B is older than A
        raise LabelreviewError(f"{rev_b} is older than {rev_a}: give the older revision first "
                               f"(labelreview diff {rev_b} {rev_a})")
    proc = subprocess.run(["git", "merge-base", a, b], cwd=store.root, capture_output=True, text=True)
    base = proc.stdout.strip() if proc.returncode == 0 else ""
    if not base:
        raise LabelreviewError(f"{rev_a} and {rev_b} have no history in common (not revisions of one store)")
    raise LabelreviewError(f"{rev_a} and {rev_b} are on diverged histories: each holds decisions the other "
                           f"does not (made on two machines between syncs), so neither comes "
                           f"first; compare each with their common ancestor {base[:10]} "
                           f"(labelreview diff {base[:10]} {rev_b})")


#: What a release holds of each label: the statuses ``export`` writes by default.
RELEASED = ("accepted", "relabeled")


def _per_class(changes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per class, how the released labels changed: added (now exported, before not), removed (the
    reverse), relabeled in and out (exported both times, under another class)."""
    per: dict[str, dict[str, Any]] = {}
    moves: dict[tuple[str, str], int] = {}

    def row(name: str) -> dict[str, Any]:
        return per.setdefault(name, {"class": name, "added": 0, "removed": 0, "relabeled_in": 0, "relabeled_out": 0})

    for c in changes:
        old, new = c["old"], c["new"]  # (old None: imported after A)
        # A label waiting for adjudication is not in a release: export leaves it out.
        was = old is not None and old["status"] in RELEASED and not c.get("conflict_before")
        now = new["status"] in RELEASED and not c.get("conflict")
        if now and not was:
            row(new["category"])["added"] += 1
        elif was and not now:
            row(old["category"])["removed"] += 1
        elif was and now and old["category"] != new["category"]:
            row(old["category"])["relabeled_out"] += 1
            row(new["category"])["relabeled_in"] += 1
            moves[(old["category"], new["category"])] = moves.get((old["category"], new["category"]), 0) + 1
    classes = [per[k] for k in sorted(per)]
    relabeled = [{"from": f, "to": t, "count": n} for (f, t), n in sorted(moves.items(), key=lambda kv: (-kv[1], kv[0]))]
    return classes, relabeled


def _log_sizes(store: Store, rev: str) -> dict[str, int]:
    out = _git(store, "ls-tree", "-r", "-l", "-z", rev, "--", eventlog.EVENTS_DIR)
    sizes = {}
    for entry in filter(None, out.split("\0")):
        meta, path = entry.split("\t", 1)
        parts = meta.split()
        if parts[1] == "blob" and path.endswith(".jsonl"):
            sizes[path] = int(parts[3])
    return sizes


def _fold_states(store: Store, a: str, b: str, ann_ids: list[int]) -> dict[int, tuple[dict, dict]] | None:
    """Each annotation's state at both revisions, by the store's own fold over the events each held
    (an event is in a revision when its log's blob there reaches the event's end): per revision its
    ``state`` (class and status), the ``last_event`` holding it with its ``reason``, and whether a
    ``conflict`` waits for adjudication. None when this store's index does not hold every event of
    ``b`` (a revision from elsewhere, not merged here)."""
    from .store import FOLD_COLUMNS, _fold_step, _fresh_fold, fold_event

    sizes_a, sizes_b = _log_sizes(store, a), _log_sizes(store, b)
    indexed = {r[0]: r[1] for r in store.conn.execute("SELECT path, size FROM event_files")}
    if any(indexed.get(p, -1) < n for p, n in sizes_b.items()):
        return None
    out: dict[int, tuple[dict, dict]] = {}
    for start in range(0, len(ann_ids), 500):
        chunk = ann_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        proposal = {r[0]: r[1] for r in store.conn.execute(
            f"SELECT id, proposed_category FROM annotations WHERE id IN ({marks})", chunk)}

        states = {ann: (_fresh_fold(ann, proposal[ann]), _fresh_fold(ann, proposal[ann]))
                  for ann in chunk if ann in proposal}
        settled: dict = {}
        for r in store.conn.execute(
                f"SELECT annotation, file, end_offset, {FOLD_COLUMNS} FROM events WHERE annotation IN ({marks})"
                f" ORDER BY ts, writer, seq", chunk):
            if r["annotation"] not in states:
                continue
            ev = fold_event(r, settled)
            st_a, st_b = states[r["annotation"]]
            if r["end_offset"] <= sizes_a.get(r["file"], -1):
                _fold_step(st_a, ev)
            if r["end_offset"] <= sizes_b.get(r["file"], -1):
                _fold_step(st_b, ev)
        for ann, (st_a, st_b) in states.items():
            out[ann] = (_at(st_a), _at(st_b))
    return out


def _at(st: dict[str, Any]) -> dict[str, Any]:
    return {"state": {"category": st["category"], "status": st["status"]}, "last_event": st["last_event"],
            "reason": st["reason"], "conflict": bool(st["open"])}


def release(store: Store, name: str, message: str | None = None) -> dict[str, Any]:
    """Tag the store as a dataset release: a checkpoint, then an annotated tag by the reviewer."""
    if subprocess.run(["git", "check-ref-format", f"refs/tags/{name}"], capture_output=True).returncode != 0 \
            or name.startswith("-"):
        raise LabelreviewError(f"{name!r} is not a valid release name (a git tag name, e.g. v1.0)")
    if subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/tags/{name}"], cwd=store.root,
                      capture_output=True).returncode == 0:
        raise LabelreviewError(f"release {name} already exists; a release never moves (choose a new name)")
    store.checkpoint()
    counts = store.counts()
    exported = counts["accepted"] + counts["relabeled"]
    msg = message or (f"labelreview release {name}: {exported} labels ({counts['accepted']} accepted, "
                      f"{counts['relabeled']} relabeled), {counts['pending']} pending, "
                      f"{counts['conflicts']} open conflicts")
    ident = store.identity
    env = dict(os.environ, GIT_COMMITTER_NAME=ident.name, GIT_COMMITTER_EMAIL=ident.email)
    proc = subprocess.run(["git", "tag", "-a", name, "-m", msg, "HEAD"], cwd=store.root, capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise LabelreviewError(f"git tag {name}: {proc.stderr.strip()}")
    sha = _git(store, "rev-parse", "HEAD").strip()
    return {"name": name, "commit": sha, "message": msg, "exported": exported, "pending": counts["pending"],
            "conflicts": counts["conflicts"], "tagger": ident.author}


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
