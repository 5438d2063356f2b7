"""Spiking evaluation (paper §2.5): unbiased spikes of matching rates, seeded, off by default."""

import math

import pytest
import torch

from engramlab.bdh.model import BDH, BDHConfig
from engramlab.bdh.spiking import BernoulliSpikes, spiking, spiking_eval_loss


def model(seed=0):
    torch.manual_seed(seed)
    return BDH(BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)).double().eval()


def test_spikes_are_unbiased_with_the_variance_of_a_bernoulli():
    a = torch.tensor([0.0, 0.01, 0.3, 0.5, 1.2, 2.0], dtype=torch.float64)  # s = 2.0
    K = 20000
    spk = BernoulliSpikes(torch.Generator().manual_seed(0))
    draws = torch.stack([spk(a) for _ in range(K)])
    assert set(draws.unique().tolist()) <= {0.0, 2.0}  # a spike carries the scale
    assert (draws[:, 0] == 0).all() and (draws[:, -1] == 2.0).all()  # rate 0 and rate 1
    sd = torch.sqrt(a * (2.0 - a) / K)  # standard error of the mean of s * Bernoulli(a / s)
    assert ((draws.mean(0) - a).abs() <= 5 * sd + 1e-12).all()
    # the sample variance matches a (s - a) too (Bernoulli: 4th moment bounded, 5 sigma of its estimate)
    var = draws.var(0)
    assert ((var - a * (2.0 - a)).abs() <= 5 * 2.0**2 / math.sqrt(K) + 1e-12).all()
    with pytest.raises(ValueError, match="non-negative"):
        spk(torch.tensor([-1.0, 1.0]))


def test_layer_activations_in_the_model_average_to_the_dense_ones():
    m = model()
    idx = torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, dense = m.forward_trace(idx)
        x0 = dense[0]["x"]
        acc = torch.zeros_like(x0)
        K = 300
        for s in range(K):
            with spiking(m, s):
                _, tr = m.forward_trace(idx)
            acc += tr[0]["x"]  # layer 0's x is spiked from the deterministic dense x
    scale = x0.max()
    sd = torch.sqrt(x0 * (scale - x0) / K)
    assert ((acc / K - x0).abs() <= 5 * sd + 1e-12).all()
    assert (tr[0]["x"] > 0).float().mean() < (x0 > 0).float().mean()  # spikes are sparser than rates


def test_off_by_default_and_restored_after_the_block():
    m = model()
    assert m.spike_sampler is None
    idx = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = m(idx)[0], m(idx)[0]
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        with spiking(m, 3) as sampler:
            c = m(idx)[0]
        assert sampler.calls == 2 * 2  # x and y in each of the 2 layers
        assert m.spike_sampler is None
        torch.testing.assert_close(m(idx)[0], a, rtol=0, atol=0)
    assert (c - a).abs().max() > 1e-6


def test_spiking_eval_loss_is_seeded_and_reports_the_gap():
    m = model()
    data = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(2))
    r1 = spiking_eval_loss(m, data, seeds=[0, 1])
    r2 = spiking_eval_loss(m, data, seeds=[0, 1])
    assert r1 == r2
    with torch.no_grad():
        dense = float(m(data[:, :-1], data[:, 1:])[1])
    assert r1["dense_loss"] == pytest.approx(dense, rel=1e-12)
    assert r1["gap"] == pytest.approx(sum(r1["spiking_loss"]) / 2 - dense)
    assert r1["spiking_loss"][0] != r1["spiking_loss"][1]
    assert 0 < r1["spike_rate"][0] < 1
    with pytest.raises(ValueError, match="T >= 2"):
        spiking_eval_loss(m, torch.zeros(1, 1, dtype=torch.long))
