"""``coinswarm live run|replay|report|status|halt|resume`` and ``coinswarm parity``: the live
runner daemon's command line (imports stay inside the commands: ``--help`` loads no numba)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from coinswarm.cli import checks
from coinswarm.errors import ConfigError

EXIT_DIFFERENT = 1


def add_commands(sub) -> None:
    """Register ``live`` (with its sub-commands) and ``parity``."""
    live = sub.add_parser("live", help="the live runner daemon (paper by default)")
    cmds = live.add_subparsers(dest="live_command", required=True)
    p = cmds.add_parser("run", help="run the daemon from a TOML config (paper unless --live)")
    p.add_argument("--config", required=True, metavar="PATH")
    p.add_argument("--live", action="store_true", help="allow real orders (needs keys in the environment)")
    p.set_defaults(func=cmd_run)
    p = cmds.add_parser("replay", help="the daemon on a replay feed with the paper broker (re-run resumes)")
    _replay_args(p)
    p.add_argument("--db", required=True, metavar="URL", help="sqlite:///paper.db or postgresql+psycopg://…")
    p.add_argument("--speed", default="max", type=_speed, help="max, or a multiple of real time (3600)")
    p.add_argument("--metrics-port", type=checks.whole(1, 65535), default=None)
    p.add_argument("--redis", default=None, metavar="URL",
                   help="hot state in Redis (default: $COINSWARM_REDIS_URL, else none)")
    p.add_argument("--nats", default=None, metavar="URL",
                   help="publish the outbox to NATS (default: $COINSWARM_NATS_URL, else in-process)")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                   help="propose each closed round trip to the quorum as an episode (default: on with NATS)")
    p.add_argument("--max-drawdown", type=_fraction, default=1.0, help="kill switch, in (0, 1] (1 = off)")
    p.add_argument("--daily-loss", type=_fraction, default=1.0, help="kill switch, in (0, 1] (1 = off)")
    p.set_defaults(func=cmd_replay)
    for name, helptext, func in (("report", "the ledger as JSON", cmd_report),
                                 ("status", "what the daemon is doing", cmd_status),
                                 ("halt", "halt trading (persisted)", cmd_halt),
                                 ("resume", "lift a halt (persisted)", cmd_resume)):
        p = cmds.add_parser(name, help=helptext)
        p.add_argument("--db", required=True, metavar="URL")
        p.add_argument("--json", action="store_true")
        if name == "halt":
            p.add_argument("--reason", default="manual halt", help="free text stored with the halt")
        p.set_defaults(func=func)
    p = sub.add_parser("parity", help="the daemon against the backtest on the same data (exit 0 iff identical)")
    _replay_args(p)
    p.set_defaults(func=cmd_parity)


def _replay_args(p) -> None:
    p.add_argument("--data", required=True, action="append", metavar="SOURCE",
                   help="catalog name (binance:BTC/USDT:1h) or SYMBOL=CSV_PATH; repeat for several symbols")
    p.add_argument("--strategy", required=True)
    p.add_argument("--start", default=None, type=checks.date)
    p.add_argument("--end", default=None, type=checks.date)
    p.add_argument("--funding", action="append", default=[], metavar="SYMBOL=SOURCE", type=_funding_arg,
                   help="a perpetual's funding rates (catalog name or timestamp,funding_rate CSV); found by "
                        "itself beside a binance-perp:BASE/QUOTE:tf source")
    p.add_argument("--fee-bps", type=checks.bps, default=10.0, help="paper fee per fill (default 10)")
    p.add_argument("--slippage-bps", type=checks.bps, default=0.0, help="paper slippage per fill (default 0)")
    p.add_argument("--cash-rate", type=checks.annual_rate, default=0.0,
                   help="annual interest the paper account earns on idle cash (booked as ledger cash flows)")
    p.add_argument("--borrow-rate", type=checks.annual_rate, default=0.0,
                   help="annual fee on short spot positions and on a levered spot book's USDT loan")


def _replay_costs(args):
    from coinswarm.costs import Costs

    return Costs(fee_bps=args.fee_bps, slippage_bps=args.slippage_bps, cash_rate=args.cash_rate,
                 borrow_rate=args.borrow_rate)


def _funding_arg(text: str) -> tuple[str, str]:
    symbol, eq, source = text.partition("=")
    if not eq or ":" not in symbol or not source.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected PERP_SYMBOL=SOURCE, e.g. "
                                         "BTC/USDT:USDT=binance-perp:BTC/USDT:funding")
    return symbol.strip(), source.strip()


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"{text!r} is not a fraction in (0, 1] (0.2 = 20 %; 1 = the limit is off)")
    return value


def _speed(text: str) -> float | str:
    if text == "max":
        return "max"
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise ConfigError(f"--speed {text!r}: expected 'max' or a positive multiple of real time (e.g. 3600)")
    return value


def _stop_on_signals(loop, stop) -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass


def cmd_replay(args) -> int:
    """``coinswarm live replay``."""
    import asyncio
    import os

    from coinswarm.live.config import RiskLimits
    from coinswarm.live.replay import ReplaySpec, replay_served

    limits = RiskLimits(max_drawdown=args.max_drawdown, daily_loss=args.daily_loss,
                        max_position=1e12, max_order_notional=1e15)
    spec = ReplaySpec(args.data, args.strategy, args.db, start=args.start, end=args.end, speed=args.speed,
                      limits=limits, memory=args.memory, funding=dict(args.funding), costs=_replay_costs(args))

    async def main() -> dict:
        stop = asyncio.Event()
        _stop_on_signals(asyncio.get_running_loop(), stop)
        return await replay_served(spec, redis=redis, nats=nats, metrics_port=args.metrics_port, stop=stop)

    redis = args.redis if args.redis is not None else os.environ.get("COINSWARM_REDIS_URL", "")
    nats = args.nats if args.nats is not None else os.environ.get("COINSWARM_NATS_URL", "")

    summary = asyncio.run(main())
    rate = summary["bars_per_s"]
    print(f"replay: {summary['bars']} bars in {summary['seconds']:.2f} s"
          + (f" ({rate:,.0f} bars/s)" if rate else "") + ("; resumed" if summary["resumed"] else "")
          + ("; HALTED (see coinswarm live status)" if summary["halted"] else ""))
    return 0


def _open(url: str):
    from coinswarm.live.ledger import Ledger

    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise ConfigError(f"--db {url}: no such database (a replay or run creates it)")
    ledger = Ledger(url)
    ledger.migrate()
    return ledger


def full_report(ledger) -> dict:
    """:meth:`Ledger.report` with the equity of the paper kernel's last checkpoint."""
    import base64

    from coinswarm.kernels.portfolio import portfolio_from_bytes, portfolio_view

    report = ledger.report()
    checkpoint = ledger.get_meta("checkpoint")
    if checkpoint and checkpoint.get("paper"):
        view = portfolio_view(portfolio_from_bytes(base64.b64decode(checkpoint["paper"])))
        report["equity"] = view["equity"]
        report["last_bar_time"] = checkpoint.get("time")
    return report


def cmd_report(args) -> int:
    """``coinswarm live report``."""
    ledger = _open(args.db)
    try:
        report = full_report(ledger)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(report, default=str))
    else:
        _print_status(report)
    return 0


def _print_status(report: dict) -> None:
    lat = report["decision_latency_us"]
    mode = report.get("mode") or {}
    in_flight = sum(1 for o in report["orders"] if o["status"] in ("new", "sent", "unknown", "open"))
    print(f"mode: {mode.get('mode', '?')} on {mode.get('venue', '?')}")
    print(f"trading: {'HALTED (' + report['halt_reason'] + ')' if report['halted'] else 'running'}")
    print(f"bars processed: {report['bars_processed']}" + (f", last bar {_iso(report['last_bar_time'])}"
                                                          if report.get("last_bar_time", -1) not in (None, -1) else ""))
    print(f"orders: {len(report['orders'])} ({in_flight} in flight), fills: {len(report['fills'])}")
    print("positions: " + (", ".join(f"{s} {p['qty']:.8g}" for s, p in report["positions"].items()) or "none"))
    print("cash: " + ", ".join(f"{v:.2f} {k}" for k, v in report["cash"].items())
          + (f"; equity {report['equity']:.2f}" if report.get("equity") is not None else ""))
    if lat["p50"] is not None:
        print(f"decision latency: p50 {lat['p50']:.0f} µs, p99 {lat['p99']:.0f} µs")


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def cmd_status(args) -> int:
    """``coinswarm live status``."""
    return cmd_report(args) if args.json else _status_text(args.db)


def _status_text(url: str) -> int:
    ledger = _open(url)
    try:
        _print_status(full_report(ledger))
    finally:
        ledger.close()
    return 0


def cmd_halt(args) -> int:
    """``coinswarm live halt``: persisted; a running daemon adopts it at its next checkpoint."""
    ledger = _open(args.db)
    try:
        state = ledger.halt("manual", args.reason, time.time_ns() // 1_000_000)
    finally:
        ledger.close()
    _say(args, {"halted": state.halted, "reason": state.reason, "detail": state.detail})
    return 0


def cmd_resume(args) -> int:
    """``coinswarm live resume``: lifts any halt (the drawdown peak restarts at the current equity)."""
    from coinswarm.live.killswitch import resume

    ledger = _open(args.db)
    try:
        equity = full_report(ledger).get("equity")
        state = resume(ledger.kill_state(), equity)
        ledger.save_kill_state(state, time.time_ns() // 1_000_000)
    finally:
        ledger.close()
    _say(args, {"halted": state.halted, "reason": state.reason, "detail": state.detail})
    return 0


def _say(args, body: dict) -> None:
    if args.json:
        print(json.dumps(body))
    else:
        print("trading halted: " + body["detail"] if body["halted"] else "trading resumed")


def cmd_parity(args) -> int:
    """``coinswarm parity``: exit 0 only when every order and fill is identical."""
    from coinswarm.live.parity import compare

    report = compare(args.data, args.strategy, args.start, args.end, funding=dict(args.funding),
                     costs=_replay_costs(args))
    for line in report.lines:
        print(line)
    print(report.summary())
    sys.stdout.flush()
    return 0 if report.identical else EXIT_DIFFERENT


def cmd_run(args) -> int:
    """``coinswarm live run``: the config is validated (real orders need --live and keys)."""
    from coinswarm.live.config import load_config
    from coinswarm.live.daemon import run_config

    config = load_config(args.config, live=args.live)
    return run_config(config)
