"""from_reference: weights in the official code's layout give the official code's logits.

The official forward pass (GitHub pathwaycom/bdh, bdh.py) is written out here independently,
in float64, with the official names: quadratic masked attention, RoPE with theta = 2^16,
d-space residual.
"""

import math

import pytest
import torch

from engramlab.bdh.convert import from_reference


def official_freqs(N, theta=2.0**16):
    i = torch.arange(N, dtype=torch.float64)
    return 1.0 / (theta ** ((i / 2).floor() * 2 / N)) / (2 * math.pi)


def official_forward(sd, idx, n_layer):
    enc, enc_v, dec = sd["encoder"], sd["encoder_v"], sd["decoder"]
    emb, head = sd["embed.weight"], sd["lm_head"]
    nh, D, N = enc.shape
    B, T = idx.shape

    def ln(z):
        mu = z.mean(-1, keepdim=True)
        return (z - mu) / torch.sqrt(((z - mu) ** 2).mean(-1, keepdim=True) + 1e-5)

    freqs = sd["attn.freqs"].double()  # the official buffer (float32 values)

    def rope(v):
        phases = (torch.arange(T, dtype=torch.float64).view(1, 1, -1, 1) * freqs) % 1 * 2 * math.pi
        v_rot = torch.stack((-v[..., 1::2], v[..., ::2]), dim=-1).view(*v.size())
        return v * torch.cos(phases) + v_rot * torch.sin(phases)

    x = ln(emb[idx].unsqueeze(1))  # (B, 1, T, D)
    for _ in range(n_layer):
        x_sparse = torch.relu(x @ enc)  # (B, nh, T, N)
        QR = rope(x_sparse)
        yKV = ln(((QR @ QR.mT).tril(diagonal=-1)) @ x)
        xy = x_sparse * torch.relu(yKV @ enc_v)
        y = ln(xy.transpose(1, 2).reshape(B, 1, T, N * nh) @ dec)
        x = ln(x + y)
    return x.view(B, T, D) @ head


def reference_state_dict(nh=2, D=16, N=24, V=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64) * 0.3  # noqa: E731
    return {
        "encoder": r(nh, D, N),
        "encoder_v": r(nh, D, N),
        "decoder": r(nh * N, D),
        "embed.weight": r(V, D),
        "lm_head": r(D, V),
        "attn.freqs": official_freqs(N).float().view(1, 1, 1, N),
    }


@pytest.mark.parametrize("T", [5, 13])
def test_from_reference_gives_the_official_logits(T):
    sd = reference_state_dict()
    model = (
        from_reference({"_orig_mod." + k: v for k, v in sd.items()}, n_layer=3, dropout=0.0, chunk_size=4)
        .double()
        .eval()
    )
    c = model.config
    assert (c.n_embd, c.n_head, c.n_neurons_per_head, c.mlp_internal_dim_multiplier) == (16, 2, 24, 3)
    idx = torch.randint(0, 256, (2, T), generator=torch.Generator().manual_seed(T))
    want = official_forward(sd, idx, 3)
    got = model(idx)[0]
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-8)
    # the recurrent form of the converted model agrees as well
    state = model.init_state(2)
    with torch.no_grad():
        for t in range(T):
            last, state = model.step(idx[:, t], state)
    torch.testing.assert_close(last, want[:, -1], rtol=1e-6, atol=1e-8)


def test_from_reference_rejects_wrong_input():
    sd = reference_state_dict()
    bad = dict(sd)
    del bad["decoder"]
    with pytest.raises(ValueError, match="decoder"):
        from_reference(bad)
    bad = dict(sd, decoder=torch.zeros(5, 16))
    with pytest.raises(ValueError, match="inconsistent"):
        from_reference(bad)
    with pytest.raises(ValueError, match="cannot be overridden"):
        from_reference(sd, n_embd=32)
    with pytest.raises(ValueError, match="rope"):
        from_reference(sd, pos="alibi")
    with pytest.raises(TypeError):
        from_reference([1, 2])
