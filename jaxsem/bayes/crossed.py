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
rest, so the within parameters are simply updated twice per sweep. A parameter shared
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
from jaxsem.bayes.threelevel import (ViewSchedules, accept_rate, join_arrays, pair_noise,
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
    free indices of the a-view's rows (the within level's among them)."""
    spec: ModelSpec
    a: Layout
    b: Layout
    a_free: tuple[int, ...]

    @property
    def views(self) -> tuple[Layout, Layout]:
        return self.a, self.b

    @property
    def first_free(self) -> tuple[int, ...]:
        return self.a_free


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
    return CrossedLayout(analysis.spec, a, b, a_free), join_arrays(a_arrays, b_arrays, VIEWS)


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
    return ViewSchedules(gibbs.build_schedule(layout.a), gibbs.build_schedule(layout.b),
                         tuple(f"within and {layout.spec.blocks[k].name}" for k in (1, 2)))


def part_offsets(view: Layout, x: jax.Array, between: jax.Array, arrays: dict) -> jax.Array:
    """(N, p) each observation's parts of its outcomes at the view's classification."""
    prep = density.prepare(view, view.spec.unpack(x))
    zb = density.assemble_all(view, prep, between, arrays)
    return zb[arrays["cluster"]] @ jnp.asarray(density.part_matrix(view)).T


def make_sweep(layout: CrossedLayout, schedule: ViewSchedules, n_adapt: int):
    """sweep(key, state, arrays, noise, parity) -> (state, NUTS acceptance)."""
    sweep_a = gibbs.make_sweep(layout.a, schedule.first, n_adapt)
    sweep_b = gibbs.make_sweep(layout.b, schedule.second, n_adapt)

    def sweep(key, state: CrossedState, arrays, noise, parity=0):
        arrays_a, arrays_b = split_arrays(arrays, VIEWS)
        key_a, key_b = jax.random.split(key)
        offset_b = part_offsets(layout.b, state.x, state.b.between, arrays_b)
        a, accept_a = sweep_a(key_a, state.a._replace(x=state.x, y=state.y - offset_b),
                              arrays_a, noise["a"], parity)
        y = a.y + offset_b
        offset_a = part_offsets(layout.a, a.x, a.between, arrays_a)
        b, accept_b = sweep_b(key_b, state.b._replace(x=a.x, y=y - offset_a), arrays_b,
                              noise["b"], parity)
        return (CrossedState(a._replace(x=b.x), b, b.y + offset_a),
                accept_rate(schedule, accept_a, accept_b))

    return sweep


def chunk_noise(layout: CrossedLayout, schedule: ViewSchedules, key, n_sweeps: int,
                arrays: dict) -> dict:
    return pair_noise((layout.a, layout.b), schedule, key, n_sweeps, arrays, VIEWS)


def initial_state(layout: CrossedLayout, schedule: ViewSchedules, x0, arrays) -> CrossedState:
    """Each view's start (its parts at its cluster means of the outcomes)."""
    arrays_a, arrays_b = split_arrays(arrays, VIEWS)
    a = gibbs.initial_state(layout.a, schedule.first, x0, arrays_a)
    b = gibbs.initial_state(layout.b, schedule.second, x0, arrays_b)
    return CrossedState(a, b, jnp.asarray(arrays_a["y"]))
