"""A narration line as an ASS subtitle script, burned in by libass at the house encode.

The style comes from ``[subtitles]`` in fractions of the picture, so it reads the same at
every house size: font size a fraction of the height, outline a fraction of the font size,
the safe margin a fraction of width (left, right) and height (bottom). The line is wrapped
to the width between the margins (DejaVu Sans averages about 0.55 em a character; libass
also wraps at the margins should a line still be wider) and shown ``max_lines`` lines at a
time: a longer line is shown in turns, each for a share of the speech as long as its share
of the characters, so the words on screen follow the voice.

ASS reads ``{...}`` as override tags and ``\\`` as an escape: the text is printable (it went
through ``webtv.text``) and those three characters are shown as look-alikes.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webtv.config import HouseSection, SubtitlesSection

CHAR_EM = 0.55
"""The average advance of a character of DejaVu Sans, in ems (for wrapping)."""
FONT_NAME = "DejaVu Sans"
HOLD_S = 0.3
"""The last words stay this much longer than the voice (inside the shot)."""


@dataclass(frozen=True)
class Subtitle:
    """A line on screen from ``start`` to ``end`` seconds of the clip."""

    text: str
    start: float
    end: float


def _ass_colour(hex_rgb: str) -> str:
    r, g, b = hex_rgb[1:3], hex_rgb[3:5], hex_rgb[5:7]
    return f"&H00{b}{g}{r}".upper()


def _ass_time(seconds: float) -> str:
    cs = max(0, round(seconds * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _plain(text: str) -> str:
    return " ".join(text.replace("{", "(").replace("}", ")").replace("\\", "/").split())


@dataclass(frozen=True)
class Layout:
    font_px: int
    outline_px: float
    margin_x: int
    margin_y: int
    per_line: int  # characters a line holds

    @classmethod
    def of(cls, house: "HouseSection", style: "SubtitlesSection") -> "Layout":
        font = max(10, round(house.height * style.size))
        margin_x, margin_y = round(house.width * style.margin), round(house.height * style.margin)
        per_line = max(8, int((house.width - 2 * margin_x) / (font * CHAR_EM)))
        return cls(font, round(font * style.outline, 1), margin_x, margin_y, per_line)


def pages(text: str, per_line: int, max_lines: int) -> list[list[str]]:
    """``text`` wrapped to ``per_line`` characters, in groups of at most ``max_lines`` lines."""
    lines = textwrap.wrap(_plain(text), per_line, break_long_words=True, break_on_hyphens=False)
    return [lines[i:i + max_lines] for i in range(0, len(lines), max_lines)]


def ass_script(subtitle: Subtitle, house: "HouseSection", style: "SubtitlesSection", clip_seconds: float) -> str:
    """The ASS script that shows ``subtitle`` on a clip of ``clip_seconds`` at the house size."""
    layout = Layout.of(house, style)
    groups = pages(subtitle.text, layout.per_line, style.max_lines)
    end = min(clip_seconds, subtitle.end + HOLD_S)
    total = sum(len(" ".join(g)) for g in groups) or 1
    events, at = [], subtitle.start
    for group in groups:
        share = (subtitle.end - subtitle.start) * len(" ".join(group)) / total
        until = end if group is groups[-1] else at + share
        events.append(f"Dialogue: 0,{_ass_time(at)},{_ass_time(until)},Default,,0,0,0,," + "\\N".join(group))
        at = until
    colour, outline = _ass_colour(style.colour), _ass_colour(style.outline_colour)
    return "\n".join([
        "[Script Info]",
        "ScriptType: v4.00+",
        f"PlayResX: {house.width}",
        f"PlayResY: {house.height}",
        "WrapStyle: 0",
        "ScaledBorderAndShadow: yes",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
        "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
        "MarginR, MarginV, Encoding",
        f"Style: Default,{FONT_NAME},{layout.font_px},{colour},{colour},{outline},&H80000000,0,0,0,0,100,100,0,0,1,"
        f"{layout.outline_px:g},0,2,{layout.margin_x},{layout.margin_x},{layout.margin_y},1",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
        *events,
        "",
    ])
