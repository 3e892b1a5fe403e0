"""Three-level (bayes.threelevel) and cross-classified (bayes.crossed) models: exact
posteriors, refusals, compilation, ML against lme4 and the stacked normal density.

The Geweke tests of their sweeps are in test_geweke.py.
"""
import json
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import jaxsem
from jaxsem.errors import ModelError

KNOWN_VARIANCES = """
%WITHIN%
y ON x;
y@1;
%BETWEEN level2%
y@0.5;
%BETWEEN level3%
y ON z;
y@0.3;
"""
ROLES = dict(within=["x"], between_levels={"z": 3}, clusters=("level3", "level2"))


def assert_gls_posterior(fit, names, design, v_inv, y) -> None:
    """The draws of the parameters ``names`` (in the columns' order of ``design``) match
    N(GLS, (X' V^-1 X)^-1), the exact posterior under Mplus's N(0, 10^10) priors when
    the variances are known: means within 4 MC SEs (ArviZ ESS), SDs within 4 SEs of the
    SD (1 / sqrt(2 ESS)), correlations within 0.05."""
    cov = np.linalg.inv(design.T @ v_inv @ design)
    mean = cov @ design.T @ v_inv @ y
    draws = fit.kept[:, :, [fit.names.index(n) for n in names]]
    ess = az.ess(az.convert_to_dataset({"x": draws}))["x"].values
    sd = np.sqrt(np.diag(cov))
    for k, name in enumerate(names):
        flat = draws[:, :, k].ravel()
        mc_se = sd[k] / np.sqrt(ess[k])
        assert abs(flat.mean() - mean[k]) < 4 * mc_se, (name, flat.mean(), mean[k])
        assert abs(flat.std() / sd[k] - 1) < 4 / np.sqrt(2 * ess[k]), (name, flat.std(), sd[k])
    assert np.allclose(np.corrcoef(draws.reshape(-1, len(names)).T), cov / np.outer(sd, sd),
                       atol=0.05)


def _frame(seed=3, n3=15) -> pd.DataFrame:
    """Unbalanced three-level data: 2-4 level-2 units per level-3 cluster, 1-5
    observations per level-2 unit (ids not contiguous)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n3):
        z, u = rng.normal(), rng.normal(0, np.sqrt(0.3))
        for j in range(rng.integers(2, 5)):
            v = rng.normal(0, np.sqrt(0.5))
            for _ in range(rng.integers(1, 6)):
                x = rng.normal()
                rows.append((1 + 0.5 * x + 0.4 * z + u + v + rng.normal(), x, z, 7 * k + 3,
                             100 * k + j))
    return pd.DataFrame(rows, columns=["y", "x", "z", "level3", "level2"])


def test_fixed_effects_match_the_exact_gls_posterior():
    """Three levels with the variances known: V = I + 0.5 [same level-2 unit] + 0.3
    [same level-3 cluster]."""
    frame = _frame()
    fit = jaxsem.Model.from_mplus(KNOWN_VARIANCES, **ROLES).fit(
        frame, chains=4, fbiterations=6000, progress=False)
    n = len(frame)
    same2 = frame.level2.values[:, None] == frame.level2.values[None]
    same3 = frame.level3.values[:, None] == frame.level3.values[None]
    assert_gls_posterior(fit, ["level3: y~1", "within: y~x", "level3: y~z"],
                         np.column_stack([np.ones(n), frame.x, frame.z]),
                         np.linalg.inv(np.eye(n) + 0.5 * same2 + 0.3 * same3), frame.y.values)


def test_second_data_set_of_the_same_shape_reuses_the_program():
    model = jaxsem.Model.from_mplus(KNOWN_VARIANCES, **ROLES)
    first = model.fit(_frame(), chains=2, fbiterations=200, progress=False)
    other = _frame().assign(y=lambda f: f.y + 1.0)
    second = model.fit(other, chains=2, fbiterations=200, progress=False)
    assert first.compile_seconds > 0.2 and second.compile_seconds < 0.05
    assert abs(np.median(second.kept[:, :, second.names.index("level3: y~1")])
               - np.median(first.kept[:, :, first.names.index("level3: y~1")]) - 1.0) < 0.2


@pytest.mark.parametrize("text, roles, message", [
    (KNOWN_VARIANCES.replace("y ON x;", "y ON x (b);").replace("y ON z;", "y ON z (b);"),
     ROLES, "an equality constraint between level 1 and a higher level (b) is not supported"),
    (KNOWN_VARIANCES.replace("y@0.5;", "y@0;"), ROLES,
     "a level-2 residual variance fixed at 0 ('y' at the level2 level"),
])
def test_refusals_name_the_reason(text, roles, message):
    with pytest.raises(ModelError) as info:
        jaxsem.Model.from_mplus(text, **roles).fit(_frame(), chains=1, fbiterations=50,
                                                   progress=False)
    assert message in str(info.value)


def test_three_levels_without_a_level2_state_are_refused():
    frame = _frame().assign(w=lambda f: f.level2 % 7 * 0.1)
    model = jaxsem.Model.from_mplus("%WITHIN%\ny ON x;\n%BETWEEN level2%\nw;\n"
                                    "%BETWEEN level3%\n", within=["x", "y"], between=["w"],
                                    clusters=("level3", "level2"))
    with pytest.raises(ModelError, match="no level-1 outcome varies at level 2"):
        model.fit(frame, chains=1, fbiterations=50, progress=False)


def test_missing_covariate_is_refused():
    frame = _frame()
    frame.loc[3, "x"] = np.nan
    with pytest.raises(ModelError, match=r"missing values on a covariate .*\(x\)"):
        jaxsem.Model.from_mplus(KNOWN_VARIANCES, **ROLES).fit(frame, chains=1,
                                                              fbiterations=50, progress=False)


# ----------------------------------------------------------------------------- ML

UG = Path(__file__).resolve().parents[1] / "configs" / "mplus_ug"
LME4 = json.loads((Path(__file__).resolve().parents[1]
                   / "bench/peers/outputs/lme4_threelevel.json").read_text())
EX9_20 = """
%WITHIN%
y ON x;
%BETWEEN level2%
s2 | y ON w;
%BETWEEN level3%
y ON z;
s2 ON z;
y WITH s2;
"""


@pytest.mark.parametrize("data", ["complete", "missing"])
def test_ml_matches_lme4(data):
    """UG ex9.20's model (a level-2 random slope varying over level-3 clusters) is
    lme4's y ~ x + z + w + z:w + (1 + w | level3) + (1 | level2); with y missing on
    every 7th row FIML drops those rows as lme4 does (bench/peers/lme4_threelevel.R)."""
    frame = pd.read_csv(UG / "ex9_20.dat", sep=r"\s+", header=None,
                        names=["y", "x", "w", "z", "level2", "level3"])
    if data == "missing":
        frame.loc[2::7, "y"] = np.nan
    ref = LME4[data]
    fit = jaxsem.Model.from_mplus(EX9_20, within=["x"], between_levels={"w": 2, "z": 3},
                                  clusters=("level3", "level2")).fit(frame, estimator="ml")
    assert fit.converged and abs(fit.loglik - ref["loglik"]) < 1e-5
    fixed = ref["fixed_effects"]
    expected = {"within: y~x": fixed["x"], "level2: y~~y": ref["level2_intercept_variance"],
                "level3: y~z": fixed["z"], "level3: s2~z": fixed["z:w"],
                "level3: y~~s2": ref["level3_intercept_slope_covariance"],
                "level3: y~~y": ref["level3_intercept_variance"],
                "level3: s2~~s2": ref["level3_slope_variance"],
                "level3: y~1": fixed["(Intercept)"], "level3: s2~1": fixed["w"],
                "within: y~~y": ref["residual_variance"]}
    names = fit.analysis.partable.parameter_names()
    for name, value in expected.items():
        assert abs(fit.x[names.index(name)] - value) < 2e-4, (name, fit.x[names.index(name)], value)


THREE_LEVEL_CFA = """
%WITHIN%
fw BY y1-y3;
%BETWEEN level2%
f2 BY y1-y3;
%BETWEEN level3%
f3 BY y1-y3;
"""


def test_three_level_cfa_likelihood_is_the_multivariate_normal():
    """The nested Gaussian integrals give, per level-3 cluster, the normal density of
    all its observations stacked: covariance Sigma_1 (x) I + Sigma_2 (x) [same level-2
    unit] + Sigma_3 (x) 1, from the implied moments of each level."""
    import jax

    from jaxsem.ml.fit import ml_arrays
    from jaxsem.ml.likelihood import cluster_logliks
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(1)
    frame = _frame(seed=4, n3=6)
    for k in (1, 2, 3):
        frame[f"y{k}"] = frame.y + rng.normal(size=len(frame))
    frame.loc[[2, 9, 11], "y2"] = np.nan
    model = jaxsem.Model.from_mplus(THREE_LEVEL_CFA, clusters=("level3", "level2"))
    analysis = model.prepare(frame)
    layout, masks, arrays = ml_arrays(analysis)
    spec = analysis.spec
    x = spec.start_values() + rng.uniform(0.1, 0.4, spec.n_free)
    ours = np.asarray(jax.jit(cluster_logliks, static_argnums=(0, 3))(layout, x, arrays, masks))
    moments = spec.implied_moments(x)
    covs = [np.asarray(cov)[:3, :3] for _, cov in moments]
    mean = np.asarray(moments[2][0])[:3]
    y = frame[["y1", "y2", "y3"]].to_numpy()
    for k, level3 in enumerate(np.unique(frame.level3)):
        rows = np.flatnonzero(frame.level3.values == level3)
        level2 = frame.level2.values[rows]
        same2 = (level2[:, None] == level2[None]).astype(float)
        cov = (np.kron(np.eye(len(rows)), covs[0]) + np.kron(same2, covs[1])
               + np.kron(np.ones((len(rows), len(rows))), covs[2]))
        values = y[rows].ravel()
        seen = ~np.isnan(values)
        exact = multivariate_normal(np.tile(mean, len(rows))[seen],
                                    cov[np.ix_(seen, seen)]).logpdf(values[seen])
        assert abs(ours[k] - exact) < 1e-8, (k, ours[k], exact)


@pytest.mark.slow
def test_bayes_agrees_with_ml_on_a_large_three_level_cfa():
    """A factor model at every level, 100 level-3 clusters x 5 level-2 units x 6
    observations simulated by the ModelSpec generator: posterior medians (Mplus's default
    priors) against the ML estimates, in posterior SDs. Levels 1 and 2 (3000 and 500
    units): within 0.25. Level 3 (100 clusters, variances near zero with skewed
    posteriors whose median is not the ML mode): within 0.75. Both also run STDYX."""
    import jax

    from jaxsem.spec import ModelSpec

    model = jaxsem.Model.from_mplus(THREE_LEVEL_CFA, clusters=("level3", "level2"))
    spec = ModelSpec(model.partable)
    names = model.partable.parameter_names()
    truth = {"within: fw=~y2": 0.8, "within: fw=~y3": 1.2, "level2: f2=~y2": 0.9,
             "level2: f2=~y3": 1.1, "level3: f3=~y2": 1.0, "level3: f3=~y3": 0.7,
             "within: fw~~fw": 1.0, "level2: f2~~f2": 0.5, "level3: f3~~f3": 0.4}
    residual = {"within": 0.5, "level2": 0.2, "level3": 0.1}
    x = np.array([truth.get(n, 1.0 if "~1" in n else residual[n.split(":")[0]])
                  for n in names])
    frame = spec.simulate(x, jax.random.PRNGKey(0), [[6] * 5 for _ in range(100)],
                          cluster_names=["level3", "level2"])
    ml = model.fit(frame, estimator="ml")
    bayes = model.fit(frame, chains=4, fbiterations=2000, progress=False)
    assert ml.converged and bayes.converged
    table = bayes.summary()
    for _, row in table[table.free > 0].iterrows():
        z = (row.estimate - ml.x[row.free - 1]) / row.posterior_sd
        assert abs(z) < (0.75 if row.block == "level3" else 0.25), (names[row.free - 1], z)
    for fit in (ml, bayes):
        std = fit.standardized()
        loading = std[(std.block == "level2") & (std.lhs == "f2") & (std.rhs == "y2")]
        assert 0.5 < float(loading.estimate.iloc[0]) < 1.0


def test_level1_random_slope_ml_matches_lme4():
    """A level-1 random slope varying over level-2 units (correlated with the level-2
    intercept) beside a level-3 random intercept: lme4's y ~ x + (1 | level3) +
    (1 + x | level2) on data simulated by bench/peers/lme4_threelevel.R."""
    frame = pd.read_csv(Path(__file__).resolve().parents[1]
                        / "bench/peers/data/threelevel_level1_slope.csv")
    ref = LME4["level1_slope"]
    model = jaxsem.Model.from_mplus("%WITHIN%\ns | y ON x;\n%BETWEEN level2%\ny WITH s;\n"
                                    "%BETWEEN level3%\n", within=["x"],
                                    clusters=("level3", "level2"))
    fit = model.fit(frame, estimator="ml")
    assert fit.converged and abs(fit.loglik - ref["loglik"]) < 1e-5
    expected = {"level2: s~1": ref["fixed_effects"]["x"],
                "level3: y~1": ref["fixed_effects"]["(Intercept)"],
                "level2: s~~s": ref["level2_slope_variance"],
                "level2: y~~y": ref["level2_intercept_variance"],
                "level2: y~~s": ref["level2_intercept_slope_covariance"],
                "level3: y~~y": ref["level3_intercept_variance"],
                "within: y~~y": ref["residual_variance"]}
    names = fit.analysis.partable.parameter_names()
    assert sorted(names) == sorted(expected)
    for name, value in expected.items():
        assert abs(fit.x[names.index(name)] - value) < 2e-4, (name, fit.x[names.index(name)], value)


# ----------------------------------------------------------------------------- cross-classified

CROSSED_KNOWN = """
%WITHIN%
y ON x;
y@1;
%BETWEEN level2a%
y ON w;
y@0.4;
%BETWEEN level2b%
y@0.3;
"""
CROSSED_ROLES = dict(within=["x"], between_levels={"w": 2}, clusters=("level2b", "level2a"),
             crossed=True)


def _crossed_frame(seed=5, n=300) -> pd.DataFrame:
    """Observations in random cells of 12 x 9 crossed classifications (ids not
    contiguous); w is a level2a variable."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 12, n), rng.integers(0, 9, n)
    w = rng.normal(size=12)
    y = (1 + 0.5 * rng.normal(size=n) + 0.3 * w[a] + rng.normal(0, np.sqrt(0.4), 12)[a]
         + rng.normal(0, np.sqrt(0.3), 9)[b] + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": rng.normal(size=n), "w": w[a], "level2a": 10 * a + 1,
                         "level2b": 3 * b + 2})


def test_crossed_fixed_effects_match_the_exact_gls_posterior():
    """Two crossed classifications with the variances known: V = I + 0.4 [same a] +
    0.3 [same b]."""
    frame = _crossed_frame()
    fit = jaxsem.Model.from_mplus(CROSSED_KNOWN, **CROSSED_ROLES).fit(
        frame, chains=4, fbiterations=6000, progress=False)
    n = len(frame)
    same_a = frame.level2a.values[:, None] == frame.level2a.values[None]
    same_b = frame.level2b.values[:, None] == frame.level2b.values[None]
    assert_gls_posterior(fit, ["level2b: y~1", "within: y~x", "level2a: y~w"],
                         np.column_stack([np.ones(n), frame.x, frame.w]),
                         np.linalg.inv(np.eye(n) + 0.4 * same_a + 0.3 * same_b),
                         frame.y.values)


@pytest.mark.parametrize("text, message", [
    (CROSSED_KNOWN.replace("y ON x;", "s | y ON x;"), "random coefficients in"),
    (CROSSED_KNOWN.replace("y@1;", "y (v);").replace("y@0.4;", "y (v);"),
     "an equality constraint across the levels level2a, within (v)"),
])
def test_crossed_refusals_name_the_reason(text, message):
    with pytest.raises(ModelError) as info:
        jaxsem.Model.from_mplus(text, **CROSSED_ROLES).fit(_crossed_frame(), chains=1,
                                                           fbiterations=50, progress=False)
    assert message in str(info.value) and "cross-classified" in str(info.value)


def test_level1_slope_varying_at_level3_is_refused_with_the_reason():
    with pytest.raises(jaxsem.errors.ModelSyntaxError,
                       match="also varies over level-3 clusters is not supported yet"):
        _ = jaxsem.Model.from_mplus("%WITHIN%\ns | y ON x;\n%BETWEEN level2%\n"
                                    "%BETWEEN level3%\ns ON z;", within=["x"],
                                    between_levels={"z": 3},
                                    clusters=("level3", "level2")).partable


def test_crossed_stdyx_and_factor_scores_refusal():
    """STDYX standardizes each crossed level by its own variances and covariates;
    factor scores of crossed models are refused with their own message."""
    from jaxsem.bayes.scores import check_supported

    model = jaxsem.Model.from_mplus(CROSSED_KNOWN.replace("y@0.4;", "y;"), **CROSSED_ROLES)
    fit = model.fit(_crossed_frame(), chains=1, fbiterations=200, progress=False)
    std = fit.standardized()
    slope = std[(std.block == "level2a") & (std.op == "~")]
    assert 0 < float(slope.estimate.iloc[0]) < 1
    with pytest.raises(ModelError, match="factor scores .* of cross-classified models"):
        check_supported(fit.analysis)
