"""Live edits that go wrong: the config watcher never dies (an edit that fails to apply is
shown and the watch goes on; a watch that loses its folder starts again and reads the file),
and a schedule edit that cannot be applied leaves every slot of the last good one."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.daemon import write_config
from webtv.config import Config, ScheduleEntry
from webtv.theme.live import ConfigWatcher
from webtv.theme.schedule import Schedule

pytestmark = pytest.mark.fast


class Recorder:
    """What a ConfigWatcher hands on: the themes applied and the config_error shown."""

    def __init__(self, fail_on: str | None = None):
        self.fail_on = fail_on
        self.applied: list[str] = []
        self.error: str | None = None

    async def on_config(self, config: Config) -> None:
        if config.channel.theme == self.fail_on:
            raise RuntimeError("the component refused the edit")
        self.applied.append(config.channel.theme)

    def on_error(self, message: str | None) -> None:
        self.error = message


def set_theme(path: Path, theme: str) -> None:
    path.write_text(re.sub(r'theme = ".*"', f'theme = "{theme}"', path.read_text(), count=1))


async def until(what, timeout: float = 5.0, poke=None) -> None:
    """Wait for ``what()``; ``poke()`` again every second (the watch may not have started yet)."""
    deadline = time.monotonic() + timeout
    poked = 0.0
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if poke is not None and time.monotonic() - poked > 1.0:
            poke()
            poked = time.monotonic()
        await asyncio.sleep(0.05)


async def watching(path: Path, recorder: Recorder):
    stop = asyncio.Event()
    watcher = ConfigWatcher(path, recorder.on_config, recorder.on_error, debounce_ms=50)
    task = asyncio.create_task(watcher.run(stop))
    return watcher, stop, task


async def test_an_edit_that_fails_to_apply_is_shown_and_the_watch_goes_on(tmp_path):
    path = write_config(tmp_path, 8080, [])
    recorder = Recorder(fail_on="a theme the channel refuses")
    watcher, stop, task = await watching(path, recorder)
    try:
        await until(lambda: recorder.error is not None, poke=lambda: set_theme(path, "a theme the channel refuses"))
        assert "could not be applied" in recorder.error and "the component refused the edit" in recorder.error
        assert watcher.errors >= 1 and not task.done()
        await until(lambda: "calm seas" in recorder.applied, poke=lambda: set_theme(path, "calm seas"))
        assert recorder.error is None
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_watch_whose_folder_was_replaced_starts_again(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir()
    path = write_config(folder, 8080, [])
    recorder = Recorder()
    watcher, stop, task = await watching(path, recorder)
    try:
        await until(lambda: "first" in recorder.applied, poke=lambda: set_theme(path, "first"))
        shutil.rmtree(folder)  # a deployment that replaces the whole folder
        await until(lambda: recorder.error is not None and "not found" in recorder.error)
        folder.mkdir()
        write_config(folder, 8080, [])
        set_theme(path, "second")
        await until(lambda: "second" in recorder.applied, timeout=8)
        await until(lambda: "third" in recorder.applied, poke=lambda: set_theme(path, "third"))
        assert recorder.error is None and not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_schedule_edit_that_cannot_be_scheduled_keeps_every_last_good_slot():
    async def on_slot(entry):
        pass

    good = [ScheduleEntry(cron="30 4 1 1 *", theme="new year"), ScheduleEntry(at="06:00", theme="morning")]
    schedule = Schedule(good, on_slot)
    schedule.start()
    try:
        # An entry that passed an older check (the config checks cron at load today).
        bad = ScheduleEntry.model_construct(cron="0 99 * * *", at=None, theme="never", tags=[])
        with pytest.raises(ValueError, match="99"):
            schedule.reconfigure([ScheduleEntry(at="07:00", theme="later"), bad, *good])
        assert schedule.entries == good
        assert sorted(job.args[0].theme for job in schedule.scheduler.get_jobs()) == ["morning", "new year"]
    finally:
        schedule.stop()
