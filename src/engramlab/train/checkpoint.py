"""The engine's run folders: ``config.json`` + ``model.safetensors`` + ``trainer.pt`` + ``metrics.jsonl``.

A run folder is a model folder (``engramlab.pretrained``: it loads with ``engramlab.load`` and
``Model.from_pretrained``) whose config.json also holds the engine's ``"train_config"`` and
``"step"``, with the trainer state beside it. The engine updates it in place: every file is written
to a temporary name and renamed into place, model and trainer state carry the same step number, and
loading checks that they agree, so a folder left incomplete by a crash is reported as such instead
of being half-loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from engramlab.io import atomic_folder  # noqa: F401  (kept importable from here)
from engramlab.pretrained import (
    CONFIG_FILE,
    METRICS_FILE,
    TRAINER_FILE,
    WEIGHTS_FILE,
    ModelFolderError,
    load_model,
    read_model_config,
    state_dict_for_saving,
    write_model_files,
)
from engramlab.train.config import TrainConfig, config_from_dict
from engramlab.train.registry import ENGINE_MODELS

__all__ = [
    "CONFIG",
    "METRICS",
    "TRAINER",
    "WEIGHTS",
    "CheckpointError",
    "load_checkpoint",
    "load_trainer_state",
    "read_config",
    "save_model_folder",
    "state_dict_for_saving",
]

CONFIG = CONFIG_FILE
WEIGHTS = WEIGHTS_FILE
TRAINER = TRAINER_FILE
METRICS = METRICS_FILE

CheckpointError = ModelFolderError  # a checkpoint folder that is missing, incomplete or corrupted


def save_model_folder(
    out_dir: str | Path,
    model: torch.nn.Module,
    model_name: str,
    train_cfg: TrainConfig | None = None,
    step: int = 0,
    trainer_state: dict[str, Any] | None = None,
) -> None:
    """Write (or update in place) a run folder, file by file, each atomically; weights before trainer state.

    Without ``train_cfg`` and ``trainer_state`` (a model no trainer produced, e.g. a merge) the folder is
    a plain model folder: config.json records no step.
    """
    trained = train_cfg is not None or trainer_state is not None
    write_model_files(
        out_dir,
        model,
        model_name,
        step=int(step) if trained else None,
        train_config=train_cfg,
        trainer_state=trainer_state,
    )


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """config.json of a run folder (see ``engramlab.pretrained.read_model_config``)."""
    if not Path(run_dir).exists():
        raise CheckpointError(f"checkpoint folder not found: {run_dir}")
    return read_model_config(run_dir)


def load_checkpoint(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, str, TrainConfig | None, int]:
    """Rebuild the model of a run folder -> (model, model_name, train_config, step).

    Any model folder loads (a plain one gives train_config None and step 0); the model is left in
    training mode, as the engine builds it.
    """
    run = Path(run_dir)
    if not run.exists():
        raise CheckpointError(f"checkpoint folder not found: {run}")
    model, cfg = load_model(run, device, eval_mode=False)
    train_cfg = None
    if cfg.get("train_config") and cfg["model"] in ENGINE_MODELS:
        train_cfg = config_from_dict(TrainConfig, cfg["train_config"], where=f"{run / CONFIG} train_config")
    return model, cfg["model"], train_cfg, int(cfg.get("step") or 0)


def load_trainer_state(run_dir: str | Path) -> dict[str, Any]:
    """trainer.pt of a run folder, checked against the step of its config.json."""
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
