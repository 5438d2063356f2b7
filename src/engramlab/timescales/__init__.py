"""Leaky RNNs with trainable per-neuron timescales on N-parity / N-DMS (Khajehabdollahi, Zeraati et al.,
ICLR 2024): model, curricula (single / multi / sliding) and timescale analyses (``.analysis``).

>>> from engramlab.timescales import TrainConfig, train_curriculum
>>> summary = train_curriculum(TrainConfig(max_n=4, n_neurons=40, n_heads=3), "runs/parity")
>>> model = engramlab.load("runs/parity/last")   # every checkpoint folder is a model folder
"""

from .curriculum import (
    TrainConfig,
    build_model,
    evaluate,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    train_curriculum,
)
from .ensemble import LeakyRNNEnsemble, train_ensemble
from .model import GatedRNN, GatedRNNConfig, LeakyRNN, LeakyRNNConfig

__all__ = [
    "GatedRNN",
    "GatedRNNConfig",
    "LeakyRNN",
    "LeakyRNNConfig",
    "LeakyRNNEnsemble",
    "TrainConfig",
    "build_model",
    "evaluate",
    "list_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
    "train_curriculum",
    "train_ensemble",
]
