"""AquilaMoE's EfficientScale at lab scale: train a small dense MosaicBERT, grow it (scale-up: random padding vs
bert2BERT FPI vs AKI) to a 2x wider, 2x deeper dense model, upcycle the best grown model to a top-2, 4-expert MoE
(scale-out), and compare validation MLM loss against training FLOPs with the large dense model trained from scratch,
and with the grown dense model simply trained on for the MoE stage's FLOPs.

    python experiments/growth/aquilamoe.py              # writes results/growth/aquilamoe/results.json (seeds in parallel processes)
    python experiments/growth/aquilamoe.py --quick --out /tmp/aq   # a smoke run (a few steps of each stage, one seed)

The chapter nbs/growth/01_aquilamoe.ipynb plots results/growth/aquilamoe/results.json.
"""
import argparse, copy, dataclasses, math, shutil, tempfile, time
from pathlib import Path
import torch
ROOT = Path(__file__).resolve().parent.parent.parent
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM, flops_per_token, n_params
from mosaiclab.train import TrainConfig, Callback, DistInfo, evaluate, pretrain
from mosaiclab.data import PretrainingStream, load_tokenizer_for
from mosaiclab.mlm import MLMCollator
from mosaiclab.experiment import experiment_parser, lab_overrides, provenance, write_results
from mosaiclab.growth.aquilamoe import grow, upcycle_to_moe, moe_layers, moe_loss_fn, moe_flops_per_token

SMALL = MosaicBertConfig.lab().replace(d_model=64, n_layers=2, n_heads=2, d_ff=128)
LARGE = SMALL.replace(d_model=128, n_layers=4, n_heads=4, d_ff=256)
# the trainer's settings shared by every stage (each stage sets its own model and max_steps; the fixed validation set
# is --eval-samples, evaluated by Recorder, so the trainer's own evaluation is off)
TRAIN = lab_overrides(d_model=SMALL.d_model, n_layers=SMALL.n_layers, n_heads=SMALL.n_heads, seq_len=64, batch=16, lr=1e-3,
                      eval_samples=16, grad_clip=1.0, eval_every=0, log_every=1000)
del TRAIN["max_steps"]

class Recorder(Callback):
    "Counts training FLOPs step by step and evaluates on a fixed validation set every `every` steps."
    def __init__(self, flops_per_tok, flops0: float, eval_fn, every: int, batch: int, moe: bool):
        self.fpt, self.flops, self.eval_fn, self.every, self.batch, self.moe = flops_per_tok, flops0, eval_fn, every, batch, moe
        self.evals, self.train, self.aux = [], [], []
    def on_step_end(self, step, metrics, model):
        tok = metrics["real_tokens"]
        self.flops += self.fpt(tok / self.batch) * tok   # attention length: the batch's mean real length, as the trainer
        self.train.append([step, self.flops, round(metrics["loss"], 4)])
        if self.moe:
            ms = moe_layers(model)
            self.aux.append([step, round(sum(m.aux["balance"].item() for m in ms) / len(ms), 4),
                             round(sum(m.aux["z"].item() for m in ms) / len(ms), 4)])
        if step % self.every == 0: self.evals.append({"step": step, "flops": self.flops, **self.eval_fn(model)})

def run_seed(seed: int, a: argparse.Namespace, work: Path) -> dict:
    "The whole pipeline and its baselines for one seed."
    torch.set_num_threads(a.threads)
    base = TrainConfig.lab().with_overrides(TRAIN)
    G, mlm_p = base.global_batch, base.mlm_probability
    tok = load_tokenizer_for(base.data)
    val = PretrainingStream(base.data, "validation", seed=17).batch(0, a.eval_samples)   # one fixed set for every run
    val_collator = MLMCollator.from_tokenizer(tok, seed=17)
    def eval_fn(model): return evaluate(model, val, val_collator, base, DistInfo(), "fp32")
    dense_fpt = lambda cfg: (lambda T: flops_per_token(cfg, T, mlm_p))
    moe_fpt = lambda T: moe_flops_per_token(LARGE, a.experts, a.top_k, T, mlm_p)

    def stage(name, model, mcfg, steps, data_seed, flops0, fpt, loss_fn=None):
        cfg = dataclasses.replace(base, model=mcfg, max_steps=steps, seed=data_seed)
        rec = Recorder(fpt, flops0, eval_fn, a.eval_every, G, moe=loss_fn is not None)
        rec.evals.append({"step": 0, "flops": flops0, **eval_fn(model)})   # the loss right after the transition
        ts = time.time()
        pretrain(cfg, work / f"s{seed}-{name}", callbacks=[rec], model_fn=lambda _: model, loss_fn=loss_fn, progress=False)
        if rec.evals[-1]["step"] != steps: rec.evals.append({"step": steps, "flops": rec.flops, **eval_fn(model)})
        out = {"flops_start": flops0, "flops_end": rec.flops, "steps": steps, "data_seed": data_seed, "seconds": time.time() - ts,
               "params": n_params(model), "evals": rec.evals, "train": rec.train}
        if rec.aux: out.update(aux=rec.aux, expert_load=[m.load.tolist() for m in moe_layers(model)])
        print(f"  seed {seed} {name}: eval loss {rec.evals[0]['eval_loss']:.3f} -> {rec.evals[-1]['eval_loss']:.3f}, "
              f"{rec.flops / 1e12:.3f} TFLOP so far, {out['seconds']:.0f} s", flush=True)
        return out

    S = {}
    torch.manual_seed(seed)
    small = MosaicBertForMaskedLM(SMALL)
    S["small"] = stage("small", small, SMALL, a.small_steps, 1000 * seed + 1, 0.0, dense_fpt(SMALL))
    grown = {}
    for method in ("random", "fpi", "aki"):
        grown[method] = grow(small, LARGE, method, seed=seed)
        # the same data seed for the three: a paired comparison
        S[f"grow-{method}"] = stage(f"grow-{method}", grown[method], LARGE, a.grow_steps, 1000 * seed + 2,
                                    S["small"]["flops_end"], dense_fpt(LARGE))
    best = min(("random", "fpi", "aki"), key=lambda m: S[f"grow-{m}"]["evals"][-1]["eval_loss"])   # AquilaMoE scales out its best scale-up
    f1, dense = S[f"grow-{best}"]["flops_end"], grown[best]
    moe = upcycle_to_moe(copy.deepcopy(dense), a.experts, a.top_k, seed=seed)   # the dense model goes on below as the control
    S["moe"] = stage("moe", moe, LARGE, a.moe_steps, 1000 * seed + 3, f1, moe_fpt, loss_fn=moe_loss_fn(moe, a.balance_coef, a.z_coef))
    # control: the grown dense model trained on for about the MoE stage's FLOPs (same data seed)
    cont_steps = max(1, round(a.moe_steps * moe_fpt(60) / flops_per_token(LARGE, 60, mlm_p)))
    S["dense-continue"] = stage("dense-continue", dense, LARGE, cont_steps, 1000 * seed + 3, f1, dense_fpt(LARGE))
    # baseline: the large dense model from scratch, for the whole pipeline's FLOPs
    per_step = (S["grow-fpi"]["flops_end"] - S["small"]["flops_end"]) / a.grow_steps
    torch.manual_seed(seed)
    S["scratch"] = stage("scratch", MosaicBertForMaskedLM(LARGE), LARGE, math.ceil(S["moe"]["flops_end"] / per_step),
                         1000 * seed + 4, 0.0, dense_fpt(LARGE))
    return {"seed": seed, "best_growth": best, "stages": S}

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1), out=ROOT / "results" / "growth" / "aquilamoe")
    ap.add_argument("--small-steps", type=int, default=80)
    ap.add_argument("--grow-steps", type=int, default=50)
    ap.add_argument("--moe-steps", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--eval-samples", type=int, default=48)
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--balance-coef", type=float, default=0.01)
    ap.add_argument("--z-coef", type=float, default=0.001)
    ap.add_argument("--jobs", type=int, default=None, help="seeds run in parallel processes, each with --threads threads (default: one per seed)")
    a = ap.parse_args()
    if a.quick: a.seeds, a.small_steps, a.grow_steps, a.moe_steps, a.eval_every, a.eval_samples = a.seeds[:1], 8, 6, 6, 3, 16
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="aquilamoe-"))
    jobs = a.jobs or len(a.seeds)
    if jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as ex:
            runs = list(ex.map(run_seed, a.seeds, [a] * len(a.seeds), [work] * len(a.seeds)))
    else: runs = [run_seed(s, a, work) for s in a.seeds]
    base = TrainConfig.lab().with_overrides(TRAIN)
    path = write_results(a.out, "growth/aquilamoe", prov,
        processes=jobs,
        config={"small": SMALL.to_dict(), "large": LARGE.to_dict(), "train": {**TRAIN, "mlm_probability": base.mlm_probability},
                "steps": {"small": a.small_steps, "grow": a.grow_steps, "moe": a.moe_steps}, "eval_every": a.eval_every,
                "eval_samples": a.eval_samples, "eval_mlm_probability": base.eval_mlm_probability,
                "experts": a.experts, "top_k": a.top_k, "balance_coef": a.balance_coef, "z_coef": a.z_coef,
                "growth": {"order": "stack", "hidden_mapping": "cyclic", "inner_mapping": "random"}},
        runs=runs)
    shutil.rmtree(work)   # checkpoints and per-run reports are not part of the result
    print(f"wrote {path}")

if __name__ == "__main__": main()
