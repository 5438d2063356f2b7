import json

import pytest

from engramlab.cli import main
from engramlab.train.config import TrainConfig, apply_overrides


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


TINY = [
    "--no-progress",
    "--set",
    "n_embd=16",
    "--set",
    "n_layer=1",
    "--set",
    "block_size=16",
    "--set",
    "eval_interval=2",
    "--set",
    "eval_batches=1",
    "--set",
    "log_interval=1",
]


def test_train_generate_eval_resume(tmp_path, capsys, shakespeare_path):
    out = tmp_path / "run"
    common = ["--data", str(shakespeare_path), "--out", str(out), *TINY]
    code, stdout, err = run(capsys, "train", "gpt", "--preset", "tiny", "--steps", "2", *common)
    assert code == 0, err
    assert json.loads(stdout[stdout.index("{") :])["step"] == 2
    code, stdout, err = run(capsys, "train", "gpt", "--out", str(out), "--steps", "4", "--resume", "--no-progress")
    assert code == 0, err
    assert json.loads(stdout[stdout.index("{") :])["step"] == 4
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    code, stdout, err = run(
        capsys, "generate", str(out), "--prompt", "ROMEO:", "--tokens", "20", "--seed", "1", "--top-k", "5"
    )
    assert code == 0, err
    assert stdout.startswith("ROMEO:") and len(stdout.rstrip("\n").encode()) >= 6
    code, stdout, err = run(capsys, "eval", str(out), "--batches", "2")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["step"] == 4 and res["val_bpb"] > 0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "gpx"], "unknown model 'gpx'; known models: astro, bdh, gpt, lstm"),
        (["train", "gpt", "--preset", "huge"], "unknown preset 'huge' for gpt; known: tiny, small, paper"),
        (["train", "gpt", "--set", "n_embed=3"], "unknown --set key 'n_embed'; valid gpt model keys: bias, block_size"),
        (["train", "gpt", "--set", "lr=fast"], "lr='fast': expected a value of type float"),
        (["train", "gpt", "--set", "lr"], "expected key=value"),
        (["generate", "/nonexistent/run", "--prompt", "a"], "checkpoint folder not found: /nonexistent/run"),
    ],
)
def test_user_errors_are_one_clear_line(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_empty_prompt_and_unknown_data(tmp_path, capsys, shakespeare_path):
    code, _, err = run(capsys, "train", "gpt", "--data", "nocorpus", "--out", str(tmp_path / "x"), "--no-progress")
    assert code == 2 and "unknown corpus 'nocorpus'" in err
    assert not (tmp_path / "x").exists()  # nothing half-written
    run(
        capsys,
        "train",
        "gpt",
        "--steps",
        "1",
        "--data",
        str(shakespeare_path),
        "--out",
        str(tmp_path / "r"),
        "--no-progress",
        "--set",
        "n_embd=16",
        "--set",
        "n_layer=1",
        "--set",
        "eval_batches=1",
    )
    code, _, err = run(capsys, "generate", str(tmp_path / "r"), "--prompt", "")
    assert code == 2 and "prompt is empty" in err


def test_overrides_parse_types():
    c = apply_overrides(TrainConfig(), {"steps": "5", "lr": "0.5", "compile": "true", "data": "x.txt"})
    assert (c.steps, c.lr, c.compile, c.data) == (5, 0.5, True, "x.txt")
    with pytest.raises(ValueError, match="compile='maybe'"):
        apply_overrides(TrainConfig(), {"compile": "maybe"})


def snapshot(folder):
    """Every entry under folder: (relative path) -> (bytes or None for a folder, mtime_ns)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_train_refuses_a_folder_that_holds_a_run_and_touches_nothing(tmp_path, capsys, shakespeare_path):
    out = tmp_path / "RUN"
    data = ["--data", str(shakespeare_path)]
    code, _, err = run(capsys, "train", "gpt", "--steps", "2", *data, "--out", str(out), *TINY)
    assert code == 0, err
    before, mtime = snapshot(out), out.stat().st_mtime_ns
    code, stdout, err = run(capsys, "train", "gpt", "--steps", "5", "--out", str(out))
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"output folder {out} is not empty" in err and "--resume" in err and "--overwrite" in err
    assert snapshot(out) == before and out.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RUN"]
    # any non-empty folder, not only a run
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    code, _, err = run(capsys, "train", "gpt", "--steps", "5", "--out", str(notes))
    assert code == 2 and "todo.txt" in err and (notes / "todo.txt").read_text() == "mine"
    code, _, err = run(capsys, "train", "gpt", "--out", str(out), "--resume", "--overwrite")
    assert code == 2 and "exclude each other" in err
    assert snapshot(out) == before


def test_train_overwrite_replaces_the_run(tmp_path, capsys, shakespeare_path):
    out = tmp_path / "RUN"
    data = ["--data", str(shakespeare_path)]
    assert run(capsys, "train", "gpt", "--steps", "2", *data, "--out", str(out), *TINY)[0] == 0
    (out / "stale.txt").write_text("from before")
    code, stdout, err = run(
        capsys,
        "train",
        "gpt",
        "--steps",
        "4",
        "--data",
        str(shakespeare_path),
        "--out",
        str(out),
        "--overwrite",
        "--seed",
        "5",
        *TINY,
    )
    assert code == 0, err
    assert json.loads(stdout[stdout.index("{") :])["step"] == 4
    assert not (out / "stale.txt").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["step"] == 4 and cfg["train_config"]["seed"] == 5
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    code, _, err = run(capsys, "train", "gpt", "--out", str(out), "--resume", "--seed", "6", "--steps", "5")
    assert code == 2 and "--seed 6 cannot change it" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["hmmglm", "benchmark", "--epochs", "1"],
        ["hmmglm", "fit", "missing.mat"],
        ["astro", "memory", "--steps", "1"],
        ["timescales", "train", "--max-epochs", "1"],
        ["timescales", "analyze", "no-such-run"],
        ["bdh", "inspect", "no-such-run", "--text", "no-such.txt"],
        ["bdh", "merge", "no-such-run-a", "no-such-run-b"],
        ["bdh", "merge-demo", "no-such-run", "--corpus-a", "a.txt", "--corpus-b", "b.txt"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_commands_refuse_a_non_empty_output_folder(tmp_path, capsys, argv):
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text("{}")
    before = snapshot(out)
    code, _, err = run(capsys, *argv, "--out", str(out))
    assert code == 2, err
    assert f"output folder {out} is not empty (it holds result.json)" in err and "--overwrite" in err
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_bdh_probe_refuses_an_existing_file(tmp_path, capsys):
    target = tmp_path / "probe.json"
    target.write_text("{}")
    code, _, err = run(capsys, "bdh", "probe", "no-such-run", "--concept", "a", "--contrast", "b", "--out", str(target))
    assert code == 2 and f"output file {target} exists; pass --overwrite" in err
    assert target.read_text() == "{}"


def test_timescales_train_overwrite_keeps_nothing_stale(tmp_path, capsys):
    out = tmp_path / "ts"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    argv = [
        "timescales",
        "train",
        "--out",
        str(out),
        "--max-n",
        "2",
        "--neurons",
        "8",
        "--heads",
        "1",
        "--batch-size",
        "8",
        "--steps-per-epoch",
        "1",
        "--test-batches",
        "1",
        "--max-epochs",
        "1",
        "--no-progress",
        "--threads",
        "1",
    ]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "stale.txt" in err
    code, _, err = run(capsys, *argv, "--overwrite")
    assert code == 0, err
    assert not (out / "stale.txt").exists() and (out / "summary.json").exists()
