"""Throughput of the Gibbs sampler from 4 to 4096 chains on one accelerator.

For each model of bench_bayes.py (same data: random slope, CFA, Demo SEM, three-level
random slope), and the ordinal two-level CFA of
bench_categorical.py: jaxsem with 4, 16, ..., 4096 chains,
reporting per chain count the compile time, seconds per sweep (all chains), chain-sweeps
per second, and minimum bulk ESS (ArviZ, all chains pooled) per second of sampling; then
numpyro NUTS with 4 chains run one after another on the same device (bench_bayes.py's
peer), for the ratio. Results are written after every model, so a run stopped at its
time limit keeps what it finished.

    python bench/bench_gpu.py [--quick] [--models NAME ...] [--chains N ...] [--no-peer]
                              [--out bench/results/bench_gpu.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import arviz as az
import jax
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import jaxsem  # noqa: E402
from bench_bayes import MODELS, frame_of, numpyro_peers  # noqa: E402

CHAINS = {"random_slope": [4, 16, 64, 256, 1024, 4096],
          "cfa_twolevel": [4, 64, 1024, 4096],
          "demo_twolevel_sem": [4, 4096],
          "threelevel_random_slope": [4, 64, 1024, 4096],
          "ordinal_cfa_twolevel": [4, 256, 1024]}
ORDINAL = ["u1", "u2", "u3", "u4"]
MODELS = dict(MODELS, ordinal_cfa_twolevel=("%WITHIN%\n fw BY u1-u4;\n %BETWEEN%\n fb BY u1-u4;",
                                            dict(categorical=ORDINAL, clusters=["c"])))


def frame(name: str, data: dict) -> pd.DataFrame:
    if name == "ordinal_cfa_twolevel":
        return pd.DataFrame(np.asarray(data["u"]), columns=ORDINAL).assign(c=data["cluster"])
    return frame_of(name, data)


def run_chains(name: str, data: dict, chains: int, iterations: int) -> dict:
    """One jaxsem fit with ``chains`` chains; ESS over the kept half of every chain."""
    text, roles = MODELS[name]
    fit = jaxsem.Model.from_mplus(text, **roles).fit(
        frame(name, data), chains=chains, fbiterations=iterations, bseed=0, progress=False)
    ess = az.ess(az.convert_to_dataset({"x": fit.kept}), method="bulk")["x"].values
    worst = int(np.argmin(ess))
    iterations = fit.draws.shape[1]   # factor models run at least 2 x warm-up + 2
    return {"chains": chains, "iterations": iterations,
            "compile_seconds": fit.compile_seconds, "sampling_seconds": fit.sampling_seconds,
            "seconds_per_sweep": fit.sampling_seconds / iterations,
            "chain_sweeps_per_second": chains * iterations / fit.sampling_seconds,
            "min_bulk_ess": float(ess[worst]), "min_ess_param": fit.names[worst],
            "ess_per_second": float(ess[worst]) / fit.sampling_seconds,
            "converged": bool(fit.converged)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="4 and 16 chains, short runs (smoke test)")
    parser.add_argument("--models", nargs="+", choices=list(CHAINS), default=list(CHAINS))
    parser.add_argument("--chains", nargs="+", type=int, help="chain counts for every model")
    parser.add_argument("--no-peer", action="store_true", help="skip numpyro")
    parser.add_argument("--out", default=str(HERE / "results/bench_gpu.json"))
    args = parser.parse_args(argv)
    iterations = 200 if args.quick else 1000
    warmup, samples = (100, 100) if args.quick else (500, 500)
    device = jax.devices()[0]
    results = {"device": f"{device.platform}: {device.device_kind}",
               "host": f"{platform.machine()} {platform.processor()}".strip(),
               "jax": jax.__version__, "iterations": iterations, "models": {}}
    print(results["device"], "jax", jax.__version__, flush=True)
    for name in args.models:
        data = numpyro_peers.make_data(name, seed=0)
        rows = []
        for chains in [4, 16] if args.quick else args.chains or CHAINS[name]:
            rows.append(run_chains(name, data, chains, iterations))
            r = rows[-1]
            print(f"{name:18} {chains:5d} chains: {1e3 * r['seconds_per_sweep']:7.3f} ms/sweep,"
                  f" {r['chain_sweeps_per_second']:11.0f} chain-sweeps/s, min ESS "
                  f"{r['min_bulk_ess']:9.0f} ({r['min_ess_param']}), {r['ess_per_second']:10.0f}"
                  f" ESS/s, compile {r['compile_seconds']:.1f} s", flush=True)
        results["models"][name] = {"jaxsem": rows}
        if not args.no_peer:
            peer = numpyro_peers.run_nuts(name, data, chains=4, warmup=warmup, samples=samples)
            peer = {k: v for k, v in peer.items() if k not in ("draws", "summary")}
            best = max(rows, key=lambda r: r["ess_per_second"])
            results["models"][name].update({
                "numpyro_4_chains": peer,
                "ratio_sampling_4_chains": rows[0]["ess_per_second"] / peer["ess_per_second"],
                "ratio_sampling_best": best["ess_per_second"] / peer["ess_per_second"],
                "best_chains": best["chains"]})
            print(f"{name:18} numpyro 4 chains {peer['ess_per_second']:8.1f} ESS/s (compile "
                  f"{peer['compile_seconds']:.1f} s); jaxsem/numpyro: 4 chains "
                  f"{results['models'][name]['ratio_sampling_4_chains']:.0f}x, "
                  f"{best['chains']} chains {results['models'][name]['ratio_sampling_best']:.0f}x",
                  flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
