"""FRED source against recorded replies served on 127.0.0.1 (tests/fixtures/fred/)."""

from __future__ import annotations

import asyncio

import pytest

from coinswarm.adapters.sources.base import RecordError, Source, SourceError
from coinswarm.adapters.sources.fred import KEY_ENV, FredSource
from coinswarm.adapters.sources.web import HttpClient, NotConfiguredError

JAN_1 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY = 86_400_000
PATH = "/fred/series/observations"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key-123")


def _fred(server, sleep=None, **kw) -> FredSource:
    client = HttpClient("fred", sleep=sleep) if sleep else HttpClient("fred")
    return FredSource("DGS10", base_url=server.url, client=client, **kw)


def test_pages_through_observations_and_skips_missing_values(fixture_server, key):
    fixture_server.route(PATH, (200, "fred/dgs10_page1.json"), (200, "fred/dgs10_page2.json"))
    src = _fred(fixture_server, page_size=6)
    assert isinstance(src, Source)
    batch = asyncio.run(src.fetch(JAN_1, JAN_1 + 15 * DAY, now_ms=JAN_1 + 20 * DAY))
    assert [r.values["date"] for r in batch.records] == [
        "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09", "2024-01-10",
        "2024-01-11", "2024-01-12"]  # 01-01 and 01-15 are "." (holidays); 01-16 is outside [since, until)
    first = batch.records[0]
    assert (first.kind, first.source, first.key, first.time_ms) == ("macro", "fred:DGS10", "DGS10", JAN_1 + DAY)
    assert first.values["value"] == 3.95 and first.values["units"] == "lin"
    assert not batch.rejected
    q = [r.query for r in fixture_server.requests]
    assert [x["offset"] for x in q] == ["0", "6"]
    assert q[0]["series_id"] == "DGS10" and q[0]["api_key"] == "test-key-123" and q[0]["file_type"] == "json"
    assert (q[0]["observation_start"], q[0]["observation_end"]) == ("2024-01-01", "2024-01-15")
    assert src.health().lag_ms == 9 * DAY


def test_malformed_observations_are_rejected_by_field(fixture_server, key):
    fixture_server.route(PATH, (200, "fred/malformed_observations.json"))
    src = _fred(fixture_server)
    batch = asyncio.run(src.fetch(JAN_1, JAN_1 + 30 * DAY, now_ms=0))
    assert [r.values["date"] for r in batch.records] == ["2024-01-02", "2024-01-05"]
    assert all(isinstance(e, RecordError) and e.source == "fred:DGS10" for e in batch.rejected)
    assert [e.field for e in batch.rejected] == ["date", "value", "observation"]
    assert "'2024-13-01'" in str(batch.rejected[0]) and "'n/a'" in str(batch.rejected[1])
    assert src.health().rejected == 3


@pytest.mark.parametrize(("status", "fixture", "match"), [
    (400, "fred/error_bad_series.json", "series does not exist"),
    (200, "fred/not_json.html", "not JSON"),
    (500, b"[]", "expected a JSON object"),
    (200, b'{"count": 1}', "no 'observations' list"),
    (200, b'{"count": "many", "observations": []}', "'count' must be"),
])
def test_error_replies_are_source_errors(fixture_server, key, status, fixture, match):
    fixture_server.route(PATH, (status, fixture))
    src = _fred(fixture_server)
    with pytest.raises(SourceError, match=match):
        asyncio.run(src.fetch(JAN_1, JAN_1 + DAY, now_ms=0))
    assert src.health().errors == 1 and not src.health().healthy


def test_the_key_never_appears_in_error_messages(fixture_server, key):
    fixture_server.route(PATH, (200, "fred/not_json.html"))
    with pytest.raises(SourceError) as info:
        asyncio.run(_fred(fixture_server).fetch(JAN_1, JAN_1 + DAY, now_ms=0))
    assert "test-key-123" not in str(info.value) and "api_key=%2A%2A%2A" in str(info.value)


def test_429_with_retry_after_is_retried(fixture_server, key, no_sleep):
    fixture_server.route(PATH, (429, "fred/error_rate_limited.json", {"Retry-After": "3"}),
                         (200, "fred/malformed_observations.json"))
    batch = asyncio.run(_fred(fixture_server, sleep=no_sleep).fetch(JAN_1, JAN_1 + 30 * DAY, now_ms=0))
    assert len(batch.records) == 2 and no_sleep.waits == [3.0]


def test_a_retry_after_longer_than_the_cap_gives_up_at_once(fixture_server, key, no_sleep):
    fixture_server.route(PATH, (429, "fred/error_rate_limited.json", {"Retry-After": "3600"}))
    with pytest.raises(SourceError, match="rate limited") as info:
        asyncio.run(_fred(fixture_server, sleep=no_sleep).fetch(JAN_1, JAN_1 + DAY, now_ms=0))
    assert info.value.retry_after_s == 3600.0 and no_sleep.waits == [] and len(fixture_server.requests) == 1


def test_missing_key_is_a_clear_not_configured_error(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(NotConfiguredError, match=KEY_ENV):
        FredSource("DGS10")


@pytest.mark.parametrize("series", ["", "DGS 10", "x" * 65, "../etc", 10])
def test_bad_series_id_is_refused(key, series):
    with pytest.raises(NotConfiguredError, match="series id"):
        FredSource(series)


@pytest.mark.parametrize("raw", [True, "inf", "nan", "-inf", None, [], "4,5", ""])
def test_observation_values_that_are_no_finite_number_are_rejected(raw):
    from coinswarm.adapters.sources.fred import observation_record

    with pytest.raises(RecordError) as info:
        observation_record({"date": "2024-01-02", "value": raw}, 0, "DGS10", "fred:DGS10", "lin", 0)
    assert info.value.field == "value"


def test_missing_marker_is_skipped_not_rejected():
    from coinswarm.adapters.sources.fred import observation_record

    assert observation_record({"date": "2024-01-02", "value": "."}, 0, "DGS10", "fred:DGS10", "lin", 0) is None
    record = observation_record({"date": "2024-01-02", "value": "-0.25"}, 0, "S", "fred:S", None, 0)
    assert record.values["value"] == -0.25
