"""Curricula: config validation, the advance rule's N sequence, a tiny end-to-end run, checkpoints, CLI."""

import argparse
import json

import pytest
import torch

from engramlab.timescales.cli import add_subparser
from engramlab.timescales.curriculum import (
    TrainConfig,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    train_curriculum,
)
from engramlab.timescales.model import LeakyRNN


def test_bad_config_gets_clear_errors():
    with pytest.raises(ValueError, match="beyond the heads"):
        TrainConfig(curriculum="multi", max_n=102, n_heads=100)
    TrainConfig(curriculum="multi", max_n=101, n_heads=100)  # N = 2..101 fits 100 heads
    TrainConfig(curriculum="single", max_n=500, n_heads=1)  # one head is reused
    with pytest.raises(ValueError, match="n_min must be >= 2"):
        TrainConfig(n_min=1)
    with pytest.raises(ValueError, match="max_n=3 must be >= n_min=5"):
        TrainConfig(n_min=5, max_n=3)
    with pytest.raises(ValueError, match="unknown task"):
        TrainConfig(task="copy")
    with pytest.raises(ValueError, match="unknown curriculum"):
        TrainConfig(curriculum="cumulative")
    with pytest.raises(ValueError, match="unknown TrainConfig key"):
        TrainConfig.from_dict({"tsak": "parity"})


def test_curriculum_n_sequences_and_heads():
    s = TrainConfig(curriculum="single")
    assert s.initial_ns() == [2] and s.next_ns([2]) == [3] and s.heads_for([7]) == [0]
    m = TrainConfig(curriculum="multi")
    assert m.next_ns([2, 3, 4]) == [2, 3, 4, 5] and m.heads_for([2, 3, 4, 5]) == [0, 1, 2, 3]
    w = TrainConfig(curriculum="sliding", sliding_heads=4, sliding_shift=2)
    assert w.initial_ns() == [2, 3, 4, 5] and w.next_ns([2, 3, 4, 5]) == [4, 5, 6, 7]
    assert w.heads_for([4, 5, 6, 7]) == [0, 1, 2, 3]
    assert TrainConfig(optimizer="auto").resolved_lr == 0.05
    assert TrainConfig(model="lstm").resolved_optimizer == "adam"


@pytest.mark.parametrize("curriculum", ["single", "multi"])
def test_tiny_run_solves_n2_and_writes_checkpoints(tmp_path, curriculum):
    torch.set_num_threads(1)
    cfg = TrainConfig(
        task="dms",
        curriculum=curriculum,
        max_n=3,
        n_neurons=24,
        n_heads=4,
        batch_size=64,
        steps_per_epoch=40,
        test_batches=4,
        max_epochs=40,
        seed=0,
    )
    summary = train_curriculum(cfg, tmp_path, progress=False)
    assert summary["n_reached"] is not None and summary["n_reached"] >= 2
    ckpts = list_checkpoints(tmp_path)
    assert [c[1] for c in ckpts] == list(range(2, summary["n_reached"] + 1))
    model, meta = load_checkpoint(ckpts[0][2])
    assert isinstance(model, LeakyRNN) and meta["ns"] == [2] and min(meta["accuracy"]) > 98
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["epoch"] == 1
    assert json.loads((tmp_path / "summary.json").read_text())["n_reached"] == summary["n_reached"]


def test_checkpoint_roundtrip_and_overwrite(tmp_path):
    m = LeakyRNN(n_neurons=5, n_heads=2, train_tau=False, tau=2.0)
    save_checkpoint(m, tmp_path / "N002_N002", {"ns": [2], "heads": [0]})
    save_checkpoint(m, tmp_path / "N002_N002", {"ns": [2], "heads": [0]})  # atomic replace
    m2, meta = load_checkpoint(tmp_path / "N002_N002")
    x = torch.ones(2, 4, 1)
    h0 = m.init_state(2)
    torch.testing.assert_close(m(x, h0=h0), m2(x, h0=h0))
    assert m2.config == m.config and meta["ns"] == [2]
    with pytest.raises(FileNotFoundError, match="not a timescales checkpoint"):
        load_checkpoint(tmp_path)


def test_cli_rejects_bad_input(tmp_path, capsys):
    p = argparse.ArgumentParser(prog="engramlab")
    add_subparser(p.add_subparsers(dest="cmd", required=True))
    with pytest.raises(SystemExit):
        p.parse_args(["timescales", "train", "--task", "copy", "--out", str(tmp_path)])
    assert "invalid choice: 'copy'" in capsys.readouterr().err
    args = p.parse_args(["timescales", "train", "--curriculum", "multi", "--max-n", "150", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="beyond the heads"):
        args.func(args)
    args = p.parse_args(["timescales", "train", "--n-min", "1", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="n_min must be >= 2"):
        args.func(args)
    args = p.parse_args(["timescales", "analyze", str(tmp_path / "nope")])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        args.func(args)
