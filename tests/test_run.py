"""`jaxsem run FILE`: jaxsem/run.py and its command line (UG examples, YAML configs).

Two fits are shared by most tests (module fixtures): ex9_1a (Bayes, FBITERATIONS = 200,
with TECH1 TECH8 CINTERVAL(HPD) SAMPSTAT, BPARAMETERS and PLOT) and ex9_1b (MLR with a
MODEL CONSTRAINT parameter, TECH1 TECH8 CINTERVAL). Later runs of the same model reuse
the compiled programs, which keeps this file fast.

Golden reports: tests/reference/golden/*.out, compared after masking timings and the
version; rewrite them with JAXSEM_UPDATE_GOLDEN=1 after an intended change of layout.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxsem.cli import main
from jaxsem.errors import JaxsemError
from jaxsem.run import load_analysis, mask_timings, read_config, run_input

ROOT = Path(__file__).resolve().parents[1]
UG = ROOT / "configs" / "mplus_ug"
GOLDEN = Path(__file__).parent / "reference" / "golden"

BAYES_KEYS = ["level", "section", "lhs", "rhs", "free", "estimate", "posterior_sd",
              "p_value", "ci_lower", "ci_upper", "ess_bulk", "rhat"]
ML_KEYS = ["level", "section", "lhs", "rhs", "free", "estimate", "se", "est_se", "p_value"]


def _copy(folder: Path, name: str, changes=(), new_name: str | None = None) -> Path:
    """A copy of a UG example (input and data) in ``folder`` with text replacements."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(UG / f"{name}.dat", folder / f"{name}.dat")
    text = (UG / f"{name}.inp").read_text()
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    path = folder / f"{new_name or name}.inp"
    path.write_text(text)
    return path


BAYES_CHANGES = [("BITERATIONS = 10000 (2000);", "FBITERATIONS = 200;"),
                 ("OUTPUT: TECH1 TECH8;", "OUTPUT: TECH1 TECH8 CINTERVAL(HPD) SAMPSTAT;\n"
                                          "SAVEDATA: BPARAMETERS = draws.dat;")]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    return {"bayes": _copy(folder, "ex9_1a", BAYES_CHANGES),
            "mlr": _copy(folder, "ex9_1b", [("OUTPUT: TECH1;", "OUTPUT: TECH1 TECH8 CINTERVAL;")]),
            "folder": folder}


@pytest.fixture(scope="module")
def bayes_run(inputs, tmp_path_factory):
    return run_input(inputs["bayes"], out_dir=tmp_path_factory.mktemp("bayes"), progress=False)


@pytest.fixture(scope="module")
def mlr_run(inputs, tmp_path_factory):
    return run_input(inputs["mlr"], out_dir=tmp_path_factory.mktemp("mlr"), progress=False)


def _json(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


# ----------------------------------------------------------------------------- results

def test_bayes_run_writes_report_and_results(bayes_run):
    out = bayes_run.out_dir
    assert bayes_run.exit_code == 0
    assert {p.name for p in out.iterdir()} >= {"ex9_1a.out", "results.json", "draws.dat"}
    assert not [p for p in out.iterdir() if p.name.startswith(".jaxsem")]  # no staging left
    results = _json(out)
    assert results == json.loads(json.dumps(bayes_run.results))
    assert results["estimator"] == "BAYES" and results["status"] == "converged"
    assert results["n_observations"] == 597
    assert results["clusters"] == [{"level": "between", "variable": "CLUS", "n_clusters": 60,
                                    "average_cluster_size": pytest.approx(597 / 60)}]
    assert results["n_free_parameters"] == 6 and results["loglikelihood"] is None
    assert results["information_criteria"] is None
    assert results["convergence"]["chains"] == 2 and results["convergence"]["seed"] == 2026
    assert results["convergence"]["iterations"] == 200
    for key in ("compile_seconds", "sampling_seconds", "total_seconds"):
        assert results[key] > 0
    params = results["parameters"]
    assert [list(p)[:12] for p in params] == [BAYES_KEYS] * 6
    assert all(p["hpd_lower"] <= p["estimate"] <= p["hpd_upper"] for p in params)
    first = params[0]
    assert (first["level"], first["section"], first["lhs"], first["rhs"]) == (
        "within", "ON", "Y", "X")
    assert {(p["level"], p["section"], p["lhs"], p["rhs"]) for p in params[1:]} >= {
        ("within", "Residual Variances", "Y", None), ("between", "ON", "Y", "XM"),
        ("between", "Intercepts", "Y", None)}
    assert [p["free"] for p in params] == [1, 2, 3, 4, 6, 5]
    stats = results["sample_statistics"]
    assert stats["variables"] == ["y", "x", "w", "xm"] and len(stats["covariances"]) == 4
    text = bayes_run.report
    for heading in ("INPUT INSTRUCTIONS", "SUMMARY OF ANALYSIS", "SUMMARY OF DATA",
                    "SAMPLE STATISTICS", "MODEL FIT INFORMATION", "MODEL RESULTS",
                    "CREDIBILITY INTERVALS OF MODEL RESULTS (95% highest posterior density)",
                    "TECHNICAL 1 OUTPUT", "TECHNICAL 8 OUTPUT", "SAVEDATA INFORMATION",
                    "TIMINGS"):
        assert f"\n{heading}\n" in text, heading
    assert "  OUTPUT: TECH1 TECH8 CINTERVAL(HPD) SAMPSTAT;" in text  # the input echo


def test_mlr_run_results(mlr_run):
    results = _json(mlr_run.out_dir)
    fit = mlr_run.fit
    assert mlr_run.exit_code == 0 and results["estimator"] == "MLR"
    assert results["loglikelihood"] == pytest.approx(fit.loglik)
    measures = fit.fit_measures()
    assert results["information_criteria"] == pytest.approx(
        {k: measures[k] for k in ("aic", "bic", "sabic")})
    assert results["fit_statistics"]["df"] == 1
    assert results["fit_statistics"]["chisq_scaled"] == pytest.approx(measures["chisq_scaled"])
    assert results["sampling_seconds"] is None and results["compile_seconds"] > 0
    params = results["parameters"]
    assert [list(p) for p in params] == [ML_KEYS + ["ci_lower", "ci_upper"]] * len(params)
    new = params[-1]
    assert (new["level"], new["section"], new["lhs"], new["rhs"], new["free"]) == (
        "new", "New/Additional Parameters", "BETAC", None, 0)
    by_key = {(p["level"], p["section"], p["lhs"], p["rhs"]): p for p in params}
    assert by_key[("within", "Variances", "X", None)]["free"] == 3
    assert by_key[("between", "Means", "X", None)]["free"] == 9
    slope = by_key[("within", "ON", "Y", "X")]
    assert slope["ci_lower"] == pytest.approx(slope["estimate"] - 1.959964 * slope["se"])
    gamma01, gamma10 = by_key[("between", "ON", "Y", "X")], slope
    assert new["estimate"] == pytest.approx(gamma01["estimate"] - gamma10["estimate"])
    assert "CONFIDENCE INTERVALS OF MODEL RESULTS (95% Wald" in mlr_run.report
    assert "  Newton steps" in mlr_run.report  # TECH8 of ML: the optimizer


def _model_results_rows(report: str) -> list[list[str]]:
    """The fields of each parameter line of MODEL RESULTS."""
    block = report.split("\nMODEL RESULTS\n", 1)[1]
    block = re.split(r"\n(?=[A-Z][A-Z0-9]{3,}[ (\n])", block)[0]
    return [line.split() for line in block.splitlines()
            if line.startswith("    ") and line.split()[0] not in ("Estimate", "S.D.")
            and len(line.split()) >= 3]


@pytest.mark.parametrize("which", ["bayes", "mlr"])
def test_report_and_results_json_show_the_same_numbers(which, bayes_run, mlr_run):
    run = {"bayes": bayes_run, "mlr": mlr_run}[which]
    results = _json(run.out_dir)
    rows = _model_results_rows(run.report)
    params = results["parameters"]
    assert len(rows) == len(params)
    second = "posterior_sd" if which == "bayes" else "se"
    for fields, p in zip(rows, params):
        assert fields[0] == (p["rhs"] if p["rhs"] is not None else p["lhs"])
        assert float(fields[1]) == pytest.approx(round(p["estimate"], 3), abs=6e-4)
        if p["free"] or p["level"] == "new":
            assert float(fields[2]) == pytest.approx(p[second], abs=6e-4)
            assert float(fields[3 if which == "bayes" else 4]) == pytest.approx(
                p["p_value"], abs=6e-4)
    report = run.report
    assert re.search(rf"Number of observations\s+{results['n_observations']}\n", report)
    assert re.search(r"Number of clusters\s+60\n", report)
    assert re.search(rf"Average cluster size\s+"
                     rf"{results['clusters'][0]['average_cluster_size']:.3f}\n", report)
    assert re.search(rf"Number of Free Parameters\s+{results['n_free_parameters']}\n", report)
    assert re.search(rf"Total time \(s\)\s+{results['total_seconds']:.2f}\n", report)
    if which == "mlr":
        assert re.search(rf"H0 Value\s+{results['loglikelihood']:.3f}\n", report)
        assert re.search(rf"Bayesian \(BIC\)\s+{results['information_criteria']['bic']:.3f}\n",
                         report)
    else:
        assert re.search(rf"Max PSR at the last check\s+"
                         rf"{results['convergence']['max_psr']:.3f}\n", report)


def test_bparameters_file_has_chain_iteration_and_tech1_columns(bayes_run):
    fit = bayes_run.fit
    draws = np.loadtxt(bayes_run.files["bparameters"])
    chains, iterations, n_free = fit.draws.shape
    assert draws.shape == (chains * iterations, 2 + n_free)
    assert list(draws[:iterations, 0]) == [1] * iterations
    assert list(draws[:iterations, 1]) == list(range(1, iterations + 1))
    assert draws[iterations, :2].tolist() == [2, 1]
    np.testing.assert_allclose(draws[:, 2:], fit.draws.reshape(-1, n_free), rtol=1e-9)
    columns = bayes_run.results["bparameters"]["columns"]
    assert columns == ["chain", "iteration"] + fit.names
    tech1 = bayes_run.report.split("PARAMETER NUMBERS")[1].split("\n\n")[1]
    assert [line.split(None, 1)[1] for line in tech1.splitlines()] == fit.names
    savedata = bayes_run.report.split("SAVEDATA INFORMATION")[1]
    assert "      3  within: y~x" in savedata and "      2  iteration" in savedata


def test_plot_writes_trace_autocorrelation_and_posterior_pngs(bayes_run):
    folder = bayes_run.files["plots"]
    assert folder == bayes_run.out_dir / "ex9_1a_plots"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["autocorr_1.png", "posterior_1.png", "trace_1.png"]
    assert all((folder / n).read_bytes()[:4] == b"\x89PNG" for n in names)
    assert "PLOT INFORMATION" in bayes_run.report


# ----------------------------------------------------------------------------- golden

def _normalise(report: str) -> str:
    return re.sub(r"^jaxsem \S+:", "jaxsem <version>:", mask_timings(report))


def _same_report(actual: str, expected: str) -> None:
    """Exact after masking; else every line must agree up to the last printed digit
    of its numbers (a different CPU may round one number differently)."""
    if actual == expected:
        return
    number = re.compile(r"-?\d+\.\d+(?:e[+-]\d+)?")
    a_lines, e_lines = actual.splitlines(), expected.splitlines()
    assert len(a_lines) == len(e_lines), "the report has a different number of lines"
    for k, (a, e) in enumerate(zip(a_lines, e_lines), start=1):
        if a == e:
            continue
        assert number.sub("#", a).split() == number.sub("#", e).split(), f"line {k}: {a!r}"
        for x, y in zip(number.findall(a), number.findall(e)):
            assert abs(float(x) - float(y)) <= 1.5 * 10.0 ** -len(y.split(".")[1].split("e")[0]), \
                f"line {k}: {a!r} != {e!r}"


@pytest.mark.parametrize("which", ["bayes", "mlr"])
def test_report_matches_the_golden_file(which, bayes_run, mlr_run):
    run = {"bayes": bayes_run, "mlr": mlr_run}[which]
    path = GOLDEN / f"{run.input_path.stem}_{which}.out"
    actual = _normalise(run.report)
    if os.environ.get("JAXSEM_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    _same_report(actual, path.read_text())


# ----------------------------------------------------------------------------- CLI

def test_cli_run_overrides_chains_and_seed(inputs, tmp_path, capsys):
    code = main(["run", str(inputs["bayes"]), "--out", str(tmp_path), "--chains", "3",
                 "--seed", "7", "--quiet"])
    assert code == 0
    assert "BAYES converged" in capsys.readouterr().out
    results = _json(tmp_path)
    assert results["convergence"]["chains"] == 3 and results["convergence"]["seed"] == 7
    draws = np.loadtxt(tmp_path / "draws.dat")
    assert sorted(set(draws[:, 0])) == [1, 2, 3]
    assert "Random seed                                        7" in (
        tmp_path / "ex9_1a.out").read_text()


def test_cli_same_seed_gives_the_same_results(inputs, bayes_run, tmp_path):
    assert main(["run", str(inputs["bayes"]), "--out", str(tmp_path), "--quiet"]) == 0
    again = _json(tmp_path)["parameters"]
    assert again == bayes_run.results["parameters"]


def test_non_convergence_exits_1_and_still_writes(inputs, tmp_path, capsys):
    source = _copy(tmp_path, "ex9_1a", BAYES_CHANGES + [
        ("FBITERATIONS = 200;", "FBITERATIONS = 200;\n        BCONVERGENCE = 0.0001;")],
        new_name="strict")
    assert main(["run", str(source), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    assert "NOT CONVERGED" in capsys.readouterr().out
    results = _json(tmp_path / "out")
    assert results["status"] == "not converged" and results["exit_code"] == 1
    assert "Status: NOT CONVERGED" in (tmp_path / "out" / "strict.out").read_text()


def test_interrupt_exits_3_and_writes_the_finished_iterations(inputs, tmp_path,
                                                             interrupt_second_chunk):
    assert main(["run", str(inputs["bayes"]), "--out", str(tmp_path), "--quiet"]) == 3
    results = _json(tmp_path)
    assert results["interrupted"] and results["status"] == "interrupted"
    assert results["convergence"]["iterations"] == 100
    assert np.loadtxt(tmp_path / "draws.dat").shape[0] == 2 * 100


def test_interrupt_before_any_result_exits_3_and_writes_nothing(inputs, tmp_path,
                                                                monkeypatch, capsys):
    from jaxsem.bayes import driver

    def interrupt(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(driver, "_check_finite", interrupt)
    assert main(["run", str(inputs["bayes"]), "--out", str(tmp_path / "out"), "--quiet"]) == 3
    assert "nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, change, message", [
    ("ex9_1a", ("y ON w xm;", "y ON w xm zz;"), "'zz' is not a variable"),
    ("ex9_1b", ("OUTPUT: TECH1;", "OUTPUT: TECH1;\nSAVEDATA: FILE = f.dat; "
                                  "SAVE = FSCORES (50);"),
     r"1 request\(s\).*line 22: SAVEDATA: SAVE = FSCORES \(50\) \(a number of draws is "
     r"for ESTIMATOR = BAYES; ESTIMATOR = MLR saves the empirical Bayes scores"),
    ("ex9_1a", ("OUTPUT: TECH1 TECH8;", "OUTPUT: TECH1 TECH8;\nSAVEDATA: FILE = f.dat; "
                                        "SAVE = FSCORES (1);"),
     r"1 request\(s\).*line 27: SAVEDATA: SAVE = FSCORES \(1\) \(at least 2 draws"),
])
def test_bad_input_exits_2_and_writes_nothing(name, change, message, tmp_path, capsys):
    source = _copy(tmp_path, name, [change])
    assert main(["run", str(source), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err, re.DOTALL) and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_failure_while_writing_leaves_no_partial_files(inputs, tmp_path, monkeypatch):
    from jaxsem import run as run_module

    def broken(fit, path):
        raise OSError("disk full")
    monkeypatch.setattr(run_module, "_write_bparameters", broken)
    with pytest.raises(OSError, match="disk full"):
        run_input(inputs["bayes"], out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("x")
    with pytest.raises(OSError):
        run_input(inputs["bayes"], out_dir=tmp_path / "kept", progress=False)
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["mine.txt"]


def test_cli_subprocess_bad_input_exit_code_and_message(tmp_path):
    missing = tmp_path / "nothing.inp"
    done = subprocess.run([sys.executable, "-m", "jaxsem.cli", "run", str(missing)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert "input file not found" in done.stderr and "Traceback" not in done.stderr


def test_chains_with_ml_is_refused(inputs, tmp_path, capsys):
    assert main(["run", str(inputs["mlr"]), "--chains", "2", "--out", str(tmp_path)]) == 2
    assert "--chains set CHAINS" in capsys.readouterr().err


def test_help_documents_commands_options_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for word in ("run FILE", "example", "exit codes", "0  success", "1  fitted but not",
                 "2  bad input", "3  interrupted"):
        assert word in text, word
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for word in ("--out DIR", "--chains N", "--seed S", "--quiet", "results.json",
                 "BPARAMETERS", "exit codes", "3  interrupted"):
        assert word in text, word


# ----------------------------------------------------------------------------- BASIC

def test_type_basic_gives_the_data_summary_only(tmp_path):
    source = _copy(tmp_path, "ex9_1a", [
        ("TYPE = TWOLEVEL;", "TYPE = TWOLEVEL BASIC;"), ("ESTIMATOR = BAYES;", ""),
        ("BITERATIONS = 10000 (2000);", ""), ("CHAINS = 2;", ""), ("BSEED = 2026;", ""),
        ("OUTPUT: TECH1 TECH8;", ""), ("PLOT:   TYPE = PLOT2;", "")])
    run = run_input(source, progress=False)
    assert run.exit_code == 0 and run.fit is None
    results = _json(tmp_path)
    assert results["estimator"] == "BASIC" and results["parameters"] == []
    assert results["n_observations"] == 597 and results["clusters"][0]["n_clusters"] == 60
    assert results["sample_statistics"]["variables"] == ["y", "x", "w", "xm"]
    assert "SAMPLE STATISTICS" in run.report and "MODEL RESULTS" not in run.report


# ----------------------------------------------------------------------------- YAML

def test_yaml_config_gives_the_same_estimates_as_the_input_file(inputs, mlr_run, tmp_path):
    shutil.copy(UG / "ex9_1b.dat", tmp_path / "ex9_1b.dat")
    config = tmp_path / "ex9_1b.yaml"
    config.write_text("data: ex9_1b.dat\nnames: [y, x, w, clus]\n"
                      "model: |\n  %WITHIN%\n  y ON x;\n  %BETWEEN%\n  y ON w x;\n"
                      "between: [w]\ncluster: clus\nestimator: mlr\noutput: [tech1]\n")
    assert main(["run", str(config), "--quiet"]) == 0
    results = _json(tmp_path)
    assert results["estimator"] == "MLR" and results["n_observations"] == 618
    slopes = {(p["level"], p["rhs"]): p["estimate"] for p in results["parameters"]
              if p["section"] == "ON"}
    reference = {(p["level"], p["rhs"]): p["estimate"] for p in mlr_run.results["parameters"]
                 if p["section"] == "ON"}
    assert slopes == pytest.approx(reference, abs=1e-6)
    report = (tmp_path / "ex9_1b.out").read_text()
    assert "  estimator: mlr" in report and "TECHNICAL 1 OUTPUT" in report


def test_yaml_config_saves_factor_scores(tmp_path):
    """savedata + fscores in a YAML config: the same file as SAVEDATA FILE with SAVE =
    FSCORES (n) (Demo.twolevel CFA, Bayes)."""
    config = tmp_path / "demo.yaml"
    config.write_text(f"data: {ROOT / 'bench/peers/data/Demo.twolevel.csv'}\n"
                      "model: |\n  level: 1\n    fw =~ y1 + y2 + y3\n  level: 2\n"
                      "    fb =~ y1 + y2 + y3\ncluster: cluster\nestimator: bayes\n"
                      "options: {fbiterations: 1100, chains: 2}\n"
                      "savedata: scores.dat\nfscores: [20, 10]\n")
    result = run_input(config, out_dir=tmp_path / "out", progress=False)
    fscores = result.results["savedata"]["fscores"]
    assert fscores["draws"] == 20 and fscores["thin"] == 10
    assert fscores["columns"][0] == "FW" and "FB" in fscores["columns"]
    saved = np.loadtxt(tmp_path / "out" / "scores.dat")
    assert saved.shape == (2500, len(result.results["savedata"]["columns"]))


def test_shipped_yaml_config_reads_and_checks_its_data():
    path = ROOT / "configs" / "demo_twolevel.yaml"
    config = read_config(path)
    assert config["estimator"] == "mlr" and config["syntax"] == "lavaan"
    analysis = load_analysis(path)
    assert analysis.data.n_obs == 2500 and analysis.data.n_clusters == (200,)
    assert analysis.partable.n_free == 20


@pytest.mark.parametrize("text, message", [
    ("data: d.csv\nmodel: y ~ x\nestimatr: ml\n", r"unknown key\(s\) estimatr \(did you "
                                                  r"mean estimator\?\)"),
    ("data: d.dat\nmodel: y ~ x\n", r"line 1: data: .*give the column names"),
    ("data: d.csv\nmodel: y ~ x\noptions: {chains: 2}\n",
     r"line 3: options: chains is not an option of estimator ML"),
    ("data: d.csv\nmodel: |\n  y ~ x\n  y ~~ \n", r"line 4"),
    ("data: d.csv\nmodel: y ~ x\nfscores: true\n", r"line 3: fscores: .*add savedata"),
    ("data: d.csv\nmodel: y ~ x\nsavedata: s.dat\nfscores: 50\n",
     r"line 4: fscores: 50 \(a number of draws is for ESTIMATOR = BAYES"),
])
def test_yaml_config_errors_name_the_key_and_line(text, message, tmp_path):
    (tmp_path / "d.csv").write_text("y,x\n1,2\n2,3.5\n3,3\n")
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(JaxsemError, match=message):
        run_input(config, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "d.csv"]


def test_cli_keeps_compiled_programs_in_the_cache_folder(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    np.savetxt(tmp_path / "d.dat", np.column_stack([x, 0.5 * x + rng.normal(size=60)]))
    (tmp_path / "m.inp").write_text("DATA: FILE = d.dat;\nVARIABLE: NAMES = x y;\n"
                                    "ANALYSIS: ESTIMATOR = ML;\nMODEL: y ON x;\n")
    cache = tmp_path / "cache"
    env = {**os.environ, "JAXSEM_CACHE_DIR": str(cache)}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "jaxsem.cli", "run", str(tmp_path / "m.inp"),
                               "--quiet"], capture_output=True, text=True, cwd=ROOT, env=env,
                              timeout=300)
        assert done.returncode == 0, done.stderr
    assert any(cache.rglob("*")), "compiled programs were written to JAXSEM_CACHE_DIR"


def test_savedata_file_writes_the_analysis_data(tmp_path):
    """SAVEDATA: FILE (UG ex9.1b, MLR): one row per observation with the analysis
    variables as analysed (x grand-mean centred) and the cluster id last; the report
    and results.json give the order of the columns."""
    source = _copy(tmp_path, "ex9_1b", [("OUTPUT: TECH1;",
                                         "OUTPUT: TECH1;\nSAVEDATA: FILE = saved.dat;")])
    result = run_input(source, out_dir=tmp_path / "out", progress=False)
    saved = np.loadtxt(tmp_path / "out" / "saved.dat")
    columns = result.results["savedata"]["columns"]
    assert [c.lower() for c in columns] == ["y", "x", "w", "clus"]
    raw = np.loadtxt(tmp_path / "ex9_1b.dat")
    assert saved.shape == (len(raw), 4)
    np.testing.assert_allclose(saved[:, 1], raw[:, 1] - raw[:, 1].mean(), atol=1e-8)
    np.testing.assert_allclose(saved[:, [0, 2, 3]], raw[:, [0, 2, 3]], atol=1e-8)
    info = result.report.split("SAVEDATA INFORMATION")[1]
    assert "Save file: saved.dat" in info and "      4  CLUS" in info


def test_fscores_are_saved_with_the_analysis_data(tmp_path):
    """UG ex9.9 (Bayes, SAVE = FSCORES (100)): the save file holds the analysis data,
    five summaries of each latent value (within factor per row; between parts and
    between factor per cluster, the same on every row of a cluster) and the cluster id;
    the report and results.json name the columns."""
    source = _copy(tmp_path, "ex9_9", [("FBITERATIONS = 5000;", "FBITERATIONS = 600;"),
                                       ("BPARAMETERS = ex9_9_draws.dat;", "")])
    result = run_input(source, out_dir=tmp_path / "out", progress=False)
    savedata = result.results["savedata"]
    kept = result.results["convergence"]["kept_iterations"]
    assert savedata["fscores"] == {"draws": 100, "thin": kept // 50,   # 2 chains x 50
                                   "continued": False, "columns": savedata["columns"][7:-1]}
    columns = savedata["columns"]
    assert columns[:7] == ["y1", "y2", "y3", "y4", "x", "z", "w"] and columns[-1] == "clus"
    assert columns[7:12] == ["FW", "FW_MEDIAN", "FW_SD", "FW_LOWER_2.5", "FW_UPPER_97.5"]
    assert "FB" in columns and "B_Y4_SD" in columns and "Z" not in columns
    saved = np.loadtxt(tmp_path / "out" / "ex9_9_fscores.dat")
    assert saved.shape == (result.data.n_obs, len(columns))
    fb = saved[:, columns.index("FB")]
    cluster = saved[:, -1]
    assert all(np.ptp(fb[cluster == c]) == 0 for c in np.unique(cluster))
    assert np.ptp(fb) > 0.5 and np.ptp(saved[:, columns.index("FW")]) > 1.0
    fw = saved[:, columns.index("FW")]
    assert np.all((saved[:, columns.index("FW_LOWER_2.5")] < fw)
                  & (fw < saved[:, columns.index("FW_UPPER_97.5")]))
    report = (tmp_path / "out" / "ex9_9.out").read_text()
    assert "Factor scores (SAVE = FSCORES): 100 posterior draws" in report


def test_fscores_with_missing_outcomes(tmp_path):
    """UG ex9.6 (blank = missing outcome entries), Bayes: every row gets its scores
    (missing entries are drawn along, given the row's observed ones)."""
    source = _copy(tmp_path, "ex9_6", [("TYPE = TWOLEVEL;", "TYPE = TWOLEVEL;\n"
                                        "        ESTIMATOR = BAYES; FBITERATIONS = 200;"),
                                       ("fb ON w;", "fb ON w;\nSAVEDATA: FILE = s.dat;\n"
                                        "  SAVE = FSCORES (20);")])
    result = run_input(source, out_dir=tmp_path / "out", progress=False)
    assert np.isnan(result.data.values[:, :4]).any()
    columns = result.results["savedata"]["columns"]
    assert columns[7:12] == ["FW", "FW_MEDIAN", "FW_SD", "FW_LOWER_2.5", "FW_UPPER_97.5"]
    saved = np.genfromtxt(tmp_path / "out" / "s.dat", missing_values="*")
    assert np.isfinite(saved[:, 7:-1]).all()


def test_fscores_with_categorical_outcomes_continue_the_chains(tmp_path, capsys):
    """UG ex9.3 (binary u): the scores come from states of the continued chains (the
    latent responses are part of them); a thinning interval other than the chunk's is
    refused at the SAVE line, before fitting."""
    changes = [("TYPE = TWOLEVEL;", "TYPE = TWOLEVEL;\n        ESTIMATOR = BAYES; "
                "FBITERATIONS = 200;"),
               ("u ON w y;", "u ON w y;\nSAVEDATA: FILE = s.dat;\n  SAVE = FSCORES (10);")]
    result = run_input(_copy(tmp_path, "ex9_3", changes), out_dir=tmp_path / "out",
                       progress=False)
    fscores = result.results["savedata"]["fscores"]
    assert fscores["continued"] and fscores["draws"] == 10 and fscores["thin"] == 100
    assert fscores["columns"][::5] == ["B_Y", "B_U"]
    saved = np.loadtxt(tmp_path / "out" / "s.dat")
    assert saved.shape == (result.data.n_obs, len(result.results["savedata"]["columns"]))
    assert "from the state of a chain continued" in (tmp_path / "out" / "ex9_3.out").read_text()
    changes[1] = ("u ON w y;", "u ON w y;\nSAVEDATA: FILE = s.dat;\n  SAVE = FSCORES (10 5);")
    assert main(["run", str(_copy(tmp_path / "b", "ex9_3", changes)),
                 "--out", str(tmp_path / "b" / "out")]) == 2
    err = capsys.readouterr().err
    assert "line 21: SAVEDATA: SAVE = FSCORES (10 5): with categorical outcomes the draws come " \
           "from continuing the chains, one every 100 iterations: leave out the " \
           "thinning interval" in err
    assert not (tmp_path / "b" / "out").exists()


def test_ml_fscores_are_the_empirical_bayes_scores(tmp_path):
    """UG ex9.1b (MLR, random intercept): one column per latent value (the expected
    value given the data at the estimates), the same as jaxsem.bayes.scores computes."""
    from jaxsem.bayes import scores

    source = _copy(tmp_path, "ex9_1b", [("OUTPUT: TECH1;", "OUTPUT: TECH1;\n"
                                         "SAVEDATA: FILE = s.dat; SAVE = FSCORES;")])
    result = run_input(source, out_dir=tmp_path / "out", progress=False)
    savedata = result.results["savedata"]
    assert savedata["fscores"] == {"draws": None, "thin": None, "continued": False,
                                   "columns": ["B_Y", "B_X"]}   # x: a latent covariate
    saved = np.loadtxt(tmp_path / "out" / "s.dat")
    expected = scores.expected_factor_scores(result.fit)
    cluster = expected.cluster
    np.testing.assert_allclose(saved[:, savedata["columns"].index("B_Y")],
                               expected.between[0, cluster, 0], rtol=1e-9)
    assert np.ptp(expected.between[0, :, 0]) > 0.5
    assert "the empirical Bayes scores" in (tmp_path / "out" / "ex9_1b.out").read_text()


# ------------------------------------------------------- three-level, cross-classified

def test_three_level_ex9_20_mlr_and_bayes_agree(tmp_path):
    """UG ex9.20 (a level-2 random slope varying over level-3 clusters) as written (MLR,
    the Mplus default) and with ESTIMATOR = BAYES. results.json has the three levels
    under their names. With 20 level-3 clusters, the level-3 variances' posteriors are
    skewed away from the ML mode; every other ML estimate is within 0.35 posterior SD
    of the posterior median. (Large-sample agreement: tests/test_threelevel.py.)"""
    mlr = run_input(_copy(tmp_path / "mlr", "ex9_20"), progress=False)
    bayes = run_input(_copy(tmp_path / "bayes", "ex9_20", [
        ("TYPE = THREELEVEL RANDOM;",
         "TYPE = THREELEVEL RANDOM;\n        ESTIMATOR = BAYES; FBITERATIONS = 4000;")]),
        progress=False)
    assert mlr.exit_code == 0 and bayes.exit_code == 0
    assert mlr.results["n_free_parameters"] == bayes.results["n_free_parameters"] == 10
    assert [c["n_clusters"] for c in bayes.results["clusters"]] == [80, 20]
    ml_rows = {(p["level"], p["section"], p["lhs"], p["rhs"]): p
               for p in mlr.results["parameters"] if p["free"]}
    levels = set()
    for row in bayes.results["parameters"]:
        if not row["free"]:
            continue
        key = (row["level"], row["section"], row["lhs"], row["rhs"])
        levels.add(row["level"])
        if row["level"] == "level3" and row["section"] in ("WITH", "Residual Variances"):
            continue
        z = (row["estimate"] - ml_rows[key]["estimate"]) / row["posterior_sd"]
        assert abs(z) < 0.35, (key, z)
    assert levels == {"within", "level2", "level3"}
    assert "Level LEVEL3" in bayes.report and "levels 2-3: inverse Wishart" in bayes.report


def test_cross_classified_ex9_24_agrees_with_lme4(tmp_path):
    """UG ex9.24 (two crossed random intercepts) against lme4's ML fit of y ~ x + w + z +
    (1 | level2a) + (1 | level2b) (bench/peers/lme4_threelevel.R). Slopes, intercept and
    residual variance: posterior medians within 0.35 posterior SD of ML (the intercept,
    the slowest-mixing parameter, has an ESS of about 300 here: an MC error of about 0.06
    SD). The two level variances (25 and 20 clusters, skewed posteriors): ML inside the
    95% interval."""
    ref = json.loads((ROOT / "bench/peers/outputs/lme4_threelevel.json").read_text())["crossed"]
    run = run_input(_copy(tmp_path, "ex9_24", [("BITERATIONS = (2000);",
                                                "FBITERATIONS = 10000; CHAINS = 4;")]),
                    progress=False)
    assert run.exit_code == 0 and run.results["estimator"] == "BAYES"
    fixed = ref["fixed_effects"]
    close = {("within", "ON", "Y", "X"): fixed["x"], ("level2a", "ON", "Y", "W"): fixed["w"],
             ("level2b", "ON", "Y", "Z"): fixed["z"],
             ("level2b", "Intercepts", "Y", None): fixed["(Intercept)"],
             ("within", "Residual Variances", "Y", None): ref["residual_variance"]}
    inside = {("level2a", "Residual Variances", "Y", None): ref["level2a_variance"],
              ("level2b", "Residual Variances", "Y", None): ref["level2b_variance"]}
    rows = {(p["level"], p["section"], p["lhs"], p["rhs"]): p
            for p in run.results["parameters"] if p["free"]}
    assert set(rows) == set(close) | set(inside)
    for key, value in close.items():
        row = rows[key]
        assert abs(row["estimate"] - value) < 0.35 * row["posterior_sd"], (key, row)
    for key, value in inside.items():
        assert rows[key]["ci_lower"] < value < rows[key]["ci_upper"], (key, rows[key])
