"""Weights never execute code: every load path refuses a pickle that would run something (issue 23, item 4).

The payload's `__reduce__` would create a marker file when unpickled; each loader must fail and the file must not exist.
"""
import json, pickle
from pathlib import Path
import pytest
import torch

class Payload:
    def __init__(self, marker: Path): self.marker = marker
    def __reduce__(self):   # unpickling calls Path.touch(marker): code from the file
        return (Path.touch, (self.marker,))

def _malicious(path: Path, marker: Path):
    torch.save({"bert.embeddings.word_embeddings.weight": Payload(marker)}, path)

def test_the_payload_runs_when_unpickled_unsafely(tmp_path):
    "The check can fail: loading the same file the unsafe way does run the payload."
    marker = tmp_path / "ran"
    _malicious(tmp_path / "w.bin", marker)
    torch.load(tmp_path / "w.bin", weights_only=False)
    assert marker.exists()

def test_read_state_dict_refuses_a_pickle_with_code(tmp_path):
    from mosaiclab.interop import read_state_dict
    marker = tmp_path / "ran"
    _malicious(tmp_path / "pytorch_model.bin", marker)
    with pytest.raises(pickle.UnpicklingError): read_state_dict(tmp_path)
    assert not marker.exists()

def test_from_hf_refuses_a_pickle_with_code(tmp_path):
    from mosaiclab.interop import from_hf
    marker = tmp_path / "ran"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 64,
        "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 32}))
    _malicious(tmp_path / "pytorch_model.bin", marker)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"): from_hf(tmp_path)
    assert not marker.exists()

def test_resume_refuses_a_trainer_state_with_code(tmp_path):
    from mosaiclab.train import CheckpointError, TrainConfig, pretrain, read_checkpoint
    from mosaiclab.experiment import lab_overrides
    cfg = TrainConfig.lab().with_overrides(lab_overrides(d_model=32, steps=2, evals=1, eval_samples=8, checkpoint_every=2))
    pretrain(cfg, tmp_path / "run", progress=False)
    ck, _, _ = read_checkpoint(tmp_path / "run")
    marker = tmp_path / "ran"
    torch.save({"step": 2, "optimizer": Payload(marker)}, ck / "trainer.pt")
    with pytest.raises(CheckpointError, match="corrupted"): read_checkpoint(tmp_path / "run")
    with pytest.raises(CheckpointError): pretrain(cfg, tmp_path / "run", progress=False, resume=True)
    assert not marker.exists()

def test_from_pretrained_reads_safetensors_only(tmp_path):
    "A mosaiclab model folder whose weights are a pickle, not safetensors, is refused without unpickling it."
    from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM, save_pretrained, from_pretrained
    cfg = MosaicBertConfig(vocab_size=64, d_model=16, n_layers=1, n_heads=2, d_ff=32)
    save_pretrained(MosaicBertForMaskedLM(cfg), tmp_path)
    marker = tmp_path / "ran"
    _malicious(tmp_path / "model.safetensors", marker)   # a pickle under the safetensors name
    with pytest.raises(ValueError, match="not a readable safetensors file"): from_pretrained(tmp_path)
    assert not marker.exists()
    (tmp_path / "model.safetensors").write_bytes(b"")                      # truncated to nothing
    with pytest.raises(ValueError, match="model.safetensors is not a readable"): from_pretrained(tmp_path)
