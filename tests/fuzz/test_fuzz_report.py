"""Fuzz ``coinswarm report``: argument lists with at least one malformed argument end with exit
code 2 and one line on stderr, no traceback, before any data is loaded (per-case deadline), and
write no file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinswarm.cli import main
from tests.fuzz.budget import DEADLINE_MS, examples, seen

pytestmark = pytest.mark.timeout(600)

BAD = [
    ("--out", "{missing}/r.html"), ("--out", "{tmp}"), ("--start", "2018-13-45"), ("--end", "2024-02-30"),
    ("--start", "2024-06-01", "--end", "2024-01-01"), ("--fee-bps", "20000"), ("--fee-bps", "nan"),
    ("--slippage-bps", "-1"), ("--init-cash", "0"), ("--execution", "later"), ("--strategy", "moon"),
    ("--strategy", ""), ("--data", ","), ("--params", "fast=200,slow=100"), ("--params", "fast=x"),
    ("--params", "speed=3"), ("--grid", "fast=1,2"), ("--walkforward", "--params", "fast=10"),
    ("--walkforward", "--grid", "fast=x"), ("--walkforward", "--grid", "fast=50;slow=10"),
    ("--train", "1y"), ("--test", "0D"), ("--trials", "0"), ("--trials", "x"), ("--bogus", "1"),
]
GOOD = [("--fee-bps", "5"), ("--start", "2023-01-01"), ("--end", "2023-03-31"), ("--execution", "close"),
        ("--init-cash", "5000"), ("--trials", "3"), ("--title", "x"), ("--slippage-bps", "2")]


@st.composite
def malformed_argv(draw, tmp: str) -> list[str]:
    """``report`` with one or two malformed arguments among valid ones (``--out`` valid unless the defect)."""
    bad = draw(st.lists(st.sampled_from(BAD), min_size=1, max_size=2))
    flags = {item for group in bad for item in group if item.startswith("--")}
    good = [g for g in draw(st.lists(st.sampled_from(GOOD), max_size=3)) if g[0] not in flags]
    groups = draw(st.permutations(bad + good))
    argv = ["report"] + ([] if "--out" in flags else ["--out", "{tmp}/r.html"])
    argv += [item for group in groups for item in group]
    return [a.replace("{missing}", f"{tmp}/no/such").replace("{tmp}", tmp) for a in argv]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("fuzz_report"))


def test_malformed_report_command_lines_are_one_line_exit_2(tmp, capsys):
    @settings(max_examples=examples(150), deadline=DEADLINE_MS, database=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(argv=malformed_argv(tmp))
    def case(argv):
        seen("cli_report")
        capsys.readouterr()
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 2, (argv, code, out[-300:], err)
        assert err.count("\n") == 1 and err.startswith("coinswarm"), (argv, err)
        assert "Traceback" not in err and "internal error" not in err, (argv, err)
        assert not (Path(tmp) / "r.html").exists(), argv

    case()
