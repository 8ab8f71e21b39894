"""The offline story writer: the next episode of a theme's series, from vocabularies, no network.

Deterministic for (theme, seed, series). Every episode is a little story: a protagonist (a
cast member, taking turns, or a new character when the cast is empty), a goal, an obstacle,
and a resolution, spread over the shots (the first sets out, the second meets the obstacle,
the middle ones struggle on or bring a companion in, the last resolves). Each shot gets one
narration line of at most ``brief.words`` words (cut at a word boundary when a line is
longer), the names of the characters in it, and a prompt that keeps the offline director's
setting, light and style for the whole episode, with the cast's looks added by
``webtv.director.cast``. Characters the writer invents are part of ``Sequence.cast`` and keep
their look once the series records them.

``bounded_summary`` keeps the story so far under ``summary_chars``: whole sentences are
dropped from the start (the oldest episodes) first.
"""

from __future__ import annotations

import hashlib
import re

from webtv.director.base import Character, Episode, EpisodeBrief, Sequence, Shot
from webtv.director.cast import cast_prompt
from webtv.director.offline import (_CHARACTERS, _FRAMINGS, _MOVES, _MUSIC, OfflineDirector, _clean, _rng, _words,
                                    shot_seed_of)

_NAMES = ["Mara", "Tobias", "Ines", "Oskar", "Lena", "Ravi", "Juno", "Elio", "Wren", "Sami", "Nadia", "Pip",
          "Hugo", "Alba", "Kit", "Yara"]

# (goal, title, what the last shot shows, how it ends)
_GOALS = [
    ("find the lost lantern", "the Lost Lantern", "holding up a glowing lantern",
     "finds the lantern, and it glows again"),
    ("reach the top of the old hill", "the Old Hill", "standing on a hilltop at sunrise",
     "reaches the top and sees the whole land below"),
    ("deliver a letter to an old friend", "the Letter", "handing a letter to a smiling friend",
     "delivers the letter, and an old friend smiles"),
    ("find the way home", "the Way Home", "arriving at a small house with lit windows",
     "finds the way home before dawn"),
    ("plant a seed from a faraway garden", "the Seed", "kneeling beside a small green sprout",
     "plants the seed, and a green sprout rises"),
    ("mend a broken kite", "the Kite", "flying a bright kite high in the air",
     "mends the kite, and it flies high"),
    ("follow a strange light", "the Strange Light", "stepping into a circle of soft light",
     "reaches the light and finds a hidden door"),
]

# (what goes wrong, what the shot shows)
_OBSTACLES = [
    ("a storm rolls in and hides the path", "as dark storm clouds roll in"),
    ("the bridge ahead has fallen", "at the edge of a broken bridge"),
    ("night falls and the way grows dark", "as night falls"),
    ("a thick fog swallows every landmark", "lost in a thick fog"),
    ("the wind snatches the map away", "as a paper map flies off in the wind"),
    ("a locked gate blocks the way", "before a tall locked gate"),
]

# (line, what the shot shows): the struggle between obstacle and resolution
_STRUGGLES = [
    ("{p} does not give up.", "pushing on against the wind"),
    ("{p} looks for another way.", "searching the ground carefully"),
    ("{p} stops to think, then tries again.", "sitting still, then standing up"),
    ("Step by step, {p} goes on.", "walking slowly forward"),
]
_HELP = ("{h} comes to help.", "meeting {h}, who points the way")


def word_budget(max_shot_seconds: float, breath_s: float, words_per_minute: float) -> int:
    """The most words a narration line may have to be spoken within a shot (at least one)."""
    return max(1, int((max_shot_seconds - breath_s) * words_per_minute / 60))


def fit_line(line: str, words: int) -> str:
    """``line`` when it has at most ``words`` words, else its first ``words`` words (never a
    word cut) ending in a full stop."""
    parts = line.split()
    if len(parts) <= words:
        return " ".join(parts)
    return " ".join(parts[:words]).rstrip(",;:") + "."


def bounded_summary(text: str, limit: int) -> str:
    """``text`` on one line within ``limit`` characters: the oldest sentences dropped first; a
    single sentence over the limit keeps its last words."""
    text = " ".join(text.split())
    sentences = re.split(r"(?<=[.!?])\s+", text)
    while len(sentences) > 1 and len(" ".join(sentences)) > limit:
        sentences.pop(0)
    text = " ".join(sentences)
    if len(text) > limit:
        text = text[len(text) - limit:]
        text = text.split(" ", 1)[1] if " " in text else text
    return text


def new_character(rng, taken: set[str], category: str = "any") -> Character:
    """A character the series has not met: a name not ``taken`` and a look from the vocabularies."""
    names = [n for n in _NAMES if n.casefold() not in taken] or [f"Stranger {len(taken) + 1}"]
    looks = _CHARACTERS.get(category, []) + _CHARACTERS["any"]
    return Character(name=rng.choice(names), look=rng.choice(looks))


def _taken(cast: tuple[Character, ...]) -> set[str]:
    return {n.casefold() for c in cast for n in (c.name, *c.aliases)}


def write_episode(theme: str, shots: int, seed: int, brief: EpisodeBrief) -> Sequence:
    """The next episode of ``brief.series`` (see the module docstring)."""
    theme = _clean(theme)
    shots = max(1, int(shots))
    series = brief.series
    number = series.episodes + 1
    rng = _rng("episode", theme, seed, number, series.summary, *(c.name for c in series.cast))
    plan = OfflineDirector.details(theme, seed)
    cast = tuple(series.cast)
    if cast:
        hero = cast[series.episodes % len(cast)]
    else:
        hero = new_character(rng, set())
        cast = (hero,)
    others = [c for c in cast if c is not hero]
    helper = rng.choice(others) if others else None
    if helper is None and shots >= 4:
        helper = new_character(rng, _taken(cast))
        cast = (*cast, helper)
    goal, title_noun, goal_seen, ending = rng.choice(_GOALS)
    trouble, trouble_seen = rng.choice(_OBSTACLES)
    p = hero.name

    beats = _beats(shots, p, helper.name if helper else None, goal, goal_seen, trouble, trouble_seen, ending, rng)
    genre, tempo, instruments = _MUSIC[plan["mood"]]
    tags = tuple(dict.fromkeys([w for w in _words(theme) if len(w) > 2][:4] + ["story", plan["style_tag"], plan["mood"]]))
    seq_id = "ep-" + hashlib.sha256(f"{theme}\x1f{seed}\x1f{number}".encode("utf-8")).hexdigest()[:12]
    out = []
    for index, (line, seen, named) in enumerate(beats):
        srng = _rng("story-shot", theme, seed, number, index)
        framing = srng.choice(_FRAMINGS)
        camera = f"slow {srng.choice(_MOVES)}"
        prompt = f"{framing} of {seen}, {plan['setting']}, {theme}, {plan['light']}, {plan['style']}, {camera}"
        prompt, characters = cast_prompt(prompt, cast, named)
        out.append(Shot(
            prompt=prompt,
            seed=shot_seed_of(seq_id, index),
            theme=theme, tags=tags, sequence_id=seq_id, index=index,
            narration=fit_line(line, brief.words), characters=characters,
        ))
    told = f"Episode {number}: {p} set out to {goal}, but {trouble}; in the end {p} {ending}."
    episode = Episode(number=number, title=f"{p} and {title_noun}",
                      summary=bounded_summary(f"{series.summary} {told}", brief.summary_chars))
    return Sequence(id=seq_id, theme=theme, music_prompt=f"{genre}, {tempo}, {instruments}, {plan['mood']} mood",
                    seed=seed, tags=tags, shots=tuple(out), episode=episode, cast=cast)


def _beats(shots: int, p: str, h: str | None, goal: str, goal_seen: str, trouble: str, trouble_seen: str,
           ending: str, rng) -> list[tuple[str, str, tuple[str, ...]]]:
    """(narration, what the shot shows, who is named) for each shot: set out, obstacle,
    struggle or help, resolution."""
    start = (f"{p} sets out to {goal}.", f"{p} setting out on a journey", (p,))
    trouble_beat = (f"But {trouble}.", f"{p} {trouble_seen}", (p,))
    end = (f"At last, {p} {ending}.", f"{p} {goal_seen}", (p,))
    if shots == 1:
        return [(f"{p} sets out to {goal}, and at last {p} {ending}.", end[1], (p,))]
    if shots == 2:
        return [(f"{p} sets out to {goal}, but {trouble}.", trouble_beat[1], (p,)), end]
    middle = []
    struggles = rng.sample(_STRUGGLES, k=len(_STRUGGLES))
    for i in range(shots - 3):
        if h is not None and i == shots - 4:  # the companion arrives just before the end
            middle.append((_HELP[0].format(h=h), f"{p} {_HELP[1].format(h=h)}", (p, h)))
        else:
            line, seen = struggles[i % len(struggles)]
            middle.append((line.format(p=p), f"{p} {seen}", (p,)))
    if h is not None and shots > 3:
        end = (end[0], end[1] + f" with {h}", (p, h))
    return [start, trouble_beat, *middle, end]
