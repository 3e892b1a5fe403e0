"""Kernels against closed forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsem.kernels import conjugate, gaussian, linalg, normal


def test_inverse_wishart_moments():
    """E[Sigma] = S / (df - p - 1); 20000 draws, |z| < 4 per element."""
    scale = np.array([[2.0, 0.5], [0.5, 1.0]])
    df, p, n = 12.0, 2, 20000
    key_chi, key_norm = jax.random.split(jax.random.PRNGKey(0))
    chi2 = 2.0 * jax.random.gamma(key_chi, (df - np.arange(p)) / 2.0, (n, p))
    normals = jax.random.normal(key_norm, (n, p, p))
    draws = np.asarray(jax.vmap(lambda c, z: conjugate.inverse_wishart_from_variates(
        scale, c, z))(chi2, normals))
    mean = scale / (df - p - 1)
    se = draws.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 4 * se)


def test_gaussian_block_from_quadratic_density():
    precision = np.array([[2.0, 0.3], [0.3, 1.0]])
    linear = np.array([0.5, -1.0])

    def log_density(v):
        return linear @ v - 0.5 * v @ precision @ v + 7.0
    p, h = gaussian.quadratic_coefficients(log_density, np.array([3.0, -2.0]))
    np.testing.assert_allclose(p, precision, atol=1e-12)
    np.testing.assert_allclose(h, linear, atol=1e-12)
    # 40000 draws: SEs of the mean and covariance entries are about 0.0035; atol 0.02
    noise = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (40000, 2)))
    draws = np.asarray(jax.vmap(lambda e: gaussian.sample_from_precision(e, p, h))(noise))
    np.testing.assert_allclose(np.cov(draws.T), np.linalg.inv(precision), atol=0.02)
    np.testing.assert_allclose(draws.mean(0), np.linalg.solve(precision, linear), atol=0.02)


@pytest.mark.parametrize("d", [1, 2, 3, 7])
def test_small_gaussian_draws_match_lapack(d):
    """Written-out small systems (d <= 6) and LAPACK (d = 7) give P^-1 h + L^-T e."""
    rng = np.random.default_rng(d)
    a = rng.normal(size=(5, d, d))
    precision = a @ np.swapaxes(a, -1, -2) + np.eye(d)
    linear, noise = rng.normal(size=(5, d)), rng.normal(size=(5, d))
    draws = gaussian.sample_from_precision(noise, precision, linear)
    chol = np.linalg.cholesky(precision)
    reference = np.linalg.solve(precision, linear[..., None])[..., 0] + np.linalg.solve(
        np.swapaxes(chol, -1, -2), noise[..., None])[..., 0]
    np.testing.assert_allclose(draws, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_entry_by_entry_algebra_matches_the_matrix_forms(d):
    """kernels.linalg's entries form (Cholesky, Gaussian draw, inverse) and
    conjugate.inverse_wishart_entries against numpy and the matrix forms, batched."""
    rng = np.random.default_rng(10 + d)
    a = rng.normal(size=(5, d, d))
    spd = a @ np.swapaxes(a, -1, -2) + np.eye(d)
    entries = [[jnp.asarray(spd[:, i, j]) for j in range(i + 1)] for i in range(d)]
    chol, inverse_pivots = linalg.cholesky_entries(entries)
    reference = np.linalg.cholesky(spd)
    for i in range(d):
        np.testing.assert_allclose(inverse_pivots[i], 1.0 / reference[:, i, i], rtol=1e-12)
        for j in range(i + 1):
            np.testing.assert_allclose(chol[i][j], reference[:, i, j], rtol=1e-12, atol=1e-12)
    linear, noise = rng.normal(size=(5, d)), rng.normal(size=(5, d))
    draw = linalg.sample_entries(entries, list(jnp.asarray(linear.T)), list(jnp.asarray(noise.T)))
    np.testing.assert_allclose(np.stack(draw, -1),
                               gaussian.sample_from_precision(noise, spd, linear), rtol=1e-10)
    inverse = linalg.inverse_entries(entries)
    np.testing.assert_allclose(np.stack([np.stack(row, -1) for row in inverse], -2),
                               np.linalg.inv(spd), rtol=1e-10, atol=1e-12)
    chi2, normals = rng.chisquare(d + 5.0, size=d), rng.normal(size=(d, d))
    draw = conjugate.inverse_wishart_entries(
        [[jnp.asarray(spd[0, i, j]) for j in range(i + 1)] for i in range(d)],
        list(jnp.asarray(chi2)), [[jnp.asarray(normals[i, j]) for j in range(i)]
                                  for i in range(d)])
    np.testing.assert_allclose(np.array([[float(v) for v in row] for row in draw]),
                               conjugate.inverse_wishart_from_variates(spd[0], chi2, normals),
                               rtol=1e-10)


def test_set_entries_is_a_scatter():
    x = jnp.asarray(np.arange(12.0).reshape(2, 6))
    values = jnp.asarray([[-1.0, -2.0], [-3.0, -4.0]])
    np.testing.assert_array_equal(linalg.set_entries(x, [4, 1], values),
                                  x.at[:, np.array([4, 1])].set(values))


def test_inverse_identity_minus_acyclic_and_cyclic():
    rng = np.random.default_rng(3)
    chain = np.zeros((4, 4), dtype=bool)
    chain[1, 0] = chain[2, 1] = chain[3, 2] = chain[3, 0] = True   # paths 0 -> 1 -> 2 -> 3
    assert linalg.nilpotency_index(chain) == 4
    assert linalg.nilpotency_index(np.zeros((3, 3), dtype=bool)) == 1
    cycle = chain.copy()
    cycle[0, 3] = True
    assert linalg.nilpotency_index(cycle) is None
    for pattern in (chain, cycle, np.zeros((4, 4), dtype=bool)):
        b = np.where(pattern, rng.normal(scale=0.4, size=(4, 4)), 0.0)
        np.testing.assert_allclose(linalg.inverse_identity_minus(jnp.asarray(b), pattern),
                                   np.linalg.inv(np.eye(4) - b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [3, 7, 12])
def test_lapack_free_cholesky_and_solve_match_lapack(d):
    """The column and row loops (lapack=False, d > SMALL) against numpy's LAPACK, batched."""
    rng = np.random.default_rng(d)
    a = rng.normal(size=(4, d, d))
    spd = a @ np.swapaxes(a, -1, -2) + d * np.eye(d)
    chol = linalg.cholesky(jnp.asarray(spd), lapack=False)
    np.testing.assert_allclose(chol, np.linalg.cholesky(spd), rtol=1e-12, atol=1e-12)
    b = rng.normal(size=(4, d, 2))
    solved = linalg.solve_lower(chol, jnp.asarray(b), lapack=False)
    np.testing.assert_allclose(np.asarray(chol) @ np.asarray(solved), b, atol=1e-12)
    program = jax.jit(lambda m: linalg.cholesky(m, lapack=False)).lower(spd).compile()
    assert 'custom_call_target="lapack' not in program.as_text()


def test_outer_sum_is_the_cross_product():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    np.testing.assert_allclose(linalg.outer_sum(jnp.asarray(a), jnp.asarray(b)), a.T @ b,
                               rtol=1e-12, atol=1e-12)


def test_chi_square_from_normals_matches_the_distribution():
    """Kolmogorov-Smirnov against scipy's chi2 (20000 draws each, p > 0.001), for df
    below 2 (the boost), moderate and large; and with every first proposal rejected
    (z = -1000), so that all variates come from the SplitMix64 redraws."""
    from scipy import stats
    df = jnp.array([0.6, 1.5, 3.0, 30.0, 5000.0])
    normals = jax.random.normal(jax.random.PRNGKey(1), (20000, 5, 3))
    draw = jax.jit(conjugate.chi_square)
    for z in (normals, normals.at[..., 0].set(-1000.0)):
        x = np.asarray(draw(df, z, jax.random.PRNGKey(2)))
        for k, d in enumerate(np.asarray(df)):
            assert stats.kstest(x[:, k], stats.chi2(d).cdf).pvalue > 1e-3, d
    assert np.isnan(np.asarray(draw(jnp.array([0.0, -1.0]), normals[:1, :2],
                                    jax.random.PRNGKey(2)))).all()


@pytest.mark.parametrize("d", [3, 5, 9])
def test_psd_factor_of_singular_moment_matrices(d):
    """F F' = M for moment matrices of fewer rows than columns (rank 2, singular) and of
    full rank, written out (d <= 6) and by the column loop (d = 9)."""
    rng = np.random.default_rng(d)
    for rows in (2, 3 * d):
        u = rng.normal(size=(6, rows, d))
        moments = np.swapaxes(u, -1, -2) @ u
        factor = np.asarray(linalg.psd_factor(jnp.asarray(moments)))
        np.testing.assert_allclose(factor @ np.swapaxes(factor, -1, -2), moments,
                                   atol=1e-9 * np.abs(moments).max())
        assert np.isfinite(factor).all()


@pytest.mark.parametrize("d", [1, 2, 4, 6])
def test_jacobi_eigen_decomposition_of_indefinite_matrices(d):
    rng = np.random.default_rng(10 + d)
    a = rng.normal(size=(d, d))
    a = a + a.T
    values, vectors = jax.jit(linalg.symmetric_eigen)(jnp.asarray(a))
    np.testing.assert_allclose(np.asarray(vectors).T @ np.asarray(vectors), np.eye(d),
                               atol=1e-13)
    np.testing.assert_allclose(np.asarray(vectors) @ np.diag(values) @ np.asarray(vectors).T,
                               a, atol=1e-12)
    np.testing.assert_allclose(np.sort(values), np.linalg.eigvalsh(a), atol=1e-12)


def _slow_mask(seed, n):
    """Which of the first n variates of normal.standard_normal(seed, ...) leave the
    ziggurat's fast path (recomputed from their bits)."""
    bits = np.asarray(normal.stream(seed, jnp.arange(n, dtype=jnp.uint64), 0))
    layer = (bits & np.uint64(normal.LAYERS - 1)).astype(int)
    u = (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return u >= normal.FAST[layer]


def test_ziggurat_normals_match_the_distribution():
    """Kolmogorov-Smirnov against N(0, 1) on 2,000,000 draws (p > 0.001); the variates
    off the fast path (about 1.5%: wedges, tail, restarts) against their own exact
    distribution, |z| having CDF (2 Phi(t) - 1 - sum_i min(t, x_{i+1}) / (256 x_i))
    / P(slow) (the normal minus the layers' inner rectangles); the tail beyond r
    within 4 binomial SEs of 2 Phi(-r)."""
    from scipy import stats
    n = 2_000_000
    seed = normal.seed_of(jax.random.PRNGKey(5))
    z = np.asarray(jax.jit(lambda s: normal.standard_normal(s, (n // 1000, 1000)))(seed))
    z = z.reshape(-1)
    assert np.isfinite(z).all()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    slow = _slow_mask(seed, n)
    inner = np.append(normal.WIDTH[1:], 0.0)

    def slow_cdf(t):
        t = np.asarray(t)[:, None]
        fast = np.sum(np.minimum(t, inner) / normal.WIDTH, axis=1) / normal.LAYERS
        return (2.0 * stats.norm.cdf(t[:, 0]) - 1.0 - fast) / normal.SLOW_FRACTION
    assert abs(slow.mean() - normal.SLOW_FRACTION) < 4 * np.sqrt(normal.SLOW_FRACTION / n)
    assert stats.kstest(np.abs(z[slow]), slow_cdf).pvalue > 1e-3
    tail = 2 * stats.norm.cdf(-normal.TAIL_START)
    assert abs(np.mean(np.abs(z) > normal.TAIL_START) - tail) < 4 * np.sqrt(tail / n)


def test_ziggurat_batch_capacity():
    """The output does not depend on the slow batch's capacity while it holds every
    slow variate; beyond it the leftover variates are NaN, never wrong values."""
    seed = normal.seed_of(jax.random.PRNGKey(6))
    n = 20000
    draw = jax.jit(normal.standard_normal, static_argnums=(1, 2))
    slow = int(_slow_mask(seed, n).sum())
    full = np.asarray(draw(seed, (n,), None))
    np.testing.assert_array_equal(full, np.asarray(draw(seed, (n,), slow)))
    short = np.asarray(draw(seed, (n,), slow - 10))
    assert np.isnan(short).sum() == 10
    np.testing.assert_array_equal(short[np.isfinite(short)], full[np.isfinite(short)])
    assert normal.slow_capacity(n) > slow
    assert normal.standard_normal(seed, (3, 0)).shape == (3, 0)


def test_set_positions_and_running_sum_match_numpy():
    rng = np.random.default_rng(3)
    positions = jax.jit(normal.set_positions, static_argnums=1)
    for n in (1, 63, 64, 65, 1000):
        for size in (1, 50):
            for p in (0.0, 0.01, 0.3, 1.0):
                mask = rng.random(n) < p
                expected = np.append(np.flatnonzero(mask), [n] * size)[:size]
                np.testing.assert_array_equal(positions(jnp.asarray(mask), size), expected)
        values = rng.integers(0, 64, n)
        np.testing.assert_array_equal(jax.jit(normal._running_sum)(jnp.asarray(values)),
                                      np.cumsum(values))
