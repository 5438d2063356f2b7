import json
import math
import os
import shutil

import pytest
import torch

from engramlab.baselines.gpt import GPT, GPTConfig
from engramlab.baselines.lstm import LSTMLM, LSTMConfig
from engramlab.train.checkpoint import CheckpointError, load_checkpoint
from engramlab.train.config import TrainConfig
from engramlab.train.engine import Trainer, TrainingDiverged, lr_at


@pytest.fixture(scope="module")
def corpus(shakespeare_corpus):
    return shakespeare_corpus


def tiny_gpt(dropout=0.1):
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, dropout=dropout))


def cfg(**kw):
    base = dict(
        data="shakespeare",
        steps=12,
        batch_size=4,
        block_size=16,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=3,
        eval_interval=4,
        eval_batches=2,
        log_interval=1,
        seed=7,
    )
    base.update(kw)
    return TrainConfig(**base)


def metrics(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_lr_schedule_by_hand():
    c = TrainConfig(steps=110, lr=1.0, min_lr=0.0, warmup_steps=10)
    assert lr_at(0, c) == pytest.approx(0.1)
    assert lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(10, c) == pytest.approx(1.0)
    assert lr_at(60, c) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_at(110, c) == pytest.approx(0.0)


def test_tiny_model_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=32))
    x = torch.randint(0, 256, (4, 32))
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        _, loss = model(x, y)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 5.0 and float(loss.detach()) < 0.05


def test_metrics_log_and_checkpoint_round_trip(tmp_path, corpus):
    model = tiny_gpt()
    res = Trainer(model, cfg(), tmp_path, "gpt", corpus=corpus, progress=False).fit()
    rows = metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert all("train_loss" in r for r in rows)
    evals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in evals] == [4, 8, 12]
    assert all(r["val_bpb"] == pytest.approx(r["val_loss"] / math.log(2)) for r in evals)
    assert res["step"] == 12
    umask = os.umask(0)
    os.umask(umask)
    for f in ("config.json", "model.safetensors", "trainer.pt"):  # readable like any saved file
        assert ((tmp_path / f).stat().st_mode & 0o777) == 0o666 & ~umask, f
    loaded, name, tcfg, step = load_checkpoint(tmp_path)
    assert (name, step, tcfg) == ("gpt", 12, cfg())
    x = torch.randint(0, 256, (2, 16))
    model.eval()
    loaded.eval()
    assert torch.equal(model(x)[0], loaded(x)[0])


def interrupt_at(model, attr, n):
    """Make the n-th training-mode call of model.<attr> raise KeyboardInterrupt (as Ctrl-C would)."""
    orig = getattr(model, attr)
    calls = {"n": 0}

    def wrapped(*a, **k):
        if model.training:
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt
        return orig(*a, **k)

    setattr(model, attr, wrapped)


@pytest.mark.parametrize("kind", ["gpt", "lstm-carry"])
def test_interrupted_and_resumed_run_logs_the_same_losses(tmp_path, corpus, kind):
    def make():
        torch.manual_seed(0)
        if kind == "gpt":
            return tiny_gpt(dropout=0.2), cfg(), "gpt", "forward"
        m = LSTMLM(LSTMConfig(n_layer=1, n_embd=8, hidden=16, dropout=0.2))
        return m, cfg(carry_state=True), "lstm", "forward_with_state"

    model, c, name, _ = make()
    Trainer(model, c, tmp_path / "full", name, corpus=corpus, progress=False).fit()

    model, c, name, attr = make()
    interrupt_at(model, attr, 7)
    with pytest.raises(KeyboardInterrupt):
        Trainer(model, c, tmp_path / "cut", name, corpus=corpus, progress=False).fit()
    _, _, _, step = load_checkpoint(tmp_path / "cut")
    assert step == 6  # Ctrl-C during step 7 saved the state after step 6

    model, c, name, _ = make()
    Trainer(model, c, tmp_path / "cut", name, corpus=corpus, progress=False).fit(resume=True)
    full, cut = metrics(tmp_path / "full"), metrics(tmp_path / "cut")
    assert len(full) == len(cut) == 12
    assert _same_losses(full, cut)


def _same_losses(a, b):
    keys = ("step", "train_loss", "val_loss", "val_bpb", "lr")
    strip = lambda rows: [{k: r[k] for k in keys if k in r} for r in rows]
    return strip(a) == strip(b)


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path, corpus):
    model = tiny_gpt()
    orig = model.forward
    calls = {"n": 0}

    def poisoned(x, y=None):
        calls["n"] += model.training
        logits, loss = orig(x, y)
        if model.training and calls["n"] >= 6:
            loss = loss * float("nan")
        return logits, loss

    model.forward = poisoned
    with pytest.raises(TrainingDiverged, match="step 6"):
        Trainer(model, cfg(eval_interval=4), tmp_path, "gpt", corpus=corpus, progress=False).fit()
    _, _, _, step = load_checkpoint(tmp_path)
    assert step == 4


def test_corrupted_checkpoints_raise_clear_errors(tmp_path, corpus):
    Trainer(tiny_gpt(), cfg(steps=4), tmp_path / "run", "gpt", corpus=corpus, progress=False).fit()
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")
    bad = tmp_path / "trunc"
    shutil.copytree(tmp_path / "run", bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(bad)
    nocfg = tmp_path / "nocfg"
    shutil.copytree(tmp_path / "run", nocfg)
    (nocfg / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_checkpoint(nocfg)
    garbled = tmp_path / "garbled"
    shutil.copytree(tmp_path / "run", garbled)
    (garbled / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(garbled)
    half = tmp_path / "half"  # a save interrupted between files: trainer.pt from another step
    shutil.copytree(tmp_path / "run", half)
    cfgj = json.loads((half / "config.json").read_text())
    cfgj["step"] = 99
    (half / "config.json").write_text(json.dumps(cfgj))
    with pytest.raises(CheckpointError, match="model.safetensors is from step 4 but config.json from step 99"):
        load_checkpoint(half)
    with pytest.raises(CheckpointError, match="incomplete"):
        Trainer(tiny_gpt(), cfg(steps=8), half, "gpt", corpus=corpus, progress=False).fit(resume=True)
    shape = tmp_path / "shape"
    shutil.copytree(tmp_path / "run", shape)
    cfgj = json.loads((shape / "config.json").read_text())
    cfgj["model_config"]["n_embd"] = 32
    (shape / "config.json").write_text(json.dumps(cfgj))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(shape)


def test_bad_train_config_and_carry_for_stateless_model(tmp_path, corpus):
    with pytest.raises(ValueError, match="batch_size=0"):
        Trainer(tiny_gpt(), cfg(batch_size=0), tmp_path, "gpt", corpus=corpus)
    with pytest.raises(ValueError, match="cannot carry its state"):
        Trainer(tiny_gpt(), cfg(carry_state=True), tmp_path, "gpt", corpus=corpus)


def test_interrupt_after_the_forward_of_a_stateful_step_resumes_exactly(tmp_path, corpus):
    """Ctrl-C inside the optimizer step, after the carried state was already advanced."""

    def make():
        torch.manual_seed(0)
        return LSTMLM(LSTMConfig(n_layer=1, n_embd=8, hidden=16, dropout=0.2)), cfg(carry_state=True)

    m, c = make()
    Trainer(m, c, tmp_path / "full", "lstm", corpus=corpus, progress=False).fit()
    m, c = make()
    t = Trainer(m, c, tmp_path / "cut", "lstm", corpus=corpus, progress=False)
    orig, calls = t.optimizer.step, {"n": 0}

    def step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return orig(*a, **k)

    t.optimizer.step = step
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    m, c = make()
    Trainer(m, c, tmp_path / "cut", "lstm", corpus=corpus, progress=False).fit(resume=True)
    assert _same_losses(metrics(tmp_path / "full"), metrics(tmp_path / "cut"))


def test_real_sigint_during_the_weight_update_waits_for_the_step(tmp_path, corpus):
    import os
    import signal

    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    m = tiny_gpt(dropout=0.2)
    Trainer(m, cfg(), tmp_path / "full", "gpt", corpus=corpus, progress=False).fit()
    m = tiny_gpt(dropout=0.2)
    t = Trainer(m, cfg(), tmp_path / "cut", "gpt", corpus=corpus, progress=False)
    orig, calls = t.optimizer.step, {"n": 0}

    def step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives in the middle of the update
        return orig(*a, **k)

    t.optimizer.step = step
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    assert load_checkpoint(tmp_path / "cut")[3] == 7  # the update was finished, then saved
    Trainer(tiny_gpt(dropout=0.2), cfg(), tmp_path / "cut", "gpt", corpus=corpus, progress=False).fit(resume=True)
    assert _same_losses(metrics(tmp_path / "full"), metrics(tmp_path / "cut"))
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def fail_at(model, n):
    """Make the n-th training-mode forward of model raise a RuntimeError."""
    orig, calls = model.forward, {"n": 0}

    def forward(*a, **k):
        if model.training:
            calls["n"] += 1
            if calls["n"] == n:
                raise RuntimeError("simulated failure")
        return orig(*a, **k)

    model.forward = forward


def snapshot(folder):
    """Every file under folder: (relative path) -> (bytes, mtime_ns)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_failure_before_the_first_checkpoint_leaves_nothing(tmp_path, corpus):
    out = tmp_path / "run"
    model = tiny_gpt()
    fail_at(model, 1)
    with pytest.raises(RuntimeError, match="simulated failure"):
        Trainer(model, cfg(), out, "gpt", corpus=corpus, progress=False).fit()
    assert list(tmp_path.iterdir()) == []  # no run folder, no temporary folder


def test_ctrl_c_before_the_first_step_leaves_nothing(tmp_path, corpus, capsys):
    model = tiny_gpt()
    interrupt_at(model, "forward", 1)
    with pytest.raises(KeyboardInterrupt):
        Trainer(model, cfg(), tmp_path / "run", "gpt", corpus=corpus, progress=False).fit()
    assert list(tmp_path.iterdir()) == []
    said = capsys.readouterr()
    assert "nothing was saved" in said.out + said.err


def test_divergence_before_the_first_checkpoint_says_nothing_was_saved(tmp_path, corpus):
    model = tiny_gpt()
    orig = model.forward

    def poisoned(x, y=None):
        logits, loss = orig(x, y)
        return logits, loss * float("nan")

    model.forward = poisoned
    with pytest.raises(TrainingDiverged, match="at step 1.*nothing was saved"):
        Trainer(model, cfg(), tmp_path / "run", "gpt", corpus=corpus, progress=False).fit()
    assert list(tmp_path.iterdir()) == []


def test_run_folder_appears_at_its_first_checkpoint(tmp_path, corpus):
    """Before the first checkpoint the run lives in a hidden temporary folder; a failure after it
    leaves a loadable run at that checkpoint with its log."""
    out = tmp_path / "run"
    model = tiny_gpt()
    orig, seen = model.forward, {}

    def forward(*a, **k):
        if model.training:
            seen.setdefault("calls", 0)
            seen["calls"] += 1
            if seen["calls"] == 3:  # during step 3, before the checkpoint at step 4
                seen["before"] = (out.exists(), sorted(p.name for p in tmp_path.iterdir()))
            if seen["calls"] == 6:
                raise RuntimeError("simulated failure")
        return orig(*a, **k)

    model.forward = forward
    with pytest.raises(RuntimeError):
        Trainer(model, cfg(eval_interval=4), out, "gpt", corpus=corpus, progress=False).fit()
    exists, names = seen["before"]
    assert not exists and len(names) == 1 and names[0].startswith(".run.") and names[0].endswith(".partial")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert load_checkpoint(out)[3] == 4
    assert [r["step"] for r in metrics(out)] == [1, 2, 3, 4, 5]  # resume trims the log to the checkpoint


def test_new_run_refuses_a_non_empty_folder_and_touches_nothing(tmp_path, corpus):
    out = tmp_path / "run"
    Trainer(tiny_gpt(), cfg(steps=4), out, "gpt", corpus=corpus, progress=False).fit()
    before = snapshot(out)
    with pytest.raises(ValueError, match=r"output folder .*run is not empty .*resume=True.*overwrite=True"):
        Trainer(tiny_gpt(), cfg(steps=4), out, "gpt", corpus=corpus, progress=False).fit()
    assert snapshot(out) == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        Trainer(tiny_gpt(), cfg(steps=4), other, "gpt", corpus=corpus, progress=False).fit()
    assert (other / "a.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is fine
    assert Trainer(tiny_gpt(), cfg(steps=4), empty, "gpt", corpus=corpus, progress=False).fit()["step"] == 4


def test_overwrite_replaces_the_old_run_only_at_the_new_first_checkpoint(tmp_path, corpus):
    out = tmp_path / "run"
    Trainer(tiny_gpt(), cfg(steps=4), out, "gpt", corpus=corpus, progress=False).fit()
    (out / "extra.txt").write_text("old")
    before = snapshot(out)
    model = tiny_gpt()
    fail_at(model, 2)
    with pytest.raises(RuntimeError):
        Trainer(model, cfg(steps=8), out, "gpt", corpus=corpus, progress=False).fit(overwrite=True)
    assert snapshot(out) == before  # the failed new run replaced nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    Trainer(tiny_gpt(), cfg(steps=8), out, "gpt", corpus=corpus, progress=False).fit(overwrite=True)
    assert not (out / "extra.txt").exists() and load_checkpoint(out)[3] == 8
    assert [r["step"] for r in metrics(out)] == list(range(1, 9))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(ValueError, match="exclude each other"):
        Trainer(tiny_gpt(), cfg(steps=8), out, "gpt", corpus=corpus, progress=False).fit(resume=True, overwrite=True)
