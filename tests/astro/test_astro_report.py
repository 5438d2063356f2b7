"""The astro table's own pieces: the leaky-RNN baseline reading tokens, and the learning-rate sweep's pick."""

import pytest
import torch
import torch.nn.functional as F

from engramlab.report.papers.astro import choose_lr, leaky_rnn_builder


def test_leaky_rnn_baseline_is_the_timescales_recurrence_on_embedded_tokens():
    torch.manual_seed(0)
    m = leaky_rnn_builder(12, 30, 3000).double()
    n = sum(p.numel() for p in m.parameters())
    assert abs(n - 3000) < 0.05 * 3000
    idx = torch.randint(0, 12, (2, 7))
    logits, loss = m(idx, idx)
    # written out: r(t) = leakyrelu((1 - 1/tau) r(t-1) + (1/tau) (W r(t-1) + e(x_t) + b)), r(0) = 0
    w = m.rnn.recurrent.weight * (1 - torch.eye(w_n := m.rnn.config.n_neurons, dtype=torch.float64))
    s = 1 / torch.clamp(m.rnn.taus, min=1.0)
    r = torch.zeros(2, w_n, dtype=torch.float64)
    for t in range(7):
        z = (1 - s) * r + s * (r @ w.T + m.embed.weight[idx[:, t]] + m.rnn.recurrent.bias)
        r = F.leaky_relu(z, 0.01)
        assert torch.allclose(logits[:, t], m.head(r), atol=1e-10)
    assert torch.isclose(loss, F.cross_entropy(logits.reshape(-1, 12), idx.reshape(-1)))
    loss.backward()
    assert m.rnn.taus.grad is not None  # the per-neuron timescales are trained


def test_choose_lr_takes_the_best_mean_and_the_smaller_on_ties():
    def r(lr, acc):
        return {"accuracy": {"gpt": acc}, "lr": {"gpt": lr}}

    assert choose_lr([r(1e-3, [0.2, 0.4]), r(3e-3, [0.5, 0.5]), r(1e-2, [0.9, 0.0])], "gpt") == 3e-3
    assert choose_lr([r(1e-2, [0.5]), r(1e-3, [0.5])], "gpt") == 1e-3
    with pytest.raises(KeyError):
        choose_lr([r(1e-3, [0.5])], "lstm")


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_language_models_are_matched_in_parameters(mode):
    from engramlab.report.papers.astro import BUDGETS, LM_MODELS, lm_model
    from engramlab.train.registry import get_model_spec
    from engramlab.train.run import build_configs

    def n(kind):
        name, sets = lm_model(BUDGETS[mode]["lm"], kind)
        cfg, _ = build_configs(name, "small", {k: str(v) for k, v in sets.items()})
        return get_model_spec(name).model_cls(cfg).num_params()

    counts = {k: n(k) for k in LM_MODELS}
    assert all(abs(c - counts["astro"]) <= 0.03 * counts["astro"] for c in counts.values()), counts


def test_language_sweep_takes_the_lowest_bits_per_byte_and_the_smaller_rate_on_ties():
    from engramlab.report.papers.astro import choose_lm_lr

    runs = [{"lr": 1e-3, "val_bpb": 3.1}, {"lr": 3e-3, "val_bpb": 2.9}, {"lr": 1e-2, "val_bpb": 3.0}]
    assert choose_lm_lr(runs) == 3e-3
    assert choose_lm_lr([{"lr": 1e-2, "val_bpb": 2.0}, {"lr": 3e-3, "val_bpb": 2.0}]) == 3e-3


def test_language_and_efficiency_units_are_planned_seed_by_seed():
    from engramlab.report.papers.astro import BUDGETS, plan

    keep = ("efficiency", "firing")
    names = [u.name for u in plan(BUDGETS["full"], [0, 1, 2]) if u.name.startswith("lm") or u.name in keep]
    first = names.index("lm-astro-s0")
    assert names[first : first + 5] == ["lm-astro-s0", "lm-lif-s0", "lm-gpt-s0", "lm-lstm-s0", "efficiency"]
    # the sweep: 4 models x the 4 rates 1e-3, 3e-3, 1e-2, 3e-2
    sweep = sorted(x for x in names if x.startswith("lmsweep-"))
    assert names[-10] == "firing" and len(sweep) == 16
    assert {x.rsplit("-lr", 1)[1] for x in sweep} == {"0.001", "0.003", "0.01", "0.03"}
    # then the FLOPs-matched baselines, the LIF ablation's seeds first
    assert names[-9:] == [f"lmflops-{k}-s{s}" for k in ("lif", "gpt", "lstm") for s in (0, 1, 2)]


def test_flops_matched_steps_spend_the_reference_flops():
    from engramlab.report.papers.astro import flops_matched_steps

    # docs/astro.md's counts: 750 steps x 670,336 / 532,608 = 943.94; / 663,936 = 757.23; / 590,208 = 851.81
    assert flops_matched_steps(750, 670_336, 532_608) == 944
    assert flops_matched_steps(750, 670_336, 663_936) == 757
    assert flops_matched_steps(750, 670_336, 590_208) == 852
    assert flops_matched_steps(10, 5.0, 5.0) == 10 and flops_matched_steps(1, 1.0, 100.0) == 1
    with pytest.raises(ValueError, match="FLOPs per byte must be positive"):
        flops_matched_steps(750, 670_336, 0)


@pytest.mark.parametrize("mode", ["tiny", "full"])
def test_flops_matched_units_are_the_params_matched_models_at_their_swept_rate(mode):
    from engramlab.report.papers.astro import BUDGETS, plan

    units = {u.name: u for u in plan(BUDGETS[mode], [0, 1, 2])}
    astro = units["lm-astro-s0"].config
    for k in ("lif", "gpt", "lstm"):
        for s in (0, 1, 2):
            f, p = units[f"lmflops-{k}-s{s}"], units[f"lm-{k}-s{s}"]
            assert f.seed == p.seed == s and f.deps == p.deps
            for key in ("name", "model", "sched", "steps", "sweep"):
                assert f.config[key] == p.config[key], (k, key)
            assert f.config["flops_match"] == {"name": astro["name"], "model": astro["model"]}
    assert not any("flops_match" in u.config for n, u in units.items() if not n.startswith("lmflops-"))


def test_flops_matched_unit_trains_for_the_reference_training_flops(tmp_path):
    from engramlab import io
    from engramlab.astro.efficiency import training_flops_per_byte
    from engramlab.report.papers.astro import BUDGETS, lm_model, plan, run_unit
    from engramlab.report.units import RunContext
    from engramlab.train.registry import get_model_spec
    from engramlab.train.run import build_configs

    lm = BUDGETS["tiny"]["lm"]
    units = {u.name: u for u in plan(BUDGETS["tiny"], [0])}
    unit = units["lmflops-lif-s0"]
    folder = tmp_path / "astro" / unit.name
    folder.mkdir(parents=True)
    for i, n in enumerate(unit.config["sweep"]):  # planted sweep results: the pick is the last rate
        (tmp_path / "astro" / n).mkdir()
        io.write_json(tmp_path / "astro" / n / "result.json", {"lr": lm["lrs"][i], "val_bpb": 3.0 - i})

    def fpb(kind):
        name, sets = lm_model(lm, kind)
        cfg, _ = build_configs(name, "small", {k: str(v) for k, v in {**sets, **lm["sched"]}.items()})
        return training_flops_per_byte(get_model_spec(name).model_cls(cfg), lm["sched"]["block_size"])

    run_unit(unit, folder, RunContext(device="cpu", progress=False))
    r = io.read_json(folder / "result.json")
    want = round(lm["steps"] * fpb("astro") / fpb("lif"))
    assert want != lm["steps"]  # the tiny LIF ablation is cheaper per byte: more steps
    assert r["steps"] == want and r["lr"] == lm["lrs"][-1]
    assert r["tokens"] == want * lm["sched"]["batch_size"] * lm["sched"]["block_size"]
    assert r["ref_train_flops"] == fpb("astro") * lm["steps"] * lm["sched"]["batch_size"] * lm["sched"]["block_size"]
