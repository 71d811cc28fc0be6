"""Every notebook passes `nbdev_test`, one pytest test per notebook so the runner reports counts."""
import subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.relative_to(ROOT / "nbs").as_posix() for p in (ROOT / "nbs").rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("_"))

def test_found_notebooks():
    assert "index.ipynb" in NOTEBOOKS and len(NOTEBOOKS) >= 5

@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook(nb):
    r = subprocess.run(["nbdev_test", "--path", f"nbs/{nb}", "--do_print"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"nbdev_test failed for {nb}:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}"
