"""The live trading runner: one closed bar at a time through the same pure core the backtester
scans (feeds, brokers, order state machine, reconciliation, kill switch, outbox, telemetry).

Layer rule: ``live`` may import everything below it (core, kernels, data, adapters, memory);
nothing below imports ``live``.
"""
