"""The astrocyte-modulated spiking unit (AM-SU): LIF neurons whose firing is modulated by astrocytes.

THIS IS ENGRAMLAB'S READING, NOT THE PAPER'S PUBLISHED EQUATIONS. The AstroSNN paper
(Shen, Zhao et al., arXiv:2312.07625) has no public method section or code; what can be read is
its abstract and Fig. 1, whose tripartite-synapse inset names x_t, I_t = sigma(x_t), k_t, v_t,
q_t, an astrocyte state H_t, the astrocyte output o_t = H_t q_t and the spike
s_t = g(u_t + o_t). The equations below (numbered A1-A5 in docs/astro.md) are one model that
reproduces every label. Everything the astrocyte does is in the small ``Astrocytes`` module
(update + read-out), so another reading only has to replace that class.

Per layer with input x_t in R^d, N neurons split into A astrocytic domains of N/A neurons:

    I_t = W_I x_t                                                     (A1, the neuron current)
    u_t = beta * u_{t-1} + I_t - theta * s_{t-1}   (or reset to zero)  (A1, LIF membrane)
    k_t = phi(W_k xs_t), q_t = phi(W_q x_t), v_t = W_v x_t             (A2, phi = elu + 1 > 0)
    xs_t = mu * x_t + (1 - mu) * x_{t-1}                               (A2', key token shift)
    H_t = lambda_a H_{t-1} + v_t k_t^T,   z_t = lambda_a z_{t-1} + k_t  (A3, per astrocyte a)
    o_t = H_t q_t / (q_t . z_t + eps)                                   (A3, gliotransmission)
    s_t = Theta(u_t + o_t - theta)                                      (A4, surrogate backward)

Astrocyte a's read-out o_t (N/A values) modulates exactly the neurons of its domain. The key
sees the presynaptic input through a learnable per-channel mix mu of the current and previous
input (A2'; ``key_shift=True``, mu initialised to 1/2): transmitter lingering in the cleft for one
step, and the same token shift SpikeGPT/RWKV use. With it one layer can bind a value to the
token before it (associative recall); ``key_shift=False`` gives k_t = phi(W_k x_t). The slow
decay lambda_a = exp(-1/tau_a) is learnable per astrocyte, tau_a initialised log-uniformly over
[tau_min, tau_max] (tens to thousands of steps; the neurons' beta ~ 0.9 is tau ~ 10). H and z
are one linear recurrence: the normaliser z rides along as an extra column of ones in the
values, so both come out of one call of ``engramlab.nn.linear_attention`` (chunked parallel form
for training, ``recurrent_step`` for generation). ``astrocyte=False`` sets o_t = 0: a plain
LIF spiking layer, the ablation.

Switches of the ablation ladder (each a constructor argument, the same model otherwise):

- ``normalise=False``: o_t = H_t q_t (Fig. 1's read-out as printed; no z, no division).
- ``key_shift=False``: k_t = phi(W_k x_t).
- ``spiking=False``: the LIF is replaced by its rate, s_t = psi(u_t + o_t - theta) (neurons.LIF).
- ``coupling="membrane"`` (A4, the default): o_t enters before the threshold.
  ``coupling="after_spike"``: the neurons fire on their own, s_t = Theta(u_t - theta), and the layer
  outputs s_t + o_t (the astrocyte added after the spike, no membrane coupling).
  ``coupling="none"``: no neurons at all; the layer outputs o_t. This is a plain (decayed,
  normalised, multi-head) linear-attention layer with exactly the astrocytes' state [H | z].
- ``input_current="sigmoid"``: I_t = sigmoid(W_I x_t), a nonlinear current as Fig. 1's I_t = sigma(x_t)
  (the default ``"linear"`` is A1's I_t = W_I x_t).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from engramlab.astro.neurons import LIF, LIFState, check_finite
from engramlab.nn.linear_attention import linear_attention, recurrent_step


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1 > 0: the positive feature map of keys and queries (Eq. A2)."""
    return F.elu(x) + 1.0


class AstroState(NamedTuple):
    """Astrocyte state: S = [H | z] (B, A, Dk, N/A + 1; N/A without the normaliser) and x_{t-1} (B, d)."""

    S: torch.Tensor
    x_prev: torch.Tensor


class Astrocytes(nn.Module):
    """A astrocytes, each a decayed key-value memory over its domain of N/A neurons (Eqs. A2-A3).

    forward(x (B, T, d), state=None) -> (o (B, T, N), AstroState);
    step(x_t (B, d), state) -> (o_t (B, N), AstroState). The last value column of S is z.
    """

    def __init__(
        self,
        d_in: int,
        n_neurons: int,
        n_astrocytes: int,
        d_key: int,
        tau_min: float = 16.0,
        tau_max: float = 2048.0,
        eps: float = 1e-6,
        chunk_size: int = 64,
        key_shift: bool = True,
        normalise: bool = True,
    ):
        super().__init__()
        if n_astrocytes < 1 or n_neurons % n_astrocytes:
            raise ValueError(
                f"n_neurons={n_neurons} must be divisible by n_astrocytes={n_astrocytes} (one domain each)"
            )
        if not 1 <= tau_min <= tau_max:
            raise ValueError(f"need 1 <= tau_min <= tau_max, got tau_min={tau_min}, tau_max={tau_max}")
        self.A, self.Dk, self.Dv = n_astrocytes, d_key, n_neurons // n_astrocytes
        self.eps, self.chunk_size = eps, chunk_size
        self.W_k = nn.Linear(d_in, n_astrocytes * d_key, bias=False)
        self.W_q = nn.Linear(d_in, n_astrocytes * d_key, bias=False)
        self.W_v = nn.Linear(d_in, n_neurons, bias=False)
        taus = torch.logspace(math.log10(tau_min), math.log10(tau_max), n_astrocytes)
        self.log_tau = nn.Parameter(torch.log(taus))  # lambda_a = exp(-1 / tau_a)
        self.d_in = d_in
        self.mu = nn.Parameter(torch.full((d_in,), 0.5)) if key_shift else None  # Eq. A2'
        self.normalise = bool(normalise)

    @property
    def log_decay(self) -> torch.Tensor:
        """log lambda_a = -1 / tau_a, shape (A,)."""
        return -torch.exp(-self.log_tau)

    @property
    def tau(self) -> torch.Tensor:
        return torch.exp(self.log_tau)

    def state_shape(self, batch_size: int) -> tuple[int, ...]:
        return (batch_size, self.A, self.Dk, self.Dv + int(self.normalise))

    def init_state(self, batch_size: int, device=None, dtype=None) -> AstroState:
        S = torch.zeros(self.state_shape(batch_size), device=device, dtype=dtype)
        return AstroState(S, S.new_zeros(batch_size, self.d_in))

    def check_state(self, state, batch_size: int) -> AstroState:
        if not isinstance(state, AstroState):
            raise ValueError(f"astrocyte state must be an AstroState, got {type(state).__name__}")
        want = self.state_shape(batch_size)
        if tuple(state.S.shape) != want:
            raise ValueError(f"astrocyte state has shape {tuple(state.S.shape)}, expected {want}")
        if tuple(state.x_prev.shape) != (batch_size, self.d_in):
            raise ValueError(
                f"astrocyte x_prev has shape {tuple(state.x_prev.shape)}, expected {(batch_size, self.d_in)}"
            )
        return state

    def _qkv(self, x: torch.Tensor, x_prev: torch.Tensor):
        # x, x_prev (..., d) -> q, k (..., A, Dk); v (..., A, Dv + 1) with the ones column for z
        xs = x if self.mu is None else x_prev + self.mu * (x - x_prev)  # mu x_t + (1 - mu) x_{t-1}
        q = feature_map(self.W_q(x)).unflatten(-1, (self.A, self.Dk))
        k = feature_map(self.W_k(xs)).unflatten(-1, (self.A, self.Dk))
        v = self.W_v(x).unflatten(-1, (self.A, self.Dv))
        if self.normalise:
            v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
        return q, k, v

    def _read(self, out: torch.Tensor) -> torch.Tensor:
        # out (..., A, Dv + 1) = [H q, q . z] -> o (..., A * Dv); without the normaliser out = H q
        if not self.normalise:
            return out.flatten(-2)
        return (out[..., :-1] / (out[..., -1:] + self.eps)).flatten(-2)

    def forward(self, x: torch.Tensor, state: AstroState | None = None):
        B = x.shape[0]
        state = self.init_state(B, x.device, x.dtype) if state is None else self.check_state(state, B)
        x_prev = torch.cat([state.x_prev[:, None], x[:, :-1]], dim=1)  # (B, T, d): x_{t-1}
        q, k, v = self._qkv(x, x_prev)  # (B, T, A, *)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, A, T, *)
        out, S = linear_attention(
            q,
            k,
            v,
            self.log_decay.to(x.dtype),
            include_current=True,
            chunk_size=self.chunk_size,
            state=state.S,
        )  # (B, A, T, Dv + 1)
        return self._read(out.transpose(1, 2)), AstroState(S, x[:, -1])  # (B, T, N)

    def step(self, x_t: torch.Tensor, state: AstroState):
        state = self.check_state(state, x_t.shape[0])
        q, k, v = self._qkv(x_t, state.x_prev)  # (B, A, *)
        out, S = recurrent_step(q, k, v, state.S, self.log_decay.to(x_t.dtype), include_current=True)
        return self._read(out), AstroState(S, x_t)  # (B, N)


COUPLINGS = ("membrane", "after_spike", "none")
INPUT_CURRENTS = ("linear", "sigmoid")


class AMSUState(NamedTuple):
    lif: LIFState | None  # None with coupling="none" (no neurons)
    astro: AstroState | None  # None without astrocytes


class AMSU(nn.Module):
    """The AM-SU layer: x (B, T, d) batch-major -> spikes (B, T, N) (Eqs. A1-A4).

    Internally time-major for the LIF scan, as snnTorch; the astrocyte runs in the chunked
    linear-attention layout (B, A, T, *). ``coupling``, ``spiking``, ``normalise``, ``key_shift``:
    the ablation switches (module docstring).
    """

    def __init__(
        self,
        d_in: int,
        n_neurons: int,
        astrocyte: bool = True,
        n_astrocytes: int = 4,
        d_key: int = 16,
        tau_min: float = 16.0,
        tau_max: float = 2048.0,
        chunk_size: int = 64,
        key_shift: bool = True,
        normalise: bool = True,
        coupling: str = "membrane",
        input_current: str = "linear",
        **lif_kwargs,
    ):
        super().__init__()
        if coupling not in COUPLINGS:
            raise ValueError(f"unknown coupling {coupling!r}; expected one of {COUPLINGS}")
        if input_current not in INPUT_CURRENTS:
            raise ValueError(f"unknown input_current {input_current!r}; expected one of {INPUT_CURRENTS}")
        self.input_current = input_current
        if coupling != "membrane" and not astrocyte:
            raise ValueError(f"coupling={coupling!r} needs astrocytes (astrocyte=True); without them use 'membrane'")
        self.n_neurons = n_neurons
        self.coupling = coupling
        self.W_I = nn.Linear(d_in, n_neurons, bias=False) if coupling != "none" else None
        self.astro = (
            Astrocytes(
                d_in,
                n_neurons,
                n_astrocytes,
                d_key,
                tau_min,
                tau_max,
                chunk_size=chunk_size,
                key_shift=key_shift,
                normalise=normalise,
            )
            if astrocyte
            else None
        )
        self.lif = LIF(n_neurons, **lif_kwargs) if coupling != "none" else None

    def _current(self, x: torch.Tensor) -> torch.Tensor:
        """I_t = W_I x_t (A1), or sigmoid(W_I x_t) with input_current="sigmoid"."""
        c = self.W_I(x)
        return torch.sigmoid(c) if self.input_current == "sigmoid" else c

    def init_state(self, batch_size: int, device=None, dtype=None) -> AMSUState:
        p = next(self.parameters())
        device, dtype = device or p.device, dtype or p.dtype
        lif = None if self.lif is None else self.lif.init_state(batch_size, device, dtype)
        astro = None if self.astro is None else self.astro.init_state(batch_size, device, dtype)
        return AMSUState(lif, astro)

    def reset(self, batch_size: int, device=None, dtype=None) -> AMSUState:
        """The zero state (snnTorch / SpikingJelly ``reset``); pass it as ``state``."""
        return self.init_state(batch_size, device, dtype)

    def check_state(self, state, batch_size: int) -> AMSUState:
        if not isinstance(state, AMSUState):
            raise TypeError(f"AM-SU state must be an AMSUState, got {type(state).__name__}")
        if self.lif is None:
            if state.lif is not None:
                raise ValueError("state holds a LIF state but this AM-SU has coupling='none' (no neurons)")
        elif state.lif is None:
            raise ValueError("state has no LIF state but this AM-SU has neurons")
        else:
            self.lif._check_state(state.lif, (batch_size,))
        if self.astro is None:
            if state.astro is not None:
                raise ValueError("state holds an astrocyte state but this AM-SU has astrocyte=False")
        elif state.astro is None:
            raise ValueError("state has no astrocyte state but this AM-SU has astrocytes")
        else:
            self.astro.check_state(state.astro, batch_size)
        return state

    def forward(self, x: torch.Tensor, state: AMSUState | None = None, check: bool = True):
        """x (B, T, d) -> (spikes (B, T, N), membrane (B, T, N), new state).

        With coupling="after_spike" the first output is s_t + o_t; with coupling="none" it is o_t
        and the membrane is None.

        ``check=False`` skips the finiteness check of x (a full pass and a host sync per call):
        AstroSNN's layers pass it, their input comes from checked token ids."""
        if check:
            check_finite(x, "AM-SU input")
        B = x.shape[0]
        state = self.init_state(B, x.device, x.dtype) if state is None else self.check_state(state, B)
        o, astro = (None, None) if self.astro is None else self.astro(x, state.astro)
        if self.lif is None:  # coupling="none": the astrocyte memory alone (linear attention)
            return o, None, AMSUState(None, astro)
        current = self._current(x)  # (B, T, N)
        into = o if self.coupling == "membrane" else None
        spk, mem, lif = self.lif(
            current.transpose(0, 1), None if into is None else into.transpose(0, 1), state.lif, check=False
        )  # (T, B, N)
        spk = spk.transpose(0, 1)
        if self.coupling == "after_spike":
            spk = spk + o
        return spk, mem.transpose(0, 1), AMSUState(lif, astro)

    def step(self, x_t: torch.Tensor, state: AMSUState):
        """x_t (B, d) -> (s_t (B, N), u_t (B, N), new state)."""
        state = self.check_state(state, x_t.shape[0])
        o, astro = (None, None) if self.astro is None else self.astro.step(x_t, state.astro)
        if self.lif is None:
            return o, None, AMSUState(None, astro)
        s, u, lif = self.lif.step(self._current(x_t), o if self.coupling == "membrane" else None, state.lif)
        if self.coupling == "after_spike":
            s = s + o
        return s, u, AMSUState(lif, astro)
