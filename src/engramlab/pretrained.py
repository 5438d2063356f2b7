"""One folder format for every engramlab model: ``save_pretrained`` / ``from_pretrained`` / ``engramlab.load``.

A model folder holds

- ``config.json``: ``{"model": NAME, "model_config": {...}, "engramlab_version": "..."}`` where NAME is
  a name of ``engramlab.train.registry.MODELS`` (``"gpt"``, ``"bdh"``, ``"leaky_rnn"``,
  ``"onehot_hmmglm"``, ...) and "model_config" the model's dataclass config
  (``engramlab.train.config.config_to_dict``). A folder written by a trainer also holds ``"step"`` and
  ``"train_config"`` (the trainer's dataclass) and may hold more of the trainer's records (the
  timescales curriculum adds the N it solved, "ns", and its heads);
- ``model.safetensors``: the state dict; tensors that share storage (tied weights) are stored once;
- for training runs only, ``trainer.pt`` (optimizer, RNG, step) and ``metrics.jsonl``.

Every model class mixes in ``Pretrained``::

    model.save_pretrained("models/tiny-gpt")          # a non-empty folder is refused unless overwrite=True
    same = GPT.from_pretrained("models/tiny-gpt")      # the class must match the folder's "model"
    any_model = engramlab.load("models/tiny-gpt")      # the class is chosen by the folder's "model"

``save_pretrained`` writes the whole folder at once (``engramlab.io.atomic_folder``); trainers that
update a run folder in place write its files one by one, each atomically (``write_model_files``).
Loaded models are in eval mode, on ``device``, with the dtypes they were saved in.

Folders written before this format existed load too: the HMM-GLM ``save`` wrote the
``HMMGLMConfig`` itself as config.json (its "model" was "glm", "hmmglm", "gaussian" or "onehot"),
and the timescales curriculum wrote ``{"model_config": ..., "train_config": ..., "ns": ...}`` without
a "model" key; ``read_model_config`` turns both into the format above.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

import engramlab
from engramlab.io import atomic_folder, atomic_write, write_json
from engramlab.train.config import config_from_dict, config_to_dict
from engramlab.train.registry import MODELS, model_class, model_name

__all__ = [
    "CONFIG_FILE",
    "METRICS_FILE",
    "TRAINER_FILE",
    "WEIGHTS_FILE",
    "ModelFolderError",
    "Pretrained",
    "load",
    "load_model",
    "load_weights",
    "read_model_config",
    "save_model",
    "state_dict_for_saving",
    "write_model_files",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINER_FILE = "trainer.pt"
METRICS_FILE = "metrics.jsonl"
RESERVED_KEYS = ("model", "model_config", "engramlab_version", "step", "train_config")

# HMM-GLM kinds of the folders hmmglm's save() wrote before the common format -> registered names
_LEGACY_HMMGLM = {"glm": "glm", "hmmglm": "hmmglm", "gaussian": "gaussian_hmmglm", "onehot": "onehot_hmmglm"}

M = TypeVar("M")


class ModelFolderError(ValueError):
    """A model folder that is missing, incomplete, corrupted or of another model."""


# ------------------------------------------------------------------------------------------- saving
def state_dict_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of the state dict; tensors that share storage (tied weights) are saved once."""
    seen: set[tuple] = set()
    out = {}
    for k, v in model.state_dict().items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), tuple(v.stride()))
        if key in seen:
            continue
        seen.add(key)
        out[k] = v.detach().to("cpu").contiguous().clone()
    return out


def write_model_files(
    folder: str | Path,
    model: torch.nn.Module,
    name: str | None = None,
    *,
    step: int | None = None,
    train_config: Any = None,
    trainer_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write config.json, model.safetensors and (given ``trainer_state``) trainer.pt into ``folder``.

    Each file is written atomically, config first; weights and trainer state carry ``step`` too, so
    that a folder left between two saves is detected on loading. ``name`` defaults to the registered
    name of ``type(model)``; ``extra`` adds keys to config.json. Returns the config.json dict.
    """
    folder = Path(folder)
    if name is None:
        name = model_name(type(model))
    elif not isinstance(model, model_class(name)):
        raise ValueError(f"cannot save a {type(model).__name__} as model {name!r} ({MODELS[name]})")
    if trainer_state is not None and step is None:
        raise ValueError("trainer_state needs the step it belongs to: pass step=")
    cfg: dict[str, Any] = {
        "model": name,
        "model_config": config_to_dict(model.config),
        "engramlab_version": engramlab.__version__,
    }
    if step is not None:
        cfg["step"] = int(step)
    if train_config is not None:
        cfg["train_config"] = dict(train_config) if isinstance(train_config, dict) else config_to_dict(train_config)
    if extra:
        clash = [k for k in extra if k in RESERVED_KEYS]
        if clash:
            raise ValueError(f"extra config.json keys {clash} clash with the reserved keys {list(RESERVED_KEYS)}")
        cfg.update(extra)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CONFIG_FILE, cfg)
    meta = {"step": str(int(step))} if step is not None else None
    atomic_write(folder / WEIGHTS_FILE, lambda p: save_file(state_dict_for_saving(model), p, metadata=meta))
    if trainer_state is not None:
        atomic_write(folder / TRAINER_FILE, lambda p: torch.save({**trainer_state, "step": int(step)}, p))
    return cfg


def save_model(model: torch.nn.Module, path: str | Path, overwrite: bool = False, **kwargs: Any) -> Path:
    """Write the model folder ``path`` at once (``atomic_folder``); ``kwargs`` go to ``write_model_files``.

    An existing file, or a folder that is not empty, is refused unless ``overwrite=True`` (then the
    whole folder is replaced, atomically).
    """
    path = Path(path)
    if path.exists() and not overwrite and (not path.is_dir() or any(path.iterdir())):
        what = "folder is not empty" if path.is_dir() else "path is a file"
        raise FileExistsError(
            f"cannot save the model to {path}: the {what}; pass overwrite=True to replace it, or choose a new folder"
        )
    with atomic_folder(path) as tmp:
        write_model_files(tmp, model, **kwargs)
    return path


# ------------------------------------------------------------------------------------------ loading
def _upgrade_legacy(cfg: dict[str, Any]) -> dict[str, Any]:
    """Bring the config.json of a folder written before the common format into it (see module doc)."""
    if "model_config" not in cfg and "n_states" in cfg and cfg.get("model") in _LEGACY_HMMGLM:
        return {"model": _LEGACY_HMMGLM[cfg["model"]], "model_config": dict(cfg)}
    if "model" not in cfg and isinstance(cfg.get("model_config"), dict):
        return {"model": "gated_rnn" if "cell" in cfg["model_config"] else "leaky_rnn", **cfg}
    return cfg


def read_model_config(folder: str | Path) -> dict[str, Any]:
    """The config.json of a model folder (older formats upgraded), with clear errors for a bad folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(
            f"model folder not found: {folder}" if not folder.exists() else f"{folder} is a file, not a model folder"
        )
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ModelFolderError(f"{folder} is not a model folder: {CONFIG_FILE} is missing")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{path} is corrupted: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise ModelFolderError(f"{path} is corrupted: expected a JSON object, got {type(cfg).__name__}")
    cfg = _upgrade_legacy(cfg)
    for key in ("model", "model_config"):
        if key not in cfg:
            raise ModelFolderError(f"{path} is incomplete: the key {key!r} is missing")
    return cfg


def _is_tied_alias(model: torch.nn.Module, key: str, weights: dict[str, torch.Tensor]) -> bool:
    """A state-dict key that shares storage with another key that is present (weight tying)."""
    sd = model.state_dict()
    ptr = sd[key].untyped_storage().data_ptr()
    return any(k in weights for k, v in sd.items() if k != key and v.untyped_storage().data_ptr() == ptr)


def _take_saved_dtypes(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Give each floating parameter / buffer the dtype it was saved in (a model saved after ``.double()``
    comes back in float64, not rounded to the float32 a fresh model starts in)."""
    own = model.state_dict()
    for key, t in weights.items():
        cur = own[key]
        if cur.dtype == t.dtype or not (cur.is_floating_point() and t.is_floating_point()):
            continue
        prefix, _, attr = key.rpartition(".")
        mod = model.get_submodule(prefix) if prefix else model
        if mod._parameters.get(attr) is not None:
            p = mod._parameters[attr]
            p.data = p.data.to(t.dtype)  # in place on the Parameter: tied aliases follow
        elif mod._buffers.get(attr) is not None:
            mod._buffers[attr] = mod._buffers[attr].to(t.dtype)


def load_weights(model: torch.nn.Module, folder: str | Path, cfg: dict[str, Any] | None = None) -> None:
    """Load ``folder/model.safetensors`` into ``model``, checking names, shapes and the step of config.json."""
    folder = Path(folder)
    cfg = read_model_config(folder) if cfg is None else cfg
    wpath = folder / WEIGHTS_FILE
    if not wpath.is_file():
        raise ModelFolderError(
            f"model folder {folder} is incomplete: {WEIGHTS_FILE} is missing "
            f"(a model folder holds {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    try:
        weights = load_file(str(wpath))
        with safe_open(str(wpath), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise ModelFolderError(f"{wpath} is corrupted: {e}") from None
    if "step" in meta and cfg.get("step") is not None and int(meta["step"]) != int(cfg["step"]):
        raise ModelFolderError(
            f"model folder {folder} is incomplete: {WEIGHTS_FILE} is from step {meta['step']} but {CONFIG_FILE} "
            f"from step {cfg['step']} (a save was interrupted)"
        )
    own = model.state_dict()
    missing = [k for k in own if k not in weights and not _is_tied_alias(model, k, weights)]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        raise ModelFolderError(
            f"{wpath} does not match the {cfg['model']} model of {CONFIG_FILE}: "
            f"missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}"
        )
    for k, v in weights.items():
        if own[k].shape != v.shape:
            raise ModelFolderError(
                f"{wpath}: tensor {k!r} has shape {tuple(v.shape)}, the config expects {tuple(own[k].shape)}"
            )
    _take_saved_dtypes(model, weights)
    model.load_state_dict(weights, strict=False)


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    expected: type | tuple[type, ...] | None = None,
    eval_mode: bool = True,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model of a folder -> (model, config.json dict).

    ``expected``: the class(es) the folder's model must be; ``eval_mode``: call ``model.eval()``.
    """
    folder = Path(path)
    cfg = read_model_config(folder)
    name = cfg["model"]
    try:
        cls = model_class(name)
    except ValueError as e:
        raise ModelFolderError(f"{folder / CONFIG_FILE}: {e}") from None
    if expected is not None and not issubclass(cls, expected):
        want = " or ".join(c.__name__ for c in (expected if isinstance(expected, tuple) else (expected,)))
        raise ModelFolderError(
            f"{folder} holds a {name!r} model ({cls.__name__}), not a {want}; "
            f"load it with {cls.__name__}.from_pretrained or engramlab.load"
        )
    try:
        where = f"{folder / CONFIG_FILE} model_config"
        config = config_from_dict(cls.get_config_class(), cfg["model_config"], where=where)
        model = cls.from_config(config)
    except (TypeError, ValueError) as e:
        raise ModelFolderError(f"{folder / CONFIG_FILE} does not describe a valid {name} model: {e}") from None
    load_weights(model, folder, cfg)
    model.to(device)
    if eval_mode:
        model.eval()
    return model, cfg


def load(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load any engramlab model folder; the class is chosen by config.json's "model" (in eval mode)."""
    return load_model(path, device)[0]


# -------------------------------------------------------------------------------------------- mixin
class Pretrained:
    """``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` with a dataclass ``config``.

    The class must be registered in ``engramlab.train.registry.MODELS``. Its config class is
    ``config_class``, else the ``CONFIG`` of the module that defines it; ``from_config(config)``
    builds an untrained model (``cls(config)`` unless overridden).
    """

    config_class: ClassVar[type | None] = None

    @classmethod
    def get_config_class(cls) -> type:
        if cls.config_class is not None:
            return cls.config_class
        mod = sys.modules.get(cls.__module__) or importlib.import_module(cls.__module__)
        found = getattr(mod, "CONFIG", None)
        if found is None:
            raise TypeError(f"{cls.__name__} names no config class: set {cls.__name__}.config_class")
        return found

    @classmethod
    def from_config(cls: type[M], config: Any) -> M:
        return cls(config)

    def save_pretrained(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the model folder ``path`` (config.json + model.safetensors) at once.

        An existing non-empty folder is refused unless ``overwrite=True``. Returns ``path``.
        """
        return save_model(self, path, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls: type[M], path: str | Path, device: str | torch.device = "cpu") -> M:
        """Load a folder written by ``save_pretrained`` (or a trainer); it must hold a ``cls``."""
        return load_model(path, device, expected=cls)[0]
