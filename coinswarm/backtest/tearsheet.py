"""The tearsheet: one self-contained HTML page about a backtest or a walk-forward.

:func:`tearsheet` (``result.report(path)``, ``report.report(path)``, ``coinswarm report``)
writes a metrics table beside buy-and-hold with every assumption the numbers rest on
(fees, slippage, fill rule, data range, trials), equity against buy-and-hold on a log
axis, drawdown in %, a monthly returns heatmap, the rolling Sharpe, the exposure and, for
a committee, PnL by agent and by regime with its weights; for a walk-forward the gate
(PSR, DSR, PBO) and the folds. Figures are inline PNG (``data:`` URIs) and the style is
inline: the page opens offline and can be mailed as one file.

Units: fractions are data, percentages are text — the page prints returns, drawdowns,
volatility, win rate and exposure in %, money in the quote currency.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from coinswarm.errors import ConfigError

#: ``(metric, label, format)``: ``%`` a fraction printed in percent, ``x`` a ratio, ``$`` money, ``n`` a count.
METRIC_ROWS = (
    ("total_return", "total return", "%"), ("cagr", "CAGR", "%"), ("ann_volatility", "volatility (annual)", "%"),
    ("sharpe", "Sharpe (daily, √365)", "x"), ("sortino", "Sortino (daily, √365)", "x"), ("calmar", "Calmar", "x"),
    ("max_drawdown", "max drawdown", "%"), ("max_drawdown_days", "longest drawdown (days)", "d"),
    ("win_rate", "win rate (round trips)", "%"), ("profit_factor", "profit factor", "x"),
    ("expectancy", "expectancy per trade", "$"), ("exposure", "time in the market", "%"),
    ("turnover", "turnover (× mean equity per year)", "x"), ("fees_paid", "fees paid", "$"),
    ("funding_paid", "funding paid", "$"), ("n_trades", "round trips", "n"), ("n_fills", "fills", "n"),
    ("final_equity", "final equity", "$"),
)
ROLLING_DAYS = 180

_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:22px;margin-bottom:2px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.sub{color:#555;font-size:13px} table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{padding:3px 9px;border-bottom:1px solid #eee;text-align:right} th{background:#f5f5f5}
td:first-child,th:first-child{text-align:left} .grid{display:flex;gap:32px;flex-wrap:wrap}
img{max-width:100%} .pass{color:#1a7f37;font-weight:bold} .fail{color:#c62828;font-weight:bold}
.heat td{min-width:44px;font-variant-numeric:tabular-nums} .note{color:#666;font-size:12px}
"""


def tearsheet(source, path: str | Path | None = None, *, title: str | None = None, trials: int | None = None,
              benchmark: bool = True) -> str:
    """One self-contained HTML page about a backtest or a walk-forward.

    Parameters
    ----------
    source : Result or WalkForwardReport
        A :func:`coinswarm.simulate` / :meth:`coinswarm.Committee.backtest` result, or a
        :func:`coinswarm.walk_forward` report (its out-of-sample run, gate and folds).
    path : str or Path, optional
        HTML file to write (its folder must exist; checked before any work).
    title : str, optional
        What was run, e.g. ``"sma_cross(fast=20, slow=100) on BTC/USDT 1h"``.
    trials : int, optional
        How many configurations were tried before this one (stated beside the metrics: a
        Sharpe picked from many trials means less). A walk-forward report brings its own.
    benchmark : bool
        Compare with buy-and-hold of the same symbols (same costs, through the same engine).

    Returns
    -------
    str
        The HTML (also written to ``path`` when given).

    Raises
    ------
    ConfigError
        ``source`` is neither a Result nor a walk-forward report, ``trials`` is not a whole
        number ≥ 1, or ``path``'s folder does not exist.
    """
    from coinswarm.backtest.engine import Result
    from coinswarm.backtest.walkforward import WalkForwardReport

    report = source if isinstance(source, WalkForwardReport) else None
    result = source.oos if report is not None else source
    if not isinstance(result, Result):
        raise ConfigError(f"a tearsheet needs a coinswarm Result or WalkForwardReport, not {type(source).__name__}")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int | np.integer) or trials < 1):
        raise ConfigError(f"trials must be a whole number ≥ 1 (configurations tried), not {trials!r}")
    target = _check_path(path)
    trials = report.n_trials if report is not None else trials
    page = _page(result, report, title or _default_title(result, report), trials, benchmark)
    if target is not None:
        target.write_text(page, encoding="utf-8")
    return page


def _check_path(path) -> Path | None:
    if path is None:
        return None
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"tearsheet path {str(target)!r} is a folder; give a file name such as report.html")
    if not target.parent.exists():
        raise ConfigError(f"tearsheet path {str(target)!r}: folder {str(target.parent)!r} does not exist")
    return target


def _default_title(result, report) -> str:
    symbols = ", ".join(result.assumptions["symbols"])
    if report is not None:
        return f"walk-forward {report.strategy} on {symbols}"
    return f"{'committee' if result.attribution is not None else 'backtest'} on {symbols}"


def _page(result, report, title: str, trials: int | None, benchmark: bool) -> str:
    from coinswarm import __version__
    from coinswarm.backtest.plots import assumptions_line, headline

    bench = buy_and_hold(result) if benchmark else None
    parts = [f"<h1>{_e(title)}</h1>", f"<div class='sub'>{_e(headline(result))}<br>{_e(assumptions_line(result))}"
             f"{'' if trials is None else f', best of {trials:,} trials'}</div>"]
    if result.bankrupt is not None:
        parts.append(f"<p class='fail'>Bankrupt at {_e(result.bankrupt.isoformat())}: every position was closed "
                     "and trading stopped.</p>")
    if report is not None:
        parts.append(gate_html(report))
    parts.append("<div class='grid'>" + _metrics_table(result, bench) + _assumptions_table(result, trials) + "</div>")
    parts.append("<h2>Equity and drawdown</h2>" + _img(_equity_figure(result, bench, report), "equity and drawdown"))
    parts.append("<h2>Monthly returns (%)</h2>" + monthly_returns_table(result.equity, result.assumptions["init_cash"]))
    parts.append(f"<h2>Rolling Sharpe ({ROLLING_DAYS} days) and exposure</h2>"
                 + _img(_rolling_figure(result, bench), "rolling Sharpe and exposure"))
    if result.attribution is not None:
        parts.append(_committee_section(result))
    if report is not None:
        parts.append(folds_html(report))
    parts.append(f"<p class='note'>coinswarm {__version__}. Metrics: daily returns (each UTC day's last bar), "
                 "annualised with √365; fractions in the data, percent on this page; money in the quote currency. "
                 "Self-contained: every figure is inline.</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def summary_html(result) -> str:
    """The metrics and assumptions tables of a Result side by side (a notebook's ``_repr_html_``)."""
    return ("<div style='display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start'>"
            + _metrics_table(result, None) + _assumptions_table(result, None) + "</div>")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def buy_and_hold(result):
    """The same symbols held from the first bar (equal weights), through the same engine
    and costs: the benchmark of the tearsheet. ``None`` if it cannot be simulated."""
    from coinswarm.backtest.engine import simulate
    from coinswarm.errors import CoinswarmError

    frames = result.prices
    if not frames:
        return None
    symbols = list(frames)
    prices = frames[symbols[0]] if len(symbols) == 1 else frames
    index = result.equity.index
    target = pd.DataFrame(1.0 / len(symbols), index=index, columns=symbols)
    a = result.assumptions
    from coinswarm.costs import Costs

    try:
        return simulate(prices, target if len(symbols) > 1 else target[symbols[0]],
                        costs=Costs(fee_bps=a["fee_bps"], slippage_bps=a["slippage_bps"],
                                    cash_rate=a.get("cash_rate", 0.0), borrow_rate=a.get("borrow_rate", 0.0)),
                        init_cash=a["init_cash"], execution=a["execution"], validate=False)
    except CoinswarmError:
        return None


def format_metric(value, kind: str) -> str:
    """A metric for people: ``%`` fractions in percent, ``x`` ratios, ``$`` money, ``n``/``d`` counts."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if kind == "%":
        return f"{value * 100:,.2f}%"
    if kind == "$":
        return f"{value:,.2f}"
    if kind == "n":
        return f"{int(value):,}"
    if kind == "d":
        return f"{value:,.1f}"
    return f"{value:.2f}"


def _metrics_table(result, bench) -> str:
    head = "<tr><th>metric</th><th>strategy</th>" + ("<th>buy and hold</th>" if bench is not None else "") + "</tr>"
    rows = []
    for key, label, kind in METRIC_ROWS:
        cells = f"<td>{_e(label)}</td><td>{format_metric(result.metrics.get(key), kind)}</td>"
        if bench is not None:
            cells += f"<td>{format_metric(bench.metrics.get(key), kind)}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return f"<div><h2>Metrics</h2><table class='metrics'>{head}{''.join(rows)}</table></div>"


def _assumptions_table(result, trials: int | None) -> str:
    a = result.assumptions
    funding = a.get("funding")
    rows = [("fees", f"{a['fee_bps']:g} bps per fill"), ("slippage", f"{a['slippage_bps']:g} bps per fill"),
            ("funding", "none" if not funding else str(funding)),
            ("financing", f"idle cash earns {a['cash_rate']:.2%}, short spot borrow {a['borrow_rate']:.2%} a year"
             if "cash_rate" in a else "none (idle cash earns nothing)"), ("fills at", a["execution"]),
            ("data from", a["start"]), ("data to", a["end"]), ("bars", f"{a['n_bars']:,}"),
            ("symbols", ", ".join(a["symbols"])), ("initial cash", f"{a['init_cash']:,.2f}"),
            ("max leverage", f"{a['max_leverage']:g}×"), ("annualisation", a.get("annualization", "")),
            ("trials", "not stated (pass trials=…)" if trials is None else f"{trials:,}")]
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<div><h2>Assumptions</h2><table class='assumptions'>{body}</table></div>"


def monthly_returns(equity: pd.Series, init_cash: float) -> pd.DataFrame:
    """Calendar-month returns (fractions): years × months 1–12, plus ``year`` (the year's return)."""
    month_end = equity.resample("ME").last().dropna()
    previous = month_end.shift(1)
    previous.iloc[0] = init_cash
    returns = month_end / previous - 1.0
    table = pd.DataFrame({"year": returns.index.year, "month": returns.index.month, "r": returns.to_numpy()})
    grid = table.pivot(index="year", columns="month", values="r").reindex(columns=range(1, 13))
    year_end = equity.resample("YE").last().dropna()
    year_start = year_end.shift(1)
    year_start.iloc[0] = init_cash
    grid["year"] = (year_end / year_start - 1.0).to_numpy()
    return grid


def _heat_colour(value: float, scale: float) -> str:
    if not math.isfinite(value):
        return "#fff"
    t = max(-1.0, min(1.0, value / scale)) if scale > 0 else 0.0
    if t >= 0:
        r, g, b = int(255 - 120 * t), int(255 - 45 * t), int(255 - 120 * t)
    else:
        r, g, b = int(255 + 25 * t), int(255 + 150 * t), int(255 + 150 * t)
    return f"#{r:02x}{g:02x}{b:02x}"


def monthly_returns_table(equity: pd.Series, init_cash: float) -> str:
    """:func:`monthly_returns` as an HTML heatmap (green gains, red losses, in %)."""
    grid = monthly_returns(equity, init_cash)
    months = [pd.Timestamp(2000, m, 1).strftime("%b") for m in range(1, 13)]
    finite = grid.drop(columns="year").to_numpy(dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    scale = float(np.percentile(np.abs(finite), 95)) if len(finite) else 0.0
    head = "<tr><th>year</th>" + "".join(f"<th>{m}</th>" for m in months) + "<th>year</th></tr>"
    rows = []
    for year, row in grid.iterrows():
        cells = []
        for col, value in row.items():
            s = scale * 3 if col == "year" else scale
            text = "" if not math.isfinite(value) else f"{value * 100:.1f}"
            cells.append(f"<td style='background:{_heat_colour(value, s)}'>{text}</td>")
        rows.append(f"<tr><td>{year}</td>{''.join(cells)}</tr>")
    return f"<table class='heat'>{head}{''.join(rows)}</table>"


def daily_returns(equity: pd.Series, init_cash: float) -> pd.Series:
    """Returns between each UTC day's last bar (the first against the initial cash)."""
    daily = equity.resample("1D").last().dropna()
    previous = daily.shift(1)
    previous.iloc[0] = init_cash
    return (daily / previous - 1.0).rename("return")


def rolling_sharpe(equity: pd.Series, init_cash: float, days: int = ROLLING_DAYS) -> pd.Series:
    """Sharpe over the last ``days`` daily returns, annualised with √365 (NaN before ``days``)."""
    returns = daily_returns(equity, init_cash)
    window = returns.rolling(days, min_periods=days)
    return (window.mean() / window.std() * math.sqrt(365.0)).rename("rolling Sharpe")


def _img(fig, alt: str) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96)
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _equity_figure(result, bench, report):
    import matplotlib.pyplot as plt

    from coinswarm.backtest.plots import BENCHMARK_COLOUR, FOLD_COLOUR, STRATEGY_COLOUR, log_money_axis, quote_currency

    fig, (ax_eq, ax_dd) = plt.subplots(2, 1, figsize=(11.5, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    curves = [("strategy", result, STRATEGY_COLOUR)] + ([("buy and hold", bench, BENCHMARK_COLOUR)] if bench else [])
    for label, run, colour in curves:
        daily = run.equity.resample("1D").last().dropna()
        m = run.metrics
        ax_eq.plot(daily.index, daily.to_numpy(), lw=1.1 if label == "strategy" else 0.9, color=colour,
                   label=f"{label} (total return {m['total_return']:.0%}, Sharpe {m['sharpe']:.2f})")
        drawdown = (daily / daily.cummax() - 1.0) * 100.0
        if label == "strategy":
            ax_dd.fill_between(drawdown.index, drawdown.to_numpy(), 0.0, color="tab:red", alpha=0.45, lw=0,
                               label="strategy")
        else:
            ax_dd.plot(drawdown.index, drawdown.to_numpy(), lw=0.7, color=colour, label="buy and hold")
    if report is not None:
        for k, fold in enumerate(report.folds):
            if k % 2 == 0:
                for ax in (ax_eq, ax_dd):
                    ax.axvspan(fold["test_start"], fold["test_end"], color=FOLD_COLOUR, alpha=0.10, lw=0)
    log_money_axis(ax_eq, f"equity ({quote_currency(result)}, log scale)")
    handles, labels = ax_eq.get_legend_handles_labels()
    if report is not None:
        from matplotlib.patches import Patch

        handles.append(Patch(color=FOLD_COLOUR, alpha=0.25))
        labels.append(f"test windows of {len(report.folds)} folds (every other one shaded)")
    ax_eq.legend(handles, labels, loc="upper left", fontsize=8, frameon=False)
    _percent_axis(ax_dd, "drawdown (%)")
    ax_dd.legend(loc="lower left", fontsize=7, frameon=False)
    ax_dd.set_xlabel("date (UTC)")
    fig.tight_layout()
    return fig


def _percent_axis(ax, label: str) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)


def _rolling_figure(result, bench):
    import matplotlib.pyplot as plt

    from coinswarm.backtest.plots import BENCHMARK_COLOUR, STRATEGY_COLOUR, exposure

    fig, (ax_s, ax_x) = plt.subplots(2, 1, figsize=(11.5, 5.2), sharex=True)
    init = result.assumptions["init_cash"]
    curves = [("strategy", result, STRATEGY_COLOUR)] + ([("buy and hold", bench, BENCHMARK_COLOUR)] if bench else [])
    for label, run, colour in curves:
        sharpe = rolling_sharpe(run.equity, init)
        ax_s.plot(sharpe.index, sharpe.to_numpy(), lw=1.0 if label == "strategy" else 0.8, color=colour, label=label)
    ax_s.axhline(0.0, color="black", lw=0.6)
    ax_s.set_ylabel(f"Sharpe, last {ROLLING_DAYS} days\n(daily returns, √365)")
    ax_s.grid(True, alpha=0.3)
    ax_s.legend(loc="upper left", fontsize=8, frameon=False)
    gross = exposure(result).resample("7D").mean().dropna() * 100.0
    ax_x.fill_between(gross.index, gross.to_numpy(), 0.0, color=STRATEGY_COLOUR, alpha=0.5, lw=0, step="post")
    _percent_axis(ax_x, "gross exposure\n(% of equity, weekly mean)")
    ax_x.set_xlabel("date (UTC)")
    ax_x.set_title(f"time in the market {result.metrics['exposure']:.0%}", fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def _committee_section(result) -> str:
    from coinswarm.backtest.committee_plots import plot_attribution, plot_weights

    table = result.attribution
    agents = tuple(a for a in table.index if a not in ("execution_and_costs", "total"))
    body = "".join(
        f"<tr><td>{_e(row)}</td>" + "".join(f"<td>{v:,.0f}</td>" for v in table.loc[row].to_numpy()) + "</tr>"
        for row in table.index)
    head = "<tr><th>PnL</th>" + "".join(f"<th>{_e(c)}</th>" for c in table.columns) + "</tr>"
    parts = ["<h2>Committee: PnL by agent and regime</h2>",
             "<p class='note'>Each agent is credited with the paper PnL of its share of the risk-limited target "
             "(close to close); execution_and_costs is what bands, steps, next-open fills, fees and slippage "
             f"changed. Columns: the volatility/trend regime when the decision was made. Money in "
             f"{_e(_quote(result))}.</p>",
             f"<div style='overflow-x:auto'><table>{head}{body}</table></div>",
             _img(plot_attribution(table, currency=_quote(result)), "attribution by agent and regime")]
    weights = result.committee
    if weights is not None and agents:
        one = weights if not isinstance(weights.columns, pd.MultiIndex) else weights[weights.columns.levels[0][0]]
        if all(f"w_{a}" in one.columns for a in agents) and "brake" in one.columns:
            parts.append("<h2>Committee weights and risk brake</h2>" + _img(plot_weights(one, agents), "weights"))
    return "\n".join(parts)


def _quote(result) -> str:
    from coinswarm.backtest.plots import quote_currency

    return quote_currency(result)


def gate_html(report) -> str:
    """The walk-forward gate as an HTML table: OOS Sharpe, PSR, DSR, PBO and trades against their bars."""
    verdict = ("<span class='pass'>PASSED</span>" if report.passed
               else "<span class='fail'>FAILED</span>: " + _e("; ".join(report.reasons)))
    g = report.gate
    rows = [("OOS Sharpe (daily, √365)", f"{report.oos_sharpe:.2f}", f"≥ {g.min_sharpe:g}"),
            ("PSR (probability the true Sharpe > 0)", f"{report.psr:.3f}", ""),
            (f"DSR (PSR deflated for {report.n_trials:,} trials)", f"{report.dsr:.3f}", f"≥ {g.min_dsr:g}"),
            ("PBO (probability the in-sample best is below the OOS median)", f"{report.pbo:.3f}",
             "not checked" if g.max_pbo is None else f"≤ {g.max_pbo:g}"),
            ("OOS round trips", f"{int(report.oos.metrics['n_trades']):,}", f"≥ {g.min_trades}")]
    body = "".join(f"<tr><td>{_e(a)}</td><td>{b}</td><td>{_e(c)}</td></tr>" for a, b, c in rows)
    return (f"<h2>Out-of-sample gate: {verdict}</h2><table><tr><th>measure</th><th>value</th><th>gate</th></tr>"
            f"{body}</table>")


def folds_html(report) -> str:
    """One HTML row per walk-forward fold: windows, parameters chosen, in-sample and OOS results."""
    head = ("<tr><th>fold</th><th>train</th><th>test</th><th>parameters chosen</th><th>in-sample Sharpe</th>"
            "<th>OOS Sharpe</th><th>OOS return</th></tr>")
    rows = []
    for k, fold in enumerate(report.folds, 1):
        oos = fold.get("oos", {})
        params = ", ".join(f"{k2}={v}" for k2, v in fold["params"].items())
        rows.append(f"<tr><td>{k}</td><td>{_e(_day(fold['train_start']))} → {_e(_day(fold['train_end']))}</td>"
                    f"<td>{_e(_day(fold['test_start']))} → {_e(_day(fold['test_end']))}</td><td>{_e(params)}</td>"
                    f"<td>{format_metric(fold['in_sample'].get('sharpe'), 'x')}</td>"
                    f"<td>{format_metric(oos.get('sharpe'), 'x')}</td>"
                    f"<td>{format_metric(oos.get('total_return'), '%')}</td></tr>")
    return (f"<h2>Folds ({len(report.folds)}; shaded above: every other test window)</h2>"
            f"<table>{head}{''.join(rows)}</table>")


def _day(stamp) -> str:
    return str(pd.Timestamp(stamp).date())
