"""Rotary (RoPE) and ALiBi position handling for positive n-dimensional keys (BDH, paper §1.3).

The paper's operator U is "a fixed diagonal or block-diagonal operator: local rotation or
damping (such as ALiBi or RoPE)": 2x2 rotation blocks for RoPE, a diagonal decay for ALiBi.

RoPE here follows the official BDH code exactly:

- frequency of coordinate i (in cycles per token): f_i = theta^(-2*floor(i/2)/N) / (2*pi),
  theta = 2^16, so the two coordinates of a pair share one frequency;
- phase at position t: phi = 2*pi * ((t * f_i) mod 1);
- rotation of each interleaved pair (v0, v1) -> (v0 cos - v1 sin, v1 cos + v0 sin).

Frequencies are data (a buffer of shape (n_head, N)), not recomputed from the formula, so a
model whose neurons were concatenated from two models keeps each neuron's phase.

ALiBi is a per-head exponential damping gamma_h = exp(log_decay_h) of the synaptic state per
token: the weight of a key tau tokens back is gamma_h^tau (paper Eq. 4's U^(t - tau), diagonal).
"""

from __future__ import annotations

import math

import torch


def rope_frequencies(n: int, theta: float = 2.0**16, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The official code's ``get_freqs``: (n,) frequencies in cycles per token, pairs quantised."""
    if n <= 0 or n % 2:
        raise ValueError(f"RoPE needs an even positive number of coordinates, got {n}")
    if theta <= 1:
        raise ValueError(f"rope_theta must be > 1, got {theta}")
    i = torch.arange(0, n, dtype=torch.float64)
    q = torch.floor(i / 2) * 2
    return (1.0 / (theta ** (q / n)) / (2 * math.pi)).to(dtype)


def rope_cos_sin(
    freqs: torch.Tensor, positions: torch.Tensor, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin of the phases 2*pi*((t * f) mod 1).

    freqs (..., N) cycles per token; positions (T,) integer or float positions.
    Returns (cos, sin_signed), each (..., T, N) in ``dtype`` (default freqs.dtype), where
    sin_signed is -sin on even coordinates and +sin on odd ones, so that
    ``rope(x) = x * cos + swap_pairs(x) * sin_signed`` (see ``apply_rope``).
    The phase is formed in float64 before the mod, so positions far beyond the training
    window keep full precision.
    """
    dtype = dtype or freqs.dtype
    t = positions.to(torch.float64).reshape(-1, 1)  # (T, 1)
    f = freqs.to(torch.float64).unsqueeze(-2)  # (..., 1, N)
    phase = torch.remainder(t * f, 1.0) * (2 * math.pi)  # (..., T, N)
    cos = torch.cos(phase)
    sin = torch.sin(phase)
    sign = torch.ones(freqs.shape[-1], dtype=torch.float64, device=freqs.device)
    sign[0::2] = -1.0
    return cos.to(dtype), (sin * sign).to(dtype)


def swap_pairs(x: torch.Tensor) -> torch.Tensor:
    """(v0, v1, v2, v3, ...) -> (v1, v0, v3, v2, ...) along the last dimension."""
    shp = x.shape
    return x.reshape(*shp[:-1], shp[-1] // 2, 2).flip(-1).reshape(shp)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of x (..., T, N) by the phases of ``rope_cos_sin`` (broadcast).

    Equals the official ``Attention.rope``: (v0, v1) -> (v0 cos - v1 sin, v1 cos + v0 sin).
    """
    return x * cos + swap_pairs(x) * sin_signed


def alibi_log_decay(n_head: int, min_half_life: float, max_half_life: float) -> torch.Tensor:
    """Per-head log damping factors, half-lives spaced geometrically in [min, max] tokens.

    Head h forgets at rate gamma_h = 2^(-1/half_life_h): log gamma_h = -ln 2 / half_life_h.
    With one head the half-life is ``max_half_life``.
    """
    if n_head <= 0:
        raise ValueError(f"n_head must be positive, got {n_head}")
    if not (0 < min_half_life <= max_half_life):
        raise ValueError(f"ALiBi half-lives must satisfy 0 < min <= max, got min={min_half_life}, max={max_half_life}")
    if n_head == 1:
        hl = torch.tensor([float(max_half_life)], dtype=torch.float64)
    else:
        hl = torch.logspace(math.log10(min_half_life), math.log10(max_half_life), n_head, dtype=torch.float64)
    return (-math.log(2.0) / hl).to(torch.float32)
