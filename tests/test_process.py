"""Child-process hygiene: the children of one channel of several are found by what they name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from webtv.process import kill_children

pytestmark = pytest.mark.fast


def test_kill_children_naming_a_channels_folders_ends_those_alone():
    def child(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", *args])

    mine = [child("/srv/a/library/incoming/1.mp4"), child("rtmp://host/live/a")]
    others = [child("/srv/a/library2/incoming/1.mp4"), child("/srv/b/library/x"), child()]
    try:
        killed = kill_children(2.0, naming=("/srv/a/library", "/srv/a/hls", "rtmp://host/live/a"))
        assert sorted(killed) == sorted(p.pid for p in mine)
        assert all(p.wait(timeout=5) is not None for p in mine)
        assert all(p.poll() is None for p in others)
    finally:
        for p in mine + others:
            p.kill()
            p.wait()
