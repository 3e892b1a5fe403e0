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

from jaxsem.kernels import linalg


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
