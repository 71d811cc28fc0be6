"""Our GLUE recipe (`finetune.GLUE_RECIPE`, `GLUE_SEEDS`, `FROM_MNLI`, `FinetuneConfig.recipe`, the task specs) read against
a verbatim copy of the original's files in tests/fixtures/original_glue_recipe/ (mosaicml/examples, Apache-2.0; commit and
paths in each file's header). No value of the original is typed here: each is parsed out of its source text (the job
classes with `ast`, the yaml with PyYAML), so a retyping slip on our side cannot hide in the test too."""
import ast
from pathlib import Path
import pytest
import yaml
from mosaiclab.finetune import FROM_MNLI, GLUE_RECIPE, GLUE_SEEDS, GLUE_SUITE, FinetuneConfig, task_spec

FIX = Path(__file__).resolve().parent / "fixtures" / "original_glue_recipe"
# torchmetrics class names in the original's evaluators -> our METRICS keys (a naming map, not a value of the recipe)
METRIC = {"MulticlassAccuracy": "accuracy", "BinaryF1Score": "f1", "MatthewsCorrCoef": "matthews", "SpearmanCorrCoef": "spearman"}


def _kw(call: ast.Call) -> dict:
    return {k.arg: k.value for k in call.keywords}

def _jobs() -> dict[str, dict]:
    "Per task: the job's __init__ defaults, the super().__init__ task/labels, DecoupledAdamW's values, shuffle, metrics, precision override."
    tree = ast.parse((FIX / "finetuning_jobs.py.txt").read_text())
    out = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        init = next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
        a = init.args
        job = {"defaults": {x.arg: ast.literal_eval(d) for x, d in zip(a.args[len(a.args) - len(a.defaults):], a.defaults)},
               "evaluators": [], "precision": None, "class": cls.name}
        for node in ast.walk(init):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__":
                kw = _kw(node); job["task"] = ast.literal_eval(kw["task_name"]); job["num_labels"] = ast.literal_eval(kw["num_labels"])
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "DecoupledAdamW":
                job["optimizer"] = {k: ast.literal_eval(v) for k, v in _kw(node).items()}
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Evaluator":
                job["evaluators"].append([METRIC[m] for m in ast.literal_eval(_kw(node)["metric_names"])])
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                if [getattr(t, "id", None) for t in node.targets] == ["dataloader_kwargs"]:
                    d = {ast.literal_eval(k): v for k, v in zip(node.value.keys, node.value.values)}
                    job["shuffle"] = ast.literal_eval(d["shuffle"])
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute) and node.targets[0].attr == "precision" \
                    and isinstance(node.value, ast.Constant):
                job["precision"] = node.value.value   # a hard-coded override after super().__init__ (STS-B's fp32)
        out[job["task"]] = job
    return out

JOBS = _jobs()
YAML = yaml.safe_load((FIX / "mosaic-bert-base-uncased.yaml").read_text())
OURS = [t.split("/")[1] for t in GLUE_SUITE]


def test_the_fixture_is_the_original_and_parses_to_eight_jobs():
    for f in FIX.iterdir():
        head = f.read_text().splitlines()[:5]
        assert "COPIED VERBATIM from github.com/mosaicml/examples, commit daddaeff7a535273ff984b0134da4839c70a45b3" in head[0], f
        assert any("Apache" in line for line in head), f
    assert len(JOBS) == 8 and all(set(j) >= {"optimizer", "shuffle", "num_labels"} and j["evaluators"] for j in JOBS.values())


def test_our_glue_suite_is_the_originals_tasks():
    assert sorted(OURS) == sorted(JOBS) == sorted(YAML["tasks"])
    assert set(GLUE_RECIPE) - set(JOBS) == {"wnli"}   # ours, marked so in the chapter: finetuning_jobs.py has no WNLI job


@pytest.mark.parametrize("task", sorted(JOBS))
def test_recipe_row_matches_the_original_job(task):
    job, cfg, spec = JOBS[task], FinetuneConfig.recipe(f"glue/{task}"), task_spec(f"glue/{task}")
    opt, d = job["optimizer"], job["defaults"]
    assert (cfg.lr, cfg.weight_decay, cfg.betas, cfg.eps) == (opt["lr"], opt["weight_decay"], opt["betas"], opt["eps"])
    assert d["max_duration"].endswith("ep") and cfg.epochs == float(d["max_duration"][:-2])
    assert (cfg.batch_size, cfg.max_len) == (d["batch_size"], d["max_sequence_length"])
    assert cfg.shuffle == job["shuffle"]
    assert spec.num_labels == job["num_labels"]
    assert len(spec.eval_splits) == len(job["evaluators"]) and all(tuple(m) == spec.metrics for m in job["evaluators"])
    if job["precision"] is not None: assert cfg.precision == job["precision"]   # STS-B: fp32 whatever the yaml says
    else: assert YAML["precision"] == "bf16" and cfg.precision == "auto"       # ours: bf16 autocast only where bf16 matmuls are fast


def test_schedule_and_seeds_match_the_yaml():
    s, cfg = YAML["scheduler"], FinetuneConfig.recipe("glue/rte")
    assert s["name"] == "linear_decay_with_warmup" and s["t_warmup"].endswith("dur")
    assert (cfg.warmup_frac, cfg.final_lr_frac) == (float(s["t_warmup"][:-3]), s["alpha_f"])
    assert cfg.seed == YAML["default_seed"]
    for task, t in YAML["tasks"].items():
        assert GLUE_SEEDS.get(task) == (tuple(t["seeds"]) if "seeds" in t else None), task   # absent: the default seed only


def test_the_mnli_hand_off_is_the_originals_second_round():
    tree = ast.parse((FIX / "glue.py.txt").read_text())
    rounds = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.walk(tree)
              if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "").endswith("_task_names")}
    assert set(rounds) == {"round_1_task_names", "round_2_task_names"}
    assert {f"glue/{t}" for t in rounds["round_2_task_names"]} == set(FROM_MNLI)
    assert rounds["round_1_task_names"] | rounds["round_2_task_names"] == set(OURS)
    assert "mnli" in rounds["round_1_task_names"]
