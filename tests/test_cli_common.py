"""The shared command-line parts (engramlab.cli_common) and the flags of every subcommand."""

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch

from engramlab.cli import build_parser, main
from engramlab.cli_common import (
    OutputExistsError,
    Parser,
    add_common_arguments,
    add_dataclass_arguments,
    apply_threads,
    check_output_file,
    check_output_folder,
    dataclass_from_args,
    dataclass_to_argv,
    field_help,
    output_folder,
    positive_int,
)


@dataclass
class Demo:
    steps: int = 10  # optimizer steps
    lr: float = 1e-3
    name: str = "x"
    # a comment on the line above
    # spanning two lines
    flag: bool = False
    nesterov: bool = True
    ratio: float | None = None  # None: no ratio
    mode: Literal["a", "b"] = "a"
    delays: list[int] = field(default_factory=lambda: [1, 2])
    depth: int = field(default=3, metadata={"help": "layers of the thing"})


def parser_for(cls, **kw):
    p = Parser(prog="demo")
    add_dataclass_arguments(p, cls, **kw)
    return p


def parse(cls, argv, **kw):
    return dataclass_from_args(cls, parser_for(cls, **kw).parse_args(argv))


def test_every_field_is_a_flag_with_its_type_default_and_help():
    p = parser_for(Demo)
    flags = {s for a in p._actions for s in a.option_strings}
    assert {
        "--steps",
        "--lr",
        "--name",
        "--flag",
        "--no-flag",
        "--nesterov",
        "--no-nesterov",
        "--ratio",
        "--mode",
        "--delays",
        "--depth",
    } <= flags
    assert parse(Demo, []) == Demo()
    got = parse(
        Demo,
        [
            "--steps",
            "7",
            "--lr",
            "0.5",
            "--name",
            "y",
            "--flag",
            "--no-nesterov",
            "--ratio",
            "0.25",
            "--mode",
            "b",
            "--delays",
            "5,6,7",
            "--depth",
            "4",
        ],
    )
    assert got == Demo(
        steps=7, lr=0.5, name="y", flag=True, nesterov=False, ratio=0.25, mode="b", delays=[5, 6, 7], depth=4
    )
    assert parse(Demo, ["--delays", "5", "6"]).delays == [5, 6]  # space-separated works too
    assert parse(Demo, ["--delays"]).delays == []
    assert parse(Demo, ["--ratio", "none"]).ratio is None
    assert field_help(Demo) == {
        "steps": "optimizer steps",
        "flag": "a comment on the line above spanning two lines",
        "ratio": "None: no ratio",
        "depth": "layers of the thing",
    }
    text = " ".join(p.format_help().split())
    for piece in (
        "optimizer steps (default: 10)",
        "a comment on the line above spanning two lines",
        "layers of the thing (default: 3)",
        "(default: 1,2)",
        "(default: 0.001)",
        "{a,b}",
    ):
        assert piece in text


def test_the_default_list_is_not_shared_between_configs():
    p = parser_for(Demo)
    a = dataclass_from_args(Demo, p.parse_args([]))
    a.delays.append(99)
    assert dataclass_from_args(Demo, p.parse_args([])).delays == [1, 2]


def test_a_new_field_is_a_new_flag():
    Bigger = dataclasses.make_dataclass("Bigger", [("extra", int, field(default=5))], bases=(Demo,))
    assert "--extra" not in parser_for(Demo).format_help()
    assert "--extra" in parser_for(Bigger).format_help()
    assert parse(Bigger, ["--extra", "9"]) == Bigger(extra=9)


def test_round_trip_through_argv():
    cfg = Demo(steps=3, lr=0.125, name="z", flag=True, nesterov=False, ratio=None, mode="b", delays=[], depth=1)
    assert parse(Demo, dataclass_to_argv(cfg)) == cfg
    cfg = Demo(ratio=2.5, delays=[7])
    assert parse(Demo, dataclass_to_argv(cfg)) == cfg


def test_exclude_aliases_and_extra_fields():
    p = parser_for(Demo, exclude=("name",), aliases={"steps": "--n"}, help={"lr": "learning rate"})
    assert "--name" not in p.format_help() and "learning rate (default: 0.001)" in " ".join(p.format_help().split())
    args = p.parse_args(["--n", "4"])
    assert dataclass_from_args(Demo, args, name="given") == Demo(steps=4, name="given")
    with pytest.raises(ValueError, match="no field"):
        parser_for(Demo, exclude=("nope",))


def test_bad_values_are_one_clear_argparse_error(capsys):
    for argv, message in (
        (["--steps", "many"], "argument --steps: expected an int, got 'many'"),
        (["--mode", "c"], "argument --mode: invalid choice: 'c'"),
        (["--delays", "1,x"], "expected an int, got 'x'"),
    ):
        with pytest.raises(SystemExit) as e:
            parser_for(Demo).parse_args(argv)
        assert e.value.code == 2
        assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------ the real commands
def leaf_parsers(parser=None, path=()):
    """(command words, parser) of every subcommand that runs something."""
    parser = parser or build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, p in subs[0].choices.items():
        yield from leaf_parsers(p, path + (name,))


LEAVES = list(leaf_parsers())


def test_the_commands_are_all_there():
    names = {" ".join(p) for p, _ in LEAVES}
    assert {
        "train",
        "generate",
        "eval",
        "bdh inspect",
        "bdh probe",
        "bdh merge",
        "bdh merge-demo",
        "astro memory",
        "hmmglm benchmark",
        "hmmglm fit",
        "timescales train",
        "timescales analyze",
        "reproduce",
    } <= names


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_every_help_exits_0_and_shows_the_defaults(path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*path, "--help"])
    assert e.value.code == 0
    text = "".join(capsys.readouterr().out.split())  # no whitespace: immune to line wrapping
    parser = dict(LEAVES)[path]
    shown = 0
    for a in parser._actions:
        if not a.option_strings or a.help == argparse.SUPPRESS or a.default in (None, False, argparse.SUPPRESS):
            continue
        value = ",".join(map(str, a.default)) if isinstance(a.default, (list, tuple)) else str(a.default)
        assert "".join(f"(default:{value})".split()) in text, (a.option_strings, a.default)
        shown += 1
    assert "--jobs" not in text  # the deprecated alias is hidden


def test_common_flags_mean_the_same_everywhere():
    seen = {}
    for path, parser in LEAVES:
        for a in parser._actions:
            for flag in ("--threads", "--device", "--no-progress", "--workers", "--overwrite"):
                if flag in a.option_strings:
                    seen.setdefault(flag, set()).add(" ".join(path))
                    if flag == "--threads":
                        assert a.default is None and a.type is positive_int, path
                    if flag == "--device":
                        assert a.default == "auto", path
    assert {"train", "generate", "eval"} <= seen["--device"]
    assert {"astro memory", "hmmglm benchmark"} <= seen["--workers"]
    assert {
        "train",
        "astro memory",
        "hmmglm benchmark",
        "hmmglm fit",
        "timescales train",
        "timescales analyze",
        "bdh inspect",
        "bdh merge-demo",
        "reproduce",
    } <= seen["--threads"]
    assert {
        "train",
        "astro memory",
        "hmmglm benchmark",
        "hmmglm fit",
        "timescales train",
        "timescales analyze",
        "bdh inspect",
        "bdh merge",
        "bdh merge-demo",
    } <= seen["--overwrite"]


def test_jobs_is_a_deprecated_alias_of_workers(capsys):
    p = dict(LEAVES)[("astro", "memory")]
    assert p.parse_args(["--out", "o", "--jobs", "3"]).workers == 3
    assert "--jobs is deprecated; use --workers" in capsys.readouterr().err
    assert p.parse_args(["--out", "o", "--workers", "2"]).workers == 2


def _configs():
    from engramlab.astro.memory import MemoryConfig
    from engramlab.hmmglm.models import FitConfig
    from engramlab.timescales.analysis import AnalysisConfig
    from engramlab.timescales.curriculum import TrainConfig

    # (command, its other required flags, dataclass, fields set by other flags -> how they are read back)
    return [
        (
            ("astro", "memory"),
            ["--out", "o"],
            MemoryConfig,
            lambda a: {"seed": a.seed, "jobs": a.workers, "lrs": a.lrs},
        ),
        (("hmmglm", "benchmark"), ["--out", "o"], FitConfig, lambda a: {"seed": a.fit_seed}),
        (("hmmglm", "fit"), ["x.mat", "--out", "o"], FitConfig, lambda a: {"seed": a.seed}),
        (
            ("timescales", "train"),
            ["--out", "o"],
            TrainConfig,
            lambda a: {"seed": a.seed, "train_tau": a.fixed_tau is None, "tau": a.fixed_tau or 1.0},
        ),
        (("timescales", "analyze"), ["run"], AnalysisConfig, lambda a: {"seed": a.seed}),
    ]


@pytest.mark.parametrize("case", range(5))
def test_experiment_flags_are_their_dataclass_fields(case):
    path, required, cls, extra = _configs()[case]
    parser = dict(LEAVES)[path]
    args = parser.parse_args(required)
    assert dataclass_from_args(cls, args, **extra(args)) == cls()  # defaults are the dataclass's
    flags = {s for a in parser._actions for s in a.option_strings}
    handled = set(extra(args))
    for f in dataclasses.fields(cls):
        assert f.name in handled or "--" + f.name.replace("_", "-") in flags, f"{cls.__name__}.{f.name} has no flag"


def test_a_non_default_experiment_config_round_trips():
    from engramlab.timescales.curriculum import TrainConfig

    cfg = TrainConfig(
        task="dms", curriculum="single", n_neurons=64, n_heads=3, lr=0.01, nesterov=False, budget_minutes=1.5, max_n=4
    )
    parser = dict(LEAVES)[("timescales", "train")]
    args = parser.parse_args(["--out", "o", *dataclass_to_argv(cfg, exclude=("seed", "train_tau", "tau"))])
    assert dataclass_from_args(TrainConfig, args, seed=0, train_tau=True, tau=1.0) == cfg
    args = parser.parse_args(["--out", "o", "--neurons", "32", "--heads", "2", "--max-n", "3"])  # the short names
    assert (args.n_neurons, args.n_heads) == (32, 2)


def test_threads_flag_sets_torch_threads():
    before = torch.get_num_threads()
    try:
        apply_threads(argparse.Namespace(threads=1))
        assert torch.get_num_threads() == 1
        apply_threads(argparse.Namespace(threads=None))  # None: leave torch's choice alone
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    p = Parser(prog="x")
    add_common_arguments(p, threads=True)
    with pytest.raises(SystemExit):
        p.parse_args(["--threads", "0"])


# ------------------------------------------------------------------------------ output folders
def snapshot(folder):
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_check_output_folder(tmp_path):
    assert check_output_folder(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty")
    full = tmp_path / "full"
    full.mkdir()
    (full / "a.txt").write_text("a")
    with pytest.raises(
        OutputExistsError,
        match=r"output folder .*full is not empty \(it holds a.txt\); pass "
        r"--overwrite to replace it",
    ):
        check_output_folder(full)
    with pytest.raises(OutputExistsError, match="pass --resume to continue it or --overwrite to replace it"):
        check_output_folder(full, resume_flag="--resume")
    check_output_folder(full, overwrite=True)
    check_output_folder(full, resume=True, resume_flag="--resume")
    with pytest.raises(ValueError, match="exclude each other"):
        check_output_folder(full, overwrite=True, resume=True, resume_flag="--resume")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="is a file"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(OutputExistsError, match="exists; pass --overwrite"):
        check_output_file(tmp_path / "file")
    assert check_output_file(tmp_path / "file", overwrite=True) == tmp_path / "file"


def test_output_folder_replaces_only_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    before = snapshot(out)
    with pytest.raises(OutputExistsError):
        with output_folder(out):
            raise AssertionError("never entered")
    with pytest.raises(RuntimeError):
        with output_folder(out, overwrite=True) as p:
            p.mkdir()
            (p / "new.txt").write_text("partial")
            raise RuntimeError("the command failed")
    assert snapshot(out) == before and sorted(x.name for x in tmp_path.iterdir()) == ["out"]
    with output_folder(out, overwrite=True) as p:
        p.mkdir()
        (p / "new.txt").write_text("new")
    assert sorted(x.name for x in out.iterdir()) == ["new.txt"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out"]


def test_overwrite_never_removes_the_current_folder(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("k")
    monkeypatch.chdir(work)
    for target in (work, tmp_path):
        with pytest.raises(ValueError, match="refusing to replace .* the current folder"):
            check_output_folder(target, overwrite=True)
    with pytest.raises(ValueError, match="refusing"):
        with output_folder(".", overwrite=True):
            pass
    assert (work / "keep.txt").read_text() == "k" and os.getcwd() == str(work)
