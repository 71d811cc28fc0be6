"Defining properties of loss-based sample reweighting (Sow et al., ICLR 2025) and its trainer loss_fn."
import math
import pytest
import torch
from mosaiclab.curation.reweighting import (STRATEGIES, SampleReweighter, normalize_losses, sample_weights, linupper, quadratic, extremes)
from mosaiclab.model import MLMOutput

def test_normalize_range_and_degenerate():
    l = torch.rand(17) * 5 + 1
    x = normalize_losses(l, delta=1.5)
    assert torch.isclose(x.min(), torch.tensor(-1.5)) and torch.isclose(x.max(), torch.tensor(1.5))
    assert torch.equal(normalize_losses(torch.full((4,), 2.0)), torch.zeros(4))
    with pytest.raises(ValueError, match="delta"): normalize_losses(l, delta=0)

def test_normalize_ignores_invalid():
    l = torch.tensor([1.0, 2.0, 3.0, 100.0])
    x = normalize_losses(l, valid=torch.tensor([True, True, True, False]))
    assert torch.allclose(x, torch.tensor([-1.0, 0.0, 1.0, 0.0]))

@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("r", [0.1, 0.4, 1.0, 10.0])
def test_weights_sum_to_one_and_nonnegative(strategy, r):
    w = sample_weights(torch.rand(32) * 4, strategy, r)
    assert torch.isclose(w.sum(), torch.tensor(1.0), atol=1e-6) and bool((w >= 0).all())

@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_equal_losses_give_uniform(strategy):
    assert torch.allclose(sample_weights(torch.full((8,), 3.3), strategy), torch.full((8,), 1 / 8))

def test_linupper_monotone_and_flat_top():
    l = torch.linspace(1, 5, 41)
    w = sample_weights(l, "linupper", 0.4)
    assert bool((w.diff() >= -1e-8).all())
    upper = w[l >= 3.0]
    assert torch.allclose(upper, upper[0].expand_as(upper))
    assert w[0] < w[-1]

def test_quadratic_peaks_in_the_middle_and_symmetric():
    l = torch.linspace(1, 5, 41)
    w = sample_weights(l, "quadratic", 0.4)
    assert w.argmax() == 20
    assert torch.allclose(w, w.flip(0), atol=1e-7)
    assert bool((w[:20].diff() > 0).all()) and bool((w[20:].diff() < 0).all())

def test_extremes_favours_both_ends():
    l = torch.linspace(1, 5, 41)
    w = sample_weights(l, "extremes", 0.4)
    assert w.argmin() == 20 and torch.isclose(w[0], w[-1])

def test_smaller_r_is_sharper():
    l = torch.linspace(1, 5, 9)
    ratio = lambda r: (sample_weights(l, "linupper", r)[0] / sample_weights(l, "linupper", r)[-1]).item()
    assert ratio(0.2) < ratio(1.0) < ratio(5.0) < 1
    assert math.isclose(ratio(0.4), math.exp(-1 / 0.4), rel_tol=1e-4)

def test_official_formula_matches():
    "The official README's pipeline, written out independently, gives the same weights."
    l = torch.tensor([2.1, 3.4, 0.9, 5.0, 4.4, 3.0])
    lmin, lmax = l.min(), l.max()
    h = 2 * l / (lmax - lmin) - (lmax + lmin) / (lmax - lmin)
    for name, f in [("linupper", lambda x: torch.minimum(x + 1, torch.ones_like(x))), ("quadratic", lambda x: 1 - x ** 2),
                    ("extremes", lambda x: x.abs())]:
        s = f(h); g = torch.exp((s - s.max()) / 0.4)
        assert torch.allclose(sample_weights(l, name, 0.4), g / g.sum(), atol=1e-6)

def test_errors():
    with pytest.raises(ValueError, match="unknown strategy"): sample_weights(torch.ones(3), "nope")
    with pytest.raises(ValueError, match="r must be"): sample_weights(torch.ones(3), "linupper", r=0)
    with pytest.raises(ValueError, match="no valid"): sample_weights(torch.ones(3), valid=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="1-D"): normalize_losses(torch.ones(2, 2))
    with pytest.raises(ValueError, match="unknown strategy"): SampleReweighter("nope")
    with pytest.raises(ValueError, match="r must be"): SampleReweighter(r=-1)

def _fake_out(B=4, per_row=3, V=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(B).repeat_interleave(per_row)
    logits = torch.randn(B * per_row, V, generator=g, requires_grad=True)
    targets = torch.randint(0, V, (B * per_row,), generator=g)
    labels = torch.full((B, 8), -100); labels[:, :per_row] = 1
    return MLMOutput(None, logits, targets, rows), {"input_ids": torch.ones(B, 8, dtype=torch.long), "labels": labels}

def test_reweighter_uniform_is_mean_and_grad_flows():
    out, batch = _fake_out()
    import torch.nn.functional as F
    mean = F.cross_entropy(out.logits, out.targets)   # equal tokens per row: the mean of row means is the token mean
    loss = SampleReweighter("uniform")(out, batch, 0)
    assert torch.isclose(loss, mean, atol=1e-6)
    loss.backward()
    assert out.logits.grad is not None and torch.isfinite(out.logits.grad).all()

def test_reweighter_warmup_and_ramp():
    rw = SampleReweighter("linupper", r=0.4, warmup_steps=5, ramp_steps=5)
    assert rw.temperature(4) == math.inf and rw.temperature(10) == 0.4
    temps = [rw.temperature(s) for s in range(5, 11)]
    assert all(a >= b for a, b in zip(temps, temps[1:]))
    out, batch = _fake_out()
    assert torch.isclose(rw(out, batch, 0), SampleReweighter("uniform")(out, batch, 0))

def test_reweighter_row_without_masked_tokens_gets_zero_weight():
    out, batch = _fake_out(B=3)
    keep = out.rows != 2
    out = MLMOutput(None, out.logits[keep], out.targets[keep], out.rows[keep])
    batch["labels"][2] = -100
    rw = SampleReweighter("quadratic", record_every=1)
    rw(out, batch, 0)
    _, _, w = rw.history[-1]
    assert w[2] == 0 and math.isclose(sum(w), 1.0, rel_tol=1e-6)

def _ragged_out(counts=(1, 3, 6, 2), V=11, seed=0):
    "A fake masked-only MLM output whose rows have different numbers of masked targets."
    g = torch.Generator().manual_seed(seed)
    rows = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])
    logits = torch.randn(len(rows), V, generator=g, requires_grad=True)
    targets = torch.randint(0, V, (len(rows),), generator=g)
    labels = torch.full((len(counts), 8), -100)
    for i, c in enumerate(counts): labels[i, :c] = 1
    import torch.nn.functional as F
    return MLMOutput(F.cross_entropy(logits, targets), logits, targets, rows), {"input_ids": torch.ones(len(counts), 8, dtype=torch.long), "labels": labels}

def test_length_norm_uniform_is_the_token_mean():
    "The official loss N sum_i w_i (n_i / sum n) l_i: uniform weights give the token mean, not the mean of row means."
    out, batch = _ragged_out()
    tok = SampleReweighter("uniform", length_norm=True)(out, batch, 0)
    assert torch.isclose(tok, out.loss, atol=1e-6)
    assert not torch.isclose(SampleReweighter("uniform")(out, batch, 0), out.loss, atol=1e-4)   # ragged rows: they differ

def test_length_norm_matches_the_official_formula():
    out, batch = _ragged_out(counts=(2, 5, 1, 4, 3), seed=3)
    rw = SampleReweighter("linupper", r=0.4, length_norm=True, record_every=1)
    loss = rw(out, batch, 0)
    _, l, w = rw.history[-1]
    l, w, n = torch.tensor(l), torch.tensor(w), torch.tensor([2.0, 5, 1, 4, 3])
    assert torch.isclose(loss, (w * (n / n.sum()) * l).sum() * 5, atol=1e-6)
    loss.backward()
    assert torch.isfinite(out.logits.grad).all()

def test_length_norm_ignores_rows_without_targets():
    out, batch = _ragged_out(counts=(2, 0, 3))
    loss = SampleReweighter("uniform", length_norm=True)(out, batch, 0)
    assert torch.isclose(loss, out.loss, atol=1e-6)
