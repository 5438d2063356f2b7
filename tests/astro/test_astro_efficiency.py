"""engramlab.astro.efficiency: FLOPs per byte, the preallocated KV cache, throughput rows, synaptic operations."""

import pytest
import torch

from engramlab.astro import efficiency as E
from engramlab.astro.model import AstroConfig, AstroSNN
from engramlab.baselines.gpt import GPT, GPTConfig
from engramlab.baselines.lstm import LSTMLM, LSTMConfig


def test_flops_per_byte_of_the_lif_ablation_is_six_times_its_matmuls():
    # no astrocyte: per token and layer W_I (d x N), W_out (N x d), W_1 (d x F), W_2 (F x d); then the head (d x V)
    d, N, F, V, L = 12, 10, 24, 256, 2
    m = AstroSNN(AstroConfig(n_layer=L, d_model=d, n_neurons=N, ffn_mult=2, astrocyte=False, n_astrocytes=1))
    macs = L * (d * N + N * d + d * F + F * d) + d * V
    assert E.training_flops_per_byte(m, block_size=8) == pytest.approx(6 * macs)
    assert all(p.grad is None for p in m.parameters())


def test_flops_per_byte_of_the_lstm_adds_the_recurrence_the_counter_misses():
    E_, H, V = 8, 12, 256
    m = LSTMLM(LSTMConfig(n_layer=2, n_embd=E_, hidden=H))
    per_token = 6 * (4 * H * (E_ + H) + 4 * H * (H + H) + H * V)
    assert E.training_flops_per_byte(m, block_size=5) == pytest.approx(per_token)


def test_preallocated_cache_gives_the_logits_of_gpt_step():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=64, pos="rope")).eval()
    idx = torch.randint(0, 256, (2, 9))
    ref_logits, state = gpt.prefill(idx)
    cache = E.KVCacheGPT(gpt, 2, 20)
    assert torch.allclose(cache.prefill(idx), ref_logits, atol=1e-5)
    for _ in range(6):
        tok = torch.randint(0, 256, (2,))
        ref, state = gpt.step(tok, state)
        assert torch.allclose(cache.step(tok), ref, atol=1e-5)
    assert cache.nbytes() == 2 * 2 * (2 * 2 * 20 * 8) * 4  # layers x (k, v) x (B, H, capacity, hd) floats
    with pytest.raises(ValueError, match="rotary"):
        E.KVCacheGPT(GPT(GPTConfig(n_layer=1, n_head=1, n_embd=8, block_size=8)), 1, 4)
    with pytest.raises(ValueError, match="does not fit"):
        E.KVCacheGPT(gpt, 1, 4).prefill(torch.zeros(1, 5, dtype=torch.long))


def test_measure_one_rows():
    torch.manual_seed(0)
    astro = AstroSNN(AstroConfig(n_layer=1, d_model=16, n_neurons=16, n_astrocytes=2, d_key=4))
    rows = [E.measure_one(astro, T, gen_tokens=3, train_tokens=32, repeats=1) for T in (8, 32)]
    assert [r["state_bytes"] for r in rows] == [astro.state_bytes(1)] * 2  # the state does not grow
    assert [r["train_windows"] for r in rows] == [4, 1]
    for r in rows:
        assert r["gen_tok_s"] > 0 and r["prefill_tok_s"] > 0 and r["train_tok_s"] > 0
        assert r["gen_ms_per_token"] == pytest.approx(1e3 / r["gen_tok_s"])
    gpt = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=8, block_size=16, pos="rope"))
    r = E.measure_one(gpt, 10, gen_tokens=2, train_tokens=10, repeats=1, train=False)
    assert r["state_bytes"] == 2 * (1 * 2 * 12 * 4) * 4 and r["train_tok_s"] is None  # cache for 10 + 2 tokens


def test_firing_rates_and_synaptic_ops():
    torch.manual_seed(0)
    m = AstroSNN(AstroConfig(n_layer=2, d_model=16, n_neurons=16, n_astrocytes=2, d_key=4, ffn_mult=2))
    idx = torch.randint(0, 256, (2, 24))
    rates = E.firing_rates(m, idx)
    own = m.firing_rates()  # the blocks' own means of their spike tensors in the same pass
    for r, o in zip(rates, own):
        assert r["amsu"] == pytest.approx(o["amsu"]) and r["ffn"] == pytest.approx(o["ffn"])
        assert (r["amsu_in"], r["amsu_out"], r["ffn_in"], r["ffn_out"]) == (16, 16, 32, 16)
    ops = E.synaptic_ops(rates, m)
    want_mac = 2 * (16 * 16 + 32 * 16)
    want_ac = sum(r["amsu"] * 256 + r["ffn"] * 512 for r in rates)
    assert ops["spike_layer_macs"] == want_mac and ops["spike_layer_acs"] == pytest.approx(want_ac)
    # every Linear of the network by hand: per layer W_I, W_k, W_q, W_v, W_out, W_1, W_2; then the head
    per_layer = 16 * 16 + 16 * 8 + 16 * 8 + 16 * 16 + 16 * 16 + 16 * 32 + 32 * 16 + 2 * 2 * 4 * (8 + 1)
    assert ops["network_macs"] == 2 * per_layer + 16 * 256
    assert ops["network_ratio"] == pytest.approx((ops["network_macs"] - want_mac + want_ac) / ops["network_macs"])
    hand = [{"amsu": 0.5, "amsu_in": 4, "amsu_out": 2, "ffn": 0.25, "ffn_in": 8, "ffn_out": 2}]
    assert E.synaptic_ops(hand)["spike_layer_ratio"] == pytest.approx((0.5 * 8 + 0.25 * 16) / 24)
    with pytest.raises(ValueError, match="AstroSNN"):
        E.firing_rates(LSTMLM(LSTMConfig(n_layer=1, n_embd=4, hidden=4)), idx)


def test_run_benchmark_rejects_bad_sizes():
    with pytest.raises(ValueError, match="gen_tokens"):
        E.run_benchmark({}, {}, contexts=[8], gen_tokens=0, train_tokens=8)
    with pytest.raises(ValueError, match="contexts"):
        E.run_benchmark({}, {}, contexts=[0], gen_tokens=1, train_tokens=8)
