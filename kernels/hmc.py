"""NUTS as one block of a Gibbs sweep, with its own warm-up adaptation.

Inside a Gibbs sweep the target of this block changes every sweep (the other blocks
move), so the cached log density of a NUTS state is stale: each step re-initialises the
state at the current position (numpyro's HMCGibbs does the same). The step size is tuned
by dual averaging (target acceptance 0.8) and a diagonal inverse mass matrix is set
from the positions seen in the first half of the adaptation window; both freeze at the
end of the window, so the draws kept afterwards come from a fixed kernel.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.mcmc import hmc, nuts

TARGET_ACCEPTANCE = 0.8
_da_init, _da_update, _da_final = dual_averaging_adaptation(TARGET_ACCEPTANCE)
_nuts_kernel = nuts.build_kernel()


class AdaptationState(NamedTuple):
    """Per-chain tuning of the NUTS block.

    step_size: ()  current step size.  inverse_mass: (d,)  diagonal inverse mass.
    dual: DualAveragingState of log step size.  mean, m2: (d,) Welford moments of the
    position over the mass window; count: () number of positions in it.
    """
    step_size: jax.Array
    inverse_mass: jax.Array
    dual: tuple
    mean: jax.Array
    m2: jax.Array
    count: jax.Array


class StepInfo(NamedTuple):
    acceptance_rate: jax.Array   # ()
    is_divergent: jax.Array      # ()
    num_integration_steps: jax.Array  # ()


def init_adaptation(dim: int, step_size: float = 0.1) -> AdaptationState:
    zeros = jnp.zeros(dim)
    dual = jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype=zeros.dtype),
                                  _da_init(step_size))
    return AdaptationState(jnp.asarray(step_size, dtype=zeros.dtype), jnp.ones(dim), dual,
                           zeros, zeros, jnp.asarray(0.0))


def nuts_gibbs_step(key: jax.Array, position: jax.Array,
                    logdensity_fn: Callable[[jax.Array], jax.Array],
                    adaptation: AdaptationState, iteration: jax.Array,
                    n_adapt: int) -> tuple[jax.Array, AdaptationState, StepInfo]:
    """One NUTS move of ``position`` (d,); adapts while ``iteration < n_adapt``."""
    state = hmc.init(position, logdensity_fn)
    new_state, info = _nuts_kernel(key, state, logdensity_fn, adaptation.step_size,
                                   adaptation.inverse_mass)
    adapting = iteration < n_adapt
    dual = _da_update(adaptation.dual, info.acceptance_rate)
    step_size = jnp.where(adapting, jnp.exp(dual.log_step_size), adaptation.step_size)
    mass_window = (iteration >= n_adapt // 4) & (iteration < n_adapt // 2)
    count = adaptation.count + mass_window
    delta = new_state.position - adaptation.mean
    mean = jnp.where(mass_window, adaptation.mean + delta / jnp.maximum(count, 1.0),
                     adaptation.mean)
    m2 = jnp.where(mass_window, adaptation.m2 + delta * (new_state.position - mean),
                   adaptation.m2)
    set_mass = iteration == n_adapt // 2
    variance = m2 / jnp.maximum(count - 1.0, 1.0)
    shrunk = (count / (count + 5.0)) * variance + 1e-3 * (5.0 / (count + 5.0))  # Stan's rule
    inverse_mass = jnp.where(set_mass & (count > 10), shrunk, adaptation.inverse_mass)
    dual = jax.tree_util.tree_map(
        lambda restart, cont: jnp.where(set_mass, restart, cont).astype(cont.dtype),
        _da_init(step_size), dual)
    final_step = iteration == n_adapt - 1
    step_size = jnp.where(final_step, jnp.exp(dual.log_step_size_avg), step_size)
    adaptation = AdaptationState(step_size, inverse_mass, dual, mean, m2, count)
    return new_state.position, adaptation, StepInfo(info.acceptance_rate, info.is_divergent,
                                                    info.num_integration_steps)
