"""Command line: ``jaxsem run FILE`` (an Mplus input file or a YAML config),
``jaxsem example`` (bundled two-level example), ``jaxsem --help``.

Exit codes: 0 success, 1 fitted but not converged (results written), 2 bad input (a
JaxsemError, printed without a traceback), 3 interrupted (Ctrl-C), 4 internal error (a
bug in jaxsem: the traceback is printed).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from jaxsem.errors import JaxsemError

EXIT_CODES = """\
exit codes:
  0  success
  1  fitted but not converged (Bayes: PSR criterion not reached; ML: optimizer not
     converged); the results are still written
  2  bad input: the message is printed to stderr (no traceback); nothing is written
  3  interrupted (Ctrl-C): the results of the iterations that finished are written,
     or nothing when none had finished
  4  internal error (a bug in jaxsem; the traceback is printed)
"""

RUN_DESCRIPTION = """\
Run the analysis of an Mplus input file (.inp) or a YAML config (.yaml/.yml): read the
data, fit the model with the estimator the input names (ESTIMATOR = BAYES, ML or MLR;
TYPE = BASIC gives the data summary only) and write, next to the input or into --out:

  <stem>.out     Mplus-style report: the input, SUMMARY OF ANALYSIS and of the data,
                 MODEL FIT INFORMATION, MODEL RESULTS, and what OUTPUT asks for
                 (TECH1, TECH8, CINTERVAL, CINTERVAL(HPD), SAMPSTAT)
  results.json   the same numbers as data (estimator, observations and clusters,
                 fit statistics, timings, one object per parameter)
  SAVEDATA: FILE = file;  the analysis data; with SAVE = FSCORES (n [thin]) also
                 the factor scores (Bayes: mean, median, SD and 95% interval of n
                 posterior draws; ML/MLR: SAVE = FSCORES, the empirical Bayes scores)
  SAVEDATA: BPARAMETERS = file;  the draws of every chain (Bayes)
  PLOT: TYPE = PLOT1/PLOT2/PLOT3;  <stem>_plots/ with trace, autocorrelation and
                 posterior plots (Bayes)

A YAML config names the same analysis with the keys data (csv with a header, or
whitespace-separated text with names), names, model, syntax (lavaan or mplus), within,
between, cluster, categorical, missing, estimator (bayes, ml, mlr, basic), options,
output (tech1, tech8, cinterval, cinterval(hpd), sampstat, stdyx), bparameters, savedata
(the analysis data), fscores (true, n or [n, thin]: factor scores in the savedata file),
plot, title; see configs/demo_twolevel.yaml.

THREELEVEL (Bayes, ML, MLR) and CROSSCLASSIFIED (Bayes) fits take continuous outcomes.
Requests jaxsem cannot honour yet (categorical outcomes in them, SAVE = FSCORES of
three-level models or (n) with ML, ...) are refused with the reason before anything is
computed.

Compiled programs are kept on disk in $JAXSEM_CACHE_DIR, by default ~/.cache/jaxsem/xla:
JAX's persistent compilation cache (measured: 18 s -> 7 s for UG ex9.1b with MLR), and
the Bayes sampler's programs whole in its folder programs/, so that a second run of a
model of the same structure and data shape loads them without tracing or compiling
(measured: 5.0 s -> 0.3 s for lavaan's Demo.twolevel SEM). Set JAXSEM_CACHE_DIR to an
empty string to turn this off.
"""


def _use_compilation_cache() -> None:
    """Keep compiled programs between runs (see RUN_DESCRIPTION)."""
    folder = os.environ.get("JAXSEM_CACHE_DIR", str(Path.home() / ".cache/jaxsem/xla"))
    if not folder:
        return
    import jax  # noqa: PLC0415 (keeps --help fast)

    from jaxsem.bayes import programs  # noqa: PLC0415

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    programs.keep_programs(Path(folder) / "programs")


def _example(args: argparse.Namespace) -> int:
    from jaxsem import Model  # noqa: PLC0415 (keeps --help fast)
    from jaxsem.examples import EXAMPLE_MISSING, EXAMPLE_MODEL, EXAMPLE_ROLES, load_schools

    model = Model.from_mplus(EXAMPLE_MODEL, **EXAMPLE_ROLES)
    analysis = model.prepare(load_schools(), missing=EXAMPLE_MISSING)
    print("MODEL:" + EXAMPLE_MODEL)
    print(analysis.summary())
    if args.no_fit:
        return 0
    from jaxsem.bayes import BayesOptions, fit_bayes  # noqa: PLC0415

    fit = fit_bayes(analysis, BayesOptions(chains=args.chains, bseed=args.seed,
                                           biterations=(50000, 2000)))
    print()
    print(fit.report())
    return 0 if fit.converged else 1


def _run(args: argparse.Namespace) -> int:
    from jaxsem.run import RunInterrupted, run_input  # noqa: PLC0415

    _use_compilation_cache()
    try:
        result = run_input(args.file, out_dir=args.out, chains=args.chains, seed=args.seed,
                           progress=not args.quiet)
    except RunInterrupted as interrupted:
        print(f"jaxsem: {interrupted}", file=sys.stderr)
        return 3
    names = ", ".join(str(path) for path in result.files.values())
    status = result.results["status"]
    note = {"converged": "", "not converged": " (NOT CONVERGED: see the report)",
            "interrupted": " (INTERRUPTED: results of the finished iterations)"}[status]
    print(f"jaxsem: {result.estimator.upper()} {status}{note}; wrote {names}")
    return result.exit_code


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxsem", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Bayesian multilevel structural equation models in JAX.\n\n"
                    "commands:\n"
                    "  run FILE   run an Mplus input file (.inp) or a YAML config and write "
                    "the\n             report (<stem>.out) and results.json\n"
                    "  example    fit the bundled two-level example and print the results\n\n"
                    "`jaxsem COMMAND --help` describes a command and its options.",
        epilog=EXIT_CODES)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run an Mplus input file or a YAML config; write <stem>.out and "
                    "results.json",
        description=RUN_DESCRIPTION, epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("file", metavar="FILE",
                     help="the Mplus input file (.inp) or YAML config (.yaml, .yml)")
    run.add_argument("--out", metavar="DIR", default=None,
                     help="folder for the outputs (default: the input file's folder; "
                          "created when missing); relative SAVEDATA file names are "
                          "resolved against it")
    run.add_argument("--chains", metavar="N", type=_count, default=None,
                     help="number of MCMC chains, overriding CHAINS (Bayes only)")
    run.add_argument("--seed", metavar="S", type=_seed, default=None,
                     help="random seed, overriding BSEED (Bayes only)")
    run.add_argument("--quiet", action="store_true",
                     help="do not print the sampler's progress to stderr")
    run.set_defaults(run=_run)
    example = commands.add_parser(
        "example", help="run the bundled two-level example (pupils in schools)",
        description="Fit the bundled two-level factor model to the bundled school data "
                    "with the Bayes estimator and print the data summary and the "
                    "Mplus-style results table.", epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    example.add_argument("--chains", type=int, default=2, help="MCMC chains (default 2)")
    example.add_argument("--seed", type=int, default=0, help="random seed (BSEED)")
    example.add_argument("--no-fit", action="store_true",
                         help="only parse the model and check the data")
    example.set_defaults(run=_example)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except JaxsemError as error:
        print(f"jaxsem: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxsem: interrupted; nothing was written", file=sys.stderr)
        return 3
    except Exception:  # noqa: BLE001 (a bug: say so, keep exit code 1 for non-convergence)
        traceback.print_exc()
        print("jaxsem: internal error (a bug in jaxsem); please report it with the "
              "traceback above", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
