"""Measurements the reproduce runs need that no single system's code provides: generation cost and
recurrent-state memory against the context length, for any model of the common sequence-model
contract (``prefill(idx) -> (logits, state)``, ``step(token, state) -> (logits, state)``).

Three ways to produce one more token after a context of L tokens:

- ``recurrent``: one ``step`` from the state left by ``prefill`` (BDH's synaptic state, AstroSNN's
  astrocyte state: constant size);
- ``kv_cache``: one ``step`` of a Transformer with a key/value cache (the cache grows with L);
- ``recompute``: the whole prefix through the parallel ``forward`` again (what a model without a
  recurrent form, e.g. the official BDH ``generate``, does for every token).

Times are the median of ``tokens`` steps, and the fastest of ``repeats`` interleaved repeats (the
least disturbed by other jobs on a shared machine).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch


def state_bytes(state: Any) -> int:
    """Bytes of every tensor in a (nested dict / list / tuple) model state."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    if hasattr(state, "__dataclass_fields__"):
        return sum(state_bytes(getattr(state, f)) for f in state.__dataclass_fields__)
    return 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _step_times(model, state, tok: torch.Tensor, n: int) -> list[float]:
    dev = tok.device
    out = []
    for _ in range(n):
        _sync(dev)
        t0 = time.perf_counter()
        logits, state = model.step(tok, state)
        _sync(dev)
        out.append(time.perf_counter() - t0)
        tok = logits.argmax(-1)
    return out


@torch.no_grad()
def _recompute_times(model, prompt: torch.Tensor, n: int) -> list[float]:
    dev = prompt.device
    out = []
    idx = prompt
    for _ in range(n):
        _sync(dev)
        t0 = time.perf_counter()
        logits, _ = model(idx)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        _sync(dev)
        out.append(time.perf_counter() - t0)
        idx = torch.cat([prompt, nxt], dim=1)  # the context stays at L + 1 tokens
    return out


@torch.no_grad()
def generation_speed(
    models: dict[str, tuple[torch.nn.Module, str]],
    contexts: list[int],
    tokens: int = 16,
    repeats: int = 3,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict:
    """Per-token generation time and state size against the context length.

    models: name -> (model, way) with way in {"recurrent", "kv_cache", "recompute"}.
    Returns {"contexts", "ms_per_token": {name: [..]}, "tokens_per_s": {name: [..]},
    "state_bytes": {name: [..] (None for recompute)}, "ways": {name: way}, "tokens", "repeats"}.
    """
    if not contexts or any(int(c) < 1 for c in contexts):
        raise ValueError(f"contexts must be positive token counts, got {contexts}")
    if tokens < 1 or repeats < 1:
        raise ValueError(f"tokens and repeats must be >= 1, got {tokens} and {repeats}")
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    prompts = {L: torch.randint(0, 256, (1, L), generator=gen).to(dev) for L in contexts}
    best: dict[tuple[str, int], float] = {}
    sizes: dict[tuple[str, int], int | None] = {}
    for name, (model, way) in models.items():
        if way not in ("recurrent", "kv_cache", "recompute"):
            raise ValueError(f"{name}: unknown way {way!r}; expected recurrent, kv_cache or recompute")
        model.eval().to(dev)
        # warm-up (allocator, lazy initialisation): one untimed token at the shortest context
        if way == "recompute":
            _recompute_times(model, prompts[contexts[0]], 1)
        else:
            logits, state = model.prefill(prompts[contexts[0]])
            _step_times(model, state, logits.argmax(-1), 1)
    for _ in range(repeats):
        for L in contexts:
            for name, (model, way) in models.items():
                if way == "recompute":
                    times = _recompute_times(model, prompts[L], tokens)
                    sizes[(name, L)] = None
                else:
                    logits, state = model.prefill(prompts[L])
                    sizes[(name, L)] = state_bytes(state)
                    times = _step_times(model, state, logits.argmax(-1), tokens)
                t = statistics.median(times)
                best[(name, L)] = min(t, best.get((name, L), float("inf")))
    return {
        "contexts": [int(c) for c in contexts],
        "tokens": tokens,
        "repeats": repeats,
        "device": str(dev),
        "ways": {n: w for n, (_, w) in models.items()},
        "params": {n: sum(p.numel() for p in m.parameters()) for n, (m, _) in models.items()},
        "ms_per_token": {n: [1e3 * best[(n, L)] for L in contexts] for n in models},
        "tokens_per_s": {n: [1.0 / best[(n, L)] for L in contexts] for n in models},
        "state_bytes": {n: [sizes[(n, L)] for L in contexts] for n in models},
    }
