"""The 4-state one-hot insula fit: this checkout against an older commit, side by side in one run. Prints JSON.

The old commit's ``src/`` is exported with ``git archive`` into a temporary folder; each fit runs in a fresh
subprocess (``PYTHONPATH`` = that code's ``src``) with the same thread count (torch, OMP, MKL, numba), on
the same counts (the recording binned at 50 ms). Timed per code:
* "old default" / "new, old schedule": 10 EM epochs x 10 Adam steps from the constructor's parameters
  (the old default fit; the same work in both codes, so the ratio is the speed of the code);
* "new default": this checkout's default fit (data-driven start: pooled GLM, k-means, a plain HMM-GLM
  fitted to convergence, then the one-hot model's 10 annealed epochs).
Runs alternate old/new ``--repeats`` times. The default old commit is the last one before the fit and
inference changes of issue #13 (717fa2f, the parent of bac2fd6).

usage: OMP_NUM_THREADS=2 python benchmarks/hmmglm_speed.py --data /path/insula.mat --threads 2 \
           --out docs/results/hmmglm/speed.json [--max-bins 20000] [--old 717fa2f]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time, torch
path, max_bins, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
from engramlab.data.spikes import load_spikes, bin_spikes
from engramlab.hmmglm.models import FitConfig, make_model
import engramlab
counts, _ = bin_spikes(load_spikes(path), 0.05)
if max_bins > 0:
    counts = counts[:max_bins]
T, N = counts.shape
m = make_model("onehot", 4, N)
cfg = FitConfig(n_epochs=10) if mode == "old_schedule" else FitConfig()
kw = {"init": "keep"} if (mode == "old_schedule" and "init" in FitConfig.__dataclass_fields__) else {}
t = time.perf_counter(); c = time.process_time()
m.fit(counts[None], progress=False, config=cfg, **kw)
fit_s, cpu_s = time.perf_counter() - t, time.process_time() - c
ll = m.log_likelihood(counts[None]) / (T * N)
print("RESULT " + json.dumps({"fit_s": fit_s, "fit_cpu_s": cpu_s, "train_ll_per_bin_neuron": ll,
      "epochs": len(m.history_), "n_bins": T, "n_neurons": N, "code": engramlab.__file__,
      "threads": torch.get_num_threads()}))
"""


def _export(commit: str, folder: Path) -> Path:
    tar = folder / "old.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(tar), commit, "src"], check=True)
    with tarfile.open(tar) as t:
        t.extractall(folder / "old", filter="data")
    return folder / "old" / "src"


def _run(src: Path, data: str, max_bins: int, mode: str, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[k] = str(threads)
    code = f"import torch; torch.set_num_threads({threads})\n" + _CHILD
    r = subprocess.run(
        [sys.executable, "-c", code, data, str(max_bins), mode],
        env=env,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode or not line:
        raise RuntimeError(f"{mode} fit with {src} failed:\n{r.stderr[-3000:]}")
    return json.loads(line[-1][len("RESULT ") :])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="insula.mat (or any spike file of the loaders)")
    ap.add_argument("--old", default="717fa2f", help="the old commit")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--max-bins", type=int, default=0, help="first bins only (0: the whole recording)")
    ap.add_argument("--skip-new-default", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        old_src = _export(args.old, Path(tmp))
        runs = {"old default": [], "new, old schedule": [], "new default": []}
        for _ in range(args.repeats):
            runs["old default"].append(_run(old_src, args.data, args.max_bins, "old_schedule", args.threads))
            runs["new, old schedule"].append(_run(ROOT / "src", args.data, args.max_bins, "old_schedule", args.threads))
            if not args.skip_new_default:
                runs["new default"].append(_run(ROOT / "src", args.data, args.max_bins, "default", args.threads))
    best = {k: min(r["fit_s"] for r in v) for k, v in runs.items() if v}
    res = {
        "old_commit": args.old,
        "threads": args.threads,
        "load_average_before_after": [load0, os.getloadavg()],
        "runs": runs,
        "best_fit_s": best,
        "speedup_same_schedule": best["old default"] / best["new, old schedule"],
        "speedup_default_vs_old_default": best["old default"] / best["new default"] if "new default" in best else None,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    text = json.dumps(res, indent=2)
    if args.out:
        sys.path.insert(0, str(ROOT / "src"))
        from engramlab.io import write_json

        write_json(args.out, res)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
