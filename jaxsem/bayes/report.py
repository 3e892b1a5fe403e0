"""Mplus-style text of a Bayes fit (a printer of BayesFit.summary(), nothing computed)."""
from __future__ import annotations

import numpy as np

SECTION_ORDER = ("BY", "ON", "WITH", "Means", "Intercepts", "Thresholds", "Variances",
                 "Residual Variances")


def section_of(row) -> tuple[str, str | None]:
    """(Mplus section title, variable printed under it) of a summary row."""
    if row.op == "=~":
        return f"{row.lhs.upper()} BY", row.rhs.upper()
    if row.op == "~":
        return f"{row.lhs.upper()} ON", row.rhs.upper()
    if row.op == "~~" and row.lhs != row.rhs:
        return f"{row.lhs.upper()} WITH", row.rhs.upper()
    if row.op == "|":
        return "Thresholds", f"{row.lhs.upper()}${row.rhs[1:]}"
    title = {"intercept": "Intercepts", "mean": "Means", "variance": "Variances",
             "residual_variance": "Residual Variances"}[row.kind]
    return title, row.lhs.upper()


def _order(title: str) -> int:
    for i, key in enumerate(SECTION_ORDER):
        if title.endswith(key) or title == key:
            return i
    return len(SECTION_ORDER)


def results_by_level(table, format_row) -> list[str]:
    """MODEL RESULTS lines of a summary table: per level, Mplus's sections in Mplus's
    order, then the New/Additional Parameters; ``format_row(name, row)`` prints a row."""
    lines = []
    for block in dict.fromkeys(table["block"]):
        rows = table[(table["block"] == block) & (table["random"].fillna("") == "")]
        if block == "new":
            lines += ["", "New/Additional Parameters"]
            lines += [format_row(row.lhs.upper(), row) for row in rows.itertuples()]
            continue
        lines += ["", f"{block.capitalize()} Level" if block in ("within", "between")
                  else f"Level {block.upper()}"]
        grouped: dict[str, list] = {}
        for row in rows.itertuples():
            title, var = section_of(row)
            grouped.setdefault(title, []).append((var, row))
        for title in sorted(grouped, key=_order):
            lines += ["", f" {title}"]
            lines += [format_row(var, row) for var, row in grouped[title]]
    return lines


def format_bayes_report(fit) -> str:
    table = fit.summary()
    opts = fit.options
    data = fit.analysis.data
    kept = fit.kept.shape[1]
    lines = ["SUMMARY OF ANALYSIS", "",
             f"Number of observations{data.n_obs:>30}",
             f"Number of clusters{(data.n_clusters[0] if data.n_clusters else 1):>34}",
             "Estimator                                          BAYES",
             f"Number of chains{opts.chains:>36}",
             f"Random seed{opts.bseed:>41}",
             f"Point estimate{opts.point.upper():>38}",
             f"Number of free parameters{fit.partable.n_free:>27}",
             f"Iterations per chain (kept: last half){fit.draws.shape[1]:>14}",
             f"Kept draws per chain{kept:>32}", "",
             "Gibbs blocks:"] + [f"  {line}" for line in fit.schedule.describe(fit.names)]
    status = ("converged" if fit.converged else
              "INTERRUPTED: results from the iterations finished so far" if fit.interrupted
              else "NOT CONVERGED: PSR above the criterion; do not trust these results")
    last = fit.psr_history[-1]
    lines += ["", f"Convergence: {status} (max PSR {last[1]:.3f} for {last[2]})",
              f"Compile time {fit.compile_seconds:.2f} s, sampling time "
              f"{fit.sampling_seconds:.2f} s", "", "MODEL RESULTS", "",
              f"{'':26}{'Estimate':>10}{'Posterior':>11}{'One-Tailed':>11}"
              f"{'95% C.I.':>21}{'ESS':>8}{'R-hat':>7}",
              f"{'':26}{'':>10}{'S.D.':>11}{'P-Value':>11}{'Lower 2.5%':>12}"
              f"{'Upper 2.5%':>11}{'bulk':>6}"]
    lines += results_by_level(table, _format_row)
    free = table[table.free > 0].drop_duplicates("free").sort_values("free")
    lines += ["", "PRIORS (Mplus defaults unless given in MODEL PRIORS)", ""]
    lines += [f"    {fit.names[int(row.free) - 1]:<34}{row.prior}" for row in free.itertuples()]
    lines += ["", "TECHNICAL 8 (PSR by iteration)", "",
              f"{'Iteration':>10}{'Max PSR':>10}  Parameter"]
    lines += [f"{it:>10}{psr:>10.3f}  {name}" for it, psr, name in fit.psr_history]
    return "\n".join(lines) + "\n"


def _format_row(var: str, row) -> str:
    if not row.free and row.kind != "defined":
        return f"    {var:<22}{row.estimate:>10.3f}{0.0:>11.3f}{999.0:>11.3f}"
    star = "*" if row.significant else ""
    ess = "" if np.isnan(row.ess_bulk) else f"{row.ess_bulk:>6.0f}"
    return (f"    {var:<22}{row.estimate:>10.3f}{row.posterior_sd:>11.3f}{row.p_value:>11.3f}"
            f"{row.ci_lower:>12.3f}{row.ci_upper:>11.3f}{ess:>8}{row.rhat:>7.3f} {star}")
