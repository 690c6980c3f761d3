"""``coinswarm live run`` with ``broker.kind = "binance"`` pointed at the fake venue (``broker.api_url``),
SIGKILLed at each of the four points of the write-ahead path (before an order is persisted,
after, after it is marked sent, after the venue acknowledged it but before that is stored) and
restarted with the same command: 0 lost and 0 duplicated orders, every fill booked once, the
ledger's position equal to the venue's, no halt.

How it stays fast (≥ 25 kills per point in about two minutes on two busy cores):

* the venue's clock is **stepped**: a pacer thread moves it one 1h bar on as soon as the
  daemon's checkpoint holds the last closed bar (no waiting for wall-clock bars; a killed
  daemon's bar is decided again at the same venue time after its restart);
* daemons are forked from a pre-imported launcher (:mod:`daemon_launcher`; each fork is a real
  process running ``coinswarm live run`` from its config: broker start, start-up-is-recovery,
  the loop) — the first and the last kill of the first worker are cold ``python -m coinswarm.cli``
  processes;
* ``WORKERS`` independent venues and ledgers run at once, each through a shuffled plan that
  mixes all four points and runs that die at a random point (``random:<seed>:0.3``), so every
  recovery state meets every kill.

After its plan each worker runs the daemon cleanly for 3 bars (past the 1-bar grace, so every
order sent before a kill is resolved), SIGTERMs it, recovers once more in-process and checks
the books against the venue's.

``COINSWARM_VENUE_KILLS`` sets the kills per point (default 25, plus half as many random ones;
``COINSWARM_SLOW=1``: 100). The PostgreSQL variant makes 5 per point (plus 2 random).
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coinswarm.adapters.fake_venue import DUMMY_KEY, DUMMY_SECRET, FakeVenue
from coinswarm.live.config import load_config
from coinswarm.live.faults import POINTS
from coinswarm.live.ledger import Ledger
from coinswarm.live.venue import CHECKPOINT_KEY, run_venue

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "live"))
from daemon_launcher import Launcher  # noqa: E402
from test_venue import check_books  # noqa: E402

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HOUR = 3_600_000
SLOW = os.environ.get("COINSWARM_SLOW") == "1"
KILLS = int(os.environ.get("COINSWARM_VENUE_KILLS", "100" if SLOW else "25"))
WORKERS = 4
MIGRATE = threading.Lock()


class VenueThread:
    """The fake venue served from a thread (its own event loop) of this process, its clock
    stepped by a pacer: one bar on whenever the ledger at ``db`` has checkpointed the last closed bar."""

    def __init__(self, db: str, bars: int) -> None:
        self.db, self.days = db, bars // 24 + 10
        self.advanced = 0

    def __enter__(self) -> VenueThread:
        import pandas as pd

        end = (pd.Timestamp("2024-03-01") + pd.Timedelta(days=self.days)).date()
        self.venue = FakeVenue({"BTC/USDT": "binance:BTC/USDT:1h"}, start="2024-03-01T00:30", speed=0.0,
                               data_start="2024-02-01", data_end=str(end))
        self.loop = asyncio.new_event_loop()
        self.ready, self.stopping = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(60), "fake venue did not start"
        self.pacer = threading.Thread(target=self._pace, daemon=True)
        self.pacer.start()
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.venue.__aenter__())
        self.done = asyncio.Event()
        self.ready.set()
        self.loop.run_until_complete(self.done.wait())
        self.loop.run_until_complete(self.venue.__aexit__(None, None, None))

    def _checkpoint(self, ledger: Ledger) -> int:
        try:
            meta = ledger.get_meta(CHECKPOINT_KEY)
        except Exception:  # noqa: BLE001  the daemon has not created its tables yet
            return -1
        return -1 if meta is None else int(meta["time"])

    def _pace(self) -> None:
        ledger = Ledger(self.db)
        try:
            while not self.stopping.wait(0.02):
                last_closed = self.venue.clock.now_ms() // HOUR * HOUR - HOUR
                if self._checkpoint(ledger) >= last_closed:
                    asyncio.run_coroutine_threadsafe(self._advance(), self.loop).result(10)
                    self.advanced += 1
        finally:
            ledger.close()

    async def _advance(self) -> None:
        self.venue.advance(HOUR)

    def stop_pacing(self) -> None:
        self.stopping.set()
        self.pacer.join(10)

    def __exit__(self, *exc: object) -> None:
        self.stop_pacing()
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
grace_ms = {HOUR}
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
    for name in ("COINSWARM_LIVE_FAULT", "COINSWARM_DB_URL", "COINSWARM_BROKER", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)
    if fault:
        env["COINSWARM_LIVE_FAULT"] = fault
    return env


def cold_run(config: Path, fault: str, timeout: float = 120.0) -> int:
    """One cold ``python -m coinswarm.cli live run`` until its fault kills it; its signal."""
    args = [sys.executable, "-m", "coinswarm.cli", "live", "run", "--config", str(config)]
    proc = subprocess.Popen(args, env=daemon_env(fault), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"daemon ({fault}) did not finish in {timeout} s: {err[-2000:]}") from None
    assert proc.returncode == -signal.SIGKILL, f"daemon ({fault}) exited {proc.returncode}: {err[-3000:]}"
    return signal.SIGKILL


class Worker:
    """One venue, one ledger, one launcher: a plan of kills, then a clean run past the grace."""

    def __init__(self, tmp: Path, db: str, plan: list[str], bars: int, *, cold: bool) -> None:
        self.tmp, self.db, self.plan, self.bars, self.cold = tmp, db, plan, bars, cold
        self.kills: dict[str, int] = {}

    def __call__(self) -> dict:
        self.tmp.mkdir(parents=True, exist_ok=True)
        with VenueThread(self.db, self.bars) as vt, Launcher(daemon_env(None)) as launcher:
            config = write_config(self.tmp / "live.toml", vt.venue.url, self.db)
            argv = ["live", "run", "--config", str(config)]
            for k, fault in enumerate(self.plan):
                if self.cold and k in (0, len(self.plan) - 1):
                    sig = cold_run(config, fault)
                else:
                    sig, code = launcher.run(argv, daemon_env(fault), self.tmp / "daemon.err", timeout=90)
                    err = (self.tmp / "daemon.err").read_text()[-3000:]
                    assert sig == signal.SIGKILL, f"{fault}: exit {code}: {err}"
                self.kills[fault.split(":")[0]] = self.kills.get(fault.split(":")[0], 0) + 1
            self._finish(launcher, vt, argv)
            vt.stop_pacing()
            with MIGRATE:  # Alembic's module-level context is not thread-safe
                runner = asyncio.run(self._recover_only(config))
            books = check_books(vt.venue, self.db)
            fills = len(vt.venue.state.trades)
        report = runner.last_report
        assert not report.halted and not report.unexplained, report
        assert all(o.status.value == "open" for o in books["in_flight"]), books["in_flight"]
        return {"kills": self.kills, "orders": len(books["orders"]), "sent": len(books["sent"]), "fills": fills}

    def _finish(self, launcher: Launcher, vt: VenueThread, argv: list[str]) -> None:
        """A clean run for 3 bars (past the 1-bar grace: every order sent before a kill is resolved), SIGTERM."""
        start = vt.advanced
        err = self.tmp / "daemon.err"
        launcher.start(argv, daemon_env(None), err)
        deadline = time.monotonic() + 60
        while vt.advanced < start + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert vt.advanced >= start + 3, f"the clean run did not get on: {err.read_text()[-3000:]}"
        launcher.terminate()
        sig, code = launcher.wait(60)
        assert (sig, code) == (0, 0), f"clean run: signal {sig}, exit {code}: {err.read_text()[-3000:]}"

    async def _recover_only(self, config: Path):
        cfg = load_config(config, env=daemon_env(None))
        return await run_venue(cfg, max_bars=0, stop=asyncio.Event())


def plans(kills: int, workers: int, rng: random.Random, randoms: int = 0) -> list[list[str]]:
    """``kills`` per point (the ``n``-th hit, n in 1..3) and ``randoms`` runs that die at a random
    point (``random:<seed>:0.3``, a seed per run), shuffled and dealt to ``workers`` plans."""
    every = [f"{p}:{rng.randint(1, 3)}" for _ in range(kills) for p in POINTS]
    every += [f"random:{rng.randrange(1 << 30)}:0.3" for _ in range(randoms)]
    rng.shuffle(every)
    return [every[i::workers] for i in range(workers)]


def run_workers(tmp: Path, dbs: list[str], plan_lists: list[list[str]]) -> list[dict]:
    bars = 4 * max(len(p) for p in plan_lists) + 100
    workers = [Worker(tmp / f"w{i}", db, plan, bars, cold=i == 0)
               for i, (db, plan) in enumerate(zip(dbs, plan_lists, strict=True))]
    with ThreadPoolExecutor(len(workers)) as pool:
        return list(pool.map(lambda w: w(), workers))


def check_kills(results: list[dict], per_point: int) -> None:
    total: dict[str, int] = {}
    for r in results:
        for point, n in r["kills"].items():
            total[point] = total.get(point, 0) + n
    assert all(total.get(p, 0) >= per_point for p in POINTS), total
    sent = sum(r["sent"] for r in results)
    assert sent >= per_point, (sent, per_point)
    print(f"venue SIGKILL: {total} kills, {sum(r['orders'] for r in results)} orders, {sent} sent, "
          f"{sum(r['fills'] for r in results)} fills, 0 lost, 0 duplicated")


@pytest.mark.timeout(1800 if SLOW else 600)
def test_sigkill_at_each_point_against_the_fake_venue(tmp_path):
    started = time.monotonic()
    plan_lists = plans(KILLS, WORKERS, random.Random(18), randoms=KILLS // 2)
    results = run_workers(tmp_path, [f"sqlite:///{tmp_path}/live{i}.db" for i in range(WORKERS)], plan_lists)
    check_kills(results, KILLS)
    assert sum(r["kills"].get("random", 0) for r in results) == KILLS // 2
    print(f"in {time.monotonic() - started:.0f} s")


@pytest.mark.timeout(600)
def test_sigkill_at_each_point_on_postgres(tmp_path, postgres_url):
    """The same on PostgreSQL: 5 kills per point, one worker (one database)."""
    plan_lists = plans(5, 1, random.Random(19), randoms=2)
    check_kills(run_workers(tmp_path, [postgres_url], plan_lists), 5)
