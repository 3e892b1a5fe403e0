"""ModelSpec: the ParTable as static model matrices, and the model as a data generator.

Each block (one level's model) uses the RAM form over its *modelled* variables
``z`` (observed parts first, then latent variables) and conditions on its covariates
``c``::

    z = alpha + beta @ z + gamma @ c + zeta,      zeta ~ N(0, psi)

so loadings (``beta[y, f]``), regressions among modelled variables (``beta[y, x]``),
regressions on covariates (``gamma[y, c]``), (residual) covariances (``psi``), means and
intercepts (``alpha``) and thresholds (``tau[y, j]``) all have one home. An observed
variable is the sum of its parts over the levels where it is modelled; a categorical
variable is that sum cut at its thresholds.

Random coefficients: a ParTable row with ``random="s"`` marks a cell of ``beta`` /
``gamma`` (random slope or loading) or a diagonal cell of ``psi`` (``logv | y``: the
variance is ``exp(logv)``) whose value, per cluster, is the latent variable ``s`` of the
block above.

``pack``/``unpack`` move between the free-parameter vector ``x`` (shape ``(n_free,)``)
and the matrices with one gather/scatter over static index arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxsem.errors import DataError, ModelError
from jaxsem.partable import ParTable

MATRICES = ("alpha", "beta", "gamma", "psi", "tau")


@dataclass(frozen=True)
class BlockSpec:
    """Static structure of one block.

    ``variables``: modelled variables (observed parts first, then latent), length nv.
    ``covariates``: conditioned-on observed variables, length nc.
    ``n_thresholds``: width of ``tau`` (max categories - 1 over the block's observed).
    Matrix shapes: alpha (nv,), beta (nv, nv), gamma (nv, nc), psi (nv, nv),
    tau (n_observed, n_thresholds).
    """
    name: str
    level: int
    variables: tuple[str, ...]
    n_observed: int
    covariates: tuple[str, ...]
    n_thresholds: int

    @property
    def observed(self) -> tuple[str, ...]:
        return self.variables[:self.n_observed]

    @property
    def latent(self) -> tuple[str, ...]:
        return self.variables[self.n_observed:]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        nv, nc = len(self.variables), len(self.covariates)
        return {"alpha": (nv,), "beta": (nv, nv), "gamma": (nv, nc), "psi": (nv, nv),
                "tau": (self.n_observed, self.n_thresholds)}


@dataclass(frozen=True)
class RandomCell:
    """A matrix cell replaced per cluster by a latent variable of the block above.

    ``matrix`` is "beta", "gamma" or "psi" (psi cells hold ``exp(value)``);
    ``source_block``/``source_index``: where the random coefficient lives.
    """
    block: int
    matrix: str
    row: int
    col: int
    name: str
    source_block: int
    source_index: int


class ModelSpec:
    """Static, hashable structure of a model; numbers come in through ``x``."""

    def __init__(self, partable: ParTable, n_free: int | None = None):
        """``n_free``: length of ``x`` when ``partable`` holds only some of a model's
        rows (their free indices are the whole model's; the others are not used)."""
        self.partable = partable
        self.blocks = tuple(_block_spec(partable, b) for b in partable.blocks)
        self.n_free = partable.n_free if n_free is None else n_free
        self._build_layout()

    # ----------------------------------------------------------------- layout
    def _build_layout(self) -> None:
        offsets, size = {}, 0
        for bi, block in enumerate(self.blocks):
            for name, shape in block.shapes().items():
                offsets[(bi, name)] = (size, shape)
                size += int(np.prod(shape))
        base = np.zeros(size)
        for bi, block in enumerate(self.blocks):
            start, shape = offsets[(bi, "tau")]
            base[start:start + int(np.prod(shape))] = np.inf  # unused thresholds
        positions, indices, random_cells = [], [], []
        block_index = {b.name: i for i, b in enumerate(self.blocks)}
        for row in self.partable.rows:
            bi = block_index[row.block]
            cells = _cells(self.blocks[bi], row)
            flat = [offsets[(bi, m)][0] + np.ravel_multi_index(rc, offsets[(bi, m)][1])
                    for m, rc in cells]
            if row.random:
                src_block, src_index = self._random_source(row.random)
                m, (r, c) = cells[0]
                random_cells.append(RandomCell(bi, m, r, c, row.random, src_block, src_index))
                base[flat] = 0.0
            elif row.free:
                positions += flat
                indices += [row.free - 1] * len(flat)
            else:
                base[flat] = row.value
        self._offsets = offsets
        self._size = size
        self._base = base
        self._free_pos = np.asarray(positions, dtype=np.int32)
        self._free_idx = np.asarray(indices, dtype=np.int32)
        first = {}
        for pos, idx in zip(positions, indices):
            first.setdefault(idx, pos)
        # an index no row uses packs as 0 (the spare slot after the matrices)
        self._gather_pos = np.asarray([first.get(i, size) for i in range(self.n_free)],
                                      dtype=np.int32)
        self.random_cells = tuple(random_cells)

    @cached_property
    def _unpack_select(self) -> np.ndarray:
        """(size,) position of every matrix entry in [fixed values, x]."""
        select = np.arange(self._base.shape[0], dtype=np.int32)
        select[self._free_pos] = self._base.shape[0] + self._free_idx
        return select

    def _random_source(self, name: str) -> tuple[int, int]:
        for bi, block in enumerate(self.blocks):
            if name in block.variables:
                return bi, block.variables.index(name)
        raise ModelError(f"random coefficient '{name}' has no block above to live in")

    @cached_property
    def structure_key(self) -> tuple:
        """Hashable identity of the structure: equal keys compile to the same program."""
        return (tuple((b.name, b.variables, b.n_observed, b.covariates, b.n_thresholds)
                      for b in self.blocks),
                self._free_pos.tobytes(), self._free_idx.tobytes(), self._base.tobytes(),
                self.random_cells, self.n_free)

    def __hash__(self) -> int:
        return hash(self.structure_key)

    def __eq__(self, other) -> bool:
        return isinstance(other, ModelSpec) and self.structure_key == other.structure_key

    def pattern(self, block: int, name: str) -> np.ndarray:
        """Boolean mask (matrix shape) of the cells of one unpacked matrix that can be
        non-zero: fixed non-zero values and free parameters (random cells unpack as 0)."""
        start, shape = self._offsets[(block, name)]
        mask = self._base != 0
        mask[self._free_pos] = True
        return mask[start:start + int(np.prod(shape))].reshape(shape)

    def free_cells(self, index: int) -> list[tuple[int, str, tuple[int, ...]]]:
        """(block, matrix, cell) of every matrix entry that free parameter ``index``
        (0-based) sets: several with equality labels, two for a covariance."""
        out = []
        for pos in self._free_pos[self._free_idx == index]:
            for (bi, name), (start, shape) in self._offsets.items():
                if start <= pos < start + int(np.prod(shape)):
                    cell = np.unravel_index(int(pos) - start, shape)
                    out.append((bi, name, tuple(int(c) for c in cell)))
        return out

    # ----------------------------------------------------------------- pack / unpack
    def unpack(self, x: jax.Array) -> tuple[dict[str, jax.Array], ...]:
        """Free-parameter vector (n_free,) -> per block {alpha, beta, gamma, psi, tau}."""
        x = jnp.asarray(x)
        # a static selection from [fixed values, x] rather than a scatter: XLA's CPU
        # scatter is a loop, slow when batched over chains and proposals (one selection:
        # linalg.set_entries on x[free_idx] adds a gather, measured 5% of a SEM sweep)
        flat = jnp.concatenate([jnp.asarray(self._base, dtype=x.dtype), x])[self._unpack_select]
        out = []
        for bi, block in enumerate(self.blocks):
            mats = {}
            for name in MATRICES:
                start, shape = self._offsets[(bi, name)]
                mats[name] = flat[start:start + int(np.prod(shape))].reshape(shape)
            out.append(mats)
        return tuple(out)

    def pack(self, matrices: Sequence[Mapping[str, jax.Array]]) -> jax.Array:
        """Per-block matrices -> free-parameter vector (n_free,)."""
        flat = jnp.concatenate([jnp.ravel(matrices[bi][name])
                                for bi in range(len(self.blocks)) for name in MATRICES]
                               + [jnp.zeros(1)])
        return flat[self._gather_pos]

    def start_values(self) -> np.ndarray:
        """A simple admissible start: user starts, else 1 for loadings and variances,
        0 for the rest, and spread thresholds. (Estimators refine this.)"""
        x = np.zeros(self.n_free)
        for row in self.partable.free_rows():
            if not np.isnan(row.start):
                x[row.free - 1] = row.start
            elif row.kind in ("loading", "variance", "residual_variance"):
                x[row.free - 1] = 1.0
            elif row.kind == "threshold":
                x[row.free - 1] = float(row.rhs[1:]) - 1.0
        return x

    # ----------------------------------------------------------------- moments
    def implied_moments(self, x: jax.Array, covariate_mean: Mapping[str, float] | None = None,
                        covariate_cov: Mapping[tuple[str, str], float] | None = None,
                        ) -> tuple[tuple[jax.Array, jax.Array], ...]:
        """Per block, the mean (nv,) and covariance (nv, nv) of the modelled variables.

        Covariates have mean 0 and identity covariance unless given (per block, by
        name). Models with random coefficients have cluster-varying moments: refused.
        """
        if self.random_cells:
            raise ModelError("implied moments are not constant across clusters in a model "
                             "with random coefficients")
        out = []
        for block, mats in zip(self.blocks, self.unpack(x)):
            nv, nc = len(block.variables), len(block.covariates)
            mu_c = jnp.array([(covariate_mean or {}).get(c, 0.0) for c in block.covariates])
            cov_c = jnp.eye(nc)
            for (a, b), v in (covariate_cov or {}).items():
                if a in block.covariates and b in block.covariates:
                    i, j = block.covariates.index(a), block.covariates.index(b)
                    cov_c = cov_c.at[i, j].set(v).at[j, i].set(v)
            inv = jnp.linalg.inv(jnp.eye(nv) - mats["beta"])  # small (nv x nv), once
            g = mats["gamma"]
            mean = inv @ (mats["alpha"] + (g @ mu_c if nc else 0.0))
            cov = inv @ (mats["psi"] + (g @ cov_c @ g.T if nc else 0.0)) @ inv.T
            out.append((mean, cov))
        return tuple(out)

    # ----------------------------------------------------------------- generator
    def simulate(self, x, key: jax.Array, cluster_sizes, *,
                 covariates: Mapping[str, np.ndarray] | None = None,
                 cluster_names: Sequence[str] | None = None,
                 return_latent: bool = False):
        """Draw a data set from the model at parameter values ``x``.

        ``cluster_sizes``: an int (single level: number of observations); a sequence of
        level-2 cluster sizes (two levels); or a sequence over level-3 clusters of
        sequences of their level-2 cluster sizes (three levels).
        ``covariates``: optional values per covariate name and block level, keyed
        ``name`` (within level, length n_obs) or ``(name, level)`` (length = number of
        units at that level); others are drawn from N(0, 1) per unit of each level where
        the variable is a covariate, and the observed covariate is the sum of its parts.
        Returns a DataFrame with the observed variables and cluster columns (named by
        ``cluster_names``, highest level first; default "cluster"/"level3"), and, with
        ``return_latent``, also per block the (n_units, nv) array of modelled values.
        """
        x = jnp.asarray(x, dtype=jnp.float64)
        parents = _unit_parents(cluster_sizes, self.partable.n_levels)
        counts = [len(p) for p in parents]  # units per level, level 1 first
        mats = self.unpack(x)
        values: dict[int, jax.Array] = {}
        cov_values: dict[tuple[str, int], jax.Array] = {}
        keys = jax.random.split(key, 2 * len(self.blocks))
        for bi in sorted(range(len(self.blocks)), key=lambda i: -self.blocks[i].level):
            block = self.blocks[bi]
            n_units = counts[block.level - 1]
            c = []
            for j, name in enumerate(block.covariates):
                given = _given_covariate(covariates, name, block.level, n_units)
                col = given if given is not None else jax.random.normal(
                    jax.random.fold_in(keys[2 * bi], j), (n_units,))
                for upper in range(block.level + 1, len(counts) + 1):  # whole variable
                    if (name, upper) in cov_values and given is None:
                        col = col + cov_values[(name, upper)][
                            _ancestor_index(parents, block.level, upper)]
                cov_values[(name, block.level)] = col
                c.append(col)
            c = jnp.stack(c, axis=1) if c else jnp.zeros((n_units, 0))
            values[bi] = self._draw_block(bi, mats[bi], c, values, parents, keys[2 * bi + 1])
        return self._assemble(mats, values, cov_values, parents, counts, cluster_names,
                              return_latent)

    def _draw_block(self, bi: int, m: dict, c: jax.Array, values: dict, parents, key):
        """(n_units, nv) draws of one block's modelled variables given covariates c."""
        block = self.blocks[bi]
        nv, n_units = len(block.variables), c.shape[0]
        psi_factor = _psd_factor(m["psi"])
        eps = jax.random.normal(key, (n_units, nv)) @ psi_factor.T
        cells = [rc for rc in self.random_cells if rc.block == bi]
        if not cells:
            rhs = m["alpha"] + c @ m["gamma"].T + eps
            return jnp.linalg.solve(jnp.eye(nv) - m["beta"], rhs.T).T
        ancestor = _ancestor_index(parents, block.level, self.blocks[cells[0].source_block].level)
        rand = jnp.stack([values[rc.source_block][ancestor, rc.source_index] for rc in cells],
                         axis=1)  # (n_units, n_cells)

        def one_unit(r, c_u, e_u):
            beta, gamma, scale = m["beta"], m["gamma"], jnp.ones(nv)
            for k, rc in enumerate(cells):
                if rc.matrix == "beta":
                    beta = beta.at[rc.row, rc.col].set(r[k])
                elif rc.matrix == "gamma":
                    gamma = gamma.at[rc.row, rc.col].set(r[k])
                else:
                    scale = scale.at[rc.row].set(jnp.exp(0.5 * r[k]))
            return jnp.linalg.solve(jnp.eye(nv) - beta, m["alpha"] + gamma @ c_u + scale * e_u)

        for rc in cells:
            if rc.matrix == "psi":
                off = jnp.abs(m["psi"][rc.row]).sum() - jnp.abs(m["psi"][rc.row, rc.row])
                if float(off) != 0.0:
                    raise ModelError(f"'{block.variables[rc.row]}' has a random residual "
                                     "variance and residual covariances: not supported")
                eps = eps.at[:, rc.row].set(jax.random.normal(jax.random.fold_in(key, 7),
                                                              (n_units,)))
        return jax.vmap(one_unit)(rand, c, eps)

    def _assemble(self, mats, values, cov_values, parents, counts, cluster_names, return_latent):
        n_obs = counts[0]
        columns: dict[str, np.ndarray] = {}
        n_levels = self.partable.n_levels
        observed = [v for b in self.blocks for v in b.observed + b.covariates]
        for v in dict.fromkeys(observed):
            total = jnp.zeros(n_obs)
            for bi, block in enumerate(self.blocks):
                idx = _ancestor_index(parents, 1, block.level)
                if v in block.observed:
                    total = total + values[bi][idx, block.variables.index(v)]
            lowest_covariate = min((lv for (name, lv) in cov_values if name == v), default=None)
            if lowest_covariate is not None:  # covariate values already hold upper parts
                total = total + cov_values[(v, lowest_covariate)][
                    _ancestor_index(parents, 1, lowest_covariate)]
            if v in self.partable.categorical:
                total = self._categorize(v, total, mats)
            columns[v] = np.asarray(total)
        names = list(cluster_names) if cluster_names else (
            ["cluster"] if n_levels == 2 else ["level3", "cluster"] if n_levels == 3 else [])
        if len(names) != n_levels - 1:
            raise DataError(f"cluster_names needs {n_levels - 1} names, highest level first")
        for lv, name in zip(range(n_levels, 1, -1), names):
            columns[name] = np.asarray(_ancestor_index(parents, 1, lv))
        frame = pd.DataFrame(columns)
        if return_latent:
            return frame, {self.blocks[bi].name: np.asarray(v) for bi, v in values.items()}
        return frame

    def _categorize(self, v: str, latent_response: jax.Array, mats) -> jax.Array:
        """Category codes 0..K-1: the number of thresholds the latent response exceeds."""
        top = max(b.level for b in self.blocks if v in b.observed)
        bi = next(i for i, b in enumerate(self.blocks) if b.level == top and v in b.observed)
        tau = mats[bi]["tau"][self.blocks[bi].observed.index(v)]
        return (latent_response[:, None] > tau[None, :]).sum(axis=1).astype(jnp.float64)


def _block_spec(table: ParTable, block) -> BlockSpec:
    n_thr = 0
    for v in block.observed:
        n_thr = max(n_thr, sum(1 for r in table.rows if r.block == block.name
                               and r.op == "|" and r.lhs == v))
    return BlockSpec(block.name, block.level, tuple(block.observed) + tuple(block.latent),
                     len(block.observed), tuple(block.covariates), n_thr)


def _cells(block: BlockSpec, row) -> list[tuple[str, tuple[int, int] | tuple[int]]]:
    """Matrix cells a ParTable row sets (both triangles for a covariance)."""
    idx = {v: i for i, v in enumerate(block.variables)}
    if row.op == "=~":
        return [("beta", (idx[row.rhs], idx[row.lhs]))]
    if row.op == "~":
        if row.rhs in block.covariates:
            return [("gamma", (idx[row.lhs], block.covariates.index(row.rhs)))]
        return [("beta", (idx[row.lhs], idx[row.rhs]))]
    if row.op == "~~":
        i, j = idx[row.lhs], idx[row.rhs]
        return [("psi", (i, j))] if i == j else [("psi", (i, j)), ("psi", (j, i))]
    if row.op == "~1":
        return [("alpha", (idx[row.lhs],))]
    if row.op == "|":
        return [("tau", (idx[row.lhs], int(row.rhs[1:]) - 1))]
    raise ModelError(f"operator {row.op!r} has no matrix")


def _psd_factor(psi: jax.Array) -> jax.Array:
    """A factor L with L L' = psi for a positive semi-definite psi (zero variances ok)."""
    w, v = jnp.linalg.eigh(psi)
    return v * jnp.sqrt(jnp.clip(w, 0.0))


def _unit_parents(cluster_sizes, n_levels: int) -> list[np.ndarray]:
    """Per level (1 first), the index of each unit's parent one level up (top: zeros)."""
    if n_levels == 1:
        if not isinstance(cluster_sizes, (int, np.integer)):
            raise DataError("a single-level model takes the number of observations")
        return [np.zeros(int(cluster_sizes), dtype=np.int32)]
    if n_levels == 2:
        sizes = np.asarray(cluster_sizes, dtype=np.int64)
        if sizes.ndim != 1 or (sizes < 1).any():
            raise DataError("cluster_sizes must be a list of positive cluster sizes")
        return [np.repeat(np.arange(len(sizes)), sizes).astype(np.int32),
                np.zeros(len(sizes), dtype=np.int32)]
    if n_levels == 3:
        l2_sizes = [np.asarray(s, dtype=np.int64) for s in cluster_sizes]
        if any(s.ndim != 1 or len(s) == 0 or (s < 1).any() for s in l2_sizes):
            raise DataError("three levels: give, per level-3 cluster, a list of level-2 "
                            "cluster sizes")
        flat = np.concatenate(l2_sizes)
        return [np.repeat(np.arange(len(flat)), flat).astype(np.int32),
                np.repeat(np.arange(len(l2_sizes)), [len(s) for s in l2_sizes]).astype(np.int32),
                np.zeros(len(l2_sizes), dtype=np.int32)]
    raise ModelError("at most three nested levels are supported")


def _ancestor_index(parents: list[np.ndarray], from_level: int, to_level: int) -> np.ndarray:
    """Index of each unit of ``from_level`` in the units of ``to_level`` (>= from)."""
    idx = np.arange(len(parents[from_level - 1]))
    for lv in range(from_level, to_level):
        idx = parents[lv - 1][idx]
    return idx


def _given_covariate(covariates, name, level, n_units):
    if not covariates:
        return None
    value = covariates.get((name, level), covariates.get(name) if level == 1 else None)
    if value is None:
        return None
    value = jnp.asarray(value, dtype=jnp.float64)
    if value.shape != (n_units,):
        raise DataError(f"covariate '{name}' at level {level} needs {n_units} values, "
                        f"got shape {tuple(value.shape)}")
    return value
