"""Merging BDH models by concatenating neurons (paper §7.1, Table "model_merging", Fig. 15).

The paper clones a base model, fine-tunes the clones on different data, and merges them "by
concatenating every tensor that has an n dimension (D_x, D_y, E and the RoPE frequency buffers)
and averaging all other parameters (token embedding and read-out)", with no further training.
The merged model has n_A + n_B neurons, so per head N' = N_A + N_B and the config's
``mlp_internal_dim_multiplier`` becomes m_A + m_B (N = m d / h).

Tensors in this implementation (``engramlab.bdh.model``) and how they merge:

===================  ===================  ============================================
tensor               shape                merge
===================  ===================  ============================================
``decoder_x`` (D_x)  (H, d, N)            concatenated per head along N
``decoder_y`` (D_y)  (H, d, N)            concatenated per head along N
``encoder_E`` (E)    (H*N, d)             concatenated per head: (H, N, d) along N
``rope_freqs``       (H, N)               concatenated per head along N (phases kept)
``alibi_log_decay``  (H,)                 must be equal in both parents (kept)
``embed.weight``     (V, d)               averaged
``lm_head``          (d, V)               averaged
BDH-GPU' gate/mix    (d, H), (H), (L)     averaged
===================  ===================  ============================================

Concatenating *per head* matters: neuron k of head h is row h*N + k of E, and the merged head
h must hold head h of both parents (a plain concatenation of E's rows would pair A's head 1
with B's head 0 ...). Two checks follow from the equations and are tested: merging a model
with itself gives the same function (every per-head LayerNorm input is doubled, and LayerNorm
is scale-invariant), and merging with a model whose D_x is zero (its neurons never fire) gives
the first model's outputs.

``merge_runs`` writes the merged checkpoint folder atomically (built under a temporary name,
then renamed); ``finetune`` and ``merge_demo`` reproduce the paper's experiment at small scale
(docs/bdh-inspect.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engramlab.bdh.model import BDH, BDHConfig
from engramlab.io import atomic_folder, read_json, save_figure, write_json

# config fields both parents must share (the rest, e.g. dropout or chunk_size, come from A)
MUST_MATCH = ("n_embd", "n_head", "vocab_size", "n_layer", "pos", "variant")
CONCAT_HEAD_LAST = ("decoder_x", "decoder_y", "rope_freqs")  # (..., H, ..., N): concat on the last axis
EQUAL = ("alibi_log_decay",)
AVERAGE = ("embed.weight", "lm_head", "gate_w", "gate_b", "layer_mix")


def check_mergeable(a: BDHConfig, b: BDHConfig) -> None:
    """Both parents must have the same d, heads, vocabulary, depth, position operator and variant."""
    for cfg, name in ((a, "A"), (b, "B")):
        if not isinstance(cfg, BDHConfig):
            raise TypeError(f"model {name} is not a BDH model (config {type(cfg).__name__})")
    bad = [f"{f}: A={getattr(a, f)!r}, B={getattr(b, f)!r}" for f in MUST_MATCH if getattr(a, f) != getattr(b, f)]
    if bad:
        raise ValueError(
            "cannot merge BDH models that differ in "
            + "; ".join(bad)
            + " (merging concatenates neurons, so d, heads, vocabulary, layers, pos and variant must agree)"
        )


def merged_config(a: BDHConfig, b: BDHConfig) -> BDHConfig:
    check_mergeable(a, b)
    return dataclasses.replace(
        a, mlp_internal_dim_multiplier=a.mlp_internal_dim_multiplier + b.mlp_internal_dim_multiplier
    )


def merge_state_dicts(
    a: BDHConfig, sd_a: dict[str, torch.Tensor], b: BDHConfig, sd_b: dict[str, torch.Tensor]
) -> tuple[BDHConfig, dict[str, torch.Tensor]]:
    """Merge two BDH state dicts (see the module docstring) -> (merged config, merged state dict)."""
    cfg = merged_config(a, b)
    if set(sd_a) != set(sd_b):
        raise ValueError(f"the parents hold different tensors: {sorted(set(sd_a) ^ set(sd_b))}")
    H, d = a.n_head, a.n_embd
    Na, Nb = a.n_neurons_per_head, b.n_neurons_per_head
    out: dict[str, torch.Tensor] = {}
    for key in sd_a:
        ta, tb = sd_a[key], sd_b[key]
        if key in CONCAT_HEAD_LAST:
            out[key] = torch.cat([ta, tb], dim=-1)
        elif key == "encoder_E":
            both = torch.cat([ta.reshape(H, Na, d), tb.reshape(H, Nb, d)], dim=1)  # (H, Na + Nb, d)
            out[key] = both.reshape(H * (Na + Nb), d)
        elif key in EQUAL:
            if ta.shape != tb.shape or not torch.equal(ta, tb):
                raise ValueError(f"cannot merge: {key} differs between the parents (ALiBi half-lives must agree)")
            out[key] = ta.clone()
        elif key in AVERAGE:
            if ta.shape != tb.shape:
                raise ValueError(f"cannot merge: {key} has shapes {tuple(ta.shape)} and {tuple(tb.shape)}")
            out[key] = (ta + tb) / 2
        else:
            raise ValueError(
                f"do not know how to merge tensor {key!r} of shape {tuple(ta.shape)}; known: "
                f"{', '.join(CONCAT_HEAD_LAST + ('encoder_E',) + EQUAL + AVERAGE)}"
            )
    return cfg, out


def merge_models(a: BDH, b: BDH) -> BDH:
    """A new BDH whose neurons are A's followed by B's in every head."""
    cfg, sd = merge_state_dicts(a.config, a.state_dict(), b.config, b.state_dict())
    model = BDH(cfg).to(dtype=a.lm_head.dtype)
    model.load_state_dict(sd)
    return model


def merge_runs(run_a: str | Path, run_b: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Merge two BDH checkpoint folders into a new folder ``out`` (config.json + model.safetensors).

    The folder is written under a temporary name beside ``out`` and renamed into place, so a
    crash leaves no half-written checkpoint. The merged folder loads with
    ``engramlab.train.checkpoint.load_checkpoint`` (and so with ``engramlab generate``).
    """
    from engramlab.train.checkpoint import CONFIG, load_checkpoint, save_model_folder

    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"output folder {out} already exists; choose a new path (or pass overwrite=True)")
    for r in (run_a, run_b):
        if not Path(r).is_dir():
            raise FileNotFoundError(f"checkpoint folder not found: {r}")
    ma, name_a, _, step_a = load_checkpoint(run_a)
    mb, name_b, _, step_b = load_checkpoint(run_b)
    for name, r in ((name_a, run_a), (name_b, run_b)):
        if name != "bdh":
            raise ValueError(f"{r} holds a {name!r} model; only BDH models can be merged")
    merged = merge_models(ma, mb)
    with atomic_folder(out) as tmp:
        save_model_folder(tmp, merged, "bdh", train_cfg=None, step=0)
        cfg = read_json(tmp / CONFIG)
        cfg["merged_from"] = [
            {"run": str(Path(run_a).resolve()), "step": step_a, "n_neurons": ma.config.n_neurons},
            {"run": str(Path(run_b).resolve()), "step": step_b, "n_neurons": mb.config.n_neurons},
        ]
        write_json(tmp / CONFIG, cfg)
    return out


# ---------------------------------------------------------------------------------------------
# the paper's experiment, small: fine-tune one base on two corpora, merge, compare losses


@torch.no_grad()
def eval_loss(model: torch.nn.Module, data: np.ndarray, block_size: int = 256, max_bytes: int = 65536) -> float:
    """Mean next-byte cross-entropy (nats/byte) over consecutive windows of the first max_bytes.

    Deterministic (no sampling of windows): every byte in range is predicted once from at most
    block_size bytes of context.
    """
    data = np.asarray(data[: max_bytes + 1], dtype=np.int64)
    if len(data) < 2:
        raise ValueError("need at least 2 bytes to evaluate")
    model.eval()
    total, count = 0.0, 0
    for s in range(0, len(data) - 1, block_size):
        chunk = torch.from_numpy(data[s : s + block_size + 1])
        x, y = chunk[:-1][None], chunk[1:][None]
        logits, _ = model(x)
        total += float(F.cross_entropy(logits[0].float(), y[0], reduction="sum"))
        count += len(y[0])
    return total / count


def finetune(
    base_run: str | Path,
    data: str | Path,
    out: str | Path,
    steps: int,
    lr: float | None = None,
    progress: bool = True,
    overwrite: bool = False,
    **train_overrides: Any,
) -> dict[str, Any]:
    """Continue training the model of ``base_run`` on ``data`` for ``steps`` steps into ``out``.

    The training settings are the base run's, with data, steps and lr replaced (warm-up 10% of
    the steps) and any other TrainConfig field given in ``train_overrides``. A non-empty ``out``
    is replaced only with ``overwrite=True``.
    """
    from engramlab.train.checkpoint import load_checkpoint
    from engramlab.train.config import TrainConfig
    from engramlab.train.engine import Trainer

    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    model, name, base_cfg, _ = load_checkpoint(base_run)
    if name != "bdh":
        raise ValueError(f"{base_run} holds a {name!r} model, not bdh")
    cfg = base_cfg or TrainConfig()
    changes: dict[str, Any] = dict(data=str(data), steps=steps, warmup_steps=max(1, steps // 10), eval_interval=steps)
    if lr is not None:
        changes.update(lr=lr, min_lr=lr / 10)
    changes.update(train_overrides)
    cfg = dataclasses.replace(cfg, **changes)
    return Trainer(model, cfg, out, "bdh", progress=progress).fit(overwrite=overwrite)


def merge_demo(
    base_run: str | Path,
    corpus_a: str | Path,
    corpus_b: str | Path,
    out: str | Path,
    steps: int = 100,
    lr: float | None = None,
    eval_bytes: int = 65536,
    base_corpus: str | None = None,
    progress: bool = True,
    **train_overrides: Any,
) -> dict[str, Any]:
    """Fine-tune ``base_run`` on corpus A and on corpus B, merge the two, and compare all models'
    validation losses on every corpus (the paper's Table "model_merging" at small scale).

    Writes out/tuned_a, out/tuned_b, out/merged (checkpoint folders), out/merge_demo.json and
    out/merge_demo.png. Existing fine-tuned folders with a finished run are reused.
    """
    from engramlab.data.text import load_corpus
    from engramlab.train.checkpoint import load_checkpoint, read_config

    out = Path(out)
    corpora = {"A": load_corpus(str(corpus_a)), "B": load_corpus(str(corpus_b))}
    base_model, _, base_cfg, base_step = load_checkpoint(base_run)
    if base_corpus is None and base_cfg is not None:
        base_corpus = base_cfg.data
    if base_corpus is not None:
        corpora["base"] = load_corpus(base_corpus)
    runs = {"tuned_a": (corpus_a, out / "tuned_a"), "tuned_b": (corpus_b, out / "tuned_b")}
    for data, run in runs.values():
        done = (run / "config.json").exists() and read_config(run).get("step") == steps
        if not done:
            finetune(base_run, data, run, steps, lr=lr, progress=progress, overwrite=True, **train_overrides)
    merge_runs(out / "tuned_a", out / "tuned_b", out / "merged", overwrite=True)
    models = {
        "base": base_model,
        "tuned_a": load_checkpoint(out / "tuned_a")[0],
        "tuned_b": load_checkpoint(out / "tuned_b")[0],
        "merged": load_checkpoint(out / "merged")[0],
    }
    block = base_cfg.block_size if base_cfg is not None else 256
    losses: dict[str, dict[str, float]] = {}
    jobs = [(m, c) for m in models for c in corpora]
    for m, c in tqdm(jobs, desc="evaluate", disable=not progress):
        losses.setdefault(m, {})[c] = eval_loss(models[m], corpora[c].val, block, eval_bytes)
    result = {
        "base_run": str(base_run),
        "base_step": base_step,
        "steps": steps,
        "lr": lr,
        "corpora": {
            k: {"source": v.source, "val_bytes_evaluated": min(len(v.val) - 1, eval_bytes)} for k, v in corpora.items()
        },
        "n_neurons": {m: mod.config.n_neurons for m, mod in models.items()},
        "val_loss_nats_per_byte": losses,
        "block_size": block,
    }
    write_json(out / "merge_demo.json", result)
    _plot_merge(losses, out / "merge_demo.png")
    return result


def stdlib_python_corpus(path: str | Path, max_bytes: int = 1_000_000, stdlib: str | Path | None = None) -> dict:
    """Write a byte corpus of the Python standard library's own ``.py`` files to ``path``.

    Files are taken in sorted path order from ``stdlib`` (default: ``sysconfig``'s stdlib folder of
    the running interpreter), skipping ``site-packages``, test folders and files that are not UTF-8,
    each preceded by a ``# file: <relative path>`` line, until ``max_bytes``; every machine with
    Python has such a corpus offline. Returns {"path", "bytes", "files", "stdlib"}.
    """
    import sysconfig

    from engramlab.io import atomic_write_bytes

    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
        raise ValueError(f"max_bytes must be an integer >= 1024, got {max_bytes!r}")
    root = Path(stdlib if stdlib is not None else sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise FileNotFoundError(f"standard library folder not found: {root}")
    parts, total, files = [], 0, 0
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        if rel.parts[0] in ("site-packages", "dist-packages") or any(p in ("test", "tests") for p in rel.parts):
            continue
        try:
            body = f.read_bytes()
            body.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        chunk = f"# file: {rel.as_posix()}\n".encode() + body + b"\n"
        if total + len(chunk) > max_bytes:
            chunk = chunk[: max_bytes - total]
        parts.append(chunk)
        total += len(chunk)
        files += 1
        if total >= max_bytes:
            break
    if total < 1024:
        raise ValueError(f"{root} holds only {total} bytes of .py files; need at least 1024")
    atomic_write_bytes(Path(path), b"".join(parts))
    return {"path": str(path), "bytes": total, "files": files, "stdlib": str(root)}


def merge_table_markdown(result: dict[str, Any]) -> str:
    """The loss table of ``merge_demo`` as Markdown (rows: models, columns: corpora)."""
    losses = result["val_loss_nats_per_byte"]
    cols = list(next(iter(losses.values())))
    lines = ["| model | n | " + " | ".join(f"val loss on {c}" for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for m, row in losses.items():
        vals = " | ".join(f"{row[c]:.3f}" for c in cols)
        lines.append(f"| {m} | {result['n_neurons'][m]} | {vals} |")
    return "\n".join(lines)


def _plot_merge(losses: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(losses)
    cols = list(losses[models[0]])
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for k, m in enumerate(models):
        xs = np.arange(len(cols)) + (k - (len(models) - 1) / 2) * width
        ax.bar(xs, [losses[m][c] for c in cols], width, label=m)
    ax.set_xticks(np.arange(len(cols)), [f"val {c}" for c in cols])
    ax.set_ylabel("loss (nats/byte)")
    lo = min(min(r.values()) for r in losses.values())
    hi = max(max(r.values()) for r in losses.values())
    ax.set_ylim(max(0.0, lo - 0.1 * (hi - lo) - 0.05), hi + 0.05 * (hi - lo) + 0.01)
    ax.legend(fontsize=8)
    ax.set_title("BDH merging by neuron concatenation (no training after the merge)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


__all__ = [
    "check_mergeable",
    "merged_config",
    "merge_state_dicts",
    "merge_models",
    "merge_runs",
    "eval_loss",
    "finetune",
    "merge_demo",
    "merge_table_markdown",
]
