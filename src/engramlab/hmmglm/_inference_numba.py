"""Compiled (numba) forward-backward and Viterbi in float64: the default E-step on CPU.

One loop over the trials of a padded batch, each trial run over its own ``lengths[b]`` bins only.
Numerics (every quantity is kept in log space with a per-step normalisation):

* forward: ``lan_t = log alpha_t - c_t`` with ``max_s lan_t(s) = 0`` and the running offset ``c_t``.
  The predictive sum ``sum_i alpha_{t-1}(i) A_ij`` is formed from ``p_i = exp(lan_{t-1}(i)) <= 1``
  (S^2 multiply-adds and S exps per bin instead of hmmlearn's S^2 exps). Terms lost to underflow in
  it are below ``S * 1e-307``; where the sum itself is under ``TINY = 1e-280`` (every allowed
  predecessor of state j lies more than ~645 nats below the best state, e.g. after a likelihood gap,
  or A_ij = 0) that column is recomputed as an exact column-wise log-sum-exp, so the result never
  loses a state that only a far-down predecessor can reach.
* backward: the same with ``w_j = exp(ll_{t+1}(j) + lbn_{t+1}(j) - max)`` and ``r_i = sum_j A_ij w_j``.
* posteriors: gamma_t(i) = p_i r_i / s and xi_t(i, j) = p_i A_ij w_j / s with s = sum_i p_i r_i, so a
  whole E-step costs about 3 S^2 multiply-adds and 3 S exps per bin. Where s < TINY the bin is redone
  in log space (exact).

Absolute errors of gamma and xi from these shortcuts are below ~1e-26, far under float64 round-off.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TINY = 1e-280
NEG_INF = -np.inf


@njit(cache=True)
def _lse_col(lan, log_A, j):
    """log sum_i exp(lan[i] + log_A[i, j]) by max-shift (exact; -inf when every term is -inf)."""
    S = lan.shape[0]
    m = NEG_INF
    for i in range(S):
        v = lan[i] + log_A[i, j]
        if v > m:
            m = v
    if m == NEG_INF:
        return NEG_INF
    s = 0.0
    for i in range(S):
        s += math.exp(lan[i] + log_A[i, j] - m)
    return m + math.log(s)


@njit(cache=True)
def _lse_row(log_A, i, v):
    """log sum_j exp(log_A[i, j] + v[j]) by max-shift."""
    S = v.shape[0]
    m = NEG_INF
    for j in range(S):
        x = log_A[i, j] + v[j]
        if x > m:
            m = x
    if m == NEG_INF:
        return NEG_INF
    s = 0.0
    for j in range(S):
        s += math.exp(log_A[i, j] + v[j] - m)
    return m + math.log(s)


@njit(cache=True)
def forward(ll, lengths, log_pi, log_A, lan, cum):
    """Fill lan (B, T, S) (normalised log alpha, max 0 per bin) and cum (B, T) (offsets); return log Z (B,).

    log alpha_t = lan_t + cum_t. Bins past ``lengths[b]`` are left untouched. A trial with probability
    zero gets log Z = -inf and NaN from the bin where it becomes impossible.
    """
    B, T, S = ll.shape
    A = np.exp(log_A)
    p = np.empty(S)
    v = np.empty(S)
    pred = np.empty(S)
    logZ = np.empty(B)
    for b in range(B):
        L = lengths[b]
        mx = NEG_INF
        for j in range(S):
            v[j] = log_pi[j] + ll[b, 0, j]
            if v[j] > mx:
                mx = v[j]
        c = mx
        t = 0
        while True:
            if mx == NEG_INF:  # impossible trial
                lan[b, t:L] = np.nan
                cum[b, t:L] = NEG_INF
                logZ[b] = NEG_INF
                break
            cum[b, t] = c
            for j in range(S):
                x = v[j] - mx
                lan[b, t, j] = x
                p[j] = math.exp(x)
            t += 1
            if t == L:
                s = 0.0
                for j in range(S):
                    s += p[j]
                logZ[b] = c + math.log(s)
                break
            pred[:] = 0.0
            for i in range(S):  # pred = p A, the inner loop over j is independent (vectorises)
                pi_ = p[i]
                for j in range(S):
                    pred[j] += pi_ * A[i, j]
            mx = NEG_INF
            for j in range(S):
                if pred[j] > TINY:
                    lp = math.log(pred[j])
                else:
                    lp = _lse_col(lan[b, t - 1], log_A, j)
                x = lp + ll[b, t, j]
                v[j] = x
                if x > mx:
                    mx = x
            c += mx
    return logZ


@njit(cache=True)
def backward_posteriors(ll, lengths, log_A, lan, logZ, gamma, counts):
    """Backward pass fused with the posteriors: fill gamma (B, T, S) and counts (B, S, S) = sum_t xi_t.

    Needs ``lan`` and ``logZ`` from :func:`forward`. Padded bins of gamma are set to 0; an impossible
    trial (log Z = -inf) gets NaN.
    """
    B, T, S = ll.shape
    A = np.exp(log_A)
    AT = A.T.copy()
    lbn = np.empty(S)  # normalised log beta_{t+1}
    lb = np.empty(S)  # log beta_t (up to a constant)
    v = np.empty(S)
    w = np.empty(S)
    r = np.empty(S)
    p = np.empty(S)
    for b in range(B):
        L = lengths[b]
        gamma[b, L:] = 0.0
        for i in range(S):
            for j in range(S):
                counts[b, i, j] = 0.0
        if logZ[b] == NEG_INF:  # impossible trial
            gamma[b, :L] = np.nan
            counts[b] = np.nan
            continue
        # t = L - 1: beta = 1, gamma ∝ alpha
        s = 0.0
        for i in range(S):
            p[i] = math.exp(lan[b, L - 1, i])
            s += p[i]
        for i in range(S):
            gamma[b, L - 1, i] = p[i] / s
            lbn[i] = 0.0
        for t in range(L - 2, -1, -1):
            M = NEG_INF
            for j in range(S):
                v[j] = ll[b, t + 1, j] + lbn[j]
                if v[j] > M:
                    M = v[j]
            for j in range(S):
                w[j] = math.exp(v[j] - M)
            r[:] = 0.0
            for j in range(S):  # r = A w, the inner loop over i is independent (vectorises)
                wj = w[j]
                for i in range(S):
                    r[i] += AT[j, i] * wj
            s = 0.0
            rmax = NEG_INF
            for i in range(S):
                acc = r[i]
                p[i] = math.exp(lan[b, t, i])
                s += p[i] * acc
                if acc > TINY:
                    lb[i] = math.log(acc)
                else:
                    lb[i] = _lse_row(log_A, i, v) - M
                if lb[i] > rmax:
                    rmax = lb[i]
            if s > TINY:
                inv = 1.0 / s
                for i in range(S):
                    gamma[b, t, i] = p[i] * r[i] * inv
                    pi_ = p[i] * inv
                    for j in range(S):
                        counts[b, i, j] += pi_ * A[i, j] * w[j]
            else:  # log space for this bin: log gamma_i = lan_i + lb_i, log xi_ij = lan_i + log A_ij + v_j - M
                g = NEG_INF
                for i in range(S):
                    x = lan[b, t, i] + lb[i]
                    if x > g:
                        g = x
                s = 0.0
                for i in range(S):
                    s += math.exp(lan[b, t, i] + lb[i] - g)
                lg = g + math.log(s)
                for i in range(S):
                    gamma[b, t, i] = math.exp(lan[b, t, i] + lb[i] - lg)
                    for j in range(S):
                        counts[b, i, j] += math.exp(lan[b, t, i] + log_A[i, j] + v[j] - M - lg)
            for i in range(S):
                lbn[i] = lb[i] - rmax


@njit(cache=True)
def viterbi(ll, lengths, log_pi, log_A, states):
    """Max-product with back-pointers. Fills states (B, T) (-1 past each length); returns the log-probs (B,).

    Scores are renormalised to max 0 every bin (the offsets summed apart). Ties go to the lowest
    state index. A trial with probability zero gets log-prob -inf and states -1.
    """
    B, T, S = ll.shape
    lAT = log_A.T.copy()
    omega = np.empty(S)
    new = np.empty(S)
    psi = np.empty((T, S), dtype=np.int32)
    out = np.empty(B)
    for b in range(B):
        L = lengths[b]
        states[b, L:] = -1
        mx = NEG_INF
        for j in range(S):
            omega[j] = log_pi[j] + ll[b, 0, j]
            if omega[j] > mx:
                mx = omega[j]
        total = mx
        ok = mx > NEG_INF
        if ok:
            for j in range(S):
                omega[j] -= mx
        t = 1
        while ok and t < L:
            mx = NEG_INF
            for j in range(S):
                best = NEG_INF
                arg = 0
                for i in range(S):
                    x = omega[i] + lAT[j, i]
                    if x > best:
                        best = x
                        arg = i
                psi[t, j] = arg
                x = best + ll[b, t, j]
                new[j] = x
                if x > mx:
                    mx = x
            if mx == NEG_INF:
                ok = False
                break
            total += mx
            for j in range(S):
                omega[j] = new[j] - mx
            t += 1
        if not ok:
            states[b, :L] = -1
            out[b] = NEG_INF
            continue
        last = 0
        for j in range(1, S):
            if omega[j] > omega[last]:
                last = j
        out[b] = total + omega[last]
        states[b, L - 1] = last
        for t in range(L - 1, 0, -1):
            last = psi[t, last]
            states[b, t - 1] = last
    return out


@njit(cache=True)
def to_log_alpha(lan, cum, lengths):
    """In place: lan (normalised) -> log alpha = lan + cum on real bins, -inf on padded ones."""
    B, T, S = lan.shape
    for b in range(B):
        L = lengths[b]
        for t in range(T):
            if t < L:
                c = cum[b, t]
                for j in range(S):
                    lan[b, t, j] += c
            else:
                for j in range(S):
                    lan[b, t, j] = NEG_INF
