"""PELA at lab scale: pretrain a small dense MosaicBERT (the "pretrained model"), compress its encoder Linear layers x2
and x3 by low-rank factors, and compare an SVD start with a random start, without and with an intermediate MLM stage,
and with PELA's feature distillation from the frozen dense teacher; quality by validation MLM loss and by fine-tuning
accuracy on the bundled sst2 task (a subset).

    python experiments/parameterisation/pela.py                   # writes results/parameterisation/pela/
    python experiments/parameterisation/pela.py --quick --out /tmp/pela   # a smoke run

--seeds are the fine-tuning seeds (--no-finetune skips fine-tuning); --pretrain-seed seeds the teacher and the MLM stages.

The chapter nbs/parameterisation/04_pela.ipynb reads results/parameterisation/pela/: the one results.json a run
writes (as committed), or one file per part from separate runs (--only ... --out results/parameterisation/pela/<part>).
"""
import argparse, json, shutil
from pathlib import Path
import torch
from torch import nn
ROOT = Path(__file__).resolve().parents[2]
from mosaiclab.train import TrainConfig, pretrain, read_metrics
from mosaiclab.experiment import experiment_parser, lab_overrides, mean_std, provenance, write_results
from mosaiclab.model import MosaicBertForMaskedLM, from_pretrained
from mosaiclab.parameterisation.lowrank import LowRankLinear
from mosaiclab.parameterisation.pela import compress, FeatureDistillation, evaluate_mlm, classifier_from
from mosaiclab.finetune import FinetuneConfig, finetune

def linear_params(model) -> int:
    return sum(p.numel() for n, m in model.named_modules() if ".layers." in f".{n}" and isinstance(m, (nn.Linear, LowRankLinear))
               for p in m.parameters())

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1), out=ROOT / "results" / "parameterisation" / "pela")
    # the old name of --seeds; with no values it skips fine-tuning, like --no-finetune
    ap.add_argument("--ft-seeds", dest="seeds", type=int, nargs="*", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ap.add_argument("--no-finetune", action="store_true", help="skip the sst2 fine-tuning (rows get sst2: [])")
    ap.add_argument("--ratios", type=float, nargs="+", default=[2, 3])
    ap.add_argument("--teacher-steps", type=int, default=200)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--stage-steps", type=int, default=60)
    ap.add_argument("--stage-lr", type=float, default=1e-3)
    ap.add_argument("--alpha", type=float, default=1.0, help="feature-distillation weight")
    ap.add_argument("--ft-samples", type=int, default=1000)
    ap.add_argument("--ft-eval-samples", type=int, default=None, help="sst2 validation examples scored (None: all)")
    ap.add_argument("--pretrain-seed", "--seed", type=int, default=0, help="seed of the teacher's pretraining and of the MLM stages")
    ap.add_argument("--teacher-run", default=None, help="reuse the teacher of an earlier run folder instead of pretraining one")
    ap.add_argument("--only", nargs="+", default=None, help="a subset of rows: teacher, svd, random-mlm, svd-mlm, svd-fd")
    a = ap.parse_args()
    if a.no_finetune: a.seeds = []
    if a.quick:
        a.teacher_steps, a.stage_steps, a.ratios, a.seeds = 20, 10, a.ratios[:1], a.seeds[:1]
        a.ft_samples, a.ft_eval_samples = 200, a.ft_eval_samples or 128
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out); work = out / "runs"
    if work.exists(): shutil.rmtree(work)
    # 1. the "pretrained" dense model: one evaluation, at the end
    tcfg = TrainConfig.lab().with_overrides(lab_overrides(d_model=a.d_model, batch=a.batch, steps=a.teacher_steps, lr=2e-3, evals=1,
                                                          seed=a.pretrain_seed))
    tdir = Path(a.teacher_run) if a.teacher_run else work / "teacher"
    if a.teacher_run: tsum = json.loads((tdir / "summary.json").read_text())
    else:
        print("== teacher", flush=True)
        tsum = pretrain(tcfg, tdir, progress=False)
    teacher = from_pretrained(tdir / "model")
    want = lambda key: a.only is None or key in a.only
    scfg = TrainConfig.lab().with_overrides(lab_overrides(d_model=a.d_model, batch=a.batch, steps=a.stage_steps, lr=a.stage_lr, evals=3,
                                                          seed=a.pretrain_seed))
    ft_cfg = lambda seed: FinetuneConfig.lab("sst2").replace(epochs=1, max_len=64, max_train_samples=a.ft_samples, seed=seed,
                                                             max_eval_samples=a.ft_eval_samples, precision="fp32")
    def fine_tune(mlm) -> list[float]:
        return [finetune(classifier_from(mlm), "sst2", ft_cfg(s), progress=False)["score"] for s in a.seeds]
    rows = [] if not want("teacher") else [{"variant": "dense teacher", "ratio": 1.0, "linear_params": linear_params(teacher), "params": sum(p.numel() for p in teacher.parameters()),
             "stage": None, **evaluate_mlm(teacher, scfg), "sst2": fine_tune(teacher)}]
    if rows: print(f"   teacher: {rows[-1]['eval_loss']:.4f}, sst2 {rows[-1]['sst2']}", flush=True)
    # 2. compressed students
    for ratio in a.ratios:
        for key, variant, init, stage, distill in [("svd", "svd, no stage", "svd", False, False), ("random-mlm", "random + MLM stage", "random", True, False),
                                                   ("svd-mlm", "svd + MLM stage", "svd", True, False),
                                                   ("svd-fd", "svd + MLM + feature distillation (PELA)", "svd", True, True)]:
            if not want(key): continue
            print(f"== x{ratio:g} {variant}", flush=True)
            held = {}
            def model_fn(c, init=init, distill=distill):
                held["model"] = compress(teacher, ratio, init)
                if distill: held["fd"] = FeatureDistillation(from_pretrained(tdir / "model"), held["model"], alpha=a.alpha)
                return held["model"]
            evals, summary = [], None
            if stage:
                run = work / f"x{ratio:g}-{init}-{'fd' if distill else 'mlm'}"
                loss_fn = (lambda o, b, s: held["fd"](o, b, s)) if distill else None
                summary = pretrain(scfg, run, progress=False, model_fn=model_fn, loss_fn=loss_fn)
                evals = [e for e in read_metrics(run) if e["kind"] == "eval"]
                student = held["model"]
                if distill: held["fd"].t_out.remove(); held["fd"].s_out.remove()
            else: student = model_fn(scfg.model)
            m = evaluate_mlm(student, scfg)     # the same samples and masks as the teacher's number
            rows.append({"variant": variant, "ratio": ratio, "linear_params": linear_params(student),
                         "params": sum(p.numel() for p in student.parameters()), "stage": summary, "eval": evals, **m,
                         "sst2": fine_tune(student)})
            print(f"   eval loss {m['eval_loss']:.4f}, linear params {rows[-1]['linear_params']:,}, sst2 {rows[-1]['sst2']}", flush=True)
    write_results(out, "pela", prov,
                  config={"teacher": tcfg.to_dict(), "stage": scfg.to_dict(), "alpha": a.alpha, "ratios": a.ratios,
                          "finetune": ft_cfg(0).to_dict(), "ft_seeds": a.seeds, "pretrain_seed": a.pretrain_seed},
                  teacher_summary=tsum, teacher_run=str(tdir), rows=rows)
    shutil.rmtree(work, ignore_errors=True)   # absent when --teacher-run was given and no row trained
    for r in rows:
        acc = f"{mean_std(r['sst2'])[0]:.1f}" if r["sst2"] else "-"
        print(f"x{r['ratio']:g} {r['variant']:42s} loss {r['eval_loss']:.4f}  sst2 {acc}")

if __name__ == "__main__": main()
