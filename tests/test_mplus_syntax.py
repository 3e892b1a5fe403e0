"""Tests for the Mplus MODEL parser (jaxsem.syntax.mplus)."""
from __future__ import annotations

import pytest

from jaxsem.errors import ModelSyntaxError
from jaxsem.syntax.mplus import parse_mplus_model
from jaxsem.syntax.statements import Modifier, SourceLoc, Term


def triples(text: str, **kwargs) -> list[tuple[str, str, str]]:
    """(lhs, op, rhs) of every term, in order."""
    return [(t.lhs, t.op, t.rhs) for t in parse_mplus_model(text, **kwargs).terms]


def only_term(text: str) -> Term:
    terms = parse_mplus_model(text).terms
    assert len(terms) == 1
    return terms[0]


# -- statement forms -------------------------------------------------------------------

def test_by_one_factor_in_source_order():
    assert triples("f BY y1 y2 y3;") == [("f", "=~", "y1"), ("f", "=~", "y2"), ("f", "=~", "y3")]


def test_by_several_factors_each_take_all_indicators():
    assert triples("f1 f2 BY y1-y2;") == [("f1", "=~", "y1"), ("f1", "=~", "y2"),
                                          ("f2", "=~", "y1"), ("f2", "=~", "y2")]


def test_names_are_lower_case_and_keywords_case_insensitive():
    assert triples("F by Y1 Y2;\nY1 On X;") == [("f", "=~", "y1"), ("f", "=~", "y2"),
                                               ("y1", "~", "x")]


def test_ranges_increasing_decreasing_and_zero_padded():
    assert triples("f BY y3-y1;") == [("f", "=~", "y3"), ("f", "=~", "y2"), ("f", "=~", "y1")]
    assert [t.rhs for t in parse_mplus_model("f BY y08-y10;").terms] == ["y08", "y09", "y10"]
    assert [t.rhs for t in parse_mplus_model("f BY y8-y10;").terms] == ["y8", "y9", "y10"]


def test_range_without_numbers_uses_names_list():
    assert triples("f BY a-c;", names=["id", "A", "b", "C", "d"]) == [
        ("f", "=~", "a"), ("f", "=~", "b"), ("f", "=~", "c")]


def test_on_all_pairs():
    assert triples("y1 y2 ON x1 x2;") == [("y1", "~", "x1"), ("y1", "~", "x2"),
                                          ("y2", "~", "x1"), ("y2", "~", "x2")]


def test_with_pairs_and_all_covariances_shorthand():
    assert triples("y1 WITH y2 y3;") == [("y1", "~~", "y2"), ("y1", "~~", "y3")]
    assert triples("y1 y2 WITH y3;") == [("y1", "~~", "y3"), ("y2", "~~", "y3")]
    assert triples("y1-y3 WITH y1-y3;") == [("y1", "~~", "y2"), ("y1", "~~", "y3"),
                                            ("y2", "~~", "y3")]


def test_pwith_and_pon_pair_by_position():
    assert triples("y1 y2 y3 PWITH z1 z2 z3;") == [
        ("y1", "~~", "z1"), ("y2", "~~", "z2"), ("y3", "~~", "z3")]
    assert triples("y1-y2 PON x1-x2;") == [("y1", "~", "x1"), ("y2", "~", "x2")]


def test_variances_with_modifiers():
    terms = parse_mplus_model("y1; f; y2@0; y3*2; z1-z2@1;").terms
    assert [(t.lhs, t.op, t.rhs) for t in terms] == [
        ("y1", "~~", "y1"), ("f", "~~", "f"), ("y2", "~~", "y2"), ("y3", "~~", "y3"),
        ("z1", "~~", "z1"), ("z2", "~~", "z2")]
    assert terms[0].mod == Modifier()
    assert terms[2].mod == Modifier(fixed=0.0)
    assert terms[3].mod == Modifier(free=True, start=2.0)
    assert terms[4].mod == terms[5].mod == Modifier(fixed=1.0)


def test_means_and_thresholds():
    terms = parse_mplus_model("[y1]; [y2-y3@0]; [f*0.5]; [u$1]; [u$2@0.5]; [y4 v$1];").terms
    assert [(t.lhs, t.op, t.rhs) for t in terms] == [
        ("y1", "~1", ""), ("y2", "~1", ""), ("y3", "~1", ""), ("f", "~1", ""),
        ("u", "|", "t1"), ("u", "|", "t2"), ("y4", "~1", ""), ("v", "|", "t1")]
    assert terms[1].mod.fixed == 0.0
    assert terms[3].mod == Modifier(free=True, start=0.5)
    assert terms[5].mod.fixed == 0.5


def test_threshold_range_with_one_label():
    terms = parse_mplus_model("[u1$1-u3$1] (t);").terms
    assert [(t.lhs, t.rhs, t.mod.label) for t in terms] == [
        ("u1", "t1", "t"), ("u2", "t1", "t"), ("u3", "t1", "t")]


def test_variances_and_means_in_one_statement():
    assert triples("y1-y2 [y1-y2@0];") == [("y1", "~~", "y1"), ("y2", "~~", "y2"),
                                         ("y1", "~1", ""), ("y2", "~1", "")]


@pytest.mark.parametrize("token, modifier", [
    ("y1@1", Modifier(fixed=1.0)),
    ("y1@.5", Modifier(fixed=0.5)),
    ("y1@-0.3", Modifier(fixed=-0.3)),
    ("y1@1e-2", Modifier(fixed=0.01)),
    ("y1*", Modifier(free=True)),
    ("y1*0.8", Modifier(free=True, start=0.8)),
    ("y1*-1.5E1", Modifier(free=True, start=-15.0)),
])
def test_modifier_values(token, modifier):
    assert parse_mplus_model(f"f BY {token} y2;").terms[0].mod == modifier


def test_star_on_first_indicator_frees_it():
    first, second = parse_mplus_model("f BY y1* y2;").terms
    assert first.mod == Modifier(free=True) and second.mod == Modifier()


def test_comments_multiline_statements_and_several_per_line():
    text = "! a model\nf BY y1   ! first\n  y2;  y1 ON x; [y1];\n"
    assert triples(text) == [("f", "=~", "y1"), ("f", "=~", "y2"), ("y1", "~", "x"),
                             ("y1", "~1", "")]


def test_source_locations_point_at_the_parameter_token():
    terms = parse_mplus_model("f BY y1\n   y2;").terms
    assert terms[0].loc == SourceLoc(1, 6) and terms[1].loc == SourceLoc(2, 4)


def test_label_applies_to_every_parameter_on_its_line_only():
    terms = parse_mplus_model("f BY y1\n y2 y3 (a);").terms
    assert [t.mod.label for t in terms] == [None, "a", "a"]


def test_numeric_label_stored_as_string():
    assert only_term("y1 (1);").mod.label == "1"


def test_label_list_and_label_range():
    terms = parse_mplus_model("f BY y1-y3 (A b c);\ny1 ON x1-x2 (p1-p2);").terms
    assert [t.mod.label for t in terms] == ["a", "b", "c", "p1", "p2"]


def test_label_with_several_factors_on_one_line():
    terms = parse_mplus_model("f1 f2 BY y1\n y2 (a);").terms
    assert [(t.lhs, t.rhs, t.mod.label) for t in terms] == [
        ("f1", "y1", None), ("f1", "y2", "a"), ("f2", "y1", None), ("f2", "y2", "a")]


def test_label_combines_with_modifier():
    assert only_term("y ON x*0.3 (b);").mod == Modifier(free=True, start=0.3, label="b")


def test_mean_label_after_brackets():
    terms = parse_mplus_model("[y1 y2] (m);").terms
    assert [t.mod.label for t in terms] == ["m", "m"]


def test_random_slope_loading_and_variance():
    assert only_term("s | y ON x;") == Term("y", "~", "x", "within", loc=SourceLoc(1, 10),
                                            random="s")
    assert only_term("s | f BY y;").random == "s"
    term = only_term("logv | y2;")
    assert (term.lhs, term.op, term.rhs, term.random) == ("y2", "~~", "y2", "logv")


def test_random_slope_between_level():
    term = only_term("%BETWEEN%\n s | y ON x;")
    assert (term.level, term.random) == ("between", "s")


def test_growth_linear_with_free_time_score():
    model = parse_mplus_model("i s | y1@0 y2@1 y3*;")
    assert model.growth_factors == {"i", "s"}
    assert [(t.lhs, t.rhs, t.mod, t.origin) for t in model.terms] == [
        ("i", "y1", Modifier(fixed=1.0), "growth"), ("i", "y2", Modifier(fixed=1.0), "growth"),
        ("i", "y3", Modifier(fixed=1.0), "growth"), ("s", "y1", Modifier(fixed=0.0), "growth"),
        ("s", "y2", Modifier(fixed=1.0), "growth"), ("s", "y3", Modifier(free=True), "growth")]


def test_growth_quadratic_squares_time_scores():
    terms = parse_mplus_model("i s q | y1@0 y2@1 y3@2;").terms
    assert [(t.lhs, t.rhs, t.mod.fixed) for t in terms if t.lhs == "q"] == [
        ("q", "y1", 0.0), ("q", "y2", 1.0), ("q", "y3", 4.0)]
    assert all(t.op == "=~" and t.origin == "growth" for t in terms)


def test_growth_categorical_outcomes():
    terms = parse_mplus_model("i s | u1@0 u2@1;").terms
    assert [(t.lhs, t.rhs, t.mod.fixed) for t in terms] == [
        ("i", "u1", 1.0), ("i", "u2", 1.0), ("s", "u1", 0.0), ("s", "u2", 1.0)]


def test_overall_label_is_within():
    model = parse_mplus_model("%OVERALL%\ny ON x;")
    assert model.levels == ["within"] and model.terms[0].level == "within"


def test_statements_before_any_label_are_within():
    model = parse_mplus_model("y ON x;\n%BETWEEN%\ny ON w;")
    assert model.levels == ["within", "between"]
    assert [t.level for t in model.terms] == ["within", "between"]


def test_empty_model():
    model = parse_mplus_model("  ! nothing here\n")
    assert model.terms == [] and model.levels == [] and model.dialect == "mplus"


# -- User's Guide chapter 9 style examples ----------------------------------------------

def level_triples(text: str) -> list[tuple[str, str, str, str, str | None]]:
    return [(t.level, t.lhs, t.op, t.rhs, t.random) for t in parse_mplus_model(text).terms]


def test_ex9_1_random_intercept_regression():
    text = "%WITHIN%\n y ON x;\n %BETWEEN%\n y ON w xm;"
    assert level_triples(text) == [("within", "y", "~", "x", None),
                                   ("between", "y", "~", "w", None),
                                   ("between", "y", "~", "xm", None)]


def test_ex9_2_random_slope():
    text = "%WITHIN%\n s | y ON x;\n %BETWEEN%\n y s ON w xm;\n y WITH s;"
    assert level_triples(text) == [
        ("within", "y", "~", "x", "s"),
        ("between", "y", "~", "w", None), ("between", "y", "~", "xm", None),
        ("between", "s", "~", "w", None), ("between", "s", "~", "xm", None),
        ("between", "y", "~~", "s", None)]


def test_ex9_6_two_level_cfa():
    text = "%WITHIN%\n fw BY y1-y4;\n fw ON x1 x2;\n %BETWEEN%\n fb BY y1-y4;\n y1-y4@0;\n fb ON w;"
    terms = parse_mplus_model(text).terms
    assert [(t.level, t.lhs, t.op, t.rhs) for t in terms] == (
        [("within", "fw", "=~", f"y{k}") for k in range(1, 5)]
        + [("within", "fw", "~", "x1"), ("within", "fw", "~", "x2")]
        + [("between", "fb", "=~", f"y{k}") for k in range(1, 5)]
        + [("between", f"y{k}", "~~", f"y{k}") for k in range(1, 5)]
        + [("between", "fb", "~", "w")])
    assert all(t.mod == Modifier(fixed=0.0) for t in terms if t.op == "~~")


def test_ex9_12_style_two_level_growth():
    text = ("%WITHIN%\n iw sw | y1@0 y2@1 y3@2 y4@3;\n iw sw ON x;\n %BETWEEN%\n"
            " ib sb | y1@0 y2@1 y3@2 y4@3;\n ib sb ON w;")
    model = parse_mplus_model(text)
    assert model.growth_factors == {"iw", "sw", "ib", "sb"}
    assert model.levels == ["within", "between"]
    loadings = [(t.level, t.lhs, t.rhs, t.mod.fixed) for t in model.terms if t.op == "=~"]
    assert loadings == (
        [("within", "iw", f"y{k}", 1.0) for k in range(1, 5)]
        + [("within", "sw", f"y{k}", float(k - 1)) for k in range(1, 5)]
        + [("between", "ib", f"y{k}", 1.0) for k in range(1, 5)]
        + [("between", "sb", f"y{k}", float(k - 1)) for k in range(1, 5)])
    assert [(t.level, t.lhs, t.rhs) for t in model.terms if t.op == "~"] == [
        ("within", "iw", "x"), ("within", "sw", "x"), ("between", "ib", "w"),
        ("between", "sb", "w")]


def test_three_level_random_slope():
    text = ("%WITHIN%\n y ON x;\n %BETWEEN class%\n s | y ON z2;\n %BETWEEN school%\n"
            " s ON w7;\n s@0;")
    model = parse_mplus_model(text)
    assert model.levels == ["within", "class", "school"]
    assert level_triples(text) == [("within", "y", "~", "x", None),
                                   ("class", "y", "~", "z2", "s"),
                                   ("school", "s", "~", "w7", None),
                                   ("school", "s", "~~", "s", None)]
    assert model.terms[-1].mod.fixed == 0.0


def test_labels_across_levels():
    text = "%WITHIN%\n fw BY y1\n y2 (1)\n y3 (2);\n %BETWEEN%\n fb BY y1\n y2 (1)\n y3 (2);"
    terms = parse_mplus_model(text).terms
    assert [(t.level, t.lhs, t.rhs, t.mod.label) for t in terms] == [
        ("within", "fw", "y1", None), ("within", "fw", "y2", "1"), ("within", "fw", "y3", "2"),
        ("between", "fb", "y1", None), ("between", "fb", "y2", "1"), ("between", "fb", "y3", "2")]


def test_random_loading_and_residual_variance():
    text = "%WITHIN%\n sigma | f BY y;\n f@1; y@0;\n logv | y2;\n %BETWEEN%\n [sigma@1];"
    terms = parse_mplus_model(text).terms
    assert [(t.level, t.lhs, t.op, t.rhs, t.random, t.mod.fixed) for t in terms] == [
        ("within", "f", "=~", "y", "sigma", None), ("within", "f", "~~", "f", None, 1.0),
        ("within", "y", "~~", "y", None, 0.0), ("within", "y2", "~~", "y2", "logv", None),
        ("between", "sigma", "~1", "", None, 1.0)]


# -- errors ------------------------------------------------------------------------------

BAD_INPUTS = [
    # (text, line, column, words in the message)
    ("f BYY y1 y2;", 1, 3, "unknown keyword"),
    ("y ON x ];", 1, 8, "no matching"),
    ("y ON x , z;", 1, 8, "unexpected ','"),
    ("y ON x = z;", 1, 8, "unexpected '='"),
    ("y ON x;\nz ON w", 2, 7, "missing ';'"),
    ("y ON x\nz ON w;", 1, 7, "missing ';'"),
    ("y ON x\n%BETWEEN%\nz ON w;", 1, 7, "missing ';' before %BETWEEN%"),
    ("[y1 y2;", 1, 1, "'[' is not closed"),
    ("f BY y1 (a;", 1, 9, "'(' is not closed"),
    ("[u$];", 1, 3, "'$' needs a threshold number"),
    ("u$1;", 1, 1, "thresholds go in brackets"),
    ("y1@;", 1, 3, "'@' needs a number"),
    ("f BY y1@ y2;", 1, 8, "'@' needs a number"),
    ("f BY y1-x3;", 1, 6, "mixes the prefixes"),
    ("f BY a-c;", 1, 6, "numeric suffixes or the NAMES list"),
    ("f BY;", 1, 5, "BY has no indicators"),
    ("y ON;", 1, 5, "ON has no predictors"),
    ("y1 WITH;", 1, 8, "both sides"),
    ("WITH y2;", 1, 1, "both sides"),
    ("%WITHN%\ny ON x;", 1, 1, "unknown level label"),
    ("%BETWEEN\ny ON x;", 1, 1, "no closing '%'"),
    ("f BY y1 ();", 1, 9, "empty label"),
    ("y1 y2 y3 PWITH z1 z2;", 1, 10, "left side has 3 and the right side 2"),
    ("f BY y1 y2 (a b c);", 1, 12, "3 labels but its line has 2 parameters"),
    ("s | y ON x (a);", 1, 12, "label"),
    ("s | y1 y2 ON x;", 1, 8, "one variable on each side"),
    ("s | y ON x1 x2;", 1, 13, "one variable on each side"),
    ("s | y ON x@1;", 1, 11, "'@' cannot appear"),
    ("s | y WITH x;", 1, 7, "cannot have a random coefficient"),
    ("%c#1%\ny ON x;", 1, 1, "mixture class labels are not supported yet"),
    ("s | y ON y&1;", 1, 11, "not supported yet"),
    ("f1 f2 | f1 XWITH f2;", 1, 12, "not supported yet"),
    ("i s | y1-y4 AT t1-t4;", 1, 13, "not supported yet"),
    ("f BY y1-y4 (*1);", 1, 13, "not supported yet"),
    ("i s | y1@0 y2 y3@2;", 1, 12, "needs a time score"),
    ("i s q | y1@0 y2@1 y3*;", 1, 21, "need a linear growth model"),
    ("f@1 BY y1;", 1, 2, "cannot appear on the left of BY"),
    ("f BY y1 (a) y2;", 1, 13, "follows the label"),
    ("f BY y1\n(a);", 2, 1, "no parameter before it"),
    ("y ON x (a) (b);", 1, 12, "one label group per line"),
    ("f BY y1 ON x;", 1, 9, "one keyword"),
    ("y1@1*2;", 1, 5, "only one '@' or '*'"),
    ("[y1 [y2]];", 1, 1, "is not closed before"),
    ("y ON 1;", 1, 6, "unexpected number"),
    ("f BY y1-;", 1, 8, "'-' must be followed"),
    ("[u1$1-u3$2];", 1, 7, "same threshold"),
    ("| y1@0 y2@1;", 1, 1, "random coefficient before it"),
    ("[];", 1, 1, "empty brackets"),
]


@pytest.mark.parametrize("text, line, col, words", BAD_INPUTS)
def test_bad_input_is_reported_with_position_and_caret(text, line, col, words):
    with pytest.raises(ModelSyntaxError) as caught:
        parse_mplus_model(text)
    error = caught.value
    message = str(error)
    assert (error.line, error.col) == (line, col), message
    assert f"line {line}, column {col}" in message
    assert words in message
    assert error.hint
    shown, caret = message.splitlines()[1:3]
    assert shown.strip() == text.splitlines()[line - 1].strip()
    assert caret.strip() == "^" and caret.index("^") == 4 + col - 1


def test_level_typo_suggests_the_right_label():
    with pytest.raises(ModelSyntaxError, match="Did you mean %WITHIN%"):
        parse_mplus_model("%WITHN%\ny ON x;")


def test_range_name_missing_from_names_list():
    with pytest.raises(ModelSyntaxError, match="'z' is not in the NAMES list"):
        parse_mplus_model("f BY a-z;", names=["a", "b"])


def test_keyword_lookalike_in_names_list_is_a_variable():
    assert triples("f byy;", names=["f", "byy"]) == [("f", "~~", "f"), ("byy", "~~", "byy")]
