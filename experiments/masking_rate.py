"""15% vs 30% masking at lab scale: pretrain the lab MosaicBERT at each rate, same steps and seed, and
compare validation MLM loss and accuracy (always measured at 15% masking, as the recipe evaluates) and, with
--finetune, the lab suite after fine-tuning each final checkpoint (one fine-tuning seed per pretraining seed, the
recipe of experiments/finetune_lab.py), so the rate is judged downstream too.

    python experiments/masking_rate.py --seeds 17 18 19 --steps 240 --eval-every 40 --finetune   # the committed run
    python experiments/masking_rate.py --quick --out /tmp/mr           # a smoke run: a tiny model, a few steps

The chapter nbs/mosaicbert/07_mlm.ipynb plots results/masking_rate/results.json.
"""
import shutil
from pathlib import Path
import torch
ROOT = Path(__file__).resolve().parents[1]
from mosaiclab.train import TrainConfig, pretrain, read_metrics
from mosaiclab.experiment import experiment_parser, lab_overrides, provenance, require_complete, write_results
from mosaiclab.finetune import run_suite

def main():
    ap = experiment_parser(__doc__, seeds=(17,), out=ROOT / "results" / "masking_rate")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.15, 0.30])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--finetune", action="store_true", help="also fine-tune each final checkpoint on the lab suite")
    ap.add_argument("--ft-seed", type=int, default=19, help="the fine-tuning seed (the same for every checkpoint)")
    ap.add_argument("--max-train-samples", type=int, default=2000)
    ap.add_argument("--epochs", type=float, default=2)
    a = ap.parse_args()
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    # the full run is the lab preset itself (its model, batch, sequence length and precision), only shorter and without checkpoints
    over = {"max_steps": a.steps, "eval_every": a.eval_every, "checkpoint_every": 0, "max_minutes": None, "log_every": 5}
    if a.quick:
        a.steps, a.seeds = 10, a.seeds[:1]
        over = lab_overrides(steps=a.steps, evals=2, eval_samples=64, log_every=5)
    runs = []
    for seed in a.seeds:
        for rate in a.rates:
            cfg = TrainConfig.lab().with_overrides({**over, "mlm_probability": rate, "seed": seed})
            run = work / f"p{int(rate * 100)}-seed{seed}"
            print(f"== masking {rate:.0%}, seed {seed}", flush=True)
            summary = require_complete(pretrain(cfg, run, progress=True), str(run))
            recs = read_metrics(run)
            suite = None
            if a.finetune:
                ft = {"max_train_samples": a.max_train_samples if not a.quick else 64, "epochs": a.epochs if not a.quick else 1,
                      **({"max_eval_samples": 64} if a.quick else {})}
                r = run_suite(run / "model", "lab", seeds=[a.ft_seed], overrides=ft, progress=False,
                              label=f"masking {rate:.0%}, pretraining seed {seed}")
                suite = {"summary": r["summary"], "runs": r["runs"], "overrides": ft}
                print(f"   lab suite average {r['summary']['average']:.2f}", flush=True)
            runs.append({"mlm_probability": rate, "seed": seed, "summary": summary, "lab_suite": suite,
                         "eval": [r for r in recs if r["kind"] == "eval"],
                         "train": [{k: r[k] for k in ("step", "loss", "accuracy", "train_seconds")} for r in recs if r["kind"] == "train"],
                         "config": cfg.to_dict()})
    write_results(out, "masking_rate", prov, runs=runs)
    shutil.rmtree(work)  # the checkpoints are not part of the result
    for r in runs:
        print(f"masking {r['mlm_probability']:.0%} seed {r['seed']}: eval loss {r['summary']['eval_loss']:.3f}, "
              f"accuracy {r['summary']['eval_accuracy']:.3f} after {r['summary']['steps']} steps")

if __name__ == "__main__": main()
