"""``coinswarm evidence --suite portfolio``: the portfolio committee's protocol table (issue 19)."""

from __future__ import annotations

from coinswarm.errors import ConfigError

DEV_END = "2023-12-31"  # the development period's last day; the holdout starts the day after


def _check_window(start: str, end: str) -> None:
    """``--start`` opens the development walk-forward, which ends on :data:`DEV_END`; ``--end``
    closes the holdout (no data after 2024-12-31)."""
    from coinswarm.data.validate import as_time_bound

    first, last, dev_end = as_time_bound(start, "--start"), as_time_bound(end, "--end"), as_time_bound(DEV_END, "")
    if last > as_time_bound("2024-12-31T23:59:59.999Z", ""):
        raise ConfigError(f"--end {end}: data after 2024-12-31 is reserved for the held-out evaluation")
    if first >= dev_end:
        raise ConfigError(f"--start {start}: the development walk-forward ends {DEV_END}; give a start before it")
    if last <= dev_end:
        raise ConfigError(f"--end {end}: the holdout starts after {DEV_END}; give an end in 2024")


def cmd_portfolio_evidence(args) -> int:
    """Development walk-forward (``--start`` … 2023) and the once-only 2024 holdout (… ``--end``),
    universes of 2, 4, 6 pairs, ``--train``/``--test`` windows."""
    parts = [s.strip() for s in (args.sizes or "2,4,6").split(",") if s.strip()]
    sizes = tuple(int(s) for s in parts if s.isdigit())
    if not sizes or len(sizes) != len(parts) or any(s not in (2, 4, 6) for s in sizes):
        raise ConfigError(f"--sizes {args.sizes!r}: give universe sizes among 2,4,6")
    # the parser always sets them; a caller's own Namespace may leave them to the protocol's defaults
    start, train, test = (getattr(args, k, d) for k, d in (("start", "2018-01-01"), ("train", "365D"),
                                                            ("test", "90D")))
    _check_window(start, args.end)
    from coinswarm.backtest.portfolio_evidence import run_portfolio_evidence

    evidence = run_portfolio_evidence(sizes, start=start, dev_end=DEV_END, end=args.end, fee_bps=args.fee_bps,
                                      cash_rate=args.cash_rate, train=train, test=test, ledger=args.ledger,
                                      out=args.out)
    for r in evidence["rows"]:
        print(f"N={r['universe']} {r['phase']:11s} {r['strategy']:18s} Sharpe {r['sharpe_excess']:5.2f} "
              f"(Lo {r['sharpe_lo']:5.2f})  DSR {r['dsr_excess']:.3f}  return {r['total_return']:6.0%}")
    led = evidence["ledger"]
    print(f"trials in {led['path']}: {led['n_trials']} ({led['n_effective']} effective)")
    print(f"report: {args.out}/portfolio_evidence.md")
    return 0
