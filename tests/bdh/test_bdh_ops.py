"""RoPE, ALiBi, parameter-free LayerNorm and the fused gate, against direct formulas."""

import math

import pytest
import torch

from engramlab.bdh.ops import dropout_mask, gate_dropout, rope_rotate, rope_tables
from engramlab.nn.layernorm import ParameterFreeLayerNorm, layer_norm
from engramlab.nn.rope import alibi_log_decay, apply_rope, rope_cos_sin, rope_frequencies


def test_rope_frequencies_are_the_official_formula():
    N = 8
    f = rope_frequencies(N, 2.0**16, torch.float64)
    for i in range(N):
        assert f[i].item() == pytest.approx((2.0**16) ** (-(2 * (i // 2)) / N) / (2 * math.pi), rel=1e-12)
    with pytest.raises(ValueError):
        rope_frequencies(7)


@pytest.mark.parametrize("paired", [True, False])
def test_rope_rotates_each_pair_by_its_phase(paired):
    g = torch.Generator().manual_seed(0)
    H, B, T, N = 2, 3, 5, 6
    freqs = torch.rand(H, N, generator=g, dtype=torch.float64)
    if paired:
        freqs[:, 1::2] = freqs[:, 0::2]
    x = torch.randn(H, B, T, N, generator=g, dtype=torch.float64)
    pos = torch.arange(3, 3 + T)
    out = rope_rotate(x, rope_tables(freqs, pos, torch.float64))
    want = torch.empty_like(x)
    for h in range(H):
        for t in range(T):
            for i in range(0, N, 2):
                p0 = 2 * math.pi * ((pos[t].item() * freqs[h, i].item()) % 1)
                p1 = 2 * math.pi * ((pos[t].item() * freqs[h, i + 1].item()) % 1)
                want[h, :, t, i] = x[h, :, t, i] * math.cos(p0) - x[h, :, t, i + 1] * math.sin(p0)
                want[h, :, t, i + 1] = x[h, :, t, i + 1] * math.cos(p1) + x[h, :, t, i] * math.sin(p1)
    torch.testing.assert_close(out, want)
    cos, sin = rope_cos_sin(freqs, pos)
    torch.testing.assert_close(apply_rope(x, cos.unsqueeze(1), sin.unsqueeze(1)), want)


def test_alibi_half_lives():
    ld = alibi_log_decay(4, 16.0, 1024.0).double()
    half = -math.log(2) / ld
    want = torch.tensor([16.0, 64.0, 256.0, 1024.0], dtype=torch.float64)
    torch.testing.assert_close(half, want, rtol=1e-5, atol=0)
    with pytest.raises(ValueError):
        alibi_log_decay(2, 10.0, 5.0)


def test_layer_norm_has_no_parameters():
    z = torch.randn(4, 7, dtype=torch.float64)
    want = (z - z.mean(-1, keepdim=True)) / torch.sqrt(z.var(-1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(layer_norm(z), want)
    assert len(list(ParameterFreeLayerNorm().parameters())) == 0


def test_gram_symmetric_backward():
    from engramlab.bdh.attention import gram

    k = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(gram(k), k @ k.transpose(-1, -2))
    assert torch.autograd.gradcheck(gram, (k,))


def test_gate_dropout_value_and_gradient():
    g = torch.Generator().manual_seed(1)
    ya = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    drop = torch.rand(2, 3, 4, 5, generator=g) < 0.3
    torch.testing.assert_close(gate_dropout(ya, x, drop), torch.relu(ya) * x * (~drop))
    assert torch.autograd.gradcheck(lambda a, b: gate_dropout(a, b, drop), (ya, x))
    torch.manual_seed(0)
    m = dropout_mask((200, 500), 0.1, "cpu")
    assert abs(m.float().mean().item() - 0.1) < 0.005
    assert dropout_mask((3,), 0.0, "cpu") is None


def test_fused_nodes_pass_gradcheck():
    """The fused CPU nodes (x/RoPE and gate/dropout) against finite differences, float64."""
    from engramlab.bdh.ops import _Gate, _Neurons, rope_tables
    from engramlab.nn.rope import rope_frequencies

    g = torch.Generator().manual_seed(0)
    H, B, T, d, N = 2, 2, 3, 4, 6
    v = torch.randn(B * T, d, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(H, d, N, generator=g, dtype=torch.float64, requires_grad=True)
    freqs = rope_frequencies(N, 10.0, torch.float64).expand(H, N).contiguous()
    kind, table = rope_tables(freqs, torch.arange(T), torch.float64)
    assert kind == "complex"
    assert torch.autograd.gradcheck(lambda v, W: _Neurons.apply(v, W, table), (v, W))
    lna = torch.randn(H, B * T, d, generator=g, dtype=torch.float64, requires_grad=True)
    Wy = torch.randn(H, d, N, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.rand(H, B * T, N, generator=g, dtype=torch.float64).requires_grad_()
    drop = torch.rand(H, B * T, N, generator=g) < 0.3
    for mask in (None, drop):
        assert torch.autograd.gradcheck(lambda a, w, x, m=mask: _Gate.apply(a, w, x, m), (lna, Wy, x))
    y = _Gate.apply(lna, Wy, x, drop)
    assert (y[drop] == 0).all()
    torch.testing.assert_close(y, torch.relu(lna @ Wy) * x * ~drop)


@pytest.mark.parametrize("pos,variant", [("rope", "gpu"), ("rope+alibi", "gpu"), ("rope", "prime")])
def test_fused_layer_equals_plain_autograd(pos, variant):
    """Logits and every parameter gradient of the fused CPU path equal plain autograd's, with dropout."""
    from engramlab.bdh.model import BDH, BDHConfig

    cfg = BDHConfig(
        n_layer=2,
        n_embd=16,
        n_head=2,
        mlp_internal_dim_multiplier=4,
        dropout=0.2,
        chunk_size=4,
        pos=pos,
        variant=variant,
    )
    torch.manual_seed(0)
    m = BDH(cfg).double().train()
    idx = torch.randint(0, 256, (2, 11), generator=torch.Generator().manual_seed(1))
    results = []
    for fused in (True, False):
        torch.manual_seed(5)  # the same dropout masks
        m.zero_grad()
        logits, _ = m._run(idx, fused=fused)
        (logits.square().mean()).backward()
        results.append((logits.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}))
    (l1, g1), (l2, g2) = results
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], rtol=1e-10, atol=1e-12, msg=name)
