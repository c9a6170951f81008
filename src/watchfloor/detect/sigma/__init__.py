"""Sigma detection: load (pySigma), compile, route, prefilter, evaluate, correlate."""
