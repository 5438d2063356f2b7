"""The one place engramlab writes files: atomic file and folder writes, figures, JSON, downloads.

Every writer in the package goes through this module, so that nothing is ever left half-written:

- ``atomic_write(path, writer)`` / ``atomic_write_bytes`` / ``atomic_write_text``: a file is
  written under a temporary name in its own folder, then renamed into place;
- ``atomic_folder(path)``: a whole folder (a saved model, a checkpoint) appears at once, or not;
- ``save_figure(fig, path)``: a matplotlib figure written atomically, then closed;
- ``to_jsonable`` / ``dumps_json`` / ``write_json`` / ``read_json``: JSON that accepts numpy
  scalars and arrays, torch tensors, paths and dataclasses, and writes NaN and infinities as
  ``null`` (so the file is valid JSON that every reader accepts);
- ``cache_dir()`` and ``fetch(url, sha256, name)``: a streamed, checksummed download (pooch)
  into the user cache (``$ENGRAMLAB_CACHE``, else the platform's cache folder from platformdirs);
  ``sha256_of(path)`` checks a file given by hand. The files one can fetch by name are listed in
  ``engramlab.data.registry``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_folder",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "cache_dir",
    "dumps_json",
    "fetch",
    "give_usual_permissions",
    "read_json",
    "save_figure",
    "sha256_of",
    "to_jsonable",
    "write_json",
]


# --------------------------------------------------------------------------------------- files
def give_usual_permissions(path: str | Path, folder: bool = False) -> None:
    """mkstemp/mkdtemp make private entries; give the permissions a plain open()/mkdir() would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if folder else 0o666) & ~umask)


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> Path:
    """``write(tmp_path)`` into a temporary file beside ``path``, then rename it to ``path``.

    Never leaves a half-written file: on any error the temporary file is removed and ``path``
    is untouched. The temporary name keeps ``path``'s suffix, so writers that pick a format
    from it (``savefig``, ``np.savez``) work. The result gets the usual permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        write(tmp)
        give_usual_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Write a folder atomically: yield an empty temporary folder beside ``path``; when the block
    ends without error it replaces ``path`` (an existing folder is moved aside first and removed
    after), and on any error it is deleted, so ``path`` is never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        give_usual_permissions(tmp, folder=True)
        if path.exists():
            old = path.parent / f".{path.name}.old{os.getpid()}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_figure(fig, path: str | Path, dpi: int = 110, close: bool = True, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the suffix, PNG by default), then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, **kwargs))
    finally:
        if close:
            plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------- JSON
def to_jsonable(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts.

    numpy scalars/arrays and torch tensors become numbers/lists, dataclasses dicts, paths
    strings, tuples and sets lists; NaN and +-inf become ``None`` (JSON ``null``).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    mod = type(obj).__module__
    if mod.startswith("numpy"):
        import numpy as np

        if isinstance(obj, np.ndarray):
            return to_jsonable(obj.tolist())
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return to_jsonable(float(obj))
    if mod.startswith("torch"):
        import torch

        if isinstance(obj, torch.Tensor):
            return to_jsonable(obj.detach().cpu().tolist())
        if isinstance(obj, (torch.dtype, torch.device)):
            return str(obj)
    raise TypeError(f"cannot write a {type(obj).__name__} as JSON: {obj!r}")


def dumps_json(obj: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """``obj`` as strict JSON text (see ``to_jsonable``), with a trailing newline when indented."""
    text = json.dumps(to_jsonable(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)
    return text + "\n" if indent is not None else text


def write_json(path: str | Path, obj: Any, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, dumps_json(obj, indent=indent, sort_keys=sort_keys))


def read_json(path: str | Path) -> Any:
    """Read a JSON file, with one clear error for a missing or corrupted file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSON file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


# ----------------------------------------------------------------------------------- downloads
def cache_dir() -> Path:
    """``$ENGRAMLAB_CACHE`` if set, else the platform's user cache folder for engramlab
    (``~/.cache/engramlab`` on Linux, honouring ``$XDG_CACHE_HOME``)."""
    if os.environ.get("ENGRAMLAB_CACHE"):
        return Path(os.environ["ENGRAMLAB_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("engramlab", appauthor=False))


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, sha256: str | None, name: str, folder: str | Path | None = None, progress: bool = False) -> Path:
    """Download ``url`` once into ``folder`` (default ``cache_dir()``) as ``name``; return its path.

    The download is streamed to a temporary file and kept only if its SHA-256 equals ``sha256``.
    A cached file with the right checksum is used as it is (no request); one with the wrong
    checksum is downloaded again.

    ``sha256=None`` is for sources that publish no checksum: the first download's SHA-256 is
    recorded beside the file (``name + ".sha256"``) and every later use, or later download,
    must match that record. A cached file without a record cannot be checked and is
    downloaded again.
    """
    import pooch

    folder = Path(folder) if folder is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    record = folder / f"{name}.sha256" if sha256 is None else None
    if record is not None:
        if record.is_file():
            sha256 = record.read_text(encoding="utf-8").strip()
        elif target.exists():
            target.unlink()  # unverifiable (no recorded checksum): fetch it again
    try:
        path = Path(
            pooch.retrieve(
                url,
                known_hash=f"sha256:{sha256}" if sha256 else None,
                fname=name,
                path=folder,
                progressbar=progress,
            )
        )
    except ValueError as e:  # pooch's checksum mismatch: "... expected sha256:X but got Y. ..."
        got = re.search(r"but got ([0-9a-fA-F]+)", str(e))
        what = f"has SHA-256 {got.group(1)}, expected {sha256}" if got else f"failed its checksum check ({e})"
        hint = (
            f" (the checksum recorded at the first download, in {record}; delete that file to accept a changed source)"
            if record is not None and record.is_file()
            else ""
        )
        raise ValueError(f"download of {url} {what}{hint}; nothing was kept") from None
    except Exception as e:  # network errors of requests / urllib
        raise RuntimeError(
            f"could not download {url} ({type(e).__name__}: {e}); download it yourself and pass its local path"
        ) from None
    try:
        give_usual_permissions(path)  # pooch's temporary file is private (0600)
    except PermissionError:
        pass  # a cached file of another user: readable is all we need
    if record is not None and not record.is_file():
        atomic_write_text(record, sha256_of(path) + "\n")
    return path
