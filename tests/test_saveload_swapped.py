"""Models whose encoder Linears were swapped by a Part II layer save and load: the same layers, state and logits come
back from `from_pretrained`, `load_for_finetuning` takes the folder, and a linears.json can only name registered
mosaiclab layer types."""
import json, sys
import pytest
import torch
from torch import nn
from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM, save_pretrained, from_pretrained, known_layer_types
from mosaiclab.finetune import load_for_finetuning
from mosaiclab.parameterisation.linears import replace_linears
from mosaiclab.parameterisation.sltrain import SparsePlusLowRankLinear, sltrain_mlm
from mosaiclab.parameterisation.lowrank import LowRankLinear, ReLoRALinear, lowrank_mlm, relora_mlm
from mosaiclab.parameterisation.pela import compress
from mosaiclab.parameterisation.spdf import MaskedSparseLinear, sparsify, release_masks
from mosaiclab.parameterisation.bone import BoneLinear, LoRALinear, add_adapters
from mosaiclab.parameterisation.ofq import QuantLinear

CFG = MosaicBertConfig.lab().replace(d_model=32, n_layers=2, n_heads=2, d_ff=64, vocab_size=128)
LAYER_NAMES = ("SparsePlusLowRankLinear", "LowRankLinear", "ReLoRALinear", "MaskedSparseLinear", "BoneLinear", "LoRALinear",
               "QuantLinear")

def _plain(): return MosaicBertForMaskedLM(CFG)
def _sparse(release=False):
    m = _plain(); sparsify(m, 0.5, seed=0)
    if release: release_masks(m)
    return m
def _with(make):
    m = _plain(); replace_linears(m, make); return m
def _adapted(make):
    m = _plain(); add_adapters(m, make); return m

# each layer through its own chapter's helper: (build, the class every encoder Linear becomes)
BUILDERS = {
    "sltrain": (lambda: sltrain_mlm(CFG, rank=4, density=0.1), SparsePlusLowRankLinear),
    "lowrank": (lambda: lowrank_mlm(CFG, 4), LowRankLinear),
    "pela-svd": (lambda: compress(_plain(), ratio=2.0), LowRankLinear),           # alpha None: scale 1
    "relora": (lambda: relora_mlm(CFG, 4), ReLoRALinear),
    "spdf": (lambda: _sparse(), MaskedSparseLinear),
    "spdf-released": (lambda: _sparse(release=True), MaskedSparseLinear),
    "bone-bat": (lambda: _adapted(lambda n, lin: BoneLinear(lin, 8, "bat")), BoneLinear),
    "bone": (lambda: _adapted(lambda n, lin: BoneLinear(lin, 8, "bone")), BoneLinear),
    "lora": (lambda: _adapted(lambda n, lin: LoRALinear(lin, 4)), LoRALinear),
    "quant-statsq": (lambda: _with(lambda n, lin: QuantLinear.from_linear(lin, 2, "statsq")), QuantLinear),
    "quant-lsq": (lambda: _with(lambda n, lin: QuantLinear.from_linear(lin, 2, "lsq")), QuantLinear),
}

def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, CFG.vocab_size, (3, 12), generator=g)
    mask = torch.ones_like(ids); mask[1, 8:] = 0; mask[2, 5:] = 0
    labels = torch.where((torch.rand(ids.shape, generator=g) < 0.3) & mask.bool(), ids, torch.full_like(ids, -100))
    labels[0, 1] = ids[0, 1]
    return ids, mask, labels

def trained(kind: str):
    "The swapped model after one AdamW step (so no value is at its initialisation), in eval mode, and its swapped paths."
    build, cls = BUILDERS[kind]
    torch.manual_seed(0)
    model = build()
    paths = [n for n, m in model.named_modules() if type(m) is cls]
    assert len(paths) == 4 * CFG.n_layers
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids, mask, labels = _batch()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(ids, mask, labels=labels).loss.backward(); opt.step()
    after = model.state_dict()
    for p in paths:   # every swapped layer moved away from its initial values
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(p + ".")), p
    return model.eval(), paths, cls

def assert_same_state(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a: assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k

@pytest.mark.parametrize("kind", list(BUILDERS))
def test_round_trip_restores_layers_state_and_logits(kind, tmp_path):
    model, paths, cls = trained(kind)
    save_pretrained(model, tmp_path)
    entries = json.loads((tmp_path / "linears.json").read_text())
    assert list(entries) == paths
    assert all(e["type"] == cls.__name__ and e["module"] == cls.__module__ for e in entries.values())
    back = from_pretrained(tmp_path).eval()
    assert [n for n, m in back.named_modules() if type(m) is cls] == paths
    assert all(back.get_submodule(p).spec() == model.get_submodule(p).spec() for p in paths)
    assert_same_state(model.state_dict(), back.state_dict())
    # what the layer itself freezes (a frozen base) is frozen again; the rest of the model's flags are training choices
    frozen = lambda m: sorted(n for n, p in m.named_parameters() if not p.requires_grad and n.startswith(tuple(paths)))
    assert frozen(back) == frozen(model)
    ids, mask, _ = _batch()
    with torch.no_grad(): assert torch.equal(back(ids, mask).logits, model(ids, mask).logits)

@pytest.mark.parametrize("kind", list(BUILDERS))
def test_load_for_finetuning_keeps_the_swapped_encoder(kind, tmp_path):
    model, paths, cls = trained(kind)
    run = tmp_path / "run"
    save_pretrained(model, run / "model")
    (run / "config.json").write_text(json.dumps({"data": {"tokenizer": "lab-wordpiece-8192"}}))
    ids, mask, _ = _batch()
    with torch.no_grad(): want = model.bert(ids, mask).last_hidden_state
    enc_state = {k: v for k, v in model.bert.state_dict().items()}
    for src in (run / "model", run, model):   # a model folder, a pretraining run folder, the model in memory
        clf, _ = load_for_finetuning(src, "sst2")
        clf.eval()
        enc = [n for n, m in clf.bert.named_modules() if type(m) is cls]
        assert enc == [p.removeprefix("bert.") for p in paths], src
        got = {k: v for k, v in clf.bert.state_dict().items() if not k.startswith("pooler.")}
        assert_same_state(enc_state, got)
        with torch.no_grad():
            assert torch.equal(clf.bert(ids, mask).last_hidden_state, want)
            assert clf(ids, mask).logits.shape == (3, 2)
    assert clf.bert.layers[0].attn is not model.bert.layers[0].attn   # a copy: fine-tuning leaves the source alone

def test_plain_model_has_no_linears_json_and_a_stale_one_is_removed(tmp_path):
    model, _, _ = trained("lowrank")
    save_pretrained(model, tmp_path)
    assert (tmp_path / "linears.json").exists()
    save_pretrained(_plain(), tmp_path)
    assert not (tmp_path / "linears.json").exists()
    assert type(from_pretrained(tmp_path).bert.layers[0].attn.qkv) is nn.Linear

def test_replace_linears_leaves_a_reloaded_wrapper_alone(tmp_path):
    model, _, _ = trained("bone-bat")
    save_pretrained(model, tmp_path)
    back = from_pretrained(tmp_path)
    # the reloaded BoneLinear carries no replacement mark: its spec() keeps its frozen base from being swapped again
    assert replace_linears(back, lambda n, lin: LoRALinear(lin, 2)) == []

def _saved_sltrain(tmp_path):
    model, paths, _ = trained("sltrain")
    save_pretrained(model, tmp_path)
    return json.loads((tmp_path / "linears.json").read_text()), paths[0]

def _rewrite(tmp_path, entries): (tmp_path / "linears.json").write_text(json.dumps(entries))

@pytest.mark.parametrize("typ, module", [("NoSuchLinear", "mosaiclab.parameterisation.sltrain"),
                                         ("MosaicBertModel", "mosaiclab.model"),        # exists, but is no registered layer
                                         ("Linear", "mosaiclab.parameterisation.nope")])
def test_unknown_layer_type_names_the_known_ones(tmp_path, typ, module):
    entries, first = _saved_sltrain(tmp_path)
    entries[first].update(type=typ, module=module)
    _rewrite(tmp_path, entries)
    with pytest.raises(ValueError, match=f"unknown layer type '{typ}'.*Known layer types: ") as e: from_pretrained(tmp_path)
    assert all(n in str(e.value) for n in LAYER_NAMES)
    assert all(n in " ".join(known_layer_types()) for n in LAYER_NAMES)

@pytest.mark.parametrize("module", ["evil_layers", "mosaiclab_evil_layers"])
def test_a_module_outside_mosaiclab_is_refused_without_importing_it(tmp_path, monkeypatch, module):
    entries, first = _saved_sltrain(tmp_path)
    code = tmp_path / "code"; code.mkdir()
    (code / f"{module}.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n"
                                       "import torch\nclass Evil(torch.nn.Module):\n    def spec(self): return {}\n")
    monkeypatch.syspath_prepend(str(code))
    entries[first].update(type="Evil", module=module)
    _rewrite(tmp_path, entries)
    with pytest.raises(ValueError, match="outside mosaiclab: refused.*SparsePlusLowRankLinear"): from_pretrained(tmp_path)
    assert not (tmp_path / "imported").exists() and module not in sys.modules

@pytest.mark.parametrize("change, message", [
    (lambda e, p: e[p]["kwargs"].update(colour="red"), "cannot build SparsePlusLowRankLinear"),
    (lambda e, p: e.update({"bert.layers.9.attn.qkv": e.pop(p)}), "'bert.layers.9.attn.qkv' is not a module"),
    (lambda e, p: e.update({p: "SparsePlusLowRankLinear"}), "must be"),
    (lambda e, p: e[p]["kwargs"].update(rank=5), "size mismatch"),   # a wrong shape is caught by the strict load
])
def test_malformed_entries_are_clear_errors(tmp_path, change, message):
    entries, first = _saved_sltrain(tmp_path)
    change(entries, first)
    _rewrite(tmp_path, entries)
    with pytest.raises((ValueError, RuntimeError), match=message): from_pretrained(tmp_path)

class _Unregistered(nn.Linear):
    "A layer with a spec() whose class lives outside mosaiclab, as a notebook's would."
    def spec(self): return {"in_features": self.in_features, "out_features": self.out_features}

def test_an_unregistered_layer_warns_at_save(tmp_path):
    model = _with(lambda n, lin: _Unregistered(lin.in_features, lin.out_features))
    with pytest.warns(UserWarning, match="not a registered mosaiclab layer"): save_pretrained(model, tmp_path)
    assert not (tmp_path / "linears.json").exists()

def test_save_pretrained_dispatches_on_capability_not_exact_type(tmp_path):
    "A subclass of the MLM (a chapter's variant) saves and loads as the MLM; a foreign module is refused by name."
    from mosaiclab.model import MosaicBertConfig, MosaicBertForMaskedLM, save_pretrained, from_pretrained
    class Variant(MosaicBertForMaskedLM): pass
    cfg = MosaicBertConfig.lab().replace(d_model=32, n_layers=1, n_heads=2, d_ff=64, vocab_size=64)
    m = Variant(cfg)
    save_pretrained(m, tmp_path / "v")
    back = from_pretrained(tmp_path / "v")
    assert type(back) is MosaicBertForMaskedLM
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), back.state_dict().values()))
    with pytest.raises(TypeError, match="not Linear"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "x")
