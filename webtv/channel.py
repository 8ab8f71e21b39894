"""The daemon: wires director -> producer -> library -> programmer -> playout, plus HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import time
from pathlib import Path

from webtv.config import Config, ScheduleEntry, live_config, pending_restart
from webtv.director.moderation import Moderator
from webtv.library import Library
from webtv.library.retention import Retention
from webtv.metrics import ChannelMetrics
from webtv.notify import PlayoutHealth, watch
from webtv.playout.controller import Playout
from webtv.producer import make_stages
from webtv.producer.remote import WorkerPool
from webtv.producer.house import make_card, validate_clip
from webtv.producer.pipeline import ClipPipeline
from webtv.producer.producer import Producer
from webtv.producer.sequences import SequenceSource
from webtv.programmer import Programmer
from webtv.theme import ThemeState
from webtv.theme.edit import write_theme
from webtv.theme.live import ConfigWatcher
from webtv.theme.schedule import Schedule

log = logging.getLogger("webtv.channel")


def filler_card(config: Config) -> Path:
    """The filler card in the house format, encoded once per house format and name. Blocking."""
    house, seconds = config.house, config.programme.filler_seconds
    key = hashlib.sha1(f"{house.model_dump_json()}|{config.channel.name}|{seconds}".encode()).hexdigest()[:12]
    folder = config.paths.library / "filler"
    folder.mkdir(parents=True, exist_ok=True)
    card = folder / f"card-{key}.mp4"
    if card.exists():
        try:
            validate_clip(card, house, seconds)
            return card
        except Exception as exc:
            log.warning("filler card unusable, making it again: %s", exc)
    tmp = folder / f".card-{key}.{os.getpid()}.mp4"
    make_card(f"{config.channel.name}\nmore is on its way", seconds, house, tmp)
    validate_clip(tmp, house, seconds)
    os.replace(tmp, card)
    return card


class MutationsOff(Exception):
    """Mutating API calls are off: no token is configured."""


class Channel:
    def __init__(self, config: Config):
        self.config = config
        self.started = time.time()
        self.theme_state = ThemeState(config.channel.theme)
        self.library: Library | None = None
        self.programmer: Programmer | None = None
        self.producer: Producer | None = None
        self.workers: WorkerPool | None = None  # the remote pool, when a stage is remote
        self.playout: Playout | None = None
        self.schedule = Schedule(self._schedule_slot)
        self.moderator = Moderator(config.moderation, config.director)
        self.watcher: ConfigWatcher | None = None
        self.config_error: str | None = None
        self.pending_restart: list[str] = []
        self.retention: Retention | None = None  # [library] quotas
        self.health = PlayoutHealth(lambda: self.config.output.wedged_after_s)  # watchdog and /healthz
        self.metrics = ChannelMetrics(self)  # this channel's own registry, served at /metrics

    @property
    def theme(self) -> str:
        return self.theme_state.theme

    async def run(self, stop: asyncio.Event) -> None:
        from webtv.http.server import start_http

        config = self.config
        for folder in (config.paths.library, config.paths.playlists, config.paths.hls):
            folder.mkdir(parents=True, exist_ok=True)
        self.library = Library(config.paths.library)
        filler = await asyncio.to_thread(filler_card, config)
        self.programmer = Programmer(
            self.library, config.paths.playlists, config.programme.block_seconds,
            filler, config.programme.filler_seconds, lambda: self.theme,
        )
        self.workers = WorkerPool(config.workers) if config.needs_workers else None
        self.producer = Producer(
            ClipPipeline(make_stages(config, self.workers), config.house, config.video.clip_seconds),
            SequenceSource.from_config(config.director, config.moderation, self.library),
            self.library, lambda: self.theme, config.producer.ahead,
            capacity=self.workers.capacity if self.workers is not None else (lambda: 1),
            on_clip=self._on_clip, on_stage=self.metrics.render_stage,
        )
        self.moderator = self.producer.sequences.moderator
        self.theme_state.listeners.append(lambda theme: self.producer.wake())
        self.retention = Retention(self.library, lambda: self.config.library, self.programmer.protected_clip_ids,
                                   lambda: self.theme, on_deleted=lambda ids: self.programmer.write_catalogue())
        self.programmer.write_catalogue()
        self.playout = Playout(
            config.output, config.house, config.paths.hls,
            next_block=self.programmer.next_block, on_air=self._on_air, on_failed=self.programmer.recheck,
        )
        http = await start_http(self, config.http.host, config.http.port)
        tasks = [asyncio.create_task(_supervised("producer", self.producer.run), name="producer")]
        tasks.append(asyncio.create_task(_supervised("retention", self.retention.run), name="retention"))
        if config.source is not None:
            self.watcher = ConfigWatcher(config.source, self.apply_config, self._config_error)
            tasks.append(asyncio.create_task(self.watcher.run(stop), name="config-watch"))
        tasks.append(asyncio.create_task(watch(self, stop), name="systemd-notify"))  # READY, WATCHDOG, STOPPING
        self.schedule.start(config.schedule)
        try:
            await self.playout.start()
            log.info("on air: channel=%r outputs=%d", config.channel.name, len(self.playout.outputs_status()))
            stopping = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                if not task.cancelled() and task.exception():
                    log.error("%s stopped: %r", task.get_name(), task.exception())
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            self.schedule.stop()
            if self.workers is not None:
                await asyncio.to_thread(self.workers.close)  # cancel remote jobs in flight
            await self.playout.stop()
            await http.cleanup()
            self.library.close()
            log.info("stopped")

    def _on_clip(self, clip) -> None:
        if not self.retention.after_ingest():  # a deletion rewrote the catalogue already
            self.programmer.write_catalogue()

    def _on_air(self, block, started_at: float) -> None:
        self.metrics.block_on_air(block)
        self.programmer.on_air(block, started_at)
        self.producer.wake()

    # -- live programming ----------------------------------------------------------------

    def _config_error(self, message: str | None) -> None:
        self.config_error = message

    async def apply_config(self, new: Config) -> None:
        """Apply a valid edit of channel.toml to the running channel."""
        old = self.config
        if self.workers is not None and new.workers != old.workers:
            self.workers.update(new.workers)  # workers added or removed while on air
        self.pending_restart = pending_restart(old, new)
        if self.pending_restart:
            log.warning("config: %s change at the next restart", ", ".join(self.pending_restart))
        applied = live_config(old, new)
        await self.producer.sequences.reconfigure(new.director, new.moderation)
        self.moderator = self.producer.sequences.moderator
        self.producer.reconfigure(new.producer)
        self.programmer.block_seconds = new.programme.block_seconds
        if new.output.rtmp_urls != old.output.rtmp_urls:
            await self.playout.set_rtmp_urls(new.output.rtmp_urls)
        if new.schedule != old.schedule:
            self.schedule.replace(new.schedule)
        self.config = applied
        if new.channel.theme != old.channel.theme:
            rule = await self.moderator.check(new.channel.theme)
            if rule:
                self.config_error = f"channel.theme: blocked by moderation rule {rule}; the theme on air stays"
                log.warning("theme blocked: rule=%s theme=%r", rule, new.channel.theme)
                return
            self.theme_state.set(new.channel.theme, "config")
        log.info("config applied: reloads=%d", self.watcher.reloads if self.watcher else 0)

    async def set_theme(self, theme: str) -> str | None:
        """Control API: put ``theme`` on air and write it back to the file. Returns the
        moderation rule that blocked it, or None."""
        rule = await self.moderator.check(theme)
        if rule:
            log.warning("theme blocked: rule=%s theme=%r", rule, theme)
            return rule
        self.theme_state.set(theme, "api")
        if self.config.source is not None:
            # The watcher will read our own edit back; the theme is the same, so it is a no-op.
            self.config = self.config.model_copy(
                update={"channel": self.config.channel.model_copy(update={"theme": theme})})
            await asyncio.to_thread(write_theme, self.config.source, theme)
        return None

    async def _schedule_slot(self, entry: ScheduleEntry) -> None:
        rule = await self.moderator.check(entry.theme)
        if rule:
            log.warning("scheduled theme blocked: rule=%s theme=%r", rule, entry.theme)
            return
        self.theme_state.set(entry.theme, "schedule")

    def api_token(self) -> str:
        """The bearer token for mutating calls; MutationsOff when none is configured."""
        name = self.config.http.token_env
        token = os.environ.get(name, "") if name else ""
        if not token:
            raise MutationsOff("mutating endpoints are off: set [http] token_env to a variable holding a token")
        return token

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict:
        now = self.playout.now_playing() if self.playout else None
        now_playing = None
        if now:
            block, entry, started_at = now
            now_playing = {
                "clip_id": entry.clip_id, "prompt": entry.prompt, "theme": entry.theme,
                "source": entry.source, "started_at": started_at, "block": block.number,
            }
        clips, seconds = self.library.stats() if self.library else (0, 0.0)
        producer = self.producer.state if self.producer else None
        director = self.producer.sequences.director.state if self.producer else None
        workers = self.workers  # remote pool
        return {
            "channel": self.config.channel.name,
            "theme": self.theme,
            "theme_source": self.theme_state.source,
            "theme_since": self.theme_state.since,
            "now_playing": now_playing,
            "queue_depth": self.library.count_fresh(self.theme) if self.library else 0,
            "library": {"clips": clips, "seconds": round(seconds, 3),
                        **(self.retention.status() if self.retention else {})},
            "producer": producer and {
                "clips_made": producer.clips_made, "clips_failed": producer.clips_failed,
                "prompts_blocked": getattr(producer, "prompts_blocked", 0),
                "rendering": producer.rendering, "last_error": producer.last_error,
            },
            "director": _plain(director) if director is not None else {"backend": self.config.director.backend},
            "moderation": _plain(self.moderator.state),
            "schedule": {"current": self.schedule.current, "next": self.schedule.next()},
            "outputs": self.playout.outputs_status() if self.playout else [],
            "workers": workers.status() if workers is not None else [],
            "workers_summary": workers.summary() if workers is not None else None,
            "config_error": self.config_error,
            "config_pending_restart": self.pending_restart,
            "uptime_s": round(time.time() - self.started, 1),
        }


async def _supervised(name: str, run, pause_s: float = 5.0) -> None:
    """Run ``run()`` again after an unexpected error: a producer bug must not end production."""
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; starting it again in %.0f s", name, pause_s)
            await asyncio.sleep(pause_s)


def _plain(state) -> dict:
    if dataclasses.is_dataclass(state):
        return dataclasses.asdict(state)
    return dict(vars(state))
