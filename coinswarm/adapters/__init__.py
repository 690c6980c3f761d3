"""The outside world: the NATS bus, pip-installed server launchers, exchanges (ccxt).

Nothing in the pure core (agents, regime, committee, quorum, kernels) imports this layer.
"""
