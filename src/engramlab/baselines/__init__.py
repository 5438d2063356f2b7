"""The references the papers compare against: a GPT-2-style Transformer and an LSTM language model.

>>> from engramlab.baselines import GPT, GPTConfig
>>> model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64))   # then model.save_pretrained("models/gpt")
"""

from engramlab.baselines.gpt import GPT, GPTConfig
from engramlab.baselines.lstm import LSTMLM, LSTMConfig

__all__ = ["GPT", "GPTConfig", "LSTMLM", "LSTMConfig"]
