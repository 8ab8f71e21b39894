"""Weighted prompts as text: the parser, the clean text plain-text backends get, the offline
writer's weighted subject, and the LLM director dropping a malformed one."""

from __future__ import annotations

import numpy as np
import pytest

from webtv.cli import main
from webtv.config import HouseSection
from webtv.director.base import Shot
from webtv.director.offline import OfflineDirector
from webtv.producer.procedural import ProceduralVideo
from webtv.prompt_weights import Part, PromptWeightError, clean, is_weighted, parse, weighted

pytestmark = pytest.mark.fast


def test_weights_are_parsed_and_plain_parentheses_stay_text():
    assert parse("a (red fox:1.3), running in (snow:0.5)") == (
        Part("a"), Part("red fox", 1.3), Part(", running in"), Part("snow", 0.5))
    assert parse("a fox (close-up) (note: at dawn)") == (Part("a fox (close-up) (note: at dawn)"),)
    assert clean("a ( red fox : 1.5 ), running") == "a red fox, running"
    unweighted = "a fox (close-up), 80s (retro"
    assert clean(unweighted) == unweighted and not is_weighted(unweighted) and not is_weighted("a (fox:1)")
    assert weighted("a lone fox", 1.3) == "(a lone fox:1.3)" and weighted("a lone fox", 1.0) == "a lone fox"


@pytest.mark.parametrize("prompt, fault", [
    ("a (red fox:lots) running", "the weight 'lots' of 'red fox' is not a number"),
    ("a (red fox:) running", "the weight '' of 'red fox' is not a number"),
    ("a (red fox:-1) running", "the weight '-1'"),
    ("a (red fox:2.5) running", "the weight 2.5 of 'red fox' is outside 0..2"),
    ("a (:1.2) running", "no words before the weight"),
    ("a (red fox:1.3 running", "'(red fox:1.3' is never closed"),
    ("a red fox:1.3) running", "'fox:1.3)' closes no '('"),
    ("a (red (fox:1.2):1.3) running", "closes no '(' (groups do not nest)"),
])
def test_a_malformed_weight_is_an_error_naming_the_prompt(prompt, fault):
    with pytest.raises(PromptWeightError) as error:
        clean(prompt)
    assert str(error.value).startswith(f"prompt {prompt!r}: ") and fault in str(error.value)


def test_webtv_render_refuses_a_malformed_weight(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["render", "a (red fox:lots)", "--out", str(tmp_path / "clip.mp4")])
    assert exited.value.code == 2
    assert "prompt 'a (red fox:lots)': the weight 'lots' of 'red fox' is not a number" in capsys.readouterr().err


def test_procedural_draws_the_clean_text():
    video = ProceduralVideo(HouseSection(width=128, height=72, fps=4), scale=0.25)
    plain = video.render(Shot(prompt="a red fox, black and white, slow pan left", seed=4, theme="t"), 1.0)
    heavy = video.render(Shot(prompt="a (red fox:1.6), (black and white:1.2), slow pan left", seed=4, theme="t"), 1.0)
    assert np.array_equal(plain.array, heavy.array)  # grey palette and pan read from the words
    with pytest.raises(PromptWeightError, match="never closed"):
        video.render(Shot(prompt="a (red fox:1.3", seed=4, theme="t"), 1.0)


def test_the_offline_writer_can_weight_the_subject():
    plain = OfflineDirector().write("winter foxes", 3, seed=2)
    heavy = OfflineDirector(subject_weight=1.3).write("winter foxes", 3, seed=2)
    subject = OfflineDirector.details("winter foxes", 2)["character"]
    for before, after in zip(plain.shots, heavy.shots):
        assert f"({subject}:1.3)" in after.prompt and clean(after.prompt) == before.prompt
    assert not any(is_weighted(shot.prompt) for shot in plain.shots)
