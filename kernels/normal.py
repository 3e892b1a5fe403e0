"""Standard normal variates for the sweeps: SplitMix64 bits and the ziggurat method.

``jax.random.normal`` (threefry bits, then the inverse error function) costs about
17 ns per float64 variate on a CPU core, and a sweep needs hundreds per chain (the
between state's alone: clusters x random effects): measured, a third of a CFA sweep
and 40% of a random-slope sweep. Here the bits are SplitMix64's output function on
counters (Steele, Lea & Flood 2014: the generator of Java's SplittableRandom; 0.8 ns
per 64 bits, vectorised), and the normals come from Marsaglia & Tsang's (2000)
ziggurat with 256 layers: about 99% of the variates cost one table lookup, one compare
and one multiply (about 1 ns); the rest (the wedges and the tail) are gathered into a
small batch and finished exactly there. The output is exact (no approximation beyond
float64 rounding; a batch overflow, probability below 1e-20, gives NaN rather than a
wrong value): see :func:`standard_normal`.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri

GOLDEN_GAMMA = 0x9E3779B97F4A7C15
LAYERS = 256


def splitmix64(x: jax.Array) -> jax.Array:
    """SplitMix64's output function on uint64 ``x``."""
    x = (x ^ (x >> 30)) * jnp.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> 27)) * jnp.uint64(0x94D049BB133111EB)
    return x ^ (x >> 31)


def open_uniform(bits: jax.Array) -> jax.Array:
    """Uniform in (0, 1) from the top 53 of 64 random bits."""
    return ((bits >> 11).astype(jnp.float64) + 0.5) * 2.0 ** -53


def seed_of(key: jax.Array) -> jax.Array:
    """A uint64 seed from a JAX PRNG key (raw uint32 key data or a typed key)."""
    data = jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) \
        else key
    data = data.astype(jnp.uint64).reshape(-1)
    return splitmix64((data[0] << 32) | data[-1])


def stream(seed: jax.Array, counters: jax.Array, which: int) -> jax.Array:
    """64 random bits for each uint64 counter, from stream ``which`` of ``seed``:
    SplitMix64 with a state that starts at a hash of (seed, stream)."""
    start = splitmix64(seed + jnp.uint64(which * 0x632BE59BD9B4E019 + 1))
    return splitmix64(start + counters * jnp.uint64(GOLDEN_GAMMA))


def _half_density(x):
    return np.exp(-0.5 * x * x)


def _layer_edges(r: float) -> tuple[np.ndarray, float, float]:
    """Right edges x_0 > x_1 = r > ... > x_{n-1} of the ziggurat's layers for a base
    layer edge r (x_0 = v / f(r), the base layer's width if it were a rectangle), every
    layer of area v; and f(x_{n-1}) + v / x_{n-1}, the top of the last layer, which is
    f(0) = 1 exactly at the right r."""
    v = r * _half_density(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    edges = [v / _half_density(r), r]
    top = 0.0
    while len(edges) < LAYERS:
        top = _half_density(edges[-1]) + v / edges[-1]
        if top >= 1.0:
            return np.asarray(edges), v, math.inf
        edges.append(math.sqrt(-2.0 * math.log(top)))
    return np.asarray(edges), v, _half_density(edges[-1]) + v / edges[-1]


def _ziggurat_tables():
    """(widths, fast thresholds, lower and upper density of each layer, r): the r
    (about 3.6542) at which the 256 layers of equal area exactly reach f(0) = 1, by
    bisection."""
    low, high = 3.0, 4.5
    for _ in range(200):
        middle = 0.5 * (low + high)
        if _layer_edges(middle)[2] > 1.0:
            low = middle            # the layers reach the top too early: r too small
        else:
            high = middle
    r = high
    edges, _, _ = _layer_edges(r)
    inner = np.append(edges[1:], 0.0)          # x_{i+1}: the layer's inner rectangle
    return (edges, inner / edges, _half_density(edges), _half_density(inner), r)


WIDTH, FAST, LOWER, UPPER, TAIL_START = _ziggurat_tables()
# P(x > r) for the tail layer's exact inversion
TAIL_MASS = 0.5 * math.erfc(TAIL_START / math.sqrt(2))
SLOW_FRACTION = 1.0 - float(np.mean(FAST))


def slow_capacity(n: int) -> int:
    """Size of the batch in which the slow variates are finished: their expected
    number plus ten standard deviations and 16 (exceeded with probability below
    1e-20 for any n)."""
    mean = n * SLOW_FRACTION
    return int(min(n, math.ceil(mean + 10.0 * math.sqrt(mean) + 16)))


def _index_type(n: int):
    return jnp.int32 if n < 2 ** 31 - 64 else jnp.int64


def _running_sum(values: jax.Array) -> jax.Array:
    """Inclusive cumulative sum of a 1-D integer array (exact below 2^53) as two small
    products with triangular matrices over a square-ish blocking: XLA's cumulative
    sum takes 0.1 s to compile and 3 ns an entry on a CPU."""
    w = values.shape[0]
    width = max(1, math.isqrt(w - 1) + 1)
    rows = -(-w // width)
    blocks = jnp.pad(values, (0, rows * width - w)).astype(jnp.float64).reshape(rows, width)
    within = blocks @ np.triu(np.ones((width, width)))
    before = np.tril(np.ones((rows, rows)), -1) @ within[:, -1]
    return (within + before[:, None]).reshape(-1)[:w].astype(values.dtype)


def set_positions(mask: jax.Array, size: int) -> jax.Array:
    """The positions of the first ``size`` True entries of the 1-D ``mask`` (n,), in
    order, padded with n (jnp.nonzero with a size, about 10x cheaper on a CPU for sparse
    masks: XLA's cumulative sum over n costs 3 ns an entry). The mask is packed into
    64-bit words; the k-th set bit is found by a binary search over the words' running
    bit counts, then by halving within its word."""
    n = mask.shape[0]
    dtype = _index_type(n)
    words_n = -(-n // 64)
    packed = jnp.pad(mask, (0, words_n * 64 - n)).reshape(words_n, 64)
    words = jnp.sum(jnp.where(packed, jnp.uint64(1) << jnp.arange(64, dtype=jnp.uint64),
                              jnp.uint64(0)), axis=1)
    counts = jax.lax.population_count(words).astype(dtype)
    ends = _running_sum(counts)
    rank = jnp.arange(size, dtype=dtype)
    word_at = jnp.searchsorted(ends, rank, side="right", method="scan")
    word_at = jnp.minimum(word_at, words_n - 1)
    within = rank - (ends[word_at] - counts[word_at])
    word, bit = words[word_at], jnp.zeros(size, dtype)
    for width in (32, 16, 8, 4, 2, 1):
        low = word & jnp.uint64((1 << width) - 1)
        below = jax.lax.population_count(low).astype(dtype)
        higher = within >= below
        within = jnp.where(higher, within - below, within)
        bit = jnp.where(higher, bit + width, bit)
        word = jnp.where(higher, word >> jnp.uint64(width), low)
    return jnp.where(rank < ends[-1], word_at * 64 + bit, n)


def standard_normal(seed: jax.Array, shape: tuple[int, ...], capacity: int | None = None):
    """Standard normal variates (float64) of ``shape`` from a uint64 ``seed``.

    Ziggurat (256 layers of equal area v under f(x) = exp(-x^2 / 2), x >= 0): variate
    i takes layer L, a sign and u in [0, 1) from its 64 bits, x = u w_L. When x is left
    of the layer's inner rectangle edge it is accepted (about 99%). Otherwise, in the
    base layer, x is drawn exactly from the tail beyond r by inverting Phi; in any other
    layer x is accepted when a uniform height over the layer's wedge lies under f(x),
    and when not, the attempt starts afresh, which is a fresh standard normal: taken as
    Phi^-1 of an independent uniform. The slow variates are gathered and finished as
    a batch of ``capacity`` (default :func:`slow_capacity`); every random number is a
    function of the variate's position alone, so the output does not depend on
    ``capacity`` as long as it holds them all. Slow variates beyond it come out NaN.
    """
    n = math.prod(shape)
    if n == 0:
        return jnp.zeros(shape)
    capacity = slow_capacity(n) if capacity is None else capacity
    counters = jnp.arange(n, dtype=jnp.uint64)
    bits = stream(seed, counters, 0)
    layer = (bits & jnp.uint64(LAYERS - 1)).astype(jnp.int32)
    negative = ((bits >> 8) & jnp.uint64(1)) == 1
    u = (bits >> 11).astype(jnp.float64) * 2.0 ** -53
    magnitude = u * jnp.asarray(WIDTH)[layer]
    slow = u >= jnp.asarray(FAST)[layer]

    def slow_values(positions, lay, x):
        """Finished magnitudes of slow variates at ``positions`` (layers, candidates)."""
        extra = positions.astype(jnp.uint64)
        height_u = open_uniform(stream(seed, extra, 1))
        height = jnp.asarray(LOWER)[lay] + height_u * (jnp.asarray(UPPER)[lay]
                                                       - jnp.asarray(LOWER)[lay])
        accepted = (lay > 0) & (height < jnp.exp(-0.5 * x * x))
        # the tail beyond r by inversion, or a restart: |Phi^-1(u / 2)|, u fresh
        inverted = -ndtri(jnp.where(lay == 0, height_u * TAIL_MASS,
                                    0.5 * open_uniform(stream(seed, extra, 2))))
        return jnp.where(accepted, x, inverted)

    # the slow variates, gathered; more than ``capacity`` of them (probability below
    # 1e-20) leaves the rest NaN, which stops the sampler rather than bias it
    positions = set_positions(slow, capacity)
    at = jnp.minimum(positions, n - 1)
    magnitude = magnitude.at[positions].set(slow_values(positions, layer[at], magnitude[at]),
                                            mode="drop")
    overflow = slow & (jnp.arange(n, dtype=positions.dtype) > positions[-1])
    signed = jnp.where(negative, -magnitude, magnitude)
    return jnp.where(overflow, jnp.nan, signed).reshape(shape)
