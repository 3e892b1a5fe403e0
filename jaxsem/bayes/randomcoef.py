"""Random-coefficient regressions: three blocks of a sweep written out per cluster.

The model class: two levels, one continuous outcome ``y`` observed in full, no within
latent variables, and between variables that are all random coefficients of ``y`` (its
between part, the random intercept, and random slopes ``s | y ON x``), regressed on
between covariates only (no paths among them) with covariance blocks of conjugate
priors. Per cluster j, with u_ij = [y_ij, 1, c_ij] (the moment columns of layout.py):

    y_ij = base + fixed slopes' c_ij + sum_k z_jk g_k' u_ij + e_ij,   e_ij ~ N(0, sigma2)
    z_j = alpha + Gamma w_j + zeta_j,                                 zeta_j ~ N(0, Psi)

(g_k selects the column that z_jk multiplies: 1 for the intercept, 2 + c for a slope
on covariate c). The between state, the between coefficients (alpha, Gamma) and the
covariance blocks (sigma2, Psi) are then drawn exactly as the generic blocks of
bayes.gibbs draw them, with the same noise, but as elementwise arithmetic over the
clusters on separate entries (kernels.linalg's entries form), and with every sum over
clusters taken once: the coefficients' and Psi's statistics are functions of the one
Gram matrix ``sum_j [z_j, 1, w_j][z_j, 1, w_j]'``. XLA fuses nearly all of it, which
removes most of the small kernels whose launch cost dominates these sweeps. The test
suite checks the draws against the generic blocks.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxsem.bayes.layout import Layout
from jaxsem.kernels import conjugate, linalg

MAX_RANDOM = 4          # random coefficients per cluster (unrolled algebra)
MAX_COEFFICIENTS = 12   # between coefficients drawn jointly


@dataclass(frozen=True)
class RandomCoefficients:
    """``columns[k]``: the moment columns that between variable k multiplies;
    ``residual``: the columns whose coefficient in r0 = [1, -base, -fixed slopes] can be
    non-zero (column 0, y itself, first)."""
    columns: tuple[tuple[int, ...], ...]
    residual: tuple[int, ...]


def plan(layout: Layout, schedule, regression) -> RandomCoefficients | None:
    """The plan when the model is a random-coefficient regression (module docstring)
    whose coefficient block is a between regression (``regression``:
    quadratic.between_regression, or None when there is no coefficient block), else
    None (the generic blocks serve)."""
    if (not layout.two_level or layout.augmented or layout.p != 1 or layout.has_within_latent
            or layout.deterministic or layout.collapsed or layout.known
            or layout.stochastic != tuple(range(layout.nb)) or layout.nb > MAX_RANDOM
            or schedule.nuts or schedule.factor_levels or schedule.latent_responses
            or schedule.scale_moves or len(schedule.coefficients) > MAX_COEFFICIENTS
            or (schedule.coefficients and regression is None)):
        return None
    spec = layout.spec
    if spec.pattern(1, "beta").any():
        return None
    columns: list[list[int]] = [[] for _ in range(layout.nb)]
    for _, k in layout.parts:
        columns[k].append(1)
    for _, col, k in layout.random_slopes:
        columns[k].append(2 + col)
    if any(not c for c in columns):
        return None   # a between variable that is not a random coefficient of y
    residual = [0]
    if spec.pattern(0, "alpha")[0]:
        residual.append(1)
    gamma = spec.pattern(0, "gamma")[0]
    residual += [2 + c for c in range(layout.q) if gamma[c]]
    return RandomCoefficients(tuple(tuple(c) for c in columns), tuple(residual))


def draw(structure: RandomCoefficients, regression, layout: Layout, schedule, x, arrays,
         noise) -> tuple[jax.Array, jax.Array]:
    """(x (n_free,), between state (J, nb)) after the between state, the coefficient
    block and the covariance blocks, in that order (as bayes.gibbs's sweep)."""
    nb, qb = layout.nb, len(layout.between_covariates)
    within, between = layout.spec.unpack(x)
    moments = arrays["moments"]

    def moment(a, b):
        return moments[:, min(a, b), max(a, b)]
    w = [arrays["w"][:, i] for i in range(qb)]
    inverse_sigma2 = 1.0 / within["psi"][0, 0]
    fixed = {0: 1.0}
    for c in structure.residual[1:]:
        fixed[c] = -within["alpha"][0] if c == 1 else -within["gamma"][0, c - 2]
    q = linalg.inverse_entries(linalg.lower_entries(between["psi"]))

    # between state: per cluster P = G'MG / sigma2 + Psi^-1, h = G'M r0 / sigma2 + Psi^-1 mu
    cols = structure.columns
    cross_xx = [[sum(moment(a, b) for a in cols[k] for b in cols[l]) for l in range(k + 1)]
                for k in range(nb)]
    cross_xr = [sum(fixed[b] * moment(a, b) for a in cols[k] for b in fixed)
                for k in range(nb)]
    mean = [between["alpha"][k] + sum(between["gamma"][k, i] * w[i] for i in range(qb))
            for k in range(nb)]
    precision = [[inverse_sigma2 * cross_xx[k][l] + q[k][l] for l in range(k + 1)]
                 for k in range(nb)]
    linear = [inverse_sigma2 * cross_xr[k] + sum(q[k][l] * mean[l] for l in range(nb))
              for k in range(nb)]
    z = linalg.sample_entries(precision, linear, [noise["between"][:, k] for k in range(nb)])

    # the only sums over clusters of the sweep: the Gram matrix of u_j = [z_j, 1, w_j]
    # and the within residual sum of squares
    u = z + [jnp.ones_like(z[0])] + w
    n_u = len(u)
    sse = (sum(fixed[a] * fixed[b] * moment(a, b) for a in fixed for b in fixed)
           - 2.0 * sum(z[k] * cross_xr[k] for k in range(nb))
           + sum((2.0 if l < k else 1.0) * z[k] * z[l] * cross_xx[k][l]
                 for k in range(nb) for l in range(k + 1)))
    gram = [[None] * n_u for _ in range(n_u)]
    for a, b in zip(*np.triu_indices(n_u)):
        gram[a][b] = gram[b][a] = jnp.sum(u[a] * u[b])  # (measured: 6% faster than
    sse = jnp.sum(sse)                                  # one stacked reduction)

    # innovations zeta_j = A u_j, A = [I, -alpha, -Gamma]
    def innovation_map(alpha, gamma):
        return [[float(t == k) for k in range(nb)] + [-alpha[t]]
                + [-gamma[t][i] for i in range(qb)] for t in range(nb)]
    alpha = [between["alpha"][t] for t in range(nb)]
    gamma = [[between["gamma"][t, i] for i in range(qb)] for t in range(nb)]
    updates: dict[int, jax.Array] = {}
    if schedule.coefficients:
        alpha, gamma = _draw_coefficients(regression, schedule, x, gram, q,
                                          innovation_map(alpha, gamma), alpha, gamma,
                                          noise["coefficients"], updates)
    a_map = innovation_map(alpha, gamma)
    a_gram = [[sum(a_map[t][k] * gram[k][b] for k in range(n_u)) for b in range(n_u)]
              for t in range(nb)]
    scatter = [[sum(a_gram[t][b] * a_map[r][b] for b in range(n_u)) for r in range(nb)]
               for t in range(nb)]

    for (chi2, normals), block in zip(noise["covariances"], schedule.covariance_blocks):
        members = block.members
        size = len(members)
        prior = np.asarray(block.prior_scale).reshape(size, size)
        scale = [[prior[i, j] + (sse if block.level == 0 else scatter[members[i]][members[j]])
                  for j in range(i + 1)] for i in range(size)]
        value = conjugate.inverse_wishart_entries(
            scale, [chi2[i] for i in range(size)],
            [[normals[i, j] for j in range(i)] for i in range(size)])
        for i, j, k in block.entries:
            updates[k] = value[i][j]
    if updates:
        x = linalg.set_entries(x, list(updates), jnp.stack(list(updates.values())))
    return x, jnp.stack(z, -1)


def _draw_coefficients(regression, schedule, x, gram, q, a_map, alpha, gamma, noise,
                       updates: dict) -> tuple[list, list]:
    """The between coefficients' exact draw (quadratic.between_regression_quadratic on
    the Gram matrix: sum_j u_j zeta_j' = gram A'); records them in ``updates`` and
    returns alpha and Gamma with the new values."""
    idx = schedule.coefficients
    n_coef = len(idx)
    occurrences = list(zip(regression.coefficient, regression.row, regression.column))
    nb = len(q)
    precision = [[0.0] * n_coef for _ in range(n_coef)]
    for c, r, col in occurrences:
        for c2, r2, col2 in occurrences:
            precision[c][c2] = precision[c][c2] + q[r][r2] * gram[col][col2]
    n_u = len(gram)
    gram_a = [[sum(gram[a][b] * a_map[t][b] for b in range(n_u)) for t in range(nb)]
              for a in range(n_u)]
    current = [x[k] for k in idx]
    linear = [sum(precision[c][c2] * current[c2] for c2 in range(n_coef)) for c in range(n_coef)]
    for c, r, col in occurrences:
        linear[c] = linear[c] + sum(gram_a[col][t] * q[t][r] for t in range(nb))
    for at, mean, sd in regression.prior:
        precision[at][at] = precision[at][at] + 1.0 / sd ** 2
        linear[at] = linear[at] + mean / sd ** 2
    value = linalg.sample_entries(linalg.lower_entries(precision), linear,
                                  [noise[c] for c in range(n_coef)])
    alpha, gamma = list(alpha), [list(row) for row in gamma]
    for c, r, col in occurrences:
        if col == nb:
            alpha[r] = value[c]
        else:
            gamma[r][col - nb - 1] = value[c]
    for c, k in enumerate(idx):
        updates[k] = value[c]
    return alpha, gamma
