"""lavaan-style syntax -> Terms (before defaults)."""
import pytest

from jaxsem.errors import ModelSyntaxError
from jaxsem.priors import Prior
from jaxsem.syntax.lavaan import parse_lavaan_model


def terms(text):
    return [(t.level, t.lhs, t.op, t.rhs) for t in parse_lavaan_model(text).terms]


def test_operators_and_several_lhs():
    assert terms("f =~ y1 + y2\n y1 + y2 ~ x\n y1 ~~ y2\n y1 ~ 1") == [
        ("within", "f", "=~", "y1"), ("within", "f", "=~", "y2"),
        ("within", "y1", "~", "x"), ("within", "y2", "~", "x"),
        ("within", "y1", "~~", "y2"), ("within", "y1", "~1", "")]


def test_modifiers():
    model = parse_lavaan_model('f =~ NA*y1 + a*y2 + 0.5*y3 + start(0.8)*y4 + '
                               'label("b")*y5 + equal("a")*y6 + -1*y7\n'
                               'y ~ prior("normal(0, 10)")*x')
    mods = {t.rhs: t.mod for t in model.terms}
    assert mods["y1"].free and mods["y2"].label == "a" and mods["y3"].fixed == 0.5
    assert mods["y4"].start == 0.8 and mods["y5"].label == "b" and mods["y6"].label == "a"
    assert mods["y7"].fixed == -1.0
    assert mods["x"].prior == Prior("normal", (0.0, 100.0))


def test_intercepts_with_modifiers_and_thresholds():
    model = parse_lavaan_model("y ~ 0*1 + x\n u | t1 + 0.5*t2")
    assert [(t.lhs, t.op, t.rhs, t.mod.fixed) for t in model.terms] == [
        ("y", "~1", "", 0.0), ("y", "~", "x", None), ("u", "|", "t1", None),
        ("u", "|", "t2", 0.5)]


def test_levels_comments_separators_and_continuation():
    text = """# a comment
    level: 1
        fw =~ y1 +
              y2 + y3   ! Mplus-style comment
        fw ~ x1; fw ~ x2
    level: 2
        fb =~ y1
            + y2 + y3
    """
    model = parse_lavaan_model(text)
    assert model.levels == ["within", "between"]
    assert [t.rhs for t in model.terms if t.lhs == "fw"] == ["y1", "y2", "y3", "x1", "x2"]
    assert [t.rhs for t in model.terms if t.level == "between"] == ["y1", "y2", "y3"]
    assert model.terms[1].loc.line == 4


def test_named_and_third_levels():
    assert parse_lavaan_model("level: within\n y ~ x\nlevel: cluster\n y ~ w").levels == [
        "within", "between"]
    assert parse_lavaan_model("level: 1\n y ~ x\nlevel: 2\n y ~~ y\nlevel: 3\n y ~~ y"
                              ).levels == ["within", "between", "level3"]


def test_definitions_and_constraints():
    model = parse_lavaan_model("y ~ a*x\n m ~ b*x\n ind := a*b\n a == 2*b\n b > 0")
    assert model.definitions[0].name == "ind"
    assert model.definitions[0].expr.names() == {"a", "b"}
    assert [c.op for c in model.constraints] == ["==", ">"]


def test_random_coefficient_extension():
    model = parse_lavaan_model("level: 1\n s | y ~ x\n r | f =~ y2\n logv | y ~~ y")
    assert [(t.lhs, t.op, t.rhs, t.random) for t in model.terms] == [
        ("y", "~", "x", "s"), ("f", "=~", "y2", "r"), ("y", "~~", "y", "logv")]


def test_names_are_case_sensitive():
    assert terms("F =~ Y1 + y1") == [("within", "F", "=~", "Y1"), ("within", "F", "=~", "y1")]


@pytest.mark.parametrize("text, fragment, line, col", [
    ("f =~ y1 +", "expected a variable name", 1, 10),
    ("f =~ y1 y2", "expected '+'", 1, 9),
    ("f => y1", "unexpected character", 1, 3),
    ("y ~ 2", "must be 1", 1, 5),
    ("f =~ c(1, 2)*y1", "not supported yet", 1, 9),
    ("f =~ foo(1)*y1", "unknown modifier", 1, 6),
    ("y <~ x", "composites", 1, 3),
    ("group: 1\n y ~ x", "not supported yet", 1, 1),
    ("level: 2\n y ~ x", "first level block", 1, 8),
    ("level: 1\n y ~ x\nlevel: 1\n y ~ w", "appears twice", 3, 8),
    ("u | x1", "thresholds are written t1", 1, 5),
    ("y ~ 0.5*NA*x", "both fixed", 1, 5),
    ("s | y ~ a*x", "takes no label", 1, 11),
    ("f =~ 1", "only goes with '~'", 1, 6),
    ('y ~ prior("cauchy(0, 1)")*x', "", 1, 11),
    ("ind := a*", "", 1, 10),
])
def test_syntax_errors_point_at_the_spot(text, fragment, line, col):
    with pytest.raises(ModelSyntaxError) as info:
        parse_lavaan_model(text)
    message = str(info.value)
    assert fragment in message
    assert (info.value.line, info.value.col) == (line, col)
    assert "^" in message
