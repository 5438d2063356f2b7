"""Parallel corpora: aligned files -> translation byte stream; Europarl download from a local archive."""

import hashlib
import io
import tarfile

import pytest

from engramlab.data.parallel import (
    build_translation_corpus,
    europarl_files,
    europarl_translation_corpus,
    read_aligned,
    translation_stream,
)

EN = ["Resumption of the session", "", "I declare resumed the session.", "Thank you.", ""]
PL = ["Wznowienie sesji", "Pusta", "Ogłaszam wznowienie sesji.", "Dziękuję.", ""]


def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return p


def test_read_aligned_drops_empty_pairs_and_keeps_utf8(tmp_path):
    pairs = read_aligned(write(tmp_path, "a.en", EN), write(tmp_path, "a.pl", PL))
    assert pairs == [
        ("Resumption of the session", "Wznowienie sesji"),
        ("I declare resumed the session.", "Ogłaszam wznowienie sesji."),
        ("Thank you.", "Dziękuję."),
    ]
    assert len(read_aligned(tmp_path / "a.en", tmp_path / "a.pl", max_pairs=2)) == 2


def test_stream_format_alternates_directions():
    pairs = [("a b", "x y"), ("c", "z"), ("d", "w")]
    s = translation_stream(pairs, "en", "pl").decode("utf-8")
    assert s == "<en> a b <pl> x y\n<pl> z <en> c\n<en> d <pl> w\n"
    one = translation_stream(pairs, "en", "pl", both_directions=False).decode()
    assert one.splitlines()[1] == "<en> c <pl> z"


def test_build_corpus_is_bytes_of_the_stream(tmp_path):
    en, pl = write(tmp_path, "a.en", EN), write(tmp_path, "a.pl", PL)
    cs = write(tmp_path, "b.cs", ["Díky.", "Ano"])
    en2 = write(tmp_path, "b.en", ["Thanks.", "Yes"])
    out = build_translation_corpus([(en, pl, "en", "pl"), (en2, cs, "en", "cs")], tmp_path / "t.txt")
    data = out.read_bytes()
    assert data.decode("utf-8").count("\n") == 5
    assert "<en> Thanks. <cs> Díky.\n".encode() in data
    assert max(data) > 127  # multi-byte UTF-8 kept as raw bytes
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


def test_bad_input(tmp_path):
    en = write(tmp_path, "a.en", EN)
    short = write(tmp_path, "s.pl", PL[:2])
    with pytest.raises(ValueError, match="differ in length"):
        read_aligned(en, short)
    with pytest.raises(FileNotFoundError):
        read_aligned(en, tmp_path / "missing.pl")
    with pytest.raises(ValueError, match="language tag"):
        translation_stream([("a", "b")], "e n", "pl")
    with pytest.raises(ValueError):
        build_translation_corpus([], tmp_path / "x.txt")
    with pytest.raises(ValueError, match="unknown Europarl"):
        europarl_files("xx-en", tmp_path)


def make_archive(path, pair, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, lines in files.items():
            data = ("\n".join(lines) + "\n").encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_europarl_download_extract_and_build_from_a_locally_served_archive(tmp_path, local_server):
    src = tmp_path / "src"
    src.mkdir()
    make_archive(src / "pl-en.tgz", "pl-en", {"europarl-v7.pl-en.en": EN, "europarl-v7.pl-en.pl": PL})
    url = local_server.add("pl-en.tgz", (src / "pl-en.tgz").read_bytes())
    root = tmp_path / "cache"
    f_en, f_pl = europarl_files("pl-en", root, url=url)
    assert f_en.read_text().splitlines() == EN and f_pl.read_text().splitlines() == PL
    recorded = (root / "pl-en.tgz.sha256").read_text().strip()  # the first download's hash is recorded
    assert recorded == hashlib.sha256((src / "pl-en.tgz").read_bytes()).hexdigest()
    out = europarl_translation_corpus(["pl-en"], root)
    assert out.read_text().splitlines()[0] == "<en> Resumption of the session <pl> Wznowienie sesji"
    # extracted files missing: the cached archive is checked against the record and reused
    for f in (f_en, f_pl):
        f.unlink()
    europarl_files("pl-en", root, url=url)
    assert local_server.requests["/pl-en.tgz"] == 1
    # a pinned hash that does not match is refused and nothing is saved
    (root / "pl-en.tgz").unlink()
    for f in (f_en, f_pl):
        f.unlink()
    with pytest.raises(ValueError, match=f"has SHA-256 {recorded}, expected {'0' * 64}; nothing was kept"):
        europarl_files("pl-en", root, sha256="0" * 64, url=url)
    assert not (root / "pl-en.tgz").exists() and not f_en.exists()
