"""Whole Mplus input files (jaxsem.inp): the reconstructed User's Guide chapter 9 examples
in configs/mplus_ug, Fortran formats, the VARIABLE/ANALYSIS/OUTPUT options, and every
bad-input case with its line number. No model is fitted here.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from jaxsem import DataError, JaxsemError, ModelError, ModelSyntaxError
from jaxsem.inp import (FortranFormat, InpFile, parse_fortran_format, parse_inp,
                        read_fixed_data, read_inp)

ROOT = Path(__file__).resolve().parents[1]
UG = ROOT / "configs/mplus_ug"


# ----------------------------------------------------------------------------- examples

# Counts derived by hand from Mplus's documented defaults (UG ch. 17 defaults, ch. 9
# examples): free parameters of the model after the data are prepared (thresholds
# counted from the observed categories).
EXAMPLES = [
    pytest.param(  # W: y ON x (1), y resid var (1); B: y ON w xm (2), y intercept (1),
        # y resid var (1). x on WITHIN, w and the DEFINEd xm on BETWEEN: covariates.
        "ex9_1a", 6, id="ex9.1a"),
    pytest.param(  # x on neither list: decomposed (UG ex9.1b). W: y ON x, y resid var,
        # x var (3); B: y ON w x (2), y intercept, y resid var, x mean, x var (4).
        # NEW(betac) is a derived quantity, not a free parameter.
        "ex9_1b", 9, id="ex9.1b"),
    pytest.param(  # Mplus 8.7 output of UG ex9.2c prints 10 free parameters:
        # W: y resid var; B: y ON w x, s ON w x, y WITH s, intercepts y s, resid vars y s.
        "ex9_2c", 10, id="ex9.2c"),
    pytest.param(  # u binary (2 categories in the data). W: y ON x1 x2, u ON y x2 (4),
        # y resid var (1), u resid var fixed 1 (0); B: y ON w, u ON w y (3), y intercept
        # (1), u threshold (1), y resid var, u resid var (2).
        "ex9_3", 12, id="ex9.3"),
    pytest.param(  # W: 3 free loadings, fw ON x1 x2 (2), 4 resid vars, fw resid var (1);
        # B: 3 loadings, fb ON w (1), 4 intercepts, y1-y4@0 (0), fb resid var (1).
        "ex9_6", 19, id="ex9.6"),
    pytest.param(  # W: y1 ON x1 x2, y2 ON y1 x2 (4), 2 resid vars; B: y1 ON w, y2 ON y1
        # w (3), 2 intercepts, 2 resid vars.
        "ex9_8", 13, id="ex9.8"),
    pytest.param(  # W: 3 loadings, fw ON x (1), 4 resid vars, fw resid var (1) = 9;
        # B: 3 loadings, fb ON w (1), z ON fb w (2), intercepts y1-y4 z (5), resid vars
        # y1-y4 z (5), fb resid var (1) = 17.
        "ex9_9", 26, id="ex9.9"),
    pytest.param(  # W: 3 loadings, 4 resid vars, fw var (1) = 8; B: 3 loadings (labels
        # a1-a3, distinct), fb ON w (1), fb@0 (0), 4 intercepts, 4 resid vars = 12.
        "ex9_11", 20, id="ex9.11"),
    pytest.param(  # THREELEVEL. L1: y ON x, y resid var (2); L2: y ON w random (s2),
        # y resid var (1); L3: y ON z, s2 ON z (2), y WITH s2 (1), y and s2 intercepts
        # (2), y and s2 resid vars (2).
        "ex9_20", 10, id="ex9.20"),
    pytest.param(  # CROSSCLASSIFIED. W: y ON x, y resid var (2); level2a: y ON w, y
        # resid var (2); level2b: y ON z, y resid var (2); one intercept of y (1): the
        # mean of a sum of crossed parts is identified once. w on (level2a) and z on
        # (level2b) are covariates of their own crossed factor only = 7.
        "ex9_24", 7, id="ex9.24"),
]


@pytest.mark.parametrize("name, expected", EXAMPLES)
def test_example_free_parameters_match_mplus_defaults(name, expected):
    run = read_inp(UG / f"{name}.inp").to_analysis()
    analysis = run.prepare()
    assert analysis.partable.n_free == expected


@pytest.mark.parametrize("path", sorted(UG.glob("*.inp")), ids=lambda p: p.stem)
def test_every_example_parses_and_reads_its_data(path):
    inp = read_inp(path)
    assert inp.title.startswith("this is an example")
    frame = inp.read_data()
    assert list(frame.columns) == list(inp.names)
    assert len(frame) >= 400
    assert inp.model().partable.n_free > 0


def test_ex9_2c_example_is_the_mplus_output_model():
    ref = json.loads((ROOT / "tests/reference/mplus_ug/ex9_2c.json").read_text())
    inp = read_inp(UG / "ex9_2c.inp")
    assert " ".join(inp.names) == ref["variable"]["NAMES"]
    assert inp.roles.between == ("w",) and inp.roles.clusters == ("clus",)
    assert inp.analysis.type == ("TWOLEVEL", "RANDOM")
    assert inp.analysis.estimator == "mlr"   # Mplus prints MLR when ESTIMATOR is absent
    assert inp.model().partable.n_free == ref["number_of_free_parameters"]


def test_bayes_options_have_jaxsem_names():
    from jaxsem.bayes import BayesOptions
    run = read_inp(UG / "ex9_8.inp").to_analysis()
    assert run.estimator == "bayes"
    assert run.options == {"biterations": (20000, 1000), "bconvergence": 0.02, "chains": 4,
                           "thin": 2, "point": "mean"}
    BayesOptions(**run.options)
    for name in ("ex9_1a", "ex9_9", "ex9_11", "ex9_24"):
        options = read_inp(UG / f"{name}.inp").to_analysis().options
        assert set(options) <= set(BayesOptions.__dataclass_fields__)
        BayesOptions(**options)
    assert read_inp(UG / "ex9_24.inp").to_analysis().options["processors"] == 2  # PROCESSORS
    assert read_inp(UG / "ex9_6.inp").to_analysis().options == {}


def test_ex9_1a_define_missing_centering():
    inp = read_inp(UG / "ex9_1a.inp")
    assert inp.roles.usevariables == ("y", "x", "w", "xm")
    assert inp.roles.define == (("xm", "CLUSTER_MEAN(x)"),)
    assert inp.roles.missing == {"ALL": (-99.0,)}
    assert inp.roles.centering == {"x": "groupmean"}
    assert inp.analysis.processors == 2 and inp.output == {"TECH1": None, "TECH8": None}
    assert inp.plot == ("PLOT2",)
    run = inp.to_analysis()
    assert run.frame["y"].isna().sum() > 0 and (run.frame["y"] != -99).all()
    data = run.prepare().data
    assert "xm" in data.names and "centered x at its group means" in data.report


def test_ex9_6_fixed_format_with_implied_decimals_and_blanks():
    inp = read_inp(UG / "ex9_6.inp")
    assert isinstance(inp.data.format, FortranFormat) and inp.missing_blank
    frame = inp.read_data()
    first = (UG / "ex9_6.dat").read_text().splitlines()[0]
    assert frame.loc[0, "w"] == pytest.approx(int(first[49:56]) / 1000)
    assert frame.loc[0, "y1"] == pytest.approx(float(first[0:8]))
    assert frame[["y1", "y2", "y3", "y4"]].isna().sum().sum() > 0
    assert frame[["x1", "x2", "w", "clus"]].notna().all().all()


def test_ex9_11_dot_missing_idvariable_priors():
    inp = read_inp(UG / "ex9_11.inp")
    assert inp.idvariable == "id" and inp.roles.missing == {"ALL": (".",)}
    assert inp.read_data()[["y1", "y2", "y3", "y4"]].isna().sum().sum() > 0
    table = inp.model().partable
    priors = {r.label: str(r.prior) for r in table.rows if r.label}
    assert priors == {"a1": "N(1, 0.5)", "a2": "N(1, 0.5)", "a3": "N(1, 0.5)"}
    assert inp.savedata["BPARAMETERS"] == UG / "ex9_11_draws.dat"
    assert inp.analysis.bayes == {"biterations": (50000, 2000), "bconvergence": 0.05}


def test_ex9_9_output_and_savedata():
    inp = read_inp(UG / "ex9_9.inp")
    assert inp.output == {"STDYX": None, "CINTERVAL": None, "SAMPSTAT": None}
    assert inp.savedata == {"FILE": UG / "ex9_9_fscores.dat",
                            "BPARAMETERS": UG / "ex9_9_draws.dat", "SAVE": {"FSCORES": (100,)}}


def test_three_level_and_cross_classified_roles():
    inp = read_inp(UG / "ex9_20.inp")
    assert inp.roles.clusters == ("level3", "level2") and not inp.roles.crossed
    assert inp.roles.between_levels == {"w": 2, "z": 3}
    assert inp.analysis.levels == 3 and inp.analysis.random
    data = inp.to_analysis().prepare().data
    assert data.levels == 3 and data.constant_within == {"w": 0, "z": 1}
    inp = read_inp(UG / "ex9_24.inp")
    assert inp.roles.crossed and inp.roles.between_levels == {"w": 2, "z": 3}
    assert inp.analysis.estimator == "bayes" and inp.analysis.processors == 2
    analysis = inp.to_analysis().prepare()
    data = analysis.data
    assert data.crossed and data.n_clusters == (25, 20)
    # (level2a) w and (level2b) z reach the model as between_levels: each is checked
    # constant within its own crossed factor (CLUSTER = level2b level2a: position 0 is
    # level2a), not only within cells, and is a covariate of that factor's block only
    assert inp.model().roles.between_levels == {"w": 2, "z": 3}
    assert data.cluster_names == ("level2a", "level2b")
    assert data.constant_within == {"w": 0, "z": 1}
    table = analysis.partable
    assert table.block("level2a").covariates == ("w",)
    assert table.block("level2b").covariates == ("z",)
    # one intercept of y, in the block of the first cluster variable
    assert [r.block for r in table.rows if r.op == "~1"] == ["level2b"]


def test_crossed_between_variable_at_the_other_factor_names_the_inp_line():
    text = (UG / "ex9_24.inp").read_text().replace("        y ON w;\n", "        y ON w z;\n")
    with pytest.raises(ModelSyntaxError) as info:
        parse_inp(text, UG, source="ex9_24.inp").model()
    line = text.splitlines().index("        y ON w z;") + 1
    assert str(info.value).startswith(f"ex9_24.inp, line {line}, column 16: 'z' is a "
                                      "BETWEEN variable of the level2b clusters")


def test_model_syntax_errors_are_model_errors():
    """ModelSyntaxError subclasses ModelError: callers catching ModelError see both."""
    assert issubclass(ModelSyntaxError, ModelError)
    text = (UG / "ex9_8.inp").read_text()
    bad = text.replace("%WITHIN%", "%WITHIN%\n        y1 ON ;", 1)
    with pytest.raises(ModelError) as info:
        parse_inp(bad, UG, source="ex9_8.inp").model()
    assert isinstance(info.value, ModelSyntaxError) and info.value.line is not None
    assert str(info.value).startswith(f"ex9_8.inp, line {info.value.line}")


def test_model_errors_point_to_lines_of_the_inp_file():
    """UG ex9.20 as printed lets the level-1 slope s1 vary at level 3 too; jaxsem
    refuses it, and the message points at the statement in the .inp file."""
    text = (UG / "ex9_20.inp").read_text().replace(
        "        y ON x;\n", "        s1 | y ON x;\n").replace(
        "        s2 ON z;\n", "        s2 ON z;\n        s1 ON z;\n")
    with pytest.raises(ModelSyntaxError) as info:
        parse_inp(text, UG, source="ex9_20.inp").model()
    line = text.splitlines().index("        s1 ON z;") + 1
    assert info.value.line == line and info.value.col == 15   # the term's place: 'z'
    assert str(info.value).startswith(f"ex9_20.inp, line {line}, column 15:")
    assert "s1 ON z;" in str(info.value)


# ----------------------------------------------------------------------------- helpers

# 12 free parameters: W: y1 y2 ON x (2), resid vars (2), y1 WITH y2 (final outcomes,
# 1); B: y1 y2 ON w (2), intercepts (2), resid vars (2), y1 WITH y2 (1).
BASE = """TITLE: a test
DATA: FILE = d.dat;
VARIABLE: NAMES = y1 y2 x w clus;
    CLUSTER = clus;
    WITHIN = x;
    BETWEEN = w;
ANALYSIS: TYPE = TWOLEVEL;
MODEL:
    %WITHIN%
    y1 y2 ON x;
    %BETWEEN%
    y1 y2 ON w;
"""


def _data(rows=12, n_clusters=4, seed=0):
    rng = np.random.default_rng(seed)
    clus = np.repeat(np.arange(1, n_clusters + 1), rows // n_clusters)
    w = rng.normal(size=n_clusters)[clus - 1]
    values = np.column_stack([rng.normal(size=(len(clus), 3)), w, clus])
    return "\n".join(" ".join(f"{v:.3f}" if j < 4 else str(int(v)) for j, v in enumerate(r))
                     for r in values) + "\n"


def _inp(tmp_path, text=BASE, data=None, name="d.dat") -> InpFile:
    (tmp_path / name).write_text(_data() if data is None else data)
    path = tmp_path / "t.inp"
    path.write_text(text)
    return read_inp(path)


def _error(tmp_path, text=BASE, data=None, stage="analysis"):
    with pytest.raises(JaxsemError) as info:
        inp = _inp(tmp_path, text, data)
        if stage == "analysis":
            inp.to_analysis().prepare()
    return info.value


def _line_of(text, fragment):
    return next(k for k, line in enumerate(text.splitlines(), 1) if fragment in line)


# ----------------------------------------------------------------------------- Fortran

@pytest.mark.parametrize("fmt, starts, widths, decimals, records", [
    ("5f8.0, 3f8.2", [0, 8, 16, 24, 32, 40, 48, 56], [8] * 8, [0] * 5 + [2] * 3, 1),
    ("(2F4.1, 1X, 3F6.2)", [0, 4, 9, 15, 21], [4, 4, 6, 6, 6], [1, 1, 2, 2, 2], 1),
    ("10F8", list(range(0, 80, 8)), [8] * 10, [0] * 10, 1),
    ("2(F4.1, 1X), I3", [0, 5, 10], [4, 4, 3], [1, 1, 0], 1),
    ("3F4.0 / 2F5.1", [0, 4, 8, 0, 5], [4, 4, 4, 5, 5], [0, 0, 0, 1, 1], 2),
    ("F3, T10, F3, 2X, E8.2", [0, 9, 14], [3, 3, 8], [0, 0, 2], 1),
])
def test_fortran_format_layout(fmt, starts, widths, decimals, records):
    parsed = parse_fortran_format(fmt)
    assert [f.start for f in parsed.fields] == starts
    assert [f.width for f in parsed.fields] == widths
    assert [f.decimals for f in parsed.fields] == decimals
    assert parsed.records == records


@pytest.mark.parametrize("fmt, message", [
    ("(3F4.1", "not closed"), ("3F4.1)", "no '('"), ("3A4", "cannot read"),
    ("F0.1", "width 0"), ("2X", "no numeric fields"),
])
def test_fortran_format_errors(fmt, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_fortran_format(fmt)


def test_fixed_reader_values_records_and_missing(tmp_path):
    path = tmp_path / "f.dat"
    # record 1: F4.1 F4.1 1X I3 / record 2: F6.2 (implied decimals unless a point)
    path.write_bytes("\ufeff 123-1.5   7\r\n  1234\r\n 4.5  .   12\r\n 1.5E2\r\n".encode())
    frame = read_fixed_data(path, ["a", "b", "c", "d"], "(2F4.1, 1X, I3 / F6.2)",
                            missing_symbols=["."])
    assert frame.to_numpy()[0] == pytest.approx([12.3, -1.5, 7, 12.34])
    assert frame.loc[1, "a"] == 4.5 and np.isnan(frame.loc[1, "b"])
    assert frame.loc[1, "c"] == 12 and frame.loc[1, "d"] == 150.0


def test_fixed_reader_tabs_and_blank_fields(tmp_path):
    path = tmp_path / "f.dat"
    path.write_text("1.0\t2.0   \n3.0     \n")
    frame = read_fixed_data(path, ["a", "b"], "F3.1, 1X, F3.1", blank_missing=True)
    assert frame["a"].tolist() == [1.0, 3.0]
    assert frame.loc[0, "b"] == 2.0 and np.isnan(frame.loc[1, "b"])
    with pytest.raises(DataError, match=r"row 2 \(line 2\), columns 5-7 \(b\): the field is "
                                        r"blank.*MISSING = BLANK"):
        read_fixed_data(path, ["a", "b"], "F3.1, 1X, F3.1")


def test_fixed_reader_errors(tmp_path):
    path = tmp_path / "f.dat"
    path.write_text("1.0 2.0\n3.0 x.5\n")
    with pytest.raises(DataError, match=r"row 2 \(line 2\), columns 5-7 \(b\): 'x.5' is not "
                                        "a number"):
        read_fixed_data(path, ["a", "b"], "F3.1, 1X, F3.1")
    with pytest.raises(DataError, match="2 lines per observation.*3 lines"):
        path.write_text("1\n2\n3\n")
        read_fixed_data(path, ["a", "b"], "F1.0 / F1.0")
    with pytest.raises(DataError, match="reads 2 values per observation but NAMES gives 3"):
        read_fixed_data(path, ["a", "b", "c"], "2F1.0")


def test_fixed_format_through_the_input_file(tmp_path):
    text = BASE.replace("DATA: FILE = d.dat;",
                        "DATA: FILE = d.dat;\n  FORMAT IS 2F6.2, F5.1, F6.3 / 1X, I3;")
    rows = ["   123  -4.5   .5 1.234", "  7", "  1.00  2.00  3.0  -0.5", " 12"]
    inp = _inp(tmp_path, text, "\n".join(rows) + "\n")
    frame = inp.read_data()
    np.testing.assert_allclose(frame.to_numpy(), [[1.23, -4.5, 0.5, 1.234, 7],
                                                  [1.0, 2.0, 3.0, -0.5, 12]])


# ----------------------------------------------------------------------------- free format

def test_free_format_with_crlf_bom_tabs_and_trailing_blanks(tmp_path):
    data = "\ufeff1 2 3 4 1  \r\n5\t6\t7\t4\t1\t\r\n\r\n8, 9, 10, 5, 2\r\n"
    frame = _inp(tmp_path, data=data).read_data()
    assert frame.to_numpy().tolist() == [[1, 2, 3, 4, 1], [5, 6, 7, 4, 1], [8, 9, 10, 5, 2]]


def test_input_file_with_crlf_bom_and_long_lines(tmp_path):
    long = "    y1 y2 ON w;" + " " * 100 + "! a comment past column 90 " + "x" * 40
    text = "\ufeff" + BASE.replace("    y1 y2 ON w;", long).replace("\n", "\r\n")
    inp = _inp(tmp_path, text)
    assert inp.model().partable.n_free == 12 and inp.title == "a test"


@pytest.mark.parametrize("missing, expected", [
    ("MISSING ARE y1-y2 (-99) x (-9 -8);", {"y1": 1, "y2": 1, "x": 2, "w": 0}),
    ("MISSING = ALL (-99, -9);", {"y1": 1, "y2": 1, "x": 1, "w": 0}),
    ("MISSING = .;", {"y1": 0, "y2": 0, "x": 0, "w": 1}),
    ("MISSING = *;", {"y1": 0, "y2": 1, "x": 0, "w": 0}),
])
def test_missing_codes(tmp_path, missing, expected):
    symbol = "*" if "*" in missing else "."
    data = ("-99 1 -9 0.5 1\n1 -99 -8 0.5 1\n" + f"1 {'*' if symbol == '*' else 2} 3 "
            f"{'.' if symbol == '.' else 0.5} 1\n")
    if "ALL" in missing or "y1-y2" in missing:
        data = data.replace("*", "2").replace(" . ", " 0.5 ")
    text = BASE.replace("CLUSTER = clus;", f"CLUSTER = clus;\n    {missing}")
    frame = _inp(tmp_path, text, data).read_data()
    assert frame[["y1", "y2", "x", "w"]].isna().sum().to_dict() == expected


def test_undeclared_missing_symbol_is_an_error(tmp_path):
    text = BASE
    error = _error(tmp_path, text, "1 2 3 0.5 1\n1 . 3 0.5 1\n")
    assert isinstance(error, DataError)
    assert "t.inp, line 2:" in str(error) and "row 2, column 2 (y2)" in str(error)
    assert "missing-value code" in str(error)


# ----------------------------------------------------------------------------- spelling

SPELLINGS = [
    BASE,
    BASE.replace("NAMES = ", "NAMES ARE ").replace("CLUSTER = ", "CLUSTER IS ")
        .replace("TYPE = ", "TYPE IS ").replace("WITHIN = ", "WITHIN ARE "),
    BASE.replace("NAMES = ", "names are ").replace("CLUSTER = ", "clus = ")
        .replace("TYPE = TWOLEVEL", "type = twolevel").replace("BETWEEN = ", "betw is ")
        .replace("WITHIN = ", "with = "),
    BASE.replace("VARIABLE:", "VARI:").replace("ANALYSIS:", "Anal:")
        .replace("NAMES = y1 y2 x w clus", "NAME = y1-y2\n   x w clus"),
    BASE.replace("    WITHIN = x;\n", "    WITHIN = x;   ! comment; with ; and : inside\n")
        .replace("MODEL:\n", "MODEL: ! the model\n"),
]


@pytest.mark.parametrize("text", SPELLINGS, ids=range(len(SPELLINGS)))
def test_abbreviations_and_is_are_equals(tmp_path, text):
    inp = _inp(tmp_path, text)
    assert inp.names == ("y1", "y2", "x", "w", "clus")
    assert inp.roles.clusters == ("clus",)
    assert inp.roles.within == ("x",) and inp.roles.between == ("w",)
    assert inp.analysis.levels == 2 and inp.analysis.estimator == "mlr"
    assert inp.model().partable.n_free == 12


def test_analysis_option_abbreviations(tmp_path):
    text = BASE.replace("TYPE = TWOLEVEL;", "TYPE = TWOL;\n  ESTIM = bayes;\n  BITER = 5000;\n"
                        "  FBITER = 400;\n").replace("  BITER = 5000;\n", "")
    text = text.replace("FBITER = 400;", "FBITER ARE 400;\n  CHAI = 3;\n  BSEE = 7;\n"
                        "  THIN IS 5;\n  POINT = mode;\n  ALGO = GIBBS;\n  PROC = 4 (STARTS);")
    inp = _inp(tmp_path, text)
    assert inp.analysis.bayes == {"fbiterations": 400, "chains": 3, "bseed": 7, "thin": 5,
                                  "point": "mode"}
    assert inp.analysis.algorithm == "GIBBS" and inp.analysis.processors == 4


def test_file_names_quoted_split_and_relative(tmp_path):
    (tmp_path / "my data").mkdir()
    (tmp_path / "my data" / "d.dat").write_text(_data())
    text = BASE.replace("FILE = d.dat;", 'FILE IS "my data\n       /d.dat";')
    path = tmp_path / "t.inp"
    path.write_text(text)
    inp = read_inp(path)
    assert inp.data.file == tmp_path / "my data" / "d.dat"
    assert len(inp.read_data()) == 12
    backslash = parse_inp(BASE.replace("d.dat", "sub\\d.dat"), tmp_path)
    assert backslash.data.file == tmp_path / "sub" / "d.dat"


def test_ranges_use_names_order_and_numeric_suffix(tmp_path):
    text = BASE.replace("NAMES = y1 y2 x w clus;", "NAMES = y1-y2 x w clus;\n"
                        "    USEVARIABLES = y1-x w;")
    inp = _inp(tmp_path, text)
    assert inp.roles.usevariables == ("y1", "y2", "x", "w")


def test_between_levels_by_cluster_name(tmp_path):
    text = BASE.replace("CLUSTER = clus;", "CLUSTER = school clus;").replace(
        "BETWEEN = w;", "BETWEEN = (clus) w (school) s;").replace(
        "NAMES = y1 y2 x w clus;", "NAMES = y1 y2 x w s school clus;").replace(
        "TYPE = TWOLEVEL;", "TYPE = THREELEVEL;")
    inp = parse_inp(text, tmp_path)
    assert inp.roles.between_levels == {"w": 2, "s": 3}
    assert inp.analysis.levels == 3


def test_define_standardize_center_and_constant(tmp_path):
    text = BASE.replace("ANALYSIS:", "DEFINE:\n    one = 1;\n    y2 = LOG(y2 + 10) * 2;\n"
                        "    STANDARDIZE y1 w;\n    CENTER x (GRANDMEAN);\nANALYSIS:")
    inp = _inp(tmp_path, text)
    kinds = [d.kind for d in inp.defines]
    assert kinds == ["assign", "assign", "standardize", "center"]
    run = inp.to_analysis()
    assert run.centering == {"x": "grandmean"}
    assert [name for name, _ in run.define] == ["one", "y2", "y1", "w"]
    data = run.prepare().data
    assert abs(np.nanmean(data.column("y1"))) < 1e-12
    frame = inp.read_data()
    assert np.nanstd(data.column("y1")) == pytest.approx(1.0)
    assert data.column("y2") == pytest.approx(np.log(frame["y2"] + 10) * 2)


def test_listwise_deletion(tmp_path):
    text = BASE.replace("DATA: FILE = d.dat;", "DATA: FILE = d.dat;\n LISTWISE = ON;").replace(
        "CLUSTER = clus;", "CLUSTER = clus;\n MISSING = ALL (-99);")
    data = _data().splitlines()
    data[0] = "-99" + data[0][data[0].index(" "):]
    run = _inp(tmp_path, text, "\n".join(data) + "\n").to_analysis()
    assert len(run.frame) == 11 and not run.frame.isna().any().any()


# ----------------------------------------------------------------------------- refusals

def test_every_unsupported_item_is_listed_in_one_error(tmp_path):
    text = BASE.replace("TYPE = TWOLEVEL;", "TYPE = TWOLEVEL MIXTURE;\n  ESTIMATOR = WLSMV;\n"
                        "  ALGORITHM = MH;\n  BOGUS = 3;").replace(
        "CLUSTER = clus;", "CLUSTER = clus;\n    KNOWNCLASS = c (w = 1);\n    CLASSES = c (2);")
    text += ("MODEL INDIRECT:\n    y2 IND x;\nMONTECARLO:\n    NAMES = y1;\n"
             "OUTPUT: TECH1 TECH4 MODINDICES (3.84);\nDEFINE: IF (x GT 0) THEN u = 1;\n")
    with pytest.raises(ModelError) as info:
        parse_inp(text, tmp_path, source="t.inp")
    message = str(info.value)
    expected = [("KNOWNCLASS", "KNOWNCLASS"), ("CLASSES", "CLASSES"),
                ("TYPE = TWOLEVEL MIXTURE", "TYPE = MIXTURE"),
                ("WLSMV", "ESTIMATOR = WLSMV"), ("ALGORITHM", "ALGORITHM = MH"),
                ("BOGUS", "unknown option 'BOGUS'"), ("MODEL INDIRECT", "MODEL INDIRECT"),
                ("MONTECARLO", "MONTECARLO"), ("TECH4", "OUTPUT: TECH4"),
                ("TECH4", "OUTPUT: MODINDICES(3.84)"), ("IF (x", "IF ... THEN")]
    for fragment, what in expected:
        line = _line_of(text, fragment)
        assert re.search(rf"line {line}: [^\n]*{re.escape(what)}", message), (what, message)
    assert message.startswith("t.inp: 11 item(s) in this input are not supported")
    assert "nothing was computed" in message


@pytest.mark.parametrize("change, what", [
    (("TYPE = TWOLEVEL;", "TYPE = COMPLEX;"), "TYPE = COMPLEX"),
    (("TYPE = TWOLEVEL;", "TYPE = TWOLEVEL;\n ESTIMATOR = MLMV;"), "ESTIMATOR = MLMV"),
    (("WITHIN = x;", "WITHIN = (clus) x;"), "WITHIN with a level"),
    (("WITHIN = x;", "WITHIN = x;\n USEOBSERVATIONS = x > 0;"), "USEOBSERVATIONS"),
    (("MODEL:", "DATA IMPUTATION:\n IMPUTE = y1;\nMODEL:"), "the DATA IMPUTATION command"),
    (("MODEL:", "OUTPUT: STANDARDIZED;\nMODEL:"), "OUTPUT: STANDARDIZED"),
    (("MODEL:", "SAVEDATA: FILE = s.dat; SAVE = CPROB;\nMODEL:"), "SAVE = CPROB"),
    (("MODEL:", "PLOT: TYPE = PLOT3 SERIES;\nMODEL:"), "PLOT: TYPE = SERIES"),
    (("FILE = d.dat;", "FILE = d.dat; TYPE = COVARIANCE;"), "DATA: TYPE = COVARIANCE"),
    (("FILE = d.dat;", "FILE = d.dat; ESTIMATOR = BAYES;"), "(it belongs to ANALYSIS)"),
])
def test_single_refusals(tmp_path, change, what):
    with pytest.raises(ModelError, match=r"1 item\(s\).*\n  line \d+: [^\n]*"
                                         + re.escape(what)):
        parse_inp(BASE.replace(*change), tmp_path)


# ----------------------------------------------------------------------------- bad input

def test_missing_data_file_names_the_resolved_path(tmp_path):
    (tmp_path / "t.inp").write_text(BASE.replace("d.dat", "sub/none.dat"))
    with pytest.raises(DataError) as info:
        read_inp(tmp_path / "t.inp").to_analysis()
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 't.inp'}, line 2: data file not found: "
                              f"{tmp_path / 'sub' / 'none.dat'}")


def test_names_length_differs_from_data_columns(tmp_path):
    text = BASE.replace("NAMES = y1 y2 x w clus;", "NAMES = y1 y2 x w clus extra;")
    error = _error(tmp_path, text)
    assert isinstance(error, DataError)
    assert re.search(r"t\.inp, line 3: NAMES lists 6 variables but the data file .*d\.dat has "
                     r"5 columns", str(error))


def test_format_width_differs_from_names(tmp_path):
    text = BASE.replace("FILE = d.dat;", "FILE = d.dat;\n FORMAT = 4F8.3;")
    error = _error(tmp_path, text)
    assert re.search(r"t\.inp, line 4: NAMES lists 5 variables but the FORMAT on line 3 "
                     "reads 4", str(error))


def test_non_numeric_data_names_row_and_column(tmp_path):
    error = _error(tmp_path, data="1 2 3 0.5 1\n1 2 abc 0.5 1\n")
    assert isinstance(error, DataError)
    assert re.search(r"t\.inp, line 2: .*d\.dat, row 2, column 3 \(x\): 'abc' is not a "
                     "number", str(error))


@pytest.mark.parametrize("change, kind, fragment, message", [
    (("CLUSTER = clus;", "CLUSTER = clus;\n    USEVARIABLES = y1 y2 x w q;"), DataError,
     "USEVARIABLES", "USEVARIABLES names 'q', which is not on NAMES (line 3)"),
    (("CLUSTER = clus;", "CLUSTER = school;"), DataError, "CLUSTER",
     "CLUSTER names 'school', which is not on NAMES (line 3)"),
    (("BETWEEN = w;", "BETWEEN = ww;"), DataError, "BETWEEN", "Did you mean w?"),
    (("TYPE = TWOLEVEL;", "TYPE = TWOLEVEL;\n  ESTIMATOR = BAYES;\n  CHAINS = 1;\n"
      "  BCONVERGENCE = 0.01;"), ModelError, "CHAINS",
     "CHAINS = 1 conflicts with BCONVERGENCE (line 10)"),
    (("    CLUSTER = clus;\n    WITHIN = x;\n    BETWEEN = w;\n", ""), ModelError, "TYPE",
     "TYPE = TWOLEVEL needs the cluster variable(s)"),
    (("TYPE = TWOLEVEL;", "TYPE = TWOLEVEL BASIC;\n  ESTIMATOR = BAYES;"), ModelError,
     "ESTIMATOR", "ESTIMATOR = BAYES conflicts with TYPE = TWOLEVEL BASIC (line 7)"),
    (("TYPE = TWOLEVEL;", "TYPE = TWOLEVEL;\n  BITERATIONS = 1000;"), ModelError,
     "BITERATIONS", "conflicts with the default estimator MLR"),
    (("TYPE = TWOLEVEL;", "TYPE = TWOLEVEL;\n ESTIMATOR = BAYES;\n BITER = 500;\n "
      "FBITER = 100;"), ModelError, "FBITER", "FBITERATIONS conflicts with BITERATIONS"),
    (("TYPE = TWOLEVEL;", "TYPE = GENERAL;"), ModelError, "CLUSTER",
     "CLUSTER is given but TYPE = GENERAL (line 7) is not multilevel"),
    ((("CLUSTER = clus;", "CLUSTER = school clus;"), ("x w clus;", "x w school clus;")),
     ModelError, "CLUSTER",
     "CLUSTER lists two variables but TYPE = TWOLEVEL (line 7) has two levels"),
    (("TYPE = TWOLEVEL;", "TYPE = CROSSCLASSIFIED;\n ESTIMATOR = ML;"), ModelError,
     "ESTIMATOR = ML", "conflicts with TYPE = CROSSCLASSIFIED"),
    (("    y1 y2 ON x;", "    s | y1 ON x;"), ModelError, "s | y1",
     "lacks RANDOM; add it, e.g. TYPE = TWOLEVEL RANDOM;"),
    (("CLUSTER = clus;", "CLUSTER = clus\n"), ModelError, "CLUSTER",
     "missing ';' at the end of this line: WITHIN on line 6"),
    (("BETWEEN = w;", "BETWEEN = w;\n    TIME = t;"), ModelError, "TIME",
     "'TIME' is ambiguous in VARIABLE: it could be TIMEMEASURES or TIMECENSORED"),
    (("BETWEEN = w;", "BETWEEN = w;\n    MISSING = BLANK;"), ModelError, "BLANK",
     "MISSING = BLANK needs fixed-format data"),
    (("TYPE = TWOLEVEL;", "TYPE = TWOLEVEL;\n  ESTIMATOR = BAYES;\n  BITER = 10 (20);"),
     ModelError, "BITER", "the maximum must be at least 1 and at least the minimum"),
    (("FILE = d.dat;", "FILE = d.dat;\n FORMAT = (3F8.2;"), DataError, "FORMAT",
     "'(' in the format is not closed"),
    (("NAMES = y1 y2 x w clus;", "NAMES = y1 y2 x w clus y1;"), DataError, "NAMES",
     "NAMES lists 'y1' twice"),
    (("WITHIN = x;", "WITHIN = x w;"), DataError, "WITHIN = x w",
     "'w' is on both WITHIN and BETWEEN (line 6)"),
    (("MODEL:", "DEFINE: z = x +* 2;\nMODEL:"), DataError, "DEFINE",
     "DEFINE z = x +* 2"),
    (("MODEL:", "ANALYSIS: ESTIMATOR = ML;\nMODEL:"), ModelError, "ESTIMATOR = ML",
     "the ANALYSIS command is given twice (first on line 7)"),
])
def test_bad_input_messages_name_the_line(tmp_path, change, kind, fragment, message):
    text = BASE
    for old, new in (change if isinstance(change[0], tuple) else (change,)):
        text = text.replace(old, new)
    error = _error(tmp_path, text)
    assert isinstance(error, kind), (type(error), str(error))
    line = _line_of(text, fragment)
    assert str(error).startswith(f"{tmp_path / 't.inp'}, line {line}"), str(error)
    assert message in str(error), str(error)


def test_errors_in_model_priors_and_constraint_give_inp_lines(tmp_path):
    text = BASE.replace("    y1 y2 ON w;", "    y1 ON w (b1);\n    y2 ON w (b2);")
    for section, statement, col in (
            ("MODEL PRIORS:", "    b1 ~ N(0, -1);", 10),
            ("MODEL CONSTRAINT:", "    NEW(c);\n    c = b1 * ;", 13),
            ("MODEL:", None, None)):
        if statement is None:
            bad = text.replace("    y2 ON w (b2);", "    y2 ON w WITH b2;")
            line, col = _line_of(bad, "WITH b2"), 13
        else:
            bad = text + f"{section}\n{statement}\n"
            line = len(bad.splitlines())
        with pytest.raises(JaxsemError) as info:
            _inp(tmp_path, bad).model()
        assert str(info.value).startswith(f"{tmp_path / 't.inp'}, line {line}, column {col}:")


def test_data_errors_from_prepare_name_the_option_line(tmp_path):
    # w varies within clusters but is on BETWEEN
    data = "1 2 3 0.5 1\n1 2 3 0.7 1\n"
    error = _error(tmp_path, data=data)
    assert isinstance(error, DataError) and "is on BETWEEN" in str(error)
    assert str(error).startswith(f"{tmp_path / 't.inp'}, line 6:")


def test_no_model_and_text_before_first_command(tmp_path):
    with pytest.raises(ModelError, match="no MODEL command"):
        parse_inp(BASE[:BASE.index("MODEL:")], tmp_path)
    with pytest.raises(ModelError, match=r"input, line 1: text before the first command"):
        parse_inp("hello\n" + BASE, tmp_path)
    with pytest.raises(ModelError, match=r"line 8: the MODEL command is empty"):
        parse_inp(BASE[:BASE.index("MODEL:")] + "MODEL: ! nothing\n", tmp_path).model()
