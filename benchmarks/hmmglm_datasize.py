"""Does more training data close the family's state-accuracy shortfall? Prints (and writes) JSON.

For each seed, the identifiable family runs below the target (true-parameter accuracy >= the family's
min_true_accuracy, some switching model under 0.95 x it; chosen from that seed's family result, or named
with --protocols) are refitted with the default fit on 1x, 2x and 4x the family's training bins (nested:
the family's own trials plus new trials of the same generator; the network and the test trials stay the
family's), plus the Gaussian model with a stronger and a weaker weight prior at 1x
(hmmglm.datasize.run_datasize; sizes, fit and variants from the full budget of
engramlab.report.papers.hmmglm, the same experiment as its datasize units).

usage: OMP_NUM_THREADS=1 python benchmarks/hmmglm_datasize.py --family docs/results/hmmglm/runs \
           --out runs/hmmglm_datasize.json
(--family: a folder of family_s<seed>.json, the family study's output per seed)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from engramlab.hmmglm.datasize import SWITCHING, fit_rows, run_datasize, select_runs
from engramlab.hmmglm.models import FitConfig
from engramlab.io import dumps_json, read_json, write_json
from engramlab.report.papers.hmmglm import BUDGETS


def summary(results: list[dict]) -> dict:
    """Per model and training-data factor (and variant): runs, mean and min state-accuracy ratio, runs below 0.95."""
    out = {}
    for kind in SWITCHING:
        factors = sorted({f for r in results for f in r["config"]["factors"]})
        keys = [(f"{f}x", f, None) for f in factors] + [
            (v, None, v) for v, c in results[0]["config"]["variants"].items() if c["model"] == kind
        ]
        for label, factor, variant in keys:
            ratio = [row["state_accuracy_ratio"] for r in results for _, row in fit_rows(r, kind, factor, variant)]
            if ratio:
                out[f"{kind} {label}"] = {
                    "runs": len(ratio),
                    "ratio_mean": sum(ratio) / len(ratio),
                    "ratio_min": min(ratio),
                    "below_0.95": sum(q < 0.95 for q in ratio),
                }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="JSON file to write (written after every seed)")
    ap.add_argument("--family", default="docs/results/hmmglm/runs", help="folder of family_s<seed>.json")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--protocols", default=None, help="comma-separated protocols instead of the selection")
    ap.add_argument("--factors", default=None, help="comma-separated training-data factors (default: the budget's)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    b = BUDGETS["full"]
    fam = dict(b["family"])
    fit = FitConfig(**fam.pop("fit"))
    fam.pop("reference_protocols", None)
    ds = b["datasize"]
    factors = [int(f) for f in args.factors.split(",")] if args.factors else ds["factors"]
    results = []
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        if args.protocols:
            picked = args.protocols.split(",")
        else:
            path = Path(args.family) / f"family_s{seed}.json"
            if not path.is_file():
                raise SystemExit(f"--family {args.family}: no {path.name} (run the family study, or give --protocols)")
            picked = select_runs(read_json(path), ds["target"], fam.get("min_true_accuracy") or 0.0)
        if not picked:
            continue
        results.append(
            run_datasize(None, seed, picked, factors=factors, variants=ds["variants"], fit=fit, threads=1, **fam)
        )
        res = {"results": results, "summary": summary(results), "wall_s": round(time.perf_counter() - t0, 1)}
        if args.out:
            write_json(args.out, res)
    res = {
        "results": results,
        "summary": summary(results) if results else {},
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(dumps_json(res["summary"]))
    if args.out:
        write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
