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


def resolve_device(device):
    """'auto' -> cuda if available else cpu; otherwise torch.device(device), refused with a clear message when
    it names a CUDA device and there is none."""
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    return dev


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def select_n_states(
    counts: np.ndarray,
    candidates=(1, 2, 3, 4, 6),
    model: str = "onehot",
    n_blocks: int = 10,
    fit: FitConfig | None = None,
    progress: bool = True,
    device: str = "cpu",
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
        m = make_model(kind, S, N, link="sigmoid").to(device)
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
    device: str = "cpu",
) -> dict:
    """Fit ``model`` to the recording at ``path`` (binned at ``bin_width`` s) and write results to ``out``.

    ``path`` is a spike file (.mat / .nwb / .npz) or the name of a registered recording
    (``"insula"``: fetched once into the cache, see ``engramlab.data.registry``).

    ``n_states=None`` chooses the state count among ``candidates`` by held-out log-likelihood first.
    Writes out/summary.json, out/model/ (saved model), out/states.png, out/connectivity.png and, with
    selection, out/n_states.png. ``device``: "cpu", "cuda", "cuda:N" or "auto" (a GPU if there is one).
    """
    device = resolve_device(device)
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
        sel = select_n_states(counts, candidates, model, progress=progress, device=device)
        summary["state_selection"] = sel
        n_states = sel["best"]
    kind = "glm" if n_states == 1 else model
    m = make_model(kind, n_states, N, link="sigmoid").to(device)
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
    states = m.most_likely_states(counts[None])[0].cpu().numpy()
    occ = np.bincount(states, minlength=n_states) / T
    summary["state_occupancy"] = occ.tolist()
    summary["transition_matrix"] = m.transition_matrix.cpu().tolist()
    types = m.connection_types().cpu().numpy()
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
        p = prior.cpu().numpy()
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
    W = m.weights.cpu().numpy()
    ncol = S + (1 if prior is not None else 0)
    fig, axs = plt.subplots(1, ncol, figsize=(3.2 * ncol, 3.4), squeeze=False)
    v = max(float(np.abs(W).max()), 1e-3)
    for s in range(S):
        axs[0, s].matshow(W[s], cmap="seismic", vmin=-v, vmax=v)
        axs[0, s].set_title(f"state {s} weights")
    if prior is not None:
        axs[0, -1].matshow(prior.cpu().numpy(), cmap="seismic", vmin=-1, vmax=1)
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


# ---------------------------------------------------------------------------------------- four-model study
def held_out_blocks(counts: np.ndarray, n_blocks: int = 10) -> tuple[list, list, list[int]]:
    """(train blocks, test blocks, test block indices): every 5th of ``n_blocks`` contiguous blocks held out."""
    T = counts.shape[0]
    edges = np.linspace(0, T, n_blocks + 1).astype(int)
    blocks = [counts[a:b] for a, b in zip(edges[:-1], edges[1:])]
    test_idx = [i for i in range(n_blocks) if i % 5 == 4]
    return [blocks[i] for i in range(n_blocks) if i not in test_idx], [blocks[i] for i in test_idx], test_idx


def event_indicators(events: dict, edges: np.ndarray) -> dict[str, np.ndarray]:
    """Per event channel, a (T,) 0/1 array: 1 in the bins that hold at least one event of that channel."""
    T = len(edges) - 1
    out = {}
    for name, ev in sorted(events.items()):
        idx = np.searchsorted(edges, np.asarray(ev, dtype=np.float64), side="right") - 1
        ind = np.zeros(T, dtype=np.int64)
        ind[idx[(idx >= 0) & (idx < T)]] = 1
        out[name] = ind
    return out


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """MI (bits) between two discrete label sequences of equal length (plug-in estimate)."""
    a, b = np.asarray(a), np.asarray(b)
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    joint = np.zeros((ka, kb))
    np.add.at(joint, (a, b), 1)
    p = joint / joint.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log2(p[nz] / (pa @ pb)[nz])).sum())


def state_event_mi(states: np.ndarray, indicators: dict, n_shifts: int = 20, seed: int = 0) -> dict:
    """MI of the decoded states with each event channel, against circularly shifted state sequences.

    The shifts are drawn uniformly between 10% and 90% of the recording (they keep the states' own
    dwell-time structure and break only their alignment with the events). Per channel: MI (bits), the
    shifted baseline's mean and 95th percentile, and the cross-tabulation states x (event, no event)."""
    rng = np.random.default_rng(seed)
    T = len(states)
    shifts = rng.integers(int(0.1 * T), int(0.9 * T), size=n_shifts)
    out = {}
    for name, ind in indicators.items():
        mi = mutual_information(states, ind)
        base = np.array([mutual_information(np.roll(states, int(k)), ind) for k in shifts])
        S = int(states.max()) + 1
        tab = np.zeros((S, 2), dtype=np.int64)
        np.add.at(tab, (states, ind), 1)
        out[name] = {
            "mi_bits": mi,
            "shifted_mean_bits": float(base.mean()),
            "shifted_p95_bits": float(np.quantile(base, 0.95)),
            "above_shifted_p95": bool(mi > np.quantile(base, 0.95)),
            "n_events_bins": int(ind.sum()),
            "crosstab_state_by_event": tab.tolist(),
        }
    return out


def insula_study(
    path,
    out,
    state_counts=(2, 3, 4, 6),
    seeds=(0, 1, 2),
    bin_width: float = 0.1,
    n_neurons: int | None = 32,
    fit: FitConfig | None = None,
    onehot_epochs: int = 10,
    progress: bool = False,
    time_range: tuple[float, float] | None = None,
) -> dict:
    """All four models on the same held-out blocks of a recording, for each state count and seed.

    The recording is binned at ``bin_width`` s; with ``n_neurons`` only that many most active neurons are
    kept (the budget; None = all); with ``time_range`` = (start, stop) seconds only that contiguous portion
    of the recording is used (bins of the whole recording's binning that lie inside it; the neuron ranking
    is over the portion). Blocks 4 and 9 of 10 (of the portion) are held out. Per seed: the GLM (S = 1), and for
    each S the plain HMM-GLM and the Gaussian HMM-GLM with the default (data-driven) fit ``fit``, the
    one-hot model warm-started from that seed's plain fit (what its default fit does; the plain fit is
    shared, not repeated) and annealed for ``onehot_epochs`` epochs. Held-out log-likelihood per bin and
    neuron; the Viterbi states of the whole recording against the event channels (:func:`state_event_mi`).
    Writes out/insula.json after every fit (a partial run keeps what it did).
    """
    from .models import OneHotHMMGLM

    out = Path(out)
    st = load_spikes(path)
    counts, edges = bin_spikes(st, bin_width)
    if time_range is not None:
        a, b = (float(v) for v in time_range)
        sel = (edges[:-1] >= a) & (edges[1:] <= b)
        if not b > a or sel.sum() < 100:
            raise ValueError(
                f"time_range {time_range!r} must be (start, stop) seconds with stop > start holding at least 100 "
                f"bins of {bin_width} s inside the recording [{edges[0]:.1f}, {edges[-1]:.1f}] s"
            )
        idx = np.nonzero(sel)[0]
        counts, edges = counts[idx[0] : idx[-1] + 1], edges[idx[0] : idx[-1] + 2]
    rank = np.argsort(-counts.sum(0), kind="stable")
    keep = np.sort(rank[:n_neurons]) if n_neurons else np.arange(counts.shape[1])
    counts = counts[:, keep]
    T, N = counts.shape
    train, test, test_idx = held_out_blocks(counts)
    n_test = sum(b.shape[0] for b in test) * N
    n_train = sum(b.shape[0] for b in train) * N
    ind = event_indicators(st.events, edges)
    fit = fit or FitConfig()
    res = {
        "data": Path(str(path)).name,
        "bin_width_s": bin_width,
        "n_bins": T,
        "time_range_s": [float(edges[0]), float(edges[-1])],
        "n_neurons_recording": st.n_neurons,
        "n_neurons": N,
        "neurons_kept": keep.tolist(),
        "held_out_blocks": test_idx,
        "n_blocks": 10,
        "fit_config": asdict(fit),
        "onehot_epochs": onehot_epochs,
        "seeds": list(seeds),
        "state_counts": list(state_counts),
        "event_channels": list(ind),
        "fits": [],
    }

    def record(kind, S, seed, m, t0):
        states = m.most_likely_states(counts[None])[0].numpy()
        row = {
            "model": kind,
            "n_states": S,
            "seed": seed,
            "fit_s": round(time.perf_counter() - t0, 1),
            "epochs": m.n_epochs_,
            "train_ll_per_bin_neuron": m.log_likelihood(train) / n_train,
            "test_ll_per_bin_neuron": m.log_likelihood(test) / n_test,
            "occupancy": (np.bincount(states, minlength=S) / T).tolist(),
        }
        if S > 1:
            row["events"] = state_event_mi(states, ind, seed=seed)
        res["fits"].append(row)
        write_json(out / "insula.json", res)

    for seed in seeds:
        cfg = FitConfig(**{**asdict(fit), "seed": seed})
        t0 = time.perf_counter()
        record("glm", 1, seed, make_model("glm", 1, N).fit(train, progress=progress, config=cfg), t0)
        for S in state_counts:
            t0 = time.perf_counter()
            plain = make_model("hmmglm", S, N).fit(train, progress=progress, config=cfg)
            record("hmmglm", S, seed, plain, t0)
            t0 = time.perf_counter()
            record("gaussian", S, seed, make_model("gaussian", S, N).fit(train, progress=progress, config=cfg), t0)
            t0 = time.perf_counter()
            oh = OneHotHMMGLM(S, N).warm_start_(plain)
            oh._tau_start = fit.onehot_warm_tau
            oh.fit(train, progress=progress, config=cfg, init="keep", n_epochs=onehot_epochs, init_bias=False)
            record("onehot", S, seed, oh, t0)
    res["table"] = insula_table(res)
    write_json(out / "insula.json", res)
    return res


def insula_table(res: dict) -> list[dict]:
    """Per (model, S): held-out LL mean/min/max over seeds, and the events with MI above the shifted p95."""
    rows = []
    keys = sorted({(f["model"], f["n_states"]) for f in res["fits"]}, key=lambda k: (k[1], k[0]))
    for kind, S in keys:
        fs = [f for f in res["fits"] if f["model"] == kind and f["n_states"] == S]
        ll = [f["test_ll_per_bin_neuron"] for f in fs]
        row = {
            "model": kind,
            "n_states": S,
            "n_seeds": len(fs),
            "test_ll_mean": float(np.mean(ll)),
            "test_ll_min": float(np.min(ll)),
            "test_ll_max": float(np.max(ll)),
            "fit_s_mean": float(np.mean([f["fit_s"] for f in fs])),
        }
        if S > 1:
            row["events_above_shifted_p95_mean"] = float(
                np.mean([sum(e["above_shifted_p95"] for e in f["events"].values()) for f in fs])
            )
            row["mi_minus_shifted_mean_bits"] = float(
                np.mean([np.mean([e["mi_bits"] - e["shifted_mean_bits"] for e in f["events"].values()]) for f in fs])
            )
        rows.append(row)
    return rows
