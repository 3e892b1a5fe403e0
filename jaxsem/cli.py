"""Command line: ``jaxsem example`` (bundled two-level example), ``jaxsem --help``.

Exit codes: 0 success, 1 the sampler did not converge, 2 bad input (a JaxsemError,
printed without a traceback).
"""
from __future__ import annotations

import argparse
import sys

from jaxsem.errors import JaxsemError


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="jaxsem", description="Bayesian multilevel structural equation models in JAX.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    example = commands.add_parser(
        "example", help="run the bundled two-level example (pupils in schools)",
        description="Fit the bundled two-level factor model to the bundled school data "
                    "with the Bayes estimator and print the data summary and the "
                    "Mplus-style results table.")
    example.add_argument("--chains", type=int, default=2, help="MCMC chains (default 2)")
    example.add_argument("--seed", type=int, default=0, help="random seed (BSEED)")
    example.add_argument("--no-fit", action="store_true",
                         help="only parse the model and check the data")
    example.set_defaults(run=_example)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except JaxsemError as error:
        print(f"jaxsem: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
