"""``coinswarm live run`` with ``broker.kind = "binance"`` pointed at the fake venue (``broker.api_url``),
SIGKILLed at each of the four points of the write-ahead path (before an order is persisted,
after, after it is marked sent, after the venue acknowledged it but before that is stored) and
restarted with the same command: 0 lost and 0 duplicated orders, every fill booked once, the
ledger's position equal to the venue's.

The venue runs in a thread of this process with its clock at 1800× (one 1h bar every 2 s);
``COINSWARM_VENUE_KILLS`` sets the kills per point (default 3; ``COINSWARM_SLOW=1``: 25).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coinswarm.adapters.fake_venue import DUMMY_KEY, DUMMY_SECRET, FakeVenue
from coinswarm.live.config import load_config
from coinswarm.live.faults import POINTS
from coinswarm.live.venue import run_venue

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SPEED = 1800.0
KILLS = int(os.environ.get("COINSWARM_VENUE_KILLS", "25" if os.environ.get("COINSWARM_SLOW") else "3"))


class VenueThread:
    """The fake venue served from a thread (its own event loop) of this process."""

    def __enter__(self) -> FakeVenue:
        self.venue = FakeVenue({"BTC/USDT": "binance:BTC/USDT:1h"}, start="2024-03-01T00:30", speed=SPEED,
                               data_start="2024-02-01", data_end="2024-04-30")
        self.loop = asyncio.new_event_loop()
        self.ready, self.done = threading.Event(), None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(60), "fake venue did not start"
        return self.venue

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.venue.__aenter__())
        self.done = asyncio.Event()
        self.ready.set()
        self.loop.run_until_complete(self.done.wait())
        self.loop.run_until_complete(self.venue.__aexit__(None, None, None))

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.done.set)
        self.thread.join(10)


def write_config(path: Path, url: str, db: str) -> Path:
    path.write_text(f'''symbols = ["BTC/USDT"]
timeframe = "1h"
[strategy]
name = "trend"
[broker]
kind = "binance"
sandbox = true
grace_ms = 3600000
api_url = "{url}"
[risk]
max_drawdown = 0.9
daily_loss = 0.9
max_position = 10.0
max_order_notional = 1000000.0
[servers]
db = "{db}"
''')
    return path


def daemon_env(fault: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COINSWARM_BINANCE_API_KEY": DUMMY_KEY,
           "COINSWARM_BINANCE_SECRET": DUMMY_SECRET, "COINSWARM_LIVE_POLL_S": "0.05"}
    for name in ("COINSWARM_LIVE_FAULT", "COINSWARM_DB_URL", "COINSWARM_BROKER"):
        env.pop(name, None)
    if fault:
        env["COINSWARM_LIVE_FAULT"] = fault
    return env


def run_daemon(config: Path, fault: str | None, *, run_s: float | None = None, timeout: float = 90.0) -> int:
    """One ``coinswarm live run``: until the fault kills it, or SIGTERM after ``run_s``."""
    args = [sys.executable, "-m", "coinswarm.cli", "live", "run", "--config", str(config)]
    proc = subprocess.Popen(args, env=daemon_env(fault), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if run_s is not None:
            time.sleep(run_s)
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"daemon ({fault}) did not finish in {timeout} s: {err[-2000:]}") from None
    expected = -signal.SIGKILL if fault else 0
    assert proc.returncode == expected, f"daemon ({fault}) exited {proc.returncode}: {err[-3000:]}"
    return proc.returncode


@pytest.mark.timeout(1800)
def test_sigkill_at_each_point_against_the_fake_venue(tmp_path):
    import sys as _sys

    _sys.path.insert(0, str(ROOT / "tests" / "unit" / "live"))
    from test_venue import check_books

    db = f"sqlite:///{tmp_path}/live.db"
    rng = random.Random(18)
    with VenueThread() as venue:
        config = write_config(tmp_path / "live.toml", venue.url, db)
        kills = [(point, rng.randint(1, 3)) for _ in range(KILLS) for point in POINTS]
        for point, n in kills:
            run_daemon(config, f"{point}:{n}")
        run_daemon(config, None, run_s=12.0)  # past the grace: every order sent before a kill is resolved
        cfg = load_config(config, env=daemon_env(None))

        async def recover_only():
            return await run_venue(cfg, max_bars=0)

        runner = asyncio.run(recover_only())
        books = check_books(venue, db)
    report = runner.last_report
    assert not report.halted and not report.unexplained, report
    assert all(o.status.value == "open" for o in books["in_flight"]), books["in_flight"]
    assert len(books["sent"]) >= len(kills), (len(books["sent"]), len(kills))
    print(f"venue SIGKILL: {len(kills)} kills, {len(books['orders'])} orders, {len(books['sent'])} sent, "
          f"{len(venue.state.trades)} fills, 0 lost, 0 duplicated")
