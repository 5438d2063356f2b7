"""The timescales reproduce grid: every condition of the paper, on both tasks, for every seed."""

from __future__ import annotations

import pytest

from engramlab.report.papers import timescales as T
from engramlab.timescales.curriculum import TrainConfig, build_model
from engramlab.timescales.model import GatedRNN, LeakyRNN


@pytest.mark.parametrize("mode", ["tiny", "full"])
def test_the_grid_trains_every_condition_on_both_tasks_for_every_seed(mode):
    b = T.BUDGETS[mode]
    units = T.plan(b, [0, 1, 2])
    train = {u.name: u for u in units if u.config["kind"] == "train"}
    assert len(train) == 13 * 2 * 3
    expected = {
        "single": ("single", "leaky", True, None, "default"),
        "multi": ("multi", "leaky", True, None, "default"),
        "sliding": ("sliding", "leaky", True, None, "default"),
        "single-tau1": ("single", "leaky", False, 1.0, "default"),
        "multi-tau1": ("multi", "leaky", False, 1.0, "default"),
        "single-tau2": ("single", "leaky", False, 2.0, "default"),
        "multi-tau2": ("multi", "leaky", False, 2.0, "default"),
        "single-mod": ("single", "leaky", True, None, "mod"),
        "multi-mod": ("multi", "leaky", True, None, "mod"),
        "single-gru": ("single", "gru", True, None, "default"),
        "multi-gru": ("multi", "gru", True, None, "default"),
        "single-lstm": ("single", "lstm", True, None, "default"),
        "multi-lstm": ("multi", "lstm", True, None, "default"),
    }
    for cond, (cur, model, train_tau, tau, variant) in expected.items():
        for task in ("parity", "dms"):
            for s in (0, 1, 2):
                u = train[f"train-{task}-{cond}-s{s}"]
                c = dict(u.config)
                c.pop("kind")
                cfg = TrainConfig(seed=u.seed, **c)
                assert (cfg.task, cfg.curriculum, cfg.model, cfg.train_tau, cfg.variant) == (
                    task,
                    cur,
                    model,
                    train_tau,
                    variant,
                )
                if tau is not None:
                    assert cfg.tau == tau
                net = build_model(cfg)
                assert isinstance(net, LeakyRNN if model == "leaky" else GatedRNN)
                if model == "leaky" and not train_tau:
                    assert net.taus.tolist() == [tau] and not net.taus.requires_grad
    # generalisation and analysis units depend on the single- and multi-head trainings of their task and seed
    for u in units:
        if u.config["kind"] in ("generalise", "analysis"):
            task, seed = u.config["task"], u.seed
            assert set(u.deps) == {f"timescales/train-{task}-{c}-s{seed}" for c in ("single", "multi")}
    kinds = [u.config["kind"] for u in units]
    assert kinds == sorted(kinds, key=["train", "generalise", "analysis"].index)  # trainings first


def test_the_full_budget_fits_the_issue_cap_per_condition_group():
    b = T.BUDGETS["full"]
    assert b["analysis"]["ac_steps"] * b["analysis"]["ac_trials"] >= 10**5 and b["analysis"]["fit_neurons"] is None
    per_net = 60 * max(b["budget_minutes"].values())
    for group, conds in T.GROUPS.items():
        assert per_net * len(conds) * 2 * 3 <= 60 * 60, group  # <= 60 min per condition group, 3 seeds
    assert set().union(*T.GROUPS.values()) == set(T.CONDITIONS)
