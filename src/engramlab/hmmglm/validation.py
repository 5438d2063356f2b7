"""Input checks for the HMM-GLM models (nemos style: one place, clear messages, run before fitting)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .glm import LINKS, OBSERVATIONS


def check_n_states(n_states) -> int:
    if isinstance(n_states, bool) or not isinstance(n_states, (int, np.integer)) or n_states < 1:
        raise ValueError(f"n_states must be an integer >= 1, got {n_states!r}")
    return int(n_states)


def check_n_neurons(n_neurons) -> int:
    if isinstance(n_neurons, bool) or not isinstance(n_neurons, (int, np.integer)) or n_neurons < 1:
        raise ValueError(f"n_neurons must be an integer >= 1, got {n_neurons!r}")
    return int(n_neurons)


def check_choice(name: str, value, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


def check_link_observations(link: str, observations: str) -> None:
    check_choice("link", link, LINKS)
    check_choice("observations", observations, OBSERVATIONS)


def check_basis(basis) -> torch.Tensor:
    b = torch.as_tensor(np.asarray(basis, dtype=np.float64))
    if b.dim() != 1 or b.numel() < 1:
        raise ValueError(
            f"basis must be a non-empty 1-D array (one weight per history bin), got shape "
            f"{tuple(b.shape)}; to use raised_cosine_basis pick or combine its rows"
        )
    if not torch.isfinite(b).all():
        raise ValueError("basis contains NaN or inf")
    return b


def check_spikes(
    spikes, n_neurons: int, observations: str, window: int, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate spike counts and pack them into a padded batch.

    spikes: array/tensor (trials, T, N) or (T, N) (one trial), or a list of (T_i, N) arrays.
    Returns (x (B, T_max, N) of ``dtype``, mask (B, T_max) bool: True on real bins).
    Raises ValueError/TypeError naming the trial and the bad value.
    """
    if isinstance(spikes, (list, tuple)):
        if len(spikes) == 0:
            raise ValueError("spikes is an empty list; expected at least one (T, N) array of counts")
        trials = [_as_array(s, f"spikes[{i}]") for i, s in enumerate(spikes)]
        for i, s in enumerate(trials):
            if s.ndim != 2:
                raise ValueError(f"spikes[{i}] must be a 2-D (T, N) array of counts, got shape {s.shape}")
    else:
        arr = _as_array(spikes, "spikes")
        if arr.ndim == 2:
            trials = [arr]
        elif arr.ndim == 3:
            trials = list(arr)
        else:
            raise ValueError(f"spikes must have shape (trials, T, N) or (T, N), got {arr.shape}")
    for i, s in enumerate(trials):
        where = f"trial {i}"
        if s.shape[1] != n_neurons:
            raise ValueError(f"{where} has {s.shape[1]} neurons but the model has n_neurons={n_neurons}")
        if s.shape[0] < window:
            raise ValueError(
                f"{where} has {s.shape[0]} time bins, fewer than the basis window of {window} "
                f"bins; use longer trials or a shorter basis"
            )
        if not np.isfinite(s).all():
            raise ValueError(f"{where} contains NaN or inf counts; remove or impute them before fitting")
        if (s < 0).any():
            raise ValueError(f"{where} contains negative counts (min {s.min()}); spike counts must be >= 0")
        if observations == "poisson" and not np.all(s == np.round(s)):
            bad = s[s != np.round(s)].flat[0]
            raise ValueError(
                f"{where} contains non-integer counts (e.g. {bad}); Poisson observations need integer spike counts"
            )
        if observations == "bernoulli" and not np.isin(s, (0, 1)).all():
            raise ValueError(
                f"{where} contains counts other than 0/1 (max {s.max()}); Bernoulli "
                f"observations need binary spikes: bin more finely or use np.minimum(x, 1)"
            )
    T = max(s.shape[0] for s in trials)
    x = torch.zeros(len(trials), T, n_neurons, dtype=dtype)
    mask = torch.zeros(len(trials), T, dtype=torch.bool)
    for i, s in enumerate(trials):
        x[i, : s.shape[0]] = torch.as_tensor(s, dtype=dtype)
        mask[i, : s.shape[0]] = True
    return x, mask


def _as_array(s, name: str) -> np.ndarray:
    if isinstance(s, torch.Tensor):
        s = s.detach().cpu().numpy()
    if not isinstance(s, np.ndarray):
        try:
            s = np.asarray(s)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"{name} must be an array of spike counts, got {type(s).__name__}") from e
    if s.dtype == object or not (np.issubdtype(s.dtype, np.number) or s.dtype == bool):
        raise TypeError(f"{name} must be a numeric array of spike counts, got dtype {s.dtype}")
    return s.astype(np.float64, copy=False)
