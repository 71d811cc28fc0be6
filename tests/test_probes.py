"Frozen-feature probes and the curve-collapse measure (The Fine Line chapter)."
import math
import pytest
import torch
from mosaiclab.science.probes import linear_probe, knn_probe, nearest_mean, PROBES, collapse_error, pooled_features, task_features

def _blobs(n, d=8, shift=3.0, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = torch.randn(classes, d, generator=g) * shift
    return centres[y] + torch.randn(n, d, generator=g), y

@pytest.mark.parametrize("name", list(PROBES))
def test_probes_separate_easy_multiclass_data(name):
    Xtr, ytr = _blobs(300, seed=0); Xte, yte = _blobs(150, seed=1)
    Xte = Xte - Xte.mean(0) + Xtr.mean(0)   # same centres (seeded alike), fresh noise
    Xte, yte = _blobs(150, seed=0)
    r = PROBES[name](Xtr, ytr, Xte, yte)
    assert r.accuracy > 0.95 and r.predictions.shape == (150,)

@pytest.mark.parametrize("name", list(PROBES))
def test_probes_find_nothing_in_random_labels(name):
    g = torch.Generator().manual_seed(5)
    X, Xt = torch.randn(500, 8, generator=g), torch.randn(500, 8, generator=g)
    y, yt = torch.randint(0, 2, (500,), generator=g), torch.randint(0, 2, (500,), generator=g)
    assert abs(PROBES[name](X, y, Xt, yt).accuracy - 0.5) < 0.08

def test_probe_invariance_to_feature_scale():
    Xtr, ytr = _blobs(200); Xte, yte = _blobs(100)
    for p in PROBES.values():
        assert torch.equal(p(Xtr, ytr, Xte, yte).predictions, p(Xtr * 7.0, ytr, Xte * 7.0, yte).predictions)

def test_probe_errors():
    X, y = _blobs(20)
    with pytest.raises(ValueError, match="same D"): linear_probe(X, y, X[:, :3], y)
    with pytest.raises(ValueError, match="differ in length"): knn_probe(X, y[:5], X, y)
    with pytest.raises(ValueError, match="no training"): nearest_mean(X[:0], y[:0], X, y)
    with pytest.raises(ValueError, match="k must be"): knn_probe(X, y, X, y, k=0)

def test_collapse_error():
    a = ([1, 2, 3], [0.1, 0.2, 0.3])
    assert collapse_error([a, a]) == 0
    assert math.isclose(collapse_error([a, ([1, 2, 3], [0.3, 0.4, 0.5])]), 0.2)
    assert math.isclose(collapse_error([([1, 10, 100], [0, 1, 2]), ([10, 100, 1000], [1, 2, 3])], log_x=True), 0, abs_tol=1e-12)
    assert math.isnan(collapse_error([a, ([10, 20], [0, 1])]))
    with pytest.raises(ValueError, match="at least two"): collapse_error([a])

def test_features_from_a_tiny_encoder():
    import dataclasses
    from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM
    torch.manual_seed(0)
    m = MosaicBertForMaskedLM(dataclasses.replace(MosaicBertConfig.lab(), d_model=16, n_layers=1, n_heads=2, d_ff=32))
    X, y = task_features(m, "wordnet-defmatch", "validation", max_samples=40)
    assert X.shape == (40, 16) and y.shape == (40,) and torch.isfinite(X).all()
    # padding does not change a sequence's pooled feature
    ids = torch.randint(5, 8000, (1, 10))
    short = pooled_features(m, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)})
    pad = torch.cat([ids, torch.zeros(1, 6, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 10), torch.zeros(1, 6)], 1).long()
    padded = pooled_features(m, {"input_ids": pad, "attention_mask": mask, "token_type_ids": torch.zeros_like(pad)})
    assert torch.allclose(short, padded, atol=1e-5)
    with pytest.raises(ValueError, match="regression"): task_features(m, "sentiment-reg", "validation", max_samples=4)
