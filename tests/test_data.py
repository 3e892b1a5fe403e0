"""Tests of jaxsem.data: reading text files, roles, clusters, codes, DEFINE, centering."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jaxsem.data import Roles, prepare_data, read_text_data
from jaxsem.errors import DataError, JaxsemError


def two_level_frame() -> pd.DataFrame:
    """Three unbalanced schools (sizes 3, 1, 4) in scrambled row order."""
    return pd.DataFrame({
        "school": [20, 10, 20, 30, 30, 20, 30, 30],
        "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        "x": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5],
        "w": [2.0, 1.0, 2.0, 3.0, 3.0, 2.0, 3.0, 3.0],
    })


def three_level_frame() -> pd.DataFrame:
    """Class ids 1 and 2 repeat under both schools: four classes in all."""
    return pd.DataFrame({
        "school": [1, 1, 1, 1, 2, 2, 2],
        "class": [1, 1, 2, 2, 1, 2, 2],
        "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        "t": [10.0, 10.0, 11.0, 11.0, 12.0, 13.0, 13.0],   # constant within class
        "s": [100.0, 100.0, 100.0, 100.0, 200.0, 200.0, 200.0],  # constant within school
    })


def crossed_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "school": [1, 1, 2, 2, 1, 2],
        "hood": [7, 8, 7, 8, 8, 9],
        "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "a": [5.0, 5.0, 6.0, 6.0, 5.0, 6.0],   # constant within school
        "b": [0.1, 0.2, 0.1, 0.2, 0.2, 0.3],   # constant within hood
    })


def error_message(frame, variables, roles) -> str:
    with pytest.raises(DataError) as info:
        prepare_data(frame, variables, roles)
    return str(info.value)


# ----------------------------------------------------------------------------- structure

def test_single_level_has_no_clusters():
    data = prepare_data(two_level_frame(), ["y", "x"], Roles())
    assert data.levels == 1
    assert data.cluster_index == () and data.cluster_sizes == () and data.parent_index is None
    assert data.values.dtype == np.float64 and data.values.shape == (8, 2)
    assert data.variable_levels == {"y": frozenset({1}), "x": frozenset({1})}


def test_two_level_unbalanced_clusters():
    data = prepare_data(two_level_frame(), ["y", "x", "w"],
                        Roles(clusters=("school",), within=("x",), between=("w",)))
    assert data.levels == 2 and data.cluster_names == ("school",)
    (index,) = data.cluster_index
    assert index.dtype == np.int32
    np.testing.assert_array_equal(data.cluster_ids[0], [20, 10, 30])   # first appearance
    np.testing.assert_array_equal(index, [0, 1, 0, 2, 2, 0, 2, 2])
    np.testing.assert_array_equal(data.cluster_sizes[0], [3, 1, 4])
    assert data.variable_levels == {"y": frozenset({1, 2}), "x": frozenset({1}),
                                    "w": frozenset({2})}
    np.testing.assert_array_equal(data.cluster_values("w"), [2.0, 1.0, 3.0])
    assert data.constant_within == {"w": 0}
    with pytest.raises(DataError, match="'x' has no single value per cluster: it varies"):
        data.cluster_values("x")
    assert not data.values.flags.writeable and not index.flags.writeable


def test_three_level_repeated_level2_ids_are_distinct_clusters():
    roles = Roles(clusters=("school", "class"), between=("t", "s"), between_levels={"s": 3})
    data = prepare_data(three_level_frame(), ["y", "t", "s"], roles)
    assert data.levels == 3 and data.cluster_names == ("class", "school")
    class_index, school_index = data.cluster_index
    np.testing.assert_array_equal(class_index, [0, 0, 1, 1, 2, 3, 3])
    np.testing.assert_array_equal(school_index, [0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(data.cluster_ids[0], [1, 2, 1, 2])
    np.testing.assert_array_equal(data.cluster_ids[1], [1, 2])
    np.testing.assert_array_equal(data.parent_index, [0, 0, 1, 1])
    np.testing.assert_array_equal(data.cluster_sizes[0], [2, 2, 1, 2])
    np.testing.assert_array_equal(data.cluster_sizes[1], [4, 3])
    assert data.variable_levels == {"y": frozenset({1, 2, 3}), "t": frozenset({2, 3}),
                                    "s": frozenset({3})}
    assert data.constant_within == {"t": 0, "s": 1}
    np.testing.assert_array_equal(data.cluster_values("t"), [10, 11, 12, 13])
    np.testing.assert_array_equal(data.cluster_values("s"), [100, 200])
    assert "class clusters per school: min 2 / mean 2.0 / max 2" in data.summary()


def test_crossed_factors_get_two_independent_indices():
    roles = Roles(clusters=("school", "hood"), crossed=True, between_levels={"a": 3, "b": 2})
    data = prepare_data(crossed_frame(), ["y", "a", "b"], roles)
    assert data.crossed and data.levels == 2 and data.parent_index is None
    assert data.cluster_names == ("hood", "school")
    hood_index, school_index = data.cluster_index
    np.testing.assert_array_equal(hood_index, [0, 1, 0, 1, 1, 2])
    np.testing.assert_array_equal(school_index, [0, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(data.cluster_sizes[0], [2, 3, 1])
    np.testing.assert_array_equal(data.cluster_sizes[1], [3, 3])
    assert data.variable_levels == {"y": frozenset({1, 2}), "a": frozenset({2}),
                                    "b": frozenset({2})}
    assert data.constant_within == {"a": 1, "b": 0}
    np.testing.assert_array_equal(data.cluster_values("a"), [5.0, 6.0])
    np.testing.assert_array_equal(data.cluster_values("b"), [0.1, 0.2, 0.3])
    assert "crossed factor: school, 2 clusters" in data.summary()


def test_between_levels_variables_are_between_variables():
    roles = Roles(clusters=("school", "class"), between=("t",), between_levels={"s": 3})
    assert roles.between == ("t", "s")
    assert Roles(clusters=("school", "class"), between=("s",),
                 between_levels={"s": 3}).between == ("s",)
    data = prepare_data(three_level_frame(), ["y", "t", "s"], roles)
    assert data.variable_levels["s"] == frozenset({3}) and data.constant_within["s"] == 1


def test_model_prepare_ignores_roles_of_variables_the_model_does_not_use():
    """Mplus analyses what the model uses; a BETWEEN (or WITHIN, CATEGORICAL) variable
    the MODEL leaves out is not analysed. Model.prepare used to pass it to prepare_data,
    which refused it as 'not an analysis variable'."""
    from jaxsem import Model
    frame = two_level_frame().assign(q=[1.0, 5.0, 2.0, 3.0, 3.0, 2.0, 3.0, 3.0],
                                     u=[0, 1, 0, 1, 1, 0, 1, 0])
    model = Model.from_mplus("%WITHIN%\n y ON x;\n %BETWEEN%\n y ON w;", clusters="school",
                             within=["x", "z"], between=["w", "q"],
                             between_levels={"Q": 2}, categorical=["u"])
    analysis = model.prepare(frame)
    assert analysis.data.names == ("y", "x", "w") and analysis.partable.n_free == 5
    assert analysis.partable.categorical == {}
    assert ("not used in the model, so not analysed: WITHIN z; BETWEEN q; "
            "CATEGORICAL u") in analysis.data.report
    assert model.partable.n_free == 5


def test_crossed_plain_between_is_constant_within_cells():
    frame = crossed_frame().assign(c=[1.0, 2.0, 3.0, 4.0, 2.0, 5.0])   # one value per cell
    roles = Roles(clusters=("school", "hood"), crossed=True, between=("c",))
    data = prepare_data(frame, ["y", "c"], roles)
    assert data.variable_levels["c"] == frozenset({2}) and "c" not in data.constant_within
    with pytest.raises(DataError, match="constant only within cells"):
        data.cluster_values("c")
    frame.loc[4, "c"] = 9.0
    message = error_message(frame, ["y", "c"], roles)
    assert "must be constant within each cell of hood x school" in message
    assert "cell (hood 8, school 1)" in message


def test_text_cluster_ids_and_case_insensitive_names():
    frame = pd.DataFrame({"School": ["b", "a", "b"], "Y": [1.0, 2.0, 3.0]})
    data = prepare_data(frame, ["y"], Roles(clusters=("school",)))
    assert data.names == ("y",)
    assert list(data.cluster_ids[0]) == ["b", "a"]
    np.testing.assert_array_equal(data.cluster_index[0], [0, 1, 0])


def test_between_variable_missing_in_some_rows_gets_the_cluster_value():
    frame = two_level_frame()
    frame.loc[[0, 3], "w"] = np.nan
    data = prepare_data(frame, ["y", "w"], Roles(clusters=("school",), between=("w",)))
    np.testing.assert_array_equal(data.column("w"), [2, 1, 2, 3, 3, 2, 3, 3])
    assert "w: filled 2 missing row(s)" in data.report


def test_rows_missing_everything_are_dropped_and_reported():
    frame = two_level_frame()
    frame.loc[[1, 4], ["y", "x"]] = np.nan    # row 2 is school 10's only row
    data = prepare_data(frame, ["y", "x"], Roles(clusters=("school",)))
    assert data.n_dropped == 2 and data.n_obs == 6
    np.testing.assert_array_equal(data.row_numbers, [1, 3, 4, 6, 7, 8])
    np.testing.assert_array_equal(data.cluster_ids[0], [20, 30])
    np.testing.assert_array_equal(data.cluster_sizes[0], [3, 3])
    assert "dropped 2 row(s) missing on every analysis variable (rows 2, 5)" in data.report
    assert "2 row(s) dropped" in data.summary()


def test_summary_reports_clusters_without_level1_data():
    frame = two_level_frame()
    frame.loc[frame.school == 10, "y"] = np.nan
    data = prepare_data(frame, ["y", "w"], Roles(clusters=("school",), between=("w",)))
    text = data.summary()
    assert "Observations: 8" in text
    assert "level 2: school, 3 clusters, size min 1 / mean 2.7 / max 4" in text
    assert "1 of 3 school clusters have no observed level-1 value: school 10" in text
    assert "y  levels 1,2    missing 1" in text


# ----------------------------------------------------------------------------- missing codes

def test_missing_codes_numbers_per_variable_and_all():
    frame = pd.DataFrame({"y": [1.0, -99.0, 3.0, 9.0], "x": [-99, 2, -9, 4]})
    roles = Roles(missing={"ALL": (-99,), "y": (9,)})
    data = prepare_data(frame, ["y", "x"], roles)
    np.testing.assert_array_equal(data.missing, [[False, True], [True, False],
                                                 [False, False], [True, False]])
    assert np.isnan(data.values[data.missing]).all()
    assert data.column("x")[2] == -9.0
    assert "2 value(s) of y set to missing" in data.report


def test_dot_and_star_codes_in_a_text_column():
    frame = pd.DataFrame({"y": ["1", ".", " 3 ", "*", "5e-1", "2D1"], "x": np.arange(6.0)})
    data = prepare_data(frame, ["y", "x"], Roles(missing={"y": (".", "*")}))
    np.testing.assert_array_equal(data.column("y"), [1.0, np.nan, 3.0, np.nan, 0.5, 20.0])
    assert data.n_dropped == 0 and "2 value(s) of y set to missing" in data.report


# ----------------------------------------------------------------------------- text files

def test_read_text_data_crlf_bom_tabs_commas_and_missing_tokens(tmp_path):
    path = tmp_path / "data.dat"
    text = "\ufeff1\t2.5  3 \r\n4,5,.\r\n\r\n  *\t-1.5E1 , 7\r\n1.5d2 0 0\r\n\r\n"
    path.write_bytes(text.encode("utf-8"))
    frame = read_text_data(path, ["a", "b", "c"])
    assert list(frame.columns) == ["a", "b", "c"]
    expected = [[1, 2.5, 3], [4, 5, np.nan], [np.nan, -15, 7], [150, 0, 0]]
    np.testing.assert_array_equal(frame.to_numpy(), expected)


@pytest.mark.parametrize("text", [
    "1 2 .\r\n3 , 4 , 5\r\n\r\n* 6.5e1 -7\n",     # plain numbers: the vectorised path
    "1 2 .\r\n3 , 4 , 5\r\n\r\n* 0.65D2 -7\n",   # a D exponent: the token-by-token path
])
def test_read_text_data_both_paths_agree(tmp_path, text):
    path = tmp_path / "d.dat"
    path.write_text(text, newline="")
    frame = read_text_data(path, ["a", "b", "c"])
    np.testing.assert_array_equal(frame.to_numpy(), [[1, 2, np.nan], [3, 4, 5],
                                                     [np.nan, 65, -7]])


@pytest.mark.parametrize("token", ["nan", "inf", "1_0", "0x1"])
def test_read_text_data_rejects_what_python_float_would_accept(tmp_path, token):
    path = tmp_path / "d.dat"
    path.write_text(f"1 2\n3 {token}\n")
    with pytest.raises(DataError, match=f"row 2, column 2 \\(b\\): '{token}' is not a number"):
        read_text_data(path, ["a", "b"])


def test_read_text_data_numeric_missing_code(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("1 -99\n-99.0 2\n")
    frame = read_text_data(path, ["a", "b"], missing_codes=(".", -99))
    np.testing.assert_array_equal(frame.to_numpy(), [[1, np.nan], [np.nan, 2]])


def test_read_text_data_then_prepare(tmp_path):
    path = tmp_path / "ex.dat"
    path.write_text("1 1 2.0\n1 2 .\n2 3 4.0\n")
    frame = read_text_data(path, ["clus", "y", "x"])
    data = prepare_data(frame, ["y", "x"], Roles(clusters=("clus",)))
    assert data.cluster_ids[0].dtype == np.int64
    np.testing.assert_array_equal(data.cluster_ids[0], [1, 2])


# ----------------------------------------------------------------------------- categorical

def test_categorical_recoded_to_codes_with_the_map():
    frame = pd.DataFrame({"u": [5, 1, 3, 5, np.nan, 1], "y": [1.0, 2, 3, 4, 5, 6]})
    data = prepare_data(frame, ["y", "u"], Roles(categorical=("u",)))
    assert data.categories == {"u": (1, 3, 5)}
    np.testing.assert_array_equal(data.column("u"), [2, 0, 1, 2, np.nan, 0])
    assert "u: 1 -> 0, 3 -> 1, 5 -> 2" in data.summary()
    assert "recoded categorical u: 1 -> 0, 3 -> 1, 5 -> 2" in data.report


def test_many_categories_allowed_when_max_categories_is_raised():
    frame = pd.DataFrame({"u": np.arange(12) % 12})
    data = prepare_data(frame, ["u"], Roles(categorical=("u",), max_categories=12))
    assert len(data.categories["u"]) == 12


# ----------------------------------------------------------------------------- centering

def test_grandmean_and_groupmean_centering():
    frame = two_level_frame()
    frame.loc[2, "x"] = np.nan
    roles = Roles(clusters=("school",), between=("w",),
                  centering={"x": "GROUPMEAN", "y": "grandmean", "w": "grandmean"})
    data = prepare_data(frame, ["y", "x", "w"], roles)
    y = frame.y.to_numpy()
    np.testing.assert_allclose(data.column("y"), y - y.mean())
    school_mean_x = {20: (0.5 + 5.5) / 2, 10: 1.5, 30: (3.5 + 4.5 + 6.5 + 7.5) / 4}
    expected_x = frame.x - frame.school.map(school_mean_x)
    np.testing.assert_allclose(data.column("x"), expected_x)
    np.testing.assert_allclose(data.centering["x"].center, [3.0, 1.5, 5.5])
    # a between variable's grand mean counts every row (clusters weighted by size)
    assert data.centering["w"].center == pytest.approx(frame.w.mean())
    assert data.centering["y"].kind == "grandmean" and data.centering["x"].kind == "groupmean"


def test_three_level_groupmean_uses_the_level2_cluster():
    data = prepare_data(three_level_frame(), ["y"],
                        Roles(clusters=("school", "class"), centering={"y": "groupmean"}))
    np.testing.assert_allclose(data.column("y"), [-0.5, 0.5, -0.5, 0.5, 0.0, -0.5, 0.5])


# ----------------------------------------------------------------------------- DEFINE

def test_define_constants_arithmetic_and_cluster_mean():
    frame = two_level_frame()
    frame.loc[0, "x"] = np.nan
    roles = Roles(clusters=("school",), between=("xm",), define=(
        ("one", "1"),
        ("z", "2*y - x/2 + y**2"),
        ("xm", "cluster_mean(x)"),
        ("d", "sqrt(abs(-z)) + exp(0) + log(one)"),
        ("y", "y / 10"),
    ))
    data = prepare_data(frame, ["y", "one", "z", "xm", "d"], roles)
    y, x = frame.y.to_numpy(), frame.x.to_numpy()
    z = 2 * y - x / 2 + y ** 2
    np.testing.assert_array_equal(data.column("one"), np.ones(8))
    np.testing.assert_allclose(data.column("z"), z)
    np.testing.assert_allclose(data.column("d"), np.sqrt(np.abs(z)) + 1.0)
    np.testing.assert_allclose(data.column("y"), y / 10)
    school_mean = {20: (2.5 + 5.5) / 2, 10: 1.5, 30: (3.5 + 4.5 + 6.5 + 7.5) / 4}
    np.testing.assert_allclose(data.column("xm"), frame.school.map(school_mean))
    assert "DEFINE xm = cluster_mean(x)" in data.report


def test_define_cluster_mean_over_a_named_cluster_and_undefined_values():
    roles = Roles(clusters=("school", "class"), between_levels={"sm": 3}, define=(
        ("sm", "cluster_mean(y, SCHOOL)"), ("ly", "log(y - 2)")))
    data = prepare_data(three_level_frame(), ["y", "sm", "ly"], roles)
    np.testing.assert_allclose(data.column("sm"), [2.5] * 4 + [6.0] * 3)
    assert np.isnan(data.column("ly")[:2]).all()
    assert "DEFINE ly = log(y - 2): undefined in 2 row(s) (rows 1, 2), set to missing" \
        in data.report


# ----------------------------------------------------------------------------- bad input

def test_error_class_is_a_jaxsem_error():
    assert issubclass(DataError, JaxsemError)


def test_unknown_analysis_variable_lists_close_matches():
    message = error_message(two_level_frame(), ["y", "xx"], Roles())
    assert "'xx' is not a variable in the data" in message
    assert "Close matches: x" in message


def test_unknown_role_variable_lists_close_matches():
    message = error_message(two_level_frame(), ["y", "w"],
                            Roles(clusters=("school",), between=("ww",)))
    assert "BETWEEN: 'ww' is not a variable in the data" in message and "Close matches: w" in message
    message = error_message(two_level_frame(), ["y"], Roles(clusters=("schol",)))
    assert "CLUSTER: 'schol'" in message and "school" in message


def test_unknown_centering_variable():
    message = error_message(two_level_frame(), ["y", "x"], Roles(centering={"xs": "grandmean"}))
    assert "CENTERING: 'xs' is not a variable in the data" in message and "x" in message


def test_role_variable_that_is_not_an_analysis_variable():
    message = error_message(two_level_frame(), ["y"], Roles(categorical=("x",)))
    assert "CATEGORICAL: 'x' is in the data but not an analysis variable" in message


def test_define_unknown_variable_and_function():
    message = error_message(two_level_frame(), ["z"], Roles(define=(("z", "y + q1"),)))
    assert "DEFINE z = y + q1: 'q1' is not a variable in the data" in message
    message = error_message(two_level_frame(), ["z"], Roles(define=(("z", "logit(y)"),)))
    assert "unknown function 'logit'" in message and "cluster_mean" in message


def test_define_syntax_error_shows_a_caret():
    message = error_message(two_level_frame(), ["z"], Roles(define=(("z", "y + * x"),)))
    assert "DEFINE z = y + * x" in message and "unexpected '*'" in message
    assert "    y + * x\n        ^" in message


def test_define_cluster_mean_misuse():
    frame = two_level_frame()
    message = error_message(frame, ["z"], Roles(define=(("z", "cluster_mean(y)"),)))
    assert "cluster_mean needs clusters" in message
    message = error_message(frame, ["z"], Roles(clusters=("school",),
                                                define=(("z", "cluster_mean(y + x)"),)))
    assert "cluster_mean takes a variable name" in message
    message = error_message(frame, ["z"], Roles(clusters=("school",),
                                                define=(("z", "cluster_mean(y, x)"),)))
    assert "'x' is not a cluster variable" in message
    message = error_message(crossed_frame(), ["z"], Roles(
        clusters=("school", "hood"), crossed=True, define=(("z", "cluster_mean(y)"),)))
    assert "cluster_mean(x, hood) or cluster_mean(x, school)" in message
    message = error_message(frame, ["y"], Roles(clusters=("school",),
                                                define=(("school", "school + 1"),)))
    assert "DEFINE changes the cluster variable 'school'" in message


def test_cluster_variable_with_missing_values():
    frame = pd.DataFrame({"clus": [1, np.nan, 2, np.nan, 2], "y": [1.0, 2, 3, 4, 5]})
    message = error_message(frame, ["y"], Roles(clusters=("clus",)))
    assert "cluster variable 'clus' is missing in 2 row(s) (rows 2, 4)" in message


def test_cluster_id_made_missing_by_a_missing_code():
    frame = pd.DataFrame({"clus": [1, -9, 2], "y": [1.0, 2, 3]})
    message = error_message(frame, ["y"], Roles(clusters=("clus",), missing={"ALL": (-9,)}))
    assert "'clus' is missing in 1 row(s) (row 2)" in message


def test_between_variable_that_varies_within_a_cluster():
    frame = two_level_frame()
    frame.loc[[2, 7], "w"] = [9.0, 4.0]
    message = error_message(frame, ["y", "w"], Roles(clusters=("school",), between=("w",)))
    assert ("'w' is on BETWEEN, so it must be constant within each school cluster, but it "
            "varies within school 20, school 30.") in message
    assert "In school 20 it takes the values 2, 9" in message
    assert "Remove it from BETWEEN" in message and "cluster_mean(w)" in message


def test_level3_variable_that_varies_within_a_school():
    roles = Roles(clusters=("school", "class"), between_levels={"t": 3})
    message = error_message(three_level_frame(), ["y", "t"], roles)
    assert "constant within each school cluster" in message and "school 1, school 2" in message
    assert "t_mean = cluster_mean(t, school)" in message
    roles = Roles(clusters=("school", "class"), between=("y",))
    message = error_message(three_level_frame(), ["y"], roles)
    assert "class 1 (in school 1)" in message


def test_crossed_between_variable_checked_per_factor():
    roles = Roles(clusters=("school", "hood"), crossed=True, between_levels={"a": 2})
    message = error_message(crossed_frame(), ["y", "a"], roles)
    assert "constant within each hood cluster, but it varies within hood 7, hood 8" in message
    assert "a_mean = cluster_mean(a, hood)" in message


def test_within_and_between_overlap():
    message = error_message(two_level_frame(), ["y", "x"],
                            Roles(clusters=("school",), within=("x",), between=("X",)))
    assert "'x' is on both WITHIN and BETWEEN" in message


def test_cluster_variable_listed_as_analysis_variable():
    message = error_message(two_level_frame(), ["y", "school"], Roles(clusters=("school",)))
    assert "cluster variable 'school' is also listed as an analysis variable" in message


def test_role_combinations_that_need_other_clusters():
    frame = two_level_frame()
    assert "need a multilevel model" in error_message(frame, ["y", "x"], Roles(within=("x",)))
    message = error_message(frame, ["y", "w"],
                            Roles(clusters=("school",), between_levels={"w": 3}))
    assert "at level 3 but the model has 2 levels" in message
    message = error_message(frame, ["y"], Roles(clusters=("school",), crossed=True))
    assert "CROSSCLASSIFIED needs exactly two cluster variables" in message


def test_categorical_with_a_single_category():
    frame = pd.DataFrame({"u": [2, 2, np.nan, 2], "y": [1.0, 2, 3, 4]})
    message = error_message(frame, ["y", "u"], Roles(categorical=("u",)))
    assert "'u' has a single observed category (2)" in message


def test_categorical_with_non_integer_codes():
    frame = pd.DataFrame({"u": [1, 2, 1.5, 2]})
    message = error_message(frame, ["u"], Roles(categorical=("u",)))
    assert "'u' has non-integer values (1.5 in row 3)" in message


def test_categorical_with_too_many_categories():
    frame = pd.DataFrame({"u": np.arange(12)})
    message = error_message(frame, ["u"], Roles(categorical=("u",)))
    assert "'u' has 12 categories" in message and "at most 10" in message
    assert "max_categories" in message


def test_variable_entirely_missing_after_codes():
    frame = pd.DataFrame({"y": [-99.0, -99.0], "x": [1.0, 2.0]})
    message = error_message(frame, ["y", "x"], Roles(missing={"y": (-99,)}))
    assert "variable 'y' is missing in all 2 rows after the missing codes -99" in message


def test_bad_missing_code_and_undeclared_dot():
    frame = pd.DataFrame({"y": ["1", ".", "3"]})
    assert "'abc' is not a number, '.' or '*'" in error_message(
        frame, ["y"], Roles(missing={"y": ("abc",)}))
    message = error_message(frame, ["y"], Roles())
    assert "variable 'y', row 2: '.' is not a number" in message
    assert "MISSING = ." in message


def test_empty_data_and_empty_selection():
    frame = two_level_frame()
    assert "the data have no rows" in error_message(frame.iloc[:0], ["y"], Roles())
    assert "no analysis variables" in error_message(frame, [], Roles())
    assert "USEVARIABLES is empty" in error_message(frame, ["y"], Roles(usevariables=()))
    message = error_message(frame, ["y", "x"], Roles(usevariables=("y",)))
    assert "analysis variable(s) x not on USEVARIABLES" in message


def test_usevariables_may_hold_more_than_the_model_uses():
    data = prepare_data(two_level_frame(), ["y"],
                        Roles(clusters=("school",), usevariables=("y", "x", "school")))
    assert data.names == ("y",)
    assert "on USEVARIABLES but not used in the model: x" in data.report


def test_defined_variable_that_is_entirely_missing():
    frame = pd.DataFrame({"y": [1.0, 2.0], "x": [0.0, -1.0]})
    message = error_message(frame, ["y", "z"], Roles(define=(("z", "log(x)"),)))
    assert "variable 'z' is missing in all 2 rows" in message


def test_centering_errors():
    frame = two_level_frame()
    message = error_message(frame, ["y", "w"], Roles(clusters=("school",), between=("w",),
                                                     centering={"w": "groupmean"}))
    assert "'w' is a BETWEEN variable" in message and "use GRANDMEAN" in message
    message = error_message(pd.DataFrame({"u": [0, 1, 1]}), ["u"],
                            Roles(categorical=("u",), centering={"u": "grandmean"}))
    assert "'u' is categorical and cannot be centered" in message
    message = error_message(frame, ["y"], Roles(centering={"y": "groupmean"}))
    assert "GROUPMEAN centering of 'y' needs clusters" in message
    message = error_message(crossed_frame(), ["y"], Roles(
        clusters=("school", "hood"), crossed=True, centering={"y": "groupmean"}))
    assert "ambiguous in a cross-classified model" in message
    message = error_message(frame, ["y"], Roles(centering={"y": "median"}))
    assert "CENTERING of 'y' is 'median'; use GRANDMEAN or GROUPMEAN" in message


def test_duplicate_and_infinite_values():
    frame = two_level_frame()
    assert "'Y' is listed twice" in error_message(frame, ["y", "Y"], Roles())
    frame.loc[3, "x"] = np.inf
    assert "'x' has infinite values (row 4)" in error_message(frame, ["x"], Roles())


def test_text_that_is_not_a_number():
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.0], "x": ["1", "2", "two"]})
    message = error_message(frame, ["y", "x"], Roles())
    assert "variable 'x', row 3: 'two' is not a number" in message


def test_malformed_roles():
    with pytest.raises(DataError, match="pairs of strings"):
        Roles(define=(("z",),))
    with pytest.raises(DataError, match="max_categories must be an integer of at least 2"):
        Roles(max_categories=1)
    with pytest.raises(DataError, match="Roles.within must hold variable names"):
        Roles(within=(1,))
    assert Roles(clusters="school").clusters == ("school",)
    message = error_message(two_level_frame(), ["y", "w"],
                            Roles(clusters=("school",), between_levels={"w": "2"}))
    assert "BETWEEN level of 'w' must be 2 or 3, not '2'" in message
    message = error_message(two_level_frame(), ["y"], Roles(missing={"yy": (-9,)}))
    assert "MISSING: 'yy' is not a variable in the data" in message


def test_read_text_data_file_not_found(tmp_path):
    path = tmp_path / "nope.dat"
    with pytest.raises(DataError, match="data file not found: .*nope.dat"):
        read_text_data(path, ["a"])


def test_read_text_data_wrong_number_of_fields(tmp_path):
    path = tmp_path / "d.dat"
    path.write_text("1 2 3\n\n4 5\n")
    with pytest.raises(DataError) as info:
        read_text_data(path, ["a", "b", "c"])
    message = str(info.value)
    assert "row 2 (line 3 of the file): found 2 fields but NAMES gives 3 variables" in message


def test_read_text_data_non_numeric_token(tmp_path):
    path = tmp_path / "d.dat"
    path.write_text("1 2 3\n4 x5 6\n7 8 NA\n")
    with pytest.raises(DataError) as info:
        read_text_data(path, ["a", "b", "c"])
    assert "row 2, column 2 (b): 'x5' is not a number" in str(info.value)


def test_read_text_data_empty_field_and_bad_names(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1,,3\n")
    with pytest.raises(DataError, match=r"row 1: field 2 \(b\) is empty between two commas"):
        read_text_data(path, ["a", "b", "c"])
    with pytest.raises(DataError, match="NAMES lists 'A' twice"):
        read_text_data(path, ["a", "A", "c"])
