"""ML and MLR estimation: L-BFGS (optax) on the marginal likelihood, then Newton polish,
observed-information standard errors and the MLR sandwich with cluster-level scores.

Parameters are optimised on their own scale (as lavaan and Mplus do), so a negative
variance estimate (Heywood case) can occur and is reported, never hidden. The objective
is minus the mean log likelihood per observation; a point where a covariance matrix is
not positive definite has objective +inf, which the line search backs away from.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import optax.tree_utils as otu

from jaxsem.bayes.driver import default_starts
from jaxsem.bayes.layout import Layout, build_layout, cluster_moments
from jaxsem.bayes.threelevel import VIEWS, ThreeLevelLayout, build_three_level
from jaxsem.bayes.views import join_arrays, split_arrays
from jaxsem.data import Roles
from jaxsem.errors import ModelError
from jaxsem.ml.likelihood import cluster_logliks, missing_patterns
from jaxsem.ml.results import MLFit, Saturated
from jaxsem.model import Analysis
from jaxsem.partable import build_partable
from jaxsem.spec import ModelSpec
from jaxsem.syntax.lavaan import parse_lavaan_model

ESTIMATORS = ("ml", "mlr")


@dataclass(frozen=True)
class MLOptions:
    """``estimator``: "ml" (observed-information SEs) or "mlr" (sandwich SEs with
    cluster-level scores, scaled chi-square). ``starts``: a free-parameter vector, or
    None for Mplus-style defaults (plus user ``*`` values). ``random_starts``: further
    starts drawn around the default one; the best solution is kept and the others are
    reported. ``max_iterations`` of L-BFGS; ``tolerance``: largest |gradient| of the
    mean log likelihood per observation accepted as converged."""
    estimator: str = "ml"
    starts: tuple[float, ...] | None = None
    random_starts: int = 0
    seed: int = 0
    max_iterations: int = 1000
    tolerance: float = 1e-7
    saturated: bool = True

    def __post_init__(self):
        if self.estimator.lower() not in ESTIMATORS:
            raise ModelError(f"ESTIMATOR = {self.estimator} is not an ML estimator; use ML "
                             "or MLR")
        object.__setattr__(self, "estimator", self.estimator.lower())
        if self.random_starts < 0:
            raise ModelError("random_starts must be 0 or more")


def compiled_functions(layout: Layout, masks, arrays, options: "MLOptions"):
    """Compiled functions for this structure and these array shapes (cached)."""
    shapes = tuple((k, v.shape, str(v.dtype)) for k, v in sorted(arrays.items()))
    return _compiled(layout, masks, options.max_iterations, options.tolerance, shapes)


@functools.lru_cache(maxsize=16)
def _compiled(layout: Layout, masks, max_iterations: int, tolerance: float, shapes):
    """Functions of one model structure and data shape, compiled ahead of time
    (``scores`` is compiled on first use: MLR only). Data arrays are arguments."""
    def logliks(x, arrays):
        return cluster_logliks(layout, x, arrays, masks)

    def objective(x, arrays):
        value = -logliks(x, arrays).sum() / observation_count(arrays)
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    def minimize(x0, arrays):
        fun = functools.partial(objective, arrays=arrays)
        solver = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(fun)

        def step(carry):
            x, state = carry
            value, grad = value_and_grad(x, state=state)
            updates, state = solver.update(grad, state, x, value=value, grad=grad,
                                           value_fn=fun)
            return optax.apply_updates(x, updates), state

        def going(carry):
            _, state = carry
            count = otu.tree_get(state, "count")
            grad = otu.tree_get(state, "grad")
            return (count == 0) | ((count < max_iterations)
                                   & (jnp.max(jnp.abs(grad)) >= tolerance))

        x, state = jax.lax.while_loop(going, step, (x0, solver.init(x0)))
        return x, otu.tree_get(state, "count")

    def total(x, arrays):
        return logliks(x, arrays).sum()

    arrays = {k: jax.ShapeDtypeStruct(shape, jnp.dtype(dtype)) for k, shape, dtype in shapes}
    x = jax.ShapeDtypeStruct((layout.spec.n_free,), jnp.float64)
    compiled = {name: jax.jit(fn).lower(x, arrays).compile() for name, fn in (
        ("minimize", minimize), ("value_and_grad", jax.value_and_grad(total)))}
    compiled["scores"] = jax.jit(jax.jacrev(logliks))
    return compiled


def _loglik(funcs, x, arrays) -> float:
    return float(funcs["value_and_grad"](jnp.asarray(x), arrays)[0])


def observed_information(value_and_grad, x: np.ndarray, arrays) -> np.ndarray:
    """Minus the Hessian (n_free, n_free) of the log likelihood at x, by central
    differences of the exact (autodiff) gradient, as lavaan does. A compiled
    forward-over-reverse Hessian gives the same numbers (tested) but compiles several
    times longer than the whole optimizer."""
    def gradient(point):
        return np.asarray(value_and_grad(jnp.asarray(point), arrays)[1])

    n = len(x)
    hessian = np.zeros((n, n))
    for k in range(n):
        step = np.zeros(n)
        step[k] = 1e-5 * max(1.0, abs(x[k]))
        hessian[:, k] = (gradient(x + step) - gradient(x - step)) / (2 * step[k])
    return -0.5 * (hessian + hessian.T)


def ml_arrays(analysis: Analysis, *, per_observation: bool = False):
    """Layout, static missing patterns (None when complete) and device arrays."""
    layout, arrays = ml_layout(analysis)
    return (layout, *_device_arrays(layout, arrays, per_observation))


def observation_count(arrays):
    """Number of observations the likelihood covers (level-1 rows)."""
    return (arrays["n"] if "n" in arrays else arrays["lower/n"]).sum()


def ml_layout(analysis: Analysis):
    """The sampler's layout and numpy arrays (build_layout; three-level models: the two
    views of bayes.threelevel), checked for ML."""
    if len(analysis.spec.blocks) == 3 and not analysis.data.crossed:
        layout, arrays = build_three_level(analysis)
    else:
        layout, arrays = build_layout(analysis, estimator="ML")
    if layout.spec.partable.constraints:
        raise ModelError("constraints (== < > in MODEL CONSTRAINT) are not supported by the "
                         "ML estimator yet; use equality labels, or ESTIMATOR = BAYES")
    return layout, arrays


def _device_arrays(layout: Layout, arrays, per_observation: bool):
    """Static missing patterns (None when complete) and the device arrays the likelihood
    reads. Single-level models get one unit per observation when ``per_observation``
    (MLR needs observation-level scores). Three-level models: the level-1 patterns."""
    if isinstance(layout, ThreeLevelLayout):
        lower, upper = split_arrays(arrays, VIEWS)
        masks, lower = _device_arrays(layout.lower, lower, per_observation)
        upper = {k: jnp.asarray(v) for k, v in upper.items() if k not in ("observed", "factors")}
        return masks, join_arrays(lower, upper, VIEWS)
    observed = arrays["observed"]
    arrays = {k: v for k, v in arrays.items() if k not in ("observed", "factors")}
    masks = None
    if not observed.all():
        masks, arrays["row_pattern"] = missing_patterns(observed)
    if not layout.two_level and per_observation:
        n = len(arrays["y"])
        arrays["cluster"] = np.arange(n, dtype=np.int32)
        arrays["moments"] = cluster_moments(arrays["y"], arrays["c"], arrays["cluster"], n)
        arrays["n"] = np.ones(n)
        arrays["w"] = np.zeros((n, 0))
        arrays["known"] = np.zeros((n, 0))
    return masks, {k: jnp.asarray(v) for k, v in arrays.items()}


def fit_ml(analysis: Analysis, options: MLOptions = MLOptions()) -> MLFit:
    """Maximum likelihood fit of an Analysis (ML or MLR)."""
    start_time = time.perf_counter()
    layout, layout_arrays = ml_layout(analysis)
    masks, arrays = _device_arrays(layout, layout_arrays, options.estimator == "mlr")
    starts = _starts(layout, layout_arrays, analysis, options)
    compile_start = time.perf_counter()
    funcs = compiled_functions(layout, masks, arrays, options)
    compile_seconds = time.perf_counter() - compile_start
    solutions = []
    for x0 in starts:
        x, count = funcs["minimize"](jnp.asarray(x0), arrays)
        solutions.append((_loglik(funcs, x, arrays), np.asarray(x), int(count)))
    finite = [s for s in solutions if np.isfinite(s[0])]
    if not finite:
        raise ModelError("the likelihood could not be evaluated at any start: a covariance "
                         "matrix is not positive definite there. Give starting values with "
                         "* (Mplus) or start() (lavaan)")
    loglik, x, iterations = max(finite, key=lambda s: s[0])
    x, loglik, newton, information = _newton_polish(funcs, x, arrays, loglik)
    gradient = np.asarray(funcs["value_and_grad"](jnp.asarray(x), arrays)[1])
    if information is None:
        information = observed_information(funcs["value_and_grad"], x, arrays)
    scores = (np.asarray(funcs["scores"](jnp.asarray(x), arrays))
              if options.estimator == "mlr" else None)
    n_obs = float(np.asarray(observation_count(arrays)))
    converged = bool(np.max(np.abs(gradient)) / n_obs < options.tolerance * 10)
    saturated = None
    if options.saturated and not isinstance(layout, ThreeLevelLayout) and not layout.random_slopes:
        saturated = fit_saturated(analysis, layout, options)
    return MLFit(analysis=analysis, layout=layout, options=options, x=x, loglik=loglik,
                 gradient=gradient, information=information, scores=scores, converged=converged,
                 iterations=iterations, newton_steps=newton, n_obs=int(n_obs),
                 other_solutions=[(ll, it) for ll, _, it in solutions],
                 saturated=saturated, compile_seconds=compile_seconds,
                 total_seconds=time.perf_counter() - start_time)


def _starts(layout: Layout, layout_arrays, analysis: Analysis,
            options: MLOptions) -> list[np.ndarray]:
    if options.starts is not None:
        x0 = np.asarray(options.starts, dtype=float)
        if x0.shape != (layout.spec.n_free,):
            raise ModelError(f"starts needs {layout.spec.n_free} values, got {x0.shape}")
    else:
        x0 = default_starts(layout, layout_arrays)
    rng = np.random.default_rng(options.seed)
    out = [x0]
    rows = {r.free - 1: r for r in analysis.partable.free_rows()}
    positive = np.array([rows[k].kind in ("variance", "residual_variance")
                         for k in range(len(x0))])
    for _ in range(options.random_starts):
        jitter = rng.uniform(0.5, 1.5, len(x0))
        shift = rng.normal(0.0, 0.5, len(x0))
        out.append(np.where(positive, x0 * jitter, x0 * jitter + shift))
    return out


def _newton_polish(funcs, x, arrays, loglik, steps: int = 3):
    """Up to ``steps`` Newton steps from the L-BFGS solution with the information at
    its end (kept only while they raise the log likelihood). Returns (x, loglik, steps
    taken, information at x or None when x moved more than 1e-6 relative from where it
    was computed)."""
    information = observed_information(funcs["value_and_grad"], x, arrays)
    try:
        chol = np.linalg.cholesky(information)
    except np.linalg.LinAlgError:
        return x, loglik, 0, information
    start, taken = x, 0
    for _ in range(steps):
        grad = np.asarray(funcs["value_and_grad"](jnp.asarray(x), arrays)[1])
        step = np.linalg.solve(chol.T, np.linalg.solve(chol, grad))
        candidate = x + step
        value = _loglik(funcs, candidate, arrays)
        if not np.isfinite(value) or value < loglik - 1e-9:
            break
        x, loglik, taken = candidate, value, taken + 1
        if np.max(np.abs(step)) < 1e-10:
            break
    moved = np.max(np.abs(x - start) / np.maximum(np.abs(start), 1.0))
    return x, loglik, taken, information if moved < 1e-6 else None


# ----------------------------------------------------------------- unrestricted model

def saturated_syntax(layout: Layout) -> str:
    """lavaan syntax of the unrestricted model for the same data: free means and
    covariances of the observed parts at each level, regressed on the same covariates."""
    def block(variables, covariates) -> list[str]:
        lines = [f" {a} ~~ {b}" for i, a in enumerate(variables) for b in variables[i:]]
        if covariates:
            lines += [f" {v} ~ {' + '.join(covariates)}" for v in variables]
        return lines

    within = block(list(layout.within_observed), list(layout.within_covariates))
    if not layout.two_level:
        return "\n".join(within)
    between = block(list(layout.spec.blocks[1].observed), list(layout.between_covariates))
    return "\n".join(["level: 1", *within, "level: 2", *between])


def fit_saturated(analysis: Analysis, layout: Layout, options: MLOptions) -> Saturated:
    """Fit of the unrestricted (H1) model on the same data, through the same code."""
    data = analysis.data
    roles = Roles(clusters=tuple(reversed(data.cluster_names)))
    parsed = parse_lavaan_model(saturated_syntax(layout))
    n_levels = 2 if layout.two_level else None
    table = build_partable(parsed, roles, n_levels=n_levels)
    h1 = Analysis(analysis.model, table, ModelSpec(table), data)
    h1_layout, layout_arrays = ml_layout(h1)
    masks, arrays = _device_arrays(h1_layout, layout_arrays, options.estimator == "mlr")
    funcs = compiled_functions(h1_layout, masks, arrays, options)
    x0 = _sample_moment_starts(h1_layout, layout_arrays,
                               default_starts(h1_layout, layout_arrays))
    x, count = funcs["minimize"](jnp.asarray(x0), arrays)
    value, gradient = funcs["value_and_grad"](x, arrays)
    x, loglik, gradient = np.asarray(x), float(value), np.asarray(gradient)
    n_obs = float(np.asarray(arrays["n"]).sum())
    if not np.max(np.abs(gradient)) / n_obs < options.tolerance * 10:
        return Saturated(loglik=loglik, n_free=table.n_free, scaling=None, converged=False)
    scaling = None
    if options.estimator == "mlr":
        info = observed_information(funcs["value_and_grad"], x, arrays)
        scores = np.asarray(funcs["scores"](jnp.asarray(x), arrays))
        scaling = loglik_scaling(info, scores)
    return Saturated(loglik=loglik, n_free=table.n_free, scaling=scaling, converged=True)


def _sample_moment_starts(layout: Layout, arrays, x0: np.ndarray) -> np.ndarray:
    """Starts of the unrestricted model at sample moments: the pooled within-cluster
    covariance and the covariance of the cluster means (available cases)."""
    y = np.where(arrays["observed"], arrays["y"], np.nan)
    cluster = arrays["cluster"]
    frame = pd.DataFrame(y).groupby(cluster)
    means = frame.transform("mean").to_numpy()
    within = pd.DataFrame(y - means).cov().to_numpy()
    between = frame.mean().cov().to_numpy() if layout.two_level else within
    values = {}
    for (level, cov) in ((1, within), (2, between)):
        for i, a in enumerate(layout.within_observed):
            for j, b in enumerate(layout.within_observed):
                values[(level, a, b)] = cov[i, j]
    out = x0.copy()
    for row in layout.spec.partable.free_rows():
        start = values.get((row.level, row.lhs, row.rhs)) if row.op == "~~" else None
        if start is not None and np.isfinite(start):
            if row.lhs == row.rhs:
                start = max(start, 0.05 * abs(values[(1, row.lhs, row.lhs)]))
            out[row.free - 1] = start
    return out


def loglik_scaling(information: np.ndarray, scores: np.ndarray) -> float:
    """Mplus's scaling correction factor of a log likelihood under MLR:
    tr(A^-1 B) / n_free with A the observed information and B = sum of the outer
    products of the cluster-level scores."""
    meat = scores.T @ scores
    return float(np.trace(np.linalg.solve(information, meat)) / information.shape[0])


__all__ = ["MLOptions", "fit_ml", "saturated_syntax"]
