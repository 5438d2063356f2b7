"""Screened data-driven starts, the family's data sizes, reference rows on the family, and the insula portion."""

import numpy as np
import pytest
import torch

from engramlab.data.spikes import SpikeTimes, save_npz
from engramlab.hmmglm.family import run_family, run_protocol
from engramlab.hmmglm.models import HMMGLM, FitConfig, GaussianHMMGLM, OneHotHMMGLM
from engramlab.hmmglm.real import insula_study
from engramlab.hmmglm.simulate import ProtocolSpec, protocol_family

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def planted(planted_counts):
    return planted_counts(3)


@pytest.mark.parametrize("cls", [HMMGLM, GaussianHMMGLM])
def test_screened_starts_keep_the_best_screen_and_each_screen_is_a_short_fit(planted, cls):
    opts = dict(progress=False, m_steps=3, rtol=None)
    m = cls(2, 5).fit(planted, seed=4, n_starts=3, screen_epochs=3, n_epochs=5, **opts)
    scr = m.screens_
    assert len(scr) == 3 and len({s["seed"] for s in scr}) == 3 and scr[0]["seed"] == 4
    kept = [s for s in scr if s["kept"]]
    assert len(kept) == 1 and kept[0]["train_ll_per_bin"] == max(s["train_ll_per_bin"] for s in scr)
    # every screen equals an independent single-start fit of screen_epochs epochs from that seed
    for s in scr:
        alone = cls(2, 5).fit(planted, seed=s["seed"], n_starts=1, n_epochs=3, **opts)
        assert alone.history_[-1] == pytest.approx(s["train_ll_per_bin"], abs=1e-9)
    assert m.history_[:3] == pytest.approx(
        cls(2, 5).fit(planted, seed=kept[0]["seed"], n_starts=1, n_epochs=3, **opts).history_, abs=1e-9
    )
    assert m.n_epochs_ == len(m.history_) == 5  # the kept screen's 3 epochs, then 2 more (n_epochs caps the whole)


def test_screening_changes_with_the_seed_and_is_reproducible(planted):
    opts = dict(progress=False, m_steps=2, n_epochs=2, n_starts=2, screen_epochs=2)
    a = HMMGLM(2, 5).fit(planted, seed=1, **opts)
    b = HMMGLM(2, 5).fit(planted, seed=2, **opts)
    c = HMMGLM(2, 5).fit(planted, seed=1, **opts)
    assert {s["seed"] for s in a.screens_}.isdisjoint({s["seed"] for s in b.screens_})
    assert torch.equal(a.weight, c.weight) and a.screens_ == c.screens_


def test_onehot_warm_start_uses_a_screened_plain_fit(planted):
    oh = OneHotHMMGLM(2, 5).fit(planted, progress=False, m_steps=1, n_epochs=2, n_starts=2, screen_epochs=1)
    assert not hasattr(oh, "screens_") and oh.n_epochs_ == 2  # its own schedule is not screened


@pytest.mark.parametrize("bad", [{"n_starts": 0}, {"screen_epochs": 0}, {"n_starts": 1.5}])
def test_bad_screening_options(planted, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        HMMGLM(2, 5).fit(planted, progress=False, **bad)


def test_family_training_bins_grow_with_states_times_neurons():
    base = protocol_family(6, train_bins=1000, test_bins=500, max_neurons=30)
    big = protocol_family(6, train_bins=1000, test_bins=500, max_neurons=30, bins_per_sn=100)
    for a, b in zip(base, big):
        assert (a.n_states, a.n_neurons, a.n_time_bins, a.density, a.link) == (
            b.n_states,
            b.n_neurons,
            b.n_time_bins,
            b.density,
            b.link,
        )
        want = max(1000, 100 * b.n_states * b.n_neurons)
        assert b.n_train == max(1, round(want / b.n_time_bins))  # whole trials of T bins
        assert b.n_trials - b.n_train == a.n_trials - a.n_train  # the test trials do not change
        assert 10 <= b.n_neurons <= 30


def _tiny_spec():
    return ProtocolSpec("t0", 2, 6, 200, 3, 2, 0.3, (0.8, 1.2), "sigmoid", "onehot")


def test_run_protocol_with_reference_rows():
    ref = FitConfig(optimizer="reference", reference_epochs=1, reference_steps=2)
    res = run_protocol(_tiny_spec(), 0, default_fit=FitConfig(n_epochs=2, m_steps=2, n_starts=2), reference=ref)
    assert set(res["reference"]) == set(res["models"]) == {"glm", "hmmglm", "gaussian", "onehot"}
    for row in res["reference"].values():
        assert row["epochs"] == 1  # one pass of the public code's training
        assert np.isfinite(row["test_ll_per_bin_neuron"])
    assert res["reference_fit"]["optimizer"] == "reference"
    with pytest.raises(ValueError, match="optimizer='reference'"):
        run_protocol(_tiny_spec(), 0, default_fit=FitConfig(n_epochs=1, m_steps=1), reference=FitConfig())


def test_run_family_reference_protocols_by_name(tmp_path):
    fit = FitConfig(n_epochs=1, m_steps=1, n_starts=1)
    ref = FitConfig(optimizer="reference", reference_epochs=1, reference_steps=1)
    res = run_family(
        tmp_path,
        seeds=[0],
        n_protocols=2,
        models=("glm", "hmmglm"),
        default_fit=fit,
        train_bins=300,
        test_bins=200,
        max_neurons=12,
        reference=ref,
        reference_protocols=("p01",),
        progress=False,
    )
    assert ["reference" in r for r in res["runs"]] == [False, True]
    assert res["n_reference_runs"] == 1 and set(res["summary_reference"]) == {"glm", "hmmglm"}
    assert res["sizes"]["reference_protocols"] == ["p01"]
    with pytest.raises(ValueError, match="p07"):
        run_family(
            None, seeds=[0], n_protocols=2, default_fit=fit, reference=ref, reference_protocols=("p07",), progress=False
        )


def test_insula_study_on_a_contiguous_portion(tmp_path):
    rng = np.random.default_rng(0)
    times = [np.sort(rng.uniform(0, 100, 300)) for _ in range(4)]
    st = SpikeTimes(times, {"cue": np.array([10.0, 30.0, 55.0])}, t_start=0.0, t_stop=100.0)
    save_npz(st, tmp_path / "rec.npz")
    fit = FitConfig(n_epochs=1, m_steps=1, n_starts=1)
    res = insula_study(
        tmp_path / "rec.npz",
        tmp_path / "out",
        state_counts=(2,),
        seeds=(0,),
        bin_width=0.1,
        n_neurons=None,
        fit=fit,
        onehot_epochs=1,
        time_range=(20.0, 60.0),
    )
    assert res["n_bins"] == 400 and res["time_range_s"] == pytest.approx([20.0, 60.0])
    assert {f["model"] for f in res["fits"]} == {"glm", "hmmglm", "gaussian", "onehot"}
    two = [f for f in res["fits"] if f["n_states"] == 2][0]
    assert sum(e["n_events_bins"] for e in two["events"].values()) == 2  # the events at 30 s and 55 s
    with pytest.raises(ValueError, match="time_range"):
        insula_study(
            tmp_path / "rec.npz",
            tmp_path / "o2",
            state_counts=(2,),
            seeds=(0,),
            bin_width=0.1,
            fit=fit,
            time_range=(60.0, 20.0),
        )


def test_draw_identifiable_redraws_until_the_true_parameters_decode_well():
    from engramlab.hmmglm.family import draw_identifiable
    from engramlab.hmmglm.simulate import simulate_protocol

    spec = _tiny_spec()
    data, acc, draws = draw_identifiable(spec, 5)
    assert len(draws) == 1 and draws[0]["data_seed"] == 5 and draws[0]["kept"]
    assert torch.equal(data.train, simulate_protocol(spec, 5).train)
    _, acc3, draws3 = draw_identifiable(spec, 5, min_true_accuracy=1.01, max_draws=3)  # unreachable: 3 draws
    assert [d["data_seed"] for d in draws3] == [5, 5 + 1009, 5 + 2018]
    assert acc3 == max(d["true_state_accuracy"] for d in draws3) and sum(d["kept"] for d in draws3) >= 1
    # the accuracy recorded is the generator's own Viterbi accuracy on that draw's test trials
    d1 = simulate_protocol(spec, 5 + 1009)
    z = d1.states[d1.n_train :]
    own = float((d1.model.most_likely_states(d1.test) == z).float().mean())
    assert draws3[1]["true_state_accuracy"] == pytest.approx(own)
    _, _, first = draw_identifiable(spec, 5, min_true_accuracy=0.0, max_draws=3)  # met at once
    assert len(first) == 1


def test_run_family_sets_low_snr_protocols_apart_and_draws_the_next_ones():
    from engramlab.hmmglm.family import draw_identifiable

    sizes = dict(train_bins=300, test_bins=200, max_neurons=12)
    specs = protocol_family(6, seed=0, **sizes)
    acc = [draw_identifiable(sp, 0)[1] for sp in specs]  # one draw each (max_draws=1 below)
    thr = sorted(acc)[2]  # the two least identifiable of the six fall below it
    want_kept = [sp.name for sp, a in zip(specs, acc) if a >= thr][:2]
    last = [sp.name for sp in specs].index(want_kept[-1])
    want_apart = [sp.name for sp, a in zip(specs[: last + 1], acc) if a < thr]
    fit = FitConfig(n_epochs=1, m_steps=1, n_starts=1)
    common = dict(seeds=[0], n_protocols=2, models=("hmmglm",), default_fit=fit, max_draws=1, progress=False)
    res = run_family(None, min_true_accuracy=thr, replace_low_snr=True, **common, **sizes)
    assert [r["protocol"]["name"] for r in res["runs"]] == want_kept
    assert [r["protocol"]["name"] for r in res["low_snr_runs"]] == want_apart and res["n_low_snr_runs"] == len(
        want_apart
    )
    assert all(r["true_state_accuracy"] < thr for r in res["low_snr_runs"])
    assert all("state_accuracy_ratio" in r["models"]["hmmglm"] for r in res["low_snr_runs"])  # fitted all the same
    assert res["n_runs"] == 2 and res["sizes"]["replace_low_snr"] is True
    if want_apart:
        assert res["summary_low_snr"]["hmmglm"]["state_accuracy_ratio_min"] == pytest.approx(
            min(r["models"]["hmmglm"]["state_accuracy_ratio"] for r in res["low_snr_runs"])
        )
    # without replacement the same threshold keeps every protocol in, in order
    plain = run_family(None, min_true_accuracy=thr, **common, **sizes)
    assert [r["protocol"]["name"] for r in plain["runs"]] == ["p00", "p01"] and "low_snr_runs" not in plain
    with pytest.raises(ValueError, match="min_true_accuracy"):
        run_family(None, replace_low_snr=True, **common, **sizes)


def test_draw_identifiable_with_screening_trials_decides_on_them_not_on_the_test_trials():
    from engramlab.hmmglm.family import SCREEN_SEED_OFFSET, draw_identifiable
    from engramlab.hmmglm.simulate import simulate_protocol

    spec = _tiny_spec()
    _, acc, draws = draw_identifiable(spec, 5, min_true_accuracy=1.01, max_draws=3, screen_bins=2 * spec.n_time_bins)
    for d in draws:  # each draw's screening accuracy: two fresh trials of that draw's own generator
        data = simulate_protocol(spec, d["data_seed"])
        x, z = data.model.sample(spec.n_time_bins, n_trials=2, seed=d["data_seed"] + SCREEN_SEED_OFFSET)
        assert d["screen_state_accuracy"] == pytest.approx(
            float((data.model.most_likely_states(x.float()) == z).float().mean())
        )
        zt = data.states[data.n_train :]
        assert d["true_state_accuracy"] == pytest.approx(
            float((data.model.most_likely_states(data.test) == zt).float().mean())
        )
    # the kept draw is the best on the screening trials, and what is returned is its test accuracy
    kept = max(draws, key=lambda d: d["screen_state_accuracy"])
    assert kept["kept"] and acc == kept["true_state_accuracy"]
    # a threshold met by the first draw's screening trials stops there, whatever its test accuracy
    thr = draws[0]["screen_state_accuracy"]
    _, acc1, one = draw_identifiable(spec, 5, min_true_accuracy=thr, max_draws=3, screen_bins=2 * spec.n_time_bins)
    assert len(one) == 1 and acc1 == draws[0]["true_state_accuracy"]


def test_stable_trials_drop_run_away_trials_and_keep_their_states_aligned():
    from engramlab.hmmglm.simulate import stable_trials

    class Planted:  # batch k: trial j has count 10k + j in every bin and state j; trial 1 of batch 0 runs away
        def sample(self, T, n_trials, seed):
            x = torch.stack([torch.full((T, 2), 10.0 * seed + j) for j in range(n_trials)])
            if seed == 0:
                x[1, -1, 0] = 1e9
                x[2, 0, 1] = -torch.iinfo(torch.int64).max  # what an overflowed Poisson draw returns
            return x, torch.arange(n_trials)[:, None].expand(n_trials, T).clone()

    x, z, dropped = stable_trials(Planted(), 4, 3, seed=0, max_count=50.0)
    assert dropped == 2 and x.shape == (3, 4, 2)
    assert x[:, 0, 0].tolist() == [0.0, 10.0, 11.0]  # batch 0 trial 0, then batch 1 trials 0 and 1
    assert z[:, 0].tolist() == [0, 0, 1]
    with pytest.raises(RuntimeError, match="stable trials"):
        stable_trials(Planted(), 4, 3, seed=0, max_count=5.0, max_batches=1)


def _without_times(run: dict) -> dict:
    from engramlab.io import to_jsonable

    run = to_jsonable(run)  # as in family.json (tuples as lists)
    return {**run, "models": {k: {q: v for q, v in m.items() if q != "fit_s"} for k, m in run["models"].items()}}


def test_run_family_resumes_an_interrupted_study_and_refuses_another(tmp_path, monkeypatch):
    from engramlab.hmmglm import family
    from engramlab.io import read_json, to_jsonable, write_json

    fit = FitConfig(n_epochs=1, m_steps=1, n_starts=1)
    kw = dict(
        seeds=[0, 1], n_protocols=2, models=("hmmglm",), default_fit=fit, progress=False, train_bins=300,
        test_bins=200, max_neurons=12,
    )  # fmt: skip
    whole = family.run_family(tmp_path / "whole", **kw)
    # an attempt killed after its first protocol: family.json holds that one run
    part = tmp_path / "part"
    first = family.run_family(part, **{**kw, "seeds": [0], "n_protocols": 1})
    saved = read_json(part / "family.json")
    write_json(part / "family.json", {**saved, "sizes": whole["sizes"], "study": whole["study"]})
    calls, real = [], family.run_protocol

    def counted(spec, seed, *a):
        calls.append((spec.name, seed))
        return real(spec, seed, *a)

    monkeypatch.setattr(family, "run_protocol", counted)
    res = family.run_family(part, resume=True, **kw)
    assert calls == [("p01", 0), ("p00", 1), ("p01", 1)]  # the finished protocol is not run again
    assert res["resumed_runs"] == 1 and res["n_runs"] == 4
    assert res["runs"][0] == saved["runs"][0] == to_jsonable(first["runs"][0])  # kept as it was, fit time included
    assert [_without_times(r) for r in res["runs"]] == [_without_times(r) for r in whole["runs"]]
    assert res["wall_s"] >= saved["wall_s"]  # the attempts add up
    assert read_json(part / "family.json")["n_runs"] == 4
    # a resumed call for one seed takes only that seed's runs from the file
    calls.clear()
    one = family.run_family(part, resume=True, **{**kw, "seeds": [1]})
    assert calls == [] and one["resumed_runs"] == 2 and one["n_runs"] == 2
    # without resume the file is simply rewritten from the start
    calls.clear()
    family.run_family(part, **kw)
    assert len(calls) == 4
    # another study's file is refused, naming the setting that differs
    with pytest.raises(ValueError, match=r"sizes.*another out folder"):
        family.run_family(part, resume=True, **{**kw, "train_bins": 400})
    with pytest.raises(ValueError, match="default_fit"):
        family.run_family(part, resume=True, **{**kw, "default_fit": FitConfig(n_epochs=2, m_steps=1, n_starts=1)})


def test_run_family_runs_a_named_subset_of_the_same_networks():
    fit = FitConfig(n_epochs=1, m_steps=1, n_starts=1)
    kw = dict(seeds=[0], models=("hmmglm",), default_fit=fit, progress=False, train_bins=300, test_bins=200)
    whole = run_family(None, n_protocols=4, max_neurons=12, **kw)
    part = run_family(None, n_protocols=4, max_neurons=12, protocols=("p03", "p01"), **kw)
    assert [r["protocol"]["name"] for r in part["runs"]] == ["p01", "p03"]  # in family order
    # the same networks, data and fits as in the whole family (fit times aside)
    assert [_without_times(r) for r in part["runs"]] == [_without_times(whole["runs"][i]) for i in (1, 3)]
    assert part["sizes"]["protocols"] == ["p01", "p03"] and part["sizes"]["n_protocols"] == 4
    with pytest.raises(ValueError, match=r"protocols \['p09'\] are not in the family p00..p03"):
        run_family(None, n_protocols=4, max_neurons=12, protocols=("p09",), **kw)
    with pytest.raises(ValueError, match="exclude each other"):
        run_family(None, n_protocols=4, max_neurons=12, protocols=("p01",), replace_low_snr=True,
                   min_true_accuracy=0.5, **kw)  # fmt: skip
