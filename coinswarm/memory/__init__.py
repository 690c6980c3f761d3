"""Memory: the SQL store (SQLite embedded, PostgreSQL in production) and episodic kNN indexes."""

from coinswarm.memory.store import DEFAULT_URL, Store

__all__ = ["DEFAULT_URL", "Store"]
