"""Cost of AstroSNN against its baselines: training FLOPs, throughput, peak memory, synaptic operations.

- ``training_flops_per_byte``: the matrix-multiply FLOPs of one training step (forward and backward) per
  byte, counted by ``torch.utils.flop_counter.FlopCounterMode`` on a real pass, plus the recurrent
  products of ``nn.LSTM`` (which the counter does not see): ``6 * 4H(in + H)`` per token and layer.
  Element-wise work (the LIF scan, activations, norms) is not counted, as is usual for FLOPs budgets.
- ``KVCacheGPT``: generation with a GPT's own weights and a key/value cache preallocated for the whole
  context (one write per token, no concatenation), checked against ``GPT.step``.
- ``throughput``: training, prefill and generation tokens per second with the peak memory of each.
- ``synaptic_ops``: spike-driven accumulates against dense multiply-accumulates per token, from the
  firing rates measured on real input.
"""

from __future__ import annotations

import math
import resource
import time

import torch
import torch.nn.functional as F

from engramlab.baselines.gpt import GPT, apply_rope, rope_cos_sin


# ------------------------------------------------------------------------------------------- FLOPs
def _lstm_flops_per_token(model: torch.nn.Module) -> float:
    total = 0.0
    for m in model.modules():
        if isinstance(m, torch.nn.LSTM):
            H = m.hidden_size
            for layer in range(m.num_layers):
                d_in = m.input_size if layer == 0 else H * (2 if m.bidirectional else 1)
                total += 6.0 * 4 * H * (d_in + H) * (2 if m.bidirectional else 1)
    return total


def training_flops_per_byte(model: torch.nn.Module, block_size: int, batch_size: int = 2) -> float:
    """Matmul FLOPs of one forward + backward pass per byte at windows of ``block_size`` bytes.

    Counted on a real pass (random bytes) with ``FlopCounterMode``; ``nn.LSTM``'s fused recurrence,
    which the counter cannot see, is added as ``6 * 4H(in + H)`` per byte and layer. The parameters'
    gradients are cleared afterwards.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if block_size < 1 or batch_size < 1:
        raise ValueError(f"block_size and batch_size must be >= 1, got {block_size}, {batch_size}")
    was_training = model.training
    model.train()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch_size, block_size), generator=g)
    y = torch.randint(0, 256, (batch_size, block_size), generator=g)
    counter = FlopCounterMode(display=False)
    with counter:
        _, loss = model(x, y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() / (batch_size * block_size) + _lstm_flops_per_token(model)


# --------------------------------------------------------------------------- GPT, preallocated cache
class KVCacheGPT:
    """Generation with a trained ``GPT``'s weights and a key/value cache preallocated for ``capacity`` tokens.

    ``prefill(idx)`` runs the parallel forward over the prompt and writes its keys/values into the buffers;
    ``step(idx_t)`` writes one position and attends over the filled part. Rotary positions only (the cache
    is never re-read). The logits equal ``GPT.prefill`` / ``GPT.step``'s (tests/astro/test_astro_efficiency.py).
    """

    def __init__(self, gpt: GPT, batch_size: int, capacity: int):
        if gpt.config.pos != "rope":
            raise ValueError(f"KVCacheGPT needs a GPT with rotary positions (pos='rope'), got pos={gpt.config.pos!r}")
        self.gpt, self.capacity = gpt, capacity
        c = gpt.config
        hd = c.n_embd // c.n_head
        w = gpt.wte.weight
        self.k = [w.new_zeros(batch_size, c.n_head, capacity, hd) for _ in range(c.n_layer)]
        self.v = [w.new_zeros(batch_size, c.n_head, capacity, hd) for _ in range(c.n_layer)]
        self.t = 0

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)

    @torch.no_grad()
    def prefill(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        if T > self.capacity:
            raise ValueError(f"prompt of {T} tokens does not fit the cache of {self.capacity}")
        pos = torch.arange(T, device=idx.device)
        x = self.gpt._embed(idx, pos)
        for i, blk in enumerate(self.gpt.blocks):
            h = blk.ln_1(x)
            q, k, v = blk.attn._qkv(h, pos)
            self.k[i][:, :, :T] = k
            self.v[i][:, :, :T] = v
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + blk.attn.proj(y.transpose(1, 2).reshape(B, T, -1))
            x = x + blk.mlp(blk.ln_2(x))
        self.t = T
        return self.gpt.lm_head(self.gpt.ln_f(x[:, -1]))

    @torch.no_grad()
    def step(self, idx_t: torch.Tensor) -> torch.Tensor:
        if self.t >= self.capacity:
            raise ValueError(f"the cache of {self.capacity} tokens is full")
        t = self.t
        B = idx_t.shape[0]
        pos = torch.tensor([t], device=idx_t.device)
        x = self.gpt._embed(idx_t[:, None], pos)
        for i, blk in enumerate(self.gpt.blocks):
            attn = blk.attn
            h = blk.ln_1(x)
            q, k, v = attn.qkv(h).split(h.shape[-1], dim=2)
            q, k, v = (z.view(B, 1, attn.n_head, attn.hd).transpose(1, 2) for z in (q, k, v))
            cos, sin = rope_cos_sin(pos, attn.hd)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            self.k[i][:, :, t : t + 1] = k
            self.v[i][:, :, t : t + 1] = v
            y = F.scaled_dot_product_attention(q, self.k[i][:, :, : t + 1], self.v[i][:, :, : t + 1])
            x = x + attn.proj(y.transpose(1, 2).reshape(B, 1, -1))
            x = x + blk.mlp(blk.ln_2(x))
        self.t = t + 1
        return self.gpt.lm_head(self.gpt.ln_f(x[:, -1]))


# ------------------------------------------------------------------------------------- throughput
def _state_bytes(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_state_bytes(v) for v in state)
    return 0


def _maxrss() -> int:
    """The process's peak resident set so far, in bytes (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak resident-set growth over a phase of this process.

    On Linux the kernel's high-water mark is reset to the current resident set (``/proc/self/clear_refs``,
    value 5) at ``start()``, and ``growth()`` is ``VmHWM - VmRSS at start``. Elsewhere (or when the reset is
    refused) it falls back to the growth of ``ru_maxrss``, which misses peaks below an earlier maximum.
    """

    def start(self) -> None:
        self.exact = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.exact = _status_kb("VmHWM") is not None
        except OSError:
            pass
        self.base = _status_kb("VmRSS") if self.exact else _maxrss()

    def growth(self) -> int:
        return max(0, (_status_kb("VmHWM") if self.exact else _maxrss()) - self.base)


def _best(fn, repeats: int) -> tuple[float, float]:
    """Fastest (wall, thread-CPU) seconds of ``repeats`` calls of ``fn``."""
    wall = cpu = math.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.thread_time() - c0)
    return wall, cpu


def measure_one(
    model: torch.nn.Module, T: int, gen_tokens: int, train_tokens: int, repeats: int = 2, train: bool = True
) -> dict:
    """One model at context T (run it in a fresh process: the peaks are that process's resident-set growth).

    - prefill: the parallel pass over a T-byte prompt at batch 1 (GPT: into a preallocated KV cache);
    - generation: ``gen_tokens`` recurrent steps after that prompt (restarted from the same prompt state);
    - training (``train``): forward + backward over ``max(1, train_tokens // T)`` windows of T bytes;
    - ``infer_peak_bytes`` / ``train_peak_bytes``: growth of the resident set's peak over its value at the
      phase's start (``PeakMemory``), during prefill + generation and during training, each after a warm-up
      on 64-byte inputs (which compiles the TorchScript loops and primes the allocator).
    Times are the fastest of ``repeats`` at every context; tokens/s are given from wall and from thread CPU.
    """
    g = torch.Generator().manual_seed(T)
    prompt = torch.randint(0, 256, (1, T), generator=g)
    nxt = torch.randint(0, 256, (gen_tokens, 1), generator=g)
    n_win = max(1, train_tokens // T)
    reps = repeats
    is_gpt = isinstance(model, GPT)
    held: dict = {}

    def prefill(p=prompt):
        held.clear()  # drop the previous repeat's cache or state first, so the peak is one prefill's
        if is_gpt:
            held["cache"] = KVCacheGPT(model, 1, p.shape[1] + gen_tokens)
            held["cache"].prefill(p)
            held["bytes"] = held["cache"].nbytes()
        else:
            with torch.no_grad():
                _, held["state"] = model.prefill(p)
            held["bytes"] = _state_bytes(held["state"])

    def generate():
        with torch.no_grad():
            if is_gpt:
                held["cache"].t = T  # restart after the prompt (the buffers are overwritten)
                for i in range(gen_tokens):
                    held["cache"].step(nxt[i])
            else:
                st = held["state"]
                for i in range(gen_tokens):
                    _, st = model.step(nxt[i], st)

    def train_pass(x, y):
        _, loss = model(x, y)
        loss.backward()
        model.zero_grad(set_to_none=True)

    short = torch.randint(0, 256, (1, 64), generator=g)
    model.eval()
    for _ in range(2):  # warm-up
        prefill(short)
        with torch.no_grad():
            if is_gpt:
                held["cache"].step(nxt[0])
            else:
                model.step(nxt[0], held["state"])
    if train:
        model.train()
        train_pass(short, short)
        train_pass(short, short)
        model.eval()
    held.clear()
    peak = PeakMemory()
    peak.start()
    base = peak.base
    p_wall, p_cpu = _best(prefill, reps)
    g_wall, g_cpu = _best(generate, reps)
    infer_peak = peak.growth()
    out = {
        "context": T,
        "prefill_tok_s": T / p_wall,
        "prefill_tok_cpu_s": T / p_cpu,
        "gen_tok_s": gen_tokens / g_wall,
        "gen_tok_cpu_s": gen_tokens / g_cpu,
        "gen_ms_per_token": 1e3 * g_wall / gen_tokens,
        "state_bytes": held["bytes"],
        "infer_peak_bytes": infer_peak,
        "rss_before_bytes": base,
        "peak_exact": peak.exact,
        "train_windows": None,
        "train_tok_s": None,
        "train_tok_cpu_s": None,
        "train_peak_bytes": None,
    }
    held.clear()
    if train:
        x = torch.randint(0, 256, (n_win, T), generator=g)
        y = torch.randint(0, 256, (n_win, T), generator=g)
        model.train()
        peak.start()
        t_wall, t_cpu = _best(lambda: train_pass(x, y), reps)
        out.update(
            train_windows=n_win,
            train_tok_s=n_win * T / t_wall,
            train_tok_cpu_s=n_win * T / t_cpu,
            train_peak_bytes=peak.growth(),
        )
    return out


def build_model(spec: dict) -> torch.nn.Module:
    """``{"name": engine model, "sets": {...}}`` (fresh weights) or ``{"folder": model folder}`` (trained)."""
    if "folder" in spec:
        from engramlab.pretrained import load

        return load(spec["folder"])
    from engramlab.train.registry import get_model_spec
    from engramlab.train.run import build_configs

    torch.manual_seed(0)
    cfg, _ = build_configs(spec["name"], "small", {k: str(v) for k, v in spec.get("sets", {}).items()})
    return get_model_spec(spec["name"]).model_cls(cfg)


def _worker(argv: list[str] | None = None) -> None:
    """Subprocess entry: argv[1] is a JSON {"spec", "T", "gen_tokens", "train_tokens", "repeats"}; prints JSON."""
    import json
    import sys

    job = json.loads((argv or sys.argv)[1])
    torch.set_num_threads(1)
    model = build_model(job["spec"])
    out = measure_one(model, job["T"], job["gen_tokens"], job["train_tokens"], job["repeats"], job["train"])
    out["params"] = sum(p.numel() for p in model.parameters())
    print("RESULT " + json.dumps(out), flush=True)


def throughput(
    specs: dict[str, dict],
    contexts: list[int],
    gen_tokens: int,
    train_tokens: int,
    repeats: int = 2,
    train_max_context: int | None = None,
    log=None,
) -> dict:
    """``measure_one`` for every model spec (see ``build_model``) and context, each in a fresh one-thread
    process; training only at contexts up to ``train_max_context`` (None: all).
    Returns {"contexts", "gen_tokens", "train_tokens", "models": {name: {key: [per context]}}}."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    out: dict = {
        "contexts": list(contexts),
        "gen_tokens": gen_tokens,
        "train_tokens": train_tokens,
        "train_max_context": train_max_context,
        "models": {},
    }
    for name, spec in specs.items():
        rows: dict = {}
        for T in contexts:
            job = {"spec": spec, "T": T, "gen_tokens": gen_tokens, "train_tokens": train_tokens, "repeats": repeats}
            job["train"] = train_max_context is None or T <= train_max_context
            code = "import sys; from engramlab.astro.efficiency import _worker; _worker(sys.argv)"
            cmd = [sys.executable, "-c", code]
            p = subprocess.run([*cmd, json.dumps(job)], capture_output=True, text=True, env=env, check=False)
            line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if p.returncode != 0 or line is None:
                raise RuntimeError(f"efficiency worker for {name} at T = {T} failed:\n{p.stderr[-2000:]}")
            r = json.loads(line[len("RESULT ") :])
            rows.setdefault("params", r.pop("params"))
            for k, v in r.items():
                rows.setdefault(k, []).append(v)
            if log:
                log(
                    f"{name} T={T}: train {r['train_tok_s'] or 0:.0f} tok/s, prefill {r['prefill_tok_s']:.0f} tok/s, "
                    f"generation {r['gen_tok_s']:.0f} tok/s, state {r['state_bytes']} B, "
                    f"peak +{r['infer_peak_bytes'] / 2**20:.1f} MiB"
                )
        out["models"][name] = rows
    return out


# ------------------------------------------------------------------------------ synaptic operations
@torch.no_grad()
def firing_rates(model, idx: torch.Tensor) -> list[dict]:
    """Per layer, the mean firing rate of the AM-SU neurons and of the spiking feed-forward on ``idx``
    (and the raw spike tensors' fan-outs, for ``synaptic_ops``)."""
    from engramlab.astro.model import AstroSNN

    if not isinstance(model, AstroSNN):
        raise ValueError(f"firing_rates needs an AstroSNN, got {type(model).__name__}")
    rates: list[dict] = []
    hooks = []
    for i, blk in enumerate(model.blocks):
        rec: dict = {"layer": i}
        rates.append(rec)

        def into(key, rec=rec):
            def hook(mod, inp, out):
                rec[key] = float((inp[0] != 0).float().mean())
                rec[key + "_in"] = mod.in_features
                rec[key + "_out"] = mod.out_features

            return hook

        hooks.append(blk.W_out.register_forward_hook(into("amsu")))
        hooks.append(blk.W_2.register_forward_hook(into("ffn")))
    try:
        model.eval()
        model(idx)
    finally:
        for h in hooks:
            h.remove()
    return rates


def dense_macs_per_token(model: torch.nn.Module) -> float:
    """Multiply-accumulates per token of the recurrent (generation) form if every layer were dense:
    every ``nn.Linear`` (``in * out``) plus each astrocyte's state update and read-out
    (``2 * d_key * (N/A + 1)`` per astrocyte: ``H += v k^T`` with ``z``, then ``H q``)."""
    from engramlab.astro.amsu import Astrocytes

    macs = 0.0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            macs += m.in_features * m.out_features
        elif isinstance(m, Astrocytes):
            macs += 2 * m.A * m.Dk * (m.Dv + 1)
    return macs


def synaptic_ops(rates: list[dict], model: torch.nn.Module | None = None) -> dict:
    """Per token: the dense multiply-accumulates of the layers fed by spikes (each output reads every input)
    against the accumulates a spike-driven implementation needs (only the inputs that fired are added):
    ``MAC = n_in * n_out``, ``AC = rate * n_in * n_out``, summed over layers. With ``model``, also the whole
    network: its dense MACs per token (``dense_macs_per_token``) against the same with the spike-fed layers
    counted as accumulates (the layers fed by real values stay dense)."""
    mac = ac = 0.0
    for r in rates:
        for key in ("amsu", "ffn"):
            if key in r:
                dense = r[key + "_in"] * r[key + "_out"]
                mac += dense
                ac += r[key] * dense
    out = {"spike_layer_macs": mac, "spike_layer_acs": ac, "spike_layer_ratio": ac / mac if mac else None}
    if model is not None:
        total = dense_macs_per_token(model)
        out.update(
            network_macs=total, network_ops_spike_driven=total - mac + ac, network_ratio=(total - mac + ac) / total
        )
    return out


# ------------------------------------------------------------------------------------- the benchmark
def run_benchmark(
    specs: dict[str, dict],
    rate_models: dict[str, str],
    contexts: list[int],
    gen_tokens: int,
    train_tokens: int,
    repeats: int = 2,
    train_max_context: int | None = None,
    isolate: bool = True,
    rate_windows: int = 8,
    rate_block: int = 512,
    log=None,
) -> dict:
    """The whole efficiency benchmark (benchmarks/astro_efficiency.py and the astro ``efficiency`` unit).

    ``specs``: model name -> ``build_model`` spec; ``rate_models``: label -> trained AstroSNN folder whose
    firing rates (on ``rate_windows`` windows of ``rate_block`` Shakespeare validation bytes) give the
    synaptic operations. ``isolate``: each (model, context) in a fresh one-thread process (False: in this
    process, for the tiny and quick budgets; the peaks then include what earlier measurements left).
    The load average before and after is recorded: on a shared machine the timings are not an idle machine's.
    """
    import os

    for name, v in (("gen_tokens", gen_tokens), ("train_tokens", train_tokens), ("repeats", repeats)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not contexts or any(isinstance(T, bool) or not isinstance(T, int) or T < 1 for T in contexts):
        raise ValueError(f"contexts must be positive ints, got {contexts!r}")
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    if isolate:
        thr = throughput(specs, contexts, gen_tokens, train_tokens, repeats, train_max_context, log=log)
    else:
        thr = {
            "contexts": list(contexts),
            "gen_tokens": gen_tokens,
            "train_tokens": train_tokens,
            "train_max_context": train_max_context,
            "models": {},
        }
        for name, spec in specs.items():
            model, rows = build_model(spec), {}
            for T in contexts:
                train = train_max_context is None or T <= train_max_context
                for k, v in measure_one(model, T, gen_tokens, train_tokens, repeats, train).items():
                    rows.setdefault(k, []).append(v)
            thr["models"][name] = {"params": sum(p.numel() for p in model.parameters()), **rows}
    firing = measure_firing(rate_models, rate_windows, rate_block)["firing"] if rate_models else []
    return {
        "throughput": thr,
        "firing": firing,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
        "seconds": time.perf_counter() - t0,
        "threads": 1 if isolate else torch.get_num_threads(),
        "device": "cpu",
    }


def measure_firing(rate_models: dict[str, str], windows: int = 8, block: int = 512) -> dict:
    """Firing rates per layer of each trained AstroSNN folder in ``rate_models`` (label -> folder) on
    ``windows`` windows of ``block`` Shakespeare validation bytes (the same windows for every model), and the
    synaptic operations per token they imply (``synaptic_ops``)."""
    from engramlab.data.text import load_corpus
    from engramlab.pretrained import load

    if windows < 1 or block < 1:
        raise ValueError(f"windows and block must be >= 1, got {windows}, {block}")
    corpus = load_corpus("shakespeare")
    g = torch.Generator().manual_seed(0)
    starts = torch.randint(0, len(corpus.val) - block - 1, (windows,), generator=g)
    idx = torch.tensor([list(corpus.val[int(i) : int(i) + block]) for i in starts], dtype=torch.long)
    firing = []
    for label, folder in rate_models.items():
        model = load(folder)
        rates = firing_rates(model, idx)
        firing.append({"unit": label, "rates": rates, "ops": synaptic_ops(rates, model)})
    return {"firing": firing, "input": {"windows": windows, "bytes": block, "source": "shakespeare validation"}}
