"""The low-rank pretraining benchmark at lab scale: full-rank AdamW against low-rank factors (with and without weight
refactorization and momentum reset), ReLoRA, GaLore, Fira and SLTrain, all at the same rank; validation MLM loss and
measured memory (parameters, optimizer state) of every method.

    python experiments/parameterisation/lowrank.py                  # writes results/parameterisation/lowrank/
    python experiments/parameterisation/lowrank.py --quick --out /tmp/lr     # a smoke run (a few steps, one seed)

The chapter nbs/parameterisation/02_lowrank.ipynb reads results/parameterisation/lowrank/: the one results.json a run
writes, or one file per separate run in subfolders (as committed).
"""
import shutil, time
from pathlib import Path
import torch
from torch import nn
ROOT = Path(__file__).resolve().parents[2]
from mosaiclab.train import TrainConfig, pretrain, read_metrics, make_optimizer
from mosaiclab.experiment import experiment_parser, lab_overrides, mean_std, provenance, write_results
from mosaiclab.model import MosaicBertForMaskedLM
from mosaiclab.parameterisation.sltrain import SparsePlusLowRankLinear, sltrain_mlm, memory_report, encoder_linear_memory
from mosaiclab.parameterisation.lowrank import LowRankLinear, ReLoRALinear, Restarts, lowrank_mlm, relora_mlm, galore_optimizer_fn


def main():
    ap = experiment_parser(__doc__, seeds=(0,), out=ROOT / "results" / "parameterisation" / "lowrank")
    ap.add_argument("--methods", nargs="+", default=None, help="a subset of the methods, names without spaces (default: all)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--every", type=int, default=50, help="steps between restarts / GaLore subspace updates")
    ap.add_argument("--density", type=float, default=0.05, help="SLTrain's sparse density")
    ap.add_argument("--lr", type=float, default=2e-3)
    a = ap.parse_args()
    if a.quick: a.steps, a.seeds, a.every = 4, a.seeds[:1], 2
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    over = lab_overrides(d_model=a.d_model, batch=a.batch, steps=a.steps, lr=a.lr)
    r, T = a.rank, a.every
    # name -> (model_fn, restarts or None, optimizer_fn or None)
    methods = {
        "full": (MosaicBertForMaskedLM, None, None),
        "low-rank": (lambda c: lowrank_mlm(c, r), None, None),
        "low-rank + refactor": (lambda c: lowrank_mlm(c, r), lambda: Restarts(T, refactorize=True), None),
        "low-rank + reset": (lambda c: lowrank_mlm(c, r), lambda: Restarts(T, reset_momentum=True), None),
        "low-rank + both": (lambda c: lowrank_mlm(c, r), lambda: Restarts(T, refactorize=True, reset_momentum=True), None),
        "relora": (lambda c: relora_mlm(c, r), lambda: Restarts(T, merge=True, reset_momentum=True), None),
        # GaLore's recipe (lr 0.01, scale 0.25) is an effective 0.0025 on the projected matrices: scale 1 at our shared lr
        "galore": (MosaicBertForMaskedLM, None, galore_optimizer_fn(r, update_proj_gap=T, scale=1.0)),
        "fira": (MosaicBertForMaskedLM, None, galore_optimizer_fn(r, update_proj_gap=T, scale=1.0, fira=True)),
        "sltrain": (lambda c: sltrain_mlm(c, r, a.density), None, None),
    }
    if a.methods:
        key = lambda k: k.replace(" ", "")
        unknown = set(a.methods) - {key(k) for k in methods}
        if unknown: ap.error(f"unknown method(s) {sorted(unknown)}; known: {[key(k) for k in methods]}")
        methods = {k: v for k, v in methods.items() if key(k) in a.methods}
    runs = []
    for seed in a.seeds:
        for name, (build, restarts, opt_fn) in methods.items():
            cfg = TrainConfig.lab().with_overrides({**over, "seed": seed})
            held = {}
            cb = restarts() if restarts else None
            def model_fn(c, build=build): held["model"] = build(c); return held["model"]
            def optimizer_fn(model, c, cb=cb, opt_fn=opt_fn):
                held["opt"], sched = (cb.optimizer_fn if cb else opt_fn or make_optimizer)(model, c); return held["opt"], sched
            run = work / f"{name.replace(' ', '').replace('+', '_')}-seed{seed}"
            print(f"== {name}, seed {seed}", flush=True)
            t = time.time()
            summary = pretrain(cfg, run, progress=False, model_fn=model_fn, optimizer_fn=optimizer_fn, callbacks=[cb] if cb else [])
            model, opt = held["model"], held["opt"]
            recs = read_metrics(run)
            runs.append({"method": name, "seed": seed, "summary": summary, "wall_seconds": time.time() - t,
                         "restarts": cb.restarts if cb else 0,
                         "memory": {**memory_report(model, opt), **encoder_linear_memory(model, opt)},
                         "eval": [e for e in recs if e["kind"] == "eval"],
                         "train": [{k: e[k] for k in ("step", "loss", "tokens_per_s")} for e in recs if e["kind"] == "train"]})
            m = runs[-1]["memory"]
            print(f"   eval loss {summary['eval_loss']:.4f}, linear params {m['linear_params']:,} ({m['linear_trainable']:,} trainable), "
                  f"linear optimizer state {m['linear_optimizer_state_bytes'] / 2**10:.0f} KiB", flush=True)
    agg = {}
    for name in methods:
        ls = [x["summary"]["eval_loss"] for x in runs if x["method"] == name]
        m, sd, n = mean_std(ls)
        agg[name] = {"eval_loss_mean": m, "eval_loss_std": sd, "n": n}
    write_results(out, "lowrank", prov,
              config={"train_overrides": over, "rank": r, "every": T, "recovery": 10, "density": a.density, "seeds": a.seeds,
                         "galore_scale": 1.0},
              summary=agg, runs=runs)
    shutil.rmtree(work)
    for k, v in agg.items(): print(f"{k}: {v['eval_loss_mean']:.4f} +- {v['eval_loss_std']:.4f} (n={v['n']})")

if __name__ == "__main__": main()
