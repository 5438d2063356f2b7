"""BDH-GPU, the Dragon Hatchling language model (Kosowski et al. 2025, arXiv:2509.26507).

One layer is the paper's Definition 4 / Eq. 8 in the arrangement of the official code
(GitHub ``pathwaycom/bdh``), with weights E, D_x, D_y shared by all L layers:

    x_{t,l}  = ReLU(D_x v*_{t,l-1})                               sparse positive, n = H*N neurons
    a*_{t,l} = sum_{tau<t} (U^{t-tau} x_{tau,l}) . x_{t,l}  v*_{tau,l-1}    (Eq. 4; RoPE/ALiBi = U)
             = x_{t,l}^T rho_{t-1,l}                                        (Eq. 5, the synaptic state)
    y_{t,l}  = ReLU(D_y LN_head(a*_{t,l})) * x_{t,l}              gated: supp(y) in supp(x)
    v*_{t,l} = LN(v*_{t,l-1} + LN(E y_{t,l}))                     residual in d-space (the code's)

v*_{t,0} = LN(embed(token_t)); logits = v*_{t,L} @ lm_head. Differences from the paper's
Eq. 8, taken from the official code: the residual is in d-space (the paper accumulates x in
n-space), LayerNorm placement follows the code, and the key/query is the RoPE-rotated x
(absolute phases, so (R_t x_t).(R_tau x_tau) depends only on t - tau). ``docs/bdh.md`` lists them.

Names follow the paper; the official code's names differ (see ``convert.py``):
``decoder_x`` = D_x (code ``encoder``), ``decoder_y`` = D_y (code ``encoder_v``),
``encoder_E`` = E (code ``decoder``), ``embed``, ``lm_head``. Parameter count 3nd + 2Vd.

The equations are written once, in ``BDH.layer``; ``forward`` (T tokens at once) and ``step``
(one token) both run it, with one of the three forms of Eq. 4 (``engramlab.bdh.attention``):
the quadratic masked product (``attn_impl="quadratic"``, the oracle), the chunked linear-time
form (default), and the recurrent form (``step``). ``forward_with_state`` carries rho across
training windows. How each piece is computed (fused CPU autograd nodes and a scratch pool, or
library ops for a GPU and torch.compile) is chosen in one place, ``ops.layer_kernels``.

BDH-GPU' (``variant="prime"``): a learned, data-dependent forget gate on the state update and
logits read from a learned mixture of all layers' outputs (see docs/bdh.md for why this form).

The paper's own arrangements (config switches; the defaults are the official code's):

- ``residual="n"``: Eq. 8, the residual in neuron space, x_{t,l} = x_{t,l-1} + (D_x v*_{t,l-1})^+
  (x_{t,0} = 0), keys and gate use that accumulated x, and v*_{t,l} = LN(E y_{t,l});
- ``layernorm=False``: no LayerNorm anywhere (input, attention read, E y, residual). With
  ``residual="n"`` this is BDH-Normfree (Eq. 7), the tensor form that coincides with the graph
  form (Eq. 6) under Eq. 9; ``engramlab.bdh.graph_form`` is that graph form, checked against it;
- ``detach_kv=True``: training without backprop through time (§7.2): keys, values and the
  earlier tokens' forget factors are detached inside attention (``engramlab.bdh.nobptt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from engramlab.bdh.attention import attention_chunked, attention_quadratic, attention_recurrent
from engramlab.bdh.nobptt import attention_detached_kv
from engramlab.bdh.ops import dropout_mask, layer_kernels, rope_rotate, rope_tables
from engramlab.nn.buffers import BufferPool
from engramlab.nn.layernorm import layer_norm
from engramlab.nn.lm import LanguageModel
from engramlab.nn.rope import alibi_log_decay, rope_frequencies

POS_CHOICES = ("rope", "alibi", "rope+alibi")
VARIANTS = ("gpu", "prime")
ATTN_IMPLS = ("chunked", "quadratic")
RESIDUALS = ("d", "n")


@dataclass
class BDHConfig:
    """BDH-GPU settings. The first six fields are the official code's, with its defaults."""

    n_layer: int = 6
    n_embd: int = 256  # d
    n_head: int = 4  # h
    mlp_internal_dim_multiplier: int = 128  # N = multiplier * d / h neurons per head
    dropout: float = 0.1
    vocab_size: int = 256
    pos: str = "rope"  # rope | alibi | rope+alibi: the operator U of Eq. 4
    variant: str = "gpu"  # gpu (Definition 4) | prime (BDH-GPU': gated state, all-layer logits)
    chunk_size: int = 256  # tokens per chunk of the linear-time form (cheapest near 2Nd / (N + d))
    rope_theta: float = 2.0**16
    alibi_min_half_life: float = 16.0  # per-head damping half-lives (tokens), geometric in [min, max]
    alibi_max_half_life: float = 1024.0
    attn_impl: str = "chunked"  # chunked (linear time) | quadratic (the official masked product)
    residual: str = "d"  # d: d-space residual (the official code) | n: x accumulated in n-space (Eq. 8)
    layernorm: bool = True  # False: no LayerNorm anywhere (with residual="n": BDH-Normfree, Eq. 7)
    detach_kv: bool = False  # training without backprop through time (§7.2, engramlab.bdh.nobptt)

    def __post_init__(self) -> None:
        ints = ("n_layer", "n_embd", "n_head", "mlp_internal_dim_multiplier", "vocab_size", "chunk_size")
        for name in ints:
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
                raise ValueError(f"BDHConfig.{name} must be a positive integer, got {val!r}")
        if self.pos not in POS_CHOICES:
            raise ValueError(f"BDHConfig.pos={self.pos!r}; expected one of {', '.join(POS_CHOICES)}")
        if self.variant not in VARIANTS:
            raise ValueError(f"BDHConfig.variant={self.variant!r}; expected one of {', '.join(VARIANTS)}")
        if self.attn_impl not in ATTN_IMPLS:
            raise ValueError(f"BDHConfig.attn_impl={self.attn_impl!r}; expected one of {', '.join(ATTN_IMPLS)}")
        if self.residual not in RESIDUALS:
            raise ValueError(f"BDHConfig.residual={self.residual!r}; expected one of {', '.join(RESIDUALS)}")
        for name in ("layernorm", "detach_kv"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"BDHConfig.{name} must be true or false, got {getattr(self, name)!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"BDHConfig.dropout must be in [0, 1), got {self.dropout}")
        if (self.mlp_internal_dim_multiplier * self.n_embd) % self.n_head:
            raise ValueError(
                f"mlp_internal_dim_multiplier * n_embd = {self.mlp_internal_dim_multiplier * self.n_embd} "
                f"must be divisible by n_head={self.n_head}"
            )
        if "rope" in self.pos and self.n_neurons_per_head % 2:
            raise ValueError(f"RoPE rotates neuron pairs: N={self.n_neurons_per_head} neurons per head must be even")
        if self.rope_theta <= 1:
            raise ValueError(f"BDHConfig.rope_theta must be > 1, got {self.rope_theta}")
        if not 0 < self.alibi_min_half_life <= self.alibi_max_half_life:
            raise ValueError(
                f"ALiBi half-lives must satisfy 0 < alibi_min_half_life <= alibi_max_half_life, got "
                f"{self.alibi_min_half_life}, {self.alibi_max_half_life}"
            )

    @property
    def n_neurons_per_head(self) -> int:
        """N = multiplier * d / h."""
        return self.mlp_internal_dim_multiplier * self.n_embd // self.n_head

    @property
    def n_neurons(self) -> int:
        """n = h * N."""
        return self.n_head * self.n_neurons_per_head


class BDH(LanguageModel):
    """BDH-GPU language model over bytes; see the module docstring for the equations."""

    supports_state_carry = True
    prefill_window = 1024  # tokens read in parallel per window by ``prefill`` (memory stays flat)

    def __init__(self, config: BDHConfig):
        super().__init__()
        if not isinstance(config, BDHConfig):
            raise TypeError(f"BDH expects a BDHConfig, got {type(config).__name__}")
        self.config = config
        H, d, N, V = config.n_head, config.n_embd, config.n_neurons_per_head, config.vocab_size
        self.embed = nn.Embedding(V, d)  # f_e (code: embed)
        self.decoder_x = nn.Parameter(torch.empty(H, d, N))  # D_x (code: encoder)
        self.decoder_y = nn.Parameter(torch.empty(H, d, N))  # D_y (code: encoder_v)
        self.encoder_E = nn.Parameter(torch.empty(H * N, d))  # E   (code: decoder)
        self.lm_head = nn.Parameter(torch.empty(d, V))  # f_d (code: lm_head)
        if config.variant == "prime":
            # BDH-GPU': forget gate f_t = sigmoid(v*_t . w_h + b_h) per head on the state update
            self.gate_w = nn.Parameter(torch.empty(d, H))
            self.gate_b = nn.Parameter(torch.empty(H))
            self.layer_mix = nn.Parameter(torch.zeros(config.n_layer))  # softmax weights of all layers
        if "rope" in config.pos:
            freqs = rope_frequencies(N, config.rope_theta).expand(H, N).contiguous()
            self.register_buffer("rope_freqs", freqs, persistent=True)  # (H, N) cycles per token
        if "alibi" in config.pos:
            ld = alibi_log_decay(H, config.alibi_min_half_life, config.alibi_max_half_life)
            self.register_buffer("alibi_log_decay", ld, persistent=True)  # (H,) log gamma_h
        # scratch memory of the CPU training path, reused from step to step (engramlab.nn.buffers)
        self.scratch = BufferPool()
        self._rope_cache: dict = {}  # what the RoPE tables need from rope_freqs (ops.rope_tables)
        # a spiking evaluation replaces x and y by Bernoulli spikes (engramlab.bdh.spiking); off by default
        self.spike_sampler = None
        self.reset_parameters()

    def release_scratch(self) -> None:
        """Give the reused CPU scratch buffers back (they are made again by the next step)."""
        self.scratch.clear()

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) for every weight, as in the official code."""
        for p in (self.embed.weight, self.decoder_x, self.decoder_y, self.encoder_E, self.lm_head):
            nn.init.normal_(p, mean=0.0, std=0.02)
        if self.config.variant == "prime":
            nn.init.normal_(self.gate_w, mean=0.0, std=0.02)
            # start almost without forgetting: f = sigmoid(5.5) ~ 1 - 1/256 (half-life ~ 170 tokens)
            nn.init.constant_(self.gate_b, 5.5)
            nn.init.zeros_(self.layer_mix)

    # ------------------------------------------------------------------------------- the layer
    def layer(self, v, rho, tables, attend, kernels, p_drop: float = 0.0, x_prev=None):
        """One BDH-GPU layer over T tokens of B sequences (Definition 4 / Eqs. 4, 5, 8).

        v (B, T, d): the layer's input v*_{l-1}; rho (H, B, N, d) or None: its synaptic state
        before these tokens; tables: RoPE of the tokens' positions (or None); attend: a form of
        Eq. 4 (``attention_quadratic | attention_chunked | attention_recurrent``); kernels: how
        the pieces are computed (``ops.layer_kernels``); x_prev (H, B, T, N): x of the layer
        before (``residual="n"`` only, None in the first layer). Returns (v*_l (B, T, d), rho
        after the tokens or None, x (H, B, T, N), y (H, B, T, N)).
        """
        norm = layer_norm if self.config.layernorm else _no_norm
        spike = self.spike_sampler  # None unless a spiking evaluation is on (engramlab.bdh.spiking)
        if x_prev is None and spike is None:
            x, k = kernels.neurons(v, self.decoder_x, tables)  # x = (D_x v*)^+; keys = queries k = U x
        else:
            x, _ = kernels.neurons(v, self.decoder_x, None)
            if x_prev is not None:
                x = x_prev + x  # Eq. 8: x_{t,l} = x_{t,l-1} + (D_x v*_{t,l-1})^+
            if spike is not None:
                x = spike(x)
            k = x if tables is None else rope_rotate(x, tables)
        a, rho = attend(k, v.unsqueeze(0), self._log_forget(v), rho)  # a* (Eq. 4) = x^T rho (Eq. 5), (H, B, T, d)
        drop = dropout_mask(x.shape, p_drop, x.device) if p_drop > 0 else None  # dropout on y, as the code
        y = kernels.gate(norm(a), self.decoder_y, x, drop)  # y = (D_y LN(a*))^+ * x
        if spike is not None:
            y = spike(y)
        z = kernels.readout(y, self.encoder_E)  # E y, (B, T, d)
        if p_drop > 0:
            z = z * (1.0 / (1.0 - p_drop))  # dropout's 1 / (1 - p), on the small E y
        if self.config.residual == "n":
            return norm(z), rho, x, y  # Eq. 8: v*_l = LN(E y_l) (Eq. 7 without LN: E y_l)
        return norm(v + norm(z)), rho, x, y  # v*_l = LN(v*_{l-1} + LN(E y))

    def _layers(self, v, rho, pos0, attend, kernels, p_drop: float = 0.0, trace: list | None = None):
        """All L layers over v*_0 (B, T, d) -> (logits (B, T, V), each layer's rho after the tokens).

        rho (L, H, B, N, d) or None: the state before the tokens; pos0 (int or 0-d tensor): the
        absolute position of the first token. With ``trace``, appends each layer's x, y, input v.
        """
        L = self.config.n_layer
        tables = self._rope_tables(pos0, v.shape[1], v.dtype)  # shared by all layers
        rho_in = [None] * L if rho is None else rho.unbind(0)
        rho_out, outs = [], []
        x = None
        for layer in range(L):
            v_in = v
            x_prev = x if self.config.residual == "n" else None
            v, S, x, y = self.layer(v, rho_in[layer], tables, attend, kernels, p_drop, x_prev)
            rho_out.append(S)
            outs.append(v)
            if trace is not None:
                trace.append({"x": x.transpose(0, 1), "y": y.transpose(0, 1), "v": v_in})
        h = v
        if self.config.variant == "prime":  # BDH-GPU': logits from a learned mixture of all layers
            w = torch.softmax(self.layer_mix, 0)
            h = self._norm(sum(w[i] * outs[i] for i in range(L)))
        return h @ self.lm_head, rho_out

    def _norm(self, z: torch.Tensor) -> torch.Tensor:
        """LN(z), or z itself when the model has no LayerNorm (``layernorm=False``)."""
        return layer_norm(z) if self.config.layernorm else z

    def _log_forget(self, v: torch.Tensor) -> torch.Tensor | None:
        """log f per head and token: (H, B|1, T) from the layer input v (B, T, d), or None (no decay)."""
        lf = None
        if "alibi" in self.config.pos:
            lf = self.alibi_log_decay.to(v.dtype)[:, None, None].expand(-1, 1, v.shape[1])  # (H, 1, T)
        if self.config.variant == "prime":
            g = F.logsigmoid(v @ self.gate_w + self.gate_b).permute(2, 0, 1)  # (H, B, T)
            lf = g if lf is None else g + lf
        return lf

    def _rope_tables(self, pos0, T: int, dtype: torch.dtype):
        """RoPE tables of positions pos0 .. pos0 + T - 1 (pos0 an int or a 0-d tensor: no host sync)."""
        if "rope" not in self.config.pos:
            return None
        t = torch.arange(T, device=self.rope_freqs.device, dtype=torch.float64) + pos0
        return rope_tables(self.rope_freqs, t, dtype, self._rope_cache)  # broadcast over the batch

    # ------------------------------------------------------------------------------- parallel
    def _run(
        self,
        idx: torch.Tensor,
        rho: torch.Tensor | None = None,
        pos0=0,
        impl: str | None = None,
        trace: list | None = None,
        need_state: bool = False,
        fused: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All layers in parallel over idx (B, T). Returns (logits (B, T, V), rho_out (L, H, B, N, d)).

        rho (L, H, B, N, d) is the synaptic state carried in (None = empty), pos0 the absolute
        position of idx[:, 0]. With impl == "quadratic" no state is carried (rho must be None).
        ``need_state=False`` (a plain forward) skips forming rho_out and returns None for it.
        ``fused=False`` uses library ops for the whole layer (the fused CPU nodes' test oracle).
        """
        impl = impl or self.config.attn_impl
        v = self._norm(self.embed(idx))  # (B, T, d): v*_{., 0}
        kernels = layer_kernels(v, fused)
        if impl == "quadratic":
            if rho is not None or need_state:
                raise ValueError("the quadratic form carries no state: use impl='chunked'")
            attend = _quadratic
        else:
            attend = partial(
                attention_chunked,
                chunk_size=self.config.chunk_size,
                need_state=need_state,
                fused=kernels.fused_attention,
            )
        if self.config.detach_kv and torch.is_grad_enabled():  # §7.2: no gradient through time
            C = idx.shape[1] if impl == "quadratic" else self.config.chunk_size
            attend = partial(_detached, chunk_size=C, need_state=need_state)
        p_drop = float(self.config.dropout) if self.training else 0.0
        # the scratch pool reuses the big buffers between steps; a trace keeps its tensors, so no pool
        with kernels.scratch(self.scratch if trace is None else None):
            logits, rho_out = self._layers(v, rho, pos0, attend, kernels, p_drop, trace)
        return logits, (torch.stack(rho_out) if need_state else None)

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
        if targets is None:
            return None
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, T) -> (logits (B, T, V), mean cross-entropy in nats or None)."""
        self._check_idx(idx)
        self._check_targets(idx, targets)
        logits, _ = self._run(idx)
        return logits, self._loss(logits, targets)

    def forward_trace(self, idx: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """Logits and, per layer, {"x": (B, H, T, N), "y": (B, H, T, N) gated y, "v": (B, T, d) input v*}.

        Runs the same code as ``forward`` (in training mode y holds dropout's zeros).
        """
        self._check_idx(idx)
        trace: list[dict[str, torch.Tensor]] = []
        logits, _ = self._run(idx, trace=trace)
        return logits, trace

    def forward_with_state(self, idx: torch.Tensor, targets: torch.Tensor | None, state: Any):
        """Continue from ``state`` (None = fresh): (logits, loss, new state). Truncated BPTT in training."""
        self._check_idx(idx)
        self._check_targets(idx, targets)
        B, T = idx.shape
        if state is None:
            rho, pos0 = None, torch.zeros((), dtype=torch.long, device=idx.device)
        else:
            self._check_state(state, B)
            rho, pos0 = state["rho"], state["pos"]
        logits, rho_out = self._run(idx, rho=rho, pos0=pos0, impl="chunked", need_state=True)
        return logits, self._loss(logits, targets), {"rho": rho_out, "pos": pos0 + T}

    # ------------------------------------------------------------------------------- recurrent
    def init_state(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Empty synaptic memory: {"rho": zeros (L, H, B, N, d), "pos": 0 (the next token's position)}.

        rho[l, h, b] is the N x d synaptic state of Eq. 5 (read with the rotated keys x).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        L, H, N, d = self._dims
        p = self.lm_head
        rho = torch.zeros(L, H, batch_size, N, d, dtype=p.dtype, device=p.device)
        return {"rho": rho, "pos": torch.tensor(0, dtype=torch.long, device=p.device)}

    def step(self, idx_t: torch.Tensor, state: dict[str, torch.Tensor]):
        """One token per sequence: idx_t (B,) -> (logits (B, V), state). Cost independent of context.

        Runs ``layer`` on one token with the recurrent form: reads rho, then writes the rank-1
        Hebbian update (Eq. 8). Without autograd the state is updated in place (no copy per
        token) and the same dict is returned.
        """
        self.check_tokens(idx_t, "idx_t")
        if idx_t.dim() != 1:
            raise ValueError(f"idx_t must be (batch,) token ids, got shape {tuple(idx_t.shape)}")
        self._check_state(state, idx_t.shape[0])
        inplace = not torch.is_grad_enabled()
        v = self._norm(self.embed(idx_t)).unsqueeze(1)  # (B, 1, d): v*_{t, 0}
        attend = partial(attention_recurrent, inplace=inplace)
        if self.config.detach_kv and not inplace:  # §7.2: the state read carries no gradient
            attend = partial(_detached, chunk_size=1, need_state=True)
        logits, rho = self._layers(v, state["rho"], state["pos"], attend, layer_kernels(v))
        if inplace:
            state["pos"] = state["pos"] + 1
            return logits[:, 0], state
        return logits[:, 0], {"rho": torch.stack(rho), "pos": state["pos"] + 1}

    # ------------------------------------------------------------------------------- checks
    @property
    def _dims(self) -> tuple[int, int, int, int]:
        c = self.config
        return c.n_layer, c.n_head, c.n_neurons_per_head, c.n_embd

    def _check_idx(self, idx: torch.Tensor) -> None:
        self.check_tokens(idx)
        if idx.dim() != 2:
            raise ValueError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")

    def _check_targets(self, idx: torch.Tensor, targets: torch.Tensor | None) -> None:
        if targets is None:
            return
        if not isinstance(targets, torch.Tensor) or targets.shape != idx.shape:
            shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
            raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, got {shape}")

    def _check_state(self, state: Any, batch_size: int) -> None:
        L, H, N, d = self._dims
        if not isinstance(state, dict) or "rho" not in state or "pos" not in state:
            raise TypeError(
                f"state must be the dict returned by init_state/prefill/step (keys 'rho', 'pos'), "
                f"got {type(state).__name__}"
            )
        rho = state["rho"]
        expected = (L, H, batch_size, N, d)
        if not isinstance(rho, torch.Tensor) or tuple(rho.shape) != expected:
            got = tuple(rho.shape) if isinstance(rho, torch.Tensor) else type(rho).__name__
            raise ValueError(
                f"state['rho'] has shape {got}, expected {expected} = (n_layer, n_head, batch, N, n_embd) "
                "for this model and batch size: was the state made by another config or batch size?"
            )
        if rho.dtype != self.lm_head.dtype:
            raise ValueError(f"state['rho'] has dtype {rho.dtype}, expected the model's {self.lm_head.dtype}")

    @torch.no_grad()
    def prefill(self, idx: torch.Tensor):
        """Read the prompt in parallel (chunked form, windows of ``prefill_window`` tokens).

        Returns (logits of the last token (B, V), state). Memory is bounded by the window, so
        arbitrarily long prompts are fine.
        """
        if idx.dim() == 1:
            idx = idx.unsqueeze(0)
        self._check_idx(idx)
        rho, logits = None, None
        W = max(1, int(self.prefill_window))
        for s in range(0, idx.shape[1], W):
            logits, rho = self._run(idx[:, s : s + W], rho=rho, pos0=s, impl="chunked", need_state=True)
        return logits[:, -1], {"rho": rho, "pos": torch.tensor(idx.shape[1], dtype=torch.long, device=idx.device)}


def _no_norm(z: torch.Tensor) -> torch.Tensor:
    return z


def _detached(k, v, log_f, rho, chunk_size, need_state):
    """``nobptt.attention_detached_kv`` with the signature of the other forms."""
    return attention_detached_kv(k, v, log_f, rho, chunk_size=chunk_size, need_state=need_state)


def _quadratic(k, v, log_f, rho):
    """The quadratic form of Eq. 4 with the signature of the other two (it carries no state)."""
    return attention_quadratic(k, v, log_f), None


def _presets() -> dict[str, dict[str, dict[str, Any]]]:
    return {
        # seconds on a CPU: a smoke test of the whole pipeline
        "tiny": {
            "model": dict(n_layer=2, n_embd=32, n_head=2, mlp_internal_dim_multiplier=8, dropout=0.0, chunk_size=32),
            "train": dict(
                steps=60,
                batch_size=8,
                block_size=64,
                lr=3e-3,
                min_lr=3e-4,
                warmup_steps=10,
                eval_interval=30,
                eval_batches=4,
                log_interval=10,
            ),
        },
        # minutes on a CPU (the quality comparison against GPT of docs/bdh.md)
        "small": {
            "model": dict(n_layer=4, n_embd=128, n_head=4, mlp_internal_dim_multiplier=8, dropout=0.0, chunk_size=64),
            "train": dict(
                steps=600,
                batch_size=8,
                block_size=128,
                lr=2e-3,
                min_lr=2e-4,
                warmup_steps=40,
                eval_interval=50,
                eval_batches=10,
                log_interval=10,
            ),
        },
        # the official code's 25.3M model and training recipe (GPU): AdamW at a constant lr 1e-3
        # (no warm-up, no decay), betas (0.9, 0.999) (torch's defaults, which train.py keeps),
        # weight decay 0.1, no gradient clipping, 3,000 steps of 32 x 512 bytes. With N = 8,192
        # neurons per head the state form costs 2Nd per token against C(N + d) for the masked
        # product, so below C ~ 2Nd / (N + d) ~ 500 one chunk per 512-byte window is the cheaper form
        "paper": {
            "model": dict(
                n_layer=6, n_embd=256, n_head=4, mlp_internal_dim_multiplier=128, dropout=0.1, chunk_size=512
            ),
            "train": dict(
                steps=3000,
                batch_size=32,
                block_size=512,
                lr=1e-3,
                schedule="constant",
                warmup_steps=0,
                beta1=0.9,
                beta2=0.999,
                weight_decay=0.1,
                grad_clip=0.0,
                eval_interval=250,
                eval_batches=20,
                log_interval=50,
            ),
        },
    }


MODEL = BDH
CONFIG = BDHConfig
PRESETS = _presets()

__all__ = ["BDH", "BDHConfig", "MODEL", "CONFIG", "PRESETS"]
