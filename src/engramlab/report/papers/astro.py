"""AstroSNN / AM-SU (Shen et al. 2023, arXiv:2312.07625): the claims table and its experiments.

The paper's method and tables are not public (only the abstract and Fig. 1 could be read), so every
claim here is the abstract's, read as this project does (docs/astro.md), and every threshold is this
project's criterion, said so in the rule's ``basis``. Experiments (units):

- the ablation ladder: for each seed, task (copy, associative recall, delayed match-to-sample) and
  variant of ``engramlab.astro.model.VARIANTS`` (AstroSNN, LIF ablation, rate neurons, read-out after
  the spike, no key shift, no normaliser, plain linear attention of the same state), one training with
  delays drawn log-uniformly up to the largest delay, scored at every delay;
- fair baselines: GPT, LSTM and the leaky RNN of ``engramlab.timescales`` (and AstroSNN itself) on
  the same tasks and budget, each model's learning rate chosen by the same sweep (one sweep seed,
  best mean accuracy over the delays), then trained on every seed at its chosen rate;
- AstroSNN and the LIF ablation as byte language models on Shakespeare; once, per-token latency and
  state memory against the context (AstroSNN's recurrent state against GPT's key/value cache).
"""

from __future__ import annotations

from pathlib import Path

from engramlab import io
from engramlab.report.claims import ClaimSpec
from engramlab.report.units import Outputs, Unit

from . import _common as C

SYSTEM = "astro"
TITLE = "AstroSNN: astrocyte-modulated spiking language models"
PAPER = "Shen, Zhao, Dong, Li, Li, Sun, Zeng, arXiv:2312.07625 (2023)"
SUMMARY = (
    "Spiking networks whose synapses are modulated by astrocytes retain memories over long delays "
    "better than plain spiking networks, and generate with low latency and a memory that does not "
    "grow with the context."
)

TASKS = ("copy", "recall", "dms")
# the ladder's variants (engramlab.astro.model.VARIANTS, same order)
VARIANT_NAMES = ("astrosnn", "lif", "rate", "after_spike", "no_shift", "no_norm", "linear_attn", "sigmoid_input")
# the variants without "astrocytic modulation of spiking units": no astrocyte, no spikes, no coupling, no neurons
CONTROLS = ("lif", "rate", "after_spike", "linear_attn")
BASELINE_MODELS = ("gpt", "lstm", "leaky_rnn")
LABELS = {
    "astrosnn": "AstroSNN",
    "lif": "LIF ablation (no astrocyte)",
    "rate": "non-spiking (rate neurons)",
    "after_spike": "read-out after the spike",
    "no_shift": "no key shift",
    "no_norm": "no normaliser",
    "linear_attn": "linear attention, same state",
    "sigmoid_input": "sigmoid input current",
    "gpt": "GPT",
    "lstm": "LSTM",
    "leaky_rnn": "leaky RNN (timescales)",
}
_SMALL = {
    "model.n_layer": 4,
    "model.d_model": 128,
    "model.n_neurons": 128,
    "model.n_astrocytes": 8,
    "model.d_key": 16,
    "model.ffn_mult": 2,
}
_TINY = {
    "model.n_layer": 2,
    "model.d_model": 64,
    "model.n_neurons": 64,
    "model.n_astrocytes": 4,
    "model.d_key": 16,
    "model.ffn_mult": 2,
}


def _lif(arch: dict, width: int) -> dict:
    return {**arch, "model.astrocyte": False, "model.d_model": width, "model.n_neurons": width, "model.n_astrocytes": 4}


def _memory(steps, batch, d_model, n_layer, n_astro, d_key, eval_batches, lr):
    return {
        "n_symbols": 8,
        "steps": steps,
        "batch_size": batch,
        "eval_batches": eval_batches,
        "eval_every": max(1, steps // 3),
        "d_model": d_model,
        "n_layer": n_layer,
        "n_astrocytes": n_astro,
        "d_key": d_key,
        "lr": lr,
        "train_delays": "loguniform",
    }


BUDGETS = {
    "tiny": {
        "memory": _memory(4, 4, 16, 1, 2, 4, 1, 3e-3),
        "tasks": ["copy", "recall", "dms"],
        "n_items": {"copy": 2, "recall": 2, "dms": 2},
        "delays": [2, 4],
        "long_delays": [4],
        "claim_delay": 4,
        "variants": list(VARIANT_NAMES),
        "baselines": {"models": list(BASELINE_MODELS) + ["astrosnn"], "lrs": [3e-3], "sweep_seed": 100},
        "lm": {
            "astro": {
                "model.n_layer": 1,
                "model.d_model": 16,
                "model.n_neurons": 16,
                "model.n_astrocytes": 2,
                "model.d_key": 4,
                "model.ffn_mult": 2,
            },
            "lif_width": 16,
            "steps": 4,
            "sched": {
                "batch_size": 2,
                "block_size": 16,
                "warmup_steps": 1,
                "eval_interval": 2,
                "eval_batches": 1,
                "log_interval": 2,
            },
        },
        "generation": {
            "gpt": {"model.n_layer": 1, "model.n_head": 2, "model.n_embd": 20},
            "contexts": [8, 32],
            "tokens": 2,
            "repeats": 1,
        },
        "estimate_s": {"ladder": 0.5, "baseline": 0.3, "lm": 3, "generation": 2},
    },
    "quick": {
        "memory": _memory(60, 16, 16, 1, 2, 8, 2, 1e-2),
        "tasks": ["copy", "recall", "dms"],
        "n_items": {"copy": 2, "recall": 2, "dms": 2},
        "delays": [5, 20],
        "long_delays": [20],
        "claim_delay": 20,
        "variants": list(VARIANT_NAMES),
        "baselines": {"models": list(BASELINE_MODELS) + ["astrosnn"], "lrs": [1e-2], "sweep_seed": 100},
        "lm": {
            "astro": _TINY,
            "lif_width": 76,
            "steps": 150,
            "sched": {
                "batch_size": 8,
                "block_size": 64,
                "warmup_steps": 15,
                "eval_interval": 50,
                "eval_batches": 8,
                "log_interval": 10,
            },
        },
        "generation": {
            "gpt": {"model.n_layer": 2, "model.n_head": 2, "model.n_embd": 60},
            "contexts": [128, 512, 2048],
            "tokens": 8,
            "repeats": 2,
        },
        "estimate_s": {"ladder": 1.0, "baseline": 0.5, "lm": 7, "generation": 2},
    },
    # docs/astro.md, "Ablation ladder": a tiny AstroSNN (2 layers, d = N = 32, 4 astrocytes x d_key 8)
    # and a short budget (300 AdamW steps of 32 sequences, delays drawn log-uniformly up to 500)
    # so that the whole ladder fits about an hour of one core; the small presets for 300 steps of
    # 8 x 256 Shakespeare bytes; the efficiency benchmark's contexts
    "full": {
        "memory": _memory(300, 32, 32, 2, 4, 8, 4, 1e-2),
        "tasks": ["copy", "recall", "dms"],
        "n_items": {"copy": 4, "recall": 4, "dms": 2},
        "delays": [10, 50, 100, 200, 500],
        "long_delays": [100, 200, 500],
        "claim_delay": 100,
        "variants": list(VARIANT_NAMES),
        # steps_factor: the baselines train for about AstroSNN's CPU time (per-step CPU at T = 100, B = 32, one
        # thread: AstroSNN 0.135 s, GPT 0.041 s, LSTM 0.017 s, leaky RNN 0.021 s)
        "baselines": {
            "models": list(BASELINE_MODELS),
            "lrs": [3e-3, 1e-2],
            "sweep_seed": 100,
            "steps_factor": {"gpt": 3, "lstm": 8, "leaky_rnn": 6},
        },
        "lm": {
            "astro": _SMALL,
            "lif_width": 156,
            "steps": 300,
            "sched": {
                "batch_size": 8,
                "block_size": 256,
                "warmup_steps": 30,
                "eval_interval": 100,
                "eval_batches": 20,
                "log_interval": 25,
            },
        },
        "generation": {
            "gpt": {"model.n_layer": 4, "model.n_head": 2, "model.n_embd": 112},
            "contexts": [256, 1024, 4096],
            "tokens": 30,
            "repeats": 5,
        },
        "estimate_s": {"ladder": 13, "baseline": 8, "lm": 300, "generation": 30},
    },
}


def budget_text(b: dict) -> str:
    m, lm = b["memory"], b["lm"]
    k = ", ".join(f"{t} K = {b['n_items'][t]}" for t in b["tasks"])
    return (
        f"ablation ladder and baselines: {', '.join(b['tasks'])} ({k}, {m['n_symbols']} symbols) scored at "
        f"D = {', '.join(map(str, b['delays']))}; one training per model of {m['steps']} AdamW steps of "
        f"{m['batch_size']} sequences with delays drawn log-uniformly from 0..{max(b['delays'])}; AstroSNN "
        f"{m['n_layer']} layers d = {m['d_model']} (lr {m['lr']:g}), the LIF ablation, LSTM, GPT and leaky RNN "
        f"matched to its parameter count, the baselines' learning rates swept over "
        f"{', '.join(f'{x:g}' for x in b['baselines']['lrs'])} and their steps multiplied by "
        f"{b['baselines'].get('steps_factor') or 1} (about AstroSNN's CPU time); language: {lm['steps']} steps of "
        f"{lm['sched']['batch_size']} x {lm['sched']['block_size']} Shakespeare bytes; latency at contexts "
        f"{', '.join(map(str, b['generation']['contexts']))}"
    )


def _cost(b: dict, task: str) -> float:
    # one training's cost grows with the longest delay (the log-uniform draw's mean is ~ D / ln D)
    return 1.0 + max(b["delays"]) / 250 + (0.2 if task == "recall" else 0.0)


def plan(b: dict, seeds: list[int], extra: dict | None = None) -> list[Unit]:
    est = b["estimate_s"]
    units = []
    mem = {"delays": b["delays"], **b["memory"]}
    for task in b["tasks"]:
        cfg = {"kind": "memory", "task": task, "n_items": b["n_items"][task], **mem}
        for s in seeds:
            for v in b["variants"]:
                units.append(
                    Unit(
                        SYSTEM,
                        f"ladder-{task}-{v}-s{s}",
                        s,
                        {**cfg, "models": [v]},
                        estimate_s=est["ladder"] * _cost(b, task) * (1.2 if v in ("rate", "no_norm") else 1.0),
                    )
                )
        bl = b["baselines"]
        for model in bl["models"]:
            factor = bl.get("steps_factor", {}).get(model, 1)
            fast = 1.0 if factor > 1 else (0.3 if model in ("gpt", "lstm") else 1.0)
            bcfg = {**cfg, "steps": cfg["steps"] * factor}
            sweep = [f"sweep-{task}-{model}-lr{lr:g}" for lr in bl["lrs"]]
            for name, lr in zip(sweep, bl["lrs"]):
                units.append(
                    Unit(
                        SYSTEM,
                        name,
                        None,
                        {**bcfg, "models": [model], "lrs": {model: lr}, "seed": bl["sweep_seed"]},
                        estimate_s=est["baseline"] * _cost(b, task) * fast,
                    )
                )
            if model == "astrosnn":
                continue  # AstroSNN's seeds are the ladder's (lr of the budget); the sweep says what it would pick
            for s in seeds:
                units.append(
                    Unit(
                        SYSTEM,
                        f"base-{task}-{model}-s{s}",
                        s,
                        {**bcfg, "models": [model], "sweep": sweep},
                        deps=tuple(f"{SYSTEM}/{n}" for n in sweep),
                        estimate_s=est["baseline"] * _cost(b, task) * fast,
                    )
                )
    for s in seeds:
        lm = b["lm"]
        units.append(
            Unit(
                SYSTEM,
                f"lm-astro-s{s}",
                s,
                {"kind": "lm", "model": lm["astro"], "sched": lm["sched"], "steps": lm["steps"]},
                estimate_s=est["lm"],
            )
        )
        units.append(
            Unit(
                SYSTEM,
                f"lm-lif-s{s}",
                s,
                {"kind": "lm", "model": _lif(lm["astro"], lm["lif_width"]), "sched": lm["sched"], "steps": lm["steps"]},
                estimate_s=est["lm"],
            )
        )
    g = b["generation"]
    units.append(
        Unit(
            SYSTEM,
            "generation",
            None,
            {"kind": "generation", "astro": b["lm"]["astro"], **g},
            estimate_s=est["generation"],
        )
    )
    return units


# ----------------------------------------------------------------------------- the leaky RNN baseline
def leaky_rnn_builder(vocab_size: int, max_len: int, target: int):
    """engramlab.timescales' leaky RNN (trainable per-neuron tau) reading tokens, sized to ``target`` parameters."""
    import torch
    import torch.nn.functional as F

    from engramlab.timescales.model import LeakyRNN, LeakyRNNConfig, recurrence_fused

    class LeakyRNNLM(torch.nn.Module):
        """r(t) = f((1 - 1/tau) r(t-1) + (1/tau) (W^R r(t-1) + e(x_t) + b)), f = leaky ReLU; logits = W^O r(t) + c.

        The paper's network (engramlab.timescales.model.LeakyRNN: W^R without self-connections, tau per
        neuron, the fused recurrence) with a token embedding e in place of its scalar input W^I x(t)
        and a linear read-out over the vocabulary at every step in place of its task heads.
        """

        def __init__(self, hidden: int):
            super().__init__()
            self.rnn = LeakyRNN(LeakyRNNConfig(n_neurons=hidden, n_heads=1))
            del self.rnn.input, self.rnn.heads  # replaced by the embedding and the read-out
            self.embed = torch.nn.Embedding(vocab_size, hidden)
            self.head = torch.nn.Linear(hidden, vocab_size)

        def forward(self, idx, targets=None):
            c = self.rnn.config
            u_in = self.embed(idx).transpose(0, 1) + self.rnn.recurrent.bias  # (T, B, H)
            h0 = u_in.new_zeros(u_in.shape[1:])
            hs = recurrence_fused(u_in, h0, self.rnn.w_rec(), 1.0 / self.rnn.tau_hat, c.variant, c.activation)
            logits = self.head(hs.transpose(0, 1))  # (B, T, V)
            loss = None
            if targets is not None:
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
            return logits, loss

    def n(m):
        return sum(p.numel() for p in m.parameters())

    best = min(range(8, 400, 2), key=lambda h: abs(h * h + 2 * h * vocab_size + 2 * h + vocab_size - target))
    model = LeakyRNNLM(best)
    assert abs(n(model) - target) <= 0.05 * target + 2 * best, (n(model), target)
    return model


def _memory_cfg(c: dict, seed: int, models: list[str], lrs: dict | None = None):
    from engramlab.astro.memory import MemoryConfig

    keys = ("n_items", "n_symbols", "steps", "batch_size", "eval_batches", "eval_every", "d_model", "n_layer")
    keys += ("n_astrocytes", "d_key", "lr", "train_delays")
    return MemoryConfig(
        task=c["task"],
        delays=list(c["delays"]),
        seed=seed,
        jobs=1,
        models=models,
        per_delay=False,
        lrs=dict(lrs or {}),
        **{k: c[k] for k in keys},
    )


def choose_lr(sweep_results: list[dict], model: str) -> float:
    """The sweep's pick: the learning rate with the best mean held-out accuracy over the delays
    (ties: the smaller rate)."""
    scored = []
    for r in sweep_results:
        acc = r["accuracy"][model]
        scored.append((-sum(acc) / len(acc), r["lr"][model]))
    return min(scored)[1]


def run_unit(unit: Unit, folder: Path, ctx) -> None:
    c = unit.config
    if c["kind"] == "memory":
        from engramlab.astro.memory import run_memory

        builders = {"leaky_rnn": leaky_rnn_builder}
        models = list(c["models"])
        seed = unit.seed if unit.seed is not None else c["seed"]
        lrs = dict(c.get("lrs", {}))
        if "sweep" in c:  # a baseline's seeds: its learning rate is the sweep's pick
            done = [io.read_json(folder.parent / name / "memory.json") for name in c["sweep"]]
            lrs = {models[0]: choose_lr(done, models[0])}
        run_memory(_memory_cfg(c, seed, models, lrs), folder, progress=ctx.progress, builders=builders)
    elif c["kind"] == "lm":
        C.train_lm("astro", "small", {**c["model"], **c["sched"]}, c["steps"], unit.seed, folder, ctx)
    elif c["kind"] == "generation":
        import torch

        from engramlab.report.measure import generation_speed
        from engramlab.train.engine import resolve_device
        from engramlab.train.registry import get_model_spec
        from engramlab.train.run import build_configs

        def build(name, sets):
            cfg, _ = build_configs(name, "small", {k: str(v) for k, v in sets.items()})
            return get_model_spec(name).model_cls(cfg)

        torch.manual_seed(0)
        longest = max(c["contexts"]) + c["tokens"] + 1
        astro = build("astro", c["astro"])
        gpt = build("gpt", {**c["gpt"], "model.block_size": longest, "model.pos": "rope", "model.dropout": 0.0})
        res = generation_speed(
            {"AstroSNN (recurrent state)": (astro, "recurrent"), "GPT (KV cache)": (gpt, "kv_cache")},
            c["contexts"],
            c["tokens"],
            c["repeats"],
            device=str(resolve_device(ctx.device)),
        )
        io.write_json(folder / "generation.json", res)
    else:
        raise ValueError(f"unknown astro experiment kind {c['kind']!r}")


# --------------------------------------------------------------------------------------- measures
def _chance(task: str) -> float:
    return 0.5 if task == "dms" else 1.0 / 8


def _acc(o: Outputs, name: str, model: str, delay: int) -> float:
    m = o.json(name, "memory.json")
    return m["accuracy"][model][m["delays"].index(delay)]


def _unit_name(task: str, model: str, s: int) -> str:
    return f"ladder-{task}-{model}-s{s}" if model in VARIANT_NAMES else f"base-{task}-{model}-s{s}"


def score(o: Outputs, model: str, s: int) -> float:
    """Long-memory score of one seed: held-out accuracy above chance, (acc - chance) / (1 - chance),
    averaged over the tasks and the long delays."""
    b = o.budget
    vals = []
    for task in b["tasks"]:
        ch = _chance(task)
        for d in b["long_delays"]:
            vals.append((_acc(o, _unit_name(task, model, s), model, d) - ch) / (1 - ch))
    return sum(vals) / len(vals)


def _score(model: str):
    return lambda o: o.per_seed(lambda s: score(o, model, s))


def _task_acc(task: str, model: str):
    def measure(o: Outputs):
        return o.per_seed(lambda s: _acc(o, _unit_name(task, model, s), model, o.budget["claim_delay"]))

    return measure


def _modulation_gap(o: Outputs):
    """Per seed: AstroSNN's score minus the best score of the controls without astrocytic modulation of spikes."""

    def one(s):
        a = score(o, "astrosnn", s)
        return a - max(score(o, v, s) for v in CONTROLS)

    return o.per_seed(one)


def _lm_bpb(kind: str):
    def measure(o: Outputs):
        return o.per_seed(lambda s: o.json(f"lm-{kind}-s{s}", "result.json")["val_bpb"])

    return measure


def _gen(o: Outputs) -> dict | None:
    return o.json("generation", "generation.json") if o.has("generation") else None


def _state_ratio(o: Outputs):
    g = _gen(o)
    if g is None:
        return [None]
    sb = g["state_bytes"]["AstroSNN (recurrent state)"]
    return [sb[-1] / sb[0]]


def _state_vs_kv(o: Outputs):
    g = _gen(o)
    if g is None:
        return [None]
    return [g["state_bytes"]["AstroSNN (recurrent state)"][-1] / g["state_bytes"]["GPT (KV cache)"][-1]]


def _latency_ratio(o: Outputs):
    g = _gen(o)
    if g is None:
        return [None]
    t = g["ms_per_token"]["AstroSNN (recurrent state)"]
    return [t[-1] / t[0]]


_READING = "the paper publishes no number; threshold is this project's criterion (docs/astro.md)"
_SCORE_UNIT = "held-out accuracy above chance, (acc - chance) / (1 - chance), mean over tasks and long delays"
_TASK_UNIT = "held-out accuracy at the claim delay"

_WHAT = {
    "lif": ("the astrocyte", "the astrocytes (a LIF spiking network with no token-mixing memory)"),
    "rate": ("the spikes", "the spikes (every LIF replaced by its rate, the same astrocytes)"),
    "after_spike": (
        "the membrane coupling",
        "the membrane coupling (the astrocyte's read-out added after the spike, not before the threshold)",
    ),
    "no_shift": ("the key shift", "the key shift A2' (this project's choice)"),
    "no_norm": ("the normaliser", "the normaliser q.z of A3 (this project's choice)"),
    "linear_attn": (
        "the spiking units",
        "the neurons altogether (a plain linear-attention layer with the astrocytes' state size)",
    ),
    "sigmoid_input": (
        "the linear input current",
        "the linear input current of A1 (I_t = sigmoid(W_I x_t) instead; this project's choice)",
    ),
}


def _ladder_claims() -> list[ClaimSpec]:
    out = []
    for v, (short, long) in _WHAT.items():
        out.append(
            ClaimSpec(
                id=f"astro.ladder_{v}",
                kind="baseline",
                claim=f"ablation ladder: AstroSNN without {long}",
                source="ablation ladder (one config switch)",
                paper_value=None,
                paper_text="not reported",
                rule=None,
                unit=_SCORE_UNIT,
                measure=_score(v),
                experiment="ladder",
                figures=("ladder.png", "ladder_score.png"),
            )
        )
        out.append(
            ClaimSpec(
                id=f"astro.ladder_needs_{v}",
                claim=f"long memory needs {short}: removing it costs accuracy at long delays",
                source="abstract ('memory retention ... long-term dependencies'), read as an ablation"
                if v in CONTROLS
                else "this project's design choice (docs/astro.md)",
                paper_value=None,
                paper_text="no ablation published",
                rule={
                    "op": ">=",
                    "other": f"astro.ladder_{v}",
                    "margin": 0.10,
                    "partly": 0.03,
                    "basis": f"AstroSNN's score at least 0.10 above the variant's (partly: 0.03); {_READING}",
                },
                unit=_SCORE_UNIT,
                measure=_score("astrosnn"),
                experiment="ladder",
                figures=("ladder.png", "ladder_score.png"),
            )
        )
    return out


def _task_claims() -> list[ClaimSpec]:
    out = []
    for task, what in (
        ("copy", "retain a sequence over a long delay (copy task)"),
        ("recall", "bind and recall key-value pairs over a delay"),
        ("dms", "hold a sample for a delayed match-to-sample decision"),
    ):
        out.append(
            ClaimSpec(
                id=f"astro.{task}_lif",
                kind="baseline",
                claim=f"LIF-SNN ablation (astrocyte off), {task}",
                source="ablation (ladder)",
                paper_value=None,
                paper_text="not reported",
                rule=None,
                unit=_TASK_UNIT,
                measure=_task_acc(task, "lif"),
                experiment="ladder",
                figures=("ladder.png",),
            )
        )
        out.append(
            ClaimSpec(
                id=f"astro.{task}_vs_lif",
                claim=f"astrocytes let a spiking network {what}",
                source="abstract ('memory retention ... long-term dependencies')",
                paper_value=None,
                paper_text="'exceptional performance in tasks involving memory retention' (no number)",
                rule={
                    "op": ">=",
                    "other": f"astro.{task}_lif",
                    "margin": 0.30,
                    "partly": 0.10,
                    "basis": f"AstroSNN at least 30 accuracy points above its LIF ablation; {_READING}",
                },
                unit=_TASK_UNIT,
                measure=_task_acc(task, "astrosnn"),
                experiment="ladder",
                figures=("ladder.png",),
            )
        )
    return out


def _baseline_claims() -> list[ClaimSpec]:
    out = []
    for m in BASELINE_MODELS:
        out.append(
            ClaimSpec(
                id=f"astro.fair_{m}",
                kind="baseline",
                claim=f"{LABELS[m]} on the memory tasks, learning rate chosen by the sweep",
                source="baseline at matched parameters and budget",
                paper_value=None,
                paper_text="not reported",
                rule=None,
                unit=_SCORE_UNIT,
                measure=_score(m),
                experiment="baselines",
                figures=("baselines.png", "ladder_score.png"),
            )
        )
        out.append(
            ClaimSpec(
                id=f"astro.fair_vs_{m}",
                claim=f"AstroSNN retains memories better than a tuned {LABELS[m]} of the same size and budget",
                source="abstract ('exceptional performance in tasks involving memory retention')",
                paper_value=None,
                paper_text="no number published",
                rule={
                    "op": ">=",
                    "other": f"astro.fair_{m}",
                    "margin": 0.10,
                    "partly": 0.0,
                    "basis": f"AstroSNN's score at least 0.10 above the baseline's (partly: not below it); {_READING}",
                },
                unit=_SCORE_UNIT,
                measure=_score("astrosnn"),
                experiment="baselines",
                figures=("baselines.png", "ladder_score.png"),
            )
        )
    return out


CLAIMS = [
    *_task_claims(),
    *_ladder_claims(),
    ClaimSpec(
        id="astro.modulation_carries_memory",
        claim="the astrocyte's modulation of spiking units is what carries long memory "
        "(AstroSNN above every control without it: LIF ablation, rate neurons, read-out after the spike, "
        "linear attention of the same state)",
        source="abstract, read as the ablation ladder (docs/astro.md)",
        paper_value=None,
        paper_text="no ablation published",
        rule={
            "op": ">=",
            "value": 0.10,
            "partly": 0.03,
            "basis": "per seed, AstroSNN's score minus the best control's at least 0.10 (partly: 0.03); " + _READING,
        },
        unit="score difference, AstroSNN - best control",
        measure=_modulation_gap,
        experiment="ladder",
        figures=("ladder_score.png",),
    ),
    *_baseline_claims(),
    ClaimSpec(
        id="astro.lm_lif_bpb",
        kind="baseline",
        claim="LIF-SNN ablation as a byte language model",
        source="ablation at matched parameters",
        paper_value=None,
        paper_text="not reported",
        rule=None,
        unit="validation bits/byte",
        measure=_lm_bpb("lif"),
        experiment="lm-lif",
        figures=("lm.png",),
    ),
    ClaimSpec(
        id="astro.lm_vs_lif",
        claim="astrocyte modulation improves spiking language modelling at matched parameters",
        source="abstract ('natural language generation')",
        paper_value=None,
        paper_text="1.5B-parameter model; no comparable number published",
        rule={
            "op": "<=",
            "other": "astro.lm_lif_bpb",
            "margin": 0.0,
            "partly": 0.05,
            "basis": f"AstroSNN's bits/byte not above the LIF ablation's (partly: within 0.05); {_READING}",
        },
        unit="validation bits/byte",
        measure=_lm_bpb("astro"),
        experiment="lm",
        figures=("lm.png",),
    ),
    ClaimSpec(
        id="astro.state_constant",
        claim="the memory held for generation does not grow with the context",
        source="abstract ('reduced memory usage')",
        paper_value=1.0,
        paper_text="no figure published",
        rule={"op": "<=", "value": 1.0, "basis": "state bytes at the longest context / at the shortest"},
        unit="state size ratio, longest / shortest context",
        measure=_state_ratio,
        experiment="generation",
        figures=("efficiency.png",),
    ),
    ClaimSpec(
        id="astro.memory_vs_kv",
        claim="AstroSNN holds less memory than a Transformer's KV cache at long context",
        source="abstract ('reduced memory usage')",
        paper_value=None,
        paper_text="no figure published",
        rule={"op": "<", "value": 1.0, "basis": "AstroSNN state / parameter-matched GPT's KV cache, longest context"},
        unit="memory ratio at the longest context",
        measure=_state_vs_kv,
        experiment="generation",
        figures=("efficiency.png",),
    ),
    ClaimSpec(
        id="astro.latency_flat",
        claim="per-token generation latency does not grow with the context",
        source="abstract ('low latency, high throughput')",
        paper_value=1.0,
        paper_text="no figure published",
        rule={
            "op": "<=",
            "value": 1.5,
            "partly": 3.0,
            "basis": "per-token time at the longest context / at the shortest; 1.5x allows timer noise",
        },
        unit="latency ratio, longest / shortest context",
        measure=_latency_ratio,
        experiment="generation",
        figures=("efficiency.png",),
        deterministic=False,
    ),
]


def budgets(o: Outputs, device: str) -> dict:
    b = o.budget
    out = {}
    ladder = [f"ladder-{t}-{v}-s{s}" for t in b["tasks"] for v in b["variants"] for s in o.seeds]
    params = {}
    for n in ladder:
        if o.has(n):
            params.update(o.json(n, "memory.json")["params"])
    common = {
        "device": "cpu",
        "steps": b["memory"]["steps"],
        "batch_size": b["memory"]["batch_size"],
        "delays": b["delays"],
        "long_delays": b["long_delays"],
    }
    out["ladder"] = {**common, "seconds": o.wall_s(ladder), "params": params or None}
    bl = b["baselines"]
    names = [f"sweep-{t}-{m}-lr{lr:g}" for t in b["tasks"] for m in bl["models"] for lr in bl["lrs"]]
    names += [f"base-{t}-{m}-s{s}" for t in b["tasks"] for m in BASELINE_MODELS for s in o.seeds]
    bparams, lrs = {}, {}
    for n in names:
        if o.has(n):
            r = o.json(n, "memory.json")
            bparams.update(r["params"])
            if n.startswith("base-"):
                lrs.setdefault(n.split("-")[1], {}).update(r["lr"])
    out["baselines"] = {**common, "seconds": o.wall_s(names), "params": bparams or None, "chosen_lr": lrs or None}
    for exp, kind in (("lm", "astro"), ("lm-lif", "lif")):
        names = [f"lm-{kind}-s{s}" for s in o.seeds]
        r = next((o.json(n, "result.json") for n in names if o.has(n)), None)
        out[exp] = {
            "device": device,
            "seconds": o.wall_s(names),
            "params": r and r["params"],
            "tokens_per_seed": r and r["tokens"],
            "steps": b["lm"]["steps"],
        }
    out["generation"] = {"device": device, "seconds": o.wall_s(["generation"]), "contexts": b["generation"]["contexts"]}
    return out


# --------------------------------------------------------------------------------------- figures
def _curves(o: Outputs, models, task: str) -> dict[str, list[list[float]]]:
    b = o.budget
    acc: dict[str, list[list[float]]] = {}
    for m in models:
        for s in o.seeds:
            n = _unit_name(task, m, s)
            if o.has(n):
                r = o.json(n, "memory.json")
                for j, d in enumerate(b["delays"]):
                    acc.setdefault(m, [[] for _ in b["delays"]])[j].append(r["accuracy"][m][r["delays"].index(d)])
    return acc


def _accuracy_figure(o: Outputs, models, out: Path, file: str, title: str) -> bool:
    import numpy as np

    plt = C.plt()
    b = o.budget
    per_task = {t: _curves(o, models, t) for t in b["tasks"]}
    if not any(per_task.values()):
        return False
    fig, axes = plt.subplots(1, len(b["tasks"]), figsize=(4.6 * len(b["tasks"]), 3.8), squeeze=False)
    for ax, task in zip(axes[0], b["tasks"]):
        for i, (m, per_d) in enumerate(per_task[task].items()):
            pts = [(d, np.mean(v), np.min(v), np.max(v)) for d, v in zip(b["delays"], per_d) if v]
            if not pts:
                continue
            x, mu, lo, hi = map(np.array, zip(*pts))
            ax.errorbar(x, mu, yerr=[mu - lo, hi - mu], marker="o", capsize=3, color=f"C{i}", label=LABELS[m])
        ax.axhline(_chance(task), color="gray", ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_xlabel("delay D (blank steps)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{task} (K = {b['n_items'][task]})")
    axes[0, 0].set_ylabel("held-out accuracy (mean, range over seeds)")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    io.save_figure(fig, out / file, bbox_inches="tight")
    return True


def figures(o: Outputs, out: Path) -> list[dict]:
    import numpy as np

    plt = C.plt()
    b = o.budget
    figs = []
    if _accuracy_figure(o, b["variants"], out, "ladder.png", "ablation ladder: one config switch each"):
        figs.append(
            {
                "file": "ladder.png",
                "caption": "Ablation ladder: held-out accuracy against the delay for AstroSNN and each variant "
                "(one training per variant and seed, delays drawn log-uniformly up to the largest).",
            }
        )
    base = ["astrosnn", *BASELINE_MODELS]
    if _accuracy_figure(o, base, out, "baselines.png", "AstroSNN against baselines with swept learning rates"):
        figs.append(
            {
                "file": "baselines.png",
                "caption": "AstroSNN against GPT, LSTM and the leaky RNN at matched parameters and budget, "
                "each baseline at the learning rate its sweep chose.",
            }
        )
    rows = []
    for m in [*b["variants"], *BASELINE_MODELS]:
        vals = []
        for s in o.seeds:
            try:
                vals.append(score(o, m, s))
            except FileNotFoundError:
                pass
        if vals:
            rows.append((m, vals))
    if rows:
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        for i, (m, vals) in enumerate(rows):
            mu = float(np.mean(vals))
            ax.bar(
                i,
                mu,
                yerr=[[mu - min(vals)], [max(vals) - mu]],
                capsize=4,
                color="C0"
                if m == "astrosnn"
                else ("C3" if m in CONTROLS else ("C2" if m in BASELINE_MODELS else "C1")),
            )
            ax.plot([i] * len(vals), vals, "k.", ms=4)
        ax.set_xticks(range(len(rows)), [LABELS[m] for m, _ in rows], rotation=35, ha="right", fontsize=8)
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_ylabel("long-memory score")
        ax.set_title(f"accuracy above chance at D = {', '.join(map(str, b['long_delays']))} (mean over tasks)")
        io.save_figure(fig, out / "ladder_score.png", bbox_inches="tight")
        figs.append(
            {
                "file": "ladder_score.png",
                "caption": "Long-memory score per model (accuracy above chance, normalised, averaged over the tasks "
                "and the long delays): bars are the mean, dots the seeds. Blue AstroSNN, red the controls without "
                "astrocytic modulation of spikes, orange the design-choice ablations, green the baselines.",
            }
        )
    runs = {
        k: [o.json(f"lm-{k}-s{s}", "result.json") for s in o.seeds if o.has(f"lm-{k}-s{s}")] for k in ("astro", "lif")
    }
    if any(runs.values()):
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
        names = {"astro": "AstroSNN", "lif": "LIF-SNN"}
        for i, (k, rs) in enumerate(runs.items()):
            for j, r in enumerate(rs):
                st, v = zip(*r["curve"])
                ax[0].plot(
                    st,
                    np.array(v) / np.log(2),
                    color=f"C{i}",
                    alpha=0.8,
                    label=f"{names[k]} ({r['params']:,} params)" if j == 0 else None,
                )
        ks = [k for k in runs if runs[k]]
        vals = [[r["val_bpb"] for r in runs[k]] for k in ks]
        ax[1].bar(
            range(len(ks)),
            [np.mean(v) for v in vals],
            yerr=[[np.mean(v) - min(v) for v in vals], [max(v) - np.mean(v) for v in vals]],
            capsize=4,
            color=[f"C{list(runs).index(k)}" for k in ks],
        )
        ax[1].set_xticks(range(len(ks)), [names[k] for k in ks])
        ax[0].set_xlabel("step")
        ax[0].set_ylabel("validation bits/byte")
        ax[0].legend(fontsize=8)
        ax[1].set_ylabel("final validation bits/byte")
        ax[1].set_ylim(bottom=0)
        io.save_figure(fig, out / "lm.png", bbox_inches="tight")
        figs.append(
            {
                "file": "lm.png",
                "caption": "Shakespeare bits/byte of AstroSNN and its LIF ablation at "
                "matched parameters (curves per seed; final value, mean and range).",
            }
        )
    g = _gen(o)
    if g is not None:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
        for name in g["ms_per_token"]:
            ax[0].plot(g["contexts"], g["ms_per_token"][name], "o-", label=name)
            ax[1].plot(g["contexts"], [v / 2**20 for v in g["state_bytes"][name]], "o-", label=name)
        ax[0].set_ylabel("ms per token (batch 1)")
        ax[1].set_ylabel("state / KV cache (MiB)")
        for a in ax:
            a.set_xscale("log")
            a.set_yscale("log")
            a.set_xlabel("context (tokens)")
            a.legend(fontsize=8)
        ax[0].set_title(f"latency on {g['device']}")
        ax[1].set_title("memory held for the context")
        io.save_figure(fig, out / "efficiency.png", bbox_inches="tight")
        figs.append(
            {
                "file": "efficiency.png",
                "caption": "Per-token latency and memory against the context: "
                "AstroSNN's recurrent state against a parameter-matched GPT's KV cache.",
            }
        )
    return figs


def tables(o: Outputs) -> list[dict]:
    b = o.budget
    out = []
    for title, models in (
        ("Ablation ladder: held-out accuracy (mean [min, max] over seeds)", list(b["variants"])),
        (
            "Baselines (learning rate by sweep): held-out accuracy (mean [min, max] over seeds)",
            ["astrosnn", *BASELINE_MODELS],
        ),
    ):
        rows = []
        for task in b["tasks"]:
            acc = _curves(o, models, task)
            for j, d in enumerate(b["delays"]):
                if any(acc.get(m, [[]] * len(b["delays"]))[j] for m in models):
                    rows.append([task, d] + [C.mean_spread(acc[m][j]) if m in acc else "" for m in models])
        if rows:
            out.append({"title": title, "columns": ["task", "delay"] + [LABELS[m] for m in models], "rows": rows})
    lr_rows = []
    bl = b["baselines"]
    for task in b["tasks"]:
        for m in bl["models"]:
            sweep = [f"sweep-{task}-{m}-lr{lr:g}" for lr in bl["lrs"]]
            if all(o.has(n) for n in sweep):
                res = [o.json(n, "memory.json") for n in sweep]
                means = [sum(r["accuracy"][m]) / len(r["accuracy"][m]) for r in res]
                lr_rows.append([task, LABELS[m]] + [f"{x:.3f}" for x in means] + [f"{choose_lr(res, m):g}"])
    if lr_rows:
        out.append(
            {
                "title": f"Learning-rate sweep (seed {bl['sweep_seed']}): mean held-out accuracy over the delays",
                "columns": ["task", "model"] + [f"lr {x:g}" for x in bl["lrs"]] + ["chosen"],
                "rows": lr_rows,
            }
        )
    return out


def notes(o: Outputs, extra: dict) -> list[str]:
    return [
        "The paper's equations and numbers are not public: the model is this project's reading of the abstract "
        "and Fig. 1, and the thresholds are this project's criteria.",
        "Ladder variants are config switches of one model at AstroSNN's width and learning rate; a variant "
        "'matches AstroSNN' where its ladder_needs_* verdict is 'not reproduced'.",
        "AstroSNN's seeds in the baseline comparison are the ladder's, at the budget's learning rate (chosen in a "
        "pilot, not by the baselines' sweep; where the budget lists astrosnn among the swept models, its sweep is in "
        "the learning-rate table).",
        "Latency is wall-clock time on the machine of this run.",
    ]
