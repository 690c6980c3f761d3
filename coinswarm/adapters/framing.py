"""Frames: many stream messages in one NATS message, formed only under load.

A publisher that already has a JetStream publish in flight on a subject queues the next
messages; when the ack arrives, everything queued goes out as **one** frame (natural
batching, no timer: an idle publisher sends a single message at once, exactly as before).
Consumers unpack frames transparently, so handlers still see one message per item with
its own ``msg_id``. At 2,000 proposals/s this turns ~60 NATS messages per proposal
(publishes, deliveries, acks) into a few per frame.

Wire format (the ``Coinswarm-Frame`` header names the version): for each item a 4-byte
big-endian id length, the UTF-8 id, a 4-byte data length and the data. The frame's own
``Nats-Msg-Id`` is a digest of the item ids, so a retried frame is deduplicated by the
server like a single message; items of *different* frames are not deduplicated against
each other, which is why every consumer of the stream is idempotent per item.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Awaitable, Callable

from coinswarm.adapters.batching import Batcher
from coinswarm.errors import MessageError

FRAME_HEADER = "Coinswarm-Frame"
FRAME_VERSION = "1"
SEQ_STRIDE = 1 << 16  # item k of stream message s gets sequence s * SEQ_STRIDE + k
_LEN = struct.Struct(">I")


def encode_frame(items: list[tuple[str, bytes]]) -> bytes:
    """``[(msg_id, data), ...]`` → one payload."""
    parts = []
    for msg_id, data in items:
        raw_id = msg_id.encode()
        parts += [_LEN.pack(len(raw_id)), raw_id, _LEN.pack(len(data)), data]
    return b"".join(parts)


def decode_frame(payload: bytes) -> list[tuple[str, bytes]]:
    """Inverse of :func:`encode_frame`; :class:`MessageError` if truncated or malformed."""
    items, pos, end = [], 0, len(payload)
    try:
        while pos < end:
            (n,) = _LEN.unpack_from(payload, pos)
            msg_id = payload[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (m,) = _LEN.unpack_from(payload, pos)
            data = payload[pos + 4:pos + 4 + m]
            if len(data) != m:
                raise ValueError("item runs past the end")
            items.append((msg_id, bytes(data)))
            pos += 4 + m
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise MessageError(f"malformed frame at byte {pos}: {exc}", field="frame") from None
    if len(items) >= SEQ_STRIDE:
        raise MessageError(f"frame of {len(items)} items exceeds {SEQ_STRIDE - 1}", field="frame")
    return items


def frame_id(items: list[tuple[str, bytes]]) -> str:
    """Deterministic ``Nats-Msg-Id`` of a frame: a digest of its item ids."""
    digest = hashlib.blake2b(digest_size=16)
    for msg_id, _ in items:
        digest.update(msg_id.encode())
        digest.update(b"\0")
    return f"frame-{digest.hexdigest()}"


Send = Callable[[list[tuple[str, bytes]]], Awaitable[bool]]


def item_size(item: tuple[str, bytes]) -> int:
    """Bytes ``(msg_id, data)`` takes inside a frame (:func:`encode_frame`)."""
    msg_id, data = item
    return 2 * _LEN.size + len(msg_id.encode()) + len(data)


class Coalescer(Batcher[tuple[str, bytes], bool]):
    """Per-subject queue: ``send`` one item at once when idle, everything queued when busy.

    Parameters
    ----------
    send : callable
        Coroutine publishing a list of ``(msg_id, data)`` (one item: a plain message;
        more: a frame); returns False when the server had seen the id already.
    max_items : int, default 512
        Most items per frame.
    max_bytes : int, optional
        Most bytes of frame payload (:func:`encode_frame`): a NATS server refuses a message
        above its ``max_payload``, so what queued up is split into frames below it. An item
        larger than this goes alone (as a plain message). None: no limit.
    """

    def __init__(self, send: Send, *, max_items: int = 512, max_bytes: int | None = None) -> None:
        super().__init__(self._send, max_batch=max_items, weigh=item_size if max_bytes is not None else None,
                         max_weight=max_bytes)
        self.send = send

    async def _send(self, items: list[tuple[str, bytes]]) -> list[bool]:
        return [await self.send(items)] * len(items)

    @property
    def frames(self) -> int:
        """Messages sent so far (single items and frames)."""
        return self.batches

    async def publish(self, msg_id: str, data: bytes) -> bool:
        """Queue one item; returns when the frame carrying it is acked."""
        return await self.submit((msg_id, data))
