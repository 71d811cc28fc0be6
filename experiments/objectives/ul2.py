"""UL2 at toy scale: one small prefix LM (our encoder with a prefix mask) trained with a causal-LM objective, with
span corruption only (T5's R-denoiser) and with UL2's mixture of denoisers; evaluated on infilling and continuation,
and the mixture evaluated under each mode token.

The text is a synthetic language whose optimum is known: a sparse random Markov chain over 64 words (each word has 4
successors with probabilities .55/.25/.15/.05). A perfect model's accuracy is computable exactly, so every number is
shown against its ceiling, and the value of the right-hand context for infilling is visible.

    python experiments/objectives/ul2.py     # writes results/objectives/ul2/results.json (1 thread; minutes idle, 45 min on a loaded machine)
    python experiments/objectives/ul2.py --objectives span mixture --steps 1200 --seeds 0 --eval-at 300 600 900 \\
        --out /tmp/ul2-long                  # the span objectives 4x longer, with a learning curve (an exercise)
    python experiments/objectives/ul2.py --quick --out /tmp/ul2   # a smoke run (30 steps, one seed, 64 eval texts)
    python experiments/objectives/ul2.py --equal-targets --out /tmp/ul2-eq   # every objective sees the causal LM's target tokens

The chapter nbs/objectives/01_ul2.ipynb plots results/objectives/ul2/results.json.
"""
import argparse, random, time
from pathlib import Path
import numpy as np
import torch
ROOT = Path(__file__).resolve().parents[2]
from mosaiclab.experiment import experiment_parser, provenance, write_results
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM
from mosaiclab.objectives.ul2 import (CausalLMCollator, MixtureOfDenoisers, SpanCorruptCollator, collate_prefix_lm, random_spans_mask,
                           span_corrupt, target_metrics, MODEL_KEYS, UL2_DENOISERS)

PAD, MODES, SENTINELS, WORD0, N_WORDS = 0, {"R": 1, "S": 2, "X": 3}, list(range(4, 20)), 20, 64
VOCAB = WORD0 + N_WORDS
L, PREFIX = 48, 32   # text length; continuation task: 32 words given, 16 to predict

def markov_chain(seed: int = 1234, fanout: int = 4, probs=(0.55, 0.25, 0.15, 0.05)) -> np.ndarray:
    "Transition matrix (N_WORDS, N_WORDS): each word has `fanout` random successors with the given probabilities."
    rs = np.random.RandomState(seed)
    P = np.zeros((N_WORDS, N_WORDS))
    for w in range(N_WORDS): P[w, rs.choice(N_WORDS, fanout, replace=False)] = probs
    return P

def sample_texts(P: np.ndarray, n: int, seed: int) -> list[list[int]]:
    rs = np.random.RandomState(seed)
    cum = P.cumsum(1)
    w = np.zeros((n, L), dtype=np.int64)
    w[:, 0] = rs.randint(N_WORDS, size=n)
    for i in range(1, L):  # inverse-CDF sampling of every text's next word at once
        w[:, i] = np.minimum((cum[w[:, i - 1]] < rs.rand(n)[:, None]).sum(1), N_WORDS - 1)
    return (w + WORD0).tolist()

# -- evaluation sets ----------------------------------------------------------------------------------------------

def continuation_pairs(texts, mode, fmt):
    "fmt 'S': ([mode] first 32) -> last 16; 'span': ([mode] first 32 <s0>) -> (<s0> last 16); 'plain': () + text, scored on the last 16."
    if fmt == "S": return [([mode] + t[:PREFIX], t[PREFIX:]) for t in texts]
    if fmt == "span": return [([mode] + t[:PREFIX] + [SENTINELS[0]], [SENTINELS[0]] + t[PREFIX:]) for t in texts]
    return [(t[:PREFIX], t[PREFIX:]) for t in texts]          # scored under a causal mask (prefix 0)

def infill_masks(n, seed):
    rng = random.Random(seed)
    return [random_spans_mask(L, 0.15, 3, rng) for _ in range(n)]

def infill_batch(texts, masks, mode, causal):
    "R-style infilling, scored on the corrupted words only. causal=True: the plain text under a causal mask (left context only)."
    if causal:
        ids = torch.tensor(texts)
        labels = torch.full_like(ids, -100)
        for b, m in enumerate(masks):
            for i in range(1, L):
                if m[i]: labels[b, i - 1] = ids[b, i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
                "prefix_lengths": torch.zeros(len(texts), dtype=torch.long)}
    batch = collate_prefix_lm([(([mode] if mode else []) + i, t) for i, t in (span_corrupt(x, m, SENTINELS)
                                                                             for x, m in zip(texts, masks))], PAD)
    batch["labels"][batch["labels"] < WORD0] = -100            # sentinels are not scored: only the hidden words
    return batch

def oracle(P, texts, masks):
    "Accuracy of the exact predictor: continuation (argmax P(x|prev)); infilling with left context only and with both sides."
    cont = np.mean([[P[t[i - 1] - WORD0].argmax() == t[i] - WORD0 for i in range(PREFIX, L)] for t in texts])
    Pk = [np.eye(N_WORDS)] + [np.linalg.matrix_power(P, k) for k in range(1, L)]
    left, both = [], []
    for t, m in zip(texts, masks):
        w = [x - WORD0 for x in t]
        for i in range(1, L):
            if not m[i]: continue
            j = i
            while m[j]: j += 1                                  # w[j]: the first word after the span
            score = P[w[i - 1]] * Pk[j - i][:, w[j]]            # P(x | left) P(right | x), j - i steps later
            left.append(P[w[i - 1]].argmax() == w[i]); both.append(score.argmax() == w[i])
    return {"continuation": float(cont), "infill_left_only": float(np.mean(left)), "infill_both_sides": float(np.mean(both))}

# -- training -----------------------------------------------------------------------------------------------------

def model_config(a):
    return MosaicBertConfig.lab().replace(vocab_size=VOCAB, d_model=a.d_model, n_layers=a.layers, n_heads=4, d_ff=2 * a.d_model,
                                          hidden_dropout=0.0, attention_pattern="prefix", max_position_embeddings=128)

def collator(objective, seed):
    return {"causal": CausalLMCollator(PAD),
            "span": SpanCorruptCollator(SENTINELS, 3, 0.15, mode_id=MODES["R"], pad_id=PAD, seed=seed),
            "mixture": MixtureOfDenoisers(MODES, SENTINELS, UL2_DENOISERS, pad_id=PAD, seed=seed)}[objective]

def targets_per_step(objective, P, batch, n_batches=50, seed=987_654):
    "Mean target tokens per training batch of an objective, from its own collator on fresh texts (a separate rng)."
    texts, c = sample_texts(P, n_batches * batch, seed), collator(objective, seed)
    return sum(int((c(texts[i * batch:(i + 1) * batch])["labels"] != -100).sum()) for i in range(n_batches)) / n_batches

def train(objective, seed, P, a, on_checkpoint=None):
    "Train one model for a.steps steps; (model, loss curve, target tokens it was trained on)."
    torch.manual_seed(seed)
    model = MosaicBertForMaskedLM(model_config(a))
    collate = collator(objective, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 30) * max(0.05, 1 - s / a.steps))
    data = sample_texts(P, a.steps * a.batch, seed=10_000 + seed)   # fresh text every step: no repetition
    curve, targets = [], 0
    model.train()
    for step in range(a.steps):
        batch = collate(data[step * a.batch:(step + 1) * a.batch])
        targets += int((batch["labels"] != -100).sum())
        loss = model(**{k: batch[k] for k in MODEL_KEYS}).loss
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        if step % 25 == 0 or step == a.steps - 1: curve.append({"step": step, "loss": loss.item()})
        if on_checkpoint and step + 1 in a.eval_at and step + 1 < a.steps:
            on_checkpoint(step + 1, model.eval()); model.train()
    return model.eval(), curve, targets

def evaluate(model, objective, texts, masks):
    "{task: {mode: metrics}}: each model in the format it was trained on; the mixture under every mode token."
    res = {"continuation": {}, "infilling": {}}
    if objective == "causal":
        b = collate_prefix_lm(continuation_pairs(texts, None, "plain"), PAD, bidirectional_inputs=False)
        res["continuation"]["-"] = target_metrics(model, b)
        res["infilling"]["-"] = target_metrics(model, infill_batch(texts, masks, None, causal=True))
    elif objective == "span":
        res["continuation"]["[R]"] = target_metrics(model, collate_prefix_lm(continuation_pairs(texts, MODES["R"], "span"), PAD))
        res["infilling"]["[R]"] = target_metrics(model, infill_batch(texts, masks, MODES["R"], causal=False))
    else:
        for name, tok in MODES.items():
            res["continuation"][f"[{name}]"] = target_metrics(model, collate_prefix_lm(continuation_pairs(texts, tok, "S"), PAD))
            res["infilling"][f"[{name}]"] = target_metrics(model, infill_batch(texts, masks, tok, causal=False))
    return res

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1, 2), out=ROOT / "results" / "objectives" / "ul2")
    ap.add_argument("--objectives", nargs="+", default=["causal", "span", "mixture"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--eval-texts", type=int, default=1000)
    ap.add_argument("--eval-at", type=int, nargs="*", default=[], help="also evaluate after these steps (a learning curve)")
    ap.add_argument("--equal-targets", action="store_true",
                    help="train each objective for steps x (causal targets per step / its targets per step): equal target tokens")
    a = ap.parse_args()
    if a.quick: a.steps, a.seeds, a.eval_texts = 30, a.seeds[:1], 64
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)   # tiny models: one thread (the default) is fastest on a shared 2-core machine
    P = markov_chain()
    texts, masks = sample_texts(P, a.eval_texts, seed=999), infill_masks(a.eval_texts, seed=999)
    tps = {obj: targets_per_step(obj, P, a.batch) for obj in dict.fromkeys(["causal", *a.objectives])}
    steps = {obj: round(a.steps * tps["causal"] / tps[obj]) if a.equal_targets else a.steps for obj in a.objectives}
    print("target tokens per step:", {k: round(v, 1) for k, v in tps.items()}, "steps:", steps, flush=True)
    runs = []
    for seed in a.seeds:
        for obj in a.objectives:
            t1 = time.time()
            by_step = {}
            ao = argparse.Namespace(**{**vars(a), "steps": steps[obj]})
            model, curve, n_targets = train(obj, seed, P, ao, lambda step, m: by_step.__setitem__(step, evaluate(m, obj, texts, masks)))
            ev = by_step[steps[obj]] = evaluate(model, obj, texts, masks)
            runs.append({"objective": obj, "seed": seed, "steps": steps[obj], "targets": n_targets, "eval": ev, "eval_by_step": by_step,
                         "train_curve": curve, "seconds": time.time() - t1})
            print(obj, seed, {t: {m: round(v["accuracy"], 3) for m, v in d.items()} for t, d in ev.items()},
                  f"{time.time() - t1:.0f}s", flush=True)
    orc = oracle(P, texts, masks)
    path = write_results(a.out, "ul2", prov,
        config={**{k: v for k, v in vars(a).items() if k not in ("out", "allow_dirty")}, "text_length": L, "continuation_prefix": PREFIX,
                "n_words": N_WORDS, "markov_fanout_probs": [0.55, 0.25, 0.15, 0.05],
                "denoisers": [d.__dict__ for d in UL2_DENOISERS], "paradigm_weights": "equal (R, S, X)",
                "model": model_config(a).to_dict(), "targets_per_step": tps, "steps_by_objective": steps},
        oracle=orc, runs=runs)
    print("oracle", orc, f"wrote {path}")

if __name__ == "__main__": main()
