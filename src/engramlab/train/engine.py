"""The one training engine of every gradient-trained sequence model (BDH, AstroSNN, GPT, LSTM).

AdamW with linear warm-up then cosine decay, gradient clipping and accumulation, periodic
evaluation in nats/byte and bits/byte, bf16 autocast and optional ``torch.compile`` on GPU,
a tqdm progress bar, ``metrics.jsonl``, atomic checkpoints with exact resume (on CPU a
resumed run logs the same losses as an uninterrupted one), Ctrl-C saves, a non-finite loss
stops training, and data-parallel training under ``torchrun`` (gloo on CPU, NCCL on GPU).

No run folder is ever written over by accident, nor left looking like a run when it is not one:
a new run needs a missing or empty ``out_dir`` (or ``overwrite=True``) and is written into a
hidden temporary folder beside it (``.NAME.XXXX.partial``), which becomes ``out_dir`` when the
first checkpoint is complete; an old folder is replaced only then. If training stops before that
(an error, or Ctrl-C before the first step is done) the temporary folder is removed and
``out_dir`` is as it was. So a folder at ``out_dir`` always holds a loadable checkpoint and its
``metrics.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from engramlab.cli_common import check_output_folder
from engramlab.data.text import ConsecutiveBatcher, Corpus, get_batch, load_corpus
from engramlab.io import atomic_write_bytes, give_usual_permissions
from engramlab.train.checkpoint import (
    METRICS,
    CheckpointError,
    load_trainer_state,
    read_config,
    save_model_folder,
)
from engramlab.train.config import TrainConfig

LN2 = math.log(2.0)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but no CUDA GPU is available")
    return torch.device(device)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr over warmup_steps, then cosine decay to min_lr at cfg.steps
    (``schedule="cosine"``) or cfg.lr throughout (``schedule="constant"``)."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings (dim >= 2) only, as in nanoGPT."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **extra)


def check_train_config(cfg: TrainConfig) -> None:
    positive = ("steps", "batch_size", "block_size", "grad_accum", "eval_interval", "eval_batches", "log_interval")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise ValueError(f"train config {name}={getattr(cfg, name)} must be >= 1")
    if cfg.lr <= 0 or cfg.min_lr < 0 or cfg.min_lr > cfg.lr:
        raise ValueError(f"need 0 <= min_lr <= lr and lr > 0, got lr={cfg.lr}, min_lr={cfg.min_lr}")
    if cfg.dtype not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"train config dtype={cfg.dtype!r}; expected auto, float32 or bfloat16")
    if cfg.grad_clip < 0:
        raise ValueError(f"train config grad_clip={cfg.grad_clip} must be >= 0 (0 disables clipping)")
    if cfg.schedule not in ("cosine", "constant"):
        raise ValueError(f"train config schedule={cfg.schedule!r}; expected cosine or constant")


def _detach(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (list, tuple)):
        return type(state)(_detach(s) for s in state)
    if isinstance(state, dict):
        return {k: _detach(v) for k, v in state.items()}
    return state


def _to(state: Any, device: torch.device) -> Any:
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, (list, tuple)):
        return type(state)(_to(s, device) for s in state)
    if isinstance(state, dict):
        return {k: _to(v, device) for k, v in state.items()}
    return state


class Trainer:
    """Train ``model`` on a byte corpus and keep a checkpoint folder at ``out_dir``.

    Under ``torchrun`` every process draws the same global batch of
    ``batch_size * world_size`` windows and trains on its own slice, so a DDP run follows the
    single-process run on the combined batch.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: TrainConfig,
        out_dir: str | Path,
        model_name: str,
        corpus: Corpus | None = None,
        device: str = "auto",
        progress: bool = True,
    ):
        check_train_config(cfg)
        self.cfg = cfg
        self.out = Path(out_dir)
        self.model_name = model_name
        self.progress = progress
        self.ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.ddp:
            if not dist.is_initialized():
                backend = "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"
                dist.init_process_group(backend=backend)
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            if torch.cuda.is_available() and device != "cpu":
                local = int(os.environ.get("LOCAL_RANK", "0"))
                torch.cuda.set_device(local)
                device = f"cuda:{local}"
        else:
            self.rank, self.world = 0, 1
        self.device = resolve_device(device)
        self.master = self.rank == 0
        self.corpus = corpus if corpus is not None else load_corpus(cfg.data, cfg.val_fraction)
        self.corpus.check_block(cfg.block_size)
        if cfg.carry_state and not getattr(model, "supports_state_carry", False):
            raise ValueError(f"carry_state=True, but the {model_name} model cannot carry its state across windows")
        self.raw_model = model.to(self.device)
        self.model = self.raw_model
        if cfg.compile:
            self.model = torch.compile(self.model)
        self.manual_sync = self.ddp and cfg.carry_state
        if self.ddp and not self.manual_sync:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        elif self.manual_sync:
            # the stateful forward is not the module's forward, so DDP's hooks cannot be used:
            # start from rank 0's weights and average gradients by hand after each step
            for p in self.raw_model.parameters():
                dist.broadcast(p.data, src=0)
        self.optimizer = make_optimizer(self.raw_model, cfg, self.device)
        use_bf16 = cfg.dtype == "bfloat16" or (
            cfg.dtype == "auto" and self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        )
        self.autocast = (
            torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
        )
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        self.batcher = (
            ConsecutiveBatcher(self.corpus.train, cfg.batch_size * self.world, cfg.block_size)
            if cfg.carry_state
            else None
        )
        self.carried = None  # detached model state under carry_state
        self.step = 0
        self.writer = None
        self.run_dir = self.out  # where files are written now (a temporary folder until the first checkpoint)
        self._partial: Path | None = None  # that temporary folder, while it is one

    # -------------------------------------------------------------------------------- data
    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        B = self.cfg.batch_size
        if self.batcher is not None:
            x, y, reset = self.batcher.next()
        else:
            x, y = get_batch(self.corpus.train, B * self.world, self.cfg.block_size, self.data_gen)
            reset = False
        sl = slice(self.rank * B, (self.rank + 1) * B)
        return x[sl].to(self.device), y[sl].to(self.device), reset

    # -------------------------------------------------------------------------------- state
    def _rng_snapshot(self) -> dict[str, Any]:
        snap = {"data_gen": self.data_gen.get_state(), "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            snap["cuda"] = torch.cuda.get_rng_state_all()
        if self.batcher is not None:
            snap["batcher_position"] = self.batcher.position
            snap["carried"] = self.carried  # replaced (never modified in place) by each forward
        return snap

    def _restore_rng(self, snap: dict[str, Any]) -> None:
        self.data_gen.set_state(snap["data_gen"])
        torch.set_rng_state(snap["torch"])
        if "cuda" in snap and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(snap["cuda"])
        if self.batcher is not None:
            self.batcher.position = snap.get("batcher_position", 0)

    def save(self, rng: dict[str, Any] | None = None) -> None:
        """Write the checkpoint folder for the current step (rank 0 only)."""
        if not self.master:
            return
        snap = rng if rng is not None else self._rng_snapshot()
        state = {
            "optimizer": self.optimizer.state_dict(),
            "rng": {k: v for k, v in snap.items() if k != "carried"},
            "world_size": self.world,
            "carried": _to(snap["carried"], torch.device("cpu")) if snap.get("carried") is not None else None,
        }
        (self.run_dir / METRICS).touch()  # a run folder always has its log, even before the first line
        save_model_folder(self.run_dir, self.raw_model, self.model_name, self.cfg, self.step, state)
        if self._partial is not None:
            self._finalize()

    def _start_partial(self) -> None:
        """A new run: write into a fresh temporary folder beside out_dir (rank 0 only)."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._partial = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.", suffix=".partial"))
        give_usual_permissions(self._partial, folder=True)
        self.run_dir = self._partial

    def _finalize(self) -> None:
        """The first checkpoint is complete: the temporary folder becomes out_dir (replacing an
        empty folder, or under overwrite=True the old run, which is deleted now)."""
        tmp, self._partial = self._partial, None
        if self.writer is not None:
            self.writer.close()
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.replaced-{os.getpid()}"
            os.replace(self.out, old)
            os.replace(tmp, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, self.out)
        self.run_dir = self.out
        if self.writer is not None:
            self._open_writer()

    def _discard_partial(self) -> None:
        if self._partial is not None:
            shutil.rmtree(self._partial, ignore_errors=True)
            self._partial = None
            self.run_dir = self.out

    def _open_writer(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("tensorboard=True needs the tensorboard package: pip install tensorboard") from None
        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def resume(self) -> None:
        """Load model, optimizer, RNG and step from the checkpoint at out_dir."""
        from engramlab.train.checkpoint import load_checkpoint

        cfg = read_config(self.out)
        if cfg["model"] != self.model_name:
            raise CheckpointError(f"cannot resume {self.out}: it holds a {cfg['model']} model, not {self.model_name}")
        state = load_trainer_state(self.out)
        model, _, _, step = load_checkpoint(self.out)
        if model.config != self.raw_model.config:
            raise CheckpointError(
                f"cannot resume {self.out}: its model config differs from the one asked for "
                f"({model.config} vs {self.raw_model.config})"
            )
        self.raw_model.load_state_dict(model.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self._restore_rng(state["rng"])
        self.carried = _to(state.get("carried"), self.device)
        self.step = step
        if self.master:
            self._truncate_metrics(step)

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines written after the checkpoint so the resumed log has no duplicates."""
        path = self.run_dir / METRICS
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (json.JSONDecodeError, KeyError):
                continue
        atomic_write_bytes(path, "".join(x + "\n" for x in keep).encode())

    def _log(self, record: dict[str, Any]) -> None:
        if not self.master:
            return
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, record["step"])

    # -------------------------------------------------------------------------------- eval
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean validation loss over fixed windows (the same ones at every evaluation)."""
        self.raw_model.eval()
        gen = torch.Generator().manual_seed(self.cfg.seed + 1)
        losses = []
        for _ in range(self.cfg.eval_batches):
            x, y = get_batch(self.corpus.val, self.cfg.batch_size, self.cfg.block_size, gen)
            with self.autocast:
                _, loss = self.raw_model(x.to(self.device), y.to(self.device))
            losses.append(float(loss))
        self.raw_model.train()
        val = sum(losses) / len(losses)
        return {"val_loss": val, "val_bpb": val / LN2}

    # -------------------------------------------------------------------------------- loop
    def _forward(self, x, y, reset):
        if self.batcher is None:
            return self.model(x, y)[1]
        if reset or self.carried is None:
            self.carried = None
        _, loss, state = self.raw_model.forward_with_state(x, y, self.carried)
        self.carried = _detach(state)
        return loss

    def fit(self, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
        """Train up to cfg.steps optimizer steps; returns the final metrics.

        ``resume=True`` continues the checkpoint in out_dir. Otherwise out_dir must be missing or
        empty, or ``overwrite=True`` replaces it once the new run has its first checkpoint (see the
        module docstring).
        """
        cfg = self.cfg
        check_output_folder(self.out, overwrite, resume, overwrite_flag="overwrite=True", resume_flag="resume=True")
        if resume:
            self.resume()
        if self.step >= cfg.steps:
            return {"step": self.step}
        try:
            if self.master and not resume:
                self._start_partial()
            if self.master and cfg.tensorboard:
                self._open_writer()
            return self._loop()
        finally:
            if self.writer is not None:
                self.writer.close()
                self.writer = None
            self._discard_partial()  # stopped before the first checkpoint: leave nothing behind

    def _loop(self) -> dict[str, Any]:
        cfg = self.cfg
        tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * self.world
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not (self.progress and self.master),
            desc=f"train {self.model_name}",
            unit="step",
            dynamic_ncols=True,
        )
        last: dict[str, Any] = {}
        rng = self._rng_snapshot()
        t0 = time.perf_counter()
        self.raw_model.train()
        interrupted = False
        # Ctrl-C and SIGTERM (cluster pre-emption) stop training with a save. During the forward and
        # backward the step is dropped and the state from its start is saved; from the weight update
        # on, the signal is held until the step (its log line, evaluation and checkpoint) is complete,
        # so a checkpoint never holds half-updated weights or misses a logged step.
        critical = {"on": False, "pending": False}

        def _stop(signum, frame):
            if critical["on"]:
                critical["pending"] = True
            else:
                raise KeyboardInterrupt

        old_handlers = {}
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if sig is None:
                continue
            try:
                old_handlers[sig] = signal.signal(sig, _stop)
            except ValueError:  # not in the main thread: leave the handlers alone
                break
        try:
            while self.step < cfg.steps:
                rng = self._rng_snapshot()  # state at the start of this step, for an exact Ctrl-C save
                lr = lr_at(self.step, cfg)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                total = 0.0
                for micro in range(cfg.grad_accum):
                    x, y, reset = self._next_batch()
                    sync = nullcontext()
                    if self.ddp and not self.manual_sync and micro < cfg.grad_accum - 1:
                        sync = self.model.no_sync()
                    with sync:
                        with self.autocast:
                            loss = self._forward(x, y, reset)
                        (loss / cfg.grad_accum).backward()
                    total += float(loss.detach()) / cfg.grad_accum
                if self.manual_sync:
                    for p in self.raw_model.parameters():
                        if p.grad is not None:
                            dist.all_reduce(p.grad)
                            p.grad /= self.world
                if self.ddp:
                    t = torch.tensor([total], device=self.device)
                    dist.all_reduce(t)
                    total = float(t) / self.world
                if not math.isfinite(total):
                    kept = (
                        f"The last good checkpoint in {self.out} is kept"
                        if self._partial is None
                        else f"No checkpoint had been written yet, so nothing was saved in {self.out}"
                    )
                    raise TrainingDiverged(
                        f"training loss became {total} at step {self.step + 1}; stopped. {kept} "
                        f"(lower lr or raise grad clipping)"
                    )
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), cfg.grad_clip)
                critical["on"] = True
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                rng = self._rng_snapshot()
                bar.update(1)
                dt = time.perf_counter() - t0
                t0 = time.perf_counter()
                record = None
                if self.step % cfg.log_interval == 0 or self.step == cfg.steps:
                    record = {
                        "step": self.step,
                        "train_loss": total,
                        "lr": lr,
                        "tokens_per_s": tokens_per_step / max(dt, 1e-9),
                    }
                if self.step % cfg.eval_interval == 0 or self.step == cfg.steps:
                    record = record or {"step": self.step, "train_loss": total, "lr": lr}
                    record.update(self.evaluate())
                if record is not None:
                    self._log(record)
                    last = record
                    bar.set_postfix(
                        loss=f"{total:.3f}",
                        tok_s=f"{tokens_per_step / max(dt, 1e-9):.0f}",
                        **({"val_bpb": f"{record['val_bpb']:.3f}"} if "val_bpb" in record else {}),
                    )
                if self.step % cfg.eval_interval == 0 or self.step == cfg.steps:
                    self.save()
                critical["on"] = False
                if critical["pending"]:  # a signal held during the update: stop after this step
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            interrupted = True
            # the step in progress is dropped: save the state from the start of that step
            self.optimizer.zero_grad(set_to_none=True)
            if self.step == 0 and self._partial is not None:
                if self.master:  # not one step done: there is nothing to continue
                    tqdm.write(f"interrupted before the first step was done: nothing was saved in {self.out}")
            else:
                self.save(rng)
                if self.master:
                    tqdm.write(
                        f"interrupted: checkpoint saved at step {self.step} in {self.out}; continue with --resume"
                    )
        finally:
            bar.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        if interrupted:
            raise KeyboardInterrupt
        return {"step": self.step, **last}
