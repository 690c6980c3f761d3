"""Recorded ccxt replies (``ccxt_static/`` under the data roots) for the broker tests: load a recorded
file, pick one recorded case, and answer ``exchange.fetch`` from a list of replies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coinswarm.data.catalog import data_roots


def fixture(name: str) -> dict:
    """The recorded file ``ccxt_static/<name>`` (the test fails if it is missing)."""
    for root in data_roots():
        path = Path(root) / "ccxt_static" / name
        if path.exists():
            return json.loads(path.read_text())
    pytest.fail(f"ccxt_static/{name} not found under {data_roots()}: the recorded fixtures are required")


def case(data: dict, method: str, description: str) -> dict:
    """The recorded case of ``method`` described as ``description``."""
    return next(c for c in data["methods"][method] if c["description"] == description)


class Recorder:
    """Replaces ``exchange.fetch``: records each request, answers from a list of (url part, reply)."""

    def __init__(self, replies: list[tuple[str, object]]) -> None:
        self.replies, self.requests = replies, []

    async def __call__(self, url, method="GET", headers=None, body=None):
        self.requests.append((method, url, body))
        for part, reply in self.replies:
            if part in url:
                return json.loads(json.dumps(reply(body) if callable(reply) else reply))
        raise AssertionError(f"no fixture for {method} {url}")


def coinbase_markets(pairs: tuple[tuple[str, str], ...]) -> list[dict]:
    """ccxt market entries of Coinbase spot ``(base, quote)`` pairs (no limits, 1e-8 precision), for
    ``exchange.set_markets`` instead of a ``load_markets`` call."""
    return [{"id": f"{base}-{quote}", "symbol": f"{base}/{quote}", "base": base, "quote": quote,
             "baseId": base, "quoteId": quote, "type": "spot", "spot": True, "margin": False,
             "swap": False, "future": False, "option": False, "contract": False, "active": True,
             "precision": {"amount": 1e-8, "price": 1e-8},
             "limits": {"amount": {"min": None, "max": None}, "price": {"min": None, "max": None},
                        "cost": {"min": None, "max": None}}, "info": {}}
            for base, quote in pairs]
