"""Run a whole analysis from an Mplus input file (or a YAML config) and write its results.

>>> result = run_input("configs/mplus_ug/ex9_1a.inp", out_dir="out")   # doctest: +SKIP
>>> result.exit_code, result.files["report"], result.results["parameters"][0]  # doctest: +SKIP

This is what ``jaxsem run FILE`` does (jaxsem/cli.py):

1. read the input (:func:`jaxsem.inp.read_inp`, or :func:`read_config` for ``.yaml``)
   and refuse, in one message and before any data are read, every request that this
   runner cannot honour (SAVEDATA: BPARAMETERS with ML, ...);
2. read the data, check them against the model, and fit with the estimator the input
   names: BAYES -> :func:`jaxsem.bayes.fit_bayes` (``chains``/``seed`` override CHAINS
   and BSEED), ML/MLR -> :func:`jaxsem.ml.fit_ml`, TYPE = BASIC -> only the data summary
   and sample statistics;
3. write, next to the input or into ``out_dir``: ``<stem>.out`` (Mplus-style report),
   ``results.json`` (the same numbers as data, schema below), and what SAVEDATA / PLOT
   ask for (the analysis data with factor scores, BPARAMETERS draws,
   ``<stem>_plots/``). Files are written to a staging folder
   first and moved into place at the end: a run that fails before its results exist
   leaves nothing behind.

``results.json`` (NaN and infinities are written as ``null``)::

    jaxsem_version, input, title,
    estimator            "BAYES" | "ML" | "MLR" | "BASIC"
    status               "converged" | "not converged" | "interrupted"
    converged, interrupted, exit_code
    n_observations
    clusters             [{level, variable, n_clusters, average_cluster_size}], one per
                         cluster level (level: "between", or the level's name)
    n_free_parameters    (null for BASIC)
    loglikelihood        H0 log likelihood (ML/MLR; else null)
    information_criteria {aic, bic, sabic} (ML/MLR; else null)
    fit_statistics       ML/MLR: loglikelihood_h1, scaling_factor_h0/_h1 (MLR), chisq,
                         df, p_value, chisq_scaled, chisq_scaling, p_value_scaled (those
                         that exist: no chi-square without an unrestricted model);
                         else null
    convergence          Bayes: chains, seed, iterations, kept_iterations, thin, point,
                         bconvergence, max_psr, max_psr_parameter, psr_history
                         ML/MLR: iterations, newton_steps, max_abs_gradient, problems
    compile_seconds, sampling_seconds (Bayes; null otherwise), total_seconds
                         (the whole run from reading the input to the results, file
                         writing excluded)
    parameters           one object per row of MODEL RESULTS, in the report's order:
                         level ("within", "between", a level name, "new" for MODEL
                         CONSTRAINT parameters), section ("BY", "ON", "WITH", "Means",
                         "Intercepts", "Thresholds", "Variances", "Residual Variances",
                         "New/Additional Parameters"), lhs, rhs (upper case as Mplus
                         prints them; rhs null where Mplus prints one name), free (the
                         free-parameter number of TECH1, 0 when fixed), estimate, then
                         ML/MLR: se, est_se, p_value (two-tailed) [+ ci_lower, ci_upper
                         with OUTPUT: CINTERVAL]; Bayes: posterior_sd, p_value
                         (one-tailed), ci_lower, ci_upper (equal-tail 95%), ess_bulk,
                         rhat [+ hpd_lower, hpd_upper with OUTPUT: CINTERVAL(HPD)]
    standardized         with OUTPUT: STDYX only: the STDYX table (jaxsem.standardize),
                         rows as in parameters, without ess_bulk/rhat/intervals of ML
    sample_statistics    BASIC, or OUTPUT: SAMPSTAT: variables, n_observed, means,
                         covariances, correlations (available cases, denominator n),
                         category proportions of categorical variables; else null
    bparameters          {file, columns} when SAVEDATA: BPARAMETERS; else null
    savedata             {file, columns, missing, fscores} when SAVEDATA: FILE (the
                         analysis data; with SAVE = FSCORES also the factor scores:
                         fscores = {draws, thin, continued, columns}, draws and thin
                         null for the empirical Bayes scores of ML/MLR, continued true
                         when the draws come from continuing the chains (categorical
                         outcomes)); else null
    plots                {folder, files} when PLOT: TYPE; else null
    files                {report, results}

Exit codes (:attr:`RunResult.exit_code`): 0 converged, 1 fitted but not converged (the
results are written), 3 interrupted by Ctrl-C (the results of the finished iterations
are written). Bad input raises a :class:`~jaxsem.errors.JaxsemError` (the command line
exits with 2); Ctrl-C before any results exist raises :class:`RunInterrupted` (3).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from jaxsem.errors import DataError, JaxsemError, ModelError

__all__ = ["RunInterrupted", "RunResult", "load_analysis", "mask_timings", "read_config",
           "run_input"]

_REPORT_WIDTH = 52
FSCORES_DRAWS = 100   # SAVE = FSCORES without a number of draws
_Z975 = 1.959963984540054


class RunInterrupted(Exception):
    """Ctrl-C came before any results existed; nothing was written."""


@dataclass
class RunResult:
    """What :func:`run_input` did.

    ``estimator``: "bayes", "ml", "mlr" or "basic"; ``fit``: the BayesFit / MLFit (None
    for BASIC); ``analysis``: the :class:`jaxsem.Analysis` (None for BASIC); ``data``:
    the :class:`jaxsem.Data`; ``results``: the content of results.json; ``report``: the
    text of ``<stem>.out``; ``files``: what was written (``report``, ``results``, and
    ``bparameters`` / ``plots`` when asked for).
    """
    input_path: Path
    out_dir: Path
    estimator: str
    fit: object | None
    analysis: object | None
    data: object
    results: dict
    report: str
    files: dict[str, Path]
    converged: bool
    interrupted: bool

    @property
    def exit_code(self) -> int:
        """0 converged, 1 not converged, 3 interrupted."""
        return 3 if self.interrupted else (0 if self.converged else 1)


# ----------------------------------------------------------------------------- the job

@dataclass
class _Job:
    """One analysis to run, whatever file it came from."""
    source: str                       # name used in messages
    path: Path
    kind: str                         # "inp" or "yaml"
    text: str                         # echoed in the report
    title: str
    estimator: str                    # bayes / ml / mlr / basic
    output: dict[str, str | None]
    bparameters: str | None           # as written (relative: to the output folder)
    plot: tuple[str, ...]
    data_file: str
    data_format: str
    roles: object                     # jaxsem.Roles
    idvariable: str | None
    inp: object = None                # InpFile
    savefile: str | None = None       # SAVEDATA: FILE, as written (relative: to the output folder)
    fscores: tuple[int, ...] | None = None   # SAVE = FSCORES (draws [thin]); () without them
    config: dict | None = None        # YAML config (parsed)
    analysis_input: object = None     # InpAnalysis, once the data are read


def run_input(path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
              chains: int | None = None, seed: int | None = None,
              progress: bool = True) -> RunResult:
    """Read an ``.inp`` (or ``.yaml``/``.yml`` config), fit it, write the report and
    results.json (see the module docstring). ``chains``/``seed`` override CHAINS and
    BSEED (Bayes only); ``progress`` prints the sampler's progress to stderr."""
    started = time.perf_counter()
    path = Path(path)
    job = _read_job(path)
    _check_requests(job, chains, seed)
    out = Path(out_dir) if out_dir is not None else path.resolve().parent
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: this is a file, not a folder.")
    try:
        return _run(job, out, chains, seed, progress, started)
    except KeyboardInterrupt:
        raise RunInterrupted("interrupted before any results existed; nothing was "
                             "written") from None


def load_analysis(path: str | os.PathLike):
    """The :class:`jaxsem.Analysis` (model checked against its data) of an input file or
    YAML config, without fitting anything; None for TYPE = BASIC (no model)."""
    job = _read_job(Path(path))
    job.analysis_input = _analysis_input(job)
    if job.estimator == "basic":
        return None
    return job.analysis_input.prepare()


def _run(job: _Job, out: Path, chains, seed, progress: bool, started: float) -> RunResult:
    from jaxsem.inp import _in_file  # noqa: PLC0415

    job.analysis_input = _analysis_input(job)
    fit = analysis = None
    if job.estimator == "basic":
        data = _basic_data(job)
    else:
        analysis = job.analysis_input.prepare()
        data = analysis.data
        if job.fscores is not None:
            from jaxsem.bayes.scores import check_supported  # noqa: PLC0415

            with _fscores_errors(job):
                check_supported(analysis, "Bayes" if job.estimator == "bayes" else "ML",
                                job.fscores[1] if len(job.fscores) > 1 else None)
        if "STDYX" in job.output and analysis.spec.random_cells:
            raise ModelError(f"{job.source}, line {_output_line(job, 'STDYX')}: OUTPUT: "
                             "STDYX is not available for a model with random slopes (the "
                             "variances differ by cluster; Mplus does not give it either). "
                             "Remove it; nothing was computed.")
        if job.estimator == "bayes":
            from jaxsem.bayes import BayesOptions, fit_bayes  # noqa: PLC0415

            options = dict(job.analysis_input.options)
            if chains is not None:
                options["chains"] = chains
            if seed is not None:
                options["bseed"] = seed
            with _in_file(job.source):
                opts = BayesOptions(**options, progress=progress)
            try:
                fit = fit_bayes(analysis, opts)
            except ModelError as error:
                if "interrupted before the first chunk" in str(error):
                    raise KeyboardInterrupt from None
                raise
        else:
            from jaxsem.ml import MLOptions, fit_ml  # noqa: PLC0415

            with _in_file(job.source):
                opts = MLOptions(estimator=job.estimator, **job.analysis_input.options)
            fit = fit_ml(analysis, opts)
    converged = True if fit is None else bool(fit.converged)
    interrupted = bool(getattr(fit, "interrupted", False))
    hpd = None
    if fit is not None and job.estimator == "bayes" and job.output.get("CINTERVAL", "") == "HPD":
        hpd = _hpd(fit)
    stats = (_sample_statistics(data)
             if job.estimator == "basic" or "SAMPSTAT" in job.output else None)
    stem = job.path.stem
    files = {"report": f"{stem}.out", "results": "results.json"}
    savefile = scores = None
    if job.savefile:
        scores = _factor_scores(job, fit)
        score_names = [] if scores is None else [name.upper() for name in scores.per_row()[0]]
        savefile = {"file": job.savefile, "columns": list(data.names) + score_names + [
            c for c in data.cluster_names if c not in data.names],
                    "missing": "*",
                    "fscores": None if scores is None else {
                        "draws": None if scores.expected else int(scores.within.shape[0]),
                        "thin": scores.thin, "continued": scores.continued,
                        "columns": score_names}}
    bparameters = None
    if job.bparameters:
        bparameters = {"file": job.bparameters,
                       "columns": ["chain", "iteration"] + list(fit.names)}
    plot_pages = _plot_pages(fit.names) if job.plot else None
    plots = None
    if plot_pages is not None:
        plots = {"folder": f"{stem}_plots",
                 "files": [f"{kind}_{page}.png" for page in range(1, len(plot_pages) + 1)
                           for kind in _PLOT_KINDS]}
    total_seconds = time.perf_counter() - started
    results = _results(job, fit, data, stats, hpd, converged, interrupted, total_seconds,
                       bparameters, plots, files)
    results["savedata"] = savefile
    report = _report(job, fit, data, results, stats, hpd, plot_pages)
    written = _write(out, files, report, results, job, fit, plot_pages, data, scores)
    return RunResult(input_path=job.path, out_dir=out, estimator=job.estimator, fit=fit,
                     analysis=analysis, data=data, results=results, report=report,
                     files=written, converged=converged, interrupted=interrupted)


def _factor_scores(job: _Job, fit):
    """The factor scores SAVE = FSCORES asks for (jaxsem.bayes.scores), or None: draws
    for a Bayes fit, the empirical Bayes scores for ML/MLR."""
    if job.fscores is None:
        return None
    from jaxsem.bayes import scores  # noqa: PLC0415

    with _fscores_errors(job):
        if job.estimator != "bayes":
            return scores.expected_factor_scores(fit)
        draws = job.fscores[0] if job.fscores else FSCORES_DRAWS
        thin = job.fscores[1] if len(job.fscores) > 1 else None
        return scores.draw_factor_scores(fit, draws, thin, seed=fit.options.bseed)


@contextlib.contextmanager
def _fscores_errors(job: _Job):
    """Errors of the factor scores, located at the SAVE option's line."""
    from jaxsem.inp import _in_file  # noqa: PLC0415

    with _in_file(job.source):
        try:
            yield
        except ModelError as error:
            raise ModelError(f"line {_fscores_line(job)}: {_fscores_name(job)}: {error}"
                             ) from None


def _fscores_line(job: _Job) -> int | None:
    """Line of the factor-score request: SAVEDATA SAVE, or the config's fscores key."""
    if job.inp is not None:
        return job.inp.option("SAVEDATA", "SAVE").line
    return _yaml_line(_yaml_node(job.text), "fscores")


def _fscores_name(job: _Job) -> str:
    """The factor-score request as written, for messages."""
    if job.inp is not None:
        return f"SAVEDATA: SAVE = {job.inp.option('SAVEDATA', 'SAVE').value}"
    return f"fscores: {job.config['fscores_text']}"


def _read_job(path: Path) -> _Job:
    if path.suffix.lower() in (".yaml", ".yml"):
        return _job_from_config(path)
    from jaxsem.inp import _file_name, read_inp  # noqa: PLC0415

    inp = read_inp(path)
    file_option = inp.option("DATA", "FILE")
    bparameters, savefile = (
        None if option is None else _file_name(option.raw)
        for option in (inp.option("SAVEDATA", "BPARAMETERS"), inp.option("SAVEDATA", "FILE")))
    fmt = inp.data.format
    return _Job(source=inp.source, path=path, kind="inp", text=inp.text, title=inp.title,
                estimator=inp.analysis.estimator, output=dict(inp.output),
                bparameters=bparameters, plot=tuple(inp.plot), savefile=savefile,
                data_file=inp.data.file_written or (file_option.value if file_option else ""),
                data_format="FREE" if fmt == "free" else f"FIXED {fmt.text}",
                roles=inp.roles, idvariable=inp.idvariable, inp=inp,
                fscores=inp.savedata.get("SAVE", {}).get("FSCORES"))


def _analysis_input(job: _Job):
    if job.kind == "inp":
        return job.inp.to_analysis()
    return _config_analysis(job)


# ----------------------------------------------------------------------------- refusals

def _check_requests(job: _Job, chains, seed) -> None:
    """Every request this runner cannot honour, refused together before any data are
    read or anything is fitted."""
    refused: list[tuple[int | None, str]] = []
    bayes = job.estimator == "bayes"
    basic = job.estimator == "basic"

    def output_line(word: str) -> int | None:
        return _output_line(job, word)

    if basic:
        for name in ("TECH1", "TECH8", "CINTERVAL", "STDYX"):
            if name in job.output:
                refused.append((output_line(name), f"OUTPUT: {name} (TYPE = BASIC fits no "
                                                   "model)"))
    kind = job.output.get("CINTERVAL")
    if not bayes and not basic and kind in ("HPD", "EQTAIL"):
        refused.append((output_line("CINTERVAL"), f"OUTPUT: CINTERVAL({kind}) (Bayes "
                        f"credibility intervals; ESTIMATOR = {job.estimator.upper()} gives "
                        "Wald intervals with plain CINTERVAL)"))
    if job.fscores is not None:
        line, name = _fscores_line(job), _fscores_name(job)
        if basic:
            refused.append((line, f"{name} (TYPE = BASIC fits no model)"))
        elif job.fscores and (job.fscores[0] < 2 or min(job.fscores) < 1):
            refused.append((line, f"{name} (at least 2 draws and a thinning interval of at "
                                  "least 1)"))
        elif job.fscores and not bayes:
            refused.append((line, f"{name} (a number of draws is for ESTIMATOR = BAYES; "
                                  f"ESTIMATOR = {job.estimator.upper()} saves the empirical "
                                  "Bayes scores: ask for the factor scores without one)"))
    if job.bparameters and not bayes:
        refused.append((_option_line(job, "SAVEDATA", "BPARAMETERS"),
                        "SAVEDATA: BPARAMETERS (saves Bayes draws; this analysis uses "
                        f"{'TYPE = BASIC' if basic else 'ESTIMATOR = ' + job.estimator.upper()})"))
    if job.plot:
        line = _option_line(job, "PLOT", "TYPE")
        if not bayes:
            refused.append((line, f"PLOT: TYPE = {' '.join(job.plot)} (jaxsem draws trace, "
                                  "autocorrelation and posterior plots of Bayes fits only)"))
    if refused:
        items = sorted(set(refused), key=lambda item: (item[0] or 0, item[1]))
        listing = "\n".join(f"  line {line}: {what}" if line else f"  {what}"
                            for line, what in items)
        raise ModelError(f"{job.source}: {len(items)} request(s) in this input cannot be "
                         f"run by jaxsem yet:\n{listing}\nRemove them and run again; "
                         "nothing was computed.")
    if not bayes and (chains is not None or seed is not None):
        given = " and ".join(f"--{n}" for n, v in (("chains", chains), ("seed", seed))
                             if v is not None)
        raise ModelError(f"{given} set CHAINS / BSEED of ESTIMATOR = BAYES, but "
                         f"{job.source} uses "
                         f"{'TYPE = BASIC' if basic else 'ESTIMATOR = ' + job.estimator.upper()}"
                         f"; remove {given}.")
    if chains is not None and chains < 1:
        raise ModelError(f"--chains must be at least 1, not {chains}.")
    if seed is not None and seed < 0:
        raise ModelError(f"--seed must be 0 or more, not {seed}.")


def _option_line(job: _Job, command: str, name: str) -> int | None:
    if job.inp is None:
        return None
    option = job.inp.option(command, name)
    return option.line if option else None


def _output_line(job: _Job, word: str) -> int | None:
    """Line of an OUTPUT request (a unique prefix of at least four letters counts)."""
    if job.inp is None or "OUTPUT" not in job.inp.sections:
        return None
    section = job.inp.sections["OUTPUT"]
    body = re.sub(r"![^\n]*", lambda m: " " * len(m.group()), section.body)
    for match in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", body):
        token = match.group().upper()
        if token == word or (len(token) >= 4 and word.startswith(token)):
            return section.body_line + body.count("\n", 0, match.start())
    return section.line


# ----------------------------------------------------------------------------- YAML

_CONFIG_KEYS = ("title", "data", "names", "model", "syntax", "within", "between",
                "cluster", "categorical", "missing", "estimator", "options", "output",
                "bparameters", "savedata", "fscores", "plot")
_BAYES_CONFIG_OPTIONS = ("chains", "biterations", "fbiterations", "thin", "bseed",
                         "bconvergence", "point")
_ML_CONFIG_OPTIONS = ("random_starts", "seed", "max_iterations", "tolerance")


def read_config(path: str | os.PathLike) -> dict:
    """Read and check a YAML run config; returns the config with defaults filled in.

    Keys: ``data`` (path relative to the YAML file; ``.csv`` with a header row, or
    whitespace-separated text such as ``.dat`` with ``names``), ``names``, ``model``
    (text), ``syntax`` (``lavaan`` or ``mplus``; detected when absent), ``within``,
    ``between``, ``categorical`` (lists of names), ``cluster`` (a name, or two names
    highest level first), ``missing`` (a code or list of codes for every variable, or a
    mapping variable -> codes), ``estimator`` (bayes, ml, mlr or basic; default MLR with
    clusters, ML without), ``options`` (Bayes: chains, biterations (max or [max, min]),
    fbiterations, thin, bseed, bconvergence, point; ML/MLR: random_starts, seed,
    max_iterations, tolerance), ``output`` (list: tech1, tech8, cinterval,
    cinterval(hpd), sampstat), ``bparameters`` (file name), ``savedata`` (file name:
    the analysis data), ``fscores`` (with savedata: true, or for Bayes a number of draws
    n or [n, thin], as SAVE = FSCORES), ``plot`` (list: plot1, plot2, plot3), ``title``.
    """
    return _job_from_config(Path(path)).config


def _job_from_config(path: Path) -> _Job:
    import yaml  # noqa: PLC0415

    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    except FileNotFoundError:
        raise ModelError(f"config file not found: {path} (looked in "
                         f"{path.resolve().parent})") from None
    except OSError as exc:
        raise ModelError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        node = yaml.compose(text)
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(f"{source}: not valid YAML: {exc}") from None

    def fail(key: str, message: str, kind=ModelError) -> JaxsemError:
        line = _yaml_line(node, key)
        where = f"{source}, line {line}" if line else source
        return kind(f"{where}: {key}: {message}")

    if not isinstance(config, dict):
        raise ModelError(f"{source}: a run config is a YAML mapping with keys such as "
                         "data, model, cluster, estimator.")
    config = {str(k).lower(): v for k, v in config.items()}
    unknown = [k for k in config if k not in _CONFIG_KEYS]
    if unknown:
        import difflib  # noqa: PLC0415

        hints = [f"{k} (did you mean {', '.join(difflib.get_close_matches(k, _CONFIG_KEYS, 1))}?)"
                 if difflib.get_close_matches(k, _CONFIG_KEYS, 1) else k for k in unknown]
        raise ModelError(f"{source}: unknown key(s) {', '.join(hints)}; the keys are "
                         f"{', '.join(_CONFIG_KEYS)}.")
    for key in ("data", "model"):
        if key not in config and not (
                key == "model" and str(config.get("estimator", "")).lower() == "basic"):
            raise ModelError(f"{source}: the config has no '{key}'; add {key}: ...")
        if key in config and (not isinstance(config[key], str) or not config[key].strip()):
            what = "the data file name" if key == "data" else "the model text"
            raise fail(key, f"give {what} (a string).")

    def names(key: str) -> tuple[str, ...]:
        value = config.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(value.replace(",", " ").split())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise fail(key, "give a list of variable names.")

    cluster = names("cluster")
    if len(cluster) > 2:
        raise fail("cluster", "give one cluster variable (two levels) or two (three "
                              "levels, highest first).")
    syntax = config.get("syntax")
    if syntax is not None and str(syntax).lower() not in ("lavaan", "mplus"):
        raise fail("syntax", f"'{syntax}' is not a syntax; use lavaan or mplus.")
    estimator = str(config.get("estimator") or ("mlr" if cluster else "ml")).lower()
    if estimator not in ("bayes", "ml", "mlr", "basic"):
        raise fail("estimator", f"'{config.get('estimator')}' is not available; use bayes, "
                                "ml, mlr or basic.")
    options = config.get("options") or {}
    if not isinstance(options, dict):
        raise fail("options", "give a mapping, e.g. options: {chains: 4, bseed: 1}.")
    allowed = (_BAYES_CONFIG_OPTIONS if estimator == "bayes" else
               _ML_CONFIG_OPTIONS if estimator in ("ml", "mlr") else ())
    options = {str(k).lower(): v for k, v in options.items()}
    bad = [k for k in options if k not in allowed]
    if bad:
        raise fail("options", f"{', '.join(bad)} is not an option of estimator "
                              f"{estimator.upper()}; its options are "
                              f"{', '.join(allowed) or 'none'}.")
    if "biterations" in options:
        value = options["biterations"]
        if isinstance(value, int):
            options["biterations"] = (value, 0)
        elif (isinstance(value, list) and len(value) == 2
              and all(isinstance(v, int) for v in value)):
            options["biterations"] = (value[0], value[1])
        else:
            raise fail("options", "biterations is a number or [max, min].")
    if "point" in options:
        options["point"] = str(options["point"]).lower()
    output: dict[str, str | None] = {}
    requests = config.get("output") or []
    if isinstance(requests, str):
        requests = requests.split()
    if not isinstance(requests, list):
        raise fail("output", "give a list, e.g. output: [tech1, tech8].")
    for request in requests:
        match = re.fullmatch(r"\s*([A-Za-z0-9]+)\s*(?:\(\s*([A-Za-z]+)\s*\))?\s*", str(request))
        word = match.group(1).upper() if match else ""
        argument = match.group(2).upper() if match and match.group(2) else None
        if word not in ("TECH1", "TECH8", "CINTERVAL", "SAMPSTAT", "STDYX") or (
                argument and (word != "CINTERVAL" or argument not in ("HPD", "EQTAIL"))):
            raise fail("output", f"'{request}' is not available; use tech1, tech8, "
                                 "cinterval, cinterval(hpd), cinterval(eqtail), sampstat, "
                                 "stdyx.")
        output[word] = argument
    plot = config.get("plot") or []
    if plot is True:
        plot = ("PLOT2",)
    elif isinstance(plot, str):
        plot = tuple(plot.upper().split())
    elif isinstance(plot, list):
        plot = tuple(str(p).upper() for p in plot)
    else:
        raise fail("plot", "give a list such as [plot2].")
    if any(p not in ("PLOT1", "PLOT2", "PLOT3") for p in plot):
        raise fail("plot", "the plot types are plot1, plot2, plot3.")
    bparameters, savedata = config.get("bparameters"), config.get("savedata")
    for key, value in (("bparameters", bparameters), ("savedata", savedata)):
        if value is not None and not isinstance(value, str):
            raise fail(key, "give a file name.")
    fscores = config.get("fscores")
    config["fscores_text"] = str(fscores)
    if fscores is False or fscores is None:
        fscores = None
    elif fscores is True:
        fscores = ()
    elif isinstance(fscores, int) and not isinstance(fscores, bool):
        fscores = (fscores,)
    elif (isinstance(fscores, list) and len(fscores) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in fscores)):
        fscores = tuple(fscores)
    else:
        raise fail("fscores", "give true, a number of draws, or [draws, thin].")
    if fscores is not None and savedata is None:
        raise fail("fscores", "the factor scores are saved with the analysis data: add "
                              "savedata: <file name>.")
    missing = config.get("missing")
    if missing is not None:
        if isinstance(missing, (int, float, str)) and not isinstance(missing, bool):
            missing = {"ALL": (missing,)}
        elif isinstance(missing, list):
            missing = {"ALL": tuple(missing)}
        elif isinstance(missing, dict):
            missing = {str(k): tuple(v) if isinstance(v, list) else (v,)
                       for k, v in missing.items()}
        else:
            raise fail("missing", "give a code, a list of codes, or a mapping variable -> "
                                  "codes.")
        for codes in missing.values():
            for code in codes:
                if isinstance(code, bool) or not (isinstance(code, (int, float))
                                                  or code in (".", "*")):
                    raise fail("missing", f"{code!r} is not a number, '.' or '*'.", DataError)
    config.update(cluster=cluster, within=names("within"), between=names("between"),
                  categorical=names("categorical"), names=names("names"),
                  estimator=estimator, options=options, output=output, plot=plot,
                  missing=missing or {}, syntax=str(syntax).lower() if syntax else None,
                  bparameters=bparameters, savedata=savedata)
    from jaxsem.data import Roles  # noqa: PLC0415

    roles = Roles(clusters=cluster, within=config["within"], between=config["between"],
                  categorical=config["categorical"])
    data_path = config["data"]
    suffix = Path(data_path).suffix.lower()
    if suffix != ".csv" and not config["names"]:
        raise fail("data", f"{data_path} is read as whitespace-separated numbers; give "
                           "the column names with names: [...] (or use a .csv file with "
                           "a header row).", DataError)
    title = str(config.get("title") or "").strip()
    return _Job(source=source, path=path, kind="yaml", text=text.replace("\r\n", "\n"),
                title=title, estimator=estimator, output=output, bparameters=bparameters,
                plot=plot, data_file=data_path,
                data_format="CSV" if suffix == ".csv" else "FREE",
                roles=roles, idvariable=None, config=config, savefile=savedata,
                fscores=fscores)


def _yaml_line(node, key: str) -> int | None:
    """1-based line of a top-level key of the composed YAML document."""
    if node is None or not hasattr(node, "value") or not isinstance(node.value, list):
        return None
    for key_node, _ in node.value:
        if str(getattr(key_node, "value", "")).lower() == key:
            return key_node.start_mark.line + 1
    return None


def _yaml_value_line(text: str, key: str) -> int:
    """Number of lines before the text of a top-level string value (block scalars start
    on the line after the key), so that model line numbers are those of the file."""
    import yaml  # noqa: PLC0415

    node = yaml.compose(text)
    for key_node, value_node in node.value:
        if str(key_node.value).lower() == key:
            style = getattr(value_node, "style", None)
            return value_node.start_mark.line + (1 if style in ("|", ">") else 0)
    return 0


def _config_analysis(job: _Job):
    """The InpAnalysis of a YAML config: data read, missing codes applied, Model built."""
    from jaxsem.data import read_text_data  # noqa: PLC0415
    from jaxsem.inp import InpAnalysis, _in_file  # noqa: PLC0415
    from jaxsem.model import Model  # noqa: PLC0415

    config = job.config
    base = job.path.resolve().parent
    data_path = Path(config["data"]).expanduser()
    data_path = data_path if data_path.is_absolute() else base / data_path
    where = f"{job.source}, line {_yaml_line(_yaml_node(job.text), 'data') or '?'}"
    if not data_path.is_file():
        raise DataError(f"{where}: data file not found: {data_path} (relative names are "
                        f"looked up in the config's folder {base}).")
    symbols = sorted({c for codes in config["missing"].values() for c in codes
                      if isinstance(c, str)})
    with _in_file(job.source):
        if data_path.suffix.lower() == ".csv":
            try:
                frame = pd.read_csv(data_path, header=None if config["names"] else "infer",
                                    names=list(config["names"]) or None,
                                    na_values=symbols or None)
            except (ValueError, pd.errors.ParserError) as exc:
                raise DataError(f"{where}: cannot read {data_path} as CSV: {exc}") from None
        else:
            frame = read_text_data(data_path, config["names"], missing_codes=symbols)
    frame.columns = [str(c) for c in frame.columns]
    for key, codes in config["missing"].items():
        numbers = [c for c in codes if not isinstance(c, str)]
        if not numbers:
            continue
        if key.upper() == "ALL":
            columns = list(frame.columns)
        else:
            columns = [c for c in frame.columns if c.lower() == key.lower()]
            if not columns:
                raise DataError(f"{job.source}: missing: '{key}' is not a column of "
                                f"{data_path.name} ({', '.join(frame.columns[:12])}).")
        for column in columns:
            frame.loc[frame[column].isin(numbers), column] = np.nan
    model = None
    if job.estimator != "basic":
        pad = "\n" * _yaml_value_line(job.text, "model")
        roles = job.roles
        with _in_file(job.source):
            model = Model(pad + config["model"], dialect=config["syntax"],
                          within=roles.within, between=roles.between,
                          categorical=roles.categorical, clusters=roles.clusters,
                          names=list(frame.columns))
            model.partable  # model errors now, with the file's name  # noqa: B018
    return InpAnalysis(model=model, frame=frame, cluster=job.roles.clusters or None,
                       estimator=job.estimator, options=dict(config["options"]),
                       centering={}, define=(), usevariables=None, source=job.source)


def _yaml_node(text: str):
    import yaml  # noqa: PLC0415

    try:
        return yaml.compose(text)
    except yaml.YAMLError:
        return None


# ----------------------------------------------------------------------------- BASIC

def _basic_data(job: _Job):
    """The data checked against the VARIABLE roles (TYPE = BASIC: no model)."""
    from jaxsem.data import prepare_data  # noqa: PLC0415
    from jaxsem.inp import _in_file  # noqa: PLC0415

    run = job.analysis_input
    frame = run.frame
    clusters = {c.lower() for c in (run.cluster or ())}
    skip = clusters | ({job.idvariable.lower()} if job.idvariable else set())
    if run.usevariables:
        variables = list(run.usevariables)
    else:
        variables = [c for c in frame.columns if c.lower() not in skip]
        known = {c.lower() for c in variables}
        variables += [name for name, _ in run.define if name.lower() not in known]
    roles = replace(job.roles, clusters=tuple(run.cluster or ()), missing={},
                    centering=dict(run.centering), define=tuple(run.define),
                    usevariables=None)
    with _in_file(job.source, getattr(run, "lines", None)):
        return prepare_data(frame, variables, roles)


def _sample_statistics(data) -> dict:
    """Means, covariances and correlations of the analysis variables (available cases,
    denominator n), and category proportions of categorical variables."""
    names = list(data.names)
    categorical = [n for n in names if n in data.categories]
    continuous = [n for n in names if n not in data.categories]
    frame = pd.DataFrame(np.asarray(data.values), columns=names)
    sub = frame[continuous]
    counts = {n: int(frame[n].notna().sum()) for n in names}
    out = {"variables": continuous, "n_observed": counts,
           "means": [float(v) for v in sub.mean()],
           "covariances": sub.cov(ddof=0).to_numpy().tolist(),
           "correlations": sub.corr().to_numpy().tolist(),
           "proportions": {}}
    for name in categorical:
        codes = frame[name].dropna().astype(int)
        total = max(len(codes), 1)
        out["proportions"][name] = {str(_plain(value)): float((codes == k).sum() / total)
                                    for k, value in enumerate(data.categories[name])}
    return out


def _plain(value):
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value.item() if isinstance(value, np.generic) else value


# ----------------------------------------------------------------------------- numbers

def _clusters(data, partable=None) -> list[dict]:
    """One entry per cluster level: level name, cluster variable, counts."""
    out = []
    blocks = [b.name for b in partable.blocks if b.level > 1] if partable is not None else []
    two_level = data.levels == 2 and not data.crossed
    for position, (name, ids) in enumerate(zip(data.cluster_names, data.cluster_ids)):
        if two_level:
            level = "between"
        else:
            level = next((b for b in blocks if b.lower() == name.lower()), name)
        n = len(ids)
        out.append({"level": level, "variable": name.upper(), "n_clusters": n,
                    "average_cluster_size": data.n_obs / n if n else None})
    return out


def _rows(table) -> list[tuple[str, str, str, str | None, object]]:
    """(level, section, lhs, rhs, row) of a summary table (fit.summary() or
    fit.standardized()) in the order of MODEL RESULTS."""
    from jaxsem.bayes.report import _order, section_of  # noqa: PLC0415

    out = []
    for block in dict.fromkeys(table["block"]):
        rows = table[(table["block"] == block) & (table["random"].fillna("") == "")]
        if block == "new":
            out += [("new", "New/Additional Parameters", row.lhs.upper(), None, row)
                    for row in rows.itertuples()]
            continue
        grouped: dict[str, list] = {}
        for row in rows.itertuples():
            title, var = section_of(row)
            grouped.setdefault(title, []).append((var, row))
        for title in sorted(grouped, key=_order):
            words = title.rsplit(" ", 1)
            paired = len(words) == 2 and words[1] in ("BY", "ON", "WITH")
            for var, row in grouped[title]:
                if paired:
                    out.append((block, words[1], words[0], var, row))
                else:
                    out.append((block, title, var, None, row))
    return out


def _hpd(fit) -> dict[int, tuple[float, float]]:
    """95% highest-posterior-density interval per summary row index (free and new)."""
    import arviz as az  # noqa: PLC0415

    table = fit.summary()
    defined = fit.defined_draws()
    out = {}
    for index, row in table.iterrows():
        if row["free"]:
            values = fit.kept[:, :, int(row["free"]) - 1].ravel()
        elif row["block"] == "new" and row["lhs"] in defined:
            values = np.ravel(defined[row["lhs"]])
        else:
            continue
        low, high = az.hdi(values, hdi_prob=0.95)
        out[index] = (float(low), float(high))
    return out


def _wald(row) -> tuple[float, float]:
    if not row.free and row.kind != "defined":
        return row.estimate, row.estimate
    return row.estimate - _Z975 * row.se, row.estimate + _Z975 * row.se


def _standardized(job: _Job, table) -> list[dict]:
    """results.json rows of the STDYX table: as "parameters", without ESS and R-hat."""
    bayes = job.estimator == "bayes"
    out = []
    for level, section, lhs, rhs, row in _rows(table):
        item = {"level": level, "section": section, "lhs": lhs, "rhs": rhs,
                "free": int(row.free), "estimate": _finite(row.estimate)}
        names = (("posterior_sd", "p_value", "ci_lower", "ci_upper") if bayes
                 else ("se", "est_se", "p_value"))
        item.update({name: _finite(getattr(row, name, None)) for name in names})
        out.append(item)
    return out


def _finite(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _stdyx_lines(job: _Job, table) -> list[str]:
    """STANDARDIZED MODEL RESULTS (STDYX) of a standardized table, per level."""
    from jaxsem.bayes.report import results_by_level  # noqa: PLC0415

    bayes = job.estimator == "bayes"
    names = (("posterior_sd", "p_value", "ci_lower", "ci_upper") if bayes
             else ("se", "est_se", "p_value"))

    def row_text(var: str, row) -> str:
        values = [row.estimate] + [getattr(row, name, None) for name in names]
        if not all(v is not None and np.isfinite(v) for v in values):
            return f"    {var:<22}{_num(row.estimate):>10}"
        star = " *" if bayes and (row.ci_lower > 0 or row.ci_upper < 0) else ""
        widths = (10, 11, 11, 12, 11) if bayes else (10, 11, 11, 11)
        return (f"    {var:<22}" + "".join(f"{v:>{w}.3f}" for v, w in zip(values, widths))
                + star)

    header = ([f"{'':26}{'Estimate':>10}{'Posterior':>11}{'One-Tailed':>11}{'95% C.I.':>21}",
               f"{'':26}{'':>10}{'S.D.':>11}{'P-Value':>11}{'Lower 2.5%':>12}"
               f"{'Upper 2.5%':>11}"] if bayes else
              [f"{'':26}{'Estimate':>10}{'S.E.':>11}{'Est./S.E.':>11}{'Two-Tailed':>11}",
               f"{'':26}{'':>10}{'':>11}{'':>11}{'P-Value':>11}"])
    return ["STANDARDIZED MODEL RESULTS", "", "STDYX Standardization (per level: each "
            "level's model-implied variances;", "covariates by their sample variances; a "
            "categorical variable by its latent response)", "", *header,
            *results_by_level(table, row_text)]


def _parameters(job: _Job, fit, hpd) -> list[dict]:
    bayes = job.estimator == "bayes"
    cinterval = "CINTERVAL" in job.output
    out = []
    for level, section, lhs, rhs, row in _rows(fit.summary()):
        item = {"level": level, "section": section, "lhs": lhs, "rhs": rhs,
                "free": int(row.free), "estimate": row.estimate}
        if bayes:
            item.update(posterior_sd=row.posterior_sd, p_value=row.p_value,
                        ci_lower=row.ci_lower, ci_upper=row.ci_upper,
                        ess_bulk=row.ess_bulk, rhat=row.rhat)
            if hpd is not None:
                low, high = hpd.get(row.Index, (row.estimate, row.estimate))
                item.update(hpd_lower=low, hpd_upper=high)
        else:
            item.update(se=row.se, est_se=row.est_se, p_value=row.p_value)
            if cinterval:
                low, high = _wald(row)
                item.update(ci_lower=low, ci_upper=high)
        out.append(item)
    return out


def _results(job: _Job, fit, data, stats, hpd, converged: bool, interrupted: bool,
             total_seconds: float, bparameters, plots, files) -> dict:
    from jaxsem import __version__  # noqa: PLC0415

    estimator = job.estimator.upper()
    status = "interrupted" if interrupted else ("converged" if converged else "not converged")
    result = {"jaxsem_version": __version__, "input": job.path.name, "title": job.title,
              "estimator": estimator, "status": status, "converged": converged,
              "interrupted": interrupted,
              "exit_code": 3 if interrupted else (0 if converged else 1),
              "n_observations": int(data.n_obs),
              "clusters": _clusters(data, fit.partable if fit is not None else None),
              "n_free_parameters": None, "loglikelihood": None,
              "information_criteria": None, "fit_statistics": None, "convergence": None,
              "compile_seconds": None, "sampling_seconds": None,
              "total_seconds": total_seconds, "parameters": [],
              "sample_statistics": stats, "bparameters": bparameters, "plots": plots,
              "files": files}
    if fit is None:
        return _clean(result)
    result["n_free_parameters"] = int(fit.partable.n_free)
    result["compile_seconds"] = fit.compile_seconds
    result["parameters"] = _parameters(job, fit, hpd)
    if "STDYX" in job.output:
        result["standardized"] = _standardized(job, fit.standardized())
    if job.estimator == "bayes":
        last = fit.psr_history[-1]
        opts = fit.options
        result["sampling_seconds"] = fit.sampling_seconds
        result["convergence"] = {
            "chains": opts.chains, "seed": opts.bseed, "iterations": int(fit.draws.shape[1]),
            "kept_iterations": int(fit.kept.shape[1]), "thin": opts.thin,
            "point": opts.point, "bconvergence": opts.bconvergence,
            "fixed_iterations": opts.fbiterations,
            "max_psr": last[1], "max_psr_parameter": last[2],
            "psr_history": [[int(i), float(p), str(n)] for i, p, n in fit.psr_history]}
    else:
        measures = fit.fit_measures()
        result["n_free_parameters"] = int(measures["n_free_parameters"])
        result["loglikelihood"] = measures["loglikelihood"]
        result["information_criteria"] = {k: measures[k] for k in ("aic", "bic", "sabic")}
        result["fit_statistics"] = {
            k: measures[k] for k in ("loglikelihood_h1", "scaling_factor_h0",
                                     "scaling_factor_h1", "chisq", "df", "p_value",
                                     "chisq_scaled", "chisq_scaling", "p_value_scaled")
            if k in measures}
        result["convergence"] = {
            "iterations": int(fit.iterations), "newton_steps": int(fit.newton_steps),
            "max_abs_gradient": float(np.max(np.abs(fit.gradient))) if len(fit.gradient)
            else 0.0, "problems": list(fit.problems())}
    return _clean(result)


def _clean(value):
    """JSON-ready: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    return value


# ----------------------------------------------------------------------------- report

def _kv(label: str, value, width: int = _REPORT_WIDTH) -> str:
    text = str(value)
    return f"{label}{text:>{max(width - len(label), len(text) + 1)}}"


_HEADING = re.compile(r"^[A-Z][A-Z0-9]{3,}(?:[ (]|$)")


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """Split a fit report into (heading, body lines) at its unindented upper-case
    headings (SUMMARY OF ANALYSIS, MODEL FIT INFORMATION, MODEL RESULTS, PRIORS ...)."""
    out: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        if _HEADING.match(line) and line.split()[0].isupper():
            out.append((line, []))
        else:
            out[-1][1].append(line)
    return [(h, _trim(b)) for h, b in out if h or any(x.strip() for x in b)]


def _trim(lines: list[str]) -> list[str]:
    lines = [line for line in lines if not line.startswith("Compile time")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _report(job: _Job, fit, data, results: dict, stats, hpd, plot_pages) -> str:
    from jaxsem import __version__  # noqa: PLC0415

    estimator = results["estimator"]
    lines = [f"jaxsem {__version__}: {job.path.name}", "", "INPUT INSTRUCTIONS", ""]
    lines += [f"  {line}".rstrip() for line in job.text.rstrip().splitlines()]
    lines += ["", "INPUT READING TERMINATED NORMALLY", ""]
    if job.title:
        lines += [job.title, ""]
    fit_sections = _sections(fit.report()) if fit is not None else []
    by_heading = {heading.split(" (")[0]: body for heading, body in fit_sections}

    lines += ["SUMMARY OF ANALYSIS", "",
              _kv("Number of groups", 1),
              _kv("Number of observations", data.n_obs)]
    if fit is not None:
        lines.append(_kv("Number of free parameters", results["n_free_parameters"]))
    lines += ["", _kv("Estimator", estimator if estimator != "BASIC" else "none (TYPE = BASIC)"),
              "", "Input data file", f"  {job.data_file}",
              _kv("Input data format", job.data_format)]
    summary = [line for line in by_heading.get("SUMMARY OF ANALYSIS", [])
               if not line.startswith(("Number of observations", "Number of clusters",
                                       "Number of free parameters", "Estimator"))]
    if summary:
        lines += [""] + _trim(summary)
    if "WARNINGS" in by_heading:
        lines += ["", "WARNINGS", ""] + by_heading["WARNINGS"]
    lines += ["", "SUMMARY OF DATA", ""]
    for entry in results["clusters"]:
        lines += [f"  Cluster variable {entry['variable']} ({entry['level']} level)",
                  _kv("    Number of clusters", entry["n_clusters"]),
                  _kv("    Average cluster size", f"{entry['average_cluster_size']:.3f}"), ""]
    lines += [f"  {line}" for line in data.summary().splitlines()]
    if data.report:
        lines += ["", "  What was done to the data:"]
        lines += [f"    {line}" for line in data.report.splitlines()]
    if stats is not None:
        lines += ["", *_sample_statistics_lines(stats)]
    if fit is not None:
        lines += ["", "MODEL FIT INFORMATION", ""]
        if job.estimator == "bayes":
            conv = results["convergence"]
            lines += [_kv("Number of Free Parameters", results["n_free_parameters"]), "",
                      "Convergence (potential scale reduction, PSR)", "",
                      _kv("          Max PSR at the last check", f"{conv['max_psr']:.3f}"),
                      f"            for {conv['max_psr_parameter']}",
                      _kv("          Criterion (1 + BCONVERGENCE)",
                          f"{1 + conv['bconvergence']:.3f}"),
                      _kv("          Iterations per chain", conv["iterations"]),
                      _kv("          Kept iterations per chain", conv["kept_iterations"]),
                      "", "Posterior predictive checking (PPP) and DIC are not computed by",
                      "jaxsem yet."]
        else:
            lines += by_heading.get("MODEL FIT INFORMATION", [])
        lines += ["", "MODEL RESULTS", ""] + by_heading.get("MODEL RESULTS", [])
        if "STDYX" in job.output:
            lines += ["", *_stdyx_lines(job, fit.standardized())]
        if "CINTERVAL" in job.output:
            lines += ["", *_interval_lines(job, fit, hpd)]
        if "PRIORS" in by_heading:
            heading = next(h for h, _ in fit_sections if h.startswith("PRIORS"))
            lines += ["", heading, ""] + by_heading["PRIORS"]
        if "TECH1" in job.output:
            lines += ["", *_tech1_lines(fit)]
        if "TECH8" in job.output:
            lines += ["", "TECHNICAL 8 OUTPUT", ""]
            if job.estimator == "bayes":
                lines += by_heading.get("TECHNICAL 8", [])
            else:
                conv = results["convergence"]
                lines += ["  Optimizer: L-BFGS on minus the mean log likelihood per "
                          "observation, then Newton steps",
                          _kv("  Iterations", conv["iterations"]),
                          _kv("  Newton steps", conv["newton_steps"]),
                          _kv("  Largest |gradient| at the end",
                              f"{conv['max_abs_gradient']:.2e}"),
                          _kv("  Final log likelihood", f"{results['loglikelihood']:.3f}"),
                          "  (jaxsem does not keep the iteration history)"]
    if results["savedata"] is not None:
        lines += ["", "SAVEDATA INFORMATION", "",
                  f"  Save file: {results['savedata']['file']}",
                  "  The analysis data (after DEFINE, centering and listwise deletion; "
                  "categories", "  as in the input), one row per observation, "
                  "whitespace-separated, no header,", "  missing values as *. "
                  "Order of variables:", ""]
        lines += [f"  {k:>5}  {name.upper()}"
                  for k, name in enumerate(results["savedata"]["columns"], start=1)]
        fscores = results["savedata"]["fscores"]
        if fscores is not None and fscores["draws"] is None:
            lines += ["", "  Factor scores (SAVE = FSCORES): the empirical Bayes scores, the",
                      "  expected value of every latent value given the data at the "
                      "estimates.", "  Between-level values repeat on every row of a "
                      "cluster; B_Y is the", "  between part of a within-varying Y."]
        elif fscores is not None:
            source = ([f"  value, each from the state of a chain continued past its end "
                       f"(one every", f"  {fscores['thin']} iterations, the chains taking "
                       "turns). NAME is the posterior mean,"] if fscores["continued"] else
                      ["  value, each given one kept parameter draw "
                       f"(every {fscores['thin']} kept iterations, from", "  the end of "
                       "each chain, the chains taking turns). NAME is the posterior mean,"])
            lines += ["", f"  Factor scores (SAVE = FSCORES): {fscores['draws']} posterior "
                      "draws of every latent", *source,
                      "  NAME_MEDIAN, NAME_SD, NAME_LOWER_2.5 and NAME_UPPER_97.5 its "
                      "median,", "  standard deviation and 95% interval. Between-level "
                      "values repeat on every", "  row of a cluster; B_Y is the between "
                      "part of a within-varying Y."]
    if results["bparameters"] is not None:
        columns = results["bparameters"]["columns"]
        lines += ["", "SAVEDATA INFORMATION", "",
                  f"  Bayesian parameters (BPARAMETERS): {results['bparameters']['file']}",
                  "  Every iteration of every chain (the first half of each chain is "
                  "burn-in),", "  one row per iteration, whitespace-separated, no header. "
                  "Order of columns:", ""]
        lines += [f"  {k:>5}  {name}" for k, name in enumerate(columns, start=1)]
    if plot_pages is not None:
        lines += ["", "PLOT INFORMATION", "",
                  f"  Folder {results['plots']['folder']}: trace, autocorrelation and "
                  "posterior density plots", "  of the kept draws (the second half of "
                  "each chain), a page per six parameters:", ""]
        for page, names in enumerate(plot_pages, start=1):
            lines.append(f"  trace_{page}.png, autocorr_{page}.png, posterior_{page}.png:")
            lines += [f"      {name}" for name in names]
    lines += ["", "TIMINGS", ""]
    if results["compile_seconds"] is not None:
        lines.append(_kv("Compile time (s)", f"{results['compile_seconds']:.2f}"))
    if results["sampling_seconds"] is not None:
        lines.append(_kv("Sampling time (s)", f"{results['sampling_seconds']:.2f}"))
    lines.append(_kv("Total time (s)", f"{results['total_seconds']:.2f}"))
    status = {"converged": "normal termination" if fit is not None else
              "normal termination (data summary only)",
              "not converged": "NOT CONVERGED: the results are written but should not be "
                               "trusted",
              "interrupted": "INTERRUPTED: results from the iterations finished so far"}
    lines += ["", f"Status: {status[results['status']]} (exit code {results['exit_code']})"]
    return "\n".join(lines) + "\n"


def _interval_lines(job: _Job, fit, hpd) -> list[str]:
    bayes = job.estimator == "bayes"
    if bayes and hpd is not None:
        lines = ["CREDIBILITY INTERVALS OF MODEL RESULTS (95% highest posterior density)", "",
                 f"{'':30}{'HPD lower':>12}{'Estimate':>12}{'HPD upper':>12}"]
    elif bayes:
        lines = ["CREDIBILITY INTERVALS OF MODEL RESULTS (95% equal-tail)", "",
                 f"{'':30}{'Lower 2.5%':>12}{'Estimate':>12}{'Upper 2.5%':>12}"]
    else:
        lines = ["CONFIDENCE INTERVALS OF MODEL RESULTS (95% Wald: estimate +- 1.96 S.E.)",
                 "", f"{'':30}{'Lower 2.5%':>12}{'Estimate':>12}{'Upper 2.5%':>12}"]
    current = None
    title = None
    for level, section, lhs, rhs, row in _rows(fit.summary()):
        if level != current:
            current, title = level, None
            lines += ["", "New/Additional Parameters" if level == "new" else
                      f"{level.capitalize()} Level" if level in ("within", "between")
                      else f"Level {level.upper()}"]
        heading = f"{lhs} {section}" if rhs is not None else section
        if level != "new" and heading != title:
            title = heading
            lines += ["", f" {heading}"]
        name = rhs if rhs is not None else lhs
        if bayes and hpd is not None:
            low, high = hpd.get(row.Index, (row.estimate, row.estimate))
        elif bayes:
            low, high = ((row.ci_lower, row.ci_upper) if row.free or row.kind == "defined"
                         else (row.estimate, row.estimate))
        else:
            low, high = _wald(row)
        lines.append(f"    {name:<26}{_num(low):>12}{_num(row.estimate):>12}{_num(high):>12}")
    return lines


def _num(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _tech1_lines(fit) -> list[str]:
    """Parameter specification: the free-parameter number of every matrix cell."""
    from jaxsem.spec import _cells  # noqa: PLC0415

    spec = fit.analysis.spec
    table = fit.partable
    lines = ["TECHNICAL 1 OUTPUT", "", "     PARAMETER SPECIFICATION", "",
             "     Per level z = ALPHA + BETA z + GAMMA c + zeta, Var(zeta) = PSI, with z the",
             "     modelled variables (observed parts, then latent) and c the covariates;",
             "     BETA[y, f] holds the loading of y on f and BETA[y, x] / GAMMA[y, x] the",
             "     regression of y on x. Cells show the free-parameter number, 0 when fixed,",
             "     or the name of the random coefficient that replaces them."]
    titles = {"alpha": "ALPHA (intercepts and means)",
              "beta": "BETA (loadings and regressions: row on column)",
              "gamma": "GAMMA (regressions on covariates: row on column)",
              "psi": "PSI ((residual) variances and covariances)",
              "tau": "TAU (thresholds)"}
    for bi, block in enumerate(spec.blocks):
        cells: dict[str, dict] = {m: {} for m in titles}
        for row in table.rows:
            if row.block != block.name:
                continue
            value = row.random.upper() if row.random else str(row.free)
            for matrix, index in _cells(block, row):
                cells[matrix][index] = value
        name = (f"{block.name.upper()} LEVEL" if block.name in ("within", "between")
                else f"LEVEL {block.name.upper()}")
        lines += ["", f"     {name}"]
        variables = [v.upper() for v in block.variables]
        covariates = [c.upper() for c in block.covariates]
        for matrix, title in titles.items():
            found = cells[matrix]
            if not any(v != "0" for v in found.values()):
                continue
            if matrix == "alpha":
                rows, cols = [""], variables
                get = (lambda r, c: found.get((c,), "0"))
            elif matrix == "gamma":
                rows, cols = variables, covariates
                get = (lambda r, c: found.get((r, c), "0"))
            elif matrix == "tau":
                rows = variables[:block.n_observed]
                cols = [f"${k + 1}" for k in range(block.n_thresholds)]
                get = (lambda r, c: found.get((r, c), "0"))
            else:
                rows, cols = variables, variables
                get = (lambda r, c: found.get((r, c), "0"))
            lines += ["", f"           {title}"]
            lines += _matrix_lines(rows, cols, get, lower=matrix == "psi")
    names = fit.names
    lines += ["", "     PARAMETER NUMBERS (the free-parameter vector; BPARAMETERS columns "
              "follow this order)", ""]
    lines += [f"     {k:>5}  {name}" for k, name in enumerate(names, start=1)]
    return lines


def _matrix_lines(rows: Sequence[str], cols: Sequence[str], get, *, lower: bool = False,
                  per_page: int = 6) -> list[str]:
    out = []
    for start in range(0, len(cols), per_page):
        chunk = list(range(start, min(start + per_page, len(cols))))
        out.append(" " * 16 + "".join(f"{cols[j][:10]:>12}" for j in chunk))
        out.append(" " * 16 + "".join(f"{'_' * 8:>12}" for _ in chunk))
        for i, label in enumerate(rows):
            if lower and i < chunk[0]:
                continue
            cells = [get(i, j) for j in chunk if not (lower and j > i)]
            if not cells:
                continue
            out.append(f"      {label[:10]:<10}" + "".join(f"{c:>12}" for c in cells))
        out.append("")
    return out[:-1] if out and not out[-1] else out


def _sample_statistics_lines(stats: dict) -> list[str]:
    names = [n.upper() for n in stats["variables"]]
    lines = ["SAMPLE STATISTICS", "",
             "     Observed data, available cases (pairwise), denominator n. For TWOLEVEL",
             "     data these are total-sample statistics, not the model-based within and",
             "     between matrices Mplus prints.", ""]
    if names:
        means = stats["means"]
        cov = stats["covariances"]
        cor = stats["correlations"]
        lines += ["           Means"]
        lines += _matrix_lines([""], names, lambda r, c: _num(means[c]))
        lines += ["", "           Covariances"]
        lines += _matrix_lines(names, names, lambda r, c: _num(cov[r][c]), lower=True)
        lines += ["", "           Correlations"]
        lines += _matrix_lines(names, names, lambda r, c: _num(cor[r][c]), lower=True)
    for name, proportions in stats["proportions"].items():
        lines += ["", f"           Category proportions of {name.upper()}"]
        lines += [f"      {'Category ' + str(value):<20}{p:>10.3f}"
                  for value, p in proportions.items()]
    return lines


# ----------------------------------------------------------------------------- files

_PLOT_KINDS = ("trace", "autocorr", "posterior")
_PER_PAGE = 6


def _plot_pages(names: Sequence[str]) -> list[list[str]]:
    return [list(names[k:k + _PER_PAGE]) for k in range(0, len(names), _PER_PAGE)]


def _write(out: Path, files: dict, report: str, results: dict, job: _Job, fit,
           plot_pages, data, scores=None) -> dict[str, Path]:
    """Write everything into a staging folder inside ``out``, then move it into place;
    on any failure nothing is left behind (a folder this call created is removed)."""
    created = []
    for folder in [out, *out.parents][::-1]:
        if not folder.exists():
            created.append(folder)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".jaxsem-run-", dir=out))
    moves: list[tuple[Path, Path]] = []
    try:
        (staging / files["report"]).write_text(report, encoding="utf-8")
        moves.append((staging / files["report"], out / files["report"]))
        (staging / files["results"]).write_text(
            json.dumps(results, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        moves.append((staging / files["results"], out / files["results"]))
        written = {"report": out / files["report"], "results": out / files["results"]}
        if job.savefile:
            target = Path(job.savefile).expanduser()
            target = target if target.is_absolute() else out / target
            temporary = staging / "savedata"
            _write_savedata(data, results["savedata"]["columns"], temporary, scores)
            moves.append((temporary, target))
            written["savedata"] = target
        if job.bparameters:
            target = Path(job.bparameters).expanduser()
            target = target if target.is_absolute() else out / target
            temporary = staging / "bparameters"
            _write_bparameters(fit, temporary)
            moves.append((temporary, target))
            written["bparameters"] = target
        if plot_pages is not None:
            folder = staging / results["plots"]["folder"]
            folder.mkdir()
            _write_plots(fit, folder, plot_pages)
            moves.append((folder, out / results["plots"]["folder"]))
            written["plots"] = out / results["plots"]["folder"]
        for source, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and source.is_dir():
                shutil.rmtree(target)
            os.replace(source, target)
        return written
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_savedata(data, columns: list[str], path: Path, scores=None) -> None:
    """SAVEDATA: FILE: the analysis data as analysed, categories as in the input, the
    factor scores (jaxsem.bayes.scores; * on rows the model did not use), cluster ids
    last, missing values as Mplus's *."""
    lines = []
    table = {}
    if scores is not None:
        names, values = scores.per_row()
        for name, column in zip(names, values.T):
            text = ["*"] * data.n_obs
            for row, value in zip(scores.rows, column):
                text[row] = f"{value:.10g}"
            table[name.upper()] = text
    for k, name in enumerate(data.names):
        values = data.values[:, k]
        categories = data.categories.get(name)
        text = [("*" if np.isnan(v) else
                 str(categories[int(v)]) if categories is not None else f"{v:.10g}")
                for v in values]
        table[name] = text
    for position, name in enumerate(data.cluster_names):
        if name not in table:
            ids = data.cluster_ids[position][data.cluster_index[position]]
            table[name] = [str(v) for v in ids]
    for row in zip(*(table[name] for name in columns)):
        lines.append(" ".join(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_bparameters(fit, path: Path) -> None:
    """Mplus's BPARAMETERS layout: chain, iteration, then every free parameter."""
    chains, iterations, n_free = fit.draws.shape
    chain = np.repeat(np.arange(1, chains + 1), iterations)
    iteration = np.tile(np.arange(1, iterations + 1), chains)
    values = np.column_stack([chain, iteration, fit.draws.reshape(chains * iterations, n_free)])
    np.savetxt(path, values, fmt=["%d", "%d"] + ["%.10g"] * n_free, delimiter=" ")


def _write_plots(fit, folder: Path, pages: list[list[str]]) -> None:
    """Trace, autocorrelation and posterior density plots of the kept draws (arviz on
    matplotlib's Agg backend), six parameters a page."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import arviz as az  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415

    idata = az.from_dict(posterior={name: fit.kept[:, :, k]
                                    for k, name in enumerate(fit.names)})
    with warnings.catch_warnings():  # arviz's use of deprecated matplotlib calls
        warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
        for page, names in enumerate(pages, start=1):
            for kind, draw in (("trace", az.plot_trace), ("autocorr", az.plot_autocorr),
                               ("posterior", az.plot_posterior)):
                axes = draw(idata, var_names=names)
                figure = np.ravel(axes)[0].figure
                figure.tight_layout()
                figure.savefig(folder / f"{kind}_{page}.png", dpi=72)
                plt.close(figure)


def mask_timings(report: str) -> str:
    """The report with its timings replaced by ``<t>`` (for comparing reports)."""
    return re.sub(r"^((?:Compile|Sampling|Total) time \(s\)\s+)\S+$", r"\1<t>", report,
                  flags=re.MULTILINE)
