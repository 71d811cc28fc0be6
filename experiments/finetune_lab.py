"""Does our lab pretraining transfer? The bundled lab suite fine-tuned from a random initialisation, from the default
`mosaiclab pretrain` checkpoint, and from the real pretrained MiniLM (through interop), over several seeds.

    mosaiclab pretrain --out runs/lab-default                        # the checkpoint (about 7.5 minutes on 2 cores)
    python experiments/finetune_lab.py --pretrained runs/lab-default  # writes results/finetune/lab_suite.json

The chapter nbs/mosaicbert/11_finetune.ipynb plots the committed results.
"""
import argparse, json, sys, time
from pathlib import Path
import torch
ROOT = Path(__file__).resolve().parent.parent
from mosaiclab.finetune import run_suite, print_suite
from mosaiclab.bench import git_commit, hardware_info

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrained", required=True, help="the pretraining run folder")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--minilm-seeds", type=int, default=None, help="seeds for the (slower) MiniLM reference; default --seeds")
    ap.add_argument("--max-train-samples", type=int, default=2000)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only", nargs="+", default=["random", "pretrained", "minilm"])
    ap.add_argument("--out", default=str(ROOT / "results" / "finetune" / "lab_suite.json"))
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    over = {"max_train_samples": a.max_train_samples, "epochs": a.epochs}
    sources = {"random init (lab)": ("random:lab", a.seeds), "lab pretraining (mosaiclab pretrain)": (a.pretrained, a.seeds),
               "MiniLM-L6 (real pretrained, reference)": ("minilm", a.minilm_seeds or a.seeds)}
    keys = dict(zip(["random", "pretrained", "minilm"], sources))
    out = Path(a.out)
    results = json.loads(out.read_text())["results"] if out.exists() else {}
    t0 = time.time()
    for k in a.only:
        label = keys[k]; src, seeds = sources[label]
        print(f"== {label}", flush=True)
        r = run_suite(src, "lab", seeds=seeds, overrides=over, progress=False, label=label)
        print_suite(r)
        r["source"] = str(src)
        results[label] = r
        out.parent.mkdir(parents=True, exist_ok=True)   # write after each source: nothing is lost if a later one fails
        out.write_text(json.dumps({"experiment": "finetune_lab", "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                                   "commit": git_commit(ROOT), "hardware": hardware_info("cpu"), "overrides": over,
                                   "pretrained_summary": json.loads((Path(a.pretrained) / "summary.json").read_text()),
                                   "wall_seconds": time.time() - t0, "results": results}, indent=1) + "\n")

if __name__ == "__main__": main()
