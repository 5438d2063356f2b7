"""The protocol-family study: every model's default fit on random synthetic protocols (simulate.protocol_family).

For each protocol and seed the data are drawn with that seed (parameters and spikes), the four models are
fitted to the training trials and scored on the test trials against the planted truth:

* state accuracy (Viterbi, states matched by the Hungarian algorithm) and its ratio to the accuracy of the
  true parameters' own Viterbi path (the best any fit can do on that data);
* held-out log-likelihood per bin and neuron (and the generator's);
* weight MSE (states matched) and connection-type accuracy (the one-hot model's hard types; sign(w) where
  |w| > 0.2 for the others; the GLM's one matrix against every state's).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from engramlab.io import write_json

from . import metrics
from .models import MODELS, FitConfig, make_model
from .simulate import (
    DEFAULT_MAX_RATE,
    MAX_COUNT_FACTOR,
    ProtocolSpec,
    SyntheticData,
    protocol_family,
    simulate_protocol,
    stable_trials,
)


def score_model(m, data: SyntheticData) -> dict:
    """Recovery metrics of a fitted model against the planted truth of ``data`` (test trials)."""
    S, N = data.weights.shape[0], data.weights.shape[1]
    test, z = data.test, data.states[data.n_train :]
    n_test = test.shape[0] * test.shape[1] * N
    row = {"test_ll_per_bin_neuron": m.log_likelihood(test) / n_test}
    if m.n_states > 1:
        perm = metrics.match_states(z, m.most_likely_states(test), S)
        m.permute(perm)
        row["state_accuracy"] = metrics.state_accuracy(z, m.most_likely_states(test), np.arange(S))
        W = m.weights
        types = m.connection_types()
    else:
        row["state_accuracy"] = None
        W = m.weights.expand(S, N, N)
        types = m.connection_types().expand(S, N, N)
    row["weight_mse"] = metrics.weight_error(data.weights, W)
    row["type_accuracy"] = metrics.type_accuracy(data.types, types)
    row["type_balanced_accuracy"] = metrics.balanced_type_accuracy(data.types, types)
    return row


# screening trials of draw k are sampled with seed data_seed + SCREEN_SEED_OFFSET (never the data's own seed)
SCREEN_SEED_OFFSET = 7919


def _true_accuracy(model, spikes: torch.Tensor, states: torch.Tensor, n_states: int) -> float:
    return metrics.state_accuracy(states, model.most_likely_states(spikes), np.arange(n_states))


def draw_identifiable(
    spec: ProtocolSpec,
    seed: int,
    min_true_accuracy: float | None = None,
    max_draws: int = 8,
    screen_bins: int | None = None,
):
    """Simulate ``spec``; with ``min_true_accuracy``, redraw (parameters and spikes, draw k uses seed
    ``seed + 1009 k``) until the true parameters' own Viterbi path reaches that state accuracy, at most
    ``max_draws`` draws (then the best draw is kept). A protocol whose states the generator itself cannot
    tell apart says nothing about a fit.

    Without ``screen_bins`` the accuracy that decides is the one on the test trials, so the kept draw's
    test accuracy is selected upwards (the draws that pass are partly the lucky ones), which biases the
    ratio fit / truth on those trials downwards. With ``screen_bins`` each draw's generator also samples
    max(1, round(screen_bins / T)) fresh screening trials (seed ``data_seed + SCREEN_SEED_OFFSET``; a run-away
    trial of an unbounded link is replaced, :func:`simulate.stable_trials`), the
    decision uses their accuracy (``screen_state_accuracy``), and the test trials' accuracy (returned)
    is that of an unselected sample. Returns (data, true test accuracy, draws: one record each)."""
    best, draws = None, []
    S = spec.n_states
    for k in range(1 if min_true_accuracy is None else max_draws):
        data_seed = seed + 1009 * k
        data = simulate_protocol(spec, data_seed)
        acc = _true_accuracy(data.model, data.test, data.states[data.n_train :], S)
        rec = {"data_seed": data_seed, "true_state_accuracy": acc}
        decide = acc
        if screen_bins:
            n = max(1, round(screen_bins / spec.n_time_bins))
            x, z, dropped = stable_trials(
                data.model, spec.n_time_bins, n, data_seed + SCREEN_SEED_OFFSET, MAX_COUNT_FACTOR * DEFAULT_MAX_RATE
            )
            decide = rec["screen_state_accuracy"] = _true_accuracy(data.model, x, z, S)
            rec["screen_trials_dropped"] = dropped
        draws.append(rec)
        if best is None or decide > best[2]:
            best = (data, acc, decide)
        if min_true_accuracy is None or decide >= min_true_accuracy:
            break
    key = "screen_state_accuracy" if screen_bins else "true_state_accuracy"
    for d in draws:
        d["kept"] = d[key] == best[2]
    return best[0], best[1], draws


def run_protocol(
    spec: ProtocolSpec,
    seed: int,
    models=MODELS,
    fits: dict | None = None,
    threads: int = 1,
    default_fit: FitConfig | None = None,
    reference: FitConfig | None = None,
    min_true_accuracy: float | None = None,
    max_draws: int = 8,
    screen_bins: int | None = None,
) -> dict:
    """Simulate ``spec`` with ``seed`` (with ``min_true_accuracy``: :func:`draw_identifiable`), fit ``models``
    (``fits[kind]``: a FitConfig; otherwise ``default_fit``
    with the seed set, i.e. the default fit), score. Also records each fit's training log-likelihood minus
    the generator's (positive: the fit explains the training data better than the truth does). With
    ``reference`` (a FitConfig with ``optimizer="reference"``) every model is fitted a second time that way
    (the public code's training) and scored under ``"reference"``."""
    torch.set_num_threads(threads)
    data, true_acc, draws = draw_identifiable(spec, seed, min_true_accuracy, max_draws, screen_bins)
    S, N = spec.n_states, spec.n_neurons
    test = data.test
    n_test = test.shape[0] * test.shape[1] * N
    n_train = data.train.shape[0] * data.train.shape[1] * N
    true_train = data.model.log_likelihood(data.train)
    res = {
        "protocol": {**asdict(spec), "seed": seed},
        "draws": draws,
        "true_state_accuracy": true_acc,
        "identifiability": max(d.get("screen_state_accuracy", d["true_state_accuracy"]) for d in draws),
        "true_test_ll_per_bin_neuron": data.model.log_likelihood(test) / n_test,
        "majority_type_accuracy": metrics.type_accuracy(data.types, torch.zeros_like(data.types)),
        "models": {},
    }

    def fit_score(kind, cfg):
        m = make_model(kind, 1 if kind == "glm" else S, N, link=spec.link)
        t0 = time.perf_counter()
        m.fit(data.train, progress=False, config=cfg)
        row = {"fit_s": round(time.perf_counter() - t0, 2), "epochs": m.n_epochs_}
        row["train_ll_minus_truth_per_bin_neuron"] = (m.log_likelihood(data.train) - true_train) / n_train
        row.update(score_model(m, data))
        if row["state_accuracy"] is not None:
            row["state_accuracy_ratio"] = row["state_accuracy"] / true_acc
        return row

    for kind in models:
        cfg = (fits or {}).get(kind) or FitConfig(**{**asdict(default_fit or FitConfig()), "seed": seed})
        res["models"][kind] = fit_score(kind, cfg)
    if reference is not None:
        if reference.optimizer != "reference":
            raise ValueError(f"reference must be a FitConfig with optimizer='reference', got {reference.optimizer!r}")
        ref = FitConfig(**{**asdict(reference), "seed": seed})
        res["reference"] = {kind: fit_score(kind, ref) for kind in models}
        res["reference_fit"] = asdict(ref)
    return res


def run_family(
    out: str | Path | None = None,
    seeds=(0, 1, 2),
    n_protocols: int = 20,
    models=MODELS,
    fits: dict | None = None,
    threads: int = 1,
    family_seed: int = 0,
    target: float = 0.95,
    progress: bool = True,
    default_fit: FitConfig | None = None,
    train_bins: int = 8000,
    test_bins: int = 4000,
    bins_per_sn: float | None = None,
    max_neurons: int = 50,
    reference: FitConfig | None = None,
    reference_protocols=(),
    min_true_accuracy: float | None = None,
    max_draws: int = 8,
    replace_low_snr: bool = False,
    screen_bins: int | None = None,
    resume: bool = False,
    protocols=(),
) -> dict:
    """The whole study; writes ``out``/family.json after every protocol (a partial run keeps what it did).
    ``resume``: an ``out``/family.json left by an interrupted run of the same study (same sizes, fits,
    models and target) is continued: its protocols are kept as they are, and only the missing ones are
    run (each protocol's result depends only on its spec, seed and fits, so the result is the one of an
    uninterrupted run); ``wall_s`` adds up the attempts and ``resumed_runs`` counts the runs taken from it. A
    family.json of another study is an error. ``protocols``: run only these protocols of the family of
    ``n_protocols`` (e.g. ``("p01", "p03")``; all by default), each the same network as in the whole
    family. Sizes: :func:`simulate.protocol_family` (``train_bins``, ``test_bins``, ``bins_per_sn``, ``max_neurons``).
    ``reference``: the public code's training (a FitConfig with optimizer="reference") is also run on the
    protocols named in ``reference_protocols`` (e.g. ``("p00", "p11")``; none by default).

    ``replace_low_snr`` (needs ``min_true_accuracy``): a protocol whose true parameters still decode below
    ``min_true_accuracy`` after ``max_draws`` draws is fitted and scored all the same but kept apart, under
    ``low_snr_runs`` (with its own summary, ``summary_low_snr``), and the next protocol of the same random
    family (p20, p21, ... for 20 protocols) takes its place, so that each seed has ``n_protocols``
    identifiable protocols. At most ``2 n_protocols`` spare protocols are drawn; ``n_runs`` says how many
    were reached. ``screen_bins``: identifiability is judged on fresh screening trials of the generator,
    not on the test trials (:func:`draw_identifiable`); a run's ``identifiability`` is the accuracy that
    decided."""
    from tqdm.auto import tqdm

    if replace_low_snr and min_true_accuracy is None:
        raise ValueError("replace_low_snr=True needs min_true_accuracy (the identifiability threshold), got None")
    n_specs = 3 * n_protocols if replace_low_snr else n_protocols
    specs = protocol_family(
        n_specs,
        seed=family_seed,
        train_bins=train_bins,
        test_bins=test_bins,
        max_neurons=max_neurons,
        bins_per_sn=bins_per_sn,
    )
    runs, low_snr = [], []
    result: dict = {}
    t_all = time.perf_counter()
    for what, names in (("reference_protocols", reference_protocols), ("protocols", protocols)):
        unknown = set(names) - {sp.name for sp in specs[:n_protocols]}
        if unknown:
            raise ValueError(f"{what} {sorted(unknown)} are not in the family p00..p{n_protocols - 1:02d}")
    if protocols:
        if replace_low_snr:
            raise ValueError("protocols (a chosen subset) and replace_low_snr=True exclude each other")
        specs = [sp for sp in specs if sp.name in set(protocols)]
    n_wanted = len(specs) if protocols else n_protocols  # per seed
    sizes = {
        "n_protocols": n_protocols,
        "train_bins": train_bins,
        "test_bins": test_bins,
        "bins_per_sn": bins_per_sn,
        "max_neurons": max_neurons,
        "reference_protocols": list(reference_protocols),
        "min_true_accuracy": min_true_accuracy,
        "max_draws": max_draws,
        "replace_low_snr": replace_low_snr,
        "screen_bins": screen_bins,
    }
    if protocols:
        sizes["protocols"] = [sp.name for sp in specs]
    study = {
        "target_ratio": target,
        "family_seed": family_seed,
        "models": list(models),
        "default_fit": asdict(default_fit or FitConfig()),
        "fits": {k: asdict(v) for k, v in (fits or {}).items()},
        "reference_fit": asdict(reference) if reference is not None else None,
        "sizes": sizes,
    }
    done, wall_before = {}, 0.0
    if resume and out is not None and (Path(out) / "family.json").is_file():
        done, wall_before = _resumable_runs(Path(out) / "family.json", study)
    bar = tqdm(total=n_wanted * len(seeds), desc="protocols", disable=not progress)
    reused = 0
    for s in seeds:
        kept = 0
        for spec in specs:
            if kept == n_wanted:
                break
            ref = reference if spec.name in reference_protocols else None
            run = done.get((spec.name, s))
            reused += run is not None
            run = run or run_protocol(
                spec, s, models, fits, threads, default_fit, ref, min_true_accuracy, max_draws, screen_bins
            )
            if replace_low_snr and run["identifiability"] < min_true_accuracy:
                low_snr.append(run)
            else:
                runs.append(run)
                kept += 1
                bar.update(1)
            result = summarise(runs, target)
            if replace_low_snr:
                result["n_low_snr_runs"] = len(low_snr)
                if low_snr:
                    result["summary_low_snr"] = _summary(low_snr, target)
                result["low_snr_runs"] = low_snr
            result["wall_s"] = round(wall_before + time.perf_counter() - t_all, 1)
            result["threads"] = threads
            result["default_fit"] = study["default_fit"]
            result["sizes"] = sizes
            result["study"] = study
            if reused:
                result["resumed_runs"] = reused
            if out is not None:
                write_json(Path(out) / "family.json", result)
    bar.close()
    return result


def _resumable_runs(path: Path, study: dict) -> tuple[dict, float]:
    """The runs of an interrupted family.json by (protocol, seed), and its wall time so far; refuses a file
    written by another study (the first differing setting is named)."""
    from engramlab.io import read_json, to_jsonable

    saved = read_json(path)
    # files from before the study record: their sizes and default fit still have to agree
    before = saved.get("study") or {"sizes": saved.get("sizes"), "default_fit": saved.get("default_fit")}
    for key, want in to_jsonable(study).items():
        if key in before and before[key] != want:
            raise ValueError(
                f"{path} was written by another family study ({key}: {before[key]!r}, this run: {want!r}); "
                "give another out folder, or remove the file to start again"
            )
    done = {(r["protocol"]["name"], r["protocol"]["seed"]): r for r in saved["runs"] + saved.get("low_snr_runs", [])}
    return done, float(saved.get("wall_s", 0.0))


def summarise(runs: list[dict], target: float = 0.95) -> dict:
    """Per model: state-accuracy ratio min/mean, runs under ``target`` x true accuracy, type accuracy, LL gap.
    The same over the runs with reference-optimiser fits under ``summary_reference``."""
    ref_runs = [{**r, "models": r["reference"]} for r in runs if "reference" in r]
    out = {"target_ratio": target, "n_runs": len(runs), "summary": _summary(runs, target)}
    if ref_runs:
        out["n_reference_runs"] = len(ref_runs)
        out["summary_reference"] = _summary(ref_runs, target)
    out["runs"] = runs
    return out


def _summary(runs: list[dict], target: float) -> dict:
    kinds = list(runs[0]["models"]) if runs else []
    summary = {}
    for kind in kinds:
        rows = [r["models"][kind] for r in runs]
        s = {
            "type_accuracy_mean": float(np.mean([x["type_accuracy"] for x in rows])),
            "weight_mse_mean": float(np.mean([x["weight_mse"] for x in rows])),
            "test_ll_gap_to_truth_mean": float(
                np.mean([r["true_test_ll_per_bin_neuron"] - r["models"][kind]["test_ll_per_bin_neuron"] for r in runs])
            ),
            "fit_s_total": float(sum(x["fit_s"] for x in rows)),
        }
        if kind != "glm":
            ratios = [x["state_accuracy_ratio"] for x in rows]
            s.update(
                state_accuracy_ratio_min=float(np.min(ratios)),
                state_accuracy_ratio_mean=float(np.mean(ratios)),
                n_below_target=int(sum(q < target for q in ratios)),
                below_target=[
                    f"{r['protocol']['name']}/seed{r['protocol']['seed']}" for r, q in zip(runs, ratios) if q < target
                ],
            )
        summary[kind] = s
    return summary


def below_target_diagnosis(runs: list[dict], kind: str, target: float = 0.95) -> dict:
    """Is a run below the target an optimiser stuck short of the truth, or an estimate at finite data?

    ``runs``: family runs (``run_protocol`` results); ``kind``: a switching model. Splits the runs into
    those below ``target`` x the true-parameter accuracy and those at or above it, and returns per group
    the count, the fraction whose training log-likelihood is at least the generator's (a fit above the
    truth on its own training data is not stuck below it), the mean held-out log-likelihood minus the
    generator's, and the mean training excess over the generator in units of k / (2 n) (k: the plain
    HMM-GLM's free parameters, n: training bins x neurons; about 1 is what a maximum-likelihood estimate
    overfits by, Wilks). A group without runs gives None for its means."""
    from .datasize import n_free_parameters

    def stats(rs):
        if not rs:
            return {"n": 0, "fit_above_truth": None, "test_ll_gap": None, "excess_over_wilks": None}
        m = [r["models"][kind] for r in rs]
        wilks = [
            n_free_parameters(p["n_states"], p["n_neurons"]) / (2 * p["n_train"] * p["n_time_bins"] * p["n_neurons"])
            for p in (r["protocol"] for r in rs)
        ]
        return {
            "n": len(rs),
            "fit_above_truth": float(np.mean([x["train_ll_minus_truth_per_bin_neuron"] >= 0 for x in m])),
            "test_ll_gap": float(
                np.mean([x["test_ll_per_bin_neuron"] - r["true_test_ll_per_bin_neuron"] for x, r in zip(m, rs)])
            ),
            "excess_over_wilks": float(
                np.mean([x["train_ll_minus_truth_per_bin_neuron"] / w for x, w in zip(m, wilks)])
            ),
        }

    below = [r for r in runs if r["models"][kind]["state_accuracy_ratio"] < target]
    at = [r for r in runs if r["models"][kind]["state_accuracy_ratio"] >= target]
    return {"below": stats(below), "at": stats(at)}
