"""Timescale analyses of trained leaky RNNs (Khajehabdollahi, Zeraati et al., ICLR 2024, Sec. 3-4;
official ``analysis/``).

* single-neuron timescale: tau_hat = max(tau, 1) per neuron, its mean and spread per N;
* network-mediated timescale tau_net per neuron: the autocorrelation (AC) of its activity on a long
  random input (Bernoulli(p), p ~ U(0, 1) per trial), fitted on lags 0..30 with one exponential
  A exp(-t/tau) and with two, A [c exp(-t/tau1) + (1 - c) exp(-t/tau2)]; the fit with the lower
  AIC = 2k + n ln(RSS/n) is chosen and tau_net is its (slowest) timescale;
* dimensionality: number of principal components for 90% of the activity variance;
* ablation: silence one neuron (its W^R row and column, input weight and readout column for the
  tested head: the official code zeroes head 0's readout for multi-head networks, fixed here) among
  the 20 with the shortest / longest tau, relative streaming accuracy (acc - 0.5)/(base - 0.5);
* perturbation: W^R <- W^R + eps ||W^R||_F D/||D||_F, tau <- tau + eps ||tau|| |D|/|| |D| ||;
* forgetting / generalisation: accuracy of a network's heads on N it was trained on earlier or never,
  and of a fresh linear readout (probe) fitted on the frozen network's final state.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import OptimizeWarning, curve_fit
from tqdm.auto import tqdm

from engramlab.data.tasks import labels_in_time, make_timescale_batch, sample_sequence_length
from engramlab.io import save_figure, write_json

from .curriculum import evaluate, list_checkpoints, load_checkpoint
from .model import LeakyRNN, _act


# ----------------------------------------------------------------------------- simulation
@torch.no_grad()
def simulate(model: LeakyRNN, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """Activity r(1..T) for inputs x (B, T, 1): returns (T, B, H) float32, without autograd buffers."""
    if not isinstance(model, LeakyRNN):
        raise TypeError(f"simulate needs a LeakyRNN, got {type(model).__name__}")
    c = model.config
    u = model.input_drive(x.to(model.recurrent.weight.dtype))  # (T, B, H)
    w_t = model.w_rec().t()
    s = 1.0 / model.tau_hat
    a = 1 - s
    h = model.init_state(x.shape[0]) if h0 is None else h0
    out = torch.empty_like(u)
    for t in range(u.shape[0]):
        z = torch.addmm(u[t], h, w_t)
        if c.variant == "default":
            h = _act(a * h + s * z, c.activation)
        else:
            h = a * h + s * _act(z, c.activation)
        out[t] = h
    return out


def random_input(
    trials: int, steps: int, generator: torch.Generator | None = None, p: float | None = None
) -> torch.Tensor:
    """Bernoulli(p) bits (trials, steps, 1); p ~ U(0, 1) per trial when p is None (parity-style)."""
    if p is None:
        pp = torch.rand(trials, 1, generator=generator)
    else:
        pp = torch.full((trials, 1), float(p))
    return (torch.rand(trials, steps, generator=generator) < pp).float().unsqueeze(-1)


# ----------------------------------------------------------------------------- autocorrelation / fits
def autocorrelation(x: np.ndarray, max_lag: int = 200, chunk: int = 32) -> np.ndarray:
    """Trial-averaged autocorrelation by FFT, mean-subtracted, zero-padded, unbiased (divided by n - lag).

    x (trials, T) or (trials, T, H) -> AC (max_lag + 1,) or (max_lag + 1, H), not normalised by AC(0).
    """
    x = np.asarray(x)
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be (trials, T) or (trials, T, H), got shape {x.shape}")
    n = x.shape[1]
    if max_lag >= n:
        raise ValueError(f"max_lag={max_lag} must be < the number of time steps {n}")
    if x.ndim == 3 and x.shape[2] > chunk:  # bounded memory: a few neurons at a time
        parts = [autocorrelation(x[:, :, i : i + chunk], max_lag, chunk) for i in range(0, x.shape[2], chunk)]
        return np.concatenate(parts, axis=1)
    x = x.astype(np.float64)
    xp = x - x.mean(axis=1, keepdims=True)
    nfft = 1 << int(math.ceil(math.log2(2 * n)))
    f = np.fft.rfft(xp, n=nfft, axis=1)
    ac = np.fft.irfft(np.abs(f) ** 2, n=nfft, axis=1)[:, : max_lag + 1]
    norm = (n - np.arange(max_lag + 1)).astype(np.float64)
    ac = ac / (norm[:, None] if x.ndim == 3 else norm)
    return ac.mean(axis=0)


def single_exp(t, a, tau):
    return a * np.exp(-t / tau)


def double_exp(t, a, tau1, tau2, c):
    return a * (c * np.exp(-t / tau1) + (1 - c) * np.exp(-t / tau2))


@dataclass
class TimescaleFit:
    tau: float  # selected timescale (slowest of the chosen model); nan if both fits failed
    model: int  # 1 or 2 (0: failed)
    aic: tuple[float, float]
    params1: list[float] = field(default_factory=list)
    params2: list[float] = field(default_factory=list)


def fit_timescale(ac: np.ndarray, max_lag: int = 30) -> TimescaleFit:
    """Fit AC/AC(0) on lags 0..max_lag with one and two exponentials; choose by AIC (official model_comp).

    Bounds as in the official code: A in [0, 1], tau in [0, 100], c in [0, 1]; maxfev 2000. The double
    exponential is fitted from two starts and the better fit kept: the official one (scipy's default for a
    bounded fit, the middle of the bounds: tau1 = tau2 = 50 and c = 0.5, a symmetric point that the solver
    leaves only through rounding, so whether it separates two timescales depends on the numpy/scipy
    build) and all ones (c = 1 breaks the symmetry). The kept fit is never worse than the official one.
    """
    ac = np.asarray(ac, dtype=np.float64)
    if ac.ndim != 1 or ac.shape[0] <= max_lag:
        raise ValueError(f"ac must be 1-D with more than max_lag={max_lag} lags, got shape {ac.shape}")
    t = np.arange(max_lag + 1, dtype=np.float64)
    if not np.isfinite(ac[0]) or ac[0] <= 0:
        return TimescaleFit(float("nan"), 0, (1e5, 1e5))
    y = ac[: max_lag + 1] / ac[0]
    n = len(t)
    aic1 = aic2 = 1e5
    p1 = p2 = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            p1, _ = curve_fit(single_exp, t, y, maxfev=2000, bounds=((0, 0), (1.0, 100)))
            rss = float(((single_exp(t, *p1) - y) ** 2).sum())
            aic1 = 2 * 2 + n * math.log(rss / n) if rss > 0 else -math.inf
        except (RuntimeError, ValueError):
            pass
        for p0 in (None, np.ones(4)):  # the official start, then one that separates the two timescales
            try:
                p, _ = curve_fit(double_exp, t, y, p0=p0, maxfev=2000, bounds=((0, 0, 0, 0), (1.0, 100, 100, 1.0)))
            except (RuntimeError, ValueError):
                continue
            rss = float(((double_exp(t, *p) - y) ** 2).sum())
            aic = 2 * 4 + n * math.log(rss / n) if rss > 0 else -math.inf
            if p2 is None or aic < aic2:
                p2, aic2 = p, aic
    fit = TimescaleFit(
        float("nan"), 0, (aic1, aic2), [] if p1 is None else p1.tolist(), [] if p2 is None else p2.tolist()
    )
    if p1 is not None and aic1 < aic2:
        fit.tau, fit.model = float(p1[1]), 1
    elif p2 is not None and aic2 < aic1:
        fit.tau, fit.model = float(max(p2[1], p2[2])), 2
    return fit


def network_timescales(
    model: LeakyRNN,
    steps: int = 20000,
    trials: int = 10,
    burn_in: int = 500,
    max_lag: int = 200,
    fit_lag: int = 30,
    seed: int = 0,
    fit_neurons: int | None = None,
    pca_trials: int | None = None,
) -> dict:
    """tau_net per neuron, population tau_net and PCA dimensionality on random input (paper Sec. 3).

    ``fit_neurons``: fit tau_net for this many randomly chosen neurons only (None: all, as the paper);
    ``pca_trials``: PCA on this many trials only (None: all). Both only bound the CPU time.
    """
    g = torch.Generator().manual_seed(seed)
    x = random_input(trials, steps + burn_in, g)
    torch.manual_seed(seed)
    act = simulate(model, x)[burn_in:].permute(1, 0, 2).numpy()  # (trials, T, H)
    H = act.shape[2]
    idx = np.arange(H)
    if fit_neurons is not None and fit_neurons < H:
        idx = np.sort(torch.randperm(H, generator=g)[:fit_neurons].numpy())
    ac = autocorrelation(act[:, :, idx], max_lag)  # (L, len(idx))
    fits = [fit_timescale(ac[:, i], fit_lag) for i in range(ac.shape[1])]
    taus_net = np.array([f.tau for f in fits])
    tau_single = np.array([f.params1[1] if f.params1 else np.nan for f in fits])  # 1-exp fit only
    pop = fit_timescale(autocorrelation(act.sum(-1), max_lag), fit_lag).tau
    return {
        "tau_net": taus_net,
        "tau_net_single_exp": tau_single,
        "tau_net_population": pop,
        "neurons": idx.tolist(),
        "dimensionality": pca_dimensionality(act[:pca_trials]),
    }


def bootstrap_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0, stat=np.mean) -> list[float]:
    """Percentile bootstrap confidence interval of ``stat`` over the entries of ``values`` (e.g. neurons),
    by ``scipy.stats.bootstrap(method="percentile")``.

    Returns [lo, hi]; [nan, nan] for an empty input, [v, v] for a single value.
    """
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=np.float64).ravel()
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if v.size == 0:
        return [float("nan"), float("nan")]
    if v.size == 1 or np.all(v == v[0]):  # no spread to resample
        return [float(stat(v)), float(stat(v))]
    res = bootstrap(
        (v,),
        stat,
        n_resamples=n_boot,
        confidence_level=level,
        method="percentile",
        vectorized=True,
        axis=-1,
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return [float(ci.low), float(ci.high)]


def pca_dimensionality(act: np.ndarray, frac: float = 0.9) -> float:
    """Mean over trials of the number of PCs explaining ``frac`` of the variance. act (trials, T, H)."""
    dims = []
    for a in act:
        a = a - a.mean(0)
        ev = np.clip(np.linalg.eigvalsh(a.T @ a)[::-1], 0, None)
        tot = ev.sum()
        dims.append(float(np.searchsorted(np.cumsum(ev) / tot, frac) + 1) if tot > 0 else 0.0)
    return float(np.mean(dims))


# ----------------------------------------------------------------------------- streaming accuracy
@torch.no_grad()
def streaming_accuracy(
    model: LeakyRNN,
    task: str,
    n: int,
    head: int,
    trials: int = 10,
    length: int = 1000,
    warmup: int = 100,
    seed: int = 0,
) -> float:
    """Accuracy of ``head`` read out at every step of Bernoulli(0.5) streams (official classify_in_time):
    ``warmup`` unscored steps then ``length`` scored ones, ``trials`` streams."""
    warmup = max(warmup, n - 1)  # the first scored window must fit in the stream
    g = torch.Generator().manual_seed(seed)
    x = random_input(trials, warmup + length, g, p=0.5)  # (B, T, 1)
    torch.manual_seed(seed)
    hs = simulate(model, x)  # (T, B, H)
    logits = model.heads(hs[warmup:].transpose(0, 1), torch.tensor([head]))[0]  # (B, length, 2)
    labels = labels_in_time(task, x[..., 0], n)[:, warmup - n + 1 :]  # windows ending at t >= warmup
    return float((logits.argmax(-1) == labels).float().mean())


def relative(acc: float | np.ndarray, base: float):
    return (np.asarray(acc) - 0.5) / (base - 0.5) if base != 0.5 else np.full_like(np.asarray(acc), np.nan)


def ablate(model: LeakyRNN, neuron: int, head: int) -> LeakyRNN:
    """Copy of ``model`` with ``neuron`` silenced towards the network and the tested head."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.recurrent.weight[neuron, :] = 0
        m.recurrent.weight[:, neuron] = 0
        m.input.weight[neuron] = 0
        m.heads.weight[head, :, neuron] = 0
    return m


def ablation_by_tau(
    model: LeakyRNN, task: str, n: int, head: int, k: int = 20, trials: int = 10, seed: int = 0
) -> dict:
    """Relative streaming accuracy after ablating each of the k shortest- and k longest-tau neurons."""
    taus = model.taus.detach()
    if taus.numel() == 1:
        raise ValueError("ablation by tau rank needs per-neuron (trained) taus")
    order = torch.argsort(taus)
    k = min(k, taus.numel() // 2)
    base = streaming_accuracy(model, task, n, head, trials, seed=seed)
    res = {"baseline": base}
    for name, idx in (("short", order[:k]), ("long", order[-k:])):
        accs = [streaming_accuracy(ablate(model, int(i), head), task, n, head, trials, seed=seed) for i in idx]
        res[name] = {
            "tau": taus[idx].tolist(),
            "accuracy": accs,
            "relative_mean": float(np.mean(relative(np.array(accs), base))),
        }
    return res


def perturbation_curves(
    model: LeakyRNN, task: str, n: int, head: int, trials: int = 10, seed: int = 0, eps_w=None, eps_tau=None
) -> dict:
    """Mean relative streaming accuracy vs the normalised noise strength on W^R and on tau."""
    eps_w = [0.0] + list(np.geomspace(1e-2, 10, 10)) if eps_w is None else list(eps_w)
    eps_tau = [0.0] + list(np.geomspace(1e-3, 10, 13)) if eps_tau is None else list(eps_tau)
    base = streaming_accuracy(model, task, n, head, trials, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    out = {"baseline": base}
    per_neuron_tau = model.taus.numel() > 1
    for kind, grid in (("w_rec", eps_w), ("tau", eps_tau if per_neuron_tau else [])):
        rel = []
        for eps in grid:
            accs = []
            for trial in range(trials):
                m = copy.deepcopy(model)
                with torch.no_grad():
                    if kind == "w_rec":
                        w = m.w_rec()
                        d = torch.randn(w.shape, generator=g)
                        m.recurrent.weight.add_(eps * torch.linalg.norm(w) * d / torch.linalg.norm(d))
                    else:
                        d = torch.randn(m.taus.shape, generator=g).abs()
                        m.taus.add_(eps * torch.linalg.norm(m.taus) * d / torch.linalg.norm(d))
                accs.append(streaming_accuracy(m, task, n, head, 1, seed=seed + 100 + trial))
            rel.append(float(np.mean(relative(np.array(accs), base))))
        out[kind] = {"eps": [float(e) for e in grid], "relative_accuracy": rel}
    return out


# ------------------------------------------------------------------- probes (forgetting / generalisation)
def probe_accuracy(
    model,
    task: str,
    n: int,
    train_batches: int = 8,
    test_batches: int = 4,
    batch_size: int = 256,
    steps: int = 100,
    seed: int = 0,
    length_n: int | None = None,
) -> float:
    """Accuracy (%) of a fresh logistic readout on the frozen network's final state for N = n.

    Sequence lengths follow the rule for max(n, length_n) (``length_n`` None: for n).
    """
    g = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def feats(nb):
        xs, ys = [], []
        for _ in range(nb):
            length = sample_sequence_length(max(n, length_n or n), g)
            x, y = make_timescale_batch(task, [n], batch_size, g, length=length)
            h = simulate(model, x)[-1] if isinstance(model, LeakyRNN) else model.rnn(2 * x - 1)[0][:, -1]
            xs.append(h)
            ys.append(y[0])
        return torch.cat(xs), torch.cat(ys)

    torch.manual_seed(seed)
    xtr, ytr = feats(train_batches)
    xte, yte = feats(test_batches)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    lin = torch.nn.Linear(xtr.shape[1], 2)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(xtr), ytr) + 1e-4 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(100.0 * (lin(xte).argmax(-1) == yte).float().mean())


# ----------------------------------------------------------------------------- driver
@dataclass
class AnalysisConfig:
    ac_steps: int = 20000
    ac_trials: int = 10
    every: int = 1
    ablation_ns: list[int] | None = None
    perturb_n: int | None = None
    trials: int = 10
    seed: int = 0
    eval_batches: int = 10
    fit_neurons: int | None = None  # None: fit tau_net for every neuron (the paper)
    pca_trials: int | None = None  # None: PCA on every trial

    def __post_init__(self):
        for name in ("fit_neurons", "pca_trials"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive int or None, got {v!r}")
        for name in ("ac_steps", "ac_trials", "every", "trials", "eval_batches"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.ac_steps <= 200:
            raise ValueError(f"ac_steps must be > 200 (the longest AC lag), got {self.ac_steps}")


def _head_for(meta: dict, n: int) -> int:
    return meta["heads"][meta["ns"].index(n)]


def _run_label(meta: dict) -> str:
    tc = meta["train_config"]
    return f"{tc['task']}/{tc['curriculum']}" + ("" if tc.get("model", "leaky") == "leaky" else f"/{tc['model']}")


def analyze_run(
    run_dir: str | Path, cfg: AnalysisConfig, ablation_ns: list[int], perturb_n: int | None, progress: bool = True
) -> dict:
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        raise FileNotFoundError(f"no checkpoints N{{min}}_N{{max}} in {run_dir}: train first")
    _, meta0 = load_checkpoint(ckpts[0][2])
    tc = meta0["train_config"]
    task, curriculum = tc["task"], tc["curriculum"]
    res = {
        "run_dir": str(run_dir),
        "label": _run_label(meta0),
        "task": task,
        "curriculum": curriculum,
        "n_reached": ckpts[-1][1],
        "per_n": [],
    }
    summary_file = Path(run_dir) / "summary.json"
    if summary_file.is_file():
        res["train_summary"] = json.loads(summary_file.read_text())
    models = {}
    for i, (_, n_max, path) in enumerate(tqdm(ckpts, desc=f"tau/tau_net {res['label']}", disable=not progress)):
        model, meta = load_checkpoint(path)
        models[n_max] = (model, meta)
        if not isinstance(model, LeakyRNN):
            continue
        tau = model.tau_hat.detach().numpy()
        row = {
            "n": n_max,
            "tau_mean": float(tau.mean()),
            "tau_std": float(tau.std()),
            "tau_max": float(tau.max()),
            "w_rec_spectral_radius": float(torch.linalg.eigvals(model.w_rec().detach()).abs().max()),
            "step": meta["step"],
            "elapsed_s": meta["elapsed_s"],
        }
        if i % cfg.every == 0 or i == len(ckpts) - 1:
            nt = network_timescales(
                model,
                cfg.ac_steps,
                cfg.ac_trials,
                seed=cfg.seed,
                fit_neurons=cfg.fit_neurons,
                pca_trials=cfg.pca_trials,
            )
            tn = nt["tau_net"]
            keep = tn[np.isfinite(tn) & (tn > 1)]  # the paper keeps neurons with tau_net > 1
            row.update(
                {
                    "tau_net_mean": float(keep.mean()) if keep.size else float("nan"),
                    "tau_net_std": float(keep.std()) if keep.size else float("nan"),
                    "tau_net_median": float(np.median(keep)) if keep.size else float("nan"),
                    "tau_net_kept": int(keep.size),
                    "tau_net_fitted": int(tn.size),
                    "tau_net_input_steps": int(cfg.ac_steps * cfg.ac_trials),
                    "tau_net_ci": bootstrap_ci(keep, seed=cfg.seed),  # 95% CI of the mean over neurons
                    "tau_net_median_ci": bootstrap_ci(keep, seed=cfg.seed, stat=np.median),
                    "tau_net_population": nt["tau_net_population"],
                    "tau_net_single_exp_mean": float(np.nanmean(nt["tau_net_single_exp"])),
                    "dimensionality": nt["dimensionality"],
                }
            )
        res["per_n"].append(row)

    # ablation / perturbation at the requested N (where this run has a checkpoint)
    res["ablation"], res["perturbation"] = {}, {}
    for n in ablation_ns:
        if n in models and isinstance(models[n][0], LeakyRNN) and models[n][0].taus.numel() > 1:
            m, meta = models[n]
            res["ablation"][str(n)] = ablation_by_tau(m, task, n, _head_for(meta, n), trials=cfg.trials, seed=cfg.seed)
    if perturb_n is not None and perturb_n in models and isinstance(models[perturb_n][0], LeakyRNN):
        m, meta = models[perturb_n]
        res["perturbation"][str(perturb_n)] = perturbation_curves(
            m, task, perturb_n, _head_for(meta, perturb_n), trials=cfg.trials, seed=cfg.seed
        )

    # forgetting / generalisation with the final network
    n_last = ckpts[-1][1]
    model, meta = models[n_last]
    n_eval = sorted(set(range(2, n_last + 1, max(1, (n_last - 2) // 5))) | {n_last} | {n_last + 1, n_last + 3})
    g = torch.Generator().manual_seed(cfg.seed)
    head_acc = {}
    for n in n_eval:
        head = _head_for(meta, n) if n in meta["ns"] else (0 if curriculum == "single" else None)
        if head is None:
            if curriculum == "multi" and n - tc["n_min"] < model.heads.n_heads:
                head = n - tc["n_min"]  # an untrained head (multi-head: beyond the trained range)
            else:
                continue
        # lengths as in the final training stage (N_last + 2 .. 4 N_last + 1), longer for N > N_last
        head_acc[str(n)] = evaluate(model, task, [n], [head], cfg.eval_batches, 256, g, length_n=n_last)[0]
    probe = {str(n): probe_accuracy(model, task, n, seed=cfg.seed, length_n=n_last) for n in n_eval}
    res["final_network"] = {
        "n_max": n_last,
        "head_accuracy": head_acc,
        "probe_accuracy": probe,
        "streaming_accuracy": streaming_accuracy(
            model, task, n_last, _head_for(meta, n_last), cfg.trials, seed=cfg.seed
        )
        if isinstance(model, LeakyRNN)
        else None,
    }
    return res


def _plot(results: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(1, 4, figsize=(18, 4))
    for r in results:
        rows = r["per_n"]
        if not rows:
            continue
        n = [x["n"] for x in rows]
        ax[0].errorbar(
            n,
            [x["tau_mean"] for x in rows],
            yerr=[x["tau_std"] for x in rows],
            label=r["label"],
            capsize=2,
            alpha=0.8,
        )
        ax[1].plot(n, [x["tau_std"] for x in rows], label=r["label"])
        tn = [(x["n"], x["tau_net_mean"]) for x in rows if "tau_net_mean" in x]
        if tn:
            ax[2].plot(*zip(*tn), "o-", label=r["label"])
            ax[3].plot(
                *zip(*[(x["n"], x["dimensionality"]) for x in rows if "dimensionality" in x]),
                "o-",
                label=r["label"],
            )
    for a, t in zip(
        ax,
        [
            "mean(tau) +- std",
            "std(tau)",
            "mean tau_net (neurons with tau_net > 1)",
            "PCA dims for 90% variance",
        ],
    ):
        a.set_xlabel("N")
        a.set_title(t)
        a.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "timescales_vs_n.png")
    files.append("timescales_vs_n.png")

    abl = [(r["label"], n, a) for r in results for n, a in r["ablation"].items()]
    if abl:
        fig, ax = plt.subplots(figsize=(1.6 * len(abl) + 2, 4))
        xs = np.arange(len(abl))
        ax.bar(xs - 0.2, [a["short"]["relative_mean"] for *_, a in abl], 0.4, label="20 shortest tau")
        ax.bar(xs + 0.2, [a["long"]["relative_mean"] for *_, a in abl], 0.4, label="20 longest tau")
        ax.set_xticks(xs, [f"{lab}\nN={n}" for lab, n, _ in abl], fontsize=7)
        ax.set_ylabel("relative accuracy after ablating one neuron")
        ax.axhline(1, color="k", lw=0.5)
        ax.legend()
        fig.tight_layout()
        save_figure(fig, out / "ablation.png")
        files.append("ablation.png")

    pert = [(r["label"], n, p) for r in results for n, p in r["perturbation"].items()]
    if pert:
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        for lab, n, p in pert:
            for a, kind in zip(ax, ("w_rec", "tau")):
                if kind in p and p[kind]["eps"]:
                    e = np.array(p[kind]["eps"][1:])
                    a.semilogx(e, p[kind]["relative_accuracy"][1:], "o-", label=f"{lab} N={n}")
        ax[0].set_title("noise on W_R: eps ||W_R|| D/||D||")
        ax[1].set_title("noise on tau: eps ||tau|| |D|/|| |D| ||")
        for a in ax:
            a.set_xlabel("eps")
            a.set_ylabel("relative accuracy")
            a.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, out / "perturbation.png")
        files.append("perturbation.png")

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        f = r["final_network"]
        hn = sorted((int(k), v) for k, v in f["head_accuracy"].items())
        pn = sorted((int(k), v) for k, v in f["probe_accuracy"].items())
        ax[0].plot(*zip(*hn), "o-", label=f"{r['label']} (trained to N={f['n_max']})")
        ax[1].plot(*zip(*pn), "o-", label=f"{r['label']} (trained to N={f['n_max']})")
        s = r.get("train_summary", {}).get("solved", [])
        if s:
            pass
    ax[0].set_title("final network, its own head(s)")
    ax[1].set_title("final network, fresh linear readout (probe)")
    for a in ax:
        a.set_xlabel("N tested")
        a.set_ylabel("accuracy (%)")
        a.axhline(50, color="k", lw=0.5)
        a.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "forgetting_generalisation.png")
    files.append("forgetting_generalisation.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        s = r.get("train_summary", {}).get("solved", [])
        if s:
            ax.step([x["elapsed_s"] / 60 for x in s], [x["n_max"] for x in s], where="post", label=r["label"])
    ax.set_xlabel("wall-clock minutes")
    ax.set_ylabel("largest N solved")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "training_progress.png")
    files.append("training_progress.png")
    return files


def analyze_runs(
    run_dirs: list[str | Path], cfg: AnalysisConfig | None = None, out: str | Path | None = None, progress: bool = True
) -> dict:
    """Analyse one or more run directories; writes ``analysis.json`` and PNG figures into ``out``
    (``progress=False``: no progress bars)."""
    cfg = cfg or AnalysisConfig()
    run_dirs = [Path(d) for d in run_dirs]
    for d in run_dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"run directory {d} does not exist")
    reached = {d: [c[1] for c in list_checkpoints(d)] for d in run_dirs}
    for d, ns in reached.items():
        if not ns:
            raise FileNotFoundError(f"no checkpoints N{{min}}_N{{max}} in {d}: train first")
    common = sorted(set.intersection(*[set(v) for v in reached.values()]))
    ablation_ns = cfg.ablation_ns if cfg.ablation_ns is not None else ([common[-1]] if common else [])
    perturb_n = cfg.perturb_n if cfg.perturb_n is not None else (common[-1] if common else None)
    results = [analyze_run(d, cfg, ablation_ns, perturb_n, progress) for d in run_dirs]
    out = Path(out) if out is not None else run_dirs[0] / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    files = _plot(results, out)
    summary = {
        r["label"]: {
            "n_reached": r["n_reached"],
            "tau_mean_first_last": [r["per_n"][0]["tau_mean"], r["per_n"][-1]["tau_mean"]] if r["per_n"] else None,
            "tau_net_mean_first_last": [
                next((x["tau_net_mean"] for x in r["per_n"] if "tau_net_mean" in x), None),
                r["per_n"][-1].get("tau_net_mean"),
            ]
            if r["per_n"]
            else None,
        }
        for r in results
    }
    full = {
        "config": asdict(cfg),
        "ablation_ns": ablation_ns,
        "perturb_n": perturb_n,
        "runs": results,
        "figures": files,
        "summary": summary,
    }
    write_json(out / "analysis.json", full)
    return full
