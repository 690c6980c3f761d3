"""``propose_memory`` through a real quorum: the MCP server publishes on NATS ``mem.propose``,
four manager nodes vote, the applier commits to PostgreSQL, and ``query_memory`` then reads
the committed pattern — the server never writes memory itself. A proposal the managers refuse
is decided but never reaches memory."""

from __future__ import annotations

import asyncio

import pytest
from mcp import Client
from quorum_harness import clock, start_cluster, wait_until

from coinswarm.mcpserver import ServerConfig, build_server
from coinswarm.memory.models import DecisionRow
from coinswarm.quorum import COMMITTED

pytestmark = pytest.mark.integration

STATS = {"n": 150, "mean": 0.002, "std": 0.01, "win_rate": 0.56, "p05": -0.01, "p95": 0.02}


def decided(store, proposal_id):
    with store.sessions() as s:
        row = s.get(DecisionRow, proposal_id)
        return None if row is None else row.status


@pytest.mark.timeout(180)
def test_a_proposal_from_mcp_is_committed_by_the_quorum_and_then_readable(nats_url, postgres_url, store, tmp_path):
    app = build_server(ServerConfig(db=f"sqlite:///{tmp_path / 'paper.db'}", memory=postgres_url, nats=nats_url),
                       clock)
    good = {"kind": "update_pattern", "data_time_ms": clock() - 3_600_000,
            "data": {"key": "normal-vol/up|trend", "stats": {**STATS, "mean_slippage_bps": 3.0}}}
    bad = {"kind": "update_pattern", "data_time_ms": clock() - 3_600_000,
           "data": {"key": "normal-vol/up|trend", "stats": {**STATS, "n": 151, "mean_slippage_bps": 40.0}}}

    async def main():
        cluster = await start_cluster(nats_url, store, prefix="mcp")
        try:
            async with Client(app.server) as client:
                accepted = (await client.call_tool("propose_memory", good)).structured_content
                refused = (await client.call_tool("propose_memory", bad)).structured_content
                assert await wait_until(lambda: decided(store, accepted["proposal_id"]) is not None
                                        and decided(store, refused["proposal_id"]) is not None, 60)
                memory = (await client.call_tool("query_memory", {"key_prefix": "normal-vol/up"})).structured_content
                return accepted, refused, memory
        finally:
            await cluster.close()
            await app.aclose()

    accepted, refused, memory = asyncio.run(main())
    assert accepted["submitted"] and refused["submitted"]
    assert decided(store, accepted["proposal_id"]) == COMMITTED
    assert decided(store, refused["proposal_id"]) != COMMITTED  # 40 bps slippage: the managers say no
    [item] = memory["items"]
    assert item["trust"] == "untrusted" and item["content"]["n"] == 150
