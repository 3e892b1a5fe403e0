"""Conjugate draws for variances (inverse gamma) and covariance blocks (inverse Wishart).

Mplus's conventions: IG(shape, scale) has density proportional to
``v^-(shape+1) exp(-scale / v)``; IW(S, df) over p x p matrices has density proportional
to ``|Sigma|^-(df+p+1)/2 exp(-tr(S Sigma^-1)/2)``. The defaults IG(-1, 0) and
IW(0, -p-1) are flat; posteriors are proper once enough units are observed.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular


def sample_inverse_gamma(key: jax.Array, shape: jax.Array, scale: jax.Array) -> jax.Array:
    """One draw from IG(shape, scale) (scalars)."""
    return scale / jax.random.gamma(key, shape)


def sample_inverse_wishart(key: jax.Array, scale: jax.Array, df: jax.Array) -> jax.Array:
    """One draw from IW(scale (p, p), df) by the Bartlett decomposition.

    If W ~ Wishart(df, scale^-1) then W^-1 ~ IW(scale, df); with scale = C C' and
    W = C^-T A A' C^-1 (A lower triangular, A_ii^2 ~ chi2(df - i), A_ij ~ N(0, 1)),
    W^-1 = (C A^-T)(C A^-T)'.
    """
    p = scale.shape[0]
    key_chi, key_normal = jax.random.split(key)
    chi2 = 2.0 * jax.random.gamma(key_chi, (df - jnp.arange(p)) / 2.0)
    lower = jnp.tril(jax.random.normal(key_normal, (p, p), scale.dtype), -1)
    bartlett = lower + jnp.diag(jnp.sqrt(chi2))
    chol = jnp.linalg.cholesky(scale)
    factor = chol @ solve_triangular(bartlett, jnp.eye(p, dtype=scale.dtype), lower=True).T
    return factor @ factor.T
