"""MCMC transition kernels: pure functions over arrays and pytrees.

Installed as ``jaxsem.kernels`` (a PyPI distribution named "kernels" exists, so no
top-level package of that name is installed). Kernels know nothing about SEM syntax:
each is a pair of pure functions, built by a factory from static options, that take an
explicit PRNG key and return a new state. The Gibbs schedule of the Bayes estimator
chains them.
"""
