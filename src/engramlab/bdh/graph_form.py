"""BDH in its graph ("brain") form: neurons as particles, local rules per edge and per neuron
(paper §2, Table 1, Eq. 6). An executable reference for small n, written from the equations.

State. Every neuron i holds X(i), Y(i) and its read accumulators A(i); every synapse (i, j) of
every layer l holds sigma_l(i, j) (presynaptic i: the y of layer l-1; postsynaptic j: the x of
layer l). Parameters are non-negative graphs: the excitatory/inhibitory pairs G_x^e, G_x^i and
G_y^e, G_y^i (an edge j -> i of weight G(i, j)), the synapse graph G_s (0/1: which synapses
exist), and the operator U acting on each synapse: a damping u(i, j) = 1 - gamma_{head(j)} and,
with RoPE, a rotation of each pair of synapses (i, 2k), (i, 2k+1) by the angle 2 pi f_k.

One token t runs four synchronous rounds per layer l = 1..L (Table 1):

    round 4l-1  Y -> X    X^e(i) = sum_j G_x^e(i, j) Y_{l-1}(j),  X^i likewise;
                          X_l(i) = X_{l-1}(i) + (X^e(i) - X^i(i))^+           (x_{t,0} = 0)
    round 4l    read      sigma_l <- sigma_l U  (damp, rotate: the step from token t-1 to t);
                          A(i) = sum_j sigma_l(i, j) X_l(j)
    round 4l+1  Hebbian   sigma_l(i, j) += G_s(i, j) Y_{l-1}(i) X_l(j)
    round 4l+2  A -> Y    Y^e(i) = sum_j G_y^e(i, j) A(j),  Y^i likewise;
                          Y_l(i) = (Y^e(i) - Y^i(i))^+ X_l(i)

with Y_0 the token's input pattern. Unrolled this is exactly the closed form Eq. 6:

    sigma_{t,l} = (sigma_{t-1,l} + (y_{t,l-1} x_{t,l}^T) . G_s) U
    x_{t,l}     = x_{t,l-1} + ((G_x^e - G_x^i) y_{t,l-1})^+
    y_{t,l}     = ((G_y^e - G_y^i) sigma_{t-1,l} x_{t,l})^+ . x_{t,l}

This project's readings where the notes on the paper leave a choice:

- Orientation: sigma(i, j) pairs y(i) with x(j) as in Eq. 6 and Eq. 16, so the read sends X(j)
  back along synapse (i, j) to i. (Table 1 as transcribed writes the read rule as
  X(i), sigma(i, j) -> A(j); with that orientation the unrolled dynamics would not be Eq. 6.)
- U is applied before the read of the next token (equivalently, at the end of the token as
  Eq. 6 writes it). Applied after the read instead, every write would be read one step less
  damped and rotated (U^{t-tau-1}): a reparametrisation, not Eq. 6.
- X is reset to 0 between tokens (x_{t,0} = 0); the graph protocol leaves this unspecified.
- Heads: the tensor form's attention is computed per head (keys of head h only). Here each
  neuron keeps one accumulator A_h(i) per head, filled by the synapses whose postsynaptic neuron
  is in head h, and an edge of G_y into a neuron of head h reads A_h. With one head this is
  Eq. 6 verbatim.

Where it coincides with the tensor form (``graph_from_normfree``): BDH-Normfree (Eq. 7, the
tensor model with ``residual="n", layernorm=False``) under Eq. 9: G_x^e - G_x^i = D_x E,
G_y^e - G_y^i = D_y E (split into positive and negative parts), G_s all ones, and the
token's input pattern y_{t,0} with E y_{t,0} = the tensor form's embedding. Then every x and y
of every layer agree to round-off (tests/bdh/test_bdh_graph_form.py). Where they cannot agree:

- BDH-GPU with LayerNorm (every trained model here): LN normalises the d coordinates of E y and
  of a* = rho x, quantities that exist only in the low-rank form; no neuron-local rule computes
  a mean and variance over them, so the graph form is the Normfree model only.
- The official code's d-space residual (``residual="d"``): x_l = (D_x (v*_0 + E sum_{l'<l} y_l'))^+
  is a ReLU of the accumulated sum, not Eq. 6's sum of ReLUs, and the attention value is the
  accumulated stream, not y_{l-1}.
- G_s other than all ones: the tensor form never materialises sigma (it keeps rho = E sigma), so
  it can only express the complete synapse graph (Eq. 9). Likewise general non-negative G^e, G^i
  not of the form (D E)^+-split of rank d: the graph form is strictly more expressive.
- BDH-GPU''s forget gate: computed from the whole d-dimensional v*_t, not by a local rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def _edges(G: np.ndarray, name: str) -> list[tuple[int, int, float]]:
    """Edge list (dst i, src j, weight) of a non-negative (n, n) graph, zero weights left out."""
    if (G < 0).any():
        raise ValueError(f"{name} must be non-negative (excitatory/inhibitory graphs), min is {G.min()}")
    ii, jj = np.nonzero(G)
    return [(int(i), int(j), float(G[i, j])) for i, j in zip(ii, jj)]


@dataclass
class GraphBDH:
    """Graph BDH of n neurons and L layers (Eq. 6, Table 1). Graphs are (n, n) with G[i, j] the
    weight of edge j -> i (G_s[i, j]: synapse from presynaptic i to postsynaptic j).

    damping: (n,) gamma_j in (0, 1], the factor by which every synapse into j decays per token
    (1 = none); rope_freqs: (n,) cycles per token of the pair (2k, 2k+1) (both entries equal) or
    None; heads: (n,) head of each neuron (all 0: one head, Eq. 6 verbatim).
    """

    Gx_e: np.ndarray
    Gx_i: np.ndarray
    Gy_e: np.ndarray
    Gy_i: np.ndarray
    Gs: np.ndarray
    n_layer: int
    damping: np.ndarray | None = None
    rope_freqs: np.ndarray | None = None
    heads: np.ndarray | None = None
    _sigma: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        n = self.Gx_e.shape[0]
        for name in ("Gx_e", "Gx_i", "Gy_e", "Gy_i", "Gs"):
            G = np.asarray(getattr(self, name), dtype=np.float64)
            if G.shape != (n, n):
                raise ValueError(f"{name} must be ({n}, {n}) like Gx_e, got {G.shape}")
            setattr(self, name, G)
        if not np.isin(self.Gs, (0.0, 1.0)).all():
            raise ValueError("Gs must be a 0/1 synapse graph")
        if isinstance(self.n_layer, bool) or not isinstance(self.n_layer, int) or self.n_layer < 1:
            raise ValueError(f"n_layer must be a positive integer, got {self.n_layer!r}")
        self.n = n
        self.damping = np.ones(n) if self.damping is None else np.asarray(self.damping, dtype=np.float64)
        if self.damping.shape != (n,) or not ((self.damping > 0) & (self.damping <= 1)).all():
            raise ValueError(f"damping must be ({n},) factors in (0, 1], got {self.damping}")
        if self.rope_freqs is not None:
            f = np.asarray(self.rope_freqs, dtype=np.float64)
            if n % 2 or f.shape != (n,) or (f[0::2] != f[1::2]).any():
                raise ValueError("rope_freqs must be (n,) with n even and equal entries per pair (2k, 2k+1)")
            self.rope_freqs = f
        self.heads = np.zeros(n, dtype=int) if self.heads is None else np.asarray(self.heads, dtype=int)
        if self.heads.shape != (n,) or self.heads.min() < 0:
            raise ValueError(f"heads must be ({n},) non-negative head indices")
        if self.rope_freqs is not None and (self.heads[0::2] != self.heads[1::2]).any():
            raise ValueError("a RoPE pair (2k, 2k+1) must lie in one head")
        if self.rope_freqs is not None and (self.Gs[:, 0::2] != self.Gs[:, 1::2]).any():
            raise ValueError(
                "with RoPE, the synapses (i, 2k) and (i, 2k+1) rotate together: Gs must have both or neither"
            )
        self.n_heads = int(self.heads.max()) + 1
        # edge lists: the only way the rounds below touch the graphs
        self.ex_x, self.in_x = _edges(self.Gx_e, "Gx_e"), _edges(self.Gx_i, "Gx_i")
        self.ex_y, self.in_y = _edges(self.Gy_e, "Gy_e"), _edges(self.Gy_i, "Gy_i")
        self.synapses = [(i, j) for i, j, _ in _edges(self.Gs, "Gs")]
        self.reset()

    def reset(self) -> None:
        """Forget the synaptic state: sigma_l(i, j) = 0 for every layer and synapse."""
        self._sigma = [{s: 0.0 for s in self.synapses} for _ in range(self.n_layer)]

    def sigma(self, layer: int) -> np.ndarray:
        """The synaptic state sigma_l as an (n, n) matrix (layer 0-based; before the next token's U)."""
        S = np.zeros((self.n, self.n))
        for (i, j), val in self._sigma[layer].items():
            S[i, j] = val
        return S

    # ------------------------------------------------------------------------- the local rules
    def _propagate(self, excit, inhib, source: list[float], channel=None) -> list[float]:
        """(Z^e - Z^i)^+ at every neuron from messages along the edges of a pair of graphs.

        source[j] is the value neuron j sends; with ``channel`` the value sent to neuron i is
        source[j][channel(i)] (the read accumulators of the receiving neuron's head)."""
        ze = [0.0] * self.n
        zi = [0.0] * self.n
        for edges, acc in ((excit, ze), (inhib, zi)):
            for i, j, w in edges:
                s = source[j] if channel is None else source[j][channel[i]]
                acc[i] += w * s
        return [max(a - b, 0.0) for a, b in zip(ze, zi)]

    def _step_synapses(self, sig: dict) -> None:
        """sigma <- sigma U on every synapse: damping of the edge, rotation of the edge pairs."""
        gam = self.damping
        if self.rope_freqs is None:
            for i, j in sig:
                sig[(i, j)] *= gam[j]
            return
        for i, j in sig:
            if j % 2:
                continue
            a, b = sig[(i, j)], sig[(i, j + 1)]
            w = 2 * math.pi * self.rope_freqs[j]
            c, s = math.cos(w), math.sin(w)
            # (sigma U)(i, 2k) = c a + s b, (sigma U)(i, 2k+1) = -s a + c b (U: the RoPE step)
            sig[(i, j)] = gam[j] * (c * a + s * b)
            sig[(i, j + 1)] = gam[j + 1] * (-s * a + c * b)

    def token(self, y0) -> dict[str, list[list[float]]]:
        """Run one token through the 4L rounds; y0 (n,) its input pattern Y_0. Updates sigma.

        Returns {"x": [L][n], "y": [L][n]}: X_l and Y_l of every layer.
        """
        y_prev = [float(v) for v in np.asarray(y0, dtype=np.float64).reshape(-1)]
        if len(y_prev) != self.n or min(y_prev) < 0:
            raise ValueError(f"the input pattern must be {self.n} non-negative values")
        x = [0.0] * self.n  # X reset between tokens
        xs, ys = [], []
        for layer in range(self.n_layer):
            sig = self._sigma[layer]
            # round 4l-1: Y -> X through G_x^e, G_x^i; integrate (n-space residual)
            inc = self._propagate(self.ex_x, self.in_x, y_prev)
            x = [a + b for a, b in zip(x, inc)]
            # round 4l: damp/rotate every synapse, then read: A_h(i) = sum_{j in head h} sigma(i, j) X(j)
            self._step_synapses(sig)
            A = [[0.0] * self.n_heads for _ in range(self.n)]
            for (i, j), val in sig.items():
                A[i][self.heads[j]] += val * x[j]
            # round 4l+1: Hebbian write on the existing synapses
            for i, j in sig:
                sig[(i, j)] += y_prev[i] * x[j]
            # round 4l+2: A -> Y through G_y^e, G_y^i, threshold, gate by X
            r = self._propagate(self.ex_y, self.in_y, A, channel=self.heads)
            y = [a * b for a, b in zip(r, x)]
            xs.append(list(x))
            ys.append(y)
            y_prev = y
        return {"x": xs, "y": ys}

    def run(self, y0: np.ndarray) -> dict[str, np.ndarray]:
        """Tokens y0 (T, n) from an empty state -> {"x": (L, T, n), "y": (L, T, n)}."""
        y0 = np.asarray(y0, dtype=np.float64)
        if y0.ndim != 2 or y0.shape[1] != self.n:
            raise ValueError(f"y0 must be (T, {self.n}) input patterns, got {y0.shape}")
        self.reset()
        out = [self.token(row) for row in y0]
        return {k: np.array([[o[k][layer] for o in out] for layer in range(self.n_layer)]) for k in ("x", "y")}


def graph_from_normfree(model) -> GraphBDH:
    """The graph form of a BDH-Normfree tensor model (Eq. 9): G^e - G^i = D E split into its
    positive and negative parts, G_s all ones, U from the model's RoPE / ALiBi.

    The model must have ``residual="n"``, ``layernorm=False`` and ``variant="gpu"`` (the only
    tensor form that coincides with Eq. 6, see the module docstring). Its input then enters as
    y_{t,0} with E y_{t,0} = embed(token): give the model ``embed = input_patterns @ E``.
    """
    cfg = model.config
    problems = []
    if cfg.residual != "n":
        problems.append(f"residual={cfg.residual!r} (need 'n', the n-space residual of Eq. 7)")
    if cfg.layernorm:
        problems.append("layernorm=True (LayerNorm has no graph counterpart; need layernorm=False)")
    if cfg.variant != "gpu":
        problems.append(f"variant={cfg.variant!r} (the BDH-GPU' gate is not a local rule; need 'gpu')")
    if problems:
        raise ValueError("the graph form coincides only with BDH-Normfree (Eq. 7): " + "; ".join(problems))
    H, N = cfg.n_head, cfg.n_neurons_per_head
    n = H * N
    E = model.encoder_E.detach().double().cpu().numpy()  # (n, d): row i = E's column for neuron i
    Dx = model.decoder_x.detach().double().cpu().numpy().transpose(0, 2, 1).reshape(n, -1)  # (n, d)
    Dy = model.decoder_y.detach().double().cpu().numpy().transpose(0, 2, 1).reshape(n, -1)
    Gx, Gy = Dx @ E.T, Dy @ E.T  # (n, n): G(i', i) = sum_k D(i', k) E(k, i)
    heads = np.repeat(np.arange(H), N)
    damping = None
    if "alibi" in cfg.pos:
        damping = np.exp(model.alibi_log_decay.detach().double().cpu().numpy())[heads]
    freqs = model.rope_freqs.detach().double().cpu().numpy().reshape(n) if "rope" in cfg.pos else None
    return GraphBDH(
        Gx_e=np.maximum(Gx, 0),
        Gx_i=np.maximum(-Gx, 0),
        Gy_e=np.maximum(Gy, 0),
        Gy_i=np.maximum(-Gy, 0),
        Gs=np.ones((n, n)),
        n_layer=cfg.n_layer,
        damping=damping,
        rope_freqs=freqs,
        heads=heads,
    )
