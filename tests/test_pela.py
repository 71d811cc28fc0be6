"""PELA: the SVD start, the rank rule, compression of a model, feature distillation and the weight regulariser."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from mosaiclab.parameterisation.lowrank import LowRankLinear
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM
from mosaiclab.parameterisation.pela import pela_rank, compress, FeatureDistillation, weight_perturbation, classifier_from, LayerOutputs

CFG = MosaicBertConfig.lab().replace(d_model=32, n_layers=2, n_heads=2, d_ff=64, vocab_size=128)

def _batch():
    ids = torch.randint(5, 128, (2, 12)); labels = torch.full_like(ids, -100); labels[:, 2:5] = ids[:, 2:5]
    return dict(input_ids=ids, labels=labels)

def test_svd_start_reproduces_dense_at_full_rank():
    torch.manual_seed(0)
    for shape in [(16, 40), (40, 16), (24, 24)]:
        lin = nn.Linear(*shape); x = torch.randn(3, shape[0])
        assert torch.allclose(LowRankLinear.from_dense(lin, min(shape))(x), lin(x), atol=1e-5)

def test_rank_rule_divides_parameters():
    for m, n, c in [(64, 192, 2), (64, 64, 3), (128, 256, 2.5)]:
        r = pela_rank(m, n, c)
        assert r * (m + n) <= m * n / c < (r + 1) * (m + n)
    with pytest.raises(ValueError, match="must be > 1"): pela_rank(8, 8, 1)

def test_compress_copies_everything_else_and_leaves_teacher():
    torch.manual_seed(0)
    t = MosaicBertForMaskedLM(CFG)
    s = compress(t, 2)
    assert sum(isinstance(m, LowRankLinear) for m in s.modules()) == 8
    assert all(type(m) is nn.Linear for n, m in t.named_modules() if ".layers." in f".{n}" and isinstance(m, nn.Linear))
    for (n1, p1), (n2, p2) in zip(t.bert.embeddings.named_parameters(), s.bert.embeddings.named_parameters()):
        assert torch.equal(p1, p2)
    assert torch.equal(s.bert.layers[0].attn.qkv.bias, t.bert.layers[0].attn.qkv.bias)
    r = compress(t, 2, "random")
    assert torch.equal(r.bert.layers[0].attn.qkv.bias, t.bert.layers[0].attn.qkv.bias)
    assert not torch.allclose(r.bert.layers[0].attn.qkv.weight(), s.bert.layers[0].attn.qkv.weight())
    with pytest.raises(ValueError, match="init must be"): compress(t, 2, "zeros")

def test_svd_error_is_eckart_young_and_beats_random():
    torch.manual_seed(0)
    t = MosaicBertForMaskedLM(CFG)
    W = t.bert.layers[1].ffn.down.weight
    s = compress(t, 3).bert.layers[1].ffn.down
    sv = torch.linalg.svdvals(W.detach())
    err = torch.linalg.matrix_norm(s.weight() - W)
    assert abs(err - sv[s.rank:].square().sum().sqrt()) < 1e-4
    rnd = compress(t, 3, "random").bert.layers[1].ffn.down
    assert torch.linalg.matrix_norm(rnd.weight() - W) > err

def test_feature_distillation_loss_and_gradients():
    torch.manual_seed(0)
    t = MosaicBertForMaskedLM(CFG).eval(); s = compress(t, 2).eval()
    fd = FeatureDistillation(t, s, alpha=0.5, gamma=2.0)
    assert not any(p.requires_grad for p in t.parameters())
    b = _batch(); out = s(**b); loss = fd(out, b, 0)
    feats = torch.stack([F.mse_loss(a, c) for a, c in zip(fd.s_out.outputs, fd.t_out.outputs)]).mean()
    wp = weight_perturbation(s, t)
    assert torch.allclose(loss, out.loss + 0.5 * feats + 2.0 * wp, atol=1e-5)
    loss.backward()
    assert s.bert.layers[0].attn.qkv.lora_B.grad is not None and t.bert.layers[0].attn.qkv.weight.grad is None
    fd.t_out.remove(); fd.s_out.remove()
    s(**b)   # hooks removed: nothing recorded any more
    assert all(h is not None for h in fd.s_out.outputs)

def test_weight_perturbation_matches_official_formula():
    torch.manual_seed(0)
    t = MosaicBertForMaskedLM(CFG); s = compress(t, 2)
    terms = []
    for n, m in s.named_modules():
        if isinstance(m, LowRankLinear):
            W = t.get_submodule(n).weight
            terms.append(F.mse_loss(torch.norm(m.weight() - W, float("inf")), torch.tensor(1e-3)))
    assert torch.allclose(weight_perturbation(s, t), torch.stack(terms).mean(), atol=1e-7)
    with pytest.raises(ValueError, match="no LowRankLinear"): weight_perturbation(t, t)

def test_layer_outputs_hooks_and_classifier():
    t = MosaicBertForMaskedLM(CFG).eval()
    h = LayerOutputs(t); t(torch.randint(5, 128, (2, 7)))
    assert len(h.outputs) == 2 and h.outputs[0].shape == (14, 32)   # unpadded tokens
    h.remove()
    clf = classifier_from(compress(t, 2), num_labels=3)
    out = clf(torch.randint(5, 128, (2, 7)), labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss)
    assert isinstance(clf.bert.layers[0].attn.out, LowRankLinear) and clf.bert.pooler is not None
