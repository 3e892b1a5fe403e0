"""Measurement blocks: levels that are factor models, updated by data augmentation on
exact latent summaries, conjugate draws and interweaving, plus an adapted independence
Metropolis step on the level's marginal likelihood.

A level qualifies when its equations are (unit i, factors f, indicators y, covariates x)

    y_i = Lambda f_i + a_y + G_y x_i + e_i,   e_i ~ N(0, Theta),  Theta diagonal
    f_i = a_f + G_f x_i + zeta_i,             zeta_i ~ N(0, Phi), Phi diagonal

(no paths among modelled variables, no covariances, no equality labels, normal priors on
coefficients and inverse-gamma priors on variances). Its "data" are u_i = [y_i, 1, x_i]:
within, y_i is an observation minus its cluster's between values (pooled moments); between,
y_i is a cluster's between state. Work happens on v = [f, y, 1, x] and the sums
T = sum_i v_i v_i' only:

1. latent summaries. f_i | u_i ~ N(A u_i, Q^-1) with one precision Q for all units, so
   sum u f' and sum f f' are a linear map of M = sum u u' plus Gaussian and Wishart noise
   of the right size (:func:`draw_summaries`; exact, O(1) in the number of units). The
   between level draws its J cluster factors directly.
2. conjugate draws given T: each equation's free coefficients (normal) and its variance
   (inverse gamma), equations being independent given the factors.
3. interweaving (ASIS, Yu & Meng 2011) for the scale of every factor identified by one
   fixed (marker) loading: the ancillary augmentation f~ = f / sqrt(phi) has loadings
   lambda* = lambda sqrt(phi) for all its indicators, the marker's included, which are
   drawn from their Gaussian regression on f~ and accepted with the ratio of the priors
   times the Jacobian (``|s|^(1 - free loadings + free factor coefficients)``, s = sqrt(phi)).
4. independence Metropolis (:func:`independence_steps`) on all the level's parameters
   (variances as square roots), multivariate-t proposal fitted to the warm-up draws, against the
   marginal likelihood: within, of the pooled moments given the between state; between,
   of the clusters' within estimates of their between values with the between state
   integrated out (:func:`marginal_between`, run right before the between state is drawn).

Data augmentation alone mixes slowly for the residual variances of strongly loading
indicators (about 0.75 autocorrelation per cycle on the benchmark CFA: the fraction of
missing information); step 4 takes large moves where the posterior is near Gaussian and
steps 1-3 keep the chain moving where it is not (small samples, variances near zero).
Steps 1-3 run ``cycles`` times per sweep.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from jaxsem.bayes import density
from jaxsem.bayes.layout import Layout
from jaxsem.kernels import linalg
from jaxsem.priors import Prior, default_prior, log_prob

CYCLES = (1, 1)   # cycles per sweep of steps 1-3 (within, between)
# independence steps per sweep (within, between). The target is evaluated at all of a
# sweep's proposals in one batch, so a step costs little: (6, 12) against (2, 5) gave
# +53% min-ESS/s on the Demo SEM and +17% on the bench CFA (means over 3 seeds; (4, 12),
# (8, 12), (6, 10), (8, 16) were between the two)
STEPS = (6, 12)


@dataclass(frozen=True)
class Term:
    """One coefficient of an equation: ``col`` of v it multiplies; ``index`` its free
    parameter (-1 when fixed at ``value``); normal prior (mean, variance)."""
    col: int
    index: int
    value: float
    prior: tuple[float, float]


@dataclass(frozen=True)
class Equation:
    """``v[response] = sum of terms + residual``; the residual variance is free
    parameter ``variance`` (or fixed at ``variance_value``), prior IW(scale, df) on 1 x 1
    (IG(a, b) is IW(2b, 2a); the Mplus default IG(-1, 0) is IW(0, -2))."""
    response: int
    terms: tuple[Term, ...]
    variance: int
    variance_value: float
    variance_prior: tuple[float, float]

    @property
    def free_terms(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.index >= 0)


@dataclass(frozen=True)
class Scaling:
    """A factor identified by one marker loading: ``factor`` (its column of v), its
    equation, the marker (equation index, term position), the free loadings on it
    ((equation index, term position) pairs)."""
    factor: int
    equation: int
    marker: tuple[int, int]
    loadings: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class FactorLevel:
    """Static description of one measurement block (see the module docstring).

    ``block``: 0 within, 1 between; ``observed``/``latent``: indices of the indicators and
    factors among the block's variables; v = [f (nf), y (p), 1, x (q)]; ``equations``:
    indicators first, then factors; ``priors``: (free index, prior) of every free
    parameter of the level, for the Metropolis acceptance ratios; ``cycles``: rounds of
    steps 1-3 and ``steps``: independence steps per sweep.
    """
    block: int
    observed: tuple[int, ...]
    latent: tuple[int, ...]
    n_covariates: int
    equations: tuple[Equation, ...]
    scalings: tuple[Scaling, ...]
    priors: tuple[tuple[int, Prior], ...]
    cycles: int
    steps: int

    @property
    def nf(self) -> int:
        return len(self.latent)

    @property
    def p(self) -> int:
        return len(self.observed)

    @property
    def m(self) -> int:
        return self.p + 1 + self.n_covariates

    @property
    def indices(self) -> tuple[int, ...]:
        """Free parameters this block updates."""
        out = [t.index for e in self.equations for t in e.free_terms]
        out += [e.variance for e in self.equations if e.variance >= 0]
        return tuple(sorted(out))

    # ------------------------------------------------------------------ noise layout
    def noise_sizes(self) -> tuple[int, tuple[float, ...], int]:
        """Per cycle: number of standard normals, the chi-square degrees of freedom as
        offsets to the level's unit count, and the number of uniforms."""
        normals = sum(len(e.free_terms) for e in self.equations)
        normals += sum(1 + len(s.loadings) for s in self.scalings)
        chi2 = [e.variance_prior[1] for e in self.equations if e.variance >= 0]
        if self.block == 0:
            normals += self.m * self.nf + self.nf * self.nf
            chi2 += [-float(self.m + i) for i in range(self.nf)]
        return normals, tuple(chi2), len(self.scalings)


def find_factor_levels(layout: Layout, rows_of: dict[int, list]) -> tuple[FactorLevel, ...]:
    """The levels of the model that qualify as measurement blocks."""
    if layout.random_slopes:
        return ()
    out = []
    for bi in range(len(layout.spec.blocks)):
        level = _factor_level(layout, bi, rows_of)
        if level is not None:
            out.append(level)
    return tuple(out)


def _factor_level(layout: Layout, bi: int, rows_of: dict[int, list]) -> FactorLevel | None:
    spec = layout.spec
    block = spec.blocks[bi]
    if not block.latent:
        return None
    nf, p = len(block.latent), block.n_observed
    if bi == 1 and (layout.known or layout.deterministic
                    or layout.stochastic != tuple(range(p))
                    or set(layout.collapsed) != set(range(p, p + nf))):
        return None
    covariates = list(block.covariates)

    def column(name: str) -> int:
        k = block.variables.index(name)
        return k - p if k >= p else nf + k

    terms: dict[str, list[Term]] = {v: [] for v in block.variables}
    variances: dict[str, tuple[int, float, tuple[float, float]]] = {}
    priors = []
    for r in spec.partable.rows:
        if r.block != block.name:
            continue
        if r.op == "|":
            continue        # thresholds: bayes.categorical
        if r.random:
            return None
        if r.free:
            if len(rows_of[r.free - 1]) != 1:
                return None        # an equality label: the NUTS block handles it
            if r.prior is not None:
                priors.append((r.free - 1, r.prior))
        if r.op == "~~":
            if r.lhs != r.rhs:
                if r.free or r.value != 0.0:
                    return None
                continue
            prior = _variance_prior(r.prior)
            if prior is None or (not r.free and not r.value > 0):
                return None
            variances[r.lhs] = (r.free - 1, float(r.value) if not r.free else 0.0, prior)
            continue
        if r.op == "=~":
            if r.rhs not in block.observed or r.lhs not in block.latent:
                return None
            lhs, col, kind = r.rhs, column(r.lhs), "coefficient"
        elif r.op == "~":
            if r.rhs not in covariates:
                if r.free or r.value != 0.0:
                    return None
                continue
            lhs, col, kind = r.lhs, nf + p + 1 + covariates.index(r.rhs), "coefficient"
        elif r.op == "~1":
            lhs, col, kind = r.lhs, nf + p, "intercept"
        else:
            return None
        if r.free:
            prior = r.prior or default_prior(kind)
            if prior.family != "normal":
                return None
            if r.prior is None:
                priors.append((r.free - 1, prior))
            terms[lhs].append(Term(col, r.free - 1, 0.0, tuple(map(float, prior.args))))
        elif r.value != 0.0:
            terms[lhs].append(Term(col, -1, float(r.value), (0.0, 1.0)))
    if set(variances) != set(block.variables):
        return None
    equations = []
    for name in block.observed + block.latent:
        index, value, prior = variances[name]
        equations.append(Equation(column(name), tuple(terms[name]), index, value, prior))
    scalings = []
    for g in range(nf):
        equation = p + g
        factor_eq = equations[equation]
        loadings = [(k, i) for k in range(p) for i, t in enumerate(equations[k].terms)
                    if t.col == g]
        markers = [(k, i) for k, i in loadings if equations[k].terms[i].index < 0]
        if (len(markers) == 1 and factor_eq.variance >= 0
                and all(t.index >= 0 for t in factor_eq.terms)):
            scalings.append(Scaling(g, equation, markers[0],
                                    tuple(li for li in loadings if li not in markers)))
    return FactorLevel(bi, tuple(range(p)), tuple(range(p, p + nf)), len(covariates),
                       tuple(equations), tuple(scalings), tuple(priors), CYCLES[bi],
                       STEPS[bi])


def _variance_prior(prior: Prior | None) -> tuple[float, float] | None:
    """IW(scale, df) form of a variance's prior, or None when not conjugate."""
    if prior is None:
        return 0.0, -2.0
    if prior.family == "inv_gamma":
        return 2.0 * prior.args[1], 2.0 * prior.args[0]
    if prior.family == "inv_wishart":
        return float(prior.args[0]), float(prior.args[1])
    return None


# ------------------------------------------------------------------------ pieces

class _Cursor:
    """Hands out consecutive slices of a 1-D array of variates."""

    def __init__(self, values: jax.Array):
        self.values, self.at = values, 0

    def take(self, n: int) -> jax.Array:
        out = self.values[self.at:self.at + n]
        self.at += n
        return out

    def done(self) -> None:
        assert self.at == self.values.shape[0], (self.at, self.values.shape)


def conditional_map(level: FactorLevel, mats) -> tuple[jax.Array, jax.Array]:
    """f_i | u_i ~ N(A u_i, Q^-1): returns A (nf, m) and the Cholesky factor of Q."""
    lam, theta, phi, coef_y, coef_f = _level_matrices(level, mats)
    lt = lam.T / theta                                        # Lambda' Theta^-1
    chol_q = linalg.cholesky(jnp.diag(1.0 / phi) + lt @ lam)
    rhs = lt @ (jnp.eye(level.p, level.m) - coef_y) + coef_f / phi[:, None]
    a = linalg.solve_upper_transposed(chol_q, linalg.solve_lower(chol_q, rhs))
    return a, chol_q


def draw_summaries(cursor: _Cursor, chi2: jax.Array, a: jax.Array, chol_q: jax.Array,
                   moments: jax.Array, moment_factor: jax.Array) -> jax.Array:
    """T = sum_i [f_i; u_i][f_i; u_i]' for f_i ~ N(A u_i, Q^-1) independently, given
    M = sum u u' (m, m) of n units and its Cholesky factor F (F F' = M), without
    drawing the f_i.

    With f_i = A u_i + L^-T xi_i (Q = L L'): sum u f' = M A' + E L^-1 where E = sum u xi'
    ~ F G (F F' = M, G standard normal m x nf), and sum xi xi' = G'G + W, W ~ Wishart(n - m,
    I) independent of G (the part of the xi orthogonal to the data). ``chi2`` (nf,):
    chi-square variates with n - m - i degrees of freedom (Bartlett factor of W).
    """
    m, nf = a.shape[1], a.shape[0]
    g = cursor.take(m * nf).reshape(m, nf)
    lower = cursor.take(nf * nf).reshape(nf, nf)
    inv_l = linalg.solve_lower(chol_q, jnp.eye(nf))
    noise_uf = moment_factor @ g @ inv_l
    bartlett = jnp.tril(lower, -1) + jnp.diag(jnp.sqrt(chi2))
    w = g.T @ g + bartlett @ bartlett.T
    s_uf = moments @ a.T + noise_uf
    cross = a @ noise_uf
    s_ff = a @ moments @ a.T + cross + cross.T + inv_l.T @ w @ inv_l
    return jnp.block([[s_ff, s_uf.T], [s_uf, moments]])


def _residual_weights(eq: Equation, terms, value) -> dict:
    """{column of v: weight} with sum weight * v = v[response] minus ``terms``, each
    at ``value(term)``."""
    weights = {eq.response: 1.0}
    for t in terms:
        weights[t.col] = weights.get(t.col, 0.0) - value(t)
    return weights


def _residual_vector(level: FactorLevel, eq: Equation, x, skip: int | None = None) -> jax.Array:
    """(nv,) r with r'v = the equation's residual at the current coefficients; term
    position ``skip`` is left out."""
    weights = _residual_weights(eq, [t for i, t in enumerate(eq.terms) if i != skip],
                                lambda t: x[t.index] if t.index >= 0 else t.value)
    return linalg.set_entries(jnp.zeros(level.nf + level.m), list(weights),
                              jnp.stack([jnp.asarray(w) for w in weights.values()]))


def conjugate_update(level: FactorLevel, x, t_sum, cursor: _Cursor, chi2: jax.Array):
    """Each equation's free coefficients given its variance (normal), then its variance
    given the new coefficients (inverse gamma), from T = sum v v'; written entry by
    entry (kernels.linalg's entries form), the new values placed in x at the end."""
    nv = level.nf + level.m
    entries = [[t_sum[a, b] for b in range(nv)] for a in range(nv)]  # unused ones: dropped
    variance_draws = iter(range(chi2.shape[0]))
    new: dict[int, jax.Array] = {}

    def value(term: Term):
        return new.get(term.index, x[term.index]) if term.index >= 0 else term.value

    def quadratic(weights: dict[int, object]):
        return sum(wa * wb * entries[a][b] for a, wa in weights.items()
                   for b, wb in weights.items())
    for eq in level.equations:
        free = eq.free_terms
        if free:
            var = new.get(eq.variance, x[eq.variance]) if eq.variance >= 0 else eq.variance_value
            fixed = _residual_weights(eq, [t for t in eq.terms if t.index < 0], value)
            precision = [[entries[ti.col][tj.col] / var + (1.0 / ti.prior[1] if i == j else 0.0)
                          for j, tj in enumerate(free[:i + 1])] for i, ti in enumerate(free)]
            linear = [sum(w * entries[t.col][c] for c, w in fixed.items()) / var
                      + t.prior[0] / t.prior[1] for t in free]
            draws = linalg.sample_entries(precision, linear, list(cursor.take(len(free))))
            new.update((t.index, d) for t, d in zip(free, draws))
        if eq.variance >= 0:
            residual = _residual_weights(eq, eq.terms, value)
            new[eq.variance] = (eq.variance_prior[0] + quadratic(residual)) / chi2[
                next(variance_draws)]
    if not new:
        return x
    return linalg.set_entries(x, list(new), jnp.stack([jnp.asarray(v) for v in new.values()]))


def _log_target(level: FactorLevel, x, scale_powers: dict[int, float]) -> jax.Array:
    """Log prior of the level's free parameters plus log |Jacobian| terms
    sum_k c_k log sqrt(x_k) of a reparameterisation by square roots of variances."""
    total = jnp.asarray(0.0)
    for k, prior in level.priors:
        total = total + log_prob(prior, x[k])
    for k, power in scale_powers.items():
        total = total + 0.5 * power * jnp.log(x[k])
    return total


def _scale_power(level: FactorLevel, sc: Scaling) -> float:
    """Exponent of |s| in the Jacobian of (phi, free loadings, factor coefficients) ->
    (lambda*, coefficients / s)."""
    return 1.0 - len(sc.loadings) + len(level.equations[sc.equation].free_terms)


def _rescaled(level: FactorLevel, x, sc: Scaling, s_old, s_new, lam_star):
    """x with factor ``sc`` rescaled: phi = s_new^2, factor coefficients * s_new / s_old,
    free loadings lambda* / s_new."""
    factor_eq = level.equations[sc.equation]
    x = x.at[factor_eq.variance].set(s_new ** 2)
    for t in factor_eq.free_terms:
        x = x.at[t.index].multiply(s_new / s_old)
    for j, (k, i) in enumerate(sc.loadings):
        index = level.equations[k].terms[i].index
        x = x.at[index].set(lam_star[j] / s_new)
    return x


def interweave_scales(level: FactorLevel, x, t_sum, cursor: _Cursor, uniforms: jax.Array):
    """ASIS step for the scale of each marker-identified factor, given T."""
    for u, sc in zip(uniforms, level.scalings):
        g = sc.factor
        s = jnp.sqrt(x[level.equations[sc.equation].variance])
        ff = t_sum[g, g] / s ** 2                              # sum f~^2
        members = (sc.marker,) + sc.loadings
        draws = []
        for k, i in members:
            eq = level.equations[k]
            r = _residual_vector(level, eq, x, skip=i)
            theta = x[eq.variance] if eq.variance >= 0 else eq.variance_value
            mean = (t_sum[g] @ r / s) / ff
            draws.append(mean + jnp.sqrt(theta / ff) * cursor.take(1)[0])
        marker_value = level.equations[sc.marker[0]].terms[sc.marker[1]].value
        s_new = draws[0] / marker_value
        proposal = _rescaled(level, x, sc, s, s_new, draws[1:])
        power = {level.equations[sc.equation].variance: _scale_power(level, sc)}
        log_ratio = _log_target(level, proposal, power) - _log_target(level, x, power)
        accept = jnp.log(u) < log_ratio
        x = jnp.where(accept, proposal, x)
        ratio = jnp.where(accept, s_new / s, 1.0)
        t_sum = t_sum.at[g].multiply(ratio).at[:, g].multiply(ratio)  # f_g -> ratio f_g
    return x


def _level_matrices(level: FactorLevel, mats):
    """Lambda (p, nf), theta (p,), phi (nf,), and the coefficient maps of the indicators
    and factors on u = [y, 1, x] (zero on the y columns): (p, m), (nf, m)."""
    b = mats[level.block]
    obs, lat = np.asarray(level.observed), np.asarray(level.latent)
    p, nf = level.p, level.nf
    lam = b["beta"][np.ix_(obs, lat)]
    theta = jnp.diagonal(b["psi"])[obs]
    phi = jnp.diagonal(b["psi"])[lat]
    coef_y = jnp.concatenate([jnp.zeros((p, p)), b["alpha"][obs][:, None], b["gamma"][obs]], 1)
    coef_f = jnp.concatenate([jnp.zeros((nf, p)), b["alpha"][lat][:, None], b["gamma"][lat]], 1)
    return lam, theta, phi, coef_y, coef_f


def _marginal_moments(level: FactorLevel, mats):
    """Marginal covariance of the indicators (p, p) and their residual map R (p, m) with
    residual R u = y - E[y | x]."""
    lam, theta, phi, coef_y, coef_f = _level_matrices(level, mats)
    sigma = (lam * phi) @ lam.T + jnp.diag(theta)
    return sigma, jnp.eye(level.p, level.m) - coef_y - lam @ coef_f


def _marginal_entries(level: FactorLevel, mats) -> tuple[list, list]:
    """:func:`_marginal_moments` entry by entry: Sigma[i][j] (j <= i) and R[i][a]."""
    b = mats[level.block]
    obs, lat = level.observed, level.latent
    lam = [[b["beta"][o, f] for f in lat] for o in obs]
    phi = [b["psi"][f, f] for f in lat]
    sigma = [[sum(lam[i][g] * phi[g] * lam[j][g] for g in range(level.nf))
              + (b["psi"][obs[i], obs[i]] if i == j else 0.0) for j in range(i + 1)]
             for i in range(level.p)]

    def coefficients(v):   # on u = [y, 1, x] beyond the y columns
        return [b["alpha"][v]] + [b["gamma"][v, c] for c in range(b["gamma"].shape[1])]
    of_factors = [coefficients(f) for f in lat]
    residual = [[float(a == i) for a in range(level.p)]
                + [-c - sum(lam[i][g] * of_factors[g][a] for g in range(level.nf))
                   for a, c in enumerate(coefficients(o))] for i, o in enumerate(obs)]
    return sigma, residual


def marginal_loglik(level: FactorLevel, mats, moments, n) -> jax.Array:
    """Log likelihood of the level's data (factors integrated out) from M = sum u u'."""
    if level.p <= linalg.SMALL:   # entry by entry: a few fused kernels
        sigma, r = _marginal_entries(level, mats)
        log_det, quad = linalg.trace_terms(sigma, r, linalg.lower_entries(moments))
        return -0.5 * (n * log_det + quad)
    sigma, r = _marginal_moments(level, mats)
    chol = linalg.cholesky(sigma, lapack=False)
    x = linalg.solve_lower(chol, r, lapack=False)
    quad = jnp.einsum("pm,mk,pk->", x, moments, x)
    return -n * jnp.sum(jnp.log(jnp.diagonal(chol))) - 0.5 * quad


def between_marginal_loglik(level: FactorLevel, mats, chol_c, z_hat, n, w) -> jax.Array:
    """Log density of the clusters' within estimates of their between values,
    z_hat_j ~ N(mu_j, Sigma_B + C / n_j): the between state and factors integrated out,
    up to terms free of the between parameters. Up to SMALL variables, per cluster by
    the LDL' recursion on the entries s_ab + c_ab / n_j as (J,) vectors
    (linalg.normal_terms); above, with C = L L' and L^-1 Sigma_B L^-T = V D V',
    Sigma_B + C / n_j = L V (D + 1 / n_j) V' L': one eigen decomposition instead of one
    factor per cluster."""
    sigma, r = _marginal_moments(level, mats)
    p = level.p
    mean = -jnp.concatenate([jnp.ones((w.shape[0], 1)), w], axis=1) @ r[:, p:].T
    if p <= linalg.SMALL:
        c = chol_c @ chol_c.T
        inverse_n = 1.0 / n
        entries = [[sigma[i, j] + c[i, j] * inverse_n for j in range(i + 1)] for i in range(p)]
        log_det, quad = linalg.normal_terms(entries, list((z_hat - mean).T))
        return -0.5 * (jnp.sum(log_det + quad)
                       - 2.0 * n.shape[0] * jnp.sum(jnp.log(jnp.diagonal(chol_c))))
    inv_l = linalg.solve_lower(chol_c, jnp.eye(p))
    d, v = jnp.linalg.eigh(inv_l @ sigma @ inv_l.T)
    t = (z_hat - mean) @ (v.T @ inv_l).T                          # (J, p)
    scale = d[None] + 1.0 / n[:, None]
    return -0.5 * jnp.sum(jnp.log(scale) + t * t / scale)


def grouped_between_marginal_loglik(level: FactorLevel, mats, chol_c, moments, sizes,
                                    clusters) -> jax.Array:
    """:func:`between_marginal_loglik` from clusters grouped by size: group g (size n_g,
    k_g clusters) has one covariance S_g = Sigma_B + C / n_g, and its clusters'
    residuals z_hat_j - mu_j = E v_j (E = [I, R_B], v_j = [z_hat_j, 1, w_j]) enter
    through M_g = sum v_j v_j' (``moments`` (G, m, m)): sum_j r_j' S_g^-1 r_j =
    tr(S_g^-1 E M_g E'). The cost no longer grows with the number of clusters."""
    p = level.p
    c = chol_c @ chol_c.T
    log_det_c = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol_c)))
    if p <= linalg.SMALL:   # entry by entry, the groups as a batch axis
        sigma, r = _marginal_entries(level, mats)
        covariance = [[sigma[i][j] + c[i, j] / sizes for j in range(i + 1)] for i in range(p)]
        log_det, quad = linalg.trace_terms(covariance, r, linalg.lower_entries(moments))   # E = R
        return -0.5 * (jnp.sum(clusters * (log_det - log_det_c)) + jnp.sum(quad))
    sigma, r = _marginal_moments(level, mats)
    spread = jnp.concatenate([jnp.eye(p), r[:, p:]], axis=1)                     # E
    chol = linalg.cholesky(sigma[None] + c[None] / sizes[:, None, None], lapack=False)
    x = linalg.solve_lower(chol, jnp.broadcast_to(spread, (sizes.shape[0],) + spread.shape),
                           lapack=False)                                    # (G, p, m)
    quad = jnp.sum(x * jnp.einsum("gpm,gmk->gpk", x, moments))
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1) - log_det_c
    return -0.5 * (jnp.sum(clusters * log_det) + quad)


class Proposal(NamedTuple):
    """Independence proposal of one level, adapted in warm-up: multivariate t (df
    ``T_DF``) with ``mean`` and scale factor ``chol`` on the scale of the coefficients
    and the square roots of the variances; ``running``/``m2``/``count`` accumulate the
    positions' mean and covariance (Welford) over the current adaptation window."""
    mean: jax.Array
    chol: jax.Array
    running: jax.Array
    m2: jax.Array
    count: jax.Array


T_DF = 10    # an integer: its chi-square variates are sums of squared normals
# proposal scale over the warm-up spread (within, between): a narrow independence
# proposal leaves the chain stuck in the tails (measured: runs of 50 sweeps near a zero
# between variance with 1.0); within, posteriors are close to Gaussian
SCALE = (1.2, 1.5)


def init_proposal(level: FactorLevel) -> Proposal:
    """The unadapted proposal (numpy: no eager JAX operation, each of which compiles a
    small program on its first use in a session)."""
    d = len(level.indices)
    return Proposal(np.zeros(d), np.eye(d), np.zeros(d), np.zeros((d, d)), np.asarray(0.0))


def _variance_positions(level: FactorLevel) -> np.ndarray:
    variances = {e.variance for e in level.equations}
    return np.asarray([k in variances for k in level.indices])


def independence_steps(level: FactorLevel, x, log_likelihood, proposal: Proposal, noise,
                       iteration, n_adapt: int):
    """``level.steps`` independence Metropolis steps on the level's parameters (variances
    as their square roots: near zero their posterior is far closer to Gaussian than on
    the log scale) against ``log_likelihood(x)`` plus their priors; noise leaves have a
    leading steps axis. The proposal is adapted during warm-up (``n_adapt`` sweeps, from
    the position after the first step) and frozen after it; the steps move from sweep
    n_adapt / 2 on (before, with ``iteration`` the same for every chain, they are
    skipped)."""
    idx, sds = np.asarray(level.indices), _variance_positions(level)

    def to_x(u):
        return linalg.set_entries(x, idx, jnp.where(sds, u * u, u))

    def log_weight(u, e_sq):
        """log target - log proposal on (coefficients, sqrt(variances)); ``e_sq``: the
        squared length of u's standardised offset from the proposal's mean."""
        positive = jnp.all(jnp.where(sds, u > 0, True))
        value = log_likelihood(to_x(u)) + _log_target(level, to_x(u), {}) + jnp.sum(
            jnp.where(sds, jnp.log(jnp.abs(u)), 0.0))
        value = value + 0.5 * (T_DF + len(idx)) * jnp.log1p(e_sq / T_DF)
        return jnp.where(jnp.isnan(value) | ~positive, -jnp.inf, value)

    # the proposals do not depend on the chain's position: the target at the current
    # position and at every proposal is one batched evaluation (one set of kernels, not
    # steps + 1), and only the accept/reject decisions run in sequence. A proposal's
    # standardised offset is its noise: no triangular solve
    u0 = jnp.where(sds, jnp.sqrt(x[idx]), x[idx])

    def run_steps(_):
        e0 = linalg.solve_lower(proposal.chol, (u0 - proposal.mean)[:, None],
                                lapack=False)[:, 0]
        stretch = jnp.sqrt(T_DF / noise["chi2"])                             # (steps,)
        proposals = proposal.mean + (noise["normals"] @ proposal.chol.T) * stretch[:, None]
        e_sq = jnp.concatenate([jnp.sum(e0 * e0)[None],
                                jnp.sum(noise["normals"] ** 2, axis=1) * stretch ** 2])
        points = jnp.concatenate([u0[None], proposals])
        weights = jax.vmap(log_weight)(points, e_sq)
        # the decisions in sequence on scalars (which point the chain is at): elementwise
        # operations that XLA fuses into one kernel, where a scan of the positions took
        # several kernels per step
        log_uniform = jnp.log(noise["uniform"])
        at, weight, first = 0, weights[0], None
        for k in range(proposals.shape[0]):
            accept = log_uniform[k] < weights[k + 1] - weight
            at = jnp.where(accept, k + 1, at)
            weight = jnp.where(accept, weights[k + 1], weight)
            first = at if first is None else first
        return points[at], points[first]

    u, first = jax.lax.cond(iteration >= n_adapt // 2, run_steps, lambda _: (u0, u0), None)
    return to_x(u), _adapt(level, proposal, first, iteration, n_adapt)


def _adapt(level: FactorLevel, proposal: Proposal, u, iteration, n_adapt: int) -> Proposal:
    """Record position u; two windows, [n/4, n/2) and [n/2, n): the proposal is set at
    the end of each (the first from the other blocks' draws alone, the second with the
    independence steps running). With ``iteration`` the same for every chain (the
    driver's sweep number), sweeps outside the windows skip this work."""
    def record(proposal: Proposal) -> Proposal:
        count = proposal.count + 1.0
        delta = u - proposal.running
        running = proposal.running + delta / count
        return proposal._replace(running=running, count=count,
                                 m2=proposal.m2 + jnp.outer(delta, u - running))

    def close(proposal: Proposal) -> Proposal:
        cov = (proposal.m2 / jnp.maximum(proposal.count - 1.0, 1.0)
               + 1e-8 * jnp.eye(u.shape[0]))
        return Proposal(proposal.running,
                        SCALE[level.block] * linalg.cholesky(cov, lapack=False),
                        jnp.zeros_like(proposal.running), jnp.zeros_like(proposal.m2),
                        jnp.zeros_like(proposal.count))

    window = (iteration >= n_adapt // 4) & (iteration < n_adapt)
    proposal = jax.lax.cond(window, record, lambda p: p, proposal)
    end = (iteration == n_adapt // 2 - 1) | (iteration == n_adapt - 1)
    return jax.lax.cond(end, close, lambda p: p, proposal)


def update_within(level: FactorLevel, layout: Layout, x, between, arrays, noise,
                  proposal: Proposal, iteration, n_adapt: int):
    """The within measurement block given the between state: ``cycles`` of latent
    summaries, conjugate draws and interweaving, then the independence steps."""
    spec = layout.spec
    prep = density.prepare(layout, spec.unpack(x))
    zb = density.assemble_all(layout, prep, between, arrays)
    moments = density.pooled_within_moments(layout, zb, arrays)
    n = arrays["n"].sum()
    n_var = noise["chi2"].shape[-1] - level.nf
    moment_factor = linalg.cholesky(moments, lapack=False)  # once for all cycles

    def cycle(x, cycle_noise):
        cursor = _Cursor(cycle_noise["normals"])
        chi2 = cycle_noise["chi2"]
        a, chol_q = conditional_map(level, spec.unpack(x))
        t_sum = draw_summaries(cursor, chi2[n_var:], a, chol_q, moments, moment_factor)
        x = conjugate_update(level, x, t_sum, cursor, chi2[:n_var])
        x = interweave_scales(level, x, t_sum, cursor, cycle_noise["uniforms"])
        cursor.done()
        return x, None

    x, _ = jax.lax.scan(cycle, x, {k: noise[k] for k in ("normals", "chi2", "uniforms")})
    return independence_steps(
        level, x, lambda xx: marginal_loglik(level, spec.unpack(xx), moments, n), proposal,
        noise["independence"], iteration, n_adapt)


def update_between(level: FactorLevel, layout: Layout, x, between, arrays, noise):
    """The between measurement block given the between state: ``cycles`` of per-cluster
    factor draws, conjugate draws and interweaving."""
    spec = layout.spec
    u = jnp.concatenate([between, jnp.ones((between.shape[0], 1)), arrays["w"]], axis=1)

    def cycle(x, cycle_noise):
        cursor = _Cursor(cycle_noise["normals"])
        a, chol_q = conditional_map(level, spec.unpack(x))
        f = u @ a.T + linalg.solve_upper_transposed(chol_q, cycle_noise["units"].T).T
        v = jnp.concatenate([f, u], axis=1)
        x = conjugate_update(level, x, v.T @ v, cursor, cycle_noise["chi2"])
        x = interweave_scales(level, x, v.T @ v, cursor, cycle_noise["uniforms"])
        cursor.done()
        return x, None

    x, _ = jax.lax.scan(cycle, x, {k: noise[k] for k in ("normals", "chi2", "uniforms", "units")})
    return x


def marginal_between(level: FactorLevel, layout: Layout, x, arrays, noise,
                     proposal: Proposal, iteration, n_adapt: int):
    """Independence steps for the between parameters with the between state and factors
    integrated out; the between state must be drawn afresh right after them.

    Given the within parameters, the within likelihood of cluster j is a Gaussian in its
    between values z_j with precision n_j C^-1, C^-1 = G' Sigma_W^-1 G (G: the within
    parts the state shifts), centred at z_hat_j = C G' Sigma_W^-1 sum_i r_i / n_j (r_i:
    the within residuals at z_j = 0)."""
    spec = layout.spec
    prep = density.prepare(layout, spec.unpack(x))
    p = layout.p
    parts = density.part_matrix(layout)[:, np.asarray(layout.stochastic)]        # G
    r0 = jnp.concatenate([jnp.eye(p), -prep.base[:, None], -prep.fa_gamma], axis=1)
    sums = jnp.einsum("pm,jm->jp", r0, arrays["moments"][:, :, p])          # sum_i r_i
    gs = linalg.solve_lower(prep.chol_sigma, jnp.asarray(parts))           # L_W^-1 G
    inv_k = linalg.solve_lower(linalg.cholesky(gs.T @ gs), jnp.eye(parts.shape[1]))
    c = inv_k.T @ inv_k                                                   # C
    h = sums @ linalg.solve_upper_transposed(prep.chol_sigma, gs)          # G' S_W^-1 r
    z_hat = (h @ c) / arrays["n"][:, None]
    chol_c = linalg.cholesky(c)
    if "group_member" in arrays:
        # per group of equal-sized clusters: the moments of v_j = [z_hat_j, 1, w_j]
        v = jnp.concatenate([z_hat, jnp.ones((z_hat.shape[0], 1)), arrays["w"]], axis=1)
        moments = jnp.einsum("jg,ja,jb->gab", arrays["group_member"], v, v)

        def log_likelihood(xx):
            return grouped_between_marginal_loglik(level, spec.unpack(xx), chol_c, moments,
                                                   arrays["group_size"],
                                                   arrays["group_clusters"])
    else:
        def log_likelihood(xx):
            return between_marginal_loglik(level, spec.unpack(xx), chol_c, z_hat, arrays["n"],
                                           arrays["w"])
    return independence_steps(level, x, log_likelihood, proposal, noise["independence"],
                              iteration, n_adapt)


def chi2_df(level: FactorLevel, n_units) -> jax.Array:
    """Degrees of freedom of the chi-square variates of one sweep (cycles x per cycle)."""
    return jnp.tile(jnp.asarray(level.noise_sizes()[1]) + n_units, level.cycles)


def draw_level_noise(level: FactorLevel, normal, chi2: jax.Array, n_clusters: int) -> dict:
    """Variates of one measurement block for the sweeps of a chunk (leading axis), from
    ``normal(shape)`` (standard normals with that shape per sweep) and its chi-square
    variates (sweeps, cycles x per cycle) drawn by the caller."""
    normals, _, n_uniforms = level.noise_sizes()
    cycles, steps, d = level.cycles, level.steps, len(level.indices)
    t_normals = normal((steps, T_DF))
    out = {"normals": normal((cycles, normals)),
           "chi2": chi2.reshape(chi2.shape[0], cycles, -1),
           "uniforms": ndtr(normal((cycles, n_uniforms))),
           "independence": {"normals": normal((steps, d)),
                            "chi2": jnp.sum(t_normals * t_normals, axis=-1),
                            "uniform": ndtr(normal((steps,)))}}
    if level.block == 1:
        out["units"] = normal((cycles, n_clusters, level.nf))
    return out
