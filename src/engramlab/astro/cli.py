"""``engramlab astro ...``: the AstroSNN subcommands (registered by engramlab.cli).

engramlab astro memory --task copy --delays 10,50,100,200,500 --out DIR

The experiment's flags are the fields of ``MemoryConfig`` (one flag per field).
"""

from __future__ import annotations

import argparse

from engramlab.cli_common import add_common_arguments, add_dataclass_arguments, dataclass_from_args, output_folder

_HELP = {
    "delays": "delays D (blank steps between the items and the recall cue)",
    "n_symbols": "size of the symbol alphabet",
    "steps": "optimizer steps per model and delay",
    "batch_size": "sequences per training batch",
    "lr": "AdamW learning rate",
    "weight_decay": "AdamW weight decay",
    "n_layer": "AstroSNN layers",
    "n_astrocytes": "AstroSNN astrocytes per layer",
    "d_key": "AstroSNN key / query size per astrocyte",
}


def add_subparser(subparsers) -> argparse.ArgumentParser:
    from engramlab.astro.memory import MODEL_NAMES, TRAIN_DELAYS, MemoryConfig
    from engramlab.data.tasks import MEMORY_TASKS

    p = subparsers.add_parser("astro", help="AstroSNN: astrocyte-modulated spiking language models")
    sub = p.add_subparsers(dest="astro_command", metavar="ACTION", required=True)
    m = sub.add_parser(
        "memory",
        help="memory-retention experiment: AstroSNN vs LIF-SNN vs LSTM vs GPT, accuracy vs delay",
        description="Train AstroSNN, its LIF-SNN ablation, an LSTM and a GPT at matched parameter counts "
        "with the same budget on a memory task for each delay; write DIR/memory.json and DIR/memory.png.",
    )
    add_dataclass_arguments(
        m,
        MemoryConfig,
        exclude=("seed", "jobs", "lrs"),
        aliases={"n_items": "--items", "n_symbols": "--symbols"},
        help={
            **_HELP,
            "task": "memory task",
            "models": f"a subset of {','.join(MODEL_NAMES)}",
            "n_items": "K: symbols to copy / key-value pairs / sample length",
            "per_delay": "one training per delay (true) or one up to the largest delay, scored at each (false)",
        },
        choices={"task": MEMORY_TASKS, "train_delays": TRAIN_DELAYS},
    )
    m.add_argument(
        "--lrs",
        type=_model_lrs,
        default={},
        metavar="MODEL=LR[,MODEL=LR]",
        help="per-model learning rates overriding --lr (e.g. lstm=1e-2,gpt=3e-3)",
    )
    d = MemoryConfig()
    add_common_arguments(
        m,
        out="output folder (memory.json, curves.json, memory.png, curves.png)",
        seed=d.seed,
        threads=True,
        progress=True,
        workers=d.jobs,
        workers_help="(model, delay) trainings run in this many processes, one torch thread each",
    )
    m.set_defaults(func=run_memory_cmd)
    return p


def _model_lrs(text: str) -> dict[str, float]:
    """``"lstm=1e-2,gpt=3e-3"`` -> {"lstm": 0.01, "gpt": 0.003} (MemoryConfig checks the names and values)."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: expected MODEL=LR, e.g. lstm=1e-2") from None
    return out


def run_memory_cmd(args) -> dict:
    from engramlab.astro.memory import MemoryConfig, run_memory

    cfg = dataclass_from_args(MemoryConfig, args, seed=args.seed, jobs=args.workers, lrs=args.lrs)
    with output_folder(args.out, args.overwrite):
        result = run_memory(cfg, args.out, progress=not args.no_progress)
    print(f"wrote {args.out}/memory.json and memory.png")
    return result
