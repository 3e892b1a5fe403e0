"""Gibbs sampler against numpyro NUTS, in one run on one machine.

For each model: the same data for both samplers (bench/peers/numpyro_peers.py makes
them), 4 chains; prints minimum bulk ESS (ArviZ) per second of sampling, compile time
separately, and the ratios jaxsem / numpyro on sampling time and on wall time
(compilation + sampling) to the same ESS: the smaller of the two runs' minimum ESS
(numpyro's, so the ratio is the least favourable one), and jaxsem's run's minimum ESS
(what the longer run reached). Both samplers run twice: on one core (jaxsem
PROCESSORS = 1, numpyro's chains one after another) and on every core (jaxsem's chain
groups on threads, numpyro's chains as many at a time on threads); each ratio compares
the two on the same cores. Compilation is timed twice: cold, and for a rerun of the
same model structure in a new session: jaxsem loads the program it kept on disk
(bayes.programs; `jaxsem run` keeps them), numpyro reads JAX's persistent compilation
cache (it still traces and lowers its program). Then the
cost per sweep of the random-slope model for N = 10^3 .. 10^6 observations (200
clusters), which must not grow with cluster size. Models: the random slope (200 x 50),
the two-level CFA (100 x 20), lavaan's Demo.twolevel SEM, and UG ex9.20's three-level
structure (a level-2 random slope varying over 100 level-3 clusters of 5 x 10).

    python bench/bench_bayes.py [--quick] [--models NAME ...] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import jax
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))

import jaxsem  # noqa: E402
import numpyro_peers  # noqa: E402
from jaxsem.bayes import driver, programs  # noqa: E402

MODELS = {
    "random_slope": ("%WITHIN%\n s | y ON x;\n %BETWEEN%\n y WITH s;",
                     dict(within=["x"], clusters=["c"])),
    "cfa_twolevel": ("%WITHIN%\n fw BY y1-y3;\n %BETWEEN%\n fb BY y1-y3;", dict(clusters=["c"])),
    "demo_twolevel_sem": ("%WITHIN%\n fw BY y1-y3;\n fw ON x1-x3;\n %BETWEEN%\n fb BY y1-y3;\n"
                          " fb ON w1 w2;", dict(within=["x1", "x2", "x3"], between=["w1", "w2"],
                                                clusters=["c"])),
    "threelevel_random_slope": ("%WITHIN%\n y ON x;\n %BETWEEN level2%\n s | y ON w;\n"
                                " %BETWEEN level3%\n y s ON z;\n y WITH s;",
                                dict(within=["x"], between_levels={"w": 2, "z": 3},
                                     clusters=("level3", "level2"))),
}


def frame_of(name: str, data: dict) -> pd.DataFrame:
    """The numpyro benchmark data as a DataFrame for jaxsem."""
    if name == "random_slope":
        return pd.DataFrame({"y": data["y"], "x": data["x"], "c": data["cluster"]})
    if name == "threelevel_random_slope":
        return pd.DataFrame({"y": data["y"], "x": data["x"], "w": data["w"][data["level2"]],
                             "z": data["z"][data["level3"]], "level2": data["level2"],
                             "level3": data["level3"]})
    frame = pd.DataFrame(data["y"], columns=["y1", "y2", "y3"])
    frame["c"] = data["cluster"]
    if name == "demo_twolevel_sem":
        frame[["x1", "x2", "x3"]] = data["x"]
        frame[["w1", "w2"]] = data["w"][data["cluster"]]
    return frame


def run_jaxsem(name: str, data: dict, iterations: int, seed: int = 0,
               processors: int | None = 1) -> dict:
    text, roles = MODELS[name]
    fit = jaxsem.Model.from_mplus(text, **roles).fit(
        frame_of(name, data), chains=4, fbiterations=iterations, bseed=seed, progress=False,
        processors=processors)
    table = fit.summary()
    free = table[table.free > 0]
    worst = free.loc[free.ess_bulk.idxmin()]
    return {"compile_seconds": fit.compile_seconds, "sampling_seconds": fit.sampling_seconds,
            "min_bulk_ess": float(worst.ess_bulk),
            "min_ess_param": fit.names[int(worst.free) - 1],
            "ess_per_second": float(worst.ess_bulk) / fit.sampling_seconds,
            "iterations": iterations, "kept": int(fit.kept.shape[1]),
            "blocks": fit.schedule.describe(fit.names)}


def ratios(ours: dict, peer: dict) -> dict:
    """Sampling-time ESS/s ratio, and wall time (compile + sampling) to the same ESS
    (the smaller minimum ESS of the two runs, and jaxsem's), with cold compilation and
    with the programs of an earlier session."""
    def wall(fit: dict, compile_key: str, target: float) -> float:
        return fit[compile_key] + target / fit["ess_per_second"]
    out = {"sampling": ours["ess_per_second"] / peer["ess_per_second"]}
    targets = {"same_ess": min(ours["min_bulk_ess"], peer["min_bulk_ess"]),
               "jaxsem_ess": ours["min_bulk_ess"]}
    for label, target in targets.items():
        for suffix, key in (("", "compile_seconds"), ("_cached", "compile_seconds_cached")):
            if key in ours and key in peer:
                out[f"wall_to_{label}{suffix}"] = (wall(peer, key, target)
                                                   / wall(ours, key, target))
    return out


def cached_compile_seconds(name: str, data: dict, warmup: int, samples: int) -> tuple:
    """Compile seconds of (jaxsem, numpyro) with in-memory caches cleared, so that each
    program is read back from disk, as its first run left it (jaxsem's kept program,
    numpyro's entry in JAX's persistent compilation cache)."""
    jax.clear_caches()
    driver._compiled_chunk.cache_clear()
    ours = run_jaxsem(name, data, 200)["compile_seconds"]
    jax.clear_caches()
    return ours, numpyro_peers.compile_chain(name, data, warmup, samples)[2]


def sweep_scaling(sizes: list[int], iterations: int) -> list[dict]:
    """Seconds per 4-chain sweep of the random-slope model, 200 clusters of each size."""
    out = []
    for size in sizes:
        data = numpyro_peers.make_data("random_slope", seed=1, cluster_size=size)
        frame = frame_of("random_slope", data)
        text, roles = MODELS["random_slope"]
        t0 = time.perf_counter()
        fit = jaxsem.Model.from_mplus(text, **roles).fit(frame, chains=4,
                                                         fbiterations=iterations, progress=False,
                                                         processors=1)
        total = time.perf_counter() - t0
        out.append({"n_obs": len(frame), "cluster_size": size,
                    "seconds_per_sweep": fit.sampling_seconds / iterations,
                    "compile_seconds": fit.compile_seconds, "total_seconds": total})
        print(f"  N = {len(frame):>8}: {1e6 * out[-1]['seconds_per_sweep']:8.1f} us per "
              f"4-chain sweep (compile {fit.compile_seconds:.1f} s)", flush=True)
    return out


def report(name: str, cores: str, entry: dict) -> None:
    ours, peer, r = entry["jaxsem"], entry["numpyro"], entry["ratio"]
    print(f"{name:18} {cores}: jaxsem {ours['ess_per_second']:9.1f} ESS/s (min "
          f"{ours['min_ess_param']}, compile {ours['compile_seconds']:.1f} s) | numpyro "
          f"{peer['ess_per_second']:7.1f} ESS/s (min {peer['min_ess_param']}, compile "
          f"{peer['compile_seconds']:.1f} s) | ratio sampling {r['sampling']:7.1f}x, "
          f"wall to numpyro's ESS {r['wall_to_same_ess']:6.1f}x, to jaxsem's "
          f"{r['wall_to_jaxsem_ess']:6.1f}x (kept programs {ours['compile_seconds_cached']:.2f}"
          f" s vs {peer['compile_seconds_cached']:.2f} s: {r['wall_to_same_ess_cached']:6.1f}x,"
          f" {r['wall_to_jaxsem_ess_cached']:6.1f}x)", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--out", default=str(HERE / "results/bench_bayes.json"))
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="models to run (default: all); the sweep scaling runs with "
                             "random_slope")
    args = parser.parse_args(argv)
    warmup, samples = (200, 200) if args.quick else (1000, 1000)
    iterations = 1000 if args.quick else 4000
    results = {"machine": f"{platform.machine()} {platform.processor()}".strip(),
               "cpu_count": os.cpu_count(), "models": {}}
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="bench_xla_"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    programs.keep_programs(tempfile.mkdtemp(prefix="bench_programs_"))
    cores = len(os.sched_getaffinity(0))
    for name in args.models:
        data = numpyro_peers.make_data(name, seed=0)
        peer = numpyro_peers.run_nuts(name, data, chains=4, warmup=warmup, samples=samples)
        peer = {k: v for k, v in peer.items() if k not in ("draws", "summary")}
        ours = run_jaxsem(name, data, iterations)
        ours["compile_seconds_cached"], peer["compile_seconds_cached"] = (
            cached_compile_seconds(name, data, warmup, samples))
        entry = {"jaxsem": ours, "numpyro": peer, "ratio": ratios(ours, peer)}
        report(name, "1 core", entry)
        if cores > 1:
            peer_all = numpyro_peers.run_nuts(name, data, chains=4, warmup=warmup,
                                              samples=samples, threads=min(cores, 4))
            peer_all = {k: v for k, v in peer_all.items() if k not in ("draws", "summary")}
            ours_all = run_jaxsem(name, data, iterations, processors=None)
            # numpyro's program is the one compiled above (a second compile in this
            # process would be a cache hit); jaxsem's (2-chain groups) compiled cold
            peer_all["compile_seconds"] = peer["compile_seconds"]
            for fit, single in ((ours_all, ours), (peer_all, peer)):
                fit["compile_seconds_cached"] = single["compile_seconds_cached"]
            entry["all_cores"] = {"cores": cores, "jaxsem": ours_all, "numpyro": peer_all,
                                  "ratio": ratios(ours_all, peer_all)}
            report(name, f"{cores} cores", entry["all_cores"])
        results["models"][name] = entry
    if "random_slope" in args.models:
        print("cost per sweep vs N (random slope, 200 clusters):")
        sizes = [5, 50] if args.quick else [5, 50, 500, 5000]
        results["sweep_scaling"] = sweep_scaling(sizes, 400 if args.quick else 1000)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
