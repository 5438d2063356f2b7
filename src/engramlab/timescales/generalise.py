"""Generalisation by retraining (Khajehabdollahi, Zeraati et al., ICLR 2024; official
``analysis/perturbation_retraining/plot_ablation_retraining.py``).

The paper takes networks trained up to N = 16 by each curriculum and retrains each of them as a
single-head network on N = 16 .. 46 for 20 epochs, comparing how well (and how fast) each starting
point learns the new N. Here:

* the starting N ``n0`` is the largest N that every compared run solved (so the networks are compared
  at the same point of their curricula), unless given;
* for every N = n0 + d (d in ``extra_ns``) a copy of the network saved when ``n0`` was solved is
  retrained as a single-head network: its recurrent part, tau and input weights as they are, and as
  its one head the head that read ``n0`` (head 0 for single-head, head n0 - n_min for multi-head);
* it trains for ``epochs`` epochs of ``steps_per_epoch`` steps with the optimiser of its own training
  (SGD 0.05 / momentum 0.1 / Nesterov for the leaky RNN, Adam for GRU / LSTM), grad-norm clip as in
  training, accuracy after every epoch on ``test_batches`` fresh batches;
* epochs-to-criterion = the first epoch whose accuracy is above ``threshold`` (None: not within the
  budget); the final accuracy is also reported relative to chance, (acc - 50) / (acc(n0) - 50) with
  acc(n0) the starting network's accuracy on n0, as the paper normalises it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from engramlab.data.tasks import make_timescale_batch
from engramlab.io import write_json

from .curriculum import TrainConfig, evaluate, list_checkpoints, load_checkpoint
from .model import Heads


@dataclass
class GeneraliseConfig:
    extra_ns: list[int] = field(default_factory=lambda: [1, 3, 5, 7])  # retrain on N = n0 + d
    epochs: int = 10
    steps_per_epoch: int = 50
    batch_size: int = 128
    test_batches: int = 4
    threshold: float = 98.0  # percent
    n0: int | None = None  # None: the largest N every run solved
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "steps_per_epoch", "batch_size", "test_batches"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not self.extra_ns or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in self.extra_ns):
            raise ValueError(f"extra_ns must be a non-empty list of positive ints (N beyond n0), got {self.extra_ns!r}")
        if not 0 < self.threshold <= 100:
            raise ValueError(f"threshold is a percentage in (0, 100], got {self.threshold}")
        if self.n0 is not None and (isinstance(self.n0, bool) or not isinstance(self.n0, int) or self.n0 < 2):
            raise ValueError(f"n0 must be an int >= 2 or None, got {self.n0!r}")


def single_head_copy(model: nn.Module, head: int) -> nn.Module:
    """A copy of ``model`` (LeakyRNN or GatedRNN) with one readout head: a copy of its head ``head``."""
    n = model.heads.n_heads
    if not 0 <= head < n:
        raise ValueError(f"head {head} out of range: the model has {n} heads")
    m = copy.deepcopy(model)
    old = model.heads
    new = Heads(1, old.weight.shape[2], old.weight.shape[1])
    with torch.no_grad():
        new.weight.copy_(old.weight[head : head + 1])
        new.bias.copy_(old.bias[head : head + 1])
    m.heads = new
    m.config = dataclasses.replace(model.config, n_heads=1)
    return m


def retrain(model: nn.Module, task: str, n: int, train_config: TrainConfig, cfg: GeneraliseConfig, seed: int) -> dict:
    """Retrain a single-head ``model`` on N = ``n`` in place; per-epoch accuracy and epochs-to-criterion."""
    if model.heads.n_heads != 1:
        raise ValueError(f"retrain needs a single-head model (single_head_copy), got {model.heads.n_heads} heads")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    if train_config.resolved_optimizer == "sgd":
        opt = torch.optim.SGD(
            params, lr=train_config.resolved_lr, momentum=train_config.momentum, nesterov=train_config.nesterov
        )
    else:
        opt = torch.optim.Adam(params, lr=train_config.resolved_lr)
    head = torch.tensor([0])
    acc0 = evaluate(model.eval(), task, [n], [0], cfg.test_batches, cfg.batch_size, gen)[0]
    accs, first = [], None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for _ in range(cfg.steps_per_epoch):
            x, y = make_timescale_batch(task, [n], cfg.batch_size, gen)
            logits = model(x, heads=head)  # (1, B, 2)
            loss = F.cross_entropy(logits[0], y[0])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, train_config.clip)
            opt.step()
        model.eval()
        acc = evaluate(model, task, [n], [0], cfg.test_batches, cfg.batch_size, gen)[0]
        accs.append(acc)
        if first is None and acc > cfg.threshold:
            first = epoch
    return {"n": n, "accuracy_before": acc0, "accuracy": accs, "epochs_to_criterion": first}


def censored_epochs(rec: dict, epochs: int) -> int:
    """Epochs to criterion, with a network that did not reach it counted as ``epochs + 1``."""
    return rec["epochs_to_criterion"] if rec["epochs_to_criterion"] is not None else epochs + 1


def generalise_runs(
    runs: dict[str, str | Path], cfg: GeneraliseConfig, out: str | Path | None = None, progress: bool = True
) -> dict:
    """Retrain every run's network at ``n0`` on the N beyond it; returns (and writes to ``out``) the results.

    ``runs``: label -> run directory (``train_curriculum`` output). Result: {"n0", "config", "runs": {label:
    {"n_reached", "base_accuracy", "retrain": [retrain() records], "mean_epochs" (censored),
    "mean_relative_final"}}}, or {"n0": None, "note"} when some run solved no N.
    """
    ckpts = {}
    for label, d in runs.items():
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"run directory {d} does not exist")
        ckpts[label] = {c[1]: c[2] for c in list_checkpoints(d)}
    common = set.intersection(*[set(v) for v in ckpts.values()]) if ckpts else set()
    res: dict = {"config": asdict(cfg), "runs": {}}
    n0 = cfg.n0 if cfg.n0 is not None else (max(common) if common else None)
    if n0 is None or n0 not in common:
        res.update({"n0": None, "note": f"no N solved by every run (common: {sorted(common)})"})
        if out is not None:
            write_json(out, res)
        return res
    res["n0"] = n0
    for label, by_n in ckpts.items():
        model, meta = load_checkpoint(by_n[n0])
        tc = TrainConfig.from_dict(meta["train_config"])
        head = meta["heads"][meta["ns"].index(n0)]
        g = torch.Generator().manual_seed(cfg.seed)
        base = evaluate(single_head_copy(model, head), tc.task, [n0], [0], cfg.test_batches, cfg.batch_size, g)[0]
        recs = []
        for d in tqdm(cfg.extra_ns, desc=f"retrain {label} from N={n0}", disable=not progress):
            m = single_head_copy(model, head)
            recs.append(retrain(m, tc.task, n0 + d, tc, cfg, seed=cfg.seed * 1000 + d))
        rel = [(r["accuracy"][-1] - 50.0) / (base - 50.0) if base != 50.0 else math.nan for r in recs]
        res["runs"][label] = {
            "n_reached": max(by_n),
            "base_accuracy": base,
            "retrain": recs,
            "mean_epochs": sum(censored_epochs(r, cfg.epochs) for r in recs) / len(recs),
            "n_solved": sum(r["epochs_to_criterion"] is not None for r in recs),
            "mean_relative_final": sum(rel) / len(rel),
            "relative_final": rel,
        }
    if out is not None:
        write_json(out, res)
    return res
