"""The finiteness checks of LIF and AM-SU run where a user hands them a tensor, not inside AstroSNN's
layers on every training step (each check is a full pass and a host sync)."""

import pytest
import torch

import engramlab.astro.amsu as amsu_mod
import engramlab.astro.neurons as neurons_mod
from engramlab.astro.amsu import AMSU
from engramlab.astro.model import AstroConfig, AstroSNN
from engramlab.astro.neurons import LIF


@pytest.fixture
def finite_checks(monkeypatch):
    calls = []
    original = neurons_mod.check_finite

    def counted(x, name):
        calls.append(name)
        return original(x, name)

    monkeypatch.setattr(neurons_mod, "check_finite", counted)
    monkeypatch.setattr(amsu_mod, "check_finite", counted)
    return calls


def test_astrosnn_training_step_runs_no_finiteness_check(finite_checks):
    torch.manual_seed(0)
    m = AstroSNN(AstroConfig(vocab_size=16, n_layer=3, d_model=16, n_neurons=16, n_astrocytes=4, d_key=4, chunk_size=8))
    idx = torch.randint(0, 16, (2, 9))
    _, loss = m(idx, idx)
    loss.backward()
    assert finite_checks == []  # 3 layers x (AM-SU input, its LIF, the feed-forward LIF): none
    with pytest.raises(ValueError, match="token id 16"):
        m(torch.tensor([[1, 16]]))  # the model's own input is still checked


def test_direct_calls_still_check_once_each(finite_checks):
    amsu = AMSU(4, 8, n_astrocytes=2, d_key=2)
    x = torch.randn(1, 5, 4)
    amsu(x)
    assert finite_checks == ["AM-SU input"]  # and not again for the LIF inside
    x[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="AM-SU input holds a non-finite value"):
        amsu(x)
    lif = LIF(3)
    lif(torch.randn(4, 2, 3), torch.randn(4, 2, 3))
    assert finite_checks[-2:] == ["LIF input current", "LIF modulation"]
    with pytest.raises(ValueError, match="LIF modulation holds a non-finite value"):
        lif(torch.randn(4, 2, 3), torch.full((4, 2, 3), float("inf")))
