"""Fuzz the ``coinswarm`` command line (issue 17): argument lists with at least one malformed
argument, run in-process through ``coinswarm.cli.main(argv)``. Each must end with exit code 2
and exactly one line on stderr, no traceback, before any long computation (per-case deadline).

No case reaches the network or starts a server: ``data download`` always carries a defect that
is checked before the venue is contacted, and ``stack``/``quorum`` only get usage errors.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinswarm.cli import main
from tests.fuzz.budget import DEADLINE_MS, examples, seen

pytestmark = pytest.mark.timeout(600)

# (flag, malformed value) pairs checked before data is loaded; "{missing}" is a folder that does not exist
BAD_RESEARCH = [
    ("--start", "2018-13-45"), ("--start", "yesterday"), ("--end", "2024-02-30"), ("--start", ""),
    ("--fee-bps", "20000"), ("--fee-bps", "-1"), ("--fee-bps", "nan"), ("--fee-bps", "ten"),
    ("--slippage-bps", "1e9"), ("--init-cash", "0"), ("--init-cash", "-100"), ("--init-cash", "inf"),
    ("--execution", "later"), ("--json", "{missing}/r.json"), ("--strategy", "moon"), ("--strategy", ""),
    ("--data", ","), ("--data", "binance:BTC/USDT:1h,binance:BTC/USDT:1h"), ("--bogus", "1"),
    ("--config", "{missing}/c.toml"), ("--config", "{tmp}/bad.toml"), ("--config", "{tmp}/unknown_key.toml"),
    ("--start", "2030"), ("--end", "2010"), ("--data", "{tmp}/iso_bad.csv"),
]
BAD_BY_COMMAND = {
    "backtest": BAD_RESEARCH + [("--params", "fast=2.5"), ("--params", "fast=5:50:5"), ("--params", "fast"),
                                ("--params", "speed=3"), ("--params", "fast=200,slow=100"), ("--params", "fast=x"),
                                ("--params", "fast=1,fast=2"), ("--plot", "{missing}/p.png")],
    "sweep": BAD_RESEARCH + [("--grid", "fast=x"), ("--grid", "fast=0:1e12:1"), ("--grid", "fast=5:1:1"),
                             ("--grid", "fast=1:10:0"), ("--grid", "=5"), ("--grid", "fast=nan"), ("--grid", "speed=1"),
                             ("--grid", "fast=50;slow=10"), ("--sort", "nope"), ("--top", "0"), ("--top", "x"),
                             ("--csv", "{missing}/s.csv")],
    "walkforward": BAD_RESEARCH + [("--train", "1y"), ("--train", "365"), ("--test", "0D"), ("--test", "-5D"),
                                   ("--purge=-10D", None), ("--embargo=-1h", None), ("--train", "NaT"),
                                   ("--objective", "nope"), ("--objective", "fast"), ("--min-dsr", "2"),
                                   ("--max-pbo", "-0.5"),
                                   ("--min-sharpe", "inf"), ("--plot", "{missing}/w.png"), ("--grid", "fast=")],
    "evidence": [("--start", "2018-13-45"), ("--end", "x"), ("--fee-bps", "20000"), ("--train", "1y"),
                 ("--test", "0D"), ("--pairs", ","), ("--pairs", "BTC,BTC"), ("--pairs", "B-T"),
                 ("--out", "{missing}/deeper/reports")],
}
GOOD_BY_COMMAND = {
    "backtest": [("--fee-bps", "5"), ("--start", "2023"), ("--end", "2023-06-30"), ("--no-progress", None),
                 ("--execution", "close"), ("--params", "fast=10,slow=50"), ("--init-cash", "5000")],
    "sweep": [("--fee-bps", "5"), ("--start", "2023"), ("--no-progress", None), ("--grid", "fast=5,10;slow=50"),
              ("--top", "3"), ("--sort", "total_return")],
    "walkforward": [("--fee-bps", "5"), ("--train", "180D"), ("--test", "60D"), ("--no-progress", None),
                    ("--anchored", None), ("--purge", "0D"), ("--min-dsr", "0.5")],
    "evidence": [("--no-progress", None), ("--fee-bps", "5"), ("--pairs", "BTC")],
}
OTHER = [
    ["data", "validate", "nowhere:BTC/USDT:1h"], ["data", "validate", "{missing}/x.csv"],
    ["data", "validate", "binance:BTC/USDT:1h", "--timeframe", "0h"], ["data", "validate"], ["data", "nope"],
    ["data", "download", "--symbol", "BTC/USDT", "--since", "2024-13-01", "--out", "{tmp}/d.csv"],
    ["data", "download", "--symbol", "BTC/USDT", "--since", "2024", "--out", "{missing}/d.csv"],
    ["data", "download", "--symbol", "BTCUSDT", "--since", "2024", "--out", "{tmp}/d.csv"],
    ["data", "download", "--symbol", "BTC/USDT", "--since", "2024", "--timeframe", "0h", "--out", "{tmp}/d.csv"],
    ["data", "download", "--symbol", "BTC/USDT", "--since", "2024", "--until", "2023", "--out", "{tmp}/d.csv"],
    ["data", "download", "--exchange", "__doc__", "--symbol", "BTC/USDT", "--since", "2024", "--out", "{tmp}/d.csv"],
    ["data", "download", "--since", "2024"], ["stack"], ["stack", "sideways"], ["quorum"], ["quorum", "boss"],
    ["quorum", "node", "--f", "x"], ["quorum", "node", "--timeout-ms", "-1"], ["quorum", "applier", "--nice", "99"],
    [], ["nope"], ["--debug"], ["backtest", "extra"], ["sweep", "--top"],
]


@st.composite
def malformed_argv(draw, tmp: str) -> list[str]:
    """A research command with some valid flags and at least one malformed one, or another bad command."""
    if draw(st.integers(0, 5)) == 0:
        argv = list(draw(st.sampled_from(OTHER)))
    else:
        command = draw(st.sampled_from(sorted(BAD_BY_COMMAND)))
        bad = draw(st.lists(st.sampled_from(BAD_BY_COMMAND[command]), min_size=1, max_size=2))
        flags = {flag.split("=")[0] for flag, _ in bad}
        good = [g for g in draw(st.lists(st.sampled_from(GOOD_BY_COMMAND[command]), max_size=3)) if g[0] not in flags]
        pairs = draw(st.permutations(bad + good))
        argv = [command] + (["--out", "{tmp}/reports"] if command == "evidence" else [])
        argv += [item for flag, value in pairs for item in ((flag,) if value is None else (flag, value))]
    missing = f"{tmp}/no/such/folder"
    return [a.replace("{missing}", missing).replace("{tmp}", tmp) for a in argv]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("fuzz_cli")
    (folder / "bad.toml").write_text("fee_bps = \n")
    (folder / "unknown_key.toml").write_text("fees = 10\n")
    (folder / "iso_bad.csv").write_text("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,1,1,1,1\n"
                                        "2024-13-01T01:00:00Z,1,1,1,1,1\n")
    return str(folder)


@pytest.mark.parametrize("block", range(3))
def test_malformed_command_lines_are_one_line_exit_2(tmp, block, capsys, monkeypatch):
    for name in ("COINSWARM_NATS_URL", "COINSWARM_POSTGRES_URL"):
        monkeypatch.delenv(name, raising=False)

    @settings(max_examples=examples(110), deadline=DEADLINE_MS, database=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(argv=malformed_argv(tmp))
    def case(argv):
        seen("cli")
        capsys.readouterr()
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 2, (argv, code, out[-300:], err)
        assert err.count("\n") == 1 and err.endswith("\n"), (argv, err)
        assert err.startswith("coinswarm"), (argv, err)
        assert "Traceback" not in err and "internal error" not in err, (argv, err)

    case()
