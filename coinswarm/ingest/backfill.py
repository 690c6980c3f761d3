"""``coinswarm ingest backfill``: page a market's REST history into a store, then report gaps."""

from __future__ import annotations

from typing import Any

from coinswarm.adapters.sources.ccxt_market import CandleSource, CcxtMarket, FundingSource, TradeSource
from coinswarm.data.validate import as_time_bound
from coinswarm.errors import ConfigError
from coinswarm.ingest.store import WriteResult, gap_report, open_store, write_records


def _ms(text: str, name: str) -> int:
    return int(as_time_bound(text, name).value // 1_000_000)


async def backfill(exchange: str, symbol: str, kind: str, timeframe: str, since: str, until: str | None,
                   store_url: str, *, api_url: str | None = None, options: dict | None = None,
                   max_rounds: int = 10_000) -> dict[str, Any]:
    """Fetch ``[since, until)`` of one market (candles, trades or funding) into ``store_url``.

    Idempotent: rows already stored are skipped, so a backfill can be re-run or resumed.

    Raises
    ------
    ConfigError
        Bad kind, dates or store; :class:`~coinswarm.adapters.sources.base.SourceError` when the
        venue cannot be reached.
    """
    from coinswarm.adapters.fake_venue import CCXT_OPTIONS

    if kind not in ("candle", "trade", "funding"):
        raise ConfigError(f"backfill kind must be candle, trade or funding, not {kind!r}")
    start = _ms(since, "since")
    store = open_store(store_url)
    market = CcxtMarket(exchange, api_url=api_url, options=options or (dict(CCXT_OPTIONS) if api_url else None))
    try:
        source = (CandleSource(market, symbol, timeframe) if kind == "candle" else
                  TradeSource(market, symbol) if kind == "trade" else FundingSource(market, symbol))
        stop = _ms(until, "until") if until else await source.venue_now() + 1
        if stop <= start:
            raise ConfigError(f"until {until!r} is not after since {since!r}")
        total, cursor, rows_read = WriteResult(kind), start, 0
        for _ in range(max_rounds):
            batch = await source.fetch(cursor, stop, market.wall())
            rows_read += len(batch.records) + len(batch.rejected)
            total = total.merge(write_records(store, batch.records))
            total.rejected.extend(batch.rejected)
            if not batch.records:
                break
            newest = max(r.time_ms for r in batch.records)
            cursor = newest + (source.step if kind == "candle" else 1)
            if cursor >= stop:
                break
        key = source.key
        gaps = gap_report(store, kind, market.name, key, timeframe if kind == "candle" else None)
        return {"exchange": market.name, "symbol": key, "kind": kind, "rows_read": rows_read,
                "rows_written": total.rows_written, "rows_rejected": len(total.rejected),
                "store_rows": store.count(kind, market.name, key), "gaps": len(gaps),
                "gap_list": [[g.after, g.before, g.missing] for g in gaps[:20]],
                "errors": [str(e) for e in total.rejected[:20]]}
    finally:
        await market.close()
        store.close()
