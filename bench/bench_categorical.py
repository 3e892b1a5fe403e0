"""Categorical (probit) outcomes: jaxsem against numpyro NUTS, and threshold mixing
against the naive Albert-Chib update, in one run on one machine.

1. Two-level CFA with four 4-category ordinal indicators, 100 clusters x 20
   (bench/peers/numpyro_peers.py makes the data; numpyro samples the factor scores with
   the latent responses integrated out by the ordered-probit likelihood), 4 chains:
   minimum bulk ESS (ArviZ) per second of sampling, compile time separately, and the
   ratios jaxsem / numpyro on sampling time and on wall time to the same ESS. Every
   sampler here runs on one core (jaxsem with PROCESSORS = 1).
2. Threshold mixing against cluster size (20, 200, 2000 per cluster, 50 clusters): a
   random-intercept ordinal probit, y* = a_j + 0.5 x + e, thresholds (-0.8, 0.2, 1.0),
   var(a_j) = 0.5. jaxsem (threshold Metropolis-Hastings with y* integrated out + the
   location shift) against the naive Gibbs sampler (Albert & Chib 1993: each threshold
   uniform between the neighbouring latent responses), written below with the same
   latent-response draws: bulk ESS per draw and per second of the worst threshold.

    python bench/bench_categorical.py [--quick] [--out bench/results/bench_categorical.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
sys.path.insert(0, str(HERE))

import jaxsem  # noqa: E402
import numpyro_peers  # noqa: E402
from bench_bayes import ratios  # noqa: E402
from jaxsem.bayes.categorical import truncated_normal  # noqa: E402

CFA = "%WITHIN%\n fw BY u1-u4;\n %BETWEEN%\n fb BY u1-u4;"
THRESHOLDS = np.array([-0.8, 0.2, 1.0])


def ordinal_cfa(warmup: int, samples: int, iterations: int) -> dict:
    data = numpyro_peers.make_data("ordinal_cfa_twolevel", seed=0)
    peer = numpyro_peers.run_nuts("ordinal_cfa_twolevel", data, chains=4, warmup=warmup,
                                  samples=samples)
    peer = {k: v for k, v in peer.items() if k not in ("draws", "summary")}
    frame = pd.DataFrame(np.asarray(data["u"]), columns=["u1", "u2", "u3", "u4"])
    frame["c"] = data["cluster"]
    fit = jaxsem.Model.from_mplus(CFA, categorical=["u1", "u2", "u3", "u4"],
                                  clusters=["c"]).fit(frame, chains=4, fbiterations=iterations,
                                                      progress=False, processors=1)
    table = fit.summary()
    free = table[table.free > 0]
    worst = free.loc[free.ess_bulk.idxmin()]
    ours = {"compile_seconds": fit.compile_seconds, "sampling_seconds": fit.sampling_seconds,
            "min_bulk_ess": float(worst.ess_bulk),
            "min_ess_param": fit.names[int(worst.free) - 1],
            "ess_per_second": float(worst.ess_bulk) / fit.sampling_seconds,
            "iterations": iterations, "kept": int(fit.kept.shape[1]),
            "blocks": fit.schedule.describe(fit.names)}
    result = {"jaxsem": ours, "numpyro": peer, "ratio": ratios(ours, peer)}
    r = result["ratio"]
    print(f"ordinal CFA 100x20: jaxsem {ours['ess_per_second']:8.1f} ESS/s (min "
          f"{ours['min_ess_param']}, compile {ours['compile_seconds']:.1f} s) | numpyro "
          f"{peer['ess_per_second']:6.1f} ESS/s (min {peer['min_ess_param']}, compile "
          f"{peer['compile_seconds']:.1f} s) | ratio sampling {r['sampling']:6.1f}x, "
          f"wall-to-same-ESS {r['wall_to_same_ess']:5.1f}x", flush=True)
    return result


def random_intercept_data(n_clusters: int, size: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_clusters), size)
    x = rng.normal(size=len(cluster))
    latent = rng.normal(0, np.sqrt(0.5), n_clusters)[cluster] + 0.5 * x + rng.normal(
        size=len(cluster))
    return pd.DataFrame({"u": (latent[:, None] > THRESHOLDS).sum(1), "x": x, "c": cluster})


def naive_gibbs(frame: pd.DataFrame, iterations: int, chains: int, seed: int):
    """Albert-Chib data augmentation for the random-intercept ordinal probit with flat
    priors (as jaxsem's defaults): y*, random intercepts a, slope, var(a), then each
    threshold uniform on (max y* below it, min y* above it). Starts at the truth.
    Returns the threshold draws (chains, iterations, 3) and the sampling seconds."""
    u = jnp.asarray(frame.u.values)
    x = jnp.asarray(frame.x.values)
    cluster = jnp.asarray(frame.c.values)
    n_clusters = int(frame.c.max()) + 1
    n_j = jnp.bincount(cluster, length=n_clusters).astype(float)
    sxx = jnp.sum(x * x)
    cuts_of = jnp.arange(1, 4)

    def sweep(state, key):
        beta, psi, tau, a = state
        k = jax.random.split(key, 5)
        cuts = jnp.concatenate([jnp.array([-jnp.inf]), tau, jnp.array([jnp.inf])])
        mean = a[cluster] + beta * x
        latent = truncated_normal(mean, 1.0, cuts[u], cuts[u + 1],
                                  jax.random.normal(k[0], u.shape))
        prec = n_j + 1.0 / psi
        sums = jax.ops.segment_sum(latent - beta * x, cluster, n_clusters)
        a = sums / prec + jax.random.normal(k[1], (n_clusters,)) / jnp.sqrt(prec)
        beta = (jnp.sum(x * (latent - a[cluster])) / sxx
                + jax.random.normal(k[2]) / jnp.sqrt(sxx))
        psi = 0.5 * jnp.sum(a * a) / jax.random.gamma(k[3], 0.5 * n_clusters - 1.0)
        low = jax.vmap(lambda c: jnp.max(jnp.where(u == c - 1, latent, -jnp.inf)))(cuts_of)
        high = jax.vmap(lambda c: jnp.min(jnp.where(u == c, latent, jnp.inf)))(cuts_of)
        tau = low + jax.random.uniform(k[4], (3,)) * (high - low)
        return (beta, psi, tau, a), tau

    def chain(key):
        start = (jnp.asarray(0.5), jnp.asarray(0.5), jnp.asarray(THRESHOLDS),
                 jnp.zeros(n_clusters))
        return jax.lax.scan(sweep, start, jax.random.split(key, iterations))[1]

    run = jax.jit(jax.vmap(chain)).lower(
        jax.random.split(jax.random.PRNGKey(seed), chains)).compile()
    t0 = time.perf_counter()
    draws = np.asarray(run(jax.random.split(jax.random.PRNGKey(seed), chains)))
    return draws, time.perf_counter() - t0


def threshold_mixing(sizes: list[int], n_clusters: int, iterations: int) -> list[dict]:
    out = []
    model = jaxsem.Model.from_mplus("%WITHIN%\n u ON x;\n %BETWEEN%\n u;", within=["x"],
                                    categorical=["u"], clusters=["c"])
    for size in sizes:
        frame = random_intercept_data(n_clusters, size, seed=size)
        fit = model.fit(frame, chains=4, fbiterations=iterations, progress=False, processors=1)
        columns = [k for k, name in enumerate(fit.names) if "|" in name]
        kept = fit.kept[:, :, columns]
        ours = min(float(az.ess(kept[:, :, j])) for j in range(3))
        naive, seconds = naive_gibbs(frame, iterations, 4, seed=size)
        half = naive[:, iterations // 2:]
        theirs = min(float(az.ess(half[:, :, j])) for j in range(3))
        row = {"cluster_size": size, "n_obs": len(frame), "draws": int(kept.shape[0] * kept.shape[1]),
               "jaxsem_ess_per_draw": ours / (kept.shape[0] * kept.shape[1]),
               "jaxsem_ess_per_second": ours / fit.sampling_seconds,
               "naive_ess_per_draw": theirs / (half.shape[0] * half.shape[1]),
               "naive_ess_per_second": theirs / seconds,
               "jaxsem_threshold_means": kept.mean((0, 1)).tolist(),
               "naive_threshold_means": half.mean((0, 1)).tolist()}
        out.append(row)
        print(f"  {size:>5} per cluster (N = {len(frame):>7}): worst threshold ESS per draw "
              f"jaxsem {row['jaxsem_ess_per_draw']:.3f} ({row['jaxsem_ess_per_second']:8.1f}/s)"
              f" | naive {row['naive_ess_per_draw']:.4f} ({row['naive_ess_per_second']:8.2f}/s)",
              flush=True)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--out", default=str(HERE / "results/bench_categorical.json"))
    args = parser.parse_args(argv)
    warmup, samples, iterations = (200, 200, 1000) if args.quick else (1000, 1000, 4000)
    results = {"machine": f"{platform.machine()} {platform.processor()}".strip(),
               "cpu_count": os.cpu_count(),
               "ordinal_cfa_twolevel": ordinal_cfa(warmup, samples, iterations)}
    print("threshold mixing vs cluster size (50 clusters, random-intercept ordinal probit):")
    sizes = [20, 200] if args.quick else [20, 200, 2000]
    results["threshold_mixing"] = threshold_mixing(sizes, 50, 1000 if args.quick else 4000)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
