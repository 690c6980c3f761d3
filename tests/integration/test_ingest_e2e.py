"""End to end: `coinswarm ingest run` (a subprocess) on a fake venue (another subprocess: real
candles and trades, REST + WebSocket) fills a Parquet store with de-duplicated ticks and
candles, publishes them on NATS and reports healthy; killing the venue makes `ingest status`
report unhealthy; restarting it recovers, and the gap is backfilled: the store ends gap-free."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coinswarm.data.catalog import data_roots
from coinswarm.ingest.store import ParquetStore, gap_report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[2]


def ticks(name: str) -> str:
    for root in data_roots():
        if (Path(root) / "ticks" / name).exists():
            return str(Path(root) / "ticks" / name)
    pytest.fail(f"ticks/{name} missing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def start_venue(rest: int, ws: int, anchor: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "coinswarm.adapters.fake_market", "--symbol", "BTC/USDT=binance:BTC/USDT:1m",
            "--trades", f"BTC/USDT={ticks('binance_BTCUSDT_trades_2021-01-08T0000.csv.gz')}",
            "--bbo", f"BTC/USDT={ticks('binance_BTCUSDT_bbo_2021-01-08T0000.csv.gz')}",
            "--start", "2024-04-03T00:00:30", "--speed", "10", "--anchor-ms", str(anchor),
            "--port", str(rest), "--ws-port", str(ws), "--max-seconds", "240"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env())
    line = proc.stdout.readline()
    assert line.startswith("FAKE_MARKET"), line
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.terminate()
    proc.wait(timeout=10)


def status(cfg: Path) -> tuple[int, dict]:
    out = subprocess.run([sys.executable, "-m", "coinswarm.cli", "ingest", "status", "--config", str(cfg), "--json"],
                         capture_output=True, text=True, timeout=60, env=env())
    return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else {"stderr": out.stderr})


def wait_for(cfg: Path, healthy: bool, seconds: float) -> dict:
    deadline, last = time.monotonic() + seconds, {}
    while time.monotonic() < deadline:
        code, last = status(cfg)
        if code == (0 if healthy else 1) and last.get("healthy") is healthy:
            return last
        time.sleep(0.5)
    pytest.fail(f"ingest did not become {'healthy' if healthy else 'unhealthy'} in {seconds} s: {last}")


def test_ingest_run_survives_a_venue_restart_gap_free(tmp_path, nats_url):
    rest, ws, metrics = free_port(), free_port(), free_port()
    anchor = int(time.time() * 1000)  # noqa: TID251 (the venue subprocess anchors its clock to the wall)
    cfg = tmp_path / "ingest.toml"
    cfg.write_text(f"""
store = "parquet:{tmp_path / 'store'}"
status_file = "{tmp_path / 'status.json'}"
metrics_port = {metrics}
nats_url = "{nats_url}"
[backoff]
base_s = 0.2
max_s = 1.0
stale_after_s = 3.0
[[exchange]]
name = "binance"
label = "fake"
symbols = ["BTCUSDT"]
candles = ["1m"]
candles_ws = ["1m"]
trades = true
trades_ws = true
book_depth = 5
every_s = 0.5
lookback_s = 1800.0
clock_every_s = 0.5
api_url = "http://127.0.0.1:{rest}"
ws_url = "ws://127.0.0.1:{ws}/stream/ws"
options = {{ fetchMarkets = {{ types = ["spot"] }}, fetchMargins = false, fetchCurrencies = false }}
""")
    received: list[bytes] = []
    venue = start_venue(rest, ws, anchor)
    ingest = subprocess.Popen([sys.executable, "-m", "coinswarm.cli", "ingest", "run", "--config", str(cfg),
                               "--seconds", "200"], env=env(), stderr=subprocess.PIPE, text=True)
    loop = asyncio.new_event_loop()
    try:
        import nats

        nc = loop.run_until_complete(nats.connect(nats_url))

        async def on_msg(msg):
            received.append(msg.data)

        loop.run_until_complete(nc.subscribe("ingest.>", cb=on_msg))
        wait_for(cfg, True, 60)
        loop.run_until_complete(asyncio.sleep(3))
        stop(venue)
        down = wait_for(cfg, False, 30)
        assert any("fake:" in r["source"] and not r["healthy"] for r in down["sources"])
        time.sleep(4)  # the venue's clock runs on (anchored): 40 s of trades and candles are missed
        venue = start_venue(rest, ws, anchor)
        back = wait_for(cfg, True, 60)
        assert any(r["reconnects"] >= 1 for r in back["sources"] if "-ws:" in r["source"])
        time.sleep(4)  # the pollers backfill what the outage missed
        loop.run_until_complete(asyncio.sleep(0.5))
        loop.run_until_complete(nc.close())
    finally:
        ingest.send_signal(signal.SIGTERM)
        try:
            ingest.wait(timeout=30)
        except subprocess.TimeoutExpired:
            ingest.kill()
        stop(venue)
        loop.close()
    assert ingest.returncode == 0, ingest.stderr.read()[-2000:]
    store = ParquetStore(tmp_path / "store")
    trades = store.read("trade", "fake", "BTC/USDT")
    ids = trades.column("trade_id").to_pylist()
    assert len(ids) == len(set(ids)) > 1000
    assert gap_report(store, "trade", "fake", "BTC/USDT") == []
    times = trades.column("time_ms").to_pylist()
    assert max(times) - min(times) > 60_000  # spans before, during and after the outage
    candles = store.read("candle", "fake", "BTC/USDT", "1m").column("time_ms").to_pylist()
    assert len(candles) >= 33 and gap_report(store, "candle", "fake", "BTC/USDT", "1m") == []
    assert len(candles) == len(set(candles))
    assert received and any(b'"trade_id"' in m for m in received)
