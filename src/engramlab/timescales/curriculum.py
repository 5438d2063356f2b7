"""Curricula for N-parity / N-DMS (Khajehabdollahi, Zeraati et al., ICLR 2024, Sec. 2; official
``training/train.py``).

* ``single``  (single-head): one head; train N, and when solved move to N+1 on the same head.
* ``multi``   (multi-head, the official "cumulative"): heads for N = 2..N_max are trained together; when
  solved add a head for N_max + 1. Head k always reads N = n_min + k.
* ``sliding`` (multi-head sliding window): a window of ``sliding_heads`` consecutive N; when solved drop
  the ``sliding_shift`` smallest and add as many above. As in the official code, head k reads the k-th
  N of the current window (so a head's N shifts with the window).

Loss = sum over active heads of the batch-mean cross-entropy. SGD lr 0.05, momentum 0.1, Nesterov;
global grad-norm clip 2.0; batch 256; fresh data every step. After every epoch (``steps_per_epoch``
training steps, 600 in the paper) accuracy is measured on ``test_batches`` fresh batches (50 in the
paper); the curriculum advances when the mean accuracy over active heads > 98% AND the newest head's
accuracy > 98%, and the network is then saved as a checkpoint folder ``N{min:03d}_N{max:03d}/``
(a model folder, ``engramlab.pretrained``: ``config.json`` + ``model.safetensors`` + ``trainer.pt``
with the optimizer and RNG state, written atomically; it loads with ``engramlab.load``). Training
stops when ``max_n`` is solved, after ``max_epochs`` epochs, or when the wall-clock budget is spent.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from engramlab.data.tasks import TIMESCALE_TASKS, make_timescale_batch, sample_sequence_length
from engramlab.io import dumps_json, write_json
from engramlab.pretrained import CONFIG_FILE, WEIGHTS_FILE, load_model, save_model
from engramlab.train.config import config_from_dict

from .model import GatedRNN, GatedRNNConfig, LeakyRNN, LeakyRNNConfig

CURRICULA = ("single", "multi", "sliding")
MODELS = ("leaky", "gru", "lstm")


@dataclass
class TrainConfig:
    task: str = "parity"
    curriculum: str = "multi"
    max_n: int = 101
    n_min: int = 2
    model: str = "leaky"  # "leaky" | "gru" | "lstm"
    n_neurons: int = 500
    n_heads: int = 100  # heads allocated (the official code allocates 100: N = 2..101 multi-head)
    variant: str = "default"  # leaky only: "default" | "mod"
    train_tau: bool = True
    tau: float = 1.0
    batch_size: int = 256
    steps_per_epoch: int = 600
    test_batches: int = 50
    max_epochs: int = 1000
    threshold: float = 98.0  # percent
    optimizer: str = "auto"  # "auto" (SGD for leaky, Adam for gru/lstm) | "sgd" | "adam"
    lr: float | None = None  # None: 0.05 (SGD) / 1e-3 (Adam)
    momentum: float = 0.1
    nesterov: bool = True
    clip: float = 2.0
    sliding_heads: int = 10
    sliding_shift: int = 5
    budget_minutes: float | None = None
    seed: int = 0

    def __post_init__(self):
        if self.task not in TIMESCALE_TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {TIMESCALE_TASKS}")
        if self.curriculum not in CURRICULA:
            raise ValueError(f"unknown curriculum {self.curriculum!r}; expected one of {CURRICULA}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {MODELS}")
        for name in (
            "max_n",
            "n_min",
            "n_neurons",
            "n_heads",
            "batch_size",
            "steps_per_epoch",
            "test_batches",
            "max_epochs",
            "sliding_heads",
            "sliding_shift",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.n_min < 2:
            raise ValueError(f"n_min must be >= 2 (N-parity / N-DMS need N >= 2), got {self.n_min}")
        if self.max_n < self.n_min:
            raise ValueError(f"max_n={self.max_n} must be >= n_min={self.n_min}")
        if self.curriculum == "multi" and self.max_n - self.n_min + 1 > self.n_heads:
            raise ValueError(
                f"max_n={self.max_n} is beyond the heads: the multi-head curriculum needs one head "
                f"per N in [{self.n_min}, {self.max_n}] ({self.max_n - self.n_min + 1} heads) "
                f"but n_heads={self.n_heads}"
            )
        if self.curriculum == "sliding":
            if self.sliding_shift > self.sliding_heads:
                raise ValueError(f"sliding_shift={self.sliding_shift} must be <= sliding_heads={self.sliding_heads}")
            if self.sliding_heads > self.n_heads:
                raise ValueError(f"sliding_heads={self.sliding_heads} is beyond the heads (n_heads={self.n_heads})")
        if self.optimizer not in ("auto", "sgd", "adam"):
            raise ValueError(f"optimizer must be 'auto', 'sgd' or 'adam', got {self.optimizer!r}")
        if not 0 < self.threshold <= 100:
            raise ValueError(f"threshold is a percentage in (0, 100], got {self.threshold}")
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise ValueError(f"budget_minutes must be > 0 (or None), got {self.budget_minutes}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    @property
    def resolved_optimizer(self) -> str:
        if self.optimizer != "auto":
            return self.optimizer
        return "sgd" if self.model == "leaky" else "adam"

    @property
    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.05 if self.resolved_optimizer == "sgd" else 1e-3

    def initial_ns(self) -> list[int]:
        if self.curriculum == "sliding":
            return list(range(self.n_min, self.n_min + self.sliding_heads))
        return [self.n_min]

    def next_ns(self, ns: list[int]) -> list[int]:
        if self.curriculum == "single":
            return [ns[0] + 1]
        if self.curriculum == "multi":
            return ns + [ns[-1] + 1]
        k = self.sliding_shift
        return ns[k:] + [ns[-1] + 1 + i for i in range(k)]

    def heads_for(self, ns: list[int]) -> list[int]:
        """Head index used for each N in ``ns`` (multi: N - n_min; single: 0; sliding: position)."""
        if self.curriculum == "multi":
            return [n - self.n_min for n in ns]
        return list(range(len(ns)))

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return config_from_dict(cls, d)


# ----------------------------------------------------------------------------- model / checkpoint I/O
def build_model(cfg: TrainConfig) -> nn.Module:
    n_heads = 1 if cfg.curriculum == "single" else cfg.n_heads
    if cfg.model == "leaky":
        return LeakyRNN(
            LeakyRNNConfig(
                n_neurons=cfg.n_neurons, n_heads=n_heads, train_tau=cfg.train_tau, tau=cfg.tau, variant=cfg.variant
            )
        )
    return GatedRNN(GatedRNNConfig(cell=cfg.model, n_neurons=cfg.n_neurons, n_heads=n_heads))


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict, trainer_state: dict | None = None) -> Path:
    """Write the model folder ``path/`` at once, replacing an earlier checkpoint of the run there.

    config.json = {"model", "model_config", "engramlab_version"} + ``meta`` (its "step" and
    "train_config" in their reserved places, the rest, e.g. "ns" and "heads", as they are);
    model.safetensors; trainer.pt when ``trainer_state`` is given (it needs ``meta["step"]``).
    The folder loads with ``load_checkpoint``, ``engramlab.load`` and ``LeakyRNN.from_pretrained``.
    """
    meta = dict(meta)
    step, train_config = meta.pop("step", None), meta.pop("train_config", None)
    return save_model(
        model, path, overwrite=True, step=step, train_config=train_config, trainer_state=trainer_state, extra=meta
    )


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """Load a checkpoint folder (also one written before the common model-folder format);
    returns (model in eval mode, config.json dict)."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a timescales checkpoint (expected {CONFIG_FILE} + {WEIGHTS_FILE})")
    return load_model(path, expected=(LeakyRNN, GatedRNN))


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, int, Path]]:
    """Checkpoint folders ``N{min}_N{max}`` of a run, sorted by N_max: [(n_min, n_max, path), ...]."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    out = []
    for p in run_dir.iterdir():
        if p.is_dir() and p.name.startswith("N") and "_N" in p.name and (p / "config.json").is_file():
            a, b = p.name[1:].split("_N")
            out.append((int(a), int(b), p))
    return sorted(out, key=lambda t: (t[1], t[0]))


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(
    model: nn.Module,
    task: str,
    ns: list[int],
    heads: list[int],
    n_batches: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    length_n: int | None = None,
) -> list[float]:
    """Accuracy (%) of head ``heads[i]`` on N = ``ns[i]``, on ``n_batches`` fresh batches.

    Sequence lengths follow the rule for max(ns), or for max(length_n, max(ns)) when ``length_n`` is given.
    """
    correct = torch.zeros(len(ns))
    idx = torch.tensor(heads)
    for _ in range(n_batches):
        length = None if length_n is None else sample_sequence_length(max(length_n, *ns), generator)
        x, y = make_timescale_batch(task, ns, batch_size, generator, length=length)
        pred = model(x, heads=idx).argmax(-1)  # (K, B)
        correct += (pred == y).sum(1).float()
    return (100.0 * correct / (n_batches * batch_size)).tolist()


def _tau_stats(model: nn.Module) -> dict:
    if not isinstance(model, LeakyRNN):
        return {}
    t = model.taus.detach()
    return {"tau_mean": float(t.mean()), "tau_std": float(t.std()) if t.numel() > 1 else 0.0, "tau_max": float(t.max())}


# ----------------------------------------------------------------------------- training
def _trainer_state(opt: torch.optim.Optimizer, gen: torch.Generator, epoch: int) -> dict:
    """trainer.pt of a checkpoint: optimizer state, the data generator's and torch's RNG, the epoch."""
    return {
        "optimizer": opt.state_dict(),
        "data_rng": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": epoch,
    }


def train_curriculum(cfg: TrainConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Run the curriculum; write checkpoints, ``metrics.jsonl`` and ``summary.json`` in ``out_dir``.

    Returns the summary dict (``n_reached`` = largest N solved, None if N = n_min was never solved).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_model(cfg)
    params = list(model.parameters())
    if cfg.resolved_optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.resolved_lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    else:
        opt = torch.optim.Adam(params, lr=cfg.resolved_lr)
    budget_s = math.inf if cfg.budget_minutes is None else 60.0 * cfg.budget_minutes
    write_json(out_dir / "train_config.json", asdict(cfg))
    metrics_path = out_dir / "metrics.jsonl"
    metrics_path.write_text("")

    ns = cfg.initial_ns()
    reached: int | None = None
    solved_log: list[dict] = []
    start = time.time()
    step = 0
    stop_reason = "max_epochs"
    bar = tqdm(
        total=None,
        desc=f"{cfg.curriculum}/{cfg.task}",
        disable=not progress,
        mininterval=2.0,
        unit="step",
        dynamic_ncols=True,
    )
    last_acc = float("nan")
    for epoch in range(1, cfg.max_epochs + 1):
        heads = torch.tensor(cfg.heads_for(ns))
        model.train()
        losses = []
        for _ in range(cfg.steps_per_epoch):
            if time.time() - start > budget_s:
                break
            x, y = make_timescale_batch(cfg.task, ns, cfg.batch_size, gen)  # (B, M, 1), (K, B)
            logits = model(x, heads=heads)  # (K, B, 2)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
            loss = loss / cfg.batch_size  # = sum over heads of the batch-mean cross-entropy
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.clip)
            opt.step()
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(
                N=f"{ns[0]}-{ns[-1]}" if len(ns) > 1 else ns[0],
                acc=f"{last_acc:.1f}",
                loss=f"{losses[-1]:.3f}",
                refresh=False,
            )
        if not losses:
            stop_reason = "budget"
            break
        model.eval()
        acc = evaluate(model, cfg.task, ns, cfg.heads_for(ns), cfg.test_batches, cfg.batch_size, gen)
        mean_acc = sum(acc) / len(acc)
        last_acc = mean_acc
        solved = mean_acc > cfg.threshold and acc[-1] > cfg.threshold
        rec = {
            "epoch": epoch,
            "step": step,
            "elapsed_s": time.time() - start,
            "ns": ns,
            "loss": sum(losses) / len(losses),
            "accuracy": acc,
            "mean_accuracy": mean_acc,
            "solved": solved,
            **_tau_stats(model),
        }
        with open(metrics_path, "a") as f:
            f.write(dumps_json(rec, indent=None) + "\n")
        bar.set_postfix(N=f"{ns[0]}-{ns[-1]}" if len(ns) > 1 else ns[0], acc=f"{mean_acc:.1f}")
        if solved:
            reached = ns[-1]
            meta = {
                "train_config": asdict(cfg),
                "ns": ns,
                "heads": cfg.heads_for(ns),
                "epoch": epoch,
                "step": step,
                "elapsed_s": rec["elapsed_s"],
                "accuracy": acc,
            }
            save_checkpoint(model, out_dir / f"N{ns[0]:03d}_N{ns[-1]:03d}", meta, _trainer_state(opt, gen, epoch))
            solved_log.append({"n_max": ns[-1], "epoch": epoch, "step": step, "elapsed_s": rec["elapsed_s"]})
            bar.write(f"solved N={ns[0]}..{ns[-1]} at epoch {epoch} (step {step}, {rec['elapsed_s'] / 60:.1f} min)")
            if ns[-1] >= cfg.max_n:
                stop_reason = "max_n"
                break
            ns = cfg.next_ns(ns)
        if time.time() - start > budget_s:
            stop_reason = "budget"
            break
    bar.close()
    summary = {
        "task": cfg.task,
        "curriculum": cfg.curriculum,
        "model": cfg.model,
        "n_reached": reached,
        "stop_reason": stop_reason,
        "epochs": epoch,
        "steps": step,
        "elapsed_s": time.time() - start,
        "solved": solved_log,
        "last_ns": ns,
        "torch_threads": torch.get_num_threads(),
        "load_avg": list(os.getloadavg()),
    }
    last_meta = {
        "train_config": asdict(cfg),
        "ns": ns,
        "heads": cfg.heads_for(ns),
        "epoch": epoch,
        "step": step,
        "solved": False,
    }
    save_checkpoint(model, out_dir / "last", last_meta, _trainer_state(opt, gen, epoch))
    write_json(out_dir / "summary.json", summary)
    return summary
