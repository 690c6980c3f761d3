"""Per-headline sentiment with VADER (lexicon and rules; no model download, no network).

:func:`score_headline` gives VADER's four scores of one text; :func:`sentiment_batch` turns
``news`` records into ``sentiment`` records (``score`` = VADER's compound score in [-1, 1];
``pos``/``neu``/``neg`` proportions; ``url`` and ``title`` of the headline), keyed and timed like
the headline. A record that is not news, or whose title is not text, is rejected with a
:class:`~coinswarm.adapters.sources.base.RecordError`; the others are scored.

VADER (Hutto & Gilbert, 2014) was tuned on social-media text: it reads "surges", "crash",
"hack" and "bankruptcy" as expected, but knows no finance-specific idiom ("short squeeze",
"bearish divergence") beyond the general-English lexicon. Treat it as a cheap, transparent
baseline next to the embeddings.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from coinswarm.adapters.sources.base import Batch, Record, RecordError, check_record

SOURCE = "vader"
MAX_CHARS = 2_000
"""Texts are cut to this length (VADER's cost grows with length; a headline is far shorter)."""


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def score_headline(text: str) -> dict[str, float]:
    """VADER's ``{"neg", "neu", "pos", "compound"}`` for ``text`` (compound in [-1, 1]).

    Examples
    --------
    >>> score_headline("Exchange hack drains $80 million")["compound"] < 0
    True
    """
    if not isinstance(text, str):
        raise RecordError(f"text must be a str, got {type(text).__name__}", source=SOURCE, field="title", value=text)
    return dict(_analyzer().polarity_scores(text[:MAX_CHARS]))


def sentiment_record(news: Record, received_ms: int = 0) -> Record:
    """The ``sentiment`` record of one ``news`` record."""
    if not isinstance(news, Record) or news.kind != "news":
        kind = news.kind if isinstance(news, Record) else type(news).__name__
        raise RecordError(f"only news records are scored, got {kind!r}", source=getattr(news, "source", SOURCE),
                          field="kind", value=kind)
    title = news.values.get("title")
    if not isinstance(title, str) or not title.strip():
        raise RecordError(f"title must be non-empty text, got {title!r}", source=news.source, field="title",
                          value=title)
    scores = score_headline(title)
    values = {"score": scores["compound"], "pos": scores["pos"], "neu": scores["neu"], "neg": scores["neg"],
              "url": news.values.get("url"), "title": title, "news_source": news.source, "model": "vader-3.3"}
    return check_record(Record("sentiment", SOURCE, news.key, news.time_ms, values, received_ms))


def sentiment_batch(records: Iterable[Record], received_ms: int = 0) -> Batch:
    """``sentiment`` records for the news in ``records``; the unscorable ones are listed as rejected."""
    batch = Batch(SOURCE)
    for record in records:
        try:
            batch.records.append(sentiment_record(record, received_ms))
        except RecordError as err:
            batch.rejected.append(err)
    return batch
