"""Categorical (probit) outcomes: latent responses, thresholds and a location shift.

A categorical within-level variable with K categories is its latent response y* cut at
thresholds tau_1 < ... < tau_{K-1} (category k when tau_k < y* <= tau_{k+1}); its
within-level residual variance is fixed at 1 (Mplus's probit). The sampler keeps y* as
the variable's column of the outcome state, so every other block sees a continuous
outcome. Per sweep, for each categorical column c, given the row's other values and the
cluster's between values (y*_ic ~ N(mu_i, s^2) there, s the same for every row):

1. thresholds: a Metropolis-Hastings step with y*_c integrated out (Cowles 1996), whose
   proposal is the Laplace approximation at the current thresholds,
   N(tau + H^-1 g, H^-1) with the exact gradient g and negative Hessian H (tridiagonal)
   of the ordinal-probit log likelihood plus the normal prior; the reverse proposal is
   evaluated at the proposed point. With many observations the conditional is close to
   Gaussian and the step is close to an independent draw. The naive update, each
   threshold uniform between the neighbouring y* (Albert & Chib 1993), moves by about
   1/n per sweep (see bench/bench_categorical.py for the measured comparison).
2. y*_ic ~ N(mu_i, s^2) truncated to its category's interval (inverse CDF on the side of
   the interval nearer the mean's tail, stable far out); missing categories are drawn
   untruncated (imputation).
3. location shift (a generalized Gibbs move, Liu & Sabatti 2000): the thresholds, y*_c
   and the variable's between part (its random intercept) move together by d. The
   within density and the categories do not change, so d | rest is an exact Gaussian
   draw from the between density and the thresholds' prior: its spread is that of the
   threshold location given the between values, which does not shrink with cluster
   size (hierarchical centring, as for continuous intercepts).
4. scale move (generalized Gibbs again, on the multiplicative group; marginal data
   augmentation for the probit, van Dyk & Meng 2001, Lawrence et al. 2008): y*_c, its
   between part, its thresholds and the free parameters of its equations are multiplied
   by alpha^power (loadings on it, its slopes, intercept, between variance: power 1, 1,
   1, 2; slopes on it: -1). The categories do not change; only the fixed within
   residual variance 1 pins the scale. With y* held fixed, a loading on y*_c moves by
   its small conditional spread given y*, and y* follows the loading one sweep behind:
   the slowest direction of a probit factor model. The move draws that direction at
   once: log alpha by a Metropolis-Hastings step whose proposal is the Laplace
   approximation of its conditional (complete-data density, priors and Jacobian), with
   the reverse proposal evaluated at the proposed point.

Step 1 takes turns: with several categorical columns, each sweep moves the thresholds
of every other column (it costs most of the sweep, and thresholds mix far ahead of the
loadings once steps 3-4 move them too).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc, ndtri

from jaxsem.bayes import density
from jaxsem.bayes.layout import Layout
from jaxsem.errors import ModelError
from jaxsem.kernels import gaussian, linalg
from jaxsem.priors import Prior, default_prior, default_prior_of_kind, log_prob

LOG_SQRT_2PI = 0.5 * float(np.log(2 * np.pi))
SQRT_HALF = float(np.sqrt(0.5))


@dataclass(frozen=True)
class CategoricalColumn:
    """One categorical variable. ``column``: index into ``layout.within_observed``;
    ``tau_block``/``tau_row``: where its thresholds live in ``spec.unpack(x)``;
    ``free``: x indices of its K-1 thresholds (empty when they are fixed);
    ``prior_mean``/``prior_var``: their normal priors; ``shift``: index into
    ``layout.stochastic`` of its between part, -1 when it has none (no shift move)."""
    name: str
    column: int
    n_categories: int
    tau_block: int
    tau_row: int
    free: tuple[int, ...]
    prior_mean: tuple[float, ...]
    prior_var: tuple[float, ...]
    shift: int

    @property
    def n_thresholds(self) -> int:
        return self.n_categories - 1


def find_columns(layout: Layout, rows_of: dict[int, list], between: bool = False
                 ) -> tuple[CategoricalColumn, ...]:
    """The categorical columns of the layout (``between``: the between-only variables,
    ``column`` then indexing ``layout.known``), with their identification checked."""
    spec, table = layout.spec, layout.spec.partable
    out = []
    for column in (layout.between_categorical if between else layout.categorical):
        name = (layout.between[layout.known[column]] if between
                else layout.within_observed[column])
        rows = [r for r in table.rows if r.lhs == name]
        _check_identified(name, rows, level=2 if between else 1)
        thresholds = sorted((r for r in rows if r.op == "|"), key=lambda r: int(r.rhs[1:]))
        n_categories = len(thresholds) + 1
        block = next(i for i, b in enumerate(spec.blocks) if b.name == thresholds[0].block)
        free = [r.free - 1 for r in thresholds if r.free]
        if free and len(free) != len(thresholds):
            raise ModelError(
                f"some thresholds of '{name}' are fixed and others free; the Bayes "
                "estimator needs all of a variable's thresholds free, or all fixed")
        if any(len(rows_of[k]) != 1 for k in free):
            raise ModelError(
                f"a threshold of '{name}' shares its label with another parameter; "
                "equality constraints on thresholds are not supported by the Bayes "
                "estimator yet")
        priors = [r.prior or default_prior("threshold") for r in thresholds]
        for r, prior in zip(thresholds, priors):
            if r.free and prior.family != "normal":
                raise ModelError(f"the prior of threshold {name}${r.rhs[1:]} is {prior}; "
                                 "thresholds take normal priors")
        between_index = None if between else next(
            (k for i, k in layout.parts if i == column), None)
        shift = (layout.stochastic.index(between_index)
                 if free and between_index in layout.stochastic else -1)
        out.append(CategoricalColumn(
            name, column, n_categories, block, spec.blocks[block].observed.index(name),
            tuple(free), tuple(float(p.args[0]) for p in priors),
            tuple(float(p.args[1]) for p in priors), shift))
    return tuple(out)


@dataclass(frozen=True)
class ScaleMove:
    """Step 4 for one categorical column: ``column`` and ``shift`` as in
    CategoricalColumn; ``free`` (x indices) are multiplied by alpha ** ``powers``;
    ``priors`` their prior terms (thresholds included)."""
    column: int
    shift: int
    free: tuple[int, ...]
    powers: tuple[int, ...]
    priors: tuple[tuple[int, Prior], ...]


def scale_moves(columns: tuple[CategoricalColumn, ...], rows_of: dict[int, list]
                ) -> tuple[ScaleMove, ...]:
    """The scale move of every column with free thresholds. A free parameter is moved
    when all its rows agree on its power (a label shared with another variable's
    parameter keeps it still) and its prior is univariate; any choice of moved
    coordinates leaves the posterior invariant, this one follows the variable's scale."""
    out = []
    for col in columns:
        if not col.free:
            continue   # fixed thresholds cannot follow y*'s scale
        free, powers, priors = [], [], []
        for k, rows in sorted(rows_of.items()):
            found = {_scale_power(r, col.name) for r in rows}
            explicit = next((r.prior for r in rows if r.prior is not None), None)
            if len(found) != 1 or 0 in found or (
                    explicit is not None and explicit.family == "inv_wishart"):
                continue
            free.append(k)
            powers.append(found.pop())
            prior = explicit or default_prior_of_kind(rows[0].kind)
            if prior is not None:
                priors.append((k, prior))
        if any(k not in free or powers[free.index(k)] != 1 for k in col.free):
            continue   # the categories stay put only if the thresholds scale with y*
        out.append(ScaleMove(col.column, col.shift, tuple(free), tuple(powers), tuple(priors)))
    return tuple(out)


def _scale_power(row, name: str) -> int:
    """How a parameter row scales when variable ``name`` is multiplied by alpha."""
    if row.random:
        return 0
    if row.op in ("|", "~1"):
        return int(row.lhs == name)
    if row.op == "=~":
        return int(row.rhs == name)
    if row.op == "~~":
        return int(row.lhs == name) + int(row.rhs == name)
    if row.op == "~":
        return int(row.lhs == name) - int(row.rhs == name)
    return 0


def _check_identified(name: str, rows, level: int) -> None:
    """Probit identification: the residual variance of y* at its lowest level is fixed,
    and a free mean or intercept of y* goes with fixed thresholds (Mplus's alternative
    form)."""
    for r in rows:
        if r.op == "~~" and r.rhs == name and r.level == level and (r.free or r.value <= 0):
            what = "free" if r.free else f"fixed at {r.value:g}"
            where = "within-level" if level == 1 else "between-level"
            raise ModelError(
                f"the {where} residual variance of categorical '{name}' is {what}: "
                "its scale is then not identified (probit). Leave it at its default, "
                "fixed at 1")
    location = [r for r in rows if r.op == "~1" and r.free]
    if location and any(r.op == "|" and r.free for r in rows):
        raise ModelError(
            f"categorical '{name}' has a free {location[0].kind} and free thresholds: its "
            "location is then not identified. Fix the mean (the default) or fix the first "
            f"threshold, e.g. [{name}$1@0] (Mplus's alternative parameterization)")


# ------------------------------------------------------------------------ pieces

def _phi(x: jax.Array) -> jax.Array:
    """Standard normal CDF through erfc: relatively precise in the lower tail down to
    about -37, and a third of the cost of jax.scipy.special.ndtr."""
    return 0.5 * erfc(-SQRT_HALF * x)


def _log_interval(a: jax.Array, b: jax.Array) -> jax.Array:
    """log(Phi(b) - Phi(a)) for a < b, computed on the side of 0 where it is precise
    (beyond -30 sd, where Phi underflows, from the Mills-ratio asymptote)."""
    flip = (a + b) > 0
    lo, hi = jnp.where(flip, -b, a), jnp.where(flip, -a, b)
    far = hi < -30.0
    # each branch sees harmless inputs where it is not used (finite values and gradients)
    direct = jnp.log(_phi(jnp.where(far, 0.0, hi)) - _phi(jnp.where(far, -1.0, lo)))
    log_hi = _log_phi_tail(jnp.where(far, hi, -40.0))
    log_lo = _log_phi_tail(jnp.where(far, lo, -41.0))
    tail = log_hi + jnp.log(-jnp.expm1(log_lo - log_hi))
    return jnp.where(far, tail, direct)


def _log_phi_tail(x: jax.Array) -> jax.Array:
    """log Phi(x) for x below -30 (Mills-ratio expansion to x^-4; error below 1e-8)."""
    inv2 = 1.0 / (x * x)
    return -0.5 * x * x - jnp.log(-x) - LOG_SQRT_2PI + jnp.log1p(-inv2 + 3.0 * inv2 * inv2)


def truncated_normal(mu: jax.Array, s, lower: jax.Array, upper: jax.Array,
                     z: jax.Array) -> jax.Array:
    """N(mu, s^2) restricted to (lower, upper), by inverse CDF from standard normals z;
    the interval is reflected to the lower tail first, where Phi keeps its precision."""
    a, b = (lower - mu) / s, (upper - mu) / s
    flip = (a + b) > 0
    lo, hi = jnp.where(flip, -b, a), jnp.where(flip, -a, b)
    p_lo, p_hi = _phi(lo), _phi(hi)
    t = jnp.clip(ndtri(p_lo + _phi(z) * (p_hi - p_lo)), lo, hi)
    t = jnp.where(p_hi > 0, t, hi)          # beyond -37 sd: the bound nearest the mean
    return mu + s * jnp.where(flip, -t, t)


def _bounds(tau: jax.Array, codes: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(N,) lower and upper cut of each row's category; (-inf, inf) where missing."""
    cuts = jnp.concatenate([jnp.array([-jnp.inf]), tau, jnp.array([jnp.inf])])
    k = jnp.where(codes >= 0, codes, 0).astype(jnp.int32)
    missing = codes < 0
    return (jnp.where(missing, -jnp.inf, cuts[k]), jnp.where(missing, jnp.inf, cuts[k + 1]))


def threshold_terms(tau: jax.Array, active: jax.Array, mu: jax.Array, s, codes: jax.Array,
                    prior_mean: jax.Array, prior_var: jax.Array):
    """Log posterior (up to a constant), gradient (T,) and negative Hessian (T, T) of a
    column's thresholds tau (T,) given the conditional means mu (N,) and sds s (scalar
    or (N,)) of its latent responses, y* integrated out. Entries where ``active`` is False are padding
    (the column has fewer thresholds): gradient 0, unit curvature. -inf log posterior
    when the thresholds are not increasing."""
    width = tau.shape[0]
    seen = codes >= 0
    lower, upper = _bounds(jnp.where(active, tau, jnp.inf), codes)
    a, b = (lower - mu) / s, (upper - mu) / s
    log_p = jnp.where(seen, _log_interval(a, b), 0.0)
    a_fin, b_fin = jnp.isfinite(a), jnp.isfinite(b)
    a0, b0 = jnp.where(a_fin, a, 0.0), jnp.where(b_fin, b, 0.0)
    r_a = jnp.where(seen & a_fin, jnp.exp(-0.5 * a0 * a0 - LOG_SQRT_2PI - log_p), 0.0)
    r_b = jnp.where(seen & b_fin, jnp.exp(-0.5 * b0 * b0 - LOG_SQRT_2PI - log_p), 0.0)
    k = jnp.where(seen, codes, -2).astype(jnp.int32)
    on_upper = jax.nn.one_hot(k, width)          # row's upper cut is threshold k
    on_lower = jax.nn.one_hot(k - 1, width)      # row's lower cut is threshold k - 1
    deviation = jnp.where(active, tau - prior_mean, 0.0)
    grad = on_upper.T @ (r_b / s) - on_lower.T @ (r_a / s) - deviation / prior_var
    curv_upper = (b0 * r_b + r_b * r_b) / s ** 2
    curv_lower = (-a0 * r_a + r_a * r_a) / s ** 2
    diag = on_upper.T @ curv_upper + on_lower.T @ curv_lower + 1.0 / prior_var
    off = (on_lower.T @ (-r_a * r_b / s ** 2))[:-1]   # between threshold k and k + 1
    neg_hessian = (jnp.diag(jnp.where(active, diag, 1.0)) + jnp.diag(off, 1)
                   + jnp.diag(off, -1))
    ordered = jnp.all(jnp.where(active[1:], jnp.diff(tau) > 0, True))
    log_post = log_p.sum() - 0.5 * jnp.sum(deviation ** 2 / prior_var)
    return jnp.where(ordered, log_post, -jnp.inf), jnp.where(active, grad, 0.0), neg_hessian


def _laplace(terms, tau):
    """Mean and Cholesky factor of the precision of the Newton proposal at tau."""
    _, grad, neg_hessian = terms
    chol = linalg.cholesky(neg_hessian)
    step = linalg.solve_upper_transposed(chol, linalg.solve_lower(chol, grad[:, None]))[:, 0]
    return tau + step, chol


def _log_proposal(point, mean, chol) -> jax.Array:
    v = chol.T @ (point - mean)
    return -0.5 * jnp.sum(v * v) + jnp.sum(jnp.log(jnp.diag(chol)))


def threshold_step(tau, active, mu, s, codes, prior_mean, prior_var, z, uniform_z):
    """One Metropolis-Hastings move of a column's thresholds (T,), y* integrated out;
    ``z`` (T,) standard normals (0 on padding), ``uniform_z`` () a standard normal for
    the acceptance test."""
    def terms(t):
        return threshold_terms(t, active, mu, s, codes, prior_mean, prior_var)

    here = terms(tau)
    mean, chol = _laplace(here, tau)
    proposal = mean + linalg.solve_upper_transposed(chol, z[:, None])[:, 0]
    there = terms(proposal)
    back_mean, back_chol = _laplace(there, proposal)
    log_ratio = (there[0] - here[0] + _log_proposal(tau, back_mean, back_chol)
                 - _log_proposal(proposal, mean, chol))
    accept = jnp.isfinite(log_ratio) & (jnp.log(_phi(uniform_z)) < log_ratio)
    return jnp.where(accept, proposal, tau)


def row_means(layout: Layout, prep: density.Prepared, zb: jax.Array, arrays) -> jax.Array:
    """(N, p) within-level means of every row's outcomes given its cluster's between
    values zb (J, nb)."""
    design = jax.vmap(lambda z: density.cluster_design(layout, prep, z))(zb)  # (J, p, 1+q)
    c1 = jnp.concatenate([jnp.ones((arrays["c"].shape[0], 1)), arrays["c"]], axis=1)
    return jnp.einsum("npk,nk->np", design[arrays["cluster"]], c1)


def _padded(columns: tuple[CategoricalColumn, ...], values) -> np.ndarray:
    """(n_columns, T) per-column tuples padded with 1 to the widest column."""
    width = max(col.n_thresholds for col in columns)
    out = np.ones((len(columns), width))
    for i, col in enumerate(columns):
        out[i, :col.n_thresholds] = values(col)
    return out


def update(columns: tuple[CategoricalColumn, ...], layout: Layout, x, between, y, arrays,
           noise, parity=0):
    """Steps 1-3 of the module docstring: steps 1-2 column after column (one compiled
    body scanned over the columns), then one joint shift of every column's location.
    With several columns, step 1 runs for the columns whose position has the sweep's
    ``parity`` (() int, the same for every chain, so the skipped work is not done):
    threshold moves cost most of the sweep and mix well ahead of the other parameters.

    ``noise``: "latent" (N, n_columns), "steps" (n_columns, T + 1) and "shift"
    (n_shifted,) standard normals. Returns the new (x, between, y).
    """
    spec = layout.spec
    mats = spec.unpack(x)
    prep = density.prepare(layout, mats)
    zb = density.assemble_all(layout, prep, between, arrays)
    mean = row_means(layout, prep, zb, arrays)
    precision = linalg.solve_upper_transposed(
        prep.chol_sigma, linalg.solve_lower(prep.chol_sigma, jnp.eye(layout.p)))
    width = max(col.n_thresholds for col in columns)
    taus = jnp.stack([jnp.pad(mats[col.tau_block]["tau"][col.tau_row, :col.n_thresholds],
                              (0, width - col.n_thresholds)) for col in columns])
    active = jnp.asarray(_padded(columns, lambda col: 2.0) > 1.5)
    static = (jnp.asarray([col.column for col in columns]), taus, active,
              jnp.asarray([bool(col.free) for col in columns]),
              jnp.asarray(_padded(columns, lambda col: col.prior_mean)),
              jnp.asarray(_padded(columns, lambda col: col.prior_var)),
              arrays["codes"].T, noise["latent"].T, noise["steps"],
              jnp.asarray(np.arange(len(columns)) % 2 == 0) == (parity % 2 == 0)
              if len(columns) > 1 else jnp.ones(1, dtype=bool))

    def one_column(y, inputs):
        c, tau, act, free, prior_mean, prior_var, codes, latent_z, steps, turn = inputs
        s = 1.0 / jnp.sqrt(precision[c, c])
        others = (y - mean).at[:, c].set(0.0)
        mu = mean[:, c] - others @ precision[:, c] / precision[c, c]
        tau = jax.lax.cond(free & turn, lambda: threshold_step(
            tau, act, mu, s, codes, prior_mean, prior_var, jnp.where(act, steps[:-1], 0.0),
            steps[-1]), lambda: tau)
        lower, upper = _bounds(jnp.where(act, tau, jnp.inf), codes)
        return y.at[:, c].set(truncated_normal(mu, s, lower, upper, latent_z)), tau

    y, taus = jax.lax.scan(one_column, y, static)
    for i, col in enumerate(columns):
        if col.free:
            x = x.at[np.asarray(col.free)].set(taus[i, :col.n_thresholds])
    shifted = [col for col in columns if col.shift >= 0]
    if shifted:
        d = _draw_shift(shifted, layout, prep, x, between, arrays, noise["shift"])
        for k, col in enumerate(shifted):
            between = between.at[:, col.shift].add(d[k])
            y = y.at[:, col.column].add(d[k])
            x = x.at[np.asarray(col.free)].add(d[k])
    return x, between, y


def update_between(columns: tuple[CategoricalColumn, ...], layout: Layout, x, between,
                   known, arrays, noise):
    """Steps 1-2 for categorical between-only variables, whose latent responses are
    columns of ``known`` (J, |K|): per cluster, b*_j | the cluster's other between values
    is Gaussian (its between density is quadratic in b*_j: values at 0 and +-1 give it,
    kernels.gaussian.quadratic_points).
    ``noise``: "latent" (J, n_columns), "steps" (n_columns, T + 1). Returns (x, known)."""
    mats = layout.spec.unpack(x)
    prep = density.prepare(layout, mats)
    for i, col in enumerate(columns):
        def per_cluster(value):
            values = known.at[:, col.column].set(value)
            zb = density.assemble_all(layout, prep, between, dict(arrays, known=values))
            return jax.vmap(lambda z, w: density.between_cluster_logdensity(
                layout, prep, z, w))(zb, arrays["w"])

        ones = jnp.ones(layout.n_clusters)
        values = jnp.stack([per_cluster(point * ones)
                            for point in gaussian.quadratic_points(1)[:, 0]])
        grad, precision = gaussian.quadratic_from_values(values, 1)
        mu, s = grad[:, 0] / precision[:, 0, 0], 1.0 / jnp.sqrt(precision[:, 0, 0])
        tau = mats[col.tau_block]["tau"][col.tau_row, :col.n_thresholds]
        codes = arrays["between_codes"][:, i]
        if col.free:
            steps = noise["steps"][i]
            tau = threshold_step(tau, jnp.ones(col.n_thresholds, dtype=bool), mu, s, codes,
                                 jnp.asarray(col.prior_mean), jnp.asarray(col.prior_var),
                                 steps[:col.n_thresholds], steps[-1])
            x = x.at[np.asarray(col.free)].set(tau)
        lower, upper = _bounds(tau, codes)
        known = known.at[:, col.column].set(
            truncated_normal(mu, s, lower, upper, noise["latent"][:, i]))
    return x, known


def _draw_shift(shifted: list[CategoricalColumn], layout: Layout, prep: density.Prepared,
                x, between, arrays, z) -> jax.Array:
    """(S,) the common moves d of each shifted column's thresholds, latent responses and
    between part: an exact draw from their Gaussian conditional (between density +
    threshold priors, quadratic in d: its values at kernels.gaussian.quadratic_points
    give it)."""
    n = len(shifted)
    columns = np.asarray([col.shift for col in shifted])

    def log_density(d):
        zb = density.assemble_all(layout, prep, between.at[:, columns].add(d), arrays)
        value = jax.vmap(
            lambda z_j, w_j: density.between_cluster_logdensity(layout, prep, z_j, w_j))(
            zb, arrays["w"]).sum()
        for k, col in enumerate(shifted):
            tau = x[np.asarray(col.free)] + d[k]
            value = value - 0.5 * jnp.sum((tau - jnp.asarray(col.prior_mean)) ** 2
                                          / jnp.asarray(col.prior_var))
        return value

    values = jax.vmap(log_density)(jnp.asarray(gaussian.quadratic_points(n)))
    grad, precision = gaussian.quadratic_from_values(values[:, None], n)
    return gaussian.sample_from_precision(z, precision[0], grad[0])


def rescale(moves: tuple[ScaleMove, ...], layout: Layout, x, between, y, arrays, z):
    """Step 4, every column at once: the scales alpha_c = exp(t_c) act coordinatewise (a
    product group), and t (n_moves,) takes one Metropolis-Hastings step whose proposal
    is the Laplace approximation N(t + H^-1 g, H^-1) of its conditional (complete-data
    density, priors and Jacobian), the reverse proposal evaluated at the proposed point.
    ``arrays["moments"]`` (the cluster moments of y) are rescaled with y. ``z``
    (n_moves + 1,) standard normals. Returns (x, between, y, arrays).

    The density comes from moments pooled over clusters when the layout allows it
    (collapsed between factors, no random slopes, every moved column's between part in
    the state: O(p^3) per evaluation whatever the number of clusters), else cluster by
    cluster. Scaling a column of y scales a row and a column of every moment matrix."""
    with_between = {i for i, _ in layout.parts}
    pooled = (layout.two_level and bool(layout.collapsed) and not layout.random_slopes
              and all(move.shift >= 0 or move.column not in with_between for move in moves))
    log_target, factors = scale_target(moves, layout, x, between, y, arrays, pooled)
    t = _laplace_mh(log_target, z[:-1], z[-1])
    f_x, f_y, f_state, _ = factors(t)
    arrays = dict(arrays, moments=arrays["moments"] * jnp.outer(f_y, f_y))
    return x * f_x, between * f_state, y * f_y[:y.shape[1]], arrays


def scale_target(moves: tuple[ScaleMove, ...], layout: Layout, x, between, y, arrays,
                 pooled: bool):
    """(log_target, factors) of step 4: log_target(t) (n_moves,) the log density of the
    state scaled by alpha = exp(t) (complete data, priors of the moved parameters,
    Jacobian); factors(t) the multipliers of x, of the moment rows/columns, of the
    between state and of the pooled between moments. ``pooled``: from moments pooled
    over clusters (the caller checks that the layout allows it), else per cluster."""
    spec = layout.spec
    m, n_state = arrays["moments"].shape[-1], between.shape[1]
    powers = np.zeros((len(moves), x.shape[0]))          # exponent of alpha_c per x entry
    on_y, on_state = np.zeros((len(moves), m)), np.zeros((len(moves), n_state))
    on_innovation = np.zeros((len(moves), len(layout.innovations)))
    jacobian = np.zeros(len(moves))
    for i, move in enumerate(moves):
        powers[i, list(move.free)] = move.powers
        on_y[i, move.column] = 1.0
        if move.shift >= 0:
            on_state[i, move.shift] = 1.0
            on_innovation[i, layout.innovations.index(layout.stochastic[move.shift])] = 1.0
        jacobian[i] = (y.shape[0] + (layout.n_clusters if move.shift >= 0 else 0)
                       + sum(move.powers))
    priors = dict(prior for move in moves for prior in move.priors)
    if pooled:
        zb = density.assemble_all(layout, density.prepare(layout, spec.unpack(x)), between,
                                  arrays)
        stats_w = density.pooled_within_moments(layout, zb, arrays)
        stats_b = density.pooled_between_moments(layout, zb, arrays)
        n_total = arrays["n"].sum()

    def factors(t):
        return (jnp.exp(t @ powers), jnp.exp(t @ on_y), jnp.exp(t @ on_state),
                jnp.exp(jnp.concatenate([t @ on_innovation, jnp.zeros(
                    stats_b.shape[0] - len(layout.innovations))])) if pooled else None)

    def log_target(t):
        f_x, f_y, f_state, f_b = factors(t)
        new_x = x * f_x
        mats = spec.unpack(new_x)
        if pooled:
            prep = density.prepare(layout, mats)
            value = (density.within_pooled_loglik(layout, prep, stats_w * jnp.outer(f_y, f_y),
                                                  n_total)
                     + density.between_pooled_logdensity(layout, prep,
                                                         stats_b * jnp.outer(f_b, f_b)))
        else:
            moments = arrays["moments"] * jnp.outer(f_y, f_y)
            value = density.complete_logdensity(layout, mats, dict(arrays, moments=moments),
                                                between * f_state)
        for k, prior in priors.items():
            value = value + log_prob(prior, new_x[k])
        return value + t @ jacobian

    return log_target, factors


def _laplace_mh(log_target, z, uniform_z, step: float = 0.02) -> jax.Array:
    """One Metropolis-Hastings move from t = 0 (d,) of a vector with log density
    ``log_target``: proposal N(t + H^-1 g, H^-1), with the gradient g and negative
    Hessian H at the current point from central differences of width ``step``
    (kernels.gaussian.quadratic_points, one batched evaluation; eigenvalues, by Jacobi
    rotations, floored at 1e-2), the reverse proposal from the proposed point. Any deterministic rule of the
    point gives a valid proposal; differences compile in a fraction of autodiff's time.
    Returns the accepted t (0 when rejected)."""
    d = z.shape[0]
    points = step * jnp.asarray(gaussian.quadratic_points(d))

    def laplace(t):
        values = jax.vmap(log_target)(t + points)
        grad, neg_hessian = gaussian.quadratic_from_values(values[:, None], d)
        values_h, vectors = linalg.symmetric_eigen(neg_hessian[0] / step ** 2)
        values_h = jnp.maximum(values_h, 1e-2)
        mean = t + vectors @ ((vectors.T @ grad[0] / step) / values_h)
        return values[0], mean, vectors, values_h

    def log_q(point, mean, vectors, values):
        v = vectors.T @ (point - mean)
        return -0.5 * jnp.sum(values * v * v) + 0.5 * jnp.sum(jnp.log(values))

    here, mean, vectors, values = laplace(jnp.zeros_like(z))
    proposal = mean + vectors @ (z / jnp.sqrt(values))
    there, *back = laplace(proposal)
    log_ratio = there - here + log_q(jnp.zeros_like(z), *back) - log_q(proposal, mean, vectors,
                                                                        values)
    accept = jnp.isfinite(log_ratio) & (jnp.log(_phi(uniform_z)) < log_ratio)
    return jnp.where(accept, proposal, jnp.zeros_like(z))


def start_thresholds(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """(K-1,) normal quantiles of the cumulative category proportions (codes (N,),
    -1 where missing): the default starting thresholds."""
    from statistics import NormalDist  # noqa: PLC0415

    counts = np.bincount(codes[codes >= 0].astype(int), minlength=n_categories)
    upper = np.cumsum(counts)[:-1] / counts.sum()
    return np.array([NormalDist().inv_cdf(float(np.clip(u, 1e-6, 1 - 1e-6))) for u in upper])
