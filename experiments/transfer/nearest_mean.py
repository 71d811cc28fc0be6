"""A nearest-mean baseline for continual learning (Janson et al. 2022) at lab scale: wordnet-supersense's 8 classes
split into 4 tasks of 2 classes seen in sequence. A nearest-class-mean classifier on frozen pretrained features,
updated one batch at a time (no gradient), against sequential fine-tuning of encoder and head through the tasks (the
forgetting baseline), a linear head trained task after task on the same frozen features, and the joint
(non-incremental) references: a linear probe on the frozen features and a fine-tune on all classes at once. Metric:
accuracy on every class seen so far, after each task, and its average over the tasks. Seeds pick the class order, the
per-class training subset and the fine-tuning seed. Encoders: the shipped lab-ref and MiniLM-L6 (real pretrained),
both with every arm.

    python experiments/transfer/nearest_mean.py --threads 2      # writes results/transfer/nearest_mean/results.json
    python experiments/transfer/nearest_mean.py --quick --out /tmp/nmc   # a smoke run (one seed, a few examples per class)

The chapter nbs/transfer/01_nearest_mean.ipynb plots results/transfer/nearest_mean/results.json.
"""
import sys, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import torch
from mosaiclab.experiment import experiment_parser, provenance, write_results, paired_verdict, mean_std
from mosaiclab.finetune import FinetuneConfig, load_for_finetuning, tokenizer_for, task_spec, load_examples, encode_examples, collate
from mosaiclab.science.probes import pooled_features
from mosaiclab.transfer.nearest_mean import (class_incremental_tasks, per_class_subset, nmc_stream, joint_probe,
                                             sequential_head, sequential_finetune)

TASK = "wordnet-supersense"
ARMS = ("nmc", "nmc_centred", "sequential_head", "joint_probe", "sequential_finetune", "joint_finetune")

def verdicts(runs: dict) -> dict:
    "NMC against each other arm, paired over seeds: on the average incremental accuracy, and on the final (all-class) accuracy."
    out = {}
    for other in ("sequential_finetune", "sequential_head", "joint_probe", "joint_finetune"):
        if other not in runs or len(runs[other]) < 1: continue
        for what in ("average", "final"):
            if other == "joint_finetune" and what == "average": continue   # one stage only: all classes at once
            a = {s: r[what] for s, r in runs["nmc"].items()}
            b = {s: r[what] for s, r in runs[other].items()}
            # NMC beats the forgetting baselines (+1); against the joint references the claim is "rivals": either way (0)
            out[f"nmc_vs_{other}/{what}"] = paired_verdict(a, b, sign=+1 if other.startswith("sequential") else 0)
    return out

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1, 2), out=ROOT / "results" / "transfer" / "nearest_mean")
    ap.add_argument("--encoders", nargs="+", default=["lab-ref", "minilm"], help="frozen encoders (load_for_finetuning names)")
    ap.add_argument("--finetune-encoders", nargs="*", default=["lab-ref", "minilm"], help="the encoders that also get the fine-tuning arms")
    ap.add_argument("--n-tasks", type=int, default=4)
    ap.add_argument("--per-class", type=int, default=64, help="training examples of each class (the same subset for every arm)")
    ap.add_argument("--epochs", type=float, default=3, help="fine-tuning epochs over each task's data")
    ap.add_argument("--max-len", type=int, default=64)
    a = ap.parse_args()
    max_eval = None
    if a.quick: a.seeds, a.encoders, a.per_class, a.epochs, max_eval = a.seeds[:1], ["lab-ref"], 8, 1, 96
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    spec = task_spec(TASK)
    cfg0 = FinetuneConfig.lab(TASK).replace(epochs=a.epochs, max_len=a.max_len)
    setup = {"task": TASK, "n_classes": spec.num_labels, "n_tasks": a.n_tasks, "per_class": a.per_class, "epochs_per_task": a.epochs,
             "max_len": a.max_len, "max_eval_samples": max_eval, "seeds": a.seeds, "finetune": cfg0.to_dict(), "arms": list(ARMS),
             "tasks": {s: class_incremental_tasks(spec.num_labels, a.n_tasks, s) for s in a.seeds}}
    results = {}
    def write(complete):
        return write_results(a.out, "nearest_mean", prov, complete=complete, setup=setup, encoders=results)
    rows = load_examples(spec, "train")
    val_rows = load_examples(spec, "validation")
    if max_eval: val_rows = [val_rows[i] for i in sorted(torch.randperm(len(val_rows), generator=torch.Generator().manual_seed(0))[:max_eval].tolist())]
    y_all = torch.tensor([r["label"] for r in rows])
    keeps = {s: per_class_subset(y_all, a.per_class, seed=s) for s in a.seeds}
    used = sorted(set().union(*(k.tolist() for k in keeps.values())))   # only the training rows some seed uses are encoded
    row_of = {i: j for j, i in enumerate(used)}
    for enc in a.encoders:
        te = time.time()
        model, tok_name = load_for_finetuning(enc, spec)
        tok = tokenizer_for(model, tok_name)
        pad = tok.token_to_id("[PAD]")
        train_ex = encode_examples([rows[i] for i in used], spec, tok, a.max_len)
        test_ex = encode_examples(val_rows, spec, tok, a.max_len)
        # frozen, mean-pooled features of every example, once: the encoder never changes in the frozen arms
        Xtr, Xte = (torch.cat([pooled_features(model, collate(ex[i:i + 128], pad, False)) for i in range(0, len(ex), 128)]).float()
                    for ex in (train_ex, test_ex))
        ytr, yte = (torch.tensor([y for *_, y in ex]) for ex in (train_ex, test_ex))
        feat_s = time.time() - te
        runs = {arm: {} for arm in ARMS}
        for s in a.seeds:
            tasks = setup["tasks"][s]
            keep = torch.tensor([row_of[i] for i in keeps[s].tolist()])
            X, y = Xtr[keep], ytr[keep]
            runs["nmc"][s] = nmc_stream(X, y, Xte, yte, tasks, "l2")
            runs["nmc_centred"][s] = nmc_stream(X, y, Xte, yte, tasks, "centred_cosine")
            runs["sequential_head"][s] = sequential_head(X, y, Xte, yte, tasks, seed=s)
            runs["joint_probe"][s] = joint_probe(X, y, Xte, yte, tasks)
            line = f"{enc} seed {s} {tasks}: " + ", ".join(f"{k} {runs[k][s]['average']:.3f}/{runs[k][s]['final']:.3f}"
                                                           for k in ("nmc", "nmc_centred", "sequential_head", "joint_probe"))
            if enc in a.finetune_encoders:
                sub = [train_ex[i] for i in keep.tolist()]
                cfg = cfg0.replace(seed=s)
                for arm, arm_tasks in (("sequential_finetune", tasks), ("joint_finetune", [[c for k in tasks for c in k]])):
                    torch.manual_seed(s)   # the fresh head's initialisation
                    clf, _ = load_for_finetuning(enc, spec)
                    tf = time.time()
                    r = sequential_finetune(clf, sub, test_ex, arm_tasks, pad, cfg)
                    r.pop("curve"); r["seconds"] = time.time() - tf
                    runs[arm][s] = r
                    line += f", {arm} {r['average']:.3f}/{r['final']:.3f} ({r['seconds']:.0f} s)"
            print(line + "  (average/final)", flush=True)
        runs = {k: v for k, v in runs.items() if v}
        results[enc] = {"feature_dim": Xtr.shape[1], "feature_seconds": feat_s, "n_train_rows_encoded": len(used), "n_train": len(keep), "n_test": len(yte),
                        "runs": runs, "summary": {k: {w: mean_std([r[w] for r in v.values()]) for w in ("average", "final")} for k, v in runs.items()},
                        "verdicts": verdicts(runs)}
        for k, v in results[enc]["verdicts"].items(): print(f"  {enc} {k}: {v['mean']:+.3f} ± {v['std']:.3f} ({v['verdict']})")
        path = write(complete=enc == a.encoders[-1])   # after every encoder: a stopped run still leaves what it measured
    print(f"wrote {path}")

if __name__ == "__main__": main()
