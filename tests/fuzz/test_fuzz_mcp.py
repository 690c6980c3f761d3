"""Fuzz the MCP order desk and the research tools' inputs (issue 20): every case is an
accepted order within every limit, or a ``CoinswarmError`` — never another exception, never
a hang (per-case deadline), never a change of the ledger after a refusal. Prices are the real
last close of Binance BTC/USDT and ETH/USDT 1h.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinswarm.errors import CoinswarmError
from coinswarm.live.config import RiskLimits
from coinswarm.live.ledger import Ledger
from coinswarm.live.protocols import Side
from coinswarm.mcpserver import OrderLimits, ServerConfig
from coinswarm.mcpserver.market import Market
from coinswarm.mcpserver.orders import OrderDesk, OrderRequest
from coinswarm.mcpserver.research import Reports, regime_at, run_backtest
from tests.fuzz.budget import DEADLINE_MS, examples, seen

pytestmark = pytest.mark.timeout(600)
SETTINGS = dict(deadline=DEADLINE_MS, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LIMITS = OrderLimits(symbols=("BTC/USDT", "ETH/USDT"), risk=RiskLimits(max_position=0.05, max_order_notional=2_000.0),
                     max_daily_notional=50_000.0)
T0 = 1_767_225_600_000
NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6),
                   st.sampled_from([0.0, 1e-9, 0.001, 0.01, 0.5, -0.001, True]), st.none(), st.text(max_size=4))


@pytest.fixture(scope="module")
def market() -> Market:
    return Market()


@pytest.fixture(scope="module")
def desk(tmp_path_factory, market):
    ledger = Ledger(f"sqlite:///{tmp_path_factory.mktemp('fuzz_mcp') / 'paper.db'}")
    ledger.migrate()
    clock = iter(range(T0, T0 + 10**9, 1_000))

    def mark(symbol):
        when, close = market.last_close(f"binance:{symbol}:1h")
        return int(when.value // 1_000_000), close

    yield OrderDesk(ledger, ServerConfig(limits=LIMITS), mark, lambda: next(clock))
    ledger.close()


def state(ledger: Ledger) -> tuple:
    report = ledger.report()
    return report["orders"], report["fills"], report["positions"], report["cash"]


PLAUSIBLE = st.builds(OrderRequest, st.sampled_from(LIMITS.symbols), st.sampled_from(["buy", "sell"]),
                      st.sampled_from([0.0001, 0.001, 0.004, 0.01, 0.02, 0.06, 1.0]),
                      st.one_of(st.none(), st.floats(1.0, 200_000.0)), st.one_of(st.none(), st.sampled_from("abc")))
ANYTHING = st.builds(OrderRequest,
                     st.one_of(st.sampled_from(["BTC/USDT", "DOGE/USDT", "btc/usdt", ""]), st.text(max_size=12)),
                     st.one_of(st.sampled_from(["buy", "sell"]), st.text(max_size=5)), NUMBER,
                     st.one_of(st.none(), NUMBER), st.one_of(st.none(), st.text(max_size=70)))


@settings(max_examples=examples(300), **SETTINGS)
@given(request=st.one_of(PLAUSIBLE, ANYTHING))
def test_an_order_is_booked_within_every_limit_or_refused_without_a_trace(desk, request):
    seen("mcp")
    before = state(desk.ledger)
    positions = {s: p.qty for s, p in desk.ledger.positions().items()}
    try:
        got = desk.place(request)
    except CoinswarmError:
        assert state(desk.ledger) == before
        return
    if got["duplicate"]:
        assert state(desk.ledger) == before
        return
    symbol, price = request.symbol, request.price
    assert got["status"] == "filled" and symbol in LIMITS.symbols
    signed = got["qty"] if got["side"] == Side.BUY else -got["qty"]
    held = positions.get(symbol, 0.0)
    reduction = abs(held + signed) < abs(held) and held * (held + signed) >= 0
    assert reduction or got["qty"] * (price if price is not None else got["mark"]) <= 2_000.0 + 1e-6
    assert reduction or abs(held + signed) <= 0.05 + 1e-9
    assert desk.day_notional(desk.clock()) <= 50_000.0 + 1e-6
    assert math.isfinite(got["avg_price"]) and got["avg_price"] > 0


@settings(max_examples=examples(60), **SETTINGS)
@given(data=st.one_of(st.sampled_from(["binance:BTC/USDT:1h", "binance:NOPE/USDT:1h", "/etc/passwd", "",
                                       "binance-perp:BTC/USDT:funding"]), st.text(max_size=30)),
       at=st.one_of(st.none(), st.sampled_from(["2020-01-01", "1990-01-01", "yesterday", "2100-01-01", "nan"]),
                    st.text(max_size=12)))
def test_get_regime_answers_or_says_what_is_wrong(market, data, at):
    seen("mcp")
    try:
        got = regime_at(market, data, at)
    except CoinswarmError:
        return
    assert got["volatility"] in ("low", "normal", "high") and "/" in got["cell"]


@settings(max_examples=examples(40), **SETTINGS)
@given(strategy=st.sampled_from(["sma_cross", "nope", "trend", ""]),
       params=st.one_of(st.none(), st.dictionaries(st.sampled_from(["fast", "slow", "x"]), NUMBER, max_size=3)),
       start=st.sampled_from([None, "2024-06-01", "2030-01-01", "garbage"]),
       fee=st.one_of(st.floats(0, 1000), st.floats(allow_nan=True)))
def test_run_backtest_answers_or_says_what_is_wrong(market, strategy, params, start, fee):
    seen("mcp")
    reports = Reports(5)
    try:
        got = run_backtest(market, reports, "binance:BTC/USDT:1h", strategy, params, start, "2024-12-31", fee, 0.0,
                           "next_open", 10_000.0)
    except CoinswarmError:
        assert reports.index() == []
        return
    assert got["report_id"] == "bt-1" and "sharpe" in got["metrics"]


def test_the_order_fuzz_booked_orders_and_refused_others(desk):
    """Runs after the order fuzz (file order): both outcomes were exercised, not only refusals."""
    assert len(desk.ledger.orders()) >= 5
