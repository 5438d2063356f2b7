"""Training FLOPs per token of BDH and GPT: a hand count, and FlopCounterMode on a forward pass.

Tolerance: ``FlopCounterMode`` counts every aten matmul by its shapes, and the formulas count
exactly the matmuls the code runs, so they agree to round-off once the counter is told about
the three ops it has no formula for (the in-place accumulating ``addmm_`` / ``baddbmm_`` of the
CPU kernels and the CPU flash attention). The one planned difference is a fresh window of the
chunked form: it skips the read of the first chunk and the write of the last (empty state, state
not returned), 4ndC/T per layer and token below the steady-state formula; the test checks that
exact amount.
"""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from engramlab.baselines.gpt import GPT, GPTConfig
from engramlab.bdh.flops import flops_breakdown, forward_flops_per_token, train_flops_per_token
from engramlab.bdh.model import BDH, BDHConfig

aten = torch.ops.aten


def _addmm_(acc, a, b, *args, out_shape=None, **kw):  # acc += a @ b: (m, k) @ (k, n)
    return 2 * a[0] * a[1] * b[1]


def _baddbmm_(acc, a, b, *args, out_shape=None, **kw):  # acc += a @ b: (g, m, k) @ (g, k, n)
    return 2 * a[0] * a[1] * a[2] * b[2]


def _sdpa_cpu(q, k, v, *args, out_shape=None, **kw):
    return sdpa_flop_count(q, k, v)


MAPPING = {aten.addmm_: _addmm_, aten.baddbmm_: _baddbmm_, aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu}


def counted(fn) -> int:
    fc = FlopCounterMode(display=False, custom_mapping=MAPPING)
    with torch.no_grad(), fc:
        fn()
    return fc.get_total_flops()


def tiny_bdh(**kw):
    base = dict(n_layer=2, n_embd=8, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0, chunk_size=4)
    base.update(kw)
    return BDHConfig(**base)


def test_hand_count_bdh_and_gpt():
    # BDH: L=2, d=8, H=2, N=16, n=32, V=256, T=16, quadratic
    #   per layer: D_x 2*8*32=512, D_y 512, E 512, scores 2*16*32=1024, values 2*16*8*2=512 -> 3072
    #   forward = 2*3072 + read-out 2*8*256=4096 = 10240; training 3x = 30720
    cfg = tiny_bdh(attn_impl="quadratic")
    assert forward_flops_per_token(cfg, 16) == 10240
    assert train_flops_per_token(cfg, 16) == 30720
    # chunked, C=4: per layer 1536 + scores 2*4*32=256 + values 2*4*8*2=128 + read 512 + write 512 = 2944
    assert forward_flops_per_token(cfg, 16, "chunked") == 2 * 2944 + 4096
    # T=10 pads to 12: the chunk-dependent part scales by 12/10
    assert forward_flops_per_token(cfg, 10, "chunked") == pytest.approx(2 * (1536 + 1.2 * 1408) + 4096)
    # BDH-GPU': + the gate 2*8*2=32 per layer
    assert forward_flops_per_token(tiny_bdh(variant="prime"), 16, "quadratic") == 10240 + 64
    # GPT: L=2, d=16, T=8, V=256: per layer 24*256=6144 + 4*8*16=512 -> 6656; + 2*16*256=8192
    g = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=8)
    assert forward_flops_per_token(g, 8) == 2 * 6656 + 8192 == 21504
    assert train_flops_per_token(g, 8) == 64512
    assert set(flops_breakdown(g, 8)) == {
        "qkv",
        "attention_out",
        "mlp",
        "attention_scores",
        "attention_values",
        "lm_head",
    }
    with pytest.raises(ValueError, match="context"):
        forward_flops_per_token(g, 0)
    with pytest.raises(TypeError, match="BDHConfig or a GPTConfig"):
        forward_flops_per_token(object(), 8)


@pytest.mark.parametrize("kw", [dict(), dict(variant="prime", pos="rope+alibi"), dict(pos="alibi")])
@pytest.mark.parametrize("T", [16, 14])
def test_bdh_against_flop_counter(kw, T):
    B = 2
    cfg = tiny_bdh(**kw)
    m = BDH(cfg).eval()
    idx = torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(0))
    quad = counted(lambda: m._run(idx, impl="quadratic"))
    assert quad == pytest.approx(B * T * forward_flops_per_token(cfg, T, "quadratic"), rel=1e-12)
    # chunked with a carried state (training with carry_state): the steady-state formula exactly
    state = m.init_state(B)
    carried = counted(lambda: m.forward_with_state(idx, None, state))
    assert carried == pytest.approx(B * T * forward_flops_per_token(cfg, T, "chunked"), rel=1e-12)
    # a fresh window: one chunk read and one chunk write fewer per layer (CPU kernels)
    if "alibi" not in cfg.pos and cfg.variant == "gpu":
        fresh = counted(lambda: m(idx))
        n, d, C, L = cfg.n_neurons, cfg.n_embd, cfg.chunk_size, cfg.n_layer
        assert carried - fresh == B * L * 4 * n * d * C


def test_gpt_against_flop_counter():
    B, T = 2, 12
    g = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=T)
    m = GPT(g).eval()
    idx = torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(0))
    assert counted(lambda: m(idx)) == pytest.approx(B * T * forward_flops_per_token(g, T), rel=1e-12)


def test_backward_is_about_twice_the_forward():
    """The 3x convention, checked on GPT's real forward+backward (attention aside, whose CPU
    backward recomputes the scores): within 5% for a model where the matmuls dominate."""
    B, T = 2, 8
    g = GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=T)
    m = GPT(g)
    idx = torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(0))
    fc = FlopCounterMode(display=False, custom_mapping=MAPPING)
    with fc:
        m(idx, idx)[1].backward()
    assert fc.get_total_flops() == pytest.approx(B * T * train_flops_per_token(g, T), rel=0.05)
