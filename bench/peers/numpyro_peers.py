"""numpyro NUTS on the benchmark models: the peer side of jaxsem's speed benchmarks.

Models (``MODELS``), each with a reproducible data generator (``make_data``) and a
numpyro model; ``run_nuts`` fits one with NUTS and times it.

``random_slope``
    200 clusters x 50: y_ij = b0 + u0_j + (b1 + u1_j) x_ij + e_ij, x ~ N(0, 1),
    (u0, u1) ~ MVN(0, Sigma_u) with sds (0.5, 0.3) and correlation 0.3, b0 = 2, b1 = 1,
    e ~ N(0, 1). Fitted with non-centred random effects, u_j = diag(sd_u) L z_j,
    z_j ~ N(0, I). Priors: b0, b1 ~ N(0, 10); sd_u0, sd_u1, sigma_e ~ HalfNormal(2.5);
    L ~ LKJCholesky(2, concentration=1), i.e. corr_u ~ Uniform(-1, 1).
``cfa_twolevel``
    100 clusters x 20, indicators y1-y3; within factor fw (loadings 1, 0.8, 1.2,
    variance 1, residual variances 0.5), between factor fb (loadings 1, 0.9, 1.1,
    variance 0.3, residual variances 0.1), intercepts 1, 2, 3. 15 free parameters.
``demo_twolevel_sem``
    lavaan's Demo.twolevel data (data/Demo.twolevel.csv) with the lavaan tutorial
    model: within fw =~ y1 + y2 + y3, fw ~ x1 + x2 + x3; between fb =~ y1 + y2 + y3,
    fb ~ w1 + w2. 20 free parameters; x1-x3 enter with their observed (uncentred)
    values, w1 and w2 per cluster, both conditioned on (lavaan's fixed.x = TRUE).
``ordinal_cfa_twolevel``
    100 clusters x 20, four 4-category ordinal indicators u1-u4 (categories 0..3) of
    latent responses u*; within factor fw (loadings 1, 0.8, 1.2, 0.9, variance 1,
    residual variances fixed at 1: probit), between factor fb (loadings 1, 0.9, 1.1,
    1.0, variance 0.3, residual variances 0.1), between means of u* fixed at 0;
    thresholds (-1, 0, 1) for u1, (-0.8, 0.2, 1.2) for u2, (-1.2, -0.2, 0.8) for u3,
    (-0.5, 0.5, 1.5) for u4. 24 free parameters (Mplus's default two-level CFA with
    categorical indicators): 3 within loadings, fw variance, 3 between loadings, 12
    thresholds, 4 between residual variances, fb variance.

The two normal SEMs are fitted on their exact marginal likelihood (no latent draws;
see ``twolevel_normal_loglik``). ordinal_cfa_twolevel samples the factor scores,
fw per observation and fb and the between residuals per cluster, non-centred
(z ~ N(0, 1) scaled by the sd), with the latent responses integrated out by the
ordered probit likelihood, P(u = k) = Phi(tau_{k+1} - eta) - Phi(tau_k - eta)
(see ``log_interval_probability``). Priors of all three: loadings, regressions,
intercepts and thresholds ~ N(0, 10); variances (residual and factor) ~
HalfNormal(5) on the variance itself, close to flat where the data put them; each
indicator's thresholds restricted to increasing order (the N(0, 10) density on the
ordered region).

Parameter names follow lavaan: "fw=~y2", "fw~x1", "fw~~fw" (variances, not sds);
indicator rows carry their level, "within: y1~~y1", "between: y1~~y1", "between: y1~1";
thresholds "u1|t1", "u1|t2", "u1|t3".

Timing: the whole chain (numpyro's initialisation, then warmup and sampling as one
``lax.scan`` over its NUTS ``sample_kernel``) is one jitted function of (key, data),
compiled once with ``.lower().compile()`` (``compile_seconds``, tracing included).
Chains then run one after another through that compiled function
(``sampling_seconds``: their execution, summed). NUTS settings are numpyro's
defaults: diagonal mass matrix, target acceptance 0.8, maximum tree depth 10,
initial values uniform(-2, 2) on the unconstrained scale, except factor loadings,
which start in (0.5, 1.5), and ordinal_cfa_twolevel's factor scores and between
residuals (non-centred), which start in (-0.1, 0.1) (see ``_start_range``), redrawn
where not finite, as numpyro's ``MCMC`` does.

Command line: ``python bench/peers/numpyro_peers.py [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
import pandas as pd  # noqa: E402
from jax.scipy.linalg import cho_solve  # noqa: E402
from jax.scipy.special import log_ndtr  # noqa: E402
from numpyro.distributions import biject_to, constraints  # noqa: E402
from numpyro.infer.hmc import hmc  # noqa: E402
from numpyro.infer.util import initialize_model  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # arviz's notice of its refactor
    import arviz as az  # noqa: E402

MODELS = ("random_slope", "cfa_twolevel", "demo_twolevel_sem", "ordinal_cfa_twolevel",
          "threelevel_random_slope")

DEMO_CSV = Path(__file__).resolve().parent / "data" / "Demo.twolevel.csv"
INDICATORS = ("y1", "y2", "y3")
ORDINAL_INDICATORS = ("u1", "u2", "u3", "u4")
N_THRESHOLDS = 3  # 4 categories, 0..3

RANDOM_SLOPE_TRUTH = {
    "b0": 2.0,
    "b1": 1.0,
    "sd_u0": 0.5,
    "sd_u1": 0.3,
    "corr_u": 0.3,
    "sigma_e": 1.0,
}
CFA_TRUTH = {
    "fw=~y2": 0.8,
    "fw=~y3": 1.2,
    "within: y1~~y1": 0.5,
    "within: y2~~y2": 0.5,
    "within: y3~~y3": 0.5,
    "fw~~fw": 1.0,
    "fb=~y2": 0.9,
    "fb=~y3": 1.1,
    "between: y1~1": 1.0,
    "between: y2~1": 2.0,
    "between: y3~1": 3.0,
    "between: y1~~y1": 0.1,
    "between: y2~~y2": 0.1,
    "between: y3~~y3": 0.1,
    "fb~~fb": 0.3,
}
ORDINAL_CFA_TRUTH = {
    "fw=~u2": 0.8,
    "fw=~u3": 1.2,
    "fw=~u4": 0.9,
    "fw~~fw": 1.0,
    "fb=~u2": 0.9,
    "fb=~u3": 1.1,
    "fb=~u4": 1.0,
    "u1|t1": -1.0,
    "u1|t2": 0.0,
    "u1|t3": 1.0,
    "u2|t1": -0.8,
    "u2|t2": 0.2,
    "u2|t3": 1.2,
    "u3|t1": -1.2,
    "u3|t2": -0.2,
    "u3|t3": 0.8,
    "u4|t1": -0.5,
    "u4|t2": 0.5,
    "u4|t3": 1.5,
    "between: u1~~u1": 0.1,
    "between: u2~~u2": 0.1,
    "between: u3~~u3": 0.1,
    "between: u4~~u4": 0.1,
    "fb~~fb": 0.3,
}
# (within covariates, between covariates) of each SEM
SEM_COVARIATES = {
    "cfa_twolevel": ((), ()),
    "demo_twolevel_sem": (("x1", "x2", "x3"), ("w1", "w2")),
}
# ordinal_cfa_twolevel's latent N(0, 1) sites: fw scores (N,), fb scores (J,), between
# residuals (J, 4); see ``_start_range``
# UG ex9.20's structure: y = b0 + bx x + bz z + u3 + (c + cz z + v3) w + u2 + e, with x at
# level 1, w at level 2, z at level 3; (u3, v3) correlated over level-3 clusters.
THREELEVEL_TRUTH = {"b0": 1.0, "bx": 0.5, "bz": 0.4, "c": 0.3, "cz": 0.2, "sd_u3": 0.6,
                    "sd_v3": 0.5, "corr_3": 0.3, "sd_u2": 0.7, "sigma_e": 1.0}
THREELEVEL_SIZES = (100, 5, 10)   # level-3 clusters, level-2 units each, observations each
SCORE_SITES = ("z_fw", "z_fb", "z_between_residual")
DEFAULT_SIZES = {
    "random_slope": (200, 50),
    "cfa_twolevel": (100, 20),
    "ordinal_cfa_twolevel": (100, 20),
}


def sem_parameter_names(name: str) -> tuple[str, ...]:
    """Free parameters of SEM ``name``, in lavaan's order (within block, then between)."""
    within_covariates, between_covariates = SEM_COVARIATES[name]
    within = (
        ["fw=~y2", "fw=~y3"]
        + [f"fw~{x}" for x in within_covariates]
        + [f"within: {y}~~{y}" for y in INDICATORS]
        + ["fw~~fw"]
    )
    between = (
        ["fb=~y2", "fb=~y3"]
        + [f"fb~{w}" for w in between_covariates]
        + [f"between: {y}~1" for y in INDICATORS]
        + [f"between: {y}~~{y}" for y in INDICATORS]
        + ["fb~~fb"]
    )
    return tuple(within + between)


def threshold_names(indicator: str) -> tuple[str, ...]:
    """Names of the thresholds of ordinal ``indicator``, "u1|t1" ... in increasing order."""
    return tuple(f"{indicator}|t{k + 1}" for k in range(N_THRESHOLDS))


def ordinal_parameter_names() -> tuple[str, ...]:
    """Free parameters of ordinal_cfa_twolevel: within block, then between (with thresholds)."""
    rest = ORDINAL_INDICATORS[1:]
    within = [f"fw=~{u}" for u in rest] + ["fw~~fw"]
    between = (
        [f"fb=~{u}" for u in rest]
        + [t for u in ORDINAL_INDICATORS for t in threshold_names(u)]
        + [f"between: {u}~~{u}" for u in ORDINAL_INDICATORS]
        + ["fb~~fb"]
    )
    return tuple(within + between)


def parameter_names(name: str) -> tuple[str, ...]:
    """Names of the parameters ``run_nuts`` returns draws of for model ``name``."""
    if name == "random_slope":
        return tuple(RANDOM_SLOPE_TRUTH)
    if name == "threelevel_random_slope":
        return tuple(THREELEVEL_TRUTH)
    if name == "ordinal_cfa_twolevel":
        return ordinal_parameter_names()
    return sem_parameter_names(name)


# ---------------------------------------------------------------- data


def make_data(
    name: str,
    seed: int = 0,
    *,
    n_clusters: int | None = None,
    cluster_size: int | None = None,
) -> dict:
    """Data of model ``name`` as numpy arrays, in long format.

    Keys: ``cluster`` (N,) integer codes 0..J-1; ``y`` (N,) for random_slope, else
    (N, 3) for y1-y3; ``u`` (N, 4) integer categories 0..3 of u1-u4 (instead of y)
    for ordinal_cfa_twolevel; ``x`` (N,) for random_slope, (N, 3) x1-x3 for
    demo_twolevel_sem; ``w`` (J, 2) w1, w2 for demo_twolevel_sem; ``truth`` (the
    generating parameter values by name) for the simulated models. ``n_clusters``
    clusters of ``cluster_size`` observations each, defaulting to the benchmark's
    sizes; demo_twolevel_sem ignores ``seed`` and ``cluster_size`` and keeps its
    first ``n_clusters`` clusters.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")
    if name == "demo_twolevel_sem":
        return _demo_data(n_clusters)
    if name == "threelevel_random_slope":
        return _threelevel_data(np.random.default_rng(seed))
    default_clusters, default_size = DEFAULT_SIZES[name]
    n_clusters = default_clusters if n_clusters is None else n_clusters
    cluster_size = default_size if cluster_size is None else cluster_size
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_clusters), cluster_size)
    if name == "random_slope":
        return _random_slope_data(rng, cluster, n_clusters)
    if name == "ordinal_cfa_twolevel":
        return _ordinal_cfa_data(rng, cluster, n_clusters)
    return _cfa_data(rng, cluster, n_clusters)


def _random_slope_data(rng: np.random.Generator, cluster: np.ndarray, n_clusters: int) -> dict:
    truth = RANDOM_SLOPE_TRUTH
    sd = np.array([truth["sd_u0"], truth["sd_u1"]])
    corr = np.array([[1.0, truth["corr_u"]], [truth["corr_u"], 1.0]])
    u = rng.multivariate_normal(np.zeros(2), corr * np.outer(sd, sd), size=n_clusters)
    x = rng.standard_normal(cluster.size)
    e = truth["sigma_e"] * rng.standard_normal(cluster.size)
    y = truth["b0"] + u[cluster, 0] + (truth["b1"] + u[cluster, 1]) * x + e
    return {"y": y, "x": x, "cluster": cluster, "truth": dict(truth)}


def _threelevel_data(rng: np.random.Generator) -> dict:
    """``level2`` (N,) and ``level3`` (N,) codes, ``y``, ``x`` (N,), ``w`` (J2,), ``z`` (J3,)."""
    truth = THREELEVEL_TRUTH
    n3, n2, n1 = THREELEVEL_SIZES
    level2 = np.repeat(np.arange(n3 * n2), n1)
    level3 = level2 // n2
    sd = np.array([truth["sd_u3"], truth["sd_v3"]])
    corr = np.array([[1.0, truth["corr_3"]], [truth["corr_3"], 1.0]])
    u3 = rng.multivariate_normal(np.zeros(2), corr * np.outer(sd, sd), size=n3)
    u2 = truth["sd_u2"] * rng.standard_normal(n3 * n2)
    x, w, z = rng.standard_normal(level2.size), rng.standard_normal(n3 * n2), rng.standard_normal(n3)
    slope = truth["c"] + truth["cz"] * z + u3[:, 1]
    y = (truth["b0"] + truth["bx"] * x + truth["bz"] * z[level3] + u3[level3, 0]
         + slope[level3] * w[level2] + u2[level2] + truth["sigma_e"] * rng.standard_normal(level2.size))
    return {"y": y, "x": x, "w": w, "z": z, "level2": level2, "level3": level3,
            "cluster": level3, "truth": dict(truth)}


def _cfa_data(rng: np.random.Generator, cluster: np.ndarray, n_clusters: int) -> dict:
    truth = CFA_TRUTH
    loadings_w = np.array([1.0, truth["fw=~y2"], truth["fw=~y3"]])
    loadings_b = np.array([1.0, truth["fb=~y2"], truth["fb=~y3"]])
    intercepts = np.array([truth[f"between: {y}~1"] for y in INDICATORS])
    theta_w = np.array([truth[f"within: {y}~~{y}"] for y in INDICATORS])
    theta_b = np.array([truth[f"between: {y}~~{y}"] for y in INDICATORS])
    n_obs = cluster.size
    factor_b = math.sqrt(truth["fb~~fb"]) * rng.standard_normal(n_clusters)
    residual_b = np.sqrt(theta_b) * rng.standard_normal((n_clusters, 3))
    factor_w = math.sqrt(truth["fw~~fw"]) * rng.standard_normal(n_obs)
    residual_w = np.sqrt(theta_w) * rng.standard_normal((n_obs, 3))
    y = (
        intercepts
        + factor_b[cluster, None] * loadings_b
        + residual_b[cluster]
        + factor_w[:, None] * loadings_w
        + residual_w
    )
    return {"y": y, "cluster": cluster, "truth": dict(truth)}


def _ordinal_cfa_data(rng: np.random.Generator, cluster: np.ndarray, n_clusters: int) -> dict:
    truth = ORDINAL_CFA_TRUTH
    rest = ORDINAL_INDICATORS[1:]
    loadings_w = np.array([1.0] + [truth[f"fw=~{u}"] for u in rest])
    loadings_b = np.array([1.0] + [truth[f"fb=~{u}"] for u in rest])
    theta_b = np.array([truth[f"between: {u}~~{u}"] for u in ORDINAL_INDICATORS])
    thresholds = np.array([[truth[t] for t in threshold_names(u)] for u in ORDINAL_INDICATORS])
    n_obs, n_items = cluster.size, len(ORDINAL_INDICATORS)
    factor_b = math.sqrt(truth["fb~~fb"]) * rng.standard_normal(n_clusters)
    residual_b = np.sqrt(theta_b) * rng.standard_normal((n_clusters, n_items))
    factor_w = math.sqrt(truth["fw~~fw"]) * rng.standard_normal(n_obs)
    residual_w = rng.standard_normal((n_obs, n_items))  # variance 1: probit
    latent = (
        factor_b[cluster, None] * loadings_b
        + residual_b[cluster]
        + factor_w[:, None] * loadings_w
        + residual_w
    )
    u = (latent[:, :, None] > thresholds).sum(axis=2)
    return {"u": u, "cluster": cluster, "truth": dict(truth)}


def _demo_data(n_clusters: int | None) -> dict:
    frame = pd.read_csv(DEMO_CSV)
    _, codes = np.unique(frame["cluster"].to_numpy(), return_inverse=True)
    if n_clusters is not None:
        keep = codes < n_clusters
        frame, codes = frame[keep], codes[keep]
    _, first_rows = np.unique(codes, return_index=True)
    w_rows = frame[["w1", "w2"]].to_numpy()
    w = w_rows[first_rows]
    if not np.allclose(w_rows, w[codes]):
        raise ValueError("w1, w2 vary within a cluster of Demo.twolevel")
    return {
        "y": frame[list(INDICATORS)].to_numpy(),
        "x": frame[["x1", "x2", "x3"]].to_numpy(),
        "w": w,
        "cluster": codes,
    }


# ---------------------------------------------------------------- two-level likelihood


def twolevel_stats(
    y: np.ndarray, cluster: np.ndarray, x: np.ndarray | None = None, w: np.ndarray | None = None
) -> dict:
    """Sufficient statistics of a two-level normal model with within covariates ``x``.

    ``y`` (N, p), ``cluster`` (N,) codes 0..J-1 (all present, any order), ``x`` (N, q),
    ``w`` (J, k). Returns numpy arrays: ``cluster_size`` (J,), ``y_mean`` (J, p),
    ``x_mean`` (J, q), ``w`` (J, k), the pooled within-cluster scatters about the
    cluster means ``scatter_yy`` (p, p), ``scatter_yx`` (p, q), ``scatter_xx`` (q, q),
    and the distinct cluster sizes ``size_values`` (K,), ``size_count`` (K,) and each
    cluster's ``size_group`` (J,) index into them.
    """
    n_clusters = int(cluster.max()) + 1
    x = np.zeros((y.shape[0], 0)) if x is None else x
    w = np.zeros((n_clusters, 0)) if w is None else w
    cluster_size = np.bincount(cluster, minlength=n_clusters).astype(float)
    if np.any(cluster_size == 0):
        raise ValueError("cluster codes must run 0..J-1 with no empty cluster")
    y_mean = np.zeros((n_clusters, y.shape[1]))
    x_mean = np.zeros((n_clusters, x.shape[1]))
    np.add.at(y_mean, cluster, y)
    np.add.at(x_mean, cluster, x)
    y_mean /= cluster_size[:, None]
    x_mean /= cluster_size[:, None]
    y_centred = y - y_mean[cluster]
    x_centred = x - x_mean[cluster]
    size_values, size_group, size_count = np.unique(
        cluster_size, return_inverse=True, return_counts=True
    )
    return {
        "cluster_size": cluster_size,
        "y_mean": y_mean,
        "x_mean": x_mean,
        "w": np.asarray(w, dtype=float),
        "scatter_yy": y_centred.T @ y_centred,
        "scatter_yx": y_centred.T @ x_centred,
        "scatter_xx": x_centred.T @ x_centred,
        "size_values": size_values.astype(float),
        "size_count": size_count.astype(float),
        "size_group": size_group.astype(np.int32),
    }


def twolevel_normal_loglik(stats, sigma_within, sigma_between, within_slopes, between_means):
    """Exact log density of all y under the two-level normal model.

    y_ij = mu_j + B x_ij + b_j + e_ij, b_j ~ N(0, Sigma_b), e_ij ~ N(0, Sigma_w), with
    ``sigma_within`` Sigma_w and ``sigma_between`` Sigma_b (p, p), ``within_slopes`` B
    (p, q), ``between_means`` mu (J, p); ``stats`` from ``twolevel_stats``. With
    r = y - B x, an orthogonal (Helmert) transform of each cluster's rows splits r into
    sqrt(n_j) rbar_j ~ N(sqrt(n_j) mu_j, Sigma_w + n_j Sigma_b) and n_j - 1 independent
    contrasts ~ N(0, Sigma_w) whose outer products sum to the within scatter W_j of r
    about its cluster mean:

        log p = -N p/2 log 2pi - (N - J)/2 log|Sigma_w| - 1/2 tr(Sigma_w^-1 sum_j W_j)
                - 1/2 sum_j [log|Sigma_w + n_j Sigma_b|
                             + n_j (rbar_j - mu_j)' (Sigma_w + n_j Sigma_b)^-1 (rbar_j - mu_j)]

    Clusters of equal size share one Cholesky factor.
    """
    slopes = within_slopes
    cluster_size = stats["cluster_size"]
    n_obs = cluster_size.sum()
    n_clusters, n_vars = stats["y_mean"].shape
    scatter = (
        stats["scatter_yy"]
        - slopes @ stats["scatter_yx"].T
        - stats["scatter_yx"] @ slopes.T
        + slopes @ stats["scatter_xx"] @ slopes.T
    )
    chol_within = jnp.linalg.cholesky(sigma_within)
    logdet_within = 2.0 * jnp.sum(jnp.log(jnp.diag(chol_within)))
    within = (n_obs - n_clusters) * logdet_within + jnp.trace(
        cho_solve((chol_within, True), scatter)
    )

    deviation = stats["y_mean"] - stats["x_mean"] @ slopes.T - between_means
    n_groups = stats["size_values"].shape[0]
    weighted_outer = jax.ops.segment_sum(
        cluster_size[:, None, None] * deviation[:, :, None] * deviation[:, None, :],
        stats["size_group"],
        num_segments=n_groups,
    )
    cluster_cov = sigma_within + stats["size_values"][:, None, None] * sigma_between
    chol_cluster = jnp.linalg.cholesky(cluster_cov)
    logdet_cluster = 2.0 * jnp.sum(
        jnp.log(jnp.diagonal(chol_cluster, axis1=-2, axis2=-1)), axis=-1
    )
    quadratic = jnp.trace(cho_solve((chol_cluster, True), weighted_outer), axis1=-2, axis2=-1)
    between = stats["size_count"] @ logdet_cluster + quadratic.sum()
    return -0.5 * (n_obs * n_vars * math.log(2.0 * math.pi) + within + between)


def _loadings(params: dict, factor: str):
    """(3,) loadings of ``factor`` on y1-y3, the first fixed to 1."""
    return jnp.stack([jnp.ones(()), params[f"{factor}=~y2"], params[f"{factor}=~y3"]])


def _factor_covariance(params: dict, factor: str, level: str):
    """One-factor covariance psi lambda lambda' + diag(theta), (3, 3)."""
    loadings = _loadings(params, factor)
    residual = jnp.stack([params[f"{level}: {y}~~{y}"] for y in INDICATORS])
    return params[f"{factor}~~{factor}"] * jnp.outer(loadings, loadings) + jnp.diag(residual)


def twolevel_sem_loglik(name: str, params: dict, stats: dict):
    """Marginal log-likelihood of SEM ``name`` at named ``params`` (scalars)."""
    within_covariates, between_covariates = SEM_COVARIATES[name]
    gamma_w = jnp.array([params[f"fw~{x}"] for x in within_covariates]).reshape(-1)
    gamma_b = jnp.array([params[f"fb~{w}"] for w in between_covariates]).reshape(-1)
    intercepts = jnp.stack([params[f"between: {y}~1"] for y in INDICATORS])
    between_means = intercepts + jnp.outer(stats["w"] @ gamma_b, _loadings(params, "fb"))
    return twolevel_normal_loglik(
        stats,
        _factor_covariance(params, "fw", "within"),
        _factor_covariance(params, "fb", "between"),
        jnp.outer(_loadings(params, "fw"), gamma_w),
        between_means,
    )


def sem_stats(name: str, data: dict) -> dict:
    """``twolevel_stats`` of SEM ``name``'s data."""
    within_covariates, _ = SEM_COVARIATES[name]
    return twolevel_stats(
        data["y"],
        data["cluster"],
        data["x"] if within_covariates else None,
        data["w"] if name == "demo_twolevel_sem" else None,
    )


# ---------------------------------------------------------------- numpyro models


def random_slope_model(n_clusters: int, data: dict) -> None:
    """Non-centred random intercept and slope; ``data`` y, x, cluster (N,) codes 0..J-1."""
    b0 = numpyro.sample("b0", dist.Normal(0.0, 10.0))
    b1 = numpyro.sample("b1", dist.Normal(0.0, 10.0))
    sd_u = numpyro.sample("sd_u", dist.HalfNormal(2.5).expand([2]).to_event(1))
    corr_chol = numpyro.sample("corr_chol_u", dist.LKJCholesky(2, concentration=1.0))
    sigma_e = numpyro.sample("sigma_e", dist.HalfNormal(2.5))
    numpyro.deterministic("sd_u0", sd_u[0])
    numpyro.deterministic("sd_u1", sd_u[1])
    numpyro.deterministic("corr_u", corr_chol[1, 0])
    z = numpyro.sample("z_u", dist.Normal(jnp.zeros((n_clusters, 2)), 1.0).to_event(2))
    u = (z @ corr_chol.T) * sd_u
    cluster = data["cluster"]
    mean = b0 + u[cluster, 0] + (b1 + u[cluster, 1]) * data["x"]
    numpyro.sample("y", dist.Normal(mean, sigma_e), obs=data["y"])


def threelevel_model(n2: int, n3: int, data: dict) -> None:
    """Non-centred level-3 intercept and slope of w (correlated) and level-2 intercept."""
    coef = {k: numpyro.sample(k, dist.Normal(0.0, 10.0)) for k in ("b0", "bx", "bz", "c", "cz")}
    sd_3 = numpyro.sample("sd_3", dist.HalfNormal(2.5).expand([2]).to_event(1))
    corr_chol = numpyro.sample("corr_chol_3", dist.LKJCholesky(2, concentration=1.0))
    sd_u2 = numpyro.sample("sd_u2", dist.HalfNormal(2.5))
    sigma_e = numpyro.sample("sigma_e", dist.HalfNormal(2.5))
    numpyro.deterministic("sd_u3", sd_3[0])
    numpyro.deterministic("sd_v3", sd_3[1])
    numpyro.deterministic("corr_3", corr_chol[1, 0])
    u3 = (numpyro.sample("z_3", dist.Normal(jnp.zeros((n3, 2)), 1.0).to_event(2))
          @ corr_chol.T) * sd_3
    u2 = sd_u2 * numpyro.sample("z_2", dist.Normal(jnp.zeros(n2), 1.0).to_event(1))
    level2, level3, z = data["level2"], data["level3"], data["z"]
    slope = coef["c"] + coef["cz"] * z + u3[:, 1]
    mean = (coef["b0"] + coef["bx"] * data["x"] + coef["bz"] * z[level3] + u3[level3, 0]
            + slope[level3] * data["w"][level2] + u2[level2])
    numpyro.sample("y", dist.Normal(mean, sigma_e), obs=data["y"])


def _sem_prior(parameter: str) -> dist.Distribution:
    if "~~" in parameter:
        return dist.HalfNormal(5.0)
    return dist.Normal(0.0, 10.0)


def sem_model(name: str, stats: dict) -> None:
    """Two-level SEM ``name`` on its marginal likelihood; ``stats`` from ``sem_stats``."""
    params = {p: numpyro.sample(p, _sem_prior(p)) for p in sem_parameter_names(name)}
    numpyro.factor("loglik", twolevel_sem_loglik(name, params, stats))


def log1mexp(x):
    """log(1 - exp(x)) for x <= 0, accurate near 0 and far below it."""
    return jnp.where(x > -math.log(2.0), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def log_interval_probability(lower, upper, lower_open, upper_open):
    """log(Phi(upper) - Phi(lower)) for lower < upper, elementwise, stable in both tails.

    ``lower_open`` marks lower = -inf and ``upper_open`` upper = +inf (the values of
    lower / upper there are ignored, so gradients stay finite). An interval in the
    upper tail (lower > 0) is flipped to (-upper, -lower), of the same probability;
    then with a < b, log Phi(b) + log(1 - exp(log Phi(a) - log Phi(b))), where
    log Phi(-inf) = -inf and log Phi(inf) = 0 are set, not computed.
    """
    flip = (lower > 0.0) & ~lower_open
    a = jnp.where(flip, -upper, lower)
    b = jnp.where(flip, -lower, upper)
    a_open = jnp.where(flip, upper_open, lower_open)
    b_open = jnp.where(flip, lower_open, upper_open)
    log_a = jnp.where(a_open, -jnp.inf, log_ndtr(jnp.where(a_open, 0.0, a)))
    log_b = jnp.where(b_open, 0.0, log_ndtr(jnp.where(b_open, 0.0, b)))
    return log_b + log1mexp(log_a - log_b)


def ordered_probit_loglik(u, eta, thresholds):
    """Sum of log P(u) under P(u = k) = Phi(tau_{k+1} - eta) - Phi(tau_k - eta).

    ``u`` (N, p) integer categories 0..K, ``eta`` (N, p) linear predictors of the
    latent responses (residual variance 1), ``thresholds`` (p, K) increasing along
    the last axis; tau_0 = -inf, tau_{K+1} = +inf.
    """
    n_thresholds = thresholds.shape[-1]
    # tau_1 .. tau_K padded at both ends by placeholders for the open ends
    padded = jnp.concatenate([thresholds[:, :1], thresholds, thresholds[:, -1:]], axis=1)
    columns = jnp.arange(thresholds.shape[0])
    lower = padded[columns, u] - eta
    upper = padded[columns, u + 1] - eta
    return log_interval_probability(lower, upper, u == 0, u == n_thresholds).sum()


def ordinal_cfa_model(n_clusters: int, data: dict) -> None:
    """Two-level ordinal probit CFA with non-centred factor scores and between residuals.

    ``data``: ``u`` (N, 4) categories 0..3, ``cluster`` (N,) codes 0..J-1. Each
    indicator's thresholds are one ordered (3,) site, ``"u1|t"``, with the N(0, 10)
    density added as a factor; "u1|t1" ... are deterministic sites.
    """
    rest = ORDINAL_INDICATORS[1:]
    params = {
        p: numpyro.sample(p, _sem_prior(p))
        for p in ordinal_parameter_names()
        if "|" not in p
    }
    thresholds = []
    for u in ORDINAL_INDICATORS:
        tau = numpyro.sample(
            f"{u}|t",
            dist.ImproperUniform(constraints.ordered_vector, (), event_shape=(N_THRESHOLDS,)),
        )
        numpyro.factor(f"{u}|t prior", dist.Normal(0.0, 10.0).log_prob(tau).sum())
        for name, value in zip(threshold_names(u), tau):
            numpyro.deterministic(name, value)
        thresholds.append(tau)
    loadings_w = jnp.stack([jnp.ones(())] + [params[f"fw=~{u}"] for u in rest])
    loadings_b = jnp.stack([jnp.ones(())] + [params[f"fb=~{u}"] for u in rest])
    sd_residual_b = jnp.sqrt(jnp.stack([params[f"between: {u}~~{u}"] for u in ORDINAL_INDICATORS]))
    n_obs, n_items = data["u"].shape
    z_w = numpyro.sample("z_fw", dist.Normal(jnp.zeros(n_obs), 1.0).to_event(1))
    z_b = numpyro.sample("z_fb", dist.Normal(jnp.zeros(n_clusters), 1.0).to_event(1))
    z_e = numpyro.sample(
        "z_between_residual", dist.Normal(jnp.zeros((n_clusters, n_items)), 1.0).to_event(2)
    )
    fw = numpyro.deterministic("fw", jnp.sqrt(params["fw~~fw"]) * z_w)
    fb = numpyro.deterministic("fb", jnp.sqrt(params["fb~~fb"]) * z_b)
    between = fb[:, None] * loadings_b + z_e * sd_residual_b
    eta = fw[:, None] * loadings_w + between[data["cluster"]]
    numpyro.factor("loglik", ordered_probit_loglik(data["u"], eta, jnp.stack(thresholds)))


def model_inputs(name: str, data: dict):
    """(numpyro model of one argument, that argument as jax arrays) for model ``name``."""
    if name == "random_slope":
        inputs = {"y": data["y"], "x": data["x"], "cluster": data["cluster"].astype(np.int32)}
        model = partial(random_slope_model, int(data["cluster"].max()) + 1)
    elif name == "threelevel_random_slope":
        inputs = {k: data[k] for k in ("y", "x", "w", "z")}
        inputs.update(level2=data["level2"].astype(np.int32),
                      level3=data["level3"].astype(np.int32))
        model = partial(threelevel_model, len(data["w"]), len(data["z"]))
    elif name == "ordinal_cfa_twolevel":
        inputs = {"u": data["u"].astype(np.int32), "cluster": data["cluster"].astype(np.int32)}
        model = partial(ordinal_cfa_model, int(data["cluster"].max()) + 1)
    else:
        inputs = sem_stats(name, data)
        model = partial(sem_model, name)
    return model, jax.tree_util.tree_map(jnp.asarray, inputs)


# ---------------------------------------------------------------- NUTS


def init_to_start_range(site=None):
    """numpyro init strategy: uniform on the unconstrained scale, within ``_start_range``."""
    if site is None:
        return partial(init_to_start_range)
    if site["type"] == "sample" and not site["is_observed"]:
        low, high = _start_range(site["name"])
        transform = biject_to(site["fn"].support)
        shape = site["kwargs"]["sample_shape"] + transform.inverse_shape(site["fn"].shape())
        start = dist.Uniform(low, high)(rng_key=site["kwargs"]["rng_key"], sample_shape=shape)
        return transform(start)
    return None


def _start_range(site: str) -> tuple[float, float]:
    """Range of a chain's start value of ``site`` on the unconstrained scale.

    numpyro's default (-2, 2), except factor loadings, which start in (0.5, 1.5):
    positive, like lavaan's and Mplus's starting values. A negative start can leave a
    chain in the poorer local mode where a factor variance goes to 0 and its free
    loadings to large negative values (seen on Demo.twolevel). And the standardised
    factor scores and between residuals of ordinal_cfa_twolevel (``SCORE_SITES``),
    which start in (-0.1, 0.1), near their prior mean 0, like Mplus's and lavaan's
    zero starts: from random scores (uniform(-2, 2)) most chains fell into that poorer
    mode at both levels (factor variances near 0.001, loadings near -20).
    """
    if site in SCORE_SITES:
        return (-0.1, 0.1)
    return (0.5, 1.5) if "=~" in site else (-2.0, 2.0)


def _chain_runner(model, names, warmup: int, samples: int):
    """Jittable ``(key, inputs) -> (draws {name: (samples,)}, divergences, mean steps)``.

    Initialisation (numpyro's ``initialize_model``, traced here rather than run op by
    op) and one ``lax.scan`` of warmup + samples NUTS transitions (the kernel adapts
    while its iteration count is below ``warmup``), so the kernel is compiled once.
    """

    def run_chain(key, inputs):
        init_key, kernel_key = jax.random.split(key)
        model_info = initialize_model(
            init_key,
            model,
            init_strategy=init_to_start_range(),
            dynamic_args=True,
            model_args=(inputs,),
        )
        init_kernel, sample_kernel = hmc(potential_fn_gen=model_info.potential_fn, algo="NUTS")
        state = init_kernel(model_info.param_info, warmup, model_args=(inputs,), rng_key=kernel_key)

        def transition(state, _):
            state = sample_kernel(state, model_args=(inputs,))
            return state, (state.z, state.diverging, state.num_steps)

        _, trace = jax.lax.scan(transition, state, None, length=warmup + samples)
        z, diverging, num_steps = jax.tree_util.tree_map(lambda a: a[warmup:], trace)
        constrained = jax.vmap(model_info.postprocess_fn(inputs))(z)
        draws = {n: constrained[n] for n in names}
        return draws, diverging.sum(), num_steps.mean()

    return run_chain


def compile_chain(name: str, data: dict, warmup: int, samples: int, extra_sites=()):
    """(compiled chain runner, its inputs, seconds to trace and compile it); the runner
    returns draws of the parameters and of ``extra_sites``."""
    start = time.perf_counter()
    model, inputs = model_inputs(name, data)
    run_chain = _chain_runner(model, parameter_names(name) + tuple(extra_sites), warmup,
                              samples)
    compiled = jax.jit(run_chain).lower(jax.random.key(0), inputs).compile()
    return compiled, inputs, time.perf_counter() - start


def run_nuts(name: str, data: dict, *, chains=4, warmup=1000, samples=1000, seed=0,
             extra_sites=(), threads=1) -> dict:
    """Fit model ``name`` to ``data`` (from ``make_data``) with numpyro NUTS and time it.

    Returns ``compile_seconds``; ``sampling_seconds`` (warmup + sampling execution,
    all chains, run one after another, or ``threads`` at a time on as many threads:
    then the wall time of all of them); ``min_bulk_ess`` and ``min_ess_param``;
    ``ess_per_second`` (min bulk ESS / sampling_seconds); ``draws`` {name: (chains,
    samples)}; ``summary`` (arviz.summary DataFrame); ``divergences`` (after warmup,
    all chains) and ``mean_leapfrog_steps`` (per draw after warmup); ``extra`` {site:
    (chains, samples, ...)} for ``extra_sites`` (e.g. "fw", "fb": factor scores).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")
    names = parameter_names(name)
    keys = jax.random.split(jax.random.key(seed), chains)
    compiled, inputs, compile_seconds = compile_chain(name, data, warmup, samples,
                                                      extra_sites)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda key: jax.block_until_ready(compiled(key, inputs)),
                                keys))
    sampling_seconds = time.perf_counter() - start

    draws = {n: np.stack([np.asarray(r[0][n]) for r in results]) for n in names}
    posterior = az.convert_to_dataset(draws)
    ess = az.ess(posterior, method="bulk")
    min_ess_param = min(names, key=lambda n: float(ess[n]))
    min_bulk_ess = float(ess[min_ess_param])
    return {
        "compile_seconds": compile_seconds,
        "sampling_seconds": sampling_seconds,
        "min_bulk_ess": min_bulk_ess,
        "min_ess_param": min_ess_param,
        "ess_per_second": min_bulk_ess / sampling_seconds,
        "draws": draws,
        "summary": az.summary(posterior),
        "divergences": int(sum(int(r[1]) for r in results)),
        "mean_leapfrog_steps": float(np.mean([float(r[2]) for r in results])),
        "extra": {site: np.stack([np.asarray(r[0][site]) for r in results])
                  for site in extra_sites},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 chains x 200 warmup x 200 draws (smoke run)"
    )
    args = parser.parse_args(argv)
    chains, warmup, samples = (2, 200, 200) if args.quick else (4, 1000, 1000)
    print(
        f"numpyro {numpyro.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}"
        f" ({os.cpu_count()} cores); {chains} chains x {warmup} warmup x {samples} draws,"
        f" chains one after another; load average {os.getloadavg()[0]:.1f}"
    )
    for name in MODELS:
        fit = run_nuts(name, make_data(name), chains=chains, warmup=warmup, samples=samples)
        print(
            f"{name:20s} compile {fit['compile_seconds']:6.1f} s"
            f"  sampling {fit['sampling_seconds']:7.1f} s"
            f"  min bulk ESS {fit['min_bulk_ess']:7.0f} ({fit['min_ess_param']})"
            f"  ESS/s {fit['ess_per_second']:7.2f}"
            f"  divergences {fit['divergences']}"
            f"  leapfrog/draw {fit['mean_leapfrog_steps']:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
