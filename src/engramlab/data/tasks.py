"""Synthetic memory tasks.

Each section below is self-contained (its own helpers and validation) so that tasks for
different systems can live side by side in this one module.
"""

from __future__ import annotations

import operator
import typing

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


def _check_bits(bits: torch.Tensor, ns) -> tuple[list[int], torch.Tensor]:
    """Validate a (B, M) bit tensor against the window lengths ns; return (ns, bits as int64)."""
    ns = _check_ns(ns)
    if bits.dim() != 2:
        raise ValueError(f"bits must have shape (B, M), got {tuple(bits.shape)}")
    if max(ns) > bits.shape[1]:
        raise ValueError(f"N={max(ns)} is longer than the sequence length M={bits.shape[1]}")
    return ns, bits.long()


def parity_labels(bits: torch.Tensor, ns) -> torch.Tensor:
    """Parity of the last N bits of each sequence. bits ``(B, M)`` -> labels ``(len(ns), B)``."""
    ns, b = _check_bits(bits, ns)
    return torch.stack([b[:, -n:].sum(dim=1) % 2 for n in ns])  # (K, B)


def dms_labels(bits: torch.Tensor, ns) -> torch.Tensor:
    """1 if x(M) == x(M - N + 1) else 0. bits ``(B, M)`` -> labels ``(len(ns), B)``."""
    ns, b = _check_bits(bits, ns)
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


# =====================================================================================
# Copy, associative recall, delayed match-to-sample (astro system; AstroSNN memory tasks)
# =====================================================================================
#
# Token sequences for language models: x (B, T) int64 token ids and targets y (B, T) int64 with
# -1 on every position that is not scored, so ``forward(x, y)`` (cross-entropy with
# ignore_index=-1) trains on them like on text. Vocabulary: 0 BLANK, 1 GO, 2 MATCH, 3 NONMATCH,
# then n_symbols symbols (ids 4 .. 4 + n_symbols - 1). D = ``delay`` blank steps separate the
# study phase from the test phase. K = ``n_items``.
#
# * copy: x = [s_1 .. s_K, BLANK x D, GO, s_1 .. s_{K-1}] (teacher forcing), targets s_1 .. s_K at
#   the last K positions. The K symbols are distinct (drawn without replacement), so K <=
#   n_symbols. Accuracy: fraction of the K symbols reproduced correctly (argmax).
# * recall (associative recall): x = [k_1 v_1 .. k_K v_K, BLANK x D, GO, q_1 w_1 .. q_K w_K]:
#   K distinct keys with values drawn with replacement, then every key asked once in random
#   order (q_j a key, w_j its value, fed back as teacher forcing); the target at each q_j is its
#   value. Accuracy: fraction of queries answered with the right value.
# * dms (delayed match-to-sample): x = [a_1 .. a_K, BLANK x D, GO, b_1 .. b_K]; b equals a
#   (match, probability 1/2) or differs from it in exactly one position (non-match). The target
#   at b_K is MATCH or NONMATCH. Accuracy: fraction of trials judged correctly (chance 1/2).

MEMORY_TASKS = ("copy", "recall", "dms")
BLANK, GO, MATCH, NONMATCH = 0, 1, 2, 3
N_SPECIAL_TOKENS = 4


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


class MemoryTask:
    """A copy / associative-recall / delayed-match-to-sample task with fixed parameters.

    ``MemoryTask("copy", delay=100, n_items=8, n_symbols=8).batch(32, generator)`` -> (x, y);
    ``task.accuracy(logits, y)`` -> float in [0, 1]. All parameter checks run in the constructor.
    """

    def __init__(self, name: str, delay: int, n_items: int = 8, n_symbols: int = 8):
        if name not in MEMORY_TASKS:
            raise ValueError(f"unknown memory task {name!r}; expected one of {MEMORY_TASKS}")
        self.name = name
        self.delay = _check_int(delay, "delay", 0)
        self.n_items = _check_int(n_items, "n_items (K)", 1)
        self.n_symbols = _check_int(n_symbols, "n_symbols", 2)
        if name in ("copy", "recall") and self.n_items > self.n_symbols:
            what = "distinct symbols to copy" if name == "copy" else "distinct keys"
            raise ValueError(
                f"{name}: n_items K={self.n_items} needs {self.n_items} {what}, but the vocabulary has only "
                f"n_symbols={self.n_symbols}; use K <= n_symbols"
            )

    def __repr__(self) -> str:
        return f"MemoryTask({self.name!r}, delay={self.delay}, n_items={self.n_items}, n_symbols={self.n_symbols})"

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL_TOKENS + self.n_symbols

    @property
    def seq_len(self) -> int:
        K, D = self.n_items, self.delay
        return {"copy": 2 * K + D, "recall": 4 * K + D, "dms": 2 * K + D + 1}[self.name]

    @property
    def scored_per_sequence(self) -> int:
        return {"copy": self.n_items, "recall": self.n_items, "dms": 1}[self.name]

    @property
    def chance(self) -> float:
        """Accuracy of guessing (uniform over symbols; 1/2 for dms)."""
        return 0.5 if self.name == "dms" else 1.0 / self.n_symbols

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: x (B, T) int64 token ids, y (B, T) int64 targets (-1 = not scored)."""
        B = _check_int(batch_size, "batch_size", 1)
        K, D, S = self.n_items, self.delay, self.n_symbols
        g = generator
        blanks = torch.full((B, D), BLANK, dtype=torch.long)
        go = torch.full((B, 1), GO, dtype=torch.long)

        def distinct(n):  # (B, n) distinct symbol ids per row
            return torch.argsort(torch.rand(B, S, generator=g), dim=1)[:, :n] + N_SPECIAL_TOKENS

        if self.name == "copy":
            s = distinct(K)  # (B, K)
            x = torch.cat([s, blanks, go, s[:, :-1]], dim=1)
            y = torch.full_like(x, -1)
            y[:, -K:] = s
        elif self.name == "recall":
            keys = distinct(K)  # (B, K)
            vals = torch.randint(0, S, (B, K), generator=g) + N_SPECIAL_TOKENS
            study = torch.stack([keys, vals], dim=2).reshape(B, 2 * K)
            order = torch.argsort(torch.rand(B, K, generator=g), dim=1)
            qk, qv = keys.gather(1, order), vals.gather(1, order)
            test = torch.stack([qk, qv], dim=2).reshape(B, 2 * K)
            x = torch.cat([study, blanks, go, test[:, :-1]], dim=1)  # the last value is the target only
            y = torch.full_like(x, -1)
            y[:, -2 * K + 1 :: 2] = qv  # positions of the query keys q_j
        else:  # dms
            a = torch.randint(0, S, (B, K), generator=g) + N_SPECIAL_TOKENS
            match = torch.rand(B, generator=g) < 0.5
            pos = torch.randint(0, K, (B,), generator=g)
            shift = torch.randint(1, S, (B,), generator=g)  # a different symbol at one position
            b = a.clone()
            rows = torch.arange(B)
            b[rows, pos] = (a[rows, pos] - N_SPECIAL_TOKENS + shift) % S + N_SPECIAL_TOKENS
            b = torch.where(match[:, None], a, b)
            x = torch.cat([a, blanks, go, b], dim=1)
            y = torch.full_like(x, -1)
            y[:, -1] = torch.where(match, MATCH, NONMATCH)
        return x, y

    @staticmethod
    def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
        """Fraction of scored positions (targets != -1) whose argmax is the target (see the task list)."""
        if logits.shape[:-1] != targets.shape:
            raise ValueError(f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)}")
        scored = targets != -1
        n = int(scored.sum())
        if n == 0:
            raise ValueError("targets score no position (all -1)")
        return float((logits.argmax(-1)[scored] == targets[scored]).sum()) / n


def make_memory_batch(
    task: str,
    batch_size: int,
    delay: int,
    n_items: int = 8,
    n_symbols: int = 8,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shortcut: ``MemoryTask(task, delay, n_items, n_symbols).batch(batch_size, generator)``."""
    return MemoryTask(task, delay, n_items, n_symbols).batch(batch_size, generator)


# =====================================================================================
# Repeated letter pattern (bdh system; Kosowski et al. 2025, Fig. 14 / §6.4)
# =====================================================================================
#
# The paper trains BDH-GPU (n = 65,536, d = 256, L = 4) on letter tokens carrying a repeating
# 8-letter pattern and reports layer-wise activation density while the model memorises the
# pattern (its first occurrence) and while it repeats it (4.0-7.5% vs ~2.5% in layer 2). The
# notes on the paper give no more of the protocol; this project's reading:
#
# * tokens are the ASCII bytes of lower-case letters a-z (a byte-level model reads them as is);
# * each sequence draws a fresh pattern of ``period`` letters (distinct letters by default, so
#   after one pass every next letter is determined by the current one), optionally preceded by
#   ``prefix`` uniformly random letters, and the pattern follows ``repeats`` times;
# * phase per position: PREFIX (random filler), MEMORISE (first pass: not predictable from the
#   context), REPEAT (passes 2.. : predictable by copying from the context).
#
# A model is trained on a stream of such episodes (``repeated_pattern_text``: episodes joined
# by newlines, a byte corpus for the training engine) and measured with
# ``engramlab.bdh.inspect.phase_density``.

LETTERS = b"abcdefghijklmnopqrstuvwxyz"
PREFIX, MEMORISE, REPEAT = 0, 1, 2


class PatternBatch(typing.NamedTuple):
    tokens: torch.Tensor  # (B, T) int64 byte values of letters
    phase: torch.Tensor  # (B, T) int64: PREFIX, MEMORISE or REPEAT
    repetition: torch.Tensor  # (B, T) int64: which pass of the pattern (0 = first), -1 in the prefix


def repeated_pattern_batch(
    batch_size: int,
    period: int = 8,
    repeats: int = 4,
    prefix: int = 0,
    distinct: bool = True,
    generator: torch.Generator | None = None,
) -> PatternBatch:
    """Sequences of ``prefix`` random letters, then a fresh ``period``-letter pattern ``repeats`` times.

    Length T = prefix + period * repeats. See the section comment for the protocol.
    """
    B = _check_int(batch_size, "batch_size", 1)
    P = _check_int(period, "period", 1)
    R = _check_int(repeats, "repeats", 2)
    K = _check_int(prefix, "prefix", 0)
    letters = torch.tensor(list(LETTERS), dtype=torch.long)
    if distinct and P > len(letters):
        raise ValueError(f"a pattern of {P} distinct letters needs period <= {len(letters)}; use distinct=False")
    if distinct:
        pick = torch.argsort(torch.rand(B, len(letters), generator=generator), dim=1)[:, :P]
    else:
        pick = torch.randint(0, len(letters), (B, P), generator=generator)
    pattern = letters[pick]  # (B, P)
    filler = letters[torch.randint(0, len(letters), (B, K), generator=generator)]
    tokens = torch.cat([filler, pattern.repeat(1, R)], dim=1)
    rep = torch.cat([torch.full((K,), -1), torch.arange(R).repeat_interleave(P)])
    phase = torch.where(rep < 0, PREFIX, torch.where(rep == 0, MEMORISE, REPEAT))
    return PatternBatch(tokens, phase.expand(B, -1).clone(), rep.expand(B, -1).clone())


def repeated_pattern_text(
    n_episodes: int, period: int = 8, repeats: int = 4, prefix: int = 0, distinct: bool = True, seed: int = 0
) -> bytes:
    """A byte corpus of ``n_episodes`` episodes (``repeated_pattern_batch`` rows), one per line."""
    n = _check_int(n_episodes, "n_episodes", 1)
    g = torch.Generator().manual_seed(int(seed))
    b = repeated_pattern_batch(n, period, repeats, prefix, distinct, g)
    rows = b.tokens.to(torch.uint8).numpy()
    return b"\n".join(r.tobytes() for r in rows) + b"\n"
