"""LIF neurons and surrogate gradients: hand-computed cases and the plain autograd loop as oracle."""

import math

import pytest
import torch

from engramlab.astro import surrogate
from engramlab.astro.neurons import LIF, LIFScan, LIFState, lif_reference

torch.manual_seed(0)


@pytest.mark.parametrize(
    "name,slope,formula",
    [
        ("atan", 2.0, lambda m, a: a / 2 / (1 + (math.pi / 2 * a * m) ** 2)),
        ("fast_sigmoid", 25.0, lambda m, k: 1 / (k * abs(m) + 1) ** 2),
        ("sigmoid", 25.0, lambda m, k: k * math.exp(-k * m) / (1 + math.exp(-k * m)) ** 2),
    ],
)
def test_surrogate_forward_is_heaviside_and_backward_is_formula(name, slope, formula):
    m = torch.tensor([-0.7, -0.01, 0.0, 0.02, 0.5], dtype=torch.float64, requires_grad=True)
    fn = getattr(surrogate, name)(slope)
    s = fn(m)
    assert s.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    s.sum().backward()
    want = [formula(v, slope) for v in m.detach().tolist()]
    assert torch.allclose(m.grad, torch.tensor(want, dtype=torch.float64))
    assert torch.allclose(surrogate.derivative(name, slope)(m.detach()), m.grad)


def test_surrogate_bad_arguments():
    with pytest.raises(ValueError, match="unknown surrogate"):
        surrogate.spike_function("relu")
    with pytest.raises(ValueError, match="slope"):
        surrogate.atan(-1.0)


def test_lif_hand_computed_subtract_and_zero():
    # one neuron, beta 0.5, theta 1, inputs 0.8, 0.8, 0.8, 0
    cur = torch.tensor([0.8, 0.8, 0.8, 0.0], dtype=torch.float64).view(4, 1, 1)
    for reset, want_u, want_s in [
        # subtract: u1=.8; u2=.4+.8=1.2 -> spike; u3=.6+.8-1=.4; u4=.2
        ("subtract", [0.8, 1.2, 0.4, 0.2], [0, 1, 0, 0]),
        # zero: u3 = .5*1.2*(1-1)+.8 = .8; u4 = .4
        ("zero", [0.8, 1.2, 0.8, 0.4], [0, 1, 0, 0]),
    ]:
        lif = LIF(1, beta=0.5, threshold=1.0, reset=reset).double()
        spk, mem, st = lif(cur)
        assert torch.allclose(mem.flatten(), torch.tensor(want_u, dtype=torch.float64))
        assert spk.flatten().tolist() == want_s
        assert isinstance(st, LIFState) and float(st.u.detach()) == pytest.approx(want_u[-1])


@pytest.mark.parametrize("subtract", [True, False])
@pytest.mark.parametrize("with_mod", [True, False])
@pytest.mark.parametrize("name", surrogate.SURROGATES)
def test_fused_scan_matches_autograd_loop(subtract, with_mod, name):
    T, B, N = 17, 3, 6
    g = torch.Generator().manual_seed(1)
    cur = torch.randn(T, B, N, dtype=torch.float64, generator=g).requires_grad_()
    mod = torch.randn(T, B, N, dtype=torch.float64, generator=g).requires_grad_() if with_mod else None
    bl = torch.randn(N, dtype=torch.float64, generator=g).requires_grad_()
    th = (torch.rand(N, dtype=torch.float64, generator=g) + 0.3).requires_grad_()
    u0 = torch.randn(B, N, dtype=torch.float64, generator=g).requires_grad_()
    s0 = (torch.rand(B, N, generator=g) > 0.5).double()
    w1, w2 = torch.randn(2, T, B, N, dtype=torch.float64, generator=g)
    slope = surrogate.DEFAULT_SLOPE[name]
    inputs = [cur, bl, th, u0] + ([mod] if with_mod else [])
    s_f, u_f = LIFScan.apply(
        cur, mod if with_mod else cur.new_zeros(0), torch.sigmoid(bl), th, u0, s0, subtract, name, slope
    )
    g_f = torch.autograd.grad((s_f * w1).sum() + (u_f * w2).sum(), inputs)
    s_r, u_r = lif_reference(cur, mod, torch.sigmoid(bl), th, u0, s0, subtract, name, slope)
    g_r = torch.autograd.grad((s_r * w1).sum() + (u_r * w2).sum(), inputs)
    assert torch.equal(s_f, s_r)
    assert torch.allclose(u_f, u_r, atol=1e-12)
    for a, b in zip(g_f, g_r):
        assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_step_loop_equals_forward_and_state_carry(reset):
    lif = LIF(5, beta=(0.5, 0.95), threshold=0.4, reset=reset).double()
    cur = torch.randn(12, 2, 5, dtype=torch.float64)
    mod = torch.randn(12, 2, 5, dtype=torch.float64)
    spk, mem, st = lif(cur, mod)
    s = lif.init_state(2, dtype=torch.float64)
    for t in range(12):
        s_t, u_t, s = lif.step(cur[t], mod[t], s)
        assert torch.equal(s_t, spk[t]) and torch.allclose(u_t, mem[t])
    # two halves with the carried state equal the whole
    spk1, _, st1 = lif(cur[:5], mod[:5])
    spk2, _, st2 = lif(cur[5:], mod[5:], st1)
    assert torch.equal(torch.cat([spk1, spk2]), spk)
    assert torch.allclose(st2.u, st.u)


def test_beta_in_unit_interval_and_learnable():
    lif = LIF(4, beta=(0.2, 0.99))
    assert ((lif.beta > 0) & (lif.beta < 1)).all()
    assert torch.allclose(lif.beta, torch.linspace(0.2, 0.99, 4), atol=1e-6)
    spk, mem, _ = lif(torch.randn(6, 2, 4))
    (spk.sum() + mem.sum()).backward()
    assert lif.beta_logit.grad is not None and lif.threshold.grad is not None


def test_lif_bad_inputs():
    with pytest.raises(ValueError, match="reset"):
        LIF(3, reset="hard")
    with pytest.raises(ValueError, match="beta"):
        LIF(3, beta=1.0)
    lif = LIF(3)
    with pytest.raises(ValueError, match="shape"):
        lif(torch.randn(4, 2, 5))
    with pytest.raises(ValueError, match="state"):
        lif(torch.randn(4, 2, 3), state=lif.init_state(7))
    with pytest.raises(ValueError, match="non-finite"):
        lif(torch.tensor([[[0.0, float("inf"), 0.0]]]))
    with pytest.raises(TypeError, match="LIFState"):
        lif.step(torch.randn(2, 3), state=(torch.zeros(2, 3), torch.zeros(2, 3)))
