"""The family's below-target diagnosis and the training-data study (hmmglm.family / hmmglm.datasize), and the
claims measures that read them (report/papers/hmmglm)."""

from __future__ import annotations

import pytest
import torch

from engramlab.hmmglm.datasize import fit_rows, n_free_parameters, run_datasize, select_runs
from engramlab.hmmglm.family import below_target_diagnosis, run_protocol
from engramlab.hmmglm.models import HMMGLM, FitConfig
from engramlab.hmmglm.simulate import protocol_family


def _run(name, ratio, train_excess, test_ll, true_test_ll, S=2, N=10, n_train=2, T=500, true_acc=0.9):
    return {
        "protocol": {"name": name, "seed": 0, "n_states": S, "n_neurons": N, "n_train": n_train, "n_time_bins": T},
        "true_state_accuracy": true_acc,
        "true_test_ll_per_bin_neuron": true_test_ll,
        "models": {
            "hmmglm": {
                "state_accuracy_ratio": ratio,
                "train_ll_minus_truth_per_bin_neuron": train_excess,
                "test_ll_per_bin_neuron": test_ll,
            }
        },
    }


def test_below_target_diagnosis_on_hand_built_runs():
    runs = [
        _run("a", 0.80, 0.0020, -0.505, -0.500),  # below, above the truth on training data
        _run("b", 0.90, -0.0010, -0.520, -0.510),  # below, under the truth (a stuck fit)
        _run("c", 0.949, 0.0030, -0.402, -0.400, S=3, N=20, n_train=4, T=1000),  # below (just)
        _run("d", 0.95, 0.0010, -0.601, -0.600),  # at: exactly the target counts as met
        _run("e", 1.01, 0.0005, -0.700, -0.697),
    ]
    d = below_target_diagnosis(runs, "hmmglm")
    b, a = d["below"], d["at"]
    assert b["n"] == 3 and a["n"] == 2
    assert b["fit_above_truth"] == pytest.approx(2 / 3)
    assert a["fit_above_truth"] == 1.0
    assert b["test_ll_gap"] == pytest.approx((-0.005 - 0.010 - 0.002) / 3)
    assert a["test_ll_gap"] == pytest.approx((-0.001 - 0.003) / 2)
    # k/(2n): S=2, N=10: k = 200 + 10 + 2 = 212, n = 1000 bins x 10 neurons; S=3, N=20: k = 1200 + 20 + 6
    w2, w3 = 212 / (2 * 1000 * 10), 1226 / (2 * 4000 * 20)
    assert b["excess_over_wilks"] == pytest.approx((0.0020 / w2 - 0.0010 / w2 + 0.0030 / w3) / 3)
    empty = below_target_diagnosis(runs[3:], "hmmglm")["below"]
    assert empty == {"n": 0, "fit_above_truth": None, "test_ll_gap": None, "excess_over_wilks": None}


def test_free_parameters_are_the_plain_models_own():
    for S, N in ((2, 3), (4, 7)):
        m = HMMGLM(S, N)
        learned = sum(p.numel() for p in m.parameters())  # weights and biases
        assert n_free_parameters(S, N) == learned + S * (S - 1)  # + the free transition probabilities


def test_select_runs_keeps_identifiable_runs_below_the_target():
    def run(name, true_acc, **ratios):
        return {
            "protocol": {"name": name},
            "true_state_accuracy": true_acc,
            "models": {k: {"state_accuracy_ratio": q} for k, q in ratios.items()},
        }

    fam = {
        "runs": [
            run("p00", 0.90, hmmglm=0.7),
            run("p01", 0.80, hmmglm=0.5),  # not identifiable
            run("p02", 0.95, hmmglm=0.99),  # at the target
            run("p03", 0.85, hmmglm=0.99, onehot=0.94),
        ]
    }
    assert select_runs(fam, 0.95, 0.85) == ["p00", "p03"]
    assert select_runs(fam, 0.95, 0.0) == ["p00", "p01", "p03"]


def _tiny_family():
    return {"n_protocols": 2, "train_bins": 400, "test_bins": 400, "max_neurons": 10}


@pytest.fixture(scope="module")
def tiny_study():
    torch.set_num_threads(1)
    fit = FitConfig(n_epochs=2, m_steps=2)
    variants = {"strong": {"model": "gaussian", "settings": {"prior_std": 0.1}}}
    res = run_datasize(
        None, 0, ["p01"], factors=(1, 3), models=("hmmglm", "gaussian"), variants=variants, fit=fit, **_tiny_family()
    )
    return res, fit


def test_datasize_factor_one_is_the_family_run_and_larger_factors_add_training_trials(tiny_study):
    res, fit = tiny_study
    (run,) = res["runs"]
    f = _tiny_family()
    spec = {s.name: s for s in protocol_family(f.pop("n_protocols"), **f)}["p01"]
    fam = run_protocol(spec, 0, models=("hmmglm", "gaussian"), default_fit=fit)
    assert run["true_state_accuracy"] == fam["true_state_accuracy"]
    assert run["true_test_ll_per_bin_neuron"] == pytest.approx(fam["true_test_ll_per_bin_neuron"])
    bins = spec.n_train * spec.n_time_bins
    for kind in ("hmmglm", "gaussian"):
        ((_, one),) = fit_rows(res, kind, 1)
        assert one["train_bins"] == bins
        assert one["state_accuracy"] == fam["models"][kind]["state_accuracy"]
        assert one["test_ll_per_bin_neuron"] == pytest.approx(fam["models"][kind]["test_ll_per_bin_neuron"])
        ((_, three),) = fit_rows(res, kind, 3)
        assert three["train_bins"] == 3 * bins
        assert three["wilks_excess_per_bin_neuron"] == pytest.approx(one["wilks_excess_per_bin_neuron"] / 3)
        assert three["state_accuracy_ratio"] == pytest.approx(three["state_accuracy"] / run["true_state_accuracy"])
    ((_, strong),) = fit_rows(res, "gaussian", variant="strong")
    assert strong["factor"] == 1 and strong["train_bins"] == bins
    assert run["n_extra_trials"] == 2 * spec.n_train and fit_rows(res, "onehot") == []


def test_datasize_refuses_bad_arguments():
    fam = _tiny_family()
    with pytest.raises(ValueError, match=r"protocols \['p07'\] are not in the family"):
        run_datasize(None, 0, ["p07"], **fam)
    with pytest.raises(ValueError, match="factors must be integers >= 1"):
        run_datasize(None, 0, ["p00"], factors=(0, 2), **fam)
    with pytest.raises(ValueError, match="variant 'x' must be a dict with 'model'"):
        run_datasize(None, 0, ["p00"], variants={"x": {"model": "glm"}}, **fam)


class _Outputs:
    """The part of report.units.Outputs the measures use, over hand-built unit files."""

    def __init__(self, files: dict, seeds, budget=None):
        self.files, self.seeds, self.budget = files, list(seeds), budget or {}

    def has(self, name):
        return any(n == name for n, _ in self.files)

    def json(self, name, file):
        if (name, file) not in self.files:
            raise FileNotFoundError(name)
        return self.files[(name, file)]

    def per_seed(self, fn):
        out = []
        for s in self.seeds:
            try:
                out.append(fn(s))
            except FileNotFoundError:
                out.append(None)
        return out


def test_claims_measures_read_the_diagnosis_and_the_datasize_units():
    from engramlab.report.papers import hmmglm as paper

    runs0 = [_run("a", 0.8, 0.002, -0.51, -0.50), _run("b", 0.97, 0.001, -0.60, -0.598)]
    runs1 = [_run("a", 0.6, -0.001, -0.53, -0.50), _run("b", 0.7, 0.003, -0.61, -0.60)]
    fits = [
        {"model": "hmmglm", "variant": None, "factor": 1, "state_accuracy_ratio": 0.7},
        {"model": "hmmglm", "variant": None, "factor": 4, "state_accuracy_ratio": 0.96},
        {"model": "gaussian", "variant": "v", "factor": 1, "state_accuracy_ratio": 0.5},
    ]
    fits2 = [{**f, "state_accuracy_ratio": f["state_accuracy_ratio"] + 0.02} for f in fits]
    ds = {"config": {"factors": [1, 2, 4]}, "runs": [{"fits": fits}, {"fits": fits2}]}
    files = {
        ("synthetic-s0", "family/family.json"): {"runs": runs0},
        ("synthetic-s1", "family/family.json"): {"runs": runs1},
        ("datasize-s0", "datasize.json"): ds,
    }
    o = _Outputs(files, [0, 1])
    assert paper._diagnosis("hmmglm", "below", "fit_above_truth")(o) == [1.0, 0.5]
    assert paper._diagnosis("hmmglm", "below", "test_ll_gap")(o) == pytest.approx([-0.01, -0.02])
    assert paper._diagnosis("hmmglm", "at", "test_ll_gap")(o) == [pytest.approx(-0.002), None]
    assert paper._datasize_min("hmmglm")(o) == [0.96, None]  # seed 1's unit did not run
    assert paper._datasize_min("hmmglm", 1)(o) == [0.7, None]
    assert paper._datasize_min("gaussian", variant="v")(o) == [0.5, None]
    assert paper._datasize_min("gaussian")(o) == [None, None]  # no such rows: nothing measured


def test_family_claims_read_the_4x_family_and_the_diagnosis_the_1x_family():
    from engramlab.report.papers import hmmglm as paper

    small = [_run("a", 0.8, 0.002, -0.51, -0.50), _run("b", 0.97, 0.001, -0.60, -0.598)]
    large = [_run("a", 0.96, 0.001, -0.505, -0.50), _run("b", 0.99, 0.0005, -0.599, -0.598)]
    files = {
        ("synthetic-s0", "family/family.json"): {"runs": small},
        ("family4x-s0", "family/family.json"): {"runs": large},
    }
    o = _Outputs(files, [0], budget={"family_4x": {"n_protocols": 2}})
    assert paper._family_ratio_min("hmmglm")(o) == [0.96]
    assert paper._family_ratio_min("hmmglm", "1x")(o) == [0.8]
    assert paper._family_ratio_min("hmmglm", "4x")(o) == [None]  # the 4x family is the target: reported there
    assert paper._family_n_below("hmmglm")(o) == [0]
    assert paper._diagnosis("hmmglm", "below", "fit_above_truth")(o) == [1.0]  # the 1x run "a" (0.8)
    # a budget with one family: the family claims read the synthetic unit's, the 1x records stay empty
    one = _Outputs({k: v for k, v in files.items() if k[0] == "synthetic-s0"}, [0])
    assert paper._family_ratio_min("hmmglm")(one) == [0.8]
    assert paper._family_n_below("hmmglm")(one) == [1]
    assert paper._family_ratio_min("hmmglm", "1x")(one) == [None]
    # the seed's 4x unit missing: nothing measured for it
    assert paper._family_ratio_min("hmmglm")(_Outputs(dict([next(iter(files.items()))]), [0], o.budget)) == [None]


def test_family_unit_runs_the_family_at_its_own_sizes(tmp_path):
    from engramlab.io import read_json
    from engramlab.report.papers import hmmglm as paper
    from engramlab.report.units import RunContext, Unit

    fam = {"n_protocols": 1, "train_bins": 600, "test_bins": 200, "bins_per_sn": 20, "max_neurons": 10}
    cfg = {"kind": "family", "fit": {"n_epochs": 1}, "reference": {}, "family": {**fam, "fit": {"n_epochs": 1}}}
    folder = tmp_path / "family4x-s0"
    folder.mkdir()
    paper.run_unit(Unit("hmmglm", "family4x-s0", 0, cfg), folder, RunContext(threads=1))
    out = read_json(folder / "family" / "family.json")
    assert out["sizes"]["train_bins"] == 600 and out["sizes"]["bins_per_sn"] == 20 and out["n_runs"] == 1
    p = out["runs"][0]["protocol"]
    want = max(600, 20 * p["n_states"] * p["n_neurons"])  # protocol_family: whole trials of T bins, at least that
    assert p["n_train"] * p["n_time_bins"] >= want and (p["n_train"] - 1) * p["n_time_bins"] < want
    assert set(out["runs"][0]["models"]) == {"glm", "hmmglm", "gaussian", "onehot"}


def test_family_target_split_by_the_generators_own_accuracy():
    from engramlab.report.papers import hmmglm as paper

    runs = [
        _run("a", 0.97, 0.001, -0.5, -0.5, true_acc=0.9),
        _run("b", 0.96, 0.001, -0.5, -0.5, true_acc=0.85),  # at the bound: identifiable
        _run("c", 0.74, 0.001, -0.5, -0.5, true_acc=0.63),
    ]
    budget = {"family_4x": {"min_true_accuracy": 0.85}}
    o = _Outputs({("family4x-s0", "family/family.json"): {"runs": runs}}, [0], budget)
    assert paper._family_low_snr_ratio("hmmglm")(o) == [0.74]
    assert paper._family_n_unidentifiable(o) == [1]
    assert paper._family_ratio_min("hmmglm")(o) == [0.74]  # the whole family keeps every run
    o2 = _Outputs({("family4x-s0", "family/family.json"): {"runs": runs[:2]}}, [0], budget)
    assert paper._family_low_snr_ratio("hmmglm")(o2) == [None] and paper._family_n_unidentifiable(o2) == [0]
    # screened without replacement: the screening accuracy decides, not the test-trial one
    screened = [{**runs[0], "identifiability": 0.8}, {**runs[1], "identifiability": 0.86}, runs[2]]
    o3 = _Outputs({("family4x-s0", "family/family.json"): {"runs": screened}}, [0], budget)
    assert paper._family_low_snr_ratio("hmmglm")(o3) == [0.74] and paper._family_n_unidentifiable(o3) == [2]


def test_family_claims_read_the_8x_family_with_its_low_snr_runs_set_apart():
    from engramlab.report.papers import hmmglm as paper

    kept = [_run("a", 0.97, 0.001, -0.5, -0.5, true_acc=0.9), _run("d", 0.955, 0.001, -0.5, -0.5, true_acc=0.88)]
    apart = [_run("c", 0.74, 0.001, -0.5, -0.5, true_acc=0.63), _run("e", 0.81, 0.001, -0.5, -0.5, true_acc=0.7)]
    four = [_run("a", 0.93, 0.001, -0.5, -0.5, true_acc=0.9), _run("c", 0.6, 0.001, -0.5, -0.5, true_acc=0.63)]
    f8 = {"runs": kept, "low_snr_runs": apart, "sizes": {"replace_low_snr": True}}
    budget = {"family_8x": {"min_true_accuracy": 0.85, "n_protocols": 2}, "family_4x": {"min_true_accuracy": 0.85}}
    files = {("family8x-s0", "family/family.json"): f8, ("family4x-s0", "family/family.json"): {"runs": four}}
    o = _Outputs(files, [0], budget)
    assert paper._family_ratio_min("hmmglm")(o) == [0.955]  # the identifiable protocols only
    assert paper._family_n_below("hmmglm")(o) == [0]
    assert paper._family_low_snr_ratio("hmmglm")(o) == [0.74]  # the runs set apart
    assert paper._family_n_unidentifiable(o) == [2]
    assert paper._family_ratio_min("hmmglm", "4x")(o) == [0.6]  # the 4x family keeps its low-SNR run
    assert [paper._family_unit(o, 0, w) for w in ("target", "4x", "1x")] == [
        "family8x-s0",
        "family4x-s0",
        "synthetic-s0",
    ]


def test_family_over_n_10_50_judges_the_identifiable_runs_of_all_its_shards_and_counts_the_rest():
    from engramlab.report.papers import hmmglm as paper

    runs = [
        {**_run("p01", 0.97, 0.001, -0.5, -0.5), "identifiability": 0.9},
        {**_run("p03", 0.955, 0.001, -0.5, -0.5), "identifiability": 0.85},  # at the bound: identifiable
        {**_run("p04", 0.70, 0.001, -0.5, -0.5), "identifiability": 0.8},  # reported apart
    ]
    budget = {"family_wide": {"min_true_accuracy": 0.85, "shards": [["p01", "p03"], ["p04"]]}}
    files = {
        ("familywide-p01-p03-s0", "family/family.json"): {"runs": runs[:2]},
        ("familywide-p04-s0", "family/family.json"): {"runs": runs[2:]},
        ("familywide-p01-p03-s1", "family/family.json"): {"runs": runs[:2]},  # seed 1 lacks its p04 shard
    }
    o = _Outputs(files, [0, 1], budget)
    assert paper._wide_ratio_min("hmmglm")(o) == [0.955, None]  # a seed counts once every shard has finished
    assert paper._wide_n_low_snr(o) == [1, None]
    only_low = {
        ("familywide-p01-p03-s0", "family/family.json"): {"runs": []},
        **{k: files[k] for k in list(files)[1:2]},
    }
    none_ok = _Outputs(only_low, [0], budget)
    assert paper._wide_ratio_min("hmmglm")(none_ok) == [None] and paper._wide_n_low_snr(none_ok) == [1]
    # the spot check without shards: one unit per seed, added to the family's runs
    both = {**budget, "family_wide_45": {"min_true_accuracy": 0.85, "protocols": ["p20"]}}
    extra = {
        ("familywide45-s0", "family/family.json"): {
            "runs": [{**_run("p20", 0.96, 0.001, -0.5, -0.5), "identifiability": 0.95}]
        }
    }
    o45 = _Outputs({**files, **extra}, [0], both)
    assert paper._wide_ratio_min("hmmglm")(o45) == [0.955] and paper._wide_n_low_snr(o45) == [1]
    no_budget = _Outputs(files, [0], {})
    assert paper._wide_ratio_min("hmmglm")(no_budget) == [None] and paper._wide_n_low_snr(no_budget) == [None]


def test_sharded_family_plans_one_unit_per_shard_and_seed_with_the_cost_model_estimate():
    from engramlab.hmmglm.simulate import protocol_family
    from engramlab.report.papers import hmmglm as paper

    full = paper.BUDGETS["full"]
    units = {u.name: u for u in paper.plan(full, [0, 1, 2])}
    shards = full["family_wide"]["shards"]
    names = sorted(n for n in units if n.startswith("familywide-"))
    assert names == sorted(f"familywide-{'-'.join(sh)}-s{s}" for sh in shards for s in (0, 1, 2))
    # the shards partition the 20 protocols of the family, each protocol once
    flat = [p for sh in shards for p in sh]
    assert sorted(flat) == [f"p{i:02d}" for i in range(20)]
    u = units["familywide-p00-s1"]
    fam = u.config["family"]
    assert fam["protocols"] == ["p00"] and "shards" not in fam and u.seed == 1 and fam["max_neurons"] == 50
    # a shard is the spot-check configuration of its protocols: the first shard keeps the hash of the unit
    # that ran p01/p03/p04/p05 alone (so its finished results are reused)
    first = units["familywide-p01-p03-p04-p05-s0"]
    base = {k: v for k, v in full["family_wide"].items() if k != "shards"}
    spot = {
        "kind": "family",
        "fit": full["fit"],
        "reference": full["reference"],
        "family": {**base, "protocols": ["p01", "p03", "p04", "p05"]},
    }
    assert first.config == spot and first.config_hash() == "bc3254b2eb724bbf"
    # estimate: 1.05 us x training bins x S x N^2 (x 0.57 at N >= 31) + 60 s, by hand for p00 (S = 5, N = 46:
    # max(32000, 1600 x 5 x 46) = 368,000 bins, in whole trials of 5,000 bins: 74 trials, 370,000 bins)
    sp = protocol_family(n=20, train_bins=32000, test_bins=8000, max_neurons=50, bins_per_sn=1600)[0]
    assert (sp.n_states, sp.n_neurons, sp.n_time_bins, sp.n_train) == (5, 46, 5000, 74)
    bins = 370_000
    by_hand = 1.05e-6 * bins * sp.n_states * sp.n_neurons**2 * (0.57 if sp.n_neurons >= 31 else 1.0) + 60
    assert u.estimate_s == round(by_hand)
