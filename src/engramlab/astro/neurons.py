"""Leaky integrate-and-fire (LIF) neurons, snnTorch-style: time-major ``[T, B, ..., N]``, explicit state.

Conventions (as snnTorch / SpikingJelly / Norse users expect):

- ``LIF.forward`` takes time-major input ``(T, B, ..., N)`` (SpikingJelly's multi-step ``[T, N, *]``,
  Norse's ``LIF``); ``LIF.step`` takes one batch-major step ``(B, ..., N)`` (snnTorch's ``Leaky``,
  Norse's ``LIFCell``). AM-SU and AstroSNN take batch-major ``(B, T, d)`` and transpose inside.
- The state is explicit (``LIFState(u, s)``, passed in and returned, as Norse); nothing is held
  in the module. ``reset(batch_shape)`` returns the zero state (snnTorch's ``init_leaky`` /
  ``reset_mem``, SpikingJelly's ``reset``); ``state=None`` starts from it.
- The surrogate is selectable (``surrogate="atan" | "fast_sigmoid" | "sigmoid"``, ATan with
  alpha = 2 by default, as snnTorch's ``Leaky`` and SpikeGPT); the reset is by subtraction
  (snnTorch ``reset_mechanism="subtract"``, SpikingJelly ``v_reset=None``) or to zero
  (``"zero"``, SpikingJelly ``v_reset=0``). snnTorch's ``Leaky`` is
  ``mem = beta * mem + input - reset * threshold`` with ``reset = Theta(mem_prev - threshold)``:
  the same recurrence as A1a with o = 0 (tests/astro/test_astro_neurons.py checks it).
- ``spiking=False`` is the rate neuron of the ablation ladder: s_t = psi(u_t + o_t - theta)
  with psi the surrogate's smooth stand-in (``surrogate.rate_function``, a rate in (0, 1)),
  the same reset term theta * s_{t-1} (or the factor 1 - s_{t-1}), and exact gradients.

Equations (this project's reading; docs/astro.md Eqs. A1, A4, A5). Per neuron i and step t,

    u_t = beta * u_{t-1} + I_t - theta * s_{t-1}          (reset by subtraction, A1a)
    u_t = beta * u_{t-1} * (1 - s_{t-1}) + I_t            (reset to zero, A1b)
    s_t = Theta(u_t + o_t - theta)                         (A4; o_t = 0 for a plain LIF)

with a learnable decay beta = sigmoid(beta_logit) in (0, 1) and threshold theta, both per neuron.
As in snnTorch (``reset_mechanism="subtract"|"zero"``) the reset term s_{t-1} is detached from
the graph; Theta's derivative is a surrogate (engramlab.astro.surrogate). ``o_t`` is the
astrocyte's modulation of AM-SU (engramlab.astro.amsu); a plain LIF passes ``o=None``.

The recurrence over T runs fused: a ``torch.autograd.Function`` whose forward loop and whose
backward reverse scan write each step in place into the preallocated (T, ...) outputs, two to
seven tensor ops per step and no autograd graph of T steps. ``lif_reference`` is the plain
autograd loop kept as a test oracle; ``benchmarks/astro.py`` measures the two against each other.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from engramlab.astro.surrogate import check_surrogate, derivative, rate_function, spike_function

RESETS = ("subtract", "zero")


class LIFState(NamedTuple):
    """Explicit state of a LIF population: membrane u and last spikes s, each (B, ..., N)."""

    u: torch.Tensor
    s: torch.Tensor


def check_finite(x: torch.Tensor, name: str) -> None:
    if not torch.isfinite(x).all():
        bad = x[~torch.isfinite(x)].flatten()[0].item()
        raise ValueError(f"{name} holds a non-finite value ({bad}); expected finite inputs")


def _lif_forward_loop(
    current: torch.Tensor,  # (T, B, ..., N)
    mod: torch.Tensor,  # (T, B, ..., N) or empty when there is no modulation
    beta: torch.Tensor,  # (N,)
    theta: torch.Tensor,  # (N,)
    u0: torch.Tensor,
    s0: torch.Tensor,
    subtract: bool,
    rate=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Membranes u_t and spikes s_t (each (T, B, ..., N)) of Eqs. A1 and A4, written in place step by step.

    Same numbers as the textbook form u = beta u + I - theta s (or beta u (1 - s) + I): s is 0 or 1,
    so theta s and the reset to zero are exact. ``rate`` (a function psi, for ``spiking=False``):
    s_t = psi(m_t) in (0, 1) instead of Theta(m_t), and the reset to zero multiplies by 1 - s_{t-1}.
    """
    has_mod = mod.numel() > 0
    us = torch.empty_like(current)
    ss = torch.empty_like(current)
    m = torch.empty_like(current[0])
    fired = torch.empty(current.shape[1:], dtype=torch.bool, device=current.device)  # s_{t-1} > 0
    # the T steps as tuples of views, made once (indexing a tensor per step costs a dispatch each)
    steps = zip(current.unbind(0), mod.unbind(0) if has_mod else [None] * current.shape[0], us.unbind(0), ss.unbind(0))
    u, s = u0, s0
    for t, (i_t, o_t, u_t, s_t) in enumerate(steps):
        torch.mul(beta, u, out=u_t)
        if subtract:
            u_t.add_(i_t)
            if t == 0:
                u_t.sub_(theta * s)
            else:
                u_t.addcmul_(theta, s, value=-1.0)  # theta s is exact (s is 0 or 1): one rounding, as u - theta s
        else:
            if t == 0 or rate is not None:
                u_t.mul_(1.0 - s)
            else:
                u_t.masked_fill_(fired, 0.0)
            u_t.add_(i_t)
        torch.sub(u_t, theta, out=m)
        if has_mod:
            m.add_(o_t)
        if rate is None:
            torch.gt(m, 0, out=fired)
            s_t.copy_(fired)
        else:
            s_t.copy_(rate(m))
        u, s = u_t, s_t
    return us, ss


def _reverse_scan(c: torch.Tensor, a_next: torch.Tensor) -> torch.Tensor:
    """G_t = c_t + a_{t+1} * G_{t+1}, G_T = c_T (a_next[t] holds a_{t+1})."""
    T = c.shape[0]
    G = torch.empty_like(c)
    Gs, cs, As = G.unbind(0), c.unbind(0), a_next.unbind(0)
    Gs[T - 1].copy_(cs[T - 1])
    for t in range(T - 2, -1, -1):
        torch.mul(As[t], Gs[t + 1], out=Gs[t]).add_(cs[t])
    return G


def _sum_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.sum_to_size(like.shape) if x.shape != like.shape else x


class LIFScan(torch.autograd.Function):
    """Fused LIF over T steps: (current, mod, beta, theta, u0, s0) -> (spikes, membrane), both (T, B, ..., N).

    Backward (hand-derived, reset detached): with m_t = u_t + o_t - theta and the surrogate
    d_t = Theta'(m_t), the gradient reaching u_t is G_t = gu_t + gs_t d_t + a_{t+1} G_{t+1},
    a_{t+1} = du_{t+1}/du_t = beta (subtract) or beta (1 - s_t) (zero). Then dI_t = G_t,
    do_t = gs_t d_t, dbeta = sum_t G_t u_{t-1} (1 - s_{t-1} for zero reset),
    dtheta = -sum_t gs_t d_t - sum_t G_t s_{t-1} (the second term for subtraction only),
    du_0 = a_1 G_1. With ``spiking=False`` the same backward is exact: s_t = psi(m_t) and
    psi' is the surrogate derivative d_t (surrogate.rate_function).
    """

    @staticmethod
    def forward(ctx, current, mod, beta, theta, u0, s0, subtract: bool, surrogate: str, slope: float, spiking=True):
        rate = None if spiking else rate_function(surrogate, slope)
        us, ss = _lif_forward_loop(current, mod, beta, theta, u0, s0, subtract, rate)
        ctx.save_for_backward(current, mod, beta, theta, u0, s0, us, ss)
        ctx.subtract = subtract
        ctx.surrogate = (surrogate, slope)
        return ss, us

    @staticmethod
    def backward(ctx, g_spk, g_mem):
        current, mod, beta, theta, u0, s0, us, ss = ctx.saved_tensors
        subtract = ctx.subtract
        if g_spk is None:
            g_spk = torch.zeros_like(us)
        m = us - theta
        if mod.numel() > 0:
            m = m + mod
        gsd = g_spk * derivative(*ctx.surrogate)(m)  # (T, ...): gradient of m_t
        c = gsd if g_mem is None else gsd + g_mem
        s_prev = torch.cat([s0.expand_as(us[:1]), ss[:-1]], dim=0)  # s_{t-1}
        u_prev = torch.cat([u0.expand_as(us[:1]), us[:-1]], dim=0)  # u_{t-1}
        if subtract:
            a = beta.expand_as(us)  # a_t = du_t / du_{t-1}
        else:
            a = beta * (1.0 - s_prev)
        a_next = torch.cat([a[1:], torch.zeros_like(a[:1])], dim=0)
        G = _reverse_scan(c, a_next)
        g_cur = G
        g_mod = gsd if mod.numel() > 0 and ctx.needs_input_grad[1] else None
        g_beta = g_theta = g_u0 = None
        if ctx.needs_input_grad[2]:
            gb = G * u_prev if subtract else G * u_prev * (1.0 - s_prev)
            g_beta = _sum_to(gb, beta)
        if ctx.needs_input_grad[3]:
            gt = -gsd - G * s_prev if subtract else -gsd
            g_theta = _sum_to(gt, theta)
        if ctx.needs_input_grad[4]:
            g_u0 = _sum_to(a[0] * G[0], u0)
        return g_cur, g_mod, g_beta, g_theta, g_u0, None, None, None, None, None


def lif_reference(
    current, mod, beta, theta, u0, s0, subtract: bool, surrogate: str = "atan", slope=None, spiking: bool = True
):
    """The same LIF as a plain autograd loop (test oracle; slow: T steps of graph)."""
    spike = spike_function(surrogate, slope) if spiking else rate_function(surrogate, slope)
    u, s = u0, s0
    spk, mem = [], []
    for t in range(current.shape[0]):
        r = s.detach()
        u = beta * u + current[t] - theta * r if subtract else beta * u * (1.0 - r) + current[t]
        m = u - theta if mod is None else u + mod[t] - theta
        s = spike(m)
        spk.append(s)
        mem.append(u)
    return torch.stack(spk), torch.stack(mem)


class LIF(nn.Module):
    """A population of N leaky integrate-and-fire neurons (the last dimension of the input).

    forward(current (T, B, ..., N) time-major, mod=None, state=None) -> (spikes, membrane, new_state);
    step(current_t (B, ..., N) batch-major, mod_t=None, state=None) -> (spikes_t, membrane_t, new_state);
    reset(batch_shape) -> the zero LIFState. ``spiking=False``: the rate neuron (module docstring).
    """

    def __init__(
        self,
        n: int,
        beta: float | tuple[float, float] = 0.9,
        threshold: float = 1.0,
        reset: str = "subtract",
        surrogate: str = "atan",
        slope: float | None = None,
        learn_beta: bool = True,
        learn_threshold: bool = True,
        fused: bool = True,
        spiking: bool = True,
    ):
        super().__init__()
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"number of neurons n must be a positive int, got {n!r}")
        if reset not in RESETS:
            raise ValueError(f"unknown reset {reset!r}; expected one of {RESETS}")
        lo, hi = (beta, beta) if isinstance(beta, (int, float)) else tuple(beta)
        if not (0 < lo < 1 and 0 < hi < 1):
            raise ValueError(f"beta must lie in (0, 1), got {beta!r}")
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.n = n
        self.reset_mechanism = reset  # snnTorch's name; reset() is the state reset
        self.surrogate = surrogate
        self.slope = check_surrogate(surrogate, slope)
        self.fused = fused
        self.spiking = bool(spiking)
        b = torch.linspace(lo, hi, n) if n > 1 else torch.tensor([lo])
        logit = torch.log(b) - torch.log1p(-b)
        self.beta_logit = nn.Parameter(logit, requires_grad=learn_beta)
        self.threshold = nn.Parameter(torch.full((n,), float(threshold)), requires_grad=learn_threshold)
        self._spike = spike_function(surrogate, self.slope) if spiking else rate_function(surrogate, self.slope)

    @property
    def beta(self) -> torch.Tensor:
        """Per-neuron decay in (0, 1)."""
        return torch.sigmoid(self.beta_logit)

    def init_state(self, batch_shape, device=None, dtype=None) -> LIFState:
        if isinstance(batch_shape, int):
            batch_shape = (batch_shape,)
        dtype = dtype or self.threshold.dtype
        device = device or self.threshold.device
        z = torch.zeros(*batch_shape, self.n, device=device, dtype=dtype)
        return LIFState(z, z.clone())

    def reset(self, batch_shape, device=None, dtype=None) -> LIFState:
        """The zero state u = s = 0 (snnTorch ``reset_mem`` / SpikingJelly ``reset``): pass it as ``state``."""
        return self.init_state(batch_shape, device, dtype)

    def _check_state(self, state, batch_shape) -> LIFState:
        if not isinstance(state, LIFState):
            raise TypeError(f"LIF state must be a LIFState(u, s), got {type(state).__name__}")
        want = (*batch_shape, self.n)
        for name, x in zip(("u", "s"), state):
            if tuple(x.shape) != want:
                raise ValueError(f"LIF state.{name} has shape {tuple(x.shape)}, expected {want}")
        return state

    def forward(
        self,
        current: torch.Tensor,
        mod: torch.Tensor | None = None,
        state: LIFState | None = None,
        check: bool = True,
    ):
        """``check=False`` skips the finiteness check of current and mod (a full pass and a host
        sync), for callers whose inputs come from their own checked inputs (AM-SU, AstroSNN)."""
        if current.dim() < 2 or current.shape[-1] != self.n:
            raise ValueError(f"current must have shape (T, B, ..., {self.n}), got {tuple(current.shape)}")
        if mod is not None and mod.shape != current.shape:
            raise ValueError(f"mod has shape {tuple(mod.shape)}, expected the current's {tuple(current.shape)}")
        if check:
            check_finite(current, "LIF input current")
            if mod is not None:
                check_finite(mod, "LIF modulation")
        batch_shape = tuple(current.shape[1:-1])
        if state is None:
            state = self.init_state(batch_shape, current.device, current.dtype)
        else:
            state = self._check_state(state, batch_shape)
        beta, theta = self.beta.to(current.dtype), self.threshold.to(current.dtype)
        subtract = self.reset_mechanism == "subtract"
        if self.fused:
            m = mod if mod is not None else current.new_zeros(0)
            spk, mem = LIFScan.apply(
                current, m, beta, theta, state.u, state.s, subtract, self.surrogate, self.slope, self.spiking
            )
        else:
            spk, mem = lif_reference(
                current, mod, beta, theta, state.u, state.s, subtract, self.surrogate, self.slope, self.spiking
            )
        return spk, mem, LIFState(mem[-1], spk[-1])

    def step(self, current_t: torch.Tensor, mod_t: torch.Tensor | None = None, state: LIFState | None = None):
        """One time step (Eqs. A1, A4): current_t (B, ..., N) -> (s_t, u_t, new state)."""
        batch_shape = tuple(current_t.shape[:-1])
        if state is None:
            state = self.init_state(batch_shape, current_t.device, current_t.dtype)
        else:
            state = self._check_state(state, batch_shape)
        beta, theta = self.beta.to(current_t.dtype), self.threshold.to(current_t.dtype)
        r = state.s.detach()
        if self.reset_mechanism == "subtract":
            u = beta * state.u + current_t - theta * r
        else:
            u = beta * state.u * (1.0 - r) + current_t
        m = u - theta if mod_t is None else u + mod_t - theta
        s = self._spike(m)
        return s, u, LIFState(u, s)
