"""The ``engramlab`` command: subcommands only parse arguments and dispatch."""

from __future__ import annotations

import argparse
import importlib
import sys

SYSTEMS = ("bdh", "astro", "hmmglm", "timescales")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a sequence model (gpt, lstm, bdh, astro) on bytes")
    p.add_argument("model", help="model name: gpt, lstm, bdh, astro")
    p.add_argument("--preset", default="tiny", help="tiny (seconds on CPU), small (minutes), paper")
    p.add_argument("--data", default=None, help="corpus name (shakespeare, tinyshakespeare) or a file/folder path")
    p.add_argument("--out", default=None, help="run folder (default runs/MODEL-PRESET)")
    p.add_argument("--steps", type=int, default=None, help="total optimizer steps (with --resume: up to this)")
    p.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE",
                   help="override a model or train config field (repeatable); model.KEY / train.KEY to choose")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(a):
        from engramlab.train.run import dumps, parse_sets, train

        res = train(a.model, a.preset, a.data, a.out, a.steps, parse_sets(a.sets), a.resume, a.device,
                    progress=not a.no_progress)
        print(dumps(res))

    p.set_defaults(func=run)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="sample text from a trained run folder")
    p.add_argument("run_dir")
    p.add_argument("--prompt", required=True)
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto")

    def run(a):
        from engramlab.train.run import generate

        print(generate(a.run_dir, a.prompt, a.tokens, a.temperature, a.top_k, a.top_p, a.seed, a.device))

    p.set_defaults(func=run)


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="validation loss (nats/byte) and bits/byte of a run folder, as JSON")
    p.add_argument("run_dir")
    p.add_argument("--data", default=None)
    p.add_argument("--batches", type=int, default=None)
    p.add_argument("--device", default="auto")

    def run(a):
        from engramlab.train.run import dumps, evaluate

        print(dumps(evaluate(a.run_dir, a.data, a.batches, a.device)))

    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"engramlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
