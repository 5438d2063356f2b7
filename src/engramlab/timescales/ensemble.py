"""K independent leaky RNNs trained at once as one batched model (seeds or conditions of one experiment).

Every parameter of the K member networks is stacked along a leading member axis (shapes below); the
recurrence runs one batched product (K, B, H) x (K, H, H) per time step (``torch.baddbmm``), so K small
networks cost about as many kernel launches as one. Nothing couples the members:

* each member has its own weights, its own tau (trainable per neuron, or fixed: the fixed value is held
  in the stacked tensor but receives no gradient and is never updated), its own readout heads (padded to
  the largest member's head count; the padding is never read) and its own curriculum position (N / set
  of heads, advanced on its own criterion after every epoch exactly as ``curriculum.train_curriculum``);
* each member sees its own batches (its own data generator, its own sequence length M). Members of one
  step may have different M: sequences are right-aligned on a common time axis of length max(M), a
  member's state is held at r(0) until its own sequence starts, and the batched product runs only on
  the members whose sequence has started (members are sorted by M, so those are a prefix);
* the loss that is differentiated is the *sum* of the members' losses (so each member's gradient is its
  own), gradients are clipped per member (each member's own global norm), and the optimizer
  (:class:`EnsembleOptimizer`: SGD with momentum / Nesterov, or Adam) keeps per-member state, step
  counts, learning rates and learning-rate schedules.

Hence one ensemble step equals K separate ``LeakyRNN`` steps with their own optimizers (the tests check
this step by step in float64, curriculum advances included).

Shapes: K members, H neurons, B batch, T time steps, NH heads (largest member), C classes.

    input_weight (K, H)        W^I           rec_weight (K, H, H)  W^R (diagonal held at zero)
    input_bias   (K, H)        b^I           rec_bias   (K, H)     b^R
    taus         (K, H)        tau           head_weight (K, NH, C, H), head_bias (K, NH, C)

Device-agnostic: the ensemble lives wherever ``.to(device)`` puts it; batches are drawn on the CPU by
per-member generators (as the single-network curriculum draws them) and moved to the ensemble's device.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from engramlab.data.tasks import make_timescale_batch
from engramlab.io import atomic_write_text, dumps_json, write_json

from .curriculum import TrainConfig, build_model, save_checkpoint
from .model import LEAKY_SLOPE, LeakyRNN, LeakyRNNConfig, _act, _act_grad


# ----------------------------------------------------------------------------- batched recurrence
def _check_n_active(n_active, T: int, K: int) -> list[int]:
    if n_active is None:
        return [K] * T
    n_active = [int(n) for n in n_active]
    if (
        len(n_active) != T
        or any(b < a for a, b in zip(n_active, n_active[1:]))
        or (n_active and (n_active[0] < 0 or n_active[-1] != K))
    ):
        raise ValueError(f"n_active must be a non-decreasing list of {T} member counts ending at K={K}, got {n_active}")
    return n_active


def ensemble_recurrence_reference(
    x,
    w_in,
    b,
    h0,
    w,
    s,
    n_active=None,
    variant: str = "default",
    activation: str = "leakyrelu",
    return_all: bool = True,
):
    """Step-by-step loop, one member at a time, differentiated by autograd (the reference of the tests).

    x (K, T, B) inputs, w_in (K, H) = W^I, b (K, H) = b^I + b^R, h0 (K, B, H), w (K, H, H) = W^R,
    s = 1/tau_hat (K, H). At step t only members ``0 .. n_active[t] - 1`` update; the others keep their
    state. Returns r(1..T) as (K, T, B, H), or r(T) (K, B, H) when ``return_all`` is False.
    """
    K, T = x.shape[:2]
    n_active = _check_n_active(n_active, T, K)
    members = []
    for k in range(K):
        h = h0[k]
        a, sk = 1 - s[k], s[k]
        out = []
        for t in range(T):
            if k < n_active[t]:
                z = x[k, t][:, None] * w_in[k] + b[k] + h @ w[k].t()
                h = _act(a * h + sk * z, activation) if variant == "default" else a * h + sk * _act(z, activation)
            out.append(h)
        members.append(torch.stack(out))
    hs = torch.stack(members)
    return hs if return_all else hs[:, -1]


class _EnsembleRecurrence(torch.autograd.Function):
    """The fused recurrence of ``model._FusedRecurrence`` with a leading member axis and a hand-written
    backward. At step t only the first ``n_active[t]`` members update (the rest hold their state).

    Storage is member-major, (K, T, B, H), so that the weight gradients at the end are one batched
    (H, T*B) x (T*B, H) product per member without copies; the input drive W^I x + b is formed inside
    (its gradients are batched products too, not strided reductions over a broadcast).
    """

    @staticmethod
    def forward(ctx, x, w_in, b, h0, w, s, n_active, variant: str, activation: str, return_all: bool):
        K, T, B = x.shape
        H = w.shape[-1]
        a = (1 - s)[:, None, :]  # (K, 1, H)
        sb = s[:, None, :]
        zs = torch.addcmul(b[:, None, None, :], x[..., None], w_in[:, None, None, :])  # u_in, then z in place
        hs = x.new_empty(K, T + 1, B, H)  # r(0..T)
        hs[:, 0] = h0
        wt = w.transpose(1, 2)
        for t in range(T):
            n = n_active[t]
            if n < K:
                hs[n:, t + 1] = hs[n:, t]
            if n == 0:
                continue
            h_prev = hs[:n, t]
            z = zs[:n, t].baddbmm_(h_prev, wt[:n])  # z(t) = W r(t-1) + u_in(t)
            if variant == "default":
                torch.addcmul(h_prev, sb[:n], z - h_prev, out=hs[:n, t + 1])  # a r + s z = r + s (z - r)
                F.leaky_relu_(hs[:n, t + 1], LEAKY_SLOPE)
            else:
                torch.addcmul(a[:n] * h_prev, sb[:n], _act(z, activation), out=hs[:n, t + 1])
        ctx.save_for_backward(x, hs, zs, w, s)
        ctx.n_active, ctx.variant, ctx.activation, ctx.return_all = n_active, variant, activation, return_all
        return hs[:, 1:] if return_all else hs[:, -1]

    @staticmethod
    def backward(ctx, grad_out):
        x, hs, zs, w, s = ctx.saved_tensors
        n_active, variant, activation = ctx.n_active, ctx.variant, ctx.activation
        K, T, B, H = zs.shape
        a = (1 - s)[:, None, :]
        sb = s[:, None, :]
        need_s = ctx.needs_input_grad[5]
        dz_all = torch.empty_like(zs)  # dL/dz(t) = dL/du_in(t); zero where a member is not active
        ds = torch.zeros(K, B, H, dtype=zs.dtype, device=zs.device) if need_s else None
        if ctx.return_all:
            g = torch.zeros(K, B, H, dtype=zs.dtype, device=zs.device)  # dL/dr(t)
        else:
            g = grad_out.clone()
        for t in range(T - 1, -1, -1):
            if ctx.return_all:
                g += grad_out[:, t]
            n = n_active[t]
            if n < K:
                dz_all[n:, t].zero_()
            if n == 0:
                continue
            h_prev, z, gn = hs[:n, t], zs[:n, t], g[:n]
            if variant == "default":
                du = torch.where(hs[:n, t + 1] > 0, gn, gn * LEAKY_SLOPE)  # f'(u) from the sign of r(t)
                dz = torch.mul(du, sb[:n], out=dz_all[:n, t])
                if need_s:
                    ds[:n].addcmul_(du, z - h_prev)
                torch.baddbmm(du * a[:n], dz, w[:n], out=g[:n])  # dL/dr(t-1)
            else:
                dz = torch.mul(gn * sb[:n], _act_grad(z, activation), out=dz_all[:n, t])
                if need_s:
                    ds[:n].addcmul_(gn, _act(z, activation) - h_prev)
                torch.baddbmm(gn * a[:n], dz, w[:n], out=g[:n])
        dzf = dz_all.view(K, T * B, H)
        # dW_k = sum_t dz_k(t)^T r_k(t-1), dW^I_k = sum_t x_k(t)^T dz_k(t), db_k = sum_t,b dz_k(t)
        dw = torch.bmm(dzf.transpose(1, 2), hs[:, :-1].reshape(K, T * B, H))
        d_win = torch.bmm(x.reshape(K, 1, T * B), dzf).view(K, H)
        d_b = dzf.sum(1)
        d_s = ds.sum(1) if need_s else None
        return None, d_win, d_b, g, dw, d_s, None, None, None, None


def ensemble_recurrence(
    x,
    w_in,
    b,
    h0,
    w,
    s,
    n_active=None,
    variant: str = "default",
    activation: str = "leakyrelu",
    return_all: bool = True,
):
    """Fused batched recurrence (arguments as :func:`ensemble_recurrence_reference`): x (K, T, B) ->
    r(1..T) (K, T, B, H), or r(T) (K, B, H) when ``return_all`` is False."""
    K, T = x.shape[:2]
    return _EnsembleRecurrence.apply(
        x.contiguous(), w_in, b, h0, w, s, _check_n_active(n_active, T, K), variant, activation, return_all
    )


# ----------------------------------------------------------------------------- model
_STACK_MODEL_FIELDS = ("n_neurons", "n_classes", "variant", "activation")


def _check_members_stack(configs: Sequence[LeakyRNNConfig]) -> list[LeakyRNNConfig]:
    configs = list(configs)
    if len(configs) < 1:
        raise ValueError(f"an ensemble needs at least one member (K >= 1), got K={len(configs)}")
    for i, c in enumerate(configs):
        if not isinstance(c, LeakyRNNConfig):
            raise TypeError(f"member {i}: expected a LeakyRNNConfig, got {type(c).__name__}")
    for name in _STACK_MODEL_FIELDS:
        vals = [getattr(c, name) for c in configs]
        if any(v != vals[0] for v in vals):
            bad = next(i for i, v in enumerate(vals) if v != vals[0])
            raise ValueError(
                f"ensemble members cannot be stacked: {name} differs (member 0: {vals[0]!r}, member {bad}: "
                f"{vals[bad]!r}); expected every member to have {name}={vals[0]!r} like member 0 (one ensemble "
                f"stacks members with equal {', '.join(_STACK_MODEL_FIELDS)}; train the others in a separate "
                "ensemble)"
            )
    return configs


class LeakyRNNEnsemble(nn.Module):
    """K independent :class:`~engramlab.timescales.model.LeakyRNN` members as one batched module.

    ``LeakyRNNEnsemble(configs)`` draws member k's initial weights exactly as ``LeakyRNN(configs[k])``
    would (members in order, from the global RNG); :meth:`from_models` stacks existing networks and
    :meth:`member` returns member k as a plain ``LeakyRNN``. Members may differ in n_heads, train_tau
    and tau; they must share n_neurons, n_classes, variant and activation.
    """

    def __init__(self, configs: Sequence[LeakyRNNConfig]):
        super().__init__()
        self.configs = _check_members_stack(configs)
        K, c0 = len(self.configs), self.configs[0]
        H, C = c0.n_neurons, c0.n_classes
        self.member_n_heads = [c.n_heads for c in self.configs]
        NH = max(self.member_n_heads)
        self.input_weight = nn.Parameter(torch.zeros(K, H))
        self.input_bias = nn.Parameter(torch.zeros(K, H))
        self.rec_weight = nn.Parameter(torch.zeros(K, H, H))
        self.rec_bias = nn.Parameter(torch.zeros(K, H))
        self.taus = nn.Parameter(torch.ones(K, H))
        self.head_weight = nn.Parameter(torch.zeros(K, NH, C, H))
        self.head_bias = nn.Parameter(torch.zeros(K, NH, C))
        self.register_buffer("offdiag", 1.0 - torch.eye(H), persistent=False)
        self.register_buffer("tau_trainable", torch.tensor([c.train_tau for c in self.configs]), persistent=False)
        for k, c in enumerate(self.configs):
            self.load_member(k, LeakyRNN(c))

    @classmethod
    def from_models(cls, models: Sequence[LeakyRNN]) -> LeakyRNNEnsemble:
        """Stack existing networks (copies their weights; device and dtype of the first model)."""
        models = list(models)
        for i, m in enumerate(models):
            if not isinstance(m, LeakyRNN):
                raise TypeError(f"member {i}: expected a LeakyRNN, got {type(m).__name__}")
        configs = _check_members_stack([m.config for m in models])
        with torch.random.fork_rng(devices=[]):  # the placeholder init must not move the global RNG
            ens = cls(configs)
        w = models[0].recurrent.weight
        ens = ens.to(device=w.device, dtype=w.dtype)
        for k, m in enumerate(models):
            ens.load_member(k, m)
        return ens

    # -- members
    @property
    def n_members(self) -> int:
        return len(self.configs)

    @property
    def n_neurons(self) -> int:
        return self.configs[0].n_neurons

    @torch.no_grad()
    def load_member(self, k: int, model: LeakyRNN) -> None:
        """Copy the weights of ``model`` into member slot k (its config must be ``configs[k]``)."""
        self._check_member_index(k)
        if not isinstance(model, LeakyRNN) or model.config != self.configs[k]:
            got = model.config if isinstance(model, LeakyRNN) else type(model).__name__
            raise ValueError(f"member {k}: expected a LeakyRNN with config {self.configs[k]}, got {got}")
        nh = self.member_n_heads[k]
        self.input_weight[k] = model.input.weight[:, 0]
        self.input_bias[k] = model.input.bias
        self.rec_weight[k] = model.recurrent.weight
        self.rec_weight[k].fill_diagonal_(0.0)
        self.rec_bias[k] = model.recurrent.bias
        self.taus[k] = model.taus.detach().expand(self.n_neurons)  # a fixed tau: (1,) -> every neuron
        self.head_weight[k] = 0.0
        self.head_bias[k] = 0.0
        self.head_weight[k, :nh] = model.heads.weight
        self.head_bias[k, :nh] = model.heads.bias

    @torch.no_grad()
    def member(self, k: int) -> LeakyRNN:
        """Member k as a standalone ``LeakyRNN`` (a copy, on the ensemble's device and dtype)."""
        self._check_member_index(k)
        c, nh = self.configs[k], self.member_n_heads[k]
        with torch.random.fork_rng(devices=[]):
            m = LeakyRNN(c)
        m = m.to(device=self.rec_weight.device, dtype=self.rec_weight.dtype)
        m.input.weight[:, 0] = self.input_weight[k]
        m.input.bias.copy_(self.input_bias[k])
        m.recurrent.weight.copy_(self.rec_weight[k])
        m.recurrent.bias.copy_(self.rec_bias[k])
        m.taus.copy_(self.taus[k] if c.train_tau else self.taus[k, :1])
        m.heads.weight.copy_(self.head_weight[k, :nh])
        m.heads.bias.copy_(self.head_bias[k, :nh])
        return m

    def _check_member_index(self, k) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.n_members:
            raise IndexError(f"member index must be an int in [0, {self.n_members - 1}], got {k!r}")

    def _member_index(self, members) -> tuple[list[int], torch.Tensor | None]:
        """Validated member list and an index tensor (None when it is every member in order)."""
        if members is None:
            return list(range(self.n_members)), None
        members = [int(m) for m in members]
        if not members or len(set(members)) != len(members):
            raise ValueError(f"members must be a non-empty list of distinct member indices, got {members}")
        for m in members:
            self._check_member_index(m)
        if members == list(range(self.n_members)):
            return members, None
        return members, torch.tensor(members, device=self.rec_weight.device)

    def tau_hat(self) -> torch.Tensor:
        """max(tau, 1) per member and neuron (K, H); fixed-tau members pass no gradient to their tau."""
        taus = torch.where(self.tau_trainable[:, None], self.taus, self.taus.detach())
        return torch.clamp(taus, min=1.0)

    def init_state(
        self, batch: int, generators: Sequence[torch.Generator | None] | None = None, members=None
    ) -> torch.Tensor:
        """r(0) ~ 0.1 U(0, 1) per member, (K', B, H); member k's draw uses ``generators[k]`` (CPU)."""
        members, _ = self._member_index(members)
        generators = [None] * len(members) if generators is None else list(generators)
        if len(generators) != len(members):
            raise ValueError(f"got {len(generators)} generators for {len(members)} members")
        w = self.rec_weight
        return torch.stack([0.1 * torch.rand(batch, self.n_neurons, generator=g) for g in generators]).to(
            w.device, w.dtype
        )

    # -- forward
    def _sort_and_pad(self, xs: Sequence[torch.Tensor]):
        lengths = []
        for i, x in enumerate(xs):
            if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != 1:
                got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"xs[{i}] must be a tensor of shape (B, T, 1), got {got}")
            if x.shape[0] != xs[0].shape[0]:
                raise ValueError(
                    f"every member's batch must have the same size B to be stacked: xs[0] has B={xs[0].shape[0]}, "
                    f"xs[{i}] has B={x.shape[0]}"
                )
            lengths.append(x.shape[1])
        order = sorted(range(len(xs)), key=lambda i: -lengths[i])  # longest first: active members = prefix
        T = lengths[order[0]]
        w = self.rec_weight
        x_pad = (
            torch.stack([F.pad(xs[i].to(w.device, w.dtype)[..., 0], (T - lengths[i], 0)) for i in order])
            .transpose(1, 2)
            .contiguous()
        )  # (K', T, B), right-aligned
        n_active = [sum(lengths[i] >= T - t for i in order) for t in range(T)]
        return order, x_pad, n_active

    def hidden_last(
        self, xs: Sequence[torch.Tensor], h0: torch.Tensor | None = None, members=None, impl: str = "fused"
    ) -> torch.Tensor:
        """r at each member's last step: xs[k] (B, M_k, 1) -> (K', B, H) for the members ``members``
        (default all, in order). ``impl="reference"`` uses the autograd loop."""
        members, idx = self._member_index(members)
        if len(xs) != len(members):
            raise ValueError(f"got {len(xs)} input batches for {len(members)} members")
        if impl not in ("fused", "reference"):
            raise ValueError(f"impl must be 'fused' or 'reference', got {impl!r}")
        order, x_pad, n_active = self._sort_and_pad(xs)
        B = x_pad.shape[2]  # x_pad (K', T, B)
        if h0 is None:
            h0 = self.init_state(B, members=members)
        if h0.shape != (len(members), B, self.n_neurons):
            raise ValueError(f"h0 must have shape {(len(members), B, self.n_neurons)}, got {tuple(h0.shape)}")
        dev = x_pad.device
        rows = [members[i] for i in order]  # ensemble row of each sorted position
        if rows == list(range(self.n_members)):
            pick = lambda p: p
        else:
            rows_t = torch.tensor(rows, device=dev)
            pick = lambda p: p.index_select(0, rows_t)
        w = pick(self.rec_weight) * self.offdiag  # (K', H, H), no self-connections
        s = 1.0 / pick(self.tau_hat())  # (K', H)
        w_in, b = pick(self.input_weight), pick(self.input_bias) + pick(self.rec_bias)  # (K', H): W^I, b^I + b^R
        sorted_ = order != list(range(len(order)))
        h0s = h0.index_select(0, torch.tensor(order, device=dev)) if sorted_ else h0
        c = self.configs[0]
        run = ensemble_recurrence if impl == "fused" else ensemble_recurrence_reference
        h_last = run(x_pad, w_in, b, h0s, w, s, n_active, c.variant, c.activation, return_all=False)  # (K', B, H)
        if not sorted_:
            return h_last
        inv = [0] * len(order)
        for j, i in enumerate(order):
            inv[i] = j
        return h_last.index_select(0, torch.tensor(inv, device=dev))  # back to the order of ``members``

    def _heads_index(self, heads, members: list[int]):
        if heads is None:
            heads = [list(range(self.member_n_heads[m])) for m in members]
        if len(heads) != len(members):
            raise ValueError(f"got {len(heads)} head lists for {len(members)} members")
        rows = []
        for m, hk in zip(members, heads):
            hk = torch.as_tensor(hk, dtype=torch.long).reshape(-1).tolist()
            nh = self.member_n_heads[m]
            if not hk or min(hk) < 0 or max(hk) >= nh:
                raise ValueError(f"member {m}: head indices must lie in [0, {nh - 1}], got {hk}")
            rows.append(hk)
        J = max(len(r) for r in rows)
        dev = self.rec_weight.device
        idx = torch.tensor([r + [0] * (J - len(r)) for r in rows], device=dev)  # (K', J), padded with head 0
        mask = torch.tensor([[True] * len(r) + [False] * (J - len(r)) for r in rows], device=dev)
        return idx, mask

    def forward(
        self, xs: Sequence[torch.Tensor], heads=None, h0: torch.Tensor | None = None, members=None, impl: str = "fused"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """xs[k] (B, M_k, 1) -> (logits (K', J, B, C), mask (K', J)).

        ``heads[k]`` lists member k's heads to read (default all of its heads); J is the longest list and
        ``mask`` marks the real (non-padding) entries. ``members`` selects a subset (default all).
        """
        members, idx = self._member_index(members)
        h = self.hidden_last(xs, h0, members, impl)  # (K', B, H)
        hidx, mask = self._heads_index(heads, members)
        rows = torch.arange(self.n_members, device=h.device)[:, None] if idx is None else idx[:, None]
        w, b = self.head_weight[rows, hidx], self.head_bias[rows, hidx]  # (K', J, C, H), (K', J, C)
        return torch.einsum("kbh,kjch->kjbc", h, w) + b[:, :, None, :], mask

    def member_losses(self, xs, ys, heads=None, h0=None, members=None, impl: str = "fused") -> torch.Tensor:
        """Per-member loss (K',): the sum over its heads of the batch-mean cross-entropy (the curriculum's
        loss). ``ys[k]`` (J_k, B) are member k's labels, one row per head in ``heads[k]``."""
        logits, mask = self(xs, heads, h0, members, impl)
        K_, J, B, C = logits.shape
        if len(ys) != K_:
            raise ValueError(f"got {len(ys)} label tensors for {K_} members")
        y = torch.zeros(K_, J, B, dtype=torch.long, device=logits.device)
        for k, yk in enumerate(ys):
            nj = int(mask[k].sum())
            if tuple(yk.shape) != (nj, B):
                raise ValueError(f"ys[{k}] must have shape {(nj, B)} (one row per head), got {tuple(yk.shape)}")
            y[k, :nj] = yk.to(logits.device)
        ce = F.cross_entropy(logits.reshape(-1, C), y.reshape(-1), reduction="none").reshape(K_, J, B)
        return (ce * mask[:, :, None]).sum((1, 2)) / B


# ----------------------------------------------------------------------------- optimizer
@dataclass
class MemberOptimizer:
    """One member's optimizer: ``torch.optim.SGD(lr, momentum, nesterov)`` or ``torch.optim.Adam(lr,
    betas, eps)``, gradient clipping at global norm ``clip`` (None: none) over the member's own
    parameters, and ``lr_schedule(i)``: the factor on lr at the member's i-th step (0-based), as
    ``torch.optim.lr_scheduler.LambdaLR`` stepped after every optimizer step."""

    kind: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.1
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip: float | None = 2.0
    lr_schedule: Callable[[int], float] | None = None

    def __post_init__(self):
        if self.kind not in ("sgd", "adam"):
            raise ValueError(f"optimizer kind must be 'sgd' or 'adam', got {self.kind!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite float > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.kind == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("Nesterov momentum requires momentum > 0 (got momentum=0, nesterov=True)")
        if not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise ValueError(f"betas must be two floats in [0, 1), got {self.betas!r}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be > 0 or None, got {self.clip!r}")
        if self.lr_schedule is not None and not callable(self.lr_schedule):
            raise TypeError(f"lr_schedule must be a callable step -> factor, got {type(self.lr_schedule).__name__}")

    @classmethod
    def from_train_config(cls, cfg: TrainConfig, lr_schedule: Callable[[int], float] | None = None):
        return cls(
            kind=cfg.resolved_optimizer,
            lr=cfg.resolved_lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            clip=cfg.clip,
            lr_schedule=lr_schedule,
        )


class EnsembleOptimizer:
    """Per-member SGD / Adam over the stacked parameters of a :class:`LeakyRNNEnsemble`.

    Each member's state (momentum buffer or Adam moments), step count, learning rate and schedule are its
    own; ``clip_grad_norm_`` clips each member's gradient by its own global norm (as
    ``torch.nn.utils.clip_grad_norm_`` on that member's parameters alone), and ``step(members)`` updates
    only the given members. Fixed-tau members' taus are never updated.
    """

    def __init__(self, ensemble: LeakyRNNEnsemble, members: Sequence[MemberOptimizer]):
        members = list(members)
        if len(members) != ensemble.n_members:
            raise ValueError(f"got {len(members)} member optimizers for an ensemble of {ensemble.n_members}")
        for i, m in enumerate(members):
            if not isinstance(m, MemberOptimizer):
                raise TypeError(f"member {i}: expected a MemberOptimizer, got {type(m).__name__}")
        self.ensemble, self.members = ensemble, members
        self.params = dict(ensemble.named_parameters())
        self.steps = [0] * len(members)  # optimizer steps taken by each member
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        kinds = {m.kind for m in members}
        for name, p in self.params.items():
            st = {}
            if "sgd" in kinds:
                st["momentum_buffer"] = torch.zeros_like(p)
            if "adam" in kinds:
                st["exp_avg"] = torch.zeros_like(p)
                st["exp_avg_sq"] = torch.zeros_like(p)
            self.state[name] = st

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def current_lr(self, k: int) -> float:
        m = self.members[k]
        return m.lr * (1.0 if m.lr_schedule is None else float(m.lr_schedule(self.steps[k])))

    @torch.no_grad()
    def clip_grad_norm_(self) -> torch.Tensor:
        """Clip each member's gradient to its own max norm; returns the members' norms before clipping (K,)."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        if not grads:
            raise RuntimeError("no gradients to clip: call backward() first")
        K = self.ensemble.n_members
        norms = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g.reshape(K, -1), 2, dim=1) for g in grads], dim=1), 2, dim=1
        )
        clips = [m.clip for m in self.members]
        if all(c is None for c in clips):
            return norms
        max_norm = torch.tensor([math.inf if c is None else c for c in clips], dtype=norms.dtype, device=norms.device)
        coef = torch.clamp(max_norm / (norms + 1e-6), max=1.0)  # as torch.nn.utils.clip_grad_norm_
        for g in grads:
            g.mul_(coef.reshape(K, *([1] * (g.dim() - 1))))
        return norms

    @torch.no_grad()
    def step(self, members: Sequence[int] | None = None) -> None:
        """One optimizer step for ``members`` (default all); the others are left untouched."""
        members = list(range(self.ensemble.n_members)) if members is None else [int(m) for m in members]
        trainable_tau = self.ensemble.tau_trainable.tolist()
        for kind in ("sgd", "adam"):
            group = [k for k in members if self.members[k].kind == kind]
            if not group:
                continue
            for name, p in self.params.items():
                if p.grad is None:
                    continue
                sel = [k for k in group if trainable_tau[k]] if name == "taus" else group
                if sel:
                    self._update(kind, name, p, sel)
        for k in members:
            self.steps[k] += 1

    def _update(self, kind: str, name: str, p: torch.Tensor, sel: list[int]) -> None:
        K = self.ensemble.n_members
        whole = sel == list(range(K))
        idx = None if whole else torch.tensor(sel, device=p.device)
        shape = (len(sel),) + (1,) * (p.dim() - 1)

        def col(values):  # per-member scalars broadcast over a member's slice
            return torch.tensor(values, dtype=p.dtype, device=p.device).reshape(shape)

        def get(t):
            return t if whole else t.index_select(0, idx)

        def put(t, v):
            if not whole:
                t.index_copy_(0, idx, v)

        g, w = get(p.grad), get(p.data)
        lr = col([self.current_lr(k) for k in sel])
        st = self.state[name]
        if kind == "sgd":
            mom = [self.members[k].momentum for k in sel]
            nest = [self.members[k].nesterov for k in sel]
            buf = get(st["momentum_buffer"])
            buf.mul_(col(mom)).add_(g)  # torch's first step clones grad: 0 * m + g == g
            put(st["momentum_buffer"], buf)
            # d = g + m buf (Nesterov), buf (momentum), g (no momentum: buf == g)
            d = torch.where(col(nest) > 0, g + col(mom) * buf, buf)
            w.sub_(lr * d)
        else:
            b1 = [self.members[k].betas[0] for k in sel]
            b2 = [self.members[k].betas[1] for k in sel]
            eps = col([self.members[k].eps for k in sel])
            t = [self.steps[k] + 1 for k in sel]
            m, v = get(st["exp_avg"]), get(st["exp_avg_sq"])
            m.lerp_(g, col([1 - b for b in b1]))
            v.mul_(col(b2)).addcmul_(g * col([1 - b for b in b2]), g)
            put(st["exp_avg"], m)
            put(st["exp_avg_sq"], v)
            bc1 = col([1 - b**s for b, s in zip(b1, t)])
            bc2_sqrt = col([(1 - b**s) ** 0.5 for b, s in zip(b2, t)])
            w.sub_((m / (v.sqrt() / bc2_sqrt + eps)) * (lr / bc1))  # p -= lr / bc1 * m / (sqrt(v / bc2) + eps)
        put(p.data, w)

    @torch.no_grad()
    def member_torch_state_dict(self, k: int, model: LeakyRNN) -> dict:
        """Member k's optimizer as the ``state_dict()`` of the torch optimizer a separate run of ``model``
        (``ensemble.member(k)``) would hold: loading it into ``torch.optim.SGD/Adam(model.parameters())``
        continues exactly where the member is."""
        m = self.members[k]
        params = list(model.parameters())
        if m.kind == "sgd":
            opt = torch.optim.SGD(params, lr=self.current_lr(k), momentum=m.momentum, nesterov=m.nesterov)
        else:
            opt = torch.optim.Adam(params, lr=self.current_lr(k), betas=m.betas, eps=m.eps)
        if self.steps[k] > 0:
            nh = self.ensemble.member_n_heads[k]
            views = {
                "input.weight": ("input_weight", lambda t: t[k][:, None]),
                "input.bias": ("input_bias", lambda t: t[k]),
                "recurrent.weight": ("rec_weight", lambda t: t[k]),
                "recurrent.bias": ("rec_bias", lambda t: t[k]),
                "taus": ("taus", lambda t: t[k]),
                "heads.weight": ("head_weight", lambda t: t[k, :nh]),
                "heads.bias": ("head_bias", lambda t: t[k, :nh]),
            }
            for name, p in model.named_parameters():
                src, view = views[name]
                st = self.state[src]
                if m.kind == "sgd":
                    opt.state[p] = {"momentum_buffer": view(st["momentum_buffer"]).clone() if m.momentum else None}
                else:
                    opt.state[p] = {
                        "step": torch.tensor(float(self.steps[k])),
                        "exp_avg": view(st["exp_avg"]).clone(),
                        "exp_avg_sq": view(st["exp_avg_sq"]).clone(),
                    }
        return opt.state_dict()

    def state_dict(self) -> dict:
        return {
            "steps": list(self.steps),
            "state": {n: {k: v.clone() for k, v in st.items()} for n, st in self.state.items()},
        }

    def load_state_dict(self, sd: dict) -> None:
        if len(sd["steps"]) != len(self.steps) or set(sd["state"]) != set(self.state):
            raise ValueError("optimizer state does not match this ensemble (members or parameters differ)")
        self.steps = list(sd["steps"])
        for n, st in sd["state"].items():
            for k, v in st.items():
                self.state[n][k].copy_(v)


# ----------------------------------------------------------------------------- curricula of an ensemble
# TrainConfig fields every member of one ensemble must share (everything else may differ per member:
# task, curriculum, max_n, n_min, n_heads, train_tau, tau, max_epochs, threshold, optimizer, lr, momentum,
# nesterov, clip, sliding_heads, sliding_shift, seed)
STACK_TRAIN_FIELDS = (
    "model",
    "n_neurons",
    "batch_size",
    "variant",
    "steps_per_epoch",
    "test_batches",
    "budget_minutes",
)


def check_stackable(configs: Sequence[TrainConfig]) -> list[TrainConfig]:
    """Validate that the training configs can run as one ensemble; returns them as a list."""
    configs = list(configs)
    if len(configs) < 1:
        raise ValueError(f"an ensemble needs at least one member (K >= 1), got K={len(configs)}")
    for i, c in enumerate(configs):
        if not isinstance(c, TrainConfig):
            raise TypeError(f"member {i}: expected a TrainConfig, got {type(c).__name__}")
        if c.model != "leaky":
            raise ValueError(f"ensemble members must be leaky RNNs (model='leaky'); member {i} has model={c.model!r}")
    for name in STACK_TRAIN_FIELDS:
        vals = [getattr(c, name) for c in configs]
        bad = next((i for i, v in enumerate(vals) if v != vals[0]), None)
        if bad is not None:
            raise ValueError(
                f"ensemble members cannot be stacked: {name} differs (member 0: {vals[0]!r}, member {bad}: "
                f"{vals[bad]!r}); expected every member to have {name}={vals[0]!r} like member 0 (one ensemble "
                f"stacks members with equal {', '.join(STACK_TRAIN_FIELDS)}; train the others in a separate "
                "ensemble)"
            )
    return configs


def expand_members(
    configs: TrainConfig | Sequence[TrainConfig], seeds: Sequence[int] | None = None
) -> list[TrainConfig]:
    """The member configs: every config (condition) once per seed (conditions x seeds, condition-major),
    or the configs as given when ``seeds`` is None."""
    configs = [configs] if isinstance(configs, TrainConfig) else list(configs)
    if seeds is None:
        return configs
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must list at least one seed (or be None to use each config's own seed)")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"every seed must be an int, got {s!r}")
    return [replace(c, seed=s) for c in configs for s in seeds]


def member_name(k: int, cfg: TrainConfig) -> str:
    """Run-folder name of member k: ``m{k}_{task}_{curriculum}_{tau|fixtau<T>}_{variant}_s{seed}``."""
    tau = "tau" if cfg.train_tau else f"fixtau{cfg.tau:g}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"m{k:02d}_{cfg.task}_{cfg.curriculum}_{tau}_{cfg.variant}_s{cfg.seed}")


class EnsembleTrainer:
    """The curricula of K members advanced together, one training step / one epoch end at a time.

    Member k follows ``curriculum.train_curriculum(configs[k])`` exactly: the same initial weights
    (``torch.manual_seed(seed)`` then ``build_model``), the same batches (a generator seeded with its
    seed), the same initial states r(0) (the global RNG stream a single run would use, kept per member),
    the same loss, clipping, optimizer and advance rule. A member stops on its own (N = max_n solved or
    max_epochs); stopped members are dropped from the batched computation.
    """

    def __init__(
        self,
        configs: Sequence[TrainConfig],
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        lr_schedules: Sequence[Callable[[int], float] | None] | None = None,
    ):
        self.configs = check_stackable(configs)
        K = len(self.configs)
        if lr_schedules is None:
            lr_schedules = [None] * K
        lr_schedules = list(lr_schedules)
        if len(lr_schedules) != K:
            raise ValueError(f"got {len(lr_schedules)} lr_schedules for {K} members (one per member, or None)")
        models, self.data_gens, self.state_gens = [], [], []
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
            for cfg in self.configs:
                torch.manual_seed(cfg.seed)
                models.append(build_model(cfg))
                g = torch.Generator()
                g.set_state(torch.get_rng_state())  # r(0) draws continue the global stream of a single run
                self.state_gens.append(g)
                self.data_gens.append(torch.Generator().manual_seed(cfg.seed))
        self.ensemble = LeakyRNNEnsemble.from_models(models).to(device=device, dtype=dtype)
        self.optimizer = EnsembleOptimizer(
            self.ensemble, [MemberOptimizer.from_train_config(c, s) for c, s in zip(self.configs, lr_schedules)]
        )
        self.batch_size = self.configs[0].batch_size
        self.ns = [c.initial_ns() for c in self.configs]
        self.epoch = [0] * K  # epochs completed (evaluated)
        self.step = [0] * K
        self.done = [False] * K
        self.stop_reason: list[str | None] = [None] * K
        self.stop_epoch = [0] * K
        self.reached: list[int | None] = [None] * K
        self.solved: list[list[dict]] = [[] for _ in range(K)]
        self.epoch_losses: list[list[float]] = [[] for _ in range(K)]

    @property
    def active(self) -> list[int]:
        return [k for k, d in enumerate(self.done) if not d]

    def heads(self, k: int) -> list[int]:
        return self.configs[k].heads_for(self.ns[k])

    def _batches(self, members: list[int]):
        xs, ys = [], []
        for k in members:
            x, y = make_timescale_batch(self.configs[k].task, self.ns[k], self.batch_size, self.data_gens[k])
            xs.append(x)
            ys.append(y)
        h0 = self.ensemble.init_state(self.batch_size, [self.state_gens[k] for k in members], members)
        return xs, ys, h0

    def train_step(self) -> dict[int, float]:
        """One optimizer step of every active member; returns {member: loss}."""
        act = self.active
        if not act:
            raise RuntimeError("every member has stopped; nothing to train")
        xs, ys, h0 = self._batches(act)
        self.ensemble.train()
        losses = self.ensemble.member_losses(xs, ys, [self.heads(k) for k in act], h0, act)
        self.optimizer.zero_grad()
        losses.sum().backward()  # summed, so each member's gradient is its own loss's gradient
        self.optimizer.clip_grad_norm_()
        self.optimizer.step(act)
        out = {}
        for k, v in zip(act, losses.detach().cpu().tolist()):
            self.step[k] += 1
            self.epoch_losses[k].append(v)
            out[k] = v
        return out

    @torch.no_grad()
    def evaluate(self, members: list[int] | None = None) -> dict[int, list[float]]:
        """Accuracy (%) of each member's active heads on ``test_batches`` fresh batches (as
        ``curriculum.evaluate``)."""
        members = self.active if members is None else list(members)
        n_batches = self.configs[members[0]].test_batches
        heads = [self.heads(k) for k in members]
        correct = [torch.zeros(len(h)) for h in heads]
        self.ensemble.eval()
        for _ in range(n_batches):
            xs, ys, h0 = self._batches(members)
            logits, _ = self.ensemble(xs, heads, h0, members)
            pred = logits.argmax(-1).cpu()  # (K', J, B)
            for i, y in enumerate(ys):
                correct[i] += (pred[i, : y.shape[0]] == y).sum(1).float()
        return {k: (100.0 * c / (n_batches * self.batch_size)).tolist() for k, c in zip(members, correct)}

    def tau_stats(self, k: int) -> dict:
        cfg = self.configs[k]
        if not cfg.train_tau:
            return {"tau_mean": float(cfg.tau), "tau_std": 0.0, "tau_max": float(cfg.tau)}
        t = self.ensemble.taus[k].detach()
        return {
            "tau_mean": float(t.mean()),
            "tau_std": float(t.std()) if t.numel() > 1 else 0.0,
            "tau_max": float(t.max()),
        }

    def end_epoch(self, elapsed_s: float = 0.0) -> list[dict]:
        """Evaluate the active members and advance each one's curriculum on its own criterion.

        Returns one record per evaluated member: the single run's metrics line plus ``member``,
        ``heads`` and ``stopped`` (None or the stop reason). ``ns`` / ``heads`` are those evaluated.
        """
        act = self.active
        if not act:
            return []
        accs = self.evaluate(act)
        records = []
        for k in act:
            cfg = self.configs[k]
            self.epoch[k] += 1
            acc = accs[k]
            mean_acc = sum(acc) / len(acc)
            solved = mean_acc > cfg.threshold and acc[-1] > cfg.threshold
            losses = self.epoch_losses[k]
            rec = {
                "epoch": self.epoch[k],
                "step": self.step[k],
                "elapsed_s": elapsed_s,
                "ns": self.ns[k],
                "loss": sum(losses) / len(losses) if losses else float("nan"),
                "accuracy": acc,
                "mean_accuracy": mean_acc,
                "solved": solved,
                **self.tau_stats(k),
            }
            self.epoch_losses[k] = []
            extra = {"member": k, "heads": self.heads(k), "stopped": None}
            if solved:
                self.reached[k] = self.ns[k][-1]
                self.solved[k].append(
                    {"n_max": self.ns[k][-1], "epoch": self.epoch[k], "step": self.step[k], "elapsed_s": elapsed_s}
                )
                if self.ns[k][-1] >= cfg.max_n:
                    self.stop(k, "max_n")
                else:
                    self.ns[k] = cfg.next_ns(self.ns[k])
            if not self.done[k] and self.epoch[k] >= cfg.max_epochs:
                self.stop(k, "max_epochs")
            extra["stopped"] = self.stop_reason[k]
            records.append({**rec, **extra})
        return records

    def trainer_state(self, k: int, model: LeakyRNN) -> dict:
        """trainer.pt of member k's checkpoint, as a single run writes it: the optimizer state of ``model``
        (``ensemble.member(k)``), the data generator's state, the r(0) stream's state (the global RNG of a
        single run) and the epoch."""
        return {
            "optimizer": self.optimizer.member_torch_state_dict(k, model),
            "data_rng": self.data_gens[k].get_state(),
            "torch_rng": self.state_gens[k].get_state(),
            "epoch": self.epoch[k],
        }

    def stop(self, k: int, reason: str, epoch: int | None = None) -> None:
        self.done[k] = True
        self.stop_reason[k] = reason
        self.stop_epoch[k] = self.epoch[k] if epoch is None else epoch


def _meta_line(rec: dict) -> dict:
    return {key: v for key, v in rec.items() if key not in ("member", "heads", "stopped")}


def train_ensemble(
    configs: TrainConfig | Sequence[TrainConfig],
    out_dir: str | Path,
    seeds: Sequence[int] | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    lr_schedules: Sequence[Callable[[int], float] | None] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> list[dict]:
    """Train every member's curriculum in one batched ensemble; one run folder per member.

    ``configs`` are the conditions (e.g. single- / multi- / sliding-head, trained or fixed tau, the mod
    variant); with ``seeds`` every condition is trained once per seed (conditions x seeds members, each
    config's ``seed`` replaced), otherwise each config once with its own seed. Member k writes
    ``out_dir/<member_name>/`` exactly as ``train_curriculum`` writes its ``out_dir`` (train_config.json,
    metrics.jsonl, ``N{min}_N{max}/`` checkpoints, ``last/``, summary.json), so the analyses read it
    unchanged; ``out_dir/ensemble.json`` lists the members. Returns the members' summaries (the single
    run's summary dict plus ``run_dir`` and ``ensemble``). An existing non-empty member folder is an
    error unless ``overwrite=True`` (which replaces it).
    """
    members = check_stackable(expand_members(configs, seeds))
    K = len(members)
    out_dir = Path(out_dir)
    names = [member_name(k, c) for k, c in enumerate(members)]
    dirs = [out_dir / n for n in names]
    for d in dirs:
        if d.exists() and (not d.is_dir() or any(d.iterdir())):
            if not overwrite:
                raise FileExistsError(f"{d} already exists and is not empty; pass overwrite=True to replace it")
    trainer = EnsembleTrainer(members, device=device, dtype=dtype, lr_schedules=lr_schedules)
    for d, cfg in zip(dirs, members):
        if d.is_dir():
            shutil.rmtree(d)
        elif d.exists():
            d.unlink()
        d.mkdir(parents=True)
        write_json(d / "train_config.json", asdict(cfg))
        atomic_write_text(d / "metrics.jsonl", "")
    metrics: list[list[str]] = [[] for _ in range(K)]
    c0 = members[0]
    budget_s = math.inf if c0.budget_minutes is None else 60.0 * c0.budget_minutes
    start = time.time()
    finish_s = [0.0] * K
    bar = tqdm(
        total=None, desc=f"ensemble of {K}", disable=not progress, mininterval=2.0, unit="step", dynamic_ncols=True
    )
    while trainer.active:
        n_steps = 0
        for _ in range(c0.steps_per_epoch):
            if time.time() - start > budget_s:
                break
            losses = trainer.train_step()
            n_steps += 1
            bar.update(1)
            bar.set_postfix(active=len(losses), loss=f"{sum(losses.values()) / len(losses):.3f}", refresh=False)
        if n_steps == 0:
            for k in trainer.active:
                trainer.stop(k, "budget", epoch=trainer.epoch[k] + 1)  # the epoch that could not start
                finish_s[k] = time.time() - start
            break
        elapsed = time.time() - start
        for rec in trainer.end_epoch(elapsed):
            k = rec["member"]
            metrics[k].append(dumps_json(_meta_line(rec), indent=None))
            atomic_write_text(dirs[k] / "metrics.jsonl", "\n".join(metrics[k]) + "\n")
            if rec["solved"]:
                ns = rec["ns"]
                meta = {
                    "train_config": asdict(members[k]),
                    "ns": ns,
                    "heads": rec["heads"],
                    "epoch": rec["epoch"],
                    "step": rec["step"],
                    "elapsed_s": elapsed,
                    "accuracy": rec["accuracy"],
                }
                model = trainer.ensemble.member(k)
                save_checkpoint(model, dirs[k] / f"N{ns[0]:03d}_N{ns[-1]:03d}", meta, trainer.trainer_state(k, model))
                bar.write(f"member {k} ({names[k]}): solved N={ns[0]}..{ns[-1]} at epoch {rec['epoch']}")
            if rec["stopped"] is not None:
                finish_s[k] = elapsed
        if time.time() - start > budget_s:
            for k in trainer.active:
                trainer.stop(k, "budget")
                finish_s[k] = time.time() - start
    bar.close()
    summaries = []
    for k, cfg in enumerate(members):
        summary = {
            "task": cfg.task,
            "curriculum": cfg.curriculum,
            "model": cfg.model,
            "n_reached": trainer.reached[k],
            "stop_reason": trainer.stop_reason[k],
            "epochs": trainer.stop_epoch[k],
            "steps": trainer.step[k],
            "elapsed_s": finish_s[k],
            "solved": trainer.solved[k],
            "last_ns": trainer.ns[k],
            "torch_threads": torch.get_num_threads(),
            "load_avg": list(os.getloadavg()),
            "run_dir": str(dirs[k]),
            "ensemble": {"members": K, "index": k, "name": names[k]},
        }
        last_meta = {
            "train_config": asdict(cfg),
            "ns": trainer.ns[k],
            "heads": trainer.heads(k),
            "epoch": trainer.stop_epoch[k],
            "step": trainer.step[k],
            "solved": False,
        }
        model = trainer.ensemble.member(k)
        save_checkpoint(model, dirs[k] / "last", last_meta, trainer.trainer_state(k, model))
        write_json(dirs[k] / "summary.json", summary)
        summaries.append(summary)
    write_json(
        out_dir / "ensemble.json",
        {
            "members": [
                {"name": n, "train_config": asdict(c), "n_reached": s["n_reached"], "stop_reason": s["stop_reason"]}
                for n, c, s in zip(names, members, summaries)
            ],
            "device": str(trainer.ensemble.rec_weight.device),
            "dtype": str(dtype).replace("torch.", ""),
            "elapsed_s": time.time() - start,
        },
    )
    return summaries
