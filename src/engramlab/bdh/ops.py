"""Elementwise pieces of the BDH layer written to touch the big (H, B, T, N) tensors few times.

On a CPU the matmuls of BDH are fast and the elementwise passes over the n-dimensional
activations (ReLU, RoPE, gating, dropout) take a large share of the time, so:

- ``rope_rotate``: RoPE as one complex multiplication per neuron pair (when the two neurons of
  every pair share a frequency, as the official ``get_freqs`` makes them), else the generic
  real form of ``engramlab.nn.rope.apply_rope``. Same numbers either way.
- ``gate_dropout``: y = ReLU(y_a) * x with the dropout mask applied in the same pass
  (x >= 0, so ReLU(y_a) * x = ReLU(y_a * x)); the 1 / (1 - p) rescaling is left to the caller,
  which applies it to the much smaller d-dimensional output of E.
"""

from __future__ import annotations

import math

import torch

from engramlab.nn.rope import apply_rope


def rope_tables(freqs: torch.Tensor, positions: torch.Tensor, dtype: torch.dtype):
    """Tables for ``rope_rotate``: freqs (H, N), positions (T,) -> ("complex", (H, 1, T, N/2)) or
    ("real", (cos, sin_signed) each (H, 1, T, N))."""
    t = positions.to(torch.float64).reshape(-1, 1)
    paired = bool((freqs[..., 0::2] == freqs[..., 1::2]).all())
    if paired:
        f = freqs[..., 0::2].to(torch.float64).unsqueeze(-2)  # (H, 1, N/2)
        phase = torch.remainder(t * f, 1.0) * (2 * math.pi)  # (H, T, N/2)
        ctype = torch.complex128 if dtype == torch.float64 else torch.complex64
        table = torch.polar(torch.ones_like(phase), phase).to(ctype)
        return "complex", table.unsqueeze(1)
    from engramlab.nn.rope import rope_cos_sin

    cos, sin = rope_cos_sin(freqs, positions, dtype)
    return "real", (cos.unsqueeze(1), sin.unsqueeze(1))


def rope_rotate(x: torch.Tensor, tables) -> torch.Tensor:
    """Rotate the interleaved neuron pairs of x (H, B, T, N) (the official ``Attention.rope``)."""
    kind, tab = tables
    if kind == "complex":
        shp = x.shape
        z = torch.view_as_complex(x.reshape(*shp[:-1], shp[-1] // 2, 2))
        return torch.view_as_real(z * tab).reshape(shp)
    return apply_rope(x, *tab)


class _GateDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ya, x, drop):
        y = torch.mul(ya, x).clamp_min_(0)
        if drop is not None:
            y.masked_fill_(drop, 0)
        ctx.save_for_backward(ya, x, drop)
        return y

    @staticmethod
    def backward(ctx, dy):
        ya, x, drop = ctx.saved_tensors
        if drop is not None:
            dy = dy.masked_fill(drop, 0)
        dya = dx = None  # threshold_backward(g, ya, 0) = g where ya > 0, else 0 (one fused pass)
        if ctx.needs_input_grad[0]:
            dya = torch.ops.aten.threshold_backward(torch.mul(dy, x), ya, 0)
        if ctx.needs_input_grad[1]:
            dx = torch.ops.aten.threshold_backward(torch.mul(dy, ya), ya, 0)
        return dya, dx, None


def dropout_mask(shape, p: float, device) -> torch.Tensor | None:
    """Boolean mask of dropped entries (probability p, resolution 1e-4), or None when p == 0."""
    if p <= 0:
        return None
    return torch.empty(shape, dtype=torch.int16, device=device).random_(0, 10000) < round(p * 10000)


def gate_dropout(ya: torch.Tensor, x: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
    """ReLU(ya) * x (x >= 0), with the entries in the boolean mask ``drop`` zeroed (not rescaled)."""
    return _GateDropout.apply(ya, x, drop)
