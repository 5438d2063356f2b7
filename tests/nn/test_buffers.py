"""The CPU buffer pool hands a storage out again only once nothing references it."""

import copy
import pickle

import torch

from engramlab.nn.buffers import BufferPool, current_pool, use_pool


def test_buffer_is_not_reused_while_referenced_and_is_reused_after():
    pool = BufferPool(min_bytes=0)
    a = pool.empty((64, 64), torch.float32)
    b = pool.empty((64, 64), torch.float32)
    assert a.data_ptr() != b.data_ptr()  # a is alive: b gets a new storage
    ptr = a.data_ptr()
    del a
    c = pool.empty((64, 64), torch.float32)
    assert c.data_ptr() == ptr  # a's storage, now unreferenced, is reused
    assert pool.nbytes == 2 * 64 * 64 * 4


def test_buffer_saved_for_backward_or_viewed_is_not_reused():
    pool = BufferPool(min_bytes=0)
    w = torch.randn(32, requires_grad=True)
    a = pool.empty((32,), torch.float32).fill_(2.0)
    y = (a * w).sum()  # autograd saves a for the gradient of w
    v = pool.empty((32,), torch.float32)  # a view keeps its storage alive too
    view = v.view(4, 8)
    ptrs = {a.data_ptr(), v.data_ptr()}
    del a, v
    fresh = pool.empty((32,), torch.float32).fill_(-1.0)
    assert fresh.data_ptr() not in ptrs
    y.backward()
    torch.testing.assert_close(w.grad, torch.full((32,), 2.0))  # the saved values were not overwritten
    del view, y
    assert pool.empty((32,), torch.float32).data_ptr() in ptrs


def test_small_and_non_cpu_requests_are_plain_allocations():
    pool = BufferPool(min_bytes=1 << 20)
    t = pool.empty((10,), torch.float64)
    assert t.shape == (10,) and t.dtype == torch.float64
    assert pool.nbytes == 0


def test_copies_get_an_empty_pool_and_current_pool_is_scoped():
    pool = BufferPool(min_bytes=0)
    keep = pool.empty((8,), torch.float32)
    assert copy.deepcopy(pool).nbytes == 0
    assert pickle.loads(pickle.dumps(pool)).nbytes == 0
    assert current_pool() is not pool
    with use_pool(pool):
        assert current_pool() is pool
    assert current_pool() is not pool
    assert keep.numel() == 8
