"""lab-ref, the reference lab encoder: pretrain the lab MosaicBERT on the bundled corpus for about an hour on a 2-core CPU
and ship its weights (bf16 safetensors) with the package, so that chapters fine-tune or probe a pretrained encoder in a
second instead of pretraining their own for a few hundred steps.

    python experiments/lab_ref.py --threads 2        # writes mosaiclab/resources/models/lab-ref/ and results/lab_ref/
    python experiments/lab_ref.py --quick --out /tmp/lr --weights-out /tmp/lr/model   # a smoke run (a few steps)
    python experiments/lab_ref.py --threads 2 --run-dir RUN     # resumable: run it again with the same RUN to continue

    python experiments/lab_ref.py --fixed-eval       # only: evaluate the shipped weights on the fixed text (below)

The fixed text is the validation split of the first bundled corpus (git revision FIXED_REV), which the default
`mosaiclab pretrain` of issue 14 was measured on: the same 256 samples and masks at 15% masking, in fp32, so the
two losses compare directly (results/lab_ref/fixed_eval.json). Load it with `mosaiclab.finetune.lab_ref()` or `load_for_finetuning("lab-ref", task)`. The fine-tuning chapter
(nbs/mosaicbert/11_finetune.ipynb) reads results/lab_ref/results.json.
"""
import hashlib, json, shutil, subprocess, tempfile
from pathlib import Path
import torch
ROOT = Path(__file__).resolve().parents[1]
from mosaiclab.experiment import IncompleteRun, experiment_parser, provenance, require_complete, write_results
from mosaiclab.model import from_pretrained, save_pretrained
from mosaiclab.train import TrainConfig, evaluate_split, pretrain, read_metrics

FIXED_REV = "3bdc755"   # the last commit with the first corpus (2,820 train / 114 validation documents)
FIXED_FILE = "mosaiclab/resources/corpus/validation.jsonl.gz"

def fixed_text_eval(model_dir: Path, out: Path, prov: dict) -> dict:
    "Validation MLM loss of the model in `model_dir` on the first corpus's validation split, as the default pretrain evaluated it."
    with tempfile.TemporaryDirectory() as d:
        blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{FIXED_REV}:{FIXED_FILE}"], check=True, capture_output=True).stdout
        (Path(d) / "validation.jsonl.gz").write_bytes(blob)
        cfg = TrainConfig.lab().with_overrides({"data.source": d})   # eval_samples 256, seed 17, 15% masking: the default's
        model = from_pretrained(model_dir)   # fp32 copies of the shipped bf16 weights
        res = evaluate_split(model, cfg)     # eval_loss, eval_accuracy and the number of samples, in fp32
    rec = {**res, "eval_mlm_probability": cfg.eval_mlm_probability, "fixed_text": f"{FIXED_REV}:{FIXED_FILE}",
           "fixed_text_md5": hashlib.md5(blob).hexdigest(), "model": str(model_dir), "tokenizer": cfg.data.tokenizer}
    write_results(out, "lab_ref_fixed_eval", prov, filename="fixed_eval.json", **rec)
    print(f"fixed text: eval loss {res['eval_loss']:.4f}, accuracy {res['eval_accuracy']:.4f} on {res['samples']} samples")
    return rec


def main():
    ap = experiment_parser(__doc__, seeds=(17,), out=ROOT / "results" / "lab_ref")
    ap.add_argument("--steps", type=int, default=3000, help="optimizer steps (the schedule's length; ~1 s each on 2 cores in bf16)")
    ap.add_argument("--max-minutes", type=float, default=60.0, help="stop early (with a final checkpoint) after this long")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (a stopped run resumes from the last)")
    ap.add_argument("--eval-samples", type=int, default=512, help="validation samples per evaluation (15%% masking)")
    ap.add_argument("--weights-out", default=str(ROOT / "mosaiclab" / "resources" / "models" / "lab-ref"),
                    help="where the shipped model folder is written")
    ap.add_argument("--run-dir", default=None, help="the pretraining run folder (default: a 'run' folder inside --out, removed after)")
    ap.add_argument("--fixed-eval", action="store_true", help="only evaluate the shipped weights (--weights-out) on the fixed text")
    a = ap.parse_args()
    if a.fixed_eval:
        fixed_text_eval(Path(a.weights_out), Path(a.out), provenance(ROOT, allow_dirty=a.allow_dirty)); return
    if a.quick: a.steps, a.max_minutes, a.eval_samples = 6, 2.0, 32
    if len(a.seeds) != 1: ap.error("lab-ref is one model: pass one seed")
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out); run = Path(a.run_dir) if a.run_dir else out / "run"
    if run.exists() and not a.run_dir: shutil.rmtree(run)
    over = {"max_steps": a.steps, "max_minutes": a.max_minutes, "global_batch": a.batch, "micro_batch": a.batch, "lr": a.lr,
            "eval_every": max(1, a.steps // 11), "eval_samples": a.eval_samples, "checkpoint_every": a.checkpoint_every,
            "log_every": 20, "seed": a.seeds[0]}
    cfg = TrainConfig.lab().with_overrides(over)   # the lab MosaicBERT (d256, 4 layers), 30% masking, bf16 where native
    summary = pretrain(cfg, run, progress=not a.quick, resume=bool(a.run_dir) and (run / "checkpoints" / "latest").exists())
    try:   # interrupted (SIGTERM, NaN, ...): nothing is shipped; the time limit is part of lab-ref's recipe
        require_complete(summary, f"lab-ref ({run})", allowed=("max_steps", "max_minutes"))
    except IncompleteRun as e: raise SystemExit(f"{e}; here: run the same command again with --run-dir {run}") from None
    recs = read_metrics(run)

    # ship the final weights in bf16: half the bytes, and fp32 copies of them load bit-exactly into any model
    model = from_pretrained(run / "model").to(torch.bfloat16)
    dest = Path(a.weights_out)
    if dest.exists(): shutil.rmtree(dest)
    save_pretrained(model, dest)
    weights = dest / "model.safetensors"
    for f in dest.iterdir(): f.chmod(0o644)   # package data readable by everyone who installs the wheel
    write_results(out, "lab_ref", prov,
                  config=cfg.to_dict(), summary=summary,
                  weights={"path": str(weights.relative_to(ROOT)) if weights.is_relative_to(ROOT) else str(weights),
                           "bytes": weights.stat().st_size, "md5": hashlib.md5(weights.read_bytes()).hexdigest(), "dtype": "bfloat16"},
                  eval=[e for e in recs if e["kind"] == "eval"],
                  train=[{k: e.get(k) for k in ("step", "loss", "accuracy", "lr", "grad_norm", "tokens_per_s", "train_seconds")}
                         for e in recs if e["kind"] == "train"])
    if not a.run_dir: shutil.rmtree(run)
    fixed_text_eval(dest, out, prov)
    print(f"lab-ref: {summary.get('steps')} steps, eval loss {summary.get('eval_loss'):.4f}, weights {weights.stat().st_size / 2**20:.1f} MiB")

if __name__ == "__main__": main()
