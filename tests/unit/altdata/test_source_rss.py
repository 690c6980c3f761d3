"""RSS/Atom source against recorded feeds served on 127.0.0.1 (tests/fixtures/rss/)."""

from __future__ import annotations

import asyncio

import pytest

from coinswarm.adapters.sources.base import RecordError, Source, SourceError
from coinswarm.adapters.sources.rss import RssSource
from coinswarm.adapters.sources.web import HttpClient, NotConfiguredError

JAN_2024 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
FAR = 2_000_000_000_000


def _source(server, path, sleep=None, **kw) -> RssSource:
    client = HttpClient("rss", sleep=sleep, **kw) if sleep else HttpClient("rss", **kw)
    return RssSource(server.url + path, name="rss:test", client=client)


def test_rss2_feed_becomes_news_records(fixture_server):
    fixture_server.route("/feed", (200, "rss/crypto_news_rss2.xml", {"Content-Type": "application/rss+xml"}))
    src = _source(fixture_server, "/feed")
    assert isinstance(src, Source)
    batch = asyncio.run(src.fetch(0, FAR, now_ms=1_704_210_000_000))
    assert [r.values["title"][:14] for r in batch.records] == ["Bitcoin climbs", "Ether lags as ", "Exchange hack ",
                                                               "Regulators pub"]
    first = batch.records[0]
    assert (first.kind, first.source, first.key) == ("news", "rss:test", fixture_server.url + "/feed")
    assert first.time_ms == 1_704_209_400_000  # Tue, 02 Jan 2024 15:30:00 +0000
    assert first.values["url"] == "https://news.example.com/markets/2024/01/02/bitcoin-climbs-above-45000"
    assert first.values["feed"] == "Crypto Wire: Markets"
    assert batch.records[2].time_ms == 1_704_167_100_000  # 22:45 -0500 is 03:45 UTC next day
    assert first.received_ms == 1_704_210_000_000
    health = src.health()
    assert health.healthy and health.last_success_ms == 1_704_210_000_000 and health.lag_ms == 600_000
    assert fixture_server.requests[0].headers["user-agent"].startswith("coinswarm-rss")


def test_atom_feed_uses_updated_when_published_is_absent(fixture_server):
    fixture_server.route("/atom", (200, "rss/crypto_atom.xml"))
    batch = asyncio.run(_source(fixture_server, "/atom").fetch(0, FAR, now_ms=0))
    assert [r.time_ms for r in batch.records] == [1_704_267_900_000, 1_704_214_800_000]


def test_window_filters_by_event_time(fixture_server):
    fixture_server.route("/feed", (200, "rss/crypto_news_rss2.xml"))
    batch = asyncio.run(_source(fixture_server, "/feed").fetch(JAN_2024, 1_704_200_000_000, now_ms=0))
    assert [r.time_ms for r in batch.records] == [1_704_197_400_000, 1_704_167_100_000]


def test_malformed_entries_are_rejected_by_field_and_good_ones_kept(fixture_server):
    fixture_server.route("/broken", (200, "rss/malformed_entries_rss2.xml"))
    src = _source(fixture_server, "/broken")
    batch = asyncio.run(src.fetch(0, FAR, now_ms=0))
    assert [r.values["url"].rsplit("/", 1)[1] for r in batch.records] == ["good-1", "good-2"]
    assert all(isinstance(e, RecordError) for e in batch.rejected)
    assert [(e.source, e.field) for e in batch.rejected] == [("rss:test", "title"), ("rss:test", "link"),
                                                             ("rss:test", "published")]
    assert "entry 3" in str(batch.rejected[2]) and "sometime last week" in str(batch.rejected[2])
    assert src.health().rejected == 3 and src.health().healthy


def test_a_body_that_is_no_feed_is_a_source_error(fixture_server):
    fixture_server.route("/html", (200, "rss/not_a_feed.html"))
    src = _source(fixture_server, "/html")
    with pytest.raises(SourceError, match="not an RSS/Atom feed"):
        asyncio.run(src.fetch(0, FAR, now_ms=0))
    assert not src.health().healthy and src.health().errors == 1


def test_http_error_status_is_a_source_error(fixture_server):
    fixture_server.route("/gone", (410, b"gone"))
    with pytest.raises(SourceError, match="HTTP 410"):
        asyncio.run(_source(fixture_server, "/gone").fetch(0, FAR, now_ms=0))


def test_429_waits_retry_after_then_succeeds(fixture_server, no_sleep):
    fixture_server.route("/feed", (429, b"slow down", {"Retry-After": "7"}), (200, "rss/crypto_atom.xml"))
    batch = asyncio.run(_source(fixture_server, "/feed", sleep=no_sleep).fetch(0, FAR, now_ms=0))
    assert len(batch.records) == 2 and no_sleep.waits == [7.0] and len(fixture_server.requests) == 2


def test_429_forever_gives_up_with_retry_after(fixture_server, no_sleep):
    fixture_server.route("/feed", (429, b"slow down"))
    src = _source(fixture_server, "/feed", sleep=no_sleep, max_retries=2, backoff_s=0.5)
    with pytest.raises(SourceError) as info:
        asyncio.run(src.fetch(0, FAR, now_ms=0))
    assert no_sleep.waits == [0.5, 1.0] and info.value.retry_after_s == 2.0
    assert len(fixture_server.requests) == 3


def test_unreachable_host_is_a_source_error():
    from coinswarm.adapters.servers import free_port

    src = RssSource(f"http://127.0.0.1:{free_port()}/feed", client=HttpClient("rss", timeout_s=2.0))
    with pytest.raises(SourceError, match="failed"):
        asyncio.run(src.fetch(0, FAR, now_ms=0))


@pytest.mark.parametrize("url", ["ftp://example.com/feed", "example.com/feed", ""])
def test_bad_feed_url_is_refused_at_construction(url):
    with pytest.raises(NotConfiguredError, match="absolute http"):
        RssSource(url)


def test_an_oversized_reply_is_refused(fixture_server, monkeypatch):
    from coinswarm.adapters.sources import web

    monkeypatch.setattr(web, "MAX_BODY", 1000)
    fixture_server.route("/big", (200, b"<rss>" + b" " * 5000))
    with pytest.raises(SourceError, match="larger than 1,000 bytes"):
        asyncio.run(_source(fixture_server, "/big").fetch(0, FAR, now_ms=0))


def test_a_given_client_is_copied_under_the_source_name(fixture_server):
    shared = HttpClient("shared")
    src = RssSource(fixture_server.url + "/x", name="rss:mine", client=shared)
    assert src.client.source == "rss:mine" and shared.source == "shared"
