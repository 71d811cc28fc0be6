"""Does our lab pretraining transfer? The bundled lab suite fine-tuned from a random initialisation, from the default
`mosaiclab pretrain` checkpoint, from the shipped lab-ref encoder, and from the real pretrained MiniLM (through
interop), over several seeds; and two floors without an encoder, the majority class and a bag of words, fitted on the
same training subsets.

    mosaiclab pretrain --out runs/lab-default                        # the checkpoint (under 10 minutes on 2 cores)
    python experiments/finetune_lab.py --pretrained runs/lab-default  # writes results/finetune/lab_suite.json
    python experiments/finetune_lab.py --only lab-ref --precision fp32   # adds the lab-ref rows, keeps the others
    python experiments/finetune_lab.py --quick --out /tmp/ft          # a smoke run (pretrains a tiny checkpoint itself)
    python experiments/finetune_lab.py --pretrained runs/lab-default --only random pretrained --tasks wordnet-defmatch --max-train-samples 4000 --epochs 3 --seeds 19 8364 717 10536 90166 --name defmatch_long.json
                                                                      # a longer fine-tune of one task, in its own file

--seeds and --minilm-seeds are seed lists (the suite's recipe seeds are 19 8364 717); --only reruns some sources and
keeps the others already in the results file (each source records the command, commit and time that made it). The chapter nbs/mosaicbert/11_finetune.ipynb plots the committed results.
"""
import json, tempfile
from pathlib import Path
import torch
ROOT = Path(__file__).resolve().parents[1]
from mosaiclab.finetune import LAB_SUITE, run_suite, run_baselines, print_suite
from mosaiclab.experiment import experiment_parser, lab_overrides, provenance, require_complete, write_results

def main():
    ap = experiment_parser(__doc__, seeds=(19, 8364, 717), out=ROOT / "results" / "finetune")
    ap.add_argument("--pretrained", default=None, help="the pretraining run folder (required, except with --quick)")
    ap.add_argument("--minilm-seeds", type=int, nargs="+", default=None, help="seeds for the (slower) MiniLM reference; default --seeds")
    ap.add_argument("--max-train-samples", type=int, default=2000)
    ap.add_argument("--epochs", type=float, default=2)
    kinds = ["majority", "bow", "random", "pretrained", "lab-ref", "minilm"]
    ap.add_argument("--only", nargs="+", default=kinds, choices=kinds)
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=None,
                    help="fine-tuning precision (default: the lab preset's auto; fp32 matches rows made on a CPU without bf16)")
    ap.add_argument("--name", default="lab_suite.json", help="the results file's name inside --out (default: lab_suite.json)")
    ap.add_argument("--tasks", nargs="+", default=list(LAB_SUITE), choices=list(LAB_SUITE),
                    help="a subset of the lab suite (e.g. a longer fine-tune of one task); needs its own --name")
    a = ap.parse_args()
    if list(a.tasks) != list(LAB_SUITE) and a.name == "lab_suite.json":
        ap.error("--tasks with a subset of the suite writes averages over that subset: give it its own --name")
    if a.pretrained is None and not a.quick and "pretrained" in a.only:
        ap.error("--pretrained is required for the 'pretrained' source (the run folder of `mosaiclab pretrain`)")
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    if out.suffix == ".json": out, a.name = out.parent, out.name      # the old form: --out results/finetune/lab_suite.json
    path = out / a.name
    over = {"max_train_samples": a.max_train_samples, "epochs": a.epochs, **({"precision": a.precision} if a.precision else {})}
    with tempfile.TemporaryDirectory(prefix="finetune-lab-") as tmp:   # the quick run's checkpoint
        tmp = Path(tmp)
        if a.quick:
            a.seeds, a.minilm_seeds = a.seeds[:1], (a.minilm_seeds or a.seeds)[:1]
            over = {**over, "max_train_samples": 64, "epochs": 1, "max_eval_samples": 64}
            if a.pretrained is None:   # a tiny checkpoint: 10 steps of a small lab model
                from mosaiclab.train import TrainConfig, pretrain
                print("== pretraining a tiny checkpoint", flush=True)
                a.pretrained = str(tmp / "pretrain")
                pretrain(TrainConfig.lab().with_overrides(lab_overrides(steps=10, evals=1)), a.pretrained, progress=False)
        sources = {"random init (lab)": ("random:lab", a.seeds), "lab pretraining (mosaiclab pretrain)": (a.pretrained, a.seeds),
                   "lab-ref (shipped reference encoder)": ("lab-ref", a.seeds),
                   "MiniLM-L6 (real pretrained, reference)": ("minilm", a.minilm_seeds or a.seeds)}
        keys = dict(zip(["random", "pretrained", "lab-ref", "minilm"], sources))
        baselines = {"majority": "majority class (no encoder)", "bow": "bag of words (no encoder)"}
        old = json.loads(path.read_text()) if path.exists() else {}
        results = old.get("results", {})
        pretrained_summary = (require_complete(json.loads((Path(a.pretrained) / "summary.json").read_text()), a.pretrained,
                                               allowed=("max_steps", "max_minutes"))   # the lab preset's own time limit counts
                              if "pretrained" in a.only else old.get("pretrained_summary"))
        for k in a.only:
            if k in baselines:   # deterministic: one run per task
                label = baselines[k]
                print(f"== {label}", flush=True)
                r = run_baselines(a.tasks, k, overrides=over, label=label)
                r["source"] = f"baseline:{k}"
            else:
                label = keys[k]; src, seeds = sources[label]
                print(f"== {label}", flush=True)
                r = run_suite(src, a.tasks, seeds=seeds, overrides=over, progress=False, label=label)
                r["source"] = str(src)
            print_suite(r)
            # the file's top-level provenance is the latest invocation's; each source keeps the one that made it
            r["provenance"] = {k: prov[k] for k in ("command", "commit", "dirty", "started")}
            results[label] = r
            # write after each source: nothing is lost if a later one fails
            write_results(out, "finetune_lab", prov, filename=a.name, overrides=over, pretrained_summary=pretrained_summary, results=results)
    print(f"results: {path}")

if __name__ == "__main__": main()
