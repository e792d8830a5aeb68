"""Git checkpoints of the store's committed files: batched, authored by the reviewer, locked."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..model import LabelreviewError
from . import perms
from .identity import Identity

if TYPE_CHECKING:
    import git

# GitPython is imported when a repository is first opened, not with the store: commands that only
# read the index (``status``, ``ls``) never pay for it.

COMMITTED = ("labelreview.toml", "imports", "events", ".gitignore")
IMPORTS = "imports"
#: How long a git lock held by another git process (the user's own) is waited for.
LOCK_WAIT = 5.0
#: After a holder of our lock died: how long a git it started may still run before its locks count as stale.
STALE_GRACE = 2.0
GITIGNORE = ".labelreview/\n"


@contextmanager
def file_lock(path: Path, timeout: float = 60.0) -> Iterator[bool]:
    """An exclusive lock between processes (git allows one commit at a time per repository).

    Yields True when the previous holder died while holding it (kill -9, power cut): the kernel
    released its lock, but the mark it wrote on taking the lock is still there. Whatever git
    lock files that holder's git left behind are then stale.
    """
    perms.shared_dir(path.parent)
    new = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, perms.FILE_MODE)
    if new:
        try:
            os.fchmod(fd, perms.FILE_MODE)
        except OSError:
            pass
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
        crashed = os.pread(fd, 64, 0) != b""
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:  # a full disk: the mark that tells a later holder we died cannot be written
            raise LabelreviewError(f"{path}: cannot take the lock ({e.strerror or e})") from None
        try:
            yield crashed
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def clear_stale_git_locks(root: Path) -> list[str]:
    """After a holder of our lock died: remove the lock files its git left (waiting a moment for a
    git that outlived it to finish first). Returns what was removed."""
    gitdir = root / ".git"
    candidates = [gitdir / "index.lock", gitdir / "HEAD.lock", *gitdir.glob("refs/heads/**/*.lock")]
    deadline = time.monotonic() + STALE_GRACE
    while any(p.exists() for p in candidates) and time.monotonic() < deadline:
        time.sleep(0.05)
    removed = []
    for p in candidates:
        try:
            p.unlink()
            removed.append(p.relative_to(root).as_posix())
        except FileNotFoundError:
            pass
    return removed


def _run_git(repo: git.Repo, *args: str, **kwargs) -> str:
    """One git command; a lock held by another git (the user's own) is waited for, then reported."""
    import git

    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            return repo.git.execute(["git", *args], **kwargs)
        except git.GitCommandError as e:
            err = str(e.stderr or "").strip().strip("'").strip()
            locked = ".lock': File exists" in err or ".lock': file exists" in err.lower()
            if locked and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            first = err.splitlines()[0] if err else str(e)
            first = first.removeprefix("stderr:").strip().removeprefix("'").strip()
            busy = operation_in_progress(Path(repo.git_dir))
            if busy:
                raise LabelreviewError(f"git {args[0]} failed: {first} {busy}") from None
            if locked:
                raise LabelreviewError(
                    f"git {args[0]} failed: {first} Another git process is "
                    "using the store; if none is running, remove that lock file.") from None
            raise LabelreviewError(f"git {args[0]} failed: {first}") from None


#: A git operation left half-way in the store's repository (by hand, or by a process that was
#: killed): its marker in the git folder, what it is, and how to end it.
_IN_PROGRESS = (("MERGE_HEAD", "a git merge", "merge --abort"),
                ("rebase-merge", "a git rebase", "rebase --abort"),
                ("rebase-apply", "a git rebase or am", "rebase --abort"),
                ("CHERRY_PICK_HEAD", "a git cherry-pick", "cherry-pick --abort"),
                ("REVERT_HEAD", "a git revert", "revert --abort"))


def operation_in_progress(gitdir: Path) -> str | None:
    """What to tell a user whose store is in the middle of a git merge, rebase... (None if it is not)."""
    for marker, what, abort in _IN_PROGRESS:
        if (gitdir / marker).exists():
            root = gitdir.parent
            return (f"{what} is in progress in the store (someone ran git there, or it was interrupted): "
                    f"finish it, or undo it with `git -C {root} {abort}`, then try again.")
    return None


def init_repo(root: Path) -> git.Repo:
    """A repository the store's group may share (``core.sharedRepository=group``)."""
    import git

    repo = git.Repo.init(root, shared="group")
    (root / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    perms.shared_file(root / ".gitignore")
    return repo


def blob_id(data: bytes) -> str:
    """The id git gives a file of these bytes (what a tree lists for it), without running git."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def open_repo(root: Path) -> git.Repo:
    import git

    try:
        repo = git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        damaged = damaged_head(root)  # (git does not take a folder whose HEAD it cannot read for a repository)
        raise LabelreviewError(damaged or f"{root}: not a git repository; was it made with `labelreview init`?"
                               ) from None
    check_ownership(root)
    return repo


_COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def damaged_head(root: Path) -> str | None:
    """Why git cannot find the store's history from HEAD although it has one: ``.git/HEAD``, or the
    branch file it names, empty or not a commit id (a crash mid-write on a disk that lost it, a hand
    edit). Git then reads the branch as having no commits: its next commit would start a new history
    unconnected to the old one, and GitPython raised an AssertionError. None: HEAD is sound (or
    there is no history yet)."""
    git_dir = root / ".git"
    try:
        head = (git_dir / "HEAD").read_bytes().decode("utf-8", "replace").strip()
    except OSError:
        return None  # (no git folder: open_repo says so)
    if head.startswith("ref:"):
        ref = head[4:].strip()
        path = git_dir / ref
        try:
            text = path.read_bytes().decode("utf-8", "replace").strip()
        except OSError:
            return None  # a packed ref, or no commit yet
        if _COMMIT_ID.fullmatch(text):
            return None
        return (f"{path}: the branch {ref.removeprefix('refs/heads/')} is {'empty' if not text else 'not a commit id'}, "
                "so git cannot find the store's history from it. The commits are still in .git/objects: the "
                f"branch's last one is the second field of the last line of .git/logs/{ref}; remove the "
                f"damaged file, then `git update-ref {ref} <that commit>`")
    if _COMMIT_ID.fullmatch(head):
        return None
    return (f"{git_dir / 'HEAD'}: {'empty' if not head else 'neither a branch nor a commit id'}, so git cannot "
            "find the store's history from it; `git symbolic-ref HEAD refs/heads/<the store's branch>` "
            "(see .git/refs/heads/) puts it back")


def check_ownership(root: Path) -> None:
    """A store another user owns (an auditor reading a team's store): git refuses to work in it
    unless trusted (``safe.directory``), and every git command then fails, some silently (HEAD
    reads as invalid: ``verify`` would check no history and a revision would be "not a revision").
    Say so once, with git's own way to trust it."""
    try:
        owner = (root / ".git").stat().st_uid
    except OSError:
        return
    if owner == os.geteuid():
        return
    proc = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0 and "dubious ownership" in proc.stderr:
        try:
            import pwd

            who = pwd.getpwuid(owner).pw_name
        except (ImportError, KeyError):
            who = f"user id {owner}"
        raise LabelreviewError(
            f"{root}: the store belongs to {who}, and git does not read another user's repository unless "
            f"you trust it (its config could run commands as you). If you do: `git config --global --add "
            f"safe.directory {root}`, then run the command again. Nothing was read from git.")


def commit_env(identity: Identity, repo: git.Repo, committer: Identity | None = None) -> dict[str, str]:
    """The reviewer authors the commit; the committer is git's own user, else ``committer`` (the
    reviewer who makes the commit: by default the author)."""
    import configparser

    env = {"GIT_AUTHOR_NAME": identity.name, "GIT_AUTHOR_EMAIL": identity.email}
    try:
        reader = repo.config_reader()
        named = reader.has_option("user", "name") and reader.has_option("user", "email")
    except configparser.Error as e:  # (a traceback from GitPython's parser: the decision looked lost)
        raise LabelreviewError(f"git cannot read its config: {' '.join(str(e).splitlines()[:2])}; fix that file "
                               "(`git config --list` shows where git stops)") from None
    if not named:
        committer = committer or identity
        env.update(GIT_COMMITTER_NAME=committer.name, GIT_COMMITTER_EMAIL=committer.email)
    return env


def stage(repo: git.Repo, exclude: tuple[str, ...] = ()) -> list[str]:
    """Stage the committed parts of the store (but ``exclude``); return the paths that changed."""
    add(repo, exclude)
    return staged(repo)


def add(repo: git.Repo, exclude: tuple[str, ...] = (), logs: list[str] | None = None) -> None:
    """``git add`` the committed parts of the store (the only step that reads the logs).

    ``logs``: of ``events/``, only these files (the ones the index knows have grown): git then
    neither walks the event folders nor looks at the logs that did not change."""
    root = Path(repo.working_tree_dir)
    present = [p for p in COMMITTED if p not in exclude and (logs is None or p != "events")
               and p != IMPORTS and (root / p).exists()]
    if logs is not None:
        present += logs
    if IMPORTS not in exclude and (root / IMPORTS).is_dir():
        # Only new import folders: one committed never changes, and an edit or a deletion made in
        # it behind the tool's back must stay visible to `verify`, not be committed by the next
        # checkpoint in the name of whoever decides next.
        new = _run_git(repo, "ls-files", "-z", "--others", "--exclude-standard", "--", IMPORTS)
        present += [p for p in new.split("\0") if p]
    if present:
        _run_git(repo, "add", "--", *present)


def staged(repo: git.Repo, paths: list[str] | None = None) -> list[str]:
    """Paths (of ``paths``, if given) whose staged version differs from HEAD."""
    out = _run_git(repo, "diff", "--cached", "--name-only", "-z", *(["--", *paths] if paths else []))
    return [p for p in out.split("\0") if p]


def add_paths(repo: git.Repo, paths: list[str]) -> None:
    if paths:
        _run_git(repo, "add", "--", *paths)


def commit_staged(repo: git.Repo, identity: Identity, message: str) -> str:
    """Commit with the real git CLI, so ``commit.gpgsign`` and hooks apply as the user set them."""
    _run_git(repo, "commit", "-q", "-m", message, env=commit_env(identity, repo))
    return repo.head.commit.hexsha


def commit_paths(repo: git.Repo, author: Identity, committer: Identity, message: str, paths: list[str]) -> str:
    """Commit these paths only, as they are on disk (whatever else is staged stays staged)."""
    _run_git(repo, "commit", "-q", "--only", "-m", message, "--", *paths, env=commit_env(author, repo, committer))
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
