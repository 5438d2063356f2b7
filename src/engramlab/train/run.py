"""What the ``engramlab train / generate / eval`` commands do (the CLI only parses arguments)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from engramlab.cli_common import check_output_folder
from engramlab.data.text import load_corpus
from engramlab.train.checkpoint import load_checkpoint, read_config
from engramlab.train.config import TrainConfig, apply_overrides, config_from_dict, field_names
from engramlab.train.engine import Trainer, resolve_device
from engramlab.train.registry import get_model_spec


def parse_sets(pairs: list[str] | None) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> {"a": "1", "b": "x"} with a clear error for a pair without '='."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set {pair!r}: expected key=value")
        k, v = pair.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def split_overrides(sets: dict[str, str], model_cls: type, name: str) -> tuple[dict[str, str], dict[str, str]]:
    """Route each key to the model config, the train config, or both (``model.`` / ``train.`` force one)."""
    model_keys, train_keys = set(field_names(model_cls)), set(field_names(TrainConfig))
    m, t = {}, {}
    for k, v in sets.items():
        if k.startswith("model."):
            m[k[6:]] = v
        elif k.startswith("train."):
            t[k[6:]] = v
        elif k in model_keys or k in train_keys:
            if k in model_keys:
                m[k] = v
            if k in train_keys:
                t[k] = v
        else:
            raise ValueError(
                f"unknown --set key {k!r}; valid {name} model keys: {', '.join(sorted(model_keys))}; "
                f"valid train keys: {', '.join(sorted(train_keys))}"
            )
    return m, t


def build_configs(
    model_name: str,
    preset: str = "tiny",
    sets: dict[str, str] | None = None,
    data: str | None = None,
    steps: int | None = None,
) -> tuple[Any, TrainConfig]:
    spec = get_model_spec(model_name)
    if preset not in spec.presets:
        raise ValueError(f"unknown preset {preset!r} for {model_name}; known: {', '.join(spec.presets)}")
    p = spec.presets[preset]
    model_cfg = config_from_dict(spec.config_cls, dict(p.get("model", {})), where=f"{model_name} preset")
    train_cfg = config_from_dict(TrainConfig, dict(p.get("train", {})), where="train preset")
    m, t = split_overrides(sets or {}, spec.config_cls, model_name)
    model_cfg = apply_overrides(model_cfg, m, where=f"{model_name} model config")
    train_cfg = apply_overrides(train_cfg, t, where="train config")
    if data is not None:
        train_cfg = dataclasses.replace(train_cfg, data=data)
    if steps is not None:
        train_cfg = dataclasses.replace(train_cfg, steps=steps)
    return model_cfg, train_cfg


def train(
    model_name: str,
    preset: str = "tiny",
    data: str | None = None,
    out: str | None = None,
    steps: int | None = None,
    sets: dict[str, str] | None = None,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    overwrite: bool = False,
    seed: int | None = None,
) -> dict[str, Any]:
    """Train ``model_name`` into the run folder ``out`` (default ``runs/MODEL-PRESET``).

    A folder that already holds anything is continued with ``resume=True`` or replaced with
    ``overwrite=True`` (once the new run has its first checkpoint); otherwise this raises before
    anything is read or written. ``seed`` replaces the train config's seed.
    """
    out_dir = Path(out or f"runs/{model_name}-{preset}")
    check_output_folder(out_dir, overwrite, resume, resume_flag="--resume")
    if resume and seed is not None:
        raise ValueError(f"--resume continues the run in {out_dir} with its own seed; --seed {seed} cannot change it")
    if resume:
        saved = read_config(out_dir)
        spec = get_model_spec(saved["model"])
        if saved["model"] != model_name:
            raise ValueError(f"--resume: {out_dir} holds a {saved['model']} run, not {model_name}")
        model_cfg = config_from_dict(spec.config_cls, saved["model_config"])
        train_cfg = config_from_dict(TrainConfig, saved["train_config"])
        m, t = split_overrides(sets or {}, spec.config_cls, model_name)
        if m:
            raise ValueError(f"--resume keeps the saved model config; cannot change {', '.join(m)}")
        train_cfg = apply_overrides(train_cfg, t)
        if data is not None and data != train_cfg.data:
            raise ValueError(f"--resume: the run was trained on {train_cfg.data!r}, not {data!r}")
        if steps is not None:
            train_cfg = dataclasses.replace(train_cfg, steps=steps)
    else:
        model_cfg, train_cfg = build_configs(model_name, preset, sets, data, steps)
        if seed is not None:
            train_cfg = dataclasses.replace(train_cfg, seed=seed)
        spec = get_model_spec(model_name)
    torch.manual_seed(train_cfg.seed)
    model = spec.model_cls(model_cfg)
    trainer = Trainer(model, train_cfg, out_dir, model_name, device=device, progress=progress)
    if trainer.master and not resume:
        print(
            f"{model_name}: {model.num_params():,} parameters, {train_cfg.steps} steps of "
            f"{train_cfg.batch_size}x{train_cfg.block_size} bytes on {train_cfg.data}, out: {out_dir}"
        )
    result = trainer.fit(resume=resume, overwrite=overwrite)
    if trainer.ddp:
        torch.distributed.destroy_process_group()
    return result


def generate(
    run_dir: str,
    prompt: str,
    tokens: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    device: str = "auto",
) -> str:
    if not prompt:
        raise ValueError("the prompt is empty: give at least one character with --prompt")
    dev = resolve_device(device)
    model, _, _, _ = load_checkpoint(run_dir, dev)
    idx = torch.tensor([list(prompt.encode("utf-8"))], dtype=torch.long, device=dev)
    out = model.generate(idx, tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    return bytes(out[0].tolist()).decode("utf-8", errors="replace")


def evaluate(run_dir: str, data: str | None = None, batches: int | None = None, device: str = "auto") -> dict:
    dev = resolve_device(device)
    model, name, train_cfg, step = load_checkpoint(run_dir, dev)
    cfg = train_cfg or TrainConfig()
    if data is not None:
        cfg = dataclasses.replace(cfg, data=data)
    if batches is not None:
        cfg = dataclasses.replace(cfg, eval_batches=batches)
    corpus = load_corpus(cfg.data, cfg.val_fraction)
    trainer = Trainer(model, cfg, run_dir, name, corpus=corpus, device=str(dev), progress=False)
    res = trainer.evaluate()
    return {"run": str(run_dir), "model": name, "step": step, "data": cfg.data, **res}


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2)
