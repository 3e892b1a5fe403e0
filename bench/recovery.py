"""Parameter recovery and interval coverage of the Gibbs sampler.

For each design, R data sets are simulated from the model's own generator
(``ModelSpec.simulate``) at known parameter values and fitted with the Bayes
estimator. Per parameter we report bias, relative bias, RMSE, the mean posterior SD
against the empirical SD of the posterior medians, the coverage of the 95% equal-tail
interval (with its binomial standard error), mean bulk ESS and the largest R-hat.

Usage::

    python bench/recovery.py                      # both designs, 100 replications
    python bench/recovery.py --design cfa_twolevel --reps 50
    python bench/recovery.py --quick              # 5 replications each

Results go to ``bench/results/recovery_<design>.json`` (settings, per-parameter
summary, raw per-replication rows); partial results are saved every 10 replications
and on interrupt. Progress goes to stderr, the summary table to stdout.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import time
import traceback
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxsem  # noqa: E402
import jaxsem.bayes  # noqa: E402,F401 (import the sampler now, so the hash below is what runs)

RESULTS = Path(__file__).resolve().parent / "results"

DESIGNS = {
    "random_slope": dict(
        syntax="%WITHIN%\n s | y ON x;\n %BETWEEN%\n y s ON w;\n y WITH s;",
        roles=dict(within=["x"], between=["w"], clusters=["c"]),
        n_clusters=200, cluster_size=50, fbiterations=2000,
        truth={
            "within: y~~y": 1.0,
            "between: y~w": 0.5,
            "between: s~w": 0.3,
            "between: y~1": 2.0,
            "between: s~1": 1.0,
            "between: y~~y": 0.25,
            "between: s~~s": 0.09,
            "between: y~~s": 0.045,
        },
    ),
    "cfa_twolevel": dict(
        syntax="%WITHIN%\n fw BY y1-y3;\n %BETWEEN%\n fb BY y1-y3;",
        roles=dict(clusters=["c"]),
        n_clusters=100, cluster_size=20, fbiterations=4000,
        truth={
            "within: fw=~y2": 0.8,
            "within: fw=~y3": 1.2,
            "within: y1~~y1": 0.5,
            "within: y2~~y2": 0.5,
            "within: y3~~y3": 0.5,
            "within: fw~~fw": 1.0,
            "between: fb=~y2": 0.9,
            "between: fb=~y3": 1.1,
            "between: y1~~y1": 0.1,
            "between: y2~~y2": 0.1,
            "between: y3~~y3": 0.1,
            "between: fb~~fb": 0.3,
            "between: y1~1": 1.0,
            "between: y2~1": 2.0,
            "between: y3~1": 3.0,
        },
    ),
    # four 4-category ordinal indicators (thresholds written out: the model then knows
    # the number of categories before it sees data)
    "ordinal_cfa_twolevel": dict(
        syntax="%WITHIN%\n fw BY u1-u4;\n %BETWEEN%\n fb BY u1-u4;\n ["
               + " ".join(f"u{i}${k}" for i in range(1, 5) for k in range(1, 4)) + "];",
        roles=dict(categorical=["u1", "u2", "u3", "u4"], clusters=["c"]),
        n_clusters=100, cluster_size=20, fbiterations=2000,
        truth={
            "within: fw=~u2": 0.8, "within: fw=~u3": 1.2, "within: fw=~u4": 0.9,
            "within: fw~~fw": 1.0,
            "between: fb=~u2": 0.9, "between: fb=~u3": 1.1, "between: fb=~u4": 1.0,
            "between: fb~~fb": 0.3,
            **{f"between: u{i}~~u{i}": 0.1 for i in range(1, 5)},
            **{f"between: u{i}|t{k + 1}": t
               for i, row in enumerate([(-1.0, 0.0, 1.0), (-0.8, 0.2, 1.2),
                                        (-1.2, -0.2, 0.8), (-0.5, 0.5, 1.5)], start=1)
               for k, t in enumerate(row)},
        },
    ),
}


def code_version() -> dict:
    """Which jaxsem ran: git HEAD, whether the tree was dirty, and a hash of the package
    sources as imported (the sampler may be edited between runs)."""
    root = Path(jaxsem.__file__).resolve().parent
    digest = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        digest.update(str(f.relative_to(root)).encode())
        digest.update(f.read_bytes())

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=root.parent, capture_output=True,
                                  text=True, timeout=10).stdout.rstrip()
        except Exception:  # noqa: BLE001
            return None
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "jaxsem")
    return dict(git_head=git("rev-parse", "HEAD"), jaxsem_dirty=bool(dirty),
                jaxsem_modified=dirty.split("\n") if dirty else [],
                jaxsem_source_sha256=digest.hexdigest()[:16])


CODE_VERSION = code_version()  # taken at import, i.e. the code this process runs


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def truth_vector(names: list[str], truth: dict[str, float]) -> np.ndarray:
    missing = sorted(set(names) - set(truth))
    extra = sorted(set(truth) - set(names))
    if missing or extra:
        raise SystemExit(f"truth does not match the parameter names {names}: "
                         f"missing {missing}, unknown {extra}")
    return np.array([truth[n] for n in names], dtype=float)


def one_replication(model, names, x_true, design, r, chains):
    """Simulate with seed r, fit with bseed r; one row per parameter."""
    t0 = time.perf_counter()
    frame = model.spec.simulate(x_true, jax.random.PRNGKey(r),
                                [design["cluster_size"]] * design["n_clusters"],
                                cluster_names=["c"])
    fit = model.fit(frame, chains=chains, fbiterations=design["fbiterations"], bseed=r,
                    progress=False)
    fit_names = list(fit.names)
    if fit_names != names:
        raise RuntimeError(f"fit parameter names {fit_names} differ from the model's {names}")
    summary = fit.summary()
    free = summary[summary["free"] > 0].set_index("free")
    params = {}
    for k, name in enumerate(names):
        row = free.loc[k + 1]
        lo, hi = float(row["ci_lower"]), float(row["ci_upper"])
        params[name] = dict(
            truth=float(x_true[k]), median=float(row["estimate"]),
            posterior_sd=float(row["posterior_sd"]), ci_lower=lo, ci_upper=hi,
            covered=bool(lo <= x_true[k] <= hi), ess_bulk=float(row["ess_bulk"]),
            rhat=float(row["rhat"]))
    return dict(rep=r, ok=True, error=None,
                compile_seconds=float(getattr(fit, "compile_seconds", float("nan"))),
                sampling_seconds=float(getattr(fit, "sampling_seconds", float("nan"))),
                total_seconds=time.perf_counter() - t0,
                converged=bool(getattr(fit, "converged", True)),
                params=params)


def summarise(rows, names, x_true) -> list[dict]:
    ok = [r for r in rows if r["ok"]]
    out = []
    for k, name in enumerate(names):
        truth = float(x_true[k])
        med = np.array([r["params"][name]["median"] for r in ok])
        psd = np.array([r["params"][name]["posterior_sd"] for r in ok])
        cov = np.array([r["params"][name]["covered"] for r in ok], dtype=float)
        ess = np.array([r["params"][name]["ess_bulk"] for r in ok])
        rhat = np.array([r["params"][name]["rhat"] for r in ok])
        n = len(ok)
        if n == 0:
            out.append(dict(parameter=name, truth=truth, n=0))
            continue
        err = med - truth
        bias = float(err.mean())
        emp_sd = float(med.std(ddof=1)) if n > 1 else float("nan")
        p = float(cov.mean())
        out.append(dict(
            parameter=name, truth=truth, n=n,
            mean_median=float(med.mean()),
            bias=bias,
            bias_mcse=emp_sd / math.sqrt(n) if n > 1 else float("nan"),
            relative_bias=bias / truth if truth != 0 else float("nan"),
            rmse=float(np.sqrt(np.mean(err ** 2))),
            mean_posterior_sd=float(psd.mean()),
            empirical_sd=emp_sd,
            sd_ratio=float(psd.mean() / emp_sd) if n > 1 and emp_sd > 0 else float("nan"),
            coverage=p,
            coverage_se=math.sqrt(p * (1 - p) / n),
            mean_ess_bulk=float(ess.mean()),
            min_ess_bulk=float(ess.min()),
            max_rhat=float(np.nanmax(rhat)),
        ))
    return out


def format_table(design_name, summary, rows, elapsed) -> str:
    ok = [r for r in rows if r["ok"]]
    failed = [r for r in rows if not r["ok"]]
    head = (f"{'parameter':<18}{'truth':>7}{'mean':>9}{'bias':>9}{'relbias':>9}{'rmse':>8}"
            f"{'postSD':>8}{'empSD':>8}{'cover':>7}{'+/-SE':>7}{'meanESS':>9}{'minESS':>8}"
            f"{'maxRhat':>8}")
    lines = [f"== {design_name}: {len(ok)} replications ok, {len(failed)} failed, "
             f"{elapsed:.0f} s wall", head, "-" * len(head)]
    for s in summary:
        if s["n"] == 0:
            lines.append(f"{s['parameter']:<18}{s['truth']:>7.3f}  (no successful fits)")
            continue
        lines.append(
            f"{s['parameter']:<18}{s['truth']:>7.3f}{s['mean_median']:>9.4f}{s['bias']:>9.4f}"
            f"{s['relative_bias']:>9.3f}{s['rmse']:>8.4f}{s['mean_posterior_sd']:>8.4f}"
            f"{s['empirical_sd']:>8.4f}{s['coverage']:>7.2f}{s['coverage_se']:>7.3f}"
            f"{s['mean_ess_bulk']:>9.0f}{s['min_ess_bulk']:>8.0f}{s['max_rhat']:>8.3f}")
    if ok:
        samp = np.array([r["sampling_seconds"] for r in ok])
        comp = np.array([r["compile_seconds"] for r in ok])
        tot = np.array([r["total_seconds"] for r in ok])
        nconv = sum(r["converged"] for r in ok)
        lines.append(f"sampling s/fit: mean {samp.mean():.2f}, median {np.median(samp):.2f}, "
                     f"max {samp.max():.2f}; compile total {comp.sum():.1f} s "
                     f"(first {comp[0]:.1f} s); fit+simulate total {tot.sum():.1f} s; "
                     f"PSR-converged {nconv}/{len(ok)}")
    for r in failed:
        lines.append(f"rep {r['rep']} FAILED: {r['error'].splitlines()[-1]}")
    return "\n".join(lines)


def save(path, settings, summary, rows, complete) -> None:
    payload = dict(settings=settings, complete=complete, summary=summary, rows=rows)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, allow_nan=True))
    tmp.replace(path)


def run_design(design_name: str, reps: int, chains: int, fbiterations: int | None) -> str:
    design = dict(DESIGNS[design_name])
    if fbiterations:
        design["fbiterations"] = fbiterations
    model = jaxsem.Model.from_mplus(design["syntax"], **design["roles"])
    names = list(model.spec.partable.parameter_names())
    log(f"[{design_name}] parameters: {names}")
    x_true = truth_vector(names, design["truth"])
    settings = dict(design=design_name, syntax=design["syntax"], roles=design["roles"],
                    n_clusters=design["n_clusters"], cluster_size=design["cluster_size"],
                    chains=chains, fbiterations=design["fbiterations"], reps=reps,
                    seeds="simulate PRNGKey(r), bseed r, r = 0..reps-1",
                    parameter_names=names, truth=dict(zip(names, x_true.tolist())),
                    code=CODE_VERSION, jax_version=jax.__version__, device=str(jax.devices()[0]),
                    started=time.strftime("%Y-%m-%d %H:%M:%S"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"recovery_{design_name}.json"
    rows: list[dict] = []
    t_start = time.perf_counter()
    interrupted = False
    try:
        for r in range(reps):
            try:
                row = one_replication(model, names, x_true, design, r, chains)
                cover = np.mean([p["covered"] for p in row["params"].values()])
                log(f"[{design_name}] rep {r + 1}/{reps}: {row['total_seconds']:.1f} s "
                    f"(compile {row['compile_seconds']:.1f}, sampling "
                    f"{row['sampling_seconds']:.1f}), covered {cover:.0%}, "
                    f"min ESS {min(p['ess_bulk'] for p in row['params'].values()):.0f}, "
                    f"max R-hat {max(p['rhat'] for p in row['params'].values()):.3f}")
            except Exception as exc:  # noqa: BLE001 (a failed replication is data)
                row = dict(rep=r, ok=False, error=f"{type(exc).__name__}: {exc}\n"
                           + traceback.format_exc(limit=3), params=None)
                log(f"[{design_name}] rep {r + 1}/{reps} FAILED: {type(exc).__name__}: {exc}")
            rows.append(row)
            if (r + 1) % 10 == 0:
                settings["elapsed_seconds"] = time.perf_counter() - t_start
                save(path, settings, summarise(rows, names, x_true), rows, complete=False)
    except KeyboardInterrupt:
        interrupted = True
        log(f"[{design_name}] interrupted after {len(rows)} replications; saving")
    elapsed = time.perf_counter() - t_start
    settings["elapsed_seconds"] = elapsed
    settings["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    summary = summarise(rows, names, x_true)
    save(path, settings, summary, rows, complete=not interrupted)
    log(f"[{design_name}] wrote {path}")
    table = format_table(design_name, summary, rows, elapsed)
    if interrupted:
        print(table, flush=True)
        raise KeyboardInterrupt
    return table


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--design", choices=[*DESIGNS, "all"], default="all")
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="5 replications")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--fbiterations", type=int, default=None,
                    help="override the design's FBITERATIONS")
    args = ap.parse_args(argv)
    reps = 5 if args.quick else args.reps
    designs = list(DESIGNS) if args.design == "all" else [args.design]
    for name in designs:
        print(run_design(name, reps, args.chains, args.fbiterations), flush=True)
        print(flush=True)


if __name__ == "__main__":
    main()
