"""What the models of two two-level views share (bayes.threelevel, bayes.crossed).

Such a model's data arrays are one dict whose keys are prefixed by the view's name
(``lower/y``, ``b/moments``); its schedule is the views' two schedules; its noise is each
view's, from gibbs.chunk_noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from jaxsem.bayes import gibbs


@dataclass(frozen=True)
class ViewSchedules:
    """The schedules of two views (three-level: lower, upper; cross-classified: the
    two classifications), ``labels`` naming them in the report; ``moves`` describes
    steps that change both views at once."""
    first: gibbs.Schedule
    second: gibbs.Schedule
    labels: tuple[str, str]
    moves: tuple[str, ...] = ()   # report lines of the steps joining the views

    @property
    def nuts(self) -> tuple[int, ...]:
        return self.first.nuts + self.second.nuts

    @property
    def factor_levels(self) -> tuple:
        return self.first.factor_levels + self.second.factor_levels

    @property
    def latent_responses(self) -> bool:
        return self.first.latent_responses or self.second.latent_responses

    def describe(self, names: list[str]) -> list[str]:
        return [f"{label}: {line}" for label, schedule in zip(self.labels, (self.first,
                                                                             self.second))
                for line in schedule.describe(names)] + list(self.moves)


def split_arrays(arrays: dict, views: tuple[str, str]) -> tuple[dict, dict]:
    """The two views' arrays from the dict whose keys are prefixed ``view/``."""
    out = {view: {} for view in views}
    for key, value in arrays.items():
        view, name = key.split("/", 1)
        out[view][name] = value
    return out[views[0]], out[views[1]]


def join_arrays(first: dict, second: dict, views: tuple[str, str]) -> dict:
    return {**{f"{views[0]}/{k}": v for k, v in first.items()},
            **{f"{views[1]}/{k}": v for k, v in second.items()}}


def pair_noise(layouts, schedule: ViewSchedules, key, n_sweeps: int, arrays: dict,
               views: tuple[str, str]) -> dict:
    """Standard variates of two views for ``n_sweeps`` sweeps (gibbs.chunk_noise)."""
    keys = jax.random.split(key)
    parts = split_arrays(arrays, views)
    return {view: gibbs.chunk_noise(layout, sched, k, n_sweeps, part)
            for view, layout, sched, k, part in zip(views, layouts, (schedule.first,
                                                                     schedule.second),
                                                    keys, parts)}


def accept_rate(schedule: ViewSchedules, first, second) -> jax.Array:
    """Mean NUTS acceptance of the views that have a NUTS block (1 when none has)."""
    used = [a for a, s in zip((first, second), (schedule.first, schedule.second)) if s.nuts]
    return sum(used) / len(used) if used else jnp.asarray(1.0)
