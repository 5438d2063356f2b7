"""Synthetic memory tasks.

Each section below is self-contained (its own helpers and validation) so that tasks for
different systems can live side by side in this one module.
"""

from __future__ import annotations

import operator

import torch

# =====================================================================================
# N-parity and N-DMS (timescales system; Khajehabdollahi, Zeraati et al., ICLR 2024)
# =====================================================================================
#
# Both tasks are binary streams x(1..M) read out at the last step M. Conventions follow the
# official code (LevinaLab/rnn_timescale_public, src/tasks/tasks.py):
#
# * N-parity: bits are Bernoulli(p) with p ~ U(0, 1) drawn per sequence (deliberately
#   unbalanced); the label for N is (x(M-N+1) + ... + x(M)) mod 2, the parity of the last N bits.
# * N-DMS: bits are Bernoulli(0.5); the label for N is 1 if x(M) == x(M-N+1), i.e. the first and
#   last bits of the length-N window ending at M are compared (N = 2 compares consecutive bits).
#   Note that this is "the bit N-1 steps earlier", not N steps earlier.
# * One length M per batch, uniform on the integers [N_max + 2, 4 N_max + 1] (the official code's
#   ``np.random.randint(N_max + 2, 4 N_max + 2)``), N_max the largest N of the batch.
#
# Shapes: inputs are batch-first ``(B, M, 1)`` float tensors; labels ``(len(ns), B)`` int64.

TIMESCALE_TASKS = ("parity", "dms")


def _check_ns(ns) -> list[int]:
    """Validate N (an int >= 2, or a sequence of them) and return a list of Python ints."""
    if isinstance(ns, (list, tuple, range)) or (isinstance(ns, torch.Tensor) and ns.dim() == 1):
        ns = list(ns)
    else:
        ns = [ns]
    if len(ns) == 0:
        raise ValueError("ns must contain at least one N, got an empty sequence")
    out = []
    for n in ns:
        if isinstance(n, bool) or (isinstance(n, torch.Tensor) and n.is_floating_point()):
            raise TypeError(f"every N must be an int, got {n!r}")
        try:
            n = operator.index(n)  # accepts int, numpy ints, integer 0-d tensors
        except TypeError:
            raise TypeError(f"every N must be an int, got {n!r} ({type(n).__name__})") from None
        if n < 2:
            raise ValueError(f"N must be >= 2 for N-parity / N-DMS, got N={n}")
        out.append(n)
    return out


def _check_task(task: str) -> str:
    if task not in TIMESCALE_TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TIMESCALE_TASKS}")
    return task


def sequence_length_range(n_max: int) -> tuple[int, int]:
    """Inclusive range ``(lo, hi) = (N_max + 2, 4 N_max + 1)`` of sequence lengths for N_max."""
    (n_max,) = _check_ns([n_max])
    return n_max + 2, 4 * n_max + 1


def sample_sequence_length(n_max: int, generator: torch.Generator | None = None) -> int:
    """Draw M ~ UniformInt[N_max + 2, 4 N_max + 1] (one length per batch, as the official code)."""
    lo, hi = sequence_length_range(n_max)
    return int(torch.randint(lo, hi + 1, (1,), generator=generator).item())


def parity_bits(batch_size: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli(p) bits with p ~ U(0, 1) per sequence. Returns ``(B, M)`` float {0, 1}."""
    p = torch.rand(batch_size, 1, generator=generator)  # (B, 1)
    return (torch.rand(batch_size, length, generator=generator) < p).float()


def dms_bits(batch_size: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Balanced Bernoulli(0.5) bits. Returns ``(B, M)`` float {0, 1}."""
    return (torch.rand(batch_size, length, generator=generator) < 0.5).float()


def parity_labels(bits: torch.Tensor, ns) -> torch.Tensor:
    """Parity of the last N bits of each sequence. bits ``(B, M)`` -> labels ``(len(ns), B)``."""
    ns = _check_ns(ns)
    if bits.dim() != 2:
        raise ValueError(f"bits must have shape (B, M), got {tuple(bits.shape)}")
    if max(ns) > bits.shape[1]:
        raise ValueError(f"N={max(ns)} is longer than the sequence length M={bits.shape[1]}")
    b = bits.long()
    return torch.stack([b[:, -n:].sum(dim=1) % 2 for n in ns])  # (K, B)


def dms_labels(bits: torch.Tensor, ns) -> torch.Tensor:
    """1 if x(M) == x(M - N + 1) else 0. bits ``(B, M)`` -> labels ``(len(ns), B)``."""
    ns = _check_ns(ns)
    if bits.dim() != 2:
        raise ValueError(f"bits must have shape (B, M), got {tuple(bits.shape)}")
    if max(ns) > bits.shape[1]:
        raise ValueError(f"N={max(ns)} is longer than the sequence length M={bits.shape[1]}")
    b = bits.long()
    return torch.stack([(b[:, -1] == b[:, -n]).long() for n in ns])  # (K, B)


def labels_in_time(task: str, bits: torch.Tensor, n: int) -> torch.Tensor:
    """Label of every window ending at t = N-1 .. M-1 (0-based) of a stream.

    bits ``(B, M)`` -> ``(B, M - N + 1)``; column j is the label of the window ending at t = j + N - 1.
    Used for the streaming accuracy of the ablation / perturbation analyses.
    """
    _check_task(task)
    (n,) = _check_ns([n])
    if bits.dim() != 2 or bits.shape[1] < n:
        raise ValueError(f"bits must have shape (B, M) with M >= N={n}, got {tuple(bits.shape)}")
    b = bits.long()
    if task == "parity":
        c = torch.nn.functional.pad(b.cumsum(dim=1), (1, 0))  # (B, M+1), c[:, t] = sum of b[:, :t]
        return (c[:, n:] - c[:, :-n]) % 2
    return (b[:, n - 1 :] == b[:, : b.shape[1] - n + 1]).long()


def make_timescale_batch(
    task: str,
    ns,
    batch_size: int,
    generator: torch.Generator | None = None,
    length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of N-parity or N-DMS for the heads ``ns``.

    Returns ``x (B, M, 1)`` float and ``labels (len(ns), B)`` int64. M is drawn from
    :func:`sequence_length_range` of ``max(ns)`` unless ``length`` is given.
    """
    _check_task(task)
    ns = _check_ns(ns)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if length is None:
        length = sample_sequence_length(max(ns), generator)
    elif length < max(ns):
        raise ValueError(f"length={length} is shorter than the largest N={max(ns)}")
    if task == "parity":
        bits = parity_bits(batch_size, length, generator)
        labels = parity_labels(bits, ns)
    else:
        bits = dms_bits(batch_size, length, generator)
        labels = dms_labels(bits, ns)
    return bits.unsqueeze(-1), labels
