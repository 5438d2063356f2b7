"""N-parity / N-DMS generators against brute-force loops."""

import pytest
import torch

from engramlab.data.tasks import (
    dms_labels,
    labels_in_time,
    make_timescale_batch,
    parity_labels,
    sequence_length_range,
)


def brute_parity(seq, n):
    return sum(int(b) for b in seq[len(seq) - n :]) % 2


def brute_dms(seq, n):
    # the last bit against the bit N-1 steps earlier (first and last bits of the N-window)
    return int(int(seq[-1]) == int(seq[len(seq) - n]))


@pytest.mark.parametrize("task,brute", [("parity", brute_parity), ("dms", brute_dms)])
def test_batch_labels_match_brute_force(task, brute):
    g = torch.Generator().manual_seed(1)
    ns = [2, 3, 5, 8]
    for _ in range(5):
        x, y = make_timescale_batch(task, ns, 32, g)
        assert x.shape[0] == 32 and x.shape[2] == 1 and y.shape == (4, 32)
        assert set(x.unique().tolist()) <= {0.0, 1.0}
        for k, n in enumerate(ns):
            for b in range(32):
                assert y[k, b].item() == brute(x[b, :, 0].tolist(), n)


def test_hand_computed_labels():
    bits = torch.tensor([[1, 0, 1, 1, 0, 1]], dtype=torch.float32)
    # last 2: (0,1) -> 1; last 3: (1,0,1) -> 0; last 4: (1,1,0,1) -> 1
    assert parity_labels(bits, [2, 3, 4])[:, 0].tolist() == [1, 0, 1]
    # x[-1]=1 vs x[-2]=0 -> 0; vs x[-3]=1 -> 1; vs x[-6]=1 -> 1
    assert dms_labels(bits, [2, 3, 6])[:, 0].tolist() == [0, 1, 1]


def test_sequence_lengths_cover_the_official_range():
    g = torch.Generator().manual_seed(0)
    lo, hi = sequence_length_range(5)
    assert (lo, hi) == (7, 21)
    seen = {make_timescale_batch("parity", [2, 5], 2, g)[0].shape[1] for _ in range(400)}
    assert min(seen) == lo and max(seen) == hi


def test_seeded_and_parity_bias_varies_per_sequence():
    a = make_timescale_batch("parity", [3], 64, torch.Generator().manual_seed(7))
    b = make_timescale_batch("parity", [3], 64, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    x, _ = make_timescale_batch("parity", [3], 256, torch.Generator().manual_seed(0), length=400)
    p = x[:, :, 0].mean(1)
    assert p.min() < 0.15 and p.max() > 0.85  # p ~ U(0, 1) per sequence
    x, _ = make_timescale_batch("dms", [3], 256, torch.Generator().manual_seed(0), length=400)
    assert abs(x.mean().item() - 0.5) < 0.01  # balanced


@pytest.mark.parametrize("task,brute", [("parity", brute_parity), ("dms", brute_dms)])
def test_labels_in_time_match_brute_force(task, brute):
    bits = (torch.rand(3, 40, generator=torch.Generator().manual_seed(3)) < 0.5).float()
    for n in (2, 4, 7):
        lab = labels_in_time(task, bits, n)
        assert lab.shape == (3, 40 - n + 1)
        for b in range(3):
            for j in range(lab.shape[1]):
                assert lab[b, j].item() == brute(bits[b, : j + n].tolist(), n)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="N must be >= 2"):
        make_timescale_batch("parity", [1, 2], 4)
    with pytest.raises(ValueError, match="unknown task"):
        make_timescale_batch("copy-me", [2], 4)
    with pytest.raises(TypeError, match="every N must be an int"):
        make_timescale_batch("dms", [2.5], 4)
    with pytest.raises(ValueError, match="shorter than"):
        make_timescale_batch("dms", [5], 4, length=3)
    with pytest.raises(ValueError, match="batch_size"):
        make_timescale_batch("dms", [5], 0)
