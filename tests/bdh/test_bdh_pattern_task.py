"""The repeated letter-pattern task (paper Fig. 14) and the density while memorising vs repeating."""

import pytest
import torch

from engramlab.bdh.inspect import density, phase_density, phase_density_from_trace
from engramlab.bdh.model import BDH, BDHConfig
from engramlab.data.tasks import (
    LETTERS,
    MEMORISE,
    PREFIX,
    REPEAT,
    repeated_pattern_batch,
    repeated_pattern_text,
)


def test_batch_structure():
    g = torch.Generator().manual_seed(0)
    b = repeated_pattern_batch(64, period=8, repeats=4, prefix=5, generator=g)
    assert b.tokens.shape == b.phase.shape == b.repetition.shape == (64, 5 + 32)
    assert torch.isin(b.tokens, torch.tensor(list(LETTERS))).all()
    pat = b.tokens[:, 5:13]
    for r in range(4):  # the same 8 letters every pass
        assert torch.equal(b.tokens[:, 5 + 8 * r : 13 + 8 * r], pat)
    assert all(len(set(row.tolist())) == 8 for row in pat)  # distinct letters
    assert (b.phase[:, :5] == PREFIX).all() and (b.phase[:, 5:13] == MEMORISE).all()
    assert (b.phase[:, 13:] == REPEAT).all()
    assert b.repetition[0].tolist() == [-1] * 5 + [0] * 8 + [1] * 8 + [2] * 8 + [3] * 8
    # fresh patterns per sequence, reproducible with a seed
    assert len({tuple(row.tolist()) for row in pat}) > 60
    again = repeated_pattern_batch(64, 8, 4, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.tokens, b.tokens)
    # every letter is about equally likely in the patterns (26 letters, 512 draws)
    counts = torch.bincount(pat.flatten() - LETTERS[0], minlength=26).double()
    assert counts.min() > 5 and counts.max() < 40
    rep = repeated_pattern_batch(200, period=30, repeats=2, distinct=False, generator=g)
    assert any(len(set(row.tolist())) < 30 for row in rep.tokens[:, :30])


def test_text_corpus_and_errors():
    text = repeated_pattern_text(10, period=8, repeats=3, seed=1)
    lines = text.split(b"\n")[:-1]
    assert len(lines) == 10 and all(len(line) == 24 and line[:8] * 3 == line for line in lines)
    assert repeated_pattern_text(10, period=8, repeats=3, seed=1) == text
    with pytest.raises(ValueError, match="distinct"):
        repeated_pattern_batch(2, period=27)
    with pytest.raises(ValueError, match="repeats"):
        repeated_pattern_batch(2, repeats=1)


def test_phase_density_of_a_hand_made_trace():
    # B=1, H=1, T=4, N=4; positions 0-1 memorising (2 of 4 active), 2-3 repeating (1 of 4)
    x = torch.tensor([[[[1.0, 2.0, 0, 0], [0, 3.0, 4.0, 0], [0, 0, 0, 0.01], [5.0, 0, 0, 0]]]])
    y = x * (x > 1.5)
    phase = torch.tensor([[MEMORISE, MEMORISE, REPEAT, REPEAT]])
    out = phase_density_from_trace([{"x": x, "y": y}], phase)
    assert out["memorise"]["x"] == [pytest.approx(0.5)] and out["repeat"]["x"] == [pytest.approx(0.25)]
    # above 1% of the layer max (5.0 -> 0.05): the 0.01 entry is not counted
    assert out["repeat"]["x_above"] == [pytest.approx(0.125)]
    assert out["memorise"]["y"] == [pytest.approx(3 / 8)] and out["memorise"]["positions"] == 2


def test_phase_density_on_a_model_matches_the_trace():
    torch.manual_seed(0)
    m = BDH(BDHConfig(n_layer=4, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)).eval()
    b = repeated_pattern_batch(3, period=8, repeats=3, prefix=4, generator=torch.Generator().manual_seed(1))
    out = phase_density(m, b)
    assert set(out) == {"prefix", "memorise", "repeat", "rel_threshold"}
    assert len(out["repeat"]["x"]) == 4 and 0 <= out["repeat"]["accuracy"] <= 1 and out["memorise"]["loss"] > 0
    with torch.no_grad():
        _, trace = m.forward_trace(b.tokens)
    x = trace[2]["x"][:, :, 12:]  # the two repeat passes (positions 12..27)
    assert out["repeat"]["x"][2] == pytest.approx(float(density(x)), rel=1e-9)
