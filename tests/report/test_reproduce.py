"""`engramlab reproduce` at a tiny size: the files and their schema, resume after a failure, an
interrupt or a killed process, parallel and submitit launchers giving the same claims, and
`engramlab report` rendering committed claims.json files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engramlab.cli import main
from engramlab.report import claims as cl
from engramlab.report import papers
from engramlab.report.reproduce import parse_only, render_existing, reproduce

from .conftest import tiny

pytestmark = pytest.mark.slow


def deterministic_values(results: dict) -> dict:
    det = {s.id for sysname in papers.SYSTEMS for s in papers.get(sysname).CLAIMS if s.deterministic}
    return {c["id"]: c["measured"]["values"] for c in cl.all_records(results) if c["id"] in det}


def test_tiny_run_writes_every_file_and_follows_the_schema(tiny_run):
    out, res = tiny_run
    assert res["run"]["failed"] == {} and res["run"]["blocked"] == []
    for f in ("report.html", "report.md", "results.json", "reproduce.json"):
        assert (out / f).is_file(), f
    results = cl.read_results(out / "results.json")
    assert set(results["systems"]) == set(papers.SYSTEMS)
    assert results["versions"]["torch"] and results["device"]["resolved"] == "cpu"
    assert results["wall_s"] > 0 and results["settings"]["seeds"] == [0]
    for system in papers.SYSTEMS:
        doc = cl.read_system(out / system / "claims.json")
        assert doc == results["systems"][system]
        claims = doc["claims"]
        assert len(claims) >= 4, system
        assert all(c["kind"] == "claim" and c["verdict"] in cl.VERDICTS for c in claims)
        assert all(c["kind"] == "baseline" and c["verdict"] is None for c in doc["baselines"])
        assert all(c["id"].startswith(system + ".") for c in cl.all_records(doc))
        assert f"--only {system}" in doc["command"] and "--tiny" in doc["command"]
        for f in doc["figures"]:
            assert (out / system / f["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # every claim was measured from the run (tiny budgets still produce numbers), except tau_net: no
        # neuron of a 16-neuron network near its initialisation has tau_net > 1, the paper's filter
        for c in cl.all_records(doc):
            if c["id"].startswith("timescales.") and c["id"].endswith("tau_net_grows"):
                assert c["measured"]["n_seeds"] == 0 and "gave no value" in c["measured"]["note"]
                assert c["verdict"] == "not attempted"
            elif c["id"].startswith(
                ("hmmglm.insula_", "hmmglm.datasize_", "hmmglm.family1x_", "hmmglm.family4x_", "hmmglm.familywide_")
            ):
                # the recording; full budget only (the 1x and 4x families: a budget with larger families; the
                # larger-network spot check)
                assert c["measured"]["n_seeds"] == 0 and c["verdict"] in (None, "not attempted")
            elif c["id"].startswith("hmmglm.family_low_snr_state_ratio_"):  # tiny: no min_true_accuracy, none
                assert c["measured"]["n_seeds"] == 0, c["id"]
            elif c["id"].startswith(("hmmglm.family_below_", "hmmglm.family_at_")):  # a group of runs may be empty
                group, kind = c["id"].split("_")[1], c["id"].rsplit("_", 1)[1]
                runs = json.loads((out / "units/hmmglm/synthetic-s0/family/family.json").read_text())["runs"]
                ratios = [r["models"][kind]["state_accuracy_ratio"] for r in runs]
                n = sum((q < 0.95) == (group == "below") for q in ratios)
                assert c["measured"]["n_seeds"] == (1 if n else 0), c["id"]
            else:
                assert c["measured"]["n_seeds"] >= 1, c["id"]
    for key in ("claims", "baselines"):
        assert [c["id"] for c in results[key]] == [c["id"] for s in papers.SYSTEMS for c in results["systems"][s][key]]


def test_every_claims_figure_is_drawn(tiny_run):
    out, _ = tiny_run
    for system in papers.SYSTEMS:
        drawn = {f["file"] for f in cl.read_system(out / system / "claims.json")["figures"]}
        for spec in papers.get(system).CLAIMS:
            assert set(spec.figures) <= drawn, (spec.id, set(spec.figures) - drawn)


def test_report_files_say_the_budget_and_link_what_exists(tiny_run):
    out, _ = tiny_run
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for text in (md, html):
        assert "small budget" in text and "reproduce --full" in text
    results = cl.read_results(out / "results.json")
    for c in results["claims"]:
        if c["kind"] == "claim":
            assert c["id"] in md and c["id"] in html
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links and all((out / link).is_file() for link in links)
    n_figs = sum(len(d["figures"]) for d in results["systems"].values())
    assert len(links) == n_figs and html.count('src="data:image/png;base64,') == n_figs
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from a network


def test_rerun_resumes_with_nothing_left_to_do(tiny_run):
    out, res = tiny_run
    again = tiny(out)
    assert again["run"]["ran"] == [] and sorted(again["run"]["skipped"]) == sorted(res["run"]["ran"])
    assert deterministic_values(again["results"]) == deterministic_values(res["results"])
    # re-running one section keeps the others in the report
    one = tiny(out, only=["hmmglm"])
    assert one["run"]["ran"] == [] and set(one["results"]["systems"]) == set(papers.SYSTEMS)
    assert deterministic_values(one["results"]) == deterministic_values(res["results"])
    assert all(f"## {papers.get(s).TITLE}" in (out / "report.md").read_text() for s in papers.SYSTEMS)


def test_two_workers_give_the_same_claims_as_sequential(tiny_run, tmp_path):
    _, seq = tiny_run
    par = tiny(tmp_path / "par", workers=2)
    assert par["run"]["failed"] == {} and len(par["run"]["ran"]) == len(seq["run"]["ran"])
    assert deterministic_values(par["results"]) == deterministic_values(seq["results"])


@pytest.mark.parametrize("kind", ["debug", "local"])
def test_submitit_executors_give_the_same_claims(tiny_run, tmp_path, kind):
    import submitit

    _, seq = tiny_run
    ex = submitit.DebugExecutor(tmp_path / "jobs") if kind == "debug" else submitit.LocalExecutor(tmp_path / "jobs")
    if kind == "local":
        ex.update_parameters(timeout_min=10)
    res = tiny(tmp_path / "out", only=["hmmglm"], executor=ex)
    assert res["run"]["failed"] == {} and res["run"]["ran"] == ["hmmglm/synthetic-s0"]
    want = {k: v for k, v in deterministic_values(seq["results"]).items() if k.startswith("hmmglm.")}
    assert deterministic_values(res["results"]) == want


def test_a_failing_experiment_is_reported_and_rerun_alone(tmp_path, monkeypatch):
    mod = papers.get("hmmglm")
    real = mod.run_unit

    def flaky(unit, folder, ctx):
        if unit.name == "synthetic-s1":
            raise RuntimeError("simulated crash")
        real(unit, folder, ctx)

    monkeypatch.setattr(mod, "run_unit", flaky)
    out = tmp_path / "r"
    first = tiny(out, only=["hmmglm"], seeds=3)
    assert list(first["run"]["failed"]) == ["hmmglm/synthetic-s1"]
    assert "simulated crash" in first["run"]["failed"]["hmmglm/synthetic-s1"]
    assert sorted(first["run"]["ran"]) == ["hmmglm/synthetic-s0", "hmmglm/synthetic-s2"]
    rec = {c["id"]: c for c in first["results"]["claims"]}["hmmglm.state_accuracy"]
    assert rec["measured"]["n_seeds"] == 2 and rec["measured"]["values"][1] is None
    assert first["results"]["systems"]["hmmglm"]["failed_units"] == ["hmmglm/synthetic-s1"]
    assert not (out / "units" / "hmmglm" / "synthetic-s1" / "DONE.json").exists()
    monkeypatch.setattr(mod, "run_unit", real)
    second = tiny(out, only=["hmmglm"], seeds=3)
    assert second["run"]["ran"] == ["hmmglm/synthetic-s1"]
    assert sorted(second["run"]["skipped"]) == ["hmmglm/synthetic-s0", "hmmglm/synthetic-s2"]
    rec = {c["id"]: c for c in second["results"]["claims"]}["hmmglm.state_accuracy"]
    assert rec["measured"]["n_seeds"] == 3


def test_ctrl_c_stops_and_the_rerun_does_only_the_rest(tmp_path, monkeypatch):
    mod = papers.get("hmmglm")
    real = mod.run_unit

    def interrupted(unit, folder, ctx):
        if unit.name == "synthetic-s1":
            (folder / "half-written").write_text("x")
            raise KeyboardInterrupt
        real(unit, folder, ctx)

    monkeypatch.setattr(mod, "run_unit", interrupted)
    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        tiny(out, only=["hmmglm"], seeds=3)
    monkeypatch.setattr(mod, "run_unit", real)
    res = tiny(out, only=["hmmglm"], seeds=3)
    assert res["run"]["skipped"] == ["hmmglm/synthetic-s0"]
    assert res["run"]["ran"] == ["hmmglm/synthetic-s1", "hmmglm/synthetic-s2"]
    assert not (out / "units" / "hmmglm" / "synthetic-s1" / "half-written").exists()  # restarted clean


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "k"
    units = out / "units" / "hmmglm"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engramlab",
            "reproduce",
            "--tiny",
            "--only",
            "hmmglm",
            "--seeds",
            "4",
            "--threads",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while not (units / "synthetic-s0" / "DONE.json").exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "the first experiment did not finish in time"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_at_kill = sorted(f"hmmglm/{p.parent.name}" for p in units.glob("*/DONE.json"))
    assert "hmmglm/synthetic-s0" in done_at_kill
    assert not (out / "report.html").exists()
    res = tiny(out, only=["hmmglm"], seeds=4)
    everything = [f"hmmglm/synthetic-s{s}" for s in range(4)]
    assert sorted(res["run"]["skipped"]) == done_at_kill
    assert sorted(res["run"]["ran"]) == sorted(set(everything) - set(done_at_kill))
    assert sorted(res["run"]["ran"] + res["run"]["skipped"]) == everything
    assert (out / "report.html").is_file()


def test_an_interrupted_family_unit_continues_protocol_by_protocol(tmp_path, monkeypatch):
    from engramlab.hmmglm import family
    from engramlab.io import read_json, write_json
    from engramlab.report.units import RunContext, Unit, execute_unit, unit_dir

    fam = {"n_protocols": 2, "train_bins": 300, "test_bins": 200, "max_neurons": 10, "fit": {"n_epochs": 1}}
    cfg = {"kind": "family", "fit": {"n_epochs": 1}, "reference": {}, "family": fam}
    unit, ctx = Unit("hmmglm", "family4x-s0", 0, cfg), RunContext(threads=1)
    real, calls = family.run_protocol, []

    def killed_after_one(spec, seed, *a):
        if calls:
            raise KeyboardInterrupt
        calls.append(spec.name)
        return real(spec, seed, *a)

    monkeypatch.setattr(family, "run_protocol", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        execute_unit(unit, tmp_path, ctx)
    folder = unit_dir(tmp_path, unit)
    assert read_json(folder / "family" / "family.json")["n_runs"] == 1 and not (folder / "DONE.json").exists()
    calls.clear()
    monkeypatch.setattr(family, "run_protocol", lambda spec, seed, *a: calls.append(spec.name) or real(spec, seed, *a))
    info = execute_unit(unit, tmp_path, ctx)
    assert calls == ["p01"] and info["attempt"] == 2  # p00 was kept, not run again
    out = read_json(folder / "family" / "family.json")
    assert out["n_runs"] == 2 and out["resumed_runs"] == 1
    # a leftover of another configuration is started again from scratch
    (folder / "DONE.json").unlink()
    write_json(folder / "STARTED.json", {"config_hash": "another", "attempt": 1})
    calls.clear()
    assert execute_unit(unit, tmp_path, ctx)["attempt"] == 1 and calls == ["p00", "p01"]
    # units that are not resumable restart too (see the Ctrl-C test): the synthetic unit keeps nothing
    assert not papers.get("hmmglm").resumable(Unit("hmmglm", "synthetic-s0", 0, {"kind": "synthetic"}))


def test_report_renders_committed_claims_without_running(tiny_run, tmp_path, capsys):
    src, res = tiny_run
    dst = tmp_path / "rendered"
    assert main(["report", str(src), "--out", str(dst)]) == 0
    assert "report written" in capsys.readouterr().out
    out = cl.read_results(dst / "results.json")
    assert (
        out["mode"] == "rendered"
        and out["claims"] == res["results"]["claims"]
        and out["baselines"] == res["results"]["baselines"]
    )
    for system in papers.SYSTEMS:
        for f in out["systems"][system]["figures"]:
            assert (dst / system / f["file"]).is_file()
    assert not (dst / "units").exists()  # nothing was run
    assert main(["report", str(src), "--out", str(dst)]) == 2  # an existing report is not replaced
    assert "--overwrite" in capsys.readouterr().err
    assert main(["report", str(src), "--out", str(dst), "--overwrite"]) == 0
    with pytest.raises(FileNotFoundError, match="no <system>/claims.json"):
        render_existing(tmp_path / "rendered" / "bdh", tmp_path / "x")


def test_report_refuses_a_claims_file_with_a_missing_figure(tiny_run, tmp_path):
    import shutil

    src, _ = tiny_run
    copy = tmp_path / "src"
    shutil.copytree(src / "hmmglm", copy / "hmmglm")
    (copy / "hmmglm" / "weights.png").unlink()
    with pytest.raises(FileNotFoundError, match="weights.png"):
        render_existing(copy, tmp_path / "out")


def test_user_errors_are_clear(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown system\(s\) \['bhd'\].*known: bdh, astro, hmmglm, timescales"):
        parse_only("bdh,bhd")
    assert parse_only("timescales, bdh") == ["bdh", "timescales"]
    assert parse_only(None) == list(papers.SYSTEMS)
    with pytest.raises(ValueError, match="--partition"):
        reproduce(tmp_path / "a", launcher="slurm", log=lambda *a: None)
    with pytest.raises(ValueError, match="--seeds must be an integer >= 1"):
        reproduce(tmp_path / "a", seeds=0, log=lambda *a: None)
    with pytest.raises(ValueError, match="unknown mode 'fast'"):
        reproduce(tmp_path / "a", mode="fast", log=lambda *a: None)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="non-empty folder that no reproduce run wrote"):
        reproduce(foreign, log=lambda *a: None)
    assert main(["reproduce", "--out", str(tmp_path / "b"), "--only", "nope"]) == 2
    assert "unknown system" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "--out", str(tmp_path / "b"), "--seeds", "0"])
    with pytest.raises(SystemExit):
        main(["reproduce", "--out", str(tmp_path / "b"), "--quick", "--full"])
    with pytest.raises(FileNotFoundError, match="--insula .*not found"):
        reproduce(tmp_path / "c", only=["hmmglm"], insula=str(tmp_path / "missing.mat"), log=lambda *a: None)


def test_slurm_needs_a_cluster(tmp_path):
    from engramlab.report.units import slurm_executor

    with pytest.raises(ValueError, match="--partition"):
        slurm_executor(tmp_path, "", 10, 2)
    if not any((Path(p) / "srun").exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        with pytest.raises(ValueError, match="SLURM is not available here"):
            slurm_executor(tmp_path, "gpu", 10, 2)


def test_another_mode_or_configuration_in_the_same_folder_is_refused(tiny_run, tmp_path):
    out, _ = tiny_run
    with pytest.raises(ValueError, match="holds a tiny run; this is a quick run"):
        reproduce(out, mode="quick", log=lambda *a: None)
    # a finished experiment whose configuration differs (here: edited marker) is not silently reused
    d = tmp_path / "cfg"
    tiny(d, only=["hmmglm"])
    marker = d / "units" / "hmmglm" / "synthetic-s0" / "DONE.json"
    info = json.loads(marker.read_text())
    info["config_hash"] = "0" * 16
    marker.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="another configuration"):
        tiny(d, only=["hmmglm"])
    res = tiny(d, only=["hmmglm"], overwrite=True)
    assert res["run"]["ran"] == ["hmmglm/synthetic-s0"]


def test_publish_needs_full_and_copies_claims_and_figures(tiny_run, tmp_path):
    from engramlab.report.reproduce import publish_system

    out, res = tiny_run
    with pytest.raises(ValueError, match="needs --full, not --tiny"):
        tiny(out, publish=tmp_path / "docs")
    pub = tmp_path / "docs" / "results"
    for s in papers.SYSTEMS:
        publish_system(out / s, pub / s)
    assert sorted(p.name for p in pub.iterdir()) == sorted(papers.SYSTEMS)
    assert not any(p.name == "units" for p in pub.rglob("*"))  # only claims and figures
    with pytest.raises(ValueError, match="already holds claims of bdh"):
        reproduce(tmp_path / "new", mode="full", only=["bdh"], publish=pub, log=lambda *a: None)
    rendered = render_existing(pub, tmp_path / "html")
    assert rendered["claims"] == res["results"]["claims"] and rendered["baselines"] == res["results"]["baselines"]
