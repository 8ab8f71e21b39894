"""systemd integration, spoken by the daemon itself: sd_notify datagrams and the watchdog.

The protocol (sd_notify(3)): newline-separated ``KEY=value`` assignments in one datagram to
the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket).
Without ``$NOTIFY_SOCKET`` (not started by systemd) every call is a no-op.

What the channel tells systemd (``watch()``, a task ``webtv.daemon`` runs beside the channel),
all read from the channel's status snapshot:

- ``READY=1`` once the first block's bytes reached the outputs (the relay passed on a byte),
  not merely when the process started;
- ``STATUS=`` a one-line summary whenever it changes: block and theme on air, outputs running;
- ``WATCHDOG=1`` every ``$WATCHDOG_USEC``/2, but only while ``webtv.status.PlayoutHealth``
  says healthy: bytes flow through the relay (``Playout.healthy()``) and the outputs are not
  all down for longer than ``[output] wedged_after_s``. When unhealthy the pings stop (one log line says
  why) and systemd restarts the service after ``WatchdogSec``;
- ``STOPPING=1`` when the channel shuts down.

A daemon of several channels (``watch_station``): READY once every channel of the start is
on air, one STATUS line summing them up, and WATCHDOG pings that stop only when every
channel is unhealthy: a restart could mend that, while one sick channel must not restart
the others (each channel's own supervision and ``/healthz`` say what ails it).

``/healthz`` answers from the same ``PlayoutHealth``, so the two never disagree, with one
addition: an output that runs but fails to write (HLS segments on a full disk,
``PlayoutStatus.output_problem``) makes ``/healthz`` answer 503 while the pings go on, since a
restart would not mend it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from webtv.status import ChannelStatus, ChannelView, outputs_up

log = logging.getLogger("webtv.notify")


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET``; does nothing when it is unset."""

    def __init__(self, address: str | None = None):
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self.address: str | bytes | None = None
        if address and (address.startswith("/") or address.startswith("@")):
            # An abstract socket: a leading NUL instead of the "@".
            self.address = "\0" + address[1:] if address.startswith("@") else address
        elif address:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor an @abstract name: not notifying", address)
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """One datagram of ``KEY=value`` lines; True if it was sent."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            if not self._failed:  # say it once, not every ping
                log.warning("sd_notify to %r failed: %s", self.address, exc)
                self._failed = True
            return False
        self._failed = False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(environ: dict | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None when systemd
    does not watch this process (as sd_watchdog_enabled(3): ``$WATCHDOG_PID``, if set, must be us)."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2e6


def status_line(status: ChannelStatus) -> str:
    """The ``STATUS=`` line: block and theme on air, outputs running, and why not healthy."""
    up, total = outputs_up(output.state for output in status.outputs)
    now = status.now_playing
    what = f"on air: block {now.block}, theme {status.theme.theme!r}" if now else "starting"
    line = f"{what}, outputs {up}/{total} running"
    problem = status.playout.problem
    return f"{line}; UNHEALTHY: {problem}" if problem else line


@dataclass(frozen=True)
class Reading:
    """What the systemd task reads each tick: whether to say READY, the STATUS line, and why
    not to ping the watchdog (None: ping)."""

    ready: bool
    line: str
    problem: str | None


def channel_reading(status: ChannelStatus) -> Reading:
    return Reading(status.playout.on_air, status_line(status), status.playout.problem)


def station_reading(channels: Mapping[str, ChannelView], names: list[str], waiting_for: set[str]) -> Reading:
    """Several channels (``names``: every channel file's, airing or being built): READY once
    none of ``waiting_for`` (the channels of the start that are still there) is off air;
    pings stop only when every channel is unhealthy (a restart could mend that; one sick
    channel must not restart the others)."""
    statuses = {name: channel.status() for name, channel in channels.items()}
    waiting_for &= set(names)
    waiting_for -= {name for name, status in statuses.items() if status.playout.on_air}
    problems = {name: s.playout.problem for name, s in statuses.items() if s.playout.problem is not None}
    parts = [f"{name} {'on air' if name in statuses and statuses[name].playout.on_air else 'starting'}"
             + (f" UNHEALTHY: {problems[name]}" if name in problems else "") for name in names]
    line = f"{len(names)} channel(s): " + ("; ".join(parts) or "none")
    every = bool(statuses) and len(problems) == len(statuses)
    return Reading(not waiting_for, line, "every channel is unhealthy" if every else None)


async def watch(channel: ChannelView, stop: asyncio.Event, notifier: Notifier | None = None,
                tick_s: float = 0.25, on_air_tick_s: float = 1.0) -> None:
    """The channel's systemd task: READY once on air, STATUS on change, WATCHDOG while on air
    and healthy, STOPPING at the end. Without systemd it only logs health changes."""
    await _watch(lambda: channel_reading(channel.status()), "first bytes on air", stop, notifier, tick_s,
                 on_air_tick_s)


async def watch_station(channels: Callable[[], Mapping[str, ChannelView]], names: Callable[[], list[str]],
                        boot: set[str], stop: asyncio.Event, notifier: Notifier | None = None,
                        tick_s: float = 0.25, on_air_tick_s: float = 1.0) -> None:
    """The systemd task of a daemon of several channels (a ``webtv.station.Station``'s
    ``channels``, built, and ``names``, every channel file's): READY once every channel of
    ``boot`` (those of the start) is on air or gone, one STATUS line for all, WATCHDOG unless
    every channel is unhealthy, STOPPING at the end."""
    waiting_for = set(boot)
    await _watch(lambda: station_reading(channels(), names(), waiting_for), "every channel on air", stop,
                 notifier, tick_s, on_air_tick_s)


async def _watch(read: Callable[[], Reading], ready_why: str, stop: asyncio.Event, notifier: Notifier | None,
                 tick_s: float, on_air_tick_s: float) -> None:
    """Looks every ``tick_s`` until READY, then every ``on_air_tick_s`` (a whole status snapshot
    of each channel each time: the CPU of an idle daemon), never less often than half the
    watchdog interval, so a ping comes at most 1.5 intervals after the last one."""
    notifier = notifier or Notifier()
    interval = watchdog_interval_s()
    if interval:
        tick_s, on_air_tick_s = min(tick_s, interval), min(on_air_tick_s, interval / 2)
    ready = False
    last_status: str | None = None
    last_problem: str | None = None
    next_ping = 0.0
    failing = False
    try:
        while not stop.is_set():
            try:
                reading = read()
                problem = reading.problem
                if not ready and reading.ready:
                    ready = True
                    last_status = reading.line
                    notifier.send("READY=1", "STATUS=" + last_status)
                    log.info("ready: %s%s", ready_why, "; systemd notified" if notifier.enabled else "")
                if ready:
                    if (problem is None) != (last_problem is None):
                        if problem:
                            log.error("playout unhealthy: %s%s", problem,
                                      "; watchdog pings stop, systemd restarts the service" if interval else "")
                        else:
                            log.info("playout healthy again%s", "; watchdog pings resume" if interval else "")
                    last_problem = problem
                    if reading.line != last_status:
                        notifier.send("STATUS=" + reading.line)
                        last_status = reading.line
                    now = time.monotonic()
                    if interval and problem is None and now >= next_ping:
                        notifier.send("WATCHDOG=1")
                        next_ping = now + interval
                failing = False
            except Exception:  # noqa: BLE001 - a bug here must not end the channel; no pings then
                if not failing:
                    log.exception("health check failed; no watchdog pings while it fails")
                failing = True
            try:
                await asyncio.wait_for(stop.wait(), on_air_tick_s if ready else tick_s)
            except asyncio.TimeoutError:
                pass
    finally:
        notifier.send("STOPPING=1", "STATUS=stopping")
        notifier.close()
