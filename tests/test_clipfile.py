"""A clip file between its check and its decoder (webtv/playout/clipfile.py): what counts as
changed, and the list the decoder reads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from webtv.playout import Block, Entry
from webtv.playout.clipfile import Stamp, open_for_air

pytestmark = pytest.mark.fast


def checked(path: Path) -> Entry:
    return Entry(path=path, duration=2.0, source="fresh", clip_id=1, stamp=Stamp.of_path(path))


def block_of(*entries: Entry, tmp_path: Path) -> Block:
    return Block(number=1, playlist=tmp_path / "block-000001.ffconcat", entries=entries)


def test_unchanged_files_are_opened_and_listed_by_descriptor(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "it's b.mp4"
    a.write_bytes(b"a" * 100)
    b.write_bytes(b"b" * 100)
    filler = Entry(path=b, duration=4.0, source="filler")  # no stamp: opened unchecked
    files = open_for_air(block_of(checked(a), filler, checked(a), tmp_path=tmp_path))
    try:
        assert files.changed == [] and set(files.fds) == {a, b}
        os.replace(b, tmp_path / "elsewhere")  # the open file stays the file that was opened
        assert os.read(files.fds[b], 3) == b"bbb"
        listed = files.ffconcat(block_of(checked(a), filler, tmp_path=tmp_path))
        assert listed == (f"ffconcat version 1.0\nfile '/dev/fd/{files.fds[a]}'\nduration 2.000000\n"
                          f"file '/dev/fd/{files.fds[b]}'\nduration 4.000000\n")
    finally:
        files.close()
    assert files.fds == {}


@pytest.mark.parametrize("change, reason", [
    ("replace", "replaced"),  # renamed over: another inode
    ("rewrite", "changed size"),  # written in place (cp onto it): same inode, another size
    ("same_size", "written"),  # written in place, same size
    ("delete", "missing"),
])
def test_a_file_changed_after_its_check_is_reported(tmp_path, change, reason):
    clip = tmp_path / "00000001.mp4"
    clip.write_bytes(b"x" * 1000)
    entry = checked(clip)
    time.sleep(0.01)  # a later change time, on file systems with coarse timestamps too
    if change == "replace":
        (tmp_path / "new").write_bytes(b"y" * 1000)
        os.replace(tmp_path / "new", clip)
    elif change == "rewrite":
        clip.write_bytes(b"y" * 500)
    elif change == "same_size":
        with open(clip, "r+b") as f:
            f.write(b"y" * 10)
    else:
        clip.unlink()
    files = open_for_air(block_of(entry, tmp_path=tmp_path))
    assert files.fds == {}
    assert [(e.path, reason in why) for e, why in files.changed] == [(clip, True)], files.changed


def test_a_missing_unchecked_file_stays_in_the_list_by_its_path(tmp_path):
    missing = Entry(path=tmp_path / "no 'filler'.mp4", duration=4.0, source="filler")
    files = open_for_air(block_of(missing, tmp_path=tmp_path))
    assert files.changed == [] and files.fds == {}
    assert f"file '{tmp_path}/no '\\''filler'\\''.mp4'\n" in files.ffconcat(block_of(missing, tmp_path=tmp_path))
