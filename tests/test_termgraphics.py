"""Asking the terminal for sixel or kitty graphics, on a real pseudo-terminal whose other end answers
as a terminal would (or does not); and the real `labelreview review --graphics ...` run in one:
probe, key i, the picture's bytes, and the review going on after it."""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time

import numpy as np
import pytest
from PIL import Image

from labelreview.tui import termgraphics
from labelreview.tui.termgraphics import DA1, KITTY_QUERY, SIXEL_COLORS_QUERY, SIXEL_SIZE_QUERY, probe

from sixel import decode_sixel

CELL = (10, 20)
XTERM_VT340 = {DA1: "\x1b[?63;1;2;4;6;9;15;16;22;28c", SIXEL_COLORS_QUERY: "\x1b[?1;0;1024S",
               SIXEL_SIZE_QUERY: "\x1b[?2;0;4096;4096S"}
TMUX_33 = {DA1: "\x1b[?1;2c"}
KITTY = {KITTY_QUERY: "\x1b_Gi=31;OK\x1b\\", DA1: "\x1b[?62;c"}


class FakeTerminal:
    """The far end of a pseudo-terminal: collects what the program writes and answers the
    questions in ``answers`` (escape sequence asked -> reply) in the order they are asked."""

    def __init__(self, cols: int, rows: int, answers: dict[str, str], pixels: bool = True, delay: float = 0.0):
        self.master, self.slave = os.openpty()
        size = (rows, cols, cols * CELL[0], rows * CELL[1]) if pixels else (rows, cols, 0, 0)
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size))
        self.answers = answers
        self.delay = delay
        self.output = bytearray()
        self.asked: list[str] = []
        self._seen = 0
        self._lock = threading.Lock()
        self._pattern = re.compile("|".join(re.escape(q) for q in answers).encode("latin-1")) if answers else None
        self._longest = max((len(q) for q in answers), default=0)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.output += chunk
                if self._pattern is None:
                    continue
                replies = []
                offset = self._seen
                for m in self._pattern.finditer(bytes(self.output[offset:])):  # what came since
                    question = m.group(0).decode("latin-1")
                    self.asked.append(question)
                    replies.append(self.answers[question])
                    self._seen = offset + m.end()
                # A question cut in two by a read is found whole the next time.
                self._seen = max(self._seen, len(self.output) - self._longest)
            for reply in replies:
                if self.delay:
                    time.sleep(self.delay)
                os.write(self.master, reply.encode("latin-1"))

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def text(self, start: int = 0) -> str:
        with self._lock:
            return bytes(self.output[start:]).decode("utf-8", "replace")

    def mark(self) -> int:
        with self._lock:
            return len(self.output)

    def wait_for(self, pattern: str, start: int = 0, timeout: float = 30.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.text(start)
            if len(re.findall(pattern, out, flags=re.S)) >= count:
                return out
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} x{count} never came; the last output: {self.text(start)[-2000:]!r}")

    def close(self) -> None:
        """The slave first: the reader's read ends (EIO) once no process holds it, and the
        master is closed only after the reader stopped (closed while it reads, its number could be
        reused by the next test's terminal, and read from here)."""
        os.close(self.slave)
        self._thread.join(timeout=10)
        os.close(self.master)


@pytest.fixture
def terminal():
    made = []

    def make(*args, **kwargs) -> FakeTerminal:
        made.append(FakeTerminal(*args, **kwargs))
        return made[-1]

    yield make
    for t in made:
        t.close()


# --------------------------------------------------------------------------- the probe


def test_a_sixel_terminal_is_believed_with_its_cell_size_colours_and_largest_picture(terminal):
    t = terminal(100, 30, XTERM_VT340)
    g = probe("sixel", fds=(t.slave, t.slave))
    assert (g.protocol, g.cell, g.colors, g.max_pixels, g.why) == ("sixel", CELL, 256, (4096, 4096), None)
    assert g.enabled
    assert t.asked == [DA1, SIXEL_COLORS_QUERY, SIXEL_SIZE_QUERY, DA1]  # XTSMGRAPHICS only once sixel is known


def test_the_cell_size_is_asked_when_the_window_size_has_no_pixels(terminal):
    answers = dict(XTERM_VT340, **{termgraphics.CELL_SIZE_QUERY: "\x1b[6;17;8t"})
    t = terminal(100, 30, answers, pixels=False)
    g = probe("sixel", fds=(t.slave, t.slave))
    assert g.cell == (8, 17) and g.protocol == "sixel"


def test_tmux_33_is_not_believed_and_the_reason_names_tmux(terminal, monkeypatch):
    monkeypatch.setenv("TMUX", "/tmp/tmux-0/default,1,0")
    t = terminal(100, 30, TMUX_33)
    g = probe("sixel", fds=(t.slave, t.slave))
    assert g.protocol is None and not g.enabled
    assert "does not list sixel" in g.why and "(1;2)" in g.why and "tmux 3.4" in g.why
    t2 = terminal(100, 30, TMUX_33)
    g2 = probe("kitty", fds=(t2.slave, t2.slave))
    assert g2.protocol is None and "kitty graphics query (no answer)" in g2.why


def test_a_kitty_terminal_is_believed_and_an_error_reply_is_not(terminal):
    t = terminal(100, 30, KITTY)
    g = probe("kitty", fds=(t.slave, t.slave))
    assert (g.protocol, g.cell) == ("kitty", CELL)
    t2 = terminal(100, 30, {KITTY_QUERY: "\x1b_Gi=31;ENOTSUPPORTED:no\x1b\\", DA1: "\x1b[?62c"})
    g2 = probe("kitty", fds=(t2.slave, t2.slave))
    assert g2.protocol is None and "ENOTSUPPORTED" in g2.why


def test_a_silent_terminal_is_waited_for_only_the_timeout(terminal):
    t = terminal(100, 30, {})
    start = time.monotonic()
    g = probe("sixel", fds=(t.slave, t.slave), timeout=0.3)
    assert 0.25 < time.monotonic() - start < 2.0
    assert g.protocol is None and "did not answer" in g.why


def test_a_slow_terminal_is_waited_for_until_its_last_answer(terminal):
    t = terminal(100, 30, KITTY, delay=0.2)  # a slow link: each answer 0.2 s late
    g = probe("kitty", fds=(t.slave, t.slave), timeout=1.0)
    assert g.protocol == "kitty"


def test_the_terminal_mode_is_given_back(terminal):
    t = terminal(100, 30, XTERM_VT340)
    before = termios.tcgetattr(t.slave)
    probe("sixel", fds=(t.slave, t.slave))
    assert termios.tcgetattr(t.slave) == before


def test_half_block_asks_nothing():
    assert probe("halfblock") == termgraphics.Graphics(asked="halfblock")


def test_the_probe_and_the_encoders_import_neither_textual_nor_textual_image_detection():
    """The probe runs before Textual is imported; the encoders use textual-image's encoder only:
    its renderable and widget packages ask the terminal (their auto-detection) on import."""
    code = ("import json, sys\nfrom PIL import Image\n"
            "from labelreview.tui import pixels, termgraphics\n"
            "pixels.sixel_rows(Image.new('RGB', (30, 40)), 20)\npixels.kitty_png(Image.new('RGB', (2, 2)))\n"
            "termgraphics.probe('sixel')\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    mods = set(json.loads(r.stdout.splitlines()[-1]))
    assert "textual_image._sixel" in mods
    assert not {m for m in mods if m == "textual" or m.startswith("textual.")}
    assert not {m for m in mods if m.startswith(("textual_image.renderable", "textual_image.widget"))}


# --------------------------------------------------------------------------- the real command


def run_review(t: FakeTerminal, store, graphics: str) -> subprocess.Popen:
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor")
    # Not TMUX (the probe would add its tmux advice), and not COLUMNS/LINES: pytest-xdist's
    # workers have COLUMNS=80 LINES=24, which Textual would take over the window's real size.
    for name in ("TMUX", "COLUMNS", "LINES"):
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "labelreview.cli", "review", "--store", str(store),
                             "--graphics", graphics], stdin=t.slave, stdout=t.slave, stderr=t.slave,
                            env=env, start_new_session=True)


def quit_review(t: FakeTerminal, proc: subprocess.Popen) -> None:
    t.type("q")
    try:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            t.type("q")  # (the first only closed the inspect view, left open by a failed check)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def expected_picture(store_dir, item: int, size: tuple[int, int]) -> np.ndarray:
    """The inspect picture of ``item`` at ``size``, made here the way the view makes it."""
    from labelreview.review import ReviewSession
    from labelreview.store import Store
    from labelreview.tui.render import inspect_picture, overlays_for

    with Store.open(store_dir) as store:
        ann = store.annotation(item)
        image = store.image(ann.image_id)
        anns = ReviewSession(store, auto_checkpoint=False).image_annotations(ann.image_id)
        overlays = overlays_for(anns, item, {})
        return np.asarray(inspect_picture(image.path, overlays, size, (image.width, image.height)).image,
                          dtype=np.int32)


@pytest.mark.slow
def test_the_real_command_shows_sixel_pixels_and_the_review_goes_on(sample_store, terminal):
    from labelreview.store import Store

    cols, rows = 100, 30
    t = terminal(cols, rows, XTERM_VT340)
    proc = run_review(t, sample_store, "sixel")
    try:
        t.wait_for("Accept")  # the review screen is up
        start = t.mark()
        t.type("i")
        out = t.wait_for(r"\x1bP[0-9;]*q.*?\x1b\\", start, count=rows - 1)
        pieces = re.findall(r"\x1b\[(\d+);(\d+)H(\x1bP[0-9;]*q.*?\x1b\\)", out, flags=re.S)[:rows - 1]
        assert [int(r) for r, _, _ in pieces] == list(range(1, rows))  # each cell row, in its place
        decoded = np.concatenate([decode_sixel(data) for _, _, data in pieces])
        want = expected_picture(sample_store, 1, (cols * CELL[0], (rows - 1) * CELL[1]))
        assert decoded.shape == want.shape
        assert np.abs(decoded - want).mean() < 4
        start = t.mark()
        t.type("x")  # closes the view, rejects nothing
        t.wait_for("Accept", start)
        t.type("a")
        time.sleep(0.5)
    finally:
        quit_review(t, proc)
    with Store.open(sample_store) as store:
        assert [e["action"] for e in store.events(annotation=1)] == ["accept"]


@pytest.mark.slow
def test_the_real_command_shows_kitty_pixels_then_removes_them(sample_store, terminal):
    cols, rows = 100, 30
    t = terminal(cols, rows, KITTY)
    proc = run_review(t, sample_store, "kitty")
    try:
        t.wait_for("Accept")
        start = t.mark()
        t.type("i")
        out = t.wait_for(r"\x1b_G[^\x1b]*m=0[^\x1b]*\x1b\\", start)
        commands = re.findall(r"\x1b_G([^;\x1b]*)(?:;([^\x1b]*))?\x1b\\", out)
        png = base64.standard_b64decode("".join(payload for _, payload in commands))
        decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int32)
        want = expected_picture(sample_store, 1, (cols * CELL[0], (rows - 1) * CELL[1]))
        assert (decoded == want).all()
        image_id = re.search(r"\bi=(\d+)", commands[0][0]).group(1)
        start = t.mark()
        t.type("x")
        t.wait_for(re.escape(f"\x1b_Ga=d,d=I,i={image_id},q=2\x1b\\") + ".*Accept", start)
    finally:
        quit_review(t, proc)


@pytest.mark.slow
def test_the_real_command_in_a_terminal_without_sixel_says_so_and_stays_in_half_blocks(sample_store, terminal):
    t = terminal(100, 30, TMUX_33)
    proc = run_review(t, sample_store, "sixel")
    try:
        t.wait_for(re.escape("(1;2)"))  # the notice (words wrap in the toast: one short piece)
        start = t.mark()
        t.type("i")
        t.wait_for("zooms", start)
        assert "\x1bP" not in t.text()  # no sixel was ever sent
    finally:
        quit_review(t, proc)


def test_keys_typed_while_the_terminal_is_asked_are_read_apart_from_its_answers(terminal):
    t = terminal(100, 30, XTERM_VT340, delay=0.3)
    t.type("j")  # typed before the question: already waiting in the terminal's input
    threading.Timer(0.1, t.type, ["a\x1b[B"]).start()  # and while the answer is on its way
    g = probe("sixel", fds=(t.slave, t.slave))
    assert g.enabled and g.typed == "ja\x1b[B"


@pytest.mark.slow
def test_keys_typed_during_the_graphics_question_are_not_lost(sample_store, terminal):
    # `review --graphics sixel` asks the terminal before Textual starts; its answers and any key
    # typed meanwhile come on the same input, and the keys were read and thrown away with them.
    from labelreview.store import Store

    t = terminal(100, 30, XTERM_VT340, delay=0.5)
    proc = run_review(t, sample_store, "sixel")
    try:
        t.wait_for(re.escape(DA1))  # asked; the answer takes 0.5 s: type ahead meanwhile
        t.type("a")
        t.wait_for("Accept")
        t.wait_for("1/25 reviewed")
    finally:
        quit_review(t, proc)
    with Store.open(sample_store) as store:
        assert [e["action"] for e in store.events(annotation=1)] == ["accept"]


def test_a_terminal_answering_slower_than_the_timeout_is_waited_for_while_it_answers(terminal):
    # Three answers 0.5 s apart, the last 1.5 s after the question: the probe gave up at 1 s and
    # the last answer reached Textual as keys ("?" opened the help, digits picked classes).
    t = terminal(100, 30, XTERM_VT340, delay=0.5)
    g = probe("sixel", fds=(t.slave, t.slave), timeout=1.0)
    assert g.enabled and g.max_pixels == (4096, 4096) and g.typed == ""
    r, _, _ = select.select([t.slave], [], [], 0.3)
    assert not r  # nothing of the answers is left for the app to read
