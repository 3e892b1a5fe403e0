"""Bayes estimation: the Gibbs sampler for multilevel SEM (layout, density, gibbs,
driver, results, report)."""
from jaxsem.bayes.driver import BayesOptions, fit_bayes, potential_scale_reduction
from jaxsem.bayes.results import BayesFit

__all__ = ["BayesFit", "BayesOptions", "fit_bayes", "potential_scale_reduction"]
