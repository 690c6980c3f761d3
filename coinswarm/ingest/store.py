"""Where ingested market data lands: partitioned Parquet queried with DuckDB (the embedded
default) or PostgreSQL by COPY (:mod:`coinswarm.ingest.pgstore`), behind one interface.

Both stores are **idempotent**: a row whose key (``trade_id`` for trades, open time for candles,
funding and books) is already stored for its exchange, symbol (and timeframe) is skipped, so
re-ingesting a period writes 0 rows; likewise a macro observation by (source, series, time), a
news headline by its URL and a sentiment score by (model, URL). Both check every row first
(:func:`~coinswarm.ingest.schema.check_table`):
a malformed row is reported as a :class:`~coinswarm.adapters.sources.base.RecordError` naming
the source and the field, and the good rows of the batch are written.

Parquet layout: ``DIR/<table>/<exchange>/<BASE-QUOTE>[/<timeframe>]/<YYYY-MM-DD or YYYY-MM>/part-*.parquet``;
``DIR/macro/<source>/<series>/all/``, ``DIR/news/all/``, ``DIR/sentiment/<model>/all/`` (one partition each).

For the macro, news and sentiment tables the ``exchange`` and ``symbol`` filters of
:meth:`Store.count`, ``keys`` and ``last_time`` name their group columns in order: macro's
(source, series), sentiment's model; news has none.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coinswarm.adapters.sources.base import Record, RecordError
from coinswarm.adapters.sources.symbols import canonical_symbol, path_symbol
from coinswarm.data.validate import timeframe_ms
from coinswarm.errors import ConfigError
from coinswarm.ingest.schema import MARKET_KINDS, TABLES, TableSpec, check_table, records_to_table, table_spec

_DAY_MS = 86_400_000


@dataclass(slots=True)
class WriteResult:
    """The outcome of one write: rows offered, rows new to the store, rows rejected (with why)."""

    kind: str
    rows_in: int = 0
    rows_written: int = 0
    rejected: list[RecordError] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        """Rows already stored (or repeated within the batch)."""
        return self.rows_in - self.rows_written - len(self.rejected)

    def merge(self, other: WriteResult) -> WriteResult:
        """Both results added up (same kind or ``*``)."""
        kind = self.kind if self.kind == other.kind else "*"
        return WriteResult(kind, self.rows_in + other.rows_in, self.rows_written + other.rows_written,
                           self.rejected + other.rejected)


@dataclass(frozen=True, slots=True)
class Gap:
    """A hole in a stored series: nothing between ``after`` and ``before`` (keys), ``missing`` keys."""

    after: int
    before: int
    missing: int


class Store(Protocol):
    """What every store offers (see :class:`ParquetStore` and ``PostgresStore``)."""

    url: str

    def write_table(self, kind: str, table: pa.Table, source: str) -> WriteResult: ...

    def count(self, kind: str, exchange: str | None = None, symbol: str | None = None) -> int: ...

    def keys(self, kind: str, exchange: str, symbol: str, timeframe: str | None = None) -> np.ndarray: ...

    def last_time(self, kind: str, exchange: str, symbol: str, timeframe: str | None = None) -> int | None: ...

    def close(self) -> None: ...


def write_records(store: Store, records: Iterable[Record]) -> WriteResult:
    """Write records of any stored kinds (each kind checked and written as one table)."""
    by_kind: dict[str, list[Record]] = {}
    result = WriteResult("*")
    for rec in records:
        if rec.kind not in TABLES:
            result.rejected.append(RecordError(f"kind {rec.kind!r} is not stored here; valid: {sorted(TABLES)}",
                                               source=rec.source, field="kind", value=rec.kind))
            result.rows_in += 1
            continue
        by_kind.setdefault(rec.kind, []).append(rec)
    for kind, recs in by_kind.items():
        table, rejected = records_to_table(kind, recs)
        part = store.write_table(kind, table, recs[0].source)
        result = result.merge(WriteResult(kind, len(recs), part.rows_written, rejected + part.rejected))
    return result


def checked_batch(kind: str, table: pa.Table, source: str) -> tuple[TableSpec, pa.Table, WriteResult]:
    """What every store's ``write_table`` does first: ``table`` cast to the columns and types of
    ``kind`` and checked (:func:`~coinswarm.ingest.schema.check_table`).

    Returns
    -------
    spec : TableSpec
        The table of ``kind``.
    good : pyarrow.Table
        The rows to write.
    result : WriteResult
        Rows offered and rejected (with why), none written yet.
    """
    spec = table_spec(kind)
    table = table.select(spec.schema.names).cast(spec.schema)
    good, rejected = check_table(spec, table, source)
    return spec, good, WriteResult(kind, table.num_rows, 0, rejected)


def open_store(url: str) -> Store:
    """A store from its URL: ``parquet:DIR`` or ``postgresql://…`` (``postgresql+psycopg://`` too).

    Raises
    ------
    ConfigError
        Any other URL (nothing is created).
    """
    if not isinstance(url, str):
        raise ConfigError(f"store URL must be a string, got {type(url).__name__}")
    if url.startswith("parquet:") and len(url) > len("parquet:"):
        return ParquetStore(url[len("parquet:"):])
    if url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        from coinswarm.ingest.pgstore import PostgresStore

        return PostgresStore(url)
    raise ConfigError(f"store URL {url!r:.80} is neither parquet:DIR nor postgresql://user@host:port/db")


def series_gaps(keys: np.ndarray, step: int) -> list[Gap]:
    """Holes in sorted integer ``keys`` spaced ``step`` apart (open times, or trade ids with step 1)."""
    keys = np.unique(np.asarray(keys, dtype=np.int64))
    if keys.size < 2:
        return []
    diff = np.diff(keys)
    idx = np.flatnonzero(diff > step)
    return [Gap(int(keys[i]), int(keys[i + 1]), int(diff[i] // step - 1)) for i in idx]


def gap_report(store: Store, kind: str, exchange: str, symbol: str, timeframe: str | None = None) -> list[Gap]:
    """The gaps of one stored series: candles/funding by open time, trades by numeric trade id."""
    keys = store.keys(kind, exchange, symbol, timeframe)
    if kind == "candle":
        step = timeframe_ms(timeframe or "")
        if step is None:
            raise ConfigError(f"a candle gap report needs a fixed-length timeframe, got {timeframe!r}")
        return series_gaps(keys, step)
    if kind == "trade":
        try:
            return series_gaps(keys.astype(np.int64), 1)
        except (TypeError, ValueError):
            raise ConfigError(f"{exchange} {symbol}: trade ids are not numbers, so they show no gaps") from None
    if kind == "funding":
        return series_gaps(keys, 8 * 3_600_000)
    raise ConfigError(f"no gap report for kind {kind!r}; valid: candle, trade, funding")


def _buckets(spec: TableSpec, t: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per row the index of its time partition, and the partitions' names."""
    if spec.period == "all":
        return np.zeros(len(t), dtype=np.int64), ["all"]
    if spec.period == "day":
        days = t // _DAY_MS
        uniq, inv = np.unique(days, return_inverse=True)
        names = [str(np.datetime64(int(d), "D")) for d in uniq]
    else:
        months = t.astype("datetime64[ms]").astype("datetime64[M]")
        uniq, inv = np.unique(months, return_inverse=True)
        names = [str(m) for m in uniq]
    return inv, names


class ParquetStore:
    """Partitioned Parquet files under one folder, queried with DuckDB.

    Parameters
    ----------
    root : str or Path
        The folder (created if absent).

    Notes
    -----
    One writer process per folder: the keys of each touched partition are cached in memory
    after the first write, so a stream's small writes do not re-read the folder. Readers
    (DuckDB, another process) may read at any time; :meth:`compact` merges a partition's files.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"parquet store {str(root)!r}: exists and is not a folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = f"parquet:{self.root}"
        self._keys: dict[Path, pa.Array] = {}
        self._made: set[Path] = set()
        self._lock = threading.Lock()

    # ---- writing ------------------------------------------------------------------------------
    def write_table(self, kind: str, table: pa.Table, source: str) -> WriteResult:
        """Check ``table`` (rows of ``kind``), then write the rows whose keys are not stored yet."""
        spec, good, result = checked_batch(kind, table, source)
        if good.num_rows == 0:
            return result
        with self._lock:
            for group, part in self._groups(spec, good):
                t = part.column("time_ms").to_numpy()
                inv, names = _buckets(spec, t)
                for b, name in enumerate(names):
                    rows = part.take(pa.array(np.flatnonzero(inv == b))) if len(names) > 1 else part
                    result.rows_written += self._write_partition(spec, self._dir(spec, group) / name, rows)
        return result

    def _groups(self, spec: TableSpec, table: pa.Table) -> Iterable[tuple[tuple[str, ...], pa.Table]]:
        cols = [table.column(c) for c in spec.group]
        if all(pc.count_distinct(c).as_py() == 1 for c in cols):
            yield tuple(c[0].as_py() for c in cols), table
            return
        combos = table.group_by(list(spec.group)).aggregate([]).to_pylist()
        for combo in combos:
            mask = None
            for c in spec.group:
                m = pc.equal(table.column(c), combo[c])
                mask = m if mask is None else pc.and_(mask, m)
            yield tuple(combo[c] for c in spec.group), table.filter(mask)

    def _dir(self, spec: TableSpec, group: tuple[str, ...]) -> Path:
        parts = list(group)
        if spec.kind in MARKET_KINDS:
            parts[1] = path_symbol(parts[1])
        if any(not p or "/" in p or p.startswith(".") for p in parts):
            raise ConfigError(f"{spec.name}: partition names {parts} must be non-empty and contain no '/'")
        return self.root.joinpath(spec.name, *parts)

    def _stored_keys(self, spec: TableSpec, folder: Path) -> pa.Array:
        cached = self._keys.get(folder)
        if cached is None:
            files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
            chunks = [pq.read_table(f, columns=[spec.key]).column(0) for f in files]
            typ = spec.schema.field(spec.key).type
            cached = pa.chunked_array(chunks, type=typ).combine_chunks() if chunks else pa.array([], type=typ)
            self._keys[folder] = cached
        return cached

    def _write_partition(self, spec: TableSpec, folder: Path, rows: pa.Table) -> int:
        keys = rows.column(spec.key).combine_chunks()
        if pc.count_distinct(keys).as_py() != rows.num_rows:  # repeated within the batch: keep the first
            groups = pc.index_in(keys, value_set=pc.unique(keys)).to_numpy()
            _, first = np.unique(groups, return_index=True)
            first.sort()
            rows, keys = rows.take(pa.array(first)), keys.take(pa.array(first))
        stored = self._stored_keys(spec, folder)
        if len(stored):
            fresh = pc.invert(pc.is_in(keys, value_set=stored))
            rows, keys = rows.filter(fresh), keys.filter(fresh)
        if rows.num_rows == 0:
            return 0
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        _write_part(spec, folder, rows)
        self._keys[folder] = pa.concat_arrays([stored, keys.cast(stored.type)])
        return rows.num_rows

    def compact(self, kind: str) -> int:
        """Merge each partition's files of ``kind`` into one, sorted by time; returns files removed."""
        spec = table_spec(kind)
        removed = 0
        with self._lock:
            for folder in sorted({f.parent for f in (self.root / spec.name).rglob("part-*.parquet")}):
                files = sorted(folder.glob("part-*.parquet"))
                if len(files) < 2:
                    continue
                merged = pa.concat_tables([pq.read_table(f, schema=spec.schema) for f in files])
                merged = merged.sort_by([("time_ms", "ascending")])
                _write_part(spec, folder, merged)
                for f in files:
                    f.unlink()
                removed += len(files) - 1
        return removed

    # ---- reading ------------------------------------------------------------------------------
    def _files(self, kind: str, exchange: str | None = None, symbol: str | None = None,
               timeframe: str | None = None) -> list[Path]:
        spec = table_spec(kind)
        parts = group_filter(spec, exchange, symbol, timeframe)
        return sorted(self.root.joinpath(spec.name).glob("/".join([*parts, "*", "part-*.parquet"])))

    def count(self, kind: str, exchange: str | None = None, symbol: str | None = None) -> int:
        """Rows stored of ``kind`` (for one exchange and/or symbol when given)."""
        files = self._files(kind, exchange, symbol)
        total, seen = 0, set()
        for f in files:  # a partition whose keys are cached is counted from the cache
            if f.parent in self._keys:
                if f.parent not in seen:
                    seen.add(f.parent)
                    total += len(self._keys[f.parent])
            else:
                total += pq.read_metadata(f).num_rows
        return total

    def read(self, kind: str, exchange: str | None = None, symbol: str | None = None,
             timeframe: str | None = None) -> pa.Table:
        """Stored rows of ``kind`` sorted by (exchange, symbol, time, key)."""
        spec = table_spec(kind)
        files = self._files(kind, exchange, symbol, timeframe)
        if not files:
            return spec.schema.empty_table()
        table = pa.concat_tables([pq.read_table(f, schema=spec.schema) for f in files])
        return table.sort_by([(c, "ascending") for c in (*spec.group[:2], "time_ms", spec.key)])

    def keys(self, kind: str, exchange: str, symbol: str, timeframe: str | None = None) -> np.ndarray:
        """The stored keys of one series (sorted by time)."""
        spec = table_spec(kind)
        symbol = canonical_symbol(symbol) if kind in MARKET_KINDS else symbol
        return self.read(kind, exchange, symbol, timeframe).column(spec.key).to_numpy(zero_copy_only=False)

    def last_time(self, kind: str, exchange: str, symbol: str, timeframe: str | None = None) -> int | None:
        """The latest stored event time of one series, or None."""
        files = self._files(kind, exchange, symbol, timeframe)
        if not files:
            return None
        newest = files[-1].parent  # partitions sort by date
        return max(pc.max(pq.read_table(f, columns=["time_ms"]).column(0)).as_py() for f in newest.glob("part-*"))

    def query(self, sql: str) -> Any:
        """Run DuckDB SQL over the views ``trades``, ``candles``, ``funding``, ``books``; a DataFrame."""
        import duckdb

        con = duckdb.connect()
        try:
            for spec in TABLES.values():
                if any(self.root.joinpath(spec.name).rglob("part-*.parquet")):
                    glob = str(self.root / spec.name / "**" / "part-*.parquet")
                    con.execute(f"CREATE VIEW {spec.name} AS SELECT * FROM read_parquet('{glob}')")
                else:
                    cols = ", ".join(f"NULL::{_duck(t)} AS {n}" for n, t in zip(spec.schema.names, spec.schema.types,
                                                                                   strict=True))
                    con.execute(f"CREATE VIEW {spec.name} AS SELECT {cols} WHERE false")
            return con.execute(sql).df()
        except duckdb.Error as exc:
            raise ConfigError(f"DuckDB refused the query: {' '.join(str(exc).split())[:300]}") from None
        finally:
            con.close()

    def close(self) -> None:
        """Forget the key cache (files stay)."""
        self._keys.clear()
        self._made.clear()


def group_filter(spec: TableSpec, exchange: str | None, symbol: str | None, timeframe: str | None) -> list[str]:
    """Glob parts of the group folders: ``exchange`` and ``symbol`` fill the first two group
    columns (ConfigError when a table has fewer), ``timeframe`` the candles' third."""
    given = [exchange, symbol]
    if any(g is not None for g in given[len(spec.group):]):
        raise ConfigError(f"the {spec.name} table is grouped by {list(spec.group)}: "
                          f"{len(spec.group)} filter(s) at most, got exchange={exchange!r}, symbol={symbol!r}")
    parts = [g or "*" for g in given[:len(spec.group)]]
    if spec.kind in MARKET_KINDS and symbol:
        parts[1] = path_symbol(symbol)
    if "timeframe" in spec.group:
        parts.append(timeframe or "*")
    return parts


def _write_part(spec: TableSpec, folder: Path, rows: pa.Table) -> None:
    """``rows`` as a new ``part-<uuid>.parquet`` in ``folder``, written under a hidden name and
    renamed into place (a reader never sees half a file)."""
    name = f"part-{uuid.uuid4().hex}.parquet"
    tmp = folder / ("." + name)
    pq.write_table(rows, tmp, compression="snappy", use_dictionary=_dict_columns(spec))
    os.replace(tmp, folder / name)


def _dict_columns(spec: TableSpec) -> list[str]:
    """Columns worth dictionary encoding (few distinct values); ids and prices are not (it halves the write speed)."""
    return [c for c in ("exchange", "symbol", "side", "timeframe") if c in spec.schema.names]


def _duck(t: pa.DataType) -> str:
    return {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE"}[t]
