"""Leaky RNN with trainable per-neuron timescales (Khajehabdollahi, Zeraati et al., ICLR 2024).

Default model (official ``RNN_Stack``; the paper's equation numbers could not be checked, the full text
was not available), for neuron i, with tau_hat_i = max(tau_i, 1):

    r_i(t) = f( (1 - 1/tau_hat_i) r_i(t-1)
                + (1/tau_hat_i) [ sum_j W^R_ij r_j(t-1) + b^R_i + W^I_i x(t) + b^I_i ] )

"mod" variant (official ``RNN_Mod``; non-linearity on the input term only, a leaky integrator of rates):

    r_i(t) = (1 - 1/tau_hat_i) r_i(t-1)
             + (1/tau_hat_i) f( sum_j W^R_ij r_j(t-1) + b^R_i + W^I_i x(t) + b^I_i )

f = LeakyReLU (slope 0.01). Self-connections are held at zero (W^R_ii = 0: the forward pass uses
W^R masked off the diagonal, so the diagonal never acts and receives no gradient). The initial state is
r(0) ~ 0.1 U(0, 1) per neuron and sequence. Readout heads (``Linear(H, 2)`` each) read r at the last step;
all heads are one batched parameter ``(n_heads, 2, H)``.

Speed: the input projection W^I x + b^I + b^R is computed for all steps at once; the recurrence runs in
a fused loop whose backward pass is written by hand (``impl="fused"``): the forward stores only r(t)
and the pre-activation, the backward runs one (B,H)x(H,H) product per step and the weight gradient is a
single (H, T*B) x (T*B, H) product at the end. ``impl="autograd"`` is the plain step-by-step loop
(reference; used by the tests) and ``impl="script"`` the same loop compiled by TorchScript.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from engramlab.pretrained import Pretrained
from engramlab.train.config import config_from_dict, config_to_json

VARIANTS = ("default", "mod")
ACTIVATIONS = ("leakyrelu", "relu", "tanh", "sigmoid")
IMPLS = ("fused", "autograd", "script")
LEAKY_SLOPE = 0.01


@dataclass
class LeakyRNNConfig:
    n_neurons: int = 500
    n_heads: int = 100
    n_classes: int = 2
    train_tau: bool = True
    tau: float = 1.0  # fixed tau (train_tau=False) or the offset of the init tau + U(0, 1)
    variant: str = "default"  # "default" | "mod"
    activation: str = "leakyrelu"  # "mod" only may use relu / tanh / sigmoid
    impl: str = "fused"  # "fused" | "autograd" | "script"

    def __post_init__(self):
        for name in ("n_neurons", "n_heads", "n_classes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.variant == "default" and self.activation != "leakyrelu":
            raise ValueError(
                f"the default model uses f = leakyrelu (the paper's); got activation={self.activation!r}; "
                "other activations are for variant='mod'"
            )
        if self.impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {self.impl!r}")
        if not math.isfinite(self.tau) or self.tau < 1.0:
            raise ValueError(f"tau must be a finite float >= 1, got {self.tau!r}")

    def to_json(self) -> str:
        return config_to_json(self)

    @classmethod
    def from_dict(cls, d: dict) -> LeakyRNNConfig:
        return config_from_dict(cls, d)


def _act(z: torch.Tensor, name: str) -> torch.Tensor:
    if name == "leakyrelu":
        return F.leaky_relu(z, LEAKY_SLOPE)
    if name == "relu":
        return F.relu(z)
    if name == "tanh":
        return torch.tanh(z)
    return torch.sigmoid(z)


def _act_grad(z: torch.Tensor, name: str) -> torch.Tensor:
    if name == "leakyrelu":
        return (z > 0).to(z.dtype) * (1 - LEAKY_SLOPE) + LEAKY_SLOPE  # in z.dtype (float64 tests)
    if name == "relu":
        return (z > 0).to(z.dtype)
    if name == "tanh":
        return 1 - torch.tanh(z) ** 2
    s = torch.sigmoid(z)
    return s * (1 - s)


# ----------------------------------------------------------------------------- recurrences
def recurrence_reference(u_in, h0, w, s, variant: str = "default", activation: str = "leakyrelu"):
    """Step-by-step loop, differentiated by autograd. u_in (T,B,H), h0 (B,H), w (H,H), s = 1/tau_hat (H,)
    or (1,). Returns all states r(1..T) as (T, B, H)."""
    h = h0
    a = 1 - s
    out = []
    for t in range(u_in.shape[0]):
        z = u_in[t] + h @ w.t()  # (B, H)
        if variant == "default":
            h = _act(a * h + s * z, activation)
        else:
            h = a * h + s * _act(z, activation)
        out.append(h)
    return torch.stack(out)


def _recurrence_loop_default(u_in: torch.Tensor, h0: torch.Tensor, w: torch.Tensor, s: torch.Tensor):
    h = h0
    a = 1 - s
    wt = w.t()
    out = []
    for t in range(u_in.shape[0]):
        h = F.leaky_relu(a * h + s * torch.addmm(u_in[t], h, wt), 0.01)
        out.append(h)
    return torch.stack(out)


_scripted_default = None


def _recurrence_script_default(u_in: torch.Tensor, h0: torch.Tensor, w: torch.Tensor, s: torch.Tensor):
    """``impl="script"``: the loop above compiled by TorchScript, on first use.

    This implementation exists to measure TorchScript against the fused and autograd loops
    (benchmarks/timescales.py); the default, ``impl="fused"``, does not use it. PyTorch 2.x
    deprecates ``torch.jit.script`` (in favour of torch.compile); scripting here, only when this
    implementation is asked for, is deliberate, so that one DeprecationWarning is silenced here.
    """
    global _scripted_default
    if _scripted_default is None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", DeprecationWarning)
            _scripted_default = torch.jit.script(_recurrence_loop_default)
    return _scripted_default(u_in, h0, w, s)


class _FusedRecurrence(torch.autograd.Function):
    """Fused leaky recurrence with a hand-written backward (see module docstring)."""

    @staticmethod
    def forward(ctx, u_in, h0, w, s, variant: str, activation: str):
        T, B, H = u_in.shape
        a = 1 - s
        hs = u_in.new_empty(T + 1, B, H)  # r(0..T)
        zs = u_in.new_empty(T, B, H)  # z(t) = W r(t-1) + u_in(t)
        hs[0] = h0
        wt = w.t()
        for t in range(T):
            z = torch.addmm(u_in[t], hs[t], wt, out=zs[t])
            if variant == "default":
                # r(t) = f(a r(t-1) + s z(t)); a r + s z = r + s (z - r)
                torch.addcmul(hs[t], s, z - hs[t], out=hs[t + 1])
                F.leaky_relu_(hs[t + 1], LEAKY_SLOPE)
            else:
                torch.addcmul(a * hs[t], s, _act(z, activation), out=hs[t + 1])
        ctx.save_for_backward(hs, zs, w, s)
        ctx.variant = variant
        ctx.activation = activation
        return hs[1:]

    @staticmethod
    def backward(ctx, grad_hs):
        hs, zs, w, s = ctx.saved_tensors
        variant, activation = ctx.variant, ctx.activation
        T, B, H = zs.shape
        a = 1 - s
        need_s = ctx.needs_input_grad[3]
        dz_all = torch.empty_like(zs)  # dL/dz(t) = dL/du_in(t)
        ds = torch.zeros(B, H, dtype=zs.dtype, device=zs.device) if need_s else None
        g = torch.zeros(B, H, dtype=zs.dtype, device=zs.device)  # dL/dr(t)
        for t in range(T - 1, -1, -1):
            g = g + grad_hs[t]
            h_prev, z = hs[t], zs[t]
            if variant == "default":
                du = torch.where(hs[t + 1] > 0, g, g * LEAKY_SLOPE)  # f'(u) from the sign of r(t)
                dz = torch.mul(du, s, out=dz_all[t])
                if need_s:
                    ds.addcmul_(du, z - h_prev)
                g = torch.addmm(du * a, dz, w)  # dL/dr(t-1)
            else:
                dz = torch.mul(g * s, _act_grad(z, activation), out=dz_all[t])
                if need_s:
                    ds.addcmul_(g, _act(z, activation) - h_prev)
                g = torch.addmm(g * a, dz, w)
        dw = dz_all.reshape(T * B, H).t() @ hs[:-1].reshape(T * B, H)  # (H, H)
        d_s = None
        if need_s:
            d_s = ds.sum(0)
            if s.shape != d_s.shape:
                d_s = d_s.sum().reshape(s.shape)
        return dz_all, g, dw, d_s, None, None


def recurrence_fused(u_in, h0, w, s, variant: str = "default", activation: str = "leakyrelu"):
    return _FusedRecurrence.apply(u_in, h0, w, s, variant, activation)


# ----------------------------------------------------------------------------- heads
class Heads(nn.Module):
    """``n_heads`` independent Linear(H, n_classes) readouts as one batched parameter."""

    def __init__(self, n_heads: int, n_in: int, n_classes: int = 2):
        super().__init__()
        bound = 1 / math.sqrt(n_in)  # PyTorch's default nn.Linear init
        self.weight = nn.Parameter(torch.empty(n_heads, n_classes, n_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_heads, n_classes).uniform_(-bound, bound))

    @property
    def n_heads(self) -> int:
        return self.weight.shape[0]

    def forward(self, h: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        """h (..., H) -> logits (K, ..., n_classes) for the K selected heads (all by default)."""
        w, b = self.weight, self.bias
        if heads is not None:
            w, b = w[heads], b[heads]
        lead = h.shape[:-1]
        out = torch.einsum("nh,kch->knc", h.reshape(-1, h.shape[-1]), w) + b[:, None, :]
        return out.reshape(w.shape[0], *lead, w.shape[1])


def check_heads(heads, n_heads: int) -> torch.Tensor | None:
    if heads is None:
        return None
    idx = torch.as_tensor(heads, dtype=torch.long).reshape(-1)
    if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= n_heads:
        raise ValueError(f"head indices must lie in [0, {n_heads - 1}], got {idx.tolist()}")
    return idx


# ----------------------------------------------------------------------------- model
class LeakyRNN(Pretrained, nn.Module):
    """The paper's leaky RNN. ``model(x)``, x (B, T, 1) -> logits (n_heads, B, 2) at the last step.

    Saved as model "leaky_rnn" (``save_pretrained`` / ``from_pretrained`` / ``engramlab.load``).
    """

    config_class = LeakyRNNConfig

    def __init__(self, config: LeakyRNNConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = LeakyRNNConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a LeakyRNNConfig or keyword arguments, not both")
        self.config = c = config
        H = c.n_neurons
        self.input = nn.Linear(1, H)  # W^I, b^I
        self.recurrent = nn.Linear(H, H)  # W^R, b^R
        with torch.no_grad():
            self.recurrent.weight.fill_diagonal_(0.0)
        self.register_buffer("offdiag", 1.0 - torch.eye(H), persistent=False)
        if c.train_tau:
            self.taus = nn.Parameter(c.tau + torch.rand(H))  # tau_i ~ tau + U(0, 1) = U[1, 2] by default
        else:
            self.register_buffer("taus", torch.full((1,), float(c.tau)))  # a buffer: truly fixed
        self.heads = Heads(c.n_heads, H, c.n_classes)

    # -- helpers
    @property
    def tau_hat(self) -> torch.Tensor:
        """max(tau, 1) per neuron (H,) or the shared fixed tau (1,)."""
        return torch.clamp(self.taus, min=1.0)

    def w_rec(self) -> torch.Tensor:
        """W^R with the diagonal held at zero (no self-connections)."""
        return self.recurrent.weight * self.offdiag

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """r(0) ~ 0.1 U(0, 1), (B, H)."""
        w = self.recurrent.weight
        return 0.1 * torch.rand(batch, self.config.n_neurons, generator=generator).to(w.device, w.dtype)

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """W^I x(t) + b^I + b^R for all steps at once: x (B, T, 1) -> (T, B, H)."""
        xt = x.transpose(0, 1)  # (T, B, 1)
        return xt * self.input.weight[:, 0] + (self.input.bias + self.recurrent.bias)

    def run(self, x: torch.Tensor, h0: torch.Tensor | None = None, impl: str | None = None) -> torch.Tensor:
        """All hidden states r(1..T): x (B, T, 1) -> (T, B, H)."""
        if x.dim() != 3 or x.shape[-1] != 1:
            raise ValueError(f"x must have shape (B, T, 1), got {tuple(x.shape)}")
        c = self.config
        impl = impl or c.impl
        if h0 is None:
            h0 = self.init_state(x.shape[0])
        u_in = self.input_drive(x.to(self.recurrent.weight.dtype))
        w = self.w_rec()
        s = 1.0 / self.tau_hat
        if impl == "fused":
            return recurrence_fused(u_in, h0, w, s, c.variant, c.activation)
        if impl == "script" and c.variant == "default":
            return _recurrence_script_default(u_in, h0, w, s)
        return recurrence_reference(u_in, h0, w, s, c.variant, c.activation)

    def forward(
        self, x: torch.Tensor, heads=None, h0: torch.Tensor | None = None, in_time: bool = False
    ) -> torch.Tensor:
        """x (B, T, 1) -> logits (K, B, n_classes) at the last step, or (K, B, T, n_classes) if in_time."""
        idx = check_heads(heads, self.config.n_heads)
        hs = self.run(x, h0)  # (T, B, H)
        if in_time:
            return self.heads(hs.transpose(0, 1), idx)
        return self.heads(hs[-1], idx)


# ----------------------------------------------------------------------------- GRU / LSTM baselines
@dataclass
class GatedRNNConfig:
    cell: str = "lstm"  # "lstm" | "gru"
    n_neurons: int = 500
    n_heads: int = 100
    n_classes: int = 2

    def __post_init__(self):
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        for name in ("n_neurons", "n_heads", "n_classes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")

    def to_json(self) -> str:
        return config_to_json(self)

    @classmethod
    def from_dict(cls, d: dict) -> GatedRNNConfig:
        return config_from_dict(cls, d)


class GatedRNN(Pretrained, nn.Module):
    """GRU / LSTM baseline (one layer, default init) with the same batched readout heads.

    The official LSTM script feeds +-1 inputs; ``forward`` maps the {0, 1} bits to 2x - 1.
    Saved as model "gated_rnn" (the cell is in its config).
    """

    config_class = GatedRNNConfig

    def __init__(self, config: GatedRNNConfig | None = None, **kwargs):
        super().__init__()
        self.config = c = config or GatedRNNConfig(**kwargs)
        rnn = nn.LSTM if c.cell == "lstm" else nn.GRU
        self.rnn = rnn(1, c.n_neurons, batch_first=True)
        self.heads = Heads(c.n_heads, c.n_neurons, c.n_classes)

    def forward(self, x: torch.Tensor, heads=None, in_time: bool = False) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != 1:
            raise ValueError(f"x must have shape (B, T, 1), got {tuple(x.shape)}")
        idx = check_heads(heads, self.config.n_heads)
        out, _ = self.rnn(2 * x - 1)  # (B, T, H)
        return self.heads(out if in_time else out[:, -1], idx)
