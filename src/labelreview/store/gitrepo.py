"""Git checkpoints of the store's committed files: batched, authored by the reviewer, locked."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import git

from ..model import LabelreviewError
from .identity import Identity

COMMITTED = ("labelreview.toml", "imports", "events", ".gitignore")
GITIGNORE = ".labelreview/\n"


@contextmanager
def file_lock(path: Path, timeout: float = 60.0) -> Iterator[None]:
    """An exclusive lock between processes (git allows one commit at a time per repository)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabelreviewError(f"{path}: still locked by another process after {timeout:.0f} s")
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)


def init_repo(root: Path) -> git.Repo:
    repo = git.Repo.init(root)
    (root / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    return repo


def open_repo(root: Path) -> git.Repo:
    try:
        return git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise LabelreviewError(f"{root}: not a git repository; was it made with `labelreview init`?") from None


def commit_env(identity: Identity, repo: git.Repo) -> dict[str, str]:
    """The reviewer authors the commit; the committer is git's own user, else the reviewer too."""
    env = {"GIT_AUTHOR_NAME": identity.name, "GIT_AUTHOR_EMAIL": identity.email}
    reader = repo.config_reader()
    if not reader.has_option("user", "name") or not reader.has_option("user", "email"):
        env.update(GIT_COMMITTER_NAME=identity.name, GIT_COMMITTER_EMAIL=identity.email)
    return env


def stage(repo: git.Repo) -> list[str]:
    """Stage the committed parts of the store; return the paths that changed."""
    root = Path(repo.working_tree_dir)
    present = [p for p in COMMITTED if (root / p).exists()]
    if present:
        repo.git.add("--", *present)
    out = repo.git.diff("--cached", "--name-only", "-z")
    return [p for p in out.split("\0") if p]


def commit_staged(repo: git.Repo, identity: Identity, message: str) -> str:
    """Commit with the real git CLI, so ``commit.gpgsign`` and hooks apply as the user set them."""
    repo.git.commit("-q", "-m", message, env=commit_env(identity, repo))
    return repo.head.commit.hexsha


def blob_sizes(repo: git.Repo, rev: str, paths: list[str]) -> dict[str, int]:
    """Size of each path's blob at ``rev`` (how much of an append-only log that commit holds)."""
    if not paths:
        return {}
    out = repo.git.ls_tree("-l", "-z", rev, "--", *paths)
    sizes: dict[str, int] = {}
    for entry in out.split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        parts = meta.split()
        if parts[1] == "blob":
            sizes[path] = int(parts[3])
    return sizes
