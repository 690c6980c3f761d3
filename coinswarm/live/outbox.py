"""The transactional outbox: what the runner publishes (``agent.action``, ``agent.trade``,
``live.heartbeat``) is written to the ledger's ``live_outbox`` table **in the same transaction**
as the state change it reports, and a :class:`Relay` publishes it to the bus afterwards.

Delivery is at-least-once with de-duplication: every message carries a deterministic id
(``action:<client order id>``, ``trade:<fill id>``, ``heartbeat:<runner>:<ms>``) sent as
JetStream's ``Nats-Msg-Id`` (the server drops an id it saw inside its duplicate window,
:data:`DUPLICATE_WINDOW_S`; a consumer beyond it de-duplicates by the same id). A row is
marked published only after the bus acknowledged it, so nothing is lost while the bus is
down: the relay stops at the first failure and the next drain starts from the oldest
unpublished row, in order.

Memory proposals (``mem.propose``) are **stamped when published**: the relay sets a proposal's
``timestamp`` to its clock at the publish (never earlier than the written one), so one that
waited in the outbox through a long bus outage is as fresh as any when the managers judge it
(they refuse one older than their ``max_age_ms``, 1 h, when NATS stored it, as stale or
replayed). The timestamp is not part of the proposal's id (a digest of the run and the trip's
fill ids), which is what the stream and the store de-duplicate by, so a re-publish after a
crash is still dropped there.
A proposal published more than :data:`PROPOSAL_MAX_AGE_MS` after it was written is counted
(:attr:`Relay.delayed`) and logged; one the relay cannot read (never written by this code) is
published unchanged, counted (:attr:`Relay.unreadable`) and logged as an error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from coinswarm.errors import MessageError
from coinswarm.live.protocols import Fill, OrderIntent

if TYPE_CHECKING:
    from coinswarm.live.ledger import Ledger

SUBJECTS = ("agent.action", "agent.trade", "live.heartbeat")  # the COINSWARM_LIVE stream's
PROPOSAL_SUBJECT = "mem.propose"  # memory proposals (coinswarm.live.proposals): the quorum's stream, not ours
OUTBOX_SUBJECTS = (*SUBJECTS, PROPOSAL_SUBJECT)
LIVE_STREAM = "COINSWARM_LIVE"
DUPLICATE_WINDOW_S = 3600.0
PROPOSAL_MAX_AGE_MS = 3_600_000  # the managers' default Policy.max_age_ms (coinswarm.quorum.manager)
log = logging.getLogger("coinswarm.live.outbox")


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message to publish: ``msg_id`` is its de-duplication key (unique in the outbox)."""

    subject: str
    msg_id: str
    payload: bytes

    def __post_init__(self) -> None:
        if self.subject not in OUTBOX_SUBJECTS:
            raise MessageError(f"outbox subject {self.subject!r} is not one of {', '.join(OUTBOX_SUBJECTS)}",
                               field="subject", message_id=self.msg_id)
        if not isinstance(self.msg_id, str) or not 0 < len(self.msg_id) <= 200:
            raise MessageError("outbox msg_id must be 1-200 characters", field="msg_id")
        if not isinstance(self.payload, bytes):
            raise MessageError("outbox payload must be bytes", field="payload", message_id=self.msg_id)


def action_message(intent: OrderIntent) -> OutboxMessage:
    """``agent.action``: the runner decided ``intent`` (written with the order's NEW row)."""
    body = {"client_order_id": intent.client_order_id, "symbol": intent.symbol, "side": intent.side.value,
            "qty": intent.qty, "price": intent.price, "bar_time": intent.bar_time, "strategy": intent.strategy,
            "reduce_only": intent.reduce_only}
    return OutboxMessage("agent.action", f"action:{intent.client_order_id}", orjson.dumps(body))


def trade_message(fill: Fill) -> OutboxMessage:
    """``agent.trade``: one fill (written with the fill's row)."""
    body = {"fill_id": fill.fill_id, "client_order_id": fill.client_order_id, "symbol": fill.symbol,
            "side": fill.side.value, "qty": fill.qty, "price": fill.price, "fee": fill.fee,
            "fee_currency": fill.fee_currency, "time_ms": fill.time_ms}
    return OutboxMessage("agent.trade", f"trade:{fill.fill_id}", orjson.dumps(body))


def heartbeat_message(runner: str, now_ms: int, **fields: object) -> OutboxMessage:
    """``live.heartbeat``: the runner is alive at ``now_ms`` (plus any JSON-able ``fields``)."""
    body = {"runner": runner, "time_ms": int(now_ms), **fields}
    return OutboxMessage("live.heartbeat", f"heartbeat:{runner}:{int(now_ms)}", orjson.dumps(body))


async def ensure_live_stream(bus) -> None:
    """On a :class:`~coinswarm.adapters.bus.NatsBus`, create (or update) the JetStream stream that
    holds the outbox's subjects, so publishes are acknowledged and de-duplicated by id; nothing
    to do on the in-process bus."""
    js = getattr(bus, "js", None)
    if js is None:
        return
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    config = StreamConfig(name=LIVE_STREAM, subjects=list(SUBJECTS), duplicate_window=DUPLICATE_WINDOW_S)
    try:
        await js.stream_info(LIVE_STREAM)
        await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)


class Relay:
    """Publishes the ledger's outbox to a bus (``stream_publish`` with the message id), oldest
    first, marking each row published after the bus acknowledged it.

    Parameters
    ----------
    ledger : Ledger
        Holds the outbox table.
    bus : InProcessBus or NatsBus
        Anything with ``async stream_publish(subject, data, msg_id) -> bool``.
    clock : callable
        Returns epoch ms (stored as the publish time).
    batch : int
        Rows read per round trip to the database.
    """

    def __init__(self, ledger: Ledger, bus, clock: Callable[[], int], batch: int = 256) -> None:
        self.ledger, self.bus, self.clock, self.batch = ledger, bus, clock, int(batch)
        self.published = 0
        self.duplicates = 0
        self.failures = 0
        self.delayed = 0  # memory proposals published > PROPOSAL_MAX_AGE_MS after written (re-stamped)
        self.unreadable = 0  # memory proposals that could not be re-stamped (published unchanged)
        self.last_error: str = ""

    async def drain(self) -> int:
        """Publish every pending message; stop at the first failure (the bus is down: the rest
        waits, in order, for the next drain). Returns how many were published now."""
        sent = 0
        while True:
            rows = self.ledger.pending_outbox(self.batch)
            if not rows:
                return sent
            done: list[int] = []
            try:
                for row_id, message in rows:
                    try:
                        payload = self.stamped(message) if message.subject == PROPOSAL_SUBJECT else message.payload
                        fresh = await self.bus.stream_publish(message.subject, payload, message.msg_id)
                    except Exception as exc:  # the bus is down or refused: keep the row, try later
                        self.failures += 1
                        self.last_error = f"{type(exc).__name__}: {exc}"
                        return sent
                    done.append(row_id)
                    sent += 1
                    self.published += 1
                    self.duplicates += 0 if fresh else 1
            finally:  # one write per batch: a crash before it re-publishes the batch under the same ids
                if done:
                    self.ledger.mark_published(done, self.clock())

    def stamped(self, message: OutboxMessage) -> bytes:
        """A memory proposal's bytes with ``timestamp`` = the relay's clock now (see the module
        docstring); unchanged if the clock is behind the written timestamp or the bytes do not
        decode as a proposal (counted in :attr:`unreadable`, logged)."""
        from coinswarm.quorum.proposals import Proposal

        try:
            proposal = Proposal.decode(message.payload)
        except MessageError as exc:
            self.unreadable += 1
            log.error("memory proposal %s in the outbox is not a readable proposal (%s): published unchanged, "
                      "the quorum will refuse it", message.msg_id, exc)
            return message.payload
        now = int(self.clock())
        if now <= proposal.timestamp:
            return message.payload
        if now - proposal.timestamp > PROPOSAL_MAX_AGE_MS:
            self.delayed += 1
            log.warning("memory proposal %s waited %.1f h in the outbox (bus away); stamped at publish, not stale",
                        message.msg_id, (now - proposal.timestamp) / 3_600_000)
        return dataclasses.replace(proposal, timestamp=now).encode()

    async def run(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        """Drain every ``interval_s`` seconds until ``stop`` is set, then drain once more."""
        while not stop.is_set():
            await self._drain_unless_db_down()
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                pass
        await self._drain_unless_db_down()

    async def _drain_unless_db_down(self) -> None:
        """:meth:`drain`; the ledger's database away is a failure to retry at the next drain
        (the runner pauses on it meanwhile), not the end of the relay."""
        from sqlalchemy.exc import SQLAlchemyError

        from coinswarm.live.dbretry import is_unavailable

        try:
            await self.drain()
        except SQLAlchemyError as exc:
            if not is_unavailable(exc):
                raise
            self.failures += 1
            self.last_error = f"ledger database unavailable: {type(exc).__name__}"
