"""Training speed of engramlab.timescales vs the public code (LevinaLab/rnn_timescale_public).

One full training step = make a batch + forward + summed cross-entropy over heads + backward +
clip(2.0) + SGD(0.05, momentum 0.1, nesterov). Multi-head N = 2..20 (19 heads), 500 neurons,
batch 256, both side by side in the same process and interleaved step by step, on the same
sequence lengths (the public code draws M; ours is given the same M). Also times our recurrence
implementations (fused / TorchScript / autograd) with the same protocol.

    python benchmarks/timescales.py --reference /tmp/ref_timescales [--steps 8] [--n-max 20]

Prints one JSON object. The public code is imported from --reference, never copied here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_reference(ref_dir: str):
    if not os.path.isfile(os.path.join(ref_dir, "src", "models", "RNN_Stack.py")):
        raise FileNotFoundError(
            f"--reference {ref_dir!r} is not a checkout of LevinaLab/rnn_timescale_public "
            "(expected src/models/RNN_Stack.py inside it)"
        )
    sys.path.insert(0, ref_dir)
    from src.models.RNN_Stack import RNN_Stack  # noqa: E402
    from src.tasks.tasks import make_batch_Nbit_pair_parity  # noqa: E402

    return RNN_Stack, make_batch_Nbit_pair_parity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="local clone of LevinaLab/rnn_timescale_public")
    ap.add_argument("--steps", type=int, default=8, help="timed training steps per implementation")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--n-max", type=int, default=20)
    ap.add_argument("--neurons", type=int, default=500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--impls", default="fused,script,autograd", help="our implementations to time")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    RNN_Stack, ref_batch = load_reference(args.reference)
    from engramlab.data.tasks import make_timescale_batch
    from engramlab.timescales.model import LeakyRNN

    torch.manual_seed(0)
    np.random.seed(0)
    ns = list(range(2, args.n_max + 1))
    n_heads = 100

    ref = RNN_Stack(
        input_size=1,
        net_size=[args.neurons],
        num_classes=2,
        bias=True,
        num_readout_heads=n_heads,
        tau=1.0,
        train_tau=True,
    )
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.1, nesterov=True)
    crit = nn.CrossEntropyLoss()

    ours = {}
    for impl in args.impls.split(","):
        m = LeakyRNN(n_neurons=args.neurons, n_heads=n_heads, impl=impl)
        ours[impl] = (m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.1, nesterov=True))
    gen = torch.Generator().manual_seed(0)
    heads = torch.tensor([n - 2 for n in ns])

    def ref_step():
        ref_opt.zero_grad()
        seq, labels = ref_batch(ns, args.batch)  # (T, B, 1), list of (B,)
        _, out = ref(seq)
        loss = 0.0
        for i in range(len(ns)):
            loss += crit(out[i], labels[i])
        loss.backward()
        nn.utils.clip_grad_norm_(ref.parameters(), max_norm=2.0)
        ref_opt.step()
        return seq.shape[0]

    def our_step(impl, length):
        m, opt = ours[impl]
        opt.zero_grad(set_to_none=True)
        x, y = make_timescale_batch("parity", ns, args.batch, gen, length=length)
        logits = m(x, heads=heads)  # (K, B, 2)
        loss = F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1), reduction="sum") / args.batch
        loss.backward()
        nn.utils.clip_grad_norm_(m.parameters(), max_norm=2.0)
        opt.step()

    # wall-clock and process CPU time (the latter is less sensitive to other jobs on a shared machine)
    times = {"reference": 0.0, **{k: 0.0 for k in ours}}
    cpu = dict(times)
    lengths = []
    for it in range(args.warmup + args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        length = ref_step()
        t1, c1 = time.perf_counter(), time.process_time()
        if it >= args.warmup:
            times["reference"] += t1 - t0
            cpu["reference"] += c1 - c0
            lengths.append(length)
        for impl in ours:
            t0, c0 = time.perf_counter(), time.process_time()
            our_step(impl, length)
            t1, c1 = time.perf_counter(), time.process_time()
            if it >= args.warmup:
                times[impl] += t1 - t0
                cpu[impl] += c1 - c0

    sps = {k: args.steps / v for k, v in times.items()}
    cps = {k: args.steps / v for k, v in cpu.items()}
    best = max(ours, key=lambda k: sps[k])
    result = {
        "benchmark": "timescales training steps/s, multi-head N-parity",
        "n_heads_trained": len(ns),
        "n_max": args.n_max,
        "neurons": args.neurons,
        "batch": args.batch,
        "timed_steps": args.steps,
        "mean_sequence_length": float(np.mean(lengths)),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_avg_1min": os.getloadavg()[0],
        "steps_per_s": {"reference": sps["reference"], **{f"ours_{k}": sps[k] for k in ours}},
        "best_ours": best,
        "speedup_vs_reference": {f"ours_{k}": sps[k] / sps["reference"] for k in ours},
        "steps_per_cpu_s": {"reference": cps["reference"], **{f"ours_{k}": cps[k] for k in ours}},
        "cpu_time_speedup_vs_reference": {f"ours_{k}": cps[k] / cps["reference"] for k in ours},
        "target_speedup": 3.0,
        "target_met": sps[best] / sps["reference"] >= 3.0,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
