"""``engramlab astro ...``: the AstroSNN subcommands (wired into engramlab.cli by the lead).

engramlab astro memory --task copy --delays 10,50,100,200,500 --out DIR
"""

from __future__ import annotations

import argparse


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    return vals


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_subparser(subparsers) -> argparse.ArgumentParser:
    from engramlab.astro.memory import MODEL_NAMES, MemoryConfig
    from engramlab.data.tasks import MEMORY_TASKS

    d = MemoryConfig()
    p = subparsers.add_parser("astro", help="AstroSNN: astrocyte-modulated spiking language models")
    sub = p.add_subparsers(dest="astro_command", required=True)
    m = sub.add_parser(
        "memory",
        help="memory-retention experiment: AstroSNN vs LIF-SNN vs LSTM vs GPT, accuracy vs delay",
        description="Train AstroSNN, its LIF-SNN ablation, an LSTM and a GPT at matched parameter counts "
        "with the same budget on a memory task for each delay; write DIR/memory.json and DIR/memory.png.",
    )
    m.add_argument("--task", choices=MEMORY_TASKS, default=d.task)
    m.add_argument("--delays", type=_int_list, default=d.delays, help="comma-separated delays (blank steps)")
    m.add_argument(
        "--models", type=_str_list, default=list(MODEL_NAMES), help=f"subset of {','.join(MODEL_NAMES)}"
    )
    m.add_argument("--out", required=True, help="output directory")
    m.add_argument(
        "--items", type=int, default=d.n_items, help="K: symbols to copy / key-value pairs / sample length"
    )
    m.add_argument("--symbols", type=int, default=d.n_symbols, help="size of the symbol alphabet")
    m.add_argument("--steps", type=int, default=d.steps, help="optimizer steps per model and delay")
    m.add_argument("--batch-size", type=int, default=d.batch_size)
    m.add_argument("--lr", type=float, default=d.lr)
    m.add_argument("--d-model", type=int, default=d.d_model, help="AstroSNN width (others are matched to it)")
    m.add_argument("--seed", type=int, default=d.seed)
    m.add_argument(
        "--train-delays",
        choices=("uniform", "fixed"),
        default=d.train_delays,
        help="uniform: each training batch draws its delay from 0..D (evaluation is at D)",
    )
    m.add_argument("--jobs", type=int, default=d.jobs, help="trainings run in parallel processes")
    m.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 is fastest on a shared machine; small models gain little from more)",
    )
    m.set_defaults(func=run_memory_cmd)
    return p


def run_memory_cmd(args) -> dict:
    import torch

    from engramlab.astro.memory import MemoryConfig, run_memory

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    cfg = MemoryConfig(
        task=args.task,
        delays=list(args.delays),
        models=list(args.models),
        n_items=args.items,
        n_symbols=args.symbols,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        d_model=args.d_model,
        seed=args.seed,
        train_delays=args.train_delays,
        jobs=args.jobs,
    )
    result = run_memory(cfg, args.out)
    print(f"wrote {args.out}/memory.json and memory.png")
    return result
