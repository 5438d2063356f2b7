"""HMM E-step speed on CPU: engramlab.hmmglm.inference against hmmlearn's compiled forward-backward.

Both get the same float64 log-likelihoods, from a sticky S-state HMM whose emissions are 20 Poisson
neurons (state-dependent rates), and do a full E-step: log-likelihood, posteriors gamma (T, S) and the
expected transition counts sum_t xi_t (S, S). hmmlearn's E-step is timed as its own code runs it:
``implementation="log"`` (its default: _hmmc.forward_log, backward_log, log-normalised posteriors,
compute_log_xi_sum) and ``implementation="scaling"`` (forward_scaling, backward_scaling,
compute_scaling_xi_sum on exp(log-likelihood), here shifted by each bin's maximum so it cannot
underflow). Viterbi is timed too (_hmmc.viterbi vs hmm_posterior_mode).

Runs alternate between the contenders (order flipped every repeat) so that a machine shared with
other work slows both alike; the medians of wall and CPU (process) time are reported with the load
average before and after each configuration. The posteriors of every method are checked against
hmmlearn's (max |diff| <= 1e-8).

usage: python benchmarks/hmmglm_estep.py [--states 2 4 8 16] [--bins 10000 100000] [--repeats 5]
                                         [--methods numba sequential scan] [--out FILE [--overwrite]]
needs: pip install -e ".[bench]"  (hmmlearn)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from engramlab.hmmglm.inference import hmm_posterior_mode, hmm_smoother
from engramlab.io import dumps_json, write_json

try:
    from hmmlearn import __version__ as hmmlearn_version
    from hmmlearn import _hmmc
    from hmmlearn.utils import log_normalize, normalize
except ImportError:  # pragma: no cover
    sys.exit('hmmlearn is needed for this benchmark: pip install -e ".[bench]"')


def make_problem(S: int, T: int, seed: int, n_neurons: int = 20, sticky: float = 0.98):
    """(log_lik (T, S), pi (S,), A (S, S)) from a sticky HMM with Poisson-population emissions."""
    rng = np.random.default_rng(seed)
    A = np.full((S, S), (1 - sticky) / max(S - 1, 1))
    np.fill_diagonal(A, sticky if S > 1 else 1.0)
    pi = np.full(S, 1.0 / S)
    z = np.empty(T, dtype=int)
    z[0] = rng.integers(S)
    u = rng.random(T)
    cum = A.cumsum(1)
    for t in range(1, T):
        z[t] = min(int(np.searchsorted(cum[z[t - 1]], u[t])), S - 1)
    rates = rng.gamma(2.0, 0.25, size=(S, n_neurons))  # mean 0.5 counts/bin
    x = rng.poisson(rates[z])
    from scipy.special import gammaln

    ll = x @ np.log(rates).T - rates.sum(1) - gammaln(x + 1).sum(1, keepdims=True)
    return np.ascontiguousarray(ll), pi, A


# ---- the contenders: each returns (log Z, gamma (T, S), xi_sum (S, S)) ---------------------------------


def hmmlearn_log(ll, pi, A):
    log_prob, fwd = _hmmc.forward_log(pi, A, ll)
    bwd = _hmmc.backward_log(pi, A, ll)
    log_gamma = fwd + bwd  # as BaseHMM._compute_posteriors_log
    log_normalize(log_gamma, axis=1)
    with np.errstate(under="ignore"):
        gamma = np.exp(log_gamma)
    with np.errstate(under="ignore"):
        xi = np.exp(_hmmc.compute_log_xi_sum(fwd, A, bwd, ll))
    return log_prob, gamma, xi


def hmmlearn_scaling(ll, pi, A):
    shift = ll.max(1, keepdims=True)
    frame = np.exp(ll - shift)
    log_prob, fwd, scale = _hmmc.forward_scaling(pi, A, frame)
    bwd = _hmmc.backward_scaling(pi, A, frame, scale)
    gamma = fwd * bwd  # as BaseHMM._compute_posteriors_scaling
    normalize(gamma, axis=1)
    xi = _hmmc.compute_scaling_xi_sum(fwd, A, bwd, frame)
    return log_prob + shift.sum(), gamma, xi


def ours(method):
    def run(ll, pi, A):
        r = hmm_smoother(
            torch.from_numpy(ll[None]), torch.from_numpy(np.log(pi)), torch.from_numpy(np.log(A)), method=method
        )
        return float(r.log_normalizer[0]), r.smoothed_probs[0].numpy(), r.trans_counts[0].numpy()

    return run


def viterbi_hmmlearn(ll, pi, A):
    return _hmmc.viterbi(pi, A, ll)


def viterbi_ours(ll, pi, A):
    r = hmm_posterior_mode(torch.from_numpy(ll[None]), torch.from_numpy(np.log(pi)), torch.from_numpy(np.log(A)))
    return float(r.log_prob[0]), r.states[0].numpy()


# ---- timing -----------------------------------------------------------------------------------------------


def timed(fn, *args):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.process_time() - c


def bench_one(S, T, repeats, methods, seed):
    ll, pi, A = make_problem(S, T, seed)
    contenders = {f"ours_{m}": ours(m) for m in methods}
    contenders["hmmlearn_log"] = hmmlearn_log
    contenders["hmmlearn_scaling"] = hmmlearn_scaling
    vit = {"ours_viterbi": viterbi_ours, "hmmlearn_viterbi": viterbi_hmmlearn}
    every = {**contenders, **vit}
    results = {name: fn(ll, pi, A) for name, fn in every.items()}  # warm-up (numba: loads its cache)
    times = {name: {"wall": [], "cpu": []} for name in every}
    load0 = os.getloadavg()
    names = list(every)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            _, w, c = timed(every[name], ll, pi, A)
            times[name]["wall"].append(w)
            times[name]["cpu"].append(c)
    load1 = os.getloadavg()
    ref_z, ref_g, ref_xi = results["hmmlearn_log"]
    row = {
        "S": S,
        "T": T,
        "repeats": repeats,
        "loadavg_before": [round(x, 2) for x in load0],
        "loadavg_after": [round(x, 2) for x in load1],
        "median_wall_s": {},
        "median_cpu_s": {},
        "agreement_vs_hmmlearn_log": {},
    }
    for name in every:
        row["median_wall_s"][name] = round(float(np.median(times[name]["wall"])), 5)
        row["median_cpu_s"][name] = round(float(np.median(times[name]["cpu"])), 5)
    for name in contenders:
        z, g, xi = results[name]
        row["agreement_vs_hmmlearn_log"][name] = {
            "log_likelihood_abs_diff": float(abs(z - ref_z)),
            "log_likelihood_rel_diff": float(abs(z - ref_z) / abs(ref_z)),
            "posterior_max_abs_diff": float(np.abs(g - ref_g).max()),
            "trans_counts_max_rel_diff": float((np.abs(xi - ref_xi) / np.maximum(np.abs(ref_xi), 1e-300)).max()),
        }
    (lp_o, st_o), (lp_h, st_h) = results["ours_viterbi"], results["hmmlearn_viterbi"]
    row["viterbi"] = {"same_path": bool(np.array_equal(st_o, st_h)), "log_prob_abs_diff": float(abs(lp_o - lp_h))}
    row["posteriors_agree_1e-8"] = all(
        v["posterior_max_abs_diff"] <= 1e-8 for v in row["agreement_vs_hmmlearn_log"].values()
    )
    best_h = min(row["median_cpu_s"]["hmmlearn_log"], row["median_cpu_s"]["hmmlearn_scaling"])
    if "ours_numba" in row["median_cpu_s"]:
        row["speedup_cpu_vs_best_hmmlearn"] = round(best_h / row["median_cpu_s"]["ours_numba"], 2)
        row["speedup_wall_vs_best_hmmlearn"] = round(
            min(row["median_wall_s"]["hmmlearn_log"], row["median_wall_s"]["hmmlearn_scaling"])
            / row["median_wall_s"]["ours_numba"],
            2,
        )
    row["viterbi_speedup_cpu"] = round(row["median_cpu_s"]["hmmlearn_viterbi"] / row["median_cpu_s"]["ours_viterbi"], 2)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--states", type=int, nargs="+", default=[2, 4, 8, 16])
    ap.add_argument("--bins", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--methods", nargs="+", default=["numba", "sequential", "scan"], choices=["numba", "sequential", "scan"]
    )
    ap.add_argument(
        "--scan-max-bytes",
        type=float,
        default=5e8,
        help="skip the scan method where its largest temporary (T S^3 / 2 floats) is bigger",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = ap.parse_args(argv)
    if args.out is not None and args.out.exists() and not args.overwrite:
        ap.error(f"{args.out} exists; pass --overwrite to replace it")
    torch.set_num_threads(1)  # hmmlearn and the compiled loops are single-threaded
    rows = []
    for T in args.bins:
        for S in args.states:
            methods = [m for m in args.methods if m != "scan" or T * S**3 * 4 <= args.scan_max_bytes]
            row = bench_one(S, T, args.repeats, methods, args.seed)
            if len(methods) < len(args.methods):
                row["skipped"] = {"ours_scan": f"largest temporary {T * S**3 * 4 / 1e9:.1f} GB > --scan-max-bytes"}
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("S", "T", "median_cpu_s", "loadavg_after")}), file=sys.stderr)
    res = {
        "what": "full HMM E-step (log-likelihood, posteriors, expected transition counts) on identical float64 "
        "log-likelihoods; medians over alternating repeats; one thread each",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {
            "numpy": np.__version__,
            "torch": torch.__version__,
            "hmmlearn": hmmlearn_version,
            "numba": __import__("numba").__version__,
        },
        "rows": rows,
        "all_posteriors_agree_1e-8": all(r["posteriors_agree_1e-8"] for r in rows),
        "all_viterbi_paths_equal": all(r["viterbi"]["same_path"] for r in rows),
    }
    text = dumps_json(res)
    print(text)
    if args.out is not None:
        write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
