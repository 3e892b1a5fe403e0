"""The chain driver: the one place with Python loops, progress output and host transfers.

Chains are one single-chain sweep mapped with ``jax.vmap``; iterations run as a
``lax.scan`` in chunks of ``chunk`` iterations, compiled once per (layout, schedule,
options) and reused for any data set of the same shapes. Between chunks the driver
checks for non-finite draws, computes Mplus's PSR over the last half of the iterations,
prints progress and stops at convergence; Ctrl-C returns what finished.

Mplus semantics: an *iteration* is ``thin`` sweeps (THIN multiplies the computed
sweeps); the first half of the iterations of each chain is burn-in; BITERATIONS =
(max, min) with the PSR rule checked every 100 iterations once ``min`` is reached;
FBITERATIONS fixes the number of iterations (no PSR stopping).

On a CPU the chains are split into equal groups that run at the same time on separate
threads (PROCESSORS, default every core the process may use): one compiled program per
group size, each chain's random numbers derived from its own index, so the draws do not
depend on the grouping. Programs that call LAPACK run their groups one after another:
jaxlib 0.10's batched LAPACK kernels can deadlock its thread pool when called
concurrently.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxsem.bayes import crossed, gibbs, programs, threelevel, views
from jaxsem.bayes.categorical import start_thresholds
from jaxsem.bayes.layout import Layout, build_layout
from jaxsem.bayes.results import BayesFit
from jaxsem.errors import ModelError, warn
from jaxsem.model import Analysis


@dataclass(frozen=True)
class BayesOptions:
    """Options with Mplus's names and meanings (ANALYSIS command).

    ``biterations``: (max, min) iterations; ``fbiterations``: fixed number of iterations
    (overrides biterations); ``thin``: sweeps per iteration; ``bseed``: random seed;
    ``bconvergence``: stop when max PSR < 1 + bconvergence; ``point``: "median", "mean"
    or "mode"; ``starts``: a free-parameter vector, ``"ml"`` for the ML estimates, or
    None for Mplus-style defaults;
    ``n_adapt``: warm-up sweeps of the NUTS and factor-model blocks (kept draws start after it);
    ``chunk``: iterations per compiled call (the PSR check interval);
    ``processors``: CPU threads running groups of chains at once (Mplus's PROCESSORS;
    None for every core the process may use).
    """
    chains: int = 2
    biterations: tuple[int, int] = (50000, 0)
    fbiterations: int | None = None
    thin: int = 1
    bseed: int = 0
    bconvergence: float = 0.05
    point: str = "median"
    starts: tuple[float, ...] | str | None = None
    n_adapt: int = 500
    chunk: int = 100
    progress: bool = True
    processors: int | None = None

    def __post_init__(self):
        if self.chains < 1:
            raise ModelError(f"CHAINS must be at least 1, not {self.chains}")
        if self.thin < 1:
            raise ModelError(f"THIN must be at least 1, not {self.thin}")
        if self.processors is not None and self.processors < 1:
            raise ModelError(f"PROCESSORS must be at least 1, not {self.processors}")
        if self.point not in ("median", "mean", "mode"):
            raise ModelError(f"POINT must be MEDIAN, MEAN or MODE, not {self.point!r}")
        top, low = self.biterations
        if top < 1 or low < 0 or low > top:
            raise ModelError(f"BITERATIONS = {top} ({low}) must have 0 <= min <= max")
        if self.fbiterations is not None and self.fbiterations < 2:
            raise ModelError("FBITERATIONS must be at least 2 (half are burn-in)")


def fit_bayes(analysis: Analysis, options: BayesOptions = BayesOptions()) -> BayesFit:
    """Run the Gibbs sampler on an Analysis and return the draws with summaries."""
    layout, arrays = sampler_layout(analysis)
    schedule = _engine(layout).build_schedule(layout)
    names = analysis.partable.parameter_names()
    x0 = _starting_values(analysis, layout, arrays, options.starts)
    if x0.shape != (layout.spec.n_free,):
        raise ModelError(f"starts needs {layout.spec.n_free} values, got {x0.shape}")
    top, low = ((options.fbiterations, options.fbiterations) if options.fbiterations
                else options.biterations)
    low = max(low, 2 * _n_adapt(schedule, options) // options.thin + 2)
    top = max(top, low)
    chunk = min(options.chunk, top)
    arrays = _sweep_inputs(layout, arrays)
    state0 = _engine(layout).initial_state(layout, schedule, x0, arrays)
    key = jax.random.PRNGKey(options.bseed)
    t0 = time.perf_counter()
    program = _program(layout, schedule, options, arrays, chunk)
    compile_seconds = time.perf_counter() - t0
    states = program.split(jax.tree_util.tree_map(
        lambda a: np.stack([np.asarray(a)] * options.chains), state0))

    draws, accept, history = [], [], []
    converged, interrupted, done = False, False, 0
    t0 = time.perf_counter()
    try:
        with program.threads() as pool:
            while done < top:
                states, (x_draws, acc) = program.run(states, key, done, pool)
                _check_finite(x_draws, names, done, options.thin)
                draws.append(x_draws)
                accept.append(acc)
                done += chunk
                all_draws = np.concatenate(draws, axis=1)
                psr = potential_scale_reduction(all_draws[:, done // 2:done])
                worst = int(np.nanargmax(psr)) if psr.size else 0
                history.append((done, float(psr[worst]) if psr.size else 1.0,
                                names[worst] if names else ""))
                if options.progress:
                    _progress(done, top, history[-1])
                converged_now = history[-1][1] < 1 + options.bconvergence
                if not options.fbiterations and done >= low and converged_now:
                    converged = True
                    break
    except KeyboardInterrupt:
        interrupted = True
    sampling_seconds = time.perf_counter() - t0
    if options.progress:
        print(file=sys.stderr)
    if not draws:
        raise ModelError("the sampler was interrupted before the first chunk finished")
    all_draws = np.concatenate(draws, axis=1)
    if options.fbiterations and not interrupted:
        converged = history[-1][1] < 1 + options.bconvergence
    return BayesFit(analysis=analysis, layout=layout, schedule=schedule, options=options,
                    draws=all_draws, psr_history=history, converged=converged,
                    interrupted=interrupted, compile_seconds=compile_seconds,
                    sampling_seconds=sampling_seconds,
                    nuts_acceptance=float(np.mean(np.concatenate(accept, axis=1)[:, done // 2:]))
                    if schedule.nuts else None,
                    final_states=_stack_groups(states))


def continue_chains(fit: BayesFit, n_chunks: int) -> list:
    """Run ``n_chunks`` more chunks of iterations from the chains' last states (the same
    compiled program, fresh random numbers) and return the state after each chunk
    (gibbs.ChainState with a leading chain axis): draws of everything the chains carry,
    latent responses and between values included."""
    layout, arrays = sampler_layout(fit.analysis)
    options = fit.options
    chunk = min(options.chunk, fit.draws.shape[1])     # the chunk length fit_bayes used
    program = _program(layout, fit.schedule, options, _sweep_inputs(layout, arrays), chunk)
    key = jax.random.PRNGKey(options.bseed)
    states, out = program.split(fit.final_states), []
    with program.threads() as pool:
        for step in range(n_chunks):
            done = fit.draws.shape[1] + step * chunk
            states, _ = program.run(states, key, done, pool)
            out.append(_stack_groups(states))
    return out


def sampler_layout(analysis: Analysis):
    """(layout, arrays) of the engine that samples ``analysis``: the two-level engine,
    or two two-level views for a three-level (bayes.threelevel) or cross-classified
    (bayes.crossed) model."""
    if len(analysis.spec.blocks) == 3:
        if analysis.data.crossed:
            return crossed.build_crossed(analysis)
        return threelevel.build_three_level(analysis)
    return build_layout(analysis)


_COMPOSITES = {threelevel.ThreeLevelLayout: threelevel, crossed.CrossedLayout: crossed}


def _engine(layout):
    """The module with build_schedule, make_sweep, chunk_noise and initial_state for
    ``layout`` (gibbs, or a module of two views with its array prefixes ``VIEWS``)."""
    return _COMPOSITES.get(type(layout), gibbs)


def _n_adapt(schedule, options: BayesOptions) -> int:
    """Warm-up sweeps: only the NUTS and factor-model blocks adapt."""
    return options.n_adapt if schedule.nuts or schedule.factor_levels else 0


def _sweep_inputs(layout: Layout, arrays: dict) -> dict:
    """The data arrays a sweep reads: without augmented outcomes, cluster summaries only
    (O(J) inputs, whatever the number of observations)."""
    if type(layout) in _COMPOSITES:
        names = _engine(layout).VIEWS
        parts = views.split_arrays(arrays, names)
        return views.join_arrays(*(_sweep_inputs(view, part)
                                   for view, part in zip(layout.views, parts)), names)
    if layout.augmented:
        return arrays
    return {k: v for k, v in arrays.items()
            if k not in ("y", "observed", "c", "cluster", "codes")}


def chain_groups(options: BayesOptions) -> list[np.ndarray]:
    """Chain indices of each group run at once: as many equal groups as processors allow
    (the largest divisor of CHAINS not above them) on a CPU, one group on an
    accelerator, where the chains of one program already run in parallel."""
    if jax.default_backend() != "cpu":
        return [np.arange(options.chains, dtype=np.int32)]
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    cap = min(options.processors or cores, options.chains)
    n_groups = max(g for g in range(1, cap + 1) if options.chains % g == 0)
    return np.split(np.arange(options.chains, dtype=np.int32), n_groups)


@dataclass(frozen=True)
class Program:
    """A compiled chunk for one group size, the device arrays it reads and the chain
    groups it runs (chain_groups).

    ``concurrent``: whether groups may run at the same time (no LAPACK call inside).
    """
    compiled: object
    arrays: dict
    concurrent: bool
    groups: list

    def split(self, states):
        """States with a leading axis over all chains, as one state per group."""
        return [jax.tree_util.tree_map(lambda a, g=g: a[g[0]:g[-1] + 1], states)
                for g in self.groups]

    @contextlib.contextmanager
    def threads(self):
        """Threads for the groups (None where they run one after another), dropped
        without waiting on exit: after Ctrl-C a running chunk finishes on its own."""
        pool = (ThreadPoolExecutor(len(self.groups))
                if self.concurrent and len(self.groups) > 1 else None)
        try:
            yield pool
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def run(self, states: list, key, done: int, pool):
        """One chunk of every group, on ``pool``'s threads if given: (new states per
        group, (draws (chains, chunk, n_free), acceptance (chains, chunk)) as numpy
        arrays, chains in order)."""
        def one(state, ids):
            new, (x_draws, accept) = self.compiled(self.arrays, state, key, np.int32(done),
                                                   ids)
            return new, np.asarray(x_draws), np.asarray(accept)
        parts = (list(pool.map(one, states, self.groups)) if pool is not None
                 else [one(state, ids) for state, ids in zip(states, self.groups)])
        return ([p[0] for p in parts], (np.concatenate([p[1] for p in parts]),
                                        np.concatenate([p[2] for p in parts])))


def _stack_groups(states: list):
    """The groups' states as one state with a leading axis over all chains."""
    return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *states)


def _program(layout: Layout, schedule, options: BayesOptions, arrays: dict,
             chunk: int) -> Program:
    """The Program of one chain group for ``arrays`` from :func:`_sweep_inputs`."""
    shapes = tuple((name, a.shape, str(a.dtype)) for name, a in sorted(arrays.items()))
    groups = chain_groups(options)
    compiled, concurrent = _compiled_chunk(layout, schedule, _n_adapt(schedule, options),
                                           chunk, options.thin, len(groups[0]), shapes)
    return Program(compiled, jax.tree_util.tree_map(jnp.asarray, arrays), concurrent, groups)


def potential_scale_reduction(draws: np.ndarray) -> np.ndarray:
    """Mplus's PSR per parameter: sqrt((W + B) / W) over chains (chains, n, P).

    W is the mean within-chain variance, B the variance of the chain means. One chain
    is split in two halves.
    """
    if draws.shape[0] == 1:
        half = draws.shape[1] // 2
        draws = np.stack([draws[0, :half], draws[0, half:2 * half]])
    if draws.shape[1] < 2:
        return np.full(draws.shape[2], np.inf)
    within = draws.var(axis=1).mean(axis=0)
    between = draws.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt((within + between) / within)
    return np.where(within > 0, out, 1.0)


def _starting_values(analysis: Analysis, layout: Layout, arrays, starts) -> np.ndarray:
    """The start of every chain: given values, the ML estimates, or Mplus's defaults."""
    if starts is None:
        return default_starts(layout, arrays)
    if isinstance(starts, str):
        if starts.lower() != "ml":
            raise ModelError(f"starts must be a vector of values, 'ml' or None, not {starts!r}")
        from jaxsem.ml import MLOptions, fit_ml  # noqa: PLC0415

        ml = fit_ml(analysis, MLOptions(saturated=False))
        if ml.converged and np.isfinite(ml.x).all():
            return ml.x
        warn("the ML fit for starting values did not converge: starting from Mplus's "
             "default values instead")
        return default_starts(layout, arrays)
    return np.asarray(starts, dtype=float)


def default_starts(layout: Layout, arrays) -> np.ndarray:
    """Mplus's default starts: loadings 1, latent variances 0.05, observed (residual)
    variances half the sample variance at their level, intercepts at sample means,
    thresholds at the normal quantiles of the cumulative category proportions.
    Models of two views: each view's defaults for its parameters (the first view's for
    the parameters both update)."""
    if type(layout) in _COMPOSITES:
        first, second = views.split_arrays(arrays, _engine(layout).VIEWS)
        in_first = np.isin(np.arange(layout.spec.n_free), layout.first_free)
        return np.where(in_first, default_starts(layout.views[0], first),
                        default_starts(layout.views[1], second))
    spec = layout.spec
    x = spec.start_values()
    n = arrays["n"]
    moments = arrays["moments"]
    p = layout.p
    means = moments[:, :p, p] / n[:, None]
    grand = moments[:, :p, p].sum(0) / n.sum()
    within_var = (np.einsum("jii->ji", moments[:, :p, :p]) - n[:, None] * means ** 2).sum(0) / max(
        n.sum() - len(n), 1.0)
    between_var = means.var(axis=0) if len(n) > 1 else np.zeros(p)
    for row in spec.partable.free_rows():
        if not np.isnan(row.start):
            continue
        k = row.free - 1
        level = 0 if row.level == 1 else 1
        if row.kind in ("variance", "residual_variance"):
            if row.lhs in layout.within_observed:
                i = layout.within_observed.index(row.lhs)
                scale = within_var[i] if level == 0 else between_var[i]
                x[k] = max(0.5 * scale, 1e-3)
            else:
                x[k] = 0.05
        elif row.kind in ("intercept", "mean") and row.lhs in layout.within_observed:
            x[k] = grand[layout.within_observed.index(row.lhs)]
        elif row.kind == "threshold":
            if row.lhs in layout.within_observed:
                column = layout.categorical.index(layout.within_observed.index(row.lhs))
                codes = arrays["codes"][:, column]
            else:
                known = layout.known.index(layout.between.index(row.lhs))
                codes = arrays["between_codes"][:, layout.between_categorical.index(known)]
            x[k] = start_thresholds(codes, int(codes.max()) + 1)[int(row.rhs[1:]) - 1]
    return x


# XLA options for the sampler's programs on a CPU, set per program (not process-wide),
# measured on the bench models (4 chains, one core; bench/README.md): XLA's older loop
# emitters compile the sweep's many small fusions in about 30% less time than its MLIR
# fusion emitters, but run large elementwise work (the latent responses of categorical
# outcomes, per observation) slower (ordinal CFA 21 -> 30 s), so they are used only
# without it; plain loops run the tiny batched products of a sweep faster than the YNN
# library (random slope 14%, three levels 20%); the memory-optimised schedule (1) runs
# a sweep's thousand-odd small kernels in sequence instead of handing independent ones
# to other threads (two-level CFA 24%, random slope 14%, SEM 4% faster; the same on two
# chain groups). The draws are the same (test). Options this jaxlib does not know are
# left out.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "",
                        "xla_cpu_scheduler_type": 1}
LOOP_EMITTERS = {"xla_cpu_use_fusion_emitters": False}


def compiler_options(per_observation: bool = False) -> dict | None:
    """The XLA options for sampler programs on the default backend (None: XLA's own);
    ``per_observation``: the sweep draws values per observation (latent responses)."""
    if jax.default_backend() != "cpu":
        return None
    return dict(CPU_COMPILER_OPTIONS) if per_observation else {**CPU_COMPILER_OPTIONS,
                                                               **LOOP_EMITTERS}


def compile_with_options(lowered, per_observation: bool = False):
    """``lowered.compile`` with :func:`compiler_options`, leaving out any option that
    this XLA does not know (options come and go between jaxlib versions)."""
    options = compiler_options(per_observation)
    while True:
        try:
            return lowered.compile(compiler_options=options or None)
        except jax.errors.JaxRuntimeError as error:
            unknown = re.search(r"No such compile option: '(\w+)'", str(error))
            if not options or unknown is None or unknown.group(1) not in options:
                raise
            options = {k: v for k, v in options.items() if k != unknown.group(1)}


@functools.lru_cache(maxsize=16)
def _compiled_chunk(layout: Layout, schedule, n_adapt: int, chunk: int, thin: int,
                    chains: int, shapes: tuple):
    """(compiled chunk, whether it may run concurrently) for one model structure, data
    shape and number of chains (cached: a second data set of the same shapes reuses
    it); data arrays are arguments, not constants. ``chain_ids`` (chains,) int32 name
    the chains: each chain's key is derived from its index. With programs kept on disk
    (bayes.programs), one compiled in an earlier session is loaded instead."""
    name = programs.program_key((layout, schedule, n_adapt, chunk, thin, chains, shapes),
                                compiler_options(schedule.latent_responses))
    kept = programs.load(name)
    if kept is not None:
        return kept
    engine = _engine(layout)
    sweep = engine.make_sweep(layout, schedule, n_adapt)

    def one_chain(arrays, state, key, done):
        key_noise, key_sweeps = jax.random.split(key)
        noise = engine.chunk_noise(layout, schedule, key_noise, chunk * thin, arrays)
        noise = jax.tree_util.tree_map(lambda a: a.reshape((chunk, thin) + a.shape[1:]), noise)
        # sweep numbers from ``done``, the same for every chain (not batched), so that
        # work that depends on them only is skipped rather than masked
        sweep_numbers = (done * thin + jnp.arange(chunk * thin, dtype=jnp.int32)).reshape(
            chunk, thin)

        def iteration(state, inputs):
            key, noise_it, numbers = inputs
            state, accept = jax.lax.scan(lambda s, kn: sweep(kn[0], s, arrays, kn[1], kn[2]),
                                         state, (jax.random.split(key, thin), noise_it,
                                                 numbers))
            return state, (state.x, accept[-1])
        return jax.lax.scan(iteration, state,
                            (jax.random.split(key_sweeps, chunk), noise, sweep_numbers))

    def run(arrays, states, key, done, chain_ids):
        # chunk keys derived inside the compiled program: a first call of jax.random
        # outside it compiles a small program (about 0.2 s) during sampling
        chunk_key = jax.random.fold_in(key, done)
        keys = jax.vmap(lambda c: jax.random.fold_in(chunk_key, c))(chain_ids)
        return jax.vmap(one_chain, in_axes=(None, 0, 0, None))(arrays, states, keys, done)

    runner = jax.jit(run)
    arrays = {name: jax.ShapeDtypeStruct(shape, dtype) for name, shape, dtype in shapes}
    state = engine.initial_state(layout, schedule, np.zeros(layout.spec.n_free),
                          {name: np.zeros(shape, dtype) for name, shape, dtype in shapes})
    states = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct((chains,) + a.shape, a.dtype), state)
    key = jax.ShapeDtypeStruct(jax.random.PRNGKey(0).shape, jnp.uint32)
    compiled = compile_with_options(runner.lower(
        arrays, states, key, jax.ShapeDtypeStruct((), jnp.int32),
        jax.ShapeDtypeStruct((chains,), jnp.int32)), per_observation=schedule.latent_responses)
    concurrent = 'custom_call_target="lapack' not in compiled.as_text()
    programs.store(name, compiled, concurrent)
    return compiled, concurrent


def _check_finite(x_draws: np.ndarray, names: list[str], done: int, thin: int) -> None:
    bad = ~np.isfinite(x_draws) | (np.abs(x_draws) > 1e12)
    if bad.any():
        chain, it, k = map(int, np.argwhere(bad)[0])
        raise ModelError(f"chain {chain + 1} diverged at iteration {done + it + 1}: "
                         f"'{names[k]}' became {x_draws[chain, it, k]:g}. The model may not "
                         "be identified, or a variance is drifting without bound: check the "
                         "model, give starting values or an informative prior")


def _progress(done: int, top: int, last: tuple[int, float, str]) -> None:
    _, psr, name = last
    print(f"\riteration {done:>6}/{top}  max PSR {psr:8.3f}  ({name})", end="",
          file=sys.stderr, flush=True)
