import hashlib

import numpy as np
import pytest
import torch

from engramlab.data.text import (
    ConsecutiveBatcher,
    get_batch,
    load_corpus,
    markdown_play_to_text,
)


def test_markdown_stripping_by_hand():
    md = (
        "# A Play\n\n## ACT I\n\n### SCENE I. A room.\n\n_Enter HAMLET_\n\n"
        "**HAMLET**  \nTo be, or not to be:  \nthat is the question.\n\n__\\[Aside]_  \n*Exit.*\n"
    )
    assert markdown_play_to_text(md) == (
        "A Play\n\nACT I\n\nSCENE I. A room.\n\nEnter HAMLET\n\n"
        "HAMLET:\nTo be, or not to be:\nthat is the question.\n\n[Aside]\nExit.\n"
    )


def test_builtin_shakespeare_is_plain_text():
    c = load_corpus("shakespeare")
    assert c.train.dtype == np.uint8 and isinstance(c.train, np.memmap)
    assert 4_500_000 < c.n_bytes < 5_500_000  # the 38 plays, about 5 MB
    sample = bytes(c.train[:200_000]).decode("utf-8")
    assert "**" not in sample and "_" not in sample and "\\[" not in sample and "#" not in sample
    assert "HAMLET:\n" in bytes(c.val).decode("utf-8") or "HAMLET:\n" in sample or "ROMEO:\n" in bytes(c.val).decode()
    # deterministic split: 10 % held out at the end
    assert len(c.val) == round(c.n_bytes * 0.1)


def test_tinyshakespeare_from_local_path(tinyshakespeare):
    c = load_corpus("tinyshakespeare", path=tinyshakespeare)
    assert c.n_bytes == 1_115_394
    assert len(c.train) == 1_115_394 - round(1_115_394 * 0.1)
    assert bytes(c.train[:14]) == b"First Citizen:"


def test_tinyshakespeare_checksum_rejects_other_file(tmp_path):
    p = tmp_path / "fake.txt"
    p.write_text("not the corpus")
    with pytest.raises(ValueError, match="not the tiny Shakespeare corpus"):
        load_corpus("tinyshakespeare", path=p)


def test_tinyshakespeare_download_is_checked_and_cached(local_server, monkeypatch, tmp_path):
    """The corpus through the registry, served locally: right bytes kept in the cache and reused,
    wrong bytes refused with nothing kept."""
    import dataclasses

    from engramlab.data import registry

    monkeypatch.setenv("ENGRAMLAB_CACHE", str(tmp_path / "cache"))
    src = registry.SOURCES["tinyshakespeare"]
    right = b"First Citizen:\nSpeak, speak.\n" * 30
    monkeypatch.setitem(
        registry.SOURCES,
        "tinyshakespeare",
        dataclasses.replace(
            src, url=local_server.add("wrong.txt", right[:-1]), sha256=hashlib.sha256(right).hexdigest()
        ),
    )
    with pytest.raises(ValueError, match="wrong.txt has SHA-256 .*, expected .*; nothing was kept"):
        load_corpus("tinyshakespeare")
    assert not any((tmp_path / "cache").iterdir())
    monkeypatch.setitem(
        registry.SOURCES,
        "tinyshakespeare",
        dataclasses.replace(src, url=local_server.add("input.txt", right), sha256=hashlib.sha256(right).hexdigest()),
    )
    for _ in range(2):
        c = load_corpus("tinyshakespeare")
        assert bytes(np.concatenate([c.train, c.val])) == right
    assert (tmp_path / "cache" / "tinyshakespeare.txt").read_bytes() == right
    assert local_server.requests["/input.txt"] == 1  # the second load used the cache


def test_bad_inputs_have_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_corpus(str(tmp_path / "nope.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_corpus(str(empty))
    with pytest.raises(ValueError, match="unknown corpus 'shakespear'.*shakespeare, tinyshakespeare"):
        load_corpus("shakespear")
    small = tmp_path / "small.txt"
    small.write_text("x" * 100)
    c = load_corpus(str(small))
    with pytest.raises(ValueError, match="small.txt.*fewer than one training window"):
        c.check_block(64)


def test_folder_of_files(tmp_path):
    (tmp_path / "b.txt").write_text("world")
    (tmp_path / "a.txt").write_text("hello")
    c = load_corpus(str(tmp_path), val_fraction=0.25)
    assert bytes(np.concatenate([c.train, c.val])) == b"hello\n\nworld"


def test_get_batch_windows():
    data = np.arange(200, dtype=np.uint8)
    x, y = get_batch(data, 4, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(4, 15, dtype=torch.int64))  # contiguous windows


def test_consecutive_batcher_continues_each_stream():
    data = (np.arange(1000) % 251).astype(np.uint8)
    b = ConsecutiveBatcher(data, batch_size=3, block_size=10)
    x1, y1, r1 = b.next()
    x2, _, r2 = b.next()
    assert r1 and not r2
    assert torch.equal(x2[:, 0], y1[:, -1])  # row b resumes where it stopped
    for _ in range(b.windows_per_stream - 2):
        b.next()
    assert b.next()[2]  # wrapped around: state must be reset


def test_europarl_names_read_the_cached_translation_stream(tmp_path, monkeypatch):
    # a pre-extracted Europarl pair in the cache: no download happens
    monkeypatch.setenv("ENGRAMLAB_CACHE", str(tmp_path))
    root = tmp_path / "europarl"
    root.mkdir()
    (root / "europarl-v7.pl-en.en").write_text("Resumption of the session\nThank you\n" * 50)
    (root / "europarl-v7.pl-en.pl").write_text("Wznowienie sesji\nDziekuje\n" * 50)
    c = load_corpus("europarl-pl-en")
    stream = bytes(np.concatenate([c.train, c.val])).decode()
    assert "Resumption of the session" in stream and "Wznowienie sesji" in stream
    with pytest.raises(ValueError, match="unknown Europarl v7 pair 'xx-yy'; known: bg-en"):
        load_corpus("europarl-xx-yy")
