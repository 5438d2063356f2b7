"""Copy / associative recall / delayed match-to-sample: layouts checked by re-solving each task from x."""

import pytest
import torch

from engramlab.data.tasks import BLANK, GO, MATCH, MEMORY_TASKS, NONMATCH, MemoryTask, make_memory_batch


def solve(task: MemoryTask, x: torch.Tensor) -> torch.Tensor:
    """Brute-force answer of every sequence, written from the task description only -> targets (B, T)."""
    K, D = task.n_items, task.delay
    y = torch.full_like(x, -1)
    for b in range(x.shape[0]):
        row = x[b].tolist()
        if task.name == "copy":
            study = row[:K]
            assert row[K : K + D] == [BLANK] * D and row[K + D] == GO
            y[b, K + D :] = torch.tensor(study)
        elif task.name == "recall":
            pairs = dict(zip(row[0 : 2 * K : 2], row[1 : 2 * K : 2]))
            assert len(pairs) == K  # distinct keys
            start = 2 * K + D + 1
            assert row[2 * K : start - 1] == [BLANK] * D and row[start - 1] == GO
            for j in range(K):
                y[b, start + 2 * j] = pairs[row[start + 2 * j]]
        else:
            a, bb = row[:K], row[K + D + 1 :]
            assert row[K + D] == GO
            y[b, -1] = MATCH if a == bb else NONMATCH
            assert a == bb or sum(u != v for u, v in zip(a, bb)) == 1
    return y


@pytest.mark.parametrize("name", MEMORY_TASKS)
@pytest.mark.parametrize("delay,K", [(0, 1), (5, 3), (17, 6)])
def test_targets_match_brute_force_solution(name, delay, K):
    task = MemoryTask(name, delay, n_items=K, n_symbols=6)
    x, y = task.batch(64, torch.Generator().manual_seed(delay + K))
    assert x.shape == y.shape == (64, task.seq_len) and x.dtype == y.dtype == torch.int64
    assert int(x.min()) >= 0 and int(x.max()) < task.vocab_size
    assert torch.equal(y, solve(task, x))
    assert int((y != -1).sum()) == 64 * task.scored_per_sequence
    # the oracle that reads the answer off x scores 1; a constant guess scores about chance
    oracle = torch.nn.functional.one_hot(y.clamp(min=0), task.vocab_size).float()
    assert MemoryTask.accuracy(oracle, y) == 1.0


def test_dms_is_balanced_and_copy_symbols_distinct():
    x, y = MemoryTask("dms", 3, 4, 5).batch(2000, torch.Generator().manual_seed(0))
    frac = float((y[:, -1] == MATCH).float().mean())
    assert 0.45 < frac < 0.55
    x, _ = MemoryTask("copy", 0, 8, 8).batch(50, torch.Generator().manual_seed(0))
    assert all(len(set(r[:8].tolist())) == 8 for r in x)


def test_seeded_and_accuracy_by_hand():
    a = make_memory_batch("recall", 4, delay=7, n_items=3, generator=torch.Generator().manual_seed(3))
    b = make_memory_batch("recall", 4, delay=7, n_items=3, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    logits = torch.zeros(1, 4, 5)
    logits[0, 1, 2] = logits[0, 2, 4] = logits[0, 3, 0] = 1.0
    y = torch.tensor([[-1, 2, 3, 0]])  # positions 1 and 3 right, 2 wrong
    assert MemoryTask.accuracy(logits, y) == pytest.approx(2 / 3)


def test_impossible_parameters_raise():
    with pytest.raises(ValueError, match="delay must be >= 0"):
        MemoryTask("copy", -1)
    with pytest.raises(ValueError, match="K=9"):
        MemoryTask("copy", 10, n_items=9, n_symbols=8)
    with pytest.raises(ValueError, match="K=5"):
        MemoryTask("recall", 10, n_items=5, n_symbols=4)
    with pytest.raises(ValueError, match="unknown memory task"):
        MemoryTask("reverse", 3)
    with pytest.raises(TypeError, match="delay"):
        MemoryTask("copy", 2.5)
    with pytest.raises(ValueError, match="n_symbols"):
        MemoryTask("dms", 2, n_items=1, n_symbols=1)
    with pytest.raises(ValueError, match="batch_size"):
        MemoryTask("dms", 2).batch(0)
    with pytest.raises(ValueError, match="score no position"):
        MemoryTask.accuracy(torch.zeros(1, 2, 3), torch.full((1, 2), -1))
