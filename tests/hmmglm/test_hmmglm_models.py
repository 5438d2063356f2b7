"""Models: emissions and marginal likelihood against hand/brute-force computation, planted recovery,
persistence, and every bad input the issue lists."""

import itertools
import math

import numpy as np
import pytest
import torch

from engramlab.hmmglm import glm, metrics
from engramlab.hmmglm.basis import convolve_history, exp_basis, raised_cosine_basis
from engramlab.hmmglm.models import (
    GLM,
    HMMGLM,
    FitConfig,
    GaussianHMMGLM,
    HMMGLMConfig,
    OneHotHMMGLM,
    load,
    make_model,
)
from engramlab.hmmglm.simulate import simulate_demo


@pytest.fixture(autouse=True)
def _one_thread():  # tiny tensors: one thread avoids thread-pool stalls on a busy machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_exp_basis_is_the_demo_basis():
    b = exp_basis(5)
    assert torch.allclose(b, torch.tensor([0.6364, 0.2341, 0.0861, 0.0317, 0.0117], dtype=torch.float64), atol=1e-4)
    assert abs(float(b.sum()) - 1.0) < 1e-12
    rc = raised_cosine_basis(3, 10)
    assert rc.shape == (3, 10) and torch.allclose(rc.sum(1), torch.ones(3, dtype=torch.float64))


def test_convolve_history_is_causal_and_matches_a_loop():
    x = torch.randint(0, 3, (2, 9, 3)).double()
    b = exp_basis(4)
    c = convolve_history(x, b)
    ref = torch.zeros_like(x)
    for t in range(9):
        for k in range(1, 5):
            if t - k >= 0:
                ref[:, t] += b[k - 1] * x[:, t - k]
    assert torch.allclose(c, ref)


@pytest.mark.parametrize("link", glm.LINKS)
@pytest.mark.parametrize("obs", glm.OBSERVATIONS)
@pytest.mark.parametrize("constant", [True, False])
def test_fast_state_log_likelihood_equals_the_plain_formula(link, obs, constant):
    g = torch.Generator().manual_seed(2)
    S, N = 3, 4
    W = 0.4 * torch.randn(S, N, N, generator=g, dtype=torch.float64)
    b = 0.2 * torch.randn(S, N, generator=g, dtype=torch.float64) - 1
    x = torch.poisson(torch.full((2, 25, N), 0.6, dtype=torch.float64), generator=g)
    if obs == "bernoulli":
        x = x.clamp(max=1)
    conv = torch.rand(2, 25, N, generator=g, dtype=torch.float64)
    with torch.no_grad():
        fast = glm.state_log_likelihood_fast(x, conv, W, b, link, obs, constant)
    ref = glm.state_log_likelihood(x, conv, W, b, link, obs, constant)
    assert fast.shape == (2, 25, S) and torch.allclose(fast, ref, atol=1e-10)


@pytest.mark.parametrize("link", glm.LINKS)
@pytest.mark.parametrize("obs", glm.OBSERVATIONS)
def test_closed_form_gradients_match_autograd(link, obs):
    g = torch.Generator().manual_seed(1)
    S, N = 3, 4
    W = (0.3 * torch.randn(S, N, N, generator=g, dtype=torch.float64)).requires_grad_()
    b = (0.1 * torch.randn(N, generator=g, dtype=torch.float64) - 1).requires_grad_()
    x = torch.poisson(torch.full((2, 30, N), 0.4, dtype=torch.float64), generator=g)
    if obs == "bernoulli":
        x = x.clamp(max=1)
    conv = torch.rand(2, 30, N, generator=g, dtype=torch.float64)
    gam = torch.softmax(torch.randn(2, 30, S, generator=g, dtype=torch.float64), -1)
    q = glm.expected_log_likelihood(W, b, x, conv, gam, link, obs, chunk=7)
    q_ref = (gam * glm.state_log_likelihood(x, conv, W, b.expand(S, N), link, obs, constant=False)).sum()
    assert torch.allclose(q, q_ref, atol=1e-10)
    for a, r in zip(torch.autograd.grad(q, (W, b)), torch.autograd.grad(q_ref, (W, b))):
        assert torch.allclose(a, r, atol=1e-9)


def test_marginal_likelihood_matches_brute_force_on_tiny_model():
    S, N, T, K = 2, 2, 5, 3
    m = HMMGLM(S, N, basis=exp_basis(K)).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[[0.5, -1.0], [0.3, 0.0]], [[-0.7, 0.2], [1.2, 0.4]]]))
        m.bias.copy_(torch.tensor([-0.3, 0.2]))
        m.log_transition.copy_(torch.tensor([[0.9, 0.1], [0.25, 0.75]], dtype=torch.float64).log())
    x = np.array([[1, 0], [0, 2], [1, 1], [0, 0], [3, 1]], dtype=float)
    phi = exp_basis(K).numpy()
    A = np.array([[0.9, 0.1], [0.25, 0.75]])
    Wn, bn = m.weight.detach().numpy(), m.bias.detach().numpy()

    def emis(t, s):  # independent hand computation of log p(x_t | z_t = s, history)
        c = sum(phi[k - 1] * x[t - k] for k in range(1, K + 1) if t - k >= 0) if t else np.zeros(N)
        f = 1 / (1 + np.exp(-(bn + Wn[s] @ c)))
        return sum(x[t, n] * math.log(f[n]) - f[n] - math.lgamma(x[t, n] + 1) for n in range(N))

    total = []
    for z in itertools.product(range(S), repeat=T):
        lp = math.log(0.5) + sum(math.log(A[z[t - 1], z[t]]) for t in range(1, T))
        total.append(lp + sum(emis(t, z[t]) for t in range(T)))
    ref = float(np.logaddexp.reduce(total))
    assert abs(m.log_likelihood(x[None]) - ref) < 1e-9

    def joint(z):
        return sum(math.log(A[z[t - 1], z[t]]) for t in range(1, T)) + sum(emis(t, z[t]) for t in range(T))

    best = max(itertools.product(range(S), repeat=T), key=joint)
    assert m.most_likely_states(x[None])[0].tolist() == list(best)


def test_planted_hmmglm_is_recovered():
    g = torch.Generator().manual_seed(0)
    S, N = 2, 6
    true = HMMGLM(S, N)
    W = 1.5 * torch.sign(torch.randn(S, N, N, generator=g)) * (torch.rand(S, N, N, generator=g) < 0.35)
    with torch.no_grad():
        true.weight.copy_(W)
        true.bias.fill_(-0.5)
        true.log_transition.copy_(torch.tensor([[0.98, 0.02], [0.02, 0.98]], dtype=torch.float64).log())
    x, z = true.sample(400, n_trials=12, seed=1)
    model = HMMGLM(S, N).fit(x[:8], config=FitConfig(n_epochs=10, m_steps=10, lr=0.1), progress=False)
    vit = model.most_likely_states(x[8:])
    perm = metrics.match_states(z[8:], vit, S)
    assert metrics.state_accuracy(z[8:], vit, perm) > 0.9
    model.permute(perm)
    assert metrics.weight_error(W, model.weights) < 0.15 * float((W**2).mean())  # zero model: 1.0 x; the MLE ~0.12
    assert metrics.type_accuracy(torch.sign(W).long(), model.connection_types()) > 0.8
    assert model.log_likelihood(x[8:]) > GLM(N).fit(x[:8], n_epochs=5, progress=False).log_likelihood(x[8:])


def _planted_onehot(S=2, N=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    types = (torch.sign(torch.randn(S, N, N, generator=g)) * (torch.rand(S, N, N, generator=g) < 0.35)).long()
    true = OneHotHMMGLM(S, N)
    with torch.no_grad():
        true.type_logits.copy_(10.0 * torch.nn.functional.one_hot(types + 1, 3))
        true.strength_raw.fill_(math.log(math.expm1(1.5)))
        true.bias.fill_(-0.5)
        true.log_transition.copy_(torch.tensor([[0.98, 0.02], [0.02, 0.98]], dtype=torch.float64).log())
    return true, types


def test_onehot_recovers_planted_types_and_states():
    true, types = _planted_onehot()
    x, z = true.sample(400, n_trials=12, seed=2)
    m = OneHotHMMGLM(2, 6).fit(x[:8], config=FitConfig(n_epochs=12, m_steps=10), progress=False)
    vit = m.most_likely_states(x[8:])
    perm = metrics.match_states(z[8:], vit, 2)
    assert metrics.state_accuracy(z[8:], vit, perm) > 0.9
    m.permute(perm)
    majority = metrics.type_accuracy(types, torch.zeros_like(types))
    acc = metrics.type_accuracy(types, m.connection_types())
    assert acc > majority + 0.05  # beats "no connection anywhere" (small data: 3,200 bins)
    assert set(m.connection_types().unique().tolist()) <= {-1, 0, 1}
    assert m.prior_connection_types().shape == (6, 6)


def test_demo_simulator_shapes_and_types():
    data = simulate_demo(n_states=3, n_neurons=5, n_time_bins=50, n_trials=4, n_train=3, seed=1)
    assert data.spikes.shape == (4, 50, 5) and data.states.shape == (4, 50)
    assert torch.equal(data.weights != 0, data.types != 0)
    assert torch.equal(torch.sign(data.weights).long(), data.types)
    assert (data.spikes == data.spikes.round()).all() and (data.spikes >= 0).all()
    assert data.train.shape[0] == 3 and data.test.shape[0] == 1


@pytest.mark.parametrize("kind", ["glm", "hmmglm", "gaussian", "onehot"])
def test_save_load_round_trip_and_permute(tmp_path, kind):
    S = 1 if kind == "glm" else 3
    m = make_model(kind, S, 4, link="softplus")
    x, _ = m.sample(40, n_trials=2, seed=0)
    m.fit(x, n_epochs=1, m_steps=2, progress=False)
    m.save(tmp_path / "m")
    m2 = load(tmp_path / "m")
    assert type(m2) is type(m) and m2.config == m.config
    assert m2.log_likelihood(x) == pytest.approx(m.log_likelihood(x))
    assert HMMGLMConfig.from_json(m.config.to_json()) == m.config
    if S > 1:
        ll = m.log_likelihood(x)
        w = m.weights
        m.permute([2, 0, 1])
        assert torch.allclose(m.weights, w[[2, 0, 1]])
        assert m.log_likelihood(x) == pytest.approx(ll, rel=1e-6)  # pi_0 uniform: relabelling is exact
        assert m.posterior(x).shape == (2, 40, 3)


def test_gaussian_prior_mean_is_state_average():
    m = GaussianHMMGLM(3, 4)
    m._before_step()
    assert torch.allclose(m.prior_mean, m.weight.detach().mean(0))
    ref = torch.distributions.Normal(m.weight.detach().mean(0), 1 / 3).log_prob(m.weight.detach()).sum()
    assert torch.allclose(m.log_prior(), ref, atol=1e-4)


# ---- bad inputs: one clear error each, raised before any fitting -------------------------------------


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda x: -x, "negative"),
        (lambda x: x + 0.5, "non-integer"),
        (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 3, np.nan, x), "NaN"),
        (lambda x: x[..., :3], "neurons"),
        (lambda x: x[:, :3], "fewer than the basis window"),
    ],
)
def test_bad_poisson_inputs(bad, match):
    m = HMMGLM(2, 4)
    x = np.ones((2, 20, 4))
    before = m.weight.detach().clone()
    with pytest.raises(ValueError, match=match):
        m.fit(bad(x), n_epochs=1, progress=False)
    assert torch.equal(m.weight, before) and m.history_ == []


def test_bernoulli_rejects_counts_above_one():
    m = OneHotHMMGLM(2, 3, observations="bernoulli")
    x = np.zeros((1, 10, 3))
    x[0, 4, 1] = 2
    with pytest.raises(ValueError, match="0/1"):
        m.fit(x, progress=False)


@pytest.mark.parametrize("n_states", [0, -1, 1.5, "2"])
def test_bad_state_count(n_states):
    with pytest.raises(ValueError, match="n_states"):
        HMMGLM(n_states, 3)


def test_bad_options():
    with pytest.raises(ValueError, match="link"):
        HMMGLM(2, 3, link="relu")
    with pytest.raises(ValueError, match="observations"):
        HMMGLM(2, 3, observations="gamma")
    with pytest.raises(TypeError, match="unknown options"):
        HMMGLM(2, 3).fit(np.zeros((1, 10, 3)), n_epoch=3)
    with pytest.raises(TypeError, match="numeric"):
        HMMGLM(2, 3).fit(np.array([["a"] * 3] * 10))
    with pytest.raises(FileNotFoundError):
        load("/nonexistent/model")


def test_hungarian_matching_equals_brute_force():
    rng = np.random.default_rng(0)
    S = 5
    true = rng.integers(0, S, 300)
    perm_true = rng.permutation(S)
    pred = perm_true[true].copy()
    noise = rng.random(300) < 0.3
    pred[noise] = rng.integers(0, S, noise.sum())
    best = max(itertools.permutations(range(S)), key=lambda p: (np.array(p)[true] == pred).sum())
    perm = metrics.match_states(true, pred, S)
    assert (perm[true] == pred).sum() == (np.array(best)[true] == pred).sum()


def test_cli_registers_subcommands():
    import argparse

    from engramlab.hmmglm.cli import add_subparser

    p = argparse.ArgumentParser()
    add_subparser(p.add_subparsers(dest="cmd"))
    a = p.parse_args(["hmmglm", "fit", "x.mat", "--model", "onehot", "--states", "4", "--bin", "0.05", "--out", "o"])
    assert a.states == "4" and a.bin == 0.05 and callable(a.func)
    a = p.parse_args(["hmmglm", "benchmark", "--out", "o"])
    assert callable(a.func)
