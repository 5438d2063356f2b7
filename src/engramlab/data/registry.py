"""The data files engramlab can fetch by name: public source, checksum, licence.

``fetch(name)`` downloads a file once into the user cache (``engramlab.io.cache_dir()``), streamed
and checked against its SHA-256 (``engramlab.io.fetch``), and returns its local path; later calls
use the cached copy without a request. ``fetch(name, path=FILE)`` checks a copy you already have
instead and returns it. The command line does the same: ``engramlab data list`` and
``engramlab data fetch NAME [--path FILE]``.

Loaders accept the names too: ``load_corpus("tinyshakespeare")``, ``load_spikes("insula")`` (and so
``engramlab hmmglm fit insula``).

Europarl v7 publishes no checksums: its archives (the BDH paper's two pairs are registered;
``engramlab.data.parallel.europarl_files`` fetches any of the 20 the same way) have none here,
the SHA-256 of the first download is recorded beside the file and every later use is checked
against that record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engramlab import io

__all__ = ["EUROPARL_PAIRS", "EUROPARL_URL", "SOURCES", "Source", "fetch", "get_source", "list_sources", "local_path"]


@dataclass(frozen=True)
class Source:
    """One fetchable file."""

    name: str
    title: str  # what the file is, as a noun phrase ("the tiny Shakespeare corpus")
    url: str
    sha256: str | None  # None: the source publishes none (recorded at the first download)
    n_bytes: int | None
    filename: str  # its name in the cache
    origin: str  # where it comes from, for people
    licence: str
    kind: str  # "text" (a byte corpus), "spikes" (a spike recording), "archive" (a tgz of text files)
    subfolder: str = ""  # inside the cache folder

    def cache_path(self) -> Path:
        return io.cache_dir() / self.subfolder / self.filename


EUROPARL_PAIRS = (
    "bg-en",
    "cs-en",
    "da-en",
    "de-en",
    "el-en",
    "es-en",
    "et-en",
    "fi-en",
    "fr-en",
    "hu-en",
    "it-en",
    "lt-en",
    "lv-en",
    "nl-en",
    "pl-en",
    "pt-en",
    "ro-en",
    "sk-en",
    "sl-en",
    "sv-en",
)
EUROPARL_URL = "https://www.statmt.org/europarl/v7/{pair}.tgz"

SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source(
            name="tinyshakespeare",
            title="the tiny Shakespeare corpus",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            n_bytes=1_115_394,
            filename="tinyshakespeare.txt",
            origin="karpathy/char-rnn data/tinyshakespeare/input.txt (the corpus of char-rnn and nanoGPT)",
            licence="public domain (Shakespeare's text)",
            kind="text",
        ),
        Source(
            name="insula",
            title="the insula spike recording",
            url="https://raw.githubusercontent.com/AamnaLawrence/GLM-HMM-Neuronal-Encoding/"
            "cb79443bc55d2b2523edd92e13494fd941f2768e/Data/Insula/insula.mat",
            sha256="3aaff067de6a80224b4493611ad5f6838b6fe5f37701ff8016f196fb3faf3c9f",
            n_bytes=2_826_961,
            filename="insula.mat",
            origin="AamnaLawrence/GLM-HMM-Neuronal-Encoding Data/Insula/insula.mat, recorded in the Janak lab: "
            "MATLAB struct RAW with Nrast (96 cells, spike times in s), Ninfo, Erast "
            "(9 behavioural event channels), Einfo",
            licence="MIT (licence of that repository)",
            kind="spikes",
        ),
    ]
    + [
        Source(
            name=f"europarl-{pair}",
            title=f"the Europarl v7 {pair} archive",
            url=EUROPARL_URL.format(pair=pair),
            sha256=None,
            n_bytes=None,
            filename=f"{pair}.tgz",
            origin=f"statmt.org Europarl v7 parallel corpus {pair} (Koehn 2005); no published checksum: "
            "recorded at the first download",
            licence="no known copyright restrictions (statmt.org)",
            kind="archive",
            subfolder="europarl",
        )
        for pair in ("pl-en", "cs-en")  # the BDH paper's En-Pl and En-Cs (any pair: data.parallel)
    ]
}


def list_sources() -> list[Source]:
    """Every registered source, in registry order."""
    return list(SOURCES.values())


def get_source(name: str) -> Source:
    """The source called ``name``; a clear error listing the known names otherwise."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown data source {name!r}; known: {', '.join(SOURCES)}") from None


def fetch(name: str, path: str | Path | None = None, progress: bool = False) -> Path:
    """A local, checked copy of source ``name``.

    With ``path``: that file, after checking its SHA-256 against the registry (a clear error naming
    both hashes if it differs). Without: the cached copy, downloaded once (streamed, checked; a failed
    check keeps nothing).
    """
    src = get_source(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"{name}: file not found: {p} (expected a local copy of {src.title})")
        if src.sha256 is not None:
            got = io.sha256_of(p)
            if got != src.sha256:
                raise ValueError(f"{p} is not {src.title} ({name}): SHA-256 {got}, expected {src.sha256}")
        return p
    return io.fetch(src.url, src.sha256, src.filename, folder=io.cache_dir() / src.subfolder, progress=progress)


def local_path(spec: str | Path, kind: str | None = None) -> Path:
    """``spec`` as a local path: an existing file or folder as it is, a registered name (of ``kind``,
    if given) fetched; anything else is returned unchanged (as a Path) for the caller's own
    not-found error."""
    p = Path(spec).expanduser()
    src = SOURCES.get(str(spec))
    if not p.exists() and src is not None and kind in (None, src.kind):
        return fetch(src.name)
    return p
