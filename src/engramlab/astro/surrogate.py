"""Surrogate gradients for the spike non-linearity s = Theta(m) (snnTorch-style).

The forward pass is the Heaviside step Theta(m) = 1[m > 0] of the shifted membrane
m = u + o - threshold (AM-SU's s_t = g(u_t + o_t), docs/astro.md Eq. A4). Its derivative is zero
almost everywhere, so the backward pass uses the derivative of a smooth stand-in with a
``slope`` (sharpness) parameter:

=============  ===================================  ==========================================
name           smooth stand-in                      d/dm used in the backward pass
=============  ===================================  ==========================================
``atan``       1/pi * arctan(pi/2 * a m) + 1/2      a / 2 / (1 + (pi/2 * a m)^2)      (a = 2)
``fast_sigmoid`` m / (1 + k|m|) (SuperSpike)        1 / (k|m| + 1)^2                  (k = 25)
``sigmoid``    sigmoid(k m)                         k sigmoid(k m) (1 - sigmoid(k m)) (k = 25)
=============  ===================================  ==========================================

The defaults match snnTorch (``surrogate.atan(alpha=2.0)``, ``fast_sigmoid(slope=25)``,
``sigmoid(slope=25)``). Each ``torch.autograd.Function`` is paired with a small factory that
returns a plain callable ``spike_fn(m) -> spikes``, and ``derivative(name, slope)`` returns the
pure derivative used by the fused LIF backward pass (engramlab.astro.neurons).

``rate_function(name, slope)`` returns the smooth stand-in itself, for the non-spiking (rate)
neuron of the ablation ladder (``LIF(spiking=False)``): its forward value is the stand-in and its
backward is that function's own derivative, which is exactly the surrogate derivative above, so
no surrogate is involved. The stand-in is a rate in (0, 1) for ``atan`` and ``sigmoid``;
``fast_sigmoid``'s stand-in m / (1 + k|m|) is not, so it has no rate neuron.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SURROGATES = ("atan", "fast_sigmoid", "sigmoid")
DEFAULT_SLOPE = {"atan": 2.0, "fast_sigmoid": 25.0, "sigmoid": 25.0}


def atan_grad(m: torch.Tensor, slope: float) -> torch.Tensor:
    """d/dm [arctan(pi/2 * slope * m) / pi]."""
    return (slope / 2) / (1 + (math.pi / 2 * slope * m) ** 2)


def fast_sigmoid_grad(m: torch.Tensor, slope: float) -> torch.Tensor:
    """d/dm [m / (1 + slope |m|)]."""
    return 1.0 / (slope * m.abs() + 1.0) ** 2


def sigmoid_grad(m: torch.Tensor, slope: float) -> torch.Tensor:
    """d/dm sigmoid(slope * m)."""
    s = torch.sigmoid(slope * m)
    return slope * s * (1 - s)


_GRADS = {"atan": atan_grad, "fast_sigmoid": fast_sigmoid_grad, "sigmoid": sigmoid_grad}


RATE_SURROGATES = ("atan", "sigmoid")


def atan_rate(m: torch.Tensor, slope: float) -> torch.Tensor:
    """1/pi * arctan(pi/2 * slope * m) + 1/2 in (0, 1): the atan stand-in (derivative = ``atan_grad``)."""
    return torch.atan((math.pi / 2 * slope) * m) / math.pi + 0.5


def sigmoid_rate(m: torch.Tensor, slope: float) -> torch.Tensor:
    """sigmoid(slope * m) in (0, 1) (derivative = ``sigmoid_grad``)."""
    return torch.sigmoid(slope * m)


_RATES = {"atan": atan_rate, "sigmoid": sigmoid_rate}


def rate_function(name: str, slope: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The smooth stand-in psi(m) in (0, 1) of surrogate ``name``: the rate neuron's activation."""
    slope = check_surrogate(name, slope)
    if name not in _RATES:
        raise ValueError(
            f"surrogate {name!r} has no rate (non-spiking) form; use one of {RATE_SURROGATES} with spiking=False"
        )
    fn = _RATES[name]
    return lambda m: fn(m, slope)


def check_surrogate(name: str, slope: float | None) -> float:
    """Validate a surrogate name and slope; return the slope (the default when None)."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; expected one of {SURROGATES}")
    if slope is None:
        return DEFAULT_SLOPE[name]
    slope = float(slope)
    if not math.isfinite(slope) or slope <= 0:
        raise ValueError(f"surrogate slope must be a finite number > 0, got {slope}")
    return slope


def derivative(name: str, slope: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The surrogate derivative d Theta / dm as a function of m (for fused backward passes)."""
    slope = check_surrogate(name, slope)
    fn = _GRADS[name]
    return lambda m: fn(m, slope)


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, surrogate derivative backward. Subclasses set ``grad``."""

    grad = staticmethod(atan_grad)

    @classmethod
    def forward(cls, ctx, m: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(m)
        ctx.slope = slope
        return (m > 0).to(m.dtype)

    @classmethod
    def backward(cls, ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (m,) = ctx.saved_tensors
        return grad_out * cls.grad(m, ctx.slope), None


class ATan(_SpikeFunction):
    """Theta forward; arctan surrogate backward (Fang et al. 2021; snnTorch default)."""

    grad = staticmethod(atan_grad)


class FastSigmoid(_SpikeFunction):
    """Theta forward; fast-sigmoid (SuperSpike, Zenke & Ganguli 2018) surrogate backward."""

    grad = staticmethod(fast_sigmoid_grad)


class Sigmoid(_SpikeFunction):
    """Theta forward; logistic-sigmoid surrogate backward."""

    grad = staticmethod(sigmoid_grad)


_FUNCS = {"atan": ATan, "fast_sigmoid": FastSigmoid, "sigmoid": Sigmoid}


def atan(alpha: float = 2.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Factory: spike_fn(m) with the arctan surrogate of slope alpha."""
    alpha = check_surrogate("atan", alpha)
    return lambda m: ATan.apply(m, alpha)


def fast_sigmoid(slope: float = 25.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Factory: spike_fn(m) with the fast-sigmoid surrogate of the given slope."""
    slope = check_surrogate("fast_sigmoid", slope)
    return lambda m: FastSigmoid.apply(m, slope)


def sigmoid(slope: float = 25.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Factory: spike_fn(m) with the sigmoid surrogate of the given slope."""
    slope = check_surrogate("sigmoid", slope)
    return lambda m: Sigmoid.apply(m, slope)


def spike_function(name: str = "atan", slope: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Factory by name: ``spike_function("atan", 2.0)(m)``."""
    slope = check_surrogate(name, slope)
    func = _FUNCS[name]
    return lambda m: func.apply(m, slope)
