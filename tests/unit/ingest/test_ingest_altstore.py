"""Macro, news and sentiment records in the Parquet/DuckDB store (records parsed from the recorded
FRED/NewsAPI/RSS fixtures of tests/fixtures): idempotent by (source, series, time), by URL and by
(model, URL); malformed rows rejected with a typed error naming the source and the field, the
good rows kept; DuckDB views; group filters."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow as pa
import pytest

from coinswarm.adapters.sources.base import Record, RecordError
from coinswarm.adapters.sources.fred import observation_record
from coinswarm.adapters.sources.newsapi import article_record
from coinswarm.adapters.sources.rss import parse_feed
from coinswarm.adapters.sources.sentiment import sentiment_batch
from coinswarm.errors import ConfigError
from coinswarm.ingest.schema import records_to_table
from coinswarm.ingest.store import ParquetStore, write_records

pytestmark = pytest.mark.timeout(60)
FIX = Path(__file__).resolve().parents[2] / "fixtures"


def macro() -> list[Record]:
    out = []
    for page in ("dgs10_page1.json", "dgs10_page2.json"):
        body = json.loads((FIX / "fred" / page).read_text())
        recs = (observation_record(o, i, "DGS10", "fred:DGS10", body.get("units"), 7) for i, o in
                enumerate(body["observations"]))
        out += [r for r in recs if r is not None]
    return out


def rss_news() -> list[Record]:
    return parse_feed((FIX / "rss" / "crypto_news_rss2.xml").read_bytes(), "https://feeds.example.com/rss",
                      "rss:feeds.example.com/rss", received_ms=9).records


def newsapi_news() -> list[Record]:
    body = json.loads((FIX / "newsapi" / "bitcoin_page1.json").read_text())
    recs = (article_record(a, i, "bitcoin", "newsapi:bitcoin", 9) for i, a in enumerate(body["articles"]))
    return [r for r in recs if r is not None]


def test_macro_news_sentiment_are_stored_once(tmp_path):
    store = ParquetStore(tmp_path)
    news = rss_news() + newsapi_news()
    records = macro() + news + sentiment_batch(news, 11).records
    first = write_records(store, records)
    assert first.rejected == [] and first.rows_written == len(records) > 15
    assert store.count("macro", "fred", "DGS10") == len(macro()) and store.count("news") == len(news)
    assert store.count("sentiment", "vader-3.3") == len(news)
    again = write_records(ParquetStore(tmp_path), records)  # a new process: keys read from the files
    assert (again.rows_in, again.rows_written, again.duplicates) == (len(records), 0, len(records))
    assert store.last_time("macro", "fred", "DGS10") == max(r.time_ms for r in macro())
    assert list(store.keys("macro", "fred", "DGS10")) == sorted(r.time_ms for r in macro())
    df = store.query("SELECT n.url, n.title, s.score FROM news n JOIN sentiment s USING (url) ORDER BY s.score")
    assert len(df) == len(news) and -1.0 <= df.score.min() < 0 < df.score.max() <= 1.0
    assert "hack" in df.title.iloc[0].lower()  # the most negative headline
    obs = store.query("SELECT series, value, units FROM macro ORDER BY time_ms LIMIT 1").iloc[0]
    assert (obs.series, obs.units) == ("DGS10", "lin") and 3.0 < obs.value < 5.0


def test_a_url_is_one_headline_whatever_its_source(tmp_path):
    store = ParquetStore(tmp_path)
    one = rss_news()[0]
    twin = Record("news", "newsapi:bitcoin", "bitcoin", one.time_ms,
                  {"title": one.values["title"] + " (syndicated)", "url": one.values["url"]}, 5)
    result = write_records(store, [one, twin])
    assert (result.rows_written, result.duplicates) == (1, 1)
    assert store.read("news").column("source").to_pylist() == ["rss:feeds.example.com/rss"]  # the first wins


def test_malformed_rows_are_named_and_the_good_ones_kept(tmp_path):
    store = ParquetStore(tmp_path)
    good = rss_news()[:2]
    bad = [Record("macro", "fred:DGS10", "DGS10", 1_704_153_600_000, {"value": float("inf")}),
           Record("news", "rss:x", "https://x.example/rss", 1_704_153_600_000, {"title": "t", "url": "ftp://x/y"}),
           Record("news", "rss:x", "https://x.example/rss", 1_704_153_600_000, {"title": None, "url": "https://x.example/a"}),
           Record("sentiment", "vader", "k", 1_704_153_600_000, {"score": 0.5, "url": "https://x.example/b"}),
           Record("macro", "fred:M2SL", "M2SL", 2**63, {"value": 1.0})]  # beyond int64 (found by the fuzz)
    result = write_records(store, good + bad)
    assert result.rows_written == 2 and store.count("news") == 2
    named = sorted((e.source, e.field) for e in result.rejected)
    assert named == [("fred:DGS10", "value"), ("fred:M2SL", "time_ms"), ("rss:x", "title"), ("rss:x", "url"),
                     ("vader", "title")]
    assert all(isinstance(e, RecordError) for e in result.rejected)


def test_table_checks_of_sentiment_and_macro(tmp_path):
    store = ParquetStore(tmp_path)
    table, rejected = records_to_table("sentiment", sentiment_batch(rss_news()).records)
    assert rejected == [] and table.num_rows == 4
    scores = table.column("score").to_pylist()
    table = table.set_column(table.schema.get_field_index("score"), "score", pa.array([1.5] + scores[1:]))
    result = store.write_table("sentiment", table, "vader")
    assert result.rows_written == 3 and [e.field for e in result.rejected] == ["score"]
    assert "in [-1, 1]" in str(result.rejected[0])
    empty_series, _ = records_to_table("macro", macro()[:1])
    empty_series = empty_series.set_column(1, "series", pa.array([""]))
    result = store.write_table("macro", empty_series, "fred:?")
    assert result.rows_written == 0 and result.rejected[0].field == "series"


def test_group_filters_are_checked(tmp_path):
    store = ParquetStore(tmp_path)
    write_records(store, macro() + rss_news())
    assert store.count("macro", "fred") == store.count("macro") and store.count("macro", "fred", "CPIAUCSL") == 0
    with pytest.raises(ConfigError, match="grouped by"):
        store.count("news", "rss:x")
    with pytest.raises(ConfigError, match="valid"):
        store.count("tweets")


def test_a_group_name_that_is_no_folder_name_is_rejected_before_any_write(tmp_path):
    store = ParquetStore(tmp_path)
    good = macro()[:2]
    odd = [dataclasses.replace(good[0], key="https://feed.example/rss"), dataclasses.replace(good[0], key=".hidden")]
    result = write_records(store, good + odd)  # found by tests/fuzz/test_fuzz_ingest.py
    assert result.rows_written == 2 and [e.field for e in result.rejected] == ["series", "series"]
    assert store.count("macro") == 2
