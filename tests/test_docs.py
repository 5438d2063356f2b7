"""README.md and docs/*.md: they speak of the project only, their links resolve, their commands parse.

Three checks over the top-level Markdown a user reads (README.md and every docs/*.md):

- no organisational text: no paths outside the repository (``../shared``, ``/work/``) and none of the
  words that only describe how the work was organised ("session", "helper", "issue #", "agents' jobs",
  "this task", ...);
- every relative link and image points to a file or folder inside the repository, and every
  ``#anchor`` link to a heading of its page;
- every ``engramlab ...`` command line in a shell code block parses with the real command-line parser
  (``engramlab.cli.build_parser``), so no page shows a flag or subcommand the CLI does not have.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

from engramlab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Text that is about how the work was organised, not about the project. Words, not substrings, so
# "sessions" of a recording would be caught (reword as "recording") but "obsession" would not.
FORBIDDEN = [
    (re.compile(r"\.\./shared"), "a path outside the repository"),
    (re.compile(r"/work/"), "a path outside the repository"),
    (re.compile(r"\bshared/(?:data|papers|seeds)\b"), "a path outside the repository"),
    (re.compile(r"\bsessions?\b", re.I), "'session'"),
    (re.compile(r"\bhelpers?\b", re.I), "'helper'"),
    (re.compile(r"\bissue\s*#", re.I), "an issue number"),
    (re.compile(r"\b(?:this|the) issue\b", re.I), "a work item"),
    (re.compile(r"\bwork[- ]items?\b", re.I), "a work item"),
    (re.compile(r"\bthis task\b", re.I), "a work item"),
    (re.compile(r"\bdone[- ]criteri", re.I), "a work item's criteria"),
    (re.compile(r"\bagents?\b", re.I), "other people's jobs"),
    (re.compile(r"\bthe lead's\b", re.I), "who did the work"),
    (re.compile(r"\b(?:research|paper) notes?\b", re.I), "notes a user does not have"),
]

SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(\s*)(```|~~~)\s*([\w+-]*)")


def _page_id(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _code_blocks(text: str):
    """(language, first line number, lines) of every fenced code block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3).lower(), i + 1
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        yield lang, start + 1, body
        i += 1


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code spans (links inside code are not links);
    line count is kept so line numbers stay right."""
    out, in_code, fence = [], False, ""
    for line in text.splitlines():
        m = FENCE.match(line)
        if not in_code and m:
            in_code, fence = True, m.group(2)
            out.append("")
            continue
        if in_code:
            if line.strip().startswith(fence):
                in_code = False
            out.append("")
            continue
        out.append(re.sub(r"(`+).*?\1", "", line))
    return "\n".join(out)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to '-'."""
    h = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    h = "".join(c for c in h if c in " -_" or unicodedata.category(c)[0] in "LN")
    return h.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", _prose(text), re.M)}


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML_SRC = re.compile(r"<(?:img|a)\b[^>]*\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.I)


def _links(text: str):
    """(line number, target) of every Markdown link, image, reference definition and HTML src/href."""
    prose = _prose(text)
    for rx in (LINK, REF_DEF, HTML_SRC):
        for m in rx.finditer(prose):
            yield prose.count("\n", 0, m.start()) + 1, m.group(1)


def test_pages_exist():
    assert (ROOT / "README.md").is_file()
    assert len(PAGES) >= 5, PAGES  # README + the system pages


def _organisational(page: Path) -> list[str]:
    bad = []
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        for rx, what in FORBIDDEN:
            for m in rx.finditer(line):
                bad.append(f"{page.name}:{n}: {what}: {m.group(0)!r} in {line.strip()[:120]!r}")
    return bad


def _bad_links(page: Path, root: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    anchors = _anchors(text)
    bad = []
    for n, target in _links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, ...
            continue
        path_part, _, fragment = target.partition("#")
        path_part = unquote(path_part.split("?")[0])
        if not path_part:  # a link to a heading of this page
            if _slug(unquote(fragment)) not in anchors:
                bad.append(f"{page.name}:{n}: no heading for anchor #{fragment}")
            continue
        resolved = (page.parent / path_part).resolve()
        if not resolved.is_relative_to(root.resolve()):
            bad.append(f"{page.name}:{n}: {target!r} points outside the repository")
        elif not resolved.exists():
            bad.append(f"{page.name}:{n}: {target!r}: no such file in the repository")
    return bad


def test_checks_catch_planted_faults(tmp_path):
    """Both checks on a page with known faults: each fault is reported, the sound lines are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "fig.png").write_bytes(b"png")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# A page\n\n## Cite the papers\n\n"
        "Measured on a 2-core CPU (load average 10-25) and one NVIDIA H200.\n"  # sound
        "The recording session was cut into blocks.\n"  # 'session'
        "Data: `../shared/data/insula.mat`.\n"  # outside the repository
        "While other agents' jobs ran (see issue #12).\n"  # two faults on one line
        "![ok](fig.png) [ok](../docs/fig.png) [ok](#cite-the-papers) [web](https://example.org/x.png)\n"
        "![missing](missing.png) [up](../../outside.md) [anchor](#no-such-heading)\n"
        "`[not a link](nowhere.md)`\n\n```python\nx = a[0](nowhere)\n```\n",
        encoding="utf-8",
    )
    org = _organisational(page)
    assert [s.split(":")[1] for s in org] == ["6", "7", "7", "8", "8"], org
    links = _bad_links(page, tmp_path)
    assert len(links) == 3 and all(":10:" in s for s in links), links
    assert "missing.png" in links[0] and "outside the repository" in links[1] and "#no-such-heading" in links[2]


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_no_organisational_text(page):
    bad = _organisational(page)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_relative_links_resolve(page):
    bad = _bad_links(page, ROOT)
    assert not bad, "\n".join(bad)


# ---- commands -------------------------------------------------------------------------------------

ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
FOR_LOOP = re.compile(r"^\s*for\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\s+(.+?);\s*do\b")
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
SUBST = re.compile(r"\$\((engramlab\b[^()]*)\)")
PREFIX_WORDS = {"time", "nice", "-n", "$", "exec"}


def _logical_lines(body: list[str], first: int):
    """Shell lines of a code block with backslash continuations joined and heredoc bodies skipped."""
    i, terminator = 0, None
    while i < len(body):
        line, n = body[i], first + i
        i += 1
        if terminator is not None:
            if line.strip() == terminator:
                terminator = None
            continue
        while line.rstrip().endswith("\\") and i < len(body):
            line = line.rstrip()[:-1] + " " + body[i].strip()
            i += 1
        m = HEREDOC.search(line)
        if m:
            terminator = m.group(1)
        yield n, line


def _expand(tokens: list[str], env: dict[str, list[str]]) -> list[str]:
    out = []
    for t in tokens:
        m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", t)
        out.extend(env[m.group(1)] if m and m.group(1) in env else [t])
    return out


def _commands(page: Path):
    """(line number, argv after 'engramlab') of every engramlab command in the page's shell blocks."""
    for lang, first, body in _code_blocks(page.read_text(encoding="utf-8")):
        if lang not in SHELL_LANGS:
            continue
        env: dict[str, list[str]] = {}
        for n, line in _logical_lines(body, first):
            m = FOR_LOOP.match(line)
            if m:  # check the loop body with the loop variable's first value
                env[m.group(1)] = shlex.split(m.group(2))[:1]
                continue
            for sub in SUBST.finditer(line):
                yield n, shlex.split(sub.group(1))[1:]
            try:
                tokens = shlex.split(SUBST.sub("PATH", line), comments=True)
            except ValueError:
                continue
            if len(tokens) == 1 and ASSIGN.match(tokens[0]):  # NAME="value ..." for later lines
                name, value = ASSIGN.match(tokens[0]).groups()
                env[name] = shlex.split(value)
                continue
            k = 0
            while k < len(tokens) and (tokens[k] in PREFIX_WORDS or tokens[k].isdigit() or ASSIGN.match(tokens[k])):
                k += 1
            if k < len(tokens) and tokens[k] == "engramlab":
                yield n, _expand(tokens[k + 1 :], env)


def test_command_extraction_sees_every_form(tmp_path):
    """The extractor itself: prefixes, continuations, variables, loops, heredocs, substitutions."""
    page = tmp_path / "probe.md"
    page.write_text(
        "```bash\n"
        'C="--steps 3 --set lr=1e-3"\n'
        "OMP_NUM_THREADS=1 nice -n 5 engramlab train gpt --preset tiny \\\n"
        "    --out runs/x $C   # a comment\n"
        "for M in single multi; do\n"
        "  engramlab timescales train --curriculum $M --out r_$M\n"
        "done\n"
        "python - <<'EOF'\n"
        "engramlab inside a heredoc is Python text\n"
        "EOF\n"
        'engramlab hmmglm fit "$(engramlab data fetch insula)" --out o\n'
        "```\n"
        "```python\nengramlab = 1\n```\n",
        encoding="utf-8",
    )
    got = [argv for _, argv in _commands(page)]
    assert got == [
        ["train", "gpt", "--preset", "tiny", "--out", "runs/x", "--steps", "3", "--set", "lr=1e-3"],
        ["timescales", "train", "--curriculum", "single", "--out", "r_$M"],
        ["data", "fetch", "insula"],
        ["hmmglm", "fit", "PATH", "--out", "o"],
    ]


def _parse_error(argv: list[str]) -> str | None:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {e.code}"
    return None


def test_parse_error_is_detected():
    assert _parse_error(["train", "gpt", "--no-such-flag"]) is not None
    assert _parse_error(["no-such-command"]) is not None
    assert _parse_error(["train", "gpt", "--preset", "tiny"]) is None


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_commands_parse(page):
    bad = []
    for n, argv in _commands(page):
        msg = _parse_error(argv)
        if msg:
            bad.append(f"{_page_id(page)}:{n}: engramlab {' '.join(argv)}\n    {msg}")
    assert not bad, "\n".join(bad)
