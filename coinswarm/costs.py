"""Trading cost model: proportional fees, slippage and perpetual funding."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from coinswarm.errors import ConfigError


@dataclass(frozen=True)
class Costs:
    """Costs charged by the engine.

    Parameters
    ----------
    fee_bps : float, default 10
        Proportional fee on traded notional, in basis points (10 = 0.1 %, Binance spot taker).
    slippage_bps : float, default 0
        Fill price moved against the trade by this many basis points.
    funding : Series, dict of Series, or str, optional
        Perpetual funding rates per funding interval (fraction; longs pay when positive):
        one Series for a single asset, ``{symbol: Series}`` for several, or a catalog
        name such as ``"binance-perp:BTC/USDT"``.
    """

    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    funding: pd.Series | dict | str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("fee_bps", "slippage_bps"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"Costs.{name} must be a finite number ≥ 0, got {value!r}")
        if self.slippage_bps >= 10_000:
            raise ConfigError("Costs.slippage_bps must be below 10000 (100 %)")

    @property
    def fee(self) -> float:
        """Fee as a fraction of notional."""
        return self.fee_bps / 1e4

    @property
    def slippage(self) -> float:
        """Slippage as a fraction of price."""
        return self.slippage_bps / 1e4

    def describe(self) -> dict:
        """Plain description for reports."""
        return {
            "fee_bps": self.fee_bps,
            "slippage_bps": self.slippage_bps,
            "funding": self.funding if isinstance(self.funding, str) else
            ("series" if self.funding is not None else None),
        }
