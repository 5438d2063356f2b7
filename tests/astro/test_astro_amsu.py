"""AM-SU: the astrocyte against a brute-force loop of its equations (A2-A4), and the ablation."""

import math

import pytest
import torch

from engramlab.astro.amsu import AMSU, Astrocytes, feature_map

torch.manual_seed(0)


def brute_force_astrocytes(astro: Astrocytes, x: torch.Tensor) -> torch.Tensor:
    """Eqs. A2-A3 step by step with explicit H and z (no linear-attention kernel)."""
    B, T, _ = x.shape
    A, Dk, Dv = astro.A, astro.Dk, astro.Dv
    lam = torch.exp(-1.0 / astro.tau)  # (A,)
    H = x.new_zeros(B, A, Dv, Dk)
    z = x.new_zeros(B, A, Dk)
    outs = []
    mu = astro.mu if astro.mu is not None else torch.ones_like(x[0, 0])
    for t in range(T):
        x_prev = x[:, t - 1] if t > 0 else torch.zeros_like(x[:, 0])
        xs = mu * x[:, t] + (1 - mu) * x_prev  # Eq. A2' key shift
        k = feature_map(xs @ astro.W_k.weight.T).view(B, A, Dk)
        q = feature_map(x[:, t] @ astro.W_q.weight.T).view(B, A, Dk)
        v = (x[:, t] @ astro.W_v.weight.T).view(B, A, Dv)
        H = lam[None, :, None, None] * H + v[..., :, None] * k[..., None, :]  # v k^T
        z = lam[None, :, None] * z + k
        num = (H @ q[..., None]).squeeze(-1)  # H q
        den = (q * z).sum(-1, keepdim=True)  # q . z
        outs.append((num / (den + astro.eps)).reshape(B, A * Dv))
    return torch.stack(outs, 1)


@pytest.mark.parametrize("T,chunk,shift", [(1, 4, True), (13, 4, True), (20, 64, True), (13, 4, False)])
def test_astrocytes_match_brute_force(T, chunk, shift):
    astro = Astrocytes(
        6, 8, n_astrocytes=2, d_key=3, tau_min=2.0, tau_max=50.0, chunk_size=chunk, key_shift=shift
    ).double()
    if shift:
        torch.nn.init.uniform_(astro.mu)
    x = torch.randn(2, T, 6, dtype=torch.float64)
    o, state = astro(x)
    assert torch.allclose(o, brute_force_astrocytes(astro, x), atol=1e-12)
    # the one-token form continues from the carried state
    x2 = torch.randn(2, 1, 6, dtype=torch.float64)
    o2, _ = astro.step(x2[:, 0], state)
    assert torch.allclose(o2, brute_force_astrocytes(astro, torch.cat([x, x2], 1))[:, -1], atol=1e-12)


def test_astrocyte_timescales_initialisation():
    astro = Astrocytes(4, 8, n_astrocytes=4, d_key=2, tau_min=10.0, tau_max=1000.0)
    assert torch.allclose(astro.tau, torch.tensor([10.0, 46.4159, 215.4435, 1000.0]), rtol=1e-4)
    assert torch.allclose(torch.exp(astro.log_decay), torch.exp(-1 / astro.tau))
    assert math.isclose(float(torch.exp(astro.log_decay[-1]).detach()), math.exp(-1e-3), rel_tol=1e-6)


def test_readout_is_weighted_average_of_values():
    # o is a convex combination of past values, so it stays inside their range (up to eps)
    astro = Astrocytes(5, 4, n_astrocytes=1, d_key=3).double()
    astro.eps = 0.0
    x = torch.randn(3, 30, 5, dtype=torch.float64)
    o, _ = astro(x)
    v = x @ astro.W_v.weight.T  # (B, T, N)
    run_max = torch.cummax(v, 1).values
    run_min = -torch.cummax(-v, 1).values
    assert (o <= run_max + 1e-9).all() and (o >= run_min - 1e-9).all()


def test_astrocyte_false_is_plain_lif():
    torch.manual_seed(3)
    with_astro = AMSU(6, 8, astrocyte=True, n_astrocytes=2, d_key=3, threshold=0.3).double()
    plain = AMSU(6, 8, astrocyte=False, threshold=0.3).double()
    plain.W_I.load_state_dict(with_astro.W_I.state_dict())
    plain.lif.load_state_dict(with_astro.lif.state_dict())
    x = torch.randn(2, 15, 6, dtype=torch.float64)
    spk, mem, st = plain(x)
    ref_spk, ref_mem, _ = with_astro.lif((x @ with_astro.W_I.weight.T).transpose(0, 1))
    assert torch.equal(spk, ref_spk.transpose(0, 1)) and torch.allclose(mem, ref_mem.transpose(0, 1))
    assert st.astro is None and sum(p.numel() for p in plain.parameters()) < sum(
        p.numel() for p in with_astro.parameters()
    )
    # and the astrocyte does change the spikes
    spk_a, _, _ = with_astro(x)
    assert not torch.equal(spk_a, spk)


def test_amsu_errors():
    with pytest.raises(ValueError, match="divisible"):
        Astrocytes(4, 10, n_astrocytes=3, d_key=2)
    with pytest.raises(ValueError, match="tau_min"):
        Astrocytes(4, 8, n_astrocytes=2, d_key=2, tau_min=100.0, tau_max=10.0)
    amsu = AMSU(4, 8, n_astrocytes=2, d_key=2)
    x = torch.randn(1, 5, 4)
    x[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        amsu(x)
    plain = AMSU(4, 8, astrocyte=False)
    with pytest.raises(ValueError, match="astrocyte"):
        plain.step(torch.randn(1, 4), amsu.init_state(1))
    with pytest.raises(ValueError, match="no astrocyte state"):
        amsu.step(torch.randn(1, 4), plain.init_state(1))
    with pytest.raises(ValueError, match="astrocyte state has shape"):
        amsu.step(torch.randn(1, 4), AMSU(4, 8, n_astrocytes=4, d_key=2).init_state(1))
