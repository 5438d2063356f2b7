"""The claims contract: judge() on hand-computed cases, rule checks, the schema on write and read."""

import copy
import json
import math

import pytest

from engramlab.report import claims as cl


def m(mean):
    return {"mean": mean}


@pytest.mark.parametrize(
    "mean, verdict", [(0.08, "agrees"), (0.10, "agrees"), (0.15, "partly"), (0.20, "partly"), (0.25, "not reproduced")]
)
def test_threshold_rule_le(mean, verdict):
    assert cl.judge(m(mean), {"op": "<=", "value": 0.10, "partly": 0.20}) == verdict


@pytest.mark.parametrize(
    "op, mean, verdict",
    [
        ("<", 0.10, "partly"),  # not < 0.10, but < 0.20
        ("<", 0.0999, "agrees"),
        (">", 0.5, "not reproduced"),  # the bound itself fails a strict op (no partly given)
        (">", 0.5001, "agrees"),
        (">=", 0.5, "agrees"),
        (">=", 0.45, "partly"),
        (">=", 0.39, "not reproduced"),
    ],
)
def test_threshold_rule_ops(op, mean, verdict):
    rule = {"op": op, "value": 0.10 if op == "<" else 0.5}
    if op == "<":
        rule["partly"] = 0.20
    if op == ">=":
        rule["partly"] = 0.4
    assert cl.judge(m(mean), rule) == verdict


def test_other_rule_uses_the_other_mean_plus_margin():
    rule = {"op": "<=", "other": "bdh.gpt_val_loss", "margin": 0.032, "partly": 0.10}
    others = {"bdh.gpt_val_loss": m(1.98)}
    assert cl.judge(m(2.00), rule, others) == "agrees"  # 2.00 <= 1.98 + 0.032 = 2.012
    assert cl.judge(m(2.05), rule, others) == "partly"  # <= 2.08
    assert cl.judge(m(2.10), rule, others) == "not reproduced"
    # the DESIGN example: BDH at most 0.03 above GPT
    assert cl.judge(m(1.95), rule, others) == "agrees"


def test_other_rule_with_negative_margin_and_ge():
    rule = {"op": ">=", "other": "x.base", "margin": -0.01, "partly": -0.05}
    others = {"x.base": m(0.90)}
    assert cl.judge(m(0.895), rule, others) == "agrees"  # >= 0.89
    assert cl.judge(m(0.86), rule, others) == "partly"  # >= 0.85
    assert cl.judge(m(0.84), rule, others) == "not reproduced"


@pytest.mark.parametrize(
    "measured, others",
    [
        (None, {}),
        (m(None), {}),
        (m(math.nan), {}),
        (m(math.inf), {}),
        (m(1.0), {}),  # the other claim is missing
        (m(1.0), {"x.base": m(None)}),  # the other claim measured nothing
    ],
)
def test_nothing_measured_is_not_attempted(measured, others):
    rule = (
        {"op": "<=", "other": "x.base", "margin": 0.0}
        if measured and measured.get("mean") == 1.0
        else {"op": "<=", "value": 1.0}
    )
    assert cl.judge(measured, rule, others) == "not attempted"


def test_baseline_has_no_verdict():
    assert cl.judge(m(1.0), None) is None


def test_worst_seed_rule_judges_the_least_favourable_seed():
    measured = cl.summarize([0.99, 0.937, 0.97], "ratio")  # mean 0.9657
    ge = {"op": ">=", "value": 0.95, "partly": 0.85}
    assert cl.judge(measured, ge) == "agrees"  # the mean
    assert cl.judge(measured, {**ge, "of": "worst"}) == "partly"  # seed 1: 0.937 < 0.95
    assert cl.judge(measured, {**ge, "of": "mean"}) == "agrees"
    le = {"op": "<=", "value": 0.1, "partly": 0.2, "of": "worst"}
    assert cl.judge(cl.summarize([0.05, 0.25, None], "x"), le) == "not reproduced"  # the largest, 0.25
    assert cl.judge(cl.summarize([0.05, 0.08], "x"), le) == "agrees"
    with pytest.raises(cl.ClaimsError, match="schema"):
        cl.check_rule({**ge, "of": "median"}, "x.y")
    from engramlab.report.render import fmt_rule

    assert fmt_rule({**ge, "of": "worst"}, {}) == "every seed ≥ 0.95; partly ≥ 0.85"


@pytest.mark.parametrize(
    "rule, match",
    [
        ({"op": "<=", "value": 0.1, "partly": 0.05}, "looser"),
        ({"op": ">", "value": 0.5, "partly": 0.6}, "looser"),
        ({"op": ">=", "other": "a.b", "margin": 0.1, "partly": 0.2}, "looser"),
        ({"op": "==", "value": 1.0}, "op"),
        ({"op": "<", "value": 1.0, "other": "a.b"}, "schema"),
        ({"op": "<"}, "schema"),
        ({"op": "<", "value": 1.0, "margin": 0.1}, "schema"),
    ],
)
def test_bad_rules_are_clear_errors(rule, match):
    with pytest.raises(cl.ClaimsError, match=match):
        cl.check_rule(rule, "x.y")


def test_summarize_mean_and_spread_of_the_finite_values():
    s = cl.summarize([1.0, None, 3.0, float("nan")], "u")
    assert s["mean"] == 2.0 and s["spread"] == [1.0, 3.0] and s["n_seeds"] == 2
    assert s["values"] == [1.0, None, 3.0, None]
    assert "2 of 4" in s["note"]
    assert cl.summarize([], "u")["mean"] is None


def _spec(id_, measure, rule=None, kind="claim"):
    return cl.ClaimSpec(
        id=id_,
        claim="c",
        source="s",
        paper_value=None,
        paper_text="t",
        rule=rule,
        unit="u",
        measure=measure,
        experiment="e",
        kind=kind,
    )


def test_build_records_resolves_other_and_records_measurement_errors():
    def boom(o):
        raise FileNotFoundError("experiment x/y has not finished")

    specs = [
        _spec("x.base", lambda o: [1.0, 1.2], kind="baseline"),
        _spec("x.better", lambda o: [1.0, 1.1], {"op": "<=", "other": "x.base", "margin": 0.0}),  # 1.05 <= 1.1
        _spec("x.missing", boom, {"op": ">", "value": 0.0}),
    ]
    errors = {}
    recs = {r.id: r for r in cl.build_records(specs, None, {"e": {"device": "cpu", "seconds": 1.0}}, "cmd", errors)}
    assert recs["x.base"].verdict is None and recs["x.base"].measured["mean"] == pytest.approx(1.1)
    assert recs["x.better"].verdict == "agrees"
    assert recs["x.missing"].verdict == "not attempted"
    assert "has not finished" in recs["x.missing"].measured["note"] and "x.missing" in errors
    cl.check_records([r.to_dict() for r in recs.values()])


def test_build_records_refuses_duplicates_and_unknown_other():
    with pytest.raises(cl.ClaimsError, match="duplicate"):
        cl.build_records([_spec("x.a", lambda o: [1.0], {"op": "<", "value": 2.0})] * 2, None, {}, "cmd")
    with pytest.raises(cl.ClaimsError, match="not a claim of this table"):
        cl.build_records(
            [_spec("x.a", lambda o: [1.0], {"op": "<", "other": "x.nope", "margin": 0.0})], None, {}, "cmd"
        )


def test_spec_kind_and_rule_must_agree():
    with pytest.raises(cl.ClaimsError, match="baseline has no rule"):
        _spec("x.a", lambda o: [], None, kind="claim")
    with pytest.raises(cl.ClaimsError, match="baseline has no rule"):
        _spec("x.a", lambda o: [], {"op": "<", "value": 1.0}, kind="baseline")


def _record(**kw):
    r = {
        "id": "bdh.density_x",
        "system": "bdh",
        "kind": "claim",
        "claim": "x is sparse",
        "source": "§4.1",
        "paper": {"value": 0.05, "text": "~5%"},
        "measured": cl.summarize([0.251, 0.247, 0.262], "fraction"),
        "rule": {"op": "<=", "value": 0.10, "partly": 0.20},
        "verdict": "not reproduced",
        "budget": {"device": "cpu", "seconds": 1840, "params": 458752},
        "command": "engramlab reproduce --only bdh --full",
        "figures": ["density.png"],
    }
    r.update(kw)
    return r


def test_a_hand_written_verdict_is_refused():
    cl.check_records([_record()])
    with pytest.raises(cl.ClaimsError, match="never written by hand"):
        cl.check_records([_record(verdict="agrees")])


@pytest.mark.parametrize(
    "change, match",
    [
        ({"verdict": "maybe"}, "verdict"),
        ({"id": "Density X"}, "id"),
        ({"paper": {"value": 0.05}}, "paper"),
        ({"extra": 1}, "Additional properties"),
    ],
)
def test_schema_errors_name_the_place(change, match):
    with pytest.raises(cl.ClaimsError, match=match):
        cl.check_records([_record(**change)])


def _system_doc(records, baselines=()):
    return {
        "schema_version": cl.SCHEMA_VERSION,
        "system": "bdh",
        "title": "t",
        "paper": "p",
        "summary": "s",
        "mode": "quick",
        "budget_text": "b",
        "full_budget_text": "f",
        "command": "c",
        "claims": records,
        "baselines": list(baselines),
        "figures": [{"file": "density.png", "caption": "c"}],
        "tables": [],
        "notes": [],
        "wall_s": 1.0,
        "device": "cpu",
        "config": {},
    }


def test_system_file_round_trip_and_tampering(tmp_path):
    p = tmp_path / "claims.json"
    cl.write_system(p, _system_doc([_record()]))
    assert cl.read_system(p)["claims"][0]["verdict"] == "not reproduced"
    doc = json.loads(p.read_text())
    doc["claims"][0]["measured"]["mean"] = 0.05  # a measured value edited by hand: the verdict no longer follows
    p.write_text(json.dumps(doc))
    with pytest.raises(cl.ClaimsError, match="judge gives 'agrees'"):
        cl.read_system(p)
    with pytest.raises(FileNotFoundError, match="claims file not found"):
        cl.read_system(tmp_path / "nope.json")


def test_write_refuses_an_invalid_document_and_writes_nothing(tmp_path):
    bad = _system_doc([_record(verdict="agrees")])
    with pytest.raises(cl.ClaimsError):
        cl.write_system(tmp_path / "claims.json", bad)
    assert not (tmp_path / "claims.json").exists()
    other_system = _system_doc([_record(id="astro.x", system="astro")])
    with pytest.raises(cl.ClaimsError, match="another system"):
        cl.write_system(tmp_path / "claims.json", copy.deepcopy(other_system))
    assert not (tmp_path / "claims.json").exists()


def test_baselines_have_their_own_list_and_every_listed_claim_has_a_verdict(tmp_path):
    base = _record(id="bdh.gpt_loss", kind="baseline", rule=None, verdict=None)
    claim = _record(rule={"op": "<=", "other": "bdh.gpt_loss", "margin": 0.0}, verdict="agrees")
    assert cl.split_records([base, claim]) == ([claim], [base])
    doc = cl.read_system(cl.write_system(tmp_path / "claims.json", _system_doc([claim], [base])))
    assert [r["id"] for r in cl.all_records(doc)] == ["bdh.density_x", "bdh.gpt_loss"]  # the rule found its other
    assert all(r["verdict"] in cl.VERDICTS for r in doc["claims"])
    for mixed in (_system_doc([claim, base]), _system_doc([], [claim, base])):
        with pytest.raises(cl.ClaimsError, match="another kind"):
            cl.write_system(tmp_path / "mixed.json", mixed)
    assert not (tmp_path / "mixed.json").exists()
    with pytest.raises(cl.ClaimsError, match="not in the file"):  # the baseline it compares with is missing
        cl.write_system(tmp_path / "mixed.json", _system_doc([claim]))
