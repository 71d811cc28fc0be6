"Defining properties of mosaiclab.parameterisation.bone: identity at init, only adapters train, parameter counts, parity with the merged weight."
import dataclasses, pytest, torch
from torch import nn
import torch.nn.functional as F
from mosaiclab.parameterisation.bone import (bat_delta, BoneLinear, LoRALinear, add_adapters, trainable_parameters, bone_parameters,
                            lora_parameters, match_lora_rank)
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
