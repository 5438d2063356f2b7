"""The claims' experiment configurations build, have their nominal sizes, and the quick ones train."""

import pytest
import torch

from engramlab.baselines.gpt import GPT, GPTConfig
from engramlab.bdh.experiments import EXPERIMENTS, experiment_configs, flop_matched_steps, with_steps
from engramlab.bdh.flops import train_flops_per_token
from engramlab.bdh.model import BDH, BDHConfig
from engramlab.train.engine import check_train_config


def test_every_experiment_builds_configs():
    for name in EXPERIMENTS:
        for quick in (False, True):
            cfgs = experiment_configs(name, quick)
            assert cfgs and all(isinstance(c, (BDHConfig, GPTConfig)) for c, _ in cfgs.values())
            for _, t in cfgs.values():
                check_train_config(t)
    with pytest.raises(ValueError, match="unknown experiment"):
        experiment_configs("parity_1B")


@pytest.mark.parametrize("size,nominal", [("0.5M", 0.5e6), ("2M", 2e6), ("8M", 8e6)])
def test_parity_sizes(size, nominal):
    cfgs = experiment_configs(f"parity_{size}")
    b, g = cfgs["bdh"][0], cfgs["gpt"][0]
    n_bdh = 3 * b.n_neurons * b.n_embd + 2 * b.vocab_size * b.n_embd  # 3nd + 2Vd
    with torch.device("meta"):
        n_gpt = GPT(g).num_params()
    assert abs(n_bdh / nominal - 1) < 0.1 and abs(n_gpt / n_bdh - 1) < 0.1


def test_flop_matched_steps():
    b, g = experiment_configs("parity_0.5M")["bdh"][0], experiment_configs("parity_0.5M")["gpt"][0]
    s = flop_matched_steps(b, g, 100, 256)
    assert s == round(100 * train_flops_per_token(b, 256) / train_flops_per_token(g, 256)) and s > 100
    assert flop_matched_steps(b, b, 7, 256) == 7
    t = with_steps(experiment_configs("parity_0.5M")["bdh"][1], 5000)
    assert (t.steps, t.warmup_steps, t.eval_interval) == (5000, 200, 500)


def test_a_quick_configuration_trains_a_step():
    cfg, train = experiment_configs("repeated_pattern", quick=True)["bdh"]
    m = BDH(cfg)
    idx = torch.randint(0, 256, (2, train.block_size + 1))
    _, loss = m(idx[:, :-1], idx[:, 1:])
    loss.backward()
    assert torch.isfinite(loss) and m.decoder_x.grad.abs().sum() > 0
