import pytest
import torch

from engramlab.nn.sampling import sample_logits


def test_greedy_and_degenerate_filters_pick_the_argmax():
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.9], [3.0, 0.0, 0.0, 0.0]])
    assert sample_logits(logits, temperature=0.0).tolist() == [1, 0]
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert sample_logits(logits, top_k=1, generator=g).tolist() == [1, 0]
        assert sample_logits(logits, top_p=1e-6, generator=g).tolist() == [1, 0]


def test_top_k_and_top_p_support():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(4000, 4)
    g = torch.Generator().manual_seed(1)
    k2 = sample_logits(logits, top_k=2, generator=g)
    assert set(k2.tolist()) == {0, 1}
    assert abs((k2 == 0).float().mean().item() - 0.5 / 0.8) < 0.03  # renormalised over the top 2
    p = sample_logits(logits, top_p=0.8, generator=g)  # 0.5 + 0.3 reaches 0.8: tokens 0 and 1
    assert set(p.tolist()) == {0, 1}
    p = sample_logits(logits, top_p=0.81, generator=g)
    assert set(p.tolist()) == {0, 1, 2}


def test_bad_sampling_args():
    with pytest.raises(ValueError, match="temperature"):
        sample_logits(torch.zeros(1, 3), temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        sample_logits(torch.zeros(1, 3), top_k=0)
    with pytest.raises(ValueError, match="top_p"):
        sample_logits(torch.zeros(1, 3), top_p=1.5)
