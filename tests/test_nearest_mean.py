"Edge cases and bad input of the streaming nearest-mean classifier and the class-incremental pieces (nbs/transfer/01_nearest_mean.ipynb)."
import json, math, os, subprocess, sys
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
from mosaiclab.transfer.nearest_mean import (StreamingNMC, NMC_METRICS, class_incremental_tasks, per_class_subset, nmc_stream,
                                             sequential_head, joint_probe, masked_logits, incremental_summary)
from mosaiclab.science.probes import nearest_mean

ROOT = Path(__file__).resolve().parents[1]

def blobs(n, C=6, D=12, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = scale * torch.randn(C, D, generator=torch.Generator().manual_seed(99))
    y = torch.randint(0, C, (n,), generator=g)
    return centres[y] + torch.randn(n, D, generator=g), y

@pytest.mark.parametrize("batch", [1, 5, 64, 1000])
def test_streaming_means_equal_batch_means_in_any_order(batch):
    X, y = blobs(300)
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(batch))
    s = StreamingNMC("centred_cosine")
    for b in perm.split(batch): s.update(X[b], y[b])
    ref = torch.stack([X[y == c].double().mean(0) for c in range(6)])
    assert torch.allclose(s.means, ref, atol=1e-12)

def test_l2_rule_is_the_official_one_and_centred_cosine_is_the_batch_probe():
    X, y = blobs(300); Xt, yt = blobs(120, seed=1)
    s = StreamingNMC("l2").update(X, y)
    Z = F.normalize(X.double(), dim=1)
    mu = torch.stack([Z[y == c].mean(0) for c in range(6)])
    dist = torch.cdist(F.normalize(Xt.double(), dim=1), mu)                 # the official code: np.linalg.norm(z - means)
    assert torch.equal(s.predict(Xt), dist.argmin(1))
    c = StreamingNMC("centred_cosine").update(X, y)
    assert torch.equal(c.predict(Xt), nearest_mean(X, y, Xt, yt).predictions)

def test_l2_normalises_so_scale_does_not_matter_but_centred_cosine_is_centred():
    X, y = blobs(200)
    a, b = StreamingNMC("l2").update(X, y), StreamingNMC("l2").update(7.0 * X, y)
    assert torch.equal(a.predict(X), b.predict(X))
    shift = torch.full((12,), 50.0)   # a common direction far larger than the class structure: centring removes it
    c = StreamingNMC("centred_cosine").update(X + shift, y)
    assert (c.predict(X + shift) == y).float().mean() > 0.9

def test_one_example_at_a_time_and_new_classes_grow_the_tables():
    s = StreamingNMC()
    s.update(torch.tensor([1.0, 0.0]), 3)                      # one (D,) example with a scalar label
    assert s.classes.tolist() == [3] and s.predict(torch.tensor([[0.0, 1.0]])).tolist() == [3]
    s.update(torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    assert s.classes.tolist() == [0, 3]
    assert s.predict(torch.tensor([[0.1, 1.0], [1.0, 0.1]])).tolist() == [0, 3]
    s.update(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))   # an empty batch changes nothing
    assert s.counts.tolist() == [1, 0, 0, 1]

def test_old_means_are_never_touched_by_new_classes():
    X, y = blobs(300)
    s = StreamingNMC().update(X[y < 2], y[y < 2])
    before = s.means.clone()
    s.update(X[y >= 2], y[y >= 2])
    assert torch.equal(s.means[:2], before)

@pytest.mark.parametrize("call, msg", [
    (lambda: StreamingNMC().predict(torch.zeros(2, 3)), "call update"),
    (lambda: StreamingNMC().means, "call update"),
    (lambda: StreamingNMC("euclid"), "metric must be one of"),
    (lambda: StreamingNMC().update(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long)), "3 feature rows but 2 labels"),
    (lambda: StreamingNMC().update(torch.zeros(2, 4), torch.tensor([1, -2])), ">= 0"),
    (lambda: StreamingNMC().update(torch.zeros(2, 2, 2), torch.tensor([0, 1])), "(n, D) or (D,)"),
    (lambda: StreamingNMC().update(torch.zeros(2, 4), torch.tensor([0, 1])).predict(torch.zeros(1, 5)), "D=5"),
    (lambda: class_incremental_tasks(8, 3), "n_tasks dividing"),
    (lambda: class_incremental_tasks(8, 0), "n_tasks dividing"),
    (lambda: class_incremental_tasks(2, 4), "n_tasks dividing"),
    (lambda: per_class_subset(torch.tensor([0, 1]), 0), "per_class must be"),
])
def test_bad_input_names_the_fix(call, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")): call()

def test_tasks_partition_the_classes_and_the_seed_moves_the_order():
    orders = {tuple(map(tuple, class_incremental_tasks(8, 4, s))) for s in range(5)}
    assert len(orders) > 1
    for s in range(5):
        t = class_incremental_tasks(8, 4, s)
        assert [len(k) for k in t] == [2] * 4 and sorted(c for k in t for c in k) == list(range(8))

def test_per_class_subset_caps_each_class_and_keeps_small_ones_whole():
    y = torch.tensor([0] * 10 + [1] * 3 + [2] * 7)
    keep = per_class_subset(y, 5, seed=1)
    assert torch.bincount(y[keep]).tolist() == [5, 3, 5]
    assert torch.equal(per_class_subset(y, None), torch.arange(20))
    assert not torch.equal(per_class_subset(y, 5, seed=1), per_class_subset(y, 5, seed=2))

def test_masked_logits_restrict_loss_and_argmax_to_seen_classes():
    logits = torch.tensor([[5.0, 1.0, 9.0, 2.0]])
    m = masked_logits(logits, [0, 1])
    assert m.argmax(1).tolist() == [0] and math.isinf(m[0, 2]) and m[0, 2] < 0
    assert torch.isclose(F.cross_entropy(m, torch.tensor([1])), F.cross_entropy(logits[:, :2], torch.tensor([1])))

def test_nmc_does_not_forget_where_a_sequential_head_does():
    X, y = blobs(600, C=8, scale=2.0); Xt, yt = blobs(400, C=8, scale=2.0, seed=1)
    tasks = class_incremental_tasks(8, 4, seed=0)
    nmc, head, joint = (f(X, y, Xt, yt, tasks) for f in (nmc_stream, sequential_head, joint_probe))
    assert len(nmc["acc"]) == len(head["acc"]) == len(joint["acc"]) == 4
    first = torch.isin(yt, torch.tensor(tasks[0]))
    # after all four tasks, NMC still classifies the first task's classes; the head trained on later tasks alone lost ground
    s = StreamingNMC().update(X, y)
    assert (s.predict(Xt[first]) == yt[first]).float().mean() > 0.9
    assert nmc["final"] > head["final"] + 0.05 and abs(nmc["final"] - joint["final"]) < 0.1
    assert sum(c > 0 for c in nmc["pred_counts"]) == 8

def test_nmc_stream_refuses_a_task_with_no_examples():
    X, y = blobs(100, C=4)
    with pytest.raises(ValueError, match="no training examples of class \\[9\\]"):
        nmc_stream(X, y, X, y, [[0, 1], [2, 9]])

def test_incremental_summary():
    assert incremental_summary([0.9, 0.6, 0.3]) == {"acc": [0.9, 0.6, 0.3], "average": pytest.approx(0.6), "final": 0.3}

def test_quick_experiment_writes_every_arm(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "experiments/transfer/nearest_mean.py", "--quick", "--allow-dirty", "--out", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((tmp_path / "results.json").read_text())
    e = res["encoders"]["lab-ref"]
    assert set(e["runs"]) == set(res["setup"]["arms"])
    for arm, runs in e["runs"].items():
        r = runs["0"]
        n_stages = 1 if arm == "joint_finetune" else res["setup"]["n_tasks"]
        assert len(r["acc"]) == n_stages and all(0 <= a <= 1 for a in r["acc"]), arm
    assert e["verdicts"]["nmc_vs_sequential_finetune/average"]["verdict"] == "too few seeds"
