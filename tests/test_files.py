"""write_atomic: a reader sees the old file or the new one; mode, owner and links survive."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from webtv.files import write_atomic

pytestmark = pytest.mark.fast


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_an_existing_file_keeps_its_mode_and_owner(tmp_path):
    target = tmp_path / "channel.toml"
    target.write_text("old\n")
    os.chmod(target, 0o600)
    if os.geteuid() == 0:
        os.chown(target, 4321, 4322)
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n" and mode(target) == 0o600
    if os.geteuid() == 0:
        assert (os.stat(target).st_uid, os.stat(target).st_gid) == (4321, 4322)
    os.chmod(target, 0o640)
    write_atomic(target, "newer\n")
    assert mode(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["channel.toml"]


def test_a_new_file_is_made_as_open_would_make_it(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "fresh.ffconcat", "x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "fresh.ffconcat") == 0o640


def test_a_symlink_is_followed_each_time_and_stays_a_link(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "channel.toml").write_text("a\n")
    (tmp_path / "b" / "channel.toml").write_text("b\n")
    link = tmp_path / "channel.toml"
    link.symlink_to(tmp_path / "a" / "channel.toml")
    write_atomic(link, "to a\n")
    link.unlink()
    link.symlink_to(tmp_path / "b" / "channel.toml")
    write_atomic(link, "to b\n")
    assert link.is_symlink()
    assert (tmp_path / "a" / "channel.toml").read_text() == "to a\n"
    assert (tmp_path / "b" / "channel.toml").read_text() == "to b\n"


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "channel.toml"
    target.write_text("old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as caught:
        write_atomic(target, "new\n")
    assert caught.value.errno == errno.ENOSPC
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["channel.toml"]
