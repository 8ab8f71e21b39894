"""Best-of-K takes scored by a tiny random CLIP (transformers' real classes, save_pretrained):
the clip kept is the best-scored take; scores reach the library, /api/status and /api/clips;
a min_score above every take drops the shot and the channel airs on (a real daemon)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.daemon import Daemon, write_config
from tests.tiny_clip import tiny_clip
from webtv.config import Config, QualitySection
from webtv.director import Shot

HOUSE = {"width": 320, "height": 180, "fps": 24, "video_kbps": 400, "audio_kbps": 64, "x264_preset": "ultrafast"}


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    return str(tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "clip"))


def test_the_clip_kept_is_the_best_scored_take(clip_model, tmp_path):
    from webtv.producer import ClipPipeline, make_stages
    from webtv.producer.remote import read_frames
    from webtv.producer.takes import ClipScorer, LowScore

    config = Config.model_validate({"house": HOUSE, "video": {"clip_seconds": 2.0},
                                    "quality": {"takes": 3, "scorer": "clip", "model": clip_model}})
    stages = make_stages(config)
    pipeline = ClipPipeline.from_config(config, stages)
    shot = Shot("a red fox running through the snow", seed=11, theme="foxes")
    made = pipeline.single(shot, tmp_path / "clip.mp4")

    takes = made.takes
    assert takes is not None and len(set(takes.seeds)) == 3 and takes.seeds[0] == shot.seed
    assert "score" in made.timings
    # each take drawn again with its seed and scored by a scorer of our own: the same scores
    drawn = [stages.video.render(replace(shot, seed=seed), 2.0) for seed in takes.seeds]
    scorer = ClipScorer(QualitySection(scorer="clip", model=clip_model))
    scores = [scorer.score(frames, shot.prompt) for frames in drawn]
    assert takes.scores == pytest.approx(scores, abs=1e-5)
    assert max(scores) - min(scores) > 1e-4, f"the takes score alike, nothing to choose: {scores}"
    assert takes.kept == int(np.argmax(scores)) and takes.score == max(takes.scores)
    # the picture in the clip is the kept take's: its middle frame is nearest to that take's
    from PIL import Image

    aired = read_frames(tmp_path / "clip.mp4").array
    height, width = drawn[0].array.shape[1:3]
    middle = np.asarray(Image.fromarray(aired[len(aired) // 2]).resize((width, height)), np.float32)
    distance = [np.abs(take.array[len(take.array) // 2].astype(np.float32) - middle).mean() for take in drawn]
    assert int(np.argmin(distance)) == takes.kept, distance

    pipeline.quality = pipeline.quality.model_copy(update={"min_score": max(scores) + 1e-3})
    with pytest.raises(LowScore, match="every take scored under min_score"):
        pipeline.single(shot, tmp_path / "dropped.mp4")
    assert not (tmp_path / "dropped.mp4").exists()


def test_daemon_drops_low_scores_airs_on_and_shows_every_take_score(clip_model, tmp_path):
    quality = {"takes": 3, "scorer": "clip", "model": clip_model, "frames": 2}
    daemon = Daemon(tmp_path / "channel", quality={**quality, "min_score": 0.999},
                    programme={"block_seconds": 4.0, "filler_seconds": 2.0}).start()
    try:
        # every take under min_score: shots dropped, counted, nothing in the library, filler on air
        status = daemon.wait_for(lambda s: s["producer"]["rejected"].get("low_score", 0) >= 2
                                 and s["playout"]["blocks_aired"] >= 2, timeout=45, message="shots dropped")
        assert status["library"]["clips"] == 0 and status["producer"]["clips_made"] == 0
        assert status["now_playing"]["source"] == "filler" and status["now_playing"]["scores"] is None
        assert daemon.output("hls")["state"] == "running", status["outputs"]
        assert "shot dropped before the library (low_score)" in daemon.log_tail(20000)
        _, metrics = daemon.request("GET", "/metrics")
        assert 'webtv_shots_rejected_total{reason="low_score"}' in metrics

        # min_score lifted live: clips made of the best take, every take's score shown on air
        write_config(daemon.folder, daemon.port, [], quality=quality,
                     programme={"block_seconds": 4.0, "filler_seconds": 2.0})
        status = daemon.wait_for(lambda s: (s["now_playing"] or {}).get("clip_id") is not None, timeout=45,
                                 message="a scored clip on air")
        now = status["now_playing"]
        assert len(now["scores"]) == 3 and now["score"] == max(now["scores"])
        code, body = daemon.request("GET", "/api/clips?sort=score&order=desc")
        clips = json.loads(body)["clips"]
        assert code == 200 and clips, body
        for clip in clips:
            assert len(clip["scores"]) == 3 and clip["score"] == max(clip["scores"])
        assert [c["score"] for c in clips] == sorted((c["score"] for c in clips), reverse=True)
        on_air = next(c for c in clips if c["id"] == now["clip_id"])
        assert on_air["scores"] == now["scores"]
    finally:
        daemon.kill()
