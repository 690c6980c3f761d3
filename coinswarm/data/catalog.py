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

from coinswarm.errors import ChecksumError, DatasetNotFoundError

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG_PATH = REPO_ROOT / "datasets" / "catalog.json"


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
        return ":".join(self.name.split(":")[:3])


@lru_cache(maxsize=1)
def catalog() -> tuple[CatalogEntry, ...]:
    """Return every entry of ``datasets/catalog.json``."""
    if not CATALOG_PATH.exists():
        raise DatasetNotFoundError(f"catalog file not found at {CATALOG_PATH}")
    raw = json.loads(CATALOG_PATH.read_text())
    return tuple(CatalogEntry(**entry) for entry in raw["datasets"])


def data_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Candidate data roots in search order (existing folders only)."""
    candidates: list[Path] = []
    if data_dir is not None:
        candidates.append(Path(data_dir))
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
    """Tell whether ``source`` looks like ``exchange:BASE/QUOTE:tf[:period]``."""
    parts = str(source).split(":")
    return len(parts) >= 3 and "/" in parts[1] and not Path(str(source)).exists()


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
