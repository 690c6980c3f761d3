"""The stored tables (trades, candles, funding, books; macro, news, sentiment) and their schema checks.

Each :class:`TableSpec` names a table's columns (an Arrow schema), the column that makes a row
unique inside its group — (exchange, symbol[, timeframe]) for market data, (source, series) for
macro observations, nothing for news (a URL is stored once whatever its source) and the scoring
model for sentiment — and how rows are partitioned by time (``day``, ``month``, or ``all``: one
partition, so a key is unique across the whole table).
:func:`check_table` splits an Arrow table into the rows that pass every check and one
:class:`~coinswarm.adapters.sources.base.RecordError` per rejected row (naming the source, the
row and the field); :func:`records_to_table` turns :class:`Record` s into such a table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from coinswarm.adapters.sources.base import Record, RecordError, check_record
from coinswarm.adapters.sources.symbols import canonical_symbol
from coinswarm.data.validate import EPOCH_MS_RANGE, timeframe_ms
from coinswarm.errors import ConfigError

_STR, _I64, _F64 = pa.string(), pa.int64(), pa.float64()
_HEAD = [("exchange", _STR), ("symbol", _STR)]


@dataclass(frozen=True)
class TableSpec:
    """A stored table.

    Attributes
    ----------
    kind : str
        The record kind it stores (``trade``, ``candle``, ``funding``, ``book``, ``macro``, ``news``,
        ``sentiment``).
    name : str
        Table / folder name.
    schema : pyarrow.Schema
        Its columns.
    key : str
        The column unique within a partition (re-ingesting a row with a stored key is a no-op).
    group : tuple of str
        Columns that name a partition besides time (``exchange``, ``symbol``[, ``timeframe``] for
        market data).
    period : str
        Time partition: ``day``, ``month`` or ``all`` (one partition).
    """

    kind: str
    name: str
    schema: pa.Schema
    key: str
    group: tuple[str, ...]
    period: str


TABLES: dict[str, TableSpec] = {
    "trade": TableSpec("trade", "trades", pa.schema(_HEAD + [
        ("time_ms", _I64), ("trade_id", _STR), ("side", _STR), ("price", _F64), ("amount", _F64),
        ("received_ms", _I64)]), "trade_id", ("exchange", "symbol"), "day"),
    "candle": TableSpec("candle", "candles", pa.schema(_HEAD + [
        ("timeframe", _STR), ("time_ms", _I64), ("open", _F64), ("high", _F64), ("low", _F64), ("close", _F64),
        ("volume", _F64), ("received_ms", _I64)]), "time_ms", ("exchange", "symbol", "timeframe"), "month"),
    "funding": TableSpec("funding", "funding", pa.schema(_HEAD + [
        ("time_ms", _I64), ("rate", _F64), ("received_ms", _I64)]), "time_ms", ("exchange", "symbol"), "month"),
    "book": TableSpec("book", "books", pa.schema(_HEAD + [
        ("time_ms", _I64), ("bids", _STR), ("asks", _STR), ("received_ms", _I64)]), "time_ms",
        ("exchange", "symbol"), "day"),
    "macro": TableSpec("macro", "macro", pa.schema([
        ("source", _STR), ("series", _STR), ("time_ms", _I64), ("value", _F64), ("units", _STR),
        ("received_ms", _I64)]), "time_ms", ("source", "series"), "all"),
    "news": TableSpec("news", "news", pa.schema([
        ("url", _STR), ("time_ms", _I64), ("source", _STR), ("key", _STR), ("title", _STR), ("summary", _STR),
        ("publisher", _STR), ("received_ms", _I64)]), "url", (), "all"),
    "sentiment": TableSpec("sentiment", "sentiment", pa.schema([
        ("model", _STR), ("url", _STR), ("time_ms", _I64), ("source", _STR), ("key", _STR), ("title", _STR),
        ("score", _F64), ("pos", _F64), ("neu", _F64), ("neg", _F64), ("received_ms", _I64)]), "url", ("model",),
        "all"),
}
"""The stored tables by record kind."""
MARKET_KINDS = ("trade", "candle", "funding", "book")
"""Kinds keyed by (exchange, symbol): the others (macro, news, sentiment) have their own groups."""


def table_spec(kind: str) -> TableSpec:
    """The :class:`TableSpec` of a record kind (``ConfigError`` naming the valid ones otherwise)."""
    spec = TABLES.get(kind)
    if spec is None:
        raise ConfigError(f"no stored table for kind {kind!r}; valid: {sorted(TABLES)}")
    return spec


def _positive(table: pa.Table, col: str) -> np.ndarray:
    x = table.column(col).to_numpy(zero_copy_only=False)
    return ~(np.isfinite(x) & (x > 0))


def _empty(table: pa.Table, col: str) -> np.ndarray:
    return pc.fill_null(pc.equal(pc.utf8_length(table.column(col)), 0), True).to_numpy(zero_copy_only=False)


def _path_unsafe(table: pa.Table, col: str) -> np.ndarray:
    bad = pc.match_substring_regex(table.column(col), r"(^\.|/)")
    return pc.fill_null(bad, True).to_numpy(zero_copy_only=False)


def _in_range(table: pa.Table, col: str, lo: float, hi: float) -> np.ndarray:
    x = table.column(col).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(x) & (x >= lo) & (x <= hi))


def _not_web_url(table: pa.Table, col: str) -> np.ndarray:
    ok = pc.fill_null(pc.match_substring_regex(table.column(col), r"^https?://[^/\s]+"), False)
    return ~ok.to_numpy(zero_copy_only=False)


def _bad_masks(spec: TableSpec, table: pa.Table) -> list[tuple[str, np.ndarray, str]]:
    """(field, bad-row mask, what is expected) for every check of ``spec``."""
    n = table.num_rows
    t = table.column("time_ms").to_numpy(zero_copy_only=False)
    lo, hi = EPOCH_MS_RANGE
    with np.errstate(invalid="ignore"):  # a null time arrives as NaN: bad too
        checks = [("time_ms", ~((t >= lo) & (t <= hi)), "epoch milliseconds between 1970 and 2100")]
    for col in spec.group:  # group values name folders: checked here, before anything is written
        if col == "symbol":  # BTC/USDT: the store spells it BTC-USDT
            checks.append((col, _empty(table, col), "a non-empty name"))
        else:
            checks.append((col, _empty(table, col) | _path_unsafe(table, col), "a non-empty name without '/' "
                           "or a leading '.'"))
    checks += _market_checks(spec, table) if spec.kind in MARKET_KINDS else _alt_checks(spec, table)
    return [(f, np.asarray(m, dtype=bool), w) for f, m, w in checks if n and np.asarray(m).any()]


def _market_checks(spec: TableSpec, table: pa.Table) -> list[tuple[str, np.ndarray, str]]:
    checks = []
    if spec.kind == "trade":
        side = table.column("side")
        ok_side = pc.or_(pc.is_null(side), pc.fill_null(pc.is_in(side, value_set=pa.array(["buy", "sell"])), False))
        checks += [("price", _positive(table, "price"), "a finite price > 0"),
                   ("amount", _positive(table, "amount"), "a finite amount > 0"),
                   ("trade_id", _empty(table, "trade_id"), "a non-empty trade id"),
                   ("side", ~ok_side.to_numpy(zero_copy_only=False), "'buy', 'sell' or empty")]
    elif spec.kind == "candle":
        o, h, lw, c, v = (table.column(k).to_numpy(zero_copy_only=False)
                          for k in ("open", "high", "low", "close", "volume"))
        for col in ("open", "high", "low", "close"):
            checks.append((col, _positive(table, col), "a finite price > 0"))
        with np.errstate(invalid="ignore"):
            checks += [("high", ~(h >= np.maximum(np.maximum(o, c), lw)), "high ≥ open, close and low"),
                       ("low", ~(lw <= np.minimum(o, c)), "low ≤ open and close"),
                       ("volume", ~(np.isfinite(v) & (v >= 0)), "a finite volume ≥ 0")]
    elif spec.kind == "funding":
        r = table.column("rate").to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            checks.append(("rate", ~(np.isfinite(r) & (np.abs(r) < 1.0)), "a finite rate per interval in (-1, 1)"))
    return checks


def _alt_checks(spec: TableSpec, table: pa.Table) -> list[tuple[str, np.ndarray, str]]:
    if spec.kind == "macro":
        return [("value", _in_range(table, "value", -math.inf, math.inf), "a finite number")]
    checks = [("url", _not_web_url(table, "url"), "an absolute http(s) URL"),
              ("title", _empty(table, "title"), "a non-empty title")]
    if spec.kind == "sentiment":
        checks.append(("score", _in_range(table, "score", -1.0, 1.0), "a compound score in [-1, 1]"))
        checks += [(col, _in_range(table, col, 0.0, 1.0), "a proportion in [0, 1]") for col in ("pos", "neu", "neg")]
    return checks


def check_table(spec: TableSpec, table: pa.Table, source: str | list[str], *,
                row0: int = 1) -> tuple[pa.Table, list[RecordError]]:
    """The rows of ``table`` that pass every check of ``spec``, and one RecordError per bad row.

    Parameters
    ----------
    spec : TableSpec
        The table the rows are for.
    table : pyarrow.Table
        Rows in ``spec.schema``.
    source : str or list of str
        Named in each error (a file, a source's name), or one per row.
    row0 : int
        Number of the first row in ``source`` (errors say ``row N``; default 1).
    """
    masks = _bad_masks(spec, table)
    if not masks:
        return table, []
    bad = np.zeros(table.num_rows, dtype=bool)
    errors: dict[int, RecordError] = {}
    for field, mask, expected in masks:
        for i in np.flatnonzero(mask & ~bad):
            value = table.column(field)[int(i)].as_py()
            where = source if isinstance(source, str) else source[int(i)]
            errors[int(i)] = RecordError(f"row {row0 + int(i)}: {field}={value!r:.40} is not {expected}",
                                         source=where, field=field, value=value)
        bad |= mask
    return table.filter(pa.array(~bad)), [errors[i] for i in sorted(errors)]


def _alt_row(spec: TableSpec, rec: Record) -> dict:
    """A macro, news or sentiment record as a row of ``spec``.

    macro: ``source`` is the record source's prefix (``fred`` of ``fred:DGS10``), ``series`` its key.
    news: ``summary`` is the entry's summary or the article's description, ``publisher`` the
    article's publisher or the feed's title. sentiment: ``source`` is the scored headline's source.
    """
    v = rec.values
    row: dict = {"time_ms": rec.time_ms, "received_ms": int(rec.received_ms or 0)}
    if spec.kind == "macro":
        row.update(source=rec.source.split(":", 1)[0], series=rec.key, units=str(v.get("units") or ""))
    elif spec.kind == "news":
        row.update(source=rec.source, key=rec.key, summary=str(v.get("summary") or v.get("description") or ""),
                   publisher=str(v.get("publisher") or v.get("feed") or ""))
    else:
        row.update(model=str(v.get("model") or rec.source), source=str(v.get("news_source") or rec.source),
                   key=rec.key)
    for name, typ in zip(spec.schema.names, spec.schema.types, strict=True):
        if name not in row:
            row[name] = _convert(rec, name, typ, v.get(name))
    return row


def _record_row(spec: TableSpec, rec: Record) -> dict:
    """One record as a row of ``spec`` (RecordError naming the field that does not convert)."""
    check_record(rec)
    lo, hi = EPOCH_MS_RANGE
    if not lo <= rec.time_ms <= hi:  # before Arrow sees it: a huge int overflows int64
        raise RecordError(f"time_ms={rec.time_ms!r:.40} is not epoch milliseconds between 1970 and 2100",
                          source=rec.source, field="time_ms", value=rec.time_ms)
    if spec.kind not in MARKET_KINDS:
        return _alt_row(spec, rec)
    v = rec.values
    exchange = v.get("exchange") or rec.source.split(":", 1)[0]
    row = {"exchange": exchange, "time_ms": rec.time_ms, "received_ms": int(rec.received_ms or 0)}
    try:
        row["symbol"] = canonical_symbol(rec.key)
    except ConfigError as exc:
        raise RecordError(str(exc), source=rec.source, field="key", value=rec.key) from None
    for name, typ in zip(spec.schema.names, spec.schema.types, strict=True):
        if name in row:
            continue
        value = v.get(name)
        if spec.kind == "candle" and v.get("closed") is False:
            raise RecordError("a forming candle (closed=False) is never stored", source=rec.source, field="closed")
        row[name] = _convert(rec, name, typ, value)
    if spec.kind == "candle" and timeframe_ms(row["timeframe"]) is None:
        raise RecordError("the timeframe must have a fixed length (1m … 1w)", source=rec.source, field="timeframe")
    return row


def _convert(rec: Record, name: str, typ: pa.DataType, value: object) -> object:
    try:
        if typ == _F64:
            out = float(value)  # type: ignore[arg-type]
            if not math.isfinite(out):
                raise ValueError
            return out
        if typ == _I64:
            return int(value)  # type: ignore[arg-type]
        if name in ("bids", "asks"):
            levels = [[float(p), float(q)] for p, q, *_ in value]  # type: ignore[union-attr]
            return json.dumps(levels)
        if name == "side" and value is None:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise TypeError
        return str(value)
    except (TypeError, ValueError, OverflowError):
        raise RecordError(f"{value!r:.40} does not convert to {typ}", source=rec.source, field=name,
                          value=value) from None


def records_to_table(kind: str, records: Iterable[Record]) -> tuple[pa.Table, list[RecordError]]:
    """Records of one kind as a checked Arrow table, and the records rejected (with their field)."""
    spec = table_spec(kind)
    rows, sources, rejected = [], [], []
    for rec in records:
        try:
            if rec.kind != kind:
                raise RecordError(f"a {rec.kind} record in a batch of {kind} records", source=rec.source,
                                  field="kind", value=rec.kind)
            rows.append(_record_row(spec, rec))
            sources.append(rec.source)
        except RecordError as exc:
            rejected.append(exc)
    table = pa.Table.from_pylist(rows, schema=spec.schema)
    good, bad = check_table(spec, table, sources)
    return good, rejected + bad
