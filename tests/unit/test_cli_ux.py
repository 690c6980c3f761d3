"""Issue 21: the command line a newcomer meets — help with defaults and choices, --version,
--config files, the default data said aloud, fee warnings, broken pipes, one unit convention."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coinswarm.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _help(capsys, *argv) -> str:
    assert main([*argv, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_defaults_choices_and_examples(capsys):
    text = _help(capsys, "walkforward")
    for needle in ("(default: 365D)", "(default: sharpe)", "(default: 0.5)", "(default: 10.0)",
                   "a registered strategy: arbitrage, buy_and_hold, carry, committee",
                   "examples: coinswarm walkforward"):
        assert needle in text, needle
    objective = text.split("--objective METRIC")[1].split("(default")[0]
    assert "sharpe" in objective and "fast" not in objective and "slow" not in objective
    top = _help(capsys)
    assert "examples:" in top and "fractions in data" in top and "exit codes" in top


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("coinswarm ")


def test_parsing_and_top_level_help_load_no_numba():
    code = ("import sys; from coinswarm.cli import build_parser; build_parser().parse_args(['backtest', "
            "'--fee-bps', '5']); assert 'numba' not in sys.modules and 'pandas' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                   timeout=60)


def test_left_out_data_is_said_on_stderr_and_fees_above_the_bound_warn(capsys):
    assert main(["backtest", "--start", "2024-06", "--end", "2024-06-30", "--fee-bps", "150"]) == 0
    out, err = capsys.readouterr()
    assert "no --data given: using binance:BTC/USDT:1h" in err
    assert "warning: --fee-bps 150 is 1.5% per fill" in err
    assert "fees 150 bps" in out and "BTC/USDT" in out


def test_a_financed_backtest_says_its_rates_and_what_idle_cash_earned(capsys, tmp_path):
    out = tmp_path / "r.json"
    assert main(["backtest", "--start", "2024-06", "--end", "2024-06-30", "--cash-rate", "0.04",
                 "--borrow-rate", "0.1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["assumptions"]["cash_rate"] == 0.04 and report["assumptions"]["borrow_rate"] == 0.1
    assert report["metrics"]["interest_earned"] > 0 and report["metrics"]["borrow_paid"] == 0


def test_config_file_gives_defaults_and_flags_win(capsys, tmp_path):
    out = tmp_path / "r.json"
    assert main(["backtest", "--config", str(ROOT / "runners" / "research.example.toml"),
                 "--start", "2023", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["params"] == {"fast": 20, "slow": 100}
    assert report["assumptions"]["slippage_bps"] == 2 and report["assumptions"]["start"].startswith("2023-01-01")
    assert "fees 10 bps, slippage 2 bps" in capsys.readouterr().out


@pytest.mark.parametrize(("text", "match"), [
    ("fee_bps = 20000", "outside the valid range"),
    ("fees = 10", "'fees' is no flag of"),
    ("[backtest]\ngrid = '1'", "[backtest] 'grid' is not a flag of backtest"),
    ("[bactest]\nstart = '2020'", "table [bactest] is not one of"),
    ("execution = 'later'", "'later' is not one of next_open, close"),
    ("no_progress = 'yes'", "must be true or false"),
    ("start = [1, [2]]", "must be a string or a number"),
    ("start = ", "is not valid TOML"),
])
def test_a_bad_config_file_is_one_line(capsys, tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    assert main(["backtest", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err


def test_data_list_into_a_closed_pipe_is_quiet():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(f"{sys.executable} -m coinswarm.cli data list | head -1", shell=True, env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.stdout.count("\n") == 1 and proc.stderr == "", proc.stderr


def test_a_missing_data_dir_is_one_line_before_listing(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COINSWARM_DATA_DIR", str(tmp_path / "nowhere"))
    assert main(["data", "list"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "COINSWARM_DATA_DIR" in err and "is not an existing folder" in err


def test_sweep_table_in_percent_and_drawdown_sorted_best_first(capsys, tmp_path):
    csv = tmp_path / "s.csv"
    assert main(["sweep", "--start", "2023", "--grid", "fast=5,10,20;slow=50,100", "--sort", "max_drawdown",
                 "--no-progress", "--csv", str(csv)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "fees 10 bps" in lines[0] and "sorted by max_drawdown, best first" in lines[0]
    header = lines[1].split()
    assert "total_return%" in header and "max_drawdown%" in header
    column = header.index("max_drawdown%")
    drawdowns = [float(line.split()[column]) for line in lines[2:]]
    assert drawdowns == sorted(drawdowns) and all(0 < d < 100 for d in drawdowns)
    import pandas as pd

    table = pd.read_csv(csv)  # data stays in fractions
    assert table["max_drawdown"].max() < 1 and round(100 * table["max_drawdown"].min(), 2) == drawdowns[0]


def test_fees_print_the_same_from_python_and_the_cli(capsys):
    import coinswarm as cs

    btc = cs.load_ohlcv("binance:BTC/USDT:1h", start="2024-06", end="2024-06-30")
    sma = cs.get_strategy("sma_cross")
    targets = sma.targets(btc, cs.SmaCrossParams(fast=10, slow=50))
    for fee in (10, 10.0):
        text = str(cs.simulate(btc, targets, costs=cs.Costs(fee_bps=fee)))
        assert "fees 10 bps, slippage 0 bps" in text and " days, " in text


def test_walkforward_and_evidence_share_one_gate():
    import coinswarm as cs
    from coinswarm.backtest.defaults import GATE_DEFAULTS

    assert cs.Gate().max_pbo == GATE_DEFAULTS["max_pbo"] == 0.5
    defaults = {a.dest: a.default for a in build_parser()._subparsers._group_actions[0].choices["walkforward"]._actions}
    assert {k: defaults[k] for k in ("min_sharpe", "min_dsr", "max_pbo")} == {
        k: GATE_DEFAULTS[k] for k in ("min_sharpe", "min_dsr", "max_pbo")}
    assert str(cs.Gate()) == "OOS Sharpe >= 1.5, DSR >= 0.95, PBO <= 0.5 (min 10 trades)"
    assert cs.Gate().evaluate(2.0, 0.99, 0.7, 50) == ["PBO 0.700 > 0.5"]


def test_quorum_submit_and_decisions_refuse_bad_input_before_connecting(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("COINSWARM_NATS_URL", raising=False)
    cases = [(["quorum", "submit", str(tmp_path / "none.json")], "no such file"),
             (["quorum", "submit", str(ROOT / "runners" / "proposal.example.json")], "needs --nats"),
             (["quorum", "decisions"], "needs --nats"),
             (["quorum", "decisions", "--count", "0"], "outside the valid range 1"),
             (["quorum", "nope"], "invalid choice")]
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "planner_weights", "submitter": "me"}\n')
    cases.append((["quorum", "submit", str(bad)], "missing ['data_time']"))
    bad2 = tmp_path / "bad2.json"
    bad2.write_text("not json\n")
    cases.append((["quorum", "submit", str(bad2)], "neither JSON nor JSON lines"))
    for argv, match in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and match in err, (argv, err)


def test_quorum_submit_reads_a_list_json_lines_and_fills_id_and_time():
    from coinswarm.cli.quorum import read_proposals

    one = json.loads((ROOT / "runners" / "proposal.example.json").read_text())
    loose = {k: v for k, v in one.items() if k != "id"}
    got = read_proposals(str(ROOT / "runners" / "proposal.example.json"), now_ms=1_735_690_000_000)
    assert [p.id for p in got] == ["example-planner-weights-1"] and got[0].timestamp == 1_735_690_000_000
    import io

    sys.stdin, saved = io.StringIO(json.dumps(loose) + "\n" + json.dumps(one) + "\n"), sys.stdin
    try:
        both = read_proposals("-", now_ms=1_735_690_000_000)
    finally:
        sys.stdin = saved
    assert both[0].id.startswith("cli-") and both[1].id == one["id"]


def test_json_holds_equity_fills_and_folds(tmp_path):
    bt, wf = tmp_path / "b.json", tmp_path / "w.json"
    assert main(["backtest", "--start", "2023", "--params", "fast=10,slow=50", "--json", str(bt)]) == 0
    report = json.loads(bt.read_text())
    assert len(report["equity"]["time"]) == len(report["equity"]["equity"]) == report["assumptions"]["n_bars"]
    assert len(report["fills"]) == report["metrics"]["n_fills"] > 0
    assert set(report["fills"][0]) == {"time", "symbol", "side", "qty", "price", "fee"}
    assert report["equity"]["equity"][-1] == pytest.approx(report["metrics"]["final_equity"])
    assert main(["walkforward", "--start", "2022", "--end", "2023", "--grid", "fast=10,20;slow=50,100",
                 "--train", "180D", "--test", "90D", "--no-progress", "--json", str(wf)]) == 0
    walk = json.loads(wf.read_text())
    assert len(walk["folds"]) == 7 and walk["equity"]["time"][0].startswith("2022-06-30")
    assert len(walk["fills"]) == walk["oos_metrics"]["n_fills"]


def test_a_walk_forward_report_has_a_short_repr_and_an_html_one():
    import coinswarm as cs

    btc = cs.load_ohlcv("binance:BTC/USDT:1h", start="2022", end="2023")
    report = cs.walk_forward("sma_cross", btc, {"fast": [10, 20], "slow": [50, 100]}, train="180D", test="90D")
    text = repr(report)
    assert text.startswith("<WalkForwardReport sma_cross: 7 folds, 28 trials") and len(text) < 200
    assert repr(report.oos).startswith("<Result BTC/USDT 2022-06-30") and len(repr(report.oos)) < 400
    html = report._repr_html_()
    assert "PBO" in html and html.count("<tr") >= 7 and len(html) < 20_000


def test_a_lower_is_better_objective_chooses_the_smallest():
    import pandas as pd

    from coinswarm.backtest.walkforward import _choose

    table = pd.DataFrame({"fast": [5, 10, 20], "sharpe": [1.0, 2.0, 0.5], "total_return": [0.1, 0.2, 0.3],
                          "max_drawdown": [0.4, 0.1, 0.6], "n_trades": [10, 12, 14]})
    assert _choose(table, "max_drawdown", ("fast",))[0] == {"fast": 10}
    assert _choose(table, "sharpe", ("fast",))[0] == {"fast": 10}
    assert _choose(table, "total_return", ("fast",))[0] == {"fast": 20}


@pytest.mark.timeout(600)
def test_warm_runs_every_public_path_once(capsys):
    assert main(["warm"]) == 0
    out = capsys.readouterr().out
    for step in ("bytecode", "simulate and sweep", "walk-forward", "agents and regimes", "committee", "live runner",
                 "kernels compiled and cached"):
        assert step in out, out
