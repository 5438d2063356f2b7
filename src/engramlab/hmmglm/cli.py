"""`engramlab hmmglm ...` subcommands (registered by engramlab.cli).

The EM schedule flags of both subcommands are the fields of ``FitConfig`` (one flag per field).
"""

from __future__ import annotations

import argparse
import json

from engramlab.cli_common import add_common_arguments, add_dataclass_arguments, dataclass_from_args, output_folder

_FIT_HELP = {
    "n_epochs": "EM epochs",
    "m_steps": "Adam steps per M-step",
    "lr": "Adam learning rate of the M-step",
}


def _add_fit_config(parser: argparse.ArgumentParser, seed_flag: bool) -> None:
    from .models import FitConfig

    add_dataclass_arguments(
        parser,
        FitConfig,
        exclude=("seed",),
        aliases={"n_epochs": "--epochs"},
        help=_FIT_HELP,
        group="EM schedule (FitConfig)",
    )
    if seed_flag:
        parser.add_argument("--fit-seed", type=int, default=FitConfig.seed, help="seed of the fits' initial parameters")


def add_subparser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("hmmglm", help="one-hot HMM-GLM: switching states and connectivity from spikes")
    sub = p.add_subparsers(dest="hmmglm_cmd", metavar="ACTION", required=True)

    b = sub.add_parser("benchmark", help="the paper's synthetic study: fit all four models")
    add_common_arguments(
        b,
        out="output folder (results.json, results.md, weights.png, states.png)",
        seed=0,
        seed_help="seed of the simulated recording",
        threads=True,
        workers=2,
        workers_help="parallel fitting processes",
        threads_help="torch CPU threads of each fitting process (default: 1 when --workers > 1, "
        "else torch's own choice)",
    )
    _add_fit_config(b, seed_flag=True)
    b.set_defaults(func=_benchmark)

    f = sub.add_parser("fit", help="fit a model to a spike recording (.mat / .nwb / .npz)")
    f.add_argument("data", help="spike file, or the name of a registered recording (engramlab data list)")
    f.add_argument(
        "--model", default="onehot", choices=["glm", "hmmglm", "gaussian", "onehot"], help="which of the four models"
    )
    f.add_argument("--states", default="4", help="number of states or 'auto' (held-out LL)")
    f.add_argument("--candidates", default="1,2,3,4,6", help="state counts tried with --states auto")
    f.add_argument("--bin", type=float, default=0.05, help="bin width in seconds")
    add_common_arguments(
        f,
        out="output folder (summary.json, model/, states.png, connectivity.png)",
        seed=0,
        seed_help="seed of the fit's initial parameters",
        threads=True,
        progress=True,
        device=True,
    )
    _add_fit_config(f, seed_flag=False)
    f.set_defaults(func=_fit)
    return p


def _benchmark(args) -> int:
    import torch

    from .benchmark import run_benchmark
    from .models import FitConfig

    fit = dataclass_from_args(FitConfig, args, seed=args.fit_seed)
    # each process fits with --threads threads; by default one per process when there are several
    threads = args.threads or (1 if args.workers > 1 else torch.get_num_threads())
    with output_folder(args.out, args.overwrite):
        res = run_benchmark(args.out, seed=args.seed, workers=args.workers, threads=threads, fit=fit)
    print(json.dumps({k: res[k] for k in ("total_fit_wall_s", "sum_fit_cpu_s", "models")}, indent=2))
    return 0


def _fit(args) -> int:
    from .models import FitConfig
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
    try:
        cands = tuple(int(c) for c in args.candidates.split(","))
    except ValueError:
        raise ValueError(f"--candidates must be comma-separated integers, got {args.candidates!r}") from None
    fit = dataclass_from_args(FitConfig, args, seed=args.seed)
    with output_folder(args.out, args.overwrite):
        res = fit_recording(
            args.data,
            args.out,
            model=args.model,
            n_states=n_states,
            bin_width=args.bin,
            candidates=cands,
            fit=fit,
            progress=not args.no_progress,
            device=args.device,
        )
    print(
        json.dumps(
            {
                k: res[k]
                for k in ("n_states", "n_bins", "fit_s", "peak_rss_mb", "train_ll_per_bin_neuron", "state_occupancy")
            },
            indent=2,
        )
    )
    return 0
