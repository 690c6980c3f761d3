"""``coinswarm evidence --suite portfolio``: bad input exits 2 with one clear line, before any work."""

import json

import pytest

from coinswarm.backtest.portfolio_evidence import FINANCED, STRATEGIES
from coinswarm.cli import main


def test_portfolio_suite_refuses_bad_sizes_and_late_data(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["evidence", "--suite", "portfolio", "--sizes", "3", "--out", out]) == 2
    assert "--sizes" in capsys.readouterr().err
    assert main(["evidence", "--suite", "portfolio", "--sizes", "2,x", "--out", out]) == 2
    assert "--sizes" in capsys.readouterr().err
    assert main(["evidence", "--suite", "portfolio", "--end", "2025-03-01", "--out", out]) == 2
    assert "reserved" in capsys.readouterr().err
    assert main(["evidence", "--suite", "nope", "--out", out]) == 2


def test_portfolio_suite_refuses_windows_outside_its_protocol_before_any_work(tmp_path, capsys):
    """--start must open the development period (≤ 2023-12-31), --end must fall in the 2024 holdout;
    a refused run writes nothing (no report folder, no trial ledger)."""
    out, ledger = tmp_path / "r", tmp_path / "ledger.jsonl"
    common = ["evidence", "--suite", "portfolio", "--sizes", "2", "--out", str(out), "--ledger", str(ledger)]
    assert main([*common, "--start", "2024-02-01"]) == 2
    assert "--start 2024-02-01" in capsys.readouterr().err
    assert main([*common, "--end", "2023-06-30"]) == 2
    assert "give an end in 2024" in capsys.readouterr().err
    assert main([*common, "--start", "2018", "--end", "2025"]) == 2
    assert "reserved" in capsys.readouterr().err
    assert not out.exists() and not ledger.exists()


@pytest.mark.timeout(300)
def test_portfolio_suite_short_window_on_real_data_writes_its_report(tmp_path, capsys):
    """The whole protocol on a short real window (BTC+ETH, development 2023 with 120D/60D folds,
    a one-month holdout): every strategy gets a development and a holdout row (twice when it is
    also run on a financed book), and the report, the JSON and the trial ledger are written where
    the flags say."""
    out, ledger = tmp_path / "r", tmp_path / "trials" / "ledger.jsonl"
    assert main(["evidence", "--suite", "portfolio", "--sizes", "2", "--start", "2023-01-01", "--end", "2024-01-31",
                 "--train", "120D", "--test", "60D", "--out", str(out), "--ledger", str(ledger)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [line.split() for line in lines if line.startswith("N=2 ")]
    runs = [s for s in STRATEGIES for _ in ((False, True) if s in FINANCED else (False,))]
    assert len(rows) == 2 * len(runs) and "committee" in runs
    assert sorted((r[2], r[1]) for r in rows) == sorted((s, p) for s in runs for p in ("development", "holdout"))
    assert lines[-1] == f"report: {out}/portfolio_evidence.md"
    evidence = json.loads((out / "portfolio_evidence.json").read_text())
    settings = evidence["settings"]
    assert (settings["start"], settings["train"], settings["test"]) == ("2023-01-01", "120D", "60D")
    assert settings["holdout"] == "2024-01-01 … 2024-01-31"
    holdout = [r for r in evidence["rows"] if r["phase"] == "holdout"]
    assert all("2024-01-01" <= r["start"] and r["end"] <= "2024-01-31" for r in holdout)
    assert len(ledger.read_text().splitlines()) == len(rows)  # every run recorded; identical records are one trial
    assert len(runs) <= evidence["ledger"]["n_trials"] <= len(rows)
    assert f"trials in {ledger}: {evidence['ledger']['n_trials']}" in "\n".join(lines)
    assert "2024-01-01 … 2024-01-31" in (out / "portfolio_evidence.md").read_text()
