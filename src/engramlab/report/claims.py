"""The claims contract (DESIGN.md, "Claims"): how a paper's result becomes a verdict.

A **claim record** says what a paper reports, what this project measured, and the rule that turns
the two into a verdict::

    {"id": "bdh.density_x", "system": "bdh", "kind": "claim",
     "claim": "x activations of a trained BDH-GPU are about 5% non-zero",
     "source": "paper section 4.1",
     "paper": {"value": 0.05, "text": "~5%"},
     "measured": {"values": [0.251, 0.247, 0.262], "mean": 0.253, "spread": [0.247, 0.262],
                  "unit": "fraction", "n_seeds": 3},
     "rule": {"op": "<=", "value": 0.10, "partly": 0.20},
     "verdict": "not reproduced",
     "budget": {"device": "cpu", "seconds": 1840, "params": 458752, "tokens": 3300000},
     "command": "engramlab reproduce --only bdh --full",
     "figures": ["density.png"]}

- ``verdict`` is computed by :func:`judge` from ``measured.mean`` and ``rule`` (and, for a rule
  with ``other``, from the other record's ``measured.mean``); it is never written by hand, and
  :func:`check_records` refuses a file whose verdicts do not follow from its numbers.
- A rule compares with a threshold (``value``) or with another record's mean plus ``margin``
  (``{"op": "<=", "other": "bdh.gpt_val_loss", "margin": 0.03}``: at most 0.03 above GPT's).
  ``partly`` is the looser bound (with ``other``: the looser margin). Ops ``<``, ``<=``, ``>``, ``>=``.
- ``kind: "baseline"`` marks a reference measurement that claims compare against (GPT's loss,
  the LIF ablation's accuracy). It has no rule and no verdict (both ``null``), so a file keeps it
  in its own list, ``baselines``, beside ``claims``: every record in ``claims`` has one of the four
  verdicts, and a baseline is never counted as a claim.

The paper's value and the rule's thresholds are facts from the papers, kept in one table per system
(``engramlab.report.papers.<system>.CLAIMS``, a list of :class:`ClaimSpec`); measured values come
only from the run. Every record, every system file (``claims.json``) and the whole
``results.json`` is validated against the JSON schemas below on write and on read.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from engramlab import io

VERDICTS = ("agrees", "partly", "not reproduced", "not attempted")
OPS = ("<", "<=", ">", ">=")
KINDS = ("claim", "baseline")
SCHEMA_VERSION = 1

# ------------------------------------------------------------------------------------------ schema
_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}

RULE_SCHEMA: dict = {
    "type": "object",
    "required": ["op"],
    "additionalProperties": False,
    "properties": {
        "op": {"enum": list(OPS)},
        "value": _NUM,
        "other": {"type": "string", "pattern": r"^[a-z0-9_]+\.[a-z0-9_]+$"},
        "margin": _NUM,
        "partly": _NUM,
        "of": {"enum": ["mean", "worst"]},
        "basis": {"type": "string"},
    },
    "oneOf": [
        {"required": ["value"], "not": {"anyOf": [{"required": ["other"]}, {"required": ["margin"]}]}},
        {"required": ["other"], "not": {"required": ["value"]}},
    ],
}

CLAIM_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "engramlab claim record",
    "type": "object",
    "required": [
        "id",
        "system",
        "kind",
        "claim",
        "source",
        "paper",
        "measured",
        "rule",
        "verdict",
        "budget",
        "command",
        "figures",
    ],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z0-9_]+\.[a-z0-9_]+$"},
        "system": {"type": "string", "pattern": r"^[a-z0-9_]+$"},
        "kind": {"enum": list(KINDS)},
        "claim": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "paper": {
            "type": "object",
            "required": ["value", "text"],
            "additionalProperties": False,
            "properties": {"value": _NUM_OR_NULL, "text": {"type": "string", "minLength": 1}},
        },
        "measured": {
            "type": "object",
            "required": ["values", "mean", "spread", "unit", "n_seeds"],
            "additionalProperties": False,
            "properties": {
                "values": {"type": "array", "items": _NUM_OR_NULL},
                "mean": _NUM_OR_NULL,
                "spread": {"oneOf": [{"type": "null"}, {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}]},
                "unit": {"type": "string"},
                "n_seeds": {"type": "integer", "minimum": 0},
                "note": {"type": "string"},
            },
        },
        "rule": {"oneOf": [{"type": "null"}, RULE_SCHEMA]},
        "verdict": {"oneOf": [{"type": "null"}, {"enum": list(VERDICTS)}]},
        "budget": {
            "type": "object",
            "required": ["device", "seconds"],
            "properties": {"device": {"type": "string"}, "seconds": _NUM_OR_NULL},
        },
        "command": {"type": "string", "minLength": 1},
        "figures": {"type": "array", "items": {"type": "string"}},
    },
}

FIGURE_SCHEMA: dict = {
    "type": "object",
    "required": ["file", "caption"],
    "additionalProperties": False,
    "properties": {"file": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+\.png$"}, "caption": {"type": "string"}},
}

TABLE_SCHEMA: dict = {
    "type": "object",
    "required": ["title", "columns", "rows"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string"},
        "columns": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "rows": {"type": "array", "items": {"type": "array"}},
        "note": {"type": "string"},
    },
}

SYSTEM_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "engramlab claims.json (one system)",
    "type": "object",
    "required": [
        "schema_version",
        "system",
        "title",
        "paper",
        "summary",
        "mode",
        "budget_text",
        "full_budget_text",
        "command",
        "claims",
        "baselines",
        "figures",
        "tables",
        "notes",
        "wall_s",
        "device",
        "config",
    ],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "system": {"type": "string"},
        "title": {"type": "string"},
        "paper": {"type": "string"},
        "summary": {"type": "string"},
        "mode": {"enum": ["tiny", "quick", "full"]},
        "budget_text": {"type": "string"},
        "full_budget_text": {"type": "string"},
        "command": {"type": "string"},
        "claims": {"type": "array", "items": CLAIM_SCHEMA},
        "baselines": {"type": "array", "items": CLAIM_SCHEMA},
        "figures": {"type": "array", "items": FIGURE_SCHEMA},
        "tables": {"type": "array", "items": TABLE_SCHEMA},
        "notes": {"type": "array", "items": {"type": "string"}},
        "wall_s": _NUM_OR_NULL,
        "device": {"type": "string"},
        "config": {"type": "object"},
        "failed_units": {"type": "array", "items": {"type": "string"}},
        "versions": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
    },
}

RESULTS_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "engramlab results.json (the whole report)",
    "type": "object",
    "required": [
        "schema_version",
        "mode",
        "command",
        "settings",
        "versions",
        "device",
        "wall_s",
        "systems",
        "claims",
        "baselines",
    ],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "mode": {"enum": ["tiny", "quick", "full", "rendered"]},
        "command": {"type": "string"},
        "settings": {"type": "object"},
        "versions": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "device": {"type": "object"},
        "wall_s": _NUM_OR_NULL,
        "experiments_s": _NUM_OR_NULL,
        "units": {"type": "object"},
        "systems": {"type": "object", "additionalProperties": SYSTEM_SCHEMA},
        "claims": {"type": "array", "items": CLAIM_SCHEMA},
        "baselines": {"type": "array", "items": CLAIM_SCHEMA},
    },
}


class ClaimsError(ValueError):
    """A claim record, claims.json or results.json that breaks the contract."""


def _validate(obj: Any, schema: dict, what: str) -> None:
    v = jsonschema.Draft202012Validator(schema)
    errors = sorted(v.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:5]:
            where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
            lines.append(f"  at {where}: {e.message}")
        more = f"\n  ... and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise ClaimsError(f"{what} does not follow the claims schema:\n" + "\n".join(lines) + more)


# ------------------------------------------------------------------------------------------ judge
def _compare(op: str, a: float, b: float) -> bool:
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    raise ClaimsError(f"unknown rule op {op!r}; expected one of {', '.join(OPS)}")


def check_rule(rule: dict, claim_id: str = "?") -> None:
    """A rule's shape and that ``partly`` is looser than the main bound (clear errors)."""
    _validate(rule, RULE_SCHEMA, f"rule of {claim_id}")
    main = rule.get("margin", 0.0) if "other" in rule else rule["value"]
    if "partly" in rule:
        looser = rule["partly"] >= main if rule["op"] in ("<", "<=") else rule["partly"] <= main
        if not looser:
            raise ClaimsError(
                f"rule of {claim_id}: partly={rule['partly']} must be looser than the main bound {main} "
                f"for op {rule['op']!r} ({'>=' if rule['op'] in ('<', '<=') else '<='} it)"
            )


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def judge(measured: dict | None, rule: dict | None, others: dict[str, dict] | None = None) -> str | None:
    """The verdict of a claim: ``agrees``, ``partly``, ``not reproduced`` or ``not attempted``.

    measured: the record's ``measured`` ({"mean": ...}); rule: its ``rule``; others: claim id ->
    that record's ``measured`` (needed when the rule names ``other``). A missing or non-finite mean
    (nothing measured), or a missing ``other``, gives ``not attempted``. A baseline (rule None)
    has no verdict: None. ``rule["of"] == "worst"`` judges the least favourable seed instead of the
    mean (the smallest value for ``>``/``>=``, the largest for ``<``/``<=``): a claim that must
    hold for every seed.
    """
    if rule is None:
        return None
    check_rule(rule)
    mean = None if measured is None else measured.get("mean")
    if not _finite(mean):
        return "not attempted"
    if rule.get("of") == "worst":
        vals = [v for v in (measured.get("values") or []) if _finite(v)]
        mean = (min if rule["op"] in (">", ">=") else max)(vals) if vals else mean
    op = rule["op"]
    if "other" in rule:
        other = (others or {}).get(rule["other"])
        ref = None if other is None else other.get("mean")
        if not _finite(ref):
            return "not attempted"
        bound = ref + rule.get("margin", 0.0)
        loose = ref + rule["partly"] if "partly" in rule else None
    else:
        bound = rule["value"]
        loose = rule.get("partly")
    if _compare(op, mean, bound):
        return "agrees"
    if loose is not None and _compare(op, mean, loose):
        return "partly"
    return "not reproduced"


# ------------------------------------------------------------------------------------------ records
def summarize(values: Sequence[float | None], unit: str, note: str | None = None) -> dict:
    """``measured`` from per-seed values: mean and [min, max] spread of the finite ones."""
    vals = [None if v is None or not _finite(float(v)) else float(v) for v in values]
    ok = [v for v in vals if v is not None]
    out = {
        "values": vals,
        "mean": statistics.fmean(ok) if ok else None,
        "spread": [min(ok), max(ok)] if ok else None,
        "unit": unit,
        "n_seeds": len(ok),
    }
    if note:
        out["note"] = note
    elif len(ok) < len(vals):
        out["note"] = f"{len(vals) - len(ok)} of {len(vals)} runs gave no value"
    return out


Outputs = Any  # engramlab.report.units.Outputs (kept loose to avoid an import cycle)


@dataclass
class ClaimSpec:
    """One row of a system's claims table: what the paper says and how it is measured here.

    measure(outputs) -> one value per seed (None where that run gave none). ``experiment`` names
    the group of units whose budget the claim reports; ``deterministic=False`` marks timing
    claims (they differ between runs and machines by nature).
    """

    id: str
    claim: str
    source: str
    paper_value: float | None
    paper_text: str
    rule: dict | None
    unit: str
    measure: Callable[[Outputs], list[float | None]]
    experiment: str
    figures: tuple[str, ...] = ()
    kind: str = "claim"
    deterministic: bool = True

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ClaimsError(f"claim {self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        if (self.rule is None) != (self.kind == "baseline"):
            raise ClaimsError(f"claim {self.id}: a baseline has no rule and a claim needs one")
        if self.rule is not None:
            check_rule(self.rule, self.id)

    @property
    def system(self) -> str:
        return self.id.split(".", 1)[0]


@dataclass
class Claim:
    """One claim record (the JSON object of the module docstring)."""

    id: str
    system: str
    kind: str
    claim: str
    source: str
    paper: dict
    measured: dict
    rule: dict | None
    verdict: str | None
    budget: dict
    command: str
    figures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return io.to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> Claim:
        _validate(d, CLAIM_SCHEMA, f"claim record {d.get('id', '?')!r}")
        return cls(**d)


def build_records(
    specs: Iterable[ClaimSpec],
    outputs: Outputs,
    budgets: dict[str, dict],
    command: str,
    measure_errors: dict[str, str] | None = None,
) -> list[Claim]:
    """Measure every spec on ``outputs`` and judge it; baselines first so ``other`` rules resolve.

    budgets: experiment name -> budget dict. A measurement that raises is recorded as nothing
    measured (its error text goes in ``measured.note`` and ``measure_errors``).
    """
    specs = list(specs)
    ids = [s.id for s in specs]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ClaimsError(f"duplicate claim ids {sorted(dup)}")
    measured: dict[str, dict] = {}
    for s in specs:
        try:
            values = list(s.measure(outputs))
            measured[s.id] = summarize(values, s.unit)
        except Exception as e:  # a missing unit output: nothing measured, said so
            msg = f"{type(e).__name__}: {e}"
            if measure_errors is not None:
                measure_errors[s.id] = msg
            measured[s.id] = summarize([], s.unit, note=f"not measured ({msg})")
    records = []
    for s in specs:
        if s.rule is not None and "other" in s.rule and s.rule["other"] not in measured:
            raise ClaimsError(
                f"rule of {s.id} names other={s.rule['other']!r}, which is not a claim of this table ({', '.join(ids)})"
            )
        verdict = judge(measured[s.id], s.rule, measured)
        records.append(
            Claim(
                id=s.id,
                system=s.system,
                kind=s.kind,
                claim=s.claim,
                source=s.source,
                paper={"value": s.paper_value, "text": s.paper_text},
                measured=measured[s.id],
                rule=s.rule,
                verdict=verdict,
                budget=budgets.get(s.experiment, {"device": "cpu", "seconds": None}),
                command=command,
                figures=list(s.figures),
            )
        )
    return records


def check_records(records: Iterable[dict], where: str = "claims") -> None:
    """Schema of every record, unique ids, and that every verdict follows from measured + rule."""
    records = list(records)
    for r in records:
        _validate(r, CLAIM_SCHEMA, f"{where}: claim record {r.get('id', '?')!r}")
    ids = [r["id"] for r in records]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ClaimsError(f"{where}: duplicate claim ids {dup}")
    by_id = {r["id"]: r["measured"] for r in records}
    for r in records:
        if (r["rule"] is None) != (r["kind"] == "baseline"):
            raise ClaimsError(
                f"{where}: {r['id']} is a {r['kind']} with rule {r['rule']!r}; "
                "a claim needs a rule and a baseline has none"
            )
        if r["rule"] is not None:
            check_rule(r["rule"], r["id"])
            if "other" in r["rule"] and r["rule"]["other"] not in by_id:
                raise ClaimsError(
                    f"{where}: rule of {r['id']} names other={r['rule']['other']!r}, which is not in the file"
                )
        expected = judge(r["measured"], r["rule"], by_id)
        if r["verdict"] != expected:
            raise ClaimsError(
                f"{where}: verdict {r['verdict']!r} of {r['id']} does not follow from its measured value "
                f"and rule (judge gives {expected!r}); verdicts are computed, never written by hand"
            )


# ------------------------------------------------------------------------------------------ files
def split_records(records: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """(claims, baselines) of a list of record dicts, in their order: the two lists of a file."""
    records = list(records)
    return [r for r in records if r["kind"] == "claim"], [r for r in records if r["kind"] == "baseline"]


def all_records(doc: dict) -> list[dict]:
    """Every record of a claims.json / results.json document: its claims, then its baselines."""
    return doc["claims"] + doc["baselines"]


def _check_lists(doc: dict, where: str) -> None:
    for key, kind in (("claims", "claim"), ("baselines", "baseline")):
        wrong = [r["id"] for r in doc[key] if r["kind"] != kind]
        if wrong:
            raise ClaimsError(f"{where}: {key} holds records of another kind than {kind!r}: {wrong}")
    check_records(all_records(doc), where)


def validate_system(doc: dict, where: str = "claims.json") -> dict:
    _validate(doc, SYSTEM_SCHEMA, where)
    _check_lists(doc, where)
    wrong = [r["id"] for r in all_records(doc) if r["system"] != doc["system"]]
    if wrong:
        raise ClaimsError(f"{where}: records {wrong} belong to another system than {doc['system']!r}")
    return doc


def validate_results(doc: dict, where: str = "results.json") -> dict:
    _validate(doc, RESULTS_SCHEMA, where)
    for name, sysdoc in doc["systems"].items():
        validate_system(sysdoc, f"{where} systems/{name}")
    _check_lists(doc, where)
    return doc


def write_system(path: str | Path, doc: dict) -> Path:
    doc = io.to_jsonable(doc)
    validate_system(doc, str(path))
    return io.write_json(path, doc)


def read_system(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"claims file not found: {p}")
    return validate_system(io.read_json(p), str(p))


def write_results(path: str | Path, doc: dict) -> Path:
    doc = io.to_jsonable(doc)
    validate_results(doc, str(path))
    return io.write_json(path, doc)


def read_results(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"results file not found: {p}")
    return validate_results(io.read_json(p), str(p))
