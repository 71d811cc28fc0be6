"Power-law asymptote fits, ensembles and ensemble distillation (Kim et al. 2025, 'Pre-training under infinite compute')."
import math
import pytest
import torch
import torch.nn.functional as F
from mosaiclab.science.infinite_compute import scaling_fit, bootstrap_fit, ensemble_logits, Ensemble, distill_loss, DistillLoss, PowerLawFit

@pytest.mark.parametrize("E,A,alpha", [(2.0, 30.0, 0.25), (3.5, 5.0, 0.8), (0.5, 1.0, 1.5)])
def test_fit_recovers_exact_law(E, A, alpha):
    x = torch.tensor([1e4, 3e4, 1e5, 3e5, 1e6, 3e6], dtype=torch.float64)
    f = scaling_fit(x, E + A * x ** -alpha)
    assert math.isclose(f.E, E, abs_tol=1e-3) and math.isclose(f.alpha, alpha, rel_tol=1e-2) and f.rmse < 1e-6

def test_fit_small_sizes_and_members():
    k = [1, 2, 3, 4]
    f = scaling_fit(k, [3.0 + 1.0 / i ** 0.5 for i in k])
    assert math.isclose(f.E, 3.0, abs_tol=1e-3)

def test_fit_is_least_squares_optimal_for_its_alpha():
    g = torch.Generator().manual_seed(1)
    x = torch.tensor([1.0, 2, 4, 8, 16], dtype=torch.float64)
    y = 2 + 3 * x ** -0.7 + 0.01 * torch.randn(5, generator=g, dtype=torch.float64)
    f = scaling_fit(x, y)
    sse = lambda E, A, a: float(((y - E - A * x ** -a) ** 2).sum())
    best = sse(f.E, f.A, f.alpha)
    for dE, dA, da in [(0.01, 0, 0), (-0.01, 0, 0), (0, 0.05, 0), (0, 0, 0.02), (0, 0, -0.02)]:
        assert sse(f.E + dE, f.A + dA, f.alpha + da) >= best - 1e-12

def test_fit_rising_data_clamps_A_and_errors():
    f = scaling_fit([1, 2, 3], [1.0, 2.0, 3.0])
    assert f.A == 0.0 and math.isclose(f.E, 2.0)
    with pytest.raises(ValueError, match="at least 3"): scaling_fit([1, 1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="> 0"): scaling_fit([0, 1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="same length"): scaling_fit([1, 2, 3], [1, 2])

def test_powerlaw_call():
    f = PowerLawFit(E=1.0, A=2.0, alpha=1.0, rmse=0.0, n=3)
    assert torch.allclose(f([1.0, 2.0]), torch.tensor([3.0, 2.0], dtype=torch.float64))

def test_bootstrap_interval_contains_fit_and_shrinks_with_less_noise():
    g = torch.Generator().manual_seed(0)
    x = [1e4, 1e5, 1e6, 1e7]
    base = torch.tensor([2 + 10 * v ** -0.3 for v in x], dtype=torch.float64)[:, None]
    counts = torch.full((400,), 10.0, dtype=torch.float64)
    noisy = bootstrap_fit(x, base + 0.5 * torch.randn(4, 400, generator=g, dtype=torch.float64), counts, n_boot=60)
    quiet = bootstrap_fit(x, base + 0.05 * torch.randn(4, 400, generator=g, dtype=torch.float64), counts, n_boot=60)
    assert quiet["E_std"] < noisy["E_std"]
    assert quiet["E_p05"] <= quiet["E_p95"]

def test_ensemble_logits_properties():
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(5, 7, generator=g) for _ in range(3))
    for mode in ("probs", "logits"):
        lp = ensemble_logits([a, b, c], mode)
        assert torch.allclose(lp.exp().sum(-1), torch.ones(5), atol=1e-5)
        assert torch.allclose(ensemble_logits([a, b, c], mode), ensemble_logits([c, a, b], mode), atol=1e-6)  # order-free
    assert torch.allclose(ensemble_logits([a, b], "logits"), F.log_softmax((a + b) / 2, -1), atol=1e-6)
    with pytest.raises(ValueError, match="at least one"): ensemble_logits([])
    with pytest.raises(ValueError, match="disagree"): ensemble_logits([a, a[:2]])

def test_mixture_beats_average_member_loss():
    g = torch.Generator().manual_seed(3)
    ms = [torch.randn(50, 9, generator=g) for _ in range(4)]
    t = torch.randint(0, 9, (50,), generator=g)
    mix = F.nll_loss(ensemble_logits(ms, "probs"), t)
    avg = sum(F.cross_entropy(m, t) for m in ms) / 4
    assert mix <= avg + 1e-6

def test_distill_loss():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=g, requires_grad=True), torch.randn(6, 5, generator=g)
    y = torch.randint(0, 5, (6,), generator=g)
    kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="batchmean")
    assert torch.isclose(distill_loss(s, t, y, weight=1.0), kl, atol=1e-6)
    mixed = distill_loss(s, t, y, weight=0.3)
    assert torch.isclose(mixed, 0.3 * kl + 0.7 * F.cross_entropy(s, y), atol=1e-6)
    mixed.backward(); assert s.grad is not None
    assert distill_loss(t, t, y, weight=1.0, temperature=2.0).abs() < 1e-6
    with pytest.raises(ValueError, match="weight"): distill_loss(s, t, y, weight=1.5)
    with pytest.raises(ValueError, match="temperature"): distill_loss(s, t, y, temperature=0)
    with pytest.raises(ValueError, match="differ in shape"): distill_loss(s, t[:3], y)

def test_ensemble_module_and_distill_loss_fn_on_a_model():
    import dataclasses
    from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM
    torch.manual_seed(0)
    cfg = dataclasses.replace(MosaicBertConfig.lab(), d_model=16, n_layers=1, n_heads=2, d_ff=32, vocab_size=64)
    m1, m2 = MosaicBertForMaskedLM(cfg).eval(), MosaicBertForMaskedLM(cfg).eval()
    ids = torch.randint(5, 64, (3, 12)); labels = torch.full_like(ids, -100); labels[:, 2:5] = ids[:, 2:5]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    with torch.no_grad():
        o1, o2, e = m1(**batch), m2(**batch), Ensemble([m1, m2])(**batch)
    assert e.logits.shape == o1.logits.shape
    assert e.loss <= (o1.loss + o2.loss) / 2 + 1e-5
    student = MosaicBertForMaskedLM(cfg)
    loss = DistillLoss(Ensemble([m1, m2]))(student(**batch), batch, 0)
    loss.backward()
    assert all(p.grad is None for p in m1.parameters())
    with pytest.raises(ValueError, match="mode"): Ensemble([m1], mode="median")

def test_fit_degenerate_flags_bounds_and_flat_laws():
    from mosaiclab.science.infinite_compute import fit_degenerate
    assert fit_degenerate(scaling_fit([1e4, 1e5, 1e6, 1e7], [2 + 10 * v ** -0.3 for v in [1e4, 1e5, 1e6, 1e7]])) is None
    kink = scaling_fit([145040, 217496, 292640, 450992], [7.690, 7.432, 7.362, 7.410])   # the committed 100-step size sweep
    assert "top" in fit_degenerate(kink) and kink.A > 1e12
    assert "A = 0" in fit_degenerate(scaling_fit([1, 2, 3], [1.0, 2.0, 3.0]))
    assert fit_degenerate({"E": 1.0, "A": 2.0, "alpha": 1.0, "alpha_range": [0.1, 1.0]}) is not None   # the dict's own range
    assert fit_degenerate({"E": 1.0, "A": 2.0, "alpha": 1.0}) is None

def test_bootstrap_fit_records_degeneracy():
    x = [1e5, 2e5, 3e5, 4.5e5]
    per = torch.tensor([7.69, 7.43, 7.36, 7.41], dtype=torch.float64)[:, None] + torch.zeros(4, 50, dtype=torch.float64)
    b = bootstrap_fit(x, per, torch.ones(50, dtype=torch.float64), n_boot=5)
    assert b["degenerate"] and b["alpha_range"] == [1e-3, 3.0]
