"""Operations under systemd: the unit file, sd_notify (READY, STATUS, WATCHDOG, STOPPING), the
wedged-playout rule shared by the watchdog and /healthz, and the journald log format."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.daemon import REPO, Daemon
from tests.rtmp_server import RtmpServer
from webtv.log import CHANNEL, ChannelField, JournalFormatter, is_journal, setup_logging, syslog_priority
from tests.snapshots import populated
from webtv.notify import Notifier, watch, watch_station, watchdog_interval_s
from webtv.status import ChannelStatus, NowPlaying, OutputStatus, PlayoutHealth, PlayoutStatus
from webtv.theme.state import ThemeStatus

UNIT = REPO / "systemd" / "webtv.service"
WORKER_UNIT = REPO / "systemd" / "webtv-worker.service"
SHIPPED_EXEC = "/opt/webtv/.venv/bin/webtv"


# -- the unit file ------------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(unit: Path) -> subprocess.CompletedProcess:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("unit", [UNIT, WORKER_UNIT], ids=lambda unit: unit.name)
def test_unit_file_passes_systemd_analyze_verify(tmp_path, unit):
    text = unit.read_text()
    settings = unit_settings(text)
    assert settings["ExecStart"][0].split()[0] == SHIPPED_EXEC
    # The unit as shipped, with ExecStart pointing at this checkout's real entry point (the
    # shipped path exists only once installed). verify exits 0 even on unknown keys or bad
    # values, so its output must be empty too.
    local = tmp_path / unit.name
    local.write_text(text.replace(SHIPPED_EXEC, str(REPO / ".venv" / "bin" / "webtv")))
    assert (REPO / ".venv" / "bin" / "webtv").exists()
    result = verify(local)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result
    # Unchanged: the only complaint may be the not-yet-installed binary. User=webtv need not
    # exist for verify (it is checked at start).
    shipped = tmp_path / "shipped" / unit.name
    shipped.parent.mkdir()
    shipped.write_text(text)
    result = verify(shipped)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if not Path(SHIPPED_EXEC).exists():
        assert complaints == [f"{unit.name}: Command {SHIPPED_EXEC} is not executable: No such file or directory"]
    else:
        assert complaints == [] and result.returncode == 0


def test_unit_file_settings():
    s = unit_settings(UNIT.read_text())
    one = {key: values[-1] for key, values in s.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main" and one["WatchdogSec"] == "30"
    assert one["Restart"] == "on-failure" and one["KillMode"] == "mixed" and one["TimeoutStopSec"] == "15"
    assert one["User"] == "webtv" and one["Group"] == "webtv"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"  # the daemon reloads channel.toml on SIGHUP
    assert one["EnvironmentFile"] == "-/etc/webtv/webtv.env"
    assert one["ProtectSystem"] == "strict" and one["NoNewPrivileges"] == "yes" and one["PrivateTmp"] == "yes"
    assert one["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    # The daemon writes the theme back into its channel file: it must lie in a writable folder.
    config = re.search(r"--config (\S+)", one["ExecStart"]).group(1)
    assert Path(config).parent == Path("/var/lib/webtv")
    assert "/var/lib/webtv" in one["ReadWritePaths"].split() and one["StateDirectory"] == "webtv"
    assert "MemoryDenyWriteExecute" not in s and "PrivateDevices" not in s  # torch JIT, GPU devices


def test_readme_install_steps_match_the_unit():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Run as a systemd service"):]
    section = section[: section.find("\n## ", 4) if "\n## " in section[4:] else None]
    one = {key: values[-1] for key, values in unit_settings(UNIT.read_text()).items()}
    config = re.search(r"--config (\S+)", one["ExecStart"]).group(1)
    for needed in (config, "/etc/webtv/webtv.env", "/opt/webtv", "systemd/webtv.service",
                   "/etc/systemd/system/webtv.service", "systemctl daemon-reload && systemctl enable --now webtv",
                   "journalctl -u webtv -f", "webtv.sysusers.conf", "webtv.tmpfiles.conf", "webtv.env.example"):
        assert needed in section, needed


def test_sysusers_and_tmpfiles_apply(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        (root / "etc" / name).write_text("")
    run = lambda *argv: subprocess.run(argv, capture_output=True, text=True, timeout=30)  # noqa: E731
    result = run("systemd-sysusers", f"--root={root}", str(REPO / "systemd" / "webtv.sysusers.conf"))
    assert result.returncode == 0, result
    assert re.search(r"^webtv:x:\d+:\d+:[^:]*:/var/lib/webtv:", (root / "etc" / "passwd").read_text(), re.M)
    result = run("systemd-tmpfiles", f"--root={root}", "--create", str(REPO / "systemd" / "webtv.tmpfiles.conf"))
    assert result.returncode == 0, result
    assert (root / "var" / "lib" / "webtv").is_dir() and (root / "etc" / "webtv").stat().st_mode & 0o777 == 0o700


# -- sd_notify ----------------------------------------------------------------------------------


def test_notifier_sends_to_a_path_socket(tmp_path):
    path = Path(tempfile.mkdtemp(prefix="sd-", dir="/tmp")) / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        notifier = Notifier(str(path))
        assert notifier.enabled and notifier.send("READY=1", "STATUS=on air")
        assert server.recv(4096) == b"READY=1\nSTATUS=on air"
        notifier.close()
    shutil.rmtree(path.parent)


def test_notifier_sends_to_an_abstract_socket():
    name = f"webtv-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(2)
        notifier = Notifier("@" + name)
        assert notifier.send("WATCHDOG=1")
        assert server.recv(4096) == b"WATCHDOG=1"


def test_notifier_is_a_no_op_without_notify_socket(monkeypatch, caplog):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled and notifier.send("READY=1") is False
    gone = Notifier("/nonexistent/notify")  # systemd went away: logged once, never raised
    with caplog.at_level(logging.WARNING):
        assert gone.send("WATCHDOG=1") is False and gone.send("WATCHDOG=1") is False
    assert len([r for r in caplog.records if "sd_notify" in r.getMessage()]) == 1


def test_watchdog_interval_is_half_of_watchdog_usec():
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}) == 0.5
    assert watchdog_interval_s({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None  # not ours
    assert watchdog_interval_s({"WATCHDOG_USEC": "junk"}) is None


def out(name: str, state: str) -> dict:
    return {"name": name, "kind": "rtmp", "state": state}


def test_wedged_only_when_every_output_is_down_longer_than_wedged_after_s():
    health = PlayoutHealth(10.0)
    assert health.wedged([out("hls", "running"), out("rtmp-1", "backoff")], now=0) is None
    assert health.wedged([out("hls", "backoff"), out("rtmp-1", "connecting")], now=1) is None  # down since 1
    assert health.wedged([out("hls", "backoff"), out("rtmp-1", "backoff")], now=11) is None
    reason = health.wedged([out("hls", "backoff"), out("rtmp-1", "connecting")], now=11.5)
    assert reason and "all 2 outputs down for 10 s" in reason and "rtmp-1 connecting" in reason
    assert health.wedged([out("hls", "running"), out("rtmp-1", "backoff")], now=12) is None  # one is back
    assert health.wedged([out("hls", "backoff")], now=13) is None  # the clock starts again
    assert health.wedged([out("hls", "backoff")], now=23.5) is not None
    assert health.wedged([], now=100) is None  # no outputs: nothing a restart could bring back
    follows = PlayoutHealth(5.0)
    follows.wedged([out("a", "stopped")], now=0)
    assert follows.wedged([out("a", "stopped")], now=6) is not None
    follows.reconfigure(60.0)  # a live edit of [output] wedged_after_s
    assert follows.wedged([out("a", "stopped")], now=6) is None


class FakeBlock:
    number = 7


class FakePlayout:
    def __init__(self):
        self.byte_age: float | None = None
        self.bytes_flow = True
        self.states = ["connecting"]

    def last_byte_age(self):
        return self.byte_age

    def healthy(self):
        return self.bytes_flow

    def outputs_status(self):
        return [out(f"o{i}", state) for i, state in enumerate(self.states)]

    def now_playing(self):
        return (FakeBlock(), None, 0.0) if self.byte_age is not None else None


class FakeChannel:
    """The view ``watch()`` is given: a status snapshot over a fake playout."""

    base = populated(ChannelStatus)

    def __init__(self, wedged_after_s: float):
        self.playout = FakePlayout()
        self.playout_health = PlayoutHealth(wedged_after_s)

    def health(self) -> str | None:
        return self.playout_health.problem(self.playout)

    def status(self) -> ChannelStatus:
        playout, output = self.playout, populated(OutputStatus)
        on_air = playout.now_playing()
        return dataclasses.replace(
            self.base, theme=ThemeStatus("owls", "config", 0.0),
            now_playing=NowPlaying(None, None, "owls", "filler", 0.0, on_air[0].number) if on_air else None,
            outputs=[dataclasses.replace(output, name=o["name"], state=o["state"]) for o in playout.outputs_status()],
            playout=PlayoutStatus(self.health(), playout.last_byte_age(), 0, 0),
        )


class Recorder:
    enabled = True

    def __init__(self):
        self.sent: list[tuple[float, str]] = []

    def send(self, *assignments: str) -> bool:
        self.sent += [(time.monotonic(), a) for a in assignments]
        return True

    def close(self) -> None:
        pass

    def count(self, what: str, since: float = 0.0) -> int:
        return sum(1 for t, a in self.sent if a == what and t >= since)


async def test_watch_ready_after_first_bytes_pings_while_healthy(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    channel, notifier, stop = FakeChannel(wedged_after_s=0.3), Recorder(), asyncio.Event()
    task = asyncio.create_task(watch(channel, stop, notifier, tick_s=0.02, on_air_tick_s=0.02))
    await asyncio.sleep(0.3)
    assert notifier.sent == []  # nothing on air yet: not ready, no pings
    channel.playout.byte_age, channel.playout.states = 0.0, ["running", "backoff"]
    await asyncio.sleep(0.5)
    messages = [a for _, a in notifier.sent]
    assert messages[0] == "READY=1" and messages[1] == "STATUS=on air: block 7, theme 'owls', outputs 1/2 running"
    assert notifier.count("WATCHDOG=1") >= 4
    channel.playout.bytes_flow = False  # the relay stalled: pings stop at once
    await asyncio.sleep(0.05)
    stalled = time.monotonic()
    await asyncio.sleep(0.4)
    assert notifier.count("WATCHDOG=1", since=stalled) == 0
    assert any(a.startswith("STATUS=") and "UNHEALTHY: no bytes relayed" in a for _, a in notifier.sent)
    channel.playout.bytes_flow = True
    channel.playout.states = ["backoff", "stopped"]  # every output down: pings go on 0.3 s, then stop
    down = time.monotonic()
    await asyncio.sleep(0.2)
    assert notifier.count("WATCHDOG=1", since=down) >= 1
    await asyncio.sleep(0.2)
    wedged = time.monotonic()
    await asyncio.sleep(0.4)
    assert notifier.count("WATCHDOG=1", since=wedged) == 0
    assert channel.health().startswith("all 2 outputs down")  # as /healthz says
    channel.playout.states = ["running", "stopped"]
    back = time.monotonic()
    await asyncio.sleep(0.3)
    assert notifier.count("WATCHDOG=1", since=back) >= 2
    stop.set()
    await asyncio.wait_for(task, 2)
    assert notifier.sent[-2][1] == "STOPPING=1"
    assert notifier.count("READY=1") == 1


async def test_watch_station_ready_when_every_channel_of_the_start_airs_pings_unless_all_are_sick(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    channels = {name: FakeChannel(wedged_after_s=60) for name in ("a", "b", "c")}
    notifier, stop = Recorder(), asyncio.Event()
    built = {name: channels[name] for name in ("a", "b")}  # c is being built still
    task = asyncio.create_task(watch_station(lambda: dict(built), lambda: list(channels), set(channels), stop,
                                             notifier, tick_s=0.02))
    channels["a"].playout.byte_age = 0.0
    channels["b"].playout.byte_age = 0.0
    await asyncio.sleep(0.2)
    assert notifier.sent == []  # c, of the start, is not on air yet
    del channels["c"]  # its file removed: nothing to wait for
    await asyncio.sleep(0.2)
    messages = [a for _, a in notifier.sent]
    assert messages[:2] == ["READY=1", "STATUS=2 channel(s): a on air; b on air"]
    channels["a"].playout.bytes_flow = False  # one sick channel: the others must not be restarted
    sick = time.monotonic()
    await asyncio.sleep(0.3)
    assert notifier.count("WATCHDOG=1", since=sick) >= 2
    assert "STATUS=2 channel(s): a on air UNHEALTHY: no bytes relayed for 0.0 s; b on air" in [a for _, a in notifier.sent]
    channels["b"].playout.bytes_flow = False  # every channel sick: a restart could mend it
    await asyncio.sleep(0.05)
    all_sick = time.monotonic()
    await asyncio.sleep(0.3)
    assert notifier.count("WATCHDOG=1", since=all_sick) == 0
    channels["b"].playout.bytes_flow = True
    back = time.monotonic()
    await asyncio.sleep(0.3)
    assert notifier.count("WATCHDOG=1", since=back) >= 2
    stop.set()
    await asyncio.wait_for(task, 2)
    assert notifier.sent[-2][1] == "STOPPING=1" and notifier.count("READY=1") == 1


# -- the real daemon under a fake systemd ---------------------------------------------------------


class NotifySocket:
    """A bound AF_UNIX datagram socket, as systemd's; records (monotonic time, assignment)."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="sd-", dir="/tmp"))
        self.path = self.folder / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self._lock:
                self.got += [(now, line) for line in data.decode().split("\n")]

    def messages(self, since: float = 0.0, prefix: str = "") -> list[tuple[float, str]]:
        with self._lock:
            return [(t, m) for t, m in self.got if t >= since and m.startswith(prefix)]

    def wait(self, message: str, timeout: float, since: float = 0.0, why: str = "") -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages(since, message)
            if found:
                return found[0][0]
            time.sleep(0.05)
        raise AssertionError(f"no {message} within {timeout} s {why}; got {self.messages()[-10:]}")

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.mark.e2e
def test_daemon_ready_watchdog_wedge_and_stopping(tmp_path):
    sd = NotifySocket()
    nginx = RtmpServer(tmp_path / "nginx").start()
    nginx2 = None
    wedged_s = 2.0
    daemon = Daemon(
        tmp_path / "channel", rtmp_urls=[nginx.url + "/wedge"],
        env={"NOTIFY_SOCKET": str(sd.path), "WATCHDOG_USEC": "1000000"},  # a ping every 0.5 s
        output={"hls": False, "wedged_after_s": wedged_s},
        programme={"block_seconds": 6.0, "filler_seconds": 2.0},
    ).start()
    try:
        ready_at = sd.wait("READY=1", timeout=40, why="(first frames on air)")
        status = daemon.status()  # READY came after the first bytes reached the outputs
        assert status["now_playing"] is not None, status
        ready_status = [m for t, m in sd.messages(prefix="STATUS=") if t == ready_at]
        assert ready_status and ready_status[0].startswith("STATUS=on air: block "), sd.messages()
        assert not [m for t, m in sd.messages() if t < ready_at], "nothing is sent before READY"

        deadline = time.monotonic() + 10
        while len(sd.messages(ready_at, "WATCHDOG=1")) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        pings = [t for t, _ in sd.messages(ready_at, "WATCHDOG=1")]
        assert len(pings) >= 4, pings
        assert max(b - a for a, b in zip(pings, pings[1:])) < 0.9, pings
        assert daemon.request("GET", "/healthz")[0] == 200
        daemon.wait_for(lambda s: daemon.output("rtmp")["state"] == "running", timeout=10, message="rtmp up")

        # Wedge playout: the only output's server goes away, so every output is down.
        nginx.stop()
        down_at = time.monotonic()
        daemon.wait_for(lambda s: daemon.output("rtmp")["state"] != "running", timeout=10, message="rtmp down")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the pings stop: none for wedged_s (4 intervals)
            last = sd.messages(down_at, "WATCHDOG=1")
            if last and time.monotonic() - last[-1][0] > wedged_s:
                break
            time.sleep(0.2)
        last_ping = sd.messages(down_at, "WATCHDOG=1")[-1][0]
        assert time.monotonic() - last_ping > wedged_s, "watchdog pings did not stop"
        assert last_ping - down_at >= wedged_s - 0.5, "pings stopped before wedged_after_s"  # pinged while not yet wedged
        code, body = daemon.request("GET", "/healthz")
        assert code == 503 and "outputs down" in body, body  # /healthz agrees with the watchdog
        assert sd.messages(down_at, "STATUS=")[-1][1].count("UNHEALTHY: all 1 outputs down")
        assert "playout unhealthy: all 1 outputs down" in daemon.log_path.read_text()
        assert daemon.proc.poll() is None  # still airing: restarting is systemd's job

        # An output comes back (the operator points it at a server that answers): pings resume.
        nginx2 = RtmpServer(tmp_path / "nginx2").start()
        daemon.config.write_text(daemon.config.read_text().replace(nginx.url, nginx2.url))
        sd.wait("WATCHDOG=1", timeout=20, since=time.monotonic(), why="after the output came back")
        assert daemon.request("GET", "/healthz")[0] == 200

        stopping = time.monotonic()
        assert daemon.stop(timeout=10) < 10
        assert daemon.proc.returncode == 0
        sd.wait("STOPPING=1", timeout=1, since=stopping)
    finally:
        daemon.kill()
        nginx.stop()
        if nginx2 is not None:
            nginx2.stop()
        sd.close()


# -- logs for journald ------------------------------------------------------------------------


def record(level: int, message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("webtv.playout", level, __file__, 1, message, args, exc_info)


def test_journal_format_has_the_priority_no_time_and_one_line_per_event():
    formatter = JournalFormatter()
    assert formatter.format(record(logging.INFO, "on air: channel=%r outputs=%d", "tv", 2)) == \
        "<6>level=INFO logger=webtv.playout on air: channel='tv' outputs=2"
    assert formatter.format(record(logging.WARNING, "x")).startswith("<4>level=WARNING ")
    assert formatter.format(record(logging.ERROR, "x")).startswith("<3>level=ERROR ")
    assert formatter.format(record(logging.CRITICAL, "x")).startswith("<2>level=CRITICAL ")
    assert formatter.format(record(logging.DEBUG, "x")).startswith("<7>level=DEBUG ")
    assert [syslog_priority(level) for level in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys

        line = formatter.format(record(logging.ERROR, "producer failed", exc_info=sys.exc_info()))
    assert "\n" not in line and "\r" not in line
    assert line.startswith("<3>level=ERROR logger=webtv.playout producer failed\\nTraceback (most recent call last):")
    assert line.endswith("ValueError: bad\\nthing")


def test_what_a_channel_logs_says_which_channel_in_its_task_and_the_threads_it_starts():
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JournalFormatter())
    handler.addFilter(ChannelField())
    logger = logging.getLogger("webtv.test.channels")
    logger.addHandler(handler)
    logger.propagate = False

    async def channel(name: str) -> None:
        CHANNEL.set(name)
        logger.warning("clip made")
        await asyncio.to_thread(logger.warning, "rendered")

    async def both() -> None:
        await asyncio.gather(channel("a"), channel("b"))
        logger.warning("daemon-wide")

    try:
        asyncio.run(both())
    finally:
        logger.removeHandler(handler)
    lines = handler.stream.getvalue().splitlines()
    assert sorted(lines[:4]) == sorted(f"<4>level=WARNING logger=webtv.test.channels channel={name} {what}"
                                       for name in "ab" for what in ("clip made", "rendered"))
    assert lines[4] == "<4>level=WARNING logger=webtv.test.channels daemon-wide"


def test_setup_logging_picks_the_journal_format_only_when_stderr_is_the_journal(tmp_path, monkeypatch):
    log_file = tmp_path / "stderr"
    with open(log_file, "w") as stream:
        st = os.fstat(stream.fileno())
        assert is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not is_journal(stream, {})
        assert not is_journal(io.StringIO(), {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        monkeypatch.setattr("sys.stderr", stream)
        root = logging.getLogger()
        saved = root.handlers[:], root.level
        try:
            setup_logging()
            logging.getLogger("webtv.test").warning("wedged: outputs=%d", 0)
            monkeypatch.delenv("JOURNAL_STREAM")
            setup_logging()
            logging.getLogger("webtv.test").info("plain")
        finally:
            root.handlers[:], level = saved
            root.setLevel(level)
    journal, terminal = log_file.read_text().splitlines()
    assert journal == "<4>level=WARNING logger=webtv.test wedged: outputs=0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} level=INFO logger=webtv.test plain", terminal)
