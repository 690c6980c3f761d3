"""The ingest scheduler on local fake venues (real candles, real trades): 16 ingestors on their
own schedules fill a Parquet store with de-duplicated, gap-free candles and trades and report
healthy; an unreachable venue's ingestors fail in isolation with back-off; status and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.request

import pytest

from coinswarm.adapters.fake_market import FakeMarketVenue
from coinswarm.adapters.fake_venue import CCXT_OPTIONS
from coinswarm.errors import ConfigError
from coinswarm.ingest.config import ExchangeConfig, IngestConfig, load_config
from coinswarm.ingest.health import Metrics, read_status
from coinswarm.ingest.scheduler import Scheduler, build_ingestors
from coinswarm.ingest.store import ParquetStore, gap_report
from tests.unit.ingest.test_ingest_ccxt_market import data_file

pytestmark = pytest.mark.timeout(180)
BTC_T = "binance_BTCUSDT_trades_2021-01-08T0000.csv.gz"
ETH_T = "ETHUSDT_trades_2023-02-02T0920.csv.gz"
BBO = "binance_BTCUSDT_bbo_2021-01-08T0000.csv.gz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venues() -> list[tuple[str, FakeMarketVenue, dict]]:
    ticks = lambda n: str(data_file("ticks", n))  # noqa: E731
    common = {"start": "2024-04-03T00:00:30", "speed": 20.0}
    return [
        ("venue-a", FakeMarketVenue({"BTC/USDT": "binance:BTC/USDT:1m"}, trades={"BTC/USDT": ticks(BTC_T)},
                                    bbo={"BTC/USDT": ticks(BBO)}, data_start="2024-04-02", data_end="2024-04-04",
                                    **common), {"candles": ("1m",), "candles_ws": ("1m",), "book_depth": 5}),
        ("venue-b", FakeMarketVenue({"ETH/USDT": "binance:ETH/USDT:5m:2024-01_2024-09"},
                                    trades={"ETH/USDT": ticks(ETH_T)}, data_start="2024-04-01", data_end="2024-04-04",
                                    **common), {"candles": ("5m",), "candles_ws": ("5m",)}),
        ("venue-c", FakeMarketVenue({"BTC/USDT": "binance:BTC/USDT:5m:2024-01_2024-09"},
                                    trades={"BTC/USDT": ticks(BTC_T)}, bbo={"BTC/USDT": ticks(BBO)},
                                    data_start="2024-04-01", data_end="2024-04-04", **common),
         {"candles": ("5m",), "candles_ws": ("5m",), "book_depth": 5}),
    ]


def exchange(label: str, v: FakeMarketVenue, extra: dict) -> ExchangeConfig:
    symbol = next(iter(v.tapes))
    return ExchangeConfig("binance", (symbol[:3] + "/" + symbol[3:],), trades=True, trades_ws=True, every_s=0.5,
                          lookback_s=1800.0, api_url=v.url, ws_url=v.ws_url, options=dict(CCXT_OPTIONS), label=label,
                          clock_every_s=0.5, **extra)


def settled(status: dict) -> bool:
    """Every live source healthy and the dead venue's sources seen failing at least twice."""
    rows = status["sources"]
    dead = [r for r in rows if r["source"].startswith("dead:")]
    return all(r["healthy"] for r in rows if not r["source"].startswith("dead:")) \
        and len(dead) == 2 and all(r["errors"] >= 2 for r in dead)


def test_sixteen_ingestors_fill_the_store_and_isolate_a_dead_venue(tmp_path):
    dead = free_port()

    async def scenario():
        async with contextlib.AsyncExitStack() as stack:
            vs = [(label, await stack.enter_async_context(v), extra) for label, v, extra in venues()]
            exchanges = [exchange(label, v, extra) for label, v, extra in vs]
            exchanges.append(ExchangeConfig("binance", ("SOL/USDT",), candles=("1m",), trades=True, every_s=0.5,
                                            api_url=f"http://127.0.0.1:{dead}", options=dict(CCXT_OPTIONS),
                                            label="dead"))
            config = IngestConfig(f"parquet:{tmp_path / 'store'}", str(tmp_path / "status.json"), tuple(exchanges))
            markets, ingestors = build_ingestors(config)
            store = ParquetStore(tmp_path / "store")
            metrics = Metrics()
            port = metrics.serve(0)
            sched = Scheduler(ingestors, store, base_s=0.2, max_s=1.0, stale_after_s=5.0,
                              status_file=config.status_file, metrics=metrics)
            task = asyncio.create_task(sched.run())
            await asyncio.sleep(10.0)
            for _ in range(100):  # a loaded machine may need longer: poll (bounded, 50 s more) until settled
                if settled(sched.report()):
                    break
                await asyncio.sleep(0.5)
            status = sched.report()
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                                          timeout=5).read().decode())
            sched.stop()
            await task
            for m in markets:
                await m.close()
            metrics.close()
            return len(ingestors), status, text, store

    n, status, text, store = asyncio.run(scenario())
    assert n == 16
    by = {row["source"]: row for row in status["sources"]}
    dead_rows = [r for s, r in by.items() if s.startswith("dead:")]
    live_rows = [r for s, r in by.items() if not s.startswith("dead:")]
    assert len(dead_rows) == 2 and all(not r["healthy"] and r["errors"] >= 2 for r in dead_rows)
    assert all(r["healthy"] for r in live_rows), [r for r in live_rows if not r["healthy"]]
    assert not status["healthy"]  # one venue is down: the whole is not healthy
    for label, tf in (("venue-a", "1m"), ("venue-b", "5m"), ("venue-c", "5m")):
        sym = "ETH/USDT" if label == "venue-b" else "BTC/USDT"
        assert store.count("candle", label, sym) > 0 and store.count("trade", label, sym) > 100
        assert gap_report(store, "candle", label, sym, tf) == []
        assert gap_report(store, "trade", label, sym) == []  # contiguous ids (the tapes are)
        ids = store.keys("trade", label, sym)
        assert len(ids) == len(set(ids))
    assert store.count("book", "venue-a") > 0
    assert 'coinswarm_ingest_up{source="dead:candles:SOL/USDT:1m"} 0.0' in text
    assert 'coinswarm_ingest_up{source="venue-a:trades-ws:BTC/USDT"} 1.0' in text
    saved = read_status(tmp_path / "status.json")
    assert {r["source"] for r in saved["sources"]} == set(by)


def test_config_example_and_errors(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "runners" / "ingest.example.toml"
    config = load_config(example, env={})
    _, ingestors = build_ingestors(config)
    assert len(ingestors) >= 15
    bad = tmp_path / "bad.toml"
    for text, match in (('[[exchange]]\nname = "binance"\nsymbols = ["BTC/USDT"]\napi_key = "x"\n', "secret"),
                        ('[[exchange]]\nname = "binance"\nsymbols = []\n', "symbols"),
                        ('[[exchange]]\nname = "binance"\nsymbols = ["BTC/USDT"]\ncandles = ["7q"]\n', "candles"),
                        ('store = "parquet:x"\n', "exchange"), ("x = [", "ingest config")):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_config(bad, env={})
    with pytest.raises(ConfigError, match="no status file"):
        read_status(tmp_path / "none.json")
