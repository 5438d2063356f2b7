"""Eq. 16 synapses: hand-computed cases, the blocked/recurrent forms against dense references,
and the position operator against the model's own attention scores."""

import math

import numpy as np
import pytest
import torch

from engramlab.bdh.inspect import (
    PositionOperator,
    flat_neurons,
    position_operator,
    rotated_keys,
    synapse_matrix,
    synapse_trajectory,
    top_synapses,
)
from engramlab.bdh.model import BDH, BDHConfig
from engramlab.nn.layernorm import layer_norm

# three tokens, two neurons forming one RoPE pair rotated by 90 degrees per token: U = [[0,-1],[1,0]]
Y3 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
X3 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
QUARTER = PositionOperator(freqs=torch.tensor([0.25, 0.25], dtype=torch.float64))


def test_sigma_three_tokens_by_hand():
    # Eq. 16, sigma_{t-1} = sum_{tau<t} y_tau x_tau^T U^{t-tau}; x^T U = [x1, -x0], U^2 = -I, U^3 = -U
    # t=1: y0 (x0^T U)       = [1,0] (x) [0,-1]
    # t=2: + y0 x0^T U^2 + y1 x1^T U          -> [[-1,0],[0,0]] + [0,2] (x) [1,0]
    # t=3: y0 x0^T U^3 + y1 x1^T U^2 + y2 x2^T U = [[0,1],[0,0]] + [[0,0],[0,-2]] + [[1,-1],[1,-1]]
    want = {
        1: [[0.0, -1.0], [0.0, 0.0]],
        2: [[-1.0, 0.0], [2.0, 0.0]],
        3: [[1.0, 0.0], [1.0, -3.0]],
    }
    np.testing.assert_allclose(synapse_matrix(Y3, X3, QUARTER).numpy(), want[3], atol=1e-12)
    pairs = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    traj = synapse_trajectory(Y3, X3, pairs, QUARTER)  # (3, 4)
    for t in (1, 2, 3):
        np.testing.assert_allclose(traj[t - 1].numpy(), np.array(want[t]).reshape(-1), atol=1e-12)


def test_sigma_with_damping_by_hand():
    # one neuron, no rotation, gamma = 1/2 per token: sigma after 3 tokens = sum y x gamma^{3-tau}
    y = torch.tensor([[2.0], [1.0], [4.0]], dtype=torch.float64)
    x = torch.tensor([[1.0], [3.0], [0.5]], dtype=torch.float64)
    U = PositionOperator(log_decay=torch.tensor([math.log(0.5)], dtype=torch.float64))
    want_end = 2 * 1 * 0.125 + 1 * 3 * 0.25 + 4 * 0.5 * 0.5
    assert synapse_matrix(y, x, U).item() == pytest.approx(want_end)
    traj = synapse_trajectory(y, x, torch.tensor([[0, 0]]), U)[:, 0]
    np.testing.assert_allclose(traj.numpy(), [2 * 0.5, 2 * 0.25 + 3 * 0.5, want_end])


def _dense_U(freqs, log_decay_row):
    """Explicit n x n one-step operator: 2x2 rotation blocks R(2 pi f) times diagonal damping."""
    n = len(freqs)
    U = torch.zeros(n, n, dtype=torch.float64)
    for k in range(0, n, 2):
        w = 2 * math.pi * float(freqs[k])
        U[k : k + 2, k : k + 2] = torch.tensor(
            [[math.cos(w), -math.sin(w)], [math.sin(w), math.cos(w)]], dtype=torch.float64
        )
    return U * log_decay_row.exp()[None, :]


def _random_case(seed, T=9, n=8, per_token=False):
    g = torch.Generator().manual_seed(seed)
    y = torch.relu(torch.randn(T, n, generator=g, dtype=torch.float64))
    x = torch.relu(torch.randn(T, n, generator=g, dtype=torch.float64))
    f = torch.rand(n // 2, generator=g, dtype=torch.float64).repeat_interleave(2) * 0.3
    ld = -torch.rand((T, n) if per_token else (n,), generator=g, dtype=torch.float64) * 0.2
    if per_token:
        ld = ld.reshape(T, n // 2, 2)[..., :1].expand(T, n // 2, 2).reshape(T, n)  # pairs share damping
    else:
        ld = ld.reshape(n // 2, 2)[:, :1].expand(n // 2, 2).reshape(n)
    return y, x, PositionOperator(freqs=f, log_decay=ld)


@pytest.mark.parametrize("per_token", [False, True])
def test_recurrent_and_blocked_forms_match_dense_products(per_token):
    y, x, U = _random_case(0, per_token=per_token)
    T, n = x.shape
    ld = U.log_decay.expand(T, n) if U.log_decay.dim() == 1 else U.log_decay
    # dense Eq. 16 with explicit matrices: sigma_{t-1} = sum_{tau<t} y_tau x_tau^T U_{tau} ... U_{t-1}
    dense = []
    for t in range(1, T + 1):
        S = torch.zeros(n, n, dtype=torch.float64)
        for tau in range(t):
            M = torch.eye(n, dtype=torch.float64)
            for s in range(tau, t):
                M = M @ _dense_U(U.freqs, ld[s])
            S += torch.outer(y[tau], x[tau] @ M)
        dense.append(S)
    torch.testing.assert_close(synapse_matrix(y, x, U), dense[-1])
    pairs = torch.tensor([[i, j] for i in range(n) for j in range(n)])
    traj = synapse_trajectory(y, x, pairs, U)
    for t in range(T):
        torch.testing.assert_close(traj[t], dense[t].reshape(-1))
    top = top_synapses(y, x, U, k=5, block_rows=3)
    want = torch.topk(dense[-1].flatten(), 5)
    np.testing.assert_allclose(top.value, want.values.numpy())
    assert list(zip(top.pre, top.post)) == [(int(i) // n, int(i) % n) for i in want.indices]


def test_top_synapses_inside_heads_and_silent_rows():
    y, x, U = _random_case(1, n=8)
    y[:, 0] = 0.0  # a silent presynaptic neuron has no synapses
    dense = synapse_matrix(y, x, U)
    mask = (torch.arange(8)[:, None] // 4) == (torch.arange(8)[None, :] // 4)
    want = torch.topk(dense.masked_fill(~mask, -math.inf).flatten(), 6)
    top = top_synapses(y, x, U, k=6, head_size=4, block_rows=2)
    np.testing.assert_allclose(top.value, want.values.numpy())
    assert (top.pre // 4 == top.post // 4).all() and (top.pre != 0).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        synapse_matrix(Y3, X3[:2], QUARTER)
    with pytest.raises(ValueError, match="pair indices"):
        synapse_trajectory(Y3, X3, torch.tensor([[0, 5]]), QUARTER)
    with pytest.raises(ValueError, match="freqs"):
        rotated_keys(X3, PositionOperator(freqs=torch.zeros(3)))


@pytest.mark.parametrize("pos,variant", [("rope", "gpu"), ("rope+alibi", "gpu"), ("alibi", "prime")])
def test_operator_reproduces_the_models_gated_y(pos, variant):
    # a*_t = sum_{tau<t} (x_tau^T U^{t-tau} x_t) v_tau (Eq. 4 with our U); the model's traced
    # y_t = ReLU(D_y LN(a*_t)) * x_t must follow from it, head by head
    torch.manual_seed(0)
    cfg = BDHConfig(
        n_layer=2,
        n_embd=16,
        n_head=2,
        mlp_internal_dim_multiplier=4,
        dropout=0.0,
        pos=pos,
        variant=variant,
        alibi_min_half_life=2.0,
        alibi_max_half_life=8.0,
    )
    model = BDH(cfg).double().eval()
    with torch.no_grad():
        for p in (model.embed.weight, model.decoder_x, model.decoder_y, model.encoder_E):
            p.normal_(0.0, 0.5)
        if variant == "prime":
            torch.nn.init.normal_(model.gate_w, std=0.5)
            torch.nn.init.constant_(model.gate_b, 1.0)
    idx = torch.randint(0, 256, (1, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, trace = model.forward_trace(idx)
    layer = trace[1]
    x, v = flat_neurons(layer["x"]), layer["v"][0]  # (T, n), (T, d)
    y_model = flat_neurons(layer["y"])
    T, n = x.shape
    N = cfg.n_neurons_per_head
    U = position_operator(model, v)
    checked = 0
    for t in range(1, T):
        ld = U.log_decay
        if ld is not None and ld.dim() == 2:
            ld = ld[:t]  # rows 0..t-1: the steps up to token t (gates of tokens 1..t)
        keys = rotated_keys(x[:t], PositionOperator(U.freqs, ld))  # rows x_tau^T U^{t - tau}
        for h in range(cfg.n_head):
            sl = slice(h * N, (h + 1) * N)
            a = (keys[:, sl] @ x[t, sl]) @ v[:t]  # (d,)
            y = torch.relu(layer_norm(a) @ model.decoder_y[h]) * x[t, sl]
            torch.testing.assert_close(y, y_model[t, sl], rtol=1e-7, atol=1e-9)
            checked += int((y > 0).sum())
    assert checked > 10  # the comparison is not vacuous
