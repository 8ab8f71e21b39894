"""Shared render stages (webtv.producer.shared): the fair gate's order, and which channels share
which instance. Pure logic: threads and configs, no ffmpeg, no model loaded."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import pytest

from webtv.config import Config, with_changes
from webtv.producer.shared import ChannelReleased, FairGate, SharedStages, sharing

pytestmark = pytest.mark.fast


def poll(condition: Callable[[], bool], timeout: float = 5.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {message or condition}"
        time.sleep(0.005)


class Queue:
    """Calls queued in a gate one by one (each is waiting before the next comes), recording the
    order in which they get their turn."""

    def __init__(self, gate: FairGate):
        self.gate, self.order, self.threads, self.errors = gate, [], [], []

    def add(self, channel: str, ready_s: Callable[[], float]) -> None:
        def call() -> None:
            try:
                with self.gate.slot(channel, ready_s):
                    self.order.append(channel)
            except ChannelReleased as exc:
                self.errors.append((channel, exc))

        waiting = len(self.gate.waiting())
        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        self.threads.append(thread)
        poll(lambda: len(self.gate.waiting()) == waiting + 1, message=f"{channel} waiting")

    def join(self) -> None:
        for thread in self.threads:
            thread.join(5)
            assert not thread.is_alive(), "a call never got its turn"


def held(gate: FairGate) -> tuple[threading.Event, threading.Thread]:
    """A call holding the gate's one slot until the event is set."""
    release, holding = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.slot("holder", lambda: 0.0):
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert holding.wait(5)
    return release, thread


def turns(calls: list[tuple[str, Callable[[], float]]], meanwhile: Callable[[FairGate], object] = lambda gate: None) -> Queue:
    """``calls`` queued one by one in a gate whose slot is held, ``meanwhile(gate)``, then the
    slot freed: the order the calls got their turns (``.order``) and who gave up (``.errors``)."""
    gate = FairGate()
    release, holder = held(gate)
    queue = Queue(gate)
    for channel, ready_s in calls:
        queue.add(channel, ready_s)
    meanwhile(gate)
    release.set()
    holder.join(5)
    queue.join()
    return queue


def test_a_freed_slot_goes_to_the_channel_with_the_least_fresh_airtime_then_first_come():
    queue = turns([("a", lambda: 30.0), ("b", lambda: 4.0), ("c", lambda: 4.0), ("d", lambda: 0.0)])
    assert queue.order == ["d", "b", "c", "a"]  # c has as little as b, and came later


def test_the_airtime_counts_when_the_slot_frees_not_when_the_call_came():
    ready = {"a": 1.0, "b": 20.0}
    queue = turns([("a", lambda: ready["a"]), ("b", lambda: ready["b"])],
                  meanwhile=lambda gate: ready.update(b=0.0))  # b's clips aired while it waited
    assert queue.order == ["b", "a"]


def test_capacity_is_read_live_and_bounds_the_calls_at_once():
    capacity = [2]
    gate = FairGate(lambda: capacity[0], recheck_s=0.05)
    inside, free = [], threading.Event()

    def call(channel: str) -> None:
        with gate.slot(channel, lambda: 0.0):
            inside.append(channel)
            free.wait(5)

    threads = [threading.Thread(target=call, args=(name,), daemon=True) for name in "abc"]
    for thread in threads:
        thread.start()
    poll(lambda: len(inside) == 2 and len(gate.waiting()) == 1, message="two in, one waiting")
    assert gate.running == 2
    capacity[0] = 3  # a worker came back: the waiting call goes in without anyone leaving
    poll(lambda: len(inside) == 3, message="the third call in")
    free.set()
    for thread in threads:
        thread.join(5)
    assert gate.running == 0 and gate.waiting() == []


def test_a_released_channels_waiting_calls_give_up_and_the_others_go_on():
    queue = turns([("gone", lambda: 0.0), ("stays", lambda: 9.0)], meanwhile=lambda gate: gate.drop("gone"))
    assert queue.order == ["stays"]
    assert [channel for channel, _ in queue.errors] == ["gone"]


def channel_config(name: str, **changes: dict) -> Config:
    return with_changes(Config(), {"channel": {"name": name}, "video": {"render_delay_s": 0.5}, **changes}, "test")


def no_fresh() -> float:
    return 0.0


def test_channels_with_equal_sections_share_one_instance_and_it_goes_when_the_last_leaves(caplog):
    shared = SharedStages()
    configs = {"a": channel_config("a"), "b": channel_config("b"),
               "wide": channel_config("wide", house={"width": 640, "height": 360})}
    caplog.set_level(logging.INFO, logger="webtv.producer")
    stages = {name: shared.stages(config, name, no_fresh) for name, config in configs.items()}
    assert stages["a"].video.backend is stages["b"].video.backend
    assert stages["a"].audio.backend is stages["b"].audio.backend is stages["wide"].audio.backend  # synth: no house
    assert stages["wide"].video.backend is not stages["a"].video.backend  # procedural draws in the house format
    assert "stage video (procedural at 1024x576@24) shared by channels a, b: loaded once" in caplog.text
    status = shared.status()
    assert status == sharing(configs)  # what `webtv check DIR` shows is what the daemon does
    video = [entry for entry in status if entry["stage"] == "video"]
    assert video == [
        {"stage": "video", "backend": "procedural", "what": "procedural at 1024x576@24", "channels": ["a", "b"]},
        {"stage": "video", "backend": "procedural", "what": "procedural at 640x360@24", "channels": ["wide"]},
    ]
    shared.release("a")
    assert {e["what"]: e["channels"] for e in shared.status()}["procedural at 1024x576@24"] == ["b"]
    shared.release("b")
    shared.release("wide")
    assert shared.status() == []


def test_a_channel_built_again_keeps_what_it_still_uses_and_lets_go_of_the_rest():
    shared = SharedStages()
    first = shared.stages(channel_config("a"), "a", no_fresh)
    again = shared.stages(channel_config("a", voice={"backend": "none"}), "a", no_fresh)
    assert again.video.backend is first.video.backend and again.voice is None
    assert [e["stage"] for e in shared.status()] == ["video", "audio"]  # the voice went with its last channel
    other = shared.stages(channel_config("a", voice={"backend": "none"}, video={"render_delay_s": 0.25}), "a",
                          no_fresh)
    assert other.video.backend is not first.video.backend
    assert [(e["stage"], e["channels"]) for e in shared.status()] == [("audio", ["a"]), ("video", ["a"])]


def test_a_render_on_a_shared_stage_waits_for_its_turn():
    shared = SharedStages()
    stages = {name: shared.stages(channel_config(name, video={"render_delay_s": 0.0}), name, no_fresh)
              for name in "ab"}
    gate = stages["a"].video.gate
    assert gate is stages["b"].video.gate and stages["a"].video.section.render_delay_s == 0.0
    from webtv.director import Shot

    shot = Shot(prompt="a lighthouse", seed=1, theme="t")
    release, holder = held(gate)  # channel b's render is running
    frames = []
    render = threading.Thread(target=lambda: frames.append(stages["a"].video.render(shot, 1.0)), daemon=True)
    render.start()
    poll(lambda: gate.waiting() == ["a"], message="a's render waiting")
    assert frames == []
    release.set()
    render.join(5)
    assert frames and len(frames[0].array) == 24


def test_channels_with_equal_clip_scorers_share_one():
    quality = {"scorer": "clip", "model": "/models/clip"}
    shared = SharedStages()
    a = shared.stages(channel_config("a", quality=quality), "a", no_fresh)
    shared.stages(channel_config("b", quality=quality), "b", no_fresh)
    shared.stages(channel_config("c", quality={**quality, "frames": 8}), "c", no_fresh)
    assert shared.scorer("a").backend is shared.scorer("b").backend is not shared.scorer("c").backend
    assert {"stage": "quality", "backend": "clip", "what": "clip (/models/clip)", "channels": ["a", "b"]} \
        in shared.status()
    assert a.video.gate.capacity() == 1


def test_a_released_channels_proxies_take_no_more_turns_and_the_recipe_does_not_retry_them():
    from webtv.director import Shot
    from webtv.producer.pipeline import retry_lighter

    shared = SharedStages()
    stages = {name: shared.stages(channel_config(name, video={"render_delay_s": 0.0}), name, no_fresh)
              for name in "ab"}
    gate = stages["a"].video.gate
    release, holder = held(gate)
    waited = []
    render = threading.Thread(target=lambda: waited.append(_raised(stages["a"].video.render)), daemon=True)
    render.start()
    poll(lambda: gate.waiting() == ["a"], message="a's render waiting")
    shared.release("a")  # its file was removed while its render waited
    render.join(5)
    assert waited == [ChannelReleased]
    calls = []

    def later(*args, light: bool = False):
        calls.append(light)
        return stages["a"].video.render(Shot("after", 1, "t"), 1.0, light=light)

    with pytest.raises(ChannelReleased):
        retry_lighter("video", later)
    assert calls == [False], "a released channel's step was retried"
    release.set()
    holder.join(5)
    assert stages["b"].video.render(Shot("b goes on", 1, "t"), 1.0).seconds == 1.0


def _raised(call) -> type | None:
    from webtv.director import Shot

    try:
        call(Shot("waits", 1, "t"), 1.0)
    except Exception as exc:  # noqa: BLE001
        return type(exc)
    return None


def test_remote_stages_take_turns_by_the_pools_capacity():
    from webtv.producer.remote import WorkerPool

    remote = {"workers": {"urls": ["http://127.0.0.1:9/", "http://127.0.0.1:10/"]}, "video": {"backend": "remote"}}
    config = with_changes(Config(), {"channel": {"name": "a"}, **remote}, "test")
    pool = WorkerPool(config.workers, start=False)
    stages = SharedStages(pool).stages(config, "a", no_fresh)
    assert stages.video.backend.spreads_over_workers  # read through the proxy: takes are drawn side by side
    assert stages.video.gate.capacity() == pool.capacity() == 2
    assert stages.audio.gate.capacity() == 1  # local synth
