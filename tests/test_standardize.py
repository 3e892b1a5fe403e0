"""STDYX (jaxsem.standardize): ML against lavaan's std.all with its delta-method SEs
(bench/peers/std_references.R, outputs/std_lavaan.json), Bayes against the same on a
large sample, and OUTPUT: STDYX in `jaxsem run`."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jaxsem
from jaxsem.cli import main
from jaxsem.run import run_input

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((ROOT / "bench/peers/outputs/std_lavaan.json").read_text())
DEMO = ROOT / "bench/peers/data/Demo.twolevel.csv"
LEVEL = {"within": 1, "between": 2}


def _matched(table, rows):
    """(ours, lavaan) row pairs, lavaan's exogenous-covariate rows aside."""
    out = []
    for ref in rows:
        ours = table[(table.lhs == ref["lhs"]) & (table.op == ref["op"])
                     & (table.rhs == ref["rhs"])
                     & (table.block.map(lambda b: LEVEL.get(b, 1)) == ref["level"])]
        if ref["op"] == "~1" and ref["est"] == 0 and ours.empty:
            continue          # lavaan lists means fixed at 0 that jaxsem leaves out
        assert len(ours) == 1, ref
        out.append((ours.iloc[0], ref))
    return out


@pytest.mark.parametrize("name", ["tutorial", "path_mediation", "single_level_cfa"])
def test_ml_stdyx_matches_lavaan_std_all(name):
    """Estimates within 1e-5, delta-method SEs within 1e-4 relative (lavaan 0.6.14)."""
    reference = REFERENCE[name]
    cluster = None if name == "single_level_cfa" else "cluster"
    fit = jaxsem.Model(reference["model"]).fit(pd.read_csv(DEMO), cluster=cluster,
                                              estimator="ml")
    pairs = _matched(fit.standardized(), reference["rows"])
    assert len(pairs) >= 12
    for ours, ref in pairs:
        assert ours.estimate == pytest.approx(ref["est_std"], abs=1e-5), ref
        if ref["se"]:
            assert ours.se == pytest.approx(ref["se"], rel=1e-4), ref


def test_bayes_stdyx_is_near_the_ml_value_on_a_large_sample():
    """Per-draw standardization: posterior medians within 0.25 posterior SD of lavaan's
    ML std.all (2500 observations, 200 clusters)."""
    reference = REFERENCE["path_mediation"]
    fit = jaxsem.Model(reference["model"]).fit(pd.read_csv(DEMO), cluster="cluster",
                                              fbiterations=2000, chains=2, bseed=3,
                                              progress=False)
    for ours, ref in _matched(fit.standardized(), reference["rows"]):
        if ref["se"]:
            assert abs(ours.estimate - ref["est_std"]) < 0.25 * ours.posterior_sd, ref


def _ug_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    shutil.copy(ROOT / f"configs/mplus_ug/{name}.dat", tmp_path / f"{name}.dat")
    text = (ROOT / f"configs/mplus_ug/{name}.inp").read_text()
    assert old in text
    (tmp_path / f"{name}.inp").write_text(text.replace(old, new))
    return tmp_path / f"{name}.inp"


def test_run_writes_stdyx_and_it_is_the_formula_by_hand(tmp_path):
    """UG ex9.1b (MLR, latent covariate): the within-level standardized slope is
    b sd(x_w) / sd(y_w), var(y_w) = b^2 var(x_w) + theta, from the unstandardized rows."""
    source = _ug_copy(tmp_path, "ex9_1b", "OUTPUT: TECH1;", "OUTPUT: TECH1 STDYX;")
    result = run_input(source, progress=False)
    report = (tmp_path / "ex9_1b.out").read_text()
    assert "STANDARDIZED MODEL RESULTS" in report and "STDYX Standardization" in report
    rows = {(p["level"], p["section"], p["lhs"], p["rhs"]): p
            for p in result.results["parameters"]}
    std = {(p["level"], p["section"], p["lhs"], p["rhs"]): p
           for p in result.results["standardized"]}
    b = rows[("within", "ON", "Y", "X")]["estimate"]
    var_x = rows[("within", "Variances", "X", None)]["estimate"]
    theta = rows[("within", "Residual Variances", "Y", None)]["estimate"]
    by_hand = b * np.sqrt(var_x) / np.sqrt(b * b * var_x + theta)
    assert std[("within", "ON", "Y", "X")]["estimate"] == pytest.approx(by_hand, rel=1e-10)
    assert std[("within", "Residual Variances", "Y", None)]["estimate"] == pytest.approx(
        theta / (b * b * var_x + theta), rel=1e-10)
    assert std[("within", "ON", "Y", "X")]["se"] > 0


def test_stdyx_with_random_slopes_is_refused_before_fitting(tmp_path, capsys):
    source = _ug_copy(tmp_path, "ex9_2c", "y WITH s;\n", "y WITH s;\nOUTPUT: STDYX;\n")
    assert main(["run", str(source), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "STDYX is not available for a model with random slopes" in err
    assert not (tmp_path / "out").exists()
