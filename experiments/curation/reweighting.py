"""Loss-based sample reweighting (Sow et al., ICLR 2025) at lab scale: the bundled corpus with injected duplicates
(a few passages repeated many times: low loss, little to learn) and noise (random-word documents: high loss,
nothing to learn); uniform vs LinUpper vs quadratic weights; validation MLM loss on the clean validation split.
The loss is the official one, weights times per-sample length norms (--no-length-norm: sum_i w_i l_i instead).

    python experiments/curation/reweighting.py                  # writes results/curation/reweighting/results.json
    python experiments/curation/reweighting.py --quick --out /tmp/rw   # a smoke run
    python experiments/curation/reweighting.py --seeds 0 --out /tmp/rw0          # one seed per process (also 1, 2), then
    python experiments/curation/reweighting.py --merge /tmp/rw{0,1,2}/results.json   # one file in --out

The chapter nbs/curation/01_reweighting.ipynb plots results/curation/reweighting/results.json.
"""
import argparse, gzip, json, random, shutil, sys, tempfile, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import torch
from mosaiclab.train import TrainConfig, pretrain, read_metrics
from mosaiclab.experiment import experiment_parser, lab_overrides, mean_std, provenance, require_complete, write_results
from mosaiclab.data import load_documents, encode_documents, make_samples, special_ids, load_tokenizer_for, DataConfig, corpus_samples
from mosaiclab.curation.reweighting import SampleReweighter

def build_corpus(root: Path, n_dup_passages: int, dup_frac: float, noise_frac: float, seed: int, seq_len: int) -> dict:
    "Write train.jsonl.gz (clean + duplicates + noise) and validation.jsonl.gz (clean) under root; return the tags."
    rng = random.Random(seed)
    clean = load_documents("bundled", "train")
    cfg = DataConfig(seq_len=seq_len)
    tok = load_tokenizer_for(cfg)
    n_clean = len(corpus_samples(cfg, "train"))            # samples the clean documents make at this seq_len
    # duplicates: short passages (one sample each) cut from clean documents, each repeated many times
    passages = [" ".join(d.split()[:40]) for d in rng.sample(clean, n_dup_passages)]
    total = n_clean / (1 - dup_frac - noise_frac)
    n_dup, n_noise = round(dup_frac * total), round(noise_frac * total)
    dups = [passages[i % n_dup_passages] for i in range(n_dup)]
    # noise: documents of words drawn uniformly from the vocabulary (word-initial pieces only, so they re-tokenise alike)
    words = sorted(w for w in tok.get_vocab() if w.isalpha() and len(w) > 2)   # sorted: get_vocab() order varies between runs
    noise = [" ".join(rng.choice(words) for _ in range(40)) for _ in range(n_noise)]
    docs = clean + dups + noise
    rng.shuffle(docs)
    root.mkdir(parents=True, exist_ok=True)
    for split, texts in (("train", docs), ("validation", load_documents("bundled", "validation"))):
        with gzip.open(root / f"{split}.jsonl.gz", "wt") as f:
            for t in texts: f.write(json.dumps({"text": t}) + "\n")
    cls, sep = special_ids(tok)
    def keys(texts): return {tuple(s) for s in make_samples(encode_documents(tok, texts), seq_len, "split", cfg.min_tokens, cls, sep)}
    return {"duplicate": keys(passages), "noise": keys(noise), "counts": {"clean_samples": n_clean, "duplicates": n_dup, "noise": n_noise}}

class TaggedReweighter:
    "Wraps a SampleReweighter: also records which kind (clean / duplicate / noise) each weighted sample is."
    def __init__(self, rw: SampleReweighter, tags: dict, record_every: int):
        self.rw, self.tags, self.every, self.log = rw, tags, record_every, []
    def kind(self, ids: list[int]) -> str:
        key = tuple(ids)
        return "duplicate" if key in self.tags["duplicate"] else "noise" if key in self.tags["noise"] else "clean"
    def __call__(self, out, batch, step):
        loss = self.rw(out, batch, step)
        if step % self.every == 0:
            orig = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])   # the unmasked ids
            kinds = [self.kind(row[m.bool()].tolist()) for row, m in zip(orig, batch["attention_mask"])]
            _, losses, w = self.rw.history[-1]
            n = (batch["labels"] != -100).sum(dim=1).tolist()                                   # masked targets per row
            self.log.append({"step": step, "kind": kinds, "loss": losses, "weight": w, "targets": n})
        return loss

def merge(paths: list, out: Path):
    "One results file from several (same setup, disjoint runs): the runs concatenated, each part's provenance kept under `parts`."
    parts = [json.loads(Path(p).read_text()) for p in paths]
    strip = lambda st: {k: v for k, v in st.items() if k != "seeds"}
    if any(strip(p["setup"]) != strip(parts[0]["setup"]) for p in parts): raise ValueError("the parts differ in setup: not mergeable")
    runs = sorted((r for p in parts for r in p["runs"]), key=lambda r: (r["seed"], r["strategy"]))
    merged = {**parts[0], "command": " && ".join(p["command"] for p in parts) + " && python experiments/curation/reweighting.py --merge ...",
              "parts": [{k: p.get(k) for k in ("command", "commit", "dirty", "started", "wall_seconds", "complete")} for p in parts],
              "wall_seconds": sum(p["wall_seconds"] for p in parts), "runs": runs}
    have = {(r["strategy"], r["seed"]) for r in runs}
    merged["complete"] = all((st, sd) in have for st in parts[0]["setup"]["strategies"] for sd in {r["seed"] for r in runs})
    merged["setup"] = {**parts[0]["setup"], "seeds": sorted({r["seed"] for r in runs})}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(merged) + "\n")
    print(f"merged {len(runs)} runs from {len(parts)} files into {out / 'results.json'}")

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1, 2), out=ROOT / "results" / "curation" / "reweighting")
    ap.add_argument("--strategies", nargs="+", default=["uniform", "linupper", "quadratic"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--r", type=float, default=0.4)
    ap.add_argument("--dup-frac", type=float, default=0.3)
    ap.add_argument("--noise-frac", type=float, default=0.15)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--length-norm", action=argparse.BooleanOptionalAction, default=True,
                    help="the official loss N sum_i w_i (n_i / sum n) l_i, n_i = masked targets of row i (default); "
                         "--no-length-norm: sum_i w_i l_i over per-row mean losses")
    ap.add_argument("--merge", nargs="+", metavar="RESULTS_JSON",
                    help="combine results files of the same setup run as separate processes (e.g. one per seed) into --out")
    a = ap.parse_args()
    if a.merge: return merge(a.merge, Path(a.out))
    if a.quick: a.steps, a.seeds, a.eval_every = 20, a.seeds[:1], 10
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="reweighting-"))
    seq_len, record_every = 64, max(1, a.steps // 10)
    tags = build_corpus(tmp / "corpus", n_dup_passages=32, dup_frac=a.dup_frac, noise_frac=a.noise_frac, seed=0, seq_len=seq_len)
    warmup = round(0.1 * a.steps)     # uniform for the first 10% (official: 5%, burnout_steps 1000 of 20000), then a ramp as long
    runs = []
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    def write(runs, complete):
        write_results(out, "reweighting", prov, complete=complete,
                      setup={"r": a.r, "warmup_steps": warmup, "ramp_steps": warmup, "dup_frac": a.dup_frac, "noise_frac": a.noise_frac,
                             "dup_passages": 32, "steps": a.steps, "seeds": a.seeds, "strategies": a.strategies,
                             "length_norm": a.length_norm, "record_every": record_every, "eval_every": a.eval_every, **tags["counts"]},
                      runs=runs)
    for seed in a.seeds:
        for strategy in a.strategies:
            # the lab preset's batch (32) and learning rate (1e-3), as before the harness
            cfg = TrainConfig.lab().with_overrides({
                **lab_overrides(d_model=64, seq_len=seq_len, batch=32, steps=a.steps, lr=1e-3, eval_samples=256, eval_every=a.eval_every,
                                seed=seed),
                "data.source": str(tmp / "corpus")})
            rw = TaggedReweighter(SampleReweighter(strategy, r=a.r, warmup_steps=warmup, ramp_steps=warmup, length_norm=a.length_norm,
                                                   record_every=record_every),
                                  tags, record_every)
            run = tmp / f"{strategy}-seed{seed}"
            ts = time.time()
            summary = require_complete(pretrain(cfg, run, loss_fn=rw, progress=False), str(run))
            recs = read_metrics(run)
            runs.append({"strategy": strategy, "seed": seed, "summary": summary, "seconds": time.time() - ts,
                         "eval": [{k: r[k] for k in ("step", "eval_loss", "eval_accuracy")} for r in recs if r["kind"] == "eval"],
                         "weights": rw.log, "config": cfg.to_dict()})
            print(f"{strategy:10s} seed {seed}: eval loss {summary['eval_loss']:.4f} ({time.time() - ts:.0f} s)", flush=True)
            write(runs, complete=False)   # after every run: a stopped sweep still leaves what it measured
    write(runs, complete=True)
    shutil.rmtree(tmp)
    for s in a.strategies:
        m, sd, n = mean_std([r["summary"]["eval_loss"] for r in runs if r["strategy"] == s])
        print(f"{s:10s} final eval loss {m:.4f} +- {sd:.4f} over {n} seeds")

if __name__ == "__main__": main()
