"""The PostgreSQL store on a real server: COPY import of the real ticks, idempotent re-import,
malformed rows named with the good rows kept, candle gap reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinswarm.adapters.sources.base import Record
from coinswarm.data.catalog import data_roots
from coinswarm.ingest.imports import import_trades
from coinswarm.ingest.store import gap_report, open_store, write_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def tick_file(name: str) -> Path:
    for root in data_roots():
        if (Path(root) / "ticks" / name).exists():
            return Path(root) / "ticks" / name
    pytest.fail(f"ticks/{name} missing")


def test_pg_import_twice_and_keys(postgres_url):
    store = open_store(postgres_url)
    try:
        path = tick_file("binance_XRPETH_aggtrades_2019-10-11_2019-10-13.csv.gz")
        first = import_trades(path, store)
        assert (first.rows_read, first.rows_written, first.store_rows) == (12477, 12477, 12477)
        second = import_trades(path, store)
        assert (second.rows_written, second.store_rows) == (0, 12477)
        assert gap_report(store, "trade", "binance", "XRP/ETH") == []
        kraken = import_trades(tick_file("kraken_BCHEUR_trades_2023-01-01_2023-01-02.csv.gz"), store)
        assert (kraken.rows_written, kraken.store_rows) == (634, 634)
        assert store.count("trade") == 12477 + 634
    finally:
        store.close()


def test_pg_candles_rejects_and_gaps(postgres_url):
    store = open_store(postgres_url)
    h = 3_600_000
    t0 = 1_700_000_000_000 // h * h
    try:
        recs = [Record("candle", "binance:candles:BTC/USDT", "BTCUSDT", t0 + i * h,
                       {"open": 10.0, "high": 11.0, "low": 9.0 if i != 3 else 12.0, "close": 10.5, "volume": 2.0,
                        "timeframe": "1h"}) for i in range(6)]
        result = write_records(store, recs)
        assert result.rows_written == 5 and [e.field for e in result.rejected] == ["high"]
        assert write_records(store, recs).rows_written == 0
        gaps = gap_report(store, "candle", "binance", "BTC/USDT", "1h")
        assert [(g.after, g.missing) for g in gaps] == [(t0 + 2 * h, 1)]
        assert store.last_time("candle", "binance", "BTC/USDT", "1h") == t0 + 5 * h
    finally:
        store.close()
