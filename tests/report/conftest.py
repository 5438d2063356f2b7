"""One tiny reproduce run of every system, shared by the report tests (seconds per system)."""

from __future__ import annotations

import pytest

from engramlab.report.reproduce import reproduce


def tiny(out, **kw):
    """``engramlab reproduce --tiny`` in this process, one torch thread, quiet."""
    args = {"mode": "tiny", "seeds": 1, "threads": 1, "progress": False, "log": lambda *a: None}
    args.update(kw)
    return reproduce(out, **args)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "tiny"
    res = tiny(out)
    return out, res
