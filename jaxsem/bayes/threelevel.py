"""Three-level models as two overlapping two-level views that share the parameters.

An outcome measured at level 1 is the sum of its parts, ``y = y1 + y2 + y3``. With
hierarchical centring at every level, the Gibbs sampler keeps per level-2 unit the state
``t = y2 + y3`` (the level-2 values, means included), and per level-3 cluster the level-3
values. Given ``t`` the model splits in two two-level models, each run by the two-level
engine unchanged:

* the *lower* view (levels 1-2): the within model, with ``t`` as each level-2 unit's
  between values. Its between block holds only the state (parts of within-varying
  variables and the random slopes of level 1): its density is not the view's own but
  the upper view's, passed in as the state's Gaussian prior (``state_prior_*`` arrays of
  quadratic.between_state_quadratic). It draws ``t`` and the level-1 parameters.
* the *upper* view (levels 2-3): the level-2 model is its within level, with one
  "observation" per level-2 unit whose outcomes are ``t`` (set before every sweep, the
  moments recomputed: ``Layout.external_outcomes``) and the level-2 data; the level-3 model
  is its between level. It draws the level-3 values and the level-2 and level-3
  parameters, with level-2 factors integrated out as the two-level engine does.

Each free parameter belongs to exactly one view (equality labels across level 1 and the
levels above are refused), so each view's blocks are exact Gibbs updates of the joint
posterior. One sweep: the state prior from the upper view, the lower sweep (missing
outcomes, ``t``, level-1 parameters), then the upper sweep.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsem.bayes import density, gibbs
from jaxsem.bayes.layout import Layout, build_layout
from jaxsem.bayes.views import (ViewSchedules, accept_rate, join_arrays, pair_noise,
                                split_arrays)
from jaxsem.errors import ModelError
from jaxsem.kernels import linalg
from jaxsem.partable import Block, ParRow, ParTable
from jaxsem.spec import ModelSpec

VIEWS = ("lower", "upper")


def _not_supported(what: str) -> ModelError:
    return ModelError(f"{what} is not supported in three-level models yet")


@dataclass(frozen=True)
class ThreeLevelLayout:
    """Static structure of a three-level model (hashable: one compilation per layout).

    ``spec``: the whole model. ``lower``/``upper``: the two views (module docstring).
    ``state_columns``: for each variable of the lower view's state (in its order), its
    column in the upper view's outcomes. ``lower_free``: 0-based free indices the lower
    view updates (the upper view updates the rest).
    """
    spec: ModelSpec
    lower: Layout
    upper: Layout
    state_columns: tuple[int, ...]
    lower_free: tuple[int, ...]

    @property
    def views(self) -> tuple[Layout, Layout]:
        return self.lower, self.upper

    @property
    def first_free(self) -> tuple[int, ...]:
        return self.lower_free

    def block_covariates(self, arrays: dict) -> list:
        """Per block, its covariates' values: (N, q) within, (J2, q2) per level-2 unit,
        (J3, q3) per level-3 cluster."""
        lower, upper = split_arrays(arrays, VIEWS)
        return [lower["c"], upper["c"], upper["w"]]


class ThreeLevelState(NamedTuple):
    """One chain: the two views' states; ``upper.x`` is the current parameter vector."""
    lower: gibbs.ChainState
    upper: gibbs.ChainState

    @property
    def x(self) -> jax.Array:
        return self.upper.x


# --------------------------------------------------------------------------- layout

def build_three_level(analysis) -> tuple[ThreeLevelLayout, dict[str, np.ndarray]]:
    """The layout and the data arrays of both views (keys ``lower/...``, ``upper/...``)."""
    table, data = analysis.partable, analysis.data
    _check_supported(analysis)
    within, level2, level3 = table.blocks
    sources = tuple(dict.fromkeys(r.random for r in table.rows
                                  if r.block == within.name and r.random))
    parts = tuple(v for v in within.observed if v in level2.observed)
    if not parts + sources:
        raise ModelError("no level-1 outcome varies at level 2 and no level-1 slope is "
                         "random, so the three-level model falls apart into a level-1 "
                         "model and a model of the level-2 data: fit them separately "
                         "(a single-level model and a two-level model of the level-2 "
                         "units)")
    n_free = table.n_free

    state_block = Block(level2.name, 2, parts, sources, ())
    state_rows = [ParRow(v, "~~", v, level2.name, 2, "variance", value=1.0,
                         origin="three-level state") for v in parts + sources]
    lower_table = ParTable([r for r in table.rows if r.block == within.name] + state_rows,
                           (within, state_block), table.dialect)
    lower_layout, lower_arrays = build_layout(
        SimpleNamespace(spec=ModelSpec(lower_table, n_free), data=data, partable=lower_table))

    upper_blocks = (Block(level2.name, 1, level2.observed + sources,
                          tuple(v for v in level2.latent if v not in sources),
                          level2.covariates),
                    replace(level3, level=2))
    upper_table = ParTable([replace(r, level=r.level - 1) for r in table.rows if r.level > 1],
                           upper_blocks, table.dialect)
    upper_data = _level2_data(analysis, upper_blocks, set(parts + sources))
    upper_layout, upper_arrays = build_layout(
        SimpleNamespace(spec=ModelSpec(upper_table, n_free), data=upper_data,
                        partable=upper_table))
    state_names = [lower_layout.between[k] for k in lower_layout.stochastic]
    state_columns = tuple(upper_layout.within_observed.index(v) for v in state_names)
    upper_layout = replace(upper_layout, external_outcomes=state_columns)
    lower_free = tuple(sorted({r.free - 1 for r in lower_table.rows if r.free}))
    layout = ThreeLevelLayout(analysis.spec, lower_layout, upper_layout, state_columns,
                              lower_free)
    return layout, join_arrays(lower_arrays, upper_arrays, VIEWS)


def _check_supported(analysis) -> None:
    """Refuse, with the reason, what the two views cannot represent exactly."""
    table, data = analysis.partable, analysis.data
    if table.categorical:
        raise _not_supported("a categorical (probit) outcome")
    within = table.blocks[0]
    lower = {r.free for r in table.rows if r.free and r.level == 1}
    upper = {r.free for r in table.rows if r.free and r.level > 1}
    shared = sorted(lower & upper)
    if shared:
        labels = sorted({r.label or f"{r.lhs}{r.op}{r.rhs}" for r in table.rows
                         if r.free in shared})
        raise _not_supported(
            f"an equality constraint between level 1 and a higher level "
            f"({', '.join(labels)})")
    for r in table.rows:
        if (r.level == 2 and r.op == "~~" and r.lhs == r.rhs and r.lhs in within.observed
                and not r.free and not r.random and r.value == 0.0):
            raise _not_supported(
                f"a level-2 residual variance fixed at 0 ('{r.lhs}' at the {r.block} "
                "level; free it, or drop the level-2 part from the model)")
    covariates = {c for b in table.blocks for c in b.covariates}
    higher = {v for b in table.blocks[1:] for v in b.observed} - set(within.observed)
    incomplete = [n for n, col in zip(data.names, data.values.T)
                  if np.isnan(col).any() and (n in covariates or n in higher)]
    if incomplete:
        raise _not_supported("missing values on a covariate or a level-2 or level-3 "
                             f"variable ({', '.join(incomplete)})")


def _level2_data(analysis, blocks: tuple[Block, Block], states: set[str]) -> SimpleNamespace:
    """The upper view's data: one row per level-2 unit (the means of its observations;
    state columns start at them, 0 for random slopes), clustered in level 3."""
    data = analysis.data
    level2, level3 = data.cluster_index
    n2, n3 = int(data.n_clusters[0]), int(data.n_clusters[1])
    level3_of = np.zeros(n2, dtype=np.int32)
    level3_of[level2] = level3
    lookup = {n.lower(): i for i, n in enumerate(data.names)}
    names = list(dict.fromkeys(v for b in blocks for v in b.observed + b.covariates))
    counts = np.bincount(level2, minlength=n2)
    columns = []
    for name in names:
        if name.lower() not in lookup:
            columns.append(np.zeros(n2))
            continue
        col = data.values[:, lookup[name.lower()]]
        sums = np.bincount(level2, weights=np.nan_to_num(col), minlength=n2)
        seen = np.bincount(level2, weights=~np.isnan(col), minlength=n2)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(seen > 0, sums / seen, np.nan)
        columns.append(np.nan_to_num(mean) if name in states else mean)
    assert (counts > 0).all()
    return SimpleNamespace(names=names, values=np.stack(columns, axis=1), n_obs=n2,
                           cluster_index=(level3_of,), n_clusters=(n3,), crossed=False)


# --------------------------------------------------------------------------- sampler

def build_schedule(layout: ThreeLevelLayout) -> ViewSchedules:
    return ViewSchedules(gibbs.build_schedule(layout.lower), gibbs.build_schedule(layout.upper),
                         ("levels 1-2", "levels 2-3"))


def state_prior(layout: ThreeLevelLayout, x: jax.Array, upper: gibbs.ChainState,
                arrays: dict) -> tuple[jax.Array, jax.Array]:
    """Gaussian prior of the lower view's state given the upper view: precision
    (nS, nS) and linear terms (J2, nS), from the upper within density of each level-2
    unit's row (its level-3 cluster's values, its covariates and its level-2 data)."""
    view = layout.upper
    prep = density.prepare(view, view.spec.unpack(x))
    zb = density.assemble_all(view, prep, upper.between, arrays)
    design = jax.vmap(lambda z: density.cluster_design(view, prep, z))(zb)  # (J3, p, 1+q)
    u = jnp.concatenate([jnp.ones((arrays["c"].shape[0], 1)), arrays["c"]], axis=1)
    mean = jnp.einsum("rpk,rk->rp", design[arrays["cluster"]], u)            # (J2, p)
    eye = jnp.eye(view.p)
    precision = linalg.solve_upper_transposed(
        prep.chol_sigma, linalg.solve_lower(prep.chol_sigma, eye))          # Sigma^-1
    s = np.asarray(layout.state_columns)
    others = np.asarray([i for i in range(view.p) if i not in layout.state_columns], dtype=int)
    linear = mean[:, s] @ precision[np.ix_(s, s)]
    if len(others):
        linear = linear - (upper.y[:, others] - mean[:, others]) @ precision[np.ix_(others, s)]
    return precision[np.ix_(s, s)], linear


def make_sweep(layout: ThreeLevelLayout, schedule: ViewSchedules, n_adapt: int):
    """sweep(key, state, arrays, noise, sweep_number) -> (state, NUTS acceptance)."""
    lower_sweep = gibbs.make_sweep(layout.lower, schedule.first, n_adapt)
    upper_sweep = gibbs.make_sweep(layout.upper, schedule.second, n_adapt)
    columns = np.asarray(layout.state_columns)

    def sweep(key, state: ThreeLevelState, arrays, noise, sweep_number):
        lower_arrays, upper_arrays = split_arrays(arrays, VIEWS)
        key_lower, key_upper = jax.random.split(key)
        x = state.x
        precision, linear = state_prior(layout, x, state.upper, upper_arrays)
        lower_arrays = dict(lower_arrays, state_prior_precision=precision,
                            state_prior_linear=linear)
        lower, accept_lower = lower_sweep(key_lower, state.lower._replace(x=x), lower_arrays,
                                          noise["lower"], sweep_number)
        upper_in = state.upper._replace(x=lower.x,
                                        y=state.upper.y.at[:, columns].set(lower.between))
        upper, accept_upper = upper_sweep(key_upper, upper_in, upper_arrays, noise["upper"],
                                          sweep_number)
        return (ThreeLevelState(lower._replace(x=upper.x), upper),
                accept_rate(schedule, accept_lower, accept_upper))

    return sweep


def chunk_noise(layout: ThreeLevelLayout, schedule: ViewSchedules, key, n_sweeps: int,
                arrays: dict) -> dict:
    """Standard variates of both views for ``n_sweeps`` sweeps."""
    return pair_noise((layout.lower, layout.upper), schedule, key, n_sweeps, arrays, VIEWS)


def initial_state(layout: ThreeLevelLayout, schedule: ViewSchedules, x0, arrays
                  ) -> ThreeLevelState:
    """Both views' starts: level-2 states at the level-2 means, level-3 values at the
    level-3 means of those."""
    lower_arrays, upper_arrays = split_arrays(arrays, VIEWS)
    return ThreeLevelState(gibbs.initial_state(layout.lower, schedule.first, x0, lower_arrays),
                           gibbs.initial_state(layout.upper, schedule.second, x0, upper_arrays))
