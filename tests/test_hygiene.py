"""Start-up hygiene, the Harlequin way: the command line and every layer below the UI start without
importing Textual (it costs start-up time every `labelreview ls` would pay)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from helpers import _sample, sample_images, sample_store, templates  # noqa: F401

SRC = REPO / "src" / "labelreview"


def _modules_loaded(code: str, *args: str) -> dict:
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules)))\n"
    r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.splitlines()[-1]))


def test_importing_the_cli_does_not_import_textual():
    mods = _modules_loaded("import labelreview.cli")
    assert "labelreview.cli" in mods
    assert not {m for m in mods if m == "textual" or m.startswith("textual.")}


def test_commands_do_not_import_textual(sample_store, tmp_path):
    code = (
        "import sys\nfrom labelreview import cli\n"
        "for argv in (['status'], ['ls', '--json'], ['log'], ['blame', '1'], ['verify', '--no-images'],\n"
        "             ['export', 'coco', sys.argv[2]]):\n"
        "    assert cli.main([*argv, '--store', sys.argv[1]]) == 0, argv\n"
    )
    mods = _modules_loaded(code, str(sample_store), str(tmp_path / "out.json"))
    assert "labelreview.store.verify" in mods  # the commands did run
    assert "textual" not in mods


def test_labelreview_status_does_not_import_textual(sample_store):
    """The real console script, with Python telling what it imported."""
    r = subprocess.run(["labelreview", "status", "--store", str(sample_store)], capture_output=True, text=True,
                       timeout=60, env={**__import__("os").environ, "PYTHONVERBOSE": "1"})
    assert r.returncode == 0, r.stderr
    imported = [ln for ln in r.stderr.splitlines() if ln.startswith("import ")]
    assert any("'labelreview.store" in ln for ln in imported)
    assert not [ln for ln in imported if "'textual" in ln]


def test_no_layer_below_the_ui_imports_textual():
    """Static check over every module outside tui/: no `import textual` anywhere (even lazily)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "tui":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(n == "textual" or n.startswith("textual.") for n in names):
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.level and (node.module or "").startswith("tui") \
                    and rel.as_posix() != "cli.py":
                offenders.append(f"{rel}:{node.lineno} imports the UI")
    assert offenders == []


def test_every_module_below_the_ui_imports_without_textual():
    mods = [
        ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted(SRC.rglob("*.py")) if "tui" not in p.relative_to(SRC).parts
    ]
    loaded = _modules_loaded("\n".join(f"import {m}" for m in mods))
    assert set(mods) <= loaded
    assert "textual" not in loaded


def test_store_is_git_clean_after_every_command(sample_store, tmp_path):
    """Nothing a command writes escapes .gitignore (positions, locks, recovery notes, index)."""
    from helpers import git, run

    for argv in (["accept", "1"], ["undo"], ["reindex"], ["verify"], ["commit"],
                 ["export", "coco", str(tmp_path / "e.json")]):
        assert run(*argv, "--store", sample_store)[0] == 0, argv
        assert git(sample_store, "status", "--porcelain", "--ignored=no", "--untracked-files=all") == "", argv
    ignored = git(sample_store, "status", "--porcelain", "--ignored")
    assert ignored.strip() == "!! .labelreview/"
    assert Path(sample_store / ".gitignore").read_text() == ".labelreview/\n"


def test_status_imports_no_heavy_library(sample_store):
    """`status` reads counts from the index: it needs neither GitPython nor Pillow, numpy or pycocotools
    (importing them took most of its time on a 1M-annotation store)."""
    code = "import sys\nfrom labelreview import cli\nassert cli.main(['status', '--store', sys.argv[1]]) == 0\n"
    mods = _modules_loaded(code, str(sample_store))
    assert "labelreview.store.store" in mods  # it did open the store
    heavy = {"git", "PIL", "numpy", "pycocotools", "textual", "rich"}
    assert not {m for m in mods if m.split(".")[0] in heavy}


def test_a_first_picture_does_not_import_numpy_ma(sample_store):
    """numpy 2's ``np.unique`` imports ``numpy.ma`` (~30 ms with the GIL held) on its first call:
    at launch that lands in the middle of the first picture, so the renderer keeps clear of it."""
    code = (
        "import sys\nfrom rich.color import ColorSystem\n"
        "from labelreview.store import Store\nfrom labelreview.review import ReviewSession\n"
        "from labelreview.tui import render\n"
        "store = Store.open(sys.argv[1])\nsession = ReviewSession(store, auto_checkpoint=False)\n"
        "for image in store.images():\n"
        "    anns = session.image_annotations(image.id)\n"
        "    overlays = render.overlays_for(anns, anns[0].id if anns else None, {})\n"
        "    frame = render.compose(render.decode(image.path, (116, 94)), overlays, (116, 47))\n"
        "    render.finish_lines(frame, ColorSystem.TRUECOLOR)\n"
        "    assert len(frame.strips) == 47 and frame.strips[0]._render_cache\n"
    )
    mods = _modules_loaded(code, str(sample_store))
    assert "labelreview.tui.render" in mods and "numpy" in mods
    assert "numpy.ma" not in mods
