"""One status snapshot, three renderers: every numeric field of the status has its Prometheus
series, and /api/status keeps the shape operators and tests read."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.snapshots import populated
from webtv.http.server import status_json
from webtv.metrics import StatusCollector
from webtv.notify import status_line
from webtv.status import ChannelStatus, OutputStatus

pytestmark = pytest.mark.fast

Path = tuple[str | int, ...]


def numeric_fields(value: object, path: Path = ()) -> Iterator[Path]:
    """Paths of every number (and bool) in a snapshot: nested dataclasses and list items too."""
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            yield from numeric_fields(getattr(value, field.name), (*path, field.name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from numeric_fields(item, (*path, index))
    elif isinstance(value, (int, float)):
        yield path


def changed(value, path: Path):
    """``value`` with the number at ``path`` changed (a bool flipped)."""
    if not path:
        return (not value) if isinstance(value, bool) else value + 1
    head, *rest = path
    if isinstance(value, list):
        return [changed(item, tuple(rest)) if index == head else item for index, item in enumerate(value)]
    return dataclasses.replace(value, **{head: changed(getattr(value, head), tuple(rest))})


def exposition(status: ChannelStatus) -> str:
    registry = CollectorRegistry()
    registry.register(StatusCollector(lambda: status))
    return generate_latest(registry).decode()


def without_metric(status: ChannelStatus) -> list[str]:
    """The numeric fields whose value does not show in /metrics: changing one changes nothing."""
    rendered = exposition(status)
    return [".".join(map(str, path)) for path in numeric_fields(status)
            if exposition(changed(status, path)) == rendered]


def test_every_numeric_field_of_the_status_has_its_metric():
    status = populated(ChannelStatus)
    fields = list(numeric_fields(status))
    assert len(fields) > 50 and ("outputs", 1, "restarts") in fields and ("workers", 0, "jobs_done") in fields
    assert without_metric(status) == []


@dataclasses.dataclass(frozen=True)
class GrownStatus(ChannelStatus):
    frames_dropped: int = 0


@dataclasses.dataclass(frozen=True)
class GrownOutput(OutputStatus):
    reconnects: int = 0


def test_a_numeric_field_added_without_a_metric_is_caught():
    assert without_metric(populated(GrownStatus)) == ["frames_dropped"]
    status = populated(ChannelStatus)
    grown = dataclasses.replace(status, outputs=[populated(GrownOutput), *status.outputs])
    assert without_metric(grown) == ["outputs.0.reconnects"]


def test_status_json_keeps_its_shape():
    body = status_json(populated(ChannelStatus))
    assert {"channel", "theme", "theme_source", "theme_since", "now_playing", "queue_depth", "library", "producer",
            "director", "moderation", "schedule", "outputs", "workers", "workers_summary", "config_error",
            "config_pending_restart", "uptime_s"} <= set(body)
    assert set(body["now_playing"]) == {"clip_id", "prompt", "theme", "source", "started_at", "block",
                                        "narration", "characters", "episode", "scores", "score"}
    assert set(body["now_playing"]["episode"]) == {"number", "title"}
    assert {"clips", "seconds", "bytes", "clips_total", "max_bytes", "max_clips", "over_quota", "kept", "deleted",
            "deleted_bytes"} <= set(body["library"])
    assert {"clips_made", "clips_failed", "prompts_blocked", "rendering", "last_error", "last_error_at", "rejected"} <= set(body["producer"])
    assert {"backend", "fallback_active", "fallbacks", "last_error"} <= set(body["director"])
    assert set(body["schedule"]) == {"current", "next"} and set(body["schedule"]["next"]) == {"theme", "at", "tags"}
    assert set(body["schedule"]["current"]) == {"theme", "tags", "trigger"}
    assert {"name", "kind", "target", "state", "pid", "restarts", "uptime_s"} <= set(body["outputs"][0])
    assert {"url", "state", "jobs_done", "failures", "mean_job_s", "in_flight", "running", "last_error",
            "down_since", "backends"} <= set(body["workers"][0])
    assert isinstance(body["config_pending_restart"], list)


def test_status_line_from_the_snapshot():
    status = populated(ChannelStatus)
    outputs = [dataclasses.replace(status.outputs[0], state="running"), status.outputs[1]]
    healthy = dataclasses.replace(status, outputs=outputs, playout=dataclasses.replace(status.playout, problem=None))
    assert status_line(healthy) == (f"on air: block {status.now_playing.block}, theme {status.theme.theme!r}, "
                                    "outputs 1/2 running")
    starting = dataclasses.replace(status, now_playing=None)
    assert status_line(starting) == f"starting, outputs 0/2 running; UNHEALTHY: {status.playout.problem}"
