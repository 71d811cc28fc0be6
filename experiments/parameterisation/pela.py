"""PELA on the shipped reference encoder: compress lab-ref's encoder Linear layers x2 and x3 by low-rank factors and
compare an SVD start with a random start, without and with an intermediate MLM stage, and with PELA's feature
distillation from the frozen dense lab-ref; quality by the fixed validation MLM loss (the same samples and masks for
every row) and by a linear probe on frozen mean-pooled features (sst2, wordnet-defmatch).

    python experiments/parameterisation/pela.py --threads 2       # writes results/parameterisation/pela/results.json
    python experiments/parameterisation/pela.py --quick --out /tmp/pela --allow-dirty   # a smoke run (seconds per stage)

--seeds are the probe seeds: each draws its own random subset of --probe-train training examples (the validation split,
the probe's test set, is the same for all). --stage-seed seeds the MLM stages. The teacher is not trained here: it is
lab-ref (`mosaiclab.finetune.lab_ref("mlm")`, experiments/lab_ref.py). The chapter nbs/parameterisation/04_pela.ipynb
reads the results file.
"""
import dataclasses, hashlib, shutil, time
from pathlib import Path
import torch
from torch import nn
ROOT = Path(__file__).resolve().parents[2]
from mosaiclab.train import TrainConfig, pretrain, read_metrics, evaluate_split, cpu_has_fast_bf16
from mosaiclab.experiment import experiment_parser, provenance, require_complete, write_results
from mosaiclab.finetune import lab_ref, lab_ref_dir
from mosaiclab.model import MosaicBertForMaskedLM
from mosaiclab.parameterisation.lowrank import LowRankLinear
from mosaiclab.parameterisation.pela import compress, FeatureDistillation
from mosaiclab.science.probes import task_features, linear_probe

VARIANTS = [("svd", "svd, no stage", "svd", False, False), ("random-mlm", "random + MLM stage", "random", True, False),
            ("svd-mlm", "svd + MLM stage", "svd", True, False),
            ("svd-fd", "svd + MLM + feature distillation (PELA)", "svd", True, True)]

def linear_params(model) -> int:
    return sum(p.numel() for n, m in model.named_modules() if ".layers." in f".{n}" and isinstance(m, (nn.Linear, LowRankLinear))
               for p in m.parameters())

def probe(model, task: str, seeds: list[int], n_train: int) -> dict:
    "Linear-probe accuracy (%) per seed on the task's validation split, with each seed's majority-class baseline and prediction counts."
    Xte, yte = task_features(model, task, "validation")
    rec = {"n_train": n_train, "n_test": len(yte), "accuracy": [], "majority_baseline": [], "pred_counts": [], "train_counts": []}
    for s in seeds:
        Xtr, ytr = task_features(model, task, "train", max_samples=n_train, seed=s)
        res = linear_probe(Xtr, ytr, Xte, yte)
        C = int(max(ytr.max(), yte.max())) + 1
        majority = int(torch.bincount(ytr, minlength=C).argmax())      # what always answering the train majority would score
        rec["accuracy"].append(100 * res.accuracy)
        rec["majority_baseline"].append(100 * float((yte == majority).float().mean()))
        rec["pred_counts"].append(torch.bincount(res.predictions, minlength=C).tolist())
        rec["train_counts"].append(torch.bincount(ytr, minlength=C).tolist())
    return rec

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1, 2), out=ROOT / "results" / "parameterisation" / "pela")
    ap.add_argument("--ratios", type=float, nargs="+", default=[2, 3])
    ap.add_argument("--batch", type=int, default=32, help="sequences per stage step (lab-ref trained at 32 x 128 tokens)")
    ap.add_argument("--stage-steps", type=int, default=100)
    ap.add_argument("--stage-lr", type=float, default=5e-4, help="peak LR of the stage (6%% warmup, linear decay; lab-ref: 1e-3)")
    ap.add_argument("--alpha", type=float, default=1.0, help="feature-distillation weight (official kd_alpha)")
    ap.add_argument("--tasks", nargs="+", default=["sst2", "wordnet-defmatch"])
    ap.add_argument("--probe-train", type=int, default=1000, help="training examples per probe seed")
    ap.add_argument("--stage-seed", type=int, default=17, help="seed of the MLM stages (data order and masks; lab-ref's seed)")
    ap.add_argument("--only", nargs="+", default=None, help="a subset of rows: teacher, random-init, svd, random-mlm, svd-mlm, svd-fd")
    a = ap.parse_args()
    if a.quick: a.stage_steps, a.ratios, a.seeds, a.probe_train = 4, a.ratios[:1], a.seeds[:1], 200
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    teacher = lab_ref("mlm").eval()
    precision = "bf16" if cpu_has_fast_bf16() else "fp32"   # the stage's autocast; every score below is fp32
    # the stage: lab-ref's recipe (TrainConfig.lab: 30% masking, seq 128) at a short length; the fixed evaluation is
    # TrainConfig.lab's validation set (256 sequences at 15% masking), identical for every row
    scfg = dataclasses.replace(TrainConfig.lab().with_overrides(
        {"max_steps": a.stage_steps, "global_batch": a.batch, "micro_batch": a.batch, "lr": a.stage_lr, "eval_every": 0,
         "checkpoint_every": 0, "max_minutes": None, "log_every": 10, "seed": a.stage_seed, "precision": precision,
         **({"eval_samples": 32} if a.quick else {})}), model=teacher.cfg)
    want = lambda key: a.only is None or key in a.only

    def score(model, extra: dict) -> dict:
        t0 = time.perf_counter()
        row = {**extra, "linear_params": linear_params(model), "params": sum(p.numel() for p in model.parameters()),
               **evaluate_split(model, scfg), "probe": {t: probe(model, t, a.seeds, a.probe_train) for t in a.tasks}}
        row["score_seconds"] = time.perf_counter() - t0
        accs = ", ".join(f"{t} {sum(r['accuracy']) / len(r['accuracy']):.1f}" for t, r in row["probe"].items())
        print(f"   MLM loss {row['eval_loss']:.4f}, Linear params {row['linear_params']:,}, probe {accs}", flush=True)
        return row

    rows = []
    if want("teacher"):
        print("== dense teacher (lab-ref)", flush=True)
        rows.append(score(teacher, {"variant": "dense teacher", "ratio": 1.0, "stage": None}))
    if want("random-init"):   # the floor: what the probes get from an untrained encoder of the same shape
        print("== random init (lab-ref's architecture, no pretraining)", flush=True)
        torch.manual_seed(a.stage_seed)
        rows.append(score(MosaicBertForMaskedLM(teacher.cfg).eval(), {"variant": "random init (no pretraining)", "ratio": 1.0, "stage": None}))
    for ratio in a.ratios:
        for key, variant, init, stage, distill in VARIANTS:
            if not want(key): continue
            print(f"== x{ratio:g} {variant}", flush=True)
            held = {}
            def model_fn(c, init=init, distill=distill):
                torch.manual_seed(a.stage_seed)   # the random start's draw
                held["model"] = compress(teacher, ratio, init)
                if distill: held["fd"] = FeatureDistillation(lab_ref("mlm"), held["model"], alpha=a.alpha)
                return held["model"]
            evals, summary, fd_log = [], None, None
            if stage:
                run = work / f"x{ratio:g}-{key}"
                fd_log = []
                def loss_fn(o, b, s):
                    loss = held["fd"](o, b, s)
                    if s % 10 == 0 or s == a.stage_steps - 1: fd_log.append({"step": s + 1, **held["fd"].last})
                    return loss
                summary = require_complete(pretrain(scfg, run, progress=False, model_fn=model_fn, loss_fn=loss_fn if distill else None), str(run))
                train = [{k: e.get(k) for k in ("step", "loss", "lr")} for e in read_metrics(run) if e["kind"] == "train"]
                student = held["model"]
                if distill: held["fd"].t_out.remove(); held["fd"].s_out.remove()
            else: student, train = model_fn(scfg.model), []
            rows.append(score(student.eval(), {"variant": variant, "ratio": ratio, "stage": summary, "train": train,
                                               "distillation": fd_log or None}))
    write_results(out, "pela", prov,
                  config={"teacher": str(lab_ref_dir().relative_to(ROOT)) if lab_ref_dir().is_relative_to(ROOT) else str(lab_ref_dir()),
                          "teacher_md5": hashlib.md5((lab_ref_dir() / "model.safetensors").read_bytes()).hexdigest(),
                          "stage": scfg.to_dict(), "alpha": a.alpha, "ratios": a.ratios, "tasks": a.tasks,
                          "probe_seeds": a.seeds, "probe_train": a.probe_train, "stage_seed": a.stage_seed,
                          "probe": "linear_probe (L-BFGS logistic regression, l2 1e-3) on frozen mean-pooled last-layer "
                                   "features; train: a seeded random subset per probe seed; test: the whole validation split"},
                  rows=rows)
    shutil.rmtree(work, ignore_errors=True)
    for r in rows:
        accs = "  ".join(f"{t} {sum(p['accuracy']) / len(p['accuracy']):.1f}" for t, p in r["probe"].items())
        print(f"x{r['ratio']:g} {r['variant']:42s} loss {r['eval_loss']:.4f}  {accs}")

if __name__ == "__main__": main()
