"""The Fine Line (Yang et al. 2024) at lab scale: pretrain three MosaicBERT sizes for a short run each, probe every
intermediate checkpoint with things an MLM learns early (function vs content word and word-frequency bucket from
frozen token states, split by word type; masked-token accuracy by token class), and compare the curves across sizes
against tokens seen and against the masked-token loss. The shipped lab-ref encoder (3000 steps) and its random
initialisation are probed the same way, as the end point and the floor.

    python experiments/science/fine_line.py           # writes results/science/fine_line/results.json
    python experiments/science/fine_line.py --quick --out /tmp/fl   # a smoke run (two sizes, 20 steps, 64 probe sequences)

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
from mosaiclab.data import DataConfig, load_tokenizer_for
from mosaiclab.finetune import lab_ref
from mosaiclab.science.probes import (corpus_token_counts, word_token_classes, probe_sequences, token_states, token_probe_sets,
                                      token_probe, masked_token_accuracy, collapse_error, TOKEN_TASKS)

class ProbeEveryCheckpoint(Callback):
    "Probes each saved checkpoint (the trainer's on_checkpoint hook)."
    def __init__(self, probe, record: list, tokens_per_step: int):
        self.probe, self.record, self.tokens_per_step = probe, record, tokens_per_step
    def on_checkpoint(self, step, path):
        self.record.append({"step": step, "tokens": step * self.tokens_per_step, **self.probe(from_pretrained(path))})

def make_prober(tok, counts, classes, batch, sets):
    def probe(model) -> dict:
        H = token_states(model, batch)
        out = {}
        for task in TOKEN_TASKS:
            r = token_probe(H, sets[task])
            out[f"{task}/linear"], out[f"{task}/majority"] = r["accuracy"], r["majority"]
        for k, v in masked_token_accuracy(model, batch, tok, classes, counts).items():
            out[f"mlm/{k}"], out[f"mlm/{k}/unigram"], out[f"mlm/{k}/n"] = v["accuracy"], v["unigram"], v["n"]
            if k == "all": out["mlm_loss"] = v["loss"]
        return out
    return probe

METRICS = ("function_word/linear", "frequency_bucket/linear", "mlm/function", "mlm/content", "mlm/bucket0")

def alignment(runs: list) -> dict:
    "Collapse error of every metric's curves across sizes, against log tokens and against the masked-token loss (step 0 left out)."
    align = {}
    for k in METRICS:
        tok = [([c["tokens"] for c in r["checkpoints"][1:]], [c[k] for c in r["checkpoints"][1:]]) for r in runs]
        loss = [([c["mlm_loss"] for c in r["checkpoints"][1:]], [c[k] for c in r["checkpoints"][1:]]) for r in runs]
        align[k] = {"vs_tokens": collapse_error(tok, log_x=True), "vs_loss": collapse_error(loss)}
    return align

def main():
    ap = experiment_parser(__doc__, seeds=(0,), out=ROOT / "results" / "science" / "fine_line")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="d_model values (2 layers, d_ff = 2 d_model)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--every", type=int, default=50, help="checkpoint (and probe) every this many steps")
    ap.add_argument("--probe-seqs", type=int, default=256, help="held-out corpus sequences the probes read")
    a = ap.parse_args()
    if len(a.seeds) != 1: ap.error("--seeds: one seed (every size is trained from it)")
    if a.quick: a.sizes, a.steps, a.every, a.probe_seqs = [32, 64], 20, 10, 64
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    seed, batch_size, seq_len = a.seeds[0], 32, 128          # lab-ref's batch and sequence length
    data = DataConfig(seq_len=seq_len)
    tok = load_tokenizer_for(data)
    counts = corpus_token_counts(data, "train")               # word frequencies from the pretraining split
    classes = word_token_classes(tok, counts)
    batch = probe_sequences(data, "validation", a.probe_seqs, seed=seed)
    sets = {t: token_probe_sets(batch["input_ids"], batch["attention_mask"], tok, classes, t, seed=seed) for t in TOKEN_TASKS}
    probe = make_prober(tok, counts, classes, batch, sets)
    setup = {"sizes": a.sizes, "steps": a.steps, "every": a.every, "probe_seqs": a.probe_seqs, "batch": batch_size, "seq_len": seq_len,
             "seed": seed, "metrics": list(METRICS), "n_function_words": int(classes["function"].sum()), "n_word_types": int(classes["word"].sum()),
             "probe_sets": {t: {k: len(v) for k, v in s.items() if k.endswith("labels")} for t, s in sets.items()}}
    ref = lab_ref("mlm")
    torch.manual_seed(17)
    references = {"lab-ref": {"params": n_params(ref), "steps": 3000, "tokens": 3000 * batch_size * seq_len, **probe(ref)},
                  "random init (lab-ref architecture)": {"params": n_params(ref), "steps": 0, "tokens": 0, **probe(MosaicBertForMaskedLM(ref.cfg))}}
    for k, v in references.items(): print(f"{k}: " + ", ".join(f"{m} {v[m]:.3f}" for m in ("mlm_loss", *METRICS)), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="fine-line-"))
    runs = []
    def write(runs, complete):
        return write_results(a.out, "fine_line", prov, complete=complete, setup=setup, references=references,
                             runs=runs, alignment=alignment(runs) if len(runs) > 1 else {})
    for d in a.sizes:
        cfg = TrainConfig.lab().with_overrides(lab_overrides(
            d_model=d, n_layers=2, n_heads=2 if d < 256 else 4, seq_len=seq_len, batch=batch_size, steps=a.steps, lr=TrainConfig.lab().lr,
            eval_samples=128, eval_every=a.steps, checkpoint_every=a.every, keep_checkpoints=1, seed=seed, precision="auto"))
        ts = time.time()
        torch.manual_seed(cfg.seed)
        m0 = MosaicBertForMaskedLM(cfg.model)   # the step-0 point: the same init pretrain starts from (same seed, same constructor)
        record = [{"step": 0, "tokens": 0, **probe(m0)}]
        pretrain(cfg, tmp / f"d{d}", callbacks=[ProbeEveryCheckpoint(probe, record, batch_size * seq_len)], progress=False)
        runs.append({"d_model": d, "params": n_params(m0), "checkpoints": record, "config": cfg.to_dict(), "seconds": time.time() - ts})
        last = record[-1]
        print(f"d={d}: {n_params(m0):,} params, " + ", ".join(f"{m} {last[m]:.3f}" for m in ("mlm_loss", *METRICS)) + f" ({time.time() - ts:.0f} s)", flush=True)
        path = write(runs, complete=d == a.sizes[-1])   # after every size: a stopped run still leaves what it measured
    shutil.rmtree(tmp)
    for k, v in alignment(runs).items(): print(f"{k:26s} collapse error vs tokens {v['vs_tokens']:.4f}, vs loss {v['vs_loss']:.4f}")
    print(f"wrote {path}")

if __name__ == "__main__": main()
