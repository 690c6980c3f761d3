"""``coinswarm`` command line: backtest, sweep, walkforward, evidence, stack, quorum, data."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from coinswarm.backtest.defaults import GATE_DEFAULTS
from coinswarm.cli import checks
from coinswarm.cli import live as live_commands
from coinswarm.cli import mcp as mcp_cli
from coinswarm.cli.checks import Parser, one_line, parse_grid, parse_params, parse_values
from coinswarm.errors import CoinswarmError, ConfigError

__all__ = ["build_parser", "main", "parse_grid", "parse_params", "parse_values"]

#: Exit codes: 0 done, 1 gate failed / stack down, 2 bad input or environment, 3 a bug (please report).
EXIT_BAD_INPUT, EXIT_BUG = 2, 3


def _load(args):
    import coinswarm as cs

    names = checks.data_names(args.data)
    frames = {n: cs.load_ohlcv(n, start=args.start, end=args.end) for n in names}
    for note in getattr(args, "notes", ()):  # after loading, so an error stays the only line
        _note(note)
    if len(frames) == 1:
        return next(iter(frames.values()))
    keys = {_symbol_key(n): df for n, df in frames.items()}
    if len(keys) != len(frames):
        raise ConfigError(f"--data {args.data!r} holds two data sets of the same symbol")
    return keys


def _symbol_key(name: str) -> str:
    """``binance:BTC/USDT:1h`` → ``BTC/USDT``; perpetuals get ccxt's ``BTC/USDT:USDT``; a file keeps its name."""
    from coinswarm.data.catalog import parse_catalog_name

    parsed = parse_catalog_name(name, strict=False)
    return name if parsed is None else parsed.symbol_key


def _costs(args):
    from coinswarm.costs import Costs
    from coinswarm.data.catalog import parse_catalog_name

    funding = args.funding
    names = checks.data_names(args.data)
    parsed = [parse_catalog_name(n, strict=False) for n in names]
    perps = [n for n, p in zip(names, parsed, strict=True) if p is not None and p.is_perpetual]
    if funding and len(names) > 1 and len(perps) == 1:
        funding = {_symbol_key(perps[0]): funding}
    return Costs(fee_bps=args.fee_bps, slippage_bps=args.slippage_bps, funding=funding,
                 cash_rate=args.cash_rate, borrow_rate=args.borrow_rate)


def _check_research(args, *outputs: str) -> None:
    """Checks before any data is loaded: data names, output folders, dates in order; says on
    stderr which data a run without ``--data`` uses and warns of fees above ``WARN_BPS``."""
    args.notes = []  # said on stderr once every check has passed, just before the data is loaded
    if args.data is None:
        args.data = DEFAULT_DATA
        args.notes.append(f"no --data given: using {DEFAULT_DATA}")
    checks.data_names(args.data)
    for flag in ("fee_bps", "slippage_bps"):
        value = getattr(args, flag, 0.0)
        if value > checks.WARN_BPS:
            args.notes.append(f"warning: --{flag.replace('_', '-')} {value:g} is {value / 100:g}% per fill "
                              "(exchange fees are 1 to 10 bps); running anyway")
    for flag in outputs:
        checks.check_output(getattr(args, flag.lstrip("-").replace("-", "_")), flag)
    _check_dates(args.start, args.end)


def _check_dates(start: str | None, end: str | None) -> None:
    from coinswarm.data.validate import as_time_bound

    lo, hi = as_time_bound(start, "--start"), as_time_bound(end, "--end")
    if lo is not None and hi is not None and hi < lo:
        raise ConfigError(f"--end {end} is before --start {start}")


def _note(text: str) -> None:
    """One line on stderr (kept out of stdout, which may be piped to a file)."""
    print(f"coinswarm: {text}", file=sys.stderr, flush=True)


def _write_json(path: str | None, payload: dict) -> None:
    if path:
        with open(path, "w") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")


def cmd_backtest(args) -> int:
    _check_research(args, "--json", "--plot")
    import coinswarm as cs
    from coinswarm.strategies.base import engine_limits

    strategy = cs.get_strategy(args.strategy)
    params = cs.make_params(strategy, parse_params(args.params))
    prices = _load(args)
    max_leverage, allow_short = engine_limits(strategy)
    result = cs.simulate(prices, strategy.targets(prices, params), costs=_costs(args),
                         init_cash=args.init_cash, execution=args.execution,
                         max_leverage=max_leverage, allow_short=allow_short)
    print(result)
    if args.json:
        from coinswarm.backtest.export import series_dict

        _write_json(args.json, {"strategy": strategy.name, "params": params._asdict(), **result.to_dict(),
                                **series_dict(result)})
    if args.plot:
        result.plot(args.plot)
    return 0


def cmd_sweep(args) -> int:
    _check_research(args, "--json", "--csv")
    import coinswarm as cs
    from coinswarm.kernels.metrics import METRIC_NAMES

    strategy = cs.get_strategy(args.strategy)
    columns = (*strategy.Params._fields, *METRIC_NAMES)
    if args.sort not in columns:
        raise ConfigError(f"--sort {args.sort!r} is not a column; use a metric ({', '.join(METRIC_NAMES)}) "
                          f"or a parameter ({', '.join(strategy.Params._fields)})")
    grid = parse_grid(args.grid, args.strategy)
    cs.strategies.expand_grid(strategy, grid)
    prices = _load(args)
    table = cs.sweep(strategy, prices, grid,
                     costs=_costs(args), init_cash=args.init_cash, execution=args.execution,
                     progress=not args.no_progress)
    from coinswarm.backtest.units import bps, sort_best_first, table_text

    best = sort_best_first(table, args.sort)
    a = table.attrs["assumptions"]
    print(f"{len(table)} combinations, {a['start']} → {a['end']}, fees {bps(a['fee_bps'])}, "
          f"slippage {bps(a['slippage_bps'])}, fills at {a['execution']}; sorted by {args.sort}, best first; "
          "columns ending in % are percentages")
    print(table_text(best.head(args.top)))
    if args.csv:
        table.to_csv(args.csv, index=False)
    from coinswarm.backtest.engine import _json_safe

    _write_json(args.json, _json_safe({"strategy": args.strategy, "assumptions": a,
                                       "rows": table.to_dict(orient="records")}))
    return 0


def cmd_walkforward(args) -> int:
    _check_research(args, "--json", "--plot")
    from coinswarm.params import as_duration

    as_duration(args.train, "--train")
    as_duration(args.test, "--test")
    for flag, value in (("--purge", args.purge), ("--embargo", args.embargo)):
        if value is not None:
            as_duration(value, flag, allow_zero=True)
    import coinswarm as cs

    strategy = cs.get_strategy(args.strategy)
    grid = parse_grid(args.grid, args.strategy)
    cs.strategies.expand_grid(strategy, grid)
    gate = cs.Gate(min_sharpe=args.min_sharpe, min_dsr=args.min_dsr, max_pbo=args.max_pbo)
    prices = _load(args)
    report = cs.walk_forward(
        strategy, prices, grid, train=args.train,
        test=args.test, anchored=args.anchored, purge=args.purge, embargo=args.embargo,
        objective=args.objective, gate=gate, costs=_costs(args), init_cash=args.init_cash,
        execution=args.execution, progress=not args.no_progress, cash_rate=args.cash_rate,
    )
    print(report)
    if args.json:
        from coinswarm.backtest.export import series_dict

        _write_json(args.json, {**report.to_dict(), **series_dict(report.oos)})
    if args.plot:
        report.plot(args.plot)
    return 1 if (args.require_pass and not report.passed) else 0


def cmd_data(args) -> int:
    from coinswarm.data import catalog, load_ohlcv
    from coinswarm.data.catalog import data_roots, resolve_path

    if args.data_cmd == "list":
        roots = data_roots()  # a COINSWARM_DATA_DIR that is no folder is an error before any line
        for entry in catalog():
            try:
                where = str(resolve_path(entry))
            except CoinswarmError:
                where = "(missing)"
            print(f"{entry.name:42s} {entry.kind:8s} {where}")
        print(f"data roots searched: {', '.join(str(r) for r in roots) or '(none)'}")
        return 0
    if args.data_cmd == "validate":
        df = load_ohlcv(args.path, timeframe=args.timeframe)
        g = df.attrs["gaps"]
        print(f"{df.attrs['source']}: OK, {len(df)} {df.attrs['timeframe']} bars "
              f"{df.index[0]} → {df.index[-1]}; {g['missing_bars']} missing bars in "
              f"{g['n_gaps']} gaps (longest {g['longest_gap_bars']} after "
              f"{g['longest_gap_after']})")
        return 0
    checks.check_output(args.out, "--out")
    _check_dates(args.since, args.until)
    from coinswarm.adapters.exchanges import download_ohlcv, write_ohlcv_csv

    df = download_ohlcv(args.exchange, args.symbol, args.timeframe, args.since, args.until)
    write_ohlcv_csv(df, args.out)
    print(f"wrote {len(df)} bars to {args.out}")
    return 0


def cmd_evidence(args) -> int:
    from coinswarm.params import as_duration

    if args.suite == "portfolio":
        from coinswarm.cli.edge import cmd_portfolio_evidence

        checks.check_folder(args.out, "--out")
        return cmd_portfolio_evidence(args)

    checks.check_folder(args.out, "--out")
    _check_dates(args.start, args.end)
    as_duration(args.train, "--train")
    as_duration(args.test, "--test")
    pairs = tuple(p.strip().upper() for p in args.pairs.split(",") if p.strip())
    if not pairs or len(set(pairs)) != len(pairs) or not all(p.isalnum() for p in pairs):
        raise ConfigError(f"--pairs {args.pairs!r}: give distinct base assets such as BTC,ETH")
    from coinswarm.backtest.evidence import run_evidence

    evidence = run_evidence(pairs, start=args.start, end=args.end, fee_bps=args.fee_bps, train=args.train,
                            test=args.test, out=args.out, progress=not args.no_progress)
    for row in evidence["rows"]:
        verdict = "pass" if row["passed"] else "fail"
        print(f"{row['market']:22s} {row['strategy']:15s} OOS Sharpe {row['oos_sharpe']:6.2f}  "
              f"DSR {row['dsr']:.2f}  PBO {row['pbo']:.2f}  win {row['win_rate']:.0%}  {verdict}")
    print(f"report: {args.out}/agents_walkforward.md")
    return 0


def cmd_stack(args) -> int:
    from coinswarm import stack

    root = args.dir
    if args.stack_cmd == "up":
        for name, server in stack.up(root).items():
            print(f"export {stack.ENV_NAMES[name]}={server.url}   # pid {server.pid}")
        return 0
    if args.stack_cmd == "down":
        stopped = stack.down(root)
        print(f"stopped {', '.join(stopped)}" if stopped else "no stack running")
        return 0
    rows = stack.status(root)
    if not rows:
        print("no stack (run `coinswarm stack up`)")
        return 1
    for name, (server, alive) in rows.items():
        print(f"{name:9s} {'up  ' if alive else 'DOWN'} {server.url}  pid {server.pid}")
    return 0 if all(alive for _, alive in rows.values()) else 1


#: The data set a research command uses when neither ``--data`` nor ``--config`` names one.
DEFAULT_DATA = "binance:BTC/USDT:1h"


def _common(p: argparse.ArgumentParser, grid: bool) -> None:
    p.add_argument("--config", default=None, metavar="PATH.toml",
                   help="read flags from a TOML file (flags given here win; see runners/research.example.toml)")
    p.add_argument("--data", default=None,
                   help=f"catalog name(s) or CSV path(s), comma-separated (see `coinswarm data list`); "
                        f"left out: {DEFAULT_DATA}, said on stderr")
    p.add_argument("--start", default=None, type=checks.date,
                   help="first bar (inclusive), ISO-8601, e.g. 2018-01-01 (default: the data's first bar)")
    p.add_argument("--end", default=None, type=checks.date,
                   help="last day (inclusive), e.g. 2024-12-31 (default: the data's last bar)")
    p.add_argument("--strategy", default="sma_cross", choices=checks.LazyChoices(checks.strategy_names),
                   metavar="NAME", help="a registered strategy: %(choices)s")
    if grid:
        p.add_argument("--grid", action="append",
                       help="name=start:stop:step or name=a,b,c (repeat, or join with ';'); "
                            "default: the strategy's own grid")
    else:
        p.add_argument("--params", default=None,
                       help="name=value,name=value (default: the strategy's defaults)")
    p.add_argument("--fee-bps", type=checks.bps, default=10.0,
                   help=f"fee per fill in basis points, 0 to {checks.MAX_BPS:g} (warns above {checks.WARN_BPS:g})")
    p.add_argument("--slippage-bps", type=checks.bps, default=0.0,
                   help=f"slippage per fill in basis points, 0 to {checks.MAX_BPS:g}")
    p.add_argument("--funding", default=None,
                   help="funding-rate catalog name, e.g. binance-perp:BTC/USDT")
    p.add_argument("--cash-rate", type=checks.annual_rate, default=0.0,
                   help="annual interest credited on idle cash (0.04 = 4%%); walkforward also reports "
                        "Sharpe in excess of it (default 0: USDT in a spot wallet earns nothing)")
    p.add_argument("--borrow-rate", type=checks.annual_rate, default=0.0,
                   help="annual fee on short spot positions and on the USDT a levered spot book borrows "
                        "(perpetuals pay funding instead; default 0)")
    p.add_argument("--execution", choices=("next_open", "close"), default="next_open",
                   help="fill at the next bar's open or at the signal bar's close")
    p.add_argument("--init-cash", type=checks.positive, default=10_000.0, help="starting cash in the quote currency")
    p.add_argument("--json", default=None, metavar="PATH", help="write the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


EPILOGS = {
    "backtest": """examples:
  coinswarm backtest --params fast=20,slow=100 --start 2022
  coinswarm backtest --strategy committee --data binance:ETH/USDT:1h --json out/eth.json --plot out/eth.png
  coinswarm backtest --config research.toml""",
    "sweep": """examples:
  coinswarm sweep --grid "fast=5:50:5;slow=20:210:10" --sort sharpe --top 5
  coinswarm sweep --strategy trend --start 2023 --sort max_drawdown   # smallest drawdown first
  coinswarm sweep --grid fast=10,20 --grid slow=50,100 --csv out/sweep.csv""",
    "walkforward": """examples:
  coinswarm walkforward --train 365D --test 90D --require-pass
  coinswarm walkforward --strategy committee --data binance:ETH/USDT:1h --json out/wf.json --plot out/wf.png
  coinswarm walkforward --max-pbo 1   # do not gate on PBO""",
    "evidence": """examples:
  coinswarm evidence --pairs BTC,ETH --start 2021 --end 2023-12-31 --out research/reports""",
}
UNITS = ("units: returns, drawdowns, volatility, win rate and exposure are fractions in data "
         "(JSON, CSV, Python: 0.25) and percentages in text (25.00%); fees and slippage are basis points.")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("coinswarm")
    except PackageNotFoundError:  # a source tree that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``coinswarm``."""
    parser = Parser(prog="coinswarm", description=__doc__, epilog=f"""examples:
  coinswarm data list
  coinswarm backtest --params fast=20,slow=100 --start 2022
  coinswarm sweep --grid "fast=5:50:5;slow=20:210:10" --top 5
  coinswarm walkforward --strategy committee --require-pass
  coinswarm <command> --help   # every flag with its default

{UNITS}
exit codes: 0 done, 1 gate failed / stack down, 2 bad input or environment, 3 a bug.""")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_research_commands(sub)
    _add_service_commands(sub)
    _add_data_commands(sub)
    from coinswarm.cli import report as report_cli  # coinswarm report (tearsheet)
    report_cli.add_commands(sub)
    mcp_cli.add_commands(sub)
    __import__("coinswarm.cli.ingest", fromlist=["add_commands"]).add_commands(sub)
    live_commands.add_commands(sub)
    return parser


def _add_research_commands(sub) -> None:
    """``backtest``, ``sweep``, ``walkforward`` and ``evidence``."""
    p = sub.add_parser("backtest", help="one backtest", epilog=EPILOGS["backtest"])
    _common(p, grid=False)
    p.add_argument("--plot", default=None, metavar="PATH.png", help="save equity, drawdown and positions")
    p.set_defaults(func=cmd_backtest)
    p = sub.add_parser("sweep", help="every combination of a parameter grid", epilog=EPILOGS["sweep"])
    _common(p, grid=True)
    p.add_argument("--top", type=checks.whole(1, 1_000_000), default=10, help="rows to print")
    p.add_argument("--sort", default="sharpe",
                   help="a metric or parameter column; best first (smallest first for drawdowns, volatility, "
                        "fees and turnover)")
    p.add_argument("--csv", default=None, metavar="PATH", help="write every row as CSV (fractions, not %%)")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("walkforward", help="walk-forward optimisation with the OOS gate",
                       epilog=EPILOGS["walkforward"])
    _common(p, grid=True)
    p.add_argument("--train", default="365D", type=checks.duration, help="training window, e.g. 365D (> 0)")
    p.add_argument("--test", default="90D", type=checks.duration, help="test window, e.g. 90D (> 0)")
    p.add_argument("--anchored", action="store_true", help="every training window starts at the first bar")
    p.add_argument("--purge", default=None, type=checks.duration, help="≥ 0 (default: the warm-up)")
    p.add_argument("--embargo", default=None, type=checks.duration, help="≥ 0 (default 0)")
    p.add_argument("--objective", default="sharpe", choices=checks.LazyChoices(checks.metric_names),
                   metavar="METRIC", help="the metric each training window optimises (drawdowns, volatility, fees and "
                        "turnover: smallest; the rest: largest): %(choices)s")
    p.add_argument("--min-sharpe", type=checks.finite, default=GATE_DEFAULTS["min_sharpe"],
                   help="gate: least OOS Sharpe (daily, √365)")
    p.add_argument("--min-dsr", type=checks.probability, default=GATE_DEFAULTS["min_dsr"],
                   help="gate: least deflated Sharpe ratio")
    p.add_argument("--max-pbo", type=checks.probability, default=GATE_DEFAULTS["max_pbo"],
                   help="gate: most probability of backtest overfitting (1 turns the check off)")
    p.add_argument("--require-pass", action="store_true", help="exit 1 when the gate fails")
    p.add_argument("--plot", default=None, metavar="PATH.png", help="save OOS equity with the test folds shaded")
    p.set_defaults(func=cmd_walkforward)
    p = sub.add_parser("evidence", help="walk every agent and the committee forward on the six 1h pairs",
                       epilog=EPILOGS["evidence"])
    p.add_argument("--config", default=None, metavar="PATH.toml", help="read flags from a TOML file")
    p.add_argument("--pairs", default=",".join(("BTC", "ETH", "LTC", "SOL", "XRP", "ADA")),
                   help="base assets quoted in USDT, comma-separated")
    p.add_argument("--start", default="2018-01-01", type=checks.date)
    p.add_argument("--end", default="2024-12-31", type=checks.date)
    p.add_argument("--fee-bps", type=checks.bps, default=10.0,
                   help=f"fee per fill in basis points, 0 to {checks.MAX_BPS:g} (warns above {checks.WARN_BPS:g})")
    p.add_argument("--train", default="365D", type=checks.duration, help="training window")
    p.add_argument("--test", default="90D", type=checks.duration, help="test window")
    p.add_argument("--out", default="research/reports", help="folder for the report and figures")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--suite", choices=("agents", "portfolio"), default="agents",
                   help="agents: every agent per pair; portfolio: the portfolio committee vs baselines, "
                        "universes of 2/4/6 pairs, development ≤ 2023 and the 2024 holdout")
    p.add_argument("--sizes", default="2,4,6", help="portfolio suite: universe sizes")
    p.add_argument("--cash-rate", type=float, default=0.04, help="portfolio suite: annual cash rate")
    p.add_argument("--ledger", default="research/trials/ledger.jsonl", help="portfolio suite: trial ledger")
    p.set_defaults(func=cmd_evidence)


def _add_service_commands(sub) -> None:
    """``stack`` and ``quorum``."""
    p = sub.add_parser("stack", help="local NATS + Redis + PostgreSQL from the pip-installed binaries")
    p.add_argument("stack_cmd", choices=("up", "down", "status"))
    p.add_argument("--dir", default=None, help="data and state directory (default <tmp>/coinswarm-stack)")
    p.set_defaults(func=cmd_stack)
    from coinswarm.cli import quorum, warm

    quorum.add_commands(sub)
    warm.add_commands(sub)


def _add_data_commands(sub) -> None:
    """``data list|validate|download``."""
    p = sub.add_parser("data", help="list, validate or download data")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    dsub.add_parser("list", help="catalog names and where their files are")
    v = dsub.add_parser("validate", help="validate a CSV file or catalog name")
    v.add_argument("path")
    v.add_argument("--timeframe", default=None, type=checks.timeframe)
    d = dsub.add_parser("download", help="fetch candles with ccxt (needs network)")
    d.add_argument("--exchange", default="binance")
    d.add_argument("--symbol", required=True)
    d.add_argument("--timeframe", default="1h", type=checks.timeframe)
    d.add_argument("--since", required=True, type=checks.date)
    d.add_argument("--until", default=None, type=checks.date)
    d.add_argument("--out", required=True)
    p.set_defaults(func=cmd_data)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Every error is one line on stderr: exit 2 for bad input or a missing
    file/network (a :class:`~coinswarm.errors.CoinswarmError` or ``OSError``), exit 3 for a
    bug (re-run with ``--debug`` for the traceback and please report it). Output cut short by
    its reader (``coinswarm data list | head``) is no error."""
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = _parse(parser, argv)
        return args.func(args)
    except SystemExit as exc:  # usage errors (one line, see Parser.error), --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except (CoinswarmError, OSError) as exc:
        if debug:
            raise
        print(f"coinswarm: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if debug:
            raise
        print(f"coinswarm: internal error (a bug; re-run with --debug and report it): {type(exc).__name__}: "
              f"{one_line(exc)}", file=sys.stderr)
        return EXIT_BUG


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; with ``--config``, parse again over the file's values as defaults."""
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    from coinswarm.cli.config import COMMANDS

    if not path or args.command not in COMMANDS:  # `live run --config` reads the daemon's own file
        return args
    from coinswarm.cli.config import config_defaults, load_config

    command = parser._subparsers._group_actions[0].choices[args.command]
    command.set_defaults(**config_defaults(load_config(path), args.command, command, path))
    return parser.parse_args(argv)


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush is quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no real file (captured in tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
