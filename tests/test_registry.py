"""The backend registry: make_stages builds what the config names, from the registry alone."""

import pytest

from webtv.config import Config, RemoteVideoSection, with_changes
from webtv.producer import registry
from webtv.producer.interpolate import MinterpolateInterpolator, NoInterpolation
from webtv.producer.procedural import ProceduralVideo
from webtv.producer.remote import RemoteAudio, RemoteInterpolator, RemoteVideo, WorkerPool
from webtv.producer.synth import SynthAudio

pytestmark = pytest.mark.fast


def test_every_backend_a_config_can_name_is_registered():
    from webtv.config import STAGES, backend_names

    for stage in STAGES:
        assert set(backend_names(stage)) == set(registry.REGISTRY[stage]), stage


def test_the_default_channel_builds_without_workers_and_skips_interpolation():
    stages = registry.make_stages(Config())
    assert isinstance(stages.video, ProceduralVideo) and isinstance(stages.audio, SynthAudio)
    assert stages.upscale is None and stages.interpolate is None


def test_procedural_video_keeps_its_section():
    config = with_changes(Config(), {"video": {"render_delay_s": 0.25}}, "test")
    video = registry.make_stages(config).video
    assert video.section.render_delay_s == 0.25 and video.delay_s == 0.25 and video.house == config.house


def test_interpolation_runs_for_model_frames():
    config = with_changes(Config(), {"video": {"backend": "zeroscope"}, "interpolation": {"backend": "none"}}, "test")
    assert isinstance(registry.make_stages(config).interpolate, NoInterpolation)
    config = with_changes(config, {"interpolation": {"backend": "minterpolate"}}, "test")
    assert isinstance(registry.make_stages(config).interpolate, MinterpolateInterpolator)


def test_remote_stages_get_the_pool_they_are_handed():
    config = with_changes(Config(), {"video": {"backend": "remote"}, "audio": {"backend": "remote"},
                                     "interpolation": {"backend": "remote"},
                                     "workers": {"urls": ["http://127.0.0.1:9/"]}}, "test")
    assert config.needs_workers and config.remote_stages == ["video", "interpolation", "audio"]
    with pytest.raises(ValueError, match=r"video, interpolation, audio run on \[workers\]"):
        registry.make_stages(config)
    pool = WorkerPool(config.workers, start=False)
    try:
        stages = registry.make_stages(config, pool)
        assert isinstance(stages.video, RemoteVideo) and stages.video.pool is pool
        assert isinstance(stages.audio, RemoteAudio) and stages.audio.pool is pool
        assert isinstance(stages.interpolate, RemoteInterpolator)  # even after procedural-rate video
    finally:
        pool.close()


def test_a_backend_no_registry_line_names_is_an_error():
    mystery = RemoteVideoSection().model_copy(update={"backend": "mystery"})  # past validation
    config = Config().model_copy(update={"video": mystery})
    with pytest.raises(ValueError, match="no video backend 'mystery' is registered"):
        registry.make_stages(config)


def test_lazy_builds_the_named_class_with_what_it_needs():
    factory = registry.lazy("webtv.producer.procedural:ProceduralVideo", "house")
    config = Config()
    made = factory(config.video, registry.Resources(config.house))
    assert isinstance(made, ProceduralVideo) and made.house is config.house and made.section is config.video
