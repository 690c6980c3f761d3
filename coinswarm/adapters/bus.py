"""The message bus: one interface, an in-process implementation and a NATS one.

Subjects (as in the seed): ``mem.propose``, ``mem.vote``, ``mem.commit``, ``mem.audit``,
``planner.propose|vote|commit``, ``agent.action``, ``agent.trade``.

* ``publish`` / ``subscribe`` — fire-and-forget fan-out; ``queue=`` makes a queue group
  (each message to one member).
* ``request`` — request-reply with a timeout.
* ``stream_publish`` / ``stream_subscribe`` — durable streams (JetStream on NATS) for
  proposals and commits (votes are plain fan-out: their voters re-send what is lost).
  Each message carries ``Nats-Msg-Id``; the server drops a redelivered id inside the
  duplicate window, and a durable consumer resumes where it stopped after a restart
  (at-least-once: handlers must be idempotent, and the store is).
* ``stream_poll`` / ``stream_ack`` — what a stream received since the reader's last poll, in
  one burst: for a reader that can wait and batch (a node's tick learning about commits, the
  applier) rather than be woken once per message; ``acked=True`` for a reader that must see
  every message (it starts at the stream's beginning and acknowledges what it handled).

:class:`InProcessBus` is deterministic (FIFO, one dispatcher, round-robin queue groups)
for backtests and unit tests; :class:`NatsBus` talks to a real nats-server.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from coinswarm.adapters.batching import bounded
from coinswarm.adapters.framing import (
    FRAME_HEADER,
    FRAME_VERSION,
    SEQ_STRIDE,
    Coalescer,
    decode_frame,
    encode_frame,
    frame_id,
)
from coinswarm.errors import ConfigError, MessageError

# votes are fan-out messages (re-sent by their voter when lost), not stream entries
STREAM_SUBJECTS = ("mem.propose", "mem.commit", "planner.propose", "planner.commit")
STREAM_NAME = "COINSWARM"


class PayloadTooLargeError(MessageError):
    """A message (headers included) larger than the server's ``max_payload``: refused at once,
    never retried (it would never fit)."""


def header_size(headers: dict[str, str]) -> int:
    """Bytes the NATS header block of ``headers`` takes on the wire (``NATS/1.0`` line,
    ``key: value`` lines, blank line); the server's ``max_payload`` counts it with the data."""
    if not headers:
        return 0
    return 12 + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())


def _transient_errors() -> tuple[type[BaseException], ...]:
    """What a JetStream publish may meet while the server is away or restarting: worth a retry.
    Anything else (payload too large, a closed connection, a refused request) is raised at once."""
    import nats.errors as ne
    import nats.js.errors as je

    return (asyncio.TimeoutError, ne.TimeoutError, ne.NoRespondersError, ne.ConnectionReconnectingError,
            ne.OutboundBufferLimitError, ne.StaleConnectionError, je.ServiceUnavailableError,
            je.NoStreamResponseError, ConnectionError)


@dataclass(frozen=True)
class Message:
    """A delivered message.

    ``received_ms`` (stream deliveries only): when the server stored the message in the stream,
    epoch milliseconds on the server's clock — JetStream's metadata timestamp, the same for
    every consumer and every redelivery, and set by the server, not the publisher. None for
    core (fan-out) messages and the in-process bus."""

    subject: str
    data: bytes
    msg_id: str | None = None
    reply: str | None = None
    seq: int | None = None
    received_ms: int | None = None


Handler = Callable[[Message], Awaitable[None]]


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` one token, ``>`` the rest."""
    want, have = pattern.split("."), subject.split(".")
    for k, token in enumerate(want):
        if token == ">":
            return len(have) > k
        if k >= len(have) or (token != "*" and token != have[k]):
            return False
    return len(want) == len(have)


def stream_position(reply: str) -> tuple[int, int]:
    """``(stream sequence, received ms)`` of a JetStream delivery, read from its ack subject:
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<stored ns>.<pending>``
    (9 tokens), or with a domain and an account hash before the stream (11 or more). The same
    as nats-py's ``msg.metadata.sequence.stream`` and ``msg.metadata.timestamp`` (the time the
    server stored the message, to the millisecond) without building the rest for every
    message; :class:`MessageError` for anything else."""
    tokens = reply.split(".") if reply else []
    if len(tokens) < 9 or len(tokens) == 10 or tokens[0] != "$JS" or tokens[1] != "ACK":
        raise MessageError(f"not a JetStream delivery (reply {reply!r})", field="reply")
    offset = 0 if len(tokens) == 9 else 2
    return int(tokens[5 + offset]), int(tokens[7 + offset]) // 1_000_000


def check_subject(subject: str) -> str:
    """Reject empty or malformed subjects with a clear error."""
    if not isinstance(subject, str) or not subject or " " in subject or ".." in subject:
        raise MessageError(f"invalid subject {subject!r}", field="subject")
    return subject


@dataclass
class _Sub:
    pattern: str
    handler: Handler
    queue: str | None
    active: bool = True


class Subscription:
    """Handle to stop receiving."""

    def __init__(self, stop: Callable[[], Awaitable[None]]) -> None:
        self._stop = stop

    async def unsubscribe(self) -> None:
        """Stop delivery to this handler."""
        await self._stop()


@dataclass
class InProcessBus:
    """Deterministic bus in one event loop: messages are dispatched FIFO, one at a time."""

    subs: list[_Sub] = field(default_factory=list)
    streams: dict[str, list[Message]] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)
    _queue: deque = field(default_factory=deque)
    _pumping: bool = False
    _rr: dict[str, itertools.count] = field(default_factory=dict)
    _inbox: itertools.count = field(default_factory=itertools.count)
    _cursors: dict[str, int] = field(default_factory=dict)

    async def publish(self, subject: str, data: bytes, *, msg_id: str | None = None, reply: str | None = None) -> None:
        """Queue ``data`` for every matching subscriber and dispatch until the queue is empty."""
        await self._post(Message(check_subject(subject), bytes(data), msg_id, reply))

    async def _post(self, msg: Message) -> None:
        self._queue.append(msg)
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._queue:
                await self._dispatch(self._queue.popleft())
        finally:
            self._pumping = False

    async def _dispatch(self, msg: Message) -> None:
        groups: dict[str, list[_Sub]] = {}
        for sub in [s for s in self.subs if s.active and subject_matches(s.pattern, msg.subject)]:
            if sub.queue is None:
                await sub.handler(msg)
            else:
                groups.setdefault(sub.queue, []).append(sub)
        for queue, members in groups.items():
            turn = next(self._rr.setdefault(queue, itertools.count()))
            await members[turn % len(members)].handler(msg)

    async def subscribe(self, subject: str, handler: Handler, *, queue: str | None = None) -> Subscription:
        """Deliver matching messages to ``handler`` (one member per ``queue`` group)."""
        sub = _Sub(check_subject(subject), handler, queue)
        self.subs.append(sub)

        async def stop() -> None:
            sub.active = False

        return Subscription(stop)

    async def request(self, subject: str, data: bytes, timeout: float = 1.0) -> Message:
        """Publish with a reply inbox and wait for the first answer."""
        inbox = f"_INBOX.{next(self._inbox)}"
        answer: asyncio.Future = asyncio.get_running_loop().create_future()

        async def collect(msg: Message) -> None:
            if not answer.done():
                answer.set_result(msg)

        sub = await self.subscribe(inbox, collect)
        try:
            await self.publish(subject, data, reply=inbox)
            return await asyncio.wait_for(answer, timeout)
        finally:
            await sub.unsubscribe()

    async def respond(self, msg: Message, data: bytes) -> None:
        """Answer a request."""
        if not msg.reply:
            raise MessageError("message has no reply subject", field="reply")
        await self.publish(msg.reply, data)

    async def stream_publish(self, subject: str, data: bytes, msg_id: str) -> bool:
        """Append to the durable log unless ``msg_id`` was seen; returns False for a duplicate."""
        if not msg_id:
            raise MessageError("stream messages need a msg_id", field="msg_id")
        if msg_id in self.seen_ids:
            return False
        self.seen_ids.add(msg_id)
        log = self.streams.setdefault(subject, [])
        msg = Message(check_subject(subject), bytes(data), msg_id, None, len(log) + 1)
        log.append(msg)
        await self._post(msg)
        return True

    async def stream_publish_many(self, subject: str, items: list[tuple[str, bytes]]) -> list[bool]:
        """:meth:`stream_publish` for each ``(msg_id, data)``, in order."""
        return [await self.stream_publish(subject, data, msg_id) for msg_id, data in items]

    async def stream_subscribe(self, subject: str, durable: str, handler: Handler, *,
                               concurrency: int = 1, batch: bool = False) -> Subscription:
        """Replay the stored log for ``subject``, then receive new messages (always in order here).

        ``batch=True``: ``handler`` takes a list of messages (here always one)."""
        deliver = (lambda m: handler([m])) if batch else handler
        for msg in list(self.streams.get(subject, [])):
            await deliver(msg)
        return await self.subscribe(subject, lambda m: deliver(m) if m.msg_id else _noop())

    async def stream_poll(self, subject: str, durable: str, *, max_messages: int = 1024,
                          timeout: float = 1.0, acked: bool = False) -> list[Message]:
        """The messages appended to ``subject`` since ``durable``'s last poll (the first poll
        starts the reader at the end of the log, or with ``acked`` at its beginning)."""
        log = self.streams.setdefault(subject, [])
        start = self._cursors.setdefault(durable, 0 if acked else len(log))
        out = log[start:start + max_messages]
        self._cursors[durable] = start + len(out)
        return out

    async def stream_ack(self, message: Message) -> None:
        """Nothing to acknowledge: this log never redelivers."""

    async def close(self) -> None:
        """Nothing to release."""


async def _noop() -> None:
    return None


class NatsBus:
    """The bus over a real nats-server (core NATS + JetStream)."""

    def __init__(self, nc, js, name: str, *, retry_for: float = 30.0, close_timeout: float = 5.0) -> None:
        self.nc, self.js, self.name = nc, js, name
        self.retry_for, self.close_timeout = retry_for, close_timeout
        self.reconnects = 0
        self.bad_frames = 0
        self._tasks: set[asyncio.Task] = set()
        self._coalescers: dict[str, Coalescer] = {}
        self._pollers: dict[str, _Poller] = {}

    @classmethod
    async def connect(cls, url: str, *, name: str = "coinswarm", duplicate_window: float = 120.0,
                      reconnect_wait: float = 0.25, max_reconnect_attempts: int = -1,
                      connect_timeout: float = 10.0, retry_for: float = 30.0,
                      close_timeout: float = 5.0, error_cb=None, disconnected_cb=None) -> NatsBus:
        """Connect and ensure the stream.

        Parameters
        ----------
        reconnect_wait : float
            Seconds between reconnect attempts after the connection drops.
        max_reconnect_attempts : int
            Attempts before the connection gives up and closes (every later call then raises
            at once); -1 (the default, for long-running processes): never give up. Tests
            bound it, so a server that never comes back ends in an error, not a hang.
        connect_timeout : float
            Seconds the first connection (and the stream's creation) may take:
            :class:`ConfigError` after that.
        retry_for : float
            Default seconds a stream publish retries transient errors (see :meth:`stream_publish`).
        close_timeout : float
            Most seconds :meth:`close` waits for the connection to drain before closing it.
        error_cb, disconnected_cb : async callables, optional
            nats-py's callbacks (a failed (re)connect attempt; the connection lost). Without
            ``error_cb`` nats-py logs every failed attempt with its traceback.
        """
        from nats.aio.client import Client

        holder: dict = {}

        async def on_reconnect() -> None:
            holder["bus"].reconnects += 1

        nc = Client()
        try:
            await bounded(nc.connect(url, name=name, max_reconnect_attempts=max_reconnect_attempts,
                                     reconnect_time_wait=reconnect_wait, reconnected_cb=on_reconnect,
                                     **({"error_cb": error_cb} if error_cb else {}),
                                     **({"disconnected_cb": disconnected_cb} if disconnected_cb else {}),
                                     connect_timeout=min(2.0, connect_timeout), allow_reconnect=True,
                                     drain_timeout=max(1, int(close_timeout))), connect_timeout, "NATS connect")
            bus = holder["bus"] = cls(nc, nc.jetstream(timeout=min(5.0, connect_timeout)), name,
                                      retry_for=retry_for, close_timeout=close_timeout)
            await bounded(bus.ensure_stream(duplicate_window), connect_timeout, "JetStream stream creation")
        except Exception as exc:  # nats raises several unrelated types
            await bounded(nc.close(), 2.0, "NATS close", quiet=True)
            raise ConfigError(f"cannot connect to NATS at {url} within {connect_timeout:g} s: "
                              f"{type(exc).__name__}: {exc}") from exc
        return bus

    @property
    def max_payload(self) -> int:
        """The server's largest message, headers included (bytes)."""
        return self.nc.max_payload

    def check_size(self, headers: dict[str, str], data: bytes, what: str) -> None:
        """:class:`PayloadTooLargeError` unless ``data`` with ``headers`` fits one message."""
        size = len(data) + header_size(headers)
        if size > self.max_payload:
            raise PayloadTooLargeError(f"{what} of {size:,} bytes (headers included) exceeds the NATS server's "
                                       f"max_payload of {self.max_payload:,} bytes; send less than that",
                                       field="data", message_id=headers.get("Nats-Msg-Id"))

    async def ensure_stream(self, duplicate_window: float) -> None:
        """Create (or update) the durable stream of proposals and commits."""
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        config = StreamConfig(name=STREAM_NAME, subjects=list(STREAM_SUBJECTS), duplicate_window=duplicate_window)
        try:
            await self.js.stream_info(STREAM_NAME)
            await self.js.update_stream(config)
        except NotFoundError:
            await self.js.add_stream(config)

    async def publish(self, subject: str, data: bytes, *, msg_id: str | None = None, reply: str | None = None) -> None:
        """Core publish."""
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        self.check_size(headers or {}, data, f"message on {subject}")
        await self.nc.publish(check_subject(subject), data, reply=reply or "", headers=headers)

    async def subscribe(self, subject: str, handler: Handler, *, queue: str | None = None) -> Subscription:
        """Core subscription (optionally a queue group)."""
        async def deliver(raw) -> None:
            for msg_id, data, _ in self._items(raw):
                await handler(Message(raw.subject, data, msg_id, raw.reply or None))

        sub = await self.nc.subscribe(check_subject(subject), queue=queue or "", cb=deliver)
        return Subscription(sub.unsubscribe)

    async def request(self, subject: str, data: bytes, timeout: float = 1.0) -> Message:
        """Request-reply."""
        raw = await self.nc.request(check_subject(subject), data, timeout=timeout)
        return Message(raw.subject, raw.data, None, None)

    async def respond(self, msg: Message, data: bytes) -> None:
        """Answer a request."""
        if not msg.reply:
            raise MessageError("message has no reply subject", field="reply")
        await self.nc.publish(msg.reply, data)

    async def stream_publish(self, subject: str, data: bytes, msg_id: str, timeout: float = 2.0,
                             retry_for: float | None = None) -> bool:
        """JetStream publish with ``Nats-Msg-Id``; False when the server saw the id already.

        Publishes that meet one already in flight on ``subject`` travel together in the
        next frame (:mod:`coinswarm.adapters.framing`), frames capped by the server's
        ``max_payload``; a frame is deduplicated as a whole. A message that cannot fit one
        NATS message is refused at once with :class:`PayloadTooLargeError`. While the server
        is unreachable (timeouts, no responders, reconnecting) the publish is retried with
        exponential backoff (50 ms doubling to 1 s) for up to ``retry_for`` seconds (default:
        the bus's) — safe, since a retried id is deduplicated by the server; any other error
        is raised at once.
        """
        if not msg_id:
            raise MessageError("stream messages need a msg_id", field="msg_id")
        self.check_size({"Nats-Msg-Id": msg_id}, data, f"stream message on {subject}")
        return await self._coalescer(subject, timeout, retry_for).publish(msg_id, data)

    async def stream_publish_many(self, subject: str, items: list[tuple[str, bytes]], timeout: float = 2.0,
                                  retry_for: float | None = None) -> list[bool]:
        """Queue every ``(msg_id, data)`` at once (they share frames) and wait for all; one
        result per item, as :meth:`stream_publish` (nothing is queued if one is refused)."""
        if any(not msg_id for msg_id, _ in items):
            raise MessageError("stream messages need a msg_id", field="msg_id")
        for msg_id, data in items:
            self.check_size({"Nats-Msg-Id": msg_id}, data, f"stream message on {subject}")
        coalescer = self._coalescer(subject, timeout, retry_for)
        results = await asyncio.gather(*(coalescer.enqueue((msg_id, data)) for msg_id, data in items),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)

    def frame_budget(self) -> int:
        """Most bytes of frame payload (:func:`encode_frame`) one NATS message carries."""
        return self.max_payload - header_size({FRAME_HEADER: FRAME_VERSION, "Nats-Msg-Id": frame_id([("", b"")])})

    def _coalescer(self, subject: str, timeout: float, retry_for: float | None) -> Coalescer:
        """The subject's frame queue (created on first use with these send settings)."""
        subject = check_subject(subject)
        coalescer = self._coalescers.get(subject)
        if coalescer is None:
            retry = self.retry_for if retry_for is None else retry_for

            async def send(items: list[tuple[str, bytes]]) -> bool:
                return await self._send_items(subject, items, timeout, retry)

            coalescer = self._coalescers[subject] = Coalescer(send, max_bytes=self.frame_budget())
        return coalescer

    async def _send_items(self, subject: str, items: list[tuple[str, bytes]], timeout: float,
                          retry_for: float) -> bool:
        """One item as a plain message, more as one frame; transient errors retried with backoff
        until ``retry_for`` seconds have passed (each attempt's wait clipped to what is left)."""
        if len(items) == 1:
            (msg_id, data), headers = items[0], {}
        else:
            msg_id, data, headers = frame_id(items), encode_frame(items), {FRAME_HEADER: FRAME_VERSION}
        headers["Nats-Msg-Id"] = msg_id
        self.check_size(headers, data, f"frame of {len(items)} on {subject}")
        transient = _transient_errors()
        loop = asyncio.get_running_loop()
        deadline, backoff = loop.time() + retry_for, 0.05
        while True:
            wait = max(0.05, min(timeout, deadline - loop.time()))
            try:
                ack = await self.js.publish(subject, data, timeout=wait, headers=headers)
                return not ack.duplicate
            except transient:
                if loop.time() + backoff > deadline:
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    def _items(self, raw) -> list[tuple[str | None, bytes, int]]:
        """``(msg_id, data, k)`` of each item of a delivered message (one unless it is a frame)."""
        headers = raw.headers or {}
        if headers.get(FRAME_HEADER) is None:
            return [(headers.get("Nats-Msg-Id"), raw.data, 0)]
        try:
            return [(msg_id, data, k) for k, (msg_id, data) in enumerate(decode_frame(raw.data))]
        except MessageError:
            self.bad_frames += 1
            return []

    def _stream_messages(self, raw, reply: str | None = None) -> list[Message]:
        """The items of a stream delivery as messages: item ``k`` of stream message ``s`` has
        sequence ``s * SEQ_STRIDE + k`` and ``s``'s ``received_ms``; ``reply`` (the ack subject, for a
        poller's acks) or None."""
        sequence, received_ms = stream_position(raw.reply)
        base = sequence * SEQ_STRIDE
        return [Message(raw.subject, data, msg_id, reply, base + k, received_ms)
                for msg_id, data, k in self._items(raw)]

    async def stream_subscribe(self, subject: str, durable: str, handler: Handler, *,
                               concurrency: int = 1, batch: bool = False) -> Subscription:
        """Durable push consumer; a message (or a whole frame) is acked only after its handlers return.

        ``concurrency > 1`` runs up to that many messages at once, and a frame's items
        concurrently (for handlers whose messages are independent, such as proposals and
        votes); 1 keeps stream order. ``batch=True`` calls ``handler`` once per delivered
        message with the list of its items (no task per item). Item ``k`` of stream
        message ``s`` has sequence ``s * SEQ_STRIDE + k``.
        """
        slots = asyncio.Semaphore(concurrency)

        async def handle(raw) -> None:
            try:
                messages = self._stream_messages(raw)
                if batch:
                    if messages:
                        await handler(messages)
                elif concurrency == 1 or len(messages) == 1:
                    for message in messages:
                        await handler(message)
                else:
                    await asyncio.gather(*(handler(message) for message in messages))
                await raw.ack()
            finally:
                slots.release()

        async def deliver(raw) -> None:
            await slots.acquire()
            if concurrency == 1:
                await handle(raw)
            else:
                task = asyncio.create_task(handle(raw))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        sub = await self.js.subscribe(check_subject(subject), durable=durable, cb=deliver, manual_ack=True,
                                      stream=STREAM_NAME)
        return Subscription(sub.unsubscribe)

    async def stream_poll(self, subject: str, durable: str, *, max_messages: int = 1024,
                          timeout: float = 1.0, acked: bool = False) -> list[Message]:
        """Up to ``max_messages`` stored on ``subject`` since ``durable``'s last poll, fetched in
        one burst without waiting for more (a ``no_wait`` pull): one wake-up for everything
        that arrived, instead of one per message. ``durable`` is a pull consumer created by
        the first poll and kept on the server, so a reader resumes after a restart of either
        side. Without ``acked`` it starts at the end of the stream and needs no acks; with
        ``acked`` it starts at the beginning, and what a poll returned comes again (after the
        server's ack wait) unless :meth:`stream_ack` acknowledged it or a later message. What
        has not arrived after ``timeout`` seconds comes with the next poll."""
        poller = self._pollers.get(durable)
        if poller is None:
            poller = self._pollers[durable] = _Poller(self, subject, durable, acked)
        return await poller.poll(max_messages, timeout)

    async def stream_ack(self, message: Message) -> None:
        """Acknowledge ``message`` and every message its ``acked`` poller returned before it."""
        if not message.reply:
            raise MessageError("message has no ack subject (not from an acked stream_poll)", field="reply")
        await self.nc.publish(message.reply, b"+ACK")

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait until the server has processed everything sent so far (at most ``timeout`` s)."""
        await bounded(self.nc.flush(timeout=timeout), timeout + 1.0, "NATS flush")

    async def close(self) -> None:
        """Drain and close the connection, within ``close_timeout`` seconds: a connection that
        is reconnecting, or does not drain in time, is closed without draining."""
        if self.nc.is_closed:
            return
        try:
            await bounded(self.nc.drain(), self.close_timeout, "NATS drain")
        except Exception:  # noqa: BLE001  (reconnecting, closed meanwhile, or too slow: close outright)
            pass
        if not self.nc.is_closed:
            await bounded(self.nc.close(), self.close_timeout, "NATS close", quiet=True)


class _Poller:
    """One durable pull consumer of :class:`NatsBus`, read by ``no_wait`` requests: ack-less
    from the end of the stream, or (``acked``) from its beginning with cumulative acks."""

    def __init__(self, bus: NatsBus, subject: str, durable: str, acked: bool) -> None:
        self.bus, self.subject, self.durable, self.acked = bus, check_subject(subject), durable, acked
        self.inbox: str | None = None
        self.ready = False  # the consumer exists (as far as we know)
        self.received: list[Message] = []
        self.done: asyncio.Future | None = None

    async def _ensure(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        if self.inbox is None:
            self.inbox = self.bus.nc.new_inbox()
            await self.bus.nc.subscribe(self.inbox, cb=self._on_message)
        if self.acked:
            policy = {"ack_policy": AckPolicy.ALL, "deliver_policy": DeliverPolicy.ALL, "max_ack_pending": -1}
        else:
            policy = {"ack_policy": AckPolicy.NONE, "deliver_policy": DeliverPolicy.NEW}
        await self.bus.js.add_consumer(STREAM_NAME, ConsumerConfig(durable_name=self.durable,
                                                                   filter_subject=self.subject, **policy))
        self.ready = True

    async def poll(self, max_messages: int, timeout: float) -> list[Message]:
        if not self.ready:
            await self._ensure()
        self.done = asyncio.get_running_loop().create_future()
        request = orjson.dumps({"batch": max_messages, "no_wait": True})
        await self.bus.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_NAME}.{self.durable}", request,
                                  reply=self.inbox)
        # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancel that lands
        # as the reply arrives, and a poller that ignores its cancel never stops
        await asyncio.wait({self.done}, timeout=timeout)  # on timeout: what came so far, the rest next poll
        return self._take()

    def _take(self) -> list[Message]:
        out, self.received = self.received, []
        return out

    async def _on_message(self, raw) -> None:
        status = (raw.headers or {}).get("Status")
        if status is None:
            self.received += self.bus._stream_messages(raw, reply=raw.reply)
            return
        if status == "503":  # no such consumer (a server that lost it): create it again on the next poll
            self.ready = False
        if self.done is not None and not self.done.done():
            self.done.set_result(status)  # 404 / 408: nothing more for this request
