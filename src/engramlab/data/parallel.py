"""Parallel corpora (aligned sentence files) as a translation byte stream, and Europarl v7.

The BDH paper's scaling data is Europarl translation as raw UTF-8 bytes (En-Pl and En-Cs,
2,048-byte windows, state carried across windows). The paper does not publish its exact
markup, so this project's stream is one sentence pair per line:

    <en> Resumption of the session <pl> Wznowienie sesji\\n

with the language tags in angle brackets. With ``both_directions=True`` pairs alternate
direction (even pairs source -> target, odd pairs target -> source), so a model learns to
translate both ways. Pairs where either side is empty (Europarl's failed alignments) are
dropped. The result is a plain byte file that ``engramlab.data.text.load_corpus`` reads as
any other corpus (vocabulary 256).

Europarl v7 (Koehn 2005, https://www.statmt.org/europarl/) is downloaded on request into the
user cache (``engramlab.io.cache_dir() / "europarl"``; the archives are the registry's
``europarl-<xx>-en`` sources), never at test time. Its archives have no published SHA-256, so
on first download the file's SHA-256 is recorded beside it and every later use checks the
cached file against that record (``engramlab.io.fetch``; pass ``sha256=`` to pin a known value).
"""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from engramlab.data.registry import EUROPARL_PAIRS, EUROPARL_URL
from engramlab.io import atomic_write, atomic_write_bytes, cache_dir, fetch

__all__ = [
    "EUROPARL_PAIRS",
    "EUROPARL_URL",
    "PAPER_PAIRS",
    "build_translation_corpus",
    "europarl_files",
    "europarl_translation_corpus",
    "read_aligned",
    "translation_stream",
]

PAPER_PAIRS = ("pl-en", "cs-en")  # the paper's En-Pl and En-Cs


def read_aligned(src: str | Path, tgt: str | Path, max_pairs: int | None = None) -> list[tuple[str, str]]:
    """Sentence pairs from two aligned files (line i of one translates line i of the other).

    Lines are decoded as UTF-8 and stripped; pairs with an empty side are dropped.
    """
    src, tgt = Path(src), Path(tgt)
    for p in (src, tgt):
        if not p.is_file():
            raise FileNotFoundError(f"aligned sentence file {p} does not exist")
    if max_pairs is not None and (int(max_pairs) != max_pairs or max_pairs <= 0):
        raise ValueError(f"max_pairs must be a positive integer or None, got {max_pairs!r}")
    a = src.read_bytes().decode("utf-8", errors="strict").split("\n")
    b = tgt.read_bytes().decode("utf-8", errors="strict").split("\n")
    if a and a[-1] == "":
        a.pop()
    if b and b[-1] == "":
        b.pop()
    if len(a) != len(b):
        raise ValueError(
            f"aligned files differ in length: {src} has {len(a)} lines, {tgt} has {len(b)}; "
            "expected one sentence per line in both, line i of one translating line i of the other"
        )
    pairs = []
    for s, t in zip(a, b):
        s, t = s.strip(), t.strip()
        if s and t:
            pairs.append((s, t))
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
    return pairs


def _check_lang(tag: str) -> str:
    if not tag or any(c in tag for c in "<>\n \t"):
        raise ValueError(f"language tag {tag!r} must be non-empty without spaces or angle brackets")
    return tag


def translation_stream(
    pairs: Iterable[tuple[str, str]], src_lang: str, tgt_lang: str, both_directions: bool = True
) -> bytes:
    """The translation byte stream of the module docstring for one language pair."""
    s_tag, t_tag = _check_lang(src_lang), _check_lang(tgt_lang)
    lines = []
    for i, (s, t) in enumerate(pairs):
        if "\n" in s or "\n" in t:
            raise ValueError(f"pair {i} contains a line break; sentences must be single lines")
        if both_directions and i % 2 == 1:
            lines.append(f"<{t_tag}> {t} <{s_tag}> {s}\n")
        else:
            lines.append(f"<{s_tag}> {s} <{t_tag}> {t}\n")
    return "".join(lines).encode("utf-8")


def build_translation_corpus(
    sources: Sequence[tuple[str | Path, str | Path, str, str]],
    out: str | Path,
    both_directions: bool = True,
    max_pairs: int | None = None,
) -> Path:
    """Write the stream of several aligned pairs (src_file, tgt_file, src_lang, tgt_lang) to ``out``.

    Language pairs are concatenated in the given order (the paper mixes En-Pl and En-Cs); the
    file is written atomically. Returns ``out``.
    """
    if not sources:
        raise ValueError("build_translation_corpus needs at least one source: (src_file, tgt_file, src, tgt)")
    chunks = []
    for entry in sources:
        if len(entry) != 4:
            raise ValueError(f"each source must be (src_file, tgt_file, src_lang, tgt_lang), got {entry!r}")
        s, t, sl, tl = entry
        chunks.append(translation_stream(read_aligned(s, t, max_pairs), sl, tl, both_directions))
    data = b"".join(chunks)
    if not data:
        raise ValueError("the aligned files hold no non-empty sentence pairs")
    out = Path(out)
    atomic_write_bytes(out, data)
    return out


# ------------------------------------------------------------------------------------------ Europarl
def _check_pair(pair: str) -> tuple[str, str]:
    if pair not in EUROPARL_PAIRS:
        raise ValueError(f"unknown Europarl v7 pair {pair!r}; known: {', '.join(EUROPARL_PAIRS)}")
    xx, en = pair.split("-")
    return xx, en


def _copy_stream(src, dest: str) -> None:
    with open(dest, "wb") as f:
        shutil.copyfileobj(src, f, 1 << 20)


def europarl_files(
    pair: str = "pl-en",
    root: str | Path | None = None,
    sha256: str | None = None,
    url: str | None = None,
) -> tuple[Path, Path]:
    """(English file, other-language file) of Europarl v7 ``pair``, downloading it once into the cache.

    ``root`` defaults to ``cache_dir() / "europarl"``; ``url`` overrides the statmt.org address;
    ``sha256`` pins the archive's checksum (else the first download's is recorded and checked).
    """
    xx, en = _check_pair(pair)
    root = Path(root) if root is not None else cache_dir() / "europarl"
    names = {lang: f"europarl-v7.{pair}.{lang}" for lang in (en, xx)}
    paths = {lang: root / name for lang, name in names.items()}
    if all(p.exists() for p in paths.values()):
        return paths[en], paths[xx]
    archive = fetch(url or EUROPARL_URL.format(pair=pair), sha256, f"{pair}.tgz", folder=root)
    with tarfile.open(archive, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        for lang, name in names.items():
            if name not in members:
                raise ValueError(f"{archive} does not contain {name} (holds: {', '.join(sorted(members))})")
            fh = tar.extractfile(members[name])
            atomic_write(paths[lang], lambda tmp, fh=fh: _copy_stream(fh, tmp))  # streamed, not read whole
    return paths[en], paths[xx]


def europarl_translation_corpus(
    pairs: Sequence[str] = PAPER_PAIRS,
    root: str | Path | None = None,
    both_directions: bool = True,
    max_pairs: int | None = None,
) -> Path:
    """Build (once) the paper's translation stream from Europarl v7 pairs; returns the byte file."""
    if not pairs:
        raise ValueError("pairs must name at least one Europarl pair, e.g. ('pl-en', 'cs-en')")
    root = Path(root) if root is not None else cache_dir() / "europarl"
    tag = "+".join(pairs) + ("" if both_directions else ".oneway") + (f".max{max_pairs}" if max_pairs else "")
    out = root / f"translation.{tag}.txt"
    if out.exists():
        return out
    sources = []
    for pair in pairs:
        xx, en = _check_pair(pair)
        f_en, f_xx = europarl_files(pair, root)
        sources.append((f_en, f_xx, en, xx))
    return build_translation_corpus(sources, out, both_directions, max_pairs)
