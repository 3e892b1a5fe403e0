"""Simulation-based calibration (Talts et al. 2018) of the random-slope model, slow.

For each replication: parameters from the prior, data from the model's generator, a
fit, and the rank of the true value among L thinned posterior draws. Ranks must be
uniform on 0..L: a chi-square test over 10 bins per parameter at level 1e-3 (with 6
parameters, the false-alarm chance is under 1%).
"""
import jax
import numpy as np
import pytest
from scipy import stats

import jaxsem

MODEL = """
%WITHIN%
s | y ON x;
y (tw);
%BETWEEN%
[y] (m1); [s] (m2);
y (v1); s (v2);
y WITH s (c12);
"""
PRIORS = "tw ~ IG(6, 5); m1-m2 ~ N(0, 1); v1 ~ IW(1, 10); v2 ~ IW(1, 10); c12 ~ IW(0, 10);"


def _prior_draw(rng, names):
    cov = stats.invwishart(df=10, scale=np.eye(2)).rvs(random_state=rng)
    values = {"within: y~~y": stats.invgamma(6, scale=5).rvs(random_state=rng),
              "between: y~1": rng.normal(), "between: s~1": rng.normal(),
              "between: y~~y": cov[0, 0], "between: s~~s": cov[1, 1],
              "between: y~~s": cov[0, 1]}
    return np.array([values[n] for n in names])


@pytest.mark.slow
def test_random_slope_sbc_ranks_are_uniform():
    model = jaxsem.Model.from_mplus(MODEL, within=["x"], clusters=["c"], priors=PRIORS)
    spec = model.spec
    names = spec.partable.parameter_names()
    rng = np.random.default_rng(2018)
    n_reps, thin, n_draws = 200, 10, 99
    ranks = []
    for r in range(n_reps):
        truth = _prior_draw(rng, names)
        frame = spec.simulate(truth, jax.random.PRNGKey(r), [8] * 30, cluster_names=["c"])
        fit = model.fit(frame, chains=1, fbiterations=2 * thin * n_draws, bseed=r,
                        progress=False)
        draws = fit.kept[0, ::thin][:n_draws]
        ranks.append((draws < truth).sum(axis=0))
    ranks = np.array(ranks)
    for k, name in enumerate(names):
        counts = np.histogram(ranks[:, k], bins=10, range=(0, n_draws + 1))[0]
        p = stats.chisquare(counts).pvalue
        assert p > 1e-3, f"{name}: rank counts {counts.tolist()} (p = {p:.2g})"
