"""Expressions (parse, evaluate, compile, print) and the MODEL CONSTRAINT section."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsem.errors import ModelError, ModelSyntaxError
from jaxsem.syntax.expressions import (
    Binary, Call, Name, Number, Unary, compile_expression, evaluate, expand_label_range,
    parse_expression, parse_model_constraint, split_statements, to_text)
from jaxsem.syntax.statements import SourceLoc


def assert_located(message: str, line: int, col: int) -> None:
    """The message names line and column and has a caret under that column."""
    assert f"line {line}, column {col}" in message
    carets = [row for row in message.splitlines() if row.strip() == "^"]
    assert carets and carets[0].index("^") == 4 + col - 1


# ----------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, value", [
    ("-2**2", -4.0),
    ("2**3**2", 512.0),
    ("2^3^2", 512.0),
    ("2**-1", 0.5),
    ("(-2)**2", 4.0),
    ("1 - 2 - 3", -4.0),
    ("8/4/2", 1.0),
    ("2*3 + 4", 10.0),
    ("2*(3 + 4)", 14.0),
    ("-(1 + 2)*3", -9.0),
    ("--3", 3.0),
    ("+3", 3.0),
    (".5 + 1e-3", 0.501),
    ("1.5E2 + 1.", 151.0),
    ("EXP(0) + Log(1)", 1.0),
    ("log10(100)", 2.0),
    ("abs(-3)", 3.0),
    ("sqrt(16)**.5", 2.0),
    ("ATAN(1)*4", math.pi),
    ("asin(1) + acos(1)", math.pi / 2),
    ("sin(0) + cos(0) + tan(0)", 1.0),
])
def test_precedence_and_functions(text, value):
    assert float(evaluate(parse_expression(text), {})) == pytest.approx(value)


def test_tree_shape_and_names():
    expr = parse_expression("A*b + exp(C_1.x)")
    assert expr == Binary("+", Binary("*", Name("a"), Name("b")), Call("exp", Name("c_1.x")))
    assert expr.names() == {"a", "b", "c_1.x"}
    assert parse_expression("A*b", case_insensitive=False).names() == {"A", "b"}
    assert parse_expression("-a**2") == Unary("-", Binary("**", Name("a"), Number(2.0)))


def test_evaluate_numpy_arrays_broadcast():
    expr = parse_expression("a*b - c/2")
    env = {"a": np.array([1.0, 2.0]), "b": np.array([[3.0], [4.0]]), "c": 2.0}
    np.testing.assert_allclose(evaluate(expr, env), [[2.0, 5.0], [3.0, 7.0]])


def test_evaluate_jax_matches_numpy():
    expr = parse_expression("exp(a)*log(b) + sqrt(abs(c))**3 - a/b")
    env = {"a": 0.3, "b": 2.5, "c": -1.7}
    expected = evaluate(expr, env)
    got = evaluate(expr, {k: jnp.asarray(v) for k, v in env.items()}, jnp)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)


def test_compiled_expression_jit_and_grad_match_analytic():
    expr = parse_expression("a*b**2 + exp(c)/b")
    value = jax.jit(compile_expression(expr, ["c", "a", "b"]))
    theta = jnp.array([0.2, 1.5, 2.0])  # c, a, b
    c, a, b = 0.2, 1.5, 2.0
    assert float(value(theta)) == pytest.approx(a * b**2 + math.exp(c) / b, rel=1e-6)
    gradient = jax.grad(value)(theta)
    analytic = [math.exp(c) / b, b**2, 2 * a * b - math.exp(c) / b**2]
    np.testing.assert_allclose(np.asarray(gradient), analytic, rtol=1e-5)


def test_missing_label_is_a_model_error():
    with pytest.raises(ModelError, match="'q'"):
        compile_expression(parse_expression("a + q"), ["a"])
    with pytest.raises(ModelError, match="'q'"):
        evaluate(parse_expression("a + q"), {"a": 1.0})


@pytest.mark.parametrize("text", [
    "a", "1", "0.5", "1e+10", "1e-05", "a + b - c", "a - (b - c)", "a/(b*c)", "a/b*c",
    "-a**2", "(-a)**2", "a**b**c", "(a**b)**c", "a**-b", "-(a + b)", "-(-a)",
    "exp(-a)*log(b + 1)", "2**(a*b)", "(a + b)*(c - d)/e",
])
def test_round_trip(text):
    expr = parse_expression(text)
    assert to_text(expr) == text
    assert parse_expression(to_text(expr)) == expr


def test_to_text_normalises_spelling():
    assert to_text(parse_expression("EXP( A ) ^ 2")) == "exp(a)**2"
    assert to_text(parse_expression("((a))+(b*c)")) == "a + b*c"


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("text, line, col, words", [
    ("a +", 1, 4, ["ends too early", "expected one of", "a number"]),
    ("a b", 1, 3, ["unexpected 'b'", "'+'"]),
    ("2*)", 1, 3, ["unexpected ')'", "a parameter label"]),
    ("(a + b", 1, 7, ["ends too early", "add ')'"]),
    ("a $ b", 1, 3, ["unexpected character '$'"]),
    ("foo(a) + 1", 1, 1, ["unknown function 'foo'", "allowed functions: exp", "atan"]),
    ("   ", 1, 4, ["empty expression"]),
])
def test_expression_errors(text, line, col, words):
    with pytest.raises(ModelSyntaxError) as info:
        parse_expression(text)
    assert_located(str(info.value), line, col)
    for word in words:
        assert word in str(info.value)


def test_expression_error_positions_are_in_the_full_text():
    full = "x := a*b\nd := c +\n  pow(a)"
    start = full.index("c +")
    with pytest.raises(ModelSyntaxError) as info:
        parse_expression(full[start:], full_text=full, offset=start)
    assert_located(str(info.value), 3, 3)
    assert "d := c +" not in str(info.value) and "  pow(a)" in str(info.value)
    assert (info.value.line, info.value.col) == (3, 3)


# ----------------------------------------------------------------------------- statements

def test_split_statements_and_ranges():
    statements = split_statements("a = 1; ! c; d\n b > 0 ;", offset=10)
    assert [(s.text, s.offset) for s in statements] == [("a = 1", 10), ("b > 0", 25)]
    assert expand_label_range("d1", "D3") == ["d1", "d2", "d3"]
    assert expand_label_range("p08", "p10") == ["p08", "p09", "p10"]
    assert expand_label_range("a3", "a1") is None
    assert expand_label_range("a1", "b3") is None


MODEL = """MODEL CONSTRAINT:
  NEW(ind*0.5 d1-d3 Total);   ! new parameters
  ind = a*b;
  Total = ind + c;
  d1 = exp(a); d2 = d1**2; d3 = -d2;
  a = b*2;                    ! a is a model label: equality constraint
  0 = a - 2*b;
  a > 0; c < 1; b == c;
"""


def test_model_constraint_section():
    start = MODEL.index("\n") + 1
    section = parse_model_constraint(MODEL[start:], full_text=MODEL, offset=start)
    assert [name for name, _ in section.new_parameters] == ["ind", "d1", "d2", "d3", "total"]
    assert section.new_parameters[0][1] == SourceLoc(2, 7)
    assert section.starts == {"ind": 0.5}
    assert [(d.name, to_text(d.expr)) for d in section.definitions] == [
        ("ind", "a*b"), ("total", "ind + c"), ("d1", "exp(a)"), ("d2", "d1**2"), ("d3", "-d2")]
    assert section.definitions[0].loc == SourceLoc(3, 3)
    assert [(to_text(c.lhs), c.op, to_text(c.rhs)) for c in section.constraints] == [
        ("a", "==", "b*2"), ("0", "==", "a - 2*b"), ("a", ">", "0"), ("c", "<", "1"),
        ("b", "==", "c")]
    assert section.constraints[2].loc == SourceLoc(8, 5)


def test_model_constraint_with_known_labels_accepts_valid_text():
    section = parse_model_constraint("new(x, y*1); x = a/b; y = x*2; a > b;",
                                     model_labels=["A", "b"])
    assert section.starts == {"y": 1.0} and len(section.definitions) == 2


@pytest.mark.parametrize("text, line, col, words", [
    ("NEW(x);\nx = x + 1;", 2, 1, ["defined in terms of itself", "x -> x"]),
    ("NEW(x y); x = y; y = 2*x;", 1, 11, ["x -> y -> x"]),
    ("NEW(x); x = 1; x = 2;", 1, 16, ["defined twice"]),
    ("NEW(x x);", 1, 7, ["declared twice"]),
    ("NEW(d3-d1);", 1, 5, ["not a label range"]),
    ("NEW(1a);", 1, 5, ["expected a parameter name"]),
    ("NEW(a) b;", 1, 7, ["unexpected text after NEW"]),
    ("a = b = c;", 1, 7, ["only one comparison"]),
    ("a + b;", 1, 1, ["expected 'name = expression'"]),
    ("a <= b;", 1, 3, ["'<='", "use < or >"]),
    ("a > 0;\nb > 0", 2, 6, ["missing ';'"]),
    ("NEW(ind);\n  ind = a*q;", 2, 11, ["'q' is not a parameter label", "NEW(q);"]),
    ("z = a*b;", 1, 1, ["'z'", "NEW(z);"]),
    ("LOOP(x, 0, 1, 0.1);", 1, 1, ["LOOP", "not supported"]),
    ("a = foo(b);", 1, 5, ["unknown function 'foo'"]),
    ("= a;", 1, 1, ["needs a left-hand side"]),
])
def test_model_constraint_errors(text, line, col, words):
    with pytest.raises(ModelSyntaxError) as info:
        parse_model_constraint(text, model_labels=["a", "b", "c"])
    assert_located(str(info.value), line, col)
    for word in words:
        assert word in str(info.value)


def test_model_constraint_error_positions_are_in_the_full_text():
    full = "MODEL:\n  f BY y1-y3;\nMODEL CONSTRAINT:\n  NEW(x);\n  x = a *;\n"
    start = full.index("  NEW")
    with pytest.raises(ModelSyntaxError) as info:
        parse_model_constraint(full[start:], full_text=full, offset=start)
    assert_located(str(info.value), 5, 10)
