"""Bayes results as data (a DataFrame keyed by ParTable rows), and their printers.

Mplus's definitions: the estimate is the posterior median (POINT = MEDIAN; MEAN and
MODE on request; MODE is the univariate mode of a kernel density estimate of each
marginal, not the joint mode); the one-tailed p-value is the posterior probability of
the sign opposite to the estimate (for a positive estimate, the share of draws below
zero), so a one-tailed p of 0.04 can go with a 95% interval that covers zero; the
interval is the equal-tail 2.5% / 97.5% interval; "*" marks intervals excluding zero.
ESS and R-hat are ArviZ's (rank-normalised, Vehtari et al. 2021).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd

from jaxsem.priors import default_prior_of_kind
from jaxsem.syntax.expressions import evaluate, to_text


@dataclass
class BayesFit:
    """Draws and diagnostics of one Bayes fit.

    ``draws``: (chains, iterations, n_free) every iteration; the last half is kept.
    ``psr_history``: (iteration, max PSR, parameter) after each chunk (TECH8-like).
    ``final_states``: the chains' last states (gibbs.ChainState, leading chain axis),
    from which :func:`jaxsem.bayes.driver.continue_chains` goes on.
    """
    analysis: object
    layout: object
    schedule: object
    options: object
    draws: np.ndarray
    psr_history: list
    converged: bool
    interrupted: bool
    compile_seconds: float
    sampling_seconds: float
    nuts_acceptance: float | None
    final_states: object
    _summary: pd.DataFrame | None = field(default=None, repr=False)
    _standardized: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def partable(self):
        return self.analysis.partable

    @property
    def names(self) -> list[str]:
        return self.partable.parameter_names()

    @property
    def kept(self) -> np.ndarray:
        """(chains, kept iterations, n_free): the last half of every chain."""
        n = self.draws.shape[1]
        return self.draws[:, n // 2:]

    def defined_draws(self) -> dict[str, np.ndarray]:
        """Draws (chains, kept) of := / MODEL CONSTRAINT NEW parameters."""
        labels = {}
        for r in self.partable.rows:
            if r.label and r.free:
                labels[r.label] = self.kept[:, :, r.free - 1]
            elif r.label and not r.random:
                labels[r.label] = np.full(self.kept.shape[:2], r.value)
        out = {}
        for d in self.partable.definitions:
            out[d.name] = np.asarray(evaluate(d.expr, {**labels, **out}))
        return out

    def summary(self) -> pd.DataFrame:
        """One row per ParTable row, plus defined parameters."""
        if self._summary is None:
            self._summary = self._make_summary()
        return self._summary

    def _make_summary(self) -> pd.DataFrame:
        kept = self.kept
        ess_bulk, ess_tail, rhat = _diagnostics(kept)
        records = []
        for r in self.partable.rows:
            rec = dict(block=r.block, lhs=r.lhs, op=r.op, rhs=r.rhs, kind=r.kind,
                       label=r.label, free=r.free, random=r.random)
            if r.free:
                k = r.free - 1
                rec.update(_describe(kept[:, :, k], self.options.point))
                rec.update(ess_bulk=ess_bulk[k], ess_tail=ess_tail[k], rhat=rhat[k],
                           prior=str(r.prior or default_prior_of_kind(r.kind)
                                     or "IW(0, -p-1)"))
            elif not r.random:
                rec.update(estimate=r.value)
            records.append(rec)
        for name, values in self.defined_draws().items():
            d = next(d for d in self.partable.definitions if d.name == name)
            rec = dict(block="new", lhs=name, op=":=", rhs=to_text(d.expr), kind="defined",
                       label=name, free=0, random="")
            rec.update(_describe(values, self.options.point))
            b, t, h = _diagnostics(values[:, :, None])
            rec.update(ess_bulk=b[0], ess_tail=t[0], rhat=h[0])
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def standardized(self) -> pd.DataFrame:
        """STDYX (jaxsem.standardize) of every ParTable row, computed per kept draw and
        summarised like the unstandardized table (computed once)."""
        if self._standardized is None:
            self._standardized = self._make_standardized()
        return self._standardized

    def _make_standardized(self) -> pd.DataFrame:
        import jax  # noqa: PLC0415

        from jaxsem.bayes.driver import sampler_layout  # noqa: PLC0415
        from jaxsem.standardize import covariate_covariances, standardized_values  # noqa: PLC0415

        spec = self.layout.spec
        covariances = covariate_covariances(self.layout, sampler_layout(self.analysis)[1])
        kept = self.kept
        draws = np.asarray(jax.jit(jax.vmap(
            lambda v: standardized_values(spec, v, covariances)))(
            kept.reshape(-1, kept.shape[2]))).reshape(kept.shape[:2] + (-1,))
        records = []
        for k, r in enumerate(self.partable.rows):
            rec = dict(block=r.block, lhs=r.lhs, op=r.op, rhs=r.rhs, kind=r.kind,
                       free=r.free, random=r.random)
            values = draws[:, :, k]
            if np.ptp(values) > 1e-12 * max(1.0, float(np.abs(values).max())):
                rec.update(_describe(values, self.options.point))
            else:
                rec.update(estimate=float(values.flat[0]))
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def to_arviz(self):
        """ArviZ InferenceData of the kept draws, named by the ParTable."""
        posterior = {name: self.kept[:, :, k] for k, name in enumerate(self.names)}
        posterior.update(self.defined_draws())
        return az.from_dict(posterior=posterior)

    def report(self) -> str:
        from jaxsem.bayes.report import format_bayes_report  # noqa: PLC0415
        return format_bayes_report(self)


def _describe(values: np.ndarray, point: str) -> dict:
    flat = values.ravel()
    estimate = {"median": np.median, "mean": np.mean, "mode": _kde_mode}[point](flat)
    lower, upper = np.quantile(flat, [0.025, 0.975])
    opposite = np.mean(flat < 0) if estimate >= 0 else np.mean(flat > 0)
    return dict(estimate=float(estimate), posterior_sd=float(flat.std(ddof=1)),
                p_value=float(opposite), ci_lower=float(lower), ci_upper=float(upper),
                significant=bool(lower > 0 or upper < 0))


def _kde_mode(flat: np.ndarray) -> float:
    if np.ptp(flat) <= 1e-12 * max(1.0, float(np.abs(flat).max())):  # KDE needs a range
        return float(flat[0])
    grid, density = az.kde(flat)
    return float(grid[np.argmax(density)])


def _diagnostics(kept: np.ndarray):
    """Bulk ESS, tail ESS and R-hat per parameter of (chains, draws, P)."""
    data = az.convert_to_dataset({"x": kept})
    bulk = az.ess(data, method="bulk")["x"].values
    tail = az.ess(data, method="tail")["x"].values
    rhat = az.rhat(data)["x"].values
    return bulk, tail, rhat


