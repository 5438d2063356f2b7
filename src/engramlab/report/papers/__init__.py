"""One module per paper: its claims table (facts from the paper), its budgets, its experiments and the
functions that turn the experiments' JSON outputs into measured values, figures and tables.

Each module defines ``SYSTEM``, ``TITLE``, ``PAPER``, ``SUMMARY``, ``BUDGETS`` ({"tiny", "quick",
"full"} -> settings), ``budget_text(budget)``, ``plan(budget, seeds, extra) -> [Unit]``,
``run_unit(unit, folder, ctx)``, ``CLAIMS`` (a list of ``ClaimSpec``), ``budgets(outputs, device)``,
``figures(outputs, folder)``, ``tables(outputs)`` and ``notes(outputs, extra)``. Adding a claim is one
``ClaimSpec`` row and its measurement function.

The layering rule: the system packages never import ``engramlab.report``; these modules import them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SYSTEMS = ("bdh", "astro", "hmmglm", "timescales")
MODES = ("tiny", "quick", "full")
_REQUIRED = (
    "SYSTEM",
    "TITLE",
    "PAPER",
    "SUMMARY",
    "BUDGETS",
    "budget_text",
    "plan",
    "run_unit",
    "CLAIMS",
    "budgets",
    "figures",
    "tables",
    "notes",
)


def get(system: str) -> ModuleType:
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    mod = importlib.import_module(f"engramlab.report.papers.{system}")
    missing = [a for a in _REQUIRED if not hasattr(mod, a)]
    if missing:  # pragma: no cover - a programming error in a paper module
        raise TypeError(f"engramlab.report.papers.{system} lacks {', '.join(missing)}")
    return mod
