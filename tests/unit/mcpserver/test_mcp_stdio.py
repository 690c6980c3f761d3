"""``coinswarm mcp`` as a real subprocess over stdio (the SDK's stdio client), and over
streamable HTTP on loopback with a bearer token: listing, reading, calling, order validation,
error propagation, 20 concurrent requests; the paper order lands in the ledger that
``coinswarm live report --db URL`` reads."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from mcp import Client, StdioServerParameters

from coinswarm.live.ledger import Ledger

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LIMITS = ["--symbols", "BTC/USDT", "--max-order-notional", "500", "--max-position", "0.01",
          "--max-daily-notional", "2000"]


def env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": ROOT, **extra}


def server(db: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "coinswarm.cli", "mcp", "--db", db, *LIMITS],
                                 env=env(), cwd=ROOT)


@pytest.mark.timeout(300)
def test_stdio_server_lists_reads_calls_and_validates(tmp_path):
    db = f"sqlite:///{tmp_path / 'paper.db'}"

    async def main():
        async with Client(server(db), read_timeout_seconds=120) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            uris = {str(r.uri) for r in (await client.list_resources()).resources}
            candles = json.loads((await client.read_resource("candles://binance/BTC-USDT/1h?limit=2")).contents[0].text)
            regime = await client.call_tool("get_regime", {"data": "binance:BTC/USDT:1h"})
            placed = await client.call_tool("place_order", {"symbol": "BTC/USDT", "side": "buy", "qty": 0.001})
            too_big = await client.call_tool("place_order", {"symbol": "BTC/USDT", "side": "buy", "qty": 0.009})
            not_listed = await client.call_tool("place_order", {"symbol": "ETH/USDT", "side": "buy", "qty": 0.01})
            bad_args = await client.call_tool("run_backtest", {"fee_bps": "lots"})
            verdict = await client.call_tool("walk_forward", {
                "data": "binance:BTC/USDT:1h", "grid": {"fast": [10, 20], "slow": [50, 100]},
                "start": "2022-01-01", "end": "2022-12-31", "train": "120D", "test": "60D"})
            many = await asyncio.gather(*[client.call_tool("get_regime", {"data": "binance:BTC/USDT:1h",
                                                                          "at": f"2023-01-{d:02d}"})
                                          for d in range(1, 21)])
            return tools, uris, candles, regime, placed, too_big, not_listed, bad_args, many, verdict

    tools, uris, candles, regime, placed, too_big, not_listed, bad_args, many, verdict = asyncio.run(main())
    assert not verdict.is_error and verdict.structured_content["n_trials"] == 4 * verdict.structured_content["n_folds"]
    assert {"passed", "dsr", "pbo", "reasons"} <= set(verdict.structured_content)
    assert {"get_regime", "place_order", "walk_forward"} <= tools and "ledger://orders" in uris
    assert len(candles["bars"]) == 2
    assert not regime.is_error and regime.structured_content["cell"].count("/") == 1
    assert not placed.is_error and placed.structured_content["status"] == "filled"
    assert too_big.is_error and "max_order_notional" in too_big.content[0].text
    assert not_listed.is_error and "allowlist" in not_listed.content[0].text
    assert bad_args.is_error and "fee_bps" in bad_args.content[0].text
    assert [r.structured_content["time"][:10] for r in many] == [f"2023-01-{d:02d}" for d in range(1, 21)]
    ledger = Ledger(db)
    try:
        report = ledger.report()
    finally:
        ledger.close()
    assert [o["client_order_id"] for o in report["orders"]] == [placed.structured_content["client_order_id"]]
    assert report["positions"]["BTC/USDT"]["qty"] == pytest.approx(0.001)


@pytest.mark.parametrize("flags, words", [
    (["--http", "8000", "--host", "0.0.0.0"], "COINSWARM_MCP_TOKEN"),
    (["--symbols", "btc"], "BASE/QUOTE"),
    (["--live", "--venue", "binance"], "keys"),
    (["--db", "nonsense"], "URL"),
])
def test_bad_start_up_exits_2_with_one_clear_line(flags, words, tmp_path):
    extra = [] if "--db" in flags else ["--db", f"sqlite:///{tmp_path / 'x.db'}"]
    clean = {k: v for k, v in env().items() if not k.startswith(("COINSWARM_BINANCE", "COINSWARM_MCP_TOKEN"))}
    done = subprocess.run([sys.executable, "-m", "coinswarm.cli", "mcp", *extra, *flags], env=clean, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and done.stderr.count("\n") == 1, done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_http_server_requires_its_bearer_token(tmp_path):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    port, token = free_port(), "t" * 24
    process = subprocess.Popen([sys.executable, "-m", "coinswarm.cli", "mcp", "--db",
                                f"sqlite:///{tmp_path / 'paper.db'}", "--http", str(port), *LIMITS],
                               env=env(COINSWARM_MCP_TOKEN=token), cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                refused = httpx2.post(url, json={}, timeout=5)
                break
            except httpx2.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()
                time.sleep(0.2)
        assert refused.status_code == 401

        async def main():
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
                async with Client(streamable_http_client(url, http_client=http)) as client:
                    return await client.call_tool("get_regime", {"data": "binance:BTC/USDT:1h"})

        result = asyncio.run(main())
        assert not result.is_error and result.structured_content["data"] == "binance:BTC/USDT:1h"
    finally:
        process.terminate()
        process.wait(timeout=20)
