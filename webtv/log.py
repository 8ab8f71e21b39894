"""Logging to stderr, one line an event: time, level, logger, message with key=value fields.

Under systemd, when stderr is the journal (``$JOURNAL_STREAM`` names stderr's device and
inode), the time is left out (journald adds its own) and each line starts with its syslog
priority, ``<3>`` for an error as sd-daemon(3) describes, so ``journalctl -p warning`` works.
Newlines inside an event (a traceback) are escaped as ``\\n``: one event, one journal entry.

In a daemon of several channels, what a channel logs carries ``channel=<name>``: the station
sets ``CHANNEL`` in each channel's task, and the tasks and render threads it starts inherit it
(asyncio tasks and ``to_thread`` copy the context). Daemon-wide lines have no such field.
"""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from typing import TextIO

FIELDS = "level=%(levelname)s logger=%(name)s%(channel)s %(message)s"

NO_CHANNEL = {"channel": ""}  # a record that did not pass ChannelField

CHANNEL: ContextVar[str | None] = ContextVar("webtv_channel", default=None)
"""The channel the running code works for (a daemon of several channels); None: daemon-wide."""


class ChannelField(logging.Filter):
    """Gives each record its `` channel=<name>`` field ("" outside a channel), for ``FIELDS``."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = CHANNEL.get()
        record.channel = f" channel={name}" if name else ""
        return True


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 crit, 3 err, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """``<priority>level=... logger=... message`` on one line, for journald's stream protocol."""

    def __init__(self) -> None:
        super().__init__(FIELDS, defaults=NO_CHANNEL)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record).replace("\r\n", "\n").replace("\r", "\\r").replace("\n", "\\n")
        return f"<{syslog_priority(record.levelno)}>{line}"


def is_journal(stream: TextIO, environ: dict | None = None) -> bool:
    """True when ``stream`` is connected to journald (``$JOURNAL_STREAM`` is ``DEV:INODE`` of it)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(verbose: bool = False, journal: bool | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if journal is None:
        journal = is_journal(sys.stderr)
    handler.setFormatter(JournalFormatter() if journal else logging.Formatter("%(asctime)s " + FIELDS, defaults=NO_CHANNEL))
    handler.addFilter(ChannelField())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
