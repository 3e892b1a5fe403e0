"""Small dense linear algebra written out element by element over batch axes.

On a CPU, XLA's batched Cholesky and triangular solves of tiny matrices (the shapes a
Gibbs sweep is made of: 1-6 variables, batched over clusters and chains) cost several
times more than the same arithmetic written as vector operations over the batch
(measured: 199 vs 39 us for 800 systems of size 2). Above SMALL the LAPACK routines are
used, unless the caller asks for none (``lapack=False``, for matrices met once per
sweep, not batched over clusters): then a loop over columns, whose compiled size does
not grow with d. LAPACK-free programs can run side by side on threads (jaxlib 0.10's
batched LAPACK kernels can deadlock its thread pool when called concurrently).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

SMALL = 6


def cholesky(a: jax.Array, lapack: bool = True) -> jax.Array:
    """Lower Cholesky factor of (..., d, d) positive definite matrices (NaN if not)."""
    d = a.shape[-1]
    if d > SMALL:
        return jnp.linalg.cholesky(a) if lapack else _cholesky_by_columns(a)
    if d == 0:
        return a
    chol = [[None] * d for _ in range(d)]
    for i in range(d):
        for j in range(i + 1):
            s = a[..., i, j] - sum(chol[i][k] * chol[j][k] for k in range(j))
            chol[i][j] = jnp.sqrt(s) if i == j else s / chol[j][j]
    zero = jnp.zeros_like(a[..., 0, 0])
    return jnp.stack([jnp.stack([chol[i][j] if j <= i else zero for j in range(d)], -1)
                      for i in range(d)], -2)


PSD_TOLERANCE = 1e-10


def psd_factor(a: jax.Array) -> jax.Array:
    """F with F F' = a for positive semidefinite (..., d, d) ``a``, possibly singular: the
    Cholesky recursion with every pivot below PSD_TOLERANCE times the largest diagonal
    entry taken as zero (its column is then zero too: in a semidefinite matrix a zero
    pivot has a zero column below it). No LAPACK."""
    d = a.shape[-1]
    if d == 0:
        return a
    diagonal = jnp.diagonal(a, axis1=-2, axis2=-1)
    tolerance = PSD_TOLERANCE * jnp.max(diagonal, axis=-1)
    if d > SMALL:
        return _cholesky_by_columns(a, tolerance)
    chol = [[None] * d for _ in range(d)]
    inverse_pivot = [None] * d
    for i in range(d):
        for j in range(i + 1):
            s = a[..., i, j] - sum(chol[i][k] * chol[j][k] for k in range(j))
            if i == j:
                kept = s > tolerance
                chol[i][i] = jnp.where(kept, jnp.sqrt(jnp.where(kept, s, 1.0)), 0.0)
                inverse_pivot[i] = jnp.where(kept, 1.0 / jnp.where(kept, chol[i][i], 1.0), 0.0)
            else:
                chol[i][j] = s * inverse_pivot[j]
    zero = jnp.zeros_like(a[..., 0, 0])
    return jnp.stack([jnp.stack([chol[i][j] if j <= i else zero for j in range(d)], -1)
                      for i in range(d)], -2)


def symmetric_eigen(a: jax.Array, sweeps: int = 10) -> tuple[jax.Array, jax.Array]:
    """(values (d,), vectors (d, d)) of a small symmetric (d, d) matrix, ``a`` = V diag V',
    by cyclic Jacobi rotations (``sweeps`` passes over the pairs, each an exact plane
    rotation, so V stays orthogonal to rounding); no LAPACK. Unsorted values."""
    d = a.shape[-1]
    pairs = [(p, q) for p in range(d) for q in range(p + 1, d)]

    def sweep(_, state):
        a, vectors = state
        for p, q in pairs:
            off = a[p, q]
            rotate = jnp.abs(off) > 1e-300
            theta = (a[q, q] - a[p, p]) / (2.0 * jnp.where(rotate, off, 1.0))
            t = jnp.where(rotate, jnp.where(theta >= 0, 1.0, -1.0)
                          / (jnp.abs(theta) + jnp.sqrt(theta * theta + 1.0)), 0.0)
            c = 1.0 / jnp.sqrt(t * t + 1.0)
            rotation = (jnp.eye(d, dtype=a.dtype).at[p, p].set(c).at[q, q].set(c)
                        .at[p, q].set(t * c).at[q, p].set(-t * c))
            a = rotation.T @ a @ rotation
            vectors = vectors @ rotation
        return a, vectors
    a, vectors = jax.lax.fori_loop(0, sweeps, sweep, (a, jnp.eye(d, dtype=a.dtype)))
    return jnp.diagonal(a), vectors


def normal_terms(entries, values) -> tuple[jax.Array, jax.Array]:
    """log det A and b' A^-1 b for many small positive definite systems given entry by
    entry: ``entries[i][j]`` (j <= i) and ``values[i]`` are arrays of one batch shape.
    The LDL' recursion (no square roots) on the entries as separate arrays, so that
    every operation is a contiguous vector operation over the batch (a (..., d, d)
    layout makes each entry a strided access). NaN where A is not positive definite."""
    d = len(values)
    unit = [[None] * d for _ in range(d)]
    pivots, solved = [], []
    for i in range(d):
        for j in range(i):
            s = entries[i][j] - sum(unit[i][k] * unit[j][k] * pivots[k] for k in range(j))
            unit[i][j] = s / pivots[j]
        pivots.append(entries[i][i] - sum(unit[i][k] ** 2 * pivots[k] for k in range(i)))
        solved.append(values[i] - sum(unit[i][k] * solved[k] for k in range(i)))
    positive = functools.reduce(jnp.logical_and, [q > 0 for q in pivots])
    log_det = jnp.where(positive, jnp.log(functools.reduce(jnp.multiply, pivots)), jnp.nan)
    return log_det, sum(y * y / q for y, q in zip(solved, pivots))


def lower_entries(a) -> list:
    """``a[i][j]`` for j <= i of a symmetric (..., d, d) array (or list of lists), the
    input of the entries-form functions below."""
    if isinstance(a, list):
        return [[a[i][j] for j in range(i + 1)] for i in range(len(a))]
    return [[a[..., i, j] for j in range(i + 1)] for i in range(a.shape[-1])]


def cholesky_entries(entries) -> tuple[list, list]:
    """Lower Cholesky factor of a small positive definite matrix given entry by entry
    (``entries[i][j]``, j <= i, arrays of one batch shape, as in :func:`normal_terms`):
    (factor entries ``chol[i][j]`` for j <= i, inverse pivots ``1 / chol[i][i]``). Every
    step is an elementwise operation over the batch, so that XLA fuses the whole
    factorisation with its producers and consumers; NaN where not positive definite."""
    d = len(entries)
    chol = [[None] * (i + 1) for i in range(d)]
    inverse_pivots = [None] * d
    for i in range(d):
        for j in range(i + 1):
            s = entries[i][j] - sum(chol[i][k] * chol[j][k] for k in range(j))
            if i == j:
                inverse_pivots[i] = jax.lax.rsqrt(s)
                chol[i][i] = s * inverse_pivots[i]
            else:
                chol[i][j] = s * inverse_pivots[j]
    return chol, inverse_pivots


def sample_entries(precision, linear, noise) -> list:
    """Draw from N(P^-1 h, P^-1) entry by entry: ``precision[i][j]`` (j <= i), ``linear``
    and ``noise`` (standard normal) lists of d arrays of one batch shape; the same
    arithmetic as kernels.gaussian.sample_from_precision (z = L^-T (L^-1 h + noise))."""
    chol, inverse_pivots = cholesky_entries(precision)
    d = len(linear)
    forward = []
    for i in range(d):
        forward.append((linear[i] - sum(chol[i][k] * forward[k] for k in range(i)))
                       * inverse_pivots[i])
    draw = [None] * d
    for i in reversed(range(d)):
        draw[i] = (forward[i] + noise[i] - sum(chol[k][i] * draw[k] for k in range(i + 1, d))
                   ) * inverse_pivots[i]
    return draw


def trace_terms(covariance, spread, moments) -> tuple[jax.Array, jax.Array]:
    """log det S and tr(S^-1 E M E') entry by entry (a Gaussian log likelihood from
    moments: residuals E u with sum u u' = M): ``covariance[i][j]`` (j <= i) of S
    (p x p), ``spread[i][a]`` of E (p x m), ``moments[a][b]`` (b <= a) of M (m x m),
    arrays (or numbers) of one batch shape. As in :func:`cholesky_entries`, every step
    is elementwise over the batch: XLA fuses it into a few kernels where the matrix form
    takes a small matrix product (slow at these sizes) and several kernels per step."""
    chol, inverse_pivots = cholesky_entries(covariance)
    p, m = len(spread), len(spread[0])
    solved = []                                                           # L^-1 E
    for i in range(p):
        solved.append([(spread[i][a] - sum(chol[i][k] * solved[k][a] for k in range(i)))
                       * inverse_pivots[i] for a in range(m)])
    quad = sum(x[a] * (x[a] * moments[a][a] + 2.0 * sum(x[b] * moments[a][b] for b in range(a)))
               for x in solved for a in range(m))
    log_det = -2.0 * sum(jnp.log(v) for v in inverse_pivots)
    return log_det, quad


def inverse_entries(entries) -> list:
    """Inverse of a small positive definite matrix given entry by entry (j <= i): the
    full symmetric inverse as ``inverse[i][j]`` for all i, j, as A^-1 = L^-T L^-1."""
    chol, inverse_pivots = cholesky_entries(entries)
    inverse_chol = triangular_inverse_entries(chol, inverse_pivots)
    d = len(entries)
    return [[sum(inverse_chol[k][i] * inverse_chol[k][j] for k in range(max(i, j), d))
             for j in range(d)] for i in range(d)]


def triangular_inverse_entries(chol, inverse_pivots) -> list:
    """Entries ``inverse[i][j]`` (j <= i) of the inverse of a lower triangular matrix
    given entry by entry with its inverse pivots."""
    d = len(chol)
    inverse = [[None] * (i + 1) for i in range(d)]
    for j in range(d):
        inverse[j][j] = inverse_pivots[j]
        for i in range(j + 1, d):
            inverse[i][j] = -sum(chol[i][k] * inverse[k][j] for k in range(j, i)
                                 ) * inverse_pivots[i]
    return inverse


def set_entries(x: jax.Array, indices, values: jax.Array) -> jax.Array:
    """``x.at[indices].set(values)`` along the last axis for static, distinct
    ``indices``, as a selection from [x, values]: XLA's CPU scatter is a loop, slow
    above all when batched (over chains and proposals); a static selection fuses."""
    indices = np.asarray(indices, dtype=np.int32).reshape(-1)
    size = x.shape[-1]
    select = np.arange(size, dtype=np.int32)
    select[indices] = size + np.arange(len(indices), dtype=np.int32)
    values = jnp.broadcast_to(jnp.asarray(values, x.dtype), x.shape[:-1] + (len(indices),))
    return jnp.concatenate([x, values], axis=-1)[..., select]


def upper_triangle(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows and columns of the n(n+1)/2 upper-triangle entries of an n x n symmetric
    matrix, and (n, n) the position of each entry among them (both triangles)."""
    rows, cols = np.triu_indices(n)
    position = np.zeros((n, n), dtype=int)
    position[rows, cols] = position[cols, rows] = np.arange(len(rows))
    return rows, cols, position


def outer_sum(a: jax.Array, b: jax.Array) -> jax.Array:
    """sum_n a_n b_n' over the leading axis: a (n, k), b (n, l) -> (k, l), for small k
    and l: a broadcast product and a reduction, which XLA's CPU emitters run several
    times faster than its dot for these shapes (batched over chains: 6.3 vs 2.3 us for
    4 chains x 200 x 3 x 3)."""
    return (a[:, :, None] * b[:, None, :]).sum(0)


def solve_lower(chol: jax.Array, b: jax.Array, lapack: bool = True) -> jax.Array:
    """x with chol x = b; chol (..., d, d) lower triangular, b (..., d, k)."""
    d = chol.shape[-1]
    if d > SMALL:
        if lapack:
            return solve_triangular(chol, b, lower=True)
        return _solve_lower_by_rows(chol, b)
    rows = []
    for i in range(d):
        acc = b[..., i, :] - sum(chol[..., i, k, None] * rows[k] for k in range(i))
        rows.append(acc / chol[..., i, i, None])
    return jnp.stack(rows, -2)


def _cholesky_by_columns(a: jax.Array, tolerance: jax.Array | None = None) -> jax.Array:
    """cholesky without LAPACK: one loop step per column (left-looking), (..., d, d);
    with ``tolerance`` (...,), pivots at or below it give zero columns (psd_factor)."""
    d = a.shape[-1]
    index = jnp.arange(d)

    def column(j, chol):
        row_j = jnp.where(index < j, chol[..., j, :], 0.0)                      # L[j, :j]
        v = a[..., :, j] - jnp.einsum("...ik,...k->...i", chol, row_j)
        if tolerance is None:
            pivot = jnp.sqrt(v[..., j])
            inverse_pivot = 1.0 / pivot
        else:
            kept = v[..., j] > tolerance
            pivot = jnp.where(kept, jnp.sqrt(jnp.where(kept, v[..., j], 1.0)), 0.0)
            inverse_pivot = jnp.where(kept, 1.0 / jnp.where(kept, pivot, 1.0), 0.0)
        new = jnp.where(index > j, v * inverse_pivot[..., None],
                        jnp.where(index == j, pivot[..., None], 0.0))
        return chol.at[..., :, j].set(new)
    return jax.lax.fori_loop(0, d, column, jnp.zeros_like(a))


def _solve_lower_by_rows(chol: jax.Array, b: jax.Array) -> jax.Array:
    """solve_lower without LAPACK: one loop step per row (forward substitution)."""
    d = chol.shape[-1]

    def row(i, x):
        acc = b[..., i, :] - jnp.einsum("...k,...kn->...n", chol[..., i, :], x)
        return x.at[..., i, :].set(acc / chol[..., i, i, None])
    return jax.lax.fori_loop(0, d, row, jnp.zeros_like(b))


def solve_upper_transposed(chol: jax.Array, b: jax.Array) -> jax.Array:
    """x with chol' x = b; chol (..., d, d) lower triangular, b (..., d, k)."""
    d = chol.shape[-1]
    if d > SMALL:
        return solve_triangular(jnp.swapaxes(chol, -1, -2), b, lower=False)
    rows = [None] * d
    for i in reversed(range(d)):
        acc = b[..., i, :] - sum(chol[..., k, i, None] * rows[k] for k in range(i + 1, d))
        rows[i] = acc / chol[..., i, i, None]
    return jnp.stack(rows, -2)


def nilpotency_index(pattern: np.ndarray) -> int | None:
    """Smallest L with B^L = 0 for every B with non-zeros only where the boolean
    ``pattern`` (d, d) is True (the longest directed path plus one), or None if the
    pattern has a cycle."""
    d = pattern.shape[0]
    power = np.eye(d, dtype=bool)
    for order in range(d + 1):
        if not power.any():
            return order
        power = (power.astype(int) @ pattern.astype(int)) > 0
    return None


def inverse_identity_minus(b: jax.Array, pattern: np.ndarray) -> jax.Array:
    """(I - B)^-1 for (d, d) B whose possible non-zeros are ``pattern``.

    Acyclic paths make B nilpotent, so the inverse is the finite sum I + B + ... +
    B^(L-1) (Horner form): a few small products instead of an LU factorisation, and
    nothing at all when B is structurally zero. Cyclic patterns use LU.
    """
    d = b.shape[-1]
    order = nilpotency_index(pattern)
    if order is None:
        return jnp.linalg.solve(jnp.eye(d, dtype=b.dtype) - b, jnp.eye(d, dtype=b.dtype))
    inverse = jnp.eye(d, dtype=b.dtype)
    for _ in range(max(order - 1, 0)):
        inverse = jnp.eye(d, dtype=b.dtype) + b @ inverse
    return inverse
