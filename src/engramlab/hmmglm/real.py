"""Real-data pipeline: bin a recording, pick the number of states by held-out log-likelihood, fit, and
draw the decoded states under the behavioural events and the learned state-constant connectivity.

Long recordings are one sequence for the HMM (exact forward-backward over all bins, by associative
scan) while the GLM parts run over windows of ``window`` bins: no (T, S, N, N) or (T, S, N) tensor of
the whole recording is ever built.
"""

from __future__ import annotations

import resource
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..data.spikes import bin_spikes, load_spikes
from ..io import save_figure, write_json
from .models import FitConfig, make_model


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def select_n_states(
    counts: np.ndarray,
    candidates=(1, 2, 3, 4, 6),
    model: str = "onehot",
    n_blocks: int = 10,
    fit: FitConfig | None = None,
    progress: bool = True,
) -> dict:
    """Held-out log-likelihood per bin per neuron for each state count.

    The recording is cut into ``n_blocks`` contiguous blocks; every 5th block (blocks 4 and 9 of 10) is
    held out, the others are the training trials. Returns {"candidates", "test_ll", "train_ll", "best"}.
    """
    T, N = counts.shape
    edges = np.linspace(0, T, n_blocks + 1).astype(int)
    blocks = [counts[a:b] for a, b in zip(edges[:-1], edges[1:])]
    test_idx = [i for i in range(n_blocks) if i % 5 == 4]
    train = [blocks[i] for i in range(n_blocks) if i not in test_idx]
    test = [blocks[i] for i in test_idx]
    n_test = sum(b.shape[0] for b in test) * N
    res = {
        "candidates": list(candidates),
        "test_ll": [],
        "train_ll": [],
        "fit_s": [],
        "held_out_blocks": test_idx,
        "n_blocks": n_blocks,
    }
    for S in candidates:
        kind = "glm" if S == 1 else model
        m = make_model(kind, S, N, link="sigmoid")
        t0 = time.perf_counter()
        m.fit(train, progress=progress, config=fit or FitConfig(n_epochs=6))
        res["fit_s"].append(round(time.perf_counter() - t0, 1))
        res["train_ll"].append(m.history_[-1] / N)
        res["test_ll"].append(m.log_likelihood(test) / n_test)
    res["best"] = int(res["candidates"][int(np.argmax(res["test_ll"]))])
    return res


def fit_recording(
    path,
    out,
    model: str = "onehot",
    n_states: int | None = 4,
    bin_width: float = 0.05,
    candidates=(1, 2, 3, 4, 6),
    fit: FitConfig | None = None,
    progress: bool = True,
    figures: bool = True,
) -> dict:
    """Fit ``model`` to the recording at ``path`` (binned at ``bin_width`` s) and write results to ``out``.

    ``path`` is a spike file (.mat / .nwb / .npz) or the name of a registered recording
    (``"insula"``: fetched once into the cache, see ``engramlab.data.registry``).

    ``n_states=None`` chooses the state count among ``candidates`` by held-out log-likelihood first.
    Writes out/summary.json, out/model/ (saved model), out/states.png, out/connectivity.png and, with
    selection, out/n_states.png.
    """
    out = Path(out)
    st = load_spikes(path)
    counts, edges = bin_spikes(st, bin_width)
    T, N = counts.shape
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "data": str(path),
        "n_neurons": N,
        "n_bins": T,
        "bin_width_s": bin_width,
        "duration_s": float(edges[-1] - edges[0]),
        "n_spikes": st.n_spikes,
        "mean_count_per_bin": float(counts.mean()),
        "max_count": int(counts.max()),
        "model": model,
    }
    sel = None
    if n_states is None:
        sel = select_n_states(counts, candidates, model, progress=progress)
        summary["state_selection"] = sel
        n_states = sel["best"]
    kind = "glm" if n_states == 1 else model
    m = make_model(kind, n_states, N, link="sigmoid")
    fit = fit or FitConfig()
    t0, c0 = time.perf_counter(), time.process_time()
    m.fit(counts[None], progress=progress, config=fit)
    summary.update(
        n_states=n_states,
        fit_config=asdict(fit),
        fit_s=round(time.perf_counter() - t0, 1),
        fit_cpu_s=round(time.process_time() - c0, 1),
        train_ll_per_bin_neuron=m.history_[-1] / N,
        ll_history_per_bin=m.history_,
        peak_rss_mb=round(_peak_rss_mb(), 1),
    )
    states = m.most_likely_states(counts[None])[0].numpy()
    occ = np.bincount(states, minlength=n_states) / T
    summary["state_occupancy"] = occ.tolist()
    summary["transition_matrix"] = m.transition_matrix.tolist()
    types = m.connection_types().numpy()
    summary["per_state_type_fractions"] = {
        f"state{s}": {
            "inh": float((types[s] == -1).mean()),
            "none": float((types[s] == 0).mean()),
            "exc": float((types[s] == 1).mean()),
        }
        for s in range(n_states)
    }
    prior = m.prior_connection_types()
    if prior is not None:
        p = prior.numpy()
        summary["prior_type_fractions"] = {
            "inh": float((p == -1).mean()),
            "none": float((p == 0).mean()),
            "exc": float((p == 1).mean()),
        }
    m.save(out / "model")
    write_json(out / "summary.json", summary)
    if figures:
        _figures(out, m, states, edges, st.events, sel)
    return summary


def _figures(out: Path, m, states: np.ndarray, edges: np.ndarray, events: dict, sel: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    S = m.n_states
    t = edges[:-1]
    fig, ax = plt.subplots(figsize=(14, 3.2))
    ax.imshow(
        states[None, :],
        aspect="auto",
        cmap="tab10",
        vmin=0,
        vmax=9,
        extent=(t[0], t[-1] + (edges[1] - edges[0]), -0.5, 0.5),
        interpolation="nearest",
    )
    for i, (name, ev) in enumerate(sorted(events.items())):
        y = 0.6 + 0.12 * i
        ax.vlines(ev, y, y + 0.1, color="k", lw=0.6)
        ax.text(t[-1], y + 0.05, f" {name}", fontsize=6, va="center")
    ax.set_ylim(-0.5, 0.7 + 0.12 * len(events))
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    ax.set_title(f"Viterbi states ({S} states, colours) with behavioural event times (ticks above)")
    fig.tight_layout()
    save_figure(fig, out / "states.png")

    prior = m.prior_connection_types()
    W = m.weights.numpy()
    ncol = S + (1 if prior is not None else 0)
    fig, axs = plt.subplots(1, ncol, figsize=(3.2 * ncol, 3.4), squeeze=False)
    v = max(float(np.abs(W).max()), 1e-3)
    for s in range(S):
        axs[0, s].matshow(W[s], cmap="seismic", vmin=-v, vmax=v)
        axs[0, s].set_title(f"state {s} weights")
    if prior is not None:
        axs[0, -1].matshow(prior.numpy(), cmap="seismic", vmin=-1, vmax=1)
        axs[0, -1].set_title("state-constant types argmax a0")
    for ax in axs.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, out / "connectivity.png")

    if sel is not None:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot(sel["candidates"], sel["test_ll"], "o-")
        ax.set_xlabel("number of states")
        ax.set_ylabel("held-out LL / (bin neuron)")
        fig.tight_layout()
        save_figure(fig, out / "n_states.png")
