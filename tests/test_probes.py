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

# token-level probes (The Fine Line's probes that an MLM learns early)
from mosaiclab.science.probes import (FUNCTION_WORDS, TOKEN_TASKS, word_token_classes, whole_word_positions, token_probe_sets,
                                      token_probe, token_states, masked_token_accuracy)

class _Tok:
    "A stand-in WordPiece tokenizer: [PAD] [UNK] [CLS] [SEP] [MASK], then words and '##' pieces."
    words = ["the", "of", "and", "cat", "dog", "house", "##s", "run", "river", "a", "tree", "was", "stone", "in", "blue"]
    def __init__(self):
        self.vocab = {s: i for i, s in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *self.words])}
    def get_vocab(self): return dict(self.vocab)
    def get_vocab_size(self): return len(self.vocab)
    def token_to_id(self, s): return self.vocab[s]

def _classes():
    tok = _Tok()
    counts = torch.arange(tok.get_vocab_size(), 0, -1)           # lower id = more frequent
    return tok, counts, word_token_classes(tok, counts)

def test_word_token_classes():
    tok, counts, c = _classes()
    v = tok.vocab
    assert c["word"][v["cat"]] and not c["word"][v["##s"]] and not c["word"][v["[CLS]"]]
    assert c["function"][v["the"]] and c["function"][v["a"]] and not c["function"][v["cat"]]
    assert not (c["function"] & ~c["word"]).any()
    b = c["bucket"][c["word"]]
    assert sorted(b.bincount().tolist()) == [4, 5, 5] and c["bucket"][v["the"]] == 0 and c["bucket"][v["blue"]] == 2
    assert (c["bucket"][~c["word"]] == -1).all() and {"the", "of", "was", "in"} <= FUNCTION_WORDS

def test_whole_word_positions_skip_wordpieces():
    tok = _Tok(); v = tok.vocab
    ids = torch.tensor([[v["[CLS]"], v["the"], v["cat"], v["##s"], v["run"], v["[SEP]"], 0]])
    att = (ids != 0).long()
    assert whole_word_positions(ids, att, tok).tolist() == [[True, True, False, False, True, True, False]]

def test_token_probe_sets_split_by_type_and_balance():
    tok, counts, c = _classes()
    g = torch.Generator().manual_seed(0)
    words = torch.tensor([tok.vocab[w] for w in tok.words if not w.startswith("#")])
    ids = words[torch.randint(len(words), (40, 30), generator=g)]
    att = torch.ones_like(ids)
    for task in TOKEN_TASKS:
        s = token_probe_sets(ids, att, tok, c, task, cap=3, seed=1)
        flat = ids.flatten()
        assert not set(flat[s["train_positions"]].tolist()) & set(flat[s["test_positions"]].tolist())
        for split in ("train", "test"):
            counts_per_class = s[f"{split}_labels"].bincount()
            assert len(counts_per_class.unique()) == 1           # balanced
            tids = flat[s[f"{split}_positions"]]
            assert tids.bincount().max() <= 3                     # capped occurrences per type
    with pytest.raises(ValueError, match="task must be"): token_probe_sets(ids, att, tok, c, "pos")

def test_token_probe_reads_a_planted_property_across_types():
    tok, counts, c = _classes()
    g = torch.Generator().manual_seed(0)
    words = torch.tensor([tok.vocab[w] for w in tok.words if not w.startswith("#")])
    ids = words[torch.randint(len(words), (60, 20), generator=g)]
    att = torch.ones_like(ids)
    s = token_probe_sets(ids, att, tok, c, "function_word", cap=20)
    states = torch.randn(*ids.shape, 8, generator=g)
    planted = states.clone(); planted[..., 0] += 8 * c["function"][ids].float()   # the property, in one direction
    assert token_probe(planted, s)["accuracy"] > 0.95
    r = token_probe(states, s)                                                   # per-token noise only: chance
    assert r["majority"] == 0.5 and abs(r["accuracy"] - 0.5) < 0.15

def test_masked_token_accuracy_of_a_tiny_mlm():
    import dataclasses
    from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM
    tok, counts, c = _classes()
    torch.manual_seed(0)
    cfg = dataclasses.replace(MosaicBertConfig.lab(), vocab_size=64, d_model=16, n_layers=1, n_heads=2, d_ff=32)
    m = MosaicBertForMaskedLM(cfg)
    V = tok.get_vocab_size()
    counts64 = torch.cat([counts, torch.zeros(64 - V, dtype=counts.dtype)])
    cls64 = {k: torch.cat([v, torch.full((64 - V,), -1 if k == "bucket" else 0, dtype=v.dtype)]) for k, v in c.items()}
    ids = torch.randint(5, V, (8, 16)); ids[:, 0] = tok.vocab["[CLS]"]; ids[:, -1] = tok.vocab["[SEP]"]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    r = masked_token_accuracy(m, batch, tok, cls64, counts64, p=0.5)
    assert {"all", "function", "content", "bucket0"} <= set(r)
    assert r["all"]["n"] >= r["function"]["n"] + r["content"]["n"] > 0
    assert all(0 <= v["accuracy"] <= 1 and 0 <= v["unigram"] <= 1 and v["loss"] > 0 for v in r.values() if v["n"])
    assert token_states(m, batch).shape == (8, 16, 16)
