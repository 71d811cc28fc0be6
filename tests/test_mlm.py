"""MLMCollator: what is never chosen, the rates in expectation, per-sample determinism, whole words, padding, errors."""
import math, pickle
import numpy as np
import pytest
import torch
from mosaiclab.datasets import load_corpus, load_tokenizer
from mosaiclab.mlm import IGNORE_INDEX, MLMCollator, mask_stats, masking_schedule, token_uniforms

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
V = 8192
SPECIAL = (PAD, UNK, CLS, SEP, MASK)


def collator(**kw):
    return MLMCollator(pad_id=PAD, cls_id=CLS, sep_id=SEP, mask_id=MASK, vocab_size=V, special_ids=SPECIAL, **kw)


def random_samples(n, lo=3, hi=130, seed=0, start=0, unk_rate=0.02):
    "n (index, [CLS] ... [SEP]) samples of random length with random ordinary ids and a few [UNK]s."
    g = np.random.default_rng(seed)
    out = []
    for i in range(n):
        body = g.integers(len(SPECIAL), V, size=int(g.integers(lo, hi)) - 2)
        body[g.random(len(body)) < unk_rate] = UNK
        out.append((start + i, [CLS, *body.tolist(), SEP]))
    return out


def originals(samples, T):
    "The unmasked (B, T) ids, padded with PAD."
    x = torch.full((len(samples), T), PAD)
    for b, (_, ids) in enumerate(samples): x[b, :len(ids)] = torch.tensor(ids)
    return x


def within(observed, n, p, k=5.0):
    "observed/n is within k binomial standard deviations of p."
    return abs(observed / n - p) <= k * math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def big():
    "4,000 samples (about 270k maskable tokens), collated once at 30%."
    s = random_samples(4000, seed=1)
    return s, collator()(s)


# ------------------------------------------------------------------ what is never chosen
def test_special_and_padding_never_chosen(big):
    samples, b = big
    x = originals(samples, b["input_ids"].shape[1])
    never = torch.isin(x, torch.tensor(SPECIAL)) | (b["attention_mask"] == 0)
    assert never.sum() > 10_000                                       # the test sees plenty of them
    assert (b["labels"][never] == IGNORE_INDEX).all()
    assert torch.equal(b["input_ids"][never], x[never])              # and they are never changed
    assert (b["input_ids"][b["attention_mask"] == 0] == PAD).all()


def test_labels_are_ignore_exactly_where_not_chosen(big):
    samples, b = big
    x = originals(samples, b["input_ids"].shape[1])
    chosen = b["labels"] != IGNORE_INDEX
    assert torch.equal(b["labels"][chosen], x[chosen])               # the original id where chosen
    assert torch.equal(b["input_ids"][~chosen], x[~chosen])          # untouched elsewhere
    assert ((b["input_ids"] != x) <= chosen).all()                    # nothing unchosen is corrupted


def test_random_replacements_are_ordinary_tokens(big):
    _, b = big
    chosen = b["labels"] != IGNORE_INDEX
    rnd = chosen & (b["input_ids"] != MASK) & (b["input_ids"] != b["labels"])
    r = b["input_ids"][rnd]
    assert len(r) > 1000 and not torch.isin(r, torch.tensor(SPECIAL)).any() and r.max() < V
    # roughly uniform over the 8187 ordinary ids: each eighth of the range gets ~1/8
    counts = torch.histc(r.float(), bins=8, min=len(SPECIAL), max=V)
    assert all(within(int(c), len(r), 1 / 8) for c in counts)


# ------------------------------------------------------------------ rates in expectation
@pytest.mark.parametrize("p", [0.15, 0.30, 0.5])
def test_chosen_fraction_matches_p(p):
    s = random_samples(1500, seed=2, unk_rate=0.0)
    b = collator()(s, mlm_probability=p)
    maskable = int(b["attention_mask"].sum()) - 2 * len(s)
    assert within(int((b["labels"] != IGNORE_INDEX).sum()), maskable, p)


def test_80_10_10_split(big):
    _, b = big
    st = mask_stats(b, MASK)
    n = st["chosen"]
    assert n > 50_000 and st["mask"] + st["random"] + st["kept"] == n
    p_same = 1 / (V - len(SPECIAL))                                   # a random draw can hit the original id
    assert within(st["mask"], n, 0.8)
    assert within(st["random"], n, 0.1 * (1 - p_same))
    assert within(st["kept"], n, 0.1 + 0.1 * p_same)


def test_other_splits():
    s = random_samples(300, seed=3)
    st = mask_stats(collator(mask_frac=1.0, random_frac=0.0)(s), MASK)
    assert st["mask"] == st["chosen"] > 0
    st = mask_stats(collator(mask_frac=0.0, random_frac=0.0)(s), MASK)   # "no corruption": predict visible tokens
    assert st["kept"] == st["chosen"] > 0
    st = mask_stats(collator(mask_frac=0.5, random_frac=0.5)(s), MASK)
    assert st["kept"] <= 2 and within(st["mask"], st["chosen"], 0.5)


# ------------------------------------------------------------------ determinism per sample
def test_same_mask_regardless_of_batching():
    s = random_samples(64, seed=4, start=10_000)
    c = collator()
    whole = c(s)
    g = np.random.default_rng(0)
    order = g.permutation(64).tolist()
    for part in (order[:5], order[5:29], order[29:]):                 # uneven micro-batches, shuffled, other padding
        b = c([s[i] for i in part])
        for r, i in enumerate(part):
            L = len(s[i][1])
            assert torch.equal(b["input_ids"][r, :L], whole["input_ids"][i, :L])
            assert torch.equal(b["labels"][r, :L], whole["labels"][i, :L])
    assert all(torch.equal(whole[k], c(s)[k]) for k in whole)         # and call after call


def test_mask_depends_on_seed_and_index():
    ids = random_samples(1, lo=128, hi=129, seed=5)[0][1]
    c = collator()
    lab = lambda coll, i: coll([(i, ids)])["labels"]
    assert torch.equal(lab(c, 7), lab(c, 7))
    assert not torch.equal(lab(c, 7), lab(c, 8))
    assert not torch.equal(lab(c, 7), lab(collator(seed=18), 7))
    assert torch.equal(lab(c, 7), lab(pickle.loads(pickle.dumps(c)), 7))   # the same in a data-loader worker


def test_masks_nested_across_rates():
    s = random_samples(200, seed=6)
    c = collator()
    prev = None
    for p in (0.05, 0.15, 0.3, 0.6):
        ch = c(s, mlm_probability=p)["labels"] != IGNORE_INDEX
        if prev is not None: assert (prev <= ch).all()
        prev = ch


def test_token_uniforms_ignore_length_and_batch():
    u = token_uniforms(17, [3, 1, 2], 40)
    assert u.shape == (3, 3, 40) and u.dtype == torch.float64
    assert torch.equal(token_uniforms(17, [2], 16)[:, 0], u[:, 2, :16])
    assert torch.equal(token_uniforms(17, [2**40 + 5], 8), token_uniforms(17, [2**40 + 5], 8))   # big indices are fine


def test_inputs_as_tensors_or_arrays():
    s = random_samples(8, seed=7)
    c = collator()
    a = c(s)
    for conv in (torch.tensor, np.array):
        b = c([(i, conv(ids)) for i, ids in s])
        assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ whole words
@pytest.fixture(scope="module")
def lab_tok():
    return load_tokenizer()


def test_from_tokenizer(lab_tok):
    c = MLMCollator.from_tokenizer(lab_tok)
    assert (c.pad_id, c.cls_id, c.sep_id, c.mask_id, c.vocab_size) == (0, 2, 3, 4, 8192)
    assert set(c.special_ids) == {0, 1, 2, 3, 4}
    assert all(c.word_start[i] == (not lab_tok.id_to_token(i).startswith("##")) for i in range(5, 8192))
    bert = MLMCollator.from_tokenizer(load_tokenizer("bert-base-uncased"), mlm_probability=0.15)
    assert (bert.pad_id, bert.cls_id, bert.sep_id, bert.mask_id, bert.vocab_size) == (0, 101, 102, 103, 30522)
    assert {0, 100, 101, 102, 103} <= set(bert.special_ids) and bert.mlm_probability == 0.15


def test_whole_word_masks_all_pieces_together(lab_tok):
    c = MLMCollator.from_tokenizer(lab_tok, whole_word=True)
    samples = [(i, lab_tok.encode(d["text"]).ids[:127] + [SEP]) for i, d in enumerate(load_corpus("validation", limit=60))]
    b = c(samples)
    chosen = b["labels"] != IGNORE_INDEX
    n_words = n_multi = n_tokens = 0
    for r, (_, ids) in enumerate(samples):
        words, cur = [], []
        for t, x in enumerate(ids):
            if x in c.special_ids:
                if cur: words.append(cur)
                cur = []
            elif c.word_start[x] or not cur:
                if cur: words.append(cur)
                cur = [t]
            else: cur.append(t)
        if cur: words.append(cur)
        for w in words:
            fate = chosen[r, w]
            assert fate.all() or not fate.any(), f"sample {r}: word {[lab_tok.id_to_token(ids[t]) for t in w]} split"
            n_words += 1; n_multi += len(w) > 1; n_tokens += len(w)
    assert n_multi > 300                                              # plenty of multi-piece words were tested
    assert within(int(chosen.sum()), n_tokens, 0.3, k=8)              # token rate still ~p (words are correlated, so a wide band)
    st = mask_stats(b, c.mask_id)
    assert within(st["mask"], st["chosen"], 0.8)                      # 80/10/10 applies per token


def test_word_pieces_split_when_not_whole_word(lab_tok):
    c = MLMCollator.from_tokenizer(lab_tok)
    ids = lab_tok.encode("dissatisfied dissatisfied dissatisfied dissatisfied").ids
    b = c([(i, ids) for i in range(200)])
    ch = (b["labels"] != IGNORE_INDEX)[:, 1:-1]
    assert (ch.any(1) & ~ch.all(1)).any()                             # token-level masking does split words


# ------------------------------------------------------------------ padding
@pytest.mark.parametrize("m", [1, 8, 64])
def test_padding_to_multiple(m):
    c = collator(pad_to_multiple_of=m)
    for longest in (1, 7, 8, 9, 63, 130):
        s = [(0, [CLS] + [10] * (longest - 2) + [SEP]) if longest >= 2 else (0, [CLS]), (1, [CLS, 11, SEP])]
        b = c(s)
        T = b["input_ids"].shape[1]
        assert T == -(-max(longest, 3) // m) * m and T % m == 0
        assert b["attention_mask"].sum(1).tolist() == [longest, 3]
        assert all(v.dtype == torch.long and v.shape == (2, T) for v in b.values())
        assert (b["labels"][1, 3:] == IGNORE_INDEX).all() and (b["input_ids"][1, 3:] == PAD).all()


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kw, msg", [
    (dict(mlm_probability=0.0), "mlm_probability must be in (0, 1)"),
    (dict(mlm_probability=1.0), "mlm_probability must be in (0, 1)"),
    (dict(mask_frac=0.95, random_frac=0.1), "mask_frac + random_frac must be <= 1"),
    (dict(mask_frac=-0.1), "mask_frac must be in [0, 1]"),
    (dict(whole_word=True), "needs word_start"),
    (dict(word_start=(True,) * 10), "word_start has 10 entries"),
    (dict(pad_to_multiple_of=0), "pad_to_multiple_of must be >= 1"),
    (dict(special_ids=(PAD, CLS, SEP)), "'mask_id': 4"),
    (dict(special_ids=SPECIAL + (V,)), "outside [0, vocab_size"),
])
def test_bad_config(kw, msg):
    base = dict(pad_id=PAD, cls_id=CLS, sep_id=SEP, mask_id=MASK, vocab_size=V, special_ids=SPECIAL)
    with pytest.raises(ValueError, match=None) as e: MLMCollator(**{**base, **kw})
    assert msg in str(e.value)


@pytest.mark.parametrize("samples, kw, msg", [
    ([], {}, "empty batch"),
    ([(0, [CLS, 9, SEP])], dict(mlm_probability=1.5), "(0, 1)"),
    ([(0, [CLS, 9, SEP]), (1, [])], {}, "global index [1] have no tokens"),
    ([(0, [CLS, V, SEP])], {}, "token ids must be in [0, vocab_size=8192)"),
    ([(0, [CLS, -3, SEP])], {}, "token ids must be in"),
    ([[CLS, 9, 10, SEP]], {}, "(global_sample_index, token_ids) pairs"),
])
def test_bad_batch(samples, kw, msg):
    with pytest.raises(ValueError) as e: collator()(samples, **kw)
    assert msg in str(e.value)


# ------------------------------------------------------------------ schedule and stats
def test_masking_schedule():
    s = masking_schedule([(0, 0.15), (100, 0.2), (300, 0.3)])
    assert [s(t) for t in (0, 99, 100, 299, 300, 10**9)] == [0.15, 0.15, 0.2, 0.2, 0.3, 0.3]
    assert pickle.loads(pickle.dumps(s))(150) == 0.2
    for pts, msg in [([], "at least one"), ([(1, 0.3)], "start at step 0"), ([(0, 0.3), (0, 0.2)], "strictly increase"),
                     ([(0, 0.0)], "rate must be in (0, 1)")]:
        with pytest.raises(ValueError) as e: masking_schedule(pts)
        assert msg in str(e.value)
    with pytest.raises(ValueError): s(-1)


def test_mask_stats_counts():
    b = {"input_ids": torch.tensor([[2, 4, 50, 7, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0]]),
         "labels": torch.tensor([[-100, 9, 8, 7, -100, -100]])}
    assert mask_stats(b, 4) == {"tokens": 5, "chosen": 3, "mask": 1, "random": 1, "kept": 1}
