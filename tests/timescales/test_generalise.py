"""Generalisation by retraining and the bootstrap intervals of tau_net."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engramlab.timescales.analysis import bootstrap_ci
from engramlab.timescales.curriculum import TrainConfig, list_checkpoints, train_curriculum
from engramlab.timescales.generalise import (
    GeneraliseConfig,
    censored_epochs,
    generalise_runs,
    retrain,
    single_head_copy,
)
from engramlab.timescales.model import GatedRNN, GatedRNNConfig, LeakyRNN, LeakyRNNConfig

TINY = {"n_neurons": 12, "n_heads": 6, "max_n": 6, "batch_size": 16, "steps_per_epoch": 4, "test_batches": 1}


@pytest.mark.parametrize("kind", ["leaky", "gru"])
def test_single_head_copy_reads_out_like_the_chosen_head(kind):
    torch.manual_seed(0)
    if kind == "leaky":
        model = LeakyRNN(LeakyRNNConfig(n_neurons=10, n_heads=5))
    else:
        model = GatedRNN(GatedRNNConfig(cell="gru", n_neurons=10, n_heads=5))
    x = (torch.rand(7, 9, 1) < 0.5).float()
    for head in (0, 3):
        one = single_head_copy(model, head)
        assert one.heads.n_heads == 1 and one.config.n_heads == 1 and model.heads.n_heads == 5
        torch.manual_seed(1)
        ref = model(x, heads=torch.tensor([head]))
        torch.manual_seed(1)
        got = one(x, heads=torch.tensor([0]))
        torch.testing.assert_close(got, ref)
    # a copy: training it leaves the original untouched
    one = single_head_copy(model, 2)
    with torch.no_grad():
        one.heads.weight.add_(1.0)
    assert not torch.equal(one.heads.weight[0], model.heads.weight[2])


def test_single_head_copy_rejects_a_head_out_of_range():
    model = LeakyRNN(LeakyRNNConfig(n_neurons=4, n_heads=3))
    with pytest.raises(ValueError, match="head 3 out of range: the model has 3 heads"):
        single_head_copy(model, 3)


def test_retrain_counts_epochs_to_criterion():
    tc = TrainConfig(task="parity", curriculum="single", **TINY)
    cfg = GeneraliseConfig(extra_ns=[1], epochs=3, steps_per_epoch=2, batch_size=16, test_batches=1, threshold=100.0)
    torch.manual_seed(0)
    model = LeakyRNN(LeakyRNNConfig(n_neurons=8, n_heads=1))
    w0 = model.recurrent.weight.detach().clone()
    rec = retrain(model, "parity", 3, tc, cfg, seed=0)
    assert rec["n"] == 3 and len(rec["accuracy"]) == 3
    assert not torch.equal(model.recurrent.weight, w0)  # it trained
    # above 100% is never reached: None, counted as epochs + 1
    assert rec["epochs_to_criterion"] is None and censored_epochs(rec, 3) == 4
    # any accuracy is above 0.1%: solved at the first epoch
    cfg_low = GeneraliseConfig(extra_ns=[1], epochs=2, steps_per_epoch=1, batch_size=16, test_batches=1, threshold=0.1)
    rec = retrain(LeakyRNN(LeakyRNNConfig(n_neurons=8, n_heads=1)), "parity", 3, tc, cfg_low, seed=0)
    assert rec["epochs_to_criterion"] == 1 and censored_epochs(rec, 2) == 1


def test_retrain_needs_a_single_head_model():
    tc = TrainConfig(task="parity", curriculum="multi", **TINY)
    with pytest.raises(ValueError, match="single-head model"):
        retrain(LeakyRNN(LeakyRNNConfig(n_neurons=4, n_heads=2)), "parity", 3, tc, GeneraliseConfig(), seed=0)


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"epochs": 0}, "epochs must be a positive int"),
        ({"extra_ns": []}, "extra_ns must be a non-empty list"),
        ({"extra_ns": [0, 2]}, "extra_ns must be a non-empty list"),
        ({"threshold": 120.0}, "threshold is a percentage"),
        ({"n0": 1}, "n0 must be an int >= 2"),
    ],
)
def test_generalise_config_rejects_bad_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        GeneraliseConfig(**kw)


def test_generalise_runs_starts_at_the_largest_common_n(tmp_path):
    runs = {}
    for cur in ("single", "multi"):
        cfg = TrainConfig(task="parity", curriculum=cur, max_epochs=3, threshold=40.0, seed=0, **TINY)
        train_curriculum(cfg, tmp_path / cur, progress=False)
        runs[cur] = tmp_path / cur
    common = set.intersection(*[{c[1] for c in list_checkpoints(d)} for d in runs.values()])
    cfg = GeneraliseConfig(extra_ns=[1, 2], epochs=2, steps_per_epoch=2, batch_size=16, test_batches=1, threshold=40.0)
    res = generalise_runs(runs, cfg, tmp_path / "gen.json", progress=False)
    assert res["n0"] == max(common)
    assert (tmp_path / "gen.json").is_file()
    for cur in runs:
        r = res["runs"][cur]
        assert [x["n"] for x in r["retrain"]] == [res["n0"] + 1, res["n0"] + 2]
        assert all(len(x["accuracy"]) == 2 for x in r["retrain"])
        assert r["mean_epochs"] == np.mean([censored_epochs(x, 2) for x in r["retrain"]])
        rel = [(x["accuracy"][-1] - 50) / (r["base_accuracy"] - 50) for x in r["retrain"]]
        assert r["mean_relative_final"] == pytest.approx(np.mean(rel))
    # an explicit n0 that some run did not solve: nothing retrained, and the record says why
    res = generalise_runs(runs, GeneraliseConfig(n0=max(common) + 10, epochs=1), progress=False)
    assert res["n0"] is None and "no N solved by every run" in res["note"]


def test_bootstrap_ci_of_the_mean_matches_the_normal_interval():
    rng = np.random.default_rng(3)
    v = rng.normal(5.0, 2.0, size=400)
    lo, hi = bootstrap_ci(v, n_boot=4000, seed=1)
    half = 1.96 * v.std() / math.sqrt(v.size)  # the textbook 95% interval of a mean
    assert lo < v.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert bootstrap_ci([2.5, 2.5, 2.5]) == [2.5, 2.5]
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    med = bootstrap_ci([1.0, 2.0, 3.0, 100.0], stat=np.median)
    assert 1.0 <= med[0] <= med[1] <= 100.0
    with pytest.raises(ValueError, match="level must be in"):
        bootstrap_ci([1.0], level=1.5)
