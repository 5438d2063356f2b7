"""What every ``engramlab`` subcommand shares, defined once.

- ``Parser`` / ``HelpFormatter``: every ``--help`` shows each option's default;
- ``add_common_arguments``: the flags several subcommands take, with one meaning and one default
  everywhere: ``--out`` (+ ``--overwrite``), ``--device``, ``--seed``, ``--threads``,
  ``--no-progress``, ``--workers`` (``--jobs`` is a hidden, deprecated alias);
- ``add_dataclass_arguments`` / ``dataclass_from_args``: one flag per field of an experiment's
  config dataclass (type, default and the field's comment or ``metadata["help"]`` as help), so a
  new field is a new flag without touching the command line code;
- ``check_output_folder`` / ``output_folder`` / ``check_output_file``: nothing existing is
  written over unless the user asked for it with ``--overwrite`` (or ``--resume`` where a command
  can continue what is there).
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import inspect
import io
import json
import os
import shutil
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "HelpFormatter",
    "OutputExistsError",
    "Parser",
    "add_common_arguments",
    "add_dataclass_arguments",
    "apply_threads",
    "check_output_file",
    "check_output_folder",
    "dataclass_from_args",
    "dataclass_to_argv",
    "field_help",
    "output_folder",
    "positive_int",
]

_ABSENT = object()  # "this command has no such flag" (None is a valid default)


# ------------------------------------------------------------------------------------ help
def _show(value: Any) -> str:
    """A default as the user would type it: lists comma-separated, strings bare."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """ArgumentDefaultsHelpFormatter that also shows the default of an option without help text,
    writes lists as they are typed (``10,50,100``) and leaves out defaults that say nothing
    (``None``, the ``False`` of an on/off flag)."""

    def _format_action(self, action):
        if action.option_strings and not action.help and self._default_note(action):
            action = copy.copy(action)
            action.help = self._default_note(action)
        return super()._format_action(action)

    def _get_help_string(self, action):
        text = (action.help or "").strip()
        if "%(default)" in text or "(default:" in text:
            return text  # the text already says what the default is
        return f"{text} {self._default_note(action)}".strip()

    @staticmethod
    def _default_note(action) -> str:
        default = action.default
        if default is argparse.SUPPRESS or default is None or not action.option_strings:
            return ""
        if default is False and action.nargs == 0:  # an on/off flag that is off
            return ""
        return "(default: " + _show(default).replace("%", "%%") + ")"


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose help shows defaults; its subparsers (of any depth) are Parsers too."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


# ------------------------------------------------------------------------------- value types
def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


class _DeprecatedAlias(argparse.Action):
    """A hidden old spelling of a flag: stores into the new flag's dest and says what to use."""

    def __init__(self, option_strings, dest, new_flag: str, **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"engramlab: warning: {option_string} is deprecated; use {self.new_flag}", file=sys.stderr)
        setattr(namespace, self.dest, values)


# ------------------------------------------------------------------------------ common flags
def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    out: str | None = None,
    out_default: Any = _ABSENT,
    overwrite: bool = True,
    device: bool = False,
    seed: Any = _ABSENT,
    seed_help: str = "random seed",
    threads: bool = False,
    threads_help: str = "torch CPU threads (default: torch's own choice, one per core)",
    progress: bool = False,
    workers: Any = _ABSENT,
    workers_help: str = "parallel worker processes",
) -> argparse.ArgumentParser:
    """Add the shared flags a subcommand takes; each keyword turns one on.

    ``out``: the help text of ``--out`` (required unless ``out_default`` is given); with it comes
    ``--overwrite`` unless ``overwrite=False``. ``seed`` / ``workers``: the flag's default.
    ``device``, ``threads``, ``progress``: whether the command takes ``--device``, ``--threads``
    and ``--no-progress``. ``--threads`` (default None: torch's own choice) is applied by
    ``engramlab.cli.main`` (``apply_threads``); ``threads_help`` says what it means where a
    command also passes it on to worker processes.
    """
    if out is not None:
        if out_default is _ABSENT:
            parser.add_argument("--out", required=True, metavar="DIR", help=out)
        else:
            parser.add_argument("--out", default=out_default, metavar="DIR", help=out)
        if overwrite:
            parser.add_argument(
                "--overwrite",
                action="store_true",
                help="replace what --out holds (its old contents go only once the new output is in place)",
            )
    if device:
        parser.add_argument("--device", default="auto", help="auto (a CUDA GPU if there is one), cpu, cuda or cuda:N")
    if seed is not _ABSENT:
        parser.add_argument("--seed", type=int, default=seed, help=seed_help)
    if threads:
        parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help=threads_help)
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    if workers is not _ABSENT:
        parser.add_argument("--workers", type=positive_int, default=workers, metavar="N", help=workers_help)
        parser.add_argument(
            "--jobs",
            dest="workers",
            type=positive_int,
            action=_DeprecatedAlias,
            new_flag="--workers",
            help=argparse.SUPPRESS,
        )
    return parser


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU thread count from ``--threads`` (nothing when the flag is absent or None)."""
    n = getattr(args, "threads", None)
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--threads must be an integer >= 1, got {n!r}")
    import torch

    torch.set_num_threads(n)


# --------------------------------------------------------------------------- dataclass flags
def _field_comments(cls: type) -> dict[str, str]:
    """The comment of each field in the class source: the one after it on its line, else the
    block of comment lines right above it."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    out: dict[str, str] = {}
    tree = ast.parse(source)
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        end = node.end_lineno or node.lineno
        if end in comments and not lines[end - 1].lstrip().startswith("#"):
            out[name] = comments[end]
            continue
        above, k = [], node.lineno - 1
        while k >= 1 and lines[k - 1].lstrip().startswith("#"):
            above.insert(0, comments.get(k, ""))
            k -= 1
        if above:
            out[name] = " ".join(a for a in above if a)
    return out


def field_help(cls: type) -> dict[str, str]:
    """Help text of each field of the dataclass ``cls``: ``metadata["help"]``, else its comment."""
    comments = _field_comments(cls)
    res = {}
    for f in dataclasses.fields(cls):
        text = f.metadata.get("help") or comments.get(f.name)
        if text:
            res[f.name] = text
    return res


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(tp)):
            return args[0], True
    return tp, False


def _scalar_parser(tp: Any, optional: bool, flag: str):
    if tp in (int, float, str):
        base = tp
    elif tp is bool:

        def base(text: str) -> bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
    else:
        base = json.loads
    name = getattr(tp, "__name__", str(tp)) if tp in (int, float, str, bool) else "JSON value"

    def parse(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        try:
            return base(text)
        except (ValueError, json.JSONDecodeError):
            raise argparse.ArgumentTypeError(
                f"expected {'an' if name[0] in 'aeiou' else 'a'} {name}{' or none' if optional else ''}, got {text!r}"
            ) from None

    parse.__name__ = name  # argparse names the type in its messages
    return parse


class _ListAction(argparse.Action):
    """``--delays 10,50,100`` or ``--delays 10 50 100``: one flat list; ``--delays`` alone: []."""

    def __call__(self, parser, namespace, values, option_string=None):
        flat: list[Any] = []
        for v in values:
            if v is None:  # "none" for an optional list
                setattr(namespace, self.dest, None)
                return
            flat.extend(v)
        setattr(namespace, self.dest, flat)


def _list_parser(elem_parse, optional: bool):
    def parse(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        return [elem_parse(t.strip()) for t in text.split(",") if t.strip()]

    parse.__name__ = "list"
    return parse


def add_dataclass_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    exclude: tuple[str, ...] | list[str] = (),
    aliases: dict[str, str | list[str]] | None = None,
    help: dict[str, str] | None = None,
    choices: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    group: str | None = None,
) -> argparse.ArgumentParser:
    """One flag per field of the dataclass ``cls`` (``n_items`` -> ``--n-items``), except ``exclude``.

    Types come from the annotations: ``int`` / ``float`` / ``str``; ``bool`` as ``--x`` /
    ``--no-x``; ``X | None`` also takes ``none``; ``Literal[...]`` as choices; ``list[X]`` /
    ``tuple[X, ...]`` as ``1,2,3`` (or ``1 2 3``); anything else as JSON. The default is the
    field's (``defaults`` may show another one), the help its ``metadata["help"]`` or its source
    comment (``help`` gives text for fields that have neither). ``aliases`` adds other spellings
    (``{"n_items": "--items"}``); ``choices`` restricts values. Read back with ``dataclass_from_args``.
    """
    aliases, help, choices, defaults = aliases or {}, help or {}, choices or {}, defaults or {}
    known = {f.name for f in dataclasses.fields(cls)}
    for given in (exclude, aliases, help, choices, defaults):
        bad = [k for k in given if k not in known]
        if bad:
            raise ValueError(f"{cls.__name__} has no field(s) {bad}; fields: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    texts = {**field_help(cls), **help}
    target = parser.add_argument_group(group) if group else parser
    names: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        flag = "--" + f.name.replace("_", "-")
        extra = aliases.get(f.name, [])
        flags = [flag] + ([extra] if isinstance(extra, str) else list(extra))
        if f.name in defaults:
            default = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = _ABSENT
        kw: dict[str, Any] = {"dest": f.name, "help": texts.get(f.name)}
        if default is _ABSENT:
            kw["required"] = True
        else:
            kw["default"] = default
        tp, optional = _strip_optional(hints.get(f.name, str))
        origin = typing.get_origin(tp)
        if tp is bool and not optional:
            kw["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            values = typing.get_args(tp)
            kw["type"] = _scalar_parser(type(values[0]), optional, flag)
            kw["choices"] = list(values) + ([None] if optional else [])
            kw["metavar"] = "{" + ",".join(map(str, values)) + "}"
        elif origin in (list, tuple) and (typing.get_args(tp)[1:] in ((), (Ellipsis,))):
            elem = (typing.get_args(tp) or (str,))[0]
            kw.update(
                nargs="*",
                action=_ListAction,
                metavar=f.name.upper(),
                type=_list_parser(_scalar_parser(elem, False, flag), optional),
            )
        else:
            kw["type"] = _scalar_parser(tp, optional, flag)
            kw["metavar"] = f.name.upper() if tp not in (int, float) else ("N" if tp is int else "X")
        if f.name in choices:
            kw["choices"] = list(choices[f.name])
            kw.pop("metavar", None)
        target.add_argument(*flags, **kw)
        names.append(f.name)
    parser.set_defaults(**{f"_dataclass_fields_{cls.__qualname__}": tuple(names)})
    return parser


def dataclass_from_args(cls: type, args: argparse.Namespace, **extra: Any):
    """Build ``cls`` from the flags ``add_dataclass_arguments`` made, plus ``extra`` fields
    (for excluded fields that other flags set). The dataclass's own checks run as usual."""
    names = getattr(args, f"_dataclass_fields_{cls.__qualname__}", None)
    if names is None:
        raise ValueError(f"the parsed arguments have no {cls.__name__} flags (add_dataclass_arguments was not called)")
    values = {n: getattr(args, n) for n in names}
    for k, v in list(values.items()):
        if isinstance(v, list):
            values[k] = list(v)  # never share the default list between two configs
    overlap = sorted(set(values) & set(extra))
    if overlap:
        raise ValueError(f"{cls.__name__} field(s) {overlap} were given both as flags and as extra values")
    return cls(**values, **extra)


def dataclass_to_argv(cfg: Any, exclude: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The flags that make ``dataclass_from_args`` rebuild ``cfg`` (the inverse of parsing)."""
    argv: list[str] = []
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        if f.name in exclude or not f.init:
            continue
        flag, value = "--" + f.name.replace("_", "-"), getattr(cfg, f.name)
        tp, optional = _strip_optional(hints.get(f.name, str))
        if tp is bool and not optional:
            argv.append(flag if value else "--no-" + flag[2:])
        elif value is None:
            argv += [flag, "none"]
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(map(str, value))] if value else [flag]
        elif tp in (int, float, str, bool) or typing.get_origin(tp) is typing.Literal:
            argv += [flag, str(value)]
        else:
            argv += [flag, json.dumps(value)]
    return argv


# ----------------------------------------------------------------------------- output folders
class OutputExistsError(ValueError):
    """An output folder or file exists and the user did not ask to replace or continue it."""


def _listing(p: Path, n: int = 4) -> str:
    names = sorted(x.name for x in p.iterdir())
    shown = ", ".join(names[:n]) + (f", ... ({len(names)} entries)" if len(names) > n else "")
    return shown


def check_output_folder(
    path: str | Path,
    overwrite: bool = False,
    resume: bool = False,
    *,
    overwrite_flag: str = "--overwrite",
    resume_flag: str | None = None,
) -> Path:
    """Raise ``OutputExistsError`` if ``path`` is a non-empty folder and neither ``overwrite`` nor
    ``resume`` was asked for; a file at ``path``, both flags at once, or ``overwrite`` of a folder
    that holds the current or the home folder are errors too. Touches nothing. ``resume_flag``
    names the command's flag that continues what is there (if it has one)."""
    p = Path(path)
    if overwrite and resume:
        raise ValueError(
            f"{resume_flag} and {overwrite_flag} exclude each other: continue the run in {p}, or replace it, not both"
        )
    if p.exists() and not p.is_dir():
        raise OutputExistsError(f"output folder {p} exists and is a file, not a folder; choose another --out")
    if not p.is_dir() or not any(p.iterdir()):
        return p
    if overwrite:
        _refuse_to_remove(p)
    if resume or overwrite:
        return p
    how = (
        f"pass {resume_flag} to continue it or {overwrite_flag} to replace it"
        if resume_flag
        else (f"pass {overwrite_flag} to replace it, or choose another --out")
    )
    raise OutputExistsError(f"output folder {p} is not empty (it holds {_listing(p)}); {how}")


def _refuse_to_remove(p: Path) -> None:
    """Never move away a folder that holds the current folder or the home folder."""
    real = p.resolve()
    for guarded, what in ((Path.cwd().resolve(), "the current folder"), (Path.home().resolve(), "your home folder")):
        if real == guarded or real in guarded.parents:
            raise ValueError(
                f"refusing to replace {p} for --overwrite: it holds {what}; choose a dedicated --out folder"
            )


@contextmanager
def output_folder(
    path: str | Path, overwrite: bool = False, *, resume: bool = False, resume_flag: str | None = None
) -> Iterator[Path]:
    """The folder a command writes into, with no silent overwrite.

    A missing or empty ``path`` is simply used. A non-empty one needs ``overwrite`` (or ``resume``,
    which writes into it as it is). With ``overwrite`` the old folder is moved aside, the command
    writes a fresh one, and the old one is deleted only when the command succeeds; if it fails,
    the new partial output is removed and the old folder is put back.
    """
    p = check_output_folder(path, overwrite, resume, resume_flag=resume_flag)
    old = None
    if overwrite and p.is_dir() and any(p.iterdir()):
        old = p.parent / f".{p.name}.replaced-{os.getpid()}"
        os.replace(p, old)
    try:
        yield p
    except BaseException:
        if old is not None:
            shutil.rmtree(p, ignore_errors=True)
            os.replace(old, p)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_output_file(path: str | Path, overwrite: bool = False, overwrite_flag: str = "--overwrite") -> Path:
    """Raise ``OutputExistsError`` if the file ``path`` exists and ``overwrite`` was not asked for."""
    p = Path(path)
    if p.is_dir():
        raise OutputExistsError(f"output file {p} is a folder; give a file name")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"output file {p} exists; pass {overwrite_flag} to replace it, or choose another name")
    return p
