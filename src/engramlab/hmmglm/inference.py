"""Pure HMM inference on per-state log-likelihoods (dynamax style; Rabiner 1989, our notes Sec. 2.1).

Every function takes the emission log-likelihoods ``log_lik[b, t, s] = log p(x_t | z_t = s, history)``
of a batch of B sequences, the initial log-distribution ``log_pi0`` (S,) and the log transition
matrix ``log_A`` (S, S) with ``log_A[i, j] = log p(z_{t+1} = j | z_t = i)``, and returns a small
result object. Everything is in log space, vectorised over sequences and states; the only Python
loop is over time (``method="sequential"``), or there is none at all (``method="scan"``: an
associative (parallel-prefix) scan of log-semiring matrix products, O(log T) sequential depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PosteriorResult:
    """Output of :func:`hmm_smoother`.

    log_normalizer: (B,) log p(x_{1:T}) of each sequence (eq. of the forward algorithm).
    smoothed_probs: (B, T, S) gamma_t(s) = p(z_t = s | x_{1:T}).
    trans_counts:   (B, S, S) sum_t xi_t(i, j) = sum_t p(z_t = i, z_{t+1} = j | x_{1:T}).
    log_alpha:      (B, T, S) filtered log p(z_t, x_{1:t}).
    """

    log_normalizer: torch.Tensor
    smoothed_probs: torch.Tensor
    trans_counts: torch.Tensor
    log_alpha: torch.Tensor


@dataclass
class ViterbiResult:
    """Output of :func:`hmm_posterior_mode`: states (B, T) long, log_prob (B,) of that path."""

    states: torch.Tensor
    log_prob: torch.Tensor


def _check(log_lik: torch.Tensor, log_pi0: torch.Tensor, log_A: torch.Tensor) -> None:
    if log_lik.dim() != 3:
        raise ValueError(f"log_lik must have shape (batch, T, S), got {tuple(log_lik.shape)}")
    S = log_lik.shape[-1]
    if log_pi0.shape != (S,) or log_A.shape != (S, S):
        raise ValueError(f"log_pi0 must be ({S},) and log_A ({S}, {S}); got {tuple(log_pi0.shape)}, "
                         f"{tuple(log_A.shape)}")


def _log_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Log-semiring matrix product: out[..., i, j] = logsumexp_k a[..., i, k] + b[..., k, j]."""
    return torch.logsumexp(a.unsqueeze(-1) + b.unsqueeze(-3), dim=-2)


def associative_scan(fn, elems: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Inclusive prefix scan ``out_t = e_1 o e_2 o ... o e_t`` of an associative ``fn`` along ``dim``.

    The odd/even recursion of Blelloch (as in ``jax.lax.associative_scan``): O(T) work, O(log T)
    depth, each level one batched call of ``fn``.
    """
    elems = elems.movedim(dim, 0)
    out = _scan0(fn, elems)
    return out.movedim(0, dim)


def _scan0(fn, e: torch.Tensor) -> torch.Tensor:
    T = e.shape[0]
    if T < 2:
        return e
    pairs = fn(e[0:-1:2], e[1::2])  # (T//2, ...) reduced adjacent pairs
    odd = _scan0(fn, pairs)  # prefix results at positions 1, 3, 5, ...
    if T % 2 == 0:
        even = fn(odd[:-1], e[2::2])
    else:
        even = fn(odd, e[2::2])
    even = torch.cat([e[:1], even], dim=0)  # positions 0, 2, 4, ...
    out = torch.empty_like(e)
    out[0::2] = even
    out[1::2] = odd
    return out


def hmm_filter(log_lik: torch.Tensor, log_pi0: torch.Tensor, log_A: torch.Tensor,
               method: str = "sequential") -> tuple[torch.Tensor, torch.Tensor]:
    """Forward pass. Returns (log_alpha (B, T, S), log_normalizer (B,)).

    log_alpha_1 = log pi0 + log_lik_1;
    log_alpha_t = log_lik_t + logsumexp_i(log_alpha_{t-1,i} + log A_{i,:}).
    """
    _check(log_lik, log_pi0, log_A)
    B, T, S = log_lik.shape
    if method == "sequential":
        log_alpha = torch.from_numpy(_forward_np(log_lik.detach().cpu().double().numpy(),
                                                 log_pi0.detach().cpu().double().numpy(),
                                                 log_A.detach().cpu().double().numpy())).to(log_lik.dtype)
    elif method == "scan":
        # M_1[i, j] = log pi0_j + ll_1j (any i), M_t[i, j] = log A_ij + ll_tj; alpha_t = (M_1 ... M_t)[0, :]
        M = log_A + log_lik.unsqueeze(-2)  # (B, T, S, S)
        M[:, 0] = (log_pi0 + log_lik[:, 0]).unsqueeze(-2).expand(B, S, S)
        log_alpha = associative_scan(_log_matmul, M, dim=1)[:, :, 0, :]
    else:
        raise ValueError(f"method must be 'sequential' or 'scan', got {method!r}")
    return log_alpha, torch.logsumexp(log_alpha[:, -1], dim=-1)


def _backward(log_lik: torch.Tensor, log_A: torch.Tensor, method: str) -> torch.Tensor:
    """log_beta_t(i) = log p(x_{t+1:T} | z_t = i); log_beta_T = 0."""
    B, T, S = log_lik.shape
    if method == "sequential":
        return torch.from_numpy(_backward_np(log_lik.detach().cpu().double().numpy(),
                                             log_A.detach().cpu().double().numpy())).to(log_lik.dtype)
    # N_t[i, j] = log A_ij + ll_{t+1, j}; beta_t = logsumexp_j (N_t ... N_{T-1})[i, j]  (suffix products)
    N = log_A + log_lik[:, 1:].unsqueeze(-2)  # (B, T-1, S, S)
    if T == 1:
        return torch.zeros_like(log_lik)
    rev = associative_scan(lambda x, y: _log_matmul(y, x), N.flip(1), dim=1).flip(1)
    log_beta = torch.zeros_like(log_lik)
    log_beta[:, :-1] = torch.logsumexp(rev, dim=-1)
    return log_beta


def hmm_smoother(log_lik: torch.Tensor, log_pi0: torch.Tensor, log_A: torch.Tensor,
                 method: str = "sequential", trans_counts: bool = True,
                 mask: torch.Tensor | None = None) -> PosteriorResult:
    """Forward-backward (E-step): posterior marginals gamma and expected transition counts sum_t xi_t.

    gamma_t(s) ∝ alpha_t(s) beta_t(s);  xi_t(i, j) ∝ alpha_t(i) A_ij p(x_{t+1}|j) beta_{t+1}(j).
    ``mask`` (B, T) marks real bins of padded sequences: padded bins must carry log_lik = 0 (so they
    do not change the normaliser) and their transitions are left out of ``trans_counts``.
    """
    log_alpha, log_Z = hmm_filter(log_lik, log_pi0, log_A, method)
    log_beta = _backward(log_lik, log_A, method)
    log_gamma = log_alpha + log_beta
    gamma = torch.softmax(log_gamma, dim=-1)  # normalised per bin (removes round-off drift)
    if trans_counts and log_lik.shape[1] > 1:
        log_xi = (log_alpha[:, :-1].unsqueeze(-1) + log_A
                  + (log_lik[:, 1:] + log_beta[:, 1:]).unsqueeze(-2))  # (B, T-1, S, S)
        B, T1, S, _ = log_xi.shape
        xi = torch.softmax(log_xi.reshape(B, T1, S * S), dim=-1).reshape(B, T1, S, S)
        if mask is not None:
            xi = xi * mask[:, 1:, None, None].to(xi.dtype)
        counts = xi.sum(1)
    else:
        S = log_lik.shape[-1]
        counts = log_lik.new_zeros(log_lik.shape[0], S, S)
    return PosteriorResult(log_Z, gamma, counts, log_alpha)


def hmm_posterior_mode(log_lik: torch.Tensor, log_pi0: torch.Tensor, log_A: torch.Tensor) -> ViterbiResult:
    """Viterbi: argmax_z log p(z_{1:T}, x_{1:T}) by max-product with back-pointers."""
    _check(log_lik, log_pi0, log_A)
    B, T, S = log_lik.shape
    ll = log_lik.detach().cpu().double().numpy()
    lA = log_A.detach().cpu().double().numpy()
    psi = np.zeros((B, T, S), dtype=np.int64)
    omega = log_pi0.detach().cpu().double().numpy() + ll[:, 0]
    for t in range(1, T):
        cand = omega[:, :, None] + lA  # (B, S_from, S_to)
        psi[:, t] = cand.argmax(1)
        omega = np.take_along_axis(cand, psi[:, t][:, None, :], 1)[:, 0] + ll[:, t]
    last = omega.argmax(-1)
    log_prob = omega[np.arange(B), last]
    states = np.empty((B, T), dtype=np.int64)
    states[:, -1] = last
    for t in range(T - 1, 0, -1):
        states[:, t - 1] = psi[np.arange(B), t, states[:, t]]
    return ViterbiResult(torch.from_numpy(states), torch.from_numpy(log_prob))


# ---- sequential recursions in numpy: tiny per-step arrays, where numpy's call overhead is ~10x lower
# than torch's. Log space with the max-shift trick:
# logsumexp_i(a_i + log A_ij) = m + log sum_i e^{a_i - m} A_ij,  m = max_i a_i.


def _forward_np(ll: np.ndarray, log_pi0: np.ndarray, log_A: np.ndarray) -> np.ndarray:
    B, T, S = ll.shape
    A = np.exp(log_A)
    out = np.empty_like(ll)
    a = log_pi0 + ll[:, 0]
    out[:, 0] = a
    with np.errstate(divide="ignore"):
        for t in range(1, T):
            m = a.max(-1, keepdims=True)
            a = np.log((np.exp(a - m)[:, :, None] * A).sum(1)) + m + ll[:, t]
            out[:, t] = a
    return out


def _backward_np(ll: np.ndarray, log_A: np.ndarray) -> np.ndarray:
    B, T, S = ll.shape
    A = np.exp(log_A)  # no BLAS calls in the loop: tiny matmuls would wake a thread pool
    out = np.zeros_like(ll)
    b = out[:, -1]
    with np.errstate(divide="ignore"):
        for t in range(T - 2, -1, -1):
            v = ll[:, t + 1] + b
            m = v.max(-1, keepdims=True)
            b = np.log((np.exp(v - m)[:, None, :] * A).sum(2)) + m
            out[:, t] = b
    return out
