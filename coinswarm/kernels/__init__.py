"""Compiled kernels: arrays in, arrays out (numba, with plain-Python twins).

``steps`` holds the stateful O(1) steps the agents, the regime detector and the committee
share (EWMA, rolling windows, P² quantiles, spreads); ``indicators`` vectorised indicators;
``portfolio`` the portfolio kernel (fills, cash, fees, slippage, funding, leverage cap) that
:func:`coinswarm.simulate` and the live paper broker both run; ``metrics`` the metric
accumulators. No I/O, no pandas.
"""
