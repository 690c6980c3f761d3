"""Data sources for ingestion: one module per source (exchanges via ccxt, macro, news, sentiment).

Every source speaks the small protocol of :mod:`coinswarm.adapters.sources.base`: it fetches or
streams typed :class:`~coinswarm.adapters.sources.base.Record` batches with their source metadata
and reports its :class:`~coinswarm.adapters.sources.base.Health`. Sources translate; they never
decide and never store (storage and scheduling live in :mod:`coinswarm.ingest`).
"""
