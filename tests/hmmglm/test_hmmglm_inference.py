"""HMM inference against brute-force enumeration of all state paths (float64)."""

import itertools

import numpy as np
import pytest
import torch

from engramlab.hmmglm.inference import associative_scan, hmm_filter, hmm_posterior_mode, hmm_smoother


def _tiny(B=2, T=6, S=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    ll = torch.randn(B, T, S, generator=g, dtype=torch.float64) * 2
    A = torch.softmax(torch.randn(S, S, generator=g, dtype=torch.float64), -1)
    pi = torch.softmax(torch.randn(S, generator=g, dtype=torch.float64), -1)
    return ll, pi.log(), A.log()


def _brute(ll, log_pi, log_A):
    B, T, S = ll.shape
    out = []
    for b in range(B):
        paths = list(itertools.product(range(S), repeat=T))
        lp = torch.stack(
            [
                log_pi[z[0]] + sum(log_A[z[t - 1], z[t]] for t in range(1, T)) + sum(ll[b, t, z[t]] for t in range(T))
                for z in paths
            ]
        )
        logZ = torch.logsumexp(lp, 0)
        w = (lp - logZ).exp()
        gamma = torch.zeros(T, S, dtype=torch.float64)
        xi = torch.zeros(S, S, dtype=torch.float64)
        for wi, z in zip(w, paths):
            for t in range(T):
                gamma[t, z[t]] += wi
            for t in range(1, T):
                xi[z[t - 1], z[t]] += wi
        best = paths[int(lp.argmax())]
        out.append((logZ, gamma, xi, torch.tensor(best), lp.max()))
    return out


@pytest.mark.parametrize("method", ["sequential", "scan"])
def test_forward_backward_matches_enumeration(method):
    ll, lpi, lA = _tiny()
    res = hmm_smoother(ll, lpi, lA, method=method)
    for b, (logZ, gamma, xi, _, _) in enumerate(_brute(ll, lpi, lA)):
        assert torch.allclose(res.log_normalizer[b], logZ, atol=1e-10)
        assert torch.allclose(res.smoothed_probs[b], gamma, atol=1e-10)
        assert torch.allclose(res.trans_counts[b], xi, atol=1e-10)


@pytest.mark.parametrize("T", [1, 2, 5, 8, 13])
def test_scan_equals_sequential_for_odd_and_even_lengths(T):
    ll, lpi, lA = _tiny(B=3, T=T, S=4, seed=T)
    a = hmm_smoother(ll, lpi, lA, method="sequential")
    b = hmm_smoother(ll, lpi, lA, method="scan")
    assert torch.allclose(a.log_normalizer, b.log_normalizer, atol=1e-9)
    assert torch.allclose(a.smoothed_probs, b.smoothed_probs, atol=1e-9)
    assert torch.allclose(hmm_filter(ll, lpi, lA, "scan")[0], a.log_alpha, atol=1e-9)


def test_padding_mask_leaves_short_sequence_unchanged():
    ll, lpi, lA = _tiny(B=1, T=5, S=3, seed=3)
    padded = torch.cat([ll, torch.zeros(1, 3, 3, dtype=torch.float64)], 1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    a = hmm_smoother(ll, lpi, lA)
    b = hmm_smoother(padded, lpi, lA, mask=mask)
    assert torch.allclose(a.log_normalizer, b.log_normalizer, atol=1e-12)
    assert torch.allclose(a.smoothed_probs, b.smoothed_probs[:, :5], atol=1e-12)
    assert torch.allclose(a.trans_counts, b.trans_counts, atol=1e-12)


def test_viterbi_matches_enumeration():
    ll, lpi, lA = _tiny(B=3, T=6, S=3, seed=7)
    res = hmm_posterior_mode(ll, lpi, lA)
    for b, (_, _, _, best, lpmax) in enumerate(_brute(ll, lpi, lA)):
        assert torch.equal(res.states[b], best)
        assert abs(float(res.log_prob[b]) - float(lpmax)) < 1e-10


def test_associative_scan_is_a_prefix_sum():
    x = torch.randn(2, 37, 3, dtype=torch.float64)
    assert torch.allclose(associative_scan(torch.add, x, dim=1), x.cumsum(1))


def test_log_space_survives_huge_log_likelihoods():
    ll, lpi, lA = _tiny(B=1, T=50, S=3, seed=1)
    res = hmm_smoother(ll - 1e4, lpi, lA, method="scan")  # probabilities e^-10000 underflow in linear space
    ref = hmm_smoother(ll, lpi, lA)
    assert np.isfinite(res.log_normalizer.item())
    assert torch.allclose(res.smoothed_probs, ref.smoothed_probs, atol=1e-7)
