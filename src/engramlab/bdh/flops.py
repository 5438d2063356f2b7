"""Training FLOPs per token (= per byte) of BDH-GPU and of the GPT baseline, to match them in compute.

Only matrix products are counted, 2 FLOPs per multiply-add; embeddings (table lookups),
LayerNorm, RoPE, ReLU, GELU, softmax, biases and the loss are left out (elementwise, a few
FLOPs per entry). Training costs 3 x forward: the usual convention that the backward pass of a
matmul is two matmuls of its size (the input gradient and the weight gradient). Per token, at a
training window of T tokens:

BDH-GPU (n = H N neurons, d, L layers sharing E, D_x, D_y, vocabulary V):

    forward = L (2dn [D_x] + 2dn [D_y] + 2nd [E] + attention + 2dH [BDH-GPU' gate]) + 2dV [read-out]
    attention, quadratic form (the official masked product):   2Tn [x x^T] + 2TdH [scores v*]
    attention, chunked form (chunks of C = min(chunk_size, T)): (T'/T) (2Cn + 2CdH + 2nd [read rho] + 2nd [write])

where T' = ceil(T / C) C is the window padded to whole chunks. The chunked count is the steady
state (a state carried in and out, as in training with ``carry_state``); a fresh window skips
the read of the first chunk and the write of the last, 4ndC / T per layer less.

GPT (d, L layers, vocabulary V, tied embeddings): forward = L (24 d^2 + 4Td) + 2dV
(q, k, v, out: 8d^2; MLP d -> 4d -> d: 16d^2; q k^T and attention x v: 2Td each).

Both attention counts are the full T x T products that the code computes (and that
``torch.utils.flop_counter`` counts): causal masking makes about half of them unneeded, in
both models alike. ``tests/bdh/test_bdh_flops.py`` checks the formulas against a hand count
and against ``FlopCounterMode`` on a forward pass.
"""

from __future__ import annotations

import math

from engramlab.baselines.gpt import GPTConfig
from engramlab.bdh.model import ATTN_IMPLS, BDHConfig


def _check_context(context) -> int:
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ValueError(f"context must be a positive integer (tokens per training window), got {context!r}")
    return context


def flops_breakdown(cfg, context: int, attention: str | None = None) -> dict[str, float]:
    """Forward matmul FLOPs per token, by part, at a window of ``context`` tokens.

    cfg: a ``BDHConfig`` or a ``GPTConfig``; attention (BDH only): "quadratic" or "chunked"
    (default: the config's ``attn_impl``). The parts sum to ``forward_flops_per_token``.
    """
    T = _check_context(context)
    if isinstance(cfg, BDHConfig):
        form = attention or cfg.attn_impl
        if form not in ATTN_IMPLS:
            raise ValueError(f"attention={form!r}; expected one of {', '.join(ATTN_IMPLS)}")
        L, d, H, V, n = cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.vocab_size, cfg.n_neurons
        parts = {"decoder_x": L * 2 * d * n, "decoder_y": L * 2 * d * n, "encoder_E": L * 2 * n * d}
        if form == "quadratic":
            parts["attention_scores"] = L * 2 * T * n
            parts["attention_values"] = L * 2 * T * d * H
        else:
            C = max(1, min(cfg.chunk_size, T))
            pad = math.ceil(T / C) * C / T
            parts["attention_scores"] = L * pad * 2 * C * n
            parts["attention_values"] = L * pad * 2 * C * d * H
            parts["state_read"] = L * pad * 2 * n * d
            parts["state_write"] = L * pad * 2 * n * d
        if cfg.variant == "prime":
            parts["forget_gate"] = L * 2 * d * H
        parts["lm_head"] = 2 * d * V
        return {k: float(v) for k, v in parts.items()}
    if isinstance(cfg, GPTConfig):
        L, d, V = cfg.n_layer, cfg.n_embd, cfg.vocab_size
        return {
            "qkv": float(L * 2 * d * 3 * d),
            "attention_out": float(L * 2 * d * d),
            "mlp": float(L * 2 * 2 * d * 4 * d),
            "attention_scores": float(L * 2 * T * d),
            "attention_values": float(L * 2 * T * d),
            "lm_head": float(2 * d * V),
        }
    raise TypeError(f"expected a BDHConfig or a GPTConfig, got {type(cfg).__name__}")


def forward_flops_per_token(cfg, context: int, attention: str | None = None) -> float:
    """Matmul FLOPs of one forward pass per token (see the module docstring for the formula)."""
    return sum(flops_breakdown(cfg, context, attention).values())


def train_flops_per_token(cfg, context: int, attention: str | None = None) -> float:
    """Training FLOPs per token (per byte for byte-level models): 3 x the forward matmul FLOPs."""
    return 3.0 * forward_flops_per_token(cfg, context, attention)
