"""Cross-classified models as two two-level views, one per classification.

An outcome is the sum of its within part and one part per crossed classification,
``y_i = y_w + y_a[a(i)] + y_b[b(i)]``. Given the b-parts, ``y - y_b`` is a two-level
model in the a-clusters (the within model and the a-level model), and the other way
round; each view is run by the two-level engine unchanged, with its outcomes set before
every sweep to the data minus the other classification's parts (``Layout.
external_outcomes``: the per-cluster moments are recomputed).

The a-view draws the a-parts (hierarchically centred, as in two-level models) and the
within and a-level parameters; the b-view draws the b-parts and the within and b-level
parameters. Each of these is an exact Gibbs update of the joint posterior given the
rest, so the within parameters are simply updated twice per sweep.

Location shifts: the intercept of an outcome sits in one classification (Mplus puts it
in the b-level) while the other's parts are centred at zero, so the intercept and the
mean of the a-parts trade places only slowly (ESS about 1.5% of the draws on UG ex9.24
without this step). Moving every a-part of the outcome by +d, every b-part and its
b-level intercept by -d leaves the likelihood unchanged; the complete-data density is
Gaussian in d (its values at d = -1, 0, 1 give it exactly), and d is drawn from it: a
Gibbs draw along a translation, which keeps the posterior (Liu and Sabatti 2000). A parameter shared
by equality labels between a classification's level and another level is refused: one
view would update it without the other's part of its likelihood. Missing outcomes are
imputed by both views; the chain keeps the outcomes, imputations included, as data
(``CrossedState.y``).
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
from jaxsem.partable import ParTable
from jaxsem.spec import ModelSpec

VIEWS = ("a", "b")


def _not_supported(what: str) -> ModelError:
    return ModelError(f"{what} is not supported in cross-classified models yet")


@dataclass(frozen=True)
class CrossedLayout:
    """Static structure of a cross-classified model: ``spec`` the whole model, ``a``
    and ``b`` the two views (within + one classification each), ``a_free`` the 0-based
    free indices of the a-view's rows (the within level's among them); ``shifts``: per
    outcome with a stochastic part in both views, (a-state column, b-state column, free
    index of its b-level intercept or -1) for the location shift (module docstring)."""
    spec: ModelSpec
    a: Layout
    b: Layout
    a_free: tuple[int, ...]
    shifts: tuple[tuple[int, int, int], ...] = ()

    @property
    def views(self) -> tuple[Layout, Layout]:
        return self.a, self.b

    @property
    def first_free(self) -> tuple[int, ...]:
        return self.a_free

    def block_covariates(self, arrays: dict) -> list:
        """Per block, its covariates' values: (N, q) within, then per cluster of each
        classification."""
        a, b = split_arrays(arrays, VIEWS)
        return [a["c"], a["w"], b["w"]]


class CrossedState(NamedTuple):
    """One chain: the views' states and the outcomes (imputations included) ``y`` (N, p);
    ``b.x`` is the current parameter vector."""
    a: gibbs.ChainState
    b: gibbs.ChainState
    y: jax.Array

    @property
    def x(self) -> jax.Array:
        return self.b.x


def build_crossed(analysis) -> tuple[CrossedLayout, dict[str, np.ndarray]]:
    """The layout and both views' data arrays (keys ``a/...``, ``b/...``)."""
    table, data = analysis.partable, analysis.data
    _check_supported(analysis)
    within, first, second = table.blocks
    names = [n.lower() for n in data.cluster_names]
    views = []
    for block in (first, second):
        rows = [r for r in table.rows if r.block in (within.name, block.name)]
        view_table = ParTable(rows, (within, replace(block, level=2)), table.dialect)
        position = names.index(block.name.lower())
        view_data = SimpleNamespace(names=data.names, values=data.values, n_obs=data.n_obs,
                                    cluster_index=(data.cluster_index[position],),
                                    n_clusters=(int(data.n_clusters[position]),),
                                    crossed=False)
        views.append(build_layout(SimpleNamespace(
            spec=ModelSpec(view_table, table.n_free), data=view_data, partable=view_table)))
    (a, a_arrays), (b, b_arrays) = views
    a = replace(a, external_outcomes=tuple(i for i, _ in b.parts))
    b = replace(b, external_outcomes=tuple(i for i, _ in a.parts))
    a_free = tuple(sorted({r.free - 1 for r in a.spec.partable.rows if r.free}))
    layout = CrossedLayout(analysis.spec, a, b, a_free, _location_shifts(a, b, second.name))
    return layout, join_arrays(a_arrays, b_arrays, VIEWS)


def _location_shifts(a: Layout, b: Layout, b_block: str) -> tuple[tuple[int, int, int], ...]:
    out = []
    for i, k_a in a.parts:
        k_b = next((k for j, k in b.parts if j == i), None)
        if k_b is None or k_a not in a.stochastic or k_b not in b.stochastic:
            continue
        name = a.within_observed[i]
        intercept = next((r.free - 1 for r in b.spec.partable.rows if r.block == b_block
                          and r.op == "~1" and r.lhs == name and r.free), -1)
        out.append((a.stochastic.index(k_a), b.stochastic.index(k_b), intercept))
    return tuple(out)


def _check_supported(analysis) -> None:
    table = analysis.partable
    if table.categorical:
        raise _not_supported("a categorical (probit) outcome")
    in_block = {}
    for r in table.rows:
        if r.free:
            in_block.setdefault(r.free, set()).add(r.block)
    for index, blocks in in_block.items():
        if len(blocks) > 1:
            labels = sorted({r.label for r in table.rows if r.free == index and r.label})
            raise _not_supported(
                f"an equality constraint across the levels {', '.join(sorted(blocks))} "
                f"({', '.join(labels)})")


def build_schedule(layout: CrossedLayout) -> ViewSchedules:
    shifted = [layout.a.between[layout.a.stochastic[col]] for col, _, _ in layout.shifts]
    moves = (f"location shift of the crossed parts and the intercept (exact Gaussian "
             f"along a translation): {', '.join(shifted)}",) if shifted else ()
    return ViewSchedules(gibbs.build_schedule(layout.a), gibbs.build_schedule(layout.b),
                         tuple(f"within and {layout.spec.blocks[k].name}" for k in (1, 2)),
                         moves)


def part_offsets(view: Layout, x: jax.Array, between: jax.Array, arrays: dict) -> jax.Array:
    """(N, p) each observation's parts of its outcomes at the view's classification."""
    prep = density.prepare(view, view.spec.unpack(x))
    zb = density.assemble_all(view, prep, between, arrays)
    return zb[arrays["cluster"]] @ jnp.asarray(density.part_matrix(view)).T


def _between_logdensity(view: Layout, x, between, arrays) -> jax.Array:
    """Sum over the view's clusters of the density of their between values."""
    prep = density.prepare(view, view.spec.unpack(x))
    zb = density.assemble_all(view, prep, between, arrays)
    return jax.vmap(lambda z, w: density.between_cluster_logdensity(view, prep, z, w))(
        zb, arrays["w"]).sum()


def shift_locations(layout: CrossedLayout, schedule: ViewSchedules, a, b, arrays_a,
                    arrays_b, normals):
    """The location shifts (module docstring), one outcome after another; ``normals``
    (n_shifts,) N(0, 1). Returns the views' states."""
    for (col_a, col_b, intercept), normal in zip(layout.shifts, normals):
        def moved(d, a=a, b=b, col_a=col_a, col_b=col_b, intercept=intercept):
            x = b.x if intercept < 0 else b.x.at[intercept].add(-d)
            return (a.between.at[:, col_a].add(d), b.between.at[:, col_b].add(-d), x)

        def value(d):
            between_a, between_b, x = moved(d)
            return (_between_logdensity(layout.a, x, between_a, arrays_a)
                    + _between_logdensity(layout.b, x, between_b, arrays_b)
                    + gibbs.log_prior(schedule.second, x))
        low, mid, high = value(-1.0), value(0.0), value(1.0)
        precision = 2.0 * mid - low - high
        d = 0.5 * (high - low) / precision + normal / jnp.sqrt(precision)
        between_a, between_b, x = moved(d)
        a, b = a._replace(between=between_a, x=x), b._replace(between=between_b, x=x)
    return a, b


def make_sweep(layout: CrossedLayout, schedule: ViewSchedules, n_adapt: int):
    """sweep(key, state, arrays, noise, sweep_number) -> (state, NUTS acceptance)."""
    sweep_a = gibbs.make_sweep(layout.a, schedule.first, n_adapt)
    sweep_b = gibbs.make_sweep(layout.b, schedule.second, n_adapt)

    def sweep(key, state: CrossedState, arrays, noise, sweep_number):
        arrays_a, arrays_b = split_arrays(arrays, VIEWS)
        key_a, key_b = jax.random.split(key)
        offset_b = part_offsets(layout.b, state.x, state.b.between, arrays_b)
        a, accept_a = sweep_a(key_a, state.a._replace(x=state.x, y=state.y - offset_b),
                              arrays_a, noise["a"], sweep_number)
        y = a.y + offset_b
        offset_a = part_offsets(layout.a, a.x, a.between, arrays_a)
        b, accept_b = sweep_b(key_b, state.b._replace(x=a.x, y=y - offset_a), arrays_b,
                              noise["b"], sweep_number)
        y = b.y + offset_a
        a, b = shift_locations(layout, schedule, a._replace(x=b.x), b, arrays_a, arrays_b,
                               noise["shift"])
        return CrossedState(a, b, y), accept_rate(schedule, accept_a, accept_b)

    return sweep


def chunk_noise(layout: CrossedLayout, schedule: ViewSchedules, key, n_sweeps: int,
                arrays: dict) -> dict:
    """Both views' variates and the location shifts' normals (n_sweeps, n_shifts)."""
    key_views, key_shift = jax.random.split(key)
    noise = pair_noise((layout.a, layout.b), schedule, key_views, n_sweeps, arrays, VIEWS)
    noise["shift"] = jax.random.normal(key_shift, (n_sweeps, len(layout.shifts)))
    return noise


def initial_state(layout: CrossedLayout, schedule: ViewSchedules, x0, arrays) -> CrossedState:
    """Each view's start (its parts at its cluster means of the outcomes)."""
    arrays_a, arrays_b = split_arrays(arrays, VIEWS)
    a = gibbs.initial_state(layout.a, schedule.first, x0, arrays_a)
    b = gibbs.initial_state(layout.b, schedule.second, x0, arrays_b)
    return CrossedState(a, b, jnp.asarray(arrays_a["y"]))
