"Every experiment script is on the shared harness (mosaiclab.experiment): the parser, the provenance and the results writer."
import ast, json, os, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
# every script, so that a new one cannot skip the harness
SCRIPTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "experiments").rglob("*.py") if not p.name.startswith("_"))

def _called(tree: ast.Module) -> set[str]:
    "Names of every function called (`f(...)` and `x.f(...)`)."
    return {n.func.id if isinstance(n.func, ast.Name) else n.func.attr for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))}

def test_all_scripts_are_checked():
    assert len(SCRIPTS) >= 15 and "experiments/pareto.py" in SCRIPTS

@pytest.mark.parametrize("script", SCRIPTS)
def test_script_uses_the_harness(script):
    src = (ROOT / script).read_text()
    tree = ast.parse(src)
    doc = ast.get_docstring(tree)
    assert doc and doc.splitlines()[0].strip(), "the docstring's first line describes the experiment"
    assert f"python {script}" in doc and "--quick" in doc, "the docstring shows the rerun command and a --quick example"
    harness = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "mosaiclab.experiment" for a in n.names}
    assert {"experiment_parser", "provenance", "write_results"} <= harness
    assert {"experiment_parser", "provenance", "write_results"} <= _called(tree)
    assert "ArgumentParser(" not in src, "the flags come from experiment_parser"
    assert "git_commit" not in src and "hardware_info" not in src, "provenance is the harness's"
    private = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("mosaiclab")
               for a in n.names if a.name.startswith("_")]
    assert not private, f"private library helpers imported: {private}"
    assert not re.search(r"statistics\.(stdev|pstdev)", src), "spreads over seeds come from mosaiclab.experiment.mean_std"

def test_quick_run_writes_provenance(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "experiments/masking_rate.py", "--quick", "--allow-dirty", "--threads", "1", "--out", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((tmp_path / "results.json").read_text())
    for k in ("experiment", "command", "commit", "dirty", "hardware", "started", "wall_seconds", "runs"): assert k in res, k
    assert res["experiment"] == "masking_rate" and "--quick" in res["command"]
    assert isinstance(res["commit"], str) and isinstance(res["dirty"], bool) and res["wall_seconds"] > 0
    assert not (tmp_path / "runs").exists(), "the run folders are removed"
    assert {r["mlm_probability"] for r in res["runs"]} == {0.15, 0.30} and all(r["summary"]["steps"] == 10 for r in res["runs"])
