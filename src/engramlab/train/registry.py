"""The one registry of engramlab model names, resolved lazily so that nothing is imported before it runs.

``MODELS`` maps each name (the ``"model"`` key of a model folder's config.json) to ``"module:Class"``.
``engramlab.load(dir)`` picks the class from it; ``save_pretrained`` writes the name found here.

The training engine trains the names in ``ENGINE_MODELS``: their module also exposes ``MODEL`` (the
LanguageModel subclass), ``CONFIG`` (its dataclass) and ``PRESETS = {"tiny": {"model": {...},
"train": {...}}, "small": ..., "paper": ...}`` where "train" holds TrainConfig fields.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

MODELS: dict[str, str] = {
    "gpt": "engramlab.baselines.gpt:GPT",
    "lstm": "engramlab.baselines.lstm:LSTMLM",
    "bdh": "engramlab.bdh.model:BDH",
    "astro": "engramlab.astro.model:AstroSNN",
    "leaky_rnn": "engramlab.timescales.model:LeakyRNN",
    "gated_rnn": "engramlab.timescales.model:GatedRNN",
    "glm": "engramlab.hmmglm.models:GLM",
    "hmmglm": "engramlab.hmmglm.models:HMMGLM",
    "gaussian_hmmglm": "engramlab.hmmglm.models:GaussianHMMGLM",
    "onehot_hmmglm": "engramlab.hmmglm.models:OneHotHMMGLM",
}

ENGINE_MODELS: tuple[str, ...] = ("gpt", "lstm", "bdh", "astro")


def model_class(name: str) -> type:
    """The class registered as ``name``; one clear error for an unknown name, listing the known ones."""
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    module, _, cls_name = MODELS[name].partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:  # a system not built in this installation
        raise ValueError(f"model {name!r} is not available in this installation ({e})") from None
    return getattr(mod, cls_name)


def model_name(cls: type) -> str:
    """The registered name of the class ``cls`` (exact class, not a subclass)."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    for name, where in MODELS.items():
        if where == target:
            return name
    raise ValueError(
        f"{cls.__qualname__} ({cls.__module__}) is not a registered model, so it cannot be saved as a model "
        f"folder; registered: {', '.join(f'{n} ({w})' for n, w in MODELS.items())}"
    )


@dataclass
class ModelSpec:
    name: str
    model_cls: type
    config_cls: type
    presets: dict[str, dict[str, dict[str, Any]]]


def get_model_spec(name: str) -> ModelSpec:
    """What the engine needs to train the model ``name`` (one of ``ENGINE_MODELS``)."""
    if name not in ENGINE_MODELS:
        extra = " (it is a model of engramlab, but not one the training engine trains)" if name in MODELS else ""
        raise ValueError(f"unknown model {name!r}{extra}; known models: {', '.join(sorted(ENGINE_MODELS))}")
    cls = model_class(name)
    mod = importlib.import_module(cls.__module__)
    return ModelSpec(name, mod.MODEL, mod.CONFIG, mod.PRESETS)
