"""Configurations of the experiments that test the BDH paper's claims at CPU scale.

Each entry of ``EXPERIMENTS`` names the model(s) to train, the training settings of the full
run (``train``) and of a quick run that checks the whole pipeline in about a minute on a CPU
(``quick``), and what is measured afterwards (``measure``, with the function that does it).
``experiment_configs(name, quick=...)`` turns an entry into ``(model config, TrainConfig)``
pairs; ``flop_matched_steps`` gives the GPT baseline the training FLOPs of its BDH partner
(``engramlab.bdh.flops``).

Sizes: BDH keeps d = 128, 4 heads and 4 weight-shared layers and scales only the neurons n
(the paper keeps d = 256, 8 layers; this is the scale two CPU cores allow); parameters
3nd + 2Vd = 0.46M / 2.03M / 7.93M for multipliers 8 / 40 / 160. The GPT baselines of matching
parameter count have 0.49M / 1.93M / 8.11M.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engramlab.baselines.gpt import GPTConfig
from engramlab.bdh.flops import train_flops_per_token
from engramlab.bdh.model import BDHConfig
from engramlab.train.config import TrainConfig, config_from_dict


def _bdh(mult: int, **kw) -> dict[str, Any]:
    return dict(n_layer=4, n_embd=128, n_head=4, mlp_internal_dim_multiplier=mult, dropout=0.0, chunk_size=256) | kw


def _gpt(n_layer: int, n_embd: int, n_head: int) -> dict[str, Any]:
    return dict(n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=256, dropout=0.0)


# the language-model runs: tiny Shakespeare bytes, windows of 256 (quick: the built-in corpus)
_LM = dict(
    data="tinyshakespeare",
    steps=2500,
    batch_size=8,
    block_size=256,
    lr=1e-3,
    min_lr=1e-4,
    warmup_steps=100,
    eval_interval=250,
    eval_batches=20,
    log_interval=50,
)
_QUICK = dict(
    data="shakespeare",
    steps=20,
    batch_size=4,
    block_size=128,
    lr=1e-3,
    min_lr=1e-4,
    warmup_steps=5,
    eval_interval=20,
    eval_batches=2,
    log_interval=5,
)
_PATTERN_DATA = dict(n_episodes=25_000, period=8, repeats=4, prefix=8)  # ~1 MB of letters

EXPERIMENTS: dict[str, dict[str, Any]] = {
    **{
        f"parity_{size}": {
            "claim": "BDH-GPU follows GPT's loss at equal parameters (Fig. 7); also at equal training FLOPs",
            "models": {"bdh": _bdh(mult), "gpt": _gpt(*gpt)},
            "train": _LM,
            "quick": _QUICK,
            "measure": "validation loss per evaluation; GPT also at flop_matched_steps (bdh.flops)",
        }
        for size, mult, gpt in (("0.5M", 8, (4, 96, 4)), ("2M", 40, (6, 160, 4)), ("8M", 160, (8, 288, 6)))
    },
    **{
        f"sparsity_m{mult}": {
            "claim": "x and y of a trained BDH-GPU are about 5% active (§4.1), with n the only scaled size",
            "models": {"bdh": _bdh(mult)},
            "train": _LM | dict(steps=1000),
            "quick": _QUICK,
            "measure": "inspect.trace_density on 64 x 256 validation bytes: exact non-zeros and > 1% of the layer max",
        }
        for mult in (8, 16, 32)
    },
    "repeated_pattern": {
        "claim": "layer-wise density is lower while repeating a memorised pattern than while memorising (Fig. 14)",
        "models": {
            "bdh": dict(n_layer=4, n_embd=64, n_head=4, mlp_internal_dim_multiplier=32, dropout=0.0, chunk_size=128)
        },
        "data": _PATTERN_DATA,  # data.tasks.repeated_pattern_text(**data) written to a file, the run's data
        "train": dict(
            steps=1000,
            batch_size=16,
            block_size=128,
            lr=1e-3,
            min_lr=1e-4,
            warmup_steps=50,
            eval_interval=250,
            eval_batches=10,
            log_interval=50,
        ),
        "quick": dict(
            steps=20,
            batch_size=4,
            block_size=64,
            lr=1e-3,
            min_lr=1e-4,
            warmup_steps=5,
            eval_interval=20,
            eval_batches=2,
            log_interval=5,
        ),
        "measure": "inspect.phase_density on 64 fresh repeated_pattern_batch(period=8, repeats=4, prefix=8) rows",
    },
    "detach_kv": {
        "claim": "training without backprop through time still learns, at a loss cost (§7.2)",
        "models": {"bdh": _bdh(8, detach_kv=True), "bdh_bptt": _bdh(8)},
        "train": _LM,
        "quick": _QUICK,
        "measure": "validation loss of both, same data, steps and seed",
    },
    "prime": {
        "claim": "BDH-GPU' (gated state, all-layer logits) closes the gap to GPT (Fig. 7)",
        "models": {"bdh": _bdh(8, variant="prime", pos="rope+alibi"), "bdh_gpu": _bdh(8)},
        "train": _LM,
        "quick": _QUICK,
        "measure": "validation loss against parity_0.5M's BDH-GPU and GPT",
    },
    "spiking": {
        "claim": "BDH's activations can be realised by Bernoulli spikes of matching rates (§2.5)",
        "models": {"bdh": _bdh(8)},
        "train": _LM,
        "quick": _QUICK,
        "measure": "spiking.spiking_eval_loss(model, 16 x 257 validation bytes, seeds=range(5)): the loss gap",
    },
    "graph": {
        "claim": "G_x = D_x E is modular with heavy-tailed degrees (§5); graph and tensor forms coincide (Eq. 9)",
        "models": {"bdh": _bdh(40)},
        "train": _LM,
        "quick": _QUICK,
        "measure": "graph.graph_report per head (bdh inspect); graph_form.graph_from_normfree on a Normfree model",
    },
    "probe": {
        "claim": "single synapses separate a concept from a contrast (Mann-Whitney, §6.3)",
        "models": {"bdh": _bdh(40)},
        "train": _LM,
        "quick": _QUICK,
        "measure": "probe.probe(model, concept sentences, contrast sentences) on the trained graph model",
    },
    "merging": {
        "claim": "two fine-tuned copies merged by concatenating n keep both skills partly (§7.1)",
        "models": {"bdh": _bdh(8)},
        "train": _LM | dict(steps=500),
        "quick": _QUICK,
        "finetune_steps": 150,  # merge.merge_demo(base, corpus A, corpus B, steps=...)
        "measure": "merge.merge_demo: losses of base, tuned A, tuned B and merged on both corpora",
    },
}


def experiment_configs(name: str, quick: bool = False) -> dict[str, tuple[Any, TrainConfig]]:
    """{model key: (BDHConfig or GPTConfig, TrainConfig)} of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    exp = EXPERIMENTS[name]
    train = config_from_dict(TrainConfig, dict(exp["quick" if quick else "train"]), where=f"{name} train")
    out = {}
    for key, model in exp["models"].items():
        cls = GPTConfig if key == "gpt" else BDHConfig
        out[key] = (config_from_dict(cls, dict(model), where=f"{name} {key}"), train)
    return out


def flop_matched_steps(reference, other, steps: int, context: int) -> int:
    """Steps for ``other`` (same batch and window) that spend the training FLOPs of ``steps``
    steps of ``reference`` (configs of BDH or GPT; ``bdh.flops.train_flops_per_token``)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    ratio = train_flops_per_token(reference, context) / train_flops_per_token(other, context)
    return max(1, round(steps * ratio))


def with_steps(train: TrainConfig, steps: int) -> TrainConfig:
    """``train`` for ``steps`` steps (evaluations and warm-up scaled with it)."""
    f = steps / train.steps
    return dataclasses.replace(
        train,
        steps=steps,
        warmup_steps=max(0, round(train.warmup_steps * f)),
        eval_interval=max(1, round(train.eval_interval * f)),
    )
