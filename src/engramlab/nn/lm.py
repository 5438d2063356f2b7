"""The common contract of every engramlab sequence model, and the generation loop built on it.

Every sequence model (GPT, LSTM, BDH, AstroSNN) is a ``LanguageModel``:

- ``config``: a dataclass that round-trips through JSON (``engramlab.train.config``);
- ``save_pretrained(dir)`` / ``Model.from_pretrained(dir)`` (and ``engramlab.load(dir)``): one
  model-folder format for every model (``engramlab.pretrained``);
- ``forward(idx, targets=None) -> (logits, loss)``: parallel form for training,
  idx (B, T) int64 -> logits (B, T, V); loss is the mean cross-entropy in nats when targets
  (B, T) are given, else None;
- ``init_state(batch_size) -> state`` and ``step(idx_t, state) -> (logits_t, state)``:
  the recurrent form, one token per call, idx_t (B,) -> logits_t (B, V);
- ``prefill(idx) -> (last_logits, state)``: read a prompt into the state. The default runs
  ``step`` over the prompt; models with a parallel form override it;
- ``generate(idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None)``.

Models that can carry their state across consecutive training windows (truncated backprop
through time) set ``supports_state_carry = True`` and implement
``forward_with_state(idx, targets, state) -> (logits, loss, new_state)``; the engine detaches
the returned state between windows.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from engramlab.nn.sampling import check_sampling_args, sample_logits
from engramlab.pretrained import Pretrained


class LanguageModel(Pretrained, nn.Module):
    """Base class: subclasses implement forward, init_state and step (see module docstring).

    ``save_pretrained(dir)`` / ``from_pretrained(dir)`` come from ``engramlab.pretrained.Pretrained``;
    the config class is the ``CONFIG`` of the model's module.
    """

    config: Any
    supports_state_carry: bool = False

    @property
    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    _tokens_trusted: bool = False  # True while ``generate`` feeds back its own samples

    def check_tokens(self, idx: torch.Tensor, name: str = "idx", values: bool | None = None) -> None:
        """Clear errors for token tensors a user passes in: a tensor of integer ids, not empty, ids in [0, V).

        The id range needs the values on the host (``check_token_range``). ``values=None`` checks it
        only where that is free: for CPU tensors outside torch.compile / tracing (on a GPU it would
        force a device sync per call, under torch.compile a graph break), and not for the tokens
        ``generate`` feeds back (it checks its prompt once with ``values=True``, on any device).
        """
        if not isinstance(idx, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(idx).__name__}")
        if idx.dtype not in (torch.int64, torch.int32, torch.uint8, torch.int16):
            raise TypeError(f"{name} must hold integer token ids, got dtype {idx.dtype}")
        if idx.numel() == 0:
            raise ValueError(f"{name} is empty: expected at least one token")
        if values is None:
            values = not self._tokens_trusted and idx.device.type == "cpu" and not _tracing()
        if values:
            self.check_token_range(idx, name)

    def check_token_range(self, idx: torch.Tensor, name: str = "idx") -> None:
        """Token ids in [0, vocab_size), else one clear error; reads min and max on the host."""
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.vocab_size:
            bad = hi if hi >= self.vocab_size else lo
            raise ValueError(f"{name} holds token id {bad}, expected ids in [0, {self.vocab_size})")

    def init_state(self, batch_size: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, idx_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def prefill(self, idx: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Read the prompt idx (B, T) into a fresh state; return (logits of the last token, state)."""
        state = self.init_state(idx.size(0))
        logits = None
        for t in range(idx.size(1)):
            logits, state = self.step(idx[:, t], state)
        return logits, state

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """Continue the prompt idx (B, T) by max_new_tokens sampled tokens -> (B, T + max_new_tokens).

        The prompt is read once (``prefill``), then each new token costs one ``step``. The prompt's
        token ids are checked once, here; the sampled tokens fed back are in range by construction.
        """
        self.check_tokens(idx, "prompt", values=True)
        if idx.dim() == 1:
            idx = idx.unsqueeze(0)
        check_sampling_args(temperature, top_k, top_p)
        if int(max_new_tokens) != max_new_tokens or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        idx = idx.to(device=device, dtype=torch.long)
        gen = None
        if seed is not None:
            gen = torch.Generator(device=device)
            gen.manual_seed(int(seed))
        out = [idx]
        self._tokens_trusted = True  # prefill and step skip the id range (no host sync per token)
        try:
            if max_new_tokens > 0:
                logits, state = self.prefill(idx)
                for i in range(max_new_tokens):
                    nxt = sample_logits(logits, temperature, top_k, top_p, generator=gen)
                    out.append(nxt.unsqueeze(1))
                    if i + 1 < max_new_tokens:
                        logits, state = self.step(nxt, state)
        finally:
            self._tokens_trusted = False
            self.train(was_training)
        return torch.cat(out, dim=1)


def _tracing() -> bool:
    """Whether torch.compile / torch.export or TorchScript tracing is running (values are not readable)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()
