"""ML and MLR against lavaan and lme4 (outputs of bench/peers/ml_references.R, committed
JSON; no R needed), and exact checks of the likelihood and its derivatives.

lavaan's references were run with BFGS to reltol 1e-15 (its default nlminb stops about
1e-3 SE short of the optimum), so estimates are compared at 1e-4 relative to
max(|estimate|, SE) and log likelihoods at 1e-8 relative.
"""
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

import jaxsem
from jaxsem.errors import ModelError
from jaxsem.ml.fit import compiled_functions, ml_arrays, observed_information, MLOptions
from jaxsem.ml.likelihood import cluster_logliks

PEERS = Path(__file__).resolve().parents[1] / "bench/peers"
LAVAAN = json.loads((PEERS / "outputs/ml_lavaan.json").read_text())
LME4 = json.loads((PEERS / "outputs/ml_lme4.json").read_text())
DATA = {"complete": pd.read_csv(PEERS / "data/Demo.twolevel.csv"),
        "missing": pd.read_csv(PEERS / "data/Demo.twolevel.missing.csv")}


def _lavaan_fit(name: str, estimator: str, data: str = "complete"):
    ref = LAVAAN[f"{name}_{estimator}"]
    cluster = {"cluster": "cluster"} if "cluster" in ref["sem_args"] else {}
    fit = jaxsem.Model(ref["model"]).fit(DATA[data], estimator=estimator, **cluster)
    return fit, ref


def _matched_rows(fit, ref):
    """(ours estimate, ours se, lavaan row) for every free parameter."""
    out = []
    for row in fit.partable.free_rows():
        hits = [p for p in ref["partable"] if p["lhs"] == row.lhs and p["op"] == row.op
                and (p["rhs"] or "") == (row.rhs or "") and (p["level"] or 1) == row.level]
        assert len(hits) == 1, row
        out.append((fit.x[row.free - 1], fit.standard_errors[row.free - 1], hits[0]))
    return out


@pytest.mark.parametrize("name,estimator,data", [
    ("tutorial", "mlr", "complete"), ("path_mediation", "mlr", "complete"),
    ("cfa_zero_resvar", "ml", "complete"), ("cfa_equal_loadings", "ml", "complete"),
    ("single_level_cfa", "mlr", "complete"), ("tutorial_missing", "ml", "missing")])
def test_ml_and_mlr_match_lavaan(name, estimator, data):
    """One fit gives the estimates, the ML SEs (inverse information) and, for MLR, the
    sandwich SEs and Mplus's scaling factors. lavaan's MLR meat for two-level models
    differs from ours by up to 6e-4 relative (within the 1e-3 asked)."""
    fit, ref = _lavaan_fit(name, estimator, data)
    ml_ref = LAVAAN[f"{name}_ml"]
    assert fit.converged and not fit.problems()
    assert fit.loglik == pytest.approx(ml_ref.get("logl_conditional", ml_ref["logl"]), rel=1e-8)
    ml_se = np.sqrt(np.diag(np.linalg.inv(fit.information)))
    ml_rows = {(p["lhs"], p["op"], p["rhs"], p["level"]): p for p in ml_ref["partable"]}
    for (est, se, lav), ours_ml_se in zip(_matched_rows(fit, ref), ml_se):
        assert abs(est - lav["est"]) < 1e-4 * max(abs(lav["est"]), lav["se"]), lav
        assert se == pytest.approx(lav["se"], rel=1e-3), lav
        ml_row = ml_rows[(lav["lhs"], lav["op"], lav["rhs"], lav["level"])]
        assert ours_ml_se == pytest.approx(ml_row["se"], rel=1e-5), lav
    measures = fit.fit_measures()
    assert measures["n_free_parameters"] == ref["npar"]
    for ours, theirs in (("aic", "aic"), ("bic", "bic"), ("sabic", "bic2")):
        assert measures[ours] == pytest.approx(ref[theirs], rel=1e-8)
    assert measures["df"] == ref["df"]
    # lavaan's unrestricted two-level model comes from EM and stops up to ~1e-4 below
    # its maximum (ours is higher); the chi-square inherits twice that.
    assert measures["chisq"] == pytest.approx(ref["chisq"], abs=5e-4)
    if estimator == "mlr":
        assert measures["scaling_factor_h0"] == pytest.approx(ref["scaling_factor_h0"],
                                                              rel=2e-4)
        assert measures["scaling_factor_h1"] == pytest.approx(ref["scaling_factor_h1"],
                                                              rel=2e-4)
        assert measures["chisq_scaled"] == pytest.approx(ref["chisq_scaled"], rel=1e-3)


@pytest.mark.parametrize("name,file,y,x,c", [
    ("sleepstudy", "sleepstudy.csv", "Reaction", "Days", "Subject"),
    ("random_slope_200x50", "random_slope_200x50.csv", "y", "x", "c")])
def test_random_slopes_match_lme4(name, file, y, x, c):
    ref = LME4[name]
    model = jaxsem.Model(f"%WITHIN%\n s | {y} ON {x};\n %BETWEEN%\n {y} WITH s;",
                         within=[x], clusters=[c])
    fit = model.fit(pd.read_csv(PEERS / "data" / file), estimator="ml")
    assert fit.converged and not fit.problems()
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-9)
    table = fit.summary().set_index(["block", "lhs", "op", "rhs"])
    y, intercept, slope = y.lower(), "(Intercept)", x if name != "sleepstudy" else "Days"
    vc = ref["variance_components"]
    expected = {("between", y, "~1", ""): (ref["fixed_effects"][intercept],
                                           ref["fixed_effects_se"][intercept]),
                ("between", "s", "~1", ""): (ref["fixed_effects"][slope],
                                             ref["fixed_effects_se"][slope]),
                ("between", y, "~~", y): (vc["intercept_variance"], None),
                ("between", "s", "~~", "s"): (vc["slope_variance"], None),
                ("between", y, "~~", "s"): (vc["intercept_slope_covariance"], None),
                ("within", y, "~~", y): (vc["residual_variance"], None)}
    for key, (est, se) in expected.items():
        row = table.loc[key]
        # lme4 stops at a relative tolerance of about 1e-5 on its variance parameters
        assert row.estimate == pytest.approx(est, rel=2e-4, abs=1e-4 * abs(vc["residual_variance"]))
        if se is not None:
            assert row.se == pytest.approx(se, rel=1e-3)
    assert "chisq" not in fit.fit_measures()  # no unrestricted model with random slopes


def _balanced_random_intercept(seed=3, clusters=30, size=4):
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 0.7, clusters)
    y = 1.0 + np.repeat(u, size) + rng.normal(0, 1.0, clusters * size)
    frame = pd.DataFrame({"y": y, "g": np.repeat(np.arange(clusters), size)})
    model = jaxsem.Model("%WITHIN%\n y;\n %BETWEEN%\n y;", clusters=["g"])
    return model, frame, y.reshape(clusters, size)


def test_balanced_random_intercept_likelihood_is_the_closed_form():
    model, frame, y = _balanced_random_intercept()
    analysis = model.prepare(frame)
    layout, masks, arrays = ml_arrays(analysis)
    names = analysis.partable.parameter_names()
    values = {"within: y~~y": 0.9, "between: y~~y": 0.4, "between: y~1": 1.2}
    x = jnp.asarray([values[n] for n in names])
    ours = float(cluster_logliks(layout, x, arrays, masks).sum())
    size = y.shape[1]
    cov = 0.9 * np.eye(size) + 0.4 * np.ones((size, size))
    exact = multivariate_normal(np.full(size, 1.2), cov).logpdf(y).sum()
    assert ours == pytest.approx(exact, rel=1e-12)


def test_gradient_zero_and_information_matches_autodiff_at_optimum():
    model, frame, _ = _balanced_random_intercept()
    fit = model.fit(frame, estimator="ml")
    assert np.max(np.abs(fit.gradient)) < 1e-6
    layout, masks, arrays = ml_arrays(fit.analysis)
    hessian = np.asarray(jax.hessian(
        lambda x: cluster_logliks(layout, x, arrays, masks).sum())(jnp.asarray(fit.x)))
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-10 * np.abs(hessian).max())
    assert np.linalg.eigvalsh(hessian).max() < 0            # negative definite: a maximum
    scale = np.abs(hessian).max()
    np.testing.assert_allclose(fit.information, -hessian, atol=1e-7 * scale)
    funcs = compiled_functions(layout, masks, arrays, MLOptions())
    np.testing.assert_allclose(observed_information(funcs["value_and_grad"], fit.x, arrays),
                               -hessian, atol=1e-7 * scale)


def test_defined_parameters_get_delta_method_se():
    model = jaxsem.Model("level: 1\n y1 ~ a*x1\n y2 ~ b*y1 + x1\n level: 2\n y1 ~~ y2\n"
                         "ab := a*b")
    fit = model.fit(DATA["complete"], cluster="cluster", estimator="ml", saturated=False)
    table = fit.summary().set_index("lhs")
    a, b = fit.x[fit.names.index("within: y1~x1")], fit.x[fit.names.index("within: y2~y1")]
    assert table.loc["ab", "estimate"] == pytest.approx(a * b)
    ia, ib = fit.names.index("within: y1~x1"), fit.names.index("within: y2~y1")
    cov = fit.covariance
    grad = np.array([b, a])
    sub = cov[np.ix_([ia, ib], [ia, ib])]
    assert table.loc["ab", "se"] == pytest.approx(np.sqrt(grad @ sub @ grad), rel=1e-10)


def test_problems_are_reported_in_words():
    frame = DATA["complete"].assign(x4=DATA["complete"].x1)   # x4 = x1: collinear
    unidentified = jaxsem.Model("y1 ~ x1 + x4")
    fit = unidentified.fit(frame, estimator="ml", saturated=False)
    text = " ".join(fit.problems())
    assert "singular" in text and "y1~x1" in text and "y1~x4" in text
    assert np.isnan(fit.standard_errors).all()
    assert "singular" in fit.report()
    short = jaxsem.Model("level: 1\n fw =~ y1 + y2 + y3\n level: 2\n fb =~ y1 + y2 + y3")
    fit = short.fit(frame, cluster="cluster", estimator="ml", max_iterations=2,
                    saturated=False)
    assert not fit.converged
    assert any("did not converge" in p for p in fit.problems())


def test_heywood_case_is_flagged():
    rng = np.random.default_rng(0)
    clusters, size = 40, 5
    g = np.repeat(np.arange(clusters), size)
    f = rng.normal(size=clusters)[g]
    frame = pd.DataFrame({f"y{k}": f + rng.normal(size=clusters * size) for k in (1, 2, 3)})
    frame["g"] = g
    model = jaxsem.Model("%WITHIN%\n y1-y3;\n %BETWEEN%\n fb BY y1-y3;", clusters=["g"])
    fit = model.fit(frame, estimator="ml", saturated=False)
    negative = [r for r in fit.partable.free_rows()
                if r.kind == "residual_variance" and fit.x[r.free - 1] < 0]
    assert negative, "the seed was chosen to give a negative between residual variance"
    problems = " ".join(fit.problems())
    assert "Heywood" in problems and negative[0].lhs in problems
    # here the maximum lies where the between covariance stops being positive definite
    assert "not positive definite" in problems
    assert "between: y2~~y2" in fit.report() or "Y2" in fit.report()


def test_unknown_option_and_estimator_are_refused():
    model = jaxsem.Model("y1 ~ x1")
    with pytest.raises(ModelError, match="random_starts"):
        model.fit(DATA["complete"], estimator="ml", chains=2)
    with pytest.raises(ModelError, match="WLSMV"):
        MLOptions(estimator="WLSMV")


def test_bayes_sampler_starts_from_the_ml_estimates():
    from jaxsem.bayes.driver import _starting_values
    from jaxsem.bayes.layout import build_layout

    model, frame, _ = _balanced_random_intercept()
    analysis = model.prepare(frame)
    layout, arrays = build_layout(analysis)
    ml = model.fit(frame, estimator="ml", saturated=False)
    np.testing.assert_allclose(_starting_values(analysis, layout, arrays, "ml"), ml.x)
    fit = model.fit(frame, starts="ml", chains=2, fbiterations=200, progress=False)
    assert np.isfinite(fit.draws).all()
    with pytest.raises(ModelError, match="starts"):
        model.fit(frame, starts="lavaan", chains=2, fbiterations=200, progress=False)


def test_random_starts_keep_the_best_solution():
    model, frame, _ = _balanced_random_intercept()
    single = model.fit(frame, estimator="ml", saturated=False)
    several = model.fit(frame, estimator="ml", saturated=False, random_starts=3, seed=2)
    assert len(several.other_solutions) == 4
    assert several.loglik == pytest.approx(single.loglik, rel=1e-10)
    assert several.loglik >= max(ll for ll, _ in several.other_solutions) - 1e-8
    assert "Log likelihoods of the 4 starts" in several.report()
