"""Run the astro table's memory experiments alone: the ablation ladder and the fair baselines.

The same units, folders and claims code as ``engramlab reproduce --only astro`` (a folder made here
resumes there and back), without the language-model and latency units, whose claims then read
"not attempted". The ladder runs first, seed by seed (every task and variant of seed 0, then seed 1,
...), then the baselines' learning-rate sweeps and their seeds. Writes OUT/units/astro/... and
OUT/astro/claims.json with its figures; ``--publish DIR`` copies those into DIR/astro/.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/astro_ladder.py --full --seeds 3 --out /tmp/rep-astro \
        --publish docs/results
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    for m in ("tiny", "quick", "full"):
        mode.add_argument(f"--{m}", dest="mode", action="store_const", const=m)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", required=True)
    p.add_argument("--only", default="ladder,baselines", help="ladder, baselines or both (comma-separated)")
    p.add_argument("--publish", default=None, help="copy claims.json and figures into PUBLISH/astro/")
    p.add_argument("--overwrite", action="store_true", help="replace PUBLISH/astro/ if it holds results")
    args = p.parse_args(argv)
    mode = args.mode or "quick"
    if args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    parts = {x.strip() for x in args.only.split(",") if x.strip()}
    if not parts or parts - {"ladder", "baselines"}:
        p.error(f"--only takes ladder, baselines or both, got {args.only!r}")
    publish = Path(args.publish) / "astro" if args.publish else None
    if publish is not None and (publish / "claims.json").exists() and not args.overwrite:
        p.error(f"{publish} already holds claims.json; add --overwrite to replace it")

    import torch

    from engramlab.report import papers
    from engramlab.report import reproduce as R
    from engramlab.report.units import RunContext, run_units

    torch.set_num_threads(1)
    mod = papers.get("astro")
    seeds = list(range(args.seeds))
    prefixes = (("ladder-",) if "ladder" in parts else ()) + (("sweep-", "base-") if "baselines" in parts else ())
    units = [u for u in mod.plan(mod.BUDGETS[mode], seeds, {}) if u.name.startswith(prefixes)]
    order = {"ladder-": 0, "sweep-": 1, "base-": 2}
    units.sort(key=lambda u: (order[u.name.split("-")[0] + "-"], u.seed if u.seed is not None else -1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ctx = RunContext(device="cpu", threads=1, progress=False)
    run = run_units(units, out, ctx, launcher="sequential", progress=False)
    cmd = "OMP_NUM_THREADS=1 python benchmarks/astro_ladder.py " + " ".join(
        [f"--{mode}", f"--seeds {args.seeds}", f"--only {args.only}", f"--out {args.out}"]
    )
    failed = list(run.failed) + run.blocked
    doc = R.build_system_doc("astro", mode, out, units, seeds, "cpu", {}, cmd, failed=failed)
    print(
        f"astro ({mode}): ran {len(run.ran)}, skipped {len(run.skipped)}, failed {len(failed)} "
        f"in {time.perf_counter() - t0:.0f} s; wrote {out / 'astro' / 'claims.json'}"
    )
    for c in doc["claims"] + doc["baselines"]:
        m = c["measured"]
        print(f"  {c['id']}: {m['mean']} {m['spread']} -> {c['verdict']}")
    if publish is not None:
        if failed:
            print(f"not published: {len(failed)} experiment(s) did not finish")
        else:
            R.publish_system(out / "astro", publish)
            print(f"published to {publish}")
    return doc


if __name__ == "__main__":
    main()
