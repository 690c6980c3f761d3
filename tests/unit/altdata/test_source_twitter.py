"""The X/Twitter adapter is an interface: fetch says clearly that it is not configured."""

from __future__ import annotations

import asyncio

import pytest

from coinswarm.adapters.sources.base import RecordError, Source
from coinswarm.adapters.sources.twitter import TwitterSource, tweet_record
from coinswarm.adapters.sources.web import NotConfiguredError
from coinswarm.errors import CoinswarmError


def test_fetch_raises_not_configured_and_health_says_why():
    src = TwitterSource("bitcoin lang:en")
    assert isinstance(src, Source)
    with pytest.raises(NotConfiguredError, match="interface only and is not configured") as info:
        asyncio.run(src.fetch(0, 1, now_ms=0))
    assert isinstance(info.value, CoinswarmError) and info.value.source == "x:bitcoin lang:en"
    health = src.health()
    assert not health.healthy and health.errors == 1 and "not configured" in health.last_error


def test_tweet_object_maps_to_a_news_record():
    tweet = {"id": "1742231234567890123", "text": "BTC just broke 45k ", "created_at": "2024-01-02T15:30:00.000Z",
             "author_id": "44196397", "lang": "en"}
    record = tweet_record(tweet, "bitcoin", "x:bitcoin", received_ms=5)
    assert (record.kind, record.key, record.time_ms) == ("news", "bitcoin", 1_704_209_400_000)
    assert record.values["url"] == "https://x.com/i/web/status/1742231234567890123"
    assert record.values["title"] == "BTC just broke 45k"


@pytest.mark.parametrize(("tweet", "field"), [
    ([], "tweet"), ({"id": 17, "text": "x", "created_at": "2024-01-02T00:00:00Z"}, "id"),
    ({"id": "17", "text": " ", "created_at": "2024-01-02T00:00:00Z"}, "text"),
    ({"id": "17", "text": "x", "created_at": "2024-01-02"}, "created_at"),
    ({"id": "17", "text": "x"}, "created_at"),
])
def test_malformed_tweets_name_the_field(tweet, field):
    with pytest.raises(RecordError) as info:
        tweet_record(tweet, "q", "x:q")
    assert info.value.field == field and info.value.source == "x:q"
