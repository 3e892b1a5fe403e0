"""jaxsem ML against lavaan and lme4, in one run on one machine.

Models: lavaan's tutorial two-level SEM on Demo.twolevel (jaxsem vs lavaan ``sem()``,
ML, standard errors and the unrestricted model included on both sides) and the
random-slope model on 200 clusters x 50 (jaxsem vs lme4 ``lmer(REML = FALSE)``; lavaan
has no random slopes). Peer times come from ``Rscript bench/peers/ml_timing.R`` (median of
5 fits after a warm-up, package loading excluded); jaxsem's from the median of 5 fits
after the first (which compiles; its time is reported separately).

    python bench/bench_ml.py [--out bench/results/bench_ml.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

import jaxsem

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
TUTORIAL = ("level: 1\n fw =~ y1 + y2 + y3\n fw ~ x1 + x2 + x3\n level: 2\n"
            " fb =~ y1 + y2 + y3\n fb ~ w1 + w2")


def time_jaxsem(model: jaxsem.Model, frame: pd.DataFrame, repeats: int = 5, **kwargs) -> dict:
    start = time.perf_counter()
    fit = model.fit(frame, estimator="ml", **kwargs)
    first, compile_seconds = time.perf_counter() - start, fit.compile_seconds
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fit = model.fit(frame, estimator="ml", **kwargs)
        times.append(time.perf_counter() - start)
    return {"first_fit_seconds": first, "compile_seconds": compile_seconds,
            "warm_fit_seconds": float(np.median(times)), "loglik": fit.loglik,
            "iterations": fit.iterations, "converged": fit.converged}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results/bench_ml.json"))
    args = parser.parse_args(argv)
    peers = json.loads(subprocess.run(["Rscript", str(PEERS / "ml_timing.R")], check=True,
                                      capture_output=True, text=True).stdout)
    demo = pd.read_csv(PEERS / "data/Demo.twolevel.csv")
    slopes = pd.read_csv(PEERS / "data/random_slope_200x50.csv")
    ours = {
        "demo_tutorial": time_jaxsem(jaxsem.Model(TUTORIAL), demo, cluster="cluster"),
        "random_slope_200x50": time_jaxsem(jaxsem.Model(
            "%WITHIN%\n s | y ON x;\n %BETWEEN%\n y WITH s;", within=["x"], clusters=["c"]),
            slopes),
    }
    peer_times = {"demo_tutorial": ("lavaan", peers["lavaan_tutorial_ml_seconds"]),
                  "random_slope_200x50": ("lme4", peers["lme4_random_slope_seconds"])}
    results = {"machine": f"{platform.machine()} {platform.processor()}".strip(),
               "peers": peers, "models": {}}
    for name, mine in ours.items():
        peer, seconds = peer_times[name]
        ratio = seconds / mine["warm_fit_seconds"]
        results["models"][name] = {"jaxsem": mine, peer: seconds, "warm_ratio": ratio}
        print(f"{name:22} jaxsem warm {mine['warm_fit_seconds']:.3f} s (first fit "
              f"{mine['first_fit_seconds']:.1f} s, compile {mine['compile_seconds']:.1f} s) | "
              f"{peer} {seconds:.3f} s | {peer}/jaxsem warm {ratio:.1f}x", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
