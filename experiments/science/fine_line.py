"""The Fine Line (Yang et al. 2024) at lab scale: pretrain three MosaicBERT sizes, probe every intermediate checkpoint
(linear, kNN and nearest-mean probes on frozen mean-pooled features; bundled SST-2 and WordNet definition matching),
and compare the probe curves across sizes against tokens seen and against validation MLM loss.

    python experiments/science/fine_line.py           # writes results/science/fine_line/results.json
    python experiments/science/fine_line.py --quick --out /tmp/fl   # a smoke run (two sizes, 20 steps, 200 probe examples)

The chapter nbs/science/02_fine_line.ipynb plots results/science/fine_line/results.json.
"""
import shutil, sys, tempfile, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import torch
from mosaiclab.train import TrainConfig, pretrain, Callback
from mosaiclab.experiment import experiment_parser, lab_overrides, provenance, write_results
from mosaiclab.model import MosaicBertForMaskedLM, from_pretrained, n_params
from mosaiclab.science.probes import task_features, PROBES, collapse_error

TASKS = ("sst2", "wordnet-defmatch")

class ProbeEveryCheckpoint(Callback):
    "Probes each saved checkpoint; remembers the tokens seen and the last validation loss."
    def __init__(self, n_train: int, record: list):
        self.n_train, self.record, self.tokens, self.last_eval = n_train, record, 0, None
    def on_step_end(self, step, metrics, model): self.tokens += metrics["real_tokens"]
    def on_eval(self, step, metrics, model): self.last_eval = metrics
    def on_checkpoint(self, step, path):
        self.record.append({"step": step, "tokens": self.tokens, "eval_loss": self.last_eval["eval_loss"],
                            **probe_all(from_pretrained(path), self.n_train)})

def probe_all(model, n_train: int) -> dict:
    out = {}
    for task in TASKS:
        Xtr, ytr = task_features(model, task, "train", max_samples=n_train)
        Xte, yte = task_features(model, task, "validation")
        for name, probe in PROBES.items(): out[f"{task}/{name}"] = probe(Xtr, ytr, Xte, yte).accuracy
    return out

def alignment(runs: list) -> dict:
    "Collapse error of every metric's curves across sizes, against log tokens and against validation loss (step 0 left out)."
    align = {}
    for mkey in [k for k in runs[0]["checkpoints"][0] if "/" in k]:
        curves_tok = [([c["tokens"] for c in r["checkpoints"][1:]], [c[mkey] for c in r["checkpoints"][1:]]) for r in runs]
        curves_loss = [([c["eval_loss"] for c in r["checkpoints"][1:]], [c[mkey] for c in r["checkpoints"][1:]]) for r in runs]
        align[mkey] = {"vs_tokens": collapse_error(curves_tok, log_x=True), "vs_loss": collapse_error(curves_loss)}
    return align

def main():
    ap = experiment_parser(__doc__, seeds=(0,), out=ROOT / "results" / "science" / "fine_line")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64], help="d_model values (2 layers, d_ff = 2 d_model)")
    ap.add_argument("--steps", type=int, default=160)
    ap.add_argument("--every", type=int, default=20, help="checkpoint (and probe) every this many steps")
    ap.add_argument("--n-train", type=int, default=500, help="probe training examples per task")
    a = ap.parse_args()
    if len(a.seeds) != 1: ap.error("--seeds: one seed (every size is trained from it)")
    if a.quick: a.sizes, a.steps, a.every, a.n_train = [32, 64], 20, 10, 200
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    seed, batch, seq_len = a.seeds[0], 32, 64
    tmp = Path(tempfile.mkdtemp(prefix="fine-line-"))
    runs = []
    def write(runs, complete):
        return write_results(a.out, "fine_line", prov,
            complete=complete,
            setup={"sizes": a.sizes, "steps": a.steps, "every": a.every, "n_train": a.n_train, "tasks": list(TASKS),
                   "probes": list(PROBES), "batch": batch, "seq_len": seq_len, "seed": seed},
            runs=runs, alignment=alignment(runs) if len(runs) > 1 else {})
    for d in a.sizes:
        cfg = TrainConfig.lab().with_overrides(lab_overrides(
            d_model=d, n_layers=2, n_heads=2 if d < 128 else 4, seq_len=seq_len, batch=batch, steps=a.steps, lr=TrainConfig.lab().lr,
            eval_samples=256, eval_every=a.every, checkpoint_every=a.every, keep_checkpoints=1, seed=seed))
        ts = time.time()
        torch.manual_seed(cfg.seed)
        m0 = MosaicBertForMaskedLM(cfg.model)   # the step-0 point: the same init pretrain starts from (same seed, same constructor)
        record = [{"step": 0, "tokens": 0, "eval_loss": None, **probe_all(m0, a.n_train)}]
        pretrain(cfg, tmp / f"d{d}", callbacks=[ProbeEveryCheckpoint(a.n_train, record)], progress=False)
        runs.append({"d_model": d, "params": n_params(m0), "checkpoints": record, "config": cfg.to_dict(), "seconds": time.time() - ts})
        last = record[-1]
        print(f"d={d}: {n_params(m0):,} params, final eval loss {last['eval_loss']:.3f}, "
              + ", ".join(f"{k} {v:.3f}" for k, v in last.items() if "/" in k) + f" ({time.time() - ts:.0f} s)", flush=True)
        path = write(runs, complete=d == a.sizes[-1])   # after every size: a stopped run still leaves what it measured
    shutil.rmtree(tmp)
    align = alignment(runs)
    for k, v in align.items(): print(f"{k:32s} collapse error vs tokens {v['vs_tokens']:.4f}, vs loss {v['vs_loss']:.4f}")
    print(f"wrote {path}")

if __name__ == "__main__": main()
