"""engramlab.io: atomic file and folder writes, figures, strict JSON."""

import json
import math
import os

import numpy as np
import pytest
import torch

from engramlab import io


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_atomic_write_leaves_the_old_file_and_no_temporary_when_the_writer_raises(tmp_path):
    """The temporary name keeps the suffix (writers like savefig / np.savez pick the format from it)."""
    p = tmp_path / "out.npz"
    p.write_bytes(b"old")
    seen = []

    def failing(tmp):
        seen.append(tmp)
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.atomic_write(p, failing)
    assert p.read_bytes() == b"old"
    assert seen[0].endswith(".npz") and os.path.dirname(seen[0]) == str(tmp_path)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.npz"]
    assert io.atomic_write(p, lambda tmp: np.savez(tmp, a=np.arange(3))) == p
    assert np.load(p)["a"].tolist() == [0, 1, 2]


def test_atomic_write_gives_the_usual_permissions_and_makes_the_folder(tmp_path):
    p = tmp_path / "new" / "out.bin"
    io.atomic_write_bytes(p, b"abc")
    assert p.read_bytes() == b"abc"
    assert (p.stat().st_mode & 0o777) == 0o666 & ~_umask()  # not mkstemp's private 0o600
    io.atomic_write_text(p, "é\n")
    assert p.read_bytes() == "é\n".encode()
    assert [x.name for x in p.parent.iterdir()] == ["out.bin"]


def test_atomic_folder_replaces_an_existing_folder_only_on_success(tmp_path):
    target = tmp_path / "ckpt"
    with io.atomic_folder(target) as tmp:
        assert tmp != target and tmp.parent == tmp_path and not any(tmp.iterdir())
        (tmp / "a.txt").write_text("one")
        assert not target.exists()  # nothing appears before the block ends
    assert (target / "a.txt").read_text() == "one"
    assert (target.stat().st_mode & 0o777) == 0o777 & ~_umask()
    with pytest.raises(RuntimeError, match="crash"):
        with io.atomic_folder(target) as tmp:
            (tmp / "a.txt").write_text("two")
            (tmp / "extra.txt").write_text("two")
            raise RuntimeError("crash while writing")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert (target / "a.txt").read_text() == "one"  # the old folder is untouched
    with io.atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("three")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # replaced as a whole, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary or old folders left


def test_write_json_turns_nan_and_inf_into_null_and_numpy_torch_into_numbers(tmp_path):
    from dataclasses import dataclass
    from pathlib import Path

    @dataclass
    class Cfg:
        lr: float
        name: str

    obj = {
        "nan": float("nan"),
        "inf": float("inf"),
        "-inf": -math.inf,
        "np_nan": np.float32("nan"),
        "np_int": np.int64(7),
        "np_float": np.float32(0.5),
        "np_bool": np.bool_(True),
        "array": np.array([[1, 2], [3, 4]], dtype=np.int16),
        "farray": np.array([1.5, np.nan]),
        "tensor": torch.tensor([0.25, float("inf")]),
        "scalar": torch.tensor(3),
        "dtype": torch.float32,
        "tuple": (1, 2.0),
        "path": Path("a/b"),
        "cfg": Cfg(1e-3, "x"),
        4: "int key",
    }
    p = io.write_json(tmp_path / "r.json", obj)
    text = p.read_text()
    assert "NaN" not in text and "Infinity" not in text and text.endswith("\n")
    back = json.loads(text)  # strict JSON: every reader accepts it
    assert back == {
        "nan": None,
        "inf": None,
        "-inf": None,
        "np_nan": None,
        "np_int": 7,
        "np_float": 0.5,
        "np_bool": True,
        "array": [[1, 2], [3, 4]],
        "farray": [1.5, None],
        "tensor": [0.25, None],
        "scalar": 3,
        "dtype": "torch.float32",
        "tuple": [1, 2.0],
        "path": "a/b",
        "cfg": {"lr": 1e-3, "name": "x"},
        "4": "int key",
    }
    assert type(back["np_int"]) is int and type(back["np_float"]) is float
    assert io.read_json(p) == back
    assert io.dumps_json([1, float("nan")], indent=None) == "[1, null]"


def test_write_json_refuses_what_it_cannot_write_and_keeps_the_old_file(tmp_path):
    p = tmp_path / "r.json"
    io.write_json(p, {"a": 1})
    with pytest.raises(TypeError, match="cannot write a object as JSON"):
        io.write_json(p, {"a": object()})
    assert io.read_json(p) == {"a": 1}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.json"]


def test_read_json_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="JSON file not found: .*missing.json"):
        io.read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,')
    with pytest.raises(ValueError, match=r"bad.json is not valid JSON \(.*line 1"):
        io.read_json(bad)


def test_save_figure_writes_a_png_matplotlib_reads_and_closes_the_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    n_open = len(plt.get_fignums())
    p = io.save_figure(fig, tmp_path / "fig", dpi=50)
    assert p == tmp_path / "fig.png"  # no suffix: PNG
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(p)
    assert img.shape[:2] == (50, 100)  # 2 x 1 inches at 50 dpi
    assert len(plt.get_fignums()) == n_open - 1 and not plt.fignum_exists(fig.number)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["fig.png"]


def test_save_figure_closes_the_figure_and_writes_nothing_when_saving_fails(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    with pytest.raises(ValueError):
        io.save_figure(fig, tmp_path / "fig.notaformat")
    assert not plt.fignum_exists(fig.number)
    assert not any(tmp_path.iterdir())


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGRAMLAB_CACHE", str(tmp_path / "c"))
    assert io.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ENGRAMLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and not os.uname().sysname == "Darwin":
        assert io.cache_dir() == tmp_path / "xdg" / "engramlab"


def test_sha256_of_matches_hashlib(tmp_path):
    import hashlib

    data = os.urandom(3 * (1 << 20) + 17)  # more than one 1 MiB block
    p = tmp_path / "x.bin"
    p.write_bytes(data)
    assert io.sha256_of(p) == hashlib.sha256(data).hexdigest()
