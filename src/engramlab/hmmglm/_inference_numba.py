"""Compiled (numba) forward-backward and Viterbi in float64: the default E-step on CPU.

One loop over the trials of a padded batch, each trial run over its own ``lengths[b]`` bins only.

Numerics: the scaled recursion (Rabiner 1989) with an exact log-space fallback, bin by bin.

* The emission factors ``E_t = exp(ll_t - max_s ll_t(s))`` are formed once, vectorised, outside the
  loops. The forward pass carries the filtered probabilities ``p_t = alpha_t / sum(alpha_t)`` and the
  log normalisers, so a bin costs S^2 multiply-adds and no exp or log of its own (hmmlearn's log
  implementation spends S^2 exps per bin and pass).
* A linear bin is accepted only when every entry of ``(p_{t-1} A) * E_t`` is at least
  ``TINY = 1e-280``: then nothing was lost to underflow (a lost term is below 1e-307, i.e. a relative
  error under 1e-26). Otherwise (a state more than ~645 nats below the best one, after a likelihood
  gap, a forbidden transition A_ij = 0, ...) the bin is recomputed exactly by a column-wise log-sum-
  exp over its predecessors and kept in log form until its entries are normal numbers again. So a
  state whose only allowed predecessors lie far below the rest is never lost, as it is by a shared
  max-shift or by plain scaling.
* The backward pass does the same for the normalised beta; the posteriors gamma_t(i) ∝ p_t(i) r_i and
  xi_t(i, j) ∝ p_t(i) A_ij E_{t+1}(j) q_{t+1}(j), r = A (E_{t+1} q_{t+1}), are formed in linear space
  where their normaliser is at least TINY and in log space otherwise.

Viterbi is max-plus in log space (no exps at all), renormalised every bin.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TINY = 1e-280
LOG_TINY = math.log(TINY)
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
def shifted(ll, lengths, D, m):
    """D = ll - m on real bins (0 on padded ones), m (B, T) the maximum of each bin; np.exp(D) then
    gives the emission factors E (vectorised by numpy, outside the loops)."""
    B, T, S = ll.shape
    for b in range(B):
        L = lengths[b]
        for t in range(T):
            if t >= L:
                m[b, t] = 0.0
                for j in range(S):
                    D[b, t, j] = 0.0
                continue
            mx = ll[b, t, 0]
            for j in range(1, S):
                mx = max(mx, ll[b, t, j])
            m[b, t] = mx
            if mx == NEG_INF:  # an impossible bin: E = 0, handled by the forward pass
                for j in range(S):
                    D[b, t, j] = NEG_INF
            else:
                for j in range(S):
                    D[b, t, j] = ll[b, t, j] - mx


@njit(cache=True)
def forward(ll, E, lengths, log_pi, log_A, p, lan, unsafe, scale, logc):
    """Scaled forward pass with exact log-space fallback.

    In:  ll (B, T, S) log-likelihoods, E = exp(ll - m) (see :func:`shifted`).
    Out: p (B, T, S) filtered probabilities p(z_t | x_{1:t}); the log normaliser of bin t,
         log alpha_t - log alpha_{t-1} summed out, is log(scale_t) + m_t for a linear bin and logc_t
         (with scale_t = NaN) for a bin done in log space; unsafe (B, T) = 1 where some p_t(s) < TINY,
         and there lan (B, T, S) = log p_t exactly (elsewhere lan is not written). Bins past
         ``lengths[b]`` get scale 1 and unsafe 0, p and lan unwritten. A trial of probability zero gets
         p = NaN and logc = -inf from that bin on (its scale NaN).
    """
    B, T, S = ll.shape
    A = np.exp(log_A)
    pi = np.exp(log_pi)
    v = np.empty(S)
    x = np.empty(S)
    lprev = np.empty(S)
    for b in range(B):
        L = lengths[b]
        scale[b, L:] = 1.0  # padded bins: log normaliser log(1) + m (= 0, see shifted) = 0
        unsafe[b, L:] = 0
        dead = -1
        for t in range(L):
            lin = True
            if t == 0:
                for j in range(S):
                    v[j] = pi[j] * E[b, 0, j]
            elif unsafe[b, t - 1]:
                lin = False
            else:  # v = (p_{t-1} A) * E_t; the inner loop over j is independent (vectorises)
                for j in range(S):
                    v[j] = 0.0
                for i in range(S):
                    pi_ = p[b, t - 1, i]
                    for j in range(S):
                        v[j] += pi_ * A[i, j]
            if lin:
                s = 0.0
                mn = np.inf
                for j in range(S):
                    x_ = v[j] * E[b, t, j] if t > 0 else v[j]
                    v[j] = x_
                    s += x_
                    mn = min(mn, x_)
                if mn >= TINY:  # every entry a normal number: nothing was lost to underflow
                    inv = 1.0 / s
                    for j in range(S):
                        p[b, t, j] = v[j] * inv
                    unsafe[b, t] = 0
                    scale[b, t] = s
                else:
                    lin = False
            if not lin:  # exact log space for this bin
                if t == 0:
                    for j in range(S):
                        x[j] = log_pi[j] + ll[b, 0, j]
                else:
                    if unsafe[b, t - 1]:
                        for i in range(S):
                            lprev[i] = lan[b, t - 1, i]
                    else:
                        for i in range(S):
                            lprev[i] = math.log(p[b, t - 1, i])
                    for j in range(S):
                        x[j] = ll[b, t, j] + _lse_col(lprev, log_A, j)
                mx = NEG_INF
                for j in range(S):
                    mx = max(mx, x[j])
                if mx == NEG_INF:
                    dead = t
                    break
                s = 0.0
                for j in range(S):
                    s += math.exp(x[j] - mx)
                lc = mx + math.log(s)
                flag = 0
                for j in range(S):
                    y = x[j] - lc
                    lan[b, t, j] = y
                    p[b, t, j] = math.exp(y)
                    if y < LOG_TINY:
                        flag = 1
                unsafe[b, t] = flag
                scale[b, t] = np.nan
                logc[b, t] = lc
        if dead >= 0:
            p[b, dead:L] = np.nan
            scale[b, dead:L] = np.nan
            logc[b, dead:L] = NEG_INF
            unsafe[b, dead:L] = 0


@njit(cache=True)
def backward_posteriors(ll, E, lengths, log_A, p, lan, unsafe, logZ, gamma, counts):
    """Scaled backward pass fused with the posteriors: fill gamma (B, T, S) and counts (B, S, S) = sum_t xi_t.

    Needs the outputs of :func:`forward`; ``gamma`` may be ``p`` itself (each p_t is overwritten by
    gamma_t once used: one memory stream fewer). beta is carried normalised (sum 1) in linear form while all its
    entries are >= TINY, else in log form; gamma_t and xi_t come from p_t, r = A (E_{t+1} q_{t+1}) when
    that is exact (normaliser >= TINY), else from log space. Padded bins of gamma are 0; an impossible
    trial (log Z = -inf) gets NaN.
    """
    B, T, S = ll.shape
    A = np.exp(log_A)
    AT = A.T.copy()
    q = np.empty(S)  # beta_{t+1}, normalised
    lq = np.empty(S)  # log q, exact when qlog
    w = np.empty(S)
    r = np.empty(S)
    lr = np.empty(S)
    la = np.empty(S)
    v = np.empty(S)
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
        for i in range(S):
            gamma[b, L - 1, i] = p[b, L - 1, i]
            q[i] = 1.0 / S
        qlog = False
        for t in range(L - 2, -1, -1):
            lin = not qlog
            n = 0.0
            sr = 0.0
            if lin:
                for i in range(S):
                    r[i] = 0.0
                for j in range(S):  # r = A w, w = E_{t+1} q
                    wj = E[b, t + 1, j] * q[j]
                    w[j] = wj
                    for i in range(S):
                        r[i] += AT[j, i] * wj
                mn = np.inf
                for i in range(S):
                    acc = r[i]
                    mn = min(mn, acc)
                    n += p[b, t, i] * acc
                    sr += acc
                lin = mn >= TINY
            post_lin = lin and unsafe[b, t] == 0 and n >= TINY
            if post_lin:  # gamma, xi and the next q in one sweep (w already holds the old q)
                inv = 1.0 / n
                invs = 1.0 / sr
                for i in range(S):
                    pn = p[b, t, i] * inv
                    gamma[b, t, i] = pn * r[i]
                    for j in range(S):
                        counts[b, i, j] += pn * A[i, j] * w[j]
                    q[i] = r[i] * invs
                qlog = False
                continue
            else:  # log space: v_j = ll_{t+1}(j) + log q_j, lr_i = logsumexp_j(log A_ij + v_j)
                if not qlog:
                    for j in range(S):
                        lq[j] = math.log(q[j])
                for j in range(S):
                    v[j] = ll[b, t + 1, j] + lq[j]
                for i in range(S):
                    lr[i] = _lse_row(log_A, i, v)
                    la[i] = lan[b, t, i] if unsafe[b, t] else math.log(p[b, t, i])
                g = NEG_INF
                for i in range(S):
                    g = max(g, la[i] + lr[i])
                s = 0.0
                for i in range(S):
                    s += math.exp(la[i] + lr[i] - g)
                lg = g + math.log(s)
                for i in range(S):
                    gamma[b, t, i] = math.exp(la[i] + lr[i] - lg)
                    for j in range(S):
                        counts[b, i, j] += math.exp(la[i] + log_A[i, j] + v[j] - lg)
            if lin:
                inv = 1.0 / sr
                for i in range(S):
                    q[i] = r[i] * inv
                qlog = False
            else:  # lr was formed in the log-space branch above (lin False implies post_lin False)
                mx = NEG_INF
                for i in range(S):
                    mx = max(mx, lr[i])
                s = 0.0
                for i in range(S):
                    s += math.exp(lr[i] - mx)
                lse = mx + math.log(s)
                qlog = False
                for i in range(S):
                    y = lr[i] - lse
                    lq[i] = y
                    q[i] = math.exp(y)
                    if y < LOG_TINY:
                        qlog = True


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
