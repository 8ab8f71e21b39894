"""Prometheus metrics of the daemon's channels, served at ``GET /metrics``.

Nothing here is global: each channel gets a ``ChannelMetrics`` with its own
``CollectorRegistry``; ``StationMetrics`` keeps one per airing channel (it follows the
station's ``started``/``stopped``) and renders them as one exposition. Two kinds of series:

- **state**, rendered at scrape time from the channel's ``ChannelStatus`` snapshot, the same
  one ``/api/status`` shows, so the two can never drift; every numeric field of the snapshot
  has a series here (``tests/test_status.py`` checks it);
- **events** that leave no trace in the state (render stage timings, seconds aired per
  source, theme changes), counted as the channel publishes them (``ChannelEvents``).

In a channel folder every series carries a ``channel`` label (the channel's name), one HELP
and TYPE per family for all channels. One channel (``--config FILE``) scrapes as it always did,
without that label: its series keep their identity in Prometheus across the upgrade.

Labels carry output names and kinds and redacted worker URLs, never RTMP URLs or stream keys.
Scrapes run on the event loop: the snapshot reads the library's SQLite connection, owned by it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from webtv.config import redact_url
from webtv.playout.block import Block
from webtv.playout.output import STATES as OUTPUT_STATES
from webtv.producer.checks import REASONS as CHECK_REASONS
from webtv.producer.takes import LowScore
from webtv.status import ChannelStatus, ChannelView, StationView

log = logging.getLogger("webtv.metrics")

STAGES = ("music", "loudness", "video", "level", "encode", "validate", "check")
SOURCES = ("fresh", "loop", "filler")
THEME_SOURCES = ("config", "api", "schedule")
WORKER_STATES = ("unknown", "healthy", "down", "probing")
# Seconds: a stage of a 2 s clip on a CPU up to a long sequence on a slow model.
RENDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))


class ChannelMetrics:
    """The registry of one channel: its status at scrape time, and counters of its events."""

    def __init__(self, channel: ChannelView):
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
        for source in THEME_SOURCES:
            self.theme_changes.labels(source)
        channel.events.render_stage.subscribe(self.render_stage)
        channel.events.block_on_air.subscribe(self.block_on_air)
        channel.events.theme_changed.subscribe(self.theme_changed)
        self.registry.register(StatusCollector(channel.status))

    def render_stage(self, stage: str, seconds: float) -> None:
        """One render stage finished in ``seconds``."""
        self.render_seconds.labels(stage).observe(max(0.0, seconds))

    def block_on_air(self, block: Block) -> None:
        """``block`` went on air; its entries' durations count by source."""
        for entry in block.entries:
            self.aired_seconds.labels(entry.source).inc(max(0.0, entry.duration))

    def theme_changed(self, theme: str, source: str) -> None:
        self.theme_changes.labels(source).inc()

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class StationMetrics:
    """The metrics of every airing channel of ``station``: a ``ChannelMetrics`` made for each
    channel as it starts (its event counters count from then on), dropped when it stops."""

    def __init__(self, station: StationView):
        self.station = station
        self.of: dict[int, tuple[ChannelView, ChannelMetrics]] = {}  # by id() of the view
        for channel in station.channels().values():
            self.started(channel)
        station.started.subscribe(self.started)
        station.stopped.subscribe(self.stopped)
        self.registry = CollectorRegistry()
        self.registry.register(LabelledChannels(self._labelled))

    def started(self, channel: ChannelView) -> None:
        self.of[id(channel)] = (channel, ChannelMetrics(channel))

    def stopped(self, name: str) -> None:
        airing = {id(channel) for channel in self.station.channels().values()}
        for key in [key for key in self.of if key not in airing]:
            del self.of[key]

    def metrics(self, channel: ChannelView) -> ChannelMetrics:
        """``channel``'s metrics (made now should it have started unannounced)."""
        if id(channel) not in self.of:
            self.started(channel)
        return self.of[id(channel)][1]

    def _labelled(self) -> Iterable[tuple[str, CollectorRegistry]]:
        return [(name, self.metrics(channel).registry) for name, channel in self.station.channels().items()]

    def exposition(self) -> bytes:
        """Every channel's series in the Prometheus text format; the one channel's as they are
        in one-channel mode."""
        if self.station.single:
            (channel,) = self.station.channels().values()
            return self.metrics(channel).exposition()
        return generate_latest(self.registry)


class LabelledChannels(Collector):
    """The families of several channels' registries merged into one family each (the first
    registry's help text), every sample with a ``channel`` label."""

    def __init__(self, registries: Callable[[], Iterable[tuple[str, CollectorRegistry]]]):
        self.registries = registries

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for channel, registry in self.registries():
            for family in registry.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(family.name, family.documentation, family.type,
                                                            family.unit)
                merged.samples += [sample._replace(labels={"channel": channel, **sample.labels})
                                   for sample in family.samples]
        return families.values()


class StatusCollector(Collector):
    """Renders one ``ChannelStatus`` snapshot, taken at scrape time, as metric families."""

    def __init__(self, snapshot: Callable[[], ChannelStatus]):
        self.snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return []  # names are checked at scrape time; describing would need a running channel

    def collect(self) -> Iterable[Metric]:
        status = self.snapshot()
        for part in PARTS:
            try:
                yield from part(status)
            except Exception:  # noqa: BLE001 - one broken part must not fail the whole scrape
                log.exception("metrics: %s failed", part.__name__)


def gauge(name: str, documentation: str, value: float | None) -> list[Metric]:
    """One unlabelled gauge; none when the value is unknown (None)."""
    return [] if value is None else [GaugeMetricFamily(name, documentation, value=float(value))]


def counter(name: str, documentation: str, value: float) -> list[Metric]:
    return [CounterMetricFamily(name, documentation, value=value)]


# -- parts: each renders one part of the snapshot -----------------------------------------------


def channel_part(status: ChannelStatus) -> Iterable[Metric]:
    yield from gauge("webtv_uptime_seconds", "Seconds since the channel started", status.uptime_s)
    yield from gauge("webtv_start_time_seconds", "When the channel started (Unix time)", status.started)
    yield from gauge("webtv_theme_since_seconds", "When the theme on air was put on (Unix time)", status.theme.since)
    yield from gauge("webtv_queue_depth", "Fresh clips of the current theme not yet aired", status.queue_depth)
    now = status.now_playing
    if now is not None:
        yield from gauge("webtv_now_playing_block", "Number of the block on air", now.block)
        yield from gauge("webtv_now_playing_clip_id", "Library id of the clip on air (none for the filler)",
                         now.clip_id)
        yield from gauge("webtv_now_playing_started_seconds", "When the entry on air went on air (Unix time)",
                         now.started_at)
        if now.episode is not None:
            yield from gauge("webtv_now_playing_episode", "Story mode: number of the episode on air",
                             now.episode.number)
        yield from gauge("webtv_now_playing_score", "Best-of-K: score of the take on air", now.score)
        takes = GaugeMetricFamily("webtv_now_playing_take_score", "Best-of-K: score of each take of the clip on air",
                                  labels=["take"])
        for take, score in enumerate(now.scores or ()):
            takes.add_metric([str(take)], score)
        yield takes


REJECTIONS = (LowScore.reason, *CHECK_REASONS)  # why a shot is dropped before the library


def producer_part(status: ChannelStatus) -> Iterable[Metric]:
    state = status.producer
    yield from counter("webtv_clips_rendered", "Clips rendered, validated and added to the library",
                       state.clips_made)
    yield from counter("webtv_clips_failed", "Clips (or sequence music) whose render failed", state.clips_failed)
    yield from counter("webtv_prompts_blocked", "Themes and prompts blocked by moderation", state.prompts_blocked)
    yield from gauge("webtv_producer_rendering", "Clips being rendered now", len(state.rendering))
    labels = ["shot", "stage"]
    fraction = GaugeMetricFamily("webtv_producer_render_fraction", "How far a render's current step is (0..1)",
                                 labels=labels)
    started = GaugeMetricFamily("webtv_producer_render_started_seconds", "When a render began (Unix time)",
                                labels=labels)
    for render in state.rendering:
        key = [str(render.shot), render.stage or ""]
        fraction.add_metric(key, render.fraction)
        started.add_metric(key, render.started_at)
    yield from (fraction, started)
    yield from gauge("webtv_producer_last_error_seconds", "When a render last failed (Unix time)", state.last_error_at)
    yield from gauge("webtv_producer_paused", "1 while production is paused (disk full)", 1 if state.paused else 0)
    rejected = CounterMetricFamily("webtv_shots_rejected", "Shots dropped before the library (low_score; the checks:"
                                   " black, frozen, silent), by reason", labels=["reason"])
    for reason, count in sorted({**dict.fromkeys(REJECTIONS, 0), **state.rejected}.items()):
        rejected.add_metric([reason], count)
    yield rejected


def disk_part(status: ChannelStatus) -> Iterable[Metric]:
    disk = status.disk
    if disk is None:
        return
    yield from gauge("webtv_disk_full", "1 while production is paused for want of disk space", disk.full)
    yield from gauge("webtv_disk_free_bytes", "Free bytes on the library's filesystem (as last read)",
                     disk.free_bytes)
    yield from gauge("webtv_disk_need_bytes", "Free bytes production wants before it starts a clip",
                     disk.need_bytes)
    yield from gauge("webtv_disk_full_since_seconds", "When production paused for a full disk (Unix time)",
                     disk.full_since)
    yield from counter("webtv_disk_full_pauses", "Times production paused for a full disk", disk.pauses)


def library_part(status: ChannelStatus) -> Iterable[Metric]:
    library = status.library
    yield from gauge("webtv_library_clips", "Airable clips in the library", library.clips)
    yield from gauge("webtv_library_seconds", "Seconds of airable clips in the library", library.seconds)
    yield from gauge("webtv_library_bytes", "Bytes of airable clips in the library", library.airable_bytes)
    yield from gauge("webtv_library_indexed_clips", "Clips the library holds, broken ones included (the quota's count)",
                     library.clips_total)
    yield from gauge("webtv_library_indexed_bytes", "Bytes the library holds, broken clips included (the quota's count)",
                     library.bytes)
    yield from gauge("webtv_library_max_clips", "[library] max_clips", library.max_clips)
    yield from gauge("webtv_library_max_bytes", "[library] max_bytes", library.max_bytes)
    yield from gauge("webtv_library_over_quota", "1 while the library cannot be kept under its quota",
                     library.over_quota)
    yield from gauge("webtv_library_kept_clips", "Clips marked keep (never deleted)", library.kept)
    yield from counter("webtv_library_deleted_clips", "Clips deleted by retention", library.deleted)
    yield from counter("webtv_library_deleted_bytes", "Bytes of clips deleted by retention", library.deleted_bytes)


def outputs_part(status: ChannelStatus) -> Iterable[Metric]:
    labels = ["output", "kind"]
    restarts = CounterMetricFamily("webtv_output_restarts", "Restarts of an output's ffmpeg", labels=labels)
    up = GaugeMetricFamily("webtv_output_up", "1 while the output's ffmpeg writes to its destination", labels=labels)
    states = GaugeMetricFamily("webtv_output_state", "1 for the output's current state", labels=[*labels, "state"])
    numbers = {
        "pid": GaugeMetricFamily("webtv_output_pid", "Process id of the output's ffmpeg", labels=labels),
        "uptime_s": GaugeMetricFamily("webtv_output_uptime_seconds", "Seconds the output's ffmpeg has run",
                                      labels=labels),
        "backoff_s": GaugeMetricFamily("webtv_output_backoff_seconds", "The last wait before a restart",
                                       labels=labels),
        "retry_in_s": GaugeMetricFamily("webtv_output_retry_in_seconds", "Seconds until the next restart",
                                        labels=labels),
        "last_write_age_s": GaugeMetricFamily("webtv_output_last_write_age_seconds",
                                              "Seconds since the output's ffmpeg last wrote to its destination",
                                              labels=labels),
    }
    lag = GaugeMetricFamily("webtv_output_lag_bytes", "Bytes written to the output not yet taken", labels=labels)
    failing = GaugeMetricFamily("webtv_output_failing", "1 while the output's process runs but fails to write"
                                " (HLS segments)", labels=labels)
    write_failures = CounterMetricFamily("webtv_output_write_failures", "What the output's process could not write"
                                         " (HLS segments not written whole)", labels=labels)
    for out in status.outputs:
        key = [out.name, out.kind]
        restarts.add_metric(key, out.restarts)
        up.add_metric(key, 1 if out.state == "running" else 0)
        for state in OUTPUT_STATES:
            states.add_metric([*key, state], 1 if out.state == state else 0)
        for field, family in numbers.items():
            if getattr(out, field) is not None:
                family.add_metric(key, getattr(out, field))
        lag.add_metric(key, out.lag_kb * 1024)
        failing.add_metric(key, 1 if out.problem else 0)
        write_failures.add_metric(key, out.write_failures)
    yield from (restarts, up, states, *numbers.values(), lag, failing, write_failures)


def playout_part(status: ChannelStatus) -> Iterable[Metric]:
    playout = status.playout
    yield from gauge("webtv_playout_healthy", "1 while playout is healthy (as /healthz)", playout.healthy)
    yield from gauge("webtv_playout_last_byte_age_seconds", "Seconds since bytes last reached the outputs",
                     playout.last_byte_age_s)
    yield from counter("webtv_blocks_aired", "Blocks put on air", playout.blocks_aired)
    yield from counter("webtv_decoder_failures", "Blocks whose decoder failed or ended early",
                       playout.decoder_failures)


def workers_part(status: ChannelStatus) -> Iterable[Metric]:
    labels = ["worker"]
    states = GaugeMetricFamily("webtv_worker_state", "1 for the remote worker's current state",
                               labels=[*labels, "state"])
    done = CounterMetricFamily("webtv_worker_jobs_done", "Jobs the remote worker finished", labels=labels)
    failures = CounterMetricFamily("webtv_worker_failures", "Jobs that failed on the remote worker", labels=labels)
    in_flight = GaugeMetricFamily("webtv_worker_in_flight", "Jobs running on the remote worker", labels=labels)
    mean = GaugeMetricFamily("webtv_worker_mean_job_seconds", "Mean seconds of the worker's jobs", labels=labels)
    down = GaugeMetricFamily("webtv_worker_down_since_seconds", "When the worker was taken out (Unix time)",
                             labels=labels)
    for worker in status.workers:
        key = [redact_url(worker.url)]
        for state in WORKER_STATES:
            states.add_metric([*key, state], 1 if worker.state == state else 0)
        done.add_metric(key, worker.jobs_done)
        failures.add_metric(key, worker.failures)
        in_flight.add_metric(key, worker.in_flight)
        if worker.mean_job_s is not None:
            mean.add_metric(key, worker.mean_job_s)
        if worker.down_since is not None:
            down.add_metric(key, worker.down_since)
    yield from (states, done, failures, in_flight, mean, down)


def config_part(status: ChannelStatus) -> Iterable[Metric]:
    config = status.config
    yield from counter("webtv_config_reloads", "Valid edits of the config file applied", config.reloads)
    yield from counter("webtv_config_errors", "Edits of the config file rejected as invalid", config.errors)
    yield from gauge("webtv_config_error", "1 while the last config edit is not in force", 1 if config.error else 0)
    yield from gauge("webtv_config_pending_restart", "Config sections changed that take effect at the next start",
                     len(config.pending_restart))


def director_part(status: ChannelStatus) -> Iterable[Metric]:
    state = status.director
    yield from counter("webtv_director_fallbacks", "Sequences the offline writer wrote because the LLM director failed",
                       state.fallbacks)
    yield from gauge("webtv_director_fallback_active", "1 while the offline writer stands in", state.fallback_active)
    yield from counter("webtv_director_sequences", "Sequences the LLM director's server wrote", state.sequences)
    yield from gauge("webtv_director_last_ok_seconds", "When the server last wrote a sequence (Unix time)",
                     state.last_ok_at)
    yield from gauge("webtv_director_last_error_seconds", "When the server last failed (Unix time)",
                     state.last_error_at)
    yield from gauge("webtv_director_retry_seconds", "While fallen back: when the server is asked again (Unix time)",
                     state.retry_at)
    moderation = status.moderation
    yield from counter("webtv_moderation_checked", "Texts moderation looked at", moderation.checked)
    yield from counter("webtv_moderation_blocked", "Texts moderation blocked", moderation.blocked)
    yield from counter("webtv_moderation_endpoint_errors", "Calls to the moderation endpoint that failed",
                       moderation.endpoint_errors)


PARTS = (channel_part, producer_part, disk_part, library_part, outputs_part, playout_part, workers_part, config_part,
         director_part)
