"""The project config, ``labelreview.toml``: classes, reasons, image roots, roles, keys."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..model import LabelreviewError

CONFIG_NAME = "labelreview.toml"

TEMPLATE = '''# labelreview project config. Committed with the store; edit it and commit.

[project]
name = "{name}"
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
# OS logins allowed each role; an empty list means everybody.
reviewers = []
adjudicators = []
admins = []

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


def load_config(store_root: Path) -> Config:
    path = store_root / CONFIG_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabelreviewError(f"{path}: not found; is this a labelreview store?") from None
    except tomllib.TOMLDecodeError as e:
        raise LabelreviewError(f"{path}: invalid TOML: {e}") from None
    project = data.get("project", {})
    cfg = Config(
        name=str(project.get("name", store_root.name)),
        classes=[str(c) for c in project.get("classes", [])],
        flag_reasons=[str(r) for r in project.get("flag_reasons", [])],
        reject_reasons=[str(r) for r in project.get("reject_reasons", [])],
        checkpoint_every=int(project.get("checkpoint_every", 50)),
        image_roots={str(k): str(v) for k, v in data.get("image_roots", {}).items()},
        roles={str(k): [str(x) for x in v] for k, v in data.get("roles", {}).items()},
        keys={str(k): str(v) for k, v in data.get("keys", {}).items()},
    )
    if cfg.checkpoint_every < 1:
        raise LabelreviewError(f"{path}: project.checkpoint_every must be at least 1")
    return cfg


def write_template(store_root: Path, name: str) -> None:
    safe = name.replace("\\", "").replace('"', "")
    (store_root / CONFIG_NAME).write_text(TEMPLATE.format(name=safe), encoding="utf-8")
