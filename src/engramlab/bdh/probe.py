"""Concept probe: synapses whose Eq. 16 state separates two sets of sentences (paper §6.3).

The paper (section 6.3, App. B.3; ../shared/papers/bdh.md §2.3) finds single synapses sigma(i, j)
that act as concept detectors ("currency synapse", "country synapse"): over 50 currency
sentences and 50 contrast sentences, one-sided Mann-Whitney U = 2368 of U_opt = 2500,
p < 1e-14, rank-biserial correlation 0.86.

``probe`` reproduces that test for any BDH model and any two sentence files:

1. every sentence is read from an empty state; for each layer l >= 1 its synaptic state after
   the sentence is sigma_l = sum_tau y_{tau,l-1} x_{tau,l}^T U^{T-tau} (Eq. 16), by default
   divided by the sentence's length in bytes (so long sentences do not win by length alone;
   ``per_byte=False`` gives the raw Eq. 16 value);
2. candidate synapses: the ``candidates`` largest differences of mean sigma (concept minus
   contrast), found by row blocks without storing any n x n matrix per sentence;
3. each candidate's per-sentence values are compared with a one-sided Mann-Whitney U test
   (concept > contrast, scipy), giving U, U_opt = n1 * n2, the p-value and the rank-biserial
   correlation r = 2U / (n1 n2) - 1.

Choosing the best of many synapses and testing it on the same sentences inflates the evidence
(the paper's test is post hoc in this way). So the sentences are split in two halves: synapses
are selected and ranked on one half and their statistics are also reported on the held-out
half; both numbers are given.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from engramlab.bdh.inspect import flat_neurons, position_operator, rotated_keys


def read_sentences(path: str | Path, min_count: int = 4) -> list[bytes]:
    """Non-empty lines of a UTF-8 text file, as bytes (one sentence per line)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"sentence file not found: {p}")
    lines = [ln.strip() for ln in p.read_bytes().splitlines()]
    lines = [ln for ln in lines if ln]
    if len(lines) < min_count:
        raise ValueError(f"{p} holds {len(lines)} non-empty lines; the probe needs at least {min_count} sentences")
    return lines


def word_swap_sentences(
    text: bytes, swaps: dict[str, str], count: int, min_bytes: int = 24, max_bytes: int = 96
) -> tuple[list[bytes], list[bytes]]:
    """Concept sentences and controls matched in length and spelling, from the lines of ``text``.

    A concept sentence is a line of ``min_bytes``..``max_bytes`` bytes holding exactly one of the
    words in ``swaps`` (whole word, any case, e.g. "king"); its control is the same line with that
    word replaced by its partner of the same length ("ring"), capitalisation kept. So each pair
    differs only in the letters that change the word, and the two sets have identical lengths.
    Lines are taken in order, without repeats, until ``count`` pairs are found.
    """
    import re

    if not isinstance(count, int) or isinstance(count, bool) or count < 4:
        raise ValueError(f"count must be an integer >= 4 (two sentences per half of the probe), got {count!r}")
    for a, b in swaps.items():
        if len(a) != len(b) or a == b:
            raise ValueError(f"swap {a!r} -> {b!r}: the control word must differ and have the same length")
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, swaps), key=len, reverse=True)) + r")\b", re.I)
    concept, control, seen = [], [], set()
    for raw in text.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not (min_bytes <= len(line.encode()) <= max_bytes) or line in seen:
            continue
        hits = pattern.findall(line)
        if len(hits) != 1:
            continue
        seen.add(line)
        word = hits[0]
        repl = swaps[word.lower()]
        if word.isupper():
            repl = repl.upper()
        elif word[0].isupper():
            repl = repl[0].upper() + repl[1:]
        concept.append(line.encode())
        control.append(pattern.sub(repl, line, count=1).encode())
        if len(concept) == count:
            break
    if len(concept) < count:
        raise ValueError(f"found {len(concept)} lines with exactly one of {sorted(swaps)}; asked for {count}")
    return concept, control


@torch.no_grad()
def sentence_synapse_factors(model, sentences: list[bytes], progress: bool = True) -> list[dict]:
    """Per layer l >= 1, the stacked factors of every sentence's sigma_l.

    Returns [{"layer": l, "Y": (sum T, n) y of layer l-1, "K": (sum T, n) rotated keys of layer l,
    "seg": (sum T,) sentence index}] so that sigma_l(sentence s) = Y[seg == s]^T K[seg == s].
    """
    L = model.config.n_layer
    if L < 2:
        raise ValueError("synapses pair y of layer l-1 with x of layer l: the model needs n_layer >= 2")
    model.eval()
    ys: dict[int, list] = {l: [] for l in range(1, L)}
    ks: dict[int, list] = {l: [] for l in range(1, L)}
    seg = []
    dev = next(model.parameters()).device
    for s, sent in enumerate(tqdm(sentences, desc="probe sentences", disable=not progress)):
        idx = torch.tensor([list(sent)], dtype=torch.long, device=dev)
        _, trace = model.forward_trace(idx)
        for l in range(1, L):
            y_prev = flat_neurons(trace[l - 1]["y"]).float().cpu()
            x = flat_neurons(trace[l]["x"]).double().cpu()
            U = position_operator(model, trace[l]["v"][0].cpu() if model.config.variant == "prime" else None)
            ys[l].append(y_prev)
            ks[l].append(rotated_keys(x, U).float())
        seg.append(torch.full((len(sent),), s, dtype=torch.long))
    seg_t = torch.cat(seg)
    return [{"layer": l, "Y": torch.cat(ys[l]), "K": torch.cat(ks[l]), "seg": seg_t} for l in range(1, L)]


def _top_difference(
    Y: torch.Tensor,
    K: torch.Tensor,
    w: torch.Tensor,
    k: int,
    block_rows: int = 512,
    w_pos: torch.Tensor | None = None,
):
    """Top-k entries of Y^T diag(w) K by row blocks -> (values, flat indices i * n + j).

    With ``w_pos``, only entries where Y^T diag(w_pos) K > 0 compete (synapses that are
    positive on average over the concept sentences).
    """
    n = K.shape[1]
    Kw = K * w[:, None]
    Kp = None if w_pos is None else K * w_pos[:, None]
    active = (Y != 0).any(0).nonzero().squeeze(1)
    best_v = torch.empty(0)
    best_i = torch.empty(0, dtype=torch.long)
    for b0 in range(0, len(active), block_rows):
        rows = active[b0 : b0 + block_rows]
        S = Y[:, rows].T @ Kw  # (b, n)
        if Kp is not None:
            S = S.masked_fill((Y[:, rows].T @ Kp) <= 0, -math.inf)
        top = torch.topk(S.flatten(), min(k, S.numel()))
        keep = torch.isfinite(top.values)
        best_v = torch.cat([best_v, top.values[keep]])
        best_i = torch.cat([best_i, (rows[top.indices // n] * n + top.indices % n)[keep]])
        if len(best_v) > k:
            t2 = torch.topk(best_v, k)
            best_v, best_i = t2.values, best_i[t2.indices]
    return best_v, best_i


def _per_sentence(Y, K, seg, n_sent, pre, post, lengths):
    """(S, P) values sigma(pre, post) per sentence (divided by lengths if given)."""
    prod = Y[:, pre].double() * K[:, post].double()  # (sum T, P)
    out = torch.zeros(n_sent, len(pre), dtype=torch.float64).index_add_(0, seg, prod)
    return out if lengths is None else out / lengths[:, None]


def mann_whitney(concept: np.ndarray, contrast: np.ndarray) -> dict:
    """One-sided Mann-Whitney U (concept > contrast): U, U_opt, p-value, rank-biserial r."""
    res = stats.mannwhitneyu(concept, contrast, alternative="greater")
    n1, n2 = len(concept), len(contrast)
    U = float(res.statistic)
    return {"U": U, "U_opt": n1 * n2, "p_value": float(res.pvalue), "rank_biserial": 2 * U / (n1 * n2) - 1}


def probe(
    model,
    concept: list[bytes],
    contrast: list[bytes],
    candidates: int = 200,
    report: int = 10,
    per_byte: bool = True,
    positive: bool = True,
    progress: bool = True,
) -> dict:
    """Rank synapses by how well their Eq. 16 state separates concept from contrast sentences.

    With ``positive`` (default) only synapses whose mean sigma over the selection-half concept
    sentences is positive are candidates: a synapse that strengthens on the concept, as in the
    paper (RoPE makes many entries of sigma negative; those can separate the sets too, by being
    less negative, and are allowed with positive=False).
    """
    if len(concept) < 4 or len(contrast) < 4:
        raise ValueError(
            f"need at least 4 concept and 4 contrast sentences (two per half), got {len(concept)} and {len(contrast)}"
        )
    sents = list(concept) + list(contrast)
    is_concept = torch.tensor([True] * len(concept) + [False] * len(contrast))
    half = torch.tensor([i % 2 for i in range(len(concept))] + [i % 2 for i in range(len(contrast))])
    lengths = torch.tensor([len(s) for s in sents], dtype=torch.float64)
    factors = sentence_synapse_factors(model, sents, progress=progress)
    N = model.config.n_neurons_per_head
    rows = []
    for f in factors:
        Y, K, seg = f["Y"], f["K"], f["seg"]
        # weights: +1/|concept_sel| on selection-half concept sentences, -1/|contrast_sel| on contrast ones
        sel = half == 0
        wc = (is_concept & sel).float() / float((is_concept & sel).sum())
        wx = (~is_concept & sel).float() / float((~is_concept & sel).sum())
        per_sent_w = wc - wx
        if per_byte:
            per_sent_w = per_sent_w / lengths.float()
        w_pos = None
        if positive:
            w_pos = wc / lengths.float() if per_byte else wc
            w_pos = w_pos[seg]
        _, flat = _top_difference(Y, K, per_sent_w[seg], candidates, w_pos=w_pos)
        n = K.shape[1]
        pre, post = flat // n, flat % n
        vals = _per_sentence(Y, K, seg, len(sents), pre, post, lengths if per_byte else None).numpy()
        for p in range(len(pre)):
            v = vals[:, p]
            c, x = is_concept.numpy(), half.numpy()
            rows.append(
                {
                    "layer": f["layer"],
                    "pre": int(pre[p]),
                    "pre_head": int(pre[p]) // N,
                    "pre_layer": f["layer"] - 1,
                    "post": int(post[p]),
                    "post_head": int(post[p]) // N,
                    "selection": mann_whitney(v[c & (x == 0)], v[~c & (x == 0)]),
                    "held_out": mann_whitney(v[c & (x == 1)], v[~c & (x == 1)]),
                    "all": mann_whitney(v[c], v[~c]),
                    "mean_concept": float(v[c].mean()),
                    "mean_contrast": float(v[~c].mean()),
                }
            )
    rows.sort(key=lambda r: (-r["selection"]["U"], -(r["mean_concept"] - r["mean_contrast"])))
    best = rows[:report]
    n_tested = len(rows)
    return {
        "n_concept": len(concept),
        "n_contrast": len(contrast),
        "mean_bytes_concept": float(np.mean([len(s) for s in concept])),
        "mean_bytes_contrast": float(np.mean([len(s) for s in contrast])),
        "per_byte": per_byte,
        "positive_only": positive,
        "candidates_per_layer": candidates,
        "synapses_tested": n_tested,
        "bonferroni_note": f"selection-half p-values are post hoc over {n_tested} tested synapses; "
        f"multiply by {n_tested} for a Bonferroni bound, or read the held-out half",
        "best": best,
        "best_held_out_rank_biserial": max((r["held_out"]["rank_biserial"] for r in best), default=math.nan),
    }
