"""Shared test fixtures: the real data in ../shared/data (CI always has it)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"the shared data folder is missing: {SHARED_DATA} (clone the repo beside shared/)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tinyshakespeare(shared_data) -> Path:
    return shared_data / "tinyshakespeare.txt"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write into the user's real cache from a test."""
    monkeypatch.setenv("ENGRAMLAB_CACHE", str(tmp_path_factory.getbasetemp() / "engramlab-cache"))
