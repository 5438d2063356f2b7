import pytest
import torch

from engramlab.nn.linear_attention import linear_attention, naive_linear_attention, recurrent_step


def brute_force(q, k, v, gamma, include_current):
    """Explicit double loop over t and tau (independent of the vectorised oracle)."""
    B, H, T, _ = q.shape
    out = torch.zeros(B, H, T, v.shape[-1], dtype=q.dtype)
    for t in range(T):
        for tau in range(T):
            if tau < t or (include_current and tau == t):
                w = gamma[None, :, None] ** (t - tau) * (q[:, :, t] * k[:, :, tau]).sum(-1, keepdim=True)
                out[:, :, t] += w * v[:, :, tau]
    return out


@pytest.mark.parametrize("include_current", [False, True])
@pytest.mark.parametrize("T,chunk", [(7, 3), (12, 4), (5, 16), (1, 4)])
@pytest.mark.parametrize("decay", [False, True])
def test_chunked_matches_brute_force(include_current, T, chunk, decay):
    g = torch.Generator().manual_seed(T * 31 + chunk)
    B, H, Dk, Dv = 2, 3, 5, 4
    q = torch.randn(B, H, T, Dk, generator=g, dtype=torch.float64)
    k = torch.randn(B, H, T, Dk, generator=g, dtype=torch.float64)
    v = torch.randn(B, 1, T, Dv, generator=g, dtype=torch.float64)  # shared across heads
    log_decay = -torch.rand(H, generator=g, dtype=torch.float64) if decay else None
    gamma = log_decay.exp() if decay else torch.ones(H, dtype=torch.float64)
    ref = brute_force(q, k, v.expand(B, H, T, Dv), gamma, include_current)
    out, _ = linear_attention(q, k, v, log_decay, include_current=include_current, chunk_size=chunk)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(naive_linear_attention(q, k, v, log_decay, include_current=include_current), ref)


@pytest.mark.parametrize("include_current", [False, True])
def test_state_carry_and_recurrent_step_agree(include_current):
    g = torch.Generator().manual_seed(0)
    B, H, T, Dk, Dv = 2, 2, 11, 4, 3
    q, k = (torch.randn(B, H, T, Dk, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, H, T, Dv, generator=g, dtype=torch.float64)
    log_decay = torch.tensor([-0.3, -0.05], dtype=torch.float64)
    full, S_full = linear_attention(q, k, v, log_decay, include_current=include_current, chunk_size=4)
    # split in two windows with the state carried across
    a, S_a = linear_attention(
        q[:, :, :6], k[:, :, :6], v[:, :, :6], log_decay, include_current=include_current, chunk_size=4
    )
    b, S_b = linear_attention(
        q[:, :, 6:], k[:, :, 6:], v[:, :, 6:], log_decay, include_current=include_current, chunk_size=3, state=S_a
    )
    torch.testing.assert_close(torch.cat([a, b], dim=2), full)
    torch.testing.assert_close(S_b, S_full)
    # one token at a time
    S = torch.zeros(B, H, Dk, Dv, dtype=torch.float64)
    outs = []
    for t in range(T):
        o, S = recurrent_step(q[:, :, t], k[:, :, t], v[:, :, t], S, log_decay, include_current=include_current)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, dim=2), full)
    torch.testing.assert_close(S, S_full)


def test_gradients_flow_to_decay():
    q = torch.randn(1, 2, 9, 3, dtype=torch.float64)
    k = torch.randn(1, 2, 9, 3, dtype=torch.float64)
    v = torch.randn(1, 2, 9, 2, dtype=torch.float64)
    ld = torch.tensor([-0.2, -0.7], dtype=torch.float64, requires_grad=True)
    f = lambda ld: linear_attention(q, k, v, ld, include_current=True, chunk_size=4)[0].sum()
    assert torch.autograd.gradcheck(f, (ld,))
