"""File modes for a store a group shares on one server: files 0o664, folders 0o2775.

The setgid bit on a folder makes what is created in it belong to the store's group, whoever creates
it; group members may then add their own event logs and write the shared index. Nothing is ever
world-writable. A mode is set only on what this process creates (never on a folder the user made,
such as the one a store is created in) and a refusal to change it (not our file) is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o664
DIR_MODE = 0o2775


def _chmod(path: os.PathLike | str, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError:
        pass


def shared_dir(path: os.PathLike | str) -> Path:
    """``mkdir -p``; each folder it creates gets DIR_MODE."""
    path = Path(path)
    created = []
    p = path
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    for d in reversed(created):
        _chmod(d, DIR_MODE)
    return path


def shared_file(path: os.PathLike | str) -> None:
    _chmod(path, FILE_MODE)


def shared_tree(root: os.PathLike | str) -> None:
    """A folder written privately (mkdtemp is 0o700) before it is moved into the store."""
    _chmod(root, DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            _chmod(os.path.join(dirpath, d), DIR_MODE)
        for f in filenames:
            _chmod(os.path.join(dirpath, f), FILE_MODE)
