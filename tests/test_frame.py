"""The project frame: README generated from index.ipynb, one Quarto config, console script."""
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import make_readme

def test_readme_matches_index_notebook():
    assert (ROOT / "README.md").read_text() == make_readme.render(), "run `python scripts/make_readme.py`"

def test_readme_drift_is_detected(tmp_path):
    import json
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text())
    nb["cells"][0]["source"] = ["# something else\n"]
    p = tmp_path / "index.ipynb"; p.write_text(json.dumps(nb))
    assert make_readme.render(p) != (ROOT / "README.md").read_text()

def test_single_quarto_config():
    link = ROOT / "nbs" / "_quarto.yml"
    assert link.is_symlink() and link.resolve() == (ROOT / "_quarto.yml").resolve()

def test_readme_test_command_is_ci():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    cmd = "bash scripts/setup.sh --dev && bash scripts/test.sh"
    assert cmd in readme and cmd in ci

def test_console_script():
    r = subprocess.run(["mosaiclab", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("mosaiclab ")
