"""Marginal log-likelihood of a (two-level) SEM, from the same augmented model as the sampler.

The Bayes layout (jaxsem/bayes/layout.py) already writes the model as a complete-data
density per cluster ``f_j(u_j)`` of the cluster's stochastic between values ``u_j``
(between parts of within variables, random slopes), with within factors, between
factors and zero-variance between variables handled exactly. That density is quadratic
in ``u_j``, so the cluster's marginal likelihood is an exact Gaussian integral::

    log p(y_j) = f_j(u0) + 1/2 g' Q^-1 g - 1/2 log|Q| + nS/2 log(2 pi),
    g = grad f_j(u0),  Q = -hess f_j(u0)    (any u0; we take u0 = 0)

``g`` and ``Q`` come from the values of ``f_j`` at 0, at +-e_k and at e_k + e_l
(kernels.gaussian.quadratic_points): differences of a quadratic are exact, and this
keeps the program first-order (nested autodiff here made the ML Hessian a fourth
derivative and compiled for minutes).
Random slopes on observed within covariates get Mplus's TWOLEVEL RANDOM marginal this
way, and nothing is written twice: the sampler and ML evaluate the same ``f_j``.

Missing outcomes (FIML): the within density of a row is then the density of its
observed entries, ``N(y_o | mu_o, Sigma_oo)``, evaluated per missing-data pattern with
the masked inverse ``D (D Sigma D + I - D)^-1 D`` (D: the pattern's 0/1 diagonal).

Shapes: J clusters, N rows, p within observed parts, q within covariates, nS
stochastic between values per cluster, n_free free parameters.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxsem.bayes import density
from jaxsem.bayes.layout import Layout
from jaxsem.bayes.threelevel import VIEWS, ThreeLevelLayout
from jaxsem.bayes.views import split_arrays
from jaxsem.kernels import gaussian, linalg

LOG_2PI = density.LOG_2PI


def missing_patterns(observed: np.ndarray) -> tuple[tuple[tuple[int, ...], ...], np.ndarray]:
    """Distinct rows of the (N, p) observed mask (static, hashable) and each row's index
    into them (N,)."""
    masks, row_pattern = np.unique(observed.astype(np.int8), axis=0, return_inverse=True)
    return tuple(map(tuple, masks.tolist())), row_pattern.reshape(-1).astype(np.int32)


def _pattern_inverses(sigma: jax.Array, masks) -> tuple[jax.Array, jax.Array]:
    """(P, p, p) embedded inverses of Sigma_oo and (P,) log|Sigma_oo| per pattern."""
    def one(mask):
        d = jnp.diag(mask)
        m = d @ sigma @ d + jnp.eye(sigma.shape[0]) - d
        chol = jnp.linalg.cholesky(m)
        inv = jax.scipy.linalg.cho_solve((chol, True), jnp.eye(sigma.shape[0]))
        return d @ inv @ d, 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
    return jax.vmap(one)(jnp.asarray(masks, dtype=sigma.dtype))


def _within_rows_loglik(layout: Layout, prep: density.Prepared, zb: jax.Array, arrays,
                        masks) -> jax.Array:
    """(J,) observed-data within log likelihood of each cluster given between values zb
    (J, nb), row by row (FIML); ``arrays["row_pattern"]`` (N,) indexes ``masks``."""
    return jax.ops.segment_sum(_within_row_logliks(layout, prep, zb, arrays, masks),
                               jnp.asarray(arrays["cluster"]),
                               num_segments=arrays["n"].shape[0])


def _within_row_logliks(layout: Layout, prep: density.Prepared, zb: jax.Array, arrays,
                        masks) -> jax.Array:
    """(N,) observed-data within log likelihood of each row given its cluster's between
    values (zb (J, nb))."""
    sigma = prep.chol_sigma @ prep.chol_sigma.T
    inverses, logdets = _pattern_inverses(sigma, masks)
    designs = jax.vmap(lambda z: density.cluster_design(layout, prep, z))(zb)  # (J, p, 1+q)
    cluster = jnp.asarray(arrays["cluster"])
    u = jnp.concatenate([jnp.ones((arrays["y"].shape[0], 1)), jnp.asarray(arrays["c"])], axis=1)
    resid = jnp.asarray(arrays["y"]) - jnp.einsum("npk,nk->np", designs[cluster], u)
    pattern = jnp.asarray(arrays["row_pattern"])
    quad = jnp.einsum("np,npk,nk->n", resid, inverses[pattern], resid)
    n_observed = jnp.asarray(np.sum(masks, axis=1), dtype=quad.dtype)[pattern]
    return -0.5 * (n_observed * LOG_2PI + logdets[pattern] + quad)


def complete_cluster_densities(layout: Layout, mats, arrays, states: jax.Array,
                               masks) -> jax.Array:
    """(J,) complete-data log density f_j of every cluster at states (J, nS); ``masks``:
    None for complete data (moments), else the missing-data patterns (rows, FIML).
    Units J: clusters; in a single-level model one unit, or one per observation (MLR
    scores)."""
    prep = density.prepare(layout, mats)
    zb = density.assemble_all(layout, prep, states, arrays) if layout.two_level else (
        jnp.zeros((arrays["n"].shape[0], 0)))
    if masks is None:
        within = jax.vmap(lambda z, m, n: density.within_cluster_loglik(layout, prep, z, m, n))(
            zb, arrays["moments"], arrays["n"])
    else:
        within = _within_rows_loglik(layout, prep, zb, arrays, masks)
    if not layout.two_level:
        return within
    between = jax.vmap(lambda z, w: density.between_cluster_logdensity(layout, prep, z, w))(
        zb, arrays["w"])
    return within + between


def cluster_logliks(layout: Layout, x: jax.Array, arrays, masks) -> jax.Array:
    """(J,) marginal log likelihood of every cluster at free parameters x (n_free,);
    three-level models: of every level-3 cluster."""
    if isinstance(layout, ThreeLevelLayout):
        return three_level_logliks(layout, x, arrays, masks)
    mats = layout.spec.unpack(x)
    n_state = len(layout.stochastic)
    n_units = arrays["n"].shape[0]
    points = jnp.asarray(gaussian.quadratic_points(n_state), dtype=x.dtype)  # (n_points, nS)
    values = jax.vmap(lambda point: complete_cluster_densities(
        layout, mats, arrays, jnp.broadcast_to(point, (n_units, n_state)), masks))(points)
    if n_state == 0:
        return values[0]
    grad, precision = gaussian.quadratic_from_values(values, n_state)
    return _integrate_quadratic(values[0], grad, precision)


def _integrate_quadratic(value0, grad, precision):
    """log of the integral of exp(value0 + g'v - v'Pv/2) dv (batched: (...,), (..., d),
    (..., d, d))."""
    chol = linalg.cholesky(precision)
    half = linalg.solve_lower(chol, grad[..., None])[..., 0]
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    return value0 + 0.5 * jnp.sum(half * half, axis=-1) - 0.5 * logdet \
        + 0.5 * grad.shape[-1] * LOG_2PI


def three_level_logliks(layout, x: jax.Array, arrays, masks) -> jax.Array:
    """(J3,) marginal log likelihood of every level-3 cluster (bayes.threelevel views).

    Per level-2 unit r the complete-data density of its data given its level-2 state t
    and its level-3 cluster's state z, ``f_r(t, z)`` (lower within likelihood plus the
    upper view's density of the unit's row), is jointly quadratic: its values at the
    quadratic points of (t, z) give it exactly. t is integrated out per unit (a Schur
    complement), the results summed per level-3 cluster with the level-3 density of z,
    and z integrated out: two nested exact Gaussian integrals. ``masks``: the level-1
    missing-data patterns (None when complete)."""
    lower, upper = layout.lower, layout.upper
    lower_arrays, upper_arrays = split_arrays(arrays, VIEWS)
    prep_lower = density.prepare(lower, lower.spec.unpack(x))
    prep_upper = density.prepare(upper, upper.spec.unpack(x))
    n_t, n_z = len(lower.stochastic), len(upper.stochastic)
    n2, n3 = lower.n_clusters, upper.n_clusters
    columns = np.asarray(layout.state_columns)
    upper_masks = ((True,) * upper.p,)
    upper_rows = dict(upper_arrays, row_pattern=jnp.zeros(n2, dtype=jnp.int32))

    def unit_values(point):
        t = jnp.broadcast_to(point[:n_t], (n2, n_t))
        z = jnp.broadcast_to(point[n_t:], (n3, n_z))
        zb_lower = density.assemble_all(lower, prep_lower, t, lower_arrays)
        if masks is None:
            within = jax.vmap(lambda zb, m, n: density.within_cluster_loglik(
                lower, prep_lower, zb, m, n))(zb_lower, lower_arrays["moments"],
                                              lower_arrays["n"])
        else:
            within = _within_rows_loglik(lower, prep_lower, zb_lower, lower_arrays, masks)
        zb_upper = density.assemble_all(upper, prep_upper, z, upper_arrays)
        rows = dict(upper_rows, y=upper_arrays["y"].at[:, columns].set(t))
        return within + _within_row_logliks(upper, prep_upper, zb_upper, rows, upper_masks)

    points = jnp.asarray(gaussian.quadratic_points(n_t + n_z), dtype=x.dtype)
    values = jax.vmap(unit_values)(points)                                  # (points, J2)
    grad, prec = gaussian.quadratic_from_values(values, n_t + n_z)
    chol_tt = linalg.cholesky(prec[:, :n_t, :n_t])
    solved = linalg.solve_upper_transposed(                                 # Q_tt^-1 [g_t, Q_tz]
        chol_tt, linalg.solve_lower(chol_tt, jnp.concatenate(
            [grad[:, :n_t, None], prec[:, :n_t, n_t:]], axis=2)))
    constant = _integrate_quadratic(values[0], grad[:, :n_t], prec[:, :n_t, :n_t])
    linear = grad[:, n_t:] - jnp.einsum("rtz,rt->rz", prec[:, :n_t, n_t:], solved[:, :, 0])
    schur = prec[:, n_t:, n_t:] - jnp.einsum("rtz,rtw->rzw", prec[:, :n_t, n_t:],
                                             solved[:, :, 1:])
    cluster = upper_arrays["cluster"]
    constant = jax.ops.segment_sum(constant, cluster, num_segments=n3)
    linear = jax.ops.segment_sum(linear, cluster, num_segments=n3)
    schur = jax.ops.segment_sum(schur, cluster, num_segments=n3)

    def level3_values(point):
        z = jnp.broadcast_to(point, (n3, n_z))
        zb = density.assemble_all(upper, prep_upper, z, upper_arrays)
        return jax.vmap(lambda v, w: density.between_cluster_logdensity(
            upper, prep_upper, v, w))(zb, upper_arrays["w"])

    z_points = jnp.asarray(gaussian.quadratic_points(n_z), dtype=x.dtype)
    z_values = jax.vmap(level3_values)(z_points)                           # (points, J3)
    if n_z == 0:
        return constant + z_values[0]
    z_grad, z_prec = gaussian.quadratic_from_values(z_values, n_z)
    return _integrate_quadratic(constant + z_values[0], linear + z_grad, schur + z_prec)
