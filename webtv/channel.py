"""The daemon: wires director -> producer -> library -> programmer -> playout, plus HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from pathlib import Path

from webtv.config import Config
from webtv.director import make_director
from webtv.library import Library
from webtv.playout.controller import Playout
from webtv.producer import make_audio_backend, make_video_backend
from webtv.producer.house import make_card, validate_clip
from webtv.producer.producer import Producer
from webtv.programmer import Programmer

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


class Channel:
    def __init__(self, config: Config):
        self.config = config
        self.started = time.time()
        self.library: Library | None = None
        self.programmer: Programmer | None = None
        self.producer: Producer | None = None
        self.playout: Playout | None = None
        self.config_error: str | None = None

    @property
    def theme(self) -> str:
        return self.config.channel.theme

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
        self.producer = Producer(
            make_director(config), make_video_backend(config), make_audio_backend(config),
            self.library, config.house, config.video.clip_seconds,
            config.director.shots_per_sequence, config.producer.ahead, config.director.seed,
            lambda: self.theme, on_clip=lambda clip: self.programmer.write_catalogue(),
        )
        self.programmer.write_catalogue()
        self.playout = Playout(
            config.output, config.house, config.paths.hls,
            next_block=self.programmer.next_block, on_air=self._on_air, on_failed=self.programmer.recheck,
        )
        http = await start_http(self, config.http.host, config.http.port)
        producing = asyncio.create_task(self.producer.run(), name="producer")
        try:
            await self.playout.start()
            log.info("on air: channel=%r outputs=%d", config.channel.name, len(self.playout.outputs_status()))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({stopping, producing}, return_when=asyncio.FIRST_COMPLETED)
            if producing.done() and not producing.cancelled() and producing.exception():
                log.error("producer stopped: %r", producing.exception())
                await stop.wait()
        finally:
            producing.cancel()
            await self.playout.stop()
            await http.cleanup()
            self.library.close()
            log.info("stopped")

    def _on_air(self, block, started_at: float) -> None:
        self.programmer.on_air(block, started_at)
        self.producer.wake()

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
        return {
            "channel": self.config.channel.name,
            "theme": self.theme,
            "now_playing": now_playing,
            "queue_depth": self.library.count_fresh(self.theme) if self.library else 0,
            "library": {"clips": clips, "seconds": round(seconds, 3)},
            "producer": producer and {
                "clips_made": producer.clips_made, "clips_failed": producer.clips_failed,
                "rendering": producer.rendering, "last_error": producer.last_error,
            },
            "outputs": self.playout.outputs_status() if self.playout else [],
            "config_error": self.config_error,
            "uptime_s": round(time.time() - self.started, 1),
        }
