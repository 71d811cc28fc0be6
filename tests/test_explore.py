"""Explorers (mosaiclab.explore): static figures have the right controls and steps that differ; live widgets build
without a browser and their controls recompute the figure with the library."""
from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
import torch

from mosaiclab import explore as ex
from mosaiclab.alibi import alibi_bias, alibi_slopes
from mosaiclab.experiment import load_results
from mosaiclab.padding import Unpadded
from mosaiclab.train import lr_multiplier

STATIC = {  # name -> (builder, dropdown entries (0: none), slider steps)
    "alibi": (ex.alibi_explorer, 4, 6),
    "masking": (ex.masking_explorer, 6, 6),
    "unpadding": (ex.unpadding_explorer, 0, 9),
    "lr": (ex.lr_explorer, 5, 7),
    "throughput": (ex.throughput_explorer, 2, 7),
}


@pytest.fixture(scope="module")
def static_figs():
    return {k: f() for k, (f, _, _) in STATIC.items()}


def _step_data(fig: go.Figure, visible: list[bool]) -> str:
    "The data of the traces a step shows, as JSON (what a reader sees change)."
    keep = [{k: v for k, v in t.to_plotly_json().items() if k in ("x", "y", "z", "text")} for t, v in zip(fig.data, visible) if v]
    return json.dumps(keep, default=str)


def _steps(fig):
    return fig.layout.sliders[0].steps


# ------------------------------------------------------------------------------------- grid_figure
def test_grid_figure_controls():
    g = ex.grid_figure({"a": {"1": [go.Scatter(y=[1])], "2": [go.Scatter(y=[2])], "3": [go.Scatter(y=[3])]},
                        "b": {"x": [go.Scatter(y=[0]), go.Scatter(y=[5])]}}, title="{menu}/{label}", active={"a": 1}, prefix="p ")
    assert [t.visible for t in g.data] == [False, True, False, False, False]
    assert g.layout.title.text == "a/2" and g.layout.sliders[0].active == 1
    buttons = g.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["a", "b"]
    vis, lay = buttons[1].args
    assert vis["visible"] == [False, False, False, True, True]
    assert [s["label"] for s in lay["sliders"][0]["steps"]] == ["x"] and lay["title.text"] == "b/x"
    assert [s.args[0]["visible"] for s in _steps(g)][2] == [False, False, True, False, False]


def test_grid_figure_single_group_and_base():
    base = go.Figure(go.Scatter(y=[0], name="ref"))
    g = ex.grid_figure({"": {"1": [go.Scatter(y=[1])], "2": [go.Scatter(y=[2])]}}, base=base, title=lambda m, l: f"step {l}")
    assert not g.layout.updatemenus
    assert g.data[0].visible is None                           # the base trace is left alone: always shown
    assert list(_steps(g)[1].args) == [{"visible": [True, False, True]}, {"title.text": "step 2"}]


@pytest.mark.parametrize("groups", [{}, {"a": {}}])
def test_grid_figure_empty(groups):
    with pytest.raises(ValueError, match="at least one slider step"): ex.grid_figure(groups)


# ----------------------------------------------------------------------------------- static explorers
@pytest.mark.parametrize("name", list(STATIC))
def test_static_controls_and_steps_differ(static_figs, name):
    fig, (_, n_menu, n_steps) = static_figs[name], STATIC[name]
    steps = _steps(fig)
    assert len(steps) == n_steps <= 12, "static explorers stay small: at most 12 slider steps"
    assert len(fig.layout.updatemenus[0].buttons) == n_menu if n_menu else not fig.layout.updatemenus
    # the first and last slider steps show different data, and so do the first and second dropdown entries
    first, last = (_step_data(fig, s.args[0]["visible"]) for s in (steps[0], steps[-1]))
    assert first != last
    if n_menu:
        b = fig.layout.updatemenus[0].buttons
        assert _step_data(fig, b[0].args[0]["visible"]) != _step_data(fig, b[1].args[0]["visible"])
        # every button brings a slider whose steps only show that entry's traces
        for button in b:
            inner = button.args[1]["sliders"][0]["steps"]
            shown = [set(i for i, v in enumerate(s["args"][0]["visible"]) if v) for s in inner]
            assert all(shown) and len({frozenset(s) for s in shown}) == len(inner)
    # exactly the traces of the initial step are visible at first
    init = steps[fig.layout.sliders[0].active].args[0]["visible"]
    assert [bool(t.visible) if t.visible is not None else True for t in fig.data] == list(init)
    assert len(fig.to_json()) < 600_000, "keep static figures light"


def test_static_figures_hover(static_figs):
    "Every trace a reader can see has hover text (the docs test hovers a point and expects a tooltip)."
    for name, fig in static_figs.items():
        assert fig.layout.hovermode is not False
        shown = [t for t in fig.data if t.hoverinfo != "skip"]
        assert shown, name


def test_alibi_explorer_titles(static_figs):
    fig = static_figs["alibi"]
    titles = [s.args[1]["title.text"] for s in _steps(fig)]
    assert "within the training length" in titles[0] and "beyond distance 128" in titles[-1]


def test_throughput_first_step_is_measured(static_figs):
    fig = static_figs["throughput"]
    abl = load_results("throughput/ablation_cpu.json")
    bars = [t for t, v in zip(fig.data, _steps(fig)[0].args[0]["visible"]) if v and t.type == "bar"][0]
    assert bars.x == pytest.approx([r["tokens_per_s"]["median"] for r in abl["rows"]][::-1])


# ------------------------------------------------------------------------------------- live widgets
def test_alibi_widget():
    w = ex.alibi_widget(n_heads=4, seq_len=64)
    assert isinstance(w.figure, go.FigureWidget) and len(w.figure.data) == 8
    y = w.figure.data[1].y
    w.controls["seq_len"].value = 1024
    assert w.figure.data[1].y != y and "beyond distance 128" in w.info.value
    w.controls["n_heads"].value = 3
    assert len(w.figure.data) == 6
    w.controls["train_len"].value = 256
    assert w.figure.layout.shapes[0].x0 == 256 and "beyond distance 256" in w.info.value


def test_masking_widget():
    w = ex.masking_widget(rate=0.15)
    z = w.figure.data[0].z
    w.controls["rate"].value = 0.7
    assert w.figure.data[0].z != z and "rate 70%" in w.info.value
    z = w.figure.data[0].z
    w.controls["index"].value = 5                      # another reproducible draw
    assert w.figure.data[0].z != z
    w.controls["mask_frac"].value = 0.95               # random_frac 0.1 is clipped to 0.05, no error
    assert "[MASK]" in w.info.value
    w.controls["text"].value = "Unbelievably, the whole word goes."
    assert w.figure.data[0].text[0][0] == "[CLS]"
    w.controls["text"].value = ""
    assert w.info.value == "type a sentence" and len(w.figure.data) == 0


def test_unpadding_widget():
    w = ex.unpadding_widget()
    z = w.figure.data[0].z
    w.controls["shortest"].value = 2
    assert w.figure.data[0].z != z
    w.controls["lengths"].value = "12, 40, 70"                  # longer than T: T grows to fit
    assert "cu_seqlens = [0, 12, 52, 122]" in w.figure.layout.title.text and "T raised to 70" in w.info.value
    w.controls["lengths"].value = "a, b"
    assert "whole numbers" in w.info.value


def test_lr_widget():
    w = ex.lr_widget(max_steps=100)
    y = w.figure.data[1].y
    w.controls["final_frac"].value = 0.5
    assert w.figure.data[1].y != y and w.figure.data[1].y[-1] == pytest.approx(0.5e-3, rel=0.02)
    w.controls["lr"].value = 1e-4
    assert max(w.figure.data[1].y) == pytest.approx(1e-4)


def test_throughput_widget():
    w = ex.throughput_widget()
    x = w.figure.data[0].x
    w.controls["padding"].value = 0.5
    assert w.figure.data[0].x != x
    for s in ("unpad", "ffn"): w.controls[s].value = False
    assert "estimate" in w.info.value                                  # two switches off together: not measured


def test_explorer_static_false_gives_widget():
    import ipywidgets as W
    assert isinstance(ex.lr_explorer(static=False), W.VBox)


# ------------------------------------------------------------------------------------ the helpers
def test_attention_reach():
    slopes = alibi_slopes(8)
    r = ex.attention_reach(slopes, 33, query=0)
    assert r.shape == (8, 33) and torch.allclose(r[:, -1], torch.ones(8, dtype=torch.float64))
    assert (r.diff(dim=-1) >= -1e-12).all()                       # a cumulative share
    w = torch.softmax(alibi_bias(torch.tensor(slopes, dtype=torch.float64), 33)[0, :, 0], -1)  # row 0 of the real bias
    assert torch.allclose(r, w.cumsum(-1).clamp(max=1))
    m = ex.attention_reach(slopes, 9)                             # middle query: two keys at each distance
    wm = torch.softmax(alibi_bias(torch.tensor(slopes, dtype=torch.float64), 9)[0, :, 4], -1)
    assert torch.allclose(m[:, 2], wm[:, 2:7].sum(-1))
    with pytest.raises(ValueError, match="query must be in"): ex.attention_reach(slopes, 4, query=4)
    with pytest.raises(ValueError, match="seq_len must be >= 1"): ex.attention_reach(slopes, 0)


def test_unpadding_summary():
    s = ex.unpadding_summary([5, 2, 8], 8)
    u = Unpadded.from_mask(torch.arange(8)[None, :] < torch.tensor([5, 2, 8])[:, None])
    assert s["cu_seqlens"] == u.cu_seqlens.tolist() == [0, 5, 7, 15] and s["tokens"] == 15 and s["max_seqlen"] == 8
    assert s["padding_fraction"] == pytest.approx(9 / 24)
    assert s["flops_saved"] >= s["padding_fraction"] * 0.5     # the encoder's share of the work shrinks with the slots
    assert ex.unpadding_summary([8, 8], 8)["flops_saved"] == pytest.approx(0)
    with pytest.raises(ValueError, match="lengths must be in"): ex.unpadding_summary([0, 3], 8)
    with pytest.raises(ValueError, match="shortest must be in"): ex.batch_lengths(4, 8, 9)
    assert ex.batch_lengths(4, 8, 3, seed=1) == ex.batch_lengths(4, 8, 3, seed=1)


def test_lr_curve_is_lr_multiplier():
    xs, ys = ex.lr_curve(200, 0.1, 0.05)
    assert ys == [lr_multiplier(s, 200, 20, 0.05) for s in xs]
    with pytest.raises(ValueError, match="max_steps must be >= 1"): ex.lr_curve(0, 0.1, 0.0)


def test_projection_and_combinations():
    abl = load_results("throughput/ablation_cpu.json")
    f0 = abl["lengths"]["batches"]["padding_fraction"]
    assert [r["projected"] for r in ex.projected_throughput(abl, f0)] == pytest.approx([r["tokens_per_s"]["median"] for r in abl["rows"]])
    p = {r["key"]: r for r in ex.projected_throughput(abl, 0.5)}
    assert p["all switches on"]["work_ratio"] == pytest.approx(1)                   # unpadded: pads cost nothing
    assert p["bert_switches()"]["work_ratio"] == pytest.approx((1 - f0) / 0.5)       # everything runs on the pads
    assert 1 < p["unpad=False"]["work_ratio"] < p["bert_switches()"]["work_ratio"]   # the masked-only head skips pads
    ratios = abl["ratios_vs_baseline"]["fp32"]
    one = ex.combination_throughput(abl, ["ffn"])
    assert one["how"] == "measured" and one["tokens_per_s"] == pytest.approx(ratios["ffn='gelu'"]["of_medians"] * one["tokens_per_s"] / one["ratio_to_all_on"])
    two = ex.combination_throughput(abl, ["ffn", "position"])
    assert two["how"].startswith("estimate")
    assert two["ratio_to_all_on"] == pytest.approx(ratios["ffn='gelu'"]["of_medians"] * ratios["position='learned'"]["of_medians"])
    with pytest.raises(ValueError, match="unknown switch"): ex.combination_throughput(abl, ["rope"])
    with pytest.raises(ValueError, match="padding must be in"): ex.combination_throughput(abl, [], padding=1.0)
