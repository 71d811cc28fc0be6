"""Bone vs LoRA at lab scale: pretrain a small MosaicBERT (MLM, bundled corpus), then fine-tune it on an SST-2 subset with
full fine-tuning (reference), LoRA at the rank matching Bone's trainable parameters, and Bone (block-affine "bat" and
PEFT's default "bone"), same data, schedule and learning rate, several seeds. Records learning curves.

    python experiments/parameterisation/bone.py                # writes results/parameterisation/bone/
    python experiments/parameterisation/bone.py --quick --out /tmp/bone   # a smoke run

--seeds are the fine-tuning seeds (the spread the chapter reports); --pretrain-seed seeds the one pretraining run.

The chapter nbs/parameterisation/05_bone.ipynb plots results/parameterisation/bone/results.json.
"""
import argparse, shutil, statistics
from pathlib import Path
import torch
from torch import nn
ROOT = Path(__file__).resolve().parents[2]
from mosaiclab.train import TrainConfig, pretrain
from mosaiclab.experiment import experiment_parser, lab_overrides, mean_std, provenance, write_results
from mosaiclab.model import MosaicBertForMaskedLM
from mosaiclab.parameterisation.linears import encoder_linears
from mosaiclab.parameterisation.bone import (BoneLinear, LoRALinear, add_adapters, trainable_parameters, bone_parameters, lora_parameters,
                            match_lora_rank)
from mosaiclab.finetune import FinetuneConfig, finetune, load_for_finetuning

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1, 2), out=ROOT / "results" / "parameterisation" / "bone")
    ap.add_argument("--ft-seeds", dest="seeds", type=int, nargs="+", default=argparse.SUPPRESS, help=argparse.SUPPRESS)   # the old name of --seeds
    ap.add_argument("--r", type=int, default=8, help="Bone block size (sets the trainable budget)")
    ap.add_argument("--methods", nargs="+", default=["full", "lora", "bone-bat", "bone"])
    ap.add_argument("--steps", type=int, default=300, help="pretraining steps")
    ap.add_argument("--pretrain-seed", "--seed", type=int, default=17, help="pretraining seed")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--ft-samples", type=int, default=2000)
    ap.add_argument("--ft-epochs", type=float, default=2)
    ap.add_argument("--lr", type=float, default=1e-3, help="adapter learning rate (shared by LoRA and Bone)")
    ap.add_argument("--full-lr", type=float, default=2e-4, help="full fine-tuning learning rate (the lab recipe)")
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--d-model", type=int, default=128, help="encoder width (d_ff = 2 x d_model, 2 layers, 2 heads)")
    ap.add_argument("--ft-eval-samples", type=int, default=None, help="validation examples scored (None: all)")
    a = ap.parse_args()
    if a.quick: a.steps, a.seeds, a.ft_samples, a.ft_epochs, a.ft_eval_samples = 20, a.seeds[:1], 200, 1, a.ft_eval_samples or 128
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    # the lab preset's batch (32) and learning rate (1e-3); no evaluation during pretraining, as before the harness
    over = lab_overrides(d_model=a.d_model, seq_len=64, batch=32, steps=a.steps, lr=1e-3, eval_samples=128, eval_every=0, seed=a.pretrain_seed)
    cfg = TrainConfig.lab().with_overrides(over)
    built = {}
    def model_fn(mcfg):
        built["model"] = MosaicBertForMaskedLM(mcfg); return built["model"]
    print("== pretraining", flush=True)
    pre = pretrain(cfg, work / "pretrain", model_fn=model_fn, progress=False)
    mlm = built["model"]
    base_clf, _ = load_for_finetuning(mlm, a.task)
    shapes = [tuple(m.weight.shape) for n, m in base_clf.named_modules() if type(m) is nn.Linear and encoder_linears(n, m)]
    budget = bone_parameters(shapes, a.r)
    k = match_lora_rank(shapes, budget)
    # alpha=None: Hu et al.'s alpha = k (scale 1), the default when the committed run was made (now LORA_ALPHA)
    makers = {"lora": lambda n, lin: LoRALinear(lin, k, alpha=None), "bone-bat": lambda n, lin: BoneLinear(lin, a.r, "bat"),
              "bone": lambda n, lin: BoneLinear(lin, a.r, "bone")}
    ft_base = FinetuneConfig.lab(a.task).replace(max_len=64, max_train_samples=a.ft_samples, epochs=a.ft_epochs,
                                                 max_eval_samples=a.ft_eval_samples, precision="fp32")
    runs = []
    for method in a.methods:
        for fs in a.seeds:
            torch.manual_seed(1000 + fs)
            clf, _ = load_for_finetuning(mlm, a.task)      # a fresh classifier from the same pretrained encoder
            # the same head init for every method of one seed: copy the reference's pooler and classifier
            clf.load_state_dict({k_: v for k_, v in base_clf.state_dict().items() if k_.startswith(("classifier", "bert.pooler"))}, strict=False)
            adapter = 0
            if method != "full":
                add_adapters(clf, makers[method])
                adapter = trainable_parameters(clf) - trainable_parameters(clf, "classifier") - trainable_parameters(clf, "pooler")
            lr = a.full_lr if method == "full" else a.lr
            r = finetune(clf, a.task, ft_base.replace(seed=fs, lr=lr), progress=False, eval_every=a.eval_every)
            hist = r["history"]
            runs.append({"method": method, "seed": fs, "lr": lr, "trainable": trainable_parameters(clf), "adapter_parameters": adapter,
                         "score": r["score"], "loss": [c["loss"] for c in r["curve"]],
                         "eval_steps": [h["step"] for h in hist], "eval_scores": [100 * h["metrics"]["validation"]["accuracy"] for h in hist],
                         "train_seconds": r["train_seconds"]})
            print(f"  {method:9s} seed {fs}: trainable {runs[-1]['trainable']:,} (adapter {adapter:,}), score {r['score']:.1f}, "
                  f"{r['train_seconds']:.0f} s", flush=True)
    summary = {}
    for m in a.methods:
        rs = [r for r in runs if r["method"] == m]
        score_mean, score_std, n = mean_std([r["score"] for r in rs])
        summary[m] = {"trainable": rs[0]["trainable"], "adapter_parameters": rs[0]["adapter_parameters"], "lr": rs[0]["lr"],
                      "score_mean": score_mean, "score_std": score_std,
                      "final_loss_mean": mean_std([statistics.mean(r["loss"][-20:]) for r in rs])[0],
                      "auc_loss_mean": mean_std([statistics.mean(r["loss"]) for r in rs])[0], "n_seeds": n}
    write_results(out, "bone", prov, task=a.task,
                  config={"pretrain": cfg.to_dict(), "finetune": ft_base.to_dict(), "bone_r": a.r, "lora_rank": k,
                          "bone_budget": budget, "lora_budget": lora_parameters(shapes, k), "adapter_lr": a.lr, "full_lr": a.full_lr,
                          "ft_seeds": a.seeds, "pretrain_seed": a.pretrain_seed, "layer_shapes": shapes, "train_overrides": over},
                  pretrain={"eval_loss": pre.get("eval_loss"), "eval_accuracy": pre.get("eval_accuracy")},
                  summary=summary, runs=runs)
    shutil.rmtree(work)
    for m, s in summary.items():
        print(f"{m:9s} trainable {s['trainable']:,}: {a.task} {s['score_mean']:.1f} +- {s['score_std']:.1f}, late loss {s['final_loss_mean']:.3f}")

if __name__ == "__main__": main()
