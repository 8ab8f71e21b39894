"""The ``webtv`` command: run the channel, check a config, render one clip, interpolate a
video, preview prompts."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from webtv.config import (DEFAULT_CONFIG, Config, ConfigError, check_worker, config_warnings, load_config, summary,
                          worker_auth)
from webtv.prompt_weights import weight_problem
from webtv.text import text_problem

EXIT_CONFIG = 2

log = logging.getLogger("webtv")


def main(argv: list[str] | None = None) -> int:
    from webtv import __version__

    parser = argparse.ArgumentParser(prog="webtv", description="A generative TV channel that airs 24/7.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"webtv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="air the channel until SIGTERM/SIGINT")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                     help="channel file (default: channel.toml), or a folder of channel files: one channel each")

    check = commands.add_parser("check", help="validate a channel file (or a folder of them) and print a summary")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG)

    render = commands.add_parser("render", help="render one house-format clip through the configured backends")
    render.add_argument("prompt", type=shot_prompt)
    render.add_argument("--out", type=Path, required=True, help="where to write the clip (.mp4)")
    render.add_argument("--config", type=Path, default=None,
                        help="channel file (default: channel.toml here, else the built-in defaults)")
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--narration", type=printable, default="", metavar="TEXT",
                        help="a line the [voice] narrator speaks over the clip, burned in as subtitles; "
                             "the clip lasts as long as the line (within the [story] shot bounds)")
    render.add_argument("--remote", metavar="URL", help="ask the webtv worker at URL for the whole clip (/clip)")
    models = render.add_argument_group("models (each flag overrides the config and picks that model's backend)")
    models.add_argument("--video-model", metavar="PATH_OR_ID",
                        help="Zeroscope 576w (or LTX-Video where the config's [video] backend is \"ltx\"): "
                             "a hub id or a local folder")
    models.add_argument("--upscale-model", metavar="PATH_OR_ID", help="Zeroscope XL: a hub id or a local folder")
    models.add_argument("--music-model", metavar="PATH_OR_ID", help="MusicGen: a hub id or a local folder")
    models.add_argument("--film-model", type=Path, metavar="FILE", help="FILM weights (.pt TorchScript or .safetensors)")
    models.add_argument("--steps", type=int, metavar="N", help="denoising steps of the video and upscale passes")
    models.add_argument("--frames", type=int, metavar="N", help="frames the video model draws")
    models.add_argument("--size", metavar="WxH", help="size the video model draws at, e.g. 576x320")

    worker = commands.add_parser(
        "worker", help="serve the configured render stages as a Gradio app (a remote GPU worker)",
        epilog="auth from the environment, never the command line: WEBTV_WORKER_TOKEN (callers send "
               "Authorization: Bearer), or WEBTV_WORKER_USER and WEBTV_WORKER_PASSWORD (a Gradio login)")
    worker.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    worker.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    worker.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860)")

    interpolate = commands.add_parser("interpolate", help="add frames to a video file with FILM (or ffmpeg's minterpolate)")
    interpolate.add_argument("src", type=Path, metavar="IN")
    interpolate.add_argument("dst", type=Path, metavar="OUT")
    interpolate.add_argument("--factor", type=int, choices=(2, 4, 8), default=2,
                             help="frames out per frame in; the frame rate grows by as much")
    interpolate.add_argument("--film-model", type=Path, metavar="FILE",
                             help="FILM weights; without them ffmpeg's minterpolate does the work")

    prompts = commands.add_parser("prompts", help="print shot prompts the configured director writes for a theme")
    prompts.add_argument("theme", type=printable)
    prompts.add_argument("-n", type=int, default=None, metavar="N",
                         help="how many prompts (default: director.shots_per_sequence)")
    prompts.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    prompts.add_argument("--json", action="store_true", help="a JSON list of shots instead of one prompt a line")

    story = commands.add_parser("story", help="print the next episode the configured director writes for a theme "
                                              "(reads the library's series, does not advance it)")
    story.add_argument("theme", type=printable)
    story.add_argument("-n", type=int, default=None, metavar="SHOTS",
                       help="shots in the episode (default: director.shots_per_sequence)")
    story.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    story.add_argument("--json", action="store_true", help="the episode as a JSON object")

    args = parser.parse_args(argv)
    if args.command == "run":
        # A SIGHUP before the daemon's handler is in (the config is still being read) waits,
        # held by the kernel, instead of ending the process; webtv.daemon lets it through.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    from webtv.log import setup_logging

    setup_logging(args.verbose)
    if args.command in ("run", "check") and args.config.is_dir():
        return _folder(args.command, args.config)
    if args.command == "interpolate":
        return _interpolate(args.src, args.dst, args.factor, args.film_model)
    try:
        if args.command == "render" and args.config is None and not DEFAULT_CONFIG.is_file():
            # one clip needs no channel: anywhere, `webtv render` works on the built-in defaults
            print(f"webtv: no {DEFAULT_CONFIG} here: rendering with the built-in defaults "
                  "(--config FILE to use one)", file=sys.stderr)
            config = Config()
        else:
            config = load_config(args.config or DEFAULT_CONFIG)
        if args.command == "render":
            config = with_model_flags(config, args)
        if args.command == "worker":
            check_worker(config)
            auth = worker_auth(dict(os.environ))
    except ConfigError as exc:
        return _config_error(exc)
    if args.command == "check":
        print(summary(config))
        for line in config_warnings(config):
            print(f"webtv: warning: {line}", file=sys.stderr)
        return 0
    if args.command == "render" and args.remote:
        return _render_remote(config, args.remote, args.prompt, args.out, args.seed, args.narration)
    if args.command == "render":
        return _render(config, args.prompt, args.out, args.seed, args.narration)
    if args.command == "worker":
        from webtv.worker.app import serve

        return serve(config, args.host, args.port, auth)
    if args.command == "prompts":
        return _prompts(config, args.theme, args.n, args.json)
    if args.command == "story":
        return _story(config, args.theme, args.n, args.json)
    return _run(config)


def printable(text: str) -> str:
    """An argument that must be one line of printable text (a theme, a prompt): argparse
    refuses anything else with exit code 2 and the reason."""
    problem = text_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def shot_prompt(text: str) -> str:
    """A shot prompt: printable, and its weights, ``(red fox:1.3)``, well formed."""
    problem = weight_problem(printable(text))
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _config_error(exc: ConfigError) -> int:
    print(f"webtv: config error:\n{exc}", file=sys.stderr)
    return EXIT_CONFIG


def _folder(command: str, folder: Path) -> int:
    """``run`` or ``check`` a folder of channel files (``webtv.folder``). ``check``: exit 2 when
    any file is invalid; ``run``: exit 2 when daemon.toml is, or no channel file is valid."""
    from webtv.folder import load_folder

    try:
        read = load_folder(folder)
    except ConfigError as exc:
        return _config_error(exc)
    if command == "check" or not read.channels:
        for path, error in read.refused.items():
            print(f"webtv: config error: {path} is refused (nothing airs for it):\n{error}", file=sys.stderr)
    if command == "check":
        from webtv.folder import folder_summary
        from webtv.producer.shared import sharing

        print(folder_summary(folder, read, sharing({c.channel.name: c for c in read.channels.values()})))
        for path, config in read.channels.items():
            for line in config_warnings(config):
                print(f"webtv: warning: {path.name}: {line}", file=sys.stderr)
        return EXIT_CONFIG if read.refused else 0
    if not read.channels:
        print(f"webtv: config error: no valid channel file in {folder} (every *.toml but daemon.toml is one)",
              file=sys.stderr)
        return EXIT_CONFIG
    from webtv.daemon import run_folder

    for path, config in read.channels.items():
        for line in config_warnings(config):
            log.warning("%s: %s", path.name, line)
    return run_folder(folder, read)


def _run(config: Config) -> int:
    from webtv.daemon import run

    for line in config_warnings(config):
        log.warning("%s", line)
    try:
        return run(config)
    except ConfigError as exc:  # found while starting: the same words and exit code as `webtv check`
        return _config_error(exc)


def with_model_flags(config: Config, args: argparse.Namespace) -> Config:
    """``config`` with the render command's model flags applied, validated like the file. A
    model flag picks its backend (--video-model: zeroscope, or the file's video model backend
    such as ltx), dropping the keys of the one the file named; --steps goes to the upscale
    pass only when it has one."""
    from webtv.config import resolve_model, with_changes

    changes: dict[str, dict] = {"video": {}, "upscale": {}, "interpolation": {}, "audio": {}}
    here = Path.cwd()  # a folder given on the command line is relative to where the command runs
    if args.video_model:
        backend = config.video.backend if config.video.model_marker else "zeroscope"
        changes["video"].update(backend=backend, model=resolve_model(args.video_model, here))
    if args.upscale_model:
        changes["upscale"].update(backend="zeroscope", model=resolve_model(args.upscale_model, here))
    if args.music_model:
        changes["audio"].update(backend="musicgen", model=resolve_model(args.music_model, here))
    if args.film_model:
        changes["interpolation"].update(backend="film", model=args.film_model.resolve())
    if args.steps is not None:
        changes["video"]["steps"] = args.steps
        listed = getattr(config.video, "timesteps", None)
        if listed and len(listed) != args.steps:
            changes["video"]["timesteps"] = []  # ltx: the pipeline's own schedule of that many steps
        if changes["upscale"].get("backend", config.upscale.backend) == "zeroscope":
            changes["upscale"]["steps"] = args.steps
    if args.frames is not None:
        changes["video"]["frames"] = args.frames
    if args.size:
        width, _, height = args.size.lower().partition("x")
        if not (width.isdigit() and height.isdigit()):
            raise ConfigError(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 576x320")
        changes["video"].update(width=int(width), height=int(height))
    changes = {name: values for name, values in changes.items() if values}
    return with_changes(config, changes, "command-line flags") if changes else config


def _render(config: Config, prompt: str, out: Path, seed: int, narration: str = "") -> int:
    from webtv.director import Shot
    from webtv.producer import ClipPipeline, make_stages
    from webtv.producer.remote import WorkerPool

    shot = Shot(prompt=prompt, seed=seed, theme=config.channel.theme, sequence_id="render", narration=narration)
    house = config.house
    started = time.monotonic()
    progress = _ProgressBar()
    tmp = out.with_name(f".{out.name}.partial{out.suffix}")
    workers = WorkerPool(config.workers) if config.needs_workers else None
    try:
        pipeline = ClipPipeline.from_config(config, make_stages(config, workers))
        out.parent.mkdir(parents=True, exist_ok=True)
        made = pipeline.single(shot, tmp, progress)
        tmp.replace(out)
    except Exception as exc:
        progress.done()
        tmp.unlink(missing_ok=True)
        print(f"webtv: render failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if workers is not None:
            workers.close()
    progress.done()
    stages_line = ", ".join(f"{stage} {spent:.1f} s" for stage, spent in made.timings.items())
    print(f"{out}: {made.duration:.2f} s, {house.width}x{house.height}@{house.fps}, "
          f"made in {time.monotonic() - started:.1f} s ({stages_line})")
    return 0


def _render_remote(config: Config, url: str, prompt: str, out: Path, seed: int, narration: str = "") -> int:
    from webtv.producer.remote import render_remote_clip

    started = time.monotonic()
    try:
        render_remote_clip(url, prompt, seed, out, config.workers.timeout_s, seconds=config.video.clip_seconds,
                           house=config.house, theme=config.channel.theme,
                           credentials=config.workers.credentials_for(url), narration=narration)
    except Exception as exc:
        print(f"webtv: remote render failed: {exc}", file=sys.stderr)
        return 1
    house = config.house
    print(f"{out}: {config.video.clip_seconds:.2f} s, {house.width}x{house.height}@{house.fps}, "
          f"made by {url} in {time.monotonic() - started:.1f} s")
    return 0


def _interpolate(src: Path, dst: Path, factor: int, film_model: Path | None) -> int:
    from webtv.media import MediaError
    from webtv.producer.interpolate import interpolate_file

    try:
        interpolate_file(src, dst, factor, film_model)
    except (MediaError, OSError, RuntimeError, ValueError) as exc:
        print(f"webtv: interpolate failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _prompts(config: Config, theme: str, n: int | None, as_json: bool) -> int:
    """Write sequences as the daemon does (director, moderation, offline fallback, seeds) until
    n shots, as on an empty library."""
    import json

    from webtv.producer.sequences import SequenceSource

    per_sequence = config.director.shots_per_sequence
    wanted = per_sequence if n is None else n
    if wanted < 1:
        print("webtv: -n must be at least 1", file=sys.stderr)
        return EXIT_CONFIG

    async def write() -> tuple[list[dict], list[str], str | None]:
        source = SequenceSource.from_config(config.director, config.moderation, library=None)
        rows: list[dict] = []
        fallbacks: list[str] = []
        try:
            rule = await source.theme_rule(theme)
            if rule is not None:
                return rows, fallbacks, rule
            for _ in range(4 * -(-wanted // per_sequence) + 4):
                if len(rows) >= wanted:
                    break
                sequence = await source.next(theme)
                if source.director.state.fallback_active:
                    fallbacks.append(source.director.state.last_error or "the server failed")
                for shot in sequence.shots if sequence else ():
                    rows.append({
                        "prompt": shot.prompt, "seed": shot.seed, "tags": list(shot.tags),
                        "sequence_id": shot.sequence_id, "index": shot.index,
                        "music_prompt": sequence.music_prompt,
                    })
        finally:
            await source.aclose()
        return rows[:wanted], fallbacks, None

    rows, fallbacks, theme_rule = asyncio.run(write())
    if theme_rule is not None:
        print(f"webtv: theme blocked by moderation rule {theme_rule}; no prompts", file=sys.stderr)
        return 1
    if fallbacks:
        print(f"webtv: warning: the {config.director.backend} director failed, the offline writer wrote "
              f"{len(fallbacks)} sequence(s) instead: {fallbacks[-1]}", file=sys.stderr)
    if len(rows) < wanted:
        print(f"webtv: warning: moderation left {len(rows)} of {wanted} prompts", file=sys.stderr)
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        for row in rows:
            print(row["prompt"])
    return 0


def _story(config: Config, theme: str, shots: int | None, as_json: bool) -> int:
    """The next episode of ``theme``'s series as the daemon would write it (director,
    moderation, offline fallback), from the series in the library, which is only read."""
    import json
    from dataclasses import asdict

    from webtv.library.series import peek_series
    from webtv.producer.sequences import SequenceSource, words_per_minute

    director = config.director.model_copy(update={"shots_per_sequence": shots}) if shots else config.director
    if director.shots_per_sequence < 1:
        print("webtv: -n must be at least 1", file=sys.stderr)
        return EXIT_CONFIG

    async def write():
        source = SequenceSource.from_config(director, config.moderation, None,
                                            config.story.model_copy(update={"enabled": True}), words_per_minute(config))
        source.memory[theme] = peek_series(config.paths.library, theme)
        try:
            return await source.next(theme), source.director.state
        finally:
            await source.aclose()

    sequence, state = asyncio.run(write())
    if state.fallback_active:
        print(f"webtv: warning: the {director.backend} director failed, the offline writer wrote this episode: "
              f"{state.last_error or 'the server failed'}", file=sys.stderr)
    if sequence is None or sequence.episode is None:
        print("webtv: moderation blocked the episode (or the theme); nothing to print", file=sys.stderr)
        return 1
    episode = sequence.episode
    if as_json:
        print(json.dumps({
            "theme": sequence.theme, "episode": episode.number, "title": episode.title, "summary": episode.summary,
            "music_prompt": sequence.music_prompt, "cast": [asdict(c) for c in sequence.cast],
            "shots": [{"prompt": s.prompt, "narration": s.narration, "characters": list(s.characters), "seed": s.seed}
                      for s in sequence.shots],
        }, indent=2, ensure_ascii=False))
        return 0
    print(f"Episode {episode.number}: {episode.title}\n")
    for shot in sequence.shots:
        print(f"{shot.index + 1}. {shot.narration}\n   [{', '.join(shot.characters) or 'nobody'}] {shot.prompt}")
    print(f"\nStory so far: {episode.summary}")
    return 0


class _ProgressBar:
    """One line on stderr per stage, redrawn in place on a terminal."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.tty = sys.stderr.isatty()

    def __call__(self, stage: str, fraction: float) -> None:
        if stage != self.stage and self.stage is not None:
            sys.stderr.write("\n" if self.tty else "")
        self.stage = stage
        filled = int(fraction * 30)
        line = f"{stage:<8} [{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}%"
        if self.tty:
            sys.stderr.write("\r" + line)
        elif fraction >= 1.0:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty and self.stage is not None:
            sys.stderr.write("\n")
