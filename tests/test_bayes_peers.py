"""Posterior medians against Stan (rstan, hand-written programs with Mplus's default
flat priors; bench/peers/stan_peers.R, outputs committed in bench/peers/outputs/), and
against the ML estimates (lme4, lavaan) stored beside them.

Agreement is required within 3.5 combined Monte Carlo standard errors of the median
(ArviZ's mcse for ours, the posterior package's for Stan's): with ~20 comparisons the
false-alarm chance for a new seed stays below 1%.
"""
import json
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import jaxsem

PEERS = Path(__file__).resolve().parents[1] / "bench/peers"
K = 3.5


def _near_ml(fit, name, within_sd, between_sd):
    """Posterior medians near the ML estimates (lme4 / lavaan, stored by stan_peers.R):
    within ``within_sd`` posterior SDs for within-level parameters (2500 observations)
    and ``between_sd`` for between-level ones (200 clusters: medians of skewed variance
    posteriors sit above ML by about 0.1-0.3 SD)."""
    ml = json.loads((PEERS / f"outputs/stan_{name}.json").read_text())["ml_check"]["est"]
    table = fit.summary()
    for k, param in enumerate(fit.names):
        row = table.loc[table.free == k + 1].iloc[0]
        limit = within_sd if param.startswith("within") else between_sd
        assert abs(row.estimate - ml[param]) < limit * row.posterior_sd, param


def _compare(fit, name):
    ref = json.loads((PEERS / f"outputs/stan_{name}.json").read_text())["parameters"]
    assert set(ref) == set(fit.names)
    worst = 0.0
    for k, param in enumerate(fit.names):
        draws = fit.kept[:, :, k]
        ours = np.median(draws)
        mcse = float(az.mcse(az.convert_to_dataset({"x": draws}), method="median")["x"])
        combined = np.hypot(mcse, ref[param]["mcse_median"])
        z = abs(ours - ref[param]["median"]) / combined
        worst = max(worst, z)
        assert z < K, f"{param}: ours {ours:.4f}, Stan {ref[param]['median']:.4f}, z {z:.2f}"
        assert fit.summary().loc[lambda t: t.free == k + 1, "posterior_sd"].iloc[0] == (
            pytest.approx(ref[param]["sd"], rel=0.15))
    return worst


def test_sleepstudy_random_slopes_match_stan():
    frame = pd.read_csv(PEERS / "data/sleepstudy.csv")
    model = jaxsem.Model.from_mplus("%WITHIN%\n s | reaction ON days;\n %BETWEEN%\n"
                                    " reaction WITH s;", within=["days"], clusters=["subject"])
    fit = model.fit(frame, chains=4, fbiterations=20000, bseed=1, progress=False)
    _compare(fit, "sleepstudy")


def test_demo_twolevel_random_intercept_regression_matches_stan():
    frame = pd.read_csv(PEERS / "data/Demo.twolevel.csv")
    model = jaxsem.Model.from_mplus("%WITHIN%\n y1 ON x1 x2 x3;\n %BETWEEN%\n y1 ON w1 w2;",
                                    within=["x1", "x2", "x3"], between=["w1", "w2"],
                                    clusters=["cluster"])
    fit = model.fit(frame, chains=4, fbiterations=6000, bseed=2, progress=False)
    _compare(fit, "demo_ri")
    _near_ml(fit, "demo_ri", within_sd=0.2, between_sd=0.4)


def test_demo_twolevel_cfa_matches_stan():
    frame = pd.read_csv(PEERS / "data/Demo.twolevel.csv")
    model = jaxsem.Model("level: 1\n fw =~ y1 + y2 + y3\n level: 2\n fb =~ y1 + y2 + y3")
    fit = model.fit(frame, cluster="cluster", chains=4, fbiterations=6000, bseed=3,
                    progress=False)
    _compare(fit, "demo_cfa")
    _near_ml(fit, "demo_cfa", within_sd=0.2, between_sd=0.4)
