"""The four models the paper compares: GLM, HMM-GLM, Gaussian HMM-GLM and one-hot HMM-GLM.

All share the GLM emission (glm.py) and the HMM (inference.py); they differ only in how the state
weight matrices W^(s) (S, N_post, N_pre) are parametrised and which log-prior enters the M-step:

* GLM            S = 1, one free W.
* HMMGLM         free W^(s) per state, no prior (maximum likelihood; the paper's "HG").
* GaussianHMMGLM W^(s)_{n<-n'} ~ N(mu_{n<-n'}, sigma^2), shared mean mu (closed-form update, the mean
                 of W over states) and variance sigma^2 ("GHG", notes Sec. 1.4).
* OneHotHMMGLM   W^(s) = (a^exc - a^inh) * softplus(w~), a a relaxed one-hot type in
                 {inhibitory, none, excitatory} drawn by Gumbel-softmax in training and hard at test,
                 with a Concrete prior a^(s) ~ GumbelSoftmax(a_0, tau) whose shared a_0 is learned
                 ("OHG", notes Sec. 1.5).

Fitting is generalised EM (notes Sec. 2.1): E-step = forward-backward on the per-state emission
log-likelihoods, closed-form transition update, M-step = Adam on the expected complete-data
log-likelihood Q plus the log-prior. Long recordings are processed in windows of ``window`` bins:
the emission tensor (bins, S, N) only ever exists one window batch at a time; the HMM itself runs
over the whole sequence.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from engramlab.pretrained import Pretrained, load_model
from engramlab.train.config import config_from_json, config_to_dict, config_to_json

from . import glm, validation
from .basis import convolve_history, exp_basis
from .inference import PosteriorResult, hmm_log_likelihood, hmm_posterior_mode, hmm_smoother

MODELS = ("glm", "hmmglm", "gaussian", "onehot")


@dataclass
class HMMGLMConfig:
    """Everything needed to rebuild a model (round-trips through JSON)."""

    model: str
    n_states: int
    n_neurons: int
    basis: list[float] = field(default_factory=lambda: exp_basis(5).tolist())
    link: str = "sigmoid"
    observations: str = "poisson"
    sticky: float = 0.98  # initial (and generator) self-transition probability
    init_std: float = 0.1  # std of the random initial weights that break the state symmetry
    prior_bins: float | None = None  # log-prior weighted once per this many bins; None = all bins (MAP)
    # Gaussian prior (GaussianHMMGLM)
    prior_std: float = 1.0 / 3.0
    learn_prior_std: bool = False
    min_prior_std: float = 0.05
    # one-hot prior (OneHotHMMGLM)
    tau: float = 0.2  # temperature of the Concrete prior density
    sample_tau: float = 0.2  # temperature of the Gumbel-softmax sample used in the M-step (final)
    sample_tau_start: float = 1.0  # first-epoch temperature, annealed geometrically to sample_tau
    none_logit: float = 1.0  # initial type logit of "no connection" (inh and exc start at 0)
    init_strength: float = math.log(2.0)  # initial softplus strength (reference: softplus(0) = log 2)
    strength_prior_std: float | None = None  # Gaussian prior N(mu_w, sd^2) on strengths (paper schematic)
    type_threshold: float = 0.2  # |w| threshold that defines types for the models without types

    def to_json(self) -> str:
        return config_to_json(self)

    @classmethod
    def from_json(cls, text: str) -> HMMGLMConfig:
        return config_from_json(cls, text)


@dataclass
class FitConfig:
    """Schedule of generalised EM. One epoch = one E-step followed by ``m_steps`` Adam steps.

    The models without a schedule (GLM, HMM-GLM, Gaussian HMM-GLM) run until the training log-likelihood
    changes by at most ``rtol`` (relative) from one epoch to the next, for at most ``n_epochs`` epochs
    (``None``: at most ``max_epochs``); after an epoch that lowered the log-likelihood, Adam's step
    size is multiplied by ``lr_decay``, so the generalised EM settles instead of oscillating. The
    one-hot model anneals its Gumbel-softmax temperature over exactly ``n_epochs`` epochs (``None``: 10)
    and does not stop early.

    Starting point (``init``): ``"data"`` is the data-driven start (:meth:`_HMMGLMBase.init_from_data`: a
    pooled GLM fit, then k-means of windowed GLM score vectors gives first state responsibilities; the
    one-hot model warm-starts from a plain HMM-GLM fitted that way); ``"random"`` is ``init_params(seed)``;
    ``"keep"`` continues from the current parameters; ``"auto"`` (default) is ``"data"`` for a model that
    was never fitted and ``"keep"`` afterwards. The seed changes the k-means start and the noise.
    With ``init="data"`` the plain and Gaussian models screen ``n_starts`` data-driven starts (one pooled GLM,
    then k-means and weight noise drawn from ``n_starts`` different seeds derived from ``seed``): each runs
    ``screen_epochs`` epochs, the one with the highest training log-likelihood is continued to convergence
    (``screens_`` lists them; ``n_epochs`` / ``max_epochs`` count the kept screen's epochs too). The one-hot
    model's warm start is such a plain fit.
    ``n_restarts > 1`` fits from that many seeds (``seed``, ``seed + 1``, ...; each start as ``init``, with
    "keep"/"auto" meaning "data") and keeps the one with the highest final training log-likelihood.

    ``optimizer="reference"`` trains as the public code does (notes Sec. 2.1): zero initial weights
    (the Gaussian model: weights drawn from its prior N(0, prior_std^2)), one E-step per training
    sequence followed by ``reference_steps`` Adam steps at ``reference_lr`` on that sequence alone,
    ``reference_epochs`` passes over the sequences, no convergence test; ``init`` and ``n_restarts`` apply.
    """

    n_epochs: int | None = None
    m_steps: int = 10
    lr: float = 0.1
    window: int = 2000  # bins per M-step window (memory: batch_windows * window * S * N floats)
    batch_windows: int | None = None  # windows per Adam step; None = all windows (full batch)
    min_log_transition: float = -8.0  # clamp of log A in the closed-form update (reference code)
    e_step: str = "auto"  # "numba", "sequential", "scan" or "auto" (numba on CPU, scan on GPU)
    rtol: float | None = 1e-6  # stop when |LL_k - LL_(k-1)| <= rtol |LL_k| (not one-hot); None: never early
    tol: float | None = None  # also stop when an epoch gains < tol nats per bin per neuron (not one-hot)
    max_epochs: int = 500  # safety cap on the epochs when n_epochs is None
    lr_decay: float = 0.5  # Adam step size factor after an epoch that lowered the log-likelihood (1: off)
    n_restarts: int = 1  # fits from seeds seed, seed+1, ...; the best on training log-likelihood is kept
    init: Literal["auto", "data", "keep", "random"] = "auto"  # see the class docstring
    seed: int = 0
    data_window: int = 50  # bins per window of the data-driven start's k-means (about one dwell time at sticky 0.98)
    data_kmeans_starts: int = 10  # k-means++ starts (the best inertia is kept)
    onehot_warm_tau: float = 0.5  # first Gumbel-softmax temperature of a one-hot fit warm-started from data
    n_starts: int = 3  # data-driven starts screened per fit (plain and Gaussian models; see the class docstring)
    screen_epochs: int = 5  # epochs each screened start runs before the best one is continued
    optimizer: Literal["adam", "reference"] = "adam"
    reference_epochs: int = 10
    reference_steps: int = 50
    reference_lr: float = 0.01


def _check_fit_config(cfg: FitConfig) -> None:
    """One clear error per bad schedule value, before any work."""
    if cfg.n_epochs is not None and (
        isinstance(cfg.n_epochs, bool) or int(cfg.n_epochs) != cfg.n_epochs or cfg.n_epochs < 1
    ):
        raise ValueError(f"n_epochs must be an integer >= 1 or None (until convergence), got {cfg.n_epochs!r}")
    if cfg.max_epochs < 1 or cfg.m_steps < 0 or cfg.window < 1:
        raise ValueError(
            f"need max_epochs >= 1, m_steps >= 0, window >= 1; got max_epochs={cfg.max_epochs}, "
            f"m_steps={cfg.m_steps}, window={cfg.window}"
        )
    if cfg.rtol is not None and cfg.rtol < 0:
        raise ValueError(f"rtol must be >= 0 or None, got {cfg.rtol}")
    if not 0 < cfg.lr_decay <= 1:
        raise ValueError(f"lr_decay must lie in (0, 1], got {cfg.lr_decay}")
    if isinstance(cfg.n_restarts, bool) or int(cfg.n_restarts) != cfg.n_restarts or cfg.n_restarts < 1:
        raise ValueError(f"n_restarts must be an integer >= 1, got {cfg.n_restarts!r}")
    if cfg.init not in ("auto", "data", "keep", "random"):
        raise ValueError(f"init must be 'auto', 'data', 'keep' or 'random', got {cfg.init!r}")
    if cfg.optimizer not in ("adam", "reference"):
        raise ValueError(f"optimizer must be 'adam' or 'reference', got {cfg.optimizer!r}")
    for name in ("n_starts", "screen_epochs"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if cfg.data_window < 1 or cfg.data_kmeans_starts < 1:
        raise ValueError(
            f"need data_window >= 1 and data_kmeans_starts >= 1, got {cfg.data_window}, {cfg.data_kmeans_starts}"
        )


def _follow(helper: nn.Module, model: nn.Module) -> nn.Module:
    """Put a helper model on ``model``'s device with its parameters in ``model``'s dtype (float64 buffers stay)."""
    helper = helper.to(model.bias.device)
    for p in helper.parameters():
        p.data = p.data.to(model.bias.dtype)
    return helper


def _kmeans(f: torch.Tensor, k: int, g: torch.Generator, n_starts: int = 10, iters: int = 50) -> torch.Tensor:
    """Lloyd's k-means with k-means++ starts drawn from ``g``; the labels of the lowest-inertia start."""
    n = f.shape[0]
    if k == 1 or n <= k:
        return torch.arange(n) % k
    best = (math.inf, None)
    for _ in range(n_starts):
        idx = [int(torch.randint(n, (1,), generator=g))]
        d2 = ((f - f[idx[0]]) ** 2).sum(1)
        for _ in range(1, k):
            p = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / n)
            idx.append(int(torch.multinomial(p.float(), 1, generator=g)))
            d2 = torch.minimum(d2, ((f - f[idx[-1]]) ** 2).sum(1))
        c = f[idx].clone()
        for _ in range(iters):
            lab = torch.cdist(f, c).argmin(1)
            new = torch.stack([f[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(k)])
            if torch.allclose(new, c):
                break
            c = new
        lab = torch.cdist(f, c).argmin(1)
        inertia = float(((f - c[lab]) ** 2).sum())
        if inertia < best[0]:
            best = (inertia, lab)
    return best[1].cpu()


class _HMMGLMBase(Pretrained, nn.Module):
    """Shared parts of the four models. Saved with ``save_pretrained(dir)`` as models "glm", "hmmglm",
    "gaussian_hmmglm" and "onehot_hmmglm"; loaded with ``Class.from_pretrained(dir)``, ``load(dir)`` or
    ``engramlab.load(dir)``. scikit-learn / hmmlearn names: ``fit``, ``score`` (log-likelihood),
    ``predict`` (Viterbi states), ``predict_proba`` (posteriors), ``sample`` / ``simulate``."""

    kind = "base"
    config_class = HMMGLMConfig

    def __init__(
        self, n_states: int, n_neurons: int, basis=None, link: str = "sigmoid", observations: str = "poisson", **kwargs
    ) -> None:
        super().__init__()
        n_states = validation.check_n_states(n_states)
        n_neurons = validation.check_n_neurons(n_neurons)
        validation.check_link_observations(link, observations)
        b = validation.check_basis(exp_basis(5) if basis is None else basis)
        self.config = HMMGLMConfig(
            model=self.kind,
            n_states=n_states,
            n_neurons=n_neurons,
            basis=b.tolist(),
            link=link,
            observations=observations,
            **kwargs,
        )
        S, N = n_states, n_neurons
        self.register_buffer("basis", b)  # float64: small, and exact for the float64 checks
        self.bias = nn.Parameter(torch.zeros(N))  # b_n, shared by the states (paper-era code)
        A = torch.full((S, S), (1 - self.config.sticky) / max(S - 1, 1), dtype=torch.float64)
        A.fill_diagonal_(self.config.sticky if S > 1 else 1.0)
        self.register_buffer("log_transition", A.log())  # log A_ij = log p(z_{t+1}=j | z_t=i)
        # fixed uniform pi_0
        self.register_buffer("log_init", torch.full((S,), -math.log(S), dtype=torch.float64))
        self.history_: list[float] = []

    # ---- parametrisation (subclasses) -------------------------------------------------------
    @property
    def n_states(self) -> int:
        return self.config.n_states

    @property
    def n_neurons(self) -> int:
        return self.config.n_neurons

    def weight_tensor(self, mode: str = "hard") -> torch.Tensor:
        """W (S, N_post, N_pre); mode "sample" (training draw), "soft" or "hard" (one-hot model only)."""
        raise NotImplementedError

    def log_prior(self) -> torch.Tensor:
        return self.bias.new_zeros(())

    def _before_step(self) -> None:  # closed-form prior updates (Gaussian)
        pass

    def _after_step(self) -> None:  # numerical guards (one-hot)
        pass

    def _after_e_step(self) -> None:
        pass

    def _set_epoch(self, epoch: int, n_epochs: int) -> None:  # schedules (one-hot temperature)
        pass

    # ---- public read-outs ---------------------------------------------------------------------
    @property
    def weights(self) -> torch.Tensor:
        """Learned effective weights (S, N_post, N_pre), hard types for the one-hot model."""
        with torch.no_grad():
            return self.weight_tensor("hard").detach().clone()

    @property
    def transition_matrix(self) -> torch.Tensor:
        return self.log_transition.exp()

    def connection_types(self, threshold: float | None = None) -> torch.Tensor:
        """Per-state connection types in {-1, 0, 1} (S, N_post, N_pre): sign(w) where |w| > threshold."""
        thr = self.config.type_threshold if threshold is None else threshold
        w = self.weights
        return (torch.sign(w) * (w.abs() > thr)).long()

    def prior_connection_types(self, threshold: float | None = None) -> torch.Tensor | None:
        """State-constant ("anatomical") types (N, N), for the models with a shared prior."""
        return None

    # ---- data handling ---------------------------------------------------------------------------
    def _prepare(self, spikes):
        x, mask = validation.check_spikes(
            spikes, self.n_neurons, self.config.observations, window=self.basis.numel(), dtype=self.bias.dtype
        )
        dev = self.bias.device
        x, mask = x.to(dev), mask.to(dev)
        conv = convolve_history(x, self.basis.to(device=dev, dtype=x.dtype))  # (B, T, N); trailing padding: exact
        return x, conv, mask

    def _emission_ll(self, x, conv, mode: str, constant: bool = True, max_elems: int = 2**23):
        """log p(x_t | z_t = s) (B, T, S) under no_grad, computed in time chunks of bounded memory."""
        B, T, N = x.shape
        S = self.n_states
        with torch.no_grad():
            W = self.weight_tensor(mode)
            bias = self.bias.expand(S, N)
            chunk = max(1, max_elems // max(1, B * S * N))
            out = []
            for t0 in range(0, T, chunk):
                out.append(
                    glm.state_log_likelihood_fast(
                        x[:, t0 : t0 + chunk],
                        conv[:, t0 : t0 + chunk],
                        W,
                        bias,
                        self.config.link,
                        self.config.observations,
                        constant,
                    )
                )
            return torch.cat(out, dim=1)

    def _smoother(self, ll, mask, method: str = "auto") -> PosteriorResult:
        """Forward-backward over the real bins of each trial (float64; padded bins are never read)."""
        return hmm_smoother(ll.double(), self.log_init.double(), self.log_transition.double(), method=method, mask=mask)

    # ---- inference API -----------------------------------------------------------------------------
    def log_likelihood(self, spikes, per_trial: bool = False):
        """Marginal log p(X) = sum over trials of log sum_z p(X, z) (forward algorithm), in nats.

        Returns a float (sum over trials) or a (trials,) tensor with ``per_trial=True``.
        """
        x, conv, mask = self._prepare(spikes)
        ll = self._emission_ll(x, conv, "hard").double()
        log_z = hmm_log_likelihood(ll, self.log_init.double(), self.log_transition.double(), mask=mask)
        return log_z if per_trial else float(log_z.sum())

    def posterior(self, spikes) -> torch.Tensor:
        """p(z_t = s | X) (trials, T, S); bins past the end of a shorter trial are 0."""
        x, conv, mask = self._prepare(spikes)
        post = self._smoother(self._emission_ll(x, conv, "hard"), mask)
        return post.smoothed_probs.float() * mask.unsqueeze(-1)

    def most_likely_states(self, spikes) -> torch.Tensor:
        """Viterbi path (trials, T) (long); bins past the end of a shorter trial are -1."""
        x, conv, mask = self._prepare(spikes)
        ll = self._emission_ll(x, conv, "hard").double()
        return hmm_posterior_mode(ll, self.log_init.double(), self.log_transition.double(), mask=mask).states

    def score(self, spikes) -> float:
        """log p(X) in nats, summed over trials (hmmlearn's ``score``; same as ``log_likelihood``)."""
        return self.log_likelihood(spikes)

    def predict(self, spikes) -> torch.Tensor:
        """Most likely state path (trials, T) (hmmlearn's ``predict``; same as ``most_likely_states``)."""
        return self.most_likely_states(spikes)

    def predict_proba(self, spikes) -> torch.Tensor:
        """Posterior state probabilities (trials, T, S) (hmmlearn's ``predict_proba``; same as ``posterior``)."""
        return self.posterior(spikes)

    def simulate(self, T: int, n_trials: int = 1, seed: int | None = None):
        """(spikes, states) drawn from the model (nemos's ``simulate``; same as ``sample``)."""
        return self.sample(T, n_trials=n_trials, seed=seed)

    @torch.no_grad()
    def sample(self, T: int, n_trials: int = 1, seed: int | None = None):
        """Draw (spikes (n_trials, T, N), states (n_trials, T)) from the model (hard types)."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        S, N, K = self.n_states, self.n_neurons, self.basis.numel()
        W = self.weight_tensor("hard").float().cpu()  # sampling runs on the host (a loop over bins)
        bias = self.bias.float().cpu()
        A = self.transition_matrix.float().cpu()
        states = torch.empty(n_trials, T, dtype=torch.long)
        pi0 = self.log_init.exp().float().cpu().expand(n_trials, S)
        states[:, 0] = torch.multinomial(pi0, 1, generator=g)[:, 0]
        for t in range(1, T):
            states[:, t] = torch.multinomial(A[states[:, t - 1]], 1, generator=g)[:, 0]
        spikes = torch.zeros(n_trials, T + K, N)
        phi = self.basis.float().cpu().flip(0)  # oldest bin first
        for t in range(T):
            c = torch.einsum("k,bkn->bn", phi, spikes[:, t : t + K])
            u = bias + torch.einsum("bij,bj->bi", W[states[:, t]], c)
            f = glm.rate(u, self.config.link)
            spikes[:, t + K] = glm.sample_counts(f, self.config.observations, g)
        return spikes[:, K:], states

    # ---- learning -----------------------------------------------------------------------------------
    def init_bias(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        """b_n = link^{-1}(mean count of neuron n), the rate of a history-free model."""
        m = (x * mask.unsqueeze(-1)).sum((0, 1)) / mask.sum()
        link = self.config.link
        if link == "sigmoid":
            m = m.clamp(1e-4, 1 - 1e-4)
            b = torch.log(m) - torch.log1p(-m)
        elif link == "softplus":
            m = m.clamp(min=1e-4)
            b = torch.where(m > 20, m, torch.log(torch.expm1(m)))
        else:
            b = torch.log(m.clamp(min=1e-4))
        with torch.no_grad():
            self.bias.copy_(b.to(self.bias.dtype))

    def init_params(self, seed: int = 0) -> _HMMGLMBase:
        """Seed-dependent starting point: the sticky transition matrix of the config, zero bias and freshly
        drawn state parameters (``init_std`` noise that breaks the symmetry between states).
        ``init_params(0)`` gives the parameters of a newly built model. Returns self."""
        S = self.n_states
        A = torch.full((S, S), (1 - self.config.sticky) / max(S - 1, 1), dtype=torch.float64)
        A.fill_diagonal_(self.config.sticky if S > 1 else 1.0)
        with torch.no_grad():
            self.log_transition.copy_(A.log().to(self.log_transition))
            self.bias.zero_()  # fit() then sets it from the data's mean rates (init_bias=True)
            self._init_state_params(torch.Generator().manual_seed(int(seed)))
        return self

    def _init_state_params(self, g: torch.Generator) -> None:
        raise NotImplementedError

    def fit(
        self,
        spikes,
        n_epochs: int | None = None,
        m_steps: int | None = None,
        lr: float | None = None,
        progress: bool = True,
        config: FitConfig | None = None,
        init_bias: bool = True,
        **kwargs,
    ):
        """Generalised EM (notes Sec. 2.1). Returns self; per-epoch train log-likelihood in ``history_``.

        Each epoch: E-step (forward-backward on the current parameters, log space, float64), closed-form
        transition update A_ij ∝ sum_t xi_t(i, j) (log clamped at ``min_log_transition`` and renormalised,
        as the reference code does), then ``m_steps`` Adam steps on the per-bin objective

            J = (1/n) sum_{t,s} gamma_t(s) log p(x_t | z_t = s) + log p(params) / prior_bins

        n = number of bins in the step's batch. The default ``prior_bins`` (None) is the total number of
        bins: the plain MAP estimate. ``prior_bins=2000`` reproduces the reference code's weighting (there
        each 2000-bin sequence's update carries the full log-prior, i.e. a prior 30x stronger on the
        synthetic protocol). When to stop and restarts: see :class:`FitConfig`. With restarts,
        ``restarts_`` lists each one's seed, epochs and final training log-likelihood per bin.
        """
        cfg = config or FitConfig()
        for k, v in (("n_epochs", n_epochs), ("m_steps", m_steps), ("lr", lr)):
            if v is not None:
                kwargs[k] = v
        unknown = set(kwargs) - set(FitConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(
                f"fit() got unknown options {sorted(unknown)}; valid: {sorted(FitConfig.__dataclass_fields__)}"
            )
        cfg = FitConfig(**{**asdict(cfg), **kwargs})
        _check_fit_config(cfg)
        x, conv, mask = self._prepare(spikes)  # all input checks happen here, before any work
        init = cfg.init
        if init == "auto":
            init = "keep" if getattr(self, "fitted_", False) else "data"
        if cfg.n_restarts == 1:
            self._start_and_em(x, conv, mask, cfg, init, cfg.seed, progress, init_bias)
            self.fitted_ = True
            return self
        runs, best = [], None
        for r in range(cfg.n_restarts):
            seed = cfg.seed + r
            before = len(self.history_)
            mode = "random" if init == "random" else "data"
            run_cfg = FitConfig(**{**asdict(cfg), "seed": seed})
            self._start_and_em(x, conv, mask, run_cfg, mode, seed, progress, init_bias)
            with torch.no_grad():
                ll = self._emission_ll(x, conv, "hard").double()
                final = float(
                    hmm_log_likelihood(ll, self.log_init.double(), self.log_transition.double(), mask=mask).sum()
                ) / float(mask.sum())
            runs.append({"seed": seed, "epochs": len(self.history_) - before, "train_ll_per_bin": final})
            if best is None or final > best[0]:
                best = (final, copy.deepcopy(self.state_dict()), self.history_[before:], r)
            del self.history_[before:]
        self.load_state_dict(best[1])
        self.history_.extend(best[2])
        self.restarts_ = [{**run, "kept": i == best[3]} for i, run in enumerate(runs)]
        self.fitted_ = True
        return self

    def _start_and_em(self, x, conv, mask, cfg: FitConfig, init: str, seed: int, progress: bool, init_bias: bool):
        """Set the starting point (``init``: "data", "random" or "keep"), then run the optimiser."""
        gamma0 = None
        if init != "keep":
            self._tau_start = None
        if cfg.optimizer == "reference":
            if init != "keep":
                self.init_params(seed)
                self._reference_start(torch.Generator().manual_seed(int(seed)))
            if init_bias:
                self.init_bias(x, mask)
            self._reference_fit(x, conv, mask, cfg, progress)
            return
        if init == "random":
            self.init_params(seed)
        elif init == "data":
            if self._screened and self.n_states > 1 and cfg.n_starts > 1:
                self._screen_starts(x, conv, mask, cfg, seed, progress)
                return
            self.init_params(seed)
            gamma0 = self.init_from_data(x, conv, mask, cfg, seed)
            init_bias = False  # set from the pooled GLM fit
        self._em(x, conv, mask, cfg, progress, init_bias, gamma0)

    _screened = True  # the one-hot model overrides: its data-driven start is a (screened) plain fit

    @staticmethod
    def _start_seed(seed: int, r: int) -> int:
        """Seed of screened start ``r`` of a fit with ``seed`` (start 0 is ``seed`` itself; distinct per seed)."""
        return int(seed) + 100_003 * r

    def _screen_starts(self, x, conv, mask, cfg: FitConfig, seed: int, progress: bool) -> None:
        """``cfg.n_starts`` data-driven starts (one pooled GLM; k-means and noise per start seed), each run for
        ``cfg.screen_epochs`` epochs; the best on training log-likelihood is continued with ``cfg``."""
        g0 = self._pooled_glm(x, conv, mask, cfg)
        before = len(self.history_)
        best, screens = None, []
        for r in range(cfg.n_starts):
            s_r = self._start_seed(seed, r)
            self.init_params(s_r)
            with torch.no_grad():
                self.bias.copy_(g0.bias.detach())
                self._set_from_weights(g0.weight.detach().expand(self.n_states, -1, -1), s_r)
            gamma0 = self.window_clusters(x, conv, mask, g0, cfg, s_r)
            n = min(cfg.screen_epochs, cfg.max_epochs if cfg.n_epochs is None else cfg.n_epochs)
            run = FitConfig(**{**asdict(cfg), "n_epochs": n, "seed": s_r})
            self._em(x, conv, mask, run, False, False, gamma0)
            ll = self.history_[-1]
            screens.append({"seed": s_r, "epochs": self.n_epochs_, "train_ll_per_bin": ll})
            if best is None or ll > best[0]:
                best = (ll, copy.deepcopy(self.state_dict()), self.history_[before:], r)
            del self.history_[before:]
        self.load_state_dict(best[1])
        self.history_.extend(best[2])
        self.screens_ = [{**x_, "kept": i == best[3]} for i, x_ in enumerate(screens)]
        done = len(best[2])
        # the caps count the kept screen's epochs: n_epochs / max_epochs bound the whole fit
        rest = {"n_epochs": cfg.n_epochs - done} if cfg.n_epochs is not None else {"max_epochs": cfg.max_epochs - done}
        if min(rest.values()) < 1:
            self.n_epochs_ = done
            return
        cont = FitConfig(**{**asdict(cfg), **rest, "seed": self._start_seed(seed, best[3])})
        self._em(x, conv, mask, cont, progress, False, None)
        self.n_epochs_ += done

    # ---- data-driven start ------------------------------------------------------------------------------
    def _pooled_glm(self, x, conv, mask, cfg: FitConfig):
        """A one-state GLM of this model's link/basis fitted to convergence (capped) on the data."""
        c = self.config
        g = make_model("glm", 1, self.n_neurons, basis=c.basis, link=c.link, observations=c.observations)
        g = _follow(g, self)
        g._em(
            x,
            conv,
            mask,
            FitConfig(max_epochs=60, rtol=1e-5, m_steps=cfg.m_steps, lr=cfg.lr, window=cfg.window, seed=cfg.seed),
            False,
            True,
            None,
        )
        return g

    def window_clusters(self, x, conv, mask, glm_model, cfg: FitConfig, seed: int) -> torch.Tensor:
        """k-means (k-means++ starts drawn with ``seed``) of windowed GLM score vectors -> state responsibilities.

        For each window of ``cfg.data_window`` bins of a trial the score of the pooled GLM,
        sum_t dlog p(x_t)/du_t c_t^T (N x N, the direction in which that window would move the weights),
        is randomly projected to 64 dimensions; windows are clustered into S groups and every bin gets
        its window's group with probability 0.9. Returns gamma0 (B, T, S).
        """
        B, T, N = x.shape
        S = self.n_states
        L = max(1, min(cfg.data_window, T))
        g = torch.Generator().manual_seed(int(seed) + 7919)
        with torch.no_grad():
            W = glm_model.weight.detach()
            u = glm.drive(conv, W, glm_model.bias.detach().expand(1, N))[:, :, 0]  # (B, T, N)
            G = glm.dll_du(x, u, self.config.link, self.config.observations) * mask.unsqueeze(-1)
            pad = (-T) % L
            Gw = F.pad(G, (0, 0, 0, pad)).reshape(B, -1, L, N)
            Cw = F.pad(conv, (0, 0, 0, pad)).reshape(B, -1, L, N)
            Mw = F.pad(mask, (0, pad)).reshape(B, -1, L).sum(-1)  # real bins per window
            P = torch.randn(N * N + N, 64, generator=g).to(x) / 8.0
            feats = []
            for b in range(B):
                score = torch.einsum("wli,wlj->wij", Gw[b], Cw[b]).reshape(-1, N * N)  # (windows, N*N)
                f = torch.cat([score, Gw[b].sum(1)], 1) / Mw[b].clamp(min=1).unsqueeze(1)
                feats.append(f @ P)
            feats = torch.cat(feats).double().cpu()  # k-means on the host (small), whatever the device
            valid = Mw.reshape(-1) > 0
            labels = torch.zeros(feats.shape[0], dtype=torch.long)
            labels[valid] = _kmeans(feats[valid], S, g, cfg.data_kmeans_starts)
            lab = labels.reshape(B, -1).repeat_interleave(L, dim=1)[:, :T]
            gamma0 = torch.full((B, T, S), 0.1 / max(S - 1, 1), dtype=x.dtype, device=x.device)
            gamma0.scatter_(2, lab.unsqueeze(-1).to(x.device), 0.9 if S > 1 else 1.0)
        return gamma0

    def init_from_data(self, x, conv, mask, cfg: FitConfig, seed: int):
        """Data-driven start: bias and every state's weights from a pooled GLM fit (plus ``init_std`` noise
        drawn with ``seed``), first responsibilities from :meth:`window_clusters`. Returns gamma0 or None
        (the first E-step then runs on the parameters set here)."""
        g0 = self._pooled_glm(x, conv, mask, cfg)
        with torch.no_grad():
            self.bias.copy_(g0.bias.detach())
            self._set_from_weights(g0.weight.detach().expand(self.n_states, -1, -1), seed)
        return self.window_clusters(x, conv, mask, g0, cfg, seed) if self.n_states > 1 else None

    def _set_from_weights(self, W: torch.Tensor, seed: int) -> None:
        raise NotImplementedError

    # ---- the public code's training (optimizer="reference") --------------------------------------------
    def _reference_start(self, g: torch.Generator) -> None:
        """Zero weights (the public code's start; subclasses may differ)."""
        raise NotImplementedError

    def _reference_fit(self, x, conv, mask, cfg: FitConfig, progress: bool) -> None:
        """Per sequence: one E-step, then ``reference_steps`` Adam steps (lr ``reference_lr``) on that sequence;
        ``reference_epochs`` passes; the transition matrix is updated in closed form from each sequence's
        E-step (as the public code's m_step does); the one-hot temperature is fixed at ``sample_tau``."""
        torch.manual_seed(cfg.seed)
        S = self.n_states
        opt = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=cfg.reference_lr)
        link, obs = self.config.link, self.config.observations
        log_fact = float(torch.lgamma(x + 1).sum()) if obs == "poisson" else 0.0
        n_bins = float(mask.sum())
        self._tau_now = self.config.sample_tau
        start = len(self.history_)
        for _epoch in tqdm(range(cfg.reference_epochs), desc=f"fit {self.kind} (reference)", disable=not progress):
            total = 0.0
            for b in range(x.shape[0]):
                xb, cb, mb = x[b : b + 1], conv[b : b + 1], mask[b : b + 1]
                post = self._smoother(self._emission_ll(xb, cb, "soft", constant=False), mb, cfg.e_step)
                total += float(post.log_normalizer.sum())
                if S > 1:
                    counts = post.trans_counts.sum(0)
                    logA = torch.log(counts / counts.sum(1, keepdim=True).clamp(min=1e-300)).clamp(
                        min=cfg.min_log_transition
                    )
                    self.log_transition.copy_(torch.log_softmax(logA, dim=1).to(self.log_transition.dtype))
                gb = post.smoothed_probs.to(x.dtype) * mb.unsqueeze(-1)
                nb = mb.sum()
                for _ in range(cfg.reference_steps):
                    self._before_step()
                    q = glm.expected_log_likelihood(
                        self.weight_tensor("sample"), self.bias, xb, cb, gb, link, obs, value=False
                    )
                    loss = -q / nb - self.log_prior() / nb  # the full log-prior with every sequence's update
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    self._after_step()
            self.history_.append((total - log_fact) / n_bins)
        self.n_epochs_ = len(self.history_) - start
        self._after_e_step()

    def _em(self, x, conv, mask, cfg: FitConfig, progress: bool, init_bias: bool, gamma0=None) -> None:
        """One generalised-EM run from the current parameters (the body of :meth:`fit`)."""
        torch.manual_seed(cfg.seed)
        if init_bias:
            self.init_bias(x, mask)
        S = self.n_states
        # windows for the M-step: (M, W, .) views of the padded batch (history already convolved)
        W = min(cfg.window, x.shape[1])
        pad = (-x.shape[1]) % W
        xw = F.pad(x, (0, 0, 0, pad)).reshape(-1, W, self.n_neurons)
        cw = F.pad(conv, (0, 0, 0, pad)).reshape(-1, W, self.n_neurons)
        mw = F.pad(mask, (0, pad)).reshape(-1, W)
        keep = mw.any(1)
        xw, cw, mw = xw[keep], cw[keep], mw[keep]
        n_windows = xw.shape[0]
        bw = n_windows if cfg.batch_windows is None else min(cfg.batch_windows, n_windows)
        n_bins = mask.sum().item()
        prior_bins = float(self.config.prior_bins or n_bins)
        log_fact = float(torch.lgamma(x + 1).sum()) if self.config.observations == "poisson" else 0.0
        opt = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=cfg.lr)
        link, obs = self.config.link, self.config.observations
        if self._scheduled:
            n_epochs = 10 if cfg.n_epochs is None else cfg.n_epochs
        else:
            n_epochs = cfg.max_epochs if cfg.n_epochs is None else cfg.n_epochs
        bar = tqdm(range(n_epochs), desc=f"fit {self.kind} S={S}", disable=not progress)
        start = len(self.history_)
        for epoch in bar:
            self._set_epoch(epoch, n_epochs)
            # ---- E-step (the state-independent -log x! is added to the reported log-likelihood only)
            post = self._smoother(self._emission_ll(x, conv, "soft", constant=False), mask, cfg.e_step)
            self.history_.append((float(post.log_normalizer.sum()) - log_fact) / n_bins)
            bar.set_postfix(ll_per_bin=f"{self.history_[-1]:.4f}")
            first_data = epoch == 0 and gamma0 is not None
            if epoch > 0 and not self._scheduled:
                new, old = self.history_[-1], self.history_[-2]
                if (cfg.rtol is not None and abs(new - old) <= cfg.rtol * abs(new)) or (
                    cfg.tol is not None and new - old < cfg.tol * self.n_neurons
                ):
                    break  # converged: the E-step above already matches the current parameters
                if new < old and cfg.lr_decay != 1.0:
                    for group in opt.param_groups:
                        group["lr"] *= cfg.lr_decay
            if S > 1 and not first_data:
                counts = post.trans_counts.sum(0)
                logA = torch.log(counts / counts.sum(1, keepdim=True).clamp(min=1e-300)).clamp(
                    min=cfg.min_log_transition
                )
                self.log_transition.copy_(torch.log_softmax(logA, dim=1).to(self.log_transition.dtype))
            resp = gamma0 if first_data else post.smoothed_probs
            gw = F.pad(resp.to(x.dtype) * mask.unsqueeze(-1), (0, 0, 0, pad)).reshape(-1, W, S)
            gw = gw[keep]
            self._after_e_step()
            # ---- M-step
            for _ in range(cfg.m_steps):
                idx = torch.randperm(n_windows, device=xw.device)[:bw] if bw < n_windows else slice(None)
                self._before_step()
                Wt = self.weight_tensor("sample")
                q = glm.expected_log_likelihood(
                    Wt, self.bias, xw[idx], cw[idx], gw[idx], link, obs, value=False
                )  # gradients only (value 0)
                loss = -q / mw[idx].sum() - self.log_prior() / prior_bins
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self._after_step()
        self.n_epochs_ = len(self.history_) - start
        self._after_e_step()

    # ---- state relabelling, persistence -----------------------------------------------------------
    def permute(self, perm) -> _HMMGLMBase:
        """Relabel states in place: new state k is old state perm[k]."""
        perm = torch.as_tensor(np.asarray(perm), dtype=torch.long)
        if sorted(perm.tolist()) != list(range(self.n_states)):
            raise ValueError(f"perm must be a permutation of 0..{self.n_states - 1}, got {perm.tolist()}")
        with torch.no_grad():
            self.log_transition.copy_(self.log_transition[perm][:, perm])
            self.log_init.copy_(self.log_init[perm])
            for name in self._state_params:
                p = getattr(self, name)
                p.copy_(p[perm])
        return self

    _state_params: tuple[str, ...] = ()
    _scheduled = False  # True when the fit follows a schedule over n_epochs (no early stop)

    @classmethod
    def from_config(cls, config: HMMGLMConfig) -> _HMMGLMBase:
        """An unfitted model of ``config`` (whose "model" must be this class's kind)."""
        if cls is not _CLASSES.get(config.model):
            raise ValueError(f"the config describes model {config.model!r}, not {cls.kind!r} ({cls.__name__})")
        d = config_to_dict(config)
        kind, n_states, n_neurons = d.pop("model"), d.pop("n_states"), d.pop("n_neurons")
        return make_model(kind, n_states, n_neurons, **d)

    def save(self, path) -> Path:
        """``save_pretrained(path, overwrite=True)``: this older name replaces an existing folder."""
        return self.save_pretrained(path, overwrite=True)

    @classmethod
    def load(cls, path) -> _HMMGLMBase:
        """``from_pretrained(path)``."""
        return cls.from_pretrained(path)

    def extra_repr(self) -> str:
        c = self.config
        return f"S={c.n_states}, N={c.n_neurons}, K={len(c.basis)}, link={c.link}, obs={c.observations}"


class HMMGLM(_HMMGLMBase):
    """Free weight matrix per state (the paper's "naive" HMM-GLM, HG); maximum likelihood."""

    kind = "hmmglm"
    _state_params = ("weight",)

    def __init__(
        self, n_states: int, n_neurons: int, basis=None, link: str = "sigmoid", observations: str = "poisson", **kwargs
    ) -> None:
        super().__init__(n_states, n_neurons, basis, link, observations, **kwargs)
        g = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(
            self.config.init_std * torch.randn(self.n_states, self.n_neurons, self.n_neurons, generator=g)
        )

    def weight_tensor(self, mode: str = "hard") -> torch.Tensor:
        return self.weight

    def _init_state_params(self, g: torch.Generator) -> None:  # the draw of __init__ for seed 0
        self.weight.copy_(self.config.init_std * torch.randn(self.weight.shape, generator=g).to(self.weight))

    def _set_from_weights(self, W: torch.Tensor, seed: int) -> None:
        self.weight.copy_(W.to(self.weight))

    def _reference_start(self, g: torch.Generator) -> None:
        """Zero weights as in the public code, plus 0.01-std noise for S > 1: exact zeros give every state the
        same emissions, so the E-step's posteriors stay uniform and the states could never separate."""
        with torch.no_grad():
            self.weight.zero_()
            if self.n_states > 1:
                self.weight.add_(0.01 * torch.randn(self.weight.shape, generator=g).to(self.weight))


class GLM(HMMGLM):
    """One state (S = 1): the static coupled GLM baseline."""

    kind = "glm"

    def __init__(
        self,
        n_neurons: int,
        basis=None,
        link: str = "sigmoid",
        observations: str = "poisson",
        n_states: int = 1,
        **kwargs,
    ) -> None:
        if n_states != 1:
            raise ValueError(f"GLM has exactly one state, got n_states={n_states}")
        super().__init__(1, n_neurons, basis, link, observations, **kwargs)
        with torch.no_grad():
            self.weight.zero_()

    def init_from_data(self, x, conv, mask, cfg: FitConfig, seed: int):
        """The GLM's data-driven start is its zero-weight start with the bias at the mean rates."""
        with torch.no_grad():
            self.weight.zero_()
        self.init_bias(x, mask)
        return None

    def _init_state_params(self, g: torch.Generator) -> None:
        """Seed 0: zero weights (as built); other seeds: ``init_std`` noise."""
        if g.initial_seed() == 0:
            self.weight.zero_()
        else:
            super()._init_state_params(g)


class GaussianHMMGLM(HMMGLM):
    """W^(s) ~ N(mu, sigma^2) i.i.d. over states with a shared mean mu and variance sigma^2 (GHG).

    mu is set in closed form (its MAP value, the mean of W over states) before every gradient step, as
    the reference code does; sigma^2 stays at ``prior_std``^2 unless ``learn_prior_std`` (then it is
    set to the mean squared deviation after every E-step, floored at ``min_prior_std``^2).
    """

    kind = "gaussian"

    def __init__(
        self, n_states: int, n_neurons: int, basis=None, link: str = "sigmoid", observations: str = "poisson", **kwargs
    ) -> None:
        super().__init__(n_states, n_neurons, basis, link, observations, **kwargs)
        self.register_buffer("prior_mean", torch.zeros(self.n_neurons, self.n_neurons))
        self.register_buffer("prior_std", torch.tensor(float(self.config.prior_std)))

    def _before_step(self) -> None:
        with torch.no_grad():
            self.prior_mean.copy_(self.weight.mean(0))

    def _init_state_params(self, g: torch.Generator) -> None:
        super()._init_state_params(g)
        self.prior_mean.zero_()
        self.prior_std.fill_(float(self.config.prior_std))

    def _reference_start(self, g: torch.Generator) -> None:
        """The public code's ``sample_weight``: every state's weights drawn from the prior N(0, prior_std^2)."""
        with torch.no_grad():
            self.weight.copy_(float(self.prior_std) * torch.randn(self.weight.shape, generator=g).to(self.weight))
            self.prior_mean.zero_()

    def _after_e_step(self) -> None:
        if self.config.learn_prior_std:
            with torch.no_grad():
                self.prior_mean.copy_(self.weight.mean(0))
                var = (self.weight - self.prior_mean).pow(2).mean()
                self.prior_std.copy_(var.sqrt().clamp(min=self.config.min_prior_std))

    def log_prior(self) -> torch.Tensor:
        """sum_{s,n,n'} log N(W^(s)_{n<-n'}; mu_{n<-n'}, sigma^2)."""
        var = self.prior_std**2
        d = self.weight - self.prior_mean
        return -0.5 * (d.pow(2) / var + torch.log(2 * math.pi * var)).sum()

    def prior_connection_types(self, threshold: float | None = None) -> torch.Tensor:
        thr = self.config.type_threshold if threshold is None else threshold
        mu = self.weight.detach().mean(0)
        return (torch.sign(mu) * (mu.abs() > thr)).long()


def concrete_log_density(log_x: torch.Tensor, log_p: torch.Tensor, tau: float) -> torch.Tensor:
    """log GumbelSoftmax(x; p, tau) (Maddison et al. 2017; Jang et al. 2017) over the last axis, K classes:

    log Gamma(K) + (K-1) log tau - K logsumexp_i(log p_i - tau log x_i) + sum_i (log p_i - (tau+1) log x_i).
    """
    K = log_x.shape[-1]
    return (
        math.lgamma(K)
        + (K - 1) * math.log(tau)
        - K * torch.logsumexp(log_p - tau * log_x, dim=-1)
        + (log_p - (tau + 1) * log_x).sum(-1)
    )


class OneHotHMMGLM(_HMMGLMBase):
    """One-hot HMM-GLM (OHG), notes Sec. 1.5.

    w_{s,n<-n'} = (a^exc_{s,n<-n'} - a^inh_{s,n<-n'}) softplus(w~_{s,n<-n'}),
    a_{s,n<-n'} = relaxed one-hot over (inh, none, exc); prior a_{s} ~ GumbelSoftmax(a_0, tau) with a
    learnable a_0 = softmax(prior_logits) shared by the states. Types are Gumbel-softmax samples in
    the M-step, soft (softmax) in the E-step during fitting and hard (argmax) afterwards.
    Differences from the paper-era code: the prior density takes log a_0 (the 2025 code's fix), weights
    start with small random strengths instead of all-equal ones.
    """

    kind = "onehot"
    _state_params = ("type_logits", "strength_raw")
    _scheduled = True  # the Gumbel-softmax temperature is annealed over all n_epochs

    _screened = False  # its data-driven start is a plain HMM-GLM fit, which screens the starts

    def __init__(
        self, n_states: int, n_neurons: int, basis=None, link: str = "sigmoid", observations: str = "poisson", **kwargs
    ) -> None:
        super().__init__(n_states, n_neurons, basis, link, observations, **kwargs)
        S, N = self.n_states, self.n_neurons
        g = torch.Generator().manual_seed(0)
        logits = self.config.init_std * torch.randn(S, N, N, 3, generator=g)
        logits[..., 1] += self.config.none_logit
        self.type_logits = nn.Parameter(logits)
        raw = math.log(math.expm1(self.config.init_strength))  # softplus^{-1}
        self.strength_raw = nn.Parameter(torch.full((S, N, N), raw))
        self.prior_logits = nn.Parameter(torch.zeros(N, N, 3))

    def _init_state_params(self, g: torch.Generator) -> None:  # the draw of __init__ for seed 0
        S, N = self.n_states, self.n_neurons
        logits = self.config.init_std * torch.randn(S, N, N, 3, generator=g)
        logits[..., 1] += self.config.none_logit
        self.type_logits.copy_(logits.to(self.type_logits))
        self.strength_raw.fill_(math.log(math.expm1(self.config.init_strength)))
        self.prior_logits.zero_()

    def _reference_start(self, g: torch.Generator) -> None:
        """The public code's start: all type logits, strength parameters and prior logits zero."""
        with torch.no_grad():
            self.type_logits.zero_()
            self.strength_raw.zero_()
            self.prior_logits.zero_()

    def init_from_data(self, x, conv, mask, cfg: FitConfig, seed: int):
        """Warm start from a plain HMM-GLM fitted with the data-driven start (same seed): types
        sign(w) where |w| > ``type_threshold`` (logit 2 for that class), strengths |w| (at least 0.05), the
        prior a_0 from the types' frequencies over states, bias and transitions copied. The annealing then
        starts at ``cfg.onehot_warm_tau``. Returns None: the first E-step runs on these parameters."""
        c = self.config
        plain = HMMGLM(
            self.n_states, self.n_neurons, basis=c.basis, link=c.link, observations=c.observations, sticky=c.sticky
        )
        plain = _follow(plain, self)
        plain._start_and_em(x, conv, mask, FitConfig(**{**asdict(cfg), "init": "data"}), "data", seed, False, True)
        self.warm_start_(plain)
        self._tau_start = cfg.onehot_warm_tau
        return None

    def warm_start_(self, plain: _HMMGLMBase) -> OneHotHMMGLM:
        """Set this model's types, strengths, prior, bias and transitions from a fitted plain/Gaussian model."""
        with torch.no_grad():
            W = plain.weights.to(self.type_logits)
            t = (torch.sign(W) * (W.abs() > self.config.type_threshold)).long() + 1  # 0 inh, 1 none, 2 exc
            logits = torch.zeros_like(self.type_logits)
            logits.scatter_(-1, t.unsqueeze(-1), 2.0)
            self.type_logits.copy_(logits)
            w = W.abs().clamp(min=0.05)
            self.strength_raw.copy_(torch.log(torch.expm1(w)))
            freq = F.one_hot(t, 3).to(self.prior_logits).mean(0) + 0.05
            self.prior_logits.copy_(torch.log(freq / freq.sum(-1, keepdim=True)))
            self.bias.copy_(plain.bias.detach().to(self.bias))
            self.log_transition.copy_(plain.log_transition.to(self.log_transition))
        return self

    def connection_probs(self) -> torch.Tensor:
        """softmax of the type logits (S, N, N, 3) over (inh, none, exc)."""
        return torch.softmax(self.type_logits, dim=-1)

    def weight_tensor(self, mode: str = "hard") -> torch.Tensor:
        if mode == "sample":
            tau = getattr(self, "_tau_now", self.config.sample_tau)
            a = F.gumbel_softmax(self.type_logits, tau=tau, dim=-1)
        elif mode == "soft":
            a = torch.softmax(self.type_logits, dim=-1)
        elif mode == "hard":
            a = F.one_hot(self.type_logits.argmax(-1), 3).to(self.type_logits.dtype)
        else:
            raise ValueError(f"mode must be 'sample', 'soft' or 'hard', got {mode!r}")
        return (a[..., 2] - a[..., 0]) * F.softplus(self.strength_raw)

    def log_prior(self) -> torch.Tensor:
        """sum_{s,n,n'} log GumbelSoftmax(softmax(type_logits); a_0, tau)."""
        log_x = torch.log_softmax(self.type_logits, dim=-1)
        log_p = torch.log_softmax(self.prior_logits, dim=-1)
        lp = concrete_log_density(log_x, log_p, self.config.tau).sum()
        if self.config.strength_prior_std is not None:  # shared N(mu_w, sd^2), mu_w at its MAP value
            w = F.softplus(self.strength_raw)
            lp = lp - 0.5 * ((w - w.detach().mean()) / self.config.strength_prior_std).pow(2).sum()
        return lp

    def _set_epoch(self, epoch: int, n_epochs: int) -> None:
        t0, t1 = getattr(self, "_tau_start", None) or self.config.sample_tau_start, self.config.sample_tau
        frac = epoch / max(n_epochs - 1, 1)
        self._tau_now = t0 * (t1 / t0) ** frac

    def _after_step(self) -> None:
        # reference-code guard: halve logits whose softmax puts < e^-20 on some class
        with torch.no_grad():
            for p in (self.type_logits, self.prior_logits):
                bad = (torch.log_softmax(p, -1) < -20).any(-1)
                if bad.any():
                    p[bad] = p[bad] / 2

    def connection_types(self, threshold: float | None = None) -> torch.Tensor:
        """Hard per-state types argmax(a) - 1 in {-1 inh, 0 none, 1 exc} (S, N, N); no thresholding."""
        return self.type_logits.detach().argmax(-1) - 1

    def prior_connection_types(self, threshold: float | None = None) -> torch.Tensor:
        """State-constant ("anatomical") types argmax(a_0) - 1 (N, N)."""
        return self.prior_logits.detach().argmax(-1) - 1


_CLASSES = {"glm": GLM, "hmmglm": HMMGLM, "gaussian": GaussianHMMGLM, "onehot": OneHotHMMGLM}


def make_model(model: str, n_states: int, n_neurons: int, **kwargs) -> _HMMGLMBase:
    """Build a model by name ("glm", "hmmglm", "gaussian", "onehot")."""
    validation.check_choice("model", model, MODELS)
    if model == "glm":
        if n_states != 1:
            raise ValueError(f"model 'glm' has one state, got n_states={n_states}")
        return GLM(n_neurons, **kwargs)
    return _CLASSES[model](n_states, n_neurons, **kwargs)


def load(path, device="cpu") -> _HMMGLMBase:
    """Rebuild any of the four models from a folder of ``save_pretrained`` / ``save`` (also one written
    before the common model-folder format)."""
    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} is not a saved HMM-GLM (needs config.json and model.safetensors)")
    return load_model(path, device, expected=_HMMGLMBase)[0]
