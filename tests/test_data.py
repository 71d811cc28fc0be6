"""The pretraining data stream (`mosaiclab.data`, nbs/mosaicbert/08_data.ipynb): determinism, resumption,
rank sharding, epochs, the C4 path through HF `datasets` on a local fixture, local files, bad input."""
import gzip, json, shutil, sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mosaiclab import data as D
from mosaiclab.data import DataConfig, PretrainingStream, length_stats, sample_lengths
from mosaiclab.datasets import load_corpus, load_tokenizer, resources_dir

C4_FIXTURE = Path(__file__).parent / "fixtures" / "c4"
BUNDLED = DataConfig()  # lab tokenizer, seq_len 128, split


def roundtrip(state: dict) -> dict:
    "A checkpoint passes through JSON (or torch.save); the state must survive it."
    return json.loads(json.dumps(state))


def run(stream: PretrainingStream, steps, G: int):
    return [stream.batch(s, G) for s in steps]


# ---------------------------------------------------------------- finite sources: bundled corpus

@pytest.fixture(scope="module")
def bundled() -> PretrainingStream:
    return PretrainingStream(BUNDLED)


def test_bundled_samples_well_formed(bundled):
    s = bundled.samples
    assert bundled.epoch_size == len(s) > 10_000
    L = s.lengths
    assert L.min() >= BUNDLED.min_tokens and L.max() == BUNDLED.seq_len
    toks, off = s.tokens, s.offsets
    assert (toks[off[:-1]] == 2).all() and (toks[off[1:] - 1] == 3).all()  # [CLS] ... [SEP]
    inner = np.ones(len(toks), bool); inner[off[:-1]] = False; inner[off[1:] - 1] = False
    assert not np.isin(toks[inner], [0, 2, 3, 4]).any()  # no [PAD]/[CLS]/[SEP]/[MASK] inside a sample


def test_bundled_split_is_decided_by_the_url_hash():
    """scripts/build_data.py puts a document in validation iff a hash of its url is < 4 (of 100), so a
    document keeps its split when the corpus grows: earlier runs' validation text stays validation text."""
    import hashlib
    from mosaiclab.datasets import manifest
    bucket = lambda url: int.from_bytes(hashlib.sha1(("split:" + url).encode()).digest()[:8], "big") % 100
    splits = {s: load_corpus(s) for s in ("train", "validation")}
    assert all(bucket(r["url"]) < 4 for r in splits["validation"]) and all(bucket(r["url"]) >= 4 for r in splits["train"])
    assert {s: len(v) for s, v in splits.items()} == {s: m["records"] for s, m in manifest()["corpus"]["splits"].items()}


def test_split_uses_all_tokens_truncate_one_per_document():
    cfg = DataConfig(seq_len=64, min_tokens=2)
    tok = load_tokenizer()
    texts = [r["text"] for r in load_corpus("validation")]
    n_tokens = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    split = D.corpus_samples(cfg, "validation")
    assert int(split.lengths.sum()) - 2 * len(split) == n_tokens  # every token lands in exactly one sample
    trunc = D.corpus_samples(DataConfig(seq_len=64, group="truncate", min_tokens=2), "validation")
    assert len(trunc) == len(texts) and trunc.lengths.max() == 64


def test_deterministic_and_seeded(bundled):
    again = PretrainingStream(BUNDLED)
    assert run(bundled, range(3), 32) == run(again, range(3), 32)
    assert run(PretrainingStream(BUNDLED, seed=18), range(3), 32) != run(bundled, range(3), 32)
    b = bundled.batch(7, 32)
    assert [i for i, _ in b] == list(range(7 * 32, 8 * 32))
    assert [ids for _, ids in b] == [bundled.samples[j] for j in bundled.order(7 * 32, 8 * 32)]


def test_resume_equals_uninterrupted(bundled):
    G = 24
    ref = run(bundled, range(20), G)
    first = PretrainingStream(BUNDLED)
    run(first, range(13), G)
    state = roundtrip(first.state_dict())
    assert state["step"] == 13
    resumed = PretrainingStream(BUNDLED)
    resumed.load_state_dict(state)
    assert run(resumed, range(13, 20), G) == ref[13:]


@pytest.mark.parametrize("W", [2, 4])
def test_rank_sharding_matches_one_rank(bundled, W):
    G = 16
    ranks = [PretrainingStream(BUNDLED, rank=r, world_size=W) for r in range(W)]
    for step in (0, 1, 5, 123):
        one = bundled.batch(step, G)
        parts = [s.batch(step, G) for s in ranks]
        assert parts[0] == one[:G // W]
        assert sum(parts, []) == one


def test_ranks_never_overlap_within_an_epoch(bundled):
    G, W, n = 64, 2, bundled.epoch_size
    seen = Counter()
    for r in range(W):
        s = PretrainingStream(BUNDLED, rank=r, world_size=W)
        for step in range(n // G):
            seen.update(bundled.order(*(lambda b: (b[0][0], b[-1][0] + 1))(s.batch(step, G))).tolist())
    assert max(seen.values()) == 1 and len(seen) == (n // G) * G


def test_resume_on_another_world_size(bundled):
    "Finite sources: the global batches do not depend on W, so a restart may change it."
    G = 16
    one = run(bundled, range(10, 12), G)
    s = PretrainingStream(BUNDLED, rank=1, world_size=4)
    s.load_state_dict(roundtrip(PretrainingStream(BUNDLED).state_dict() | {"step": 10}))
    assert run(s, range(10, 12), G) == [b[4:8] for b in one]  # rank 1 of 4: the second quarter


def test_epochs_are_different_permutations(bundled):
    n = bundled.epoch_size
    e0, e1, e2 = (bundled.order(k * n, (k + 1) * n) for k in range(3))
    for e in (e0, e1, e2): assert sorted(e.tolist()) == list(range(n))
    assert (e0 != e1).mean() > 0.99 and (e1 != e2).mean() > 0.99
    # a batch that straddles the epoch boundary takes the end of epoch 0, then the start of epoch 1
    G = 1000
    step = n // G
    b = bundled.batch(step, G)
    assert [bundled.samples[j] for j in np.concatenate([e0[step * G:], e1[:(step + 1) * G - n]])] == [ids for _, ids in b]


def test_fast_truncation_is_exact():
    "encode_documents(max_tokens) cuts the text before tokenising; it must equal the prefix of the full tokenisation."
    texts = [r["text"] for r in load_corpus("train")][::25]  # all four sources
    texts += ["word " * 3000, "x" * 5000, "a,b;" * 2000, "", "short text"]  # no cut, one huge word, punctuation, empty
    for name in ("lab-wordpiece-8192", "bert-base-uncased"):
        tok = load_tokenizer(name)
        full = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
        for k in (6, 126, 510):
            assert D.encode_documents(tok, texts, k) == [x[:k] for x in full], (name, k)


def test_tokenizer_from_path(tmp_path):
    path = tmp_path / "tok.json"
    shutil.copy(resources_dir() / "tokenizers" / "bert-base-uncased.json", path)
    a = D.corpus_samples(DataConfig(tokenizer=str(path), seq_len=64), "validation")
    b = D.corpus_samples(DataConfig(tokenizer="bert-base-uncased", seq_len=64), "validation")
    assert np.array_equal(a.tokens, b.tokens) and a.tokens[0] == 101


def test_length_stats_and_sample_lengths(bundled):
    st = length_stats(bundled)
    assert st["n"] == bundled.epoch_size and st["seq_len"] == 128 and st["max"] == 128
    assert st["padding_fraction"] == pytest.approx(1 - bundled.samples.lengths.sum() / (st["n"] * 128))
    assert st["min"] <= st["p10"] <= st["p50"] <= st["p90"] <= st["p99"] <= st["max"]
    assert length_stats([2, 4], seq_len=8)["padding_fraction"] == 0.625
    L = sample_lengths(BUNDLED, n=50)
    assert L == [len(ids) for _, ids in bundled.batch(0, 50)]
    assert len(sample_lengths(DataConfig(), "validation")) == PretrainingStream(DataConfig(), "validation").epoch_size


# ---------------------------------------------------------------- local files

def _write_jsonl_gz(path: Path, texts):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for t in texts: f.write(json.dumps({"text": t, "meta": 1}) + "\n")


def test_local_folder_of_txt_and_jsonl_gz(tmp_path):
    texts = [r["text"] for r in load_corpus("validation", limit=12)]
    (tmp_path / "a.txt").write_text("\n\n".join(t.replace("\n\n", "\n") for t in texts[:5]) + "\n\n\n")
    _write_jsonl_gz(tmp_path / "b.jsonl.gz", texts[5:])
    (tmp_path / "notes.md").write_text("ignored: not a text source suffix")
    docs = D.load_documents(str(tmp_path))
    assert len(docs) == 12 and sorted(docs) == sorted(t.replace("\n\n", "\n").strip() for t in texts)
    cfg = DataConfig(source=str(tmp_path), seq_len=64)
    s = PretrainingStream(cfg)
    tok = load_tokenizer()
    n_tokens = sum(len(e.ids) for e in tok.encode_batch(docs, add_special_tokens=False))
    assert int(s.samples.lengths.sum()) - 2 * s.epoch_size <= n_tokens
    assert run(s, range(3), 8) == run(PretrainingStream(cfg), range(3), 8)
    with pytest.raises(FileNotFoundError, match="no 'validation' split"):
        PretrainingStream(cfg, "validation")
    # the cache notices a changed file
    _write_jsonl_gz(tmp_path / "b.jsonl.gz", texts[5:7])
    assert PretrainingStream(cfg).epoch_size < s.epoch_size


def test_local_splits_by_name_and_subfolder(tmp_path):
    texts = [r["text"] for r in load_corpus("validation", limit=6)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:4]))
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[4:]))
    assert D.load_documents(str(tmp_path), "train") == texts[:4]
    assert D.load_documents(str(tmp_path), "validation") == texts[4:]
    sub = tmp_path / "sub"; (sub / "validation").mkdir(parents=True)
    (sub / "validation" / "x.txt").write_text("one document\n\nanother document")
    (sub / "y.txt").write_text("a train document")
    assert D.load_documents(str(sub), "validation") == ["one document", "another document"]
    # a single file is the train split
    assert D.load_documents(str(tmp_path / "train.jsonl")) == texts[:4]
    # the C4 fixture read as a finite local source
    assert len(D.load_documents(str(C4_FIXTURE), "train")) == 28
    assert len(D.load_documents(str(C4_FIXTURE), "validation")) == 10


# ---------------------------------------------------------------- bad input

def test_bad_config():
    with pytest.raises(ValueError, match="seq_len must be at least 8"): DataConfig(seq_len=7)
    with pytest.raises(ValueError, match="group must be one of"): DataConfig(group="pack")
    with pytest.raises(ValueError, match="min_tokens must be between"): DataConfig(seq_len=16, min_tokens=17)
    with pytest.raises(ValueError, match="shuffle_buffer"): DataConfig(shuffle_buffer=0)


def test_bad_sources_and_tokenizers(tmp_path):
    with pytest.raises(ValueError, match="unknown data source 'wikipedia'"): PretrainingStream(DataConfig(source="wikipedia"))
    with pytest.raises(FileNotFoundError, match="no file or folder at"): PretrainingStream(DataConfig(source=str(tmp_path / "nope")))
    with pytest.raises(FileNotFoundError, match="no file or folder at"): PretrainingStream(DataConfig(source="corpus.jsonl"))
    with pytest.raises(ValueError, match="unknown tokenizer 'gpt2'"): PretrainingStream(DataConfig(tokenizer="gpt2"))
    with pytest.raises(ValueError, match="unknown corpus split 'test'"): PretrainingStream(BUNDLED, "test")
    empty = tmp_path / "empty"; empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .txt/.jsonl"): PretrainingStream(DataConfig(source=str(empty)))
    (empty / "a.txt").write_text("\n\n  \n")
    with pytest.raises(ValueError, match="has no documents"): PretrainingStream(DataConfig(source=str(empty)))
    (empty / "a.txt").write_text("too short\n\nalso short")
    with pytest.raises(ValueError, match="no sample has min_tokens=8 tokens"): PretrainingStream(DataConfig(source=str(empty)))
    bad = tmp_path / "bad"; bad.mkdir()
    (bad / "a.jsonl").write_text('{"text": "fine"}\n{"body": "no text"}\n')
    with pytest.raises(ValueError, match=r"a.jsonl:2: a JSON record needs a string 'text' field"): D.load_documents(str(bad))
    (bad / "a.jsonl").write_text('{"text": "fine"}\nnot json\n')
    with pytest.raises(ValueError, match=r"a.jsonl:2: not a JSON line"): D.load_documents(str(bad))
    with pytest.raises(FileNotFoundError, match="no folder at"): PretrainingStream(DataConfig(source=f"c4:{tmp_path / 'nope'}"))
    with pytest.raises(FileNotFoundError, match="no C4 files c4-train"): PretrainingStream(DataConfig(source=f"c4:{empty}")).batch(0, 1)


def test_bad_batches_and_states(bundled):
    with pytest.raises(ValueError, match="global batch 10 is not divisible by world_size 4"):
        PretrainingStream(BUNDLED, rank=0, world_size=4).batch(0, 10)
    with pytest.raises(ValueError, match="rank < world_size"): PretrainingStream(BUNDLED, rank=2, world_size=2)
    with pytest.raises(ValueError, match="step must be >= 0"): bundled.batch(-1, 8)
    state = bundled.state_dict()
    with pytest.raises(ValueError, match="seed: saved 17, now 5"): PretrainingStream(BUNDLED, seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match="epoch_size: saved"):
        PretrainingStream(DataConfig(seq_len=64)).load_state_dict(state)
    with pytest.raises(ValueError, match="split: saved 'train', now 'validation'"):
        PretrainingStream(BUNDLED, "validation").load_state_dict(state)
    with pytest.raises(ValueError, match="more than seq_len=8"): length_stats([[1] * 9], seq_len=8)


# ---------------------------------------------------------------- C4 through HF datasets (local fixture)

import importlib.util
needs_datasets = pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="pip install datasets")
C4 = DataConfig(source=f"c4:{C4_FIXTURE}", seq_len=32, shuffle_buffer=8)


def epoch_samples(stream: PretrainingStream, epoch: int = 0) -> list[tuple]:
    return [tuple(r["input_ids"]) for r in stream.hf_dataset(epoch)]


@needs_datasets
def test_c4_fixture_format():
    for f in sorted(C4_FIXTURE.glob("*.json.gz")):
        assert f.name in ("c4-train.00000-of-01024.json.gz", "c4-train.00001-of-01024.json.gz", "c4-validation.00000-of-00008.json.gz")
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                assert list(rec) == ["text", "timestamp", "url"] and all(isinstance(v, str) for v in rec.values())
    rec = next(iter(D.c4_documents("train", C4_FIXTURE)))
    assert isinstance(rec["timestamp"], str)  # explicit Features: not parsed as a date


@needs_datasets
def test_c4_hub_path_is_the_same_pipeline(monkeypatch):
    "`source='c4'` asks the hub for allenai/c4 `en`; the rest of the pipeline is the one tested here on the fixture."
    import datasets
    calls = []
    real = datasets.load_dataset
    def fake(path, *args, **kw):
        calls.append((path, args, kw))
        return real("json", data_files={kw["split"]: [str(p) for p in sorted(C4_FIXTURE.glob(f"c4-{kw['split']}.*"))]},
                    split=kw["split"], features=datasets.Features({k: datasets.Value("string") for k in D.C4_FIELDS}), streaming=True)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    hub = PretrainingStream(DataConfig(source="c4", seq_len=32, shuffle_buffer=8))
    assert hub.epoch_size is None
    got = run(hub, range(3), 4)
    assert calls[0] == ("allenai/c4", ("en",), {"split": "train", "streaming": True})
    monkeypatch.undo()
    assert got == run(PretrainingStream(C4), range(3), 4)


@needs_datasets
@pytest.mark.parametrize("group", ["split", "truncate"])
def test_c4_deterministic_and_resumable(group):
    cfg = DataConfig(source=C4.source, seq_len=32, group=group, shuffle_buffer=8)
    G = 4
    n = len(epoch_samples(PretrainingStream(cfg)))
    steps = range(2 * n // G + 3)  # runs through two epochs and into the third
    ref = run(PretrainingStream(cfg), steps, G)
    assert ref == run(PretrainingStream(cfg), steps, G)
    ids = [tuple(x) for b in ref for _, x in b]
    assert Counter(ids[:n]) == Counter(epoch_samples(PretrainingStream(cfg)))  # epoch 0 is every sample once
    assert ids[:n] != ids[n:2 * n] and Counter(ids[:n]) == Counter(ids[n:2 * n])  # epoch 1: same samples, new order
    for stop in (1, 3, n // G + 1, 2 * n // G + 1):  # within epoch 0, in epoch 1, in epoch 2
        first = PretrainingStream(cfg)
        run(first, range(stop), G)
        state = roundtrip(first.state_dict())
        assert state["samples_per_rank"] == stop * G
        resumed = PretrainingStream(cfg)
        resumed.load_state_dict(state)
        assert run(resumed, steps[stop:], G) == ref[stop:], stop
    for _, x in ref[0]: assert x[0] == 2 and x[-1] == 3 and cfg.min_tokens <= len(x) <= 32


@needs_datasets
def test_c4_seed_changes_order():
    a, b = (run(PretrainingStream(C4, seed=s), range(3), 4) for s in (1, 2))
    assert a != b


@needs_datasets
@pytest.mark.parametrize("W", [2, 3])  # 2 divides the 2 train shards (whole shards per rank); 3 does not (every 3rd document)
def test_c4_ranks_disjoint_and_complete(W):
    one = epoch_samples(PretrainingStream(C4))
    parts = [epoch_samples(PretrainingStream(C4, rank=r, world_size=W)) for r in range(W)]
    assert all(parts)
    assert Counter(x for p in parts for x in p) == Counter(one)  # no overlap, nothing lost
    # batch() per rank: G/W samples per rank and step, disjoint across ranks
    G = 2 * W
    per_rank = [run(PretrainingStream(C4, rank=r, world_size=W), range(3), G) for r in range(W)]
    slots = [i for p in per_rank for b in p for i, _ in b]
    assert sorted(slots) == list(range(3 * G))
    assert all(len(b) == G // W for p in per_rank for b in p)
    states = [PretrainingStream(C4, rank=r, world_size=W) for r in range(W)]
    for s in states: run(s, range(2), G)
    assert len({json.dumps(s.state_dict(), sort_keys=True) for s in states}) == 1  # one state for every rank
    with pytest.raises(ValueError, match=f"world_size: saved {W}, now 1"):
        PretrainingStream(C4).load_state_dict(states[0].state_dict())


@needs_datasets
def test_c4_validation_split():
    s = PretrainingStream(C4, "validation")
    assert len(epoch_samples(s)) > 0 and s.batch(0, 2)


@needs_datasets
def test_c4_must_be_read_in_order():
    s = PretrainingStream(C4)
    with pytest.raises(ValueError, match="expected step 0, got 2"): s.batch(2, 4)
    s.batch(0, 4)
    with pytest.raises(ValueError, match="expected step 1, got 0"): s.batch(0, 4)
    with pytest.raises(ValueError, match="needs a finite stream"): length_stats(s)
    with pytest.raises(ValueError, match="pass n"): sample_lengths(C4)
    assert len(sample_lengths(C4, n=5)) == 5


@needs_datasets
def test_c4_dataloader_workers():
    "HF datasets shards by DataLoader worker: hf_dataset() read by 2 workers yields every sample once; batch() refuses to run in one."
    import torch
    from torch.utils.data import DataLoader, IterableDataset
    s = PretrainingStream(C4)
    loader = DataLoader(s.hf_dataset(0), batch_size=None, num_workers=2)
    got = [tuple(r["input_ids"].tolist() if hasattr(r["input_ids"], "tolist") else r["input_ids"]) for r in loader]
    assert Counter(got) == Counter(epoch_samples(s))

    class Steps(IterableDataset):
        def __iter__(self): yield s.batch(0, 2)
    with pytest.raises(RuntimeError, match="not in a DataLoader worker"):
        list(DataLoader(Steps(), batch_size=None, num_workers=1))


@needs_datasets
def test_missing_datasets_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"): PretrainingStream(C4)
