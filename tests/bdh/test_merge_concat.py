"""Merging BDH models by neuron concatenation (paper §7.1) on models whose outputs are known."""

import json

import pytest
import torch

from engramlab.bdh.merge import merge_models, merge_runs, merge_state_dicts
from engramlab.bdh.model import BDH, BDHConfig
from engramlab.train.checkpoint import load_checkpoint, save_model_folder


def _model(seed, **kw):
    torch.manual_seed(seed)
    base = dict(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)
    base.update(kw)
    m = BDH(BDHConfig(**base)).double().eval()
    with torch.no_grad():  # weights well above the init's 0.02, so LayerNorm's eps is negligible
        for p in (m.embed.weight, m.decoder_x, m.decoder_y, m.encoder_E, m.lm_head):
            p.normal_(0.0, 0.5)
    if m.config.variant == "prime":
        torch.nn.init.normal_(m.gate_w, std=0.3)
        torch.nn.init.normal_(m.layer_mix, std=1.0)
    return m


IDX = torch.randint(0, 256, (2, 13), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("pos,variant", [("rope", "gpu"), ("rope+alibi", "gpu"), ("alibi", "prime")])
def test_merging_a_model_with_itself_keeps_its_function(pos, variant):
    # every per-head LayerNorm input doubles and LayerNorm is scale invariant (up to its eps)
    a = _model(0, pos=pos, variant=variant)
    m = merge_models(a, a)
    assert m.config.n_neurons == 2 * a.config.n_neurons
    assert m.config.mlp_internal_dim_multiplier == 8
    with torch.no_grad():
        torch.testing.assert_close(m(IDX)[0], a(IDX)[0], rtol=1e-4, atol=1e-4)


def test_merging_with_silent_neurons_gives_the_first_model():
    # B's D_x is zero, so its neurons never fire: the merged model computes A exactly.
    a, b = _model(0), _model(1, mlp_internal_dim_multiplier=2)
    with torch.no_grad():
        b.decoder_x.zero_()
        b.embed.weight.copy_(a.embed.weight)
        b.lm_head.copy_(a.lm_head)
    m = merge_models(a, b)
    N = a.config.n_neurons_per_head
    assert m.config.n_neurons_per_head == N + b.config.n_neurons_per_head
    with torch.no_grad():
        torch.testing.assert_close(m(IDX)[0], a(IDX)[0], rtol=1e-10, atol=1e-10)
    # and the rows of E sit with their heads: head h of the merge starts with head h of A
    for h in range(a.config.n_head):
        rows = slice(h * m.config.n_neurons_per_head, h * m.config.n_neurons_per_head + N)
        torch.testing.assert_close(m.encoder_E[rows], a.encoder_E[h * N : (h + 1) * N])


def test_silent_first_model_gives_the_second():
    a, b = _model(0), _model(1)
    with torch.no_grad():
        a.decoder_x.zero_()
        a.embed.weight.copy_(b.embed.weight)
        a.lm_head.copy_(b.lm_head)
        torch.testing.assert_close(merge_models(a, b)(IDX)[0], b(IDX)[0], rtol=1e-10, atol=1e-10)


def test_other_tensors_are_averaged_and_frequencies_concatenated():
    a, b = _model(0), _model(1)
    cfg, sd = merge_state_dicts(a.config, a.state_dict(), b.config, b.state_dict())
    torch.testing.assert_close(sd["embed.weight"], (a.embed.weight + b.embed.weight) / 2)
    torch.testing.assert_close(sd["lm_head"], (a.lm_head + b.lm_head) / 2)
    torch.testing.assert_close(sd["rope_freqs"], torch.cat([a.rope_freqs, b.rope_freqs], 1))
    torch.testing.assert_close(sd["decoder_y"][:, :, 32:], b.decoder_y)
    assert cfg.n_neurons == a.config.n_neurons + b.config.n_neurons


@pytest.mark.parametrize("field,value", [("n_embd", 32), ("n_head", 4), ("vocab_size", 128), ("pos", "alibi")])
def test_mismatched_parents_are_refused(field, value):
    a = _model(0)
    b = _model(1, **{field: value})
    with pytest.raises(ValueError, match=field):
        merge_models(a, b)


def test_merge_runs_writes_a_loadable_folder(tmp_path):
    a, b = _model(0), _model(1)
    save_model_folder(tmp_path / "a", a.float(), "bdh")
    save_model_folder(tmp_path / "b", b.float(), "bdh")
    out = merge_runs(tmp_path / "a", tmp_path / "b", tmp_path / "c")
    model, name, _, _ = load_checkpoint(out)
    assert name == "bdh" and model.config.n_neurons == 2 * a.config.n_neurons
    direct = merge_models(a, b)
    with torch.no_grad():
        torch.testing.assert_close(model(IDX)[0], direct(IDX)[0])
    meta = json.loads((out / "config.json").read_text())
    assert len(meta["merged_from"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temporary folder left
    gen = model.generate(IDX[:1, :4], 5, seed=0)
    assert gen.shape == (1, 9)
    with pytest.raises(ValueError, match="already exists"):
        merge_runs(tmp_path / "a", tmp_path / "b", tmp_path / "c")
    with pytest.raises(FileNotFoundError):
        merge_runs(tmp_path / "a", tmp_path / "nope", tmp_path / "d")
