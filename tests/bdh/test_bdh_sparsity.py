"""The sparsity sweep (paper §4.1): pooled density counts, the power-law extrapolation, and the unit's
density trajectory against an independent recount on its final checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engramlab.bdh.inspect import density_overall, power_law_extrapolate, trace_density
from engramlab.data.text import load_corpus
from engramlab.report import papers
from engramlab.report.units import RunContext, execute_unit, unit_dir
from engramlab.train.checkpoint import load_checkpoint


def test_density_pooled_over_layers_by_hand():
    # layer 0 (B=1, H=1, T=2, N=4): x max 8 -> 1% threshold 0.08
    x0 = torch.tensor([[[[8.0, 0.05, 0.0, 0.1], [0.0, 0.0, 0.0, 0.0]]]])  # non-zero 3, above 2 (8, 0.1)
    y0 = torch.tensor([[[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])  # non-zero 1, above 1
    # layer 1: x max 0.5 -> threshold 0.005; y all zero
    x1 = torch.tensor([[[[0.5, 0.004, 0.006, 0.0], [0.2, 0.0, 0.0, 0.0]]]])  # non-zero 4, above 3
    y1 = torch.zeros(1, 1, 2, 4)
    tr = [{"x": x0, "y": y0}, {"x": x1, "y": y1}]
    d = density_overall(tr)
    assert d["x"] == pytest.approx(7 / 16) and d["x_above"] == pytest.approx(5 / 16)
    assert d["y"] == pytest.approx(1 / 16) and d["y_above"] == pytest.approx(1 / 16)
    # equal layer sizes: the pooled value is the mean of trace_density's per-layer values
    per = trace_density(tr)
    assert d["x_above"] == pytest.approx(np.mean(per["x_above"]))
    with pytest.raises(ValueError, match="at least one layer"):
        density_overall([])


def test_power_law_extrapolation_recovers_a_planted_law():
    # density halves per doubling: 0.4, 0.2, 0.1 at 8, 16, 32 -> 0.025 at 128
    fit = power_law_extrapolate([8, 16, 32], [0.4, 0.2, 0.1], 128)
    assert fit["slope"] == pytest.approx(-1.0) and fit["per_doubling"] == pytest.approx(0.5)
    assert fit["value"] == pytest.approx(0.025) and fit["residual_rms"] == pytest.approx(0.0, abs=1e-12)
    # a flat law stays flat; noise about a line gives the least-squares slope (by hand: 3 points)
    assert power_law_extrapolate([8, 16], [0.3, 0.3], 128)["value"] == pytest.approx(0.3)
    fit = power_law_extrapolate([1, 2, 4], [1.0, 4.0, 4.0], 8)  # log2 y = 0, 2, 2 at log2 x = 0, 1, 2
    assert fit["slope"] == pytest.approx(1.0) and fit["value"] == pytest.approx(2 ** (1 / 3 + 3))  # intercept 4/3 - 1
    with pytest.raises(ValueError, match="positive"):
        power_law_extrapolate([8, 16], [0.1, 0.0], 128)
    with pytest.raises(ValueError, match="distinct"):
        power_law_extrapolate([8, 8], [0.1, 0.2], 128)


def test_sparsity_unit_records_the_density_of_the_model_it_trained(tmp_path):
    mod = papers.get("bdh")
    b = mod.BUDGETS["tiny"]
    unit = next(u for u in mod.plan(b, [0], {}) if u.name == "sparsity-m16-s0")
    execute_unit(unit, str(tmp_path), RunContext(threads=1))
    folder = unit_dir(tmp_path, unit)
    res = json.loads((folder / "sparsity.json").read_text())
    sp = b["sparsity"]
    every = sp["sched"]["eval_interval"]
    assert [p["step"] for p in res["points"]] == list(range(0, sp["steps"] + 1, every))
    assert res["multiplier"] == 16 and res["n_neurons"] == 16 * sp["model"]["model.n_embd"]
    # recount the last point on the saved final model, on the same first validation windows
    model = load_checkpoint(folder / "run")[0].float().eval()
    T, nw = res["block_size"], res["windows"]
    val = np.asarray(load_corpus(b["data"]).val, dtype=np.int64)
    with torch.no_grad():
        _, trace = model.forward_trace(torch.from_numpy(val[: nw * T].reshape(nw, T)))
    acts = {k: torch.cat([layer[k].flatten() for layer in trace]) for k in ("x", "y")}
    last = res["points"][-1]["overall"]
    for k, a in acts.items():
        assert last[k] == pytest.approx(float((a != 0).double().mean()))
        assert 0 < last[k] < 1
    assert res["points"][-1]["layers"]["x"] == pytest.approx([float((t["x"] != 0).double().mean()) for t in trace])
