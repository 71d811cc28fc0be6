"Latent-variable pretraining vs supervised learning (Ge et al. 2024, 'On the provable advantage of unsupervised pretraining')."
import math
import pytest
import torch
import torch.nn.functional as F
from mosaiclab.science.provable import (MixtureTask, GaussianMixture, fit_gmm, mean_error, fit_head, head_proba, fit_logistic,
                                        linear_rule_risk, gmm_rule, bayes_rule, excess_risk, mc_risk, rate_fit, compare)

def _task(d=8, **kw):
    return MixtureTask.two_clusters(d, **kw)

def _draw(task, n, seed):
    return task.sample(n, torch.Generator().manual_seed(seed))

# --- the task ---------------------------------------------------------------------------------------------------

def test_sampling_matches_the_model():
    t = _task(d=3, separation=4.0, label_noise=0.2)
    x, z, y = _draw(t, 40_000, 0)
    assert abs(float(z.double().mean()) - 0.5) < 0.01
    for k in range(2):
        assert torch.allclose(x[z == k].mean(0), t.means[k], atol=0.03)
        assert abs(float(y[z == k].double().mean()) - float(t.label_probs[k])) < 0.015
    assert x.dtype == torch.float64 and set(y.unique().tolist()) == {0, 1}

def test_same_generator_seed_same_sample():
    t = _task()
    assert all(torch.equal(a, b) for a, b in zip(_draw(t, 50, 3), _draw(t, 50, 3)))

@pytest.mark.parametrize("kw,msg", [
    (dict(means=torch.zeros(4)), "means must be"),
    (dict(weights=torch.tensor([0.5, 0.2], dtype=torch.float64)), "sum to 1"),
    (dict(weights=torch.tensor([1.0], dtype=torch.float64)), "must both be"),
    (dict(label_probs=torch.tensor([-0.1, 0.5], dtype=torch.float64)), r"in \[0, 1\]"),
    (dict(sigma=0.0), "sigma must be"),
    (dict(sigma=float("inf")), "sigma must be"),
])
def test_bad_task(kw, msg):
    base = dict(means=torch.zeros(2, 3, dtype=torch.float64), sigma=1.0, weights=torch.tensor([0.5, 0.5], dtype=torch.float64),
                label_probs=torch.tensor([0.1, 0.9], dtype=torch.float64))
    with pytest.raises(ValueError, match=msg): MixtureTask(**{**base, **kw})

def test_bad_two_clusters():
    with pytest.raises(ValueError, match="d must be"): MixtureTask.two_clusters(0)
    with pytest.raises(ValueError, match="no information"): MixtureTask.two_clusters(4, label_noise=0.5)
    with pytest.raises(ValueError, match="label_noise"): MixtureTask.two_clusters(4, label_noise=-0.1)

# --- pretraining ---------------------------------------------------------------------------------------------------

def test_em_recovers_a_three_cluster_mixture_up_to_relabelling():
    g = torch.Generator().manual_seed(0)
    means = 4 * torch.randn(3, 6, generator=g, dtype=torch.float64)
    t = MixtureTask(means, 0.7, torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    x, z, _ = _draw(t, 30_000, 1)
    gm = fit_gmm(x, 3, seed=0)
    assert mean_error(gm, t) < 0.05 and abs(gm.var - 0.49) < 0.01
    assert torch.allclose(gm.weights.sort().values, t.weights.sort().values, atol=0.01)
    # the posterior picks each point's true cluster (up to the relabelling) almost always
    q = gm.posterior(x)
    assert torch.allclose(q.sum(1), torch.ones(len(x), dtype=torch.float64))
    hard = q.argmax(1)
    agree = max(float((perm[hard] == z).double().mean()) for perm in
                [torch.tensor(p) for p in ([0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0])])
    assert agree > 0.98

def test_more_unlabeled_data_estimates_the_centres_better():
    t = _task(d=20)
    errs = [mean_error(fit_gmm(_draw(t, m, m)[0], 2), t) for m in (300, 3000, 30000)]
    assert errs[0] > errs[1] > errs[2]
    # the MLE's squared error falls roughly like 1/m: a decade of m, about a decade of squared error
    assert 3 < (errs[1] / errs[2]) ** 2 < 30

def test_em_log_likelihood_never_falls():
    x = _draw(_task(d=4, separation=1.5), 1000, 2)[0]
    lls = [fit_gmm(x, 2, n_init=1, max_iter=i, tol=0.0).log_likelihood for i in range(2, 20)]
    assert all(b >= a - 1e-12 for a, b in zip(lls, lls[1:]))

def test_more_starts_never_lower_the_likelihood():
    x = _draw(_task(d=4, separation=1.0), 500, 3)[0]
    one, many = fit_gmm(x, 3, n_init=1, seed=5), fit_gmm(x, 3, n_init=6, seed=5)
    assert many.log_likelihood >= one.log_likelihood - 1e-12

def test_one_cluster_is_the_sample_mean_and_variance():
    x = _draw(_task(d=5), 2000, 4)[0]
    gm = fit_gmm(x, 1)
    assert torch.allclose(gm.means[0], x.mean(0)) and math.isclose(gm.var, float(((x - x.mean(0)) ** 2).mean()), rel_tol=1e-9)
    assert torch.allclose(gm.posterior(x), torch.ones(2000, 1, dtype=torch.float64))

def test_bad_pretraining_input():
    x = torch.randn(10, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="k must be between"): fit_gmm(x, 11)
    with pytest.raises(ValueError, match="k must be between"): fit_gmm(x, 0)
    with pytest.raises(ValueError, match=r"\(m, d\)"): fit_gmm(x[0], 2)
    with pytest.raises(ValueError, match="NaN"): fit_gmm(torch.cat([x, torch.full((1, 3), float("inf"), dtype=torch.float64)]), 2)
    with pytest.raises(ValueError, match="n_init"): fit_gmm(x, 2, n_init=0)
    gm = fit_gmm(x, 2)
    with pytest.raises(ValueError, match="d = 3"): gm.posterior(torch.randn(4, 5))
    with pytest.raises(ValueError, match="differ in shape"): mean_error(gm, _task(d=4))

# --- the head ------------------------------------------------------------------------------------------------------

def test_head_is_the_cluster_label_mean_for_hard_posteriors():
    z = torch.tensor([0, 1, 2, 0, 1, 2, 2, 2]); y = torch.tensor([1, 0, 1, 1, 0, 0, 1, 1])
    psi = fit_head(F.one_hot(z, 3).double(), y)
    assert torch.allclose(psi, torch.tensor([1.0, 0.0, 0.75], dtype=torch.float64), atol=1e-8)

def test_head_maximises_the_likelihood():
    g = torch.Generator().manual_seed(0)
    q = torch.rand(60, 3, generator=g, dtype=torch.float64); q = q / q.sum(1, keepdim=True)
    y = torch.randint(0, 2, (60,), generator=g)
    def ll(psi): return float(torch.log(torch.where(y == 1, q @ psi, q @ (1 - psi))).sum())
    best = ll(fit_head(q, y))
    for _ in range(200):
        assert ll(torch.rand(3, generator=g, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)) <= best + 1e-9

def test_head_learns_the_relabelling():
    "Swapping the pretrained clusters swaps the head; the classifier's probabilities do not change."
    t = _task(d=6)
    x, _, y = _draw(t, 400, 1)
    gm = fit_gmm(_draw(t, 4000, 2)[0], 2)
    swapped = GaussianMixture(gm.weights.flip(0), gm.means.flip(0), gm.var, gm.log_likelihood, gm.iters)
    psi, psi_s = fit_head(gm.posterior(x), y), fit_head(swapped.posterior(x), y)
    assert torch.allclose(psi, psi_s.flip(0), atol=1e-8)
    assert torch.allclose(head_proba(gm, psi, x), head_proba(swapped, psi_s, x), atol=1e-8)

def test_bad_head_input():
    q = torch.full((4, 2), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match="0 or 1"): fit_head(q, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match=r"\(n, K\)"): fit_head(q, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="no labeled"): fit_head(q[:0], torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="probability vectors"): fit_head(q * 2, torch.tensor([0, 1, 1, 0]))

# --- the supervised baseline -------------------------------------------------------------------------------------

def test_logistic_stationarity_and_penalty():
    t = _task(d=6)
    x, _, y = _draw(t, 500, 0)
    for l2 in (1e-3, 1.0):
        w, b = fit_logistic(x, y, l2)
        r = torch.sigmoid(x @ w + b) - y.double()
        assert abs(float(r.mean())) < 1e-6 and torch.allclose(x.T @ r / len(y), -l2 * w, atol=1e-6)
    assert float(fit_logistic(x, y, 10.0)[0].norm()) < float(fit_logistic(x, y, 1e-3)[0].norm())

def test_logistic_is_consistent_on_the_symmetric_task():
    "With many labels the supervised rule approaches the Bayes rule: the baseline is not misspecified for the 0-1 risk."
    t = _task(d=5)
    x, _, y = _draw(t, 40_000, 5)
    assert excess_risk(t, *fit_logistic(x, y, 1e-4)) < 2e-4

def test_bad_logistic_input():
    x = torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="0 or 1"): fit_logistic(x, torch.tensor([0, 1, 0, 1, -1]))
    with pytest.raises(ValueError, match="l2 must be"): fit_logistic(x, torch.tensor([0, 1, 0, 1, 1]), l2=float("nan"))
    with pytest.raises(ValueError, match="no labeled"): fit_logistic(x[:0], torch.tensor([], dtype=torch.long))

# --- exact risks ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_exact_risk_matches_monte_carlo(seed):
    g = torch.Generator().manual_seed(seed)
    t = MixtureTask(2 * torch.randn(2, 4, generator=g, dtype=torch.float64), 1.3, torch.tensor([0.3, 0.7], dtype=torch.float64),
                    torch.tensor([0.25, 0.8], dtype=torch.float64))
    w, b = torch.randn(4, generator=g, dtype=torch.float64), float(torch.randn(1, generator=g))
    n = 400_000
    assert abs(linear_rule_risk(t, w, b) - mc_risk(t, lambda x: x @ w + b > 0, n=n, seed=seed)) < 4 * math.sqrt(0.25 / n)

def test_bayes_rule_is_optimal_and_matches_the_posterior_rule():
    t = MixtureTask(torch.tensor([[0.0, 0.0], [2.0, 1.0]], dtype=torch.float64), 1.0, torch.tensor([0.35, 0.65], dtype=torch.float64),
                    torch.tensor([0.2, 0.95], dtype=torch.float64))
    wb, bb = bayes_rule(t)
    best = linear_rule_risk(t, wb, bb)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        assert linear_rule_risk(t, torch.randn(2, generator=g, dtype=torch.float64), 3 * float(torch.randn(1, generator=g))) >= best - 1e-12
    # the linear rule predicts exactly where p(y = 1 | x) > 1/2 under the true model
    x = _draw(t, 5000, 1)[0]
    truth = GaussianMixture(t.weights, t.means, 1.0, math.nan, 0)
    assert torch.equal(x @ wb + bb > 0, head_proba(truth, t.label_probs, x) > 0.5)

def test_gmm_rule_flipped_and_constant_heads():
    t = _task(d=3)
    truth = GaussianMixture(t.weights, t.means, 1.0, math.nan, 0)
    x = _draw(t, 2000, 0)[0]
    for psi in ([0.9, 0.1], [0.3, 0.45], [0.55, 0.8], [0.7, 0.7], [0.2, 0.6]):
        psi = torch.tensor(psi, dtype=torch.float64)
        w, b = gmm_rule(truth, psi)
        assert torch.equal(x @ w + b > 0, head_proba(truth, psi, x) > 0.5), psi
    assert linear_rule_risk(t, *gmm_rule(truth, torch.tensor([0.9, 0.1], dtype=torch.float64))) > 0.8   # the swapped labelling: worse than chance

def test_excess_risk_is_zero_at_bayes_and_bad_rule_input():
    t = _task(d=3)
    assert excess_risk(t, *bayes_rule(t)) == 0
    with pytest.raises(ValueError, match=r"\(3,\)"): linear_rule_risk(t, torch.zeros(4), 0.0)
    three = GaussianMixture(torch.full((3,), 1 / 3, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64), 1.0, 0.0, 0)
    with pytest.raises(ValueError, match="two clusters"): gmm_rule(three, torch.zeros(3))

# --- rates and the comparison ---------------------------------------------------------------------------------------

def test_rate_fit_recovers_floor_and_constant():
    ns = [20, 50, 100, 300, 1000, 5000]
    f = rate_fit(ns, [1e-3 + 2.0 / n for n in ns])
    assert math.isclose(f.floor, 1e-3, rel_tol=1e-9) and math.isclose(f.constant, 2.0, rel_tol=1e-9) and f.rel_rmse < 1e-12
    f = rate_fit(ns, [5.0 / n ** 2 for n in ns])
    assert math.isclose(f.slope, -2.0) and f.floor >= 0 and f.constant >= 0
    f = rate_fit(ns, [0.2 + 1e-3 * n for n in ns])        # a rising curve: the best fit with B >= 0 is a floor alone
    assert f.constant == 0 and f.floor > 0

def test_bad_rate_fit_input():
    with pytest.raises(ValueError, match="> 0"): rate_fit([1, 2], [0.1, -0.1])
    with pytest.raises(ValueError, match="equally long"): rate_fit([1, 2, 3], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least 2"): rate_fit([1], [0.1])

def test_compare_pretraining_wins_with_many_unlabeled_points_and_loses_with_few():
    t = _task(d=30)
    r = compare(t, ns=[20, 200, 5000], ms=[60, 20000], l2s=[0.1, 1.0], seed=0)
    sup = {n: min(c[n] for c in r["supervised"].values()) for n in (20, 200, 5000)}
    assert all(r["pretrained"][20000][n] < sup[n] / 10 for n in (20, 200))
    assert r["pretrained"][60][5000] > sup[5000]        # m << n: the labels alone do better
    assert r["pretraining"][20000]["mean_error"] < r["pretraining"][60]["mean_error"]

def test_compare_bad_input():
    t = _task(d=3)
    with pytest.raises(ValueError, match="at least one"): compare(t, [], [10])
    with pytest.raises(ValueError, match="m >= K"): compare(t, [5], [1])

# --- the experiment script and the chapter's figures ------------------------------------------------------------------

def test_quick_run_writes_results_the_figures_read(tmp_path):
    import json, os, subprocess, sys
    from pathlib import Path
    from mosaiclab.science.provable import excess_risk_figure, constants_figure
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "experiments/science/provable_advantage.py", "--quick", "--allow-dirty", "--out", str(tmp_path)],
                       cwd=root, env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["experiment"] == "provable_advantage" and "--quick" in res["command"]
    ns, ms = [str(n) for n in res["setup"]["ns"]], [str(m) for m in res["setup"]["ms"]]
    assert list(res["pretrained"]) == ms and all(list(res["pretrained"][m]) == ns for m in ms)
    assert all(v > 0 for m in ms for n in ns for v in res["pretrained"][m][n].values())
    # the baseline is the best penalty in hindsight: never above any one penalty's curve
    for n in ns:
        for s, v in res["supervised"]["best"][n].items():
            assert v == min(c[n][s] for c in res["supervised"]["by_l2"].values())
    assert set(res["verdicts"]["vs_supervised"]) == set(ms) and all(list(v) == ns for v in res["verdicts"]["vs_supervised"].values())
    assert len(excess_risk_figure(res).data) == len(ms) + 1
    assert len(constants_figure(res).data) == 2 and list(constants_figure(res).data[0].x) == res["setup"]["dims"]
