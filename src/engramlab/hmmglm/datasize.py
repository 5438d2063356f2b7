"""State recovery against the amount of training data, on protocols of the family (hmmglm.family).

For one seed and each named protocol, the family's data are drawn exactly as the family study draws them
(:func:`family.draw_identifiable`: same network, same training and test trials, same true-parameter
accuracy). Larger training sets are nested: ``factor`` k keeps the family's training trials and appends
(k - 1) times as many new trials sampled from the same generator, so the network and the test trials are
the same at every size and only the training data grow. Every switching model is fitted with the default
fit (as in the family study) at every factor and scored on the unchanged test trials; optional
``variants`` add other model settings (e.g. a stronger Gaussian weight prior) at the family's size.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from engramlab.io import write_json

from .family import draw_identifiable, score_model
from .models import FitConfig, make_model
from .simulate import DEFAULT_MAX_RATE, MAX_COUNT_FACTOR, protocol_family, stable_trials

SWITCHING = ("hmmglm", "gaussian", "onehot")
EXTRA_SEED_OFFSET = 7919  # the appended trials are sampled with seed data_seed + this (disjoint from the family's)


def n_free_parameters(n_states: int, n_neurons: int) -> int:
    """Free parameters of the plain HMM-GLM: S x N x N weights, N biases (shared by the states), S x (S - 1)
    transition probabilities (the initial distribution is fixed)."""
    S, N = int(n_states), int(n_neurons)
    return S * N * N + N + S * (S - 1)


def _fit_row(kind, factor, settings, label, train, data, run, cfg) -> dict:
    """Fit one model to ``train`` and score it on ``data``'s test trials (one row of a run's "fits")."""
    p = run["protocol"]
    S, N, T = p["n_states"], p["n_neurons"], p["n_time_bins"]
    m = make_model(kind, S, N, link=p["link"], **settings)
    t0 = time.perf_counter()
    m.fit(train, progress=False, config=cfg)
    n_bins = train.shape[0] * T
    row = {
        "model": kind,
        "variant": label,
        "factor": factor,
        "train_bins": n_bins,
        "fit_s": round(time.perf_counter() - t0, 2),
        "epochs": m.n_epochs_,
        "train_ll_minus_truth_per_bin_neuron": (m.log_likelihood(train) - data.model.log_likelihood(train))
        / (n_bins * N),
        "wilks_excess_per_bin_neuron": run["n_free_parameters"] / (2 * n_bins * N),
    }
    row.update(score_model(m, data))
    row["state_accuracy_ratio"] = row["state_accuracy"] / run["true_state_accuracy"]
    row["test_ll_minus_truth_per_bin_neuron"] = row["test_ll_per_bin_neuron"] - run["true_test_ll_per_bin_neuron"]
    return row


def _check(protocols, factors, variants, names):
    if not protocols:
        raise ValueError("protocols must name at least one family protocol (e.g. ['p12'])")
    unknown = sorted(set(protocols) - set(names))
    if unknown:
        raise ValueError(f"protocols {unknown} are not in the family {names[0]}..{names[-1]}")
    bad = [f for f in factors if isinstance(f, bool) or int(f) != f or f < 1]
    if not factors or bad:
        raise ValueError(f"factors must be integers >= 1 (training-data multiples), got {list(factors)!r}")
    for name, v in (variants or {}).items():
        if not isinstance(v, dict) or v.get("model") not in SWITCHING:
            raise ValueError(f"variant {name!r} must be a dict with 'model' one of {SWITCHING}, got {v!r}")


def run_datasize(
    out: str | Path | None,
    seed: int,
    protocols,
    factors=(1, 2, 4),
    models=SWITCHING,
    variants: dict | None = None,
    fit: FitConfig | None = None,
    n_protocols: int = 20,
    family_seed: int = 0,
    train_bins: int = 4000,
    test_bins: int = 2000,
    bins_per_sn: float | None = None,
    max_neurons: int = 50,
    min_true_accuracy: float | None = None,
    max_draws: int = 8,
    threads: int = 1,
    max_count: float = MAX_COUNT_FACTOR * DEFAULT_MAX_RATE,
) -> dict:
    """The study for one ``seed``; writes ``out``/datasize.json after every fit (a partial run keeps what it
    did). The family arguments (``n_protocols`` ... ``max_draws``) must be the family study's for the data
    to be the family's. Appended trials with a count above ``max_count`` (simulate's MAX_COUNT_FACTOR x
    DEFAULT_MAX_RATE, the bound the family's trials were drawn under) are replaced by new draws.
    ``variants``: name -> {"model": kind, "settings": model keyword arguments}, fitted at factor 1 only.
    Returns {"config", "runs": one per protocol with "fits": one row per fit}."""
    torch.set_num_threads(threads)
    specs = {
        sp.name: sp
        for sp in protocol_family(
            n_protocols,
            seed=family_seed,
            train_bins=train_bins,
            test_bins=test_bins,
            max_neurons=max_neurons,
            bins_per_sn=bins_per_sn,
        )
    }
    factors = sorted({int(f) for f in factors})
    _check(list(protocols), factors, variants, sorted(specs))
    fit = fit or FitConfig()
    cfg = FitConfig(**{**asdict(fit), "seed": seed})
    result = {
        "config": {
            "seed": seed,
            "protocols": list(protocols),
            "factors": factors,
            "models": list(models),
            "variants": variants or {},
            "max_count": max_count,
            "fit": asdict(cfg),
            "family": {
                "n_protocols": n_protocols,
                "family_seed": family_seed,
                "train_bins": train_bins,
                "test_bins": test_bins,
                "bins_per_sn": bins_per_sn,
                "max_neurons": max_neurons,
                "min_true_accuracy": min_true_accuracy,
                "max_draws": max_draws,
            },
        },
        "runs": [],
    }
    t_all = time.perf_counter()
    for name in protocols:
        spec = specs[name]
        data, true_acc, draws = draw_identifiable(spec, seed, min_true_accuracy, max_draws)
        kept = next(d["data_seed"] for d in draws if d["kept"])
        S, N, T = spec.n_states, spec.n_neurons, spec.n_time_bins
        n_extra = (factors[-1] - 1) * data.n_train
        extra, rejected = None, 0
        if n_extra:
            extra, _, rejected = stable_trials(data.model, T, n_extra, kept + EXTRA_SEED_OFFSET, max_count)
        n_test = data.test.shape[0] * T * N
        run = {
            "protocol": {**asdict(spec), "seed": seed, "data_seed": kept},
            "true_state_accuracy": true_acc,
            "true_test_ll_per_bin_neuron": data.model.log_likelihood(data.test) / n_test,
            "n_free_parameters": n_free_parameters(S, N),
            "n_extra_trials": n_extra,
            "n_extra_trials_rejected": rejected,
            "fits": [],
        }
        result["runs"].append(run)

        jobs = [(kind, f, {}, None) for f in factors for kind in models]
        jobs += [(v["model"], 1, dict(v.get("settings") or {}), label) for label, v in (variants or {}).items()]
        for kind, factor, settings, label in jobs:
            train = data.train if factor == 1 else torch.cat([data.train, extra[: (factor - 1) * data.n_train]])
            run["fits"].append(_fit_row(kind, factor, settings, label, train, data, run, cfg))
            result["wall_s"] = round(time.perf_counter() - t_all, 1)
            if out is not None:
                write_json(Path(out) / "datasize.json", result)
    result["wall_s"] = round(time.perf_counter() - t_all, 1)
    if out is not None:
        write_json(Path(out) / "datasize.json", result)
    return result


def select_runs(family: dict, target: float = 0.95, min_true_accuracy: float = 0.85, models=SWITCHING) -> list[str]:
    """The protocols of one seed's family result (``family.run_family`` output, one seed) on which the true
    parameters decode at least ``min_true_accuracy`` and at least one of ``models`` misses ``target`` x
    that accuracy: the identifiable runs below the target."""
    out = []
    for r in family["runs"]:
        if r["true_state_accuracy"] < min_true_accuracy:
            continue
        if any(r["models"][k]["state_accuracy_ratio"] < target for k in models if k in r["models"]):
            out.append(r["protocol"]["name"])
    return out


def fit_rows(result: dict, kind: str, factor: int | None = None, variant: str | None = None) -> list[tuple[dict, dict]]:
    """(run, fit row) pairs of one model in a :func:`run_datasize` result: at ``factor`` (default fit) or, with
    ``variant``, that variant's rows."""
    out = []
    for run in result["runs"]:
        for f in run["fits"]:
            if f["model"] == kind and f["variant"] == variant and (factor is None or f["factor"] == factor):
                out.append((run, f))
    return out
