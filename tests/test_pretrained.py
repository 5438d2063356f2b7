"""One model-folder format for every model: save_pretrained / from_pretrained / engramlab.load.

Every registered model is built small, its weights are moved away from any initialisation, and the
saved-then-loaded model must give bit-identical outputs on a fixed input and an equal config. Folders
in the layouts written before the common format (the engine's run folder, hmmglm's ``save``, the
timescales curriculum's checkpoint) are written here by hand, as those writers did, and must load too.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

import engramlab
from engramlab.astro import AstroConfig, AstroSNN
from engramlab.baselines import GPT, LSTMLM, GPTConfig, LSTMConfig
from engramlab.bdh import BDH, BDHConfig
from engramlab.hmmglm import GLM, HMMGLM, GaussianHMMGLM, OneHotHMMGLM, make_model
from engramlab.hmmglm import load as hmmglm_load
from engramlab.pretrained import ModelFolderError, Pretrained
from engramlab.timescales import GatedRNN, GatedRNNConfig, LeakyRNN, LeakyRNNConfig, load_checkpoint, save_checkpoint
from engramlab.timescales import TrainConfig as CurriculumConfig
from engramlab.train.checkpoint import load_checkpoint as engine_load_checkpoint
from engramlab.train.config import TrainConfig
from engramlab.train.registry import MODELS, model_class, model_name


def _perturb(model: torch.nn.Module, seed: int = 123) -> torch.nn.Module:
    """Move every floating tensor away from its initial value, so that a folder whose weights were not
    read cannot reproduce the outputs by rebuilding the same initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(0.02 * torch.randn(t.shape, generator=g, dtype=t.dtype))
    return model.eval()


IDX = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
BITS = torch.randint(0, 2, (3, 9, 1), generator=torch.Generator().manual_seed(1)).float()
H0 = 0.1 * torch.rand(3, 6, generator=torch.Generator().manual_seed(2))


def _lm_out(m):
    return m(IDX)[0]


def _rnn_out(m):
    return m(BITS, h0=H0) if isinstance(m, LeakyRNN) else m(BITS)


def _spikes(m):
    return m.sample(30, n_trials=2, seed=0)[0]


def _hmm_out(m, spikes):
    return torch.cat(
        [
            m.log_likelihood(spikes, per_trial=True).double().flatten(),
            m.predict(spikes).double().flatten(),
            m.predict_proba(spikes).double().flatten(),
        ]
    )


# name -> (class, builder, outputs(model, fixed input)); every registered name must appear here
CASES = {
    "gpt": (GPT, lambda: GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16)), _lm_out),
    "lstm": (LSTMLM, lambda: LSTMLM(LSTMConfig(n_layer=2, n_embd=8, hidden=16)), _lm_out),
    "bdh": (
        BDH,
        lambda: BDH(
            BDHConfig(
                n_layer=2,
                n_embd=16,
                n_head=2,
                mlp_internal_dim_multiplier=4,
                dropout=0.0,
                pos="rope+alibi",
                variant="prime",
                chunk_size=4,
            )
        ),
        _lm_out,
    ),
    "astro": (
        AstroSNN,
        lambda: AstroSNN(AstroConfig(n_layer=1, d_model=16, n_neurons=16, n_astrocytes=2, d_key=4, chunk_size=4)),
        _lm_out,
    ),
    "leaky_rnn": (
        LeakyRNN,
        lambda: LeakyRNN(LeakyRNNConfig(n_neurons=6, n_heads=2, variant="mod", activation="tanh")),
        _rnn_out,
    ),
    "gated_rnn": (GatedRNN, lambda: GatedRNN(GatedRNNConfig(cell="gru", n_neurons=6, n_heads=2)), _rnn_out),
    "glm": (GLM, lambda: make_model("glm", 1, 4, link="softplus"), None),
    "hmmglm": (HMMGLM, lambda: make_model("hmmglm", 3, 4), None),
    "gaussian_hmmglm": (GaussianHMMGLM, lambda: make_model("gaussian", 2, 4, learn_prior_std=True), None),
    "onehot_hmmglm": (OneHotHMMGLM, lambda: make_model("onehot", 2, 4, link="softplus"), None),
}
EXTRA = {  # more variants of registered classes
    "leaky_rnn_default_fixed_tau": ("leaky_rnn", lambda: LeakyRNN(n_neurons=6, n_heads=2, train_tau=False, tau=3.0)),
    "gated_rnn_lstm": ("gated_rnn", lambda: GatedRNN(GatedRNNConfig(cell="lstm", n_neurons=6, n_heads=2))),
    "bdh_gpu_rope": (
        "bdh",
        lambda: BDH(
            BDHConfig(n_layer=1, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0, chunk_size=4)
        ),
    ),
    "astro_lif_only": ("astro", lambda: AstroSNN(AstroConfig(n_layer=1, d_model=16, n_neurons=16, astrocyte=False))),
}


def _outputs(name: str, model, like=None):
    out = CASES[name][2]
    if out is not None:
        with torch.no_grad():
            return out(model)
    return _hmm_out(model, _spikes(like if like is not None else model))


def test_every_registered_model_is_covered_and_named_both_ways():
    assert set(CASES) == set(MODELS)
    for name in MODELS:
        cls = model_class(name)
        assert cls is CASES[name][0] and issubclass(cls, Pretrained) and model_name(cls) == name


@pytest.mark.parametrize("case", list(CASES) + list(EXTRA))
def test_save_pretrained_round_trip(tmp_path, case):
    name, build = (case, CASES[case][1]) if case in CASES else EXTRA[case]
    cls = CASES[name][0]
    torch.manual_seed(0)
    model = _perturb(build())
    expected = _outputs(name, model)
    assert model.save_pretrained(tmp_path / "m") == tmp_path / "m"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg == {
        "model": name,
        "model_config": dataclasses.asdict(model.config),
        "engramlab_version": engramlab.__version__,
    }
    fresh = _perturb(cls.from_config(model.config), seed=7)  # the same config, other weights
    assert not torch.equal(_outputs(name, fresh, like=model), expected)  # so the comparisons below can fail
    for loaded in (engramlab.load(tmp_path / "m"), cls.from_pretrained(tmp_path / "m")):
        assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
        assert torch.equal(_outputs(name, loaded, like=model), expected)
        for (k, a), (_, b) in zip(sorted(model.state_dict().items()), sorted(loaded.state_dict().items())):
            assert a.dtype == b.dtype and torch.equal(a, b), k


def test_saved_dtypes_come_back(tmp_path):
    m = _perturb(make_model("hmmglm", 2, 3).double())
    m.save_pretrained(tmp_path / "m")
    back = engramlab.load(tmp_path / "m")
    assert back.bias.dtype == torch.float64 and back.basis.dtype == torch.float64
    spikes = _spikes(m)
    assert back.log_likelihood(spikes) == m.log_likelihood(spikes)  # exact: no float32 rounding on the way
    g = _perturb(GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16)).double())
    g.save_pretrained(tmp_path / "g")
    gb = GPT.from_pretrained(tmp_path / "g")
    assert gb.lm_head.weight is gb.wte.weight and gb.wte.weight.dtype == torch.float64  # still tied
    assert torch.equal(gb(IDX)[0], g(IDX)[0])


def test_refuses_to_overwrite_without_the_flag(tmp_path):
    a = _perturb(LeakyRNN(n_neurons=4, n_heads=1))
    b = _perturb(LeakyRNN(n_neurons=5, n_heads=1), seed=5)
    a.save_pretrained(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    with pytest.raises(FileExistsError, match=r"m: the folder is not empty; pass overwrite=True") as e:
        b.save_pretrained(tmp_path / "m")
    assert str(tmp_path / "m") in str(e.value)
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before  # nothing touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="the path is a file; pass overwrite=True"):
        b.save_pretrained(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    b.save_pretrained(tmp_path / "empty")  # an empty folder is fine
    b.save_pretrained(tmp_path / "m", overwrite=True)
    assert engramlab.load(tmp_path / "m").config.n_neurons == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "m"]


def test_clear_errors_for_bad_folders(tmp_path):
    LeakyRNN(n_neurons=4, n_heads=1).save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**cfg, "model": "transformer-xl"}))
    with pytest.raises(
        ModelFolderError,
        match="unknown model 'transformer-xl'; known models: astro, bdh, gated_rnn, "
        "gaussian_hmmglm, glm, gpt, hmmglm, leaky_rnn, lstm, onehot_hmmglm",
    ):
        engramlab.load(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="is incomplete: model.safetensors is missing"):
        engramlab.load(tmp_path / "m")
    with pytest.raises(ModelFolderError, match="model folder not found"):
        engramlab.load(tmp_path / "nowhere")
    with pytest.raises(ModelFolderError, match="config.json is missing"):
        engramlab.load(tmp_path)
    GatedRNN(cell="gru", n_neurons=3, n_heads=1).save_pretrained(tmp_path / "g")
    with pytest.raises(ModelFolderError, match=r"holds a 'gated_rnn' model \(GatedRNN\), not a LeakyRNN"):
        LeakyRNN.from_pretrained(tmp_path / "g")
    cfg = json.loads((tmp_path / "g" / "config.json").read_text())
    cfg["model_config"]["n_neuron"] = 3
    (tmp_path / "g" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match="unknown .*model_config key.*'n_neuron'; valid keys: cell, n_neurons"):
        engramlab.load(tmp_path / "g")
    make_model("glm", 1, 3).save_pretrained(tmp_path / "glm")
    assert type(HMMGLM.from_pretrained(tmp_path / "glm")) is GLM  # a GLM is an HMMGLM with one state


def test_import_engramlab_is_cheap_and_load_is_lazy():
    code = (
        "import sys, engramlab; assert 'torch' not in sys.modules, 'torch imported'; "
        "assert engramlab.load.__module__ == 'engramlab.pretrained'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_package_faces_export_what_they_list():
    import engramlab.astro
    import engramlab.baselines
    import engramlab.bdh
    import engramlab.hmmglm
    import engramlab.timescales

    for pkg in (engramlab.astro, engramlab.baselines, engramlab.bdh, engramlab.hmmglm, engramlab.timescales):
        assert pkg.__all__ and all(getattr(pkg, n) is not None for n in pkg.__all__), pkg.__name__
    assert {"AstroSNN", "AstroConfig"} <= set(engramlab.astro.__all__)
    assert {"GPT", "GPTConfig", "LSTMLM", "LSTMConfig"} <= set(engramlab.baselines.__all__)
    assert {"BDH", "BDHConfig", "trace_density", "synapse_trajectory"} <= set(engramlab.bdh.__all__)
    assert {"LeakyRNN", "TrainConfig", "train_curriculum"} <= set(engramlab.timescales.__all__)


def test_hmmglm_scikit_names_are_the_present_methods():
    m = _perturb(make_model("gaussian", 3, 4))
    x = _spikes(m)
    assert m.score(x) == m.log_likelihood(x)
    assert torch.equal(m.predict(x), m.most_likely_states(x))
    assert torch.equal(m.predict_proba(x), m.posterior(x))
    a, b = m.simulate(20, n_trials=2, seed=3), m.sample(20, n_trials=2, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert m.fit(x, n_epochs=1, m_steps=1, progress=False) is m


# ------------------------------------------------------------------------------- older layouts
def _old_engine_state_dict(model):  # train.checkpoint.state_dict_for_saving as it was
    seen, out = set(), {}
    for k, v in model.state_dict().items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), tuple(v.stride()))
        if key not in seen:
            seen.add(key)
            out[k] = v.detach().to("cpu").contiguous().clone()
    return out


def _write_old_engine_run(out, model, name, train_cfg, step):
    """The engine's run folder as train.checkpoint.save_model_folder wrote it before the common format."""
    out.mkdir(parents=True)
    cfg = {
        "model": name,
        "model_config": dataclasses.asdict(model.config),
        "train_config": dataclasses.asdict(train_cfg) if train_cfg is not None else None,
        "step": int(step),
        "engramlab_version": "0.1.0",
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    save_file(_old_engine_state_dict(model), str(out / "model.safetensors"), metadata={"step": str(step)})
    torch.save({"optimizer": {}, "rng": {}, "world_size": 1, "carried": None, "step": int(step)}, out / "trainer.pt")
    (out / "metrics.jsonl").write_text(json.dumps({"step": step, "train_loss": 5.5}) + "\n")


@pytest.mark.parametrize("train_cfg", [TrainConfig(steps=3, batch_size=2), None])
def test_old_engine_run_folder_loads(tmp_path, train_cfg):
    model = _perturb(GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16)))
    _write_old_engine_run(tmp_path / "run", model, "gpt", train_cfg, 3 if train_cfg else 0)
    expected = _lm_out(model)
    for loaded in (engramlab.load(tmp_path / "run"), GPT.from_pretrained(tmp_path / "run")):
        assert loaded.config == model.config and torch.equal(_lm_out(loaded), expected)
    m, name, tcfg, step = engine_load_checkpoint(tmp_path / "run")
    assert (name, tcfg, step) == ("gpt", train_cfg, 3 if train_cfg else 0)
    assert torch.equal(_lm_out(m.eval()), expected)


@pytest.mark.parametrize("kind", ["glm", "hmmglm", "gaussian", "onehot"])
def test_old_hmmglm_save_folder_loads(tmp_path, kind):
    model = _perturb(make_model(kind, 1 if kind == "glm" else 3, 4))
    out = tmp_path / "m"
    out.mkdir()  # hmmglm's save() before the common format: the HMMGLMConfig itself as config.json
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(model.config), indent=2))
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    spikes = _spikes(model)
    expected = _hmm_out(model, spikes)
    cls = type(model)
    for loaded in (engramlab.load(out), cls.from_pretrained(out), hmmglm_load(out), cls.load(out)):
        assert type(loaded) is cls and loaded.config == model.config
        assert torch.equal(_hmm_out(loaded, spikes), expected)


@pytest.mark.parametrize("which", ["leaky", "gru"])
def test_old_timescales_checkpoint_loads(tmp_path, which):
    if which == "leaky":
        model = _perturb(LeakyRNN(n_neurons=6, n_heads=2))
    else:
        model = _perturb(GatedRNN(cell="gru", n_neurons=6, n_heads=2))
    tc = CurriculumConfig(max_n=3, n_neurons=6, n_heads=2, model=which)
    meta = {
        "train_config": dataclasses.asdict(tc),
        "ns": [2, 3],
        "heads": [0, 1],
        "epoch": 4,
        "step": 40,
        "elapsed_s": 1.5,
        "accuracy": [99.0, 98.5],
    }
    out = tmp_path / "N002_N003"
    out.mkdir()  # timescales.curriculum.save_checkpoint before the common format
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    with open(out / "config.json", "w") as f:
        json.dump({"model_config": dataclasses.asdict(model.config), **meta}, f, indent=2)
    expected = _rnn_out(model)
    cls = type(model)
    for loaded in (engramlab.load(out), cls.from_pretrained(out)):
        assert loaded.config == model.config and torch.equal(_rnn_out(loaded), expected)
    m, got = load_checkpoint(out)
    assert torch.equal(_rnn_out(m), expected)
    assert {k: got[k] for k in meta} == meta and got["model"] == ("leaky_rnn" if which == "leaky" else "gated_rnn")


def test_curriculum_checkpoint_is_a_model_folder_with_trainer_state(tmp_path):
    model = _perturb(LeakyRNN(n_neurons=6, n_heads=2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    model(BITS, h0=H0).sum().backward()
    opt.step()
    tc = CurriculumConfig(max_n=3, n_neurons=6, n_heads=2)
    meta = {"train_config": dataclasses.asdict(tc), "ns": [2], "heads": [0], "epoch": 1, "step": 7}
    save_checkpoint(model, tmp_path / "N002_N002", meta, {"optimizer": opt.state_dict()})
    folder = tmp_path / "N002_N002"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "trainer.pt"]
    cfg = json.loads((folder / "config.json").read_text())
    assert (cfg["model"], cfg["step"], cfg["train_config"], cfg["ns"]) == ("leaky_rnn", 7, dataclasses.asdict(tc), [2])
    state = torch.load(folder / "trainer.pt", weights_only=False)
    assert state["step"] == 7 and len(state["optimizer"]["state"]) == len(list(model.parameters()))
    model.eval()
    assert torch.equal(_rnn_out(engramlab.load(folder)), _rnn_out(model))
    m, got = load_checkpoint(folder)
    assert got["heads"] == [0] and torch.equal(_rnn_out(m), _rnn_out(model))
