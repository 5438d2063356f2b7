"""The graph form (Table 1 rounds, particles and edges) against Eq. 6 in matrix form, and
against the tensor form where the paper says they coincide (BDH-Normfree, Eq. 9)."""

import math

import numpy as np
import pytest
import torch

from engramlab.bdh.graph_form import GraphBDH, graph_from_normfree
from engramlab.bdh.inspect import flat_neurons
from engramlab.bdh.model import BDH, BDHConfig


def eq6(g: GraphBDH, y0: np.ndarray):
    """Eq. 6 as matrices: sigma_t = (sigma_{t-1} + (y x^T) . G_s) U, U = rotation blocks * damping."""
    n, L = g.n, g.n_layer
    U = np.diag(g.damping).astype(float)
    if g.rope_freqs is not None:
        R = np.eye(n)
        for k in range(0, n, 2):
            w = 2 * math.pi * g.rope_freqs[k]
            R[k : k + 2, k : k + 2] = [[math.cos(w), -math.sin(w)], [math.sin(w), math.cos(w)]]
        U = R @ np.diag(g.damping)
    Gx, Gy = g.Gx_e - g.Gx_i, g.Gy_e - g.Gy_i
    S = [np.zeros((n, n)) for _ in range(L)]
    xs, ys = np.zeros((L, len(y0), n)), np.zeros((L, len(y0), n))
    for t, yin in enumerate(y0):
        x, yp = np.zeros(n), yin
        for l in range(L):
            x = x + np.maximum(Gx @ yp, 0)
            A = np.stack([S[l] @ (x * (g.heads == h)) for h in range(g.n_heads)])  # (heads, n)
            y = np.array([max(Gy[i] @ A[g.heads[i]], 0.0) for i in range(n)]) * x
            S[l] = (S[l] + np.outer(yp, x) * g.Gs) @ U
            xs[l, t], ys[l, t] = x, y
            yp = y
    return xs, ys, S


def random_graph(n=8, L=2, heads=2, rope=True, seed=0):
    rng = np.random.default_rng(seed)

    def g():
        return np.maximum(rng.normal(size=(n, n)), 0) * (rng.random((n, n)) < 0.6)

    mask = (rng.random((n, n // 2)) < 0.7).astype(float).repeat(2, axis=1)  # RoPE pairs together
    freqs = np.repeat(rng.random(n // 2) * 0.3, 2) if rope else None
    return GraphBDH(
        Gx_e=g(),
        Gx_i=g(),
        Gy_e=g(),
        Gy_i=g(),
        Gs=mask,
        n_layer=L,
        damping=rng.uniform(0.6, 1.0, n),
        rope_freqs=freqs,
        heads=np.repeat(np.arange(heads), n // heads),
    )


@pytest.mark.parametrize("rope,heads", [(True, 1), (True, 2), (False, 2)])
def test_particle_rounds_unroll_to_eq6(rope, heads):
    g = random_graph(rope=rope, heads=heads)
    y0 = np.random.default_rng(1).random((6, g.n)) * (np.random.default_rng(2).random((6, g.n)) < 0.5)
    out = g.run(y0)
    xs, ys, S = eq6(g, y0)
    np.testing.assert_allclose(out["x"], xs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["y"], ys, rtol=1e-12, atol=1e-12)
    assert (ys > 0).mean() > 0.1 and (ys == 0).mean() > 0.1  # thresholds both ways exercised
    # the stored state is sigma before the next token's U: one U step gives Eq. 6's sigma_T
    for l in range(g.n_layer):
        state = dict(g._sigma[l])
        g._step_synapses(state)
        S_particles = np.zeros((g.n, g.n))
        for (i, j), val in state.items():
            S_particles[i, j] = val
        np.testing.assert_allclose(S_particles, S[l], rtol=1e-12, atol=1e-12)
        assert np.abs(S[l]).max() > 0
    # no synapse outside G_s ever holds anything
    assert (g.sigma(0)[g.Gs == 0] == 0).all()


def normfree(pos, H, seed=0, layers=3, layernorm=False):
    torch.manual_seed(seed)
    d, N = 4, 8
    cfg = BDHConfig(
        n_layer=layers,
        n_embd=d,
        n_head=H,
        mlp_internal_dim_multiplier=N * H // d,
        dropout=0.0,
        pos=pos,
        residual="n",
        layernorm=layernorm,
        chunk_size=3,
        alibi_min_half_life=2.0,
        alibi_max_half_life=6.0,
        rope_theta=4.0,
    )
    m = BDH(cfg).double().eval()
    with torch.no_grad():
        for p in (m.decoder_x, m.decoder_y, m.encoder_E):
            p.normal_(0.0, 0.6)
    n = H * N
    patterns = torch.rand(256, n, dtype=torch.float64) * (torch.rand(256, n) < 0.5)  # token -> y_0
    with torch.no_grad():
        m.embed.weight.copy_(patterns @ m.encoder_E)  # E y_0 = embedding: the input enters as y_0
    return m, patterns


@pytest.mark.parametrize("pos,H", [("rope", 1), ("rope", 2), ("alibi", 2), ("rope+alibi", 2)])
def test_graph_form_equals_normfree_tensor_form(pos, H):
    m, patterns = normfree(pos, H)
    idx = torch.randint(0, 256, (1, 7), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits, trace = m.forward_trace(idx)
        quad = m._run(idx, impl="quadratic")[0]
    g = graph_from_normfree(m)
    out = g.run(patterns[idx[0]].numpy())
    for l in range(m.config.n_layer):
        x_t = flat_neurons(trace[l]["x"]).numpy()
        y_t = flat_neurons(trace[l]["y"]).numpy()
        scale_x, scale_y = np.abs(x_t).max(), np.abs(y_t).max()
        np.testing.assert_allclose(out["x"][l], x_t, rtol=0, atol=1e-10 * scale_x)
        np.testing.assert_allclose(out["y"][l], y_t, rtol=0, atol=1e-10 * scale_y)
    assert 0.1 < (out["y"][-1] > 0).mean() < 0.9  # ReLUs exercised
    # the readout: logits = (E y_L) f_d
    E, f_d = m.encoder_E.detach().numpy(), m.lm_head.detach().numpy()
    np.testing.assert_allclose(
        out["y"][-1] @ E @ f_d, logits[0].numpy(), rtol=0, atol=1e-10 * np.abs(logits.numpy()).max()
    )
    torch.testing.assert_close(quad, logits, rtol=1e-10, atol=1e-12)


def test_no_graph_form_for_layernorm_or_d_space_residual():
    m, patterns = normfree("rope", 2)
    ln, _ = normfree("rope", 2, layernorm=True)
    with pytest.raises(ValueError, match="layernorm=True"):
        graph_from_normfree(ln)
    dres = BDH(BDHConfig(n_layer=2, n_embd=4, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0))
    with pytest.raises(ValueError, match="residual='d'"):
        graph_from_normfree(dres)
    # LayerNorm is what separates them: the same weights with LN compute something else
    ln.load_state_dict(m.state_dict())
    idx = torch.randint(0, 256, (1, 7), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        _, trace = ln.forward_trace(idx)
    out = graph_from_normfree(m).run(patterns[idx[0]].numpy())
    y_ln = flat_neurons(trace[-1]["y"]).numpy()
    assert np.abs(out["y"][-1] - y_ln).max() > 0.1 * np.abs(out["y"][-1]).max()


def test_bad_graphs_are_refused():
    n = 4
    ok = dict(
        Gx_e=np.ones((n, n)),
        Gx_i=np.zeros((n, n)),
        Gy_e=np.ones((n, n)),
        Gy_i=np.zeros((n, n)),
        Gs=np.ones((n, n)),
        n_layer=1,
    )
    with pytest.raises(ValueError, match="non-negative"):
        GraphBDH(**{**ok, "Gx_i": -np.ones((n, n))})
    with pytest.raises(ValueError, match="0/1"):
        GraphBDH(**{**ok, "Gs": np.full((n, n), 0.5)})
    with pytest.raises(ValueError, match="rotate together"):
        GraphBDH(**{**ok, "Gs": np.eye(n), "rope_freqs": np.array([0.1, 0.1, 0.2, 0.2])})
    with pytest.raises(ValueError, match="non-negative values"):
        GraphBDH(**ok).token(-np.ones(n))


@pytest.mark.parametrize("layernorm", [True, False])
def test_n_space_residual_forms_agree(layernorm):
    """residual='n' (Eq. 8 / Eq. 7): quadratic, chunked and recurrent forms compute one function,
    and x accumulates over layers (x_l >= x_{l-1} entrywise)."""
    torch.manual_seed(0)
    m = (
        BDH(
            BDHConfig(
                n_layer=3,
                n_embd=16,
                n_head=2,
                mlp_internal_dim_multiplier=4,
                dropout=0.0,
                pos="rope+alibi",
                residual="n",
                layernorm=layernorm,
                chunk_size=4,
            )
        )
        .double()
        .eval()
    )
    idx = torch.randint(0, 256, (2, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        quad = m._run(idx, impl="quadratic")[0]
        chunked, trace = m.forward_trace(idx)
        state = m.init_state(2)
        steps = []
        for t in range(idx.shape[1]):
            lg, state = m.step(idx[:, t], state)
            steps.append(lg)
    torch.testing.assert_close(chunked, quad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(torch.stack(steps, 1), quad, rtol=1e-9, atol=1e-12)
    for l in range(1, 3):
        assert (trace[l]["x"] >= trace[l - 1]["x"]).all()
        assert (trace[l]["x"] > trace[l - 1]["x"]).any()
