"""Two-level probit models against Stan (hand-written programs with Mplus's default flat
priors: bench/peers/probit_stan_peers.R, outputs committed in bench/peers/outputs/):
a binary and a four-category outcome with a random intercept.

Posterior means must agree within 3.5 combined Monte Carlo SEs (ArviZ's mcse for ours,
the posterior package's for Stan's), posterior SDs within 10%.
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
NAMES = {"within: u~x": "beta", "between: u~~u": "psi", "between: u|t1": "tau1",
         "between: u|t2": "tau2", "between: u|t3": "tau3"}


@pytest.mark.parametrize("name", ["probit_ri", "ordinal_ri"])
def test_random_intercept_probit_matches_stan(name):
    frame = pd.read_csv(PEERS / f"data/{name}.csv")
    model = jaxsem.Model.from_mplus("%WITHIN%\nu ON x;\n%BETWEEN%\nu;", within=["x"],
                                    categorical=["u"], clusters=["cluster"])
    fit = model.fit(frame, chains=4, fbiterations=6000, bseed=2, progress=False)
    ref = json.loads((PEERS / f"outputs/stan_{name}.json").read_text())["parameters"]
    assert {NAMES[n] for n in fit.names} == set(ref)
    for k, param in enumerate(fit.names):
        draws = fit.kept[:, :, k]
        peer = ref[NAMES[param]]
        mcse = float(az.mcse(az.convert_to_dataset({"x": draws}))["x"])
        z = abs(draws.mean() - peer["mean"]) / np.hypot(mcse, peer["mcse_mean"])
        assert z < K, f"{param}: ours {draws.mean():.4f}, Stan {peer['mean']:.4f}, z {z:.2f}"
        assert draws.std() == pytest.approx(peer["sd"], rel=0.10), param
