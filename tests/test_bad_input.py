"""Bad input from the user's side: each case is a JaxsemError whose message names the
place (line/column with a caret, a variable, a label, a cluster) and says what to do.

Module-level tests (test_mplus_syntax, test_lavaan_syntax, test_data, test_priors,
test_expressions) hold many more; this file goes through the public entry points
(Model, Model.prepare) as a user would.
"""
import numpy as np
import pandas as pd
import pytest

from jaxsem import JaxsemError, Model

RNG = np.random.default_rng(0)
N_CLUSTERS, SIZE = 6, 5
FRAME = pd.DataFrame({
    "y1": RNG.normal(size=N_CLUSTERS * SIZE), "y2": RNG.normal(size=N_CLUSTERS * SIZE),
    "y3": RNG.normal(size=N_CLUSTERS * SIZE), "x": RNG.normal(size=N_CLUSTERS * SIZE),
    "w": np.repeat(RNG.normal(size=N_CLUSTERS), SIZE),
    "u": RNG.integers(0, 3, size=N_CLUSTERS * SIZE).astype(float),
    "cl": np.repeat(np.arange(N_CLUSTERS), SIZE)})


def _with(**columns):
    frame = FRAME.copy()
    for name, values in columns.items():
        frame[name] = values
    return frame


def model_error(text, **roles):
    return lambda: Model(text, **roles).partable


def prepare_error(text, frame=FRAME, prepare=None, **roles):
    return lambda: Model(text, **roles).prepare(frame, **(prepare or {}))


CASES = [
    # --- Mplus syntax (caret under the spot)
    ("mplus-missing-semicolon", model_error("f BY y1-y3\n y1 ON x;", dialect="mplus"),
     ["line 1", "^", ";"]),
    ("mplus-level-typo", model_error("%WITHN%\n y ON x;", dialect="mplus"),
     ["%WITHIN%", "^"]),
    ("mplus-unbalanced-bracket", model_error("[y1 y2;", dialect="mplus"), ["^", "]"]),
    ("mplus-at-without-number", model_error("y1@;", dialect="mplus"), ["^", "@"]),
    ("mplus-range-prefixes", model_error("f BY y1-x3;", dialect="mplus"), ["^", "y1-x3"]),
    ("mplus-label-on-random", model_error("%WITHIN%\n s | y ON x (a);", dialect="mplus",
                                          clusters=["cl"]), ["^", "label"]),
    ("mplus-label-list-length", model_error("f BY y1 y2 y3 (a b);", dialect="mplus"),
     ["^", "3", "2"]),
    # --- lavaan syntax
    ("lavaan-missing-plus", model_error("f =~ y1 y2"), ["line 1, column 9", "^", "'+'"]),
    ("lavaan-number-term", model_error("y ~ 2"), ["^", "must be 1"]),
    ("lavaan-level-order", model_error("level: 2\n y ~ x"), ["^", "within"]),
    ("lavaan-bad-definition", model_error("y ~ a*x\n ind := a*"), ["line 2", "^"]),
    # --- model semantics
    ("within-variable-at-between",
     model_error("%WITHIN%\n y1 ON x;\n %BETWEEN%\n y1 ON x;", within=["x"], clusters=["cl"]),
     ["'x' is a WITHIN variable", "line 4", "^", "remove 'x' from WITHIN"]),
    ("between-variable-at-within",
     model_error("%WITHIN%\n y1 ON w;\n %BETWEEN%\n y1 ON w;", between=["w"], clusters=["cl"]),
     ["'w' is a BETWEEN variable", "line 2", "%BETWEEN%"]),
    ("label-incompatible-kinds", model_error("f BY y1 y2 (a);\n y3 (a);", dialect="mplus"),
     ["label 'a'", "loading", "variance", "MODEL CONSTRAINT"]),
    ("label-fixed-and-free", model_error("y1 ON x@1 (b);\n y2 ON x (b);", dialect="mplus"),
     ["label 'b'", "fixed", "free"]),
    ("random-slope-on-between-variable",
     model_error("%WITHIN%\n s | y1 ON w;", between=["w"], clusters=["cl"], dialect="mplus"),
     ["random slope 's'", "'w'", "WITHIN", "^"]),
    ("prior-impossible-arguments",
     model_error("y1 ON x (b);", dialect="mplus", priors={"b": "N(0, -1)"}),
     ["'b'", "variance", "> 0"]),
    ("prior-unknown-label", model_error("y1 ON x (b);", dialect="mplus", priors="c ~ N(0, 1);"),
     ["'c'", "no parameter has that label"]),
    ("prior-on-fixed-parameter",
     model_error("y1 ON x@1 (b);", dialect="mplus", priors={"b": "N(0, 1)"}),
     ["'b'", "fixed"]),
    ("negative-fixed-variance", model_error("f BY y1-y3; y2@-0.5;", dialect="mplus"),
     ["negative", "'y2'", "^"]),
    ("factor-scale-not-set", model_error("f BY y1* y2 y3;", dialect="mplus"),
     ["scale of factor 'f'", "f@1"]),
    ("single-indicator-factor", model_error("f BY y1; g BY y2 y3;", dialect="mplus"),
     ["single indicator", "'y1'", "not identified"]),
    ("factor-at-two-levels",
     model_error("%WITHIN%\n f BY y1-y3;\n %BETWEEN%\n f BY y1-y3;", clusters=["cl"]),
     ["factor 'f'", "two levels", "fw, fb"]),
    ("between-ambiguous-three-level",
     model_error("%WITHIN%\n y1;\n %BETWEEN%\n y1;", clusters=["school", "cl"]),
     ["ambiguous", "%BETWEEN"]),
    ("between-level-not-a-cluster",
     model_error("%WITHIN%\n y1;\n %BETWEEN school%\n y1;", clusters=["cl"]),
     ["school", "cluster variables are cl"]),
    ("random-without-cluster", model_error("s | y1 ON x;", dialect="mplus", within=["x"]),
     ["'s'", "cluster", "^"]),
    ("threshold-on-continuous", model_error("[y1$1];", dialect="mplus"),
     ["'y1'", "threshold", "CATEGORICAL"]),
    ("definition-unknown-label", model_error("y1 ~ a*x\n ind := a*c"),
     ["'c'", "not a parameter label", "^"]),
    ("new-never-defined",
     model_error("y1 ON x (a);", dialect="mplus", constraints="NEW(d);"),
     ["'d'", "never defined", "d = "]),
    ("constraint-unknown-function",
     model_error("y1 ON x (a);", dialect="mplus", constraints="NEW(d); d = foo(a);"),
     ["foo", "^"]),
    ("empty-model", model_error("   "), ["empty"]),
    ("unknown-dialect", model_error("y1 ~ x", dialect="stata"), ["'stata'", "lavaan"]),
    # --- data against the model
    ("unknown-variable", prepare_error("y1 ON xx;", prepare={}, dialect="mplus"),
     ["'xx'", "not a variable in the data", "^", "x"]),
    ("between-variable-varies-within",
     prepare_error("%WITHIN%\n y1 ON x;\n %BETWEEN%\n y1 ON y2;", between=["y2"],
                   within=["x"], clusters=["cl"]),
     ["'y2'", "varies within", "cluster"]),
    ("cluster-with-missing-values",
     prepare_error("%WITHIN%\n y1 ON x;", frame=_with(cl=[np.nan] + list(FRAME.cl[1:])),
                   within=["x"], clusters=["cl"]),
     ["'cl'", "missing", "row"]),
    ("categorical-single-category",
     prepare_error("u ON x;", frame=_with(u=np.ones(len(FRAME))), categorical=["u"],
                   dialect="mplus"),
     ["'u'", "single observed category", "Drop"]),
    ("categorical-non-integer",
     prepare_error("u ON x;", frame=_with(u=FRAME.u + 0.5), categorical=["u"],
                   dialect="mplus"),
     ["'u'", "integer"]),
    ("two-level-without-cluster",
     prepare_error("level: 1\n y1 ~ x\n level: 2\n y1 ~ w"), ["2 levels", "cluster="]),
    ("within-and-between",
     prepare_error("%WITHIN%\n y1 ON x;", within=["x"], between=["x"], clusters=["cl"]),
     ["'x'", "WITHIN", "BETWEEN"]),
]


@pytest.mark.parametrize("name, action, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(name, action, fragments):
    with pytest.raises(JaxsemError) as info:
        action()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert "Traceback" not in message and "jax." not in message


def test_at_least_thirty_cases():
    assert len(CASES) >= 30
