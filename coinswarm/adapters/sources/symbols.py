"""Symbol normalisation: every venue spelling of a market to one canonical form.

The canonical form is ccxt's unified symbol: ``BASE/QUOTE`` for spot (``BTC/USDT``) and
``BASE/QUOTE:SETTLE`` for a perpetual swap (``BTC/USDT:USDT``). ``BTC/USDT``, ``btc-usdt``,
``BTC_USDT``, ``BTCUSDT`` and ``BTC-USD`` all normalise; a concatenated symbol is split at the
longest known quote currency it ends with
(leaving a base of at least three letters when one can: ``XBTUSD`` → ``BTC/USD``).
Venue ids are produced back with :func:`venue_symbol`.
"""

from __future__ import annotations

import re

from coinswarm.errors import ConfigError

#: Quote currencies recognised at the end of a concatenated symbol (``BTCUSDT``), longest first.
QUOTES: tuple[str, ...] = tuple(sorted(
    ("USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "JPY", "TRY", "BRL", "AUD",
     "BTC", "ETH", "BNB", "XBT"), key=len, reverse=True))
_ALIASES = {"XBT": "BTC"}
_PART = re.compile(r"^[A-Z0-9]{1,20}$")


def _asset(text: str, original: str) -> str:
    name = _ALIASES.get(text, text)
    if not _PART.match(name):
        raise ConfigError(f"symbol {original!r:.60}: {text!r:.30} is not an asset code (letters and digits); "
                          "valid: BTC/USDT, BTC-USD, BTCUSDT, BTC/USDT:USDT")
    return name


def canonical_symbol(text: str, *, perpetual: bool = False) -> str:
    """The canonical form of a market symbol.

    Parameters
    ----------
    text : str
        ``BTC/USDT``, ``BTC-USD``, ``btc_usdt``, ``BTCUSDT``, ``BTC/USDT:USDT``...
    perpetual : bool
        Whether the market is a perpetual swap settled in its quote (adds ``:QUOTE``).

    Returns
    -------
    str
        ``BTC/USDT`` (or ``BTC/USDT:USDT`` for a perpetual).

    Raises
    ------
    ConfigError
        Not a string, empty, or no base/quote split can be found.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"symbol must be a non-empty string like BTC/USDT, got {text!r:.60}")
    raw = text.strip().upper()
    settle = None
    if ":" in raw:
        raw, settle = raw.split(":", 1)
    parts = re.split(r"[/\-_]", raw)
    if len(parts) == 1:
        fits = [q for q in QUOTES if raw.endswith(q) and len(raw) > len(q)]
        quote = next((q for q in fits if len(raw) - len(q) >= 3), fits[0] if fits else None)
        if quote is None:
            raise ConfigError(f"symbol {text!r:.60} has no separator and ends with no known quote currency "
                              f"{list(QUOTES)}; write it BASE/QUOTE")
        parts = [raw[: -len(quote)], quote]
    if len(parts) != 2:
        raise ConfigError(f"symbol {text!r:.60} is not BASE/QUOTE (e.g. BTC/USDT, BTC-USD, BTCUSDT)")
    base, quote = (_asset(p, text) for p in parts)
    if settle is not None:
        return f"{base}/{quote}:{_asset(settle, text)}"
    return f"{base}/{quote}:{quote}" if perpetual else f"{base}/{quote}"


def venue_symbol(symbol: str, exchange: str) -> str:
    """The venue's own id of a canonical symbol: ``BTCUSDT`` on Binance, ``BTC-USD`` on Coinbase."""
    base, rest = canonical_symbol(symbol).split("/", 1)
    quote = rest.split(":", 1)[0]
    return f"{base}-{quote}" if exchange.startswith("coinbase") else f"{base}{quote}"


def path_symbol(symbol: str) -> str:
    """A file-name-safe spelling of a canonical symbol (``BTC/USDT:USDT`` → ``BTC-USDT-USDT``)."""
    return canonical_symbol(symbol).replace("/", "-").replace(":", "-")
