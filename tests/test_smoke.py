"""The README's first steps work: init, import the sample, decide, verify."""

from conftest import SAMPLE, run_cli


def test_cli_round_trip(tmp_path, sample_images):
    store = tmp_path / "s"
    assert run_cli("init", str(store)).returncode == 0
    r = run_cli("import", "coco", str(SAMPLE / "proposals.json"), "--images", str(sample_images),
                "--source", "model-v3", "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert "imported 25 annotations on 5 images" in r.stdout
    assert run_cli("accept", "2", "3", "--store", str(store)).returncode == 0
    r = run_cli("verify", "--store", str(store))
    assert r.returncode == 0 and "verify OK" in r.stdout, r.stdout + r.stderr
