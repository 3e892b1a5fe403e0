"""One test per default rule of jaxsem/defaults.py (both dialects where they agree)."""
import pytest

from jaxsem import Model, ModelSyntaxError
from jaxsem import defaults


def rows(model):
    return {(r.block, r.lhs, r.op, r.rhs): r for r in model.partable.rows}


def test_every_rule_is_listed_and_documented():
    assert len(defaults.RULES) == 8
    for rule in defaults.RULES:
        assert rule.__doc__ and ("dialect" in rule.__doc__ or "Mplus" in rule.__doc__)


@pytest.mark.parametrize("model", [
    Model.from_lavaan("f =~ y1 + y2 + y3"), Model.from_mplus("f BY y1-y3;")])
def test_first_loading_fixed(model):
    r = rows(model)
    first = r[("within", "f", "=~", "y1")]
    assert (first.free, first.value, first.origin) == (0, 1.0, "default:first_loading_fixed")
    assert r[("within", "f", "=~", "y2")].free > 0


@pytest.mark.parametrize("model", [
    Model.from_lavaan("f =~ NA*y1 + y2 + y3\n f ~~ 1*f"),
    Model.from_mplus("f BY y1* y2 y3; f@1;"),
    Model.from_mplus("f BY y1-y3*; f@1;")])
def test_first_loading_freed_by_the_user(model):
    r = rows(model)
    assert r[("within", "f", "=~", "y1")].free > 0
    assert r[("within", "f", "~~", "f")].value == 1.0


def test_random_loading_is_not_fixed_at_one():
    r = rows(Model.from_mplus("%WITHIN%\n s | f BY y1;\n f BY y2 y3;\n f@1;",
                          clusters=["c"]))
    assert r[("within", "f", "=~", "y1")].random == "s"
    assert r[("within", "f", "=~", "y2")].free > 0


@pytest.mark.parametrize("model", [
    Model.from_lavaan("level: 1\n y ~ x\n level: 2\n y ~ w"),
    Model.from_mplus("%WITHIN%\n y ON x;\n %BETWEEN%\n y ON w;", within=["x"],
                     between=["w"])])
def test_variances(model):
    r = rows(model)
    assert r[("within", "y", "~~", "y")].kind == "residual_variance"
    assert r[("between", "y", "~~", "y")].origin == "default:variances"
    assert ("within", "x", "~~", "x") not in r  # covariates are conditioned on


def test_categorical_within_residual_variance_fixed_at_one():
    model = Model.from_mplus("%WITHIN%\n u ON x;\n %BETWEEN%\n u ON w;",
                             within=["x"], between=["w"], categorical=["u"])
    r = rows(model)
    assert r[("within", "u", "~~", "u")].value == 1.0
    assert r[("within", "u", "~~", "u")].free == 0
    assert r[("between", "u", "~~", "u")].free > 0


@pytest.mark.parametrize("model", [
    Model.from_lavaan("level: 1\n fw =~ y1 + y2\n y3 ~ x\n level: 2\n fb =~ y1 + y2"),
    Model.from_mplus("%WITHIN%\n fw BY y1 y2;\n y3 ON x;\n %BETWEEN%\n fb BY y1 y2;",
                     within=["x", "y3"])])
def test_intercepts_at_the_highest_level(model):
    r = rows(model)
    assert ("within", "y1", "~1", "") not in r
    assert r[("between", "y1", "~1", "")].free > 0
    assert r[("within", "y3", "~1", "")].free > 0  # within-only outcome
    assert ("between", "fb", "~1", "") not in r  # factor means are zero


def test_random_coefficient_means_are_free():
    r = rows(Model.from_mplus("%WITHIN%\n s | y ON x;", within=["x"], clusters=["c"]))
    assert r[("between", "s", "~1", "")].origin == "default:random_coefficient_means"
    assert r[("between", "y", "~1", "")].free > 0


def test_growth_means_and_indicator_intercepts():
    r = rows(Model.from_mplus("i s | y1@0 y2@1 y3@2;"))
    assert r[("within", "i", "~1", "")].origin == "default:growth_factor_means"
    assert ("within", "y1", "~1", "") not in r  # outcome intercepts fixed at 0
    assert r[("within", "s", "=~", "y3")].value == 2.0


def test_thresholds_at_the_top_level():
    model = Model.from_mplus("%WITHIN%\n u ON x;", within=["x"], categorical=["u"],
                             clusters=["c"])
    from jaxsem.partable import build_partable
    table = build_partable(model.parsed, model.roles, n_categories={"u": 4})
    thresholds = [r for r in table.rows if r.op == "|"]
    assert [(r.block, r.rhs) for r in thresholds] == [("between", "t1"), ("between", "t2"),
                                                      ("between", "t3")]
    assert not [r for r in table.rows if r.op == "~1" and r.lhs == "u"]


@pytest.mark.parametrize("model", [
    Model.from_lavaan("f1 =~ y1 + y2\n f2 =~ y3 + y4\n f3 =~ y5 + y6\n f3 ~ f1"),
    Model.from_mplus("f1 BY y1 y2; f2 BY y3 y4; f3 BY y5 y6; f3 ON f1;")])
def test_exogenous_latent_covariances(model):
    r = rows(model)
    assert r[("within", "f1", "~~", "f2")].origin == "default:exogenous_latent_covariances"
    assert ("within", "f1", "~~", "f3") not in r and ("within", "f3", "~~", "f1") not in r


def test_zero_variance_drops_default_covariances():
    r = rows(Model.from_mplus("f1 BY y1 y2; f2 BY y3 y4; f2@0;"))
    assert ("within", "f1", "~~", "f2") not in r


def test_growth_factor_covariances():
    r = rows(Model.from_mplus("i s | y1@0 y2@1 y3@2; i s ON x;"))
    row = r[("within", "i", "~~", "s")]
    assert row.kind == "residual_covariance" and row.free > 0


@pytest.mark.parametrize("model", [
    Model.from_lavaan("y1 + y2 ~ x\n y3 ~ y1"),
    Model.from_mplus("y1 y2 ON x; y3 ON y1;")])
def test_final_outcome_covariances(model):
    r = rows(model)
    key = ("within", "y2", "~~", "y3") if ("within", "y2", "~~", "y3") in r else (
        "within", "y3", "~~", "y2")
    assert r[key].origin == "default:final_outcome_covariances"
    assert not any(k[1:] in (("y1", "~~", "y2"), ("y2", "~~", "y1")) for k in r)


def test_exogenous_observed_covariances_mplus_only():
    mplus = rows(Model.from_mplus("%WITHIN%\n y ON x1 x2;", clusters=["c"]))
    assert mplus[("within", "x1", "~~", "x2")].origin == (
        "default:exogenous_observed_covariances")
    assert mplus[("between", "x1", "~~", "x2")].free > 0
    lavaan = rows(Model.from_lavaan("level: 1\n y ~ x1 + x2\n level: 2\n y ~~ y"))
    assert not any(k[2] == "~~" and {"x1", "x2"} == {k[1], k[3]} for k in lavaan)


def test_user_rows_win_over_defaults():
    r = rows(Model.from_mplus("f BY y1-y3; y1@0.5; [y2@0]; f*2;"))
    assert r[("within", "y1", "~~", "y1")].value == 0.5
    assert r[("within", "y2", "~1", "")].value == 0.0
    assert r[("within", "f", "~~", "f")].start == 2.0
    assert r[("within", "f", "~~", "f")].origin == "user"


# ----------------------------------------------------------------------------- roles

def test_between_levels_alone_make_a_between_variable():
    """Roles.between_levels counts as BETWEEN (the Roles docstring): the variable has no
    within part and is a covariate of its level only, as with between=[...]."""
    text = "%WITHIN%\n y ON x;\n %BETWEEN%\n y ON w;"
    both = Model.from_mplus(text, clusters="c", within=["x"], between=["w"],
                            between_levels={"w": 2})
    alone = Model.from_mplus(text, clusters="c", within=["x"], between_levels={"w": 2})
    # W: y ON x, y resid var; B: y ON w, y intercept, y resid var = 5
    assert both.partable.n_free == alone.partable.n_free == 5
    assert alone.partable.variable_levels["w"] == frozenset({2})
    three = Model.from_mplus("%WITHIN%\n y ON x;\n %BETWEEN class%\n y ON t;\n"
                             " %BETWEEN school%\n y ON s;", clusters=["school", "class"],
                             within=["x"], between_levels={"t": 2, "s": 3})
    # L1: y ON x, resid var (2); L2: y ON t, resid var (2); L3: y ON s, intercept,
    # resid var (3) = 7
    assert three.partable.n_free == 7
    assert three.partable.block("class").covariates == ("t",)


# ----------------------------------------------------------------------------- crossed

CROSSED = "%WITHIN%\n y ON x;\n %BETWEEN hood%\n y ON w;\n %BETWEEN school%\n y ON z;"


def crossed(text=CROSSED, **roles):
    roles = {"within": ["x"], "between_levels": {"w": 2, "z": 3}, **roles}
    return Model.from_mplus(text, clusters=["school", "hood"], crossed=True, **roles)


def test_crossed_between_levels_name_the_crossed_factor():
    """between_levels 2 / 3 name the crossed factor of the last / first cluster variable
    (jaxsem.data's meaning); both crossed blocks are level 2."""
    table = crossed().partable
    assert table.n_levels == 2 and table.variable_levels["z"] == frozenset({2})
    assert table.block("hood").covariates == ("w",)
    assert table.block("school").covariates == ("z",)
    assert "z" not in table.block("hood").observed + table.block("hood").covariates


def test_crossed_between_variable_used_at_the_other_factor_is_an_error():
    text = CROSSED.replace("y ON w;", "y ON w z;")
    with pytest.raises(ModelSyntaxError) as info:
        crossed(text).partable
    assert info.value.line == 4
    assert "'z' is a BETWEEN variable of the school clusters" in str(info.value)
    assert "%BETWEEN school%" in str(info.value)


def test_crossed_intercept_in_one_crossed_block():
    """A mean of the sum of two crossed parts is identified once: y's intercept is free
    in the block of the first cluster variable only (7 parameters, not 8)."""
    r = rows(crossed())
    assert r[("school", "y", "~1", "")].origin == "default:intercepts"
    assert ("hood", "y", "~1", "") not in r
    assert crossed().partable.n_free == 7
    # written by the user in the other block: that one, and no default beside it
    r = rows(crossed(CROSSED.replace("y ON w;", "y ON w; [y];")))
    assert r[("hood", "y", "~1", "")].origin == "user"
    assert ("school", "y", "~1", "") not in r


def test_crossed_thresholds_in_one_crossed_block():
    from jaxsem.partable import build_partable
    model = crossed(CROSSED.replace("y ", "u "), categorical=["u"])
    table = build_partable(model.parsed, model.roles, n_categories={"u": 3})
    assert [(r.block, r.rhs) for r in table.rows if r.op == "|"] == [
        ("school", "t1"), ("school", "t2")]
