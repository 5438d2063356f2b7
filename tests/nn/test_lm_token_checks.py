"""Token ids are validated where they enter (a clear error at every public entry point), but the
host-side range check runs once per ``generate`` call, not once per generated token."""

import pytest
import torch

from engramlab.astro.model import AstroConfig, AstroSNN
from engramlab.baselines.gpt import GPT, GPTConfig
from engramlab.baselines.lstm import LSTMLM, LSTMConfig
from engramlab.bdh.model import BDH, BDHConfig
from engramlab.nn.lm import LanguageModel


def models():
    torch.manual_seed(0)
    return {
        "bdh": BDH(BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)),
        "gpt": GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=32)),
        "lstm": LSTMLM(LSTMConfig(n_layer=1, n_embd=8, hidden=16)),
        "astro": AstroSNN(
            AstroConfig(vocab_size=256, n_layer=1, d_model=16, n_neurons=16, n_astrocytes=4, d_key=4, chunk_size=8)
        ),
    }


@pytest.fixture
def range_checks(monkeypatch):
    """Counts the calls of the host-side range check (each one a device sync on a GPU)."""
    calls = []
    original = LanguageModel.check_token_range

    def counted(self, idx, name="idx"):
        calls.append(name)
        return original(self, idx, name)

    monkeypatch.setattr(LanguageModel, "check_token_range", counted)
    return calls


@pytest.mark.parametrize("name", ["bdh", "gpt", "lstm", "astro"])
def test_generate_checks_the_token_range_once_not_per_token(name, range_checks):
    m = models()[name].eval()
    prompt = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(1))
    out = m.generate(prompt, 12, seed=0)
    assert out.shape == (2, 17)
    assert range_checks == ["prompt"]  # 12 tokens, 11 steps and a prefill: one check, of the prompt
    # a step called from outside still checks its tokens (on a CPU the check is free of syncs)
    state = m.init_state(2)
    for _ in range(3):
        _, state = m.step(torch.tensor([1, 2]), state)
    assert range_checks == ["prompt", "idx_t", "idx_t", "idx_t"]


@pytest.mark.parametrize("name", ["bdh", "gpt", "lstm", "astro"])
def test_bad_token_ids_raise_the_same_clear_error_at_each_entry(name):
    m = models()[name].eval()
    with pytest.raises(ValueError, match=r"prompt holds token id 256, expected ids in \[0, 256\)"):
        m.generate(torch.tensor([[1, 256]]), 3)
    with pytest.raises(ValueError, match=r"prompt holds token id -3, expected ids in \[0, 256\)"):
        m.generate(torch.tensor([4, -3]), 3)
    with pytest.raises(ValueError, match=r"idx_t holds token id 300, expected ids in \[0, 256\)"):
        m.step(torch.tensor([1, 300]), m.init_state(2))
    # generate trusts only its own samples: afterwards step checks again
    m.generate(torch.tensor([[1, 2]]), 2)
    with pytest.raises(ValueError, match="idx_t holds token id 999"):
        m.step(torch.tensor([999]), m.init_state(1))
    with pytest.raises(TypeError, match="prompt must be a torch.Tensor"):
        m.generate([[1, 2]], 3)


def test_bdh_and_astro_parallel_entry_points_check_token_ids():
    ms = models()
    bad = torch.tensor([[1, 2, 256]])
    for m in (ms["bdh"], ms["astro"]):
        with pytest.raises(ValueError, match=r"idx holds token id 256, expected ids in \[0, 256\)"):
            m(bad)
        with pytest.raises(ValueError, match="idx holds token id 256"):
            m.forward_with_state(bad, None, None)
        with pytest.raises(ValueError, match="idx holds token id 256"):
            m.prefill(bad)
    with pytest.raises(ValueError, match="idx holds token id -1"):
        ms["bdh"].forward_trace(torch.tensor([[0, -1]]))


def test_range_is_not_read_where_it_would_cost_a_device_sync():
    """Off the CPU (here: the meta device, whose values cannot be read at all) ``check_tokens``
    checks type, dtype and emptiness but does not read the ids; ``values=True`` forces the read."""
    m = models()["bdh"]
    ids = torch.full((2, 3), 999, dtype=torch.long, device="meta")
    m.check_tokens(ids)  # no read of the values, no error
    with pytest.raises(TypeError, match="integer token ids"):
        m.check_tokens(ids.float())
    with pytest.raises(ValueError, match="empty"):
        m.check_tokens(ids[:, :0])
    with pytest.raises(ValueError, match="token id 999"):
        m.check_tokens(torch.full((2, 3), 999), values=True)
    m.check_tokens(torch.full((2, 3), 999), values=False)


@pytest.mark.slow
def test_check_tokens_leaves_a_compiled_graph_whole():
    """Under torch.compile the range check (a data-dependent branch) is skipped: no graph break."""
    m = models()["lstm"]

    @torch.compile(backend="eager", fullgraph=True)  # fullgraph: a graph break would raise
    def embed(idx):
        m.check_tokens(idx)
        return m.embed(idx)

    idx = torch.tensor([[1, 2, 255]])
    torch.testing.assert_close(embed(idx), m.embed(idx))
