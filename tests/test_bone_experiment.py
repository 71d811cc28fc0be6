"The Bone experiment's one trick: a head learning rate set apart from the adapter's by a scale parametrisation (Adam is scale-invariant)."
import importlib.util, torch, pytest
from pathlib import Path
from torch import nn
import torch.nn.functional as F
from mosaiclab.train import decoupled_adamw
from mosaiclab.model import MosaicBertConfig, MosaicBertForSequenceClassification
import dataclasses

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bone_experiment", ROOT / "experiments" / "parameterisation" / "bone.py")
bx = importlib.util.module_from_spec(spec); spec.loader.exec_module(bx)

def _train(model, lr, steps=6, wd=1e-4):
    opt, sched = decoupled_adamw([p for p in model.parameters() if p.requires_grad], lr, (0.9, 0.98), 1e-8, wd, steps, 1, 0.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = torch.randn(8, 6, generator=g), torch.randn(8, 3, generator=g)
        F.mse_loss(model(x), y).backward(); opt.step(); sched.step(); opt.zero_grad()

@pytest.mark.parametrize("c", [10.0, 0.3])
def test_scaled_parametrisation_multiplies_the_learning_rate(c):
    torch.manual_seed(0)
    a = nn.Linear(6, 3); b = nn.Linear(6, 3); b.load_state_dict(a.state_dict())
    for name in ("weight", "bias"):
        torch.nn.utils.parametrize.register_parametrization(b, name, bx.Scaled(c))
    assert torch.allclose(a.weight, b.weight) and torch.allclose(a.bias, b.bias)      # the same layer at the start
    _train(a, 1e-2 * c); _train(b, 1e-2)
    assert torch.allclose(a.weight, b.weight, atol=1e-5) and torch.allclose(a.bias, b.bias, atol=1e-5)

def test_scaled_is_not_a_no_op():
    torch.manual_seed(0)
    a = nn.Linear(6, 3); b = nn.Linear(6, 3); b.load_state_dict(a.state_dict())
    torch.nn.utils.parametrize.register_parametrization(b, "weight", bx.Scaled(10.0))
    _train(a, 1e-2); _train(b, 1e-2)
    assert not torch.allclose(a.weight, b.weight, atol=1e-3)

def test_head_lr_touches_only_the_head():
    cfg = dataclasses.replace(MosaicBertConfig.lab(), d_model=32, n_layers=1, n_heads=2, d_ff=64)
    torch.manual_seed(0)
    clf = MosaicBertForSequenceClassification(cfg, 2).eval()
    ids = torch.randint(5, cfg.vocab_size, (2, 7))
    ref = clf(ids).logits
    bx.add_adapters(clf, lambda n, lin: bx.BoneLinear(lin, 8, "bone"), train_also=bx.HEAD)
    bx.head_lr(clf, 5.0)
    assert torch.allclose(clf(ids).logits, ref, atol=1e-6)
    scaled = {n for n, p in clf.named_parameters() if "parametrizations" in n}
    assert scaled and all(n.startswith(bx.HEAD) and p.requires_grad for n, p in clf.named_parameters() if n in scaled)
    assert {n for n, p in clf.named_parameters() if p.requires_grad} - scaled == {n for n, _ in clf.named_parameters() if n.endswith(".bone")}

def test_the_chapter_states_the_verdict_the_file_gives():
    "The markdown verdict in the Bone chapter's reading is the one read_bone computes from the committed results."
    import json, re
    from mosaiclab.experiment import load_results
    from mosaiclab.parameterisation.bone import read_bone
    res = load_results("parameterisation/bone", root=ROOT)
    assert not res["config"]["quick"] and not res["dirty"], "the committed file must be a full run from a clean tree"
    cells = json.loads((ROOT / "nbs" / "parameterisation" / "05_bone.ipynb").read_text())["cells"]
    stated = [m.group(1).lower() for c in cells if c["cell_type"] == "markdown"
              for m in [re.search(r"\*\*Verdict: (reproduced|partly reproduced|not reproduced)\b", "".join(c["source"]), re.I)] if m]
    assert stated == [read_bone(res)["verdict"]]
