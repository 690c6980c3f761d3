"""Fuzz ingestion (issue 20): random records of every stored kind (wrong types, NaN, negative,
missing fields, forming candles, bad symbols) written to a Parquet store, and random trades CSV
text imported. Each case: the good records are stored, every other one is a RecordError naming
its source and field, the counts add up, a second write stores nothing — or a CoinswarmError;
never another exception."""

from __future__ import annotations

import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinswarm.adapters.sources.base import Record, RecordError
from coinswarm.errors import CoinswarmError
from coinswarm.ingest.imports import import_trades
from coinswarm.ingest.store import ParquetStore, write_records
from tests.fuzz.budget import DEADLINE_MS, examples, seen

pytestmark = pytest.mark.timeout(600)
T0 = 1_700_000_000_000
junk = st.one_of(st.none(), st.booleans(), st.text(max_size=6), st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(-10**20, 10**20), st.lists(st.integers(), max_size=2))
num = st.one_of(st.floats(0.001, 1e6), junk)


@st.composite
def records(draw) -> Record:
    kind = draw(st.sampled_from(["trade", "candle", "funding", "book", "macro", "bogus"]))
    key = draw(st.sampled_from(["BTC/USDT", "BTCUSDT", "eth-usd", "BTC", "", "A/B/C"]))
    t = draw(st.one_of(st.integers(T0, T0 + 10**7).map(lambda x: x // 60_000 * 60_000), junk))
    values = {}
    if kind == "trade":
        values = {"trade_id": draw(st.one_of(st.integers(1, 50).map(str), junk)),
                  "side": draw(st.sampled_from(["buy", "sell", None, "hold"])), "price": draw(num),
                  "amount": draw(num)}
    elif kind == "candle":
        o = draw(st.floats(1, 100))
        values = {"open": o, "high": draw(st.one_of(st.just(o * 1.1), num)),
                  "low": draw(st.one_of(st.just(o * 0.9), num)), "close": o, "volume": draw(num),
                  "timeframe": draw(st.sampled_from(["1m", "1M", "x", 5])),
                  "closed": draw(st.sampled_from([True, False, None]))}
    elif kind == "funding":
        values = {"rate": draw(num)}
    elif kind == "book":
        values = {"bids": draw(st.one_of(st.just([[1.0, 2.0]]), junk)), "asks": draw(st.one_of(st.just([]), junk))}
    if draw(st.booleans()) and values:
        values.pop(draw(st.sampled_from(sorted(values))))
    return Record(kind, f"fuzz:{kind}:{key}", key, t, values)


@settings(max_examples=examples(300), deadline=DEADLINE_MS, suppress_health_check=list(HealthCheck))
@given(st.lists(records(), max_size=25))
def test_fuzz_write_records(batch):
    seen("ingest")
    with tempfile.TemporaryDirectory() as d:
        _, result = written(d, batch, ("trade", "candle", "funding", "book"))
        if result is not None:
            assert result.rows_written + len(result.rejected) <= len(batch)


def written(folder: str, batch: list[Record], kinds: tuple[str, ...]):
    """Write ``batch`` to a Parquet store in ``folder``: ``(store, None)`` after a CoinswarmError (then
    nothing of ``kinds`` is stored), else ``(store, result)`` once every record is stored or rejected
    with a RecordError naming its source and field, the stored rows of ``kinds`` are the rows written,
    and a second write stores nothing and rejects the same records."""
    store = ParquetStore(folder)
    try:
        result = write_records(store, batch)
    except CoinswarmError:
        assert sum(store.count(k) for k in kinds) == 0
        return store, None
    assert result.rows_in == len(batch) and result.duplicates >= 0
    assert all(isinstance(e, RecordError) and e.source.startswith("fuzz:") and e.field for e in result.rejected)
    assert sum(store.count(k) for k in kinds) == result.rows_written
    again = write_records(ParquetStore(folder), batch)
    assert again.rows_written == 0 and len(again.rejected) == len(result.rejected)
    return store, result


cells = st.one_of(st.integers(-5, 2 * 10**12).map(str), st.sampled_from(["", "x", "nan", "-1", "1e400", "buy", "sell"]))


@settings(max_examples=examples(150), deadline=DEADLINE_MS, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["timestamp,trade_id,side,price,amount", "timestamp,price,amount", "time,px", ""]),
       st.lists(st.lists(cells, min_size=1, max_size=6), max_size=20))
def test_fuzz_import_trades_csv(header, rows):
    seen("ingest")
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/binance_BTCUSDT_trades_fuzz.csv"
        with open(path, "w") as fh:
            fh.write("\n".join([header, *(",".join(r) for r in rows)]) + "\n")
        store = ParquetStore(f"{d}/store")
        try:
            report = import_trades(path, store)
        except CoinswarmError:
            assert store.count("trade") == 0
            return
        assert report.rows_written + report.rows_rejected <= report.rows_read
        assert report.store_rows == store.count("trade") == report.rows_written
        assert import_trades(path, store).rows_written == 0


urls = st.one_of(st.sampled_from(["https://n.example.com/a", "https://n.example.com/b", "http://x.example/c?q=1,2"]),
                 st.text(max_size=12), junk)


@st.composite
def alt_records(draw) -> Record:
    kind = draw(st.sampled_from(["macro", "news", "sentiment"]))
    key = draw(st.sampled_from(["DGS10", "bitcoin", "https://feed.example/rss", "", "a/b"]))
    t = draw(st.one_of(st.integers(T0, T0 + 10**9), junk))
    if kind == "macro":
        values = {"value": draw(st.one_of(st.floats(-1e6, 1e6), junk)), "units": draw(st.one_of(st.text(max_size=4),
                                                                                                 junk))}
    else:
        values = {"title": draw(st.one_of(st.text(max_size=30), junk)), "url": draw(urls),
                  "summary": draw(st.one_of(st.text(max_size=20), junk))}
        if kind == "sentiment":
            values.update({k: draw(st.one_of(st.floats(-1.5, 1.5), junk)) for k in ("score", "pos", "neu", "neg")})
    if draw(st.booleans()):
        values.pop(draw(st.sampled_from(sorted(values))))
    return Record(kind, f"fuzz:{kind}:{key}", key, t, values)


@settings(max_examples=examples(300), deadline=DEADLINE_MS, suppress_health_check=list(HealthCheck))
@given(st.lists(alt_records(), max_size=25))
def test_fuzz_write_alt_records(batch):
    seen("ingest")
    with tempfile.TemporaryDirectory() as d:
        store, result = written(d, batch, ("macro", "news", "sentiment"))
        if result is not None:
            news = store.read("news")
            assert len(set(news.column("url").to_pylist())) == news.num_rows  # a URL is stored once
