"""Spike-time loading, binning and trial cutting (engramlab.data.spikes)."""

import numpy as np
import pytest

from engramlab.data.spikes import (
    SpikeTimes,
    bin_spikes,
    cut_around_events,
    cut_windows,
    load_mat,
    load_npz,
    load_spikes,
    save_npz,
)


def _toy():
    return SpikeTimes(
        [np.array([0.01, 0.02, 0.26]), np.array([0.11, 0.49]), np.array([])],
        {"cue": np.array([0.2, 0.45])},
        t_start=0.0,
        t_stop=0.5,
    )


def test_binning_by_hand():
    counts, edges = bin_spikes(_toy(), 0.1)
    assert np.allclose(edges, [0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert counts.tolist() == [[2, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0]]


def test_cut_around_events_and_windows():
    counts, edges = bin_spikes(_toy(), 0.1)
    trials, kept = cut_around_events(counts, edges, [0.25, 0.05, 0.45], before=0.1, after=0.2)
    assert kept.tolist() == [0.25]  # 0.05 starts before the recording, 0.45 ends after it
    assert trials.shape == (1, 3, 3) and trials[0].tolist() == counts[1:4].tolist()
    w = cut_windows(counts, 2)
    assert w.shape == (2, 2, 3) and w[1].tolist() == counts[2:4].tolist()
    assert cut_windows(counts, 2, step=1).shape == (4, 2, 3)


def test_npz_round_trip(tmp_path):
    st = _toy()
    save_npz(st, tmp_path / "r.npz")
    back = load_spikes(tmp_path / "r.npz")
    assert back.n_neurons == 3 and all(np.array_equal(a, b) for a, b in zip(st.times, back.times))
    assert np.array_equal(back.events["cue"], st.events["cue"]) and back.t_stop == 0.5


def test_nwb_round_trip(tmp_path):
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="t", identifier="x", session_start_time=datetime.now(timezone.utc))
    nwb.add_unit(spike_times=[0.1, 0.5, 0.7])
    nwb.add_unit(spike_times=[0.2])
    nwb.add_trial(start_time=0.0, stop_time=0.4)
    nwb.add_trial(start_time=0.5, stop_time=0.9)
    with NWBHDF5IO(str(tmp_path / "r.nwb"), "w") as io:
        io.write(nwb)
    st = load_spikes(tmp_path / "r.nwb")
    assert st.n_neurons == 2 and st.times[0].tolist() == [0.1, 0.5, 0.7]
    assert st.events["trial_start"].tolist() == [0.0, 0.5]


def test_insula_mat_loads(insula_mat):
    st = load_mat(insula_mat)
    assert st.n_neurons == 96 and st.n_spikes == 478575 and len(st.events) == 9
    counts, edges = bin_spikes(st, 0.05)
    assert counts.shape[1] == 96 and 90_000 < counts.shape[0] < 93_000 and counts.sum() == 478575


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_spikes(tmp_path / "missing.mat")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unsupported"):
        load_spikes(tmp_path / "x.csv")
    with pytest.raises(ValueError, match="bin_width"):
        bin_spikes(_toy(), 0.0)
    with pytest.raises(ValueError, match="NaN"):
        SpikeTimes([np.array([0.1, np.nan])])
    with pytest.raises(ValueError, match="t_stop"):
        SpikeTimes([np.array([0.1])], t_start=1.0, t_stop=0.5)
    np.savez(tmp_path / "bad.npz", spike_times=np.array([0.1]))
    with pytest.raises(ValueError, match="spike_units"):
        load_npz(tmp_path / "bad.npz")
    counts, edges = bin_spikes(_toy(), 0.1)
    with pytest.raises(ValueError, match="none of the"):
        cut_around_events(counts, edges, [10.0], 0.1, 0.1)
    with pytest.raises(ValueError, match="fewer than one window"):
        cut_windows(counts, 50)
    import scipy.io

    scipy.io.savemat(tmp_path / "other.mat", {"X": np.zeros(3)})
    with pytest.raises(ValueError, match="no struct"):
        load_mat(tmp_path / "other.mat")
