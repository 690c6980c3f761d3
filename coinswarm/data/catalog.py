"""Data catalog: catalog names (``binance:BTC/USDT:1h``) to files, and the data root.

The data root is searched in this order: an explicit ``data_dir`` argument, the
``COINSWARM_DATA_DIR`` environment variable, the repository's ``datasets/``
folder, then ``../shared/datasets`` beside the repository (and beside the
current directory).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from coinswarm.errors import ChecksumError, ConfigError, DatasetNotFoundError

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG_PATH = REPO_ROOT / "datasets" / "catalog.json"


@dataclass(frozen=True)
class CatalogName:
    """The parts of a catalog name ``exchange:BASE/QUOTE:timeframe[:period]``.

    The one parser of catalog names (:func:`parse_catalog_name`); everything that splits a
    name (loading, the CLI, the engine's symbol keys, evidence, downloads) goes through it.
    """

    exchange: str
    symbol: str
    timeframe: str
    period: str | None = None

    @property
    def base_name(self) -> str:
        """``exchange:SYMBOL:timeframe`` (without the period)."""
        return f"{self.exchange}:{self.symbol}:{self.timeframe}"

    @property
    def is_perpetual(self) -> bool:
        """Whether the venue is a perpetual-futures market (``binance-perp``)."""
        return self.exchange.endswith("-perp")

    @property
    def symbol_key(self) -> str:
        """ccxt's market key: ``BTC/USDT``, or ``BTC/USDT:USDT`` for a perpetual."""
        return f"{self.symbol}:{self.symbol.split('/')[-1]}" if self.is_perpetual else self.symbol

    @property
    def funding_name(self) -> str:
        """The catalog name of this market's funding rates (``binance-perp:BTC/USDT:funding``)."""
        return catalog_name(self.exchange, self.symbol, "funding")


def catalog_name(exchange: str, symbol: str, timeframe: str, period: str | None = None) -> str:
    """Build ``exchange:SYMBOL:timeframe[:period]`` (the inverse of :func:`parse_catalog_name`)."""
    parts = [exchange, symbol, timeframe] + ([period] if period else [])
    return ":".join(parts)


def parse_catalog_name(text: str, *, strict: bool = True) -> CatalogName | None:
    """Split ``exchange:BASE/QUOTE:timeframe[:period]`` into its parts.

    Parameters
    ----------
    text : str
        The name, e.g. ``"binance:BTC/USDT:1h"`` or ``"binance:BTC/USDT:5m:2024-01_2024-09"``.
    strict : bool
        Raise :class:`~coinswarm.errors.ConfigError` on a malformed name; with ``False``
        return ``None`` instead.
    """
    parts = str(text).split(":")
    ok = (3 <= len(parts) <= 4 and all(p.strip() and p == p.strip() for p in parts)
          and parts[1].count("/") == 1 and all(parts[1].split("/")))
    if not ok:
        if strict:
            raise ConfigError(f"'{text}' is not a catalog name exchange:BASE/QUOTE:timeframe[:period] "
                              "(e.g. binance:BTC/USDT:1h; see `coinswarm data list`)")
        return None
    return CatalogName(parts[0], parts[1], parts[2], parts[3] if len(parts) == 4 else None)


@dataclass(frozen=True)
class CatalogEntry:
    """One data set of the catalog."""

    name: str
    file: str
    sha256: str
    kind: str
    exchange: str
    market: str
    symbol: str
    timeframe: str
    source: str
    licence: str

    @property
    def base_name(self) -> str:
        """The name without its period suffix (``binance:BTC/USDT:5m``)."""
        return parse_catalog_name(self.name).base_name


@lru_cache(maxsize=1)
def catalog() -> tuple[CatalogEntry, ...]:
    """Return every entry of ``datasets/catalog.json``."""
    if not CATALOG_PATH.exists():
        raise DatasetNotFoundError(f"catalog file not found at {CATALOG_PATH}")
    raw = json.loads(CATALOG_PATH.read_text())
    return tuple(CatalogEntry(**entry) for entry in raw["datasets"])


def data_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Candidate data roots in search order (existing folders only).

    Raises
    ------
    DatasetNotFoundError
        ``data_dir`` or ``COINSWARM_DATA_DIR`` is given but is not an existing folder.
    """
    candidates: list[Path] = []
    if data_dir is not None:
        candidates.append(Path(data_dir))
    for label, given in (("data_dir", data_dir), ("COINSWARM_DATA_DIR", os.environ.get("COINSWARM_DATA_DIR"))):
        if given is not None and str(given) and not Path(given).is_dir():
            raise DatasetNotFoundError(f"{label} {str(given)!r} is not an existing folder; "
                                       "point it at a data root (the folder holding ohlcv/)")
    env = os.environ.get("COINSWARM_DATA_DIR")
    if env:
        candidates.append(Path(env))
    candidates.append(REPO_ROOT / "datasets")
    candidates.append(REPO_ROOT.parent / "shared" / "datasets")
    candidates.append(Path.cwd().parent / "shared" / "datasets")
    seen: list[Path] = []
    for path in candidates:
        resolved = path.resolve()
        if resolved.is_dir() and resolved not in seen:
            seen.append(resolved)
    return seen


def is_catalog_name(source: str) -> bool:
    """Tell whether ``source`` looks like ``exchange:BASE/QUOTE:tf[:period]`` (and is no file)."""
    return parse_catalog_name(source, strict=False) is not None and not path_exists(str(source))


def path_exists(text: str) -> bool:
    """``Path(text).exists()``, ``False`` for names no file system accepts (NUL bytes, too long)."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def find_entry(name: str) -> CatalogEntry:
    """Resolve a catalog name; the period suffix may be left out when unambiguous.

    Raises
    ------
    DatasetNotFoundError
        Unknown name, or a name that matches several periods.
    """
    entries = catalog()
    for entry in entries:
        if entry.name.lower() == name.lower():
            return entry
    matches = [e for e in entries if e.base_name.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        options = ", ".join(e.name for e in matches)
        raise DatasetNotFoundError(f"'{name}' matches several data sets; pick one of: {options}")
    known = ", ".join(sorted({e.base_name for e in entries})[:12])
    raise DatasetNotFoundError(f"unknown data set '{name}'; known names include: {known} …")


def resolve_path(entry: CatalogEntry, data_dir: str | os.PathLike | None = None) -> Path:
    """Locate the file of ``entry`` under the first data root that holds it."""
    roots = data_roots(data_dir)
    for root in roots:
        path = root / entry.file
        if path.exists():
            return path
    searched = ", ".join(str(r) for r in roots) or "(no data root exists)"
    raise DatasetNotFoundError(
        f"file {entry.file} of '{entry.name}' not found under: {searched}; "
        "set COINSWARM_DATA_DIR or run `coinswarm data download`"
    )


def verify_checksum(entry: CatalogEntry, path: Path) -> None:
    """Raise :class:`ChecksumError` when ``path``'s sha256 differs from the catalog's."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry.sha256:
        raise ChecksumError(
            f"sha256 {digest} differs from the catalog's {entry.sha256}", source=str(path)
        )
