"""FRED (Federal Reserve Economic Data) series as ``macro`` records, over its HTTP API.

``GET {base}/fred/series/observations?series_id=DGS10&api_key=…&file_type=json
&observation_start=YYYY-MM-DD&observation_end=YYYY-MM-DD&limit=…&offset=…`` answers
``{"count": n, "offset": o, "limit": l, "units": …, "observations": [{"date": "2024-01-02",
"value": "3.95", "realtime_start": …, "realtime_end": …}, …]}``. FRED marks a missing value
with ``"."``: such observations are skipped (they are no error). An observation with a bad date
or a non-numeric value is rejected with a :class:`RecordError` naming the field, and the others
are kept. An error reply (``{"error_code": 400, "error_message": …}``) or a reply without
``observations`` is a :class:`SourceError`; 429 is retried after ``Retry-After``.

The key comes only from the environment variable ``COINSWARM_FRED_API_KEY``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Any

from coinswarm.adapters.sources.base import Batch, Health, Record, RecordError, SourceError, check_record
from coinswarm.adapters.sources.web import (
    HttpClient,
    NotConfiguredError,
    Tracker,
    api_key,
    check_url,
    reply_count,
    with_query,
)

KEY_ENV = "COINSWARM_FRED_API_KEY"
BASE_URL = "https://api.stlouisfed.org"
MISSING = "."
SERIES_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_DAY_MS = 86_400_000


class FredSource:
    """One FRED series, fetched by observation date with paging.

    Parameters
    ----------
    series_id : str
        The FRED series id (``DGS10``, ``CPIAUCSL``, ``M2SL``...).
    base_url : str
        The API root (tests point it at a local server).
    page_size : int
        Observations per request (FRED allows 1..100000).
    max_pages : int
        A guard against a server that never stops paging.
    client : HttpClient, optional
        HTTP client (back-off, timeout).

    Raises
    ------
    NotConfiguredError
        ``COINSWARM_FRED_API_KEY`` is unset, or the series id or URL is malformed.
    """

    def __init__(self, series_id: str, *, base_url: str = BASE_URL, page_size: int = 100_000,
                 max_pages: int = 100, client: HttpClient | None = None) -> None:
        self.name = f"fred:{series_id}"
        if not isinstance(series_id, str) or not SERIES_ID.match(series_id):
            raise NotConfiguredError(f"series id must be 1-64 letters, digits or '_', got {series_id!r}",
                                     source=self.name)
        if not 1 <= page_size <= 100_000:
            raise NotConfiguredError(f"page_size must be in [1, 100000], got {page_size}", source=self.name)
        self.series_id, self.page_size, self.max_pages = series_id, page_size, max_pages
        self.base_url = check_url(base_url, self.name).rstrip("/")
        self._key = api_key(KEY_ENV, self.name)
        self.client = dataclasses.replace(client, source=self.name) if client else HttpClient(self.name)
        self._tracker = Tracker(Health(self.name))

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """Observations dated in ``[since_ms, until_ms)`` (dates are UTC midnights)."""
        batch = Batch(self.name)
        try:
            offset = 0
            for _ in range(self.max_pages):
                reply = await self._page(since_ms, until_ms, offset)
                observations = reply["observations"]
                self._parse(observations, reply, batch, since_ms, until_ms, now_ms)
                offset += len(observations)
                if offset >= reply_count(reply, "count", self.name) or not observations:
                    break
            else:
                raise SourceError(f"still paging after {self.max_pages} pages of {self.page_size}", source=self.name)
        except SourceError as err:
            self._tracker.failed(err)
            raise
        newest = max((r.time_ms for r in batch.records), default=None)
        return self._tracker.succeeded(batch, now_ms, newest)

    async def _page(self, since_ms: int, until_ms: int, offset: int) -> dict[str, Any]:
        url = with_query(f"{self.base_url}/fred/series/observations", {
            "series_id": self.series_id, "api_key": self._key, "file_type": "json",
            "observation_start": _day(since_ms), "observation_end": _day(max(since_ms, until_ms - 1)),
            "sort_order": "asc", "limit": self.page_size, "offset": offset})
        status, body = await self.client.get_json_object(url)
        if status != 200 or "error_code" in body:
            raise SourceError(f"HTTP {status}: FRED error {body.get('error_code')}: {body.get('error_message')}",
                              source=self.name)
        if not isinstance(body.get("observations"), list):
            raise SourceError(f"reply has no 'observations' list; keys {sorted(body)}", source=self.name)
        return body

    def _parse(self, observations: list, reply: dict, batch: Batch, since_ms: int, until_ms: int,
               now_ms: int) -> None:
        for index, obs in enumerate(observations):
            try:
                record = observation_record(obs, index, self.series_id, self.name, reply.get("units"), now_ms)
            except RecordError as err:
                batch.rejected.append(err)
                continue
            if record is not None and since_ms <= record.time_ms < until_ms:
                batch.records.append(record)

    def health(self) -> Health:
        """Last success, lag, error and rejection counts."""
        return self._tracker.snapshot()


def observation_record(obs: Any, index: int, series_id: str, source: str, units: Any,
                       received_ms: int) -> Record | None:
    """One FRED observation as a ``macro`` record; ``None`` for FRED's missing value ``"."``."""
    if not isinstance(obs, dict):
        raise RecordError(f"observation {index} is a {type(obs).__name__}, expected an object", source=source,
                          field="observation", value=obs)
    date = obs.get("date")
    try:
        day = dt.datetime.strptime(str(date), "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise RecordError(f"observation {index}: date must be YYYY-MM-DD, got {date!r}", source=source,
                          field="date", value=date) from None
    raw = obs.get("value")
    if raw == MISSING:
        return None
    try:
        value = math.nan if isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise RecordError(f"observation {index} ({date}): value must be a finite number or '.', got {raw!r}",
                          source=source, field="value", value=raw)
    values = {"value": value, "date": date, "units": units, "realtime_start": obs.get("realtime_start")}
    return check_record(Record("macro", source, series_id, int(day.timestamp()) * 1000, values, received_ms))


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")
