"""Recovery metrics with label switching resolved by the Hungarian algorithm (not all S! permutations)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def match_states(true_states, pred_states, n_states: int | None = None) -> np.ndarray:
    """Permutation ``perm`` maximising agreement: learned state perm[k] plays true state k.

    Works on label sequences of any shape (entries < 0 are ignored); solved by
    scipy.optimize.linear_sum_assignment on the (S, S) confusion matrix, O(S^3).
    """
    t, p = _np(true_states).ravel(), _np(pred_states).ravel()
    ok = (t >= 0) & (p >= 0)
    t, p = t[ok], p[ok]
    S = n_states or int(max(t.max(), p.max()) + 1)
    conf = np.zeros((S, S))
    np.add.at(conf, (t, p), 1)
    rows, cols = linear_sum_assignment(-conf)
    perm = np.empty(S, dtype=int)
    perm[rows] = cols
    return perm


def match_weights(true_weights, pred_weights) -> np.ndarray:
    """Permutation minimising sum_k ||W_true[k] - W_pred[perm[k]]||^2 (Hungarian on the cost matrix)."""
    wt, wp = _np(true_weights), _np(pred_weights)
    cost = ((wt[:, None] - wp[None, :]) ** 2).reshape(wt.shape[0], wp.shape[0], -1).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(wt.shape[0], dtype=int)
    perm[rows] = cols
    return perm


def state_accuracy(true_states, pred_states, perm=None) -> float:
    """Fraction of bins whose predicted state (after relabelling with ``perm``) equals the truth."""
    t, p = _np(true_states).ravel(), _np(pred_states).ravel()
    ok = (t >= 0) & (p >= 0)
    t, p = t[ok], p[ok]
    if perm is None:
        perm = match_states(t, p)
    inv = np.argsort(perm)  # learned label -> true label
    return float((inv[p] == t).mean())


def weight_error(true_weights, pred_weights) -> float:
    """Mean squared error between weight tensors (already aligned)."""
    return float(((_np(true_weights) - _np(pred_weights)) ** 2).mean())


def type_accuracy(true_types, pred_types) -> float:
    """Fraction of entries with the same connection type in {-1, 0, 1}."""
    return float((_np(true_types) == _np(pred_types)).mean())


def balanced_type_accuracy(true_types, pred_types) -> float:
    """Mean over the three true classes of the per-class recall (classes absent in the truth skipped)."""
    t, p = _np(true_types).ravel(), _np(pred_types).ravel()
    recalls = [float((p[t == c] == c).mean()) for c in (-1, 0, 1) if (t == c).any()]
    return float(np.mean(recalls))
