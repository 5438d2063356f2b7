"""AstroSNN: a byte-level spiking language model built from AM-SU layers (this project's reading).

Layout (docs/astro.md, "Model"; the paper's layout is not public, see engramlab.astro.amsu):

    idx (B, T) -> embedding (B, T, d)
    L x [ x = x + W_out AMSU(LN(x))                  token mixing: LIF neurons + astrocytes (A1-A4)
          x = x + W_2 LIF(W_1 LN(x)) ]               spiking feed-forward (A5)
    -> LN -> lm_head -> logits (B, T, V)

The token position is the SNN time axis (as in SpikeGPT), so generation is recurrent with a
constant-size state per layer: two LIF populations (u, s) and the astrocytes' H, z.
``forward`` runs the parallel form (fused LIF scan + chunked astrocyte recurrence); ``step``
the one-token form; both give the same numbers (tests/astro/test_astro_model.py).

The ablation ladder (docs/astro.md, "Ablation ladder") is a set of config switches of this one
model: ``astrocyte=False`` (LIF ablation), ``spiking=False`` (every LIF replaced by its rate),
``coupling="after_spike"`` (astrocyte read-out added after the spike), ``key_shift=False``,
``normalise=False``, ``coupling="none"`` (a plain linear-attention layer with the astrocytes'
state in place of AM-SU) and ``input_current="sigmoid"``. ``VARIANTS`` names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from engramlab.astro.amsu import AMSU, COUPLINGS, INPUT_CURRENTS, AMSUState, AstroState
from engramlab.astro.neurons import LIF, RESETS, LIFState
from engramlab.astro.surrogate import RATE_SURROGATES, SURROGATES
from engramlab.nn.lm import LanguageModel


@dataclass
class AstroConfig:
    vocab_size: int = 256  # bytes
    n_layer: int = 2
    d_model: int = 128  # residual stream width d
    n_neurons: int = 128  # AM-SU neurons N per layer
    ffn_mult: int = 2  # spiking feed-forward width = ffn_mult * d_model
    astrocyte: bool = True  # False: plain LIF spiking network (o_t = 0), the ablation
    n_astrocytes: int = 8  # A astrocytes per layer, each over N / A neurons
    d_key: int = 16  # key / query size per astrocyte
    tau_min: float = 16.0  # astrocyte timescales tau_a initialised log-uniformly in [tau_min, tau_max]
    tau_max: float = 2048.0
    beta_min: float = 0.6  # LIF decays initialised evenly in [beta_min, beta_max] per neuron
    beta_max: float = 0.97
    threshold: float = 0.5  # initial LIF threshold (learnable)
    reset: str = "subtract"  # subtract | zero
    surrogate: str = "atan"  # atan | fast_sigmoid | sigmoid
    slope: float = 2.0  # surrogate sharpness
    chunk_size: int = 64  # chunk of the astrocyte's parallel recurrence
    key_shift: bool = True  # astrocyte keys see mu x_t + (1 - mu) x_{t-1} (Eq. A2')
    normalise: bool = True  # o_t = H_t q_t / (q_t . z_t + eps); False: o_t = H_t q_t
    spiking: bool = True  # False: every LIF replaced by its rate psi(u + o - theta) (no surrogate)
    coupling: str = "membrane"  # membrane (A4) | after_spike (s_t + o_t) | none (linear attention, no neurons)
    input_current: str = "linear"  # linear: I_t = W_I x_t (A1) | sigmoid: I_t = sigmoid(W_I x_t)

    def validate(self) -> None:
        for name in (
            "vocab_size",
            "n_layer",
            "d_model",
            "n_neurons",
            "ffn_mult",
            "n_astrocytes",
            "d_key",
            "chunk_size",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"AstroConfig.{name} must be a positive int, got {v!r}")
        if self.n_neurons % self.n_astrocytes:
            raise ValueError(
                f"AstroConfig.n_neurons={self.n_neurons} must be divisible by n_astrocytes={self.n_astrocytes}"
            )
        if not 0 < self.beta_min <= self.beta_max < 1:
            raise ValueError(f"need 0 < beta_min <= beta_max < 1, got {self.beta_min}, {self.beta_max}")
        if self.reset not in RESETS:
            raise ValueError(f"AstroConfig.reset={self.reset!r}; expected one of {RESETS}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"AstroConfig.surrogate={self.surrogate!r}; expected one of {SURROGATES}")
        if not self.threshold > 0 or not self.slope > 0:
            raise ValueError(f"threshold and slope must be > 0, got {self.threshold}, {self.slope}")
        if not 1 <= self.tau_min <= self.tau_max:
            raise ValueError(f"need 1 <= tau_min <= tau_max, got {self.tau_min}, {self.tau_max}")
        for name in ("astrocyte", "key_shift", "normalise", "spiking"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"AstroConfig.{name} must be true or false, got {getattr(self, name)!r}")
        if self.coupling not in COUPLINGS:
            raise ValueError(f"AstroConfig.coupling={self.coupling!r}; expected one of {COUPLINGS}")
        if self.input_current not in INPUT_CURRENTS:
            raise ValueError(f"AstroConfig.input_current={self.input_current!r}; expected one of {INPUT_CURRENTS}")
        if self.coupling != "membrane" and not self.astrocyte:
            raise ValueError(
                f"AstroConfig.coupling={self.coupling!r} needs astrocyte=true (it says where the astrocyte's "
                "read-out goes); the LIF ablation uses coupling='membrane'"
            )
        if not self.spiking and self.surrogate not in RATE_SURROGATES:
            raise ValueError(
                f"AstroConfig.spiking=false needs a surrogate with a rate form {RATE_SURROGATES}, "
                f"got surrogate={self.surrogate!r}"
            )


# The ablation ladder: name -> the AstroConfig switches it sets (docs/astro.md, "Ablation ladder")
VARIANTS = {
    "astrosnn": {},
    "lif": {"astrocyte": False},
    "rate": {"spiking": False},
    "after_spike": {"coupling": "after_spike"},
    "no_shift": {"key_shift": False},
    "no_norm": {"normalise": False},
    "linear_attn": {"coupling": "none"},
    "sigmoid_input": {"input_current": "sigmoid"},
}


class BlockState(NamedTuple):
    amsu: AMSUState
    ffn: LIFState


class Block(nn.Module):
    def __init__(self, cfg: AstroConfig):
        super().__init__()
        lif = dict(
            beta=(cfg.beta_min, cfg.beta_max),
            threshold=cfg.threshold,
            reset=cfg.reset,
            surrogate=cfg.surrogate,
            slope=cfg.slope,
            spiking=cfg.spiking,
        )
        d, F_ = cfg.d_model, cfg.ffn_mult * cfg.d_model
        self.ln1 = nn.LayerNorm(d)
        self.amsu = AMSU(
            d,
            cfg.n_neurons,
            cfg.astrocyte,
            cfg.n_astrocytes,
            cfg.d_key,
            cfg.tau_min,
            cfg.tau_max,
            cfg.chunk_size,
            cfg.key_shift,
            cfg.normalise,
            cfg.coupling,
            cfg.input_current,
            **lif,
        )
        self.W_out = nn.Linear(cfg.n_neurons, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.W_1 = nn.Linear(d, F_, bias=False)
        self.ffn_lif = LIF(F_, **lif)
        self.W_2 = nn.Linear(F_, d, bias=False)
        self.rates = (0.0, 0.0)  # last mean firing rates of (AM-SU, feed-forward), detached

    def _rate(self, s1: torch.Tensor):
        # the mixer's output is a spike train only with coupling="membrane" (after_spike adds o_t, none is o_t)
        return s1.detach().mean() if self.amsu.coupling == "membrane" else float("nan")

    def init_state(self, B: int, device, dtype) -> BlockState:
        return BlockState(self.amsu.init_state(B, device, dtype), self.ffn_lif.init_state(B, device, dtype))

    def forward(self, x: torch.Tensor, state: BlockState):  # x (B, T, d)
        s1, _, amsu = self.amsu(self.ln1(x), state.amsu, check=False)  # (B, T, N); ids checked in AstroSNN
        x = x + self.W_out(s1)
        h = self.W_1(self.ln2(x)).transpose(0, 1)  # (T, B, F)
        s2, _, ffn = self.ffn_lif(h, None, state.ffn, check=False)
        x = x + self.W_2(s2.transpose(0, 1))
        self.rates = (self._rate(s1), s2.detach().mean())
        return x, BlockState(amsu, ffn)

    def step(self, x: torch.Tensor, state: BlockState):  # x (B, d)
        s1, _, amsu = self.amsu.step(self.ln1(x), state.amsu)
        x = x + self.W_out(s1)
        s2, _, ffn = self.ffn_lif.step(self.W_1(self.ln2(x)), None, state.ffn)
        x = x + self.W_2(s2)
        self.rates = (self._rate(s1), s2.detach().mean())
        return x, BlockState(amsu, ffn)


class AstroSNN(LanguageModel):
    """Spiking byte LM of AM-SU blocks. ``config.astrocyte=False`` is the LIF-SNN ablation."""

    supports_state_carry = True

    def __init__(self, config: AstroConfig):
        super().__init__()
        if not isinstance(config, AstroConfig):
            raise TypeError(f"AstroSNN expects an AstroConfig, got {type(config).__name__}")
        config.validate()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    # ---- state -------------------------------------------------------------------------
    # The public state is a list (one entry per layer) of plain dicts of tensors, so generic code
    # (the engine's detach / device moves) can walk it; blocks use the named tuples inside.
    @staticmethod
    def _pack(st: BlockState) -> dict[str, torch.Tensor]:
        d = {"ffn_u": st.ffn.u, "ffn_s": st.ffn.s}
        if st.amsu.lif is not None:
            d["amsu_u"], d["amsu_s"] = st.amsu.lif.u, st.amsu.lif.s
        if st.amsu.astro is not None:
            d["astro_S"], d["astro_x"] = st.amsu.astro.S, st.amsu.astro.x_prev
        return d

    @staticmethod
    def _unpack(d: dict[str, torch.Tensor]) -> BlockState:
        astro = AstroState(d["astro_S"], d["astro_x"]) if "astro_S" in d else None
        lif = LIFState(d["amsu_u"], d["amsu_s"]) if "amsu_u" in d else None
        return BlockState(AMSUState(lif, astro), LIFState(d["ffn_u"], d["ffn_s"]))

    def init_state(self, batch_size: int) -> list[dict[str, torch.Tensor]]:
        """Zero state for batch_size sequences: per layer {amsu_u, amsu_s, astro_S, astro_x, ffn_u, ffn_s}."""
        p = self.lm_head.weight
        return [self._pack(blk.init_state(int(batch_size), p.device, p.dtype)) for blk in self.blocks]

    def reset(self, batch_size: int) -> list[dict[str, torch.Tensor]]:
        """The zero state (snnTorch / SpikingJelly ``reset``); the same as ``init_state``."""
        return self.init_state(batch_size)

    def check_state(self, state, batch_size: int) -> list[BlockState]:
        """Clear errors for a state of another batch size or configuration; returns the blocks' states."""
        if not isinstance(state, (list, tuple)) or len(state) != len(self.blocks):
            n = len(state) if isinstance(state, (list, tuple)) else type(state).__name__
            raise ValueError(
                f"state must be a list of {len(self.blocks)} per-layer dicts (one per layer), got {n} "
                f"({self.config_summary()})"
            )
        want = self.init_state(batch_size)
        for i, (st, ref) in enumerate(zip(state, want)):
            if not isinstance(st, dict) or set(st) != set(ref):
                keys = sorted(st) if isinstance(st, dict) else type(st).__name__
                raise ValueError(
                    f"state[{i}] does not fit this AstroSNN ({self.config_summary()}): "
                    f"expected keys {sorted(ref)}, got {keys}"
                )
            for k, z in st.items():
                if not isinstance(z, torch.Tensor) or z.shape != ref[k].shape:
                    got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
                    raise ValueError(
                        f"state[{i}][{k!r}] does not fit this AstroSNN ({self.config_summary()}): "
                        f"shape {got}, expected {tuple(ref[k].shape)}"
                    )
        return [self._unpack(st) for st in state]

    def config_summary(self) -> str:
        c = self.config
        return (
            f"n_layer={c.n_layer}, d_model={c.d_model}, n_neurons={c.n_neurons}, astrocyte={c.astrocyte}, "
            f"coupling={c.coupling}, normalise={c.normalise}, spiking={c.spiking}"
        )

    @staticmethod
    def detach_state(state):
        """The same state cut from the autograd graph (truncated backprop through time)."""
        return [{k: z.detach() for k, z in st.items()} for st in state]

    # ---- parallel form -----------------------------------------------------------------
    def forward_with_state(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state=None):
        """idx (B, T) -> (logits (B, T, V), loss or None, final state). Loss ignores targets == -1."""
        self.check_tokens(idx)
        B, T = idx.shape
        state = self.check_state(self.init_state(B) if state is None else state, B)
        x = self.wte(idx)  # (B, T, d)
        new = []
        for blk, st in zip(self.blocks, state):
            x, st = blk(x, st)
            new.append(self._pack(st))
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            if targets.shape != idx.shape:
                raise ValueError(f"targets shape {tuple(targets.shape)} must equal idx shape {tuple(idx.shape)}")
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss, new

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits, loss, _ = self.forward_with_state(idx, targets)
        return logits, loss

    @torch.no_grad()
    def prefill(self, idx: torch.Tensor):
        logits, _, state = self.forward_with_state(idx)
        return logits[:, -1], state

    # ---- recurrent form ----------------------------------------------------------------
    def step(self, idx_t: torch.Tensor, state):
        """idx_t (B,) -> (logits_t (B, V), new state): one token through every layer."""
        self.check_tokens(idx_t, "idx_t")
        if idx_t.dim() != 1:
            raise ValueError(f"idx_t must have shape (B,), got {tuple(idx_t.shape)}")
        state = self.check_state(state, idx_t.shape[0])
        x = self.wte(idx_t)  # (B, d)
        new = []
        for blk, st in zip(self.blocks, state):
            x, st = blk.step(x, st)
            new.append(self._pack(st))
        return self.lm_head(self.ln_f(x)), new

    # ---- measurements ------------------------------------------------------------------
    def firing_rates(self) -> list[dict[str, float]]:
        """Mean firing rate per layer (AM-SU, feed-forward) of the last forward/step call."""
        return [{"amsu": float(b.rates[0]), "ffn": float(b.rates[1])} for b in self.blocks]

    def state_bytes(self, batch_size: int = 1) -> int:
        """Bytes of the recurrent state (independent of the context length)."""
        return sum(z.numel() * z.element_size() for st in self.init_state(batch_size) for z in st.values())


MODEL = AstroSNN
CONFIG = AstroConfig
PRESETS = {
    "tiny": {
        "model": dict(n_layer=2, d_model=64, n_neurons=64, n_astrocytes=4, d_key=16, ffn_mult=2),
        "train": dict(
            steps=200,
            batch_size=8,
            block_size=128,
            lr=3e-3,
            min_lr=3e-4,
            warmup_steps=20,
            eval_interval=100,
            eval_batches=5,
            log_interval=10,
        ),
    },
    "small": {
        "model": dict(n_layer=4, d_model=128, n_neurons=128, n_astrocytes=8, d_key=16, ffn_mult=2),
        "train": dict(
            steps=1500,
            batch_size=16,
            block_size=256,
            lr=2e-3,
            min_lr=2e-4,
            warmup_steps=100,
            eval_interval=250,
            eval_batches=10,
            log_interval=25,
        ),
    },
    # the paper's size (~1.5B parameters per the GPT-NeoX README); a byte vocabulary, not NeoX's tokenizer
    "paper": {
        "model": dict(n_layer=24, d_model=2048, n_neurons=2048, n_astrocytes=16, d_key=128, ffn_mult=4),
        "train": dict(
            steps=100000,
            batch_size=32,
            block_size=2048,
            lr=3e-4,
            min_lr=3e-5,
            warmup_steps=2000,
            eval_interval=1000,
            eval_batches=50,
            log_interval=50,
        ),
    },
}
