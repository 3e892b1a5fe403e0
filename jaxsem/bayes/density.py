"""Complete-data log densities of the augmented model (see layout.py for invariants).

Shapes: p within observed parts, q within covariates, m = p + 1 + q, nb between
variables, J clusters, N observations. ``mats`` is ``spec.unpack(x)``.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsem.bayes.layout import Layout
from jaxsem.kernels import linalg

LOG_2PI = float(np.log(2 * np.pi))


class Prepared(NamedTuple):
    """Functions of the parameters shared by all clusters.

    chol_sigma (p, p), logdet_sigma (): within marginal covariance of the observed parts.
    fa (p, nv_w): observed rows of (I - beta_w)^-1; base (p,): their mean intercepts;
    fa_gamma (p, q): their slopes on the within covariates.
    ib (nb, nb): I - beta_b; alpha_b (nb,); gamma_b (nb, q_b); chol_psi (|T|, |T|)
    innovation covariance of the stochastic between variables; logdet_jacobian ().
    With collapsed between factors, chol_psi is instead the Cholesky factor of the
    marginal covariance of the kept values V, and marginal_mean (|V|,),
    marginal_slopes (|V|, q_b) give their mean mu_j = mean + slopes @ w_j.
    """
    chol_sigma: jax.Array
    logdet_sigma: jax.Array
    fa: jax.Array
    base: jax.Array
    fa_gamma: jax.Array
    ib: jax.Array
    alpha_b: jax.Array
    gamma_b: jax.Array
    chol_psi: jax.Array
    logdet_jacobian: jax.Array
    marginal_mean: jax.Array
    marginal_slopes: jax.Array


def prepare(layout: Layout, mats) -> Prepared:
    w = mats[0]
    spec = layout.spec
    fa = linalg.inverse_identity_minus(w["beta"], spec.pattern(0, "beta"))[:layout.p]
    sigma = fa @ w["psi"] @ fa.T
    chol_sigma = linalg.cholesky(sigma, lapack=False)  # once per sweep: no LAPACK
    logdet_sigma = 2.0 * jnp.sum(jnp.log(jnp.diag(chol_sigma)))
    marginal_mean, marginal_slopes = jnp.zeros(0), jnp.zeros((0, 0))
    if layout.two_level:
        b = mats[1]
        ib = jnp.eye(layout.nb) - b["beta"]
        t = np.asarray(layout.innovations)
        alpha_b, gamma_b = b["alpha"], b["gamma"]
        logdet_jacobian = jnp.asarray(0.0)
        between_pattern = spec.pattern(1, "beta")
        if layout.collapsed:
            reduced = linalg.inverse_identity_minus(b["beta"], between_pattern)[t]
            chol_psi = linalg.cholesky(reduced @ b["psi"] @ reduced.T, lapack=False)
            marginal_mean, marginal_slopes = reduced @ alpha_b, reduced @ gamma_b
        else:
            chol_psi = linalg.cholesky(b["psi"][np.ix_(t, t)], lapack=False)
            if linalg.nilpotency_index(between_pattern) is None:  # else det(I - B) = 1
                logdet_jacobian = jnp.linalg.slogdet(ib)[1]
            if layout.deterministic and linalg.nilpotency_index(
                    between_pattern[np.ix_(layout.deterministic, layout.deterministic)]) is None:
                d = np.asarray(layout.deterministic)
                logdet_jacobian = logdet_jacobian - jnp.linalg.slogdet(ib[np.ix_(d, d)])[1]
    else:
        ib = chol_psi = gamma_b = jnp.zeros((0, 0))
        alpha_b = jnp.zeros(0)
        logdet_jacobian = jnp.asarray(0.0)
    return Prepared(chol_sigma, logdet_sigma, fa, fa @ w["alpha"], fa @ w["gamma"], ib,
                    alpha_b, gamma_b, chol_psi, logdet_jacobian, marginal_mean,
                    marginal_slopes)


def part_matrix(layout: Layout) -> np.ndarray:
    """(p, nb) 0/1 map from between variables to the within parts they shift."""
    out = np.zeros((layout.p, layout.nb))
    for i, k in layout.parts:
        out[i, k] = 1.0
    return out


def cluster_design(layout: Layout, prep: Prepared, zb: jax.Array) -> jax.Array:
    """(p, 1 + q) intercepts and slopes of one cluster's within observed parts."""
    intercept = prep.base + jnp.asarray(part_matrix(layout)) @ zb
    slopes = prep.fa_gamma
    for row, col, source in layout.random_slopes:
        slopes = slopes.at[:, col].add(prep.fa[:, row] * zb[source])
    return jnp.concatenate([intercept[:, None], slopes], axis=1)


def residual_map(layout: Layout, prep: Prepared, zb: jax.Array) -> jax.Array:
    """(p, m) map R with e_i = R [y_i, 1, c_i], the within residuals of one cluster."""
    return jnp.concatenate([jnp.eye(layout.p), -cluster_design(layout, prep, zb)], axis=1)


def within_residual_scatter(layout: Layout, prep: Prepared, zb: jax.Array,
                            moments: jax.Array) -> jax.Array:
    """(p, p) sum over one cluster of e e', e = y_i - design [1, c_i]."""
    r = residual_map(layout, prep, zb)
    return r @ moments @ r.T


def within_cluster_loglik(layout: Layout, prep: Prepared, zb: jax.Array,
                          moments: jax.Array, n: jax.Array) -> jax.Array:
    """Marginal log likelihood of one cluster's within data given its between values."""
    x = linalg.solve_lower(prep.chol_sigma, residual_map(layout, prep, zb))
    quad = jnp.einsum("pm,mk,pk->", x, moments, x)
    return -0.5 * n * (layout.p * LOG_2PI + prep.logdet_sigma) - 0.5 * quad


def assemble_between(layout: Layout, prep: Prepared, state: jax.Array, known: jax.Array,
                     w: jax.Array) -> jax.Array:
    """(nb,) all between values of one cluster from its state (nS,) and data (nK,)."""
    # placed by a static permutation, not a scatter (XLA's CPU scatter is a loop)
    zero = jnp.zeros((1,), dtype=prep.ib.dtype)
    source = jnp.concatenate([state.astype(zero.dtype), known.astype(zero.dtype), zero])
    place = np.full(layout.nb, len(layout.stochastic) + len(layout.known))
    place[np.asarray(layout.stochastic, dtype=int)] = np.arange(len(layout.stochastic))
    place[np.asarray(layout.known, dtype=int)] = len(layout.stochastic) + np.arange(
        len(layout.known))
    zb = source[:layout.nb] if np.array_equal(place, np.arange(layout.nb)) else source[place]
    if layout.deterministic:
        d, t = np.asarray(layout.deterministic), np.asarray(layout.innovations)
        rhs = prep.alpha_b[d] + prep.gamma_b[d] @ w - prep.ib[np.ix_(d, t)] @ zb[t]
        zb = zb.at[d].set(deterministic_inverse(layout, prep) @ rhs)
    return zb


def deterministic_inverse(layout: Layout, prep: Prepared) -> jax.Array:
    """(|D|, |D|) inverse of (I - B) restricted to the zero-variance between variables."""
    d = np.asarray(layout.deterministic)
    pattern = layout.spec.pattern(1, "beta")[np.ix_(d, d)]
    eye = jnp.eye(len(d), dtype=prep.ib.dtype)
    return linalg.inverse_identity_minus(eye - prep.ib[np.ix_(d, d)], pattern)


def assemble_all(layout: Layout, prep: Prepared, states: jax.Array, arrays) -> jax.Array:
    """(J, nb) between values of every cluster from the states (J, nS)."""
    return jax.vmap(lambda s, k, w: assemble_between(layout, prep, s, k, w))(
        states, arrays["known"], arrays["w"])


def between_innovations(layout: Layout, prep: Prepared, zb: jax.Array,
                        w: jax.Array) -> jax.Array:
    """(|T|,) innovations of the stochastic between variables of one cluster."""
    zeta = prep.ib @ zb - prep.alpha_b - prep.gamma_b @ w
    return zeta[np.asarray(layout.innovations)]


def between_cluster_logdensity(layout: Layout, prep: Prepared, zb: jax.Array,
                               w: jax.Array) -> jax.Array:
    """log p(between values of one cluster | parameters, between covariates)."""
    if layout.collapsed:
        zeta = zb[np.asarray(layout.innovations)] - prep.marginal_mean - prep.marginal_slopes @ w
    else:
        zeta = between_innovations(layout, prep, zb, w)
    v = linalg.solve_lower(prep.chol_psi, zeta[:, None])[:, 0]
    k = zeta.shape[0]
    return (-0.5 * (k * LOG_2PI + jnp.sum(v * v))
            - jnp.sum(jnp.log(jnp.diag(prep.chol_psi))) + prep.logdet_jacobian)


def cluster_logdensity(layout: Layout, prep: Prepared, state: jax.Array, known: jax.Array,
                       w: jax.Array, moments: jax.Array, n: jax.Array) -> jax.Array:
    """Complete-data log density of one cluster: within likelihood + between density."""
    zb = assemble_between(layout, prep, state, known, w)
    out = within_cluster_loglik(layout, prep, zb, moments, n)
    if layout.two_level:
        out = out + between_cluster_logdensity(layout, prep, zb, w)
    return out


def complete_logdensity(layout: Layout, mats, arrays, states: jax.Array) -> jax.Array:
    """Sum over clusters of the complete-data log density; states (J, nS)."""
    prep = prepare(layout, mats)
    per_cluster = jax.vmap(lambda s, k, w, m, n: cluster_logdensity(layout, prep, s, k, w, m, n))
    return per_cluster(states, arrays["known"], arrays["w"], arrays["moments"],
                       arrays["n"]).sum()


def poolable(layout: Layout) -> bool:
    """True when the within likelihood given the between values depends on the data only
    through pooled moments: every random slope sits on an observed outcome that predicts
    nothing (its column of (I - beta_w)^-1 is a unit vector whatever the parameters)."""
    within = layout.spec.blocks[0]
    table = layout.spec.partable
    for row, _, _ in layout.random_slopes:
        name = within.variables[row]
        if row >= layout.p or any(r.block == within.name and (
                (r.op == "~" and r.rhs == name) or (r.op == "=~" and r.lhs == name))
                for r in table.rows):
            return False
    return True


def pooled_within_moments(layout: Layout, zb: jax.Array, arrays) -> jax.Array:
    """(m, m) sum over all observations of u u' with u = [y - between shifts, 1, c].

    Valid when :func:`poolable`; zb (J, nb) are the clusters' between values. The shift
    of cluster j is u -> T_j u with T_j = I - sum_k zb_jk E_k (E_k static: where
    between variable k enters), so the sum is S - sum_k (E_k A_k + A_k' E_k') +
    sum_kl E_k B_kl E_l' with S = sum_j M_j, A_k = sum_j zb_jk M_j and B_kl = sum_j
    zb_jk zb_jl M_j: two products of the moments (J, m^2) with the between values,
    instead of a product of three m x m matrices per cluster.
    """
    p, m, nb = layout.p, layout.p + 1 + layout.q, layout.nb
    shifts = np.zeros((nb, m, m))
    for i, k in layout.parts:
        shifts[k, i, p] += 1.0
    for row, col, source in layout.random_slopes:
        shifts[source, row, p + 1 + col] += 1.0
    used = np.flatnonzero(shifts.any(axis=(1, 2)))   # between variables that shift u
    shifts, z = shifts[used], zb[:, used]
    k = len(used)
    # symmetric: the upper triangles of the moments and of zb zb' suffice
    rows_m, cols_m, full_m = linalg.upper_triangle(m)
    rows_k, cols_k, full_k = linalg.upper_triangle(k)
    weights = jnp.concatenate([jnp.ones((z.shape[0], 1), z.dtype), z,
                               z[:, rows_k] * z[:, cols_k]], axis=1)
    sums = (weights.T @ arrays["moments"][:, rows_m, cols_m])[:, full_m]   # (., m, m)
    a, b = sums[1:1 + k], sums[1 + k:][full_k]
    linear = jnp.einsum("kab,kbc->ac", shifts, a)
    return (sums[0] - linear - linear.T
            + jnp.einsum("kab,klbc,ldc->ad", shifts, b, shifts))


def within_pooled_loglik(layout: Layout, prep: Prepared, pooled: jax.Array,
                         n_total: jax.Array) -> jax.Array:
    """Within log likelihood of all clusters from pooled moments (see poolable)."""
    r0 = jnp.concatenate([jnp.eye(layout.p), -prep.base[:, None], -prep.fa_gamma], axis=1)
    x = linalg.solve_lower(prep.chol_sigma, r0)
    quad = jnp.einsum("pm,mk,pk->", x, pooled, x)
    return -0.5 * n_total * (layout.p * LOG_2PI + prep.logdet_sigma) - 0.5 * quad


def pooled_between_moments(layout: Layout, zb: jax.Array, arrays) -> jax.Array:
    """(k, k) sum over clusters of u u' with u = [z_V, 1, w] (collapsed layouts)."""
    u = jnp.concatenate([zb[:, np.asarray(layout.innovations)], jnp.ones((zb.shape[0], 1)),
                         arrays["w"]], axis=1)
    return u.T @ u


def between_pooled_logdensity(layout: Layout, prep: Prepared, pooled: jax.Array) -> jax.Array:
    """Sum over clusters of the marginal between density, from pooled moments."""
    v = len(layout.innovations)
    r = jnp.concatenate([jnp.eye(v), -prep.marginal_mean[:, None], -prep.marginal_slopes],
                        axis=1)
    x = linalg.solve_lower(prep.chol_psi, r)
    quad = jnp.einsum("pm,mk,pk->", x, pooled, x)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(prep.chol_psi)))
    return -0.5 * layout.n_clusters * (v * LOG_2PI + logdet) - 0.5 * quad
