"""``coinswarm ingest import`` end to end (real ticks): the printed counts, the second import
writing 0 rows, exit 2 with one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from coinswarm.cli.main import main
from tests.unit.ingest.test_ingest_store import BTC, tick_file

pytestmark = pytest.mark.timeout(120)


def test_import_twice_json(tmp_path, capsys):
    args = ["ingest", "import", str(tick_file(BTC)), "--store", f"parquet:{tmp_path}", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert (first["rows_read"], first["rows_written"], first["store_rows"]) == (2001, 2001, 2001)
    assert (second["rows_written"], second["store_rows"]) == (0, 2001)
    assert first["exchange"] == "binance" and first["symbol"] == "BTC/USDT" and first["ticks_per_s"] > 0


def test_import_plain_text_in_a_subprocess(tmp_path):
    out = subprocess.run([sys.executable, "-m", "coinswarm.cli", "ingest", "import", str(tick_file(BTC)),
                          "--store", f"parquet:{tmp_path}", "--exchange", "binance", "--symbol", "BTC-USDT"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "rows_read=2001" in out.stdout and "rows_written=2001" in out.stdout and "ticks_per_s=" in out.stdout


@pytest.mark.parametrize("extra", [["--store", "mongodb://x"], ["--store", "parquet:{tmp}", "--symbol", "BTC"]])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, extra):
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    assert main(["ingest", "import", str(tick_file(BTC)), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("coinswarm: error:")
