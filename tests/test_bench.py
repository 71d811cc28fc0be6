"""The throughput benchmark and the GPU suite run end to end in quick / dry mode.

Speed targets (e.g. MosaicBERT >= 4x HF BERT) are reported in results/throughput/, never asserted here:
timings on a shared CPU are too noisy for a test.
"""
import json, os, subprocess, sys
from pathlib import Path
import pytest
import torch
from mosaiclab.bench import (ABLATIONS, ablation_figure, add_bench_parser, load_original, run_ablation, run_throughput,
                             slow_bf16_reason, throughput_figure)

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


def test_missing_original_is_skipped_with_the_reason():
    r = run_throughput(quick=True, verbose=False, hf=False, precisions=("fp32",), original_src="/nonexistent/examples")
    assert "no bert_layers.py" in r["skipped"]["original"]
    assert {x["key"] for x in r["rows"]} == {"mosaicbert", "switches_off"}
    with pytest.raises(FileNotFoundError, match="mosaicml/examples"): load_original("/nonexistent", None)


@pytest.mark.skipif(not os.environ.get("MOSAICBERT_ORIGINAL_SRC"), reason="set MOSAICBERT_ORIGINAL_SRC to a mosaicml/examples checkout")
def test_original_row_when_a_checkout_is_given():
    r = run_throughput(quick=True, verbose=False, hf=False, precisions=("fp32",), original_src=os.environ["MOSAICBERT_ORIGINAL_SRC"])
    assert "original" not in r["skipped"], r["skipped"]
    assert any(x["key"] == "original" and x["tokens_per_s"]["median"] > 0 for x in r["rows"])


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
    a = p.parse_args(["bench", "throughput", "--quick", "--precisions", "fp32", "--original-src", "/x", "--threads", "2"])
    assert (a.quick, a.precisions, a.original_src, a.threads) == (True, ["fp32"], "/x", 2)


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
