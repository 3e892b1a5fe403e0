"""The Gibbs sampler against exact answers, with tolerances from Monte Carlo error.

False-alarm budget: each comparison allows |z| < 4 with z = (draw statistic - exact) /
(Monte Carlo SE from ArviZ's ESS); about 25 comparisons keep the chance of a false
alarm for a new seed under 2e-3. Seeds are fixed, so the suite is deterministic.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxsem
from jaxsem.bayes import BayesOptions, fit_bayes, potential_scale_reduction
from jaxsem.bayes import density, driver, gibbs, quadratic, randomcoef
from jaxsem.bayes.driver import _check_finite
from jaxsem.bayes.layout import build_layout, size_groups
from jaxsem.errors import ModelError
from jaxsem.kernels import gaussian

Z = 4.0
QUIET = dict(progress=False)


def _mcse_ok(draws: np.ndarray, exact_mean: float, exact_sd: float, ess: float) -> None:
    flat = draws.ravel()
    assert abs(flat.mean() - exact_mean) < Z * exact_sd / np.sqrt(ess)
    # sd of a sample sd ~ sd / sqrt(2 ESS)
    assert abs(flat.std(ddof=1) - exact_sd) < Z * exact_sd / np.sqrt(2 * ess)


def _random_intercept_data(seed, n_clusters=40, sizes=(3, 12), tau2=0.5, sigma2=1.0):
    rng = np.random.default_rng(seed)
    n = rng.integers(*sizes, size=n_clusters)
    cluster = np.repeat(np.arange(n_clusters), n)
    u = rng.normal(0, np.sqrt(tau2), n_clusters)
    x = rng.normal(size=len(cluster))
    y = 1.5 + 0.7 * x + u[cluster] + rng.normal(0, np.sqrt(sigma2), len(cluster))
    return pd.DataFrame({"y": y, "x": x, "c": cluster})


def test_normal_normal_random_intercept_against_closed_form():
    """Known variances (fixed), flat prior on the mean: the posterior of the mean is
    N(sum w_j ybar_j / sum w_j, 1 / sum w_j) with w_j = 1 / (tau2 + sigma2 / n_j)."""
    frame = _random_intercept_data(1)
    model = jaxsem.Model.from_mplus("%WITHIN%\n y@1;\n %BETWEEN%\n y@0.5;", clusters=["c"])
    fit = model.fit(frame, chains=4, fbiterations=4000, bseed=3, **QUIET)
    assert fit.partable.n_free == 1
    grouped = frame.groupby("c")["y"]
    w = 1.0 / (0.5 + 1.0 / grouped.size().to_numpy())
    mean = float((w * grouped.mean().to_numpy()).sum() / w.sum())
    sd = float(np.sqrt(1.0 / w.sum()))
    table = fit.summary().set_index(["block", "lhs", "op"])
    ess = table.loc[("between", "y", "~1"), "ess_bulk"]
    _mcse_ok(fit.kept[:, :, 0], mean, sd, ess)


def test_single_level_regression_against_conjugate_posterior():
    """Flat priors on (beta, sigma2): beta | y ~ t_{n-k-2}(OLS, s2 (X'X)^-1) with
    s2 = SSE / (n-k-2); E[sigma2 | y] = SSE / (n-k-4)."""
    rng = np.random.default_rng(2)
    n = 60
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = 1.0 + 0.5 * x1 - 0.3 * x2 + rng.normal(size=n)
    frame = pd.DataFrame({"y": y, "x1": x1, "x2": x2})
    fit = jaxsem.Model.from_mplus("y ON x1 x2;").fit(frame, chains=4, fbiterations=4000,
                                                     bseed=5, **QUIET)
    design = np.column_stack([np.ones(n), x1, x2])
    beta, sse = np.linalg.lstsq(design, y, rcond=None)[:2]
    k = 3
    nu = n - k - 2
    cov = sse[0] / nu * np.linalg.inv(design.T @ design) * nu / (nu - 2)
    names = fit.names
    table = fit.summary()
    for name, i in (("y~1", 0), ("y~x1", 1), ("y~x2", 2)):
        j = names.index(name)
        ess = table.loc[table.free == j + 1, "ess_bulk"].iloc[0]
        _mcse_ok(fit.kept[:, :, j], beta[i], np.sqrt(cov[i, i]), ess)
    j = names.index("y~~y")
    ess = table.loc[table.free == j + 1, "ess_bulk"].iloc[0]
    sigma_draws = fit.kept[:, :, j].ravel()
    assert abs(sigma_draws.mean() - sse[0] / (n - k - 4)) < Z * sigma_draws.std() / np.sqrt(ess)


def test_missing_outcomes_are_imputed_mar():
    """Known variances: the exact posterior of (mean, slope) uses the observed rows
    only (GLS with the cluster covariance); the sampler imputes the missing ones."""
    frame = _random_intercept_data(4, n_clusters=30)
    rng = np.random.default_rng(9)
    frame.loc[rng.random(len(frame)) < 0.25, "y"] = np.nan
    model = jaxsem.Model.from_mplus("%WITHIN%\n y ON x;\n y@1;\n %BETWEEN%\n y@0.5;",
                                    within=["x"], clusters=["c"])
    fit = model.fit(frame, chains=4, fbiterations=4000, bseed=11, **QUIET)
    precision, linear = np.zeros((2, 2)), np.zeros(2)
    for _, g in frame.dropna().groupby("c"):
        xx = np.column_stack([np.ones(len(g)), g["x"]])
        v_inv = np.linalg.inv(np.eye(len(g)) + 0.5)
        precision += xx.T @ v_inv @ xx
        linear += xx.T @ v_inv @ g["y"].to_numpy()
    mean = np.linalg.solve(precision, linear)
    cov = np.linalg.inv(precision)
    table = fit.summary()
    for name, i in (("between: y~1", 0), ("within: y~x", 1)):
        j = fit.names.index(name)
        ess = table.loc[table.free == j + 1, "ess_bulk"].iloc[0]
        _mcse_ok(fit.kept[:, :, j], mean[i], np.sqrt(cov[i, i]), ess)


def _random_slope_analysis(seed=0, clusters=60, size=20, missing=False):
    model = jaxsem.Model.from_mplus("%WITHIN%\n s | y ON x;\n %BETWEEN%\n y s ON w;\n y WITH s;",
                                    within=["x"], between=["w"], clusters=["c"])
    spec = model.spec
    x = spec.start_values()
    frame = spec.simulate(x, jax.random.PRNGKey(seed), [size] * clusters, cluster_names=["c"])
    if missing:
        frame.loc[np.random.default_rng(seed).random(len(frame)) < 0.2, "y"] = np.nan
    return model.prepare(frame)


@pytest.mark.parametrize("case", ["complete", "missing", "between_outcome"])
def test_fast_between_block_matches_autodiff_form(case):
    """The batched precision/linear terms of the between state equal the ones derived
    by autodiff from the complete-data log density of each cluster (random slopes;
    missing outcomes; a between-only outcome z, whose known values enter the state's
    conditional)."""
    if case == "between_outcome":
        model = jaxsem.Model.from_mplus(
            "%WITHIN%\n y1 y2 ON x;\n %BETWEEN%\n y1 ON w;\n z ON y1 y2;",
            within=["x"], between=["w", "z"], clusters=["c"])
        frame = model.spec.simulate(model.spec.start_values(), jax.random.PRNGKey(2),
                                    [7] * 30, cluster_names=["c"])
        layout, arrays = build_layout(model.prepare(frame))
        assert layout.known and not layout.deterministic
    else:
        layout, arrays = build_layout(_random_slope_analysis(missing=case == "missing"))
    spec = layout.spec
    x = spec.start_values() + 0.1
    prep = density.prepare(layout, spec.unpack(x))
    prec, lin = quadratic.between_state_quadratic(layout, prep, arrays)
    for j in (0, 7):
        def f(s, j=j):
            return density.cluster_logdensity(layout, prep, s, arrays["known"][j],
                                              arrays["w"][j], arrays["moments"][j],
                                              arrays["n"][j])
        p_ref, h_ref = gaussian.quadratic_coefficients(f, np.zeros(len(layout.stochastic)))
        np.testing.assert_allclose(prec[j], p_ref, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(lin[j], h_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", ["random_slope", "paths_and_labels", "within_coefficients"])
def test_between_regression_block_matches_jacobian_form(case):
    """The coefficient block of between-level regressions from U'U and U' zeta Psi^-1
    (intercepts, slopes on between covariates and on other between variables, a label
    shared by two equations) equals the Jacobian form of the whitened residuals; a
    block with within-level coefficients keeps the Jacobian form."""
    if case == "random_slope":
        analysis = _random_slope_analysis()
    else:
        text = ("%WITHIN%\n y1 WITH y2;\n %BETWEEN%\n y1 ON w (a);\n y2 ON y1;\n y2 ON w (a);"
                if case == "paths_and_labels"
                else "%WITHIN%\n y1 y2 ON x;\n %BETWEEN%\n y1 y2 ON w;")
        model = jaxsem.Model.from_mplus(text, within=["x"], between=["w"], clusters=["c"])
        frame = model.spec.simulate(model.spec.start_values(), jax.random.PRNGKey(3),
                                    [6] * 25, cluster_names=["c"])
        analysis = model.prepare(frame)
    layout, arrays = driver.sampler_layout(analysis)
    schedule = gibbs.build_schedule(layout)
    spec, idx = layout.spec, np.asarray(schedule.coefficients)
    levels = frozenset(r.level for r in spec.partable.rows
                       if r.free and r.free - 1 in schedule.coefficients)
    priors = ((int(idx[0]), 0.3, 2.0),)  # one informative normal prior
    plan = quadratic.between_regression(layout, schedule.coefficients, levels, priors)
    if case == "within_coefficients":
        assert levels == {1, 2} and plan is None
        return
    assert plan is not None and len(plan.coefficient) == len(idx) + (case != "random_slope")
    rng = np.random.default_rng(4)
    x = jnp.asarray(spec.start_values() + rng.uniform(0.1, 0.3, spec.n_free))
    state = rng.normal(size=(layout.n_clusters, len(layout.stochastic)))
    prep = density.prepare(layout, spec.unpack(x))
    zb = density.assemble_all(layout, prep, state, arrays)
    precision, linear = quadratic.between_regression_quadratic(plan, layout, prep, zb,
                                                               arrays, x[idx])
    p_ref, h_ref = quadratic.coefficient_quadratic(layout, spec, x, state, arrays,
                                                   arrays["factors"], priors, levels, idx)
    np.testing.assert_allclose(precision, p_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(linear, h_ref, rtol=1e-10, atol=1e-10)


RANDOM_COEFFICIENT_MODELS = {
    # between covariate, full covariance block of the random effects with IW priors
    "covariate_iw": ("%WITHIN%\n s | y ON x;\n %BETWEEN%\n y s ON w;\n y (t1);\n s (t2);\n"
                     " y WITH s (t3);", "t1 ~ IW(1, 5);\n t2 ~ IW(0.5, 5);\n t3 ~ IW(0.2, 5);",
                     ["x"], ["w"]),
    # zero covariance: two inverse-gamma blocks; no between covariate; a fixed within
    # intercept
    "diagonal": ("%WITHIN%\n s | y ON x;\n [y@0.5];\n %BETWEEN%\n y WITH s@0;", None,
                 ["x"], []),
    # three random coefficients, a fixed within slope, a label shared by two equations,
    # a normal prior on a coefficient and an IG prior on the within variance
    "labels_priors": ("%WITHIN%\n s1 | y ON x1;\n s2 | y ON x2;\n y ON x3@0.5;\n y (v);\n"
                      " %BETWEEN%\n y ON w (b1);\n s1 ON w (b2);\n s2 ON w (b2);",
                      "b1 ~ N(0.2, 0.5);\n v ~ IG(1, 1);", ["x1", "x2", "x3"], ["w"]),
}


@pytest.mark.parametrize("case", sorted(RANDOM_COEFFICIENT_MODELS))
def test_random_coefficient_blocks_match_the_generic_blocks(case, monkeypatch):
    """The random-coefficient sweep (bayes.randomcoef: per-cluster arithmetic, one Gram
    matrix) gives the generic blocks' draws for the same noise, sweep after sweep, from
    a state away from the posterior."""
    text, priors, within, between = RANDOM_COEFFICIENT_MODELS[case]
    model = jaxsem.Model.from_mplus(text, within=within, between=between, clusters=["c"],
                                    priors=priors)
    spec = model.spec
    frame = spec.simulate(spec.start_values(), jax.random.PRNGKey(5), [4, 9, 13] * 12,
                          cluster_names=["c"])
    layout, arrays = driver.sampler_layout(model.prepare(frame))
    arrays = jax.tree_util.tree_map(jnp.asarray, driver._sweep_inputs(layout, arrays))
    schedule = gibbs.build_schedule(layout)
    fast = gibbs.make_sweep(layout, schedule, 0)
    monkeypatch.setattr(randomcoef, "plan", lambda *args: None)
    generic = gibbs.make_sweep(layout, schedule, 0)
    monkeypatch.undo()
    assert randomcoef.plan(layout, schedule, quadratic.between_regression(
        layout, schedule.coefficients, frozenset({2}), ())) is not None
    rng = np.random.default_rng(6)
    x0 = driver.default_starts(layout, arrays) + rng.uniform(0.05, 0.2, spec.n_free)
    state = gibbs.initial_state(layout, schedule, x0, arrays)
    state = state._replace(between=state.between + rng.normal(size=state.between.shape))
    noise = gibbs.chunk_noise(layout, schedule, jax.random.PRNGKey(7), 3, arrays)
    ours, theirs = state, state
    for sweep in range(3):
        noise_now = jax.tree_util.tree_map(lambda a: a[sweep], noise)
        ours = jax.jit(fast)(jax.random.PRNGKey(0), ours, arrays, noise_now, sweep)[0]
        theirs = generic(jax.random.PRNGKey(0), theirs, arrays, noise_now, sweep)[0]
        np.testing.assert_allclose(ours.between, theirs.between, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("text, within, between", [
    ("%WITHIN%\n s | y1 ON x;\n y2 ON x;\n %BETWEEN%\n y1 y2 s ON w;", ["x"], ["w"]),
    ("%WITHIN%\n s | y ON x;\n %BETWEEN%\n s ON y;", ["x"], []),
    ("%WITHIN%\n y ON x;\n %BETWEEN%\n y ON w;\n w ON v;", ["x"], ["w", "v"]),
])
def test_random_coefficient_sweep_only_for_its_model_class(text, within, between):
    """Two outcomes, a path among random coefficients, a between-level outcome: the
    generic blocks serve."""
    model = jaxsem.Model.from_mplus(text, within=within, between=between, clusters=["c"])
    frame = model.spec.simulate(model.spec.start_values(), jax.random.PRNGKey(1), [5] * 20,
                                cluster_names=["c"])
    layout, _ = driver.sampler_layout(model.prepare(frame))
    schedule = gibbs.build_schedule(layout)
    assert randomcoef.plan(layout, schedule, quadratic.between_regression(
        layout, schedule.coefficients, frozenset({2}), ())) is None


def test_pooled_within_likelihood_matches_per_cluster_sum():
    analysis = _random_slope_analysis()
    layout, arrays = build_layout(analysis)
    spec = layout.spec
    prep = density.prepare(layout, spec.unpack(spec.start_values() + 0.2))
    zb = np.random.default_rng(0).normal(size=(layout.n_clusters, layout.nb))
    per_cluster = sum(float(density.within_cluster_loglik(layout, prep, zb[j],
                                                          arrays["moments"][j], arrays["n"][j]))
                      for j in range(layout.n_clusters))
    pooled = density.pooled_within_moments(layout, zb, arrays)
    total = density.within_pooled_loglik(layout, prep, pooled, arrays["n"].sum())
    np.testing.assert_allclose(float(total), per_cluster, rtol=1e-10)


def test_random_slope_recovery_and_schedule():
    analysis = _random_slope_analysis(seed=1, clusters=150, size=30)
    fit = fit_bayes(analysis, BayesOptions(chains=2, fbiterations=1000, bseed=1, **QUIET))
    blocks = " | ".join(fit.schedule.describe(fit.names))
    assert "NUTS" not in blocks and "inverse Wishart" in blocks
    truth = dict(zip(fit.names, analysis.spec.start_values()))
    table = fit.summary()
    for row in table[table.free > 0].itertuples():
        name = fit.names[row.free - 1]
        # truth within 4 posterior SDs (sampling error) plus Monte Carlo error
        assert abs(row.estimate - truth[name]) < 4 * row.posterior_sd * (1 + 1 / np.sqrt(row.ess_bulk))


def test_no_recompilation_for_a_second_data_set_of_the_same_shape():
    first = fit_bayes(_random_slope_analysis(seed=2), BayesOptions(fbiterations=200, **QUIET))
    second = fit_bayes(_random_slope_analysis(seed=3), BayesOptions(fbiterations=200, **QUIET))
    assert first.compile_seconds > 0.5
    assert second.compile_seconds < 0.05
    assert not np.allclose(first.kept, second.kept)


def test_kept_programs_load_without_tracing_and_give_the_same_draws(tmp_path, monkeypatch):
    """bayes.programs: a program kept on disk is loaded in a later session (here: with
    the in-memory cache cleared and tracing made impossible) and gives the same draws;
    a damaged file is compiled afresh and rewritten; another structure, another file."""
    from jaxsem.bayes import programs
    monkeypatch.setattr(programs, "_folder", tmp_path)
    analysis = _random_slope_analysis(seed=6, clusters=20, size=5)
    options = BayesOptions(fbiterations=200, bseed=2, **QUIET)
    driver._compiled_chunk.cache_clear()
    first = fit_bayes(analysis, options)
    kept = list(tmp_path.iterdir())
    assert len(kept) == 1

    def no_tracing(*args):
        raise AssertionError("the program was traced again")
    with monkeypatch.context() as patched:
        patched.setattr(gibbs, "make_sweep", no_tracing)
        driver._compiled_chunk.cache_clear()
        second = fit_bayes(analysis, options)
    np.testing.assert_array_equal(second.kept, first.kept)
    kept[0].write_bytes(b"damaged")
    driver._compiled_chunk.cache_clear()
    third = fit_bayes(analysis, options)
    np.testing.assert_array_equal(third.kept, first.kept)
    assert kept[0].read_bytes() != b"damaged"
    fit_bayes(_random_slope_analysis(seed=6, clusters=21, size=5), options)
    assert len(list(tmp_path.iterdir())) == 2
    driver._compiled_chunk.cache_clear()


def test_draws_do_not_depend_on_how_chains_are_grouped_on_threads():
    """PROCESSORS splits the chains into groups run at once on threads; each chain's
    random numbers come from its index, so 1, 2 or 4 groups give the same draws."""
    analysis = _random_slope_analysis(seed=5)
    fits = [fit_bayes(analysis, BayesOptions(chains=4, fbiterations=200, processors=k,
                                             **QUIET)) for k in (1, 2, 4)]
    for fit in fits[1:]:
        np.testing.assert_allclose(fit.draws, fits[0].draws, rtol=0, atol=1e-10)
        assert fit.final_states.x.shape == fits[0].final_states.x.shape
    assert [len(g) for g in driver.chain_groups(BayesOptions(chains=6, processors=4))] == [2] * 3
    with pytest.raises(ModelError, match="PROCESSORS must be at least 1"):
        BayesOptions(processors=0)


def test_cpu_compiler_options_leave_the_draws_as_they_are(monkeypatch):
    """The sampler's CPU programs are compiled with their own XLA options (older loop
    emitters, no YNN library, memory-optimised schedule): faster to compile and run,
    the same draws as XLA's defaults."""
    # the suite runs on a CPU; the loop emitters only without per-observation draws
    assert driver.compiler_options() == {**driver.CPU_COMPILER_OPTIONS, **driver.LOOP_EMITTERS}
    assert driver.compiler_options(per_observation=True) == driver.CPU_COMPILER_OPTIONS
    analysis = _random_slope_analysis(seed=6)
    options = BayesOptions(chains=2, fbiterations=200, **QUIET)
    tuned = fit_bayes(analysis, options)
    monkeypatch.setattr(driver, "compiler_options", lambda per_observation=False: None)
    driver._compiled_chunk.cache_clear()
    default = fit_bayes(analysis, options)
    driver._compiled_chunk.cache_clear()
    assert default.compile_seconds > 0.5  # compiled afresh, not from the cache
    np.testing.assert_allclose(tuned.draws, default.draws, rtol=0, atol=1e-10)


def test_compiler_options_this_xla_does_not_know_are_left_out(monkeypatch):
    monkeypatch.setattr(driver, "compiler_options", lambda per_observation=False: {
        "xla_cpu_no_such_option": True, "xla_cpu_scheduler_type": 1})
    program = driver.compile_with_options(jax.jit(lambda a: a * 2.0).lower(1.0))
    assert float(program(3.0)) == 6.0
    monkeypatch.setattr(driver, "compiler_options",
                        lambda per_observation=False: {"xla_cpu_scheduler_type": "x"})
    with pytest.raises(jax.errors.JaxRuntimeError):  # a known option, a bad value
        driver.compile_with_options(jax.jit(lambda a: a * 2.0).lower(1.0))


@pytest.mark.parametrize("kind", ["sem", "ordinal", "regression_with_missing"])
def test_sampler_programs_call_no_lapack_so_their_chain_groups_run_concurrently(kind):
    """jaxlib 0.10's batched LAPACK kernels can deadlock when run at once from two
    threads: the driver runs groups concurrently only for programs without them. The
    two-level SEM's program (factor blocks, covariates at both levels), an ordinal CFA's
    (latent responses, threshold steps) and a regression's with missing outcomes
    (imputation, square roots of singular cluster moments) have none."""
    if kind == "sem":
        model = jaxsem.Model.from_mplus(
            "%WITHIN%\n fw BY y1-y3;\n fw ON x1-x3;\n %BETWEEN%\n fb BY y1-y3;\n fb ON w;",
            within=["x1", "x2", "x3"], between=["w"], clusters=["c"])
        frame = model.spec.simulate(model.spec.start_values(), jax.random.PRNGKey(9),
                                    [10] * 30, cluster_names=["c"])
    elif kind == "ordinal":
        continuous = jaxsem.Model.from_mplus("%WITHIN%\n fw BY u1-u3;\n %BETWEEN%\n fb BY u1-u3;",
                                             clusters=["c"])
        frame = continuous.spec.simulate(continuous.spec.start_values(),
                                         jax.random.PRNGKey(9), [5] * 30, cluster_names=["c"])
        for name in ("u1", "u2", "u3"):
            frame[name] = np.digitize(frame[name], [-0.5, 0.5]).astype(float)
        model = jaxsem.Model.from_mplus("%WITHIN%\n fw BY u1-u3;\n %BETWEEN%\n fb BY u1-u3;",
                                        categorical=["u1", "u2", "u3"], clusters=["c"])
    else:
        model = jaxsem.Model.from_mplus("%WITHIN%\n y1 y2 ON x;\n %BETWEEN%\n y1 y2 ON w;",
                                        within=["x"], between=["w"], clusters=["c"])
        frame = model.spec.simulate(model.spec.start_values(), jax.random.PRNGKey(9),
                                    [2] * 30, cluster_names=["c"])
        frame.loc[::5, "y2"] = np.nan
    layout, arrays = driver.sampler_layout(model.prepare(frame))
    assert kind == "sem" or layout.augmented
    program = driver._program(layout, gibbs.build_schedule(layout), BayesOptions(chains=2),
                              driver._sweep_inputs(layout, arrays), 10)
    assert program.concurrent


def test_iterations_thin_and_burn_in_follow_mplus():
    analysis = _random_slope_analysis(seed=4)
    fit = fit_bayes(analysis, BayesOptions(chains=3, fbiterations=300, thin=2, chunk=100,
                                           **QUIET))
    assert fit.draws.shape == (3, 300, analysis.partable.n_free)
    assert fit.kept.shape[1] == 150
    stopped = fit_bayes(analysis, BayesOptions(biterations=(5000, 200), **QUIET))
    assert stopped.converged and 200 <= stopped.draws.shape[1] < 5000


def test_psr_matches_mplus_formula():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(2, 500, 3))
    draws[1, :, 2] += 1.0
    psr = potential_scale_reduction(draws)
    within = draws.var(axis=1).mean(0)
    between = draws.mean(axis=1).var(axis=0, ddof=1)
    np.testing.assert_allclose(psr, np.sqrt((within + between) / within))
    assert psr[2] > 1.1 > psr[0]


def test_divergence_names_the_parameter_and_iteration():
    draws = np.zeros((2, 10, 3))
    draws[1, 4, 2] = np.nan
    with pytest.raises(ModelError, match=r"chain 2 diverged at iteration 105: 'c'"):
        _check_finite(draws, ["a", "b", "c"], 100, 1)


def test_interrupt_keeps_finished_draws(interrupt_second_chunk):
    fit = fit_bayes(_random_slope_analysis(seed=5), BayesOptions(fbiterations=400, **QUIET))
    assert fit.interrupted and not fit.converged and fit.draws.shape[1] == 100


def test_report_arviz_and_defined_parameters():
    frame = _random_intercept_data(6)
    model = jaxsem.Model.from_mplus("%WITHIN%\n y ON x (b);\n %BETWEEN%\n [y] (m);",
                                    within=["x"], clusters=["c"],
                                    constraints="NEW(ratio); ratio = b / m;")
    fit = model.fit(frame, fbiterations=400, **QUIET)
    report = fit.report()
    for text in ("MODEL RESULTS", "Within Level", "Between Level", " Y ON", " Means",
                 "Residual Variances", " Variances", "New/Additional Parameters", "RATIO",
                 "TECHNICAL 8", "Gibbs blocks", "PRIORS", "N(0, 1e+10)", "IG(-1, 0)"):
        assert text in report
    new = fit.summary().set_index("lhs").loc["ratio"]
    b = fit.kept[:, :, fit.names.index("within: y~x")]
    m = fit.kept[:, :, fit.names.index("between: y~1")]
    assert new.estimate == pytest.approx(np.median(b / m))
    idata = fit.to_arviz()
    assert "within: y~x" in idata.posterior and "ratio" in idata.posterior


def test_unsupported_models_are_refused_before_sampling():
    frame = pd.DataFrame({"y": np.arange(20.0) % 3, "w": np.repeat([0.5, 1.0, np.nan, 2.0], 5),
                          "c": np.repeat(range(4), 5)})
    model = jaxsem.Model.from_mplus("%BETWEEN%\n y ON w;", between=["w"], clusters=["c"])
    with pytest.raises(ModelError, match="between-level covariate.*not supported by the Bayes"):
        model.fit(frame, **QUIET)
    with pytest.raises(ModelError, match="unknown option"):
        jaxsem.Model.from_mplus("y ON w;").fit(frame, chainz=2)


def test_more_random_effects_than_clusters_is_refused():
    frame = _random_intercept_data(7, n_clusters=2)
    model = jaxsem.Model.from_mplus("%WITHIN%\n s | y ON x;", within=["x"], clusters=["c"])
    with pytest.raises(ModelError, match="2 random effects per cluster.*only 2 clusters"):
        model.fit(frame, **QUIET)


def test_zero_between_variances_and_between_outcomes_recover_the_truth():
    """Deterministic between parts (y1-y3@0, UG ex9.6) and a between-only outcome."""
    model = jaxsem.Model.from_mplus(
        "%WITHIN%\n fw BY y1-y3;\n %BETWEEN%\n fb BY y1-y3;\n y1-y3@0;\n fb ON w;\n z ON fb;",
        between=["w", "z"], clusters=["c"])
    spec = model.spec
    x = spec.start_values()
    names = spec.partable.parameter_names()
    x[names.index("between: fb~~fb")] = 0.5
    x[names.index("between: z~fb")] = 0.8
    frame = spec.simulate(x, jax.random.PRNGKey(8), [15] * 120, cluster_names=["c"])
    fit = model.fit(frame, chains=2, fbiterations=2000, bseed=8, **QUIET)
    layout = fit.layout
    assert layout.deterministic and layout.known and not layout.collapsed
    for row in fit.summary().query("free > 0").itertuples():
        truth = x[row.free - 1]
        assert abs(row.estimate - truth) < 4 * row.posterior_sd, fit.names[row.free - 1]
    assert fit.converged


def test_bayes_options_are_checked():
    for options, message in (({"chains": 0}, "CHAINS"), ({"thin": 0}, "THIN"),
                             ({"point": "max"}, "POINT"),
                             ({"biterations": (100, 500)}, "BITERATIONS"),
                             ({"fbiterations": 1}, "FBITERATIONS")):
        with pytest.raises(ModelError, match=message):
            BayesOptions(**options)


def test_point_mode_and_mean():
    frame = _random_intercept_data(10)
    model = jaxsem.Model.from_mplus("%WITHIN%\n y ON x;", within=["x"], clusters=["c"])
    fits = {point: model.fit(frame, fbiterations=600, point=point, bseed=1, **QUIET)
            for point in ("median", "mean", "mode")}
    draws = fits["mean"].kept[:, :, fits["mean"].names.index("within: y~x")].ravel()
    row = {p: f.summary().query("lhs == 'y' and op == '~'").iloc[0] for p, f in fits.items()}
    assert row["mean"].estimate == pytest.approx(draws.mean())
    assert row["median"].estimate == pytest.approx(np.median(draws))
    assert abs(row["mode"].estimate - np.median(draws)) < 0.5 * row["median"].posterior_sd


def test_latent_summaries_match_per_unit_draws():
    """factor.draw_summaries (sums over units without per-unit draws) has the
    distribution of the sums of per-unit draws f_i ~ N(A u_i, Q^-1): means and SDs of
    every entry of sum f f' and sum u f' over 20000 replications each, |z| < 4 (the SE
    of an SD is taken as 1.5 sd / sqrt(2 n): the sums are somewhat heavy-tailed)."""
    from jaxsem.bayes import factor
    rng = np.random.default_rng(0)
    n, m, nf = 12, 4, 2
    u = np.column_stack([rng.normal(size=(n, 2)), np.ones(n), rng.normal(size=n)])
    a = rng.normal(size=(nf, m)) * 0.5
    chol_q = np.linalg.cholesky(np.array([[2.0, 0.6], [0.6, 1.5]]))
    inv_lt = np.linalg.inv(chol_q.T)
    moments = u.T @ u
    reps = 20000
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    normals = jax.random.normal(k1, (reps, m * nf + nf * nf))
    chi2 = 2.0 * jax.random.gamma(k2, (n - m - np.arange(nf)) / 2.0, (reps, nf))

    def flat(s_ff, s_uf):
        return np.concatenate([np.asarray(s_ff).reshape(reps, -1),
                               np.asarray(s_uf).reshape(reps, -1)], axis=1)

    t = jax.vmap(lambda z, c: factor.draw_summaries(factor._Cursor(z), c, a, chol_q,
                                                    moments, np.linalg.cholesky(moments))
                 )(normals, chi2)
    fast = flat(t[:, :nf, :nf], t[:, nf:, :nf])
    f = u @ a.T + np.asarray(jax.random.normal(k3, (reps, n, nf))) @ inv_lt.T
    slow = flat(np.einsum("rna,rnb->rab", f, f), np.einsum("na,rnb->rab", u, f))
    sd = np.sqrt((fast.var(0) + slow.var(0)) / 2)
    assert np.all(np.abs(fast.mean(0) - slow.mean(0)) < Z * sd * np.sqrt(2.0 / reps))
    assert np.all(np.abs(fast.std(0) - slow.std(0)) < Z * 1.5 * sd / np.sqrt(reps))


@pytest.mark.parametrize("small, grouped", [(True, False), (False, False), (True, True),
                                            (False, True)])
def test_between_marginal_loglik_matches_the_normal_density(small, grouped, monkeypatch):
    """factor.between_marginal_loglik (per-cluster LDL' on entry vectors up to SMALL
    variables, one eigen decomposition above) and its form over clusters grouped by
    size (7 sizes, padded to 8 groups) against scipy's multivariate normal density of
    z_hat_j ~ N(mu_j, Sigma_B + C / n_j), unbalanced clusters, a between covariate:
    equal up to a constant (differences between two parameter points)."""
    from scipy import stats

    from jaxsem.bayes import factor
    from jaxsem.kernels import linalg
    if not small:
        monkeypatch.setattr(linalg, "SMALL", 0)
    rng = np.random.default_rng(4)
    sizes = rng.integers(2, 9, 40)
    cluster = np.repeat(np.arange(40), sizes)
    frame = pd.DataFrame(rng.normal(size=(cluster.size, 3)), columns=["y1", "y2", "y3"])
    frame["c"] = cluster
    frame["w"] = rng.normal(size=40)[cluster]
    model = jaxsem.Model.from_mplus("%WITHIN%\n fw BY y1-y3;\n %BETWEEN%\n fb BY y1-y3;\n"
                                    " fb ON w;", between=["w"], clusters=["c"])
    layout, arrays = driver.sampler_layout(model.prepare(frame))
    level = next(lv for lv in gibbs.build_schedule(layout).factor_levels if lv.block == 1)
    n, w = np.asarray(arrays["n"], float), np.asarray(arrays["w"])
    chol_c = np.linalg.cholesky(np.array([[1.0, 0.3, 0.1], [0.3, 0.8, 0.2], [0.1, 0.2, 1.2]]))
    z_hat = rng.normal(size=(40, 3))

    groups = size_groups(n)
    assert groups["group_clusters"].sum() == 40 and len(groups["group_size"]) == 8
    assert size_groups(np.arange(1.0, 11.0)) == {}      # 10 sizes in 10 clusters: no groups
    v = np.column_stack([z_hat, np.ones(40), w])
    grouped_moments = np.einsum("jg,ja,jb->gab", groups["group_member"], v, v)

    def both(x):
        mats = layout.spec.unpack(jnp.asarray(x))
        ours = factor.between_marginal_loglik(level, mats, jnp.asarray(chol_c),
                                              jnp.asarray(z_hat), jnp.asarray(n),
                                              jnp.asarray(w))
        if grouped:
            ours = factor.grouped_between_marginal_loglik(
                level, mats, jnp.asarray(chol_c), jnp.asarray(grouped_moments),
                jnp.asarray(groups["group_size"]), jnp.asarray(groups["group_clusters"]))
        sigma, r = (np.asarray(a) for a in factor._marginal_moments(level, mats))
        mean = -np.column_stack([np.ones(40), w]) @ r[:, 3:].T
        exact = sum(stats.multivariate_normal(mean[j], sigma + chol_c @ chol_c.T / n[j])
                    .logpdf(z_hat[j]) for j in range(40))
        return float(ours), exact
    x1 = np.asarray(driver.default_starts(layout, arrays))
    x2 = x1 + rng.uniform(0.05, 0.3, x1.shape)
    (a1, e1), (a2, e2) = both(x1), both(x2)
    assert a2 - a1 == pytest.approx(e2 - e1, abs=1e-8)


@pytest.mark.parametrize("small", [True, False])
def test_within_marginal_loglik_matches_the_normal_density(small, monkeypatch):
    """factor.marginal_loglik (entry by entry up to SMALL indicators, matrix form above)
    from the moments of u = [y, 1, x] against scipy's normal density of
    y_i ~ N(alpha + Gamma x_i + Lambda (alpha_f + gamma_f x_i), Lambda phi Lambda' + Theta),
    equal up to a constant (differences between two parameter points)."""
    from scipy import stats

    from jaxsem.bayes import factor
    from jaxsem.kernels import linalg
    if not small:
        monkeypatch.setattr(linalg, "SMALL", 0)
    rng = np.random.default_rng(8)
    cluster = np.repeat(np.arange(30), 5)
    frame = pd.DataFrame(rng.normal(size=(cluster.size, 4)), columns=["y1", "y2", "y3", "x"])
    frame["c"] = cluster
    model = jaxsem.Model.from_mplus("%WITHIN%\n fw BY y1-y3;\n fw ON x;\n y3 ON x;\n"
                                    " %BETWEEN%\n fb BY y1-y3;", within=["x"], clusters=["c"])
    layout, arrays = driver.sampler_layout(model.prepare(frame))
    level = next(lv for lv in gibbs.build_schedule(layout).factor_levels if lv.block == 0)
    y, x = frame[["y1", "y2", "y3"]].to_numpy(), frame[["x"]].to_numpy()
    u = np.column_stack([y, np.ones(len(y)), x])

    def both(values):
        within = layout.spec.unpack(jnp.asarray(values))[0]
        ours = factor.marginal_loglik(level, layout.spec.unpack(jnp.asarray(values)),
                                      jnp.asarray(u.T @ u), float(len(y)))
        beta, psi, alpha, gamma = (np.asarray(within[k]) for k in ("beta", "psi", "alpha",
                                                                   "gamma"))
        obs, lat = np.asarray(level.observed), np.asarray(level.latent)
        lam = beta[np.ix_(obs, lat)]
        sigma = lam @ psi[np.ix_(lat, lat)] @ lam.T + np.diag(np.diag(psi)[obs])
        mean = (alpha[obs] + x @ gamma[obs].T
                + (alpha[lat] + x @ gamma[lat].T) @ lam.T)
        exact = sum(stats.multivariate_normal(mean[i], sigma).logpdf(y[i])
                    for i in range(len(y)))
        return float(ours), exact
    x1 = np.asarray(driver.default_starts(layout, arrays))
    x2 = x1 + rng.uniform(0.05, 0.3, x1.shape)
    (a1, e1), (a2, e2) = both(x1), both(x2)
    assert a2 - a1 == pytest.approx(e2 - e1, abs=1e-8)


@pytest.mark.parametrize("case", ["between_outcome", "deterministic", "factor"])
def test_between_state_grouped_by_size_matches_per_cluster(case):
    """Without random slopes, the between state drawn with one Cholesky factor per
    cluster size equals the per-cluster draw for the same noise (unbalanced clusters of
    three sizes; known between values; a between part with zero variance; a between
    factor)."""
    text, roles = {
        "between_outcome": ("%WITHIN%\n y1 y2 ON x;\n %BETWEEN%\n y1 ON w;\n z ON y1 y2;",
                            dict(within=["x"], between=["w", "z"])),
        "deterministic": ("%WITHIN%\n y1 y2 ON x;\n %BETWEEN%\n y1 y2 ON w;\n y2@0;",
                          dict(within=["x"], between=["w"])),
        "factor": ("%WITHIN%\n fw BY y1 y2 y3;\n %BETWEEN%\n fb BY y1 y2 y3;\n fb ON w;",
                   dict(between=["w"])),
    }[case]
    model = jaxsem.Model.from_mplus(text, clusters=["c"], **roles)
    sizes = np.random.default_rng(1).choice([3, 5, 8], 40)
    frame = model.spec.simulate(model.spec.start_values(), jax.random.PRNGKey(3), list(sizes),
                                cluster_names=["c"])
    layout, arrays = build_layout(model.prepare(frame))
    assert len(arrays["group_size"]) == 4 and not layout.random_slopes
    assert {"between_outcome": bool(layout.known), "deterministic": bool(layout.deterministic),
            "factor": bool(layout.collapsed)}[case]
    prep = density.prepare(layout, layout.spec.unpack(layout.spec.start_values() + 0.1))
    noise = jax.random.normal(jax.random.PRNGKey(4), (40, len(layout.stochastic)))
    per_cluster = {k: v for k, v in arrays.items() if k != "group_member"}
    np.testing.assert_allclose(quadratic.draw_between_state(noise, layout, prep, arrays),
                               quadratic.draw_between_state(noise, layout, prep, per_cluster),
                               rtol=1e-10, atol=1e-10)
