"""Low-rank layers, refactorization, ReLoRA merges, restarts, and GaLore/Fira's projected optimizer state."""
import pytest
import torch
from torch import nn
from mosaiclab.parameterisation.lowrank import (LowRankLinear, ReLoRALinear, Restarts, GaLoreAdamW, galore_param_groups, galore_optimizer_fn,
                               lowrank_mlm, relora_mlm, restart_multiplier)
from mosaiclab.model import MosaicBertConfig
from mosaiclab.train import TrainConfig
from mosaiclab.parameterisation.sltrain import optimizer_state_bytes

CFG = MosaicBertConfig.lab().replace(d_model=32, n_layers=2, n_heads=2, d_ff=64, vocab_size=128)

def test_from_dense_full_rank_is_exact_and_truncation_is_optimal():
    torch.manual_seed(0)
    lin = nn.Linear(20, 12)
    x = torch.randn(4, 3, 20)
    assert torch.allclose(LowRankLinear.from_dense(lin, 12)(x), lin(x), atol=1e-5)
    sv = torch.linalg.svdvals(lin.weight.detach())
    for r in (1, 5, 11):
        err = torch.linalg.matrix_norm(LowRankLinear.from_dense(lin, r).weight() - lin.weight).item()
        assert abs(err - sv[r:].square().sum().sqrt().item()) < 1e-4
    nob = LowRankLinear.from_dense(nn.Linear(20, 12, bias=False), 4)
    assert nob.bias is None

def test_refactorize_keeps_product_and_balances():
    torch.manual_seed(0)
    l = LowRankLinear(20, 12, rank=3)
    with torch.no_grad(): l.lora_B.mul_(7); l.lora_A.div_(7)
    W = l.weight().detach().clone(); l.refactorize()
    assert torch.allclose(l.weight(), W, atol=1e-5)
    assert torch.allclose(l.lora_B.T @ l.lora_B, l.lora_A @ l.lora_A.T, atol=1e-4)

def test_relora_merge_keeps_function_and_grows_rank():
    torch.manual_seed(0)
    r = ReLoRALinear(nn.Linear(16, 16), rank=2)
    b0 = r.base.detach().clone(); x = torch.randn(3, 16)
    assert not r.base.requires_grad
    for _ in range(3):
        with torch.no_grad(): r.lora_B.normal_()
        y = r(x); r.merge_and_reinit()
        assert torch.allclose(r(x), y, atol=1e-4) and (r.lora_B == 0).all()
    assert torch.linalg.matrix_rank(r.base - b0) == 6

@pytest.mark.parametrize("shape, state", [((32, 48), (4, 48)), ((48, 32), (48, 4))])
def test_galore_state_has_projected_size(shape, state):
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(*shape))
    for fira in (False, True):
        opt = GaLoreAdamW([{"params": [p], "rank": 4}], lr=1e-3, fira=fira)
        p.grad = torch.randn(*shape); opt.step()
        st = opt.state[p]
        assert tuple(st["exp_avg"].shape) == state and tuple(st["exp_avg_sq"].shape) == state
        assert optimizer_state_bytes(opt) < 2 * p.numel() * 4 / 2        # far less than AdamW's two dense moments

def test_galore_renews_subspace_every_gap():
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(10, 20))
    opt = GaLoreAdamW([{"params": [p], "rank": 2}], update_proj_gap=3)
    projs = []
    for _ in range(7):
        p.grad = torch.randn(10, 20); opt.step(); projs.append(opt.state[p]["proj"].clone())
    same = [torch.equal(projs[i], projs[i + 1]) for i in range(6)]
    assert same == [True, True, False, True, True, False]               # new SVDs at steps 3 and 6

def test_galore_without_rank_is_adamw():
    torch.manual_seed(0)
    a, b = nn.Linear(5, 4), nn.Linear(5, 4); b.load_state_dict(a.state_dict())
    oa, ob = GaLoreAdamW(a.parameters(), lr=1e-2, weight_decay=0.05), torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=0.05, eps=1e-6)
    x = torch.randn(8, 5)
    for _ in range(4):
        for m, o in ((a, oa), (b, ob)): m(x).square().sum().backward(); o.step(); o.zero_grad()
    assert torch.allclose(a.weight, b.weight, atol=1e-6)

def test_galore_bad_inputs():
    p = nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="2-D parameters"): GaLoreAdamW([{"params": [p], "rank": 2}])
    with pytest.raises(ValueError, match="update_proj_gap"): GaLoreAdamW([nn.Parameter(torch.zeros(2, 2))], update_proj_gap=0)

def test_galore_groups_and_optimizer_fn():
    m = lowrank_mlm(CFG, 4)                      # no dense Linear left in the layers: nothing projected
    assert galore_param_groups(m, 4)[0]["params"] == []
    from mosaiclab.model import MosaicBertForMaskedLM
    dense = MosaicBertForMaskedLM(CFG)
    groups = galore_param_groups(dense, 4)
    assert len(groups[0]["params"]) == 8 and all(p.dim() == 2 for p in groups[0]["params"])
    opt, sched = galore_optimizer_fn(4)(dense, TrainConfig.lab().with_overrides({"max_steps": 10}))
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(dense.parameters()))

def test_restarts_reset_and_schedule():
    # the benchmark's quick recovery (0.001 + 0.999 k / (recovery - 1)), k = 1 on the first update after a restart
    assert [restart_multiplier(s, 10, 4) for s in (9, 10, 11, 12, 13, 20)] == pytest.approx([1.0, 0.334, 0.667, 1.0, 1.0, 0.334])
    torch.manual_seed(0)
    m = lowrank_mlm(CFG, 4)
    cb = Restarts(3, refactorize=True, reset_momentum=True)
    cfg = TrainConfig.lab().with_overrides({"max_steps": 20})
    opt, sched = cb.optimizer_fn(m, cfg)
    ids = torch.randint(5, 128, (2, 8)); labels = ids.clone()
    for step in range(1, 4):
        m(ids, labels=labels).loss.backward(); opt.step(); sched.step(); opt.zero_grad()
        cb.on_step_end(step, {}, m)
    assert len(opt.state) == 0 and cb.restarts == 1
    assert sched.get_last_lr()[0] < 0.5 * cfg.lr                       # re-warming after the reset
    with pytest.raises(RuntimeError, match="optimizer_fn"): Restarts(1, reset_momentum=True).on_step_end(1, {}, m)

def test_models_swap_every_encoder_linear():
    assert sum(isinstance(x, LowRankLinear) for x in lowrank_mlm(CFG, 4).modules()) == 8
    assert sum(isinstance(x, LowRankLinear) for x in lowrank_mlm(CFG, lambda lin: 2).modules()) == 8
    r = relora_mlm(CFG, 4)
    assert sum(isinstance(x, ReLoRALinear) for x in r.modules()) == 8
    ids = torch.randint(5, 128, (2, 8))
    assert r(ids).logits.shape == (2, 8, CFG.padded_vocab_size)
