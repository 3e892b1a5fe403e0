"""Geweke (2004) "getting it right": the successive-conditional simulator that
alternates one Gibbs sweep with a fresh data set drawn from the model must keep the
prior as the marginal of the parameters. Models with proper priors on every
parameter: a two-level CFA (measurement blocks, bayes.factor; and with a cross-level
label, the NUTS block with the between factor integrated out) and a random-slope model (exact Gaussian block, inverse-gamma and inverse-Wishart blocks).
Tolerance: |z| < 4 per prior moment, with Monte Carlo SEs from ArviZ's ESS (for an SD,
the SE uses the prior's kurtosis).
"""
import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxsem
from jaxsem.bayes import density, quadratic
from jaxsem.bayes.gibbs import build_schedule, draw_noise, initial_state, make_sweep
from jaxsem.bayes.layout import build_layout

CFA = """
%WITHIN%
fw BY y1@1
      y2 (lw2)
      y3 (lw3);
y1 (tw1); y2 (tw2); y3 (tw3);
fw (pw);
%BETWEEN%
fb BY y1@1
      y2 (lb2)
      y3 (lb3);
y1 (tb1); y2 (tb2); y3 (tb3);
fb (pb);
[y1] (n1); [y2] (n2); [y3] (n3);
"""
CFA_PRIORS = """
lw2-lw3 ~ N(1, 0.1); lb2-lb3 ~ N(1, 0.1);
tw1-tw3 ~ IG(6, 5); tb1-tb3 ~ IG(6, 5); pw ~ IG(6, 5); pb ~ IG(6, 5);
n1-n3 ~ N(0, 1);
"""
SLOPES = """
%WITHIN%
s | y1 ON x;
y1 (tw);
%BETWEEN%
[y1] (m1); [s] (m2);
y1 (v1); s (v2);
y1 WITH s (c12);
"""
SLOPES_PRIORS = """
tw ~ IG(6, 5); m1-m2 ~ N(0, 1);
v1 ~ IW(1, 10); v2 ~ IW(1, 10); c12 ~ IW(0, 10);
"""
# prior moments: (mean, sd, excess kurtosis or None when only the mean is checked)
IG65 = (1.0, 0.5, 30 * (5 * 6 - 11) / (3 * 2))
IW_DIAGONAL = (1 / 7, np.sqrt(2 / (49 * 5)), None)   # IW(I, 10) with p = 2: IG(4.5, 0.5)
MOMENTS = {"N(1, 0.1)": (1.0, np.sqrt(0.1), 0.0), "N(0, 1)": (0.0, 1.0, 0.0),
           "N(-1, 0.25)": (-1.0, 0.5, 0.0), "N(1, 0.25)": (1.0, 0.5, 0.0),
           "IG(6, 5)": IG65, "IW(1, 10)": IW_DIAGONAL, "IW(0, 10)": (0.0, None, None)}


def _geweke_draws(model, frame, n_steps=12000, seed=0, noise_fn=draw_noise):
    analysis = model.prepare(frame)
    layout, arrays = build_layout(analysis)
    schedule = build_schedule(layout)
    spec = layout.spec
    priors = [str(r.prior) for r in spec.partable.free_rows()]
    x0 = np.array([MOMENTS[p][0] if not p.startswith("IW(0") else 0.0 for p in priors])
    sweep = make_sweep(layout, schedule, n_adapt=400)
    cluster = jnp.asarray(arrays["cluster"])
    c1 = jnp.concatenate([jnp.ones((len(cluster), 1)), jnp.asarray(arrays["c"])], axis=1)
    arrays = jax.tree_util.tree_map(jnp.asarray, arrays)
    counts = (float(len(cluster)), float(layout.n_clusters))

    def new_data(key, x, between):
        prep = density.prepare(layout, spec.unpack(x))
        zb = density.assemble_all(layout, prep, between, arrays)
        design = jax.vmap(lambda z: density.cluster_design(layout, prep, z))(zb)
        means = jnp.einsum("npk,nk->np", design[cluster], c1)
        y = means + jax.random.normal(key, (len(cluster), layout.p)) @ prep.chol_sigma.T
        u = jnp.concatenate([y, c1], axis=1)
        moments = jax.ops.segment_sum(u[:, :, None] * u[:, None, :], cluster,
                                      num_segments=layout.n_clusters)
        data = dict(arrays, y=y, moments=moments, factors=quadratic.moment_factors(moments))
        if layout.categorical:  # y holds the latent responses; the data are their categories
            mats = spec.unpack(x)
            data["codes"] = jnp.stack([
                (y[:, col.column, None] > mats[col.tau_block]["tau"][col.tau_row][None, :])
                .sum(1).astype(float) for col in schedule.categorical], axis=1)
        return data

    def step(state, inputs):
        key, parity = inputs
        k1, k2, k3 = jax.random.split(key, 3)
        data = new_data(k1, state.x, state.between)
        if layout.categorical:
            state = state._replace(y=data["y"])
        noise = jax.tree_util.tree_map(
            lambda a: a[0], noise_fn(layout, schedule, k3, 1, len(cluster), counts))
        state, _ = sweep(k2, state, data, noise, parity)
        return state, state.x

    def chain(key):
        state = initial_state(layout, schedule, x0, jax.tree_util.tree_map(np.asarray, arrays))
        return jax.lax.scan(step, state, (jax.random.split(key, n_steps),
                                          jnp.arange(n_steps) % 2))[1]

    draws = np.asarray(jax.jit(jax.vmap(chain))(jax.random.split(jax.random.PRNGKey(seed), 2)))
    return draws[:, n_steps // 6:], priors, spec.partable.parameter_names(), schedule


def _check_prior_moments(draws, priors, names):
    ess = az.ess(az.convert_to_dataset({"x": draws}))["x"].values
    for k, name in enumerate(names):
        mean, sd, kurtosis = MOMENTS[priors[k]]
        flat = draws[:, :, k].ravel()
        scale = sd if sd is not None else flat.std()
        z = (flat.mean() - mean) / (scale / np.sqrt(ess[k]))
        assert abs(z) < 4, f"{name}: mean {flat.mean():.3f} vs {mean:.3f} (z {z:.1f})"
        if kurtosis is not None:
            se_ratio = np.sqrt((kurtosis + 2) / (4 * ess[k]))
            assert abs(flat.std() / sd - 1) < 4 * se_ratio, (name, flat.std(), ess[k])


CFA_FRAME = pd.DataFrame({"y1": np.arange(18.0) % 5, "y2": np.arange(18.0) % 7,
                          "y3": np.arange(18.0) % 4, "c": np.repeat(np.arange(6), 3)})


def test_cfa_sweep_keeps_the_prior():
    """Both levels in measurement blocks: latent summaries, conjugate draws, scale
    interweaving and the independence steps (within given the between state; between
    with it integrated out)."""
    model = jaxsem.Model.from_mplus(CFA, clusters=["c"], priors=CFA_PRIORS)
    draws, priors, names, schedule = _geweke_draws(model, CFA_FRAME)
    assert not schedule.nuts and [lv.block for lv in schedule.factor_levels] == [0, 1]
    _check_prior_moments(draws, priors, names)


def test_cfa_with_a_cross_level_label_keeps_the_prior():
    """A loading shared across levels leaves both levels to the NUTS block."""
    model = jaxsem.Model.from_mplus(CFA.replace("y2 (lb2)", "y2 (lw2)"), clusters=["c"],
                                    priors=CFA_PRIORS.replace(" lb2-lb3 ~ N(1, 0.1);",
                                                              " lb3 ~ N(1, 0.1);"))
    draws, priors, names, schedule = _geweke_draws(model, CFA_FRAME)
    assert len(schedule.nuts) == len(names) and not schedule.factor_levels
    _check_prior_moments(draws, priors, names)


def test_random_slope_sweep_keeps_the_prior():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"y1": rng.normal(size=40), "x": rng.normal(size=40),
                          "c": np.repeat(np.arange(8), 5)})
    model = jaxsem.Model.from_mplus(SLOPES, within=["x"], clusters=["c"], priors=SLOPES_PRIORS)
    draws, priors, names, schedule = _geweke_draws(model, frame, n_steps=24000)
    blocks = " | ".join(schedule.describe(names))
    assert "NUTS" not in blocks and "inverse Wishart" in blocks and "Gaussian" in blocks
    _check_prior_moments(draws, priors, names)


def test_categorical_cfa_sweep_keeps_the_prior():
    """A binary and a three-category indicator (latent responses, the threshold
    Metropolis step and the joint location shift) beside a continuous one, in the
    measurement blocks of a two-level CFA. (The ordered thresholds' prior is the normal
    one cut to increasing values; the cut removes 0.2% of its mass, far below the
    tolerance.)"""
    model = jaxsem.Model.from_mplus(
        CFA.replace("[y1] (n1); [y2] (n2); ", "").replace("y1 (tw1); y2 (tw2); ", "")
        + "[y1$1] (a1); [y2$1] (a2); [y2$2] (a3);",
        clusters=["c"], categorical=["y1", "y2"],
        priors=CFA_PRIORS.replace("n1-n3", "n3").replace("tw1-tw3", "tw3")
        + "a1 ~ N(0, 1); a2 ~ N(-1, 0.25); a3 ~ N(1, 0.25);")
    frame = CFA_FRAME.assign(y1=np.arange(18) % 2, y2=np.arange(18) % 3)
    draws, priors, names, schedule = _geweke_draws(model, frame, n_steps=16000)
    assert len(schedule.categorical) == 2 and [lv.block for lv in schedule.factor_levels] == [0, 1]
    _check_prior_moments(draws, priors, names)


def test_geweke_detects_a_wrong_conjugate_update():
    """The same check fails when the inverse-Wishart degrees of freedom are 30% off."""
    def wrong_df(layout, schedule, key, n, n_obs, counts):
        return draw_noise(layout, schedule, key, n, n_obs, tuple(1.3 * c for c in counts))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"y1": rng.normal(size=40), "x": rng.normal(size=40),
                          "c": np.repeat(np.arange(8), 5)})
    model = jaxsem.Model.from_mplus(SLOPES, within=["x"], clusters=["c"], priors=SLOPES_PRIORS)
    draws, priors, names, _ = _geweke_draws(model, frame, n_steps=24000, noise_fn=wrong_df)
    with pytest.raises(AssertionError):
        _check_prior_moments(draws, priors, names)
