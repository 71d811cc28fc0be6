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
    """Build the wheel as a new user's `pip install .` would (pyproject's build backend, isolated build env),
    install it into a fresh venv, and load the package and its data from another folder."""
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    wheel, = dist.glob("mosaiclab-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # torch & co. come from this environment's site-packages, appended after the venv's own (a plain path in a
    # .pth does not run that folder's .pth files, so this environment's editable mosaiclab stays out of sight)
    site_dir, = (venv / "lib").glob("python*/site-packages")
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (site_dir / "zz_outer.pth").write_text("\n".join(ours) + "\n")
    code = ("import mosaiclab, mosaiclab.datasets as d; print(mosaiclab.__version__); "
            "assert 'site-packages' in mosaiclab.__file__ and str(mosaiclab.__file__).startswith(%r), mosaiclab.__file__; "
            "print(len(d.load_corpus('validation')), d.load_tokenizer().get_vocab_size(), len(d.load_task('sst2', 'validation')))"
            % str(venv))
    r = subprocess.run([str(py), "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    version, counts = r.stdout.split("\n")[:2]
    assert version.strip() and counts.split()[1] == "8192"

def test_headline_table_matches_the_committed_results():
    "The README's headline numbers are printed from results/ by scripts/headline.py, never typed by hand."
    import subprocess, sys
    out = subprocess.run([sys.executable, "scripts/headline.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() and out.strip() in (ROOT / "README.md").read_text()

PARTS = ("parameterisation", "curation", "objectives", "growth", "transfer", "science")
SPINE_MAX = 17  # the spine (about 15 modules) plus the datasets loader and the experiment harness

def test_layout_spine_on_top_and_methods_in_their_parts():
    "The spine sits at the top of the package; every paper's module lives in its part's subpackage."
    top = sorted(p.stem for p in (ROOT / "mosaiclab").glob("*.py") if not p.stem.startswith("_"))
    assert len(top) <= SPINE_MAX, f"{len(top)} top-level modules: {top}"
    for part in PARTS:
        assert (ROOT / "mosaiclab" / part / "__init__.py").exists(), part
        assert (ROOT / "nbs" / part).is_dir(), f"nbs/{part} mirrors mosaiclab/{part}"

def test_imports_point_one_way():
    "Methods use the spine, never the reverse: no top-level module imports a part subpackage."
    import ast
    for path in (ROOT / "mosaiclab").glob("*.py"):
        if path.stem.startswith("_"): continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import): names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                names = [("." * node.level) + mod] + ([f".{a.name}" for a in node.names] if node.level and not mod else [])
            for n in names:
                parts = n.lstrip(".").replace("mosaiclab.", "", 1).split(".")
                assert parts[0] not in PARTS, f"{path.name} imports {n}: the spine must not depend on a book part"

def test_ci_runs_in_its_own_fresh_venv():
    "CI makes a new venv in a temporary folder and activates it before the README's commands."
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv" in ci and "bin/activate" in ci and "mktemp" in ci
    assert ci.index("bin/activate") < ci.index("bash scripts/setup.sh --dev")
