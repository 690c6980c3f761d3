"""The PostgreSQL store: a batch is COPY'd straight into its table when all its keys are new
(the fast path: a unique violation rolls it back whole), else COPY'd into a temporary table and
inserted with ``ON CONFLICT DO NOTHING`` on the table's key, so a re-ingest writes 0 rows.
Text columns use the "C" collation (byte order: the keys compare fast) and the session commits
asynchronously (``synchronous_commit = off``: a crash may lose the last commits, which the next
fetch brings again; it never corrupts).

Tables ``ingest_trades``, ``ingest_candles``, ``ingest_funding``, ``ingest_books`` (created on
first use), primary key (exchange, symbol[, timeframe], key); ``ingest_macro`` (source, series,
time_ms), ``ingest_news`` (url), ``ingest_sentiment`` (model, url).
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from coinswarm.adapters.sources.symbols import canonical_symbol
from coinswarm.errors import ConfigError
from coinswarm.ingest.schema import MARKET_KINDS, TABLES, TableSpec, table_spec
from coinswarm.ingest.store import WriteResult, checked_batch, group_filter

_PG = {pa.string(): "text", pa.int64(): "bigint", pa.float64(): "double precision"}


def _conninfo(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


def _ddl(spec: TableSpec) -> str:
    cols = ", ".join(f"{n} {_PG[t]}" + (' COLLATE "C"' if t == pa.string() else "")
                     + (" NOT NULL" if n != "side" else "")
                     for n, t in zip(spec.schema.names, spec.schema.types, strict=True))
    key = ", ".join((*spec.group, spec.key))
    return f"CREATE TABLE IF NOT EXISTS ingest_{spec.name} ({cols}, PRIMARY KEY ({key}))"


class PostgresStore:
    """Ticks, candles, funding and books in PostgreSQL (COPY + ``ON CONFLICT DO NOTHING``).

    Parameters
    ----------
    url : str
        ``postgresql://user[:password]@host:port/db`` (``postgresql+psycopg://`` accepted).

    Raises
    ------
    ConfigError
        The server cannot be reached or refuses the login (the message names the URL without password).
    """

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self._lock = threading.Lock()
        try:
            self._conn = psycopg.connect(_conninfo(url), autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            safe = url.split("@")[-1]
            raise ConfigError(f"PostgreSQL store at …@{safe} unreachable: {' '.join(str(exc).split())[:200]}") from None
        with self._conn.cursor() as cur:
            # market data can be fetched again: a crash may lose the last commits, never corrupt them
            cur.execute("SET synchronous_commit = off")
            for spec in TABLES.values():
                cur.execute(_ddl(spec))

    def write_table(self, kind: str, table: pa.Table, source: str) -> WriteResult:
        """Check ``table``, then COPY its good rows in; stored keys are skipped."""
        spec, good, result = checked_batch(kind, table, source)
        if good.num_rows == 0:
            return result
        buf = io.BytesIO()
        pacsv.write_csv(good, buf, pacsv.WriteOptions(include_header=False))
        names = ", ".join(spec.schema.names)
        key = ", ".join((*spec.group, spec.key))
        data = buf.getvalue()
        with self._lock:
            result.rows_written = self._copy_direct(spec, names, data, good.num_rows)
            if result.rows_written < 0:
                result.rows_written = self._copy_merge(spec, names, key, data)
        return result

    def _copy_direct(self, spec: TableSpec, names: str, data: bytes, n: int) -> int:
        """COPY straight into the table: the fast path for rows that are all new; -1 (nothing
        written) when any key is already stored or repeated."""
        import psycopg

        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                with cur.copy(f"COPY ingest_{spec.name} ({names}) FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write(data)
            return n
        except psycopg.errors.UniqueViolation:
            return -1

    def _copy_merge(self, spec: TableSpec, names: str, key: str, data: bytes) -> int:
        """COPY into a temporary table, then insert the rows whose keys are new."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS load_{spec.name} "
                        f"(LIKE ingest_{spec.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            with cur.copy(f"COPY load_{spec.name} ({names}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(data)
            # DO NOTHING also skips a key repeated within the batch (the first row wins)
            cur.execute(f"INSERT INTO ingest_{spec.name} ({names}) SELECT {names} "
                        f"FROM load_{spec.name} ON CONFLICT ({key}) DO NOTHING")
            return max(cur.rowcount, 0)

    def count(self, kind: str, exchange: str | None = None, symbol: str | None = None) -> int:
        """Rows stored of ``kind`` (for one exchange and/or symbol when given)."""
        spec = table_spec(kind)
        where, args = self._where(spec, exchange, symbol)
        with self._lock, self._conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM ingest_{spec.name}{where}", args)
            return int(cur.fetchone()[0])

    @staticmethod
    def _where(spec: TableSpec, exchange: str | None, symbol: str | None,
               timeframe: str | None = None) -> tuple[str, list]:
        """``exchange`` and ``symbol`` filter the table's first two group columns (see the store module)."""
        group_filter(spec, exchange, symbol, None)  # ConfigError for a filter the table has no column for
        if spec.kind in MARKET_KINDS and symbol:
            symbol = canonical_symbol(symbol)
        conds, args = [], []
        cols = (*spec.group[:2], "timeframe")
        for col, val in zip(cols, (exchange, symbol, timeframe if "timeframe" in spec.group else None), strict=False):
            if val is not None:
                conds.append(f"{col} = %s")
                args.append(val)
        return (" WHERE " + " AND ".join(conds) if conds else ""), args

    def keys(self, kind: str, exchange: str, symbol: str, timeframe: str | None = None) -> np.ndarray:
        """The stored keys of one series, sorted by time."""
        spec = table_spec(kind)
        where, args = self._where(spec, exchange, symbol, timeframe)
        with self._lock, self._conn.cursor() as cur:
            cur.execute(f"SELECT {spec.key} FROM ingest_{spec.name}{where} ORDER BY time_ms, {spec.key}", args)
            rows = [r[0] for r in cur.fetchall()]
        return np.array(rows, dtype=object if spec.schema.field(spec.key).type == pa.string() else np.int64)

    def last_time(self, kind: str, exchange: str, symbol: str, timeframe: str | None = None) -> int | None:
        """The latest stored event time of one series, or None."""
        spec = table_spec(kind)
        where, args = self._where(spec, exchange, symbol, timeframe)
        with self._lock, self._conn.cursor() as cur:
            cur.execute(f"SELECT max(time_ms) FROM ingest_{spec.name}{where}", args)
            value = cur.fetchone()[0]
        return None if value is None else int(value)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
