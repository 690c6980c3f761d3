"""The tearsheet: one self-contained HTML page that parses, holds the Result's numbers and
fetches nothing; ``coinswarm report`` writes it; the plots carry titles, units and legends."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.plots import plot_sweep
from coinswarm.backtest.tearsheet import format_metric, monthly_returns, rolling_sharpe
from coinswarm.errors import ConfigError

VOID = {"meta", "img", "br", "hr", "link", "input"}


class Page(HTMLParser):
    """Collects tags, every attribute that could load something, table cells and text;
    fails on unbalanced tags."""

    def __init__(self) -> None:
        super().__init__()
        self.stack, self.tags, self.loads, self.cells, self.text = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.loads += [(tag, k, v) for k, v in attrs if k in ("src", "href", "srcset", "data", "action")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self.stack and self.stack[-1] in ("td", "th"):
            self.cells.append(data.strip())


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], f"unclosed tags {parser.stack}"
    return parser


def assert_self_contained(page: str, parser: Page) -> None:
    """Nothing on the page is fetched: every src/href is an inline data: URI, no external
    URL anywhere outside them, no script, no CSS import or url()."""
    assert parser.loads, "the page has figures"
    for tag, attr, value in parser.loads:
        assert value.startswith("data:image/png;base64,"), f"<{tag} {attr}> loads {value[:60]!r}"
        base64.b64decode(value.split(",", 1)[1], validate=True)
    outside = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r"(https?:|ftp:)?//[a-z0-9.-]+\.[a-z]{2,}", outside, re.I), "an external URL"
    assert "<script" not in outside and "@import" not in outside and "url(" not in outside


@pytest.fixture(scope="module")
def sma_result(btc_1h):
    prices = btc_1h.loc["2021":"2023"]
    sma = cs.get_strategy("sma_cross")
    return cs.simulate(prices, sma.targets(prices, cs.SmaCrossParams(fast=20, slow=100)),
                       costs=cs.Costs(fee_bps=10, slippage_bps=2))


def test_tearsheet_is_one_self_contained_page_with_the_results_numbers(sma_result, tmp_path):
    path = tmp_path / "report.html"
    page = sma_result.report(str(path), title="sma_cross(fast=20, slow=100) on BTC/USDT 1h", trials=184)
    assert path.read_text(encoding="utf-8") == page
    parser = parse(page)
    assert_self_contained(page, parser)
    assert parser.tags.count("img") >= 2 and parser.tags[0] == "html"
    m, a = sma_result.metrics, sma_result.assumptions
    for key, kind in (("total_return", "%"), ("sharpe", "x"), ("max_drawdown", "%"), ("cagr", "%"),
                      ("n_trades", "n"), ("fees_paid", "$"), ("final_equity", "$"), ("exposure", "%")):
        assert format_metric(m[key], kind) in parser.cells, key
    text = " ".join(parser.text)
    assert "10 bps per fill" in parser.cells and "2 bps per fill" in parser.cells
    assert a["start"] in parser.cells and a["end"] in parser.cells and "184" in parser.cells
    assert "buy and hold" in text and "Monthly returns" in text and "Rolling Sharpe" in text
    assert "sma_cross(fast=20, slow=100) on BTC/USDT 1h" in text


def test_tearsheet_numbers_are_those_of_the_result(sma_result):
    assert format_metric(0.12345, "%") == "12.35%" and format_metric(float("nan"), "x") == "—"
    grid = monthly_returns(sma_result.equity, sma_result.assumptions["init_cash"])
    growth = np.prod(1.0 + grid["year"].to_numpy())  # years chain to the total return
    assert growth - 1.0 == pytest.approx(sma_result.metrics["total_return"], rel=1e-9)
    months = grid.drop(columns="year").to_numpy().ravel()
    assert np.prod(1.0 + months[np.isfinite(months)]) - 1.0 == pytest.approx(sma_result.metrics["total_return"])
    sharpe = rolling_sharpe(sma_result.equity, sma_result.assumptions["init_cash"], days=10_000)
    assert sharpe.isna().all()  # a window longer than the data gives no number, not a made-up one


def test_committee_tearsheet_has_attribution_by_agent_and_regime(btc_1h):
    prices = btc_1h.loc["2022":"2023"]
    result = cs.Committee.default().backtest(prices)
    parser = parse(result.report())
    assert_self_contained("".join(parser.text), parser)
    for agent, total in result.attribution["total"].items():
        assert agent in parser.cells and f"{total:,.0f}" in parser.cells
    assert "low-vol/range" in parser.cells and parser.tags.count("img") >= 4


def test_walk_forward_tearsheet_states_the_gate_and_folds(btc_1h):
    prices = btc_1h.loc["2020":"2023"]
    report = cs.walk_forward("sma_cross", prices, {"fast": [10, 20], "slow": [50, 100]}, train="365D", test="180D")
    page = report.report()
    parser = parse(page)
    assert_self_contained(page, parser)
    assert f"{report.dsr:.3f}" in parser.cells and f"{report.pbo:.3f}" in parser.cells
    assert f"{report.n_trials:,}" in parser.cells
    assert ("PASSED" if report.passed else "FAILED") in " ".join(parser.text)
    assert sum(1 for c in parser.cells if re.fullmatch(r"\d+", c)) >= len(report.folds)


def test_tearsheet_refuses_bad_input_before_any_work(sma_result, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        sma_result.report(str(tmp_path / "missing" / "r.html"))
    with pytest.raises(ConfigError, match="folder"):
        sma_result.report(str(tmp_path))
    with pytest.raises(ConfigError, match="trials"):
        sma_result.report(trials=0)
    from coinswarm.backtest.tearsheet import tearsheet

    with pytest.raises(ConfigError, match="Result or WalkForwardReport"):
        tearsheet(pd.Series([1.0]))
    assert list(tmp_path.iterdir()) == []


def test_cli_report_writes_the_tearsheet(tmp_path, capsys):
    from coinswarm.cli.main import main

    out = tmp_path / "sma.html"
    code = main(["report", "--out", str(out), "--start", "2023-01-01", "--end", "2023-06-30",
                 "--params", "fast=10,slow=50", "--slippage-bps", "3", "--trials", "7"])
    assert code == 0, capsys.readouterr().err
    parser = parse(out.read_text(encoding="utf-8"))
    assert "3 bps per fill" in parser.cells and "7" in parser.cells
    assert "sma_cross(fast=10, slow=50)" in " ".join(parser.text)
    assert f"tearsheet: {out}" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["report", "--out", "/no/such/folder/r.html"], "does not exist"),
    (["report", "--out", "{tmp}/r.html", "--grid", "fast=1,2"], "--grid, --train and --test are for --walkforward"),
    (["report", "--out", "{tmp}/r.html", "--walkforward", "--params", "fast=1"], "--params is for one backtest"),
    (["report", "--out", "{tmp}/r.html", "--params", "fast=200,slow=100"], "fast=200"),
    (["report", "--out", "{tmp}/r.html", "--strategy", "nope"], "unknown strategy"),
    (["report", "--out", "{tmp}/r.html", "--test", "30D"], "are for --walkforward"),
    (["report", "--out", "{tmp}/r.html", "--walkforward", "--test", "0D"], "--test"),
    (["report", "--out", "{tmp}/r.html", "--start", "2024-06-01", "--end", "2024-01-01"], "before --start"),
])
def test_cli_report_bad_input_is_one_line_exit_2(argv, message, tmp_path, capsys):
    from coinswarm.cli.main import main

    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_plots_are_titled_with_metrics_and_label_units(sma_result, btc_1h):
    fig = sma_result.plot(title="sma_cross on BTC/USDT")
    ax_eq, ax_dd, ax_pos = fig.axes
    assert "Sharpe" in ax_eq.get_title(loc="left") and "fees 10 bps" in ax_eq.get_title(loc="left")
    assert "USDT" in ax_eq.get_ylabel() and ax_eq.get_yscale() == "log"
    assert "%" in ax_dd.get_ylabel() and "%" in ax_pos.get_ylabel() and "UTC" in ax_pos.get_xlabel()
    assert any("buy and hold" in t.get_text() for t in ax_eq.get_legend().get_texts())
    fig.canvas.draw()
    labels = [t.get_text() for t in ax_eq.get_yticklabels() if t.get_text()]
    assert labels and all("10^" not in s and "$" not in s for s in labels), labels  # 10k, 20k, not 10⁴
    plt.close(fig)
    table = cs.sweep("sma_cross", btc_1h.loc["2023"], {"fast": [5, 10, 20], "slow": [30, 50, 100]})
    fig = plot_sweep(table, metric="sharpe")
    assert "best sharpe" in fig.axes[0].get_title(loc="left") and fig.axes[0].get_xlabel() == "fast (bars)"
    plt.close(fig)
    with pytest.raises(ConfigError, match="not a column"):
        plot_sweep(table, x="nope")
    assert cs.plot_sweep is plot_sweep


def test_notebook_reprs_are_short_and_html(sma_result, btc_1h):
    text = repr(sma_result)
    assert len(text) < 200 and f"Sharpe {sma_result.metrics['sharpe']:.2f}" in text and "2021-01-01" in text
    parser = parse(sma_result._repr_html_())
    assert format_metric(sma_result.metrics["sharpe"], "x") in parser.cells and "10 bps per fill" in parser.cells
    report = cs.walk_forward("sma_cross", btc_1h.loc["2021":"2023"], {"fast": [10, 20], "slow": [50, 100]},
                             train="365D", test="180D")
    assert len(repr(report)) < 200 and f"{report.n_trials} trials" in repr(report)
    parser = parse(report._repr_html_())
    assert f"{report.dsr:.3f}" in parser.cells and len(report._repr_html_()) < 20_000
