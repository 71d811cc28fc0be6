"""The throughput benchmark and the GPU suite run end to end in quick / dry mode.

Speed targets (e.g. MosaicBERT >= 4x HF BERT) are reported in results/throughput/, never asserted here:
timings on a shared CPU are too noisy for a test.
"""
import json, os, subprocess, sys
from pathlib import Path
import pytest
import torch
from mosaiclab.bench import (ABLATIONS, ablation_figure, add_bench_parser, batch_stats, load_original, make_batches,
                             parse_lengths, print_throughput, run_ablation, run_throughput, slow_bf16_reason, throughput_figure,
                             truncated_samples)

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "quick.json"
    return run_throughput(quick=True, verbose=False, json_path=path), path


def test_quick_throughput_has_every_row(quick):
    r, _ = quick
    got = {(x["key"], x["precision"]) for x in r["rows"]}
    assert got == {(k, p) for k in ("mosaicbert", "switches_off", "hf_bert") for p in ("bf16", "fp32")}
    for x in r["rows"]:
        t = x["tokens_per_s"]
        assert 0 < t["min"] <= t["median"] <= t["max"] and len(x["repeats"]) == 2
        assert x["flops_per_token"] > 0 and x["achieved_flops"] > 0 and x["mfu"] > 0
    assert set(r["ratios_vs_hf"]) == {"bf16", "fp32"}
    assert all(v["of_medians"] > 0 for d in r["ratios_vs_hf"].values() for v in d.values())
    assert r["hf_parity_loss_diff"] < 1e-4   # the HF row is the switches-off model with the same weights
    assert all(v > 0 for v in r["peak_flops"].values())


def test_quick_throughput_json_has_provenance(quick):
    r, path = quick
    saved = json.loads(Path(path).read_text())
    assert saved["rows"] == json.loads(json.dumps(r["rows"]))
    for k in ("cpu", "threads", "torch", "transformers", "load_average"): assert k in saved["hardware"]
    assert "commit" in saved and "dirty" in saved and saved["command"] and saved["timestamp"]
    assert saved["lengths"]["corpus"]["n"] > 0 and 0 <= saved["lengths"]["corpus"]["full_fraction"] <= 1


def test_throughput_figure_has_a_dropdown_per_precision(quick):
    fig = throughput_figure(quick[0])
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["bf16", "fp32"]


def test_missing_original_is_a_failed_row_with_its_error_not_skipped(capsys):
    r = run_throughput(quick=True, verbose=False, hf=False, precisions=("fp32",), original_src="/nonexistent/examples")
    assert "no bert_layers.py" in r["failed"]["original"]
    assert "original" not in r["skipped"]
    assert {x["key"] for x in r["rows"]} == {"mosaicbert", "switches_off"}
    assert r["ratios_vs_original"] == {}
    print_throughput(r)
    assert "FAILED original: FileNotFoundError: no bert_layers.py in /nonexistent/examples" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="mosaicml/examples"): load_original("/nonexistent", None)


def test_an_hf_row_that_raises_is_failed_with_its_error_and_the_cli_exits_1(monkeypatch, capsys):
    import mosaiclab.bench as bench
    def broken(*a, **k): raise RuntimeError("transformers chose attention implementation 'eager', not 'sdpa'")
    monkeypatch.setattr(bench, "hf_bert_mlm", broken)
    r = run_throughput(quick=True, verbose=False, precisions=("fp32",))
    assert r["failed"] == {"hf_bert": "RuntimeError: transformers chose attention implementation 'eager', not 'sdpa'"}
    assert "hf_bert" not in r["skipped"] and r["ratios_vs_hf"] == {}
    assert {x["key"] for x in r["rows"]} == {"mosaicbert", "switches_off"}   # the other rows are still measured
    assert bench.bench_main(["throughput", "--quick", "--precisions", "fp32"]) == 1
    assert bench.bench_main(["throughput", "--quick", "--precisions", "fp32", "--no-hf"]) == 0


@pytest.mark.skipif(not os.environ.get("MOSAICBERT_ORIGINAL_SRC"), reason="set MOSAICBERT_ORIGINAL_SRC to a mosaicml/examples checkout")
def test_original_row_when_a_checkout_is_given():
    r = run_throughput(quick=True, verbose=False, hf=False, precisions=("fp32",), original_src=os.environ["MOSAICBERT_ORIGINAL_SRC"])
    assert "original" not in r["failed"], r["failed"]
    assert any(x["key"] == "original" and x["tokens_per_s"]["median"] > 0 for x in r["rows"])
    assert set(r["ratios_vs_original"]["fp32"]) == {"mosaicbert", "switches_off"}   # every other row against the original


def test_uniform_lengths_cut_real_samples_to_lengths_spread_over_the_range():
    from mosaiclab.datasets import load_tokenizer
    from mosaiclab.mlm import MLMCollator
    tok = load_tokenizer("lab-wordpiece-8192")
    tok_sep = tok.token_to_id("[SEP]")
    samples = truncated_samples("lab-wordpiece-8192", "validation", 64, limit=60)
    assert {s[-1] for s in samples} == {tok_sep}
    coll = MLMCollator.from_tokenizer(tok, mlm_probability=0.3, seed=1)
    bs = make_batches(samples, coll, batch_size=16, n_batches=8, seed=3, lengths=parse_lengths("uniform:10-64", 64))
    lens = torch.cat([b["attention_mask"].sum(1) for b in bs])
    assert int(lens.min()) >= 10 and int(lens.max()) <= 64
    assert 30 < float(lens.double().mean()) < 44   # uniform 10..64 has mean 37; 128 draws put the sample mean within +-7 (5 sd)
    assert int(lens.min()) < 16 and int(lens.max()) > 58   # both ends of the range are reached
    for b in bs:
        unmasked = torch.where(b["labels"] != -100, b["labels"], b["input_ids"])   # labels hold the original id where masked
        for ids, n in zip(unmasked, b["attention_mask"].sum(1).tolist()):
            row = ids[:n].tolist()
            assert row[-1] == tok_sep and any(s[:n - 1] == row[:-1] for s in samples)   # a real sample's first tokens, then [SEP]
    corpus = batch_stats(make_batches(samples, coll, 16, 8, 3))["padding_fraction"]
    assert batch_stats(bs)["padding_fraction"] > corpus + 0.2


def test_uniform_lengths_option_in_the_benchmark():
    r = run_throughput(quick=True, verbose=False, hf=False, precisions=("fp32",), lengths="uniform:8-32")
    assert r["settings"]["lengths"] == r["lengths"]["distribution"] == "uniform:8-32"
    assert all(x["tokens_per_s"]["median"] > 0 and x["mfu"] > 0 for x in r["rows"])
    a = run_ablation(quick=True, verbose=False, precision="fp32", ablations=["all switches on"], all_off=False, lengths="uniform:8-32")
    assert a["lengths"]["distribution"] == "uniform:8-32"


@pytest.mark.parametrize("spec", ["zipf", "c4", "uniform", "uniform:24", "uniform:a-b", "uniform:30-20", "uniform:1-128",
                                  "uniform:24-129", "uniform:-5-10"])
def test_bad_length_spec_is_one_clear_error(spec):
    with pytest.raises(ValueError, match="length distribution"): parse_lengths(spec, 128)
    with pytest.raises(ValueError, match="length distribution"): run_throughput(lengths=spec, verbose=False)


def test_cli_bad_length_spec_exits_2_with_one_line(capsys):
    from mosaiclab.cli import main
    assert main(["bench", "throughput", "--lengths", "zipf"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown length distribution 'zipf'" in err[0], err
    assert main(["bench", "ablation", "--quick", "--lengths", "uniform:24-128"]) == 2   # quick mode's seq_len is 32
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seq_len (32)" in err[0], err


def test_slow_bf16_is_skipped_with_the_reason_not_timed():
    assert slow_bf16_reason({"fp32": 100e9, "bf16": 1e9}) and "allow_slow_bf16" in slow_bf16_reason({"fp32": 100e9, "bf16": 1e9})
    assert slow_bf16_reason({"fp32": 100e9, "bf16": 150e9}) is None
    assert slow_bf16_reason({"fp32": 100e9, "bf16": 1e9}, device="cuda") is None


def test_quick_ablation():
    names = ["all switches on", "unpad=False", "masked_only_head=False"]
    r = run_ablation(quick=True, verbose=False, ablations=names)
    assert [x["key"] for x in r["rows"]] == names + ["bert_switches()"]
    assert all(x["tokens_per_s"]["median"] > 0 for x in r["rows"])
    ratios = r["ratios_vs_baseline"]["bf16"]
    assert set(ratios) == set(names[1:]) | {"bert_switches()"}
    assert r["rows"][1]["config_change"] == ABLATIONS["unpad=False"]
    assert len(ablation_figure(r).data[0].y) == 4
    with pytest.raises(ValueError, match="unknown ablation"): run_ablation(quick=True, ablations=["nope"])


def test_cli_parser_maps_every_option():
    import argparse
    p = argparse.ArgumentParser(); add_bench_parser(p.add_subparsers(dest="command"))
    a = p.parse_args(["bench", "throughput", "--quick", "--precisions", "fp32", "--original-src", "/x", "--threads", "2",
                      "--lengths", "uniform:24-128"])
    assert (a.quick, a.precisions, a.original_src, a.threads, a.lengths) == (True, ["fp32"], "/x", 2, "uniform:24-128")
    assert p.parse_args(["bench", "ablation"]).lengths == "corpus"


def test_gpu_suite_dry_runs_on_cpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_suite.py"), "--dry", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert res["dry"] and res["hardware"]["cpu"] and "commit" in res and res["command"]
    for part in ("attention_equivalence", "model_equivalence"):
        b = res[part]["backends"]
        assert b["eager"]["status"] == b["sdpa"]["status"] == "ok"
        assert b["flash_attn"]["status"] in ("skipped", "ok")   # skipped with its reason where flash-attn is missing
    assert set(res["throughput"]) == {"128", "512"}
    assert all(x["tokens_per_s"]["median"] > 0 for t in res["throughput"].values() for x in t["rows"])
