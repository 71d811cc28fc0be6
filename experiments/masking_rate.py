"""15% vs 30% masking at lab scale: pretrain the lab MosaicBERT at each rate, same steps and seed, and
compare validation MLM loss and accuracy (always measured at 15% masking, as the recipe evaluates).

    python experiments/masking_rate.py                      # writes results/masking_rate/
    python experiments/masking_rate.py --steps 40 --quick   # a smoke run

The chapter nbs/mosaicbert/07_mlm.ipynb plots results/masking_rate/results.json.
"""
import argparse, json, shutil, sys, time
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
from mosaiclab.train import TrainConfig, pretrain, read_metrics
from mosaiclab.bench import hardware_info, git_commit

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.15, 0.30])
    ap.add_argument("--seeds", type=int, nargs="+", default=[17])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--quick", action="store_true", help="a tiny model, for a smoke test")
    ap.add_argument("--out", default=str(ROOT / "results" / "masking_rate"))
    a = ap.parse_args()
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    over = {"max_steps": a.steps, "eval_every": a.eval_every, "checkpoint_every": 0, "max_minutes": None, "log_every": 5}
    if a.quick: over.update({"model.d_model": 64, "model.n_layers": 2, "model.n_heads": 2, "model.d_ff": 128, "eval_samples": 64})
    runs = []
    t0 = time.time()
    for seed in a.seeds:
        for rate in a.rates:
            cfg = TrainConfig.lab().with_overrides({**over, "mlm_probability": rate, "seed": seed})
            run = work / f"p{int(rate * 100)}-seed{seed}"
            print(f"== masking {rate:.0%}, seed {seed}", flush=True)
            summary = pretrain(cfg, run, progress=True)
            recs = read_metrics(run)
            runs.append({"mlm_probability": rate, "seed": seed, "summary": summary,
                         "eval": [r for r in recs if r["kind"] == "eval"],
                         "train": [{k: r[k] for k in ("step", "loss", "accuracy", "train_seconds")} for r in recs if r["kind"] == "train"],
                         "config": cfg.to_dict()})
    result = {"experiment": "masking_rate", "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
              "commit": git_commit(ROOT), "hardware": hardware_info("cpu"), "wall_seconds": time.time() - t0, "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    shutil.rmtree(work)  # the checkpoints are not part of the result
    for r in runs:
        print(f"masking {r['mlm_probability']:.0%} seed {r['seed']}: eval loss {r['summary']['eval_loss']:.3f}, "
              f"accuracy {r['summary']['eval_accuracy']:.3f} after {r['summary']['steps']} steps")

if __name__ == "__main__": main()
