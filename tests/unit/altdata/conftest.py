"""Fixtures of the macro/news/sentiment source tests: the recorded-reply server on 127.0.0.1."""

from tests.fixtures.http_server import fixture_server, no_sleep  # noqa: F401 (pytest fixtures)
