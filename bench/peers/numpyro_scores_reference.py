"""Reference factor scores of the two-level ordinal CFA from numpyro NUTS.

The model and data of bench_categorical.py (make_data("ordinal_cfa_twolevel", seed=0):
100 clusters of 20, four 4-category indicators; Mplus's default priors), fitted with
numpyro NUTS, which samples every factor score along with the parameters (latent
responses integrated out). Writes the posterior mean, SD and bulk ESS of the within
factor score of every row and the between factor score of every cluster to
outputs/numpyro_ordinal_scores.json (tests/test_scores.py compares jaxsem's SAVE =
FSCORES draws with them).

    python bench/peers/numpyro_scores_reference.py [--chains 4 --warmup 1000 --samples 1000]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import arviz as az
import jax
import numpy as np

import numpyro_peers

jax.config.update("jax_enable_x64", True)
OUT = Path(__file__).resolve().parent / "outputs" / "numpyro_ordinal_scores.json"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args(argv)
    data = numpyro_peers.make_data("ordinal_cfa_twolevel", seed=0)
    fit = numpyro_peers.run_nuts("ordinal_cfa_twolevel", data, chains=args.chains,
                                 warmup=args.warmup, samples=args.samples, seed=0,
                                 extra_sites=("fw", "fb"))
    out = {"script": "bench/peers/numpyro_scores_reference.py",
           "numpyro_version": numpyro_peers.numpyro.__version__,
           "data": "numpyro_peers.make_data('ordinal_cfa_twolevel', seed=0)",
           "chains": args.chains, "warmup": args.warmup, "samples": args.samples,
           "divergences": fit["divergences"], "min_bulk_ess": fit["min_bulk_ess"],
           "min_ess_param": fit["min_ess_param"]}
    for site, draws in fit["extra"].items():
        ess = az.ess(az.convert_to_dataset({site: draws}), method="bulk")[site].values
        out[site] = {"mean": draws.mean(axis=(0, 1)).tolist(),
                     "sd": draws.std(axis=(0, 1)).tolist(),
                     "ess_bulk": np.asarray(ess).tolist()}
    OUT.write_text(json.dumps(out) + "\n")
    print(f"wrote {OUT} (min parameter ESS {fit['min_bulk_ess']:.0f}, divergences "
          f"{fit['divergences']}; min score ESS "
          f"{min(min(out[s]['ess_bulk']) for s in ('fw', 'fb')):.0f})")


if __name__ == "__main__":
    main()
