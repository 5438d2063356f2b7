"""The recurrent form of Eq. 4 over several tokens, and the RoPE tables the model caches per frequency buffer."""

import pytest
import torch

from engramlab.bdh.attention import attention_chunked, attention_quadratic, attention_recurrent
from engramlab.bdh.model import BDH, BDHConfig
from engramlab.bdh.ops import rope_tables


@pytest.mark.parametrize("damped", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_recurrent_form_over_many_tokens_equals_the_chunked_form(damped, with_state):
    g = torch.Generator().manual_seed(2)
    H, B, T, N, d = 3, 2, 7, 6, 4
    k = torch.rand(H, B, T, N, generator=g, dtype=torch.float64)
    v = torch.randn(1, B, T, d, generator=g, dtype=torch.float64)
    lf = -torch.rand(H, B, T, generator=g, dtype=torch.float64) if damped else None
    S0 = torch.randn(H, B, N, d, generator=g, dtype=torch.float64) if with_state else None
    want, want_S = attention_chunked(k, v, lf, S0, 3)
    if not with_state:
        torch.testing.assert_close(want, attention_quadratic(k, v, lf), rtol=1e-12, atol=1e-12)
    got, S = attention_recurrent(k, v, lf, None if S0 is None else S0.clone())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S, want_S, rtol=1e-12, atol=1e-12)
    # in place: the given state itself ends as rho after the last token
    state = torch.zeros(H, B, N, d, dtype=torch.float64) if S0 is None else S0.clone()
    got2, S2 = attention_recurrent(k, v, lf, state, inplace=True)
    assert S2 is state
    torch.testing.assert_close(got2, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, want_S, rtol=1e-12, atol=1e-12)


def test_attention_rejects_mismatched_shapes_naming_the_layout():
    k = torch.rand(2, 3, 5, 4)
    with pytest.raises(ValueError, match=r"k \(H, B, T, N\) and values v \(1\|H, 1\|B, T, d\).*v \(1, 2, 5, 8\)"):
        attention_recurrent(k, torch.rand(1, 2, 5, 8))  # B = 2 values for 3 sequences
    with pytest.raises(ValueError, match="same T"):
        attention_chunked(k, torch.rand(1, 3, 4, 8))
    with pytest.raises(ValueError, match=r"log_f must be \(1\|H, 1\|B, T\) with T=5"):
        attention_quadratic(k, torch.rand(1, 3, 5, 8), torch.zeros(2, 3, 4))


def test_rope_tables_follow_changes_of_the_frequency_buffer():
    """The model remembers the pair frequencies of rope_freqs; changing the buffer (in place, by
    load_state_dict, or a new tensor) gives the tables of the new frequencies."""
    torch.manual_seed(0)
    m = BDH(BDHConfig(n_layer=1, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)).double()
    t = torch.arange(3, 6, dtype=torch.float64)

    def check():
        kind, table = m._rope_tables(3, 3, torch.float64)
        want_kind, want = rope_tables(m.rope_freqs, t, torch.float64)  # no cache
        assert kind == want_kind
        for a, b in zip(table if kind == "real" else (table,), want if kind == "real" else (want,)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        return kind

    assert check() == "complex"
    with torch.no_grad():
        m.rope_freqs.mul_(0.5)  # in place
    assert check() == "complex"
    sd = m.state_dict()
    sd["rope_freqs"] = torch.rand_like(sd["rope_freqs"])  # pairs no longer share a frequency
    m.load_state_dict(sd)
    assert check() == "real"
    N = m.config.n_neurons_per_head
    paired = [i | 1 for i in range(N)]  # each pair takes the frequency of its odd neuron
    m.rope_freqs = m.rope_freqs[:, paired].clone()  # a new tensor
    assert m.rope_freqs.shape == (2, N)
    assert check() == "complex"
