"""Checksummed downloads (engramlab.io.fetch) and the data registry, against a local HTTP server."""

import dataclasses
import hashlib

import numpy as np
import pytest

from engramlab import io
from engramlab.cli import main
from engramlab.data import registry

DATA = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40
DATA_SHA = hashlib.sha256(DATA).hexdigest()


def test_fetch_keeps_a_right_download_and_then_uses_the_cache(local_server, tmp_path):
    url = local_server.add("corpus.txt", DATA)
    cache = tmp_path / "cache"
    p = io.fetch(url, DATA_SHA, "c.txt", folder=cache)
    assert p == cache / "c.txt" and p.read_bytes() == DATA
    assert local_server.requests["/corpus.txt"] == 1
    assert sorted(x.name for x in cache.iterdir()) == ["c.txt"]  # no temporary file left
    assert io.fetch(url, DATA_SHA, "c.txt", folder=cache) == p
    assert local_server.requests["/corpus.txt"] == 1  # the second call made no request
    p.write_bytes(b"corrupted")  # a cached file with the wrong checksum is fetched again
    assert io.fetch(url, DATA_SHA, "c.txt", folder=cache).read_bytes() == DATA
    assert local_server.requests["/corpus.txt"] == 2


def test_fetch_refuses_a_wrong_checksum_and_keeps_nothing(local_server, tmp_path):
    url = local_server.add("corpus.txt", DATA)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=f"corpus.txt has SHA-256 {DATA_SHA}, expected {'0' * 64}; nothing was kept"):
        io.fetch(url, "0" * 64, "c.txt", folder=cache)
    assert not any(cache.iterdir())


def test_fetch_without_a_published_checksum_records_the_first_one(local_server, tmp_path):
    url = local_server.add("a.tgz", DATA)
    cache = tmp_path / "cache"
    p = io.fetch(url, None, "a.tgz", folder=cache)
    assert (cache / "a.tgz.sha256").read_text().strip() == DATA_SHA
    assert io.fetch(url, None, "a.tgz", folder=cache) == p and local_server.requests["/a.tgz"] == 1
    # the source changes: a new download must match the recorded checksum, else nothing is kept
    p.unlink()
    local_server.add("a.tgz", b"something else")
    with pytest.raises(ValueError, match=f"(?s){DATA_SHA}.*recorded at the first download.*nothing was kept"):
        io.fetch(url, None, "a.tgz", folder=cache)
    assert sorted(x.name for x in cache.iterdir()) == ["a.tgz.sha256"]


def test_fetch_network_error_is_clear(local_server, tmp_path):
    with pytest.raises(RuntimeError, match="could not download .*missing.txt.*pass its local path"):
        io.fetch(local_server.url("missing.txt"), DATA_SHA, "m.txt", folder=tmp_path)


@pytest.fixture
def served_source(local_server, monkeypatch, tmp_path):
    """The registry's tinyshakespeare entry pointed at DATA on the local server; an empty cache."""
    monkeypatch.setenv("ENGRAMLAB_CACHE", str(tmp_path / "cache"))
    url = local_server.add("input.txt", DATA)
    src = dataclasses.replace(registry.SOURCES["tinyshakespeare"], url=url, sha256=DATA_SHA, n_bytes=len(DATA))
    monkeypatch.setitem(registry.SOURCES, "tinyshakespeare", src)
    return src


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown data source 'tinyshakespear'; known: tinyshakespeare, insula"):
        registry.fetch("tinyshakespear")
    assert {"tinyshakespeare", "insula", "europarl-pl-en"} <= {s.name for s in registry.list_sources()}


def test_registered_checksums_are_sha256_hex():
    for s in registry.list_sources():
        assert s.sha256 is None or (len(s.sha256) == 64 and int(s.sha256, 16) >= 0), s.name
        assert s.url.startswith("https://") and s.licence and s.kind in ("text", "spikes", "archive")


def test_a_given_path_is_checked_against_the_registry(tmp_path, served_source, local_server):
    good = tmp_path / "mine.txt"
    good.write_bytes(DATA)
    assert registry.fetch("tinyshakespeare", good) == good
    bad = tmp_path / "other.txt"
    bad.write_bytes(b"not the corpus")
    other_sha = hashlib.sha256(b"not the corpus").hexdigest()
    with pytest.raises(ValueError, match=f"other.txt is not the tiny Shakespeare corpus.*{other_sha}.*{DATA_SHA}"):
        registry.fetch("tinyshakespeare", bad)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        registry.fetch("tinyshakespeare", tmp_path / "nope.txt")
    assert sum(local_server.requests.values()) == 0  # a given path never downloads


def test_fetch_by_name_downloads_once_into_the_cache(served_source, local_server):
    p = registry.fetch("tinyshakespeare")
    assert p == io.cache_dir() / "tinyshakespeare.txt" and p.read_bytes() == DATA
    assert registry.fetch("tinyshakespeare") == p
    assert local_server.requests["/input.txt"] == 1


def test_load_corpus_tinyshakespeare_comes_from_the_registry(served_source, local_server):
    from engramlab.data.text import load_corpus

    c = load_corpus("tinyshakespeare")
    assert bytes(np.concatenate([c.train, c.val])) == DATA
    assert c.name == "tinyshakespeare" and local_server.requests["/input.txt"] == 1


def test_load_spikes_accepts_a_registered_recording(local_server, monkeypatch, tmp_path):
    from engramlab.data.spikes import SpikeTimes, load_spikes, save_npz

    monkeypatch.setenv("ENGRAMLAB_CACHE", str(tmp_path / "cache"))

    st = SpikeTimes([np.array([0.1, 0.5]), np.array([0.2])], {"lever": np.array([0.3])})
    save_npz(st, tmp_path / "rec.npz")
    data = (tmp_path / "rec.npz").read_bytes()
    src = dataclasses.replace(
        registry.SOURCES["insula"],
        url=local_server.add("rec.npz", data),
        sha256=hashlib.sha256(data).hexdigest(),
        filename="rec.npz",
    )
    monkeypatch.setitem(registry.SOURCES, "insula", src)
    got = load_spikes("insula")
    assert [t.tolist() for t in got.times] == [[0.1, 0.5], [0.2]] and got.events["lever"].tolist() == [0.3]
    with pytest.raises(FileNotFoundError, match="spike file not found: tinyshakespeare"):
        load_spikes("tinyshakespeare")  # a registered text is not a recording: nothing is fetched
    assert list(local_server.requests) == ["/rec.npz"]


def test_cli_data_list_and_fetch(tmp_path, capsys, served_source):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "bytes", "source", "licence"]
    row = next(line for line in out if line.startswith("tinyshakespeare "))
    assert f"{len(DATA):,}" in row and served_source.url in row and "public domain" in row
    assert any(line.startswith("insula ") and "2,826,961" in line and "MIT" in line for line in out)
    assert main(["data", "fetch", "tinyshakespeare"]) == 0
    assert capsys.readouterr().out.strip() == str(io.cache_dir() / "tinyshakespeare.txt")
    mine = tmp_path / "mine.txt"
    mine.write_bytes(DATA)
    assert main(["data", "fetch", "tinyshakespeare", "--path", str(mine)]) == 0
    assert capsys.readouterr().out.strip() == str(mine)
    assert main(["data", "fetch", "nope"]) == 2
    assert "unknown data source 'nope'" in capsys.readouterr().err
