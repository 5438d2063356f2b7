"""CPU time of the per-step Python loops inside the fused recurrences (prints one JSON object).

- ``lif_scan``: forward + backward of ``engramlab.astro.neurons.LIFScan`` (the LIF recurrence of
  every AstroSNN layer) at the shapes of the ``tiny`` and ``small`` presets' training windows:
  (T, B, N) = (128, 8, 64 | 128), (256, 16, 128 | 256), subtract and zero reset;
- ``timescales``: forward + backward of ``LeakyRNN.run`` with each implementation (fused,
  script, autograd) at the paper's 500 neurons, batch 256.

Each figure is the median CPU time of this thread (``time.thread_time``: much less disturbed by
other jobs on a shared machine than wall time) over ``--repeats`` calls after two warm-up calls.
Run it once per source tree to compare two versions of the package:

    PYTHONPATH=/path/to/other/src python benchmarks/fused_loops.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch


def _median_cpu_ms(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return 1e3 * statistics.median(times)


def lif_scan(repeats: int) -> dict:
    from engramlab.astro.neurons import LIFScan

    out = {}
    g = torch.Generator().manual_seed(0)
    for T, B, N in ((128, 8, 64), (128, 8, 128), (256, 16, 128), (256, 16, 256)):
        cur = torch.randn(T, B, N, generator=g).requires_grad_()
        mod = torch.randn(T, B, N, generator=g).requires_grad_()
        beta = torch.full((N,), 0.9, requires_grad=True)
        theta = torch.full((N,), 0.5, requires_grad=True)
        u0 = torch.zeros(B, N)
        for subtract in (True, False):

            def run(cur=cur, mod=mod, beta=beta, theta=theta, u0=u0, subtract=subtract):
                s, u = LIFScan.apply(cur, mod, beta, theta, u0, u0, subtract, "atan", 2.0)
                (s.sum() + 0.1 * u.sum()).backward()

            key = f"T{T}_B{B}_N{N}_{'subtract' if subtract else 'zero'}"
            out[key] = round(_median_cpu_ms(run, repeats), 3)
    return out


def timescales(repeats: int, T: int) -> dict:
    from engramlab.timescales.model import LeakyRNN

    out = {}
    x = (torch.rand(256, T, 1, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    for impl in ("fused", "script", "autograd"):
        torch.manual_seed(0)
        m = LeakyRNN(n_neurons=500, n_heads=2, impl=impl)

        def run(m=m):
            m.zero_grad()
            m.run(x).pow(2).mean().backward()

        out[impl] = round(_median_cpu_ms(run, repeats), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--timescales-T", type=int, default=20, help="sequence length of the timescales loop")
    ap.add_argument("--skip", default="", help="comma list: lif, timescales")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    skip = set(filter(None, a.skip.split(",")))
    res = {
        "torch": torch.__version__,
        "threads": a.threads,
        "load_average_at_start": os.getloadavg(),
        "unit": "ms of CPU time per forward + backward (median)",
    }
    if "lif" not in skip:
        res["lif_scan"] = lif_scan(a.repeats)
    if "timescales" not in skip:
        res["timescales_run"] = timescales(max(3, a.repeats // 3), a.timescales_T)
    res["load_average_at_end"] = os.getloadavg()
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
