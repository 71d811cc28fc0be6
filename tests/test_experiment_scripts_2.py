"""The second batch of experiment scripts ported to the shared harness (mosaiclab.experiment): read as source, not run."""
import ast
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["experiments/objectives/ul2.py", "experiments/objectives/prior.py", "experiments/growth/aquilamoe.py",
           "experiments/science/infinite_compute.py", "experiments/science/fine_line.py", "experiments/pareto.py"]

def _harness_imports(tree: ast.Module) -> set[str]:
    return {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "mosaiclab.experiment" for a in n.names}

def _called(tree: ast.Module) -> set[str]:
    "Names of every function called (`f(...)` and `x.f(...)`)."
    return {n.func.id if isinstance(n.func, ast.Name) else n.func.attr for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))}

@pytest.mark.parametrize("script", SCRIPTS)
def test_script_uses_the_harness(script):
    src = (ROOT / script).read_text()
    tree = ast.parse(src)
    assert {"experiment_parser", "provenance", "write_results"} <= _harness_imports(tree), f"{script}: import the harness"
    assert {"experiment_parser", "provenance", "write_results"} <= _called(tree), f"{script}: call the harness"
    assert "ArgumentParser(" not in src, f"{script}: builds its own argparse.ArgumentParser"
    assert "git_commit" not in src and "hardware_info" not in src, f"{script}: provenance is the harness's job"
    assert "stdev" not in src, f"{script}: use mosaiclab.experiment.mean_std for statistics over seeds"
    # no private helpers from library modules (aggregation goes through mean_std)
    private = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("mosaiclab")
               for a in n.names if a.name.startswith("_")]
    assert not private, f"{script}: imports private helpers {private}"

@pytest.mark.parametrize("script", SCRIPTS)
def test_docstring_shows_rerun_and_quick(script):
    doc = ast.get_docstring(ast.parse((ROOT / script).read_text()))
    assert doc and doc.splitlines()[0].strip(), f"{script}: the first docstring line is the description"
    assert f"python {script}" in doc and "--quick" in doc, f"{script}: show the rerun command and a --quick example"
