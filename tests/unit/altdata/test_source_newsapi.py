"""NewsAPI source against recorded replies served on 127.0.0.1 (tests/fixtures/newsapi/)."""

from __future__ import annotations

import asyncio

import pytest

from coinswarm.adapters.sources.base import RecordError, Source, SourceError
from coinswarm.adapters.sources.newsapi import KEY_ENV, NewsApiSource
from coinswarm.adapters.sources.web import HttpClient, NotConfiguredError

JAN_2 = 1_704_153_600_000  # 2024-01-02T00:00:00Z
DAY = 86_400_000
PATH = "/v2/everything"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "news-key-456")


def _news(server, sleep=None, **kw) -> NewsApiSource:
    client = HttpClient("newsapi", sleep=sleep) if sleep else HttpClient("newsapi")
    return NewsApiSource("bitcoin", base_url=server.url, client=client, **kw)


def test_pages_skip_removed_and_deduplicate(fixture_server, key):
    fixture_server.route(PATH, (200, "newsapi/bitcoin_page1.json"), (200, "newsapi/bitcoin_page2.json"))
    src = _news(fixture_server, page_size=3)
    assert isinstance(src, Source)
    batch = asyncio.run(src.fetch(JAN_2, JAN_2 + DAY, now_ms=JAN_2 + 16 * 3_600_000))
    assert [r.values["url"].rsplit("/", 1)[1] for r in batch.records] == [
        "btc-45000", "lender-bankruptcy", "funding-negative", "ether-lags"]
    first = batch.records[0]
    assert (first.kind, first.source, first.key) == ("news", "newsapi:bitcoin", "bitcoin")
    assert first.time_ms == 1_704_209_400_000 and first.values["publisher"] == "Crypto Wire"
    assert batch.records[3].time_ms == 1_704_183_300_000  # "+00:00" offsets parse too
    assert not batch.rejected
    seen = fixture_server.requests
    assert [r.query["page"] for r in seen] == ["1", "2"]
    assert seen[0].headers["x-api-key"] == "news-key-456" and "apiKey" not in seen[0].query
    assert (seen[0].query["from"], seen[0].query["to"]) == ("2024-01-02T00:00:00Z", "2024-01-02T23:59:59Z")
    assert src.health().lag_ms == 30 * 60_000


def test_malformed_articles_rejected_by_field(fixture_server, key):
    fixture_server.route(PATH, (200, "newsapi/malformed_articles.json"))
    src = _news(fixture_server)
    batch = asyncio.run(src.fetch(JAN_2, JAN_2 + DAY, now_ms=0))
    assert [r.values["url"].rsplit("/", 1)[1] for r in batch.records] == ["btc-45000", "ether-lags"]
    assert all(isinstance(e, RecordError) and e.source == "newsapi:bitcoin" for e in batch.rejected)
    assert [e.field for e in batch.rejected] == ["title", "url", "publishedAt", "publishedAt", "article"]
    assert "'yesterday'" in str(batch.rejected[2])


def test_result_cap_ends_paging_and_keeps_articles(fixture_server, key):
    fixture_server.route(PATH, (200, "newsapi/bitcoin_page1.json"), (426, "newsapi/error_maximum_results.json"))
    batch = asyncio.run(_news(fixture_server, page_size=3).fetch(JAN_2, JAN_2 + DAY, now_ms=0))
    assert len(batch.records) == 2 and len(fixture_server.requests) == 2


@pytest.mark.parametrize(("status", "fixture", "match"), [
    (401, "newsapi/error_api_key_invalid.json", "apiKeyInvalid"),
    (426, "newsapi/error_maximum_results.json", "maximumResultsReached"),  # on page 1 it is an error
    (200, b'{"status": "ok", "totalResults": 3}', "no 'articles' list"),
    (200, b'{"status": "ok", "totalResults": -1, "articles": []}', "totalResults"),
    (200, b"<html>", "not JSON"),
])
def test_error_replies_are_source_errors(fixture_server, key, status, fixture, match):
    fixture_server.route(PATH, (status, fixture))
    src = _news(fixture_server)
    with pytest.raises(SourceError, match=match) as info:
        asyncio.run(src.fetch(JAN_2, JAN_2 + DAY, now_ms=0))
    assert "news-key-456" not in str(info.value)
    assert src.health().errors == 1


def test_rate_limited_reply_backs_off_exponentially_without_retry_after(fixture_server, key, no_sleep):
    fixture_server.route(PATH, (429, "newsapi/error_rate_limited.json"), (429, "newsapi/error_rate_limited.json"),
                         (200, "newsapi/bitcoin_page2.json"))
    batch = asyncio.run(_news(fixture_server, sleep=no_sleep).fetch(JAN_2, JAN_2 + DAY, now_ms=0))
    assert no_sleep.waits == [1.0, 2.0] and len(batch.records) == 3


def test_http_date_retry_after(fixture_server, key, no_sleep):
    later = {"Retry-After": "Tue, 02 Jan 2024 10:00:30 GMT"}
    fixture_server.route(PATH, (429, "newsapi/error_rate_limited.json", later), (200, "newsapi/bitcoin_page2.json"))
    client = HttpClient("newsapi", sleep=no_sleep, clock=lambda: 1_704_189_600.0)  # 10:00:00 GMT
    src = NewsApiSource("bitcoin", base_url=fixture_server.url, client=client)
    asyncio.run(src.fetch(JAN_2, JAN_2 + DAY, now_ms=0))
    assert no_sleep.waits == [30.0]


def test_missing_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(NotConfiguredError, match=KEY_ENV):
        NewsApiSource("bitcoin")


@pytest.mark.parametrize("kw", [{"query": ""}, {"query": "  "}, {"query": "x" * 501}, {"page_size": 0},
                                {"page_size": 101}, {"max_pages": 0}, {"base_url": "newsapi.org"}])
def test_bad_parameters_refused(key, kw):
    args = {"query": "bitcoin"} | kw
    with pytest.raises(NotConfiguredError):
        NewsApiSource(args.pop("query"), **args)
