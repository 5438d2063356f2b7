"""Checkpoint folders: ``config.json`` + ``model.safetensors`` + ``trainer.pt`` + ``metrics.jsonl``.

Every file is written to a temporary name and renamed into place, model and trainer state
carry the same step number, and loading checks that they agree: a folder left incomplete by a
crash is reported as such instead of being half-loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

import engramlab
from engramlab.io import atomic_write, write_json
from engramlab.train.config import TrainConfig, config_from_dict, config_to_dict
from engramlab.train.registry import get_model_spec

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TRAINER = "trainer.pt"
METRICS = "metrics.jsonl"


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, incomplete or corrupted."""


def state_dict_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies; tensors that share storage (tied weights) are saved once."""
    sd = model.state_dict()
    seen: dict[tuple, str] = {}
    out = {}
    for k, v in sd.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), tuple(v.stride()))
        if key in seen:
            continue
        seen[key] = k
        out[k] = v.detach().to("cpu").contiguous().clone()
    return out


def save_model_folder(
    out_dir: str | Path,
    model: torch.nn.Module,
    model_name: str,
    train_cfg: TrainConfig | None = None,
    step: int = 0,
    trainer_state: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint folder (atomically, file by file; weights before trainer state)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = {
        "model": model_name,
        "model_config": config_to_dict(model.config),
        "train_config": config_to_dict(train_cfg) if train_cfg is not None else None,
        "step": int(step),
        "engramlab_version": engramlab.__version__,
    }
    write_json(out / CONFIG, cfg)
    atomic_write(out / WEIGHTS, lambda p: save_file(state_dict_for_saving(model), p, metadata={"step": str(step)}))
    if trainer_state is not None:
        atomic_write(out / TRAINER, lambda p: torch.save({**trainer_state, "step": int(step)}, p))


def read_config(run_dir: str | Path) -> dict[str, Any]:
    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {run}")
    path = run / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{run} is not a checkpoint folder: {CONFIG} is missing")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is corrupted: not valid JSON ({e})") from None
    for key in ("model", "model_config"):
        if key not in cfg:
            raise CheckpointError(f"{path} is incomplete: the key {key!r} is missing")
    return cfg


def load_checkpoint(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, str, TrainConfig | None, int]:
    """Rebuild the model of a checkpoint folder -> (model, model_name, train_config, step)."""
    run = Path(run_dir)
    cfg = read_config(run)
    spec = get_model_spec(cfg["model"])
    try:
        model_cfg = config_from_dict(spec.config_cls, cfg["model_config"], where=f"{run / CONFIG} model_config")
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{run / CONFIG} does not describe a valid {cfg['model']} model: {e}") from None
    model = spec.model_cls(model_cfg)
    wpath = run / WEIGHTS
    if not wpath.is_file():
        raise CheckpointError(f"checkpoint {run} is incomplete: {WEIGHTS} is missing")
    try:
        weights = load_file(str(wpath))
        with safe_open(str(wpath), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{wpath} is corrupted: {e}") from None
    if "step" in meta and "step" in cfg and int(meta["step"]) != int(cfg["step"]):
        raise CheckpointError(
            f"checkpoint {run} is incomplete: {WEIGHTS} is from step {meta['step']} but {CONFIG} "
            f"from step {cfg['step']} (a save was interrupted)"
        )
    own = model.state_dict()
    missing = [k for k in own if k not in weights and not _is_tied_alias(model, k, weights)]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{wpath} does not match the {cfg['model']} model of {CONFIG}: "
            f"missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}"
        )
    for k, v in weights.items():
        if own[k].shape != v.shape:
            raise CheckpointError(
                f"{wpath}: tensor {k!r} has shape {tuple(v.shape)}, the config expects {tuple(own[k].shape)}"
            )
    model.load_state_dict(weights, strict=False)
    train_cfg = None
    if cfg.get("train_config"):
        train_cfg = config_from_dict(TrainConfig, cfg["train_config"], where=f"{run / CONFIG} train_config")
    return model.to(device), cfg["model"], train_cfg, int(cfg.get("step", 0))


def _is_tied_alias(model: torch.nn.Module, key: str, weights: dict[str, torch.Tensor]) -> bool:
    """A state-dict key that shares storage with another key that is present (weight tying)."""
    sd = model.state_dict()
    ptr = sd[key].untyped_storage().data_ptr()
    return any(k in weights for k, v in sd.items() if k != key and v.untyped_storage().data_ptr() == ptr)


def load_trainer_state(run_dir: str | Path) -> dict[str, Any]:
    run = Path(run_dir)
    path = run / TRAINER
    if not path.is_file():
        raise CheckpointError(f"cannot resume from {run}: {TRAINER} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for a damaged pickle/zip
        raise CheckpointError(f"{path} is corrupted: {e}") from None
    cfg = read_config(run)
    if int(state.get("step", -1)) != int(cfg.get("step", -2)):
        raise CheckpointError(
            f"checkpoint {run} is incomplete: {TRAINER} is at step {state.get('step')} but "
            f"{CONFIG} at step {cfg.get('step')} (a save was interrupted)"
        )
    return state
