"""[[schedule]] entries run by apscheduler: at each slot the entry's theme goes on air."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from webtv.config import ScheduleEntry

log = logging.getLogger("webtv.schedule")


def trigger(entry: ScheduleEntry) -> CronTrigger:
    return entry.trigger()  # built where the config is checked, so check and run agree


class Schedule:
    def __init__(self, on_slot: Callable[[ScheduleEntry], Awaitable[None]]):
        self.on_slot = on_slot
        self.scheduler = AsyncIOScheduler()
        self.entries: list[ScheduleEntry] = []
        self.current: dict | None = None

    def start(self, entries: list[ScheduleEntry]) -> None:
        self.scheduler.start()
        self.replace(entries)

    def replace(self, entries: list[ScheduleEntry]) -> None:
        self.scheduler.remove_all_jobs()
        self.entries = list(entries)
        for number, entry in enumerate(self.entries):
            self.scheduler.add_job(self._fire, trigger(entry), args=[entry], id=f"slot-{number}",
                                   misfire_grace_time=60, coalesce=True)
        if entries:
            log.info("schedule loaded: entries=%d next=%s", len(entries), self.next())

    async def _fire(self, entry: ScheduleEntry) -> None:
        log.info("schedule slot: theme=%r", entry.theme)
        self.current = {"theme": entry.theme, "tags": entry.tags, "trigger": entry.cron or entry.at}
        await self.on_slot(entry)

    def next(self) -> dict | None:
        upcoming = [(job.next_run_time, job.args[0]) for job in self.scheduler.get_jobs() if job.next_run_time]
        if not upcoming:
            return None
        when, entry = min(upcoming, key=lambda pair: pair[0])
        return {"theme": entry.theme, "at": when.isoformat(), "tags": entry.tags}

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
