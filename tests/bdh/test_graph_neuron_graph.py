"""The neuron graph G = D E, its power-law tail fit and its modularity, on planted ground truth."""

import math

import networkx as nx
import numpy as np
import pytest
import torch
from scipy import stats

from engramlab.bdh.graph import (
    ccdf,
    fit_power_law,
    graph_report,
    head_factors,
    modularity,
    threshold_graph,
)


def _dense_top(D, E, m):
    G = (D @ E).clone()
    G.fill_diagonal_(-math.inf)
    top = torch.topk(G.flatten(), m)
    n_in = E.shape[1]
    return {(int(i) // n_in, int(i) % n_in) for i in top.indices}


@pytest.mark.parametrize("block_rows", [1, 7, 64, 1000])
def test_blocked_top_m_matches_dense(block_rows):
    g = torch.Generator().manual_seed(0)
    D = torch.randn(53, 6, generator=g, dtype=torch.float64)
    E = torch.randn(6, 53, generator=g, dtype=torch.float64)
    G = threshold_graph(D, E, n_edges=137, block_rows=block_rows)
    assert G.n_edges == 137
    got = set(zip(G.dst.tolist(), G.src.tolist()))
    assert got == _dense_top(D, E, 137)
    dense = D @ E
    np.testing.assert_allclose(G.weight, dense[G.dst, G.src].numpy())
    assert (G.src != G.dst).all()


def test_weight_threshold_and_degrees_by_hand():
    # G = D E = [[0, 2, -1], [3, 0, 0.5], [1, 1, 0]] with D = G, E = I
    Gm = torch.tensor([[0.0, 2.0, -1.0], [3.0, 0.0, 0.5], [1.0, 1.0, 0.0]], dtype=torch.float64)
    G = threshold_graph(Gm, torch.eye(3, dtype=torch.float64), threshold=0.75, block_rows=2)
    # kept: (0<-1, 2.0), (1<-0, 3.0), (2<-0, 1.0), (2<-1, 1.0)
    assert set(zip(G.dst.tolist(), G.src.tolist())) == {(0, 1), (1, 0), (2, 0), (2, 1)}
    assert G.out_degree.tolist() == [2, 2, 0]
    assert G.in_degree.tolist() == [1, 1, 2]
    assert G.threshold == 1.0


def test_head_factors_compose_like_the_model():
    g = torch.Generator().manual_seed(1)
    nh, d, N = 3, 4, 5
    dec = torch.randn(nh, d, N, generator=g, dtype=torch.float64)
    enc = torch.randn(nh * N, d, generator=g, dtype=torch.float64)
    Dfull, Efull = head_factors(dec, enc, None)
    Gfull = Dfull @ Efull
    for h in range(nh):
        D, E = head_factors(dec, enc, h)
        torch.testing.assert_close(D @ E, Gfull[h * N : (h + 1) * N, h * N : (h + 1) * N])
    # entry (i, j) of the full graph: neuron i = (h, k) decodes, neuron j encodes
    i, j = 7, 2
    torch.testing.assert_close(Gfull[i, j], dec[i // N, :, i % N] @ enc[j])
    with pytest.raises(ValueError, match="encoder_E"):
        head_factors(dec, enc[:-1], 0)


def test_bad_arguments():
    D, E = torch.zeros(4, 2), torch.zeros(2, 4)
    with pytest.raises(ValueError, match="exactly one"):
        threshold_graph(D, E)
    with pytest.raises(ValueError, match="do not compose"):
        threshold_graph(D, torch.zeros(3, 4), n_edges=2)
    with pytest.raises(ValueError, match="threshold"):
        threshold_graph(D, E, threshold=-1.0)


def test_power_law_exponent_of_zipf_sample():
    rng = np.random.default_rng(0)
    x = stats.zipf.rvs(2.5, size=20000, random_state=rng)
    fit = fit_power_law(x, xmin=1)
    assert abs(fit.alpha - 2.5) < 3 * fit.alpha_stderr + 0.01
    assert fit.lr_vs_exponential > 0 and fit.lr_p < 0.01


def test_power_law_finds_xmin_of_a_planted_tail():
    rng = np.random.default_rng(1)
    tail = stats.zipf.rvs(2.2, size=200000, random_state=rng)
    tail = tail[tail >= 8][:5000]
    body = rng.integers(1, 8, size=5000)  # flat below the planted xmin = 8
    fit = fit_power_law(np.concatenate([body, tail]))
    assert 6 <= fit.xmin <= 11
    assert abs(fit.alpha - 2.2) < 0.12
    assert fit.xmax == tail.max()


def test_exponential_is_not_a_power_law():
    rng = np.random.default_rng(2)
    x = rng.geometric(0.3, size=5000)
    fit = fit_power_law(x, xmin=1)
    assert fit.lr_vs_exponential < 0 and fit.lr_p < 1e-3


def test_ccdf_by_hand():
    k, p = ccdf([0, 1, 1, 2, 5])
    assert k.tolist() == [1, 2, 5]
    np.testing.assert_allclose(p, [1.0, 0.5, 0.25])


def test_modularity_of_two_triangles_by_hand():
    g = nx.Graph([(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (2, 3)])
    q, ncom = modularity(g)
    # communities {0,1,2},{3,4,5}: m = 7, each has 3 internal edges and degree sum 7
    assert ncom == 2
    assert q == pytest.approx(2 * (3 / 7 - (7 / 14) ** 2))


def test_modularity_of_planted_communities_beats_random():
    g = nx.planted_partition_graph(4, 25, 0.5, 0.02, seed=3)
    q, ncom = modularity(g, seed=0)
    planted = [set(range(25 * c, 25 * (c + 1))) for c in range(4)]
    assert ncom == 4
    assert q == pytest.approx(nx.community.modularity(g, planted), abs=1e-9)
    # expected: within-edge fraction 600/675 minus 1/4
    assert q == pytest.approx(600 / 675 - 0.25, abs=0.05)
    er = nx.gnm_random_graph(100, g.number_of_edges(), seed=0)
    assert modularity(er)[0] < q - 0.3


def test_graph_report_on_planted_block_low_rank():
    # D E with block structure: neurons of block b read and write only coordinates of block b
    g = torch.Generator().manual_seed(4)
    n, d, blocks = 120, 12, 4
    D = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.1
    E = torch.randn(d, n, generator=g, dtype=torch.float64) * 0.1
    for b in range(blocks):
        rows = slice(b * n // blocks, (b + 1) * n // blocks)
        cols = slice(b * d // blocks, (b + 1) * d // blocks)
        D[rows, cols] += 1.0
        E[cols, rows] += 1.0
    rep = graph_report(D, E, n_edges=6 * n, seeds=(0,), block_rows=32)
    assert rep["n_edges"] == 6 * n
    assert rep["modularity"] > 0.5
    assert rep["modularity"] > max(rep["modularity_erdos_renyi"]) + 0.2
    assert rep["modularity"] > max(rep["modularity_random_low_rank"]) + 0.2
    assert set(rep["degrees"]) == {"out", "in"}
