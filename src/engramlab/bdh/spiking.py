"""Spiking realisation of BDH-GPU at evaluation time (paper §2.5, Observation 2).

The paper argues that BDH needs only positive activations, and that its quadratic terms can
be realised stochastically: the AND of independent Bernoulli spikes with rates q_i and q_j has
expectation q_i q_j. This module evaluates a trained model with its activations replaced by
spikes of matching rates:

    spike(a) = s * Bernoulli(clamp(a / s, 0, 1)),   s = max(a)  over the whole tensor

applied, in every layer, to x_{t,l} (before it becomes the key, the query and the gate) and to
the gated y_{t,l} (before the read-out E y). The scale s is chosen per layer and per quantity
(x, y) as that layer's largest activation on the evaluated batch, so a / s lies in [0, 1], the
clamp never binds and E[spike(a)] = a exactly for every entry; a spike carries the value s. The
variance of an entry is a (s - a). Every draw is independent (one uniform per entry), from a
generator seeded per evaluation, so results are reproducible. Off by default: a model
spikes only inside ``spiking(model, seed)``.

``spiking_eval_loss(model, data, seeds)`` returns the dense loss, the loss under spikes for
each seed, and the gap (spiking minus dense).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.nn.functional as F


class BernoulliSpikes:
    """a (>= 0) -> s * Bernoulli(a / s), s = a.max(): unbiased spikes of matching rates."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator
        self.calls = 0  # tensors replaced so far (2 per layer and forward: x and y)
        self.spikes = 0  # spikes emitted
        self.entries = 0

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        if a.numel() == 0:
            return a
        s = a.max()
        if float(a.min()) < 0:
            raise ValueError(f"spikes need non-negative activations, got a minimum of {float(a.min())}")
        self.calls += 1
        self.entries += a.numel()
        if float(s) <= 0:
            return torch.zeros_like(a)
        p = (a / s).clamp(0.0, 1.0)
        u = torch.rand(a.shape, generator=self.generator, device=a.device, dtype=a.dtype)
        fired = u < p
        self.spikes += int(fired.sum())
        return fired.to(a.dtype) * s


@contextlib.contextmanager
def spiking(model, seed: int):
    """Inside the block, ``model`` (a BDH) evaluates with spiking x and y; yields the sampler."""
    if not hasattr(model, "spike_sampler"):
        raise TypeError(f"spiking evaluation needs a BDH model, got {type(model).__name__}")
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    prev = model.spike_sampler
    model.spike_sampler = sampler = BernoulliSpikes(gen)
    try:
        yield sampler
    finally:
        model.spike_sampler = prev


def _as_rows(data) -> torch.Tensor:
    if isinstance(data, (bytes, bytearray)):
        data = torch.tensor(list(data), dtype=torch.long)
    if not isinstance(data, torch.Tensor) or data.dtype not in (torch.int64, torch.int32, torch.uint8):
        raise TypeError("data must be token ids: a LongTensor (B, T) or (T,), or bytes")
    if data.dim() == 1:
        data = data.unsqueeze(0)
    if data.dim() != 2 or data.shape[1] < 2:
        raise ValueError(f"data must be (B, T) tokens with T >= 2, got shape {tuple(data.shape)}")
    return data.long()


@torch.no_grad()
def spiking_eval_loss(model, data, seeds: Iterable[int] = (0, 1, 2)) -> dict:
    """Next-token loss (nats/token) of ``model`` on ``data`` dense and with spiking x and y.

    data: token ids (B, T) or (T,) or bytes; every position but the last predicts the next.
    Returns {"dense_loss", "spiking_loss": [per seed], "spiking_mean", "gap": spiking_mean -
    dense_loss, "gap_per_seed", "spike_rate": [fraction of entries that spiked, per seed],
    "seeds", "scale": how the spike value is chosen}.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    rows = _as_rows(data).to(next(model.parameters()).device)
    x, y = rows[:, :-1], rows[:, 1:]
    was_training = model.training
    model.eval()
    try:

        def loss() -> float:
            logits, _ = model(x)
            if logits.dtype in (torch.float16, torch.bfloat16):
                logits = logits.float()
            return float(F.cross_entropy(logits.flatten(0, 1), y.flatten()))

        dense = loss()
        spk, rates = [], []
        for s in seeds:
            with spiking(model, s) as sampler:
                spk.append(loss())
            rates.append(sampler.spikes / max(1, sampler.entries))
    finally:
        model.train(was_training)
    mean = sum(spk) / len(spk)
    return {
        "dense_loss": dense,
        "spiking_loss": spk,
        "spiking_mean": mean,
        "gap": mean - dense,
        "gap_per_seed": [v - dense for v in spk],
        "spike_rate": rates,
        "seeds": seeds,
        "scale": "per layer and quantity (x, y): the largest activation on the batch",
    }
