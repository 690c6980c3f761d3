"""``coinswarm ingest status``: exit 0 when every ingestor is healthy, 1 when one is not or the
status is stale (the scheduler stopped), 2 with one line when there is no status or bad input."""

from __future__ import annotations

import json
import time

import pytest

from coinswarm.adapters.sources.base import Health
from coinswarm.cli.main import main
from coinswarm.ingest.health import status_dict, write_status

pytestmark = pytest.mark.timeout(60)


def now_ms() -> int:
    return int(time.time() * 1000)  # noqa: TID251 (the status file is stamped with the wall clock)


def test_status_exit_codes(tmp_path, capsys):
    path = tmp_path / "status.json"
    ok = [Health("binance:trades:BTC/USDT", last_success_ms=now_ms(), lag_ms=12)]
    write_status(path, status_dict(ok, now_ms()))
    assert main(["ingest", "status", "--status-file", str(path)]) == 0
    assert "binance:trades:BTC/USDT" in capsys.readouterr().out
    bad = ok + [Health("binance:book:BTC/USDT", healthy=False, errors=3, last_error="venue down")]
    write_status(path, status_dict(bad, now_ms()))
    assert main(["ingest", "status", "--status-file", str(path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["healthy"] is False
    write_status(path, status_dict(ok, now_ms() - 120_000))  # nobody refreshed it for two minutes
    assert main(["ingest", "status", "--status-file", str(path)]) == 1
    assert "not refreshed" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["ingest", "status"], ["ingest", "status", "--status-file", "/nonexistent/s.json"],
                                  ["ingest", "run", "--config", "/nonexistent/x.toml"],
                                  ["ingest", "backfill", "--symbol", "BTC/USDT", "--since", "2024-13-01",
                                   "--store", "parquet:/tmp/x"]])
def test_status_and_run_bad_input_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("coinswarm")
