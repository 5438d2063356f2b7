"""The per-paper claims tables and plans: well-formed, matched baselines, nothing measured from nothing."""

from __future__ import annotations

import pytest

from engramlab.report import claims as cl
from engramlab.report import papers
from engramlab.report.units import Outputs


@pytest.mark.parametrize("system", papers.SYSTEMS)
def test_claims_table_is_well_formed(system):
    mod = papers.get(system)
    ids = [s.id for s in mod.CLAIMS]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(system + ".") for i in ids)
    assert sum(s.kind == "claim" for s in mod.CLAIMS) >= 4
    for s in mod.CLAIMS:
        if s.rule is not None and "other" in s.rule:
            other = next(o for o in mod.CLAIMS if o.id == s.rule["other"])  # the other is in the same table
            assert other.unit == s.unit, (s.id, "compares values of different units")
        assert s.source and s.paper_text and s.unit
        if s.rule is not None:
            assert s.rule.get("basis"), f"{s.id}: say where the threshold comes from"


@pytest.mark.parametrize("system", papers.SYSTEMS)
@pytest.mark.parametrize("mode", papers.MODES)
def test_plans_are_consistent(system, mode):
    mod = papers.get(system)
    b = mod.BUDGETS[mode]
    units = mod.plan(b, [0, 1, 2], {})
    keys = [u.key for u in units]
    assert len(keys) == len(set(keys))
    assert all(d in keys for u in units for d in u.deps)
    assert all(u.estimate_s > 0 for u in units)
    assert mod.budget_text(b)
    # seeded experiments exist for every seed
    seeded = {u.name.rsplit("-s", 1)[0] for u in units if u.seed is not None}
    for name in seeded:
        assert {u.seed for u in units if u.name.rsplit("-s", 1)[0] == name} == {0, 1, 2}


def test_quick_plan_fits_the_budget_estimate():
    total = sum(
        u.estimate_s for s in papers.SYSTEMS for u in papers.get(s).plan(papers.get(s).BUDGETS["quick"], [0, 1, 2], {})
    )
    assert total <= 15 * 60


@pytest.mark.parametrize("system", papers.SYSTEMS)
def test_nothing_run_means_nothing_measured(system, tmp_path):
    mod = papers.get(system)
    units = mod.plan(mod.BUDGETS["tiny"], [0, 1], {})
    o = Outputs(tmp_path, units, [0, 1], mod.BUDGETS["tiny"])
    recs = cl.build_records(mod.CLAIMS, o, mod.budgets(o, "cpu"), "cmd")
    assert all(r.measured["mean"] is None for r in recs)
    assert all(r.verdict in (None, "not attempted") for r in recs)
    assert mod.figures(o, tmp_path) == [] and mod.tables(o) == []


def _params(name, sets):
    from engramlab.train.registry import get_model_spec
    from engramlab.train.run import build_configs

    cfg, _ = build_configs(name, "small", {k: str(v) for k, v in sets.items()})
    return get_model_spec(name).model_cls(cfg).num_params()


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_baselines_are_matched_in_parameters(mode):
    b = papers.get("bdh").BUDGETS[mode]
    bdh, gpt = _params("bdh", b["bdh"]), _params("gpt", b["gpt"])
    assert abs(gpt - bdh) / bdh < 0.05  # docs/bdh.md: 458,752 vs 443,008
    a = papers.get("astro").BUDGETS[mode]["lm"]
    from engramlab.report.papers.astro import _lif

    astro, lif = _params("astro", a["astro"]), _params("astro", _lif(a["astro"], a["lif_width"]))
    assert abs(lif - astro) / astro < 0.03


def test_insula_unit_only_when_the_recording_is_given(tmp_path):
    mod = papers.get("hmmglm")
    assert [u.name for u in mod.plan(mod.BUDGETS["quick"], [0], {})] == ["synthetic-s0"]
    rec = tmp_path / "insula.mat"
    rec.write_bytes(b"x")
    units = mod.plan(mod.BUDGETS["quick"], [0], {"insula": str(rec)})
    assert [u.name for u in units] == ["synthetic-s0", "insula"] and units[1].config["path"] == str(rec)
    assert mod.find_insula(str(rec)) == str(rec)
    with pytest.raises(FileNotFoundError, match="--insula"):
        mod.find_insula(str(tmp_path / "missing.mat"))
