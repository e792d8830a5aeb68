"""Who is acting: the author a user names, and the OS login and host they cannot simply type."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass

_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str, limit: int = 64) -> str:
    """A file-name-safe form of a name: no separators, no dot-files, never empty."""
    s = _SLUG.sub("-", text).strip(".-")[:limit]
    return s or "unknown"


def key_slug(text: str) -> str:
    """``slug``, for a name that keys a writer's logs and chain: one with letters a slug drops
    (日本 and 中国 were both "unknown", Zoë and Zoé both "Zo") gets a short hash of the whole
    name, so two people never share a log. ASCII names keep their plain slug (existing logs)."""
    s = slug(text)
    if text.isascii():
        return s
    import hashlib

    return f"{s[:55]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


@dataclass(frozen=True, slots=True)
class Identity:
    author: str
    login: str
    host: str

    @property
    def writer(self) -> str:
        """The key of this writer's hash chain and the folder of its event logs."""
        return _writer(self.author, self.host)

    @property
    def author_key(self) -> str:
        m = re.search(r"<([^>]+)>", self.author)
        return m.group(1) if m else self.author

    @property
    def name(self) -> str:
        return re.sub(r"\s*<[^>]*>\s*", "", self.author).strip() or self.login

    @property
    def email(self) -> str:
        m = re.search(r"<([^>]+)>", self.author)
        return m.group(1) if m else f"{slug(self.login)}@{slug(self.host)}"


@functools.lru_cache(maxsize=64)
def _writer(author: str, host: str) -> str:  # (asked at every decision: the regexes once)
    m = re.search(r"<([^>]+)>", author)
    return f"{key_slug(m.group(1) if m else author)}/{key_slug(host)}"


def os_login() -> str:
    """The login of the process's user id: not $LOGNAME or $USER, which anyone can set (roles
    are granted by this name)."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # no passwd entry (containers)
        try:
            import getpass

            return getpass.getuser()
        except Exception:
            return str(os.getuid())


def _git_author(cwd: str | None) -> str | None:
    """git's ``user.name`` and ``user.email`` (one git process for both; the last value of each wins,
    as ``git config --get`` would give it)."""
    try:
        out = subprocess.run(["git", "config", "--get-regexp", r"^user\.(name|email)$"], cwd=cwd,
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    found = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        found[key.lower()] = value.strip()
    name, email = found.get("user.name", ""), found.get("user.email", "")
    if name and email:
        return f"{name} <{email}>"
    return name or email or None


def resolve_identity(author: str | None = None, cwd: str | None = None) -> Identity:
    """--author, else LABELREVIEW_AUTHOR, else git's user.name/email, else the OS login."""
    login = os_login()
    chosen = (author or os.environ.get("LABELREVIEW_AUTHOR") or _git_author(cwd) or login).strip()
    from ..display import has_control

    if has_control(chosen):
        # A name with a newline or an escape code would forge rows in `log` and `blame`, or rewrite
        # the screen it is printed on ('mallory\x1b[2K\rbob' shows as "bob").
        from ..model import LabelreviewError

        raise LabelreviewError(f"author {chosen!r} has control characters (a newline, an escape code); "
                               "give a plain name, e.g. --author 'Ada Lovelace <ada@example.org>'")
    return Identity(author=chosen or login, login=login, host=_hostname() or "localhost")



def _hostname() -> str:
    """The host name (what socket.gethostname gives, without importing socket for it)."""
    try:
        return os.uname().nodename
    except AttributeError:  # not a POSIX system
        import socket

        return socket.gethostname()
