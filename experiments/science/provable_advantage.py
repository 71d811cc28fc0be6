"""Provable advantage of unsupervised pretraining (Ge, Tang, Fan and Jin, ICLR 2024) on a two-cluster Gaussian mixture:
EM on m unlabeled points, then ERM of a two-number head on n labels, against logistic regression on the raw
d-dimensional inputs with the best L2 penalty in hindsight; exact excess 0-1 risks over a grid of n and m, 3 seeds,
and the same comparison at several input dimensions d (at the largest m).

    python experiments/science/provable_advantage.py          # writes results/science/provable_advantage/results.json
    python experiments/science/provable_advantage.py --quick --out /tmp/pa   # a smoke run (d 10 and 20, four n, two m, one seed)

The chapter nbs/science/03_provable_advantage.ipynb plots results/science/provable_advantage/results.json.
"""
import math, sys, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import torch
from mosaiclab.experiment import experiment_parser, mean_std, paired_verdict, provenance, write_results
from mosaiclab.science.provable import MixtureTask, compare, linear_rule_risk, bayes_rule, rate_fit

def per_seed(runs: dict, pick) -> dict:
    "{n: {seed: value}} from {seed: compare(...) output}, `pick(run)` giving that seed's {n: excess} curve."
    curves = {s: pick(r) for s, r in runs.items()}
    ns = next(iter(curves.values())).keys()
    return {str(n): {str(s): c[n] for s, c in curves.items()} for n in ns}

def best_supervised(run: dict) -> dict:
    "Per n, the excess risk of logistic regression at its best penalty in hindsight."
    sup = run["supervised"]
    return {n: min(c[n] for c in sup.values()) for n in next(iter(sup.values()))}

def curve_fit(curve: dict, min_n: int) -> dict:
    "rate_fit of the mean-over-seeds curve {n: {seed: e}} on n >= min_n."
    pts = [(int(n), mean_std(list(v.values()))[0]) for n, v in curve.items() if int(n) >= min_n]
    f = rate_fit([n for n, _ in pts], [e for _, e in pts])
    return {"floor": f.floor, "constant": f.constant, "slope": f.slope, "rel_rmse": f.rel_rmse, "ns": [n for n, _ in pts]}

def verdicts(a: dict, b: dict) -> dict:
    "paired_verdict per n of log10 excess risk, claim: a below b."
    return {n: paired_verdict({s: math.log10(v) for s, v in a[n].items()}, {s: math.log10(v) for s, v in b[n].items()}, sign=-1)
            for n in a}

def main():
    ap = experiment_parser(__doc__, seeds=(0, 1, 2), out=ROOT / "results" / "science" / "provable_advantage")
    ap.add_argument("--d", type=int, default=50, help="input dimension of the main sweep")
    ap.add_argument("--dims", type=int, nargs="+", default=[10, 50, 200], help="input dimensions of the d sweep (at the largest m)")
    ap.add_argument("--ns", type=int, nargs="+", default=[10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000], help="labeled-set sizes")
    ap.add_argument("--ms", type=int, nargs="+", default=[100, 1000, 10000, 100000], help="unlabeled-set sizes")
    ap.add_argument("--l2s", type=float, nargs="+", default=[1e-3, 1e-2, 1e-1, 1.0, 10.0], help="logistic-regression penalties (the best in hindsight is the baseline)")
    ap.add_argument("--separation", type=float, default=3.0, help="distance between the two cluster centres, in noise standard deviations")
    ap.add_argument("--label-noise", type=float, default=0.1, help="P(y = 1 | z = 0) = P(y = 0 | z = 1)")
    ap.add_argument("--fit-min-n-per-param", type=float, default=4.0,
                    help="each rate fit uses n >= this times the arm's parameter count (d for logistic regression, K for the head): its 1/n regime")
    a = ap.parse_args()
    if a.quick: a.d, a.dims, a.ns, a.ms, a.seeds = 10, [10, 20], [10, 100, 1000, 3000], [300, 3000], a.seeds[:1]
    if a.d not in a.dims: ap.error(f"--d {a.d} must be one of --dims (its runs are reused for the d sweep)")
    prov = provenance(ROOT, allow_dirty=a.allow_dirty)
    torch.set_num_threads(a.threads)
    m_top = max(a.ms)
    dims, main_runs, t0 = {}, None, time.time()
    for d in a.dims:
        task = MixtureTask.two_clusters(d, a.separation, a.label_noise, seed=0)
        ms = a.ms if d == a.d else [m_top]
        runs = {}
        for s in a.seeds:
            ts = time.time()
            runs[s] = compare(task, a.ns, ms, a.l2s, seed=s)
            print(f"d={d} seed {s}: {time.time() - ts:.1f} s | pretrained m={m_top} "
                  + " ".join(f"{runs[s]['pretrained'][m_top][n]:.1e}" for n in a.ns) + " | supervised (best l2) "
                  + " ".join(f"{v:.1e}" for v in best_supervised(runs[s]).values()), flush=True)
        pre = per_seed(runs, lambda r: r["pretrained"][m_top])
        sup = per_seed(runs, best_supervised)
        dims[str(d)] = {"bayes_risk": linear_rule_risk(task, *bayes_rule(task)), "pretrained": pre, "supervised": sup,
                        "fit": {"pretrained": curve_fit(pre, a.fit_min_n_per_param * task.k), "supervised": curve_fit(sup, a.fit_min_n_per_param * d)}}
        if d == a.d: main_runs, main_task = runs, task
    # the main sweep at d: every m, every penalty
    pretrained = {str(m): per_seed(main_runs, lambda r, m=m: r["pretrained"][m]) for m in a.ms}
    supervised = {"best": per_seed(main_runs, best_supervised),
                  "best_l2": per_seed(main_runs, lambda r: {n: min(r["supervised"], key=lambda l: r["supervised"][l][n]) for n in a.ns}),
                  "by_l2": {f"{l:g}": per_seed(main_runs, lambda r, l=l: r["supervised"][l]) for l in a.l2s}}
    pretraining = {str(m): {str(s): r["pretraining"][m] for s, r in main_runs.items()} for m in a.ms}
    fits = {**{f"pretrained m={m}": curve_fit(pretrained[str(m)], a.fit_min_n_per_param * main_task.k) for m in a.ms},
            "supervised": curve_fit(supervised["best"], a.fit_min_n_per_param * a.d)}
    vs_sup = {str(m): verdicts(pretrained[str(m)], supervised["best"]) for m in a.ms}
    vs_smaller_m = {f"{m2} vs {m1}": verdicts(pretrained[str(m2)], pretrained[str(m1)]) for m1, m2 in zip(a.ms, a.ms[1:])}
    for m, v in vs_sup.items():
        print(f"pretrained m={m} below supervised: " + " ".join(f"n={n}:{r['verdict'][:3]}({r['wins']})" for n, r in v.items()), flush=True)
    for k, f in fits.items(): print(f"{k:22s} floor {f['floor']:.2e} constant {f['constant']:.3g} slope {f['slope']:.2f}", flush=True)
    for d, r in dims.items(): print(f"d={d}: constant pretrained {r['fit']['pretrained']['constant']:.3g}, supervised {r['fit']['supervised']['constant']:.3g}", flush=True)
    setup = {"d": a.d, "dims": a.dims, "ns": a.ns, "ms": a.ms, "l2s": a.l2s, "seeds": a.seeds, "k": 2, "separation": a.separation,
             "label_noise": a.label_noise, "sigma": 1.0, "bayes_risk": linear_rule_risk(main_task, *bayes_rule(main_task)),
             "fit_min_n_per_param": a.fit_min_n_per_param, "verdict_scale": "log10 excess risk, paired over seeds (a ratio per seed)",
             "labeled": "the first n of one pool per seed (nested sets)", "unlabeled": "an independent sample per (seed, m)"}
    path = write_results(a.out, "provable_advantage", prov, setup=setup, pretrained=pretrained, supervised=supervised,
                         pretraining=pretraining, fits=fits, dims=dims, verdicts={"vs_supervised": vs_sup, "vs_smaller_m": vs_smaller_m},
                         sweep_seconds=time.time() - t0)
    print(f"wrote {path}")

if __name__ == "__main__": main()
