"""ML and MLR estimation on the same ModelSpec as the sampler (see likelihood.py)."""
from jaxsem.ml.fit import MLOptions, fit_ml
from jaxsem.ml.results import MLFit

__all__ = ["MLFit", "MLOptions", "fit_ml"]
