"""The paper's synthetic study: fit GLM, HMM-GLM, Gaussian HMM-GLM and one-hot HMM-GLM to the demo
protocol (simulate.py) and score them against the planted truth.

``engramlab hmmglm benchmark --out DIR`` writes DIR/results.json, DIR/results.md (the table),
DIR/weights.png (true vs learned weight matrices per state) and DIR/states.png (state rasters).
The four fits run in ``workers`` processes of one thread each (default 2: one per core).
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from engramlab.io import atomic_write_text, save_figure, write_json

from . import metrics
from .models import MODELS, FitConfig, make_model
from .simulate import simulate_demo

NAMES = {"glm": "GLM", "hmmglm": "HMM-GLM", "gaussian": "Gaussian HMM-GLM", "onehot": "One-hot HMM-GLM"}


def _fit_worker(kind: str, n_states: int, train: torch.Tensor, fit: dict, threads: int) -> dict:
    torch.set_num_threads(threads)
    S = 1 if kind == "glm" else n_states
    model = make_model(kind, S, train.shape[-1])
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(train, progress=False, config=FitConfig(**fit))
    return {
        "kind": kind,
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "fit_s": time.perf_counter() - wall,
        "fit_cpu_s": time.process_time() - cpu,
        "history": model.history_,
    }


def run_benchmark(
    out: str | Path | None = None,
    seed: int = 0,
    workers: int = 2,
    threads: int = 1,
    fit: FitConfig | None = None,
    models: tuple[str, ...] = MODELS,
    n_trials: int = 50,
    n_train: int = 30,
    n_time_bins: int = 2000,
    figures: bool = True,
) -> dict:
    """Simulate the demo data, fit ``models``, return (and write to ``out``) the metrics."""
    fit = fit or FitConfig()
    t0 = time.perf_counter()
    data = simulate_demo(n_time_bins=n_time_bins, n_trials=n_trials, n_train=n_train, seed=seed)
    sim_s = time.perf_counter() - t0
    S, N = data.weights.shape[0], data.weights.shape[1]
    train, test = data.train, data.test
    n_test = test.shape[0] * test.shape[1] * N

    t0 = time.perf_counter()
    order = sorted(models, key=lambda k: ["onehot", "gaussian", "hmmglm", "glm"].index(k))
    if workers > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(_fit_worker, k, S, train, asdict(fit), threads) for k in order]
            fitted = [f.result() for f in futs]
    else:
        fitted = [_fit_worker(k, S, train, asdict(fit), threads) for k in order]
    total_fit_wall = time.perf_counter() - t0

    true_ll = data.model.log_likelihood(test) / n_test
    rows, learned = {}, {}
    true_types = data.types
    for r in fitted:
        kind = r["kind"]
        m = make_model(kind, 1 if kind == "glm" else S, N)
        m.load_state_dict(r["state"])
        row = {
            "model": NAMES[kind],
            "fit_s": round(r["fit_s"], 2),
            "fit_cpu_s": round(r["fit_cpu_s"], 2),
            "test_ll_per_bin_neuron": m.log_likelihood(test) / n_test,
        }
        if kind != "glm":
            vit = m.most_likely_states(test)
            perm = metrics.match_states(data.states[data.n_train :], vit, S)
            m.permute(perm)
            vit = m.most_likely_states(test)
            row["state_accuracy"] = metrics.state_accuracy(data.states[data.n_train :], vit, np.arange(S))
            W = m.weights
        else:
            row["state_accuracy"] = None
            W = m.weights.expand(S, N, N)  # one matrix compared with every state's
        row["weight_mse"] = metrics.weight_error(data.weights, W)
        types = m.connection_types() if kind != "glm" else m.connection_types().expand(S, N, N)
        row["type_accuracy"] = metrics.type_accuracy(true_types, types)
        row["type_balanced_accuracy"] = metrics.balanced_type_accuracy(true_types, types)
        thr = (torch.sign(W) * (W.abs() > 0.2)).long()
        row["type_accuracy_thresholded_0.2"] = metrics.type_accuracy(true_types, thr)
        pt = m.prior_connection_types()
        row["prior_type_accuracy"] = None if pt is None else metrics.type_accuracy(data.prior_types, pt)
        row["types_rule"] = (
            "hard argmax of the one-hot types" if kind == "onehot" else "sign(w) where |w| > 0.2 (model has no types)"
        )
        rows[kind] = row
        learned[kind] = (m, W)
    result = {
        "protocol": {
            "n_states": S,
            "n_neurons": N,
            "n_time_bins": n_time_bins,
            "n_trials": n_trials,
            "n_train": n_train,
            "seed": seed,
            "simulate_s": round(sim_s, 2),
        },
        "fit_config": asdict(fit),
        "workers": workers,
        "threads_per_worker": threads,
        "total_fit_wall_s": round(total_fit_wall, 2),
        "sum_fit_cpu_s": round(sum(r["fit_cpu_s"] for r in rows.values()), 2),
        "true_model_test_ll_per_bin_neuron": true_ll,
        "majority_type_accuracy": metrics.type_accuracy(true_types, torch.zeros_like(true_types)),
        "models": rows,
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "results.json", result)
        atomic_write_text(out / "results.md", _table(result))
        if figures:
            _figures(out, data, learned)
    return result


def _fmt(v) -> str:
    return "—" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def _table(res: dict) -> str:
    cols = [
        "test_ll_per_bin_neuron",
        "state_accuracy",
        "weight_mse",
        "type_accuracy",
        "type_accuracy_thresholded_0.2",
        "prior_type_accuracy",
        "fit_s",
        "fit_cpu_s",
    ]
    lines = ["| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    true_ll = res["true_model_test_ll_per_bin_neuron"]
    lines.append(f"| true generator | {true_ll:.4f} |" + " |" * (len(cols) - 1))
    for r in res["models"].values():
        lines.append(f"| {r['model']} | " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    lines.append(
        f"\nall four fits: {res['total_fit_wall_s']} s wall ({res['workers']} processes), "
        f"{res['sum_fit_cpu_s']} s CPU in total\n"
    )
    return "\n".join(lines)


def _figures(out: Path, data, learned: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    S = data.weights.shape[0]
    kinds = [k for k in MODELS if k in learned]
    fig, axs = plt.subplots(len(kinds) + 1, S, figsize=(2.2 * S, 2.2 * (len(kinds) + 1)), squeeze=False)
    for s in range(S):
        axs[0, s].matshow(data.weights[s], cmap="seismic", vmin=-1.5, vmax=1.5)
        axs[0, s].set_title(f"state {s}")
        for i, k in enumerate(kinds):
            axs[i + 1, s].matshow(learned[k][1][s], cmap="seismic", vmin=-1.5, vmax=1.5)
    axs[0, 0].set_ylabel("true")
    for i, k in enumerate(kinds):
        axs[i + 1, 0].set_ylabel(NAMES[k])
    for ax in axs.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("weights W[s] (post x pre): truth vs learned (states matched by Hungarian)")
    fig.tight_layout()
    save_figure(fig, out / "weights.png")

    test = data.test[:1]
    rows = [("true", data.states[data.n_train])]
    for k in kinds:
        if k != "glm":
            rows.append((NAMES[k], learned[k][0].most_likely_states(test)[0]))
    fig, axs = plt.subplots(len(rows), 1, figsize=(12, 0.6 * len(rows) + 0.8), sharex=True, squeeze=False)
    for ax, (name, st) in zip(axs[:, 0], rows):
        ax.matshow(np.asarray(st)[None, :], aspect="auto", cmap="tab10", vmin=0, vmax=9)
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.tick_params(top=False, labeltop=False)
    axs[-1, 0].set_xlabel("time bin (test trial 0, Viterbi)")
    fig.tight_layout()
    save_figure(fig, out / "states.png")
