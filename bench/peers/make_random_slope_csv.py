"""Write data/random_slope_200x50.csv (columns y, x, c; c = cluster 0..199).

The data are numpyro_peers.make_data("random_slope", seed=0): 200 clusters x 50,
the same data the jaxsem/numpyro speed benchmarks use. ml_references.R and
ml_timing.R fit lme4's lmer(y ~ x + (x | c)) to this file.

Run from the repository root: .venv/bin/python bench/peers/make_random_slope_csv.py
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpyro_peers as p  # noqa: E402
import pandas as pd  # noqa: E402


def main() -> None:
    d = p.make_data("random_slope", seed=0)
    out = HERE / "data" / "random_slope_200x50.csv"
    pd.DataFrame({"y": d["y"], "x": d["x"], "c": d["cluster"]}).to_csv(
        out, index=False, float_format="%.17g"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
