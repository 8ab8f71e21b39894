"""Render stages shared by the channels of one daemon, and the gate that gives them turns.

Several channels in one daemon (``webtv run --config DIR``) whose stage sections are equal use
one backend instance: one model loaded, one worker pool. ``SharedStages.stages()`` hands each
channel its own ``Stages`` whose backends are proxies of the shared instances:

- **one instance per key**: (stage, the section as written, and the house format for a
  backend built with it, e.g. procedural). The CLIP scorer of ``[quality]`` is shared the
  same way (equal scorer, model, device, frames and score_on);
- **fair turns**: every render call of a proxy (``render``, ``upscale``, ``interpolate``,
  ``compose``, ``speak``, ``score``) passes through its instance's ``FairGate``: at most
  ``capacity()`` calls at once (1 for a local backend, the pool's capacity for a remote one);
  when a slot frees, the waiting call whose channel has the least fresh airtime ready
  (``ready_s()``) goes first, equals in the order they came. Other attributes read through;
- **release**: ``release(channel)`` forgets a channel: its calls waiting, and any it makes
  later through the proxies it was given, raise ChannelReleased (a removed channel takes no
  more turns; a render running goes on until its producer's cancellation stops it at its next
  step, ``pipeline.Abandoned``), and an instance no channel uses any more is
  dropped, so its model can be freed once the channel's objects are gone. A channel asking
  for its stages again (built anew after a crash) is released first in the same way.

Render threads block in the gate; ``ready_s`` is called there, under the gate's lock, so it
must be cheap and must not touch SQLite (``Channel.fresh_ready_s`` is a number kept on the loop).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from webtv.config import Config, QualitySection, Section, stage_summary
from webtv.producer.registry import REGISTRY, Resources, Stages, build, make_stages, skipped
from webtv.producer.takes import Scorer, make_scorer

if TYPE_CHECKING:
    from webtv.producer.remote.pool import WorkerPool

log = logging.getLogger("webtv.producer")

GATED = frozenset({"render", "upscale", "interpolate", "compose", "speak", "score"})
"""The backend methods that render (and take a turn): the stages' and the scorer's."""

ReadyS = Callable[[], float]
"""A channel's fresh airtime ready, in seconds: who goes first in a FairGate."""


class ChannelReleased(RuntimeError):
    """The channel was released while its call waited for a turn: the call never ran."""


@dataclass(eq=False)
class _Ticket:
    channel: str
    ready_s: ReadyS
    order: int
    granted: bool = False
    dropped: bool = False

    def priority(self) -> tuple[float, int]:
        try:
            return float(self.ready_s()), self.order
        except Exception:  # noqa: BLE001 - a broken ready_s must not wedge every channel's renders
            log.exception("ready_s of channel %r failed; its call goes last", self.channel)
            return math.inf, self.order


class FairGate:
    """At most ``capacity()`` calls at once; when a slot frees, the waiting call whose
    channel has the least ``ready_s()`` goes first (ties: first come). Blocking: for render
    threads. ``capacity()`` is read again at each change and every ``recheck_s`` (workers
    coming back), and counts as 1 when it says less."""

    def __init__(self, capacity: Callable[[], int] = lambda: 1, recheck_s: float = 1.0):
        self.capacity = capacity
        self.recheck_s = recheck_s
        self.running = 0
        self._waiting: list[_Ticket] = []
        self._cond = threading.Condition()
        self._order = itertools.count()

    @contextlib.contextmanager
    def slot(self, channel: str, ready_s: ReadyS, released: threading.Event | None = None) -> Iterator[None]:
        """Wait for a turn, hold it for the ``with`` block. Raises ChannelReleased when
        ``released`` is set (before the call comes, or while it waits: set it, then ``drop``)
        or ``drop(channel)`` comes first."""
        ticket = _Ticket(channel, ready_s, next(self._order))
        with self._cond:
            ticket.dropped = released is not None and released.is_set()
            if not ticket.dropped:
                self._waiting.append(ticket)
                self._grant()
            try:
                while not (ticket.granted or ticket.dropped):
                    if not self._cond.wait(self.recheck_s):
                        self._grant()
            except BaseException:
                self._leave(ticket)
                raise
        if ticket.dropped:
            raise ChannelReleased(f"channel {channel!r} was released while its render waited for a turn")
        try:
            yield
        finally:
            with self._cond:
                self._leave(ticket)

    def waiting(self) -> list[str]:
        """The channels of the calls waiting, first come first."""
        with self._cond:
            return [ticket.channel for ticket in self._waiting]

    def drop(self, channel: str) -> None:
        """The calls of ``channel`` waiting now give up (ChannelReleased); those running finish."""
        with self._cond:
            for ticket in self._waiting:
                if ticket.channel == channel:
                    ticket.dropped = True
            self._waiting = [ticket for ticket in self._waiting if not ticket.dropped]
            self._cond.notify_all()

    def _grant(self) -> None:
        """Give free slots to the waiting calls, least ready airtime first. Under the lock."""
        granted = False
        while self._waiting and self.running < max(1, self.capacity()):
            first = min(self._waiting, key=_Ticket.priority)
            self._waiting.remove(first)
            first.granted, granted = True, True
            self.running += 1
        if granted:
            self._cond.notify_all()

    def _leave(self, ticket: _Ticket) -> None:
        if ticket.granted:
            self.running -= 1
        elif ticket in self._waiting:
            self._waiting.remove(ticket)
        self._grant()


class Gated:
    """One channel's handle on a shared backend: attributes read through, and each render
    call (``GATED``) waits for the channel's turn in the instance's gate."""

    def __init__(self, backend: Any, gate: FairGate, channel: str, ready_s: ReadyS,
                 released: threading.Event | None = None):
        self.backend, self.gate, self.channel, self.ready_s = backend, gate, channel, ready_s
        self.released = released or threading.Event()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.backend, name)
        if name not in GATED or not callable(value):
            return value

        def in_turn(*args, **kwargs):
            with self.gate.slot(self.channel, self.ready_s, self.released):
                return value(*args, **kwargs)

        in_turn.__name__ = name
        return in_turn

    def __repr__(self) -> str:
        return f"Gated({self.backend!r}, channel={self.channel!r})"


@dataclass(eq=False)
class _Instance:
    stage: str
    backend: str
    what: str
    instance: Any
    gate: FairGate
    channels: list[str] = field(default_factory=list)


Key = tuple[str, str, str | None]


def stage_key(stage: str, section: Section, resources: Resources) -> Key:
    """What makes two channels' backends one instance: the stage, its section as written and,
    for a backend built with the house format, that format."""
    factory = REGISTRY[stage].get(section.backend)
    needs = getattr(factory, "needs", ("house",))  # a factory that does not say: assume it draws in the house format
    house = resources.house.model_dump_json() if "house" in needs else None
    return stage, section.model_dump_json(), house


def scorer_key(quality: QualitySection) -> Key:
    return "quality", quality.model_dump_json(include={"scorer", "model", "device", "frames", "score_on"}), None


def _what(stage: str, section: Section, key: Key, resources: Resources) -> str:
    if stage == "quality":
        return f"clip ({section.model}) on the workers" if section.score_on == "workers" else f"clip ({section.model})"
    house = resources.house
    return stage_summary(section) + (f" at {house.width}x{house.height}@{house.fps}" if key[2] else "")


class SharedStages:
    """The render stages of every channel of one daemon (see the module). ``workers``: the
    daemon's pool (``[workers]``), which every channel with a remote stage uses. Call
    ``stages()`` and ``release()`` on the event loop; ``status()`` anywhere."""

    def __init__(self, workers: "WorkerPool | None" = None):
        self.workers = workers
        self._lock = threading.Lock()
        self._instances: dict[Key, _Instance] = {}
        self._uses: dict[str, set[Key]] = {}
        self._scorers: dict[str, Scorer | None] = {}
        self._released: dict[str, threading.Event] = {}  # per channel: set when its proxies may take no more turns

    def stages(self, config: Config, channel: str, ready_s: ReadyS) -> Stages:
        """``channel``'s stages: the instances of channels with equal sections, proxied; its take
        scorer likewise (``scorer(channel)``). A channel asking again (built anew) keeps the
        instances it still uses and lets go of the others."""
        used: set[Key] = set()
        self._let_go(channel)
        released = self._released[channel] = threading.Event()

        def builder(stage: str, section: Any, resources: Resources) -> Any:
            if REGISTRY[stage].get(section.backend) is skipped:
                return None
            key = stage_key(stage, section, resources)
            shared = self._use(channel, key, used, lambda: build(stage, section, resources),
                               self._capacity(section.backend == "remote"),
                               lambda: (stage, section.backend, _what(stage, section, key, resources)))
            return Gated(shared.instance, shared.gate, channel, ready_s, released)

        def make() -> tuple[Stages, Scorer | None]:
            stages, quality = make_stages(config, self.workers, builder), config.quality
            if quality.scorer == "none":
                return stages, None
            key = scorer_key(quality)
            shared = self._use(channel, key, used, lambda: make_scorer(quality, self.workers),
                               self._capacity(quality.score_on == "workers"),
                               lambda: ("quality", quality.scorer, _what("quality", quality, key, None)))
            return stages, Gated(shared.instance, shared.gate, channel, ready_s, released)

        before = self._uses.get(channel, set())
        try:
            stages, self._scorers[channel] = make()
        except BaseException:
            self._forget(channel, keep=before)
            raise
        self._forget(channel, keep=used)
        self._uses[channel] = used
        return stages

    def scorer(self, channel: str) -> Scorer | None:
        """``channel``'s take scorer, made by ``stages()``: shared by the channels whose
        ``[quality]`` scorer, model, device, frames and score_on are equal; None without one."""
        return self._scorers.get(channel)

    def release(self, channel: str) -> None:
        """Forget ``channel``: its waiting calls give up, instances nobody uses are dropped."""
        self._let_go(channel)
        self._forget(channel, keep=set())
        self._uses.pop(channel, None)
        self._scorers.pop(channel, None)

    def status(self) -> list[dict]:
        """One entry per instance, JSON-ready: stage, backend, what (the stage in a few words)
        and the channels using it, in the order they came."""
        with self._lock:
            return [{"stage": i.stage, "backend": i.backend, "what": i.what, "channels": list(i.channels)}
                    for i in self._instances.values()]

    # -- inside ---------------------------------------------------------------------------

    def _capacity(self, remote: bool) -> Callable[[], int]:
        if remote and self.workers is not None:
            return self.workers.capacity
        return lambda: 1

    def _let_go(self, channel: str) -> None:
        """The proxies handed to ``channel`` so far take no more turns; its calls waiting give up."""
        released = self._released.pop(channel, None)
        if released is None:
            return
        released.set()
        with self._lock:
            gates = [shared.gate for shared in self._instances.values() if channel in shared.channels]
        for gate in gates:
            gate.drop(channel)

    def _use(self, channel: str, key: Key, used: set[Key], make: Callable[[], Any], capacity: Callable[[], int],
             describe: Callable[[], tuple[str, str, str]]) -> _Instance:
        used.add(key)
        with self._lock:
            shared = self._instances.get(key)
        if shared is None:
            stage, backend, what = describe()
            shared = _Instance(stage, backend, what, make(), FairGate(capacity))  # off the lock: an import may be slow
            with self._lock:
                shared = self._instances.setdefault(key, shared)
        with self._lock:
            if channel in shared.channels:
                return shared
            shared.channels.append(channel)
            sharers = list(shared.channels)
        if len(sharers) > 1:
            log.info("stage %s (%s) shared by channels %s: loaded once", shared.stage, shared.what, ", ".join(sharers))
        return shared

    def _forget(self, channel: str, keep: set[Key]) -> None:
        with self._lock:
            for key, shared in list(self._instances.items()):
                if key in keep or channel not in shared.channels:
                    continue
                shared.channels.remove(channel)
                if not shared.channels:
                    del self._instances[key]
                    log.info("stage %s (%s) dropped: no channel uses it", shared.stage, shared.what)


def sharing(configs: Mapping[str, Config]) -> list[dict]:
    """What ``SharedStages`` would share among ``configs`` (channel name -> config), built by
    nobody: ``status()``'s entries, for ``webtv check DIR``."""
    plan: dict[Key, dict] = {}

    def planner(name: str) -> Callable[[str, Any, Resources], None]:
        def builder(stage: str, section: Any, resources: Resources) -> None:
            if REGISTRY[stage].get(section.backend) is not skipped:
                key = stage_key(stage, section, resources)
                entry = plan.setdefault(key, {"stage": stage, "backend": section.backend,
                                              "what": _what(stage, section, key, resources), "channels": []})
                entry["channels"].append(name)
        return builder

    for name, config in configs.items():
        make_stages(config, _NO_POOL_NEEDED, planner(name))
        if config.quality.scorer != "none":
            key = scorer_key(config.quality)
            plan.setdefault(key, {"stage": "quality", "backend": config.quality.scorer,
                                  "what": _what("quality", config.quality, key, None), "channels": []})
            plan[key]["channels"].append(name)
    return list(plan.values())


_NO_POOL_NEEDED: Any = object()
"""``sharing`` builds nothing, so it hands make_stages this for a pool."""
