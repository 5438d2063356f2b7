"""AstroSNN: spiking language models whose synapses astrocytes modulate (AM-SU), and its memory tasks.

>>> from engramlab.astro import AstroSNN, AstroConfig
>>> model = AstroSNN(AstroConfig())            # model(idx) -> (logits, loss); model.generate(...)
"""

from engramlab.astro.amsu import AMSU, Astrocytes
from engramlab.astro.memory import MemoryConfig, run_memory
from engramlab.astro.model import AstroConfig, AstroSNN
from engramlab.astro.neurons import LIF
from engramlab.astro.surrogate import spike_function

__all__ = ["AMSU", "AstroConfig", "AstroSNN", "Astrocytes", "LIF", "MemoryConfig", "run_memory", "spike_function"]
