"""Ingestion: schedules the sources of :mod:`coinswarm.adapters.sources`, stores what they bring
(Parquet + DuckDB by default, PostgreSQL with a URL) and reports their health."""
