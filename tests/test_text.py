"""Text from outside (themes, prompts, cast names): one line of printable Unicode, or why not."""

from __future__ import annotations

import pytest

from webtv.cli import main
from webtv.text import BadText, checked_text, text_problem

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("text", [
    "lighthouses in a storm", "café crème at dawn", "東京の夜 – 雨", "مقهى في الصباح", "नमस्ते दुनिया",
    "snow\u00a0falls\u3000softly", "rocket \U0001F469\u200d\U0001F680 and \u2603\ufe0f", "می\u200cخواهم", "",
])
def test_printable_text_passes(text):
    assert text_problem(text) is None and checked_text(text) == text


@pytest.mark.parametrize("text, reason", [
    ("a\ud800b", "cannot be encoded as UTF-8: lone surrogate U+D800 at position 1"),
    ("bells\x07", "a control character, U+0007, at position 5"),
    ("two\nlines", "a control character, U+000A"),
    ("tab\there", "a control character, U+0009"),
    ("nul\x00", "a control character, U+0000"),
    ("\x9bcsi", "a control character, U+009B"),
    ("\u202eevil", "an invisible format character, U+202E"),
    ("\ufeffbom", "an invisible format character, U+FEFF"),
    ("line\u2028break", "a line separator, U+2028"),
    ("private\ue000use", "a private-use character, U+E000"),
    ("\U0003fffe", "an unassigned code point, U+3FFFE"),
])
def test_what_is_not_printable_text_is_named(text, reason):
    assert reason in text_problem(text)
    with pytest.raises(BadText, match="cast name"):
        checked_text(text, "cast name")


def test_the_command_line_refuses_a_theme_or_prompt_that_is_not_printable_text(capsys):
    for argv in (["prompts", "owls\x07"], ["render", "a\udcffb", "--out", "x.mp4"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert "U+0007" in err or "U+DCFF" in err, err
