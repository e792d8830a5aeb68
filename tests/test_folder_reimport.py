"""A folder import is fingerprinted by what it brings: the same folder again is refused, a changed one is new."""

import shutil

from PIL import Image

from conftest import run_cli


def make_folder(root, labels):
    for i, cls in enumerate(labels):
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 6), (i * 40, 0, 0)).save(root / cls / f"img{i}.png")


def test_same_folder_refused_changed_folder_with_same_count_imported(tmp_path):
    store = tmp_path / "s"
    assert run_cli("init", str(store)).returncode == 0
    data = tmp_path / "data"
    make_folder(data, ["cat", "dog"])
    first = run_cli("import", "imagefolder", str(data), "--store", str(store))
    assert first.returncode == 0, first.stderr
    again = run_cli("import", "imagefolder", str(data), "--store", str(store))
    assert again.returncode != 0 and "already imported" in again.stderr
    # Same number of labels, but the vendor moved img1 from dog to cat: a new import.
    shutil.rmtree(data)
    make_folder(data, ["cat", "cat"])
    changed = run_cli("import", "imagefolder", str(data), "--store", str(store))
    assert changed.returncode == 0, changed.stderr
    status = run_cli("status", "--json", "--store", str(store))
    assert '"imports": 2' in status.stdout
