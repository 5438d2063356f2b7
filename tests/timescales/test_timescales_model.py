"""LeakyRNN against an independent step-by-step loop written like the official RNN_Stack / RNN_Mod."""

import json

import pytest
import torch
import torch.nn.functional as F

from engramlab.timescales.model import (
    GatedRNN,
    LeakyRNN,
    LeakyRNNConfig,
    recurrence_fused,
)


def official_style_loop(model, x, h0):
    """The official per-step update, time-major, one neuron vector at a time, float64.

    default: h = f((1 - 1/tau) h + (W h + b_R + W_I x + b_I) / tau);  mod: h = (1-1/tau) h + f(...) / tau.
    """
    W = model.recurrent.weight.clone()
    W = W - torch.diag(torch.diag(W))  # self-connections removed before use
    tau = torch.clamp(model.taus, min=1.0)
    h = h0
    for t in range(x.shape[1]):
        inp = x[:, t, :] @ model.input.weight.t() + model.input.bias
        rec = h @ W.t() + model.recurrent.bias
        if model.config.variant == "default":
            h = F.leaky_relu((1 - 1 / tau) * h + (rec + inp) / tau, 0.01)
        else:
            h = (1 - 1 / tau) * h + F.leaky_relu(rec + inp, 0.01) / tau
    heads = [h @ model.heads.weight[k].t() + model.heads.bias[k] for k in range(model.config.n_heads)]
    return torch.stack(heads)


# the TorchScript loop covers the default model only (the mod variant falls back to autograd)
@pytest.mark.parametrize(
    "variant,impl",
    [
        ("default", "fused"),
        ("default", "autograd"),
        ("default", "script"),
        ("mod", "fused"),
        ("mod", "autograd"),
    ],
)
@pytest.mark.parametrize("train_tau", [True, False])
def test_matches_step_by_step_reference(variant, train_tau, impl):
    torch.manual_seed(0)
    m = LeakyRNN(
        n_neurons=12,
        n_heads=3,
        variant=variant,
        train_tau=train_tau,
        tau=1.0 if train_tau else 2.5,
        impl=impl,
    ).double()
    with torch.no_grad():
        m.recurrent.weight.mul_(3.0)  # strong recurrence so both leaky-ReLU branches are visited
        if train_tau:
            m.taus[:3] = torch.tensor([0.5, 3.0, 7.0])  # one below the clamp at 1
    x = (torch.rand(4, 11, 1) < 0.5).double()
    h0 = m.init_state(4).double()
    ref = official_style_loop(m, x, h0)
    ref_grads = torch.autograd.grad(ref.pow(2).sum(), list(m.parameters()))
    out = m(x, h0=h0)
    grads = torch.autograd.grad(out.pow(2).sum(), list(m.parameters()))
    assert out.shape == (3, 4, 2)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    # TorchScript's optimised (post-profiling) backward graph evaluates the leaky-ReLU slope in float32,
    # so its float64 gradients agree to ~1e-9 relative only; the fused and autograd paths to ~1e-15.
    tol = 1e-7 if impl == "script" else 1e-10
    for (name, _), g, r in zip(m.named_parameters(), grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=tol, atol=tol, msg=name)


def test_fused_recurrence_gradcheck():
    torch.manual_seed(1)
    T, B, H = 6, 3, 5
    args = (
        torch.randn(T, B, H, dtype=torch.float64, requires_grad=True),
        torch.rand(B, H, dtype=torch.float64, requires_grad=True),
        (0.5 * torch.randn(H, H, dtype=torch.float64)).requires_grad_(),
        (0.2 + 0.8 * torch.rand(H, dtype=torch.float64)).requires_grad_(),
    )
    for variant, act in [("default", "leakyrelu"), ("mod", "leakyrelu"), ("mod", "tanh"), ("mod", "sigmoid")]:
        assert torch.autograd.gradcheck(lambda *a, v=variant, f=act: recurrence_fused(*a, v, f), args)


def test_fixed_tau_stays_fixed_and_self_connections_stay_zero():
    torch.manual_seed(0)
    m = LeakyRNN(n_neurons=10, n_heads=2, train_tau=False, tau=3.0)
    assert "taus" not in dict(m.named_parameters())  # a buffer, not a parameter
    opt = torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.1, nesterov=True)
    for _ in range(3):
        x = (torch.rand(8, 7, 1) < 0.5).float()
        loss = F.cross_entropy(m(x).reshape(-1, 2), torch.randint(0, 2, (16,)))
        opt.zero_grad()
        loss.backward()
        assert torch.all(torch.diag(m.recurrent.weight.grad) == 0)
        opt.step()
    assert torch.equal(m.taus, torch.tensor([3.0]))
    assert torch.all(torch.diag(m.recurrent.weight) == 0)
    # trainable taus do move, and are initialised in U[1, 2]
    m2 = LeakyRNN(n_neurons=200, n_heads=1)
    assert 1.0 <= m2.taus.min() and m2.taus.max() <= 2.0
    before = m2.taus.detach().clone()
    m2(torch.ones(2, 5, 1)).sum().backward()
    torch.optim.SGD(m2.parameters(), lr=0.1).step()
    assert not torch.equal(before, m2.taus.detach())


def test_head_selection_and_in_time():
    torch.manual_seed(0)
    m = LeakyRNN(n_neurons=8, n_heads=5)
    x = torch.ones(3, 6, 1)
    h0 = m.init_state(3)
    full = m(x, h0=h0)
    sel = m(x, heads=[4, 1], h0=h0)
    torch.testing.assert_close(sel, full[[4, 1]])
    seq = m(x, heads=[2], h0=h0, in_time=True)
    assert seq.shape == (1, 3, 6, 2)
    torch.testing.assert_close(seq[:, :, -1], full[[2]])
    with pytest.raises(ValueError, match="head indices"):
        m(x, heads=[5])


def test_gated_baselines_shapes():
    for cell in ("gru", "lstm"):
        m = GatedRNN(cell=cell, n_neurons=6, n_heads=3)
        assert m(torch.ones(2, 5, 1)).shape == (3, 2, 2)
        assert m(torch.ones(2, 5, 1), heads=[1]).shape == (1, 2, 2)


def test_config_roundtrip_and_errors():
    c = LeakyRNNConfig(n_neurons=7, n_heads=2, variant="mod", activation="tanh", train_tau=False, tau=2.0)
    assert LeakyRNNConfig.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ValueError, match="variant"):
        LeakyRNNConfig(variant="fancy")
    with pytest.raises(ValueError, match="tau"):
        LeakyRNNConfig(tau=0.5)
    with pytest.raises(ValueError, match="unknown LeakyRNNConfig key"):
        LeakyRNNConfig.from_dict({"n_neuron": 3})
    with pytest.raises(ValueError, match=r"shape \(B, T, 1\)"):
        LeakyRNN(n_neurons=4, n_heads=1)(torch.ones(2, 5))
