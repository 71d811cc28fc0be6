"""Oscillation-free quantization at lab scale: a tiny ViT on scikit-learn's 8x8 digits, trained in full precision,
then given 2-bit weights five ways from the same start, data order and schedule: LSQ with a learned scale, LSQ with its
scale frozen at init (the control that isolates OFQ's claim about learned scales), StatsQ, StatsQ + CGA, StatsQ + CGA + QKR.
Records per arm and seed: oscillations and code changes per step (main phase and final phase), how far the scales moved,
held-out accuracy and the held-out prediction count of every class.

    python experiments/parameterisation/ofq.py                  # writes results/parameterisation/ofq/
    python experiments/parameterisation/ofq.py --quick --out /tmp/ofq   # a smoke run

The chapter nbs/parameterisation/06_ofq.ipynb plots results/parameterisation/ofq/results.json.
"""
import copy, math, statistics
from pathlib import Path
import torch
import torch.nn.functional as F
from torch import nn
from sklearn.datasets import load_digits
ROOT = Path(__file__).resolve().parents[2]
from mosaiclab.experiment import experiment_parser, mean_std, provenance, write_results
from mosaiclab.parameterisation.ofq import QuantLinear, QKRAttention, OscillationMonitor, ConfidenceGuidedAnnealing, statsq_scale
from mosaiclab.parameterisation.linears import replace_linears

METHODS = ["lsq", "lsq-frozen", "statsq", "statsq+cga", "statsq+cga+qkr"]   # lsq-frozen: LSQ(learnable=False), as in the official lsq.py

class Block(nn.Module):
    "Pre-LN ViT block; attention is ordinary (qkv + proj) or QKR."
    def __init__(self, d, h, d_ff):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.h = h
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)
        self.qkr = None

    def attn(self, x):
        if self.qkr is not None: return self.qkr(x)
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, D // self.h).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, D))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

class TinyViT(nn.Module):
    "8x8 image -> 16 patches of 2x2 pixels + a class token -> blocks -> linear head on the class token."
    def __init__(self, d=64, h=4, layers=2, d_ff=128, patch=2, n_classes=10):
        super().__init__()
        self.patch = patch
        n = (8 // patch) ** 2
        self.embed = nn.Linear(patch * patch, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, h, d_ff) for _ in range(layers)])
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, n_classes)

    def forward(self, img):  # (B, 8, 8)
        B, p = img.shape[0], self.patch
        x = img.view(B, 8 // p, p, 8 // p, p).permute(0, 1, 3, 2, 4).reshape(B, -1, p * p)   # (B, 16, 4)
        x = torch.cat([self.cls.expand(B, -1, -1), self.embed(x)], 1) + self.pos
        for b in self.blocks: x = b(x)
        return self.head(self.ln(x[:, 0]))

def quantize(fp: TinyViT, method: str, bits: int) -> TinyViT:
    "A copy of the full-precision model with every Linear inside the blocks quantised (the embedding and head stay fp, as in the paper)."
    m = copy.deepcopy(fp)
    quantiser = "lsq" if method.startswith("lsq") else "statsq"
    learn = method != "lsq-frozen"
    if method.endswith("qkr"):
        for b in m.blocks:
            D = b.qkv.in_features
            a = QKRAttention(D, b.h, bits=bits, method=quantiser)
            with torch.no_grad():   # start from the trained q, k, v, proj (the official pretrained_initialized path)
                a.q.weight.copy_(b.qkv.weight[:D]); a.k.weight.copy_(b.qkv.weight[D:2 * D])
                a.v.weight.copy_(b.qkv.weight[2 * D:]); a.v.bias.copy_(b.qkv.bias[2 * D:])
                a.proj.weight.copy_(b.proj.weight); a.proj.bias.copy_(b.proj.bias)
            b.qkr = a
            del b.qkv, b.proj
            b.qkv = b.proj = None
    replace_linears(m, lambda n, lin: QuantLinear.from_linear(lin, bits, quantiser, learn),
                    include=lambda n, lin: n.startswith("blocks.") and ".qkr." not in n)
    return m

def accuracy(model, X, Y):
    model.eval()
    with torch.no_grad(): a = (model(X).argmax(-1) == Y).float().mean().item()
    model.train(); return a

def prediction_counts(model, X, n_classes=10) -> list[int]:
    "How many held-out images the model assigns to each class (a collapsed model puts them all in one)."
    model.eval()
    with torch.no_grad(): c = torch.bincount(model(X).argmax(-1), minlength=n_classes).tolist()
    model.train(); return c

def scales(model) -> torch.Tensor:
    "Every quantised layer's per-row scale now, concatenated: LSQ's parameter, or StatsQ's 2 mean|w| (QKR's product included)."
    out = []
    for m in model.modules():
        if isinstance(m, QuantLinear):
            out.append(m.quantizer.scale.detach().clone() if m.method == "lsq" else statsq_scale(m.weight).flatten())
        elif isinstance(m, QKRAttention):
            H, dh, D = m.n_heads, m.d_head, m.q.weight.shape[1]
            wqk = m.q.weight.view(H, dh, D).transpose(1, 2) @ m.k.weight.view(H, dh, D)
            out.append(statsq_scale(wqk.reshape(H * D, D)).flatten())
    return torch.cat(out)

def change_rate(mon) -> float:
    "Code changes (in either direction) per weight per step over the monitor's window; oscillations are a subset."
    ch = sum(float(t.changes.sum()) for t in mon.trackers.values() if t.steps)
    steps = max((t.steps for t in mon.trackers.values()), default=0)
    return ch / (mon.n_weights * steps) if steps else 0.0

def param_groups(model, wd):
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]   # biases, norms, LSQ scales: no decay (timm's default)
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]

def run_qat(fp, method, seed, a, data):
    Xtr, Ytr, Xte, Yte = data
    torch.manual_seed(seed)
    model = quantize(fp, method, a.bits)
    opt = torch.optim.AdamW(param_groups(model, a.weight_decay), lr=a.lr)
    lr_min = a.lr / a.lr_ratio
    total = a.steps + a.final_steps
    sched = lambda t: lr_min + 0.5 * (a.lr - lr_min) * (1 + math.cos(math.pi * t / a.steps)) if t < a.steps else lr_min
    mon = OscillationMonitor(model); mon.update()
    s0 = scales(model)
    cga = None
    g = torch.Generator().manual_seed(seed)
    curve = {"step": [], "osc_per_1000": [], "test_acc": []}
    osc_window, frozen = [], []
    for t in range(total):
        if t == a.steps:
            main_rate, main_frac, main_change = mon.rate(), mon.fraction_oscillating(), change_rate(mon)
            s_main = scales(model)
            mon.reset(); mon.update()          # measure the final phase on its own
            if "cga" in method: cga = ConfidenceGuidedAnnealing(model, a.boundary_range)
        for grp in opt.param_groups: grp["lr"] = sched(t)
        idx = torch.randint(0, len(Xtr), (a.batch,), generator=g)
        loss = F.cross_entropy(model(Xtr[idx]), Ytr[idx])
        opt.zero_grad(); loss.backward()
        if cga is not None: frozen.append(cga.before_step())
        opt.step()
        if cga is not None: cga.after_step()
        n_osc = mon.update()
        osc_window.append(n_osc)
        if (t + 1) % a.log_every == 0:
            curve["step"].append(t + 1)
            curve["osc_per_1000"].append(1000 * statistics.mean(osc_window) / mon.n_weights)
            curve["test_acc"].append(accuracy(model, Xte, Yte))
            osc_window = []
    drift = lambda s: ((s - s0).abs() / s0).mean().item()   # mean relative move of a row's scale from its value at the start of QAT
    return {"method": method, "seed": seed, "test_acc": accuracy(model, Xte, Yte), "pred_counts": prediction_counts(model, Xte),
            "main_osc_rate": main_rate, "main_osc_fraction": main_frac, "main_change_rate": main_change,
            "final_osc_rate": mon.rate(), "final_osc_fraction": mon.fraction_oscillating(), "final_change_rate": change_rate(mon),
            "scale_drift_main": drift(s_main), "scale_drift_end": drift(scales(model)),
            "quantized_weights": mon.n_weights, "cga_frozen_fraction": statistics.mean(frozen) if frozen else None,
            "curve": curve}

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1, 2), out=ROOT / "results" / "parameterisation" / "ofq")
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--bits", type=int, default=2)
    ap.add_argument("--fp-steps", type=int, default=400)
    ap.add_argument("--steps", type=int, default=300, help="QAT steps with cosine decay")
    ap.add_argument("--final-steps", type=int, default=150, help="final phase at lr / lr_ratio (CGA runs here)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-ratio", type=float, default=50.0, help="official: 5.47e-4 peak -> 1e-5 min_lr")
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--boundary-range", type=float, default=0.005)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--log-every", type=int, default=20)
    a = ap.parse_args()
    if a.quick: a.seeds, a.fp_steps, a.steps, a.final_steps = a.seeds[:1], 100, 60, 40
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    d = load_digits()
    X = torch.tensor(d.images, dtype=torch.float32) / 16.0
    Y = torch.tensor(d.target)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(1234))   # one fixed split for all seeds
    tr, te = perm[:1437], perm[1437:]
    data = (X[tr], Y[tr], X[te], Y[te])
    runs, fp_accs, fp_counts = [], [], []
    for seed in a.seeds:
        torch.manual_seed(seed)
        fp = TinyViT()
        opt = torch.optim.AdamW(param_groups(fp, a.weight_decay), lr=2e-3)
        g = torch.Generator().manual_seed(seed)
        for t in range(a.fp_steps):
            for grp in opt.param_groups: grp["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * t / a.fp_steps))
            idx = torch.randint(0, len(data[0]), (a.batch,), generator=g)
            loss = F.cross_entropy(fp(data[0][idx]), data[1][idx])
            opt.zero_grad(); loss.backward(); opt.step()
        fp_accs.append(accuracy(fp, data[2], data[3])); fp_counts.append(prediction_counts(fp, data[2]))
        print(f"seed {seed}: full precision accuracy {fp_accs[-1]:.3f}", flush=True)
        for method in a.methods:
            r = run_qat(fp, method, seed, a, data)
            runs.append(r)
            print(f"  {method:16s} acc {r['test_acc']:.3f}  osc/1000 weight-steps main {1000 * r['main_osc_rate']:.3f} "
                  f"final {1000 * r['final_osc_rate']:.4f}  scale drift {r['scale_drift_main']:.3f}  frozen {r['cga_frozen_fraction']}  "
                  f"predictions per class {r['pred_counts']}", flush=True)
    summary = {}
    for m in a.methods:
        rs = [r for r in runs if r["method"] == m]
        acc, acc_sd, n = mean_std([r["test_acc"] for r in rs])
        osc, osc_sd, _ = mean_std([r["final_osc_rate"] for r in rs])
        main_osc, main_osc_sd, _ = mean_std([r["main_osc_rate"] for r in rs])
        summary[m] = {"acc_mean": acc, "acc_std": acc_sd, "osc_rate_mean": osc, "osc_rate_std": osc_sd,
                      "osc_frac_mean": mean_std([r["final_osc_fraction"] for r in rs])[0],
                      "main_osc_rate_mean": main_osc, "main_osc_rate_std": main_osc_sd,
                      "main_osc_frac_mean": mean_std([r["main_osc_fraction"] for r in rs])[0],
                      "main_change_rate_mean": mean_std([r["main_change_rate"] for r in rs])[0],
                      "scale_drift_main_mean": mean_std([r["scale_drift_main"] for r in rs])[0],
                      "min_pred_count": min(min(r["pred_counts"]) for r in rs), "n_seeds": n}
    cfg = {k: v for k, v in vars(a).items() if k not in ("out", "allow_dirty")}
    fp_mean, fp_std, _ = mean_std(fp_accs)
    write_results(a.out, "ofq", prov, config=cfg, model="TinyViT(d=64, heads=4, layers=2, d_ff=128, 2x2 patches)",
                  data="sklearn load_digits, fixed split 1437 train / 360 held out",
                  fp_accuracy={"mean": fp_mean, "std": fp_std, "per_seed": fp_accs, "pred_counts": fp_counts},
                  test_class_counts=torch.bincount(data[3], minlength=10).tolist(), summary=summary, runs=runs)
    for m, s in summary.items():
        print(f"{m:16s} acc {s['acc_mean']:.3f} +- {s['acc_std']:.3f}  osc/1000 main {1000 * s['main_osc_rate_mean']:.3f} "
              f"+- {1000 * s['main_osc_rate_std']:.3f}, final {1000 * s['osc_rate_mean']:.4f} +- {1000 * s['osc_rate_std']:.4f}")

if __name__ == "__main__": main()
