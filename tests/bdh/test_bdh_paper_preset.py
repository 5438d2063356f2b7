"""The ``paper`` preset is the official training recipe; a constant schedule keeps the LR constant."""

import json

import pytest
import torch

from engramlab.bdh.model import BDH, BDHConfig
from engramlab.train.config import TrainConfig
from engramlab.train.engine import Trainer, check_train_config, lr_at
from engramlab.train.run import build_configs


def test_paper_preset_is_the_official_recipe():
    model_cfg, cfg = build_configs("bdh", "paper")
    # pathwaycom/bdh train.py: AdamW(lr=1e-3, weight_decay=0.1) with torch's default betas, no
    # schedule, no clipping, 3,000 steps of 32 x 512 bytes; bdh.py: 6 layers, d 256, 4 heads, x128
    assert (cfg.lr, cfg.schedule, cfg.warmup_steps) == (1e-3, "constant", 0)
    assert (cfg.beta1, cfg.beta2, cfg.weight_decay, cfg.grad_clip) == (0.9, 0.999, 0.1, 0.0)
    assert (cfg.steps, cfg.batch_size, cfg.block_size) == (3000, 32, 512)
    assert (
        model_cfg.n_layer,
        model_cfg.n_embd,
        model_cfg.n_head,
        model_cfg.mlp_internal_dim_multiplier,
        model_cfg.dropout,
    ) == (6, 256, 4, 128, 0.1)
    assert [lr_at(s, cfg) for s in (0, 1, 1500, 2999, 3000, 5000)] == [1e-3] * 6
    check_train_config(cfg)


def test_constant_schedule_keeps_the_lr_constant_and_cosine_still_decays():
    const = TrainConfig(steps=100, lr=2e-3, min_lr=1e-4, warmup_steps=10, schedule="constant")
    assert lr_at(0, const) == pytest.approx(2e-4)  # the warm-up is kept when asked for
    assert {lr_at(s, const) for s in range(10, 120)} == {2e-3}
    cos = TrainConfig(steps=100, lr=2e-3, min_lr=1e-4, warmup_steps=10)
    assert cos.schedule == "cosine"
    assert lr_at(100, cos) == pytest.approx(1e-4) and lr_at(55, cos) == pytest.approx((2e-3 + 1e-4) / 2)
    with pytest.raises(ValueError, match="schedule='linear'"):
        check_train_config(TrainConfig(schedule="linear"))


def test_engine_trains_at_a_constant_lr(tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_bytes(b"to be or not to be, that is the question. " * 40)
    torch.manual_seed(0)
    model = BDH(BDHConfig(n_layer=1, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0))
    cfg = TrainConfig(
        data=str(corpus),
        steps=6,
        batch_size=2,
        block_size=16,
        lr=1e-3,
        schedule="constant",
        warmup_steps=0,
        beta2=0.999,
        grad_clip=0.0,
        eval_interval=6,
        eval_batches=1,
        log_interval=1,
    )
    tr = Trainer(model, cfg, tmp_path / "run", "bdh", progress=False, device="cpu")
    tr.fit()
    lrs = [r["lr"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "lr" in r]
    assert len(lrs) >= 5 and set(lrs) == {1e-3}
    assert all(g["lr"] == 1e-3 and g["betas"] == (0.9, 0.999) for g in tr.optimizer.param_groups)
