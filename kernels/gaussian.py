"""Gaussian blocks whose conditional is derived from a quadratic log density.

A block whose complete-data log density ``f(v)`` is quadratic in ``v`` has a Gaussian
conditional: precision ``P = -hess f``, mean ``P^{-1} (grad f(0))`` (exact, because
``f(v) = c + g'v - v'Pv/2``). Deriving it by autodiff means no block needs hand-written
sufficient statistics to be correct; fast paths are checked against this form.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular

from jaxsem.kernels import linalg


def quadratic_coefficients(log_density: Callable[[jax.Array], jax.Array],
                           at: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(P, h)`` with ``log_density(v) = c + h'v - v'Pv/2`` for a quadratic density.

    ``at`` (d,) is any point (the derivatives are exact everywhere); P (d, d), h (d,).
    """
    grad = jax.grad(log_density)(at)
    precision = -jax.hessian(log_density)(at)
    precision = 0.5 * (precision + precision.T)
    return precision, grad + precision @ at


def sample_from_precision(noise: jax.Array, precision: jax.Array,
                          linear: jax.Array) -> jax.Array:
    """A draw from N(P^{-1} h, P^{-1}) given standard normal ``noise`` (d,)."""
    chol = jnp.linalg.cholesky(precision)
    mean = cho_solve((chol, True), linear)
    return mean + solve_triangular(chol.T, noise, lower=False)



def sample_from_precision_batched(noise: jax.Array, precision: jax.Array,
                                  linear: jax.Array) -> jax.Array:
    """Draws from N(P^{-1} h, P^{-1}) for a batch: noise, linear (..., d); P (..., d, d),
    with the small-matrix routines of kernels.linalg."""
    chol = linalg.cholesky(precision)
    forward = linalg.solve_lower(chol, linear[..., None])
    return linalg.solve_upper_transposed(chol, forward + noise[..., None])[..., 0]
