"""Backtesting: numba kernels, the simulate face, metrics, statistics, sweeps, walk-forward."""
