"""[[schedule]] entries run by apscheduler: at each slot the entry's theme goes on air."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from webtv.config import ScheduleEntry

log = logging.getLogger("webtv.schedule")


def trigger(entry: ScheduleEntry) -> CronTrigger:
    return entry.trigger()  # built where the config is checked, so check and run agree


@dataclass(frozen=True)
class CurrentSlot:
    theme: str
    tags: list[str]
    trigger: str  # the entry's cron or at


@dataclass(frozen=True)
class NextSlot:
    theme: str
    at: str  # ISO 8601, local time with its offset
    tags: list[str]


@dataclass(frozen=True)
class ScheduleStatus:
    current: CurrentSlot | None  # the slot that fired last
    next: NextSlot | None


class Schedule:
    """The ``[[schedule]]`` entries; jobs run once ``start()`` was called (on the event loop)."""

    def __init__(self, entries: list[ScheduleEntry], on_slot: Callable[[ScheduleEntry], Awaitable[None]]):
        self.on_slot = on_slot
        self.scheduler = AsyncIOScheduler()
        self.entries = list(entries)
        self.current: CurrentSlot | None = None

    def start(self) -> None:
        self.scheduler.start()
        self.reconfigure(self.entries)

    def reconfigure(self, entries: list[ScheduleEntry]) -> None:
        """Replace every slot, or none: all triggers are built before the old jobs go, so an
        entry that cannot be scheduled raises and leaves the last good slots running."""
        triggers = [trigger(entry) for entry in entries]
        self.scheduler.remove_all_jobs()
        self.entries = list(entries)
        for number, (entry, when) in enumerate(zip(self.entries, triggers)):
            self.scheduler.add_job(self._fire, when, args=[entry], id=f"slot-{number}",
                                   misfire_grace_time=60, coalesce=True)
        if entries:
            log.info("schedule loaded: entries=%d next=%s", len(entries), self.next())

    async def _fire(self, entry: ScheduleEntry) -> None:
        log.info("schedule slot: theme=%r", entry.theme)
        self.current = CurrentSlot(entry.theme, list(entry.tags), entry.cron or entry.at)
        await self.on_slot(entry)

    def next(self) -> NextSlot | None:
        upcoming = [(job.next_run_time, job.args[0]) for job in self.scheduler.get_jobs() if job.next_run_time]
        if not upcoming:
            return None
        when, entry = min(upcoming, key=lambda pair: pair[0])
        return NextSlot(entry.theme, when.isoformat(), list(entry.tags))

    def status(self) -> ScheduleStatus:
        return ScheduleStatus(self.current, self.next())

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
