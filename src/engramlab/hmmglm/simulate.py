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


# ------------------------------------------------------------------------------------ protocol family
@dataclass
class ProtocolSpec:
    """One random synthetic protocol of this package's own generator (not the demo's).

    ``generator="onehot"``: a shared type matrix (``density`` of the pairs excitatory or inhibitory),
    each state re-draws a fraction ``switch`` of the types, strengths U(strength) per state and pair.
    ``generator="gaussian"``: a shared sparse mask (``density``), a shared Gaussian weight matrix
    mu ~ N(0, strength_hi^2 / 4) on it plus a state-specific perturbation N(0, (perturb strength_hi)^2):
    the weights are not one-hot (every state has its own real-valued weights, no type structure).
    """

    name: str
    n_states: int
    n_neurons: int
    n_time_bins: int
    n_trials: int
    n_train: int
    density: float
    strength: tuple[float, float]
    link: str
    generator: str
    switch: float = 0.3
    perturb: float = 0.5
    rate: tuple[float, float] = (0.05, 0.3)  # background rate range (counts per bin)
    sticky: float = 0.98


def _inverse_link(r: torch.Tensor, link: str) -> torch.Tensor:
    if link == "sigmoid":
        return torch.log(r) - torch.log1p(-r)
    if link == "softplus":
        return torch.log(torch.expm1(r))
    return torch.log(r)


# a protocol's sampled counts stay within MAX_COUNT_FACTOR x max_rate per bin (the run-away bound of unbounded links)
DEFAULT_MAX_RATE = 5.0
MAX_COUNT_FACTOR = 4


def simulate_protocol(spec: ProtocolSpec, seed: int = 0, max_rate: float = DEFAULT_MAX_RATE) -> SyntheticData:
    """Draw the parameters of ``spec`` with ``seed`` and sample its trials from an :class:`HMMGLM`.

    For the unbounded links (softplus, exp) the weights are shrunk by 0.8 and redrawn until no firing
    rate in the sampled data exceeds ``max_rate`` counts per bin (a stable network). The returned
    ``model`` is the exact generator (its Viterbi path is the true-parameter reference).
    """
    from .models import HMMGLM  # local: models imports nothing from here

    S, N = spec.n_states, spec.n_neurons
    g = torch.Generator().manual_seed(int(seed))
    lo, hi = spec.strength
    if spec.generator == "onehot":
        base = torch.zeros(N, N, dtype=torch.long)
        nz = torch.rand(N, N, generator=g) < spec.density
        base[nz] = torch.where(torch.rand(int(nz.sum()), generator=g) < 0.5, -1, 1)
        types = base.expand(S, N, N).clone()
        for s in range(S):
            flip = torch.rand(N, N, generator=g) < spec.switch * spec.density  # same expected density
            new = torch.zeros(N, N, dtype=torch.long)
            on = torch.rand(N, N, generator=g) < 0.5
            new[on] = torch.where(torch.rand(int(on.sum()), generator=g) < 0.5, -1, 1)
            types[s][flip] = new[flip]
            back = flip & (new != 0) & (base == 0)  # keep the density: as many removed as added
            add = int(back.sum())
            if add:
                cand = torch.nonzero((types[s] != 0) & ~flip)
                drop = cand[torch.randperm(len(cand), generator=g)[: min(add, len(cand))]]
                types[s][drop[:, 0], drop[:, 1]] = 0
        W = types.float() * (lo + (hi - lo) * torch.rand(S, N, N, generator=g))
    elif spec.generator == "gaussian":
        mask = (torch.rand(N, N, generator=g) < spec.density).float()
        mu = 0.5 * hi * torch.randn(N, N, generator=g)
        W = (mu + spec.perturb * hi * torch.randn(S, N, N, generator=g)) * mask
        # keep every kept weight at least lo in magnitude (a real connection, not a zero in disguise)
        W = torch.where(mask.bool() & (W.abs() < lo), lo * torch.sign(W + 1e-12), W)
        types = (torch.sign(W) * mask).long()
    else:
        raise ValueError(f"generator must be 'onehot' or 'gaussian', got {spec.generator!r}")
    r = spec.rate[0] + (spec.rate[1] - spec.rate[0]) * torch.rand(N, generator=g)
    bias = _inverse_link(r, spec.link)
    model = HMMGLM(S, N, link=spec.link, sticky=spec.sticky)
    for _ in range(40):
        with torch.no_grad():
            model.weight.copy_(W)
            model.bias.copy_(bias)
        spikes, states = model.sample(spec.n_time_bins, n_trials=spec.n_trials, seed=int(seed) + 1)
        if spec.link == "sigmoid" or float(spikes.max()) <= MAX_COUNT_FACTOR * max_rate:
            x, conv, _ = model._prepare(spikes)
            from . import glm

            u = glm.drive(conv, model.weight.detach(), model.bias.detach().expand(S, N))
            sel = torch.gather(u, 2, states[:, :, None, None].expand(-1, -1, 1, N))[:, :, 0]
            rates = glm.rate(sel, spec.link)
            if spec.link == "sigmoid" or float(rates.max()) <= max_rate:
                break
        W = 0.8 * W
    else:
        raise RuntimeError(f"protocol {spec.name}: no stable weights after 40 shrinks")
    return SyntheticData(spikes.float(), states, rates.float(), W, types, None, model, spec.n_train)


def protocol_family(
    n: int = 20,
    seed: int = 0,
    train_bins: int = 8000,
    test_bins: int = 4000,
    max_neurons: int = 50,
    bins_per_sn: float | None = None,
) -> list[ProtocolSpec]:
    """``n`` random protocols: N in 10..max_neurons, S in 2..5, T in {500, 1000, 2000, 5000} bins per trial,
    density 0.1-0.4, strength ranges (0.3, 0.8) / (0.5, 1.2) / (0.8, 1.6), links sigmoid / softplus / exp,
    generators alternating one-hot and Gaussian (shared + state-specific). Trials: ``train_bins`` and
    ``test_bins`` bins in all (at least 1 trial each); with ``bins_per_sn`` the training data grow with the
    number of weights to estimate per neuron: max(train_bins, bins_per_sn * S * N) bins (each state's
    N incoming weights per neuron are seen in about 1/S of the bins). The draws of S, N, T, density etc.
    do not depend on the sizes, so protocol pXX is the same network whatever the budget."""
    rng = torch.Generator().manual_seed(int(seed) + 12345)
    strengths = [(0.3, 0.8), (0.5, 1.2), (0.8, 1.6)]
    links = ["sigmoid", "softplus", "exp"]
    lengths = [500, 1000, 2000, 5000]
    out = []
    for i in range(n):
        pick = torch.rand(6, generator=rng)
        S = 2 + int(pick[0] * 4)
        N = 10 + int(pick[1] * (max_neurons - 9))
        T = lengths[int(pick[2] * 4)]
        dens = round(0.1 + 0.3 * float(pick[3]), 3)
        bins = train_bins if bins_per_sn is None else max(train_bins, bins_per_sn * S * N)
        n_train = max(1, round(bins / T))
        n_test = max(1, round(test_bins / T))
        out.append(
            ProtocolSpec(
                name=f"p{i:02d}",
                n_states=S,
                n_neurons=N,
                n_time_bins=T,
                n_trials=n_train + n_test,
                n_train=n_train,
                density=dens,
                strength=strengths[i % 3],
                link=links[(i // 3) % 3] if i % 9 < 9 else links[i % 3],
                generator="onehot" if i % 2 == 0 else "gaussian",
                switch=0.3 + 0.4 * float(pick[4]),
                perturb=0.3 + 0.5 * float(pick[5]),
            )
        )
    return out


def stable_trials(model, T: int, n: int, seed: int, max_count: float, max_batches: int = 50):
    """``n`` new trials of ``T`` bins from the generator ``model``, drawn in batches of ``n`` (seeds ``seed``,
    ``seed + 1``, ...). A trial with a count above ``max_count``, negative or not finite (a run-away of an
    unbounded link; a protocol's own trials are drawn under the same bound, :func:`simulate_protocol`) is
    dropped and replaced. Returns (spikes (n, T, N) float, states (n, T), number dropped)."""
    xs, zs, dropped = [], [], 0
    for k in range(max_batches):
        x, z = model.sample(T, n_trials=n, seed=seed + k)
        x = x.float()
        ok = torch.isfinite(x).all(-1).all(-1) & (x >= 0).all(-1).all(-1) & (x <= max_count).all(-1).all(-1)
        xs.append(x[ok])
        zs.append(z[ok])
        dropped += int((~ok).sum())
        if sum(len(v) for v in xs) >= n:
            return torch.cat(xs)[:n], torch.cat(zs)[:n], dropped
    raise RuntimeError(f"fewer than {n} stable trials in {max_batches} batches of the generator (dropped {dropped})")
