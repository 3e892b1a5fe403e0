"""Fast, batched forms of the two Gaussian blocks (checked against the autodiff forms).

Between state: per cluster the log density is quadratic in the state ``s`` (nS,). The
between values are affine in it, ``zb = Z0_j + Z1 s``, the within likelihood is
quadratic in ``zb`` through the design ``R_j = R0 - sum_k zb_k G_k`` (p, m), and the
between density is quadratic through the innovations ``C zb - d_j``; the precision and
linear terms follow with a few einsums over all clusters at once.

Coefficients: the complete-data log density of levels without marginalised latent
variables is ``-|r(v)|^2 / 2`` for a residual vector ``r`` affine in the coefficients
``v`` (innovations whitened by the innovation covariance, and normal priors); its
Jacobian J (from r at 0 and at the unit vectors) gives ``P = J'J`` and ``h = -J' r(0)``.
When the block holds only between-level regression coefficients (intercepts, slopes on
between covariates and on other between variables, of variables with an innovation),
each coefficient enters one innovation row with a regressor column of
``U_j = [zb_j, 1, w_j]``: then ``P`` and ``h`` follow from ``U'U`` and
``U' zeta Psi^-1`` alone (a seemingly-unrelated regression), without the Jacobian.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxsem.bayes import density
from jaxsem.bayes.layout import Layout
from jaxsem.kernels import linalg
from jaxsem.kernels import gaussian


def between_affine_map(layout: Layout, prep: density.Prepared, arrays):
    """``zb = Z0_j + Z1 s``: Z0 (J, nb), Z1 (nb, nS)."""
    nb, n_state = layout.nb, len(layout.stochastic)
    s_idx = np.asarray(layout.stochastic, dtype=int)
    k_idx = np.asarray(layout.known, dtype=int)
    z1 = jnp.zeros((nb, n_state)).at[s_idx, np.arange(n_state)].set(1.0)
    z0 = jnp.zeros((layout.n_clusters, nb)).at[:, k_idx].set(arrays["known"])
    if layout.deterministic:
        d = np.asarray(layout.deterministic)
        inverse_dd = density.deterministic_inverse(layout, prep)
        z1 = z1.at[d].set(-inverse_dd @ prep.ib[np.ix_(d, s_idx)])
        rhs = (prep.alpha_b[d][None] + arrays["w"] @ prep.gamma_b[d].T
               - arrays["known"] @ prep.ib[np.ix_(d, k_idx)].T)
        z0 = z0.at[:, d].set(rhs @ inverse_dd.T)
    return z0, z1


def design_derivatives(layout: Layout, prep: density.Prepared) -> jax.Array:
    """(nb, p, m): G_k with R_j = R0 - sum_k zb_k G_k, R = [I_p, -design]."""
    p, m = layout.p, layout.p + 1 + layout.q
    g = jnp.zeros((layout.nb, p, m))
    for i, k in layout.parts:
        g = g.at[k, i, p].set(1.0)
    for row, col, source in layout.random_slopes:
        g = g.at[source, :, p + 1 + col].add(prep.fa[:, row])
    return g


def between_state_quadratic(layout: Layout, prep: density.Prepared, arrays,
                            grouped: bool = False):
    """Precision (J, nS, nS) and linear term (J, nS) of every cluster's state; with
    ``grouped`` (no random slopes, clusters grouped by size: layout.size_groups) the
    precision per size group (G, nS, nS): without random slopes the within part of a
    cluster's precision is n_j G' Sigma_W^-1 G, its size times one matrix.

    With ``arrays["state_prior_precision"]`` (nS, nS) and ``arrays["state_prior_linear"]``
    (J, nS), those replace the between density: the prior of the state comes from the
    level above (three-level models, bayes.threelevel).
    """
    p = layout.p
    r0 = jnp.concatenate([jnp.eye(p), -prep.base[:, None], -prep.fa_gamma], axis=1)
    g = design_derivatives(layout, prep)
    gl = linalg.solve_lower(prep.chol_sigma[None], g)  # (nb, p, m)
    r0l = linalg.solve_lower(prep.chol_sigma, r0)     # (p, m)
    # both terms are linear in the symmetric moments: one product of their upper
    # triangles (J, m(m+1)/2) with the terms (m(m+1)/2, nb(nb+1)/2 + nb)
    rows_m, cols_m, position_m = linalg.upper_triangle(r0.shape[1])
    rows_b, cols_b, full_b = linalg.upper_triangle(layout.nb)
    terms = jnp.concatenate([jnp.einsum("kpm,lpn->mnkl", gl, gl)[:, :, rows_b, cols_b],
                             jnp.einsum("kpm,pn->mnk", gl, r0l)], axis=2)       # (m, m, c)
    terms = terms[rows_m, cols_m] + jnp.where((rows_m != cols_m)[:, None],
                                              terms[cols_m, rows_m], 0.0)
    if grouped:
        prec = (arrays["group_size"][:, None] * terms[position_m[p, p], :len(rows_b)])
        prec = prec[:, full_b]                                              # (G, nb, nb)
        lin = arrays["moments"][:, rows_m, cols_m] @ terms[:, len(rows_b):]
    else:
        out = arrays["moments"][:, rows_m, cols_m] @ terms
        prec, lin = out[:, full_b], out[:, len(rows_b):]
    external = "state_prior_precision" in arrays
    if not external:
        t = np.asarray(layout.innovations)
        if layout.collapsed:  # kept values V ~ N(mean + slopes w_j, chol chol')
            c = linalg.solve_lower(prep.chol_psi, jnp.eye(layout.nb)[t])
            d = prep.marginal_mean[None] + arrays["w"] @ prep.marginal_slopes.T
        else:                 # innovations (I - B) zb - alpha - gamma w_j ~ N(0, psi_T)
            c = linalg.solve_lower(prep.chol_psi, prep.ib[t])      # (|T|, nb)
            d = prep.alpha_b[t][None] + arrays["w"] @ prep.gamma_b[t].T      # (J, |T|)
        dl = linalg.solve_lower(prep.chol_psi, d.T).T
        prec = prec + (c.T @ c)[None]
        lin = lin + dl @ c
    per_cluster = jnp.einsum("jg,gab->jab", arrays["group_member"], prec) if grouped else prec
    if not layout.deterministic:  # zb holds s and the known values: a selection
        s_idx = np.asarray(layout.stochastic, dtype=int)
        k_idx = np.asarray(layout.known, dtype=int)
        prec_s = prec[:, s_idx][:, :, s_idx]
        lin_s = lin[:, s_idx]
        if len(k_idx):
            lin_s = lin_s - jnp.einsum("jsk,jk->js", per_cluster[:, s_idx][:, :, k_idx],
                                       arrays["known"])
    else:
        z0, z1 = between_affine_map(layout, prep, arrays)
        prec_s = jnp.einsum("ak,jab,bl->jkl", z1, prec, z1)
        lin_s = (lin - jnp.einsum("jab,jb->ja", per_cluster, z0)) @ z1
    if external:
        prec_s = prec_s + arrays["state_prior_precision"][None]
        lin_s = lin_s + arrays["state_prior_linear"]
    return prec_s, lin_s


def draw_between_state(noise, layout: Layout, prep: density.Prepared, arrays) -> jax.Array:
    """(J, nS) exact draw of every cluster's between state; noise (J, nS) N(0, 1).
    Without random slopes and with clusters grouped by size, one Cholesky factor per
    size: z_j = L_g^-T (L_g^-1 h_j + noise_j) as two products over the groups."""
    if "group_member" in arrays and not layout.random_slopes:
        prec, lin = between_state_quadratic(layout, prep, arrays, grouped=True)
        inverse = linalg.solve_lower(linalg.cholesky(prec),
                                     jnp.broadcast_to(jnp.eye(prec.shape[-1]), prec.shape))
        member = arrays["group_member"]                                         # (J, G)
        forward = jnp.einsum("jg,gab,jb->ja", member, inverse, lin) + noise
        return jnp.einsum("jg,gba,jb->ja", member, inverse, forward)
    prec, lin = between_state_quadratic(layout, prep, arrays)
    return gaussian.sample_from_precision(noise, prec, lin)


def whitened_residuals(layout: Layout, spec, x, state, arrays, factors, priors,
                       levels: frozenset[int]) -> jax.Array:
    """Residual vector r with log density = -|r|^2/2 + terms free of the coefficients.

    ``factors``: (J, m, m) square roots of the cluster moment matrices; ``priors``:
    (index, mean, sd) of normal priors; ``levels``: the levels (1, 2) whose coefficients
    are in the block (the other level's terms do not depend on them).
    """
    mats = spec.unpack(x)
    parts = []
    w = mats[0]
    prep = density.prepare(layout, mats)
    zb = density.assemble_all(layout, prep, state, arrays)
    if 1 in levels:
        ib_w = jnp.eye(layout.p) - w["beta"]
        chol_psi_w = linalg.cholesky(w["psi"])

        def cluster(z, f):
            r = ib_w @ density.residual_map(layout, prep, z)
            return linalg.solve_lower(chol_psi_w, r @ f)
        parts.append(jax.vmap(cluster)(zb, factors).ravel())
    if 2 in levels:
        zeta = jax.vmap(lambda z, ww: density.between_innovations(layout, prep, z, ww))(
            zb, arrays["w"])
        parts.append(linalg.solve_lower(prep.chol_psi, zeta.T).ravel())
    if priors:
        idx, mean, sd = (np.asarray(v) for v in zip(*priors))
        parts.append((x[idx] - mean) / sd)
    return jnp.concatenate(parts)


def moment_factors(moments: jax.Array) -> jax.Array:
    """(J, m, m) F_j with F_j F_j' = M_j (M_j may be singular: linalg.psd_factor)."""
    return linalg.psd_factor(moments)


def coefficient_quadratic(layout: Layout, spec, x, state, arrays, factors, priors,
                          levels: frozenset[int], idx: np.ndarray):
    """Precision (nc, nc) and linear term (nc,) of the coefficients ``x[idx]`` from the
    Jacobian of :func:`whitened_residuals` (r is affine in them: its values at 0 and at
    the unit vectors give the Jacobian's columns exactly)."""
    def residuals(v):
        return whitened_residuals(layout, spec, x.at[idx].set(v), state, arrays, factors,
                                  priors, levels)
    basis = jnp.concatenate([jnp.zeros((1, len(idx))), jnp.eye(len(idx))])
    at_basis = jax.vmap(residuals)(basis)
    r0, jac = at_basis[0], (at_basis[1:] - at_basis[0]).T
    return jac.T @ jac, -jac.T @ r0


@dataclass(frozen=True)
class BetweenRegression:
    """Where the coefficients of a between-level block enter the innovations: occurrence
    o sets coefficient ``coefficient[o]`` (position in the block) in innovation row
    ``row[o]`` (position in layout.innovations) with regressor ``column[o]`` of
    ``U = [zb, 1, w]``; ``prior`` (position, mean, sd) of normal priors."""
    coefficient: tuple[int, ...]
    row: tuple[int, ...]
    column: tuple[int, ...]
    prior: tuple[tuple[int, float, float], ...]


def between_regression(layout: Layout, idx, levels: frozenset[int],
                       priors) -> BetweenRegression | None:
    """The occurrences of the coefficients ``idx`` when every one is an intercept or a
    slope in an innovation's equation of the between level (None otherwise: the
    Jacobian form serves)."""
    if levels != frozenset({2}) or layout.collapsed or layout.deterministic:
        return None
    rows = {k: t for t, k in enumerate(layout.innovations)}
    nb = layout.nb
    coefficient, row, column = [], [], []
    for c, k in enumerate(idx):
        for block, matrix, cell in layout.spec.free_cells(int(k)):
            if block != 1 or matrix not in ("alpha", "gamma", "beta") or cell[0] not in rows:
                return None
            coefficient.append(c)
            row.append(rows[cell[0]])
            if matrix == "beta":        # slope on another between variable
                column.append(cell[1])
            elif matrix == "alpha":     # intercept
                column.append(nb)
            else:                       # slope on a between covariate
                column.append(nb + 1 + cell[1])
    position = {int(k): c for c, k in enumerate(idx)}
    prior = tuple((position[k], mean, sd) for k, mean, sd in priors)
    return BetweenRegression(tuple(coefficient), tuple(row), tuple(column), prior)


def between_regression_quadratic(plan: BetweenRegression, layout: Layout,
                                 prep: density.Prepared, zb, arrays, v):
    """Precision (nc, nc) and linear term (nc,) of a between-level coefficient block from
    ``U'U`` and ``U' zeta Psi^-1`` (zeta (J, |T|) the innovations at the current
    coefficients ``v`` (nc,)): the log density is ``-sum_j zeta_j' Psi^-1 zeta_j / 2``
    with ``d zeta_j[row] / d v = -U_j[column]`` per occurrence."""
    n_coef, n_occ = len(v), len(plan.coefficient)
    u = jnp.concatenate([zb, jnp.ones((zb.shape[0], 1), zb.dtype), arrays["w"]], axis=1)
    zeta = jax.vmap(lambda z, w: density.between_innovations(layout, prep, z, w))(
        zb, arrays["w"])
    inverse_chol = linalg.solve_lower(prep.chol_psi, jnp.eye(len(layout.innovations)))
    psi_inverse = inverse_chol.T @ inverse_chol
    to_coef = np.zeros((n_occ, n_coef))
    to_coef[np.arange(n_occ), plan.coefficient] = 1.0
    rows, columns = np.asarray(plan.row), np.asarray(plan.column)
    gram = linalg.outer_sum(u, u)
    pairs = psi_inverse[np.ix_(rows, rows)] * gram[np.ix_(columns, columns)]   # (O, O)
    precision = to_coef.T @ pairs @ to_coef
    cross = linalg.outer_sum(u, zeta @ psi_inverse)                         # (k, |T|)
    linear = to_coef.T @ cross[columns, rows] + precision @ v
    if plan.prior:
        at, mean, sd = (np.asarray(a) for a in zip(*plan.prior))
        precision = precision.at[at, at].add(1.0 / sd ** 2)
        linear = linear.at[at].add(mean / sd ** 2)
    return precision, linear
