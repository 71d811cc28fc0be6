"""Checkpoints in the original MosaicBERT layout load and match outputs made with the original code.

The fixture (tests/fixtures/mosaicbert_original/, see its README) was made once with mosaicml/examples
v0.0.4's own `bert_layers.py` (PyTorch attention path, float32, eval mode); the original code is not vendored.
"""
import json
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file
from mosaiclab.alibi import Alibi, alibi_slopes
from mosaiclab.interop import from_original

FIX = Path(__file__).parent / "fixtures" / "mosaicbert_original"
CFG = json.loads((FIX / "config.json").read_text())

@pytest.fixture(scope="module")
def io(): return load_file(str(FIX / "io.safetensors"))

@pytest.mark.parametrize("unpad", [True, False])
@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_hidden_states_and_logits_match_original(io, unpad, backend):
    m = from_original(load_file(str(FIX / "model.safetensors")), CFG, kind="mlm", unpad=unpad, attention_backend=backend).eval()
    ids, mask = io["input_ids"], io["attention_mask"]
    real = mask.bool()
    with torch.no_grad():
        h = m.bert(ids, mask).last_hidden_state
        logits = m(ids, mask).logits
    torch.testing.assert_close(h[real], io["last_hidden_state"][real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[real], io["mlm_logits"][real], atol=1e-4, rtol=1e-4)

def test_masked_only_loss_and_logits_match_original(io):
    m = from_original(load_file(str(FIX / "model.safetensors")), CFG, kind="mlm").eval()
    # the original scores labels > 0; ours scores labels != -100 (the HF convention)
    labels = torch.where(io["labels"] > 0, io["labels"], torch.full_like(io["labels"], -100))
    with torch.no_grad(): out = m(io["input_ids"], io["attention_mask"], labels=labels)
    torch.testing.assert_close(out.logits, io["masked_logits"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.loss, io["masked_loss"], atol=1e-5, rtol=1e-5)

def test_sequence_classification_matches_original():
    sio = load_file(str(FIX / "seqcls_io.safetensors"))
    m = from_original(load_file(str(FIX / "seqcls_model.safetensors")), CFG, kind="classifier", num_labels=3).eval()
    with torch.no_grad(): out = m(sio["input_ids"], sio["attention_mask"], labels=sio["labels"])
    torch.testing.assert_close(out.logits, sio["logits"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.loss, sio["loss"], atol=1e-5, rtol=1e-5)

def test_alibi_matches_original():
    slopes = json.loads((FIX / "alibi_slopes.json").read_text())
    for n in range(1, 17):
        assert alibi_slopes(n) == pytest.approx(slopes[str(n)]["float64"], rel=1e-12)
    ref = load_file(str(FIX / "alibi_bias_h6_T8.safetensors"))["alibi"]
    ours = Alibi(6).bias(8)
    torch.testing.assert_close(ours, ref.reshape(ours.shape), atol=1e-6, rtol=0)
