"""Reading a trained BDH-GPU: sparse positive activations, the neuron browser and synapses.

Quantities (paper sections cited from ../shared/papers/bdh.md):

- **Density** (§4.1, Empirical Finding 1; Fig. 14): the fraction of non-zero entries of the
  sparse positive x_{t,l} = ReLU(D_x v*_{t,l-1}) and of the gated y_{t,l}, per layer and head,
  and per-neuron firing rates. The paper does not say whether it counts exact zeros or small
  values as silent, so both counts are reported: exact non-zeros, and entries above 1% of the
  layer's largest activation (``density(a, rel_threshold=0.01)``). The paper reports about 5%
  for trained models, and lower density on repeated (predictable) input than on fresh input
  (Fig. 14: 4.0-7.5% memorising vs ~2.5% repeating). ``repetition_density`` runs that
  experiment on a window of real text repeated; ``phase_density`` on the letter-pattern task
  (``engramlab.data.tasks.repeated_pattern_batch``).
- **Neuron browser**: the byte windows that make a neuron fire most, as a self-contained HTML
  page (inline CSS, no scripts, no external files).
- **Synapses** (Eq. 16): the synaptic state

      sigma_{t-1,l} = sum_{tau < t} y_{tau,l-1} x_{tau,l}^T U^{t-tau}            (n x n)

  pairs the gated y of layer l-1 (presynaptic, row i) with the x of layer l (postsynaptic,
  column j), so it is defined for layers l >= 1. U is the model's position operator: for RoPE,
  2x2 rotations of neuron pairs (2k, 2k+1) by 2*pi*f_j per token, chosen so that
  ``x_tau^T U^{t-tau} x_t`` is exactly the model's attention score ``RoPE(x_tau).RoPE(x_t)``;
  for ALiBi (and BDH-GPU''s gate) the per-token damping of the key's head. ``synapse_trajectory``
  follows chosen pairs over a text with a recurrence over time (O(T * pairs), never n x n);
  ``top_synapses`` finds the strongest entries of sigma at the end of a text by row blocks.

Neuron indices are global: neuron ``h * N + k`` is neuron k of head h.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import torch

from engramlab.io import atomic_write_text, save_figure, to_jsonable, write_json
from engramlab.nn.rope import apply_rope, rope_cos_sin

# ---------------------------------------------------------------------------------------------
# density


REL_THRESHOLD = 0.01  # the second count: entries above 1% of the layer's largest activation


def density(a: torch.Tensor, dim: int | tuple[int, ...] | None = None, rel_threshold: float = 0.0) -> torch.Tensor:
    """Fraction of active entries of ``a`` (over ``dim``, or over everything).

    ``rel_threshold = 0``: exact non-zeros (a != 0). ``rel_threshold = r > 0``: entries with
    |a| > r * max|a|, the maximum taken over the whole tensor ``a`` (pass one layer's
    activations: the threshold is that layer's), so near-zero activations are not counted. The
    paper does not say which of the two its ~5% counts; ``trace_density`` reports both.
    """
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"density expects a torch tensor, got {type(a).__name__}")
    if not 0.0 <= float(rel_threshold) < 1.0:
        raise ValueError(f"rel_threshold must be in [0, 1) (a fraction of the maximum), got {rel_threshold}")
    if rel_threshold == 0:
        act = a != 0
    else:
        mag = a.abs()
        act = mag > float(rel_threshold) * (mag.max() if mag.numel() else 0.0)
    act = act.to(torch.float64)
    return act.mean() if dim is None else act.mean(dim=dim)


def trace_density(trace: list[dict[str, torch.Tensor]], rel_threshold: float = REL_THRESHOLD) -> dict:
    """Density of x and y per layer, per head (over batch, time and neurons) from ``forward_trace``.

    Two counts: exact non-zeros, {"x": [L], "y": [L], "x_per_head": [L][H], "y_per_head": [L][H]},
    and entries above ``rel_threshold`` (1%) of each layer's maximum, the same keys with
    ``_above`` ("x_above", "x_above_per_head", ...). Python floats; "rel_threshold" is recorded.
    """
    if not 0.0 < float(rel_threshold) < 1.0:
        raise ValueError(f"rel_threshold must be in (0, 1) (a fraction of the maximum), got {rel_threshold}")
    keys = ("x", "y", "x_per_head", "y_per_head", "x_above", "y_above", "x_above_per_head", "y_above_per_head")
    out: dict = {k: [] for k in keys}
    for layer in trace:
        for key in ("x", "y"):
            a = layer[key]  # (B, H, T, N)
            if a.dim() != 4:
                raise ValueError(f"trace entry {key!r} must be (B, H, T, N), got {tuple(a.shape)}")
            out[key].append(float(density(a)))
            out[f"{key}_per_head"].append(density(a, dim=(0, 2, 3)).tolist())
            mask = (a.abs() > rel_threshold * a.abs().max()).to(torch.float64)  # the layer's max, all heads
            out[f"{key}_above"].append(float(mask.mean()))
            out[f"{key}_above_per_head"].append(mask.mean(dim=(0, 2, 3)).tolist())
    out["rel_threshold"] = float(rel_threshold)
    return out


def density_overall(trace: list[dict[str, torch.Tensor]], rel_threshold: float = REL_THRESHOLD) -> dict:
    """Density of x and y over all layers together: active entries of every layer / all entries.

    {"x", "y", "x_above", "y_above"}: the two counts of ``trace_density`` (exact non-zeros, and
    entries above ``rel_threshold`` of each layer's own maximum), pooled over the layers.
    """
    if not trace:
        raise ValueError("density_overall needs the trace of at least one layer, got an empty list")
    out = {}
    for key in ("x", "y"):
        n = sum(layer[key].numel() for layer in trace)
        if n == 0:
            raise ValueError(f"trace entries {key!r} are empty: nothing to count")
        for suffix, r in (("", 0.0), ("_above", rel_threshold)):
            active = sum(float(density(layer[key], rel_threshold=r)) * layer[key].numel() for layer in trace)
            out[key + suffix] = active / n
    return out


def power_law_extrapolate(xs, ys, at: float) -> dict:
    """Least-squares line through (log2 x, log2 y), read at ``at``: y = c * x**slope.

    Returns {"slope", "per_doubling" (2**slope: the factor y changes by when x doubles), "at",
    "value" (the fitted y at ``at``), "residual_rms" (of log2 y)}. Needs two or more distinct
    x and positive x, y.
    """
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"xs and ys must be equal-length lists, got shapes {x.shape} and {y.shape}")
    if len(np.unique(x)) < 2:
        raise ValueError(f"a line needs two or more distinct xs, got {x.tolist()}")
    if (x <= 0).any() or (y <= 0).any() or not math.isfinite(float(at)) or at <= 0:
        raise ValueError(f"logarithms need positive values: xs {x.tolist()}, ys {y.tolist()}, at {at}")
    lx, ly = np.log2(x), np.log2(y)
    slope, icpt = np.polyfit(lx, ly, 1)
    res = ly - (icpt + slope * lx)
    return {
        "slope": float(slope),
        "per_doubling": float(2.0**slope),
        "at": float(at),
        "value": float(2.0 ** (icpt + slope * math.log2(at))),
        "residual_rms": float(np.sqrt(np.mean(res**2))),
    }


def firing_rates(a: torch.Tensor) -> torch.Tensor:
    """Per-neuron firing rate: fraction of positions where it is non-zero. a (B, H, T, N) -> (H*N,)."""
    if a.dim() != 4:
        raise ValueError(f"expected activations (B, H, T, N), got {tuple(a.shape)}")
    return density(a, dim=(0, 2)).reshape(-1)


def flat_neurons(a: torch.Tensor) -> torch.Tensor:
    """(1, H, T, N) trace tensor -> (T, H*N) with global neuron index h*N + k."""
    if a.dim() != 4 or a.shape[0] != 1:
        raise ValueError(f"expected one sequence of activations (1, H, T, N), got {tuple(a.shape)}")
    _, H, T, N = a.shape
    return a[0].permute(1, 0, 2).reshape(T, H * N)


# ---------------------------------------------------------------------------------------------
# synapses (Eq. 16)


@dataclass
class PositionOperator:
    """The model's U acting on the key (postsynaptic) neuron j, in global neuron indices.

    freqs: (n,) RoPE frequencies in cycles per token (pairs (2k, 2k+1) share one), or None.
    log_decay: damping of the state on the step from token t to token t+1 (the weight of a key
    tau tokens back is the product of the damping factors in between), shape (n,) constant or
    (T, n) per token (row t = the step after token t), or None.
    """

    freqs: torch.Tensor | None = None
    log_decay: torch.Tensor | None = None

    def check(self, T: int, n: int) -> None:
        if self.freqs is not None:
            if self.freqs.shape != (n,):
                raise ValueError(f"freqs must have shape ({n},), got {tuple(self.freqs.shape)}")
            if n % 2:
                raise ValueError(f"RoPE pairs neurons: n={n} must be even")
        if self.log_decay is not None and self.log_decay.shape not in ((n,), (T, n)):
            raise ValueError(f"log_decay must have shape ({n},) or ({T}, {n}), got {tuple(self.log_decay.shape)}")

    def decay_rows(self, T: int, n: int, dtype) -> torch.Tensor | None:
        if self.log_decay is None:
            return None
        ld = self.log_decay.to(dtype)
        return ld.expand(T, n) if ld.dim() == 1 else ld


def _check_pair_inputs(y_prev: torch.Tensor, x: torch.Tensor) -> tuple[int, int]:
    if y_prev.dim() != 2 or x.dim() != 2 or y_prev.shape != x.shape:
        raise ValueError(
            f"expected y_prev and x as (T, n) activations of one sequence with the same shape, got "
            f"{tuple(y_prev.shape)} and {tuple(x.shape)}"
        )
    return x.shape


def rotated_keys(x: torch.Tensor, U: PositionOperator) -> torch.Tensor:
    """Rows x_tau^T U^{T - tau} for tau = 0..T-1 (the keys as seen from the read after the text).

    x (T, n) -> (T, n); dtype follows x.
    """
    T, n = x.shape
    U.check(T, n)
    out = x
    if U.freqs is not None:
        steps = torch.arange(T, 0, -1, dtype=torch.float64)  # T - tau
        # x^T R(s w) = (R(-s w) x)^T: rotate by the negative phase
        cos, sin = rope_cos_sin(U.freqs.to(torch.float64), -steps, x.dtype)  # (T, n)
        out = apply_rope(out, cos, sin)
    dec = U.decay_rows(T, n, torch.float64)
    if dec is not None:
        # weight of tau: exp(sum_{s = tau}^{T-1} log_decay[s]) (reverse cumulative sum)
        w = torch.flip(torch.cumsum(torch.flip(dec, [0]), 0), [0]).exp().to(x.dtype)
        out = out * w
    return out


def synapse_matrix(y_prev: torch.Tensor, x: torch.Tensor, U: PositionOperator) -> torch.Tensor:
    """sigma after the whole text (Eq. 16 with t = T): (n, n). Only for small n (tests, probes)."""
    _check_pair_inputs(y_prev, x)
    return y_prev.T @ rotated_keys(x, U)


def synapse_trajectory(y_prev: torch.Tensor, x: torch.Tensor, pairs: torch.Tensor, U: PositionOperator) -> torch.Tensor:
    """sigma_{t-1}(i, j) of Eq. 16 for chosen pairs, for every read t = 1..T.

    y_prev (T, n): gated y of layer l-1; x (T, n): x of layer l; pairs (P, 2) long (i, j).
    Returns (T, P): row t-1 is sigma_{t-1}, the state read by token t (row T-1: after the text).
    Computed by the recurrence S_t = q_t (S_{t-1} + y_t(i) z_t) over complex pair coordinates
    z = x_{2k} + i x_{2k+1}, q_t = f_t e^{-i 2 pi f_j}: O(T * P) work, no n x n matrix.
    """
    T, n = _check_pair_inputs(y_prev, x)
    U.check(T, n)
    pairs = torch.as_tensor(pairs, dtype=torch.long)
    if pairs.dim() != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must be (P, 2) neuron indices (i, j), got shape {tuple(pairs.shape)}")
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= n):
        raise ValueError(f"pair indices must be in [0, {n}), got range [{int(pairs.min())}, {int(pairs.max())}]")
    i, j = pairs[:, 0], pairs[:, 1]
    yi = y_prev[:, i].to(torch.float64)  # (T, P)
    if U.freqs is not None:
        e = j - (j % 2)
        z = torch.complex(x[:, e].to(torch.float64), x[:, e + 1].to(torch.float64))  # (T, P)
        omega = 2 * math.pi * U.freqs.to(torch.float64)[j]
        q = torch.exp(torch.complex(torch.zeros_like(omega), -omega)).expand(T, -1)  # (T, P)
    else:
        z = torch.complex(x[:, j].to(torch.float64), torch.zeros(T, len(j), dtype=torch.float64))
        q = torch.ones(T, len(j), dtype=torch.complex128)
    dec = U.decay_rows(T, n, torch.float64)
    if dec is not None:
        q = q * dec[:, j].exp()
    w = yi * z  # (T, P) complex
    S = torch.zeros(len(j), dtype=torch.complex128)
    out = torch.empty(T, len(j), dtype=torch.complex128)
    for t in range(T):
        S = q[t] * (S + w[t])
        out[t] = S
    odd = (j % 2 == 1) if U.freqs is not None else torch.zeros_like(j, dtype=torch.bool)
    return torch.where(odd, out.imag, out.real).to(x.dtype)


@dataclass
class TopSynapses:
    pre: np.ndarray  # (k,) presynaptic neuron i (row: y of layer l-1)
    post: np.ndarray  # (k,) postsynaptic neuron j (column: x of layer l)
    value: np.ndarray  # (k,) sigma(i, j)


def top_synapses(
    y_prev: torch.Tensor,
    x: torch.Tensor,
    U: PositionOperator,
    k: int = 20,
    block_rows: int = 1024,
    head_size: int | None = None,
) -> TopSynapses:
    """The k largest entries of sigma after the text, by row blocks (memory O(block_rows * n)).

    Rows whose neuron never fired in y_prev are skipped. With ``head_size=N`` only synapses
    inside one head (i and j in the same head) are considered, as in the paper's Fig. 11.
    """
    T, n = _check_pair_inputs(y_prev, x)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if head_size is not None and (head_size <= 0 or n % head_size):
        raise ValueError(f"head_size={head_size} must divide n={n}")
    Xr = rotated_keys(x, U)  # (T, n)
    active = (y_prev != 0).any(0).nonzero().squeeze(1)
    best_v = torch.empty(0, dtype=x.dtype)
    best_i = torch.empty(0, dtype=torch.long)
    for b0 in range(0, len(active), block_rows):
        rows = active[b0 : b0 + block_rows]
        S = y_prev[:, rows].T @ Xr  # (b, n)
        if head_size is not None:
            same = (rows[:, None] // head_size) == (torch.arange(n)[None, :] // head_size)
            S = S.masked_fill(~same, -math.inf)
        kk = min(k, S.numel())
        top = torch.topk(S.flatten(), kk)
        flat = rows[top.indices // n] * n + top.indices % n
        best_v = torch.cat([best_v, top.values])
        best_i = torch.cat([best_i, flat])
        if len(best_v) > k:
            t2 = torch.topk(best_v, k)
            best_v, best_i = t2.values, best_i[t2.indices]
    order = torch.argsort(best_v, descending=True)
    best_v, best_i = best_v[order], best_i[order]
    keep = torch.isfinite(best_v)
    best_v, best_i = best_v[keep], best_i[keep]
    return TopSynapses(pre=(best_i // n).numpy(), post=(best_i % n).numpy(), value=best_v.double().numpy())


def position_operator(model, layer_input: torch.Tensor | None = None) -> PositionOperator:
    """U of a BDH model in global neuron indices (n = H*N).

    RoPE frequencies come from the ``rope_freqs`` buffer; ALiBi from ``alibi_log_decay`` (per
    head, spread over the head's neurons). For BDH-GPU' the learned forget gate is data
    dependent: pass the layer's input v* (T, d) (``trace[l]["v"][0]``); the gate of the step after
    the last token is unknown and taken as 1 (only the ALiBi part applies there).
    """
    cfg = model.config
    H, N = cfg.n_head, cfg.n_neurons_per_head
    freqs = None
    if "rope" in cfg.pos:
        freqs = model.rope_freqs.detach().reshape(H * N).to(torch.float64)
    ld = None
    if "alibi" in cfg.pos:
        ld = model.alibi_log_decay.detach().to(torch.float64).repeat_interleave(N)  # (n,)
    if cfg.variant == "prime":
        if layer_input is None:
            raise ValueError("BDH-GPU' has a data-dependent gate: pass the layer input v* (T, d)")
        with torch.no_grad():
            g = layer_input.double() @ model.gate_w.double() + model.gate_b.double()  # (T, H)
            g = torch.nn.functional.logsigmoid(g)
        T = layer_input.shape[0]
        # the step after token t is damped by the gate of token t+1
        g_next = torch.cat([g[1:], torch.zeros(1, H, dtype=torch.float64)])  # (T, H)
        gate = g_next.repeat_interleave(N, dim=1)  # (T, n)
        ld = gate if ld is None else gate + ld.expand(T, -1)
    return PositionOperator(freqs=freqs, log_decay=ld)


# ---------------------------------------------------------------------------------------------
# neuron browser


def byte_repr(b: int) -> str:
    """One byte as readable text: printable ASCII as is, newline as a return sign, else \\xNN."""
    if b == 10:
        return "\u21b5"
    if b == 9:
        return "\u21e5"
    if 32 <= b < 127:
        return chr(b)
    return f"\\x{b:02x}"


def top_contexts(tokens: np.ndarray, act: np.ndarray, k: int = 8, before: int = 40, after: int = 8) -> list[dict]:
    """The k positions where one neuron's activation ``act`` (T,) is largest, with byte windows.

    Each entry: {"pos", "value", "window": [[text, activation], ...], "center": index in window}.
    Positions where the neuron is silent (activation 0) are never listed.
    """
    tokens = np.asarray(tokens)
    act = np.asarray(act, dtype=np.float64)
    if tokens.shape != act.shape or tokens.ndim != 1:
        raise ValueError(f"tokens and act must be (T,) of the same length, got {tokens.shape}, {act.shape}")
    order = np.argsort(-act, kind="stable")[:k]
    out = []
    for p in order:
        if act[p] <= 0:
            break
        lo, hi = max(0, p - before), min(len(tokens), p + after + 1)
        out.append(
            {
                "pos": int(p),
                "value": float(act[p]),
                "center": int(p - lo),
                "window": [[byte_repr(int(tokens[q])), float(act[q])] for q in range(lo, hi)],
            }
        )
    return out


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:70em;color:#222}
h1{font-size:1.4em} h2{font-size:1.05em;margin:1.2em 0 .3em}
.meta{color:#666;font-size:.85em}
.ctx{font-family:ui-monospace,monospace;white-space:pre;margin:.15em 0;padding:.1em .3em;background:#fafafa;
 overflow-x:auto}
.ctx span{border-radius:2px} .ctx .c{outline:1px solid #c00}
.v{display:inline-block;width:5em;color:#666;text-align:right;margin-right:.6em}
table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right}
"""


def neuron_browser_html(neurons: list[dict], title: str = "BDH neurons", summary: dict | None = None) -> str:
    """A self-contained HTML page (inline CSS, no scripts or external resources).

    neurons: [{"name", "layer", "head", "index", "firing_rate", "contexts": top_contexts(...)}].
    Each byte's background shows the neuron's activation there (relative to its maximum).
    """
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if summary:
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items()
        )
        parts.append(f"<table>{rows}</table>")
    parts.append(
        "<p class='meta'>Each line is a byte window ending a few bytes after a position where the "
        "neuron fires strongly (outlined); shading = the neuron's activation on each byte "
        "relative to its largest value. \u21b5 = newline.</p>"
    )
    for nrn in neurons:
        ctxs = nrn.get("contexts", [])
        vmax = max([c["value"] for c in ctxs] + [1e-12])
        parts.append(
            f"<h2 id='{html.escape(str(nrn['name']))}'>{html.escape(str(nrn['name']))}</h2>"
            f"<div class='meta'>layer {nrn['layer']}, head {nrn['head']}, neuron {nrn['index']}, "
            f"firing rate {100 * nrn['firing_rate']:.2f}%"
            + (f", {html.escape(str(nrn['note']))}" if nrn.get("note") else "")
            + "</div>"
        )
        if not ctxs:
            parts.append("<div class='meta'>never fires on this text</div>")
        for c in ctxs:
            spans = []
            for q, (ch, a) in enumerate(c["window"]):
                alpha = min(1.0, max(0.0, a / vmax))
                cls = " class='c'" if q == c["center"] else ""
                style = f"background:rgba(255,140,0,{alpha:.2f})"
                spans.append(f"<span{cls} style='{style}'>{html.escape(ch)}</span>")
            parts.append(f"<div class='ctx'><span class='v'>{c['value']:.3g}</span>{''.join(spans)}</div>")
    parts.append("</body></html>\n")
    return "".join(parts)


def choose_neurons(act: torch.Tensor, count: int, min_rate: float = 0.002, max_rate: float = 0.2) -> list[int]:
    """Neurons worth reading: firing rate in [min_rate, max_rate], largest peak activation first.

    act (T, n) -> up to ``count`` global neuron indices.
    """
    rate = (act != 0).double().mean(0)
    peak = act.max(0).values.double()
    ok = (rate >= min_rate) & (rate <= max_rate)
    score = torch.where(ok, peak, torch.full_like(peak, -1.0))
    idx = torch.argsort(score, descending=True)[:count]
    return [int(i) for i in idx if score[i] > 0]


# ---------------------------------------------------------------------------------------------
# repeated vs fresh input (the paper's Fig. 14 experiment, on real text)


@torch.no_grad()
def repetition_density(model, pattern: np.ndarray | bytes, repeats: int = 4) -> dict:
    """Feed ``pattern`` ``repeats`` times in a row; density of x and y and the loss per repetition.

    The first pass is fresh input; later passes are predictable by copying from context (the
    loss shows how predictable). The paper (Fig. 14) reports lower density on repetition.
    Returns {"x": [L][R], "y": [L][R], "loss": [R], "x_per_position": [L][R*P]}.
    """
    pat = (
        np.frombuffer(bytes(pattern), dtype=np.uint8)
        if isinstance(pattern, (bytes, bytearray))
        else np.asarray(pattern, dtype=np.uint8)
    )
    P = len(pat)
    if P < 2 or repeats < 2:
        raise ValueError(f"need a pattern of at least 2 bytes and at least 2 repeats, got {P} and {repeats}")
    dev = next(model.parameters()).device
    idx = torch.from_numpy(np.tile(pat, repeats).astype(np.int64))[None].to(dev)
    model.eval()
    logits, trace = model.forward_trace(idx)
    ce = torch.nn.functional.cross_entropy(logits[0, :-1].float(), idx[0, 1:], reduction="none")  # (RP-1,)
    ce = torch.cat([ce, torch.full((1,), float("nan"), device=ce.device)]).reshape(repeats, P)
    out: dict[str, list] = {"x": [], "y": [], "x_per_position": [], "y_per_position": []}
    for layer in trace:
        for key in ("x", "y"):
            a = layer[key][0]  # (H, T, N)
            per_pos = density(a, dim=(0, 2))  # (T,)
            out[f"{key}_per_position"].append(per_pos.tolist())
            out[key].append(per_pos.reshape(repeats, P).mean(1).tolist())
    out["loss"] = [float(torch.nanmean(ce[r])) for r in range(repeats)]
    out["period"], out["repeats"] = P, repeats
    return out


PHASE_NAMES = {0: "prefix", 1: "memorise", 2: "repeat"}  # engramlab.data.tasks PREFIX, MEMORISE, REPEAT


def phase_density_from_trace(
    trace: list[dict[str, torch.Tensor]], phase: torch.Tensor, rel_threshold: float = REL_THRESHOLD
) -> dict:
    """Layer-wise density of x and y over the positions of each phase.

    trace: ``forward_trace``'s list (x, y of shape (B, H, T, N)); phase (B, T) ints (the task's
    PREFIX / MEMORISE / REPEAT). Returns {phase name: {"x": [L], "y": [L], "x_above": [L],
    "y_above": [L], "positions": count}} for the phases present: exact non-zeros and entries above
    ``rel_threshold`` of the layer's maximum (over the whole batch), averaged over the positions.
    """
    phase = torch.as_tensor(phase)
    out: dict = {}
    for code in sorted(int(c) for c in phase.unique()):
        sel = phase == code  # (B, T)
        name = PHASE_NAMES.get(code, str(code))
        rec: dict = {"x": [], "y": [], "x_above": [], "y_above": [], "positions": int(sel.sum())}
        for layer in trace:
            for key in ("x", "y"):
                a = layer[key]
                if a.dim() != 4 or a.shape[0] != phase.shape[0] or a.shape[2] != phase.shape[1]:
                    raise ValueError(f"trace {key} {tuple(a.shape)} does not match phase {tuple(phase.shape)}")
                nz = (a != 0).double().mean(dim=(1, 3))  # (B, T)
                above = (a.abs() > rel_threshold * a.abs().max()).double().mean(dim=(1, 3))
                rec[key].append(float(nz[sel].mean()))
                rec[f"{key}_above"].append(float(above[sel].mean()))
        out[name] = rec
    return out


@torch.no_grad()
def phase_density(model, batch, rel_threshold: float = REL_THRESHOLD) -> dict:
    """Density while memorising vs while repeating (paper Fig. 14) on a ``repeated_pattern_batch``.

    Returns ``phase_density_from_trace``'s dict plus "loss" and "accuracy" per phase (of the
    prediction of each position's token from the tokens before it; the first position has none).
    """
    tokens, phase = batch.tokens, batch.phase
    dev = next(model.parameters()).device
    model.eval()
    logits, trace = model.forward_trace(tokens.to(dev))
    out = phase_density_from_trace(trace, phase.to(dev), rel_threshold)
    ce = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten().to(dev), reduction="none"
    ).view(tokens.shape[0], -1)
    hit = (logits[:, :-1].argmax(-1) == tokens[:, 1:].to(dev)).double()
    target_phase = phase[:, 1:].to(dev)
    for code, name in PHASE_NAMES.items():
        sel = target_phase == code
        if name in out and bool(sel.any()):
            out[name]["loss"] = float(ce[sel].mean())
            out[name]["accuracy"] = float(hit[sel].mean())
    out["rel_threshold"] = float(rel_threshold)
    return out


# ---------------------------------------------------------------------------------------------
# the `engramlab bdh inspect` pipeline


def _plot_density(dens: dict, path) -> None:
    import matplotlib.pyplot as plt

    L = len(dens["x"])
    fig, ax = plt.subplots(figsize=(6, 3.4))
    xs = np.arange(L)
    ax.bar(xs - 0.2, [100 * v for v in dens["x"]], 0.4, label="x (sparse positive)")
    ax.bar(xs + 0.2, [100 * v for v in dens["y"]], 0.4, label="y (gated)")
    for l in range(L):
        ax.scatter(
            [l - 0.2] * len(dens["x_per_head"][l]), [100 * v for v in dens["x_per_head"][l]], s=10, c="k", zorder=3
        )
        ax.scatter(
            [l + 0.2] * len(dens["y_per_head"][l]), [100 * v for v in dens["y_per_head"][l]], s=10, c="k", zorder=3
        )
    ax.axhline(5.0, ls="--", c="gray", lw=1, label="paper: ~5%")
    ax.set_xticks(xs, [f"layer {l}" for l in range(L)])
    ax.set_ylabel("non-zero entries (%)")
    ax.set_title("Activation density per layer (dots: heads)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _plot_repetition(rep: dict, path) -> None:
    import matplotlib.pyplot as plt

    P, R = rep["period"], rep["repeats"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2.2, 1]})
    w = max(1, P // 16)
    kern = np.ones(w) / w
    for l, curve in enumerate(rep["x_per_position"]):
        sm = np.convolve(100 * np.asarray(curve), kern, mode="valid")  # no edge effects
        a1.plot(np.arange(len(sm)) + (w - 1) / 2, sm, lw=1, label=f"layer {l}")
    for r in range(1, R):
        a1.axvline(r * P, c="gray", lw=0.8, ls=":")
    a1.set_xlabel(f"position (pattern of {P} bytes repeated {R} times)")
    a1.set_ylabel(f"x density (%), {w}-byte mean")
    a1.legend(fontsize=7)
    reps = np.arange(1, R + 1)
    for l, d in enumerate(rep["x"]):
        a2.plot(reps, 100 * np.asarray(d), marker="o", label=f"x, layer {l}")
    a2.set_xlabel("repetition")
    a2.set_ylabel("x density (%)")
    ax3 = a2.twinx()
    ax3.plot(reps, rep["loss"], c="k", ls="--", marker="s", label="loss")
    ax3.set_ylabel("loss (nats/byte), dashed")
    a2.set_xticks(reps)
    a2.legend(fontsize=7)
    fig.suptitle("Fresh vs repeated input (paper Fig. 14)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _plot_ccdf(graphs: dict, path) -> None:
    import matplotlib.pyplot as plt

    from engramlab.bdh.graph import ccdf

    heads = graphs["G_x"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, kind in zip(axes, ("out", "in")):
        for h, rep in enumerate(heads):
            k, p = ccdf(getattr(rep["graph"], f"{kind}_degree"))
            ax.loglog(k, p, lw=1.2, label=f"G_x head {h}")
        k, p = ccdf(getattr(heads[0]["random_low_rank_graph"], f"{kind}_degree"))
        ax.loglog(k, p, c="gray", ls="--", lw=1, label="random low-rank (head 0 shape)")
        g0 = heads[0]["graph"]
        lam = g0.n_edges / g0.n_nodes
        from scipy import stats as _st

        ks = np.arange(1, max(2, int(lam * 4)))
        ax.loglog(ks, _st.poisson.sf(ks - 1, lam), c="k", ls=":", lw=1, label="Erdos-Renyi (Poisson)")
        ax.set_ylim(0.5 / g0.n_nodes, 1.5)  # below one node the Poisson curve is meaningless
        ax.set_xlabel(f"{kind}-degree k")
        ax.set_ylabel("P(degree >= k)")
        ax.legend(fontsize=7)
    fig.suptitle("Degree CCDF of the thresholded G_x = D_x E (per head)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _plot_modularity(graphs: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    labels, model, er, lr = [], [], [], []
    for name, heads in graphs.items():
        for h, rep in enumerate(heads):
            labels.append(f"{name} h{h}")
            model.append(rep["modularity"])
            er.append(np.mean(rep["modularity_erdos_renyi"]))
            lr.append(np.mean(rep["modularity_random_low_rank"]))
    xs = np.arange(len(labels))
    ax.bar(xs - 0.27, model, 0.27, label="trained model")
    ax.bar(xs, er, 0.27, label="Erdos-Renyi, same edges")
    ax.bar(xs + 0.27, lr, 0.27, label="random low-rank, same shape")
    ax.set_xticks(xs, labels, rotation=45, fontsize=8)
    ax.set_ylabel("Newman modularity Q (Louvain)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _plot_synapses(traj: list[dict], path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for t in traj:
        ax.plot(t["sigma"], lw=1, label=f"layer {t['layer']}: y{t['pre']} -> x{t['post']}")
    ax.set_xlabel("token t")
    ax.set_ylabel("sigma_t(i, j)  (Eq. 16)")
    ax.set_title("The strongest synapses at the end of the text, over the text", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _jsonable(obj):
    """``obj`` without its networkx graphs, as plain JSON values (``engramlab.io.to_jsonable``)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items() if k not in ("graph", "random_low_rank_graph")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return to_jsonable(obj)


def inspect_model(
    model,
    tokens: bytes,
    out_dir,
    *,
    neurons_per_layer: int = 6,
    contexts: int = 8,
    top_k: int = 20,
    edges_per_neuron: int = 8,
    graph_seeds: tuple[int, ...] = (0, 1),
    repeat_period: int = 128,
    repeats: int = 4,
    title: str = "BDH",
    neurons: list[tuple[int, int, int]] | None = None,
    synapses: list[tuple[int, int, int]] | None = None,
    progress: bool = True,
) -> dict:
    """Run every analysis on ``tokens`` and write inspect.json, PNG figures and neurons.html.

    neurons: extra (layer, head, k) neurons for the browser; synapses: extra (layer l, i, j)
    pairs (global neuron indices, y of layer l-1 -> x of layer l) whose Eq. 16 trajectory over
    the text is recorded, besides the strongest synapse of every layer.
    """
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    from tqdm import tqdm

    from engramlab.bdh.graph import graph_report, head_factors

    if len(tokens) < 2:
        raise ValueError(f"the text has {len(tokens)} bytes; need at least 2")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    L, H, N = cfg.n_layer, cfg.n_head, cfg.n_neurons_per_head
    for lay, h, k in neurons or []:
        if not (0 <= lay < L and 0 <= h < H and 0 <= k < N):
            raise ValueError(f"neuron (layer {lay}, head {h}, k {k}) is outside the model's {L} x {H} x {N}")
    for lay, i, j in synapses or []:
        if not (1 <= lay < L and 0 <= i < H * N and 0 <= j < H * N):
            raise ValueError(f"synapse (layer {lay}, {i}, {j}): need 1 <= layer < {L} and neurons in [0, {H * N})")
    model.eval()
    steps = tqdm(total=5, desc="inspect", disable=not progress)
    tok = np.frombuffer(bytes(tokens), dtype=np.uint8)
    dev = next(model.parameters()).device
    idx = torch.from_numpy(tok.astype(np.int64))[None].to(dev)
    with torch.no_grad():
        logits, trace = model.forward_trace(idx)
        loss = float(torch.nn.functional.cross_entropy(logits[0, :-1].float(), idx[0, 1:]))
    dens = trace_density(trace)
    rates = [firing_rates(layer["x"]) for layer in trace]
    result: dict = {
        "model": {
            "n_layer": L,
            "n_head": H,
            "n_embd": cfg.n_embd,
            "n_neurons_per_head": N,
            "n_neurons": cfg.n_neurons,
            "pos": cfg.pos,
            "variant": cfg.variant,
        },
        "text_bytes": int(len(tok)),
        "loss_on_text": loss,
        "density": dens,
        "firing_rate_quantiles_x": [
            {q: float(torch.quantile(r.double(), float(q))) for q in ("0.1", "0.5", "0.9", "0.99")}
            | {"never_fire": float((r == 0).double().mean())}
            for r in rates
        ],
    }
    steps.update()
    # neuron browser
    chosen = []
    for l, layer in enumerate(trace):
        act = flat_neurons(layer["x"]).float().cpu()
        picks = [h * N + k for lay, h, k in neurons or [] if lay == l]
        picks += [g for g in choose_neurons(act, neurons_per_layer) if g not in picks]
        for g in picks:
            chosen.append(
                {
                    "name": f"L{l}-h{g // N}-n{g % N}",
                    "layer": l,
                    "head": g // N,
                    "index": g % N,
                    "firing_rate": float(rates[l][g]),
                    "contexts": top_contexts(tok, act[:, g].numpy(), k=contexts),
                }
            )
    summary = {"text bytes": len(tok), "layers": L, "heads": H, "neurons per head": N}
    page = neuron_browser_html(chosen, title=f"{title}: neurons (x) that fire most", summary=summary)
    atomic_write_text(out / "neurons.html", page)
    result["neuron_browser"] = [{k: v for k, v in n.items() if k != "contexts"} for n in chosen]
    steps.update()
    # synapses
    syn, traj = [], []
    for l in range(1, L):
        y_prev = flat_neurons(trace[l - 1]["y"]).double().cpu()
        x = flat_neurons(trace[l]["x"]).double().cpu()
        U = position_operator(model, trace[l]["v"][0].cpu() if cfg.variant == "prime" else None)
        top = top_synapses(y_prev, x, U, k=top_k, head_size=N)
        syn.append(
            {
                "layer": l,
                "pre_layer": l - 1,
                "pre": top.pre.tolist(),
                "post": top.post.tolist(),
                "value": top.value.tolist(),
            }
        )
        pairs = [(int(top.pre[0]), int(top.post[0]))] if len(top.value) else []
        pairs += [(i, j) for lay, i, j in synapses or [] if lay == l]
        if pairs:
            sig = synapse_trajectory(y_prev, x, torch.tensor(pairs), U)
            for p, (i, j) in enumerate(pairs):
                traj.append({"layer": l, "pre": i, "post": j, "sigma": sig[:, p].tolist()})
    result["top_synapses_within_head"] = syn
    result["synapse_trajectories"] = [
        {k: v for k, v in t.items() if k != "sigma"} | {"final": t["sigma"][-1]} for t in traj
    ]
    if traj:
        _plot_synapses(traj, out / "synapses.png")
    steps.update()
    # repetition
    P = min(repeat_period, len(tok))
    if P >= 2:
        rep = repetition_density(model, tok[:P], repeats)
        result["repetition"] = {k: v for k, v in rep.items() if not k.endswith("per_position")}
        _plot_repetition(rep, out / "repetition.png")
    steps.update()
    # graphs
    graphs: dict[str, list] = {"G_x": [], "G_y": []}
    with torch.no_grad():
        for name, dec in (("G_x", model.decoder_x), ("G_y", model.decoder_y)):
            for h in range(H):
                D, E = head_factors(dec.detach().float().cpu(), model.encoder_E.detach().float().cpu(), h)
                graphs[name].append(graph_report(D, E, n_edges=edges_per_neuron * N, seeds=graph_seeds))
    result["graphs"] = {k: _jsonable(v) for k, v in graphs.items()}
    result["graph_settings"] = {
        "edges_per_neuron": edges_per_neuron,
        "seeds": list(graph_seeds),
        "scope": "per head: the N x N diagonal block D_h E_h",
    }
    _plot_ccdf(graphs, out / "degree_ccdf.png")
    _plot_modularity(graphs, out / "modularity.png")
    _plot_density(dens, out / "density.png")
    steps.update()
    steps.close()
    result = _jsonable(result)
    write_json(out / "inspect.json", result, indent=1)
    return result
