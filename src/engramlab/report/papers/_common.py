"""Helpers the per-paper tables share: training a language model into a unit folder, reading its
curve back, copying a figure an experiment drew, and small plotting conveniences."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path

from engramlab import io


def train_lm(
    model_name: str, preset: str, sets: dict, steps: int, seed: int, folder: Path, ctx, data: str = "shakespeare"
) -> dict:
    """Train a registered sequence model (the engine) into ``folder/run``; write ``folder/result.json``.

    result.json: {"model", "params", "steps", "tokens", "val_loss", "val_bpb", "curve": [[step, val_loss]]}.
    """
    from engramlab.train.registry import get_model_spec
    from engramlab.train.run import build_configs, train

    sets = {k: str(v) for k, v in {**sets, "seed": seed}.items()}
    model_cfg, train_cfg = build_configs(model_name, preset, sets, data, steps)
    params = get_model_spec(model_name).model_cls(model_cfg).num_params()
    res = train(
        model_name,
        preset,
        data=data,
        out=str(folder / "run"),
        steps=steps,
        sets=sets,
        resume=False,
        device=ctx.device,
        progress=ctx.progress,
    )
    curve = []
    metrics = folder / "run" / "metrics.jsonl"
    for line in metrics.read_text().splitlines():
        rec = json.loads(line)
        if "val_loss" in rec:
            curve.append([rec["step"], rec["val_loss"]])
    out = {
        "model": model_name,
        "params": params,
        "steps": train_cfg.steps,
        "tokens": train_cfg.steps * train_cfg.batch_size * train_cfg.block_size * train_cfg.grad_accum,
        "batch_size": train_cfg.batch_size,
        "block_size": train_cfg.block_size,
        "val_loss": res["val_loss"],
        "val_bpb": res["val_bpb"],
        "curve": curve,
        "model_config": io.to_jsonable(model_cfg),
    }
    io.write_json(folder / "result.json", out)
    return out


def copy_figure(src: Path, dst: Path) -> bool:
    """Copy a PNG an experiment drew (atomically); False when it does not exist."""
    if not Path(src).is_file():
        return False
    io.atomic_write_bytes(dst, Path(src).read_bytes())
    return True


def mean(xs: Sequence[float]) -> float:
    return statistics.fmean(xs)


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def mean_spread(values: Sequence[float | None], digits: int = 3) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    m = statistics.fmean(vals)
    if len(vals) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{min(vals):.{digits}f}, {max(vals):.{digits}f}]"
