"""What the web sources share (:mod:`coinswarm.adapters.sources.base`): one ISO 8601 time check for
NewsAPI's ``publishedAt`` and X's ``created_at`` with each source's own message, and one copy of a
source's health. The records are hand-written API objects in the documented shapes."""

from __future__ import annotations

import re

import pytest

from coinswarm.adapters.sources.base import Health, RecordError, iso_time_ms
from coinswarm.adapters.sources.newsapi import article_record
from coinswarm.adapters.sources.twitter import TwitterSource, tweet_record


def test_news_and_tweet_times_take_iso_8601_with_a_zone_and_say_which_field_is_wrong():
    article = {"title": "BTC at 45k", "url": "https://example.com/a", "publishedAt": "2024-01-02T15:30:00+01:00"}
    assert article_record(article, 0, "bitcoin", "newsapi:bitcoin", 0).time_ms == 1_704_205_800_000
    with pytest.raises(RecordError, match=re.escape("article 4: publishedAt must be ISO 8601 with a time zone, "
                                                    "got '2024-01-02T15:30:00'")) as info:
        article_record({**article, "publishedAt": "2024-01-02T15:30:00"}, 4, "bitcoin", "newsapi:bitcoin", 0)
    assert (info.value.field, info.value.value) == ("publishedAt", "2024-01-02T15:30:00")
    tweet = {"id": "17", "text": "x", "created_at": None}
    with pytest.raises(RecordError, match=re.escape("created_at must be ISO 8601 with a time zone, got None")):
        tweet_record(tweet, "bitcoin", "x:bitcoin")
    assert iso_time_ms("1970-01-01T00:00:01Z", source="s", field="t") == 1000


def test_a_health_copy_is_equal_and_independent():
    health = Health("fred:DGS10", healthy=False, last_success_ms=5, lag_ms=7, errors=2, rejected=3, reconnects=1,
                    last_error="boom")
    copy = health.copy()
    assert copy == health and copy is not health
    copy.errors += 1
    assert health.errors == 2
    src = TwitterSource("bitcoin")
    src.health().errors += 5
    assert src.health().errors == 0
