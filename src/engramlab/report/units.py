"""Experiments as independent, resumable units, and the launchers that run them.

One unit is one system x one configuration x one seed (``bdh/lm-bdh-s0``). It runs into its own
folder ``ROOT/units/<system>/<name>/`` and, when it has finished, writes ``DONE.json`` there
last and atomically (its configuration, seed and wall time). A rerun skips every unit whose
marker exists with the same configuration; a folder without a marker is the leftover of an
interrupted run and is started again from scratch, unless the system declares the unit resumable
(``resumable(unit)`` in its paper module, e.g. the HMM-GLM protocol families, which keep every
finished protocol) and the folder's ``STARTED.json`` has the same configuration: then the folder is
handed back to the unit, which continues it. A finished unit whose configuration differs
(another mode in the same folder) is an error unless ``overwrite`` is given.

Units may depend on other units (an analysis on its trainings). The launchers run every unit whose
dependencies are done:

- ``sequential`` (default): one after the other in plan order (each as soon as its dependencies are
  done), in this process, with per-experiment progress;
- ``pool``: a local ``concurrent.futures.ProcessPoolExecutor`` (spawn context) of ``workers``;
- ``submitit``: any ``submitit`` executor (``AutoExecutor`` for SLURM, ``LocalExecutor`` /
  ``DebugExecutor`` in the tests), in waves of ready units.

Every unit seeds everything it draws from its seed and sets its torch thread count, so any
launcher gives the same numbers (timing measurements excepted).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engramlab import io

DONE = "DONE.json"
STARTED = "STARTED.json"  # written when a unit starts: its configuration and how many attempts it has had


@dataclass(frozen=True)
class Unit:
    """One experiment: ``system`` x ``name`` (configuration and seed) with its settings."""

    system: str
    name: str
    seed: int | None
    config: dict = field(default_factory=dict, hash=False, compare=False)
    deps: tuple[str, ...] = ()
    estimate_s: float = 60.0  # expected wall seconds on a 2-core CPU (for ETA and cluster time limits)

    @property
    def key(self) -> str:
        return f"{self.system}/{self.name}"

    def config_hash(self) -> str:
        text = json.dumps(io.to_jsonable({"config": self.config, "seed": self.seed}), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class RunContext:
    """What every unit is told: where it runs and how."""

    device: str = "cpu"
    threads: int = 1
    progress: bool = False
    extra: dict = field(default_factory=dict)  # system options (e.g. a recording path)


def unit_dir(root: str | Path, unit: Unit) -> Path:
    return Path(root) / "units" / unit.system / unit.name


def is_done(root: str | Path, unit: Unit) -> bool:
    marker = unit_dir(root, unit) / DONE
    if not marker.is_file():
        return False
    try:
        info = io.read_json(marker)
    except ValueError:
        return False
    return info.get("config_hash") == unit.config_hash()


def check_existing(root: str | Path, units: Sequence[Unit], overwrite: bool = False) -> None:
    """Refuse finished units of another configuration in ``root`` (or remove them with overwrite)."""
    stale = []
    for u in units:
        marker = unit_dir(root, u) / DONE
        if marker.is_file():
            try:
                info = io.read_json(marker)
            except ValueError:
                info = {}
            if info.get("config_hash") != u.config_hash():
                stale.append(u)
    if stale and not overwrite:
        names = ", ".join(u.key for u in stale[:4]) + (" ..." if len(stale) > 4 else "")
        raise ValueError(
            f"{root} holds finished experiments with another configuration ({names}); use another --out "
            "folder, or --overwrite to discard them"
        )
    for u in stale:
        shutil.rmtree(unit_dir(root, u))


def _system_module(system: str):
    return importlib.import_module(f"engramlab.report.papers.{system}")


def execute_unit(unit: Unit, root: str, ctx: RunContext) -> dict:
    """Run one unit into its folder and write its done-marker last; returns the marker's content.

    Top-level (picklable) so that process pools and submitit can call it.
    """
    import torch

    folder = unit_dir(root, unit)
    if is_done(root, unit):
        return io.read_json(folder / DONE)
    module = _system_module(unit.system)
    attempt = 1
    if folder.exists():  # an interrupted earlier attempt: continue it if it can be, else start again
        before = _started(folder)
        if getattr(module, "resumable", lambda u: False)(unit) and before.get("config_hash") == unit.config_hash():
            attempt = int(before.get("attempt", 1)) + 1
        else:
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    io.write_json(folder / STARTED, {"config_hash": unit.config_hash(), "attempt": attempt})
    torch.set_num_threads(max(1, int(ctx.threads)))
    t0 = time.perf_counter()
    c0 = time.process_time()
    module.run_unit(unit, folder, ctx)
    info = {
        "key": unit.key,
        "seed": unit.seed,
        "config": unit.config,
        "config_hash": unit.config_hash(),
        "wall_s": time.perf_counter() - t0,  # of the last attempt (a resumed unit: see "attempt")
        "cpu_s": time.process_time() - c0,
        "attempt": attempt,
        "threads": ctx.threads,
        "device": ctx.device,
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    io.write_json(folder / DONE, info)
    return info


def _started(folder: Path) -> dict:
    try:
        return io.read_json(folder / STARTED)
    except (OSError, ValueError):
        return {}


def _safe_execute(unit: Unit, root: str, ctx: RunContext) -> dict:
    try:
        return {"ok": True, "info": execute_unit(unit, root, ctx)}
    except Exception as e:  # reported by the launcher; the other units go on
        return {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=6)}


@dataclass
class RunReport:
    """What a launcher did: units run now, skipped (already done), failed, and blocked by a failure."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)
    wall_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _order(units: Sequence[Unit]) -> list[Unit]:
    keys = {u.key for u in units}
    for u in units:
        missing = [d for d in u.deps if d not in keys]
        if missing:
            raise ValueError(f"unit {u.key} depends on {missing}, which are not in the plan")
    return list(units)


def run_units(
    units: Sequence[Unit],
    root: str | Path,
    ctx: RunContext,
    launcher: str = "sequential",
    workers: int = 1,
    executor: Any = None,
    progress: bool = True,
    on_done: Callable[[Unit, dict], None] | None = None,
) -> RunReport:
    """Run every unit not yet done, respecting dependencies; never raises for a failing unit.

    launcher: "sequential", "pool" (``workers`` processes) or "submitit" (``executor`` given).
    A unit whose dependency failed is not started ("blocked").
    """
    from tqdm.auto import tqdm

    units = _order(units)
    root = str(root)
    rep = RunReport()
    todo: list[Unit] = []
    for u in units:
        if is_done(root, u):
            rep.skipped.append(u.key)
        else:
            todo.append(u)
    done = set(rep.skipped)
    bar = tqdm(
        total=len(units),
        initial=len(rep.skipped),
        desc="reproduce",
        unit="exp",
        disable=not progress,
        dynamic_ncols=True,
    )

    def finish(u: Unit, res: dict) -> None:
        if res["ok"]:
            done.add(u.key)
            rep.ran.append(u.key)
            rep.wall_s[u.key] = res["info"]["wall_s"]
            if on_done is not None:
                on_done(u, res["info"])
        else:
            rep.failed[u.key] = res["error"]
            tqdm.write(f"reproduce: {u.key} failed: {res['error']}\n{res.get('traceback', '')}")
        bar.update(1)

    def ready(pending: list[Unit]) -> tuple[list[Unit], list[Unit]]:
        now, later = [], []
        for u in pending:
            if any(d in rep.failed or d in rep.blocked for d in u.deps):
                rep.blocked.append(u.key)
                bar.update(1)
            elif all(d in done for d in u.deps):
                now.append(u)
            else:
                later.append(u)
        return now, later

    pending = list(todo)
    try:
        if launcher == "sequential":  # in plan order, each unit as soon as its dependencies are done
            while pending:
                now, _ = ready(pending)
                if not now:
                    break
                u = now[0]
                bar.set_postfix_str(u.key)
                finish(u, _safe_execute(u, root, ctx))
                pending = [p for p in pending if p is not u and p.key not in rep.blocked]
        elif launcher == "pool":
            import concurrent.futures as cf
            import multiprocessing as mp
            from concurrent.futures.process import BrokenProcessPool

            sub = RunContext(ctx.device, ctx.threads, False, ctx.extra)  # no nested bars from workers
            with cf.ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn")) as pool:
                running: dict[cf.Future, Unit] = {}
                broken = None
                while (pending or running) and broken is None:
                    now, pending = ready(pending)
                    try:
                        for u in now:
                            running[pool.submit(_safe_execute, u, root, sub)] = u
                    except BrokenProcessPool as e:  # a worker died (killed, out of memory)
                        broken = e
                        pending = [u for u in now if u not in running.values()] + pending
                        break
                    if not running:
                        break
                    finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                    for f in finished:
                        u = running.pop(f)
                        try:
                            res = f.result()
                        except Exception as e:  # the worker process itself died
                            broken = broken or e
                            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                        finish(u, res)
                if broken is not None:
                    for u in list(running.values()):
                        finish(u, {"ok": False, "error": f"worker pool broken: {broken}"})
                    running.clear()
        elif launcher == "submitit":
            if executor is None:
                raise ValueError("launcher 'submitit' needs a submitit executor")
            sub = RunContext(ctx.device, ctx.threads, False, ctx.extra)
            while pending:
                now, pending = ready(pending)
                if not now:
                    break
                jobs = [(u, executor.submit(_safe_execute, u, root, sub)) for u in now]
                for u, job in jobs:
                    try:
                        res = job.result()
                    except Exception as e:  # the job itself died (time limit, node failure)
                        res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                    finish(u, res)
        else:
            raise ValueError(f"unknown launcher {launcher!r}; expected sequential, pool or submitit")
    finally:
        bar.close()
    for u in pending:  # dependencies never became ready
        if u.key not in rep.blocked:
            rep.blocked.append(u.key)
    return rep


def slurm_executor(folder: str | Path, partition: str, timeout_min: int, cpus: int, gpus: int = 0):
    """A submitit executor for SLURM (one task per unit)."""
    try:
        import submitit
    except ImportError:  # pragma: no cover - submitit is a dependency
        raise ValueError("--launcher slurm needs the submitit package: pip install submitit") from None
    if not partition:
        raise ValueError("--launcher slurm needs --partition NAME (the SLURM partition to submit to)")
    try:
        ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    except RuntimeError as e:  # no srun/sbatch on this machine
        raise ValueError(
            f"--launcher slurm: SLURM is not available here ({e}); run on a SLURM login node, or use --launcher local"
        ) from None
    params = {
        "slurm_partition": partition,
        "timeout_min": int(timeout_min),
        "cpus_per_task": int(cpus),
        "nodes": 1,
        "tasks_per_node": 1,
    }
    if gpus:
        params["gpus_per_node"] = int(gpus)
    ex.update_parameters(**params)
    return ex


# ------------------------------------------------------------------------------------------ outputs
class Outputs:
    """Read access to the finished units of one system, for the measurement functions."""

    def __init__(self, root: str | Path, units: Sequence[Unit], seeds: Sequence[int], budget: dict):
        self.root = Path(root)
        self.units = {u.name: u for u in units}
        self.seeds = list(seeds)
        self.budget = budget
        self._cache: dict[Path, Any] = {}

    def has(self, name: str) -> bool:
        u = self.units.get(name)
        return u is not None and is_done(self.root, u)

    def dir(self, name: str) -> Path:
        u = self.units.get(name)
        if u is None:
            raise FileNotFoundError(f"no experiment {name!r} in this plan")
        if not is_done(self.root, u):
            raise FileNotFoundError(f"experiment {u.key} has not finished")
        return unit_dir(self.root, u)

    def json(self, name: str, file: str) -> Any:
        p = self.dir(name) / file
        if p not in self._cache:
            self._cache[p] = io.read_json(p)
        return self._cache[p]

    def per_seed(self, fn: Callable[[int], float | None]) -> list[float | None]:
        """[fn(seed) for each seed], None where that seed's output is missing."""
        out = []
        for s in self.seeds:
            try:
                out.append(fn(s))
            except FileNotFoundError:  # that seed's experiment did not run or did not finish
                out.append(None)
        return out

    def wall_s(self, names: Sequence[str]) -> float | None:
        total, any_ = 0.0, False
        for n in names:
            if self.has(n):
                total += float(io.read_json(self.dir(n) / DONE)["wall_s"])
                any_ = True
        return total if any_ else None
