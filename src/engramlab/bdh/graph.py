"""The BDH neuron graph: G_x = D_x E and G_y = D_y E read as neuron-neuron graphs (paper §5).

Observation 4 / Eq. 9 of the paper identifies the ReLU-low-rank feed-forward of BDH-GPU with a
graph on the n neurons: ``G_x^e - G_x^i = D_x E`` and ``G_y^e - G_y^i = D_y E``. Entry
``G[i, j] = D[i, :] . E[:, j]`` is the weight of the edge from neuron j (whose activity is
encoded by E) to neuron i (which D decodes into), so

- the out-degree of neuron j counts the kept entries of column j,
- the in-degree of neuron i counts the kept entries of row i.

The paper (§5, Figs. 10-11) thresholds the positive entries of G and reports positive Newman
modularity (above random graphs and random low-rank baselines) and heavy-tailed degree
distributions. This module builds the thresholded graph without materialising the n x n matrix
(row blocks, a running top-m), fits the tail exponent with the discrete power-law maximum
likelihood estimator of Clauset, Shalizi & Newman (2009), and measures modularity with
networkx's Louvain communities against an Erdos-Renyi graph of the same edge count and a random
low-rank model ``D' E'`` of the same shape (Gaussian entries with the same standard deviations).

In code the paper's ``D_x`` (n x d) is ``model.decoder_x`` (n_head, d, N) and the paper's ``E``
(d x n) is ``model.encoder_E`` (n_head * N, d) transposed; ``head_factors`` does the reshaping.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import networkx as nx
import numpy as np
import torch
from scipy import optimize, special

# ---------------------------------------------------------------------------------------------
# thresholded graph by blocks


@dataclass
class NeuronGraph:
    """A thresholded directed neuron graph: edge ``src[k] -> dst[k]`` with weight ``weight[k]``."""

    n_nodes: int
    src: np.ndarray  # (m,) int64, the presynaptic neuron j (column of G)
    dst: np.ndarray  # (m,) int64, the postsynaptic neuron i (row of G)
    weight: np.ndarray  # (m,) float, G[i, j]
    threshold: float  # the smallest kept weight (edges have weight >= threshold)

    @property
    def n_edges(self) -> int:
        return int(len(self.src))

    @property
    def out_degree(self) -> np.ndarray:
        return np.bincount(self.src, minlength=self.n_nodes)

    @property
    def in_degree(self) -> np.ndarray:
        return np.bincount(self.dst, minlength=self.n_nodes)

    def to_networkx(self, directed: bool = False) -> nx.Graph:
        g = nx.DiGraph() if directed else nx.Graph()
        g.add_nodes_from(range(self.n_nodes))
        g.add_edges_from(zip(self.src.tolist(), self.dst.tolist()))
        return g


def _check_factors(decoder: torch.Tensor, encoder: torch.Tensor) -> None:
    if not (isinstance(decoder, torch.Tensor) and isinstance(encoder, torch.Tensor)):
        raise TypeError("decoder and encoder must be torch tensors")
    if decoder.dim() != 2 or encoder.dim() != 2:
        raise ValueError(
            f"expected decoder D (n_out, d) and encoder E (d, n_in) as 2-D tensors, got shapes "
            f"{tuple(decoder.shape)} and {tuple(encoder.shape)}"
        )
    if decoder.shape[1] != encoder.shape[0]:
        raise ValueError(
            f"decoder D {tuple(decoder.shape)} and encoder E {tuple(encoder.shape)} do not compose: "
            f"D's second dimension must equal E's first (the low rank d)"
        )


def threshold_graph(
    decoder: torch.Tensor,
    encoder: torch.Tensor,
    *,
    n_edges: int | None = None,
    threshold: float | None = None,
    self_loops: bool = False,
    block_rows: int = 512,
    max_edges: int = 20_000_000,
) -> NeuronGraph:
    """Threshold G = D E (D: (n_out, d), E: (d, n_in)) without materialising it.

    Exactly one of ``n_edges`` (keep the ``n_edges`` largest positive entries, a global top-m
    kept by a running cutoff over row blocks) and ``threshold`` (keep every entry > threshold,
    which must be >= 0) is given. Memory is O(block_rows * n_in + n_edges).
    """
    _check_factors(decoder, encoder)
    if (n_edges is None) == (threshold is None):
        raise ValueError("give exactly one of n_edges (global top-m) and threshold (weight cutoff)")
    if n_edges is not None and (not isinstance(n_edges, int) or n_edges < 1):
        raise ValueError(f"n_edges must be a positive integer, got {n_edges!r}")
    if threshold is not None and not (threshold >= 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number >= 0 (the paper keeps positive entries), got {threshold}")
    n_out, n_in = decoder.shape[0], encoder.shape[1]
    if not self_loops and n_out != n_in:
        raise ValueError(f"self_loops=False needs a square graph, got {n_out} x {n_in}")
    D = decoder.detach()
    E = encoder.detach().to(D.dtype)
    vals: list[torch.Tensor] = []
    flat: list[torch.Tensor] = []
    cutoff = 0.0 if threshold is None else float(threshold)
    kept = 0
    for r0 in range(0, n_out, block_rows):
        G = D[r0 : r0 + block_rows] @ E  # (b, n_in)
        if not self_loops:
            b = G.shape[0]
            rows = torch.arange(b)
            G[rows, rows + r0] = -math.inf
        mask = G > cutoff
        idx = mask.flatten().nonzero().squeeze(1)
        v = G.flatten()[idx]
        vals.append(v)
        flat.append(idx + r0 * n_in)
        kept += len(v)
        if n_edges is not None and kept > 2 * n_edges:  # prune to the running top-m, raise the cutoff
            v_all, i_all = torch.cat(vals), torch.cat(flat)
            top = torch.topk(v_all, n_edges)
            vals, flat = [top.values], [i_all[top.indices]]
            kept = n_edges
            cutoff = float(top.values[-1])
        if threshold is not None and kept > max_edges:
            raise ValueError(
                f"threshold {threshold} keeps more than max_edges={max_edges} edges; raise the threshold or use n_edges"
            )
    v_all, i_all = torch.cat(vals), torch.cat(flat)
    if n_edges is not None and len(v_all) > n_edges:
        top = torch.topk(v_all, n_edges)
        v_all, i_all = top.values, i_all[top.indices]
    order = torch.argsort(i_all)
    v_all, i_all = v_all[order], i_all[order]
    dst = (i_all // n_in).numpy().astype(np.int64)
    src = (i_all % n_in).numpy().astype(np.int64)
    w = v_all.double().numpy()
    thr = float(w.min()) if len(w) else float(cutoff)
    return NeuronGraph(n_nodes=max(n_out, n_in), src=src, dst=dst, weight=w, threshold=thr)


def head_factors(decoder: torch.Tensor, encoder_E: torch.Tensor, head: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper-shaped factors (D: (rows, d), E: (d, cols)) from the model's tensors.

    decoder: ``decoder_x`` or ``decoder_y`` of shape (n_head, d, N); encoder_E: (n_head * N, d).
    head=None gives the full n x n graph, head=h the diagonal block of head h (N x N).
    """
    if decoder.dim() != 3 or encoder_E.dim() != 2:
        raise ValueError(
            f"expected decoder (n_head, d, N) and encoder_E (n_head*N, d), got {tuple(decoder.shape)} "
            f"and {tuple(encoder_E.shape)}"
        )
    nh, d, N = decoder.shape
    if encoder_E.shape != (nh * N, d):
        raise ValueError(f"encoder_E has shape {tuple(encoder_E.shape)}, expected {(nh * N, d)}")
    if head is None:
        return decoder.permute(0, 2, 1).reshape(nh * N, d), encoder_E.T
    if not 0 <= head < nh:
        raise ValueError(f"head must be in [0, {nh}), got {head}")
    return decoder[head].T, encoder_E[head * N : (head + 1) * N].T


# ---------------------------------------------------------------------------------------------
# discrete power-law tail (Clauset, Shalizi & Newman 2009, Eq. 3.5 and §3.3)


@dataclass
class PowerLawFit:
    """p(k) = k^-alpha / zeta(alpha, xmin) for xmin <= k; fitted on n_tail of n_total values."""

    alpha: float
    alpha_stderr: float  # (alpha - 1) / sqrt(n_tail)
    xmin: int
    xmax: int  # the largest value in the fit range
    n_tail: int
    n_total: int
    ks: float  # Kolmogorov-Smirnov distance of the tail to the fit
    # likelihood ratio against a discrete exponential on the same tail (Vuong): R > 0 favours the
    # power law, p is the two-sided significance of the sign of R
    lr_vs_exponential: float
    lr_p: float

    def to_dict(self) -> dict:
        return asdict(self)


def _pl_alpha(x: np.ndarray, xmin: int) -> float:
    logsum = np.log(x).sum()
    n = len(x)

    def nll(a):
        return n * math.log(special.zeta(a, xmin)) + a * logsum

    res = optimize.minimize_scalar(nll, bounds=(1.0001, 8.0), method="bounded", options={"xatol": 1e-6})
    return float(res.x)


def _pl_ks(x: np.ndarray, xmin: int, alpha: float) -> float:
    xs = np.sort(x)
    uniq, counts = np.unique(xs, return_counts=True)
    emp = np.cumsum(counts) / len(xs)
    z0 = special.zeta(alpha, xmin)
    model = 1.0 - special.zeta(alpha, uniq + 1.0) / z0
    emp_before = np.concatenate([[0.0], emp[:-1]])
    model_before = 1.0 - special.zeta(alpha, uniq.astype(float)) / z0
    return float(max(np.abs(emp - model).max(), np.abs(emp_before - model_before).max()))


def _lr_vs_exponential(x: np.ndarray, xmin: int, alpha: float) -> tuple[float, float]:
    n = len(x)
    mean_excess = x.mean() - xmin
    if mean_excess <= 0:
        return 0.0, 1.0
    lam = math.log1p(1.0 / mean_excess)  # MLE of p(k) = (1 - e^-lam) e^{-lam (k - xmin)}
    l_pl = -alpha * np.log(x) - math.log(special.zeta(alpha, xmin))
    l_ex = math.log1p(-math.exp(-lam)) - lam * (x - xmin)
    diff = l_pl - l_ex
    R = float(diff.sum())
    sd = float(diff.std())
    if sd == 0:
        return R, 0.0 if R != 0 else 1.0
    p = float(special.erfc(abs(R) / (math.sqrt(2 * n) * sd)))
    return R, p


def fit_power_law(values, xmin: int | None = None, min_tail: int = 20, max_candidates: int = 60) -> PowerLawFit:
    """Discrete power-law MLE of the tail of positive integers ``values`` (zeros are dropped).

    With ``xmin=None`` the lower bound of the fit range is chosen among the distinct values (at
    most ``max_candidates`` of them, keeping at least ``min_tail`` points above) by minimising the
    Kolmogorov-Smirnov distance, as Clauset et al. recommend.
    """
    x = np.asarray(values)
    if x.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {x.shape}")
    if len(x) and (np.any(x < 0) or np.any(x != np.round(x))):
        raise ValueError("values must be non-negative integers (degrees)")
    n_total = int(len(x))
    x = x[x > 0].astype(np.float64)
    if len(x) < min_tail:
        raise ValueError(f"need at least min_tail={min_tail} positive values to fit a tail, got {len(x)}")
    if xmin is not None:
        if xmin < 1:
            raise ValueError(f"xmin must be >= 1, got {xmin}")
        cands = [int(xmin)]
    else:
        xs = np.sort(x)
        uniq = np.unique(xs[: len(xs) - min_tail + 1])
        if len(uniq) > max_candidates:  # all small values, log-spaced ones above
            grid = np.geomspace(uniq[0], uniq[-1], max_candidates)
            snapped = uniq[np.minimum(np.searchsorted(uniq, grid), len(uniq) - 1)]
            uniq = np.unique(np.concatenate([uniq[: max_candidates // 2], snapped]))
        cands = [int(u) for u in uniq]
    best = None
    for xm in cands:
        tail = x[x >= xm]
        if len(tail) < min_tail or len(np.unique(tail)) < 2:
            continue
        a = _pl_alpha(tail, xm)
        ks = _pl_ks(tail, xm, a)
        if best is None or ks < best[2]:
            best = (xm, a, ks, tail)
    if best is None:
        raise ValueError(f"no fit range with at least {min_tail} values and two distinct values")
    xm, a, ks, tail = best
    R, p = _lr_vs_exponential(tail, xm, a)
    return PowerLawFit(
        alpha=a,
        alpha_stderr=(a - 1) / math.sqrt(len(tail)),
        xmin=xm,
        xmax=int(tail.max()),
        n_tail=int(len(tail)),
        n_total=n_total,
        ks=ks,
        lr_vs_exponential=R,
        lr_p=p,
    )


def ccdf(values) -> tuple[np.ndarray, np.ndarray]:
    """Complementary CDF P(X >= k) at the distinct positive values k (for log-log plots)."""
    x = np.asarray(values)
    x = np.sort(x[x > 0])
    if len(x) == 0:
        return np.zeros(0), np.zeros(0)
    uniq, first = np.unique(x, return_index=True)
    return uniq, 1.0 - first / len(x)


# ---------------------------------------------------------------------------------------------
# modularity against baselines


def modularity(graph: nx.Graph, seed: int = 0, resolution: float = 1.0) -> tuple[float, int]:
    """Newman modularity Q of the Louvain partition (undirected) -> (Q, number of communities)."""
    if graph.number_of_edges() == 0:
        return 0.0, graph.number_of_nodes()
    comms = nx.community.louvain_communities(graph, seed=seed, resolution=resolution)
    return float(nx.community.modularity(graph, comms, resolution=resolution)), len(comms)


def erdos_renyi_like(n_nodes: int, n_edges: int, seed: int) -> nx.Graph:
    """G(n, m): n nodes and exactly the same number of undirected edges."""
    return nx.gnm_random_graph(n_nodes, n_edges, seed=seed)


def random_low_rank_like(decoder: torch.Tensor, encoder: torch.Tensor, n_edges: int, seed: int, **kw) -> NeuronGraph:
    """The same construction on random factors: Gaussian D', E' with D's and E's shapes and stds."""
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(decoder.shape, generator=g, dtype=torch.float64) * decoder.double().std()
    E = torch.randn(encoder.shape, generator=g, dtype=torch.float64) * encoder.double().std()
    return threshold_graph(D, E, n_edges=n_edges, **kw)


def graph_report(
    decoder: torch.Tensor,
    encoder: torch.Tensor,
    n_edges: int,
    seeds: tuple[int, ...] = (0, 1),
    block_rows: int = 512,
) -> dict:
    """Degrees, tail fits and modularity (with baselines) of the thresholded D E.

    Returns a JSON-ready dict; ``graph`` holds the NeuronGraph for plotting (not JSON).
    """
    G = threshold_graph(decoder, encoder, n_edges=n_edges, block_rows=block_rows)
    und = G.to_networkx()
    q, ncom = modularity(und, seed=seeds[0])
    er = [modularity(erdos_renyi_like(G.n_nodes, und.number_of_edges(), s), seed=s)[0] for s in seeds]
    lr_graphs = [random_low_rank_like(decoder, encoder, n_edges, seed=1000 + s, block_rows=block_rows) for s in seeds]
    lr = [modularity(h.to_networkx(), seed=s)[0] for h, s in zip(lr_graphs, seeds)]
    out = {
        "n_nodes": G.n_nodes,
        "n_edges": G.n_edges,
        "weight_threshold": G.threshold,
        "modularity": q,
        "n_communities": ncom,
        "modularity_erdos_renyi": er,
        "modularity_random_low_rank": lr,
        "degrees": {},
    }
    for name, deg, base in (
        ("out", G.out_degree, lr_graphs[0].out_degree),
        ("in", G.in_degree, lr_graphs[0].in_degree),
    ):
        entry = {
            "mean": float(deg.mean()),
            "max": int(deg.max()),
            "isolated_fraction": float((deg == 0).mean()),
            "max_over_mean": float(deg.max() / max(deg.mean(), 1e-12)),
            "random_low_rank_max_over_mean": float(base.max() / max(base.mean(), 1e-12)),
        }
        try:
            entry["power_law"] = fit_power_law(deg).to_dict()
        except ValueError as e:
            entry["power_law"] = {"error": str(e)}
        out["degrees"][name] = entry
    out["graph"] = G
    out["random_low_rank_graph"] = lr_graphs[0]
    return out
