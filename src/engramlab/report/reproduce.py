"""``engramlab reproduce``: run each paper's experiments, judge their claims, write one report.

    engramlab reproduce [--quick | --full] [--only bdh,astro,hmmglm,timescales] [--device auto]
                        [--seeds K] [--workers K] [--launcher local|slurm --partition P] --out DIR

Every experiment is a unit (system x configuration x seed, ``engramlab.report.units``) that writes
its own folder under ``DIR/units/`` and a done-marker last; rerunning the same command skips the
finished units, so an interrupted run resumes where it stopped. Then, per system, the claims table
(``engramlab.report.papers.<system>``) turns the units' JSON outputs into claim records
(``engramlab.report.claims``), and the report is written:

- ``DIR/<system>/claims.json`` and its figures (the layout of the committed ``docs/results/``),
- ``DIR/results.json``: every claim record, the settings, package versions, device and wall time,
- ``DIR/report.html`` (self-contained) and ``DIR/report.md`` (PNG files beside it).

``--quick`` (the default) gives every system real training at a small budget (about 15 minutes on
a 2-core CPU in all); ``--full`` runs the budgets the docs report. ``engramlab report SRC --out DIR``
renders existing ``SRC/<system>/claims.json`` files the same way without running anything.
"""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from engramlab import io
from engramlab.report import claims as cl
from engramlab.report import papers
from engramlab.report.render import write_report
from engramlab.report.units import Outputs, RunContext, check_existing, run_units, slurm_executor

SETTINGS_FILE = "reproduce.json"


def parse_only(text: str | None) -> list[str]:
    """``"bdh,astro"`` -> ["bdh", "astro"] (in the canonical order), with a clear error for unknown names."""
    if not text:
        return list(papers.SYSTEMS)
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in papers.SYSTEMS]
    if bad or not names:
        raise ValueError(f"unknown system(s) {bad or [text]} for --only; known: {', '.join(papers.SYSTEMS)}")
    return [s for s in papers.SYSTEMS if s in names]


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("engramlab", "torch", "numpy", "scipy", "matplotlib", "networkx", "jsonschema", "submitit", "tqdm"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def device_info(device: str) -> dict:
    import torch

    info = {
        "requested": device,
        "resolved": device,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    info["load_avg_at_start"] = list(load) if load else None
    info["summary"] = (f"{info['gpu']} (CUDA)" if "gpu" in info else f"CPU, {info['cpu_count']} cores") + (
        f", load average {load[0]:.1f} at the start" if load else ""
    )
    return info


def command_line(mode: str, systems: list[str], seeds: int, device: str, out: str, workers: int = 1) -> str:
    parts = ["engramlab reproduce", f"--{mode}"]
    if systems != list(papers.SYSTEMS):
        parts.append(f"--only {','.join(systems)}")
    parts.append(f"--seeds {seeds}")
    if device != "auto":
        parts.append(f"--device {device}")
    if workers > 1:
        parts.append(f"--workers {workers}")
    parts.append(f"--out {out}")
    return " ".join(parts)


def _check_out(out: Path, settings: dict, overwrite: bool) -> None:
    marker = out / SETTINGS_FILE
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not marker.is_file() and not overwrite:
        raise ValueError(
            f"--out {out} is a non-empty folder that no reproduce run wrote; choose another folder "
            "(or --overwrite to write into it)"
        )
    if marker.is_file() and not overwrite:
        old = io.read_json(marker)
        if old.get("mode") != settings["mode"]:
            raise ValueError(
                f"--out {out} holds a {old.get('mode')} run; this is a {settings['mode']} run. "
                "Use another --out folder, or --overwrite"
            )


def reproduce(
    out: str | Path,
    mode: str = "quick",
    only: list[str] | None = None,
    device: str = "auto",
    seeds: int = 3,
    workers: int = 1,
    launcher: str = "local",
    partition: str | None = None,
    threads: int | None = None,
    insula: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    executor: Any = None,
    publish: str | Path | None = None,
    log=print,
) -> dict:
    """Run (or resume) the experiments of ``only`` at ``mode`` and write the report into ``out``.

    Returns {"results": results.json content, "run": what the launcher did (ran / skipped / failed)}.
    ``executor``: a submitit executor to run the units on (tests pass LocalExecutor / DebugExecutor).
    ``publish``: also copy each system's claims.json and figures into ``publish/<system>/`` (the committed
    ``docs/results``); only for a complete ``full`` run.
    """
    from engramlab.train.engine import resolve_device

    t_start = time.perf_counter()
    if mode not in papers.MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(papers.MODES)}")
    systems = list(papers.SYSTEMS) if only is None else parse_only(",".join(only))
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be an integer >= 1, got {seeds!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be an integer >= 1, got {workers!r}")
    if launcher not in ("local", "slurm"):
        raise ValueError(f"--launcher must be local or slurm, got {launcher!r}")
    if launcher == "slurm" and executor is None and not partition:
        raise ValueError("--launcher slurm needs --partition NAME (the SLURM partition to submit to)")
    if publish is not None and mode != "full":
        raise ValueError(f"--publish writes the committed full-budget results; it needs --full, not --{mode}")
    if publish is not None and not overwrite:
        taken = [s for s in systems if (Path(publish) / s / "claims.json").exists()]
        if taken:
            raise ValueError(f"{publish} already holds claims of {', '.join(taken)}; add --overwrite to replace them")
    dev = str(resolve_device(device))
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers) if launcher == "local" else 1
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    seed_list = list(range(seeds))
    out = Path(out)
    cmd = command_line(mode, systems, seeds, device, str(out), workers)
    settings = {
        "mode": mode,
        "systems": systems,
        "seeds": seed_list,
        "device": dev,
        "workers": workers,
        "launcher": launcher,
        "partition": partition,
        "threads": threads,
    }
    _check_out(out, settings, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    dinfo = device_info(dev)

    extra: dict[str, Any] = {}
    if "hmmglm" in systems:
        extra["insula"] = papers.get("hmmglm").find_insula(insula)
    plans = {}
    for s in systems:
        mod = papers.get(s)
        plans[s] = mod.plan(mod.BUDGETS[mode], seed_list, extra)
    units = [u for s in systems for u in plans[s]]
    check_existing(out, units, overwrite)
    io.write_json(out / SETTINGS_FILE, {**settings, "command": cmd, "insula": extra.get("insula")})

    from engramlab.report.units import is_done

    todo = [u for u in units if not is_done(out, u)]
    est = sum(u.estimate_s for u in todo)
    par = workers if launcher == "local" else max(1, len(todo))
    log(
        f"reproduce ({mode}): {len(units)} experiments for {', '.join(systems)} on {dev}; {len(units) - len(todo)} "
        f"already done. Expected about {_duration(est / max(1, min(par, len(todo) or 1)))} "
        f"({_duration(est)} of experiments at one thread each, estimated from timings on a 2-core CPU"
        f"{'; the language models train faster on a GPU' if dev.startswith('cuda') else ''})."
    )

    ctx = RunContext(
        device=dev, threads=threads, progress=progress and workers == 1 and launcher == "local", extra=extra
    )
    if launcher == "slurm" and executor is None:
        gpus = 1 if dev.startswith("cuda") else 0
        longest = max([u.estimate_s for u in todo] or [60.0])
        executor = slurm_executor(
            out / "slurm", partition or "", timeout_min=max(10, int(3 * longest / 60)), cpus=threads, gpus=gpus
        )
    how = "submitit" if executor is not None else ("pool" if workers > 1 else "sequential")
    run = run_units(units, out, ctx, launcher=how, workers=workers, executor=executor, progress=progress)

    docs = {}
    for s in systems:
        docs[s] = build_system_doc(
            s,
            mode,
            out,
            plans[s],
            seed_list,
            dev,
            extra,
            cmd_for(s, mode, seeds, device, out),
            failed=[k for k in list(run.failed) + run.blocked if k.startswith(f"{s}/")],
        )
    loads = []
    for u in units:
        marker = out / "units" / u.system / u.name / "DONE.json"
        if marker.is_file():
            la = io.read_json(marker).get("load_avg")
            if la:
                loads.append(la[0])
    if loads:
        dinfo["load_avg_during"] = [min(loads), max(loads)]
        dinfo["summary"] = (
            dinfo["summary"].split(", load average")[0]
            + f", 1-min load average {min(loads):.1f}-{max(loads):.1f} at the ends of the experiments"
        )
    # systems an earlier run of this folder measured (e.g. `--only bdh` after a full run) stay in the report
    for s in papers.SYSTEMS:
        if s not in docs and (out / s / "claims.json").is_file():
            old = cl.read_system(out / s / "claims.json")
            if old["mode"] == mode:
                docs[s] = old
    shown = [s for s in papers.SYSTEMS if s in docs]
    wall = time.perf_counter() - t_start
    results = {
        "schema_version": cl.SCHEMA_VERSION,
        "mode": mode,
        "command": cmd,
        "settings": settings,
        "versions": versions(),
        "device": dinfo,
        "wall_s": wall,
        "experiments_s": sum(docs[s]["wall_s"] or 0.0 for s in shown),
        "units": {
            "ran": run.ran,
            "skipped": run.skipped,
            "failed": run.failed,
            "blocked": run.blocked,
            "wall_s": run.wall_s,
        },
        "systems": {s: docs[s] for s in shown},
        "claims": [c for s in shown for c in docs[s]["claims"]],
        "baselines": [c for s in shown for c in docs[s]["baselines"]],
    }
    cl.write_results(out / "results.json", results)
    write_report(out, results, [docs[s] for s in shown], {s: out / s for s in shown})
    log(f"report written to {out / 'report.html'} and {out / 'report.md'} ({wall:.0f} s)")
    if publish is not None:
        if run.failed or run.blocked:
            log(f"not published to {publish}: {len(run.failed) + len(run.blocked)} experiment(s) did not finish")
        else:
            for s in systems:
                publish_system(out / s, Path(publish) / s)
            log(f"published {', '.join(systems)} to {publish}")
    return {"results": results, "run": run.to_dict()}


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 7200 else f"{seconds / 60:.0f} min"


def publish_system(src: Path, dst: Path) -> None:
    """Copy one system's claims.json (validated) and the figures it names from ``src`` to ``dst``."""
    doc = cl.read_system(src / "claims.json")
    for f in doc["figures"]:
        io.atomic_write_bytes(dst / f["file"], (src / f["file"]).read_bytes())
    cl.write_system(dst / "claims.json", doc)


def cmd_for(system: str, mode: str, seeds: int, device: str, out: Path) -> str:
    return command_line(mode, [system], seeds, device, str(out))


def build_system_doc(
    system: str,
    mode: str,
    out: Path,
    units,
    seeds: list[int],
    device: str,
    extra: dict,
    command: str,
    failed: list[str] | None = None,
) -> dict:
    """Measure, judge and draw one system from its finished units; write ``out/<system>/claims.json``."""
    mod = papers.get(system)
    budget = mod.BUDGETS[mode]
    o = Outputs(out, units, seeds, budget)
    errors: dict[str, str] = {}
    records = cl.build_records(mod.CLAIMS, o, mod.budgets(o, device), command, errors)
    folder = out / system
    folder.mkdir(parents=True, exist_ok=True)
    figs = mod.figures(o, folder)
    names = {f["file"] for f in figs}
    for r in records:  # a claim lists only the figures that were drawn
        r.figures = [f for f in r.figures if f in names]
    claims, baselines = cl.split_records(r.to_dict() for r in records)
    notes = list(mod.notes(o, extra))
    if mode != "full":
        notes.insert(
            0,
            f"{mode.capitalize()} mode: verdicts at a small budget; the full budget is "
            f"{mod.budget_text(mod.BUDGETS['full'])}.",
        )
    doc = {
        "schema_version": cl.SCHEMA_VERSION,
        "system": system,
        "title": mod.TITLE,
        "paper": mod.PAPER,
        "summary": mod.SUMMARY,
        "mode": mode,
        "budget_text": mod.budget_text(budget),
        "full_budget_text": mod.budget_text(mod.BUDGETS["full"]),
        "command": command,
        "claims": claims,
        "baselines": baselines,
        "figures": figs,
        "tables": mod.tables(o),
        "notes": notes,
        "wall_s": o.wall_s([u.name for u in units]),
        "device": device,
        "config": io.to_jsonable(budget),
        "failed_units": failed or [],
        "versions": versions(),
    }
    cl.write_system(folder / "claims.json", doc)
    return doc


def render_existing(src: str | Path, out: str | Path, overwrite: bool = False, log=print) -> dict:
    """``engramlab report SRC --out DIR``: render SRC/<system>/claims.json (+ figures) without running anything."""
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise FileNotFoundError(f"results folder not found: {src}")
    found = [s for s in papers.SYSTEMS if (src / s / "claims.json").is_file()]
    if not found:
        raise FileNotFoundError(
            f"no <system>/claims.json in {src} (expected e.g. {src / 'bdh' / 'claims.json'}); "
            "make them with `engramlab reproduce --full --out DIR`"
        )
    if (out / "report.html").exists() and not overwrite and out.resolve() != src.resolve():
        raise ValueError(f"{out / 'report.html'} exists; use --overwrite to replace it")
    docs = [cl.read_system(src / s / "claims.json") for s in found]
    for d in docs:
        for f in d["figures"]:
            if not (src / d["system"] / f["file"]).is_file():
                raise FileNotFoundError(
                    f"{src / d['system'] / 'claims.json'} names figure {f['file']}, which is not in {src / d['system']}"
                )
    out.mkdir(parents=True, exist_ok=True)
    for d in docs:
        if (src / d["system"]).resolve() != (out / d["system"]).resolve():
            cl.write_system(out / d["system"] / "claims.json", d)
    cmd = f"engramlab report {src} --out {out}"
    results = {
        "schema_version": cl.SCHEMA_VERSION,
        "mode": "rendered",
        "command": cmd,
        "settings": {"source": str(src), "systems": found},
        "versions": docs[0].get("versions") or versions(),
        "device": {"summary": ", ".join(sorted({d["device"] for d in docs})) + " (as recorded)"},
        "wall_s": time.perf_counter() - t0,
        "experiments_s": sum(d["wall_s"] or 0.0 for d in docs),
        "systems": {d["system"]: d for d in docs},
        "claims": [c for d in docs for c in d["claims"]],
        "baselines": [c for d in docs for c in d["baselines"]],
    }
    cl.write_results(out / "results.json", results)
    write_report(out, results, docs, {d["system"]: src / d["system"] for d in docs})
    log(f"report written to {out / 'report.html'} ({time.perf_counter() - t0:.1f} s)")
    return results


def main_exit_code(res: dict) -> int:
    run = res["run"]
    return 1 if run["failed"] or run["blocked"] else 0


__all__ = ["build_system_doc", "parse_only", "render_existing", "reproduce"]
