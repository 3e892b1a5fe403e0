"""Categorical (probit) outcomes in the Bayes engine: the threshold block's pieces against
exact answers, the two parameterizations of a binary outcome, missing categories, and
the refusals of models that cannot be identified."""
from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from jax.scipy.stats import norm

import jaxsem
from jaxsem.bayes import categorical
from jaxsem.errors import ModelError

jax.config.update("jax_enable_x64", True)


def _ordinal_sample(n: int, thresholds, seed: int):
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 0.7, n)
    codes = (mu[:, None] + rng.normal(size=n)[:, None] > np.asarray(thresholds)).sum(1)
    return jnp.asarray(mu), jnp.asarray(codes, dtype=float)


def test_threshold_terms_are_the_exact_gradient_and_hessian():
    """Analytic gradient and tridiagonal Hessian equal derivatives of the log posterior; the
    padded entry of a column with fewer thresholds stays inert."""
    mu, codes = _ordinal_sample(300, [-0.6, 0.1, 0.9], seed=1)
    codes = codes.at[::17].set(-1.0)                       # some missing categories
    tau = jnp.array([-0.5, 0.2, 1.0, 7.0])                 # last entry is padding
    active = jnp.array([True, True, True, False])
    prior_mean, prior_var = jnp.array([0.3, 0.0, -0.2, 0.0]), jnp.array([4.0, 2.0, 9.0, 1.0])

    def log_post(t):
        return categorical.threshold_terms(t, active, mu, 0.8, codes, prior_mean,
                                           prior_var)[0]

    value, grad, neg_hessian = categorical.threshold_terms(tau, active, mu, 0.8, codes,
                                                           prior_mean, prior_var)
    np.testing.assert_allclose(grad[:3], jax.grad(log_post)(tau)[:3], rtol=1e-10)
    # second autodiff through the infinite cuts gives NaN: central differences of grad
    step = 1e-5
    numeric = np.stack([(jax.grad(log_post)(tau.at[j].add(step))
                         - jax.grad(log_post)(tau.at[j].add(-step)))[:3] / (2 * step)
                        for j in range(3)])
    np.testing.assert_allclose(neg_hessian[:3, :3], -numeric, rtol=1e-6, atol=1e-6)
    assert grad[3] == 0.0 and neg_hessian[3, 3] == 1.0
    assert categorical.threshold_terms(tau.at[1].set(-0.7), active, mu, 0.8, codes,
                                       prior_mean, prior_var)[0] == -jnp.inf


def test_log_interval_is_precise_in_both_tails():
    """log(Phi(b) - Phi(a)) against log_ndtr, the far tails (Mills ratio) included."""
    from jax.scipy.special import log_ndtr
    a = jnp.array([-0.3, 4.0, 9.0, -12.0, -45.0, -31.0, 30.5, -jnp.inf, 2.0])
    b = jnp.array([0.8, 4.5, 40.0, -11.9, -44.0, -29.0, jnp.inf, -35.0, jnp.inf])
    flip = (a + b) > 0
    lo, hi = jnp.where(flip, -b, a), jnp.where(flip, -a, b)
    expected = log_ndtr(hi) + jnp.log(-jnp.expm1(log_ndtr(lo) - log_ndtr(hi)))
    np.testing.assert_allclose(categorical._log_interval(a, b), expected, rtol=1e-8)


@pytest.mark.parametrize("lower, upper", [(-0.3, 0.8), (5.0, 6.0), (-np.inf, -7.0),
                                          (2.5, np.inf), (-np.inf, np.inf)])
def test_truncated_normal_has_the_exact_moments(lower, upper):
    """Mean and variance of 200,000 draws against the closed form, far tails included."""
    mu, s, n = 0.4, 1.3, 200_000
    z = jax.random.normal(jax.random.PRNGKey(0), (n,))
    draws = np.asarray(categorical.truncated_normal(jnp.full(n, mu), s, jnp.full(n, lower),
                                                    jnp.full(n, upper), z))
    a, b = (lower - mu) / s, (upper - mu) / s
    mass = float(norm.cdf(b) - norm.cdf(a))
    pa, pb = float(norm.pdf(a)), float(norm.pdf(b))
    ta = a * pa if np.isfinite(a) else 0.0
    tb = b * pb if np.isfinite(b) else 0.0
    mean = mu + s * (pa - pb) / mass
    var = s ** 2 * (1 + (ta - tb) / mass - ((pa - pb) / mass) ** 2)
    assert np.all((draws >= lower) & (draws <= upper))
    assert abs(draws.mean() - mean) < 4 * np.sqrt(var / n)
    assert abs(draws.var() / var - 1) < 4 * np.sqrt(2 / n)


@pytest.mark.parametrize("thresholds", [[0.2], [-0.4, 0.6]])
def test_threshold_step_samples_the_exact_conditional(thresholds):
    """A chain of threshold moves (fixed latent means) matches the posterior computed on
    a grid: mean within 5 Monte Carlo SEs (autocorrelation accounted), SD within 5%."""
    mu, codes = _ordinal_sample(60, thresholds, seed=2)
    k = len(thresholds)
    active = jnp.ones(k, dtype=bool)
    prior_mean, prior_var = jnp.zeros(k), jnp.full(k, 1e10)

    def move(tau, noise):
        return categorical.threshold_step(tau, active, mu, 1.0, codes, prior_mean,
                                          prior_var, noise[:k], noise[k]), tau

    noise = jax.random.normal(jax.random.PRNGKey(1), (20_000, k + 1))
    _, chain = jax.lax.scan(move, jnp.asarray(thresholds, dtype=float), noise)
    chain = np.asarray(chain)
    grid = np.linspace(-2.5, 2.5, 301)
    points = np.stack(np.meshgrid(*[grid] * k, indexing="ij"), -1).reshape(-1, k)
    log_post = jax.vmap(lambda t: categorical.threshold_terms(
        t, active, mu, 1.0, codes, prior_mean, prior_var)[0])(jnp.asarray(points))
    weights = np.exp(np.asarray(log_post) - np.max(log_post))
    weights /= weights.sum()
    exact_mean = weights @ points
    exact_sd = np.sqrt(weights @ (points - exact_mean) ** 2)
    import arviz as az
    for j in range(k):
        ess = float(az.ess(chain[None, :, j]))
        assert ess > 2000, ess                               # near-independent moves
        assert abs(chain[:, j].mean() - exact_mean[j]) < 5 * exact_sd[j] / np.sqrt(ess)
        assert abs(chain[:, j].std() / exact_sd[j] - 1) < 0.05


REFERENCE = Path(__file__).resolve().parents[1] / "bench/peers/outputs/numpyro_probit.json"


@pytest.mark.parametrize("case, syntax, names", [
    ("probit_regression", "u ~ x1 + x2",
     {"u~x1": "b1", "u~x2": "b2", "u|t1": "tau"}),
    ("ordinal_regression", "u ~ x1",
     {"u~x1": "b1", "u|t1": "tau1", "u|t2": "tau2", "u|t3": "tau3"}),
])
def test_single_level_probit_matches_a_long_nuts_run(case, syntax, names):
    """Exact check: binary and ordinal probit regressions against numpyro NUTS, 4 x 20,000
    draws with Mplus's default priors (bench/peers/numpyro_probit_reference.py): means
    within 4 combined Monte Carlo SEs, SDs within 5%."""
    reference = json.loads(REFERENCE.read_text())[case]
    frame = pd.DataFrame(reference["data"])
    fit = jaxsem.Model(syntax, categorical=["u"]).fit(
        frame, estimator="bayes", fbiterations=8000, chains=4, bseed=3, progress=False)
    rows = [tuple(name.replace("~", " ~ ").replace("|", " | ").split()) for name in names]
    means, sds, mcse = _moments(fit, rows)
    for k, name in enumerate(names.values()):
        peer = reference["parameters"][name]
        assert abs(means[k] - peer["mean"]) < 4 * np.hypot(mcse[k], peer["mcse_mean"]), name
        assert sds[k] == pytest.approx(peer["sd"], rel=0.05), name


def _probit_frame(n: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), (rng.random(n) < 0.5).astype(float)
    u = (0.4 * x1 - 0.7 * x2 + rng.normal(size=n) > -0.2).astype(int)
    return pd.DataFrame(dict(u=u, x1=x1, x2=x2, one=1.0))


def _moments(fit, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior means, SDs and Monte Carlo SEs of the named rows (lhs, op, rhs)."""
    import arviz as az
    table = fit.analysis.partable
    keep = fit.draws[:, fit.draws.shape[1] // 2:]
    index = [next(r.free - 1 for r in table.rows if (r.lhs, r.op, r.rhs) == row)
             for row in rows]
    values = keep[:, :, index]
    mcse = np.array([float(az.mcse(values[:, :, j])) for j in range(len(index))])
    return values.mean((0, 1)), values.std((0, 1)), mcse


def test_alternative_parameterization_gives_the_same_posterior():
    """Mplus's alternative form of a binary outcome (threshold fixed at 0, regression on a
    constant) has the posterior of the threshold form: b_one = -tau."""
    frame = _probit_frame()
    opts = dict(estimator="bayes", fbiterations=4000, chains=2, progress=False)
    thresholds = jaxsem.Model("u ~ x1 + x2", categorical=["u"]).fit(frame, **opts)
    constant = jaxsem.Model("u ~ x1 + x2 + one\nu | 0*t1", categorical=["u"]).fit(
        frame, **opts)
    m1, s1, e1 = _moments(thresholds, [("u", "~", "x1"), ("u", "~", "x2"), ("u", "|", "t1")])
    m2, s2, e2 = _moments(constant, [("u", "~", "x1"), ("u", "~", "x2"), ("u", "~", "one")])
    m2[2] = -m2[2]
    assert np.all(np.abs(m1 - m2) < 4 * np.hypot(e1, e2)), (m1, m2, e1, e2)
    np.testing.assert_allclose(s1, s2, rtol=0.08)


def test_missing_categories_are_imputed_without_changing_the_posterior():
    """Rows whose categorical outcome is missing (completely at random) carry no
    information about the parameters: the posterior equals that of the complete rows."""
    frame = _probit_frame(seed=4)
    missing = frame.copy()
    missing.loc[::5, "u"] = np.nan
    opts = dict(estimator="bayes", fbiterations=4000, chains=2, progress=False)
    model = jaxsem.Model("u ~ x1 + x2", categorical=["u"])
    rows = [("u", "~", "x1"), ("u", "~", "x2"), ("u", "|", "t1")]
    m1, s1, e1 = _moments(model.fit(missing, **opts), rows)
    m2, s2, e2 = _moments(model.fit(missing.dropna(), **opts), rows)
    assert np.all(np.abs(m1 - m2) < 4 * np.hypot(e1, e2)), (m1, m2, e1, e2)
    np.testing.assert_allclose(s1, s2, rtol=0.08)


@pytest.mark.parametrize("syntax, message", [
    ("u ~ x1\nu ~~ u", "residual variance of categorical 'u' is free"),
    ("u ~ x1\nu ~ 1", "free intercept and free thresholds"),
    ("u ~ x1 + x2", "'x2' is CATEGORICAL but only predicts"),
    ("u ~ x1\nu ~ 1\nu | 0*t1\nu ~~ 0*u", r"residual variance fixed at 0 \(u\)"),
])
def test_unidentified_categorical_models_are_refused(syntax, message):
    frame = _probit_frame()
    frame["x2"] = frame["x2"].astype(int)
    model = jaxsem.Model(syntax, categorical=["u", "x2"] if "x2" in syntax else ["u"])
    with pytest.raises(ModelError, match=message):
        model.fit(frame, estimator="bayes", fbiterations=100, progress=False)


def _between_binary(seed: int) -> pd.DataFrame:
    """300 clusters x 10: y = u_j + e (u_j mean 0.3, variance 0.3); a between-only binary
    b = [0.6 w + 0.5 (u_j - 0.3) + e_b > 0.2] (threshold 0.35 on b* = 0.6 w + 0.5 u_j)."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(300), 10)
    w = rng.normal(size=300)
    u = 0.3 + rng.normal(0, np.sqrt(0.3), 300)
    b = (0.6 * w + 0.5 * (u - 0.3) + rng.normal(size=300) > 0.2).astype(int)
    return pd.DataFrame(dict(y=u[cluster] + rng.normal(size=3000), b=b[cluster],
                             w=w[cluster], c=cluster))


def test_between_only_categorical_is_the_single_level_model_of_the_clusters(monkeypatch):
    """A between-only binary regressed on a between covariate is a single-level probit
    of the cluster-level data: the between path (latent responses from the between
    density) gives the draws of the within path (from the within precision) to 1e-6.
    The within path's scale move (which the between path lacks) is switched off."""
    monkeypatch.setattr(categorical, "scale_moves", lambda columns, rows_of: ())
    frame = _between_binary(5)
    opts = dict(fbiterations=1000, chains=2, bseed=4, progress=False)
    between = jaxsem.Model.from_mplus("%BETWEEN%\n b ON w;", between=["b", "w"],
                                      categorical=["b"], clusters=["c"]).fit(frame, **opts)
    single = jaxsem.Model("b ~ w", categorical=["b"]).fit(
        frame.groupby("c").first().reset_index(), estimator="bayes", **opts)
    assert between.schedule.between_categorical and single.schedule.categorical
    np.testing.assert_allclose(between.draws, single.draws, rtol=1e-6, atol=1e-9)


def test_between_only_categorical_outcome_recovers_the_truth():
    """The binary between-only outcome regressed on a between covariate and on the
    between part of a within variable: every parameter within 3 posterior SDs."""
    fit = jaxsem.Model.from_mplus("%WITHIN%\n y;\n %BETWEEN%\n b ON w y;",
                                  between=["b", "w"], categorical=["b"], clusters=["c"]).fit(
        _between_binary(5), fbiterations=2000, chains=2, bseed=1, progress=False)
    truth = {"within: y~~y": 1.0, "between: b~w": 0.6, "between: b~y": 0.5,
             "between: y~~y": 0.3, "between: y~1": 0.3, "between: b|t1": 0.35}
    table = fit.summary()
    assert sorted(fit.names) == sorted(truth)
    for k, name in enumerate(fit.names):
        row = table.loc[table.free == k + 1].iloc[0]
        assert abs(row.estimate - truth[name]) < 3 * row.posterior_sd, name


def test_ml_refuses_categorical_outcomes():
    model = jaxsem.Model("u ~ x1", categorical=["u"])
    with pytest.raises(ModelError, match="categorical .* not supported by the ML"):
        model.fit(_probit_frame(), estimator="ml")


def test_mplus_input_with_a_categorical_outcome_reports_thresholds(tmp_path):
    """An .inp with CATEGORICAL and an unused code (1, 2, 3, 5): the recoding is stated
    in the report, thresholds are reported as Mplus names them, and the estimates agree
    with Stan's posterior means for these data (bench/peers/outputs/stan_ordinal_ri.json)
    within 4 posterior-mean MC SEs of a short run."""
    from jaxsem.run import run_input
    peers = Path(__file__).resolve().parents[1] / "bench/peers"
    frame = pd.read_csv(peers / "data/ordinal_ri.csv")
    frame["u"] = frame["u"].map({0: 1, 1: 2, 2: 3, 3: 5})
    frame[["u", "x", "cluster"]].to_csv(tmp_path / "ord.dat", sep=" ", header=False,
                                        index=False)
    (tmp_path / "ord.inp").write_text(
        "TITLE: ordinal random intercept;\nDATA: FILE = ord.dat;\n"
        "VARIABLE: NAMES = u x clus; CATEGORICAL = u; WITHIN = x; CLUSTER = clus;\n"
        "ANALYSIS: TYPE = TWOLEVEL; ESTIMATOR = BAYES; FBITER = 2000;\n"
        "MODEL: %WITHIN% u ON x; %BETWEEN% u;\n")
    run_input(tmp_path / "ord.inp", progress=False)
    report = (tmp_path / "ord.out").read_text()
    assert "u: 1 -> 0, 2 -> 1, 3 -> 2, 5 -> 3" in report
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {p["lhs"]: p for p in results["parameters"] if p["section"] == "Thresholds"}
    stan = json.loads((peers / "outputs/stan_ordinal_ri.json").read_text())["parameters"]
    assert sorted(rows) == ["U$1", "U$2", "U$3"]
    for k in (1, 2, 3):
        row, peer = rows[f"U${k}"], stan[f"tau{k}"]
        assert row["level"] == "between"
        assert abs(row["estimate"] - peer["median"]) < 4 * peer["sd"] / np.sqrt(row["ess_bulk"])


def test_missing_covariate_brought_into_the_model_is_imputed():
    """x1, missing for 30% of rows, enters the model through its variance (Mplus: name
    it; lavaan syntax: x1 ~~ x1) and is imputed in the sweep. Continuous outcome: the
    posterior medians agree with ML's FIML estimates (same model) within 0.2 posterior
    SD. Probit outcome: the truth lies within 3 posterior SDs."""
    rng = np.random.default_rng(7)
    n = 2000
    x1, x2 = rng.normal(1.0, 1.0, n), rng.normal(size=n)
    latent = 0.5 * x1 - 0.3 * x2 + rng.normal(size=n)
    frame = pd.DataFrame(dict(y=latent, u=(latent > 0.2).astype(int), x1=x1, x2=x2))
    frame.loc[rng.random(n) < 0.3, "x1"] = np.nan
    opts = dict(estimator="bayes", fbiterations=1500, chains=2, bseed=1, progress=False)
    model = jaxsem.Model("y ~ x1 + x2\nx1 ~~ x1")
    bayes, ml = model.fit(frame, **opts), model.fit(frame, estimator="ml")
    assert bayes.layout.has_missing and "x1" in bayes.layout.within_observed
    ours, theirs = bayes.summary(), ml.summary()
    assert np.all(np.abs(ours.estimate - theirs.estimate) < 0.2 * ours.posterior_sd)
    probit = jaxsem.Model("u ~ x1 + x2\nx1 ~~ x1", categorical=["u"]).fit(frame, **opts)
    table = probit.summary().set_index(["lhs", "op", "rhs"])
    for row, truth in {("u", "~", "x1"): 0.5, ("u", "~", "x2"): -0.3,
                       ("u", "|", "t1"): 0.2, ("x1", "~1", ""): 1.0}.items():
        assert abs(table.estimate[row] - truth) < 3 * table.posterior_sd[row], row


def _two_level_binary(seed: int, slope_sd: float):
    """150 clusters x 30: u* = a_j + s_j x + e (a_j var 0.4, s_j mean 0.5), u = [u* > 0.3];
    y2 = 0.6 u* + b_j + e2 (b_j var 0.25)."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(150), 30)
    x = rng.normal(size=len(cluster))
    slope = 0.5 + rng.normal(0, slope_sd, 150)
    latent = (rng.normal(0, np.sqrt(0.4), 150)[cluster] + slope[cluster] * x
              + rng.normal(size=len(cluster)))
    y2 = 0.6 * latent + rng.normal(0, 0.5, 150)[cluster] + rng.normal(size=len(cluster))
    return pd.DataFrame(dict(u=(latent > 0.3).astype(int), x=x, y2=y2, c=cluster))


@pytest.mark.parametrize("syntax, slope_sd, truth", [
    ("%WITHIN%\n s | u ON x;\n %BETWEEN%\n u WITH s;", np.sqrt(0.1),
     {"between: u~~u": 0.4, "between: s~~s": 0.1, "between: s~1": 0.5,
      "between: u~~s": 0.0, "between: u|t1": 0.3}),
    ("%WITHIN%\n u ON x;\n y2 ON u;\n %BETWEEN%\n u y2;", 0.0,
     {"within: u~x": 0.5, "within: y2~u": 0.6, "within: y2~~y2": 1.0,
      "between: u~~u": 0.4, "between: y2~~y2": 0.394, "between: u~~y2": 0.24,
      "between: y2~1": 0.0, "between: u|t1": 0.3}),
], ids=["random_slope", "binary_mediator"])
def test_two_level_binary_outcome_recovers_the_truth(syntax, slope_sd, truth):
    """A binary outcome with a random slope, and a binary mediator (its latent response
    predicts y2): every parameter within 3 posterior SDs of the truth."""
    fit = jaxsem.Model.from_mplus(syntax, within=["x"], categorical=["u"], clusters=["c"]).fit(
        _two_level_binary(11, slope_sd), fbiterations=2000, chains=2, bseed=1, progress=False)
    table = fit.summary()
    assert sorted(fit.names) == sorted(truth)
    for k, name in enumerate(fit.names):
        row = table.loc[table.free == k + 1].iloc[0]
        assert abs(row.estimate - truth[name]) < 3 * row.posterior_sd, name


ORDINAL_CFA = "%WITHIN%\n fw BY u1-u4;\n %BETWEEN%\n fb BY u1-u4;"


def _ordinal_cfa_frame(seed: int = 0, n_clusters: int = 30, size: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_clusters), size)
    fw, fb = rng.normal(size=len(cluster)), rng.normal(0, 0.6, n_clusters)[cluster]
    loadings = np.array([1.0, 0.8, 1.3, 0.9])
    ystar = (fw[:, None] + fb[:, None]) * loadings + rng.normal(size=(len(cluster), 4))
    frame = pd.DataFrame((ystar[:, :, None] > np.array([-0.8, 0.2, 1.0])).sum(2),
                         columns=["u1", "u2", "u3", "u4"])
    return frame.assign(c=cluster)


def test_scale_moves_follow_each_variables_scale():
    """u2's move carries its within and between loadings (power 1), its between variance
    (power 2) and its thresholds; the marker u1 only what is free; a loading that shares
    a label with another variable's stays still."""
    from jaxsem.bayes.gibbs import build_schedule
    from jaxsem.bayes.layout import build_layout

    def moves(text):
        analysis = jaxsem.Model.from_mplus(text, categorical=["u1", "u2", "u3", "u4"],
                                           clusters=["c"]).prepare(_ordinal_cfa_frame())
        layout, _ = build_layout(analysis)
        names = analysis.partable.parameter_names()
        return {layout.within_observed[m.column]: {names[k]: p for k, p in zip(m.free, m.powers)}
                for m in build_schedule(layout).scale_moves}

    found = moves(ORDINAL_CFA)
    assert found["u2"] == {"within: fw=~u2": 1, "between: fb=~u2": 1, "between: u2~~u2": 2,
                           "between: u2|t1": 1, "between: u2|t2": 1, "between: u2|t3": 1}
    assert found["u1"] == {"between: u1~~u1": 2, "between: u1|t1": 1, "between: u1|t2": 1,
                           "between: u1|t3": 1}
    labelled = moves(ORDINAL_CFA.replace("fw BY u1-u4;", "fw BY u1\n u2 (l)\n u3 (l)\n u4;"))
    assert not any("=~u2" in name and name.startswith("within") for name in labelled["u2"])


def test_scale_target_pooled_equals_cluster_by_cluster():
    """Step 4's log target from moments pooled over clusters equals the cluster-by-cluster
    complete-data density at any scales (the pooled form is the sampler's fast path)."""
    from jaxsem.bayes.driver import default_starts
    from jaxsem.bayes.gibbs import _moments, build_schedule, initial_state
    from jaxsem.bayes.layout import build_layout

    analysis = jaxsem.Model.from_mplus(ORDINAL_CFA, categorical=["u1", "u2", "u3", "u4"],
                                       clusters=["c"]).prepare(_ordinal_cfa_frame())
    layout, arrays = build_layout(analysis)
    schedule = build_schedule(layout)
    x = default_starts(layout, arrays) * 1.1
    state = initial_state(layout, schedule, x, arrays)
    arrays = jax.tree_util.tree_map(jnp.asarray, arrays)
    arrays["moments"] = _moments(layout, arrays, state.y)
    between = state.between + 0.1 * jax.random.normal(jax.random.PRNGKey(0),
                                                      state.between.shape)
    targets = [categorical.scale_target(schedule.scale_moves, layout, jnp.asarray(x), between,
                                        state.y, arrays, pooled)[0] for pooled in (True, False)]
    for t in (np.zeros(4), np.full(4, 0.3), np.array([0.5, -0.2, 0.1, -0.7])):
        np.testing.assert_allclose(targets[0](jnp.asarray(t)), targets[1](jnp.asarray(t)),
                                   rtol=1e-10)
