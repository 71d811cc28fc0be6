"""SPDF at lab scale: pretrain a small MosaicBERT (MLM, bundled corpus) at 0%, 50% and 75% static uniform sparsity with
everything else equal, release the masks, fine-tune densely on an SST-2 subset for several seeds. A second pretraining
seed repeats the 0% and 75% arms (so the sparsity gap can be set against pretraining noise), and a random-init arm
fine-tunes the same architecture with the same recipe and no pretraining (does pretraining transfer at all?).
Records pretraining validation loss, pretraining FLOPs computed from the masks, and the fine-tuned accuracy.

--seeds are the fine-tuning seeds (the spread the chapter reports); --pretrain-seeds seed the pretraining runs and
their masks: the first one runs every sparsity, the others only --extra-seed-sparsities.

    python experiments/parameterisation/spdf.py                # writes results/parameterisation/spdf/
    python experiments/parameterisation/spdf.py --quick --out /tmp/spdf   # a smoke run

The chapter nbs/parameterisation/03_spdf.ipynb plots results/parameterisation/spdf/results.json.
"""
import argparse, shutil, time
from pathlib import Path
import torch
ROOT = Path(__file__).resolve().parents[2]
from mosaiclab.train import TrainConfig, pretrain, read_metrics, resolve_precision
from mosaiclab.experiment import experiment_parser, lab_overrides, mean_std, provenance, require_complete, write_results
from mosaiclab.model import MosaicBertForMaskedLM
from mosaiclab.parameterisation.spdf import sparsify, release_masks, mask_stats, sparse_training_flops_per_token
from mosaiclab.finetune import FinetuneConfig, finetune, load_for_finetuning

def fine_tunes(model, task, ft_cfg, seeds, label):
    "Dense fine-tunes of one pretrained (or random) model, one per seed, each from a fresh copy of its weights."
    ft = []
    for fs in seeds:
        clf, _ = load_for_finetuning(model, task)          # a dense classifier; masked weights start at zero
        r = finetune(clf, task, ft_cfg.replace(seed=fs), progress=False)
        ft.append({"seed": fs, "score": r["score"], "metrics": r["metrics"], "steps": r["steps"], "train_seconds": r["train_seconds"]})
        print(f"   {label}, fine-tune seed {fs}: {task} score {r['score']:.1f}", flush=True)
    return ft

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1, 2), out=ROOT / "results" / "parameterisation" / "spdf")
    ap.add_argument("--ft-seeds", dest="seeds", type=int, nargs="+", default=argparse.SUPPRESS, help=argparse.SUPPRESS)   # the old name of --seeds
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.5, 0.75])
    ap.add_argument("--allocation", default="uniform", choices=["uniform", "erdos_renyi"])
    ap.add_argument("--steps", type=int, default=600, help="pretraining steps")
    ap.add_argument("--pretrain-seeds", type=int, nargs="+", default=[17, 18], help="pretraining seeds (and mask seeds)")
    ap.add_argument("--extra-seed-sparsities", type=float, nargs="+", default=[0.0, 0.75],
                    help="the sparsities that the second and later pretraining seeds repeat")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--ft-samples", type=int, default=2000)
    ap.add_argument("--ft-epochs", type=float, default=2)
    ap.add_argument("--ft-lr", type=float, default=2e-4)
    ap.add_argument("--d-model", type=int, default=128, help="encoder width (d_ff = 2 x d_model, 2 layers, 2 heads)")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"], help="pretraining and fine-tuning precision")
    ap.add_argument("--ft-eval-samples", type=int, default=None, help="validation examples scored (None: all)")
    a = ap.parse_args()
    if a.quick: a.steps, a.seeds, a.ft_samples, a.ft_epochs, a.ft_eval_samples = 20, a.seeds[:1], 200, 1, a.ft_eval_samples or 128
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    # the lab preset's batch (32) and learning rate (1e-3); bf16 autocast where the CPU has it (weights stay fp32)
    over = lab_overrides(d_model=a.d_model, seq_len=64, batch=32, steps=a.steps, lr=1e-3, evals=6, eval_samples=128,
                         precision=a.precision, seed=a.pretrain_seeds[0])
    ft_cfg = FinetuneConfig.lab(a.task).replace(max_len=64, max_train_samples=a.ft_samples, epochs=a.ft_epochs, lr=a.ft_lr,
                                                max_eval_samples=a.ft_eval_samples, precision=a.precision)
    base = TrainConfig.lab().with_overrides(over)
    prec = resolve_precision(a.precision, torch.device("cpu"))
    # the control: the same architecture and fine-tune recipe, no pretraining (initialised as pretraining would start)
    torch.manual_seed(a.pretrain_seeds[0])
    print("== random init (no pretraining)", flush=True)
    random_ft = fine_tunes(MosaicBertForMaskedLM(base.model), a.task, ft_cfg, a.seeds, "random init")
    arms = [(s, ps) for ps in a.pretrain_seeds for s in (a.sparsities if ps == a.pretrain_seeds[0] else a.extra_seed_sparsities)]
    runs = []
    for s, ps in arms:
        cfg = base.with_overrides({"seed": ps})
        built = {}
        def model_fn(mcfg, s=s, ps=ps, built=built):
            m = MosaicBertForMaskedLM(mcfg)
            if s > 0: sparsify(m, s, a.allocation, seed=ps)
            built["model"] = m
            return m
        print(f"== pretraining at sparsity {s:.0%}, seed {ps}", flush=True)
        tp = time.time()
        name = f"s{int(s * 100)}_seed{ps}"
        summary = require_complete(pretrain(cfg, work / name, model_fn=model_fn, progress=False), str(work / name))
        pre_seconds = time.time() - tp
        model = built["model"]
        st = mask_stats(model)
        tokens = cfg.max_steps * cfg.global_batch * cfg.data.seq_len   # upper bound: every sequence full length
        fpt = sparse_training_flops_per_token(model, cfg.model, cfg.data.seq_len, cfg.mlm_probability)
        fpt_dense = sparse_training_flops_per_token(MosaicBertForMaskedLM(cfg.model), cfg.model, cfg.data.seq_len, cfg.mlm_probability)
        # the defining property, checked on the trained model: masked weights are still exact zeros
        zeros_ok = all(bool((m.weight[~m.mask] == 0).all()) for m in model.modules() if hasattr(m, "mask") and m.sparse)
        release_masks(model)
        ft = fine_tunes(model, a.task, ft_cfg, a.seeds, f"sparsity {s:.0%} seed {ps}")
        recs = read_metrics(work / name)
        runs.append({"sparsity": s, "pretrain_seed": ps, "mask_stats": st, "masked_weights_stayed_zero": zeros_ok,
                     "flops_per_token": fpt, "dense_flops_per_token": fpt_dense, "pretrain_tokens": tokens,
                     "pretrain_flops": fpt * tokens, "pretrain_seconds": pre_seconds, "summary": summary,
                     "eval": [r for r in recs if r["kind"] == "eval"], "finetune": ft})
    dense_flops = next((r["pretrain_flops"] for r in runs if r["sparsity"] == 0), runs[0]["dense_flops_per_token"] * runs[0]["pretrain_tokens"])
    summ = []
    for s in a.sparsities:
        rs = [r for r in runs if r["sparsity"] == s]
        per_seed = []
        for r in rs:
            m, sd, n = mean_std([f["score"] for f in r["finetune"]])
            per_seed.append({"pretrain_seed": r["pretrain_seed"], "eval_loss": r["summary"]["eval_loss"],
                             "eval_accuracy": r["summary"]["eval_accuracy"], "score_mean": m, "score_std": sd,
                             "scores": [f["score"] for f in r["finetune"]]})
        scores = [x for p in per_seed for x in p["scores"]]   # every (pretraining seed, fine-tuning seed) pair
        m, sd, n = mean_std(scores)
        summ.append({"sparsity": s, "pretrain_flops": rs[0]["pretrain_flops"], "flops_ratio": rs[0]["pretrain_flops"] / dense_flops,
                     "eval_loss": mean_std([p["eval_loss"] for p in per_seed])[0], "eval_accuracy": mean_std([p["eval_accuracy"] for p in per_seed])[0],
                     "score_mean": m, "score_std": sd, "scores": scores, "n_seeds": n,
                     "pretrain_seeds": [p["pretrain_seed"] for p in per_seed], "per_pretrain_seed": per_seed})
    rm, rsd, rn = mean_std([f["score"] for f in random_ft])
    random_init = {"score_mean": rm, "score_std": rsd, "n_seeds": rn, "scores": [f["score"] for f in random_ft], "finetune": random_ft,
                   "init_seed": a.pretrain_seeds[0]}
    write_results(out, "spdf", prov, task=a.task, precision=prec,
                  config={"pretrain": base.to_dict(), "finetune": ft_cfg.to_dict(), "allocation": a.allocation,
                          "sparsities": a.sparsities, "ft_seeds": a.seeds, "pretrain_seeds": a.pretrain_seeds,
                          "extra_seed_sparsities": a.extra_seed_sparsities, "train_overrides": over},
                  summary=summ, random_init=random_init, runs=runs)
    shutil.rmtree(work)
    print(f"random init: {a.task} {rm:.1f} +- {rsd:.1f}")
    for r in summ:
        print(f"sparsity {r['sparsity']:.0%}: FLOPs {r['flops_ratio']:.0%} of dense, MLM loss {r['eval_loss']:.3f}, "
              f"{a.task} {r['score_mean']:.1f} +- {r['score_std']:.1f} ({r['n_seeds']} fine-tunes over pretraining seeds {r['pretrain_seeds']})")

if __name__ == "__main__": main()
