"""``engramlab timescales train|analyze`` (registered by the main CLI through ``add_subparser``).

The flags of ``train`` are the fields of ``curriculum.TrainConfig`` and those of ``analyze`` the
fields of ``analysis.AnalysisConfig`` (one flag per field).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engramlab.cli_common import add_common_arguments, add_dataclass_arguments, dataclass_from_args, output_folder

_TRAIN_HELP = {
    "task": "N-parity or N-DMS",
    "curriculum": "single: one head moves on to N+1; multi: a head per N from n_min up, trained together; "
    "sliding: a moving window of sliding_heads N",
    "max_n": "stop when this N is solved (multi-head: <= n_heads + 1)",
    "n_min": "the first N of the curriculum",
    "model": "leaky RNN with trainable tau, or a GRU / LSTM",
    "n_neurons": "recurrent neurons",
    "batch_size": "sequences per training step",
    "steps_per_epoch": "training steps between accuracy checks",
    "test_batches": "batches of the accuracy check",
    "max_epochs": "stop after this many epochs",
    "momentum": "SGD momentum",
    "nesterov": "Nesterov momentum (SGD)",
    "clip": "gradient-norm clipping",
    "sliding_heads": "N in the window of the sliding curriculum",
    "sliding_shift": "when the window is solved, drop this many of its smallest N and add as many above",
    "budget_minutes": "wall-clock budget in minutes (default: none)",
    "threshold": "accuracy in percent above which an N counts as solved",
    "lr": "learning rate (default: 0.05 with SGD, 1e-3 with Adam)",
}

_ANALYZE_HELP = {
    "ac_steps": "steps of random input for the autocorrelation",
    "ac_trials": "trials of random input for the autocorrelation",
    "every": "analyse every k-th checkpoint for tau_net / PCA",
    "ablation_ns": "N at which to ablate / perturb (default: the largest N all runs reached; empty: none)",
    "perturb_n": "N of the perturbation study (default: the largest N all runs reached)",
    "trials": "streams per ablation / perturbation condition",
    "eval_batches": "batches per accuracy measurement",
}


def _train(args) -> None:
    from .curriculum import TrainConfig, train_curriculum

    fixed = args.fixed_tau
    cfg = dataclass_from_args(
        TrainConfig, args, train_tau=fixed is None, tau=1.0 if fixed is None else fixed, seed=args.seed
    )
    with output_folder(args.out, args.overwrite):
        summary = train_curriculum(cfg, args.out, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))


def _analyze(args) -> None:
    from .analysis import AnalysisConfig, analyze_runs

    acfg = dataclass_from_args(AnalysisConfig, args, seed=args.seed)
    out = Path(args.out) if args.out is not None else Path(args.dirs[0]) / "analysis"
    with output_folder(out, args.overwrite):
        result = analyze_runs(args.dirs, acfg, out=out, progress=not args.no_progress)
    print(json.dumps(result["summary"], indent=2))


def add_subparser(subparsers) -> argparse.ArgumentParser:
    from engramlab.data.tasks import TIMESCALE_TASKS

    from .analysis import AnalysisConfig
    from .curriculum import CURRICULA, MODELS, TrainConfig
    from .model import VARIANTS

    p = subparsers.add_parser("timescales", help="leaky RNNs with trainable tau on N-parity / N-DMS (ICLR 2024)")
    sub = p.add_subparsers(dest="timescales_cmd", metavar="ACTION", required=True)

    t = sub.add_parser("train", help="train with a single / multi / sliding curriculum")
    add_dataclass_arguments(
        t,
        TrainConfig,
        exclude=("train_tau", "tau", "seed"),
        help=_TRAIN_HELP,
        aliases={"n_neurons": "--neurons", "n_heads": "--heads"},
        choices={
            "task": TIMESCALE_TASKS,
            "curriculum": CURRICULA,
            "model": MODELS,
            "variant": VARIANTS,
            "optimizer": ("auto", "sgd", "adam"),
        },
    )
    t.add_argument("--fixed-tau", type=float, default=None, help="fix every tau to this value (not trained)")
    add_common_arguments(
        t,
        out="run folder (checkpoints N{min}_N{max}/, metrics.jsonl, summary.json)",
        seed=TrainConfig.seed,
        threads=True,
        progress=True,
    )
    t.set_defaults(func=_train)

    a = sub.add_parser("analyze", help="tau / tau_net / PCA / ablation / perturbation / forgetting of runs")
    a.add_argument("dirs", nargs="+", help="one or more run directories written by `train`")
    add_dataclass_arguments(a, AnalysisConfig, exclude=("seed",), help=_ANALYZE_HELP)
    add_common_arguments(
        a,
        out="where figures + analysis.json go (default: first DIR/analysis)",
        out_default=None,
        seed=AnalysisConfig.seed,
        threads=True,
        progress=True,
    )
    a.set_defaults(func=_analyze)
    return p
