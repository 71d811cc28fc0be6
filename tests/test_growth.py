"Defining properties of mosaiclab.growth.aquilamoe: function-preserving growth, AKI and random padding, upcycled MoE, its losses."
import copy, math
import pytest
import torch
from mosaiclab.alibi import alibi_slopes
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM, flops_per_token
from mosaiclab.growth.aquilamoe import (unit_map, head_map, grow_width, grow_depth, grow, layer_order, MoEFFN, upcycle_to_moe,
                              moe_layers, moe_aux_loss, moe_loss_fn, load_balance_loss, router_z_loss, moe_flops_per_token)

SMALL = MosaicBertConfig.lab().replace(d_model=64, n_layers=2, n_heads=2, d_ff=128, vocab_size=512)
LARGE = SMALL.replace(d_model=128, n_layers=4, n_heads=4, d_ff=256)

def trained_like(cfg, seed=0):
    "A model with every bias and LayerNorm moved off its initial value."
    torch.manual_seed(seed)
    m = MosaicBertForMaskedLM(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 1: p.add_(0.1 * torch.randn_like(p))
    return m

@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, SMALL.vocab_size, (3, 24), generator=g)
    mask = torch.ones_like(ids); mask[1, 15:] = 0; mask[2, 5:] = 0
    labels = torch.full_like(ids, -100); labels[:, 3] = ids[:, 3]; labels[0, 10] = ids[0, 10]
    return ids, mask, labels

def logits(m, ids, mask, labels=None): return m.eval()(ids, mask, labels=labels).logits

@pytest.mark.parametrize("position,ffn", [("alibi", "geglu"), ("learned", "gelu"), ("alibi", "gelu"), ("learned", "geglu")])
@pytest.mark.parametrize("order", ["stack", "interpolate"])
def test_fpi_preserves_the_function(batch, position, ffn, order):
    ids, mask, labels = batch
    small = trained_like(SMALL.replace(position=position, ffn=ffn))
    big = grow(small, LARGE.replace(position=position, ffn=ffn), "fpi", order=order)
    assert big.cfg.n_layers == 4 and big.cfg.d_model == 128
    torch.testing.assert_close(logits(big, ids, mask), logits(small, ids, mask), atol=1e-5, rtol=0)
    torch.testing.assert_close(logits(big, ids, mask, labels), logits(small, ids, mask, labels), atol=1e-5, rtol=0)

@pytest.mark.parametrize("inner", ["cyclic", "random"])
def test_fpi_exact_for_any_ffn_and_head_map_and_uneven_growth(batch, inner):
    ids, mask, _ = batch
    small = trained_like(SMALL)
    # d_ff 128 -> 200 and heads 2 -> 3: uneven, still exact (no normalisation over these units)
    big = grow_width(small, 128, 4, 200, "fpi", inner_mapping=inner, seed=5)
    torch.testing.assert_close(logits(big, ids, mask), logits(small, ids, mask), atol=1e-5, rtol=0)

def test_random_residual_map_is_only_approximate(batch):
    "bert2BERT's uniform map copies some d_model units more often: LayerNorm statistics shift, the function moves."
    ids, mask, _ = batch
    small = trained_like(SMALL)
    ref = logits(small, ids, mask)
    gap = (logits(grow_width(small, 128, 4, 256, "fpi", hidden_mapping="random", seed=2), ids, mask) - ref).abs().max()
    assert 1e-4 < gap < 1.0
    # with a cyclic map but an uneven factor (64 -> 96 with 2 heads of 32 -> 3) the copies are uneven too
    gap96 = (logits(grow_width(small, 96, 3, 128, "fpi"), ids, mask) - ref).abs().max()
    assert gap96 > 1e-4

def test_aki_takes_added_units_from_the_layer_above():
    small = trained_like(SMALL)
    aki = grow_width(small, 128, 4, 256, "aki", seed=4)
    hid = unit_map(64, 128)
    def gate_rows(layer): return layer.ffn.up.weight[:128][:, hid.src] * hid.share
    def nearest(rows, pool): return torch.cdist(rows, pool, compute_mode="donot_use_mm_for_euclid_dist").min(1).values.max().item()
    g0 = aki.bert.layers[0].ffn.up.weight[:256].detach()
    torch.testing.assert_close(g0[:128], gate_rows(small.bert.layers[0]).detach())
    assert nearest(g0[128:], gate_rows(small.bert.layers[1]).detach()) < 1e-6
    assert nearest(g0[128:], gate_rows(small.bert.layers[0]).detach()) > 1e-2
    # the added heads of layer 0 carry layer 1's query rows
    q_small1 = small.bert.layers[1].attn.qkv.weight[:64][:, hid.src] * hid.share
    q0 = aki.bert.layers[0].attn.qkv.weight[:128].detach()
    fresh = head_map(SMALL, LARGE).features(32).fresh
    assert nearest(q0[fresh], q_small1.detach()) < 1e-6

def test_aki_and_random_change_the_function_random_keeps_the_old_block(batch):
    ids, mask, _ = batch
    small = trained_like(SMALL)
    ref = logits(small, ids, mask)
    for method in ("aki", "random"):
        assert (logits(grow(small, LARGE, method), ids, mask) - ref).abs().max() > 1e-3
    rnd = grow_width(small, 128, 4, 256, "random")
    assert torch.equal(rnd.bert.layers[1].ffn.down.weight[:64, :128], small.bert.layers[1].ffn.down.weight)
    assert torch.equal(rnd.bert.embeddings.tokens.weight[:, :64], small.bert.embeddings.tokens.weight)
    # old heads moved to the ALiBi slots with their slopes (2 heads -> slots 1 and 3 of 4)
    home = head_map(SMALL, LARGE).features(32).home
    assert torch.equal(rnd.bert.layers[0].attn.qkv.weight[:128][home][:, :64], small.bert.layers[0].attn.qkv.weight[:64])

def test_grow_leaves_the_small_model_untouched(batch):
    ids, mask, _ = batch
    small = trained_like(SMALL)
    before = {k: v.clone() for k, v in small.state_dict().items()}
    for method in ("random", "fpi", "aki"): grow(small, LARGE, method)
    assert all(torch.equal(before[k], v) for k, v in small.state_dict().items())

def test_head_map_follows_alibi_slopes():
    for h_old, h_new in [(2, 4), (4, 8), (3, 6), (4, 6), (2, 3)]:
        a, b = SMALL.replace(n_heads=h_old, d_model=32 * h_old), SMALL.replace(n_heads=h_new, d_model=32 * h_new)
        m = head_map(a, b)
        for k, j in enumerate(m.home.tolist()):
            assert math.isclose(alibi_slopes(h_old)[k], alibi_slopes(h_new)[j], rel_tol=1e-9)
        assert m.fresh.sum() == h_new - h_old

def test_clear_errors():
    small = trained_like(SMALL)
    with pytest.raises(ValueError, match="d_head must stay"): grow_width(small, 128, 2, 256)
    with pytest.raises(ValueError, match="fewer"): grow_width(small, 32, 1, 128)
    with pytest.raises(ValueError, match="fewer"): grow_depth(small, 1)
    with pytest.raises(ValueError, match="method must be"): grow(small, LARGE, "net2net")
    with pytest.raises(ValueError, match="differ in: vocab_size"): grow(small, LARGE.replace(vocab_size=1024))
    with pytest.raises(ValueError, match="'stack' or 'interpolate'"): layer_order(2, 4, "zigzag")
    with pytest.raises(ValueError, match="'cyclic' or 'random'"): unit_map(2, 4, "nearest")
    with pytest.raises(TypeError, match="MosaicBertForMaskedLM"): grow_width(small.bert, 128, 4, 256)
    moe = upcycle_to_moe(copy.deepcopy(small))
    with pytest.raises(ValueError, match="already a MoE"): upcycle_to_moe(moe)
    with pytest.raises(ValueError, match="dense FFNs"): grow_width(moe, 128, 4, 256)
    with pytest.raises(ValueError, match="top_k must lie"): MoEFFN.upcycle(small.bert.layers[0].ffn, 64, 4, 5)
    with pytest.raises(ValueError, match="no MoEFFN"): moe_aux_loss(small)
    with pytest.raises(RuntimeError, match="forward pass"): moe_aux_loss(upcycle_to_moe(copy.deepcopy(small)))

@pytest.mark.parametrize("router_std", [0.0, 0.02, 1.0])
@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_upcycled_moe_equals_dense(batch, router_std, top_k):
    ids, mask, labels = batch
    dense = trained_like(SMALL)
    moe = upcycle_to_moe(copy.deepcopy(dense), n_experts=4, top_k=top_k, router_std=router_std)
    torch.testing.assert_close(logits(moe, ids, mask), logits(dense, ids, mask), atol=1e-5, rtol=0)
    torch.testing.assert_close(logits(moe, ids, mask, labels), logits(dense, ids, mask, labels), atol=1e-5, rtol=0)

def test_top2_gates_renormalised():
    torch.manual_seed(0)
    ffn = trained_like(SMALL).bert.layers[0].ffn
    moe = MoEFFN.upcycle(ffn, 64, 4, 2, router_std=1.0)
    # experts that scale differently reveal the gates: expert e returns (e + 1) * x through a linear stand-in
    moe.experts = torch.nn.ModuleList([torch.nn.Identity() for _ in range(4)])
    x = torch.randn(7, 64)
    p = moe.router(x).softmax(-1)
    top, idx = p.topk(2, -1)
    torch.testing.assert_close(moe(x), x * 1.0)                   # identical experts: gates sum to one
    torch.testing.assert_close((top / top.sum(-1, keepdim=True)).sum(-1), torch.ones(7))
    assert moe.load.shape == (4,) and math.isclose(moe.load.sum().item(), 1.0, rel_tol=1e-6)

def test_load_balance_loss():
    E = 4
    uniform = torch.full((12, E), 1 / E)
    for chosen in (torch.zeros(12, 2, dtype=torch.long), torch.arange(24).reshape(12, 2) % E):
        torch.testing.assert_close(load_balance_loss(uniform, chosen), torch.tensor(1.0))
    skew = torch.tensor([[0.7, 0.1, 0.1, 0.1]]).repeat(12, 1)
    torch.testing.assert_close(load_balance_loss(skew, torch.zeros(12, 1, dtype=torch.long)), torch.tensor(2.8))
    assert load_balance_loss(torch.zeros(0, E), torch.zeros(0, 2, dtype=torch.long)) == 0
    # a zero-initialised router is uniform: the loss is exactly 1 inside the MoE too
    moe = MoEFFN.upcycle(trained_like(SMALL).bert.layers[0].ffn, 64, E, 2, router_std=0.0)
    moe(torch.randn(9, 64))
    torch.testing.assert_close(moe.aux["balance"], torch.tensor(1.0))

def test_router_z_loss():
    x = torch.randn(5, 4) * 4
    torch.testing.assert_close(router_z_loss(x), (torch.log(torch.exp(x).sum(-1)) ** 2).mean())
    torch.testing.assert_close(router_z_loss(torch.zeros(3, 4)), torch.tensor(math.log(4) ** 2))
    assert router_z_loss(torch.zeros(0, 4)) == 0

def test_aux_losses_reach_the_router_through_loss_fn(batch):
    ids, mask, labels = batch
    moe = upcycle_to_moe(trained_like(SMALL)).train()
    out = moe(ids, mask, labels=labels)
    loss = moe_loss_fn(moe, balance_coef=0.5, z_coef=0.25)(out, None, 0)
    ms = moe_layers(moe)
    expect = sum(0.5 * m.aux["balance"] + 0.25 * m.aux["z"] for m in ms) / len(ms)
    torch.testing.assert_close(loss - out.loss, expect)
    loss.backward()
    assert all(m.router.weight.grad.abs().sum() > 0 for m in ms)

def test_moe_flops():
    cfg = LARGE
    ffn = 3 * cfg.d_model * cfg.d_ff
    want = flops_per_token(cfg, 64, 0.3) + 3 * cfg.n_layers * 2 * (ffn + cfg.d_model * 4)
    assert moe_flops_per_token(cfg, 4, 2, 64, 0.3) == want
    assert moe_flops_per_token(cfg, 4, 2, 64, 0.3, training=False) * 3 == pytest.approx(want)

def test_moe_trains_with_the_trainer(tmp_path):
    "One short pretrain call through model_fn and loss_fn: finite loss, experts drift apart."
    from mosaiclab.train import TrainConfig, pretrain
    cfg = TrainConfig.lab().with_overrides({"model.d_model": 64, "model.n_layers": 1, "model.n_heads": 2, "model.d_ff": 64,
                                            "max_steps": 3, "global_batch": 4, "micro_batch": 4, "data.seq_len": 32,
                                            "eval_every": 0, "eval_samples": 4, "checkpoint_every": 0, "max_minutes": None,
                                            "precision": "fp32", "log_every": 1})
    model = upcycle_to_moe(MosaicBertForMaskedLM(cfg.model))
    summary = pretrain(cfg, tmp_path / "run", model_fn=lambda _: model, loss_fn=moe_loss_fn(model), progress=False)
    assert math.isfinite(summary["eval_loss"])
    e = moe_layers(model)[0].experts
    assert not torch.equal(e[0].up.weight, e[1].up.weight)
