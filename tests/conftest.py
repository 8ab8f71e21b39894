"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest

from tests import rtmp_server as _rtmp

# torch here and in every daemon, render, bench and worker the tests start (they inherit the
# environment) on one thread: the tests' tiny models gain nothing from threads, and OpenMP
# threads spinning while the daemon's ffmpeg or other processes hold the cores turn seconds of
# torch into minutes (test_musicgen: 10 s alone, 35-90 s on a loaded 2-core machine).
os.environ["OMP_NUM_THREADS"] = "1"

# `make test` runs the suite in two lanes: `pytest -n 2 --lanes` (pytest-xdist). Each file in
# OWN_LANE (the five-minute continuity read, mostly waiting on the wall clock) is a lane of its
# own; every other test runs in the other lane, one at a time in file order as in a plain
# `pytest` run, so module fixtures and the timing-sensitive e2e tests see what they see alone.
# (xdist's `--dist loadgroup` would do this with marks, but it cannot group under pytest 9.2:
# pytest-xdist#1386, node ids are no longer rewritable.)
OWN_LANE = ("tests/test_continuity_e2e.py",)
# Timing-bound browser tests that failed beside the long read (a viewer caption at a clip edge,
# back on air within 8 s after a restart): in the suite's lane they run last, after the read
# has ended, under the load they were written for.
AFTER_THE_LONG_READ = ("tests/test_console_e2e.py", "tests/test_channel_e2e.py")


def pytest_addoption(parser):
    parser.addoption("--lanes", action="store_true",
                     help="with -n 2: each file of tests/conftest.py's OWN_LANE beside the rest of the suite")


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's: plain pytest runs without it
def pytest_xdist_make_scheduler(config, log):
    if not config.getoption("lanes"):
        return None  # xdist's own --dist
    from xdist.scheduler import LoadScopeScheduling

    class Lanes(LoadScopeScheduling):
        """Work units are the lanes; xdist hands each worker one (tests keep collection order)."""

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in OWN_LANE else "suite"

    return Lanes(config, log)


def pytest_collection_modifyitems(config, items):
    if config.getoption("lanes"):
        items.sort(key=lambda item: item.nodeid.split("::", 1)[0] in AFTER_THE_LONG_READ)  # stable: file order kept


@pytest.fixture(scope="session")
def beside_the_suite(request) -> bool:
    """True in a lane of OWN_LANE under `make test`: the rest of the suite runs beside this test."""
    return bool(request.config.getoption("lanes")) and "PYTEST_XDIST_WORKER" in os.environ


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


@pytest.fixture
def openai_server():
    """A fake OpenAI-compatible server on a free loopback port (see tests/openai_server.py).

    Yields the running ``FakeOpenAI``: its ``url`` is the base URL (``http://127.0.0.1:PORT/v1``),
    ``behave(*modes)`` sets how it answers, ``requests`` records what it got.
    """
    from tests.openai_server import FakeOpenAI

    server = FakeOpenAI(slow_s=3.0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    """One 1 s house-format clip (320x180) to fill libraries with."""
    from tests.clips import make_house_clip

    return make_house_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=1.0)


@pytest.fixture
def library(tmp_path):
    """An empty Library in a folder whose name has a space and a single quote."""
    from webtv.library import Library

    lib = Library(tmp_path / "lib rary's")
    yield lib
    lib.close()
