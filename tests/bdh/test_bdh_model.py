"""BDH model contract: sizes, merging by concatenation, generation, trace, bad input."""

import dataclasses
import json

import pytest
import torch

from engramlab.bdh.model import BDH, PRESETS, BDHConfig
from engramlab.train.config import config_from_dict, config_to_dict


def small(**kw):
    torch.manual_seed(0)
    base = dict(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0, chunk_size=4)
    base.update(kw)
    return BDH(BDHConfig(**base)).eval()


@pytest.mark.parametrize("d,h,mult,V", [(16, 2, 4, 256), (32, 4, 8, 97), (256, 4, 128, 256)])
def test_parameter_count_is_3nd_plus_2Vd(d, h, mult, V):
    cfg = BDHConfig(n_embd=d, n_head=h, mlp_internal_dim_multiplier=mult, vocab_size=V)
    n = h * (mult * d // h)
    assert cfg.n_neurons == n and cfg.n_neurons_per_head == n // h
    m = BDH(cfg) if d < 256 else None
    expected = 3 * n * d + 2 * V * d
    if m is not None:
        assert m.num_params() == expected
    else:  # the official 25.3M model (count from shapes, no allocation needed)
        assert expected == 25_296_896


def test_config_round_trips_through_json_and_rejects_bad_values():
    cfg = BDHConfig(pos="rope+alibi", variant="prime", chunk_size=32)
    again = config_from_dict(BDHConfig, json.loads(json.dumps(config_to_dict(cfg))))
    assert again == cfg
    for bad in (
        dict(pos="sinusoid"),
        dict(variant="xl"),
        dict(n_head=3),
        dict(dropout=1.0),
        dict(chunk_size=0),
        dict(n_layer=2.5),
        dict(alibi_min_half_life=10, alibi_max_half_life=5),
    ):
        with pytest.raises(ValueError):
            BDHConfig(**bad)


def test_presets_build_models():
    for name in ("tiny", "small", "paper"):
        fields = {f.name for f in dataclasses.fields(BDHConfig)}
        assert set(PRESETS[name]["model"]) <= fields
    m = BDH(BDHConfig(**PRESETS["tiny"]["model"]))
    assert m(torch.zeros(1, 5, dtype=torch.long))[0].shape == (1, 5, 256)


def test_rope_freqs_are_persistent_and_loaded_not_recomputed():
    m = small(pos="rope+alibi")
    sd = m.state_dict()
    assert sd["rope_freqs"].shape == (2, m.config.n_neurons_per_head)
    assert sd["alibi_log_decay"].shape == (2,)
    sd["rope_freqs"] = sd["rope_freqs"] * 0.5
    m2 = small(pos="rope+alibi")
    m2.load_state_dict(sd)
    torch.testing.assert_close(m2.rope_freqs, sd["rope_freqs"])


def test_merging_a_model_with_itself_keeps_its_function():
    """Concatenating every n-sized tensor (D_x, D_y, E, rope_freqs) of two copies doubles the scores,
    a*, and E y; the LayerNorms are scale-invariant, so the merged model gives the same logits."""
    m = small(pos="rope+alibi", dropout=0.0).double()
    with torch.no_grad():  # trained-size weights, so every LayerNorm input is far above its eps
        for p in (m.decoder_x, m.decoder_y, m.encoder_E):
            p.mul_(15.0)
    cfg2 = dataclasses.replace(m.config, mlp_internal_dim_multiplier=2 * m.config.mlp_internal_dim_multiplier)
    H, N, d = 2, m.config.n_neurons_per_head, 16
    sd = m.state_dict()
    E = sd["encoder_E"].view(H, N, d)
    merged = {
        "embed.weight": sd["embed.weight"],
        "lm_head": sd["lm_head"],
        "decoder_x": torch.cat([sd["decoder_x"]] * 2, dim=2),
        "decoder_y": torch.cat([sd["decoder_y"]] * 2, dim=2),
        "encoder_E": torch.cat([E, E], dim=1).reshape(H * 2 * N, d),
        "rope_freqs": torch.cat([sd["rope_freqs"]] * 2, dim=1),
        "alibi_log_decay": sd["alibi_log_decay"],
    }
    big = BDH(cfg2).double().eval()
    big.load_state_dict(merged)
    idx = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(big(idx)[0], m(idx)[0], rtol=1e-4, atol=1e-4)


def test_forward_trace_matches_forward_and_shapes():
    m = small()
    idx = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(0))
    logits, trace = m.forward_trace(idx)
    torch.testing.assert_close(logits, m(idx)[0])
    assert len(trace) == 2
    N = m.config.n_neurons_per_head
    for layer in trace:
        assert layer["x"].shape == (2, 2, 7, N) and layer["y"].shape == (2, 2, 7, N)
        assert layer["v"].shape == (2, 7, 16)
        assert (layer["x"] >= 0).all() and (layer["y"] >= 0).all()
        assert ((layer["y"] > 0) <= (layer["x"] > 0)).all()  # supp(y) in supp(x)
    # the first layer's input is LN(embed(idx)), recomputed independently
    e = m.embed(idx)
    ln = (e - e.mean(-1, keepdim=True)) / torch.sqrt(e.var(-1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(trace[0]["v"], ln)
    # x of layer 0 is ReLU(v @ D_x) per head
    x0 = torch.relu(torch.einsum("btd,hdn->bhtn", trace[0]["v"], m.decoder_x))
    torch.testing.assert_close(trace[0]["x"], x0)


def test_greedy_generation_equals_rerunning_the_prefix():
    """The reference's way (re-run forward over the whole prefix) gives the same greedy tokens."""
    m = small(pos="rope")
    prompt = torch.randint(0, 256, (2, 6), generator=torch.Generator().manual_seed(4))
    out = m.generate(prompt, 8, top_k=1)
    seq = prompt
    for _ in range(8):
        nxt = m(seq)[0][:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
    assert torch.equal(out, seq)
    a = m.generate(prompt, 10, temperature=0.8, top_p=0.9, seed=7)
    b = m.generate(prompt, 10, temperature=0.8, top_p=0.9, seed=7)
    assert torch.equal(a, b)


def test_dropout_is_active_in_training_only():
    m = small(dropout=0.5)
    idx = torch.randint(0, 256, (2, 8))
    m.train()
    a, b = m(idx)[0], m(idx)[0]
    assert not torch.allclose(a, b)
    m.eval()
    torch.testing.assert_close(m(idx)[0], m(idx)[0])


def test_bad_input_raises_clear_errors():
    m = small()
    with pytest.raises(ValueError, match="empty"):
        m.generate(torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="256"):
        m(torch.tensor([[1, 256]]))
    with pytest.raises(ValueError, match="token id -1"):
        m(torch.tensor([[1, -1]]))
    with pytest.raises(TypeError):
        m(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="targets"):
        m(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))
    state = m.init_state(2)
    with pytest.raises(ValueError, match="batch size"):
        m.step(torch.tensor([1, 2, 3]), state)
    other = small(mlp_internal_dim_multiplier=8)
    with pytest.raises(ValueError, match="another config"):
        m.step(torch.tensor([1, 2]), other.init_state(2))
    with pytest.raises(TypeError):
        m.step(torch.tensor([1, 2]), (1, 2))
    with pytest.raises(ValueError):
        m.init_state(0)
    with pytest.raises(TypeError):
        BDH({"n_layer": 2})


def test_long_prompt_has_no_context_limit():
    m = small()
    m.prefill_window = 16  # several prefill windows
    prompt = torch.randint(0, 256, (1, 50))
    out = m.generate(prompt, 2, top_k=1)
    assert out.shape == (1, 52)
