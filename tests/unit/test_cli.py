import json

from coinswarm.cli import main, parse_grid


def test_walkforward_cli_writes_report(tmp_path, capsys):
    out = tmp_path / "wf.json"
    code = main(["walkforward", "--data", "binance:ETH/USDT:1h", "--grid", "fast=10:30:10",
                 "--grid", "slow=50,100", "--json", str(out), "--plot", str(tmp_path / "wf.png"),
                 "--no-progress"])
    assert code == 0
    report = json.loads(out.read_text())
    for key in ("oos_sharpe", "psr", "dsr", "pbo", "n_trials", "passed", "reasons", "folds"):
        assert key in report
    assert (tmp_path / "wf.png").exists()
    assert "walk-forward sma_cross" in capsys.readouterr().out


def test_backtest_and_sweep_cli(tmp_path, capsys):
    assert main(["backtest", "--params", "fast=20,slow=100", "--start", "2023",
                 "--json", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["assumptions"]["fee_bps"] == 10
    assert main(["sweep", "--grid", "fast=5:10:5;slow=20:30:10", "--no-progress",
                 "--csv", str(tmp_path / "s.csv")]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 5


def test_errors_are_one_line_without_traceback(capsys):
    assert main(["backtest", "--data", "nowhere:BTC/USDT:1h"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coinswarm: error: unknown data set") and "Traceback" not in err
    assert main(["sweep", "--grid", "fast=x"]) == 2


def test_data_commands(capsys):
    assert main(["data", "list"]) == 0
    assert "binance:BTC/USDT:1h" in capsys.readouterr().out
    assert main(["data", "validate", "binance:SOL/USDT:1h"]) == 0
    assert "20 missing bars" in capsys.readouterr().out


def test_grid_parsing():
    assert parse_grid(["fast=5:50:5"], "sma_cross")["fast"] == list(range(5, 51, 5))
    assert parse_grid(None, "sma_cross")["slow"] == list(range(20, 211, 10))


def test_agent_strategies_from_the_cli(tmp_path, capsys):
    assert main(["backtest", "--strategy", "committee", "--start", "2023", "--json", str(tmp_path / "c.json")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["strategy"] == "committee"
    assert main(["backtest", "--strategy", "arbitrage", "--data", "binance:ETH/USDT:1h,binance:BTC/USDT:1h",
                 "--start", "2023"]) == 0
    assert main(["backtest", "--strategy", "carry", "--data", "binance:BTC/USDT:1h,binance-perp:BTC/USDT:1h",
                 "--funding", "binance-perp:BTC/USDT", "--start", "2021", "--end", "2021-12-31",
                 "--json", str(tmp_path / "k.json")]) == 0
    carry = json.loads((tmp_path / "k.json").read_text())
    assert carry["assumptions"]["symbols"] == ["BTC/USDT", "BTC/USDT:USDT"]
    assert carry["metrics"]["funding_paid"] < 0
    assert main(["sweep", "--strategy", "trend", "--start", "2023", "--no-progress"]) == 0
    assert "6 combinations" in capsys.readouterr().out


def test_default_grid_of_an_agent():
    grid = parse_grid(None, "mean_reversion")
    assert grid == {"window": [48, 72, 168], "entry": [1.5, 2.0, 2.5]}


def test_evidence_cli_writes_report_and_figures(tmp_path, capsys):
    out = tmp_path / "reports"
    assert main(["evidence", "--pairs", "BTC,ETH", "--start", "2021-01-01", "--end", "2023-12-31",
                 "--train", "180D", "--test", "90D", "--out", str(out), "--no-progress"]) == 0
    text = (out / "agents_walkforward.md").read_text()
    for needle in ("| BTC/USDT | committee |", "| ETH/USDT vs BTC/USDT | arbitrage |", "| ETH spot/perp | carry |",
                   "Correlation", "fees 10 bps"):
        assert needle in text
    data = json.loads((out / "agents_walkforward.json").read_text())
    assert len(data["rows"]) == 2 * 5 + 1 + 2
    for png in ("regimes_btc.png", "committee_weights_btc.png", "committee_attribution_btc.png"):
        assert (out / png).stat().st_size > 10_000


def test_quorum_command_refuses_bad_settings_before_connecting(capsys, monkeypatch):
    monkeypatch.delenv("COINSWARM_NATS_URL", raising=False)
    monkeypatch.delenv("COINSWARM_POSTGRES_URL", raising=False)
    monkeypatch.delenv("COINSWARM_QUORUM_SECRET", raising=False)
    urls = ["--nats", "nats://127.0.0.1:1", "--store", "sqlite:///unused.db"]
    assert main(["quorum", "node", "--name", "m1"]) == 2
    assert "needs --nats and --store" in capsys.readouterr().err
    assert main(["quorum", "node", *urls]) == 2
    assert "needs --name" in capsys.readouterr().err
    assert main(["quorum", "node", "--name", "m1", "--managers", "m1,m2,m3", *urls]) == 2
    assert "cannot tolerate f=1" in capsys.readouterr().err
    assert main(["quorum", "node", "--name", "m9", *urls]) == 2
    assert "'m9' is not one of" in capsys.readouterr().err
    assert main(["quorum", "node", "--name", "m1", *urls]) == 2
    assert "set COINSWARM_QUORUM_SECRET" in capsys.readouterr().err


# --- issue 17: every malformed input is one line on stderr, exit 2, no traceback -----------------

import pytest  # noqa: E402


def _one_line_error(capsys, argv, match):
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("coinswarm: error:") or err.startswith("coinswarm "), err
    assert match in err, err


@pytest.mark.parametrize(("argv", "match"), [
    (["backtest", "--start", "2018-13-45"], "'2018-13-45' is not an ISO-8601"),
    (["walkforward", "--train", "1y"], "'1y' is not a duration"),
    (["walkforward", "--test", "0D"], "--test='0D' must be > 0"),
    (["walkforward", "--purge=-10D"], "must be ≥ 0"),
    (["backtest", "--fee-bps", "20000"], "outside the valid range 0 to 1000 bps"),
    (["backtest", "--fee-bps", "nan"], "not a finite number"),
    (["backtest", "--init-cash", "-5"], "must be > 0"),
    (["backtest", "--cash-rate", "4"], "4 is not an annual fraction in [0, 1) (write 0.04 for 4 % a year)"),
    (["walkforward", "--borrow-rate", "-0.1"], "is not an annual fraction in [0, 1)"),
    (["sweep", "--sort", "nope", "--no-progress"], "--sort 'nope' is not a column; use a metric (total_return"),
    (["sweep", "--grid", "fast=0:1e12:1"], "at most 10,000"),
    (["sweep", "--grid", "fast=5:1:1"], "need start ≤ stop"),
    (["backtest", "--params", "fast=5:50:5"], "takes one value"),
    (["backtest", "--params", "fast=2.5"], "cannot use 2.5 as int"),
    (["backtest", "--params", "fast=200,slow=100"], "fast=200 ≥ slow=100"),
    (["backtest", "--start", "2030"], "the data covers"),
    (["backtest", "--start", "2024", "--end", "2023"], "--end 2023 is before --start 2024"),
    (["backtest", "--strategy", "moon"], "invalid choice: 'moon' (choose from 'arbitrage'"),
    (["walkforward", "--objective", "fast"], "invalid choice: 'fast' (choose from 'total_return'"),
    (["backtest", "--fee-bps", "5000"], "outside the valid range 0 to 1000 bps"),
    (["backtest", "--end", "2010"], "the data covers 2017-08-17"),
    (["backtest", "--config", "/no/such.toml"], "no such file"),
    (["walkforward", "--min-dsr", "2"], "not a probability"),
    (["data", "validate", "binance:BTC/USDT:1h", "--timeframe", "0h"], "unknown timeframe '0h'"),
    (["nope"], "invalid choice"),
    (["sweep", "--top", "0"], "outside the valid range 1"),
])
def test_malformed_arguments_are_one_line(capsys, argv, match):
    _one_line_error(capsys, argv, match)


def test_outputs_into_a_missing_folder_are_refused_before_the_run(capsys, tmp_path, monkeypatch):
    import coinswarm.data.load as load

    def no_load(*_a, **_k):
        raise AssertionError("data was loaded before the output folder was checked")

    monkeypatch.setattr(load, "load_ohlcv", no_load)
    missing = str(tmp_path / "no" / "such" / "x.json")
    _one_line_error(capsys, ["backtest", "--json", missing], "does not exist")
    _one_line_error(capsys, ["walkforward", "--plot", str(tmp_path / "no" / "w.png")], "does not exist")
    _one_line_error(capsys, ["sweep", "--csv", str(tmp_path / "no" / "s.csv")], "does not exist")


def test_data_download_without_network_is_one_line(capsys, tmp_path, monkeypatch):
    import ccxt

    import coinswarm.adapters.exchanges as exchanges

    class Offline:
        id = "binance"

        def fetch_ohlcv(self, *args):
            raise ccxt.NetworkError("binance GET https://api.binance.com failed: Name or service not known")

    monkeypatch.setattr(exchanges, "make_exchange", lambda name: Offline())
    _one_line_error(capsys, ["data", "download", "--symbol", "BTC/USDT", "--since", "2024-01-01",
                             "--out", str(tmp_path / "b.csv")], "fetch_ohlcv(BTC/USDT, 1h) failed: NetworkError")
    _one_line_error(capsys, ["data", "download", "--symbol", "BTC/USDT", "--since", "2024-13-01",
                             "--out", str(tmp_path / "b.csv")], "is not an ISO-8601")
    _one_line_error(capsys, ["data", "download", "--symbol", "BTC/USDT", "--since", "2024",
                             "--out", str(tmp_path / "no" / "b.csv")], "does not exist")


def test_a_bug_is_one_line_exit_3_and_debug_shows_it(capsys, monkeypatch):
    import sys

    cli = sys.modules["coinswarm.cli.main"]

    def broken(args):
        raise KeyError("boom")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), broken))
    assert main(["backtest"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "--debug" in err
    with pytest.raises(KeyError):
        main(["--debug", "backtest"])


def _with_func(parser, func):
    parser._subparsers._group_actions[0].choices["backtest"].set_defaults(func=func)
    return parser
