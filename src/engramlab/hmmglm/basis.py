"""History bases phi for the GLM emissions (paper Sec. 1.1 of our notes, "single fixed basis").

A basis is a 1-D float tensor of length K (the window, in bins); ``basis[k-1]`` weights the count
``x_{t-k}``, i.e. the most recent bin comes first. The convolved history is

    c_{t,n'} = sum_{k=1}^{K} phi_k x_{t-k,n'}            (zero padding before the first bin)

and enters the firing rate as ``b_n + sum_{n'} w_{z_t, n<-n'} c_{t,n'}``.
"""

from __future__ import annotations

import math

import torch


def exp_basis(window: int = 5, decay: float = 1.0, time_span: float | None = None) -> torch.Tensor:
    """The paper's normalised discretised exponential, phi(t) ~ exp(-decay t), t = dt, 2dt, ..., span.

    With the defaults (window 5, decay 1, span = window) this is the public demo's basis
    ``[0.636, 0.234, 0.086, 0.032, 0.012]``; it is normalised so that ``dt * sum(phi) = 1``.
    """
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"exp_basis: window must be a positive int, got {window!r}")
    if decay <= 0:
        raise ValueError(f"exp_basis: decay must be > 0, got {decay!r}")
    span = float(window if time_span is None else time_span)
    dt = span / window
    t = torch.linspace(dt, span, window, dtype=torch.float64)
    phi = torch.exp(-decay * t)
    return phi / (dt * phi.sum())


def raised_cosine_basis(
    n_basis: int = 4, window: int = 20, log_scale: float = 1.0, normalise: bool = True
) -> torch.Tensor:
    """Log-stretched raised-cosine bumps (Pillow et al. 2008) over ``window`` bins.

    Returns a tensor of shape ``(n_basis, window)``. The models use a single basis function, so to
    use this pick one row or combine rows into one kernel (``basis.sum(0)`` or a weighted sum);
    ``normalise`` makes each row sum to 1.
    """
    if n_basis < 1 or window < 1:
        raise ValueError(f"raised_cosine_basis: need n_basis >= 1 and window >= 1, got {n_basis}, {window}")
    t = torch.arange(1, window + 1, dtype=torch.float64)
    y = torch.log(t + log_scale)  # stretched time
    lo, hi = math.log(1 + log_scale), math.log(window + log_scale)
    centres = torch.linspace(lo, hi, n_basis, dtype=torch.float64)
    width = (hi - lo) / max(n_basis - 1, 1) * 2 if n_basis > 1 else (hi - lo) * 2
    arg = (y[None, :] - centres[:, None]) * math.pi / width
    arg = arg.clamp(-math.pi, math.pi)
    b = 0.5 * (torch.cos(arg) + 1)
    if normalise:
        b = b / b.sum(dim=1, keepdim=True)
    return b


def convolve_history(spikes: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """c_{t,n} = sum_k basis[k-1] * x_{t-k,n}, causal, zero padded.

    spikes: (..., T, N) -> (..., T, N), same dtype as ``spikes``. A K-tap loop of shifted adds
    (K is small, ~5), so it costs O(T N K) and never materialises a (T, N, K) tensor.
    """
    basis = basis.to(spikes.dtype)
    out = torch.zeros_like(spikes)
    T = spikes.shape[-2]
    for k in range(1, min(basis.shape[0], T - 1) + 1):
        out[..., k:, :] += basis[k - 1] * spikes[..., : T - k, :]
    return out
