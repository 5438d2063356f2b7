"""Training and generation throughput of any registered model; prints JSON.

    python benchmarks/train_throughput.py gpt --preset small [--set n_layer=2] [--steps 20] [--device cpu]

Training tokens/s counts forward + backward + AdamW step on random windows of the preset's
batch and block size; generation tokens/s reads a prompt of --context bytes into the state
(prefill) and then times --gen-tokens single-token steps. Peak memory is the process's peak
resident set on CPU (ru_maxrss) and torch's peak allocation on CUDA.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch

from engramlab.train.engine import make_optimizer, resolve_device
from engramlab.train.registry import get_model_spec
from engramlab.train.run import build_configs, parse_sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--steps", type=int, default=10, help="timed training steps (after 2 warm-up steps)")
    ap.add_argument("--context", type=int, default=256, help="prompt bytes before generation")
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()

    dev = resolve_device(a.device)
    model_cfg, train_cfg = build_configs(a.model, a.preset, parse_sets(a.sets))
    torch.manual_seed(0)
    model = get_model_spec(a.model).model_cls(model_cfg).to(dev)
    opt = make_optimizer(model, train_cfg, dev)
    B, T = train_cfg.batch_size, train_cfg.block_size
    x = torch.randint(0, 256, (B, T), device=dev)
    y = torch.randint(0, 256, (B, T), device=dev)

    def train_step():
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    for _ in range(2):
        train_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        train_step()
    sync()
    train_s = time.perf_counter() - t0

    model.eval()
    prompt = torch.randint(0, 256, (1, a.context), device=dev)
    with torch.no_grad():
        t0 = time.perf_counter()
        logits, state = model.prefill(prompt)
        sync()
        prefill_s = time.perf_counter() - t0
        tok = logits.argmax(-1)
        t0 = time.perf_counter()
        for _ in range(a.gen_tokens):
            logits, state = model.step(tok, state)
            tok = logits.argmax(-1)
        sync()
        gen_s = time.perf_counter() - t0

    peak = (
        torch.cuda.max_memory_allocated()
        if dev.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    print(
        json.dumps(
            {
                "model": a.model,
                "preset": a.preset,
                "overrides": a.sets,
                "device": str(dev),
                "cpu_threads": torch.get_num_threads(),
                "machine": platform.processor() or platform.machine(),
                "params": model.num_params(),
                "batch_size": B,
                "block_size": T,
                "train_tokens_per_s": B * T * a.steps / train_s,
                "train_step_ms": 1000 * train_s / a.steps,
                "prefill_tokens_per_s": a.context / prefill_s,
                "generate_tokens_per_s": a.gen_tokens / gen_s,
                "generate_context": a.context,
                "peak_memory_bytes": int(peak),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
