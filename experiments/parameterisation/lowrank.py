"""The low-rank pretraining benchmark at lab scale: full-rank AdamW against low-rank factors (with and without weight
refactorization and momentum reset), ReLoRA, GaLore, Fira, SLTrain and SLTrain with both fixes (the official code's
configuration), all at the same rank; validation MLM loss and measured memory (parameters, optimizer state) of every method.

    python experiments/parameterisation/lowrank.py                  # writes results/parameterisation/lowrank/results.json
    python experiments/parameterisation/lowrank.py --quick --out /tmp/lr     # a smoke run (a few steps, one seed)

Restarts (refactorization, momentum reset, ReLoRA merges) happen every --every steps but never on the last one, so the
memory read at the end is the state each method carries while it trains. The chapter nbs/parameterisation/02_lowrank.ipynb
reads the one results.json.
"""
import shutil, time
from pathlib import Path
import torch
ROOT = Path(__file__).resolve().parents[2]
from mosaiclab.train import TrainConfig, pretrain, read_metrics, make_optimizer
from mosaiclab.experiment import experiment_parser, lab_overrides, mean_std, provenance, require_complete, write_results
from mosaiclab.model import MosaicBertForMaskedLM
from mosaiclab.parameterisation.sltrain import sltrain_mlm, memory_report, encoder_linear_memory
from mosaiclab.parameterisation.lowrank import Restarts, lowrank_mlm, relora_mlm, galore_optimizer_fn

RECOVERY = 10   # steps of LR recovery after a momentum reset (the benchmark's recovery_steps)


def benchmark_methods(rank: int, every: int, density: float) -> dict:
    "name -> (model_fn, a factory of the Restarts callback or None, optimizer_fn or None)."
    r, T = rank, every
    both = lambda: Restarts(T, refactorize=True, reset_momentum=True, recovery=RECOVERY)
    return {
        "full": (MosaicBertForMaskedLM, None, None),
        "low-rank": (lambda c: lowrank_mlm(c, r), None, None),
        "low-rank + refactor": (lambda c: lowrank_mlm(c, r), lambda: Restarts(T, refactorize=True), None),
        "low-rank + reset": (lambda c: lowrank_mlm(c, r), lambda: Restarts(T, reset_momentum=True, recovery=RECOVERY), None),
        "low-rank + both": (lambda c: lowrank_mlm(c, r), both, None),
        "relora": (lambda c: relora_mlm(c, r), lambda: Restarts(T, merge=True, reset_momentum=True, recovery=RECOVERY), None),
        # GaLore's recipe (lr 0.01, scale 0.25) is an effective 0.0025 on the projected matrices: scale 1 at our shared lr
        "galore": (MosaicBertForMaskedLM, None, galore_optimizer_fn(r, update_proj_gap=T, scale=1.0)),
        "fira": (MosaicBertForMaskedLM, None, galore_optimizer_fn(r, update_proj_gap=T, scale=1.0, fira=True)),
        "sltrain": (lambda c: sltrain_mlm(c, r, density), None, None),
        # what the official loop runs (--peft_model sltrain): SVD re-split of SLTrain's factors + optimizer rebuild
        "sltrain + both": (lambda c: sltrain_mlm(c, r, density), both, None),
    }


def train_method(name: str, spec: tuple, cfg: TrainConfig, run_dir: Path) -> dict:
    "Pretrain one method; its summary, restart steps, end-of-run memory (with the optimizer it trained with) and curves."
    build, restarts, opt_fn = spec
    held = {}
    cb = restarts() if restarts else None
    def model_fn(c): held["model"] = build(c); return held["model"]
    def optimizer_fn(model, c):
        held["opt"], sched = (cb.optimizer_fn if cb else opt_fn or make_optimizer)(model, c); return held["opt"], sched
    t = time.time()
    summary = require_complete(pretrain(cfg, run_dir, progress=False, model_fn=model_fn, optimizer_fn=optimizer_fn, callbacks=[cb] if cb else []), str(run_dir))
    recs = read_metrics(run_dir)
    return {"method": name, "seed": cfg.seed, "summary": summary, "wall_seconds": time.time() - t,
            "restart_steps": cb.steps if cb else [],
            "memory": {**memory_report(held["model"], held["opt"]), **encoder_linear_memory(held["model"], held["opt"])},
            "eval": [e for e in recs if e["kind"] == "eval"],
            "train": [{k: e[k] for k in ("step", "loss", "lr", "tokens_per_s")} for e in recs if e["kind"] == "train"]}


def main():
    ap = experiment_parser(__doc__, seeds=(0,), out=ROOT / "results" / "parameterisation" / "lowrank")
    ap.add_argument("--methods", nargs="+", default=None, help="a subset of the methods, names without spaces (default: all)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--every", type=int, default=200, help="steps between restarts / GaLore subspace updates (never on the last step)")
    ap.add_argument("--density", type=float, default=0.05, help="SLTrain's sparse density")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--evals", type=int, default=10, help="evaluations per run")
    a = ap.parse_args()
    if a.quick: a.steps, a.seeds, a.every = 5, a.seeds[:1], 2
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    over = lab_overrides(d_model=a.d_model, batch=a.batch, seq_len=a.seq_len, steps=a.steps, lr=a.lr, evals=a.evals)
    methods = benchmark_methods(a.rank, a.every, a.density)
    if a.methods:
        key = lambda k: k.replace(" ", "")
        unknown = set(a.methods) - {key(k) for k in methods}
        if unknown: ap.error(f"unknown method(s) {sorted(unknown)}; known: {[key(k) for k in methods]}")
        methods = {k: v for k, v in methods.items() if key(k) in a.methods}
    runs = []
    for seed in a.seeds:
        for name, spec in methods.items():
            cfg = TrainConfig.lab().with_overrides({**over, "seed": seed})
            print(f"== {name}, seed {seed}", flush=True)
            runs.append(train_method(name, spec, cfg, work / f"{name.replace(' ', '').replace('+', '_')}-seed{seed}"))
            x = runs[-1]; m = x["memory"]
            print(f"   eval loss {x['summary']['eval_loss']:.4f} in {x['wall_seconds']:.0f} s, restarts at {x['restart_steps']}, "
                  f"linear params {m['linear_params']:,} ({m['linear_trainable']:,} trainable), "
                  f"linear optimizer state {m['linear_optimizer_state_bytes'] / 2**10:.0f} KiB", flush=True)
    agg = {}
    for name in methods:
        m, sd, n = mean_std([x["summary"]["eval_loss"] for x in runs if x["method"] == name])
        agg[name] = {"eval_loss_mean": m, "eval_loss_std": sd, "n": n}
    write_results(out, "lowrank", prov,
                  config={"train_overrides": over, "rank": a.rank, "every": a.every, "recovery": RECOVERY, "density": a.density,
                          "seeds": a.seeds, "galore_scale": 1.0},
                  summary=agg, runs=runs)
    shutil.rmtree(work)
    for k, v in agg.items(): print(f"{k}: {v['eval_loss_mean']:.4f} +- {v['eval_loss_std']:.4f} (n={v['n']})")

if __name__ == "__main__": main()
