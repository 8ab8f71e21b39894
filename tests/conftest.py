"""Shared test fixtures."""

from __future__ import annotations

import pytest

from tests import rtmp_server as _rtmp


@pytest.fixture(scope="module")
def rtmp_server(tmp_path_factory):
    """A running nginx-rtmp on a free loopback port; yields its base URL, rtmp://127.0.0.1:PORT/live."""
    reason = _rtmp.available()
    if reason:
        pytest.fail(f"{reason}: run `make setup` (the tests need a real nginx-rtmp)")
    server = _rtmp.RtmpServer(tmp_path_factory.mktemp("nginx-rtmp")).start()
    try:
        yield server.url
    finally:
        server.stop()
