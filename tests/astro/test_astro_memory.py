"""The memory experiment's plumbing: matched sizes, output files of the documented form, clear errors."""

import argparse
import json
import math

import pytest
import torch

from engramlab.astro.cli import add_subparser
from engramlab.astro.memory import MemoryConfig, build_models, run_memory


def test_models_are_parameter_matched():
    cfg = MemoryConfig(d_model=32)
    models = build_models(cfg, vocab_size=12, max_len=60)
    n = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    assert set(n) == {"astrosnn", "lif", "lstm", "gpt"}
    assert models["lif"].config.astrocyte is False and models["astrosnn"].config.astrocyte is True
    for k, v in n.items():
        assert abs(v - n["astrosnn"]) / n["astrosnn"] < 0.1, (k, n)


def test_run_writes_memory_json_and_figures(tmp_path):
    torch.manual_seed(0)
    cfg = MemoryConfig(
        task="copy",
        delays=[0, 3],
        n_items=2,
        n_symbols=4,
        steps=2,
        batch_size=4,
        eval_batches=1,
        eval_every=1,
        d_model=16,
        train_delays="uniform",
    )
    res = run_memory(cfg, tmp_path)
    saved = json.loads((tmp_path / "memory.json").read_text())
    assert saved == res
    assert set(saved) == {"task", "delays", "accuracy", "params", "steps", "lr", "train_seconds", "protocol"}
    assert saved["task"] == "copy" and saved["delays"] == [0, 3] and saved["steps"] == 2
    for name in ("astrosnn", "lif", "lstm", "gpt"):
        accs = saved["accuracy"][name]
        assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
        assert saved["params"][name] > 0
    assert (tmp_path / "memory.png").stat().st_size > 0 and (tmp_path / "curves.png").stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"delays": [10, -1]}, "delay"),
        ({"delays": []}, "at least one delay"),
        ({"models": ["lif", "rnn"]}, "unknown model"),
        ({"n_items": 9, "n_symbols": 8}, "K=9"),
        ({"steps": 0}, "steps"),
        ({"train_delays": "random"}, "train_delays"),
    ],
)
def test_bad_parameters_fail_before_any_work(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        run_memory(MemoryConfig(**kw), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_parses_the_issue_command():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_subparser(sub)
    args = parser.parse_args("astro memory --task copy --delays 10,50,100,200,500 --out DIR".split())
    assert args.task == "copy" and args.delays == [10, 50, 100, 200, 500] and args.out == "DIR"
    assert callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args("astro memory --task copy --delays 10,x --out DIR".split())
    args = parser.parse_args("astro memory --lrs lstm=1e-2,gpt=3e-3 --out DIR".split())
    assert args.lrs == {"lstm": 0.01, "gpt": 0.003}
    assert parser.parse_args("astro memory --out DIR".split()).lrs == {}
    for bad in ("lstm", "lstm=fast", "=0.1"):
        with pytest.raises(SystemExit):
            parser.parse_args(["astro", "memory", "--lrs", bad, "--out", "DIR"])


def test_run_without_progress_prints_no_bar(tmp_path, capsys):
    cfg = MemoryConfig(
        task="copy",
        delays=[2],
        n_items=2,
        n_symbols=4,
        steps=3,
        batch_size=4,
        eval_batches=1,
        eval_every=1,
        d_model=16,
        models=["lstm"],
    )
    run_memory(cfg, tmp_path / "quiet", progress=False)
    assert "it/s" not in capsys.readouterr().err
    run_memory(cfg, tmp_path / "loud", progress=True)
    assert "lstm D=2" in capsys.readouterr().err  # the bar is there by default, so the check above can fail


def test_draw_delay_modes_stay_in_range_and_loguniform_favours_short_delays():
    from engramlab.astro.memory import draw_delay

    g = torch.Generator().manual_seed(0)
    assert {draw_delay("fixed", 7, g) for _ in range(20)} == {7}
    u = [draw_delay("uniform", 500, g) for _ in range(4000)]
    lg = [draw_delay("loguniform", 500, g) for _ in range(4000)]
    assert min(u) >= 0 and max(u) <= 500 and min(lg) >= 0 and max(lg) <= 500
    # log-uniform: P(D < 10) = ln 10 / ln 501 ~ 0.37 (uniform: 10 / 501 ~ 0.02)
    assert abs(sum(d < 10 for d in lg) / 4000 - math.log(10) / math.log(501)) < 0.03
    assert sum(d < 10 for d in u) / 4000 < 0.05


def test_one_training_scored_at_every_delay_with_per_model_lr_and_builders(tmp_path):
    from engramlab.astro.memory import build_models

    calls = []

    def build(vocab, max_len, target):
        calls.append((vocab, max_len, target))
        return build_models(MemoryConfig(models=["lstm"], d_model=16), vocab, max_len)["lstm"]

    cfg = MemoryConfig(
        task="recall",
        delays=[1, 4],
        n_items=2,
        n_symbols=4,
        steps=2,
        batch_size=4,
        eval_batches=1,
        eval_every=1,
        d_model=16,
        per_delay=False,
        train_delays="loguniform",
        models=["no_norm", "extra"],
        lrs={"extra": 0.5},
    )
    res = run_memory(cfg, tmp_path, builders={"extra": build})
    assert calls and all(c[1] == 4 * 2 + 4 for c in calls)  # max_len of the longest delay
    assert res["lr"] == {"no_norm": cfg.lr, "extra": 0.5}
    assert all(len(res["accuracy"][m]) == 2 for m in ("no_norm", "extra"))
    curves = json.loads((tmp_path / "curves.json").read_text())["curves"]
    assert set(curves) == {"no_norm@4", "extra@4"}  # one training each, at the largest delay
    with pytest.raises(ValueError, match="jobs=1"):
        run_memory(MemoryConfig(models=["extra"], jobs=2), tmp_path / "x", builders={"extra": build})
    with pytest.raises(ValueError, match="lrs"):
        run_memory(MemoryConfig(lrs={"gpt": -1.0}), tmp_path / "y")
