"Defining properties of mosaiclab.parameterisation.ofq (OFQ chapter): the oscillation counter, StatsQ/LSQ grids, CGA freezing, QKR parity."
import pytest, torch
from torch import nn
import torch.nn.functional as F
from mosaiclab.parameterisation.ofq import (statsq_codes, statsq_quantize, statsq_scale, LSQQuantizer, QuantLinear, OscillationTracker,
                             OscillationMonitor, cga_frozen, ConfidenceGuidedAnnealing, QKRAttention)

def test_tracker_counts_known_flips():
    # weight 0: 0 1 0 1 1 2 1 -> reversals at steps 2, 3, 6; weight 1 walks up (changes, never reverses);
    # weight 2: jumps two levels and back (one reversal); weight 3 constant
    seq = torch.tensor([[0, 0, 0, 0], [1, 1, 2, 0], [0, 2, 0, 0], [1, 3, 0, 0], [1, 4, 0, 0], [2, 5, 0, 0], [1, 6, 0, 0]])
    tr = OscillationTracker(momentum=0.5)
    counts = [tr.update(c) for c in seq]
    assert counts == [0, 0, 2, 1, 0, 0, 1]
    assert tr.oscillations.tolist() == [3, 0, 1, 0]
    assert tr.changes.tolist() == [5, 6, 2, 0]
    assert tr.steps == 6
    assert tr.rate() == pytest.approx(4 / (4 * 6))
    # moving-average frequency: weight 0 oscillated at steps 2, 3 and 6 with m = 0.5
    f = 0.0
    for o in [0, 1, 1, 0, 0, 1]: f = 0.5 * o + 0.5 * f
    assert tr.frequency[0].item() == pytest.approx(f)

def test_tracker_pause_does_not_reset_direction():
    tr = OscillationTracker()
    for c in [0, 1, 1, 1, 0]: tr.update(torch.tensor([float(c)]))
    assert tr.oscillations.item() == 1          # +1, pause, then -1 is a reversal

def test_tracker_shape_error():
    tr = OscillationTracker(); tr.update(torch.zeros(3))
    with pytest.raises(ValueError, match="changed shape"): tr.update(torch.zeros(4))

@pytest.mark.parametrize("bits", [2, 3, 4])
def test_statsq_grid(bits):
    torch.manual_seed(0)
    w = torch.randn(8, 32) * 3
    c = statsq_codes(w, bits)
    n = 2 ** (bits - 1)
    assert c.min() >= -n and c.max() <= n - 1
    q = statsq_quantize(w, bits)
    levels = (q / statsq_scale(w) * n - 0.5)
    assert torch.allclose(levels, c, atol=1e-4)
    assert torch.allclose(levels, levels.round(), atol=1e-4)

def test_bits_validation():
    with pytest.raises(ValueError, match="bits must be an integer >= 2"): statsq_codes(torch.randn(2, 2), 1)
    with pytest.raises(ValueError, match="bits must be"): QuantLinear(4, 4, bits=0)
    with pytest.raises(ValueError, match="method must be"): QuantLinear(4, 4, method="dorefa")

def test_lsq_scale_learns_and_clips_gradient():
    w = torch.tensor([[0.1, -0.2, 5.0, 0.3]], requires_grad=True)
    lsq = LSQQuantizer(w, bits=2)
    lsq(w).sum().backward()
    assert w.grad[0, 2] == 0                     # outside the grid: no gradient (LSQ)
    assert lsq.scale.grad is not None

def test_monitor_counts_real_flips_in_a_model():
    torch.manual_seed(0)
    model = nn.Sequential(QuantLinear(8, 8, method="statsq"), nn.ReLU(), QuantLinear(8, 2, method="lsq"))
    mon = OscillationMonitor(model); mon.update()
    with torch.no_grad():
        w = model[0].weight
        before = model[0].codes().clone()
        w.mul_(-1); mon.update(); w.mul_(-1); mon.update()   # every nonzero code flips sign and back
    flipped = (before != -1 - before)                           # StatsQ codes c -> -1 - c under negation
    assert mon.trackers["0"].oscillations.sum().item() == flipped.sum().item()
    assert mon.trackers["2"].oscillations.sum().item() == 0
    with pytest.raises(ValueError, match="no quantised modules"): OscillationMonitor(nn.Linear(2, 2))

def test_cga_mask_and_freeze_with_weight_decay_and_momentum():
    torch.manual_seed(0)
    ql = QuantLinear.from_linear(nn.Linear(64, 16), 2, "statsq")
    opt = torch.optim.AdamW(ql.parameters(), lr=1e-2, weight_decay=0.1)
    cga = ConfidenceGuidedAnnealing(ql, boundary_range=0.05)
    for _ in range(3):   # several steps, so Adam momentum is non-zero for every weight
        before = ql.weight.detach().clone()
        mask = cga_frozen(before, 2, 0.05)
        ql(torch.randn(8, 64)).pow(2).sum().backward()
        cga.before_step(); opt.step(); cga.after_step(); opt.zero_grad()
        assert torch.equal(ql.weight.detach()[mask], before[mask])
        assert (ql.weight.detach()[~mask] != before[~mask]).all()

def test_cga_boundary_extremes():
    w = torch.randn(4, 32)
    assert not cga_frozen(w, 2, 10.0).any()      # every weight is near some threshold
    assert cga_frozen(w, 2, 0.0).float().mean() > 0.99
    with pytest.raises(ValueError, match="boundary_range"): cga_frozen(w, 2, -0.1)
    with pytest.raises(ValueError, match="StatsQ"): ConfidenceGuidedAnnealing(QuantLinear(4, 4, method="lsq"))

def test_qkr_full_precision_is_ordinary_attention():
    torch.manual_seed(1)
    att = QKRAttention(24, 3, bits=None)
    x = torch.randn(2, 5, 24)
    q, k, v = [l(x).view(2, 5, 3, 8).transpose(1, 2) for l in (att.q, att.k, att.v)]
    ref = att.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 5, 24))
    assert torch.allclose(att(x), ref, atol=1e-5)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    refm = att.proj(F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :]).transpose(1, 2).reshape(2, 5, 24))
    assert torch.allclose(att(x, mask), refm, atol=1e-5)

def test_qkr_quantised_trains_q_and_k():
    att = QKRAttention(16, 2, bits=2)
    att(torch.randn(3, 4, 16)).sum().backward()
    assert att.q.weight.grad is not None and att.k.weight.grad is not None
    with pytest.raises(ValueError, match="no codes"): QKRAttention(16, 2, bits=None).codes()

def test_lsq_frozen_scale_is_the_learned_one_at_init_and_never_moves():
    # the control for OFQ's claim: same grid, same init (2 mean|w| / sqrt(Q_p)), scale not learned (official learnable=False)
    torch.manual_seed(0)
    lin = nn.Linear(32, 8)
    learned = QuantLinear.from_linear(lin, 2, "lsq")
    frozen = QuantLinear.from_linear(lin, 2, "lsq", learn_scale=False)
    assert torch.equal(frozen.quantizer.scale, learned.quantizer.scale)
    assert torch.allclose(frozen.quantizer.scale, 2 * lin.weight.abs().mean(1) / 1.0)   # Q_p = 1 at 2 bits
    x = torch.randn(16, 32)
    assert torch.equal(frozen(x), learned(x))
    s0 = frozen.quantizer.scale.detach().clone()
    for ql in (learned, frozen):
        opt = torch.optim.AdamW(ql.parameters(), lr=1e-2)
        for _ in range(3):
            opt.zero_grad(); ql(x).pow(2).sum().backward(); opt.step()
    assert frozen.quantizer.scale.grad is None and torch.equal(frozen.quantizer.scale, s0)
    assert not torch.equal(learned.quantizer.scale, s0)              # the learned one does move
    assert not torch.equal(frozen.weight, lin.weight)                # the frozen arm still trains its weights
    assert QuantLinear(**frozen.spec()).learn_scale is False
    with pytest.raises(ValueError, match="learn_scale=False is for LSQ"): QuantLinear(4, 4, method="statsq", learn_scale=False)

def test_lsq_scale_gradient_scale_and_clip_pass_through():
    # official lsq.py: the step size's gradient is scaled by 1 / sqrt(Q_p * d_in), and `clip(alpha, 1e-5)` passes the gradient
    torch.manual_seed(0)
    w = torch.randn(3, 16)
    lsq = LSQQuantizer(w, bits=3)
    ref_s = lsq.scale.detach().clone().requires_grad_()
    x = torch.clamp(w / ref_s[:, None], lsq.qmin, lsq.qmax)
    ((x.round() - x).detach() + x).mul(ref_s[:, None]).sum().backward()   # LSQ without gradient scaling
    lsq(w).sum().backward()
    assert torch.allclose(lsq.scale.grad, ref_s.grad / (lsq.qmax * 16) ** 0.5, atol=1e-6)
    tiny = LSQQuantizer(w, bits=2)
    with torch.no_grad(): tiny.scale.fill_(1e-7)
    tiny(w).sum().backward()
    assert (tiny.scale.grad != 0).all()                             # below the floor the scale still learns
