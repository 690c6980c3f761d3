"""Trading cost model: proportional fees, slippage, perpetual funding, and the financing of the
book (interest on idle cash, borrow fees on short spot positions)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from coinswarm.errors import ConfigError

MAX_BPS = 1000  # 10 % of notional per fill: anything above is a typo, not a market


def check_funding(funding, where: str = "Costs.funding") -> None:
    """Funding must be ``None``, a catalog name, a Series of finite rates (|rate| < 1) on a sorted UTC
    ``DatetimeIndex``, or a dict of symbol → one of those; raises :class:`ConfigError`."""
    if funding is None or isinstance(funding, str):
        return
    if isinstance(funding, dict):
        for symbol, series in funding.items():
            if not isinstance(symbol, str):
                raise ConfigError(f"{where}: keys must be symbol names, got {symbol!r}")
            if series is not None and not isinstance(series, str | pd.Series):
                raise ConfigError(f"{where}[{symbol!r}] must be a Series or a catalog name, "
                                  f"got {type(series).__name__}")
            check_funding(series, f"{where}[{symbol!r}]")
        return
    if not isinstance(funding, pd.Series):
        raise ConfigError(f"{where} must be a Series, a dict of them or a catalog name, got {type(funding).__name__}")
    index = funding.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None or str(index.tz) != "UTC":
        raise ConfigError(f"{where} needs a UTC DatetimeIndex of funding times")
    if not index.is_monotonic_increasing:
        raise ConfigError(f"{where}: funding times must be sorted ascending")
    if funding.dtype.kind not in "fiu":
        raise ConfigError(f"{where}: rates must be numbers, got dtype {funding.dtype}")
    rates = funding.to_numpy(np.float64)
    bad = np.flatnonzero(~(np.abs(rates) < 1.0))
    if bad.size:
        raise ConfigError(f"{where}: rate {float(rates[bad[0]])!r} at {index[bad[0]]} is not a finite fraction "
                          "with |rate| < 1 (0.0001 = 0.01 % per interval)")


@dataclass(frozen=True)
class Costs:
    """Costs charged by the engine.

    Parameters
    ----------
    fee_bps : float, default 10
        Proportional fee on traded notional, in basis points (10 = 0.1 %, Binance spot taker),
        0 ≤ fee_bps ≤ 1000.
    slippage_bps : float, default 0
        Fill price moved against the trade by this many basis points, 0 ≤ slippage_bps ≤ 1000.
    funding : Series, dict of Series, or str, optional
        Perpetual funding rates per funding interval (fraction; longs pay when positive,
        |rate| < 1): one Series on a UTC ``DatetimeIndex`` for a single asset,
        ``{symbol: Series}`` for several, or a catalog name such as ``"binance-perp:BTC/USDT"``.
    cash_rate : float, default 0
        Annual interest **credited** on idle cash, in [0, 1) (0.04 = 4 % a year): for each UTC day,
        at the first bar close at or after its end (:func:`coinswarm.kernels.days.finance_days`:
        after a gap in the data every day passed, in turn; a day the data end in is not financed),
        ``max(0, equity − gross exposure) × ((1 + cash_rate)^(1/365) − 1)``. Every position
        commits its full notional (no interest on margin or on short-sale proceeds). 0 models
        quote currency that earns nothing (USDT in a spot wallet); set it to the rate you
        subtract for excess returns when idle cash is really parked in a money-market product.
    borrow_rate : float, default 0
        Annual fee **charged** on the value of every short position in an asset without funding
        (a short spot sale needs a margin loan; perpetuals pay funding instead), in [0, 1),
        accrued the same way at each day's end; a levered spot long pays it too, on the
        quote currency it borrows (the negative cash of the spot legs).

    Raises
    ------
    ConfigError
        A fee or slippage that is not a real number in [0, 1000] bps, funding rates that are
        not finite numbers on a sorted UTC index, or a cash or borrow rate outside [0, 1).
    """

    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    funding: pd.Series | dict | str | None = field(default=None, compare=False)
    cash_rate: float = 0.0
    borrow_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("fee_bps", "slippage_bps"):
            value = getattr(self, name)
            if (not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_)
                    or not math.isfinite(value) or not 0 <= value <= MAX_BPS):
                raise ConfigError(f"Costs.{name} must be a number of basis points in [0, {MAX_BPS}] "
                                  f"(10 = 0.1 %), got {value!r}")
        for name in ("cash_rate", "borrow_rate"):
            value = getattr(self, name)
            if (not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_)
                    or not math.isfinite(value) or not 0 <= value < 1):
                raise ConfigError(f"Costs.{name} must be an annual fraction in [0, 1) (0.04 = 4 % a year), "
                                  f"got {value!r}")
        check_funding(self.funding)

    @property
    def fee(self) -> float:
        """Fee as a fraction of notional."""
        return self.fee_bps / 1e4

    @property
    def slippage(self) -> float:
        """Slippage as a fraction of price."""
        return self.slippage_bps / 1e4

    @property
    def financed(self) -> bool:
        """Whether idle cash earns interest or shorts pay a borrow fee."""
        return self.cash_rate != 0.0 or self.borrow_rate != 0.0

    def describe(self) -> dict:
        """Plain description for reports (the financing rates only when set)."""
        out = {
            "fee_bps": self.fee_bps,
            "slippage_bps": self.slippage_bps,
            "funding": self.funding if isinstance(self.funding, str) else
            ("series" if self.funding is not None else None),
        }
        if self.financed:
            out.update(cash_rate=float(self.cash_rate), borrow_rate=float(self.borrow_rate))
        return out
