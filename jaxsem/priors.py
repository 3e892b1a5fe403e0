"""Priors, in one place: the :class:`Prior` type, its rules, readers and log densities.

Families and their arguments, in Mplus notation (``str(prior)`` prints it):

=============== ======================= ================================================
family          Mplus                   meaning
=============== ======================= ================================================
``normal``      ``N(mean, variance)``   normal; note: variance, not sd
``inv_gamma``   ``IG(shape, scale)``    density ∝ x^(-shape-1) exp(-scale/x), x > 0
``inv_wishart`` ``IW(s, df)``           one element ``s`` of the scale matrix S and the
                                        degrees of freedom of its covariance block:
                                        density ∝ |Σ|^(-(df+p+1)/2) exp(-tr(S Σ⁻¹)/2)
``uniform``     ``U(lower, upper)``     uniform on [lower, upper]
``dirichlet``   ``D(a1, ..., ak)``      Dirichlet over k >= 2 proportions
``gamma``       ``G(shape, rate)``      density ∝ x^(shape-1) exp(-rate x): mean
                                        shape/rate (the usual Mplus reading; the
                                        Mplus guide's text was not at hand to confirm)
``lognormal``   ``LN(mean, variance)``  log(x) ~ N(mean, variance)
=============== ======================= ================================================

Rules (checked when a :class:`Prior` is made; errors are :class:`PriorError` that name
the label, the place and the fix): every argument finite; normal and log-normal
variance > 0; uniform lower < upper; Dirichlet all > 0; gamma shape, rate > 0.
Inverse gamma: **scale >= 0 and shape >= -1**. Proper only for shape > 0 and scale > 0;
the improper limits Mplus uses are allowed: IG(-1, 0) (flat on (0, ∞), the Mplus default
for variances) and IG(0, 0) (∝ 1/x). Shape < -1 would favour large variances more than
a flat prior; scale < 0 diverges at zero. Inverse Wishart: the degrees of freedom need
the block size p, so they are checked by :func:`validate_inverse_wishart`
(df >= -p-1; Mplus's default IW(0, -p-1) is flat over covariance matrices).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy

from jaxsem.errors import ModelSyntaxError, PriorError, source_location
from jaxsem.syntax.expressions import (expand_label_range, evaluate, format_number,
                                       parse_expression, split_statements)
from jaxsem.syntax.statements import SourceLoc

#: family -> (Mplus abbreviation, argument names) in Mplus notation.
FAMILIES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "normal": ("N", "mean, variance"),
    "inv_gamma": ("IG", "shape, scale"),
    "inv_wishart": ("IW", "scale element, df"),
    "uniform": ("U", "lower, upper"),
    "dirichlet": ("D", "a1, a2, ..."),
    "gamma": ("G", "shape, rate"),
    "lognormal": ("LN", "mean of log, variance of log"),
})
_BY_ABBREVIATION = {abbreviation.lower(): family for family, (abbreviation, _) in FAMILIES.items()}
_KNOWN_FAMILIES = "known priors: " + ", ".join(
    f"{abbreviation}({names})" for abbreviation, names in FAMILIES.values())


@dataclass(frozen=True)
class Prior:
    """A prior distribution: ``family`` (a key of :data:`FAMILIES`) and its arguments.

    Arguments are stored as floats, in Mplus's parameterisation (see module docstring).
    Making an invalid Prior raises :class:`PriorError`.
    """
    family: str
    args: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "args", tuple(float(a) for a in self.args))
        problem = _problem(self.family, self.args)
        if problem is not None:
            raise _prior_error(*problem)

    def __str__(self) -> str:
        abbreviation = FAMILIES[self.family][0]
        return f"{abbreviation}({', '.join(format_number(a) for a in self.args)})"


def _problem(family: str, args: tuple[float, ...]) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) for ``family(args)``, or None if it is a valid prior."""
    if family not in FAMILIES:
        return f"unknown prior family '{family}'", _KNOWN_FAMILIES
    abbreviation, names = FAMILIES[family]
    usage = f"{abbreviation}({names})"
    if family == "dirichlet":
        if len(args) < 2:
            return (f"{abbreviation}() needs at least 2 numbers, got {len(args)}",
                    f"write {usage}, e.g. D(1, 1)")
    elif len(args) != 2:
        return f"{abbreviation}() takes 2 numbers, got {len(args)}", f"write {usage}"
    for a in args:
        if not math.isfinite(a):
            return (f"prior arguments must be finite numbers, got {format_number(a)}",
                    f"write {usage}")
    first, second = args[0], args[-1]
    if family in ("normal", "lognormal") and second <= 0:
        return (f"{abbreviation}() variance must be > 0, got {format_number(second)}",
                f"{usage} takes a variance, e.g. {abbreviation}(0, 1)")
    if family == "uniform" and not first < second:
        return (f"U() lower bound must be below the upper bound, got U({format_number(first)}, "
                f"{format_number(second)})", "write U(lower, upper) with lower < upper")
    if family == "inv_gamma" and (second < 0 or first < -1):
        what = ("scale must be >= 0" if second < 0 else "shape must be >= -1")
        return (f"IG() {what}, got IG({format_number(first)}, {format_number(second)})",
                "IG(a, b) with a, b > 0 is proper; IG(-1, 0) (flat, the Mplus default for "
                "variances) and IG(0, 0) are the improper limits allowed")
    if family == "gamma" and (first <= 0 or second <= 0):
        return (f"G() shape and rate must be > 0, got G({format_number(first)}, "
                f"{format_number(second)})", "write G(shape, rate), e.g. G(1, 1)")
    if family == "dirichlet" and min(args) <= 0:
        return ("D() arguments must all be > 0, got "
                f"D({', '.join(format_number(a) for a in args)})", "e.g. D(1, 1)")
    return None


def _prior_error(message: str, fix: str | None, *, label: str | None = None,
                 text: str | None = None, pos: int | None = None,
                 loc: SourceLoc | None = None) -> PriorError:
    """A PriorError that names the label, the place (line, column, caret) and the fix."""
    if label is not None:
        message = f"prior for '{label}': {message}"
    if text is not None and pos is not None:
        loc = SourceLoc(*source_location(text, pos))
    if loc is None:
        return PriorError(f"{message}\n{fix}" if fix else message)
    # ModelSyntaxError holds the one formatter of located messages; reuse its text.
    return PriorError(str(ModelSyntaxError(message, text, loc.line, loc.col, fix)))


# ----------------------------------------------------------------------------- readers

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_CALL = re.compile(r"\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.DOTALL)


def parse_prior(text: str, *, label: str | None = None, full_text: str | None = None,
                offset: int = 0) -> Prior:
    """Read an Mplus prior such as ``N(0, 1)``, ``IG(1, 1)``, ``IW(1, 3)``, ``U(0, 1)``,
    ``D(1, 1)``, ``G(1, 1)``, ``LN(0, 1)`` (case-insensitive).

    ``label``: the parameter it is for, named in errors. ``full_text``/``offset``: where
    ``text`` sits in the model text, for line and column. Raises :class:`PriorError`.
    """
    full = text if full_text is None else full_text

    def fail(message: str, fix: str | None, pos: int) -> PriorError:
        return _prior_error(message, fix, label=label, text=full, pos=offset + pos)

    start = len(text) - len(text.lstrip())
    call = _CALL.match(text)
    if call is None:
        raise fail(f"cannot read the prior '{text.strip()}'",
                   "write it like N(0, 1); " + _KNOWN_FAMILIES, start)
    family = _BY_ABBREVIATION.get(call.group(1).lower())
    if family is None:
        raise fail(f"unknown prior '{call.group(1)}'", _KNOWN_FAMILIES, call.start(1))
    args, pos = [], call.start(2)
    for piece in call.group(2).split(","):
        arg_pos = pos + len(piece) - len(piece.lstrip())
        if not _NUMBER.fullmatch(piece.strip()):
            raise fail(f"'{piece.strip()}' is not a number", f"write {FAMILIES[family][0]}("
                       f"{FAMILIES[family][1]}) with numbers", arg_pos)
        args.append(float(piece))
        if not math.isfinite(args[-1]):
            raise fail(f"prior arguments must be finite numbers, got {piece.strip()}",
                       "use a large finite number, e.g. 1e10", arg_pos)
        pos += len(piece) + 1
    problem = _problem(family, tuple(args))
    if problem is not None:
        raise fail(*problem, call.start(1))
    return Prior(family, tuple(args))


_LABEL_ITEM = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)(?:\s*-\s*([A-Za-z_][A-Za-z0-9_.]*))?")


def parse_model_priors(text: str, *, full_text: str | None = None,
                       offset: int = 0) -> dict[str, tuple[Prior, SourceLoc]]:
    """Parse the body of an Mplus ``MODEL PRIORS:`` section.

    Statements ``labels ~ prior;`` where labels are one or more labels or ranges
    (``a1-a3`` expands to ``a1 a2 a3`` by numeric suffix), ``!`` comments to end of
    line, case-insensitive. Returns lower-case label -> (Prior, where the label is
    written). ``DIFF(...)`` and ``COVARIANCE(...)`` priors are rejected with a "not
    supported yet" :class:`ModelSyntaxError` naming the line. A label given two priors
    is a :class:`PriorError`.
    """
    full = text if full_text is None else full_text

    def fail(message: str, pos: int, hint: str | None = None) -> ModelSyntaxError:
        line, col = source_location(full, pos)
        return ModelSyntaxError(message, full, line, col, hint)

    priors: dict[str, tuple[Prior, SourceLoc]] = {}
    for st in split_statements(text, full_text=full, offset=offset, section="MODEL PRIORS"):
        special = re.match(r"(diff|covariance)\s*\(", st.text, re.IGNORECASE)
        if special:
            raise fail(f"{special.group(1).upper()}() priors are not supported yet", st.offset,
                       "give each label its own prior: label ~ N(mean, variance);")
        tilde = st.text.find("~")
        if tilde < 0:
            raise fail("expected 'label ~ prior'", st.offset, "e.g. a1-a3 ~ N(0, 1);")
        lhs = st.text[:tilde]
        if not lhs.strip():
            raise fail("'~' needs a label on its left", st.offset, "e.g. a1 ~ N(0, 1);")
        labels: list[tuple[str, int]] = []
        pos = 0
        while lhs[pos:].strip():
            item = _LABEL_ITEM.match(lhs, pos)
            if item is None:
                bad = pos + len(lhs[pos:]) - len(lhs[pos:].lstrip())
                raise fail("expected a parameter label", st.offset + bad,
                           "labels are names such as a1, or ranges such as a1-a3")
            first, last = item.group(1).lower(), item.group(2)
            names = [first] if last is None else expand_label_range(first, last.lower())
            if names is None:
                raise fail(f"'{item.group(1)}-{last}' is not a label range",
                           st.offset + item.start(1),
                           "a range reads like a1-a3: same prefix, ascending numbers")
            labels.extend((name, st.offset + item.start(1)) for name in names)
            pos = item.end()
        prior = parse_prior(st.text[tilde + 1:], label=lhs.strip().lower(), full_text=full,
                            offset=st.offset + tilde + 1)
        for name, pos in labels:
            if name in priors:
                first_line = priors[name][1].line
                raise _prior_error(f"a second prior (the first is on line {first_line})",
                                   "give each label one prior", label=name, text=full, pos=pos)
            priors[name] = (prior, SourceLoc(*source_location(full, pos)))
    return priors


_LAVAAN_PRIOR = re.compile(
    r"\s*([A-Za-z_]+)\s*\((.*)\)\s*(?:\[\s*([A-Za-z]*)\s*\])?\s*$", re.DOTALL)
_LAVAAN_FAMILIES = ("normal", "inv_gamma", "uniform", "gamma", "lognormal")


def from_lavaan_prior(text: str) -> Prior:
    """Read a blavaan-style prior string (Stan conventions), as in ``prior("normal(0,10)")``.

    ``normal(mean, sd)`` -> N(mean, sd²); ``inv_gamma(shape, scale)`` -> IG;
    ``uniform(lower, upper)`` -> U; ``gamma(shape, rate)`` -> G;
    ``lognormal(mu, sigma)`` -> LN(mu, sigma²). Arguments may be arithmetic
    (``normal(0, 1000^.5)``). The prior applies to the parameter itself (a variance
    for variance parameters); blavaan's suffix ``[var]`` means the same and is
    accepted; ``gamma(a, b)[prec]`` (gamma on the precision) becomes the identical
    IG(a, b) on the variance; ``[sd]`` is rejected. Raises :class:`PriorError`
    without a position (the caller knows where the string is).
    """
    match = _LAVAAN_PRIOR.match(text)
    supported = "supported: " + ", ".join(f"{f}(...)" for f in _LAVAAN_FAMILIES)
    if match is None:
        raise _prior_error(f"cannot read the prior '{text}'", "write it like normal(0, 10); "
                           + supported)
    name, body, target = match.group(1).lower(), match.group(2), (match.group(3) or "var").lower()
    if name not in _LAVAAN_FAMILIES:
        raise _prior_error(f"unknown prior '{match.group(1)}'", supported)
    args = []
    for piece in _split_arguments(body):
        try:
            expr = parse_expression(piece)
        except ModelSyntaxError:
            raise _prior_error(f"cannot read the argument '{piece.strip()}' of '{text}'",
                               "arguments are numbers or arithmetic on numbers") from None
        if expr.names():
            raise _prior_error(f"the argument '{piece.strip()}' of '{text}' is not a number",
                               "arguments are numbers or arithmetic on numbers")
        with numpy.errstate(all="ignore"):  # 1/0 gives inf, reported below as not finite
            args.append(float(evaluate(expr, {}, numpy)))
    if name in ("normal", "lognormal"):
        if len(args) != 2 or not args[1] > 0:
            raise _prior_error(f"'{text}': {name}(mean, sd) needs 2 numbers with sd > 0",
                               f"e.g. {name}(0, 10)")
        args[1] = args[1] ** 2
    family = name
    if target == "prec":
        if name != "gamma":
            raise _prior_error(f"'{text}': only gamma(shape, rate)[prec] can be placed on a "
                               "precision", "write the prior for the variance instead")
        family = "inv_gamma"
    elif target == "sd":
        raise _prior_error(f"'{text}': priors on the standard deviation ([sd]) are not "
                           "supported; jaxsem puts priors on variances",
                           "use inv_gamma(shape, scale) on the variance, or gamma(a, b)[prec]")
    elif target != "var":
        raise _prior_error(f"'{text}': unknown suffix [{match.group(3)}]",
                           "use [var] or [prec], or no suffix")
    problem = _problem(family, tuple(args))
    if problem is not None:
        raise _prior_error(f"'{text}': {problem[0]}", problem[1])
    return Prior(family, tuple(args))


def _split_arguments(body: str) -> list[str]:
    """Split ``body`` at commas outside parentheses."""
    pieces, depth, start = [], 0, 0
    for i, char in enumerate(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            pieces.append(body[start:i])
            start = i + 1
    pieces.append(body[start:])
    return pieces


# ----------------------------------------------------------------------------- defaults

#: Mplus's default priors by parameter kind (Asparouhov & Muthén, 2010, "Bayesian
#: analysis using Mplus: technical implementation"). Covariance blocks depend on the
#: block size: see :func:`default_prior`.
DEFAULT_PRIORS: Mapping[str, Prior] = MappingProxyType({
    "coefficient": Prior("normal", (0.0, 1e10)),   # loadings, regression slopes
    "intercept": Prior("normal", (0.0, 1e10)),     # means and intercepts
    "threshold": Prior("normal", (0.0, 1e10)),
    "variance": Prior("inv_gamma", (-1.0, 0.0)),   # flat on (0, ∞)
})


def default_prior(kind: str, block_size: int = 1) -> Prior:
    """Mplus's default prior for a parameter of ``kind``.

    Kinds: "coefficient", "intercept", "threshold" -> N(0, 1e10); "variance" ->
    IG(-1, 0); "covariance_block" -> IW(0, -p-1) with p = ``block_size`` (every element
    of a p x p covariance block; flat over covariance matrices). Source: Asparouhov &
    Muthén (2010), "Bayesian analysis using Mplus: technical implementation".
    """
    if kind == "covariance_block":
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        return Prior("inv_wishart", (0.0, -block_size - 1.0))
    if kind not in DEFAULT_PRIORS:
        raise ValueError(f"unknown parameter kind {kind!r}; kinds: "
                         f"{', '.join([*DEFAULT_PRIORS, 'covariance_block'])}")
    return DEFAULT_PRIORS[kind]


def default_prior_of_kind(kind: str) -> Prior | None:
    """Mplus's default prior of a ParTable row kind (``ParRow.kind``); None for
    covariances, whose default IW(0, -p-1) depends on their block."""
    if kind in ("variance", "residual_variance"):
        return DEFAULT_PRIORS["variance"]
    if kind.endswith("covariance"):
        return None
    if kind in ("intercept", "mean", "threshold"):
        return DEFAULT_PRIORS["threshold" if kind == "threshold" else "intercept"]
    return DEFAULT_PRIORS["coefficient"]


def validate_inverse_wishart(df: float, p: int, label: str, *, scale_matrix=None,
                             loc: SourceLoc | None = None, text: str | None = None) -> None:
    """Check an IW prior on a p x p covariance block once p is known.

    ``df`` must be >= -p-1 (Mplus's default IW(0, -p-1) is the flat limit; a proper
    prior needs df > p-1 and a positive-definite scale). ``scale_matrix``: optional
    array of shape (p, p) assembled from the elements' ``s``; it must be symmetric and
    positive semi-definite. ``loc``/``text`` place the error. Raises :class:`PriorError`.
    """
    if not math.isfinite(df) or df < -p - 1:
        raise _prior_error(
            f"IW degrees of freedom must be >= -p-1 = {-p - 1} for a {p}x{p} block, got "
            f"{format_number(df)}", f"use df >= {-p - 1} (IW(0, {-p - 1}) is the Mplus "
            f"default, flat); df > {p - 1} with a positive-definite scale is proper",
            label=label, text=text, loc=loc)
    if scale_matrix is None:
        return
    scale = numpy.asarray(scale_matrix, dtype=float)
    if scale.shape != (p, p):
        raise _prior_error(f"IW scale matrix has shape {scale.shape}, expected ({p}, {p})",
                           "give one IW(s, df) per element of the block", label=label,
                           text=text, loc=loc)
    tolerance = 1e-10 * max(1.0, float(numpy.abs(scale).max()))
    if (not numpy.all(numpy.isfinite(scale)) or not numpy.allclose(scale, scale.T, atol=tolerance)
            or numpy.linalg.eigvalsh(scale).min() < -tolerance):
        raise _prior_error("IW scale matrix must be symmetric and positive semi-definite",
                           "give the same s to (i, j) and (j, i); make the diagonal "
                           "elements large enough", label=label, text=text, loc=loc)


# ----------------------------------------------------------------------------- densities

def log_prob(prior: Prior, value):
    """Log prior density at ``value`` (JAX-traceable; jit/grad/vmap work).

    ``value``: any shape, elementwise, for all families but Dirichlet, whose ``value``
    has shape (..., k) on the simplex with k = len(prior.args). Exact for proper priors;
    improper IG limits return the kernel -(shape+1)·log x - scale/x without constant.
    ``inv_wishart`` here means a 1x1 block (a variance): IW(s, df) = IG(df/2, s/2); use
    :func:`inverse_wishart_log_prob` for larger blocks. Outside the support: -inf.
    """
    import jax.numpy as jnp  # noqa: PLC0415 (keep prior parsing free of JAX start-up)
    from jax.scipy.special import gammaln  # noqa: PLC0415

    x = jnp.asarray(value, dtype=jnp.result_type(float))
    family, args = prior.family, prior.args
    if family == "normal":
        mean, variance = args
        return -0.5 * (x - mean) ** 2 / variance - 0.5 * math.log(2 * math.pi * variance)
    if family == "uniform":
        lower, upper = args
        return jnp.where((x >= lower) & (x <= upper), -math.log(upper - lower), -jnp.inf)
    if family == "dirichlet":
        if x.shape[-1:] != (len(args),):
            raise _prior_error(f"{prior} is over {len(args)} proportions, got a value of "
                               f"shape {x.shape}", "pass an array of shape (..., k)")
        alpha = jnp.asarray(args)
        inside = jnp.all(x > 0, axis=-1)
        safe = jnp.where(x > 0, x, 1.0)
        density = (gammaln(alpha.sum()) - gammaln(alpha).sum()
                   + jnp.sum((alpha - 1) * jnp.log(safe), axis=-1))
        return jnp.where(inside, density, -jnp.inf)
    positive = x > 0
    safe = jnp.where(positive, x, 1.0)
    if family == "gamma":
        shape, rate = args
        density = (shape * math.log(rate) - math.lgamma(shape)
                   + (shape - 1) * jnp.log(safe) - rate * safe)
    elif family == "lognormal":
        mean, variance = args
        density = (-jnp.log(safe) - 0.5 * (jnp.log(safe) - mean) ** 2 / variance
                   - 0.5 * math.log(2 * math.pi * variance))
    else:  # inv_gamma, or inv_wishart on a 1x1 block
        shape, scale = args
        if family == "inv_wishart":
            if args[0] < 0 or args[1] < -2:
                raise _prior_error(f"{prior} on a variance needs s >= 0 and df >= -2",
                                   "a 1x1 block's IW(s, df) equals IG(df/2, s/2)")
            shape, scale = args[1] / 2, args[0] / 2
        density = -(shape + 1) * jnp.log(safe) - scale / safe
        if shape > 0 and scale > 0:
            density = density + shape * math.log(scale) - math.lgamma(shape)
    return jnp.where(positive, density, -jnp.inf)


def inverse_wishart_log_prob(sigma, scale_matrix, df: float):
    """Log density of IW(scale_matrix, df) at the covariance matrix ``sigma``.

    ``sigma``: (p, p), JAX-traceable; ``scale_matrix``: (p, p) constant; ``df``: number.
    Density ∝ |Σ|^(-(df+p+1)/2) exp(-tr(S Σ⁻¹)/2); normalised when proper (df > p-1 and
    S positive definite), otherwise the kernel only. -inf where ``sigma`` is not positive
    definite.
    """
    import jax.numpy as jnp  # noqa: PLC0415
    from jax.scipy.linalg import cho_solve  # noqa: PLC0415
    from jax.scipy.special import multigammaln  # noqa: PLC0415

    scale = numpy.asarray(scale_matrix, dtype=float)
    p = scale.shape[0]
    validate_inverse_wishart(df, p, "covariance block", scale_matrix=scale)
    sigma = jnp.asarray(sigma, dtype=jnp.result_type(float))
    chol = jnp.linalg.cholesky(sigma)
    positive_definite = jnp.all(jnp.isfinite(chol))
    chol = jnp.where(positive_definite, chol, jnp.eye(p))
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
    trace = jnp.trace(cho_solve((chol, True), jnp.asarray(scale)))
    density = -0.5 * (df + p + 1) * log_det - 0.5 * trace
    if df > p - 1 and numpy.linalg.eigvalsh(scale).min() > 0:
        density = density + (0.5 * df * numpy.linalg.slogdet(scale)[1]
                             - 0.5 * df * p * math.log(2.0) - multigammaln(0.5 * df, p))
    return jnp.where(positive_definite, density, -jnp.inf)
