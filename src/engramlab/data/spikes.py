"""Spike trains: load spike times (MATLAB .mat, NWB, npz), bin them, cut them into trials, validate.

A recording is a :class:`SpikeTimes`: one sorted float array of spike times (seconds) per neuron and a
dict of behavioural event times (seconds). ``bin_spikes`` turns it into counts (T, N);
``cut_around_events`` / ``cut_windows`` turn counts into trials (trials, T_trial, N) for the models.
Every user-caused problem raises one ValueError / FileNotFoundError / TypeError naming the bad value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engramlab.io import atomic_write


@dataclass
class SpikeTimes:
    times: list[np.ndarray]  # per neuron, seconds, sorted
    events: dict[str, np.ndarray] = field(default_factory=dict)  # name -> event times (seconds)
    t_start: float | None = None
    t_stop: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        validate_spike_times(self)

    @property
    def n_neurons(self) -> int:
        return len(self.times)

    @property
    def n_spikes(self) -> int:
        return int(sum(t.size for t in self.times))

    @property
    def start(self) -> float:
        if self.t_start is not None:
            return float(self.t_start)
        firsts = [t[0] for t in self.times if t.size] + [e.min() for e in self.events.values() if e.size]
        return float(min(firsts)) if firsts else 0.0

    @property
    def stop(self) -> float:
        if self.t_stop is not None:
            return float(self.t_stop)
        lasts = [t[-1] for t in self.times if t.size]
        return float(max(lasts)) if lasts else 0.0


def validate_spike_times(st: SpikeTimes) -> None:
    if not isinstance(st.times, (list, tuple)) or len(st.times) == 0:
        raise ValueError(
            f"{st.source or 'recording'}: expected a non-empty list of per-neuron spike-time "
            f"arrays, got {type(st.times).__name__}"
        )
    clean = []
    for i, t in enumerate(st.times):
        a = np.asarray(t, dtype=np.float64).ravel()
        if not np.isfinite(a).all():
            raise ValueError(f"{st.source or 'recording'}: neuron {i} has NaN/inf spike times")
        clean.append(np.sort(a))
    st.times = clean
    ev = {}
    for name, e in st.events.items():
        a = np.asarray(e, dtype=np.float64).ravel()
        if not np.isfinite(a).all():
            raise ValueError(f"{st.source or 'recording'}: event channel {name!r} has NaN/inf times")
        ev[str(name)] = np.sort(a)
    st.events = ev
    if st.t_start is not None and st.t_stop is not None and st.t_stop <= st.t_start:
        raise ValueError(f"t_stop ({st.t_stop}) must be after t_start ({st.t_start})")


# ---- loaders ------------------------------------------------------------------------------------------


def load_spikes(path) -> SpikeTimes:
    """Load by extension: .mat (MATLAB struct like insula.mat), .nwb (Units table), .npz.

    ``path`` may also name a spike recording of ``engramlab.data.registry`` (``"insula"``), which is
    then fetched (once, checksummed) into the user cache.
    """
    from engramlab.data.registry import local_path

    path = local_path(path, kind="spikes")
    if not path.is_file():
        raise FileNotFoundError(f"spike file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return load_mat(path)
    if suffix == ".nwb":
        return load_nwb(path)
    if suffix == ".npz":
        return load_npz(path)
    raise ValueError(f"unsupported spike file type {suffix!r} for {path}; expected .mat, .nwb or .npz")


def load_mat(path, struct: str = "RAW", spikes_field: str = "Nrast", events_field: str = "Erast") -> SpikeTimes:
    """MATLAB v5 file with a struct ``RAW``: ``Nrast`` = cell array with one column of spike times (s) per
    neuron; ``Erast`` = cell array with one row/column of event times per event channel (named
    ``event0``, ``event1``, ... since the names are stored as MATLAB string objects scipy cannot read).
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MATLAB file not found: {path}")
    try:
        m = scipy.io.loadmat(str(path), squeeze_me=False)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path} is not a readable MATLAB v5 file: {e}") from e
    if struct not in m:
        found = sorted(k for k in m if not k.startswith("__"))
        raise ValueError(f"{path}: no struct {struct!r}; found variables {found}")
    raw = m[struct]
    if raw.dtype.names is None or spikes_field not in raw.dtype.names:
        raise ValueError(f"{path}: struct {struct!r} has no field {spikes_field!r} (fields: {raw.dtype.names})")
    cells = raw[spikes_field].flat[0]
    times = [np.asarray(c, dtype=np.float64).ravel() for c in cells.flat]
    events = {}
    if events_field in raw.dtype.names:
        ecells = raw[events_field].flat[0]
        for i, c in enumerate(ecells.flat):
            events[f"event{i}"] = np.asarray(c, dtype=np.float64).ravel()
    return SpikeTimes(times, events, source=str(path))


def load_nwb(path) -> SpikeTimes:
    """NWB file: spike times from the Units table; trial start times (if a trials table exists) as the
    event ``trial_start``, and every TimeSeries/Events-like object in ``acquisition`` with timestamps
    as an event channel."""
    from pynwb import NWBHDF5IO

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NWB file not found: {path}")
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        if nwb.units is None or len(nwb.units) == 0:
            raise ValueError(f"{path}: the NWB file has no Units table (no sorted spikes)")
        units = nwb.units
        times = [np.asarray(units.get_unit_spike_times(i), dtype=np.float64) for i in range(len(units))]
        events = {}
        if nwb.trials is not None and len(nwb.trials) > 0:
            events["trial_start"] = np.asarray(nwb.trials["start_time"][:], dtype=np.float64)
        for name, obj in nwb.acquisition.items():
            ts = getattr(obj, "timestamps", None)
            if ts is not None:
                events[name] = np.asarray(ts[:], dtype=np.float64)
    return SpikeTimes(times, events, source=str(path))


def load_npz(path) -> SpikeTimes:
    """npz with ``spike_times`` (all spikes, s) and ``spike_units`` (neuron index per spike), optional
    ``n_neurons``, ``t_start``, ``t_stop`` and ``event_<name>`` arrays (the format of :func:`save_npz`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"npz file not found: {path}")
    with np.load(path) as z:
        for k in ("spike_times", "spike_units"):
            if k not in z:
                raise ValueError(
                    f"{path}: missing array {k!r}; expected spike_times, spike_units "
                    f"(and optional n_neurons, t_start, t_stop, event_<name>)"
                )
        t, u = np.asarray(z["spike_times"], np.float64), np.asarray(z["spike_units"])
        for k, a in (("spike_times", t), ("spike_units", u)):
            if a.ndim != 1:
                raise ValueError(
                    f"{path}: {k} has shape {a.shape}; expected 1-D arrays spike_times (every spike's time, s) "
                    f"and spike_units (every spike's neuron index) of equal length; a (bins, neurons) count "
                    f"matrix is not a spike file (pass counts to the models directly)"
                )
        if t.shape != u.shape:
            raise ValueError(f"{path}: spike_times {t.shape} and spike_units {u.shape} differ in shape")
        if u.size and (u.min() < 0 or not np.issubdtype(u.dtype, np.integer)):
            raise ValueError(f"{path}: spike_units must be non-negative integers")
        n = int(z["n_neurons"]) if "n_neurons" in z else (int(u.max()) + 1 if u.size else 0)
        times = [t[u == i] for i in range(n)]
        events = {k[len("event_") :]: z[k] for k in z.files if k.startswith("event_")}
        t0 = float(z["t_start"]) if "t_start" in z else None
        t1 = float(z["t_stop"]) if "t_stop" in z else None
    return SpikeTimes(times, events, t0, t1, source=str(path))


def save_npz(st: SpikeTimes, path) -> Path:
    """Write ``st`` in the npz format of :func:`load_npz` (atomically)."""
    path = Path(path)
    arrays = {
        "spike_times": np.concatenate(st.times) if st.n_spikes else np.zeros(0),
        "spike_units": np.concatenate([np.full(t.size, i) for i, t in enumerate(st.times)]).astype(np.int64),
        "n_neurons": np.int64(st.n_neurons),
        **{f"event_{k}": v for k, v in st.events.items()},
    }
    if st.t_start is not None:
        arrays["t_start"] = np.float64(st.t_start)
    if st.t_stop is not None:
        arrays["t_stop"] = np.float64(st.t_stop)
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays))
    return path


# ---- binning and trials ---------------------------------------------------------------------------------


def bin_spikes(
    st: SpikeTimes, bin_width: float, t_start: float | None = None, t_stop: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Counts per bin: returns (counts (T, N) int64, edges (T + 1,) seconds); bins are [e_i, e_{i+1})."""
    if not (isinstance(bin_width, (int, float)) and np.isfinite(bin_width) and bin_width > 0):
        raise ValueError(f"bin_width must be a positive number of seconds, got {bin_width!r}")
    t0 = st.start if t_start is None else float(t_start)
    t1 = st.stop if t_stop is None else float(t_stop)
    if t1 <= t0:
        raise ValueError(f"t_stop ({t1}) must be after t_start ({t0})")
    T = int(np.ceil((t1 - t0) / bin_width - 1e-9))
    if T < 1:
        raise ValueError(f"the span {t1 - t0:.4g} s holds no bin of width {bin_width}")
    edges = t0 + bin_width * np.arange(T + 1)
    counts = np.zeros((T, st.n_neurons), dtype=np.int64)
    for i, t in enumerate(st.times):
        idx = np.floor((t - t0) / bin_width).astype(np.int64)
        idx = idx[(idx >= 0) & (idx < T)]
        counts[:, i] = np.bincount(idx, minlength=T)
    return counts, edges


def cut_around_events(
    counts: np.ndarray, edges: np.ndarray, event_times, before: float, after: float
) -> tuple[np.ndarray, np.ndarray]:
    """Trials [event - before, event + after) as (n_trials, T_trial, N); events whose window leaves the
    recording are dropped. Returns (trials, kept_event_times)."""
    counts, edges = _check_counts(counts, edges)
    if before < 0 or after <= 0:
        raise ValueError(f"need before >= 0 and after > 0 seconds, got before={before}, after={after}")
    width = edges[1] - edges[0]
    nb, na = int(round(before / width)), int(round(after / width))
    ev = np.asarray(event_times, dtype=np.float64).ravel()
    if ev.size == 0:
        raise ValueError("no event times given")
    centre = np.floor((ev - edges[0]) / width).astype(np.int64)
    ok = (centre - nb >= 0) & (centre + na <= counts.shape[0])
    if not ok.any():
        raise ValueError(
            f"none of the {ev.size} events has a full [-{before}, +{after}) s window inside the "
            f"recording [{edges[0]:.3f}, {edges[-1]:.3f}] s"
        )
    trials = np.stack([counts[c - nb : c + na] for c in centre[ok]])
    return trials, ev[ok]


def cut_windows(counts: np.ndarray, length: int, step: int | None = None) -> np.ndarray:
    """Fixed windows of ``length`` bins every ``step`` bins (default: non-overlapping) -> (n, length, N);
    a last partial window is dropped."""
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"counts must be (T, N), got shape {counts.shape}")
    if length < 1 or (step is not None and step < 1):
        raise ValueError(f"length and step must be >= 1, got {length}, {step}")
    step = step or length
    if counts.shape[0] < length:
        raise ValueError(f"recording has {counts.shape[0]} bins, fewer than one window of {length}")
    starts = range(0, counts.shape[0] - length + 1, step)
    return np.stack([counts[s : s + length] for s in starts])


def _check_counts(counts, edges):
    counts, edges = np.asarray(counts), np.asarray(edges, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError(f"counts must be (T, N), got shape {counts.shape}")
    if edges.shape != (counts.shape[0] + 1,):
        raise ValueError(f"edges must have T + 1 = {counts.shape[0] + 1} entries, got {edges.shape}")
    return counts, edges
