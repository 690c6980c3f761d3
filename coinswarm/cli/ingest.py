"""``coinswarm ingest run|status|backfill|import``: market-data ingestion from the command line."""

from __future__ import annotations

import json
import sys

from coinswarm.cli import checks


def add_commands(sub) -> None:
    """Register ``ingest`` and its sub-commands on the top-level sub-parser."""
    p = sub.add_parser("ingest", help="ingest market data: run the scheduler, status, backfill, import files")
    isub = p.add_subparsers(dest="ingest_cmd", required=True)
    r = isub.add_parser("run", help="run every ingestor of a config until SIGINT/SIGTERM (or --seconds)")
    r.add_argument("--config", required=True, help="ingest TOML (see runners/ingest.example.toml)")
    r.add_argument("--seconds", type=checks.finite, default=None, help="stop after this long")
    r.set_defaults(func=cmd_ingest_run)
    s = isub.add_parser("status", help="the health of each ingestor (from the status file of `ingest run`)")
    s.add_argument("--config", default=None, help="the TOML `ingest run` uses (its status_file)")
    s.add_argument("--status-file", default=None, help="the status JSON `ingest run` writes")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_ingest_status)
    b = isub.add_parser("backfill", help="fetch a history of candles/trades/funding by REST into a store")
    b.add_argument("--exchange", default="binance")
    b.add_argument("--symbol", required=True)
    b.add_argument("--kind", choices=("candle", "trade", "funding"), default="candle")
    b.add_argument("--timeframe", default="1h", type=checks.timeframe)
    b.add_argument("--since", required=True, type=checks.date)
    b.add_argument("--until", default=None, type=checks.date)
    b.add_argument("--store", required=True, help="parquet:DIR or postgresql://…")
    b.add_argument("--api-url", default=None, help="REST base URL (a fake venue in tests)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_ingest_backfill)
    i = isub.add_parser("import", help="bulk-load a recorded trades CSV (timestamp, trade_id, side, price, amount)")
    i.add_argument("file")
    i.add_argument("--store", required=True, help="parquet:DIR or postgresql://…")
    i.add_argument("--exchange", default=None, help="default: from the file name (binance_BTCUSDT_trades_…)")
    i.add_argument("--symbol", default=None, help="default: from the file name")
    i.add_argument("--json", action="store_true", help="print the report as JSON")
    i.set_defaults(func=cmd_ingest_import)


def _print(report: dict, as_json: bool, keys: tuple[str, ...]) -> None:
    if as_json:
        print(json.dumps(report, indent=None, sort_keys=True))
    else:
        print("  ".join(f"{k}={report[k]}" for k in keys))
        for err in report.get("errors", [])[:5]:
            print(f"  rejected: {err}", file=sys.stderr)


def cmd_ingest_import(args) -> int:
    """``coinswarm ingest import FILE --store …``."""
    from coinswarm.ingest.imports import import_trades
    from coinswarm.ingest.store import open_store

    store = open_store(args.store)
    try:
        report = import_trades(args.file, store, exchange=args.exchange, symbol=args.symbol)
    finally:
        store.close()
    _print(report.to_dict(), args.json, ("exchange", "symbol", "rows_read", "rows_written", "rows_rejected",
                                         "store_rows", "ticks_per_s"))
    return 0


def cmd_ingest_run(args) -> int:
    """``coinswarm ingest run --config PATH``."""
    import asyncio

    from coinswarm.ingest.config import load_config
    from coinswarm.ingest.scheduler import run_until_signal

    config = load_config(args.config)
    asyncio.run(run_until_signal(config, seconds=args.seconds))
    return 0


def cmd_ingest_status(args) -> int:
    """``coinswarm ingest status``: exit 0 when every ingestor is healthy, 1 otherwise."""
    from coinswarm.ingest.health import read_status, status_path

    path = status_path(args.config, args.status_file)
    status = read_status(path)
    if args.json:
        print(json.dumps(status, sort_keys=True))
    else:
        print(f"{'ingestor':40} {'ok':3} {'last success (s ago)':>20} {'lag ms':>9} {'errors':>6} "
              f"{'rejected':>8} {'reconnects':>10}  last error")
        for h in status["sources"]:
            ago = "-" if h["last_success_ms"] is None else f"{(status['now_ms'] - h['last_success_ms']) / 1000:.1f}"
            print(f"{h['source']:40.40} {'yes' if h['healthy'] else 'NO':3} {ago:>20} {h['lag_ms'] or '-':>9} "
                  f"{h['errors']:>6} {h['rejected']:>8} {h['reconnects']:>10}  {(h['last_error'] or '')[:120]}")
    return 0 if status["healthy"] else 1


def cmd_ingest_backfill(args) -> int:
    """``coinswarm ingest backfill``: page the REST history of one market into a store."""
    import asyncio

    from coinswarm.ingest.backfill import backfill

    report = asyncio.run(backfill(args.exchange, args.symbol, args.kind, args.timeframe, args.since, args.until,
                                  args.store, api_url=args.api_url))
    _print(report, args.json, ("exchange", "symbol", "kind", "rows_read", "rows_written", "store_rows", "gaps"))
    return 0
