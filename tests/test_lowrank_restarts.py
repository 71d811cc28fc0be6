"""Restarts never fall on the last step, and every method of the low-rank benchmark ends a run with restarts still holding
its optimizer state (issue 15: a reset on the last step made three methods report 0 optimizer bytes)."""
import importlib.util
from pathlib import Path
import pytest
import torch
from torch import nn
from mosaiclab.experiment import lab_overrides
from mosaiclab.parameterisation.lowrank import LowRankLinear, Restarts, restart_multiplier
from mosaiclab.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lowrank_experiment", ROOT / "experiments" / "parameterisation" / "lowrank.py")
exp = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(exp)

EVERY = 5
RESETS = {"low-rank + reset": "low-rank", "low-rank + both": "low-rank", "relora": "low-rank", "sltrain + both": "sltrain"}
WITH_RESTARTS = {"low-rank + refactor", *RESETS}

def _cfg(steps: int) -> TrainConfig:
    over = lab_overrides(d_model=32, batch=4, seq_len=32, steps=steps, evals=1, eval_samples=8)
    return TrainConfig.lab().with_overrides({**over, "seed": 0})

@pytest.fixture(scope="module", params=[(12, [5, 10]), (10, [5])], ids=["last-step-not-a-multiple", "last-step-a-multiple"])
def runs(request, tmp_path_factory):
    steps, expected = request.param
    torch.manual_seed(0)
    methods = exp.benchmark_methods(rank=4, every=EVERY, density=0.05)
    assert WITH_RESTARTS <= set(methods) and len(methods) == 10
    d = tmp_path_factory.mktemp(f"lowrank{steps}")
    return steps, expected, {name: exp.train_method(name, spec, _cfg(steps), d / name.replace(" ", "").replace("+", "_"))
                             for name, spec in methods.items()}

def test_restart_steps_never_include_the_last(runs):
    steps, expected, rs = runs
    for name, r in rs.items():
        assert r["summary"]["steps"] == steps
        assert r["restart_steps"] == (expected if name in WITH_RESTARTS else []), name

def test_every_method_ends_with_optimizer_state(runs):
    _, _, rs = runs
    for name, r in rs.items():
        m = r["memory"]
        assert m["optimizer_state_bytes"] > 0 and m["linear_optimizer_state_bytes"] > 0, name
        if name not in ("galore", "fira"):   # AdamW: two fp32 moments for every trainable Linear parameter (and step counts)
            assert m["linear_optimizer_state_bytes"] >= 2 * 4 * m["linear_trainable"], name

def test_reset_methods_carry_as_much_state_as_their_plain_twin(runs):
    _, _, rs = runs
    for name, twin in RESETS.items():
        a, b = rs[name]["memory"], rs[twin]["memory"]
        assert a["linear_trainable"] == b["linear_trainable"], name
        assert a["linear_optimizer_state_bytes"] == b["linear_optimizer_state_bytes"], name
        assert a["optimizer_state_bytes"] == b["optimizer_state_bytes"], name

def test_restarts_skip_the_last_step_without_an_optimizer_fn():
    torch.manual_seed(0)
    layer = LowRankLinear(12, 8, rank=2)
    cb = Restarts(5, refactorize=True, max_steps=10)
    for step in range(1, 11): cb.on_step_end(step, {}, layer)
    assert cb.steps == [5] and cb.restarts == 1

def test_reset_on_the_step_before_the_last_leaves_state_at_the_end():
    torch.manual_seed(0)
    net = nn.Sequential(LowRankLinear(12, 8, rank=2), nn.ReLU(), nn.Linear(8, 1))
    cb = Restarts(3, reset_momentum=True)
    opt, sched = cb.optimizer_fn(net, TrainConfig.lab().with_overrides({"max_steps": 7, "warmup_frac": 0.0}))
    x, lrs = torch.randn(4, 12), []
    for step in range(1, 8):
        lrs.append(sched.get_last_lr()[0])
        net(x).sum().backward(); opt.step(); sched.step(); opt.zero_grad()
        cb.on_step_end(step, {}, net)
    assert cb.steps == [3, 6] and len(opt.state) == 5               # the step after the reset at 6 rebuilt every moment
    # the update after each reset runs at the benchmark's quick-recovery factor, 0.001 + 0.999 k / 9 with k = 1
    assert lrs[3] / lrs[2] < 0.2 and restart_multiplier(3, 3, 10) == pytest.approx(0.001 + 0.999 / 9)
