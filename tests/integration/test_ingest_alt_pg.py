"""Macro, news and sentiment in the PostgreSQL store (COPY) on a real server, and the news
ingestors' headline index on pgvector and on a Redis 8 vector set: idempotent, typed errors,
the same rows as the Parquet store."""

from __future__ import annotations

import asyncio

import pytest

from coinswarm.adapters.sources.base import Record
from coinswarm.adapters.sources.embeddings import HashingEmbedder
from coinswarm.adapters.sources.rss import RssSource
from coinswarm.adapters.sources.sentiment import sentiment_batch
from coinswarm.errors import ConfigError
from coinswarm.ingest.altsources import HeadlineIndex, Polled
from coinswarm.ingest.store import ParquetStore, open_store, write_records
from tests.fixtures.http_server import fixture_server as _fixture_server
from tests.unit.ingest.test_ingest_altstore import macro, newsapi_news, rss_news

fixture_server = _fixture_server  # the recorded-reply server on 127.0.0.1 (a pytest fixture)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_pg_stores_macro_news_sentiment_once(postgres_url, tmp_path):
    news = rss_news() + newsapi_news()
    quoted = Record("news", "rss:q", "https://q.example/rss", 1_704_153_600_000,
                    {"title": 'Bitcoin, "the king",\nreturns', "url": "https://q.example/a?x=1,2", "summary": ""})
    records = macro() + news + [quoted] + sentiment_batch(news + [quoted]).records
    pg = open_store(postgres_url)
    try:
        first = write_records(pg, records)
        assert first.rejected == [] and first.rows_written == len(records)
        second = write_records(pg, records)
        assert (second.rows_written, second.duplicates) == (0, len(records))
        assert pg.count("macro", "fred", "DGS10") == len(macro()) and pg.count("news") == len(news) + 1
        assert pg.count("sentiment", "vader-3.3") == len(news) + 1 and pg.count("macro", "fred", "M2SL") == 0
        assert pg.last_time("macro", "fred", "DGS10") == max(r.time_ms for r in macro())
        parquet = ParquetStore(tmp_path)
        write_records(parquet, records)
        assert sorted(pg.keys("news", None, None)) == sorted(parquet.keys("news", None, None))
        with pg._conn.cursor() as cur:
            cur.execute("SELECT title, summary FROM ingest_news WHERE url = %s", ("https://q.example/a?x=1,2",))
            assert cur.fetchone() == ('Bitcoin, "the king",\nreturns', "")
        bad = Record("macro", "fred:DGS10", "DGS10", 1_704_153_600_000, {"value": "n/a"})
        result = write_records(pg, [bad, *macro()[:1]])
        assert result.rows_written == 0 and [(e.source, e.field) for e in result.rejected] == [("fred:DGS10", "value")]
        with pytest.raises(ConfigError, match="grouped by"):
            pg.count("news", "rss:q")
    finally:
        pg.close()


@pytest.mark.parametrize("server", ["pg", "redis"])
def test_news_ingestor_indexes_headlines_once(server, postgres_url, redis_server, fixture_server):
    fixture_server.route("/rss.xml", (200, "rss/crypto_news_rss2.xml"))
    url = postgres_url if server == "pg" else redis_server[0]
    index = HeadlineIndex(url, "hashing")
    source = Polled(RssSource(fixture_server.url + "/rss.xml", name="rss:test"), sentiment=True, index=index)

    async def twice():
        a = await source.fetch(0, 2_000_000_000_000, 1_704_300_000_000)
        b = await source.fetch(0, 2_000_000_000_000, 1_704_300_000_000)
        return a, b

    try:
        first, second = asyncio.run(twice())
        assert [r.kind for r in first.records] == ["news"] * 4 + ["sentiment"] * 4 and first.rejected == []
        assert index.inserted == 4 and len(second.records) == 8  # the re-run adds no vector
        hits = index._store.search(HashingEmbedder().embed(["Exchange hack drains wallets"])[0], k=2)
        assert "hack" in hits[0].title.lower()
        assert source.health().lag_ms == 1_704_300_000_000 - max(r.time_ms for r in first.records)
    finally:
        if server == "redis":
            index._store.client.delete(index._store.key)
        asyncio.run(index.close())


def test_an_unreachable_index_fails_the_fetch_with_a_source_error(fixture_server):
    import socket

    from coinswarm.adapters.sources.base import SourceError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fixture_server.route("/rss.xml", (200, "rss/crypto_news_rss2.xml"))
    source = Polled(RssSource(fixture_server.url + "/rss.xml", name="rss:test"),
                    index=HeadlineIndex(f"redis://user:hunter2@127.0.0.1:{port}/0"))
    with pytest.raises(SourceError, match=f"headline index redis://127.0.0.1:{port}/0: ConnectionError"):
        asyncio.run(source.fetch(0, 2_000_000_000_000, 1_704_300_000_000))
    with pytest.raises(SourceError) as caught:  # retried on the next poll; the password is never shown
        asyncio.run(source.fetch(0, 2_000_000_000_000, 1_704_300_000_000))
    assert "hunter2" not in str(caught.value)
