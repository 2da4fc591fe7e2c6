"""Inference: mixture tree, priors, likelihoods, the dynesty adapter and results.

Entry points: `gammadm.inference.api` (library hand-off: loglike, prior_transform, ndim,
names) and `gammadm.inference.run.run_sample` (the ``gammadm sample`` command).
"""
