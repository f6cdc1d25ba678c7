"""How well an RBM models its data: exact and AIS log partition functions, log-likelihood, pseudo-likelihood.

p(v) = exp(-F(v)) / Z needs the partition function Z = Σ_v exp(-F(v)), a sum over 2^V visible states.
- :func:`log_partition_exact` enumerates the smaller layer (feasible up to 24 units), in float64.
- :func:`ais_log_partition` estimates log Z by annealed importance sampling from a base-rate model
  (Salakhutdinov & Murray, On the Quantitative Analysis of Deep Belief Networks, ICML 2008).
- :func:`pseudo_log_likelihood` needs no Z: Σ_i log p(v_i | v_-i), each term a difference of two free
  energies (Besag 1975); scikit-learn's ``BernoulliRBM.score_samples`` is its one-random-flip estimate.

Log-likelihoods are computed in float64: they are small differences of large sums (F(v) and log Z are
hundreds of nats on MNIST).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.rbm import RBM
from unitlens.models.sampling import sample_bernoulli

MAX_ENUMERATED_UNITS = 24
BETA_SCHEDULES = ("piecewise", "linear")
# Salakhutdinov & Murray (2008) used 500 temperatures in [0, 0.5), 4,000 in [0.5, 0.9) and 10,000 in
# [0.9, 1]: the path is spaced most finely where the target's sharp modes appear.
_PIECEWISE = ((0.0, 0.5, 500), (0.5, 0.9, 4_000), (0.9, 1.0, 10_000))
_ENUMERATION_CHUNK = 1 << 14  # configurations per float64 batch (with H up to ~1000: ~130 MB at most)
_PLL_MAX_WEIGHT = 60.0  # |W| beyond which float32's expm1(±W) could overflow: use the softplus path
_PLL_CHUNK_ELEMENTS = (
    1 << 20
)  # (rows x V x H) terms per chunk of the exact pseudo-likelihood: 4 MB in float32


def _parameters64(rbm: RBM) -> tuple[Tensor, Tensor, Tensor]:
    return rbm.weight.detach().double(), rbm.hidden_bias.detach().double(), rbm.visible_bias.detach().double()


def _binary_configurations(start: int, stop: int, n: int, like: Tensor) -> Tensor:
    """(stop - start, n) rows: the binary expansions of the integers start..stop-1, in ``like``'s dtype."""
    codes = torch.arange(start, stop, device=like.device)
    bits = torch.arange(n, device=like.device)
    return ((codes[:, None] >> bits) & 1).to(like.dtype)


def _free_energy64(rbm: RBM, v: Tensor) -> Tensor:
    """F(v) in float64; (B, V) -> (B,)."""
    W, b, c = _parameters64(rbm)
    v = v.detach().double()
    hidden_term = F.softplus(torch.addmm(b, v, W.t())).sum(dim=1)
    if rbm.visible == "bernoulli":
        return -(v @ c) - hidden_term
    return 0.5 * (v - c).square().sum(dim=1) - hidden_term


def log_partition_exact(rbm: RBM) -> float:
    """log Z by exhaustive enumeration of the smaller layer, in float64.

    Bernoulli visible units: enumerate v (log Z = logsumexp_v -F(v)) or, when there are fewer hidden units,
    h (log Z = logsumexp_h [b·h + Σ_i softplus(c_i + (Wᵀh)_i)]). Gaussian visible units: enumerate h, the
    visible integral being Gaussian: ∫ exp(-||v - c||²/2 + h·Wv) dv = (2π)^(V/2) exp(h·Wc + ||Wᵀh||²/2).

    Raises:
        UnitlensError: the layer to enumerate has more than 24 units.
    """
    W, b, c = _parameters64(rbm)
    H, V = W.shape
    enumerate_visible = rbm.visible == "bernoulli" and V <= H
    n = V if enumerate_visible else H
    if n > MAX_ENUMERATED_UNITS:
        layer = "visible" if enumerate_visible else "hidden"
        raise UnitlensError(
            f"exact log Z enumerates 2^{n} {layer} states; at most {MAX_ENUMERATED_UNITS} units are "
            "supported (use ais_log_partition)"
        )
    parts = []
    for start in range(0, 1 << n, _ENUMERATION_CHUNK):
        x = _binary_configurations(start, min(start + _ENUMERATION_CHUNK, 1 << n), n, W)
        if enumerate_visible:
            parts.append(-_free_energy64(rbm, x))
        elif rbm.visible == "bernoulli":
            parts.append(x @ b + F.softplus(torch.addmm(c, x, W)).sum(dim=1))
        else:
            top_down = x @ W  # (configurations, V): Wᵀh
            parts.append(x @ b + top_down @ c + 0.5 * top_down.square().sum(dim=1))
    log_z = float(torch.logsumexp(torch.cat(parts), dim=0))
    if rbm.visible == "gaussian":
        log_z += 0.5 * V * math.log(2 * math.pi)
    return log_z


def log_likelihood(rbm: RBM, v: Tensor, log_z: float) -> Tensor:
    """log p(v) = -F(v) - log Z of each row, in float64; (B, V) -> (B,).

    For Gaussian visible units this is a log density (unit-variance units, ``log_z`` from
    :func:`log_partition_exact`).
    """
    if v.ndim != 2 or v.shape[1] != rbm.n_visible:
        raise UnitlensError(
            f"log_likelihood expects inputs of shape (batch, {rbm.n_visible}), got {tuple(v.shape)}"
        )
    return -_free_energy64(rbm, v) - log_z


def _betas(n_betas: int, schedule: str, like: Tensor) -> Tensor:
    """The inverse temperatures β_0 = 0 < ... < β_K = 1 (n_betas values in all)."""
    if schedule == "linear" or n_betas <= 2 * len(_PIECEWISE):
        return torch.linspace(0.0, 1.0, n_betas, dtype=torch.float64, device=like.device)
    total = sum(count for _, _, count in _PIECEWISE)
    counts = [max(1, round((n_betas - 1) * count / total)) for _, _, count in _PIECEWISE]
    counts[-1] = max(1, n_betas - 1 - sum(counts[:-1]))
    pieces = [
        torch.linspace(lo, hi, count + 1, dtype=torch.float64, device=like.device)[:-1]
        for (lo, hi, _), count in zip(_PIECEWISE, counts, strict=True)
    ]
    return torch.cat([*pieces, torch.ones(1, dtype=torch.float64, device=like.device)])


@torch.no_grad()
def ais_log_partition(
    rbm: RBM,
    *,
    n_chains: int = 100,
    n_betas: int = 10_000,
    generator: torch.Generator,
    base_visible_bias: Tensor | None = None,
    schedule: str = "piecewise",
) -> tuple[float, float]:
    """Annealed importance sampling estimate of log Z for a Bernoulli-visible RBM.

    The path runs from a base-rate model A (zero weights, zero hidden biases, visible biases b_A) at β = 0 to
    the RBM at β = 1 through the unnormalised marginals (Salakhutdinov & Murray 2008, section 4.1)

        log f_β(v) = (1 - β) b_A·v + β c·v + Σ_j softplus(β (b_j + W_j·v)),

    whose Gibbs transitions sample h_j ~ sigmoid(β (b_j + W_j·v)) and v_i ~ sigmoid((1 - β) b_A,i + β (c_i +
    (Wᵀh)_i)). Each chain starts from an exact sample of A (log Z_A = H log 2 + Σ_i softplus(b_A,i)) and
    accumulates log w = Σ_k [log f_βk(v_k) - log f_βk-1(v_k)]; then Z ≈ Z_A · mean(w). All chains run as one
    batch; the sampling runs in the RBM's dtype, the weights accumulate in float64.

    Args:
        rbm: a Bernoulli-visible RBM.
        n_chains: independent annealing runs.
        n_betas: inverse temperatures, both ends included (>= 2).
        generator: draws the base samples and every transition.
        base_visible_bias: (V,) biases b_A of the base-rate model, e.g. the logit of the training data's
            mean (the paper's choice, which makes A close to the data); None uses the RBM's own visible
            biases.
        schedule: ``"piecewise"`` spaces the temperatures like the paper (500 : 4,000 : 10,000 over [0, 0.5),
            [0.5, 0.9), [0.9, 1]), scaled to ``n_betas``; ``"linear"`` spaces them evenly.

    Returns:
        (log Z estimate, its standard error). The error is the delta-method standard error of
        log mean(w), std(w) / (mean(w) √n_chains); Salakhutdinov & Murray's bounds log(mean(w) ± 3 std(w)/√n)
        are about estimate ± 3 × error when the error is small. AIS tends to underestimate log Z when the
        path is too short (Jensen's inequality on log mean(w)): more temperatures tighten it.
    """
    if rbm.visible != "bernoulli":
        raise UnitlensError(
            "ais_log_partition needs Bernoulli visible units (log Z of a Gaussian RBM: enumerate h)"
        )
    if n_chains < 1 or n_betas < 2:
        raise UnitlensError(f"AIS needs n_chains >= 1 and n_betas >= 2, got {n_chains} and {n_betas}")
    if schedule not in BETA_SCHEDULES:
        raise UnitlensError(f"AIS schedule must be one of {BETA_SCHEDULES}, got {schedule!r}")
    W, b, c = rbm.weight.detach(), rbm.hidden_bias.detach(), rbm.visible_bias.detach()
    if base_visible_bias is None:
        base = c.clone()
    elif base_visible_bias.shape != c.shape:
        raise UnitlensError(
            f"base_visible_bias must have shape ({rbm.n_visible},), got {tuple(base_visible_bias.shape)}"
        )
    else:
        base = base_visible_bias.detach().to(c)
    betas = _betas(n_betas, schedule, c).tolist()
    H = rbm.n_hidden
    log_z_base = H * math.log(2.0) + float(F.softplus(base.double()).sum())
    bias_shift = (c - base).double()  # d log f_β / dβ, visible part: (c - b_A)·v

    v = W.new_empty(n_chains, rbm.n_visible)
    _sample_bernoulli_logits(v, base.expand(n_chains, -1), generator)
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=W.device)
    h = W.new_empty(n_chains, H)
    pre_h = W.new_empty(n_chains, H)
    pre_v = W.new_empty(n_chains, rbm.n_visible)
    for k in range(1, len(betas)):
        beta_prev, beta = betas[k - 1], betas[k]
        torch.addmm(b, v, W.t(), out=pre_h)  # b + Wv of the current state
        a = pre_h.double()
        log_w += (beta - beta_prev) * (v.double() @ bias_shift)
        log_w += (F.softplus(beta * a) - F.softplus(beta_prev * a)).sum(dim=1)
        if k + 1 == len(betas):
            break
        # Transition leaving p_β invariant: h | v, then v | h.
        _sample_bernoulli_logits(h, pre_h.mul_(beta), generator)
        torch.addmm(c, h, W, out=pre_v)
        pre_v.mul_(beta).add_(base, alpha=1.0 - beta)
        _sample_bernoulli_logits(v, pre_v, generator)

    # log mean(w) and its delta-method standard error, computed stably around the largest weight.
    shift = float(log_w.max())
    w = torch.exp(log_w - shift)
    mean = float(w.mean())
    std = float(w.std()) if n_chains > 1 else math.inf
    log_z = log_z_base + shift + math.log(mean)
    return log_z, std / (mean * math.sqrt(n_chains))


def _sample_bernoulli_logits(out: Tensor, logits: Tensor, generator: torch.Generator) -> None:
    """Fill ``out`` with {0, 1} samples of sigmoid(logits), with the package's one sampler."""
    sample_bernoulli(torch.sigmoid(logits), generator, out=out)


@torch.no_grad()
def pseudo_log_likelihood(rbm: RBM, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Pseudo-log-likelihood Σ_i log p(v_i | v_-i) of binary rows; (B, V) -> (B,), returned in float64.

    Flipping bit i (v -> ṽ, a change d_i = 1 - 2 v_i) gives log p(v_i | v_-i) = -softplus(F(v) - F(ṽ)), with

        F(v) - F(ṽ) = c_i d_i + Σ_j [softplus(a_j + δ_ij) - softplus(a_j)],     a = b + Wv, δ_ij = d_i W_ji,

    evaluated as that difference rather than as two large free energies. Each bracket is computed as
    log1p(p_j · expm1(δ_ij)) with p = sigmoid(a) where a_j <= 0, and as δ_ij + log1p(q_j · expm1(-δ_ij)) with
    q = sigmoid(-a) where a_j > 0: the probability factor is then at most 1/2, so nothing cancels, and
    expm1(±W) is computed once. One transcendental per (example, bit, hidden unit) instead of softplus's two
    makes it about 2.5x faster in float64; the work runs in the RBM's dtype (float32: about 1e-5 relative).
    Weights beyond ±60 (where float32's expm1 overflows) take a plain float64 softplus path.

    Args:
        rbm: a Bernoulli-visible RBM.
        v: (B, V) binary rows.
        generator: ``None`` computes the exact sum over all V bits (B·V·H terms, in chunks). A generator draws
            one random bit i per row and returns V · log p(v_i | v_-i), an unbiased one-flip estimate of the
            same sum: scikit-learn's ``BernoulliRBM.score_samples`` (B·H terms).
    """
    if rbm.visible != "bernoulli":
        raise UnitlensError("pseudo_log_likelihood needs Bernoulli visible units")
    if v.ndim != 2 or v.shape[1] != rbm.n_visible:
        raise UnitlensError(
            f"pseudo_log_likelihood expects inputs of shape (batch, {rbm.n_visible}), got {tuple(v.shape)}"
        )
    W, b, c = rbm.weight.detach(), rbm.hidden_bias.detach(), rbm.visible_bias.detach()
    n, V = v.shape
    index = None if generator is None else torch.randint(V, (n,), generator=generator, device=W.device)
    if float(W.abs().max()) > _PLL_MAX_WEIGHT:
        return _pseudo_log_likelihood_softplus(rbm, v, index)
    v = v.detach().to(W)
    a = torch.addmm(b, v, W.t())  # (B, H)
    on = (a > 0).to(W.dtype)  # s_j: the units computed in the q form
    r = torch.sigmoid(-a.abs())  # min(p, q) <= 1/2
    weight_t = W.t()
    up, down = torch.expm1(weight_t), torch.expm1(-weight_t)  # (V, H) expm1(±W_ji)
    flips = 1.0 - 2.0 * v  # (B, V) d_i
    # Σ_j s_j δ_ij = d_i (Wᵀs)_i: the linear part of the q form, one matrix product.
    linear = flips * (on @ W)  # (B, V)
    if index is not None:
        rows = torch.arange(n, device=W.device)
        # expm1 of ±W_ji: negative sign where bit and unit state differ (d_i (1 - 2 s_j) = -1).
        differ = v[rows, index][:, None] != on  # (B, H)
        x = torch.where(differ, down[index], up[index]).mul_(r).log1p_()
        delta = flips[rows, index] * c[index] + linear[rows, index] + x.sum(dim=1)
        return -V * F.softplus(delta.double())
    out = torch.empty(n, dtype=torch.float64, device=W.device)
    chunk = max(1, _PLL_CHUNK_ELEMENTS // (V * rbm.n_hidden))
    work = W.new_empty(min(chunk, n), V, rbm.n_hidden)  # reused, cache-sized
    differ = torch.empty(work.shape, dtype=torch.bool, device=W.device)
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        x, d = work[: v[sl].shape[0]], differ[: v[sl].shape[0]]
        torch.ne(v[sl, :, None], on[sl, None, :], out=d)
        # A select, not a blend: up + (down - up) would lose down = -1 + tiny next to up = e^W.
        torch.where(d, down, up, out=x).mul_(r[sl, None, :]).log1p_()  # (rows, V, H)
        delta = flips[sl] * c + linear[sl] + x.sum(dim=2)
        out[sl] = -F.softplus(delta.double()).sum(dim=1)
    return out


def _pseudo_log_likelihood_softplus(rbm: RBM, v: Tensor, index: Tensor | None) -> Tensor:
    """The same pseudo-likelihood with softplus differences in float64 (any weight magnitude)."""
    W, b, c = _parameters64(rbm)
    v = v.detach().double()
    a = torch.addmm(b, v, W.t())
    flips = 1.0 - 2.0 * v
    base = F.softplus(a).sum(dim=1)
    n, V = v.shape
    if index is not None:
        d = flips.gather(1, index[:, None])
        delta = d[:, 0] * c[index] + F.softplus(a + d * W.t()[index]).sum(dim=1) - base
        return -V * F.softplus(delta)
    out = torch.empty(n, dtype=torch.float64, device=v.device)
    chunk = max(1, _PLL_CHUNK_ELEMENTS // (V * rbm.n_hidden))
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        flipped = a[sl, None, :] + flips[sl, :, None] * W.t()[None, :, :]
        delta = flips[sl] * c + F.softplus(flipped).sum(dim=2) - base[sl, None]
        out[sl] = -F.softplus(delta).sum(dim=1)
    return out
