"""Bulk import of a recorded trades CSV (the layout of ``datasets/ticks/``) into a store.

Columns: ``timestamp`` (epoch ms), ``trade_id``, ``side``, ``price``, ``amount`` (``cost`` and
``is_buyer_maker`` are ignored). A file without ``trade_id`` (Kraken's export) gets ids made of
timestamp, price, amount and the repeat number of that triple, so a re-import finds the same ids.
The exchange and symbol come from the file name when not given:
``binance_BTCUSDT_trades_…`` → (``binance``, ``BTC/USDT``), ``binance_futures_BTCUSDT_…`` →
(``binance-perp``, ``BTC/USDT:USDT``), ``kraken_BCHEUR_trades_…`` → (``kraken``, ``BCH/EUR``).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from coinswarm.adapters.sources.base import RecordError
from coinswarm.adapters.sources.symbols import canonical_symbol
from coinswarm.errors import ConfigError, SchemaError
from coinswarm.ingest.schema import TABLES
from coinswarm.ingest.store import Store

_NAME = re.compile(r"^(?:(?P<ex>[a-z][a-z0-9]*(?:_futures)?)_)?(?P<sym>[A-Z0-9]{4,})_(?:agg)?trades", re.ASCII)
_TYPES = {"timestamp": pa.int64(), "trade_id": pa.string(), "side": pa.string(), "price": pa.float64(),
          "amount": pa.float64()}
REQUIRED = ("timestamp", "price", "amount")


@dataclass(slots=True)
class ImportReport:
    """What ``coinswarm ingest import`` prints."""

    file: str
    exchange: str
    symbol: str
    store: str
    rows_read: int
    rows_written: int
    rows_rejected: int
    store_rows: int
    seconds: float
    ticks_per_s: float
    errors: list[str]

    def to_dict(self) -> dict:
        """As plain JSON-able values."""
        return asdict(self)


def infer_market(path: str | os.PathLike, exchange: str | None = None, symbol: str | None = None) -> tuple[str, str]:
    """(exchange, canonical symbol) of a trades file: the arguments, else parsed from its name.

    Raises
    ------
    ConfigError
        The name does not say (and the argument is absent), or the symbol does not normalise.
    """
    match = _NAME.match(Path(path).name)
    perp = False
    if exchange is None:
        if match is None or match.group("ex") is None:
            raise ConfigError(f"{Path(path).name}: the file name does not name the exchange "
                              "(expected exchange_SYMBOL_trades_…); pass --exchange NAME")
        exchange = match.group("ex")
        if exchange.endswith("_futures"):
            exchange, perp = exchange[: -len("_futures")] + "-perp", True
    if symbol is None:
        if match is None:
            raise ConfigError(f"{Path(path).name}: the file name does not name the symbol "
                              "(expected [exchange_]SYMBOL_trades_…); pass --symbol BASE/QUOTE")
        symbol = match.group("sym")
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", exchange or ""):
        raise ConfigError(f"exchange {exchange!r:.60} must be a lower-case ccxt-style name (binance, coinbase)")
    return exchange, canonical_symbol(symbol, perpetual=perp)


def _header(path: Path) -> list[str]:
    import gzip

    try:
        with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as fh:  # noqa: SIM115
            return [c.strip() for c in fh.readline().strip().split(",")]
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SchemaError(f"{path}: not a readable CSV ({' '.join(str(exc).split())[:200]})") from None


def _read_csv(path: Path, ragged: list[RecordError]) -> pa.Table:
    """The file's columns (typed when the file is clean; as text when a value does not parse).
    A row with the wrong number of fields is skipped and reported in ``ragged``."""
    names = _header(path)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise SchemaError(f"{path}: columns {names} lack {missing}; a trades CSV has timestamp, trade_id, side, "
                          "price, amount[, cost]")
    cols = [c for c in _TYPES if c in names]
    read = pacsv.ReadOptions(use_threads=False, block_size=1 << 22)

    def skip(row) -> str:
        ragged.append(RecordError(f"row {row.number}: {row.expected_columns} fields expected, "
                                  f"{row.actual_columns} found: {str(row.text)[:60]!r}", source=str(path),
                                  field="row", value=row.text))
        return "skip"

    parse = pacsv.ParseOptions(invalid_row_handler=skip)
    convert = pacsv.ConvertOptions(include_columns=cols, column_types={c: _TYPES[c] for c in cols},
                                   strings_can_be_null=True)
    try:
        return pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid:
        ragged.clear()
        text = pacsv.ConvertOptions(include_columns=cols, column_types=dict.fromkeys(cols, pa.string()),
                                    strings_can_be_null=True)
        try:
            return pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=text)
        except pa.ArrowInvalid as exc:
            raise SchemaError(f"{path}: not a readable CSV ({' '.join(str(exc).split())[:200]})") from None


def _typed(raw: pa.Table, source: str) -> tuple[pa.Table, list[RecordError]]:
    """Text columns converted row by row: rows with a value that does not parse are rejected."""
    rows, errors = [], []
    for i, row in enumerate(raw.to_pylist()):
        try:
            out = {}
            for name, value in row.items():
                typ = _TYPES[name]
                try:
                    out[name] = (None if value is None else int(value) if typ == pa.int64()
                                 else float(value) if typ == pa.float64() else value)
                except ValueError:
                    raise RecordError(f"row {i + 2}: {name}={value!r:.40} is not a number", source=source,
                                      field=name, value=value) from None
            rows.append(out)
        except RecordError as exc:
            errors.append(exc)
    return pa.Table.from_pylist(rows, schema=pa.schema([(c, _TYPES[c]) for c in raw.schema.names])), errors


def _synth_ids(table: pa.Table) -> pa.Array:
    seen: Counter = Counter()
    ids = []
    for t, p, a in zip(*(table.column(c).to_pylist() for c in ("timestamp", "price", "amount")), strict=True):
        seen[(t, p, a)] += 1
        ids.append(f"{t}:{p!r}:{a!r}:{seen[(t, p, a)]}")
    return pa.array(ids, type=pa.string())


def trades_table(path: str | os.PathLike, exchange: str, symbol: str) -> tuple[pa.Table, list[RecordError]]:
    """The trades of a CSV file as rows of the ``trades`` table, and the rows that do not parse."""
    path = Path(path)
    ragged: list[RecordError] = []
    raw = _read_csv(path, ragged)
    errors: list[RecordError] = []
    if any(raw.schema.field(c).type == pa.string() for c in REQUIRED):
        raw, errors = _typed(raw, str(path))
    errors = ragged + errors
    n = raw.num_rows
    trade_id = raw.column("trade_id") if "trade_id" in raw.schema.names else _synth_ids(raw)
    side = raw.column("side") if "side" in raw.schema.names else pa.nulls(n, pa.string())
    cols = {"exchange": pa.array([exchange] * n, pa.string()) if n else pa.array([], pa.string()),
            "symbol": pa.array([symbol] * n, pa.string()) if n else pa.array([], pa.string()),
            "time_ms": raw.column("timestamp"), "trade_id": trade_id, "side": side,
            "price": raw.column("price"), "amount": raw.column("amount"),
            "received_ms": pa.array([0] * n, pa.int64())}
    return pa.table(cols, schema=TABLES["trade"].schema), errors


def import_trades(path: str | os.PathLike, store: Store, *, exchange: str | None = None,
                  symbol: str | None = None) -> ImportReport:
    """Bulk-load a recorded trades CSV into ``store`` (idempotent: the second import writes 0 rows).

    Raises
    ------
    ConfigError
        Exchange or symbol neither given nor in the file name.
    SchemaError
        Not a CSV, or the required columns are missing.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (a trades CSV, e.g. datasets/ticks/binance_BTCUSDT_trades_….csv.gz)")
    exchange, symbol = infer_market(path, exchange, symbol)
    t0 = time.perf_counter()
    table, errors = trades_table(path, exchange, symbol)
    result = store.write_table("trade", table, str(path))
    seconds = time.perf_counter() - t0
    rejected = errors + result.rejected
    rows_read = table.num_rows + len(errors)
    return ImportReport(str(path), exchange, symbol, store.url, rows_read, result.rows_written, len(rejected),
                        store.count("trade", exchange, symbol), round(seconds, 6),
                        round(rows_read / seconds, 1) if seconds > 0 else 0.0, [str(e) for e in rejected[:20]])
