"""BDH's linear attention in the neuron dimension: three forms of one function (paper Eqs. 4, 5, 8).

With keys = queries = k_t = U-rotated x_t (RoPE applied to the sparse positive x), values v*_t
(d-dimensional, shared by all heads) and an optional per-token log forget factor log f_t <= 0
per head (ALiBi damping: constant; BDH-GPU': a learned gate; both: their sum),

    a*_t = sum_{tau < t} ( prod_{s = tau+1}^{t} f_s ) (k_t . k_tau) v*_tau          (Eq. 4, strictly causal)

which is the read of the synaptic state (Eq. 5)

    rho_{t-1} = sum_{tau < t} ( prod_{s = tau+1}^{t-1} f_s ) k_tau v*_tau^T        (N x d per head)
    a*_t = k_t^T (f_t rho_{t-1}),      rho_t = f_t rho_{t-1} + k_t v*_t^T         (Eq. 8: read, then write)

Shapes: the two leading dimensions are batch-like. The model passes heads first: k (H, B, T, N),
v (1, B, T, d) (one value per token, broadcast over the heads), log_f (H|1, B|1, T), and a state
rho (H, B, N, d). Any two leading dimensions work the same way, e.g. k (B, H, T, N) with v (B, 1, T, d).

- ``attention_quadratic``: the (T x T) masked product of the official code (the test oracle);
- ``attention_chunked``: masked products inside chunks of C tokens, the state rho carried from
  chunk to chunk, so cost and memory grow linearly with T (training; carries a state in and out).
  Without decay it runs as one autograd node with a hand-written backward on a CPU
  (``_CausalSharedValue``) and as plain ops on a GPU or under torch.compile (``_undamped_plain``);
- ``attention_recurrent``: token by token, a rank-1 Hebbian write per token (generation: one token
  per call); cost per token independent of the context length.

All three agree to float64 round-off (tests/bdh/test_bdh_forms.py). The official code has no
decay (log f = 0, rho is then the plain sum).
"""

from __future__ import annotations

import torch

from engramlab.bdh.ops import eager_cpu
from engramlab.nn.buffers import current_pool


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
    """k (X, Y, T, N), v (X|1, Y|1, T, d), log_f None or (X|1, Y|1, T); the model's X, Y are (H, B)."""
    ok = k.dim() == 4 and v.dim() == 4 and v.shape[-2] == k.shape[-2]
    if not ok or v.shape[0] not in (1, k.shape[0]) or v.shape[1] not in (1, k.shape[1]):
        raise ValueError(
            f"expected keys k (H, B, T, N) and values v (1|H, 1|B, T, d) with the same T (heads first, "
            f"values broadcast over the heads), got k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if log_f is not None and (log_f.dim() != 3 or log_f.shape[-1] != k.shape[-2]):
        raise ValueError(f"log_f must be (1|H, 1|B, T) with T={k.shape[-2]}, got {tuple(log_f.shape)}")


def attention_quadratic(k: torch.Tensor, v: torch.Tensor, log_f: torch.Tensor | None = None) -> torch.Tensor:
    """Quadratic masked form (T x T scores, strictly lower triangle): a* (H, B, T, d)."""
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


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype matmuls run in: the autocast dtype when autocast is on for t's device, else t's."""
    dev = t.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return t.dtype


class _CausalSharedValue(torch.autograd.Function):
    """The undamped chunked form (the official model's case) with a hand-written backward.

    out_t = sum_{tau < t} (k_t . k_tau) v_tau + k_t^T S0,  S_T = S0 + sum_tau k_tau v_tau^T,
    computed on G = X*Y independent (key, value) streams cut into n chunks of C tokens:

      forward:  A_c = tril_-1(K_c K_c^T),  out_c = A_c V_c + K_c P_c,  P_c = S0 + sum_{c'<c} K_c'^T V_c'
      backward: dA_c = tril_-1(dO_c V_c^T),  dK_c = (dA_c + dA_c^T) K_c + dO_c P_c^T + V_c R_c^T,
                dV_c = A_c^T dO_c + K_c R_c,  R_c = dS_T + sum_{c'>c} K_c'^T dO_c',  dS0 = R_-1

    (R_c is the gradient of the state after chunk c.) The within-chunk products are one batched
    matmul over all chunks; the states P_c and R_c are running sums, each step one fused
    ``baddbmm`` into a chunk-major buffer, so no prefix-sum pass, no concatenation and no copy of
    a (T, N)-sized tensor is made. Products run in the autocast dtype when autocast is on (the
    running sums then stay in float32).
    """

    @staticmethod
    def forward(ctx, k, v, state, C, need_state):
        ctx.set_materialize_grads(False)
        X, Y, T, N = k.shape
        d = v.shape[-1]
        G = X * Y
        dev = k.device.type
        cd = _compute_dtype(k)
        acc = torch.float32 if cd in (torch.float16, torch.bfloat16) else cd  # running sums
        pool = ctx.pool = current_pool()
        with torch.autocast(dev, enabled=False):
            P = (-T) % C
            kf = k.to(cd)
            vf = v.to(cd).expand(X, Y, T, d)
            if P:
                kf = torch.nn.functional.pad(kf, (0, 0, 0, P))
                vf = torch.nn.functional.pad(vf, (0, 0, 0, P))
            n = (T + P) // C
            kc = kf.reshape(G, n, C, N).contiguous()
            vc = vf.reshape(G, n, C, d).contiguous()
            kb = kc.view(G * n, C, N)
            A = torch.bmm(kb, kb.transpose(1, 2), out=pool.empty((G * n, C, C), cd, k.device)).tril_(-1)
            out = torch.bmm(A, vc.view(G * n, C, d), out=pool.empty((G * n, C, d), cd, k.device))
            out = out.view(G, n, C, d)
            S0 = None if state is None else state.reshape(G, N, d).to(acc)
            n_w = n if need_state else n - 1  # chunks whose write is read later (or returned)
            incl = None  # incl[c] = S0 + sum_{c' <= c} K_c'^T V_c', chunk-major (n_w, G, N, d)
            if n_w > 0:
                incl = pool.empty((n_w, G, N, d), acc, k.device)
                prev = S0
                for c in range(n_w):
                    kT = kc[:, c].transpose(1, 2)
                    if acc == cd:
                        if prev is None:
                            torch.bmm(kT, vc[:, c], out=incl[c])
                        else:
                            torch.baddbmm(prev, kT, vc[:, c], out=incl[c])
                    else:
                        w = torch.bmm(kT, vc[:, c]).to(acc)
                        incl[c] = w if prev is None else prev + w
                    prev = incl[c]
            if S0 is not None:
                out[:, 0].baddbmm_(kc[:, 0], S0.to(cd))
            for c in range(1, n):
                out[:, c].baddbmm_(kc[:, c], incl[c - 1].to(cd))
        S_out = incl[n - 1].reshape(X, Y, N, d).to(k.dtype if state is None else state.dtype) if need_state else None
        ctx.save_for_backward(kc, vc, A, incl, S0)
        ctx.meta = (X, Y, T, N, d, C, n, n_w, P, k.dtype, v.dtype, v.shape, None if state is None else state.dtype)
        out = out.view(X, Y, n * C, d)
        if P:
            out = out[:, :, :T]
        return out, S_out

    @staticmethod
    def backward(ctx, dout, dS_out):
        kc, vc, A, incl, S0 = ctx.saved_tensors
        X, Y, T, N, d, C, n, n_w, P, k_dtype, v_dtype, v_shape, s_dtype = ctx.meta
        G = X * Y
        cd = kc.dtype
        acc = incl.dtype if incl is not None else (S0.dtype if S0 is not None else cd)
        if dout is None:
            dout = kc.new_zeros(X, Y, T, d)
        dO = dout.to(cd)
        if P:
            dO = torch.nn.functional.pad(dO, (0, 0, 0, P))
        dO = dO.reshape(G, n, C, d).contiguous()
        dev = kc.device
        pool = ctx.pool
        dA = torch.bmm(
            dO.view(G * n, C, d), vc.view(G * n, C, d).transpose(1, 2), out=pool.empty((G * n, C, C), cd, dev)
        ).tril_(-1)
        sym = torch.add(dA, dA.transpose(1, 2), out=pool.empty((G * n, C, C), cd, dev))
        dK = torch.bmm(sym, kc.view(G * n, C, N), out=pool.empty((G * n, C, N), cd, dev)).view(G, n, C, N)
        del dA, sym
        dV = torch.bmm(A.transpose(1, 2), dO.view(G * n, C, d)).view(G, n, C, d)
        # the reads: dK_c += dO_c P_c^T
        if S0 is not None:
            dK[:, 0].baddbmm_(dO[:, 0], S0.to(cd).transpose(1, 2))
        for c in range(1, n):
            dK[:, c].baddbmm_(dO[:, c], incl[c - 1].to(cd).transpose(1, 2))
        # the state's gradient R_c, from the last chunk back, and the writes' gradients
        R = None if dS_out is None else dS_out.reshape(G, N, d).to(acc).clone()
        for c in range(n - 1, -1, -1):
            if c < n_w and R is not None:
                Rc = R.to(cd)
                dK[:, c].baddbmm_(vc[:, c], Rc.transpose(1, 2))
                dV[:, c].baddbmm_(kc[:, c], Rc)
            if c >= 1 or S0 is not None:  # chunk c read the state after chunk c - 1 (or S0)
                kT = kc[:, c].transpose(1, 2)
                if R is None:
                    R = torch.bmm(kT, dO[:, c]).to(acc)
                elif acc == cd:
                    R.baddbmm_(kT, dO[:, c])
                else:
                    R += torch.bmm(kT, dO[:, c]).to(acc)
        dS0 = None
        if S0 is not None and ctx.needs_input_grad[2]:
            dS0 = (R if R is not None else S0.new_zeros(G, N, d)).reshape(X, Y, N, d).to(s_dtype)
        dk = dK.view(X, Y, n * C, N)
        dv = dV.view(X, Y, n * C, d)
        if P:
            dk, dv = dk[:, :, :T], dv[:, :, :T]
        dk = dk.to(k_dtype) if ctx.needs_input_grad[0] else None
        dv = dv.sum_to_size(v_shape).to(v_dtype) if ctx.needs_input_grad[1] else None
        return dk, dv, dS0, None, None


def _undamped_plain(k, v, state, C: int, need_state: bool):
    """The undamped chunked form in plain autograd ops (GPU and torch.compile: the compiler fuses
    and schedules it): the states before each chunk are one exclusive prefix sum."""
    B, H, T, N = k.shape  # any two leading batch dimensions (the model's are (H, B))
    d = v.shape[-1]
    P = (-T) % C
    if P:
        k = torch.nn.functional.pad(k, (0, 0, 0, P))
        v = torch.nn.functional.pad(v, (0, 0, 0, P))
    n = (T + P) // C
    kc = k.reshape(B, H, n, C, N)
    vc = v.reshape(v.shape[0], v.shape[1], n, C, d)
    out = gram(kc).tril(diagonal=-1) @ vc  # (B, H, n, C, d): within chunks
    S = state
    if n > 1 or need_state:
        write = kc.transpose(-1, -2) @ vc  # (B, H, n, N, d): each chunk's sum of rank-1 writes
        incl = torch.cumsum(write, dim=2)  # the state after chunk c (without the carried-in one)
        if n > 1:
            inter = kc[:, :, 1:] @ incl[:, :, :-1]  # chunks 1.. read the state before them
            out = out + torch.cat([torch.zeros_like(out[:, :, :1]), inter], dim=2)
        if need_state:
            S = incl[:, :, -1] if state is None else incl[:, :, -1] + state
    if state is not None:
        out = out + kc @ state.unsqueeze(2)
    return out.reshape(B, H, n * C, d)[:, :, :T], (S if need_state else None)


def attention_chunked(
    k: torch.Tensor,
    v: torch.Tensor,
    log_f: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    chunk_size: int = 128,
    need_state: bool = True,
    fused: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked linear-time form: (a* (H, B, T, d), rho after the last token (H, B, N, d) or None).

    ``state`` is rho carried in from earlier tokens (None = empty memory). Inside a chunk the
    masked product is used; across chunks the N x d state is read and then written once per
    chunk (Eq. 5), so the cost is O(T (C (N + d) + N d)) instead of O(T^2 (N + d)).
    ``need_state=False`` skips forming the final state (a plain forward pass) and returns None.
    Without damping, ``fused`` picks the hand-written autograd node (default on CPU outside
    ``torch.compile``) or the plain-op form (default on GPU and under ``torch.compile``).
    """
    _check(k, v, log_f)
    B, H, T, N = k.shape  # any two leading batch dimensions (the model's are (H, B))
    d = v.shape[-1]
    C = max(1, min(int(chunk_size), T))
    if log_f is None:  # no damping (the official model)
        if fused is None:
            fused = eager_cpu(k.device)
        if fused:
            return _CausalSharedValue.apply(k, v, state, C, need_state)
        if state is None and not need_state and n_chunks(T, C) == 1:
            return attention_quadratic(k, v), None
        return _undamped_plain(k, v, state, C, need_state)
    P = (-T) % C  # zero-pad at the end: zero keys/values and log f = 0 leave rho unchanged
    if P:
        k = torch.nn.functional.pad(k, (0, 0, 0, P))
        v = torch.nn.functional.pad(v, (0, 0, 0, P))
        log_f = torch.nn.functional.pad(log_f, (0, P))
    n = (T + P) // C
    Bv, Hv = v.shape[0], v.shape[1]
    kc = k.reshape(B, H, n, C, N)
    vc = v.reshape(Bv, Hv, n, C, d)
    strict = torch.ones(C, C, dtype=torch.bool, device=k.device).tril(diagonal=-1)
    Bf, Hf = log_f.shape[0], log_f.shape[1]
    Lc = torch.cumsum(log_f.reshape(Bf, Hf, n, C), dim=-1)  # within-chunk cumulative log f
    W = torch.exp((Lc.unsqueeze(-1) - Lc.unsqueeze(-2)).masked_fill(~strict, float("-inf")))
    read_w = torch.exp(Lc).unsqueeze(-1)  # (Bf, Hf, n, C, 1): decay from chunk start to i
    write_w = torch.exp(Lc[..., -1:] - Lc).unsqueeze(-1)  # decay from j to chunk end
    chunk_w = torch.exp(Lc[..., -1])  # (Bf, Hf, n): decay over the whole chunk

    # within chunks: the masked, damped product, all chunks at once
    out = (gram(kc) * W) @ vc  # (B, H, n, C, d)

    # across chunks: carry rho chunk by chunk (read the end of the previous chunk, then write)
    S = state
    inter = []
    for c in range(n):
        kq = kc[:, :, c]  # (B, H, C, N)
        if S is None:  # empty memory: nothing to read
            inter.append(None)
        else:
            inter.append(read_w[:, :, c] * (kq @ S))
        if S is not None or c < n - 1 or need_state:
            write = (kq * write_w[:, :, c]).transpose(-1, -2) @ vc[:, :, c]  # (B, H, N, d)
            S = write if S is None else chunk_w[:, :, c, None, None] * S + write
    if n > 1 or state is not None:
        if inter[0] is None:
            inter[0] = torch.zeros_like(out[:, :, 0])
        out = out + torch.stack(inter, dim=2)
    out = out.reshape(B, H, n * C, d)[:, :, :T]
    if not need_state:
        return out, None
    if S is None:
        S = k.new_zeros(B, H, N, d)
    return out, S


def n_chunks(T: int, C: int) -> int:
    return -(-T // C)


def attention_recurrent(
    k: torch.Tensor,
    v: torch.Tensor,
    log_f: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    inplace: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token by token, read before write (Eq. 8): a*_t = k_t^T (f_t rho), rho <- f_t rho + k_t v_t^T.

    k (H, B, T, N), v (1|H, 1|B, T, d), log_f None or (1|H, 1|B, T), state rho (H, B, N, d) or None
    (empty memory). Returns (a* (H, B, T, d), rho after the last token). ``inplace`` updates
    ``state`` itself (generation, one token per call: no copy of the state per token).
    """
    _check(k, v, log_f)
    X, Y, T, N = k.shape
    d = v.shape[-1]
    if state is None:
        state = k.new_zeros(X, Y, N, d)
    reads = []  # a*_t, (X, Y, 1, d) each
    for t in range(T):
        k_t, v_t = (k, v) if T == 1 else (k[:, :, t : t + 1], v[:, :, t : t + 1])  # (X, Y, 1, N), (., ., 1, d)
        if log_f is not None:
            f = torch.exp(log_f[..., t, None, None])  # (X|1, Y|1, 1, 1)
            state = state.mul_(f) if inplace else state * f
        reads.append(k_t @ state)  # the read
        if inplace:
            v_t = v_t.expand(X, Y, 1, d).reshape(X * Y, 1, d)
            state.view(X * Y, N, d).baddbmm_(k_t.reshape(X * Y, N, 1), v_t)
        else:
            state = state + k_t.transpose(-1, -2) * v_t  # the rank-1 Hebbian write
    return (reads[0] if T == 1 else torch.cat(reads, dim=2)), state
