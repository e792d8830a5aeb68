"""Running a producer of chunks in a forked child, its chunks streamed back to the parent.

A large import spends most of its time in per-annotation Python (parsing, checking, serialising),
which one core runs while the other waits; SQLite's inserts are the parent's. With the producer in
a child process, the two overlap. ``fork`` (not ``spawn``) because the producer is a generator
holding the reader's state, the parsed file and its position in it: the child has them as they
were, with nothing to pickle or read again.

The child talks only through its pipe: it never touches the parent's SQLite connection (its
transaction stays the parent's), writes no file the parent will write, and ends with ``os._exit``
so that nothing inherited is flushed or closed twice. Whatever it raises is raised again in the
parent, as the same exception where it can be pickled; when the parent stops early (an error of
its own, Ctrl-C), the child is killed; when the child dies, the parent says so.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import traceback
from typing import Any, Callable, Generic, Iterator, TypeVar

from ..model import LabelreviewError

T = TypeVar("T")

_PROTOCOL = pickle.HIGHEST_PROTOCOL


def can_fork() -> bool:
    """Whether a child can be forked safely here: a POSIX fork, and no other thread running (a
    lock another thread holds at the fork would stay held in the child forever)."""
    return hasattr(os, "fork") and threading.active_count() == 1


def in_child(produce: Callable[[], Iterator[T]], finish: Callable[[], Any], on_finish: Callable[[Any], None],
             what: str) -> "ChildStream[T]":
    """The chunks ``produce()`` yields, produced in a child forked now; once they are all read,
    ``on_finish`` is called in the parent with what ``finish()`` returned in the child (the state
    the producer left, which the parent's copy does not have). ``what`` names the work in the
    message if the child dies.

    The caller must check ``can_fork()`` first, and ``close()`` the stream when done with it (read
    to the end or not). Chunks, ``finish()``'s result and exceptions travel pickled."""
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # (no process to spare: the caller may do the work itself)
        os.close(r)
        os.close(w)
        raise
    if pid == 0:  # the child
        code = 1
        try:
            os.close(r)
            with open(w, "wb") as out:
                # Each message is pickled whole before any of it is written: one that cannot be
                # pickled is never half in the pipe.
                try:
                    for chunk in produce():
                        out.write(pickle.dumps(("chunk", chunk), _PROTOCOL))
                        out.flush()  # (the parent may unpickle it while the next is made)
                    out.write(pickle.dumps(("end", finish()), _PROTOCOL))
                except BaseException as e:  # (KeyboardInterrupt too: the parent has its own)
                    out.write(pickle.dumps(("error", _portable(e)), _PROTOCOL))
            code = 0
        except BaseException:
            pass  # the parent is gone (a broken pipe) or the pipe failed: it sees the end of the pipe
        finally:
            os._exit(code)
    os.close(w)
    return ChildStream(pid, r, on_finish, what)


class ChildStream(Generic[T]):
    """The parent's end of ``in_child``: iterate for the chunks; ``close`` stops and reaps the child."""

    def __init__(self, pid: int, fd: int, on_finish: Callable[[Any], None], what: str):
        self.pid, self._on_finish, self._what = pid, on_finish, what
        self._inp = open(fd, "rb")

    def __iter__(self) -> Iterator[T]:
        while True:
            try:
                kind, value = pickle.load(self._inp)
            except Exception:  # the pipe ended, or ended in the middle of a message: the child died
                self._inp.close()
                status = self._reap()
                raise LabelreviewError(f"{self._what}: the process doing it ended unexpectedly "
                                       f"({_status_text(status)})") from None
            if kind == "chunk":
                yield value
            elif kind == "end":
                self._on_finish(value)
                return
            else:
                raise value

    def close(self) -> None:
        self._inp.close()
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)  # (gone already after "end" or an error: harmless)
            except ProcessLookupError:
                pass
            self._reap()

    def _reap(self) -> int:
        pid, self.pid = self.pid, 0
        return os.waitpid(pid, 0)[1] if pid else 0


def _portable(e: BaseException) -> BaseException:
    """``e`` as it can cross the pipe: itself if it pickles and comes back whole; otherwise a
    LabelreviewError with its text. An unexpected error keeps the child's traceback as a note."""
    if not isinstance(e, (LabelreviewError, KeyboardInterrupt)):
        try:
            e.add_note("in the forked child:\n" + "".join(traceback.format_exception(e)).rstrip())
        except Exception:
            pass
    try:
        back = pickle.loads(pickle.dumps(e, _PROTOCOL))
        if type(back) is type(e) and str(back) == str(e):
            return e
    except Exception:
        pass
    if isinstance(e, LabelreviewError):  # (its text is what the user is told: unchanged)
        return LabelreviewError(str(e))
    return LabelreviewError(f"{type(e).__name__}: {e}")


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
