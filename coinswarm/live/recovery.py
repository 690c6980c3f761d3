"""Start-up is recovery: the same path for a fresh database, a clean restart and a restart after
SIGKILL.

:func:`recover` migrates and claims the ledger (a paper/replay db never serves a live run, and
the other way round), checks that the stored run is this run (same strategy, symbols and costs:
else :class:`~coinswarm.errors.ConfigError`), opens a fresh paper account or loads the last
checkpoint (the strategy's state, the kernel's state, the last processed bar), reads the kill
switch, and reconciles **before any decision**:

* an in-flight order (NEW, SENT, UNKNOWN, OPEN) decided at or after the checkpoint's bar was
  never executed (the paper venue's executions are booked atomically with the checkpoint): it
  stays in flight and the bar that decided it, processed again, sends it under the same id;
* an in-flight order decided *before* the checkpoint's bar cannot be explained;
* the ledger's positions and cash must equal the kernel's.

Anything unexplained halts trading (kill-switch reason ``reconcile``, with why): fail closed.
A bankrupt paper account (its deficit booked as a ``write_off`` cash flow, so it reconciles)
starts halted for reason ``bankrupt``, also after a ``resume``: it never trades again.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coinswarm.errors import ConfigError
from coinswarm.live import ledger_bulk as bulk
from coinswarm.live.killswitch import bankrupt
from coinswarm.live.runner import BANKRUPT_DETAIL, Runner

RUN_KEY = "run"
CHECKPOINT_KEY = "checkpoint"
_SPEC_KEYS = ("strategy", "symbols", "params", "fee", "slippage", "init_cash", "max_leverage", "allow_short",
              "financing", "funding")


@dataclass
class Recovery:
    """What :func:`recover` found."""

    fresh: bool
    resumed_from: int
    in_flight: int
    unexplained: list[str] = field(default_factory=list)
    halted: bool = False


def run_spec(runner: Runner, init_cash: float) -> dict[str, Any]:
    """The facts a resumed run must share with the stored one (``financing``: the paper kernel's
    daily interest and borrow rates, only when it finances the book, and ``funding``: where the
    perpetuals' funding rates are read, only when it trades perpetuals — so the spec of a run
    without either is the one stored before they existed)."""
    broker, stepper = runner.broker, runner.stepper
    spec = {"strategy": stepper.name, "symbols": list(stepper.symbols), "params": stepper.params._asdict(),
            "fee": broker.fee, "slippage": broker.slippage, "init_cash": float(init_cash),
            "max_leverage": broker.max_leverage, "allow_short": broker.allow_short}
    credit, borrow = float(getattr(broker, "credit", 0.0)), [float(x) for x in getattr(broker, "borrow", ())]
    if credit or any(borrow):
        spec["financing"] = {"daily_credit": credit, "daily_borrow": borrow}
    sources = getattr(getattr(runner, "funding", None), "sources", None)
    if sources:
        spec["funding"] = dict(sources)
    return spec


def recover(runner: Runner, *, mode: str, venue: str, init_cash: float, now_ms: int) -> Recovery:
    """Bring ``runner`` to the stored state of its ledger (or open a fresh account); see the
    module docstring. Returns what was found; an unexplained difference halts trading."""
    ledger = runner.ledger
    ledger.migrate()
    ledger.claim(mode, venue)
    spec = run_spec(runner, init_cash)
    stored = ledger.get_meta(RUN_KEY)
    if stored is None:
        bulk.commit_bars(ledger, deposit=(runner.broker.quote, float(init_cash)),
                           meta={RUN_KEY: spec, CHECKPOINT_KEY: runner.checkpoint()}, now_ms=now_ms)
        runner.kill = runner.kill_written = ledger.kill_state()
        return Recovery(True, runner.last_time, 0)
    _same_run(stored, spec, ledger)
    _load(runner, ledger.get_meta(CHECKPOINT_KEY))
    runner.kill = runner.kill_written = ledger.kill_state()
    runner.bars_processed = ledger.bars_processed()
    report = Recovery(False, runner.last_time, len(ledger.in_flight()))
    report.unexplained = _reconcile(runner)
    if report.unexplained:
        runner.kill = runner.kill_written = ledger.halt("reconcile", "; ".join(report.unexplained)[:1000], now_ms)
    if runner.broker.bankrupt and runner.kill.reason != "bankrupt":  # lifted by a resume: it never trades again
        runner.kill = runner.kill_written = bankrupt(runner.kill, BANKRUPT_DETAIL, now_ms)
        ledger.save_kill_state(runner.kill, now_ms)
    report.halted = runner.kill.halted
    return report


def _same_run(stored: Mapping[str, Any], spec: Mapping[str, Any], ledger) -> None:
    from coinswarm.live.config import mask_url

    differ = [f"{k}: stored {stored.get(k)!r}, now {spec.get(k)!r}" for k in _SPEC_KEYS
              if _norm(stored.get(k)) != _norm(spec.get(k))]
    if differ:
        raise ConfigError(f"{mask_url(ledger.url)} holds another run ({'; '.join(differ)}); resume it with the same "
                          "--data/--strategy and costs, or use another --db")


def _norm(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _load(runner: Runner, checkpoint: Mapping[str, Any] | None) -> None:
    if checkpoint is None:
        raise ConfigError(f"{runner.ledger.url}: a run is stored but no checkpoint; the db is damaged")
    runner.stepper.load_record(checkpoint["strategy"])
    runner.broker.load(base64.b64decode(checkpoint["paper"]))
    runner.last_time = int(checkpoint["time"])


def _reconcile(runner: Runner) -> list[str]:
    """Unexplained differences between the ledger and the paper venue (empty: all explained)."""
    ledger, broker = runner.ledger, runner.broker
    out = [f"order {o.client_order_id} ({o.side.value} {o.qty:g} {o.symbol}, decided at {o.bar_time}) is "
           f"{o.status.value} but its bar is before the checkpoint ({runner.last_time})"
           for o in ledger.in_flight() if o.bar_time < runner.last_time]
    held = ledger.positions()
    for symbol, qty in zip(runner.symbols, broker.positions(), strict=True):
        booked = held[symbol].qty if symbol in held else 0.0
        if abs(booked - float(qty)) > 1e-9 * max(1.0, abs(float(qty))):
            out.append(f"position {symbol}: ledger {booked!r}, venue {float(qty)!r}")
    cash = ledger.cash().get(broker.quote, 0.0)
    if abs(cash - broker.cash) > 1e-6 * max(1.0, abs(broker.cash)):
        out.append(f"cash {broker.quote}: ledger {cash!r}, venue {broker.cash!r}")
    return out
