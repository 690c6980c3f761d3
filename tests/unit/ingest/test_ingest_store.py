"""The Parquet store and the trades import on the real ticks of datasets/ticks: idempotent
re-imports, typed errors naming source and field with the good rows kept, gap reports,
DuckDB queries, forming candles refused, symbol normalisation."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pytest

from coinswarm.adapters.sources.base import Record, RecordError
from coinswarm.adapters.sources.symbols import canonical_symbol, venue_symbol
from coinswarm.data.catalog import data_roots
from coinswarm.errors import ConfigError, SchemaError
from coinswarm.ingest.imports import import_trades, infer_market
from coinswarm.ingest.store import ParquetStore, gap_report, open_store, write_records

pytestmark = pytest.mark.timeout(60)


def tick_file(name: str) -> Path:
    for root in data_roots():
        path = Path(root) / "ticks" / name
        if path.exists():
            return path
    pytest.fail(f"ticks/{name} not found under {data_roots()}")


BTC = "binance_BTCUSDT_trades_2021-01-08T0000.csv.gz"
XRP = "binance_XRPETH_aggtrades_2019-10-11_2019-10-13.csv.gz"
KRAKEN = "kraken_BCHEUR_trades_2023-01-01_2023-01-02.csv.gz"


@pytest.mark.parametrize("text, perp, expected", [
    ("BTC/USDT", False, "BTC/USDT"), ("BTC-USD", False, "BTC/USD"), ("BTCUSDT", False, "BTC/USDT"),
    ("btc_usdt", False, "BTC/USDT"), ("XBTUSD", False, "BTC/USD"), ("ETHBTC", False, "ETH/BTC"),
    ("BTCUSDT", True, "BTC/USDT:USDT"), ("BTC/USDT:USDT", False, "BTC/USDT:USDT")])
def test_symbols_normalise_to_one_form(text, perp, expected):
    assert canonical_symbol(text, perpetual=perp) == expected


def test_symbol_errors_and_venue_ids():
    for bad in ("", "BTC", "BTC/USDT/X", "BT C/USD", 42):
        with pytest.raises(ConfigError):
            canonical_symbol(bad)
    assert venue_symbol("BTC-USD", "coinbase") == "BTC-USD"
    assert venue_symbol("BTC/USDT", "binance") == "BTCUSDT"


def test_market_inferred_from_dataset_names():
    assert infer_market(BTC) == ("binance", "BTC/USDT")
    assert infer_market(XRP) == ("binance", "XRP/ETH")
    assert infer_market(KRAKEN) == ("kraken", "BCH/EUR")
    assert infer_market("binance_futures_BTCUSDT_trades_x.csv") == ("binance-perp", "BTC/USDT:USDT")
    with pytest.raises(ConfigError, match="--exchange"):
        infer_market("ETHUSDT_trades_2023-02-02T0920.csv.gz")
    assert infer_market("ETHUSDT_trades_2023-02-02T0920.csv.gz", exchange="binance") == ("binance", "ETH/USDT")


@pytest.mark.parametrize("name, rows", [(BTC, 2001), (XRP, 12477), (KRAKEN, 634)])
def test_import_twice_writes_nothing_the_second_time(tmp_path, name, rows):
    store = open_store(f"parquet:{tmp_path}")
    first = import_trades(tick_file(name), store)
    assert (first.rows_read, first.rows_written, first.store_rows, first.rows_rejected) == (rows, rows, rows, 0)
    second = import_trades(tick_file(name), ParquetStore(tmp_path))  # a new process: keys re-read from files
    assert (second.rows_read, second.rows_written, second.store_rows) == (rows, 0, rows)
    assert first.ticks_per_s > 0


def test_stored_ticks_equal_the_file(tmp_path):
    import pandas as pd

    store = ParquetStore(tmp_path)
    import_trades(tick_file(BTC), store)
    src = pd.read_csv(tick_file(BTC))
    got = store.query("SELECT time_ms, trade_id, side, price, amount FROM trades ORDER BY time_ms, trade_id")
    assert got["time_ms"].tolist() == src["timestamp"].tolist()
    assert got["trade_id"].astype(int).tolist() == src["trade_id"].tolist()
    assert got["price"].tolist() == src["price"].tolist() and got["side"].tolist() == src["side"].tolist()
    assert gap_report(store, "trade", "binance", "BTCUSDT") == []  # contiguous ids (README)


def test_malformed_rows_are_named_and_good_rows_kept(tmp_path):
    lines = gzip.open(tick_file(XRP), "rt").read().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[3], "abc", 1)  # price of data row 5
    lines[9] = ",".join(lines[9].split(",")[:4] + ["-3.0"] + lines[9].split(",")[5:])  # amount
    lines[20] = ",".join(lines[20].split(",")[:3])  # a ragged row: 3 fields of 6
    bad = tmp_path / "binance_XRPETH_trades_bad.csv"
    bad.write_text("\n".join(lines[:101]) + "\n")
    store = ParquetStore(tmp_path / "store")
    report = import_trades(bad, store)
    assert (report.rows_read, report.rows_written, report.rows_rejected) == (100, 97, 3)
    assert "field 'row'" in report.errors[0] and "3 found" in report.errors[0]
    assert "field 'price'" in report.errors[1] and str(bad) in report.errors[1]
    assert "field 'amount'" in report.errors[2]
    assert store.count("trade") == 97


def test_missing_columns_and_bad_urls_are_typed(tmp_path):
    f = tmp_path / "binance_BTCUSDT_trades_x.csv"
    f.write_text("time,px\n1,2\n")
    with pytest.raises(SchemaError, match="lack"):
        import_trades(f, ParquetStore(tmp_path / "s"))
    with pytest.raises(ConfigError):
        open_store("mongodb://x")
    with pytest.raises(ConfigError, match="no such file"):
        import_trades(tmp_path / "nope.csv", ParquetStore(tmp_path / "s"))


def candle(t: int, close: float = 10.0, *, closed: bool = True, source: str = "binance:candles:BTC/USDT") -> Record:
    return Record("candle", source, "BTC/USDT", t, {"open": 10.0, "high": 11.0, "low": 9.0, "close": close,
                                                     "volume": 1.0, "timeframe": "1h", "closed": closed})


def test_records_candles_idempotent_forming_refused_gaps(tmp_path):
    store = ParquetStore(tmp_path)
    h = 3_600_000
    t0 = 1_700_000_000_000 // h * h
    recs = [candle(t0 + i * h) for i in (0, 1, 2, 5, 6)] + [candle(t0 + 7 * h, closed=False)]
    recs.append(candle(t0 + 8 * h, close=float("nan")))
    result = write_records(store, recs)
    assert result.rows_written == 5 and len(result.rejected) == 2
    assert {e.field for e in result.rejected} == {"closed", "close"}
    assert all(isinstance(e, RecordError) and e.source == "binance:candles:BTC/USDT" for e in result.rejected)
    assert write_records(store, recs[:5]).rows_written == 0
    gaps = gap_report(store, "candle", "binance", "BTC/USDT", "1h")
    assert [(g.after, g.before, g.missing) for g in gaps] == [(t0 + 2 * h, t0 + 5 * h, 2)]
    assert store.last_time("candle", "binance", "BTC/USDT", "1h") == t0 + 6 * h


def test_mixed_batch_splits_by_exchange_symbol_and_day(tmp_path):
    store = ParquetStore(tmp_path)
    day = 86_400_000
    table = pa.table({"exchange": ["binance", "coinbase", "binance"], "symbol": ["BTC/USDT", "BTC/USD", "BTC/USDT"],
                      "time_ms": [day * 19000, day * 19000, day * 19001], "trade_id": ["1", "1", "2"],
                      "side": ["buy", None, "sell"], "price": [1.0, 2.0, 3.0], "amount": [1.0, 1.0, 1.0],
                      "received_ms": [0, 0, 0]})
    assert store.write_table("trade", table, "test").rows_written == 3
    assert store.count("trade", "binance") == 2 and store.count("trade", "coinbase", "BTC-USD") == 1
    assert store.write_table("trade", table, "test").rows_written == 0
    assert store.compact("trade") == 0
    store.write_table("trade", table.slice(0, 1).set_column(3, "trade_id", pa.array(["9"])), "test")
    assert store.compact("trade") == 1 and store.count("trade") == 4


def test_a_missing_timestamp_is_a_named_rejection(tmp_path):
    path = tmp_path / "binance_BTCUSDT_trades_x.csv"
    path.write_text("timestamp,price,amount\n,1,1\n1700000000000,2,1\n")  # found by tests/fuzz/test_fuzz_ingest.py
    report = import_trades(path, ParquetStore(tmp_path / "store"))
    assert (report.rows_written, report.rows_rejected) == (1, 1) and "time_ms" in report.errors[0]
