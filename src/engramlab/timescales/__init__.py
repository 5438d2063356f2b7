"""Leaky RNNs with trainable per-neuron timescales on N-parity / N-DMS (Khajehabdollahi, Zeraati et al.,
ICLR 2024): model, curricula (single / multi / sliding) and timescale analyses (``.analysis``)."""

from .curriculum import TrainConfig, load_checkpoint, save_checkpoint, train_curriculum
from .model import GatedRNN, GatedRNNConfig, LeakyRNN, LeakyRNNConfig

__all__ = [
    "GatedRNN",
    "GatedRNNConfig",
    "LeakyRNN",
    "LeakyRNNConfig",
    "TrainConfig",
    "load_checkpoint",
    "save_checkpoint",
    "train_curriculum",
]
