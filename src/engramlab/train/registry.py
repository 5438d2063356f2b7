"""Names of the trainable sequence models, resolved lazily so the CLI imports only what it runs.

Each registered module exposes ``MODEL`` (a LanguageModel subclass), ``CONFIG`` (its dataclass)
and ``PRESETS = {"tiny": {"model": {...}, "train": {...}}, "small": ..., "paper": ...}`` where
"train" holds TrainConfig fields.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

MODELS: dict[str, str] = {
    "gpt": "engramlab.baselines.gpt",
    "lstm": "engramlab.baselines.lstm",
    "bdh": "engramlab.bdh.model",
    "astro": "engramlab.astro.model",
}


@dataclass
class ModelSpec:
    name: str
    model_cls: type
    config_cls: type
    presets: dict[str, dict[str, dict[str, Any]]]


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    try:
        mod = importlib.import_module(MODELS[name])
    except ModuleNotFoundError as e:  # a system not built yet
        raise ValueError(f"model {name!r} is not available in this installation ({e})") from None
    return ModelSpec(name, mod.MODEL, mod.CONFIG, mod.PRESETS)
