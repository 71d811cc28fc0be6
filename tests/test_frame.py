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

def test_wheel_install_carries_the_bundled_data(tmp_path):
    """`pip install .` (not editable) into a fresh venv; from another folder the package and its data load."""
    venv = tmp_path / "venv"
    # system site packages provide torch & co.; the package itself comes from a real (non-editable) build
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(ROOT)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    code = ("import mosaiclab, mosaiclab.datasets as d; print(mosaiclab.__version__); "
            "assert 'site-packages' in mosaiclab.__file__, mosaiclab.__file__; "
            "print(len(d.load_corpus('validation')), d.load_tokenizer().get_vocab_size(), len(d.load_task('sst2', 'validation')))")
    r = subprocess.run([str(py), "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    version, counts = r.stdout.split("\n")[:2]
    assert version.strip() and counts.split()[1] == "8192"

def test_headline_table_matches_the_committed_results():
    "The README's headline numbers are printed from results/ by scripts/headline.py, never typed by hand."
    import subprocess, sys
    out = subprocess.run([sys.executable, "scripts/headline.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() and out.strip() in (ROOT / "README.md").read_text()
