"""BDH's linear attention in the neuron dimension: three forms of one function (paper Eqs. 4, 5, 8).

With keys = queries = k_t = U-rotated x_t (RoPE applied to the sparse positive x, (B, H, T, N)),
values v*_t shared by all heads ((B, 1, T, d)) and an optional per-token log forget factor
log f_t <= 0 per head (ALiBi damping: constant; BDH-GPU': a learned gate; both: their sum),

    a*_t = sum_{tau < t} ( prod_{s = tau+1}^{t} f_s ) (k_t . k_tau) v*_tau          (Eq. 4, strictly causal)

which is the read of the synaptic state (Eq. 5)

    rho_{t-1} = sum_{tau < t} ( prod_{s = tau+1}^{t-1} f_s ) k_tau v*_tau^T        (N x d per head)
    a*_t = k_t^T (f_t rho_{t-1}),      rho_t = f_t rho_{t-1} + k_t v*_t^T         (Eq. 8: read, then write)

- ``attention_quadratic``: the (T x T) masked product of the official code (the test oracle);
- ``attention_chunked``: masked products inside chunks of C tokens, the state rho carried from
  chunk to chunk, so cost and memory grow linearly with T (training; carries a state in and out);
- ``attention_step``: one token, rank-1 Hebbian write; cost independent of the context length.

The two leading dimensions are batch-like: the model calls these with heads first, (H, B, ...).

All three agree to float64 round-off (tests/bdh/test_bdh_forms.py). The official code has no
decay (log f = 0, rho is then the plain sum).
"""

from __future__ import annotations

import torch


class _Gram(torch.autograd.Function):
    """k @ k^T with the symmetric backward dk = (G + G^T) k: one matmul instead of two."""

    @staticmethod
    def forward(ctx, k):
        ctx.save_for_backward(k)
        return k @ k.transpose(-1, -2)

    @staticmethod
    def backward(ctx, g):
        (k,) = ctx.saved_tensors
        return (g + g.transpose(-1, -2)) @ k


def gram(k: torch.Tensor) -> torch.Tensor:
    """Scores of keys = queries: k @ k^T (..., T, T); the official code asserts K is Q."""
    return _Gram.apply(k)


def _check(k: torch.Tensor, v: torch.Tensor, log_f: torch.Tensor | None) -> None:
    if k.dim() != 4 or v.dim() != 4 or v.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"expected k (B, H, T, N) and v (B, 1|H, T, d), got {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if log_f is not None and log_f.dim() != 3:
        raise ValueError(f"log_f must be (B|1, H|1, T), got {tuple(log_f.shape)}")


def attention_quadratic(k: torch.Tensor, v: torch.Tensor, log_f: torch.Tensor | None = None) -> torch.Tensor:
    """Quadratic masked form (T x T scores, strictly lower triangle): a* (B, H, T, d)."""
    _check(k, v, log_f)
    T = k.shape[-2]
    scores = gram(k)  # (B, H, T, T)
    if log_f is None:
        scores = scores.tril(diagonal=-1)
    else:
        L = torch.cumsum(log_f, dim=-1)  # (B, H, T): sum_{s <= t} log f_s
        diff = L.unsqueeze(-1) - L.unsqueeze(-2)  # (B, H, T, T): sum_{tau < s <= t} log f_s
        mask = torch.ones(T, T, dtype=torch.bool, device=k.device).tril(diagonal=-1)
        scores = scores * torch.exp(diff.masked_fill(~mask, float("-inf")))
    return scores @ v


def attention_chunked(
    k: torch.Tensor,
    v: torch.Tensor,
    log_f: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    chunk_size: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked linear-time form: (a* (B, H, T, d), rho after the last token (B, H, N, d)).

    ``state`` is rho carried in from earlier tokens (None = empty memory). Inside a chunk the
    masked product is used; across chunks the N x d state is read and then written once per
    chunk (Eq. 5), so the cost is O(T (C (N + d) + N d)) instead of O(T^2 (N + d)).
    """
    _check(k, v, log_f)
    B, H, T, N = k.shape
    d = v.shape[-1]
    C = max(1, min(int(chunk_size), T))
    P = (-T) % C  # zero-pad at the end: zero keys/values and log f = 0 leave rho unchanged
    if P:
        k = torch.nn.functional.pad(k, (0, 0, 0, P))
        v = torch.nn.functional.pad(v, (0, 0, 0, P))
        if log_f is not None:
            log_f = torch.nn.functional.pad(log_f, (0, P))
    n = (T + P) // C
    Bv, Hv = v.shape[0], v.shape[1]
    kc = k.reshape(B, H, n, C, N)
    vc = v.reshape(Bv, Hv, n, C, d)
    strict = torch.ones(C, C, dtype=torch.bool, device=k.device).tril(diagonal=-1)
    if log_f is not None:
        Bf, Hf = log_f.shape[0], log_f.shape[1]
        Lc = torch.cumsum(log_f.reshape(Bf, Hf, n, C), dim=-1)  # within-chunk cumulative log f
        W = torch.exp((Lc.unsqueeze(-1) - Lc.unsqueeze(-2)).masked_fill(~strict, float("-inf")))
        read_w = torch.exp(Lc).unsqueeze(-1)  # (Bf, Hf, n, C, 1): decay from chunk start to i
        write_w = torch.exp(Lc[..., -1:] - Lc).unsqueeze(-1)  # decay from j to chunk end
        chunk_w = torch.exp(Lc[..., -1])  # (Bf, Hf, n): decay over the whole chunk

    # within chunks: the masked product, all chunks at once
    scores = gram(kc)  # (B, H, n, C, C)
    scores = scores * W if log_f is not None else scores.tril(diagonal=-1)
    out = scores @ vc  # (B, H, n, C, d)

    if log_f is None:
        # no damping: rho before chunk c is an exclusive prefix sum of the chunk writes, so all
        # reads are one batched matmul (no sequential loop over chunks)
        write = kc.transpose(-1, -2) @ vc  # (B, H, n, N, d): sum of each chunk's rank-1 writes
        incl = torch.cumsum(write, dim=2)  # rho after chunk c (without the carried-in state)
        S = incl[:, :, -1] if state is None else incl[:, :, -1] + state
        if n > 1:
            inter = kc[:, :, 1:] @ incl[:, :, :-1]  # (B, H, n-1, C, d): chunks 1.. read rho
            out = out + torch.cat([torch.zeros_like(out[:, :, :1]), inter], dim=2)
        if state is not None:
            out = out + kc @ state.unsqueeze(2)
        return out.reshape(B, H, n * C, d)[:, :, :T], S

    # with damping: carry rho chunk by chunk (read the end of the previous chunk, then write)
    S = state
    inter = []
    for c in range(n):
        kq = kc[:, :, c]  # (B, H, C, N)
        write = (kq * write_w[:, :, c]).transpose(-1, -2) @ vc[:, :, c]  # (B, H, N, d)
        if S is None:  # empty memory: nothing to read
            inter.append(None)
            S = write
        else:
            inter.append(read_w[:, :, c] * (kq @ S))
            S = chunk_w[:, :, c, None, None] * S + write
    if n > 1 or state is not None:
        if inter[0] is None:
            inter[0] = torch.zeros_like(out[:, :, 0])
        out = out + torch.stack(inter, dim=2)
    out = out.reshape(B, H, n * C, d)[:, :, :T]
    return out, S


def attention_step(
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    state: torch.Tensor,
    log_f_t: torch.Tensor | None = None,
    inplace: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: k_t (B, H, N), v_t (B|1, H|1, d), state rho (B, H, N, d), log_f_t None or (B|1, H|1).

    Read before write (Eq. 8): a*_t = k_t^T (f_t rho), rho <- f_t rho + k_t v_t^T.
    Returns (a*_t (B, H, d), rho). ``inplace`` updates ``state`` itself (generation: no copy).
    """
    if log_f_t is not None:
        f = torch.exp(log_f_t)[..., None, None]
        state = state.mul_(f) if inplace else state * f
    a = (k_t.unsqueeze(-2) @ state).squeeze(-2)  # (B, H, d)
    if inplace:
        X, Y, N, d = state.shape
        state.view(X * Y, N, d).baddbmm_(k_t.reshape(X * Y, N, 1), v_t.expand(X, Y, d).reshape(X * Y, 1, d))
    else:
        state = state + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
    return a, state
