"""The headline index when its store is down: a ``SourceError`` naming the index without the
password, nothing counted as inserted, and the next call tries to connect again."""

from __future__ import annotations

import asyncio
import socket

import pytest

from coinswarm.adapters.sources.base import SourceError
from coinswarm.ingest.altsources import HeadlineIndex


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["redis", "postgresql"])
def test_an_unreachable_store_is_a_source_error_without_the_password(scheme):
    port = _closed_port()
    index = HeadlineIndex(f"{scheme}://reader:s3cret@127.0.0.1:{port}/0")
    for _ in range(2):  # a failed open leaves no half-open store: the second call tries again
        with pytest.raises(SourceError) as caught:
            index.add([])
        text = str(caught.value)
        assert "s3cret" not in text and f"headline index {scheme}://127.0.0.1:{port}/0" in text
        assert index._store is None
    assert index.inserted == 0
    asyncio.run(index.close())  # nothing open: closing is a no-op
