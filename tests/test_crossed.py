"""Cross-classified models (bayes.crossed): exact posterior and refusals.

The Geweke test of the cross-classified sweep is in test_geweke.py.
"""
import arviz as az
import numpy as np
import pandas as pd
import pytest

import jaxsem
from jaxsem.errors import ModelError

KNOWN_VARIANCES = """
%WITHIN%
y ON x;
y@1;
%BETWEEN level2a%
y ON w;
y@0.4;
%BETWEEN level2b%
y@0.3;
"""
ROLES = dict(within=["x"], between_levels={"w": 2}, clusters=("level2b", "level2a"),
             crossed=True)


def _frame(seed=5, n=300) -> pd.DataFrame:
    """Observations in random cells of 12 x 9 crossed classifications (ids not
    contiguous); w is a level2a variable."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 12, n), rng.integers(0, 9, n)
    w = rng.normal(size=12)
    y = (1 + 0.5 * rng.normal(size=n) + 0.3 * w[a] + rng.normal(0, np.sqrt(0.4), 12)[a]
         + rng.normal(0, np.sqrt(0.3), 9)[b] + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": rng.normal(size=n), "w": w[a], "level2a": 10 * a + 1,
                         "level2b": 3 * b + 2})


def test_fixed_effects_match_the_exact_gls_posterior():
    """With the variances known, the posterior of (intercept, slope on x, slope on w)
    under Mplus's N(0, 10^10) priors is N(GLS, (X' V^-1 X)^-1), V = I + 0.4 [same a] +
    0.3 [same b]. Means within 4 MC SEs (ArviZ ESS), SDs within 4 SEs of the SD."""
    frame = _frame()
    fit = jaxsem.Model.from_mplus(KNOWN_VARIANCES, **ROLES).fit(
        frame, chains=4, fbiterations=6000, progress=False)
    n = len(frame)
    design = np.column_stack([np.ones(n), frame.x, frame.w])
    same_a = frame.level2a.values[:, None] == frame.level2a.values[None]
    same_b = frame.level2b.values[:, None] == frame.level2b.values[None]
    v_inv = np.linalg.inv(np.eye(n) + 0.4 * same_a + 0.3 * same_b)
    cov = np.linalg.inv(design.T @ v_inv @ design)
    mean = cov @ design.T @ v_inv @ frame.y.values
    order = [fit.names.index(n) for n in ("level2b: y~1", "within: y~x", "level2a: y~w")]
    draws = fit.kept[:, :, order]
    ess = az.ess(az.convert_to_dataset({"x": draws}))["x"].values
    sd = np.sqrt(np.diag(cov))
    for k in range(3):
        flat = draws[:, :, k].ravel()
        assert abs(flat.mean() - mean[k]) < 4 * sd[k] / np.sqrt(ess[k]), (k, flat.mean(), mean[k])
        assert abs(flat.std() / sd[k] - 1) < 4 / np.sqrt(2 * ess[k]), (k, flat.std(), sd[k])


@pytest.mark.parametrize("text, message", [
    (KNOWN_VARIANCES.replace("y ON x;", "s | y ON x;"), "random coefficients in"),
    (KNOWN_VARIANCES.replace("y@1;", "y (v);").replace("y@0.4;", "y (v);"),
     "an equality constraint across the levels level2a, within (v)"),
])
def test_refusals_name_the_reason(text, message):
    with pytest.raises(ModelError) as info:
        jaxsem.Model.from_mplus(text, **ROLES).fit(_frame(), chains=1, fbiterations=50,
                                                   progress=False)
    assert message in str(info.value) and "cross-classified" in str(info.value)
