"""Mplus-style text of an ML/MLR fit (a printer of MLFit.summary(); nothing computed)."""
from __future__ import annotations

import numpy as np

from jaxsem.bayes.report import results_by_level


def format_ml_report(fit) -> str:
    data = fit.analysis.data
    measures = fit.fit_measures()
    mlr = fit.scores is not None
    lines = ["SUMMARY OF ANALYSIS", "",
             f"Number of observations{fit.n_obs:>30}",
             f"Number of clusters{(data.n_clusters[0] if data.n_clusters else 1):>34}",
             f"Estimator{fit.estimator:>43}",
             f"Optimizer: L-BFGS, {fit.iterations} iterations, {fit.newton_steps} Newton "
             f"steps, largest |gradient| {np.max(np.abs(fit.gradient)):.2e}",
             f"Converged{'yes' if fit.converged else 'NO':>43}", ""]
    problems = fit.problems()
    if problems:
        lines += ["WARNINGS", ""] + [f"  * {p}" for p in problems] + [""]
    if len(fit.other_solutions) > 1:
        lls = sorted((ll for ll, _ in fit.other_solutions), reverse=True)
        lines += [f"Log likelihoods of the {len(lls)} starts: "
                  + ", ".join(f"{ll:.3f}" for ll in lls), ""]
    lines += ["MODEL FIT INFORMATION", "",
              f"Number of Free Parameters{measures['n_free_parameters']:>27}", "",
              "Loglikelihood", "",
              f"          H0 Value{measures['loglikelihood']:>34.3f}"]
    if mlr and measures["scaling_factor_h0"] is not None:
        lines.append("          H0 Scaling Correction Factor"
                     f"{measures['scaling_factor_h0']:>14.4f}")
        lines.append("            for MLR")
    if "loglikelihood_h1" in measures:
        lines.append(f"          H1 Value{measures['loglikelihood_h1']:>34.3f}")
        if mlr and measures["scaling_factor_h1"] is not None:
            lines.append(f"          H1 Scaling Correction Factor"
                         f"{measures['scaling_factor_h1']:>14.4f}")
            lines.append("            for MLR")
    lines += ["", "Information Criteria", "",
              f"          Akaike (AIC){measures['aic']:>30.3f}",
              f"          Bayesian (BIC){measures['bic']:>28.3f}",
              "          Sample-Size Adjusted BIC" f"{measures['sabic']:>18.3f}",
              "            (n* = (n + 2) / 24)"]
    if "chisq" in measures:
        value = measures.get("chisq_scaled", measures["chisq"])
        p_value = measures.get("p_value_scaled", measures["p_value"])
        lines += ["", "Chi-Square Test of Model Fit", "",
                  f"          Value{value:>37.3f}" + ("*" if "chisq_scaled" in measures else ""),
                  f"          Degrees of Freedom{measures['df']:>24}"]
        if np.isfinite(p_value):
            lines.append(f"          P-Value{p_value:>35.4f}")
        if "chisq_scaling" in measures:
            lines.append(f"          Scaling Correction Factor{measures['chisq_scaling']:>17.4f}")
            lines.append("            for MLR")
    lines += ["", "MODEL RESULTS", "",
              f"{'':30}{'':>10}{'':>10}{'':>10}{'Two-Tailed':>11}",
              f"{'':30}{'Estimate':>10}{'S.E.':>10}{'Est./S.E.':>10}{'P-Value':>11}"]
    lines += results_by_level(fit.summary(), _format_row)
    lines += ["", f"Compile time {fit.compile_seconds:.2f} s, total {fit.total_seconds:.2f} s"]
    return "\n".join(lines) + "\n"


def _format_row(var: str, row) -> str:
    if not row.free and row.kind != "defined":
        return f"    {var:<26}{row.estimate:>10.3f}{0.0:>10.3f}{999.0:>10.3f}{999.0:>11.3f}"
    z = "" if np.isnan(row.est_se) else f"{row.est_se:>10.3f}"
    p = "" if np.isnan(row.p_value) else f"{row.p_value:>11.3f}"
    return f"    {var:<26}{row.estimate:>10.3f}{row.se:>10.3f}{z:>10}{p:>11}"
