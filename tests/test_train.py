"""The trainer: bit-for-bit resume, DDP == 1 process, NaN stop, signals, and checkpoints that are never lost."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file
from mosaiclab.train import Callback, TrainConfig, pretrain, CheckpointError, TrainingDiverged, read_metrics, per_sample_mlm_loss

ROOT = Path(__file__).resolve().parent.parent

def tiny(**kw) -> TrainConfig:
    over = {"model.d_model": 32, "model.n_layers": 2, "model.n_heads": 2, "model.d_ff": 48, "model.hidden_dropout": 0.1,
            "max_steps": 6, "global_batch": 8, "micro_batch": 4, "eval_every": 0, "eval_samples": 16, "log_every": 1,
            "checkpoint_every": 0, "precision": "fp32", "max_minutes": None, "data.seq_len": 32}
    over.update(kw)
    return TrainConfig.lab().with_overrides(over)

def weights(run):
    return load_file(str(Path(run) / "model" / "model.safetensors"))

def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), f"{k} differs"

def test_resume_is_bit_for_bit(tmp_path):
    cfg = tiny()
    pretrain(cfg, tmp_path / "straight", progress=False)
    class StopAt3(Callback):
        def on_step_end(self, step, metrics, model): return step == 3
    first = pretrain(cfg, tmp_path / "split", callbacks=[StopAt3()], progress=False)     # N/2 steps, then stop
    assert first["steps"] == 3 and first["stopped_by"] == "callback"
    pretrain(cfg, tmp_path / "split", resume=True, progress=False)                        # + N/2 steps
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "split"))
    straight = [r["loss"] for r in read_metrics(tmp_path / "straight") if r["kind"] == "train"]
    split = [r["loss"] for r in read_metrics(tmp_path / "split") if r["kind"] == "train"]
    assert straight == split

def test_resume_with_a_different_config_is_refused(tmp_path):
    pretrain(tiny(max_steps=2), tmp_path / "r", progress=False)
    with pytest.raises(CheckpointError, match="model"):
        pretrain(tiny(max_steps=4, **{"model.d_model": 64}), tmp_path / "r", resume=True, progress=False)
    with pytest.raises(CheckpointError, match="max_steps"):
        pretrain(tiny(max_steps=4), tmp_path / "r", resume=True, progress=False)

def test_extend_replans_the_decay_and_says_so(tmp_path):
    "A finished 4-step run extended to 8 steps: steps 5-8 take the LRs of a run planned for 8 steps with the same warmup."
    short = tiny(max_steps=4, warmup_frac=0.25)                      # 1 warmup step
    pretrain(short, tmp_path / "r", progress=False)
    with pytest.raises(CheckpointError, match="--extend"):           # without the flag the refusal names it
        pretrain(tiny(max_steps=8, warmup_frac=0.25), tmp_path / "r", resume=True, progress=False)
    with pytest.raises(CheckpointError, match="not larger"):
        pretrain(tiny(max_steps=3, warmup_frac=0.25), tmp_path / "r", resume=True, extend=True, progress=False)
    with pytest.raises(ValueError, match="needs resume"):
        pretrain(tiny(max_steps=8), tmp_path / "other", extend=True, progress=False)
    summary = pretrain(tiny(max_steps=8, warmup_frac=0.25), tmp_path / "r", resume=True, extend=True, progress=False)
    assert summary["steps"] == 8 and summary["stopped_by"] == "max_steps"
    recs = read_metrics(tmp_path / "r")
    ext = [r for r in recs if r["kind"] == "extend"]
    assert len(ext) == 1 and ext[0]["step"] == 4 and ext[0]["from_max_steps"] == 4 and ext[0]["warmup_steps"] == 1
    planned = pretrain(tiny(max_steps=8, warmup_frac=1 / 8), tmp_path / "planned", progress=False)
    lr = lambda run: {r["step"]: r["lr"] for r in read_metrics(run) if r["kind"] == "train"}
    got, want = lr(tmp_path / "r"), lr(tmp_path / "planned")
    assert [got[s] for s in range(5, 9)] == pytest.approx([want[s] for s in range(5, 9)], rel=1e-12)
    assert got[4] < got[5]          # the finished run had decayed to its floor; the re-planned decay starts higher
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["max_steps"] == 8 and round(saved["warmup_frac"] * 8) == 1

def test_a_finished_run_is_never_overwritten(tmp_path):
    pretrain(tiny(max_steps=2), tmp_path / "r", progress=False)
    before = weights(tmp_path / "r")
    with pytest.raises(CheckpointError, match="already holds a run"):
        pretrain(tiny(max_steps=2), tmp_path / "r", progress=False)
    assert_same_weights(before, weights(tmp_path / "r"))

def test_corrupted_checkpoint_is_named(tmp_path):
    pretrain(tiny(max_steps=2, checkpoint_every=1, keep_checkpoints=2), tmp_path / "r", progress=False)
    ck = tmp_path / "r" / "checkpoints" / (tmp_path / "r" / "checkpoints" / "latest").read_text().strip()
    data = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(data[: len(data) // 2])       # truncated
    with pytest.raises(CheckpointError, match=r"corrupted or truncated.*step-00000001"):
        pretrain(tiny(max_steps=2, checkpoint_every=1), tmp_path / "r", resume=True, progress=False)

def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    def loss_fn(out, batch, step):
        return out.loss * (float("nan") if step == 3 else 1.0)
    with pytest.raises(TrainingDiverged, match="at step 4"):
        pretrain(tiny(checkpoint_every=1), tmp_path / "r", loss_fn=loss_fn, progress=False)
    ck = tmp_path / "r" / "checkpoints"
    assert (ck / "latest").read_text().strip() == "step-00000003"
    state = torch.load(ck / "step-00000003" / "trainer.pt", weights_only=True)
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in load_file(str(ck / "step-00000003" / "model.safetensors")).values())

def test_per_sample_loss_matches_the_mean_loss():
    from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM
    cfg = MosaicBertConfig.lab().replace(vocab_size=60, d_model=16, n_layers=1, n_heads=2, d_ff=16)
    ids = torch.randint(5, 60, (3, 7)); labels = torch.full_like(ids, -100); labels[0, 1] = 7; labels[2, [2, 4]] = 9
    for masked_only in (True, False):
        m = MosaicBertForMaskedLM(cfg.replace(masked_only_head=masked_only))
        out = m(ids, labels=labels)
        per = per_sample_mlm_loss(out, 3)
        assert per[1] == 0
        torch.testing.assert_close((per[0] + 2 * per[2]) / 3, out.loss)

def _cli(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mosaiclab.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

TINY_SETS = ["--set", "model.d_model=32", "--set", "model.n_layers=2", "--set", "model.n_heads=2", "--set", "model.d_ff=48",
             "--set", "global_batch=8", "--set", "micro_batch=4", "--set", "eval_samples=16", "--set", "precision=fp32",
             "--set", "data.seq_len=32", "--set", "eval_every=0", "--set", "checkpoint_every=0", "--set", "log_every=1"]

def test_sigterm_saves_a_checkpoint_and_exits(tmp_path):
    p = _cli(["pretrain", "--out", str(tmp_path / "r"), "--max-steps", "100000", "--no-progress", *TINY_SETS])
    log = tmp_path / "r" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 2): time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 143, out
    latest = (tmp_path / "r" / "checkpoints" / "latest").read_text().strip()
    state = torch.load(tmp_path / "r" / "checkpoints" / latest / "trainer.pt", weights_only=True)
    assert state["step"] >= 2 and '"stopped_by": "SIGTERM"' in out

def test_cli_bad_input_is_one_clear_line(tmp_path):
    p = _cli(["pretrain", "--out", str(tmp_path / "r"), "--set", "data.source=/no/such/corpus"])
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2 and "error:" in out and "Traceback" not in out, out   # 2: bad input

def _one_vs_two_processes(tmp_path, steps: int, port: int, two_sets: list[str]):
    "Losses and final weights of 1 process and of 2 gloo processes under torchrun, same global batch, no dropout."
    args = ["pretrain", "--max-steps", str(steps), "--no-progress", *TINY_SETS, "--set", "model.hidden_dropout=0.0"]
    one = _cli(args + ["--out", str(tmp_path / "one")])
    assert one.wait(timeout=300) == 0, one.stdout.read()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                          "-m", "mosaiclab.cli", *args, *two_sets, "--out", str(tmp_path / "two")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    losses = [[r["loss"] for r in read_metrics(tmp_path / n) if r["kind"] == "train"] for n in ("one", "two")]
    assert len(losses[0]) == len(losses[1]) == steps
    for a, b in zip(*losses): assert abs(a - b) < 1e-5, losses
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert w1.keys() == w2.keys()
    for k in w1: torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=1e-4)

def test_ddp_two_processes_equal_one(tmp_path):
    """2 gloo processes with the same global batch give the same losses and weights as 1 process (fp32)."""
    _one_vs_two_processes(tmp_path, 4, 29517, [])

def test_fsdp_two_processes_equal_one(tmp_path):
    """FSDP2 (fully_shard) under torchrun on gloo: the same losses as 1 process, and a full final model."""
    _one_vs_two_processes(tmp_path, 3, 29519, ["--set", "distributed=fsdp"])

def test_model_fn_and_optimizer_fn_are_used(tmp_path):
    "The hooks Part II methods plug into: a custom model builder and a custom optimizer."
    from mosaiclab.model import MosaicBertForMaskedLM
    built, made = [], []
    def model_fn(mcfg):
        m = MosaicBertForMaskedLM(mcfg); built.append(m); return m
    def optimizer_fn(model, cfg):
        opt = torch.optim.SGD(model.parameters(), lr=0.0)   # lr 0: the weights must stay at their init
        made.append(opt); return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    cfg = tiny(max_steps=2)
    pretrain(cfg, tmp_path / "run", progress=False, model_fn=model_fn, optimizer_fn=optimizer_fn)
    assert len(built) == 1 and len(made) == 1
    torch.manual_seed(cfg.seed)
    before = MosaicBertForMaskedLM(cfg.model).state_dict()
    after = weights(tmp_path / "run")
    for k in after: assert torch.equal(after[k], before[k]), k

def test_cli_extend_needs_resume_and_max_steps(tmp_path, capsys):
    from mosaiclab.cli import main
    assert main(["pretrain", "--extend", "--out", str(tmp_path / "r"), "--no-progress"]) == 2   # 2: bad input
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--extend" in err[0] and "--resume" in err[0]
    assert not (tmp_path / "r").exists()

def test_evaluate_split_is_the_trainers_evaluation(tmp_path):
    "evaluate_split redoes pretrain's last evaluation from the saved weights, on the same samples and masks, and only those."
    from mosaiclab.train import evaluate_split
    from mosaiclab.model import from_pretrained
    cfg = tiny(max_steps=4)
    summary = pretrain(cfg, tmp_path / "run", progress=False)
    model = from_pretrained(tmp_path / "run" / "model")
    res = evaluate_split(model, cfg)
    assert res["samples"] == cfg.eval_samples and abs(res["eval_loss"] - summary["eval_loss"]) < 1e-5
    assert evaluate_split(model, cfg) == res                                        # fixed masks: the same number twice
    other_seed = evaluate_split(model, cfg.with_overrides({"seed": cfg.seed + 1}))   # other samples and masks: another number
    assert other_seed["eval_loss"] != res["eval_loss"]
    assert evaluate_split(model, cfg, n_samples=4)["samples"] == 4
    assert evaluate_split(model, cfg, split="train")["eval_loss"] != res["eval_loss"]
