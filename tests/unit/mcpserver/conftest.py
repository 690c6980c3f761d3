"""Fixtures of the MCP server tests: one market cache for the session (the catalog data is
loaded once), a fresh ledger db and server per test, a fixed clock."""

from __future__ import annotations

import asyncio

import pytest

from coinswarm.live.config import RiskLimits
from coinswarm.mcpserver.config import OrderLimits, ServerConfig
from coinswarm.mcpserver.market import Market

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DATA = "binance:BTC/USDT:1h"


class Clock:
    """A settable epoch-ms clock."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="session")
def market() -> Market:
    return Market()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'paper.db'}"


def limits(**risk) -> OrderLimits:
    """Small limits: 1,000 quote per order, 0.05 BTC position, 2,500 quote a day."""
    return OrderLimits(symbols=("BTC/USDT", "ETH/USDT"),
                       risk=RiskLimits(max_order_notional=risk.get("max_order_notional", 1_000.0),
                                       max_position=risk.get("max_position", 0.05)),
                       max_daily_notional=risk.get("max_daily_notional", 2_500.0), fee_bps=10.0, slippage_bps=5.0)


@pytest.fixture
def make_limits():
    """:func:`limits` (small order limits), for tests that want other numbers."""
    return limits


@pytest.fixture
def make_app(db, clock, market):
    from coinswarm.mcpserver.server import build_server

    made = []

    def make(**kwargs):
        config = ServerConfig(db=kwargs.pop("db", db), limits=kwargs.pop("limits", limits()),
                              **{k: kwargs.pop(k) for k in ("memory", "nats", "live", "principal") if k in kwargs})
        app = build_server(config, clock, market=market, **kwargs)
        made.append(app)
        return app

    yield make
    for app in made:
        asyncio.run(app.aclose())


@pytest.fixture
def app(make_app):
    return make_app()


def run(coro):
    """Run a coroutine to completion (the tests drive the SDK's client with asyncio)."""
    return asyncio.run(coro)
