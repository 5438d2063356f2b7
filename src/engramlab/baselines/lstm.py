"""LSTM language model: the recurrent baseline (embedding -> stacked LSTM -> read-out)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from engramlab.nn.lm import LanguageModel


@dataclass
class LSTMConfig:
    n_layer: int = 2
    n_embd: int = 128  # embedding width
    hidden: int = 512
    vocab_size: int = 256
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("n_layer", "n_embd", "hidden", "vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"LSTMConfig.{name}={getattr(self, name)} must be >= 1")


class LSTMLM(LanguageModel):
    """State: (h, c), each (n_layer, B, hidden). Carries its state across training windows."""

    supports_state_carry = True

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.lstm = nn.LSTM(
            config.n_embd,
            config.hidden,
            num_layers=config.n_layer,
            batch_first=True,
            dropout=config.dropout if config.n_layer > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def forward_with_state(self, idx, targets=None, state=None):
        h, state = self.lstm(self.drop(self.embed(idx)), state)
        logits = self.head(self.drop(h))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss, state

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits, loss, _ = self.forward_with_state(idx, targets, None)
        return logits, loss

    def init_state(self, batch_size: int):
        z = self.head.weight.new_zeros(self.config.n_layer, batch_size, self.config.hidden)
        return (z, z.clone())

    @torch.no_grad()
    def prefill(self, idx):
        logits, _, state = self.forward_with_state(idx, None, None)
        return logits[:, -1], state

    def step(self, idx_t: torch.Tensor, state):
        h, c = state
        if h.shape != (self.config.n_layer, h.shape[1], self.config.hidden) or idx_t.shape != (h.shape[1],):
            raise ValueError(
                f"state of shape {tuple(h.shape)} does not fit this LSTM (n_layer={self.config.n_layer}, "
                f"hidden={self.config.hidden}) and idx_t of shape {tuple(idx_t.shape)}"
            )
        self.check_tokens(idx_t, "idx_t")
        logits, _, state = self.forward_with_state(idx_t[:, None], None, state)
        return logits[:, -1], state


MODEL = LSTMLM
CONFIG = LSTMConfig
PRESETS = {
    "tiny": {
        "model": {"n_layer": 1, "n_embd": 32, "hidden": 128},
        "train": {
            "steps": 300,
            "batch_size": 16,
            "block_size": 64,
            "lr": 3e-3,
            "min_lr": 3e-4,
            "warmup_steps": 30,
            "eval_interval": 100,
        },
    },
    "small": {
        "model": {"n_layer": 2, "n_embd": 64, "hidden": 384, "dropout": 0.1},
        "train": {
            "steps": 2000,
            "batch_size": 16,
            "block_size": 256,
            "lr": 2e-3,
            "min_lr": 2e-4,
            "warmup_steps": 100,
            "eval_interval": 250,
        },
    },
    "paper": {
        "model": {"n_layer": 3, "n_embd": 256, "hidden": 1024, "dropout": 0.1},
        "train": {
            "steps": 50000,
            "batch_size": 32,
            "block_size": 512,
            "lr": 1e-3,
            "min_lr": 1e-4,
            "warmup_steps": 1000,
            "eval_interval": 1000,
        },
    },
}
