"""Real-data pipeline end to end on a small synthetic recording written as an npz spike-time file."""

import json

import numpy as np
import pytest
import torch

from engramlab.data.spikes import SpikeTimes, bin_spikes, save_npz
from engramlab.hmmglm.models import HMMGLM, FitConfig, load
from engramlab.hmmglm.real import fit_recording


def test_fit_recording_end_to_end(tmp_path):
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run(tmp_path)
    finally:
        torch.set_num_threads(n_threads)


def _run(tmp_path):
    gen = HMMGLM(2, 4)
    x, _ = gen.sample(600, n_trials=1, seed=0)
    counts = x[0].numpy().astype(int)
    rng = np.random.default_rng(0)
    width = 0.05
    times = [
        np.sort(
            np.concatenate([t * width + rng.uniform(0.001, width - 0.001, c) for t, c in enumerate(counts[:, n]) if c])
        )
        for n in range(4)
    ]
    st = SpikeTimes(times, {"cue": np.array([3.0, 12.5])}, t_start=0.0, t_stop=600 * width)
    save_npz(st, tmp_path / "rec.npz")
    rebinned, _ = bin_spikes(st, width)
    assert np.array_equal(rebinned, counts)  # binning inverts the spike-time construction

    res = fit_recording(
        tmp_path / "rec.npz",
        tmp_path / "out",
        model="onehot",
        n_states=None,
        candidates=(1, 2),
        fit=FitConfig(n_epochs=2, m_steps=2),
        progress=False,
    )
    assert res["n_bins"] == 600 and res["n_neurons"] == 4
    sel = res["state_selection"]
    assert sel["candidates"] == [1, 2]
    assert res["n_states"] == sel["candidates"][int(np.argmax(sel["test_ll"]))]
    for f in ("summary.json", "states.png", "connectivity.png", "n_states.png"):
        assert (tmp_path / "out" / f).is_file()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n_bins"] == 600
    assert abs(sum(res["state_occupancy"]) - 1) < 1e-9
    assert load(tmp_path / "out" / "model").n_states == res["n_states"]


@pytest.mark.parametrize("key", ["spike_times", "spike_units"])
def test_npz_with_a_2d_array_is_refused_with_the_expected_layout(tmp_path, key):
    from engramlab.data.spikes import load_npz

    arrays = {"spike_times": np.array([0.1, 0.2, 0.3, 0.4]), "spike_units": np.array([0, 1, 0, 1])}
    arrays[key] = arrays[key].reshape(2, 2)
    np.savez(tmp_path / "two_d.npz", **arrays)
    with pytest.raises(ValueError, match=rf"{key} has shape \(2, 2\); expected 1-D arrays spike_times"):
        load_npz(tmp_path / "two_d.npz")
