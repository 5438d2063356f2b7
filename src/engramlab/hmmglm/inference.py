"""Pure HMM inference on per-state log-likelihoods (dynamax style; Rabiner 1989, our notes Sec. 2.1).

Every function takes the emission log-likelihoods ``log_lik[b, t, s] = log p(x_t | z_t = s, history)``
of a batch of B sequences, the initial log-distribution ``log_pi0`` (S,) and the log transition
matrix ``log_A`` (S, S) with ``log_A[i, j] = log p(z_{t+1} = j | z_t = i)`` (entries may be -inf:
forbidden transitions), and returns a small result object.

Trials of unequal length come as one padded batch with ``lengths`` (B,) or a ``mask`` (B, T) (True
on the real bins, which must come first): bins past a trial's length are never read, whatever they
hold, and come back as 0 (posteriors), -inf (log alpha) or -1 (Viterbi states).

Methods (all float64 inside; results in the dtype and on the device of ``log_lik``):

* ``"numba"``: compiled loops over trials and bins (``_inference_numba.py``): the scaled recursion
  with an exact log-space fallback for every bin where an entry would underflow, S^2 multiply-adds
  and no transcendental call per bin in the common case. The default on CPU.
* ``"sequential"``: numpy, vectorised over trials and states with a Python loop over time and an
  exact column-wise log-sum-exp per bin. A plain reference, slower.
* ``"scan"``: torch only (any device): an associative (parallel-prefix) scan of log-semiring matrix
  products, O(log T) sequential depth. The default on CUDA.
* ``"auto"``: ``"numba"`` for CPU tensors (``"sequential"`` if numba cannot be imported), ``"scan"``
  otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

METHODS = ("auto", "numba", "sequential", "scan")


@dataclass
class PosteriorResult:
    """Output of :func:`hmm_smoother`.

    log_normalizer: (B,) log p(x_{1:T}) of each sequence (eq. of the forward algorithm).
    smoothed_probs: (B, T, S) gamma_t(s) = p(z_t = s | x_{1:T}); 0 on padded bins.
    trans_counts:   (B, S, S) sum_t xi_t(i, j) = sum_t p(z_t = i, z_{t+1} = j | x_{1:T}).
    log_alpha:      (B, T, S) filtered log p(z_t, x_{1:t}); -inf on padded bins.
    """

    log_normalizer: torch.Tensor
    smoothed_probs: torch.Tensor
    trans_counts: torch.Tensor
    log_alpha: torch.Tensor


@dataclass
class ViterbiResult:
    """Output of :func:`hmm_posterior_mode`: states (B, T) long (-1 on padded bins), log_prob (B,) of that
    path (a trial of probability zero: log_prob -inf and states -1)."""

    states: torch.Tensor
    log_prob: torch.Tensor


# ---- input checks -------------------------------------------------------------------------------------


def _check(log_lik: torch.Tensor, log_pi0: torch.Tensor, log_A: torch.Tensor, mask=None, lengths=None) -> torch.Tensor:
    """Validate shapes and values; return the trial lengths (B,) as a CPU int64 tensor."""
    if not isinstance(log_lik, torch.Tensor) or log_lik.dim() != 3:
        shape = tuple(log_lik.shape) if isinstance(log_lik, torch.Tensor) else type(log_lik).__name__
        raise ValueError(f"log_lik must be a tensor of shape (batch, T, S), got {shape}")
    B, T, S = log_lik.shape
    if T < 1 or S < 1:
        raise ValueError(f"log_lik needs at least one bin and one state, got shape {tuple(log_lik.shape)}")
    if tuple(log_pi0.shape) != (S,) or tuple(log_A.shape) != (S, S):
        raise ValueError(
            f"log_pi0 must be ({S},) and log_A ({S}, {S}); got {tuple(log_pi0.shape)}, {tuple(log_A.shape)}"
        )
    # one pass over each input: max() < inf fails exactly when some entry is NaN or +inf
    for name, v in (("log_pi0", log_pi0), ("log_A", log_A)):
        if not _np64(v).max() < np.inf:
            raise ValueError(f"{name} contains NaN or +inf; expected log-probabilities (-inf allowed)")
    L = _lengths(B, T, mask, lengths)
    if log_lik.device.type != "cpu":
        fine = bool(log_lik.detach().amax() < float("inf"))
    else:
        arr = log_lik.detach().numpy() if log_lik.dtype in (torch.float32, torch.float64) else _np64(log_lik)
        fine = bool(arr.max() < np.inf)
    if not fine:
        arr = _np64(log_lik)
        bad = (np.isnan(arr) | np.isposinf(arr)).any(-1) & (np.arange(T) < L[:, None].numpy())
        if bad.any():
            b, t = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"log_lik contains NaN or +inf at trial {b}, bin {t}; expected finite "
                f"log-likelihoods (or -inf for impossible states)"
            )
    return L


def _lengths(B: int, T: int, mask, lengths) -> torch.Tensor:
    if mask is not None and lengths is not None:
        raise ValueError("give either mask or lengths, not both")
    if lengths is not None:
        L = np.asarray(lengths.detach().cpu() if isinstance(lengths, torch.Tensor) else lengths)
        if L.shape != (B,) or not np.issubdtype(L.dtype, np.integer):
            raise ValueError(f"lengths must be {B} integers (one per trial), got {L.tolist()} ({L.dtype})")
        if (L < 1).any() or (L > T).any():
            raise ValueError(f"lengths must lie in 1..{T} (the padded length), got {L.tolist()}")
        return torch.from_numpy(L.astype(np.int64))
    if mask is None:
        return torch.from_numpy(np.full(B, T, dtype=np.int64))
    m = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    if m.shape != (B, T):
        raise ValueError(f"mask must have shape ({B}, {T}) like log_lik's first two axes, got {m.shape}")
    m = m.astype(bool)
    L = m.sum(1)
    prefix = np.arange(T) < L[:, None]
    if not np.array_equal(m, prefix):
        b = int(np.argwhere((m != prefix).any(1))[0, 0])
        raise ValueError(
            f"mask row {b} is not of the form [True, ..., True, False, ..., False]: padding "
            f"must come after the real bins"
        )
    if (L < 1).any():
        raise ValueError(f"mask row {int(np.argwhere(L < 1)[0, 0])} has no real bin; every trial needs one")
    return torch.from_numpy(L.astype(np.int64))


def _resolve(method: str, x: torch.Tensor) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "auto":
        if method == "numba":
            _kernels()
        return method
    if x.device.type != "cpu":
        return "scan"
    try:
        _kernels()
    except ImportError:
        return "sequential"
    return "numba"


def _kernels():
    try:
        from . import _inference_numba
    except ImportError as e:  # pragma: no cover - numba is a dependency
        raise ImportError(
            "method='numba' needs the numba package (pip install numba); use method='sequential' or 'scan' instead"
        ) from e
    return _inference_numba


def _np64(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().double().numpy())


def _padded_to_zero(log_lik: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    real = (torch.arange(log_lik.shape[1]) < L[:, None]).to(log_lik.device)
    return log_lik.masked_fill(~real.unsqueeze(-1), 0.0), real


# ---- public API -----------------------------------------------------------------------------------------


def hmm_filter(
    log_lik: torch.Tensor, log_pi0: torch.Tensor, log_A: torch.Tensor, method: str = "auto", mask=None, lengths=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward pass. Returns (log_alpha (B, T, S), log_normalizer (B,)).

    log_alpha_1 = log pi0 + log_lik_1;
    log_alpha_t = log_lik_t + logsumexp_i(log_alpha_{t-1,i} + log A_{i,:}).
    """
    L = _check(log_lik, log_pi0, log_A, mask, lengths)
    method = _resolve(method, log_lik)
    if method == "numba":
        fw = _numba_forward(log_lik, log_pi0, log_A, L)
        la, logZ = _log_alpha(fw), fw[-1]
    elif method == "sequential":
        la, logZ = _forward_np(_np64(log_lik), L.numpy(), _np64(log_pi0), _np64(log_A))
    else:
        la, logZ = _forward_scan(log_lik, log_pi0, log_A, L)
        return la, logZ
    return _out(la, log_lik), _out(logZ, log_lik)


def hmm_log_likelihood(
    log_lik: torch.Tensor, log_pi0: torch.Tensor, log_A: torch.Tensor, method: str = "auto", mask=None, lengths=None
) -> torch.Tensor:
    """log p(x_{1:T_b}) of each trial (B,) by the forward algorithm alone."""
    return hmm_filter(log_lik, log_pi0, log_A, method, mask=mask, lengths=lengths)[1]


def hmm_smoother(
    log_lik: torch.Tensor,
    log_pi0: torch.Tensor,
    log_A: torch.Tensor,
    method: str = "auto",
    trans_counts: bool = True,
    mask=None,
    lengths=None,
) -> PosteriorResult:
    """Forward-backward (E-step): posterior marginals gamma and expected transition counts sum_t xi_t.

    gamma_t(s) ∝ alpha_t(s) beta_t(s);  xi_t(i, j) ∝ alpha_t(i) A_ij p(x_{t+1}|j) beta_{t+1}(j).
    ``mask`` (B, T) or ``lengths`` (B,) mark the real bins of padded trials (see the module doc);
    only transitions between real bins enter ``trans_counts`` (zeros with ``trans_counts=False``).
    """
    L = _check(log_lik, log_pi0, log_A, mask, lengths)
    method = _resolve(method, log_lik)
    S = log_lik.shape[-1]
    if method == "numba":
        k = _kernels()
        fw = _numba_forward(log_lik, log_pi0, log_A, L)
        ll, E, Ln, lA, p, lan, unsafe, logc, logZ = fw
        log_alpha = _log_alpha(fw)
        counts = np.empty((ll.shape[0], S, S))
        k.backward_posteriors(ll, E, Ln, lA, p, lan, unsafe, logZ, p, counts)  # gamma overwrites p in place
        if not trans_counts:  # fused with gamma, so they cost nothing extra; zeros as documented
            counts[:] = 0.0
        return PosteriorResult(_out(logZ, log_lik), _out(p, log_lik), _out(counts, log_lik), _out(log_alpha, log_lik))
    if method == "sequential":
        ll = _np64(log_lik)
        la, logZ = _forward_np(ll, L.numpy(), _np64(log_pi0), _np64(log_A))
        lb = _backward_np(ll, L.numpy(), _np64(log_A))
        la, lb, logZ = (torch.from_numpy(a) for a in (la, lb, logZ))
        ll_t, real = _padded_to_zero(torch.from_numpy(ll), L)
        lA = torch.from_numpy(_np64(log_A))
    else:
        la, logZ = _forward_scan(log_lik, log_pi0, log_A, L)
        lb = _backward_scan(log_lik, log_A, L)
        ll_t, real = _padded_to_zero(log_lik, L)
        lA = log_A.to(log_lik.dtype)
    gamma, counts = _posteriors(ll_t, la, lb, lA, real, trans_counts)
    return PosteriorResult(_out(logZ, log_lik), _out(gamma, log_lik), _out(counts, log_lik), _out(la, log_lik))


def hmm_posterior_mode(
    log_lik: torch.Tensor, log_pi0: torch.Tensor, log_A: torch.Tensor, method: str = "auto", mask=None, lengths=None
) -> ViterbiResult:
    """Viterbi: argmax_z log p(z_{1:T_b}, x_{1:T_b}) per trial by max-product with back-pointers.

    Ties go to the lowest state index (exactly so for "numba" and "sequential"; "scan" forms the
    scores in another order, so it may break near-ties of ~1e-12 nats differently).
    """
    L = _check(log_lik, log_pi0, log_A, mask, lengths)
    method = _resolve(method, log_lik)
    if method == "numba":
        ll = _np64(log_lik)
        states = np.empty(ll.shape[:2], dtype=np.int64)
        lp = _kernels().viterbi(ll, L.numpy(), _np64(log_pi0), _np64(log_A), states)
    elif method == "sequential":
        states, lp = _viterbi_np(_np64(log_lik), L.numpy(), _np64(log_pi0), _np64(log_A))
    else:
        states, lp = _viterbi_scan(log_lik, log_pi0, log_A, L)
    return ViterbiResult(torch.from_numpy(states).to(log_lik.device), _out(lp, log_lik))


def _out(a, like: torch.Tensor) -> torch.Tensor:
    t = torch.from_numpy(a) if isinstance(a, np.ndarray) else a
    return t.to(device=like.device, dtype=like.dtype)


# ---- numba ------------------------------------------------------------------------------------------------


def _numba_forward(log_lik, log_pi0, log_A, L):
    k = _kernels()
    ll, Ln, lA = _np64(log_lik), L.numpy().astype(np.int64), _np64(log_A)
    B, T, S = ll.shape
    E, m = np.empty_like(ll), np.empty((B, T))
    k.shifted(ll, Ln, E, m)
    np.exp(E, out=E)  # emission factors exp(ll - max), vectorised
    p, lan = np.empty_like(ll), np.empty_like(ll)
    unsafe = np.zeros((B, T), dtype=np.uint8)
    scale, logc = np.empty((B, T)), np.empty((B, T))
    k.forward(ll, E, Ln, _np64(log_pi0), lA, p, lan, unsafe, scale, logc)
    with np.errstate(divide="ignore", invalid="ignore"):  # log normaliser per bin (0 on padded bins)
        lc = np.log(scale)
        lc += m
        np.copyto(lc, logc, where=np.isnan(scale))
    return ll, E, Ln, lA, p, lan, unsafe, lc, lc.sum(1)


def _log_alpha(fw) -> np.ndarray:
    """log alpha_t = log p_t + sum_{u<=t} logc_u (exact log p on the bins kept in log form); -inf padded."""
    ll, _, L, _, p, lan, unsafe, logc, _ = fw
    T = ll.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(p)
        if unsafe.any():
            rows = unsafe.astype(bool)
            out[rows] = lan[rows]
        out += np.cumsum(logc, axis=1)[..., None]
    if (L < T).any():
        out[np.arange(T) >= L[:, None]] = -np.inf
    return out


# ---- torch: posteriors from log alpha / log beta, and the associative scan ---------------------------------


def _posteriors(ll, la, lb, lA, real, trans_counts: bool):
    """gamma (B, T, S) and sum_t xi_t (B, S, S) from log alpha, log beta; padded bins give 0."""
    B, T, S = ll.shape
    r = real.unsqueeze(-1)
    gamma = torch.softmax(torch.where(r, la + lb, 0.0), dim=-1)  # normalised per bin
    gamma = torch.where(r, gamma, 0.0)
    if not trans_counts or T == 1:
        return gamma, ll.new_zeros(B, S, S)
    both = real[:, 1:]  # transition t -> t+1 between two real bins
    log_xi = la[:, :-1].unsqueeze(-1) + lA + (ll[:, 1:] + lb[:, 1:]).unsqueeze(-2)  # (B, T-1, S, S)
    log_xi = torch.where(both[..., None, None], log_xi, 0.0)
    xi = torch.softmax(log_xi.reshape(B, T - 1, S * S), dim=-1).reshape(B, T - 1, S, S)
    xi = torch.where(both[..., None, None], xi, 0.0)
    return gamma, xi.sum(1)


def _log_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Log-semiring matrix product: out[..., i, j] = logsumexp_k a[..., i, k] + b[..., k, j]."""
    return torch.logsumexp(a.unsqueeze(-1) + b.unsqueeze(-3), dim=-2)


def _maxplus_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Max-plus matrix product: out[..., i, j] = max_k a[..., i, k] + b[..., k, j]."""
    return (a.unsqueeze(-1) + b.unsqueeze(-3)).amax(dim=-2)


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


def _log_identity(S: int, like: torch.Tensor) -> torch.Tensor:
    eye = torch.full((S, S), float("-inf"), dtype=like.dtype, device=like.device)
    return eye.fill_diagonal_(0.0)


def _step_matrices(log_lik, log_pi0, log_A, L):
    """M_1[i, j] = log pi0_j + ll_1j (any i), M_t[i, j] = log A_ij + ll_tj; identity on padded bins."""
    B, T, S = log_lik.shape
    ll, real = _padded_to_zero(log_lik, L)
    lA, lpi = log_A.to(ll), log_pi0.to(ll)
    M = lA + ll.unsqueeze(-2)  # (B, T, S, S)
    M[:, 0] = (lpi + ll[:, 0]).unsqueeze(-2).expand(B, S, S)
    return torch.where(real[..., None, None], M, _log_identity(S, ll)), real


def _forward_scan(log_lik, log_pi0, log_A, L):
    M, real = _step_matrices(log_lik, log_pi0, log_A, L)
    la = associative_scan(_log_matmul, M, dim=1)[:, :, 0, :]  # alpha_t = (M_1 ... M_t)[0, :]
    logZ = torch.logsumexp(la[torch.arange(la.shape[0]), (L - 1).to(la.device)], dim=-1)
    return la.masked_fill(~real.unsqueeze(-1), float("-inf")), logZ


def _backward_scan(log_lik, log_A, L) -> torch.Tensor:
    """log_beta_t(i) = log p(x_{t+1:T} | z_t = i) = logsumexp_j (N_t ... N_{T-1})[i, j] (suffix products),
    N_t[i, j] = log A_ij + ll_{t+1, j}; identity where bin t+1 is padded (so log_beta = 0 at the end)."""
    B, T, S = log_lik.shape
    ll, real = _padded_to_zero(log_lik, L)
    log_beta = torch.zeros_like(ll)
    if T == 1:
        return log_beta
    N = log_A.to(ll) + ll[:, 1:].unsqueeze(-2)  # (B, T-1, S, S)
    N = torch.where(real[:, 1:, None, None], N, _log_identity(S, ll))
    rev = associative_scan(lambda x, y: _log_matmul(y, x), N.flip(1), dim=1).flip(1)
    log_beta[:, :-1] = torch.logsumexp(rev, dim=-1)
    return log_beta


def _viterbi_scan(log_lik, log_pi0, log_A, L):
    """Max-plus prefix scan for the Viterbi scores omega_t (on the tensors' device), back-trace on the host:
    z_{T_b} = argmax omega_{T_b}, z_t = argmax_i omega_t(i) + log A(i, z_{t+1})."""
    M, _ = _step_matrices(log_lik, log_pi0, log_A, L)
    omega = associative_scan(_maxplus_matmul, M, dim=1)[:, :, 0, :]
    return _backtrace(_np64(omega), L.numpy(), _np64(log_A))


def _backtrace(omega: np.ndarray, L: np.ndarray, log_A: np.ndarray):
    B, T, S = omega.shape
    ar = np.arange(B)
    end = omega[ar, L - 1]
    log_prob = end.max(-1)
    cur = np.zeros(B, dtype=np.int64)
    states = np.full((B, T), -1, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        step = (omega[:, t] + log_A[:, cur].T).argmax(-1)
        cur = np.where(t == L - 1, omega[:, t].argmax(-1), np.where(t < L - 1, step, cur))
        states[:, t] = np.where(t < L, cur, -1)
    states[~np.isfinite(log_prob)] = -1
    return states, log_prob


# ---- numpy reference recursions: vectorised over trials and states, a Python loop over time. Exact
# column-wise log-sum-exp: logsumexp_i(a_i + log A_ij) = m_j + log sum_i e^{a_i + log A_ij - m_j},
# m_j = max_i (a_i + log A_ij), so no state is lost when all its predecessors lie far below the rest.


def _lse(v: np.ndarray, axis: int) -> np.ndarray:
    m = v.max(axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(v - m).sum(axis)) + np.squeeze(m, axis)


def _forward_np(ll: np.ndarray, L: np.ndarray, log_pi0: np.ndarray, log_A: np.ndarray):
    B, T, S = ll.shape
    real = np.arange(T) < L[:, None]
    ll = np.where(real[..., None], ll, 0.0)
    out = np.empty_like(ll)
    a = log_pi0 + ll[:, 0]
    out[:, 0] = a
    for t in range(1, T):
        a = _lse(a[:, :, None] + log_A, axis=1) + ll[:, t]
        out[:, t] = a
    logZ = _lse(out[np.arange(B), L - 1], axis=-1)
    out[~real] = -np.inf
    return out, logZ


def _backward_np(ll: np.ndarray, L: np.ndarray, log_A: np.ndarray) -> np.ndarray:
    B, T, S = ll.shape
    out = np.zeros_like(ll)
    b = out[:, -1]
    for t in range(T - 2, -1, -1):
        nxt = np.where((t + 1 < L)[:, None], ll[:, t + 1], 0.0)
        b = _lse(log_A + (nxt + b)[:, None, :], axis=2)
        b = np.where((t >= L - 1)[:, None], 0.0, b)
        out[:, t] = b
    return out


def _viterbi_np(ll: np.ndarray, L: np.ndarray, log_pi0: np.ndarray, log_A: np.ndarray):
    B, T, S = ll.shape
    psi = np.zeros((B, T, S), dtype=np.int64)
    omega = np.empty((B, T, S))
    omega[:, 0] = log_pi0 + ll[:, 0]
    for t in range(1, T):
        cand = omega[:, t - 1, :, None] + log_A  # (B, S_from, S_to)
        psi[:, t] = cand.argmax(1)
        step = np.take_along_axis(cand, psi[:, t][:, None, :], 1)[:, 0] + np.where((t < L)[:, None], ll[:, t], 0)
        omega[:, t] = np.where((t < L)[:, None], step, omega[:, t - 1])
    ar = np.arange(B)
    end = omega[ar, L - 1]
    log_prob = end.max(-1)
    cur = end.argmax(-1)
    states = np.full((B, T), -1, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        states[:, t] = np.where(t < L, cur, -1)
        if t > 0:
            cur = np.where(t < L, psi[ar, t, cur], cur)
    states[~np.isfinite(log_prob)] = -1
    return states, log_prob
