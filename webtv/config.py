"""channel.toml: the one place that reads and validates the channel's configuration.

Relative paths resolve against the folder of the file; ``${VAR}`` in any string is taken
from the environment (stream keys live there). Every error names the key, and the line
where one can be found.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from webtv.text import checked_text, text_problem

DEFAULT_CONFIG = Path("channel.toml")


class ConfigError(Exception):
    """A configuration problem, worded for the operator: file, key and line where known."""


class Section(BaseModel):
    """One table of channel.toml. Whether an edit of it applies while the channel airs is
    declared here, once: ``restart`` (the whole section waits for the next start) or, for a
    section that applies live, ``restart_keys`` (those keys wait)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    restart: ClassVar[bool] = False
    restart_keys: ClassVar[tuple[str, ...]] = ()


S = TypeVar("S", bound=Section)


def _printable(text: str) -> str:
    problem = text_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


PrintableText = Annotated[str, AfterValidator(_printable)]
"""One line of printable text (``webtv.text``): what airs, is stored and is drawn on screen."""


class ChannelSection(Section):
    name: PrintableText = "webtv"
    theme: PrintableText = "a calm journey through imaginary landscapes"


class HouseSection(Section):
    """The one format every clip is encoded to once, so playout can copy it."""

    restart: ClassVar[bool] = True

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
    loudness_lufs: float = Field(-16.0, ge=-40, le=-5,
                                 description="EBU R128 integrated loudness clips and the filler card are made at")
    true_peak_db: float = Field(-1.5, ge=-9, le=0, description="the highest true peak of a clip's sound (dBTP)")

    @property
    def gop_frames(self) -> int:
        return max(1, round(self.gop_seconds * self.fps))

    @property
    def keyframe_s(self) -> float:
        """The seconds between keyframes as encoded: every clip has one at its start and every
        ``keyframe_s`` after."""
        return self.gop_frames / self.fps


class DirectorBase(Section):
    """theme -> shot prompts: what every director shares."""

    backend: str
    shots_per_sequence: int = Field(4, ge=1, le=32)
    seed: int = 0
    subject_weight: float = Field(
        1.0, ge=0, le=2, description="the offline writer's subject as (subject:weight) in its prompts; 1: unweighted")


class OfflineDirectorSection(DirectorBase):
    """Writes sequences from built-in templates: no network."""

    backend: Literal["offline"] = "offline"


class OpenAIDirectorSection(DirectorBase):
    """Any OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp, Ollama)."""

    backend: Literal["openai"] = "openai"
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the variable holding the key")
    timeout_s: float = Field(30.0, gt=0, le=600)
    retries: int = Field(2, ge=0, le=10)
    retry_backoff_s: float = Field(1.0, gt=0, le=30, description="first wait between attempts, doubled each retry")
    cooldown_s: float = Field(60.0, ge=0, le=3600, description="after a fallback, write offline this long")
    system_prompt: Path | None = Field(None, description="file replacing the packaged system prompt")


DIRECTOR_BACKENDS = (OfflineDirectorSection, OpenAIDirectorSection)
DirectorSection = Annotated[Union[DIRECTOR_BACKENDS], Field(discriminator="backend")]


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


def _one_line(what: str):
    def check(text: str) -> str:
        text = checked_text(text, what)
        if not text.strip():
            raise ValueError(f"{what} must not be empty")
        return " ".join(text.split())
    return AfterValidator(check)


class CastMember(Section):
    """A character of every series the channel tells: ``look`` is added, word for word, to
    every shot prompt they are in; ``aliases`` are other names a prompt may call them by."""

    name: Annotated[str, _one_line("name")]
    look: Annotated[str, _one_line("look")]
    aliases: list[Annotated[str, _one_line("alias")]] = []
    voice: str | None = Field(None, description="the voice backend's name for their voice")


class StorySection(Section):
    """Story mode: episodes with a cast, a narrator and subtitles instead of the showreel.
    Applies live, at the next episode."""

    enabled: bool = False
    cast: list[CastMember] = []
    min_shot_seconds: float = Field(3.0, gt=0, le=60)
    max_shot_seconds: float = Field(8.0, gt=0, le=60)
    breath_s: float = Field(0.75, ge=0, le=10, description="silence after each line")
    summary_chars: int = Field(800, ge=100, le=20000, description="bound of the story-so-far summary")

    @model_validator(mode="after")
    def _names_once(self) -> "StorySection":
        seen: dict[str, str] = {}
        for i, member in enumerate(self.cast):
            for key, name in [("name", member.name), *(("aliases", a) for a in member.aliases)]:
                where = f"cast[{i}].{key}"
                if name.casefold() in seen:
                    raise PydanticCustomError("at_key", "{message}", {
                        "key": ("cast", i, key),
                        "message": f"{name!r} names two characters ({seen[name.casefold()]} and {where})"})
                seen[name.casefold()] = where
        if self.max_shot_seconds < self.min_shot_seconds:
            raise PydanticCustomError("at_key", "{key}: {message}", {
                "key": "max_shot_seconds", "message": f"must be at least min_shot_seconds ({self.min_shot_seconds:g})"})
        if self.max_shot_seconds <= self.breath_s:
            raise PydanticCustomError("at_key", "{key}: {message}", {
                "key": "breath_s", "message": f"leaves no time to speak within max_shot_seconds ({self.max_shot_seconds:g})"})
        return self


class ScheduleEntry(Section):
    """A programme slot: from ``cron`` (5 fields) or daily ``at`` ("HH:MM"), air ``theme``.
    Both are checked by building the APScheduler trigger the daemon runs, so what
    ``webtv check`` accepts is what ``webtv run`` can schedule."""

    theme: PrintableText
    cron: str | None = None
    at: str | None = None
    tags: list[PrintableText] = []

    @field_validator("cron")
    @classmethod
    def _cron_triggers(cls, cron: str | None) -> str | None:
        if cron is not None:
            if len(cron.split()) != 5:
                raise ValueError(f"cron = {cron!r} needs 5 fields: minute hour day month weekday")
            _triggered(lambda: cron_trigger(cron), f"cron = {cron!r}")
        return cron

    @field_validator("at")
    @classmethod
    def _at_triggers(cls, at: str | None) -> str | None:
        if at is not None:
            if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?", at):
                raise ValueError(f"at = {at!r} is not a time of day like \"18:30\"")
            _triggered(lambda: at_trigger(at), f"at = {at!r}")
        return at

    @model_validator(mode="after")
    def _one_trigger(self) -> "ScheduleEntry":
        if (self.cron is None) == (self.at is None):
            raise ValueError("give exactly one of cron or at")
        return self

    def trigger(self):
        """The APScheduler CronTrigger for this slot."""
        return cron_trigger(self.cron) if self.cron is not None else at_trigger(self.at)


def cron_trigger(cron: str):
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(cron)


def at_trigger(at: str):
    from apscheduler.triggers.cron import CronTrigger

    hour, minute, *second = at.split(":")
    return CronTrigger(hour=int(hour), minute=int(minute), second=int(second[0]) if second else 0)


def _triggered(build, what: str) -> None:
    try:
        build()
    except ValueError as exc:
        raise ValueError(f"{what} is not a valid schedule: {exc}") from None


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


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="an environment variable's name")]


class WorkerCredentials(Section):
    """How the channel authenticates to the worker at ``url``. Every value names an
    environment variable that holds the secret: no secret is written in channel.toml (which
    the API writes back), held in the config, or shown in status and logs."""

    url: str
    token_env: EnvName | None = Field(None, description="sent as Authorization: Bearer (a worker's WEBTV_WORKER_TOKEN)")
    user_env: EnvName | None = Field(None, description="Gradio login: the user (a worker's WEBTV_WORKER_USER)")
    password_env: EnvName | None = Field(None, description="Gradio login: the password")
    hf_token_env: EnvName | None = Field(None, description="a Hugging Face token, for a private Space")
    headers_env: dict[str, EnvName] = Field({}, description="more headers: header name -> environment variable")

    @model_validator(mode="after")
    def _login_in_pairs(self) -> "WorkerCredentials":
        if (self.user_env is None) != (self.password_env is None):
            key, other = ("user_env", "password_env") if self.user_env else ("password_env", "user_env")
            raise PydanticCustomError("at_key", "{key}: {message}", {"key": key, "message": f"needs {other} too"})
        return self

    def variables(self) -> dict[str, str]:
        """key -> the environment variable it names ("headers_env.X-Api-Key" for a header)."""
        named = {key: getattr(self, key) for key in ("token_env", "user_env", "password_env", "hf_token_env")}
        named.update({f"headers_env.{header}": var for header, var in self.headers_env.items()})
        return {key: var for key, var in named.items() if var is not None}

    def client_options(self, env: dict[str, str]) -> dict[str, Any]:
        """gradio_client ``Client`` keyword arguments with the secrets read from ``env``:
        ``auth`` (login), ``token`` (the HF token; False sends none, not even one saved on this
        machine) and ``headers``. A variable gone since load raises RuntimeError naming it."""
        def read(var: str) -> str:
            if var not in env:
                raise RuntimeError(f"credentials of {self.url}: environment variable {var} is not set")
            return env[var]

        headers = {header: read(var) for header, var in self.headers_env.items()}
        if self.token_env is not None:
            headers["Authorization"] = f"Bearer {read(self.token_env)}"
        login = (read(self.user_env), read(self.password_env)) if self.user_env and self.password_env else None
        return {"auth": login, "token": read(self.hf_token_env) if self.hf_token_env else False, "headers": headers}


class WorkersSection(Section):
    """Remote GPU workers (``webtv worker`` or compatible Gradio apps) for stages whose
    backend is ``remote``."""

    urls: list[str] = []
    credentials: list[WorkerCredentials] = Field([], description="per worker URL: [[workers.credentials]] tables")
    timeout_s: float = Field(600.0, gt=0, le=86400, description="one job, queue wait included")
    retries: int = Field(2, ge=0, le=20, description="other workers tried after a failed job")
    health_interval_s: float = Field(10.0, gt=0, le=3600)
    probe_after_s: float = Field(30.0, gt=0, le=86400, description="a worker taken out is probed again after this")

    def credentials_for(self, url: str) -> WorkerCredentials | None:
        """The credentials table of ``url`` (a trailing / does not matter), if any."""
        for entry in self.credentials:
            if entry.url.rstrip("/") == url.rstrip("/"):
                return entry
        return None


WORKER_TOKEN_VAR = "WEBTV_WORKER_TOKEN"
WORKER_USER_VAR = "WEBTV_WORKER_USER"
WORKER_PASSWORD_VAR = "WEBTV_WORKER_PASSWORD"


@dataclass(frozen=True)
class WorkerAuth:
    """What ``webtv worker`` asks of its callers, read from its environment only (a command
    line is visible to every user of the machine): a bearer token, or a Gradio login."""

    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """For the log: which kind, never the secret."""
        if self.token is not None:
            return f"bearer token ({WORKER_TOKEN_VAR})"
        return f"login as {self.user!r} ({WORKER_USER_VAR}, {WORKER_PASSWORD_VAR})"


def worker_auth(env: dict[str, str]) -> WorkerAuth | None:
    """The worker's auth from ``env``; None when none is set. Raises ConfigError when only one
    of user and password is set, when both kinds are, or when a value is empty."""
    token, user, password = (env.get(var) for var in (WORKER_TOKEN_VAR, WORKER_USER_VAR, WORKER_PASSWORD_VAR))
    if token is not None and (user is not None or password is not None):
        raise ConfigError(f"set {WORKER_TOKEN_VAR} or {WORKER_USER_VAR}/{WORKER_PASSWORD_VAR}, not both")
    if (user is None) != (password is None):
        missing = WORKER_PASSWORD_VAR if password is None else WORKER_USER_VAR
        raise ConfigError(f"{WORKER_USER_VAR} and {WORKER_PASSWORD_VAR} go together: {missing} is not set")
    empty = [var for var, value in ((WORKER_TOKEN_VAR, token), (WORKER_USER_VAR, user),
                                    (WORKER_PASSWORD_VAR, password)) if value == ""]
    if empty:
        raise ConfigError(f"{', '.join(empty)} is empty")
    if token is not None:
        return WorkerAuth(token=token)
    if user is not None:
        return WorkerAuth(user=user, password=password)
    return None


class StageSection(Section):
    """A render stage: which backend runs it, and that backend's keys. A stage's backend is
    chosen at start: its section applies at the next restart."""

    restart: ClassVar[bool] = True
    model_marker: ClassVar[str | None] = None
    """For a backend whose ``model`` may be a local folder: the file such a folder holds."""
    backend: str


class Sampling(Section):
    """What a diffusion model is asked: steps, guidance and what to avoid."""

    steps: int = Field(40, ge=1, le=500)
    guidance: float = Field(9.0, ge=0, le=50)
    negative_prompt: str = ""


class FreeUSection(Section):
    """FreeU (diffusers' ``enable_freeu``): the UNet's decoder rebalanced, backbone features
    scaled by ``b1``/``b2``, skip features by ``s1``/``s2``, in its first two up blocks. The
    defaults are diffusers' FreeU guide's for the text-to-video model Zeroscope comes from."""

    s1: float = Field(0.9, ge=0, le=10)
    s2: float = Field(0.2, ge=0, le=10)
    b1: float = Field(1.2, ge=0, le=10)
    b2: float = Field(1.4, ge=0, le=10)


class DiffusionPass(Sampling):
    """What the two Zeroscope passes share: sampling, the device, the memory switches and
    FreeU (``[video.freeu]`` / ``[upscale.freeu]``: on when the table is there)."""

    device: Device = "auto"
    cpu_offload: bool = False
    vae_slicing: bool = True
    forward_chunking: bool = False
    freeu: FreeUSection | None = None


# ------------------------------------------------------------------------ [video]: shot -> frames


class VideoBase(StageSection):
    frames_at_house_rate: ClassVar[bool] = False
    """True for a backend that draws at house.fps: a local interpolation stage is skipped."""
    clip_seconds: float = Field(3.0, gt=0.5, le=60)


class VideoDraw(Section):
    """The frames a text-to-video model draws (then interpolated to the house rate)."""

    width: int = Field(576, ge=8, le=2048, multiple_of=8)
    height: int = Field(320, ge=8, le=2048, multiple_of=8)
    frames: int = Field(24, ge=2, le=256)


class ProceduralVideoSection(VideoBase):
    """Moving imagery drawn with numpy, no model, at the house rate."""

    frames_at_house_rate: ClassVar[bool] = True
    backend: Literal["procedural"] = "procedural"
    render_delay_s: float = Field(
        0.0, ge=0, le=3600, description="at least this long per shot, standing in for a GPU in tests"
    )


class ZeroscopeSpeed(Section):
    """The Zeroscope passes' speed levers beside ``steps`` (see webtv/producer/zeroscope.py)."""

    scheduler: Literal["dpm++", "model"] = Field(
        "dpm++", description='"dpm++": DPM-Solver++ (DPMSolverMultistep); "model": the checkpoint\'s own (DDIM)')
    guidance_fraction: float = Field(
        1.0, ge=0, le=1, description="classifier-free guidance for this first fraction of the steps only")


class ZeroscopeVideoSection(VideoBase, VideoDraw, ZeroscopeSpeed, DiffusionPass):
    """diffusers' TextToVideoSDPipeline; ``model`` a hub id or a local folder."""

    model_marker: ClassVar[str | None] = "model_index.json"
    backend: Literal["zeroscope"] = "zeroscope"
    model: str = "cerspense/zeroscope_v2_576w"


class RemoteVideoSection(VideoBase, VideoDraw, Sampling):
    """``/video`` of a [workers] worker (which draws as its own config says), or, through
    ``adapter``, another Gradio app asked for these frames and sampling settings."""

    backend: Literal["remote"] = "remote"
    adapter: AdapterSection | None = None


LTX_SIZE_MULTIPLE = 32
"""LTX-Video's VAE turns 32x32 pixels into one latent (the pipeline refuses other sizes)."""
LTX_FRAME_GROUP = 8
"""... and 8 frames into one latent after the first: it draws 8k+1 frames."""
LTX_DISTILLED_TIMESTEPS = (1000, 993, 987, 981, 975, 909, 725, 0.03)
"""The schedule the distilled checkpoints (0.9.7, 0.9.8) are published with (diffusers' docs)."""


class LtxVideoSection(VideoBase, Sampling):
    """diffusers' LTXConditionPipeline, text only; ``model`` a hub id or a local folder. Draws
    ``frames`` at ``frame_rate`` (the rate the model is told), so frames air one for one when
    ``frame_rate`` is house.fps and ``frames`` is clip_seconds x frame_rate + 1."""

    model_marker: ClassVar[str | None] = "model_index.json"
    backend: Literal["ltx"] = "ltx"
    model: str = "Lightricks/LTX-Video-0.9.8-13B-distilled"
    width: int = Field(1024, ge=LTX_SIZE_MULTIPLE, le=4096)
    height: int = Field(576, ge=LTX_SIZE_MULTIPLE, le=4096)
    frames: int = Field(73, ge=LTX_FRAME_GROUP + 1, le=1025)
    frame_rate: int = Field(24, ge=1, le=60, description="frames per second the model is told it draws")
    steps: int = Field(8, ge=1, le=500)
    guidance: float = Field(1.0, ge=0, le=50, description="1.0 (no classifier-free guidance) for the distilled models")
    timesteps: list[float] = Field(list(LTX_DISTILLED_TIMESTEPS),
                                   description="a schedule of `steps` timesteps; [] for the pipeline's own")
    decode_timestep: float = Field(0.05, ge=0, le=1, description="the timestep-aware VAE's decode timestep (0.9.1 and later)")
    decode_noise_scale: float = Field(0.025, ge=0, le=1, description="noise mixed into the latents before that decode")
    device: Device = "auto"
    cpu_offload: bool = False
    vae_tiling: bool = False

    @field_validator("width", "height")
    @classmethod
    def _whole_latents(cls, value: int) -> int:
        if value % LTX_SIZE_MULTIPLE:
            below = value // LTX_SIZE_MULTIPLE * LTX_SIZE_MULTIPLE
            raise ValueError(f"LTX-Video draws widths and heights that are multiples of {LTX_SIZE_MULTIPLE} "
                             f"(its VAE turns {LTX_SIZE_MULTIPLE}x{LTX_SIZE_MULTIPLE} pixels into one latent): "
                             f"{value} is not; {below} or {below + LTX_SIZE_MULTIPLE} is")
        return value

    @field_validator("frames")
    @classmethod
    def _whole_latent_frames(cls, value: int) -> int:
        if (value - 1) % LTX_FRAME_GROUP:
            below = (value - 1) // LTX_FRAME_GROUP * LTX_FRAME_GROUP + 1
            raise ValueError(f"LTX-Video draws {LTX_FRAME_GROUP}k+1 frames (its VAE packs {LTX_FRAME_GROUP} frames "
                             f"into one latent after the first): {value} is not; {below} or "
                             f"{below + LTX_FRAME_GROUP} is")
        return value

    @model_validator(mode="after")
    def _schedule_has_steps(self) -> "LtxVideoSection":
        if self.timesteps and len(self.timesteps) != self.steps:
            raise ValueError(f"timesteps lists {len(self.timesteps)} timesteps but steps = {self.steps}: "
                             f"give steps = {len(self.timesteps)}, or timesteps = [] for the pipeline's schedule")
        if any(not 0 <= t <= 1000 for t in self.timesteps) or self.timesteps != sorted(self.timesteps, reverse=True):
            raise ValueError("timesteps must fall from at most 1000 to at least 0")
        return self


VIDEO_BACKENDS = (ProceduralVideoSection, ZeroscopeVideoSection, RemoteVideoSection, LtxVideoSection)
VideoSection = Annotated[Union[VIDEO_BACKENDS], Field(discriminator="backend")]


# ---------------------------------------------------------------------- [upscale]: frames -> larger


class NoUpscaleSection(StageSection):
    backend: Literal["none"] = "none"


class ZeroscopeUpscaleSection(StageSection, ZeroscopeSpeed, DiffusionPass):
    """VideoToVideoSDPipeline with the Zeroscope XL weights, same prompt."""

    model_marker: ClassVar[str | None] = "model_index.json"
    backend: Literal["zeroscope"] = "zeroscope"
    model: str = "cerspense/zeroscope_v2_XL"
    width: int = Field(1024, ge=8, le=4096, multiple_of=8)
    height: int = Field(576, ge=8, le=4096, multiple_of=8)
    strength: float = Field(0.6, gt=0, le=1)
    forward_chunking: bool = True  # the XL pass at 1024x576 is where memory runs out


class RemoteUpscaleSection(StageSection):
    """``/upscale`` of a [workers] worker."""

    backend: Literal["remote"] = "remote"


UPSCALE_BACKENDS = (NoUpscaleSection, ZeroscopeUpscaleSection, RemoteUpscaleSection)
UpscaleSection = Annotated[Union[UPSCALE_BACKENDS], Field(discriminator="backend")]


# ------------------------------------------------- [interpolation]: frames -> clip_seconds * house.fps


class FilmSection(StageSection):
    """The FILM network; ``model`` a FILM TorchScript .pt or .safetensors file. Without it
    ffmpeg's minterpolate is used (``webtv check`` says so)."""

    backend: Literal["film"] = "film"
    model: Path | None = None
    batch: int = Field(4, ge=1, le=256, description="frame pairs per FILM forward pass")
    tile: int | None = Field(None, ge=64, le=8192, multiple_of=64, description="split frames larger than this many pixels a side")
    device: Device = "auto"


class MinterpolateSection(StageSection):
    """ffmpeg's motion-compensated minterpolate filter, no model."""

    backend: Literal["minterpolate"] = "minterpolate"


class NoInterpolationSection(StageSection):
    """Nearest-frame retiming."""

    backend: Literal["none"] = "none"


class RemoteInterpolationSection(StageSection):
    """``/interpolate`` of a [workers] worker."""

    backend: Literal["remote"] = "remote"


INTERPOLATION_BACKENDS = (FilmSection, MinterpolateSection, NoInterpolationSection, RemoteInterpolationSection)
InterpolationSection = Annotated[Union[INTERPOLATION_BACKENDS], Field(discriminator="backend")]


# ---------------------------------------------------------------------- [audio]: sequence -> music


class SynthAudioSection(StageSection):
    """Music drawn with numpy, seeded by the sequence: no model."""

    backend: Literal["synth"] = "synth"


class MusicGenAudioSection(StageSection):
    """transformers' MusicgenForConditionalGeneration; ``model`` a hub id or a local folder."""

    model_marker: ClassVar[str | None] = "config.json"
    backend: Literal["musicgen"] = "musicgen"
    model: str = "facebook/musicgen-small"
    guidance: float = Field(3.0, ge=0, le=50)
    temperature: float = Field(1.0, gt=0, le=10)
    device: Device = "auto"


class RemoteAudioSection(StageSection):
    """``/music`` of a [workers] worker, or, through ``adapter``, another Gradio app."""

    backend: Literal["remote"] = "remote"
    adapter: AdapterSection | None = None
    guidance: float = Field(3.0, ge=0, le=50)


AUDIO_BACKENDS = (SynthAudioSection, MusicGenAudioSection, RemoteAudioSection)
AudioSection = Annotated[Union[AUDIO_BACKENDS], Field(discriminator="backend")]


# ---------------------------------------------------------------------- [voice]: narration line -> speech


VoiceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_+\-]{0,63}$",
                                 description="the backend's name for a voice: an espeak voice, a VITS speaker id")]


class VoiceBase(StageSection):
    """Story mode's narrator: how fast it speaks, how far the music ducks under it, and how much
    a line too long for its shot may be sped up (the recipe, ``webtv.producer.pipeline``)."""

    words_per_minute: int = Field(160, ge=60, le=400, description="speaking rate; the story's word budget follows it")
    duck_db: float = Field(12.0, ge=0, le=60, description="how far the music is lowered while the voice speaks")
    max_speedup: float = Field(1.15, ge=1.0, le=2.0, description="a line too long for its shot plays at most this fast")


class EspeakVoiceSection(VoiceBase):
    """Debian's espeak-ng (``espeak-ng`` on PATH): no model, no network."""

    backend: Literal["espeak"] = "espeak"
    voice: VoiceName = "en"


class VitsVoiceSection(VoiceBase):
    """transformers' VitsModel + AutoTokenizer (MMS-TTS); ``model`` a hub id or a local folder."""

    model_marker: ClassVar[str | None] = "config.json"
    backend: Literal["vits"] = "vits"
    model: str = "facebook/mms-tts-eng"
    speaker: int | None = Field(None, ge=0, description="speaker id of a multi-speaker model")
    device: Device = "auto"


class RemoteVoiceSection(VoiceBase):
    """``/voice`` of a [workers] worker (which speaks with its own [voice] backend)."""

    backend: Literal["remote"] = "remote"


class NoVoiceSection(VoiceBase):
    """No narrator: story sequences air with their music and the prompt caption, like a showreel."""

    backend: Literal["none"] = "none"


VOICE_BACKENDS = (EspeakVoiceSection, VitsVoiceSection, RemoteVoiceSection, NoVoiceSection)
VoiceSection = Annotated[Union[VOICE_BACKENDS], Field(discriminator="backend")]

Colour = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$", description='"#RRGGBB"')]


class SubtitlesSection(Section):
    """How a narration line is burned in (libass, at the house encode): sizes are fractions of
    the picture so one style reads the same at every house size."""

    restart: ClassVar[bool] = True
    size: float = Field(0.06, ge=0.02, le=0.2, description="font size, a fraction of the picture height")
    outline: float = Field(0.08, ge=0, le=0.5, description="outline width, a fraction of the font size")
    margin: float = Field(0.06, ge=0, le=0.25, description="safe margin on each side, a fraction of width and height")
    max_lines: int = Field(2, ge=1, le=4, description="lines on screen at once; a longer line is shown in turns")
    colour: Colour = "#FFFFFF"
    outline_colour: Colour = "#000000"


BACKENDS: dict[str, tuple[type[Section], ...]] = {
    "director": DIRECTOR_BACKENDS,
    "video": VIDEO_BACKENDS,
    "upscale": UPSCALE_BACKENDS,
    "interpolation": INTERPOLATION_BACKENDS,
    "audio": AUDIO_BACKENDS,
    "voice": VOICE_BACKENDS,
}
"""The sections whose keys depend on their ``backend``: section -> its backends' classes."""

STAGES = ("video", "upscale", "interpolation", "audio", "voice")


class QualitySection(Section):
    """What a take must be worth before it enters the library. Best-of-K
    (``webtv.producer.takes``): each shot's video is drawn ``takes`` times with different seeds, the scorer rates every take, the best goes on;
    a shot whose best take scores under ``min_score`` is dropped. The scorer is loaded once,
    at the first take it rates; which scorer, where it runs and its model apply at the next
    start, the rest live. The picture and sound checks (``webtv.producer.checks``) run ffmpeg's
    detectors on the encoded take and reject one mostly black, frozen or silent; they apply live."""

    restart_keys: ClassVar[tuple[str, ...]] = ("scorer", "model", "device", "score_on")
    takes: int = Field(1, ge=1, le=16, description="takes drawn per shot; the best-scored one airs")
    scorer: Literal["clip", "none"] = Field("none", description='"clip": mean prompt-frame CLIP similarity')
    model: str = Field("openai/clip-vit-base-patch32", description="CLIP hub id or local folder")
    min_score: float | None = Field(None, ge=-1, le=1, description="a shot whose best take scores under this is dropped")
    frames: int = Field(4, ge=1, le=64, description="frames sampled across a take for its score")
    device: Device = "auto"
    score_on: Literal["channel", "workers"] = Field("channel", description='"workers": each take is scored by a '
                                                    "[workers] worker's /score")

    # -- picture and sound checks (webtv.producer.checks): ffmpeg's detectors on the encoded take
    checks: bool = Field(True, description="reject takes that are mostly black, frozen or silent")
    max_black: float = Field(0.5, ge=0, le=1, description="a take black for more than this share of it is rejected")
    max_frozen: float = Field(0.5, ge=0, le=1, description="... frozen (one still picture) for more than this share")
    max_silent: float = Field(0.5, ge=0, le=1, description="... silent for more than this share (the whole mix)")
    black_pixel: float = Field(0.10, gt=0, lt=1, description="a pixel darker than this share of the luma range is black")
    freeze_noise_db: float = Field(-60.0, ge=-90, le=0, description="frames closer than this are the same picture")
    silence_db: float = Field(-50.0, ge=-90, le=0, description="sound quieter than this is silence")
    min_stretch_s: float = Field(0.5, gt=0, le=10, description="shorter black, frozen or silent stretches count for nothing")


class ProducerSection(Section):
    ahead: int = Field(6, ge=1, le=1000, description="fresh clips kept ready before the producer rests")


class ProgrammeSection(Section):
    restart_keys: ClassVar[tuple[str, ...]] = ("filler_seconds",)  # the filler card is made at start
    block_seconds: float = Field(10.0, ge=2, le=3600)
    filler_seconds: float = Field(4.0, ge=1, le=60)


class OutputSection(Section):
    restart_keys: ClassVar[tuple[str, ...]] = ("hls", "hls_list_size", "buffer_kb")
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
    restart: ClassVar[bool] = True
    library: Path = Path("library")
    playlists: Path = Path("playlists")
    hls: Path = Path("hls")


class HttpSection(Section):
    restart: ClassVar[bool] = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    token_env: str | None = Field(None, description="variable holding the bearer token for mutating calls")


Problem = tuple[tuple, str]
"""(where: the key's path, e.g. ("programme", "block_seconds"); what is wrong with it)."""


class Config(Section):
    """The whole channel file. Stage and director tables are unions on ``backend``: a table
    without ``backend`` runs the default one, and a key of another backend is an error."""

    channel: ChannelSection = ChannelSection()
    house: HouseSection = HouseSection()
    director: DirectorSection = OfflineDirectorSection()
    video: VideoSection = ProceduralVideoSection()
    upscale: UpscaleSection = NoUpscaleSection()
    interpolation: InterpolationSection = MinterpolateSection()
    audio: AudioSection = SynthAudioSection()
    voice: VoiceSection = EspeakVoiceSection()
    subtitles: SubtitlesSection = SubtitlesSection()
    workers: WorkersSection = WorkersSection()
    producer: ProducerSection = ProducerSection()
    programme: ProgrammeSection = ProgrammeSection()
    output: OutputSection = OutputSection()
    paths: PathsSection = PathsSection()
    http: HttpSection = HttpSection()
    moderation: ModerationSection = ModerationSection()
    library: LibrarySection = LibrarySection()
    story: StorySection = StorySection()
    quality: QualitySection = QualitySection()
    schedule: list[ScheduleEntry] = []
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _default_backends(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in BACKENDS:
                table = data.get(name)
                if isinstance(table, dict) and "backend" not in table:
                    data = {**data, name: {**table, "backend": cls.model_fields[name].default.backend}}
        return data

    @model_validator(mode="after")
    def _cross_section_rules(self) -> "Config":
        problems = cross_section_problems(self)
        if problems:
            text = "; ".join(f"{_dotted(loc)}: {message}" for loc, message in problems)
            raise PydanticCustomError("cross_section", "{text}", {"text": text, "problems": problems})
        return self

    @property
    def remote_stages(self) -> list[str]:
        """The stages whose backend is ``remote``, in render order."""
        return [name for name in STAGES if getattr(self, name).backend == "remote"]

    @property
    def needs_workers(self) -> bool:
        """Whether a stage (or the takes' scorer) runs on [workers]: the channel then builds the WorkerPool."""
        return bool(self.remote_stages) or self.scores_on_workers

    @property
    def scores_on_workers(self) -> bool:
        return self.quality.scorer == "clip" and self.quality.score_on == "workers"


def cross_section_problems(config: Config) -> list[Problem]:
    """The rules that tie one section to another."""
    problems: list[Problem] = []
    if config.programme.block_seconds < config.video.clip_seconds:
        problems.append((("programme", "block_seconds"),
                         f"must be at least video.clip_seconds ({config.video.clip_seconds:g}): a block holds whole clips"))
    if not config.workers.urls:
        problems += [((name, "backend"), '"remote" needs workers.urls: the workers that take its jobs')
                     for name in config.remote_stages]
    urls = {url.rstrip("/") for url in config.workers.urls}
    problems += [(("workers", "credentials", i, "url"), "not one of workers.urls")
                 for i, entry in enumerate(config.workers.credentials) if entry.url.rstrip("/") not in urls]
    problems += quality_problems(config.quality)
    if config.scores_on_workers and not config.workers.urls:
        problems.append((("quality", "score_on"), '"workers" needs workers.urls: the workers that score the takes'))
    if config.moderation.openai and config.director.backend != "openai":
        problems.append((("moderation", "openai"),
                         'asks the [director] server, so it needs [director] backend = "openai"'))
    return problems


def quality_problems(quality: QualitySection) -> list[Problem]:
    """Best-of-K needs a scorer to choose with."""
    if quality.scorer != "none":
        return []
    problems: list[Problem] = []
    if quality.takes > 1:
        problems.append((("quality", "takes"), 'more than one take needs a scorer to choose: set quality.scorer = "clip"'))
    if quality.min_score is not None:
        problems.append((("quality", "min_score"), 'needs a scorer: set quality.scorer = "clip"'))
    return problems


def worker_problems(config: Config) -> list[Problem]:
    """What makes ``config`` unfit for ``webtv worker``: a worker renders itself."""
    return [((name, "backend"), '"remote" cannot be used by a worker, which renders the stage itself')
            for name in config.remote_stages]


def check_worker(config: Config) -> None:
    """Raise ConfigError, naming the key and line, when ``config`` cannot serve as a worker."""
    problems = worker_problems(config)
    if problems:
        raise ConfigError(_problems_in_source(problems, config))


TWITCH_INGEST = re.compile(r"^rtmps?://(?:[^/@]*@)?[^/:@]*(?:\btwitch\.tv|\blive-video\.net)(?::\d+)?/", re.IGNORECASE)
TWITCH_MAX_VIDEO_KBPS = 6000
TWITCH_KEYFRAME_S = 2.0
TWITCH_MAX_AUDIO_KBPS = 160


def ingest_problems(config: Config) -> list[Problem]:
    """House settings an ingest server of ``output.rtmp_urls`` rejects or degrades (the stream
    copies the house format): for Twitch, video over 6000 kb/s, a keyframe interval other
    than 2 s, audio over 160 kb/s. Warnings: the channel airs anyway."""
    twitch = next((url for url in config.output.rtmp_urls if TWITCH_INGEST.match(url)), None)
    if twitch is None:
        return []
    house, to = config.house, f" ({redact_url(twitch)})"
    problems: list[Problem] = []
    if house.video_kbps > TWITCH_MAX_VIDEO_KBPS:
        problems.append((("house", "video_kbps"),
                         f"{house.video_kbps} kb/s is over the {TWITCH_MAX_VIDEO_KBPS} kb/s Twitch takes{to}"))
    keyframe_s = house.keyframe_s
    if abs(keyframe_s - TWITCH_KEYFRAME_S) > 1e-6:
        problems.append((("house", "gop_seconds"),
                         f"a keyframe every {keyframe_s:g} s; Twitch wants one every {TWITCH_KEYFRAME_S:g} s{to}"))
    if house.audio_kbps > TWITCH_MAX_AUDIO_KBPS:
        problems.append((("house", "audio_kbps"),
                         f"{house.audio_kbps} kb/s is over the {TWITCH_MAX_AUDIO_KBPS} kb/s Twitch takes{to}"))
    return problems


def config_warnings(config: Config) -> list[str]:
    """What ``webtv check`` and ``webtv run`` warn about, one line each, naming file, line and key."""
    problems = ingest_problems(config)
    return _problems_in_source(problems, config).splitlines() if problems else []


def _problems_in_source(problems: list[Problem], config: Config) -> str:
    """``problems`` worded with the file and line of ``config``'s source, where it has one."""
    source = config.source
    text = source.read_text(encoding="utf-8") if source is not None and source.is_file() else ""
    return located(problems, source or Path("(config)"), text)


def file_problems(config: Config) -> list[Problem]:
    """Files and model folders the config names that are not there (checked at load, after
    relative paths were resolved, so that a typo fails ``webtv check``, not the first render)."""
    problems: list[Problem] = []
    files = [(("house", "font"), config.house.font)]
    if isinstance(config.director, OpenAIDirectorSection):
        files.append((("director", "system_prompt"), config.director.system_prompt))
    if isinstance(config.interpolation, FilmSection):
        files.append((("interpolation", "model"), config.interpolation.model))
    problems += [(loc, f"file not found: {file}") for loc, file in files if file is not None and not file.is_file()]
    prompt = config.director.system_prompt if isinstance(config.director, OpenAIDirectorSection) else None
    if prompt is not None and (problem := text_file_problem(prompt)):
        problems.append((("director", "system_prompt"), problem))  # read by the director as it is made
    for name in STAGES:
        section = getattr(config, name)
        marker = section.model_marker
        problem = marker and local_model_problem(section.model, marker)
        if problem:
            problems.append(((name, "model"), f"{section.model}: {problem}"))
    if config.quality.scorer == "clip" and (problem := local_model_problem(config.quality.model, "config.json")):
        problems.append((("quality", "model"), f"{config.quality.model}: {problem}"))
    return problems


def text_file_problem(path: Path) -> str | None:
    """Why the file at ``path`` (there or not: that is checked apart) is not UTF-8 text, or None."""
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
    except OSError:
        pass
    return None


def local_model_problem(model: str, marker: str) -> str | None:
    """Why ``model`` cannot load as a local folder, or None: a hub id ("owner/name"), or a
    folder holding ``marker`` (the file a save_pretrained folder of its kind holds). A model
    is local when the path exists, starts with ., /, ~ or \\, or has more than one /."""
    if not is_local_model(model):
        return None
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return "no such folder"
    if not (folder / marker).is_file():
        return f"no {marker} in the folder (expected a folder written by save_pretrained, or a hub snapshot)"
    return None


def is_local_model(model: str) -> bool:
    return (Path(model).expanduser().exists() or model.startswith((".", "/", "~", "\\"))
            or model.count("/") > 1 or "\\" in model)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_config(path: Path | str = DEFAULT_CONFIG, env: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a channel file; raise ConfigError naming what is wrong."""
    path = Path(path)
    env = dict(os.environ) if env is None else env
    return parse_config(read_config_text(path), path, env)


def read_config_text(path: Path) -> str:
    """A config file's text; ConfigError when it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None


def parse_config(text: str, path: Path, env: dict[str, str]) -> Config:
    return validate_config(parse_toml(text, path, env), text, path, env)


def parse_toml(text: str, path: Path, env: dict[str, str]) -> dict[str, Any]:
    """The file's tables as a dict, ``${VAR}`` expanded; not validated."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return _expand(raw, (), env, path, text)


def validate_section(model: type[S], raw: dict[str, Any], text: str, path: Path) -> S:
    """``raw`` validated as ``model``; a ConfigError naming each bad key (and its line in ``text``)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, text)) from None


def validate_config(raw: dict[str, Any], text: str, path: Path, env: dict[str, str]) -> Config:
    """A channel file's tables (``parse_toml``) validated, paths resolved against its folder."""
    # The path as named, not resolved: a symlinked file is followed anew at each read and write.
    config = validate_section(Config, {**raw, "source": Path(os.path.abspath(path))}, text, path)
    config = _resolve_paths(config, path.resolve().parent)
    problems = file_problems(config) + env_problems(config, env)
    if problems:
        raise ConfigError(located(problems, path, text))
    return config


def env_problems(config: Config, env: dict[str, str]) -> list[Problem]:
    """Environment variables that [workers] credentials name and that are not set."""
    return [(("workers", "credentials", i, *key.split(".", 1)), f"environment variable {var} is not set")
            for i, entry in enumerate(config.workers.credentials)
            for key, var in entry.variables().items() if var not in env]


def _resolve_paths(config: Config, base: Path) -> Config:
    """Paths and local model folders made absolute against ``base``, the file's folder."""

    def resolve(p: Path) -> Path:
        return base / p.expanduser()

    update: dict[str, Section] = {
        "paths": config.paths.model_copy(update={k: resolve(v) for k, v in config.paths if isinstance(v, Path)})
    }
    for name in ("house", "quality", *BACKENDS):
        section = getattr(config, name)
        fields = type(section).model_fields
        changes: dict[str, Any] = {}
        for key in ("font", "system_prompt", "model"):
            value = getattr(section, key) if key in fields else None
            if isinstance(value, Path):
                changes[key] = resolve(value)
            elif isinstance(value, str):
                changes[key] = resolve_model(value, base)
        if changes:
            update[name] = section.model_copy(update=changes)
    return config.model_copy(update=update)


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
        raw_loc = tuple(p for p in err["loc"] if p != "source")
        loc = _without_tag(raw_loc)
        if err["type"] == "cross_section":
            lines.append(located(err["ctx"]["problems"], path, text))
            continue
        if err["type"] == "at_key":  # a rule of a table about one of its keys: point at that key
            key = err["ctx"]["key"]
            loc += tuple(key) if isinstance(key, (tuple, list)) else (key,)  # a key deeper in the table: its path
            lines.append(_where(path, text, loc) + f"{_dotted(loc)}: {err['ctx']['message']}")
            continue
        if err["type"] == "union_tag_invalid":
            loc += ("backend",)
            message = f"{err['ctx']['tag']!r} is not a {loc[0]} backend; one of {err['ctx']['expected_tags']}"
        elif err["type"] == "extra_forbidden":
            message = _misplaced(loc, raw_loc[1]) or "unknown key (check its spelling)"
        else:
            message = err["msg"].removeprefix("Value error, ")
            if "input" in err and err["type"] not in ("missing", "value_error") and not isinstance(err["input"], dict):
                message += f" (got {_shown(loc, err['input'])})"
        lines.append(_where(path, text, loc) + f"{_dotted(loc) or '(top level)'}: {message}")
    return "\n".join(lines)


def _without_tag(loc: tuple) -> tuple:
    """pydantic puts the backend of a union section into the error's path
    (video.zeroscope.steps); the file has no such table."""
    if len(loc) > 1 and loc[0] in BACKENDS and loc[1] in backend_names(loc[0]):
        return loc[:1] + loc[2:]
    return loc


def backend_names(section: str) -> list[str]:
    return [cls.model_fields["backend"].default for cls in BACKENDS[section]]


def backend_class(section: str, backend: str) -> type[Section]:
    """The config class of ``backend`` for ``section`` ("video", "zeroscope": ZeroscopeVideoSection)."""
    for name, cls in zip(backend_names(section), BACKENDS[section]):
        if name == backend:
            return cls
    raise ValueError(f"{backend!r} is not a {section} backend; one of {', '.join(map(repr, backend_names(section)))}")


def with_changes(config: Config, changes: dict[str, dict[str, Any]], origin: str) -> Config:
    """``config`` with the keys in ``changes`` (section -> key -> value) set, validated like the
    file (cross-section rules too). Setting ``backend`` drops the keys the old backend had and
    the new one has not. ``origin`` says where the changes came from, for errors."""
    raw = config.model_dump()
    for name, values in changes.items():
        section = getattr(config, name)
        if name in BACKENDS and values.get("backend", section.backend) != section.backend:
            fields = backend_class(name, values["backend"]).model_fields
            raw[name] = {key: value for key, value in raw[name].items() if key in fields}
        raw[name] = {**raw[name], **values}
    try:
        return Config.model_validate({**raw, "source": config.source})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, Path(origin), "")) from None


def _misplaced(loc: tuple, backend: Any) -> str | None:
    """For a key of a union section that belongs to its other backends: which ones."""
    if len(loc) != 2 or loc[0] not in BACKENDS:
        return None
    owners = [name for name, cls in zip(backend_names(loc[0]), BACKENDS[loc[0]]) if loc[1] in cls.model_fields]
    if not owners:
        return None
    return f'belongs to backend {" or ".join(f"{o!r}" for o in owners)}, not {backend!r}'.replace("'", '"')


def located(problems: list[Problem], path: Path, text: str) -> str:
    """``problems`` worded for the operator, each with its file and line."""
    return "\n".join(_where(path, text, loc) + f"{_dotted(loc)}: {message}" for loc, message in problems)


def _shown(loc: tuple, value: Any) -> str:
    if loc[:2] == ("output", "rtmp_urls"):
        return repr(redact_url(str(value)))
    return repr(value)


def _where(path: Path, text: str, loc: tuple) -> str:
    line = find_line(text, list(loc))
    return f"{path}:{line}: " if line else f"{path}: "


def find_line(text: str, keys: list[str | int]) -> int | None:
    """Line number of the deepest key of ``keys`` found in the TOML text, or of its table.
    An int in ``keys`` counts the ``[[array]]`` tables of that name (0 is the first)."""
    if not keys:
        return None
    table: list[str | int] = []
    seen: dict[tuple, int] = {}
    best = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^(\[\[?)\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            table = [part.strip().strip('"') for part in header.group(2).split(".")]
            if header.group(1) == "[[":
                count = seen[tuple(table)] = seen.get(tuple(table), -1) + 1
                table.append(count)
            if table == keys:
                return number
            if best is None and table == keys[:-1]:
                best = number  # the key itself is not written: its table
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
            f"loudness:   {h.loudness_lufs:g} LUFS integrated (EBU R128), true peak <= {h.true_peak_db:g} dBTP",
            f"takes:      {_takes(config.quality)}",
            f"checks:     {_checks(config.quality)}",
            f"director:   {config.director.backend} ({config.director.shots_per_sequence} shots a sequence)",
            f"story:      {_story(config.story)}",
            f"video:      {stage_summary(config.video)}{_drawn(config.video)}, {config.video.clip_seconds:g} s clips",
            f"upscale:    {stage_summary(config.upscale)}",
            f"interpolate: {_interpolation(config)}",
            f"audio:      {stage_summary(config.audio)}",
            f"voice:      {stage_summary(config.voice)}, {config.voice.words_per_minute} words a minute (story mode)",
            f"workers:    {', '.join(config.workers.urls) or 'none'}",
            f"programme:  blocks of {config.programme.block_seconds:g} s",
            f"outputs:    {', '.join(outputs) or 'none'}",
            f"library:    {p.library}",
            f"playlists:  {p.playlists}",
            f"hls:        {p.hls}",
            f"http:       http://{config.http.host}:{config.http.port}/",
        ]
    )


def _takes(quality: QualitySection) -> str:
    if quality.scorer == "none":
        return f"{quality.takes}, not scored"
    floor = f", a shot under {quality.min_score:g} is dropped" if quality.min_score is not None else ""
    return (f"best of {quality.takes}, scored by CLIP ({quality.model}) on the {quality.score_on}"
            f" over {quality.frames} frames{floor}")


def _checks(quality: QualitySection) -> str:
    if not quality.checks:
        return "off"
    return (f"a take is rejected when black over {quality.max_black:.0%}, frozen over {quality.max_frozen:.0%}"
            f" or silent over {quality.max_silent:.0%} of it")


def _story(story: StorySection) -> str:
    if not story.enabled:
        return "off (showreel)"
    cast = ", ".join(c.name for c in story.cast) or "the director's"
    return (f"episodes, cast: {cast}; shots of {story.min_shot_seconds:g}-{story.max_shot_seconds:g} s,"
            f" summary up to {story.summary_chars} characters")


def stage_summary(section: StageSection) -> str:
    """A stage in a few words: its backend, and its model where it has one."""
    return f"{section.backend} ({section.model})" if section.model_marker else section.backend


def _drawn(section: StageSection) -> str:
    """For a video model that is told its frame rate (ltx): what it draws, and for how long."""
    if not isinstance(section, LtxVideoSection):
        return ""
    return (f", {section.width}x{section.height}, {section.frames} frames at {section.frame_rate} fps "
            f"({section.frames / section.frame_rate:.2f} s)")


def _interpolation(config: Config) -> str:
    section = config.interpolation
    if isinstance(section, FilmSection):
        line = f"film ({section.model})" if section.model else \
            "film without weights (interpolation.model unset): falls back to minterpolate"
    else:
        line = section.backend
    if config.video.frames_at_house_rate and section.backend != "remote":
        line += f" (not run: {config.video.backend} frames are drawn at the house rate)"
    return line


# ------------------------------------------------------------------- edits while the channel airs


def pending_restart(old: Config, new: Config) -> list[str]:
    """What changed from ``old`` to ``new`` that applies only at the next start: section
    names ("video") or, for a section that applies live, its restart keys ("output.hls")."""
    pending = []
    for name in Config.model_fields:
        before, after = getattr(old, name), getattr(new, name)
        if name == "source" or before == after or not isinstance(after, Section):
            continue
        if after.restart:
            pending.append(name)
        else:
            pending += [f"{name}.{key}" for key in after.restart_keys if getattr(before, key) != getattr(after, key)]
    return pending


def live_config(old: Config, new: Config) -> Config:
    """``new`` as a running channel can apply it: what needs a restart is kept from ``old``."""
    update: dict[str, Any] = {}
    for name in Config.model_fields:
        before, after = getattr(old, name), getattr(new, name)
        if name == "source" or before == after or not isinstance(after, Section):
            continue
        if after.restart:
            update[name] = before
        elif after.restart_keys:
            update[name] = after.model_copy(update={key: getattr(before, key) for key in after.restart_keys})
    return new.model_copy(update=update)
