"""A channel folder (``webtv run --config DIR``): one daemon, one channel per file.

Every ``DIR/*.toml`` but ``DIR/daemon.toml`` (and names starting with ``.``, an editor's
temporary files) is a channel file, today's ``channel.toml`` format. ``DIR/daemon.toml``,
optional, holds the daemon-wide ``[http]`` and ``[workers]``; each channel's ``Config``
carries them, merged into its tables before validation (so "remote needs workers.urls" is
checked against the daemon's workers). A channel file that sets them itself is refused,
naming both files: one place says where the daemon listens and which workers it has.

In a folder, a channel file's unset ``[paths]`` keys default to ``<stem>/library``,
``<stem>/playlists`` and ``<stem>/hls`` beside it, and an unset ``[channel] name`` to the
stem. The name is the channel's id in URLs (``/c/<name>/``): it must be URL-safe and
unique; no two channels share a library, playlists or HLS folder, or push to one RTMP URL.
Every such problem is a ``ConfigError`` naming both files.

Files are read only through ``webtv.config`` (``parse_toml``, ``validate_config``): the
same expansion, validation and error wording as one channel file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from pydantic import Field

from webtv.config import (Config, ConfigError, HttpSection, Problem, Section, WorkersSection, env_problems, located,
                          parse_toml, read_config_text, redact_url, summary, validate_config, validate_section)

DAEMON_FILE = "daemon.toml"
DAEMON_WIDE = ("http", "workers")
PATH_KEYS = ("library", "playlists", "hls")
CHANNEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class DaemonConfig(Section):
    """``DIR/daemon.toml``: what every channel of the folder shares."""

    http: HttpSection = HttpSection()
    workers: WorkersSection = WorkersSection()
    source: Path | None = Field(None, exclude=True)


@dataclass
class Folder:
    """A channel folder as read at one moment: the valid channel files (in file-name order)
    and the refused ones with why."""

    daemon: DaemonConfig
    channels: dict[Path, Config] = field(default_factory=dict)
    refused: dict[Path, str] = field(default_factory=dict)


def is_channel_file(path: Path) -> bool:
    return path.suffix == ".toml" and path.name != DAEMON_FILE and not path.name.startswith(".")


def channel_files(folder: Path) -> list[Path]:
    """The channel files of ``folder``, absolute, in file-name order."""
    folder = Path(os.path.abspath(folder))
    return sorted(p for p in folder.iterdir() if is_channel_file(p) and p.is_file())


def load_daemon_config(folder: Path, env: dict[str, str] | None = None) -> DaemonConfig:
    """``folder``'s daemon.toml, validated; the defaults when there is none."""
    env = dict(os.environ) if env is None else env
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder of channel files")
    path = Path(os.path.abspath(folder / DAEMON_FILE))
    if not path.exists():
        return DaemonConfig()
    text = read_config_text(path)
    raw = parse_toml(text, path, env)
    misplaced = [((name,), f"[{name}] belongs in a channel file: {DAEMON_FILE} holds only "
                           f"{', '.join(f'[{n}]' for n in DAEMON_WIDE)}") for name in raw if name not in DAEMON_WIDE]
    if misplaced:
        raise ConfigError(located(misplaced, path, text))
    daemon = validate_section(DaemonConfig, {**raw, "source": path}, text, path)
    validate_section(Config, raw, text, path)  # the rules across [workers] keys live on Config
    problems = env_problems(daemon, env)  # type: ignore[arg-type] - it reads .workers only
    if problems:
        raise ConfigError(located(problems, path, text))
    return daemon


def load_channel_file(path: Path, daemon: DaemonConfig, others: Mapping[Path, Config],
                      env: dict[str, str] | None = None) -> Config:
    """One channel file of a folder, with the daemon's ``[http]`` and ``[workers]``. ``others``:
    the folder's other channels (an entry for ``path`` itself is ignored); a name, folder or
    RTMP URL one of them has already is an error naming both files."""
    env = dict(os.environ) if env is None else env
    path = Path(os.path.abspath(path))
    text = read_config_text(path)
    raw = parse_toml(text, path, env)
    daemon_path = daemon.source or path.parent / DAEMON_FILE
    wide = [((name,), f"[{name}] is daemon-wide in a channel folder: set it in {daemon_path} and remove it here")
            for name in DAEMON_WIDE if name in raw]
    if wide:
        raise ConfigError(located(wide, path, text))
    raw = {**raw, "http": daemon.http.model_dump(), "workers": daemon.workers.model_dump()}
    if isinstance(raw.get("channel", {}), dict) and "name" not in raw.get("channel", {}):
        raw["channel"] = {**raw.get("channel", {}), "name": path.stem}
    if isinstance(raw.get("paths", {}), dict):
        raw["paths"] = {**{key: f"{path.stem}/{key}" for key in PATH_KEYS}, **raw.get("paths", {})}
    config = validate_config(raw, text, path, env)
    problems = _clashes(config, {p: c for p, c in others.items() if Path(os.path.abspath(p)) != path})
    if problems:
        raise ConfigError(located(problems, path, text))
    return config


def _clashes(config: Config, others: Mapping[Path, Config]) -> list[Problem]:
    """What ``config`` claims that another channel of the folder has: its name, a folder, an RTMP URL."""
    problems: list[Problem] = []
    name = config.channel.name
    if not CHANNEL_ID.fullmatch(name):
        problems.append((("channel", "name"), f"{name!r} cannot be a channel's id in a folder (its URL is "
                                              "/c/<name>/): 1-64 letters, digits, '.', '_' or '-', "
                                              "starting with a letter or digit"))
    for other_path, other in others.items():
        if other.channel.name == name:
            problems.append((("channel", "name"), f"{name!r} is also the name of {other_path}: "
                                                  "each channel of a folder needs its own"))
        theirs = {_folder(getattr(other.paths, key)): key for key in PATH_KEYS}
        for key in PATH_KEYS:
            clash = theirs.get(_folder(getattr(config.paths, key)))
            if clash is not None:
                problems.append((("paths", key), f"{getattr(config.paths, key)} is also paths.{clash} of "
                                                 f"{other_path}: each channel needs its own folders"))
        for index, url in enumerate(config.output.rtmp_urls):
            if url in other.output.rtmp_urls:
                problems.append((("output", "rtmp_urls", index), f"{redact_url(url)} is also an RTMP URL of "
                                                                 f"{other_path}: one stream has one publisher"))
    return problems


def _folder(path: Path) -> Path:
    return Path(os.path.realpath(path))


def load_folder(folder: Path, env: dict[str, str] | None = None) -> Folder:
    """Read ``folder``: its daemon.toml (a ConfigError when invalid) and every channel file in
    file-name order, each checked against the valid ones before it (so of two files that
    clash, the later name is refused)."""
    env = dict(os.environ) if env is None else env
    read = Folder(load_daemon_config(folder, env))
    for path in channel_files(folder):
        try:
            read.channels[path] = load_channel_file(path, read.daemon, read.channels, env)
        except ConfigError as exc:
            read.refused[path] = str(exc)
    return read


def folder_summary(folder: Path, read: Folder, shared: list[dict]) -> str:
    """What ``webtv check DIR`` prints: each channel's summary, each refused file's errors,
    then what the channels share (the daemon's [http] and [workers]; ``shared``: the render
    stages, ``webtv.producer.shared.sharing``)."""
    parts = [summary(config) for config in read.channels.values()]
    parts += [f"refused:    {path}\n{error}" for path, error in read.refused.items()]
    http, workers = read.daemon.http, read.daemon.workers
    lines = [f"folder:     {Path(os.path.abspath(folder))}: {len(read.channels)} channel(s), "
             f"{len(read.refused)} refused",
             f"daemon:     {read.daemon.source or f'no {DAEMON_FILE}: the defaults'}",
             f"http:       {http.host}:{http.port}; channel pages at /c/<name>/",
             f"workers:    {', '.join(workers.urls) or 'none'}"]
    together = [stage for stage in shared if len(stage["channels"]) > 1]
    for stage in together:
        lines.append(f"shared:     {stage['stage']} {stage['what']}: loaded once for channels "
                     f"{', '.join(stage['channels'])}")
    if not together:
        lines.append("shared:     no render stage (no two channels have equal stage sections)")
    return "\n\n".join([*parts, "\n".join(lines)])
