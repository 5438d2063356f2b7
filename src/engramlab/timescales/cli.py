"""``engramlab timescales train|analyze`` (registered by the main CLI through ``add_subparser``)."""

from __future__ import annotations

import argparse
import json


def _train(args) -> None:
    import torch

    from .curriculum import TrainConfig, train_curriculum

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        task=args.task, curriculum=args.curriculum, max_n=args.max_n, n_min=args.n_min, model=args.model,
        n_neurons=args.neurons, n_heads=args.heads, variant=args.variant, train_tau=args.fixed_tau is None,
        tau=1.0 if args.fixed_tau is None else args.fixed_tau, batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch, test_batches=args.test_batches, max_epochs=args.max_epochs,
        budget_minutes=args.budget_minutes, seed=args.seed, sliding_heads=args.sliding_heads,
        sliding_shift=args.sliding_shift,
    )
    summary = train_curriculum(cfg, args.out, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))


def _analyze(args) -> None:
    from .analysis import AnalysisConfig, analyze_runs

    acfg = AnalysisConfig(ac_steps=args.ac_steps, ac_trials=args.ac_trials, every=args.every,
                          ablation_ns=args.ablation_ns, perturb_n=args.perturb_n, seed=args.seed,
                          fit_neurons=args.fit_neurons, pca_trials=args.pca_trials, trials=args.trials)
    result = analyze_runs(args.dirs, acfg, out=args.out)
    print(json.dumps(result["summary"], indent=2))


def add_subparser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("timescales",
                              help="leaky RNNs with trainable tau on N-parity / N-DMS (ICLR 2024)")
    sub = p.add_subparsers(dest="timescales_cmd", required=True)

    t = sub.add_parser("train", help="train with a single / multi / sliding curriculum")
    t.add_argument("--task", choices=["parity", "dms"], default="parity")
    t.add_argument("--curriculum", choices=["single", "multi", "sliding"], default="multi")
    t.add_argument("--max-n", type=int, default=101,
                   help="stop when this N is solved (multi-head: <= n_heads + 1)")
    t.add_argument("--n-min", type=int, default=2)
    t.add_argument("--model", choices=["leaky", "gru", "lstm"], default="leaky")
    t.add_argument("--variant", choices=["default", "mod"], default="default")
    t.add_argument("--fixed-tau", type=float, default=None, help="fix every tau to this value (not trained)")
    t.add_argument("--neurons", type=int, default=500)
    t.add_argument("--heads", type=int, default=100)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--steps-per-epoch", type=int, default=600, help="training steps between accuracy checks")
    t.add_argument("--test-batches", type=int, default=50)
    t.add_argument("--max-epochs", type=int, default=1000)
    t.add_argument("--sliding-heads", type=int, default=10)
    t.add_argument("--sliding-shift", type=int, default=5)
    t.add_argument("--budget-minutes", type=float, default=None, help="wall-clock budget")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--out", required=True,
                   help="run directory (checkpoints N{min}_N{max}/, metrics.jsonl)")
    t.set_defaults(func=_train)

    a = sub.add_parser("analyze", help="tau / tau_net / PCA / ablation / perturbation / forgetting of runs")
    a.add_argument("dirs", nargs="+", help="one or more run directories written by `train`")
    a.add_argument("--out", default=None,
                   help="where figures + analysis.json go (default: first DIR/analysis)")
    a.add_argument("--ac-steps", type=int, default=20000,
                   help="steps of random input for the autocorrelation")
    a.add_argument("--ac-trials", type=int, default=10)
    a.add_argument("--every", type=int, default=1, help="analyse every k-th checkpoint for tau_net / PCA")
    a.add_argument("--ablation-ns", type=int, nargs="*", default=None,
                   help="N at which to ablate / perturb (default: the largest N all runs reached)")
    a.add_argument("--perturb-n", type=int, default=None)
    a.add_argument("--fit-neurons", type=int, default=None,
                   help="fit tau_net for this many random neurons (default: all)")
    a.add_argument("--pca-trials", type=int, default=None, help="PCA on this many trials (default all)")
    a.add_argument("--trials", type=int, default=10, help="streams per ablation / perturbation condition")
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=_analyze)
    return p
