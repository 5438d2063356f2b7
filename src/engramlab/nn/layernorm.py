"""Parameter-free LayerNorm: LN(z) = (z - mean(z)) / sqrt(var(z) + eps), no learnable gain or bias.

BDH-GPU normalises every state variable this way (paper §1.3, "LN(z) non-parametric"); the
official code uses ``nn.LayerNorm(D, elementwise_affine=False, bias=False)`` (eps 1e-5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_EPS = 1e-5


def layer_norm(z: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Normalise the last dimension of z to zero mean and unit (biased) variance; no parameters."""
    return F.layer_norm(z, (z.shape[-1],), None, None, eps)


class ParameterFreeLayerNorm(torch.nn.Module):
    """Module form of ``layer_norm`` (holds no parameters and no buffers)."""

    def __init__(self, eps: float = DEFAULT_EPS):
        super().__init__()
        self.eps = float(eps)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return layer_norm(z, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
