"""``ingest backfill`` on the local fake venue (real candles and trades): paged history into a
store, gap-free, and a second run writes nothing."""

from __future__ import annotations

import asyncio

import pytest

from coinswarm.ingest.backfill import backfill
from tests.unit.ingest.test_ingest_ccxt_market import venue

pytestmark = pytest.mark.timeout(120)


def test_backfill_candles_and_trades_idempotent(tmp_path):
    store = f"parquet:{tmp_path}"

    async def scenario():
        async with venue() as v:
            kw = {"api_url": v.url}
            c1 = await backfill("binance", "BTCUSDT", "candle", "1m", "2024-04-02T00:00", "2024-04-02T20:00", store,
                                **kw)
            c2 = await backfill("binance", "BTC-USDT", "candle", "1m", "2024-04-02T00:00", "2024-04-02T20:00",
                                store, **kw)
            await asyncio.sleep(2.0)  # some trades on the venue's clock
            t1 = await backfill("binance", "BTC/USDT", "trade", "1m", "2024-04-03T00:00", None, store, **kw)
            t2 = await backfill("binance", "BTC/USDT", "trade", "1m", "2024-04-03T00:00", None, store, **kw)
            return c1, c2, t1, t2

    c1, c2, t1, t2 = asyncio.run(scenario())
    assert (c1["rows_written"], c1["store_rows"], c1["gaps"]) == (1200, 1200, 0)  # 20 h of 1m, > 1 page
    assert (c2["rows_written"], c2["store_rows"]) == (0, 1200)
    assert t1["rows_written"] > 0 and t1["gaps"] == 0 and t1["symbol"] == "BTC/USDT"
    assert t2["rows_written"] <= t1["rows_written"] and t2["store_rows"] >= t1["store_rows"]
