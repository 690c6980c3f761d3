"""Ingest speed on the real ticks of datasets/ticks (issue 20 §2):

* tick import into partitioned Parquet (DuckDB-queryable): ≥ 200,000 ticks/s per process;
* tick import into PostgreSQL by COPY: ≥ 100,000 ticks/s;
* fake-venue WebSocket trade message → stored (Parquet) and published on NATS: P50 ≤ 10 ms,
  P99 ≤ 100 ms (asserted from ``ws.send`` to the publish having returned; the time until a NATS
  subscriber in the same event loop holds it is printed too).

Run: ``pytest benchmarks/test_ingest_speed.py --benchmark-only -s`` (the PostgreSQL and NATS
cases are ``integration``: they start the servers of the root conftest).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from coinswarm.data.catalog import data_roots
from coinswarm.ingest.imports import import_trades, infer_market, trades_table
from coinswarm.ingest.store import ParquetStore, open_store

FILES = {"binance_BTCUSDT_trades_2021-01-08T0000.csv.gz": None,
         "ETHUSDT_trades_2023-02-02T0920.csv.gz": "binance-perp",
         "binance_XRPETH_aggtrades_2019-10-11_2019-10-13.csv.gz": None}


def tick_paths() -> list[tuple[Path, str | None]]:
    out = []
    for name, exchange in FILES.items():
        for root in data_roots():
            if (Path(root) / "ticks" / name).exists():
                out.append((Path(root) / "ticks" / name, exchange))
                break
        else:
            pytest.fail(f"ticks/{name} missing")
    return out


def _import_all(store) -> int:
    return sum(import_trades(p, store, exchange=ex).rows_written for p, ex in tick_paths())


def test_parquet_tick_import_speed(benchmark):
    """CSV → checked Arrow table → new keys only → Parquet partitions, on a fresh folder each round."""
    dirs = []

    def setup():
        d = tempfile.mkdtemp(prefix="bench-pq-")
        dirs.append(d)
        return (ParquetStore(d),), {}

    written = benchmark.pedantic(_import_all, setup=setup, rounds=15, iterations=1)
    rate = written / benchmark.stats.stats.median
    again = _import_all(ParquetStore(dirs[-1]))
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    print(f"\nParquet import: {written:,} real ticks (3 files), median {benchmark.stats.stats.median * 1e3:.1f} ms "
          f"→ {rate:,.0f} ticks/s; re-import wrote {again}")
    assert written == 2001 + 1000 + 12477 and again == 0
    assert rate >= 200_000


def test_parquet_store_write_only_speed(benchmark):
    """The store's share: an already-parsed table of 12,477 ticks written to a fresh folder."""
    path, _ = tick_paths()[2]
    ex, sym = infer_market(path)
    table, _ = trades_table(path, ex, sym)
    dirs = []

    def setup():
        d = tempfile.mkdtemp(prefix="bench-pq-")
        dirs.append(d)
        return (ParquetStore(d), "trade", table, "bench"), {}

    result = benchmark.pedantic(lambda s, *a: s.write_table(*a), setup=setup, rounds=20, iterations=1)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    rate = table.num_rows / benchmark.stats.stats.median
    print(f"\nParquet write only: {table.num_rows:,} ticks, median {benchmark.stats.stats.median * 1e3:.1f} ms "
          f"→ {rate:,.0f} ticks/s")
    assert result.rows_written == table.num_rows


@pytest.mark.integration
def test_postgres_copy_tick_import_speed(benchmark, postgres_url):
    store = open_store(postgres_url)

    def setup():
        with store._conn.cursor() as cur:
            cur.execute("TRUNCATE ingest_trades")
        return (store,), {}

    written = benchmark.pedantic(_import_all, setup=setup, rounds=10, iterations=1)
    rate = written / benchmark.stats.stats.median
    again = _import_all(store)
    store.close()
    print(f"\nPostgreSQL COPY import: {written:,} real ticks, median {benchmark.stats.stats.median * 1e3:.1f} ms "
          f"→ {rate:,.0f} ticks/s; re-import wrote {again}")
    assert again == 0 and rate >= 100_000


@pytest.mark.integration
def test_ws_message_to_store_and_nats_latency(benchmark, nats_url, tmp_path):
    """Each trade: from the fake venue's ``ws.send`` until the scheduler has stored it in Parquet
    and published it on NATS (asserted), and until a NATS subscriber holds it (printed); real
    BTC/USDT trades, ~43 a second. Venue, ingest and subscriber share one event loop here."""
    from coinswarm.adapters.bus import NatsBus
    from coinswarm.adapters.fake_market import FakeMarketVenue
    from coinswarm.adapters.fake_venue import CCXT_OPTIONS
    from coinswarm.adapters.sources.ccxt_market import CcxtMarket, TradeStream
    from coinswarm.ingest.scheduler import Ingestor, Scheduler

    paths = {p.name: p for p, _ in tick_paths()}
    received: dict[int, float] = {}
    stored: dict[int, float] = {}

    async def scenario() -> list[float]:
        venue = FakeMarketVenue({"BTC/USDT": "binance:BTC/USDT:1m"},
                                trades={"BTC/USDT": str(paths["binance_BTCUSDT_trades_2021-01-08T0000.csv.gz"])},
                                start="2024-04-03T00:00:30", data_start="2024-04-02", data_end="2024-04-04",
                                tick_s=0.001)
        async with venue as v:
            bus = await NatsBus.connect(nats_url, name="bench-ingest")
            listener = await NatsBus.connect(nats_url, name="bench-listener")

            async def on_msg(msg):
                at = time.perf_counter()
                for row in json.loads(msg.data):
                    received.setdefault(int(row["v"]["trade_id"]), at)

            await listener.subscribe("ingest.trade.>", on_msg)
            market = CcxtMarket("binance", api_url=v.url, ws_url=v.ws_url, options=dict(CCXT_OPTIONS))
            stream = TradeStream(market, "BTC/USDT")
            ing = Ingestor(stream, "stream", 1.0, 0, "binance", "trade", "BTC/USDT")
            sched = Scheduler([ing], ParquetStore(tmp_path), bus=bus)

            def on_stored(_ing, batch, _result):
                at = time.perf_counter()
                for r in batch.records:
                    stored.setdefault(int(r.values["trade_id"]), at)

            sched.on_stored = on_stored
            task = asyncio.create_task(sched.run())
            await asyncio.sleep(2.0)  # connected, markets loaded, first writes done
            v.sent_at = []
            await asyncio.sleep(10.0)
            sent, v.sent_at = v.sent_at, None
            await asyncio.sleep(0.5)
            sched.stop()
            await task
            await market.close()
            await bus.close()
            await listener.close()
        lat, to_store = [], []
        for at, text in sent:
            msg = json.loads(text)
            if msg.get("e") == "trade" and int(msg["t"]) in received:
                lat.append(received[int(msg["t"])] - at)
                to_store.append(stored[int(msg["t"])] - at)
        return lat, to_store

    lat, done = (np.array(x) * 1e3 for x in benchmark.pedantic(lambda: asyncio.run(scenario()), rounds=1,
                                                                iterations=1))
    p50, p99 = np.percentile(done, 50), np.percentile(done, 99)
    print(f"\nWS message → stored in Parquet and published on NATS: {len(done)} trades, P50 {p50:.2f} ms, "
          f"P99 {p99:.2f} ms; → held by a NATS subscriber: P50 {np.percentile(lat, 50):.2f} ms, "
          f"P99 {np.percentile(lat, 99):.2f} ms")
    assert len(done) > 200 and p50 <= 10 and p99 <= 100
