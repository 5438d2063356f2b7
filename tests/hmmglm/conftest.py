"""Fixtures shared by the HMM-GLM fit tests."""

import pytest
import torch

from engramlab.hmmglm.models import HMMGLM


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread avoids thread-pool stalls on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _planted_counts(weight_seed: int) -> torch.Tensor:
    """Counts of 4 trials x 300 bins from a planted 2-state, 5-neuron HMM-GLM (sticky transitions,
    about 35% of the weights +-1.5); ``weight_seed`` draws the weights."""
    g = torch.Generator().manual_seed(weight_seed)
    S, N = 2, 5
    true = HMMGLM(S, N)
    W = 1.5 * torch.sign(torch.randn(S, N, N, generator=g)) * (torch.rand(S, N, N, generator=g) < 0.35)
    with torch.no_grad():
        true.weight.copy_(W)
        true.bias.fill_(-0.5)
        true.log_transition.copy_(torch.tensor([[0.97, 0.03], [0.03, 0.97]], dtype=torch.float64).log())
    x, _ = true.sample(300, n_trials=4, seed=1)
    return x


@pytest.fixture(scope="module")
def planted_counts():
    """``planted_counts(weight_seed)``: the counts above (a module's ``planted`` fixture picks the seed)."""
    return _planted_counts
