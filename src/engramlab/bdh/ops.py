"""The pieces of the BDH layer, and the one place where their implementation is chosen.

``engramlab.bdh.model.BDH.layer`` writes the layer's equations once, in terms of three pieces
(heads first: H heads of N neurons, B sequences of T tokens, d = n_embd):

    x, k = kernels.neurons(v, D_x, tables)     x = ReLU(v* D_x), k = U x (RoPE)     (H, B, T, N)
    y    = kernels.gate(LN(a*), D_y, x, drop)  y = ReLU(LN(a*) D_y) * x, drop zeroed (H, B, T, N)
    z    = kernels.readout(y, E)               z = sum_h y_h E_h                     (B, T, d)

``layer_kernels`` picks one of two implementations of them:

- ``FusedCPUKernels`` (a CPU in eager mode, no autocast): on a CPU the matmuls of BDH are fast and
  the elementwise passes over the n-dimensional activations (ReLU, RoPE, gating, dropout) and
  the allocation of their (H, B*T, N) buffers take a large share of the time, so each half of
  the layer is one autograd node with a hand-written backward (``_Neurons``, ``_Gate``), the heads'
  projections are one ``mm`` per head (``_HeadsIn``, ``_HeadsOut``), large buffers come from the
  model's scratch pool (``engramlab.nn.buffers``), and the chunked attention uses its CPU node
  (``engramlab.bdh.attention._CausalSharedValue``);
- ``PlainKernels`` (a GPU, autocast, ``torch.compile``, and ``fused=False``: the CPU nodes' test
  oracle): library ops, which the compiler can fuse and schedule.

Both compute the same function with the same gradients (tests/bdh/test_bdh_ops.py). Helpers
shared by both:

- ``rope_rotate``: RoPE as one complex multiplication per neuron pair (when the two neurons of
  every pair share a frequency, as the official ``get_freqs`` makes them; on a CPU in eager
  mode), else the generic real form of ``engramlab.nn.rope.apply_rope``. Same numbers either way.
- ``gate_dropout``: y = ReLU(y_a) * x with the dropout mask applied in the same pass
  (x >= 0, so ReLU(y_a) * x = ReLU(y_a * x)); the 1 / (1 - p) rescaling is left to the caller,
  which applies it to the much smaller d-dimensional output of E.
- ``dropout_mask``: the same masks for both implementations on a CPU (so they can be compared).
"""

from __future__ import annotations

import contextlib
import math

import torch

from engramlab.nn.buffers import current_pool, use_pool
from engramlab.nn.rope import apply_rope, rope_cos_sin


def eager_cpu(device: torch.device | str) -> bool:
    """Whether tensors on ``device`` run on a CPU in eager mode (not traced by torch.compile):
    the condition for every CPU-specific form in this module and in ``attention``."""
    return torch.device(device).type == "cpu" and not torch.compiler.is_compiling()


def rope_tables(freqs: torch.Tensor, positions: torch.Tensor, dtype: torch.dtype, cache: dict | None = None):
    """Tables for ``rope_rotate``: freqs (H, N), positions (T,) -> ("complex", (H, 1, T, N/2)) or
    ("real", (cos, sin_signed) each (H, 1, T, N)).

    The complex form is used on a CPU in eager mode; the real form on a GPU and under
    ``torch.compile`` (the compiler generates no code for complex operators). ``cache``, a dict
    the caller keeps (the model's), remembers what depends on freqs only until freqs is replaced
    or changed in place: generation makes one table per token."""
    t = positions.to(torch.float64).reshape(-1, 1)
    f = _pair_frequencies(freqs, cache) if eager_cpu(freqs.device) else None
    if f is not None:
        phase = torch.remainder(t * f, 1.0) * (2 * math.pi)  # (H, T, N/2)
        ctype = torch.complex128 if dtype == torch.float64 else torch.complex64
        table = torch.polar(torch.ones_like(phase), phase).to(ctype)
        return "complex", table.unsqueeze(1)
    cos, sin = rope_cos_sin(freqs, positions, dtype)
    return "real", (cos.unsqueeze(1), sin.unsqueeze(1))


def _pair_frequencies(freqs: torch.Tensor, cache: dict | None) -> torch.Tensor | None:
    """freqs[..., 0::2] in float64, (H, 1, N/2), when both neurons of every pair share a frequency
    (as the official ``get_freqs`` makes them), else None."""
    key = (freqs._version, freqs.data_ptr())
    if cache is not None and cache.get("freqs") is freqs and cache.get("key") == key:
        return cache["pairs"]
    pairs = None
    if bool((freqs[..., 0::2] == freqs[..., 1::2]).all()):
        pairs = freqs[..., 0::2].to(torch.float64).unsqueeze(-2)
    if cache is not None:
        cache.update(freqs=freqs, key=key, pairs=pairs)
    return pairs


def rope_rotate(x: torch.Tensor, tables) -> torch.Tensor:
    """Rotate the interleaved neuron pairs of x (H, B, T, N) (the official ``Attention.rope``)."""
    kind, tab = tables
    if kind == "complex":
        shp = x.shape
        z = torch.view_as_complex(x.reshape(*shp[:-1], shp[-1] // 2, 2))
        return torch.view_as_real(z * tab).reshape(shp)
    return apply_rope(x, *tab)


class _GateDropout(torch.autograd.Function):
    """y = ReLU(ya * x) with dropped entries zeroed, x >= 0.

    The dropout mask is folded into ya (a dropped entry's ya is set to 0, so ReLU(0 * x) = 0 and
    no gradient flows through it); only that masked ya and x are kept for the backward, which
    is then two fused threshold passes and no mask passes.
    """

    @staticmethod
    def forward(ctx, ya, x, drop):
        if drop is not None:
            ya = ya.masked_fill(drop, 0)
        y = torch.mul(ya, x).clamp_min_(0)
        ctx.save_for_backward(ya, x)
        return y

    @staticmethod
    def backward(ctx, dy):
        ya, x = ctx.saved_tensors
        dya = dx = None  # threshold_backward(g, ya, 0) = g where ya > 0, else 0 (one fused pass)
        if ctx.needs_input_grad[0]:
            dya = torch.ops.aten.threshold_backward(torch.mul(dy, x), ya, 0)
        if ctx.needs_input_grad[1]:
            dx = torch.ops.aten.threshold_backward(torch.mul(dy, ya), ya, 0)
        return dya, dx, None


def dropout_mask(shape, p: float, device) -> torch.Tensor | None:
    """Boolean mask of dropped entries (probability p), or None when p == 0.

    On a CPU (eager), each 64-bit draw of the generator gives four 15-bit uniforms (the low 15
    bits of each 16-bit lane; resolution 2^-15), a quarter of the generator calls of one draw
    per entry. On a GPU and under torch.compile: ``torch.rand(shape) < p``.
    """
    if p <= 0:
        return None
    if not eager_cpu(device):
        return torch.rand(shape, device=device) < p
    pool = current_pool()
    numel = math.prod(shape)
    words = pool.empty(((numel + 3) // 4,), torch.int64, device).random_()
    lanes = words.view(torch.int16)[:numel].view(shape).bitwise_and_(0x7FFF)
    return torch.lt(lanes, round(p * 32768), out=pool.empty(shape, torch.bool, device))


def gate_dropout(ya: torch.Tensor, x: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
    """ReLU(ya) * x (x >= 0), with the entries in the boolean mask ``drop`` zeroed (not rescaled)."""
    return _GateDropout.apply(ya, x, drop)


class _HeadsIn(torch.autograd.Function):
    """(BT, d) @ (H, d, N) -> (H, BT, N): one product per head, into one heads-first tensor.

    ``torch.matmul`` broadcasts the shared left factor and its backward copies the (H, N, BT)
    gradient to a contiguous buffer; here each head is one ``mm`` and the input gradient is
    accumulated head by head with ``addmm_``.
    """

    @staticmethod
    def forward(ctx, v, W):
        ctx.save_for_backward(v, W)
        return _heads_in(v, W)

    @staticmethod
    def backward(ctx, g):
        v, W = ctx.saved_tensors
        g = g.contiguous()
        dv = dW = None
        if ctx.needs_input_grad[0]:
            dv = torch.mm(g[0], W[0].t())
            for h in range(1, W.shape[0]):
                dv.addmm_(g[h], W[h].t())
        if ctx.needs_input_grad[1]:
            dW = torch.empty_like(W)
            for h in range(W.shape[0]):
                torch.mm(v.t(), g[h], out=dW[h])
        return dv, dW


def _heads_in(v: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    out = current_pool().empty((W.shape[0], v.shape[0], W.shape[2]), v.dtype, v.device)
    for h in range(W.shape[0]):
        torch.mm(v, W[h], out=out[h])
    return out


class _HeadsOut(torch.autograd.Function):
    """sum_h (H, BT, N)[h] @ (H, N, d)[h] -> (BT, d), accumulated head by head."""

    @staticmethod
    def forward(ctx, y, E):
        ctx.save_for_backward(y, E)
        ctx.pool = current_pool()
        z = torch.mm(y[0], E[0])
        for h in range(1, E.shape[0]):
            z.addmm_(y[h], E[h])
        return z

    @staticmethod
    def backward(ctx, g):
        y, E = ctx.saved_tensors
        g = g.contiguous()
        dy = dE = None
        H = E.shape[0]
        if ctx.needs_input_grad[0]:
            dy = ctx.pool.empty_like(y)
            for h in range(H):
                torch.mm(g, E[h].t(), out=dy[h])
        if ctx.needs_input_grad[1]:
            dE = torch.empty_like(E)
            for h in range(H):
                torch.mm(y[h].t(), g, out=dE[h])
        return dy, dE


# ------------------------------------------------------------------------------------------------
# The two elementwise-heavy halves of a BDH layer as single autograd nodes (CPU training path).
#
# Every (H, B*T, N) tensor costs a fresh allocation (page faults on first touch) and a pass over
# memory. Autograd of the plain code makes about 16 of them per layer; these two nodes make 7,
# by doing the ReLU, the dropout and the gate in place on buffers they own and by turning the
# incoming gradients into the outgoing ones in place (each of these gradients has exactly one
# consumer: the layer's own code). Same function and gradients as the plain code (tests).


class _Neurons(torch.autograd.Function):
    """(v (BT, d), D_x (H, d, N), complex RoPE table (H, 1, T, N/2)) -> x = ReLU(v D_x), k = RoPE(x)."""

    @staticmethod
    def forward(ctx, v, W, table):
        x = _heads_in(v, W).clamp_min_(0)
        H, BT, N = x.shape
        k = current_pool().empty_like(x)
        shp = (H, -1, table.shape[-2], N // 2)
        torch.mul(
            torch.view_as_complex(x.view(H, BT, N // 2, 2)).view(shp),
            table,
            out=torch.view_as_complex(k.view(H, BT, N // 2, 2)).view(shp),
        )
        ctx.save_for_backward(v, W, x, table)
        return x, k

    @staticmethod
    def backward(ctx, dx, dk):
        v, W, x, table = ctx.saved_tensors
        H, BT, N = x.shape
        t = dk.contiguous() if dk is not None else torch.zeros_like(x)
        shp = (H, -1, table.shape[-2], N // 2)
        tz = torch.view_as_complex(t.view(H, BT, N // 2, 2)).view(shp)
        torch.mul(tz, table.conj(), out=tz)  # the inverse rotation, in place
        if dx is not None:
            t.add_(dx)
        t = torch.ops.aten.threshold_backward.grad_input(t, x, 0, grad_input=t)  # ReLU', in place
        dv = dW = None
        if ctx.needs_input_grad[0]:
            dv = torch.mm(t[0], W[0].t())
            for h in range(1, H):
                dv.addmm_(t[h], W[h].t())
        if ctx.needs_input_grad[1]:
            dW = torch.empty_like(W)
            for h in range(H):
                torch.mm(v.t(), t[h], out=dW[h])
        return dv, dW, None


class _Gate(torch.autograd.Function):
    """(LN(a) (H, BT, d), D_y (H, d, N), x (H, BT, N), drop mask or None) -> y = ReLU(LN(a) D_y) * x,
    with the dropped entries zeroed (not rescaled)."""

    @staticmethod
    def forward(ctx, lna, W, x, drop):
        pool = ctx.pool = current_pool()
        r = torch.bmm(lna, W, out=pool.empty((W.shape[0], lna.shape[1], W.shape[2]), W.dtype)).clamp_min_(0)
        if drop is not None:
            r.masked_fill_(drop.view(r.shape), 0)
        y = torch.mul(r, x, out=pool.empty_like(r))
        ctx.save_for_backward(lna, W, x, r)
        return y

    @staticmethod
    def backward(ctx, dy):
        lna, W, x, r = ctx.saved_tensors
        dx = torch.mul(dy, r, out=ctx.pool.empty_like(r)) if ctx.needs_input_grad[2] else None
        dya = dy.contiguous().mul_(x)
        dya = torch.ops.aten.threshold_backward.grad_input(dya, r, 0, grad_input=dya)
        dlna = torch.bmm(dya, W.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        dW = torch.bmm(lna.transpose(1, 2), dya) if ctx.needs_input_grad[1] else None
        return dlna, dW, dx, None


# ------------------------------------------------------------------------------------------------
# The two implementations of the layer's pieces, and the one place that picks one.


class FusedCPUKernels:
    """The layer's pieces as the hand-written CPU nodes above, over buffers of the scratch pool."""

    fused_attention = True  # the chunked attention's CPU node

    @staticmethod
    def neurons(v: torch.Tensor, D_x: torch.Tensor, tables) -> tuple[torch.Tensor, torch.Tensor]:
        """x = ReLU(v D_x) and the keys k = U x: v (B, T, d), D_x (H, d, N) -> (H, B, T, N) each."""
        B, T, d = v.shape
        H, _, N = D_x.shape
        v = v.reshape(B * T, d)
        if tables is not None and tables[0] == "complex":
            x, k = _Neurons.apply(v, D_x, tables[1])
            return x.view(H, B, T, N), k.view(H, B, T, N)
        x = torch.relu(_HeadsIn.apply(v, D_x)).view(H, B, T, N)  # ALiBi only, or the real RoPE form
        return x, (x if tables is None else rope_rotate(x, tables))

    @staticmethod
    def gate(lna: torch.Tensor, D_y: torch.Tensor, x: torch.Tensor, drop: torch.Tensor | None) -> torch.Tensor:
        """y = ReLU(lna D_y) * x with the entries in ``drop`` zeroed: lna (H, B, T, d) -> (H, B, T, N)."""
        H, B, T, N = x.shape
        return _Gate.apply(lna.reshape(H, B * T, -1), D_y, x.view(H, B * T, N), drop).view(H, B, T, N)

    @staticmethod
    def readout(y: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
        """E y summed over the heads: y (H, B, T, N), E (H * N, d) -> (B, T, d)."""
        H, B, T, N = y.shape
        return _HeadsOut.apply(y.view(H, B * T, N), E.view(H, N, -1)).view(B, T, -1)

    @staticmethod
    def scratch(pool):
        """Make ``pool`` (a ``BufferPool``, or None) the current scratch pool inside the block."""
        return use_pool(pool)


class PlainKernels:
    """The layer's pieces as library ops (GPU, autocast, torch.compile, and the CPU nodes' oracle)."""

    def __init__(self, fused_attention: bool):
        self.fused_attention = fused_attention  # the chunked attention's CPU node (eager CPU only)

    @staticmethod
    def neurons(v: torch.Tensor, D_x: torch.Tensor, tables) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, d = v.shape
        H, _, N = D_x.shape
        x = torch.relu(torch.matmul(v.reshape(1, B * T, d), D_x)).view(H, B, T, N)
        return x, (x if tables is None else rope_rotate(x, tables))

    @staticmethod
    def gate(lna: torch.Tensor, D_y: torch.Tensor, x: torch.Tensor, drop: torch.Tensor | None) -> torch.Tensor:
        H, B, T, N = x.shape
        ya = torch.matmul(lna.reshape(H, B * T, -1), D_y).view(H, B, T, N)
        if drop is None:  # autograd keeps ReLU(ya) and x, as gate_dropout would keep ya and x
            return torch.relu(ya) * x
        return gate_dropout(ya, x, drop)

    @staticmethod
    def readout(y: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
        H, B, T, N = y.shape
        return torch.matmul(y.view(H, B * T, N), E.view(H, N, -1)).sum(0).view(B, T, -1)

    @staticmethod
    def scratch(pool):
        return contextlib.nullcontext()


FUSED_CPU = FusedCPUKernels()
_PLAIN = {True: PlainKernels(fused_attention=True), False: PlainKernels(fused_attention=False)}


def layer_kernels(v: torch.Tensor, fused: bool = True) -> FusedCPUKernels | PlainKernels:
    """The implementation of the layer's pieces for the layer input v (B, T, d): the one place it is chosen.

    The fused CPU nodes for T > 1 tokens on a CPU in eager mode without autocast, unless
    ``fused=False``; library ops otherwise. For one token per sequence (``step``) the tensors
    are small and the library ops are faster: the nodes' per-head products and bookkeeping pay
    off only over many rows. The chunked attention keeps its CPU node on an eager CPU also under
    autocast and with ``fused=False`` (it keeps its running state sums in float32 under
    autocast); on a GPU and under torch.compile it is plain ops too.
    """
    cpu = eager_cpu(v.device)
    if fused and cpu and v.shape[1] > 1 and not torch.is_autocast_enabled("cpu"):
        return FUSED_CPU
    return _PLAIN[cpu]
