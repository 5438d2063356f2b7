"""Training throughput of K leaky RNNs as one LeakyRNNEnsemble vs K separate networks.

Three ways to train K networks, each timed on the same protocol (one training step = forward + summed
cross-entropy over heads + backward + per-network clip(2.0) + SGD(0.05, momentum 0.1, Nesterov); 100
heads allocated, multi-head N = 2..n_max active, batch 256; network k sees the same pre-drawn batches in
every mode, with its own sequence length per step, M ~ U[n_max + 2, 4 n_max + 1]):

* ``ensemble``:   one process, one ``LeakyRNNEnsemble`` of K members + ``EnsembleOptimizer``;
* ``sequential``: one process, K separate ``LeakyRNN`` models + their own ``torch.optim.SGD``, stepped
  one after the other;
* ``processes``:  K separate processes (spawned), one network each; at most two run at a time with one
  torch thread each (K = 1: one process with two threads), so the total is two threads at every moment.

The in-process modes run once per entry of ``--threads`` (default 2: the same two threads as the
processes; on a machine loaded by other jobs, ``--threads 1,2`` also shows how much two OpenMP threads
lose to a busy scheduler). Runs alternate between modes (the order rotates every repeat) so that a
change in the machine's load hits every mode alike; the JSON reports every run, the median, and the
1-minute load average around each run. OMP_WAIT_POLICY defaults to PASSIVE (see below).

    python benchmarks/timescales_ensemble.py [--ks 1,4,8] [--neurons 128,500] [--steps 4] [--repeats 3]
                                             [--threads 2] [--out docs/results/timescales/ensemble_bench.json]

Throughput is networks x steps / s (K times the steps per second of the whole set), of wall-clock and
per CPU-second (CPU time of the timed processes, all their threads; on a busy machine wall-clock mostly
measures the scheduler's share, e.g. a process that has just woken up gets more than one running on).
"""

from __future__ import annotations

import os

# OpenMP threads that spin while waiting for each other collapse (10-20x slower measured here) when the
# machine is busy with other jobs; passive waiting is set before torch loads unless the caller chose a policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import queue  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F

MODES = ("ensemble", "sequential", "processes")
N_HEADS = 100


def network_batches(k: int, n_steps: int, n_max: int, batch: int):
    """The pre-drawn batches of network k (the same in every mode and process)."""
    from engramlab.data.tasks import make_timescale_batch

    gen = torch.Generator().manual_seed(1000 + k)
    return [make_timescale_batch("parity", list(range(2, n_max + 1)), batch, gen) for _ in range(n_steps)]


def _separate(H: int, k: int):
    from engramlab.timescales.model import LeakyRNN

    torch.manual_seed(k)
    m = LeakyRNN(n_neurons=H, n_heads=N_HEADS)
    return m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.1, nesterov=True)


def _separate_step(model, opt, x, y, heads):
    logits = model(x, heads=heads)
    loss = F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1), reduction="sum") / x.shape[0]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(model.parameters()), 2.0)
    opt.step()


def run_ensemble(H, K, a, threads) -> tuple[float, float]:
    """(networks*steps per second of wall-clock, per CPU-second of this process)."""
    from engramlab.timescales.ensemble import EnsembleOptimizer, LeakyRNNEnsemble, MemberOptimizer
    from engramlab.timescales.model import LeakyRNNConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ens = LeakyRNNEnsemble([LeakyRNNConfig(n_neurons=H, n_heads=N_HEADS)] * K)
    opt = EnsembleOptimizer(ens, [MemberOptimizer(kind="sgd", lr=0.05, momentum=0.1, nesterov=True, clip=2.0)] * K)
    data = [network_batches(k, a.warmup + a.steps, a.n_max, a.batch) for k in range(K)]
    heads = [list(range(a.n_max - 1))] * K
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            t0, c0 = time.perf_counter(), time.process_time()
        losses = ens.member_losses([d[i][0] for d in data], [d[i][1] for d in data], heads)
        opt.zero_grad()
        losses.sum().backward()
        opt.clip_grad_norm_()
        opt.step()
    return K * a.steps / (time.perf_counter() - t0), K * a.steps / (time.process_time() - c0)


def run_sequential(H, K, a, threads) -> tuple[float, float]:
    torch.set_num_threads(threads)
    nets = [_separate(H, k) for k in range(K)]
    data = [network_batches(k, a.warmup + a.steps, a.n_max, a.batch) for k in range(K)]
    heads = torch.arange(a.n_max - 1)
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            t0, c0 = time.perf_counter(), time.process_time()
        for (m, opt), d in zip(nets, data):
            _separate_step(m, opt, d[i][0], d[i][1], heads)
    return K * a.steps / (time.perf_counter() - t0), K * a.steps / (time.process_time() - c0)


def _process_worker(H, k, steps, warmup, n_max, batch, threads, ready, go, slots, results):
    torch.set_num_threads(threads)
    m, opt = _separate(H, k)
    data = network_batches(k, warmup + steps, n_max, batch)
    heads = torch.arange(n_max - 1)
    for i in range(warmup):
        _separate_step(m, opt, data[i][0], data[i][1], heads)
    ready.put(k)
    go.wait()
    with slots:  # at most two networks run at once
        t0, c0 = time.time(), time.process_time()
        for i in range(warmup, warmup + steps):
            _separate_step(m, opt, data[i][0], data[i][1], heads)
        results.put((k, t0, time.time(), torch.get_num_threads(), time.process_time() - c0))


def run_processes(H, K, a) -> tuple[float, float, dict]:
    ctx = mp.get_context("spawn")  # no fork of a process whose OpenMP pool is already running
    at_once = min(K, 2)
    threads = 2 // at_once
    ready, results, go, slots = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Semaphore(at_once)
    procs = [
        ctx.Process(
            target=_process_worker, args=(H, k, a.steps, a.warmup, a.n_max, a.batch, threads, ready, go, slots, results)
        )
        for k in range(K)
    ]
    for p in procs:
        p.start()

    def collect(q, what):
        got = []
        while len(got) < K:
            try:
                got.append(q.get(timeout=5))
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    for p in procs:
                        p.terminate()
                    raise RuntimeError(f"a benchmark process died (exit code {dead[0]}) before it was {what}") from None
        return got

    collect(ready, "ready")
    go.set()
    out = collect(results, "done")
    for p in procs:
        p.join()
    wall = max(o[2] for o in out) - min(o[1] for o in out)
    cpu = sum(o[4] for o in out)
    return (
        K * a.steps / wall,
        K * a.steps / cpu,
        {"processes": K, "running_at_once": at_once, "threads_per_process": out[0][3]},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="1,4,8", help="ensemble sizes K")
    ap.add_argument("--neurons", default="128,500", help="network sizes H")
    ap.add_argument("--steps", type=int, default=4, help="timed training steps per network and run")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="runs per (H, K, mode); the median is reported")
    ap.add_argument("--n-max", type=int, default=10, help="multi-head N = 2..n_max")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", default="2", help="torch threads of the in-process modes (a list: one run each)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    a = ap.parse_args()
    ks = [int(v) for v in a.ks.split(",")]
    hs = [int(v) for v in a.neurons.split(",")]
    thread_list = [int(v) for v in a.threads.split(",")]
    modes = a.modes.split(",")
    bad = [m for m in modes if m not in MODES]
    if (
        bad
        or any(k < 1 for k in ks)
        or any(h < 1 for h in hs)
        or any(t < 1 for t in thread_list)
        or a.steps < 1
        or a.repeats < 1
        or a.n_max < 2
    ):
        ap.error(
            f"expected modes in {MODES} (got {modes}), K >= 1, H >= 1, threads >= 1, steps >= 1, "
            "repeats >= 1, n_max >= 2"
        )
    if a.out and Path(a.out).exists() and not a.overwrite:
        ap.error(f"{a.out} exists; pass --overwrite to replace it")

    variants = [(m, t) for m in modes if m != "processes" for t in thread_list]
    variants += [("processes", 2)] if "processes" in modes else []
    runs = {(h, k, m, t): [] for h in hs for k in ks for m, t in variants}
    cpu_runs = {key: [] for key in runs}
    loads = {key: [] for key in runs}
    extra = {}
    load_start = list(os.getloadavg())
    t_start = time.time()
    for r in range(a.repeats):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]  # alternate which mode goes first
        for h in hs:
            for k in ks:
                for m, t in order:
                    before = os.getloadavg()[0]
                    if m == "ensemble":
                        v, c = run_ensemble(h, k, a, t)
                    elif m == "sequential":
                        v, c = run_sequential(h, k, a, t)
                    else:
                        try:
                            v, c, extra[(h, k)] = run_processes(h, k, a)
                        except RuntimeError as e:  # e.g. a child that imported a half-edited checkout: once more
                            print(f"retrying the processes run: {e}", file=sys.stderr, flush=True)
                            time.sleep(10)
                            v, c, extra[(h, k)] = run_processes(h, k, a)
                    runs[(h, k, m, t)].append(v)
                    cpu_runs[(h, k, m, t)].append(c)
                    loads[(h, k, m, t)].append([before, os.getloadavg()[0]])
                    print(
                        f"repeat {r} H={h} K={k} {m:10s} threads={t} {v:8.3f} networks*steps/s "
                        f"{c:8.3f} per CPU-s  load {before:.2f}",
                        file=sys.stderr,
                        flush=True,
                    )
    rows = []
    for (h, k, m, t), v in runs.items():
        row = {
            "neurons": h,
            "K": k,
            "mode": m,
            "torch_threads_total": t,
            "networks_steps_per_s": statistics.median(v),
            "networks_steps_per_cpu_s": statistics.median(cpu_runs[(h, k, m, t)]),
            "runs": v,
            "runs_per_cpu_s": cpu_runs[(h, k, m, t)],
            "load_avg_1min_before_after": loads[(h, k, m, t)],
        }
        if m == "processes":
            row.update(extra[(h, k)])
        rows.append(row)
    med = {(r["neurons"], r["K"], r["mode"], r["torch_threads_total"]): r["networks_steps_per_s"] for r in rows}
    med_cpu = {(r["neurons"], r["K"], r["mode"], r["torch_threads_total"]): r["networks_steps_per_cpu_s"] for r in rows}
    speedup = []
    if "ensemble" in modes:
        for h in hs:
            for k in ks:
                for t in thread_list:
                    row = {"neurons": h, "K": k, "ensemble_threads": t}
                    for other, ot in [("sequential", t), ("processes", 2)]:
                        if other in modes:
                            row[f"ensemble_vs_{other}"] = med[(h, k, "ensemble", t)] / med[(h, k, other, ot)]
                            row[f"ensemble_vs_{other}_per_cpu_s"] = (
                                med_cpu[(h, k, "ensemble", t)] / med_cpu[(h, k, other, ot)]
                            )
                    speedup.append(row)
    out = {
        "benchmark": "timescales_ensemble",
        "unit": "networks*steps/s of wall-clock (median over repeats); also per CPU-second of the timed "
        "processes, which depends less on what else the machine runs",
        "protocol": {
            "steps": a.steps,
            "warmup": a.warmup,
            "repeats": a.repeats,
            "batch": a.batch,
            "n_max": a.n_max,
            "heads_allocated": N_HEADS,
            "active_heads": a.n_max - 1,
            "task": "parity",
            "optimizer": "SGD lr 0.05 momentum 0.1 nesterov, clip 2.0 per network",
            "sequence_length": f"per network and step, U[{a.n_max + 2}, {4 * a.n_max + 1}]",
            "processes": "K spawned processes, at most 2 running at once with 1 torch thread each "
            "(K = 1: one process, 2 threads)",
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        },
        "load_avg_start": load_start,
        "load_avg_end": list(os.getloadavg()),
        "wall_s": time.time() - t_start,
        "results": rows,
        "speedup": speedup,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if a.out:
        from engramlab.io import write_json

        write_json(a.out, out)


if __name__ == "__main__":
    main()
