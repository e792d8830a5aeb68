"""The project config, ``labelreview.toml``: classes, reasons, image roots, roles, keys."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..model import LabelreviewError

CONFIG_NAME = "labelreview.toml"

TEMPLATE = '''# labelreview project config. Committed with the store; edit it and commit.

[project]
name = {name}
# Classes offered by the relabel picker, besides those the imports bring.
classes = []
# Reasons offered when flagging (keys 1-9 in the review screen pick them).
flag_reasons = ["loose-box", "wrong-class", "ambiguous", "occluded", "truncated", "other"]
# Reasons offered when rejecting.
reject_reasons = ["false-positive", "duplicate", "not-an-object", "other"]
# A git checkpoint is made every N decisions (and always at the end of a command or review).
checkpoint_every = 50

[image_roots]
# Where an import's images live now, if they moved since the import:
# "<import-id>" = "/new/path"

[roles]
# OS logins allowed each role; an empty list means everybody. Admins may do everything, and only they
# may change this file (a checkpoint by anyone else leaves it out of the commit).
reviewers = []
adjudicators = []
admins = []
# importers = []   who may import; when absent, the admins (everybody if there are none)
# exporters = []   who may export and tag releases; when absent, the admins

[review]
# Blind double review: each item goes to two reviewers who do not see each other's decision;
# the same decision stands, different decisions go to adjudication.
double = false
# How long an image stays reserved for the reviewer looking at it (renewed on each decision).
lease_seconds = 120

[keys]
# Remap review-screen keys by binding id, e.g.  accept = "y"   next_image = "n,right"
'''


@dataclass(slots=True)
class Config:
    name: str = "labelreview"
    classes: list[str] = field(default_factory=list)
    flag_reasons: list[str] = field(default_factory=list)
    reject_reasons: list[str] = field(default_factory=list)
    checkpoint_every: int = 50
    image_roots: dict[str, str] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    #: Blind double review ([review] double).
    double_review: bool = False
    #: Lease on the image a reviewer is looking at ([review] lease_seconds).
    lease_seconds: float = 120.0

    def who_may(self, role: str) -> list[str] | None:
        """The OS logins allowed ``role``, or None when everybody is."""
        lists = {"review": "reviewers", "adjudicate": "adjudicators", "import": "importers",
                 "export": "exporters"}
        admins = sorted(set(self.roles.get("admins") or []))
        if role in ("admin", "config"):
            return admins or None
        if role not in lists:
            raise ValueError(f"unknown role {role!r}")
        listed = self.roles.get(lists[role])
        if listed is None and role in ("import", "export"):  # before these lists existed: admins
            return admins or None
        if not listed:
            return None
        return sorted(set(listed) | set(admins))

    def allows(self, role: str, login: str) -> bool:
        who = self.who_may(role)
        return who is None or login in who


#: The settings each table of labelreview.toml may hold ([image_roots] and [keys] hold any name: an
#: import id, a binding id, which the store and the review screen check).
KNOWN = {
    "project": ("name", "classes", "flag_reasons", "reject_reasons", "checkpoint_every"),
    "image_roots": None,
    "roles": ("reviewers", "adjudicators", "admins", "importers", "exporters"),
    "review": ("double", "blind_double_review", "lease_seconds"),
    "keys": None,
}


def load_config(store_root: Path) -> Config:
    path = store_root / CONFIG_NAME
    try:
        # utf-8-sig: a byte order mark (Windows Notepad writes one) is no setting ("Invalid
        # statement (at line 1, column 1)" said nothing of it).
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise LabelreviewError(f"{path}: not found; is this a labelreview store?") from None
    except tomllib.TOMLDecodeError as e:
        raise LabelreviewError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:  # TOML is UTF-8 text
        line = e.object[:e.start].count(b"\n") + 1
        raise LabelreviewError(f"{path}: invalid TOML: not UTF-8 text (byte 0x{e.object[e.start]:02x} on line "
                               f"{line}); save it as UTF-8") from None
    except OSError as e:  # a folder in its place, no permission
        raise LabelreviewError(f"{path}: cannot be read ({e.strerror or e})") from None

    _refuse_unknown(path, data)

    def table(key: str) -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise LabelreviewError(f"{path}: [{key}] must be a table of settings")
        return value

    def strings(where: str, value) -> list[str]:
        # A list of strings; reviewers = "root" used to be read as the letters r, o, o, t.
        if not isinstance(value, list) or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool)
                                                  for x in value):
            key = where.split(".")[-1]
            example = {"classes": '["cat", "dog"]', "flag_reasons": '["loose-box", "other"]',
                       "reject_reasons": '["false-positive", "other"]'}.get(key, '["ada", "grace"]')
            raise LabelreviewError(f"{path}: {where} must be a list of names, e.g. {key} = {example}")
        names = [str(x) for x in value]
        for i, name in enumerate(names, 1):
            # (classes = ["", "cat"] let `relabel 1 ""` relabel to the class it had, and exported a
            # class with no name)
            if not name.strip():
                raise LabelreviewError(f"{path}: {where} has an empty name (item {i} of the list); remove it")
        return names

    def text(where: str, value) -> str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise LabelreviewError(f"{path}: {where} must be text in quotes, e.g. {where.split('.')[-1]} = "
                                   '"..."')
        return str(value)

    def keys(value) -> dict[str, str]:
        out = {}
        for bid, keys_ in value.items():
            # next_image = ["n", "right"] is n,right (it was read as the key "['n', 'right']")
            if isinstance(keys_, list) and all(isinstance(k, str) for k in keys_):
                keys_ = ",".join(keys_)
            elif isinstance(keys_, int) and not isinstance(keys_, bool) and 0 <= keys_ <= 9:
                keys_ = str(keys_)  # (accept = 1: the digit)
            if not isinstance(keys_, str):  # ("" leaves the action without a key: A = "" for no accept-all)
                raise LabelreviewError(f"{path}: keys.{bid} must name a key, or several in a comma list, e.g. "
                                       f'{bid} = "y" or {bid} = "n,right"')
            out[str(bid)] = keys_
        return out

    project = table("project")
    every = project.get("checkpoint_every", 50)
    if not isinstance(every, int) or isinstance(every, bool):
        raise LabelreviewError(f"{path}: project.checkpoint_every must be a whole number of decisions")
    cfg = Config(
        name=text("project.name", project.get("name", store_root.name)),
        classes=strings("project.classes", project.get("classes", [])),
        flag_reasons=strings("project.flag_reasons", project.get("flag_reasons", [])),
        reject_reasons=strings("project.reject_reasons", project.get("reject_reasons", [])),
        checkpoint_every=every,
        image_roots={str(k): text(f"image_roots.{k}", v) for k, v in table("image_roots").items()},
        roles={str(k): strings(f"roles.{k}", v) for k, v in table("roles").items()},
        keys=keys(table("keys")),
    )
    review = table("review")
    double = review.get("double", review.get("blind_double_review", False))
    if not isinstance(double, bool):
        raise LabelreviewError(f"{path}: review.double must be true or false")
    cfg.double_review = double
    lease = review.get("lease_seconds", 120)
    if isinstance(lease, str):  # (lease_seconds = "120" was read as 120)
        try:
            lease = float(lease)
        except ValueError:
            pass
    # (true was a lease of 1 s; nan a lease that never holds, inf one never given back)
    if not isinstance(lease, (int, float)) or isinstance(lease, bool) or not math.isfinite(lease):
        raise LabelreviewError(f"{path}: review.lease_seconds must be a number of seconds, e.g. lease_seconds = 120")
    cfg.lease_seconds = float(lease)
    if cfg.lease_seconds <= 0:
        raise LabelreviewError(f"{path}: review.lease_seconds must be more than 0")
    if cfg.checkpoint_every < 1:
        raise LabelreviewError(f"{path}: project.checkpoint_every must be at least 1")
    return cfg


#: (Refusing what it does not know cuts both ways: a setting a newer labelreview wrote, arrived by a
#: sync, stops an older one. Say so.)
NEWER = " (if a newer labelreview wrote it, upgrade this one)"


def _refuse_unknown(path: Path, data: dict) -> None:
    """A table or setting labelreview does not know is a typo until shown otherwise: [review]
    dubble = true left double review off, [roles] reviewer = [...] let everybody review, a
    classes = [...] above [project] offered no class, each without a word."""
    import difflib

    def hint(name: str, known) -> str:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        return f"did you mean {close[0]!r}? " if close else ""

    for name, value in data.items():
        if name not in KNOWN:
            home = next((t for t, keys in KNOWN.items() if keys and name in keys), None)
            if home is not None:
                raise LabelreviewError(f"{path}: {name} must be under [{home}] (it is above every table); "
                                       f"move it there")
            what = f"table [{name}]" if isinstance(value, dict) else f"setting {name} (above every table)"
            raise LabelreviewError(f"{path}: unknown {what}; {hint(name, KNOWN)}the tables are "
                                   f"{', '.join(f'[{t}]' for t in KNOWN)}{NEWER}")
        known = KNOWN[name]
        if known is None or not isinstance(value, dict):
            continue
        for key in value:
            if key not in known:
                shown = [k for k in known if k != "blind_double_review"]
                raise LabelreviewError(f"{path}: unknown setting {name}.{key}; {hint(key, known)}[{name}] "
                                       f"may hold {', '.join(shown)}{NEWER}")


def write_template(store_root: Path, name: str) -> None:
    (store_root / CONFIG_NAME).write_text(TEMPLATE.format(name=toml_string(name)), encoding="utf-8")


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string. JSON's escapes are TOML's; TOML also wants DEL escaped. (A
    store folder named with a control character wrote a config no command could read.)"""
    import json

    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
