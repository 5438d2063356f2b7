"""Training BDH-GPU without backpropagation through time (paper §7.2, ``BDHConfig.detach_kv``).

The paper trains a variant in which "the keys and values are detached inside attention", so no
gradient flows back through time at all. In the terms of ``engramlab.bdh.attention`` (keys =
queries = k_t = U x_t, values v*_t, forget factors f_t):

    a*_t = k_t^T ( f_t * sg(rho_{t-1}) ),     rho_{t-1} = sum_{tau<t} sg( prod_{s=tau+1}^{t-1} f_s  k_tau v*_tau^T )

where sg is stop-gradient. Precisely what is detached:

- the keys k_tau and the values v*_tau of every token on the key/value side (the rank-1 writes
  k_tau v*_tau^T, including those carried in from earlier windows as ``state``), so the state
  rho that a token reads is a constant for the backward pass;
- the forget factors f_s of the tokens between a write and the read (ALiBi damping is a
  constant anyway; for BDH-GPU' these are the learned gates of earlier tokens).

What keeps its gradient: the query k_t of the reading token (its x_t through U), and for
BDH-GPU' the gate f_t of the reading token itself (the factor applied to the state at its read,
Eq. 8's ``f_t rho_{t-1}``). Both belong to token t alone. Attention is the only place where
BDH-GPU mixes tokens (everything else acts on one position), so with ``detach_kv`` the
gradient of the loss at position t reaches only the computation of token t itself: the
gradient with respect to any earlier input is exactly zero (tests/bdh/test_bdh_detach_kv.py).
The forward values are those of the ordinary attention; only the backward pass changes.
The gradients equal those of running each token with ``BDH.step`` from a detached state
and summing over tokens (the test's explicit computation).

``attention_detached_kv`` is the chunked form of ``attention.attention_chunked`` with the query
separated from the keys: within a chunk the masked product q k^T of queries against detached
keys, across chunks the read of the detached states (computed without autograd).
"""

from __future__ import annotations

import torch


def _check(k: torch.Tensor, v: torch.Tensor, log_f: torch.Tensor | None) -> None:
    ok = k.dim() == 4 and v.dim() == 4 and v.shape[-2] == k.shape[-2]
    if not ok or any(b not in (1, a) for a, b in zip(k.shape[:2], v.shape[:2])):
        raise ValueError(
            f"expected keys k (H, B, T, N) and values v (1|H, 1|B, T, d) with the same T, "
            f"got k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if log_f is not None and (log_f.dim() != 3 or log_f.shape[-1] != k.shape[-2]):
        raise ValueError(f"log_f must be (1|H, 1|B, T) with T={k.shape[-2]}, got {tuple(log_f.shape)}")


def attention_detached_kv(
    k: torch.Tensor,
    v: torch.Tensor,
    log_f: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    chunk_size: int = 128,
    need_state: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eq. 4 with the key/value side detached: (a* (H, B, T, d), rho after the tokens or None).

    Same arguments and forward values as ``attention.attention_chunked``; the gradient flows
    only into the queries k (and into log_f of the reading token), see the module docstring.
    The returned state carries no gradient. ``chunk_size >= T`` is the quadratic masked product.
    """
    _check(k, v, log_f)
    X, Y, T, N = k.shape
    d = v.shape[-1]
    C = max(1, min(int(chunk_size), T))
    P = (-T) % C  # zero-padding at the end: zero keys/values and log f = 0 leave rho unchanged
    q = k
    kd, vd = k.detach(), v.detach()
    lfd = None if log_f is None else log_f.detach()
    if P:
        q = torch.nn.functional.pad(q, (0, 0, 0, P))
        kd = torch.nn.functional.pad(kd, (0, 0, 0, P))
        vd = torch.nn.functional.pad(vd, (0, 0, 0, P))
        if lfd is not None:
            lfd = torch.nn.functional.pad(lfd, (0, P))
    n = (T + P) // C
    qc = q.reshape(X, Y, n, C, N)
    kc = kd.reshape(X, Y, n, C, N)
    vc = vd.reshape(vd.shape[0], vd.shape[1], n, C, d)
    strict = torch.ones(C, C, dtype=torch.bool, device=k.device).tril(diagonal=-1)
    if lfd is None:
        W = strict.to(k.dtype)
        read_w = write_w = chunk_w = None
    else:
        Lc = torch.cumsum(lfd.reshape(lfd.shape[0], lfd.shape[1], n, C), dim=-1)  # within-chunk sum of log f
        W = torch.exp((Lc.unsqueeze(-1) - Lc.unsqueeze(-2)).masked_fill(~strict, float("-inf")))
        read_w = torch.exp(Lc).unsqueeze(-1)  # decay from the chunk's start to token i (f_i included)
        write_w = torch.exp(Lc[..., -1:] - Lc).unsqueeze(-1)  # decay from token j to the chunk's end
        chunk_w = torch.exp(Lc[..., -1])[..., None, None]  # over the whole chunk
    # the states before each chunk: constants of the backward pass
    with torch.no_grad():
        S = None if state is None else state.detach()
        before = []
        for c in range(n):
            before.append(S)
            if c < n - 1 or need_state:
                kw = kc[:, :, c] if write_w is None else kc[:, :, c] * write_w[:, :, c]
                write = kw.transpose(-1, -2) @ vc[:, :, c]  # (X, Y, N, d)
                if S is None:
                    S = write
                else:
                    S = (S if chunk_w is None else chunk_w[:, :, c] * S) + write
    # within chunks: queries against detached keys; across chunks: the read of the detached state
    out = ((qc @ kc.transpose(-1, -2)) * W) @ vc  # (X, Y, n, C, d)
    reads = []
    for c in range(n):
        if before[c] is None:
            reads.append(torch.zeros_like(out[:, :, c]))
        else:
            r = qc[:, :, c] @ before[c]
            reads.append(r if read_w is None else read_w[:, :, c] * r)
    out = out + torch.stack(reads, dim=2)
    out = out.reshape(X, Y, n * C, d)[:, :, :T]
    if log_f is not None and log_f.requires_grad:
        # value 1, gradient of the reading token's own factor f_t (a*_t = f_t k_t^T rho_{t-1})
        out = out * torch.exp(log_f - log_f.detach()).unsqueeze(-1)
    if not need_state:
        return out, None
    if S is None:
        S = k.new_zeros(X, Y, N, d)
    return out, S
