"""Regenerate the data files of the reconstructed Mplus User's Guide chapter 9 examples.

Each ``exN.inp`` here is read with :func:`jaxsem.inp.read_inp`; its model's own
generator (``Model.spec.simulate``) draws the data at simple population values (below),
and the file is written in the layout its DATA and VARIABLE commands describe (free
format, or the Fortran FORMAT of ex9_6; missing-value codes -99, '.' or blanks). The
cross-classified example (ex9_24) is drawn with numpy, since the generator covers nested
designs only. Fixed seeds: rerunning gives the same files.

Population values, by kind of free parameter: loadings 0.8, regressions 0.4, within
(residual) variances 1.0, between 0.4, level-3 0.3, covariances 0.1, intercepts and
means 1.0 (random-slope means 0.5), thresholds 0.

Run:  python configs/mplus_ug/make_data.py
"""
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from jaxsem import ModelSpec, build_partable
from jaxsem.inp import read_inp

HERE = Path(__file__).resolve().parent


def population(table) -> np.ndarray:
    """A value for every free parameter, by kind and level (see the module docstring)."""
    random = {row.random for row in table.rows if row.random}
    values = []
    for row in table.free_rows():
        if row.kind == "loading":
            values.append(0.8)
        elif row.kind == "regression":
            values.append(0.4)
        elif row.kind in ("variance", "residual_variance"):
            values.append({1: 1.0, 2: 0.4}.get(row.level, 0.3))
        elif row.kind in ("covariance", "residual_covariance"):
            values.append(0.1)
        elif row.kind in ("intercept", "mean"):
            values.append(0.5 if row.lhs in random else 1.0)
        else:
            values.append(0.0)
    return np.array(values)


def simulate(name: str, sizes, seed: int, n_categories=None):
    """Data drawn from the model of ``name.inp`` (categorical variables: ``n_categories``
    gives their number of categories; thresholds at 0 unless set by population())."""
    inp = read_inp(HERE / f"{name}.inp")
    model = inp.model()
    spec = model.spec
    if n_categories:
        spec = ModelSpec(build_partable(model.parsed, model.roles, n_categories=n_categories,
                                        n_levels=inp.analysis.levels))
    x = population(spec.partable)
    cluster_names = list(inp.roles.clusters)
    return spec.simulate(x, jax.random.PRNGKey(seed), sizes,
                         cluster_names=cluster_names), inp


def write_free(frame: pd.DataFrame, names, path: Path, integers=(), missing=None) -> None:
    """Blank-separated values, 4 decimals; ``missing`` replaces NaN."""
    lines = []
    for row in frame[list(names)].itertuples(index=False):
        fields = []
        for name, value in zip(names, row):
            if np.isnan(value):
                fields.append(missing)
            elif name in integers:
                fields.append(str(int(value)))
            else:
                fields.append(f"{value:.4f}")
        lines.append(" ".join(fields))
    path.write_text("\n".join(lines) + "\n")


def two_level_sizes(seed: int, n_clusters: int = 60):
    return np.random.default_rng(seed).integers(5, 16, size=n_clusters)


def main() -> None:
    rng = np.random.default_rng(2026)

    # ex9_1a: y x w clus; y has -99 codes (3%).
    frame, inp = simulate("ex9_1a", two_level_sizes(1), 1)
    frame["clus"] = frame["clus"] + 1
    frame.loc[rng.random(len(frame)) < 0.03, "y"] = -99
    write_free(frame, inp.names, HERE / "ex9_1a.dat", integers=("clus",))

    for name, seed in (("ex9_1b", 2), ("ex9_2c", 3), ("ex9_8", 4), ("ex9_9", 5)):
        frame, inp = simulate(name, two_level_sizes(seed), seed)
        frame["clus"] = frame["clus"] + 1
        write_free(frame, inp.names, HERE / f"{name}.dat", integers=("clus",))

    # ex9_3: u binary (threshold 0 at the between level).
    frame, inp = simulate("ex9_3", two_level_sizes(6), 6, n_categories={"u": 2})
    frame["clus"] = frame["clus"] + 1
    write_free(frame, inp.names, HERE / "ex9_3.dat", integers=("clus", "u"))

    # ex9_6: FORMAT (6F8.3, 1X, F7.3, I4); w without a decimal point (implied 3
    # decimals); 2% of y1-y4 blank (MISSING = BLANK).
    frame, inp = simulate("ex9_6", two_level_sizes(7), 7)
    frame["clus"] = frame["clus"] + 1
    lines = []
    for row in frame.itertuples(index=False):
        ys = [" " * 8 if rng.random() < 0.02 else f"{getattr(row, y):8.3f}"
              for y in ("y1", "y2", "y3", "y4")]
        lines.append("".join(ys) + f"{row.x1:8.3f}{row.x2:8.3f} "
                     f"{int(round(row.w * 1000)):7d}{int(row.clus):4d}")
    (HERE / "ex9_6.dat").write_text("\n".join(lines) + "\n")

    # ex9_11: id y1-y4 w clus, '.' for 2% of y1-y4.
    frame, inp = simulate("ex9_11", two_level_sizes(8), 8)
    frame["clus"] = frame["clus"] + 1
    frame.insert(0, "id", np.arange(1, len(frame) + 1, dtype=float))
    for y in ("y1", "y2", "y3", "y4"):
        frame.loc[rng.random(len(frame)) < 0.02, y] = np.nan
    write_free(frame, inp.names, HERE / "ex9_11.dat", integers=("clus", "id"), missing=".")

    # ex9_20: 20 level-3 clusters of 4 level-2 clusters of 3-8 observations.
    sizes = [list(rng.integers(3, 9, size=4)) for _ in range(20)]
    frame, inp = simulate("ex9_20", sizes, 9)
    frame["level3"] = frame["level3"] + 1
    frame["level2"] = frame["level2"] + 1
    write_free(frame, inp.names, HERE / "ex9_20.dat", integers=("level2", "level3"))

    # ex9_24: 25 level2a x 20 level2b classifications, 500 observations in random cells.
    # y = 1 + 0.4 x + (0.4 w + u_a) + (0.4 z + u_b) + e, var u_a = var u_b = 0.4, var e = 1.
    n, n_a, n_b = 500, 25, 20
    a = rng.integers(0, n_a, size=n)
    b = rng.integers(0, n_b, size=n)
    w, z = rng.normal(size=n_a), rng.normal(size=n_b)
    u_a, u_b = rng.normal(0, np.sqrt(0.4), n_a), rng.normal(0, np.sqrt(0.4), n_b)
    x = rng.normal(size=n)
    y = 1 + 0.4 * x + 0.4 * w[a] + u_a[a] + 0.4 * z[b] + u_b[b] + rng.normal(size=n)
    frame = pd.DataFrame({"y": y, "x": x, "w": w[a], "z": z[b], "level2a": a + 1.0,
                          "level2b": b + 1.0})
    write_free(frame, list(frame.columns), HERE / "ex9_24.dat",
               integers=("level2a", "level2b"))
    print(f"wrote the data files in {HERE}")


if __name__ == "__main__":
    main()
