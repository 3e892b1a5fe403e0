"""The data-augmented model the Gibbs sampler works on (one or two levels).

Invariants -- read before changing anything below:

* Within-level latent variables (factors) are never drawn: the within likelihood is the
  exact marginal N(mu_ij, Sigma_w) of the observed within parts, evaluated from
  per-cluster moment matrices ``M_j = sum_i u_i u_i'`` with ``u_i = [y_i, 1, c_i]``, so a
  likelihood evaluation costs O(clusters), not O(observations).
* The between-level state holds, per cluster, the values of the *stochastic* between
  variables (innovation variance not fixed at zero) that are not data: the between parts
  of within-varying variables, between factors and random coefficients. They are
  centred (means included): the between parameters are updated given these values,
  which is hierarchical centring.
* Between variables whose innovation variance is fixed at 0 (``y1@0`` on %BETWEEN%) are
  deterministic given the parameters and the state; they are recomputed whenever the
  parameters move, never stored.
* Between-only observed variables (BETWEEN list) are data: conditioned on, never drawn.
* A categorical within-level variable's column of ``y`` holds its latent response y*
  (probit: y* cut at the thresholds gives the category), drawn every sweep
  (bayes.categorical); ``codes`` keeps the categories. Moments are then recomputed per
  sweep, as they are when outcomes are missing.
* Between factors (latent variables that no within quantity uses) are integrated out
  when no between variable is deterministic: the between density is then the marginal
  N(mu_j, Sigma_V) of the values kept (state and data), which removes the slow
  factor <-> loading/residual-variance dependence of data augmentation.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from statistics import NormalDist

import numpy as np

from jaxsem.errors import DataError, ModelError, warn
from jaxsem.model import Analysis
from jaxsem.spec import ModelSpec


def _not_supported(what: str, estimator: str = "Bayes") -> ModelError:
    return ModelError(f"{what} is not supported by the {estimator} estimator yet")


@dataclass(frozen=True)
class Layout:
    """Static structure of the augmented model (hashable: one compilation per layout).

    ``within_observed``: observed within parts, order of the within block (p of them).
    ``within_covariates``: q within covariates. ``between``: the nb between variables
    (block order). ``stochastic``/``known``/``deterministic``: indices into ``between``
    (state, data, zero-variance). ``parts``: (within index, between index) pairs: the
    between part of a within-varying variable. ``random_slopes``: (row, covariate column,
    between index) cells of the within gamma matrix replaced per cluster.
    ``collapsed``: between factors integrated out (see the invariants above).
    ``n_clusters``: J (1 for a single-level model). ``categorical``: indices into
    ``within_observed`` of categorical variables (their y columns are latent responses);
    ``between_categorical``: positions in ``known`` of categorical between-only
    variables (their values are latent responses, drawn every sweep).
    ``external_outcomes``: indices into ``within_observed`` whose values another view sets
    before every sweep (three-level models: the level-2 states; cross-classified: the
    data minus the other classification's parts).
    """
    spec: ModelSpec
    within_observed: tuple[str, ...]
    within_covariates: tuple[str, ...]
    between: tuple[str, ...]
    between_covariates: tuple[str, ...]
    stochastic: tuple[int, ...]
    known: tuple[int, ...]
    deterministic: tuple[int, ...]
    parts: tuple[tuple[int, int], ...]
    random_slopes: tuple[tuple[int, int, int], ...]
    collapsed: tuple[int, ...]
    n_clusters: int
    has_missing: bool
    has_within_latent: bool
    categorical: tuple[int, ...] = ()
    between_categorical: tuple[int, ...] = ()
    external_outcomes: tuple[int, ...] = ()

    @property
    def augmented(self) -> bool:
        """True when the outcome values change every sweep (imputed, latent responses,
        or set by another view), so the per-cluster moments are recomputed
        per sweep."""
        return self.has_missing or bool(self.categorical) or bool(self.external_outcomes)

    @property
    def p(self) -> int:
        return len(self.within_observed)

    @property
    def q(self) -> int:
        return len(self.within_covariates)

    @property
    def nb(self) -> int:
        return len(self.between)

    @property
    def two_level(self) -> bool:
        return len(self.spec.blocks) == 2

    @cached_property
    def innovations(self) -> tuple[int, ...]:
        """Between variables with values in the model, state and data (S + K): those
        with a stochastic innovation, or, with collapsed factors, those whose marginal
        density is evaluated."""
        return tuple(sorted(self.stochastic + self.known))


def build_layout(analysis: Analysis, estimator: str = "Bayes"
                 ) -> tuple[Layout, dict[str, np.ndarray]]:
    """Static layout and the data arrays (numpy) the sampler (and ML) need;
    ``estimator`` names who asks, in the messages about what is not supported.

    Arrays: ``y`` (N, p) with 0 where missing (categorical columns: starting latent
    responses, normal scores of the categories), ``observed`` (N, p) bool (True on
    categorical columns), ``codes`` (N, n_categorical) categories, -1 where missing,
    ``between_codes`` (J, n_between_categorical) likewise for between-only variables,
    ``c`` (N, q),
    ``cluster`` (N,) int32, ``moments`` (J, m, m) and ``factors`` (J, m, m) with
    F F' = M, ``n`` (J,), ``w`` (J, q_b),
    ``known`` (J, |K|).
    """
    spec, data = analysis.spec, analysis.data
    if data.crossed:
        raise _not_supported("a cross-classified model", estimator)
    if len(spec.blocks) > 2:
        raise _not_supported("a model with more than two levels", estimator)
    if analysis.partable.categorical and estimator != "Bayes":
        raise _not_supported("a categorical (probit) outcome", estimator)
    within = spec.blocks[0]
    between = spec.blocks[1] if len(spec.blocks) == 2 else None
    random_slopes = []
    for cell in spec.random_cells:
        if cell.block != 0 or cell.matrix != "gamma":
            kind = {"beta": "a random loading or a random slope on a modelled variable",
                    "psi": "a random residual variance"}.get(cell.matrix, "this random effect")
            raise _not_supported(f"{kind} ('{cell.name}')", estimator)
        random_slopes.append((cell.row, cell.col, cell.source_index))
    has_within_latent = len(within.latent) > 0
    zero_within = _fixed_zero_variances(spec, 0) & set(range(within.n_observed))
    if zero_within:
        names = ", ".join(within.variables[k] for k in sorted(zero_within))
        raise _not_supported(f"a within-level residual variance fixed at 0 ({names})", estimator)
    frame_cols = {name.lower(): i for i, name in enumerate(data.names)}

    def column(name: str) -> np.ndarray:
        return data.values[:, frame_cols[name.lower()]]

    y = np.stack([column(v) for v in within.observed], axis=1) if within.observed else (
        np.zeros((data.n_obs, 0)))
    c = np.stack([column(v) for v in within.covariates], axis=1) if within.covariates else (
        np.zeros((data.n_obs, 0)))
    keep = ~np.isnan(c).any(axis=1)
    if not keep.all():
        warn(f"{int((~keep).sum())} of {len(keep)} rows have missing values on a covariate "
             f"({', '.join(within.covariates)}) and are left out (listwise deletion); "
             "bring the covariate into the model to use them")
    y, c = y[keep], c[keep]
    if len(y) == 0:
        raise DataError("no observations are left after removing rows with missing covariates")
    if between is not None:
        cluster = data.cluster_index[0][keep]
        n_clusters = int(data.n_clusters[0])
    else:
        cluster = np.zeros(len(y), dtype=np.int32)
        n_clusters = 1
    categorical = _categorical_columns(analysis)
    codes = y[:, categorical] if categorical else np.zeros((len(y), 0))
    codes = np.where(np.isnan(codes), -1.0, codes)
    observed = ~np.isnan(y)
    observed[:, categorical] = True
    y[:, categorical] = _normal_scores(codes)
    layout_between: tuple[str, ...] = tuple(between.variables) if between else ()
    stochastic, known, deterministic, parts = [], [], [], []
    w = np.zeros((n_clusters, 0))
    known_values = np.zeros((n_clusters, 0))
    between_categorical: list[int] = []
    between_codes = np.zeros((n_clusters, 0))
    if between is not None:
        psi_fixed_zero = _fixed_zero_variances(spec, 1)
        for k, v in enumerate(between.variables):
            if v in within.observed:
                parts.append((within.observed.index(v), k))
            if k < between.n_observed and v not in within.observed:
                known.append(k)
            elif k in psi_fixed_zero:
                deterministic.append(k)
            else:
                stochastic.append(k)
        cluster_of = data.cluster_index[0]
        w = np.stack([_per_cluster(data, v, cluster_of, n_clusters)
                      for v in between.covariates], axis=1) if between.covariates else w
        if np.isnan(w).any():
            raise _not_supported("missing values on a between-level covariate", estimator)
        if known:
            known_values = np.stack([_per_cluster(data, between.variables[k], cluster_of,
                                                  n_clusters) for k in known], axis=1)
            between_categorical = [i for i, k in enumerate(known)
                                   if between.variables[k] in analysis.partable.categorical]
            between_codes = np.where(np.isnan(known_values[:, between_categorical]), -1.0,
                                     known_values[:, between_categorical])
            known_values[:, between_categorical] = _normal_scores(between_codes)
            if np.isnan(known_values).any():
                raise _not_supported("missing values on a between-level outcome", estimator)
    sources = {k for _, _, k in random_slopes}
    collapsed = [] if deterministic else [
        k for k in stochastic if k >= between.n_observed and k not in sources]
    stochastic = [k for k in stochastic if k not in collapsed]
    if between is not None and n_clusters <= len(stochastic):
        raise ModelError(
            f"the model has {len(stochastic)} random effects per cluster "
            f"({', '.join(between.variables[k] for k in stochastic)}) but the data have only "
            f"{n_clusters} clusters: the between-level covariance cannot be estimated. "
            "Use more clusters or fewer random effects")
    counts = np.bincount(cluster, minlength=n_clusters)
    if (counts == 0).any():
        raise DataError(f"{int((counts == 0).sum())} clusters have no observations left "
                        "after listwise deletion")
    layout = Layout(spec, tuple(within.observed), tuple(within.covariates), layout_between,
                    tuple(between.covariates) if between else (), tuple(stochastic),
                    tuple(known), tuple(deterministic), tuple(parts), tuple(random_slopes),
                    tuple(collapsed), n_clusters, bool((~observed).any()), has_within_latent,
                    tuple(categorical), tuple(between_categorical))
    y0 = np.where(observed, y, 0.0)
    moments = cluster_moments(y0, c, cluster, n_clusters)
    values, vectors = np.linalg.eigh(moments)
    factors = vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :]
    arrays = dict(y=y0, observed=observed, c=c, cluster=cluster.astype(np.int32),
                  moments=moments, factors=factors, n=counts.astype(float), w=w,
                  known=known_values, codes=codes, between_codes=between_codes,
                  **size_groups(counts))
    return layout, arrays


def size_groups(counts: np.ndarray) -> dict:
    """Clusters grouped by size, for terms that depend on a cluster only through its
    size and sums over its members (factor.grouped_between_marginal_loglik,
    quadratic.draw_between_state): ``group_member`` (J, G) 0/1, each cluster's group;
    ``group_size`` and ``group_clusters`` (G,) the groups' cluster size and number of
    clusters. G is padded to a power of two (padding groups have no clusters), so that
    data sets with a similar number of distinct sizes share a compiled program; none
    when the padded count exceeds J / 4 (grouping would not pay)."""
    sizes, group = np.unique(counts, return_inverse=True)
    padded = 1 << max(len(sizes) - 1, 0).bit_length()
    if padded > max(len(counts) // 4, 1):
        return {}
    return dict(group_member=(group[:, None] == np.arange(padded)).astype(float),
                group_size=np.concatenate([sizes, np.ones(padded - len(sizes))]).astype(float),
                group_clusters=np.bincount(group, minlength=padded).astype(float))


def _categorical_columns(analysis: Analysis) -> list[int]:
    """Indices into the within observed parts of the categorical variables; refuses
    categorical variables used only as predictors."""
    spec = analysis.spec
    within = spec.blocks[0]
    names = set(analysis.partable.categorical)
    for v in sorted(names & {c for block in spec.blocks for c in block.covariates}):
        raise ModelError(
            f"'{v}' is CATEGORICAL but only predicts other variables; Mplus's CATEGORICAL "
            "is for dependent variables. Remove it from CATEGORICAL (a binary predictor "
            "enters as a 0/1 covariate; code an ordinal one as dummy variables), or model "
            "it as an outcome")
    return [within.observed.index(v) for v in within.observed if v in names]


def _normal_scores(codes: np.ndarray) -> np.ndarray:
    """(N, k) starting latent responses: the normal quantile of the middle of each
    category's cumulative proportion; 0 where missing."""
    out = np.zeros(codes.shape)
    for j in range(codes.shape[1]):
        seen = codes[:, j] >= 0
        counts = np.bincount(codes[seen, j].astype(int))
        upper = np.cumsum(counts) / counts.sum()
        middle = upper - counts / counts.sum() / 2
        scores = np.array([NormalDist().inv_cdf(float(m)) for m in middle])
        out[seen, j] = scores[codes[seen, j].astype(int)]
    return out


def cluster_moments(y: np.ndarray, c: np.ndarray, cluster: np.ndarray,
                    n_clusters: int) -> np.ndarray:
    """``(J, m, m)`` sums over each cluster of ``u u'`` with ``u = [y, 1, c]``."""
    u = np.concatenate([y, np.ones((len(y), 1)), c], axis=1)
    out = np.zeros((n_clusters, u.shape[1], u.shape[1]))
    np.add.at(out, cluster, u[:, :, None] * u[:, None, :])
    return out


def _per_cluster(data, name: str, cluster_of: np.ndarray, n_clusters: int) -> np.ndarray:
    """(J,) one value per cluster: the value of a BETWEEN variable, or the cluster mean
    of a within-varying covariate used at the between level (Mplus, ex9.2c)."""
    col = data.values[:, [n.lower() for n in data.names].index(name.lower())]
    sums = np.bincount(cluster_of, weights=np.nan_to_num(col), minlength=n_clusters)
    counts = np.bincount(cluster_of, weights=~np.isnan(col), minlength=n_clusters)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def _fixed_zero_variances(spec: ModelSpec, block: int) -> set[int]:
    """Indices of variables of a block whose (residual) variance is fixed at 0."""
    name = spec.blocks[block].name
    variables = spec.blocks[block].variables
    return {variables.index(r.lhs) for r in spec.partable.rows
            if r.block == name and r.op == "~~" and r.lhs == r.rhs and r.free == 0
            and not r.random and r.value == 0.0}
