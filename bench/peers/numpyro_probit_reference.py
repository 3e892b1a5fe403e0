"""Long numpyro NUTS runs on two single-level probit models: exact-check references.

Writes ``outputs/numpyro_probit.json``: posterior summaries, precise enough (bulk ESS
of at least 20000 per parameter, so Monte Carlo standard errors below 0.01 posterior
SD) to check another sampler's posterior against, plus the data themselves.

``probit_regression``
    N = 400, x1 ~ N(0, 1), x2 ~ Bernoulli(0.5) (0/1), y* = 0.4 x1 - 0.7 x2 + e,
    e ~ N(0, 1), u = 1 if y* > -0.2 else 0. Model P(u = 1) = Phi(b1 x1 + b2 x2 - tau)
    (u = 1 iff y* > tau, so the true tau is -0.2).
``ordinal_regression``
    N = 500, x1 ~ N(0, 1), y* = 0.6 x1 + e, e ~ N(0, 1), thresholds (-0.5, 0.4, 1.2),
    u = number of thresholds y* exceeds (0..3). Model
    P(u = k) = Phi(tau_{k+1} - b1 x1) - Phi(tau_k - b1 x1), tau_0 = -inf,
    tau_4 = +inf.

Priors are Mplus's defaults: every coefficient and threshold ~ N(0, variance 1e10)
(sd 1e5); the ordinal model's thresholds are restricted to increasing order (an
``ordered_vector`` site with an improper flat base density, plus the normal log
densities as a factor: the prior is the normal one truncated to the ordered region).

Data: ``numpy.random.default_rng(SEED)`` generates probit_regression (x1, then x2,
then e), ``default_rng(SEED + 1)`` ordinal_regression (x1, then e). The JSON holds
the data as lists, so a check needs neither this script nor numpy's generator.

Sampling: float64, numpyro's NUTS with its defaults (diagonal mass matrix, target
acceptance 0.8, maximum tree depth 10), ``CHAINS`` chains of ``WARMUP`` warmup and
``SAMPLES`` kept draws, run one after another. Summaries by arviz on the kept draws
(``az.summary`` with no rounding: mean, sd, mcse_mean, mcse_sd, ess_bulk, ess_tail,
r_hat) plus the median and 2.5% / 97.5% quantiles of the pooled draws and arviz's
MCSE of each of those quantiles.

Command line (from the repository root): ``python bench/peers/numpyro_probit_reference.py``.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from jax.scipy.special import log_ndtr  # noqa: E402
from numpyro.distributions import constraints  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # arviz's notice of its refactor
    import arviz as az  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "outputs" / "numpyro_probit.json"
SEED = 20240611
CHAINS, WARMUP, SAMPLES = 4, 2000, 20000
PRIOR_SD = 1e5  # variance 1e10, Mplus's default for coefficients and thresholds
MIN_ESS = 20000

TRUTH = {
    "probit_regression": {"b1": 0.4, "b2": -0.7, "tau": -0.2},
    "ordinal_regression": {"b1": 0.6, "tau1": -0.5, "tau2": 0.4, "tau3": 1.2},
}


# ---------------------------------------------------------------- data


def probit_data(seed: int = SEED) -> dict:
    """N = 400 binary responses; keys u (int 0/1), x1, x2 (0.0/1.0)."""
    rng = np.random.default_rng(seed)
    n = 400
    truth = TRUTH["probit_regression"]
    x1 = rng.standard_normal(n)
    x2 = (rng.random(n) < 0.5).astype(float)
    y_star = truth["b1"] * x1 + truth["b2"] * x2 + rng.standard_normal(n)
    u = (y_star > truth["tau"]).astype(int)
    return {"u": u, "x1": x1, "x2": x2}


def ordinal_data(seed: int = SEED + 1) -> dict:
    """N = 500 four-category responses; keys u (int 0..3), x1."""
    rng = np.random.default_rng(seed)
    n = 500
    truth = TRUTH["ordinal_regression"]
    thresholds = np.array([truth["tau1"], truth["tau2"], truth["tau3"]])
    x1 = rng.standard_normal(n)
    y_star = truth["b1"] * x1 + rng.standard_normal(n)
    u = (y_star[:, None] > thresholds).sum(axis=1)
    return {"u": u, "x1": x1}


# ---------------------------------------------------------------- likelihood


def log_interval_probability(lower, upper, lower_open, upper_open):
    """log(Phi(upper) - Phi(lower)), lower < upper, stable in both tails.

    ``lower_open`` marks lower = -inf, ``upper_open`` upper = +inf (the values passed
    there are ignored and replaced by finite ones, so gradients stay finite). An
    interval in the upper tail (lower > 0) is flipped to (-upper, -lower), which has
    the same probability; then log Phi(b) + log1p(-exp(log Phi(a) - log Phi(b))).
    """
    lower = jnp.where(lower_open, upper - 1.0, lower)
    upper = jnp.where(upper_open, lower + 1.0, upper)
    flip = lower > 0.0
    a = jnp.where(flip, -upper, lower)
    b = jnp.where(flip, -lower, upper)
    log_a, log_b = log_ndtr(a), log_ndtr(b)
    interval = log_b + jnp.log1p(-jnp.exp(log_a - log_b))
    below = log_ndtr(upper)  # (-inf, upper)
    above = log_ndtr(-lower)  # (lower, inf)
    return jnp.where(lower_open, below, jnp.where(upper_open, above, interval))


def ordered_probit_loglik(u, eta, thresholds):
    """Sum of log P(u_i) under P(u = k) = Phi(tau_{k+1} - eta) - Phi(tau_k - eta).

    ``u`` (N,) integer categories 0..K, ``eta`` (N,), ``thresholds`` (K,) increasing.
    """
    n_thresholds = thresholds.shape[-1]
    padded = jnp.concatenate([thresholds[:1], thresholds, thresholds[-1:]])
    lower = padded[u] - eta  # tau_u, index shifted by the padding
    upper = padded[u + 1] - eta
    return log_interval_probability(lower, upper, u == 0, u == n_thresholds).sum()


# ---------------------------------------------------------------- models


def probit_model(u, x1, x2) -> None:
    b1 = numpyro.sample("b1", dist.Normal(0.0, PRIOR_SD))
    b2 = numpyro.sample("b2", dist.Normal(0.0, PRIOR_SD))
    tau = numpyro.sample("tau", dist.Normal(0.0, PRIOR_SD))
    eta = b1 * x1 + b2 * x2 - tau
    numpyro.factor("loglik", jnp.where(u == 1, log_ndtr(eta), log_ndtr(-eta)).sum())


def ordinal_model(u, x1) -> None:
    b1 = numpyro.sample("b1", dist.Normal(0.0, PRIOR_SD))
    tau = numpyro.sample(
        "tau", dist.ImproperUniform(constraints.ordered_vector, (), event_shape=(3,))
    )
    numpyro.factor("tau_prior", dist.Normal(0.0, PRIOR_SD).log_prob(tau).sum())
    for k in range(3):
        numpyro.deterministic(f"tau{k + 1}", tau[k])
    numpyro.factor("loglik", ordered_probit_loglik(u, b1 * x1, tau))


# ---------------------------------------------------------------- fit and summarise


def fit(model, data: dict, names: tuple[str, ...], seed: int) -> tuple[dict, float]:
    """NUTS draws {name: (CHAINS, SAMPLES)} and the wall time of the run."""
    mcmc = MCMC(
        NUTS(model),
        num_warmup=WARMUP,
        num_samples=SAMPLES,
        num_chains=CHAINS,
        chain_method="sequential",
        progress_bar=False,
    )
    args = {k: jnp.asarray(v) for k, v in data.items()}
    start = time.perf_counter()
    mcmc.run(jax.random.key(seed), extra_fields=("diverging",), **args)
    samples = mcmc.get_samples(group_by_chain=True)
    seconds = time.perf_counter() - start
    extra = mcmc.get_extra_fields(group_by_chain=True)
    divergences = int(np.asarray(extra["diverging"]).sum())
    draws = {n: np.asarray(samples[n]) for n in names}
    return draws, seconds, divergences


def summarise(draws: dict) -> dict:
    posterior = az.convert_to_dataset(draws)
    table = az.summary(posterior, round_to="none")
    ess_bulk = az.ess(posterior, method="bulk")
    rhat = az.rhat(posterior)
    mcse_mean = az.mcse(posterior, method="mean")
    out = {}
    for name, x in draws.items():
        pooled = x.reshape(-1)
        row = table.loc[name]
        out[name] = {
            "mean": float(pooled.mean()),
            "sd": float(row["sd"]),
            "median": float(np.median(pooled)),
            "q2.5": float(np.quantile(pooled, 0.025)),
            "q97.5": float(np.quantile(pooled, 0.975)),
            "mcse_mean": float(mcse_mean[name]),
            "mcse_sd": float(row["mcse_sd"]),
            "mcse_median": float(az.mcse(posterior, method="median")[name]),
            "mcse_q2.5": float(az.mcse(posterior, method="quantile", prob=0.025)[name]),
            "mcse_q97.5": float(az.mcse(posterior, method="quantile", prob=0.975)[name]),
            "ess_bulk": float(ess_bulk[name]),
            "ess_tail": float(row["ess_tail"]),
            "rhat": float(rhat[name]),
        }
    return out


def main() -> None:
    print(f"numpyro {numpyro.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}")
    runs = {
        "probit_regression": (probit_model, probit_data(SEED), ("b1", "b2", "tau"), SEED),
        "ordinal_regression": (
            ordinal_model,
            ordinal_data(SEED + 1),
            ("b1", "tau1", "tau2", "tau3"),
            SEED + 1,
        ),
    }
    result = {
        "_meta": {
            "numpyro_version": numpyro.__version__,
            "jax_version": jax.__version__,
            "arviz_version": az.__version__,
            "python_version": platform.python_version(),
            "platform": jax.devices()[0].platform,
            "dtype": "float64",
            "chains": CHAINS,
            "warmup": WARMUP,
            "samples": SAMPLES,
            "sampler": "numpyro NUTS, defaults (diag mass, target accept 0.8, max depth 10);"
            " chains run sequentially",
            "prior": "N(0, sd 1e5) on every coefficient and threshold (variance 1e10);"
            " ordinal thresholds restricted to increasing order",
            "summaries": "arviz az.summary(round_to='none'), az.ess(method='bulk'), az.rhat,"
            " az.mcse; median and quantiles of the pooled draws (numpy default, linear)",
            "script": "bench/peers/numpyro_probit_reference.py",
        }
    }
    for name, (model, data, names, seed) in runs.items():
        draws, seconds, divergences = fit(model, data, names, seed)
        params = summarise(draws)
        bad = {p: v for p, v in params.items() if v["rhat"] >= 1.01 or v["ess_bulk"] < MIN_ESS}
        if bad:
            raise RuntimeError(f"{name}: rhat >= 1.01 or ESS < {MIN_ESS}: {bad}")
        result[name] = {
            "n": int(len(data["u"])),
            "data_seed": seed,
            "mcmc_seed": seed,
            "data": {k: v.tolist() for k, v in data.items()},
            "truth": TRUTH[name],
            "parameters": params,
            "divergences": divergences,
            "run_seconds": seconds,
        }
        print(f"{name}: {seconds:.1f} s, {divergences} divergences")
        for p, v in params.items():
            print(
                f"  {p:5s} mean {v['mean']: .5f} sd {v['sd']:.5f} median {v['median']: .5f}"
                f" [{v['q2.5']: .4f}, {v['q97.5']: .4f}] mcse {v['mcse_mean']:.5f}"
                f" ess {v['ess_bulk']:.0f} rhat {v['rhat']:.5f}"
            )
    OUTPUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
