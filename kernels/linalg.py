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


def _cholesky_by_columns(a: jax.Array) -> jax.Array:
    """cholesky without LAPACK: one loop step per column (left-looking), (..., d, d)."""
    d = a.shape[-1]
    index = jnp.arange(d)

    def column(j, chol):
        row_j = jnp.where(index < j, chol[..., j, :], 0.0)                      # L[j, :j]
        v = a[..., :, j] - jnp.einsum("...ik,...k->...i", chol, row_j)
        pivot = jnp.sqrt(v[..., j])
        new = jnp.where(index > j, v / pivot[..., None], jnp.where(index == j, pivot[..., None],
                                                                    0.0))
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
