"""BDH speed and memory against the official implementation, side by side in one run (prints JSON).

    python benchmarks/bdh.py --reference /path/to/clone/of/pathwaycom/bdh [--out results.json]

The official ``bdh.py`` is imported from ``--reference`` (a local clone; never vendored here).
Config (the issue's): d=256, 4 heads, multiplier 16 (N=1024, n=4096), 6 layers, vocab 256.

- generation: tokens/s of our recurrent ``step`` after a parallel prefill of C context bytes,
  for each C in --gen-contexts, and peak resident memory of a process that does only that;
  the reference's way (re-running forward over the whole prefix per new token) at C=1024
  (ours: the median time per token, the reference: the mean over its few tokens);
- training: tokens/s of forward + backward + AdamW step at each T in --train-T (batch
  --batch), ours (chunked) and the reference's, same weights; the loss of both on the same
  batch at the same weights (dropout off), and the fraction of the measured fp32 matmul peak.

On a GPU (``--device cuda``): ``--amp bf16`` runs both models under bfloat16 autocast and
``--compile`` wraps both in ``torch.compile`` (the official training script's own settings);
``--multiplier 128 --train-T 512 --batch 32`` is the official 25M configuration. Generation
on a GPU is timed in-process (no memory column).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from engramlab.bdh.convert import from_reference
from engramlab.bdh.model import BDH, BDHConfig
from engramlab.io import atomic_write_text, dumps_json, save_figure, write_json

CFG = dict(n_layer=6, n_embd=256, n_head=4, mlp_internal_dim_multiplier=16, vocab_size=256)


def load_reference(path: str):
    f = Path(path) / "bdh.py"
    if not f.is_file():
        raise FileNotFoundError(f"--reference {path}: no bdh.py there (expected a clone of pathwaycom/bdh)")
    spec = importlib.util.spec_from_file_location("reference_bdh", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _status_mib(key: str) -> float:
    """A memory line of /proc/self/status in MiB (VmRSS: resident now, VmHWM: peak resident)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib() -> float:
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    return _status_mib("VmHWM")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak_gflops(n: int = 1024, reps: int = 5, device: str = "cpu", dtype=torch.float32) -> float:
    if device.startswith("cuda"):
        n = max(n, 8192)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


# ------------------------------------------------------------------------------------ generation
def gen_worker(context: int, new_tokens: int, seed: int) -> dict:
    """Run in a fresh process: prefill `context` bytes, then time `new_tokens` steps."""
    torch.manual_seed(seed)
    model = BDH(BDHConfig(**CFG, dropout=0.0)).eval()
    prompt = torch.randint(0, 256, (1, context))
    base = rss_mib()
    with torch.no_grad():
        t0 = time.perf_counter()
        logits, state = model.prefill(prompt)
        prefill_s = time.perf_counter() - t0
        after_prefill = rss_mib()
        tok = logits.argmax(-1)
        logits, state = model.step(tok, state)  # warm-up
        tok = logits.argmax(-1)
        times = []
        for _ in range(new_tokens):
            t0 = time.perf_counter()
            logits, state = model.step(tok, state)
            tok = logits.argmax(-1)
            times.append(time.perf_counter() - t0)
        dt = sum(times)
        med = sorted(times)[len(times) // 2]
        after_steps = rss_mib()
    return {
        "context": context,
        "tokens_per_s": 1.0 / med,  # median over tokens: robust to a shared, noisy CPU
        "mean_tokens_per_s": new_tokens / dt,
        "ms_per_token_median": 1e3 * med,
        "prefill_tokens_per_s": context / prefill_s,
        "state_mib": state["rho"].numel() * state["rho"].element_size() / 2**20,
        "rss_growth_during_steps_mib": after_steps - after_prefill,
        "rss_after_prefill_mib": after_prefill,
        "rss_before_mib": base,
        "peak_rss_mib": peak_rss_mib(),
    }


def gen_inline(context: int, new_tokens: int, seed: int, device: str) -> dict:
    """GPU generation: prefill `context` bytes, then the median time of `new_tokens` steps."""
    torch.manual_seed(seed)
    model = BDH(BDHConfig(**CFG, dropout=0.0)).to(device).eval()
    prompt = torch.randint(0, 256, (1, context)).to(device)
    with torch.no_grad():
        logits, state = model.prefill(prompt)
        tok = logits.argmax(-1)
        for _ in range(3):  # warm-up
            logits, state = model.step(tok, state)
        times = []
        for _ in range(new_tokens):
            sync(device)
            t0 = time.perf_counter()
            logits, state = model.step(tok, state)
            tok = logits.argmax(-1)
            sync(device)
            times.append(time.perf_counter() - t0)
    med = sorted(times)[len(times) // 2]
    return {
        "context": context,
        "tokens_per_s": 1.0 / med,
        "ms_per_token_median": 1e3 * med,
        "state_mib": state["rho"].numel() * state["rho"].element_size() / 2**20,
    }


def reference_generation(ref, context: int, new_tokens: int, seed: int, device: str = "cpu") -> dict:
    torch.manual_seed(seed)
    model = ref.BDH(ref.BDHConfig(**CFG, dropout=0.0)).to(device).eval()
    idx = torch.randint(0, 256, (1, context)).to(device)
    with torch.no_grad():
        model(idx[:, :16])  # warm-up
        sync(device)
        t0 = time.perf_counter()
        out = model.generate(idx, new_tokens, top_k=1)
        sync(device)
        dt = time.perf_counter() - t0
    assert out.shape[1] == context + new_tokens
    return {"context": context, "tokens_per_s": new_tokens / dt, "ms_per_token": 1e3 * dt / new_tokens}


# ------------------------------------------------------------------------------------ training
def train_flops(T: int, B: int, chunk: int | None) -> float:
    """Matmul FLOPs of one fwd+bwd step (3x forward); chunk=None: the quadratic form."""
    L, d, H = CFG["n_layer"], CFG["n_embd"], CFG["n_head"]
    N = CFG["mlp_internal_dim_multiplier"] * d // H
    n = H * N
    proj = 2 * B * T * 3 * n * d
    if chunk is None or chunk >= T:
        attn = 2 * B * H * T * T * (N + d)
    else:
        attn = 2 * B * H * T * chunk * (N + d) + 2 * B * H * N * d * (T + (T - chunk))
    head = 2 * B * T * d * CFG["vocab_size"]
    return 3 * (L * (proj + attn) + head)


def time_training(
    model,
    T: int,
    B: int,
    steps: int,
    seed: int,
    device: str = "cpu",
    amp: str = "none",
    compile: bool = False,
    warmup: int = 1,
) -> tuple[float, list[float]]:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, fused=device.startswith("cuda"))
    model.train()
    run = torch.compile(model) if compile else model
    ctx = (lambda: torch.autocast(device.split(":")[0], dtype=torch.bfloat16)) if amp == "bf16" else None
    times, losses = [], []
    for _ in range(steps + warmup):  # the first steps are a warm-up (and compilation)
        x = torch.randint(0, 256, (B, T), generator=g).to(device)
        y = torch.randint(0, 256, (B, T), generator=g).to(device)
        sync(device)
        t0 = time.perf_counter()
        if ctx is None:
            _, loss = run(x, y)
        else:
            with ctx():
                _, loss = run(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    return min(times[warmup:]), losses


def training_row(
    ref,
    T: int,
    B: int,
    steps: int,
    chunk: int,
    peak: float,
    seed: int,
    device: str = "cpu",
    amp: str = "none",
    compile: bool = False,
) -> dict:
    torch.manual_seed(seed)
    rmodel = ref.BDH(ref.BDHConfig(**CFG, dropout=0.1)).to(device)
    ours = from_reference(rmodel.state_dict(), n_layer=CFG["n_layer"], dropout=0.1, chunk_size=chunk).to(device)
    # same weights, same batch, dropout off: the two losses
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randint(0, 256, (B, T), generator=g).to(device)
    y = torch.randint(0, 256, (B, T), generator=g).to(device)
    rmodel.eval()
    ours.eval()
    with torch.no_grad():
        loss_ref = rmodel(x, y)[1].item()
        loss_ours = ours(x, y)[1].item()
    row = {
        "T": T,
        "batch": B,
        "chunk_size": chunk,
        "device": device,
        "amp": amp,
        "compile": compile,
        "loss_same_weights": {"ours": loss_ours, "reference": loss_ref},
    }
    warmup = 3 if compile else 1
    t_ours, l_ours = time_training(ours, T, B, steps, seed, device, amp, compile, warmup)
    del ours
    t_ref, l_ref = time_training(rmodel, T, B, steps, seed, device, amp, compile, warmup)
    f_ours, f_ref = train_flops(T, B, chunk), train_flops(T, B, None)
    row.update(
        {
            "ours_tokens_per_s": B * T / t_ours,
            "reference_tokens_per_s": B * T / t_ref,
            "speedup": t_ref / t_ours,
            "ours_s_per_step": t_ours,
            "reference_s_per_step": t_ref,
            "ours_matmul_gflop_per_step": f_ours / 1e9,
            "reference_matmul_gflop_per_step": f_ref / 1e9,
            "ours_fraction_of_matmul_peak": f_ours / t_ours / 1e9 / peak,
            "reference_fraction_of_matmul_peak": f_ref / t_ref / 1e9 / peak,
            "train_losses_ours": l_ours,
            "train_losses_reference": l_ref,
        }
    )
    return row


def quality_report(bdh_run: str, gpt_run: str, out_png: str) -> dict:
    """Validation curves of two engine runs (metrics.jsonl) -> PNG + JSON beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = {}
    fig = plt.figure(figsize=(6, 4))
    for name, run in (("BDH-GPU", bdh_run), ("GPT", gpt_run)):
        cfg = json.loads((Path(run) / "config.json").read_text())
        rows = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines() if x.strip()]
        val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
        res[name] = {
            "run": str(run),
            "config": cfg,
            "val_loss": val,
            "final_val_loss": val[-1][1] if val else None,
            "mean_tokens_per_s": sum(r["tokens_per_s"] for r in rows) / max(len(rows), 1),
        }
        plt.plot([s for s, _ in val], [v for _, v in val], marker="o", label=name)
    plt.xlabel("optimizer step (8 x 128 bytes each)")
    plt.ylabel("validation loss (nats/byte)")
    plt.title("tinyshakespeare, matched parameters, same tokens")
    plt.grid(alpha=0.3)
    plt.legend()
    plt.tight_layout()
    save_figure(fig, out_png, dpi=120)
    write_json(Path(out_png).with_suffix(".json"), res)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quality",
        nargs=3,
        metavar=("BDH_RUN", "GPT_RUN", "OUT_PNG"),
        help="only plot the validation curves of two training runs",
    )
    ap.add_argument("--reference", default=None, help="local clone of github.com/pathwaycom/bdh")
    ap.add_argument("--gen-contexts", default="256,1024,8192")
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--ref-gen-tokens", type=int, default=2)
    ap.add_argument("--train-T", default="256,2048")
    ap.add_argument("--batch", default="8", help="batch per T (one value, or one per --train-T entry)")
    ap.add_argument("--train-steps", type=int, default=2, help="timed steps (after one warm-up)")
    ap.add_argument("--chunk", default="256", help="chunk size per --train-T entry (or one value)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--amp", default="none", choices=["none", "bf16"], help="autocast dtype for training")
    ap.add_argument("--compile", action="store_true", help="torch.compile both models for training")
    ap.add_argument("--multiplier", type=int, default=16, help="mlp_internal_dim_multiplier (128 = the 25M model)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: gen, refgen, train")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--_gen_worker", nargs=3, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    CFG["mlp_internal_dim_multiplier"] = a.multiplier
    if a._gen_worker:
        print(json.dumps(gen_worker(*a._gen_worker)))
        return
    if a.quality:
        print(json.dumps(quality_report(*a.quality), indent=2))
        return
    if a.reference is None:
        ap.error("--reference DIR is required (a local clone of github.com/pathwaycom/bdh)")
    ref = load_reference(a.reference)
    skip = set(filter(None, a.skip.split(",")))
    res = {
        "config": CFG,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "device": a.device if a.device == "cpu" else torch.cuda.get_device_name(),
        "amp": a.amp,
        "compile": a.compile,
    }
    peak_dtype = torch.bfloat16 if a.amp == "bf16" else torch.float32
    res["matmul_peak_gflops"] = peak = matmul_peak_gflops(device=a.device, dtype=peak_dtype)
    res["matmul_peak_dtype"] = str(peak_dtype)
    if "gen" not in skip and a.device != "cpu":
        rows = [gen_inline(c, a.gen_tokens, a.seed, a.device) for c in [int(s) for s in a.gen_contexts.split(",")]]
        res["generation_ours"] = rows
        by = {r["context"]: r["tokens_per_s"] for r in rows}
        if 256 in by and 8192 in by:
            res["generation_ours_8192_vs_256_slowdown"] = by[256] / by[8192]
        skip.add("gen")
    if "gen" not in skip:
        rows = []
        for c in [int(s) for s in a.gen_contexts.split(",")]:
            cmd = [
                sys.executable,
                __file__,
                "--reference",
                a.reference,
                "--_gen_worker",
                str(c),
                str(a.gen_tokens),
                str(a.seed),
            ]
            cmd += ["--threads", str(a.threads)] if a.threads else []
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
        res["generation_ours"] = rows
        by = {r["context"]: r["tokens_per_s"] for r in rows}
        if 256 in by and 8192 in by:
            res["generation_ours_8192_vs_256_slowdown"] = by[256] / by[8192]
    if "refgen" not in skip:
        r = reference_generation(ref, 1024, a.ref_gen_tokens, a.seed, a.device)
        res["generation_reference"] = r
        print(json.dumps(r), file=sys.stderr)
        ours1024 = [x for x in res.get("generation_ours", []) if x["context"] == 1024]
        if ours1024:
            res["generation_speedup_at_1024"] = ours1024[0]["tokens_per_s"] / r["tokens_per_s"]
    if "train" not in skip:
        Ts = [int(s) for s in a.train_T.split(",")]
        Bs = [int(s) for s in a.batch.split(",")]
        Cs = [int(s) for s in a.chunk.split(",")]
        Bs = Bs * len(Ts) if len(Bs) == 1 else Bs
        Cs = Cs * len(Ts) if len(Cs) == 1 else Cs
        rows = []
        for T, B, C in zip(Ts, Bs, Cs):
            rows.append(training_row(ref, T, B, a.train_steps, C, peak, a.seed, a.device, a.amp, a.compile))
            print(json.dumps(rows[-1]), file=sys.stderr)
        res["training"] = rows
    res["load_average_at_end"] = os.getloadavg()
    text = dumps_json(res)
    print(text, end="")
    if a.out:
        atomic_write_text(a.out, text)


if __name__ == "__main__":
    main()
