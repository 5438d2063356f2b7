"""Dataclass configs that round-trip through JSON, and ``key=value`` overrides with clear errors."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The dataclass ``cfg`` as a plain dict (nested dataclasses become dicts)."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"expected a dataclass config, got {type(cfg).__name__}")
    return dataclasses.asdict(cfg)


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def check_keys(cls: type, keys, where: str) -> None:
    """Raise one clear error for unknown keys, listing the valid ones."""
    valid = field_names(cls)
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise ValueError(f"unknown {where} key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")


def _required_fields(cls: type) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


def config_from_dict(cls: type[T], d: dict[str, Any], where: str | None = None) -> T:
    """Rebuild the dataclass ``cls`` from ``d``: unknown and missing keys raise one clear ValueError;
    keys left out take the field's default. ``config_from_dict(type(c), config_to_dict(c)) == c``."""
    where = where or cls.__name__
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a JSON object of {cls.__name__} fields, got {type(d).__name__}")
    check_keys(cls, d.keys(), where)
    missing = [k for k in _required_fields(cls) if k not in d]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(map(repr, missing))} (required by {cls.__name__})")
    return cls(**d)


def config_to_json(cfg: Any) -> str:
    """``cfg`` as indented JSON text (the form config.json files hold)."""
    return json.dumps(config_to_dict(cfg), indent=2) + "\n"


def config_from_json(cls: type[T], text: str, where: str | None = None) -> T:
    """Inverse of ``config_to_json``, with the key checks of ``config_from_dict``."""
    where = where or cls.__name__
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e})") from None
    return config_from_dict(cls, d, where)


def save_config_json(cfg: Any, path: str | Path, **extra: Any) -> None:
    from engramlab.io import atomic_write_text

    data = {**extra, **config_to_dict(cfg)} if extra else config_to_dict(cfg)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _resolve_type(cls: type, name: str) -> Any:
    hints = typing.get_type_hints(cls)
    return hints.get(name, str)


def parse_value(tp: Any, text: str, key: str) -> Any:
    """Parse a command-line string into the field's declared type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        return parse_value(non_none[0], text, key)
    if origin is typing.Literal:
        if text not in [str(a) for a in args]:
            raise ValueError(f"{key}={text!r} is not allowed; expected one of {', '.join(map(str, args))}")
        return next(a for a in args if str(a) == text)
    try:
        if tp is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if tp is str:
            return text
        if origin in (list, tuple):
            return json.loads(text)
    except ValueError:
        raise ValueError(f"{key}={text!r}: expected a value of type {getattr(tp, '__name__', tp)}") from None
    return json.loads(text)


def apply_overrides(cfg: T, overrides: dict[str, str], where: str | None = None) -> T:
    """Return a copy of cfg with string overrides parsed into the fields' types."""
    cls = type(cfg)
    check_keys(cls, overrides.keys(), where or cls.__name__)
    parsed = {k: parse_value(_resolve_type(cls, k), v, k) for k, v in overrides.items()}
    return dataclasses.replace(cfg, **parsed)


@dataclasses.dataclass
class TrainConfig:
    """Settings of the training engine (every field can be set with ``--set key=value``)."""

    data: str = "shakespeare"  # corpus name or path (engramlab.data.text)
    steps: int = 1000  # total optimizer steps
    batch_size: int = 16  # sequences per micro-batch (per process under DDP)
    block_size: int = 256  # bytes per training window
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3
    min_lr: float = 1e-4  # floor of the cosine decay
    warmup_steps: int = 100
    schedule: str = "cosine"  # after the warm-up: cosine (decay to min_lr at steps) | constant (lr)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    eval_interval: int = 200  # steps between evaluations (and checkpoints)
    eval_batches: int = 20  # validation batches per evaluation
    log_interval: int = 10  # steps between metrics.jsonl lines
    seed: int = 1337
    val_fraction: float = 0.1  # last fraction of the corpus held out
    dtype: str = "auto"  # auto | float32 | bfloat16 (bf16 autocast; auto = bf16 on CUDA)
    compile: bool = False  # torch.compile the model (GPU)
    carry_state: bool = False  # truncated BPTT over consecutive windows (stateful models)
    tensorboard: bool = False
