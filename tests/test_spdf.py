"Defining properties of mosaiclab.parameterisation.spdf (SPDF chapter): masked weights are exact zeros through pretraining and released for fine-tuning."
import dataclasses, pytest, torch
from torch import nn
from mosaiclab.parameterisation.spdf import (layer_densities, random_mask, MaskedSparseLinear, sparsify, release_masks, mask_stats,
                              sparse_training_flops_per_token)
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM, MosaicBertForSequenceClassification, flops_per_token

CFG = dataclasses.replace(MosaicBertConfig.lab(), d_model=64, n_layers=2, n_heads=2, d_ff=128)

@pytest.mark.parametrize("opt_fn", [
    lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1),              # coupled L2 through Adam
    lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, weight_decay=0.1, nesterov=True),
])
def test_masked_weights_stay_exact_zero(opt_fn):
    torch.manual_seed(0)
    layer = MaskedSparseLinear.from_linear(nn.Linear(24, 16), random_mask((16, 24), 0.3, seed=3))
    opt = opt_fn(layer.parameters())
    for _ in range(10):
        opt.zero_grad(); layer(torch.randn(4, 24)).sin().sum().backward(); opt.step()
        assert torch.count_nonzero(layer.weight[~layer.mask]) == 0
    assert torch.count_nonzero(layer.weight[layer.mask]) == layer.mask.sum()

def test_model_pretraining_keeps_zeros_and_release_trains_them():
    torch.manual_seed(0)
    model = MosaicBertForMaskedLM(CFG)
    sparsify(model, 0.75, seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    ids = torch.randint(5, CFG.vocab_size, (4, 12))
    labels = torch.where(torch.rand(4, 12) < 0.3, ids, torch.full_like(ids, -100)); labels[:, 0] = ids[:, 0]
    for _ in range(3):
        opt.zero_grad(); model(ids, labels=labels).loss.backward(); opt.step()
    layers = [m for m in model.modules() if isinstance(m, MaskedSparseLinear)]
    assert len(layers) == 4 * CFG.n_layers
    assert all(torch.count_nonzero(m.weight[~m.mask]) == 0 for m in layers)
    model.eval(); before = model(ids).logits
    assert release_masks(model) == len(layers)
    assert torch.equal(model(ids).logits, before)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt.zero_grad(); model(ids, labels=labels).loss.backward(); opt.step()
    assert all(torch.count_nonzero(m.weight[~m.mask]) > 0 for m in layers)   # the released zeros learned

def test_state_dict_loads_into_dense_classifier_without_the_masks():
    "The weights keep nn.Linear's names; the masks are saved too (persistent buffers), so a dense model leaves them out."
    model = MosaicBertForMaskedLM(CFG)
    sparsify(model, 0.5, seed=0)
    clf = MosaicBertForSequenceClassification(CFG, 2)
    state = {k: v for k, v in model.bert.state_dict().items()}
    assert sum(k.endswith(".mask") for k in state) == 4 * CFG.n_layers
    state = {k: v for k, v in state.items() if not k.endswith(".mask")}
    missing, unexpected = clf.bert.load_state_dict(state, strict=False)
    assert not unexpected and all(m.startswith("pooler.") for m in missing)
    w = clf.bert.state_dict()
    assert sum(int((w[k] == 0).sum()) for k in w if k.endswith("weight") and k.startswith("layers.")) >= mask_stats(model)["zeros"]

def test_mask_exact_count_and_reproducible():
    m = random_mask((30, 7), 0.5, seed=2, name="a")
    assert int(m.sum()) == round(0.5 * 210)
    assert torch.equal(m, random_mask((30, 7), 0.5, seed=2, name="a"))
    assert not torch.equal(m, random_mask((30, 7), 0.5, seed=3, name="a"))

def test_densities():
    shapes = {"a": (64, 64), "b": (256, 64), "c": (64, 512)}
    for s in (0.0, 0.5, 0.75, 0.9):
        for method in ("uniform", "erdos_renyi"):
            d = layer_densities(shapes, s, method)
            nz = sum(d[n] * o * i for n, (o, i) in shapes.items())
            assert nz == pytest.approx((1 - s) * sum(o * i for o, i in shapes.values()))
            assert all(0 < v <= 1 for v in d.values())
    with pytest.raises(ValueError, match="sparsity must lie"): layer_densities(shapes, -0.1)
    with pytest.raises(ValueError, match="method must be"): layer_densities(shapes, 0.5, "snip")

def test_flops_from_masks():
    model = MosaicBertForMaskedLM(CFG)
    dense = flops_per_token(CFG, 64, 0.3)
    assert sparse_training_flops_per_token(model, CFG, 64, 0.3) == dense
    sparsify(model, 0.5, seed=0)
    lin = sum(m.weight.numel() for m in model.modules() if isinstance(m, MaskedSparseLinear))
    assert sparse_training_flops_per_token(model, CFG, 64, 0.3) == pytest.approx(dense - 6 * 0.5 * lin, rel=1e-6)

def test_errors():
    with pytest.raises(ValueError, match="density must lie"): random_mask((3, 3), 1.5)
    with pytest.raises(ValueError, match="mask shape"): MaskedSparseLinear(4, 3, mask=torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="no Linear layers matched"): sparsify(nn.Sequential(nn.ReLU()), 0.5)
