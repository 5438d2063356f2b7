"""The three forms of BDH-GPU (quadratic oracle, chunked, recurrent step) compute one function."""

import pytest
import torch

from engramlab.bdh.model import BDH, BDHConfig


def make(pos="rope", variant="gpu", chunk=4, layers=2, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = BDHConfig(
        n_layer=layers,
        n_embd=16,
        n_head=2,
        mlp_internal_dim_multiplier=4,
        dropout=0.0,
        pos=pos,
        variant=variant,
        chunk_size=chunk,
        alibi_min_half_life=2.0,
        alibi_max_half_life=8.0,
        **kw,
    )
    return BDH(cfg).double().eval()


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("pos", ["rope", "alibi", "rope+alibi"])
@pytest.mark.parametrize("variant", ["gpu", "prime"])
@pytest.mark.parametrize("T", [8, 11])  # a multiple of the chunk size (4) and not
def test_three_forms_agree(pos, variant, T):
    m = make(pos, variant)
    idx = torch.randint(0, 256, (2, T), generator=torch.Generator().manual_seed(T))
    quad = m._run(idx, impl="quadratic")[0]
    chunked = m(idx)[0]
    assert rel(chunked, quad) < 1e-6
    state = m.init_state(2)
    with torch.no_grad():
        steps = []
        for t in range(T):
            logits, state = m.step(idx[:, t], state)
            steps.append(logits)
    assert rel(torch.stack(steps, 1), quad) < 1e-6
    # the parallel prefill returns the same state as T steps
    last, pstate = m.prefill(idx)
    assert rel(last, quad[:, -1]) < 1e-6
    assert rel(pstate["rho"], state["rho"]) < 1e-6
    assert int(pstate["pos"]) == int(state["pos"]) == T


def test_quadratic_is_the_explicit_sum():
    """Independent check of Eq. 4: a*_t = sum_{tau<t} gamma^(t-tau) (k_t . k_tau) v_tau, by loops."""
    from engramlab.bdh.attention import attention_chunked, attention_quadratic

    g = torch.Generator().manual_seed(3)
    B, H, T, N, d = 2, 3, 7, 6, 4
    k = torch.rand(B, H, T, N, generator=g, dtype=torch.float64)
    v = torch.randn(B, 1, T, d, generator=g, dtype=torch.float64)
    lf = -torch.rand(B, H, T, generator=g, dtype=torch.float64)  # a per-token gate (BDH-GPU')
    ref = torch.zeros(B, H, T, d, dtype=torch.float64)
    for t in range(T):
        for tau in range(t):
            w = torch.exp(lf[:, :, tau + 1 : t + 1].sum(-1))  # prod_{s=tau+1}^{t} f_s
            ref[:, :, t] += (w * (k[:, :, t] * k[:, :, tau]).sum(-1))[..., None] * v[:, :, tau]
    torch.testing.assert_close(attention_quadratic(k, v, lf), ref, rtol=1e-12, atol=1e-12)
    for C in (1, 3, 7, 16):
        torch.testing.assert_close(attention_chunked(k, v, lf, None, C)[0], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pos", ["rope", "rope+alibi"])
def test_state_carry_across_windows_equals_one_pass(pos):
    m = make(pos, "prime")
    idx = torch.randint(0, 256, (3, 13), generator=torch.Generator().manual_seed(1))
    full = m._run(idx, impl="quadratic")[0]
    la, _, s = m.forward_with_state(idx[:, :5], None, None)
    lb, _, s = m.forward_with_state(idx[:, 5:], idx[:, 5:], s)
    assert rel(torch.cat([la, lb], 1), full) < 1e-6
    assert int(s["pos"]) == 13


def test_gradients_of_chunked_and_quadratic_agree():
    m = make("rope+alibi", "gpu", chunk=3)
    idx = torch.randint(0, 256, (2, 10), generator=torch.Generator().manual_seed(2))
    grads = []
    for impl in ("quadratic", "chunked"):
        m.zero_grad()
        logits = m._run(idx, impl=impl)[0]
        torch.nn.functional.cross_entropy(logits.reshape(-1, 256), idx.reshape(-1)).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in m.parameters()]))
    assert rel(grads[1], grads[0]) < 1e-6


def test_step_over_prompt_equals_forward_default_size():
    """Float32, the default chunk size, a prompt longer than one chunk."""
    torch.manual_seed(0)
    m = BDH(BDHConfig(n_layer=2, n_embd=32, n_head=4, mlp_internal_dim_multiplier=4, dropout=0.0, chunk_size=16)).eval()
    idx = torch.randint(0, 256, (1, 40))
    with torch.no_grad():
        full = m(idx)[0][0]
        state = m.init_state(1)
        out = []
        for t in range(40):
            lg, state = m.step(idx[:, t], state)
            out.append(lg[0])
    torch.testing.assert_close(torch.stack(out), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("T,C", [(12, 4), (11, 4), (5, 8), (9, 1)])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_chunked_gradients_with_state_in_and_out(T, C, with_state, fused):
    """Both undamped chunked forms (the hand-written autograd node, and the plain-op form used on
    GPUs and under torch.compile) against autograd of the dense sum.

    The dense reference: out = tril_-1(K K^T) V + K S0, S_T = S0 + K^T V; a loss that uses
    both outputs, so the gradient flows through the carried-in and the returned state.
    """
    from engramlab.bdh.attention import attention_chunked

    g = torch.Generator().manual_seed(T * 10 + C)
    X, Y, N, d = 3, 2, 6, 5
    k = torch.rand(X, Y, T, N, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, Y, T, d, generator=g, dtype=torch.float64, requires_grad=True)  # shared by X
    S0 = torch.randn(X, Y, N, d, generator=g, dtype=torch.float64, requires_grad=True) if with_state else None
    w_out = torch.randn(X, Y, T, d, generator=g, dtype=torch.float64)
    w_state = torch.randn(X, Y, N, d, generator=g, dtype=torch.float64)

    out, S = attention_chunked(k, v, None, S0, C, need_state=True, fused=fused)
    inputs = [k, v] + ([S0] if with_state else [])
    grads = torch.autograd.grad((out * w_out).sum() + (S * w_state).sum(), inputs)

    mask = torch.ones(T, T, dtype=torch.float64).tril(-1)
    vx = v.expand(X, Y, T, d)
    ref_out = ((k @ k.transpose(-1, -2)) * mask) @ vx
    ref_S = k.transpose(-1, -2) @ vx
    if with_state:
        ref_out = ref_out + k @ S0
        ref_S = ref_S + S0
    ref_grads = torch.autograd.grad((ref_out * w_out).sum() + (ref_S * w_state).sum(), inputs, retain_graph=True)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S, ref_S, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # without the final state the output and its gradients are the same
    out2, S2 = attention_chunked(k, v, None, S0, C, need_state=False, fused=fused)
    assert S2 is None
    grads2 = torch.autograd.grad((out2 * w_out).sum(), inputs)
    ref_grads2 = torch.autograd.grad((ref_out * w_out).sum(), inputs)
    for got, want in zip(grads2, ref_grads2):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_fused_chunked_form_under_bf16_autocast():
    """Under autocast the fused form multiplies in bfloat16 and keeps its running state sums in
    float32: output, final state and gradients stay within bfloat16 round-off of float32."""
    from engramlab.bdh.attention import attention_chunked

    g = torch.Generator().manual_seed(0)
    k = torch.rand(2, 3, 40, 16, generator=g, requires_grad=True)
    v = torch.randn(1, 3, 40, 8, generator=g, requires_grad=True)
    S0 = torch.randn(2, 3, 16, 8, generator=g, requires_grad=True)
    w = torch.randn(2, 3, 40, 8, generator=g)
    ref_out, ref_S = attention_chunked(k, v, None, S0, 8, need_state=True, fused=True)
    ref = torch.autograd.grad((ref_out * w).sum() + ref_S.sum(), (k, v, S0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, S = attention_chunked(k, v, None, S0, 8, need_state=True, fused=True)
    assert out.dtype == torch.bfloat16 and S.dtype == torch.float32
    grads = torch.autograd.grad((out.float() * w).sum() + S.sum(), (k, v, S0))
    rel = lambda a, b: ((a.float() - b).abs().max() / b.abs().max()).item()  # noqa: E731
    assert rel(out, ref_out) < 2e-2 and rel(S, ref_S) < 2e-2
    for a, b in zip(grads, ref):
        assert a.dtype == b.dtype and rel(a, b) < 3e-2
