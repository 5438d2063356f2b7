"""The memory-retention experiment: AstroSNN vs its LIF ablation vs LSTM vs GPT, accuracy vs delay.

For each delay D, four models with (nearly) the same parameter count are trained with the same
budget (steps x batch of fresh task sequences, AdamW, warmup + cosine) on one task of
``engramlab.data.tasks`` (copy / recall / dms) and scored on held-out sequences at delay D.
By default (``train_delays="uniform"``) each training batch draws its delay from 0..D, for
every model alike; ``jobs > 1`` runs the (model, delay) trainings in parallel processes, each
seeded by its model and delay so that the numbers do not depend on the job order. The only thing
the experiment needs from a model is ``forward(idx, targets) -> (logits, loss)`` with
``ignore_index=-1`` in the loss. Output: ``DIR/memory.json``
``{"task", "delays", "accuracy": {model: [acc per delay]}, "params": {model: n}, "steps"}``,
``DIR/memory.png`` (accuracy vs delay), ``DIR/curves.json`` + ``DIR/curves.png`` (training
loss and held-out accuracy during training, per model and delay).

The ablation ladder (``models`` from ``engramlab.astro.model.VARIANTS``: rate, after_spike,
no_shift, no_norm, linear_attn) trains each variant at AstroSNN's width (not re-matched in
parameters: the switches add or remove at most a few hundred weights, and linear_attn keeps the
astrocytes' state size). ``per_delay=False`` trains one model per variant with delays drawn up to
the largest D and scores it at every D of ``delays`` (one training instead of one per delay).
``lrs`` overrides the learning rate per model (the baselines' sweep); ``run_memory(...,
builders={name: fn})`` adds models built elsewhere (``fn(vocab_size, max_len, target_params)``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from engramlab.astro.model import VARIANTS, AstroConfig, AstroSNN
from engramlab.data.tasks import MemoryTask
from engramlab.io import save_figure, write_json

MODEL_NAMES = (
    "astrosnn",
    "lif",
    "lstm",
    "gpt",
    "rate",
    "after_spike",
    "no_shift",
    "no_norm",
    "linear_attn",
    "sigmoid_input",
)
TRAIN_DELAYS = ("fixed", "uniform", "loguniform")


@dataclass
class MemoryConfig:
    task: str = "recall"
    delays: list[int] = field(default_factory=lambda: [10, 50, 100, 200, 500])
    models: list[str] = field(default_factory=lambda: ["astrosnn", "lif", "lstm", "gpt"])
    n_items: int = 4  # K
    n_symbols: int = 8
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    eval_batches: int = 8  # held-out batches of batch_size sequences for the final accuracy
    eval_every: int = 50  # steps between held-out accuracy points of the curves
    seed: int = 0
    # "fixed": every training batch has delay D; "uniform": each training batch draws its delay
    # uniformly from 0..D (the same for every model); "loguniform": round(exp(U(0, ln(D + 1)))) - 1,
    # as many batches in 0..9 as in 10..99 and 100..D; evaluation is always at delay D
    train_delays: str = "uniform"
    per_delay: bool = True  # False: one training per model up to max(delays), scored at every delay
    lrs: dict[str, float] = field(default_factory=dict)  # per-model learning rates (default: lr)
    jobs: int = 1  # (model, delay) trainings run in this many processes (1 torch thread each)
    # AstroSNN size; the other models are sized to its parameter count
    d_model: int = 48
    n_layer: int = 2
    n_astrocytes: int = 4
    d_key: int = 16


def _check(cfg: MemoryConfig, extra: tuple[str, ...] = ()) -> None:
    if not cfg.delays:
        raise ValueError("delays must list at least one delay")
    for d in cfg.delays:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(f"every delay must be an int >= 0, got {d!r}")
    bad = [m for m in cfg.models if m not in MODEL_NAMES and m not in extra]
    if bad or not cfg.models:
        raise ValueError(f"unknown model(s) {bad}; expected a non-empty subset of {MODEL_NAMES + tuple(extra)}")
    if cfg.train_delays not in TRAIN_DELAYS:
        raise ValueError(f"train_delays must be one of {TRAIN_DELAYS}, got {cfg.train_delays!r}")
    for name, lr in cfg.lrs.items():
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lrs[{name!r}] must be a finite number > 0, got {lr!r}")
    for name in ("steps", "batch_size", "eval_batches", "eval_every", "jobs"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise ValueError(f"lr must be a finite number > 0, got {cfg.lr}")
    for d in cfg.delays:  # impossible task parameters fail here, before any training
        MemoryTask(cfg.task, d, cfg.n_items, cfg.n_symbols)


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _closest(build, widths, target: int):
    best = min(widths, key=lambda w: abs(_n_params(build(w)) - target))
    return build(best)


def build_models(cfg: MemoryConfig, vocab_size: int, max_len: int, builders=None) -> dict[str, torch.nn.Module]:
    """AstroSNN of the configured size; LIF-SNN, LSTM and GPT widened/narrowed to its parameter count;
    the ladder's other variants at AstroSNN's width; ``builders`` (name -> fn(vocab, max_len, target))."""
    astro_cfg = AstroConfig(
        vocab_size=vocab_size,
        n_layer=cfg.n_layer,
        d_model=cfg.d_model,
        n_neurons=cfg.d_model,
        n_astrocytes=cfg.n_astrocytes,
        d_key=cfg.d_key,
    )
    astro = AstroSNN(astro_cfg)
    target = _n_params(astro)
    out: dict[str, torch.nn.Module] = {}
    for name in cfg.models:
        if name == "astrosnn":
            out[name] = astro
        elif builders and name in builders:
            out[name] = builders[name](vocab_size, max_len, target)
        elif name in VARIANTS and name != "lif":
            out[name] = AstroSNN(AstroConfig(**{**astro_cfg.__dict__, **VARIANTS[name]}))
        elif name == "lif":

            def build(w):
                c = AstroConfig(
                    **{
                        **astro_cfg.__dict__,
                        "d_model": w,
                        "n_neurons": w,
                        "astrocyte": False,
                        "n_astrocytes": 1,
                    }
                )
                return AstroSNN(c)

            out[name] = _closest(build, range(8, 4 * cfg.d_model, 2), target)
        elif name == "lstm":
            from engramlab.baselines.lstm import LSTMLM, LSTMConfig

            def build(w):
                return LSTMLM(LSTMConfig(n_layer=1, n_embd=32, hidden=w, vocab_size=vocab_size))

            out[name] = _closest(build, range(8, 4 * cfg.d_model, 2), target)
        else:
            from engramlab.baselines.gpt import GPT, GPTConfig

            def build(w):
                # rotary positions: no position parameters, any sequence length
                return GPT(
                    GPTConfig(
                        n_layer=cfg.n_layer,
                        n_head=2,
                        n_embd=w,
                        block_size=max_len,
                        vocab_size=vocab_size,
                        pos="rope",
                    )
                )

            out[name] = _closest(build, range(8, 4 * cfg.d_model, 4), target)
    return out


@torch.no_grad()
def evaluate(model, task: MemoryTask, cfg: MemoryConfig, seed: int) -> float:
    model.eval()
    g = torch.Generator().manual_seed(seed)
    correct = total = 0
    for _ in range(cfg.eval_batches):
        x, y = task.batch(cfg.batch_size, g)
        logits, _ = model(x)
        n = int((y != -1).sum())
        correct += MemoryTask.accuracy(logits, y) * n
        total += n
    model.train()
    return correct / total


def draw_delay(mode: str, delay: int, g: torch.Generator) -> int:
    """A training batch's delay for ``train_delays`` = mode, at most ``delay``."""
    if mode == "fixed":
        return delay
    if mode == "uniform":
        return int(torch.randint(0, delay + 1, (1,), generator=g))
    u = float(torch.rand((), generator=g))
    return min(delay, int(round(math.exp(u * math.log(delay + 1)))) - 1)


def train_one(
    model,
    task: MemoryTask,
    cfg: MemoryConfig,
    seed: int,
    desc: str = "",
    progress: bool = True,
    lr: float | None = None,
    score_delays: list[int] | None = None,
):
    """Train on fresh batches; return (final held-out accuracy, curve dict).

    With ``score_delays`` the accuracy is a dict {delay: accuracy} at each of them (same held-out seed)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=cfg.lr if lr is None else lr,
        betas=(0.9, 0.99),
    )
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
    )
    curve = {"step": [], "loss": [], "eval_step": [], "eval_acc": []}
    eval_seed = 10_000 + seed
    t0 = time.time()
    bar = tqdm(range(cfg.steps), desc=desc, leave=False, mininterval=2.0, disable=not progress)
    for step in bar:
        if cfg.train_delays != "fixed":
            d = draw_delay(cfg.train_delays, task.delay, g)
            x, y = MemoryTask(task.name, d, task.n_items, task.n_symbols).batch(cfg.batch_size, g)
        else:
            x, y = task.batch(cfg.batch_size, g)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            curve["step"].append(step)
            value = loss.detach().item()
            curve["loss"].append(value)
            bar.set_postfix(loss=f"{value:.3f}")
        if (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            curve["eval_step"].append(step + 1)
            curve["eval_acc"].append(evaluate(model, task, cfg, eval_seed))
    curve["seconds"] = time.time() - t0
    acc = evaluate(model, task, cfg, eval_seed)
    curve["eval_step"].append(cfg.steps)
    curve["eval_acc"].append(acc)
    if score_delays is not None:
        at = {task.delay: acc}
        for e in score_delays:
            if e not in at:
                at[e] = evaluate(model, MemoryTask(task.name, e, task.n_items, task.n_symbols), cfg, eval_seed)
        acc = {e: at[e] for e in score_delays}
    return acc, curve


def plot(result: dict, curves: dict, out: Path, chance: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, accs in result["accuracy"].items():
        done = [(d, a) for d, a in zip(result["delays"], accs) if a is not None]
        if done:
            ax.plot(*zip(*done), marker="o", label=f"{name} ({result['params'][name]:,} params)")
    ax.axhline(chance, color="gray", ls=":", label="chance")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("delay D (blank steps)")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{result['task']}: accuracy vs delay ({result['steps']} steps)")
    ax.legend(fontsize=7)
    save_figure(fig, out / "memory.png", dpi=120, bbox_inches="tight")

    delays = sorted({int(k.split("@")[1]) for k in curves})
    fig, axes = plt.subplots(2, len(delays), figsize=(3.2 * len(delays), 5), squeeze=False)
    for j, d in enumerate(delays):
        for name in result["accuracy"]:
            c = curves.get(f"{name}@{d}")
            if c is None:
                continue
            axes[0, j].plot(c["step"], c["loss"], label=name)
            axes[1, j].plot(c["eval_step"], c["eval_acc"], marker=".", label=name)
        axes[0, j].set_title(f"D = {d}")
        axes[0, j].set_yscale("log")
        axes[1, j].set_ylim(-0.02, 1.02)
        axes[1, j].set_xlabel("step")
    axes[0, 0].set_ylabel("training loss")
    axes[1, 0].set_ylabel("held-out accuracy")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "curves.png", dpi=120, bbox_inches="tight")


def _model_index(name: str, builders) -> int:
    if name in MODEL_NAMES:
        return MODEL_NAMES.index(name)
    return 50 + sorted(builders).index(name)  # models built elsewhere: seeds apart from the named ones


def _job(
    cfg: MemoryConfig,
    d: int,
    name: str,
    vocab: int,
    max_len: int,
    threads: int | None = None,
    progress: bool = True,
    builders=None,
):
    """Train model ``name`` at delay d (seeded by name and delay, so any job order gives the same numbers).

    Returns (d, name, {scored delay: accuracy}, curve)."""
    if threads is not None:
        torch.set_num_threads(threads)
    i = _model_index(name, builders)
    torch.manual_seed(cfg.seed + 101 * i)
    model = build_models(cfg, vocab, max_len, builders)[name]
    task = MemoryTask(cfg.task, d, cfg.n_items, cfg.n_symbols)
    scored = [d] if cfg.per_delay else list(cfg.delays)
    acc, curve = train_one(
        model,
        task,
        cfg,
        cfg.seed + 7 * d + i,
        desc=f"{name} D={d}",
        progress=progress,
        lr=cfg.lrs.get(name),
        score_delays=scored,
    )
    shown = ", ".join(f"D={e}: {a:.3f}" for e, a in acc.items())
    print(f"[memory] task={cfg.task} trained D<={d} {name}: {shown} ({curve['seconds']:.0f}s)", flush=True)
    return d, name, acc, curve


def run_memory(
    cfg: MemoryConfig,
    out_dir: str | Path,
    progress: bool = True,
    builders: dict[str, Callable[[int, int, int], torch.nn.Module]] | None = None,
) -> dict:
    """Run the experiment; write memory.json / memory.png / curves.json / curves.png into out_dir
    (``progress=False``: no progress bars). ``builders``: extra models by name (only with jobs=1)."""
    _check(cfg, tuple(builders or ()))
    if builders and cfg.jobs > 1:
        raise ValueError(f"models built by `builders` run in this process only; use jobs=1, got jobs={cfg.jobs}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    tasks = {d: MemoryTask(cfg.task, d, cfg.n_items, cfg.n_symbols) for d in cfg.delays}
    vocab = tasks[cfg.delays[0]].vocab_size
    max_len = max(t.seq_len for t in tasks.values())
    params = {n: _n_params(m) for n, m in build_models(cfg, vocab, max_len, builders).items()}
    acc: dict[tuple[int, str], float] = {}
    curves: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    # longest sequences and spiking models first, so the slowest jobs start at once
    trained = cfg.delays if cfg.per_delay else [max(cfg.delays)]
    jobs = sorted(((d, n) for d in trained for n in cfg.models), key=lambda dn: (-dn[0], _model_index(dn[1], builders)))

    def record(d, name, a, curve):
        for e, v in a.items():
            acc[(e, name)] = v
        curves[f"{name}@{d}"] = curve
        seconds[name] = seconds.get(name, 0.0) + curve["seconds"]
        write_json(out / "curves.json", {"config": cfg.__dict__, "curves": curves}, indent=None)

    if cfg.jobs == 1:
        for d, name in jobs:
            record(*_job(cfg, d, name, vocab, max_len, progress=progress, builders=builders))
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(cfg.jobs, mp_context=mp.get_context("spawn")) as pool:
            futs = [pool.submit(_job, cfg, d, n, vocab, max_len, 1, progress) for d, n in jobs]
            for f in cf.as_completed(futs):
                record(*f.result())
    result = {
        "task": cfg.task,
        "delays": list(cfg.delays),
        "accuracy": {n: [acc[(d, n)] for d in cfg.delays] for n in cfg.models},
        "params": params,
        "steps": cfg.steps,
        "lr": {n: cfg.lrs.get(n, cfg.lr) for n in cfg.models},
        "train_seconds": seconds,
        "protocol": (
            "one training per model and delay, scored at that delay"
            if cfg.per_delay
            else f"one training per model, delays drawn ({cfg.train_delays}) up to {max(cfg.delays)}, scored at each"
        ),
    }
    write_json(out / "memory.json", result)
    plot(result, curves, out, tasks[cfg.delays[0]].chance)
    return result
