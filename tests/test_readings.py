"""Numbers in prose come from results: every committed experiment has a chapter that reads it back.

For each experiment under results/ (results/<part>/<name> inside a book part, results/<name> for the spine) some
chapter must hold a "Reading of the results" section: a markdown heading with exactly that text, then, before the next
heading, a code cell that calls `load_results` on that experiment's files (so the numbers are printed from the file), and
a markdown verdict (reproduced / partly reproduced / not reproduced) that types no measured number by hand.
"""
import json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("parameterisation", "curation", "objectives", "growth", "transfer", "science")
HEADING = re.compile(r"^#{2,3}\s+Reading of the results\s*$", re.M)
ANY_HEADING = re.compile(r"^#{1,3}\s", re.M)
VERDICT = re.compile(r"\*\*Verdict: (reproduced|partly reproduced|not reproduced)\b", re.I)
# a decimal, a percentage or a "± x" in prose is a measured number typed by hand; print it from the file instead
TYPED_NUMBER = re.compile(r"\d\.\d|\d\s?%|±\s?\d")

def experiments(root: Path = ROOT) -> list[str]:
    "Experiment ids of the committed results: `part/name` for a book part's, `name` for the spine's."
    ids = set()
    for f in (root / "results").rglob("*.json"):
        parts = f.relative_to(root / "results").parts
        ids.add("/".join(parts[:2]) if parts[0] in PARTS and len(parts) > 2 else parts[0])
    return sorted(ids)

def reading_sections(nb_path: Path) -> list[dict]:
    "Each 'Reading of the results' section of a notebook: the code cells' and the markdown cells' text up to the next heading."
    cells = json.loads(nb_path.read_text())["cells"]
    out = []
    for i, c in enumerate(cells):
        src = "".join(c["source"])
        if c["cell_type"] != "markdown" or not HEADING.search(src): continue
        sec = {"notebook": nb_path, "code": [], "markdown": [HEADING.split(src, 1)[1]]}
        for d in cells[i + 1:]:
            s = "".join(d["source"])
            if d["cell_type"] == "markdown" and ANY_HEADING.search(s): break
            sec["code" if d["cell_type"] == "code" else "markdown"].append(s)
        out.append(sec)
    return out

def loads(code: str) -> list[str]:
    "The first string argument of every `load_results(...)` call in `code`."
    return re.findall(r"load_results\(\s*f?[\"']([^\"']+)[\"']", code)

def _where(sec: dict) -> str:
    p = sec["notebook"]
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name

def cites(sec: dict, exp: str) -> bool:
    return any(p.removeprefix("results/") == exp or p.removeprefix("results/").startswith(exp + "/")
               for code in sec["code"] for p in loads(code))

SECTIONS = [s for nb in sorted((ROOT / "nbs").rglob("*.ipynb")) for s in reading_sections(nb)]

def test_the_check_sees_the_results_tree():
    exps = experiments()
    assert "pareto" in exps and "parameterisation/sltrain" in exps and "throughput" in exps
    assert not any(e.startswith("parameterisation/sltrain/") for e in exps)

@pytest.mark.parametrize("exp", experiments())
def test_every_experiment_has_a_reading(exp):
    secs = [s for s in SECTIONS if cites(s, exp)]
    assert secs, (f"results/{exp} has no chapter with a '## Reading of the results' section whose code calls "
                  f"load_results('{exp}...'): add one to the chapter that plots it")

@pytest.mark.parametrize("sec", SECTIONS, ids=_where)
def test_a_reading_prints_numbers_and_states_a_verdict(sec):
    where = _where(sec)
    assert any(loads(c) for c in sec["code"]), f"{where}: the reading prints no numbers from a results file (load_results)"
    prose = "\n".join(sec["markdown"])
    assert VERDICT.search(prose), f"{where}: the reading states no '**Verdict: reproduced / partly reproduced / not reproduced**'"
    if re.search(r"\*\*Verdict: (partly|not) reproduced", prose, re.I):
        assert re.search(r"follow-up", prose, re.I), f"{where}: a claim not (fully) reproduced needs the follow-up run that would test it"
    typed = TYPED_NUMBER.findall(prose)
    assert not typed, f"{where}: numbers typed in the reading's prose {typed}: print them from the results file instead"

def test_the_check_catches_a_missing_or_hand_typed_reading(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": ["## Reading of the results\n"]},
                    {"cell_type": "code", "source": ["r = load_results('pareto')\n"]},
                    {"cell_type": "markdown", "source": ["**Verdict: not reproduced.** The gap is 0.25 nats.\n"]},
                    {"cell_type": "markdown", "source": ["## Exercises\n"]},
                    {"cell_type": "code", "source": ["load_results('masking_rate')\n"]}]}
    p = tmp_path / "x.ipynb"; p.write_text(json.dumps(nb))
    sec, = reading_sections(p)
    assert cites(sec, "pareto") and not cites(sec, "masking_rate") and not cites(sec, "pare")
    with pytest.raises(AssertionError, match="follow-up"): test_a_reading_prints_numbers_and_states_a_verdict(sec)
    sec["markdown"][-1] += " A follow-up run at 10x the steps would tell."
    with pytest.raises(AssertionError, match="typed"): test_a_reading_prints_numbers_and_states_a_verdict(sec)
