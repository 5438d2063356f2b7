"""The concept probe: Mann-Whitney statistics by hand, per-sentence synapses against Eq. 16,
and a planted concept (two disjoint alphabets) on a small random model."""

import json

import numpy as np
import pytest
import torch

from engramlab.bdh.inspect import flat_neurons, position_operator, synapse_matrix
from engramlab.bdh.model import BDH, BDHConfig
from engramlab.bdh.probe import mann_whitney, probe, read_sentences, sentence_synapse_factors
from engramlab.cli import main
from engramlab.train.checkpoint import save_model_folder


def test_mann_whitney_by_hand():
    # concept [3, 4, 5] vs contrast [1, 2, 4.5]: pairs with concept > contrast: 3:2, 4:2, 5:3 -> U = 7
    r = mann_whitney(np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0, 4.5]))
    assert r["U"] == 7 and r["U_opt"] == 9
    assert r["rank_biserial"] == pytest.approx(2 * 7 / 9 - 1)
    perfect = mann_whitney(np.arange(10, 20.0), np.arange(10.0))
    assert perfect["U"] == 100 and perfect["rank_biserial"] == 1 and perfect["p_value"] < 1e-4


def _model():
    torch.manual_seed(0)
    return BDH(BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)).eval()


def test_sentence_factors_reproduce_eq16_per_sentence():
    model = _model()
    sents = [b"hello there", b"abc"]
    f = sentence_synapse_factors(model, sents, progress=False)[0]
    for s, sent in enumerate(sents):
        with torch.no_grad():
            _, trace = model.forward_trace(torch.tensor([list(sent)]))
        want = synapse_matrix(
            flat_neurons(trace[0]["y"]).double(), flat_neurons(trace[1]["x"]).double(), position_operator(model)
        )
        m = f["seg"] == s
        got = f["Y"][m].double().T @ f["K"][m].double()
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_probe_finds_a_planted_concept(tmp_path):
    rng = np.random.default_rng(0)
    concept = [bytes(rng.choice(list(b"abcdef"), 24)) for _ in range(10)]
    contrast = [bytes(rng.choice(list(b"uvwxyz"), 24)) for _ in range(10)]
    res = probe(_model(), concept, contrast, candidates=50, report=3, progress=False)
    best = res["best"][0]
    assert best["selection"]["U"] == best["selection"]["U_opt"] == 25
    assert best["held_out"]["rank_biserial"] == 1.0 and best["all"]["U"] == 100
    assert best["mean_concept"] > best["mean_contrast"] and best["mean_concept"] > 0
    anysign = probe(_model(), concept, contrast, candidates=50, report=3, positive=False, progress=False)
    assert anysign["best"][0]["selection"]["U"] == 25 and anysign["positive_only"] is False
    # through the command line, with the same numbers
    save_model_folder(tmp_path / "run", _model(), "bdh")
    (tmp_path / "a.txt").write_bytes(b"\n".join(concept) + b"\n")
    (tmp_path / "b.txt").write_bytes(b"\n\n".join(contrast))
    rc = main(
        [
            "bdh",
            "probe",
            str(tmp_path / "run"),
            "--concept",
            str(tmp_path / "a.txt"),
            "--contrast",
            str(tmp_path / "b.txt"),
            "--candidates",
            "50",
            "--report",
            "3",
            "--out",
            str(tmp_path / "p.json"),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert json.loads((tmp_path / "p.json").read_text())["best"][0]["all"]["U"] == 100


def test_probe_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_sentences(tmp_path / "nope.txt")
    (tmp_path / "few.txt").write_text("one\ntwo\n")
    with pytest.raises(ValueError, match="at least 4"):
        read_sentences(tmp_path / "few.txt")
