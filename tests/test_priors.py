"""Priors: the type and its rules, the readers, Mplus defaults and log densities."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsem.errors import ModelSyntaxError, PriorError
from jaxsem.priors import (
    DEFAULT_PRIORS, FAMILIES, Prior, default_prior, from_lavaan_prior,
    inverse_wishart_log_prob, log_prob, parse_model_priors, parse_prior,
    validate_inverse_wishart)
from jaxsem.syntax.statements import SourceLoc


def assert_located(message: str, line: int, col: int) -> None:
    """The message names line and column and has a caret under that column."""
    assert f"line {line}, column {col}" in message
    carets = [row for row in message.splitlines() if row.strip() == "^"]
    assert carets and carets[0].index("^") == 4 + col - 1


# ----------------------------------------------------------------------------- type, reading

@pytest.mark.parametrize("text, family, args", [
    ("N(0, 1)", "normal", (0.0, 1.0)),
    ("n(0,1e10)", "normal", (0.0, 1e10)),
    ("IG(1, 1)", "inv_gamma", (1.0, 1.0)),
    ("ig(-1, 0)", "inv_gamma", (-1.0, 0.0)),
    ("IW(1, 3)", "inv_wishart", (1.0, 3.0)),
    ("IW(0, -4)", "inv_wishart", (0.0, -4.0)),
    ("U(0, 1)", "uniform", (0.0, 1.0)),
    ("D(1, 1, 2)", "dirichlet", (1.0, 1.0, 2.0)),
    ("G(1,1)", "gamma", (1.0, 1.0)),
    (" LN( 0 , .5 ) ", "lognormal", (0.0, 0.5)),
])
def test_parse_prior_and_print_back(text, family, args):
    prior = parse_prior(text)
    assert prior == Prior(family, args)
    assert parse_prior(str(prior)) == prior


def test_prior_printing_is_mplus_notation():
    assert str(Prior("normal", (0, 1e10))) == "N(0, 1e+10)"
    assert str(Prior("inv_gamma", (-1, 0))) == "IG(-1, 0)"
    assert str(Prior("lognormal", (0.25, 0.1))) == "LN(0.25, 0.1)"
    assert set(FAMILIES) == {"normal", "inv_gamma", "inv_wishart", "uniform", "dirichlet",
                             "gamma", "lognormal"}


@pytest.mark.parametrize("args", [(-1, 0), (0, 0), (-1, 2.5), (0.001, 0.001), (3, 0)])
def test_inverse_gamma_allowed_boundary(args):
    assert Prior("inv_gamma", args).args == tuple(map(float, args))


@pytest.mark.parametrize("family, args, words", [
    ("inv_gamma", (-1.0001, 0), ["shape must be >= -1", "IG(-1, 0)"]),
    ("inv_gamma", (1, -1e-9), ["scale must be >= 0"]),
    ("normal", (0, 0), ["variance must be > 0"]),
    ("lognormal", (0, -1), ["variance must be > 0"]),
    ("uniform", (1, 1), ["lower bound must be below"]),
    ("gamma", (0, 1), ["shape and rate must be > 0"]),
    ("dirichlet", (1, 0), ["all be > 0"]),
    ("dirichlet", (1,), ["at least 2"]),
    ("normal", (0,), ["takes 2 numbers, got 1"]),
    ("normal", (math.nan, 1), ["finite"]),
    ("inv_wishart", (0, math.inf), ["finite"]),
    ("beta", (1, 1), ["unknown prior family 'beta'", "N(mean, variance)", "LN("]),
])
def test_invalid_priors(family, args, words):
    with pytest.raises(PriorError) as info:
        Prior(family, args)
    for word in words:
        assert word in str(info.value)


MODEL_PRIORS = """MODEL PRIORS:
  a1-a3 b ~ N(0, 1);   ! loadings
  v ~ IG(1, 1.5);  w ~ IW(1,
     3);
"""


def test_model_priors_section():
    start = MODEL_PRIORS.index("\n") + 1
    priors = parse_model_priors(MODEL_PRIORS[start:], full_text=MODEL_PRIORS, offset=start)
    assert list(priors) == ["a1", "a2", "a3", "b", "v", "w"]
    assert priors["a2"] == (Prior("normal", (0, 1)), SourceLoc(2, 3))
    assert priors["b"][1] == SourceLoc(2, 9)
    assert priors["v"][0] == Prior("inv_gamma", (1, 1.5))
    assert priors["w"] == (Prior("inv_wishart", (1, 3)), SourceLoc(3, 20))


@pytest.mark.parametrize("text, line, col, words", [
    ("a ~ N(0, 1);\nb ~ N(0, -1);", 2, 5, ["prior for 'b'", "variance must be > 0"]),
    ("a ~ Q(0, 1);", 1, 5, ["unknown prior 'Q'", "IG(shape, scale)"]),
    ("a ~ N(0);", 1, 5, ["takes 2 numbers"]),
    ("a ~ IG(-2, 0);", 1, 5, ["shape must be >= -1"]),
    ("a ~ U(1, 0);", 1, 5, ["lower bound"]),
    ("a ~ N(0, 1e400);", 1, 10, ["finite"]),
    ("a ~ N(0, x);", 1, 10, ["'x' is not a number"]),
    ("a ~ normal;", 1, 5, ["cannot read the prior"]),
    ("a1-a2 ~ N(0,1);\n  A2 ~ N(0,2);", 2, 3, ["prior for 'a2'", "first is on line 1"]),
])
def test_model_priors_prior_errors(text, line, col, words):
    with pytest.raises(PriorError) as info:
        parse_model_priors(text)
    assert_located(str(info.value), line, col)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("text, line, col, words", [
    ("DIFF(a1-a3) ~ N(0, 0.01);", 1, 1, ["DIFF() priors are not supported yet"]),
    ("a ~ N(0,1);\ncovariance(a, b) ~ N(0, 1);", 2, 1, ["COVARIANCE()", "not supported"]),
    ("a1-b3 ~ N(0, 1);", 1, 1, ["not a label range"]),
    ("a ~ N(0, 1)", 1, 12, ["missing ';'"]),
    ("a N(0, 1);", 1, 1, ["expected 'label ~ prior'"]),
    ("~ N(0, 1);", 1, 1, ["needs a label"]),
    ("a, b ~ N(0, 1);", 1, 2, ["expected a parameter label"]),
])
def test_model_priors_syntax_errors(text, line, col, words):
    with pytest.raises(ModelSyntaxError) as info:
        parse_model_priors(text)
    assert_located(str(info.value), line, col)
    for word in words:
        assert word in str(info.value)


# ----------------------------------------------------------------------------- lavaan

@pytest.mark.parametrize("text, prior", [
    ("normal(0,10)", Prior("normal", (0, 100))),
    ("normal(0, 1000^.5)", Prior("normal", (0, 1000))),
    ("lognormal(1, 0.5)", Prior("lognormal", (1, 0.25))),
    ("inv_gamma(2, 1)", Prior("inv_gamma", (2, 1))),
    ("uniform(-1, 1)", Prior("uniform", (-1, 1))),
    ("gamma(1, .5)", Prior("gamma", (1, 0.5))),
    ("gamma(1,.5)[var]", Prior("gamma", (1, 0.5))),
    ("gamma(1,.5)[prec]", Prior("inv_gamma", (1, 0.5))),
])
def test_from_lavaan_prior(text, prior):
    assert from_lavaan_prior(text) == prior


@pytest.mark.parametrize("text, words", [
    ("beta(1,1)", ["unknown prior 'beta'", "normal(...)"]),
    ("normal(0, -2)", ["sd > 0"]),
    ("normal(0)", ["sd > 0"]),
    ("normal(0, s)", ["'s'", "not a number"]),
    ("normal(0, 1 +)", ["cannot read the argument"]),
    ("gamma(1,.5)[sd]", ["standard deviation", "[prec]"]),
    ("normal(0,1)[prec]", ["only gamma"]),
    ("gamma(1,1)[foo]", ["unknown suffix"]),
    ("uniform(1, 1/0)", ["finite"]),
    ("normal 0 1", ["cannot read the prior"]),
])
def test_from_lavaan_prior_errors(text, words):
    with pytest.raises(PriorError) as info:
        from_lavaan_prior(text)
    for word in words:
        assert word in str(info.value)


# ----------------------------------------------------------------------------- defaults, IW

def test_default_priors():
    for kind in ("coefficient", "intercept", "threshold"):
        assert default_prior(kind) == Prior("normal", (0, 1e10)) == DEFAULT_PRIORS[kind]
    assert default_prior("variance") == Prior("inv_gamma", (-1, 0))
    assert default_prior("covariance_block", 3) == Prior("inv_wishart", (0, -4))
    with pytest.raises(ValueError, match="covariance_block"):
        default_prior("loading")


def test_validate_inverse_wishart():
    validate_inverse_wishart(-4, 3, "psi")  # the Mplus default IW(0, -p-1)
    validate_inverse_wishart(5, 2, "psi", scale_matrix=np.array([[1.0, 0.3], [0.3, 1.0]]))
    validate_inverse_wishart(-3, 2, "psi", scale_matrix=np.zeros((2, 2)))
    text = "MODEL PRIORS:\n  p1-p3 ~ IW(0, -5);\n"
    with pytest.raises(PriorError) as info:
        validate_inverse_wishart(-5, 3, "p1", loc=SourceLoc(2, 3), text=text)
    message = str(info.value)
    assert_located(message, 2, 3)
    assert "prior for 'p1'" in message and "-p-1 = -4" in message
    with pytest.raises(PriorError, match="positive semi-definite"):
        validate_inverse_wishart(5, 2, "psi", scale_matrix=np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(PriorError, match="shape"):
        validate_inverse_wishart(5, 2, "psi", scale_matrix=np.eye(3))


# ----------------------------------------------------------------------------- densities

VALUES = np.array([0.3, 1.0, 2.7])


@pytest.mark.parametrize("prior, reference", [
    (Prior("normal", (0.5, 4.0)), stats.norm(0.5, 2.0)),
    (Prior("inv_gamma", (2.0, 1.5)), stats.invgamma(2.0, scale=1.5)),
    (Prior("gamma", (2.0, 3.0)), stats.gamma(2.0, scale=1 / 3.0)),
    (Prior("lognormal", (0.2, 0.25)), stats.lognorm(0.5, scale=math.exp(0.2))),
    (Prior("uniform", (0.0, 2.0)), stats.uniform(0.0, 2.0)),
    (Prior("inv_wishart", (3.0, 4.0)), stats.invgamma(2.0, scale=1.5)),
])
def test_log_prob_matches_scipy(prior, reference):
    got = np.asarray(log_prob(prior, jnp.asarray(VALUES)))
    np.testing.assert_allclose(got, reference.logpdf(VALUES), rtol=1e-5)


def test_log_prob_support_and_improper_kernels():
    assert float(log_prob(Prior("inv_gamma", (2.0, 1.0)), -1.0)) == -math.inf
    assert float(log_prob(Prior("gamma", (2.0, 1.0)), 0.0)) == -math.inf
    assert float(log_prob(Prior("uniform", (0.0, 1.0)), 1.5)) == -math.inf
    flat = log_prob(default_prior("variance"), jnp.asarray(VALUES))
    np.testing.assert_allclose(np.asarray(flat), 0.0)
    jeffreys = log_prob(Prior("inv_gamma", (0.0, 0.0)), jnp.asarray(VALUES))
    np.testing.assert_allclose(np.asarray(jeffreys), -np.log(VALUES), rtol=1e-6)
    np.testing.assert_allclose(  # 1x1 Mplus default IW(0, -2) is IG(-1, 0): flat
        np.asarray(log_prob(default_prior("covariance_block", 1), jnp.asarray(VALUES))), 0.0)


def test_log_prob_dirichlet():
    x = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    got = np.asarray(log_prob(Prior("dirichlet", (2.0, 1.0, 3.0)), jnp.asarray(x)))
    expected = [stats.dirichlet([2.0, 1.0, 3.0]).logpdf(row) for row in x]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    with pytest.raises(PriorError, match="3 proportions"):
        log_prob(Prior("dirichlet", (2.0, 1.0, 3.0)), jnp.ones(2) / 2)


def test_log_prob_jit_and_grad():
    prior = Prior("inv_gamma", (2.0, 1.5))
    grad = jax.jit(jax.grad(lambda x: log_prob(prior, x)))
    x = 1.3
    assert float(grad(x)) == pytest.approx(-(2.0 + 1) / x + 1.5 / x**2, rel=1e-5)
    assert float(jax.grad(lambda x: log_prob(Prior("normal", (1.0, 4.0)), x))(3.0)) == \
        pytest.approx(-0.5)


def test_inverse_wishart_log_prob():
    scale = np.array([[2.0, 0.5], [0.5, 1.0]])
    sigma = np.array([[1.5, -0.2], [-0.2, 0.8]])
    got = float(jax.jit(lambda s: inverse_wishart_log_prob(s, scale, 5.0))(jnp.asarray(sigma)))
    assert got == pytest.approx(stats.invwishart(df=5.0, scale=scale).logpdf(sigma), rel=1e-5)
    flat = inverse_wishart_log_prob(jnp.asarray(sigma), np.zeros((2, 2)), -3.0)
    assert float(flat) == pytest.approx(0.0, abs=1e-6)
    not_pd = inverse_wishart_log_prob(jnp.array([[1.0, 2.0], [2.0, 1.0]]), scale, 5.0)
    assert float(not_pd) == -math.inf
    with pytest.raises(PriorError, match="-p-1"):
        inverse_wishart_log_prob(jnp.asarray(sigma), scale, -3.5)
