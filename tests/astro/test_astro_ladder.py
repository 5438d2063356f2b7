"""The ablation ladder's switches and the SNN-field conventions of the neuron API.

Each switch is checked against something written independently here: snnTorch's ``Leaky`` equations,
a hand-computed recurrence, or the switch's defining property.
"""

import math

import pytest
import torch

from engramlab.astro import surrogate
from engramlab.astro.amsu import AMSU, Astrocytes
from engramlab.astro.model import VARIANTS, AstroConfig, AstroSNN
from engramlab.astro.neurons import LIF, LIFScan, lif_reference

torch.manual_seed(0)


def snntorch_leaky(inputs, beta: float, threshold: float, reset_mechanism: str):
    """snnTorch ``Leaky`` (snntorch/_neurons/leaky.py) written out for one neuron, mem starting at 0:

    reset = Heaviside(mem_prev - threshold) (detached);
    subtract: mem = beta * mem + input - reset * threshold;  zero: mem = beta * (1 - reset) * mem + input;
    spk = Heaviside(mem - threshold), Heaviside(x) = 1 if x > 0 else 0.
    """
    mem, spks, mems = 0.0, [], []
    for x in inputs:
        reset = 1.0 if mem - threshold > 0 else 0.0
        if reset_mechanism == "subtract":
            mem = beta * mem + x - reset * threshold
        else:
            mem = beta * ((1 - reset) * mem) + x
        spks.append(1.0 if mem - threshold > 0 else 0.0)
        mems.append(mem)
    return spks, mems


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("fused", [True, False])
def test_lif_agrees_with_snntorch_leaky(reset, fused):
    g = torch.Generator().manual_seed(3)
    inputs = (torch.rand(40, generator=g, dtype=torch.float64) * 1.2).tolist()
    lif = LIF(1, beta=0.8, threshold=0.7, reset=reset, fused=fused).double()
    beta, thr = float(lif.beta.detach()), float(lif.threshold.detach())  # 0.8 up to the float32 logit it is stored as
    want_s, want_u = snntorch_leaky(inputs, beta, thr, reset)
    assert 3 < sum(want_s) < 37  # the case does fire and does reset
    spk, mem, _ = lif(torch.tensor(inputs, dtype=torch.float64).view(40, 1, 1))
    assert spk.flatten().tolist() == want_s
    assert torch.allclose(mem.flatten(), torch.tensor(want_u, dtype=torch.float64), rtol=0, atol=1e-12)
    # the batch-major one-step API gives the same (snnTorch's Leaky is called one step at a time)
    st = lif.reset(1, dtype=torch.float64)
    for t, x in enumerate(inputs):
        s, u, st = lif.step(torch.tensor([[x]], dtype=torch.float64), state=st)
        assert float(s.detach()) == want_s[t] and float(u.detach()) == pytest.approx(want_u[t], abs=1e-12)


def test_lif_conventions_reset_and_default_surrogate():
    lif = LIF(3)
    assert lif.surrogate == "atan" and lif.slope == 2.0  # ATan alpha = 2, as snnTorch's default
    st = lif.reset((2,))
    assert tuple(st.u.shape) == (2, 3) and not st.u.any() and not st.s.any()
    with pytest.raises(ValueError, match="rate"):
        LIF(3, surrogate="fast_sigmoid", spiking=False)


@pytest.mark.parametrize("name", surrogate.RATE_SURROGATES)
def test_rate_function_is_the_antiderivative_of_the_surrogate(name):
    m = torch.linspace(-0.6, 0.6, 41, dtype=torch.float64, requires_grad=True)
    r = surrogate.rate_function(name)(m)
    assert ((r > 0) & (r < 1)).all()
    (g,) = torch.autograd.grad(r.sum(), m)
    assert torch.allclose(g, surrogate.derivative(name)(m.detach()), atol=1e-12)


@pytest.mark.parametrize("subtract", [True, False])
def test_rate_neuron_hand_computed_and_fused_gradient(subtract):
    # one neuron, beta 0.5, theta 1, atan alpha 2: s_t = atan(pi (u_t - 1)) / pi + 1/2
    cur = [0.8, 0.8, 0.8, 0.0]
    u, s, want_u, want_s = 0.0, 0.0, [], []
    for x in cur:
        u = 0.5 * u + x - 1.0 * s if subtract else 0.5 * u * (1 - s) + x
        s = math.atan(math.pi * (u - 1.0)) / math.pi + 0.5
        want_u.append(u)
        want_s.append(s)
    lif = LIF(1, beta=0.5, threshold=1.0, reset="subtract" if subtract else "zero", spiking=False).double()
    spk, mem, _ = lif(torch.tensor(cur, dtype=torch.float64).view(4, 1, 1))
    assert torch.allclose(mem.flatten(), torch.tensor(want_u, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(spk.flatten(), torch.tensor(want_s, dtype=torch.float64), atol=1e-12)
    # the fused backward is exact for the rate neuron: against the plain autograd loop
    T, B, N = 11, 2, 4
    g = torch.Generator().manual_seed(2)
    c = torch.randn(T, B, N, dtype=torch.float64, generator=g).requires_grad_()
    o = torch.randn(T, B, N, dtype=torch.float64, generator=g).requires_grad_()
    bl = torch.randn(N, dtype=torch.float64, generator=g).requires_grad_()
    th = (torch.rand(N, dtype=torch.float64, generator=g) + 0.3).requires_grad_()
    u0 = torch.randn(B, N, dtype=torch.float64, generator=g).requires_grad_()
    s0 = torch.rand(B, N, dtype=torch.float64, generator=g)
    w = torch.randn(2, T, B, N, dtype=torch.float64, generator=g)
    ins = [c, o, bl, th, u0]
    sf, uf = LIFScan.apply(c, o, torch.sigmoid(bl), th, u0, s0, subtract, "atan", 2.0, False)
    gf = torch.autograd.grad((sf * w[0]).sum() + (uf * w[1]).sum(), ins)
    sr, ur = lif_reference(c, o, torch.sigmoid(bl), th, u0, s0, subtract, "atan", 2.0, spiking=False)
    gr = torch.autograd.grad((sr * w[0]).sum() + (ur * w[1]).sum(), ins)
    assert torch.allclose(sf, sr, atol=1e-12) and torch.allclose(uf, ur, atol=1e-12)
    for a, b in zip(gf, gr):
        assert torch.allclose(a, b, atol=1e-10)


def test_no_normaliser_equals_hand_computed_recurrence():
    # one astrocyte, d_key 1, one neuron: o_t = sum_{tau <= t} lambda^(t - tau) v_tau k_tau q_t
    astro = Astrocytes(2, 1, n_astrocytes=1, d_key=1, tau_min=4.0, tau_max=4.0, key_shift=False, normalise=False)
    astro = astro.double()
    with torch.no_grad():
        astro.W_k.weight.copy_(torch.tensor([[1.0, 0.0]]))
        astro.W_q.weight.copy_(torch.tensor([[0.0, 1.0]]))
        astro.W_v.weight.copy_(torch.tensor([[1.0, 1.0]]))
    x = torch.tensor([[[0.5, -1.0], [2.0, 0.0], [-0.3, 0.7]]], dtype=torch.float64)
    lam = math.exp(-1 / 4)
    phi = lambda z: z + 1 if z > 0 else math.exp(z)  # noqa: E731  (elu + 1)
    H, want = 0.0, []
    for a, b in x[0].tolist():
        H = lam * H + (a + b) * phi(a)  # v_t k_t
        want.append(H * phi(b))  # H_t q_t, no division
    o, st = astro(x)
    assert torch.allclose(o.flatten(), torch.tensor(want, dtype=torch.float64), atol=1e-12)
    assert tuple(st.S.shape) == (1, 1, 1, 1)  # no z column
    # with the normaliser the same case divides by q_t . z_t
    norm = Astrocytes(2, 1, n_astrocytes=1, d_key=1, tau_min=4.0, tau_max=4.0, key_shift=False).double()
    norm.load_state_dict(astro.state_dict())
    z, want_n = 0.0, []
    for (a, b), h in zip(x[0].tolist(), want):
        z = lam * z + phi(a)
        want_n.append(h / (phi(b) * z + norm.eps))
    assert torch.allclose(norm(x)[0].flatten(), torch.tensor(want_n, dtype=torch.float64), atol=1e-12)


def test_couplings_are_what_they_say():
    torch.manual_seed(1)
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    mem = AMSU(6, 8, n_astrocytes=2, d_key=3, coupling="membrane", threshold=0.3).double()
    after = AMSU(6, 8, n_astrocytes=2, d_key=3, coupling="after_spike", threshold=0.3).double()
    none = AMSU(6, 8, n_astrocytes=2, d_key=3, coupling="none").double()
    after.load_state_dict(mem.state_dict())
    none.load_state_dict({k: v for k, v in mem.state_dict().items() if k.startswith("astro.")})
    o, _ = mem.astro(x)
    lif_alone, _, _ = mem.lif(mem.W_I(x).transpose(0, 1))
    y_after, _, _ = after(x)
    assert torch.allclose(y_after, lif_alone.transpose(0, 1) + o)  # spikes fire without o, then o is added
    y_none, u_none, st = none(x)
    assert torch.allclose(y_none, o) and u_none is None and st.lif is None  # the memory alone
    s_mem, _, _ = mem(x)
    assert not torch.equal(s_mem, lif_alone.transpose(0, 1))  # o does move the membrane's spikes
    # the recurrent form of each coupling equals its parallel form
    for layer, y in ((after, y_after), (none, y_none)):
        st = layer.reset(2)
        for t in range(9):
            y_t, _, st = layer.step(x[:, t], st)
            assert torch.allclose(y_t, y[:, t], atol=1e-12)


def tiny(**kw):
    return AstroConfig(vocab_size=12, n_layer=2, d_model=16, n_neurons=16, n_astrocytes=4, d_key=4, **kw)


def test_linear_attention_state_size_equals_the_astrocytes():
    a, la = AstroSNN(tiny()), AstroSNN(tiny(**VARIANTS["linear_attn"]))
    for sa, sl in zip(a.init_state(3), la.init_state(3)):
        assert sa["astro_S"].shape == sl["astro_S"].shape  # the same [H | z] per layer
        assert "amsu_u" in sa and "amsu_u" not in sl  # and no neurons in the mixer
    assert a.state_bytes(1) - la.state_bytes(1) == 2 * 2 * 16 * 4  # exactly the AM-SU (u, s) of 2 layers


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "astrosnn"])
def test_every_switch_changes_the_output_and_steps_like_forward(variant):
    torch.manual_seed(0)
    base = AstroSNN(tiny()).double()
    m = AstroSNN(tiny(**VARIANTS[variant])).double()
    m.load_state_dict(base.state_dict(), strict=False)  # the same weights wherever both have them
    idx = torch.randint(0, 12, (2, 15))
    lb, _ = base(idx)
    lm, _ = m(idx)
    assert not torch.allclose(lb, lm, atol=1e-6)
    st = m.init_state(2)
    for t in range(15):
        lt, st = m.step(idx[:, t], st)
        assert torch.allclose(lt, lm[:, t], atol=1e-8)
    cfg = AstroConfig.__new__(AstroConfig)
    cfg.__dict__.update(m.config.__dict__)
    assert AstroSNN(cfg).config == m.config


def test_switch_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="coupling='sideways'"):
        AstroSNN(tiny(coupling="sideways"))
    with pytest.raises(ValueError, match="needs astrocyte=true"):
        AstroSNN(tiny(astrocyte=False, coupling="none"))
    with pytest.raises(ValueError, match="rate form"):
        AstroSNN(tiny(spiking=False, surrogate="fast_sigmoid"))
    with pytest.raises(ValueError, match="normalise must be true or false"):
        AstroSNN(tiny(normalise="no"))


def test_rate_variant_has_no_binary_spikes_and_gradients_flow():
    m = AstroSNN(tiny(spiking=False))
    idx = torch.randint(0, 12, (2, 10))
    _, loss = m(idx, idx)
    loss.backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if "astro" in n)
    r = m.firing_rates()[0]["amsu"]
    assert 0 < r < 1
    x = m.wte(idx)
    s, _, _ = m.blocks[0].amsu(m.blocks[0].ln1(x))
    assert ((s > 0) & (s < 1)).float().mean() > 0.9  # rates in (0, 1), not spikes in {0, 1}


def test_sigmoid_input_current_feeds_sigmoid_of_the_projection():
    torch.manual_seed(2)
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    lin = AMSU(5, 4, n_astrocytes=2, d_key=3).double()
    sig = AMSU(5, 4, n_astrocytes=2, d_key=3, input_current="sigmoid").double()
    sig.load_state_dict(lin.state_dict())
    o, _ = sig.astro(x)
    want, _, _ = sig.lif(torch.sigmoid(x @ sig.W_I.weight.T).transpose(0, 1), o.transpose(0, 1))
    got, _, _ = sig(x)
    assert torch.equal(got, want.transpose(0, 1))
    with pytest.raises(ValueError, match="input_current"):
        AMSU(5, 4, input_current="relu")
