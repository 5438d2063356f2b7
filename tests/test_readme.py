"""The README's "Python" section runs: every ```python block in it is executed, each in a fresh namespace
and an empty working folder, so the snippets cannot go stale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")


def python_section_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of each ```python block between "## Python" and the next "## " heading."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "## Python")
    except StopIteration:
        raise AssertionError("README.md has no '## Python' section") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks, i = [], start + 1
    while i < end:
        m = FENCE.match(lines[i])
        if m:
            j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("```"))
            if m.group(1) == "python":
                blocks.append((i + 2, "\n".join(lines[i + 1 : j]) + "\n"))
            i = j
        i += 1
    return blocks


def test_the_extractor_finds_only_the_python_blocks_of_the_section():
    text = (
        "# t\n## Quickstart\n```python\nraise SystemExit\n```\n## Python\nintro\n```python\na = 1\n```\n"
        "```bash\nls\n```\n```python\nb = 2\n```\n## Commands\n```python\nraise SystemExit\n```\n"
    )
    assert python_section_blocks(text) == [(9, "a = 1\n"), (15, "b = 2\n")]
    with pytest.raises(AssertionError, match="no '## Python' section"):
        python_section_blocks("# t\n## Commands\n")


BLOCKS = python_section_blocks(README.read_text(encoding="utf-8"))


def test_the_section_shows_every_system_saving_and_loading():
    assert len(BLOCKS) >= 4
    code = "".join(c for _, c in BLOCKS)
    for name in ("engramlab.bdh", "engramlab.astro", "engramlab.hmmglm", "engramlab.timescales"):
        assert f"from {name} import" in code, name
    for _, c in BLOCKS:
        assert "engramlab.load(" in c and ".save_pretrained(" in c


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_readme_python_snippet_runs(tmp_path, monkeypatch, line, code):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
    assert any(tmp_path.joinpath("models").iterdir())  # the snippet saved its model
