"""The command line: parses arguments and calls the layers below. Never imports the UI unless asked."""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from .display import UNSAFE, escaped, printable, score_text, why_line
from .model import AnnotationFilter, LabelreviewError, split_list

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(fn):
        COMMANDS[name] = fn
        return fn
    return register


# ---------------------------------------------------------------------- helpers


def emit_json(obj: Any) -> None:
    text = orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    encoding = getattr(sys.stdout, "encoding", None)
    if encoding and not text.isascii():
        try:
            text.encode(encoding)
        except UnicodeEncodeError:  # (LANG=C, a Latin-1 locale): "\u00fc" is the same JSON, in ASCII
            import json

            text = json.dumps(json.loads(text), indent=2, ensure_ascii=True)
    sys.stdout.write(text + "\n")


def tolerant_output() -> None:
    """Text a locale's encoding cannot hold (a reason in Japanese under LANG=C) is written escaped,
    ``\\xfc``, rather than ending the command in a UnicodeEncodeError traceback half-way through
    its output."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors != "backslashreplace":
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # (closed, or already written through in a way it cannot change)
                pass


class _EscapingStream:
    """sys.stdout or sys.stderr for the commands that print (not the review screen): control
    characters that come from the data (a class name, a file name, a path) are written as escapes,
    so that nothing read from a file can clear the screen, set the window's title, overwrite a line
    with a carriage return or turn it around with a bidi override. A line's newline and tab stay.
    ``--json`` stays valid JSON: a C0 control is escaped there already, the rest becomes ``\\uXXXX``."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        if UNSAFE.search(text):
            text = UNSAFE.sub(escaped, text)
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextmanager
def escaping_output() -> Iterator[Callable[[], None]]:
    """Within: stdout and stderr escape control characters. Yields a function that ends it early
    (the review screen drives the terminal itself)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _EscapingStream(saved[0]), _EscapingStream(saved[1])

    def restore() -> None:
        for name, stream in zip(("stdout", "stderr"), saved):
            if isinstance(getattr(sys, name), _EscapingStream):
                setattr(sys, name, stream)

    try:
        yield restore
    finally:
        restore()


def counted(n: int, thing: str) -> str:
    """"1 writer", "4 writers", "2 image hashes"."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing}{'es' if thing.endswith(('s', 'sh', 'ch', 'x')) else 's'}"


def table(rows: list[list[Any]], headers: list[str]) -> None:
    from rich.cells import cell_len  # columns on screen: a CJK character takes two, a combining mark none

    text = [[printable(v) for v in r] for r in rows]  # (a reason cannot forge a row of `log`)
    widths = [max([cell_len(h)] + [cell_len(r[i]) for r in text]) for i, h in enumerate(headers)]
    for r in [headers, *text]:
        print("  ".join(v + " " * (w - cell_len(v)) for v, w in zip(r, widths)).rstrip())


def utc_since(value: str | None) -> str | None:
    """``--since`` as the store writes times (2026-11-28T14:00:00.000000Z): a date, or a date and a
    time ('2026-11-28 14:00', as `log` prints them; UTC unless an offset is given)."""
    if value is None:
        return None
    from datetime import datetime, timezone

    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LabelreviewError(f"--since takes a UTC date or time, e.g. 2026-11-28 or '2026-11-28 14:00', "
                               f"not {value!r}") from None
    if t.tzinfo is not None:
        try:
            t = t.astimezone(timezone.utc)
        except OverflowError:  # (year 1 at +14:00 is before year 1 in UTC): before or after every event
            return "0000" if t.year == 1 else "9999-12-31T23:59:59.999999Z"
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def note(message: str) -> None:
    """What the store did on its own that the user should know (on stderr: scripts read stdout)."""
    print(f"labelreview: note: {message}", file=sys.stderr, flush=True)


def store_root(args: argparse.Namespace) -> Path:
    """The store the command is for, found upward from here when not named. The index records its
    path as text: a folder name in another encoding than UTF-8 ended every command in a traceback."""
    from .store import find_store

    return utf8_store_path(find_store(explicit=args.store))


def utf8_store_path(root: Path) -> Path:
    try:
        str(root).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(root).encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise LabelreviewError(f"{shown}: the store's path is not UTF-8 text; labelreview records it in UTF-8, "
                               "so rename the folder with the odd name (or move the store)") from None
    return root


def open_store(args: argparse.Namespace, **kwargs):
    from .store import Store

    return Store.open(store_root(args), author=args.author, notify=note, **kwargs)


def parse_filter(args: argparse.Namespace) -> AnnotationFilter:
    def split(values):
        return [v for item in (values or []) for v in split_list(str(item)) if v]

    score = getattr(args, "score", None)
    lo = hi = None
    if score:
        try:
            a, _, b = score.partition(":")
            lo, hi = (float(a) if a else None), (float(b) if b else None)
        except ValueError:
            raise LabelreviewError(f"--score takes MIN:MAX (either may be empty), not {score!r}") from None
    return AnnotationFilter(
        statuses=split(getattr(args, "status", None)), categories=split(getattr(args, "category", None)),
        sources=split(getattr(args, "source_filter", None)), score_min=lo, score_max=hi,
        authors=split(getattr(args, "by", None)), reasons=split(getattr(args, "reason_filter", None)),
        image_ids=[_image_id(v) for v in split(getattr(args, "image", None))],
        conflicts=bool(getattr(args, "conflicts", False)),
    ).check()


_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


def _integer(text: str) -> int:
    """``int(text)`` for decimal digits only: int() also reads 2_0 as 20 and other scripts' digits
    (Arabic-Indic ٣ as 3), which no user means as an id. ValueError otherwise."""
    if not _INTEGER.fullmatch(text):
        raise ValueError(text)
    return int(text)


def an_id(text: str) -> int:
    """An annotation or image id as argparse reads it: an integer SQLite can hold (ids above 2**63
    raised OverflowError deep in the store)."""
    try:
        value = _integer(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an id: {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"no such id: {text} (ids are 0 to 2**63-1)")
    return value


def a_seed(text: str) -> int:
    """A random order's seed: a whole number a 64-bit integer holds (a bigger one took `review` down
    with a traceback, naming the queue to remember its place)."""
    try:
        value = _integer(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not -2**63 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text} is too big (a seed is from -2**63 to 2**63-1)")
    return value


def a_count(text: str) -> int:
    try:
        value = _integer(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return min(value, 2**63 - 1)  # (more than SQLite counts is all; 2**70 was an IntegrityError traceback)


def _image_id(text: str) -> int:
    try:
        return an_id(text)
    except argparse.ArgumentTypeError as e:
        raise LabelreviewError(f"--image: {e}") from None


def add_filter_args(p: argparse.ArgumentParser, order_default: str = "file") -> None:
    g = p.add_argument_group("filter")
    g.add_argument("--status", action="append", help="pending, accepted, relabeled, flagged, rejected (comma list)")
    g.add_argument("--category", "--class", action="append", help="class name(s)")
    g.add_argument("--source", dest="source_filter", action="append", help="import source name(s)")
    g.add_argument("--score", help="score range MIN:MAX, e.g. 0.3:0.7 or :0.5")
    g.add_argument("--by", action="append", help="who made the latest decision: a name, an email or any part of one")
    g.add_argument("--reason", dest="reason_filter", action="append", help="flag/reject reason")
    g.add_argument("--image", action="append", help="image id(s)")
    g.add_argument("--conflicts", action="store_true", help="only annotations with open conflicts")
    g.add_argument("--order", default="file", help=f"file, score, score-desc, random, suspicion (default: {order_default})")
    g.add_argument("--seed", type=a_seed, default=0, help="seed for --order random")


def finish(store, session=None) -> None:
    """Every command that wrote ends with a checkpoint, so git holds what it did."""
    store.checkpoint()


# ---------------------------------------------------------------------- store commands


@command("init")
def cmd_init(args) -> int:
    from .store import Store

    utf8_store_path(Path(args.path).absolute())  # (checked before anything is made: a half-made store stayed)
    root = Store.init(args.path, name=args.name)
    if args.json:
        emit_json({"store": str(root)})
    else:
        print(f"created store {root}")
    return 0


@command("import")
def cmd_import(args) -> int:
    from .review.roles import require
    from .formats import registry

    store = open_store(args)
    try:
        require(store, "import")
        # Lazy: the store writes each proposal as it is read, so a large file is never held whole.
        fmt, batch = registry.read(args.format, args.path, args, store, lazy=True)
        root = args.images or registry.default_image_root(fmt, args.path)
        result = store.ingest(batch, source=args.source or Path(os.path.abspath(args.path)).stem, image_root=root,
                              check_images=not args.no_image_check)
        try:
            finish(store)
        except LabelreviewError as e:  # the import is whole in the store; only git has not got it
            raise LabelreviewError(f"imported {result['annotations']} annotations as {result['import']}, but it "
                                   f"is not in git yet: {e}; `labelreview commit` commits it") from None
        from .store.sync import remotes

        has_remotes = bool(remotes(store))
    finally:
        store.close()
    if args.json:
        emit_json(result)
    else:
        if fmt != args.format:
            print(f"detected format: {fmt}")
        print(f"imported {result['annotations']} annotations on {result['images']} images "
              f"as {result['import']} (source {result['source']!r})")
        warns = result["warnings"]
        if warns:
            print(f"{len(warns)} warning(s), recorded in imports/{result['import']}/warnings.jsonl:")
            for w in warns[:20]:
                print(f"  {w['where']}: {w['problem']} ({w['action']})")
            if len(warns) > 20:
                print(f"  ... and {len(warns) - 20} more")
        if has_remotes:
            print("this store has remotes: run `labelreview sync` now (ids are numbered per machine; an import "
                  "made elsewhere before it reaches the remote would clash)")
    return 0


@command("export")
def cmd_export(args) -> int:
    from .review.roles import require
    from .formats import registry
    from .formats.snapshot import snapshot_from_store
    from .store.history import at_revision

    store = open_store(args)
    try:
        require(store, "export")
        registry.refuse_store_files(args.out, store.root)
        # ("flagged, pending", as one writes a list, was refused as "not  pending")
        include = tuple(v.strip() for item in (args.include or []) for v in item.split(",") if v.strip())

        def write(snapshot) -> dict:
            try:
                return registry.write(args.format, snapshot, args.out, args)
            except OSError as e:  # a folder on the way that is a file, no permission, a full disk...
                blocking = next((p for p in reversed(Path(args.out).parents) if p.exists() and not p.is_dir()), None)
                if isinstance(e, (FileExistsError, NotADirectoryError)) and blocking is not None:
                    why = f"{blocking} is a file, not a folder"
                else:
                    why = (e.strerror or str(e)) + (f" ({e.filename})" if e.filename else "")
                raise LabelreviewError(f"{args.out}: cannot write the export: {why}") from None

        if args.rev:
            with at_revision(store, args.rev) as old:
                snapshot = snapshot_from_store(old, include)
                result = write(snapshot)
        else:
            snapshot = snapshot_from_store(store, include)
            result = write(snapshot)
        result["conflicted_left_out"] = snapshot.conflicted_left_out
    finally:
        store.close()
    if args.json:
        emit_json(result)
    else:
        print(f"wrote {result['annotations']} annotations on {result['images']} images to {result['file']}"
              f" (provenance: {result['provenance']})")
        skipped = result.get("skipped")
        if skipped:
            # (Why, then how many: the format cannot hold some, others are not decided yet.)
            detail = "; ".join(f"{why}: {n}" for why, n in skipped.items()) if isinstance(skipped, dict) \
                else str(skipped)
            print(f"left out of the export: {detail}")
        for why, n in (result.get("rounded") or {}).items():
            print(f"{n} {why}")
        for why, n in (result.get("past_image") or {}).items():
            print(f"{n} {why}")
        for text in result.get("warnings") or ():
            print(f"warning: {text}")
        for why, names in (result.get("images_left_out") or {}).items():
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            print(f"images left out of the export, {why}: {shown}")
        if result["conflicted_left_out"]:
            n = result["conflicted_left_out"]
            print(f"{counted(n, 'label')} left out: reviewers disagree on {'it' if n == 1 else 'them'} and "
                  "adjudication is open (`labelreview ls --conflicts`; `--include conflicted` exports them as "
                  "they stand)")
    return 0


@command("status")
def cmd_status(args) -> int:
    store = open_store(args)
    try:
        counts = store.counts()
        counts["store"] = str(store.root)
        counts["author"] = store.identity.author
    finally:
        store.close()
    if args.json:
        emit_json(counts)
        return 0
    print(f"store {counts['store']}  ({counts['imports']} imports, {counts['images']} images)")
    done = counts["total"] - counts["pending"]
    print(f"{done} of {counts['total']} annotations reviewed")
    for s in ("pending", "accepted", "relabeled", "flagged", "rejected"):
        print(f"  {s:<10} {counts[s]}")
    print(f"{counts['events']} events, {counts['uncommitted']} not yet in git, {counts['conflicts']} open conflicts")
    return 0


@command("ls")
def cmd_ls(args) -> int:
    from .review.queue import check_names

    store = open_store(args)
    try:
        flt = parse_filter(args)
        check_names(store, flt)
        if args.order == "suspicion":
            from .review.suspicion import ranked

            anns = ranked(store, flt, limit=args.limit)
        else:
            anns = store.annotations(flt, order=args.order, seed=args.seed)
        rows = []
        names = {im.id: im.file_name for im in store.images(sorted({a.image_id for a in anns}))} if anns else {}
        competing = {}
        if flt.conflicts:
            competing = {c["annotation"]: c["decisions"] for c in store.open_conflicts([a.id for a in anns])}
        for a in anns[: args.limit or None]:
            row = {"id": a.id, "image": a.image_id, "file_name": names.get(a.image_id), "category": a.category,
                   "proposed_category": a.proposed_category, "status": a.status, "score": a.score,
                   "source": a.source, "source_id": a.source_id, "kind": a.kind, "bbox": a.bbox,
                   "updated_by": a.updated_by, "reason": a.reason}
            if getattr(a, "suspicion", None) is not None:
                row["suspicion"], row["why"] = a.suspicion, a.why
            if flt.conflicts:
                row["decisions"] = [_decision(d) for d in competing.get(a.id, [])]
            rows.append(row)
    finally:
        store.close()
    if args.json:
        emit_json(rows)
    elif flt.conflicts:
        for r in rows:
            print(f"{r['id']} (image {r['image']} {r['file_name']}): now {r['category']}/{r['status']}, "
                  f"proposed {r['proposed_category']}")
            for d in r["decisions"]:
                mark = "*" if d["current"] else " "
                why = f"  ({d['reason']})" if d["reason"] else ""
                print(f"  {mark} {d['event'][:10]}  {d['ts'][:19].replace('T', ' ')}  {d['author'].split(' <')[0]:<12} "
                      f"{d['action']:<8} {d['new']['category']}/{d['new']['status']}{why}")
        if rows:
            print("(* = the state now; resolve with `labelreview resolve ID --pick EVENT` or "
                  "`--category C --status S`)")
    elif args.order == "suspicion":
        from .review.suspicion import describe

        table([[r["id"], r["image"], r["file_name"], r["category"], r["status"],
                "" if r["score"] is None else score_text(r["score"]), r["source"], f"{r['suspicion']:.2f}",
                describe(r["why"])] for r in rows],
              ["id", "image", "file", "class", "status", "score", "source", "suspicion", "why here"])
    else:
        table([[r["id"], r["image"], r["file_name"], r["category"], r["status"],
                "" if r["score"] is None else score_text(r["score"]), r["source"], r["reason"]] for r in rows],
              ["id", "image", "file", "class", "status", "score", "source", "reason"])
    return 0


@command("compare")
def cmd_compare(args) -> int:
    from .review.suspicion import compare

    store = open_store(args)
    try:
        report = compare(store, args.source_a, args.source_b)
    finally:
        store.close()
    if args.json:
        emit_json(report)
        return 0
    s = report["summary"]
    print(f"{s['source_a']} (a) vs {s['source_b']} (b) on {s['images_compared']} images both labelled: "
          f"{s['a']} vs {s['b']} boxes, {s['matched']} matched with the same class")
    print(f"  {s['class_mismatch']} class mismatches (IoU >= {s['iou_thresholds']['class_mismatch']}), "
          f"{s['low_iou']} poor overlaps (IoU < {s['iou_thresholds']['low_iou']}), "
          f"{s['only_in_a']} only in a, {s['only_in_b']} only in b")
    if s["a_not_compared"] or s["b_not_compared"]:
        print(f"  not compared (the other source has nothing on their image): {s['a_not_compared']} of a, "
              f"{s['b_not_compared']} of b")
    if report["classes"]:
        print()
        table([[c["class"], c["a"], c["b"], c["matched"], c["class_mismatch"], c["low_iou"], c["only_in_a"],
                c["only_in_b"]] for c in report["classes"]],
              ["class", "a", "b", "matched", "mismatch", "low iou", "only a", "only b"])
    rows = report["disagreements"]
    if rows:
        print()
        shown = rows[: args.limit or None]
        table([[r["image"], r["file_name"], r["kind"], r["a"], r["a_class"], r["b"], r["b_class"],
                "" if r["iou"] is None else f"{r['iou']:.2f}",
                "" if r["b_score"] is None else score_text(r["b_score"])] for r in shown],
              ["image", "file", "disagreement", "a", "a class", "b", "b class", "iou", "b score"])
        if len(shown) < len(rows):
            print(f"... and {len(rows) - len(shown)} more (--limit 0 for all, --json for scripts)")
    return 0


def _decision(d: dict) -> dict:
    """One competing decision, as `ls --conflicts` shows it."""
    return {"event": d["hash"], "current": d["current"], "author": d["author"], "login": d["login"],
            "host": d["host"], "ts": d["ts"], "action": d["action"], "old": d["old"], "new": d["new"],
            "reason": d["reason"], "comment": d["comment"], "base": d["base"], "blind": d["blind"]}


def _decide(args, fn) -> int:
    from .review import ReviewSession

    store = open_store(args)
    events = []
    failure = None
    try:
        for ann_id in args.ids:  # an unknown id refuses the whole command before anything is written
            store.annotation(ann_id)
        session = ReviewSession(store)
        try:
            for ann_id in args.ids:
                ev = fn(session, ann_id)
                if ev is not None:
                    events.append(ev)
        except LabelreviewError as e:  # e.g. a conflict half-way: what was decided stays, and is said
            failure = e
        if events:
            try:
                session.finish()
            except LabelreviewError as e:  # git refused (a lock, a signature): the decisions stand
                failure = failure or e
    finally:
        store.close()
    if args.json:
        emit_json(events)
    else:
        for ev in events:
            print(f"{ev['action']} {ev['annotation']}: {ev['old']['category']} {ev['old']['status']} -> "
                  f"{ev['new']['category']} {ev['new']['status']}")
        if not events and failure is None:
            print("nothing to change")
    if failure is not None:
        raise failure
    return 0


@command("accept")
def cmd_accept(args) -> int:
    return _decide(args, lambda s, i: s.accept(i, reason=args.reason, comment=args.comment))


@command("relabel")
def cmd_relabel(args) -> int:
    args.ids = [args.id]
    return _decide(args, lambda s, i: s.relabel(i, args.category, reason=args.reason, comment=args.comment))


@command("flag")
def cmd_flag(args) -> int:
    return _decide(args, lambda s, i: s.flag(i, args.reason, comment=args.comment))


@command("reject")
def cmd_reject(args) -> int:
    return _decide(args, lambda s, i: s.reject(i, reason=args.reason, comment=args.comment))


@command("undo")
def cmd_undo(args) -> int:
    from .review import ReviewSession

    store = open_store(args)
    try:
        session = ReviewSession(store)
        ev = session.undo()
        session.finish()
    finally:
        store.close()
    if args.json:
        emit_json(ev)
    elif ev is None:
        print("nothing to undo")
    else:
        print(f"undid {ev['reason'].split()[-1]} of annotation {ev['annotation']}: now "
              f"{ev['new']['category']} {ev['new']['status']}")
    return 0


@command("commit")
def cmd_commit(args) -> int:
    store = open_store(args)
    try:
        sha = store.checkpoint(args.message)
    finally:
        store.close()
    if args.json:
        emit_json({"commit": sha})
    else:
        print(f"committed {sha}" if sha else "nothing to commit")
    return 0


def log_action(value: str | None) -> str | None:
    """``log --action``: one of the actions events record. Any other word matched no event, and
    the log was empty with nothing said (`--action relabeled`, the status, looked like no relabel)."""
    from .model import ACTIONS, STATUS_AFTER

    if value is None:
        return None
    action = value.strip().lower()
    if action in ACTIONS:
        return action
    meant = next((a for a, st in STATUS_AFTER.items() if st == action), None)
    hint = f" (did you mean {meant}?)" if meant else ""
    raise LabelreviewError(f"--action takes {', '.join(ACTIONS)}; not {value!r}{hint}")


@command("log")
def cmd_log(args) -> int:
    action = log_action(args.action)
    store = open_store(args)
    try:
        # An id the store does not have is said, as blame says it: an empty log read as "never changed".
        ann = store.annotation(args.annotation) if args.annotation is not None else None
        if args.image_id is not None:
            store.image(args.image_id)
            if ann is not None and ann.image_id != args.image_id:  # (as blame refuses: an empty log lied)
                raise LabelreviewError(f"annotation {ann.id} is on image {ann.image_id}, not on image "
                                       f"{args.image_id}; give one of --annotation and --image")
        events = store.events(annotation=args.annotation, image=args.image_id, author=args.author_filter,
                              action=action, since=utc_since(args.since), limit=args.limit,
                              newest_first=True)
    finally:
        store.close()
    if args.json:
        emit_json(events)
        return 0
    table([[e["ts"][:19].replace("T", " "), e["author"], e["host"] or "", e["action"], e["annotation"],
            f"{e['old']['category']}/{e['old']['status']} -> {e['new']['category']}/{e['new']['status']}",
            why_line(e["reason"], e["comment"]), e["commit"][:10] if e["commit"] else "(uncommitted)"] for e in events],
          ["time (UTC)", "author", "host", "action", "ann", "change", "why", "commit"])
    return 0


@command("blame")
def cmd_blame(args) -> int:
    from .store.history import blame

    store = open_store(args)
    try:
        rows = blame(store, annotation=args.id, image=args.image_id)
    finally:
        store.close()
    if args.json:
        emit_json(rows)
        return 0
    table([[r["annotation"], r["category"], r["status"], r["author"] or "(proposal)", r["host"] or "",
            (r["ts"] or "")[:19].replace("T", " "),
            f"{r['old']['category']}/{r['old']['status']}" if r["old"] else f"proposed {r['proposed_category']}",
            why_line(r["reason"], r["comment"]), r["commit"][:10] if r["commit"] else ("(uncommitted)" if r["event"] else "")]
           for r in rows],
          ["ann", "class", "status", "by", "host", "when (UTC)", "from", "why", "commit"])
    return 0


@command("diff")
def cmd_diff(args) -> int:
    from .store.history import diff

    store = open_store(args)
    try:
        result = diff(store, args.rev_a, args.rev_b)
    finally:
        store.close()
    if args.json:
        emit_json(result)
        return 0
    print(f"{args.rev_a} ({result['from'][:10]}) -> {args.rev_b} ({result['to'][:10]}): "
          f"{result['events']} events, {len(result['changes'])} labels changed, {len(result['imports'])} imports")
    for imp in result["imports"]:
        n = result["imported"][imp]
        print(f"  + import {imp}" + (f" (source {n['source']}): {n['annotations']} labels on {n['images']} images"
                                     if n["annotations"] is not None else ""))
    if result["classes"]:
        print("per class, labels a release holds (accepted or relabeled):")
        table([[f"  {c['class']}", c["added"], c["removed"], c["relabeled_in"], c["relabeled_out"]]
               for c in result["classes"]], ["  class", "added", "removed", "relabeled in", "relabeled out"])
        for m in result["relabeled"]:
            print(f"  relabeled {m['from']} -> {m['to']}: {m['count']}")
    if result["changes"] and not args.summary:
        print("labels changed:")
    for c in ([] if args.summary else result["changes"]):
        waits = ("  (waiting for adjudication)" if c["conflict"]
                 else "  (conflict settled)" if c["conflict_before"] else "")
        was = (f"{c['old']['category']}/{c['old']['status']}" if c["old"] is not None
               else f"new, proposed {c.get('proposed')}")  # imported after A
        print(f"  {c['annotation']:>6}  {was} -> "
              f"{c['new']['category']}/{c['new']['status']}  by {', '.join(a.split(' <')[0] for a in c['authors'])}"
              f"{waits}")
    return 0


@command("verify")
def cmd_verify(args) -> int:
    from .store.verify import verify

    # Recovery (replaying an unindexed tail, dropping a torn last line) is what any command does on
    # start; if the logs are too damaged for it, verify still runs and reports each damaged place.
    store = open_store(args, recover=False, damaged_ok=True)
    try:
        try:
            store.recover()
        except LabelreviewError:
            pass
        report = verify(store, images=not args.no_images)
    finally:
        store.close()
    if args.json:
        emit_json(report.as_dict())
    else:
        # One damage can be a problem per label (an import missing from one side of the index, a
        # file of an import edited): the first 20 of a kind in one table or file, then a count.
        shown: dict[tuple[str, str], int] = {}
        for p in report.problems:
            if p.kind == "index":
                key = (p.kind, p.where.split(":")[1] if p.where.startswith("index:") else "events")
            else:
                key = (p.kind, p.where.split(":")[0])
            shown[key] = shown.get(key, 0) + 1
            if shown[key] <= VERIFY_SHOWN:
                print(f"{p.where}: {p.kind}: {p.message}")
        for (kind, place), n in shown.items():
            if n > VERIFY_SHOWN:
                what = f"with {place}" if kind == "index" else f"in {place}"
                print(f"... and {n - VERIFY_SHOWN} more '{kind}:' problems {what} (`verify --json` lists all)")
        if any(p.kind == "index" for p in report.problems):
            # The index is derived: differing from the files (a stale, foreign or damaged copy) is
            # no harm to the record, and a rebuild ends it. The files' own problems stand apart.
            which = "these problems are all" if all(p.kind == "index" for p in report.problems) else \
                "the 'index:' problems are"
            print(f"{which} in the index, which is built from the files: `labelreview reindex` rebuilds it")
        state = "OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)"
        print(f"verify {state}: {counted(report.events, 'event')} from {counted(report.writers, 'writer')}, "
              f"{report.uncommitted} not yet committed, {counted(report.images_checked, 'image hash')} checked")
    return 0 if report.ok else 1


#: The problems of one kind in one table or file that ``verify`` prints before it counts the rest.
VERIFY_SHOWN = 20


@command("reindex")
def cmd_reindex(args) -> int:
    from .model import DamagedFileError

    try:
        store = open_store(args)
    except DamagedFileError as e:
        # The index and a log disagree on how far it was read (one of them edited outside
        # labelreview): verify sends the user here when it is the index, and a rebuild from the files
        # is the way out. When it is the log, the rebuild takes it as it is: verify still says so.
        note(str(e))
        note("reindex goes on: the index is rebuilt from the files (`labelreview verify` checks them)")
        store = open_store(args, recover=False)
    try:
        counts = store.reindex()
    finally:
        store.close()
    if args.json:
        emit_json(counts)
    else:
        print(f"index rebuilt: {counts['annotations']} annotations, {counts['images']} images, "
              f"{counts['events']} events")
    return 0


# ---------------------------------------------------------------------- teams


@command("resolve")
def cmd_resolve(args) -> int:
    from .review import ReviewSession

    if not args.pick and not (args.category or args.status_to):
        raise LabelreviewError("resolve needs --pick EVENT, or --category and/or --status")
    store = open_store(args)
    try:
        session = ReviewSession(store)
        competing = session.conflicts(args.id)
        ev = session.resolve(args.id, pick=args.pick, category=args.category, status=args.status_to,
                             reason=args.reason, comment=args.comment)
        session.finish()
    finally:
        store.close()
    if args.json:
        emit_json(ev)
    else:
        picked = next((d for d in competing if args.pick and d["hash"].startswith(args.pick.lower())), None)
        how = f"picked {picked['author'].split(' <')[0]}'s {picked['action']}" if picked else "decided anew"
        print(f"resolved {args.id} ({how}): now {ev['new']['category']}/{ev['new']['status']}; "
              f"{len(ev['resolves'])} conflicting decision(s) closed")
    return 0


@command("remote")
def cmd_remote(args) -> int:
    from .store.sync import add_remote, remotes

    store = open_store(args)
    try:
        if args.action == "add":
            if not args.name or not args.url:
                raise LabelreviewError("usage: labelreview remote add NAME URL")
            store.refuse_if_read_only("remote add")
            add_remote(store, args.name, args.url)
        names = remotes(store)
        urls = {n: store.repo.git.remote("get-url", n) for n in names}
    finally:
        store.close()
    if args.json:
        emit_json(urls)
    elif args.action == "add":
        print(f"added remote {args.name} {args.url}; `labelreview sync {args.name}` sends and fetches decisions")
    else:
        for n, u in urls.items():
            print(f"{n}\t{u}")
    return 0


@command("sync")
def cmd_sync(args) -> int:
    from .store.sync import sync

    store = open_store(args)
    try:
        store.refuse_if_read_only("sync")
        result = sync(store, args.remote, push=not args.no_push)
    finally:
        store.close()
    if args.json:
        emit_json(result)
        return 0
    print(f"synced with {result['remote']} ({result['branch']}): {result['merge']}, "
          f"{result['events_received']} new event(s)"
          + ((", pushed" if result["sent"] else f", {result['remote']} was up to date") if result["pushed"]
             else ", not pushed"))
    if result["new_conflicts"]:
        print(f"{len(result['new_conflicts'])} new conflict(s) for adjudication: "
              f"{', '.join(map(str, result['new_conflicts'][:20]))}"
              + (" ..." if len(result["new_conflicts"]) > 20 else ""))
    if result["conflicts"]:
        print(f"{result['conflicts']} annotation(s) wait for adjudication: `labelreview ls --conflicts` or "
              "`labelreview review --queue conflicts`")
    return 0


@command("clone")
def cmd_clone(args) -> int:
    from .store import Store
    from .store.sync import clone

    utf8_store_path(Path(args.dir).absolute())
    dest = clone(args.url, args.dir, author=args.author)
    with Store.open(dest, author=args.author) as store:
        counts = store.counts()
    if args.json:
        emit_json({"store": str(dest), **counts})
    else:
        print(f"cloned {args.url} into {dest}: {counts['total']} annotations, {counts['events']} events, "
              f"{counts['conflicts']} open conflicts")
    return 0


@command("release")
def cmd_release(args) -> int:
    from .review.roles import require
    from .store.history import release

    store = open_store(args)
    try:
        require(store, "export")
        store.refuse_if_read_only("release")
        result = release(store, args.name, args.message)
    finally:
        store.close()
    if args.json:
        emit_json(result)
    else:
        print(f"released {result['name']} at {result['commit'][:10]}: {result['exported']} labels "
              f"({result['pending']} pending, {result['conflicts']} open conflicts)")
        print(f"reproduce it any time: labelreview export FORMAT OUT --rev {result['name']}")
    return 0


@command("agreement")
def cmd_agreement(args) -> int:
    from .review.agreement import agreement

    store = open_store(args)
    try:
        report = agreement(store)
    finally:
        store.close()
    if args.json:
        emit_json(report)
        return 0
    if not report["pairs"]:
        print("no items reviewed by two reviewers yet")
        return 0
    for p in report["pairs"]:
        kappa = "—" if p["kappa"] is None else f"{p['kappa']:.3f}"
        print(f"{p['a']}  vs  {p['b']}: {p['items']} items both reviewed, class kappa {kappa}, "
              f"class agreement {p['class_agreement']:.1%}, accept/reject agreement "
              + ("—" if p["accept_reject_agreement"] is None else f"{p['accept_reject_agreement']:.1%}"
                 f" on {p['accept_reject_items']}"))
        if p["classes"]:
            table([[f"  {c['class']}", c["items"], "—" if c["kappa"] is None else f"{c['kappa']:.3f}",
                    f"{c['agreement']:.1%}"] for c in p["classes"]],
                  ["  class", "items", "kappa", "agree"])
    return 0


# ---------------------------------------------------------------------- review screen


def demo_store(reset: bool = False) -> Path:
    """The demo store under ``store/demo``, made from ``sample_data/`` the first time."""
    from .formats import coco
    from .store import Store

    here = Path.cwd()
    sample = here / "sample_data"
    if not (sample / "proposals.json").is_file():
        raise LabelreviewError("no sample_data/proposals.json here: run `labelreview` from the repository "
                               "root, or `labelreview review --store DIR` on a store of yours")
    root = here / "store" / "demo"
    if reset and root.exists():
        import shutil

        shutil.rmtree(root)
    if not (root / "labelreview.toml").exists():
        Store.init(root, name="labelreview demo")
        with Store.open(root) as store:
            batch = coco.read(sample / "proposals.json")
            store.ingest(batch, source="model-v1", image_root=sample / "images")
            store.checkpoint()
    return root


def terminal_missing() -> str | None:
    """What is not a terminal of the two the review screen needs (it draws on stdout and reads keys
    from stdin), or None. (`labelreview review | less`, or one run from a script, drew escape codes
    into the pipe and waited for keys no one could type, until killed.)"""
    missing = [name for name, stream in (("input", sys.__stdin__), ("output", sys.__stdout__))
               if stream is None or not stream.isatty()]
    return " and ".join(missing) or None


@command("review")
def cmd_review(args) -> int:
    from .store import Store

    root = demo_store(getattr(args, "reset", False)) if args.demo else store_root(args)
    store = Store.open(root, author=args.author, notify=note)
    if store.read_only is not None:  # (nothing to review on a store no decision can be recorded in)
        store.close()
        raise LabelreviewError(f"{store.root}: this store is read-only for you ({store.read_only}): the review "
                               "records decisions, so it cannot open here. Reading works: status, ls, log, "
                               "blame, diff, verify, export")
    try:
        from .review.queue import check_names

        flt = parse_filter(args)
        check_names(store, flt)
        from .review.roles import allowed, require

        # Refused at the first key, a login that may not review still held images (leases) the
        # reviewers then skipped: said before the screen opens. An adjudicator may open the conflicts.
        if not (args.queue == "conflicts" and allowed(store, "adjudicate")):
            require(store, "review")
        missing = terminal_missing()  # (after what is wrong with the store or the filter: that is said first)
        if missing:
            raise LabelreviewError(f"the review screen needs a terminal, and its {missing} is not one (piped or "
                                   "redirected): run it in a terminal; scripts decide with accept, relabel, flag "
                                   "and reject")
    except LabelreviewError:
        store.close()
        raise
    if args.queue == "conflicts":
        flt.conflicts = True
    elif args.queue == "pending" and not flt.statuses:
        flt.statuses = ["pending"]
    from .review import Queue, ReviewSession

    from .review.queue import last_queue, remember_queue

    leases = "off" if args.no_leases else ("take" if args.take_leased else "on")
    # (None: not given. `--order file` names the whole store in file order, as a filter names a
    # queue; it opened the last queue instead, which `--order file` could then never leave.)
    order, seed, resumed = args.order or "file", args.seed or 0, None
    if flt == AnnotationFilter() and args.order is None and args.seed is None:
        # No queue named: the one this reviewer last worked in (a filter chosen with / included),
        # at the place they left it.
        last = last_queue(store)
        if last is not None:
            resumed, flt, order, seed = last
            if resumed == "order:file":
                resumed = None  # (the default queue: nothing to say)
    queue = Queue(store, flt, order=order, seed=seed, leases=leases, lazy=True)
    remember_queue(queue)
    queue.resumed_query = resumed
    session = ReviewSession(store, auto_checkpoint=False)
    # The UI is imported only here. Its first picture is started before the rest of it: the
    # decode and compose run while Textual's modules load (tui/early.py).
    from .tui import early

    first = early.start(store, queue, session)
    # Asked once, before Textual owns the terminal, and only when asked for (never guessed).
    from .tui import termgraphics

    graphics = termgraphics.probe(args.graphics)
    from .tui.app import run

    return run(store, queue, graphics=graphics, session=session, early=first)


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help="store directory (default: found upward from here, or $LABELREVIEW_STORE)")
    common.add_argument("--author", help="reviewer name (default: $LABELREVIEW_AUTHOR, git user, OS login)")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    p = argparse.ArgumentParser(prog="labelreview", description="Review proposed ML labels in the terminal; "
                                "every change is recorded and committed to git.",
                                epilog="`labelreview COMMAND --help` says more of each. --store, --author and --json "
                                "go after the command, or before it.")
    # Also before the command, as git takes -C (`labelreview --store S status` was refused as "invalid
    # choice: 'S'"); kept apart so that the command's own defaults do not overwrite them.
    for flag, value in (("--store", "STORE"), ("--author", "AUTHOR")):
        p.add_argument(flag, dest=f"top_{flag[2:]}", metavar=value, help=argparse.SUPPRESS)
    p.add_argument("--json", dest="top_json", action="store_true", help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    add_parser = sub.add_parser

    def described(name, **kwargs):  # `labelreview status --help` says what the command does, as the list does
        kwargs.setdefault("description", kwargs.get("help"))
        return add_parser(name, **kwargs)

    sub.add_parser = described

    s = sub.add_parser("init", parents=[common], help="create a store")
    s.add_argument("path", help="folder to make the store in (new, or empty)")
    s.add_argument("--name", help="the store's name in labelreview.toml (default: the folder's name)")

    from .formats.registry import READERS, WRITERS  # (names only: no format module is imported)

    s = sub.add_parser("import", parents=[common], help="import proposals (coco, yolo, voc, csv, ..., auto)")
    s.add_argument("format", help=f"{', '.join(READERS)}, or auto to detect (the default: `import PATH`)")
    s.add_argument("path", nargs="?", help="the file or folder to import")
    s.add_argument("--images", help="folder the file's image paths are relative to")
    s.add_argument("--source", help="name for this set of proposals (default: the file's name without its extension)")
    s.add_argument("--gt", help="COCO results: the ground-truth file that names the images")
    s.add_argument("--no-image-check", action="store_true", help="do not open and hash the images")

    s = sub.add_parser("export", parents=[common], help="export reviewed labels")
    s.add_argument("format", help=", ".join(WRITERS))
    s.add_argument("out", nargs="?", help="the file (coco, csv, csv-boxes) or folder (yolo, voc, imagefolder, "
                   "semantic) to write")
    s.add_argument("--include", action="append",
                   help="also export flagged, pending and/or conflicted (labels waiting for adjudication)")
    s.add_argument("--rev", help="export the store as it was at this git revision")

    sub.add_parser("status", parents=[common], help="counts per status")

    s = sub.add_parser("ls", parents=[common], help="list annotations")
    add_filter_args(s)
    s.add_argument("--limit", type=a_count, help="list at most N (0: all)")

    for name, helptext in (("accept", "accept annotations"), ("reject", "reject annotations"),
                           ("flag", "flag annotations for a second look")):
        s = sub.add_parser(name, parents=[common], help=helptext)
        s.add_argument("ids", nargs="+", type=an_id, help="annotation id(s), as `ls` lists them")
        s.add_argument("--reason", required=(name == "flag"),
                       help={"flag": "one of labelreview.toml's flag_reasons (required)",
                             "reject": "one of labelreview.toml's reject_reasons"}.get(name, "why, in a few words"))
        s.add_argument("--comment", help="free text recorded with the decision")
    s = sub.add_parser("relabel", parents=[common], help="change an annotation's class")
    s.add_argument("id", type=an_id, help="annotation id, as `ls` lists it")
    s.add_argument("category", help="the new class (one the store knows)")
    s.add_argument("--reason", help="why, in a few words")
    s.add_argument("--comment", help="free text recorded with the decision")
    sub.add_parser("undo", parents=[common], help="undo your latest decision (recorded as a new event)")

    s = sub.add_parser("commit", parents=[common], help="checkpoint the history to git now")
    s.add_argument("-m", "--message", help="commit message (default: one that counts what happened)")

    s = sub.add_parser("log", parents=[common], help="history of changes")
    s.add_argument("--annotation", type=an_id, help="only this annotation's events")
    s.add_argument("--image", dest="image_id", type=an_id, help="only the events on this image's annotations")
    s.add_argument("--by", dest="author_filter", help="author or OS login")
    s.add_argument("--action", help="accept, relabel, flag, reject, undo or resolve")
    s.add_argument("--since", help="UTC time or date, e.g. 2026-11-28")
    s.add_argument("--limit", type=a_count, help="the newest N events (0: all)")

    s = sub.add_parser("blame", parents=[common], help="who last changed an annotation, or each of an image's")
    s.add_argument("id", type=an_id, nargs="?", help="annotation id")
    s.add_argument("--image", dest="image_id", type=an_id, help="each annotation of this image")

    s = sub.add_parser("compare", parents=[common], help="match two sources' boxes per image; list disagreements")
    s.add_argument("source_a", help="an import source name, as `ls` shows it")
    s.add_argument("source_b", help="another one")
    s.add_argument("--limit", type=a_count, default=50, help="disagreements shown in the table (0: all)")

    s = sub.add_parser("diff", parents=[common], help="label changes between two git revisions")
    s.add_argument("rev_a", help="the older git revision: a release (v1.0), a commit, HEAD~3")
    s.add_argument("rev_b", nargs="?", default="HEAD", help="the newer one (default: HEAD)")
    s.add_argument("--summary", action="store_true", help="per class only, not each label")

    s = sub.add_parser("verify", parents=[common], help="prove the history is intact")
    s.add_argument("--no-images", action="store_true", help="skip re-hashing the image files")

    sub.add_parser("reindex", parents=[common], help="rebuild the index from the committed files")

    s = sub.add_parser("resolve", parents=[common], help="adjudicate a conflict: pick a decision or decide anew")
    s.add_argument("id", type=an_id, help="annotation id (`ls --conflicts` lists them)")
    s.add_argument("--pick", help="event hash (or its first 4+ hex digits) of the decision to keep")
    s.add_argument("--category", "--class", help="decide anew: the class")
    s.add_argument("--status", dest="status_to", help="decide anew: accepted, relabeled, flagged, rejected, pending")
    s.add_argument("--reason", help="why, recorded on the resolve event")
    s.add_argument("--comment", help="free text recorded with the decision")

    s = sub.add_parser("remote", parents=[common], help="list remotes, or `remote add NAME URL`")
    s.add_argument("action", nargs="?", choices=["add", "list"], default="list", help="add or list (default: list)")
    s.add_argument("name", nargs="?", help="with add: the remote's name, e.g. origin")
    s.add_argument("url", nargs="?", help="a bare repository path, file:// or ssh URL, or user@host:path")

    s = sub.add_parser("sync", parents=[common], help="checkpoint, fetch, merge, replay, push")
    s.add_argument("remote", nargs="?", help="which remote (default: the only one, or origin)")
    s.add_argument("--no-push", action="store_true", help="fetch and merge only")

    s = sub.add_parser("clone", parents=[common], help="copy a store from a remote and build its index")
    s.add_argument("url", help="the remote: a bare repository path, file:// or ssh URL, or user@host:path")
    s.add_argument("dir", help="new folder for the copy")

    s = sub.add_parser("release", parents=[common], help="tag the store as a dataset release (annotated git tag)")
    s.add_argument("name", help="e.g. v1.0")
    s.add_argument("-m", "--message", help="the release's message (the tag's annotation)")

    sub.add_parser("agreement", parents=[common], help="inter-reviewer agreement: Cohen's kappa per pair and class")

    s = sub.add_parser("review", parents=[common], help="open the review screen")
    add_filter_args(s, order_default="the queue you last worked in, else file")
    s.add_argument("--demo", action="store_true", help="review the bundled sample data")
    s.add_argument("--reset", action="store_true", help="with --demo: start the demo store afresh")
    s.add_argument("--graphics", choices=["halfblock", "sixel", "kitty"], default="halfblock",
                   help="sixel or kitty: also a sharp inspect view (key i) in a terminal that shows them "
                        "(needs the graphics extra: pip install 'labelreview[graphics]')")
    s.add_argument("--queue", choices=["all", "pending", "conflicts"], default="all",
                   help="conflicts: the adjudication queue (competing decisions side by side)")
    s.add_argument("--take-leased", action="store_true", help="also show images another reviewer is on")
    s.add_argument("--no-leases", action="store_true", help="neither reserve images nor skip others'")
    s.set_defaults(order=None, seed=None)  # no order named: the last queue (see cmd_review)
    return p


#: Arguments that are only a path this process opens, where any bytes a file name may hold do:
#: everything else is recorded (in events, the config, the index) or compared with text that is.
BYTES_OK = {("export", "out")}


def refuse_undecodable(args: argparse.Namespace) -> None:
    """A byte the locale cannot decode reaches Python as a lone surrogate (``\\udcff``): a comment
    or a class name holding one ended in a traceback when it was hashed or written (a half-made
    store after ``init``). Refused here, before anything is opened."""
    for name, value in vars(args).items():
        if (args.command, name) in BYTES_OK:
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and not v.isascii():
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    shown = v.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
                    raise LabelreviewError(f"'{shown}' is not UTF-8 text (bytes of another encoding: check the "
                                           "terminal's or the script's encoding); labelreview records text "
                                           "in UTF-8") from None


def _misspelt_command(argv: list[str]) -> tuple[str, list[str]] | None:
    """The command word, when it is no command but close to one or more (``acept``): argparse alone
    lists all two dozen commands and leaves the reader to find the one they meant."""
    import difflib

    i = 0
    while i < len(argv):
        word = argv[i]
        if word in ("--store", "--author"):
            i += 2
        elif word.startswith("-"):
            i += 1
        else:
            close = [] if word in COMMANDS else difflib.get_close_matches(word, list(COMMANDS), n=2)
            return (word, close) if close else None
    return None


def _one_positional(args) -> str | None:
    """``import PATH`` is ``import auto PATH``; ``import FORMAT`` and ``export`` with one word lack
    something: what to say (None: nothing is missing)."""
    from .formats.registry import READERS, WRITERS

    if args.command == "import" and args.path is None:
        if args.format in (*READERS, "auto"):
            return f"give the file or folder to import after the format (`labelreview import {args.format} PATH`)"
        args.format, args.path = "auto", args.format
    elif args.command == "export" and args.out is None:
        if args.format in WRITERS:
            return f"give the file or folder to write after the format (`labelreview export {args.format} OUT`)"
        return (f"name the format before {args.format!r} (`labelreview export FORMAT {args.format}`; "
                f"formats: {', '.join(WRITERS)})")
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    tolerant_output()
    with escaping_output() as plain_output:
        return _main(argv, plain_output)


def _main(argv: list[str], plain_output: Callable[[], None]) -> int:
    parser = build_parser()
    if not argv:
        argv = ["review", "--demo"]
    typo = _misspelt_command(argv)
    if typo:
        print(f"labelreview: error: unknown command {typo[0]!r}; did you mean {' or '.join(typo[1])}? "
              "(`labelreview --help` lists them)", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    for name in ("store", "author", "json"):  # (given before the command; after it, the command's own wins)
        top = getattr(args, f"top_{name}", None)
        if top and not getattr(args, name, None):
            setattr(args, name, top)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "review":
        plain_output()
    missing = _one_positional(args)
    if missing:
        print(f"labelreview {args.command}: error: {missing}", file=sys.stderr)
        return 2
    try:
        refuse_undecodable(args)
        return COMMANDS[args.command](args)
    except LabelreviewError as e:
        print(f"labelreview: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
