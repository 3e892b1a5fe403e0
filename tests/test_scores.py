"""Factor scores (SAVE = FSCORES) against the exact joint-normal conditional and lavaan."""
import json
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

import jaxsem
from jaxsem.bayes import BayesOptions, fit_bayes, scores
from jaxsem.bayes.layout import build_layout
from jaxsem.errors import ModelError

MODELS = {
    "cfa": ("%WITHIN%\n fw BY y1-y3;\n %BETWEEN%\n fb BY y1-y3;", {}),
    "covariates": ("%WITHIN%\n fw BY y1-y3;\n fw ON x;\n %BETWEEN%\n fb BY y1-y3;\n fb ON w;",
                   {"within": ["x"], "between": ["w"]}),
}


def _analysis(name, sizes=(3, 2, 4, 3), seed=0):
    text, roles = MODELS[name]
    model = jaxsem.Model.from_mplus(text, clusters=["c"], **roles)
    x = model.spec.start_values()
    x[np.asarray([r.kind == "variance" or r.kind == "residual_variance"
                  for r in sorted(model.spec.partable.free_rows(), key=lambda r: r.free)])] = 0.6
    frame = model.spec.simulate(x, jax.random.PRNGKey(seed), list(sizes), cluster_names=["c"])
    return model.prepare(frame), x + np.random.default_rng(seed).normal(0, 0.1, len(x))


def _exact_cluster_posterior(layout, arrays, x, j, observed=None):
    """Mean and covariance of (within latents of cluster j's rows, between values) given
    its outcomes (the entries ``observed`` marks, default all): all of them linear in
    the innovations, conditioned in numpy."""
    mats = [{k: np.asarray(v) for k, v in m.items()} for m in layout.spec.unpack(x)]
    w, b = mats
    p, nv, nb = layout.p, w["beta"].shape[0], b["beta"].shape[0]
    a_w, a_b = np.linalg.inv(np.eye(nv) - w["beta"]), np.linalg.inv(np.eye(nb) - b["beta"])
    rows = np.flatnonzero(arrays["cluster"] == j)
    n = len(rows)
    dim = n * nv + nb                                   # innovations: rows', then between
    cov_z = np.zeros((dim, dim))
    for i in range(n):
        cov_z[i * nv:(i + 1) * nv, i * nv:(i + 1) * nv] = w["psi"]
    cov_z[n * nv:, n * nv:] = b["psi"]
    part = np.zeros((p, nb))
    for i, k in layout.parts:
        part[i, k] = 1.0
    between_mean = a_b @ (b["alpha"] + b["gamma"] @ arrays["w"][j])
    maps, means = [], []          # every quantity = mean + map @ innovations
    for i, r in enumerate(rows):
        m = np.zeros((nv, dim))
        m[:, i * nv:(i + 1) * nv] = a_w
        maps.append(m)
        means.append(a_w @ (w["alpha"] + w["gamma"] @ arrays["c"][r]))
    between_map = np.zeros((nb, dim))
    between_map[:, n * nv:] = a_b
    observed_map = np.concatenate([m[:p] + part @ between_map for m in maps])
    observed_mean = np.concatenate([mu[:p] + part @ between_mean for mu in means])
    target_map = np.concatenate([m[p:] for m in maps] + [between_map])
    target_mean = np.concatenate([mu[p:] for mu in means] + [between_mean])
    s_oo = observed_map @ cov_z @ observed_map.T
    s_to = target_map @ cov_z @ observed_map.T
    s_tt = target_map @ cov_z @ target_map.T
    gain = s_to @ np.linalg.inv(s_oo)
    y = arrays["y"][rows].ravel()
    if observed is not None:
        keep = observed[rows].ravel()
        observed_map, observed_mean, y = observed_map[keep], observed_mean[keep], y[keep]
        s_oo = observed_map @ cov_z @ observed_map.T
        s_to = target_map @ cov_z @ observed_map.T
        gain = s_to @ np.linalg.inv(s_oo)
    return target_mean + gain @ (y - observed_mean), s_tt - gain @ s_to.T, rows


@pytest.mark.parametrize("name", sorted(MODELS))
def test_latent_draws_follow_the_exact_conditional(name):
    """4000 draws at one parameter vector: means within 4.5 MC SEs and variances within
    12% (SE of a variance from 4000 draws: 2.2%) of the closed form, for every latent
    value of every cluster (within factor of each row, between factor and parts)."""
    analysis, x = _analysis(name)
    layout, arrays = build_layout(analysis)
    device = jax.tree_util.tree_map(np.asarray, arrays)
    draw = jax.jit(jax.vmap(lambda key: scores._latent_draw(layout, device, x, key)))
    within, between = draw(jax.random.split(jax.random.PRNGKey(1), 4000))
    between_index = [k for _, k in scores._between_latent(layout)]
    assert [layout.between[k] for k in between_index] == ["y1", "y2", "y3", "fb"]
    for j in range(layout.n_clusters):
        mean, cov, rows = _exact_cluster_posterior(layout, arrays, x, j)
        sampled = np.concatenate([np.asarray(within)[:, rows, 0],
                                  np.asarray(between)[:, j]], axis=1)
        # the between parts are not data here (no known between values); fb is last
        se = np.sqrt(np.diag(cov) / len(sampled))
        np.testing.assert_array_less(np.abs(sampled.mean(0) - mean), 4.5 * se)
        np.testing.assert_allclose(sampled.var(0), np.diag(cov), rtol=0.12)


def test_fscores_summaries_and_draw_selection():
    analysis, _ = _analysis("cfa", sizes=[6] * 30)
    fit = fit_bayes(analysis, BayesOptions(chains=2, fbiterations=1200, progress=False))
    result = scores.draw_factor_scores(fit, 50)
    assert result.within.shape == (50, 180, 1) and result.between.shape == (50, 30, 4)
    names, table = result.per_row()
    assert names[:5] == ["FW", "FW_median", "FW_sd", "FW_lower_2.5", "FW_upper_97.5"]
    assert names[5] == "B_Y1" and table.shape == (180, 25)
    assert (table[:, 3] < table[:, 1]).all() and (table[:, 1] < table[:, 4]).all()
    with pytest.raises(ModelError, match="more draws than"):
        scores.draw_factor_scores(fit, 50, thin=100)
    plausible = result.plausible_values("between")
    assert list(plausible.columns) == ["draw", "cluster", "B_Y1", "B_Y2", "B_Y3", "FB"]
    assert len(plausible) == 50 * 30
    row = plausible.iloc[30 * 7 + 4]                      # draw 7, fifth cluster
    assert row["draw"] == 7 and row["cluster"] == analysis.data.cluster_ids[0][4]
    np.testing.assert_array_equal(row.iloc[2:].to_numpy(float), result.between[7, 4])
    within = result.plausible_values()
    assert within.shape == (50 * 180, 3) and (within["row"][:180] == np.arange(180)).all()


def test_demo_twolevel_scores_agree_with_lavaan():
    """lavaan 0.6.14 lavPredict (EBM: the posterior means of the scores given the data at
    the ML estimates; bench/peers/fscores_lavaan.R) on Demo.twolevel (2500 rows, 200
    clusters). With this much data the posterior means of the Bayes scores differ from
    them by Monte Carlo error: z = difference / (posterior SD / sqrt(draws)) has mean
    |z| about 0.8 and, over 2500 values, a maximum about 4. The between scores differ
    also because they integrate over the between parameters (200 clusters) instead of
    fixing them at the ML values: mean |z| 0.91-1.02 over seeds 1-3 (mean z +0.1)."""
    root = Path(__file__).resolve().parents[1] / "bench/peers"
    reference = json.loads((root / "outputs/fscores_lavaan.json").read_text())
    frame = pd.read_csv(root / "data/Demo.twolevel.csv")
    model = jaxsem.Model.from_lavaan("level: 1\n fw =~ y1 + y2 + y3\nlevel: 2\n"
                                     " fb =~ y1 + y2 + y3", clusters=["cluster"])
    fit = model.fit(frame[["y1", "y2", "y3", "cluster"]], chains=2, fbiterations=2000,
                    bseed=1, progress=False)
    result = scores.draw_factor_scores(fit, 200)
    assert reference["between_cluster_id"] == list(range(1, 201))
    for draws, expected, mean_bound in (
            (result.within[:, :, 0], reference["within_scores"], 1.0),
            (result.between[:, :, result.between_names.index("FB")],
             reference["between_scores"], 1.25)):
        z = (draws.mean(0) - np.asarray(expected)) / (draws.std(0) / np.sqrt(len(draws)))
        assert np.abs(z).mean() < mean_bound and np.abs(z).max() < 5.5


def test_ml_empirical_bayes_scores_equal_lavaan():
    """The conditional means at the ML estimates (noise set to zero in the same steps)
    are lavaan's lavPredict EBM scores: equal to rounding once the estimates agree
    (the ML fits agree to about 1e-6 in the parameters)."""
    from jaxsem.ml import MLOptions, fit_ml

    root = Path(__file__).resolve().parents[1] / "bench/peers"
    reference = json.loads((root / "outputs/fscores_lavaan.json").read_text())
    frame = pd.read_csv(root / "data/Demo.twolevel.csv")
    model = jaxsem.Model.from_lavaan("level: 1\n fw =~ y1 + y2 + y3\nlevel: 2\n"
                                     " fb =~ y1 + y2 + y3", clusters=["cluster"])
    fit = fit_ml(model.prepare(frame[["y1", "y2", "y3", "cluster"]]),
                 MLOptions(saturated=False))
    result = scores.expected_factor_scores(fit)
    assert result.expected and result.per_row()[0] == ["FW", "B_Y1", "B_Y2", "B_Y3", "FB"]
    np.testing.assert_allclose(result.within[0, :, 0], reference["within_scores"], atol=1e-5)
    np.testing.assert_allclose(result.between[0, :, -1], reference["between_scores"],
                               atol=1e-5)


def test_latent_draws_with_missing_outcomes_follow_the_exact_conditional():
    """Missing outcome values: the draws of the latent values given only the observed
    entries match the exact joint-normal conditional of each cluster (the same numpy
    reference, conditioned on the observed entries alone)."""
    _, x = _analysis("covariates")
    text, roles = MODELS["covariates"]
    model = jaxsem.Model.from_mplus(text, clusters=["c"], **roles)
    truth = model.spec.start_values()
    frame = model.spec.simulate(truth, jax.random.PRNGKey(3), [3, 4, 2, 3], cluster_names=["c"])
    frame.loc[[0, 4, 5, 9], "y2"] = np.nan
    frame.loc[[4, 7], "y1"] = np.nan
    analysis = model.prepare(frame)
    layout, arrays = scores.check_supported(analysis)
    assert layout.has_missing
    masks, device = scores._program_inputs(layout, arrays)
    draw = jax.jit(jax.vmap(lambda key: scores._latent_draw(layout, device, x, key,
                                                            masks=masks)))
    within, between = draw(jax.random.split(jax.random.PRNGKey(2), 4000))
    for j in range(layout.n_clusters):
        mean, cov, rows = _exact_cluster_posterior(layout, arrays, x, j,
                                                   observed=arrays["observed"])
        sampled = np.concatenate([np.asarray(within)[:, rows, 0],
                                  np.asarray(between)[:, j]], axis=1)
        se = np.sqrt(np.diag(cov) / len(sampled))
        np.testing.assert_array_less(np.abs(sampled.mean(0) - mean), 4.5 * se)
        np.testing.assert_allclose(sampled.var(0), np.diag(cov), rtol=0.12)
    means = jax.jit(lambda: scores._latent_draw(layout, device, x, jax.random.PRNGKey(0),
                                                noise_scale=0.0, masks=masks))()
    mean, _, rows = _exact_cluster_posterior(layout, arrays, x, 1, observed=arrays["observed"])
    np.testing.assert_allclose(np.asarray(means[0])[rows, 0], mean[:len(rows)], atol=1e-10)


@pytest.mark.slow
def test_ordinal_cfa_scores_agree_with_numpyro_nuts():
    """Two-level ordinal CFA (bench_categorical's data): the posterior means of jaxsem's
    factor scores (states of the continued chains) against numpyro NUTS, which samples
    the scores with the parameters (bench/peers/numpyro_scores_reference.py). z =
    difference / combined Monte Carlo SE: mean |z| about 0.8, maximum over 2000 rows
    about 4."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench/peers"))
    import numpyro_peers

    root = Path(__file__).resolve().parents[1] / "bench/peers"
    reference = json.loads((root / "outputs/numpyro_ordinal_scores.json").read_text())
    data = numpyro_peers.make_data("ordinal_cfa_twolevel", seed=0)
    frame = pd.DataFrame(data["u"], columns=["u1", "u2", "u3", "u4"])
    frame["c"] = data["cluster"]
    model = jaxsem.Model.from_mplus("%WITHIN%\n fw BY u1-u4;\n %BETWEEN%\n fb BY u1-u4;",
                                    categorical=["u1", "u2", "u3", "u4"], clusters=["c"])
    fit = model.fit(frame, chains=2, fbiterations=2000, bseed=0, progress=False)
    n = 200
    result = scores.draw_factor_scores(fit, n)
    assert result.continued
    for draws, site in ((result.within[:, :, 0], "fw"),
                        (result.between[:, :, result.between_names.index("FB")], "fb")):
        peer = reference[site]
        se = np.sqrt(draws.var(0) / n + np.asarray(peer["sd"]) ** 2
                     / np.asarray(peer["ess_bulk"]))
        z = (draws.mean(0) - np.asarray(peer["mean"])) / se
        assert np.abs(z).mean() < 1.1 and np.abs(z).max() < 5.5, (site, np.abs(z).mean(),
                                                                   np.abs(z).max())
