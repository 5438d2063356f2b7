"""The bdh claims experiments: matched baselines, the probe's controls, the tail fitter against ``powerlaw``."""

from __future__ import annotations

import numpy as np
import pytest

from engramlab.baselines.gpt import GPTConfig
from engramlab.bdh.flops import train_flops_per_token
from engramlab.bdh.graph import fit_power_law
from engramlab.bdh.model import BDHConfig
from engramlab.bdh.probe import word_swap_sentences
from engramlab.report import papers


def _cfg(cls, sets: dict):
    return cls(**{k.split(".", 1)[1]: v for k, v in sets.items()})


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_flops_matched_gpt_spends_bdh_flops_per_byte(mode):
    b = papers.get("bdh").BUDGETS[mode]
    T = b["sched"]["block_size"]
    bdh = train_flops_per_token(_cfg(BDHConfig, b["bdh"]), T)
    gptf = train_flops_per_token(_cfg(GPTConfig, b["gptf"]), T)
    gpt = train_flops_per_token(_cfg(GPTConfig, b["gpt"]), T)
    assert abs(gptf - bdh) / bdh < 0.02
    assert gpt < bdh / 3  # the params-matched GPT is much cheaper: the comparison is not redundant


def test_full_budget_trains_past_one_epoch_of_tiny_shakespeare():
    b = papers.get("bdh").BUDGETS["full"]
    train_bytes = 1_003_855  # 90% of the 1,115,394-byte corpus (the registry's size)
    assert b["data"] == "tinyshakespeare"
    epochs = b["steps"] * b["sched"]["batch_size"] * b["sched"]["block_size"] / train_bytes
    assert 1.2 < epochs < 1.25  # docs/bdh.md states 1.22 epochs
    assert b["larger"] == {}  # 2M / 8M are not in the full budget (LARGER_SIZES says what they cost)


def _n_params(cls_cfg, model_cls, sets):
    return sum(t.numel() for t in model_cls(_cfg(cls_cfg, sets)).parameters())


def test_parity_sizes_train_three_epochs_with_matched_baselines():
    from engramlab.baselines.gpt import GPT
    from engramlab.bdh.model import BDH

    b = papers.get("bdh").BUDGETS["full"]
    par, T = b["parity"], b["sched"]["block_size"]
    epochs = par["steps"] * b["sched"]["batch_size"] * T / 1_003_855
    assert 3.0 <= epochs < 3.1  # docs/bdh.md: 3.06 epochs of the training split
    params = {}
    for size, m in par["sizes"].items():
        bdh = _n_params(BDHConfig, BDH, m["bdh"])
        gpt = _n_params(GPTConfig, GPT, m["gpt"])
        assert abs(gpt - bdh) / bdh < 0.05, size  # same parameters
        fb = train_flops_per_token(_cfg(BDHConfig, m["bdh"]), T)
        ff = train_flops_per_token(_cfg(GPTConfig, m["gptf"]), T)
        assert abs(ff - fb) / fb < 0.02, size  # same training FLOPs per byte
        params[size] = bdh
    assert params == {"130k": 131_072, "460k": 458_752}  # 3 n d + 2 V d, n = 8 d: d = 64 and 128
    # the analysis reads the best-trained model: the largest 3-epoch BDH
    units = {u.name: u for u in papers.get("bdh").plan(b, [0])}
    assert units["analysis-s0"].deps == ("bdh/parity-460k-bdh-s0",)
    assert units["parity-460k-bdh-s0"].config["steps"] == par["steps"] and units["lm-bdh-s0"].config["steps"] == 600


def test_word_swap_controls_match_length_and_spelling():
    text = (
        b"The King is dead, long live the king.\n"  # two hits: skipped
        b"short king\n"  # too short
        b"And so the KING rode forth to battle at dawn\n"
        b"Our gracious queen hath sent for thee, my lord\n"
        b"Bring me the crown of gold and the sceptre now\n"
        b"Then the duke of York spake unto the people\n"
        b"Then the duke of York spake unto the people\n"  # repeat: skipped
        b"Nothing royal here? yes, one royal word twice\n"  # two hits: skipped
    )
    swaps = {"king": "ring", "queen": "queer", "crown": "crowd", "duke": "dune", "royal": "loyal"}
    concept, control = word_swap_sentences(text, swaps, 4, min_bytes=20)
    assert concept == [
        b"And so the KING rode forth to battle at dawn",
        b"Our gracious queen hath sent for thee, my lord",
        b"Bring me the crown of gold and the sceptre now",
        b"Then the duke of York spake unto the people",
    ]
    assert control == [
        b"And so the RING rode forth to battle at dawn",
        b"Our gracious queer hath sent for thee, my lord",
        b"Bring me the crowd of gold and the sceptre now",
        b"Then the dune of York spake unto the people",
    ]
    for a, c in zip(concept, control):
        assert len(a) == len(c) and sum(x != y for x, y in zip(a, c)) == 1
    with pytest.raises(ValueError, match="asked for 5"):
        word_swap_sentences(text, swaps, 5, min_bytes=20)
    with pytest.raises(ValueError, match="same length"):
        word_swap_sentences(text, {"king": "kings"}, 4)
    with pytest.raises(ValueError, match="count must be"):
        word_swap_sentences(text, swaps, 2)


def test_tail_fitter_agrees_with_the_powerlaw_package():
    import powerlaw  # a runtime dependency (pyproject): its absence must fail, not skip

    rng = np.random.default_rng(0)
    # discrete power law with alpha 2.5 above xmin = 5 (inverse-CDF sampling of the continuous
    # approximation, rounded), below it uniform noise
    u = rng.random(4000)
    tail = np.floor((5 - 0.5) * (1 - u) ** (-1 / 1.5) + 0.5).astype(int)
    x = np.concatenate([tail, rng.integers(1, 5, 1000)])
    ours = fit_power_law(x, xmin=5)
    ref = powerlaw.Fit(x, xmin=5, discrete=True, verbose=False).power_law.alpha
    assert abs(ours.alpha - ref) < 0.03
    assert abs(ours.alpha - 2.5) < 0.1


def test_stdlib_python_corpus_concatenates_py_files_in_order(tmp_path):
    from engramlab.bdh.merge import stdlib_python_corpus

    lib = tmp_path / "lib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "test").mkdir()
    (lib / "site-packages").mkdir()
    (lib / "b.py").write_text("x = 1\n" * 100)
    (lib / "pkg" / "a.py").write_text("def f():\n    return 2\n" * 60)
    (lib / "test" / "t.py").write_text("skipped\n" * 200)
    (lib / "site-packages" / "s.py").write_text("skipped\n" * 200)
    (lib / "c.txt").write_text("not python\n" * 200)
    info = stdlib_python_corpus(tmp_path / "py.txt", max_bytes=1500, stdlib=lib)
    data = (tmp_path / "py.txt").read_bytes()
    assert info["bytes"] == len(data) == 1500 and info["files"] == 2  # pkg/a.py cut at the limit
    head_b = b"# file: b.py\n"
    assert data.startswith(head_b + b"x = 1\n" * 100 + b"\n# file: pkg/a.py\ndef f():")  # sorted order
    assert b"skipped" not in data and b"not python" not in data
    with pytest.raises(ValueError, match="max_bytes"):
        stdlib_python_corpus(tmp_path / "p2.txt", max_bytes=10, stdlib=lib)
