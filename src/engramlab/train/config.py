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
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"expected a dataclass config, got {type(cfg).__name__}")
    return dataclasses.asdict(cfg)


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def check_keys(cls: type, keys, where: str) -> None:
    """Raise one clear error for unknown keys, listing the valid ones."""
    valid = field_names(cls)
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise ValueError(
            f"unknown {where} key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}"
        )


def config_from_dict(cls: type[T], d: dict[str, Any], where: str | None = None) -> T:
    check_keys(cls, d.keys(), where or cls.__name__)
    return cls(**d)


def save_config_json(cfg: Any, path: str | Path, **extra: Any) -> None:
    data = {**extra, **config_to_dict(cfg)} if extra else config_to_dict(cfg)
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


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
