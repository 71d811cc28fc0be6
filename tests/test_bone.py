"Defining properties of mosaiclab.parameterisation.bone: identity at init, only adapters train, parameter counts, parity with the merged weight."
import dataclasses, pytest, torch
from torch import nn
import torch.nn.functional as F
from mosaiclab.parameterisation.bone import (bat_delta, BoneLinear, LoRALinear, add_adapters, trainable_parameters, bone_parameters,
                            lora_parameters, match_lora_rank, bone_from_bat, block_norms)
from mosaiclab.model import MosaicBertConfig, MosaicBertForSequenceClassification
from mosaiclab.parameterisation.linears import encoder_linears

CFG = dataclasses.replace(MosaicBertConfig.lab(), d_model=64, n_layers=2, n_heads=2, d_ff=128)

def naive_bat(W, b):
    r = b.shape[-1]; out = W.clone()
    for i in range(W.shape[0] // r):
        for j in range(W.shape[1] // r):
            blk = W[i * r:(i + 1) * r, j * r:(j + 1) * r]
            out[i * r:(i + 1) * r, j * r:(j + 1) * r] = blk @ b[i] + b[i]
    return out

@pytest.mark.parametrize("shape,r", [((8, 12), 4), ((6, 6), 3), ((16, 8), 8), ((4, 4), 1)])
def test_bat_matches_loops(shape, r):
    torch.manual_seed(0)
    W, b = torch.randn(*shape), torch.randn(shape[0] // r, r, r)
    assert torch.allclose(bat_delta(W, b), naive_bat(W, b), atol=1e-6)

@pytest.mark.parametrize("variant,inp", [("bat", 12), ("bone", 12), ("bone", 10)])
def test_bone_identity_at_init_and_merge_parity(variant, inp):
    torch.manual_seed(0)
    dense = nn.Linear(inp, 8)
    layer = BoneLinear(dense, 4, variant)
    x = torch.randn(3, 4, inp)
    assert torch.equal(layer(x), dense(x))
    with torch.no_grad(): layer.bone.normal_()
    assert torch.allclose(layer(x), F.linear(x, dense.weight + layer.delta_weight(), dense.bias), atol=1e-5)
    assert layer.bone.numel() == 4 * 8

def test_lora_identity_and_count():
    dense = nn.Linear(10, 6)
    l = LoRALinear(dense, 2, alpha=4)
    x = torch.randn(5, 10)
    assert torch.equal(l(x), dense(x))
    assert sum(p.numel() for p in l.parameters() if p.requires_grad) == 2 * 16
    with torch.no_grad(): l.lora_B.normal_()
    assert torch.allclose(l(x), F.linear(x, dense.weight + l.delta_weight(), dense.bias), atol=1e-5)
    assert l.scale == 2.0

@pytest.mark.parametrize("kind", ["bat", "bone", "lora"])
def test_only_adapters_and_head_train(kind):
    torch.manual_seed(0)
    clf = MosaicBertForSequenceClassification(CFG, 2).eval()
    ids = torch.randint(5, CFG.vocab_size, (2, 10))
    ref = clf(ids).logits
    make = (lambda n, lin: LoRALinear(lin, 2)) if kind == "lora" else (lambda n, lin: BoneLinear(lin, 8, kind))
    names = add_adapters(clf, make)
    assert len(names) == 4 * CFG.n_layers
    assert torch.equal(clf(ids).logits, ref)
    trainable = {n for n, p in clf.named_parameters() if p.requires_grad}
    assert all(n.startswith(("classifier.", "bert.pooler.")) or ".bone" in n or ".lora_" in n for n in trainable)
    assert not any(".base." in n or "embeddings" in n or "norm" in n for n in trainable)
    shapes = [tuple(m.base.weight.shape) for n, m in clf.named_modules() if hasattr(m, "base")]
    head = sum(p.numel() for p in clf.classifier.parameters()) + sum(p.numel() for p in clf.bert.pooler.parameters())
    expect = lora_parameters(shapes, 2) if kind == "lora" else bone_parameters(shapes, 8)
    assert trainable_parameters(clf) == expect + head
    frozen = {n: p.detach().clone() for n, p in clf.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in clf.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    clf.train(); clf(ids, labels=torch.tensor([0, 1])).loss.backward(); opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in clf.named_parameters() if not p.requires_grad)

def test_match_rank():
    shapes = [(192, 64), (64, 64), (256, 64), (64, 128)]
    k = match_lora_rank(shapes, bone_parameters(shapes, 8))
    assert abs(lora_parameters(shapes, k) - bone_parameters(shapes, 8)) <= lora_parameters(shapes, 1) / 2

def test_errors():
    with pytest.raises(ValueError, match="divide both dimensions"): BoneLinear(nn.Linear(10, 8), 4, "bat")
    with pytest.raises(ValueError, match="variant must be"): BoneLinear(nn.Linear(8, 8), 4, "x")
    with pytest.raises(ValueError, match="r must be a positive integer"): BoneLinear(nn.Linear(8, 8), 0)
    with pytest.raises(ValueError, match="rank must be"): LoRALinear(nn.Linear(8, 8), 0)
    with pytest.raises(ValueError, match="blocks"): bat_delta(torch.randn(8, 6), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="no Linear layers matched"): add_adapters(nn.Sequential(nn.ReLU()), lambda n, l: l)

@pytest.mark.parametrize("out,inp,r", [(12, 8, 4), (16, 24, 8), (6, 6, 3)])
def test_bat_minus_guide_is_bone(out, inp, r):
    "Bat's update with W_ij b_i dropped is Bone's with beta = bone_from_bat(b); what Bat adds on top is exactly W_ij b_i."
    torch.manual_seed(0)
    dense = nn.Linear(inp, out)
    bat, bone = BoneLinear(dense, r, "bat"), BoneLinear(dense, r, "bone")
    with torch.no_grad(): bat.bone.normal_(); bone.bone.copy_(bone_from_bat(bat.bone))
    W = dense.weight
    assert torch.allclose(bat_delta(torch.zeros_like(W), bat.bone), bone.delta_weight(), atol=1e-6)
    guide = torch.zeros_like(W)
    for i in range(out // r):
        for j in range(inp // r):
            guide[i * r:(i + 1) * r, j * r:(j + 1) * r] = W[i * r:(i + 1) * r, j * r:(j + 1) * r] @ bat.bone[i]
    assert torch.allclose(bat.delta_weight() - bone.delta_weight(), guide, atol=1e-5)
    assert not torch.allclose(bat.delta_weight(), bone.delta_weight(), atol=1e-3)   # the guide term is not nothing

def test_guide_free_bat_trains_like_bone():
    "From the zero start, AdamW on Bat-without-guide and on Bone stays the same function step after step."
    torch.manual_seed(0)
    dense = nn.Linear(16, 8)
    for p in dense.parameters(): p.requires_grad_(False)
    b = nn.Parameter(torch.zeros(8 // 4, 4, 4))
    bone = BoneLinear(dense, 4, "bone")
    opt_b = torch.optim.AdamW([b], lr=1e-2, weight_decay=0.1)
    opt_bone = torch.optim.AdamW([bone.bone], lr=1e-2, weight_decay=0.1)
    for step in range(5):
        x, y = torch.randn(6, 16), torch.randn(6, 8)
        out_b = F.linear(x, dense.weight + bat_delta(torch.zeros_like(dense.weight), b), dense.bias)
        assert torch.allclose(out_b, bone(x), atol=1e-5)
        for o, l in ((opt_b, F.mse_loss(out_b, y)), (opt_bone, F.mse_loss(bone(x), y))):
            o.zero_grad(); l.backward(); o.step()
        assert torch.allclose(bone_from_bat(b.detach()), bone.bone.detach(), atol=1e-6)
    assert bone.bone.abs().sum() > 0

def test_block_norms():
    torch.manual_seed(0)
    W = torch.randn(8, 12)
    n = block_norms(W, 4)
    assert n.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert abs(n[i, j] - torch.linalg.svdvals(W[i * 4:(i + 1) * 4, j * 4:(j + 1) * 4])[0]) < 1e-5
    with pytest.raises(ValueError, match="does not divide"): block_norms(W, 5)
