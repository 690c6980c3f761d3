"""``coinswarm stack``: real servers up, reachable, reported, and down again."""

import asyncio

import pytest

from coinswarm.cli import main

pytestmark = pytest.mark.integration


def test_stack_up_status_down(server_dir, capsys):
    root = server_dir / "stack"  # outside pytest's tmp tree: PostgreSQL runs as a service user
    assert main(["stack", "up", "--dir", str(root)]) == 0
    exports = dict(line.split("   #")[0].removeprefix("export ").split("=", 1)
                   for line in capsys.readouterr().out.splitlines())
    try:
        assert set(exports) == {"COINSWARM_NATS_URL", "COINSWARM_REDIS_URL", "COINSWARM_POSTGRES_URL"}
        import nats
        import redis
        import sqlalchemy as sa

        assert redis.Redis.from_url(exports["COINSWARM_REDIS_URL"]).ping()
        with sa.create_engine(exports["COINSWARM_POSTGRES_URL"]).connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1

        async def ping_nats():
            nc = await nats.connect(exports["COINSWARM_NATS_URL"])
            await nc.flush()
            await nc.close()

        asyncio.run(ping_nats())
        assert main(["stack", "status", "--dir", str(root)]) == 0
        assert main(["stack", "up", "--dir", str(root)]) == 0, "up is idempotent"
        assert exports["COINSWARM_NATS_URL"] in capsys.readouterr().out
    finally:
        assert main(["stack", "down", "--dir", str(root)]) == 0
    assert main(["stack", "status", "--dir", str(root)]) == 1
