"""Factor scores of a Bayes fit: posterior draws of every latent value (SAVE = FSCORES).

For each of n kept parameter draws x (spread over the chains), the latent values are
drawn from their exact conditionals, which makes (x, latent values) a draw from the
joint posterior (composition sampling):

1. between state | x, observed data: every cluster's stochastic between values
   (between parts of within-varying variables, random slopes, between factors kept in
   the state), the sampler's own Gaussian block (bayes.quadratic); with missing
   outcome values, from the observed entries only: the cluster density of the ML
   likelihood (FIML by missing-data pattern) is quadratic in the state, and its
   gradient and Hessian give the exact Gaussian conditional;
2. missing outcome values | the row's observed ones, its cluster's values, x: the
   sampler's imputation step;
3. between factors integrated out by the sampler | kept between values, x: Gaussian
   conditioning in the between model's joint normal;
4. within latent variables | the row's (completed) outcomes, its cluster's between
   values, x: Gaussian conditioning in the within model's joint normal,
   ``v = (I - B)^-1 (alpha + Gamma_j c + zeta)``, zeta ~ N(0, Psi).

With categorical outcomes the latent responses y* are part of what the chains carry:
the chains are continued (driver.continue_chains, one chunk of iterations per draw),
and steps 3-4 run on each state they reach, with its parameters, between values and
latent responses (the state is a draw from the joint posterior).

Summaries per unit (mean, median, SD, 2.5% and 97.5%) are what Mplus saves.

Every step is linear-Gaussian, so the same steps with the noise set to zero give the
exact posterior means of the latent values given the data at one parameter vector:
the empirical Bayes scores of an ML fit (:func:`expected_factor_scores`; lavaan's EBM).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxsem.bayes import density, quadratic
from jaxsem.bayes.driver import continue_chains
from jaxsem.bayes.gibbs import impute_missing
from jaxsem.bayes.layout import Layout, build_layout
from jaxsem.errors import ModelError
from jaxsem.kernels import gaussian, linalg
from jaxsem.ml.likelihood import complete_cluster_densities, missing_patterns

SUMMARIES = ("mean", "median", "sd", "lower_2.5", "upper_97.5")


@dataclass
class FactorScores:
    """Draws of the latent values. ``within`` (n_draws, N, Lw) per analysed row (the
    rows the sampler used, in data order; ``rows`` (N,) their positions in the data);
    ``between`` (n_draws, J, Lb) per cluster; names of the columns in
    ``within_names``/``between_names`` (between parts of within-varying variables as
    ``B_<name>``, Mplus's convention); ``cluster`` (N,) each row's cluster; ``thin``
    the interval between the parameter draws used, in iterations (None for empirical
    Bayes scores); ``continued``: the draws come from continuing the chains past their
    end (categorical outcomes) rather than from the kept iterations; ``cluster_ids``
    (J,) the clusters' ids in the data (None for a single-level model)."""
    within_names: list[str]
    between_names: list[str]
    within: np.ndarray
    between: np.ndarray
    rows: np.ndarray
    cluster: np.ndarray
    thin: int | None
    continued: bool = False
    cluster_ids: np.ndarray | None = None

    @property
    def expected(self) -> bool:
        """True for empirical Bayes scores (one set of conditional means, no draws)."""
        return self.thin is None

    def plausible_values(self, level: str = "within") -> pd.DataFrame:
        """Every draw in long form (plausible values): one row per draw and unit, with
        ``draw``, then ``row`` (the row's position in the data; ``level="within"``) or
        ``cluster`` (its id; ``level="between"``), then one column per latent value."""
        if level not in ("within", "between"):
            raise ValueError(f"level is 'within' or 'between', not {level!r}")
        names, draws = ((self.within_names, self.within) if level == "within"
                        else (self.between_names, self.between))
        n_draws, n_units = draws.shape[:2]
        units = self.rows if level == "within" else (
            self.cluster_ids if self.cluster_ids is not None else np.arange(n_units))
        frame = pd.DataFrame(draws.reshape(n_draws * n_units, -1), columns=names)
        frame.insert(0, "row" if level == "within" else "cluster", np.tile(units, n_draws))
        frame.insert(0, "draw", np.repeat(np.arange(n_draws), n_units))
        return frame

    def per_row(self) -> tuple[list[str], np.ndarray]:
        """Column names and (N, 5 * (Lw + Lb)) summaries of every analysed row: for each
        latent value its posterior mean, median, SD and 2.5% / 97.5% quantiles (a
        cluster's values repeated on each of its rows); (N, Lw + Lb) expected values
        for empirical Bayes scores."""
        names, columns = [], []
        for label, draws in ((self.within_names, self.within),
                             (self.between_names, self.between[:, self.cluster])):
            for k, name in enumerate(label):
                values = draws[:, :, k]
                if self.expected:
                    names.append(name)
                    columns.append(values[0])
                    continue
                names += [name] + [f"{name}_{s}" for s in SUMMARIES[1:]]
                columns += [values.mean(0), np.median(values, 0), values.std(0, ddof=1),
                            np.quantile(values, 0.025, 0), np.quantile(values, 0.975, 0)]
        return names, np.stack(columns, axis=1) if columns else np.zeros((len(self.rows), 0))


def draw_factor_scores(fit, n_draws: int, thin: int | None = None,
                       seed: int = 0) -> FactorScores:
    """Latent-value draws for ``n_draws`` kept parameter draws of ``fit`` (BayesFit).

    The parameter draws are taken every ``thin`` kept iterations counting back from the
    end of each chain, the chains taking turns (``thin`` defaults to spreading them over
    the kept half evenly). With categorical outcomes the chains are continued instead,
    one draw per chunk of iterations (``thin`` must then be left out or equal it).
    """
    chunk = min(fit.options.chunk, fit.draws.shape[1])
    layout, arrays = check_supported(fit.analysis, thin=thin, chunk=chunk)
    if n_draws < 2:
        raise ModelError(f"SAVE = FSCORES ({n_draws}) needs at least 2 draws")
    if _categorical(layout):
        return _scores_from_continued_chains(fit, layout, arrays, n_draws, chunk, seed)
    kept = fit.kept
    chains, n_kept, _ = kept.shape
    per_chain = -(-n_draws // chains)
    thin = thin or max(n_kept // per_chain, 1)
    if per_chain > n_kept or (per_chain - 1) * thin >= n_kept:
        raise ModelError(f"SAVE = FSCORES ({n_draws} {thin}) asks for more draws than the "
                         f"{n_kept} kept iterations of each of the {chains} chains hold: use "
                         "fewer draws, a smaller thinning interval or more iterations")
    steps = n_kept - 1 - thin * np.arange(per_chain)
    chosen = np.stack([kept[:, step] for step in steps[::-1]], axis=0).reshape(-1, kept.shape[2])
    chosen = chosen[:n_draws]
    masks, inputs = _program_inputs(layout, arrays)
    one = jax.jit(lambda values, x, key: _latent_draw(layout, values, x, key, masks=masks))
    keys = jax.random.split(jax.random.PRNGKey(seed), n_draws)
    within, between = zip(*(jax.device_get(one(inputs, jnp.asarray(x), k))
                            for x, k in zip(chosen, keys)))
    return _scores(fit.analysis, layout, arrays, within, between, thin)


def expected_factor_scores(fit) -> FactorScores:
    """Empirical Bayes scores of an ML fit: the posterior means of every latent value
    given the data at the estimates ``fit.x`` (lavaan's EBM, "regression" scores)."""
    layout, arrays = check_supported(fit.analysis, "ML")
    masks, inputs = _program_inputs(layout, arrays)
    within, between = jax.device_get(jax.jit(lambda values, x: _latent_draw(
        layout, values, x, jax.random.PRNGKey(0), noise_scale=0.0, masks=masks))(
            inputs, jnp.asarray(fit.x)))
    return _scores(fit.analysis, layout, arrays, within[None], between[None], None)


def check_supported(analysis, estimator: str = "Bayes", thin: int | None = None,
                    chunk: int = 100):
    """(layout, arrays) of an analysis whose factor scores can be drawn; else ModelError.
    ``thin``: the interval asked for; with categorical outcomes only ``chunk`` can be
    honoured."""
    if len(analysis.spec.blocks) == 3:
        kind = "cross-classified" if analysis.data.crossed else "three-level"
        raise ModelError(f"factor scores (SAVE = FSCORES) of {kind} models are not "
                         "supported yet")
    layout, arrays = build_layout(analysis, estimator)
    if _categorical(layout) and estimator != "Bayes":
        raise ModelError("factor scores of categorical outcomes are available for "
                         "ESTIMATOR = BAYES")
    if _categorical(layout) and thin is not None and thin != chunk:
        raise ModelError(f"with categorical outcomes the draws come from continuing the "
                         f"chains, one every {chunk} iterations: leave out the thinning "
                         "interval (SAVE = FSCORES (n);)")
    return layout, arrays


def _categorical(layout: Layout) -> bool:
    return bool(layout.categorical or layout.between_categorical)


def _scores_from_continued_chains(fit, layout: Layout, arrays, n_draws: int, chunk: int,
                                  seed: int) -> FactorScores:
    """Categorical outcomes: latent values given the states of the continued chains."""
    chains = fit.draws.shape[0]
    _, inputs = _program_inputs(layout, arrays)

    def latent(values, state, key):
        known = values["known"] if state.known is None else state.known
        values = dict(values, y=state.y, known=known)
        return _latent_draw(layout, values, state.x, key, given_state=state.between)
    one = jax.jit(jax.vmap(latent, in_axes=(None, 0, 0)))
    keys = jax.random.split(jax.random.PRNGKey(seed), n_draws)
    within, between = [], []
    for i, states in enumerate(continue_chains(fit, -(-n_draws // chains))):
        w, b = jax.device_get(one(inputs, states, jax.random.split(keys[i], chains)))
        within += list(w)
        between += list(b)
    return _scores(fit.analysis, layout, arrays, within[:n_draws], between[:n_draws], chunk,
                   continued=True)


def _program_inputs(layout: Layout, arrays) -> tuple:
    """(missing-data patterns or None, device arrays with each row's pattern): the data
    are arguments of the compiled draws, not constants inside them; the patterns are
    static (the FIML density is evaluated per pattern)."""
    masks = None
    if layout.has_missing and not _categorical(layout):
        masks, row_pattern = missing_patterns(np.asarray(arrays["observed"]))
        arrays = dict(arrays, row_pattern=row_pattern)
    return masks, {k: jnp.asarray(v) for k, v in arrays.items()}


def _scores(analysis, layout: Layout, arrays, within, between, thin,
            continued: bool = False) -> FactorScores:
    """FactorScores from per-draw (N, Lw) and (J, Lb) arrays, named from the layout."""
    ids = analysis.data.cluster_ids[0] if layout.two_level else None
    return FactorScores(_within_latent(layout), [name for name, _ in _between_latent(layout)],
                        np.stack(within), np.stack(between), _analysed_rows(analysis, layout),
                        np.asarray(arrays["cluster"]), thin, continued, ids)


def _within_latent(layout: Layout) -> list[str]:
    return [name.upper() for name in layout.spec.blocks[0].variables[layout.p:]]


def _between_latent(layout: Layout) -> list[tuple[str, int]]:
    """(report name, index into between) of every between value that is not data,
    except between parts fixed by the others (residual variance 0: ``y1@0``)."""
    if not layout.two_level:
        return []
    parts = {k for _, k in layout.parts}
    unknown = sorted(set(range(layout.nb)) - set(layout.known)
                     - (parts & set(layout.deterministic)))
    return [((f"B_{layout.between[k]}" if k in parts else layout.between[k]).upper(), k)
            for k in unknown]


def _analysed_rows(analysis, layout: Layout) -> np.ndarray:
    """Positions in the data of the rows the sampler used (rows with a missing
    covariate are left out by build_layout)."""
    data = analysis.data
    columns = {name.lower(): i for i, name in enumerate(data.names)}
    covariates = [columns[v.lower()] for v in layout.within_covariates]
    missing = np.isnan(data.values[:, covariates]).any(axis=1) if covariates else (
        np.zeros(data.n_obs, dtype=bool))
    return np.flatnonzero(~missing)


def _latent_draw(layout: Layout, arrays, x, key, noise_scale: float = 1.0,
                 given_state=None, masks=None):
    """(N, Lw) within and (J, Lb) between latent values for one parameter vector x: a
    draw, or with ``noise_scale`` 0 the conditional means; ``given_state`` (J, nS): the
    between state of a chain (with arrays["y"] complete), not drawn again; ``masks``:
    the missing-data patterns of :func:`_program_inputs` (missing outcomes only)."""
    spec = layout.spec
    mats = spec.unpack(x)
    prep = density.prepare(layout, mats)
    key_between, key_missing, key_collapsed, key_within = jax.random.split(key, 4)
    n_clusters = layout.n_clusters
    y = arrays["y"]
    state = jnp.zeros((n_clusters, 0))
    if given_state is not None:
        state = given_state
    elif layout.two_level:
        noise = noise_scale * jax.random.normal(key_between,
                                                (n_clusters, len(layout.stochastic)))
        if layout.has_missing:
            state = _state_given_observed(layout, mats, arrays, noise, masks)
        else:
            state = quadratic.draw_between_state(noise, layout, prep, arrays)
    if layout.has_missing and given_state is None:
        y = impute_missing(noise_scale * jax.random.normal(key_missing, y.shape), layout,
                           mats, arrays, state, y)
    if layout.two_level:
        zb = density.assemble_all(layout, prep, state, arrays)
        if layout.collapsed:
            zb = _draw_collapsed(layout, mats[1], zb, arrays["w"], key_collapsed, noise_scale)
    else:
        zb = jnp.zeros((n_clusters, 0))
    within = _draw_within(layout, mats[0], zb, dict(arrays, y=y), key_within, noise_scale)
    between = zb[:, np.asarray([k for _, k in _between_latent(layout)], dtype=int)]
    return within, between


def _state_given_observed(layout: Layout, mats, arrays, noise, masks):
    """(J, nS) draw of every cluster's between state given the observed outcome entries
    (noise (J, nS) standard normal; zero gives the conditional means); ``masks`` the
    patterns that ``arrays["row_pattern"]`` indexes."""
    n_state = len(layout.stochastic)
    points = jnp.asarray(gaussian.quadratic_points(n_state))
    values = jax.vmap(lambda point: complete_cluster_densities(
        layout, mats, arrays, jnp.broadcast_to(point, (layout.n_clusters, n_state)),
        masks))(points)
    grad, precision = gaussian.quadratic_from_values(values, n_state)
    return gaussian.sample_from_precision(noise, precision, grad)


def _draw_collapsed(layout: Layout, b, zb, w, key, noise_scale):
    """zb (J, nb) with the integrated-out between factors drawn given the kept values."""
    inverse = linalg.inverse_identity_minus(b["beta"], layout.spec.pattern(1, "beta"))
    cov = inverse @ b["psi"] @ inverse.T
    mean = (inverse @ (b["alpha"][:, None] + b["gamma"] @ w.T)).T          # (J, nb)
    kept, drawn = np.asarray(layout.innovations), np.asarray(layout.collapsed)
    gain = jnp.linalg.solve(cov[np.ix_(kept, kept)], cov[np.ix_(kept, drawn)]).T
    conditional = cov[np.ix_(drawn, drawn)] - gain @ cov[np.ix_(kept, drawn)]
    centre = mean[:, drawn] + (zb[:, kept] - mean[:, kept]) @ gain.T
    noise = noise_scale * jax.random.normal(key, centre.shape)
    return zb.at[:, drawn].set(centre + noise @ _psd_root(conditional).T)


def _draw_within(layout: Layout, w, zb, arrays, key, noise_scale):
    """(N, Lw) within latent variables given each row's outcomes and cluster values."""
    p = layout.p
    inverse = linalg.inverse_identity_minus(w["beta"], layout.spec.pattern(0, "beta"))
    if inverse.shape[0] == p:
        return jnp.zeros((arrays["y"].shape[0], 0))
    cov = inverse @ w["psi"] @ inverse.T
    gamma = jnp.broadcast_to(w["gamma"], (zb.shape[0],) + w["gamma"].shape)
    for row, col, source in layout.random_slopes:
        gamma = gamma.at[:, row, col].add(zb[:, source])
    shift = jnp.zeros((zb.shape[0], inverse.shape[0])).at[:, :p].set(
        zb @ jnp.asarray(density.part_matrix(layout)).T)
    cluster = arrays["cluster"]
    mean = (inverse @ (w["alpha"][None, :, None] + gamma[cluster] @ arrays["c"][:, :, None])
            )[:, :, 0] + shift[cluster]                                       # (N, nv)
    observed, latent = np.arange(p), np.arange(p, inverse.shape[0])
    gain = jnp.linalg.solve(cov[np.ix_(observed, observed)], cov[np.ix_(observed, latent)]).T
    conditional = cov[np.ix_(latent, latent)] - gain @ cov[np.ix_(observed, latent)]
    centre = mean[:, latent] + (arrays["y"] - mean[:, observed]) @ gain.T
    noise = noise_scale * jax.random.normal(key, centre.shape)
    return centre + noise @ _psd_root(conditional).T


def _psd_root(cov):
    """A square root of a positive semi-definite matrix (zero directions allowed)."""
    values, vectors = jnp.linalg.eigh(0.5 * (cov + cov.T))
    return vectors * jnp.sqrt(jnp.clip(values, 0.0, None))[None, :]
