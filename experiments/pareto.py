"""MosaicBERT vs the BERT baseline at lab scale: quality against wall-clock for several budgets and seeds (the paper's
Figure 1, on a 2-core CPU).

Each (model, budget, seed) is its own pretraining run with its own warmup/decay schedule (as the paper's points are),
evaluated on validation MLM loss (15% masking for both) and fine-tuned on the lab suite. Wall-clock is measured two ways:
the runs' own training seconds, and steps x the step time of each model measured side by side in one interleaved
benchmark (robust on a shared, noisy machine; the figure uses it and says so).

    python experiments/pareto.py --threads 2                # writes results/pareto/results.json (all budgets and seeds)
    python experiments/pareto.py --append --budgets 640     # adds points to it (same configs, its step-time calibration)
    python experiments/pareto.py --quick --out /tmp/pareto  # a smoke run (tiny model, two budgets, one seed)

Each point's checkpoint is fine-tuned on the lab suite with the recipe of experiments/finetune_lab.py (2,000 training
examples per task, 2 epochs, the whole validation split), one fine-tuning seed per pretraining seed; the file's
"commands" list every invocation that wrote it (--append adds budgets or seeds).

The chapter nbs/mosaicbert/12_pareto.ipynb plots the committed results.
"""
import json, shutil
from pathlib import Path
import torch
ROOT = Path(__file__).resolve().parent.parent
from mosaiclab.train import TrainConfig, pretrain, read_metrics
from mosaiclab.bench import Contender, measure
from mosaiclab.experiment import experiment_parser, lab_overrides, provenance, require_complete, write_results
from mosaiclab.data import PretrainingStream
from mosaiclab.data import load_tokenizer_for
from mosaiclab.mlm import MLMCollator
from mosaiclab.model import MosaicBertForMaskedLM, from_pretrained
from mosaiclab.finetune import run_suite

MODELS = {"MosaicBERT": TrainConfig.lab, "BERT baseline": TrainConfig.lab_bert}

def configs(a) -> dict[str, TrainConfig]:
    lab = TrainConfig.lab()   # both presets share its data, batch, lr and schedule; every point sets its own max_steps
    over = lab_overrides(d_model=a.d_model, n_layers=a.n_layers, n_heads=a.n_heads, seq_len=lab.data.seq_len, batch=lab.global_batch,
                         steps=lab.max_steps, lr=lab.lr, evals=lab.max_steps // lab.eval_every, eval_samples=a.eval_samples,
                         **{"model.d_ff": a.d_ff})
    return {k: f().with_overrides(over) for k, f in MODELS.items()}

def step_seconds(cfgs: dict[str, TrainConfig], a) -> dict:
    "Median seconds per optimizer step of each model, measured side by side on the same real-length batches."
    rows, contenders = {}, []
    for k, cfg in cfgs.items():
        torch.manual_seed(0)
        contenders.append(Contender(k, k, MosaicBertForMaskedLM(cfg.model), cfg.model))
        # the batches the runs see: the same stream, each model's own masking rate
        tok = load_tokenizer_for(cfg.data)
        stream = PretrainingStream(cfg.data, "train", seed=0)
        col = MLMCollator.from_tokenizer(tok, mlm_probability=cfg.mlm_probability, seed=0)
        rows[k] = [col(stream.batch(i, cfg.global_batch)) for i in range(4)]
    out = {}
    # interleave: measure() runs every contender on the same batches per round; masks differ by rate only
    res = []
    for r in range(a.bench_repeats):
        for c in (contenders if r % 2 == 0 else contenders[::-1]):
            res += [dict(row, round=r) for row in measure([c], rows[c.key], ("fp32",), warmup=1, steps=2, repeats=1, log=None)]
    for k in cfgs:
        xs = sorted(x["step_s"] for x in res if x["key"] == k)
        out[k] = {"median": xs[len(xs) // 2], "all": xs}
    return out

def main():
    ap = experiment_parser(__doc__, seeds=(17, 18, 19), out=ROOT / "results" / "pareto")
    ap.add_argument("--budgets", type=int, nargs="+", default=[60, 120, 240, 480], help="optimizer steps")
    ap.add_argument("--d-model", type=int, default=128); ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--n-heads", type=int, default=4); ap.add_argument("--d-ff", type=int, default=512)
    ap.add_argument("--eval-samples", type=int, default=256)
    ap.add_argument("--bench-repeats", type=int, default=6)
    ap.add_argument("--ft-train", type=int, default=2000, help="fine-tuning subset per lab task (0: skip fine-tuning)")
    ap.add_argument("--ft-epochs", type=float, default=2)
    ap.add_argument("--ft-seeds", type=int, default=1)
    ap.add_argument("--append", action="store_true", help="add points to an existing results.json (same configs)")
    a = ap.parse_args()
    if a.quick:
        a.budgets, a.seeds, a.d_model, a.n_layers, a.n_heads, a.d_ff = [4, 8], a.seeds[:1], 32, 2, 2, 64
        a.eval_samples, a.bench_repeats, a.ft_train, a.ft_epochs = 32, 2, 32, 1
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    cfgs = configs(a)
    if not (a.append and (out / "results.json").exists()):
        print("== step time, side by side", flush=True)
        steps = step_seconds(cfgs, a)
        print(json.dumps({k: v["median"] for k, v in steps.items()}), flush=True)
    points, commands = [], []
    if a.append and (out / "results.json").exists():
        prev = json.loads((out / "results.json").read_text())
        if prev["configs"] != json.loads(json.dumps({k: c.to_dict() for k, c in cfgs.items()})): raise SystemExit("--append: the configs differ from the existing results")
        points, commands = prev["points"], prev.get("commands", [prev["command"]])
        for q in points: q.setdefault("commit", prev["commit"])   # points from before per-point commits: the file's last writer made them
        steps = prev["step_seconds"]   # one calibration for every point of the figure
        a.budgets, a.seeds = sorted(set(prev["budgets"]) | set(a.budgets)), sorted(set(prev["seeds"]) | set(a.seeds))
    done = {(p["model"], p["budget_steps"], p["seed"]) for p in points}
    ft_over = {"max_train_samples": a.ft_train, "epochs": a.ft_epochs, **({"max_eval_samples": 64} if a.quick else {})}
    for seed in a.seeds:
        for budget in a.budgets:
            for name, base in cfgs.items():
                if (name, budget, seed) in done: continue
                cfg = base.with_overrides({"max_steps": budget, "seed": seed, "eval_every": 0})
                run = work / f"{name.split()[0]}-{budget}-s{seed}"
                print(f"== {name}, {budget} steps, seed {seed}", flush=True)
                summary = require_complete(pretrain(cfg, run, progress=False), str(run))
                point = {"model": name, "budget_steps": budget, "seed": seed, "eval_loss": summary["eval_loss"],
                         "eval_accuracy": summary["eval_accuracy"], "train_seconds": summary["train_seconds"],
                         "calibrated_seconds": budget * steps[name]["median"], "commit": prov["commit"]}
                if a.ft_train:
                    ft = run_suite(run, "lab", seeds=a.ft_seeds, progress=False, label=f"{name} {budget}", overrides=ft_over)
                    point["lab_suite"] = ft["summary"]["average"]
                    point["lab_tasks"] = {t: v["score_mean"] for t, v in ft["summary"]["tasks"].items()}
                    # what each fine-tune predicted: a one-class run is visible (tests/test_constant_predictor.py)
                    point["lab_runs"] = [{k: r[k] for k in ("task", "seed", "score", "pred_counts")} for r in ft["runs"]]
                print(json.dumps(point), flush=True)
                points.append(point)
                shutil.rmtree(run)
                write_results(out, "pareto", prov,   # after every point: nothing lost
                    commands=commands + [prov["command"]],
                    configs={k: c.to_dict() for k, c in cfgs.items()}, step_seconds=steps,
                    budgets=a.budgets, seeds=a.seeds, torch_threads=torch.get_num_threads(),
                    finetune={**ft_over, "seeds": a.ft_seeds},
                    points=points)
    shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__": main()
