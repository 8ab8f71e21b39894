"""Remote render workers: the stages run on other machines' GPUs, called with gradio_client.

    pool.py      WorkerPool: one client per worker, least-busy routing, retries, health
    wire.py      frames, music, shots and sequences as files and JSON between the two sides
    backends.py  RemoteVideo, RemoteUpscaler, RemoteInterpolator, RemoteAudio, RemoteVoice (the stage
                 protocols over the pool), RemoteScorer (/score) and render_remote_clip (a worker's /clip)

A worker is ``webtv worker`` (``webtv/worker/app.py``) or any Gradio app reached through an
adapter (a public Zeroscope or MusicGen Space).
"""

from webtv.producer.remote.backends import (
    RemoteAudio,
    RemoteInterpolator,
    RemoteScorer,
    RemoteUpscaler,
    RemoteVideo,
    RemoteVoice,
    adapter_args,
    render_remote_clip,
)
from webtv.producer.remote.pool import JobFailed, WorkerPool, WorkersDown
from webtv.producer.remote.wire import (
    read_audio,
    read_frames,
    sequence_from_json,
    sequence_json,
    shot_from_json,
    shot_json,
    write_audio,
    write_frames,
)

__all__ = [
    "JobFailed",
    "RemoteAudio",
    "RemoteInterpolator",
    "RemoteScorer",
    "RemoteUpscaler",
    "RemoteVideo",
    "RemoteVoice",
    "WorkerPool",
    "WorkersDown",
    "adapter_args",
    "read_audio",
    "read_frames",
    "render_remote_clip",
    "sequence_from_json",
    "sequence_json",
    "shot_from_json",
    "shot_json",
    "write_audio",
    "write_frames",
]
