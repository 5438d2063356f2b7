import json

import pytest

from engramlab.cli import main
from engramlab.train.config import TrainConfig, apply_overrides


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_generate_eval_resume(tmp_path, capsys, shakespeare_path):
    out = tmp_path / "run"
    common = ["--data", str(shakespeare_path), "--out", str(out), "--no-progress",
              "--set", "n_embd=16", "--set", "n_layer=1", "--set", "block_size=16",
              "--set", "eval_interval=2", "--set", "eval_batches=1", "--set", "log_interval=1"]
    code, stdout, err = run(capsys, "train", "gpt", "--preset", "tiny", "--steps", "2", *common)
    assert code == 0, err
    assert json.loads(stdout[stdout.index("{"):])["step"] == 2
    code, stdout, err = run(capsys, "train", "gpt", "--out", str(out), "--steps", "4", "--resume", "--no-progress")
    assert code == 0, err
    assert json.loads(stdout[stdout.index("{"):])["step"] == 4
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    code, stdout, err = run(capsys, "generate", str(out), "--prompt", "ROMEO:", "--tokens", "20", "--seed", "1",
                            "--top-k", "5")
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
    run(capsys, "train", "gpt", "--steps", "1", "--data", str(shakespeare_path), "--out", str(tmp_path / "r"),
        "--no-progress", "--set", "n_embd=16", "--set", "n_layer=1", "--set", "eval_batches=1")
    code, _, err = run(capsys, "generate", str(tmp_path / "r"), "--prompt", "")
    assert code == 2 and "prompt is empty" in err


def test_overrides_parse_types():
    c = apply_overrides(TrainConfig(), {"steps": "5", "lr": "0.5", "compile": "true", "data": "x.txt"})
    assert (c.steps, c.lr, c.compile, c.data) == (5, 0.5, True, "x.txt")
    with pytest.raises(ValueError, match="compile='maybe'"):
        apply_overrides(TrainConfig(), {"compile": "maybe"})
