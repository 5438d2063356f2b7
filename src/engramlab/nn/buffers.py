"""Reuse of large CPU buffers between training steps.

PyTorch's CPU allocator hands every large tensor fresh pages from the operating system (glibc
serves allocations above 32 MB with ``mmap`` and returns them on free), so each large
intermediate of a training step pays a page fault per 4 KiB on first touch. For BDH on a CPU
this costs as much as the arithmetic: an out-of-place multiply of two (4, 4096, 1024) float32
tensors took 28 ms, the same multiply in place 4.5 ms (benchmarks/bdh.py, docs/bdh.md §5.2).

``BufferPool.empty`` returns a tensor over a storage the pool keeps. A storage is handed out
again only when nothing else references it any more (its use count has dropped back to the
pool's own reference): not a view, not a tensor saved for backward, not a retained graph. So a
buffer is never reused while anything could still read it, and the pool's memory is bounded by
the largest set of buffers that were alive at one time. GPU tensors and small tensors go to
``torch.empty`` unchanged.

A model owns its pool (so the memory goes with the model) and makes it current while it runs
(``use_pool``); the autograd nodes remember the pool of their forward for their backward.
Code that runs with no current pool allocates with ``torch.empty`` as usual.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading

import torch


class BufferPool:
    """Storages of large CPU tensors, reused once no tensor references them."""

    def __init__(self, min_bytes: int = 4 << 20):
        self.min_bytes = int(min_bytes)
        self._storages: dict[int, list[torch.UntypedStorage]] = {}
        self._lock = threading.Lock()

    def empty(self, shape, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
        """An uninitialised tensor like ``torch.empty(shape, dtype=dtype, device=device)``."""
        device = torch.device(device)
        shape = tuple(int(s) for s in shape)
        nbytes = math.prod(shape) * dtype.itemsize
        if device.type != "cpu" or nbytes < self.min_bytes:
            return torch.empty(shape, dtype=dtype, device=device)
        with self._lock:
            free = self._storages.setdefault(nbytes, [])
            for st in free:
                if torch._C._storage_Use_Count(st._cdata) == 1:  # only the pool holds it
                    break
            else:
                st = torch.UntypedStorage(nbytes)
                free.append(st)
            return torch.empty(0, dtype=dtype).set_(st, 0, shape)

    def empty_like(self, t: torch.Tensor) -> torch.Tensor:
        return self.empty(t.shape, t.dtype, t.device)

    @property
    def nbytes(self) -> int:
        """Bytes held by the pool (free and in use)."""
        return sum(n * len(v) for n, v in self._storages.items())

    def clear(self) -> None:
        """Forget every storage (those still in use live on with their tensors)."""
        with self._lock:
            self._storages.clear()

    # a copy or a pickle of a model gets a fresh, empty pool (never the scratch memory)
    def __deepcopy__(self, memo):
        return BufferPool(self.min_bytes)

    def __getstate__(self):
        return {"min_bytes": self.min_bytes}

    def __setstate__(self, state):
        self.__init__(state["min_bytes"])


class _NoPool:
    """``torch.empty``, for code running with no current pool."""

    @staticmethod
    def empty(shape, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.empty(tuple(shape), dtype=dtype, device=device)

    @staticmethod
    def empty_like(t: torch.Tensor) -> torch.Tensor:
        return torch.empty(t.shape, dtype=t.dtype, device=t.device)


NO_POOL = _NoPool()
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("engramlab_buffer_pool", default=NO_POOL)


def current_pool() -> BufferPool | _NoPool:
    """The pool made current by ``use_pool``, else one that allocates with ``torch.empty``."""
    return _CURRENT.get()


@contextlib.contextmanager
def use_pool(pool: BufferPool | None):
    """Make ``pool`` current inside the block (None: no pool)."""
    token = _CURRENT.set(NO_POOL if pool is None else pool)
    try:
        yield
    finally:
        _CURRENT.reset(token)
