"""One-hot HMM-GLM (Li et al., ICLR 2024) and the models it is compared with.

>>> from engramlab.hmmglm import OneHotHMMGLM, exp_basis
>>> model = OneHotHMMGLM(n_states=5, n_neurons=20, basis=exp_basis(5))   # then model.fit(spikes)
"""

from .basis import exp_basis, raised_cosine_basis
from .models import GLM, HMMGLM, FitConfig, GaussianHMMGLM, HMMGLMConfig, OneHotHMMGLM, load, make_model

__all__ = ["GLM", "HMMGLM", "GaussianHMMGLM", "OneHotHMMGLM", "FitConfig", "HMMGLMConfig", "load",
           "make_model", "exp_basis", "raised_cosine_basis"]
