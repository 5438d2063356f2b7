"""Load weights saved from the official BDH code (GitHub ``pathwaycom/bdh``) into ``BDH``.

The official names are swapped relative to the paper's (its "encoder" maps d -> n, which the
paper calls a decoder):

| official code  | shape         | paper | engramlab   |
|----------------|---------------|-------|-------------|
| ``encoder``    | (h, d, N)     | D_x   | ``decoder_x`` |
| ``encoder_v``  | (h, d, N)     | D_y   | ``decoder_y`` |
| ``decoder``    | (h*N, d)      | E     | ``encoder_E`` |
| ``embed.weight`` | (V, d)      | f_e   | ``embed.weight`` |
| ``lm_head``    | (d, V)        | f_d   | ``lm_head`` |
| ``attn.freqs`` | (1, 1, 1, N)  | RoPE  | ``rope_freqs`` (h, N) |

d, h, N and V are read from the shapes; the number of layers is not stored (the weights are
shared by all layers), so it is an argument.
"""

from __future__ import annotations

from typing import Any

import torch

from engramlab.bdh.model import BDH, BDHConfig

_REQUIRED = ("encoder", "encoder_v", "decoder", "embed.weight", "lm_head")


def _strip(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state_dict.items():
        for prefix in ("_orig_mod.", "module."):  # torch.compile / DDP wrappers
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def from_reference(state_dict: dict[str, Any], n_layer: int = 6, **config_overrides: Any) -> BDH:
    """A ``BDH`` holding the official code's weights (a state dict or a path to a torch.save file).

    ``config_overrides`` set the remaining BDHConfig fields (e.g. ``dropout=0.0``); the sizes
    read from the tensors cannot be overridden, and ``pos`` must stay "rope" (the official model).
    """
    if isinstance(state_dict, (str, bytes)) or hasattr(state_dict, "__fspath__"):
        state_dict = torch.load(state_dict, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict):
        raise TypeError(f"from_reference expects a state dict, got {type(state_dict).__name__}")
    sd = _strip(state_dict)
    missing = [k for k in _REQUIRED if k not in sd]
    if missing:
        raise ValueError(
            f"not a state dict of the official BDH: missing {', '.join(missing)} "
            f"(expected tensors {', '.join(_REQUIRED)}; got {', '.join(sorted(sd)) or 'none'})"
        )
    enc, enc_v, dec, emb, head = (sd[k] for k in _REQUIRED)
    if enc.dim() != 3 or enc_v.shape != enc.shape:
        raise ValueError(f"encoder/encoder_v must both be (h, d, N), got {tuple(enc.shape)}, {tuple(enc_v.shape)}")
    H, d, N = enc.shape
    V = emb.shape[0]
    if tuple(dec.shape) != (H * N, d) or tuple(emb.shape) != (V, d) or tuple(head.shape) != (d, V):
        raise ValueError(
            f"inconsistent shapes: decoder {tuple(dec.shape)} (expected {(H * N, d)}), "
            f"embed {tuple(emb.shape)}, lm_head {tuple(head.shape)} (expected {(d, V)})"
        )
    if (H * N) % d:
        raise ValueError(f"n = h*N = {H * N} is not a multiple of d = {d}: no integer mlp_internal_dim_multiplier")
    fixed = dict(n_embd=d, n_head=H, mlp_internal_dim_multiplier=H * N // d, vocab_size=V)
    clash = sorted(set(fixed) & set(config_overrides))
    if clash:
        raise ValueError(f"{', '.join(clash)} are read from the tensor shapes and cannot be overridden")
    if config_overrides.get("pos", "rope") != "rope" or config_overrides.get("variant", "gpu") != "gpu":
        raise ValueError("the official model is BDH-GPU with RoPE: pos must be 'rope' and variant 'gpu'")
    cfg = BDHConfig(n_layer=n_layer, **fixed, **config_overrides)
    model = BDH(cfg).to(enc.dtype)  # keep the weights' precision
    new = {
        "decoder_x": enc,
        "decoder_y": enc_v,
        "encoder_E": dec,
        "embed.weight": emb,
        "lm_head": head,
        "rope_freqs": model.rope_freqs,
    }
    if "attn.freqs" in sd:
        f = sd["attn.freqs"].reshape(-1)
        if f.numel() != N:
            raise ValueError(f"attn.freqs has {f.numel()} entries, expected N = {N}")
        new["rope_freqs"] = f.to(model.rope_freqs.dtype).expand(H, N).contiguous()
    model.load_state_dict({k: v.detach().clone() for k, v in new.items()}, strict=True)
    return model
