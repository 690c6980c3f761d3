"""Schema contract: the tools' input and output schemas and annotations, and the resources'
URIs, equal the stored snapshot ``mcp_schemas.json``. A change to any of them fails here:
if it is meant, regenerate with ``COINSWARM_UPDATE_MCP_SCHEMAS=1 pytest tests/unit/mcpserver/test_mcp_schemas.py``
and say in the commit what changed for clients."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from mcp import Client

SNAPSHOT = Path(__file__).with_name("mcp_schemas.json")


def contract(app) -> dict:
    async def main():
        async with Client(app.server) as client:
            tools = (await client.list_tools()).tools
            resources = (await client.list_resources()).resources
            templates = (await client.list_resource_templates()).resource_templates
            return tools, resources, templates

    tools, resources, templates = asyncio.run(main())
    return {
        "tools": {t.name: {"input": t.input_schema, "output": t.output_schema,
                           "annotations": t.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)}
                  for t in sorted(tools, key=lambda t: t.name)},
        "resources": sorted(str(r.uri) for r in resources),
        "templates": sorted(t.uri_template for t in templates),
    }


def test_tool_and_resource_schemas_equal_the_snapshot(app):
    got = json.loads(json.dumps(contract(app)))
    if os.environ.get("COINSWARM_UPDATE_MCP_SCHEMAS") == "1":
        SNAPSHOT.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    stored = json.loads(SNAPSHOT.read_text())
    for name in sorted(set(stored["tools"]) | set(got["tools"])):
        assert got["tools"].get(name) == stored["tools"].get(name), f"tool {name}'s schema changed"
    assert got == stored


def test_the_snapshot_pins_what_clients_rely_on():
    stored = json.loads(SNAPSHOT.read_text())
    place = stored["tools"]["place_order"]
    assert place["annotations"]["destructiveHint"] is True and place["annotations"]["readOnlyHint"] is False
    assert set(place["input"]["required"]) == {"symbol", "side", "qty"}
    assert stored["tools"]["get_regime"]["annotations"]["readOnlyHint"] is True
    verdict = stored["tools"]["walk_forward"]["output"]["properties"]
    assert {"passed", "dsr", "pbo", "n_trials", "reasons"} <= set(verdict)
