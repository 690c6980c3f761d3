"""The USDT-M perpetuals of the fake Binance (:class:`~coinswarm.adapters.fake_venue.FakeVenue`):
what ccxt's ``binance`` reads for their market data, served from the catalog's REAL perpetual
candles and funding rates, only what has happened by the venue's clock.

Served (public, unsigned): ``GET /fapi/v1/exchangeInfo`` (the perpetuals, ``contractType
PERPETUAL`` margined in the quote), ``/fapi/v1/klines`` (as the spot klines) and
``/fapi/v1/fundingRate`` (``symbol``, ``startTime``, ``endTime``, ``limit`` ≤ 1000, default 100;
without ``startTime`` the latest ``limit``; settlements published by the venue's time: at their
time, or ``delay_ms`` later — Binance publishes a settlement a little after it) and
``/fapi/v1/premiumIndex`` (``nextFundingTime``: the first settlement after the venue's time). No
futures trading: the paper daemon only reads their market data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coinswarm.errors import ConfigError

DELIVERY_NEVER = 4133404800000  # Binance's delivery date of a perpetual (2100-12-25)


@dataclass
class Perp:
    """One perpetual: its candles (as a spot market's) and its settled funding."""

    market: Any  # fake_venue._Market
    funding_ts: np.ndarray  # settlement times, ms
    funding: np.ndarray  # rates


def perp_sources(symbols: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``symbols`` split into spot and perpetuals (``BASE/QUOTE:SETTLE``); a perpetual must be
    margined in its quote (USDT-M) and come from a ``…-perp:BASE/QUOTE:tf`` catalog name (its
    funding is the catalog's ``…-perp:BASE/QUOTE:funding``)."""
    spot, perps = {}, {}
    for symbol, source in symbols.items():
        if ":" not in symbol:
            spot[symbol] = source
            continue
        pair, _, settle = symbol.partition(":")
        parts = source.split(":")
        if "/" not in pair or pair.split("/")[1] != settle or len(parts) != 3 or not parts[0].endswith("-perp"):
            raise ConfigError(f"perpetual {symbol!r} = {source!r}: expected a USDT-M perpetual like "
                              "'BTC/USDT:USDT' = 'binance-perp:BTC/USDT:1h'")
        perps[pair] = source
    return spot, perps


def load_perps(sources: dict[str, str], *, start: str | None, end: str | None, load_markets) -> dict[str, Perp]:
    """``{"BTC/USDT": "binance-perp:BTC/USDT:1h"}`` → perpetuals by venue id (``BTCUSDT``),
    candles through ``load_markets`` (the spot loader) and the whole funding series to ``end``."""
    from coinswarm.data.load import load_funding

    out = {}
    for venue_id, market in load_markets(sources, start=start, end=end).items():
        pair = f"{market.base}/{market.quote}"
        rates = load_funding(sources[pair].rsplit(":", 1)[0] + ":funding")
        if end is not None:
            import pandas as pd

            rates = rates.loc[: pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)]
        out[venue_id] = Perp(market, rates.index.as_unit("ms").asi8.astype(np.int64), rates.to_numpy(np.float64))
    return out


def futures_exchange_info(perps: dict[str, Perp], now: int) -> dict[str, Any]:
    """A small ``/fapi/v1/exchangeInfo``: the perpetuals (lot step 0.001, MARKET and LIMIT)."""
    symbols = []
    for venue_id, perp in perps.items():
        m = perp.market
        symbols.append({
            "symbol": venue_id, "pair": venue_id, "contractType": "PERPETUAL", "deliveryDate": DELIVERY_NEVER,
            "onboardDate": int(m.ts[0]), "status": "TRADING", "baseAsset": m.base, "quoteAsset": m.quote,
            "marginAsset": m.quote, "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
            "quotePrecision": 8, "underlyingType": "COIN", "triggerProtect": "0.0500",
            "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC"], "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "4529764", "tickSize": "0.10"},
                {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
                {"filterType": "MIN_NOTIONAL", "notional": "5"}]})
    return {"timezone": "UTC", "serverTime": now, "futuresType": "U_MARGINED", "rateLimits": [],
            "exchangeFilters": [], "assets": [], "symbols": symbols}


def funding_rows(perp: Perp, venue_id: str, params: dict, now: int, *, bad: bool = False,
                 delay_ms: int = 0) -> list[dict[str, Any]]:
    """``/fapi/v1/fundingRate`` rows of ``perp`` published by ``now`` (settled at or before
    ``now - delay_ms``; ``bad``: the last one's rate is not a number). Rates are served exactly
    (``repr`` of the float)."""
    limit = min(int(params.get("limit", 100)), 1000)
    hi = int(np.searchsorted(perp.funding_ts, min(int(params.get("endTime", now)), now - int(delay_ms)), "right"))
    if "startTime" in params:
        lo = int(np.searchsorted(perp.funding_ts, int(params["startTime"]), "left"))
        hi = min(hi, lo + limit)
    else:
        lo = max(0, hi - limit)
    rows = [{"symbol": venue_id, "fundingTime": int(perp.funding_ts[i]), "fundingRate": repr(float(perp.funding[i])),
             "markPrice": ""} for i in range(lo, hi)]
    if bad and rows:
        rows[-1]["fundingRate"] = "not-a-rate"
    return rows


def premium_index(perp: Perp, venue_id: str, now: int, *, bad: bool = False) -> dict[str, Any]:
    """``/fapi/v1/premiumIndex?symbol=…`` of ``perp`` at ``now``: ``nextFundingTime`` is its first
    settlement after ``now`` (published or not; past the series: its last + 8 h steps), the mark
    and index the close of the last closed candle (``bad``: ``nextFundingTime`` is not a time)."""
    k = int(np.searchsorted(perp.funding_ts, now, "right"))
    step = 8 * 3_600_000
    nxt = int(perp.funding_ts[k]) if k < perp.funding_ts.size else \
        int(perp.funding_ts[-1]) + ((now - int(perp.funding_ts[-1])) // step + 1) * step
    m = perp.market
    i = max(int(np.searchsorted(m.ts, now - m.step, "right")) - 1, 0)
    price = repr(float(m.ohlcv[i, 3])) if m.ts.size else "0"
    last = repr(float(perp.funding[k - 1])) if k else "0"
    return {"symbol": venue_id, "markPrice": price, "indexPrice": price, "estimatedSettlePrice": price,
            "lastFundingRate": last, "interestRate": "0.00010000",
            "nextFundingTime": "soon" if bad else nxt, "time": now}
