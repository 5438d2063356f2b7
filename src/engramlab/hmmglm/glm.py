"""GLM emissions: links, observation log-likelihoods and the batched state-wise drive (notes Sec. 1.1).

    f_{t,n}^{(s)} = link( b_n + sum_{n'} w_{s, n<-n'} c_{t,n'} )                      (GLM rate)
    log p(x_t | z_t = s) = sum_n log Poisson(x_{t,n}; f^{(s)}_{t,n})   or  log Bernoulli(...)

The drive for all states is one batched matmul: c (B, T, N) x W (S, N, N) -> (B, T, S, N).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LINKS = ("sigmoid", "softplus", "exp")
OBSERVATIONS = ("poisson", "bernoulli")
RATE_FLOOR = 1e-8  # the reference code's lower bound on rates (sigmoid link: (1 - 1e-8) sigmoid + 1e-8)


def drive(conv: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Pre-activation u[b, t, s, n] = bias[s, n] + sum_{n'} weight[s, n, n'] conv[b, t, n'].

    conv: (B, T, N_pre); weight: (S, N_post, N_pre); bias: (S, N_post) -> (B, T, S, N_post).
    """
    B, T, N = conv.shape
    S, Np, _ = weight.shape
    u = conv.reshape(B * T, N) @ weight.permute(2, 0, 1).reshape(N, S * Np)  # (B*T, S*N_post)
    return u.reshape(B, T, S, Np) + bias


def rate(u: torch.Tensor, link: str) -> torch.Tensor:
    """f = link(u). sigmoid is capped at 1 count/bin (the paper's choice)."""
    if link == "sigmoid":
        return torch.sigmoid(u) * (1 - RATE_FLOOR) + RATE_FLOOR
    if link == "softplus":
        return F.softplus(u) + RATE_FLOOR
    if link == "exp":
        return torch.exp(u)
    raise ValueError(f"link must be one of {LINKS}, got {link!r}")


def _log_rate(u: torch.Tensor, link: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(f, log f) computed stably."""
    if link == "sigmoid":
        f = torch.sigmoid(u)
        return f, F.logsigmoid(u)  # the 1e-8 floor is below float32 resolution of f here
    if link == "exp":
        return torch.exp(u), u
    f = rate(u, link)
    return f, torch.log(f)


def log_likelihood(
    x: torch.Tensor, u: torch.Tensor, link: str, observations: str, constant: bool = True
) -> torch.Tensor:
    """Element-wise log p(x | u) for counts x broadcast against pre-activations u.

    Poisson: x log f - f - log x!;  Bernoulli: x log f + (1 - x) log(1 - f) (f clamped below 1).
    ``constant=False`` drops the parameter-free term -log x! (used inside the M-step).
    """
    if observations == "poisson":
        f, logf = _log_rate(u, link)
        ll = x * logf - f
        if constant:
            ll = ll - torch.lgamma(x + 1)
        return ll
    if observations == "bernoulli":
        if link == "sigmoid":  # log sigma(u) and log(1 - sigma(u)) = log sigma(-u)
            return x * F.logsigmoid(u) + (1 - x) * F.logsigmoid(-u)
        f = rate(u, link).clamp(max=1 - 1e-6)
        return x * torch.log(f) + (1 - x) * torch.log1p(-f)
    raise ValueError(f"observations must be one of {OBSERVATIONS}, got {observations!r}")


def state_log_likelihood(
    x: torch.Tensor,
    conv: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    link: str,
    observations: str,
    constant: bool = True,
) -> torch.Tensor:
    """log p(x_t | z_t = s, history) summed over neurons: (B, T, N) -> (B, T, S)."""
    u = drive(conv, weight, bias)  # (B, T, S, N)
    return log_likelihood(x.unsqueeze(-2), u, link, observations, constant).sum(-1)


def state_log_likelihood_fast(
    x: torch.Tensor,
    conv: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    link: str,
    observations: str,
    constant: bool = True,
) -> torch.Tensor:
    """:func:`state_log_likelihood` without autograd, with fewer passes over the (B, T, S, N) drive.

    Poisson: sum_n x log f is a batched matrix-vector product and sum_n f is reduced from a tensor
    overwritten in place; the bias is added inside the matmul. Same numbers as :func:`state_log_likelihood`
    to rounding. Bernoulli and anything under autograd: the plain formula."""
    if observations != "poisson" or torch.is_grad_enabled():
        return state_log_likelihood(x, conv, weight, bias, link, observations, constant)
    B, T, N = conv.shape
    S = weight.shape[0]
    u = torch.addmm(bias.reshape(1, S * N), conv.reshape(B * T, N), weight.permute(2, 0, 1).reshape(N, S * N))
    u = u.view(B * T, S, N)
    xf = x.reshape(B * T, N, 1)
    if link == "sigmoid":
        logf = F.logsigmoid(u)
        f = torch.sigmoid(u, out=u)
    elif link == "exp":
        logf = u.clone()
        f = u.exp_()
    else:
        f = rate(u, link)
        logf = torch.log(f)
    ll = torch.bmm(logf, xf).squeeze(-1) - f.sum(-1)  # (B*T, S)
    if constant:
        ll = ll - torch.lgamma(x.reshape(B * T, N) + 1).sum(-1, keepdim=True)
    return ll.view(B, T, S)


def _weighted_dll_du_(x: torch.Tensor, u: torch.Tensor, g: torch.Tensor, link: str, observations: str):
    """g * dlog p(x | u)/du for x (n, 1, N), u (n, S, N), g (n, S, 1); may overwrite u (no autograd)."""
    if observations == "poisson" and link == "sigmoid":
        f = torch.sigmoid(u, out=u)
        G = x - f
        return G.mul_(f.neg_().add_(1)).mul_(g)  # (x - f)(1 - f) g
    if observations == "poisson" and link == "exp":
        f = u.exp_()
        return torch.sub(x, f, out=f).mul_(g)
    return dll_du(x, u, link, observations).mul_(g)


def sample_counts(f: torch.Tensor, observations: str, generator: torch.Generator | None = None):
    """Draw counts with mean f (Poisson) or success probability f (Bernoulli)."""
    if observations == "poisson":
        return torch.poisson(f, generator=generator)
    return torch.bernoulli(f.clamp(0, 1), generator=generator)


def dll_du(x: torch.Tensor, u: torch.Tensor, link: str, observations: str) -> torch.Tensor:
    """d log p(x | u) / du element-wise (closed forms; the 1e-8 rate floor is ignored).

    Poisson-sigmoid: (1 - f)(x - f); Poisson-exp: x - f; Poisson-softplus: (x / f - 1) sigma(u);
    Bernoulli-sigmoid: x - f; Bernoulli with softplus/exp: (x / f - (1 - x) / (1 - f)) f'(u).
    """
    if observations == "poisson":
        if link == "sigmoid":
            f = torch.sigmoid(u)
            return (1 - f) * (x - f)
        if link == "exp":
            return x - torch.exp(u)
        f = F.softplus(u) + RATE_FLOOR
        return (x / f - 1) * torch.sigmoid(u)
    if link == "sigmoid":
        return x - torch.sigmoid(u)
    f_raw = rate(u, link)
    f = f_raw.clamp(max=1 - 1e-6)
    df = torch.sigmoid(u) if link == "softplus" else torch.exp(u)
    return (x / f - (1 - x) / (1 - f)) * df * (f_raw < 1 - 1e-6)  # zero where the clamp is active


class ExpectedLogLik(torch.autograd.Function):
    """Q_emis = sum_{b,t,s} gamma[b,t,s] sum_n log p(x[b,t,n] | u[b,t,s,n]) with hand-written gradients.

    The (bins, S, N) tensors exist one chunk at a time and nothing of their size is kept for backward:
    forward accumulates dQ/dW = sum_t G_t c_t^T and dQ/db = sum_{t,s} G_t, G = gamma * dll/du, so memory
    stays O(chunk * S * N) whatever the number of bins (used for long recordings) and there is no
    autograd tape over the big tensors. The -log x! constant is left out.
    inputs: weight (S, N, N), bias (S, N) or (N,), x / conv (B, T, N), gamma (B, T, S).
    """

    @staticmethod
    def forward(ctx, weight, bias, x, conv, gamma, link: str, observations: str, chunk: int, value: bool):
        S, N, _ = weight.shape
        xf, cf, gf = x.reshape(-1, N), conv.reshape(-1, N), gamma.reshape(-1, S)
        bias_sn = bias.expand(S, N)
        gW = torch.zeros_like(weight)
        gb = torch.zeros(S, N, dtype=weight.dtype, device=weight.device)
        q = weight.new_zeros(())
        Wm = weight.permute(2, 0, 1).reshape(N, S * N)  # (N_pre, S*N_post)
        b_flat = bias_sn.reshape(1, S * N)
        gW_flat = gW.view(S * N, N)
        for i in range(0, xf.shape[0], chunk):
            c, xx, g = cf[i : i + chunk], xf[i : i + chunk, None, :], gf[i : i + chunk, :, None]
            u = torch.addmm(b_flat, c, Wm).view(-1, S, N)  # (n, S, N)
            if value:
                q = q + (g * log_likelihood(xx, u, link, observations, constant=False)).sum()
            G = _weighted_dll_du_(xx, u, g, link, observations)  # (n, S, N); u is overwritten
            gW_flat.addmm_(G.view(-1, S * N).T, c)
            gb += G.sum(0)
        ctx.save_for_backward(gW, gb.sum(0) if bias.dim() == 1 else gb)
        return q

    @staticmethod
    def backward(ctx, grad_q):
        gW, gb = ctx.saved_tensors
        return grad_q * gW, grad_q * gb, None, None, None, None, None, None, None


def expected_log_likelihood(
    weight, bias, x, conv, gamma, link: str, observations: str, chunk: int = 16384, value: bool = True
) -> torch.Tensor:
    """sum_{b,t,s} gamma_t(s) log p(x_t | z_t = s) (without -log x!), differentiable in weight and bias.

    ``value=False`` skips computing the value (returns 0.0) but keeps the exact gradients: the M-step
    only needs gradients, and the log-likelihood costs as much again as the gradient.
    """
    return ExpectedLogLik.apply(weight, bias, x, conv, gamma, link, observations, chunk, value)
