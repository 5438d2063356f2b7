"""GPT-2-style decoder: the Transformer baseline every paper compares against (nanoGPT-like).

Pre-LayerNorm blocks, causal softmax attention (``F.scaled_dot_product_attention``), GELU MLP,
learned or rotary positions, tied input/output embeddings, and a key/value cache so that
generation costs one ``step`` per token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from engramlab.nn.lm import LanguageModel
from engramlab.nn.rotary import apply_rope, rope_cos_sin


@dataclass
class GPTConfig:
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256  # longest context (learned positions); the KV cache keeps this many tokens
    vocab_size: int = 256
    dropout: float = 0.0
    bias: bool = False
    pos: str = "learned"  # learned | rope

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.pos not in ("learned", "rope"):
            raise ValueError(f"pos={self.pos!r}; expected 'learned' or 'rope'")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"rope needs an even head size, got {self.n_embd // self.n_head}")
        for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPTConfig.{name}={getattr(self, name)} must be >= 1")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.n_head, self.hd = cfg.n_head, cfg.n_embd // cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def _qkv(self, x: torch.Tensor, positions: torch.Tensor):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.n_head, self.hd).transpose(1, 2) for z in (q, k, v))  # (B, H, T, hd)
        if self.cfg.pos == "rope":
            cos, sin = rope_cos_sin(positions, self.hd)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        B, T, C = x.shape
        q, k, v = self._qkv(x, positions)
        drop = self.cfg.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_drop(self.proj(y)), (k, v)

    def step(self, x: torch.Tensor, position: torch.Tensor, cache: tuple | None):
        """x (B, 1, C) attends to the cached keys/values plus itself."""
        B, _, C = x.shape
        q, k, v = self._qkv(x, position)
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v)  # one query sees every cached key
        y = y.transpose(1, 2).reshape(B, 1, C)
        return self.proj(y), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias),
            nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x, positions):
        a, kv = self.attn(self.ln_1(x), positions)
        x = x + a
        return x + self.mlp(self.ln_2(x)), kv

    def step(self, x, position, cache):
        a, kv = self.attn.step(self.ln_1(x), position, cache)
        x = x + a
        return x + self.mlp(self.ln_2(x)), kv


class GPT(LanguageModel):
    """GPT-2-style byte-level language model.

    State for ``step``: {"kv": per-layer (k, v) of shape (B, H, Tc, hd), "pos": next position,
    "tokens": (B, Tc) the cached tokens}. With learned positions the cache holds at most
    block_size tokens; when it is full, the last block_size/2 tokens are re-read (as nanoGPT
    crops its context). With rotary positions the cache slides over the last block_size tokens.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd) if config.pos == "learned" else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def _embed(self, idx: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(positions)
        return self.drop(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, T) -> logits (B, T, V), mean cross-entropy (targets == -1 are ignored)."""
        B, T = idx.shape
        if self.wpe is not None and T > self.config.block_size:
            raise ValueError(
                f"sequence of length {T} is longer than block_size={self.config.block_size} of this "
                f"GPT with learned positions"
            )
        pos = torch.arange(T, device=idx.device)
        x = self._embed(idx, pos)
        for blk in self.blocks:
            x, _ = blk(x, pos)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    # ---------------------------------------------------------------- recurrent form (KV cache)
    def init_state(self, batch_size: int) -> dict:
        dev = self.wte.weight.device
        return {
            "kv": [None] * self.config.n_layer,
            "pos": 0,
            "tokens": torch.zeros(batch_size, 0, dtype=torch.long, device=dev),
            "batch": batch_size,
        }

    @torch.no_grad()
    def prefill(self, idx: torch.Tensor):
        """Read the prompt in one parallel pass (its last block_size tokens) into the cache."""
        keep = idx[:, -self.config.block_size :]
        B, T = keep.shape
        pos = torch.arange(T, device=keep.device)
        x = self._embed(keep, pos)
        kv = []
        for blk in self.blocks:
            x, c = blk(x, pos)
            kv.append(c)
        logits = self.lm_head(self.ln_f(x[:, -1]))
        return logits, {"kv": kv, "pos": T, "tokens": keep, "batch": B}

    def step(self, idx_t: torch.Tensor, state: dict):
        """idx_t (B,) -> logits (B, V); appends the token's keys/values to the cache."""
        if not isinstance(state, dict) or "kv" not in state or len(state["kv"]) != self.config.n_layer:
            raise ValueError("state was not made by this GPT's init_state/prefill (wrong layer count)")
        if idx_t.dim() != 1 or idx_t.size(0) != state["batch"]:
            raise ValueError(f"idx_t must have shape ({state['batch']},) to match the state, got {tuple(idx_t.shape)}")
        self.check_tokens(idx_t, "idx_t")
        bs = self.config.block_size
        if state["tokens"].size(1) >= bs:
            if self.wpe is not None:  # positions are absolute: re-read the recent half
                _, state = self.prefill(state["tokens"][:, -(bs // 2) :])
            else:  # rotary: slide the window
                state["kv"] = [(k[:, :, 1:], v[:, :, 1:]) for k, v in state["kv"]]
                state["tokens"] = state["tokens"][:, 1:]
        pos_val = state["pos"] if self.wpe is None else state["tokens"].size(1)
        pos = torch.tensor([pos_val], device=idx_t.device)
        x = self._embed(idx_t[:, None], pos)
        kv = []
        for blk, cache in zip(self.blocks, state["kv"]):
            x, c = blk.step(x, pos, cache)
            kv.append(c)
        logits = self.lm_head(self.ln_f(x[:, -1]))
        tokens = torch.cat([state["tokens"], idx_t[:, None]], dim=1)
        return logits, {"kv": kv, "pos": state["pos"] + 1, "tokens": tokens, "batch": state["batch"]}


def _preset(n_layer, n_head, n_embd, block, steps, batch, lr, warmup, eval_interval, dropout=0.0):
    return {
        "model": {"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "block_size": block, "dropout": dropout},
        "train": {
            "steps": steps,
            "batch_size": batch,
            "block_size": block,
            "lr": lr,
            "min_lr": lr / 10,
            "warmup_steps": warmup,
            "eval_interval": eval_interval,
        },
    }


MODEL = GPT
CONFIG = GPTConfig
PRESETS = {
    "tiny": _preset(2, 4, 96, 64, 1200, 32, 3e-3, 50, 300),
    "small": _preset(4, 4, 128, 256, 2000, 16, 1e-3, 100, 250, dropout=0.1),
    "paper": _preset(12, 12, 768, 1024, 100000, 32, 6e-4, 2000, 1000, dropout=0.1),  # GPT-2 small shape
}
