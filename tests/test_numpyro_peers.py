"""The numpyro NUTS peers (bench/peers/numpyro_peers.py): likelihoods, data, a tiny run."""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.stats

PEERS = Path(__file__).resolve().parents[1] / "bench" / "peers"
sys.path.insert(0, str(PEERS))

import numpyro_peers as peers  # noqa: E402

LAVAAN = json.loads((PEERS / "outputs" / "lavaan_partables.json").read_text())["tutorial"]


def lavaan_name(row: dict) -> str:
    """Our name of a lavaan partable row: indicator rows carry their level."""
    name = f"{row['lhs']}{row['op']}{row['rhs']}"
    if row["lhs"] in peers.INDICATORS:
        return f"{'within' if row['level'] == 1 else 'between'}: {name}"
    return name


LAVAAN_EST = {lavaan_name(r): r["est"] for r in LAVAAN["partable"] if r["free"] > 0}
LAVAAN_SE = {lavaan_name(r): r["se"] for r in LAVAAN["partable"] if r["free"] > 0}


def as_jax(stats: dict) -> dict:
    return jax.tree_util.tree_map(jnp.asarray, stats)


def one_factor_cov(params: dict, factor: str, level: str) -> np.ndarray:
    loadings = np.array([1.0, params[f"{factor}=~y2"], params[f"{factor}=~y3"]])
    residual = [params[f"{level}: {y}~~{y}"] for y in peers.INDICATORS]
    return params[f"{factor}~~{factor}"] * np.outer(loadings, loadings) + np.diag(residual)


def brute_force_loglik(name: str, params: dict, data: dict) -> float:
    """Sum over clusters of the MVN log density of the stacked (n_j * 3,) vector."""
    within_covariates, between_covariates = peers.SEM_COVARIATES[name]
    sigma_w = one_factor_cov(params, "fw", "within")
    sigma_b = one_factor_cov(params, "fb", "between")
    loadings_w = np.array([1.0, params["fw=~y2"], params["fw=~y3"]])
    loadings_b = np.array([1.0, params["fb=~y2"], params["fb=~y3"]])
    intercepts = np.array([params[f"between: {y}~1"] for y in peers.INDICATORS])
    total = 0.0
    for j in range(int(data["cluster"].max()) + 1):
        rows = data["cluster"] == j
        n = int(rows.sum())
        mean = np.tile(intercepts, (n, 1))
        if within_covariates:
            gamma_w = np.array([params[f"fw~{x}"] for x in within_covariates])
            mean += np.outer(data["x"][rows] @ gamma_w, loadings_w)
        if between_covariates:
            gamma_b = np.array([params[f"fb~{w}"] for w in between_covariates])
            mean += (data["w"][j] @ gamma_b) * loadings_b
        cov = np.kron(np.eye(n), sigma_w) + np.kron(np.ones((n, n)), sigma_b)
        total += scipy.stats.multivariate_normal(mean.ravel(), cov).logpdf(data["y"][rows].ravel())
    return total


def unbalanced_cfa_data() -> dict:
    """cfa_twolevel data of 4 clusters cut to sizes 1, 3, 5, 2 (rows shuffled)."""
    data = peers.make_data("cfa_twolevel", seed=3, n_clusters=4, cluster_size=5)
    keep = np.concatenate([[0], 5 + np.arange(3), 10 + np.arange(5), 15 + np.arange(2)])
    order = np.random.default_rng(1).permutation(keep)
    return {"y": data["y"][order], "cluster": data["cluster"][order]}


def test_cfa_marginal_loglik_matches_brute_force_unbalanced():
    data = unbalanced_cfa_data()
    stats = as_jax(peers.sem_stats("cfa_twolevel", data))
    for params in (peers.CFA_TRUTH, {k: 0.7 * v + 0.2 for k, v in peers.CFA_TRUTH.items()}):
        ours = float(peers.twolevel_sem_loglik("cfa_twolevel", params, stats))
        assert ours == pytest.approx(brute_force_loglik("cfa_twolevel", params, data), abs=1e-9)


def test_demo_marginal_loglik_matches_brute_force():
    data = peers.make_data("demo_twolevel_sem", n_clusters=5)
    assert len(set(np.bincount(data["cluster"]))) > 1  # Demo.twolevel is unbalanced
    stats = as_jax(peers.sem_stats("demo_twolevel_sem", data))
    ours = float(peers.twolevel_sem_loglik("demo_twolevel_sem", LAVAAN_EST, stats))
    assert ours == pytest.approx(brute_force_loglik("demo_twolevel_sem", LAVAAN_EST, data), abs=1e-9)


def test_demo_names_match_lavaan_free_parameters():
    assert set(peers.sem_parameter_names("demo_twolevel_sem")) == set(LAVAAN_EST)
    assert len(LAVAAN_EST) == LAVAAN["npar"] == 20
    assert len(peers.sem_parameter_names("cfa_twolevel")) == 15
    assert set(peers.sem_parameter_names("cfa_twolevel")) == set(peers.CFA_TRUTH)


def test_demo_loglik_at_lavaan_estimates_is_lavaan_logl():
    """lavaan's logl (fixed.x) is the likelihood conditional on x and w, as ours."""
    stats = as_jax(peers.sem_stats("demo_twolevel_sem", peers.make_data("demo_twolevel_sem")))
    ours = float(peers.twolevel_sem_loglik("demo_twolevel_sem", LAVAAN_EST, stats))
    assert ours == pytest.approx(LAVAAN["logl"], abs=1e-3)


def test_demo_maximum_likelihood_matches_lavaan():
    names = peers.sem_parameter_names("demo_twolevel_sem")
    is_variance = np.array(["~~" in n for n in names])
    stats = as_jax(peers.sem_stats("demo_twolevel_sem", peers.make_data("demo_twolevel_sem")))

    def negative_loglik(theta):
        values = jnp.where(is_variance, jnp.exp(theta), theta)
        return -peers.twolevel_sem_loglik("demo_twolevel_sem", dict(zip(names, values)), stats)

    value_and_grad = jax.jit(jax.value_and_grad(negative_loglik))
    start = np.array([1.0 if "=~" in n else 0.0 for n in names])
    fit = scipy.optimize.minimize(
        lambda t: tuple(np.asarray(v) for v in value_and_grad(t)), start, jac=True, method="BFGS"
    )
    estimates = np.where(is_variance, np.exp(fit.x), fit.x)
    for name, estimate in zip(names, estimates):
        assert estimate == pytest.approx(LAVAAN_EST[name], abs=1e-3), name


def test_make_data_shapes_and_reproducibility():
    first = peers.make_data("random_slope", seed=5)
    again = peers.make_data("random_slope", seed=5)
    assert first["y"].shape == first["x"].shape == first["cluster"].shape == (10_000,)
    np.testing.assert_array_equal(first["y"], again["y"])
    assert not np.array_equal(first["y"], peers.make_data("random_slope", seed=6)["y"])
    assert first["truth"] == peers.RANDOM_SLOPE_TRUTH
    cfa = peers.make_data("cfa_twolevel")
    assert cfa["y"].shape == (2000, 3) and cfa["cluster"].max() == 99
    demo = peers.make_data("demo_twolevel_sem")
    assert demo["y"].shape == demo["x"].shape == (2500, 3)
    assert demo["w"].shape == (200, 2) and "truth" not in demo


def test_tiny_run_returns_documented_keys():
    data = peers.make_data("random_slope", n_clusters=10, cluster_size=5)
    fit = peers.run_nuts("random_slope", data, chains=2, warmup=30, samples=20, seed=1)
    expected = {"compile_seconds", "sampling_seconds", "min_bulk_ess", "min_ess_param"}
    assert expected | {"ess_per_second", "draws", "summary"} <= set(fit)
    assert set(fit["draws"]) == set(peers.RANDOM_SLOPE_TRUTH)
    assert all(d.shape == (2, 20) for d in fit["draws"].values())
    assert fit["min_ess_param"] in fit["draws"]
    assert fit["ess_per_second"] == pytest.approx(fit["min_bulk_ess"] / fit["sampling_seconds"])
    assert list(fit["summary"].index) == list(peers.RANDOM_SLOPE_TRUTH)
    assert np.all(np.abs(fit["draws"]["corr_u"]) <= 1.0)


@pytest.mark.slow
def test_demo_posterior_near_lavaan():
    """Posterior medians within 0.25 posterior SD of lavaan's ML estimates, SDs near its SEs.

    Between-level variances (200 clusters) have right-skewed posteriors whose medians
    lie 0.1-0.3 SD above the ML estimate ("between: y1~~y1", 1.2 SE from 0, the most),
    so they get 0.5 SD.
    """
    fit = peers.run_nuts(
        "demo_twolevel_sem", peers.make_data("demo_twolevel_sem"), chains=2, warmup=500, samples=1000
    )
    for name, draws in fit["draws"].items():
        tolerance = 0.5 if name.startswith("between:") and "~~" in name else 0.25
        gap = abs(np.median(draws) - LAVAAN_EST[name]) / draws.std()
        assert gap < tolerance, (name, gap)
        assert 0.8 < draws.std() / LAVAAN_SE[name] < 1.25, name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["random_slope", "cfa_twolevel"])
def test_posterior_covers_truth(name):
    fit = peers.run_nuts(name, peers.make_data(name), chains=2, warmup=500, samples=500)
    for parameter, truth in peers.make_data(name)["truth"].items():
        draws = fit["draws"][parameter]
        assert abs(np.median(draws) - truth) < 4 * draws.std(), parameter
