"""Helpers for the store, verify, COCO and CLI tests: run the real command line in this process,
and build a store once per session then hand each test its own copy (git init, import and
checkpoints cost more than the tests themselves)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from conftest import SAMPLE

AUTHOR = "Test Reviewer <reviewer@example.org>"


def run(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, str, str]:
    """`labelreview ARGV` through ``cli.main`` in this process, its output captured."""
    from labelreview import cli

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in (env or {}).items():
            mp.setenv(k, v)
        if cwd is not None:
            mp.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def git(root: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=check).stdout


@contextlib.contextmanager
def identity_env(home: Path):
    """The same environment conftest's autouse fixture gives each test, for session-wide builds."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("LABELREVIEW_AUTHOR", AUTHOR)
        mp.delenv("LABELREVIEW_STORE", raising=False)
        yield


class Templates:
    """Stores built once, copied per test. Each template is ``<dir>/store`` + ``<dir>/images`` so the
    image root, recorded relative to the store, still resolves in the copy."""

    def __init__(self, factory: pytest.TempPathFactory):
        self.factory = factory
        self.built: dict[str, Path] = {}

    def get(self, name: str, build: Callable[[Path, Path], None]) -> Path:
        if name not in self.built:
            base = self.factory.mktemp(f"template-{name}")
            with identity_env(self.factory.mktemp("home")):
                shutil.copytree(SAMPLE / "images", base / "images")
                build(base / "store", base / "images")
            self.built[name] = base
        return self.built[name]

    def copy(self, name: str, build: Callable[[Path, Path], None], dest: Path) -> tuple[Path, Path]:
        src = self.get(name, build)
        shutil.copytree(src, dest, symlinks=True)
        return dest / "store", dest / "images"


def build_empty(store: Path, images: Path) -> None:
    from labelreview.store import Store

    Store.init(store, name="test")


def build_sample(store: Path, images: Path) -> None:
    from labelreview.formats import coco
    from labelreview.store import Store

    Store.init(store, name="test")
    with Store.open(store) as s:
        s.ingest(coco.read(SAMPLE / "proposals.json"), source="model-v1", image_root=images)
        s.checkpoint()


def set_config(store: Path, **project) -> None:
    """Change ``[project]`` keys (or whole tables given as ``table={...}``) of labelreview.toml."""
    path = store / "labelreview.toml"
    text = path.read_text()
    import re

    for key, value in project.items():
        if isinstance(value, dict):  # a table: replace its body
            body = "".join(f"{k} = {_toml(v)}\n" for k, v in value.items())
            text = re.sub(rf"(?ms)^\[{key}\]\n.*?(?=^\[|\Z)", f"[{key}]\n{body}\n", text)
        else:
            text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {_toml(value)}", text)
            assert n == 1, key
    path.write_text(text)


def _toml(v) -> str:
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return str(v).lower() if isinstance(v, bool) else str(v)


def files_of(root: Path) -> dict[str, bytes]:
    """Every file a store commits or keeps beside git (not the index), with its bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in (".git", ".labelreview"):
            out[rel.as_posix()] = p.read_bytes()
    return out


def env_without_store() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LABELREVIEW_STORE", None)
    return env


# ---------------------------------------------------------------------- fixtures (import them into a test module)


@pytest.fixture(scope="session")
def templates(tmp_path_factory) -> Templates:
    return Templates(tmp_path_factory)


@pytest.fixture
def _sample(templates, tmp_path) -> tuple[Path, Path]:
    return templates.copy("sample", build_sample, tmp_path / "copy")


@pytest.fixture
def sample_store(_sample) -> Path:
    """Overrides conftest's: the same store (25 sample proposals imported), copied, not rebuilt."""
    return _sample[0]


@pytest.fixture
def sample_images(_sample) -> Path:
    return _sample[1]


@pytest.fixture
def empty_store(templates, tmp_path) -> Path:
    """Overrides conftest's: a new store, copied, not rebuilt."""
    return templates.copy("empty", build_empty, tmp_path / "copy-empty")[0]
