"""Pretraining under infinite compute (Kim et al. 2025) at lab scale: a fixed small slice of the bundled corpus,
many epochs. (1) a weight-decay sweep; (2) a model-size sweep at the default and at the best weight decay, with a
fitted asymptote L(N) = E + A/N^alpha; (3) ensembles of 1-4 members with their own fitted asymptote; (4) the
4-member ensemble distilled into one student.

    python experiments/science/infinite_compute.py          # writes results/science/infinite_compute/results.json
    python experiments/science/infinite_compute.py --quick --out /tmp/ic   # a smoke run (10 steps, 2 weight decays, 3 sizes, 2 members)
    python experiments/science/infinite_compute.py --only-wd   # (1) alone: writes results/science/infinite_compute/wd_sweep.json

The chapter nbs/science/01_infinite_compute.ipynb plots results/science/infinite_compute/results.json.
"""
import gzip, itertools, json, shutil, sys, tempfile, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import torch
from mosaiclab.train import TrainConfig, pretrain, read_metrics
from mosaiclab.experiment import experiment_parser, lab_overrides, mean_std, provenance, require_complete, write_results
from mosaiclab.data import DataConfig, PretrainingStream, load_documents, corpus_samples, load_tokenizer_for
from mosaiclab.mlm import MLMCollator
from mosaiclab.model import from_pretrained, n_params
from mosaiclab.science.infinite_compute import Ensemble, DistillLoss, eval_per_sample, bootstrap_fit, scaling_fit

def write_slice(root: Path, tokens: int, seq_len: int) -> dict:
    "The first documents of the bundled train split holding about `tokens` tokens, and the full validation split."
    docs, total, cfg = [], 0, DataConfig(seq_len=seq_len)
    tok = load_tokenizer_for(cfg)
    for d in load_documents("bundled", "train"):
        docs.append(d); total += len(tok.encode(d, add_special_tokens=False).ids)
        if total >= tokens: break
    root.mkdir(parents=True, exist_ok=True)
    for split, texts in (("train", docs), ("validation", load_documents("bundled", "validation"))):
        with gzip.open(root / f"{split}.jsonl.gz", "wt") as f:
            for t in texts: f.write(json.dumps({"text": t}) + "\n")
    n = len(corpus_samples(DataConfig(source=str(root), seq_len=seq_len)))
    return {"documents": len(docs), "tokens": total, "samples": n}

def main():
    ap = experiment_parser(__doc__, out=ROOT / "results" / "science" / "infinite_compute")
    ap.add_argument("--tokens", type=int, default=10_000, help="size of the fixed training slice")
    ap.add_argument("--steps", type=int, default=300)
    # decoupled decay per step (our trainer's units): the default 1e-5 and up to 300x it; the paper's optimum is ~30x its default
    ap.add_argument("--wds", type=float, nargs="+", default=[1e-5, 1e-4, 3e-4, 1e-3, 3e-3])
    ap.add_argument("--default-wd", type=float, default=1e-5, help="the recipe's weight decay (TrainConfig's), one of --wds")
    ap.add_argument("--only-wd", action="store_true", help="run only the weight-decay sweep (1) and write wd_sweep.json in --out")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 24, 32, 48], help="d_model values (2 layers, d_ff = 2 d_model)")
    ap.add_argument("--base", type=int, default=24, help="d_model of the wd sweep, the ensemble members and the student")
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    a = ap.parse_args()
    if a.seeds != [0]: ap.error("--seeds: this experiment's seeds are fixed (0: the sweeps, 1..members-1: the other ensemble members, 100: the student)")
    if a.quick: a.steps, a.wds, a.sizes, a.members = 10, [1e-5, 3e-4], [16, 24, 32], 2
    if a.default_wd not in a.wds: ap.error(f"--default-wd {a.default_wd:g} must be one of --wds")
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="infinite-compute-"))
    seq_len, batch = 64, 32
    data = write_slice(tmp / "corpus", a.tokens, seq_len)
    data["epochs"] = a.steps * batch / data["samples"]
    print(f"fixed data: {data}", flush=True)
    dcfg = DataConfig(source=str(tmp / "corpus"), seq_len=seq_len)
    val = PretrainingStream(dcfg, "validation", seed=0).batch(0, 512)
    collator = MLMCollator.from_tokenizer(load_tokenizer_for(dcfg), seed=0)
    counts = None
    runs: dict[str, dict] = {}
    per_sample: dict[str, torch.Tensor] = {}

    def train(name, d, wd, seed, loss_fn=None):
        nonlocal counts
        cfg = TrainConfig.lab().with_overrides(lab_overrides(
            d_model=d, n_layers=2, n_heads=2, seq_len=seq_len, batch=batch, steps=a.steps, lr=a.lr, evals=6, eval_samples=256,
            **{"data.source": str(tmp / "corpus"), "weight_decay": wd, "seed": seed}))
        ts = time.time()
        s = require_complete(pretrain(cfg, tmp / name, loss_fn=loss_fn, progress=False), name)
        model = from_pretrained(tmp / name / "model")
        ps, c = eval_per_sample(model, val, collator)
        counts = c
        per_sample[name] = ps
        train_loss = [r["loss"] for r in read_metrics(tmp / name) if r["kind"] == "train"][-5:]
        runs[name] = {"d_model": d, "weight_decay": wd, "seed": seed, "params": n_params(model),
                      "val_loss": float((ps * c).sum() / c.sum()), "final_train_loss": sum(train_loss) / len(train_loss),
                      "eval": [{k: r[k] for k in ("step", "eval_loss")} for r in read_metrics(tmp / name) if r["kind"] == "eval"],
                      "seconds": time.time() - ts}
        print(f"{name:24s} d={d:3d} wd={wd:g} seed={seed}: val {runs[name]['val_loss']:.4f} "
              f"(train {runs[name]['final_train_loss']:.3f}, {time.time() - ts:.0f} s)", flush=True)
        return model

    # (1) weight decay sweep at the base size
    for wd in a.wds: train(f"wd{wd:g}-d{a.base}", a.base, wd, 0)
    default_wd = a.default_wd
    best_wd = min(a.wds, key=lambda w: runs[f"wd{w:g}-d{a.base}"]["val_loss"])
    setup = {"data": data, "steps": a.steps, "lr": a.lr, "batch": batch, "seq_len": seq_len, "n_layers": 2,
             "base_d_model": a.base, "val_samples": len(val), "wds": a.wds, "default_wd": default_wd, "sizes": a.sizes}
    if a.only_wd:
        path = write_results(a.out, "infinite_compute_wd", prov, filename="wd_sweep.json", setup={**setup, "sizes": []},
                             best_wd=best_wd, runs=runs)
        shutil.rmtree(tmp)
        return print(f"best weight decay {best_wd:g}; wrote {path}")
    # (2) size sweeps at the default and the best weight decay
    sweeps = {}
    for label, wd in (("default", default_wd), ("tuned", best_wd)):
        names = []
        for d in a.sizes:
            name = f"wd{wd:g}-d{d}"
            if name not in runs: train(name, d, wd, 0)
            names.append(name)
        x = [runs[n]["params"] for n in names]
        fit = bootstrap_fit(x, torch.stack([per_sample[n] for n in names]), counts)
        sweeps[label] = {"weight_decay": wd, "runs": names, "params": x, "fit": fit}
        print(f"size sweep ({label}, wd={wd:g}): E = {fit['E']:.3f} +- {fit['E_std']:.3f}, alpha = {fit['alpha']:.2f}"
              + (f" DEGENERATE: {fit['degenerate']}" if fit["degenerate"] else ""), flush=True)
    # (3) ensembles of the base size at the best weight decay
    members = [from_pretrained(tmp / f"wd{best_wd:g}-d{a.base}" / "model")]
    member_names = [f"wd{best_wd:g}-d{a.base}"]
    for seed in range(1, a.members):
        name = f"wd{best_wd:g}-d{a.base}-seed{seed}"
        members.append(train(name, a.base, best_wd, seed)); member_names.append(name)
    ens = {}
    for k in range(1, a.members + 1):
        for mode in ("probs", "logits"):
            vals = []
            for combo in itertools.combinations(range(a.members), k):   # every subset of k members, then their mean
                ps, c = eval_per_sample(Ensemble([members[i] for i in combo], mode), val, collator)
                vals.append(ps)
            mean_ps = torch.stack(vals).mean(0)
            ens[(k, mode)] = mean_ps
    ks = list(range(1, a.members + 1))
    ens_fit = {mode: bootstrap_fit(ks, torch.stack([ens[(k, mode)] for k in ks]), counts) for mode in ("probs", "logits")} if a.members >= 3 else {}
    ensembles = {mode: [{"members": k, "val_loss": float((ens[(k, mode)] * counts).sum() / counts.sum())} for k in ks] for mode in ("probs", "logits")}
    for mode, f in ens_fit.items(): print(f"ensembles ({mode}): E = {f['E']:.3f} +- {f['E_std']:.3f}", flush=True)
    # (4) distil the full ensemble into one student of the base size
    teacher = Ensemble(members, "probs")
    student = train(f"student-d{a.base}", a.base, best_wd, 100, loss_fn=DistillLoss(teacher, weight=0.5))
    single = runs[member_names[0]]["val_loss"]
    ens_loss = ensembles["probs"][-1]["val_loss"]
    distill = {"student": runs[f"student-d{a.base}"]["val_loss"], "single": single,
               "single_mean_over_members": mean_std([runs[n]["val_loss"] for n in member_names])[0],
               "ensemble": ens_loss, "teacher_members": a.members, "weight": 0.5, "temperature": 1.0}
    gain = distill["single_mean_over_members"] - ens_loss
    distill["retained_fraction"] = (distill["single_mean_over_members"] - distill["student"]) / gain if gain > 0 else None
    print(f"distillation: {distill}", flush=True)
    path = write_results(a.out, "infinite_compute", prov,
        setup=setup,
        best_wd=best_wd, runs=runs, size_sweeps=sweeps, ensembles=ensembles, ensemble_fits=ens_fit, distillation=distill)
    shutil.rmtree(tmp)
    print(f"wrote {path}")

if __name__ == "__main__": main()
