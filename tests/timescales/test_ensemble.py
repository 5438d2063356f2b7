"""LeakyRNNEnsemble: K stacked networks against K separate LeakyRNN runs (own optimizers, own curricula)."""

import json
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from engramlab.data.tasks import make_timescale_batch
from engramlab.timescales.curriculum import (
    TrainConfig,
    build_model,
    list_checkpoints,
    load_checkpoint,
    train_curriculum,
)
from engramlab.timescales.ensemble import (
    EnsembleOptimizer,
    EnsembleTrainer,
    LeakyRNNEnsemble,
    MemberOptimizer,
    check_stackable,
    ensemble_recurrence,
    ensemble_recurrence_reference,
    expand_members,
    train_ensemble,
)
from engramlab.timescales.model import LeakyRNN, LeakyRNNConfig

TOL = dict(rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- K separate runs (reference)
class SeparateRun:
    """One network trained the plain way: its own LeakyRNN (float64), torch optimizer, LambdaLR schedule,
    clip_grad_norm_ and curriculum, seeded like train_curriculum (model from torch.manual_seed(seed), data
    from a generator seeded with seed, r(0) from the global stream that follows the model's init)."""

    def __init__(self, cfg: TrainConfig, schedule=None):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg).double()
        self.state_gen = torch.Generator()
        self.state_gen.set_state(torch.get_rng_state())
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        params = list(self.model.parameters())
        if cfg.resolved_optimizer == "sgd":
            self.opt = torch.optim.SGD(params, lr=cfg.resolved_lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
        else:
            self.opt = torch.optim.Adam(params, lr=cfg.resolved_lr)
        self.sched = None if schedule is None else torch.optim.lr_scheduler.LambdaLR(self.opt, schedule)
        self.ns = cfg.initial_ns()
        self.epoch = 0
        self.done = False
        self.advanced_at = []  # epochs at which the curriculum advanced

    def batch(self):
        x, y = make_timescale_batch(self.cfg.task, self.ns, self.cfg.batch_size, self.data_gen)
        h0 = (0.1 * torch.rand(self.cfg.batch_size, self.cfg.n_neurons, generator=self.state_gen)).double()
        return x, y, h0

    def train_step(self) -> float:
        x, y, h0 = self.batch()
        logits = self.model(x, heads=self.cfg.heads_for(self.ns), h0=h0)
        loss = F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1), reduction="sum") / self.cfg.batch_size
        self.opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(list(self.model.parameters()), self.cfg.clip)
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        return loss.item()

    @torch.no_grad()
    def end_epoch(self) -> list[float]:
        heads = torch.tensor(self.cfg.heads_for(self.ns))
        correct = torch.zeros(len(self.ns))
        for _ in range(self.cfg.test_batches):
            x, y, h0 = self.batch()
            correct += (self.model(x, heads=heads, h0=h0).argmax(-1) == y).sum(1).float()
        acc = (100.0 * correct / (self.cfg.test_batches * self.cfg.batch_size)).tolist()
        self.epoch += 1
        if sum(acc) / len(acc) > self.cfg.threshold and acc[-1] > self.cfg.threshold:
            self.advanced_at.append(self.epoch)
            if self.ns[-1] >= self.cfg.max_n:
                self.done = True
            else:
                self.ns = self.cfg.next_ns(self.ns)
        if self.epoch >= self.cfg.max_epochs:
            self.done = True
        return acc


def assert_members_equal(trainer: EnsembleTrainer, runs: list[SeparateRun]):
    for k, run in enumerate(runs):
        got = dict(trainer.ensemble.member(k).named_parameters())
        for name, p in run.model.named_parameters():
            torch.testing.assert_close(got[name], p, **TOL, msg=f"member {k} {name}")
        torch.testing.assert_close(trainer.ensemble.member(k).taus, run.model.taus, **TOL)


def conditions(variant: str) -> list[TrainConfig]:
    """Mixed conditions with different thresholds / max_n, so members advance and stop at different epochs."""
    base = dict(
        n_neurons=16, n_heads=6, batch_size=32, steps_per_epoch=5, test_batches=2, max_epochs=9, variant=variant, lr=0.2
    )
    return [
        TrainConfig(task="dms", curriculum="single", max_n=6, threshold=60.0, seed=0, **base),
        TrainConfig(
            task="parity", curriculum="multi", max_n=4, threshold=70.0, seed=1, train_tau=False, tau=1.5, **base
        ),
        TrainConfig(
            task="dms", curriculum="sliding", sliding_heads=2, sliding_shift=1, max_n=3, threshold=55.0, seed=2, **base
        ),
        TrainConfig(
            task="dms", curriculum="multi", max_n=5, threshold=65.0, seed=3, optimizer="adam", **{**base, "lr": 0.01}
        ),
        TrainConfig(
            task="parity",
            curriculum="single",
            max_n=5,
            threshold=58.0,
            seed=4,
            train_tau=False,
            tau=1.0,
            optimizer="adam",
            clip=0.5,
            **{**base, "lr": 0.02},
        ),
    ]


@pytest.mark.parametrize("variant", ["default", "mod"])
def test_float64_step_by_step_equivalence_with_separate_runs(variant):
    torch.set_num_threads(1)
    cfgs = conditions(variant)
    schedules = [None, lambda i: 0.97**i, None, lambda i: 1.0 / (1 + 0.1 * i), None]  # per-member LR schedules
    trainer = EnsembleTrainer(cfgs, dtype=torch.float64, lr_schedules=schedules)
    runs = [SeparateRun(c, s) for c, s in zip(cfgs, schedules)]
    assert_members_equal(trainer, runs)  # same initial weights
    worst = 0.0
    while trainer.active:
        assert trainer.active == [k for k, r in enumerate(runs) if not r.done]
        for _ in range(cfgs[0].steps_per_epoch):
            losses = trainer.train_step()
            for k, loss in losses.items():
                ref = runs[k].train_step()
                assert loss == pytest.approx(ref, rel=1e-10, abs=1e-12)
                worst = max(worst, abs(loss - ref))
            assert_members_equal(trainer, runs)
        records = trainer.end_epoch()
        for rec in records:
            run = runs[rec["member"]]
            assert rec["accuracy"] == run.end_epoch()  # identical counts, so identical advance decisions
            assert trainer.ns[rec["member"]] == run.ns
    assert all(r.done for r in runs)
    advanced = [tuple(r.advanced_at) for r in runs]
    assert [tuple(s["epoch"] for s in trainer.solved[k]) for k in range(len(cfgs))] == advanced
    assert sum(len(a) > 0 for a in advanced) >= 3 and len(set(advanced)) >= 3, advanced  # advances differ
    assert len(set(trainer.step)) > 1, trainer.step  # members stopped at different steps
    assert worst < 1e-10
    for k, run in enumerate(runs):  # the optimizer state, as the torch optimizer of a separate run holds it
        mine = trainer.optimizer.member_torch_state_dict(k, trainer.ensemble.member(k))
        ref = run.opt.state_dict()
        assert mine["param_groups"][0]["lr"] == pytest.approx(ref["param_groups"][0]["lr"], rel=1e-12)
        assert mine["state"].keys() == ref["state"].keys()
        for i, st in ref["state"].items():
            assert st.keys() == mine["state"][i].keys()
            for key, v in st.items():
                torch.testing.assert_close(mine["state"][i][key], v, **TOL, msg=f"member {k} param {i} {key}")


def test_batched_recurrence_gradients_with_ragged_lengths():
    torch.manual_seed(1)
    K, T, B, H = 3, 6, 2, 4
    n_active = [1, 1, 2, 3, 3, 3]  # member 0 runs 6 steps, member 1 four, member 2 four
    for variant, act in [("default", "leakyrelu"), ("mod", "leakyrelu"), ("mod", "tanh"), ("mod", "sigmoid")]:
        x = (torch.rand(K, T, B) < 0.5).double()
        args = (
            torch.randn(K, H, dtype=torch.float64, requires_grad=True),
            torch.randn(K, H, dtype=torch.float64, requires_grad=True),
            torch.rand(K, B, H, dtype=torch.float64, requires_grad=True),
            (0.5 * torch.randn(K, H, H, dtype=torch.float64)).requires_grad_(),
            (0.2 + 0.8 * torch.rand(K, H, dtype=torch.float64)).requires_grad_(),
        )
        fused = ensemble_recurrence(x, *args, n_active, variant, act)
        ref = ensemble_recurrence_reference(x, *args, n_active, variant, act)
        torch.testing.assert_close(fused, ref, rtol=1e-12, atol=1e-12)
        assert torch.equal(fused[1:, :2], args[2][1:, None].expand(-1, 2, -1, -1))  # held at r(0) before the start
        for return_all in (True, False):
            assert torch.autograd.gradcheck(
                lambda *a, x=x, v=variant, f=act, r=return_all: ensemble_recurrence(x, *a, n_active, v, f, r), args
            )
    last = ensemble_recurrence(x, *args, n_active, variant, act, return_all=False)
    torch.testing.assert_close(last, ref[:, -1], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="non-decreasing"):
        ensemble_recurrence(x, *args, [3, 1, 2, 3, 3, 3])


def test_forward_matches_members_for_ragged_lengths_and_subsets():
    torch.manual_seed(0)
    cfgs = [
        LeakyRNNConfig(n_neurons=8, n_heads=3),
        LeakyRNNConfig(n_neurons=8, n_heads=1, train_tau=False, tau=2.0),
        LeakyRNNConfig(n_neurons=8, n_heads=2),
    ]
    models = [LeakyRNN(c).double() for c in cfgs]
    ens = LeakyRNNEnsemble.from_models(models)
    xs = [(torch.rand(5, m, 1) < 0.5).float() for m in (7, 3, 9)]
    h0 = torch.rand(3, 5, 8, dtype=torch.float64)
    heads = [[2, 0], [0], [1]]
    logits, mask = ens(xs, heads, h0)
    assert logits.shape == (3, 2, 5, 2) and mask.tolist() == [[True, True], [True, False], [True, False]]
    for k, m in enumerate(models):
        torch.testing.assert_close(logits[k, : len(heads[k])], m(xs[k], heads=heads[k], h0=h0[k]), **TOL)
    sub, _ = ens([xs[2], xs[0]], [heads[2], heads[0]], h0[[2, 0]], members=[2, 0])
    torch.testing.assert_close(sub[0, :1], logits[2, :1], **TOL)
    torch.testing.assert_close(sub[1], logits[0], **TOL)
    for k, m in enumerate(models):  # member() gives the networks back
        assert ens.member(k).config == m.config
        torch.testing.assert_close(ens.member(k)(xs[k], h0=h0[k]), m(xs[k], h0=h0[k]), **TOL)


def test_per_member_clipping_equals_separate_clipping():
    torch.manual_seed(0)
    cfgs = [LeakyRNNConfig(n_neurons=10, n_heads=2), LeakyRNNConfig(n_neurons=10, n_heads=2, train_tau=False, tau=3.0)]
    models = [LeakyRNN(c).double() for c in cfgs]
    with torch.no_grad():
        models[0].recurrent.weight.mul_(4.0)  # a large gradient for member 0 only
    ens = LeakyRNNEnsemble.from_models(models)
    clips = [0.5, 1e3]  # member 0 is clipped, member 1 is not
    opt = EnsembleOptimizer(ens, [MemberOptimizer(kind="sgd", lr=0.1, clip=c) for c in clips])
    xs = [(torch.rand(6, 12, 1) < 0.5).float() for _ in cfgs]
    h0 = torch.rand(2, 6, 10, dtype=torch.float64)
    ys = [torch.randint(0, 2, (2, 6)) for _ in cfgs]
    ens.member_losses(xs, ys, None, h0).sum().backward()
    raw = {n: p.grad.clone() for n, p in ens.named_parameters()}
    norms = opt.clip_grad_norm_()
    for k, (m, c) in enumerate(zip(models, clips)):
        logits = m(xs[k], h0=h0[k])
        (F.cross_entropy(logits.reshape(-1, 2), ys[k].reshape(-1), reduction="sum") / 6).backward()
        ref_norm = nn.utils.clip_grad_norm_(list(m.parameters()), c)
        assert float(norms[k]) == pytest.approx(float(ref_norm), rel=1e-12)
        torch.testing.assert_close(ens.rec_weight.grad[k], m.recurrent.weight.grad, **TOL)
        torch.testing.assert_close(ens.head_weight.grad[k], m.heads.weight.grad, **TOL)
        torch.testing.assert_close(ens.input_bias.grad[k], m.input.bias.grad, **TOL)
    assert norms[0] > clips[0] and norms[1] < clips[1]
    assert torch.equal(ens.rec_weight.grad[1], raw["rec_weight"][1])  # the unclipped member is untouched
    # clipping the members' joint norm instead would have changed member 1 as well
    joint = torch.sqrt(sum((g**2).sum() for g in raw.values()))
    assert float(joint) > clips[0] and not torch.allclose(
        raw["rec_weight"][1] * clips[0] / joint, ens.rec_weight.grad[1]
    )


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_fixed_tau_members_keep_tau_fixed(kind):
    base = dict(
        task="dms",
        curriculum="multi",
        max_n=4,
        n_neurons=12,
        n_heads=4,
        batch_size=16,
        steps_per_epoch=4,
        test_batches=1,
        max_epochs=2,
        optimizer=kind,
        lr=0.5 if kind == "sgd" else 0.05,
    )
    cfgs = [
        TrainConfig(train_tau=False, tau=2.5, seed=0, **base),
        TrainConfig(seed=1, **base),
        TrainConfig(train_tau=False, tau=1.0, seed=2, **base),
    ]
    trainer = EnsembleTrainer(cfgs, dtype=torch.float64)
    before = trainer.ensemble.taus.detach().clone()
    for _ in range(6):
        trainer.train_step()
        assert torch.equal(trainer.ensemble.taus.grad[0], torch.zeros(12))  # no gradient reaches a fixed tau
    taus = trainer.ensemble.taus.detach()
    assert torch.equal(taus[0], torch.full((12,), 2.5)) and torch.equal(taus[2], torch.ones(12))
    assert not torch.equal(taus[1], before[1])  # the trainable member's taus do move
    for k, tau in [(0, 2.5), (2, 1.0)]:
        m = trainer.ensemble.member(k)
        assert "taus" not in dict(m.named_parameters()) and torch.equal(m.taus, torch.tensor([tau], dtype=m.taus.dtype))
    assert trainer.tau_stats(0) == {"tau_mean": 2.5, "tau_std": 0.0, "tau_max": 2.5}


def test_optimizer_state_roundtrip_continues_identically():
    torch.manual_seed(0)
    cfgs = [LeakyRNNConfig(n_neurons=6, n_heads=2), LeakyRNNConfig(n_neurons=6, n_heads=1, train_tau=False, tau=2.0)]
    members = [MemberOptimizer(kind="adam", lr=0.01), MemberOptimizer(kind="sgd", lr=0.1)]
    xs = [(torch.rand(4, 5, 1) < 0.5).float() for _ in cfgs]
    ys = [torch.randint(0, 2, (1, 4)) for _ in cfgs]
    h0 = torch.rand(2, 4, 6, dtype=torch.float64)

    def step(ens, opt):
        ens.member_losses(xs, ys, [[0], [0]], h0).sum().backward()
        opt.clip_grad_norm_()
        opt.step()
        opt.zero_grad()

    a = LeakyRNNEnsemble(cfgs).double()
    opt_a = EnsembleOptimizer(a, members)
    for _ in range(3):
        step(a, opt_a)
    b = LeakyRNNEnsemble.from_models([a.member(0), a.member(1)])
    opt_b = EnsembleOptimizer(b, members)
    opt_b.load_state_dict(opt_a.state_dict())
    step(a, opt_a)
    step(b, opt_b)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert opt_b.steps == [4, 4]
    with pytest.raises(ValueError, match="does not match this ensemble"):
        EnsembleOptimizer(LeakyRNNEnsemble(cfgs[:1]), members[:1]).load_state_dict(opt_a.state_dict())


def test_train_ensemble_reproduces_train_curriculum(tmp_path):
    """float32 end to end: every member's run folder matches a separate train_curriculum run."""
    torch.set_num_threads(1)
    base = dict(
        task="dms",
        max_n=3,
        n_neurons=16,
        n_heads=4,
        batch_size=32,
        steps_per_epoch=20,
        test_batches=3,
        max_epochs=8,
        threshold=90.0,
        lr=0.2,
    )
    conds = [
        TrainConfig(curriculum="single", **base),
        TrainConfig(curriculum="multi", train_tau=False, tau=1.5, **base),
    ]
    summaries = train_ensemble(conds, tmp_path / "ens", seeds=[0, 1], progress=False)
    assert len(summaries) == 4 and [s["ensemble"]["index"] for s in summaries] == [0, 1, 2, 3]
    members = expand_members(conds, [0, 1])
    assert [(m.curriculum, m.seed) for m in members] == [("single", 0), ("single", 1), ("multi", 0), ("multi", 1)]
    for k in (0, 3):  # one member of each condition against its own separate run
        single = train_curriculum(members[k], tmp_path / f"single{k}", progress=False)
        ens = summaries[k]
        assert set(single) <= set(ens)
        for key in ("n_reached", "stop_reason", "epochs", "steps", "last_ns"):
            assert ens[key] == single[key], key
        assert [(s["n_max"], s["epoch"], s["step"]) for s in ens["solved"]] == [
            (s["n_max"], s["epoch"], s["step"]) for s in single["solved"]
        ]
        a = [json.loads(line) for line in (tmp_path / f"single{k}" / "metrics.jsonl").read_text().splitlines()]
        b = [
            json.loads(line)
            for line in (tmp_path / "ens" / ens["ensemble"]["name"] / "metrics.jsonl").read_text().splitlines()
        ]
        assert [r.keys() for r in a] == [r.keys() for r in b] and len(a) == ens["epochs"]
        for ra, rb in zip(a, b):
            assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-3)
            assert rb["accuracy"] == pytest.approx(ra["accuracy"], abs=1.1 * 100 / (3 * 32))  # <= 1 sample apart
            assert rb["ns"] == ra["ns"] and rb["solved"] == ra["solved"]
        ck_a, ck_b = list_checkpoints(tmp_path / f"single{k}"), list_checkpoints(ens["run_dir"])
        assert [c[:2] for c in ck_a] == [c[:2] for c in ck_b]
        if ck_b:
            model, meta = load_checkpoint(ck_b[-1][2])
            assert isinstance(model, LeakyRNN) and model.config == build_model(members[k]).config
            trainer_a = torch.load(ck_a[-1][2] / "trainer.pt", weights_only=False)
            trainer_b = torch.load(ck_b[-1][2] / "trainer.pt", weights_only=False)
            assert trainer_b["epoch"] == trainer_a["epoch"]
            assert torch.equal(trainer_b["data_rng"], trainer_a["data_rng"])
            assert torch.equal(trainer_b["torch_rng"], trainer_a["torch_rng"])  # the r(0) stream of the single run
            for i, st in trainer_a["optimizer"]["state"].items():
                torch.testing.assert_close(
                    trainer_b["optimizer"]["state"][i]["momentum_buffer"], st["momentum_buffer"], rtol=1e-3, atol=1e-5
                )
        assert ens["n_reached"] == 2  # both compared members solve N = 2 (and so write a checkpoint)
    listing = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert [m["name"] for m in listing["members"]] == [s["ensemble"]["name"] for s in summaries]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train_ensemble(conds, tmp_path / "ens", seeds=[0, 1], progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_like_on_cpu():
    cfgs = conditions("default")[:3]
    cpu = EnsembleTrainer(cfgs, dtype=torch.float64)
    gpu = EnsembleTrainer(cfgs, device="cuda", dtype=torch.float64)
    for _ in range(3):
        a, b = cpu.train_step(), gpu.train_step()
        assert a == pytest.approx(b, rel=1e-8)
    torch.testing.assert_close(gpu.ensemble.rec_weight.cpu(), cpu.ensemble.rec_weight, rtol=1e-8, atol=1e-8)


def test_bad_inputs_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"at least one member \(K >= 1\), got K=0"):
        LeakyRNNEnsemble([])
    with pytest.raises(ValueError, match=r"K >= 1"):
        check_stackable([])
    with pytest.raises(ValueError, match=r"K >= 1"):
        train_ensemble([], tmp_path)
    with pytest.raises(
        ValueError,
        match=r"n_neurons differs \(member 0: 128, member 1: 500\); "
        r"expected every member to have n_neurons=128",
    ):
        train_ensemble([TrainConfig(n_neurons=128), TrainConfig(n_neurons=500)], tmp_path)
    with pytest.raises(ValueError, match=r"batch_size differs"):
        check_stackable([TrainConfig(), replace(TrainConfig(), batch_size=64)])
    with pytest.raises(ValueError, match=r"variant differs"):
        LeakyRNNEnsemble([LeakyRNNConfig(n_neurons=4), LeakyRNNConfig(n_neurons=4, variant="mod")])
    with pytest.raises(ValueError, match=r"leaky RNNs \(model='leaky'\); member 1 has model='lstm'"):
        check_stackable([TrainConfig(), TrainConfig(model="lstm")])
    with pytest.raises(TypeError, match="every seed must be an int"):
        expand_members(TrainConfig(), [0, 1.5])
    with pytest.raises(ValueError, match="at least one seed"):
        expand_members(TrainConfig(), [])
    small = dict(n_neurons=4, n_heads=2, batch_size=4, max_n=3)
    with pytest.raises(ValueError, match="got 1 lr_schedules for 2 members"):
        EnsembleTrainer([TrainConfig(**small), TrainConfig(**small)], lr_schedules=[None])
    ens = LeakyRNNEnsemble([LeakyRNNConfig(n_neurons=4, n_heads=2), LeakyRNNConfig(n_neurons=4, n_heads=1)])
    with pytest.raises(ValueError, match="same size B"):
        ens([torch.ones(3, 5, 1), torch.ones(2, 5, 1)])
    with pytest.raises(ValueError, match=r"xs\[1\] must be a tensor of shape \(B, T, 1\)"):
        ens([torch.ones(3, 5, 1), torch.ones(3, 5)])
    with pytest.raises(ValueError, match=r"got 1 input batches for 2 members"):
        ens([torch.ones(3, 5, 1)])
    with pytest.raises(ValueError, match=r"member 1: head indices must lie in \[0, 0\], got \[1\]"):
        ens([torch.ones(3, 5, 1)] * 2, heads=[[0], [1]])
    with pytest.raises(IndexError, match=r"member index must be an int in \[0, 1\], got 2"):
        ens.member(2)
    with pytest.raises(ValueError, match="Nesterov momentum requires momentum > 0"):
        MemberOptimizer(momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="got 1 member optimizers for an ensemble of 2"):
        EnsembleOptimizer(ens, [MemberOptimizer()])
