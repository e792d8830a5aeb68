"""Shared fixtures: real stores in tmp folders, made with the real code."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
#: Real annotation files written by other projects (see its INDEX.md); tests skip if absent.
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture(autouse=True)
def _identity(monkeypatch, tmp_path_factory):
    """A known reviewer, and a git that needs no user config of the machine it runs on."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("LABELREVIEW_AUTHOR", "Test Reviewer <reviewer@example.org>")
    monkeypatch.delenv("LABELREVIEW_STORE", raising=False)


@pytest.fixture
def empty_store(tmp_path) -> Path:
    from labelreview.store import Store

    return Store.init(tmp_path / "store", name="test")


@pytest.fixture
def sample_images(tmp_path) -> Path:
    """A private copy of the sample images (tests may corrupt or delete them)."""
    dest = tmp_path / "images"
    shutil.copytree(SAMPLE / "images", dest)
    return dest


@pytest.fixture
def sample_store(empty_store, sample_images) -> Path:
    """A store with the sample proposals imported (25 annotations on 5 images)."""
    from labelreview.formats import coco
    from labelreview.store import Store

    with Store.open(empty_store) as store:
        store.ingest(coco.read(SAMPLE / "proposals.json"), source="model-v1", image_root=sample_images)
        store.checkpoint()
    return empty_store


@pytest.fixture
def open_store():
    """Open stores and close them at the end of the test."""
    from labelreview.store import Store

    opened = []

    def _open(path, author=None):
        s = Store.open(path, author=author)
        opened.append(s)
        return s

    yield _open
    for s in opened:
        s.close()


@pytest.fixture
def open_app(open_store):
    """The review app on a store, as ``make_app`` in test_tui makes it; the store is closed at the
    end of the test (after every assertion on it), as ``open_store`` closes it."""
    from labelreview.review import Queue
    from labelreview.tui.app import LabelReviewApp

    def _open(path, **queue_kwargs):
        store = open_store(path)
        return LabelReviewApp(store, Queue(store, **queue_kwargs)), store

    return _open


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None):
    """Run the real console script; returns the CompletedProcess."""
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(["labelreview", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=120)
