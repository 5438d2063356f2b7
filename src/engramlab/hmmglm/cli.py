"""`engramlab hmmglm ...` subcommands (wired into the main CLI by engramlab/cli.py)."""

from __future__ import annotations

import argparse
import json


def add_subparser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("hmmglm", help="one-hot HMM-GLM: switching states and connectivity from spikes")
    sub = p.add_subparsers(dest="hmmglm_cmd", required=True)

    b = sub.add_parser("benchmark", help="the paper's synthetic study: fit all four models")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=int, default=2, help="parallel fitting processes (one thread each)")
    b.add_argument("--epochs", type=int, default=None, help="EM epochs (default: FitConfig)")
    b.set_defaults(func=_benchmark)

    f = sub.add_parser("fit", help="fit a model to a spike recording (.mat / .nwb / .npz)")
    f.add_argument("data", help="spike file")
    f.add_argument("--model", default="onehot", choices=["glm", "hmmglm", "gaussian", "onehot"])
    f.add_argument("--states", default="4", help="number of states or 'auto' (held-out LL)")
    f.add_argument("--candidates", default="1,2,3,4,6", help="state counts tried with --states auto")
    f.add_argument("--bin", type=float, default=0.05, help="bin width in seconds")
    f.add_argument("--epochs", type=int, default=None)
    f.add_argument("--out", required=True, help="output folder")
    f.add_argument("--no-progress", action="store_true")
    f.set_defaults(func=_fit)
    return p


def _fit_config(args):
    from .models import FitConfig

    return FitConfig() if args.epochs is None else FitConfig(n_epochs=args.epochs)


def _benchmark(args) -> int:
    from .benchmark import run_benchmark

    res = run_benchmark(args.out, seed=args.seed, workers=args.workers, fit=_fit_config(args))
    print(json.dumps({k: res[k] for k in ("total_fit_wall_s", "sum_fit_cpu_s", "models")}, indent=2))
    return 0


def _fit(args) -> int:
    from .real import fit_recording

    if args.states == "auto":
        n_states = None
    else:
        try:
            n_states = int(args.states)
        except ValueError:
            raise ValueError(f"--states must be an integer >= 1 or 'auto', got {args.states!r}") from None
        if n_states < 1:
            raise ValueError(f"--states must be >= 1, got {n_states}")
    cands = tuple(int(c) for c in args.candidates.split(","))
    res = fit_recording(args.data, args.out, model=args.model, n_states=n_states, bin_width=args.bin,
                        candidates=cands, fit=_fit_config(args), progress=not args.no_progress)
    print(json.dumps({k: res[k] for k in ("n_states", "n_bins", "fit_s", "peak_rss_mb",
                                          "train_ll_per_bin_neuron", "state_occupancy")}, indent=2))
    return 0
