"""VADER per-headline sentiment on the recorded feeds' headlines."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinswarm.adapters.sources.base import Record, RecordError
from coinswarm.adapters.sources.rss import parse_feed
from coinswarm.adapters.sources.sentiment import score_headline, sentiment_batch, sentiment_record

FIXTURES = Path(__file__).parents[2] / "fixtures"


def _news(title, url="https://news.example.com/a", t=1_000):
    return Record("news", "rss:test", "feed", t, {"title": title, "url": url})


def test_polarity_follows_the_words():
    good = score_headline("Bitcoin surges to a record high as investors cheer ETF approval")
    bad = score_headline("Exchange hack: investors lose millions in devastating theft")
    flat = score_headline("Bitcoin traded at 42,000 on Tuesday")
    assert good["compound"] > 0.5 and bad["compound"] < -0.5 and flat["compound"] == 0.0
    assert all(abs(sum(s[k] for k in ("pos", "neu", "neg")) - 1) < 0.01 for s in (good, bad, flat))


def test_feed_headlines_become_sentiment_records():
    feed = parse_feed((FIXTURES / "rss" / "crypto_news_rss2.xml").read_bytes(), "https://f/rss", "rss:f")
    batch = sentiment_batch(feed.records, received_ms=7)
    assert len(batch.records) == 4 and not batch.rejected
    by_title = {r.values["title"][:12]: r for r in batch.records}
    hack = by_title["Exchange hac"]
    assert hack.kind == "sentiment" and hack.values["score"] < 0 and hack.key == "https://f/rss"
    assert hack.time_ms == feed.records[2].time_ms and hack.values["url"].endswith("exchange-hack")
    assert hack.values["news_source"] == "rss:f" and hack.received_ms == 7


def test_unscorable_records_are_rejected_and_others_kept():
    candle = Record("candle", "binance", "BTC/USDT", 0, {})
    batch = sentiment_batch([_news("Bitcoin rallies"), candle, _news("   "), "text", _news("Ether slumps")])
    assert [r.values["title"] for r in batch.records] == ["Bitcoin rallies", "Ether slumps"]
    assert [e.field for e in batch.rejected] == ["kind", "title", "kind"]
    assert all(isinstance(e, RecordError) for e in batch.rejected)


def test_non_text_is_a_record_error():
    with pytest.raises(RecordError, match="must be a str"):
        score_headline(None)
    with pytest.raises(RecordError, match="non-empty text"):
        sentiment_record(_news(17))
