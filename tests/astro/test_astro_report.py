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
    assert names[-1] == "firing" and len([x for x in names if x.startswith("lmsweep-")]) == 12
