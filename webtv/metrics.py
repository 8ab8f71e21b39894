"""Prometheus metrics of one channel, served at ``GET /metrics``.

Nothing here is global: each ``Channel`` owns a ``ChannelMetrics`` with its own
``CollectorRegistry``. Events that leave no trace in the channel's state (render stage
timings, seconds aired per source, theme changes) are recorded into metric objects as they
happen; everything else (producer counts, queue depth, library, outputs, config, director,
uptime) is read from the live channel when it is scraped, so it can never drift from
``/api/status``. Labels carry output names and kinds, never RTMP URLs or stream keys.

Scrapes run on the event loop: the library's SQLite connection belongs to that thread.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from webtv.channel import Channel
    from webtv.playout.block import Block

log = logging.getLogger("webtv.metrics")

STAGES = ("music", "video", "encode", "validate")
SOURCES = ("fresh", "loop", "filler")
OUTPUT_STATES = ("starting", "running", "backoff", "stopped")
# Seconds: a stage of a 2 s clip on a CPU up to a long sequence on a slow model.
RENDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))


class ChannelMetrics:
    """The registry of one channel and the metric objects fed by its events."""

    def __init__(self, channel: "Channel"):
        self.channel = channel
        self.registry = CollectorRegistry()
        self.render_seconds = Histogram(
            "webtv_render_seconds", "Seconds one render stage took for one clip (music: per sequence)",
            ["stage"], registry=self.registry, buckets=RENDER_BUCKETS,
        )
        self.aired_seconds = Counter(
            "webtv_aired_seconds", "Seconds of programme put on air, by where it came from",
            ["source"], registry=self.registry,
        )
        self.theme_changes = Counter(
            "webtv_theme_changes", "Changes of the theme on air, by who made them",
            ["source"], registry=self.registry,
        )
        for stage in STAGES:
            self.render_seconds.labels(stage)
        for source in SOURCES:
            self.aired_seconds.labels(source)
        for source in ("config", "api", "schedule"):
            self.theme_changes.labels(source)
        channel.theme_state.listeners.append(self._theme_changed)
        self.registry.register(ChannelCollector(channel))

    def render_stage(self, stage: str, seconds: float) -> None:
        """Producer hook: one render stage finished in ``seconds``."""
        self.render_seconds.labels(stage).observe(max(0.0, seconds))

    def block_on_air(self, block: "Block") -> None:
        """Playout hook: ``block`` went on air; its entries' durations count by source."""
        for entry in block.entries:
            self.aired_seconds.labels(entry.source).inc(max(0.0, entry.duration))

    def _theme_changed(self, theme: str) -> None:
        self.theme_changes.labels(self.channel.theme_state.source).inc()

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class ChannelCollector(Collector):
    """Reads the channel's live state at scrape time."""

    def __init__(self, channel: "Channel"):
        self.channel = channel

    def describe(self) -> Iterable[Metric]:
        return []  # names are checked at scrape time; describing would need a running channel

    def collect(self) -> Iterable[Metric]:
        for part in (self._process, self._producer, self._library, self._outputs, self._config, self._director):
            try:
                yield from part()
            except Exception:  # noqa: BLE001 - one broken part must not fail the whole scrape
                log.exception("metrics: %s failed", part.__name__)

    # -- parts -----------------------------------------------------------------------------

    def _process(self) -> Iterable[Metric]:
        channel = self.channel
        yield GaugeMetricFamily("webtv_uptime_seconds", "Seconds since the channel started",
                                value=time.time() - channel.started)
        yield GaugeMetricFamily("webtv_start_time_seconds", "When the channel started (Unix time)",
                                value=channel.started)

    def _producer(self) -> Iterable[Metric]:
        producer = self.channel.producer
        state = producer.state if producer is not None else None
        yield CounterMetricFamily("webtv_clips_rendered", "Clips rendered, validated and added to the library",
                                  value=state.clips_made if state else 0)
        yield CounterMetricFamily("webtv_clips_failed", "Clips (or sequence music) whose render failed",
                                  value=state.clips_failed if state else 0)
        yield CounterMetricFamily("webtv_prompts_blocked", "Themes and prompts blocked by moderation",
                                  value=getattr(state, "prompts_blocked", 0) if state else 0)
        yield GaugeMetricFamily("webtv_producer_rendering", "1 while a clip is being rendered",
                                value=1 if state and state.rendering else 0)
        library = self.channel.library
        yield GaugeMetricFamily("webtv_queue_depth", "Fresh clips of the current theme not yet aired",
                                value=library.count_fresh(self.channel.theme) if library is not None else 0)

    def _library(self) -> Iterable[Metric]:
        library = self.channel.library
        clips, seconds = library.stats() if library is not None else (0, 0.0)
        size = library.total_bytes() if library is not None else 0
        yield GaugeMetricFamily("webtv_library_clips", "Airable clips in the library", value=clips)
        yield GaugeMetricFamily("webtv_library_seconds", "Seconds of airable clips in the library", value=seconds)
        yield GaugeMetricFamily("webtv_library_bytes", "Bytes of airable clips in the library", value=size)

    def _outputs(self) -> Iterable[Metric]:
        playout = self.channel.playout
        outputs = playout.outputs_status() if playout is not None else []
        labels = ["output", "kind"]
        restarts = CounterMetricFamily("webtv_output_restarts", "Restarts of an output's ffmpeg", labels=labels)
        up = GaugeMetricFamily("webtv_output_up", "1 while the output's ffmpeg is running", labels=labels)
        states = GaugeMetricFamily("webtv_output_state", "1 for the output's current state",
                                   labels=[*labels, "state"])
        for out in outputs:
            key = [out["name"], out["kind"]]
            restarts.add_metric(key, out["restarts"])
            up.add_metric(key, 1 if out["state"] == "running" else 0)
            for state in OUTPUT_STATES:
                states.add_metric([*key, state], 1 if out["state"] == state else 0)
        yield from (restarts, up, states)
        if playout is not None:
            yield GaugeMetricFamily("webtv_playout_healthy", "1 while playout is healthy (as /healthz)",
                                    value=1 if self.channel.health.problem(playout) is None else 0)
            yield CounterMetricFamily("webtv_blocks_aired", "Blocks put on air", value=playout.blocks_aired)
            yield CounterMetricFamily("webtv_decoder_failures", "Blocks whose decoder failed or ended early",
                                      value=playout.decoder_failures)

    def _config(self) -> Iterable[Metric]:
        channel = self.channel
        watcher = channel.watcher
        yield CounterMetricFamily("webtv_config_reloads", "Valid edits of the config file applied",
                                  value=watcher.reloads if watcher is not None else 0)
        yield CounterMetricFamily("webtv_config_errors", "Edits of the config file rejected as invalid",
                                  value=getattr(watcher, "errors", 0) if watcher is not None else 0)
        yield GaugeMetricFamily("webtv_config_error", "1 while the last config edit is not in force",
                                value=1 if channel.config_error else 0)
        yield GaugeMetricFamily("webtv_config_pending_restart",
                                "Config sections changed that take effect at the next start",
                                value=len(channel.pending_restart))

    def _director(self) -> Iterable[Metric]:
        producer = self.channel.producer
        state = producer.sequences.director.state if producer is not None else None
        yield CounterMetricFamily("webtv_director_fallbacks",
                                  "Sequences the offline writer wrote because the LLM director failed",
                                  value=state.fallbacks if state is not None else 0)
        yield GaugeMetricFamily("webtv_director_fallback_active", "1 while the offline writer stands in",
                                value=1 if state is not None and state.fallback_active else 0)
