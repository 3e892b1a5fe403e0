"""Gaussian blocks whose conditional is derived from a quadratic log density.

A block whose complete-data log density ``f(v)`` is quadratic in ``v`` has a Gaussian
conditional: precision ``P = -hess f``, mean ``P^{-1} (grad f(0))`` (exact, because
``f(v) = c + g'v - v'Pv/2``). Deriving it by autodiff means no block needs hand-written
sufficient statistics to be correct; fast paths are checked against this form.
Without autodiff, the values of f at :func:`quadratic_points` give the same exactly
(:func:`quadratic_from_values`).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

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
    """Draws from N(P^{-1} h, P^{-1}): noise, linear (..., d) with standard normal noise;
    P (..., d, d). Small systems use the written-out routines of kernels.linalg."""
    chol = linalg.cholesky(precision)
    forward = linalg.solve_lower(chol, linear[..., None])
    return linalg.solve_upper_transposed(chol, forward + noise[..., None])[..., 0]


def quadratic_points(n_state: int) -> np.ndarray:
    """(n_points, nS) points at which a quadratic's values give its gradient and Hessian
    at 0 exactly: 0, +e_k, -e_k and e_k + e_l (k < l)."""
    if n_state == 0:
        return np.zeros((1, 0))
    eye = np.eye(n_state)
    pairs = [eye[k] + eye[l] for k in range(n_state) for l in range(k + 1, n_state)]
    return np.stack([np.zeros(n_state), *eye, *(-eye), *pairs]).reshape(-1, n_state)


def quadratic_from_values(values: jax.Array, n_state: int):
    """Gradient (J, nS) and minus Hessian (J, nS, nS) at 0 of per-cluster quadratics
    from their values (n_points, J) at :func:`quadratic_points` (exact for quadratics:
    finite differences of a quadratic have no truncation error)."""
    f0, plus, minus = values[0], values[1:1 + n_state], values[1 + n_state:1 + 2 * n_state]
    grad = 0.5 * (plus - minus).T
    diag = 2.0 * f0 - plus - minus                                          # Q_kk (nS, J)
    precision = jnp.zeros((values.shape[1], n_state, n_state), dtype=values.dtype)
    precision = precision.at[:, np.arange(n_state), np.arange(n_state)].set(diag.T)
    pair = 1 + 2 * n_state
    for k in range(n_state):
        for l in range(k + 1, n_state):
            # f(e_k + e_l) = f0 + g_k + g_l - (Q_kk + Q_ll)/2 - Q_kl
            q_kl = (f0 + grad[:, k] + grad[:, l] - 0.5 * (diag[k] + diag[l])) - values[pair]
            precision = precision.at[:, k, l].set(q_kl).at[:, l, k].set(q_kl)
            pair += 1
    return grad, precision
