"""``coinswarm report``: run a backtest (or a committee backtest, or a walk-forward) and write
its tearsheet, one self-contained HTML page (see :mod:`coinswarm.backtest.tearsheet`).

Imports stay inside the command: ``coinswarm --help`` loads no numba.
"""

from __future__ import annotations

import argparse

from coinswarm.cli import checks
from coinswarm.errors import ConfigError

EXAMPLES = """examples:
  coinswarm report --out sma.html --strategy sma_cross --params fast=20,slow=100 --start 2018-01-01
  coinswarm report --out committee.html --strategy committee --data binance:ETH/USDT:1h
  coinswarm report --out wf.html --walkforward --train 365D --test 90D --grid "fast=10:50:10;slow=50:200:25"
"""


def add_commands(sub) -> None:
    """Register ``report`` on the ``coinswarm`` sub-parsers."""
    p = sub.add_parser("report", help="write a tearsheet (one self-contained HTML page) of a backtest or walk-forward",
                       description="Run a backtest (a committee backtest with --strategy committee, or a "
                                   "walk-forward with --walkforward) and write its tearsheet: one self-contained "
                                   "HTML page (metrics beside buy-and-hold, assumptions, equity, drawdown, monthly "
                                   "returns, rolling Sharpe, exposure, attribution).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, metavar="PATH.html", help="the HTML file to write (its folder must exist)")
    p.add_argument("--data", default="binance:BTC/USDT:1h",
                   help="catalog name(s) or CSV path(s), comma-separated (default: %(default)s)")
    p.add_argument("--start", default=None, type=checks.date, help="first bar (inclusive), e.g. 2018-01-01")
    p.add_argument("--end", default=None, type=checks.date, help="last day (inclusive), e.g. 2024-12-31")
    p.add_argument("--strategy", default="sma_cross",
                   help="a registered strategy; 'committee' adds PnL by agent and regime (default: %(default)s)")
    p.add_argument("--params", default=None, help="name=value,name=value (backtest; default: the strategy's)")
    p.add_argument("--walkforward", action="store_true", help="walk forward over --grid and report the OOS run")
    p.add_argument("--grid", action="append", help="walk-forward grid: name=start:stop:step or name=a,b,c")
    p.add_argument("--train", default=None, type=checks.duration, help="walk-forward train window (default 365D)")
    p.add_argument("--test", default=None, type=checks.duration, help="walk-forward test window (default 90D)")
    p.add_argument("--fee-bps", type=checks.bps, default=10.0, help="0 to 1000 (default %(default)s)")
    p.add_argument("--slippage-bps", type=checks.bps, default=0.0, help="0 to 1000 (default %(default)s)")
    p.add_argument("--execution", choices=("next_open", "close"), default="next_open",
                   help="fill rule (default %(default)s)")
    p.add_argument("--init-cash", type=checks.positive, default=10_000.0, help="default %(default)s")
    p.add_argument("--trials", type=checks.whole(1, 10**9), default=None,
                   help="configurations tried before this one, stated on the page (a walk-forward counts its own)")
    p.add_argument("--title", default=None, help="page title (default: strategy, parameters and data)")
    p.set_defaults(func=cmd_report)


def _prices(names: list[str], start: str | None, end: str | None):
    import coinswarm as cs

    frames = {n: cs.load_ohlcv(n, start=start, end=end) for n in names}
    if len(frames) == 1:
        return next(iter(frames.values()))
    keyed = {}
    for name, frame in frames.items():
        key = name.split(":")[1] if name.count(":") >= 2 else name
        if key in keyed:
            raise ConfigError(f"--data holds two data sets of the symbol {key}")
        keyed[key] = frame
    return keyed


def cmd_report(args) -> int:
    """Run what the flags describe and write its tearsheet to ``--out``."""
    checks.check_output(args.out, "--out")
    names = checks.data_names(args.data)
    if args.walkforward and args.params:
        raise ConfigError("--params is for one backtest; a walk-forward chooses them: give --grid instead")
    if not args.walkforward and (args.grid or args.train or args.test):
        raise ConfigError("--grid, --train and --test are for --walkforward; one backtest takes --params")
    if args.walkforward:
        from coinswarm.params import as_duration

        args.train, args.test = args.train or "365D", args.test or "90D"
        as_duration(args.train, "--train")
        as_duration(args.test, "--test")
    from coinswarm.data.validate import as_time_bound

    lo, hi = as_time_bound(args.start, "--start"), as_time_bound(args.end, "--end")
    if lo is not None and hi is not None and hi < lo:
        raise ConfigError(f"--end {args.end} is before --start {args.start}")
    import coinswarm as cs

    strategy = cs.get_strategy(args.strategy)
    costs = cs.Costs(fee_bps=args.fee_bps, slippage_bps=args.slippage_bps)
    if args.walkforward:
        grid = checks.parse_grid(args.grid, args.strategy)
        cs.strategies.expand_grid(strategy, grid)
        prices = _prices(names, args.start, args.end)
        source = cs.walk_forward(strategy, prices, grid, train=args.train, test=args.test, costs=costs,
                                 init_cash=args.init_cash, execution=args.execution)
        title = args.title or f"walk-forward {strategy.name} on {args.data}"
    else:
        params = cs.make_params(strategy, checks.parse_params(args.params))
        prices = _prices(names, args.start, args.end)
        source = _backtest(cs, strategy, params, prices, costs, args)
        shown = ", ".join(f"{k}={v}" for k, v in params._asdict().items())
        title = args.title or f"{strategy.name}({shown}) on {args.data}"
    source.report(args.out, title=title, **({} if args.walkforward else {"trials": args.trials}))
    print(source)
    print(f"tearsheet: {args.out}")
    return 0


def _backtest(cs, strategy, params, prices, costs, args):
    """One backtest; the committee through :meth:`cs.Committee.backtest` (attribution attached)."""
    from coinswarm.strategies.base import engine_limits

    if strategy.name == "committee":
        return cs.Committee.default().backtest(prices, params, costs=costs, init_cash=args.init_cash,
                                               execution=args.execution)
    max_leverage, allow_short = engine_limits(strategy)
    return cs.simulate(prices, strategy.targets(prices, params), costs=costs, init_cash=args.init_cash,
                       execution=args.execution, max_leverage=max_leverage, allow_short=allow_short)
