"""HMM inference on hard cases against brute force and against independent float64 references.

Hard cases: forbidden transitions (A_ij = 0), likelihood gaps of 1e3-1e5 nats between states (where a
state's only allowed predecessors lie far below the best state), and padded batches of trials of very
unequal lengths. Every method ("numba", "sequential", "scan") is checked against the truth and against
the others (float64, 1e-9).
"""

import functools
import itertools

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from engramlab.hmmglm.inference import hmm_filter, hmm_log_likelihood, hmm_posterior_mode, hmm_smoother
from engramlab.hmmglm.models import HMMGLM

METHODS = ("numba", "sequential", "scan")
TOL = 1e-9


@pytest.fixture(autouse=True)
def _one_thread():  # small tensors: one thread avoids thread-pool stalls on a busy machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


# ---- independent references -----------------------------------------------------------------------------


def _enumerate(ll, lpi, lA):
    """All S^T paths of one trial: (log Z, gamma (T, S), sum_t xi_t (S, S), best log-prob, joint(z))."""
    T, S = ll.shape
    paths = np.array(list(itertools.product(range(S), repeat=T)))  # (S^T, T)
    with np.errstate(invalid="ignore"):
        lp = lpi[paths[:, 0]] + ll[np.arange(T), paths].sum(1)
        if T > 1:
            lp = lp + lA[paths[:, :-1], paths[:, 1:]].sum(1)
    logZ = logsumexp(lp)
    w = np.exp(lp - logZ)
    gamma = np.zeros((T, S))
    xi = np.zeros((S, S))
    for t in range(T):
        np.add.at(gamma[t], paths[:, t], w)
        if t:
            np.add.at(xi, (paths[:, t - 1], paths[:, t]), w)

    def joint(z):
        z = np.asarray(z)
        return lpi[z[0]] + ll[np.arange(T), z].sum() + (lA[z[:-1], z[1:]].sum() if T > 1 else 0.0)

    return logZ, gamma, xi, lp.max(), joint


def _textbook(ll, lpi, lA):
    """Forward-backward of one trial in log space with scipy's logsumexp, each step normalised
    (Rabiner 1989's scaling, in logs), so its round-off does not grow with |log p|."""
    T, S = ll.shape
    a = np.empty((T, S))
    b = np.zeros((T, S))
    c = np.empty(T)
    x = lpi + ll[0]
    for t in range(T):
        if t:
            x = ll[t] + logsumexp(a[t - 1][:, None] + lA, axis=0)
        c[t] = logsumexp(x)
        a[t] = x - c[t]  # log p(z_t | x_{1:t})
    for t in range(T - 2, -1, -1):
        y = logsumexp(lA + (ll[t + 1] + b[t + 1])[None, :], axis=1)
        b[t] = y - logsumexp(y)
    g = a + b
    gamma = np.exp(g - logsumexp(g, axis=1, keepdims=True))
    lx = a[:-1, :, None] + lA + (ll[1:] + b[1:])[:, None, :]
    xi = np.exp(lx - logsumexp(lx, axis=(1, 2), keepdims=True)).sum(0)
    return c.sum(), gamma, xi


def _textbook_viterbi(ll, lpi, lA):
    T, S = ll.shape
    om = lpi + ll[0]
    psi = np.zeros((T, S), dtype=int)
    for t in range(1, T):
        c = om[:, None] + lA
        psi[t] = c.argmax(0)
        om = c.max(0) + ll[t]
    z = [int(om.argmax())]
    for t in range(T - 1, 0, -1):
        z.append(int(psi[t, z[-1]]))
    return np.array(z[::-1]), om.max()


# ---- cases ------------------------------------------------------------------------------------------------


def _sparse_A(rng, S, p_zero=0.4):
    A = rng.random((S, S)) * (rng.random((S, S)) > p_zero)
    A[np.arange(S), rng.integers(0, S, S)] += 0.5  # every row keeps a way out
    return A / A.sum(1, keepdims=True)


def _case(name, seed=0):
    """(ll (T, S), log pi, log A) for a named hard case."""
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore"):
        if name == "issue":  # the reported one: identity A, 800-nat gap, two equally likely paths
            return np.array([[0.0, -800.0], [-800.0, 0.0]]), np.log([0.5, 0.5]), np.log(np.eye(2))
        if name.startswith("mirror"):  # same with gap G over 6 bins: gamma = 1/2 everywhere
            G = float(name.split("_")[1])
            ll = np.tile([[0.0, -G], [-G, 0.0]], (3, 1))
            return ll, np.log([0.5, 0.5]), np.log(np.eye(2))
        if name == "zero_transitions":
            S, T = 4, 7
            return 2 * rng.normal(size=(T, S)), np.log(rng.dirichlet(np.ones(S))), np.log(_sparse_A(rng, S))
        if name == "left_to_right":  # upper-triangular A, pi on state 0 only
            S, T = 3, 8
            A = np.triu(rng.random((S, S)) + 0.1)
            A /= A.sum(1, keepdims=True)
            return 3 * rng.normal(size=(T, S)), np.log([1.0, 0.0, 0.0]), np.log(A)
        if name.startswith("gap"):  # gaps of G nats between states with forbidden transitions
            G = float(name.split("_")[1])
            S, T = 3, 7
            u = rng.integers(0, 3, size=(T, S)).astype(float)  # 0, 1, 2 gaps per entry
            ll = -G * u + rng.normal(size=(T, S))
            pi = np.log(rng.dirichlet(np.ones(S)))
            return ll, pi, np.log(_sparse_A(rng, S, p_zero=0.5))
    raise KeyError(name)


CASES = [
    "issue",
    "mirror_460",
    "mirror_700",
    "mirror_1000",
    "mirror_100000",
    "zero_transitions",
    "left_to_right",
    "gap_300",
    "gap_700",
    "gap_1000",
    "gap_10000",
    "gap_100000",
]  # 460, 700: between 1e-280 and underflow


def _close(a, b, tol=TOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    assert np.allclose(a, b, atol=tol, rtol=0), f"max |diff| {np.nanmax(np.abs(a - b))}"


def _close_logz(a, b):  # log Z grows with the gaps: compare relative to its size (1e-9 absolute when |Z| ~ 1)
    a, b = float(a), float(b)
    assert abs(a - b) <= TOL * max(1.0, abs(b)), (a, b)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("method", METHODS)
def test_smoother_and_viterbi_match_enumeration(name, method):
    ll, lpi, lA = _case(name)
    logZ, gamma, xi, best, joint = _enumerate(ll, lpi, lA)
    assert np.isfinite(logZ)
    res = hmm_smoother(_t(ll[None]), _t(lpi), _t(lA), method=method)
    _close_logz(res.log_normalizer[0], logZ)
    _close(res.smoothed_probs[0], gamma)
    _close(res.trans_counts[0], xi)
    _close_logz(hmm_log_likelihood(_t(ll[None]), _t(lpi), _t(lA), method=method)[0], logZ)
    vit = hmm_posterior_mode(_t(ll[None]), _t(lpi), _t(lA), method=method)
    _close_logz(vit.log_prob[0], best)
    _close_logz(joint(vit.states[0].numpy()), best)  # the returned path attains the maximum (ties allowed)


def test_issue_repro_values():
    ll, lpi, lA = _case("issue")
    for method in METHODS:
        res = hmm_smoother(_t(ll[None]), _t(lpi), _t(lA), method=method)
        assert abs(float(res.log_normalizer[0]) + 800.0) < 1e-12
        assert torch.allclose(res.smoothed_probs, torch.full((1, 2, 2), 0.5, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_methods_agree_on_every_case(name):
    ll, lpi, lA = _case(name, seed=3)
    res = {m: hmm_smoother(_t(ll[None]), _t(lpi), _t(lA), method=m) for m in METHODS}
    for m in METHODS[1:]:
        _close_logz(res[m].log_normalizer[0], res["numba"].log_normalizer[0])
        _close(res[m].smoothed_probs, res["numba"].smoothed_probs)
        _close(res[m].trans_counts, res["numba"].trans_counts)
        la, lb = res[m].log_alpha.numpy(), res["numba"].log_alpha.numpy()
        assert np.array_equal(np.isinf(la), np.isinf(lb))
        fin = np.isfinite(lb)
        assert np.allclose(la[fin], lb[fin], rtol=1e-12, atol=TOL)


# ---- padded batches -------------------------------------------------------------------------------------

LENGTHS = (2, 5, 300, 2000)


def _padded_batch(kind, pad_value):
    rng = np.random.default_rng(11)
    S, T = 3, max(LENGTHS)
    if kind == "plain":
        A = rng.dirichlet(np.ones(S) * 2, size=S)
        ll = 2 * rng.normal(size=(len(LENGTHS), T, S))
    else:  # forbidden transitions and 1e3-nat gaps
        A = _sparse_A(rng, S, p_zero=0.5)
        ll = -1e3 * rng.integers(0, 2, size=(len(LENGTHS), T, S)) + rng.normal(size=(len(LENGTHS), T, S))
    for b, L in enumerate(LENGTHS):
        ll[b, L:] = pad_value  # must never be read
    with np.errstate(divide="ignore"):
        return ll, np.log(rng.dirichlet(np.ones(S))), np.log(A)


@functools.cache
def _reference(kind, b):
    """Brute force (short trials) or the textbook reference + its Viterbi path (long ones), computed once."""
    ll, lpi, lA = _padded_batch(kind, pad_value=np.nan)
    x = ll[b, : LENGTHS[b]]
    if LENGTHS[b] <= 5:
        return _enumerate(x, lpi, lA)
    return (*_textbook(x, lpi, lA), *_textbook_viterbi(x, lpi, lA))


@pytest.mark.parametrize("kind", ["plain", "hard"])
@pytest.mark.parametrize("method", METHODS)
def test_padded_batch_of_unequal_lengths(kind, method):
    ll, lpi, lA = _padded_batch(kind, pad_value=np.nan)
    L = np.array(LENGTHS)
    res = hmm_smoother(_t(ll), _t(lpi), _t(lA), method=method, lengths=L)
    vit = hmm_posterior_mode(_t(ll), _t(lpi), _t(lA), method=method, lengths=L)
    logz = hmm_log_likelihood(_t(ll), _t(lpi), _t(lA), method=method, lengths=L)
    _close(logz, res.log_normalizer)
    for b, n in enumerate(LENGTHS):
        x = ll[b, :n]
        g, vb = res.smoothed_probs[b], vit.states[b]
        assert (g[n:] == 0).all() and (vb[n:] == -1).all() and np.isneginf(res.log_alpha[b, n:].numpy()).all()
        if n <= 5:  # brute force
            logZ, gamma, xi, best, joint = _reference(kind, b)
            _close_logz(vit.log_prob[b], best)
            _close_logz(joint(vb[:n].numpy()), best)
        else:  # independent reference, and the same trial alone
            logZ, gamma, xi, z, best = _reference(kind, b)
            assert np.array_equal(vb[:n].numpy(), z)
            _close_logz(vit.log_prob[b], best)
            alone = hmm_smoother(_t(x[None]), _t(lpi), _t(lA), method=method)
            _close_logz(res.log_normalizer[b], alone.log_normalizer[0])
            _close(g[:n], alone.smoothed_probs[0])
            _close(res.trans_counts[b], alone.trans_counts[0])
            assert torch.equal(vb[:n], hmm_posterior_mode(_t(x[None]), _t(lpi), _t(lA), method=method).states[0])
        _close_logz(res.log_normalizer[b], logZ)
        _close(g[:n], gamma)
        _close(res.trans_counts[b], xi)


@pytest.mark.parametrize("kind", ["plain", "hard"])
def test_padded_batch_methods_agree_and_mask_equals_lengths(kind):
    ll, lpi, lA = _padded_batch(kind, pad_value=1e6)  # a huge padding value would dominate if it were read
    L = np.array(LENGTHS)
    mask = np.arange(ll.shape[1]) < L[:, None]
    ref = hmm_smoother(_t(ll), _t(lpi), _t(lA), method="numba", lengths=L)
    ref_v = hmm_posterior_mode(_t(ll), _t(lpi), _t(lA), method="numba", lengths=L)
    for m in METHODS:
        for kw in ({"lengths": L}, {"mask": torch.as_tensor(mask)}):
            r = hmm_smoother(_t(ll), _t(lpi), _t(lA), method=m, **kw)
            for b in range(len(L)):
                _close_logz(r.log_normalizer[b], ref.log_normalizer[b])
            _close(r.smoothed_probs, ref.smoothed_probs)
            _close(r.trans_counts, ref.trans_counts)
            v = hmm_posterior_mode(_t(ll), _t(lpi), _t(lA), method=m, **kw)
            assert torch.equal(v.states, ref_v.states)
            _close(v.log_prob, ref_v.log_prob, tol=TOL * 1e3)  # |log p| ~ 1e6 in the hard case


def test_issue_viterbi_repro_padded():
    lA = torch.log(torch.tensor([[0.99, 0.01], [0.4, 0.6]], dtype=torch.float64))
    lpi = torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64))
    real = torch.tensor([[[0.0, 0.3]]], dtype=torch.float64)
    padded = torch.cat([real, torch.zeros(1, 10, 2, dtype=torch.float64)], 1)
    for m in METHODS:
        assert hmm_posterior_mode(real, lpi, lA, method=m).states.tolist() == [[1]]
        out = hmm_posterior_mode(padded, lpi, lA, method=m, lengths=[1]).states
        assert out.tolist() == [[1] + [-1] * 10]


def test_model_decodes_unequal_trials_as_if_alone():
    """A model given trials of 7 and 60 bins in one call gives each trial's own results."""
    g = torch.Generator().manual_seed(0)
    m = HMMGLM(3, 4).double()
    with torch.no_grad():
        m.weight.copy_(torch.randn(3, 4, 4, generator=g, dtype=torch.float64))
        m.log_transition.copy_(
            torch.log(torch.tensor([[0.9, 0.05, 0.05], [0.3, 0.4, 0.3], [0.02, 0.02, 0.96]], dtype=torch.float64))
        )
    x, _ = m.sample(60, n_trials=2, seed=3)
    trials = [x[0, :7].numpy(), x[1].numpy()]
    both = m.most_likely_states(trials)
    post = m.posterior(trials)
    ll = m.log_likelihood(trials, per_trial=True)
    for i, tr in enumerate(trials):
        n = len(tr)
        assert torch.equal(both[i, :n], m.most_likely_states(tr)[0]) and (both[i, n:] == -1).all()
        assert torch.allclose(post[i, :n], m.posterior(tr)[0], atol=1e-6)
        assert float(ll[i]) == pytest.approx(float(m.log_likelihood(tr, per_trial=True)[0]), abs=1e-9)


# ---- impossible trials and bad inputs --------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_impossible_trial_is_reported_not_hidden(method):
    with np.errstate(divide="ignore"):
        ll = np.log([[[1.0, 0.0], [0.0, 1.0]]])  # needs 0 -> 1, which A forbids
        lA, lpi = np.log(np.eye(2)), np.log([0.5, 0.5])
    res = hmm_smoother(_t(ll), _t(lpi), _t(lA), method=method)
    assert np.isneginf(float(res.log_normalizer[0]))
    vit = hmm_posterior_mode(_t(ll), _t(lpi), _t(lA), method=method)
    assert np.isneginf(float(vit.log_prob[0])) and (vit.states == -1).all()


def test_bad_inputs_name_the_problem():
    ll, lpi, lA = _t(np.zeros((2, 4, 3))), _t(np.log(np.ones(3) / 3)), _t(np.log(np.ones((3, 3)) / 3))
    with pytest.raises(ValueError, match="lengths must lie in 1..4"):
        hmm_smoother(ll, lpi, lA, lengths=[0, 4])
    with pytest.raises(ValueError, match="2 integers"):
        hmm_smoother(ll, lpi, lA, lengths=[4])
    with pytest.raises(ValueError, match="mask row 1"):
        hmm_smoother(ll, lpi, lA, mask=torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]], dtype=torch.bool))
    with pytest.raises(ValueError, match="either mask or lengths"):
        hmm_posterior_mode(ll, lpi, lA, lengths=[4, 4], mask=torch.ones(2, 4, dtype=torch.bool))
    bad = ll.clone()
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="trial 1, bin 2"):
        hmm_filter(bad, lpi, lA)
    hmm_filter(bad, lpi, lA, lengths=[4, 2])  # NaN only in padding: fine
    with pytest.raises(ValueError, match="log_A contains NaN"):
        hmm_smoother(ll, lpi, lA * float("nan"))
    with pytest.raises(ValueError, match="method must be one of"):
        hmm_smoother(ll, lpi, lA, method="fast")
