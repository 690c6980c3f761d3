"""``coinswarm evidence --suite portfolio``: the portfolio committee's protocol table (issue 19)."""

from __future__ import annotations

from coinswarm.errors import ConfigError


def cmd_portfolio_evidence(args) -> int:
    """Development walk-forward (≤ 2023) and the once-only 2024 holdout, universes of 2, 4, 6 pairs."""
    parts = [s.strip() for s in (args.sizes or "2,4,6").split(",") if s.strip()]
    sizes = tuple(int(s) for s in parts if s.isdigit())
    if not sizes or len(sizes) != len(parts) or any(s not in (2, 4, 6) for s in sizes):
        raise ConfigError(f"--sizes {args.sizes!r}: give universe sizes among 2,4,6")
    if args.end > "2024-12-31":
        raise ConfigError(f"--end {args.end}: data after 2024-12-31 is reserved for the held-out evaluation")
    from coinswarm.backtest.portfolio_evidence import run_portfolio_evidence

    evidence = run_portfolio_evidence(sizes, end=args.end, fee_bps=args.fee_bps, cash_rate=args.cash_rate,
                                      ledger=args.ledger, out=args.out)
    for r in evidence["rows"]:
        print(f"N={r['universe']} {r['phase']:11s} {r['strategy']:18s} Sharpe {r['sharpe_excess']:5.2f} "
              f"(Lo {r['sharpe_lo']:5.2f})  DSR {r['dsr_excess']:.3f}  return {r['total_return']:6.0%}")
    led = evidence["ledger"]
    print(f"trials in {led['path']}: {led['n_trials']} ({led['n_effective']} effective)")
    print(f"report: {args.out}/portfolio_evidence.md")
    return 0
