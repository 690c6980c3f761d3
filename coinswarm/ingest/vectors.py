"""Headline embeddings stored and searched by similarity: PostgreSQL + pgvector, or Redis 8 vector sets.

Both stores take ``news`` (or ``sentiment``) records with their embedding rows, keyed by the
headline URL: adding a URL that is already stored changes nothing and is not counted (the first
embedding of a headline wins), so re-ingesting a feed creates no duplicates. ``search`` returns
the ``k`` most similar headlines as :class:`Hit` s with their cosine similarity.

* :class:`PgVectorStore`: a table with a ``vector(384)`` column and an HNSW index over cosine
  distance (``CREATE EXTENSION vector``; the embedded PostgreSQL ships pgvector). Inserts are one
  ``INSERT … SELECT FROM unnest(…) ON CONFLICT (url) DO NOTHING`` per batch.
* :class:`RedisVectorStore`: a Redis 8 vector set (``VADD``/``VSIM``; HNSW, int8-quantised by
  default) with each headline's title, time and source as JSON attributes (``SETATTR``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coinswarm.adapters.sources.base import Record, RecordError
from coinswarm.errors import CoinswarmError

DIM = 384
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class VectorStoreError(CoinswarmError, ValueError):
    """Vectors or arguments handed to a vector store are malformed (nothing was written)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: the headline and its cosine similarity to the query (1 = same direction)."""

    url: str
    title: str
    time_ms: int
    source: str
    similarity: float


def check_items(records: Sequence[Record], vectors: Any, dim: int) -> np.ndarray:
    """``vectors`` as a C-contiguous ``(n, dim)`` float32 matrix matching ``records``, else a typed error."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != dim or matrix.shape[0] != len(records):
        raise VectorStoreError(f"vectors must have shape ({len(records)}, {dim}) for {len(records)} records, "
                               f"got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise VectorStoreError(f"vectors hold NaN or inf (row {int(np.where(~np.isfinite(matrix))[0][0])})")
    if (np.linalg.norm(matrix, axis=1) == 0).any():
        raise VectorStoreError("a zero vector has no direction (cosine similarity undefined)")
    for record in records:
        if not isinstance(record, Record) or record.kind not in ("news", "sentiment"):
            raise RecordError("only news or sentiment records are stored as headline vectors",
                              source=getattr(record, "source", "vectors"), field="kind")
        for name in ("url", "title"):
            if not isinstance(record.values.get(name), str) or not record.values[name]:
                raise RecordError(f"a stored headline needs a non-empty {name}", source=record.source, field=name,
                                  value=record.values.get(name))
    return np.ascontiguousarray(matrix)


def check_query(vector: Any, k: int, dim: int) -> np.ndarray:
    """``vector`` as one float32 row of ``dim``, and ``k`` in [1, 1000], else :class:`VectorStoreError`."""
    row = np.asarray(vector, dtype=np.float32).reshape(-1)
    if row.shape != (dim,) or not np.isfinite(row).all() or not row.any():
        raise VectorStoreError(f"a query must be {dim} finite numbers, not all zero; got shape "
                               f"{np.asarray(vector).shape}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise VectorStoreError(f"k must be an int in [1, 1000], got {k!r}")
    return row


def _literal(row: np.ndarray) -> str:
    return "[" + ",".join(map(repr, row.tolist())) + "]"


class PgVectorStore:
    """Headline vectors in PostgreSQL with pgvector.

    Parameters
    ----------
    url : str
        ``postgresql://…`` (a ``postgresql+psycopg://`` SQLAlchemy URL is accepted too).
    table : str
        Table name (lower-case identifier).
    dim : int
        Vector size.
    """

    def __init__(self, url: str, table: str = "headline_vectors", dim: int = DIM) -> None:
        import psycopg

        if not _NAME.match(table):
            raise VectorStoreError(f"table must be a lower-case identifier, got {table!r}")
        self.table, self.dim = table, dim
        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True,
                                    connect_timeout=10)

    def migrate(self) -> None:
        """Create the extension, the table and its HNSW cosine index (idempotent)."""
        t = self.table
        with self.conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {t} (url text PRIMARY KEY, title text NOT NULL, "
                        f"source text NOT NULL, key text NOT NULL, time_ms bigint NOT NULL, "
                        f"embedding vector({self.dim}) NOT NULL)")
            cur.execute(f"CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} USING hnsw (embedding vector_cosine_ops)")

    def add(self, records: Sequence[Record], vectors: Any) -> int:
        """Store new headlines; returns how many were inserted (known URLs are skipped)."""
        matrix = check_items(records, vectors, self.dim)
        if not records:
            return 0
        cols = ([r.values["url"] for r in records], [r.values["title"] for r in records],
                [r.source for r in records], [r.key for r in records], [r.time_ms for r in records],
                [_literal(row) for row in matrix])
        with self.conn.cursor() as cur:
            cur.execute(f"INSERT INTO {self.table} (url, title, source, key, time_ms, embedding) "
                        "SELECT u, t, s, k, m, e::vector FROM unnest(%s::text[], %s::text[], %s::text[], "
                        "%s::text[], %s::bigint[], %s::text[]) AS x(u, t, s, k, m, e) "
                        "ON CONFLICT (url) DO NOTHING", cols)
            return cur.rowcount

    def search(self, vector: Any, k: int = 10) -> list[Hit]:
        """The ``k`` nearest headlines by cosine distance (HNSW, approximate)."""
        query = _literal(check_query(vector, k, self.dim))
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT url, title, time_ms, source, 1 - (embedding <=> %s::vector) FROM {self.table} "
                        "ORDER BY embedding <=> %s::vector LIMIT %s", (query, query, k))
            return [Hit(u, t, int(m), s, float(sim)) for u, t, m, s, sim in cur.fetchall()]

    def __len__(self) -> int:
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {self.table}")
            return int(cur.fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class RedisVectorStore:
    """Headline vectors in a Redis 8 vector set.

    Parameters
    ----------
    client : redis.Redis
        A connected client (``redis.Redis.from_url(url)``).
    key : str
        The vector set's key.
    dim : int
        Vector size.
    """

    def __init__(self, client: Any, key: str = "coinswarm:headlines", dim: int = DIM) -> None:
        if not isinstance(key, str) or not key:
            raise VectorStoreError(f"key must be a non-empty string, got {key!r}")
        self.client, self.key, self.dim = client, key, dim

    def add(self, records: Sequence[Record], vectors: Any) -> int:
        """Store new headlines; returns how many were inserted (known URLs are skipped)."""
        matrix = check_items(records, vectors, self.dim)
        urls = [r.values["url"] for r in records]
        pipe = self.client.pipeline(transaction=False)
        for url in urls:
            pipe.execute_command("VISMEMBER", self.key, url)
        known = pipe.execute()
        pipe, fresh = self.client.pipeline(transaction=False), set()
        for record, row, url, present in zip(records, matrix, urls, known, strict=True):
            if int(present) or url in fresh:
                continue
            fresh.add(url)
            attrs = json.dumps({"title": record.values["title"], "time_ms": record.time_ms, "source": record.source})
            pipe.execute_command("VADD", self.key, "FP32", row.tobytes(), url, "SETATTR", attrs)
        return sum(int(x) for x in pipe.execute()) if fresh else 0

    def search(self, vector: Any, k: int = 10) -> list[Hit]:
        """The ``k`` nearest headlines (``VSIM``; Redis scores ``(1 + cosine) / 2``, converted back)."""
        query = check_query(vector, k, self.dim)
        reply = self.client.execute_command("VSIM", self.key, "FP32", query.tobytes(), "COUNT", k, "WITHSCORES")
        pairs = list(reply.items()) if isinstance(reply, dict) else list(zip(reply[::2], reply[1::2], strict=True))
        pipe = self.client.pipeline(transaction=False)
        for member, _ in pairs:
            pipe.execute_command("VGETATTR", self.key, member)
        hits = []
        for (member, score), raw in zip(pairs, pipe.execute(), strict=True):
            attrs = json.loads(raw) if raw else {}
            url = member.decode() if isinstance(member, bytes) else str(member)
            hits.append(Hit(url, attrs.get("title", ""), int(attrs.get("time_ms", 0)), attrs.get("source", ""),
                            2.0 * float(score) - 1.0))
        return hits

    def __len__(self) -> int:
        return int(self.client.execute_command("VCARD", self.key) or 0)


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What :func:`index_headlines` did: new vectors stored, sentiment records, rejected records."""

    inserted: int
    sentiment: list[Record]
    rejected: list[RecordError]


def index_headlines(records: Sequence[Record], embedder: Any, store: Any, received_ms: int = 0) -> IndexReport:
    """Score and embed the ``news`` records of a batch and store their vectors (keyed by URL).

    Non-news and unscorable records are listed in ``rejected`` (the others go on); headlines whose
    URL is already stored are not re-inserted (``inserted`` counts only new ones).
    """
    from coinswarm.adapters.sources.sentiment import sentiment_record

    news, scores, rejected = [], [], []
    for record in records:
        try:
            scores.append(sentiment_record(record, received_ms))
        except RecordError as err:
            rejected.append(err)
            continue
        news.append(record)
    if not news:
        return IndexReport(0, [], rejected)
    vectors = embedder.embed([r.values["title"] for r in news])
    return IndexReport(store.add(news, vectors), scores, rejected)
