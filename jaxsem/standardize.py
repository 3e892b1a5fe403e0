"""Standardized parameters: Mplus's STDYX (lavaan's std.all), per level.

Each level is standardized by its own model-implied variances (a two-level variable's
within part by its within variance, its between part by its between variance) and the
sample variances of that level's covariates (within: over all observations; between:
over clusters; denominators n, as in ML). For a categorical variable the within
variance is that of its latent response, residual variance 1 included.

    loading f -> y, regression y on x:   b * sd(x or f) / sd(y)
    residual covariance a with b:          psi_ab / sqrt(psi_aa psi_bb)
    (residual) variance of y:              psi_yy / var(y)   (1 for exogenous variables)
    intercept / mean, threshold of y:      value / sd(y)

Random coefficients make the variances differ by cluster: refused, as Mplus does.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxsem.errors import ModelError
from jaxsem.kernels import linalg
from jaxsem.spec import ModelSpec


def covariate_covariances(layout, arrays) -> tuple[np.ndarray, ...]:
    """Per block, the sample covariance (n denominator) of its covariates, from the
    sampler's layout arrays: ``c`` (N, q) and ``w`` (J, q_b); models of two views: the
    arrays their layout's ``block_covariates`` names.
    Within covariates enter the within level as they are (not split into parts), so
    theirs is the covariance over all observations, as in Mplus and lavaan (tested
    against lavaan's std.all)."""
    if hasattr(layout, "block_covariates"):  # models of two views (bayes.views)
        per_block = layout.block_covariates(arrays)
    else:
        per_block = [arrays["c"], arrays["w"]] if layout.two_level else [arrays["c"]]
    out = []
    for values in per_block:
        centred = np.asarray(values) - np.asarray(values).mean(0)
        out.append(centred.T @ centred / len(centred))
    return tuple(out)


def standardized_values(spec: ModelSpec, x, covariances) -> jnp.ndarray:
    """(rows,) STDYX value of every ParTable row (NaN for random-coefficient rows);
    x (n_free,), covariances as from :func:`covariate_covariances`. Differentiable."""
    if spec.random_cells:
        raise ModelError("standardized estimates (STDYX) are not available for models "
                         "with random slopes: the variances differ by cluster (Mplus "
                         "does not give them either)")
    mats = spec.unpack(x)
    scales = []
    for bi, (m, cov) in enumerate(zip(mats, covariances)):
        # no LAPACK for acyclic paths: jaxlib 0.10's batched LU (vmapped over thousands
        # of draws) can deadlock on a 2-thread pool when two blocks' LUs run at once
        inv = linalg.inverse_identity_minus(m["beta"], spec.pattern(bi, "beta"))
        total = inv @ (m["psi"] + m["gamma"] @ jnp.asarray(cov) @ m["gamma"].T) @ inv.T
        scales.append((jnp.sqrt(jnp.diag(total)), jnp.sqrt(jnp.diag(jnp.asarray(cov)))))
    index = {b.name: i for i, b in enumerate(spec.blocks)}
    out = []
    for r in spec.partable.rows:
        if r.random:
            out.append(jnp.nan)
            continue
        bi = index[r.block]
        block, m, (sd, sd_cov) = spec.blocks[bi], mats[bi], scales[bi]
        var = {v: i for i, v in enumerate(block.variables)}
        if r.op == "=~":
            f, y = var[r.lhs], var[r.rhs]
            out.append(m["beta"][y, f] * sd[f] / sd[y])
        elif r.op == "~":
            y = var[r.lhs]
            if r.rhs in block.covariates:
                k = block.covariates.index(r.rhs)
                out.append(m["gamma"][y, k] * sd_cov[k] / sd[y])
            else:
                out.append(m["beta"][y, var[r.rhs]] * sd[var[r.rhs]] / sd[y])
        elif r.op == "~~":
            a, b = var[r.lhs], var[r.rhs]
            if a == b:
                out.append(m["psi"][a, a] / sd[a] ** 2)
            else:
                out.append(m["psi"][a, b] / jnp.sqrt(m["psi"][a, a] * m["psi"][b, b]))
        elif r.op == "~1":
            out.append(m["alpha"][var[r.lhs]] / sd[var[r.lhs]])
        elif r.op == "|":
            y = var[r.lhs]
            out.append(m["tau"][y, int(r.rhs[1:]) - 1] / sd[y])
        else:
            out.append(jnp.nan)
    return jnp.stack([jnp.asarray(v, dtype=jnp.float64) for v in out])
