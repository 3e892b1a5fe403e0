"""Write data/probit_ri.csv and data/ordinal_ri.csv (columns u, x, cluster).

Simulated two-level probit data with a random intercept, for the Stan peers
in probit_stan_peers.R (and jaxsem's categorical Gibbs checks):

  probit_ri:  100 clusters x 30; x ~ N(0, 1); a_j ~ N(0, 0.4) (variance);
              y* = a_j + 0.5 x + e, e ~ N(0, 1); u = 1 if y* > 0.3 else 0.
  ordinal_ri: 100 clusters x 20; x ~ N(0, 1); a_j ~ N(0, 0.5) (variance);
              y* = a_j + 0.5 x + e; thresholds (-0.8, 0.2, 1.0);
              u = number of thresholds y* exceeds (0..3).

Category codes are integers 0..K-1; cluster ids are 1..100. Seeds fixed.
numpy only. Run from the repository root:
  .venv/bin/python bench/peers/make_probit_data.py
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
BETA = 0.5


def simulate(seed, n_clusters, n_per, psi, thresholds):
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(1, n_clusters + 1), n_per)
    a = rng.normal(0.0, np.sqrt(psi), size=n_clusters)
    x = rng.normal(0.0, 1.0, size=n_clusters * n_per)
    e = rng.normal(0.0, 1.0, size=n_clusters * n_per)
    ystar = a[cluster - 1] + BETA * x + e
    u = (ystar[:, None] > np.asarray(thresholds)[None, :]).sum(axis=1)
    return u, x, cluster


def write_csv(path, u, x, cluster):
    with open(path, "w") as f:
        f.write("u,x,cluster\n")
        for ui, xi, ci in zip(u, x, cluster):
            f.write(f"{int(ui)},{float(xi)!r},{int(ci)}\n")
    counts = np.bincount(u)
    print(f"wrote {path}: n = {len(u)}, category counts {counts.tolist()}")


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    u, x, c = simulate(20251201, 100, 30, 0.4, [0.3])
    write_csv(DATA / "probit_ri.csv", u, x, c)
    u, x, c = simulate(20251202, 100, 20, 0.5, [-0.8, 0.2, 1.0])
    write_csv(DATA / "ordinal_ri.csv", u, x, c)


if __name__ == "__main__":
    main()
