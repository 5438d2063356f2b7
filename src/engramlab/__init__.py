"""engramlab: brain-inspired sequence models and neural-state discovery.

>>> import engramlab
>>> model = engramlab.load("models/tiny-gpt")   # any saved model folder (see engramlab.pretrained)

The systems are subpackages: ``engramlab.bdh``, ``engramlab.astro``, ``engramlab.hmmglm``,
``engramlab.timescales``, beside the ``engramlab.baselines`` they are compared with. ``import
engramlab`` itself imports nothing heavy: ``load`` is resolved on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def __getattr__(name: str):
    if name == "load":
        from engramlab.pretrained import load

        return load
    raise AttributeError(f"module 'engramlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
