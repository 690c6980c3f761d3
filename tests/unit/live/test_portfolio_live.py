"""The portfolio committee (``Committee.default()`` of a walk-forward on several pairs) in the
daemon: a replay of spot + a perpetual with its funding equals the backtest fill for fill,
financed or not; funding and interest are booked as ledger cash flows; a stopped replay resumes
to exactly the uninterrupted book (real Binance candles and funding)."""

from __future__ import annotations

import asyncio

import pytest

import coinswarm as cs
from coinswarm.errors import ConfigError
from coinswarm.live.ledger import Ledger
from coinswarm.live.parity import compare
from coinswarm.live.replay import ReplaySpec, build, replay, symbol_of
from tests.helpers.live import Crash, book, crash_at, run_until

SOURCES = ["binance:BTC/USDT:1h", "binance:ETH/USDT:1h", "binance-perp:BTC/USDT:1h"]
START, END = "2021-01-01", "2021-05-31"  # 60 days of warm-up, then the spring 2021 funding spike


def _flows(db: str) -> list:
    ledger = Ledger(db)
    try:
        return ledger.cash_flows()
    finally:
        ledger.close()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("costs", [cs.Costs(fee_bps=10), cs.Costs(fee_bps=10, cash_rate=0.04, borrow_rate=0.10)],
                         ids=["cash-0", "financed"])
def test_replay_equals_the_backtest_with_funding(costs):
    report = compare(SOURCES, "portfolio", START, END, costs=costs)
    assert report.identical, report.first
    assert report.orders == report.fills == report.backtest_fills > 10


@pytest.mark.timeout(600)
def test_funding_and_interest_are_booked_and_a_stopped_replay_resumes_exactly(tmp_path):
    costs = cs.Costs(fee_bps=10, cash_rate=0.04)
    whole = ReplaySpec(SOURCES, "portfolio", f"sqlite:///{tmp_path / 'whole.db'}", start=START, end=END, costs=costs)
    asyncio.run(replay(whole))
    pieces = ReplaySpec(SOURCES, "portfolio", f"sqlite:///{tmp_path / 'pieces.db'}", start=START, end=END,
                        costs=costs)
    for n in (500, 2500, 40):
        asyncio.run(run_until(pieces, n))
    assert asyncio.run(replay(pieces))["resumed"]
    a, b = book(whole.db), book(pieces.db)
    assert a[0] == b[0] and a[1] == b[1] and any(o[1] == "BTC/USDT:USDT" for o in a[0])
    assert a[2]["positions"] == b[2]["positions"] and a[2]["cash"] == b[2]["cash"]
    flows = _flows(whole.db)
    assert flows == _flows(pieces.db)
    kinds = {f.kind for f in flows}
    assert kinds == {"funding", "interest"}
    funding = sum(f.amount for f in flows if f.kind == "funding")
    assert funding > 0  # the carry sleeve's short perp earned the spring-2021 funding


def test_perpetual_symbols_and_their_funding_sources():
    assert symbol_of("binance-perp:BTC/USDT:1h") == ("BTC/USDT:USDT", "binance-perp:BTC/USDT:1h")
    assert symbol_of("binance:BTC/USDT:1h")[0] == "BTC/USDT"


def test_a_perpetual_without_funding_is_refused(tmp_path):
    csv = tmp_path / "perp.csv"
    frame = cs.load_ohlcv("binance-perp:BTC/USDT:1h", start="2021-01-01", end="2021-01-03")
    frame.assign(timestamp=frame.index.as_unit("ms").asi8)[["timestamp", "open", "high", "low", "close", "volume"]] \
        .to_csv(csv, index=False)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    sources = ["binance:BTC/USDT:1h", f"BTC/USDT:USDT={csv}"]
    with pytest.raises(ConfigError, match=r"BTC/USDT:USDT .* needs its funding rates: give --funding"):
        build(ReplaySpec(sources, "portfolio", db))
    with pytest.raises(ConfigError, match="not perpetuals of this replay"):
        build(ReplaySpec(["binance:BTC/USDT:1h"], "trend", db, funding={"ETH/USDT:USDT": "x"}))
    with pytest.raises(ConfigError, match="not from Costs.funding"):
        build(ReplaySpec(SOURCES, "portfolio", db, costs=cs.Costs(funding={"BTC/USDT:USDT": "binance-perp:BTC/USDT"})))
    runner, _ = build(ReplaySpec(sources, "portfolio", db, funding={"BTC/USDT:USDT": "binance-perp:BTC/USDT:funding"}))
    runner.ledger.close()


def test_the_daemons_refuse_perpetuals_they_cannot_fund(tmp_path):
    from coinswarm.live.config import BrokerConfig, LiveConfig, ServerUrls, StrategyConfig
    from coinswarm.live.daemon import _run_paper, build_runner
    from coinswarm.live.funding import LiveFundingBook
    from coinswarm.live.venue import run_venue

    db = ServerUrls(db=f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ConfigError, match="no funding feed.*give it funding="):
        build_runner(LiveConfig(symbols=("BTC/USDT", "BTC/USDT:USDT"), servers=db))

    class Candles:  # a candle source without a funding feed
        name = "candles-only"

    class Funded(Candles):
        async def funding(self, symbol, since_ms, limit):
            return []

    config = LiveConfig(symbols=("BTC/USDT", "BTC/USDT:USDT"), servers=db, strategy=StrategyConfig("portfolio"))
    with pytest.raises(ConfigError, match="candles-only has no funding feed"):
        asyncio.run(_run_paper(config, None, Candles(), max_bars=1, sleep=None, stop=None))
    spotless = LiveConfig(symbols=("ETH/USDT", "BTC/USDT:USDT"), servers=db, strategy=StrategyConfig("portfolio"))
    with pytest.raises(ConfigError, match="perpetual BTC/USDT:USDT needs its spot BTC/USDT"):
        build_runner(spotless, funding=LiveFundingBook(Funded(), spotless.symbols))
    with pytest.raises(ConfigError, match="which the exchange daemon cannot trade .* the paper daemon"):
        asyncio.run(run_venue(LiveConfig(symbols=("BTC/USDT:USDT",), servers=db,
                                         broker=BrokerConfig(kind="binance", sandbox=True))))


@pytest.mark.timeout(600)
def test_parity_command_with_perpetuals_and_financing(capsys):
    from coinswarm.cli.main import main

    args = ["parity", *(x for s in SOURCES for x in ("--data", s)), "--strategy", "portfolio", "--start", START,
            "--end", "2021-04-30", "--fee-bps", "10", "--cash-rate", "0.04", "--borrow-rate", "0.1",
            "--funding", "BTC/USDT:USDT=binance-perp:BTC/USDT:funding"]
    assert main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("parity: ") and last.endswith(", 0 differences") and " 0 fills" not in last
    assert main([*args[:-1], "BTC/USDT=binance-perp:BTC/USDT:funding"]) == 2
    assert "expected PERP_SYMBOL=SOURCE" in capsys.readouterr().err


@pytest.mark.timeout(600)
@pytest.mark.parametrize("point", ["before_new", "after_new", "after_sent", "after_ack"])
def test_a_crash_at_a_write_ahead_point_resumes_to_the_same_book_and_cash_flows(tmp_path, monkeypatch, point):
    from coinswarm.live import faults

    costs = cs.Costs(fee_bps=10, cash_rate=0.04)
    end = "2021-04-15"
    whole = ReplaySpec(SOURCES, "portfolio", f"sqlite:///{tmp_path / 'whole.db'}", start=START, end=end, costs=costs)
    asyncio.run(replay(whole))
    crashed = ReplaySpec(SOURCES, "portfolio", f"sqlite:///{tmp_path / 'crash.db'}", start=START, end=end,
                         costs=costs)
    for k in (2, 5):
        monkeypatch.setattr(faults, "point", crash_at(point, k))
        with pytest.raises(Crash):
            asyncio.run(replay(crashed))
        monkeypatch.undo()
    assert asyncio.run(replay(crashed))["resumed"]
    a, b = book(whole.db), book(crashed.db)
    assert a[0] == b[0] and a[1] == b[1] and len(a[1]) > 5
    assert a[2]["positions"] == b[2]["positions"] and a[2]["cash"] == b[2]["cash"] and not b[2]["halted"]
    assert _flows(whole.db) == _flows(crashed.db) != []
