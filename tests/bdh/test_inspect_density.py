"""Density, firing rates, the neuron browser, the repetition experiment and the inspect command."""

import json
import re

import numpy as np
import pytest
import torch

from engramlab.bdh.inspect import (
    choose_neurons,
    density,
    firing_rates,
    flat_neurons,
    neuron_browser_html,
    repetition_density,
    top_contexts,
    trace_density,
)
from engramlab.bdh.model import BDH, BDHConfig
from engramlab.cli import main
from engramlab.train.checkpoint import save_model_folder


def _known():
    # (B=1, H=2, T=3, N=4): head 0 has 3 non-zeros of 12, head 1 has 6 of 12
    a = torch.zeros(1, 2, 3, 4)
    a[0, 0, 0, 1] = 0.5
    a[0, 0, 2, 1] = 2.0
    a[0, 0, 1, 3] = 1.0
    a[0, 1, :, 0] = 1.0
    a[0, 1, 0, 2:] = 3.0
    a[0, 1, 2, 3] = 1.0
    return a


def test_density_of_a_known_tensor():
    a = _known()
    assert float(density(a)) == pytest.approx(9 / 24)
    np.testing.assert_allclose(density(a, dim=(0, 2, 3)).numpy(), [3 / 12, 6 / 12])
    tr = trace_density([{"x": a, "y": a * (a > 1)}])
    assert tr["x"] == [pytest.approx(9 / 24)]
    assert tr["y"] == [pytest.approx(3 / 24)]  # entries > 1: 2.0 (head 0), 3.0 and 3.0 (head 1)
    assert tr["x_per_head"][0] == pytest.approx([0.25, 0.5])
    # neuron h*N + k: head 0 neuron 1 fires at 2 of 3 positions, head 1 neuron 0 at all 3
    rates = firing_rates(a)
    assert rates[1] == pytest.approx(2 / 3) and rates[4] == pytest.approx(1.0) and rates[0] == 0
    flat = flat_neurons(a)
    assert flat.shape == (3, 8) and flat[2, 1] == 2.0 and flat[0, 6] == 3.0


def test_top_contexts_and_self_contained_html():
    tokens = np.frombuffer(b"the cat sat on the mat\n<&>", dtype=np.uint8)
    act = np.zeros(len(tokens))
    act[4] = 3.0  # 'c'
    act[19] = 1.0  # 'm'
    act[24] = 0.5  # '<'
    ctx = top_contexts(tokens, act, k=5, before=4, after=2)
    assert [c["pos"] for c in ctx] == [4, 19, 24]  # silent positions are not listed
    assert "".join(ch for ch, _ in ctx[0]["window"]) == "the cat"
    assert ctx[0]["window"][ctx[0]["center"]] == ["c", 3.0]
    page = neuron_browser_html(
        [{"name": "L0-h0-n1", "layer": 0, "head": 0, "index": 1, "firing_rate": 0.1, "contexts": ctx}]
    )
    assert ">&lt;</span>" in page and ">&amp;</span>" in page and "<&>" not in page  # escaped
    assert not re.search(r"<script|<link|src=|https?://", page)  # nothing external, no scripts
    assert page.startswith("<!DOCTYPE html>")


def test_choose_neurons_prefers_selective_strong_neurons():
    act = torch.zeros(100, 4)
    act[:, 0] = 1.0  # always on: excluded (rate 1)
    act[3, 1] = 5.0  # rare and strong
    act[:10, 2] = 2.0  # 10%
    assert choose_neurons(act, 3) == [1, 2]


def _tiny(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)
    cfg.update(kw)
    return BDH(BDHConfig(**cfg)).eval()


def test_repetition_density_shapes_and_consistency():
    model = _tiny()
    pat = b"abcdefghij" * 2
    rep = repetition_density(model, pat, repeats=3)
    assert len(rep["x"]) == 2 and len(rep["x"][0]) == 3 and len(rep["loss"]) == 3
    with torch.no_grad():
        _, trace = model.forward_trace(torch.tensor([list(pat * 3)]))
    np.testing.assert_allclose(np.mean(rep["x"][1]), float(density(trace[1]["x"])), rtol=1e-6)
    with pytest.raises(ValueError, match="repeats"):
        repetition_density(model, pat, repeats=1)


def test_inspect_command_end_to_end(tmp_path, capsys):
    model = _tiny(pos="rope+alibi")
    save_model_folder(tmp_path / "run", model, "bdh")
    text = tmp_path / "t.txt"
    text.write_bytes(b"To be, or not to be, that is the question.\n" * 6)
    rc = main(
        [
            "bdh",
            "inspect",
            str(tmp_path / "run"),
            "--text",
            str(text),
            "--out",
            str(tmp_path / "o"),
            "--neuron",
            "1:1:3",
            "--synapse",
            "1:0:5",
            "--repeat-period",
            "16",
            "--repeats",
            "2",
            "--edges-per-neuron",
            "3",
            "--no-progress",
        ]
    )
    assert rc == 0
    files = {p.name for p in (tmp_path / "o").iterdir()}
    assert {
        "inspect.json",
        "neurons.html",
        "density.png",
        "degree_ccdf.png",
        "modularity.png",
        "repetition.png",
        "synapses.png",
    } <= files
    res = json.loads((tmp_path / "o" / "inspect.json").read_text())
    assert 0 < res["density"]["x"][0] <= 1 and len(res["density"]["x_per_head"][1]) == 2
    assert len(res["graphs"]["G_x"]) == 2 and res["graphs"]["G_x"][0]["n_edges"] == 3 * 32
    assert res["top_synapses_within_head"][0]["layer"] == 1
    assert any(n["name"] == "L1-h1-n3" for n in res["neuron_browser"])
    assert any((t["pre"], t["post"]) == (0, 5) for t in res["synapse_trajectories"])
    assert json.loads(capsys.readouterr().out)["out"] == str(tmp_path / "o")
    # a user error is one clear message, before any work
    rc = main(
        [
            "bdh",
            "inspect",
            str(tmp_path / "run"),
            "--text",
            str(tmp_path / "missing.txt"),
            "--out",
            str(tmp_path / "o2"),
        ]
    )
    assert rc == 2 and "text file not found" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_density_counts_exact_zeros_and_entries_above_one_percent_of_the_layer_max():
    # one layer (B=1, H=2, T=2, N=5); max = 10, so the 1% threshold is 0.1 (strictly above)
    a = torch.zeros(1, 2, 2, 5)
    a[0, 0, 0] = torch.tensor([10.0, 0.05, 0.08, 0.2, 0.0])  # above: 10, 0.2 | non-zero: 4
    a[0, 0, 1] = torch.tensor([0.0, 0.0, 1e-6, 0.0, 0.0])  # above: none | non-zero: 1
    a[0, 1, 0] = torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0])  # above: 2 | non-zero: 2
    a[0, 1, 1] = torch.tensor([0.09, 0.0, 0.0, 0.0, 3.0])  # above: 3.0 | non-zero: 2
    assert float(density(a)) == pytest.approx(9 / 20)
    assert float(density(a, rel_threshold=0.01)) == pytest.approx(5 / 20)
    np.testing.assert_allclose(density(a, dim=(0, 2, 3), rel_threshold=0.01).numpy(), [2 / 10, 3 / 10])
    # a second layer 100x smaller has the same relative count: the threshold is each layer's own max
    tr = trace_density([{"x": a, "y": a * (a >= 0.5)}, {"x": a / 100, "y": a / 100}])
    assert tr["x"] == [pytest.approx(9 / 20)] * 2
    assert tr["x_above"] == [pytest.approx(5 / 20)] * 2
    assert tr["x_above_per_head"][0] == pytest.approx([0.2, 0.3])
    assert tr["y"][0] == pytest.approx(4 / 20) and tr["y_above"][0] == pytest.approx(4 / 20)
    assert tr["rel_threshold"] == 0.01
    with pytest.raises(ValueError, match="rel_threshold"):
        density(a, rel_threshold=1.5)
