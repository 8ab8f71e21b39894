"""The channel: director -> producer -> library -> programmer -> playout, built once from the config.

``build_channel()`` makes every component up front; ``Channel.run()`` airs until asked to
stop; ``Channel.aclose()`` lets go of what is left (the library, the director's connections).
HTTP, metrics and systemd notify are not the channel's: ``webtv.daemon`` runs them around it
and they see it through ``webtv.status.ChannelView``.

Live edits: ``apply_config`` hands each edited section to the component that owns it
(``reconfigure``); what takes effect only at the next start is declared beside each section
in ``webtv.config`` and shown in the status as ``config_pending_restart``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Callable, TypeVar

from webtv.config import Config, ScheduleEntry, live_config, pending_restart
from webtv.library import Clip, Library
from webtv.library.retention import Retention
from webtv.library.space import DiskGuard
from webtv.library.thumbs import Thumbnails
from webtv.playout.block import Entry
from webtv.playout.controller import Playout
from webtv.producer import make_stages
from webtv.producer.checks import Checks
from webtv.producer.house import make_card, validate_clip
from webtv.producer.narration import Narration
from webtv.producer.pipeline import ClipPipeline
from webtv.producer.producer import Producer
from webtv.producer.remote import WorkerPool
from webtv.producer.shared import SharedStages
from webtv.producer.sequences import SequenceSource, words_per_minute
from webtv.programmer import Programmer
from webtv.programmer.guide import Guide
from webtv.status import (
    ChannelEvents, ChannelStatus, ConfigStatus, EpisodeOnAir, MutationsOff, NowPlaying, OutputStatus, PlayoutHealth,
    PlayoutStatus, WorkerStatus,
)
from webtv.theme import ThemeState
from webtv.theme.edit import ThemeNotSaved, write_theme
from webtv.theme.live import ConfigWatcher
from webtv.theme.schedule import Schedule

log = logging.getLogger("webtv.channel")

T = TypeVar("T")


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
    try:
        make_card(f"{config.channel.name}\nmore is on its way", seconds, house, tmp)
        validate_clip(tmp, house, seconds)
        os.replace(tmp, card)
    finally:
        tmp.unlink(missing_ok=True)
    return card


def disk_guard(config: Config, library: Library, retention: Retention,
               on_space_back: Callable[[], object]) -> DiskGuard:
    """Production's check of free space (``webtv.library.space``): room for two clips of the size
    the library's recent ones have (at the house bitrate until there are some), plus two HLS
    segments."""
    house = config.house
    bytes_per_s = (house.video_kbps + house.audio_kbps) * 1000 // 8
    estimate = int(bytes_per_s * config.video.clip_seconds * 1.25)
    headroom = 2 * int(bytes_per_s * house.gop_seconds * 1.25) if config.output.hls else 0
    return DiskGuard(config.paths.library, lambda: library.recent_clip_bytes() or estimate, headroom,
                     retention.make_room, library.reserve, on_space_back=on_space_back)


async def build_channel(config: Config, shared: SharedStages | None = None) -> Channel:
    """Open (and lock) the channel's library, make its other folders, its filler card (off the
    loop) and every component. Nothing airs before ``Channel.run()``; a library in use by
    another daemon raises LibraryLocked before anything is written. ``shared``: the daemon's
    stages, shared with its other channels (see ``Channel``)."""
    library = Library(config.paths.library)
    try:
        for folder in (config.paths.playlists, config.paths.hls):
            folder.mkdir(parents=True, exist_ok=True)
        filler = await asyncio.to_thread(filler_card, config)
    except BaseException:
        library.close()
        raise
    return Channel(config, library, filler, shared)


class Channel:
    """Every component of one channel, wired together; a ``webtv.status.ChannelView``.

    Made by ``build_channel()`` (or directly, with an open library and a filler card that
    lasts ``[programme] filler_seconds``).

    With ``shared`` (a daemon of several channels) the channel renders on the shared stages
    and scorer (``webtv.producer.shared``), taking its turns by ``fresh_ready_s``, and uses the
    daemon's WorkerPool, which it does not close; ``fresh_ready_s`` is kept on the loop when a
    clip is made, a block goes on air and the theme changes. Without: its own stages and pool."""

    def __init__(self, config: Config, library: Library, filler: Path, shared: SharedStages | None = None):
        self.config = config
        self.started = time.time()
        self.events = ChannelEvents()
        self.config_error: str | None = None
        self.pending_restart: list[str] = []
        self._failing: set[str] = set()  # status parts whose last read failed
        self.library = library
        self.theme_state = ThemeState(config.channel.theme)
        self._theme_change = asyncio.Lock()  # a control-API theme change: saved, then on air
        self.shared = shared
        self.fresh_ready_s = 0.0  # seconds of fresh clips of the theme on air, not aired yet (shared stages' turns)
        self.workers = self._pool(config)  # remote render stages
        self.sequences = SequenceSource.from_config(config.director, config.moderation, library, config.story,
                                                    words_per_minute(config))
        self.programmer = Programmer(library, config.paths.playlists, config.programme, filler, self._theme)
        self.retention = Retention(library, config.library, self.programmer.protected_clip_ids, self._theme,
                                   on_deleted=lambda ids: self.programmer.write_catalogue())
        self.disk = disk_guard(config, library, self.retention, self.programmer.record_aired)
        self.producer = Producer(
            self._pipeline(config), self.sequences, library, self._theme, config.producer.ahead,
            capacity=self.workers.capacity if self.workers is not None else (lambda: 1),
            on_clip=self._on_clip, on_stage=self.events.render_stage.publish, disk=self.disk,
            on_failed=lambda what, why: self.events.clip_changed.publish("rejected", None, None, f"{what}: {why}"),
        )
        self.thumbnails = Thumbnails(library)
        self._thumbnailing: set[asyncio.Task] = set()
        self.playout = Playout(
            config.output, config.house, config.paths.hls,
            next_block=self.programmer.next_block, on_air=self._on_air, on_failed=self.programmer.recheck,
            on_changed=self.programmer.reconfirm, revise=self.programmer.revise,
        )
        self.playout_health = PlayoutHealth(config.output.wedged_after_s)  # the watchdog's and /healthz's verdict
        self.schedule = Schedule(config.schedule, self._schedule_slot)
        self.watcher = ConfigWatcher(config.source, self.apply_config, self._config_error)
        self.theme_state.listeners.append(self._theme_changed)
        self._refresh_ready()

    def _pool(self, config: Config) -> WorkerPool | None:
        if not config.needs_workers:
            return None
        return WorkerPool(config.workers) if self.shared is None else self.shared.workers

    def _pipeline(self, config: Config) -> ClipPipeline:
        if self.shared is None:
            return ClipPipeline.from_config(config, make_stages(config, self.workers), self.workers)
        name = config.channel.name
        stages = self.shared.stages(config, name, lambda: self.fresh_ready_s)
        return ClipPipeline.from_config(config, stages, self.workers, scorer=self.shared.scorer(name))

    def _refresh_ready(self) -> None:
        """``fresh_ready_s`` read again (on the loop): the shared stages' render threads read it."""
        if self.shared is not None:
            self.fresh_ready_s = self.library.fresh_seconds(self._theme())

    def _theme(self) -> str:
        """The theme on air (what the producer, programmer and retention ask)."""
        return self.theme_state.theme

    @property
    def name(self) -> str:
        return self.config.channel.name

    @property
    def hls_dir(self) -> Path:
        return self.config.paths.hls

    # -- running ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Air until ``stop`` is set; production, retention and the config watcher run beside
        playout (a crash of one is logged, it does not end the channel). On the way out remote
        jobs are cancelled and playout stops; ``aclose()`` then releases the rest."""
        self.programmer.write_catalogue()
        tasks = [
            asyncio.create_task(_supervised("producer", self.producer.run), name="producer"),
            asyncio.create_task(_supervised("retention", self.retention.run), name="retention"),
            asyncio.create_task(self.watcher.run(stop), name="config-watch"),
        ]
        self.schedule.start()
        try:
            await self.playout.start()
            self._in_background(self.thumbnails.backfill())  # clips from before thumbnails, after air starts
            log.info("on air: channel=%r outputs=%d", self.config.channel.name, len(self.playout.outputs_status()))
            stopping = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                if not task.cancelled() and task.exception():
                    log.error("%s stopped: %r", task.get_name(), task.exception())
                else:
                    log.error("%s ended before the stop; playout goes on without it", task.get_name())
            await stop.wait()
        finally:
            for task in [*tasks, *self._thumbnailing]:
                task.cancel()
            self.schedule.stop()
            if self.workers is not None and self.shared is None:  # a shared pool is the daemon's
                await asyncio.to_thread(self.workers.close)  # cancel remote jobs in flight
            await self.playout.stop()

    async def aclose(self) -> None:
        """Close the director's and moderator's connections and the library."""
        try:
            await self.sequences.aclose()
        finally:
            self.library.close()
            log.info("stopped")

    def _on_clip(self, clip: Clip) -> None:
        self._refresh_ready()
        if not self.retention.after_ingest():  # a deletion rewrote the catalogue already
            self.programmer.write_catalogue()
        self.events.clip_changed.publish("made", clip.id, clip, None)
        self._in_background(self.thumbnails.ensure(clip))

    def _in_background(self, work) -> None:
        task = asyncio.ensure_future(work)
        self._thumbnailing.add(task)
        task.add_done_callback(self._thumbnailing.discard)

    def _on_air(self, block, started_at: float, stream_at: float) -> None:
        self.events.block_on_air.publish(block)
        self.programmer.on_air(block, started_at, stream_at)
        self._refresh_ready()
        self.producer.wake()

    def _theme_changed(self, theme: str) -> None:
        self._refresh_ready()
        self.producer.wake()
        self.events.theme_changed.publish(theme, self.theme_state.source)

    # -- live programming ----------------------------------------------------------------

    def _config_error(self, message: str | None) -> None:
        self.config_error = message

    async def apply_config(self, new: Config) -> None:
        """Apply a valid edit of channel.toml to the running channel: each edited section goes
        to its owner; what needs a restart is kept as it is and listed."""
        old = self.config
        self.pending_restart = pending_restart(old, new)
        if self.pending_restart:
            log.warning("config: %s change at the next restart", ", ".join(self.pending_restart))
        applied = live_config(old, new)
        if self.workers is not None and applied.workers != old.workers:
            self.workers.update(applied.workers)  # workers added or removed while on air
        # [voice] (words_per_minute) is a stage: it changes only at a restart, never here
        if (applied.director, applied.moderation, applied.story) != (old.director, old.moderation, old.story):
            await self.sequences.reconfigure(applied.director, applied.moderation, applied.story,
                                             words_per_minute(applied))
        if applied.story != old.story:  # the shot bounds: at the next sequence the recipe narrates
            self.producer.pipeline.narration = Narration.from_config(applied)
        if applied.quality != old.quality:  # takes, min_score and the checks' thresholds: from the next shot
            self.producer.pipeline.quality = applied.quality
            self.producer.pipeline.checks = Checks.from_config(applied.quality)
        if applied.producer != old.producer:
            self.producer.reconfigure(applied.producer)
        if applied.programme != old.programme:
            self.programmer.reconfigure(applied.programme)
        if applied.output != old.output:
            await self.playout.reconfigure(applied.output)
            self.playout_health.reconfigure(applied.output.wedged_after_s)
        if applied.library != old.library:
            self.retention.reconfigure(applied.library)
        if applied.schedule != old.schedule:
            self.schedule.reconfigure(applied.schedule)
        self.config = applied
        if new.channel.theme != old.channel.theme:
            rule = await self.sequences.moderator.check(new.channel.theme)
            if rule:
                self.config_error = f"channel.theme: blocked by moderation rule {rule}; the theme on air stays"
                log.warning("theme blocked: rule=%s theme=%r", rule, new.channel.theme)
                return
            self.theme_state.set(new.channel.theme, "config")
        log.info("config applied: reloads=%d", self.watcher.reloads)

    async def set_theme(self, theme: str) -> str | None:
        """Control API: write ``theme`` back to the file, then put it on air; one at a time.
        Returns the moderation rule that blocked it, or None. When the write-back fails
        (ThemeNotSaved: the file is missing or broken, the disk is full) nothing changes."""
        rule = await self.sequences.moderator.check(theme)
        if rule:
            log.warning("theme blocked: rule=%s theme=%r", rule, theme)
            return rule
        async with self._theme_change:  # two requests: the last saved is the one on air
            if self.config.source is not None:
                try:
                    await asyncio.to_thread(write_theme, self.config.source, theme)
                except ThemeNotSaved as exc:
                    log.error("theme not saved, nothing changed on air: %s", exc)
                    raise
                # The watcher will read our own edit back; the theme is the same, so it is a no-op.
                self.config = self.config.model_copy(
                    update={"channel": self.config.channel.model_copy(update={"theme": theme})})
            self.theme_state.set(theme, "api")
        return None

    def set_keep(self, clip_id: int, keep: bool) -> bool:
        return self.library.set_keep(clip_id, keep)

    # -- the control room ------------------------------------------------------------------

    def clip(self, clip_id: int) -> Clip | None:
        return self.library.get(clip_id)

    def browse(self, **query) -> tuple[int, list[Clip]]:
        return self.library.browse(**query)

    async def thumbnail(self, clip: Clip) -> Path | None:
        return await self.thumbnails.ensure(clip)

    async def ban(self, clip_id: int, banned: bool) -> Clip | None:
        """Ban a clip or lift the ban. A banned clip is left out of the catalogue playlists and
        of the block chosen next (``Programmer.revise``); one on air, or still to come in the
        block on air, ends that block now."""
        clip = self.library.set_banned(clip_id, banned)
        if clip is None:
            return None
        self.programmer.write_catalogue()
        log.info("clip %s: clip=%d", "banned" if banned else "ban lifted", clip_id)
        self.events.clip_changed.publish("banned" if banned else "unbanned", clip_id, clip, None)
        if clip.banned and clip_id in self._still_on_air():
            await self.playout.skip()
        return clip

    def _still_on_air(self) -> set[int]:
        """The clips on air now and still to come in the block on air."""
        now = self.playout.now_playing()
        if now is None:
            return set()
        block, entry, _ = now
        rest = block.entries[block.entries.index(entry):] if entry in block.entries else block.entries
        return {e.clip_id for e in rest if e.clip_id is not None}

    async def delete(self, clip_id: int) -> bool:
        """Delete a clip: its row first, then its file and thumbnail (``Library`` crash order).
        A decoder already airing it reads the file it opened; a block chosen and not yet on
        air leaves it out (``Programmer.revise``)."""
        files = self.library.forget([clip_id])
        if not files:
            return False
        await asyncio.to_thread(Library.remove_files, files)
        self.programmer.write_catalogue()
        log.info("clip deleted: clip=%d", clip_id)
        self.events.clip_changed.publish("deleted", clip_id, None, None)
        return True

    def queue_next(self, clip_id: int) -> bool:
        queued = self.programmer.queue_next(clip_id)
        if queued:
            log.info("clip queued to air next: clip=%d", clip_id)
        return queued

    async def skip(self) -> Entry | None:
        return await self.playout.skip()

    def programme(self) -> Guide:
        return dataclasses.replace(self.programmer.guide(), keyframe_s=self.config.house.keyframe_s)

    async def _schedule_slot(self, entry: ScheduleEntry) -> None:
        rule = await self.sequences.moderator.check(entry.theme)
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

    def health(self) -> str | None:
        """None while playout is healthy and no output fails, else why not: /healthz's verdict.
        The watchdog's is ``status().playout.problem``: an output that fails for want of disk
        space makes /healthz answer 503, but a restart would not mend it."""
        return self.playout_health.problem(self.playout) or self._output_problem()

    def _output_problem(self) -> str | None:
        return self.playout_health.output_problem(self.playout.outputs_status())

    def status(self) -> ChannelStatus:
        """One snapshot of the whole channel, from each component's own. On the event loop."""
        theme = self.theme_state.status()
        return ChannelStatus(
            channel=self.config.channel.name,
            theme=theme,
            now_playing=self._now_playing(),
            queue_depth=self.library.count_fresh(theme.theme),
            library=self.retention.status(),
            producer=dataclasses.replace(self.producer.state),
            director=dataclasses.replace(self.sequences.director.state),
            moderation=dataclasses.replace(self.sequences.moderator.state),
            schedule=self.schedule.status(),
            outputs=self._part("outputs", lambda: [OutputStatus.of(r) for r in self.playout.outputs_status()], []),
            workers=self._part("workers", lambda: [WorkerStatus.of(r) for r in self.workers.status()], [])
            if self.workers else [],
            workers_summary=self.workers.summary() if self.workers else None,
            config=ConfigStatus(self.config_error, list(self.pending_restart), self.watcher.reloads,
                                self.watcher.errors),
            playout=PlayoutStatus(
                problem=self._part("health", lambda: self.playout_health.problem(self.playout),
                                   "the health check failed (see the log)"),
                last_byte_age_s=self.playout.last_byte_age(),
                blocks_aired=self.playout.blocks_aired, decoder_failures=self.playout.decoder_failures,
                output_problem=self._part("output health", self._output_problem, None),
            ),
            started=self.started,
            uptime_s=round(time.time() - self.started, 1),
            disk=self.disk.status(),
        )

    def _part(self, name: str, read: Callable[[], T], failed: T) -> T:
        """``read()``, or ``failed`` when it raises: one broken part must not take the whole
        status (and /metrics, and the watchdog's STATUS line) down. Logged once until it recovers."""
        try:
            value = read()
        except Exception:  # noqa: BLE001
            if name not in self._failing:
                log.exception("status: %s failed", name)
            self._failing.add(name)
            return failed
        self._failing.discard(name)
        return value

    def _now_playing(self) -> NowPlaying | None:
        now = self.playout.now_playing()
        if now is None:
            return None
        block, entry, started_at = now
        episode = EpisodeOnAir(entry.episode, entry.episode_title or "") if entry.episode is not None else None
        return NowPlaying(entry.clip_id, entry.prompt, entry.theme, entry.source, started_at, block.number,
                          entry.narration or None, list(entry.characters), episode,
                          list(entry.scores) or None, max(entry.scores) if entry.scores else None)


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
