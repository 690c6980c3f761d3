"""Headline ingest speed: the news of the recorded RSS/NewsAPI fixtures (tests/fixtures), each
headline given 500 distinct URLs (2,000+ headlines per round), VADER-scored and written with
their sentiment records into a fresh Parquet store; and the same batch again (all duplicates).

Run: ``pytest benchmarks/test_ingest_alt_speed.py --benchmark-only -s``.
"""

from __future__ import annotations

import dataclasses
import tempfile

from coinswarm.adapters.sources.sentiment import sentiment_batch
from coinswarm.ingest.store import ParquetStore, write_records
from tests.unit.ingest.test_ingest_altstore import newsapi_news, rss_news

COPIES = 500


def headlines() -> list:
    base = rss_news() + newsapi_news()
    return [dataclasses.replace(r, values={**r.values, "url": f"{r.values['url']}?copy={i}"})
            for i in range(COPIES) for r in base]


def _score_and_write(store: ParquetStore, news: list) -> int:
    return write_records(store, news + sentiment_batch(news).records).rows_written


def test_headline_score_and_store_speed(benchmark):
    news = headlines()
    written = benchmark.pedantic(_score_and_write, setup=lambda: ((ParquetStore(tempfile.mkdtemp()), news), {}),
                                 rounds=5, iterations=1)
    assert written == 2 * len(news)
    rate = len(news) / benchmark.stats.stats.median
    print(f"\nheadlines scored (VADER) and stored with their sentiment, Parquet: {rate:,.0f} headlines/s "
          f"({len(news)} per round)")


def test_headline_rewrite_speed(benchmark):
    news = headlines()
    store = ParquetStore(tempfile.mkdtemp())
    _score_and_write(store, news)
    written = benchmark.pedantic(_score_and_write, args=(store, news), rounds=5, iterations=1)
    assert written == 0
    print(f"\nre-ingest of the same headlines (0 written): {len(news) / benchmark.stats.stats.median:,.0f} headlines/s")
