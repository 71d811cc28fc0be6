"""PRIOR's weights and loss: the formula, per-caption normalisation, equality with plain NTP under an uninformed
reference, zero weight for tokens the reference is sure of, both head paths, and clear errors."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from mosaiclab.model import MLMOutput, MosaicBertConfig, MosaicBertForMaskedLM
from mosaiclab.objectives.prior import TokenReweighter, normalize_weights, prior_weights, scored_tokens
from mosaiclab.objectives.ul2 import MODEL_KEYS, collate_prefix_lm

CFG = MosaicBertConfig.lab().replace(vocab_size=60, d_model=32, n_layers=1, n_heads=2, d_ff=64, attention_pattern="prefix")

class Fixed(nn.Module):
    "A reference with given probabilities: logits log p for every position."
    def __init__(self, probs): super().__init__(); self.logp = torch.log(probs)
    def forward(self, input_ids, labels, **kw):
        return MLMOutput(None, self.logp.expand(*input_ids.shape, -1).clone(), labels, None)

def pair(caps, vis=((40, 41), (42, 43), (44, 45))):
    img = collate_prefix_lm([(list(v) + [1], c) for v, c in zip(vis, caps)])
    txt = collate_prefix_lm([([1], c) for c in caps])
    return {k: img[k] for k in MODEL_KEYS}, {k: txt[k] for k in MODEL_KEYS}

def test_weight_formula_and_normalisation():
    p = torch.rand(50)
    torch.testing.assert_close(prior_weights(p, 1.0), 1 - p)
    torch.testing.assert_close(prior_weights(p, 3.0), (1 - p) ** 3)
    rows = torch.randint(0, 5, (50,))
    rows[:5] = torch.arange(5)                          # every sequence present
    w = normalize_weights(prior_weights(p), rows)
    for r in range(5): torch.testing.assert_close(w[rows == r].mean(), torch.tensor(1.0))
    torch.testing.assert_close(normalize_weights(torch.ones(7), torch.tensor([0, 0, 1, 1, 1, 2, 2])), torch.ones(7))
    assert torch.isfinite(normalize_weights(torch.zeros(3), torch.tensor([0, 0, 1]))).all()  # a fully-known caption: no NaN

@pytest.mark.parametrize("masked_only", [True, False])
def test_uninformed_reference_gives_the_plain_loss(masked_only):
    torch.manual_seed(0)
    model = MosaicBertForMaskedLM(CFG.replace(masked_only_head=masked_only))
    img, txt = pair([[5, 6, 7, 8], [5, 9], [10, 11, 12]])
    out = model(**img)
    loss = TokenReweighter(Fixed(torch.full((64,), 1 / 64))).loss(out, txt)
    torch.testing.assert_close(loss, out.loss, atol=1e-5, rtol=1e-5)
    loss.backward()                                     # a training loss: gradients reach the model
    assert model.bert.embeddings.tokens.weight.grad is not None

def test_known_tokens_drop_out_and_the_rest_matches_a_hand_computation():
    torch.manual_seed(0)
    model = MosaicBertForMaskedLM(CFG)
    probs = torch.full((64,), 0.5 / 63); probs[5] = 0.5  # the reference gives token 5 probability 1/2
    img, txt = pair([[5, 6, 7], [8, 5]])
    out = model(**img)
    logits, targets, rows = scored_tokens(out)
    w = torch.where(targets == 5, 0.5, 1 - 0.5 / 63)
    w = w * torch.tensor([3, 3, 3, 2, 2.0]) / torch.tensor([w[:3].sum()] * 3 + [w[3:].sum()] * 2)
    expect = (w * F.cross_entropy(logits.float(), targets, reduction="none")).mean()
    torch.testing.assert_close(TokenReweighter(Fixed(probs)).loss(out, txt), expect, atol=1e-6, rtol=1e-5)
    # a sure reference (p = 1 on token 5) removes token 5 from the loss entirely
    sure = torch.full((64,), 1e-12); sure[5] = 1.0
    wt, _, _ = TokenReweighter(Fixed(sure / sure.sum())).weights(txt)
    assert torch.all(wt[targets == 5] < 1e-6)

def test_batch_normalisation_option_and_errors():
    torch.manual_seed(0)
    model = MosaicBertForMaskedLM(CFG)
    probs = torch.softmax(torch.randn(64), 0)
    img, txt = pair([[5, 6, 7], [8, 5]])
    w, _, _ = TokenReweighter(Fixed(probs), normalize="batch").weights(txt)
    torch.testing.assert_close(w.mean(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="'sequence' or 'batch'"): TokenReweighter(Fixed(probs), normalize="token")
    with pytest.raises(ValueError, match="alpha must be > 0"): prior_weights(torch.rand(3), alpha=-1)
    _, other = pair([[5, 6], [8, 5]])
    with pytest.raises(ValueError, match="scores different tokens"): TokenReweighter(Fixed(probs)).loss(model(**img), other)

def test_reference_is_frozen():
    ref = MosaicBertForMaskedLM(CFG)
    TokenReweighter(ref)
    assert not any(p.requires_grad for p in ref.parameters()) and not ref.training
