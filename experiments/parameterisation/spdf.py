"""SPDF at lab scale: pretrain a small MosaicBERT (MLM, bundled corpus) at 0%, 50% and 75% static uniform sparsity with
everything else equal, release the masks, fine-tune densely on an SST-2 subset for several seeds. Records pretraining
validation loss, pretraining FLOPs computed from the masks, and the fine-tuned accuracy.

    python experiments/parameterisation/spdf.py                # writes results/parameterisation/spdf/
    python experiments/parameterisation/spdf.py --quick        # a smoke run

The chapter nbs/parameterisation/03_spdf.ipynb plots results/parameterisation/spdf/results.json.
"""
import argparse, json, shutil, statistics, sys, time
from pathlib import Path
import torch
ROOT = Path(__file__).resolve().parent.parent.parent
from mosaiclab.train import TrainConfig, pretrain, read_metrics
from mosaiclab.model import MosaicBertForMaskedLM
from mosaiclab.parameterisation.spdf import sparsify, release_masks, mask_stats, sparse_training_flops_per_token
from mosaiclab.finetune import FinetuneConfig, finetune, load_for_finetuning
from mosaiclab.bench import hardware_info, git_commit

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.5, 0.75])
    ap.add_argument("--allocation", default="uniform", choices=["uniform", "erdos_renyi"])
    ap.add_argument("--steps", type=int, default=300, help="pretraining steps")
    ap.add_argument("--seed", type=int, default=17, help="pretraining seed (and mask seed)")
    ap.add_argument("--ft-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--ft-samples", type=int, default=2000)
    ap.add_argument("--ft-epochs", type=float, default=2)
    ap.add_argument("--ft-lr", type=float, default=2e-4)
    ap.add_argument("--d-model", type=int, default=128, help="encoder width (d_ff = 2 x d_model, 2 layers, 2 heads)")
    ap.add_argument("--ft-eval-samples", type=int, default=None, help="validation examples scored (None: all)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "results" / "parameterisation" / "spdf"))
    a = ap.parse_args()
    if a.quick: a.steps, a.ft_seeds, a.ft_samples, a.ft_epochs = 20, [0], 200, 1
    torch.set_num_threads(1)
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    over = {"model.d_model": a.d_model, "model.n_layers": 2, "model.n_heads": 2, "model.d_ff": 2 * a.d_model, "data.seq_len": 64,
            "max_steps": a.steps, "eval_every": max(a.steps // 4, 1), "checkpoint_every": 0, "max_minutes": None,
            "precision": "fp32", "eval_samples": 128, "log_every": 10, "seed": a.seed}
    ft_cfg = FinetuneConfig.lab(a.task).replace(max_len=64, max_train_samples=a.ft_samples, epochs=a.ft_epochs, lr=a.ft_lr,
                                                max_eval_samples=a.ft_eval_samples, precision="fp32")
    t0 = time.time()
    runs = []
    for s in a.sparsities:
        cfg = TrainConfig.lab().with_overrides(over)
        built = {}
        def model_fn(mcfg, s=s, built=built):
            m = MosaicBertForMaskedLM(mcfg)
            if s > 0: sparsify(m, s, a.allocation, seed=a.seed)
            built["model"] = m
            return m
        print(f"== pretraining at sparsity {s:.0%}", flush=True)
        tp = time.time()
        summary = pretrain(cfg, work / f"s{int(s * 100)}", model_fn=model_fn, progress=False)
        pre_seconds = time.time() - tp
        model = built["model"]
        st = mask_stats(model)
        tokens = cfg.max_steps * cfg.global_batch * cfg.data.seq_len   # upper bound: every sequence full length
        fpt = sparse_training_flops_per_token(model, cfg.model, cfg.data.seq_len, cfg.mlm_probability)
        fpt_dense = sparse_training_flops_per_token(MosaicBertForMaskedLM(cfg.model), cfg.model, cfg.data.seq_len, cfg.mlm_probability)
        # the defining property, checked on the trained model: masked weights are still exact zeros
        zeros_ok = all(bool((m.weight[~m.mask] == 0).all()) for m in model.modules() if hasattr(m, "mask") and m.sparse)
        release_masks(model)
        ft = []
        for fs in a.ft_seeds:
            clf, _ = load_for_finetuning(model, a.task)          # a dense classifier; masked weights start at zero
            r = finetune(clf, a.task, ft_cfg.replace(seed=fs), progress=False)
            ft.append({"seed": fs, "score": r["score"], "metrics": r["metrics"], "steps": r["steps"], "train_seconds": r["train_seconds"]})
            print(f"   fine-tune seed {fs}: {a.task} score {r['score']:.1f}", flush=True)
        recs = read_metrics(work / f"s{int(s * 100)}")
        runs.append({"sparsity": s, "mask_stats": st, "masked_weights_stayed_zero": zeros_ok,
                     "flops_per_token": fpt, "dense_flops_per_token": fpt_dense, "pretrain_tokens": tokens,
                     "pretrain_flops": fpt * tokens, "pretrain_seconds": pre_seconds, "summary": summary,
                     "eval": [r for r in recs if r["kind"] == "eval"], "finetune": ft})
    sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0
    dense_flops = next((r["pretrain_flops"] for r in runs if r["sparsity"] == 0), runs[0]["dense_flops_per_token"] * runs[0]["pretrain_tokens"])
    summ = [{"sparsity": r["sparsity"], "pretrain_flops": r["pretrain_flops"], "flops_ratio": r["pretrain_flops"] / dense_flops,
             "eval_loss": r["summary"]["eval_loss"], "eval_accuracy": r["summary"]["eval_accuracy"],
             "score_mean": statistics.mean(f["score"] for f in r["finetune"]), "score_std": sd([f["score"] for f in r["finetune"]]),
             "scores": [f["score"] for f in r["finetune"]], "n_seeds": len(r["finetune"])} for r in runs]
    result = {"experiment": "spdf", "command": " ".join(["python experiments/parameterisation/spdf.py"] + sys.argv[1:]),
              "commit": git_commit(ROOT), "hardware": hardware_info("cpu"), "wall_seconds": time.time() - t0,
              "task": a.task, "config": {"pretrain": cfg.to_dict(), "finetune": ft_cfg.to_dict(), "allocation": a.allocation,
                                         "sparsities": a.sparsities, "ft_seeds": a.ft_seeds},
              "summary": summ, "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    shutil.rmtree(work)
    for r in summ:
        print(f"sparsity {r['sparsity']:.0%}: FLOPs {r['flops_ratio']:.0%} of dense, MLM loss {r['eval_loss']:.3f}, "
              f"{a.task} {r['score_mean']:.1f} +- {r['score_std']:.1f}")

if __name__ == "__main__": main()
