"""Emergent long timescales (Khajehabdollahi, Zeraati et al., ICLR 2024): claims table and experiments.

The paper's text could not be read; its numbers come from the official code's committed results
(shared notes, Sec. 4). Experiments (units): for each task (N-parity, N-DMS), curriculum (single-head,
multi-head) and seed, a leaky RNN with trainable per-neuron tau trained through the curriculum; for
each task and seed, the analysis of both networks (tau and tau_net against N, ablation of short- and
long-tau neurons, perturbation of W^R and tau at the largest N both reached).
"""

from __future__ import annotations

import math
from pathlib import Path

from engramlab.report.claims import ClaimSpec
from engramlab.report.units import Outputs, Unit

from . import _common as C

SYSTEM = "timescales"
TITLE = "Emergent mechanisms for long timescales in leaky RNNs"
PAPER = "Khajehabdollahi, Zeraati, Giannakakis, Schäfer, Martius, Levina, ICLR 2024 (arXiv:2309.12927)"
SUMMARY = (
    "Trained on N-parity / N-DMS, a multi-head curriculum reaches larger N than a single-head one, "
    "keeps single-neuron timescales tau flat and builds long timescales in the network (tau_net), and "
    "is more robust to ablations and perturbations; single-head training grows tau instead."
)

TASKS = ("parity", "dms")
CURRICULA = ("single", "multi")

BUDGETS = {
    "tiny": {
        "train": {
            "n_neurons": 16,
            "n_heads": 8,
            "max_n": 9,
            "batch_size": 16,
            "steps_per_epoch": 5,
            "test_batches": 1,
            "max_epochs": 3,
            "threshold": 40.0,
        },
        "budget_minutes": None,
        "analysis": {
            "ac_steps": 300,
            "ac_trials": 2,
            "fit_neurons": 4,
            "pca_trials": 1,
            "trials": 1,
            "eval_batches": 1,
            "every": 1,
        },
        "estimate_s": {"train": 2, "analysis": 6},
    },
    # deterministic: a fixed number of epochs, no wall-clock budget
    "quick": {
        "train": {
            "n_neurons": 64,
            "n_heads": 40,
            "max_n": 41,
            "batch_size": 128,
            "steps_per_epoch": 50,
            "test_batches": 4,
            "max_epochs": 40,
        },
        "budget_minutes": None,
        "analysis": {
            "ac_steps": 2000,
            "ac_trials": 4,
            "fit_neurons": 32,
            "pca_trials": 2,
            "trials": 3,
            "eval_batches": 4,
            "every": 2,
        },
        "estimate_s": {"train": 15, "analysis": 25},
    },
    # docs/timescales.md: 128 neurons, 100 heads, 100 steps per epoch, 10 test batches; 60 min (parity) and
    # 30 min (DMS) of training per network; the analysis settings of the docs
    "full": {
        "train": {
            "n_neurons": 128,
            "n_heads": 100,
            "max_n": 101,
            "batch_size": 256,
            "steps_per_epoch": 100,
            "test_batches": 10,
            "max_epochs": 1000,
        },
        "budget_minutes": {"parity": 60, "dms": 30},
        "analysis": {
            "ac_steps": 5000,
            "ac_trials": 10,
            "fit_neurons": 100,
            "pca_trials": 2,
            "trials": 10,
            "eval_batches": 10,
            "every": 3,
        },
        "estimate_s": {"train": None, "analysis": 600},
    },
}


def budget_text(b: dict) -> str:
    t = b["train"]
    stop = (
        f"{b['budget_minutes']['parity']} min (parity) / {b['budget_minutes']['dms']} min (DMS) of training"
        if b["budget_minutes"]
        else f"{t['max_epochs']} epochs"
    )
    return (
        f"leaky RNN of {t['n_neurons']} neurons, {t['n_heads']} heads; {t['steps_per_epoch']} SGD steps of "
        f"{t['batch_size']} sequences per epoch, {t['test_batches']} test batches, advance at "
        f"{t.get('threshold', 98.0):g}% accuracy; {stop} per network; tau_net from {b['analysis']['ac_steps']} "
        f"steps x {b['analysis']['ac_trials']} trials on {b['analysis']['fit_neurons']} neurons"
    )


def _train_name(task: str, cur: str, s: int) -> str:
    return f"train-{task}-{cur}-s{s}"


def plan(b: dict, seeds: list[int], extra: dict | None = None) -> list[Unit]:
    units = []
    for s in seeds:
        for task in TASKS:
            minutes = (b["budget_minutes"] or {}).get(task)
            est = b["estimate_s"]["train"] or 60.0 * minutes
            for cur in CURRICULA:
                units.append(
                    Unit(
                        SYSTEM,
                        _train_name(task, cur, s),
                        s,
                        {"kind": "train", "task": task, "curriculum": cur, **b["train"], "budget_minutes": minutes},
                        estimate_s=est,
                    )
                )
            units.append(
                Unit(
                    SYSTEM,
                    f"analysis-{task}-s{s}",
                    s,
                    {"kind": "analysis", "task": task, **b["analysis"]},
                    deps=tuple(f"{SYSTEM}/{_train_name(task, c, s)}" for c in CURRICULA),
                    estimate_s=b["estimate_s"]["analysis"],
                )
            )
    return units


def run_unit(unit: Unit, folder: Path, ctx) -> None:
    c = dict(unit.config)
    kind = c.pop("kind")
    if kind == "train":
        from engramlab.timescales.curriculum import TrainConfig, train_curriculum

        train_curriculum(TrainConfig(seed=unit.seed, **c), folder / "run", progress=ctx.progress)
    elif kind == "analysis":
        from engramlab import io
        from engramlab.report.units import unit_dir
        from engramlab.timescales.analysis import AnalysisConfig, analyze_runs
        from engramlab.timescales.curriculum import list_checkpoints

        task = c.pop("task")
        root = folder.parents[2]
        runs = []
        for cur in CURRICULA:
            run = unit_dir(root, Unit(SYSTEM, _train_name(task, cur, unit.seed), unit.seed)) / "run"
            if list_checkpoints(run):
                runs.append(run)
        if not runs:  # neither curriculum solved its first N: nothing to analyse, and that is the result
            io.write_json(folder / "analysis.json", {"runs": [], "note": "no curriculum solved N = 2"})
            return
        analyze_runs(runs, AnalysisConfig(seed=unit.seed, **c), out=folder, progress=ctx.progress)
    else:
        raise ValueError(f"unknown timescales experiment kind {kind!r}")


# --------------------------------------------------------------------------------------- measures
def _summary(o: Outputs, task: str, cur: str, s: int) -> dict:
    return o.json(_train_name(task, cur, s), "run/summary.json")


def _max_n(task: str, cur: str):
    def measure(o: Outputs):
        return o.per_seed(lambda s: _summary(o, task, cur, s)["n_reached"] or 1)

    return measure


def _run(o: Outputs, task: str, cur: str, s: int) -> dict | None:
    a = o.json(f"analysis-{task}-s{s}", "analysis.json")
    return next((r for r in a["runs"] if r["curriculum"] == cur), None)


def _delta(cur: str, key: str):
    def measure(o: Outputs):
        def one(s):
            r = _run(o, "parity", cur, s)
            rows = [x for x in (r or {}).get("per_n", []) if x.get(key) is not None and math.isfinite(x[key])]
            return rows[-1][key] - rows[0][key] if len(rows) >= 2 else None

        return o.per_seed(one)

    return measure


def _ablation_long(cur: str):
    def measure(o: Outputs):
        def one(s):
            r = _run(o, "parity", cur, s)
            abl = (r or {}).get("ablation", {})
            return next(iter(abl.values()))["long"]["relative_mean"] if abl else None

        return o.per_seed(one)

    return measure


def _perturb_w(cur: str, eps: float = 0.215):
    def measure(o: Outputs):
        def one(s):
            r = _run(o, "parity", cur, s)
            pert = (r or {}).get("perturbation", {})
            if not pert:
                return None
            p = next(iter(pert.values()))["w_rec"]
            pts = [(abs(math.log(e / eps)), a) for e, a in zip(p["eps"], p["relative_accuracy"]) if e > 0]
            return min(pts)[1] if pts else None

        return o.per_seed(one)

    return measure


_CODE = "official code's committed results (shared notes 4.2-4.5)"

CLAIMS = [
    ClaimSpec(
        id="timescales.single_max_n",
        kind="baseline",
        claim="largest N solved, single-head curriculum (N-parity)",
        source="baseline curriculum",
        paper_value=35,
        paper_text=f"35 (33-37, {_CODE})",
        rule=None,
        unit="largest N solved (1 = none)",
        measure=_max_n("parity", "single"),
        experiment="train",
        figures=("max_n.png",),
    ),
    ClaimSpec(
        id="timescales.multi_max_n",
        claim="the multi-head curriculum solves larger N than the single-head one with the same training (N-parity)",
        source="abstract; max trained N",
        paper_value=101,
        paper_text=f"100-101 (the head cap) vs 35 ({_CODE})",
        rule={
            "op": ">=",
            "other": "timescales.single_max_n",
            "margin": 1.0,
            "partly": 0.0,
            "basis": "at least one N further than single-head; partly: as far",
        },
        unit="largest N solved (1 = none)",
        measure=_max_n("parity", "multi"),
        experiment="train",
        figures=("max_n.png",),
    ),
    ClaimSpec(
        id="timescales.dms_single_max_n",
        kind="baseline",
        claim="largest N solved, single-head (N-DMS)",
        source="baseline curriculum",
        paper_value=93,
        paper_text="≈93 (analysis ranges in the code)",
        rule=None,
        unit="largest N solved (1 = none)",
        measure=_max_n("dms", "single"),
        experiment="train",
        figures=("max_n.png",),
    ),
    ClaimSpec(
        id="timescales.dms_multi_max_n",
        claim="the multi-head curriculum solves larger N on N-DMS too",
        source="abstract (both tasks)",
        paper_value=100,
        paper_text="≈99-100 vs ≈93 (analysis ranges in the code)",
        rule={
            "op": ">=",
            "other": "timescales.dms_single_max_n",
            "margin": 1.0,
            "partly": 0.0,
            "basis": "at least one N further than single-head; partly: as far",
        },
        unit="largest N solved (1 = none)",
        measure=_max_n("dms", "multi"),
        experiment="train",
        figures=("max_n.png",),
    ),
    ClaimSpec(
        id="timescales.single_tau_grows",
        claim="single-head training grows the neurons' own timescale tau with N",
        source="abstract; Fig. tau vs N",
        paper_value=0.17,
        paper_text="mean tau 1.50 at N=2 -> 1.65-1.7 at N=30-32, after a dip to 1.44 at N≈13-15",
        rule={"op": ">", "value": 0.0, "basis": "mean tau at the largest solved N above that at the first"},
        unit="change of mean tau (last - first solved N)",
        measure=_delta("single", "tau_mean"),
        experiment="analysis",
        figures=("tau_vs_n.png",),
    ),
    ClaimSpec(
        id="timescales.single_tau_spread",
        claim="single-head training spreads tau: some neurons become slow",
        source="Fig. tau vs N (STD)",
        paper_value=0.7,
        paper_text="std of tau 0.3 -> 1.0-1.1 by N≈32",
        rule={"op": ">", "value": 0.0, "basis": "std of tau at the largest solved N above that at the first"},
        unit="change of std(tau)",
        measure=_delta("single", "tau_std"),
        experiment="analysis",
        figures=("tau_vs_n.png",),
    ),
    ClaimSpec(
        id="timescales.multi_tau_flat",
        claim="multi-head training keeps tau roughly constant as N grows",
        source="abstract; Fig. tau vs N",
        paper_value=-0.3,
        paper_text="mean tau 1.5 -> ≈1.2 at N=100 (falls)",
        rule={
            "op": "<=",
            "value": 0.05,
            "partly": 0.15,
            "basis": "mean tau does not rise by more than 0.05 (single-head rises by 0.17)",
        },
        unit="change of mean tau (last - first solved N)",
        measure=_delta("multi", "tau_mean"),
        experiment="analysis",
        figures=("tau_vs_n.png",),
    ),
    ClaimSpec(
        id="timescales.tau_net_grows",
        claim="multi-head networks build long timescales in the network: tau_net grows with N",
        source="abstract; Fig. tau_net vs N",
        paper_value=3.0,
        paper_text="tau_net ≈2 at N=2 -> ≈5 at N≈25 (noisy plateau 7-10 later)",
        rule={"op": ">", "value": 0.0, "basis": "mean tau_net at the largest analysed N above the first"},
        unit="change of mean tau_net (time steps)",
        measure=_delta("multi", "tau_net_mean"),
        experiment="analysis",
        figures=("tau_vs_n.png",),
    ),
    ClaimSpec(
        id="timescales.single_ablation_long",
        kind="baseline",
        claim="single-head: relative accuracy after ablating one of the 20 longest-tau neurons",
        source="baseline curriculum",
        paper_value=0.44,
        paper_text=f"0.44 at N=30 ({_CODE})",
        rule=None,
        unit="relative streaming accuracy",
        measure=_ablation_long("single"),
        experiment="analysis",
        figures=("ablation.png",),
    ),
    ClaimSpec(
        id="timescales.multi_ablation_robust",
        claim="multi-head networks are more robust to ablating a long-tau neuron",
        source="abstract ('more robust to ablations')",
        paper_value=0.99,
        paper_text=f"0.99 vs 0.44 at N=30 ({_CODE})",
        rule={
            "op": ">=",
            "other": "timescales.single_ablation_long",
            "margin": 0.1,
            "partly": 0.0,
            "basis": "at least 0.1 above single-head (the paper: +0.55); partly: not below",
        },
        unit="relative streaming accuracy",
        measure=_ablation_long("multi"),
        experiment="analysis",
        figures=("ablation.png",),
    ),
    ClaimSpec(
        id="timescales.single_perturb_w",
        kind="baseline",
        claim="single-head: relative accuracy with noise eps = 0.215 on W^R",
        source="baseline curriculum",
        paper_value=0.75,
        paper_text=f"0.75 at N=30 ({_CODE})",
        rule=None,
        unit="relative streaming accuracy",
        measure=_perturb_w("single"),
        experiment="analysis",
        figures=("perturbation.png",),
    ),
    ClaimSpec(
        id="timescales.multi_perturb_robust",
        claim="multi-head networks are more robust to perturbing the recurrent weights",
        source="abstract ('more robust to ... perturbations')",
        paper_value=0.96,
        paper_text=f"0.96 vs 0.75 at eps = 0.215, N=30 ({_CODE})",
        rule={
            "op": ">=",
            "other": "timescales.single_perturb_w",
            "margin": 0.1,
            "partly": 0.0,
            "basis": "at least 0.1 above single-head (the paper: +0.21); partly: not below",
        },
        unit="relative streaming accuracy",
        measure=_perturb_w("multi"),
        experiment="analysis",
        figures=("perturbation.png",),
    ),
]


def budgets(o: Outputs, device: str) -> dict:
    b = o.budget
    trains = [_train_name(t, c, s) for s in o.seeds for t in TASKS for c in CURRICULA]
    steps = [
        _summary(o, t, c, s)["steps"] for s in o.seeds for t in TASKS for c in CURRICULA if o.has(_train_name(t, c, s))
    ]
    return {
        "train": {
            "device": "cpu",
            "seconds": o.wall_s(trains),
            "neurons": b["train"]["n_neurons"],
            "steps_per_network": max(steps) if steps else None,
            "max_epochs": b["train"]["max_epochs"],
            "budget_minutes": b["budget_minutes"],
        },
        "analysis": {
            "device": "cpu",
            "seconds": o.wall_s([f"analysis-{t}-s{s}" for s in o.seeds for t in TASKS]),
            "ac_steps": b["analysis"]["ac_steps"],
        },
    }


# --------------------------------------------------------------------------------------- figures
def figures(o: Outputs, out: Path) -> list[dict]:
    import numpy as np

    from engramlab import io

    plt = C.plt()
    figs = []
    vals = {
        (t, c): [(_summary(o, t, c, s)["n_reached"] or 1) for s in o.seeds if o.has(_train_name(t, c, s))]
        for t in TASKS
        for c in CURRICULA
    }
    if any(vals.values()):
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        w = 0.38
        for j, c in enumerate(CURRICULA):
            m = [np.mean(vals[(t, c)]) if vals[(t, c)] else 0 for t in TASKS]
            lo = [m[i] - min(vals[(t, c)]) if vals[(t, c)] else 0 for i, t in enumerate(TASKS)]
            hi = [max(vals[(t, c)]) - m[i] if vals[(t, c)] else 0 for i, t in enumerate(TASKS)]
            ax.bar(np.arange(len(TASKS)) + (j - 0.5) * w, m, w, yerr=[lo, hi], capsize=4, label=f"{c}-head")
        ax.set_xticks(np.arange(len(TASKS)), ["N-parity", "N-DMS"])
        ax.set_ylabel("largest N solved")
        ax.set_title("largest N per curriculum and task (mean, range over seeds)")
        ax.legend()
        io.save_figure(fig, out / "max_n.png", bbox_inches="tight")
        figs.append({"file": "max_n.png", "caption": "Largest N solved by each curriculum on each task."})
    for task in TASKS:
        runs = [(s, c, _run(o, task, c, s)) for s in o.seeds if o.has(f"analysis-{task}-s{s}") for c in CURRICULA]
        runs = [(s, c, r) for s, c, r in runs if r is not None and r["per_n"]]
        if not runs:
            continue
        fig, ax = plt.subplots(1, 3, figsize=(14, 3.6))
        seen = set()
        for _s, c, r in runs:
            color = "C0" if c == "single" else "C1"
            lab = None if c in seen else f"{c}-head"
            seen.add(c)
            n = [x["n"] for x in r["per_n"]]
            ax[0].plot(n, [x["tau_mean"] for x in r["per_n"]], "o-", color=color, alpha=0.8, label=lab)
            ax[1].plot(n, [x["tau_std"] for x in r["per_n"]], "o-", color=color, alpha=0.8, label=lab)
            tn = [
                (x["n"], x["tau_net_mean"])
                for x in r["per_n"]
                if x.get("tau_net_mean") is not None and math.isfinite(x["tau_net_mean"])
            ]
            if tn:
                ax[2].plot(*zip(*tn), "o-", color=color, alpha=0.8, label=lab)
        for a, t in zip(ax, ("mean tau", "std tau", "mean tau_net (neurons with tau_net > 1)")):
            a.set_xlabel("N solved")
            a.set_title(t)
            if a.get_legend_handles_labels()[0]:
                a.legend(fontsize=8)
        fig.suptitle(f"N-{task}: timescales against N (one line per network)")
        name = "tau_vs_n.png" if task == "parity" else f"tau_vs_n_{task}.png"
        io.save_figure(fig, out / name, bbox_inches="tight")
        figs.append(
            {
                "file": name,
                "caption": f"N-{task}: single-neuron tau (mean, std) and network tau_net against the N solved.",
            }
        )
    first = next((s for s in o.seeds if o.has(f"analysis-parity-s{s}")), None)
    if first is not None:
        d = o.dir(f"analysis-parity-s{first}")
        for name, cap in (
            ("ablation.png", "Relative accuracy after ablating one of the 20 shortest- or longest-tau neurons"),
            ("perturbation.png", "Relative accuracy against noise on W^R and on tau"),
        ):
            if C.copy_figure(d / name, out / name):
                figs.append(
                    {
                        "file": name,
                        "caption": f"N-parity: {cap} (seed {first}, at the largest N both curricula solved).",
                    }
                )
    return figs


def tables(o: Outputs) -> list[dict]:
    rows = []
    for t in TASKS:
        for c in CURRICULA:
            per = [(_summary(o, t, c, s)["n_reached"] or 1) if o.has(_train_name(t, c, s)) else None for s in o.seeds]
            if any(v is not None for v in per):
                rows.append([f"N-{t}", f"{c}-head"] + ["—" if v is None else v for v in per])
    if not rows:
        return []
    return [
        {
            "title": "Largest N solved per network (1 = none)",
            "columns": ["task", "curriculum"] + [f"seed {s}" for s in o.seeds],
            "rows": rows,
        }
    ]


def notes(o: Outputs, extra: dict) -> list[str]:
    b = o.budget
    out = [
        "The paper trains 500-neuron networks for up to 1000 epochs of 600 steps (N reaches 35 single-head and "
        "101 multi-head); the budget here covers only the first part of that range, where the paper's tau dip "
        "(single-head) comes before its rise."
    ]
    if b["budget_minutes"]:
        out.append("Training stops on a wall-clock budget, so the N reached depends on the machine's speed.")
    return out
