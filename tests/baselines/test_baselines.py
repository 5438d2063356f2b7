import pytest
import torch

from engramlab.baselines.gpt import GPT, GPTConfig
from engramlab.baselines.lstm import LSTMLM, LSTMConfig


def models():
    torch.manual_seed(0)
    yield "gpt-learned", GPT(GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=12, pos="learned"))
    yield "gpt-rope", GPT(GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=12, pos="rope"))
    yield "lstm", LSTMLM(LSTMConfig(n_layer=2, n_embd=8, hidden=16))


@pytest.mark.parametrize("name,model", list(models()))
def test_step_over_prompt_equals_forward(name, model):
    model = model.double().eval()
    idx = torch.randint(0, 256, (3, 12))
    logits, _ = model(idx)
    state = model.init_state(3)
    for t in range(12):
        lt, state = model.step(idx[:, t], state)
        torch.testing.assert_close(lt, logits[:, t], rtol=1e-9, atol=1e-9)
    last, _ = model.prefill(idx)
    torch.testing.assert_close(last, logits[:, -1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name,model", list(models()))
def test_generate_past_the_context_and_seeded(name, model):
    prompt = torch.randint(0, 256, (2, 5))
    a = model.generate(prompt, 30, temperature=1.0, top_k=20, seed=3)
    b = model.generate(prompt, 30, temperature=1.0, top_k=20, seed=3)
    assert a.shape == (2, 35) and torch.equal(a, b) and torch.equal(a[:, :5], prompt)


def test_rope_cache_slides_as_a_window():
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, pos="rope")).double().eval()
    idx = torch.randint(0, 256, (1, 20))
    state = m.init_state(1)
    for t in range(20):
        lt, state = m.step(idx[:, t], state)
    assert state["kv"][0][0].shape[2] == 8
    # a window of the last 8 tokens at their absolute positions, computed directly
    x = m.wte(idx[:, 12:])
    from engramlab.nn.rotary import apply_rope, rope_cos_sin

    blk = m.blocks[0]
    h = blk.ln_1(x)
    q, k, v = blk.attn.qkv(h).split(16, dim=2)
    q, k, v = (z.view(1, 8, 2, 8).transpose(1, 2) for z in (q, k, v))
    cos, sin = rope_cos_sin(torch.arange(12, 20), 8)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    att = torch.softmax((q[:, :, -1:] @ k.transpose(-1, -2)) / 8**0.5, dim=-1) @ v
    y = x[:, -1:] + blk.attn.proj(att.transpose(1, 2).reshape(1, 1, 16))
    y = y + blk.mlp(blk.ln_2(y))
    torch.testing.assert_close(lt, m.lm_head(m.ln_f(y[:, -1])))


def test_parameter_counts():
    g = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=12))
    d, V, T, L = 16, 256, 12, 2
    per_block = 2 * d + 4 * d * d + 8 * d * d  # two LayerNorms (no bias), attention, MLP
    assert g.num_params() == V * d + T * d + L * per_block + d  # tied head, final LayerNorm
    m = LSTMLM(LSTMConfig(n_layer=1, n_embd=8, hidden=16))
    assert m.num_params() == 256 * 8 + 4 * 16 * (8 + 16 + 2) + 16 * 256 + 256


def test_bad_inputs():
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8))
    with pytest.raises(ValueError, match="token id 300"):
        m.generate(torch.tensor([[1, 300]]), 3)
    with pytest.raises(ValueError, match="empty"):
        m.generate(torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="longer than block_size=8"):
        m(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        m.step(torch.zeros(3, dtype=torch.long), m.init_state(2))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=10, n_head=3)
    lstm = LSTMLM(LSTMConfig(n_layer=1, n_embd=8, hidden=16))
    with pytest.raises(ValueError, match="does not fit"):
        lstm.step(torch.zeros(2, dtype=torch.long), LSTMLM(LSTMConfig(n_layer=2, hidden=16)).init_state(2))
