"""The ``engramlab`` command: subcommands only parse arguments and dispatch.

The flags several subcommands share (``--out``/``--overwrite``, ``--device``, ``--seed``,
``--threads``, ``--no-progress``, ``--workers``) and the flags built from experiment dataclasses
are defined once, in ``engramlab.cli_common``; every ``--help`` shows the defaults.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engramlab.cli_common import Parser, add_common_arguments, apply_threads

SYSTEMS = ("bdh", "astro", "hmmglm", "timescales")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a sequence model (gpt, lstm, bdh, astro) on bytes")
    p.add_argument("model", help="model name: gpt, lstm, bdh, astro")
    p.add_argument("--preset", default="tiny", help="tiny (seconds on CPU), small (minutes), paper")
    p.add_argument(
        "--data",
        default=None,
        help="corpus name (shakespeare, tinyshakespeare) or a file/folder path (default: the preset's)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="total optimizer steps (default: the preset's; with --resume: continue up to this)",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        metavar="KEY=VALUE",
        help="override a model or train config field (repeatable); model.KEY / train.KEY to choose",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add_common_arguments(
        p,
        out="run folder (default: runs/MODEL-PRESET); it must not exist yet or be empty, "
        "unless --resume or --overwrite",
        out_default=None,
        device=True,
        seed=None,
        seed_help="random seed (default: the preset's, 1337)",
        threads=True,
        progress=True,
    )

    def run(a):
        from engramlab.train.run import dumps, parse_sets, train

        res = train(
            a.model,
            a.preset,
            a.data,
            a.out,
            a.steps,
            parse_sets(a.sets),
            a.resume,
            a.device,
            progress=not a.no_progress,
            overwrite=a.overwrite,
            seed=a.seed,
        )
        print(dumps(res))

    p.set_defaults(func=run)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="sample text from a trained run folder")
    p.add_argument("run_dir", help="a run folder written by `engramlab train`")
    p.add_argument("--prompt", required=True, help="text to continue (at least one character)")
    p.add_argument("--tokens", type=int, default=200, help="bytes to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0: greedy)")
    p.add_argument("--top-k", type=int, default=None, help="sample from the k most likely bytes only")
    p.add_argument(
        "--top-p",
        type=float,
        default=None,
        help="nucleus sampling: the smallest set of bytes with this probability mass",
    )
    add_common_arguments(
        p, device=True, seed=None, seed_help="random seed (default: a different sample each time)", threads=True
    )

    def run(a):
        from engramlab.train.run import generate

        print(generate(a.run_dir, a.prompt, a.tokens, a.temperature, a.top_k, a.top_p, a.seed, a.device))

    p.set_defaults(func=run)


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="validation loss (nats/byte) and bits/byte of a run folder, as JSON")
    p.add_argument("run_dir", help="a run folder written by `engramlab train`")
    p.add_argument("--data", default=None, help="corpus to evaluate on (default: the run's)")
    p.add_argument("--batches", type=int, default=None, help="validation batches (default: the run's eval_batches)")
    add_common_arguments(p, device=True, threads=True)

    def run(a):
        from engramlab.train.run import dumps, evaluate

        print(dumps(evaluate(a.run_dir, a.data, a.batches, a.device)))

    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="engramlab",
        description="Brain-inspired sequence models and neural-state discovery (BDH, AstroSNN, "
        "one-hot HMM-GLM, emergent timescales).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_generate(sub)
    _add_eval(sub)
    for system in SYSTEMS + ("report", "data"):
        try:
            mod = importlib.import_module(f"engramlab.{system}.cli")
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith(f"engramlab.{system}"):
                continue  # that system has no command-line part
            raise
        mod.add_subparser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        apply_threads(args)
        args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"engramlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
