"""``engramlab reproduce`` (run the papers' experiments, judge the claims, write the report) and
``engramlab report`` (render committed claims.json files without running anything)."""

from __future__ import annotations

import argparse

from engramlab.cli_common import add_common_arguments, positive_int


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="run each paper's experiments, judge its claims, write report.html / report.md",
        description="Run each paper's experiments as resumable units, judge every claim against the paper's "
        "numbers and write DIR/report.html, DIR/report.md, DIR/results.json and "
        "DIR/<system>/claims.json. Rerunning the same command resumes: finished experiments are "
        "skipped.",
    )
    p.set_defaults(mode="quick")  # before the flags, so their help does not repeat it
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        default=argparse.SUPPRESS,
        help="small budgets, the default mode: about 15 minutes on a 2-core CPU in all",
    )
    size.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        default=argparse.SUPPRESS,
        help="the budgets the docs report (hours on a CPU); with --publish docs/results it "
        "writes the committed results",
    )
    size.add_argument(
        "--tiny",
        dest="mode",
        action="store_const",
        const="tiny",
        default=argparse.SUPPRESS,
        help="seconds: a check of the pipeline only, its verdicts mean nothing",
    )
    add_common_arguments(
        p,
        out="report folder (rerun with the same folder to resume)",
        overwrite=False,
        device=True,
        threads=True,
        progress=True,
        workers=1,
        threads_help="torch threads per experiment (default: CPU cores / workers)",
        workers_help="experiments run in parallel processes",
    )
    p.add_argument("--only", default=None, help="comma-separated systems: bdh,astro,hmmglm,timescales")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per trained experiment")
    p.add_argument(
        "--launcher",
        choices=["local", "slurm"],
        default="local",
        help="local processes, or one SLURM job per experiment (submitit)",
    )
    p.add_argument("--partition", default=None, help="SLURM partition (with --launcher slurm)")
    p.add_argument(
        "--insula",
        default=None,
        help="the insula recording (insula.mat) for the HMM-GLM real-data figure; default: the copy "
        "`engramlab data fetch insula` cached, if any",
    )
    p.add_argument(
        "--publish",
        default=None,
        metavar="DIR",
        help="with --full: also copy each system's claims.json and figures into DIR/<system>/ "
        "(docs/results); existing ones only with --overwrite",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a folder that holds other results (discarding experiments of another configuration)",
    )

    def run(a):
        from engramlab.report.reproduce import main_exit_code, parse_only, reproduce

        res = reproduce(
            a.out,
            a.mode,
            parse_only(a.only),
            a.device,
            a.seeds,
            a.workers,
            a.launcher,
            a.partition,
            a.threads,
            a.insula,
            progress=not a.no_progress,
            overwrite=a.overwrite,
            publish=a.publish,
        )
        code = main_exit_code(res)
        if code:
            failed = list(res["run"]["failed"]) + res["run"]["blocked"]
            print(
                f"engramlab reproduce: {len(failed)} experiment(s) did not finish: {', '.join(failed)}; "
                "rerun the same command to retry them"
            )
            raise SystemExit(code)

    p.set_defaults(func=run)

    r = subparsers.add_parser(
        "report",
        help="render committed claims.json files (e.g. docs/results) into report.html / report.md",
        description="Render SRC/<system>/claims.json and their figures into DIR/report.html, DIR/report.md and "
        "DIR/results.json, without running any experiment.",
    )
    r.add_argument("src", help="folder with <system>/claims.json (e.g. docs/results)")
    add_common_arguments(r, out="report folder")

    def render(a):
        from engramlab.report.reproduce import render_existing

        render_existing(a.src, a.out, overwrite=a.overwrite)

    r.set_defaults(func=render)
