"""The channel's state in one typed snapshot, the read-only view of a channel that HTTP,
metrics and systemd notify are given, and the view of the daemon's channels (``StationView``:
one channel, ``OneChannel``, or a folder of them) that HTTP and metrics serve.

``ChannelStatus`` is assembled by ``Channel.status()`` from each component's own snapshot
(theme, library, producer, director, moderation, schedule, outputs, workers, playout). It is
the only thing ``/api/status`` (JSON), ``/metrics`` (Prometheus) and the systemd ``STATUS=``
line render, so the three cannot disagree. Every numeric field has its Prometheus series
(``tests/test_status.py`` checks it).

Events that leave no trace in that state (a render stage's seconds, a block put on air, a
theme change) are published on ``ChannelEvents``; metrics subscribe to them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, ParamSpec, Protocol

from webtv.director.base import DirectorState
from webtv.director.moderation import ModerationState
from webtv.library import Clip
from webtv.library.retention import LibraryStatus
from webtv.library.space import DiskStatus
from webtv.playout.block import Block, Entry
from webtv.producer.producer import ProducerState
from webtv.programmer.guide import Guide
from webtv.theme.schedule import ScheduleStatus
from webtv.theme.state import ThemeStatus

log = logging.getLogger("webtv.status")

P = ParamSpec("P")


# -- the snapshot ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeOnAir:
    number: int
    title: str


@dataclass(frozen=True)
class NowPlaying:
    clip_id: int | None  # None for the filler card
    prompt: str | None
    theme: str | None
    source: str  # fresh, loop or filler
    started_at: float  # Unix time this entry went on air
    block: int
    narration: str | None = None  # story mode: the line spoken over the clip; None outside it
    characters: list[str] = field(default_factory=list)  # story mode: the cast members in the clip
    episode: EpisodeOnAir | None = None  # story mode: the episode the clip belongs to
    scores: list[float] | None = None  # best-of-K: every take's score; None when the clip was not scored
    score: float | None = None  # the take that airs (the best)


@dataclass(frozen=True)
class OutputStatus:
    """One output's ffmpeg, as ``Playout.outputs_status()`` reports it; ``target`` is redacted."""

    name: str
    kind: str
    target: str
    state: str  # connecting, running, stalled (from bytes written), backoff or stopped
    pid: int | None
    restarts: int
    uptime_s: float
    last_write_age_s: float | None  # since the process last wrote to its destination; None before
    backoff_s: float | None  # the last wait before a restart
    retry_in_s: float | None
    lag_kb: int
    last_exit: str
    stderr: list[str]
    problem: str | None  # why it fails while its process runs (HLS segments not written), None when it does not
    write_failures: int  # what its process could not write (HLS segments), since start

    @classmethod
    def of(cls, report: dict) -> "OutputStatus":
        return cls(**{name: report[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class WorkerStatus:
    """One remote worker, as ``WorkerPool.status()`` reports it."""

    url: str
    state: str  # unknown, healthy, down or probing
    jobs_done: int
    failures: int
    mean_job_s: float | None
    in_flight: int
    running: list[str]  # endpoints of the jobs in flight
    last_error: str | None
    down_since: float | None  # Unix time
    backends: Any  # what the worker's /health reported

    @classmethod
    def of(cls, report: dict) -> "WorkerStatus":
        return cls(**{name: report[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class PlayoutStatus:
    problem: str | None  # why playout is unhealthy (the watchdog's verdict), None when healthy
    last_byte_age_s: float | None  # None until the first bytes reached the outputs
    blocks_aired: int
    decoder_failures: int
    output_problem: str | None = None  # an output that runs but fails (/healthz says it; no restart mends it)

    @property
    def healthy(self) -> bool:
        """As ``/healthz``: no problem, and no output failing."""
        return self.problem is None and self.output_problem is None

    @property
    def on_air(self) -> bool:
        """The first block's bytes reached the outputs."""
        return self.last_byte_age_s is not None


@dataclass(frozen=True)
class ConfigStatus:
    error: str | None  # why the last edit of the config file is not in force
    pending_restart: list[str]  # changed sections that take effect at the next start
    reloads: int  # valid edits applied
    errors: int  # edits rejected


@dataclass(frozen=True)
class ChannelStatus:
    channel: str
    theme: ThemeStatus
    now_playing: NowPlaying | None
    queue_depth: int  # fresh clips of the theme not yet aired
    library: LibraryStatus
    producer: ProducerState
    director: DirectorState
    moderation: ModerationState
    schedule: ScheduleStatus
    outputs: list[OutputStatus]
    workers: list[WorkerStatus]
    workers_summary: str | None  # None when no stage is remote
    config: ConfigStatus
    playout: PlayoutStatus
    started: float  # Unix time the channel started
    uptime_s: float
    disk: DiskStatus | None = None  # the library's filesystem; None when the channel has no guard


# -- health ---------------------------------------------------------------------------------


class PlayoutLike(Protocol):
    def outputs_status(self) -> list[dict]: ...

    def healthy(self) -> bool: ...

    def last_byte_age(self) -> float | None: ...


def outputs_up(states: Iterable[str | None]) -> tuple[int, int]:
    """(outputs running, outputs in all), from the outputs' states: "running" means bytes
    are being written, so a connecting or stalled output is down."""
    states = list(states)
    return sum(state == "running" for state in states), len(states)


class PlayoutHealth:
    """Decides whether playout is healthy; the systemd watchdog and ``/healthz`` both ask it.

    Healthy = bytes flow through the relay (``Playout.healthy()``) and not every output has
    been down (state other than "running") for longer than ``[output] wedged_after_s``. A
    playout without any output is never wedged: there is nothing a restart could bring back.
    """

    def __init__(self, wedged_after_s: float, clock: Callable[[], float] = time.monotonic):
        self.wedged_after_s = wedged_after_s
        self.clock = clock
        self.all_down_since: float | None = None

    def reconfigure(self, wedged_after_s: float) -> None:
        self.wedged_after_s = wedged_after_s

    def wedged(self, outputs: Iterable[dict], now: float | None = None) -> str | None:
        """Why playout is wedged given the outputs' status now, or None. Call it regularly:
        the time every output has been down is counted from the first call that saw it."""
        now = self.clock() if now is None else now
        outputs = list(outputs)
        up, total = outputs_up(o.get("state") for o in outputs)
        if total == 0 or up > 0:
            self.all_down_since = None
            return None
        if self.all_down_since is None:
            self.all_down_since = now
        down_s = now - self.all_down_since
        if down_s <= self.wedged_after_s:
            return None
        states = ", ".join(f"{o.get('name')} {o.get('state')}" for o in outputs)
        return f"all {total} outputs down for {down_s:.0f} s (wedged_after_s={self.wedged_after_s:g}): {states}"

    @staticmethod
    def output_problem(outputs: Iterable[dict]) -> str | None:
        """The first output that runs but fails (``problem`` in its status), named; or None. Not a
        reason to restart (the watchdog ignores it): ``/healthz`` says it."""
        for output in outputs:
            if output.get("problem"):
                return f"output {output.get('name')}: {output['problem']}"
        return None

    def problem(self, playout: PlayoutLike, now: float | None = None) -> str | None:
        """None when healthy, else the reason."""
        wedged = self.wedged(playout.outputs_status(), now)  # first, so the clock keeps counting
        if not playout.healthy():
            age = playout.last_byte_age()
            return "no bytes relayed yet" if age is None else f"no bytes relayed for {age:.1f} s"
        return wedged


# -- events ---------------------------------------------------------------------------------


class Signal(Generic[P]):
    """Listeners called in order with each published event; a failing listener is logged and
    never reaches the publisher (metrics must not stop production or playout)."""

    def __init__(self, name: str):
        self.name = name
        self._listeners: list[Callable[P, object]] = []

    def subscribe(self, listener: Callable[P, object]) -> None:
        self._listeners.append(listener)

    def publish(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in self._listeners:
            try:
                listener(*args, **kwargs)
            except Exception:  # noqa: BLE001
                log.exception("%s listener failed", self.name)


@dataclass
class ChannelEvents:
    render_stage: Signal[[str, float]] = field(default_factory=lambda: Signal("render_stage"))  # stage, seconds
    block_on_air: Signal[[Block]] = field(default_factory=lambda: Signal("block_on_air"))
    theme_changed: Signal[[str, str]] = field(default_factory=lambda: Signal("theme_changed"))  # theme, source
    # made, rejected, banned, unbanned or deleted; the clip id (None: a render that failed),
    # the clip as it is now (None once deleted or never made), why (rejected: the error)
    clip_changed: Signal[[str, int | None, Clip | None, str | None]] = field(
        default_factory=lambda: Signal("clip_changed"))


# -- the view -------------------------------------------------------------------------------


class MutationsOff(Exception):
    """Mutating API calls are off: no token is configured."""


class ChannelView(Protocol):
    """What HTTP, metrics and systemd notify may see and do of a channel."""

    events: ChannelEvents

    @property
    def name(self) -> str:
        """``[channel] name``: the channel's id (its URLs are ``/c/<name>/``)."""

    @property
    def hls_dir(self) -> Path: ...

    def status(self) -> ChannelStatus: ...

    def health(self) -> str | None:
        """None while playout is healthy and no output fails, else why not (``PlayoutHealth``):
        ``/healthz``'s verdict."""

    async def set_theme(self, theme: str) -> str | None:
        """Save ``theme`` to the channel file, then put it on air; the moderation rule that
        blocked it, or None. ``webtv.theme.edit.ThemeNotSaved`` when it could not be saved
        (then nothing changed)."""

    def set_keep(self, clip_id: int, keep: bool) -> bool:
        """Mark a clip keep (or not); False when there is no such clip."""

    def api_token(self) -> str:
        """The bearer token of mutating calls; raises MutationsOff when none is configured."""

    # -- the control room (webtv.http.control) --

    def clip(self, clip_id: int) -> Clip | None: ...

    def browse(self, **query) -> tuple[int, list[Clip]]:
        """A page of the library: ``webtv.library.Library.browse``."""

    async def thumbnail(self, clip: Clip) -> Path | None:
        """``clip``'s JPEG, made now if it is missing; None when it cannot be made."""

    async def ban(self, clip_id: int, banned: bool) -> Clip | None:
        """Ban a clip (it never airs again) or lift the ban; None when there is no such clip."""

    async def delete(self, clip_id: int) -> bool:
        """Delete a clip, its file and thumbnail; False when there is no such clip."""

    def queue_next(self, clip_id: int) -> bool:
        """Air a clip in the next block chosen; False when it cannot air."""

    async def skip(self) -> Entry | None:
        """End the block on air now; the entry that was on air."""

    def programme(self) -> Guide:
        """What aired, what is on, what comes next (``webtv.programmer.guide``)."""


# -- the station ----------------------------------------------------------------------------


class StationView(Protocol):
    """What HTTP and metrics may see of the daemon's channels: one (``--config FILE``,
    ``OneChannel``) or a folder of them (``webtv.station.Station``). Channels come and go while
    the daemon runs: ``started`` is published with each channel built, ``stopped`` with the
    name of each that no longer airs. On the event loop."""

    single: bool  # True: --config FILE; today's unprefixed URLs serve that channel
    started: Signal[[ChannelView]]
    stopped: Signal[[str]]

    def channels(self) -> dict[str, ChannelView]:
        """The airing channels by name, in file-name order."""

    def refused(self) -> list[dict]:
        """``[{"file": str, "error": str}]``: the channel files that air nothing."""

    def stages(self) -> list[dict]:
        """The shared render stages (``SharedStages.status()``); [] in one-channel mode."""

    def health(self) -> str | None:
        """None while every channel is healthy, else ``"a: why; b: why"``."""


class OneChannel:
    """The ``StationView`` of one channel (``--config FILE``): it never starts nor stops
    another, and its health is the channel's own (``/healthz`` answers as it always did)."""

    single = True

    def __init__(self, channel: ChannelView):
        self.channel = channel
        self.started: Signal[[ChannelView]] = Signal("started")
        self.stopped: Signal[[str]] = Signal("stopped")

    def channels(self) -> dict[str, ChannelView]:
        return {self.channel.name: self.channel}

    def refused(self) -> list[dict]:
        return []

    def stages(self) -> list[dict]:
        return []

    def health(self) -> str | None:
        return self.channel.health()
