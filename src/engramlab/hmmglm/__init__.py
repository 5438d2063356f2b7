"""One-hot HMM-GLM (Li et al., ICLR 2024) and the models it is compared with.

>>> from engramlab.hmmglm import OneHotHMMGLM, exp_basis
>>> model = OneHotHMMGLM(n_states=5, n_neurons=20, basis=exp_basis(5))
>>> model.fit(spikes)                      # spikes (trials, T, N) counts; generalised EM
>>> model.score(spikes), model.predict(spikes), model.predict_proba(spikes)
>>> model.save_pretrained("models/ohg")    # later: engramlab.load("models/ohg")
"""

from .basis import exp_basis, raised_cosine_basis
from .inference import hmm_filter, hmm_log_likelihood, hmm_posterior_mode, hmm_smoother
from .metrics import balanced_type_accuracy, match_states, state_accuracy, type_accuracy, weight_error
from .models import GLM, HMMGLM, FitConfig, GaussianHMMGLM, HMMGLMConfig, OneHotHMMGLM, load, make_model
from .simulate import SyntheticData, simulate_demo

__all__ = [
    "GLM",
    "HMMGLM",
    "FitConfig",
    "GaussianHMMGLM",
    "HMMGLMConfig",
    "OneHotHMMGLM",
    "SyntheticData",
    "balanced_type_accuracy",
    "exp_basis",
    "hmm_filter",
    "hmm_log_likelihood",
    "hmm_posterior_mode",
    "hmm_smoother",
    "load",
    "make_model",
    "match_states",
    "raised_cosine_basis",
    "simulate_demo",
    "state_accuracy",
    "type_accuracy",
    "weight_error",
]
