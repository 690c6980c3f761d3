"""The daemons' graceful stop (kept apart so the exchange path need not import the paper runner)."""

from __future__ import annotations

import asyncio


def signal_stop() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (graceful stop of a daemon loop)."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    return stop
