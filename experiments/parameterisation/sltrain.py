"""SLTrain at lab scale: pretrain a small MosaicBERT with dense, pure low-rank and sparse+low-rank encoder Linear layers,
the last two at a matched parameter count, and measure validation MLM loss, parameters and optimizer-state memory.

    python experiments/parameterisation/sltrain.py                 # writes results/parameterisation/sltrain/
    python experiments/parameterisation/sltrain.py --quick --out /tmp/sl     # a smoke run (a few steps, one seed)

The chapter nbs/parameterisation/01_sltrain.ipynb reads results/parameterisation/sltrain/: the one results.json a run
writes, or one file per separate run in subfolders (as committed).
"""
import shutil, time
from pathlib import Path
import torch
from torch import nn
ROOT = Path(__file__).resolve().parents[2]
from mosaiclab.train import TrainConfig, pretrain, read_metrics, make_optimizer
from mosaiclab.experiment import experiment_parser, lab_overrides, mean_std, provenance, require_complete, write_results
from mosaiclab.model import MosaicBertForMaskedLM
from mosaiclab.parameterisation.linears import replace_linears
from mosaiclab.parameterisation.sltrain import SparsePlusLowRankLinear, sltrain_mlm, matched_rank, memory_report, encoder_linear_memory
from mosaiclab.parameterisation.lowrank import LowRankLinear


@torch.no_grad()
def spectra(model, layer: str) -> dict:
    "Singular values of one encoder weight: W, and for SLTrain its low-rank and sparse parts."
    m = model.get_submodule(layer)
    sv = lambda W: torch.linalg.svdvals(W.float()).tolist()
    if isinstance(m, SparsePlusLowRankLinear): return {"W": sv(m.weight()), "low_rank": sv(m.low_rank()), "sparse": sv(m.sparse())}
    if isinstance(m, LowRankLinear): return {"W": sv(m.weight())}
    return {"W": sv(m.weight)}

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1), out=ROOT / "results" / "parameterisation" / "sltrain")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--alpha", type=float, default=32.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    a = ap.parse_args()
    if a.quick: a.steps, a.seeds = 4, a.seeds[:1]
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    over = lab_overrides(d_model=a.d_model, batch=a.batch, steps=a.steps, lr=a.lr)
    r, d, alpha, D = a.rank, a.density, a.alpha, a.d_model
    def lowrank_mlm(c):
        m = MosaicBertForMaskedLM(c)
        replace_linears(m, lambda n, lin: LowRankLinear.like(lin, matched_rank(lin.in_features, lin.out_features, r, d), alpha))
        return m
    methods = {"full": MosaicBertForMaskedLM, "low-rank": lowrank_mlm, "sltrain": lambda c: sltrain_mlm(c, r, d, alpha)}
    runs = []
    for seed in a.seeds:
        for name, build in methods.items():
            cfg = TrainConfig.lab().with_overrides({**over, "seed": seed})
            held = {}
            def model_fn(c, build=build): held["model"] = build(c); return held["model"]
            def optimizer_fn(model, c): held["opt"], sched = make_optimizer(model, c); return held["opt"], sched
            run = work / f"{name}-seed{seed}"
            print(f"== {name}, seed {seed}", flush=True)
            t = time.time()
            summary = require_complete(pretrain(cfg, run, progress=False, model_fn=model_fn, optimizer_fn=optimizer_fn), str(run))
            model, opt = held["model"], held["opt"]
            recs = read_metrics(run)
            runs.append({"method": name, "seed": seed, "summary": summary, "wall_seconds": time.time() - t,
                         "memory": {**memory_report(model, opt), **encoder_linear_memory(model, opt)},
                         "spectra": spectra(model, "bert.layers.0.ffn.up") if seed == a.seeds[0] else None,
                         "eval": [e for e in recs if e["kind"] == "eval"],
                         "train": [{k: e[k] for k in ("step", "loss", "tokens_per_s")} for e in recs if e["kind"] == "train"]})
            print(f"   eval loss {summary['eval_loss']:.4f}, linear params {runs[-1]['memory']['linear_params']:,}, "
                  f"optimizer state {runs[-1]['memory']['optimizer_state_bytes'] / 2**20:.2f} MiB", flush=True)
    agg = {}
    for name in methods:
        ls = [x["summary"]["eval_loss"] for x in runs if x["method"] == name]
        m, sd, n = mean_std(ls)
        agg[name] = {"eval_loss_mean": m, "eval_loss_std": sd, "n": n}
    write_results(out, "sltrain", prov,
              config={"train_overrides": over, "rank": r, "density": d, "alpha": alpha, "seeds": a.seeds,
                         "low_rank_ranks": {"qkv": matched_rank(D, 3 * D, r, d), "attn.out": matched_rank(D, D, r, d),
                                            "ffn.up": matched_rank(D, 4 * D, r, d), "ffn.down": matched_rank(2 * D, D, r, d)}},
              summary=agg, runs=runs)
    shutil.rmtree(work)
    for k, v in agg.items(): print(f"{k}: {v['eval_loss_mean']:.4f} +- {v['eval_loss_std']:.4f} (n={v['n']})")

if __name__ == "__main__": main()
