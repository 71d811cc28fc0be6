"""PRIOR at toy scale: a conditioned-caption task where only some caption tokens depend on the "image".

Each example is an image of three attributes (count 5 values, colour 8, shape 8), shown to the model as three visual
tokens (each attribute value has 4 interchangeable visual tokens, in shuffled order), and a caption

    <det> <noun> of <count> <colour> <shape> by <name> .

whose det/noun (3 choices each) and photographer name (30) are random (text noise: neither the image nor the text
predicts them), "of", "by" and "." are fixed (the text predicts them), and count/colour/shape depend on the image.

1. a text-only reference LM is trained on the captions alone (no visual tokens);
2. the captioner (our encoder as a prefix LM: visual tokens + BOS bidirectional, caption causal) is trained with
   plain next-token loss, with PRIOR's weights from that reference, and (the control) with plain loss times *fixed*
   per-slot weights, each slot's mean PRIOR weight: the same extra push on image tokens on average, but no
   per-token adaptivity. Same seeds, data and steps for every arm;
3. teacher-forced accuracy on each token type is measured on held-out examples during training.

    python experiments/objectives/prior.py            # writes results/objectives/prior/results.json (1 thread; 39 min on a loaded machine)
    python experiments/objectives/prior.py --quick --out /tmp/prior   # a smoke run (20 steps, one seed)
    python experiments/objectives/prior.py --methods fixed --file control.json   # the control arm alone, beside results.json

The chapter nbs/objectives/02_prior.ipynb plots results/objectives/prior/results.json.
"""
import time
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
ROOT = Path(__file__).resolve().parents[2]
from mosaiclab.experiment import experiment_parser, provenance, write_results
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM
from mosaiclab.objectives.prior import TokenReweighter, scored_tokens
from mosaiclab.objectives.ul2 import collate_prefix_lm, MODEL_KEYS

PAD, BOS = 0, 1
ATTRS = {"count": 5, "colour": 8, "shape": 8}
SYN = 4                                                           # visual tokens per attribute value
VIS0 = 2
vis_base, n = {}, VIS0
for a, k in ATTRS.items(): vis_base[a] = n; n += k * SYN
W0 = n                                                            # words start here
SLOTS = [("det", 3), ("noun", 3), ("of", 1), ("count", 5), ("colour", 8), ("shape", 8), ("by", 1), ("name", 30), (".", 1)]
word_base, m = {}, W0
for s, k in SLOTS: word_base[s] = m; m += k
VOCAB = m
KIND = {"det": "noise", "noun": "noise", "name": "noise", "of": "template", "by": "template", ".": "template",
        "count": "image", "colour": "image", "shape": "image"}

def sample(n, seed):
    "(visual token lists, caption lists) for n random examples."
    rs = np.random.RandomState(seed)
    vis, cap = [], []
    for _ in range(n):
        val = {a: rs.randint(k) for a, k in ATTRS.items()}
        v = [vis_base[a] + val[a] * SYN + rs.randint(SYN) for a in ATTRS]
        rs.shuffle(v)
        c = [word_base[s] + (val[s] if s in ATTRS else rs.randint(k)) for s, k in SLOTS]
        vis.append(v); cap.append(c)
    return vis, cap

def batches(vis, cap):
    "The captioner's batch (visual tokens + BOS as the bidirectional prefix) and the reference's (BOS only)."
    img = collate_prefix_lm([(v + [BOS], c) for v, c in zip(vis, cap)], PAD)
    txt = collate_prefix_lm([([BOS], c) for c in cap], PAD)
    return {k: img[k] for k in MODEL_KEYS}, {k: txt[k] for k in MODEL_KEYS}

def make_model(a, seed):
    torch.manual_seed(seed)
    return MosaicBertForMaskedLM(MosaicBertConfig.lab().replace(
        vocab_size=VOCAB, d_model=a.d_model, n_layers=2, n_heads=4, d_ff=2 * a.d_model, hidden_dropout=0.0,
        attention_pattern="prefix", max_position_embeddings=64))

def per_kind(model, batch):
    "Teacher-forced accuracy and loss per caption slot kind (image / template / noise)."
    with torch.no_grad():
        logits, targets, _ = scored_tokens(model(**batch))
    slot = np.array([KIND[s] for s, _ in SLOTS] * (targets.numel() // len(SLOTS)))   # captions all have len(SLOTS) tokens
    ok = (logits.argmax(-1) == targets).numpy()
    ce = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none").numpy()
    return {k: {"accuracy": float(ok[slot == k].mean()), "loss": float(ce[slot == k].mean())} for k in ("image", "template", "noise")}

def fixed_slot_loss(out, slot_weight: torch.Tensor) -> torch.Tensor:
    "The control: next-token loss with a fixed weight per caption slot (len(SLOTS),), the same for every caption."
    logits, targets, _ = scored_tokens(out)
    w = slot_weight.repeat(targets.numel() // len(SLOTS))                  # captions all have len(SLOTS) scored tokens
    return (w * F.cross_entropy(logits.float(), targets, reduction="none")).mean()

def train(model, a, data, step_fn, eval_batch):
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    curve = []
    for step in range(a.steps + 1):
        if step % a.eval_every == 0 or step == a.steps:
            model.eval(); curve.append({"step": step, **per_kind(model, eval_batch)}); model.train()
        if step == a.steps: break
        img, txt = data[step]
        loss = step_fn(model, img, txt)
        opt.zero_grad(); loss.backward(); opt.step()
    return curve

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1, 2, 3), out=ROOT / "results" / "objectives" / "prior")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--ref-steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--methods", nargs="+", default=["plain", "prior", "fixed"], choices=["plain", "prior", "fixed"],
                    help="arms: plain NTP, PRIOR, and the control (fixed per-slot weights = each slot's mean PRIOR weight)")
    ap.add_argument("--file", default="results.json", help="the results file inside --out (e.g. control.json for one arm)")
    a = ap.parse_args()
    if a.quick: a.seeds, a.steps, a.ref_steps = a.seeds[:1], 20, 20
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    ev_img, ev_txt = batches(*sample(512, seed=999))
    # 1. the text-only reference, trained once on captions alone
    ref = make_model(a, 12345)
    ref_data = [batches(*sample(a.batch, seed=50_000 + s))[1] for s in range(a.ref_steps)]
    ref_curve = train(ref, a.__class__(**{**vars(a), "steps": a.ref_steps}), [(None, t) for t in ref_data],
                      lambda m, img, txt: m(**txt).loss, ev_txt)
    reweigh = TokenReweighter(ref, alpha=a.alpha)
    w, _, _ = reweigh.weights(ev_txt)
    mean_weight = {s: float(w.reshape(-1, len(SLOTS))[:, i].mean()) for i, (s, _) in enumerate(SLOTS)}
    slot_weight = torch.tensor([mean_weight[s] for s, _ in SLOTS])        # the control's fixed weights (mean 1 per caption)
    print("reference:", {k: round(v["accuracy"], 3) for k, v in ref_curve[-1].items() if k != "step"},
          "mean PRIOR weight per slot:", {k: round(v, 2) for k, v in mean_weight.items()}, flush=True)
    # 2. plain vs PRIOR captioners, same seeds, same data
    runs = []
    for seed in a.seeds:
        data = [batches(*sample(a.batch, seed=100_000 * (seed + 1) + s)) for s in range(a.steps)]
        for method in a.methods:
            t1 = time.time()
            fn = {"plain": lambda m, img, txt: m(**img).loss, "prior": lambda m, img, txt: reweigh.loss(m(**img), txt),
                  "fixed": lambda m, img, txt: fixed_slot_loss(m(**img), slot_weight)}[method]
            curve = train(make_model(a, seed), a, data, fn, ev_img)
            runs.append({"method": method, "seed": seed, "curve": curve, "seconds": time.time() - t1})
            print(method, seed, {k: round(v["accuracy"], 3) for k, v in curve[-1].items() if k != "step"},
                  f"{time.time() - t1:.0f}s", flush=True)
    path = write_results(a.out, "prior", prov, filename=a.file,
        config={**{k: v for k, v in vars(a).items() if k not in ("out", "allow_dirty", "file")}, "slots": SLOTS, "slot_kind": KIND,
                "attributes": ATTRS, "visual_synonyms": SYN, "vocab_size": VOCAB, "normalize": "sequence"},
        reference={"curve": ref_curve, "mean_weight_per_slot": mean_weight}, runs=runs)
    print(f"wrote {path}")

if __name__ == "__main__": main()
