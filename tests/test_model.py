"""The encoder: unpadded == padded (outputs and gradients), switches, heads, and clear errors on bad input."""
import pytest
import torch
from mosaiclab.model import (MosaicBertConfig, MosaicBertModel, MosaicBertForMaskedLM, MosaicBertForSequenceClassification,
                             count_parameters, n_params, save_pretrained, from_pretrained)

SMALL = MosaicBertConfig.lab().replace(vocab_size=150, d_model=48, n_layers=2, n_heads=6, d_ff=40, hidden_dropout=0.0)

def batch(B=5, T=21, V=150, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g); lengths[0], lengths[1] = 1, T
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    ids = torch.randint(5, V, (B, T), generator=g) * mask
    labels = torch.where((torch.rand(B, T, generator=g) < 0.3) & mask.bool(), ids, torch.full_like(ids, -100))
    labels[0, 0] = ids[0, 0]  # the length-1 row has a masked token too
    return ids, mask, labels

def grads(model):
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

@pytest.mark.parametrize("position,ffn", [("alibi", "geglu"), ("learned", "gelu"), ("alibi", "gelu"), ("learned", "geglu")])
@pytest.mark.parametrize("seed", [0, 1])
def test_unpadded_equals_padded_outputs_and_gradients(position, ffn, seed):
    cfg = SMALL.replace(position=position, ffn=ffn)
    torch.manual_seed(seed)
    a = MosaicBertForMaskedLM(cfg.replace(unpad=True, masked_only_head=False))
    b = MosaicBertForMaskedLM(cfg.replace(unpad=False, masked_only_head=False)); b.load_state_dict(a.state_dict())
    c = MosaicBertForMaskedLM(cfg.replace(unpad=True, masked_only_head=True)); c.load_state_dict(a.state_dict())
    ids, mask, labels = batch(seed=seed)
    outs = [m(ids, mask, labels=labels) for m in (a, b, c)]
    real = mask.bool()
    torch.testing.assert_close(outs[0].logits[real], outs[1].logits[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[2].logits, outs[1].logits[labels != -100], atol=1e-5, rtol=1e-5)
    for o in outs[1:]: torch.testing.assert_close(o.loss, outs[0].loss, atol=1e-6, rtol=1e-5)
    for o in outs: o.loss.backward()
    ga, gb, gc = grads(a), grads(b), grads(c)
    assert set(ga) == set(gb) == set(gc)
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], atol=1e-5, rtol=1e-4, msg=lambda m: f"{k}: {m}")
        torch.testing.assert_close(gc[k], gb[k], atol=1e-5, rtol=1e-4, msg=lambda m: f"{k}: {m}")

def test_classifier_subset_path_equals_full_pooling():
    torch.manual_seed(0)
    clf = MosaicBertForSequenceClassification(SMALL, 3).eval()
    ids, mask, _ = batch()
    with torch.no_grad():
        full = clf.bert(ids, mask)                      # every token through the last layer
        fast = clf(ids, mask)                           # only [CLS] in the last layer
        torch.testing.assert_close(clf.classifier(full.pooled), fast.logits, atol=1e-5, rtol=1e-5)

def test_alibi_model_reads_longer_inputs_than_prebuilt():
    cfg = SMALL.replace(max_position_embeddings=16)
    m = MosaicBertModel(cfg).eval()
    ids = torch.randint(5, 150, (2, 40))
    assert m(ids).last_hidden_state.shape == (2, 40, 48) and m.alibi.size == 40

@pytest.mark.parametrize("make,msg", [
    (lambda m, ids, mask: m(ids, torch.zeros_like(ids)), "have no real token"),
    (lambda m, ids, mask: m(ids, torch.cat([mask[:1] * 0, mask[1:]])), "rows [0] have no real token"),
    (lambda m, ids, mask: m(ids + 150, mask), "token ids must lie in [0, 150)"),
    (lambda m, ids, mask: m(ids - 10, mask), "token ids must lie in [0, 150)"),
    (lambda m, ids, mask: m(ids, mask[:, :3]), "attention_mask has shape"),
    (lambda m, ids, mask: m(ids[0], mask[0]), "input_ids must be (B, T)"),
    (lambda m, ids, mask: m(ids, mask, torch.zeros(2, 2, dtype=torch.long)), "token_type_ids has shape"),
])
def test_bad_input_is_a_clear_error(make, msg):
    m = MosaicBertModel(SMALL).eval()
    ids, mask, _ = batch()
    with pytest.raises(ValueError) as e: make(m, ids, mask)
    assert msg in str(e.value)

def test_learned_positions_refuse_too_long_input():
    m = MosaicBertModel(SMALL.replace(position="learned", max_position_embeddings=20))
    with pytest.raises(ValueError, match="learned position embeddings stop at 20"): m(torch.randint(5, 150, (1, 21)))

def test_mlm_labels_shape_and_classifier_label_range():
    ids, mask, labels = batch()
    with pytest.raises(ValueError, match="labels has shape"): MosaicBertForMaskedLM(SMALL)(ids, mask, labels=labels[:, :4])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        MosaicBertForSequenceClassification(SMALL, 2)(ids, mask, labels=torch.tensor([0, 1, 2, 0, 1]))

def test_labels_on_padding_are_refused():
    ids, mask, labels = batch()
    labels[2, -1] = 7; mask[2, -1] = 0
    with pytest.raises(ValueError, match="labels mark padding positions"): MosaicBertForMaskedLM(SMALL)(ids, mask, labels=labels)

def test_no_masked_token_gives_zero_loss_with_gradient():
    ids, mask, _ = batch()
    out = MosaicBertForMaskedLM(SMALL)(ids, mask, labels=torch.full_like(ids, -100))
    assert out.loss.item() == 0 and out.loss.requires_grad

@pytest.mark.parametrize("preset", ["mosaic_bert_base", "bert_base", "lab", "lab_bert"])
def test_parameter_count_from_config_matches_model(preset):
    cfg = getattr(MosaicBertConfig, preset)()
    if cfg.d_model > 300: cfg = cfg.replace(n_layers=1)  # keep the test light; the count is per layer
    assert count_parameters(cfg) == n_params(MosaicBertForMaskedLM(cfg))

def test_low_precision_layernorm_under_bf16_autocast_is_close_to_fp32():
    torch.manual_seed(0)
    a = MosaicBertForMaskedLM(SMALL).eval()
    b = MosaicBertForMaskedLM(SMALL.replace(low_precision_layernorm=False)).eval(); b.load_state_dict(a.state_dict())
    ids, mask, labels = batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        la, lb = a(ids, mask, labels=labels).loss, b(ids, mask, labels=labels).loss
    with torch.no_grad(): l32 = b(ids, mask, labels=labels).loss
    assert abs(la.item() - l32.item()) < 0.05 and abs(lb.item() - l32.item()) < 0.05
    assert la.item() != lb.item(), "the switch must change the computation under autocast"

def test_low_precision_layernorm_runs_in_the_autocast_dtype_only_when_switched_on():
    "The switch does something: under bf16 autocast the norm's output is bf16 with it, fp32 without (torch's autocast policy)."
    from mosaiclab.layers import LayerNorm
    x = torch.randn(3, 16)
    on, off = LayerNorm(16, 1e-12, low_precision=True), LayerNorm(16, 1e-12, low_precision=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert on(x).dtype == torch.bfloat16 and off(x).dtype == torch.float32
    assert on(x).dtype == off(x).dtype == torch.float32                         # no autocast: plain fp32 LayerNorm
    assert torch.allclose(on(x), off(x))

def test_save_and_load_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    for m in (MosaicBertForMaskedLM(SMALL), MosaicBertForSequenceClassification(SMALL, 1), MosaicBertModel(SMALL, pooler=True)):
        save_pretrained(m, tmp_path / type(m).__name__)
        back = from_pretrained(tmp_path / type(m).__name__)
        assert type(back) is type(m) and back.cfg == m.cfg
        sa, sb = m.state_dict(), back.state_dict()
        assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)

def test_from_pretrained_on_a_non_model_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"): from_pretrained(tmp_path)
