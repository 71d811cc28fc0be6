"""SLTrain's SparsePlusLowRankLinear: the fixed support, the value-only sparse training, shapes, memory, bad inputs."""
import math
import pytest
import torch
from torch import nn
from mosaiclab.parameterisation.sltrain import (SparsePlusLowRankLinear, sltrain_mlm, matched_rank, memory_report, optimizer_state_bytes,
                               tensor_bytes)
from mosaiclab.model import MosaicBertConfig

def _train(layer, steps=30, d_in=16, d_out=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    X, T = torch.randn(64, d_in, generator=g), torch.randn(d_out, d_in, generator=g)
    opt = torch.optim.AdamW(layer.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(steps):
        loss = (layer(X) - X @ T.T).pow(2).mean(); opt.zero_grad(); loss.backward(); opt.step()
    return opt

def test_support_fixed_only_values_train():
    torch.manual_seed(0)
    layer = SparsePlusLowRankLinear(16, 12, rank=3, density=0.2)
    idx0, vals0, A0 = layer.sparse_index.clone(), layer.sparse_values.detach().clone(), layer.lora_A.detach().clone()
    opt = _train(layer)
    assert torch.equal(layer.sparse_index, idx0)                       # the support never moves
    assert not torch.equal(layer.sparse_values, vals0)                 # its values train
    assert not torch.equal(layer.lora_A, A0)                           # and the low-rank factors
    off = torch.ones(16 * 12, dtype=torch.bool); off[idx0] = False
    S = layer.sparse().flatten()
    assert (S[off] == 0).all() and ((layer.weight() - layer.low_rank()).flatten()[off] == 0).all()
    # no optimizer state anywhere for a dense S: only the nnz values vector
    assert all(p is not layer.sparse_index for p in opt.state)
    assert layer.sparse_values in opt.state and opt.state[layer.sparse_values]["exp_avg"].shape == (int(0.2 * 16 * 12),)

def test_support_is_a_buffer_that_travels():
    layer = SparsePlusLowRankLinear(10, 10, rank=2, density=0.3)
    assert "sparse_index" in dict(layer.named_buffers()) and "sparse_index" not in dict(layer.named_parameters())
    other = SparsePlusLowRankLinear(10, 10, rank=2, density=0.3)
    other.load_state_dict(layer.state_dict())
    assert torch.equal(other.sparse_index, layer.sparse_index) and torch.allclose(other.weight(), layer.weight())
    assert layer.to(torch.float64).sparse_values.dtype == torch.float64 and layer.sparse_index.dtype == torch.int64

def test_support_is_random_unique_sorted_and_seeded():
    a = SparsePlusLowRankLinear(40, 30, rank=4, density=0.1, generator=torch.Generator().manual_seed(3))
    b = SparsePlusLowRankLinear(40, 30, rank=4, density=0.1, generator=torch.Generator().manual_seed(3))
    c = SparsePlusLowRankLinear(40, 30, rank=4, density=0.1, generator=torch.Generator().manual_seed(4))
    idx = a.sparse_index
    assert idx.numel() == 120 and idx.unique().numel() == 120 and torch.equal(idx, idx.sort().values)
    assert idx.min() >= 0 and idx.max() < 1200
    assert torch.equal(a.sparse_index, b.sparse_index) and not torch.equal(a.sparse_index, c.sparse_index)

def test_init_matches_official_code():
    torch.manual_seed(0)
    layer = SparsePlusLowRankLinear(256, 64, rank=8, density=0.05, alpha=32)
    assert (layer.lora_B == 0).all()                                  # W starts as S
    assert layer.scaling == 32 / 8
    assert layer.sparse_values.abs().max() <= 1 / math.sqrt(256)
    assert layer.lora_A.abs().max() <= 1 / math.sqrt(256)            # kaiming_uniform(a=sqrt 5): bound 1/sqrt(fan_in)

def test_forward_and_gradients_match_dense_formula():
    torch.manual_seed(1)
    layer = SparsePlusLowRankLinear(9, 7, rank=2, density=0.3, alpha=2.0)
    with torch.no_grad(): layer.lora_B.normal_()
    x = torch.randn(3, 5, 9)
    y = layer(x); assert y.shape == (3, 5, 7)
    W = layer.lora_B @ layer.lora_A * layer.scaling
    W = W + torch.zeros(63).index_put((layer.sparse_index,), layer.sparse_values).view(7, 9)
    ref = x @ W.T + layer.bias
    assert torch.allclose(y, ref, atol=1e-6)
    g1 = torch.autograd.grad(y.square().sum(), [layer.lora_A, layer.lora_B, layer.sparse_values])
    g2 = torch.autograd.grad(ref.square().sum(), [layer.lora_A, layer.lora_B, layer.sparse_values])
    for a, b in zip(g1, g2): assert torch.allclose(a, b, atol=1e-5)

def test_no_bias_and_like():
    lin = nn.Linear(12, 8, bias=False)
    layer = SparsePlusLowRankLinear.like(lin, rank=2, density=0.1)
    assert layer.bias is None and layer.weight().shape == (8, 12)

@pytest.mark.parametrize("kw, msg", [(dict(rank=0), "rank must be in"), (dict(rank=9), "rank must be in [1, 8]"),
                                      (dict(rank=2, density=0), "density must lie in (0, 1)"),
                                      (dict(rank=2, density=1.0), "density must lie in (0, 1)"),
                                      (dict(rank=2, density=0.001), "leaves no sparse entry")])
def test_bad_inputs(kw, msg):
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        SparsePlusLowRankLinear(12, 8, **kw)

def test_parameter_count_and_matched_rank():
    layer = SparsePlusLowRankLinear(128, 384, rank=16, density=0.05)
    n = sum(p.numel() for p in layer.parameters())
    assert n == 16 * 512 + int(0.05 * 128 * 384) + 384
    r2 = matched_rank(128, 384, 16, 0.05)
    assert abs(r2 * 512 - (n - 384)) <= 512 // 2                       # within half a rank's worth of parameters

def test_memory_report_measures_optimizer_state():
    torch.manual_seed(0)
    lin = nn.Linear(4, 3)
    opt = torch.optim.AdamW(lin.parameters())
    assert optimizer_state_bytes(opt) == 0                             # nothing before the first step
    lin(torch.randn(2, 4)).sum().backward(); opt.step()
    rep = memory_report(lin, opt)
    assert rep["params"] == 15 and rep["param_bytes"] == 60 and rep["trainable_params"] == 15
    assert rep["optimizer_state_bytes"] == 2 * 60 + 2 * 4             # two moments + two 0-d float32 step counters
    t = torch.zeros(10)
    assert tensor_bytes([t, t]) == 40                                  # the same tensor counted once

def test_sltrain_mlm_swaps_encoder_linears_only():
    cfg = MosaicBertConfig.lab().replace(d_model=32, n_layers=2, n_heads=2, d_ff=64, vocab_size=128)
    model = sltrain_mlm(cfg, rank=4, density=0.1)
    names = [n for n, m in model.named_modules() if isinstance(m, SparsePlusLowRankLinear)]
    assert len(names) == 8 and all(".layers." in f".{n}" for n in names)
    assert type(model.head.transform) is nn.Linear                    # the head keeps its dense layer
    ids = torch.randint(5, 128, (2, 10)); labels = torch.full_like(ids, -100); labels[:, 3] = ids[:, 3]
    out = model(ids, labels=labels); out.loss.backward()
    assert torch.isfinite(out.loss) and model.bert.layers[0].ffn.up.sparse_values.grad is not None


def test_encoder_linear_memory_counts_every_linear_like_layer():
    "The library's count equals one made by listing the Linear classes by name, dense and swapped alike, and sees optimizer state."
    import torch
    from torch import nn
    from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM
    from mosaiclab.parameterisation.sltrain import SparsePlusLowRankLinear, sltrain_mlm, encoder_linear_memory
    from mosaiclab.parameterisation.lowrank import LowRankLinear, ReLoRALinear, lowrank_mlm, relora_mlm
    types = (nn.Linear, SparsePlusLowRankLinear, LowRankLinear, ReLoRALinear)
    cfg = MosaicBertConfig(vocab_size=128, d_model=32, n_layers=2, n_heads=2, d_ff=64)
    for build in (MosaicBertForMaskedLM, lambda c: lowrank_mlm(c, 4), lambda c: sltrain_mlm(c, 4, 0.05), lambda c: relora_mlm(c, 4)):
        torch.manual_seed(0); m = build(cfg)
        mods = [mod for n, mod in m.named_modules() if ".layers." in f".{n}" and isinstance(mod, types)]
        want = sum(p.numel() for mod in mods for p in mod.parameters())
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
        ids = torch.randint(5, 128, (2, 16))
        m(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss.backward(); opt.step()
        got = encoder_linear_memory(m, opt)
        assert got["linear_params"] == want > 0
        trainable = sum(p.numel() for mod in mods for p in mod.parameters() if p.requires_grad)
        assert got["linear_trainable"] == trainable
        assert got["linear_optimizer_state_bytes"] == 2 * 4 * trainable + 4 * sum(1 for mod in mods for p in mod.parameters() if p.requires_grad)
