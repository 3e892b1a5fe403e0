"""Geweke (2004) "getting it right": the successive-conditional simulator that
alternates one Gibbs sweep with a fresh data set drawn from the model must keep the
prior as the marginal of the parameters. Small two-level CFA with proper priors on
every parameter; exercises the between-state, Gaussian, inverse-gamma and NUTS blocks.
Tolerance: |z| < 4 per prior moment with the Monte Carlo SE from ArviZ's ESS.
"""
import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import jaxsem
from jaxsem.bayes import density, quadratic
from jaxsem.bayes.gibbs import build_schedule, draw_noise, initial_state, make_sweep
from jaxsem.bayes.layout import build_layout

MODEL = """
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
PRIORS = """
lw2-lw3 ~ N(1, 0.1); lb2-lb3 ~ N(1, 0.1);
tw1-tw3 ~ IG(6, 5); tb1-tb3 ~ IG(6, 5); pw ~ IG(6, 5); pb ~ IG(6, 5);
n1-n3 ~ N(0, 1);
"""


def test_full_sweep_keeps_the_prior():
    n_clusters, size = 6, 3
    frame = pd.DataFrame({"y1": np.arange(18.0) % 5, "y2": np.arange(18.0) % 7,
                          "y3": np.arange(18.0) % 4, "c": np.repeat(np.arange(n_clusters), size)})
    model = jaxsem.Model.from_mplus(MODEL, clusters=["c"], priors=PRIORS)
    analysis = model.prepare(frame)
    layout, arrays = build_layout(analysis)
    schedule = build_schedule(layout)
    spec = layout.spec
    names = spec.partable.parameter_names()
    prior_mean = {"N(1, 0.1)": 1.0, "IG(6, 5)": 1.0, "N(0, 1)": 0.0}
    prior_sd = {"N(1, 0.1)": np.sqrt(0.1), "IG(6, 5)": np.sqrt(25 / (25 * 4)), "N(0, 1)": 1.0}
    priors = [str(r.prior) for r in spec.partable.free_rows()]
    x0 = np.array([prior_mean[p] for p in priors])
    sweep = make_sweep(layout, schedule, n_adapt=400)
    cluster = jnp.asarray(arrays["cluster"])
    arrays = jax.tree_util.tree_map(jnp.asarray, arrays)

    def new_data(key, x, between):
        prep = density.prepare(layout, spec.unpack(x))
        zb = jax.vmap(lambda s, k, w: density.assemble_between(layout, prep, s, k, w))(
            between, arrays["known"], arrays["w"])
        means = jax.vmap(lambda z: density.cluster_design(layout, prep, z)[:, 0])(zb)
        y = means[cluster] + jax.random.normal(key, (len(cluster), layout.p)) @ prep.chol_sigma.T
        moments = jax.ops.segment_sum(
            jnp.concatenate([y, jnp.ones((len(y), 1))], 1)[:, :, None]
            * jnp.concatenate([y, jnp.ones((len(y), 1))], 1)[:, None, :], cluster,
            num_segments=layout.n_clusters)
        return dict(arrays, y=y, moments=moments, factors=quadratic.moment_factors(moments))

    counts = (float(len(cluster)), float(layout.n_clusters))

    def step(state, key):
        k1, k2, k3 = jax.random.split(key, 3)
        data = new_data(k1, state.x, state.between)
        noise = jax.tree_util.tree_map(
            lambda a: a[0], draw_noise(layout, schedule, k3, 1, len(cluster), counts))
        state, _ = sweep(k2, state, data, noise)
        return state, state.x

    def chain(key):
        state = initial_state(layout, schedule, x0, jax.tree_util.tree_map(np.asarray, arrays))
        return jax.lax.scan(step, state, jax.random.split(key, 12000))[1]

    draws = np.asarray(jax.jit(jax.vmap(chain))(jax.random.split(jax.random.PRNGKey(0), 2)))
    draws = draws[:, 2000:]
    ess = az.ess(az.convert_to_dataset({"x": draws}))["x"].values
    for k, name in enumerate(names):
        flat = draws[:, :, k].ravel()
        z_mean = (flat.mean() - prior_mean[priors[k]]) / (prior_sd[priors[k]] / np.sqrt(ess[k]))
        assert abs(z_mean) < 4, f"{name}: mean {flat.mean():.3f} (z {z_mean:.1f}), ESS {ess[k]:.0f}"
        assert abs(flat.std() / prior_sd[priors[k]] - 1) < 4 / np.sqrt(2 * ess[k]) + 0.02, name
