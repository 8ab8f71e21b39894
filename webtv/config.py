"""channel.toml: the one place that reads and validates the channel's configuration.

Relative paths resolve against the folder of the file; ``${VAR}`` in any string is taken
from the environment (stream keys live there). Every error names the key, and the line
where one can be found.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = Path("channel.toml")


class ConfigError(Exception):
    """A configuration problem, worded for the operator: file, key and line where known."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelSection(Section):
    name: str = "webtv"
    theme: str = "a calm journey through imaginary landscapes"


class HouseSection(Section):
    """The one format every clip is encoded to once, so playout can copy it."""

    width: int = Field(1024, ge=64, le=3840, multiple_of=2)
    height: int = Field(576, ge=64, le=2160, multiple_of=2)
    fps: int = Field(24, ge=1, le=60)
    gop_seconds: float = Field(2.0, gt=0, le=10)
    video_kbps: int = Field(2500, ge=100, le=50000)
    h264_profile: Literal["baseline", "main", "high"] = "main"
    x264_preset: str = "veryfast"
    audio_kbps: int = Field(128, ge=32, le=320)
    sample_rate: Literal[44100, 48000] = 48000
    channels: Literal[1, 2] = 2
    font: Path | None = None

    @property
    def gop_frames(self) -> int:
        return max(1, round(self.gop_seconds * self.fps))


class DirectorSection(Section):
    backend: Literal["offline", "openai"] = "offline"
    shots_per_sequence: int = Field(4, ge=1, le=32)
    seed: int = 0
    # openai: any OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp, Ollama)
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the variable holding the key")
    timeout_s: float = Field(30.0, gt=0, le=600)
    retries: int = Field(2, ge=0, le=10)
    cooldown_s: float = Field(60.0, ge=0, le=3600, description="after a fallback, write offline this long")
    system_prompt: Path | None = Field(None, description="file replacing the packaged system prompt")


class ModerationSection(Section):
    words: list[str] = Field([], description="blocked words, matched whole and case-insensitively")
    patterns: list[str] = Field([], description="blocked regular expressions (Python syntax)")
    openai: bool = Field(False, description="also ask the OpenAI moderation endpoint of [director]")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return patterns


class ScheduleEntry(Section):
    """A programme slot: from ``cron`` (5 fields) or daily ``at`` ("HH:MM"), air ``theme``."""

    theme: str
    cron: str | None = None
    at: str | None = None
    tags: list[str] = []

    @model_validator(mode="after")
    def _one_trigger(self) -> "ScheduleEntry":
        if (self.cron is None) == (self.at is None):
            raise ValueError("give exactly one of cron or at")
        if self.at is not None and not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?", self.at):
            raise ValueError(f"at = {self.at!r} is not a time of day like \"18:30\"")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron = {self.cron!r} needs 5 fields: minute hour day month weekday")
        return self


Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$", description='"auto" (CUDA when present), "cpu", "cuda" or "cuda:N"')]


ADAPTER_ARGS = ("prompt", "negative_prompt", "seed", "frames", "steps", "guidance", "seconds", "width", "height")


class AdapterSection(Section):
    """How to call a Gradio app that is not a webtv worker (a public Zeroscope or MusicGen
    Space): its endpoint and the order of its arguments, named from ADAPTER_ARGS or given as
    literal values."""

    endpoint: str = Field(pattern=r"^/")
    args: list[str | int | float | bool] = []

    @field_validator("args")
    @classmethod
    def _known_names(cls, args: list) -> list:
        for arg in args:
            if isinstance(arg, str) and arg.startswith("$") and arg[1:] not in ADAPTER_ARGS:
                raise ValueError(f"{arg!r} is not one of ${', $'.join(ADAPTER_ARGS)}")
        return args


class WorkersSection(Section):
    """Remote GPU workers (``webtv worker`` or compatible Gradio apps) for stages whose
    backend is ``remote``."""

    urls: list[str] = []
    timeout_s: float = Field(600.0, gt=0, le=86400, description="one job, queue wait included")
    retries: int = Field(2, ge=0, le=20, description="other workers tried after a failed job")
    health_interval_s: float = Field(10.0, gt=0, le=3600)
    probe_after_s: float = Field(30.0, gt=0, le=86400, description="a worker taken out is probed again after this")


class DiffusionPass(Section):
    """What the two Zeroscope passes share: sampling and the memory switches."""

    steps: int = Field(40, ge=1, le=500)
    guidance: float = Field(9.0, ge=0, le=50)
    negative_prompt: str = ""
    device: Device = "auto"
    cpu_offload: bool = False
    vae_slicing: bool = True
    forward_chunking: bool = False


class VideoSection(DiffusionPass):
    """shot -> frames. ``procedural`` draws without models; ``zeroscope`` runs diffusers'
    TextToVideoSDPipeline (hub id or local folder in ``model``)."""

    backend: Literal["procedural", "zeroscope", "remote"] = "procedural"
    adapter: AdapterSection | None = None
    clip_seconds: float = Field(3.0, gt=0.5, le=60)
    model: str = "cerspense/zeroscope_v2_576w"
    width: int = Field(576, ge=8, le=2048, multiple_of=8)
    height: int = Field(320, ge=8, le=2048, multiple_of=8)
    frames: int = Field(24, ge=2, le=256)
    render_delay_s: float = Field(
        0.0, ge=0, le=3600, description="procedural only: at least this long per shot, standing in for a GPU in tests"
    )


class UpscaleSection(DiffusionPass):
    """frames -> larger frames: VideoToVideoSDPipeline with the Zeroscope XL weights, same prompt."""

    backend: Literal["none", "zeroscope", "remote"] = "none"
    model: str = "cerspense/zeroscope_v2_XL"
    width: int = Field(1024, ge=8, le=4096, multiple_of=8)
    height: int = Field(576, ge=8, le=4096, multiple_of=8)
    strength: float = Field(0.6, gt=0, le=1)
    forward_chunking: bool = True  # the XL pass at 1024x576 is where memory runs out


class InterpolationSection(Section):
    """frames -> exactly clip_seconds * house.fps frames. ``film`` needs ``model`` (a FILM
    TorchScript .pt or .safetensors file); without it ``minterpolate`` (ffmpeg) is used."""

    backend: Literal["film", "minterpolate", "none", "remote"] = "minterpolate"
    model: Path | None = None
    batch: int = Field(4, ge=1, le=256, description="frame pairs per FILM forward pass")
    tile: int | None = Field(None, ge=64, le=8192, multiple_of=64, description="split frames larger than this many pixels a side")
    device: Device = "auto"


class AudioSection(Section):
    """sequence -> one music track. ``synth`` needs no model; ``musicgen`` runs transformers'
    MusicgenForConditionalGeneration (hub id or local folder in ``model``)."""

    backend: Literal["synth", "musicgen", "remote"] = "synth"
    adapter: AdapterSection | None = None
    model: str = "facebook/musicgen-small"
    guidance: float = Field(3.0, ge=0, le=50)
    temperature: float = Field(1.0, gt=0, le=10)
    device: Device = "auto"


class ProducerSection(Section):
    ahead: int = Field(6, ge=1, le=1000, description="fresh clips kept ready before the producer rests")


class ProgrammeSection(Section):
    block_seconds: float = Field(10.0, ge=2, le=3600)
    filler_seconds: float = Field(4.0, ge=1, le=60)


class OutputSection(Section):
    rtmp_urls: list[str] = []
    hls: bool = True
    hls_list_size: int = Field(6, ge=2, le=100)
    buffer_kb: int = Field(4096, ge=64, le=1 << 20, description="bytes an output may lag before it is restarted")
    wedged_after_s: float = Field(
        30.0, gt=0, le=3600, description="all outputs down this long: playout is wedged (watchdog pings stop)"
    )

    @field_validator("rtmp_urls")
    @classmethod
    def _rtmp_scheme(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.match(r"^rtmps?://[^/\s]+/\S+", url):
                raise ValueError(f"{redact_url(url)!r} is not an rtmp:// or rtmps:// URL with an app path")
        return urls


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


class LibrarySection(Section):
    """Retention: the library is kept under these quotas (none by default)."""

    max_bytes: int | None = Field(None, ge=1, description='bytes, or a size such as "20G"')
    max_clips: int | None = Field(None, ge=1)
    check_interval_s: float = Field(60.0, gt=0, le=86400)

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, value):
        if isinstance(value, str):
            match = _SIZE.match(value)
            if not match:
                raise ValueError(f"{value!r} is not a size like 500M or 20G")
            number, unit = float(match.group(1)), match.group(2).upper()
            return int(number * 1024 ** " KMGT".index(unit or " "))
        return value


class PathsSection(Section):
    library: Path = Path("library")
    playlists: Path = Path("playlists")
    hls: Path = Path("hls")


class HttpSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    token_env: str | None = Field(None, description="variable holding the bearer token for mutating calls")


class Config(Section):
    channel: ChannelSection = ChannelSection()
    house: HouseSection = HouseSection()
    director: DirectorSection = DirectorSection()
    video: VideoSection = VideoSection()
    upscale: UpscaleSection = UpscaleSection()
    interpolation: InterpolationSection = InterpolationSection()
    audio: AudioSection = AudioSection()
    workers: WorkersSection = WorkersSection()
    producer: ProducerSection = ProducerSection()
    programme: ProgrammeSection = ProgrammeSection()
    output: OutputSection = OutputSection()
    paths: PathsSection = PathsSection()
    http: HttpSection = HttpSection()
    moderation: ModerationSection = ModerationSection()
    library: LibrarySection = LibrarySection()
    schedule: list[ScheduleEntry] = []
    source: Path | None = Field(None, exclude=True)

    @property
    def needs_workers(self) -> bool:  # STAND-IN for config
        """Whether any stage runs on remote workers (the channel then owns a WorkerPool)."""
        return any(getattr(self, name).backend == "remote" for name in ("video", "upscale", "interpolation", "audio"))

    @model_validator(mode="after")
    def _block_holds_a_clip(self) -> "Config":
        if self.programme.block_seconds < self.video.clip_seconds:
            raise ValueError("programme.block_seconds must be at least video.clip_seconds")
        remote = [name for name in ("video", "upscale", "interpolation", "audio") if getattr(self, name).backend == "remote"]
        if remote and not self.workers.urls:
            raise ValueError(f"{', '.join(name + '.backend' for name in remote)} = \"remote\" needs workers.urls")
        return self


# STAND-IN for config: which sections apply at the next start, declared beside each section in
# the config helper's version. A section maps to None (all of it waits for a restart) or to the
# keys of it that do.
_RESTART: dict[str, tuple[str, ...] | None] = {
    "house": None, "video": None, "upscale": None, "interpolation": None, "audio": None, "paths": None,
    "http": None, "output": ("hls", "hls_list_size", "buffer_kb"), "programme": ("filler_seconds",),
}


def pending_restart(old: Config, new: Config) -> list[str]:  # STAND-IN for config
    """What ``new`` changes that takes effect only at the next start ("house", "output.hls", ...)."""
    pending = []
    for name, keys in _RESTART.items():
        before, after = getattr(old, name), getattr(new, name)
        if keys is None:
            pending += [name] if before != after else []
        else:
            pending += [f"{name}.{key}" for key in keys if getattr(before, key) != getattr(after, key)]
    return pending


def live_config(old: Config, new: Config) -> Config:  # STAND-IN for config
    """``new`` with what needs a restart kept from ``old``: the config a running channel applies."""
    update = {}
    for name, keys in _RESTART.items():
        if keys is None:
            update[name] = getattr(old, name)
        else:
            kept = {key: getattr(getattr(old, name), key) for key in keys}
            update[name] = getattr(new, name).model_copy(update=kept)
    return new.model_copy(update=update)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_config(path: Path | str = DEFAULT_CONFIG, env: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a channel file; raise ConfigError naming what is wrong."""
    path = Path(path)
    env = dict(os.environ) if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    return parse_config(text, path, env)


def parse_config(text: str, path: Path, env: dict[str, str]) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    raw = _expand(raw, (), env, path, text)
    try:
        config = Config.model_validate({**raw, "source": path.resolve()})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, text)) from None
    config = _resolve_paths(config, path.resolve().parent)
    for key, file in ((("house", "font"), config.house.font),
                      (("director", "system_prompt"), config.director.system_prompt)):
        if file is not None and not file.is_file():
            raise ConfigError(_where(path, text, key) + f"{'.'.join(key)}: file not found: {file}")
    return config


def _resolve_paths(config: Config, base: Path) -> Config:
    def resolve(p: Path) -> Path:
        return base / p.expanduser()

    paths = config.paths.model_copy(update={k: resolve(v) for k, v in config.paths if isinstance(v, Path)})
    house, director = config.house, config.director
    if house.font is not None:
        house = house.model_copy(update={"font": resolve(house.font)})
    if director.system_prompt is not None:
        director = director.model_copy(update={"system_prompt": resolve(director.system_prompt)})
    interpolation = config.interpolation
    if interpolation.model is not None:
        interpolation = interpolation.model_copy(update={"model": resolve(interpolation.model)})
    models = {
        name: section.model_copy(update={"model": resolve_model(section.model, base)})
        for name, section in (("video", config.video), ("upscale", config.upscale), ("audio", config.audio))
    }
    return config.model_copy(
        update={"paths": paths, "house": house, "director": director, "interpolation": interpolation, **models}
    )


def resolve_model(model: str, base: Path) -> str:
    """A model is a hub id ("owner/name") or a local folder; a folder given relative to the
    channel file (or starting with ./, ../, ~ or /) becomes an absolute path."""
    path = Path(model).expanduser()
    if path.is_absolute() or model.startswith((".", "~")) or (base / path).is_dir():
        return str(base / path)
    return model


def _expand(value: Any, loc: tuple, env: dict[str, str], path: Path, text: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, loc + (k,), env, path, text) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, loc + (i,), env, path, text) for i, v in enumerate(value)]
    if isinstance(value, str):

        def lookup(match: re.Match) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(
                    _where(path, text, loc) + f"{_dotted(loc)}: environment variable {name} is not set"
                )
            return env[name]

        return _VAR.sub(lookup, value)
    return value


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(exc: ValidationError, path: Path, text: str) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p != "source")
        key = _dotted(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        else:
            message = err["msg"].removeprefix("Value error, ")
            if "input" in err and err["type"] not in ("missing", "value_error") and not isinstance(err["input"], dict):
                message += f" (got {_shown(loc, err['input'])})"
        lines.append(_where(path, text, loc) + f"{key}: {message}")
    return "\n".join(lines)


def _shown(loc: tuple, value: Any) -> str:
    if loc[:2] == ("output", "rtmp_urls"):
        return repr(redact_url(str(value)))
    return repr(value)


def _where(path: Path, text: str, loc: tuple) -> str:
    line = find_line(text, [p for p in loc if isinstance(p, str)])
    return f"{path}:{line}: " if line else f"{path}: "


def find_line(text: str, keys: list[str]) -> int | None:
    """Line number of the deepest key of ``keys`` found in the TOML text, or of its table."""
    if not keys:
        return None
    table: list[str] = []
    best = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            table = [part.strip().strip('"') for part in header.group(1).split(".")]
            if table == keys[: len(table)] and best is None and len(table) == len(keys):
                best = number
            continue
        assignment = re.match(r"^([A-Za-z0-9_\-\".]+)\s*=", stripped)
        if assignment:
            dotted = table + [p.strip().strip('"') for p in assignment.group(1).split(".")]
            if dotted == keys[: len(dotted)]:
                return number
    return best


def redact_url(url: str) -> str:
    """Hide stream keys: credentials, query strings and the last path segment of an ingest URL."""
    match = re.match(r"^(\w+://)(?:[^@/]*@)?([^/]*)(/.*)?$", url)
    if not match:
        return "***"
    scheme, host, rest = match.group(1), match.group(2), match.group(3) or ""
    rest = rest.split("?", 1)[0]
    parts = rest.split("/")
    if len(parts) > 2 and parts[-1]:
        parts[-1] = "***"
    return scheme + host + "/".join(parts)


def summary(config: Config) -> str:
    """The one-screen summary printed by ``webtv check``."""
    h, o, p = config.house, config.output, config.paths
    outputs = [f"rtmp {redact_url(u)}" for u in o.rtmp_urls] + (["hls"] if o.hls else [])
    return "\n".join(
        [
            f"config:     {config.source}",
            f"channel:    {config.channel.name}",
            f"theme:      {config.channel.theme}",
            f"house:      {h.width}x{h.height}@{h.fps} H.264 {h.h264_profile} {h.video_kbps} kb/s, "
            f"GOP {h.gop_seconds:g} s; AAC {h.audio_kbps} kb/s {h.sample_rate} Hz x{h.channels}",
            f"director:   {config.director.backend} ({config.director.shots_per_sequence} shots a sequence)",
            f"video:      {_stage(config.video)}, {config.video.clip_seconds:g} s clips",
            f"upscale:    {_stage(config.upscale)}",
            f"interpolate: {config.interpolation.backend}"
            + (f" ({config.interpolation.model})" if config.interpolation.backend == "film" else ""),
            f"audio:      {_stage(config.audio)}",
            f"workers:    {', '.join(config.workers.urls) or 'none'}",
            f"programme:  blocks of {config.programme.block_seconds:g} s",
            f"outputs:    {', '.join(outputs) or 'none'}",
            f"library:    {p.library}",
            f"playlists:  {p.playlists}",
            f"hls:        {p.hls}",
            f"http:       http://{config.http.host}:{config.http.port}/",
        ]
    )


def _stage(section: "VideoSection | UpscaleSection | AudioSection") -> str:
    if section.backend in ("zeroscope", "musicgen"):
        return f"{section.backend} ({section.model})"
    return section.backend
