"""ML/MLR results as data (a DataFrame keyed by ParTable rows), fit statistics, problems.

Standard errors: ML from the observed information ``A = -hessian``; MLR from the
sandwich ``A^-1 B A^-1`` with ``B`` the sum over clusters (observations in a
single-level model) of the outer products of the score vectors, as Mplus's
ESTIMATOR = MLR. The MLR chi-square is the likelihood-ratio statistic divided by
``(p1 c1 - p0 c0) / (p1 - p0)`` with ``c`` the log-likelihood scaling correction
factors ``tr(A^-1 B) / p`` of the model (0) and the unrestricted model (1) (Mplus's
scaled difference, Satorra & Bentler 2001 / Yuan & Bentler 2000).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.stats import norm

from jaxsem.syntax.expressions import evaluate, to_text


@dataclass(frozen=True)
class Saturated:
    """The unrestricted (H1) model's log likelihood, free parameters, (MLR) scaling and
    whether its optimizer converged (no chi-square is reported when it did not)."""
    loglik: float
    n_free: int
    scaling: float | None
    converged: bool


@dataclass
class MLFit:
    """One ML/MLR fit: estimates ``x`` (n_free,), log likelihood, derivatives at x
    (gradient (n_free,), observed information = minus the Hessian (n_free, n_free),
    per-cluster scores (J, n_free) for MLR), convergence and the unrestricted model
    (None with random slopes)."""
    analysis: object
    layout: object
    options: object
    x: np.ndarray
    loglik: float
    gradient: np.ndarray
    information: np.ndarray
    scores: np.ndarray | None
    converged: bool
    iterations: int
    newton_steps: int
    n_obs: int
    other_solutions: list
    saturated: Saturated | None
    compile_seconds: float
    total_seconds: float
    _summary: pd.DataFrame | None = field(default=None, repr=False)
    _standardized: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def partable(self):
        return self.analysis.partable

    @property
    def names(self) -> list[str]:
        return self.partable.parameter_names()

    @property
    def estimator(self) -> str:
        return self.options.estimator.upper()

    @property
    def covariance(self) -> np.ndarray:
        """(n_free, n_free) sampling covariance of the estimates (NaN if singular)."""
        info = self.information
        if not np.isfinite(info).all() or _singular_directions(info):
            return np.full_like(info, np.nan)
        inverse = np.linalg.inv(info)
        if self.scores is None:
            return inverse
        return inverse @ (self.scores.T @ self.scores) @ inverse

    @property
    def standard_errors(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    # ------------------------------------------------------------- fit statistics
    @property
    def scaling_factor(self) -> float | None:
        """H0 log-likelihood scaling correction factor (MLR), else None."""
        if (self.scores is None or not np.isfinite(self.information).all()
                or _singular_directions(self.information)):
            return None
        return float(np.trace(np.linalg.solve(self.information, self.scores.T @ self.scores))
                     / len(self.x))

    def fit_measures(self) -> dict:
        """Number of free parameters, log likelihoods, AIC, BIC, sample-size adjusted BIC,
        and the chi-square test against the unrestricted model where there is one."""
        k, n = len(self.x), self.n_obs
        out = {"n_free_parameters": k, "n_observations": n, "loglikelihood": self.loglik,
               "aic": -2 * self.loglik + 2 * k, "bic": -2 * self.loglik + k * math.log(n),
               "sabic": -2 * self.loglik + k * math.log((n + 2) / 24),
               "scaling_factor_h0": self.scaling_factor}
        h1 = self.saturated
        if h1 is None or not h1.converged:
            return out
        chisq = max(2.0 * (h1.loglik - self.loglik), 0.0)
        df = h1.n_free - k
        out.update(loglikelihood_h1=h1.loglik, scaling_factor_h1=h1.scaling,
                   chisq=chisq, df=df, p_value=_chi2_sf(chisq, df))
        if self.scores is not None and h1.scaling is not None and df > 0:
            scaling = (h1.n_free * h1.scaling - k * self.scaling_factor) / df
            out.update(chisq_scaling=scaling, chisq_scaled=chisq / scaling,
                       p_value_scaled=_chi2_sf(chisq / scaling, df))
        return out

    def problems(self) -> list[str]:
        """What is wrong with the solution, in words (empty when nothing is)."""
        out = []
        grad = float(np.max(np.abs(self.gradient)))
        if not self.converged:
            out.append(f"The optimizer did not converge: largest |gradient| {grad:.2g} after "
                       f"{self.iterations} iterations. Try other starting values or "
                       "random_starts.")
        if self.saturated is not None and not self.saturated.converged:
            out.append("The unrestricted model (H1) did not converge: no chi-square test.")
        names = self.names
        for r in self.partable.free_rows():
            value = self.x[r.free - 1]
            if r.kind in ("variance", "residual_variance") and value < 0:
                out.append(f"Heywood case: the {r.kind.replace('_', ' ')} of {r.lhs} "
                           f"({r.block}) is negative ({value:.4g}); the model may be "
                           "misspecified or the parameter not identified by these data.")
        for block, mats in zip(self.layout.spec.blocks, self.layout.spec.unpack(self.x)):
            psi = np.asarray(mats["psi"])
            if psi.size and np.linalg.eigvalsh(psi).min() < -1e-10:
                out.append(f"The {block.name}-level (residual) covariance matrix of "
                           f"{', '.join(block.variables)} is not positive definite.")
        if not np.isfinite(self.information).all():
            bad = sorted({names[i] for i in np.argwhere(~np.isfinite(self.information))[:, 0]})
            out.append("The information matrix could not be computed (non-finite "
                       "derivatives: the solution is at the edge of the region where the "
                       "model's covariance matrices are positive definite); parameters "
                       f"involved: {', '.join(bad[:6])}. Standard errors are not computed.")
            return out
        directions = _singular_directions(self.information)
        for vector in directions:
            involved = [names[i] for i in np.argsort(-np.abs(vector))
                        if abs(vector[i]) > 0.1][:5]
            out.append("The information matrix is singular (the model may not be "
                       f"identified); parameters involved: {', '.join(involved)}. Standard "
                       "errors are not computed.")
        if not directions and np.any(np.linalg.eigvalsh(self.information) <= 0):
            out.append("The information matrix is not positive definite: this is not a "
                       "maximum. Try other starting values.")
        return out

    # ------------------------------------------------------------- tables
    def defined(self) -> dict[str, tuple[float, float]]:
        """Estimate and delta-method SE of each := / MODEL CONSTRAINT NEW parameter."""
        definitions = self.partable.definitions
        if not definitions:
            return {}

        def values(x):
            labels = {}
            for r in self.partable.rows:
                if r.label and r.free:
                    labels[r.label] = x[r.free - 1]
                elif r.label and not r.random:
                    labels[r.label] = jnp.asarray(r.value)
            out = {}
            for d in definitions:
                out[d.name] = jnp.asarray(evaluate(d.expr, {**labels, **out}, xp=jnp))
            return jnp.stack([out[d.name] for d in definitions])

        x = jnp.asarray(self.x)
        estimate = np.asarray(values(x))
        jac = np.asarray(jax.jacfwd(values)(x))
        se = np.sqrt(np.clip(np.einsum("dk,kl,dl->d", jac, self.covariance, jac), 0.0, None))
        return {d.name: (float(e), float(s)) for d, e, s in zip(definitions, estimate, se)}

    def standardized(self) -> pd.DataFrame:
        """STDYX estimates (jaxsem.standardize) of every ParTable row, with delta-method
        standard errors from the same covariance as the unstandardized table (computed
        once)."""
        if self._standardized is None:
            self._standardized = self._make_standardized()
        return self._standardized

    def _make_standardized(self) -> pd.DataFrame:
        from jaxsem.ml.fit import ml_layout  # noqa: PLC0415
        from jaxsem.standardize import covariate_covariances, standardized_values  # noqa: PLC0415

        spec = self.layout.spec
        covariances = covariate_covariances(self.layout, ml_layout(self.analysis)[1])
        x = jnp.asarray(self.x)
        estimate = np.asarray(standardized_values(spec, x, covariances))
        jac = np.asarray(jax.jacfwd(lambda v: standardized_values(spec, v, covariances))(x))
        se = np.sqrt(np.clip(np.einsum("rk,kl,rl->r", jac, self.covariance, jac), 0.0, None))
        records = []
        for r, e, s_ in zip(self.partable.rows, estimate, se):
            rec = dict(block=r.block, lhs=r.lhs, op=r.op, rhs=r.rhs, kind=r.kind,
                       free=r.free, random=r.random, estimate=float(e))
            has_se = r.free or bool(np.any(jac[len(records)] != 0))
            rec.update(_wald(float(e), float(s_)) if has_se and s_ > 0 else {})
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def summary(self) -> pd.DataFrame:
        """One row per ParTable row (estimate, se, est_se, two-tailed p_value), plus
        defined parameters (block "new")."""
        if self._summary is None:
            self._summary = self._make_summary()
        return self._summary

    def _make_summary(self) -> pd.DataFrame:
        se_all = self.standard_errors
        records = []
        for r in self.partable.rows:
            rec = dict(block=r.block, lhs=r.lhs, op=r.op, rhs=r.rhs, kind=r.kind,
                       label=r.label, free=r.free, random=r.random)
            if r.free:
                rec.update(_wald(self.x[r.free - 1], se_all[r.free - 1]))
            elif not r.random:
                rec.update(estimate=r.value, se=0.0, est_se=np.nan, p_value=np.nan)
            records.append(rec)
        for d in self.partable.definitions:
            estimate, se = self.defined()[d.name]
            rec = dict(block="new", lhs=d.name, op=":=", rhs=to_text(d.expr), kind="defined",
                       label=d.name, free=0, random="")
            rec.update(_wald(estimate, se))
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def lavaan_table(self) -> pd.DataFrame:
        """lavaan's parameterEstimates() layout: lhs, op, rhs, level, est, se, z, pvalue."""
        table = self.summary()
        table = table[table["random"].fillna("") == ""]
        return pd.DataFrame({"lhs": table.lhs, "op": table.op, "rhs": table.rhs,
                             "level": table.block, "label": table.label,
                             "est": table.estimate, "se": table.se, "z": table.est_se,
                             "pvalue": table.p_value}).reset_index(drop=True)

    def report(self) -> str:
        from jaxsem.ml.report import format_ml_report  # noqa: PLC0415
        return format_ml_report(self)


def _wald(estimate: float, se: float) -> dict:
    z = estimate / se if se > 0 else np.nan
    p = float(2 * norm.sf(abs(z))) if np.isfinite(z) else np.nan
    return dict(estimate=float(estimate), se=float(se), est_se=float(z), p_value=p)


def _chi2_sf(value: float, df: int) -> float:
    if df <= 0:
        return float("nan")
    return float(jax.scipy.special.gammaincc(df / 2.0, value / 2.0))


def _singular_directions(information: np.ndarray, rtol: float = 1e-9) -> list[np.ndarray]:
    """Eigenvectors of the information with (near-)zero eigenvalues."""
    values, vectors = np.linalg.eigh(information)
    scale = max(np.abs(values).max(), 1e-300)
    return [vectors[:, i] for i in range(len(values)) if abs(values[i]) <= rtol * scale]
