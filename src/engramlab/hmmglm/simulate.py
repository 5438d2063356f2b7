"""The synthetic protocol of the public demo (notes Sec. 3.1), draw for draw.

S = 5 states, N = 20 neurons, T = 2000 bins per trial, 50 trials (first 30 train, last 20 test):

* a_0 per pair ~ Dirichlet(2 [sparsity (1 - p_exc), 1 - sparsity, sparsity p_exc]) over (inh, none, exc),
  sparsity 1/5, p_exc 1/2;
* per-state types: a Gumbel-softmax sample (tau 0.2) from a_0, then hard argmax;
* strengths softplus(log 3U) = log(1 + 3U), U ~ U(0, 1); bias 0.1 (U - 0.5);
* sigmoid link capped at 1, Poisson counts, sticky transitions (0.98 / 0.005), exp basis of 5 bins.

The torch random calls are made in the same order as the demo notebook (seed 0), so the data set is
the one the reference numbers were measured on. That includes the demo's sampler quirk: its first
state is overwritten by a draw from row 0 of the transition matrix (``demo_quirk=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.distributions.dirichlet import Dirichlet

from .basis import exp_basis
from .models import OneHotHMMGLM


@dataclass
class SyntheticData:
    spikes: torch.Tensor  # (trials, T, N) counts, float32
    states: torch.Tensor  # (trials, T) long
    rates: torch.Tensor  # (trials, T, N) firing rates used for the draws
    weights: torch.Tensor  # (S, N_post, N_pre) true effective weights
    types: torch.Tensor  # (S, N, N) true per-state types in {-1, 0, 1}
    prior_probs: torch.Tensor  # (N, N, 3) true a_0
    model: OneHotHMMGLM  # the generator as a model of this package (hard types)
    n_train: int

    @property
    def train(self) -> torch.Tensor:
        return self.spikes[: self.n_train]

    @property
    def test(self) -> torch.Tensor:
        return self.spikes[self.n_train :]

    @property
    def prior_types(self) -> torch.Tensor:
        return self.prior_probs.argmax(-1) - 1


def simulate_demo(
    n_states: int = 5,
    n_neurons: int = 20,
    n_time_bins: int = 2000,
    n_trials: int = 50,
    n_train: int = 30,
    seed: int = 0,
    sparsity: float = 0.2,
    p_exc: float = 0.5,
    tau: float = 0.2,
    sticky: float = 0.98,
    demo_quirk: bool = True,
) -> SyntheticData:
    """Generate the demo's data set (defaults = the paper's synthetic study)."""
    if not 0 < n_train <= n_trials:
        raise ValueError(f"need 0 < n_train <= n_trials, got n_train={n_train}, n_trials={n_trials}")
    S, N, T, K = n_states, n_neurons, n_time_bins, 5
    basis = exp_basis(K).float()
    torch.manual_seed(seed)
    alpha = torch.tensor([sparsity * (1 - p_exc), 1 - sparsity, sparsity * p_exc]) * 2
    a0 = Dirichlet(alpha).sample((N, N))  # (N, N, 3)
    strength_raw = torch.log(3 * torch.rand(S, N, N))
    type_logits = torch.stack([F.gumbel_softmax(a0.log(), tau=tau, dim=-1).log() for _ in range(S)])
    bias = 0.1 * (torch.rand(N) - 0.5)

    model = OneHotHMMGLM(S, N, basis=basis, link="sigmoid", observations="poisson", sticky=sticky)
    with torch.no_grad():
        model.type_logits.copy_(type_logits)
        model.strength_raw.copy_(strength_raw)
        model.prior_logits.copy_(a0.log())
        model.bias.copy_(bias)
    W = model.weight_tensor("hard").detach()  # (S, N, N)
    A = torch.eye(S) * sticky + (1 - sticky) / max(S - 1, 1) * (1 - torch.eye(S))

    with torch.no_grad():
        states = torch.zeros(n_trials, T, dtype=torch.long)
        states[:, 0] = torch.multinomial(torch.ones(S) / S, num_samples=n_trials, replacement=True)
        for t in range(T):
            if t == 0 and not demo_quirk:
                continue
            states[:, t] = torch.multinomial(A[states[:, t - 1]], num_samples=1)[:, 0]
        spikes = torch.zeros(n_trials, T + K, N)
        rates = torch.zeros(n_trials, T, N)
        flipped = basis.flip(0)
        for t in range(T):
            s = states[:, t]
            c = flipped @ spikes[:, t : t + K, :]  # (trials, N)
            u = bias + (c[:, None, :] @ W[s].transpose(1, 2))[:, 0, :]
            rates[:, t] = (1 - 1e-8) * torch.sigmoid(u) + 1e-8
            spikes[:, t + K] = torch.poisson(rates[:, t] + 1e-8)
    types = type_logits.argmax(-1) - 1
    return SyntheticData(spikes[:, K:].contiguous(), states, rates, W, types, a0, model, n_train)
