"""UL2's collators: span statistics, exact (inputs, targets) reconstruction, prefix-LM layout, mixture proportions, and
that a batch trains our encoder as a prefix LM."""
import random
import pytest
import torch
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM
from mosaiclab.objectives.ul2 import (CausalLMCollator, Denoiser, MixtureOfDenoisers, PrefixLMCollator, SpanCorruptCollator, UL2_DENOISERS,
                           MODEL_KEYS, collate_prefix_lm, random_spans_mask, span_corrupt, target_metrics)

SENT = list(range(4, 40))

def reconstruct(inputs, targets, sentinels):
    "Put every span back in place of its sentinel: the inverse of span_corrupt."
    spans, cur = {}, None
    for t in targets:
        if t in sentinels: cur = t; spans[cur] = []
        else: spans[cur].append(t)
    out = []
    for t in inputs: out += spans[t] if t in sentinels else [t]
    return out

@pytest.mark.parametrize("length,rate,mu", [(48, 0.15, 3), (48, 0.5, 8), (48, 0.15, 64), (48, 0.5, 64), (5, 0.5, 3), (200, 0.15, 3)])
def test_span_mask_counts_and_context(length, rate, mu):
    for s in range(50):
        m = random_spans_mask(length, rate, mu, random.Random(s))
        assert len(m) == length and not m[0] and not m[-1]              # text on both sides of every span
        n_noise = sum(m)
        assert n_noise == min(max(round(length * rate), 1), length - 2)
        n_spans = sum(a and not b for a, b in zip(m, [False] + m[:-1]))
        assert n_spans == min(max(round(n_noise / mu), 1), n_noise, length - n_noise - 1)

def test_span_corrupt_is_invertible():
    rng = random.Random(0)
    for _ in range(100):
        L = rng.randint(3, 60)
        toks = [rng.randint(100, 200) for _ in range(L)]
        m = random_spans_mask(L, rng.choice([0.15, 0.5]), rng.choice([3, 8, 64]), rng)
        inp, tgt = span_corrupt(toks, m, SENT)
        assert reconstruct(inp, tgt, SENT) == toks
        assert sum(t not in SENT for t in tgt) == sum(m)

def test_collate_labels_are_next_targets():
    pairs = [([1, 50, 51], [4, 60, 61]), ([2, 70], [71]), ((), [80, 81, 82, 83])]
    b = collate_prefix_lm(pairs, pad_id=0)
    assert b["prefix_lengths"].tolist() == [3, 2, 0]
    for row, (inp, tgt) in enumerate(pairs):
        seq, p = list(inp) + list(tgt), len(inp)
        scored = [(i, int(b["labels"][row, i])) for i in range(b["labels"].shape[1]) if b["labels"][row, i] != -100]
        first = p - 1 if p else 0
        assert scored == [(i, seq[i + 1]) for i in range(first, len(seq) - 1)]
    assert b["attention_mask"].sum(1).tolist() == [6, 3, 4]
    with pytest.raises(ValueError, match="no target tokens"): collate_prefix_lm([([1, 2], [])])
    with pytest.raises(ValueError, match="empty batch"): collate_prefix_lm([])

def test_prefix_lm_collator_mean_target_fraction():
    c = PrefixLMCollator(rate=0.25, mode_id=2, seed=0)
    lens = [len(c.example(list(range(100, 148)))[1]) for _ in range(2000)]
    assert min(lens) >= 1 and max(lens) <= 23
    assert abs(sum(lens) / len(lens) - 12) < 0.5                      # mean r L = 12
    with pytest.raises(ValueError, match="at least 2 tokens"): c.example([5])

def test_mixture_weights_modes_and_errors():
    mix = MixtureOfDenoisers({"R": 1, "S": 2, "X": 3}, SENT, paradigm_weights={"R": 0.5, "S": 0.25, "X": 0.25}, seed=1)
    made = [mix.example(list(range(100, 148))) for _ in range(4000)]
    frac = {p: sum(d.paradigm == p for _, d in made) / len(made) for p in "RSX"}
    assert abs(frac["R"] - 0.5) < 0.03 and abs(frac["S"] - 0.25) < 0.03
    for (inp, tgt), d in made[:200]:
        assert inp[0] == {"R": 1, "S": 2, "X": 3}[d.paradigm]
        if d.paradigm == "S": assert inp[1:] + tgt == list(range(100, 148))
        else: assert reconstruct(inp[1:], tgt, SENT) == list(range(100, 148))
    assert len(UL2_DENOISERS) == 7 and {d.paradigm for d in UL2_DENOISERS} == {"R", "S", "X"}
    with pytest.raises(ValueError, match="no mode token"): MixtureOfDenoisers({"R": 1, "S": 2}, SENT)
    with pytest.raises(ValueError, match="unknown paradigm"): MixtureOfDenoisers({"Q": 1}, SENT, [Denoiser("Q", 3, 0.1)])
    with pytest.raises(ValueError, match="with no denoiser"):
        MixtureOfDenoisers({"R": 1}, SENT, [Denoiser("R", 3, 0.15)], paradigm_weights={"R": 1, "X": 1})
    with pytest.raises(ValueError, match="sentinel ids"): SpanCorruptCollator([4], mean_span=1, rate=0.5)([list(range(100, 120))])

@pytest.fixture
def one_thread():
    "Tiny models train fastest on one thread; many threads on a shared CPU are much slower."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def test_a_prefix_lm_trains_on_each_collator(one_thread):
    cfg = MosaicBertConfig.lab().replace(vocab_size=160, d_model=32, n_layers=1, n_heads=2, d_ff=64, hidden_dropout=0.0,
                                         attention_pattern="prefix")
    texts = [[100 + (s + 3 * i) % 50 for i in range(20)] for s in range(16)]
    for collate in (CausalLMCollator(), SpanCorruptCollator(SENT, mode_id=1), PrefixLMCollator(mode_id=2),
                    MixtureOfDenoisers({"R": 1, "S": 2, "X": 3}, SENT)):
        torch.manual_seed(0)
        model = MosaicBertForMaskedLM(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        batch = collate(texts)
        before = target_metrics(model.eval(), batch)["loss"]
        model.train()
        for _ in range(15):
            loss = model(**{k: batch[k] for k in MODEL_KEYS}).loss
            opt.zero_grad(); loss.backward(); opt.step()
        assert target_metrics(model.eval(), batch)["loss"] < before - 0.5, type(collate).__name__

def test_target_metrics_same_with_and_without_masked_only_head():
    cfg = MosaicBertConfig.lab().replace(vocab_size=160, d_model=32, n_layers=1, n_heads=2, d_ff=64, attention_pattern="prefix")
    torch.manual_seed(0)
    a = MosaicBertForMaskedLM(cfg).eval()
    b = MosaicBertForMaskedLM(cfg.replace(masked_only_head=False)).eval(); b.load_state_dict(a.state_dict())
    batch = SpanCorruptCollator(SENT, mode_id=1)([[100 + i for i in range(30)], [120 + i for i in range(25)]])
    ma, mb = target_metrics(a, batch), target_metrics(b, batch)
    assert ma["n"] == mb["n"] and ma["accuracy"] == mb["accuracy"] and abs(ma["loss"] - mb["loss"]) < 1e-5
