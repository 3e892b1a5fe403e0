"""Conjugate draws for covariance blocks (inverse Wishart; a single variance is the
1 x 1 case, IW(s, df) = IG(df / 2, s / 2)).

Mplus's conventions: IG(shape, scale) has density proportional to
``v^-(shape+1) exp(-scale / v)``; IW(S, df) over p x p matrices has density proportional
to ``|Sigma|^-(df+p+1)/2 exp(-tr(S Sigma^-1)/2)``. The defaults IG(-1, 0) and
IW(0, -p-1) are flat; posteriors are proper once enough units are observed.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from jaxsem.kernels import linalg
from jaxsem.kernels.normal import GOLDEN_GAMMA, open_uniform, splitmix64


def inverse_wishart_from_variates(scale: jax.Array, chi2: jax.Array,
                                  normals: jax.Array) -> jax.Array:
    """IW(scale, df) from pre-drawn variates: chi2 (p,) with chi2[i] ~ chi2(df - i) and
    normals (p, p) standard normal (only the strict lower triangle is used).

    If W ~ Wishart(df, scale^-1) then W^-1 ~ IW(scale, df); with scale = C C' and
    W = C^-T A A' C^-1 (A lower triangular, A_ii^2 ~ chi2(df - i), A_ij ~ N(0, 1)),
    W^-1 = (C A^-T)(C A^-T)'.
    """
    p = scale.shape[0]
    bartlett = jnp.tril(normals, -1) + jnp.diag(jnp.sqrt(chi2))
    chol = linalg.cholesky(scale)
    factor = chol @ linalg.solve_lower(bartlett, jnp.eye(p, dtype=scale.dtype)).T
    return factor @ factor.T


def inverse_wishart_entries(scale, chi2, normals) -> list:
    """:func:`inverse_wishart_from_variates` entry by entry (kernels.linalg's entries
    form): ``scale[i][j]`` (j <= i), ``chi2[i]``, ``normals[i][j]`` (j < i) arrays of
    one batch shape; returns the draw's entries ``draw[i][j]`` for all i, j."""
    p = len(chi2)
    chol, _ = linalg.cholesky_entries(scale)
    bartlett = [[normals[i][j] for j in range(i)] + [jnp.sqrt(chi2[i])] for i in range(p)]
    inverse_bartlett = linalg.triangular_inverse_entries(
        bartlett, [jax.lax.rsqrt(chi2[i]) for i in range(p)])
    factor = [[sum(chol[i][k] * inverse_bartlett[j][k] for k in range(min(i, j) + 1))
               for j in range(p)] for i in range(p)]                      # C A^-T
    return [[sum(factor[i][k] * factor[j][k] for k in range(p)) for j in range(p)]
            for i in range(p)]


MAX_REDRAW_ROUNDS = 1000


def chi_square(df: jax.Array, normals: jax.Array, seed: jax.Array) -> jax.Array:
    """Chi-square variates, (..., k), with degrees of freedom ``df`` (k,), from
    ``normals`` (..., k, 3) standard normals drawn with the sweep's other normals.

    Marsaglia & Tsang's (2000) gamma method, chi2(df) = 2 Gamma(df / 2): the normals
    give the proposal, the acceptance uniform Phi(z) and, for df < 2, the boost uniform
    (Gamma(a) = Gamma(a + 1) U^(1/a)). Each proposal is accepted with probability above
    0.95; the rejected ones are redrawn from SplitMix64 bits of ``seed`` (uint32 key
    data) and the variate's position until every one is accepted (MAX_REDRAW_ROUNDS is
    never reached in practice). Unlike jax.random.gamma (a threefry loop per variate,
    about 0.6 s to compile), this adds almost nothing to compile. Degrees of freedom
    that are not positive give NaN.
    """
    shape = df / 2.0
    valid = shape > 0
    boosted = shape < 1.0
    a = jnp.where(valid, jnp.where(boosted, shape + 1.0, shape), 1.0)
    d = a - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)

    def propose(z, log_u):
        v = (1.0 + c * z) ** 3
        positive = v > 0
        log_v = jnp.log(jnp.where(positive, v, 1.0))
        return d * v, positive & (log_u < 0.5 * z * z + d - d * v + d * log_v)

    value, accepted = propose(normals[..., 0], jnp.log(ndtr(normals[..., 1])))
    accepted = accepted | ~valid
    data = seed.astype(jnp.uint64)
    base = (data[0] << 32) | data[1]
    position = jnp.arange(value.size, dtype=jnp.uint64).reshape(value.shape)

    def redraw(state):
        value, accepted, round_ = state
        step = jnp.uint64(3) * round_.astype(jnp.uint64)
        u = [open_uniform(splitmix64(
            base + (position + jnp.uint64(value.size) * (step + j)) * jnp.uint64(GOLDEN_GAMMA)))
            for j in (1, 2, 3)]
        z = jnp.sqrt(-2.0 * jnp.log(u[0])) * jnp.cos(2.0 * jnp.pi * u[1])
        new_value, new_accepted = propose(z, jnp.log(u[2]))
        take = ~accepted & new_accepted
        return jnp.where(take, new_value, value), accepted | new_accepted, round_ + 1

    value, _, _ = jax.lax.while_loop(
        lambda s: ~jnp.all(s[1]) & (s[2] < MAX_REDRAW_ROUNDS), redraw,
        (value, accepted, jnp.asarray(0, jnp.int32)))
    boost = jnp.where(boosted, ndtr(normals[..., 2]) ** (1.0 / jnp.where(valid, shape, 1.0)),
                      1.0)
    return jnp.where(valid, 2.0 * value * boost, jnp.nan)
