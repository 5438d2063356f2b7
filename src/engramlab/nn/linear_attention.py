"""Causal linear attention with per-head exponential decay, in chunked (linear-time) form.

This one kernel carries both decayed linear recurrences of engramlab:

- BDH's synaptic state rho (paper Eq. 5/8): keys = queries = x (positive, n-dimensional),
  values v*, strictly causal (the current token excluded), decay U = ALiBi damping;
- AM-SU's astrocyte state H_t = lambda * H_{t-1} + v_t k_t^T read out by H_t q_t (current
  token included).

With gamma = exp(log_decay) in (0, 1] per head, the state after token t is

    S_t = sum_{tau <= t} gamma^(t - tau) k_tau v_tau^T          (Dk x Dv per head)

and the output is ``q_t^T S_t`` (include_current=True) or ``gamma * q_t^T S_{t-1}``
(include_current=False, i.e. sum_{tau < t} gamma^(t - tau) (q_t . k_tau) v_tau, Eq. 5's U^(t-tau)).

The chunked form computes the masked product inside chunks of C tokens and carries S across
chunks, so time and memory grow linearly with T. ``recurrent_step`` is the one-token form.
All three (this, ``recurrent_step`` looped, and ``naive_linear_attention``) agree to float64
round-off (tests/nn/test_linear_attention.py).
"""

from __future__ import annotations

import torch


def _decay_per_head(log_decay: torch.Tensor | None, H: int, like: torch.Tensor) -> torch.Tensor | None:
    if log_decay is None:
        return None
    g = torch.as_tensor(log_decay, dtype=like.dtype, device=like.device).reshape(-1)
    if g.numel() == 1:
        g = g.expand(H)
    if g.numel() != H:
        raise ValueError(f"log_decay must have one value per head ({H}), got {g.numel()}")
    return g  # (H,)


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    include_current: bool,
    chunk_size: int = 64,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked causal decayed linear attention.

    q, k: (B, H, T, Dk); v: (B, H or 1, T, Dv) (values may be shared by all heads);
    log_decay: None (no decay) or (H,) / scalar, log gamma <= 0; state: None or (B, H, Dk, Dv),
    the S carried in from earlier tokens. Returns (out (B, H, T, Dv), final state (B, H, Dk, Dv)).
    """
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    k = k.expand(B, H, T, Dk)
    v = v.expand(B, H, T, Dv)
    g = _decay_per_head(log_decay, H, q)
    C = max(1, min(int(chunk_size), T))
    P = (-T) % C  # zero-pad at the front: zero keys and values add nothing to S
    if P:
        q, k, v = (torch.nn.functional.pad(z, (0, 0, P, 0)) for z in (q, k, v))
    n = (T + P) // C
    qc = q.reshape(B, H, n, C, Dk)
    kc = k.reshape(B, H, n, C, Dk)
    vc = v.reshape(B, H, n, C, Dv)

    pos = torch.arange(C, device=q.device)
    diff = pos[:, None] - pos[None, :]  # i - j
    mask = diff > 0 if not include_current else diff >= 0
    if g is None:
        W = mask.to(q.dtype).expand(H, C, C)
        w_key = None
    else:
        W = torch.exp(g[:, None, None] * diff.clamp(min=0).to(q.dtype)) * mask  # (H, C, C)
        w_key = torch.exp(g[:, None] * (C - 1 - pos).to(q.dtype))  # (H, C): gamma^(C-1-j)
    # within each chunk: masked, decayed product
    scores = qc @ kc.transpose(-1, -2)  # (B, H, n, C, C)
    out = (scores * W[None, :, None]) @ vc  # (B, H, n, C, Dv)

    # across chunks: carry S; the read of S_prev at local position i carries gamma^(i+1)
    if g is None:
        q_in = qc
        kw = kc
        chunk_decay = None
    else:
        q_in = qc * torch.exp(g[:, None] * (pos + 1).to(q.dtype))[None, :, None, :, None]
        kw = kc * w_key[None, :, None, :, None]
        chunk_decay = torch.exp(g * C)[None, :, None, None]  # (1, H, 1, 1)
    S = q.new_zeros(B, H, Dk, Dv)
    inter = []
    for c in range(n):
        inter.append(q_in[:, :, c] @ S)
        kv = kw[:, :, c].transpose(-1, -2) @ vc[:, :, c]  # (B, H, Dk, Dv)
        S = S + kv if chunk_decay is None else S * chunk_decay + kv
    out = out + torch.stack(inter, dim=2)
    out = out.reshape(B, H, n * C, Dv)[:, :, P:]

    if state is not None:
        # the carried-in state contributes gamma^(t+1) q_t^T S_in at local time t
        if g is None:
            out = out + q[:, :, P:] @ state
            S = S + state
        else:
            t = torch.arange(1, T + 1, device=q.device, dtype=q.dtype)
            out = out + (q[:, :, P:] * torch.exp(g[:, None] * t)[None, :, :, None]) @ state
            S = S + torch.exp(g * T)[None, :, None, None] * state
    return out, S


def recurrent_step(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    state: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    include_current: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token of the same recurrence: q_t, k_t (B, H, Dk), v_t (B, H or 1, Dv), state (B, H, Dk, Dv).

    Returns (out_t (B, H, Dv), new state). Exclusive form reads before writing (BDH's
    read-before-write, Eq. 8); inclusive form writes first (AM-SU).
    """
    H = state.shape[1]
    g = _decay_per_head(log_decay, H, state)
    gamma = None if g is None else torch.exp(g)[None, :, None, None]
    kv = k_t.unsqueeze(-1) * v_t.unsqueeze(-2)  # (B, H, Dk, Dv): rank-1 Hebbian write
    if include_current:
        new = kv + (state if gamma is None else gamma * state)
        out = (q_t.unsqueeze(-2) @ new).squeeze(-2)
    else:
        decayed = state if gamma is None else gamma * state
        out = (q_t.unsqueeze(-2) @ decayed).squeeze(-2)
        new = decayed + kv
    return out, new


def naive_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    include_current: bool,
) -> torch.Tensor:
    """Quadratic masked form sum_tau gamma^(t-tau) (q_t . k_tau) v_tau: the test oracle."""
    B, H, T, Dk = q.shape
    g = _decay_per_head(log_decay, H, q)
    t = torch.arange(T, device=q.device)
    diff = (t[:, None] - t[None, :]).to(q.dtype)
    mask = diff > 0 if not include_current else diff >= 0
    W = mask.to(q.dtype).expand(H, T, T) if g is None else torch.exp(g[:, None, None] * diff.clamp(min=0)) * mask
    return ((q @ k.expand(B, H, T, Dk).transpose(-1, -2)) * W) @ v.expand(B, H, T, v.shape[-1])
