"""The Gibbs schedule: which block updates which parameters, and one sweep.

A sweep is an ordered chain of blocks, each a pure function of (key, state):

0. categorical outcomes (if any, bayes.categorical): thresholds with the latent
   responses integrated out, latent responses, a location shift (between-only
   categorical variables first: their latent responses are the ``known`` columns);
1. missing outcomes (if any): drawn from their within-level conditional, then the
   per-cluster moment matrices are recomputed;
2. between state: per cluster an exact Gaussian draw (quadratic log density, derived by
   autodiff: kernels.gaussian);
3. coefficients whose complete-data log density is quadratic (levels with no
   marginalised latent variables, acyclic paths, normal priors): one joint exact
   Gaussian draw, equality labels included;
3b. levels that are factor models (bayes.factor): latent summaries drawn exactly,
   conjugate draws, interweaving for factor scales and independence Metropolis steps
   on the level's marginal likelihood (the between level's run before step 2, with the
   between state integrated out);
4. covariance blocks of such levels (full blocks with inverse-Wishart or default priors;
   single variances are 1 x 1 blocks): conjugate inverse-Wishart draws;
5. everything else (loadings and variances of within factors, parameters joined by
   labels across kinds, non-conjugate priors): one NUTS move on an unconstrained scale
   (log variances), adapted during warm-up (kernels.hmc).

A random-coefficient regression (bayes.randomcoef: one continuous outcome, between
variables that are its random coefficients) takes blocks 2-4 as one fused pass with the
same draws.

Adding a block type means adding a function here and a line in ``sweep``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsem.bayes import categorical, density, factor, quadratic, randomcoef
from jaxsem.bayes.layout import Layout
from jaxsem.errors import ModelError
from jaxsem.kernels import conjugate, gaussian, hmc, linalg, normal
from jaxsem.priors import Prior, default_prior_of_kind, log_prob

COEFFICIENT_KINDS = ("loading", "regression", "intercept", "mean")
VARIANCE_KINDS = ("variance", "residual_variance")


@dataclass(frozen=True)
class CovarianceBlock:
    """A full block of an innovation covariance matrix with a conjugate update.

    ``level``: 0 within, 1 between. ``members``: indices into the level's innovation
    vector (within: observed parts; between: ``layout.innovations``). ``entries``:
    (i, j, x index) for i <= j. ``prior_scale`` (flattened k x k) and ``prior_df``:
    IW(S0, df0) (Mplus default IW(0, -k-1); IG(a, b) on a single variance is IW(2b, 2a)).
    """
    level: int
    members: tuple[int, ...]
    entries: tuple[tuple[int, int, int], ...]
    prior_scale: tuple[float, ...]
    prior_df: float


@dataclass(frozen=True)
class Schedule:
    """Static assignment of every free parameter (0-based index of x) to one block."""
    coefficients: tuple[int, ...]
    covariance_blocks: tuple[CovarianceBlock, ...]
    nuts: tuple[int, ...]
    nuts_log_scale: tuple[bool, ...]
    priors: tuple[tuple[int, Prior], ...]   # log-prior terms outside covariance blocks
    factor_levels: tuple[factor.FactorLevel, ...] = ()
    categorical: tuple[categorical.CategoricalColumn, ...] = ()
    between_categorical: tuple[categorical.CategoricalColumn, ...] = ()
    scale_moves: tuple[categorical.ScaleMove, ...] = ()

    @property
    def latent_responses(self) -> bool:
        """Whether a sweep draws latent responses (categorical outcomes)."""
        return bool(self.categorical or self.between_categorical)

    def describe(self, names: list[str]) -> list[str]:
        """One line per block, for the report."""
        lines = []
        if self.coefficients:
            lines.append("Gaussian (exact, joint): "
                         + ", ".join(names[k] for k in self.coefficients))
        for block in self.covariance_blocks:
            label = "inverse gamma" if len(block.members) == 1 else "inverse Wishart"
            lines.append(f"{label}: " + ", ".join(names[k] for _, _, k in block.entries))
        for level in self.factor_levels:
            lines.append(f"factor model, {'within' if level.block == 0 else 'between'} "
                         "(latent summaries, conjugate, interweaving, independence MH): "
                         + ", ".join(names[k] for k in level.indices))
        thresholds = [k for col in self.categorical for k in col.free]
        if thresholds:
            turns = ", variables taking turns" if len(self.categorical) > 1 else ""
            lines.append("thresholds (Metropolis-Hastings, latent responses integrated out, "
                         f"Laplace proposal{turns}; location shift with the random "
                         "intercepts): " + ", ".join(names[k] for k in thresholds))
        if self.scale_moves:
            moved = sorted({k for move in self.scale_moves for k in move.free})
            lines.append("scale of each categorical variable's latent response (joint "
                         "Metropolis-Hastings, Laplace proposal) with: "
                         + ", ".join(names[k] for k in moved))
        thresholds = [k for col in self.between_categorical for k in col.free]
        if thresholds:
            lines.append("between-level thresholds (Metropolis-Hastings, latent responses "
                         "integrated out, Laplace proposal): "
                         + ", ".join(names[k] for k in thresholds))
        if self.nuts:
            lines.append("NUTS (adapted in warm-up): " + ", ".join(names[k] for k in self.nuts))
        return lines


def build_schedule(layout: Layout) -> Schedule:
    table = layout.spec.partable
    rows_of: dict[int, list] = {}
    for r in table.rows:
        if r.free:
            rows_of.setdefault(r.free - 1, []).append(r)
    within_complete = not layout.has_within_latent and _acyclic(table, table.blocks[0].name)
    between_name = table.blocks[1].name if layout.two_level else None
    between_acyclic = (layout.two_level and not layout.collapsed
                       and _acyclic(table, between_name))
    innovation_vars = {layout.between[k] for k in layout.innovations}
    factor_levels = factor.find_factor_levels(layout, rows_of)
    columns = categorical.find_columns(layout, rows_of)
    between_columns = categorical.find_columns(layout, rows_of, between=True)
    in_factor_levels = ({k for level in factor_levels for k in level.indices}
                        | {k for col in columns + between_columns for k in col.free})

    def coefficient_ok(row) -> bool:
        if row.kind not in COEFFICIENT_KINDS:
            return False
        if row.prior is not None and row.prior.family != "normal":
            return False
        if row.level == 1:
            return within_complete
        equation = row.rhs if row.op == "=~" else row.lhs
        return between_acyclic and equation in innovation_vars

    coefficients = tuple(k for k, rows in sorted(rows_of.items())
                         if k not in in_factor_levels and all(coefficient_ok(r) for r in rows))
    blocks: list[CovarianceBlock] = []
    if within_complete:
        blocks += _covariance_blocks(table, 0, table.blocks[0].name, list(layout.within_observed),
                                     rows_of)
    if layout.two_level and not layout.collapsed:
        members = [layout.between[k] for k in layout.innovations]
        blocks += _covariance_blocks(table, 1, between_name, members, rows_of)
    in_blocks = {k for b in blocks for _, _, k in b.entries} | in_factor_levels
    nuts = tuple(k for k in sorted(rows_of) if k not in in_blocks and k not in coefficients)
    log_scale = tuple(all(r.kind in VARIANCE_KINDS for r in rows_of[k]) for k in nuts)
    priors = []
    for k, rows in sorted(rows_of.items()):
        if k in in_blocks:
            continue
        prior = next((r.prior for r in rows if r.prior is not None), None)
        if prior is None:
            kind = rows[0].kind
            if kind in VARIANCE_KINDS or kind.endswith("covariance"):
                continue  # Mplus defaults IG(-1, 0) and IW(0, -p-1) are flat
            prior = default_prior_of_kind(kind)
        if prior.family == "inv_wishart" and rows[0].lhs != rows[0].rhs:
            raise ModelError(f"the inverse-Wishart prior on {rows[0].lhs} WITH {rows[0].rhs} "
                             "needs a full covariance block with free variances and "
                             "covariances; other uses are not supported yet")
        priors.append((k, prior))
    return Schedule(coefficients, tuple(blocks), nuts, log_scale, tuple(priors), factor_levels,
                    columns, between_columns, categorical.scale_moves(columns, rows_of))


def _acyclic(table, block: str) -> bool:
    """True if the directed paths (loadings, regressions) of a block have no cycle."""
    edges: dict[str, set[str]] = {}
    covariates = set(next(b for b in table.blocks if b.name == block).covariates)
    for r in table.rows:
        if r.block != block or r.op not in ("=~", "~") or (r.free == 0 and r.value == 0.0):
            continue
        src, dst = (r.lhs, r.rhs) if r.op == "=~" else (r.rhs, r.lhs)
        if src not in covariates:
            edges.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1 or (state.get(nxt) is None and not visit(nxt)):
                return False
        state[node] = 2
        return True

    return all(state.get(n) == 2 or visit(n) for n in list(edges))


def _covariance_blocks(table, level: int, block: str, members: list[str],
                       rows_of: dict[int, list]) -> list[CovarianceBlock]:
    """Conjugate blocks among ``members`` of a level's innovation covariance matrix."""
    psi = {}
    for r in table.rows:
        if r.block == block and r.op == "~~" and r.lhs in members and r.rhs in members:
            psi[frozenset((r.lhs, r.rhs))] = r
    parent = {m: m for m in members}

    def find(v):
        while parent[v] != v:
            v = parent[v]
        return v
    for key, r in psi.items():
        if len(key) == 2 and r.free:
            a, b = tuple(key)
            parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for m in members:
        groups.setdefault(find(m), []).append(m)
    out = []
    for group in groups.values():
        entries, priors, ok = [], [], True
        for i, a in enumerate(group):
            for j, b in enumerate(group[i:], start=i):
                r = psi.get(frozenset((a, b)))
                if r is None or not r.free or r.random or len(rows_of[r.free - 1]) != 1:
                    ok = False
                    break
                entries.append((i, j, r.free - 1))
                priors.append(r.prior)
            if not ok:
                break
        outside = [r for key, r in psi.items() if len(key) == 2 and len(key & set(group)) == 1
                   and (r.free or r.value != 0.0)]
        if not ok or outside:
            continue
        conjugate = _iw_prior(len(group), entries, priors)
        if conjugate is not None:
            members_idx = tuple(members.index(m) for m in group)
            out.append(CovarianceBlock(level, members_idx, tuple(entries), *conjugate))
    return out


def _iw_prior(k: int, entries, priors) -> tuple[tuple[float, ...], float] | None:
    """IW(S0, df0) from the entries' priors, or None when they are not conjugate."""
    if all(p is None for p in priors):
        return tuple([0.0] * (k * k)), float(-k - 1)
    scale = np.zeros((k, k))
    dfs = set()
    for (i, j, _), prior in zip(entries, priors):
        if prior is None:
            return None
        if k == 1 and prior.family == "inv_gamma":
            shape, s = prior.args
            scale[0, 0], df = 2.0 * s, 2.0 * shape
        elif prior.family == "inv_wishart":
            scale[i, j] = scale[j, i] = prior.args[0]
            df = prior.args[1]
        else:
            return None
        dfs.add(df)
    if len(dfs) != 1:
        raise ModelError("the inverse-Wishart priors of one covariance block need one "
                         f"degrees-of-freedom value; got {sorted(dfs)}")
    return tuple(scale.ravel()), dfs.pop()


# --------------------------------------------------------------------------- sweep

class ChainState(NamedTuple):
    """One chain. x (n_free,); between (J, nS); y (N, p) outcomes with missing values
    and latent responses filled by the last draw ((0, p) when there are none);
    adaptation: NUTS tuning; proposals: the independence proposals of the factor
    levels (factor.Proposal, one per level); known: (J, |K|) between-only data whose
    categorical columns hold latent responses (None when there are none)."""
    x: jax.Array
    between: jax.Array
    y: jax.Array
    adaptation: hmc.AdaptationState
    proposals: tuple = ()
    known: jax.Array | None = None


def log_prior(schedule: Schedule, x: jax.Array) -> jax.Array:
    total = jnp.asarray(0.0)
    for k, prior in schedule.priors:
        total = total + log_prob(prior, x[k])
    return total


def make_sweep(layout: Layout, schedule: Schedule, n_adapt: int):
    """sweep(key, state, arrays, noise, sweep_number) -> (state, NUTS acceptance): one pass
    over all blocks; ``key`` feeds the NUTS block, ``noise`` (draw_noise) every other block."""
    spec = layout.spec
    table = spec.partable
    nuts_levels = {r.level for r in table.rows if r.free and r.free - 1 in schedule.nuts}
    # NUTS on pooled moments: O(1) per gradient instead of O(clusters)
    pooled_nuts = density.poolable(layout) and (2 not in nuts_levels or bool(layout.collapsed))
    coefficient_levels = frozenset(r.level for r in table.rows
                                   if r.free and r.free - 1 in schedule.coefficients)
    normal_priors = tuple((k, prior.args[0], float(np.sqrt(prior.args[1])))
                          for k, prior in schedule.priors if k in schedule.coefficients)
    between_regression = quadratic.between_regression(
        layout, schedule.coefficients, coefficient_levels, normal_priors)
    random_coefficients = randomcoef.plan(layout, schedule, between_regression)

    def target(x, state_between, arrays):
        mats = spec.unpack(x)
        return density.complete_logdensity(layout, mats, arrays, state_between) + log_prior(
            schedule, x)

    def sweep(key, state: ChainState, arrays, noise, sweep_number):
        """One sweep; ``noise`` holds this sweep's standard variates (draw_noise);
        ``sweep_number`` () int, the sweeps done before this one, the same for every
        chain (not batched over chains), so that work that depends on it only is skipped
        rather than masked: categorical columns take turns at their threshold step by
        its parity; it places the NUTS and factor blocks' adaptation windows and the
        independence steps."""
        x, between, y = state.x, state.between, state.y
        proposals = list(state.proposals)
        known = state.known
        if schedule.between_categorical:
            x, known = categorical.update_between(schedule.between_categorical, layout, x,
                                                  between, known, arrays,
                                                  noise["between_categorical"])
            arrays = dict(arrays, known=known)
        if schedule.categorical:
            x, between, y = categorical.update(schedule.categorical, layout, x, between, y,
                                               arrays, noise["categorical"], sweep_number)
        if layout.has_missing:
            y = impute_missing(noise["missing"], layout, spec.unpack(x), arrays, between, y)
        if layout.augmented:
            arrays = dict(arrays, moments=_moments(layout, arrays, y))
        if schedule.scale_moves:
            x, between, y, arrays = categorical.rescale(
                schedule.scale_moves, layout, x, between, y, arrays, noise["scale"])
        for i, level in enumerate(schedule.factor_levels):
            if level.block == 1:  # the between state is drawn afresh next
                x, proposals[i] = factor.marginal_between(
                    level, layout, x, arrays, noise["factor"][i], proposals[i],
                    sweep_number, n_adapt)
        if random_coefficients is not None and "state_prior_precision" not in arrays:
            x, between = randomcoef.draw(random_coefficients, between_regression, layout,
                                         schedule, x, arrays, noise)
            return ChainState(x, between, y, state.adaptation, (), known), jnp.asarray(1.0)
        if layout.two_level and layout.stochastic:
            prep = density.prepare(layout, spec.unpack(x))
            between = quadratic.draw_between_state(noise["between"], layout, prep, arrays)
        if schedule.coefficients:
            idx = np.asarray(schedule.coefficients)
            if between_regression is not None:
                prep = density.prepare(layout, spec.unpack(x))
                zb = density.assemble_all(layout, prep, between, arrays)
                precision, linear = quadratic.between_regression_quadratic(
                    between_regression, layout, prep, zb, arrays, x[idx])
            else:
                factors = (quadratic.moment_factors(arrays["moments"]) if layout.augmented
                           else arrays["factors"])
                precision, linear = quadratic.coefficient_quadratic(
                    layout, spec, x, between, arrays, factors, normal_priors,
                    coefficient_levels, idx)
            draw = gaussian.sample_from_precision(noise["coefficients"], precision, linear)
            x = linalg.set_entries(x, idx, draw)
        for i, level in enumerate(schedule.factor_levels):
            if level.block == 0:
                x, proposals[i] = factor.update_within(
                    level, layout, x, between, arrays, noise["factor"][i], proposals[i],
                    sweep_number, n_adapt)
            else:
                x = factor.update_between(level, layout, x, between, arrays, noise["factor"][i])
        if schedule.covariance_blocks:
            x = _draw_covariances(noise["covariances"], layout, schedule, x, arrays, between)
        adaptation = state.adaptation
        accept = jnp.asarray(1.0)
        if schedule.nuts:
            idx = np.asarray(schedule.nuts)
            logs = np.asarray(schedule.nuts_log_scale)

            def to_x(u):
                return linalg.set_entries(x, idx, jnp.where(logs, jnp.exp(u), u))

            if pooled_nuts:
                prep0 = density.prepare(layout, spec.unpack(x))
                zb = density.assemble_all(layout, prep0, between, arrays)
                pooled_w = (density.pooled_within_moments(layout, zb, arrays)
                            if 1 in nuts_levels else None)
                pooled_b = (density.pooled_between_moments(layout, zb, arrays)
                            if 2 in nuts_levels else None)
                n_total = arrays["n"].sum()

                def block_target(x_new):
                    prep = density.prepare(layout, spec.unpack(x_new))
                    value = log_prior(schedule, x_new)
                    if 1 in nuts_levels:
                        value = value + density.within_pooled_loglik(layout, prep, pooled_w,
                                                                     n_total)
                    if 2 in nuts_levels:
                        value = value + density.between_pooled_logdensity(layout, prep,
                                                                          pooled_b)
                    return value
            else:
                def block_target(x_new):
                    return target(x_new, between, arrays)

            def logdensity(u):
                value = block_target(to_x(u)) + jnp.sum(jnp.where(logs, u, 0.0))
                return jnp.where(jnp.isnan(value), -jnp.inf, value)

            u0 = jnp.where(logs, jnp.log(x[idx]), x[idx])
            u, adaptation, info = hmc.nuts_gibbs_step(key, u0, logdensity, adaptation,
                                                      sweep_number, n_adapt)
            x = to_x(u)
            accept = info.acceptance_rate
        return ChainState(x, between, y, adaptation,
                          tuple(proposals), known), accept

    return sweep


def draw_noise(layout: Layout, schedule: Schedule, key, n_sweeps: int, n_obs: int,
               counts: tuple[float, float]) -> dict:
    """Standard variates for ``n_sweeps`` sweeps. Leaves have a leading axis of length
    n_sweeps. ``counts``: units per level (observations, clusters) for the chi-square
    degrees of freedom.

    All normals come from one call of the ziggurat (kernels.normal: about 5 ns a
    variate on a CPU core against 17 for jax.random.normal), the chi-square variates'
    included (conjugate.chi_square); one call, because each call site compiles its own
    copy of the generator. Uniforms are Phi(z).
    """
    k_normal, k_redraw = jax.random.split(key)
    # every chi-square variate of the sweep: degrees of freedom, then their blocks
    df = [block.prior_df + counts[block.level] - jnp.arange(len(block.members))
          for block in schedule.covariance_blocks]
    df += [factor.chi2_df(level, counts[level.block]) for level in schedule.factor_levels]
    sizes = np.cumsum([0] + [d.shape[0] for d in df])
    df = jnp.concatenate(df) if df else None

    def build(normal, chi_square):
        chi2 = chi_square(normal((sizes[-1], 3))) if df is not None else None
        columns = [chi2[:, a:b] for a, b in zip(sizes[:-1], sizes[1:])]
        noise = {"between": normal((layout.n_clusters, len(layout.stochastic))),
                 "coefficients": normal((len(schedule.coefficients),)),
                 "missing": normal((n_obs, layout.p)) if layout.has_missing
                 else jnp.zeros((n_sweeps, 0))}
        if schedule.categorical:
            cats = schedule.categorical
            width = max(col.n_thresholds for col in cats) + 1
            noise["categorical"] = {"latent": normal((n_obs, len(cats))),
                                    "steps": normal((len(cats), width)),
                                    "shift": normal((sum(col.shift >= 0 for col in cats),))}
        if schedule.scale_moves:
            noise["scale"] = normal((len(schedule.scale_moves) + 1,))
        if schedule.between_categorical:
            cats = schedule.between_categorical
            width = max(col.n_thresholds for col in cats) + 1
            noise["between_categorical"] = {"latent": normal((layout.n_clusters, len(cats))),
                                            "steps": normal((len(cats), width))}
        noise["covariances"] = tuple(
            (columns[i], normal((len(block.members),) * 2))
            for i, block in enumerate(schedule.covariance_blocks))
        first = len(schedule.covariance_blocks)
        noise["factor"] = tuple(
            factor.draw_level_noise(level, normal, columns[first + i], layout.n_clusters)
            for i, level in enumerate(schedule.factor_levels))
        return noise

    shapes = []
    build(lambda shape: shapes.append(shape) or jnp.zeros((n_sweeps,) + shape),
          lambda normals: normals[..., 0])
    flat = normal.standard_normal(normal.seed_of(k_normal),
                                  (n_sweeps, sum(int(np.prod(s)) for s in shapes)))
    offsets = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    bounds = iter(zip(offsets[:-1], offsets[1:]))

    def take(shape):
        a, b = next(bounds)
        return flat[:, a:b].reshape((n_sweeps,) + shape)
    seed = (jax.random.key_data(k_redraw)
            if jax.dtypes.issubdtype(k_redraw.dtype, jax.dtypes.prng_key) else k_redraw)
    return build(take, lambda normals: conjugate.chi_square(df, normals, seed))


def chunk_noise(layout: Layout, schedule: Schedule, key, n_sweeps: int, arrays: dict) -> dict:
    """:func:`draw_noise` for the sweep inputs ``arrays`` (their shapes give the counts)."""
    n_obs = arrays["y"].shape[0] if "y" in arrays else 0
    counts = (arrays["n"].sum(), float(layout.n_clusters))  # inverse-Wishart df
    return draw_noise(layout, schedule, key, n_sweeps, n_obs, counts)


def _draw_covariances(variates, layout: Layout, schedule: Schedule, x, arrays, between):
    spec = layout.spec
    mats = spec.unpack(x)
    prep = density.prepare(layout, mats)
    scatters, counts = {}, {}
    zb = density.assemble_all(layout, prep, between, arrays)
    if any(b.level == 0 for b in schedule.covariance_blocks):
        e = jax.vmap(lambda z, m: density.within_residual_scatter(layout, prep, z, m))(
            zb, arrays["moments"]).sum(0)
        ib = jnp.eye(layout.p) - mats[0]["beta"]
        scatters[0], counts[0] = ib @ e @ ib.T, arrays["n"].sum()
    if any(b.level == 1 for b in schedule.covariance_blocks):
        zeta = jax.vmap(lambda z, w: density.between_innovations(layout, prep, z, w))(
            zb, arrays["w"])
        scatters[1] = linalg.outer_sum(zeta, zeta)
        counts[1] = jnp.asarray(float(layout.n_clusters))
    for (chi2, normals), block in zip(variates, schedule.covariance_blocks):
        members = np.asarray(block.members)
        size = len(members)
        scale = jnp.asarray(block.prior_scale).reshape(size, size) + scatters[block.level][
            np.ix_(members, members)]
        draw = conjugate.inverse_wishart_from_variates(scale, chi2, normals)
        rows, columns, indices = (np.asarray(v) for v in zip(*block.entries))
        x = linalg.set_entries(x, indices, draw[rows, columns])
    return x


def _moments(layout: Layout, arrays, y):
    u = jnp.concatenate([y, jnp.ones((y.shape[0], 1)), arrays["c"]], axis=1)
    return jax.ops.segment_sum(u[:, :, None] * u[:, None, :], arrays["cluster"],
                               num_segments=layout.n_clusters)


def impute_missing(noise, layout: Layout, mats, arrays, between, y):
    """Draw each missing outcome from its within-level conditional given the observed
    outcomes of the row, its cluster's between values and the parameters (MAR)."""
    prep = density.prepare(layout, mats)
    zb = density.assemble_all(layout, prep, between, arrays)
    mean = categorical.row_means(layout, prep, zb, arrays)
    inverse_chol = linalg.solve_lower(prep.chol_sigma, jnp.eye(layout.p), lapack=False)
    precision = inverse_chol.T @ inverse_chol  # p x p, once per sweep

    def one(y_i, mu_i, obs_i, e_i):
        miss = ~obs_i
        p_masked = precision * (miss[:, None] & miss[None, :]) + jnp.diag(obs_i.astype(y.dtype))
        linear = -jnp.where(miss, precision @ jnp.where(obs_i, y_i - mu_i, 0.0), 0.0)
        draw = mu_i + gaussian.sample_from_precision(e_i, p_masked, linear)
        return jnp.where(obs_i, y_i, draw)

    return jax.vmap(one)(y, mean, arrays["observed"], noise)


def initial_state(layout: Layout, schedule: Schedule, x0: np.ndarray, arrays) -> ChainState:
    """Start of a chain: x0, between values from cluster means, NUTS untuned."""
    between = np.zeros((layout.n_clusters, len(layout.stochastic)))
    if layout.two_level:
        n = np.maximum(np.asarray(arrays["n"])[:, None], 1.0)
        means = np.asarray(arrays["moments"])[:, :layout.p, layout.p] / n
        for i, k in layout.parts:
            if k in layout.stochastic:
                between[:, layout.stochastic.index(k)] = means[:, i]
    y = arrays["y"] if layout.augmented else np.zeros((0, layout.p))  # only augmentation needs it
    known = jnp.asarray(arrays["known"]) if schedule.between_categorical else None
    return ChainState(jnp.asarray(x0), jnp.asarray(between), jnp.asarray(y),
                      hmc.init_adaptation(len(schedule.nuts)),
                      tuple(factor.init_proposal(level) for level in schedule.factor_levels),
                      known)

